/** Unsigned LEB128 varints of safe integers (7 bits a byte, low bits first), as the stored formats write them. */

/** Bytes `writeVarint` takes for `n`. */
export const varintBytes = (n: number) => {
  let size = 1
  while (n >= 0x80) {
    n = Math.floor(n / 0x80)
    size += 1
  }
  return size
}

/** Writes `n` at `at`; returns where it ends. */
export const writeVarint = (out: Uint8Array, at: number, n: number) => {
  while (n >= 0x80) {
    out[at++] = (n % 0x80) | 0x80
    n = Math.floor(n / 0x80)
  }
  out[at++] = n
  return at
}
