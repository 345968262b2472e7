/**
 * Stored float chunks, whichever their encoding: an XOR chunk (RFC 0001: the head's, appended to sample by
 * sample) or a packed chunk (RFC 0005: what a sealed or checkpointed chunk of short decimal values is
 * stored as). Readers go through here, so that they need not know which one they have.
 */
import { ChunkCorrupt, ChunkIterator, chunkSampleCount, decodeChunkInto, hiLane, newChunk, openChunk, type XorChunk } from "./chunk.ts"
import { decodePacked, decodePackedInto, isPacked, packedCount, packSamples } from "./packedChunk.ts"

export interface Sample {
  readonly timestampMs: number
  readonly value: number
}

let ts = new Float64Array(256)
let vs = new Float64Array(256)
let bits = new Uint32Array(vs.buffer)
const room = (n: number) => {
  if (ts.length < n) {
    ts = new Float64Array(n)
    vs = new Float64Array(n)
    bits = new Uint32Array(vs.buffer)
  }
}

/**
 * How a chunk is stored: packed when its values allow (see packedChunk.ts), else the XOR chunk as it is.
 * Throws `ChunkCorrupt` on a malformed XOR chunk.
 */
export const storedChunk = (xor: Uint8Array): Uint8Array => {
  const count = chunkSampleCount(xor)
  if (count === 0) return xor
  room(count)
  const n = decodeChunkInto(xor, ts, bits, 0, -Infinity, Infinity, hiLane)
  if (n !== count) throw new ChunkCorrupt("chunk does not decode")
  return packSamples(ts, vs, n) ?? xor
}

/** Encodes samples (strictly increasing timestamps) into one stored chunk. */
export const encodeSamples = (samples: ReadonlyArray<Sample>): Uint8Array => {
  room(samples.length)
  for (let i = 0; i < samples.length; i++) {
    ts[i] = samples[i]!.timestampMs
    vs[i] = samples[i]!.value
  }
  const packed = packSamples(ts, vs, samples.length)
  if (packed !== undefined) return packed
  const chunk = newChunk()
  for (const s of samples) chunk.append(s.timestampMs, s.value)
  return chunk.bytes()
}

/** Every sample of a stored chunk. Throws `ChunkCorrupt`. */
export const decodeSamples = (bytes: Uint8Array): Array<Sample> => {
  if (isPacked(bytes)) return decodePacked(bytes).map((s) => ({ timestampMs: s.t, value: s.v }))
  const it = new ChunkIterator(bytes)
  const out: Array<Sample> = []
  while (it.next()) out.push({ timestampMs: it.t, value: it.v })
  return out
}

/** Samples in a stored chunk (its header). */
export const storedCount = (bytes: Uint8Array): number => (isPacked(bytes) ? packedCount(bytes) : chunkSampleCount(bytes))

/**
 * The samples in [mint, maxt] of a stored chunk into columns (see `decodeChunkInto`): the index past the
 * last written, or -1 when the chunk is malformed.
 */
export const decodeStoredInto = (bytes: Uint8Array, into: Float64Array, intoBits: Uint32Array, at: number, mint: number, maxt: number, lane: number): number => {
  if (!isPacked(bytes)) return decodeChunkInto(bytes, into, intoBits, at, mint, maxt, lane)
  try {
    return decodePackedInto(bytes, into, intoBits, at, mint, maxt, lane)
  } catch (e) {
    if (e instanceof ChunkCorrupt) return -1
    throw e
  }
}

/** A head chunk to append to, from a stored one (a packed one is appended again, sample by sample). */
export const openStored = (bytes: Uint8Array): XorChunk => {
  if (!isPacked(bytes)) return openChunk(bytes)
  const count = storedCount(bytes)
  room(count)
  const n = decodePackedInto(bytes, ts, bits, 0, -Infinity, Infinity, hiLane)
  const chunk = newChunk(Math.max(64, n * 4))
  for (let i = 0; i < n; i++) chunk.appendBits(ts[i]!, bits[2 * i + hiLane]!, bits[2 * i + 1 - hiLane]!)
  return chunk
}
