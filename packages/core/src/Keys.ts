/**
 * Big-endian integers for Db keys: byte order is numeric order, so keys that end in one sort by it; and
 * the end of a key prefix's range, for scans. Shared by the products' key layouts.
 */

/** Writes a non-negative safe integer as 8 big-endian bytes at `at` (two 32-bit halves: no BigInt). */
export const writeU64 = (b: Uint8Array, at: number, n: number): void => {
  const hi = Math.floor(n / 0x1_0000_0000)
  const lo = n >>> 0
  b[at] = hi >>> 24
  b[at + 1] = (hi >>> 16) & 0xff
  b[at + 2] = (hi >>> 8) & 0xff
  b[at + 3] = hi & 0xff
  b[at + 4] = lo >>> 24
  b[at + 5] = (lo >>> 16) & 0xff
  b[at + 6] = (lo >>> 8) & 0xff
  b[at + 7] = lo & 0xff
}

/** A non-negative safe integer as 8 big-endian bytes. */
export const u64 = (n: number): Uint8Array => {
  const b = new Uint8Array(8)
  writeU64(b, 0, n)
  return b
}

/** The integer `writeU64` wrote at `at`. */
export const readU64 = (b: Uint8Array, at: number): number =>
  // Byte by byte: a DataView per read would cost more than the read (keys are read by the thousand).
  (((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0) * 0x1_0000_0000 +
  (((b[at + 4]! << 24) | (b[at + 5]! << 16) | (b[at + 6]! << 8) | b[at + 7]!) >>> 0)

/** The first key after every key that starts with `prefix` (for scans); undefined when there is none. */
export const prefixEnd = (prefix: Uint8Array): Uint8Array | undefined => {
  const end = prefix.slice()
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1
      return end.subarray(0, i + 1)
    }
  }
  return undefined
}
