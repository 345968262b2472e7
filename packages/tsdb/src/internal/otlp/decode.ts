/**
 * OTLP metrics (`ExportMetricsServiceRequest`, opentelemetry-proto `metrics/v1`) as protobuf or as OTLP/JSON,
 * decoded to one plain shape that `translate.ts` turns into Prometheus series.
 *
 * Only what the translation reads is kept: resource and point attributes (as strings), metric name,
 * description, unit, kind, temporality and monotonicity, and the points' times (and start times, when set:
 * delta points are accumulated by them), values, counts, buckets, quantiles and flags; of exponential
 * histogram points their scale, zero bucket and positive and negative buckets (`translate.ts` makes them
 * native histograms).
 * Malformed input throws `RemoteWriteDecodeError` (a 400); nothing else is thrown. Lengths are bounded by the
 * bytes left, and every point counts against `pointsMax` as it is read.
 */
import { Buffer } from "node:buffer"
import { RemoteWriteDecodeError, RemoteWriteLimitError } from "../remoteWrite/errors.ts"
import { Reader, WIRE_FIXED64, WIRE_LEN, WIRE_VARINT, Writer } from "../remoteWrite/wire.ts"

/** An attribute with its value as Prometheus will see it (a label value). */
export interface Attribute {
  readonly key: string
  readonly value: string
}

export type MetricKind = "gauge" | "sum" | "histogram" | "exponentialHistogram" | "summary" | "empty"

/** `AggregationTemporality`: 0 unspecified, 1 delta, 2 cumulative. */
export const temporalityDelta = 1
export const temporalityCumulative = 2
/** `DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK`: the point marks the series as gone (stale). */
export const flagNoRecordedValue = 1

/** An exemplar of a data point: its filtered attributes, trace and span ids (hex), value and time. */
export interface Exemplar {
  readonly attributes: ReadonlyArray<Attribute>
  readonly traceId: string
  readonly spanId: string
  readonly value: number
  readonly timeMs: number
}

export interface NumberPoint {
  readonly attributes: ReadonlyArray<Attribute>
  /** Milliseconds since the epoch (nanoseconds truncated). */
  readonly timeMs: number
  /** `start_time_unix_nano` in milliseconds; absent when the point has none (0). */
  readonly startTimeMs?: number
  readonly value: number
  readonly flags: number
  readonly exemplars: ReadonlyArray<Exemplar>
}

export interface HistogramPoint {
  readonly attributes: ReadonlyArray<Attribute>
  readonly timeMs: number
  readonly startTimeMs?: number
  readonly count: number
  readonly sum: number | undefined
  readonly bucketCounts: ReadonlyArray<number>
  readonly explicitBounds: ReadonlyArray<number>
  readonly flags: number
  readonly exemplars: ReadonlyArray<Exemplar>
}

/** One side of an exponential histogram: `bucketCounts[i]` counts the bucket of index `offset + i`. */
export interface ExponentialBuckets {
  /** The index of the first bucket: bucket i covers (base^i, base^(i+1)], base = 2^(2^-scale). */
  readonly offset: number
  readonly bucketCounts: ReadonlyArray<number>
}

export interface ExponentialHistogramPoint {
  readonly attributes: ReadonlyArray<Attribute>
  readonly timeMs: number
  readonly startTimeMs?: number
  readonly count: number
  /** Absent when the point has none (`optional double sum`). */
  readonly sum: number | undefined
  readonly scale: number
  readonly zeroCount: number
  /** The width of the zero bucket, [-zeroThreshold, zeroThreshold]; 0 when unset. */
  readonly zeroThreshold: number
  readonly positive: ExponentialBuckets
  readonly negative: ExponentialBuckets
  readonly flags: number
  readonly exemplars: ReadonlyArray<Exemplar>
}

export interface SummaryPoint {
  readonly attributes: ReadonlyArray<Attribute>
  readonly timeMs: number
  readonly count: number
  readonly sum: number
  readonly quantiles: ReadonlyArray<readonly [quantile: number, value: number]>
  readonly flags: number
}

export interface Metric {
  readonly name: string
  readonly description: string
  readonly unit: string
  readonly kind: MetricKind
  /** For sums, histograms and exponential histograms. */
  readonly temporality: number
  /** For sums. */
  readonly monotonic: boolean
  readonly numberPoints: ReadonlyArray<NumberPoint>
  readonly histogramPoints: ReadonlyArray<HistogramPoint>
  readonly summaryPoints: ReadonlyArray<SummaryPoint>
  readonly exponentialHistogramPoints: ReadonlyArray<ExponentialHistogramPoint>
}

export interface ScopeMetrics {
  readonly name: string
  readonly version: string
  readonly metrics: ReadonlyArray<Metric>
}

export interface ResourceMetrics {
  readonly resource: ReadonlyArray<Attribute>
  readonly scopes: ReadonlyArray<ScopeMetrics>
}

export interface MetricsRequest {
  readonly resources: ReadonlyArray<ResourceMetrics>
  /** Data points of every kind. */
  readonly points: number
}

export interface DecodeLimits {
  /** Data points in one request, of every kind. */
  readonly pointsMax: number
  /** Bytes of one attribute key or value, and of a metric name. */
  readonly stringBytesMax: number
  /** Buckets, bounds, quantiles or exemplars in one point (explicit histograms, summaries). */
  readonly bucketsMax: number
  /**
   * Buckets on each side (positive, negative) of one exponential histogram point. SDKs keep at most 160
   * by default (`max_size`); at schema 8 (the finest native histograms) 16,384 buckets span 64 powers
   * of two (2^-32 to 2^32).
   */
  readonly exponentialBucketsMax: number
}

export const decodeLimits: DecodeLimits = { pointsMax: 1_000_000, stringBytesMax: 16_384, bucketsMax: 4_096, exponentialBucketsMax: 16_384 }

const tooMany = (limits: DecodeLimits): never => {
  throw new RemoteWriteLimitError("pointsMax", limits.pointsMax, "data points in one OTLP request")
}

// -------------------------------------------------------------------------------------------------
// Attribute values as label values
// -------------------------------------------------------------------------------------------------

/** An attribute value in JSON (for arrays and maps), as Prometheus writes them in labels. */
type Json = string | number | boolean | null | Array<Json> | { [key: string]: Json }

/** A float as Go's `strconv.FormatFloat(v, 'g', -1, 64)` would not matter here: the shortest round trip. */
const floatText = (v: number): string =>
  Number.isNaN(v) ? "NaN" : v === Infinity ? "+Inf" : v === -Infinity ? "-Inf" : String(v)

// -------------------------------------------------------------------------------------------------
// Protobuf
// -------------------------------------------------------------------------------------------------

const TWO_32 = 4294967296

/** A fixed64 as a number (exact below 2^53; nanosecond timestamps lose only sub-microsecond bits). */
const fixed64 = (r: Reader, end: number, field: string): number => {
  if (end - r.pos < 8) r.fail(field, "truncated fixed64")
  const lo = r.view.getUint32(r.pos, true)
  const hi = r.view.getUint32(r.pos + 4, true)
  r.pos += 8
  return hi * TWO_32 + lo
}

/** A sfixed64 as a number. */
const sfixed64 = (r: Reader, end: number, field: string): number => {
  if (end - r.pos < 8) r.fail(field, "truncated fixed64")
  const lo = r.view.getUint32(r.pos, true)
  const hi = r.view.getInt32(r.pos + 4, true)
  r.pos += 8
  return hi * TWO_32 + lo
}

/** Nanoseconds (as a double: exact only below 2^53) to milliseconds; prefer `fixed64Ms` and `nanosTextToMs`. */
const nanosToMs = (ns: number) => Math.floor(ns / 1e6)

/** A fixed64 of nanoseconds as whole milliseconds, exactly (a double holds nanoseconds only to ~256 ns). */
const fixed64Ms = (r: Reader, end: number, field: string): number => {
  if (end - r.pos < 8) r.fail(field, "truncated fixed64")
  const ns = r.view.getBigUint64(r.pos, true)
  r.pos += 8
  return Number(ns / 1_000_000n)
}

const expect = (r: Reader, tag: number, wire: number, field: string, at: number) => {
  if ((tag & 7) !== wire) r.fail(field, `wrong wire type ${tag & 7}`, at)
}

const stringField = (r: Reader, end: number, field: string, limits: DecodeLimits) =>
  r.string(end, field, limits.stringBytesMax, "stringBytesMax")

/** An `AnyValue` as JSON (for arrays and maps) or as its label text. */
const anyValue = (r: Reader, stop: number, limits: DecodeLimits, depth: number): Json => {
  if (depth > 16) r.fail("AnyValue", "nested more than 16 deep")
  let value: Json = ""
  while (r.pos < stop) {
    const at = r.pos
    const tag = r.uint32(stop, "AnyValue")
    switch (tag >>> 3) {
      case 1:
        expect(r, tag, WIRE_LEN, "AnyValue.string_value", at)
        value = stringField(r, stop, "AnyValue.string_value", limits)
        break
      case 2:
        expect(r, tag, WIRE_VARINT, "AnyValue.bool_value", at)
        value = r.int32(stop, "AnyValue.bool_value") !== 0
        break
      case 3: {
        expect(r, tag, WIRE_VARINT, "AnyValue.int_value", at)
        value = int64Text(r, stop)
        break
      }
      case 4:
        expect(r, tag, WIRE_FIXED64, "AnyValue.double_value", at)
        value = r.double(stop, "AnyValue.double_value")
        break
      case 5: {
        expect(r, tag, WIRE_LEN, "AnyValue.array_value", at)
        const end = r.len(stop, "AnyValue.array_value")
        const values: Array<Json> = []
        while (r.pos < end) {
          const t = r.uint32(end, "ArrayValue")
          if (t >>> 3 === 1 && (t & 7) === WIRE_LEN) {
            const e = r.len(end, "ArrayValue.values")
            values.push(anyValue(r, e, limits, depth + 1))
          } else r.skip(t & 7, t >>> 3, end, "ArrayValue")
        }
        value = values
        break
      }
      case 6: {
        expect(r, tag, WIRE_LEN, "AnyValue.kvlist_value", at)
        const end = r.len(stop, "AnyValue.kvlist_value")
        const map: { [key: string]: Json } = {}
        while (r.pos < end) {
          const t = r.uint32(end, "KeyValueList")
          if (t >>> 3 === 1 && (t & 7) === WIRE_LEN) {
            const e = r.len(end, "KeyValueList.values")
            const [k, v] = keyValue(r, e, limits, depth + 1)
            map[k] = v
          } else r.skip(t & 7, t >>> 3, end, "KeyValueList")
        }
        value = map
        break
      }
      case 7: {
        expect(r, tag, WIRE_LEN, "AnyValue.bytes_value", at)
        const end = r.len(stop, "AnyValue.bytes_value")
        value = Buffer.from(r.buf.subarray(r.pos, end)).toString("base64")
        r.pos = end
        break
      }
      default:
        r.skip(tag & 7, tag >>> 3, stop, "AnyValue")
    }
  }
  return value
}

/** An int64 varint as decimal text (exact for every int64). */
const int64Text = (r: Reader, end: number): string => {
  let v = 0n
  let shift = 0n
  for (let i = 0; ; i++) {
    if (i === 10) r.fail("AnyValue.int_value", "varint longer than 10 bytes")
    if (r.pos >= end) r.fail("AnyValue.int_value", "truncated varint")
    const b = r.buf[r.pos++]!
    v |= BigInt(b & 0x7f) << shift
    shift += 7n
    if (b < 0x80) break
  }
  return BigInt.asIntN(64, v).toString()
}

const keyValue = (r: Reader, stop: number, limits: DecodeLimits, depth: number): [string, Json] => {
  let key = ""
  let value: Json = ""
  while (r.pos < stop) {
    const at = r.pos
    const tag = r.uint32(stop, "KeyValue")
    switch (tag >>> 3) {
      case 1:
        expect(r, tag, WIRE_LEN, "KeyValue.key", at)
        key = stringField(r, stop, "KeyValue.key", limits)
        break
      case 2: {
        expect(r, tag, WIRE_LEN, "KeyValue.value", at)
        const end = r.len(stop, "KeyValue.value")
        value = anyValue(r, end, limits, depth)
        break
      }
      default:
        r.skip(tag & 7, tag >>> 3, stop, "KeyValue")
    }
  }
  return [key, value]
}

/** The label text of an attribute value: strings as they are, the rest as Prometheus formats them. */
export const labelText = (v: Json): string => {
  if (typeof v === "string") return v
  if (typeof v === "number") return floatText(v)
  if (typeof v === "boolean") return v ? "true" : "false"
  return JSON.stringify(v)
}

const attribute = (r: Reader, stop: number, limits: DecodeLimits): Attribute => {
  const [key, value] = keyValue(r, stop, limits, 0)
  return { key, value: labelText(value) }
}

/** Reads a packed or unpacked repeated fixed64/double field into `out`. */
const repeated64 = (
  r: Reader,
  tag: number,
  stop: number,
  field: string,
  read: (r: Reader, end: number, field: string) => number,
  out: Array<number>,
  limits: DecodeLimits
) => {
  if ((tag & 7) === WIRE_LEN) {
    const end = r.len(stop, field)
    if ((end - r.pos) % 8 !== 0) r.fail(field, "packed fixed64 length not a multiple of 8")
    while (r.pos < end) out.push(read(r, end, field))
  } else if ((tag & 7) === WIRE_FIXED64) {
    out.push(read(r, stop, field))
  } else r.fail(field, `wrong wire type ${tag & 7}`)
  if (out.length > limits.bucketsMax) throw new RemoteWriteLimitError("bucketsMax", limits.bucketsMax, `${field} of one point`)
}

const double = (r: Reader, end: number, field: string) => r.double(end, field)

interface PointCommon {
  attributes: Array<Attribute>
  timeMs: number
  startTimeMs?: number
  flags: number
}

const hex = (r: Reader, end: number, field: string): string => {
  const stop = r.len(end, field)
  const text = Buffer.from(r.buf.subarray(r.pos, stop)).toString("hex")
  r.pos = stop
  return text
}

const exemplar = (r: Reader, stop: number, limits: DecodeLimits): Exemplar => {
  const e: { attributes: Array<Attribute>; traceId: string; spanId: string; value: number; timeMs: number } = {
    attributes: [],
    traceId: "",
    spanId: "",
    value: 0,
    timeMs: 0
  }
  while (r.pos < stop) {
    const at = r.pos
    const tag = r.uint32(stop, "Exemplar")
    switch (tag >>> 3) {
      case 2:
        expect(r, tag, WIRE_FIXED64, "Exemplar.time_unix_nano", at)
        e.timeMs = fixed64Ms(r, stop, "Exemplar.time_unix_nano")
        break
      case 3:
        expect(r, tag, WIRE_FIXED64, "Exemplar.as_double", at)
        e.value = r.double(stop, "Exemplar.as_double")
        break
      case 4:
        expect(r, tag, WIRE_LEN, "Exemplar.span_id", at)
        e.spanId = hex(r, stop, "Exemplar.span_id")
        break
      case 5:
        expect(r, tag, WIRE_LEN, "Exemplar.trace_id", at)
        e.traceId = hex(r, stop, "Exemplar.trace_id")
        break
      case 6:
        expect(r, tag, WIRE_FIXED64, "Exemplar.as_int", at)
        e.value = sfixed64(r, stop, "Exemplar.as_int")
        break
      case 7: {
        expect(r, tag, WIRE_LEN, "Exemplar.filtered_attributes", at)
        const end = r.len(stop, "Exemplar.filtered_attributes")
        e.attributes.push(attribute(r, end, limits))
        break
      }
      default:
        r.skip(tag & 7, tag >>> 3, stop, "Exemplar")
    }
  }
  return e
}

const pushExemplar = (r: Reader, tag: number, stop: number, field: string, at: number, out: Array<Exemplar>, limits: DecodeLimits) => {
  expect(r, tag, WIRE_LEN, field, at)
  const end = r.len(stop, field)
  out.push(exemplar(r, end, limits))
  if (out.length > limits.bucketsMax) throw new RemoteWriteLimitError("bucketsMax", limits.bucketsMax, `${field} of one point`)
}

/**
 * Reads a data point message: the fields every point has (`time_unix_nano` = 3, the attributes and the
 * flags at their numbers in this message) into `p`, the others through `field`, which answers false for a
 * field it does not know (skipped, as protobuf readers skip unknown fields).
 */
const readPoint = (
  r: Reader,
  stop: number,
  message: string,
  numbers: { readonly attributes: number; readonly flags: number },
  p: PointCommon,
  limits: DecodeLimits,
  field: (f: number, tag: number, at: number) => boolean
): void => {
  while (r.pos < stop) {
    const at = r.pos
    const tag = r.uint32(stop, message)
    const f = tag >>> 3
    if (f === 3) {
      expect(r, tag, WIRE_FIXED64, `${message}.time_unix_nano`, at)
      p.timeMs = fixed64Ms(r, stop, `${message}.time_unix_nano`)
    } else if (f === 2) {
      expect(r, tag, WIRE_FIXED64, `${message}.start_time_unix_nano`, at)
      const start = fixed64Ms(r, stop, `${message}.start_time_unix_nano`)
      if (start !== 0) p.startTimeMs = start
      else delete p.startTimeMs
    } else if (f === numbers.attributes) {
      expect(r, tag, WIRE_LEN, `${message}.attributes`, at)
      const end = r.len(stop, `${message}.attributes`)
      p.attributes.push(attribute(r, end, limits))
    } else if (f === numbers.flags) {
      expect(r, tag, WIRE_VARINT, `${message}.flags`, at)
      p.flags = r.uint32(stop, `${message}.flags`)
    } else if (!field(f, tag, at)) r.skip(tag & 7, f, stop, message)
  }
}

/** A fixed64 (or sfixed64, or double) field, its wire type checked. */
const fixedField = <A>(r: Reader, tag: number, stop: number, name: string, at: number, read: (r: Reader, end: number, field: string) => A): A => {
  expect(r, tag, WIRE_FIXED64, name, at)
  return read(r, stop, name)
}

const numberPoint = (r: Reader, stop: number, limits: DecodeLimits): NumberPoint => {
  const p: PointCommon & { value: number; exemplars: Array<Exemplar> } = { attributes: [], timeMs: 0, flags: 0, value: 0, exemplars: [] }
  readPoint(r, stop, "NumberDataPoint", { attributes: 7, flags: 8 }, p, limits, (f, tag, at) => {
    if (f === 4) p.value = fixedField(r, tag, stop, "NumberDataPoint.as_double", at, double)
    else if (f === 5) pushExemplar(r, tag, stop, "NumberDataPoint.exemplars", at, p.exemplars, limits)
    else if (f === 6) p.value = fixedField(r, tag, stop, "NumberDataPoint.as_int", at, sfixed64)
    else return false
    return true
  })
  return p
}

const histogramPoint = (r: Reader, stop: number, limits: DecodeLimits): HistogramPoint => {
  const p: PointCommon & {
    count: number
    sum: number | undefined
    bucketCounts: Array<number>
    explicitBounds: Array<number>
    exemplars: Array<Exemplar>
  } = { attributes: [], timeMs: 0, flags: 0, count: 0, sum: undefined, bucketCounts: [], explicitBounds: [], exemplars: [] }
  readPoint(r, stop, "HistogramDataPoint", { attributes: 9, flags: 10 }, p, limits, (f, tag, at) => {
    if (f === 4) p.count = fixedField(r, tag, stop, "HistogramDataPoint.count", at, fixed64)
    else if (f === 5) p.sum = fixedField(r, tag, stop, "HistogramDataPoint.sum", at, double)
    else if (f === 6) repeated64(r, tag, stop, "HistogramDataPoint.bucket_counts", fixed64, p.bucketCounts, limits)
    else if (f === 7) repeated64(r, tag, stop, "HistogramDataPoint.explicit_bounds", double, p.explicitBounds, limits)
    else if (f === 8) pushExemplar(r, tag, stop, "HistogramDataPoint.exemplars", at, p.exemplars, limits)
    else return false
    return true
  })
  return p
}

const quantileValue = (r: Reader, end: number): readonly [number, number] => {
  let q = 0
  let v = 0
  while (r.pos < end) {
    const at = r.pos
    const t = r.uint32(end, "ValueAtQuantile")
    if (t >>> 3 === 1) q = fixedField(r, t, end, "ValueAtQuantile.quantile", at, double)
    else if (t >>> 3 === 2) v = fixedField(r, t, end, "ValueAtQuantile.value", at, double)
    else r.skip(t & 7, t >>> 3, end, "ValueAtQuantile")
  }
  return [q, v]
}

const summaryPoint = (r: Reader, stop: number, limits: DecodeLimits): SummaryPoint => {
  const p: PointCommon & { count: number; sum: number; quantiles: Array<readonly [number, number]> } = {
    attributes: [],
    timeMs: 0,
    flags: 0,
    count: 0,
    sum: 0,
    quantiles: []
  }
  readPoint(r, stop, "SummaryDataPoint", { attributes: 7, flags: 8 }, p, limits, (f, tag, at) => {
    if (f === 4) p.count = fixedField(r, tag, stop, "SummaryDataPoint.count", at, fixed64)
    else if (f === 5) p.sum = fixedField(r, tag, stop, "SummaryDataPoint.sum", at, double)
    else if (f === 6) {
      expect(r, tag, WIRE_LEN, "SummaryDataPoint.quantile_values", at)
      p.quantiles.push(quantileValue(r, r.len(stop, "SummaryDataPoint.quantile_values")))
      if (p.quantiles.length > limits.bucketsMax) {
        throw new RemoteWriteLimitError("bucketsMax", limits.bucketsMax, "quantiles of one summary point")
      }
    } else return false
    return true
  })
  return p
}

const exponentialLimit = (limits: DecodeLimits, field: string): never => {
  throw new RemoteWriteLimitError("exponentialBucketsMax", limits.exponentialBucketsMax, `${field} of one point`)
}

/**
 * An exponential histogram's `Buckets` message, merged into `side` (as protobuf merges a message field
 * that appears twice: the last offset, the counts appended): `offset` = 1 (sint32), `bucket_counts` = 2
 * (repeated uint64, packed or not).
 */
const exponentialBuckets = (
  r: Reader,
  stop: number,
  message: string,
  side: { offset: number; bucketCounts: Array<number> },
  limits: DecodeLimits
) => {
  const field = `${message}.bucket_counts`
  while (r.pos < stop) {
    const at = r.pos
    const tag = r.uint32(stop, message)
    const f = tag >>> 3
    if (f === 1) {
      expect(r, tag, WIRE_VARINT, `${message}.offset`, at)
      side.offset = r.sint32(stop, `${message}.offset`)
    } else if (f === 2 && (tag & 7) === WIRE_LEN) {
      const end = r.len(stop, field)
      while (r.pos < end) {
        if (side.bucketCounts.length >= limits.exponentialBucketsMax) exponentialLimit(limits, field)
        side.bucketCounts.push(r.uint64(end, field))
      }
    } else if (f === 2) {
      expect(r, tag, WIRE_VARINT, field, at)
      if (side.bucketCounts.length >= limits.exponentialBucketsMax) exponentialLimit(limits, field)
      side.bucketCounts.push(r.uint64(stop, field))
    } else r.skip(tag & 7, f, stop, message)
  }
}

const exponentialHistogramPoint = (r: Reader, stop: number, limits: DecodeLimits): ExponentialHistogramPoint => {
  const message = "ExponentialHistogramDataPoint"
  const p: PointCommon & {
    count: number
    sum: number | undefined
    scale: number
    zeroCount: number
    zeroThreshold: number
    positive: { offset: number; bucketCounts: Array<number> }
    negative: { offset: number; bucketCounts: Array<number> }
    exemplars: Array<Exemplar>
  } = {
    attributes: [],
    timeMs: 0,
    flags: 0,
    count: 0,
    sum: undefined,
    scale: 0,
    zeroCount: 0,
    zeroThreshold: 0,
    positive: { offset: 0, bucketCounts: [] },
    negative: { offset: 0, bucketCounts: [] },
    exemplars: []
  }
  readPoint(r, stop, message, { attributes: 1, flags: 10 }, p, limits, (f, tag, at) => {
    if (f === 4) p.count = fixedField(r, tag, stop, `${message}.count`, at, fixed64)
    else if (f === 5) p.sum = fixedField(r, tag, stop, `${message}.sum`, at, double)
    else if (f === 6) {
      expect(r, tag, WIRE_VARINT, `${message}.scale`, at)
      p.scale = r.sint32(stop, `${message}.scale`)
    } else if (f === 7) p.zeroCount = fixedField(r, tag, stop, `${message}.zero_count`, at, fixed64)
    else if (f === 8 || f === 9) {
      const name = `${message}.${f === 8 ? "positive" : "negative"}`
      expect(r, tag, WIRE_LEN, name, at)
      exponentialBuckets(r, r.len(stop, name), name, f === 8 ? p.positive : p.negative, limits)
    } else if (f === 11) pushExemplar(r, tag, stop, `${message}.exemplars`, at, p.exemplars, limits)
    else if (f === 14) p.zeroThreshold = fixedField(r, tag, stop, `${message}.zero_threshold`, at, double)
    else return false // min (12), max (13): not needed
    return true
  })
  return p
}

interface Counter {
  points: number
}

/** The data of one metric (Gauge, Sum, Histogram, ExponentialHistogram or Summary message). */
const metricData = (r: Reader, stop: number, m: MutableMetric, limits: DecodeLimits, counter: Counter) => {
  const field = m.kind
  while (r.pos < stop) {
    const at = r.pos
    const tag = r.uint32(stop, field)
    const f = tag >>> 3
    if (f === 1) {
      expect(r, tag, WIRE_LEN, `${field}.data_points`, at)
      const end = r.len(stop, `${field}.data_points`)
      if (++counter.points > limits.pointsMax) tooMany(limits)
      switch (m.kind) {
        case "gauge":
        case "sum":
          m.numberPoints.push(numberPoint(r, end, limits))
          break
        case "histogram":
          m.histogramPoints.push(histogramPoint(r, end, limits))
          break
        case "summary":
          m.summaryPoints.push(summaryPoint(r, end, limits))
          break
        case "exponentialHistogram":
          m.exponentialHistogramPoints.push(exponentialHistogramPoint(r, end, limits))
          break
        default:
          r.pos = end
      }
    } else if (f === 2 && m.kind !== "gauge" && m.kind !== "summary") {
      expect(r, tag, WIRE_VARINT, `${field}.aggregation_temporality`, at)
      m.temporality = r.int32(stop, `${field}.aggregation_temporality`)
    } else if (f === 3 && m.kind === "sum") {
      expect(r, tag, WIRE_VARINT, "sum.is_monotonic", at)
      m.monotonic = r.int32(stop, "sum.is_monotonic") !== 0
    } else r.skip(tag & 7, f, stop, field)
  }
}

type MutableMetric = {
  -readonly [K in keyof Metric]: Metric[K] extends ReadonlyArray<infer T> ? Array<T> : Metric[K]
}

const emptyMetric = (): MutableMetric => ({
  name: "",
  description: "",
  unit: "",
  kind: "empty",
  temporality: 0,
  monotonic: false,
  numberPoints: [],
  histogramPoints: [],
  summaryPoints: [],
  exponentialHistogramPoints: []
})

const dataKinds: Record<number, MetricKind> = { 5: "gauge", 7: "sum", 9: "histogram", 10: "exponentialHistogram", 11: "summary" }

const metric = (r: Reader, stop: number, limits: DecodeLimits, counter: Counter): Metric => {
  const m = emptyMetric()
  while (r.pos < stop) {
    const at = r.pos
    const tag = r.uint32(stop, "Metric")
    const f = tag >>> 3
    if (f === 1) {
      expect(r, tag, WIRE_LEN, "Metric.name", at)
      m.name = stringField(r, stop, "Metric.name", limits)
    } else if (f === 2) {
      expect(r, tag, WIRE_LEN, "Metric.description", at)
      const end = r.len(stop, "Metric.description")
      m.description = r.stringTo(end, "Metric.description")
    } else if (f === 3) {
      expect(r, tag, WIRE_LEN, "Metric.unit", at)
      m.unit = stringField(r, stop, "Metric.unit", limits)
    } else if (dataKinds[f] !== undefined) {
      expect(r, tag, WIRE_LEN, `Metric.${dataKinds[f]}`, at)
      const end = r.len(stop, `Metric.${dataKinds[f]}`)
      m.kind = dataKinds[f]
      metricData(r, end, m, limits, counter)
    } else r.skip(tag & 7, f, stop, "Metric")
  }
  return m
}

const scopeMetrics = (r: Reader, stop: number, limits: DecodeLimits, counter: Counter): ScopeMetrics => {
  let name = ""
  let version = ""
  const metrics: Array<Metric> = []
  while (r.pos < stop) {
    const at = r.pos
    const tag = r.uint32(stop, "ScopeMetrics")
    const f = tag >>> 3
    if (f === 1) {
      expect(r, tag, WIRE_LEN, "ScopeMetrics.scope", at)
      const end = r.len(stop, "ScopeMetrics.scope")
      while (r.pos < end) {
        const a = r.pos
        const t = r.uint32(end, "InstrumentationScope")
        if (t >>> 3 === 1) {
          expect(r, t, WIRE_LEN, "InstrumentationScope.name", a)
          name = stringField(r, end, "InstrumentationScope.name", limits)
        } else if (t >>> 3 === 2) {
          expect(r, t, WIRE_LEN, "InstrumentationScope.version", a)
          version = stringField(r, end, "InstrumentationScope.version", limits)
        } else r.skip(t & 7, t >>> 3, end, "InstrumentationScope")
      }
    } else if (f === 2) {
      expect(r, tag, WIRE_LEN, "ScopeMetrics.metrics", at)
      const end = r.len(stop, "ScopeMetrics.metrics")
      metrics.push(metric(r, end, limits, counter))
    } else r.skip(tag & 7, f, stop, "ScopeMetrics")
  }
  return { name, version, metrics }
}

const resourceMetrics = (r: Reader, stop: number, limits: DecodeLimits, counter: Counter): ResourceMetrics => {
  const resource: Array<Attribute> = []
  const scopes: Array<ScopeMetrics> = []
  while (r.pos < stop) {
    const at = r.pos
    const tag = r.uint32(stop, "ResourceMetrics")
    const f = tag >>> 3
    if (f === 1) {
      expect(r, tag, WIRE_LEN, "ResourceMetrics.resource", at)
      const end = r.len(stop, "ResourceMetrics.resource")
      while (r.pos < end) {
        const a = r.pos
        const t = r.uint32(end, "Resource")
        if (t >>> 3 === 1) {
          expect(r, t, WIRE_LEN, "Resource.attributes", a)
          const e = r.len(end, "Resource.attributes")
          resource.push(attribute(r, e, limits))
        } else r.skip(t & 7, t >>> 3, end, "Resource")
      }
    } else if (f === 2) {
      expect(r, tag, WIRE_LEN, "ResourceMetrics.scope_metrics", at)
      const end = r.len(stop, "ResourceMetrics.scope_metrics")
      scopes.push(scopeMetrics(r, end, limits, counter))
    } else r.skip(tag & 7, f, stop, "ResourceMetrics")
  }
  return { resource, scopes }
}

/** Decodes an `ExportMetricsServiceRequest` in protobuf. */
export const decodeMetricsProto = (bytes: Uint8Array, limits: DecodeLimits = decodeLimits): MetricsRequest => {
  const r = new Reader(bytes)
  const counter: Counter = { points: 0 }
  const resources: Array<ResourceMetrics> = []
  const stop = bytes.length
  while (r.pos < stop) {
    const at = r.pos
    const tag = r.uint32(stop, "ExportMetricsServiceRequest")
    if (tag >>> 3 === 1) {
      expect(r, tag, WIRE_LEN, "ExportMetricsServiceRequest.resource_metrics", at)
      const end = r.len(stop, "ExportMetricsServiceRequest.resource_metrics")
      resources.push(resourceMetrics(r, end, limits, counter))
    } else r.skip(tag & 7, tag >>> 3, stop, "ExportMetricsServiceRequest")
  }
  return { resources, points: counter.points }
}

// -------------------------------------------------------------------------------------------------
// OTLP/JSON
// -------------------------------------------------------------------------------------------------

const fail = (field: string, reason: string): never => {
  throw new RemoteWriteDecodeError(field, reason)
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

const list = (v: unknown, field: string): ReadonlyArray<unknown> => {
  if (v === undefined || v === null) return []
  if (!Array.isArray(v)) return fail(field, "must be an array")
  return v
}

const object = (v: unknown, field: string): Record<string, unknown> => {
  if (v === undefined || v === null) return {}
  if (!isObject(v)) return fail(field, "must be an object")
  return v
}

const text = (v: unknown, field: string, limits: DecodeLimits): string => {
  if (v === undefined || v === null) return ""
  if (typeof v !== "string") return fail(field, "must be a string")
  if (Buffer.byteLength(v) > limits.stringBytesMax) {
    throw new RemoteWriteLimitError("stringBytesMax", limits.stringBytesMax, `${field} of ${Buffer.byteLength(v)} bytes`)
  }
  return v
}

/** A 64-bit integer field: OTLP/JSON writes them as decimal strings (numbers are accepted too). */
const int64 = (v: unknown, field: string): number => {
  if (v === undefined || v === null) return 0
  if (typeof v === "number" && Number.isFinite(v)) return Math.trunc(v)
  if (typeof v === "string" && /^-?\d+$/.test(v)) return Number(v)
  return fail(field, "must be an integer (a decimal string or a number)")
}

/** An int32 or sint32 field: a number, or a decimal string (as proto3 JSON parsers accept). */
const int32 = (v: unknown, field: string): number => {
  if (v === undefined || v === null) return 0
  const n = typeof v === "number" ? v : typeof v === "string" && /^-?\d+$/.test(v) ? Number(v) : Number.NaN
  if (!Number.isInteger(n) || n < -0x80000000 || n > 0x7fffffff) return fail(field, "must be a 32-bit integer")
  return n
}

/** A uint64 count: a decimal string or a number, not negative, at most 2^53 - 1 (as the protobuf reader). */
const count64 = (v: unknown, field: string): number => {
  if (v === undefined || v === null) return 0
  const n = typeof v === "number" ? v : typeof v === "string" && /^\d+$/.test(v) ? Number(v) : Number.NaN
  if (!Number.isSafeInteger(n) || n < 0) return fail(field, "must be an unsigned integer below 2^53 (a decimal string or a number)")
  return n
}

/** A double field: a number, or one of the strings "NaN", "Infinity", "-Infinity". */
const float = (v: unknown, field: string): number => {
  if (typeof v === "number") return v
  if (v === "NaN") return Number.NaN
  if (v === "Infinity") return Infinity
  if (v === "-Infinity") return -Infinity
  if (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))) return Number(v)
  return fail(field, "must be a number")
}

const enumNames: Record<string, number> = {
  AGGREGATION_TEMPORALITY_UNSPECIFIED: 0,
  AGGREGATION_TEMPORALITY_DELTA: 1,
  AGGREGATION_TEMPORALITY_CUMULATIVE: 2
}

const temporality = (v: unknown, field: string): number => {
  if (v === undefined || v === null) return 0
  if (typeof v === "number" && Number.isInteger(v)) return v
  if (typeof v === "string" && v in enumNames) return enumNames[v]!
  return fail(field, "must be an AggregationTemporality (an integer or its name)")
}

const anyValueJson = (v: unknown, field: string, limits: DecodeLimits, depth: number): Json => {
  if (depth > 16) fail(field, "nested more than 16 deep")
  const o = object(v, field)
  if ("stringValue" in o) return text(o["stringValue"], `${field}.stringValue`, limits)
  if ("boolValue" in o) return o["boolValue"] === true
  if ("intValue" in o) return String(int64(o["intValue"], `${field}.intValue`))
  if ("doubleValue" in o) return float(o["doubleValue"], `${field}.doubleValue`)
  if ("bytesValue" in o) return text(o["bytesValue"], `${field}.bytesValue`, limits)
  if ("arrayValue" in o) {
    return list(object(o["arrayValue"], `${field}.arrayValue`)["values"], `${field}.arrayValue.values`).map((x) =>
      anyValueJson(x, `${field}.arrayValue.values`, limits, depth + 1)
    )
  }
  if ("kvlistValue" in o) {
    const map: { [key: string]: Json } = {}
    for (const kv of list(object(o["kvlistValue"], `${field}.kvlistValue`)["values"], `${field}.kvlistValue.values`)) {
      const e = object(kv, `${field}.kvlistValue.values`)
      map[text(e["key"], "KeyValue.key", limits)] = anyValueJson(e["value"], "KeyValue.value", limits, depth + 1)
    }
    return map
  }
  return ""
}

const attributesJson = (v: unknown, field: string, limits: DecodeLimits): Array<Attribute> =>
  list(v, field).map((kv) => {
    const e = object(kv, field)
    return { key: text(e["key"], `${field}.key`, limits), value: labelText(anyValueJson(e["value"], `${field}.value`, limits, 0)) }
  })

/** A time in nanoseconds (a decimal string, or a number) as whole milliseconds, exactly for strings. */
const timeMs = (v: unknown, field: string): number => {
  if (typeof v === "string" && /^\d+$/.test(v)) return Number(BigInt(v) / 1_000_000n)
  return nanosToMs(int64(v, field))
}

const common = (o: Record<string, unknown>, field: string, limits: DecodeLimits) => {
  const start = timeMs(o["startTimeUnixNano"], `${field}.startTimeUnixNano`)
  return {
    attributes: attributesJson(o["attributes"], `${field}.attributes`, limits),
    timeMs: timeMs(o["timeUnixNano"], `${field}.timeUnixNano`),
    ...(start !== 0 ? { startTimeMs: start } : {}),
    flags: int64(o["flags"], `${field}.flags`)
  }
}

const hexText = (v: unknown, field: string): string => {
  if (v === undefined || v === null || v === "") return ""
  if (typeof v !== "string" || !/^(?:[0-9a-fA-F]{2})+$/.test(v)) return fail(field, "must be hex")
  return v.toLowerCase()
}

const exemplarsJson = (v: unknown, field: string, limits: DecodeLimits): Array<Exemplar> =>
  bounded(list(v, field), field, limits).map((x) => {
    const e = object(x, field)
    return {
      attributes: attributesJson(e["filteredAttributes"], `${field}.filteredAttributes`, limits),
      traceId: hexText(e["traceId"], `${field}.traceId`),
      spanId: hexText(e["spanId"], `${field}.spanId`),
      value: e["asDouble"] !== undefined ? float(e["asDouble"], `${field}.asDouble`) : int64(e["asInt"], `${field}.asInt`),
      timeMs: timeMs(e["timeUnixNano"], `${field}.timeUnixNano`)
    }
  })

const bounded = (xs: ReadonlyArray<unknown>, field: string, limits: DecodeLimits) => {
  if (xs.length > limits.bucketsMax) throw new RemoteWriteLimitError("bucketsMax", limits.bucketsMax, `${field} of one point`)
  return xs
}

/** One side (`positive`, `negative`) of an exponential histogram point. */
const exponentialBucketsJson = (v: unknown, field: string, limits: DecodeLimits): ExponentialBuckets => {
  const o = object(v, field)
  const counts = list(o["bucketCounts"], `${field}.bucketCounts`)
  if (counts.length > limits.exponentialBucketsMax) exponentialLimit(limits, `${field}.bucketCounts`)
  return {
    offset: int32(o["offset"], `${field}.offset`),
    bucketCounts: counts.map((x) => count64(x, `${field}.bucketCounts`))
  }
}

const metricJson = (v: unknown, limits: DecodeLimits, counter: Counter): Metric => {
  const o = object(v, "Metric")
  const m = emptyMetric()
  m.name = text(o["name"], "Metric.name", limits)
  m.description = typeof o["description"] === "string" ? o["description"] : ""
  m.unit = text(o["unit"], "Metric.unit", limits)
  const kinds = (["gauge", "sum", "histogram", "exponentialHistogram", "summary"] as const).filter((k) => o[k] !== undefined && o[k] !== null)
  if (kinds.length > 1) fail("Metric", `has more than one kind of data (${kinds.join(", ")})`)
  const kind = kinds[0]
  if (kind === undefined) return m
  m.kind = kind
  const data = object(o[kind], `Metric.${kind}`)
  m.temporality = temporality(data["aggregationTemporality"], `${kind}.aggregationTemporality`)
  m.monotonic = data["isMonotonic"] === true
  for (const raw of list(data["dataPoints"], `${kind}.dataPoints`)) {
    if (++counter.points > limits.pointsMax) tooMany(limits)
    const p = object(raw, `${kind}.dataPoints`)
    const field = `${kind}.dataPoints`
    switch (kind) {
      case "gauge":
      case "sum": {
        const value = p["asDouble"] !== undefined ? float(p["asDouble"], `${field}.asDouble`) : int64(p["asInt"], `${field}.asInt`)
        m.numberPoints.push({ ...common(p, field, limits), value, exemplars: exemplarsJson(p["exemplars"], `${field}.exemplars`, limits) })
        break
      }
      case "histogram":
        m.histogramPoints.push({
          ...common(p, field, limits),
          count: int64(p["count"], `${field}.count`),
          sum: p["sum"] === undefined || p["sum"] === null ? undefined : float(p["sum"], `${field}.sum`),
          bucketCounts: bounded(list(p["bucketCounts"], `${field}.bucketCounts`), `${field}.bucketCounts`, limits).map((x) =>
            int64(x, `${field}.bucketCounts`)
          ),
          explicitBounds: bounded(list(p["explicitBounds"], `${field}.explicitBounds`), `${field}.explicitBounds`, limits).map((x) =>
            float(x, `${field}.explicitBounds`)
          ),
          exemplars: exemplarsJson(p["exemplars"], `${field}.exemplars`, limits)
        })
        break
      case "summary":
        m.summaryPoints.push({
          ...common(p, field, limits),
          count: int64(p["count"], `${field}.count`),
          sum: p["sum"] === undefined ? 0 : float(p["sum"], `${field}.sum`),
          quantiles: bounded(list(p["quantileValues"], `${field}.quantileValues`), `${field}.quantileValues`, limits).map((x) => {
            const q = object(x, `${field}.quantileValues`)
            return [
              q["quantile"] === undefined ? 0 : float(q["quantile"], `${field}.quantileValues.quantile`),
              q["value"] === undefined ? 0 : float(q["value"], `${field}.quantileValues.value`)
            ] as const
          })
        })
        break
      case "exponentialHistogram":
        m.exponentialHistogramPoints.push({
          ...common(p, field, limits),
          count: count64(p["count"], `${field}.count`),
          sum: p["sum"] === undefined || p["sum"] === null ? undefined : float(p["sum"], `${field}.sum`),
          scale: int32(p["scale"], `${field}.scale`),
          zeroCount: count64(p["zeroCount"], `${field}.zeroCount`),
          zeroThreshold: p["zeroThreshold"] === undefined || p["zeroThreshold"] === null ? 0 : float(p["zeroThreshold"], `${field}.zeroThreshold`),
          positive: exponentialBucketsJson(p["positive"], `${field}.positive`, limits),
          negative: exponentialBucketsJson(p["negative"], `${field}.negative`, limits),
          exemplars: exemplarsJson(p["exemplars"], `${field}.exemplars`, limits)
        })
        break
    }
  }
  return m
}

/** Decodes an `ExportMetricsServiceRequest` in OTLP/JSON (lowerCamelCase fields, 64-bit integers as strings). */
export const decodeMetricsJson = (body: string, limits: DecodeLimits = decodeLimits): MetricsRequest => {
  let json: unknown
  try {
    json = JSON.parse(body)
  } catch (e) {
    return fail("body", `is not JSON: ${e instanceof Error ? e.message : String(e)}`)
  }
  const counter: Counter = { points: 0 }
  const resources = list(object(json, "ExportMetricsServiceRequest")["resourceMetrics"], "resourceMetrics").map((rm) => {
    const o = object(rm, "ResourceMetrics")
    return {
      resource: attributesJson(object(o["resource"], "ResourceMetrics.resource")["attributes"], "Resource.attributes", limits),
      scopes: list(o["scopeMetrics"], "ResourceMetrics.scopeMetrics").map((sm) => {
        const s = object(sm, "ScopeMetrics")
        const scope = object(s["scope"], "ScopeMetrics.scope")
        return {
          name: text(scope["name"], "InstrumentationScope.name", limits),
          version: text(scope["version"], "InstrumentationScope.version", limits),
          metrics: list(s["metrics"], "ScopeMetrics.metrics").map((m) => metricJson(m, limits, counter))
        }
      })
    }
  })
  return { resources, points: counter.points }
}

/**
 * An `ExportMetricsServiceResponse` in protobuf: empty, or `partial_success` (field 1:
 * `ExportMetricsPartialSuccess { int64 rejected_data_points = 1; string error_message = 2; }`).
 */
export const encodeExportResponse = (rejected: number, message: string): Uint8Array => {
  const w = new Writer(64 + 3 * message.length)
  if (rejected === 0 && message === "") return w.finish()
  w.tag(1, WIRE_LEN)
  const mark = w.begin()
  if (rejected > 0) {
    w.tag(1, WIRE_VARINT)
    w.varint(rejected)
  }
  if (message !== "") {
    w.tag(2, WIRE_LEN)
    w.string(message)
  }
  w.end(mark)
  return w.finish()
}
