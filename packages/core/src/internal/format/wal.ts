/**
 * The WAL object (RFC 0002): one object per batch of writes, or a fence that claims a WAL slot for a new
 * writer epoch without data.
 *
 *   magic "ODWL" | formatVersion u16 | kind u8 | writerEpoch u64 | walId u64 | entryCount u32 | entries
 *   | crc32c u32 of everything before it
 */
import { ByteReader, ByteWriter, crc32c, FormatError } from "./bytes.ts"
import { type Entry, assertEntry, entryBytes, entryOverheadBytes, readEntry, writeEntry } from "./entry.ts"
import { decoding } from "./errors.ts"

export interface WalObject {
  readonly writerEpoch: number
  readonly walId: number
  readonly kind: "data" | "fence"
  /** In write order (not sorted). A fence has none. */
  readonly entries: ReadonlyArray<Entry>
}

/** "ODWL" */
const walMagic = 0x4f44574c
export const walFormatVersion = 1
/** Magic, version, kind, writer epoch, wal id, entry count. */
const walHeaderBytes = 4 + 2 + 1 + 8 + 8 + 4

/** Encodes `wal`; throws a plain `Error` if it cannot be encoded (a caller bug). */
export const encodeWal = (wal: WalObject): Uint8Array => {
  if (wal.kind !== "data" && wal.kind !== "fence") throw new Error(`wal: unknown kind ${String(wal.kind)}`)
  if (wal.kind === "fence" && wal.entries.length > 0) throw new Error("wal: a fence has no entries")
  if (wal.entries.length > 0xffff_ffff) throw new Error(`wal: ${wal.entries.length} entries do not fit a u32 count`)
  let size = walHeaderBytes + 4
  for (const entry of wal.entries) {
    assertEntry(entry)
    size += entryBytes(entry)
  }
  const w = new ByteWriter(size)
  w.u32(walMagic).u16(walFormatVersion).u8(wal.kind === "data" ? 0 : 1)
  w.u64(wal.writerEpoch).u64(wal.walId).u32(wal.entries.length)
  for (const entry of wal.entries) writeEntry(w, entry)
  w.u32(w.crcSince(0))
  return w.finish()
}

/** Decodes a whole WAL object; throws `CorruptObject` naming `object` if `bytes` are not a valid one. */
export const decodeWal = (object: string, bytes: Uint8Array): WalObject =>
  decoding(object, () => {
    const r = new ByteReader(bytes)
    // Magic and version first, so that a newer format is reported as such rather than as damage.
    const magic = r.u32("magic")
    if (magic !== walMagic) throw new FormatError(`bad magic 0x${magic.toString(16).padStart(8, "0")}, want "ODWL"`)
    const version = r.u16("format version")
    if (version !== walFormatVersion) throw new FormatError(`unknown WAL format version ${version}`)
    if (bytes.length < walHeaderBytes + 4) throw new FormatError(`truncated: ${bytes.length} bytes, a WAL object has at least ${walHeaderBytes + 4}`)
    const end = bytes.length - 4
    const stored = new DataView(bytes.buffer, bytes.byteOffset + end, 4).getUint32(0)
    if (crc32c(bytes.subarray(0, end)) !== stored) throw new FormatError("WAL checksum mismatch")
    const kindCode = r.u8("kind")
    if (kindCode > 1) throw new FormatError(`unknown WAL kind ${kindCode}`)
    const writerEpoch = r.u64("writer epoch")
    const walId = r.u64("wal id")
    const count = r.u32("entry count")
    if (kindCode === 1 && count !== 0) throw new FormatError(`a fence with ${count} entries`)
    // Each entry takes at least entryOverheadBytes: refuse a count the bytes cannot hold before looping.
    if (count > (end - r.offset) / entryOverheadBytes) throw new FormatError(`${count} entries cannot fit in ${end - r.offset} bytes`)
    const body = new ByteReader(bytes.subarray(r.offset, end))
    const entries: Array<Entry> = []
    for (let i = 0; i < count; i++) entries.push(readEntry(body))
    body.end("the last entry")
    return { writerEpoch, walId, kind: kindCode === 0 ? "data" : "fence", entries }
  })
