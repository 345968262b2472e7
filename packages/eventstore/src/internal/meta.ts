/**
 * A log's metadata object (`m<key>`), written with every append: compact binary, since it is most of what
 * an append of a small record writes. Version 1:
 *
 *   0x01 | flags (1 byte) | varints: firstOffset, nextOffset, bytes, records, createdMs, lastTimestamp,
 *   lastIndexedMs, [lastAppendMs], [maxAgeMs], [maxBytes] | [token: varint length + UTF-8]
 *
 * flags: 1 lastAppendMs, 2 retention (an object, possibly empty), 4 maxAgeMs, 8 maxBytes, 16 token.
 * Varints are LEB128 over non-negative safe integers. Objects written as JSON (`{...}`, before version 1)
 * still read; `lastIndexedMs` is then `lastTimestamp` (every timestamp was indexed).
 */
import { Schema } from "effect"
import { fromUtf8, utf8 } from "./keys.ts"
import { varintBytes, writeVarint } from "./varint.ts"

export interface StoredMeta {
  readonly firstOffset: number
  readonly nextOffset: number
  readonly bytes: number
  readonly records: number
  readonly createdMs: number
  readonly lastAppendMs?: number | undefined
  /** The timestamp of the last record (timestamps never go back within a log). */
  readonly lastTimestamp: number
  /** The timestamp of the last time-index entry (see `timeIndexIntervalMs`). */
  readonly lastIndexedMs: number
  readonly retention?: { readonly maxAgeMs?: number | undefined; readonly maxBytes?: number | undefined } | undefined
  readonly token?: string | undefined
}

const JsonMeta = Schema.Struct({
  firstOffset: Schema.Number,
  nextOffset: Schema.Number,
  bytes: Schema.Number,
  records: Schema.Number,
  createdMs: Schema.Number,
  lastAppendMs: Schema.optional(Schema.Number),
  lastTimestamp: Schema.Number,
  retention: Schema.optional(Schema.Struct({ maxAgeMs: Schema.optional(Schema.Number), maxBytes: Schema.optional(Schema.Number) })),
  token: Schema.optional(Schema.String)
})
const decodeJson = Schema.decodeUnknownSync(JsonMeta)

const version = 0x01
const F_LAST_APPEND = 1
const F_RETENTION = 2
const F_MAX_AGE = 4
const F_MAX_BYTES = 8
const F_TOKEN = 16

export const encodeMeta = (m: StoredMeta): Uint8Array => {
  const r = m.retention
  const fields = [m.firstOffset, m.nextOffset, m.bytes, m.records, m.createdMs, m.lastTimestamp, m.lastIndexedMs]
  let flags = 0
  if (m.lastAppendMs !== undefined) (flags |= F_LAST_APPEND), fields.push(m.lastAppendMs)
  if (r !== undefined) {
    flags |= F_RETENTION
    if (r.maxAgeMs !== undefined) (flags |= F_MAX_AGE), fields.push(r.maxAgeMs)
    if (r.maxBytes !== undefined) (flags |= F_MAX_BYTES), fields.push(r.maxBytes)
  }
  const token = m.token === undefined ? undefined : utf8(m.token)
  if (token !== undefined) (flags |= F_TOKEN), fields.push(token.length)
  let size = 2
  for (const f of fields) size += varintBytes(f)
  const out = new Uint8Array(size + (token?.length ?? 0))
  out[0] = version
  out[1] = flags
  let at = 2
  for (const f of fields) at = writeVarint(out, at, f)
  if (token !== undefined) out.set(token, at)
  return out
}

export const decodeMeta = (bytes: Uint8Array): StoredMeta => {
  if (bytes[0] === 0x7b) {
    const m = decodeJson(JSON.parse(fromUtf8(bytes)))
    return { ...m, lastIndexedMs: m.lastTimestamp }
  }
  if (bytes[0] !== version || bytes.length < 2) throw new Error(`log metadata: unknown encoding ${bytes[0]}`)
  const flags = bytes[1]!
  let at = 2
  const next = () => {
    let n = 0
    let scale = 1
    for (;;) {
      if (at >= bytes.length) throw new Error("log metadata: truncated")
      const b = bytes[at++]!
      n += (b & 0x7f) * scale
      if (b < 0x80) return n
      scale *= 0x80
    }
  }
  const firstOffset = next()
  const nextOffset = next()
  const size = next()
  const records = next()
  const createdMs = next()
  const lastTimestamp = next()
  const lastIndexedMs = next()
  const lastAppendMs = (flags & F_LAST_APPEND) !== 0 ? next() : undefined
  let retention: StoredMeta["retention"]
  if ((flags & F_RETENTION) !== 0) {
    const maxAgeMs = (flags & F_MAX_AGE) !== 0 ? next() : undefined
    const maxBytes = (flags & F_MAX_BYTES) !== 0 ? next() : undefined
    retention = { ...(maxAgeMs === undefined ? {} : { maxAgeMs }), ...(maxBytes === undefined ? {} : { maxBytes }) }
  }
  let token: string | undefined
  if ((flags & F_TOKEN) !== 0) {
    const length = next()
    if (at + length > bytes.length) throw new Error("log metadata: truncated")
    token = fromUtf8(bytes.subarray(at, at + length))
  }
  return {
    firstOffset,
    nextOffset,
    bytes: size,
    records,
    createdMs,
    lastTimestamp,
    lastIndexedMs,
    ...(lastAppendMs === undefined ? {} : { lastAppendMs }),
    ...(retention === undefined ? {} : { retention }),
    ...(token === undefined ? {} : { token })
  }
}
