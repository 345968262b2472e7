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
import { entryBytes } from "../format/entry.ts"
import type { DbManifest, SstRef } from "./manifest.ts"
import type { Memtable } from "./memtable.ts"
import { keyString } from "./memtable.ts"
import type { Cursor, KeyValue, MergeOperator } from "./read.ts"
import { cursorFromIterator, mergeCursors, resolveBatch, resolveVersions } from "./read.ts"
import type { ReadError, TableMeta, Tables } from "./tables.ts"
import { makeTables, runCursor } from "./tables.ts"
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
  const blockCache = makeCache<ReadonlyArray<Entry>>({
    capacityBytes: settings.blockCacheBytes,
    sizeOf: (entries) => entries.reduce((n, e) => n + entryBytes(e), 0)
  })
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

  const scan = (range: ScanRange = {}, options?: ReadOptions): Stream.Stream<KeyValue, ReadError, R> =>
    Stream.unwrap(
      Effect.gen(function*() {
        const { s, seq, manifest } = yield* view(options)
        const start = range.start === undefined ? undefined : keyString(range.start)
        const end = range.end === undefined ? undefined : keyString(range.end)
        const cursors: Array<Cursor<ReadError>> = [
          ...[s.active, ...s.frozen].map((t) => cursorFromIterator(t.range(start, end, seq))),
          ...manifest.l0.map((ref) => tables.cursor(ref, range.start, range.end)),
          ...manifest.runs.map((run) => runCursor(tables, run.ssts, range.start, range.end))
        ]
        const cursor = mergeCursors(cursors)
        const cursorState = { pending: undefined as Entry | undefined, done: false }
        return Stream.paginate(undefined, () =>
          Effect.map(resolveBatch(cursor, cursorState, seq, merge, 256), (batch) =>
            [batch, cursorState.done ? Option.none() : Option.some(undefined)] as const))
      })
    )
  return { get, scan }
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
