/**
 * Db keys of the EventStore. Each starts with a one-byte kind; a log key (UTF-8, no NUL) is followed by
 * a 0 byte where something follows it, so every log's keys form one contiguous, ordered range:
 *
 *   m<key>                  metadata            r<key>\0<offset u64 BE>   a record batch, by its last offset
 *   t<key>\0<ts u64 BE>     time index          p<key>\0<producer id>     producer state
 *   g<group>\0<key>         group offset (u64 BE, then 1 and the metadata's UTF-8 if any)
 *   G<key>\0<group>         the same offset listed under its log (empty value), to list a log's groups
 */
import { Keys } from "@opendata/core"

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export const utf8 = (s: string) => encoder.encode(s)
export const fromUtf8 = (b: Uint8Array) => decoder.decode(b)

const concat = (...parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

const kind = (c: string) => Uint8Array.of(c.charCodeAt(0))
const zero = Uint8Array.of(0)

export const { prefixEnd, readU64, u64, writeU64 } = Keys

/** `tag`, the UTF-8 of `key`, then `tail` zero bytes: one allocation. */
const tagged = (tag: number, key: string, tail: number) => {
  const size = Buffer.byteLength(key, "utf8")
  const out = new Uint8Array(1 + size + tail)
  out[0] = tag
  encoder.encodeInto(key, out.subarray(1, 1 + size))
  return out
}

export const metaKey = (key: string) => tagged(0x6d, key, 0) // "m"
export const isMetaKey = (k: Uint8Array) => k[0] === 0x6d // "m"
export const isProducerKey = (k: Uint8Array) => k[0] === 0x70 // "p"
export const recordPrefix = (key: string) => tagged(0x72, key, 1) // "r" key NUL
/** A record's key: `recordPrefix(key)` then the offset. */
export const recordKey = (key: string, offset: number) => {
  const out = tagged(0x72, key, 9)
  writeU64(out, out.length - 8, offset)
  return out
}
/** The offset of a record key (the last offset of the batch stored under it). */
export const recordKeyOffset = (k: Uint8Array) => readU64(k, k.length - 8)
export const timePrefix = (key: string) => tagged(0x74, key, 1) // "t" key NUL
export const timeKey = (key: string, ts: number) => {
  const out = tagged(0x74, key, 9)
  writeU64(out, out.length - 8, ts)
  return out
}
export const producerPrefix = (key: string) => tagged(0x70, key, 1) // "p" key NUL
export const producerKey = (key: string, producerId: string) => concat(producerPrefix(key), utf8(producerId))
export const groupKey = (group: string, key: string) => concat(kind("g"), utf8(group), zero, utf8(key))
/** A log's groups: `G<key>\0<group>` for each group that committed an offset of the log. */
export const logGroupPrefix = (key: string) => concat(kind("G"), utf8(key), zero)
export const logGroupKey = (key: string, group: string) => concat(logGroupPrefix(key), utf8(group))
/** Every group offset of `group`: the prefix of its keys. */
export const groupPrefix = (group: string) => concat(kind("g"), utf8(group), zero)
/** A group offset's value: the offset, then the metadata's UTF-8 (if any). */
export const groupValue = (offset: number, metadata: string | undefined) => {
  const m = metadata === undefined ? undefined : utf8(metadata)
  const out = new Uint8Array(8 + (m === undefined ? 0 : m.length + 1))
  writeU64(out, 0, offset)
  if (m !== undefined) {
    out[8] = 1 // metadata follows (an empty string is metadata too)
    out.set(m, 9)
  }
  return out
}
export const readGroupValue = (bytes: Uint8Array): { readonly offset: number; readonly metadata: string | undefined } => ({
  offset: readU64(bytes, 0),
  metadata: bytes.length > 8 && bytes[8] === 1 ? fromUtf8(bytes.subarray(9)) : undefined
})

/** Why `key` is not a valid log key (or group name), or undefined. */
export const nameProblem = (name: string, bytesMax: number): string | undefined => {
  if (typeof name !== "string" || name.length === 0) return "must be a non-empty string"
  if (!name.isWellFormed()) return "must be valid UTF-8 (no lone surrogates)"
  if (name.includes("\u0000")) return "must not contain NUL"
  const bytes = Buffer.byteLength(name, "utf8")
  if (bytes > bytesMax) return `must be at most ${bytesMax} bytes of UTF-8, got ${bytes}`
  return undefined
}
