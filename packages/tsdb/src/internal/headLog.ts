/**
 * The head's log and checkpoints (see rfcs/0002-head-log.md).
 *
 * A remote-write request is logged as one record: the samples it accepted, in the order it accepted
 * them, as three columns. Replaying the records after a checkpoint, in order, into the checkpointed heads
 * rebuilds every head exactly (the same appends, cuts and out-of-order inserts the writes made).
 *
 *   record  = version u8 (4) | zstd frame of body
 *   body    = count varint | ids | timestamps | values
 *   ids     = count zigzag varints, each the difference from the previous id (the first from 0)
 *   times   = count zigzag varints, each the difference from the previous timestamp (the first from 0)
 *   values  = count x 8 bytes, each value's 64-bit pattern, little-endian, XORed with the previous
 *             sample's when that sample is of the same series (a request's samples of one series are
 *             consecutive: most bits of a counter's or a gauge's next value are then zeros)
 *
 * zstd at level 1 takes the body from about 12 to 3-6 bytes a sample for a few percent of the write
 * path's CPU, and every byte saved is a byte the WAL, the memtable and a flush do not carry; the XOR makes
 * a request of 50 samples per series about 40% quicker to compress (and a little smaller). Older versions
 * are read too: 1, the body uncompressed; 2, compressed, the values as they are.
 *
 * A record with native histogram samples is version 5 (3 with the values as they are): the same body
 * followed by them:
 *
 *   record5 = 5 | zstd frame of (body | hcount varint | hcount x (id zigzag varint, time zigzag varint,
 *             each the difference from the previous histogram's | histogram (internal/histogramChunk.ts)))
 *
 * A checkpointed head (the value of a series' `H` key) says which record it reflects:
 *
 *   head    = 0xff | asOf u64 (big-endian) | head length u32 | head chunk | out-of-order chunk (may be empty)
 *   head    = 0xfe | asOf u64 | head length u32 | head chunk | ooo length u32 | out-of-order chunk
 *             | histogram head (a histogram chunk, may be empty)     (a head with native histograms)
 *
 * A value whose first byte is not 0xff is the older form: the head chunk alone (its sample count's high
 * byte comes first, at most 0x00 for 120 samples), reflecting no record.
 */

import { constants as zlibConstants, zstdCompressSync, zstdDecompressSync } from "node:zlib"
import type { FloatHistogram } from "../promql/histogram.ts"
import { ByteReader, ByteWriter, HistogramChunkCorrupt, readHistogram, writeHistogram } from "./histogramChunk.ts"
import { unzigzag, writeVarint, zigzag } from "./varint.ts"

/** The record format's version bytes (see above; 2 is the body compressed, values as they are); 4 and 5 are written, all five read. */
const recordPlain = 1
const recordHistograms = 3
const recordXor = 4
const recordXorHistograms = 5
/** zstd level: the fastest, which already takes most of what there is to take. */
const zstdLevel = 1
/** A record's body decompresses to at most this many bytes (a batch of the Db's is at most 8 MiB). */
const recordBodyBytesMax = 64 * 1024 * 1024
/** The first byte of a checkpointed head, and of one with a histogram head. */
const headMagic = 0xff
const headHistogramsMagic = 0xfe

export class HeadLogCorrupt extends Error {
  readonly _tag = "HeadLogCorrupt"
}

/** The samples of one record, as columns; values as their 64-bit patterns (two uint32 lanes each). */
export interface LogRecord {
  readonly count: number
  readonly ids: Float64Array
  readonly timestamps: Float64Array
  /** `bits[2i]` is the low half of sample i's value pattern, `bits[2i + 1]` the high half. */
  readonly bits: Uint32Array
  /** The native histogram samples, in the order accepted (absent when none). */
  readonly histograms?: {
    readonly ids: ReadonlyArray<number>
    readonly timestamps: ReadonlyArray<number>
    readonly values: ReadonlyArray<FloatHistogram>
  } | undefined
}

/**
 * Builds a record sample by sample (plain loops: no allocation per sample beyond the growing buffer). One
 * builder serves record after record (`reset`): its columns, and the buffer the body is encoded into
 * before compression, are kept at the largest size a record needed, up to `keptSamplesMax` samples.
 */
export class RecordBuilder {
  private ids: Float64Array
  private timestamps: Float64Array
  private bits: Uint32Array
  private n = 0
  private histograms = { ids: [] as Array<number>, timestamps: [] as Array<number>, values: [] as Array<FloatHistogram> }
  /** The uncompressed body is encoded here (compression copies it out). */
  private scratch = new Uint8Array(0)
  /** The values XORed, before they go into the body. */
  private xored = new Uint32Array(0)

  constructor(capacity = 1024) {
    this.ids = new Float64Array(capacity)
    this.timestamps = new Float64Array(capacity)
    this.bits = new Uint32Array(capacity * 2)
  }

  /** Empties the builder for the next record (its buffers are kept unless over `keptSamplesMax` samples). */
  reset(): void {
    this.n = 0
    this.histograms = { ids: [], timestamps: [], values: [] }
    if (this.ids.length > keptSamplesMax) {
      this.ids = new Float64Array(1024)
      this.timestamps = new Float64Array(1024)
      this.bits = new Uint32Array(2048)
    }
    if (this.scratch.length > 10 + keptSamplesMax * 24) this.scratch = new Uint8Array(0)
    if (this.xored.length > keptSamplesMax * 2) this.xored = new Uint32Array(0)
  }

  /** Float samples added. */
  get count(): number {
    return this.n
  }

  /** Histogram samples added. */
  get histogramCount(): number {
    return this.histograms.ids.length
  }

  addHistogram(id: number, t: number, h: FloatHistogram): void {
    this.histograms.ids.push(id)
    this.histograms.timestamps.push(t)
    this.histograms.values.push(h)
  }

  add(id: number, t: number, lo: number, hi: number): void {
    if (this.n === this.ids.length) this.grow()
    const i = this.n++
    this.ids[i] = id
    this.timestamps[i] = t
    this.bits[2 * i] = lo
    this.bits[2 * i + 1] = hi
  }

  private grow() {
    const ids = new Float64Array(this.ids.length * 2)
    ids.set(this.ids)
    const timestamps = new Float64Array(this.timestamps.length * 2)
    timestamps.set(this.timestamps)
    const bits = new Uint32Array(this.bits.length * 2)
    bits.set(this.bits)
    this.ids = ids
    this.timestamps = timestamps
    this.bits = bits
  }

  /** The encoded record (compressed). */
  encode(): Uint8Array {
    let body = this.encodeBody(true)
    const withHistograms = this.histograms.ids.length > 0
    if (withHistograms) {
      const w = new ByteWriter()
      const { ids, timestamps, values } = this.histograms
      w.varint(ids.length)
      let prevId = 0
      let prevT = 0
      for (let i = 0; i < ids.length; i++) {
        w.zigzag(ids[i]! - prevId)
        w.zigzag(timestamps[i]! - prevT)
        prevId = ids[i]!
        prevT = timestamps[i]!
        writeHistogram(w, values[i]!)
      }
      const tail = w.bytes()
      const both = new Uint8Array(body.length + tail.length)
      both.set(body)
      both.set(tail, body.length)
      body = both
    }
    const compressed = zstdCompressSync(body, { params: { [zlibConstants.ZSTD_c_compressionLevel]: zstdLevel } })
    const out = new Uint8Array(1 + compressed.length)
    out[0] = withHistograms ? recordXorHistograms : recordXor
    out.set(compressed, 1)
    return out
  }

  /** The record uncompressed (version 1), in an array of its own. */
  encodePlain(): Uint8Array {
    const body = this.encodeBody(false)
    const out = new Uint8Array(1 + body.length)
    out[0] = recordPlain
    out.set(body, 1)
    return out
  }

  /**
   * The body, in the builder's scratch buffer (valid until the next encode or reset); with `xor`, each
   * value XORed with the previous sample's when that sample is of the same series.
   */
  private encodeBody(xor: boolean): Uint8Array {
    const n = this.n
    // Each varint of a safe integer's difference takes at most 8 bytes (zigzag of 2^54 fits 56 bits).
    const size = 10 + n * (8 + 8) + n * 8
    if (this.scratch.length < size) this.scratch = new Uint8Array(size)
    const out = this.scratch
    let at = writeVarint(out, 0, n)
    const ids = this.ids
    const timestamps = this.timestamps
    let prev = 0
    for (let i = 0; i < n; i++) {
      const id = ids[i]!
      at = writeVarint(out, at, zigzag(id - prev))
      prev = id
    }
    prev = 0
    for (let i = 0; i < n; i++) {
      const t = timestamps[i]!
      at = writeVarint(out, at, zigzag(t - prev))
      prev = t
    }
    let bits = this.bits
    if (xor) {
      if (this.xored.length < n * 2) this.xored = new Uint32Array(this.bits.length)
      const x = this.xored
      x[0] = bits[0]!
      x[1] = bits[1]!
      for (let i = 1; i < n; i++) {
        const same = ids[i] === ids[i - 1]
        x[2 * i] = same ? bits[2 * i]! ^ bits[2 * i - 2]! : bits[2 * i]!
        x[2 * i + 1] = same ? bits[2 * i + 1]! ^ bits[2 * i - 1]! : bits[2 * i + 1]!
      }
      bits = x
    }
    // The values: each as its low then high 32 bits, little-endian; on a little-endian machine that is
    // how `bits` lies in memory already.
    if (littleEndian) out.set(new Uint8Array(bits.buffer, 0, n * 8), at)
    else {
      const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
      for (let i = 0; i < n; i++) {
        view.setUint32(at + 8 * i, bits[2 * i]!, true)
        view.setUint32(at + 8 * i + 4, bits[2 * i + 1]!, true)
      }
    }
    at += n * 8
    return out.subarray(0, at)
  }
}

/** A builder keeps buffers for records of up to this many samples between records (larger ones are let go). */
const keptSamplesMax = 1 << 20

/** Whether this machine stores numbers little-endian (every platform Node runs on today). */
const littleEndian = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1

export const decodeRecord = (record: Uint8Array): LogRecord => {
  const version = record[0]!
  if (record.length < 2 || version < recordPlain || version > recordXorHistograms) {
    throw new HeadLogCorrupt(`head log record: unknown version ${record[0]}`)
  }
  let bytes: Uint8Array
  if (record[0] === recordPlain) bytes = record.subarray(1)
  else {
    try {
      bytes = zstdDecompressSync(record.subarray(1), { maxOutputLength: recordBodyBytesMax })
    } catch (e) {
      throw new HeadLogCorrupt(`head log record: ${String(e)}`)
    }
  }
  const cursor = { at: 0 }
  const count = readVarint(bytes, cursor)
  if (count > bytes.length) throw new HeadLogCorrupt(`head log record: ${count} samples in ${bytes.length} bytes`)
  const ids = new Float64Array(count)
  const timestamps = new Float64Array(count)
  const bits = new Uint32Array(count * 2)
  let prev = 0
  for (let i = 0; i < count; i++) ids[i] = prev = prev + unzigzag(readVarint(bytes, cursor))
  prev = 0
  for (let i = 0; i < count; i++) timestamps[i] = prev = prev + unzigzag(readVarint(bytes, cursor))
  let at = cursor.at
  const withHistograms = version === recordHistograms || version === recordXorHistograms
  if (withHistograms ? at + count * 8 > bytes.length : at + count * 8 !== bytes.length) {
    throw new HeadLogCorrupt(`head log record: ${bytes.length - at} bytes of values for ${count} samples`)
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  for (let i = 0; i < count; i++) {
    bits[2 * i] = view.getUint32(at, true)
    bits[2 * i + 1] = view.getUint32(at + 4, true)
    at += 8
  }
  if (version === recordXor || version === recordXorHistograms) {
    for (let i = 1; i < count; i++) {
      if (ids[i] !== ids[i - 1]) continue
      bits[2 * i] = (bits[2 * i]! ^ bits[2 * i - 2]!) >>> 0
      bits[2 * i + 1] = (bits[2 * i + 1]! ^ bits[2 * i - 1]!) >>> 0
    }
  }
  if (!withHistograms) return { count, ids, timestamps, bits }
  try {
    const r = new ByteReader(bytes.subarray(at), "head log record")
    const n = r.varint()
    if (n > bytes.length) throw new HeadLogCorrupt(`head log record: ${n} histograms in ${bytes.length} bytes`)
    const histograms = { ids: [] as Array<number>, timestamps: [] as Array<number>, values: [] as Array<FloatHistogram> }
    let id = 0
    let t = 0
    for (let i = 0; i < n; i++) {
      id += r.zigzag()
      t += r.zigzag()
      histograms.ids.push(id)
      histograms.timestamps.push(t)
      histograms.values.push(readHistogram(r, "head log record"))
    }
    if (!r.done) throw new HeadLogCorrupt("head log record: bytes after the last histogram")
    return { count, ids, timestamps, bits, histograms }
  } catch (e) {
    if (e instanceof HistogramChunkCorrupt) throw new HeadLogCorrupt(e.message)
    throw e
  }
}

/**
 * A checkpointed head: the record it reflects (0: none), its head chunk and out-of-order chunk, and its
 * histogram head (a histogram chunk).
 */
export interface Checkpointed {
  readonly asOf: number
  readonly head: Uint8Array | undefined
  readonly ooo: Uint8Array | undefined
  readonly histograms?: Uint8Array | undefined
}

export const encodeCheckpointed = (asOf: number, head: Uint8Array | undefined, ooo: Uint8Array | undefined, histograms?: Uint8Array | undefined): Uint8Array => {
  if (histograms !== undefined) {
    const headLength = head?.length ?? 0
    const oooLength = ooo?.length ?? 0
    const out = new Uint8Array(1 + 8 + 4 + headLength + 4 + oooLength + histograms.length)
    const view = new DataView(out.buffer)
    out[0] = headHistogramsMagic
    view.setUint32(1, Math.floor(asOf / 0x1_0000_0000))
    view.setUint32(5, asOf >>> 0)
    view.setUint32(9, headLength)
    if (head !== undefined) out.set(head, 13)
    view.setUint32(13 + headLength, oooLength)
    if (ooo !== undefined) out.set(ooo, 17 + headLength)
    out.set(histograms, 17 + headLength + oooLength)
    return out
  }
  const headLength = head?.length ?? 0
  const out = new Uint8Array(1 + 8 + 4 + headLength + (ooo?.length ?? 0))
  const view = new DataView(out.buffer)
  out[0] = headMagic
  view.setUint32(1, Math.floor(asOf / 0x1_0000_0000))
  view.setUint32(5, asOf >>> 0)
  view.setUint32(9, headLength)
  if (head !== undefined) out.set(head, 13)
  if (ooo !== undefined) out.set(ooo, 13 + headLength)
  return out
}

export const decodeCheckpointed = (bytes: Uint8Array): Checkpointed => {
  if (bytes.length > 0 && bytes[0] === headHistogramsMagic) {
    if (bytes.length < 17) throw new HeadLogCorrupt(`checkpointed head: ${bytes.length} bytes`)
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    const asOf = view.getUint32(1) * 0x1_0000_0000 + view.getUint32(5)
    const headLength = view.getUint32(9)
    if (17 + headLength > bytes.length) throw new HeadLogCorrupt(`checkpointed head: a head of ${headLength} bytes in ${bytes.length}`)
    const oooLength = view.getUint32(13 + headLength)
    const histAt = 17 + headLength + oooLength
    if (histAt > bytes.length) throw new HeadLogCorrupt(`checkpointed head: an out-of-order chunk of ${oooLength} bytes in ${bytes.length}`)
    return {
      asOf,
      head: headLength === 0 ? undefined : bytes.subarray(13, 13 + headLength),
      ooo: oooLength === 0 ? undefined : bytes.subarray(17 + headLength, histAt),
      histograms: histAt === bytes.length ? undefined : bytes.subarray(histAt)
    }
  }
  if (bytes.length === 0 || bytes[0] !== headMagic) return { asOf: 0, head: bytes.length === 0 ? undefined : bytes, ooo: undefined }
  if (bytes.length < 13) throw new HeadLogCorrupt(`checkpointed head: ${bytes.length} bytes`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const asOf = view.getUint32(1) * 0x1_0000_0000 + view.getUint32(5)
  const headLength = view.getUint32(9)
  if (13 + headLength > bytes.length) throw new HeadLogCorrupt(`checkpointed head: a head of ${headLength} bytes in ${bytes.length}`)
  const head = headLength === 0 ? undefined : bytes.subarray(13, 13 + headLength)
  const ooo = 13 + headLength === bytes.length ? undefined : bytes.subarray(13 + headLength)
  return { asOf, head, ooo }
}

const readVarint = (bytes: Uint8Array, cursor: { at: number }): number => {
  let n = 0
  let scale = 1
  for (let shift = 0; shift < 63; shift += 7) {
    if (cursor.at >= bytes.length) throw new HeadLogCorrupt("head log record: truncated")
    const b = bytes[cursor.at++]!
    n += (b & 0x7f) * scale
    if (b < 0x80) return n
    scale *= 0x80
  }
  throw new HeadLogCorrupt("head log record: a varint longer than 9 bytes")
}
