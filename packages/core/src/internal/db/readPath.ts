/**
 * The read path over a Db's state, shared by the writer and the read-only follower: a read takes a view
 * (the manifest, the active and frozen memtables, and the seq it reads at, either current or pinned by a
 * snapshot) and looks newest to oldest: memtables, level-0 tables, then the one table of each sorted run
 * whose range holds the key, stopping at the first version that is not a merge operand. A scan merges
 * cursors over all of them in key order. Tables are read through byte-bounded caches (`tableAccess`).
 * The pure parts (resolving versions, cursors, the k-way merge) are in `read.ts`.
 */
import { Effect, Option, Stream } from "effect"
import type { ReadOptions, ResolvedSettings, ScanRange } from "../../Db.ts"
import type { ObjectStoreShape } from "../../ObjectStore.ts"
import { makeCache } from "../cache.ts"
import type { Entry } from "../format/entry.ts"
import { compareBytes } from "../format/bytes.ts"
import { blockMemoryBytes, type SstBlock } from "../format/sst.ts"
import type { DbManifest, SstRef } from "./manifest.ts"
import type { Memtable } from "./memtable.ts"
import { keyString } from "./memtable.ts"
import type { Cursor, KeyValue, MergeOperator } from "./read.ts"
import { cursorFromIterator, mergeCursors, resolveBatch, resolveState, resolveVersions } from "./read.ts"
import type { ReadError, TableMeta, Tables } from "./tables.ts"
import { fromHex, makeTables, runCursor } from "./tables.ts"
import type { Versioned } from "./versionedLog.ts"

/** What readers see: the manifest they read tables through, and the memtables above it. */
export interface ReadState {
  readonly manifest: Versioned<DbManifest>
  readonly active: Memtable
  /** Frozen memtables waiting to be flushed, newest first. */
  readonly frozen: ReadonlyArray<Memtable>
}

/** The state one read sees, and the seq it reads at. */
export interface View {
  readonly s: ReadState
  readonly seq: number
  readonly manifest: DbManifest
}

/** Tables of a Db's store, read through a block cache and a metadata cache of the configured sizes. */
export const tableAccess = (store: ObjectStoreShape, settings: ResolvedSettings) => {
  const blockCache = makeCache<SstBlock>({ capacityBytes: settings.blockCacheBytes, sizeOf: blockMemoryBytes })
  const metaCache = makeCache<TableMeta>({
    capacityBytes: settings.metaCacheBytes,
    sizeOf: (m) => m.bloom.length + m.index.reduce((n, h) => n + 32 + h.firstKey.length + h.lastKey.length, 0)
  })
  return { tables: makeTables(store, { meta: metaCache, blocks: blockCache }), blockCache, metaCache }
}

export const readPath = <R>(tables: Tables, merge: MergeOperator | undefined, view: (options?: ReadOptions) => Effect.Effect<View, never, R>) => {
  const get = (key: Uint8Array, options?: ReadOptions) =>
    Effect.gen(function*() {
      const { s, seq, manifest } = yield* view(options)
      const k = keyString(key)
      const versions: Array<Entry> = []
      // Sources from newest to oldest; stop at the first version that is not a merge operand.
      const settled = () => versions.length > 0 && versions.at(-1)!.kind !== "merge"
      for (const t of [s.active, ...s.frozen]) {
        versions.push(...t.get(k, seq))
        if (settled()) return resolveVersions(key, versions, merge)
      }
      for (const ref of manifest.l0) {
        if (ref.minSeq > seq) continue
        versions.push(...(yield* tables.get(ref, key)).filter((e) => e.seq <= seq))
        if (settled()) return resolveVersions(key, versions, merge)
      }
      for (const run of manifest.runs) {
        const ref = findInRun(run.ssts, key)
        if (ref === undefined || ref.minSeq > seq) continue
        versions.push(...(yield* tables.get(ref, key)).filter((e) => e.seq <= seq))
        if (settled()) return resolveVersions(key, versions, merge)
      }
      return resolveVersions(key, versions, merge)
    })

  /**
   * Several ranges in one read: one view for all of them (what one scan would see), the ranges in the
   * order given, which must be ascending and disjoint (each starts at or after the end of the one before).
   * Cursors are opened for one range at a time, over only the tables whose key range meets it; pages of
   * up to 256 pairs may span ranges. Reading many small ranges (a query's series) this way costs a
   * cursor setup each, not a stream and a view each.
   */
  const scanRanges = (ranges: ReadonlyArray<ScanRange>, options?: ReadOptions): Stream.Stream<KeyValue, ReadError, R> =>
    Stream.unwrap(
      Effect.gen(function*() {
        const { s, seq, manifest } = yield* view(options)
        const memtables = [s.active, ...s.frozen]
        const open = (range: ScanRange) => {
          const start = range.start === undefined ? undefined : keyString(range.start)
          const end = range.end === undefined ? undefined : keyString(range.end)
          const cursors: Array<Cursor<ReadError>> = []
          for (const t of memtables) if (!t.isEmpty) cursors.push(cursorFromIterator(t.range(start, end, seq)))
          for (const ref of manifest.l0) if (overlaps(ref, range.start, range.end)) cursors.push(tables.cursor(ref, range.start, range.end))
          for (const run of manifest.runs) {
            const ssts = tablesInRange(run.ssts, range.start, range.end)
            if (ssts.length > 0) cursors.push(runCursor(tables, ssts, range.start, range.end))
          }
          return { cursor: mergeCursors(cursors), state: resolveState() }
        }
        let next = 0
        let current = ranges.length > 0 ? open(ranges[next++]!) : undefined
        return Stream.paginate(undefined, () =>
          Effect.gen(function*() {
            const out: Array<KeyValue> = []
            while (current !== undefined && out.length < 256) {
              const batch = yield* resolveBatch(current.cursor, current.state, seq, merge, 256 - out.length)
              for (const kv of batch) out.push(kv)
              if (current.state.done) current = next < ranges.length ? open(ranges[next++]!) : undefined
            }
            return [out, current === undefined ? Option.none() : Option.some(undefined)] as const
          }))
      })
    )

  /** One range: `scanRanges` of it. */
  const scan = (range: ScanRange = {}, options?: ReadOptions): Stream.Stream<KeyValue, ReadError, R> => scanRanges([range], options)

  return { get, scan, scanRanges }
}

/** A table's first and last keys as bytes, decoded once per table. */
const boundsCache = new WeakMap<SstRef, { readonly first: Uint8Array; readonly last: Uint8Array }>()
const boundsOf = (ref: SstRef) => {
  let b = boundsCache.get(ref)
  if (b === undefined) {
    b = { first: fromHex(ref.firstKey), last: fromHex(ref.lastKey) }
    boundsCache.set(ref, b)
  }
  return b
}

/** Whether a table may hold keys in [start, end). */
const overlaps = (ref: SstRef, start: Uint8Array | undefined, end: Uint8Array | undefined) => {
  const b = boundsOf(ref)
  return (start === undefined || compareBytes(b.last, start) >= 0) && (end === undefined || compareBytes(b.first, end) < 0)
}

/** The tables of a sorted run (disjoint, in key order) that may hold keys in [start, end): a binary search, then a walk. */
const tablesInRange = (ssts: ReadonlyArray<SstRef>, start: Uint8Array | undefined, end: Uint8Array | undefined): ReadonlyArray<SstRef> => {
  let lo = 0
  let hi = ssts.length
  if (start !== undefined) {
    // The first table whose last key is at or after start.
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (compareBytes(boundsOf(ssts[mid]!).last, start) < 0) lo = mid + 1
      else hi = mid
    }
  }
  const out: Array<SstRef> = []
  for (let i = lo; i < ssts.length; i++) {
    if (end !== undefined && compareBytes(boundsOf(ssts[i]!).first, end) >= 0) break
    out.push(ssts[i]!)
  }
  return out
}

/** The table of a sorted run that may hold `key` (runs hold disjoint, ordered key ranges). */
const findInRun = (ssts: ReadonlyArray<SstRef>, key: Uint8Array): SstRef | undefined => {
  const hex = Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString("hex")
  let lo = 0
  let hi = ssts.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    const t = ssts[mid]!
    if (hex < t.firstKey) hi = mid - 1
    else if (hex > t.lastKey) lo = mid + 1
    else return t
  }
  return undefined
}
