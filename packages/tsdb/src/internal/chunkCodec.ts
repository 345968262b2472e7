/** Samples to and from XOR chunks (see chunk.ts and rfcs/0001-xor-chunks.md), in the TSDB's sample shape. */
import { append, chunkBytes, decodeChunk, newChunk } from "./chunk.ts"

export interface Sample {
  readonly timestampMs: number
  readonly value: number
}

/** Encodes samples (strictly increasing timestamps) into one chunk. */
export const encodeSamples = (samples: ReadonlyArray<Sample>): Uint8Array => {
  const chunk = newChunk()
  for (const s of samples) append(chunk, s.timestampMs, s.value)
  return chunkBytes(chunk)
}

export const decodeSamples = (bytes: Uint8Array): Array<Sample> => decodeChunk(bytes).map((s) => ({ timestampMs: s.t, value: s.v }))
