/**
 * The TSDB's keys and values in the Db: how each is built and read back.
 *
 * Key layout in the Db (`tsdb/` path; integers big-endian):
 *   h<hash u64><id u64>                       -> (empty)    the dictionary (older versions: the labels)
 *   S<id u64>                                 -> labels     id -> labels
 *   n                                         -> u64        next series id
 *   j<bucket u32><id u64>                     -> (empty)    the series of a time bucket: its postings, with
 *                                                          their labels (`S`), read into memory
 *   i<bucket u32><name>\0<value>\0<id u64>    -> (empty)    postings as older versions stored them, a key
 *                                                          per label (read, never written)
 *   c<bucket u32><id u64><minT u64>           -> chunk      sealed chunks
 *   H<id u64>                                 -> head       checkpointed head and out-of-order buffer
 *   W<record u64>                             -> record     the head log: one request's samples
 *   w                                         -> u64        the last record checkpointed
 *   O<id u64>                                 -> chunk      out-of-order buffer (older versions; read only)
 *   m<metric>                                 -> JSON       metric metadata
 *   b<bucket u32>                             -> (empty)    the buckets that hold data
 *   g<bucket u32><id u64><minT u64>           -> chunk      sealed native histogram chunks
 *   G<bucket u32>                             -> (empty)    the buckets with native histograms (only
 *                                                          their `g` chunks are read)
 *   s<bucket u32><id u64><t u64>              -> u64        start timestamps (with `startTimestamps`): the
 *                                                          start of the series' samples from t on, to its
 *                                                          next key in the bucket
 *   L                                         -> u64        the first bucket from which every chunk lies in
 *                                                          the bucket its key names (this layout's writers
 *                                                          cut chunks at bucket starts; older ones did not,
 *                                                          so a read also looks one bucket back before it):
 *                                                          past the last bucket with data when a writer of
 *                                                          this layout first wrote (0 in a new store)
 */
import { Keys } from "@opendata/core"
import * as Limits from "../limits.ts"
import type { Labels } from "./labels.ts"

const { writeU64 } = Keys

/** What each kind of key holds, by its tag (the key's first byte). */
export const keyKindNames: Readonly<Record<string, string>> = {
  h: "dictionary (hash, id; older versions: with the labels)",
  S: "series (id -> labels)",
  n: "next id",
  j: "postings (the series of each bucket)",
  i: "postings (older layout, a key per label)",
  c: "sealed chunks",
  g: "sealed histogram chunks",
  G: "buckets with histograms",
  s: "start timestamps",
  W: "head log records",
  w: "last checkpointed record",
  H: "head chunks",
  O: "out-of-order buffers (older layout)",
  m: "metadata",
  b: "bucket list",
  e: "exemplars",
  L: "chunk layout marker"
}

export const encoder = new TextEncoder()
export const decoder = new TextDecoder()
/** A one-byte tag and a u64: the keys written for every series on every write. */
export const taggedU64 = (tag: string, n: number) => {
  const b = new Uint8Array(9)
  b[0] = tag.charCodeAt(0)
  writeU64(b, 1, n)
  return b
}
const writeU32 = (b: Uint8Array, at: number, n: number) => {
  b[at] = n >>> 24
  b[at + 1] = (n >>> 16) & 0xff
  b[at + 2] = (n >>> 8) & 0xff
  b[at + 3] = n & 0xff
}
export const u32 = (n: number) => {
  const b = new Uint8Array(4)
  writeU32(b, 0, n)
  return b
}
export const readU32 = (b: Uint8Array, at: number) => ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0

// Keys of a tag and fixed-width integers, built in place (the write path builds them per chunk and series).
const c = (tag: string) => tag.charCodeAt(0)
/** tag, bucket u32, then an id u64 and a time u64 when given */
const tagBucket = (tag: number, bucket: number, id?: number, t?: number) => {
  const b = new Uint8Array(id === undefined ? 5 : t === undefined ? 13 : 21)
  b[0] = tag
  writeU32(b, 1, bucket)
  if (id !== undefined) writeU64(b, 5, id)
  if (t !== undefined) writeU64(b, 13, t)
  return b
}
/** tag, two u64s */
const tagTwoU64 = (tag: number, x: number, y: number) => {
  const b = new Uint8Array(17)
  b[0] = tag
  writeU64(b, 1, x)
  writeU64(b, 9, y)
  return b
}
export const cat = (...parts: ReadonlyArray<Uint8Array | string>) => {
  const bytes = parts.map((p) => (typeof p === "string" ? encoder.encode(p) : p))
  const out = new Uint8Array(bytes.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of bytes) {
    out.set(p, at)
    at += p.length
  }
  return out
}
export const zero = Uint8Array.of(0)
export const noBytes = new Uint8Array(0)
export const { prefixEnd } = Keys

export const dictPrefix = (hash: number) => taggedU64("h", hash)
export const dictKey = (hash: number, id: number) => tagTwoU64(c("h"), hash, id)
export const seriesKey = (id: number) => taggedU64("S", id)
export const nextIdKey = encoder.encode("n")
/** The key saying a series has samples in a bucket (its postings there follow from its labels). */
export const bucketSeriesKey = (bucket: number, id: number) => tagBucket(c("j"), bucket, id)
export const bucketSeriesPrefix = (bucket: number) => tagBucket(c("j"), bucket)
/** Postings as older versions stored them, a key per label (read, never written). */
export const postingPrefix = (bucket: number, name?: string, value?: string) =>
  name === undefined ? cat("i", u32(bucket)) : value === undefined ? cat("i", u32(bucket), name, zero) : cat("i", u32(bucket), name, zero, value, zero)
export const chunkPrefix = (bucket: number, id?: number) => tagBucket(c("c"), bucket, id)
export const chunkKey = (bucket: number, id: number, minT: number) => tagBucket(c("c"), bucket, id, minT)
export const histogramChunkPrefix = (bucket: number, id?: number) => tagBucket(c("g"), bucket, id)
export const histogramChunkKey = (bucket: number, id: number, minT: number) => tagBucket(c("g"), bucket, id, minT)
export const startPrefix = (bucket: number, id?: number) => tagBucket(c("s"), bucket, id)
export const startKey = (bucket: number, id: number, t: number) => tagBucket(c("s"), bucket, id, t)
export const headKey = (id: number) => taggedU64("H", id)
/** Out-of-order buffers as older versions stored them apart (now part of the `H` value): read, never written. */
export const oooKey = (id: number) => taggedU64("O", id)
export const recordKey = (n: number) => taggedU64("W", n)
export const recordsEnd = encoder.encode("X")
export const checkpointKey = encoder.encode("w")
export const layoutKey = encoder.encode("L")
export const metaKey = (metric: string) => cat("m", metric)
export const bucketKey = (bucket: number) => tagBucket(c("b"), bucket)
export const histogramBucketKey = (bucket: number) => tagBucket(c("G"), bucket)
export const exemplarKey = (id: number, t: number) => tagTwoU64(c("e"), id, t)
export const exemplarsStart = encoder.encode("e")

export const encodeLabels = (labels: Labels) => encoder.encode(JSON.stringify(labels))
export const decodeLabels = (bytes: Uint8Array): Labels => JSON.parse(decoder.decode(bytes)) as Labels

export const bucketOf = (t: number) => Math.floor(t / Limits.bucketMs)
