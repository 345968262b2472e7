/**
 * A minimal protobuf wire-format reader and writer: just what the remote-write messages need.
 *
 * The reader never reads past the `end` it is given (every length is checked against the bytes left),
 * never allocates more than the bytes it reads, and throws only `RemoteWriteDecodeError` (or
 * `RemoteWriteLimitError` for a string over its byte limit).
 */
import { Buffer, isUtf8 } from "node:buffer"
import { RemoteWriteDecodeError, RemoteWriteLimitError } from "./errors.ts"

export const WIRE_VARINT = 0
export const WIRE_FIXED64 = 1
export const WIRE_LEN = 2
export const WIRE_START_GROUP = 3
export const WIRE_END_GROUP = 4
export const WIRE_FIXED32 = 5

/** Nesting of (deprecated) groups inside an unknown field that `skip` follows before refusing. */
const groupDepthMax = 32

const TWO_32 = 4294967296
/** 2^53 / 2^32: a 64-bit value whose high word is above this is not a safe integer. */
const SAFE_HI_MAX = 0x1fffff

/**
 * Bytes allowed in a label name: 1 for the first byte (`[a-zA-Z_]`), 2 for the others (`[a-zA-Z0-9_]`).
 */
export const labelNameBytes: Uint8Array = (() => {
  const t = new Uint8Array(256)
  for (let c = 0; c < 256; c++) {
    const alpha = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f
    const digit = c >= 0x30 && c <= 0x39
    t[c] = (alpha ? 1 : 0) | (alpha || digit ? 2 : 0)
  }
  return t
})()

/**
 * A direct-mapped cache of short ASCII strings shared by all decodes: label names and the many repeated
 * values come out as the same string instances, without allocating (bounded: slots × internBytesMax).
 */
const internBytesMax = 64
const internMask = 16383
const internStrings: Array<string> = new Array<string>(internMask + 1).fill("")

export class Reader {
  readonly buf: Uint8Array
  readonly view: DataView
  /** The same bytes as a Buffer, for Node's fast string slicing. */
  readonly text: Buffer
  pos = 0
  /** The last sample read by the v1 decoder's fast path. */
  sampleT = 0
  sampleV = 0
  /** Scratch of `words`: the low and high 32 bits of the last wide varint. */
  private loWord = 0
  private hiWord = 0

  constructor(buf: Uint8Array) {
    this.buf = buf
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
    this.text = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
  }

  fail(field: string, reason: string, at: number = this.pos): never {
    throw new RemoteWriteDecodeError(field, reason, at)
  }

  /** A varint whose value must fit in 32 unsigned bits (tags, lengths, symbol refs). */
  uint32(end: number, field: string): number {
    const buf = this.buf
    let pos = this.pos
    if (pos >= end) this.fail(field, "truncated varint")
    let b = buf[pos++]!
    if (b < 0x80) {
      this.pos = pos
      return b
    }
    let v = b & 0x7f
    for (let shift = 7; shift < 28; shift += 7) {
      if (pos >= end) this.fail(field, "truncated varint")
      b = buf[pos++]!
      v |= (b & 0x7f) << shift
      if (b < 0x80) {
        this.pos = pos
        return v
      }
    }
    if (pos >= end) this.fail(field, "truncated varint")
    b = buf[pos++]!
    if ((b & 0x70) !== 0) this.fail(field, "varint overflows 32 bits", pos - 1)
    v += (b & 0x0f) * 0x10000000
    // Up to 10 bytes are allowed, provided the extra bytes carry only zero bits.
    for (let i = 5; b >= 0x80; i++) {
      if (i === 10) this.fail(field, "varint longer than 10 bytes", pos)
      if (pos >= end) this.fail(field, "truncated varint")
      b = buf[pos++]!
      if ((b & 0x7f) !== 0) this.fail(field, "varint overflows 32 bits", pos - 1)
    }
    this.pos = pos
    return v
  }

  /** The low 32 bits of a varint, as a signed int32 (what protobuf does for int32 and enum fields). */
  int32(end: number, field: string): number {
    const buf = this.buf
    let pos = this.pos
    let v = 0
    for (let i = 0; ; i++) {
      if (i === 10) this.fail(field, "varint longer than 10 bytes", pos)
      if (pos >= end) this.fail(field, "truncated varint")
      const b = buf[pos++]!
      if (i < 5) v |= (b & 0x7f) << (7 * i)
      if (b < 0x80) {
        if (i === 9 && b > 1) this.fail(field, "varint overflows 64 bits", pos - 1)
        break
      }
    }
    this.pos = pos
    return v | 0
  }

  /**
   * A varint of at most 7 bytes (49 bits, where the sum is exact: the common case, millisecond timestamps
   * take 6) as a non-negative number, moving past it; -1 (not moved) when it is longer.
   */
  private short(end: number, field: string): number {
    const buf = this.buf
    let pos = this.pos
    let v = 0
    let mul = 1
    for (let i = 0; i < 7; i++) {
      if (pos >= end) this.fail(field, "truncated varint")
      const b = buf[pos++]!
      v += (b & 0x7f) * mul
      if (b < 0x80) {
        this.pos = pos
        return v
      }
      mul *= 128
    }
    return -1
  }

  /** An int64 varint as a number; refuses one outside the safe integer range (|v| > 2^53 - 1). */
  int64(end: number, field: string): number {
    const v = this.short(end, field)
    return v >= 0 ? v : this.int64Wide(end, field)
  }

  private int64Wide(end: number, field: string): number {
    const start = this.pos
    this.words(end, field)
    const lo = this.loWord
    const hi = this.hiWord
    let v: number
    if ((hi & 0x80000000) !== 0) {
      // Two's complement negative: negate the 64-bit value.
      const nlo = (~lo + 1) >>> 0
      const nhi = (~hi + (nlo === 0 ? 1 : 0)) >>> 0
      if (nhi > SAFE_HI_MAX) this.fail(field, "int64 outside the safe integer range", start)
      v = -(nhi * TWO_32 + nlo)
    } else {
      if (hi > SAFE_HI_MAX) this.fail(field, "int64 outside the safe integer range", start)
      v = hi * TWO_32 + lo
    }
    if (!Number.isSafeInteger(v)) this.fail(field, "int64 outside the safe integer range", start)
    return v
  }

  /** A uint64 varint as a number; refuses one above the safe integer range (> 2^53 - 1). */
  uint64(end: number, field: string): number {
    const v = this.short(end, field)
    if (v >= 0) return v
    const start = this.pos
    this.words(end, field)
    const hi = this.hiWord
    if (hi > SAFE_HI_MAX) this.fail(field, "uint64 outside the safe integer range", start)
    return hi * TWO_32 + this.loWord
  }

  /** A zigzag varint (sint64, and sint32 within its range) as a number; refuses one outside the safe integer range. */
  sint64(end: number, field: string): number {
    const u = this.short(end, field)
    if (u >= 0) return u % 2 === 0 ? u / 2 : -(u + 1) / 2
    const start = this.pos
    this.words(end, field)
    const lo = this.loWord
    const hi = this.hiWord
    // u >>> 1 as 64 bits, then negated (minus one) when the low bit is set.
    const mhi = hi >>> 1
    const mlo = ((lo >>> 1) | (hi << 31)) >>> 0
    if (mhi > SAFE_HI_MAX) this.fail(field, "sint64 outside the safe integer range", start)
    const m = mhi * TWO_32 + mlo
    const v = (lo & 1) === 0 ? m : -(m + 1)
    if (!Number.isSafeInteger(v)) this.fail(field, "sint64 outside the safe integer range", start)
    return v
  }

  /** A sint32 field: the low 32 bits of a varint, zigzag-decoded (as protobuf parsers do). */
  sint32(end: number, field: string): number {
    const n = this.int32(end, field)
    return (n >>> 1) ^ -(n & 1)
  }

  /** The two 32-bit words of the varint at `pos` (into `loWord` / `hiWord`); moves past it. */
  private words(end: number, field: string): void {
    const buf = this.buf
    let pos = this.pos
    let lo = 0
    let hi = 0
    for (let i = 0; ; i++) {
      if (i === 10) this.fail(field, "varint longer than 10 bytes", pos)
      if (pos >= end) this.fail(field, "truncated varint")
      const b = buf[pos++]!
      const bits = b & 0x7f
      if (i < 4) lo |= bits << (7 * i)
      else if (i === 4) {
        lo |= (bits & 0x0f) << 28
        hi |= bits >>> 4
      } else hi |= bits << (7 * i - 32)
      if (b < 0x80) {
        if (i === 9 && b > 1) this.fail(field, "varint overflows 64 bits", pos - 1)
        break
      }
    }
    this.loWord = lo >>> 0
    this.hiWord = hi >>> 0
    this.pos = pos
  }

  skipVarint(end: number, field: string): void {
    const buf = this.buf
    let pos = this.pos
    for (let i = 0; ; i++) {
      if (i === 10) this.fail(field, "varint longer than 10 bytes", pos)
      if (pos >= end) this.fail(field, "truncated varint")
      const b = buf[pos++]!
      if (b < 0x80) {
        if (i === 9 && b > 1) this.fail(field, "varint overflows 64 bits", pos - 1)
        break
      }
    }
    this.pos = pos
  }

  /** A fixed64 double, bits intact (NaN payloads included). */
  double(end: number, field: string): number {
    const pos = this.pos
    if (end - pos < 8) this.fail(field, "truncated fixed64")
    this.pos = pos + 8
    return this.view.getFloat64(pos, true)
  }

  /** Reads a length prefix; returns where the payload (starting at `pos`) ends. */
  len(end: number, field: string): number {
    const n = this.uint32(end, field)
    if (n > end - this.pos) this.fail(field, `length ${n} past the end (${end - this.pos} bytes left)`)
    return this.pos + n
  }

  /** The UTF-8 string in [pos, stop); moves `pos` to `stop`. Short ASCII strings are interned. */
  stringTo(stop: number, field: string): string {
    const buf = this.buf
    const start = this.pos
    this.pos = stop
    if (stop - start <= internBytesMax) {
      let h = 0x811c9dc5
      let i = start
      for (; i < stop; i++) {
        const b = buf[i]!
        if (b >= 0x80) break
        h = Math.imul(h ^ b, 0x01000193)
      }
      if (i === stop) return this.intern(start, stop, h)
    } else {
      let i = start
      while (i < stop && buf[i]! < 0x80) i++
      if (i === stop) return this.text.toString("latin1", start, stop)
    }
    if (!isUtf8(buf.subarray(start, stop))) this.fail(field, "invalid UTF-8", start)
    return this.text.toString("utf8", start, stop)
  }

  /** The ASCII string in [start, stop) with FNV-1a hash `h`, from the intern cache if there. */
  private intern(start: number, stop: number, h: number): string {
    const slot = (h ^ (h >>> 15)) & internMask
    const cached = internStrings[slot]!
    const len = stop - start
    if (cached.length === len) {
      const buf = this.buf
      let k = 0
      while (k < len && cached.charCodeAt(k) === buf[start + k]) k++
      if (k === len) return cached
    }
    const s = len === 0 ? "" : this.text.toString("latin1", start, stop)
    internStrings[slot] = s
    return s
  }

  /** Checks [pos, stop) is UTF-8 without making a string; moves `pos` to `stop`. */
  checkUtf8To(stop: number, field: string): void {
    const buf = this.buf
    const start = this.pos
    let i = start
    while (i < stop && buf[i]! < 0x80) i++
    if (i < stop && !isUtf8(buf.subarray(start, stop))) this.fail(field, "invalid UTF-8", start)
    this.pos = stop
  }

  /** A length-prefixed string of at most `maxBytes` bytes (over that: `RemoteWriteLimitError` named `limit`). */
  string(end: number, field: string, maxBytes: number, limit: string): string {
    const stop = this.len(end, field)
    if (stop - this.pos > maxBytes) {
      throw new RemoteWriteLimitError(limit, maxBytes, `${field} of ${stop - this.pos} bytes`)
    }
    return this.stringTo(stop, field)
  }

  /** A length-prefixed label name: `[a-zA-Z_][a-zA-Z0-9_]*`, at most `maxBytes` bytes. */
  labelName(end: number, field: string, maxBytes: number, limit: string): string {
    const stop = this.len(end, field)
    const start = this.pos
    if (stop - start > maxBytes) {
      throw new RemoteWriteLimitError(limit, maxBytes, `${field} of ${stop - start} bytes`)
    }
    const buf = this.buf
    if (start === stop) this.fail(field, "empty label name", start)
    if ((labelNameBytes[buf[start]!]! & 1) === 0) this.fail(field, "invalid label name", start)
    for (let i = start + 1; i < stop; i++) {
      if ((labelNameBytes[buf[i]!]! & 2) === 0) this.fail(field, "invalid label name", start)
    }
    this.pos = stop
    if (stop - start > internBytesMax) return this.text.toString("latin1", start, stop)
    let h = 0x811c9dc5
    for (let i = start; i < stop; i++) h = Math.imul(h ^ buf[i]!, 0x01000193)
    return this.intern(start, stop, h)
  }

  /**
   * Skips a field of any wire type whose tag was just read. Groups (wire types 3/4, deprecated) are
   * followed to their matching end, nested at most `groupDepthMax` deep.
   */
  skip(wireType: number, fieldNumber: number, end: number, field: string, depth = 0): void {
    switch (wireType) {
      case WIRE_VARINT:
        this.skipVarint(end, field)
        return
      case WIRE_FIXED64:
        if (end - this.pos < 8) this.fail(field, "truncated fixed64")
        this.pos += 8
        return
      case WIRE_LEN:
        this.pos = this.len(end, field)
        return
      case WIRE_FIXED32:
        if (end - this.pos < 4) this.fail(field, "truncated fixed32")
        this.pos += 4
        return
      case WIRE_START_GROUP: {
        if (depth >= groupDepthMax) this.fail(field, "groups nested too deep")
        for (;;) {
          if (this.pos >= end) this.fail(field, "unterminated group")
          const at = this.pos
          const tag = this.uint32(end, field)
          const f = tag >>> 3
          const w = tag & 7
          if (f === 0) this.fail(field, "field number 0", at)
          if (w === WIRE_END_GROUP) {
            if (f !== fieldNumber) this.fail(field, "mismatched end of group", at)
            return
          }
          this.skip(w, f, end, field, depth + 1)
        }
      }
      case WIRE_END_GROUP:
        this.fail(field, "end of group without a start", this.pos)
      default:
        this.fail(field, `invalid wire type ${wireType}`, this.pos)
    }
  }

  /**
   * Handles a tag the caller's switch did not match: a known field (bit `1 << n` of `known`) with the
   * wrong wire type is an error, an unknown field is skipped. `at` is where the tag started.
   */
  other(tag: number, known: number, end: number, field: string, at: number): void {
    const f = tag >>> 3
    const w = tag & 7
    if (f === 0) this.fail(field, "field number 0", at)
    if (f < 31 && (known & (1 << f)) !== 0) this.fail(`${field}.${f}`, `wrong wire type ${w}`, at)
    this.skip(w, f, end, field)
  }

  /** Walks a whole message [pos, stop) checking only that its fields are well formed. */
  walk(stop: number, field: string): void {
    while (this.pos < stop) {
      const at = this.pos
      const tag = this.uint32(stop, field)
      const f = tag >>> 3
      if (f === 0) this.fail(field, "field number 0", at)
      this.skip(tag & 7, f, stop, field)
    }
  }
}

const utf8 = new TextEncoder()

/** A growable protobuf writer (for the encoders used by tests and benchmarks). */
export class Writer {
  buf: Uint8Array
  view: DataView
  pos = 0

  constructor(capacity = 1024) {
    this.buf = new Uint8Array(capacity)
    this.view = new DataView(this.buf.buffer)
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return
    let cap = this.buf.length * 2
    while (cap < this.pos + n) cap *= 2
    const next = new Uint8Array(cap)
    next.set(this.buf.subarray(0, this.pos))
    this.buf = next
    this.view = new DataView(next.buffer)
  }

  byte(b: number): void {
    this.ensure(1)
    this.buf[this.pos++] = b
  }

  raw(bytes: Uint8Array): void {
    this.ensure(bytes.length)
    this.buf.set(bytes, this.pos)
    this.pos += bytes.length
  }

  /** An unsigned varint of a safe non-negative integer. */
  varint(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`varint: not a non-negative safe integer: ${v}`)
    this.ensure(10)
    const buf = this.buf
    while (v >= 0x80) {
      buf[this.pos++] = (v % 0x80) | 0x80
      v = Math.floor(v / 0x80)
    }
    buf[this.pos++] = v
  }

  /** A varint of the 64-bit two's complement of a safe integer (negative values take 10 bytes). */
  int64(v: number): void {
    if (!Number.isSafeInteger(v)) throw new RangeError(`int64: not a safe integer: ${v}`)
    if (v >= 0) {
      this.varint(v)
      return
    }
    const m = -v
    let lo = m >>> 0
    let hi = Math.floor(m / TWO_32) >>> 0
    lo = (~lo + 1) >>> 0
    hi = (~hi + (lo === 0 ? 1 : 0)) >>> 0
    this.ensure(10)
    const buf = this.buf
    for (let i = 0; i < 9; i++) {
      buf[this.pos++] = (lo & 0x7f) | 0x80
      lo = ((lo >>> 7) | (hi << 25)) >>> 0
      hi >>>= 7
    }
    buf[this.pos++] = lo & 0x01
  }

  /** A zigzag varint (sint64, or sint32 for a value in its range) of a safe integer. */
  sint64(v: number): void {
    if (!Number.isSafeInteger(v)) throw new RangeError(`sint64: not a safe integer: ${v}`)
    if (v >= -0x8000000000000 && v < 0x8000000000000) {
      this.varint(v >= 0 ? v * 2 : -v * 2 - 1)
      return
    }
    let z = v >= 0 ? BigInt(v) << 1n : (-BigInt(v) << 1n) - 1n
    this.ensure(10)
    const buf = this.buf
    while (z >= 0x80n) {
      buf[this.pos++] = Number(z & 0x7fn) | 0x80
      z >>= 7n
    }
    buf[this.pos++] = Number(z)
  }

  tag(field: number, wireType: number): void {
    this.varint(field * 8 + wireType)
  }

  double(v: number): void {
    this.ensure(8)
    this.view.setFloat64(this.pos, v, true)
    this.pos += 8
  }

  /** Starts a length-delimited payload; returns a mark for `end`. */
  begin(): number {
    this.ensure(1)
    return this.pos++
  }

  /** Ends the payload started at `mark`, writing its length prefix (moving the payload if it needs more than a byte). */
  end(mark: number): void {
    const n = this.pos - mark - 1
    let size = 1
    for (let v = n; v >= 0x80; v = Math.floor(v / 0x80)) size++
    if (size > 1) {
      this.ensure(size - 1)
      this.buf.copyWithin(mark + size, mark + 1, this.pos)
    }
    let v = n
    let p = mark
    while (v >= 0x80) {
      this.buf[p++] = (v % 0x80) | 0x80
      v = Math.floor(v / 0x80)
    }
    this.buf[p] = v
    this.pos += size - 1
  }

  /** A length-prefixed UTF-8 string (lone surrogates are refused). */
  string(s: string): void {
    if (!s.isWellFormed()) throw new TypeError("string: lone surrogate")
    const mark = this.begin()
    this.ensure(s.length * 3)
    const buf = this.buf
    let p = this.pos
    let i = 0
    for (; i < s.length; i++) {
      const c = s.charCodeAt(i)
      if (c >= 0x80) break
      buf[p++] = c
    }
    if (i < s.length) p += utf8.encodeInto(s.slice(i), buf.subarray(p)).written
    this.pos = p
    this.end(mark)
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.pos)
  }
}
