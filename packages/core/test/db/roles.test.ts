/**
 * The Db split by role over one store: a writer without compaction, a compactor process with its own
 * epoch, and read-only followers with the whole `Db` interface.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Option, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import { Db, ObjectStore } from "@opendata/core"
import { b, crashableStore, s, small } from "./helpers.ts"

const scanAll = (db: Db.DbShape, options?: Db.ReadOptions) =>
  Effect.map(Stream.runCollect(db.scan(undefined, options)), (kvs) => kvs.map((kv) => `${s(kv.key)}=${s(kv.value)}`))

const failureTag = (exit: Exit.Exit<unknown, { readonly _tag: string }>) => {
  if (Exit.isSuccess(exit)) return "ok"
  const e = Exit.findErrorOption(exit)
  return Option.isSome(e) ? e.value._tag : "defect"
}

/** A writer whose compaction and collection run elsewhere. */
const split: Db.DbSettings = { ...small, compactor: false, gc: false, manifestPollMs: 1000 }

/** Opens a process-like component on the shared store in its own scope. */
const openIn = <A, E>(shared: ObjectStore.ObjectStoreShape, make: Effect.Effect<A, E, ObjectStore.ObjectStore | Scope.Scope>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const value = yield* make.pipe(Effect.provideService(ObjectStore.ObjectStore, shared), Scope.provide(scope))
    return { value, close: Scope.close(scope, Exit.void) }
  })

describe("Db roles", () => {
  it.effect("a compactor process compacts under its own epoch while the writer writes; nothing is lost", () =>
    Effect.gen(function*() {
      const store = yield* crashableStore
      const { db, close } = yield* store.open(split)
      const compactor = yield* openIn(store.shared, Db.makeCompactor({ ...small, manifestPollMs: 1000 }))
      const expected = new Map<string, string>()
      for (let round = 0; round < 6; round++) {
        for (let i = 0; i < 60; i++) {
          const k = `k${(round * 60 + i) % 97}`
          yield* db.put(b(k), b(`v${round}-${i}`))
          expected.set(k, `v${round}-${i}`)
        }
        yield* db.flush
        // The compactor's poll runs on the (test) clock; so does the writer's manifest follower.
        yield* TestClock.adjust("1 second")
      }
      while (yield* compactor.value.compact) {
        // compact what is left
      }
      const stats = yield* compactor.value.stats
      assert.isAtLeast(stats.compactions, 1)
      assert.strictEqual(stats.compactorEpoch, 1)
      assert.isBelow(stats.l0Tables, small.l0CompactionTrigger!)
      // The writer adopts the compactor's manifest, then collection (in the compactor) removes the inputs.
      yield* TestClock.adjust("1 second")
      const writerManifest = (yield* db.stats).manifestVersion
      assert.isAtLeast(writerManifest, stats.manifestVersion)
      assert.isAbove(yield* compactor.value.collectGarbage, 0)
      const want = [...expected.entries()].sort(([a], [c]) => (a < c ? -1 : 1)).map(([k, v]) => `${k}=${v}`)
      assert.deepStrictEqual(yield* scanAll(db), want)
      // The writer's own counters show it compacted and collected nothing itself.
      assert.strictEqual((yield* db.stats).compactions, 0)
      assert.strictEqual((yield* db.stats).objectsCollected, 0)
      yield* close
      yield* compactor.close
      // A new writer recovers all of it.
      const reopened = yield* store.open(split)
      assert.deepStrictEqual(yield* scanAll(reopened.db), want)
      yield* reopened.close
    }))

  it.effect("a newer compactor fences the older one: its commits fail and it stops", () =>
    Effect.gen(function*() {
      const store = yield* crashableStore
      const { db, close } = yield* store.open(split)
      const first = yield* openIn(store.shared, Db.makeCompactor({ ...small, manifestPollMs: 3_600_000 }))
      for (let i = 0; i < 200; i++) yield* db.put(b(`k${i}`), b("x".repeat(20)))
      yield* db.flush
      const second = yield* openIn(store.shared, Db.makeCompactor({ ...small, manifestPollMs: 3_600_000 }))
      assert.strictEqual((yield* second.value.stats).compactorEpoch, 2)
      assert.strictEqual(failureTag(yield* Effect.exit(first.value.compact)), "Fenced")
      assert.isTrue(yield* second.value.compact)
      assert.strictEqual((yield* db.get(b("k7"))) === undefined, false)
      yield* second.close
      yield* first.close
      yield* close
    }))

  it.effect("one compactor at a time: a writer that compacts hands over to a compactor process, and fences an older one", () =>
    Effect.gen(function*() {
      const store = yield* crashableStore
      // A compactor process first; a writer that compacts itself then opens and takes the role.
      const older = yield* openIn(store.shared, Db.makeCompactor({ ...small, manifestPollMs: 3_600_000 }))
      const { db, close } = yield* store.open(small)
      assert.strictEqual(failureTag(yield* Effect.exit(older.value.compact)), "Fenced")
      for (let i = 0; i < 200; i++) yield* db.put(b(`k${i % 50}`), b(`v${i}`))
      yield* db.flush
      const before = (yield* db.stats).compactions
      // A compactor process opened now takes the role over: the writer's compaction is fenced and stops.
      const newer = yield* openIn(store.shared, Db.makeCompactor({ ...small, manifestPollMs: 3_600_000 }))
      for (let i = 0; i < 50; i++) yield* db.put(b(`k${i % 50}`), b(`w${i}`))
      yield* db.flush
      assert.strictEqual(failureTag(yield* Effect.exit(db.compact)), "Fenced")
      assert.strictEqual((yield* db.stats).compactions, before)
      while (yield* newer.value.compact) {
        // the compactor process does the work now
      }
      // The writer still writes, and adopts the compactor's manifests (its follower polls every second).
      yield* db.put(b("after"), b("handover"))
      yield* TestClock.adjust("2 seconds")
      assert.isAtLeast((yield* db.stats).manifestVersion, (yield* newer.value.stats).manifestVersion)
      assert.strictEqual(s(yield* db.get(b("k49"))), "w49")
      assert.strictEqual(s(yield* db.get(b("after"))), "handover")
      yield* newer.close
      yield* older.close
      yield* close
    }))

  it.effect("a follower serves reads, snapshots and the change feed, and refuses writes with ReadOnly", () =>
    Effect.gen(function*() {
      const store = yield* crashableStore
      const { db, close } = yield* store.open(small)
      yield* db.put(b("a"), b("1"))
      const follower = yield* openIn(store.shared, Db.makeFollower({ pollIntervalMs: 1000 }))
      const f = follower.value
      assert.strictEqual(s(yield* f.get(b("a"))), "1")
      assert.strictEqual(failureTag(yield* Effect.exit(f.put(b("b"), b("2")))), "ReadOnly")
      assert.strictEqual(failureTag(yield* Effect.exit(f.write([{ _tag: "delete", key: b("a") }]))), "ReadOnly")

      const feed = yield* Effect.forkChild(Stream.runCollect(Stream.take(f.changes, 1)))
      yield* Effect.gen(function*() {
        const snap = yield* f.snapshot
        const written = yield* db.put(b("b"), b("2"))
        yield* db.put(b("a"), b("changed"))
        // Not seen until the next poll; then seen, while the snapshot stays as it was.
        assert.strictEqual(yield* f.get(b("b")), undefined)
        yield* TestClock.adjust("1 second")
        yield* f.awaitDurable(written.seq)
        assert.deepStrictEqual(yield* scanAll(f), ["a=changed", "b=2"])
        assert.deepStrictEqual(yield* scanAll(f, { snapshot: snap }), ["a=1"])
      }).pipe(Effect.scoped)
      const batches = yield* Fiber.join(feed)
      assert.strictEqual(batches.length, 1)
      assert.strictEqual(s(batches[0]!.entries[0]!.key), "b")
      // Through flushes, compactions and collection in the writer too.
      for (let i = 0; i < 150; i++) yield* db.put(b(`k${i % 40}`), b(`v${i}`))
      yield* db.flush
      while (yield* db.compact) {
        // compact everything
      }
      yield* db.collectGarbage
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* scanAll(f), yield* scanAll(db))
      yield* follower.close
      yield* close
    }))
})
