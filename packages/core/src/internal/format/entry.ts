/**
 * One versioned key-value record, and its encoding shared by WAL objects and sorted-table blocks
 * (RFC 0002): `kind u8 | seq u64 | keyLength u16 | key | valueLength u32 | value`, big-endian.
 */
import { type ByteReader, type ByteWriter, compareBytes, FormatError } from "./bytes.ts"

export type EntryKind = "put" | "delete" | "merge"

/** A version of a key. `value` is empty for `"delete"`; `seq` is a safe integer >= 0, newer is larger. */
export interface Entry {
  readonly key: Uint8Array
  readonly seq: number
  readonly kind: EntryKind
  readonly value: Uint8Array
}

/** Longest key, in bytes (its length is a u16). */
export const entryKeyBytesMax = 0xffff
/** Longest value, in bytes. */
export const entryValueBytesMax = 2 ** 31
/** Encoded size of an entry with an empty key and value. */
export const entryOverheadBytes = 1 + 8 + 2 + 4

/** Key ascending, then seq descending: the newest version of a key comes first. */
export const compareEntries = (a: Entry, b: Entry): number => {
  const c = compareBytes(a.key, b.key)
  if (c !== 0) return c
  return a.seq === b.seq ? 0 : a.seq > b.seq ? -1 : 1
}

/** Encoded size of `entry`. */
export const entryBytes = (entry: Entry): number => entryOverheadBytes + entry.key.length + entry.value.length

/** An entry kind's code in encodings (`kindOfCode` maps it back). */
export const kindCode = (kind: EntryKind): number => {
  switch (kind) {
    case "put":
      return 0
    case "delete":
      return 1
    case "merge":
      return 2
  }
  throw new Error(`format: unknown entry kind ${String(kind)}`)
}

export const kindOfCode: ReadonlyArray<EntryKind> = ["put", "delete", "merge"]

/** Throws a plain `Error` (a caller bug, not bad input) unless `entry` can be encoded. */
export const assertEntry = (entry: Entry): void => {
  if (entry.key.length > entryKeyBytesMax) throw new Error(`format: key of ${entry.key.length} bytes exceeds ${entryKeyBytesMax}`)
  if (entry.value.length > entryValueBytesMax) {
    throw new Error(`format: value of ${entry.value.length} bytes exceeds ${entryValueBytesMax}`)
  }
  if (!(entry.seq >= 0 && Number.isSafeInteger(entry.seq))) throw new Error(`format: seq ${entry.seq} is not a safe integer >= 0`)
  if (kindCode(entry.kind) === 1 && entry.value.length !== 0) throw new Error("format: a delete entry has a value")
}

/** Appends `entry`; assumes `assertEntry(entry)` passed. */
export const writeEntry = (w: ByteWriter, entry: Entry): void => w.entryFields(kindCode(entry.kind), entry.seq, entry.key, entry.value)

/**
 * Reads one entry. Key and value are views of the reader's input, not copies: they stay valid as long as
 * the input is not modified, and keep it alive.
 */
export const readEntry = (r: ByteReader): Entry => {
  const at = r.offset
  const code = r.u8("entry kind")
  const kind = kindOfCode[code]
  if (kind === undefined) throw new FormatError(`unknown entry kind ${code} at offset ${at}`)
  const seq = r.u64("entry seq")
  const key = r.bytes(r.u16("key length"), "key")
  const valueLength = r.u32("value length")
  if (valueLength > entryValueBytesMax) throw new FormatError(`value length ${valueLength} at offset ${at} exceeds 2^31`)
  if (code === 1 && valueLength !== 0) throw new FormatError(`delete entry at offset ${at} has a value`)
  const value = r.bytes(valueLength, "value")
  return { key, seq, kind, value }
}

/** Where an encoded entry's key length and key are, from its start (after kind u8 and seq u64). */
const keyLengthAt = 9
const keyAt = 11

const u32At = (b: Uint8Array, at: number): number => ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0

/**
 * The entry encoded at `at` in `bytes`, which `readEntry` has already checked there (no checks again);
 * its key and value are views of `bytes`.
 */
export const entryAt = (bytes: Uint8Array, at: number): Entry => {
  const keyLength = (bytes[at + keyLengthAt]! << 8) | bytes[at + keyLengthAt + 1]!
  const keyEnd = at + keyAt + keyLength
  const valueLength = u32At(bytes, keyEnd)
  return {
    key: bytes.subarray(at + keyAt, keyEnd),
    seq: u32At(bytes, at + 1) * 2 ** 32 + u32At(bytes, at + 5),
    kind: kindOfCode[bytes[at]!]!,
    value: bytes.subarray(keyEnd + 4, keyEnd + 4 + valueLength)
  }
}

/** `compareBytes(key of the entry encoded at at, key)`, read in place (the entry checked, as for `entryAt`). */
export const compareKeyAt = (bytes: Uint8Array, at: number, key: Uint8Array): number => {
  const length = (bytes[at + keyLengthAt]! << 8) | bytes[at + keyLengthAt + 1]!
  const from = at + keyAt
  const n = Math.min(length, key.length)
  for (let j = 0; j < n; j++) {
    const d = bytes[from + j]! - key[j]!
    if (d !== 0) return d
  }
  return length - key.length
}
