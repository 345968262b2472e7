/**
 * What the parts of the PromQL evaluator share: the values of evaluation (every node is evaluated once for
 * all steps of the query: an instant vector is a set of series, each with an optional value per step; a
 * scalar is a value per step), the query's context (`Ctx`) with its annotations, and small helpers over
 * steps, labels and values.
 *
 * A context carries the evaluator (`Ctx.evaluate`, evaluator.ts's `evaluate`): functions, aggregations and
 * operators evaluate their operands through it (`evaluate` here), so that they need not import the
 * evaluator, which imports them.
 */
import type { Effect } from "effect"
import type { Labels } from "../internal/labels.ts"
import { canonical, labelValue } from "../internal/labels.ts"
import { formatG } from "../internal/goString.ts"
import type { SeriesSource } from "../SeriesSource.ts"
import type { AtModifier, Expr } from "./ast.ts"
import type { FloatHistogram } from "./histogram.ts"
import type * as NH from "./nativeHistograms.ts"
import { QueryError } from "./types.ts"

/** A sample's value: a float or a native histogram. */
export type SampleValue = number | FloatHistogram

/** One series of an instant vector: a value (or none) at each step. */
export interface VSeries {
  labels: Labels
  values: Array<SampleValue | undefined>
  /**
   * A function or operator dropped the metric name: it stays in `labels` (with `__type__` and `__unit__`)
   * until the result is returned, so `label_replace`, `by (__name__)` and matching still see it. This is
   * Prometheus's delayed name removal, which its own test engine runs with.
   */
  dropName?: boolean | undefined
}

/**
 * One series of a range vector: its float samples as columns, timestamps strictly increasing, and its
 * native histogram samples apart (as Prometheus keeps `Floats` and `Histograms`), absent when it has none.
 */
export interface MSeries {
  labels: Labels
  ts: Float64Array
  vs: Float64Array
  hts?: Float64Array | undefined
  hs?: ReadonlyArray<FloatHistogram> | undefined
  /** The start timestamps of the floats and of the histograms (0: none), with `use-start-timestamps`. */
  sts?: Float64Array | undefined
  hsts?: Float64Array | undefined
  dropName?: boolean | undefined
}

export type EvalValue =
  | { readonly kind: "scalar"; readonly values: Array<number> }
  | { readonly kind: "string"; readonly value: string }
  | { readonly kind: "vector"; readonly series: Array<VSeries> }
  | { readonly kind: "matrix"; readonly series: Array<MSeries>; readonly rangeMs: number }

export interface Ctx {
  readonly start: number
  readonly end: number
  /** The query's own start and end, which `@ start()` and `@ end()` mean inside subqueries too. */
  readonly queryStart: number
  readonly queryEnd: number
  readonly step: number
  readonly steps: number
  readonly lookbackMs: number
  readonly source: SeriesSource
  /** Samples loaded so far, against samplesMax. */
  samples: number
  readonly samplesMax: number
  /** The query's annotations so far (shared by the contexts of its subqueries). */
  readonly notes: { readonly warnings: Set<string>; readonly infos: Set<string> }
  /**
   * Whether the selectors being evaluated feed only histogram_count/histogram_sum/histogram_avg: then, as
   * Prometheus's HistogramStatsIterator, a histogram whose reset hint is unknown gets one from a reset
   * detection against the sample before it (which makes a "reset" visible).
   */
  statsOnly: boolean
  /** `use-start-timestamps`: rate, increase, irate and resets read samples' start timestamps. */
  readonly useStartTimestamps: boolean
  /** The evaluator (evaluator.ts's `evaluate`), through which the parts of the evaluator evaluate their operands. */
  readonly evaluate: (ctx: Ctx, node: Expr) => Effect.Effect<EvalValue, QueryError>
}

/** Evaluates a node with the evaluator the context carries. */
export const evaluate = (ctx: Ctx, node: Expr): Effect.Effect<EvalValue, QueryError> => ctx.evaluate(ctx, node)

/** Adds a warning annotation (`PromQL warning: <text>`). */
export const warn = (ctx: Ctx, text: string) => void ctx.notes.warnings.add(`PromQL warning: ${text}`)
/** Adds an info annotation (`PromQL info: <text>`). */
export const inform = (ctx: Ctx, text: string) => void ctx.notes.infos.add(`PromQL info: ${text}`)
/** Prometheus's warning for a quantile outside [0, 1] (NaN included), when `q` is one. */
export const invalidQuantile = (ctx: Ctx, q: number) => {
  if (Number.isNaN(q) || q < 0 || q > 1) warn(ctx, `quantile value should be between 0 and 1, got ${formatG(q)}`)
}
/** An annotation's text naming the metric, when there is one (Prometheus's `maybeAddMetricName`). */
export const forMetric = (text: string, name: string) => (name === "" ? text : `${text} for metric name ${JSON.stringify(name)}`)
/** The metric name of a series (empty when it has none). */
export const metricName = (labels: Labels) => labelValue(labels, "__name__")

export const stepTime = (ctx: Ctx, i: number) => ctx.start + i * ctx.step

export const fail = (kind: "bad_data" | "execution" | "unsupported", message: string): never => {
  throw new QueryError({ kind, message })
}

/** Drops the metric name (and the type and unit labels that describe it, as Prometheus 3 does). */
export const dropName = (labels: Labels): Labels => labels.filter(([n]) => n !== "__name__" && n !== "__type__" && n !== "__unit__")
/** The labels a series is returned with. */
export const outputLabels = (s: { labels: Labels; dropName?: boolean | undefined }): Labels => (s.dropName === true ? dropName(s.labels) : s.labels)
export const sigOf = (labels: Labels) => canonical(labels)

/** Evaluation time of a selector at step time t, with its @ and offset. */
export const evalTime = (ctx: Ctx, t: number, at: AtModifier | undefined, offsetMs: number) => {
  const base = at === undefined ? t : at === "start" ? ctx.queryStart : at === "end" ? ctx.queryEnd : at
  return base - offsetMs
}

/** Numbers read by index: an array, or a typed array's columns. `lo` and `hi` bound the part read. */
export type Nums = ArrayLike<number>

export const scalarOf = (v: EvalValue): Array<number> => {
  if (v.kind !== "scalar") fail("bad_data", "expected a scalar")
  return (v as { values: Array<number> }).values
}

export const vectorOf = (v: EvalValue): Array<VSeries> => {
  if (v.kind !== "vector") fail("bad_data", "expected an instant vector")
  return (v as { series: Array<VSeries> }).series
}

export const stringOf = (v: EvalValue): string => {
  if (v.kind !== "string") fail("bad_data", "expected a string")
  return (v as { value: string }).value
}

export const sortLabelsLocal = (labels: Array<readonly [string, string]>): Labels => labels.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))

export const checkUnique = (series: Array<VSeries>): Array<VSeries> => {
  const seen = new Map<string, VSeries>()
  for (const s of series) {
    const key = sigOf(s.labels)
    const other = seen.get(key)
    if (other !== undefined) {
      for (let i = 0; i < s.values.length; i++) {
        if (s.values[i] !== undefined && other.values[i] !== undefined) fail("execution", "vector cannot contain metrics with the same labelset")
      }
      for (let i = 0; i < s.values.length; i++) if (other.values[i] === undefined) other.values[i] = s.values[i]
      continue
    }
    seen.set(key, s)
  }
  return [...seen.values()]
}

/** The annotations for what combining a series' histograms ran into (`operation`: what combined them). */
export const reportSeen = (ctx: Ctx, seen: NH.Seen, name: string, operation: "aggregation" | "addition" | "subtraction") => {
  if (seen.reconciled) inform(ctx, `mismatched custom buckets were reconciled during ${operation}`)
  if (seen.mixedSchemas) warn(ctx, `vector contains a mix of histograms with exponential and custom buckets schemas for metric name ${JSON.stringify(name)}`)
  if (seen.notCounter) warn(ctx, `this native histogram metric is not a counter: ${JSON.stringify(name)}`)
  if (seen.notGauge) warn(ctx, `this native histogram metric is not a gauge: ${JSON.stringify(name)}`)
  if (seen.conflictingResets) warn(ctx, `conflicting counter resets during histogram ${operation}`)
  if (seen.mixedFloats) warn(ctx, forMetric("encountered a mix of histograms and floats", name))
  if (seen.startTimeOverlap) warn(ctx, `sample has start time that overlaps with previous sample timestamp for metric ${JSON.stringify(name)}`)
}
