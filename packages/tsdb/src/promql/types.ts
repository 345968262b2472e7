/**
 * Values and errors of the PromQL engine (engine.ts), shared with the HTTP API and the test runner.
 */
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

export type Value =
  | { readonly type: "scalar"; readonly t: number; readonly v: number }
  | { readonly type: "string"; readonly t: number; readonly v: string }
  | { readonly type: "vector"; readonly samples: ReadonlyArray<InstantSample> }
  | { readonly type: "matrix"; readonly series: ReadonlyArray<RangeSeries> }

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
  "promql-binop-fill-modifiers"
] as const
export type PromqlFeature = (typeof promqlFeatures)[number]

/**
 * Why a query failed, as Prometheus's API classifies it: `bad_data` (the query is invalid), `execution`
 * (it failed while evaluating, e.g. a limit), `unsupported` (valid PromQL this engine does not evaluate
 * yet: never a wrong answer instead), `timeout`.
 */
export class QueryError extends Error {
  readonly kind: "bad_data" | "execution" | "unsupported" | "timeout"
  constructor(kind: "bad_data" | "execution" | "unsupported" | "timeout", message: string) {
    super(message)
    this.kind = kind
  }
}
