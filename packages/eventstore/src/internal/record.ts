/**
 * A record as stored in the Db (all integers big-endian):
 *
 *   timestamp u64 | flags u8 (bit 0: eventTime present) | [eventTime u64] | headerCount u16
 *   | per header: nameLength u16, name, valueLength u16, value | value (the rest)
 */
import type { LogRecord } from "../EventStore.ts"
import { fromUtf8, readU64, writeU64 } from "./keys.ts"

export const encodeRecord = (timestamp: number, eventTime: number | undefined, headers: Readonly<Record<string, string>>, value: Uint8Array) => {
  // Header strings are measured, then written straight into the record: no intermediate buffers.
  const names = Object.keys(headers)
  let headerBytes = 0
  for (const k of names) headerBytes += 4 + Buffer.byteLength(k, "utf8") + Buffer.byteLength(headers[k]!, "utf8")
  const size = 8 + 1 + (eventTime === undefined ? 0 : 8) + 2 + headerBytes + value.length
  const out = Buffer.allocUnsafeSlow(size)
  writeU64(out, 0, timestamp)
  let at = 8
  out[at++] = eventTime === undefined ? 0 : 1
  if (eventTime !== undefined) {
    writeU64(out, at, eventTime)
    at += 8
  }
  out.writeUInt16BE(names.length, at)
  at += 2
  for (const k of names) {
    const kl = out.write(k, at + 2, "utf8")
    out.writeUInt16BE(kl, at)
    at += 2 + kl
    const vl = out.write(headers[k]!, at + 2, "utf8")
    out.writeUInt16BE(vl, at)
    at += 2 + vl
  }
  out.set(value, at)
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
}

export const decodeRecord = (offset: number, bytes: Uint8Array): LogRecord => {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const timestamp = readU64(bytes, 0)
  let at = 8
  const flags = bytes[at++]!
  let eventTime: number | undefined
  if ((flags & 1) !== 0) {
    eventTime = readU64(bytes, at)
    at += 8
  }
  const count = view.getUint16(at)
  at += 2
  const headers: Record<string, string> = {}
  for (let i = 0; i < count; i++) {
    const kl = view.getUint16(at)
    const k = fromUtf8(bytes.subarray(at + 2, at + 2 + kl))
    at += 2 + kl
    const vl = view.getUint16(at)
    headers[k] = fromUtf8(bytes.subarray(at + 2, at + 2 + vl))
    at += 2 + vl
  }
  const value = bytes.slice(at)
  return eventTime === undefined ? { offset, timestamp, headers, value } : { offset, timestamp, eventTime, headers, value }
}

/** Bytes a record counts for (its value and headers), for limits and retention. */
export const recordSize = (value: Uint8Array, headers: Readonly<Record<string, string>>) =>
  value.length + Object.entries(headers).reduce((n, [k, v]) => n + Buffer.byteLength(k, "utf8") + Buffer.byteLength(v, "utf8"), 0)

/** `recordSize` of an encoded record, read from its header lengths (nothing decoded). */
export const encodedRecordSize = (bytes: Uint8Array): number => {
  let at = 8
  const flags = bytes[at++]!
  if ((flags & 1) !== 0) at += 8
  const count = (bytes[at]! << 8) | bytes[at + 1]!
  at += 2
  let headerBytes = 0
  for (let i = 0; i < count; i++) {
    const kl = (bytes[at]! << 8) | bytes[at + 1]!
    at += 2 + kl
    const vl = (bytes[at]! << 8) | bytes[at + 1]!
    at += 2 + vl
    headerBytes += kl + vl
  }
  return bytes.length - at + headerBytes
}
