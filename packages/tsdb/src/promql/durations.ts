/**
 * Durations in PromQL, in milliseconds: Prometheus's duration literals (`1h30m`, `5m`, `1d`, `1w`, `1y`,
 * `100ms`) as the lexer reads them (`parseModelDuration`), the HTTP API's durations and the printer's
 * (`parseDuration`, `formatDuration`), and duration expressions (`[5m + step()]`,
 * `offset min_of(step(), 1s)`, experimental).
 *
 * Durations are milliseconds in the tree; a number where a duration is expected is seconds, and a duration
 * where a number is expected (`predict_linear(x[1h], 1h)`) is its value in seconds. A duration expression
 * of literals is folded at parse time (`durationMs`); one that uses `step()` or `range()` is kept
 * (`rangeExpr`, `stepExpr`, `offsetExpr`) and evaluated per query by `resolveDurations`.
 */
import type { Expr, VectorSelector } from "./ast.ts"
import { ParseError } from "./ast.ts"
import { goQuote } from "./format.ts"

const msPer = { y: 365 * 86_400_000, w: 7 * 86_400_000, d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000, ms: 1 }
const durationRe = /^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$/
/** The largest duration Go's `time.Duration` (int64 nanoseconds) holds, in ms. */
const durationMsMax = Math.floor(9_223_372_036_854_775_807 / 1e6)

/** A Prometheus duration (`1h30m`, `5m`, `1d`, `1w`, `1y`, `100ms`, `0`) in ms; units in descending order. */
export const parseModelDuration = (s: string): number => {
  if (s === "0") return 0
  if (s === "") throw new ParseError("empty duration string", 0)
  const m = durationRe.exec(s)
  if (m === null) throw new ParseError(`not a valid duration string: ${goQuote(s)}`, 0)
  const units = [msPer.y, msPer.w, msPer.d, msPer.h, msPer.m, msPer.s, msPer.ms]
  let ms = 0
  units.forEach((mult, i) => {
    const n = m[i + 1]
    if (n !== undefined) ms += Number(n) * mult
  })
  if (ms > durationMsMax) throw new ParseError("duration out of range", 0)
  return ms
}

/**
 * A duration in ms, as Prometheus's HTTP API reads one (`step`, `timeout`) and as the `.test` files write
 * times: a Prometheus duration (`1h30m`, `5m`, `1d`, `1w`, `1y`, `100ms`) or a plain number of seconds
 * (`30`, `1.5`, `-5`). Throws `ParseError` otherwise.
 */
export const parseDuration = (s: string): number => {
  if (/^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/.test(s)) {
    const ms = Number(s) * 1000
    if (!Number.isFinite(ms) || Math.abs(ms) > durationMsMax) {
      throw new ParseError(`cannot parse ${goQuote(s)} to a valid duration. It overflows int64`, 0)
    }
    return Math.round(ms)
  }
  try {
    return parseModelDuration(s)
  } catch {
    throw new ParseError(`cannot parse ${goQuote(s)} to a valid duration`, 0)
  }
}

/** A duration in ms as Prometheus prints one: `1h30m`, `90d` (not `12w6d`), `1y`, `1s500ms`, `0s`. */
export const formatDuration = (ms: number): string => {
  let rest = Math.trunc(ms)
  if (rest === 0) return "0s"
  let out = rest < 0 ? "-" : ""
  rest = Math.abs(rest)
  const unit = (name: string, mult: number, exact: boolean) => {
    if (exact && rest % mult !== 0) return
    const v = Math.floor(rest / mult)
    if (v > 0) {
      out += `${v}${name}`
      rest -= v * mult
    }
  }
  unit("y", msPer.y, true)
  unit("w", msPer.w, true)
  unit("d", msPer.d, false)
  unit("h", msPer.h, false)
  unit("m", msPer.m, false)
  unit("s", msPer.s, false)
  unit("ms", msPer.ms, false)
  return out
}

/** What `step()` and `range()` stand for in duration expressions: the query's step and end - start. */
export interface DurationContext {
  readonly stepMs: number
  readonly rangeMs: number
}

/** The value in seconds of a duration expression (numbers are seconds, `step()`/`range()` from `ctx`). */
const evalDuration = (e: Expr, ctx: DurationContext | undefined): number => {
  switch (e.type) {
    case "NumberLiteral":
      return e.value
    case "Paren":
      return evalDuration(e.expr, ctx)
    case "Unary":
      return e.op === "-" ? -evalDuration(e.expr, ctx) : evalDuration(e.expr, ctx)
    case "Call": {
      if (e.func === "step" || e.func === "range") {
        if (ctx === undefined) throw new Error("duration expression needs the query's step and range")
        return (e.func === "step" ? ctx.stepMs : ctx.rangeMs) / 1000
      }
      const [a, b] = e.args
      if ((e.func === "min_of" || e.func === "max_of") && a !== undefined && b !== undefined) {
        const x = evalDuration(a, ctx)
        const y = evalDuration(b, ctx)
        return e.func === "min_of" ? Math.min(x, y) : Math.max(x, y)
      }
      break
    }
    case "Binary": {
      const l = evalDuration(e.lhs, ctx)
      const r = evalDuration(e.rhs, ctx)
      switch (e.op) {
        case "+":
          return l + r
        case "-":
          return l - r
        case "*":
          return l * r
        case "/":
          if (r === 0) throw new ParseError("division by zero", e.pos.start)
          return l / r
        case "%":
          if (r === 0) throw new ParseError("modulo by zero", e.pos.start)
          return l % r
        case "^":
          return Math.pow(l, r)
        default:
          break
      }
      break
    }
    default:
      break
  }
  throw new ParseError("unexpected duration expression", e.pos.start)
}

export const dependsOnQuery = (e: Expr): boolean =>
  e.type === "Call"
    ? e.func === "step" || e.func === "range" || e.args.some(dependsOnQuery)
    : e.type === "Binary"
      ? dependsOnQuery(e.lhs) || dependsOnQuery(e.rhs)
      : e.type === "Unary" || e.type === "Paren"
        ? dependsOnQuery(e.expr)
        : false

/** A duration expression's value in ms (Go: `time.Duration(seconds*1000) * time.Millisecond`). */
export const durationMs = (e: Expr, ctx: DurationContext | undefined, allowNegative: boolean): number => {
  const seconds = evalDuration(e, ctx)
  if (!(seconds > 0) && !allowNegative) throw new ParseError("duration must be greater than 0", e.pos.start)
  // Round: seconds as a float (1.001) times 1000 is not always a whole number of ms.
  const ms = Math.round(seconds * 1000)
  if (!Number.isFinite(ms) || Math.abs(ms) > durationMsMax) {
    throw new ParseError("duration is out of range", e.pos.start)
  }
  return ms + 0 // no -0
}

/**
 * The tree with every duration expression (`offsetExpr`, `rangeExpr`, `stepExpr`) evaluated into its
 * ms field for a query with this step and range (end - start; 0 for an instant query). Needed only for
 * expressions that use `step()` or `range()`; the others are folded at parse time. Throws `ParseError`
 * for a range or step that is not positive, and for a division by zero.
 */
export const resolveDurations = (expr: Expr, ctx: DurationContext): Expr => {
  const vector = (vs: VectorSelector): VectorSelector =>
    vs.offsetExpr === undefined ? vs : { ...vs, offsetMs: durationMs(vs.offsetExpr, ctx, true) }
  const go = (e: Expr): Expr => {
    switch (e.type) {
      case "VectorSelector":
        return vector(e)
      case "MatrixSelector":
        return {
          ...e,
          vector: vector(e.vector),
          rangeMs: e.rangeExpr === undefined ? e.rangeMs : durationMs(e.rangeExpr, ctx, false)
        }
      case "Subquery":
        return {
          ...e,
          expr: go(e.expr),
          rangeMs: e.rangeExpr === undefined ? e.rangeMs : durationMs(e.rangeExpr, ctx, false),
          stepMs: e.stepExpr === undefined ? e.stepMs : durationMs(e.stepExpr, ctx, false),
          offsetMs: e.offsetExpr === undefined ? e.offsetMs : durationMs(e.offsetExpr, ctx, true)
        }
      case "Call":
        return { ...e, args: e.args.map(go) }
      case "Aggregate":
        return { ...e, expr: go(e.expr), param: e.param === undefined ? undefined : go(e.param) }
      case "Binary":
        return { ...e, lhs: go(e.lhs), rhs: go(e.rhs) }
      case "Unary":
      case "Paren":
        return { ...e, expr: go(e.expr) }
      case "NumberLiteral":
      case "StringLiteral":
        return e
    }
  }
  return go(expr)
}

/** Go's `math.Round` (half away from zero). */
export const goRound = (x: number): number => (x < 0 ? -Math.round(-x) : Math.round(x)) + 0
