/**
 * Varints of non-negative safe integers (7 bits a byte, low first) and zigzag for signed ones: what the
 * head log's records and packed chunks write. Each reader checks its own input (its own error).
 */

export const zigzag = (n: number) => (n < 0 ? -2 * n - 1 : 2 * n)
export const unzigzag = (n: number) => (n % 2 === 1 ? -(n + 1) / 2 : n / 2)

/** Writes `n` at `at` (room for up to 8 bytes); answers the position past it. */
export const writeVarint = (out: Uint8Array, at: number, n: number): number => {
  if (n < 0x80) {
    out[at] = n
    return at + 1
  }
  if (n <= 0xffffffff) {
    // Within 32 bits (most differences): shifts instead of divisions.
    while (n >= 0x80) {
      out[at++] = (n & 0x7f) | 0x80
      n >>>= 7
    }
    out[at++] = n
    return at
  }
  while (n >= 0x80) {
    out[at++] = (n % 0x80) | 0x80
    n = Math.floor(n / 0x80)
  }
  out[at++] = n
  return at
}
