/**
 * The PromQL parser and type checker: query text → the syntax tree of `ast.ts`, with Prometheus 3.x's
 * grammar, precedence, type rules and (close to verbatim) error messages.
 *
 * A lazy lexer feeds a hand-written recursive-descent parser; binary operators are parsed by precedence
 * climbing (lowest first: `or`; `and` `unless`; comparisons; `+` `-`; `*` `/` `%` `atan2`; `^`, the only
 * right-associative one). Unary `+`/`-` binds like `*`, so `-2 ^ 2` is `-(2 ^ 2)`, and a sign directly in
 * front of a number literal is folded into it. `[..]`, `offset`, `@`, `anchored` and `smoothed` are postfix
 * and bind tighter than any binary operator. Keywords are case-insensitive; function names are not.
 * As in Prometheus, syntax errors are reported first, then a separate pass checks types (`checkTypes`).
 * Unlike Prometheus, nesting is bounded: no tree `parse` returns is more than `promqlDepthMax` (limits.ts)
 * nodes deep, and a deeper query is the parse error "expression nested too deeply (more than N levels)",
 * so every recursion over the tree (here, in the evaluator, in the printer) stays far from Node's stack
 * limit.
 *
 * Besides the stable language it accepts the experimental features that Prometheus's own test corpus
 * (promqltest v3.14.0) enables: duration expressions in `[..]` and after `offset` (`[5m + step()]`,
 * `offset min_of(step(), 1s)`), the `anchored` / `smoothed` selector modifiers, and the `fill`,
 * `fill_left`, `fill_right` binary-operator modifiers. The native histogram trim operators `</` and `>/`
 * bind as comparisons do.
 *
 * Durations are milliseconds in the tree; a number where a duration is expected is seconds, and a duration
 * where a number is expected (`predict_linear(x[1h], 1h)`) is its value in seconds. A duration expression
 * of literals is folded at parse time; one that uses `step()` or `range()` is kept (`rangeExpr`,
 * `stepExpr`, `offsetExpr`) and evaluated per query by `resolveDurations`.
 *
 * Exports: `parse`, `typeOf`, `formatExpr` (canonical text, as `/api/v1/format_query`), `parseDuration`,
 * `formatDuration`, `resolveDurations`, `describeParseError` (`1:5: parse error: ...`), `functions` (the
 * function table), `goQuote`.
 */
import { anchored, type Matcher, type MatchType, matchesEmpty, RegexSyntaxError } from "../internal/labels.ts"
import { promqlDepthMax } from "../limits.ts"
import type {
  AggregateOp,
  AtModifier,
  Binary,
  BinaryOp,
  Call,
  Expr,
  MatrixSelector,
  NumberLiteral,
  Pos,
  Subquery,
  VectorMatching,
  VectorSelector,
  ValueType
} from "./ast.ts"
import { ParseError } from "./ast.ts"

// ---------------------------------------------------------------------------------------------------------
// Functions

export interface FunctionSpec {
  readonly name: string
  /** The declared argument types; extra arguments of a variadic function have the last type. */
  readonly argTypes: ReadonlyArray<ValueType>
  /**
   * 0: exactly `argTypes.length` arguments. n > 0: from `argTypes.length - 1` up to
   * `argTypes.length - 1 + n`. -1: at least `argTypes.length - 1`, no upper bound.
   */
  readonly variadic: number
  readonly returnType: ValueType
  /** Behind `--enable-feature=promql-experimental-functions` in Prometheus (accepted here). */
  readonly experimental: boolean
}

const fn = (
  name: string,
  argTypes: ReadonlyArray<ValueType>,
  returnType: ValueType,
  options: { readonly variadic?: number; readonly experimental?: boolean } = {}
): FunctionSpec => ({
  name,
  argTypes,
  variadic: options.variadic ?? 0,
  returnType,
  experimental: options.experimental ?? false
})

const V = "vector" satisfies ValueType
const M = "matrix" satisfies ValueType
const S = "scalar" satisfies ValueType
const Str = "string" satisfies ValueType

/** Every PromQL function (Prometheus 3.x), by name. */
export const functions: ReadonlyMap<string, FunctionSpec> = new Map(
  [
    fn("abs", [V], V),
    fn("absent", [V], V),
    fn("absent_over_time", [M], V),
    fn("acos", [V], V),
    fn("acosh", [V], V),
    fn("asin", [V], V),
    fn("asinh", [V], V),
    fn("atan", [V], V),
    fn("atanh", [V], V),
    fn("avg_over_time", [M], V),
    fn("ceil", [V], V),
    fn("changes", [M], V),
    fn("clamp", [V, S, S], V),
    fn("clamp_max", [V, S], V),
    fn("clamp_min", [V, S], V),
    fn("cos", [V], V),
    fn("cosh", [V], V),
    fn("count_over_time", [M], V),
    fn("day_of_month", [V], V, { variadic: 1 }),
    fn("day_of_week", [V], V, { variadic: 1 }),
    fn("day_of_year", [V], V, { variadic: 1 }),
    fn("days_in_month", [V], V, { variadic: 1 }),
    fn("deg", [V], V),
    fn("delta", [M], V),
    fn("deriv", [M], V),
    fn("double_exponential_smoothing", [M, S, S], V, { experimental: true }),
    fn("end", [], S, { experimental: true }),
    fn("exp", [V], V),
    fn("first_over_time", [M], V, { experimental: true }),
    fn("floor", [V], V),
    fn("histogram_avg", [V], V),
    fn("histogram_count", [V], V),
    fn("histogram_fraction", [S, S, V], V),
    fn("histogram_quantile", [S, V], V),
    fn("histogram_quantiles", [V, Str, S, S], V, { variadic: 9, experimental: true }),
    fn("histogram_stddev", [V], V),
    fn("histogram_stdvar", [V], V),
    fn("histogram_sum", [V], V),
    fn("hour", [V], V, { variadic: 1 }),
    fn("idelta", [M], V),
    fn("increase", [M], V),
    fn("info", [V, V], V, { variadic: 1, experimental: true }),
    fn("integral", [M, S], V, { variadic: 1, experimental: true }),
    fn("irate", [M], V),
    fn("label_join", [V, Str, Str, Str], V, { variadic: -1 }),
    fn("label_replace", [V, Str, Str, Str, Str], V),
    fn("last_over_time", [M], V),
    fn("ln", [V], V),
    fn("log10", [V], V),
    fn("log2", [V], V),
    fn("mad_over_time", [M], V, { experimental: true }),
    fn("max_of", [S, S], S, { experimental: true }),
    fn("max_over_time", [M], V),
    fn("min_of", [S, S], S, { experimental: true }),
    fn("min_over_time", [M], V),
    fn("minute", [V], V, { variadic: 1 }),
    fn("month", [V], V, { variadic: 1 }),
    fn("pi", [], S),
    fn("predict_linear", [M, S], V),
    fn("present_over_time", [M], V),
    fn("quantile_over_time", [S, M], V),
    fn("rad", [V], V),
    fn("range", [], S, { experimental: true }),
    fn("rate", [M], V),
    fn("resets", [M], V),
    fn("round", [V, S], V, { variadic: 1 }),
    fn("scalar", [V], S),
    fn("sgn", [V], V),
    fn("sin", [V], V),
    fn("sinh", [V], V),
    fn("sort", [V], V),
    fn("sort_by_label", [V, Str], V, { variadic: -1, experimental: true }),
    fn("sort_by_label_desc", [V, Str], V, { variadic: -1, experimental: true }),
    fn("sort_desc", [V], V),
    fn("sqrt", [V], V),
    fn("start", [], S, { experimental: true }),
    fn("start_timestamp", [V], V, { experimental: true }),
    fn("stddev_over_time", [M], V),
    fn("stdvar_over_time", [M], V),
    fn("step", [], S, { experimental: true }),
    fn("sum_over_time", [M], V),
    fn("tan", [V], V),
    fn("tanh", [V], V),
    fn("time", [], S),
    fn("timestamp", [V], V),
    fn("ts_of_first_over_time", [M], V, { experimental: true }),
    fn("ts_of_last_over_time", [M], V, { experimental: true }),
    fn("ts_of_max_over_time", [M], V, { experimental: true }),
    fn("ts_of_min_over_time", [M], V, { experimental: true }),
    fn("vector", [S], V),
    fn("year", [V], V, { variadic: 1 })
  ].map((f) => [f.name, f] as const)
)

/** Functions whose range-vector argument may carry `anchored` / `smoothed`. */
const anchoredFunctions: ReadonlyArray<string> = ["changes", "delta", "increase", "rate", "resets"]
const smoothedFunctions: ReadonlyArray<string> = ["delta", "increase", "rate"]

const aggregateOps: ReadonlySet<string> = new Set<AggregateOp>([
  "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
  "quantile", "limitk", "limit_ratio"
])
/** Aggregations with a parameter before the body, and its type. */
const aggregateParam: ReadonlyMap<string, ValueType> = new Map<AggregateOp, ValueType>([
  ["topk", S], ["bottomk", S], ["quantile", S], ["limitk", S], ["limit_ratio", S], ["count_values", Str]
])

// ---------------------------------------------------------------------------------------------------------
// Durations

const msPer = { y: 365 * 86_400_000, w: 7 * 86_400_000, d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000, ms: 1 }
const durationRe = /^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$/
/** The largest duration Go's `time.Duration` (int64 nanoseconds) holds, in ms. */
const durationMsMax = Math.floor(9_223_372_036_854_775_807 / 1e6)

/** A Prometheus duration (`1h30m`, `5m`, `1d`, `1w`, `1y`, `100ms`, `0`) in ms; units in descending order. */
const parseModelDuration = (s: string): number => {
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

const dependsOnQuery = (e: Expr): boolean =>
  e.type === "Call"
    ? e.func === "step" || e.func === "range" || e.args.some(dependsOnQuery)
    : e.type === "Binary"
      ? dependsOnQuery(e.lhs) || dependsOnQuery(e.rhs)
      : e.type === "Unary" || e.type === "Paren"
        ? dependsOnQuery(e.expr)
        : false

/** A duration expression's value in ms (Go: `time.Duration(seconds*1000) * time.Millisecond`). */
const durationMs = (e: Expr, ctx: DurationContext | undefined, allowNegative: boolean): number => {
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

// ---------------------------------------------------------------------------------------------------------
// Lexer

type TokenKind =
  | "number"
  | "duration"
  | "string"
  | "identifier"
  | "operator"
  | "("
  | ")"
  | "{"
  | "}"
  | "["
  | "]"
  | ","
  | ":"
  | "@"
  | "eof"

interface Token {
  readonly kind: TokenKind
  /** The source text. */
  readonly text: string
  readonly start: number
  readonly end: number
  /** number: its value; duration: ms. */
  readonly num: number
  /** string: the unquoted value. */
  readonly str: string
}

/** Keywords (matched case-insensitively) and how Prometheus describes them in errors. */
const keywordDesc: ReadonlyMap<string, string> = new Map([
  ...["and", "or", "unless", "atan2"].map((k) => [k, `<op:${k}>`] as const),
  ...[...aggregateOps].map((k) => [k, `<aggr:${k}>`] as const),
  ...["offset", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "anchored", "smoothed"].map(
    (k) => [k, `<${k}>`] as const
  )
])
/** Keywords that cannot name a metric. */
const reservedWords: ReadonlySet<string> = new Set(["on", "ignoring", "group_left", "group_right", "bool", "atan2"])

const isDigit = (c: string | undefined) => c !== undefined && c >= "0" && c <= "9"
const isAlpha = (c: string | undefined) =>
  c !== undefined && ((c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || c === "_")
const isAlphaNumeric = (c: string | undefined) => isAlpha(c) || isDigit(c)
const isSpace = (c: string | undefined) => c === " " || c === "\t" || c === "\n" || c === "\r"

/** A Go rune literal (`%q` of a rune), for error messages. */
const quoteRune = (c: string) => (c === "'" ? "'\\''" : `'${goQuote(c).slice(1, -1)}'`)

class Lexer {
  private readonly input: string
  private pos = 0
  private parenDepth = 0
  private braceOpen = false
  private bracketOpen = false

  constructor(input: string) {
    this.input = input
  }

  private fail(message: string, at: number): never {
    throw new ParseError(message, at)
  }

  private token(kind: TokenKind, start: number, num = 0, str = ""): Token {
    return { kind, text: this.input.slice(start, this.pos), start, end: this.pos, num, str }
  }

  next(): Token {
    const s = this.input
    for (;;) {
      while (isSpace(s[this.pos])) this.pos++
      if (s[this.pos] !== "#") break
      while (this.pos < s.length && s[this.pos] !== "\n") this.pos++
    }
    const start = this.pos
    const c = s[this.pos]
    if (c === undefined) {
      if (this.braceOpen) this.fail("unexpected end of input inside braces", start)
      if (this.parenDepth > 0) this.fail("unclosed left parenthesis", start)
      if (this.bracketOpen) this.fail("unclosed left bracket", start)
      return this.token("eof", start)
    }
    this.pos++
    const peek = s[this.pos]
    switch (c) {
      case ",":
        return this.token(",", start)
      case "(":
        this.parenDepth++
        return this.token("(", start)
      case ")":
        if (--this.parenDepth < 0) this.fail("unexpected right parenthesis ')'", start)
        return this.token(")", start)
      case "{":
        if (this.braceOpen) this.fail("unexpected left brace '{'", start)
        this.braceOpen = true
        return this.token("{", start)
      case "}":
        if (!this.braceOpen) this.fail("unexpected right brace '}'", start)
        this.braceOpen = false
        return this.token("}", start)
      case "[":
        if (this.bracketOpen) this.fail("unexpected left bracket '['", start)
        this.bracketOpen = true
        return this.token("[", start)
      case "]":
        if (!this.bracketOpen) this.fail("unexpected right bracket ']'", start)
        this.bracketOpen = false
        return this.token("]", start)
      case "@":
        return this.token("@", start)
      case "+":
      case "-":
      case "*":
      case "/":
      case "%":
      case "^":
        return this.token("operator", start)
      case "=":
        if (peek === "=" || peek === "~") this.pos++
        return this.token("operator", start)
      case "!":
        if (peek !== "=" && peek !== "~") {
          this.fail(`unexpected character after '!': ${peek === undefined ? "EOF" : quoteRune(peek)}`, start)
        }
        this.pos++
        return this.token("operator", start)
      case "<":
      case ">":
        if (peek === "=" || peek === "/") this.pos++
        return this.token("operator", start)
      case '"':
      case "'":
      case "`":
        return this.lexString(c, start)
      case ":":
        if (this.bracketOpen) return this.token(":", start)
        return this.lexIdentifier(start)
      default:
        if (isDigit(c) || (c === "." && isDigit(peek))) return this.lexNumber(start)
        if (isAlpha(c)) return this.lexIdentifier(start)
        return this.fail(`unexpected character: ${quoteRune(c)}`, start)
    }
  }

  private lexIdentifier(start: number): Token {
    const s = this.input
    // Inside braces and brackets a colon is not part of a name.
    const colon = !this.braceOpen && !this.bracketOpen
    while (isAlphaNumeric(s[this.pos]) || (colon && s[this.pos] === ":")) this.pos++
    const text = s.slice(start, this.pos)
    const lower = text.toLowerCase()
    if (!this.braceOpen && (lower === "inf" || lower === "nan")) return this.token("number", start, lower === "inf" ? Infinity : NaN)
    return this.token("identifier", start)
  }

  /** A number (decimal, hex, exponent) or a duration (`5m`, `1h30m`, `100ms`). */
  private lexNumber(start: number): Token {
    const s = this.input
    const accept = (chars: string) => {
      const c = s[this.pos]
      if (c !== undefined && chars.includes(c)) {
        this.pos++
        return true
      }
      return false
    }
    const acceptRun = (chars: string) => {
      while (accept(chars)) {
        // consume
      }
    }
    let digits = "0123456789"
    let hex = false
    if (s[this.pos - 1] === "0" && accept("xX")) {
      digits = "0123456789abcdefABCDEF"
      hex = true
    } else {
      this.pos-- // rescan the first digit (or the dot)
    }
    acceptRun(digits)
    if (accept(".")) acceptRun(digits)
    if (!hex && accept("eE")) {
      accept("+-")
      acceptRun("0123456789")
    }
    if (!isAlphaNumeric(s[this.pos])) {
      const text = s.slice(start, this.pos)
      const value = parseNumber(text)
      if (value === undefined) this.fail(`error parsing number: ${goQuote(text)}`, start)
      return this.token("number", start, value)
    }
    // A duration: a unit, then optionally more numbers and units (y only first).
    if (accept("smhdwy")) {
      accept("s")
      let ok = true
      while (ok && accept("0123456789")) {
        acceptRun("0123456789")
        ok = accept("smhdw")
        accept("s")
      }
      if (ok && !isAlphaNumeric(s[this.pos])) {
        const text = s.slice(start, this.pos)
        let ms: number
        try {
          ms = parseModelDuration(text)
        } catch (e) {
          this.fail(e instanceof Error ? e.message : String(e), start)
        }
        return this.token("duration", start, ms)
      }
    }
    while (isAlphaNumeric(s[this.pos])) this.pos++
    return this.fail(`bad number or duration syntax: ${goQuote(s.slice(start, this.pos))}`, start)
  }

  private lexString(quote: string, start: number): Token {
    const s = this.input
    if (quote === "`") {
      const close = s.indexOf("`", this.pos)
      if (close < 0) this.fail("unterminated raw string", start)
      this.pos = close + 1
      return this.token("string", start, 0, s.slice(start + 1, close))
    }
    const bytes: Array<number> = []
    const encoder = new TextEncoder()
    const hexDigits = (n: number, base: number): number => {
      const digits = s.slice(this.pos, this.pos + n)
      const re = base === 8 ? /^[0-7]+$/ : /^[0-9a-fA-F]+$/
      if (digits.length < n || !re.test(digits)) {
        this.fail(`unknown escape sequence: ${goQuote(s.slice(this.pos - 2, this.pos + n))}`, this.pos - 2)
      }
      this.pos += n
      return parseInt(digits, base)
    }
    for (;;) {
      const c = s[this.pos]
      if (c === undefined || c === "\n") return this.fail("unterminated quoted string", start)
      this.pos++
      if (c === quote) break
      if (c !== "\\") {
        const cp = s.codePointAt(this.pos - 1) ?? 0
        const ch = String.fromCodePoint(cp)
        this.pos += ch.length - 1
        bytes.push(...encoder.encode(ch))
        continue
      }
      const e = s[this.pos]
      if (e === undefined || e === "\n") return this.fail("escape sequence not terminated", this.pos - 1)
      this.pos++
      const simple: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, "\\": 92 }
      const code = simple[e]
      if (code !== undefined) bytes.push(code)
      else if (e === quote) bytes.push(quote.charCodeAt(0))
      else if (e >= "0" && e <= "7") {
        this.pos--
        const v = hexDigits(3, 8)
        if (v > 255) this.fail(`octal escape value > 255: ${v}`, this.pos - 4)
        bytes.push(v)
      } else if (e === "x") bytes.push(hexDigits(2, 16))
      else if (e === "u" || e === "U") {
        const v = hexDigits(e === "u" ? 4 : 8, 16)
        if (v > 0x10ffff || (v >= 0xd800 && v < 0xe000)) {
          this.fail("escape sequence is an invalid Unicode code point", this.pos - (e === "u" ? 6 : 10))
        }
        bytes.push(...encoder.encode(String.fromCodePoint(v)))
      } else this.fail(`unknown escape sequence U+${e.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")} ${quoteRune(e)}`, this.pos - 2)
    }
    return this.token("string", start, 0, decodeGoBytes(bytes))
  }
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true })

/**
 * A Go string's bytes as a JS string. Go strings may hold bytes that are not UTF-8 (`"\xc5"`); each such
 * byte becomes the lone surrogate U+DC80 + (byte - 0x80) (Python's "surrogateescape"), so that `goQuote`
 * prints it back as Go does (`\xc5`) and it never equals a valid string.
 */
export const decodeGoBytes = (bytes: ReadonlyArray<number>): string => {
  const all = Uint8Array.from(bytes)
  try {
    return strictUtf8.decode(all)
  } catch {
    let out = ""
    let i = 0
    while (i < all.length) {
      const b = all[i]!
      const n = b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0
      if (n > 0 && i + n <= all.length) {
        try {
          out += strictUtf8.decode(all.subarray(i, i + n))
          i += n
          continue
        } catch {
          // Not a valid sequence: the lead byte alone is escaped below.
        }
      }
      out += String.fromCharCode(0xdc00 + b)
      i++
    }
    return out
  }
}

/** Go's `strconv.ParseInt(s, 0, 64)`, else `strconv.ParseFloat(s, 64)`, for what the lexer accepts. */
const parseNumber = (text: string): number | undefined => {
  if (/^0[xX][0-9a-fA-F]+$/.test(text)) return parseInt(text.slice(2), 16)
  if (/^0[xX]/.test(text)) return undefined
  if (/^0[0-7]+$/.test(text)) return parseInt(text, 8)
  const v = Number(text)
  return Number.isNaN(v) ? undefined : v
}

// ---------------------------------------------------------------------------------------------------------
// Parser

type BinaryToken = BinaryOp

const precedence: ReadonlyMap<string, number> = new Map<BinaryToken, number>([
  ["or", 1],
  ["and", 2],
  ["unless", 2],
  ["==", 3],
  ["!=", 3],
  ["<", 3],
  ["<=", 3],
  [">", 3],
  [">=", 3],
  ["</", 3],
  [">/", 3],
  ["+", 4],
  ["-", 4],
  ["*", 5],
  ["/", 5],
  ["%", 5],
  ["atan2", 5],
  ["^", 6]
])
const unaryPrecedence = 6 // the operand of unary +/- takes only `^` (and postfix modifiers)
const comparisonOps: ReadonlySet<string> = new Set(["==", "!=", "<", "<=", ">", ">="])
const setOps: ReadonlySet<string> = new Set(["and", "or", "unless"])

const legacyLabelName = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const legacyMetricName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/

class Parser {
  private readonly lexer: Lexer
  private readonly buffer: Array<Token> = []
  /** The end of the last consumed token. */
  private prevEnd = 0
  /**
   * How many expressions (`parseExpr`, `parseDurationExpr`) are being parsed, one inside the other: the
   * depth in the tree at which the one being parsed will sit, at least (see `nestingCheck`).
   */
  private depth = 0
  /** Whether a duration was written as an expression (arithmetic, parentheses, `step()`...): `promql-duration-expr`. */
  durationExpressions = false

  constructor(input: string) {
    this.lexer = new Lexer(input)
  }

  // --- tokens

  private peek(n = 0): Token {
    while (this.buffer.length <= n) {
      const last = this.buffer[this.buffer.length - 1]
      this.buffer.push(last?.kind === "eof" ? last : this.lexer.next())
    }
    return this.buffer[n]!
  }

  private next(): Token {
    const t = this.peek()
    this.buffer.shift()
    this.prevEnd = t.end
    return t
  }

  private isWord(t: Token, ...words: ReadonlyArray<string>) {
    return t.kind === "identifier" && words.includes(t.text.toLowerCase())
  }

  private isOp(t: Token, ...ops: ReadonlyArray<string>) {
    return t.kind === "operator" && ops.includes(t.text)
  }

  private unexpected(t: Token, context?: string, expected?: string): never {
    let msg = `unexpected ${describe(t)}`
    if (context !== undefined) msg += ` in ${context}`
    if (expected !== undefined) msg += `, expected ${expected}`
    throw new ParseError(msg, t.start)
  }

  private expect(kind: TokenKind, context?: string, expected?: string): Token {
    const t = this.peek()
    if (t.kind !== kind) this.unexpected(t, context, expected ?? `"${kind}"`)
    return this.next()
  }

  // --- nesting: no tree deeper than `promqlDepthMax` (limits.ts), and no recursion deeper either
  //
  // Every recursion of the parser goes through `parseExpr` or `parseDurationExpr`, which count `depth`
  // (the query is at depth 1) and refuse to start an expression deeper than the limit. An expression
  // parsed at depth d is a child of one parsed at depth d - 1 (a sign folded into a number literal
  // aside), so a tree that `parseExpr` or `parseDurationExpr` returns at depth d must be at most
  // `promqlDepthMax - d + 1` high. Nodes built from the operands of one recursion level, which add height
  // without recursing (a left-deep chain `a + b + c`, a subquery `x[5m:]`, `offset`), are checked by
  // `nestingCheck`; the others (parentheses, signs, calls, aggregations) are one higher than a child
  // parsed one level deeper, which holds by induction.

  /** Starts an expression at `depth + 1`; `leave` ends it. */
  private enter(): void {
    if (++this.depth > promqlDepthMax) throw nestedTooDeeply(this.peek().start)
  }

  private leave(): void {
    this.depth--
  }

  /** `e`, built at the current depth; fails at `at` if it is higher than the depth left. */
  private nestingCheck<E extends Expr>(e: E, at: number): E {
    if (this.depth - 1 + heightOf(e) > promqlDepthMax) throw nestedTooDeeply(at)
    return e
  }

  // --- expressions

  parseQuery(): Expr {
    if (this.peek().kind === "eof") throw new ParseError("no expression found in input", 0)
    const e = this.parseExpr(0)
    const t = this.peek()
    if (t.kind !== "eof") this.unexpected(t)
    return e
  }

  private binaryOp(t: Token): BinaryToken | undefined {
    if (t.kind === "operator") return precedence.has(t.text) ? (t.text as BinaryToken) : undefined
    if (t.kind === "identifier") {
      const w = t.text.toLowerCase()
      if (w === "and" || w === "or" || w === "unless" || w === "atan2") return w
    }
    return undefined
  }

  private parseExpr(minPrec: number): Expr {
    this.enter()
    try {
      let lhs = this.parseUnary()
      for (;;) {
        const opTok = this.peek()
        const op = this.binaryOp(opTok)
        const prec = op === undefined ? undefined : precedence.get(op)
        if (op === undefined || prec === undefined || prec < minPrec) return lhs
        this.next()
        const mods = this.parseBinaryModifiers(op)
        const rhs = this.parseExpr(op === "^" ? prec : prec + 1)
        lhs = this.nestingCheck(binary(op, lhs, rhs, mods), opTok.start)
        operatorStart.set(lhs, opTok.start)
      }
    } finally {
      this.leave()
    }
  }

  private parseUnary(): Expr {
    const t = this.peek()
    if (this.isOp(t, "+", "-")) {
      this.next()
      const operand = this.parseExpr(unaryPrecedence)
      return unary(t.text === "-" ? "-" : "+", operand, t.start)
    }
    return this.parsePostfix(this.parsePrimary())
  }

  private parsePrimary(): Expr {
    const t = this.peek()
    switch (t.kind) {
      case "number":
        this.next()
        return { type: "NumberLiteral", value: t.num, pos: pos(t.start, t.end) }
      case "duration":
        this.next()
        return { type: "NumberLiteral", value: t.num / 1000, pos: pos(t.start, t.end), duration: true }
      case "string":
        this.next()
        return { type: "StringLiteral", value: t.str, pos: pos(t.start, t.end) }
      case "(": {
        this.next()
        const inner = this.parseExpr(0)
        const close = this.expect(")", undefined, '")"')
        return { type: "Paren", expr: inner, pos: pos(t.start, close.end) }
      }
      case "{":
        return this.parseVectorSelector(undefined)
      case "identifier":
        return this.parseIdentifier()
      default:
        return this.unexpected(t)
    }
  }

  /** A function call, an aggregation, or a metric name (keywords may name metrics where unambiguous). */
  private parseIdentifier(): Expr {
    const t = this.peek()
    const word = t.text.toLowerCase()
    const after = this.peek(1)
    if (aggregateOps.has(word) && (after.kind === "(" || this.isWord(after, "by", "without"))) {
      return this.parseAggregate()
    }
    if (reservedWords.has(word)) this.unexpected(t)
    if (after.kind === "(") {
      if (t.text.includes(":")) this.unexpected(after)
      const spec = functions.get(t.text) ?? (["start", "end", "step", "range"].includes(word) ? functions.get(word) : undefined)
      if (spec === undefined) throw new ParseError(`unknown function with name ${goQuote(t.text)}`, t.start)
      this.next()
      const { args, end } = this.parseCallArgs()
      return { type: "Call", func: spec.name, args, pos: pos(t.start, end) }
    }
    this.next()
    return this.parseVectorSelector(t)
  }

  private parseCallArgs(): { args: ReadonlyArray<Expr>; end: number } {
    this.expect("(")
    const args: Array<Expr> = []
    if (this.peek().kind !== ")") {
      for (;;) {
        args.push(this.parseExpr(0))
        const t = this.peek()
        if (t.kind === ")") break
        if (t.kind !== ",") this.unexpected(t, "function call", '"," or ")"')
        this.next()
        if (this.peek().kind === ")") throw new ParseError("trailing commas not allowed in function call args", t.start)
      }
    }
    return { args, end: this.next().end }
  }

  private parseAggregate(): Expr {
    const opTok = this.next()
    const op = opTok.text.toLowerCase() as AggregateOp
    let grouping: ReadonlyArray<string> = []
    let without = false
    let hasGrouping = false
    const parseGrouping = () => {
      without = this.next().text.toLowerCase() === "without"
      grouping = this.parseGroupingLabels().labels
      hasGrouping = true
    }
    if (this.isWord(this.peek(), "by", "without")) parseGrouping()
    if (this.peek().kind !== "(") this.unexpected(this.peek(), "aggregation")
    const { args, end: bodyEnd } = this.parseCallArgs()
    let end = bodyEnd
    if (!hasGrouping && this.isWord(this.peek(), "by", "without")) {
      parseGrouping()
      end = this.prevEnd
    }
    const p = pos(opTok.start, end)
    if (args.length === 0) throw new ParseError("no arguments for aggregate expression provided", p.start)
    const wanted = aggregateParam.has(op) ? 2 : 1
    if (args.length !== wanted) {
      throw new ParseError(
        `wrong number of arguments for aggregate expression provided, expected ${wanted}, got ${args.length}`,
        p.start
      )
    }
    return {
      type: "Aggregate",
      op,
      expr: args[wanted - 1]!,
      param: wanted === 2 ? args[0] : undefined,
      grouping,
      without,
      pos: p
    }
  }

  /** `(label, "quoted label", ...)`, a trailing comma allowed. */
  private parseGroupingLabels(): { labels: ReadonlyArray<string>; end: number } {
    const open = this.peek()
    if (open.kind !== "(") this.unexpected(open, "grouping opts", '"("')
    this.next()
    const labels: Array<string> = []
    for (;;) {
      const t = this.peek()
      if (t.kind === ")") break
      if (t.kind === "identifier") {
        labels.push(t.text)
      } else if (t.kind === "string") {
        if (t.str === "") throw new ParseError(`invalid label name for grouping: ${goQuote(t.str)}`, t.start)
        labels.push(t.str)
      } else {
        this.unexpected(t, "grouping opts", "label")
      }
      this.next()
      const sep = this.peek()
      if (sep.kind === ",") this.next()
      else if (sep.kind !== ")") this.unexpected(sep, "grouping opts", '"," or ")"')
    }
    const close = this.next()
    return { labels, end: close.end }
  }

  /** `bool`, `on (..)` / `ignoring (..)`, `group_left (..)` / `group_right (..)`, `fill*(v)`. */
  private parseBinaryModifiers(op: BinaryToken): Modifiers {
    let bool = false
    let on: boolean | undefined
    let labels: ReadonlyArray<string> = []
    let card: VectorMatching["card"] = setOps.has(op) ? "many-to-many" : "one-to-one"
    let include: ReadonlyArray<string> = []
    let fillLeft: number | undefined
    let fillRight: number | undefined
    if (this.isWord(this.peek(), "bool")) {
      this.next()
      bool = true
    }
    if (this.isWord(this.peek(), "on", "ignoring")) {
      on = this.next().text.toLowerCase() === "on"
      labels = this.parseGroupingLabels().labels
      const g = this.peek()
      if (this.isWord(g, "group_left", "group_right")) {
        this.next()
        card = g.text.toLowerCase() === "group_left" ? "many-to-one" : "one-to-many"
        if (this.peek().kind === "(") include = this.parseGroupingLabels().labels
      }
    }
    while (this.isWord(this.peek(), "fill", "fill_left", "fill_right") && this.peek(1).kind === "(") {
      const kw = this.next()
      const which = kw.text.toLowerCase()
      this.next()
      const v = this.parseSignedNumber("fill modifier")
      this.expect(")", "fill modifier", '")"')
      const left = which !== "fill_right"
      const right = which !== "fill_left"
      if ((left && fillLeft !== undefined) || (right && fillRight !== undefined)) {
        throw new ParseError("fill modifier may not be set multiple times", kw.start)
      }
      if (left) fillLeft = v
      if (right) fillRight = v
    }
    return { bool, on, labels, card, include, fillLeft, fillRight }
  }

  /** A number literal with an optional sign (`@ -5`, `fill(-Inf)`); durations count as seconds. */
  private parseSignedNumber(context: string): number {
    let sign = 1
    if (this.isOp(this.peek(), "+", "-")) sign = this.next().text === "-" ? -1 : 1
    const t = this.peek()
    if (t.kind !== "number" && t.kind !== "duration") this.unexpected(t, context, "number")
    this.next()
    return t.kind === "number" ? sign * t.num : (sign * t.num) / 1000
  }

  /** `name`, `name{...}` or `{...}`; `nameTok` was consumed already. */
  private parseVectorSelector(nameTok: Token | undefined): VectorSelector {
    const matchers: Array<Matcher> = []
    const name = nameTok?.text
    if (name !== undefined) matchers.push({ name: "__name__", type: "=", value: name })
    let start = nameTok?.start
    let end = nameTok?.end ?? 0
    if (this.peek().kind === "{") {
      const open = this.next()
      start ??= open.start
      for (;;) {
        const t = this.peek()
        if (t.kind === "}") break
        let label: string
        if (t.kind === "identifier" && legacyLabelName.test(t.text)) label = t.text
        else if (t.kind === "string") label = t.str
        else return this.unexpected(t, "label matching", 'identifier or "}"')
        this.next()
        const opTok = this.peek()
        if (t.kind === "string" && (opTok.kind === "," || opTok.kind === "}")) {
          // `{"metric.name", ...}`: a quoted metric name.
          matchers.push({ name: "__name__", type: "=", value: label })
        } else {
          if (!this.isOp(opTok, "=", "!=", "=~", "!~")) {
            this.unexpected(opTok, "label matching", "label matching operator")
          }
          this.next()
          const v = this.peek()
          if (v.kind !== "string") this.unexpected(v, "label matching", "string")
          this.next()
          matchers.push(newMatcher(label, opTok.text as MatchType, v.str, t.start))
        }
        const sep = this.peek()
        if (sep.kind === ",") this.next()
        else if (sep.kind !== "}") this.unexpected(sep, "label matching", '"," or "}"')
      }
      end = this.next().end
    }
    return {
      type: "VectorSelector",
      name,
      matchers,
      offsetMs: 0,
      at: undefined,
      pos: pos(start ?? 0, end)
    }
  }

  // --- postfix: [range], [range:step], offset, @, anchored, smoothed

  private parsePostfix(primary: Expr): Expr {
    let e = primary
    for (;;) {
      const t = this.peek()
      if (t.kind === "[") e = this.parseRange(e)
      else if (this.isWord(t, "offset")) e = this.parseOffset(e)
      else if (t.kind === "@") e = this.parseAt(e)
      else if (this.isWord(t, "anchored", "smoothed")) e = this.parseExtendedModifier(e)
      else return e
      this.nestingCheck(e, t.start)
    }
  }

  private parseRange(e: Expr): Expr {
    const open = this.next()
    const range = this.parseDurationExpr()
    const t = this.peek()
    if (t.kind === "]") {
      const close = this.next()
      let err: string | undefined
      if (e.type !== "VectorSelector") err = "ranges only allowed for vector selectors"
      else if (e.offsetMs !== 0 || e.offsetExpr !== undefined) err = "no offset modifiers allowed before range"
      else if (e.at !== undefined) err = "no @ modifiers allowed before range"
      if (err !== undefined || e.type !== "VectorSelector") throw new ParseError(err ?? "", open.start)
      const r = durationField(range, false)
      return withOptional<MatrixSelector>(
        { type: "MatrixSelector", vector: e, rangeMs: r.ms, pos: pos(e.pos.start, close.end) },
        "rangeExpr",
        r.expr
      )
    }
    if (t.kind !== ":") this.unexpected(t, "subquery or range", '":" or "]"')
    this.next()
    let step: DurationField | undefined
    if (this.peek().kind !== "]") step = durationField(this.parseDurationExpr(), false)
    const close = this.peek()
    if (close.kind !== "]") this.unexpected(close, "subquery selector", '"]"')
    this.next()
    const r = durationField(range, false)
    let sq: Subquery = {
      type: "Subquery",
      expr: e,
      rangeMs: r.ms,
      stepMs: step === undefined || (step.ms === 0 && step.expr === undefined) ? undefined : step.ms,
      offsetMs: 0,
      at: undefined,
      pos: pos(e.pos.start, close.end)
    }
    sq = withOptional(sq, "rangeExpr", r.expr)
    return withOptional(sq, "stepExpr", step?.expr)
  }

  private parseOffset(e: Expr): Expr {
    const kw = this.next()
    const startTok = this.peek()
    let sign: "+" | "-" | undefined
    if (this.isOp(startTok, "+", "-")) {
      this.next()
      sign = startTok.text === "-" ? "-" : "+"
    }
    const operand = this.parseDurationPrimary("offset", "number or duration")
    const d = unary(sign ?? "+", operand, startTok.start)
    const expr = sign === undefined ? operand : d
    const f = durationField(expr, true)
    const end = expr.pos.end
    const set = <T extends VectorSelector | Subquery>(x: T): T => {
      if (x.offsetMs !== 0 || x.offsetExpr !== undefined) {
        throw new ParseError("offset may not be set multiple times", kw.start)
      }
      return withOptional({ ...x, offsetMs: f.ms }, "offsetExpr", f.expr)
    }
    switch (e.type) {
      case "VectorSelector":
        return { ...set(e), pos: pos(e.pos.start, end) }
      case "MatrixSelector":
        return { ...e, vector: set(e.vector), pos: pos(e.pos.start, end) }
      case "Subquery":
        return { ...set(e), pos: pos(e.pos.start, end) }
      default:
        throw new ParseError(
          "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery",
          kw.start
        )
    }
  }

  private parseAt(e: Expr): Expr {
    const at = this.next()
    let value: AtModifier
    const t = this.peek()
    let end: number
    if (this.isWord(t, "start", "end")) {
      this.next()
      this.expect("(", "@", '"("')
      end = this.expect(")", "@", '")"').end
      value = t.text.toLowerCase() === "start" ? "start" : "end"
    } else {
      if (!(t.kind === "number" || t.kind === "duration" || this.isOp(t, "+", "-"))) this.unexpected(t, "@", "timestamp")
      const seconds = this.parseSignedNumber("@")
      end = this.prevEnd
      if (!Number.isFinite(seconds) || Math.abs(seconds) >= 9.223372036854776e18) {
        throw new ParseError(`timestamp out of bounds for @ modifier: ${formatGoFloat(seconds)}`, at.start)
      }
      value = goRound(seconds * 1000)
    }
    const set = <T extends VectorSelector | Subquery>(x: T): T => {
      if (x.at !== undefined) throw new ParseError("@ <timestamp> may not be set multiple times", at.start)
      return { ...x, at: value }
    }
    switch (e.type) {
      case "VectorSelector":
        return { ...set(e), pos: pos(e.pos.start, end) }
      case "MatrixSelector":
        return { ...e, vector: set(e.vector), pos: pos(e.pos.start, end) }
      case "Subquery":
        return { ...set(e), pos: pos(e.pos.start, end) }
      default:
        throw new ParseError(
          "@ modifier must be preceded by an instant vector selector or range vector selector or a subquery",
          at.start
        )
    }
  }

  private parseExtendedModifier(e: Expr): Expr {
    const t = this.next()
    const which = t.text.toLowerCase() === "anchored" ? "anchored" : "smoothed"
    const other = which === "anchored" ? "smoothed" : "anchored"
    const set = (vs: VectorSelector): VectorSelector => {
      if (vs[other] === true) throw new ParseError("anchored and smoothed modifiers cannot be used together", t.start)
      return { ...vs, [which]: true }
    }
    switch (e.type) {
      case "VectorSelector":
        return { ...set(e), pos: pos(e.pos.start, t.end) }
      case "MatrixSelector":
        return { ...e, vector: set(e.vector), pos: pos(e.pos.start, t.end) }
      case "Subquery":
        throw new ParseError(`${which} modifier is not supported for subqueries`, t.start)
      default:
        throw new ParseError(
          `${which} modifier must be preceded by an instant vector selector or range vector selector`,
          t.start
        )
    }
  }

  // --- duration expressions: numbers (seconds), durations, + - * / % ^, (..), step(), range(), min_of, max_of

  private parseDurationExpr(minPrec = 0): Expr {
    this.enter()
    try {
      let lhs: Expr
      const t = this.peek()
      if (this.isOp(t, "+", "-")) {
        this.next()
        lhs = unary(t.text === "-" ? "-" : "+", this.parseDurationExpr(unaryPrecedence), t.start)
      } else {
        lhs = this.parseDurationPrimary("duration expression", "number or duration")
      }
      for (;;) {
        const opTok = this.peek()
        if (!this.isOp(opTok, "+", "-", "*", "/", "%", "^")) return lhs
        const op = opTok.text as BinaryOp
        const prec = precedence.get(op) ?? 0
        if (prec < minPrec) return lhs
        this.next()
        const rhs = this.parseDurationExpr(op === "^" ? prec : prec + 1)
        this.durationExpressions = true
        lhs = this.nestingCheck<Expr>(
          { type: "Binary", op, lhs, rhs, bool: false, matching: undefined, pos: pos(lhs.pos.start, rhs.pos.end) },
          opTok.start
        )
      }
    } finally {
      this.leave()
    }
  }

  private parseDurationPrimary(context: string, expected: string): Expr {
    const t = this.peek()
    if (t.kind === "number" || t.kind === "duration") {
      this.next()
      const lit: NumberLiteral = { type: "NumberLiteral", value: t.kind === "number" ? t.num : t.num / 1000, pos: pos(t.start, t.end) }
      return t.kind === "duration" ? { ...lit, duration: true } : lit
    }
    if (t.kind === "(") {
      this.next()
      const inner = this.parseDurationExpr()
      const close = this.expect(")", context, '")"')
      this.durationExpressions = true
      return { type: "Paren", expr: inner, pos: pos(t.start, close.end) }
    }
    if (this.isWord(t, "step", "range", "min_of", "max_of") && this.peek(1).kind === "(") {
      const func = t.text.toLowerCase()
      this.next()
      this.next()
      const args: Array<Expr> = []
      if (func === "min_of" || func === "max_of") {
        args.push(this.parseDurationExpr())
        this.expect(",", context, '","')
        args.push(this.parseDurationExpr())
      }
      const close = this.expect(")", context, '")"')
      this.durationExpressions = true
      return { type: "Call", func, args, pos: pos(t.start, close.end) }
    }
    return this.unexpected(t, context, expected)
  }
}

/** The error for an expression deeper than `promqlDepthMax`, at the token where it gets too deep. */
const nestedTooDeeply = (at: number): ParseError =>
  new ParseError(`expression nested too deeply (more than ${promqlDepthMax} levels)`, at)

/** The expressions directly inside `e`, duration expressions included (what a walk over the tree visits). */
const childrenOf = (e: Expr): ReadonlyArray<Expr | undefined> => {
  switch (e.type) {
    case "NumberLiteral":
    case "StringLiteral":
      return []
    case "VectorSelector":
      return [e.offsetExpr]
    case "MatrixSelector":
      return [e.vector, e.rangeExpr]
    case "Subquery":
      return [e.expr, e.rangeExpr, e.stepExpr, e.offsetExpr]
    case "Call":
      return e.args
    case "Aggregate":
      return [e.param, e.expr]
    case "Binary":
      return [e.lhs, e.rhs]
    case "Unary":
    case "Paren":
      return [e.expr]
  }
}

const heights = new WeakMap<Expr, number>()

/**
 * The height of a tree: 1 for a leaf, 1 + the highest child's otherwise. Remembered per node, so that the
 * parser's checks (a node at a time, over subtrees it checked already) cost O(1) each. Recurses only over
 * trees the parser has bounded.
 */
const heightOf = (e: Expr): number => {
  const known = heights.get(e)
  if (known !== undefined) return known
  let h = 1
  for (const c of childrenOf(e)) if (c !== undefined) h = Math.max(h, 1 + heightOf(c))
  heights.set(e, h)
  return h
}

interface Modifiers {
  readonly bool: boolean
  /** Undefined: neither `on` nor `ignoring`. */
  readonly on: boolean | undefined
  readonly labels: ReadonlyArray<string>
  readonly card: VectorMatching["card"]
  readonly include: ReadonlyArray<string>
  readonly fillLeft: number | undefined
  readonly fillRight: number | undefined
}

const pos = (start: number, end: number): Pos => ({ start, end })

/** `obj` with `key` set when `value` is defined (optional fields stay absent otherwise). */
const withOptional = <T extends object>(obj: T, key: keyof T, value: unknown): T =>
  value === undefined ? obj : { ...obj, [key]: value }

const unary = (op: "+" | "-", operand: Expr, start: number): Expr => {
  if (operand.type === "NumberLiteral") {
    return { ...operand, value: op === "-" ? -operand.value : operand.value, pos: pos(start, operand.pos.end) }
  }
  return { type: "Unary", op, expr: operand, pos: pos(start, operand.pos.end) }
}

/** Where the operator of a binary expression starts, for the type checker's messages. */
const operatorStart = new WeakMap<Expr, number>()

/**
 * A binary expression. `matching` is set for now and cleared by the type check when a side is not an
 * instant vector (the tree's contract: present only between two vectors).
 */
const binary = (op: BinaryOp, lhs: Expr, rhs: Expr, m: Modifiers): Binary => {
  let matching: VectorMatching = {
    card: m.card,
    on: m.on ?? false,
    labels: m.labels,
    include: m.include
  }
  if (m.fillLeft !== undefined) matching = { ...matching, fillLeft: m.fillLeft }
  if (m.fillRight !== undefined) matching = { ...matching, fillRight: m.fillRight }
  return { type: "Binary", op, lhs, rhs, bool: m.bool, matching, pos: pos(lhs.pos.start, rhs.pos.end) }
}

interface DurationField {
  readonly ms: number
  /** The expression, unless it was a plain literal. */
  readonly expr: Expr | undefined
}

/** A parsed duration: folded to ms if it uses only literals; kept as an expression unless a plain literal. */
const durationField = (e: Expr, allowNegative: boolean): DurationField => {
  const literal = e.type === "NumberLiteral"
  if (dependsOnQuery(e)) return { ms: 0, expr: e }
  const ms = durationMs(e, undefined, true)
  // A literal `0s` is accepted (as Prometheus 2 did); a computed range or step must be positive.
  if (!allowNegative && (ms < 0 || (ms === 0 && !literal))) {
    throw new ParseError("duration must be greater than 0", e.pos.start)
  }
  return { ms, expr: literal ? undefined : e }
}

const newMatcher = (name: string, type: MatchType, value: string, at: number): Matcher => {
  if (type === "=~" || type === "!~") {
    try {
      anchored(value)
    } catch (e) {
      // Go's own text, `error parsing regexp: <code>: \`<the part at fault>\``, as Prometheus reports it.
      throw new ParseError(
        e instanceof RegexSyntaxError ? e.goMessage : `error parsing regexp: ${e instanceof Error ? e.message : String(e)}: \`${value}\``,
        at
      )
    }
  }
  return { name, type, value }
}

/** How Prometheus names a token in "unexpected ..." messages. */
const describe = (t: Token): string => {
  switch (t.kind) {
    case "eof":
      return "end of input"
    case "number":
      return `number ${goQuote(t.text)}`
    case "duration":
      return `duration ${goQuote(t.text)}`
    case "string":
      return `string ${t.text.length > 10 ? goQuote([...t.text].slice(0, 10).join("")) + "..." : goQuote(t.text)}`
    case "identifier": {
      const kw = keywordDesc.get(t.text.toLowerCase())
      if (kw !== undefined) return kw
      return `${t.text.includes(":") ? "metric identifier" : "identifier"} ${goQuote(t.text)}`
    }
    case "operator":
      return t.text === "=" ? '"="' : `<op:${t.text}>`
    case "@":
      return "<op:@>"
    default:
      return goQuote(t.text)
  }
}

// ---------------------------------------------------------------------------------------------------------
// Type checking

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
const checkTypes = (e: Expr): { expr: Expr; type: ValueType } => {
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

// ---------------------------------------------------------------------------------------------------------
// Entry points

/**
 * Parses and type-checks a PromQL query. Throws `ParseError` (Prometheus's message; `position` is the
 * character offset of the offending token or expression).
 */
export const parse = (query: string): Expr => checkTypes(new Parser(query).parseQuery()).expr

/** The tree, and whether the query writes a duration as an expression (Prometheus's `promql-duration-expr`). */
export const parseWithDurations = (query: string): { readonly expr: Expr; readonly durationExpressions: boolean } => {
  const parser = new Parser(query)
  const expr = checkTypes(parser.parseQuery()).expr
  return { expr, durationExpressions: parser.durationExpressions }
}

/** Prometheus's whole error text for a `ParseError` of `query`: `1:5: parse error: <message>`. */
export const describeParseError = (query: string, e: ParseError): string => {
  const before = query.slice(0, Math.max(0, Math.min(e.position, query.length)))
  const lines = before.split("\n")
  const line = lines.length
  const col = (lines[lines.length - 1]?.length ?? 0) + 1
  return `${line}:${col}: parse error: ${e.message}`
}

// ---------------------------------------------------------------------------------------------------------
// Printing

/** Go's `strconv.Quote`. */
export const goQuote = (s: string): string => {
  let out = '"'
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0
    switch (ch) {
      case '"':
        out += '\\"'
        continue
      case "\\":
        out += "\\\\"
        continue
      case "\x07":
        out += "\\a"
        continue
      case "\b":
        out += "\\b"
        continue
      case "\f":
        out += "\\f"
        continue
      case "\n":
        out += "\\n"
        continue
      case "\r":
        out += "\\r"
        continue
      case "\t":
        out += "\\t"
        continue
      case "\v":
        out += "\\v"
        continue
    }
    if (cp >= 0xdc80 && cp <= 0xdcff) out += `\\x${(cp - 0xdc00).toString(16)}` // a byte that is not UTF-8 (decodeGoBytes)
    else if (ch === " " || /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u.test(ch)) out += ch
    else if (cp < 0x80) out += `\\x${cp.toString(16).padStart(2, "0")}`
    else if (cp < 0x10000) out += `\\u${cp.toString(16).padStart(4, "0")}`
    else out += `\\U${cp.toString(16).padStart(8, "0")}`
  }
  return out + '"'
}

/** Go's `math.Round` (half away from zero). */
const goRound = (x: number): number => (x < 0 ? -Math.round(-x) : Math.round(x)) + 0

/** Go's `strconv.FormatFloat(v, 'f', -1, 64)`, with Prometheus's `+Inf` / `-Inf` / `NaN`. */
const formatNumber = (v: number): string => {
  if (Number.isNaN(v)) return "NaN"
  if (v === Infinity) return "+Inf"
  if (v === -Infinity) return "-Inf"
  if (Object.is(v, -0)) return "-0"
  const s = String(v)
  const m = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(s)
  if (m === null) return s
  const [, sign, first, rest = "", expText] = m
  const exp = Number(expText)
  const digits = `${first}${rest}`
  if (exp >= 0) return sign + digits.padEnd(exp + 1, "0")
  return `${sign}0.${"0".repeat(-exp - 1)}${digits}`
}

/** Go's `%f` (used in an error message). */
const formatGoFloat = (v: number): string =>
  Number.isNaN(v) ? "NaN" : v === Infinity ? "+Inf" : v === -Infinity ? "-Inf" : v.toFixed(6)

const formatLabelName = (name: string) => (legacyLabelName.test(name) ? name : goQuote(name))
const formatLabels = (labels: ReadonlyArray<string>) => labels.map(formatLabelName).join(", ")

const formatAt = (at: AtModifier | undefined): string =>
  at === undefined ? "" : at === "start" ? " @ start()" : at === "end" ? " @ end()" : ` @ ${(at / 1000).toFixed(3)}`

const formatOffset = (ms: number, expr: Expr | undefined): string =>
  expr !== undefined
    ? ` offset ${formatExpr(expr)}`
    : ms > 0
      ? ` offset ${formatDuration(ms)}`
      : ms < 0
        ? ` offset -${formatDuration(-ms)}`
        : ""

const formatModifiers = (vs: VectorSelector): string =>
  (vs.anchored === true ? " anchored" : "") + (vs.smoothed === true ? " smoothed" : "")

/** The selector without its modifiers: `name{a="b"}`, `{__name__=~"x"}`. */
const formatSelector = (vs: VectorSelector): string => {
  const shown = vs.name !== undefined && legacyMetricName.test(vs.name) ? vs.name : undefined
  const labels = vs.matchers
    .filter((m) => !(shown !== undefined && m.name === "__name__" && m.type === "=" && m.value === shown))
    .map((m) => `${formatLabelName(m.name)}${m.type}${goQuote(m.value)}`)
    .sort()
  if (labels.length === 0) return shown ?? "{}"
  return `${shown ?? ""}{${labels.join(",")}}`
}

/** Canonical PromQL text for a tree, as Prometheus prints it (`/api/v1/format_query`). */
export const formatExpr = (expr: Expr): string => {
  switch (expr.type) {
    case "NumberLiteral":
      if (expr.duration === true) {
        const ms = goRound(expr.value * 1000)
        return ms < 0 ? `-${formatDuration(-ms)}` : formatDuration(ms)
      }
      return formatNumber(expr.value)
    case "StringLiteral":
      return goQuote(expr.value)
    case "VectorSelector":
      return formatSelector(expr) + formatAt(expr.at) + formatOffset(expr.offsetMs, expr.offsetExpr) + formatModifiers(expr)
    case "MatrixSelector": {
      const vs = expr.vector
      const range = expr.rangeExpr !== undefined ? formatExpr(expr.rangeExpr) : formatDuration(expr.rangeMs)
      return `${formatSelector(vs)}[${range}]${formatAt(vs.at)}${formatOffset(vs.offsetMs, vs.offsetExpr)}${formatModifiers(vs)}`
    }
    case "Subquery": {
      const range = expr.rangeExpr !== undefined ? formatExpr(expr.rangeExpr) : formatDuration(expr.rangeMs)
      const step =
        expr.stepExpr !== undefined ? formatExpr(expr.stepExpr) : expr.stepMs === undefined ? "" : formatDuration(expr.stepMs)
      return `${formatExpr(expr.expr)}[${range}:${step}]${formatAt(expr.at)}${formatOffset(expr.offsetMs, expr.offsetExpr)}`
    }
    case "Call":
      return `${expr.func}(${expr.args.map(formatExpr).join(", ")})`
    case "Aggregate": {
      let s: string = expr.op
      if (expr.without) s += ` without (${formatLabels(expr.grouping)}) `
      else if (expr.grouping.length > 0) s += ` by (${formatLabels(expr.grouping)}) `
      const param = expr.param === undefined ? "" : `${formatExpr(expr.param)}, `
      return `${s}(${param}${formatExpr(expr.expr)})`
    }
    case "Binary": {
      let mods = expr.bool ? " bool" : ""
      const m = expr.matching
      if (m !== undefined) {
        const grouped = m.card === "many-to-one" || m.card === "one-to-many"
        if (m.on || m.labels.length > 0 || grouped) {
          mods += ` ${m.on ? "on" : "ignoring"} (${formatLabels(m.labels)})`
          if (grouped) mods += ` group_${m.card === "many-to-one" ? "left" : "right"} (${formatLabels(m.include)})`
        }
        if (m.fillLeft !== undefined && m.fillRight !== undefined && Object.is(m.fillLeft, m.fillRight)) {
          mods += ` fill(${formatNumber(m.fillLeft)})`
        } else {
          if (m.fillLeft !== undefined) mods += ` fill_left(${formatNumber(m.fillLeft)})`
          if (m.fillRight !== undefined) mods += ` fill_right(${formatNumber(m.fillRight)})`
        }
      }
      return `${formatExpr(expr.lhs)} ${expr.op}${mods} ${formatExpr(expr.rhs)}`
    }
    case "Unary":
      return `${expr.op}${formatExpr(expr.expr)}`
    case "Paren":
      return `(${formatExpr(expr.expr)})`
  }
}
