/**
 * Packed sample chunks (RFC 0005): what sealed and checkpointed float chunks are stored as when every value
 * is a decimal number of a few digits, as scraped values nearly always are (counters of bytes and packets,
 * seconds to the hundredth, gauges to two places). The XOR encoding (RFC 0001) spends 20-40 bits on such a
 * value, because decimal fractions have long binary expansions; here each value is an integer mantissa of
 * a common power of ten, and the mantissas' differences are bit-packed at the width the chunk needs, as
 * VictoriaMetrics stores values (a decimal mantissa and exponent, then delta coding).
 *
 *   chunk   = 00 00 | version u8 (1) | count varint (>= 1)
 *             | t0 zigzag varint | [count >= 2] t1 - t0 varint | [count >= 3] column of the count - 2
 *               deltas of deltas
 *             | exponent u8 (0..15) | order u8 (1 or 2) | m0 zigzag varint
 *             | [order 2, count >= 2] m1 - m0 zigzag varint | column of the differences of that order
 *   column  = base zigzag varint | step varint | width u8 (0..53) | the values' (x - base) / step, width
 *             bits each, least significant bit first, in ceil(n x width / 8) bytes
 *
 * A value is `m / 10^exponent` with `m` the sample's mantissa, exactly: the encoder keeps a chunk packed
 * only if every value divides back bit for bit (so no NaN, no infinity, no -0) and every mantissa is within
 * 2^50 (so its differences stay exact); otherwise the chunk stays an XOR chunk. The first two bytes are an
 * empty XOR chunk's, which no stored chunk is, so a reader tells the two apart by them.
 *
 * Order 1 stores each mantissa's difference from the previous one (counters, gauges); order 2 the
 * difference of those (counters growing steadily). The column's `step` is the greatest common divisor of
 * the values less their base (a byte counter moving in pages), 0 when they are all equal (width 0 and no
 * bytes: a constant).
 *
 * Decoding damaged bytes throws `ChunkCorrupt`, reads no byte beyond the input, and never writes more
 * than `count` samples, with `count` at most `countMax`.
 */
import { ChunkCorrupt, hiLane as nativeHiLane, loLane as nativeLoLane } from "./chunk.ts"
import { unzigzag, writeVarint, zigzag } from "./varint.ts"

export const packedVersion = 1
/** The most samples a packed chunk holds (as an XOR chunk's u16 count). */
export const countMax = 65535
/** Exponents tried, 10^0 to 10^15: past 15 digits a float64 holds no exact decimal fraction worth it. */
const exponentMax = 15
/** Mantissas and timestamps stay within this, so that every difference up to order 2 is a safe integer. */
const magnitudeMax = 2 ** 50
const powers = Array.from({ length: exponentMax + 1 }, (_, e) => 10 ** e)
const two32 = 0x1_0000_0000

/** Whether stored chunk bytes are a packed chunk (else an XOR chunk). */
export const isPacked = (bytes: Uint8Array): boolean => bytes.length > 2 && bytes[0] === 0 && bytes[1] === 0

// -------------------------------------------------------------------------------------------------
// Encoding
// -------------------------------------------------------------------------------------------------

let scratch = new Uint8Array(4096)
let diffs = new Float64Array(256)
let diffs2 = new Float64Array(256)
let mantissas = new Float64Array(256)
let at = 0

const ensure = (n: number) => {
  if (scratch.length < at + n) {
    const grown = new Uint8Array(Math.max(scratch.length * 2, at + n))
    grown.set(scratch.subarray(0, at))
    scratch = grown
  }
}

/** A varint at the end of the chunk being written. */
const putVarint = (n: number) => {
  ensure(10)
  at = writeVarint(scratch, at, n)
}

/** The gcd of two safe integers (`plan` runs the int32 case inline). */
const gcd = (a: number, b: number) => {
  while (b !== 0) {
    const r = a % b
    a = b
    b = r
  }
  return a
}

/**
 * Chunks are cut from shared slabs, as Node pools small Buffers: a typed array of its own costs a
 * backing-store allocation, which took as long as the rest of the encoding. A slab holds chunks sealed
 * at about the same time, which are dropped at about the same time.
 */
const slabBytes = 16 * 1024
let slab = new Uint8Array(slabBytes)
let slabAt = 0
const output = (n: number): Uint8Array => {
  if (n > slabBytes >>> 2) return scratch.slice(0, n)
  if (slabAt + n > slabBytes) {
    slab = new Uint8Array(slabBytes)
    slabAt = 0
  }
  const out = slab.subarray(slabAt, slabAt + n)
  out.set(scratch.subarray(0, n))
  // Kept 8-aligned, so that a view of a slab never shares a word with the next chunk.
  slabAt = (slabAt + n + 7) & ~7
  return out
}
const bitLength = (n: number) => (n === 0 ? 0 : n < two32 ? 32 - Math.clz32(n) : 64 - Math.clz32(Math.floor(n / two32)))

/** What a column of `xs[0..n)` costs in bytes, with its base, step and width. */
const plan = (xs: Float64Array, n: number) => {
  let min = Infinity
  let max = -Infinity
  for (let i = 0; i < n; i++) {
    const x = xs[i]!
    if (x < min) min = x
    if (x > max) max = x
  }
  if (max === min) return { base: min, step: 0, width: 0, bytes: 0 }
  let step = 0
  if (max - min < 0x8000_0000) {
    // The common case, inline in int32 arithmetic: until the divisor is 1 (random steps get there soon).
    for (let i = 0; i < n && step !== 1; i++) {
      let a = (xs[i]! - min) | 0
      let b = step
      while (b !== 0) {
        const r = a % b
        a = b
        b = r
      }
      step = a
    }
  } else {
    for (let i = 0; i < n && step !== 1; i++) step = gcd(xs[i]! - min, step)
  }
  const width = bitLength((max - min) / step)
  return { base: min, step, width, bytes: Math.ceil((n * width) / 8) }
}

const writeColumn = (xs: Float64Array, n: number, p: { base: number; step: number; width: number; bytes: number }) => {
  putVarint(zigzag(p.base))
  putVarint(p.step)
  ensure(1 + p.bytes)
  scratch[at++] = p.width
  const { width } = p
  if (width === 0) return
  const { base, step } = p
  if (width <= 24) {
    // The common case: a 32-bit accumulator holding at most 7 pending bits before each value.
    let acc = 0
    let pending = 0
    let o = at
    for (let i = 0; i < n; i++) {
      acc |= (step === 1 ? xs[i]! - base : (xs[i]! - base) / step) << pending
      pending += width
      while (pending >= 8) {
        scratch[o++] = acc & 0xff
        acc >>>= 8
        pending -= 8
      }
    }
    if (pending > 0) scratch[o++] = acc & 0xff
    at = o
    return
  }
  // Wider values (rare): the low 32 bits, then the rest.
  scratch.fill(0, at, at + p.bytes)
  let bit = at * 8
  for (let i = 0; i < n; i++) {
    const u = (xs[i]! - base) / step
    bit = orBits(u % two32 >>> 0, Math.min(32, width), bit)
    if (width > 32) bit = orBits(Math.floor(u / two32), width - 32, bit)
  }
  at += p.bytes
}

/** ORs the low `count` bits of `value` (at most 32) into `scratch` from bit `bit` on; answers the next bit. */
const orBits = (value: number, count: number, bit: number): number => {
  while (count > 0) {
    const off = bit & 7
    const k = Math.min(8 - off, count)
    scratch[bit >>> 3]! |= (value & ((1 << k) - 1)) << off
    value >>>= k
    count -= k
    bit += k
  }
  return bit
}

const grow = (n: number) => {
  if (diffs.length < n) {
    diffs = new Float64Array(n)
    diffs2 = new Float64Array(n)
    mantissas = new Float64Array(n)
  }
}

/**
 * The packed encoding of `count` samples (timestamps strictly increasing, values as float64), or
 * `undefined` when a value is not a short decimal (or a magnitude is out of range): keep the XOR chunk.
 */
export const packSamples = (ts: Float64Array, vs: Float64Array, count: number): Uint8Array | undefined => {
  if (count < 1 || count > countMax) return undefined
  grow(count)
  // The mantissas at the smallest exponent that holds every value exactly: a value that needs a larger
  // one starts the pass again at it (a value held at a smaller exponent can still miss at a larger one).
  let e = 0
  let p = 1
  for (let i = 0; i < count;) {
    const v = vs[i]!
    const m = Math.round(v * p)
    if (m / p === v && m <= magnitudeMax && m >= -magnitudeMax && (v !== 0 || 1 / v > 0)) {
      mantissas[i++] = m
      continue
    }
    if (e === exponentMax || !Number.isFinite(v)) return undefined
    e++
    p = powers[e]!
    i = 0
  }
  const t0 = ts[0]!
  if (Math.abs(t0) > magnitudeMax) return undefined
  at = 0
  ensure(16)
  scratch[at++] = 0
  scratch[at++] = 0
  scratch[at++] = packedVersion
  putVarint(count)
  putVarint(zigzag(t0))
  if (count >= 2) {
    const d1 = ts[1]! - t0
    if (!(d1 >= 1 && d1 <= magnitudeMax)) return undefined
    putVarint(d1)
    if (count >= 3) {
      let prev = d1
      for (let i = 2; i < count; i++) {
        const d = ts[i]! - ts[i - 1]!
        if (!(d >= 1 && d <= magnitudeMax)) return undefined
        diffs[i - 2] = d - prev
        prev = d
      }
      writeColumn(diffs, count - 2, plan(diffs, count - 2))
    }
  }
  ensure(2)
  scratch[at++] = e
  const m0 = mantissas[0]!
  if (count === 1) {
    scratch[at++] = 1
    putVarint(zigzag(m0))
    writeColumn(diffs, 0, { base: 0, step: 0, width: 0, bytes: 0 })
    return output(at)
  }
  for (let i = 1; i < count; i++) diffs[i - 1] = mantissas[i]! - mantissas[i - 1]!
  const first = plan(diffs, count - 1)
  for (let i = 1; i < count - 1; i++) diffs2[i - 1] = diffs[i]! - diffs[i - 1]!
  const second = count >= 3 ? plan(diffs2, count - 2) : undefined
  if (second !== undefined && second.bytes + 4 < first.bytes) {
    scratch[at++] = 2
    putVarint(zigzag(m0))
    putVarint(zigzag(diffs[0]!))
    writeColumn(diffs2, count - 2, second)
  } else {
    scratch[at++] = 1
    putVarint(zigzag(m0))
    writeColumn(diffs, count - 1, first)
  }
  return output(at)
}

// -------------------------------------------------------------------------------------------------
// Decoding
// -------------------------------------------------------------------------------------------------

/** `count` bits (at most 32) of `src` from bit `bit` on, least significant first, as an unsigned number. */
const bitsFrom = (src: Uint8Array, bit: number, count: number): number => {
  let value = 0
  let got = 0
  while (got < count) {
    const off = bit & 7
    const k = Math.min(8 - off, count - got)
    value |= ((src[bit >>> 3]! >>> off) & ((1 << k) - 1)) << got
    got += k
    bit += k
  }
  return value >>> 0
}

/** A read position in a packed chunk; every read is bounds-checked. */
class Reader {
  at = 3
  readonly bytes: Uint8Array
  constructor(bytes: Uint8Array) {
    this.bytes = bytes
  }
  u8(): number {
    if (this.at >= this.bytes.length) throw new ChunkCorrupt("packed chunk: truncated")
    return this.bytes[this.at++]!
  }
  varint(): number {
    let n = 0
    let scale = 1
    for (let i = 0; i < 8; i++) {
      const b = this.u8()
      n += (b & 0x7f) * scale
      if (b < 0x80) return n
      scale *= 0x80
    }
    throw new ChunkCorrupt("packed chunk: a varint longer than 8 bytes")
  }
  /** A column of `n` values into `out` (from index 0). */
  column(out: Float64Array, n: number): void {
    const base = unzigzag(this.varint())
    const step = this.varint()
    const width = this.u8()
    if (width > 53) throw new ChunkCorrupt(`packed chunk: a column of width ${width}`)
    const bytes = Math.ceil((n * width) / 8)
    if (this.at + bytes > this.bytes.length) throw new ChunkCorrupt("packed chunk: truncated column")
    const src = this.bytes
    if (width <= 24) {
      // The common case: a 32-bit accumulator (at most 23 bits pending, then a byte more).
      const mask = width === 0 ? 0 : 0xffffffff >>> (32 - width)
      let acc = 0
      let pending = 0
      let o = this.at
      for (let i = 0; i < n; i++) {
        while (pending < width) {
          acc |= src[o++]! << pending
          pending += 8
        }
        out[i] = base + (acc & mask) * step
        acc >>>= width
        pending -= width
      }
      this.at += bytes
      return
    }
    // Wider values (rare): the low 32 bits, then the rest.
    let bit = this.at * 8
    for (let i = 0; i < n; i++) {
      const lo = bitsFrom(src, bit, Math.min(32, width))
      const hi = width > 32 ? bitsFrom(src, bit + 32, width - 32) : 0
      bit += width
      out[i] = base + (hi * two32 + lo) * step
    }
    this.at += bytes
  }
}

let cols = new Float64Array(256)
let tsScratch = new Float64Array(256)
let vsScratch = new Float64Array(256)

/** Samples in a packed chunk (its header only). */
export const packedCount = (bytes: Uint8Array): number => {
  const r = new Reader(bytes)
  if (bytes[2] !== packedVersion) throw new ChunkCorrupt(`packed chunk: version ${bytes[2]}`)
  const count = r.varint()
  if (count < 1 || count > countMax) throw new ChunkCorrupt(`packed chunk: ${count} samples`)
  return count
}

/** Decodes a whole packed chunk into scratch columns; answers the count. Throws `ChunkCorrupt`. */
const decodeAll = (bytes: Uint8Array): number => {
  const count = packedCount(bytes)
  const r = new Reader(bytes)
  r.varint()
  if (tsScratch.length < count) {
    tsScratch = new Float64Array(count)
    vsScratch = new Float64Array(count)
    cols = new Float64Array(count)
  }
  const ts = tsScratch
  const vs = vsScratch
  let t = unzigzag(r.varint())
  ts[0] = t
  if (count >= 2) {
    let d = r.varint()
    if (d < 1) throw new ChunkCorrupt("packed chunk: timestamps not increasing")
    t += d
    ts[1] = t
    if (count >= 3) {
      r.column(cols, count - 2)
      for (let i = 2; i < count; i++) {
        d += cols[i - 2]!
        if (d < 1) throw new ChunkCorrupt("packed chunk: timestamps not increasing")
        t += d
        ts[i] = t
      }
    }
  }
  const e = r.u8()
  if (e > exponentMax) throw new ChunkCorrupt(`packed chunk: exponent ${e}`)
  const p = powers[e]!
  const order = r.u8()
  let m = unzigzag(r.varint())
  vs[0] = m / p
  if (order === 1) {
    r.column(cols, count - 1)
    for (let i = 1; i < count; i++) {
      m += cols[i - 1]!
      vs[i] = m / p
    }
  } else if (order === 2 && count >= 2) {
    let d = unzigzag(r.varint())
    m += d
    vs[1] = m / p
    r.column(cols, count - 2)
    for (let i = 2; i < count; i++) {
      d += cols[i - 2]!
      m += d
      vs[i] = m / p
    }
  } else {
    throw new ChunkCorrupt(`packed chunk: order ${order}`)
  }
  if (r.at !== bytes.length) throw new ChunkCorrupt("packed chunk: bytes after the values")
  return count
}

const f64 = new Float64Array(1)
const u32 = new Uint32Array(f64.buffer)

/**
 * `decodeChunkInto` for a packed chunk: the samples in [mint, maxt] into the columns from `at` (values as
 * their 64-bit patterns, high half at `2i + hiLane`). Answers the index past the last one written; throws
 * `ChunkCorrupt` on bad bytes.
 */
export const decodePackedInto = (bytes: Uint8Array, ts: Float64Array, bits: Uint32Array, at: number, mint: number, maxt: number, hiLane: number): number => {
  const count = decodeAll(bytes)
  const loLane = 1 - hiLane
  let n = at
  for (let i = 0; i < count; i++) {
    const t = tsScratch[i]!
    if (t > maxt) break
    if (t < mint) continue
    ts[n] = t
    f64[0] = vsScratch[i]!
    bits[2 * n + hiLane] = u32[nativeHiLane]!
    bits[2 * n + loLane] = u32[nativeLoLane]!
    n++
  }
  return n
}

/** Every sample of a packed chunk. Throws `ChunkCorrupt`. */
export const decodePacked = (bytes: Uint8Array): Array<{ readonly t: number; readonly v: number }> => {
  const count = decodeAll(bytes)
  const out = new Array<{ readonly t: number; readonly v: number }>(count)
  for (let i = 0; i < count; i++) out[i] = { t: tsScratch[i]!, v: vsScratch[i]! }
  return out
}
