import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Fiber, Layer, Option, Stream } from "effect"
import { TestClock } from "effect/testing"
import { Db, ObjectStore } from "@opendata/core"
import { EventStore, layer } from "@opendata/eventstore"
import * as K from "../src/internal/keys.ts"
import * as Meta from "../src/internal/meta.ts"
import { encodeRecord } from "../src/internal/record.ts"

const b = (s: string) => new TextEncoder().encode(s)
const s = (x: Uint8Array) => new TextDecoder().decode(x)
const rec = (value: string, extra: Partial<EventStore.RecordInput> = {}): EventStore.RecordInput => ({ value: b(value), ...extra })

const store = (settings: Parameters<typeof layer>[0] = {}) =>
  layer({ tailHeartbeatMs: 1000, ...settings }).pipe(
    Layer.provide(Db.layer({ path: "eventstore/", flushIntervalMs: 0, memtableBytesMax: 64 * 1024 })),
    Layer.provide(ObjectStore.layerMemory)
  )

/**
 * A store whose writes are all refused from `fromMs` to `untilMs` of `Clock` time. The Db retries its WAL
 * write meanwhile, a few seconds apart at most: let time pass well beyond `untilMs` for it to land.
 */
const storeWithWriteOutage = (fromMs: number, untilMs: number) =>
  layer({ tailHeartbeatMs: 1000 }).pipe(
    Layer.provide(Db.layer({ path: "eventstore/", flushIntervalMs: 0, memtableBytesMax: 64 * 1024 })),
    Layer.provide(ObjectStore.layerFaulty({ seed: 1, outages: [{ startMs: fromMs, endMs: untilMs, operations: "writes", mode: "refuse" }] })),
    Layer.provide(ObjectStore.layerMemory)
  )

/** Collects `offset=value` of every record a tail sends. */
const collect = (tail: Stream.Stream<EventStore.TailEvent, unknown>, seen: Array<string>) =>
  tail.pipe(
    Stream.runForEach((e) => Effect.sync(() => e._tag === "records" && seen.push(...e.records.map((r) => `${r.offset}=${s(r.value)}`))))
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

  it.effect("reads from a timestamp between the time index's entries (appends closer than its interval)", () =>
    Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      // One append per 10 ms for 2 s: the index has an entry every timeIndexIntervalMs, not per append.
      for (let i = 0; i < 200; i++) {
        yield* TestClock.setTime(1_000 + 10 * i)
        yield* es.append("k", [rec(`r${i}`)])
      }
      for (const t of [0, 1_000, 1_005, 1_010, 1_249, 1_250, 1_251, 1_777, 2_990, 2_991]) {
        const got = (yield* es.read("k", { fromTime: t, limit: 1 })).records
        const expected = t <= 2_990 ? Math.ceil(Math.max(0, t - 1_000) / 10) : undefined
        assert.strictEqual(got[0]?.offset, expected, `fromTime ${t}`)
      }
      // After a trim, answers start at the first record kept.
      yield* es.trim("k", 120)
      assert.strictEqual((yield* es.read("k", { fromTime: 1_500, limit: 1 })).records[0]?.offset, 120)
      assert.strictEqual((yield* es.read("k", { fromTime: 2_500, limit: 1 })).records[0]?.offset, 150)
    }).pipe(Effect.provide(store())))

  it("encodes log metadata compactly and still reads the JSON it used to write", () => {
    const full = {
      firstOffset: 3,
      nextOffset: 2 ** 40,
      bytes: Number.MAX_SAFE_INTEGER,
      records: 127,
      createdMs: 1_700_000_000_000,
      lastAppendMs: 1_700_000_000_128,
      lastTimestamp: 1_700_000_000_128,
      lastIndexedMs: 1_700_000_000_000,
      retention: { maxAgeMs: 86_400_000, maxBytes: 1 },
      token: "épée"
    }
    assert.deepStrictEqual(Meta.decodeMeta(Meta.encodeMeta(full)), full)
    const bare = { firstOffset: 0, nextOffset: 0, bytes: 0, records: 0, createdMs: 5, lastTimestamp: 0, lastIndexedMs: 0, retention: {} }
    assert.deepStrictEqual(Meta.decodeMeta(Meta.encodeMeta(bare)), bare)
    assert.isBelow(Meta.encodeMeta(full).length, 60)
    const legacy = new TextEncoder().encode(JSON.stringify({ firstOffset: 1, nextOffset: 9, bytes: 80, records: 8, createdMs: 7, lastTimestamp: 42, token: "t" }))
    assert.deepStrictEqual(Meta.decodeMeta(legacy), { firstOffset: 1, nextOffset: 9, bytes: 80, records: 8, createdMs: 7, lastTimestamp: 42, lastIndexedMs: 42, token: "t" })
    assert.throws(() => Meta.decodeMeta(Meta.encodeMeta(full).subarray(0, 10)), /truncated/)
  })

  it.effect("keeps a log's metadata exact between checkpoints: after a restart, in listings, for the next append", () =>
    Effect.gen(function*() {
      const objects = yield* ObjectStore.ObjectStore
      /** Runs `f` on an EventStore (and its Db) opened on the same objects, closed after. */
      const session = <A, E>(f: (es: EventStore.EventStoreShape, db: Db.DbShape) => Effect.Effect<A, E>) =>
        Effect.scoped(Effect.gen(function*() {
          const context = yield* Layer.build(
            layer({ tailHeartbeatMs: 1000 }).pipe(
              Layer.provideMerge(Db.layer({ path: "eventstore/", flushIntervalMs: 0, memtableBytesMax: 64 * 1024 }))
            )
          )
          return yield* f(Context.get(context, EventStore.EventStore), Context.get(context, Db.Db))
        })).pipe(Effect.provideService(ObjectStore.ObjectStore, objects))
      const expected = { nextOffset: 300, records: 300, bytes: 300 + 100 * 4 }
      const counts = (m: EventStore.LogMeta) => ({ nextOffset: m.nextOffset, records: m.records, bytes: m.bytes })
      yield* session((es, db) =>
        Effect.gen(function*() {
          for (let i = 0; i < 300; i++) yield* es.append("k", [rec("x", i % 3 === 0 ? { headers: { hh: "vv" } } : {})])
          yield* es.append("j", [rec("y")])
          assert.deepStrictEqual(counts(yield* es.meta("k")), expected)
          // The stored metadata is a checkpoint, not rewritten by every append.
          const stored = Meta.decodeMeta((yield* db.get(K.metaKey("k")))!)
          assert.isBelow(stored.nextOffset, 300)
          assert.isAbove(stored.nextOffset, 0)
        }))
      yield* session((es) =>
        Effect.gen(function*() {
          assert.deepStrictEqual(counts(yield* es.meta("k")), expected)
          const listed = (yield* es.list()).logs
          assert.deepStrictEqual(listed.map((m) => [m.key, m.nextOffset, m.records]), [["j", 1, 1], ["k", 300, 300]])
          assert.deepStrictEqual((yield* es.append("k", [rec("z")])).offsets, [300])
          assert.deepStrictEqual((yield* es.read("k", { from: 298 })).records.map((r) => s(r.value)), ["x", "x", "z"])
          yield* es.trim("k", 100)
          // Kept: "x" at 100..299 (those at multiples of 3 with a 4-byte header) and "z".
          const withHeader = Array.from({ length: 200 }, (_, i) => i + 100).filter((i) => i % 3 === 0).length
          assert.deepStrictEqual(counts(yield* es.meta("k")), { nextOffset: 301, records: 201, bytes: 201 + withHeader * 4 })
        }))
    }).pipe(Effect.provide(ObjectStore.layerMemory)))

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

  it.effect("stores an append as one entry and reads, trims and counts from inside it; reads entries of the one-record form", () =>
    Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      const db = yield* Db.Db
      const entries = (key: string) =>
        Effect.map(Stream.runCollect(db.scan({ start: K.recordPrefix(key), end: K.prefixEnd(K.recordPrefix(key)) })), (rows) =>
          rows.map((kv) => K.recordKeyOffset(kv.key)))
      yield* es.append("k", Array.from({ length: 5 }, (_, i) => rec(`v${i}`, i === 1 ? { headers: { h: "x" }, eventTime: 7 } : {})))
      yield* es.append("k", [rec("v5"), rec("v6"), rec("v7")])
      // One entry per append, under its last offset.
      assert.deepStrictEqual(yield* entries("k"), [4, 7])
      const offsets = (r: EventStore.ReadResult) => r.records.map((x) => x.offset)
      assert.deepStrictEqual(offsets(yield* es.read("k", { from: 2, limit: 4 })), [2, 3, 4, 5])
      assert.deepStrictEqual(offsets(yield* es.read("k", { from: 6 })), [6, 7])
      // maxBytes stops after the record that crosses it, inside a batch.
      assert.deepStrictEqual(offsets(yield* es.read("k", { from: 0, maxBytes: 5 })), [0, 1])
      const one = (yield* es.read("k", { from: 1, limit: 1 })).records[0]!
      assert.deepStrictEqual([s(one.value), one.headers, one.eventTime], ["v1", { h: "x" }, 7])
      // An append bigger than a stored batch is split into entries of about that size.
      const big = (c: string) => ({ value: b(c.repeat(600 * 1024)) })
      yield* es.append("big", [big("a"), big("b"), big("c")])
      assert.deepStrictEqual(yield* entries("big"), [0, 1, 2])
      assert.deepStrictEqual((yield* es.read("big", { from: 1 })).records.map((r) => [r.offset, r.value.length, s(r.value.subarray(0, 1))]), [
        [1, 600 * 1024, "b"],
        [2, 600 * 1024, "c"]
      ])
      // A trim inside a batch keeps the batch and hides what is below the trim point.
      const trimmed = yield* es.trim("k", 3)
      assert.deepStrictEqual([trimmed.firstOffset, trimmed.records, trimmed.bytes], [3, 5, 10])
      assert.deepStrictEqual(yield* entries("k"), [4, 7])
      assert.deepStrictEqual(offsets(yield* es.read("k")), [3, 4, 5, 6, 7])
      yield* es.trim("k", 5)
      assert.deepStrictEqual(yield* entries("k"), [7])
      assert.deepStrictEqual(offsets(yield* es.read("k")), [5, 6, 7])
      // Entries written one record each (the form before batches) read as before, and new appends follow them.
      yield* TestClock.setTime(1000)
      const meta = { firstOffset: 0, nextOffset: 2, bytes: 2, records: 2, createdMs: 0, lastTimestamp: 5 }
      yield* db.write([
        { _tag: "put", key: K.recordKey("old", 0), value: encodeRecord(5, undefined, {}, b("a")) },
        { _tag: "put", key: K.recordKey("old", 1), value: encodeRecord(5, 9, { h: "y" }, b("b")) },
        { _tag: "put", key: K.metaKey("old"), value: b(JSON.stringify(meta)) }
      ])
      yield* es.append("old", [rec("c"), rec("d")])
      const old = yield* es.read("old", { from: 1 })
      assert.deepStrictEqual(old.records.map((r) => [r.offset, s(r.value), r.timestamp === 5, r.eventTime]), [
        [1, "b", true, 9],
        [2, "c", false, undefined],
        [3, "d", false, undefined]
      ])
      assert.deepStrictEqual(old.records[0]!.headers, { h: "y" })
      assert.strictEqual((yield* es.meta("old")).records, 4)
    }).pipe(Effect.provide(
      layer({ tailHeartbeatMs: 1000 }).pipe(
        Layer.provideMerge(Db.layer({ path: "eventstore/", flushIntervalMs: 0, memtableBytesMax: 64 * 1024 })),
        Layer.provide(ObjectStore.layerMemory)
      )
    )))

  it.effect("forgets a deleted log's producers: a recreated log takes their sequences afresh", () =>
    Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      const first = yield* es.append("k", [rec("a"), rec("b"), rec("c")], { producerId: "p", producerSeq: 5 })
      assert.deepStrictEqual(first.offsets, [0, 1, 2])
      yield* es.delete("k")
      // Not a retry of the deleted log's batch: a new append to the new log.
      const again = yield* es.append("k", [rec("new")], { producerId: "p", producerSeq: 5 })
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

  it.effect("group offsets carry the consumer's metadata; a group can be deleted", () =>
    Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      yield* es.append("k", [rec("a"), rec("b")])
      yield* es.append("j", [rec("a")])
      assert.deepStrictEqual(yield* es.commitOffset("g", "k", 1, '{"n":1}'), { group: "g", key: "k", offset: 1, lag: 1, metadata: '{"n":1}' })
      assert.deepStrictEqual(yield* es.commitOffset("g", "j", 1, ""), { group: "g", key: "j", offset: 1, lag: 0, metadata: "" })
      assert.deepStrictEqual(yield* es.commitOffset("h", "k", 2), { group: "h", key: "k", offset: 2, lag: 0 })
      assert.strictEqual(failureTag(yield* Effect.exit(es.commitOffset("g", "k", 1, "x".repeat(64 * 1024 + 1)))), "LimitExceeded")
      assert.strictEqual(yield* es.deleteGroup("g"), 2)
      assert.deepStrictEqual(yield* es.fetchOffset("g", "k"), { group: "g", key: "k", offset: undefined, lag: 2 })
      // Another group, whose name starts with the deleted one's, keeps its offsets.
      assert.deepStrictEqual((yield* es.fetchOffset("h", "k")).offset, 2)
      assert.strictEqual(yield* es.deleteGroup("g"), 0)
      // A log lists the groups that committed an offset of it; deleting it deletes them.
      yield* es.commitOffset("g", "k", 2)
      yield* es.transact([], { group: "t", key: "k", offset: 1, metadata: "m" })
      assert.deepStrictEqual((yield* es.listGroups("k")).map((g) => [g.group, g.offset, g.lag, g.metadata]), [
        ["g", 2, 0, undefined],
        ["h", 2, 0, undefined],
        ["t", 1, 1, "m"]
      ])
      assert.deepStrictEqual((yield* es.listGroups("j")).map((g) => g.group), [])
      yield* es.delete("k")
      assert.strictEqual(failureTag(yield* Effect.exit(es.listGroups("k"))), "LogNotFound")
      yield* es.append("k", [rec("again")])
      assert.deepStrictEqual(yield* es.listGroups("k"), [])
      assert.deepStrictEqual((yield* es.fetchOffset("t", "k")).offset, undefined)
    }).pipe(Effect.provide(store())))

  it.effect("transactions append to several logs and commit an offset atomically", () =>
    Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      yield* es.append("in", [rec("x"), rec("y")])
      yield* es.append("out/a", [rec("earlier")])
      const answer = yield* es.transact(
        [{ key: "out/a", records: [rec("x1")] }, { key: "out/b", records: [rec("x2"), rec("x3")] }, { key: "out/a", records: [rec("x4")] }],
        { group: "t", key: "in", offset: 1, metadata: '{"count":1}' }
      )
      // One answer per append given; a log named twice got its records in order, in one decision.
      assert.deepStrictEqual(answer.results, [{ offsets: [1, 2], next: 3 }, { offsets: [0, 1], next: 2 }, { offsets: [1, 2], next: 3 }])
      assert.deepStrictEqual((yield* es.read("out/a")).records.map((r) => s(r.value)), ["earlier", "x1", "x4"])
      assert.deepStrictEqual(yield* es.fetchOffset("t", "in"), { group: "t", key: "in", offset: 1, lag: 1, metadata: '{"count":1}' })
      // Appends go on after a transaction as before.
      assert.deepStrictEqual(yield* es.append("out/b", [rec("z")]), { offsets: [2], next: 3 })
      // Only an offset: a commit through the same path.
      assert.deepStrictEqual(yield* es.transact([], { group: "t", key: "in", offset: 2 }), { results: [] })
      assert.strictEqual((yield* es.fetchOffset("t", "in")).offset, 2)
      // Refused as a whole: nothing of it is written.
      yield* es.setFencingToken("fenced", "tok")
      const refusals = [
        yield* Effect.exit(es.transact([{ key: "out/a", records: [rec("no")] }, { key: "fenced", records: [rec("no")] }])),
        yield* Effect.exit(es.transact([{ key: "out/a", records: [rec("no")] }], { group: "t", key: "in", offset: 9 })),
        yield* Effect.exit(es.transact([{ key: "out/a", records: [rec("no")] }], { group: "t", key: "missing", offset: 0 })),
        yield* Effect.exit(es.transact([{ key: "out/a", records: [] }])),
        yield* Effect.exit(es.transact([{ key: "", records: [rec("no")] }]))
      ]
      assert.deepStrictEqual(refusals.map(failureTag), ["FencingConflict", "InvalidInput", "LogNotFound", "InvalidInput", "InvalidInput"])
      assert.deepStrictEqual((yield* es.read("out/a")).records.map((r) => s(r.value)), ["earlier", "x1", "x4"])
      assert.strictEqual((yield* es.fetchOffset("t", "in")).offset, 2)
    }).pipe(Effect.provide(store())))

  it.effect("transactions and appends on the same logs keep one order, concurrently", () =>
    Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      yield* es.append("in", [rec("x")])
      const appends = Effect.forEach(Array.from({ length: 50 }, (_, i) => i), (i) => es.append(i % 2 === 0 ? "o/1" : "o/2", [rec(`a${i}`)]), {
        concurrency: 8
      })
      const transactions = Effect.forEach(
        Array.from({ length: 50 }, (_, i) => i),
        (i) => es.transact([{ key: "o/1", records: [rec(`t${i}`)] }, { key: "o/2", records: [rec(`t${i}`)] }]),
        { concurrency: 8 }
      )
      yield* Effect.all([appends, transactions], { concurrency: 2 })
      for (const key of ["o/1", "o/2"]) {
        const read = yield* es.read(key, { limit: 1000 })
        assert.deepStrictEqual(read.records.map((r) => r.offset), Array.from({ length: 75 }, (_, i) => i))
        assert.strictEqual(read.records.filter((r) => s(r.value).startsWith("t")).length, 50)
        assert.strictEqual((yield* es.meta(key)).records, 75)
      }
    }).pipe(Effect.provide(store())))

  it.effect("enforces retention by age and by bytes", () =>
    Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      yield* TestClock.setTime(10_000)
      yield* es.append("aged", [rec("old1"), rec("old2")])
      yield* es.append("sized", Array.from({ length: 10 }, () => rec("0123456789")))
      yield* es.append("kept", [rec("old")])
      yield* TestClock.setTime(20_000)
      yield* es.append("aged", [rec("new")])
      yield* es.setRetention("aged", { maxAgeMs: 5_000 })
      yield* es.setRetention("sized", { maxBytes: 35 })
      assert.strictEqual(yield* es.enforceRetention, 2)
      assert.deepStrictEqual((yield* es.read("aged")).records.map((r) => s(r.value)), ["new"])
      const sized = yield* es.meta("sized")
      assert.isAtMost(sized.bytes, 35)
      assert.strictEqual(sized.firstOffset, 7)
      // A log without retention keeps everything.
      assert.deepStrictEqual((yield* es.read("kept")).records.map((r) => s(r.value)), ["old"])
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

  it.effect("an append that timed out keeps its offsets: neither its retry nor another producer writes them again", () =>
    Effect.gen(function*() {
      // As in simulation seed 48: a write outage outlasts the producer's timeout, so it retries the same
      // batch while the first attempt is still queued in the Db, and all of them land in one WAL object.
      const es = yield* EventStore.EventStore
      yield* es.append("k", [rec("before")])
      const seen: Array<string> = []
      yield* Effect.forkChild(collect(es.tail("k", { _tag: "offset", offset: 0 }), seen))
      yield* TestClock.adjust("1 second") // the outage begins
      const busy = yield* Effect.forkChild(es.append("elsewhere", [rec("x")])) // holds the WAL writer
      yield* TestClock.adjust("10 millis")
      const appendA = es.append("k", [rec("a")], { producerId: "p", producerSeq: 0 })
      for (let attempt = 0; attempt < 2; attempt++) {
        const timedOut = yield* Effect.forkChild(Effect.timeout(appendA, "5 seconds"))
        yield* TestClock.adjust("5 seconds")
        assert.strictEqual(failureTag(yield* Fiber.await(timedOut)), "TimeoutError")
      }
      const other = yield* Effect.forkChild(es.append("k", [rec("b")], { producerId: "q", producerSeq: 0 }))
      yield* TestClock.adjust("60 seconds") // the outage is over, and the Db's WAL retries land every queued write
      yield* Fiber.join(busy)
      assert.deepStrictEqual(yield* appendA, { offsets: [1], next: 2 })
      assert.deepStrictEqual(yield* Fiber.join(other), { offsets: [2], next: 3 })
      const log = (yield* es.read("k")).records.map((r) => `${r.offset}=${s(r.value)}`)
      assert.deepStrictEqual(log, ["0=before", "1=a", "2=b"])
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(seen, log)
    }).pipe(Effect.provide(storeWithWriteOutage(1_000, 30_000))))

  it.effect("a tail sends each offset once even when one durable batch writes it twice", () =>
    Effect.gen(function*() {
      // Two writes of one offset can only meet in the change feed through a bug elsewhere (as the timed-out
      // append above once did); the tails must still send the log as storage has it.
      const es = yield* EventStore.EventStore
      const db = yield* Db.Db
      yield* es.append("t/k", [rec("a")])
      const one: Array<string> = []
      const prefixed: Array<string> = []
      yield* Effect.forkChild(collect(es.tail("t/k", { _tag: "offset", offset: 0 }), one))
      yield* Effect.forkChild(collect(es.tailPrefix("t/"), prefixed))
      yield* Effect.yieldNow
      const record = (value: string) => encodeRecord(0, undefined, {}, b(value))
      const meta = { firstOffset: 0, nextOffset: 3, bytes: 3, records: 3, createdMs: 0, lastTimestamp: 0 }
      yield* db.write([
        { _tag: "put", key: K.recordKey("t/k", 1), value: record("b") },
        { _tag: "put", key: K.recordKey("t/k", 1), value: record("b") },
        { _tag: "put", key: K.recordKey("t/k", 2), value: record("c") },
        { _tag: "put", key: K.metaKey("t/k"), value: b(JSON.stringify(meta)) }
      ])
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(one, ["0=a", "1=b", "2=c"])
      assert.deepStrictEqual(prefixed, ["1=b", "2=c"])
    }).pipe(
      Effect.provide(
        layer({ tailHeartbeatMs: 1000 }).pipe(
          Layer.provideMerge(Db.layer({ path: "eventstore/", flushIntervalMs: 0, memtableBytesMax: 64 * 1024 })),
          Layer.provide(ObjectStore.layerMemory)
        )
      )
    ))

  it.effect("a trim waits for appends still in flight and keeps their records", () =>
    Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      yield* es.append("k", [rec("0"), rec("1"), rec("2")])
      yield* TestClock.adjust("1 second") // the outage begins
      const inFlight = yield* Effect.forkChild(es.append("k", [rec("3")]))
      const trimmed = yield* Effect.forkChild(es.trim("k", 2))
      yield* TestClock.adjust("60 seconds") // the outage is over, and the Db's WAL retries land every queued write
      assert.deepStrictEqual((yield* Fiber.join(inFlight)).offsets, [3])
      assert.deepStrictEqual((yield* Fiber.join(trimmed)).nextOffset, 4)
      const meta = yield* es.meta("k")
      assert.deepStrictEqual([meta.firstOffset, meta.nextOffset, meta.records], [2, 4, 2])
      assert.deepStrictEqual((yield* es.read("k")).records.map((r) => s(r.value)), ["2", "3"])
    }).pipe(Effect.provide(storeWithWriteOutage(1_000, 30_000))))

  it.effect("the next append sees a trim whose caller stopped waiting", () =>
    Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      yield* es.append("k", [rec("0"), rec("1"), rec("2")])
      yield* TestClock.adjust("1 second") // the outage begins
      const trimmed = yield* Effect.forkChild(Effect.timeout(es.trim("k", 2), "5 seconds"))
      yield* TestClock.adjust("5 seconds")
      assert.strictEqual(failureTag(yield* Fiber.await(trimmed)), "TimeoutError")
      const after = yield* Effect.forkChild(es.append("k", [rec("3")]))
      yield* TestClock.adjust("60 seconds") // the outage is over, and the Db's WAL retries land every queued write
      assert.deepStrictEqual((yield* Fiber.join(after)).offsets, [3])
      const meta = yield* es.meta("k")
      assert.deepStrictEqual([meta.firstOffset, meta.nextOffset, meta.records], [2, 4, 2])
      assert.deepStrictEqual((yield* es.read("k")).records.map((r) => s(r.value)), ["2", "3"])
    }).pipe(Effect.provide(storeWithWriteOutage(1_000, 30_000))))
})
