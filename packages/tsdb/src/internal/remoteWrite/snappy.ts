/**
 * Snappy block format (what remote write uses: `Content-Encoding: snappy`, not the framed format).
 *
 * Decompression is our own, written for hostile input: the uncompressed length in the header is checked
 * against the caller's limit (and against the most the input could possibly expand to) before anything
 * is allocated; every element is bounds-checked against both buffers; the output must come out exactly
 * the announced length. Malformed input throws `RemoteWriteDecodeError` (field `snappy`), an announced
 * length over the limit `RemoteWriteLimitError` (limit `decompressedBytes`). Compression uses `snappyjs`.
 */
import { compress } from "snappyjs"
import { RemoteWriteDecodeError, RemoteWriteLimitError } from "./errors.ts"

/**
 * The largest expansion a snappy element allows: a 3-byte copy (2-byte offset) yields 64 bytes, so no
 * valid stream of n bytes decompresses to more than 22 n.
 */
const expansionMax = 22

const fail = (reason: string, at: number): never => {
  throw new RemoteWriteDecodeError("snappy", reason, at)
}

/** Reads the header: the uncompressed length (a varint below 2^32) and where the elements start. */
const header = (src: Uint8Array): { length: number; start: number } => {
  let length = 0
  for (let i = 0; i < 5; i++) {
    if (i >= src.length) fail("truncated length header", i)
    const b = src[i]!
    if (i === 4 && b > 0x0f) fail("length header overflows 32 bits", i)
    length += (b & 0x7f) * 2 ** (7 * i)
    if (b < 0x80) return { length, start: i + 1 }
  }
  return fail("length header overflows 32 bits", 4)
}

/** The uncompressed length a snappy block announces in its header (throws `RemoteWriteDecodeError` if unreadable). */
export const snappyUncompressedLength = (src: Uint8Array): number => header(src).length

/**
 * Decompresses a snappy block of at most `maxBytes` uncompressed bytes. The limit is checked on the
 * header before allocating. With `reuse`, the bytes go into its start when it is long enough (the result
 * is then a view of it, valid until `reuse` is written again), else into a new array.
 */
export const snappyDecompress = (src: Uint8Array, maxBytes: number, reuse?: Uint8Array): Uint8Array => {
  const { length, start } = header(src)
  if (length > maxBytes) {
    throw new RemoteWriteLimitError("decompressedBytes", maxBytes, `snappy header announces ${length} bytes`)
  }
  const srcLen = src.length
  if (length > (srcLen - start) * expansionMax) {
    fail(`announced length ${length} impossible for ${srcLen - start} compressed bytes`, 0)
  }
  const out = reuse !== undefined && reuse.length >= length ? reuse.subarray(0, length) : new Uint8Array(length)
  if (!decodeFast(src, start, out)) decodeCarefully(src, length, start)
  return out
}

/** Literals longer than this are copied with one bulk copy; shorter ones (and every copy) in a loop. */
const loopCopyMax = 64

/**
 * Decodes the elements into `out`, answering whether the input was well formed. Checks are deferred to the
 * end where that is safe: a typed array ignores writes past its end and reads `undefined` past it (which
 * ends every loop and comparison it reaches), so a malformed stream can only leave the positions wrong, and
 * they are compared at the end. A copy's offset is checked at once (it must point into the output so far).
 */
const decodeFast = (src: Uint8Array, start: number, out: Uint8Array): boolean => {
  const srcLen = src.length
  const length = out.length
  let pos = start
  let op = 0
  while (pos < srcLen) {
    const c = src[pos++]!
    const kind = c & 3
    if (kind === 0) {
      let len = (c >>> 2) + 1
      if (len > 60) {
        const extra = len - 60
        len = src[pos]! + 1
        if (extra > 1) len += src[pos + 1]! * 0x100
        if (extra > 2) len += src[pos + 2]! * 0x10000
        if (extra > 3) len += src[pos + 3]! * 0x1000000
        pos += extra
      }
      if (len > loopCopyMax) {
        if (len > srcLen - pos || len > length - op) return false
        out.set(src.subarray(pos, pos + len), op)
      } else for (let i = 0; i < len; i++) out[op + i] = src[pos + i]!
      pos += len
      op += len
      continue
    }
    let len: number
    let offset: number
    if (kind === 1) {
      len = ((c >>> 2) & 7) + 4
      offset = ((c >>> 5) << 8) | src[pos]!
      pos += 1
    } else if (kind === 2) {
      len = (c >>> 2) + 1
      offset = src[pos]! | (src[pos + 1]! << 8)
      pos += 2
    } else {
      len = (c >>> 2) + 1
      offset = (src[pos]! | (src[pos + 1]! << 8) | (src[pos + 2]! << 16) | (src[pos + 3]! << 24)) >>> 0
      pos += 4
    }
    if (offset === 0 || offset > op) return false
    // At most 64 bytes, and the ranges may overlap (a repeated pattern): a loop, byte by byte.
    const from = op - offset
    for (let i = 0; i < len; i++) out[op + i] = out[from + i]!
    op += len
  }
  return pos === srcLen && op === length
}

/**
 * The decoder with every check in place, element by element: run only when the fast one found the input
 * malformed, to name what is wrong and where.
 */
const decodeCarefully = (src: Uint8Array, length: number, start: number): never => {
  const srcLen = src.length
  const out = new Uint8Array(length)
  let pos = start
  let op = 0
  while (pos < srcLen) {
    const at = pos
    const c = src[pos++]!
    const kind = c & 3
    if (kind === 0) {
      // Literal: length - 1 in the upper 6 bits, or in the next 1-4 bytes (tags 60-63).
      let len = c >>> 2
      if (len < 60) len += 1
      else {
        const extra = len - 59
        if (srcLen - pos < extra) fail("truncated literal length", at)
        len = 0
        for (let i = 0; i < extra; i++) len += src[pos + i]! * 2 ** (8 * i)
        len += 1
        pos += extra
      }
      if (len > srcLen - pos) fail("literal past the end of input", at)
      if (len > length - op) fail("literal past the announced length", at)
      if (len < 16) {
        for (let i = 0; i < len; i++) out[op + i] = src[pos + i]!
      } else out.set(src.subarray(pos, pos + len), op)
      pos += len
      op += len
      continue
    }
    let len: number
    let offset: number
    if (kind === 1) {
      if (pos >= srcLen) fail("truncated copy", at)
      len = ((c >>> 2) & 7) + 4
      offset = ((c >>> 5) << 8) | src[pos]!
      pos += 1
    } else if (kind === 2) {
      if (srcLen - pos < 2) fail("truncated copy", at)
      len = (c >>> 2) + 1
      offset = src[pos]! | (src[pos + 1]! << 8)
      pos += 2
    } else {
      if (srcLen - pos < 4) fail("truncated copy", at)
      len = (c >>> 2) + 1
      offset = (src[pos]! | (src[pos + 1]! << 8) | (src[pos + 2]! << 16) | (src[pos + 3]! << 24)) >>> 0
      pos += 4
    }
    if (offset === 0 || offset > op) fail(`copy offset ${offset} outside the output so far (${op} bytes)`, at)
    if (len > length - op) fail("copy past the announced length", at)
    if (offset >= len && len >= 16) out.copyWithin(op, op - offset, op - offset + len)
    else for (let i = 0; i < len; i++) out[op + i] = out[op - offset + i]!
    op += len
  }
  if (op !== length) fail(`decompressed ${op} bytes, header announced ${length}`, pos)
  return fail("malformed input", pos)
}


/** Compresses to a snappy block (for tests and benchmarks: senders compress, this receiver does not). */
export const snappyCompress = (src: Uint8Array): Uint8Array => {
  // snappyjs returns a Buffer for a Buffer: hand it a plain Uint8Array view so the result is one too.
  const plain = new Uint8Array(src.buffer, src.byteOffset, src.byteLength)
  return compress(plain)
}
