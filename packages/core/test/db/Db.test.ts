import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, Logger, Option, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import { Db, ObjectStore } from "@opendata/core"
import { b, crashableStore, s, small } from "./helpers.ts"

const scanAll = (db: Db.DbShape, options?: Db.ReadOptions, range?: Db.ScanRange) =>
  Effect.map(Stream.runCollect(db.scan(range, options)), (kvs) => kvs.map((kv) => `${s(kv.key)}=${s(kv.value)}`))

const failureTag = (exit: Exit.Exit<unknown, { readonly _tag: string }>) => {
  if (Exit.isSuccess(exit)) return "ok"
  const e = Exit.findErrorOption(exit)
  return Option.isSome(e) ? e.value._tag : "defect"
}

/** A merge operator for tests: values are decimal integers, operands are added. */
const addition: Db.MergeOperator = (_key, existing, operands) =>
  b(String(operands.reduce((sum, o) => sum + Number(s(o)), existing === undefined ? 0 : Number(s(existing)))))

describe("Db", () => {
  it.effect("reads its own acknowledged writes: put, delete, merge, batch", () =>
    Effect.gen(function*() {
      const store = yield* crashableStore
      const { db, close } = yield* store.open({ ...small, merge: addition })
      yield* db.put(b("a"), b("1"))
      yield* db.put(b("b"), b("2"))
      yield* db.delete(b("b"))
      yield* db.merge(b("c"), b("5"))
      yield* db.merge(b("c"), b("7"))
      yield* db.put(b("d"), b("10"))
      yield* db.merge(b("d"), b("1"))
      const result = yield* db.write([
        { _tag: "put", key: b("e"), value: b("x") },
        { _tag: "put", key: b("f"), value: b("y") }
      ])
      assert.strictEqual(s(yield* db.get(b("a"))), "1")
      assert.strictEqual(yield* db.get(b("b")), undefined)
      assert.strictEqual(s(yield* db.get(b("c"))), "12")
      assert.strictEqual(s(yield* db.get(b("d"))), "11")
      assert.strictEqual(yield* db.get(b("zz")), undefined)
      assert.strictEqual(yield* db.durableSeq, result.seq)
      assert.deepStrictEqual(yield* scanAll(db), ["a=1", "c=12", "d=11", "e=x", "f=y"])
      assert.deepStrictEqual(yield* scanAll(db, undefined, { start: b("c"), end: b("e") }), ["c=12", "d=11"])
      yield* close
    }))

  it.effect("keeps a copy of what a write gives it, unless the write hands its buffers over", () =>
    Effect.gen(function*() {
      const store = yield* crashableStore
      const { db, close } = yield* store.open(small)
      const key = b("k")
      const value = b("before")
      yield* db.write([{ _tag: "put", key, value }])
      value.set(b("AFTER!"))
      key.set(b("z"))
      assert.strictEqual(s(yield* db.get(b("k"))), "before")
      yield* db.write([{ _tag: "put", key: b("h"), value: b("handed") }, { _tag: "delete", key: b("k") }], { handOver: true })
      assert.deepStrictEqual(yield* scanAll(db), ["h=handed"])
      yield* close
      const reopened = yield* store.open(small)
      assert.deepStrictEqual(yield* scanAll(reopened.db), ["h=handed"])
      yield* reopened.close
    }))

  it.effect("scans see each key's newest visible version in the memtable, at the current seq and at a snapshot", () =>
    Effect.gen(function*() {
      const store = yield* crashableStore
      const { db, close } = yield* store.open({ ...small, memtableBytesMax: 64 * 1024, merge: addition })
      yield* db.put(b("a"), b("1"))
      yield* db.merge(b("b"), b("10"))
      yield* Effect.gen(function*() {
        const first = yield* db.snapshot
        for (let i = 0; i < 50; i++) yield* db.put(b("a"), b(String(100 + i)))
        yield* db.merge(b("a"), b("2"))
        yield* db.merge(b("b"), b("5"))
        const second = yield* db.snapshot
        yield* db.put(b("a"), b("7"))
        yield* db.merge(b("a"), b("3"))
        yield* db.delete(b("b"))
        assert.deepStrictEqual(yield* scanAll(db), ["a=10"])
        assert.deepStrictEqual(yield* scanAll(db, { snapshot: first }), ["a=1", "b=10"])
        assert.deepStrictEqual(yield* scanAll(db, { snapshot: second }), ["a=151", "b=15"])
      }).pipe(Effect.scoped)
      yield* close
    }))

  it.effect("scanRanges reads several ranges as their scans one after the other would, over memtables, level 0 and sorted runs", () =>
    Effect.gen(function*() {
      const store = yield* crashableStore
      const { db, close } = yield* store.open({ ...small, merge: addition })
      // Keys spread over tables of every kind: written in rounds, with overwrites, deletes and merges.
      const key = (i: number) => `k${String(i).padStart(4, "0")}`
      for (let round = 0; round < 6; round++) {
        for (let i = round; i < 300; i += 3) yield* db.put(b(key(i)), b(`${round}-${i}`))
        for (let i = round; i < 300; i += 17) yield* db.delete(b(key(i)))
        for (let i = 0; i < 300; i += 29) yield* db.merge(b(`m${String(i).padStart(4, "0")}`), b("1"))
      }
      yield* db.compact
      for (let i = 0; i < 300; i += 7) yield* db.put(b(key(i)), b(`last-${i}`))
      const stats = yield* db.stats
      assert.isAbove(stats.tablesWritten, 3)
      const collect = (stream: Stream.Stream<Db.KeyValue, Db.DbReadError>) =>
        Effect.map(Stream.runCollect(stream), (kvs) => kvs.map((kv) => `${s(kv.key)}=${s(kv.value)}`))
      const cases: Array<ReadonlyArray<Db.ScanRange>> = [
        [],
        [{}],
        [{ end: b("k0010") }, { start: b("k0010"), end: b("k0011") }, { start: b("k0100"), end: b("k0150") }, { start: b("m") }],
        Array.from({ length: 60 }, (_, i) => ({ start: b(key(i * 5)), end: b(key(i * 5 + 2)) })),
        [{ start: b("a"), end: b("b") }, { start: b("k0299"), end: b("k0300") }, { start: b("z") }]
      ]
      for (const ranges of cases) {
        const one: Array<string> = []
        for (const range of ranges) one.push(...(yield* collect(db.scan(range))))
        assert.deepStrictEqual(yield* collect(db.scanRanges(ranges)), one)
      }
      // One view for all: a snapshot's ranges see the snapshot.
      yield* Effect.gen(function*() {
        const snapshot = yield* db.snapshot
        const ranges = [{ end: b("k0005") }, { start: b("k0200"), end: b("k0210") }]
        const before: Array<string> = []
        for (const range of ranges) before.push(...(yield* collect(db.scan(range))))
        for (let i = 0; i < 300; i++) yield* db.put(b(key(i)), b("after"))
        assert.deepStrictEqual(yield* collect(db.scanRanges(ranges, { snapshot })), before)
      }).pipe(Effect.scoped)
      yield* close
    }))

  it.effect("rejects invalid writes with InvalidWrite", () =>
    Effect.gen(function*() {
      const store = yield* crashableStore
      const { db, close } = yield* store.open()
      assert.strictEqual(failureTag(yield* Effect.exit(db.put(new Uint8Array(0), b("v")))), "InvalidWrite")
      assert.strictEqual(failureTag(yield* Effect.exit(db.write([]))), "InvalidWrite")
      assert.strictEqual(failureTag(yield* Effect.exit(db.merge(b("k"), b("1")))), "InvalidWrite")
      assert.strictEqual(failureTag(yield* Effect.exit(db.put(new Uint8Array(70_000), b("v")))), "InvalidWrite")
      yield* close
    }))

  it.effect("keeps every acknowledged write across flushes, compactions and a graceful reopen", () =>
    Effect.gen(function*() {
      const store = yield* crashableStore
      const first = yield* store.open()
      const expected = new Map<string, string>()
      for (let i = 0; i < 400; i++) {
        const key = `key-${String(i % 150).padStart(4, "0")}`
        const value = `value-${i}-${"x".repeat(i % 40)}`
        yield* first.db.put(b(key), b(value))
        expected.set(key, value)
      }
      const stats = yield* first.db.stats
      assert.isAbove(stats.tablesWritten, 3)
      assert.isAbove(stats.compactions, 0)
      const want = [...expected.entries()].sort(([x], [y]) => (x < y ? -1 : 1)).map(([k, v]) => `${k}=${v}`)
      assert.deepStrictEqual(yield* scanAll(first.db), want)
      yield* first.close
      const second = yield* store.open()
      assert.deepStrictEqual(yield* scanAll(second.db), want)
      for (const [k, v] of expected) assert.strictEqual(s(yield* second.db.get(b(k))), v)
      yield* second.close
    }))

  it.effect("keeps values of every size the memtable's arena holds differently (none to 100 KB), across flushes and a reopen", () =>
    Effect.gen(function*() {
      const store = yield* crashableStore
      // Room for the large values: a memtable of a few of them, a budget and tables of many.
      const settings: Db.DbSettings = { ...small, memtableBytesMax: 128 * 1024, unflushedBytesMax: 1024 * 1024, sstBytesTarget: 512 * 1024 }
      const first = yield* store.open(settings)
      // Small ones share the arena's buffers; 4-64 KB ones may open a buffer (the very first included);
      // larger ones get a buffer each.
      const sizes = [20_000, 0, 3, 4_000, 5_000, 70_000, 40, 64 * 1024 - 16, 100_000, 9_000]
      const expected = new Map<string, string>()
      for (let i = 0; i < 60; i++) {
        const key = `big-${String(i % 25).padStart(3, "0")}`
        const value = `${i}:` + String.fromCharCode(97 + (i % 26)).repeat(sizes[i % sizes.length]!)
        yield* first.db.put(b(key), b(value))
        expected.set(key, value)
      }
      for (const [k, v] of expected) assert.strictEqual(s(yield* first.db.get(b(k))), v)
      const stats = yield* first.db.stats
      assert.isAbove(stats.tablesWritten, 3)
      yield* first.close
      const second = yield* store.open(settings)
      for (const [k, v] of expected) assert.strictEqual(s(yield* second.db.get(b(k))), v)
      assert.strictEqual((yield* scanAll(second.db)).length, expected.size)
      yield* second.close
    }))

  it.effect("takes a batch of about the whole unflushed budget while the active memtable holds some of it", () =>
    Effect.gen(function*() {
      const store = yield* crashableStore
      // The small settings: a 64 KiB budget, a 2 KiB memtable. The first write stays in the active
      // memtable; the second is larger than what is left of the budget (it once waited forever).
      const { db, close } = yield* store.open(small)
      yield* db.put(b("a"), b("small"))
      const large = "x".repeat(64 * 1024 - 16)
      yield* db.put(b("b"), b(large))
      yield* db.put(b("c"), b("after"))
      assert.strictEqual(s(yield* db.get(b("b"))), large)
      assert.strictEqual(s(yield* db.get(b("c"))), "after")
      yield* close
    }))

  it.effect("loses no acknowledged write in a crash: reopening replays the WAL", () =>
    Effect.gen(function*() {
      const store = yield* crashableStore
      const first = yield* store.open()
      for (let i = 0; i < 50; i++) yield* first.db.put(b(`k${i}`), b(`v${i}`))
      // Writes that were never acknowledged may or may not survive; the acknowledged ones must.
      const unacknowledged = yield* Effect.forkChild(first.db.put(b("in-flight"), b("maybe")))
      yield* store.crash
      yield* Fiber.interrupt(unacknowledged)
      const second = yield* store.open()
      for (let i = 0; i < 50; i++) assert.strictEqual(s(yield* second.db.get(b(`k${i}`))), `v${i}`)
      yield* second.db.put(b("after"), b("crash"))
      yield* store.crash
      const third = yield* store.open()
      assert.strictEqual(s(yield* third.db.get(b("after"))), "crash")
      assert.strictEqual(s(yield* third.db.get(b("k49"))), "v49")
      yield* third.close
    }))

  it.live("a WAL replay that takes a while logs its progress and how long it took", () =>
    Effect.gen(function*() {
      const store = yield* crashableStore
      // A memtable large enough that nothing is flushed before the crash: all 40 WAL objects replay.
      const first = yield* store.open({ ...small, memtableBytesMax: 60_000 })
      for (let i = 0; i < 40; i++) yield* first.db.put(b(`k${i}`), b(`v${i}`))
      yield* store.crash
      // Reopened over a store whose reads take 40 ms: replaying 40 WAL objects takes over a second.
      const slow: ObjectStore.ObjectStoreShape = { ...store.shared, get: (k, r) => Effect.delay(store.shared.get(k, r), "40 millis") }
      const lines: Array<string> = []
      const capture = Logger.make((options) => {
        lines.push(String(options.message))
      })
      yield* Effect.scoped(
        Effect.gen(function*() {
          const db = yield* Db.make(small)
          assert.strictEqual(s(yield* db.get(b("k39"))), "v39")
        }).pipe(Effect.provideService(ObjectStore.ObjectStore, slow), Effect.provide(Logger.layer([capture])))
      )
      assert.isTrue(lines.some((l) => /^replaying the WAL: \d+ of \d+ objects, \d+ entries/.test(l)), lines.join("\n"))
      assert.isTrue(lines.some((l) => /^replayed \d+ WAL objects in \d+ ms, up to seq \d+$/.test(l)), lines.join("\n"))
    }))

  it.effect("fences the old writer when a new writer opens; the zombie's writes never become visible", () =>
    Effect.gen(function*() {
      const store = yield* crashableStore
      const old = yield* store.open()
      yield* old.db.put(b("k"), b("old"))
      const current = yield* store.open()
      assert.strictEqual(s(yield* current.db.get(b("k"))), "old")
      // The old writer's next WAL write finds its slot taken by the fence.
      const zombie = yield* Effect.exit(old.db.put(b("zombie"), b("write")))
      assert.strictEqual(failureTag(zombie), "Fenced")
      assert.strictEqual(failureTag(yield* Effect.exit(old.db.put(b("zombie2"), b("write")))), "Fenced")
      yield* current.db.put(b("k"), b("new"))
      yield* current.close
      const reader = yield* store.open()
      assert.strictEqual(s(yield* reader.db.get(b("k"))), "new")
      assert.strictEqual(yield* reader.db.get(b("zombie")), undefined)
      yield* reader.close
      yield* old.close
    }))

  it.effect("keeps a zombie fenced after garbage collection has deleted the WAL it last saw", () =>
    Effect.gen(function*() {
      // The shape of SlateDB #352/#1622: the new writer flushes, compacts and collects the WAL objects; a
      // slow zombie must still not be able to write into a freed WAL slot and acknowledge.
      const store = yield* crashableStore
      const zombie = yield* store.open()
      yield* zombie.db.put(b("before"), b("fence"))
      const writer = yield* store.open()
      for (let i = 0; i < 200; i++) yield* writer.db.put(b(`k${i % 40}`), b(`v${i}`))
      yield* writer.db.flush
      while (yield* writer.db.compact) {
        // compact everything
      }
      const collected = yield* writer.db.collectGarbage
      assert.isAbove(collected, 0)
      const walKeys = (yield* Stream.runCollect(store.shared.list("wal/"))).map((e) => e.key)
      // The zombie's data WAL (slot 2) is collected; both fences (1: the zombie's, 3: the writer's) stay.
      assert.notInclude(walKeys.join(","), "00000000000000000002.wal")
      assert.include(walKeys.join(","), "00000000000000000003.wal")
      assert.strictEqual(failureTag(yield* Effect.exit(zombie.db.put(b("zombie"), b("write")))), "Fenced")
      yield* writer.close
      const reader = yield* store.open()
      assert.strictEqual(yield* reader.db.get(b("zombie")), undefined)
      assert.strictEqual(s(yield* reader.db.get(b("before"))), "fence")
      assert.strictEqual(s(yield* reader.db.get(b("k39"))), "v199")
      yield* reader.close
      yield* zombie.close
    }))

  it.effect("a snapshot stays stable across writes, compaction and garbage collection", () =>
    Effect.gen(function*() {
      const store = yield* crashableStore
      const { db, close } = yield* store.open()
      for (let i = 0; i < 60; i++) yield* db.put(b(`k${String(i).padStart(2, "0")}`), b("v1"))
      const scope = yield* Scope.make()
      const snapshot = yield* db.snapshot.pipe(Scope.provide(scope))
      const before = yield* scanAll(db, { snapshot })
      for (let i = 0; i < 60; i++) yield* db.put(b(`k${String(i).padStart(2, "0")}`), b("v2-" + "y".repeat(30)))
      yield* db.delete(b("k00"))
      yield* db.flush
      while (yield* db.compact) {
        // compact everything
      }
      yield* db.collectGarbage
      assert.deepStrictEqual(yield* scanAll(db, { snapshot }), before)
      assert.strictEqual(s(yield* db.get(b("k01"), { snapshot })), "v1")
      assert.strictEqual(s(yield* db.get(b("k00"), { snapshot })), "v1")
      assert.strictEqual(yield* db.get(b("k00")), undefined)
      assert.strictEqual(s(yield* db.get(b("k01"))), "v2-" + "y".repeat(30))
      yield* Scope.close(scope, Exit.void)
      // Released: garbage collection may now take what only the snapshot needed.
      assert.isAbove(yield* db.collectGarbage, 0)
      yield* close
    }))

  it.effect("a write that does not await durability returns its seq and a durable effect", () =>
    Effect.gen(function*() {
      const store = yield* crashableStore
      const { db, close } = yield* store.open()
      const first = yield* db.put(b("a"), b("1"), { awaitDurable: false })
      const second = yield* db.put(b("b"), b("2"), { awaitDurable: false })
      assert.strictEqual(second.seq, first.seq + 1)
      yield* second.durable
      assert.isAtLeast(yield* db.durableSeq, second.seq)
      yield* db.awaitDurable(first.seq)
      assert.strictEqual(s(yield* db.get(b("b"))), "2")
      yield* close
    }))

  it.effect("publishes durable batches on the change feed, in seq order", () =>
    Effect.gen(function*() {
      const store = yield* crashableStore
      const { db, close } = yield* store.open()
      const collected = yield* Effect.forkChild(Stream.runCollect(Stream.take(db.changes, 3)))
      yield* Effect.yieldNow
      yield* db.put(b("a"), b("1"))
      yield* db.write([{ _tag: "put", key: b("b"), value: b("2") }, { _tag: "delete", key: b("a") }])
      yield* db.put(b("c"), b("3"))
      const batches = yield* Fiber.join(collected)
      assert.deepStrictEqual(batches.map((x) => [x.firstSeq, x.lastSeq]), [[1, 1], [2, 3], [4, 4]])
      assert.deepStrictEqual(batches[1]!.entries.map((e) => e.kind), ["put", "delete"])
      yield* close
    }))

  it.effect("batches concurrent writers into few WAL objects (group commit)", () =>
    Effect.gen(function*() {
      const store = yield* crashableStore
      const { db, close } = yield* store.open({ ...small, memtableBytesMax: 1 << 20, unflushedBytesMax: 1 << 22 })
      yield* Effect.forEach(Array.from({ length: 200 }, (_, i) => i), (i) => db.put(b(`k${i}`), b(`v${i}`)), {
        concurrency: "unbounded",
        discard: true
      })
      const stats = yield* db.stats
      assert.isBelow(stats.walObjectsWritten, 20)
      assert.strictEqual(stats.durableSeq, 200)
      yield* close
    }))

  it.effect("closing drains: writes accepted before close are durable after it", () =>
    Effect.gen(function*() {
      const store = yield* crashableStore
      const first = yield* store.open()
      const results = yield* Effect.forEach(Array.from({ length: 30 }, (_, i) => i), (i) =>
        first.db.put(b(`k${i}`), b(`v${i}`), { awaitDurable: false }))
      yield* first.close
      for (const r of results) yield* r.durable
      const second = yield* store.open()
      assert.strictEqual((yield* scanAll(second.db)).length, 30)
      assert.strictEqual(failureTag(yield* Effect.exit(first.db.put(b("late"), b("x")))), "DbClosed")
      yield* second.close
    }))

  it.effect("runs on the memory store as a Layer", () =>
    Effect.gen(function*() {
      const db = yield* Db.Db
      yield* db.put(b("x"), b("y"))
      assert.strictEqual(s(yield* db.get(b("x"))), "y")
    }).pipe(Effect.provide(Db.layer({ flushIntervalMs: 0 }).pipe(Layer.provide(ObjectStore.layerMemory)))))

  it.effect("a read-only follower follows the writer through flushes, compactions and garbage collection", () =>
    Effect.gen(function*() {
      const store = yield* crashableStore
      const { db, close } = yield* store.open()
      yield* db.put(b("a"), b("1"))
      const follower = yield* Db.makeFollower({ pollIntervalMs: 1000 }).pipe(
        Effect.provideService(ObjectStore.ObjectStore, store.shared)
      )
      assert.strictEqual(s(yield* follower.get(b("a"))), "1")
      for (let i = 0; i < 120; i++) yield* db.put(b(`k${i % 30}`), b(`v${i}`))
      yield* db.delete(b("a"))
      assert.strictEqual(s(yield* follower.get(b("k29"))), undefined) // not polled yet
      yield* TestClock.adjust("1 second")
      assert.strictEqual(s(yield* follower.get(b("k29"))), "v119")
      assert.strictEqual(yield* follower.get(b("a")), undefined)
      assert.strictEqual(yield* follower.durableSeq, yield* db.durableSeq)
      yield* db.flush
      while (yield* db.compact) {
        // compact everything
      }
      yield* db.collectGarbage
      yield* db.put(b("late"), b("x"))
      yield* TestClock.adjust("1 second")
      const fromFollower = yield* Stream.runCollect(follower.scan())
      const fromWriter = yield* Stream.runCollect(db.scan())
      assert.deepStrictEqual(fromFollower.map((kv) => `${s(kv.key)}=${s(kv.value)}`), fromWriter.map((kv) => `${s(kv.key)}=${s(kv.value)}`))
      yield* close
    }))

  it.effect("starts WAL writes no closer than flushIntervalMs, and batches what waits meanwhile (TestClock)", () =>
    Effect.gen(function*() {
      const store = yield* crashableStore
      const { db, close } = yield* store.open({ ...small, flushIntervalMs: 100 })
      const first = yield* Effect.forkChild(db.put(b("a"), b("1")))
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(first)
      // The next write waits out the interval; writes arriving meanwhile join its WAL object.
      const waiting = yield* Effect.forEach(["b", "c", "d"], (k) => Effect.forkChild(db.put(b(k), b("2"))))
      yield* TestClock.adjust("50 millis")
      assert.strictEqual((yield* db.stats).walObjectsWritten, 1)
      yield* TestClock.adjust("60 millis")
      for (const f of waiting) yield* Fiber.join(f)
      assert.strictEqual((yield* db.stats).walObjectsWritten, 2)
      yield* close
    }))

  it.effect("suspends writers while unflushed bytes are over their bound (backpressure)", () =>
    Effect.gen(function*() {
      const store = yield* crashableStore
      // Level 0 is full and nothing compacts: flushes wait, unflushed bytes pile up, writers suspend.
      const { db, close } = yield* store.open({
        ...small,
        compactor: false,
        l0CompactionTrigger: 1,
        l0Max: 2,
        memtableBytesMax: 1024,
        unflushedBytesMax: 4096
      })
      const value = new Uint8Array(200)
      let acknowledged = 0
      const writer = yield* Effect.forkChild(
        Effect.forEach(Array.from({ length: 100 }, (_, i) => i), (i) =>
          Effect.tap(db.put(b(`k${i}`), value), () => Effect.sync(() => acknowledged++)), { discard: true })
      )
      for (let i = 0; i < 50; i++) yield* TestClock.adjust("100 millis")
      assert.isBelow(acknowledged, 100)
      assert.isAbove(acknowledged, 0)
      // Compaction frees level 0; the flushes and then the writers go on.
      while (yield* db.compact) {
        // compact everything
      }
      for (let i = 0; i < 1000 && acknowledged < 100; i++) {
        yield* TestClock.adjust("100 millis")
        yield* db.compact
      }
      yield* Fiber.join(writer)
      assert.strictEqual(acknowledged, 100)
      // Closing flushes the memtable, which needs room in level 0.
      while (yield* db.compact) {
        // compact everything
      }
      yield* close
    }))

  describe("supervision", () => {
    /** The memory store, where writing a table dies (a defect, not an error) the first `times` times. */
    const dyingTables = (times: number) =>
      Effect.gen(function*() {
        const inner = yield* ObjectStore.ObjectStore.use(Effect.succeed).pipe(Effect.provide(ObjectStore.layerMemory))
        let left = times
        const store: ObjectStore.ObjectStoreShape = {
          ...inner,
          putIfAbsent: (key, body, options) =>
            key.startsWith("sst/") && left-- > 0 ? Effect.die(new Error("injected defect")) : inner.putIfAbsent(key, body, options)
        }
        return store
      })

    it.effect("restarts a crashed actor, which then carries on", () =>
      Effect.gen(function*() {
        const store = yield* dyingTables(2)
        const db = yield* Db.make({ ...small, compactor: false }).pipe(Effect.provideService(ObjectStore.ObjectStore, store))
        for (let i = 0; i < 20; i++) yield* db.put(b(`k${i}`), b(`v${i}`))
        // Writing the table crashes the flusher twice (the flush reports the crash); the restarted flusher
        // then writes it.
        assert.isTrue(Exit.isFailure(yield* Effect.exit(db.flush)))
        yield* db.flush
        assert.isAbove((yield* db.stats).l0Tables, 0)
        yield* db.put(b("after"), b("restart"))
        assert.strictEqual(s(yield* db.get(b("k19"))), "v19")
        assert.strictEqual(s(yield* db.get(b("after"))), "restart")
      }).pipe(Effect.scoped))

    it.effect("a write whose WAL object the writer crashed on fails instead of waiting forever", () =>
      Effect.gen(function*() {
        const inner = yield* ObjectStore.ObjectStore.use(Effect.succeed).pipe(Effect.provide(ObjectStore.layerMemory))
        let armed = false
        const store: ObjectStore.ObjectStoreShape = {
          ...inner,
          putIfAbsent: (key, body, options) =>
            key.startsWith("wal/") && armed ? Effect.die(new Error("injected defect")) : inner.putIfAbsent(key, body, options)
        }
        const db = yield* Db.make(small).pipe(Effect.provideService(ObjectStore.ObjectStore, store))
        yield* db.put(b("k"), b("v"))
        armed = true
        // Crashed between starting its WAL write and applying it, the writer cannot go on consistently.
        assert.strictEqual(failureTag(yield* Effect.exit(db.put(b("k2"), b("v")))), "DbClosed")
        assert.strictEqual(failureTag(yield* Effect.exit(db.put(b("k3"), b("v")))), "DbClosed")
      }).pipe(Effect.scoped))

    it.effect("a write waiting for the unflushed budget fails when the Db closes, and the close ends", () =>
      Effect.gen(function*() {
        const inner = yield* ObjectStore.ObjectStore.use(Effect.succeed).pipe(Effect.provide(ObjectStore.layerMemory))
        // Tables cannot be written: nothing is ever flushed, so the budget is never given back.
        const store: ObjectStore.ObjectStoreShape = {
          ...inner,
          putIfAbsent: (key, body, options) =>
            key.startsWith("sst/")
              ? Effect.fail(new ObjectStore.Unavailable({ operation: "putIfAbsent", key, reason: "scripted" }))
              : inner.putIfAbsent(key, body, options)
        }
        const clock = yield* Effect.forkChild(Effect.forever(Effect.andThen(TestClock.adjust("10 millis"), Effect.yieldNow)))
        const scope = yield* Scope.make()
        const db = yield* Db.make({ ...small, memtableBytesMax: 1024, unflushedBytesMax: 2048 }).pipe(
          Effect.provideService(ObjectStore.ObjectStore, store),
          Scope.provide(scope)
        )
        for (let i = 0; i < 6; i++) yield* db.put(b(`k${i}`), b("x".repeat(300)))
        const waiting = yield* Effect.forkChild(db.put(b("late"), b("x".repeat(300))))
        yield* Effect.sleep("100 millis")
        yield* Scope.close(scope, Exit.void)
        assert.strictEqual(failureTag(yield* Fiber.await(waiting)), "DbClosed")
        yield* Fiber.interrupt(clock)
      }))

    it.effect("a write interrupted while it waits for budget queues nothing, takes no seq and gives its budget back", () =>
      Effect.gen(function*() {
        const inner = yield* ObjectStore.ObjectStore.use(Effect.succeed).pipe(Effect.provide(ObjectStore.layerMemory))
        // WAL writes wait at a gate while it is closed.
        let gate: Deferred.Deferred<void> | undefined
        const store: ObjectStore.ObjectStoreShape = {
          ...inner,
          putIfAbsent: (key, body, options) =>
            Effect.andThen(
              Effect.suspend(() => gate === undefined || !key.endsWith(".wal") ? Effect.void : Deferred.await(gate)),
              inner.putIfAbsent(key, body, options)
            )
        }
        const db = yield* Db.make({ ...small, memtableBytesMax: 100, unflushedBytesMax: 400 }).pipe(Effect.provideService(ObjectStore.ObjectStore, store))
        gate = yield* Deferred.make<void>()
        const first = yield* db.write([{ _tag: "put", key: b("k0"), value: b("x".repeat(300)) }], { awaitDurable: false })
        const waiting = yield* Effect.forkChild(db.put(b("late"), b("x".repeat(300))))
        for (let i = 0; i < 50; i++) yield* Effect.yieldNow
        yield* Fiber.interrupt(waiting)
        yield* Deferred.succeed(gate, undefined)
        gate = undefined
        yield* first.durable
        const next = yield* db.put(b("k1"), b("x".repeat(300)))
        assert.strictEqual(next.seq, first.seq + 1)
        assert.strictEqual(yield* db.get(b("late")), undefined)
        assert.deepStrictEqual(yield* db.get(b("k1")), b("x".repeat(300)))
      }).pipe(Effect.scoped))

    it.effect("closes the Db once an actor keeps crashing past its restart budget", () =>
      Effect.gen(function*() {
        const store = yield* dyingTables(1000)
        const db = yield* Db.make({ ...small, compactor: false }).pipe(Effect.provideService(ObjectStore.ObjectStore, store))
        yield* db.put(b("k"), b("v"))
        for (let i = 0; i < 10; i++) yield* Effect.exit(db.flush)
        assert.strictEqual(failureTag(yield* Effect.exit(db.put(b("k2"), b("v")))), "DbClosed")
      }).pipe(Effect.scoped))
  })
})
