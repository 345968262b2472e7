import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, Option, Stream } from "effect"
import { TestClock } from "effect/testing"
import { Db, ObjectStore } from "@opendata/core"
import { EventStore, layer } from "@opendata/eventstore"

const b = (s: string) => new TextEncoder().encode(s)
const s = (x: Uint8Array) => new TextDecoder().decode(x)
const rec = (value: string, extra: Partial<EventStore.RecordInput> = {}): EventStore.RecordInput => ({ value: b(value), ...extra })

const store = (settings: Parameters<typeof layer>[0] = {}) =>
  layer({ tailHeartbeatMs: 1000, ...settings }).pipe(
    Layer.provide(Db.layer({ path: "eventstore/", flushIntervalMs: 0, memtableBytesMax: 64 * 1024 })),
    Layer.provide(ObjectStore.layerMemory)
  )

const failureTag = (exit: Exit.Exit<unknown, { readonly _tag: string }>) => {
  if (Exit.isSuccess(exit)) return "ok"
  const e = Exit.findErrorOption(exit)
  return Option.isSome(e) ? e.value._tag : "defect"
}

describe("EventStore", () => {
  it.effect("appends atomically with contiguous offsets and reads them back", () =>
    Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      const first = yield* es.append("orders/1", [rec("a", { headers: { h: "1" }, eventTime: 5 }), rec("b")])
      assert.deepStrictEqual(first, { offsets: [0, 1], next: 2 })
      const second = yield* es.append("orders/1", [rec("c")])
      assert.deepStrictEqual(second, { offsets: [2], next: 3 })
      const read = yield* es.read("orders/1")
      assert.deepStrictEqual(read.records.map((r) => [r.offset, s(r.value)]), [[0, "a"], [1, "b"], [2, "c"]])
      assert.deepStrictEqual(read.records[0]!.headers, { h: "1" })
      assert.strictEqual(read.records[0]!.eventTime, 5)
      assert.strictEqual(read.next, 3)
      const page = yield* es.read("orders/1", { from: 1, limit: 1 })
      assert.deepStrictEqual(page.records.map((r) => r.offset), [1])
      assert.strictEqual(page.next, 2)
      const meta = yield* es.meta("orders/1")
      assert.strictEqual(meta.nextOffset, 3)
      assert.strictEqual(meta.records, 3)
      assert.strictEqual(meta.bytes, 5)
      assert.strictEqual(failureTag(yield* Effect.exit(es.read("nope"))), "LogNotFound")
    }).pipe(Effect.provide(store())))

  it.effect("rejects bad input and over-limit batches, appending nothing", () =>
    Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      assert.strictEqual(failureTag(yield* Effect.exit(es.append("", [rec("a")]))), "InvalidInput")
      assert.strictEqual(failureTag(yield* Effect.exit(es.append("x".repeat(513), [rec("a")]))), "InvalidInput")
      assert.strictEqual(failureTag(yield* Effect.exit(es.append("k", []))), "InvalidInput")
      assert.strictEqual(failureTag(yield* Effect.exit(es.append("k", Array.from({ length: 1001 }, () => rec("a"))))), "LimitExceeded")
      assert.strictEqual(failureTag(yield* Effect.exit(es.append("k", [{ value: new Uint8Array(1024 * 1024 + 1) }]))), "LimitExceeded")
      assert.strictEqual(failureTag(yield* Effect.exit(es.append("k", [rec("a", { eventTime: -1 })]))), "InvalidInput")
      assert.strictEqual(failureTag(yield* Effect.exit(es.meta("k"))), "LogNotFound")
    }).pipe(Effect.provide(store())))

  it.effect("expectedOffset, fencing tokens and idempotent producers", () =>
    Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      yield* es.append("k", [rec("a")], { expectedOffset: 0 })
      const conflict = yield* Effect.flip(es.append("k", [rec("b")], { expectedOffset: 0 }))
      assert.strictEqual(conflict._tag, "OffsetConflict")
      assert.strictEqual((conflict as EventStore.OffsetConflict).next, 1)
      yield* es.setFencingToken("k", "t1")
      assert.strictEqual(failureTag(yield* Effect.exit(es.append("k", [rec("b")]))), "FencingConflict")
      yield* es.append("k", [rec("b")], { fencingToken: "t1" })
      yield* es.setFencingToken("k", "t2", "t1")
      assert.strictEqual(failureTag(yield* Effect.exit(es.append("k", [rec("c")], { fencingToken: "t1" }))), "FencingConflict")
      assert.strictEqual(failureTag(yield* Effect.exit(es.setFencingToken("k", "t3", "t1"))), "FencingConflict")
      const once = yield* es.append("k", [rec("c"), rec("d")], { fencingToken: "t2", producerId: "p", producerSeq: 7 })
      const retry = yield* es.append("k", [rec("c"), rec("d")], { fencingToken: "t2", producerId: "p", producerSeq: 7 })
      assert.deepStrictEqual(retry, once)
      assert.strictEqual((yield* es.meta("k")).nextOffset, 4)
      assert.strictEqual(failureTag(yield* Effect.exit(es.append("k", [rec("e")], { fencingToken: "t2", producerId: "p", producerSeq: 3 }))), "InvalidInput")
    }).pipe(Effect.provide(store())))

  it.effect("reads from a timestamp: the first record at or after it", () =>
    Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      yield* TestClock.setTime(1_000)
      yield* es.append("k", [rec("a"), rec("b")])
      yield* TestClock.setTime(2_000)
      yield* es.append("k", [rec("c")])
      yield* TestClock.setTime(3_000)
      yield* es.append("k", [rec("d")])
      assert.deepStrictEqual((yield* es.read("k", { fromTime: 1_500 })).records.map((r) => s(r.value)), ["c", "d"])
      assert.deepStrictEqual((yield* es.read("k", { fromTime: 2_000 })).records.map((r) => r.timestamp), [2_000, 3_000])
      assert.deepStrictEqual((yield* es.read("k", { fromTime: 9_000 })).records, [])
    }).pipe(Effect.provide(store())))

  it.effect("trims, deletes, and says where a trimmed log starts", () =>
    Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      yield* es.append("k", Array.from({ length: 10 }, (_, i) => rec(`v${i}`)))
      const meta = yield* es.trim("k", 4)
      assert.strictEqual(meta.firstOffset, 4)
      assert.strictEqual(meta.records, 6)
      const below = yield* Effect.flip(es.read("k", { from: 2 }))
      assert.strictEqual(below._tag, "OffsetTrimmed")
      assert.strictEqual((below as EventStore.OffsetTrimmed).first, 4)
      assert.deepStrictEqual((yield* es.read("k")).records.map((r) => r.offset), [4, 5, 6, 7, 8, 9])
      yield* es.delete("k")
      assert.strictEqual(failureTag(yield* Effect.exit(es.meta("k"))), "LogNotFound")
      const again = yield* es.append("k", [rec("new")])
      assert.deepStrictEqual(again.offsets, [0])
      assert.deepStrictEqual((yield* es.read("k")).records.map((r) => s(r.value)), ["new"])
    }).pipe(Effect.provide(store())))

  it.effect("lists logs by prefix, a page at a time", () =>
    Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      for (const k of ["a/1", "a/2", "a/3", "b/1", "a"]) yield* es.append(k, [rec("x")])
      const first = yield* es.list({ prefix: "a/", limit: 2 })
      assert.deepStrictEqual(first.logs.map((l) => l.key), ["a/1", "a/2"])
      const second = yield* es.list({ prefix: "a/", limit: 2, cursor: first.cursor })
      assert.deepStrictEqual(second.logs.map((l) => l.key), ["a/3"])
      assert.strictEqual(second.cursor, undefined)
      assert.deepStrictEqual((yield* es.list()).logs.map((l) => l.key), ["a", "a/1", "a/2", "a/3", "b/1"])
    }).pipe(Effect.provide(store())))

  it.effect("consumer groups commit offsets and report lag", () =>
    Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      yield* es.append("k", Array.from({ length: 5 }, (_, i) => rec(`v${i}`)))
      assert.deepStrictEqual(yield* es.fetchOffset("g", "k"), { group: "g", key: "k", offset: undefined, lag: 5 })
      assert.deepStrictEqual(yield* es.commitOffset("g", "k", 3), { group: "g", key: "k", offset: 3, lag: 2 })
      assert.strictEqual(failureTag(yield* Effect.exit(es.commitOffset("g", "k", 9))), "InvalidInput")
      assert.strictEqual(failureTag(yield* Effect.exit(es.commitOffset("g", "nope", 0))), "LogNotFound")
    }).pipe(Effect.provide(store())))

  it.effect("enforces retention by age and by bytes", () =>
    Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      yield* TestClock.setTime(10_000)
      yield* es.append("aged", [rec("old1"), rec("old2")])
      yield* es.append("sized", Array.from({ length: 10 }, () => rec("0123456789")))
      yield* TestClock.setTime(20_000)
      yield* es.append("aged", [rec("new")])
      yield* es.setRetention("aged", { maxAgeMs: 5_000 })
      yield* es.setRetention("sized", { maxBytes: 35 })
      assert.strictEqual(yield* es.enforceRetention, 2)
      assert.deepStrictEqual((yield* es.read("aged")).records.map((r) => s(r.value)), ["new"])
      const sized = yield* es.meta("sized")
      assert.isAtMost(sized.bytes, 35)
      assert.strictEqual(sized.firstOffset, 7)
    }).pipe(Effect.provide(store())))

  it.effect("tails a log: catch-up from storage, then live appends, no gap and no duplicate", () =>
    Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      yield* es.append("k", [rec("0"), rec("1")])
      const seen: Array<number> = []
      const fiber = yield* Effect.forkChild(
        es.tail("k", { _tag: "offset", offset: 0 }).pipe(
          Stream.filter((e): e is Extract<EventStore.TailEvent, { _tag: "records" }> => e._tag === "records"),
          Stream.flatMap((e) => Stream.fromIterable(e.records)),
          Stream.tap((r) => Effect.sync(() => seen.push(r.offset))),
          Stream.take(6),
          Stream.runDrain
        )
      )
      yield* Effect.yieldNow
      for (let i = 2; i < 6; i++) yield* es.append("k", [rec(String(i))])
      yield* Fiber.join(fiber)
      assert.deepStrictEqual(seen, [0, 1, 2, 3, 4, 5])
    }).pipe(Effect.provide(store())))

  it.effect("a slow tail subscriber falls back to storage and still sees every record once", () =>
    Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      const total = 1500 // more batches than the change feed holds for a subscriber that does not pull
      const release = yield* Deferred.make<void>()
      const seen: Array<number> = []
      const fiber = yield* Effect.forkChild(
        es.tail("k", { _tag: "now" }).pipe(
          Stream.filter((e): e is Extract<EventStore.TailEvent, { _tag: "records" }> => e._tag === "records"),
          Stream.flatMap((e) => Stream.fromIterable(e.records)),
          Stream.tap((r) =>
            Effect.andThen(Effect.sync(() => seen.push(r.offset)), seen.length === 0 ? Deferred.await(release) : Effect.void)
          ),
          Stream.take(total),
          Stream.runDrain
        )
      )
      yield* Effect.yieldNow
      for (let i = 0; i < total; i++) yield* es.append("k", [rec(String(i))])
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(fiber)
      assert.deepStrictEqual(seen, Array.from({ length: total }, (_, i) => i))
    }).pipe(Effect.provide(store())))

  it.effect("sends heartbeats with the next offset while idle", () =>
    Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      yield* es.append("k", [rec("a")])
      const fiber = yield* Effect.forkChild(
        es.tail("k", { _tag: "now" }).pipe(Stream.take(1), Stream.runCollect)
      )
      yield* TestClock.adjust("1500 millis")
      const events = yield* Fiber.join(fiber)
      assert.deepStrictEqual(events, [{ _tag: "heartbeat", key: "k", next: 1 }])
    }).pipe(Effect.provide(store())))

  it.effect("tails every log under a prefix", () =>
    Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      const fiber = yield* Effect.forkChild(
        es.tailPrefix("t/").pipe(
          Stream.filter((e) => e._tag === "records"),
          Stream.take(2),
          Stream.runCollect
        )
      )
      yield* Effect.yieldNow
      yield* es.append("t/a", [rec("1")])
      yield* es.append("other", [rec("x")])
      yield* es.append("t/b", [rec("2")])
      const events = yield* Fiber.join(fiber)
      assert.deepStrictEqual(events.map((e) => (e._tag === "records" ? `${e.key}:${e.records.map((r) => s(r.value)).join()}` : "")), ["t/a:1", "t/b:2"])
    }).pipe(Effect.provide(store())))
})
