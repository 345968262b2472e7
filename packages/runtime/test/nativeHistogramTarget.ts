/**
 * A tiny scrape target for the native-histogram end-to-end test (`nativeHistograms.test.ts`): `/metrics`
 * in Prometheus's protobuf exposition format (`io.prometheus.client.MetricFamily` messages, each prefixed
 * by its length as a varint), written by the small protobuf encoder below, with no dependency.
 *
 * It proves nothing by itself; it gives a real Prometheus deterministic native histograms to scrape:
 * - `nh_e2e_latency_seconds` (schema 3): a counter histogram that gets the same 20 observations on every
 *   scrape (negative buckets, a zero bucket and positive buckets). Every increase over any window is then a
 *   whole multiple of those 20, and 18 of them (90 %) are at or below 8, a bucket boundary, with the 19th in
 *   the very next bucket: `histogram_quantile(0.9, rate(...))` is 8 under linear interpolation (Prometheus
 *   2.42) and logarithmic interpolation (Prometheus 3) alike.
 * - `nh_e2e_resetting_seconds` (schema 0): a counter histogram that is reset to empty every `resetEvery`
 *   scrapes and then gets that scrape's observations (9 to 11 a scrape), so windows hold counter resets.
 *   It is never exposed empty: a window starting on an empty counter histogram is extrapolated differently
 *   by Prometheus 2.42 (not limited at the zero point) and Prometheus 3.6 on (and us: limited by count).
 *   The gauge histogram below is the one exposed empty.
 * - `nh_e2e_inflight_seconds` (schema 1): a gauge histogram (`GAUGE_HISTOGRAM`) rebuilt on every scrape,
 *   its buckets going up and down, a bucket coming and going, and empty (count 0) every sixth scrape.
 * - `nh_e2e_requests_total`: a plain counter, for the classic float path. It starts at 1000, not near 0:
 *   Prometheus 2.42 keeps rate() from extrapolating a counter below zero before limiting the extrapolation
 *   to half a scrape interval where a series starts, Prometheus 2.51 on (and we) after, so near 0 the two
 *   differ on the windows that reach back before the first scrape.
 *
 * Prometheus 2.42's protobuf parser (`model/textparse/protobufparse.go`) takes a histogram family as native
 * when its first metric has any positive or negative delta, a zero count or a zero threshold above 0
 * (`isNativeHistogram`); it then ingests only the native histogram, never `_bucket`/`_count`/`_sum` series.
 * So every histogram here has a zero threshold above 0 (even when empty) and no classic buckets.
 */
import * as http from "node:http"

// ---------------------------------------------------------------------------------------------------
// A minimal protobuf writer (proto3 wire format).

const WIRE_VARINT = 0
const WIRE_I64 = 1
const WIRE_LEN = 2

class ProtoWriter {
  private readonly bytes: Array<number> = []

  /** An unsigned varint; `value` is a non-negative safe integer (BigInt for the 64-bit arithmetic). */
  varint(value: number | bigint): this {
    let v = BigInt(value)
    if (v < 0n) v = BigInt.asUintN(64, v)
    while (v >= 0x80n) {
      this.bytes.push(Number(v & 0x7fn) | 0x80)
      v >>= 7n
    }
    this.bytes.push(Number(v))
    return this
  }

  private tag(field: number, wire: number): this {
    return this.varint((field << 3) | wire)
  }

  uint(field: number, value: number): this {
    return this.tag(field, WIRE_VARINT).varint(value)
  }

  /** sint32/sint64: zigzag. */
  sint(field: number, value: number): this {
    return this.tag(field, WIRE_VARINT).varint(zigzag(value))
  }

  double(field: number, value: number): this {
    const b = Buffer.alloc(8)
    b.writeDoubleLE(value)
    this.tag(field, WIRE_I64)
    for (const x of b) this.bytes.push(x)
    return this
  }

  bytesField(field: number, payload: Uint8Array): this {
    this.tag(field, WIRE_LEN).varint(payload.length)
    for (const x of payload) this.bytes.push(x)
    return this
  }

  string(field: number, value: string): this {
    return this.bytesField(field, Buffer.from(value, "utf8"))
  }

  message(field: number, build: (w: ProtoWriter) => void): this {
    const inner = new ProtoWriter()
    build(inner)
    return this.bytesField(field, inner.finish())
  }

  /** A packed repeated sint64 field. */
  packedSint(field: number, values: ReadonlyArray<number>): this {
    if (values.length === 0) return this
    const inner = new ProtoWriter()
    for (const v of values) inner.varint(zigzag(v))
    return this.bytesField(field, inner.finish())
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.bytes)
  }
}

const zigzag = (value: number): bigint => {
  const v = BigInt(value)
  return v >= 0n ? v << 1n : ((-v) << 1n) - 1n
}

// ---------------------------------------------------------------------------------------------------
// Native histograms kept in memory.

/** io.prometheus.client.MetricType */
const MetricType = { COUNTER: 0, GAUGE: 1, SUMMARY: 2, UNTYPED: 3, HISTOGRAM: 4, GAUGE_HISTOGRAM: 5 } as const

export class NativeHistogram {
  count = 0
  sum = 0
  zeroCount = 0
  readonly positive = new Map<number, number>()
  readonly negative = new Map<number, number>()
  readonly schema: number
  readonly zeroThreshold: number

  constructor(schema: number, zeroThreshold: number) {
    this.schema = schema
    this.zeroThreshold = zeroThreshold
  }

  /** The upper bound (by absolute value) of bucket `index` of this schema: 2^(index * 2^-schema). */
  bound(index: number): number {
    return 2 ** (index * 2 ** -this.schema)
  }

  /** The index of the bucket holding absolute value `v` (> zero threshold): bound(i-1) < v <= bound(i). */
  index(v: number): number {
    let i = Math.ceil(Math.log2(v) * 2 ** this.schema)
    while (this.bound(i - 1) >= v) i--
    while (this.bound(i) < v) i++
    return i
  }

  observe(v: number, times = 1): void {
    this.count += times
    this.sum += v * times
    if (Math.abs(v) <= this.zeroThreshold) {
      this.zeroCount += times
      return
    }
    const buckets = v > 0 ? this.positive : this.negative
    const i = this.index(Math.abs(v))
    buckets.set(i, (buckets.get(i) ?? 0) + times)
  }

  reset(): void {
    this.count = 0
    this.sum = 0
    this.zeroCount = 0
    this.positive.clear()
    this.negative.clear()
  }
}

/** Spans (offset from the previous span's end, or the first index) and deltas of a bucket map. */
const spansAndDeltas = (buckets: ReadonlyMap<number, number>) => {
  const indexes = [...buckets.keys()].filter((i) => (buckets.get(i) ?? 0) > 0).sort((a, b) => a - b)
  const spans: Array<{ offset: number; length: number }> = []
  const deltas: Array<number> = []
  let previousEnd: number | undefined
  let previousCount = 0
  for (const i of indexes) {
    const last = spans[spans.length - 1]
    if (last !== undefined && previousEnd === i) last.length++
    else spans.push({ offset: previousEnd === undefined ? i : i - previousEnd, length: 1 })
    previousEnd = i + 1
    const count = buckets.get(i) ?? 0
    deltas.push(count - previousCount)
    previousCount = count
  }
  return { spans, deltas }
}

const writeHistogram = (w: ProtoWriter, h: NativeHistogram): void => {
  w.uint(1, h.count) // sample_count
  w.double(2, h.sum) // sample_sum
  // No field 3 (classic buckets): Prometheus keeps the histogram as native only.
  w.sint(5, h.schema) // schema
  w.double(6, h.zeroThreshold) // zero_threshold
  w.uint(7, h.zeroCount) // zero_count
  const negative = spansAndDeltas(h.negative)
  for (const s of negative.spans) w.message(9, (m) => m.sint(1, s.offset).uint(2, s.length)) // negative_span
  w.packedSint(10, negative.deltas) // negative_delta
  const positive = spansAndDeltas(h.positive)
  for (const s of positive.spans) w.message(12, (m) => m.sint(1, s.offset).uint(2, s.length)) // positive_span
  w.packedSint(13, positive.deltas) // positive_delta
}

interface Family {
  readonly name: string
  readonly help: string
  readonly type: number
  readonly labels: ReadonlyArray<readonly [string, string]>
  readonly write: (metric: ProtoWriter) => void
}

const encodeFamily = (f: Family): Uint8Array =>
  new ProtoWriter()
    .string(1, f.name)
    .string(2, f.help)
    .uint(3, f.type)
    .message(4, (m) => {
      for (const [name, value] of f.labels) m.message(1, (l) => l.string(1, name).string(2, value))
      f.write(m)
    })
    .finish()

/** MetricFamily messages, each prefixed by its length as a varint (`encoding=delimited`). */
const delimited = (messages: ReadonlyArray<Uint8Array>): Uint8Array => {
  const parts: Array<Uint8Array> = []
  for (const m of messages) parts.push(new ProtoWriter().varint(m.length).finish(), m)
  return Buffer.concat(parts)
}

export const contentType = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"

// ---------------------------------------------------------------------------------------------------
// The target's metrics.

/** The 20 observations `nh_e2e_latency_seconds` gets on every scrape (see the header). */
export const latencyObservations: ReadonlyArray<number> = [
  // negative buckets
  -12.5, -3.3, -0.7, -0.7,
  // the zero bucket (|v| <= 0.001)
  0, 0.0004, -0.0002,
  // positive buckets, all at or below 8...
  0.05, 0.12, 0.3, 0.3, 0.45, 0.8, 1.5, 2.2, 3.7, 5.1, 7.9,
  // ...the 19th in the bucket right above 8 (8, 2^(25/8)], and one far off
  8.3, 40
]

/** `nh_e2e_resetting_seconds` is reset to empty on scrapes resetEvery, 2 * resetEvery, ... */
export const resetEvery = 7

export interface NativeHistogramTarget {
  readonly port: number
  /** `host:port`, for a scrape config. */
  readonly address: string
  /** How many times `/metrics` was served. */
  readonly scrapes: () => number
  readonly close: () => Promise<void>
}

export const startNativeHistogramTarget = async (): Promise<NativeHistogramTarget> => {
  const latency = new NativeHistogram(3, 0.001)
  const resetting = new NativeHistogram(0, 0.001)
  let scrapes = 0

  /** The metrics of scrape `n` (1, 2, ...): each call advances the histograms. */
  const render = (n: number): Uint8Array => {
    for (const v of latencyObservations) latency.observe(v)

    if (n % resetEvery === 0) resetting.reset()
    for (const v of [-2.5, -0.3, 0, 0.7, 1.2, 3, 6, 6, 20]) resetting.observe(v)
    for (let i = 0; i < n % 3; i++) resetting.observe(0.9)

    // A gauge histogram rebuilt from n: counts going up and down, the -0.6 bucket coming and going,
    // and empty every sixth scrape.
    const inflight = new NativeHistogram(1, 0.001)
    if (n % 6 !== 5) {
      const values = [-4, -0.6, 0, 0.25, 1.3, 2.9, 9]
      values.forEach((v, i) => {
        if (v === -0.6 && n % 4 === 0) return
        inflight.observe(v, 1 + ((n * (i + 3)) % 5))
      })
    }

    const labels = [["path", "/checkout"]] as const
    return delimited([
      encodeFamily({
        name: "nh_e2e_latency_seconds",
        help: "Latency of the end-to-end test's requests (native histogram).",
        type: MetricType.HISTOGRAM,
        labels,
        write: (m) => m.message(7, (h) => writeHistogram(h, latency))
      }),
      encodeFamily({
        name: "nh_e2e_resetting_seconds",
        help: "A native histogram whose counters are reset now and then.",
        type: MetricType.HISTOGRAM,
        labels,
        write: (m) => m.message(7, (h) => writeHistogram(h, resetting))
      }),
      encodeFamily({
        name: "nh_e2e_inflight_seconds",
        help: "Age of the requests in flight (native gauge histogram).",
        type: MetricType.GAUGE_HISTOGRAM,
        labels,
        write: (m) => m.message(7, (h) => writeHistogram(h, inflight))
      }),
      encodeFamily({
        name: "nh_e2e_requests_total",
        help: "Requests of the end-to-end test.",
        type: MetricType.COUNTER,
        labels,
        write: (m) => m.message(3, (c) => c.double(1, 1000 + n * 3))
      })
    ])
  }

  const server = http.createServer((request, response) => {
    if (request.url !== "/metrics") {
      response.writeHead(404).end()
      return
    }
    scrapes += 1
    const body = render(scrapes)
    response.writeHead(200, { "content-type": contentType, "content-length": body.length })
    response.end(body)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as { port: number }).port
  return {
    port,
    address: `127.0.0.1:${port}`,
    scrapes: () => scrapes,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}
