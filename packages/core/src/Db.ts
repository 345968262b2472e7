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
 */
import { Cause, Clock, Context, Deferred, Effect, Exit, Fiber, Layer, Option, PubSub, Queue, Ref, Schedule, Schema, Scope, Semaphore, Stream } from "effect"
import * as Limits from "./limits.ts"
import type { ObjectStoreShape } from "./ObjectStore.ts"
import { ObjectStore } from "./ObjectStore.ts"
import { makeCache } from "./internal/cache.ts"
import type { CacheStats } from "./internal/cache.ts"
import type { Entry } from "./internal/format/entry.ts"
import { entryBytes } from "./internal/format/entry.ts"
import { CorruptObject } from "./internal/format/errors.ts"
import type { WalObject } from "./internal/format/wal.ts"
import { decodeWal, encodeWal } from "./internal/format/wal.ts"
import { decodeSstBlock, decodeSstBloom, decodeSstFooter, decodeSstIndex, sstFooterBytes } from "./internal/format/sst.ts"
import type { DbManifest, SstRef } from "./internal/db/manifest.ts"
import type { ManifestStore } from "./internal/db/manifestStore.ts"
import { Fenced, makeManifestStore } from "./internal/db/manifestStore.ts"
import { keyString, Memtable } from "./internal/db/memtable.ts"
import type { Cursor, KeyValue, MergeOperator } from "./internal/db/read.ts"
import { cursorFromIterator, mergeCursors, resolveBatch, resolveVersions } from "./internal/db/read.ts"
import type { ReadError, TableMeta, Tables } from "./internal/db/tables.ts"
import { makeTables, runCursor } from "./internal/db/tables.ts"
import type { Versioned } from "./internal/db/versionedLog.ts"
import { parseVersion, versionKey } from "./internal/db/versionedLog.ts"
import { planCompaction, runCompaction } from "./internal/db/compactor.ts"
import { putOnce } from "./internal/db/putOnce.ts"
import { collectGarbage } from "./internal/db/gc.ts"
import { OutcomeUnknown, Unavailable } from "./internal/objectStore/model.ts"

export { CorruptObject, Fenced }
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

/** The Db was closed (or failed and closed itself): reopen it. */
export class DbClosed extends Schema.TaggedError<DbClosed>()("DbClosed", { reason: Schema.String }) {
  override get message() {
    return `the Db is closed: ${this.reason}`
  }
}

/** A write to a read-only follower (`layerFollower`): writes go to the process that holds the writer role. */
export class ReadOnly extends Schema.TaggedError<ReadOnly>()("ReadOnly", { path: Schema.String }) {
  override get message() {
    return `the Db${this.path === "" ? "" : ` at ${this.path}`} is a read-only follower here: send writes to the writer`
  }
}

/** Input the Db cannot take: fix it. */
export class InvalidWrite extends Schema.TaggedError<InvalidWrite>()("InvalidWrite", { reason: Schema.String }) {
  override get message() {
    return `invalid write: ${this.reason}`
  }
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
 * - `gc-lease-from-creation`: the GC lease counts from an object's creation, by the local clock.
 */
export type SimulationMutant = "skip-fencing" | "unrecorded-fences" | "flush-not-idempotent" | "forget-ambiguous-put" | "gc-lease-from-creation"

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

const latencyBoundsMs = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000] as const

const makeLatencyHistogram = () => {
  const counts = new Array<number>(latencyBoundsMs.length + 1).fill(0)
  let sumMs = 0
  let count = 0
  return {
    observe: (ms: number) => {
      const i = latencyBoundsMs.findIndex((b) => ms <= b)
      counts[i === -1 ? latencyBoundsMs.length : i]! += 1
      sumMs += ms
      count += 1
    },
    snapshot: (): LatencyHistogram => ({ boundsMs: latencyBoundsMs, counts: [...counts], sumMs, count })
  }
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
// Implementation
// -------------------------------------------------------------------------------------------------

const walPrefix = "wal/"
const walKey = (path: string, id: number) => path + versionKey(walPrefix, id) + ".wal"
const parseWalId = (path: string, key: string) => parseVersion(path + walPrefix, key.replace(/\.wal$/, ""))

interface WriteRequest {
  readonly entries: ReadonlyArray<Entry>
  readonly bytes: number
  /** Taken from the unflushed-bytes budget; given back when its memtable is flushed. */
  readonly permits: number
  readonly done: Deferred.Deferred<void, DbError>
}

/** What readers see: the manifest they read tables through, and the memtables above it. */
interface ReadState {
  readonly manifest: Versioned<DbManifest>
  readonly active: Memtable
  /** Frozen memtables waiting to be flushed, newest first. */
  readonly frozen: ReadonlyArray<Memtable>
}

const textEncoder = new TextEncoder()

/**
 * The later of two manifest versions. The flusher and the compactor commit concurrently, each rebasing on
 * the other; the state must only move forward, or a read would see tables a newer version replaced.
 */
const newest = (a: Versioned<DbManifest>, b: Versioned<DbManifest>) => (b.version > a.version ? b : a)

/** After retries, an unsettled manifest or table write is reported as the store being unavailable. */
const settled = <A, E>(self: Effect.Effect<A, E | OutcomeUnknown>): Effect.Effect<A, Exclude<E, OutcomeUnknown> | Unavailable> =>
  Effect.mapError(self, (e) =>
    (e as { _tag?: string })._tag === "OutcomeUnknown"
      ? new Unavailable({ operation: (e as OutcomeUnknown).operation, key: (e as OutcomeUnknown).key, reason: (e as OutcomeUnknown).reason })
      : e) as Effect.Effect<A, Exclude<E, OutcomeUnknown> | Unavailable>

const retryUnavailable = Schedule.min([Schedule.exponential("50 millis"), Schedule.spaced("2 seconds")]).pipe(Schedule.jittered)

/** Opens the Db on the `ObjectStore`: takes over as the writer, replays the WAL, starts the actors. */
export const make = (
  settingsInput: DbSettings = {}
): Effect.Effect<DbShape, DbError, ObjectStore | Scope.Scope> =>
  Effect.gen(function*() {
    const settings = resolveSettings(settingsInput)
    const rootStore = yield* ObjectStore
    const store = prefixed(rootStore, settings.path)
    const manifests = makeManifestStore(store)
    const { tables, blockCache, metaCache } = tableAccess(store, settings)

    // --- open: bump the writer epoch, replay the WAL, fence the previous writer ----------------------
    const opened = yield* settled(openWriter(store, manifests, settings.simulationMutant))
    const epoch = opened.manifest.value.writerEpoch
    const counters = { walObjects: 0, walBytes: 0, tables: 0, compactions: 0, collected: 0 }
    const walWriteMs = makeLatencyHistogram()

    const state = yield* Ref.make<ReadState>({ manifest: opened.manifest, active: opened.memtable, frozen: [] })
    const durable = yield* Ref.make(opened.lastSeq)
    let nextSeq = opened.lastSeq + 1
    let nextWalId = opened.fenceWalId + 1
    /** Set once the Db stops taking writes: closed, fenced, or failed. */
    let stopped: DbError | undefined
    const waiters = new Map<number, Array<Deferred.Deferred<void, DbError>>>()
    const changes = yield* PubSub.sliding<DurableBatch>(Limits.changeFeedBatchesMax)
    const pins = new Map<number, number>() // manifest version -> live snapshots pinning it

    const mailbox = yield* Queue.bounded<WriteRequest, Cause.Done>(Limits.writeQueueMax)
    /** Fails once the Db stops: whoever waits on an actor races it, so an actor that is gone is noticed. */
    const stoppedSignal = yield* Deferred.make<never, DbError>()
    const sequencer = Semaphore.makeUnsafe(1)
    // Backpressure: a write takes its bytes from this budget; a memtable flush gives them back.
    const unflushed = Semaphore.makeUnsafe(settings.unflushedBytesMax)
    const flushRequests = yield* Queue.bounded<Deferred.Deferred<void, DbError> | undefined, Cause.Done>(64)
    const compactRequests = yield* Queue.sliding<undefined>(1)
    const l0Freed = yield* Queue.sliding<undefined>(1)

    /** Adopts a newer manifest committed by another process (a compactor), unless it fences us. */
    const reloadManifest = Effect.gen(function*() {
      const current = (yield* Ref.get(state)).manifest
      const newer = yield* manifests.log.latest(current.version)
      if (newer === undefined) return
      if (newer.value.writerEpoch > epoch) return yield* new Fenced({ role: "writer", epoch, newerEpoch: newer.value.writerEpoch })
      yield* Ref.update(state, (st) => (st.manifest.version < newer.version ? { ...st, manifest: newer } : st))
    })

    const retrySchedule = retryUnavailable

    // --- the writer actor ------------------------------------------------------------------------

    /**
     * Writes one WAL object in the next slot, retrying until it is written or the slot is taken. The
     * put-id names the attempt: a slot found taken by our own earlier attempt (whose reply was lost) is
     * ours, not a newer writer's fence.
     */
    const writeWal = (entries: ReadonlyArray<Entry>) =>
      Effect.gen(function*() {
        for (;;) {
          const walId = nextWalId
          const bytes = encodeWal({ writerEpoch: epoch, walId, kind: "data", entries })
          const outcome = yield* putOnce(store, walKey("", walId), bytes, `w${epoch}-${walId}`, settings.simulationMutant).pipe(
            Effect.tapError((e) => Effect.logWarning(`WAL write ${walId} failed, retrying: ${e.message}`)),
            Effect.retry({ schedule: retrySchedule })
          )
          if (outcome === "taken") {
            if (settings.simulationMutant !== "skip-fencing") return yield* new Fenced({ role: "writer", epoch, newerEpoch: epoch + 1 })
            // Deliberately broken (simulation only): a fenced writer skips past the fence and goes on.
            nextWalId = walId + 1
            continue
          }
          nextWalId = walId + 1
          counters.walObjects += 1
          counters.walBytes += bytes.length
          return walId
        }
      })

    const publishDurable = (entries: ReadonlyArray<Entry>, walId: number, permits: number) =>
      Effect.gen(function*() {
        const { active } = yield* Ref.get(state)
        for (const e of entries) active.add(e)
        active.permits += permits
        active.walIdLast = walId
        const lastSeq = entries.at(-1)!.seq
        yield* Ref.set(durable, lastSeq)
        yield* PubSub.publish(changes, { firstSeq: entries[0]!.seq, lastSeq, entries })
        for (const [seq, list] of waiters) {
          if (seq <= lastSeq) {
            waiters.delete(seq)
            for (const d of list) yield* Deferred.succeed(d, undefined)
          }
        }
        if (active.bytes >= settings.memtableBytesMax) yield* freeze
      })

    const freeze = Effect.gen(function*() {
      const frozen = yield* Ref.modify(state, (s) => {
        if (s.active.isEmpty) return [false, s] as const
        const next = new Memtable()
        next.walIdLast = s.active.walIdLast
        return [true, { ...s, active: next, frozen: [s.active, ...s.frozen] }] as const
      })
      if (frozen) yield* Queue.offer(flushRequests, undefined)
    })

    /** Fails everything pending with `error` and stops intake. */
    const stop = (error: DbError) =>
      Effect.gen(function*() {
        if (stopped === undefined) stopped = error
        yield* Deferred.fail(stoppedSignal, stopped)
        for (const [, list] of waiters) for (const d of list) yield* Deferred.fail(d, error)
        waiters.clear()
        const rest = yield* Queue.clear(mailbox).pipe(Effect.orElseSucceed(() => [] as Array<WriteRequest>))
        for (const r of rest) yield* Deferred.fail(r.done, error)
      })

    const writerLoop = Effect.gen(function*() {
      let carry: WriteRequest | undefined
      let lastStartMs = Number.NEGATIVE_INFINITY
      for (;;) {
        // Group commit: take what is waiting, up to the WAL batch bound.
        const first = carry ?? (yield* Queue.take(mailbox))
        carry = undefined
        const batch: Array<WriteRequest> = [first]
        let bytes = first.bytes
        while (true) {
          const more = yield* Queue.poll(mailbox)
          if (Option.isNone(more)) break
          if (bytes + more.value.bytes > settings.walBatchBytesMax) {
            carry = more.value
            break
          }
          batch.push(more.value)
          bytes += more.value.bytes
        }
        // Never start two WAL writes closer than flushIntervalMs: the cost bound of a paid store.
        const now = yield* Clock.currentTimeMillis
        const wait = lastStartMs + settings.flushIntervalMs - now
        if (wait > 0) {
          yield* Effect.sleep(`${wait} millis`)
          // Writes that arrived meanwhile ride along.
          while (carry === undefined) {
            const more = yield* Queue.poll(mailbox)
            if (Option.isNone(more)) break
            if (bytes + more.value.bytes > settings.walBatchBytesMax) carry = more.value
            else {
              batch.push(more.value)
              bytes += more.value.bytes
            }
          }
        }
        lastStartMs = yield* Clock.currentTimeMillis
        const entries = batch.flatMap((r) => r.entries)
        const exit = yield* Effect.exit(settled(writeWal(entries)))
        walWriteMs.observe((yield* Clock.currentTimeMillis) - lastStartMs)
        if (Exit.isFailure(exit)) {
          const error = Cause.findErrorOption(exit.cause)
          const reason: DbError = Option.isSome(error) ? error.value : new DbClosed({ reason: "the writer failed" })
          for (const r of batch) yield* Deferred.fail(r.done, reason)
          if (carry !== undefined) yield* Deferred.fail(carry.done, reason)
          yield* stop(reason)
          return yield* Effect.failCause(exit.cause)
        }
        yield* publishDurable(entries, exit.value, batch.reduce((n, r) => n + r.permits, 0))
        for (const r of batch) yield* Deferred.succeed(r.done, undefined)
      }
    }).pipe(Effect.catchIf((e): e is Cause.Done => Cause.isDone(e), () => Effect.void))

    // --- the flusher actor: frozen memtables -> level-0 tables -----------------------------------

    /** Tables written but not yet in a committed manifest: garbage collection must not take them. */
    const uncommitted = new Set<string>()
    const newTableId = Effect.map(Clock.currentTimeMillis, (now) => {
      const id = `${Math.floor(now).toString(36)}-${epoch}-${(counters.tables++).toString(36)}`
      uncommitted.add(id)
      return id
    })

    const flushOne = settled(Effect.scoped(Effect.gen(function*() {
      const { frozen } = yield* Ref.get(state)
      const oldest = frozen.at(-1)
      if (oldest === undefined) return false
      // Wait while level 0 is full: that holds the unflushed budget and so suspends writers. A compaction
      // here signals at once; one by a compactor in another process shows in the manifest, read every second.
      for (;;) {
        const s = yield* Ref.get(state)
        if (s.manifest.value.l0.length < settings.l0Max) break
        yield* Queue.offer(compactRequests, undefined)
        yield* Effect.raceFirst(Queue.take(l0Freed), Effect.andThen(Effect.sleep("1 second"), reloadManifest))
      }
      const entries = [...oldest.range(undefined, undefined)]
      // One table id for the memtable, whatever the attempt: a retry rewrites (or finds) the same table.
      const id = oldest.tableId ?? (yield* newTableId)
      if (settings.simulationMutant !== "flush-not-idempotent") oldest.tableId = id
      uncommitted.add(id)
      yield* Effect.addFinalizer(() => Effect.sync(() => uncommitted.delete(id)))
      const ref = yield* tables.write(id, entries, settings).pipe(Effect.retry({ schedule: retrySchedule, while: (e) => e._tag === "Unavailable" || e._tag === "OutcomeUnknown" }))
      const current = (yield* Ref.get(state)).manifest
      const committed = yield* manifests.commit(
        current,
        // Idempotent: a manifest that has flushed past this memtable's last WAL object already holds it
        // (an earlier attempt's commit landed, though its reply or the steps after it failed).
        (m) => (settings.simulationMutant === "flush-not-idempotent" ? m.l0.some((t) => t.id === ref.id) : m.walIdFlushed >= oldest.walIdLast) ? undefined : ({
          ...m,
          l0: [ref, ...m.l0],
          walIdFlushed: Math.max(m.walIdFlushed, oldest.walIdLast),
          lastSeq: Math.max(m.lastSeq, oldest.maxSeq)
        }),
        { role: "writer", epoch }
      )
      yield* Ref.update(state, (s) => ({ ...s, manifest: newest(s.manifest, committed), frozen: s.frozen.filter((t) => t !== oldest) }))
      if (oldest.permits > 0) yield* unflushed.release(oldest.permits)
      if (committed.value.l0.length >= settings.l0CompactionTrigger) yield* Queue.offer(compactRequests, undefined)
      return true
    }))).pipe(
      Effect.tapError((e) => e._tag === "Unavailable" ? Effect.logWarning(`memtable flush failed, retrying: ${e.message}`) : Effect.void),
      Effect.retry({ schedule: retryUnavailable, while: (e) => e._tag === "Unavailable" })
    )

    const flusherLoop = Effect.gen(function*() {
      for (;;) {
        const request = yield* Queue.take(flushRequests)
        const flushAll = Effect.gen(function*() {
          while (yield* flushOne) {
            // flush every frozen memtable, oldest first
          }
        })
        // Whoever asked hears how it ended, a crash included (the supervisor then restarts this actor).
        yield* flushAll.pipe(Effect.onExit((exit) => (request === undefined ? Effect.void : Deferred.done(request, exit))))
      }
    }).pipe(Effect.catchIf((e): e is Cause.Done => Cause.isDone(e), () => Effect.void))

    // --- the compactor actor ---------------------------------------------------------------------

    const minPinnedSeq = (durableSeq: number) => {
      let min = durableSeq
      for (const snapshot of snapshots.values()) min = Math.min(min, snapshot)
      return min
    }
    const snapshots = new Map<number, number>() // snapshot id -> seq
    let snapshotIds = 0

    // One compaction at a time in this process: a job plans against the manifest it will replace.
    const compactionLock = Semaphore.makeUnsafe(1)
    const compactOnce = compactionLock.withPermit(settled(Effect.scoped(Effect.gen(function*() {
      const s = yield* Ref.get(state)
      const job = planCompaction(s.manifest.value, settings)
      if (job === undefined) return false
      const retainAbove = minPinnedSeq(yield* Ref.get(durable))
      const written: Array<string> = []
      yield* Effect.addFinalizer(() => Effect.sync(() => written.forEach((id) => uncommitted.delete(id))))
      const output = yield* runCompaction(tables, job, {
        retainAbove,
        merge: settings.merge,
        newTableId: Effect.tap(newTableId, (id) => Effect.sync(() => written.push(id))),
        settings
      })
      const committed = yield* manifests.commit(
        (yield* Ref.get(state)).manifest,
        (m) => job.apply(m, output),
        { role: "writer", epoch }
      )
      yield* Ref.update(state, (st) => ({ ...st, manifest: newest(st.manifest, committed) }))
      yield* Queue.offer(l0Freed, undefined)
      counters.compactions += 1
      return true
    }))))

    const compactorLoop = Effect.forever(
      Effect.gen(function*() {
        yield* Queue.take(compactRequests)
        while (yield* compactOnce) {
          // keep compacting while there is work
        }
      }).pipe(
        // An unreachable store delays compaction; the next request (or flush) tries again.
        Effect.catchTag("Unavailable", (e) => Effect.logWarning(`compaction failed: ${e.message}`))
      )
    )

    // --- garbage collection ----------------------------------------------------------------------

    const gcOnce = Effect.gen(function*() {
      const deleted = yield* collectGarbage(store, manifests, {
        fencing: { role: "writer", epoch },
        pinnedVersions: new Set(pins.keys()),
        uncommittedTables: uncommitted,
        minAgeMs: settings.gcMinAgeMs,
        walPrefix,
        mutant: settings.simulationMutant === "gc-lease-from-creation" ? "gc-lease-from-creation" : undefined
      })
      counters.collected += deleted
      return deleted
    }).pipe(
      // A newer writer exists: this one stops, whichever fiber found out.
      Effect.tapError((e) => (e._tag === "Fenced" ? stop(e) : Effect.void))
    )

    const gcLoop = Effect.forever(
      Effect.sleep(`${settings.gcIntervalMs} millis`).pipe(
        Effect.andThen(gcOnce),
        Effect.catchTags({
          Unavailable: (e) => Effect.logWarning(`garbage collection failed: ${e.message}`),
          CorruptObject: (e) => Effect.logError(`garbage collection failed: ${e.message}`)
        })
      )
    )

    // --- supervision -----------------------------------------------------------------------------

    /** Runs an actor; a defect restarts it (a bounded number of times), a typed failure stops the Db. */
    const supervise = <E extends DbError>(name: string, loop: Effect.Effect<void, E>) =>
      Effect.gen(function*() {
        for (let restarts = 0; ; restarts++) {
          const exit = yield* Effect.exit(loop)
          if (Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause)) return
          const error = Cause.findErrorOption(exit.cause)
          if (Option.isSome(error)) {
            yield* Effect.logError(`${name} stopped: ${error.value.message}`)
            yield* stop(error.value)
            return
          }
          if (restarts >= Limits.actorRestartsMax) {
            yield* Effect.logError(`${name} crashed ${restarts + 1} times; closing the Db`, exit.cause)
            yield* stop(new DbClosed({ reason: `${name} crashed` }))
            return
          }
          yield* Effect.logError(`${name} crashed; restarting`, exit.cause)
        }
      })

    // Forked into the scope (not the opening fiber): the actors live as long as the Db, however it was built.
    const writerFiber = yield* Effect.forkScoped(supervise("writer", writerLoop))
    const flusherFiber = yield* Effect.forkScoped(supervise("flusher", flusherLoop))
    const compactorFiber = settings.compactor ? yield* Effect.forkScoped(supervise("compactor", compactorLoop)) : undefined
    const gcFiber = settings.gc ? yield* Effect.forkScoped(supervise("gc", gcLoop)) : undefined
    // With compaction in another process, adopt its manifest versions (and notice a newer writer) promptly:
    // the tables they replaced are collected once older than the GC lease.
    if (!settings.compactor) {
      yield* Effect.forkScoped(supervise("manifest follower", Effect.forever(
        Effect.sleep(`${settings.manifestPollMs} millis`).pipe(
          Effect.andThen(reloadManifest),
          Effect.catchTags({
            Unavailable: (e) => Effect.logWarning(`manifest reload failed: ${e.message}`),
            CorruptObject: (e) => Effect.logWarning(`manifest reload failed: ${e.message}`)
          })
        )
      )))
    }

    // Close: stop intake, drain the mailbox into the WAL, flush the memtable, stop the actors.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        // A Db that already stopped (fenced, or an actor gave up) has nothing left to flush.
        const healthy = stopped === undefined
        if (stopped === undefined) stopped = new DbClosed({ reason: "closed" })
        yield* Queue.end(mailbox)
        yield* Fiber.await(writerFiber)
        if (healthy) {
          yield* freeze
          const done = yield* Deferred.make<void, DbError>()
          yield* Queue.offer(flushRequests, done)
          yield* Deferred.await(done).pipe(Effect.timeout("30 seconds"), Effect.ignore)
        }
        yield* Queue.end(flushRequests)
        yield* Fiber.await(flusherFiber)
        if (compactorFiber !== undefined) yield* Fiber.interrupt(compactorFiber)
        if (gcFiber !== undefined) yield* Fiber.interrupt(gcFiber)
        yield* stop(stopped)
      })
    )

    // --- the public operations -------------------------------------------------------------------

    const write = (batch: ReadonlyArray<WriteOp>, options?: WriteOptions) =>
      Effect.gen(function*() {
        if (batch.length === 0) return yield* new InvalidWrite({ reason: "an empty batch" })
        let bytes = 0
        for (const op of batch) {
          if (!(op.key instanceof Uint8Array) || op.key.length === 0 || op.key.length > Limits.dbKeyBytesMax) {
            return yield* new InvalidWrite({ reason: `a key must be 1..${Limits.dbKeyBytesMax} bytes` })
          }
          if (op._tag !== "delete" && (!(op.value instanceof Uint8Array) || op.value.length > Limits.dbValueBytesMax)) {
            return yield* new InvalidWrite({ reason: `a value must be at most ${Limits.dbValueBytesMax} bytes` })
          }
          if (op._tag === "merge" && settings.merge === undefined) return yield* new InvalidWrite({ reason: "merge needs a merge operator" })
          bytes += op.key.length + (op._tag === "delete" ? 0 : op.value.length) + 16
        }
        if (bytes > settings.walBatchBytesMax) return yield* new InvalidWrite({ reason: `a batch must be at most ${settings.walBatchBytesMax} bytes` })
        if (stopped !== undefined) return yield* Effect.fail(stopped)
        const permits = Math.min(bytes, settings.unflushedBytesMax)
        yield* unflushed.take(permits)
        const done = yield* Deferred.make<void, DbError>()
        // Sequence numbers are assigned in mailbox order: take both under one lock.
        const seq = yield* sequencer.withPermit(
          Effect.gen(function*() {
            const first = nextSeq
            nextSeq += batch.length
            const entries: Array<Entry> = batch.map((op, i) => ({
              key: op.key.slice(),
              seq: first + i,
              kind: op._tag,
              value: op._tag === "delete" ? new Uint8Array(0) : op.value.slice()
            }))
            yield* Queue.offer(mailbox, { entries, bytes, permits, done })
            return first + batch.length - 1
          })
        ).pipe(Effect.onInterrupt(() => unflushed.release(permits)))
        const durableEffect = Deferred.await(done)
        if (options?.awaitDurable !== false) yield* durableEffect
        return { seq, durable: durableEffect }
      })

    /** The state a read sees: a snapshot's pinned state, or the current one at the durable watermark. */
    const currentView = (options?: ReadOptions) =>
      Effect.gen(function*() {
        const snapshot = options?.snapshot
        if (snapshot !== undefined) {
          const pinned = snapshotStates.get(snapshot)
          if (pinned === undefined) return yield* Effect.die(new Error("a snapshot of another Db, or one already released"))
          return { s: pinned, seq: snapshot.seq, manifest: pinned.manifest.value }
        }
        const s = yield* Ref.get(state)
        return { s, seq: yield* Ref.get(durable), manifest: s.manifest.value }
      })

    const snapshotStates = new WeakMap<Snapshot, ReadState>()

    const { get, scan } = readPath(tables, settings.merge, currentView)

    const snapshot: Effect.Effect<Snapshot, never, Scope.Scope> = Effect.acquireRelease(
      Effect.gen(function*() {
        const s = yield* Ref.get(state)
        const seq = yield* Ref.get(durable)
        const id = snapshotIds++
        snapshots.set(id, seq)
        pins.set(s.manifest.version, (pins.get(s.manifest.version) ?? 0) + 1)
        const snap: Snapshot & { readonly id: number } = { seq, manifestVersion: s.manifest.version, id }
        snapshotStates.set(snap, s)
        return snap
      }),
      (snap) =>
        Effect.sync(() => {
          snapshotStates.delete(snap)
          snapshots.delete((snap as Snapshot & { readonly id: number }).id)
          const n = (pins.get(snap.manifestVersion) ?? 1) - 1
          if (n === 0) pins.delete(snap.manifestVersion)
          else pins.set(snap.manifestVersion, n)
        })
    )

    const awaitDurable = (seq: number) =>
      Effect.gen(function*() {
        if ((yield* Ref.get(durable)) >= seq) return
        if (stopped !== undefined) return yield* Effect.fail(stopped)
        if (seq >= nextSeq) return yield* Effect.die(new Error(`awaitDurable(${seq}): no such write yet`))
        const d = yield* Deferred.make<void, DbError>()
        const list = waiters.get(seq) ?? []
        list.push(d)
        waiters.set(seq, list)
        // Re-check: the write may have become durable between the read and the registration.
        if ((yield* Ref.get(durable)) >= seq) return
        yield* Deferred.await(d)
      })

    const single = (op: WriteOp, options?: WriteOptions) => write([op], options)

    return {
      put: (key, value, options) => single({ _tag: "put", key, value }, options),
      delete: (key, options) => single({ _tag: "delete", key }, options),
      merge: (key, value, options) => single({ _tag: "merge", key, value }, options),
      write,
      get,
      scan,
      snapshot,
      durableSeq: Ref.get(durable),
      awaitDurable,
      changes: Stream.fromPubSub(changes),
      subscribe: Effect.map(PubSub.subscribe(changes), (subscription) => PubSub.take(subscription)),
      flush: Effect.gen(function*() {
        if (stopped !== undefined) return yield* Effect.fail(stopped)
        yield* freeze
        const done = yield* Deferred.make<void, DbError>()
        yield* Queue.offer(flushRequests, done)
        yield* Effect.raceFirst(Deferred.await(done), Deferred.await(stoppedSignal))
      }),
      compact: compactOnce,
      collectGarbage: gcOnce,
      stats: Effect.gen(function*() {
        const s = yield* Ref.get(state)
        return {
          durableSeq: yield* Ref.get(durable),
          manifestVersion: s.manifest.version,
          writerEpoch: epoch,
          walObjectsWritten: counters.walObjects,
          walBytesWritten: counters.walBytes,
          l0Tables: s.manifest.value.l0.length,
          sortedRuns: s.manifest.value.runs.length,
          tablesWritten: counters.tables,
          compactions: counters.compactions,
          objectsCollected: counters.collected,
          blockCache: blockCache.stats(),
          metaCache: metaCache.stats(),
          writeQueueDepth: yield* Queue.size(mailbox),
          memtableBytes: s.active.bytes + s.frozen.reduce((n, m) => n + m.bytes, 0),
          frozenMemtables: s.frozen.length,
          walWriteMs: walWriteMs.snapshot()
        }
      })
    } satisfies DbShape
  })

/** The Db as a Layer over the `ObjectStore` in context. */
export const layer = (settings: DbSettings = {}): Layer.Layer<Db, DbError, ObjectStore> => Layer.effect(Db, make(settings))

// -------------------------------------------------------------------------------------------------
// DbReader: a read-only follower
// -------------------------------------------------------------------------------------------------

export interface ReaderSettings {
  readonly path?: string | undefined
  /** How often to look for new WAL objects and manifest versions. */
  readonly pollIntervalMs?: number | undefined
  readonly blockCacheBytes?: number | undefined
  readonly metaCacheBytes?: number | undefined
  readonly merge?: MergeOperator | undefined
}

export interface DbReaderShape {
  readonly get: (key: Uint8Array) => Effect.Effect<Uint8Array | undefined, DbReadError>
  readonly scan: (range?: ScanRange) => Stream.Stream<KeyValue, DbReadError>
  /** Highest sequence number this reader has caught up to. */
  readonly durableSeq: Effect.Effect<number>
  /** Batches as this reader finds them in the WAL. */
  readonly changes: Stream.Stream<DurableBatch>
  /** Catches up now with new WAL objects and manifest versions (otherwise done every `pollIntervalMs`). */
  readonly refresh: Effect.Effect<void, DbReadError>
}

export class DbReader extends Context.Service<DbReader, DbReaderShape>()("@opendata/core/DbReader") {}

/**
 * Opens the Db at `path` read-only, from any process: reads the latest manifest, replays the WAL after
 * it, then follows new WAL objects and manifest versions. It writes nothing and fences nobody; it sees
 * what the writer made durable, a poll interval later.
 */
export const makeReader = (
  input: ReaderSettings = {}
): Effect.Effect<DbReaderShape, DbReadError, ObjectStore | Scope.Scope> => Effect.map(openFollower(input), (f) => f.reader)

/**
 * A read-only follower with the whole `Db` interface, so that a product runs on it unchanged in a reader
 * process: reads, snapshots and the change feed follow the writer a poll interval behind; writes fail with
 * `ReadOnly`. Snapshots pin state in this process only: the collector (in the writer or compactor
 * process) keeps what they read for its lease (`gcMinAgeMs`, 10 minutes by default).
 */
export const makeFollower = (input: ReaderSettings = {}): Effect.Effect<DbShape, DbReadError, ObjectStore | Scope.Scope> =>
  Effect.map(openFollower(input), (f) => f.db)

/** The read-only follower as the `Db` service (see `makeFollower`). */
export const layerFollower = (settings: ReaderSettings = {}): Layer.Layer<Db, DbReadError, ObjectStore> =>
  Layer.effect(Db, makeFollower(settings))

const openFollower = (input: ReaderSettings) =>
  Effect.gen(function*() {
    const settings = resolveSettings({
      path: input.path,
      blockCacheBytes: input.blockCacheBytes,
      metaCacheBytes: input.metaCacheBytes,
      merge: input.merge
    })
    const pollIntervalMs = input.pollIntervalMs ?? Limits.manifestPollMs
    const store = prefixed(yield* ObjectStore, settings.path)
    const manifests = makeManifestStore(store)
    const { tables, blockCache, metaCache } = tableAccess(store, settings)
    const first = yield* manifests.load
    const state = yield* Ref.make<ReadState>({ manifest: first, active: new Memtable(), frozen: [] })
    const durable = yield* Ref.make(first.value.lastSeq)
    const changes = yield* PubSub.sliding<DurableBatch>(Limits.changeFeedBatchesMax)
    let lastWalId = first.value.walIdFlushed
    const lock = Semaphore.makeUnsafe(1)

    /** Adopts a newer manifest: what it flushed leaves the memtable. */
    const adopt = (next: Versioned<DbManifest>) =>
      Ref.update(state, (s) => {
        const active = new Memtable()
        for (const e of s.active.range(undefined, undefined)) if (e.seq > next.value.lastSeq) active.add(e)
        return { ...s, manifest: next, active }
      }).pipe(
        Effect.andThen(Ref.update(durable, (d) => Math.max(d, next.value.lastSeq))),
        Effect.andThen(Effect.sync(() => {
          lastWalId = Math.max(lastWalId, next.value.walIdFlushed)
        }))
      )

    const readWal = (id: number) =>
      store.get(walKey("", id)).pipe(
        Effect.flatMap((r) =>
          Effect.try({
            try: () => decodeWal(walKey("", id), r.body),
            catch: (e) => (e instanceof CorruptObject ? e : new CorruptObject({ object: walKey("", id), reason: String(e) }))
          })),
        Effect.map((wal): WalObject | undefined => wal),
        Effect.catchTag("NotFound", () => Effect.succeed(undefined)),
        Effect.catchTags({ InvalidRange: (e) => Effect.die(e), InvalidKey: (e) => Effect.die(e) })
      )

    const refresh = lock.withPermit(Effect.gen(function*() {
      const current = (yield* Ref.get(state)).manifest
      const newer = yield* manifests.log.latest(current.version)
      if (newer !== undefined) yield* adopt(newer)
      for (;;) {
        const id = lastWalId + 1
        const wal = yield* readWal(id)
        if (wal === undefined) {
          // The end of the WAL, or an object collected after a manifest we have not seen: look again.
          const again = yield* manifests.log.latest((yield* Ref.get(state)).manifest.version)
          if (again === undefined || again.value.walIdFlushed < id) return
          yield* adopt(again)
          continue
        }
        lastWalId = id
        const seen = yield* Ref.get(durable)
        const fresh = wal.entries.filter((e) => e.seq > seen)
        if (fresh.length === 0) continue
        const { active } = yield* Ref.get(state)
        for (const e of fresh) active.add(e)
        yield* Ref.set(durable, fresh.at(-1)!.seq)
        yield* PubSub.publish(changes, { firstSeq: fresh[0]!.seq, lastSeq: fresh.at(-1)!.seq, entries: fresh })
      }
    }))

    yield* refresh
    yield* Effect.forkScoped(Effect.forever(
      Effect.sleep(`${pollIntervalMs} millis`).pipe(
        Effect.andThen(refresh),
        Effect.catch((e) => Effect.logWarning(`reader refresh failed: ${e.message}`))
      )
    ))

    const snapshotViews = new WeakMap<Snapshot, { readonly s: ReadState; readonly seq: number }>()
    const view = (options?: ReadOptions) =>
      Effect.gen(function*() {
        const snapshot = options?.snapshot
        if (snapshot !== undefined) {
          const pinned = snapshotViews.get(snapshot)
          if (pinned === undefined) return yield* Effect.die(new Error("a snapshot of another Db, or one already released"))
          return { s: pinned.s, seq: pinned.seq, manifest: pinned.s.manifest.value }
        }
        const s = yield* Ref.get(state)
        return { s, seq: yield* Ref.get(durable), manifest: s.manifest.value }
      })
    const { get, scan } = readPath(tables, settings.merge, view)

    const reader: DbReaderShape = {
      get: (key) => get(key),
      scan: (range) => scan(range),
      durableSeq: Ref.get(durable),
      changes: Stream.fromPubSub(changes),
      refresh
    }
    const readOnly = Effect.fail(new ReadOnly({ path: settings.path }))
    const db: DbShape = {
      put: () => readOnly,
      delete: () => readOnly,
      merge: () => readOnly,
      write: () => readOnly,
      get,
      scan,
      snapshot: Effect.acquireRelease(
        Effect.gen(function*() {
          // A memtable is only ever added to: the snapshot gets its own copy of what is durable now.
          const s = yield* Ref.get(state)
          const seq = yield* Ref.get(durable)
          const active = new Memtable()
          for (const e of s.active.range(undefined, undefined)) active.add(e)
          const snap: Snapshot = { seq, manifestVersion: s.manifest.version }
          snapshotViews.set(snap, { s: { ...s, active }, seq })
          return snap
        }),
        (snap) => Effect.sync(() => snapshotViews.delete(snap))
      ),
      durableSeq: Ref.get(durable),
      // A follower has no writes of its own: it waits until it has caught up with the writer's.
      awaitDurable: (seq) =>
        Effect.gen(function*() {
          while ((yield* Ref.get(durable)) < seq) yield* Effect.sleep(`${Math.max(10, Math.floor(pollIntervalMs / 4))} millis`)
        }),
      changes: Stream.fromPubSub(changes),
      subscribe: Effect.map(PubSub.subscribe(changes), (subscription) => PubSub.take(subscription)),
      flush: Effect.void,
      compact: Effect.succeed(false),
      collectGarbage: Effect.succeed(0),
      stats: Effect.gen(function*() {
        const s = yield* Ref.get(state)
        return {
          durableSeq: yield* Ref.get(durable),
          manifestVersion: s.manifest.version,
          writerEpoch: s.manifest.value.writerEpoch,
          walObjectsWritten: 0,
          walBytesWritten: 0,
          l0Tables: s.manifest.value.l0.length,
          sortedRuns: s.manifest.value.runs.length,
          tablesWritten: 0,
          compactions: 0,
          objectsCollected: 0,
          blockCache: blockCache.stats(),
          metaCache: metaCache.stats(),
          writeQueueDepth: 0,
          memtableBytes: s.active.bytes,
          frozenMemtables: 0,
          walWriteMs: makeLatencyHistogram().snapshot()
        }
      })
    }
    return { reader, db }
  })

/** The read-only follower as a Layer over the `ObjectStore` in context. */
export const layerReader = (settings: ReaderSettings = {}): Layer.Layer<DbReader, DbReadError, ObjectStore> =>
  Layer.effect(DbReader, makeReader(settings))

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
export const makeCompactor = (input: DbSettings = {}): Effect.Effect<CompactorShape, DbError, ObjectStore | Scope.Scope> =>
  Effect.gen(function*() {
    const settings = resolveSettings(input)
    const store = prefixed(yield* ObjectStore, settings.path)
    const manifests = makeManifestStore(store)
    const { tables } = tableAccess(store, settings)
    const opened = yield* settled(Effect.flatMap(manifests.load, (loaded) =>
      manifests.commit(loaded, (m) => ({ ...m, compactorEpoch: m.compactorEpoch + 1 }))))
    const epoch = opened.value.compactorEpoch
    const fencing = { role: "compactor", epoch } as const
    const current = yield* Ref.make(opened)
    const counters = { compactions: 0, tables: 0, collected: 0 }
    const stoppedSignal = yield* Deferred.make<DbError>()
    const uncommitted = new Set<string>()
    // `c` keeps these ids apart from the writer's (`<time>-<writer epoch>-<n>`): both share `sst/`.
    const newTableId = Effect.map(Clock.currentTimeMillis, (now) => {
      const id = `${Math.floor(now).toString(36)}-c${epoch}-${(counters.tables++).toString(36)}`
      uncommitted.add(id)
      return id
    })

    const latest = Effect.gen(function*() {
      const known = yield* Ref.get(current)
      const newer = yield* manifests.log.latest(known.version)
      const m = newer ?? known
      if (m.value.compactorEpoch > epoch) return yield* new Fenced({ role: "compactor", epoch, newerEpoch: m.value.compactorEpoch })
      yield* Ref.set(current, m)
      return m
    })

    const lock = Semaphore.makeUnsafe(1)
    const compactOnce = lock.withPermit(settled(Effect.scoped(Effect.gen(function*() {
      const m = yield* latest
      const job = planCompaction(m.value, settings)
      if (job === undefined) return false
      const written: Array<string> = []
      yield* Effect.addFinalizer(() => Effect.sync(() => written.forEach((id) => uncommitted.delete(id))))
      // Snapshots of other processes read the tables of the manifest they pinned (kept for the GC lease),
      // never this job's output: every version below the manifest's last seq may be collapsed.
      const output = yield* runCompaction(tables, job, {
        retainAbove: m.value.lastSeq,
        merge: settings.merge,
        newTableId: Effect.tap(newTableId, (id) => Effect.sync(() => written.push(id))),
        settings
      })
      const committed = yield* manifests.commit(m, (latestManifest) => job.apply(latestManifest, output), fencing)
      yield* Ref.update(current, (known) => newest(known, committed))
      counters.compactions += 1
      return true
    }))))

    const gcOnce = Effect.gen(function*() {
      const deleted = yield* collectGarbage(store, manifests, {
        fencing,
        pinnedVersions: new Set(),
        uncommittedTables: uncommitted,
        minAgeMs: settings.gcMinAgeMs,
        walPrefix,
        mutant: settings.simulationMutant === "gc-lease-from-creation" ? "gc-lease-from-creation" : undefined
      })
      counters.collected += deleted
      return deleted
    })

    // An unreachable store or a defect (say, a job whose inputs another compactor changed) costs one
    // round: the next one plans again from the latest manifest. Being fenced ends the compactor.
    const loop = (name: string, intervalMs: number, step: Effect.Effect<unknown, DbError>) =>
      Effect.forever(Effect.sleep(`${intervalMs} millis`).pipe(
        Effect.andThen(step),
        Effect.catchTags({
          Unavailable: (e) => Effect.logWarning(`${name} failed: ${e.message}`),
          CorruptObject: (e) => Effect.logError(`${name} failed: ${e.message}`)
        }),
        Effect.catchDefect((d) => Effect.logError(`${name} crashed; trying again`, d))
      )).pipe(
        Effect.catch((e) => Effect.andThen(Effect.logError(`compactor stopped: ${e.message}`), Deferred.succeed(stoppedSignal, e)))
      )
    const compactFiber = yield* Effect.forkScoped(loop("compaction", settings.manifestPollMs, Effect.gen(function*() {
      while (yield* compactOnce) {
        // keep compacting while there is work
      }
    })))
    const gcFiber = yield* Effect.forkScoped(loop("garbage collection", settings.gcIntervalMs, gcOnce))
    // Fenced: the other loop stops too.
    yield* Effect.forkScoped(Effect.andThen(Deferred.await(stoppedSignal), Effect.andThen(Fiber.interrupt(compactFiber), Fiber.interrupt(gcFiber))))
    yield* Effect.logInfo(`compactor ${settings.path === "" ? "" : `for ${settings.path} `}took epoch ${epoch}`)

    return {
      compact: compactOnce,
      collectGarbage: gcOnce,
      stopped: Deferred.await(stoppedSignal),
      stats: Effect.gen(function*() {
        const m = yield* Ref.get(current)
        return {
          compactorEpoch: epoch,
          manifestVersion: m.version,
          l0Tables: m.value.l0.length,
          sortedRuns: m.value.runs.length,
          compactions: counters.compactions,
          tablesWritten: counters.tables,
          objectsCollected: counters.collected
        }
      })
    } satisfies CompactorShape
  })

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

/** What is stored under a Db's path: manifest versions, the latest manifest's summary, objects by kind. */
export const inspect = (path: string): Effect.Effect<Inspection, Unavailable | CorruptObject, ObjectStore> =>
  Effect.gen(function*() {
    const store = prefixed(yield* ObjectStore, path)
    const manifests = makeManifestStore(store)
    const entries = yield* Stream.runCollect(store.list("")).pipe(Effect.catchTag("InvalidKey", (e) => Effect.die(e)))
    const objects: Record<string, { count: number; bytes: number }> = {}
    for (const e of entries) {
      const kind = e.key.startsWith(walPrefix) ? "wal" : e.key.startsWith("sst/") ? "sst" : e.key.startsWith("manifest/") ? "manifest" : "other"
      const o = objects[kind] ?? { count: 0, bytes: 0 }
      o.count += 1
      o.bytes += e.size
      objects[kind] = o
    }
    const versions = yield* manifests.log.versions
    const latest = yield* manifests.log.latest()
    const m = latest?.value
    const all = m === undefined ? [] : [...m.l0, ...m.runs.flatMap((r) => r.ssts)]
    return {
      path,
      manifestVersions: versions,
      latest: latest === undefined || m === undefined ? undefined : {
        version: latest.version,
        writerEpoch: m.writerEpoch,
        compactorEpoch: m.compactorEpoch,
        walIdFlushed: m.walIdFlushed,
        walFences: m.walFences,
        lastSeq: m.lastSeq,
        l0Tables: m.l0.length,
        sortedRuns: m.runs.length,
        tables: all.length,
        tableBytes: all.reduce((n, t) => n + t.size, 0),
        entries: all.reduce((n, t) => n + t.entryCount, 0)
      },
      objects
    }
  })

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
): Effect.Effect<Verification, Unavailable | CorruptObject, ObjectStore> =>
  Effect.gen(function*() {
    const store = prefixed(yield* ObjectStore, path)
    const manifests = makeManifestStore(store)
    const latest = yield* manifests.log.latest()
    const problems: Array<string> = []
    let objectsChecked = 0
    let bytesChecked = 0
    if (latest === undefined) return { objectsChecked, bytesChecked, problems }
    const m = latest.value
    const tables = [...m.l0, ...m.runs.flatMap((r) => r.ssts)]
    const wals = (yield* Stream.runCollect(store.list(walPrefix, { startAfter: walKey("", m.walIdFlushed) })).pipe(
      Effect.catchTag("InvalidKey", (e) => Effect.die(e))
    )).map((e) => e.key)
    const total = tables.length + wals.length
    const read = (key: string) =>
      store.get(key).pipe(
        Effect.map((r): Uint8Array | undefined => r.body),
        Effect.catchTag("NotFound", () => Effect.succeed(undefined)),
        Effect.catchTags({ InvalidRange: (e) => Effect.die(e), InvalidKey: (e) => Effect.die(e) })
      )
    for (const t of tables) {
      const key = `sst/${t.id}.sst`
      const bytes = yield* read(key)
      objectsChecked += 1
      if (bytes === undefined) problems.push(`${key}: referenced by manifest ${latest.version} but missing`)
      else {
        bytesChecked += bytes.length
        if (bytes.length !== t.size) problems.push(`${key}: ${bytes.length} bytes, the manifest says ${t.size}`)
        const problem = checkTable(key, bytes, t.entryCount)
        if (problem !== undefined) problems.push(problem)
      }
      yield* progress(objectsChecked, total)
    }
    for (const key of wals) {
      const bytes = yield* read(key)
      objectsChecked += 1
      if (bytes !== undefined) {
        bytesChecked += bytes.length
        try {
          decodeWal(key, bytes)
        } catch (e) {
          problems.push(e instanceof Error ? e.message : String(e))
        }
      }
      yield* progress(objectsChecked, total)
    }
    return { objectsChecked, bytesChecked, problems }
  })

/** Decodes a whole table (footer, index, bloom, every block) and counts its entries. */
const checkTable = (key: string, bytes: Uint8Array, entryCount: number): string | undefined => {
  try {
    const footer = decodeSstFooter(key, bytes.subarray(bytes.length - sstFooterBytes), bytes.length)
    decodeSstBloom(key, bytes.subarray(footer.bloomOffset, footer.bloomOffset + footer.bloomLength))
    const index = decodeSstIndex(key, bytes.subarray(footer.indexOffset, footer.indexOffset + footer.indexLength))
    let entries = 0
    for (const h of index) entries += decodeSstBlock(key, bytes.subarray(h.offset, h.offset + h.length)).length
    if (entries !== entryCount) return `${key}: ${entries} entries, the manifest says ${entryCount}`
    return undefined
  } catch (e) {
    return e instanceof Error ? e.message : String(e)
  }
}

// -------------------------------------------------------------------------------------------------
// Opening a writer
// -------------------------------------------------------------------------------------------------

interface Opened {
  readonly manifest: Versioned<DbManifest>
  readonly memtable: Memtable
  readonly lastSeq: number
  readonly fenceWalId: number
}

/**
 * Takes over as the writer: bumps the writer epoch, replays every WAL object after the flushed point into
 * a memtable, and claims the next free WAL slot with a fence object, so the previous writer's next WAL
 * write fails. Records the fence in the manifest so garbage collection never deletes it.
 */
const openWriter = (store: ObjectStoreShape, manifests: ManifestStore, mutant: ResolvedSettings["simulationMutant"]) =>
  Effect.gen(function*() {
    const loaded = yield* manifests.load
    const bumped = yield* manifests.commit(loaded, (m) => ({ ...m, writerEpoch: m.writerEpoch + 1 }))
    const epoch = bumped.value.writerEpoch
    const memtable = new Memtable()
    let lastSeq = bumped.value.lastSeq
    let walId = bumped.value.walIdFlushed
    // Fences of earlier openers met in the WAL. An opener may have put its fence and failed before
    // recording it: recorded now, it is kept from garbage collection, so the writer it fenced stays fenced.
    const fencesMet: Array<number> = []
    const replay = (id: number) =>
      Effect.gen(function*() {
        const key = walKey("", id)
        const got = yield* store.get(key).pipe(
          Effect.map((r): Uint8Array | undefined => r.body),
          Effect.catchTag("NotFound", () => Effect.succeed(undefined)),
          Effect.catchTags({ InvalidRange: (e) => Effect.die(e), InvalidKey: (e) => Effect.die(e) })
        )
        if (got === undefined) return false
        const wal = yield* Effect.try({
          try: () => decodeWal(key, got),
          catch: (e) => (e instanceof CorruptObject ? e : new CorruptObject({ object: key, reason: String(e) }))
        })
        if (wal.kind === "fence" && mutant !== "unrecorded-fences") fencesMet.push(id)
        for (const e of wal.entries) {
          if (e.seq > lastSeq) {
            memtable.add(e)
            lastSeq = e.seq
          }
        }
        memtable.walIdLast = id
        return true
      })
    // WAL ids are contiguous: replay until the first missing slot.
    const listed = yield* Stream.runCollect(store.list(walPrefix, { startAfter: walKey("", walId) })).pipe(
      Effect.catchTag("InvalidKey", (e) => Effect.die(e))
    )
    const ids = listed.flatMap((e) => Option.toArray(Option.fromUndefinedOr(parseWalId("", e.key)))).sort((a, b) => a - b)
    for (const id of ids) {
      if (id !== walId + 1) break
      if (!(yield* replay(id))) break
      walId = id
    }
    // Claim the next free slot with a fence. If the previous writer just wrote it, replay that and go on.
    for (;;) {
      const fenceId = walId + 1
      const fence = encodeWal({ writerEpoch: epoch, walId: fenceId, kind: "fence", entries: [] })
      const claimed = (yield* putOnce(store, walKey("", fenceId), fence, `f${epoch}-${fenceId}`, mutant)) === "written"
      if (claimed) {
        memtable.walIdLast = fenceId
        const fences = [...fencesMet, fenceId]
        const manifest = yield* manifests.commit(
          bumped,
          (m) => {
            const missing = fences.filter((f) => !m.walFences.includes(f))
            return missing.length === 0 ? undefined : { ...m, walFences: [...m.walFences, ...missing].sort((x, y) => x - y) }
          },
          { role: "writer", epoch }
        )
        return { manifest, memtable, lastSeq, fenceWalId: fenceId } satisfies Opened
      }
      if (!(yield* replay(fenceId))) return yield* Effect.die(new Error(`WAL slot ${fenceId} is taken but cannot be read`))
      walId = fenceId
    }
  })

// -------------------------------------------------------------------------------------------------
// The read path, shared by the writer's Db and the read-only DbReader
// -------------------------------------------------------------------------------------------------

interface View {
  readonly s: ReadState
  readonly seq: number
  readonly manifest: DbManifest
}

const tableAccess = (store: ObjectStoreShape, settings: ResolvedSettings) => {
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

const readPath = <R>(tables: Tables, merge: MergeOperator | undefined, view: (options?: ReadOptions) => Effect.Effect<View, never, R>) => {
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

  const scan = (range: ScanRange = {}, options?: ReadOptions): Stream.Stream<KeyValue, DbReadError, R> =>
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

// -------------------------------------------------------------------------------------------------
// Helpers
// -------------------------------------------------------------------------------------------------

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

/** A view of a store with every key under `path`. */
const prefixed = (store: ObjectStoreShape, path: string): ObjectStoreShape => {
  if (path === "") return store
  return {
    ...store,
    name: `${store.name}/${path}`,
    keyBytesMax: store.keyBytesMax - textEncoder.encode(path).length,
    get: (key, range) => store.get(path + key, range),
    head: (key) => store.head(path + key),
    put: (key, body, options) => store.put(path + key, body, options),
    putIfAbsent: (key, body, options) => store.putIfAbsent(path + key, body, options),
    putIfMatch: (key, body, etag, options) => store.putIfMatch(path + key, body, etag, options),
    listPage: (prefix, options) =>
      Effect.map(
        store.listPage(path + prefix, options?.startAfter === undefined ? options : { ...options, startAfter: path + options.startAfter }),
        (page) => ({
          entries: page.entries.map((e) => ({ ...e, key: e.key.slice(path.length) })),
          next: page.next === undefined ? undefined : page.next.slice(path.length)
        })
      ),
    list: (prefix, options) =>
      Stream.map(
        store.list(path + prefix, options?.startAfter === undefined ? options : { ...options, startAfter: path + options.startAfter }),
        (e) => ({ ...e, key: e.key.slice(path.length) })
      ),
    delete: (key) => store.delete(path + key),
    resolvePut: (key, putId) => store.resolvePut(path + key, putId)
  }
}

export { OutcomeUnknown, Unavailable }
