/**
 * Db: a durable, fenced, snapshot-isolated key-value store on an `ObjectStore` (an LSM tree, as in
 * SlateDB). See rfcs/0003-db.md for the protocol and packages/core/README.md for the paths in steps.
 *
 * Write path: `write` assigns sequence numbers and offers the batch to the writer actor's bounded
 * mailbox (suspending when it is full, or when unflushed bytes pass their bound). The writer groups what
 * is waiting into one WAL object, creates it with put-if-absent in the next WAL slot, and only then
 * applies the batch to the memtable, advances the durable watermark, publishes the change feed and
 * acknowledges. A full memtable is frozen and flushed by the flusher actor into a level-0 table, committed
 * by a new manifest version; the compactor merges level-0 tables into sorted runs; the collector deletes
 * what no manifest references any more.
 *
 * Fencing: opening a writer bumps the writer epoch in the manifest and creates a fence object in the next
 * free WAL slot. A previous writer's next WAL object finds its slot taken, and its next manifest commit
 * finds a higher epoch: both fail with `Fenced`, and nothing it wrote after the fence is ever read.
 *
 * This module is the public face: types, errors, settings, the `Db` and `Compactor` services and their
 * constructors. Each role is implemented in `internal/db/`, as SlateDB splits db.rs, compactor.rs and
 * garbage_collector.rs: `writer.ts` (the writer Db and its actors), `open.ts` (taking over as the writer:
 * epoch, WAL replay, fence), `follower.ts` (the read-only follower), `compactorProcess.ts` (the compactor
 * role in its own process), `maintenance.ts` (compaction and garbage collection, one implementation for
 * the writer and the compactor role), `readPath.ts` (get and scan over memtables and tables), `tools.ts`
 * (`inspect`, `verify`); below them the manifest store, memtable, tables, compaction plans and GC pass.
 */
import { Context, Effect, Layer, Scope, Stream } from "effect"
import * as Limits from "./limits.ts"
import { ObjectStore } from "./ObjectStore.ts"
import type { CacheStats } from "./internal/cache.ts"
import type { Entry } from "./internal/format/entry.ts"
import { CorruptObject } from "./internal/format/errors.ts"
import * as Sst from "./internal/format/sst.ts"
import * as CompactorProcess from "./internal/db/compactorProcess.ts"
import { DbClosed, InvalidWrite, ReadOnly } from "./internal/db/errors.ts"
import * as Follower from "./internal/db/follower.ts"
import { Fenced } from "./internal/db/manifestStore.ts"
import type { KeyValue, MergeOperator } from "./internal/db/read.ts"
import * as Tools from "./internal/db/tools.ts"
import * as Writer from "./internal/db/writer.ts"
import { OutcomeUnknown, Unavailable } from "./internal/objectStore/model.ts"

export { CorruptObject, DbClosed, Fenced, InvalidWrite, ReadOnly }
export type { CacheStats, KeyValue, MergeOperator }

// -------------------------------------------------------------------------------------------------
// Public types
// -------------------------------------------------------------------------------------------------

export type WriteOp =
  | { readonly _tag: "put"; readonly key: Uint8Array; readonly value: Uint8Array }
  | { readonly _tag: "delete"; readonly key: Uint8Array }
  | { readonly _tag: "merge"; readonly key: Uint8Array; readonly value: Uint8Array }

export interface WriteOptions {
  /** Wait until the write is durable (the default). With `false`, return once it is queued. */
  readonly awaitDurable?: boolean | undefined
  /**
   * The batch's keys and values are handed to the Db: the caller never changes them afterwards, so the Db
   * keeps them as they are instead of copying them (for writers that build fresh buffers per write).
   */
  readonly handOver?: boolean | undefined
}

export interface WriteResult {
  /** Sequence number of the batch's last operation; every operation of a batch gets its own. */
  readonly seq: number
  /** Completes when the write is durable (at once if it was awaited). */
  readonly durable: Effect.Effect<void, DbError>
}

/** A consistent view: reads through it see exactly the writes with seq <= `seq`. */
export interface Snapshot {
  readonly seq: number
  readonly manifestVersion: number
}

export interface ReadOptions {
  readonly snapshot?: Snapshot | undefined
}

export interface ScanRange {
  /** Inclusive. */
  readonly start?: Uint8Array | undefined
  /** Exclusive. */
  readonly end?: Uint8Array | undefined
}

/** One durable batch, as the change feed delivers it. Seqs of consecutive batches are contiguous. */
export interface DurableBatch {
  readonly firstSeq: number
  readonly lastSeq: number
  readonly entries: ReadonlyArray<Entry>
}

export type DbError = Fenced | Unavailable | CorruptObject | DbClosed | ReadOnly
export type DbReadError = Unavailable | CorruptObject

export interface DbSettings {
  /** Keys of this Db's objects start with it (e.g. `tsdb/`), so several Dbs can share one store. */
  readonly path?: string | undefined
  readonly flushIntervalMs?: number | undefined
  readonly walBatchBytesMax?: number | undefined
  readonly memtableBytesMax?: number | undefined
  readonly unflushedBytesMax?: number | undefined
  readonly l0CompactionTrigger?: number | undefined
  readonly l0Max?: number | undefined
  readonly sortedRunsMax?: number | undefined
  readonly blockBytesTarget?: number | undefined
  readonly sstBytesTarget?: number | undefined
  readonly bloomBitsPerKey?: number | undefined
  readonly blockCacheBytes?: number | undefined
  readonly metaCacheBytes?: number | undefined
  readonly gcIntervalMs?: number | undefined
  readonly gcMinAgeMs?: number | undefined
  /**
   * Run the compactor in this process (default true). Without it, a compactor process (`layerCompactor`)
   * does the job, and this writer adopts its manifest versions every `manifestPollMs`.
   */
  readonly compactor?: boolean | undefined
  /** Run garbage collection in this process (default true; a compactor process collects otherwise). */
  readonly gc?: boolean | undefined
  /** How often a writer without its own compactor, a follower or a compactor process reads the latest manifest. */
  readonly manifestPollMs?: number | undefined
  readonly merge?: MergeOperator | undefined
  /**
   * Simulation only: swaps in a deliberately broken variant so the simulator can show that its checker
   * catches it. Never set it otherwise. See `SimulationMutant`.
   */
  readonly simulationMutant?: SimulationMutant | "none" | undefined
}

/**
 * Deliberately broken variants, one per protocol rule, each caught by the simulator:
 * - `skip-fencing`: a fenced writer skips past the fence and carries on;
 * - `unrecorded-fences`: an opener records only its own fence, not those of earlier openers it replayed;
 * - `flush-not-idempotent`: a retried flush writes a new table and commits it again;
 * - `forget-ambiguous-put`: a retried put-if-absent that finds its own earlier object takes it for another's;
 * - `gc-lease-from-creation`: the GC lease counts from an object's creation, by the local clock;
 * - `head-pointer-trusted`: the latest manifest is read forward from the head pointer alone, as if the
 *   pointer only ever moved forward (a write that lands late moves it back to a collected version).
 */
export type SimulationMutant =
  | "skip-fencing"
  | "unrecorded-fences"
  | "flush-not-idempotent"
  | "forget-ambiguous-put"
  | "gc-lease-from-creation"
  | "head-pointer-trusted"

export type ResolvedSettings = { readonly [K in keyof Omit<DbSettings, "merge">]-?: NonNullable<DbSettings[K]> } & {
  readonly merge: MergeOperator | undefined
}

export const resolveSettings = (s: DbSettings): ResolvedSettings => {
  const r = resolveSettingsUnchecked(s)
  if (r.memtableBytesMax > r.unflushedBytesMax) throw new Error("Db settings: memtableBytesMax must be <= unflushedBytesMax")
  if (r.l0CompactionTrigger >= r.l0Max) throw new Error("Db settings: l0CompactionTrigger must be < l0Max")
  if (r.walBatchBytesMax > Limits.objectPutBytesMax) throw new Error("Db settings: walBatchBytesMax must be <= objectPutBytesMax")
  return r
}

const resolveSettingsUnchecked = (s: DbSettings): ResolvedSettings => ({
  path: s.path ?? "",
  flushIntervalMs: s.flushIntervalMs ?? Limits.flushIntervalMsDefault,
  walBatchBytesMax: s.walBatchBytesMax ?? Limits.walBatchBytesMax,
  memtableBytesMax: s.memtableBytesMax ?? Limits.memtableBytesMax,
  unflushedBytesMax: s.unflushedBytesMax ?? Limits.unflushedBytesMax,
  l0CompactionTrigger: s.l0CompactionTrigger ?? Limits.l0CompactionTrigger,
  l0Max: s.l0Max ?? Limits.l0Max,
  sortedRunsMax: s.sortedRunsMax ?? Limits.sortedRunsMax,
  blockBytesTarget: s.blockBytesTarget ?? Limits.blockBytesTarget,
  sstBytesTarget: s.sstBytesTarget ?? Limits.sstBytesTarget,
  bloomBitsPerKey: s.bloomBitsPerKey ?? Limits.bloomBitsPerKey,
  blockCacheBytes: s.blockCacheBytes ?? Limits.blockCacheBytes,
  metaCacheBytes: s.metaCacheBytes ?? Limits.metaCacheBytes,
  gcIntervalMs: s.gcIntervalMs ?? Limits.gcIntervalMs,
  gcMinAgeMs: s.gcMinAgeMs ?? Limits.gcMinAgeMs,
  compactor: s.compactor ?? true,
  gc: s.gc ?? true,
  manifestPollMs: s.manifestPollMs ?? Limits.manifestPollMs,
  merge: s.merge,
  simulationMutant: s.simulationMutant ?? "none"
})

export interface DbStats {
  readonly durableSeq: number
  readonly manifestVersion: number
  readonly writerEpoch: number
  readonly walObjectsWritten: number
  readonly walBytesWritten: number
  readonly l0Tables: number
  readonly sortedRuns: number
  /** The epoch of the compactor the manifest names (0: none has run). */
  readonly compactorEpoch: number
  /** Tables the manifest references (level 0 and sorted runs), their bytes and entries. */
  readonly tables: number
  readonly tableBytes: number
  readonly tableEntries: number
  readonly tablesWritten: number
  readonly compactions: number
  readonly objectsCollected: number
  readonly blockCache: CacheStats
  readonly metaCache: CacheStats
  /** Writes waiting in the writer's mailbox (bounded by `writeQueueMax`). */
  readonly writeQueueDepth: number
  /** Bytes in memtables not yet flushed to tables (the active one and the frozen ones). */
  readonly memtableBytes: number
  /** Frozen memtables waiting for the flusher. */
  readonly frozenMemtables: number
  /** How long WAL writes took, from the first attempt to the object being durable. */
  readonly walWriteMs: LatencyHistogram
}

/** Counts of observations at or below each bound (the last count: above every bound), with their sum. */
export interface LatencyHistogram {
  readonly boundsMs: ReadonlyArray<number>
  readonly counts: ReadonlyArray<number>
  readonly sumMs: number
  readonly count: number
}

export interface DbShape {
  readonly put: (key: Uint8Array, value: Uint8Array, options?: WriteOptions) => Effect.Effect<WriteResult, DbError | InvalidWrite>
  readonly delete: (key: Uint8Array, options?: WriteOptions) => Effect.Effect<WriteResult, DbError | InvalidWrite>
  readonly merge: (key: Uint8Array, operand: Uint8Array, options?: WriteOptions) => Effect.Effect<WriteResult, DbError | InvalidWrite>
  /** Writes a batch atomically: after a crash, all of it or none of it is there. */
  readonly write: (batch: ReadonlyArray<WriteOp>, options?: WriteOptions) => Effect.Effect<WriteResult, DbError | InvalidWrite>
  readonly get: (key: Uint8Array, options?: ReadOptions) => Effect.Effect<Uint8Array | undefined, DbReadError>
  /** Key-value pairs with keys in [start, end), in key order. */
  readonly scan: (range?: ScanRange, options?: ReadOptions) => Stream.Stream<KeyValue, DbReadError>
  /**
   * The pairs of several ranges, ascending and disjoint (each starts at or after the end of the one
   * before), in one read that sees one state of the Db: as the scans of each range one after the other,
   * at the cost of a cursor per range rather than a stream per range.
   */
  readonly scanRanges: (ranges: ReadonlyArray<ScanRange>, options?: ReadOptions) => Stream.Stream<KeyValue, DbReadError>
  /** Pins the current durable state until the scope closes (compaction and GC keep what it needs). */
  readonly snapshot: Effect.Effect<Snapshot, never, Scope.Scope>
  /** Highest sequence number that is durable: every write up to it survives a crash. */
  readonly durableSeq: Effect.Effect<number>
  readonly awaitDurable: (seq: number) => Effect.Effect<void, DbError>
  /** Durable batches from now on. A subscriber that lags `changeFeedBatchesMax` batches sees a gap in seqs. */
  readonly changes: Stream.Stream<DurableBatch>
  /**
   * Subscribes to the change feed now (not when a stream starts): returns the effect that takes the next
   * durable batch. Lives as long as the scope. Same gap rule as `changes`.
   */
  readonly subscribe: Effect.Effect<Effect.Effect<DurableBatch>, never, Scope.Scope>
  /** Writes the memtable to a level-0 table now (normally done when it is full, and on close). */
  readonly flush: Effect.Effect<void, DbError>
  /** Runs one compaction step now if one is due; true if it did. */
  readonly compact: Effect.Effect<boolean, DbError>
  /** Runs one garbage-collection pass now; returns the number of objects deleted. */
  readonly collectGarbage: Effect.Effect<number, DbError>
  readonly stats: Effect.Effect<DbStats>
}

export class Db extends Context.Service<Db, DbShape>()("@opendata/core/Db") {}

// -------------------------------------------------------------------------------------------------
// The writer
// -------------------------------------------------------------------------------------------------

/** Opens the Db on the `ObjectStore`: takes over as the writer, replays the WAL, starts the actors. */
export const make = (settings: DbSettings = {}): Effect.Effect<DbShape, DbError, ObjectStore | Scope.Scope> =>
  Effect.suspend(() => Writer.make(resolveSettings(settings)))

/** The Db as a Layer over the `ObjectStore` in context. */
export const layer = (settings: DbSettings = {}): Layer.Layer<Db, DbError, ObjectStore> => Layer.effect(Db, make(settings))

// -------------------------------------------------------------------------------------------------
// The read-only follower
// -------------------------------------------------------------------------------------------------

export interface FollowerSettings {
  readonly path?: string | undefined
  /** How often to look for new WAL objects and manifest versions. */
  readonly pollIntervalMs?: number | undefined
  readonly blockCacheBytes?: number | undefined
  readonly metaCacheBytes?: number | undefined
  readonly merge?: MergeOperator | undefined
}

/**
 * Opens the Db at `path` read-only, from any process, with the whole `Db` interface, so that a product
 * runs on it unchanged in a reader process. It reads the latest manifest, replays the WAL after it, then
 * follows new WAL objects and manifest versions every `pollIntervalMs`; it writes nothing and fences
 * nobody. Reads, snapshots and the change feed follow the writer a poll interval behind; `awaitDurable`
 * waits until the follower has caught up; writes fail with `ReadOnly`. Snapshots pin state in this process
 * only: the collector (in the writer or compactor process) keeps what they read for its lease
 * (`gcMinAgeMs`, 10 minutes by default).
 */
export const makeFollower = (input: FollowerSettings = {}): Effect.Effect<DbShape, DbReadError, ObjectStore | Scope.Scope> =>
  Effect.suspend(() =>
    Follower.openFollower(
      resolveSettings({ path: input.path, blockCacheBytes: input.blockCacheBytes, metaCacheBytes: input.metaCacheBytes, merge: input.merge }),
      input.pollIntervalMs ?? Limits.manifestPollMs
    )
  )

/** The read-only follower as the `Db` service (see `makeFollower`). */
export const layerFollower = (settings: FollowerSettings = {}): Layer.Layer<Db, DbReadError, ObjectStore> =>
  Layer.effect(Db, makeFollower(settings))

/** @deprecated Use `makeFollower`, which replaced `DbReader` (the simulation's reader check still calls this name). */
export const makeReader = makeFollower

// -------------------------------------------------------------------------------------------------
// Compactor: compaction and garbage collection in a process of their own
// -------------------------------------------------------------------------------------------------

export interface CompactorStats {
  readonly compactorEpoch: number
  readonly manifestVersion: number
  readonly l0Tables: number
  readonly sortedRuns: number
  readonly compactions: number
  readonly tablesWritten: number
  readonly objectsCollected: number
}

export interface CompactorShape {
  /** Runs one compaction step now if one is due; true if it did. */
  readonly compact: Effect.Effect<boolean, DbError>
  /** Runs one garbage-collection pass now; returns the number of objects deleted. */
  readonly collectGarbage: Effect.Effect<number, DbError>
  readonly stats: Effect.Effect<CompactorStats>
  /** Completes with the reason once this compactor stops working (`Fenced` by a newer compactor). */
  readonly stopped: Effect.Effect<DbError>
}

export class Compactor extends Context.Service<Compactor, CompactorShape>()("@opendata/core/Compactor") {}

/**
 * Takes the compactor role for the Db at `path`: bumps the compactor epoch in the manifest (fencing any
 * previous compactor process), then every `manifestPollMs` plans against the latest manifest, merges,
 * and commits under its own epoch, rebasing on the writer's flushes; and every `gcIntervalMs` collects
 * garbage. The writer then runs with `compactor: false, gc: false`. A newer compactor fences this one:
 * its commits fail with `Fenced`, `stopped` completes, and the tables it wrote are never referenced.
 */
export const makeCompactor = (settings: DbSettings = {}): Effect.Effect<CompactorShape, DbError, ObjectStore | Scope.Scope> =>
  Effect.suspend(() => CompactorProcess.makeCompactor(resolveSettings(settings)))

/** The compactor role as a Layer over the `ObjectStore` in context. */
export const layerCompactor = (settings: DbSettings = {}): Layer.Layer<Compactor, DbError, ObjectStore> =>
  Layer.effect(Compactor, makeCompactor(settings))

// -------------------------------------------------------------------------------------------------
// Operator tools: inspect and verify (read-only)
// -------------------------------------------------------------------------------------------------

export interface Inspection {
  readonly path: string
  readonly manifestVersions: ReadonlyArray<number>
  readonly latest: {
    readonly version: number
    readonly writerEpoch: number
    readonly compactorEpoch: number
    readonly walIdFlushed: number
    readonly walFences: ReadonlyArray<number>
    readonly lastSeq: number
    readonly l0Tables: number
    readonly sortedRuns: number
    readonly tables: number
    readonly tableBytes: number
    readonly entries: number
  } | undefined
  /** Objects under the path by kind (manifest, wal, sst, other): count and bytes. */
  readonly objects: Readonly<Record<string, { readonly count: number; readonly bytes: number }>>
}

/**
 * The bytes compaction stores a block of these plain bytes in (compressed, when that takes an eighth off):
 * for a product that estimates what each kind of its keys costs at rest.
 */
export const compactedBlockBytes = (plain: Uint8Array): number => Sst.compactedBlockBytes(plain)

/** What is stored under a Db's path: manifest versions, the latest manifest's summary, objects by kind. */
export const inspect = (path: string): Effect.Effect<Inspection, Unavailable | CorruptObject, ObjectStore> => Tools.inspect(path)

export interface Verification {
  readonly objectsChecked: number
  readonly bytesChecked: number
  /** One line per object that is missing or fails its checksums or format checks. */
  readonly problems: ReadonlyArray<string>
}

/**
 * Reads every object the latest manifest references (its tables) and every WAL object after its
 * flushed point, and checks every checksum and format rule. `progress` is called after each object.
 */
export const verify = (
  path: string,
  progress: (done: number, total: number) => Effect.Effect<void> = () => Effect.void
): Effect.Effect<Verification, Unavailable | CorruptObject, ObjectStore> => Tools.verify(path, progress)

export { OutcomeUnknown, Unavailable }
