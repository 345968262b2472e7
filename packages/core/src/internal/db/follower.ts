/**
 * The read-only follower (RFC 0003, "Followers"): opens a Db's path from any process, reads the latest
 * manifest, replays the WAL after it, then every poll interval adopts newer manifest versions (dropping
 * from its memtable what they flushed) and reads the new WAL objects. It writes nothing and fences
 * nobody: it sees what the writer made durable, a poll interval later.
 *
 * It serves the whole `Db` interface, so that a product runs on it unchanged in a reader process: reads
 * through the shared read path, snapshots (a copy of the memtable, the manifest as it was), the change
 * feed as it finds batches in the WAL; `awaitDurable` waits until it has caught up; writes fail with
 * `ReadOnly`. Its snapshots pin nothing in other processes: the collector keeps what they read for its
 * lease (`gcMinAgeMs`).
 */
import { Effect, PubSub, Ref, Scope, Semaphore, Stream } from "effect"
import type { DbReadError, DbShape, DurableBatch, ReadOptions, ResolvedSettings, Snapshot } from "../../Db.ts"
import * as Limits from "../../limits.ts"
import { ObjectStore } from "../../ObjectStore.ts"
import { CorruptObject } from "../format/errors.ts"
import type { WalObject } from "../format/wal.ts"
import { decodeWal } from "../format/wal.ts"
import { ReadOnly } from "./errors.ts"
import { makeLatencyHistogram } from "./latency.ts"
import { type DbManifest, tableTotals } from "./manifest.ts"
import { makeManifestStore } from "./manifestStore.ts"
import { Memtable } from "./memtable.ts"
import type { ReadState } from "./readPath.ts"
import { readPath, tableAccess } from "./readPath.ts"
import { prefixed, walKey } from "./storeView.ts"
import type { Versioned } from "./versionedLog.ts"

/** Opens the follower at `settings.path`, reading the store again every `pollIntervalMs`. */
export const openFollower = (settings: ResolvedSettings, pollIntervalMs: number): Effect.Effect<DbShape, DbReadError, ObjectStore | Scope.Scope> =>
  Effect.gen(function*() {
    const store = prefixed(yield* ObjectStore, settings.path)
    const manifests = makeManifestStore(store, settings.simulationMutant)
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
        Effect.catch((e) => Effect.logWarning(`reader refresh failed: ${e.message}`)),
        // Supervised: a defect in one refresh is logged and the next poll tries again, so the follower
        // never silently stops following.
        Effect.catchDefect((d) => Effect.logError("reader refresh crashed; trying again at the next poll", d))
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
    const { get, scan, scanRanges } = readPath(tables, settings.merge, view)

    const readOnly = Effect.fail(new ReadOnly({ path: settings.path }))
    const db: DbShape = {
      put: () => readOnly,
      delete: () => readOnly,
      merge: () => readOnly,
      write: () => readOnly,
      get,
      scan,
      scanRanges,
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
          ...tableTotals(s.manifest.value),
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
    return db
  })
