/**
 * Encoders from the normalized shape to remote-write protobuf bodies (uncompressed; see `snappy.ts`), for
 * tests and for benchmarks that send realistic payloads to a real Prometheus. Fields are written in
 * field-number order and proto3 defaults (0, "", +0.0) are left out, as Prometheus' own marshalling does.
 * Labels are written in the order given (the decoders sort). Exemplars and native histograms are encoded
 * (`WriteRequest.histograms`, a count, is ignored: the series' `histograms` are written).
 */
import type { CounterResetHint, FloatHistogram, Span } from "../../promql/histogram.ts"
import type { ExemplarSample, HistogramSample, Metadata, MetricType, Sample, WriteRequest } from "./types.ts"
import { metricTypes } from "./types.ts"
import { WIRE_FIXED64, WIRE_LEN, WIRE_VARINT, Writer } from "./wire.ts"

const typeNumber = (t: MetricType): number => Math.max(0, metricTypes.indexOf(t))

/** A value (double) and a timestamp (int64) at two consecutive field numbers, proto3 defaults left out. */
const valueAndTime = (w: Writer, valueField: number, value: number, timestampMs: number): void => {
  if (!Object.is(value, 0)) {
    w.tag(valueField, WIRE_FIXED64)
    w.double(value)
  }
  if (timestampMs !== 0) {
    w.tag(valueField + 1, WIRE_VARINT)
    w.int64(timestampMs)
  }
}

/** Labels as repeated `Label` messages (remote write 1.0) at `field`. */
const labelMessages = (w: Writer, field: number, labels: ReadonlyArray<readonly [string, string]>): void => {
  for (const [name, value] of labels) {
    w.tag(field, WIRE_LEN)
    const l = w.begin()
    stringField(w, 1, name)
    stringField(w, 2, value)
    w.end(l)
  }
}

/** Labels as packed symbol references (remote write 2.0) at `field`. */
const labelRefs = (w: Writer, field: number, labels: ReadonlyArray<readonly [string, string]>, ref: (s: string) => number): void => {
  if (labels.length === 0) return
  w.tag(field, WIRE_LEN)
  const packed = w.begin()
  for (const [name, value] of labels) {
    w.varint(ref(name))
    w.varint(ref(value))
  }
  w.end(packed)
}

const sample = (w: Writer, s: Sample, v2: boolean): void => {
  w.tag(2, WIRE_LEN)
  const mark = w.begin()
  valueAndTime(w, 1, s.value, s.timestampMs)
  if (v2 && s.startTimestampMs !== undefined && s.startTimestampMs !== 0) {
    w.tag(3, WIRE_VARINT)
    w.int64(s.startTimestampMs)
  }
  w.end(mark)
}

/** An exemplar (field `field` of a TimeSeries): labels as Label messages (1.0) or symbol refs (2.0). */
const exemplar = (w: Writer, field: number, e: ExemplarSample, ref: ((s: string) => number) | undefined): void => {
  w.tag(field, WIRE_LEN)
  const mark = w.begin()
  if (ref === undefined) labelMessages(w, 1, e.labels)
  else labelRefs(w, 1, e.labels, ref)
  valueAndTime(w, 2, e.value, e.timestampMs)
  w.end(mark)
}

const resetHintNumbers: Record<CounterResetHint, number> = { unknown: 0, reset: 1, not_reset: 2, gauge: 3 }

/** A count that an integer histogram can carry: a non-negative safe integer (and not -0, whose sign would be lost). */
const intCount = (x: number): boolean => Number.isSafeInteger(x) && x >= 0 && !Object.is(x, -0)

/**
 * Whether `h` goes on the wire as an integer histogram: every count a non-negative integer, and the
 * buckets adding up to the count (at most the count if the sum is NaN), as an integer histogram must.
 */
export const isIntegerHistogram = (h: FloatHistogram): boolean => {
  if (!intCount(h.count) || !intCount(h.zeroCount)) return false
  let total = h.zeroCount
  for (const c of h.positiveBuckets) {
    if (!intCount(c)) return false
    total += c
  }
  for (const c of h.negativeBuckets) {
    if (!intCount(c)) return false
    total += c
  }
  return Number.isNaN(h.sum) ? total <= h.count : total === h.count
}

const spans = (w: Writer, field: number, list: ReadonlyArray<Span>): void => {
  for (const sp of list) {
    w.tag(field, WIRE_LEN)
    const mark = w.begin()
    if (sp.offset !== 0) {
      w.tag(1, WIRE_VARINT)
      w.sint64(sp.offset)
    }
    if (sp.length !== 0) {
      w.tag(2, WIRE_VARINT)
      w.varint(sp.length)
    }
    w.end(mark)
  }
}

/** Absolute counts as packed sint64 deltas (each count minus the one before it) at `field`. */
const packedDeltas = (w: Writer, field: number, counts: ReadonlyArray<number>): void => {
  if (counts.length === 0) return
  w.tag(field, WIRE_LEN)
  const mark = w.begin()
  let last = 0
  for (const c of counts) {
    w.sint64(c - last)
    last = c
  }
  w.end(mark)
}

const packedDoubles = (w: Writer, field: number, values: ReadonlyArray<number>): void => {
  if (values.length === 0) return
  w.tag(field, WIRE_LEN)
  const mark = w.begin()
  for (const x of values) w.double(x)
  w.end(mark)
}

const doubleField = (w: Writer, field: number, x: number): void => {
  if (Object.is(x, 0)) return
  w.tag(field, WIRE_FIXED64)
  w.double(x)
}

/**
 * A native histogram (field `field` of a TimeSeries), as Prometheus marshals it: an integer histogram
 * (`count_int`, `zero_count_int`, bucket deltas) when `isIntegerHistogram`, else a float histogram
 * (`count_float`, `zero_count_float`, absolute counts). The oneof counts are always written; other
 * proto3 defaults are left out. `v2`: the start timestamp (field 17) too.
 */
const histogram = (w: Writer, field: number, x: HistogramSample, v2: boolean): void => {
  const h = x.histogram
  const integer = isIntegerHistogram(h)
  w.tag(field, WIRE_LEN)
  const mark = w.begin()
  if (integer) {
    w.tag(1, WIRE_VARINT)
    w.varint(h.count)
  } else {
    w.tag(2, WIRE_FIXED64)
    w.double(h.count)
  }
  doubleField(w, 3, h.sum)
  if (h.schema !== 0) {
    w.tag(4, WIRE_VARINT)
    w.sint64(h.schema)
  }
  doubleField(w, 5, h.zeroThreshold)
  if (integer) {
    w.tag(6, WIRE_VARINT)
    w.varint(h.zeroCount)
  } else {
    w.tag(7, WIRE_FIXED64)
    w.double(h.zeroCount)
  }
  spans(w, 8, h.negativeSpans)
  if (integer) packedDeltas(w, 9, h.negativeBuckets)
  else packedDoubles(w, 10, h.negativeBuckets)
  spans(w, 11, h.positiveSpans)
  if (integer) packedDeltas(w, 12, h.positiveBuckets)
  else packedDoubles(w, 13, h.positiveBuckets)
  const hint = resetHintNumbers[h.counterResetHint] ?? 0
  if (hint !== 0) {
    w.tag(14, WIRE_VARINT)
    w.varint(hint)
  }
  if (x.timestampMs !== 0) {
    w.tag(15, WIRE_VARINT)
    w.int64(x.timestampMs)
  }
  packedDoubles(w, 16, h.customValues)
  if (v2 && x.startTimestampMs !== undefined && x.startTimestampMs !== 0) {
    w.tag(17, WIRE_VARINT)
    w.int64(x.startTimestampMs)
  }
  w.end(mark)
}

const stringField = (w: Writer, field: number, s: string): void => {
  if (s === "") return
  w.tag(field, WIRE_LEN)
  w.string(s)
}

/** Encodes a `prometheus.WriteRequest` (remote write 1.0). */
export const encodeWriteRequestV1 = (req: WriteRequest): Uint8Array => {
  const w = new Writer(64 * 1024)
  for (const s of req.series) {
    w.tag(1, WIRE_LEN)
    const ts = w.begin()
    labelMessages(w, 1, s.labels)
    for (const x of s.samples) sample(w, x, false)
    for (const e of s.exemplars ?? []) exemplar(w, 3, e, undefined)
    for (const h of s.histograms ?? []) histogram(w, 4, h, false)
    w.end(ts)
  }
  for (const m of req.metadata) {
    w.tag(3, WIRE_LEN)
    const mark = w.begin()
    const type = typeNumber(m.type)
    if (type !== 0) {
      w.tag(1, WIRE_VARINT)
      w.varint(type)
    }
    stringField(w, 2, m.metric)
    stringField(w, 4, m.help)
    stringField(w, 5, m.unit)
    w.end(mark)
  }
  return w.finish()
}

/**
 * Encodes an `io.prometheus.write.v2.Request` (remote write 2.0): a symbols table starting with "", then
 * the series. v2 carries metadata per series: the first metadata entry of a metric is attached to every
 * series whose `__name__` is that metric; an entry with no such series (or a second entry for the same
 * metric) is sent on a series of its own, labels `{__name__=metric}` and no samples.
 */
export const encodeWriteRequestV2 = (req: WriteRequest): Uint8Array => {
  const refs = new Map<string, number>([["", 0]])
  const table: Array<string> = [""]
  const ref = (s: string): number => {
    let i = refs.get(s)
    if (i === undefined) {
      i = table.length
      table.push(s)
      refs.set(s, i)
    }
    return i
  }
  const first = new Map<string, Metadata>()
  const extra: Array<Metadata> = []
  for (const m of req.metadata) {
    if (first.has(m.metric)) extra.push(m)
    else first.set(m.metric, m)
  }
  const used = new Set<string>()
  const body = new Writer(64 * 1024)
  const series = (
    labels: ReadonlyArray<readonly [string, string]>,
    samples: ReadonlyArray<Sample>,
    md: Metadata | undefined,
    exemplars: ReadonlyArray<ExemplarSample> = [],
    histograms: ReadonlyArray<HistogramSample> = []
  ): void => {
    body.tag(5, WIRE_LEN)
    const ts = body.begin()
    labelRefs(body, 1, labels, ref)
    for (const x of samples) sample(body, x, true)
    for (const h of histograms) histogram(body, 3, h, true)
    for (const e of exemplars) exemplar(body, 4, e, ref)
    if (md !== undefined) {
      body.tag(5, WIRE_LEN)
      const mark = body.begin()
      const type = typeNumber(md.type)
      const help = ref(md.help)
      const unit = ref(md.unit)
      if (type !== 0) {
        body.tag(1, WIRE_VARINT)
        body.varint(type)
      }
      if (help !== 0) {
        body.tag(3, WIRE_VARINT)
        body.varint(help)
      }
      if (unit !== 0) {
        body.tag(4, WIRE_VARINT)
        body.varint(unit)
      }
      body.end(mark)
    }
    body.end(ts)
  }
  for (const s of req.series) {
    const name = s.labels.find(([n]) => n === "__name__")?.[1]
    const md = name === undefined ? undefined : first.get(name)
    if (md !== undefined) used.add(md.metric)
    series(s.labels, s.samples, md, s.exemplars, s.histograms)
  }
  for (const [metric, m] of first) if (!used.has(metric)) series([["__name__", metric]], [], m)
  for (const m of extra) series([["__name__", m.metric]], [], m)
  const w = new Writer(body.pos + 1024)
  for (const s of table) {
    w.tag(4, WIRE_LEN)
    w.string(s)
  }
  w.raw(body.buf.subarray(0, body.pos))
  return w.finish()
}
