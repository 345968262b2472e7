/**
 * Decoding of Prometheus remote-write request bodies (already snappy-decompressed) into one normalized
 * shape:
 *
 * - v1: `prometheus.WriteRequest` (remote.proto / types.proto), Content-Type
 *   `application/x-protobuf` (or `;proto=prometheus.WriteRequest`);
 * - v2: `io.prometheus.write.v2.Request` (io/prometheus/write/v2/types.proto), Content-Type
 *   `application/x-protobuf;proto=io.prometheus.write.v2.Request`.
 *
 * Anything malformed throws `RemoteWriteDecodeError` (HTTP 400); anything over a limit throws
 * `RemoteWriteLimitError` (HTTP 413). Nothing else is thrown, every length is bounded by the bytes left,
 * and work is linear in the input.
 *
 * Label rules enforced: at least one label per series; names non-empty and `[a-zA-Z_][a-zA-Z0-9_]*`;
 * no name twice in a series; unsorted labels are sorted. Values and all other strings must be UTF-8.
 * Empty label values are kept as sent (Prometheus treats them as absent; the ingest layer may drop them).
 *
 * Native histograms (v1 `prometheus.Histogram`, v2 `io.prometheus.write.v2.Histogram`, same field numbers)
 * are decoded to `FloatHistogram`s with absolute counts and validated as Prometheus's `Histogram.Validate`
 * (integer histograms) and `FloatHistogram.Validate` (float histograms) would; see `decodeHistogram`.
 */
import { RemoteWriteDecodeError, RemoteWriteLimitError } from "./errors.ts"
import { customBucketsSchema, FloatHistogram } from "../../promql/histogram.ts"
import type { CounterResetHint, Span } from "../../promql/histogram.ts"
import type { ExemplarSample, HistogramSample, Metadata, MetricType, Sample, Series, WriteRequestV1, WriteRequestV2 } from "./types.ts"
import { labelNameBytes, Reader } from "./wire.ts"
import { metricTypes } from "./types.ts"

export { RemoteWriteDecodeError, RemoteWriteLimitError } from "./errors.ts"
export type { ExemplarSample, HistogramSample, Metadata, MetricType, Sample, SampleColumns, Series, WriteRequest, WriteRequestV1, WriteRequestV2 } from "./types.ts"
export { metricTypes } from "./types.ts"
export { encodeWriteRequestV1, encodeWriteRequestV2 } from "./encode.ts"

export interface RemoteWriteLimits {
  /** Series (TimeSeries messages) in one request. */
  readonly maxSeriesPerRequest: number
  /** Samples in one request, over all its series: float samples and native histogram samples together. */
  readonly maxSamplesPerRequest: number
  /** Labels in one series. */
  readonly maxLabelsPerSeries: number
  /** UTF-8 bytes of one label name. */
  readonly maxLabelNameBytes: number
  /** UTF-8 bytes of one label value. */
  readonly maxLabelValueBytes: number
  /** Metadata entries in one request (v1 messages; v2 distinct entries after resolution). */
  readonly maxMetadataPerRequest: number
  /** v2: entries of the symbols table. */
  readonly maxSymbolsPerRequest: number
  /**
   * Buckets of one native histogram (positive and negative together); its spans (both sides) and its
   * custom values are each held to the same number.
   */
  readonly maxBucketsPerHistogram: number
}

/** The default limits; pass a partial override as the decoders' second argument. */
export const limits: RemoteWriteLimits = {
  maxSeriesPerRequest: 100_000,
  maxSamplesPerRequest: 1_000_000,
  maxLabelsPerSeries: 128,
  maxLabelNameBytes: 4096,
  maxLabelValueBytes: 16384,
  maxMetadataPerRequest: 100_000,
  maxSymbolsPerRequest: 2_000_000,
  maxBucketsPerHistogram: 16_384
}

/** The defaults with the overrides given (an override that is not a number, e.g. `undefined` from JS, is ignored). */
const resolveLimits = (overrides: Partial<RemoteWriteLimits>): RemoteWriteLimits => {
  if (overrides === limits) return limits
  const out: Record<string, number> = { ...limits }
  for (const [key, value] of Object.entries(overrides)) {
    if (key in limits && typeof value === "number" && !Number.isNaN(value)) out[key] = value
  }
  return out as unknown as RemoteWriteLimits
}

// ---------------------------------------------------------------------------------------------------
// Stale markers

/** Prometheus' stale marker: the NaN with bits `0x7ff0000000000002` (`value.StaleNaN`). */
export const staleNaN: number = (() => {
  const v = new DataView(new ArrayBuffer(8))
  v.setUint32(0, 0x00000002, true)
  v.setUint32(4, 0x7ff00000, true)
  return v.getFloat64(0, true)
})()

const scratch = new DataView(new ArrayBuffer(8))

/**
 * Whether `value` is exactly the stale marker (bits `0x7ff0000000000002`), as Prometheus'
 * `value.IsStaleNaN`. Beware: V8 quiets signalling NaNs stored in a plain number array
 * (`[1.5, staleNaN]` holds `0x7ff8000000000002`), so keep values in objects or Float64Arrays.
 */
export const isStaleNaN = (value: number): boolean => {
  if (value === value) return false
  scratch.setFloat64(0, value, true)
  return scratch.getUint32(0, true) === 0x00000002 && scratch.getUint32(4, true) === 0x7ff00000
}

// ---------------------------------------------------------------------------------------------------
// Shared helpers

const typeName = (n: number): MetricType => metricTypes[n] ?? "unknown"

const byName = (a: [string, string], b: [string, string]): number => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)

/** Sorts the labels if needed and refuses an empty set or a repeated name. */
const finishLabels = (r: Reader, labels: Array<[string, string]>, field: string, at: number): void => {
  const n = labels.length
  if (n === 0) r.fail(field, "series without labels", at)
  for (let i = 1; i < n; i++) {
    const a = labels[i - 1]![0]
    const b = labels[i]![0]
    if (a < b) continue
    if (a === b) r.fail(field, `duplicate label name ${JSON.stringify(a)}`, at)
    labels.sort(byName)
    for (let j = 1; j < n; j++) {
      if (labels[j - 1]![0] === labels[j]![0]) {
        r.fail(field, `duplicate label name ${JSON.stringify(labels[j]![0])}`, at)
      }
    }
    return
  }
}

/**
 * Label sets already decoded, by their bytes on the wire (the run of label fields a series starts with):
 * a series sent again, as every scrape sends it, is not decoded again, and its labels are the same array
 * as before, which a caller can use as an identity. At most `max` entries (then it starts over). Labels
 * decoded once passed every check, and the same bytes decode to the same labels. Remembered label sets
 * are frozen: shared by every request that sends them.
 */
export class LabelsInterner {
  private readonly byHash = new Map<number, { readonly raw: Buffer; readonly labels: Array<[string, string]> } | Array<{ readonly raw: Buffer; readonly labels: Array<[string, string]> }>>()
  private entries = 0
  readonly max: number

  constructor(max: number) {
    this.max = max
  }

  get size(): number {
    return this.entries
  }

  /** The labels of the bytes [start, end) of `buf` if remembered (`hash`: `hashBytes` of them). */
  find(buf: Buffer, start: number, end: number, hash: number): Array<[string, string]> | undefined {
    const found = this.byHash.get(hash)
    if (found === undefined) return undefined
    if (!Array.isArray(found)) return sameBytes(found.raw, buf, start, end) ? found.labels : undefined
    for (const e of found) if (sameBytes(e.raw, buf, start, end)) return e.labels
    return undefined
  }

  /** Remembers a label set; it is frozen (it is shared from now on). */
  add(buf: Buffer, start: number, end: number, hash: number, labels: Array<[string, string]>): void {
    if (this.entries >= this.max) {
      this.byHash.clear()
      this.entries = 0
    }
    for (const pair of labels) Object.freeze(pair)
    Object.freeze(labels)
    const entry = { raw: Buffer.from(buf.subarray(start, end)), labels }
    const found = this.byHash.get(hash)
    if (found === undefined) this.byHash.set(hash, entry)
    else if (Array.isArray(found)) found.push(entry)
    else this.byHash.set(hash, [found, entry])
    this.entries++
  }
}

/** Whether `raw` holds the bytes [start, end) of `buf` (a native comparison, no copy). */
const sameBytes = (raw: Buffer, buf: Buffer, start: number, end: number): boolean =>
  raw.length === end - start && raw.compare(buf, start, end) === 0

/** FNV-1a over bytes. */
const hashBytes = (buf: Uint8Array, start: number, end: number): number => {
  let h = 0x811c9dc5
  for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i]!, 0x01000193)
  return h >>> 0
}

/**
 * The end of the run of label fields (tag 1, length-delimited) starting at `start`, or `start` if there
 * is none or it does not parse (the full decode then says why).
 */
const labelRunEnd = (buf: Uint8Array, start: number, end: number): number => {
  let p = start
  while (p < end && buf[p] === V1_TS_LABELS) {
    let q = p + 1
    let len = 0
    let shift = 0
    for (;;) {
      if (q >= end || shift > 28) return start
      const b = buf[q++]!
      len += (b & 0x7f) * 2 ** shift
      if (b < 0x80) break
      shift += 7
    }
    if (q + len > end) return start
    p = q + len
  }
  return p
}

const labelScratch: Array<[string, string]> = []
const sampleScratch: Array<Sample> = []

/** The series from the scratch arrays (copied, exact size; the scratch arrays are emptied). */
const take = (labels: Array<[string, string]>, samples: Array<Sample>): Series => {
  const series: Series = { labels: labels.slice(), samples: samples.slice() }
  labels.length = 0
  samples.length = 0
  return series
}

/** Drops what the scratch arrays hold (after a decode, thrown or not, so nothing stays reachable). */
const clearScratch = (): void => {
  labelScratch.length = 0
  sampleScratch.length = 0
}

interface Counters {
  readonly lim: RemoteWriteLimits
  readonly interner: LabelsInterner | undefined
  samples: number
  histograms: number
  exemplars: number
  /** Where float samples go when the caller asked for columns. */
  readonly columns?: ColumnSink | undefined
}

/**
 * Column buffers kept for the decodes of later requests: a server decoding request after request into
 * columns of the same size reuses them instead of allocating (and the garbage collector freeing) a few
 * MB a request. A request's columns come back with `release` once nothing reads its `sampleColumns`. At
 * most `pairsMax` pairs are kept, each of at most `samplesMax` samples.
 */
export class ColumnPool {
  private readonly free: Array<readonly [Float64Array, Float64Array]> = []
  private readonly lent = new WeakMap<WriteRequestV1, readonly [Float64Array, Float64Array]>()
  readonly pairsMax: number
  readonly samplesMax: number
  constructor(pairsMax: number, samplesMax: number) {
    this.pairsMax = pairsMax
    this.samplesMax = samplesMax
  }

  /** The largest pair kept, if any. */
  take(): readonly [Float64Array, Float64Array] | undefined {
    let best = -1
    for (let i = 0; i < this.free.length; i++) if (best < 0 || this.free[i]![0].length > this.free[best]![0].length) best = i
    if (best < 0) return undefined
    const pair = this.free[best]!
    this.free[best] = this.free[this.free.length - 1]!
    this.free.pop()
    return pair
  }

  /** Keeps a pair no request reads any more (the smallest goes when the pool is full). */
  give(pair: readonly [Float64Array, Float64Array]): void {
    if (pair[0].length > this.samplesMax || this.pairsMax === 0) return
    if (this.free.length < this.pairsMax) {
      this.free.push(pair)
      return
    }
    let smallest = 0
    for (let i = 1; i < this.free.length; i++) if (this.free[i]![0].length < this.free[smallest]![0].length) smallest = i
    if (this.free[smallest]![0].length < pair[0].length) this.free[smallest] = pair
  }

  /** Records that `request`'s series read `pair` (see `release`). */
  lend(request: WriteRequestV1, pair: readonly [Float64Array, Float64Array]): void {
    this.lent.set(request, pair)
  }

  /**
   * Takes back the columns of a request decoded from this pool: the caller reads none of its series'
   * `sampleColumns` from here on. Releasing a request twice, or one not decoded into columns, does nothing.
   */
  release(request: WriteRequestV1): void {
    const pair = this.lent.get(request)
    if (pair === undefined) return
    this.lent.delete(request)
    this.give(pair)
  }

  /** Pairs kept now. */
  get size(): number {
    return this.free.length
  }
}

/** The float samples of a request in two growing columns, and the range of each series in them. */
class ColumnSink {
  timestamps: Float64Array
  values: Float64Array
  n = 0
  private readonly ranges: Array<Series | number> = []
  private readonly pool: ColumnPool | undefined

  constructor(capacity: number, pool: ColumnPool | undefined) {
    this.pool = pool
    const [timestamps, values] = pool?.take() ?? [new Float64Array(capacity), new Float64Array(capacity)]
    this.timestamps = timestamps
    this.values = values
  }

  push(timestampMs: number, value: number): void {
    if (this.n === this.timestamps.length) {
      const timestamps = new Float64Array(this.n * 2)
      timestamps.set(this.timestamps)
      const values = new Float64Array(this.n * 2)
      values.set(this.values)
      // Outgrown: nothing refers to the old pair yet (series get their columns at `finish`).
      this.pool?.give([this.timestamps, this.values])
      this.timestamps = timestamps
      this.values = values
    }
    this.timestamps[this.n] = timestampMs
    this.values[this.n++] = value
  }

  /** Records that `series` has the samples from `from` to the current end. */
  close(series: Series, from: number): void {
    if (this.n > from) this.ranges.push(series, from, this.n)
  }

  /** Gives each series its range of the final arrays (shared by all: a view each would cost more than its samples). */
  finish(request: WriteRequestV1): void {
    const r = this.ranges
    const timestamps = this.timestamps
    const values = this.values
    for (let i = 0; i < r.length; i += 3) {
      ;(r[i] as Series).sampleColumns = { timestamps, values, start: r[i + 1] as number, end: r[i + 2] as number }
    }
    this.pool?.lend(request, [timestamps, values])
  }
}

const countSample = (c: Counters): void => {
  if (++c.samples > c.lim.maxSamplesPerRequest) {
    throw new RemoteWriteLimitError("maxSamplesPerRequest", c.lim.maxSamplesPerRequest)
  }
}

// ---------------------------------------------------------------------------------------------------
// Native histograms: v1 prometheus.Histogram and v2 io.prometheus.write.v2.Histogram (same field numbers)

const H_COUNT_INT = 0x08 // 1, VARINT (uint64; oneof count)
const H_COUNT_FLOAT = 0x11 // 2, I64 (oneof count)
const H_SUM = 0x19 // 3, I64
const H_SCHEMA = 0x20 // 4, VARINT (sint32)
const H_ZERO_THRESHOLD = 0x29 // 5, I64
const H_ZERO_COUNT_INT = 0x30 // 6, VARINT (uint64; oneof zero_count)
const H_ZERO_COUNT_FLOAT = 0x39 // 7, I64 (oneof zero_count)
const H_NEGATIVE_SPANS = 0x42 // 8, LEN
const H_NEGATIVE_DELTA = 0x48 // 9, VARINT (sint64, unpacked)
const H_NEGATIVE_DELTAS = 0x4a // 9, LEN (packed)
const H_NEGATIVE_COUNT = 0x51 // 10, I64 (unpacked)
const H_NEGATIVE_COUNTS = 0x52 // 10, LEN (packed)
const H_POSITIVE_SPANS = 0x5a // 11, LEN
const H_POSITIVE_DELTA = 0x60 // 12, VARINT (sint64, unpacked)
const H_POSITIVE_DELTAS = 0x62 // 12, LEN (packed)
const H_POSITIVE_COUNT = 0x69 // 13, I64 (unpacked)
const H_POSITIVE_COUNTS = 0x6a // 13, LEN (packed)
const H_RESET_HINT = 0x70 // 14, VARINT (enum)
const H_TIMESTAMP = 0x78 // 15, VARINT
const H_CUSTOM_VALUE = 0x81 // 16, I64 (unpacked; a two-byte tag)
const H_CUSTOM_VALUES = 0x82 // 16, LEN (packed)
const H_START_TIMESTAMP = 0x88 // 17, VARINT (v2 only)
const V1_H_KNOWN = (1 << 17) - 2 // fields 1..16
const V2_H_KNOWN = (1 << 18) - 2 // fields 1..17
const SPAN_OFFSET = 0x08 // 1, VARINT (sint32)
const SPAN_LENGTH = 0x10 // 2, VARINT (uint32)
const SPAN_KNOWN = (1 << 1) | (1 << 2)

/** Fields of an integer histogram (count_int, zero_count_int, *_deltas) were seen. */
const KIND_INT = 1
/** Fields of a float histogram (count_float, zero_count_float, *_counts) were seen. */
const KIND_FLOAT = 2

const resetHints: ReadonlyArray<CounterResetHint> = ["unknown", "reset", "not_reset", "gauge"]

/** A BucketSpan: offset (sint32) and length (uint32). */
const decodeSpan = (r: Reader, end: number, field: string): Span => {
  let offset = 0
  let length = 0
  while (r.pos < end) {
    const at = r.pos
    const tag = r.uint32(end, field)
    if (tag === SPAN_OFFSET) offset = r.sint32(end, `${field}.offset`)
    else if (tag === SPAN_LENGTH) length = r.uint32(end, `${field}.length`)
    else r.other(tag, SPAN_KNOWN, end, field, at)
  }
  return { offset, length }
}

/** One side's buckets as they are read: absolute counts, and for deltas the running count. */
interface Side {
  readonly spans: Array<Span>
  readonly counts: Array<number>
  /** The last absolute count (integer histograms: each delta is added to it). */
  run: number
}

/**
 * Decodes a native histogram message [pos, end) to a `FloatHistogram` with absolute counts, validated:
 *
 * - integer (`count_int`, `zero_count_int`, `*_deltas`) and float (`count_float`, `zero_count_float`,
 *   `*_counts`) fields are not mixed (Prometheus would silently ignore the kind the count does not name);
 *   a histogram with neither kind of field is an (empty) integer histogram;
 * - counts and deltas are safe integers, and so is every bucket count the deltas add up to;
 * - the schema is -4..8 (exponential) or -53 (custom buckets);
 * - exponential: each side's span lengths add up to its number of buckets, spans after the first have
 *   offsets >= 0, no custom values;
 * - custom buckets: custom values not NaN, strictly increasing, the last not +Inf; span offsets >= 0, span
 *   lengths adding up to the number of buckets, offsets plus lengths at most custom values + 1; no zero
 *   count, zero threshold, negative spans or negative buckets;
 * - no bucket count below 0 (integer: after adding up the deltas); float: count and zero count not below 0;
 * - integer: the buckets and the zero bucket add up to the count exactly, or to at most the count when the
 *   sum is NaN (as Prometheus's `Histogram.Validate`).
 *
 * Buckets, spans and custom values over `maxBucketsPerHistogram` are a `RemoteWriteLimitError`.
 */
const decodeHistogram = (r: Reader, end: number, lim: RemoteWriteLimits, v2: boolean): HistogramSample => {
  const at = r.pos
  const max = lim.maxBucketsPerHistogram
  const known = v2 ? V2_H_KNOWN : V1_H_KNOWN
  let kinds = 0
  let count = 0
  let sum = 0
  let schema = 0
  let zeroThreshold = 0
  let zeroCount = 0
  let hint = 0
  let timestampMs = 0
  let startMs = 0
  const negative: Side = { spans: [], counts: [], run: 0 }
  const positive: Side = { spans: [], counts: [], run: 0 }
  const customValues: Array<number> = []
  /** Notes a field of `kind`, refusing a histogram with fields of both kinds. */
  const kind = (k: number, field: string, fat: number): void => {
    kinds |= k
    if (kinds === (KIND_INT | KIND_FLOAT)) {
      r.fail(field, "integer fields (count_int, zero_count_int, *_deltas) and float fields (count_float, zero_count_float, *_counts) in one histogram", fat)
    }
  }
  const bucketSlot = (): void => {
    if (negative.counts.length + positive.counts.length >= max) {
      throw new RemoteWriteLimitError("maxBucketsPerHistogram", max, "buckets of one histogram")
    }
  }
  const delta = (side: Side, field: string, stop: number): void => {
    bucketSlot()
    const dat = r.pos
    const v = side.run + r.sint64(stop, field)
    if (!Number.isSafeInteger(v)) r.fail(field, "bucket count outside the safe integer range", dat)
    side.run = v
    side.counts.push(v)
  }
  const floatCount = (side: Side, field: string, stop: number): void => {
    bucketSlot()
    side.counts.push(r.double(stop, field))
  }
  const span = (side: Side, field: string): void => {
    const stop = r.len(end, field)
    if (negative.spans.length + positive.spans.length >= max) {
      throw new RemoteWriteLimitError("maxBucketsPerHistogram", max, "spans of one histogram")
    }
    side.spans.push(decodeSpan(r, stop, field))
  }
  const customValue = (stop: number): void => {
    if (customValues.length >= max) throw new RemoteWriteLimitError("maxBucketsPerHistogram", max, "custom values of one histogram")
    customValues.push(r.double(stop, "Histogram.custom_values"))
  }
  while (r.pos < end) {
    const fat = r.pos
    const tag = r.uint32(end, "Histogram")
    switch (tag) {
      case H_COUNT_INT:
        kind(KIND_INT, "Histogram.count_int", fat)
        count = r.uint64(end, "Histogram.count_int")
        break
      case H_COUNT_FLOAT:
        kind(KIND_FLOAT, "Histogram.count_float", fat)
        count = r.double(end, "Histogram.count_float")
        break
      case H_SUM:
        sum = r.double(end, "Histogram.sum")
        break
      case H_SCHEMA:
        schema = r.sint32(end, "Histogram.schema")
        break
      case H_ZERO_THRESHOLD:
        zeroThreshold = r.double(end, "Histogram.zero_threshold")
        break
      case H_ZERO_COUNT_INT:
        kind(KIND_INT, "Histogram.zero_count_int", fat)
        zeroCount = r.uint64(end, "Histogram.zero_count_int")
        break
      case H_ZERO_COUNT_FLOAT:
        kind(KIND_FLOAT, "Histogram.zero_count_float", fat)
        zeroCount = r.double(end, "Histogram.zero_count_float")
        break
      case H_NEGATIVE_SPANS:
        span(negative, "Histogram.negative_spans")
        break
      case H_POSITIVE_SPANS:
        span(positive, "Histogram.positive_spans")
        break
      case H_NEGATIVE_DELTA:
        kind(KIND_INT, "Histogram.negative_deltas", fat)
        delta(negative, "Histogram.negative_deltas", end)
        break
      case H_POSITIVE_DELTA:
        kind(KIND_INT, "Histogram.positive_deltas", fat)
        delta(positive, "Histogram.positive_deltas", end)
        break
      case H_NEGATIVE_DELTAS:
      case H_POSITIVE_DELTAS: {
        const field = tag === H_NEGATIVE_DELTAS ? "Histogram.negative_deltas" : "Histogram.positive_deltas"
        const side = tag === H_NEGATIVE_DELTAS ? negative : positive
        kind(KIND_INT, field, fat)
        const stop = r.len(end, field)
        while (r.pos < stop) delta(side, field, stop)
        break
      }
      case H_NEGATIVE_COUNT:
        kind(KIND_FLOAT, "Histogram.negative_counts", fat)
        floatCount(negative, "Histogram.negative_counts", end)
        break
      case H_POSITIVE_COUNT:
        kind(KIND_FLOAT, "Histogram.positive_counts", fat)
        floatCount(positive, "Histogram.positive_counts", end)
        break
      case H_NEGATIVE_COUNTS:
      case H_POSITIVE_COUNTS: {
        const field = tag === H_NEGATIVE_COUNTS ? "Histogram.negative_counts" : "Histogram.positive_counts"
        const side = tag === H_NEGATIVE_COUNTS ? negative : positive
        kind(KIND_FLOAT, field, fat)
        const stop = r.len(end, field)
        while (r.pos < stop) floatCount(side, field, stop)
        break
      }
      case H_RESET_HINT:
        hint = r.int32(end, "Histogram.reset_hint")
        break
      case H_TIMESTAMP:
        timestampMs = r.int64(end, "Histogram.timestamp")
        break
      case H_CUSTOM_VALUE:
        customValue(end)
        break
      case H_CUSTOM_VALUES: {
        const stop = r.len(end, "Histogram.custom_values")
        while (r.pos < stop) customValue(stop)
        break
      }
      default:
        // Field 17 (start_timestamp) is v2's only; to v1 it is an unknown field.
        if (tag === H_START_TIMESTAMP && v2) startMs = r.int64(end, "Histogram.start_timestamp")
        else r.other(tag, known, end, "Histogram", fat)
    }
  }
  const float = kinds === KIND_FLOAT
  const bucketField = (side: Side): string =>
    `Histogram.${side === positive ? "positive" : "negative"}_${float ? "counts" : "deltas"}`
  const spanField = (side: Side): string => `Histogram.${side === positive ? "positive" : "negative"}_spans`
  /** Prometheus's checkHistogramSpans (custom buckets: the first offset may not be negative either); returns the total of offsets and lengths. */
  const checkSpans = (side: Side, firstMayBeNegative: boolean): number => {
    let buckets = 0
    let length = 0
    for (let i = 0; i < side.spans.length; i++) {
      const sp = side.spans[i]!
      if ((i > 0 || !firstMayBeNegative) && sp.offset < 0) r.fail(spanField(side), `span ${i + 1} has a negative offset ${sp.offset}`, at)
      buckets += sp.length
      length += sp.length + sp.offset
    }
    if (buckets !== side.counts.length) {
      r.fail(spanField(side), `spans need ${buckets} buckets, have ${side.counts.length}`, at)
    }
    return length
  }
  /** Prometheus's checkHistogramBuckets on the absolute counts: none below 0; returns their total. */
  const checkBuckets = (side: Side): number => {
    let total = 0
    const counts = side.counts
    for (let i = 0; i < counts.length; i++) {
      const c = counts[i]!
      if (c < 0) r.fail(bucketField(side), `bucket ${i + 1} has a negative count ${c}`, at)
      total += c
    }
    return total
  }
  let nCount = 0
  if (schema === customBucketsSchema) {
    let prev = -Infinity
    for (let i = 0; i < customValues.length; i++) {
      const v = customValues[i]!
      if (Number.isNaN(v)) r.fail("Histogram.custom_values", `custom bound ${i + 1} is NaN`, at)
      if (i > 0 && v <= prev) r.fail("Histogram.custom_values", `custom bounds not strictly increasing (${prev}, then ${v})`, at)
      prev = v
    }
    if (prev === Infinity) r.fail("Histogram.custom_values", "the last custom bound is +Inf (it is implied)", at)
    const length = checkSpans(positive, false)
    if (customValues.length + 1 < length) {
      r.fail("Histogram.custom_values", `${customValues.length} custom bounds do not cover spans of total length ${length}`, at)
    }
    if (zeroCount !== 0) r.fail(float ? "Histogram.zero_count_float" : "Histogram.zero_count_int", "custom buckets with a zero count", at)
    if (zeroThreshold !== 0) r.fail("Histogram.zero_threshold", "custom buckets with a zero threshold", at)
    if (negative.spans.length > 0) r.fail("Histogram.negative_spans", "custom buckets with negative spans", at)
    if (negative.counts.length > 0) r.fail(bucketField(negative), "custom buckets with negative buckets", at)
  } else if (schema >= -4 && schema <= 8) {
    checkSpans(positive, true)
    checkSpans(negative, true)
    nCount = checkBuckets(negative)
    if (float && zeroCount < 0) r.fail("Histogram.zero_count_float", `negative zero count ${zeroCount}`, at)
    if (customValues.length > 0) r.fail("Histogram.custom_values", `custom values with exponential schema ${schema}`, at)
  } else {
    r.fail("Histogram.schema", `invalid schema ${schema}: must be -4..8 (exponential buckets) or -53 (custom buckets)`, at)
  }
  if (float && count < 0) r.fail("Histogram.count_float", `negative count ${count}`, at)
  const pCount = checkBuckets(positive)
  if (!float) {
    // Bucket counts are safe integers; a total past 2^53 is inexact but then surely above the count.
    const inBuckets = nCount + pCount + zeroCount
    if (Number.isNaN(sum)) {
      if (inBuckets > count) r.fail("Histogram.count_int", `${inBuckets} observations in the buckets, more than the count ${count}`, at)
    } else if (inBuckets !== count) {
      r.fail("Histogram.count_int", `${inBuckets} observations in the buckets, but the count is ${count}`, at)
    }
  }
  const histogram = new FloatHistogram({
    counterResetHint: resetHints[hint] ?? "unknown",
    schema,
    zeroThreshold,
    zeroCount,
    count,
    sum,
    positiveSpans: positive.spans,
    negativeSpans: negative.spans,
    positiveBuckets: positive.counts,
    negativeBuckets: negative.counts,
    customValues
  })
  return startMs === 0 ? { timestampMs, histogram } : { timestampMs, histogram, startTimestampMs: startMs }
}

// ---------------------------------------------------------------------------------------------------
// v1: prometheus.WriteRequest

// Tags: field number << 3 | wire type.
const V1_REQ_TIMESERIES = 0x0a // 1, LEN
const V1_REQ_METADATA = 0x1a // 3, LEN
const V1_REQ_KNOWN = (1 << 1) | (1 << 3)
const V1_TS_LABELS = 0x0a // 1, LEN
const V1_TS_SAMPLES = 0x12 // 2, LEN
const V1_TS_EXEMPLARS = 0x1a // 3, LEN
const V1_TS_HISTOGRAMS = 0x22 // 4, LEN
const V1_TS_KNOWN = (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4)
const LABEL_NAME = 0x0a // 1, LEN
const LABEL_VALUE = 0x12 // 2, LEN
const LABEL_KNOWN = (1 << 1) | (1 << 2)
const SAMPLE_VALUE = 0x09 // 1, I64
const SAMPLE_TIMESTAMP = 0x10 // 2, VARINT
const V2_SAMPLE_START = 0x18 // 3, VARINT (v2 only)
const V1_SAMPLE_KNOWN = (1 << 1) | (1 << 2)
const V2_SAMPLE_KNOWN = (1 << 1) | (1 << 2) | (1 << 3)
const EXEMPLAR_LABELS = 0x0a // 1, LEN (v1 Label messages; v2 packed refs)
const V2_EXEMPLAR_LABEL_REF = 0x08 // 1, VARINT (v2 unpacked ref)
const EXEMPLAR_VALUE = 0x11 // 2, I64
const EXEMPLAR_TIMESTAMP = 0x18 // 3, VARINT
const EXEMPLAR_KNOWN = (1 << 1) | (1 << 2) | (1 << 3)
const V1_MD_TYPE = 0x08 // 1, VARINT
const V1_MD_NAME = 0x12 // 2, LEN
const V1_MD_HELP = 0x22 // 4, LEN
const V1_MD_UNIT = 0x2a // 5, LEN
const V1_MD_KNOWN = (1 << 1) | (1 << 2) | (1 << 4) | (1 << 5)

/**
 * Decodes a (decompressed) `prometheus.WriteRequest`. Throws `RemoteWriteDecodeError` if malformed,
 * `RemoteWriteLimitError` if over `limits` (defaults: the exported `limits`).
 */
export const decodeWriteRequestV1 = (
  bytes: Uint8Array,
  overrides: Partial<RemoteWriteLimits> = limits,
  /** Label sets decoded before, to take instead of decoding them again (see `LabelsInterner`). */
  interner?: LabelsInterner | undefined,
  /**
   * Float samples as columns (`Series.sampleColumns`, `samples` left empty) rather than an object each:
   * what a server that only stores them wants; with a pool, in buffers taken from it (give them back with
   * `pool.release(request)`).
   */
  columns: boolean | ColumnPool = false
): WriteRequestV1 => {
  try {
    return decodeV1(bytes, resolveLimits(overrides), interner, columns)
  } finally {
    clearScratch()
  }
}

/**
 * The columns start with room for this many samples, or for as many as the request could hold if fewer (a
 * sample takes at least 13 bytes in the shape senders write), and double as needed.
 */
const columnsFirstCapacity = 4096
const sampleBytesMin = 13

const decodeV1 = (bytes: Uint8Array, lim: RemoteWriteLimits, interner: LabelsInterner | undefined, columnar: boolean | ColumnPool): WriteRequestV1 => {
  const r = new Reader(bytes)
  const end = bytes.length
  const columns = columnar === false
    ? undefined
    : new ColumnSink(Math.min(columnsFirstCapacity, lim.maxSamplesPerRequest, Math.ceil(bytes.length / sampleBytesMin)) + 1, columnar === true ? undefined : columnar)
  const c: Counters = { lim, interner, samples: 0, histograms: 0, exemplars: 0, columns }
  const series: Array<Series> = []
  const metadata: Array<Metadata> = []
  while (r.pos < end) {
    const at = r.pos
    const tag = r.uint32(end, "WriteRequest")
    if (tag === V1_REQ_TIMESERIES) {
      const stop = r.len(end, "WriteRequest.timeseries")
      if (series.length >= lim.maxSeriesPerRequest) {
        throw new RemoteWriteLimitError("maxSeriesPerRequest", lim.maxSeriesPerRequest)
      }
      series.push(decodeSeriesV1(r, stop, c))
    } else if (tag === V1_REQ_METADATA) {
      const stop = r.len(end, "WriteRequest.metadata")
      if (metadata.length >= lim.maxMetadataPerRequest) {
        throw new RemoteWriteLimitError("maxMetadataPerRequest", lim.maxMetadataPerRequest)
      }
      metadata.push(decodeMetadataV1(r, stop))
    } else r.other(tag, V1_REQ_KNOWN, end, "WriteRequest", at)
  }
  const request: WriteRequestV1 = { series, metadata, histograms: c.histograms, exemplars: c.exemplars }
  columns?.finish(request)
  return request
}

const decodeSeriesV1 = (r: Reader, end: number, c: Counters): Series => {
  const start = r.pos
  const lim = c.lim
  // Collected in scratch arrays, then copied to exact-size ones (less to allocate and to collect).
  const labels = labelScratch
  const samples = sampleScratch
  labels.length = 0
  samples.length = 0
  // A label set seen before (the same bytes) is taken as it was decoded then.
  let known: Array<[string, string]> | undefined
  let runEnd = start
  let runHash = 0
  if (c.interner !== undefined) {
    runEnd = labelRunEnd(r.buf, start, end)
    if (runEnd > start) {
      runHash = hashBytes(r.buf, start, runEnd)
      known = c.interner.find(r.text, start, runEnd, runHash)
      if (known !== undefined) r.pos = runEnd
    }
  }
  /** The counts before this series, to count it again if it is decoded again. */
  const counted = { samples: c.samples, histograms: c.histograms, exemplars: c.exemplars }
  const columns = c.columns
  const columnsFrom = columns?.n ?? 0
  let exemplars: Array<ExemplarSample> | undefined
  let histograms: Array<HistogramSample> | undefined
  /** Whether a label field came after another field. */
  let interleaved = false
  let other = false
  while (r.pos < end) {
    const at = r.pos
    const tag = r.uint32(end, "TimeSeries")
    switch (tag) {
      case V1_TS_SAMPLES: {
        other = true
        let stop = r.len(end, "TimeSeries.samples")
        const buf = r.buf
        // This sample, then those that follow it with a one-byte length (most of a request's bytes).
        for (;;) {
          countSample(c)
          let t: number
          let v: number
          if (decodeSampleV1Fast(r, stop)) {
            t = r.sampleT
            v = r.sampleV
          } else {
            const sample = decodeSampleV1(r, stop)
            t = sample.timestampMs
            v = sample.value
          }
          if (columns === undefined) samples.push({ timestampMs: t, value: v })
          else columns.push(t, v)
          const at = r.pos
          if (!(at + 2 < end && buf[at] === V1_TS_SAMPLES && buf[at + 1]! < 0x80 && at + 2 + buf[at + 1]! <= end)) break
          stop = at + 2 + buf[at + 1]!
          r.pos = at + 2
        }
        break
      }
      case V1_TS_LABELS: {
        // Labels after other fields: not the run looked up, so decoded (all of them) after all.
        if (known !== undefined) {
          r.pos = start
          known = undefined
          runEnd = start
          samples.length = 0
          if (columns !== undefined) columns.n = columnsFrom
          exemplars = undefined
          histograms = undefined
          other = false
          c.samples = counted.samples
          c.histograms = counted.histograms
          c.exemplars = counted.exemplars
          continue
        }
        if (other) interleaved = true
        const stop = r.len(end, "TimeSeries.labels")
        if (labels.length >= lim.maxLabelsPerSeries) {
          throw new RemoteWriteLimitError("maxLabelsPerSeries", lim.maxLabelsPerSeries)
        }
        labels.push(decodeLabel(r, stop, lim))
        break
      }
      case V1_TS_EXEMPLARS: {
        other = true
        const stop = r.len(end, "TimeSeries.exemplars")
        ;(exemplars ??= []).push(decodeExemplarV1(r, stop, lim))
        c.exemplars++
        break
      }
      case V1_TS_HISTOGRAMS: {
        other = true
        const stop = r.len(end, "TimeSeries.histograms")
        countSample(c)
        ;(histograms ??= []).push(decodeHistogram(r, stop, lim, false))
        c.histograms++
        break
      }
      default:
        other = true
        r.other(tag, V1_TS_KNOWN, end, "TimeSeries", at)
    }
  }
  if (known !== undefined) {
    const series: Series = { labels: known, samples: samples.slice() }
    if (histograms !== undefined) series.histograms = histograms
    if (exemplars !== undefined) series.exemplars = exemplars
    samples.length = 0
    columns?.close(series, columnsFrom)
    return series
  }
  finishLabels(r, labels, "TimeSeries.labels", start)
  const series = take(labels, samples)
  columns?.close(series, columnsFrom)
  if (histograms !== undefined) series.histograms = histograms
  if (exemplars !== undefined) series.exemplars = exemplars
  // Only a series whose labels are the run at its start is remembered (its bytes are its labels').
  if (c.interner !== undefined && runEnd > start && !interleaved) c.interner.add(r.text, start, runEnd, runHash, series.labels)
  return series
}



const decodeLabel = (r: Reader, end: number, lim: RemoteWriteLimits): [string, string] => {
  const start = r.pos
  let name = ""
  let value = ""
  while (r.pos < end) {
    const at = r.pos
    const tag = r.uint32(end, "Label")
    if (tag === LABEL_NAME) name = r.labelName(end, "Label.name", lim.maxLabelNameBytes, "maxLabelNameBytes")
    else if (tag === LABEL_VALUE) value = r.string(end, "Label.value", lim.maxLabelValueBytes, "maxLabelValueBytes")
    else r.other(tag, LABEL_KNOWN, end, "Label", at)
  }
  if (name === "") r.fail("Label.name", "empty label name", start)
  return [name, value]
}

/**
 * A sample in the shape every sender writes: the value (field 1), then a non-negative timestamp (field 2)
 * of at most 7 varint bytes, and nothing else: read into `r.sampleT` and `r.sampleV`. False (nothing read)
 * for any other shape, which `decodeSampleV1` then reads field by field.
 */
const decodeSampleV1Fast = (r: Reader, end: number): boolean => {
  const buf = r.buf
  const start = r.pos
  if (end - start < 11 || buf[start] !== SAMPLE_VALUE || buf[start + 9] !== SAMPLE_TIMESTAMP) return false
  let at = start + 10
  let timestampMs = 0
  let mul = 1
  for (let i = 0; i < 7 && at < end; i++) {
    const b = buf[at++]!
    timestampMs += (b & 0x7f) * mul
    if (b < 0x80) {
      if (at !== end) return false
      r.pos = at
      r.sampleT = timestampMs
      r.sampleV = r.view.getFloat64(start + 1, true)
      return true
    }
    mul *= 128
  }
  return false
}

const decodeSampleV1 = (r: Reader, end: number): Sample => {
  let value = 0
  let timestampMs = 0
  while (r.pos < end) {
    const at = r.pos
    const tag = r.uint32(end, "Sample")
    if (tag === SAMPLE_VALUE) value = r.double(end, "Sample.value")
    else if (tag === SAMPLE_TIMESTAMP) timestampMs = r.int64(end, "Sample.timestamp")
    else r.other(tag, V1_SAMPLE_KNOWN, end, "Sample", at)
  }
  return { timestampMs, value }
}

/** An exemplar: its labels (strings checked as UTF-8 and against the label limits), value and timestamp. */
const decodeExemplarV1 = (r: Reader, end: number, lim: RemoteWriteLimits): ExemplarSample => {
  const labels: Array<[string, string]> = []
  let value = 0
  let timestampMs = 0
  while (r.pos < end) {
    const at = r.pos
    const tag = r.uint32(end, "Exemplar")
    if (tag === EXEMPLAR_LABELS) {
      const stop = r.len(end, "Exemplar.labels")
      let name = ""
      let text = ""
      while (r.pos < stop) {
        const lat = r.pos
        const ltag = r.uint32(stop, "Exemplar.labels")
        if (ltag === LABEL_NAME) name = r.string(stop, "Exemplar.labels.name", lim.maxLabelNameBytes, "maxLabelNameBytes")
        else if (ltag === LABEL_VALUE) text = r.string(stop, "Exemplar.labels.value", lim.maxLabelValueBytes, "maxLabelValueBytes")
        else r.other(ltag, LABEL_KNOWN, stop, "Exemplar.labels", lat)
      }
      if (labels.length >= lim.maxLabelsPerSeries) throw new RemoteWriteLimitError("maxLabelsPerSeries", lim.maxLabelsPerSeries, "labels of one exemplar")
      labels.push([name, text])
    } else if (tag === EXEMPLAR_VALUE) value = r.double(end, "Exemplar.value")
    else if (tag === EXEMPLAR_TIMESTAMP) timestampMs = r.int64(end, "Exemplar.timestamp")
    else r.other(tag, EXEMPLAR_KNOWN, end, "Exemplar", at)
  }
  return { labels, value, timestampMs }
}

const decodeMetadataV1 = (r: Reader, end: number): Metadata => {
  let type = 0
  let metric = ""
  let help = ""
  let unit = ""
  while (r.pos < end) {
    const at = r.pos
    const tag = r.uint32(end, "MetricMetadata")
    switch (tag) {
      case V1_MD_TYPE:
        type = r.int32(end, "MetricMetadata.type")
        break
      case V1_MD_NAME:
        metric = r.stringTo(r.len(end, "MetricMetadata.metric_family_name"), "MetricMetadata.metric_family_name")
        break
      case V1_MD_HELP:
        help = r.stringTo(r.len(end, "MetricMetadata.help"), "MetricMetadata.help")
        break
      case V1_MD_UNIT:
        unit = r.stringTo(r.len(end, "MetricMetadata.unit"), "MetricMetadata.unit")
        break
      default:
        r.other(tag, V1_MD_KNOWN, end, "MetricMetadata", at)
    }
  }
  return { metric, type: typeName(type), help, unit }
}

// ---------------------------------------------------------------------------------------------------
// v2: io.prometheus.write.v2.Request

const V2_REQ_SYMBOLS = 0x22 // 4, LEN
const V2_REQ_TIMESERIES = 0x2a // 5, LEN
const V2_REQ_KNOWN = (1 << 4) | (1 << 5)
const V2_TS_LABELS_PACKED = 0x0a // 1, LEN
const V2_TS_LABEL_REF = 0x08 // 1, VARINT (unpacked)
const V2_TS_SAMPLES = 0x12 // 2, LEN
const V2_TS_HISTOGRAMS = 0x1a // 3, LEN
const V2_TS_EXEMPLARS = 0x22 // 4, LEN
const V2_TS_METADATA = 0x2a // 5, LEN
/** Field 6, reserved since v2.0-rc.4; before that `int64 created_timestamp`: read as the samples' default start. */
const V2_TS_CREATED_LEGACY = 0x30 // 6, VARINT
const V2_TS_KNOWN = (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5)
const V2_MD_TYPE = 0x08 // 1, VARINT
const V2_MD_HELP = 0x18 // 3, VARINT
const V2_MD_UNIT = 0x20 // 4, VARINT
const V2_MD_KNOWN = (1 << 1) | (1 << 3) | (1 << 4)

interface SymbolTable {
  readonly strings: Array<string>
  /** UTF-8 byte length of each symbol. */
  readonly bytes: Array<number>
  /** Per symbol: 0 not yet checked as a label name, 1 valid name, 2 invalid. */
  readonly nameState: Uint8Array
}

/**
 * Decodes a (decompressed) `io.prometheus.write.v2.Request`, resolving symbol references. Throws
 * `RemoteWriteDecodeError` if malformed (including a reference outside the symbols table or an odd
 * `labels_refs`), `RemoteWriteLimitError` if over `limits`.
 *
 * Metadata is per series in v2: each series' metadata (when set) becomes an entry for its `__name__`,
 * identical entries merged. A v1 body decodes as an empty request (its fields 1 and 3 are reserved in v2).
 */
export const decodeWriteRequestV2 = (bytes: Uint8Array, overrides: Partial<RemoteWriteLimits> = limits): WriteRequestV2 => {
  try {
    return decodeV2(bytes, resolveLimits(overrides))
  } finally {
    clearScratch()
  }
}

const decodeV2 = (bytes: Uint8Array, lim: RemoteWriteLimits): WriteRequestV2 => {
  const r = new Reader(bytes)
  const end = bytes.length
  // Pass 1: the symbols table (which may come after the series on the wire) and where each series is.
  const strings: Array<string> = []
  const lengths: Array<number> = []
  const spans: Array<number> = []
  while (r.pos < end) {
    const at = r.pos
    const tag = r.uint32(end, "Request")
    if (tag === V2_REQ_SYMBOLS) {
      const stop = r.len(end, "Request.symbols")
      if (strings.length >= lim.maxSymbolsPerRequest) {
        throw new RemoteWriteLimitError("maxSymbolsPerRequest", lim.maxSymbolsPerRequest)
      }
      lengths.push(stop - r.pos)
      strings.push(r.stringTo(stop, "Request.symbols"))
    } else if (tag === V2_REQ_TIMESERIES) {
      const stop = r.len(end, "Request.timeseries")
      if (spans.length >= 2 * lim.maxSeriesPerRequest) {
        throw new RemoteWriteLimitError("maxSeriesPerRequest", lim.maxSeriesPerRequest)
      }
      spans.push(r.pos, stop)
      r.pos = stop
    } else r.other(tag, V2_REQ_KNOWN, end, "Request", at)
  }
  // Pass 2: the series.
  const symbols: SymbolTable = { strings, bytes: lengths, nameState: new Uint8Array(strings.length) }
  const c: Counters = { lim, interner: undefined, samples: 0, histograms: 0, exemplars: 0 }
  const series: Array<Series> = []
  const metadata: Array<Metadata> = []
  const seen = new Map<string, Array<Metadata>>()
  const refs: Array<number> = []
  for (let i = 0; i < spans.length; i += 2) {
    r.pos = spans[i]!
    series.push(decodeSeriesV2(r, spans[i + 1]!, c, symbols, refs, metadata, seen))
  }
  return { series, metadata, histograms: c.histograms, exemplars: c.exemplars }
}

const symbolRef = (r: Reader, ref: number, symbols: SymbolTable, field: string, at: number): string => {
  const s = symbols.strings[ref]
  if (s === undefined) r.fail(field, `symbol reference ${ref} out of range (${symbols.strings.length} symbols)`, at)
  return s
}

const validName = (s: string): boolean => {
  if (s.length === 0) return false
  const first = s.charCodeAt(0)
  if (first >= 0x80 || (labelNameBytes[first]! & 1) === 0) return false
  for (let i = 1; i < s.length; i++) {
    const ch = s.charCodeAt(i)
    if (ch >= 0x80 || (labelNameBytes[ch]! & 2) === 0) return false
  }
  return true
}

/** Reads label refs (packed or not) into `refs`, refusing more than `max` pairs. */
const readRefs = (r: Reader, tag: number, end: number, refs: Array<number>, maxPairs: number, field: string): void => {
  if (tag === V2_TS_LABEL_REF) {
    if (refs.length >= 2 * maxPairs) throw new RemoteWriteLimitError("maxLabelsPerSeries", maxPairs)
    refs.push(r.uint32(end, field))
    return
  }
  const stop = r.len(end, field)
  while (r.pos < stop) {
    if (refs.length >= 2 * maxPairs) throw new RemoteWriteLimitError("maxLabelsPerSeries", maxPairs)
    refs.push(r.uint32(stop, field))
  }
}

const decodeSeriesV2 = (
  r: Reader,
  end: number,
  c: Counters,
  symbols: SymbolTable,
  refs: Array<number>,
  metadata: Array<Metadata>,
  seen: Map<string, Array<Metadata>>
): Series => {
  const start = r.pos
  const lim = c.lim
  const samples = sampleScratch
  samples.length = 0
  refs.length = 0
  let mdPresent = false
  let mdType = 0
  let mdHelp = 0
  let mdUnit = 0
  let mdAt = 0
  let created = 0
  let exemplars: Array<ExemplarSample> | undefined
  let histograms: Array<HistogramSample> | undefined
  while (r.pos < end) {
    const at = r.pos
    const tag = r.uint32(end, "TimeSeries")
    switch (tag) {
      case V2_TS_SAMPLES: {
        const stop = r.len(end, "TimeSeries.samples")
        countSample(c)
        samples.push(decodeSampleV2(r, stop))
        break
      }
      case V2_TS_LABELS_PACKED:
      case V2_TS_LABEL_REF:
        readRefs(r, tag, end, refs, lim.maxLabelsPerSeries, "TimeSeries.labels_refs")
        break
      case V2_TS_HISTOGRAMS: {
        const stop = r.len(end, "TimeSeries.histograms")
        countSample(c)
        ;(histograms ??= []).push(decodeHistogram(r, stop, lim, true))
        c.histograms++
        break
      }
      case V2_TS_EXEMPLARS: {
        const stop = r.len(end, "TimeSeries.exemplars")
        ;(exemplars ??= []).push(decodeExemplarV2(r, stop, symbols, lim))
        c.exemplars++
        break
      }
      case V2_TS_METADATA: {
        // A singular message field seen twice is merged (last value of each field wins).
        const stop = r.len(end, "TimeSeries.metadata")
        mdPresent = true
        mdAt = at
        while (r.pos < stop) {
          const mat = r.pos
          const mtag = r.uint32(stop, "Metadata")
          if (mtag === V2_MD_TYPE) mdType = r.int32(stop, "Metadata.type")
          else if (mtag === V2_MD_HELP) mdHelp = r.uint32(stop, "Metadata.help_ref")
          else if (mtag === V2_MD_UNIT) mdUnit = r.uint32(stop, "Metadata.unit_ref")
          else r.other(mtag, V2_MD_KNOWN, stop, "Metadata", mat)
        }
        break
      }
      case V2_TS_CREATED_LEGACY:
        created = r.int64(end, "TimeSeries.created_timestamp")
        break
      default:
        r.other(tag, V2_TS_KNOWN, end, "TimeSeries", at)
    }
  }
  // Labels.
  const n = refs.length
  if ((n & 1) !== 0) r.fail("TimeSeries.labels_refs", `odd number of references (${n})`, start)
  const labels = labelScratch
  labels.length = 0
  const { strings, bytes, nameState } = symbols
  let metric = ""
  for (let i = 0; i < n; i += 2) {
    const nameRef = refs[i]!
    const valueRef = refs[i + 1]!
    const name = symbolRef(r, nameRef, symbols, "TimeSeries.labels_refs", start)
    const value = symbolRef(r, valueRef, symbols, "TimeSeries.labels_refs", start)
    let state = nameState[nameRef]!
    if (state === 0) {
      state = validName(name) ? 1 : 2
      nameState[nameRef] = state
    }
    if (state !== 1) {
      r.fail("TimeSeries.labels_refs", name === "" ? "empty label name" : `invalid label name ${JSON.stringify(name)}`, start)
    }
    if (bytes[nameRef]! > lim.maxLabelNameBytes) {
      throw new RemoteWriteLimitError("maxLabelNameBytes", lim.maxLabelNameBytes, `label name of ${bytes[nameRef]} bytes`)
    }
    if (bytes[valueRef]! > lim.maxLabelValueBytes) {
      throw new RemoteWriteLimitError("maxLabelValueBytes", lim.maxLabelValueBytes, `label value of ${bytes[valueRef]} bytes`)
    }
    if (name === "__name__") metric = value
    labels.push([name, value])
  }
  finishLabels(r, labels, "TimeSeries.labels_refs", start)
  if (created !== 0) {
    for (const s of samples) if (s.startTimestampMs === undefined) s.startTimestampMs = created
    if (histograms !== undefined) for (const h of histograms) if (h.startTimestampMs === undefined) h.startTimestampMs = created
  }
  // Metadata.
  if (mdPresent) {
    // An empty table allows the "unset" reference 0 (the spec requires symbols[0] === "").
    const empty = strings.length === 0
    const help = empty && mdHelp === 0 ? "" : symbolRef(r, mdHelp, symbols, "Metadata.help_ref", mdAt)
    const unit = empty && mdUnit === 0 ? "" : symbolRef(r, mdUnit, symbols, "Metadata.unit_ref", mdAt)
    if (metric !== "" && (mdType !== 0 || help !== "" || unit !== "")) {
      const type = typeName(mdType)
      let same = seen.get(metric)
      if (same === undefined) {
        same = []
        seen.set(metric, same)
      }
      if (!same.some((m) => m.type === type && m.help === help && m.unit === unit)) {
        if (metadata.length >= lim.maxMetadataPerRequest) {
          throw new RemoteWriteLimitError("maxMetadataPerRequest", lim.maxMetadataPerRequest)
        }
        const m: Metadata = { metric, type, help, unit }
        same.push(m)
        metadata.push(m)
      }
    }
  }
  const series = take(labels, samples)
  if (histograms !== undefined) series.histograms = histograms
  if (exemplars !== undefined) series.exemplars = exemplars
  return series
}

const decodeSampleV2 = (r: Reader, end: number): Sample => {
  let value = 0
  let timestampMs = 0
  let start = 0
  while (r.pos < end) {
    const at = r.pos
    const tag = r.uint32(end, "Sample")
    if (tag === SAMPLE_VALUE) value = r.double(end, "Sample.value")
    else if (tag === SAMPLE_TIMESTAMP) timestampMs = r.int64(end, "Sample.timestamp")
    else if (tag === V2_SAMPLE_START) start = r.int64(end, "Sample.start_timestamp")
    else r.other(tag, V2_SAMPLE_KNOWN, end, "Sample", at)
  }
  return start === 0 ? { timestampMs, value } : { timestampMs, value, startTimestampMs: start }
}

/** A symbol reference of an exemplar's labels, resolved. */
const exemplarRef = (r: Reader, end: number, symbols: SymbolTable): number => {
  const at = r.pos
  const ref = r.uint32(end, "Exemplar.labels_refs")
  if (ref >= symbols.strings.length) r.fail("Exemplar.labels_refs", `symbol reference ${ref} out of range (${symbols.strings.length} symbols)`, at)
  return ref
}

/** An exemplar: its labels (resolved symbol pairs, checked against the label limits), value and timestamp. */
const decodeExemplarV2 = (r: Reader, end: number, symbols: SymbolTable, lim: RemoteWriteLimits): ExemplarSample => {
  const refs: Array<number> = []
  let value = 0
  let timestampMs = 0
  const start = r.pos
  while (r.pos < end) {
    const at = r.pos
    const tag = r.uint32(end, "Exemplar")
    if (tag === EXEMPLAR_LABELS || tag === V2_EXEMPLAR_LABEL_REF) {
      if (tag === V2_EXEMPLAR_LABEL_REF) refs.push(exemplarRef(r, end, symbols))
      else {
        const stop = r.len(end, "Exemplar.labels_refs")
        while (r.pos < stop) refs.push(exemplarRef(r, stop, symbols))
      }
      if (refs.length > 2 * lim.maxLabelsPerSeries) throw new RemoteWriteLimitError("maxLabelsPerSeries", lim.maxLabelsPerSeries, "labels of one exemplar")
    } else if (tag === EXEMPLAR_VALUE) value = r.double(end, "Exemplar.value")
    else if (tag === EXEMPLAR_TIMESTAMP) timestampMs = r.int64(end, "Exemplar.timestamp")
    else r.other(tag, EXEMPLAR_KNOWN, end, "Exemplar", at)
  }
  if ((refs.length & 1) !== 0) r.fail("Exemplar.labels_refs", `odd number of references (${refs.length})`, start)
  const labels: Array<[string, string]> = []
  for (let i = 0; i < refs.length; i += 2) {
    if (symbols.bytes[refs[i]!]! > lim.maxLabelNameBytes) throw new RemoteWriteLimitError("maxLabelNameBytes", lim.maxLabelNameBytes, "an exemplar label name")
    if (symbols.bytes[refs[i + 1]!]! > lim.maxLabelValueBytes) throw new RemoteWriteLimitError("maxLabelValueBytes", lim.maxLabelValueBytes, "an exemplar label value")
    labels.push([symbols.strings[refs[i]!]!, symbols.strings[refs[i + 1]!]!])
  }
  return { labels, value, timestampMs }
}

/** For callers that need it: both error classes, to tell 400 from 413. */
export const isRemoteWriteError = (e: unknown): e is RemoteWriteDecodeError | RemoteWriteLimitError =>
  e instanceof RemoteWriteDecodeError || e instanceof RemoteWriteLimitError
