/**
 * Records as stored in the Db. An append's records to one log are ONE Db entry, a record batch, under the
 * key of its LAST offset (`r<key>\0<last offset>`): a read from offset `o` scans from the key of `o`, and
 * the first entry it meets is the batch holding `o`. One entry per append, not per record, is what keeps
 * the memtable, the WAL and the tables' per-entry costs off a batch of records.
 *
 *   batch:  0x80 | timestamp u64 | count varint | per record: size varint, body (size bytes)
 *   body:   flags u8 (bit 0: eventTime present) | [eventTime u64] | headerCount u16
 *           | per header: nameLength u16, name, valueLength u16, value | value (the rest of the body)
 *
 * Every record of a batch has the batch's timestamp (an append's records are stamped together). The batch's
 * first offset is its last offset - count + 1. Integers are big-endian; varints are unsigned LEB128.
 *
 * An entry written before batches is one record, `timestamp u64 | body` (its first byte is the top byte of
 * a millisecond timestamp, 0 until the year 10889, never 0x80), under its own offset: read as a batch of one.
 */
import type { LogRecord, RecordInput } from "../EventStore.ts"
import { fromUtf8, readU64, writeU64 } from "./keys.ts"
import { varintBytes, writeVarint } from "./varint.ts"

const batchTag = 0x80

/** Bytes of a record's body. */
const bodySize = (r: RecordInput) => {
  let size = 1 + (r.eventTime === undefined ? 0 : 8) + 2 + r.value.length
  const headers = r.headers
  if (headers !== undefined) for (const k in headers) size += 4 + Buffer.byteLength(k, "utf8") + Buffer.byteLength(headers[k]!, "utf8")
  return size
}

/** Writes a record's body at `at`; returns where it ends. */
const writeBody = (out: Buffer, at: number, r: RecordInput): number => {
  out[at++] = r.eventTime === undefined ? 0 : 1
  if (r.eventTime !== undefined) {
    writeU64(out, at, r.eventTime)
    at += 8
  }
  const headers = r.headers
  const countAt = at
  let count = 0
  at += 2
  if (headers !== undefined) {
    for (const k in headers) {
      const kl = out.write(k, at + 2, "utf8")
      out.writeUInt16BE(kl, at)
      at += 2 + kl
      const vl = out.write(headers[k]!, at + 2, "utf8")
      out.writeUInt16BE(vl, at)
      at += 2 + vl
      count += 1
    }
  }
  out.writeUInt16BE(count, countAt)
  out.set(r.value, at)
  return at + r.value.length
}

/** Records [`start`, `end`) of `records` as one stored batch, written into one buffer. */
const encodeBatch = (timestamp: number, records: ReadonlyArray<RecordInput>, sizes: ReadonlyArray<number>, start: number, end: number): Uint8Array => {
  let total = 1 + 8 + varintBytes(end - start)
  for (let i = start; i < end; i++) total += varintBytes(sizes[i]!) + sizes[i]!
  // From Node's shared pool (a view into an 8 KiB slab) for small batches: no buffer of its own per append.
  const out = Buffer.allocUnsafe(total)
  out[0] = batchTag
  writeU64(out, 1, timestamp)
  let at = writeVarint(out, 9, end - start)
  for (let i = start; i < end; i++) {
    at = writeVarint(out, at, sizes[i]!)
    at = writeBody(out, at, records[i]!)
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
}

/**
 * An append's records (offsets from `first` on) as stored batches: one, unless they hold more than
 * `batchBytesMax` bytes, then split there. `put` gets each batch with its last offset.
 */
export const encodeBatches = (
  timestamp: number,
  first: number,
  records: ReadonlyArray<RecordInput>,
  batchBytesMax: number,
  put: (lastOffset: number, value: Uint8Array) => void
): void => {
  const sizes = new Array<number>(records.length)
  let start = 0
  let bytes = 0
  for (let i = 0; i < records.length; i++) {
    const size = bodySize(records[i]!)
    sizes[i] = size
    if (i > start && bytes + size > batchBytesMax) {
      put(first + i - 1, encodeBatch(timestamp, records, sizes, start, i))
      start = i
      bytes = 0
    }
    bytes += size
  }
  put(first + records.length - 1, encodeBatch(timestamp, records, sizes, start, records.length))
}

/** One record in the old single-record form (`timestamp u64 | body`), as entries were written before batches. */
export const encodeRecord = (timestamp: number, eventTime: number | undefined, headers: Readonly<Record<string, string>>, value: Uint8Array) => {
  const r: RecordInput = { value, headers, eventTime }
  const out = Buffer.allocUnsafeSlow(8 + bodySize(r))
  writeU64(out, 0, timestamp)
  writeBody(out, 8, r)
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
}

/** Thrown for a stored value that is not a record batch (storage corrupted). */
export class CorruptRecord extends Error {}

/**
 * The walk over a stored entry's records: `first` offset, shared `timestamp`, and for the record at `offset`,
 * its body at [`at`, `end`) of `bytes`. Made by `openBatch`, moved by `next`.
 */
export interface BatchCursor {
  readonly bytes: Uint8Array
  readonly timestamp: number
  readonly first: number
  readonly count: number
  /** One record of the old form: its body is the rest of the entry. */
  readonly single: boolean
  /** The current record's offset (first - 1 before the first `next`). */
  offset: number
  at: number
  end: number
}

const readVarint = (c: BatchCursor): number => {
  let n = 0
  let scale = 1
  for (;;) {
    if (c.end >= c.bytes.length) throw new CorruptRecord("record batch ends inside a varint")
    const byte = c.bytes[c.end++]!
    n += (byte & 0x7f) * scale
    if (byte < 0x80) return n
    scale *= 128
  }
}

/** A cursor over the entry stored under `lastOffset` (a batch, or one record of the old form). */
export const openBatch = (lastOffset: number, bytes: Uint8Array): BatchCursor => {
  if (bytes.length < 9) throw new CorruptRecord(`record entry of ${bytes.length} bytes`)
  if (bytes[0] !== batchTag) {
    return { bytes, timestamp: readU64(bytes, 0), first: lastOffset, count: 1, single: true, offset: lastOffset - 1, at: 8, end: 8 }
  }
  const c: BatchCursor = { bytes, timestamp: readU64(bytes, 1), first: 0, count: 0, single: false, offset: 0, at: 9, end: 9 }
  const count = readVarint(c)
  if (count === 0 || count > lastOffset + 1) throw new CorruptRecord(`record batch of ${count} records under offset ${lastOffset}`)
  return { ...c, first: lastOffset - count + 1, count, offset: lastOffset - count, at: c.end }
}

/** Moves to the next record: false past the last one. */
export const nextRecord = (c: BatchCursor): boolean => {
  if (c.offset - c.first + 1 >= c.count) return false
  if (c.single) {
    c.offset += 1
    c.at = 8
    c.end = c.bytes.length
    return true
  }
  const size = readVarint(c)
  c.at = c.end
  c.end = c.at + size
  if (c.end > c.bytes.length) throw new CorruptRecord("record batch ends inside a record")
  c.offset += 1
  return true
}

/** The current record of `c`, decoded. */
export const decodeAt = (c: BatchCursor): LogRecord => {
  const bytes = c.bytes
  let at = c.at
  const flags = bytes[at++]!
  let eventTime: number | undefined
  if ((flags & 1) !== 0) {
    eventTime = readU64(bytes, at)
    at += 8
  }
  const count = (bytes[at]! << 8) | bytes[at + 1]!
  at += 2
  const headers: Record<string, string> = {}
  for (let i = 0; i < count; i++) {
    const kl = (bytes[at]! << 8) | bytes[at + 1]!
    const k = fromUtf8(bytes.subarray(at + 2, at + 2 + kl))
    at += 2 + kl
    const vl = (bytes[at]! << 8) | bytes[at + 1]!
    headers[k] = fromUtf8(bytes.subarray(at + 2, at + 2 + vl))
    at += 2 + vl
  }
  const value = bytes.slice(at, c.end)
  const offset = c.offset
  const timestamp = c.timestamp
  return eventTime === undefined ? { offset, timestamp, headers, value } : { offset, timestamp, eventTime, headers, value }
}

/** `recordSize` of the current record of `c`, read from its header lengths (nothing decoded). */
export const sizeAt = (c: BatchCursor): number => {
  const bytes = c.bytes
  let at = c.at
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
  return c.end - at + headerBytes
}

/** Bytes a record counts for (its value and headers), for limits and retention. */
export const recordSize = (value: Uint8Array, headers: Readonly<Record<string, string>>) =>
  value.length + Object.entries(headers).reduce((n, [k, v]) => n + Buffer.byteLength(k, "utf8") + Buffer.byteLength(v, "utf8"), 0)
