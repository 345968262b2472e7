/**
 * The bloom filter of a sorted table (RFC 0002): answers "surely absent" for most keys a table does not
 * hold, so a point read skips the table without fetching a block.
 *
 * Encoding: `k u8 | bit array`. Bit `j` is bit `j & 7` (least significant first) of byte `1 + (j >>> 3)`.
 * A key sets bits `(h1 + i * h2) mod m` for `i` in `0..k-1` (double hashing, exact: no 32-bit
 * wrap-around), where `m` is the number of bits and `h1`, `h2` are MurmurHash3 x86_32 of the key with
 * seeds `bloomSeed1` and `bloomSeed2`.
 * Hash, seeds and bit order are part of the format: changing any of them needs a new format version.
 */

const bloomSeed1 = 0
const bloomSeed2 = 0x9e3779b9
/** Fewest bits in a filter, so that a table of one or two keys still filters. */
const bloomBitsMin = 64
/** Most bytes of bit array: bit positions come from 32-bit hashes, so 2^32 bits is all they can reach. */
const bloomBytesMax = 2 ** 29

/** MurmurHash3 x86_32 of `bytes` (Austin Appleby's reference, little-endian blocks). */
export const murmur3 = (bytes: Uint8Array, seed: number): number => {
  const n = bytes.length
  const end4 = n - (n & 3)
  let h = seed | 0
  let i = 0
  for (; i < end4; i += 4) {
    let k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24)
    k = Math.imul(k, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, 0x1b873593)
    h ^= k
    h = (h << 13) | (h >>> 19)
    h = (Math.imul(h, 5) + 0xe6546b64) | 0
  }
  const rest = n & 3
  if (rest > 0) {
    let k = bytes[i]!
    if (rest > 1) k ^= bytes[i + 1]! << 8
    if (rest > 2) k ^= bytes[i + 2]! << 16
    k = Math.imul(k, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, 0x1b873593)
    h ^= k
  }
  h ^= n
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** Hash functions for `bitsPerKey`: round(bitsPerKey * ln 2), the optimum, clamped to 1..30. */
export const bloomHashCount = (bitsPerKey: number): number => Math.min(30, Math.max(1, Math.round(bitsPerKey * Math.LN2)))

/**
 * Builds the encoded filter of `keys`. `count` (the number of keys, or an estimate) sizes the bit array:
 * `max(64, ceil(count * bitsPerKey))` bits, rounded up to whole bytes.
 */
export const buildBloom = (keys: Iterable<Uint8Array>, count: number, bitsPerKey: number): Uint8Array => {
  const hashes = new BloomHashes()
  for (const key of keys) hashes.add(key)
  return hashes.build(count, bitsPerKey)
}

/** The two hashes of each key a filter is to hold, gathered as keys come (8 bytes a key), built at the end. */
export class BloomHashes {
  private h1 = new Uint32Array(64)
  private h2 = new Uint32Array(64)
  /** Keys added. */
  count = 0

  add(key: Uint8Array): void {
    if (this.count === this.h1.length) {
      const h1 = new Uint32Array(this.count * 2)
      h1.set(this.h1)
      const h2 = new Uint32Array(this.count * 2)
      h2.set(this.h2)
      this.h1 = h1
      this.h2 = h2
    }
    this.h1[this.count] = murmur3(key, bloomSeed1)
    this.h2[this.count] = murmur3(key, bloomSeed2)
    this.count += 1
  }

  /** The encoded filter, its bit array sized for `count` keys (see `buildBloom`). */
  build(count: number, bitsPerKey: number): Uint8Array {
    if (!(Number.isSafeInteger(count) && count >= 0)) throw new Error(`bloom: bad key count ${count}`)
    checkBitsPerKey(bitsPerKey)
    const k = bloomHashCount(bitsPerKey)
    const byteCount = Math.min(bloomBytesMax, Math.ceil(Math.max(bloomBitsMin, Math.ceil(count * bitsPerKey)) / 8))
    const m = byteCount * 8
    const out = new Uint8Array(1 + byteCount)
    out[0] = k
    for (let j = 0; j < this.count; j++) {
      // (h1 + i * h2) mod m, stepped without a division per probe.
      let bit = this.h1[j]! % m
      const step = this.h2[j]! % m
      for (let i = 0; i < k; i++) {
        out[1 + (bit >>> 3)]! |= 1 << (bit & 7)
        bit += step
        if (bit >= m) bit -= m
      }
    }
    return out
  }
}

/** Throws unless `bitsPerKey` is a positive finite number. */
export const checkBitsPerKey = (bitsPerKey: number): void => {
  if (!(bitsPerKey > 0 && Number.isFinite(bitsPerKey))) throw new Error(`bloom: bad bits per key ${bitsPerKey}`)
}

/**
 * False when `key` was surely not among the filter's keys; true when it may have been. A malformed filter
 * (no bits, hash count outside 1..30) cannot exclude anything, so it answers true.
 */
export const bloomMayContain = (encoded: Uint8Array, key: Uint8Array): boolean => {
  const k = encoded[0]
  const m = (encoded.length - 1) * 8
  if (k === undefined || k < 1 || k > 30 || m <= 0 || m > bloomBytesMax * 8) return true
  let bit = murmur3(key, bloomSeed1) % m
  const step = murmur3(key, bloomSeed2) % m
  for (let i = 0; i < k; i++) {
    if ((encoded[1 + (bit >>> 3)]! & (1 << (bit & 7))) === 0) return false
    bit += step
    if (bit >= m) bit -= m
  }
  return true
}
