/**
 * The PromQL type checker: a pass over a parsed tree, once its syntax is known to be right (Prometheus
 * reports syntax errors first), that checks the types of operands and arguments bottom-up with
 * Prometheus's rules and messages, and drops the vector matching of a binary expression where a side is
 * not an instant vector. `typeOf` gives the type of a checked tree.
 */
import { matchesEmpty } from "../internal/labels.ts"
import type { Binary, Call, Expr, ValueType, VectorSelector } from "./ast.ts"
import { ParseError } from "./ast.ts"
import { goQuote } from "./format.ts"
import { aggregateParam, anchoredFunctions, functions, smoothedFunctions } from "./functionTable.ts"

/** The comparison operators and the set operators (which the parser gives many-to-many matching). */
export const comparisonOps: ReadonlySet<string> = new Set(["==", "!=", "<", "<=", ">", ">="])
export const setOps: ReadonlySet<string> = new Set(["and", "or", "unless"])

/** Where the operator of a binary expression starts (the parser records it), for the type checker's messages. */
export const operatorStart = new WeakMap<Expr, number>()

/** Prometheus's names of the value types in messages. */
const documentedType = (t: ValueType): string =>
  t === "vector" ? "instant vector" : t === "matrix" ? "range vector" : t

/** The value type of an expression (of a well-typed tree; `parse` guarantees that). */
export const typeOf = (expr: Expr): ValueType => {
  switch (expr.type) {
    case "NumberLiteral":
      return "scalar"
    case "StringLiteral":
      return "string"
    case "VectorSelector":
    case "Aggregate":
      return "vector"
    case "MatrixSelector":
    case "Subquery":
      return "matrix"
    case "Call": {
      const spec = functions.get(expr.func)
      if (spec === undefined) throw new ParseError(`unknown function with name ${goQuote(expr.func)}`, expr.pos.start)
      return spec.returnType
    }
    case "Binary":
      return typeOf(expr.lhs) === "scalar" && typeOf(expr.rhs) === "scalar" ? "scalar" : "vector"
    case "Unary":
    case "Paren":
      return typeOf(expr.expr)
  }
}

const fail = (message: string, at: number): never => {
  throw new ParseError(message, at)
}

const checkVectorSelector = (vs: VectorSelector, bypassEmptyCheck: boolean): void => {
  if (vs.name !== undefined) {
    const other = vs.matchers.find((m, i) => i > 0 && m.name === "__name__")
    if (other !== undefined) {
      fail(`metric name must not be set twice: ${goQuote(vs.name)} or ${goQuote(other.value)}`, vs.pos.start)
    }
    return
  }
  if (!bypassEmptyCheck && vs.matchers.every((m) => matchesEmpty(m))) {
    fail("vector selector must contain at least one non-empty matcher", vs.pos.start)
  }
}

/** Checks types bottom-up as Prometheus does, rewriting `matching` away where a side is not a vector. */
export const checkTypes = (e: Expr): { expr: Expr; type: ValueType } => {
  switch (e.type) {
    case "NumberLiteral":
      return { expr: e, type: "scalar" }
    case "StringLiteral":
      return { expr: e, type: "string" }
    case "VectorSelector":
      checkVectorSelector(e, false)
      return { expr: e, type: "vector" }
    case "MatrixSelector":
      checkVectorSelector(e.vector, false)
      return { expr: e, type: "matrix" }
    case "Subquery": {
      const inner = checkTypes(e.expr)
      if (inner.type !== "vector") fail(`subquery is only allowed on instant vector, got ${inner.type} instead`, e.pos.start)
      return { expr: { ...e, expr: inner.expr }, type: "matrix" }
    }
    case "Paren": {
      const inner = checkTypes(e.expr)
      return { expr: { ...e, expr: inner.expr }, type: inner.type }
    }
    case "Unary": {
      const inner = checkTypes(e.expr)
      if (inner.type !== "scalar" && inner.type !== "vector") {
        fail(
          `unary expression only allowed on expressions of type scalar or instant vector, got ${goQuote(documentedType(inner.type))}`,
          e.pos.start
        )
      }
      return { expr: { ...e, expr: inner.expr }, type: inner.type }
    }
    case "Call":
      return checkCall(e)
    case "Aggregate": {
      const inner = checkTypes(e.expr)
      if (inner.type !== "vector") {
        fail(`expected type instant vector in aggregation expression, got ${documentedType(inner.type)}`, e.expr.pos.start)
      }
      let param = e.param
      const want = aggregateParam.get(e.op)
      if (want !== undefined && param !== undefined) {
        const p = checkTypes(param)
        if (p.type !== want) {
          fail(`expected type ${documentedType(want)} in aggregation parameter, got ${documentedType(p.type)}`, param.pos.start)
        }
        param = p.expr
      }
      return { expr: { ...e, expr: inner.expr, param }, type: "vector" }
    }
    case "Binary":
      return checkBinary(e)
  }
}

const checkCall = (e: Call): { expr: Expr; type: ValueType } => {
  const spec = functions.get(e.func)
  if (spec === undefined) return fail(`unknown function with name ${goQuote(e.func)}`, e.pos.start)
  const n = spec.argTypes.length
  const got = e.args.length
  if (spec.variadic === 0) {
    if (got !== n) fail(`expected ${n} argument(s) in call to ${goQuote(e.func)}, got ${got}`, e.pos.start)
  } else {
    const min = n - 1
    if (got < min) fail(`expected at least ${min} argument(s) in call to ${goQuote(e.func)}, got ${got}`, e.pos.start)
    const max = min + spec.variadic
    if (spec.variadic > 0 && got > max) {
      fail(`expected at most ${max} argument(s) in call to ${goQuote(e.func)}, got ${got}`, e.pos.start)
    }
  }
  const args = e.args.map((arg, i) => {
    const want = spec.argTypes[Math.min(i, n - 1)] ?? "vector"
    if (e.func === "info" && i === 1) {
      // The second argument of info() is a selector of labels only; it may match the empty string.
      const t = typeOf(arg)
      if (t !== "vector") fail(`expected type instant vector in call to function "info", got ${documentedType(t)}`, e.pos.start)
      if (arg.type !== "VectorSelector") return fail("expected label selectors only", arg.pos.start)
      if (arg.name !== undefined) fail("expected label selectors only, got vector selector instead", arg.pos.start)
      checkVectorSelector(arg, true)
      return arg
    }
    const checked = checkTypes(arg)
    if (checked.type !== want) {
      fail(
        `expected type ${documentedType(want)} in call to function ${goQuote(e.func)}, got ${documentedType(checked.type)}`,
        arg.pos.start
      )
    }
    if (arg.type === "MatrixSelector") {
      if (arg.vector.anchored === true && !anchoredFunctions.includes(e.func)) {
        fail(`anchored modifier can only be used with: ${anchoredFunctions.join(", ")} - not with ${e.func}`, arg.pos.start)
      }
      if (arg.vector.smoothed === true && !smoothedFunctions.includes(e.func)) {
        fail(`smoothed modifier can only be used with: ${smoothedFunctions.join(", ")} - not with ${e.func}`, arg.pos.start)
      }
    }
    return checked.expr
  })
  return { expr: { ...e, args }, type: spec.returnType }
}

const checkBinary = (e: Binary): { expr: Expr; type: ValueType } => {
  const l = checkTypes(e.lhs)
  const r = checkTypes(e.rhs)
  const at = operatorStart.get(e) ?? e.lhs.pos.end
  const comparison = comparisonOps.has(e.op)
  const set = setOps.has(e.op)
  if (e.bool && !comparison) fail("bool modifier can only be used on comparison operators", at)
  if (comparison && !e.bool && l.type === "scalar" && r.type === "scalar") {
    fail("comparisons between scalars must use BOOL modifier", at)
  }
  const m = e.matching
  if (m !== undefined && m.on) {
    const both = m.labels.find((x) => m.include.includes(x))
    if (both !== undefined) fail(`label ${goQuote(both)} must not occur in ON and GROUP clause at once`, at)
  }
  if (l.type !== "scalar" && l.type !== "vector") {
    fail("binary expression must contain only scalar and instant vector types", e.lhs.pos.start)
  }
  if (r.type !== "scalar" && r.type !== "vector") {
    fail("binary expression must contain only scalar and instant vector types", e.rhs.pos.start)
  }
  const fills = m !== undefined && (m.fillLeft !== undefined || m.fillRight !== undefined)
  let matching = m
  if (l.type !== "vector" || r.type !== "vector") {
    if (m !== undefined && m.labels.length > 0) fail("vector matching only allowed between instant vectors", e.pos.start)
    if (fills) fail("filling in missing series only allowed between instant vectors", e.pos.start)
    matching = undefined
  } else if (set && m !== undefined) {
    if (m.card === "one-to-many" || m.card === "many-to-one") fail(`no grouping allowed for ${goQuote(e.op)} operation`, e.pos.start)
    if (fills) fail("filling in missing series not allowed for set operators", e.pos.start)
  }
  if ((l.type === "scalar" || r.type === "scalar") && set) {
    fail(`set operator ${goQuote(e.op)} not allowed in binary scalar expression`, e.pos.start)
  }
  const type = l.type === "scalar" && r.type === "scalar" ? "scalar" : "vector"
  return { expr: { ...e, lhs: l.expr, rhs: r.expr, matching }, type }
}
