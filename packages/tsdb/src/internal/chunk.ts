/**
 * XOR sample chunks (RFC 0001): the Gorilla encoding of (timestamp, value) samples, as described in
 * Facebook's Gorilla paper and used by Prometheus's XOR chunks, written from the description.
 *
 * Encoding: `count u16 (big-endian) | bit stream`, the bit stream written most significant bit first
 * and padded with zero bits to a whole byte.
 *
 * - Sample 0: timestamp as a signed LEB128 varint (two's complement, not zigzag), value as its raw 64 bits.
 * - Sample 1: timestamp delta (>= 1) as an unsigned LEB128 varint, value XOR-encoded.
 * - Sample 2..: timestamp delta-of-delta `dod` in the first bucket that holds it, value XOR-encoded:
 *     `0`                      dod = 0
 *     `10`   + 14 bits         -8191 <= dod <= 8192
 *     `110`  + 17 bits         -65535 <= dod <= 65536
 *     `1110` + 20 bits         -524287 <= dod <= 524288
 *     `1111` + 64 bits         anything else
 *   An n-bit field holds the two's complement of dod; a raw field greater than 2^(n-1) is negative.
 * - XOR value: `x` = bits of this value XOR bits of the previous one.
 *     `0`                                            x = 0 (same bits as the previous value)
 *     `10` + meaningful bits                         x fits the previous window (as many leading and
 *                                                    trailing zeros or more): its bits inside the window
 *     `11` + leading u5 + length u6 + meaningful     a new window: leading zeros (capped at 31), the
 *                                                    number of meaningful bits (64 written as 0), them
 *
 * Timestamps are integers in the JavaScript safe range (negative allowed), strictly increasing within a
 * chunk, consecutive timestamps at most 2^53-1 apart. Values are kept as their 64-bit patterns: the NaN
 * payload of Prometheus's stale marker survives bit for bit (use `appendBits` and `valueHi`/`valueLo` to
 * avoid engine NaN canonicalization altogether).
 *
 * Decoding damaged bytes throws `ChunkCorrupt` and nothing else, reads no byte beyond the input, and
 * stops within `count` samples. A truncated chunk is always corrupt: `decodeChunk` throws, and a
 * `ChunkIterator` yields a correct prefix of the samples, then throws.
 */

/** Samples in a chunk before the caller should cut a new one (Prometheus's figure). */
export const chunkSamplesTarget = 120
/** The most samples a chunk holds (its count is a u16). */
export const chunkSamplesMax = 65535

const headerBytes = 2
const two32 = 0x1_0000_0000
const two49 = 2 ** 49
/** Window marker: no leading/trailing window chosen yet. */
const noWindow = 0xff

/** The bytes are not a valid chunk: truncated, padded, or bits that decode to no valid sample sequence. */
export class ChunkCorrupt extends Error {
  override readonly name = "ChunkCorrupt"
  constructor(reason: string) {
    super(`corrupt chunk: ${reason}`)
  }
}

/** One decoded sample: timestamp (ms) and value. */
export interface Sample {
  readonly t: number
  readonly v: number
}

const littleEndian = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1
/** Where a float64's high and low uint32 halves lie in a `Uint32Array` over it, on this machine. */
export const hiLane = littleEndian ? 1 : 0
export const loLane = 1 - hiLane

// Float64 <-> two uint32 halves, without arithmetic on the value.
const scratch = new DataView(new ArrayBuffer(8))
const highBits = (v: number): number => {
  scratch.setFloat64(0, v)
  return scratch.getUint32(0)
}
const lowBits = (): number => scratch.getUint32(4)
const fromBits = (hi: number, lo: number): number => {
  scratch.setUint32(0, hi)
  scratch.setUint32(4, lo)
  return scratch.getFloat64(0)
}

const clz64 = (hi: number, lo: number): number => (hi !== 0 ? Math.clz32(hi) : 32 + Math.clz32(lo))
const ctz32 = (x: number): number => 31 - Math.clz32(x & -x)
const ctz64 = (hi: number, lo: number): number => (lo !== 0 ? ctz32(lo) : 32 + ctz32(hi))

// ---------------------------------------------------------------------------------------------------------
// Writing

/**
 * A chunk being appended to. Holds its encoding (header included) and the state the next sample is
 * encoded against. Use the functions below (`newChunk`, `append`, `chunkBytes`, ...) or its methods.
 */
/** A sealed chunk keeps its buffer (not a copy) when at most this many bytes of it, or a quarter, are unused. */
const sealSlackBytes = 64

export class XorChunk {
  private buf: Uint8Array
  /** Bits written, counting the header's 16. */
  private bitLen = headerBytes * 8
  private n = 0
  private tFirst = 0
  private tLast = 0
  private delta = 0
  private hi = 0
  private lo = 0
  private leading = noWindow
  private trailing = 0
  /** Whether `seal` handed out the buffer (nothing may be appended then). */
  private sealed = false

  constructor(capacityBytes = 128) {
    this.buf = new Uint8Array(Math.max(16, capacityBytes))
  }

  /** Samples appended. */
  get count(): number {
    return this.n
  }

  /** First timestamp, or `undefined` while empty. */
  get minTime(): number | undefined {
    return this.n === 0 ? undefined : this.tFirst
  }

  /** Last timestamp, or `undefined` while empty. */
  get maxTime(): number | undefined {
    return this.n === 0 ? undefined : this.tLast
  }

  /** The last sample's value as its 64-bit pattern: the high and low uint32 halves (0 while empty). */
  get lastHi(): number {
    return this.hi
  }

  get lastLo(): number {
    return this.lo
  }

  /** Encoded size so far, in bytes (header included). */
  get byteLength(): number {
    return (this.bitLen + 7) >>> 3
  }

  /** Appends a sample. `t` must be a safe integer greater than the last timestamp. */
  append(t: number, v: number): void {
    const hi = highBits(v)
    this.appendBits(t, hi, lowBits())
  }

  /** Appends a sample whose value is given as its 64-bit pattern: `hi` and `lo` uint32 halves. */
  appendBits(t: number, hi: number, lo: number): void {
    const n = this.n
    if (n >= chunkSamplesMax) throw new Error(`chunk: full (${chunkSamplesMax} samples)`)
    if (this.sealed) throw new Error("chunk: sealed")
    if (!Number.isSafeInteger(t)) throw new Error(`chunk: timestamp ${t} is not a safe integer`)
    hi >>>= 0
    lo >>>= 0
    if (n === 0) {
      this.writeSignedVarint(t)
      this.writeBits(hi, 32)
      this.writeBits(lo, 32)
      this.tFirst = t
    } else {
      if (!(t > this.tLast)) throw new Error(`chunk: timestamp ${t} is not after the last one (${this.tLast})`)
      const delta = t - this.tLast
      if (delta > Number.MAX_SAFE_INTEGER) throw new Error(`chunk: timestamp ${t} is more than 2^53-1 after ${this.tLast}`)
      if (n === 1) this.writeUnsignedVarint(delta)
      else this.writeDod(delta - this.delta)
      this.writeXor(hi, lo)
      this.delta = delta
    }
    this.tLast = t
    this.hi = hi
    this.lo = lo
    this.n = n + 1
  }

  /** The encoding: a fresh copy, header included. */
  bytes(): Uint8Array {
    const out = this.buf.slice(0, this.byteLength)
    out[0] = this.n >>> 8
    out[1] = this.n & 0xff
    return out
  }

  /**
   * The encoding copied into `target` from `at` (which must have `byteLength` bytes of room), header
   * included: the copy as a view of `target`. Copies of many chunks can so share one buffer.
   */
  copyInto(target: Uint8Array, at: number): Uint8Array {
    const length = this.byteLength
    target.set(this.buf.subarray(0, length), at)
    target[at] = this.n >>> 8
    target[at + 1] = this.n & 0xff
    return target.subarray(at, at + length)
  }

  /**
   * The encoding of a chunk that takes no more samples (its owner drops it): its own buffer when that is
   * about the right size (no copy), else a copy. Appending to it afterwards is a caller error.
   */
  seal(): Uint8Array {
    const length = this.byteLength
    this.buf[0] = this.n >>> 8
    this.buf[1] = this.n & 0xff
    const out = this.buf.length - length <= Math.max(sealSlackBytes, length >>> 2) ? this.buf.subarray(0, length) : this.buf.slice(0, length)
    this.sealed = true
    return out
  }

  /** Resumes appending to an encoded chunk (decodes it whole). Throws `ChunkCorrupt` on bad bytes. */
  static from(bytes: Uint8Array): XorChunk {
    const it = new ChunkIterator(bytes)
    while (it.next()) {
      // runs to the end, which also checks the padding
    }
    const chunk = new XorChunk(bytes.length * 2)
    chunk.buf.set(bytes)
    chunk.bitLen = it.bitPosition
    chunk.n = it.count
    const state = it.appenderState()
    chunk.tFirst = state.tFirst
    chunk.tLast = state.tLast
    chunk.delta = state.delta
    chunk.hi = state.hi
    chunk.lo = state.lo
    chunk.leading = state.leading
    chunk.trailing = state.trailing
    return chunk
  }

  private writeDod(dod: number): void {
    if (dod === 0) this.writeBits(0b0, 1)
    else if (dod >= -8191 && dod <= 8192) this.writeBits((0b10 << 14) | (dod & 0x3fff), 16)
    else if (dod >= -65535 && dod <= 65536) this.writeBits((0b110 << 17) | (dod & 0x1ffff), 20)
    else if (dod >= -524287 && dod <= 524288) this.writeBits((0b1110 << 20) | (dod & 0xfffff), 24)
    else {
      // |dod| < 2^53: split into exact two's complement halves.
      const high = Math.floor(dod / two32)
      this.writeBits(0b1111, 4)
      this.writeBits(high >>> 0, 32)
      this.writeBits(dod - high * two32, 32)
    }
  }

  private writeXor(hi: number, lo: number): void {
    const xhi = (hi ^ this.hi) >>> 0
    const xlo = (lo ^ this.lo) >>> 0
    if (xhi === 0 && xlo === 0) {
      this.writeBits(0b0, 1)
      return
    }
    let leading = clz64(xhi, xlo)
    if (leading > 31) leading = 31
    const trailing = ctz64(xhi, xlo)
    if (this.leading !== noWindow && leading >= this.leading && trailing >= this.trailing) {
      this.writeBits(0b10, 2)
      this.writeShifted(xhi, xlo, this.trailing, 64 - this.leading - this.trailing)
      return
    }
    const size = 64 - leading - trailing
    this.leading = leading
    this.trailing = trailing
    // `11`, 5 bits of leading, 6 bits of size (64 as 0): 13 bits in one write.
    this.writeBits((0b11 << 11) | (leading << 6) | (size & 63), 13)
    this.writeShifted(xhi, xlo, trailing, size)
  }

  /** Writes the `size` bits of (hi, lo) >> shift (1 <= size, shift + size <= 64). */
  private writeShifted(hi: number, lo: number, shift: number, size: number): void {
    if (shift >= 32) {
      lo = hi >>> (shift - 32)
      hi = 0
    } else if (shift > 0) {
      lo = ((lo >>> shift) | (hi << (32 - shift))) >>> 0
      hi = hi >>> shift
    }
    if (size > 32) {
      this.writeBits(hi, size - 32)
      this.writeBits(lo, 32)
    } else {
      this.writeBits(lo, size)
    }
  }

  private writeSignedVarint(x: number): void {
    // Signed LEB128: 7 bits a byte, low groups first; the last byte's 0x40 bit is the sign.
    for (;;) {
      const group = x - Math.floor(x / 128) * 128
      x = Math.floor(x / 128)
      const last = (x === 0 && (group & 0x40) === 0) || (x === -1 && (group & 0x40) !== 0)
      this.writeBits(last ? group : group | 0x80, 8)
      if (last) return
    }
  }

  private writeUnsignedVarint(x: number): void {
    while (x >= 0x80) {
      this.writeBits((x % 128) | 0x80, 8)
      x = Math.floor(x / 128)
    }
    this.writeBits(x, 8)
  }

  /** Writes the low `count` bits of `value` (0 <= count <= 32), most significant first. */
  private writeBits(value: number, count: number): void {
    const bitLen = this.bitLen
    if (((bitLen + count + 7) >>> 3) > this.buf.length) this.grow()
    const buf = this.buf
    this.bitLen = bitLen + count
    let index = bitLen >>> 3
    const free = 8 - (bitLen & 7)
    // Bytes past the last bit written are zero: the partial byte is or-ed into, later ones assigned.
    if (count < free) {
      buf[index] = buf[index]! | ((value & ((1 << count) - 1)) << (free - count))
      return
    }
    count -= free
    buf[index] = buf[index]! | ((value >>> count) & ((1 << free) - 1))
    while (count >= 8) {
      count -= 8
      buf[++index] = value >>> count
    }
    if (count > 0) buf[++index] = value << (8 - count)
  }

  private grow(): void {
    const next = new Uint8Array(this.buf.length * 2)
    next.set(this.buf)
    this.buf = next
  }
}

// ---------------------------------------------------------------------------------------------------------
// Reading

/**
 * Iterates the samples of an encoded chunk without allocating them: `next()` moves to the next sample,
 * then `t`, `v`, `valueHi`, `valueLo` describe it; `seek(t)` moves forward to the first sample at or after
 * `t`. Throws `ChunkCorrupt` when the bytes are not a valid chunk, at the first sample it cannot decode.
 */
export class ChunkIterator {
  /** Samples the header announces. */
  readonly count: number
  private readonly buf: Uint8Array
  private readonly endBit: number
  private pos = headerBytes * 8
  private index = 0
  private positioned = false
  private done = false
  private tFirst = 0
  private tCur = 0
  private delta = 0
  private hi = 0
  private lo = 0
  private leading = noWindow
  private trailing = 0

  constructor(bytes: Uint8Array) {
    if (bytes.length < headerBytes) throw new ChunkCorrupt(`${bytes.length} bytes, shorter than the header`)
    this.buf = bytes
    this.endBit = bytes.length * 8
    this.count = (bytes[0]! << 8) | bytes[1]!
  }

  /** Timestamp of the current sample. */
  get t(): number {
    return this.tCur
  }

  /** Value of the current sample. */
  get v(): number {
    return fromBits(this.hi, this.lo)
  }

  /** High 32 bits of the current value's bit pattern (sign, exponent, top of the mantissa). */
  get valueHi(): number {
    return this.hi
  }

  /** Low 32 bits of the current value's bit pattern. */
  get valueLo(): number {
    return this.lo
  }

  /** The current sample as an object. */
  at(): Sample {
    return { t: this.tCur, v: fromBits(this.hi, this.lo) }
  }

  /** Bit offset (header included) just past the samples decoded so far. */
  get bitPosition(): number {
    return this.pos
  }

  /** Moves to the next sample; false (and no current sample) past the last one. */
  next(): boolean {
    const i = this.index
    if (i >= this.count) {
      if (!this.done) this.finish()
      this.positioned = false
      return false
    }
    if (i === 0) {
      const t = this.readSignedVarint()
      this.hi = this.readBits(32)
      this.lo = this.readBits(32)
      this.tFirst = t
      this.tCur = t
    } else {
      let delta: number
      if (i === 1) {
        delta = this.readUnsignedVarint()
      } else {
        delta = this.delta + this.readDod()
      }
      if (!(delta >= 1 && delta <= Number.MAX_SAFE_INTEGER)) throw new ChunkCorrupt(`sample ${i}: timestamp delta ${delta}`)
      const t = this.tCur + delta
      if (!Number.isSafeInteger(t)) throw new ChunkCorrupt(`sample ${i}: timestamp beyond the safe integers`)
      this.readXor()
      this.delta = delta
      this.tCur = t
    }
    this.index = i + 1
    this.positioned = true
    return true
  }

  /**
   * Moves forward to the first sample with timestamp >= `t`, staying on the current sample if it
   * qualifies (never moves back). False when no sample remains.
   */
  seek(t: number): boolean {
    if (this.positioned && this.tCur >= t) return true
    while (this.next()) if (this.tCur >= t) return true
    return false
  }

  /** The remaining samples, as objects. */
  *[Symbol.iterator](): Iterator<Sample> {
    while (this.next()) yield { t: this.tCur, v: fromBits(this.hi, this.lo) }
  }

  /** @internal The state an appender resumes from (after the iterator ran to the end). */
  appenderState() {
    return {
      tFirst: this.tFirst,
      tLast: this.tCur,
      delta: this.delta,
      hi: this.hi,
      lo: this.lo,
      leading: this.leading,
      trailing: this.trailing
    }
  }

  /** After the last sample: only zero padding, less than a byte of it, may remain. */
  private finish(): void {
    const rest = this.endBit - this.pos
    if (rest >= 8) throw new ChunkCorrupt(`${rest >>> 3} bytes after the last sample`)
    if (rest > 0 && this.readBits(rest) !== 0) throw new ChunkCorrupt("non-zero padding")
    this.pos -= rest
    this.done = true
  }

  private readDod(): number {
    if (this.readBit() === 0) return 0
    let size: number
    if (this.readBit() === 0) size = 14
    else if (this.readBit() === 0) size = 17
    else if (this.readBit() === 0) size = 20
    else {
      const high = this.readBits(32) | 0
      const low = this.readBits(32)
      // Exact whenever the result is a safe integer; beyond, rounding cannot bring it back in range.
      const dod = high * two32 + low
      if (!Number.isSafeInteger(dod)) throw new ChunkCorrupt("timestamp delta-of-delta beyond the safe integers")
      return dod
    }
    const raw = this.readBits(size)
    return raw > 1 << (size - 1) ? raw - (1 << size) : raw
  }

  private readXor(): void {
    if (this.readBit() === 0) return
    let leading: number
    let trailing: number
    if (this.readBit() === 0) {
      if (this.leading === noWindow) throw new ChunkCorrupt("value reuses a window before any was set")
      leading = this.leading
      trailing = this.trailing
    } else {
      const header = this.readBits(11)
      leading = header >>> 6
      const size = (header & 63) === 0 ? 64 : header & 63
      trailing = 64 - leading - size
      if (trailing < 0) throw new ChunkCorrupt(`value window of ${leading} leading zeros and ${size} bits`)
      this.leading = leading
      this.trailing = trailing
    }
    const size = 64 - leading - trailing
    let hi = 0
    let lo: number
    if (size > 32) {
      hi = this.readBits(size - 32)
      lo = this.readBits(32)
    } else {
      lo = this.readBits(size)
    }
    if (trailing >= 32) {
      hi = lo << (trailing - 32)
      lo = 0
    } else if (trailing > 0) {
      hi = (hi << trailing) | (lo >>> (32 - trailing))
      lo = lo << trailing
    }
    this.hi = (this.hi ^ hi) >>> 0
    this.lo = (this.lo ^ lo) >>> 0
  }

  private readSignedVarint(): number {
    let value = 0
    let scale = 1
    for (let i = 0; i < 7; i++) {
      const byte = this.readBits(8)
      if ((byte & 0x80) === 0) {
        value += (byte & 0x7f) * scale
        return (byte & 0x40) !== 0 ? value - 128 * scale : value
      }
      value += (byte & 0x7f) * scale
      scale *= 128
    }
    // Eighth byte: bits 49..55, the top one the sign; the result must stay a safe integer.
    const byte = this.readBits(8)
    if ((byte & 0x80) !== 0) throw new ChunkCorrupt("first timestamp: varint longer than 8 bytes")
    const top = (byte & 0x40) !== 0 ? byte - 128 : byte
    // Exact whenever the result is a safe integer; beyond, rounding cannot bring it back in range.
    const t = top * two49 + value
    if (!Number.isSafeInteger(t)) throw new ChunkCorrupt("first timestamp beyond the safe integers")
    return t
  }

  private readUnsignedVarint(): number {
    let value = 0
    let scale = 1
    for (let i = 0; i < 7; i++) {
      const byte = this.readBits(8)
      value += (byte & 0x7f) * scale
      if ((byte & 0x80) === 0) return value
      scale *= 128
    }
    const byte = this.readBits(8)
    if ((byte & 0x80) !== 0) throw new ChunkCorrupt("timestamp delta: varint longer than 8 bytes")
    if (byte > 15) throw new ChunkCorrupt("timestamp delta beyond the safe integers")
    return byte * two49 + value
  }

  private readBit(): number {
    const pos = this.pos
    if (pos >= this.endBit) throw this.truncated()
    this.pos = pos + 1
    return (this.buf[pos >>> 3]! >>> (7 - (pos & 7))) & 1
  }

  /** Reads `count` bits (1 <= count <= 32) as an unsigned integer. */
  private readBits(count: number): number {
    const pos = this.pos
    if (pos + count > this.endBit) throw this.truncated()
    this.pos = pos + count
    return bitsAt(this.buf, this.buf.length, pos, count)
  }

  private truncated(): ChunkCorrupt {
    return new ChunkCorrupt(`truncated at sample ${this.index} of ${this.count}`)
  }
}

// ---------------------------------------------------------------------------------------------------------
// Decoding into columns

/**
 * Reads `count` bits (1..32) of `buf` (`length` bytes long) from bit `pos` as an unsigned integer; the
 * caller checks the bounds.
 */
const bitsAt = (buf: Uint8Array, length: number, pos: number, count: number): number => {
  const i = pos >>> 3
  if (i + 4 < length) {
    // Five bytes hold any 32 bits: the word at the byte, shifted by the bit offset, topped up from the fifth.
    const shift = pos & 7
    const word = (buf[i]! << 24) | (buf[i + 1]! << 16) | (buf[i + 2]! << 8) | buf[i + 3]!
    const bits = shift === 0 ? word : (word << shift) | (buf[i + 4]! >>> (8 - shift))
    return count === 32 ? bits >>> 0 : bits >>> (32 - count)
  }
  return bitsAtEnd(buf, pos, count)
}

/** `bitsAt` near the end of the buffer, byte by byte. */
const bitsAtEnd = (buf: Uint8Array, pos: number, count: number): number => {
  let index = pos >>> 3
  const avail = 8 - (pos & 7)
  let result = buf[index]! & ((1 << avail) - 1)
  if (count <= avail) return result >>> (avail - count)
  count -= avail
  while (count >= 8) {
    result = (result << 8) | buf[++index]!
    count -= 8
  }
  if (count > 0) result = (result << count) | (buf[++index]! >>> (8 - count))
  return result >>> 0
}

/**
 * Decodes the samples of an encoded chunk with timestamps in [mint, maxt] into columns from index `at`:
 * timestamps into `ts`, each value's 64-bit pattern into `bits` (its high half at `2i + hiLane`, its low
 * half at the other lane). Answers the index past the last sample written, or -1 when the chunk is not
 * well formed (nothing is said about what was written then: `ChunkIterator` names the problem). Stops at
 * the first sample after `maxt`. The columns must have room for the chunk's samples.
 *
 * What `ChunkIterator` does, from the third sample on in one function whose state is local variables:
 * the per-sample cost of a query that reads many chunks. The first two (a chunk's varint-coded start)
 * go through the iterator itself.
 */
export const decodeChunkInto = (bytes: Uint8Array, ts: Float64Array, bits: Uint32Array, at: number, mint: number, maxt: number, hiLane: number): number => {
  const length = bytes.length
  if (length < headerBytes) return -1
  const count = (bytes[0]! << 8) | bytes[1]!
  const endBit = length * 8
  const loLane = 1 - hiLane
  let n = at
  // The first two samples (varint-coded, once a chunk) through the iterator; from the third on, here.
  const first = new ChunkIterator(bytes)
  const head = Math.min(2, count)
  for (let i = 0; i < head; i++) {
    try {
      first.next()
    } catch {
      return -1
    }
    const t = first.t
    if (t > maxt) return n
    if (t >= mint) {
      ts[n] = t
      bits[2 * n + hiLane] = first.valueHi
      bits[2 * n + loLane] = first.valueLo
      n++
    }
  }
  let { delta, hi, leading, lo, tLast: t, trailing } = first.appenderState()
  let pos = first.bitPosition
  for (let i = head; i < count; i++) {
    let d: number
    // A delta of deltas: 0, or 14, 17 or 20 bits after a prefix, or 64.
    if (pos >= endBit) return -1
    if (((bytes[pos >>> 3]! >>> (7 - (pos & 7))) & 1) === 0) {
      pos += 1
      d = delta
    } else {
      pos += 1
      let size = 0
      for (const s of dodSizes) {
        if (pos >= endBit) return -1
        const bit = (bytes[pos >>> 3]! >>> (7 - (pos & 7))) & 1
        pos += 1
        if (bit === 0) {
          size = s
          break
        }
      }
      if (size === 0) {
        if (pos + 64 > endBit) return -1
        const dod = (bitsAt(bytes, length, pos, 32) | 0) * two32 + bitsAt(bytes, length, pos + 32, 32)
        pos += 64
        if (!Number.isSafeInteger(dod)) return -1
        d = delta + dod
      } else {
        if (pos + size > endBit) return -1
        const raw = bitsAt(bytes, length, pos, size)
        pos += size
        d = delta + (raw > 1 << (size - 1) ? raw - (1 << size) : raw)
      }
    }
    if (!(d >= 1 && d <= Number.MAX_SAFE_INTEGER)) return -1
    t += d
    // An integer (the first timestamp and every delta are): safe while at most 2^53 - 1.
    if (!(t <= Number.MAX_SAFE_INTEGER)) return -1
    delta = d
    // The value: the same as the last, or its XOR with the last in a window (the last one's or a new one).
    if (pos >= endBit) return -1
    const changed = (bytes[pos >>> 3]! >>> (7 - (pos & 7))) & 1
    pos += 1
    if (changed === 1) {
      if (pos >= endBit) return -1
      const newWindow = (bytes[pos >>> 3]! >>> (7 - (pos & 7))) & 1
      pos += 1
      if (newWindow === 0) {
        if (leading === noWindow) return -1
      } else {
        if (pos + 11 > endBit) return -1
        const header = bitsAt(bytes, length, pos, 11)
        pos += 11
        leading = header >>> 6
        const width = (header & 63) === 0 ? 64 : header & 63
        trailing = 64 - leading - width
        if (trailing < 0) return -1
      }
      const size = 64 - leading - trailing
      if (pos + size > endBit) return -1
      let xhi = 0
      let xlo: number
      if (size > 32) {
        xhi = bitsAt(bytes, length, pos, size - 32)
        xlo = bitsAt(bytes, length, pos + size - 32, 32)
      } else {
        xlo = bitsAt(bytes, length, pos, size)
      }
      pos += size
      if (trailing >= 32) {
        xhi = xlo << (trailing - 32)
        xlo = 0
      } else if (trailing > 0) {
        xhi = (xhi << trailing) | (xlo >>> (32 - trailing))
        xlo = xlo << trailing
      }
      hi = (hi ^ xhi) >>> 0
      lo = (lo ^ xlo) >>> 0
    }
    if (t > maxt) return n
    if (t >= mint) {
      ts[n] = t
      bits[2 * n + hiLane] = hi
      bits[2 * n + loLane] = lo
      n++
    }
  }
  // Past the last sample only zero padding, less than a byte of it.
  const rest = endBit - pos
  if (rest >= 8 || (rest > 0 && bitsAt(bytes, length, pos, rest) !== 0)) return -1
  return n
}

/** The sizes of a delta of deltas after its 1-, 2- and 3-bit prefixes (a 4-bit prefix: 64 bits). */
const dodSizes = [14, 17, 20] as const

// ---------------------------------------------------------------------------------------------------------
// Functional API

/** An empty chunk; `capacityBytes` is its first buffer's size (it grows as needed). */
export const newChunk = (capacityBytes?: number): XorChunk => new XorChunk(capacityBytes)

/**
 * Appends a sample: `timestampMs` a safe integer after the chunk's last timestamp (a plain Error
 * otherwise: out-of-order samples are the caller's business), at most `chunkSamplesMax` samples.
 */
export const append = (chunk: XorChunk, timestampMs: number, value: number): void => chunk.append(timestampMs, value)

/** Appends a sample whose value is given as the `hi` and `lo` uint32 halves of its 64-bit pattern. */
export const appendBits = (chunk: XorChunk, timestampMs: number, hi: number, lo: number): void =>
  chunk.appendBits(timestampMs, hi, lo)

/** The chunk's encoding (a copy): the sample count, then the bit stream. */
export const chunkBytes = (chunk: XorChunk): Uint8Array => chunk.bytes()

/** Resumes appending to an encoded chunk. Throws `ChunkCorrupt` on bad bytes. */
export const openChunk = (bytes: Uint8Array): XorChunk => XorChunk.from(bytes)

/** An iterator over the samples of an encoded chunk (see `ChunkIterator`). */
export const iterateChunk = (bytes: Uint8Array): ChunkIterator => new ChunkIterator(bytes)

/** All samples of an encoded chunk. Throws `ChunkCorrupt` on bad bytes (truncated included). */
export const decodeChunk = (bytes: Uint8Array): Array<Sample> => {
  const it = new ChunkIterator(bytes)
  const out: Array<Sample> = []
  while (it.next()) out.push(it.at())
  return out
}

/** Samples in a chunk, or in an encoded one (its header: not validated further). */
export const chunkSampleCount = (chunk: XorChunk | Uint8Array): number => {
  if (chunk instanceof XorChunk) return chunk.count
  if (chunk.length < headerBytes) throw new ChunkCorrupt(`${chunk.length} bytes, shorter than the header`)
  return (chunk[0]! << 8) | chunk[1]!
}

/** First timestamp of a chunk, `undefined` if empty. Reads only the first sample of an encoded chunk. */
export const chunkMinTime = (chunk: XorChunk | Uint8Array): number | undefined => {
  if (chunk instanceof XorChunk) return chunk.minTime
  const it = new ChunkIterator(chunk)
  return it.next() ? it.t : undefined
}

/** Last timestamp of a chunk, `undefined` if empty. Decodes an encoded chunk whole. */
export const chunkMaxTime = (chunk: XorChunk | Uint8Array): number | undefined => {
  if (chunk instanceof XorChunk) return chunk.maxTime
  const it = new ChunkIterator(chunk)
  let t: number | undefined
  while (it.next()) t = it.t
  return t
}
