/**
 * The writer Db: the process that holds the writer role, with its actors (RFC 0003, "Write path" and
 * "Actors and supervision").
 *
 * `write` validates a batch, takes its bytes from the unflushed budget, assigns sequence numbers and
 * offers it to the writer actor's bounded mailbox. The writer groups what is waiting into one WAL object
 * (put-if-absent in the next slot; a slot found taken by another means fenced), then applies it to the
 * memtable, advances the durable watermark, publishes the change feed and acknowledges. The flusher
 * writes frozen memtables as level-0 tables; the compactor and the collector (`maintenance.ts`) run here
 * unless `compactor: false` / `gc: false` hand them to a compactor process, whose manifest versions the
 * writer then adopts. A supervisor restarts an actor after a defect (a bounded number of times); a typed
 * failure, `Fenced` above all, stops the Db and fails every pending write with it (`stop`, `stopped`).
 *
 * Snapshots pin the state they read (`snapshots`: the seq compaction must keep; `pins`: the manifest
 * version garbage collection must keep). Opening (epoch bump, replay, fence) is in `open.ts`, reads in
 * `readPath.ts`.
 */
import { Cause, Clock, Deferred, Effect, Exit, Fiber, Option, PubSub, Queue, Ref, Schedule, Scope, Semaphore, Stream } from "effect"
import type { DbError, DbShape, DurableBatch, ReadOptions, ResolvedSettings, Snapshot, WriteOp, WriteOptions } from "../../Db.ts"
import * as Limits from "../../limits.ts"
import { ObjectStore } from "../../ObjectStore.ts"
import type { Entry } from "../format/entry.ts"
import { encodeWal } from "../format/wal.ts"
import { DbClosed, InvalidWrite } from "./errors.ts"
import { makeLatencyHistogram } from "./latency.ts"
import { makeMaintenance, newest } from "./maintenance.ts"
import { tableTotals } from "./manifest.ts"
import { Fenced, makeManifestStore } from "./manifestStore.ts"
import { Memtable } from "./memtable.ts"
import { putOnce } from "./putOnce.ts"
import { openWriter } from "./open.ts"
import type { ReadState } from "./readPath.ts"
import { readPath, tableAccess } from "./readPath.ts"
import { buildTable } from "./tables.ts"
import { prefixed, settled, walKey } from "./storeView.ts"

interface WriteRequest {
  readonly entries: ReadonlyArray<Entry>
  readonly bytes: number
  /** Taken from the unflushed-bytes budget; given back when its memtable is flushed. */
  readonly permits: number
  readonly done: Deferred.Deferred<void, DbError>
}

const retryUnavailable = Schedule.min([Schedule.exponential("50 millis"), Schedule.spaced("2 seconds")]).pipe(Schedule.jittered)

/** Opens the Db on the `ObjectStore`: takes over as the writer, replays the WAL, starts the actors. */

/** The value of every delete entry. */
const empty = new Uint8Array(0)

/** A batch's entries holding the caller's own keys and values (handed over: never changed again). */
const ownEntries = (batch: ReadonlyArray<WriteOp>, first: number): Array<Entry> =>
  batch.map((op, i) => ({ key: op.key, seq: first + i, kind: op._tag, value: op._tag === "delete" ? empty : op.value }))

/**
 * A batch's entries holding copies of its keys and values, all in one buffer: one allocation per batch
 * rather than two per entry (a small buffer of its own costs several times its bytes), and one empty value
 * shared by every entry without one. The entries of a batch live and go together (in one memtable).
 */
const copied = (batch: ReadonlyArray<WriteOp>, first: number): Array<Entry> => {
  let total = 0
  for (const op of batch) total += op.key.length + (op._tag === "delete" ? 0 : op.value.length)
  const arena = new Uint8Array(total)
  let at = 0
  const take = (bytes: Uint8Array) => {
    if (bytes.length === 0) return empty
    arena.set(bytes, at)
    at += bytes.length
    return arena.subarray(at - bytes.length, at)
  }
  return batch.map((op, i) => ({ key: take(op.key), seq: first + i, kind: op._tag, value: op._tag === "delete" ? empty : take(op.value) }))
}
export const make = (settings: ResolvedSettings): Effect.Effect<DbShape, DbError, ObjectStore | Scope.Scope> =>
  Effect.gen(function*() {
    const rootStore = yield* ObjectStore
    /** The Db's scope: actors started later (a manifest follower after a hand-over) live as long as it. */
    const dbScope = yield* Effect.scope
    const store = prefixed(rootStore, settings.path)
    const manifests = makeManifestStore(store, settings.simulationMutant)
    const { tables, blockCache, metaCache } = tableAccess(store, settings)

    // --- open: bump the writer epoch, replay the WAL, fence the previous writer ----------------------
    const opened = yield* settled(openWriter(store, manifests, settings.simulationMutant, settings.compactor))
    const epoch = opened.manifest.value.writerEpoch
    // A writer that compacts holds the compactor role too, under an epoch of its own: exactly one process
    // compacts and collects. A compactor process opened later takes the role over (and this writer then
    // adopts its manifest versions); one opened earlier is fenced by this one.
    const compactorEpoch = opened.manifest.value.compactorEpoch
    const counters = { walObjects: 0, walBytes: 0 }
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

    /** Adopts manifest versions committed by a compactor process every `manifestPollMs`. */
    const manifestFollower = Effect.suspend(() =>
      supervise("manifest follower", Effect.forever(
        Effect.sleep(`${settings.manifestPollMs} millis`).pipe(
          Effect.andThen(reloadManifest),
          Effect.catchTags({
            Unavailable: (e) => Effect.logWarning(`manifest reload failed: ${e.message}`),
            CorruptObject: (e) => Effect.logWarning(`manifest reload failed: ${e.message}`)
          })
        )
      ))
    )

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

    /**
     * The writes the writer actor has taken from the mailbox and not yet answered, and whether their WAL
     * object may exist: if the actor crashes, they are failed (not dropped); if it crashes after their WAL
     * write began, the memtable can no longer be made to match the WAL, and the Db stops.
     */
    const inFlight = { requests: [] as Array<WriteRequest>, walWriteBegun: false }

    const writerLoop = Effect.gen(function*() {
      let carry: WriteRequest | undefined
      let lastStartMs = Number.NEGATIVE_INFINITY
      for (;;) {
        // Group commit: take what is waiting, up to the WAL batch bound.
        const first = carry ?? (yield* Queue.take(mailbox))
        carry = undefined
        const batch: Array<WriteRequest> = [first]
        inFlight.requests = batch
        let bytes = first.bytes
        while (true) {
          const more = yield* Queue.poll(mailbox)
          if (Option.isNone(more)) break
          if (bytes + more.value.bytes > settings.walBatchBytesMax) {
            carry = more.value
            inFlight.requests = [...batch, carry]
            break
          }
          batch.push(more.value)
          bytes += more.value.bytes
        }
        // Never start two WAL writes closer than flushIntervalMs: the cost bound of a paid store.
        const now = yield* Clock.currentTimeMillis
        const wait = lastStartMs + settings.flushIntervalMs - now
        if (wait > 0) {
          yield* Effect.sleep(`${Math.ceil(wait)} millis`)
          // Writes that arrived meanwhile ride along.
          while (carry === undefined) {
            const more = yield* Queue.poll(mailbox)
            if (Option.isNone(more)) break
            if (bytes + more.value.bytes > settings.walBatchBytesMax) {
              carry = more.value
              inFlight.requests = [...batch, carry]
            } else {
              batch.push(more.value)
              bytes += more.value.bytes
            }
          }
        }
        lastStartMs = yield* Clock.currentTimeMillis
        const entries = batch.flatMap((r) => r.entries)
        inFlight.walWriteBegun = true
        const exit = yield* Effect.exit(settled(writeWal(entries)))
        walWriteMs.observe((yield* Clock.currentTimeMillis) - lastStartMs)
        if (Exit.isFailure(exit)) {
          const error = Cause.findErrorOption(exit.cause)
          const reason: DbError = Option.isSome(error) ? error.value : new DbClosed({ reason: "the writer failed" })
          for (const r of batch) yield* Deferred.fail(r.done, reason)
          if (carry !== undefined) yield* Deferred.fail(carry.done, reason)
          inFlight.requests = []
          inFlight.walWriteBegun = false
          yield* stop(reason)
          return yield* Effect.failCause(exit.cause)
        }
        yield* publishDurable(entries, exit.value, batch.reduce((n, r) => n + r.permits, 0))
        for (const r of batch) yield* Deferred.succeed(r.done, undefined)
        inFlight.requests = carry === undefined ? [] : [carry]
        inFlight.walWriteBegun = false
      }
    }).pipe(
      Effect.catchIf((e): e is Cause.Done => Cause.isDone(e), () => Effect.void),
      // Crashed (a defect) or interrupted: nobody will answer the writes in hand, so they fail here.
      Effect.onExit((exit) =>
        Exit.isSuccess(exit) || inFlight.requests.length === 0
          ? Effect.void
          : Effect.gen(function*() {
            const requests = inFlight.requests
            inFlight.requests = []
            const reason = stopped ?? new DbClosed({ reason: "the writer crashed while writing this batch; it may or may not be durable" })
            for (const r of requests) yield* Deferred.fail(r.done, reason)
            if (inFlight.walWriteBegun) {
              inFlight.walWriteBegun = false
              yield* stop(new DbClosed({ reason: "the writer crashed between writing the WAL and applying it" }))
            }
          }))
    )

    // --- compaction and garbage collection, as the writer runs them (maintenance.ts) --------------

    const snapshots = new Map<number, number>() // snapshot id -> seq
    let snapshotIds = 0
    const minPinnedSeq = (durableSeq: number) => {
      let min = durableSeq
      for (const snapshot of snapshots.values()) min = Math.min(min, snapshot)
      return min
    }
    const currentManifest = Effect.map(Ref.get(state), (s) => s.manifest)
    const maintenance = makeMaintenance(store, manifests, tables, settings, {
      fencing: settings.compactor ? { role: "compactor", epoch: compactorEpoch } : { role: "writer", epoch },
      planBase: currentManifest,
      // The flusher may have committed since the job was planned.
      commitBase: () => currentManifest,
      // Above the oldest live snapshot, every version stays; below, what the newest visible one needs.
      retainAbove: () => Effect.map(Ref.get(durable), minPinnedSeq),
      committed: (committed) =>
        Effect.andThen(Ref.update(state, (st) => ({ ...st, manifest: newest(st.manifest, committed) })), Queue.offer(l0Freed, undefined)),
      pinnedVersions: () => new Set(pins.keys())
    })
    /** Tables written but not yet in a committed manifest (flushes and compactions): GC leaves them. */
    const { uncommitted, newTableId } = maintenance

    // --- the flusher actor: frozen memtables -> level-0 tables -----------------------------------

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
      // Built as the memtable's entries come (each is a view of its arena, gone once encoded).
      const table = yield* buildTable(oldest.range(undefined, undefined), settings, oldest.bytes)
      // One table id for the memtable, whatever the attempt: a retry rewrites (or finds) the same table.
      const id = oldest.tableId ?? (yield* newTableId)
      if (settings.simulationMutant !== "flush-not-idempotent") oldest.tableId = id
      // Uncommitted from its first attempt until a commit holding it is known: not per attempt, or a
      // collection between two attempts would take the table that an earlier attempt's commit (or the
      // next one) references.
      uncommitted.add(id)
      const ref = yield* tables.write(id, table).pipe(Effect.retry({ schedule: retrySchedule, while: (e) => e._tag === "Unavailable" || e._tag === "OutcomeUnknown" }))
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
      uncommitted.delete(id)
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

    const compactOnce = maintenance.compactOnce

    /**
     * A compactor process took the compactor role over: this writer stops compacting and collecting, and
     * from now on adopts that process's manifest versions (as a writer without a compactor does).
     */
    let handedOver = false
    const handOver = (e: Fenced) =>
      Effect.gen(function*() {
        if (handedOver) return
        handedOver = true
        yield* Effect.logInfo(`a compactor process (epoch ${e.newerEpoch}) took over compaction and garbage collection`)
        yield* Effect.forkIn(manifestFollower, dbScope)
      })
    /** A `Fenced` of the compactor role hands compaction over; one of the writer role stops the Db. */
    const onFenced = (e: Fenced) => (e.role === "compactor" ? handOver(e) : stop(e))

    const compactorLoop = Effect.gen(function*() {
      while (!handedOver) {
        yield* Queue.take(compactRequests)
        while (yield* compactOnce) {
          // keep compacting while there is work
        }
      }
    }).pipe(
      // An unreachable store delays compaction; the next request (or flush) tries again.
      Effect.catchTag("Unavailable", (e) => Effect.logWarning(`compaction failed: ${e.message}`)),
      Effect.catchTag("Fenced", (e) => (e.role === "compactor" ? handOver(e) : Effect.fail(e))),
      Effect.repeat({ while: () => !handedOver })
    )

    // --- garbage collection ----------------------------------------------------------------------

    const gcOnce = maintenance.gcOnce.pipe(
      // A newer writer exists: this one stops, whichever fiber found out; a newer compactor takes over.
      Effect.tapError((e) => (e._tag === "Fenced" ? onFenced(e) : Effect.void))
    )

    const gcLoop = Effect.gen(function*() {
      while (!handedOver) {
        yield* Effect.sleep(`${settings.gcIntervalMs} millis`)
        yield* gcOnce.pipe(
          Effect.catchTags({
            Unavailable: (e) => Effect.logWarning(`garbage collection failed: ${e.message}`),
            CorruptObject: (e) => Effect.logError(`garbage collection failed: ${e.message}`),
            Fenced: (e) => (e.role === "compactor" ? Effect.void : Effect.fail(e))
          })
        )
      }
    })

    // --- supervision -----------------------------------------------------------------------------

    /**
     * Runs an actor; a defect restarts it, a typed failure stops the Db. Restarts are bounded within a
     * window: an actor that ran `actorRestartWindowMs` since its last start has its budget back.
     */
    const supervise = <E extends DbError>(name: string, loop: Effect.Effect<void, E>) =>
      Effect.gen(function*() {
        for (let restarts = 0; ; restarts++) {
          const startedMs = yield* Clock.currentTimeMillis
          const exit = yield* Effect.exit(loop)
          if (Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause)) return
          if ((yield* Clock.currentTimeMillis) - startedMs >= Limits.actorRestartWindowMs) restarts = 0
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
    if (!settings.compactor) yield* Effect.forkScoped(manifestFollower)

    // Close: stop intake, drain the mailbox into the WAL, flush the memtable, stop the actors.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        // A Db that already stopped (fenced, or an actor gave up) has nothing left to flush.
        const healthy = stopped === undefined
        if (stopped === undefined) stopped = new DbClosed({ reason: "closed" })
        yield* Queue.end(mailbox)
        // Bounded: a store that stays unreachable must not hold the close forever (what was not written
        // is failed, never acknowledged).
        const drained = yield* Fiber.await(writerFiber).pipe(Effect.timeout(`${Limits.closeDrainMs} millis`), Effect.option)
        if (Option.isNone(drained)) yield* Fiber.interrupt(writerFiber)
        if (healthy && Option.isSome(drained)) {
          yield* freeze
          const done = yield* Deferred.make<void, DbError>()
          yield* Queue.offer(flushRequests, done)
          yield* Deferred.await(done).pipe(Effect.timeout(`${Limits.closeDrainMs} millis`), Effect.ignore)
        }
        yield* Queue.end(flushRequests)
        const flushed = yield* Fiber.await(flusherFiber).pipe(Effect.timeout(`${Limits.closeDrainMs} millis`), Effect.option)
        if (Option.isNone(flushed)) yield* Fiber.interrupt(flusherFiber)
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
        // A batch takes at most the budget less what the active memtable may hold unflushed (under
        // `memtableBytesMax`, as it is frozen past it): a batch taking more would wait for the active
        // memtable's share, which only a write past it (stuck behind this one) would flush.
        const permits = Math.min(bytes, settings.unflushedBytesMax - settings.memtableBytesMax + 1)
        const done = yield* Deferred.make<void, DbError>()
        // All or nothing, even when interrupted: the batch is queued and its seq answered, or nothing is
        // queued and its budget is returned. Only the waits (for budget, for the sequencer, for room in the
        // mailbox) can be interrupted, and an interrupted wait leaves nothing behind.
        const seq = yield* Effect.uninterruptibleMask((restore) =>
          Effect.gen(function*() {
            // A write waiting for budget must not outlive the Db: closing or stopping ends the wait.
            yield* restore(Effect.raceFirst(unflushed.take(permits), Deferred.await(stoppedSignal)))
            // Sequence numbers are assigned in mailbox order: take both under one lock.
            return yield* sequencer.withPermit(
              Effect.gen(function*() {
                // The Db may have stopped (or begun closing) while this write waited.
                if (stopped !== undefined) return yield* Effect.fail(stopped)
                const first = nextSeq
                const entries = options?.handOver === true ? ownEntries(batch, first) : copied(batch, first)
                if (!(yield* restore(Queue.offer(mailbox, { entries, bytes, permits, done })))) {
                  return yield* Effect.fail(stopped ?? new DbClosed({ reason: "closed" }))
                }
                nextSeq += batch.length
                return first + batch.length - 1
              })
            ).pipe(Effect.onError(() => unflushed.release(permits)))
          })
        )
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

    const { get, scan, scanRanges } = readPath(tables, settings.merge, currentView)

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
      scanRanges,
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
          ...tableTotals(s.manifest.value),
          tablesWritten: maintenance.counters.tables,
          compactions: maintenance.counters.compactions,
          objectsCollected: maintenance.counters.collected,
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
