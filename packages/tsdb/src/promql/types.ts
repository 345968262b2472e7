/**
 * Values and errors of the PromQL engine (engine.ts), shared with the HTTP API and the test runner: a
 * query's value, its options and experimental features, `QueryError`, Prometheus's stale marker and its
 * order of label sets.
 */
import { Schema } from "effect"
import type { Labels } from "../internal/labels.ts"
import type { FloatHistogram } from "./histogram.ts"

/** A point of a series: a float `v`, or a native histogram `h` (then `v` is meaningless). */
export interface Point {
  readonly t: number
  readonly v: number
  readonly h?: FloatHistogram | undefined
}

/** A sample of an instant vector: a float `v`, or a native histogram `h` (then `v` is meaningless). */
export interface InstantSample {
  readonly labels: Labels
  readonly t: number
  readonly v: number
  readonly h?: FloatHistogram | undefined
}

export interface RangeSeries {
  readonly labels: Labels
  readonly samples: ReadonlyArray<Point>
}

/**
 * What Prometheus's API answers beside a result in `warnings` and `infos`: `PromQL warning: ...` (the
 * answer may be wrong or incomplete, e.g. histograms and floats mixed) and `PromQL info: ...` (it may not
 * mean what was meant, e.g. `rate` of a metric not named like a counter).
 */
export interface Annotations {
  readonly warnings: ReadonlyArray<string>
  readonly infos: ReadonlyArray<string>
}

export type Value = (
  | { readonly type: "scalar"; readonly t: number; readonly v: number }
  | { readonly type: "string"; readonly t: number; readonly v: string }
  | { readonly type: "vector"; readonly samples: ReadonlyArray<InstantSample> }
  | { readonly type: "matrix"; readonly series: ReadonlyArray<RangeSeries> }
) & {
  /** The query's annotations; absent when it has none. */
  readonly annotations?: Annotations | undefined
}

export interface QueryOptions {
  /** How far back an instant selector looks for a sample (default 5 minutes). */
  readonly lookbackMs?: number | undefined
  /** Samples a query may hold in memory at once (default querySamplesMax). */
  readonly samplesMax?: number | undefined
  /**
   * The experimental parts of PromQL switched on, by Prometheus's `--enable-feature` names; none by
   * default (a query using one is a `bad_data` naming the feature).
   */
  readonly features?: ReadonlyArray<PromqlFeature> | undefined
}

/** Prometheus's feature flags for experimental PromQL. */
export const promqlFeatures = [
  "promql-experimental-functions",
  "promql-duration-expr",
  "promql-extended-range-selectors",
  "promql-binop-fill-modifiers",
  "use-start-timestamps"
] as const
export type PromqlFeature = (typeof promqlFeatures)[number]

/**
 * Why a query failed, as Prometheus's API classifies it: `bad_data` (the query is invalid), `execution`
 * (it failed while evaluating, e.g. a limit), `unsupported` (valid PromQL this engine does not evaluate
 * yet: never a wrong answer instead), `timeout`.
 */
export class QueryError extends Schema.TaggedError<QueryError>()("QueryError", {
  kind: Schema.Literals(["bad_data", "execution", "unsupported", "timeout"]),
  message: Schema.String
}) {}

/** Prometheus's stale marker: a NaN with bits 0x7ff0000000000002, made through a DataView. */
export const staleNaN: number = (() => {
  const view = new DataView(new ArrayBuffer(8))
  view.setUint32(0, 0x7ff00000)
  view.setUint32(4, 0x00000002)
  return view.getFloat64(0)
})()

const bitsView = new DataView(new ArrayBuffer(8))
/** Whether `v` is the stale marker (its exact bits: any other NaN is not). */
export const isStaleNaN = (v: number): boolean => {
  if (!Number.isNaN(v)) return false
  bitsView.setFloat64(0, v)
  return bitsView.getUint32(0) === 0x7ff00000 && bitsView.getUint32(4) === 0x00000002
}

/** `labels.Compare`: label by label, name then value; then the shorter first. */
export const compareLabels = (a: Labels, b: Labels): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const [an, av] = a[i]!
    const [bn, bv] = b[i]!
    if (an !== bn) return an < bn ? -1 : 1
    if (av !== bv) return av < bv ? -1 : 1
  }
  return a.length - b.length
}
