/**
 * The PromQL function table (Prometheus 3.x): each function's name, argument types, return type, arity
 * and whether it is experimental; the aggregation operators and the type of their parameter; and the
 * functions whose range argument may carry the `anchored` / `smoothed` modifiers. The parser, the type
 * checker and the evaluator read it.
 */
import type { AggregateOp, ValueType } from "./ast.ts"

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
export const anchoredFunctions: ReadonlyArray<string> = ["changes", "delta", "increase", "rate", "resets"]
export const smoothedFunctions: ReadonlyArray<string> = ["delta", "increase", "rate"]

export const aggregateOps: ReadonlySet<string> = new Set<AggregateOp>([
  "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
  "quantile", "limitk", "limit_ratio"
])
/** Aggregations with a parameter before the body, and its type. */
export const aggregateParam: ReadonlyMap<string, ValueType> = new Map<AggregateOp, ValueType>([
  ["topk", S], ["bottomk", S], ["quantile", S], ["limitk", S], ["limit_ratio", S], ["count_values", Str]
])
