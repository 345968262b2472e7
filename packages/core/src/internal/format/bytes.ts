/**
 * Byte-level helpers of the on-disk formats (RFC 0002): unsigned lexicographic comparison, CRC-32C, and
 * big-endian writers and readers. Plain `Uint8Array` / `DataView`, no `Buffer`, so the formats run on any
 * JavaScript runtime.
 */

/** Compares two byte strings lexicographically, bytes unsigned; a proper prefix sorts first. */
export const compareBytes = (a: Uint8Array, b: Uint8Array): number => {
  const n = a.length < b.length ? a.length : b.length
  for (let i = 0; i < n; i++) {
    const x = a[i]!
    const y = b[i]!
    if (x !== y) return x < y ? -1 : 1
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1
}

/** Whether two byte strings are equal. */
export const equalBytes = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

// -------------------------------------------------------------------------------------------------
// CRC-32C (Castagnoli): reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF, as in
// iSCSI, ext4 and S3's `x-amz-checksum-crc32c`. Slicing-by-8: eight 256-entry tables let the loop consume
// eight bytes per step, several times faster than the byte-at-a-time table in JavaScript.
// -------------------------------------------------------------------------------------------------

const crcTables: Int32Array = (() => {
  const t = new Int32Array(8 * 256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
    t[n] = c
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n]!
    for (let s = 1; s < 8; s++) {
      c = (c >>> 8) ^ t[c & 0xff]!
      t[s * 256 + n] = c
    }
  }
  return t
})()

/**
 * CRC-32C of `bytes`. `seed` is the CRC of preceding bytes, so `crc32c(b, crc32c(a))` is the CRC of `a`
 * then `b`. The check value: `crc32c("123456789") === 0xE3069283`.
 */
export const crc32c = (bytes: Uint8Array, seed = 0): number => {
  const t = crcTables
  let crc = ~seed
  let i = 0
  const n = bytes.length
  const end8 = n - (n & 7)
  while (i < end8) {
    const lo = crc ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24))
    crc = t[1792 + (lo & 0xff)]! ^ t[1536 + ((lo >>> 8) & 0xff)]! ^ t[1280 + ((lo >>> 16) & 0xff)]! ^
      t[1024 + (lo >>> 24)]! ^ t[768 + bytes[i + 4]!]! ^ t[512 + bytes[i + 5]!]! ^ t[256 + bytes[i + 6]!]! ^
      t[bytes[i + 7]!]!
    i += 8
  }
  while (i < n) crc = (crc >>> 8) ^ t[(crc ^ bytes[i++]!) & 0xff]!
  return ~crc >>> 0
}

// -------------------------------------------------------------------------------------------------
// Big-endian writer and reader
// -------------------------------------------------------------------------------------------------

/**
 * Malformed input met while decoding: an overrun, a bad field. Decoders catch it and answer
 * `CorruptObject` naming the object; it never leaves the format module.
 */
export class FormatError extends Error {
  override readonly name = "FormatError"
}

const two32 = 0x1_0000_0000

/** A caller bug (not bad input): a value that does not fit its field. */
const fieldBug = (field: string, value: number): Error => new Error(`format: ${field} out of range: ${value}`)

/** Appends big-endian fields to a buffer that doubles when full. */
export class ByteWriter {
  private buf: Uint8Array
  private view: DataView
  private pos = 0

  /** `capacity`: the initial size; an exact one means the buffer is never copied. */
  constructor(capacity = 256) {
    this.buf = new Uint8Array(Math.max(16, capacity))
    this.view = new DataView(this.buf.buffer)
  }

  /** Bytes written so far. */
  get length(): number {
    return this.pos
  }

  private ensure(n: number): void {
    const need = this.pos + n
    if (need <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < need) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(0, this.pos))
    this.buf = next
    this.view = new DataView(next.buffer)
  }

  u8(v: number): this {
    if (!(v >= 0 && v <= 0xff && Number.isInteger(v))) throw fieldBug("u8", v)
    this.ensure(1)
    this.buf[this.pos++] = v
    return this
  }

  u16(v: number): this {
    if (!(v >= 0 && v <= 0xffff && Number.isInteger(v))) throw fieldBug("u16", v)
    this.ensure(2)
    this.view.setUint16(this.pos, v)
    this.pos += 2
    return this
  }

  u32(v: number): this {
    if (!(v >= 0 && v <= 0xffff_ffff && Number.isInteger(v))) throw fieldBug("u32", v)
    this.ensure(4)
    this.view.setUint32(this.pos, v)
    this.pos += 4
    return this
  }

  /** A u64 field holding a safe integer (0..2^53-1): JavaScript numbers are exact up to there. */
  u64(v: number): this {
    if (!(v >= 0 && Number.isSafeInteger(v))) throw fieldBug("u64", v)
    this.ensure(8)
    this.view.setUint32(this.pos, Math.floor(v / two32))
    this.view.setUint32(this.pos + 4, v >>> 0)
    this.pos += 8
    return this
  }

  /**
   * An entry's fields (`entry.ts`: kind code u8, seq u64, key length u16, key, value length u32, value)
   * with one check for room and none of the fields' range checks: for callers that checked the entry
   * (`assertEntry`). The hot loop of WAL and table encoding.
   */
  entryFields(code: number, seq: number, key: Uint8Array, value: Uint8Array): void {
    const keyLength = key.length
    const valueLength = value.length
    this.ensure(15 + keyLength + valueLength)
    const buf = this.buf
    const view = this.view
    let pos = this.pos
    buf[pos] = code
    view.setUint32(pos + 1, Math.floor(seq / two32))
    view.setUint32(pos + 5, seq >>> 0)
    view.setUint16(pos + 9, keyLength)
    pos += 11
    // Short ones by hand, as `bytes` does.
    if (keyLength <= 64) for (let i = 0; i < keyLength; i++) buf[pos + i] = key[i]!
    else buf.set(key, pos)
    pos += keyLength
    view.setUint32(pos, valueLength)
    pos += 4
    if (valueLength <= 64) for (let i = 0; i < valueLength; i++) buf[pos + i] = value[i]!
    else buf.set(value, pos)
    this.pos = pos + valueLength
  }

  bytes(b: Uint8Array): this {
    const n = b.length
    this.ensure(n)
    // `set` has a fixed cost that dominates for short keys and values: copy those by hand.
    if (n <= 64) {
      const buf = this.buf
      const pos = this.pos
      for (let i = 0; i < n; i++) buf[pos + i] = b[i]!
    } else {
      this.buf.set(b, this.pos)
    }
    this.pos += n
    return this
  }

  /** Empties the writer to be written again from the start, in the same buffer (what `finish` gave is overwritten). */
  reset(): void {
    this.pos = 0
  }

  /** Overwrites a u32 written earlier (a count known only once its items are written). */
  setU32(at: number, v: number): this {
    if (!(v >= 0 && v <= 0xffff_ffff && Number.isInteger(v))) throw fieldBug("u32", v)
    if (!(at >= 0 && at + 4 <= this.pos)) throw fieldBug("setU32 offset", at)
    this.view.setUint32(at, v)
    return this
  }

  /** CRC-32C of the bytes written from `from` on (to the end so far). */
  crcSince(from: number): number {
    return crc32c(this.buf.subarray(from, this.pos))
  }

  /** The bytes written: a view of the buffer, not a copy. The writer must not be used afterwards. */
  finish(): Uint8Array {
    return this.buf.subarray(0, this.pos)
  }
}

/** Reads big-endian fields from `bytes`, throwing `FormatError` rather than reading past the end. */
export class ByteReader {
  private readonly buf: Uint8Array
  private readonly view: DataView
  private pos = 0

  constructor(bytes: Uint8Array) {
    this.buf = bytes
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  /** Offset of the next byte to read. */
  get offset(): number {
    return this.pos
  }

  /** Bytes left to read. */
  get remaining(): number {
    return this.buf.length - this.pos
  }

  private need(n: number, what: string): void {
    if (n > this.buf.length - this.pos) {
      throw new FormatError(`truncated: ${what} needs ${n} bytes at offset ${this.pos}, ${this.buf.length - this.pos} left`)
    }
  }

  u8(what = "u8"): number {
    this.need(1, what)
    return this.buf[this.pos++]!
  }

  u16(what = "u16"): number {
    this.need(2, what)
    const v = this.view.getUint16(this.pos)
    this.pos += 2
    return v
  }

  u32(what = "u32"): number {
    this.need(4, what)
    const v = this.view.getUint32(this.pos)
    this.pos += 4
    return v
  }

  /** A u64 field; one above 2^53-1 cannot be a value we wrote, so it is malformed. */
  u64(what = "u64"): number {
    this.need(8, what)
    const hi = this.view.getUint32(this.pos)
    const lo = this.view.getUint32(this.pos + 4)
    if (hi > 0x1f_ffff) throw new FormatError(`${what} at offset ${this.pos} exceeds 2^53-1`)
    this.pos += 8
    return hi * two32 + lo
  }

  /** `n` bytes as a view of the input (no copy), after checking they are there. */
  bytes(n: number, what = "bytes"): Uint8Array {
    this.need(n, what)
    const b = this.buf.subarray(this.pos, this.pos + n)
    this.pos += n
    return b
  }

  /** Fails unless every byte was read: trailing bytes mean the structure is not what we think. */
  end(what: string): void {
    if (this.pos !== this.buf.length) throw new FormatError(`${this.buf.length - this.pos} unexpected bytes after ${what}`)
  }
}

/**
 * Splits `bytes` into a body and its trailing CRC-32C, and checks the CRC covers the body. Every checked
 * section of the formats (block, bloom, index, footer, WAL object) ends this way.
 */
export const checkedBody = (bytes: Uint8Array, what: string): Uint8Array => {
  if (bytes.length < 4) throw new FormatError(`truncated: ${what} of ${bytes.length} bytes has no checksum`)
  const end = bytes.length - 4
  const stored = ((bytes[end]! << 24) | (bytes[end + 1]! << 16) | (bytes[end + 2]! << 8) | bytes[end + 3]!) >>> 0
  const body = bytes.subarray(0, end)
  const actual = crc32c(body)
  if (stored !== actual) {
    throw new FormatError(`${what} checksum mismatch: stored ${hex32(stored)}, computed ${hex32(actual)}`)
  }
  return body
}

const hex32 = (v: number): string => `0x${v.toString(16).padStart(8, "0")}`
