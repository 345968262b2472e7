/**
 * What the TSDB keeps in its Db, read back: each key kind's keys and bytes, the series, and the samples
 * (in sealed chunks, in checkpointed heads, in head log records not checkpointed yet). `opendata inspect`
 * prints it with the store's object bytes, which gives the bytes per sample at rest.
 *
 * It reads every key once, in one scan, holding the totals and the keys of the head log's records (at
 * most a checkpoint's worth), not the data.
 */
import { Effect, Stream } from "effect"
import { Db, Keys, Limits } from "@opendata/core"
import { storedCount } from "./internal/chunkCodec.ts"
import { decodeCheckpointed, decodeRecord } from "./internal/headLog.ts"
import { decodeHistogramChunk } from "./internal/histogramChunk.ts"
import { keyKindNames } from "./internal/keys.ts"
import { TsdbError } from "./SeriesSource.ts"

const { readU64 } = Keys

const unreadable = (e: unknown) => new TsdbError({ kind: "unavailable", message: `inspect: ${e instanceof Error ? e.message : String(e)}` })

/** One kind of key (its tag, the first byte of its keys): how many, and their bytes. */
export interface KeyKind {
  readonly tag: string
  /** What the kind holds (`sealed chunks`, `postings (the series of each bucket)`, ...). */
  readonly name: string
  readonly keys: number
  readonly keyBytes: number
  readonly valueBytes: number
  /**
   * The kind's keys and values as compaction stores them: blocks of about 16 KiB of this kind alone, each
   * as a compacted table holds it (`Db.compactedBlockBytes`). An estimate of the kind's
   * share of the compacted tables (it leaves out their per-entry framing, index and bloom filter).
   */
  readonly compressedBytes: number
}

export interface Inspection {
  /** By bytes, largest first. */
  readonly kinds: ReadonlyArray<KeyKind>
  /** Series in the dictionary (`S` keys). */
  readonly series: number
  /** Float samples in sealed chunks (in-order and out-of-order ones). */
  readonly sealedSamples: number
  /** Float samples in checkpointed heads (head chunk and out-of-order buffer). */
  readonly headSamples: number
  /** Float and histogram samples in head log records after the last checkpoint (replayed into the heads at start). */
  readonly logSamples: number
  /** Native histogram samples in sealed histogram chunks. */
  readonly histogramSamples: number
  /** Keys + values of every kind: the logical bytes, before the Db's encoding and compression. */
  readonly logicalBytes: number
}

interface Totals {
  keys: number
  keyBytes: number
  valueBytes: number
  compressedBytes: number
  /** The kind's block being filled, for `compressedBytes`. */
  block: Uint8Array
  blockAt: number
}

/** The block size of the compressed estimate: what compaction writes with the Db's default settings. */
const estimateBlockBytes = Limits.blockBytesTarget * Limits.compactedBlockScale

const closeBlock = (t: Totals) => {
  if (t.blockAt === 0) return
  t.compressedBytes += Db.compactedBlockBytes(t.block.subarray(0, t.blockAt))
  t.blockAt = 0
}

const addToBlock = (t: Totals, bytes: Uint8Array) => {
  if (t.blockAt + bytes.length > t.block.length) {
    const grown = new Uint8Array(Math.max(t.block.length * 2, t.blockAt + bytes.length))
    grown.set(t.block.subarray(0, t.blockAt))
    t.block = grown
  }
  t.block.set(bytes, t.blockAt)
  t.blockAt += bytes.length
  if (t.blockAt >= estimateBlockBytes) closeBlock(t)
}

/** Every sample counted by an inspection. */
export const samplesOf = (i: Inspection): number => i.sealedSamples + i.headSamples + i.logSamples + i.histogramSamples

/**
 * Reads the TSDB's Db (a writer's or a follower's) and totals it. Fails with an `unavailable` `TsdbError`
 * when the Db cannot be read or a value does not decode.
 */
export const inspect: Effect.Effect<Inspection, TsdbError, Db.Db> = Effect.gen(function*() {
  const db = yield* Db.Db
  const kinds = new Map<string, Totals>()
  const totals = { series: 0, sealedSamples: 0, headSamples: 0, logSamples: 0, histogramSamples: 0 }
  /** Records at or before this one are checkpointed (deleted as the checkpoint lands; any left are not counted). */
  let checkpointed = -1
  const records: Array<Uint8Array> = []
  yield* Stream.runForEach(db.scan(), (kv) =>
    // A value that does not decode (a corrupt chunk, head or record) fails the inspection, naming it.
    Effect.try({ catch: unreadable, try: () => {
      const tag = String.fromCharCode(kv.key[0]!)
      let kind = kinds.get(tag)
      if (kind === undefined) {
        kind = { keys: 0, keyBytes: 0, valueBytes: 0, compressedBytes: 0, block: new Uint8Array(estimateBlockBytes * 2), blockAt: 0 }
        kinds.set(tag, kind)
      }
      kind.keys += 1
      kind.keyBytes += kv.key.length
      kind.valueBytes += kv.value.length
      addToBlock(kind, kv.key)
      addToBlock(kind, kv.value)
      switch (tag) {
        case "S":
          totals.series += 1
          break
        case "c":
          totals.sealedSamples += storedCount(kv.value)
          break
        case "g":
          totals.histogramSamples += decodeHistogramChunk(kv.value).length
          break
        case "H": {
          const head = decodeCheckpointed(kv.value)
          if (head.head !== undefined) totals.headSamples += storedCount(head.head)
          if (head.ooo !== undefined) totals.headSamples += storedCount(head.ooo)
          break
        }
        case "w":
          checkpointed = readU64(kv.value, 0)
          break
        case "W":
          // `W` sorts before `w`: records are counted once the checkpoint is known.
          records.push(kv.key)
          break
      }
    } })).pipe(Effect.mapError(unreadable))
  // The records after the checkpoint, read again one at a time (only their keys were kept).
  for (const key of records) {
    if (readU64(key, 1) <= checkpointed) continue
    const value = yield* Effect.mapError(db.get(key), unreadable)
    if (value === undefined) continue
    const record = yield* Effect.try({ try: () => decodeRecord(value), catch: unreadable })
    totals.logSamples += record.count + (record.histograms?.ids.length ?? 0)
  }
  const list = [...kinds].map(([tag, k]): KeyKind => {
    closeBlock(k)
    return { tag, name: keyKindNames[tag] ?? `unknown kind ${JSON.stringify(tag)}`, keys: k.keys, keyBytes: k.keyBytes, valueBytes: k.valueBytes, compressedBytes: k.compressedBytes }
  })
  list.sort((a, b) => b.keyBytes + b.valueBytes - (a.keyBytes + a.valueBytes))
  return { kinds: list, ...totals, logicalBytes: list.reduce((n, k) => n + k.keyBytes + k.valueBytes, 0) }
})
