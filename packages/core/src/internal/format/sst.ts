/**
 * The sorted table (SST) object (RFC 0002): entries sorted by key then newest seq first, in checksummed
 * data blocks, followed by a bloom filter section, a block index section and a fixed-size footer.
 *
 *   block* | bloom (filter, crc32c) | index (blockCount u32, handles, crc32c) | footer (54 bytes)
 *
 * A block is `count u32 | entries | crc32c`, or (format version 2) zstd-compressed (`compressBlock`).
 *
 * A reader fetches the footer (the last `sstFooterBytes` bytes), then the index and bloom by range, then
 * only the blocks a read needs. Each section carries its own checksum so it can be checked alone.
 */
import { constants as zlibConstants, zstdCompressSync, zstdDecompressSync } from "node:zlib"
import { BloomHashes, checkBitsPerKey } from "./bloom.ts"
import { ByteReader, ByteWriter, checkedBody, compareBytes, crc32c, equalBytes, FormatError } from "./bytes.ts"
import { type Entry, assertEntry, compareEntries, compareKeyAt, entryAt, entryBytes, entryOverheadBytes, readEntry, writeEntry } from "./entry.ts"
import { decoding } from "./errors.ts"

export interface SstBuildOptions {
  /** A block is closed once its encoded size (count, entries, checksum) reaches this many bytes. */
  readonly blockBytesTarget: number
  readonly bloomBitsPerKey: number
  /**
   * zstd-compress each block that shrinks by at least an eighth (format version 2). Compaction's outputs
   * are compressed, flushes' are not: as LSM trees compress their lower levels, where data stays.
   */
  readonly compress?: boolean | undefined
}

export interface SstInfo {
  /** Size of the whole object, in bytes. */
  readonly size: number
  readonly entryCount: number
  readonly firstKey: Uint8Array
  readonly lastKey: Uint8Array
  readonly minSeq: number
  readonly maxSeq: number
}

export interface SstFooter {
  readonly formatVersion: number
  readonly indexOffset: number
  readonly indexLength: number
  readonly bloomOffset: number
  readonly bloomLength: number
  readonly entryCount: number
  readonly minSeq: number
  readonly maxSeq: number
}

/** Where a data block is, and the keys it spans (both inclusive). */
export interface BlockHandle {
  readonly offset: number
  readonly length: number
  readonly firstKey: Uint8Array
  readonly lastKey: Uint8Array
}

/** "ODST" */
const sstMagic = 0x4f445354
/** Version 1: every block as it is. Version 2: blocks may be compressed (see `compressBlock`). */
export const sstFormatVersion = 1
export const sstFormatVersionCompressed = 2
/**
 * A compressed block (version 2) starts with four zero bytes, where a plain one has its entry count
 * (never 0): `0 u32 | codec u8 (1: zstd) | plain length u32 | zstd frame of the plain block | crc32c`.
 */
const compressedBlockHeaderBytes = 4 + 1 + 4
const zstdCodec = 1
/** zstd level for blocks: the fastest, as compaction runs beside ingestion on the same cores. */
const blockZstdLevel = 1
/** A plain block decompressed is at most this large (a block holds at least one entry of at most ~4 MiB). */
const plainBlockBytesMax = 64 * 1024 * 1024
/** magic 4, version 2, indexOffset 8, indexLength 4, bloomOffset 8, bloomLength 4, entryCount 4, minSeq 8, maxSeq 8, crc 4. */
export const sstFooterBytes = 4 + 2 + 8 + 4 + 8 + 4 + 4 + 8 + 8 + 4
/** Count and checksum around a block's entries. */
const blockOverheadBytes = 4 + 4
/** A block holds at least one entry. */
const blockBytesMin = blockOverheadBytes + entryOverheadBytes
/** Per index handle: offset, length and the two key lengths. */
const handleOverheadBytes = 8 + 4 + 2 + 2
/** A bloom section holds at least the hash count, one byte of bits and its checksum. */
const bloomSectionBytesMin = 1 + 1 + 4

// -------------------------------------------------------------------------------------------------
// Encoding
// -------------------------------------------------------------------------------------------------

/**
 * Encodes a table of `entries`, which must be non-empty and sorted by `compareEntries` with no two equal
 * (key, seq) pairs; several versions of one key are fine. Throws a plain `Error` otherwise (a caller bug).
 */
export const encodeSst = (
  entries: ReadonlyArray<Entry>,
  options: SstBuildOptions
): { readonly bytes: Uint8Array; readonly info: SstInfo } => {
  const builder = new SstBuilder(options)
  for (const entry of entries) builder.add(entry)
  return builder.finish()
}

/** Entries encoded between two pauses of `encodeSstInSteps`: a few milliseconds of work. */
export const sstEncodeSliceEntries = 16_384

/**
 * `encodeSst` as resumable work, over entries as they come (a memtable's, without holding them): the
 * generator pauses (yields) after every `sliceEntries` entries, so that a caller can give the event loop a
 * turn in between. `sizeHint` as `SstBuilder`'s. Returns what `encodeSst` returns.
 */
export function* encodeSstInSteps(
  entries: Iterable<Entry>,
  options: SstBuildOptions,
  sliceEntries: number = sstEncodeSliceEntries,
  sizeHint?: number
): Generator<void, { readonly bytes: Uint8Array; readonly info: SstInfo }> {
  const builder = new SstBuilder(options, sizeHint)
  let sinceLastPause = 0
  for (const entry of entries) {
    builder.add(entry)
    if (++sinceLastPause === sliceEntries) {
      sinceLastPause = 0
      yield
    }
  }
  return builder.finish()
}

/**
 * A table built entry by entry, in `compareEntries` order, into one buffer: a plain block is written
 * there as its entries come, a compressed one as it closes. So a caller streams entries through it (a
 * memtable's, a compaction's merge) without holding them: what the builder keeps is the table's bytes,
 * the index and two hashes a key for the bloom filter. A block closes once its encoded size reaches
 * `blockBytesTarget`. Throws a plain `Error` on entries out of order or unencodable (a caller bug).
 */
export class SstBuilder {
  private readonly blockBytesTarget: number
  private readonly bloomBitsPerKey: number
  private readonly compress: boolean
  /** The table so far: its closed blocks (checksums included) and, plain, the open one. */
  private readonly out: ByteWriter
  /** Compressed: the open block, plain (compressed when it closes); one buffer for every block. */
  private readonly block: ByteWriter | undefined
  /** Where the open block starts in `out`, or in `block` (its count is written there when it closes). */
  private blockOffset = 0
  private blockEntries = 0
  private blockSize = blockOverheadBytes
  private blockFirst: Uint8Array | undefined
  /** The index's handles, written as blocks close. */
  private readonly handles = new ByteWriter(1024)
  private handleCount = 0
  private readonly bloom = new BloomHashes()
  private prev: Entry | undefined
  private firstKey: Uint8Array | undefined
  private count = 0
  private minSeq = Number.MAX_SAFE_INTEGER
  private maxSeq = 0

  /**
   * `sizeHint`: about how large the table will be (a memtable's bytes): its buffer is set aside at once,
   * and grows (doubling) only past it.
   */
  constructor(options: SstBuildOptions, sizeHint?: number) {
    if (!(options.blockBytesTarget >= 1)) throw new Error(`sst: bad blockBytesTarget ${options.blockBytesTarget}`)
    checkBitsPerKey(options.bloomBitsPerKey)
    this.blockBytesTarget = options.blockBytesTarget
    this.bloomBitsPerKey = options.bloomBitsPerKey
    this.compress = options.compress === true
    this.out = new ByteWriter(Math.max(sizeHint ?? 0, 64 * 1024))
    if (this.compress) this.block = new ByteWriter(Math.min(this.blockBytesTarget, 1 << 20) + 64)
  }

  add(entry: Entry): void {
    assertEntry(entry)
    const prev = this.prev
    if (prev !== undefined) {
      const c = compareEntries(prev, entry)
      if (c >= 0) throw new Error(`sst: entry ${this.count} is ${c === 0 ? "a duplicate (key, seq)" : "out of order"}`)
    }
    if (this.count === 0xffff_ffff) throw new Error("sst: more entries than a u32 count")
    if (prev === undefined || !equalBytes(prev.key, entry.key)) this.bloom.add(entry.key)
    if (entry.seq < this.minSeq) this.minSeq = entry.seq
    if (entry.seq > this.maxSeq) this.maxSeq = entry.seq
    if (this.count === 0) this.firstKey = entry.key.slice()
    if (this.blockEntries === 0) {
      this.blockFirst = entry.key.slice()
      this.block?.reset()
      const w = this.block ?? this.out
      this.blockOffset = w.length
      w.u32(0)
    }
    writeEntry(this.block ?? this.out, entry)
    this.blockEntries += 1
    this.blockSize += entryBytes(entry)
    this.count += 1
    this.prev = entry
    if (this.blockSize >= this.blockBytesTarget) this.closeBlock()
  }

  private closeBlock(): void {
    const out = this.out
    let offset: number
    if (this.block === undefined) {
      offset = this.blockOffset
      out.setU32(offset, this.blockEntries)
      out.u32(out.crcSince(offset))
    } else {
      // Copied (compressed or not) into the table before the block's buffer takes the next block.
      const plain = this.block.setU32(0, this.blockEntries).finish()
      const content = compressBlock(plain) ?? plain
      offset = out.length
      out.bytes(content).u32(crc32c(content))
    }
    const last = this.prev!.key
    const first = this.blockFirst!
    this.handles.u64(offset).u32(out.length - offset).u16(first.length).bytes(first).u16(last.length).bytes(last)
    this.handleCount += 1
    this.blockEntries = 0
    this.blockSize = blockOverheadBytes
    this.blockFirst = undefined
  }

  /** The table's bytes and what it holds. The builder is done with. */
  finish(): { readonly bytes: Uint8Array; readonly info: SstInfo } {
    if (this.count === 0) throw new Error("sst: no entries")
    if (this.blockEntries > 0) this.closeBlock()
    const lastKey = this.prev!.key.slice()
    this.prev = undefined
    const w = this.out
    const bloom = this.bloom.build(this.bloom.count, this.bloomBitsPerKey)
    const bloomOffset = w.length
    w.bytes(bloom).u32(crc32c(bloom))
    const bloomLength = w.length - bloomOffset
    const indexOffset = w.length
    w.u32(this.handleCount).bytes(this.handles.finish())
    w.u32(w.crcSince(indexOffset))
    const indexLength = w.length - indexOffset
    const footerOffset = w.length
    w.u32(sstMagic).u16(this.compress ? sstFormatVersionCompressed : sstFormatVersion).u64(indexOffset).u32(indexLength).u64(bloomOffset).u32(bloomLength)
    w.u32(this.count).u64(this.minSeq).u64(this.maxSeq)
    w.u32(w.crcSince(footerOffset))
    const size = w.length
    return { bytes: w.finish(), info: { size, entryCount: this.count, firstKey: this.firstKey!, lastKey, minSeq: this.minSeq, maxSeq: this.maxSeq } }
  }
}

/**
 * A plain block (`count u32 | entries`, no checksum) compressed, without its checksum: or `undefined` when
 * zstd does not take an eighth off (the block is then written plain).
 */
const compressBlock = (plain: Uint8Array): Uint8Array | undefined => {
  const frame = zstdCompressSync(plain, { params: { [zlibConstants.ZSTD_c_compressionLevel]: blockZstdLevel } })
  if (compressedBlockHeaderBytes + frame.length > plain.length - (plain.length >>> 3)) return undefined
  const out = new Uint8Array(compressedBlockHeaderBytes + frame.length)
  const view = new DataView(out.buffer)
  out[4] = zstdCodec
  view.setUint32(5, plain.length)
  out.set(frame, compressedBlockHeaderBytes)
  return out
}

/** The bytes a compacted table stores a plain block (`count u32 | entries`) in, its checksum left out. */
export const compactedBlockBytes = (plain: Uint8Array): number => compressBlock(plain)?.length ?? plain.length

/** A block's body (checksum checked and removed) as its plain `count u32 | entries`, decompressed if it was. */
const plainBlock = (body: Uint8Array): Uint8Array => {
  if (body.length < 4 || body[0] !== 0 || body[1] !== 0 || body[2] !== 0 || body[3] !== 0) return body
  if (body.length < compressedBlockHeaderBytes) throw new FormatError(`truncated: compressed block of ${body.length} bytes`)
  if (body[4] !== zstdCodec) throw new FormatError(`block compressed with unknown codec ${body[4]}`)
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength)
  const length = view.getUint32(5)
  if (length < 4 + entryOverheadBytes || length > plainBlockBytesMax) throw new FormatError(`compressed block of ${length} plain bytes`)
  let plain: Uint8Array
  try {
    plain = zstdDecompressSync(body.subarray(compressedBlockHeaderBytes), { maxOutputLength: length })
  } catch (e) {
    throw new FormatError(`compressed block does not decompress: ${e instanceof Error ? e.message : String(e)}`)
  }
  if (plain.length !== length) throw new FormatError(`compressed block of ${plain.length} plain bytes, want ${length}`)
  return plain
}

// -------------------------------------------------------------------------------------------------
// Decoding. Each function checks its section's checksum and structure, and throws `CorruptObject`.
// -------------------------------------------------------------------------------------------------

/**
 * Decodes the footer: `footer` is the object's last `sstFooterBytes` bytes (fewer means the object is
 * too short), `size` the whole object's size. Checks that the sections it points at tile the object.
 */
export const decodeSstFooter = (object: string, footer: Uint8Array, size: number): SstFooter =>
  decoding(object, () => {
    if (!(Number.isSafeInteger(size) && size >= sstFooterBytes)) throw new FormatError(`truncated: object of ${size} bytes has no footer`)
    if (footer.length !== sstFooterBytes) throw new FormatError(`truncated: footer of ${footer.length} bytes, want ${sstFooterBytes}`)
    const r = new ByteReader(footer)
    const magic = r.u32("magic")
    if (magic !== sstMagic) throw new FormatError(`bad magic 0x${magic.toString(16).padStart(8, "0")}, want "ODST"`)
    // Version before checksum, so that a newer format is reported as such rather than as damage.
    const formatVersion = r.u16("format version")
    if (formatVersion !== sstFormatVersion && formatVersion !== sstFormatVersionCompressed) throw new FormatError(`unknown SST format version ${formatVersion}`)
    checkedBody(footer, "footer")
    const indexOffset = r.u64("index offset")
    const indexLength = r.u32("index length")
    const bloomOffset = r.u64("bloom offset")
    const bloomLength = r.u32("bloom length")
    const entryCount = r.u32("entry count")
    const minSeq = r.u64("min seq")
    const maxSeq = r.u64("max seq")
    // The sections tile the object: blocks, bloom, index, footer.
    if (indexOffset + indexLength !== size - sstFooterBytes) {
      throw new FormatError(`index [${indexOffset}, +${indexLength}) does not end at the footer (${size - sstFooterBytes})`)
    }
    if (bloomOffset + bloomLength !== indexOffset) throw new FormatError(`bloom [${bloomOffset}, +${bloomLength}) does not end at the index`)
    if (bloomOffset < blockBytesMin) throw new FormatError(`bloom offset ${bloomOffset} leaves no room for a block`)
    if (bloomLength < bloomSectionBytesMin) throw new FormatError(`bloom section of ${bloomLength} bytes`)
    if (indexLength < 4 + handleOverheadBytes + 4) throw new FormatError(`index section of ${indexLength} bytes`)
    if (entryCount < 1) throw new FormatError("no entries")
    if (minSeq > maxSeq) throw new FormatError(`min seq ${minSeq} > max seq ${maxSeq}`)
    return { formatVersion, indexOffset, indexLength, bloomOffset, bloomLength, entryCount, minSeq, maxSeq }
  })

/**
 * Decodes the index section (`[indexOffset, +indexLength)`). Checks that blocks are contiguous from
 * offset 0 and their key spans are ordered. Keys are views of `bytes`.
 */
export const decodeSstIndex = (object: string, bytes: Uint8Array): ReadonlyArray<BlockHandle> =>
  decoding(object, () => {
    const r = new ByteReader(checkedBody(bytes, "index"))
    const count = r.u32("block count")
    if (count < 1) throw new FormatError("index of no blocks")
    if (count > r.remaining / handleOverheadBytes) throw new FormatError(`${count} block handles cannot fit in ${r.remaining} bytes`)
    const handles: Array<BlockHandle> = []
    let expectedOffset = 0
    let prevLast: Uint8Array | undefined
    for (let i = 0; i < count; i++) {
      const offset = r.u64("block offset")
      const length = r.u32("block length")
      const firstKey = r.bytes(r.u16("first key length"), "first key")
      const lastKey = r.bytes(r.u16("last key length"), "last key")
      if (offset !== expectedOffset) throw new FormatError(`block ${i} at ${offset}, want ${expectedOffset}`)
      if (length < blockBytesMin) throw new FormatError(`block ${i} of ${length} bytes`)
      if (compareBytes(firstKey, lastKey) > 0) throw new FormatError(`block ${i} first key after its last key`)
      if (prevLast !== undefined && compareBytes(prevLast, firstKey) > 0) throw new FormatError(`block ${i} starts before block ${i - 1} ends`)
      handles.push({ offset, length, firstKey, lastKey })
      expectedOffset = offset + length
      prevLast = lastKey
    }
    r.end("the last block handle")
    return handles
  })

/** Checks the bloom section (`[bloomOffset, +bloomLength)`) and returns the filter for `bloomMayContain`. */
export const decodeSstBloom = (object: string, bytes: Uint8Array): Uint8Array =>
  decoding(object, () => {
    const bloom = checkedBody(bytes, "bloom")
    if (bloom.length < 2) throw new FormatError(`bloom of ${bloom.length} bytes`)
    const k = bloom[0]!
    if (k < 1 || k > 30) throw new FormatError(`bloom with ${k} hash functions`)
    return bloom
  })

/**
 * A data block as read: the bytes of its entries and where each one starts. Entries are built when a
 * reader reaches them (`blockEntry`), so a block held in the cache costs its bytes and four bytes an
 * entry, not an object and two views an entry (which a cache full of small entries paid several times
 * over, in heap the collector walks).
 */
export interface SstBlock {
  /** The block without its checksum: `count u32 | entry*` (`entry.ts`). */
  readonly body: Uint8Array
  /** Offset of each entry in `body`, in order. */
  readonly starts: Uint32Array
}

/** Entries in the block. */
export const blockEntryCount = (block: SstBlock): number => block.starts.length

/** Entry `i` of the block; its key and value are views of the block's bytes. */
export const blockEntry = (block: SstBlock, i: number): Entry => entryAt(block.body, block.starts[i]!)

/** `compareBytes(key of entry i, key)`, read in place. */
export const blockCompareKey = (block: SstBlock, i: number, key: Uint8Array): number => compareKeyAt(block.body, block.starts[i]!, key)

/** Every entry of the block, built (tools and tests; readers go entry by entry). */
export const blockEntries = (block: SstBlock): Array<Entry> => {
  const out: Array<Entry> = []
  for (let i = 0; i < block.starts.length; i++) out.push(blockEntry(block, i))
  return out
}

/** Bytes a block holds in memory: its bytes, its offsets and the two objects around them. */
export const blockMemoryBytes = (block: SstBlock): number => block.body.byteLength + block.starts.byteLength + 256

/**
 * Checks one data block (`[handle.offset, +handle.length)`) and finds its entries: checksum, every
 * entry's fields within the block, and key order (readers binary-search blocks: an out-of-order entry
 * would silently hide keys, so it is refused). The block keeps `bytes` (no copy).
 */
export const decodeSstBlock = (object: string, bytes: Uint8Array): SstBlock =>
  decoding(object, () => {
    const body = plainBlock(checkedBody(bytes, "block"))
    const r = new ByteReader(body)
    const count = r.u32("entry count")
    if (count < 1) throw new FormatError("block of no entries")
    if (count > r.remaining / entryOverheadBytes) throw new FormatError(`${count} entries cannot fit in ${r.remaining} bytes`)
    const starts = new Uint32Array(count)
    let prev: Entry | undefined
    for (let i = 0; i < count; i++) {
      starts[i] = r.offset
      const entry = readEntry(r)
      if (prev !== undefined && compareEntries(prev, entry) >= 0) throw new FormatError(`block entry ${i} out of order`)
      prev = entry
    }
    r.end("the last entry")
    return { body, starts }
  })

// -------------------------------------------------------------------------------------------------
// Block selection
// -------------------------------------------------------------------------------------------------

/**
 * The blocks that may hold keys in `[start, end)` (`undefined`: unbounded), in order. A block qualifies
 * when `lastKey >= start` and `firstKey < end`; both key columns are non-decreasing across the index
 * (versions of one key may span blocks, so neighbours can share a key), so the qualifying blocks are one
 * run found by two binary searches.
 */
export const findBlocks = (
  index: ReadonlyArray<BlockHandle>,
  start: Uint8Array | undefined,
  end: Uint8Array | undefined
): ReadonlyArray<BlockHandle> => {
  if (start !== undefined && end !== undefined && compareBytes(start, end) >= 0) return []
  const from = start === undefined ? 0 : firstIndex(index, (h) => compareBytes(h.lastKey, start) >= 0)
  const to = end === undefined ? index.length : firstIndex(index, (h) => compareBytes(h.firstKey, end) >= 0)
  return from < to ? index.slice(from, to) : []
}

/** The first index at which `pred` holds, `pred` being false then true along the array (or length). */
const firstIndex = (index: ReadonlyArray<BlockHandle>, pred: (h: BlockHandle) => boolean): number => {
  let lo = 0
  let hi = index.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (pred(index[mid]!)) hi = mid
    else lo = mid + 1
  }
  return lo
}
