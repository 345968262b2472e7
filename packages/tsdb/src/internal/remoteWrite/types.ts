/**
 * The normalized shape both remote-write versions decode to (and the encoders take).
 */
import type { FloatHistogram } from "../../promql/histogram.ts"

/** Prometheus metric types, as the text exposition format spells them. */
export type MetricType =
  | "unknown"
  | "counter"
  | "gauge"
  | "histogram"
  | "gaugehistogram"
  | "summary"
  | "info"
  | "stateset"

/** Index = the enum number in both `prometheus.MetricMetadata.MetricType` and `io.prometheus.write.v2.Metadata.MetricType`. */
export const metricTypes: ReadonlyArray<MetricType> = [
  "unknown",
  "counter",
  "gauge",
  "histogram",
  "gaugehistogram",
  "summary",
  "info",
  "stateset"
]

/**
 * A series' float samples in the order sent, as two columns: `timestamps[start..end)` and
 * `values[start..end)`. No object per sample: a request's series share the two arrays.
 */
export interface SampleColumns {
  readonly timestamps: Float64Array
  readonly values: Float64Array
  readonly start: number
  readonly end: number
}

export interface Sample {
  /** Milliseconds since the epoch (a safe integer). */
  timestampMs: number
  /** The float64 as sent, bits intact: a stale marker stays `0x7ff0000000000002` (see `isStaleNaN`). */
  value: number
  /** v2 only: the sample's start ("created") timestamp in ms, when the sender gave one (non-zero). */
  startTimestampMs?: number
}

export interface Series {
  /** Sorted by name, names unique and valid (`[a-zA-Z_][a-zA-Z0-9_]*`), at least one label. */
  labels: Array<[string, string]>
  /**
   * In the order sent (Prometheus sends them oldest first). May be empty (histogram- or metadata-only
   * series), and is when the decoder was asked for columns (`sampleColumns` has them then).
   */
  samples: Array<Sample>
  /** The float samples as two columns, when the decoder was asked for columns (v1 only). */
  sampleColumns?: SampleColumns
  /** The series' native histogram samples, in the order sent; absent when it has none. */
  histograms?: Array<HistogramSample>
  /** The series' exemplars, in the order sent; absent when it has none. */
  exemplars?: Array<ExemplarSample>
}

/**
 * A native histogram sample. Integer histograms (bucket deltas on the wire) and float histograms (absolute
 * counts) both come out as a `FloatHistogram` with absolute counts, validated as Prometheus validates them.
 */
export interface HistogramSample {
  /** Milliseconds since the epoch (a safe integer). */
  timestampMs: number
  /** Absolute float counts; `sum` bits intact (a stale marker stays `0x7ff0000000000002`). */
  histogram: FloatHistogram
  /** v2 only: the sample's start ("created") timestamp in ms, when the sender gave one (non-zero). */
  startTimestampMs?: number
}

export interface ExemplarSample {
  /** As sent (names not checked here: the TSDB refuses an exemplar whose labels it cannot keep). */
  labels: Array<[string, string]>
  value: number
  /** Milliseconds since the epoch. */
  timestampMs: number
}

export interface Metadata {
  /** The metric family name (v1 `metric_family_name`; v2 the series' `__name__`). */
  metric: string
  type: MetricType
  help: string
  unit: string
}

export interface WriteRequest {
  series: Array<Series>
  metadata: Array<Metadata>
  /** Native histogram samples decoded (they are on their series). */
  histograms: number
  /** Exemplars decoded (they are on their series). */
  exemplars: number
}

/** What `decodeWriteRequestV1` returns: the normalized shape. */
export type WriteRequestV1 = WriteRequest
/** What `decodeWriteRequestV2` returns: the normalized shape (symbols resolved). */
export type WriteRequestV2 = WriteRequest
