/**
 * The PromQL syntax tree. Positions are character offsets into the query ([start, end)). Durations are
 * in milliseconds. This is the contract between the parser (parser.ts) and the evaluator (engine.ts).
 * A tree from the parser is at most `promqlDepthMax` (limits.ts) nodes deep, duration expressions
 * (`offsetExpr`, `rangeExpr`, `stepExpr`) included: code may recurse over it.
 */
import type { Matcher } from "../internal/labels.ts"

export type ValueType = "scalar" | "vector" | "matrix" | "string"

export interface Pos {
  readonly start: number
  readonly end: number
}

/** `@ <time>`: an absolute time in ms, or the query's start/end. */
export type AtModifier = number | "start" | "end"

export interface NumberLiteral {
  readonly type: "NumberLiteral"
  readonly value: number
  readonly pos: Pos
  /** Written as a duration (`5m`); `value` is then in seconds. Only for printing. */
  readonly duration?: boolean
}

export interface StringLiteral {
  readonly type: "StringLiteral"
  readonly value: string
  readonly pos: Pos
}

export interface VectorSelector {
  readonly type: "VectorSelector"
  /** The metric name if given outside the braces (also present as a `__name__` matcher). */
  readonly name: string | undefined
  /** All matchers, including `__name__="name"` for a metric name. */
  readonly matchers: ReadonlyArray<Matcher>
  readonly offsetMs: number
  readonly at: AtModifier | undefined
  readonly pos: Pos
  /**
   * Experimental (Prometheus 3 `promql-duration-expr`): the offset written as a duration expression
   * (`offset (1h / 2)`, `offset step()`), in seconds. When it uses only literals it is already folded into
   * `offsetMs`; when it uses `step()` or `range()`, `offsetMs` is 0 until `resolveDurations` (parser.ts).
   */
  readonly offsetExpr?: Expr
  /** Experimental (`promql-extended-range-selectors`): the `anchored` modifier. */
  readonly anchored?: boolean
  /** Experimental (`promql-extended-range-selectors`): the `smoothed` modifier. */
  readonly smoothed?: boolean
}

export interface MatrixSelector {
  readonly type: "MatrixSelector"
  readonly vector: VectorSelector
  readonly rangeMs: number
  readonly pos: Pos
  /** The range written as a duration expression (see `VectorSelector.offsetExpr`). */
  readonly rangeExpr?: Expr
}

export interface Subquery {
  readonly type: "Subquery"
  readonly expr: Expr
  readonly rangeMs: number
  /** Undefined: the default evaluation interval. */
  readonly stepMs: number | undefined
  readonly offsetMs: number
  readonly at: AtModifier | undefined
  readonly pos: Pos
  /** Range, step and offset written as duration expressions (see `VectorSelector.offsetExpr`). */
  readonly rangeExpr?: Expr
  readonly stepExpr?: Expr
  readonly offsetExpr?: Expr
}

export interface Call {
  readonly type: "Call"
  readonly func: string
  readonly args: ReadonlyArray<Expr>
  readonly pos: Pos
}

export type AggregateOp =
  | "sum" | "min" | "max" | "avg" | "group" | "stddev" | "stdvar" | "count" | "count_values" | "bottomk" | "topk"
  | "quantile" | "limitk" | "limit_ratio"

export interface Aggregate {
  readonly type: "Aggregate"
  readonly op: AggregateOp
  readonly expr: Expr
  /** The parameter of topk, bottomk, quantile, count_values, limitk, limit_ratio. */
  readonly param: Expr | undefined
  readonly grouping: ReadonlyArray<string>
  /** `without (...)` rather than `by (...)`. */
  readonly without: boolean
  readonly pos: Pos
}

export type BinaryOp =
  | "+" | "-" | "*" | "/" | "%" | "^" | "atan2"
  | "==" | "!=" | ">" | "<" | ">=" | "<="
  | "and" | "or" | "unless"
  /** The native histogram trim operators: `h </ x` keeps the observations below x, `h >/ x` those above. */
  | "</" | ">/"

export interface VectorMatching {
  readonly card: "one-to-one" | "many-to-one" | "one-to-many" | "many-to-many"
  /** `on (...)` (true) or `ignoring (...)` (false); absent modifiers: ignoring (). */
  readonly on: boolean
  readonly labels: ReadonlyArray<string>
  /** The extra labels of `group_left (...)` / `group_right (...)`. */
  readonly include: ReadonlyArray<string>
  /**
   * Experimental (`promql-binop-fill-modifiers`): `fill_left(v)` / `fill(v)` — the value used for a
   * left-hand sample missing from a match group; `fill_right(v)` / `fill(v)` — the same for the right side.
   */
  readonly fillLeft?: number
  readonly fillRight?: number
}

export interface Binary {
  readonly type: "Binary"
  readonly op: BinaryOp
  readonly lhs: Expr
  readonly rhs: Expr
  /** The `bool` modifier of a comparison. */
  readonly bool: boolean
  /** Present when both sides are vectors. */
  readonly matching: VectorMatching | undefined
  readonly pos: Pos
}

export interface Unary {
  readonly type: "Unary"
  readonly op: "-" | "+"
  readonly expr: Expr
  readonly pos: Pos
}

export interface Paren {
  readonly type: "Paren"
  readonly expr: Expr
  readonly pos: Pos
}

export type Expr =
  | NumberLiteral
  | StringLiteral
  | VectorSelector
  | MatrixSelector
  | Subquery
  | Call
  | Aggregate
  | Binary
  | Unary
  | Paren

/** A query that cannot be parsed or type-checked; `position` is a character offset. */
export class ParseError extends Error {
  readonly position: number
  constructor(message: string, position: number) {
    super(message)
    this.position = position
  }
}
