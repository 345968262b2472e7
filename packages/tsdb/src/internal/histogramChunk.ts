/**
 * Native histogram samples in bytes (RFC 0003): one histogram as written in the head log and in chunks,
 * and a chunk of a series' histogram samples.
 *
 * A histogram keeps everything Prometheus keeps, exactly: the counter reset hint, the schema, the zero
 * bucket, the span layout as given, each bucket's count (floats, bit for bit: integer histograms are
 * floats here, exact up to 2^53) and the custom bounds of a custom-bucket (NHCB) histogram.
 *
 *   histogram = hint u8 (0 unknown, 1 reset, 2 not_reset, 3 gauge) | schema zigzag varint
 *             | zeroThreshold f64 | zeroCount f64 | count f64 | sum f64
 *             | spans(positive) | buckets(positive) | spans(negative) | buckets(negative)
 *             | customValues: n varint, n x f64
 *   spans     = n varint, n x (offset zigzag varint, length varint)
 *   buckets   = one f64 per bucket the spans cover, each XORed with the bits of the bucket before it
 *               (runs of similar counts become runs of zero bytes, which zstd takes)
 *   (f64 little-endian)
 *
 *   chunk     = version u8 (1) | zstd frame of body
 *   body      = count varint | count x (timestamp zigzag varint: difference from the previous, the first
 *               from 0 | 0 histogram  or  1 hint u8 | fields  or  2 hint u8 | sum | deltas)
 *   fields    = zeroCount, count, sum and every bucket as f64, each XORed with the same field of the sample
 *               before, for a sample with the same layout (schema, zero threshold, spans, custom bounds)
 *               as the sample before it: a counter's slowly growing fields become mostly zero bytes
 *   deltas    = (form 2: the same layout, and every count of both samples an integer below 2^53, as an
 *               integer histogram's are) zeroCount, count and every bucket as the zigzag varint of its
 *               difference from the sample before; sum as f64 XORed with the sum before
 *
 * Decoding damaged bytes throws `HistogramChunkCorrupt` and nothing else.
 */
import { constants as zlibConstants, zstdCompressSync, zstdDecompressSync } from "node:zlib"
import type { CounterResetHint, Span } from "../promql/histogram.ts"
import { FloatHistogram } from "../promql/histogram.ts"

export class HistogramChunkCorrupt extends Error {
  readonly _tag = "HistogramChunkCorrupt"
}

/** A histogram sample: its time (ms) and the histogram. */
export interface HistogramSample {
  readonly t: number
  readonly h: FloatHistogram
}

const chunkVersion = 1
/** A chunk's body decompresses to at most this many bytes. */
const chunkBodyBytesMax = 64 * 1024 * 1024
const hints: ReadonlyArray<CounterResetHint> = ["unknown", "reset", "not_reset", "gauge"]

/** Bytes written front to back into a buffer that grows. */
export class ByteWriter {
  private buf = new Uint8Array(256)
  private view = new DataView(this.buf.buffer)
  length = 0

  private room(n: number) {
    if (this.length + n <= this.buf.length) return
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n))
    next.set(this.buf.subarray(0, this.length))
    this.buf = next
    this.view = new DataView(next.buffer)
  }

  u8(b: number): void {
    this.room(1)
    this.buf[this.length++] = b
  }

  /** A non-negative safe integer, 7 bits a byte, low first. */
  varint(n: number): void {
    this.room(10)
    while (n >= 0x80) {
      this.buf[this.length++] = (n % 0x80) | 0x80
      n = Math.floor(n / 0x80)
    }
    this.buf[this.length++] = n
  }

  zigzag(n: number): void {
    this.varint(n < 0 ? -2 * n - 1 : 2 * n)
  }

  /** A float's 64 bits, little-endian, as two 32-bit halves (lo, hi). */
  bits(lo: number, hi: number): void {
    this.room(8)
    this.view.setUint32(this.length, lo, true)
    this.view.setUint32(this.length + 4, hi, true)
    this.length += 8
  }

  f64(v: number): void {
    this.room(8)
    this.view.setFloat64(this.length, v, true)
    this.length += 8
  }

  bytes(): Uint8Array {
    return this.buf.slice(0, this.length)
  }
}

/** Reads what a `ByteWriter` wrote; past the end (or a bad varint) is `HistogramChunkCorrupt`. */
export class ByteReader {
  private readonly buf: Uint8Array
  private readonly what: string
  private readonly view: DataView
  at = 0

  constructor(buf: Uint8Array, what: string) {
    this.buf = buf
    this.what = what
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  }

  get done(): boolean {
    return this.at >= this.buf.length
  }

  private need(n: number) {
    if (this.at + n > this.buf.length) throw new HistogramChunkCorrupt(`${this.what}: truncated`)
  }

  u8(): number {
    this.need(1)
    return this.buf[this.at++]!
  }

  varint(): number {
    let n = 0
    let scale = 1
    for (let shift = 0; shift < 63; shift += 7) {
      const b = this.u8()
      n += (b & 0x7f) * scale
      if (b < 0x80) return n
      scale *= 0x80
    }
    throw new HistogramChunkCorrupt(`${this.what}: a varint longer than 9 bytes`)
  }

  zigzag(): number {
    const n = this.varint()
    return n % 2 === 1 ? -(n + 1) / 2 : n / 2
  }

  lo(): number {
    this.need(8)
    return this.view.getUint32(this.at, true)
  }

  hi(): number {
    return this.view.getUint32(this.at + 4, true)
  }

  skip(n: number): void {
    this.need(n)
    this.at += n
  }

  f64(): number {
    this.need(8)
    const v = this.view.getFloat64(this.at, true)
    this.at += 8
    return v
  }
}

const scratch = new DataView(new ArrayBuffer(8))

const writeSpans = (w: ByteWriter, spans: ReadonlyArray<Span>) => {
  w.varint(spans.length)
  for (const s of spans) {
    w.zigzag(s.offset)
    w.varint(s.length)
  }
}

const writeBuckets = (w: ByteWriter, buckets: ReadonlyArray<number>) => {
  let prevLo = 0
  let prevHi = 0
  for (const b of buckets) {
    scratch.setFloat64(0, b, true)
    const lo = scratch.getUint32(0, true)
    const hi = scratch.getUint32(4, true)
    w.bits((lo ^ prevLo) >>> 0, (hi ^ prevHi) >>> 0)
    prevLo = lo
    prevHi = hi
  }
}

/** Appends one histogram's bytes. */
export const writeHistogram = (w: ByteWriter, h: FloatHistogram): void => {
  w.u8(hints.indexOf(h.counterResetHint))
  w.zigzag(h.schema)
  w.f64(h.zeroThreshold)
  w.f64(h.zeroCount)
  w.f64(h.count)
  w.f64(h.sum)
  writeSpans(w, h.positiveSpans)
  writeBuckets(w, h.positiveBuckets)
  writeSpans(w, h.negativeSpans)
  writeBuckets(w, h.negativeBuckets)
  w.varint(h.customValues.length)
  for (const v of h.customValues) w.f64(v)
}

/** Spans at most this many buckets in all (a bound on what a damaged length makes us allocate). */
const bucketsMax = 1 << 20

const readSpans = (r: ByteReader, what: string): { spans: Array<Span>; buckets: number } => {
  const n = r.varint()
  if (n > bucketsMax) throw new HistogramChunkCorrupt(`${what}: ${n} spans`)
  const spans: Array<Span> = []
  let buckets = 0
  for (let i = 0; i < n; i++) {
    const offset = r.zigzag()
    const length = r.varint()
    buckets += length
    spans.push({ offset, length })
  }
  if (buckets > bucketsMax) throw new HistogramChunkCorrupt(`${what}: ${buckets} buckets`)
  return { spans, buckets }
}

const readBuckets = (r: ByteReader, n: number): Array<number> => {
  const out: Array<number> = new Array(n)
  let prevLo = 0
  let prevHi = 0
  for (let i = 0; i < n; i++) {
    const lo = (r.lo() ^ prevLo) >>> 0
    const hi = (r.hi() ^ prevHi) >>> 0
    r.skip(8)
    scratch.setUint32(0, lo, true)
    scratch.setUint32(4, hi, true)
    out[i] = scratch.getFloat64(0, true)
    prevLo = lo
    prevHi = hi
  }
  return out
}

/** Reads one histogram written by `writeHistogram`. */
export const readHistogram = (r: ByteReader, what: string): FloatHistogram => {
  const hint = hints[r.u8()]
  if (hint === undefined) throw new HistogramChunkCorrupt(`${what}: unknown counter reset hint`)
  const schema = r.zigzag()
  const zeroThreshold = r.f64()
  const zeroCount = r.f64()
  const count = r.f64()
  const sum = r.f64()
  const positive = readSpans(r, what)
  const positiveBuckets = readBuckets(r, positive.buckets)
  const negative = readSpans(r, what)
  const negativeBuckets = readBuckets(r, negative.buckets)
  const nCustom = r.varint()
  if (nCustom > bucketsMax) throw new HistogramChunkCorrupt(`${what}: ${nCustom} custom bounds`)
  const customValues: Array<number> = []
  for (let i = 0; i < nCustom; i++) customValues.push(r.f64())
  return new FloatHistogram({
    counterResetHint: hint,
    schema,
    zeroThreshold,
    zeroCount,
    count,
    sum,
    positiveSpans: positive.spans,
    positiveBuckets,
    negativeSpans: negative.spans,
    negativeBuckets,
    customValues
  })
}

const spansEqual = (a: ReadonlyArray<Span>, b: ReadonlyArray<Span>) =>
  a.length === b.length && a.every((s, i) => s.offset === b[i]!.offset && s.length === b[i]!.length)

/** Whether two histograms have the same layout: only their counts (and hint) differ. */
const sameLayout = (a: FloatHistogram, b: FloatHistogram) =>
  a.schema === b.schema &&
  Object.is(a.zeroThreshold, b.zeroThreshold) &&
  spansEqual(a.positiveSpans, b.positiveSpans) &&
  spansEqual(a.negativeSpans, b.negativeSpans) &&
  a.positiveBuckets.length === b.positiveBuckets.length &&
  a.negativeBuckets.length === b.negativeBuckets.length &&
  a.customValues.length === b.customValues.length &&
  a.customValues.every((v, i) => Object.is(v, b.customValues[i]))

/** The counts of a histogram in a fixed order (zero count, count, sum, positive, negative buckets). */
const countsOf = (h: FloatHistogram): Array<number> => [h.zeroCount, h.count, h.sum, ...h.positiveBuckets, ...h.negativeBuckets]

/** Writes `counts` XORed field by field with `previous` (the same length). */
const writeXored = (w: ByteWriter, counts: ReadonlyArray<number>, previous: ReadonlyArray<number>) => {
  for (let i = 0; i < counts.length; i++) {
    scratch.setFloat64(0, counts[i]!, true)
    const lo = scratch.getUint32(0, true)
    const hi = scratch.getUint32(4, true)
    scratch.setFloat64(0, previous[i]!, true)
    w.bits((lo ^ scratch.getUint32(0, true)) >>> 0, (hi ^ scratch.getUint32(4, true)) >>> 0)
  }
}

const readXored = (r: ByteReader, previous: ReadonlyArray<number>): Array<number> =>
  previous.map((p) => {
    scratch.setFloat64(0, p, true)
    const lo = (r.lo() ^ scratch.getUint32(0, true)) >>> 0
    const hi = (r.hi() ^ scratch.getUint32(4, true)) >>> 0
    r.skip(8)
    scratch.setUint32(0, lo, true)
    scratch.setUint32(4, hi, true)
    return scratch.getFloat64(0, true)
  })

/** Whether every count but the sum (index 2) is an integer the float represents exactly. */
const integral = (counts: ReadonlyArray<number>) => counts.every((c, i) => i === 2 || (Number.isSafeInteger(c) && c >= 0))

/** A chunk of histogram samples (strictly increasing times). */
export const encodeHistogramChunk = (samples: ReadonlyArray<HistogramSample>): Uint8Array => {
  const w = new ByteWriter()
  w.varint(samples.length)
  let prev = 0
  let before: FloatHistogram | undefined
  for (const s of samples) {
    w.zigzag(s.t - prev)
    prev = s.t
    if (before !== undefined && sameLayout(before, s.h)) {
      const counts = countsOf(s.h)
      const previous = countsOf(before)
      if (integral(counts) && integral(previous)) {
        w.u8(2)
        w.u8(hints.indexOf(s.h.counterResetHint))
        writeXored(w, [counts[2]!], [previous[2]!])
        for (let i = 0; i < counts.length; i++) if (i !== 2) w.zigzag(counts[i]! - previous[i]!)
      } else {
        w.u8(1)
        w.u8(hints.indexOf(s.h.counterResetHint))
        writeXored(w, counts, previous)
      }
    } else {
      w.u8(0)
      writeHistogram(w, s.h)
    }
    before = s.h
  }
  const compressed = zstdCompressSync(w.bytes(), { params: { [zlibConstants.ZSTD_c_compressionLevel]: 3 } })
  const out = new Uint8Array(1 + compressed.length)
  out[0] = chunkVersion
  out.set(compressed, 1)
  return out
}

export const decodeHistogramChunk = (bytes: Uint8Array): Array<HistogramSample> => {
  if (bytes.length < 2 || bytes[0] !== chunkVersion) throw new HistogramChunkCorrupt(`histogram chunk: unknown version ${bytes[0]}`)
  let body: Uint8Array
  try {
    body = zstdDecompressSync(bytes.subarray(1), { maxOutputLength: chunkBodyBytesMax })
  } catch (e) {
    throw new HistogramChunkCorrupt(`histogram chunk: ${String(e)}`)
  }
  const r = new ByteReader(body, "histogram chunk")
  const n = r.varint()
  if (n > body.length) throw new HistogramChunkCorrupt(`histogram chunk: ${n} samples in ${body.length} bytes`)
  const out: Array<HistogramSample> = []
  let t = 0
  let before: FloatHistogram | undefined
  for (let i = 0; i < n; i++) {
    t += r.zigzag()
    const form = r.u8()
    let h: FloatHistogram
    if (form === 0) h = readHistogram(r, "histogram chunk")
    else if ((form === 1 || form === 2) && before !== undefined) {
      const hint = hints[r.u8()]
      if (hint === undefined) throw new HistogramChunkCorrupt("histogram chunk: unknown counter reset hint")
      const previous = countsOf(before)
      let counts: Array<number>
      if (form === 1) counts = readXored(r, previous)
      else {
        const sum = readXored(r, [previous[2]!])[0]!
        counts = previous.map((p, i) => (i === 2 ? sum : p + r.zigzag()))
      }
      const np = before.positiveBuckets.length
      h = new FloatHistogram({
        counterResetHint: hint,
        schema: before.schema,
        zeroThreshold: before.zeroThreshold,
        zeroCount: counts[0]!,
        count: counts[1]!,
        sum: counts[2]!,
        positiveSpans: before.positiveSpans.map((x) => ({ ...x })),
        positiveBuckets: counts.slice(3, 3 + np),
        negativeSpans: before.negativeSpans.map((x) => ({ ...x })),
        negativeBuckets: counts.slice(3 + np),
        customValues: [...before.customValues]
      })
    } else throw new HistogramChunkCorrupt(`histogram chunk: unknown sample form ${form}`)
    out.push({ t, h })
    before = h
  }
  if (!r.done) throw new HistogramChunkCorrupt("histogram chunk: bytes after the last sample")
  return out
}
