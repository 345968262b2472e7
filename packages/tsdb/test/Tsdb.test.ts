import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Fiber, Layer, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import { Db, ObjectStore } from "@opendata/core"
import { layer, SamplesLimitExceeded, samplesOf, Tsdb } from "../src/Tsdb.ts"
import type { Labels, Matcher, TsdbSettings } from "../src/Tsdb.ts"
import { append, chunkBytes, newChunk } from "../src/internal/chunk.ts"
import { canonical } from "../src/internal/labels.ts"

const staleNaN = (() => {
  const v = new DataView(new ArrayBuffer(8))
  v.setUint32(0, 0x7ff00000)
  v.setUint32(4, 0x00000002)
  return v.getFloat64(0)
})()
const bits = (x: number) => {
  const v = new DataView(new ArrayBuffer(8))
  v.setFloat64(0, x)
  return v.getBigUint64(0).toString(16)
}

const L = (o: Record<string, string>): Labels => Object.entries(o)
const eq = (name: string, value: string): Matcher => ({ name, type: "=", value })

/** A TSDB over a Db over a memory store that outlives it, so tests can reopen. */
const world = Effect.gen(function*() {
  const store = yield* ObjectStore.ObjectStore.use(Effect.succeed).pipe(Effect.provide(ObjectStore.layerMemory))
  const openWith = (settings: TsdbSettings, role: "writer" | "reader" = "writer") => Effect.gen(function*() {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(
      // No background passes: tests move the TestClock far, which would run every pass in between.
      layer({ retentionIntervalMs: Number.MAX_SAFE_INTEGER, ...settings }).pipe(
        Layer.provideMerge(
          role === "reader"
            ? Db.layerFollower({ path: "tsdb/", pollIntervalMs: 1000 })
            : Db.layer({ path: "tsdb/", flushIntervalMs: 0, memtableBytesMax: 64 * 1024, gc: false })
        ),
        Layer.provide(Layer.succeed(ObjectStore.ObjectStore, store))
      ),
      scope
    )
    return { tsdb: Context.get(context, Tsdb), db: Context.get(context, Db.Db), close: Scope.close(scope, Exit.void) }
  })
  /** The TSDB's Db itself (the TSDB closed), for tests that write what older versions stored; `close` when done. */
  const openDb = Effect.gen(function*() {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(
      Db.layer({ path: "tsdb/", flushIntervalMs: 0, gc: false }).pipe(Layer.provide(Layer.succeed(ObjectStore.ObjectStore, store))),
      scope
    )
    const db = Context.get(context, Db.Db)
    /** The labels stored under `S<id>`, `idBytes` the id's 8 bytes. */
    const storedLabels = (idBytes: Uint8Array) =>
      Effect.map(db.get(Buffer.concat([Buffer.from("S"), idBytes])), (bytes) => JSON.parse(Buffer.from(bytes!).toString()) as Labels)
    return { db, storedLabels, close: Scope.close(scope, Exit.void) }
  })
  return { open: openWith({}), openWith, store, openDb }
})

describe("Tsdb", () => {
  it.effect("writes samples and selects them by matchers and time", () =>
    Effect.gen(function*() {
      const { open } = yield* world
      const { tsdb, close } = yield* open
      yield* tsdb.write({
        series: [
          { labels: L({ __name__: "up", job: "a", instance: "1" }), samples: [{ timestampMs: 1000, value: 1 }, { timestampMs: 2000, value: 0 }] },
          { labels: L({ __name__: "up", job: "b", instance: "1" }), samples: [{ timestampMs: 1000, value: 1 }] },
          { labels: L({ __name__: "other", job: "a" }), samples: [{ timestampMs: 1500, value: 7 }] }
        ]
      })
      const ups = yield* tsdb.select([eq("__name__", "up")], 0, 10_000)
      assert.deepStrictEqual(ups.map((s) => Object.fromEntries(s.labels)), [
        { __name__: "up", instance: "1", job: "a" },
        { __name__: "up", instance: "1", job: "b" }
      ])
      assert.deepStrictEqual(samplesOf(ups[0]!), [{ timestampMs: 1000, value: 1 }, { timestampMs: 2000, value: 0 }])
      const regex = yield* tsdb.select([{ name: "job", type: "=~", value: "a|c" }], 0, 10_000)
      assert.strictEqual(regex.length, 2)
      const notB = yield* tsdb.select([eq("__name__", "up"), { name: "job", type: "!=", value: "b" }], 0, 10_000)
      assert.strictEqual(notB.length, 1)
      // Anchored regexes: "u" does not match "up".
      assert.strictEqual((yield* tsdb.select([{ name: "__name__", type: "=~", value: "u" }], 0, 10_000)).length, 0)
      const late = yield* tsdb.select([eq("__name__", "up")], 1500, 10_000)
      assert.deepStrictEqual(late.map((s) => s.timestamps.length), [1])
      assert.deepStrictEqual(yield* tsdb.labelNames([], 0, 10_000), ["__name__", "instance", "job"])
      assert.deepStrictEqual(yield* tsdb.labelValues("job", [], 0, 10_000), ["a", "b"])
      assert.deepStrictEqual(yield* tsdb.labelValues("job", [[eq("__name__", "other")]], 0, 10_000), ["a"])
      yield* close
    }))

  it.effect("keeps the postings of recent buckets within their byte bound, the bucket asked for last always", () =>
    Effect.gen(function*() {
      const { openWith } = yield* world
      const bucketMs = 2 * 60 * 60_000
      // Four buckets of 200 series each (some 40 KB of postings each); the bound holds two.
      const { tsdb, close } = yield* openWith({ postingsCacheBytes: 100_000 })
      for (let b = 0; b < 4; b++) {
        yield* tsdb.write({ series: Array.from({ length: 200 }, (_, i) => ({ labels: L({ __name__: "m", instance: `i${i}`, job: `j${b}` }), samples: [{ timestampMs: b * bucketMs + 1000, value: i }] })) })
      }
      for (let b = 0; b < 4; b++) assert.deepStrictEqual(yield* tsdb.labelValues("job", [], b * bucketMs, b * bucketMs + 2000), [`j${b}`])
      const after = yield* tsdb.cacheStats
      assert.strictEqual(after.postings.capacityBytes, 100_000)
      assert.strictEqual(after.postings.misses, 4)
      assert.isAtMost(after.postings.bytes, 100_000)
      assert.isAtLeast(after.postings.entries, 1)
      assert.isBelow(after.postings.entries, 4)
      // The last bucket asked for is kept (a hit); an evicted one is read again (a miss), with the same answer.
      assert.deepStrictEqual(yield* tsdb.labelValues("job", [], 3 * bucketMs, 3 * bucketMs + 2000), ["j3"])
      assert.strictEqual((yield* tsdb.cacheStats).postings.hits, 1)
      assert.deepStrictEqual(yield* tsdb.labelValues("job", [], 0, 2000), ["j0"])
      assert.strictEqual((yield* tsdb.cacheStats).postings.misses, 5)
      yield* close
      // A bound smaller than one bucket keeps that one bucket.
      const tiny = yield* openWith({ postingsCacheBytes: 1 })
      assert.strictEqual((yield* tiny.tsdb.select([eq("__name__", "m")], 0, 4 * bucketMs)).length, 800)
      assert.strictEqual((yield* tiny.tsdb.cacheStats).postings.entries, 1)
      yield* tiny.close
    }))

  it.effect("reads a selection's series one at a time as select gives them, each read into the buffer the next reuses", () =>
    Effect.gen(function*() {
      const { open } = yield* world
      const { tsdb, close } = yield* open
      yield* tsdb.write({
        series: Array.from({ length: 50 }, (_, i) => ({
          labels: L({ __name__: "m", i: String(i).padStart(2, "0") }),
          samples: Array.from({ length: 1 + (i % 7) * 40 }, (_, k) => ({ timestampMs: 1000 + k * 15_000 + i, value: i * 1000 + k }))
        }))
      })
      const selected = yield* tsdb.select([eq("__name__", "m")], 0, 10_000_000)
      const readers = yield* tsdb.selectReaders!([eq("__name__", "m")], 0, 10_000_000)
      assert.deepStrictEqual(readers.map((r) => r.labels), selected.map((s) => s.labels))
      let previous: ReturnType<(typeof readers)[number]["read"]> | undefined
      for (const [k, reader] of readers.entries()) {
        const s = reader.read()
        assert.deepStrictEqual(samplesOf(s), samplesOf(selected[k]!))
        // The same buffer as the previous series' (it is overwritten: read, or copy, before the next).
        if (previous !== undefined) assert.strictEqual(s.timestamps.buffer, previous.timestamps.buffer)
        previous = s
      }
      yield* close
    }))

  it.effect("keeps every acknowledged sample across reopen, across sealed chunks", () =>
    Effect.gen(function*() {
      const { open } = yield* world
      const first = yield* open
      const labels = L({ __name__: "counter", job: "x" })
      for (let i = 0; i < 300; i++) yield* first.tsdb.write({ series: [{ labels, samples: [{ timestampMs: 1000 + i * 15_000, value: i }] }] })
      yield* first.close
      const second = yield* open
      yield* second.tsdb.write({ series: [{ labels, samples: [{ timestampMs: 1000 + 300 * 15_000, value: 300 }] }] })
      const [series] = yield* second.tsdb.select([eq("__name__", "counter")], 0, Number.MAX_SAFE_INTEGER)
      assert.strictEqual(series!.timestamps.length, 301)
      assert.deepStrictEqual(Array.from(series!.values), Array.from({ length: 301 }, (_, i) => i))
      yield* second.close
    }))

  it.effect("finds a sparse series' samples in any window (a chunk never spans more than its bucket)", () =>
    Effect.gen(function*() {
      const { open } = yield* world
      const at = (i: number) => 3_600_000 + i * 300_000
      const first = yield* open
      for (let i = 0; i < 250; i++) yield* first.tsdb.write({ series: [{ labels: L({ __name__: "sparse" }), samples: [{ timestampMs: at(i), value: i }] }] })
      const check = (tsdb: Tsdb["Service"]) =>
        Effect.gen(function*() {
          for (const [from, to] of [[200, 210], [100, 130], [0, 249], [37, 37]] as const) {
            const [series] = yield* tsdb.select([eq("__name__", "sparse")], at(from), at(to))
            assert.deepStrictEqual(Array.from(series!.values), Array.from({ length: to - from + 1 }, (_, i) => from + i))
          }
        })
      yield* check(first.tsdb)
      yield* first.close
      const second = yield* open
      yield* check(second.tsdb)
      yield* second.close
    }))

  it.effect("reads every sample of a series across buckets, late samples and restarts, in windows anywhere: recent chunks from memory, older ones from the store", () =>
    Effect.gen(function*() {
      const { open } = yield* world
      const at = (i: number) => 3_600_000 + i * 30_000
      const expected = new Map<number, number>()
      const labels = L({ __name__: "m", s: "recent" })
      /** Requests of two samples from `from` on, with a late sample now and then (into the out-of-order buffer). */
      const writeFrom = (tsdb: Tsdb["Service"], from: number, requests: number) =>
        Effect.gen(function*() {
          for (let r = 0; r < requests; r++) {
            const i = from + 2 * r
            const samples = [{ timestampMs: at(i), value: i }, { timestampMs: at(i + 1), value: i + 1 }]
            if (r % 7 === 6) samples.push({ timestampMs: at(i - 9) + 1, value: -i })
            for (const x of samples) expected.set(x.timestampMs, x.value)
            samples.sort((a, b) => a.timestampMs - b.timestampMs)
            yield* tsdb.write({ series: [{ labels, samples }] })
          }
        })
      const check = (tsdb: Tsdb["Service"], when: string) =>
        Effect.gen(function*() {
          const want = [...expected].sort(([a], [b]) => a - b)
          // Windows inside, across and over the buckets (2 h each: 240 samples at 30 s).
          for (const [mint, maxt] of [[0, Number.MAX_SAFE_INTEGER], [at(100), at(700)], [at(950), at(1300)], [at(1150), at(1190)], [at(1500), at(2400)]] as const) {
            const [series] = yield* tsdb.select([eq("__name__", "m")], mint, maxt)
            const inWindow = want.filter(([t]) => t >= mint && t <= maxt)
            assert.deepStrictEqual(series === undefined ? [] : samplesOf(series), inWindow.map(([timestampMs, value]) => ({ timestampMs, value })), `${when}: [${mint}, ${maxt}]`)
          }
        })
      const first = yield* open
      yield* writeFrom(first.tsdb, 0, 600)
      yield* check(first.tsdb, "written")
      yield* first.close
      // Read back from storage, then written on: the chunks the first process stored and the second's.
      const second = yield* open
      yield* check(second.tsdb, "reopened")
      yield* writeFrom(second.tsdb, 1200, 500)
      yield* check(second.tsdb, "written after reopening")
      yield* second.close
      const third = yield* open
      yield* check(third.tsdb, "reopened again")
      yield* third.close
    }))

  it.effect("a writer that crashed (no checkpoint on close) replays the head log: every head as the writes built it", () =>
    Effect.gen(function*() {
      const { openWith } = yield* world
      const first = yield* openWith({ headCheckpointRecords: 7 })
      const at = (i: number) => 1_000_000 + i * 15_000
      const expected = new Map<string, Map<number, number>>()
      // Three series, 250 requests: heads cut every 120 samples, late samples into the out-of-order
      // buffer, checkpoints every 7 records in between.
      for (let i = 0; i < 250; i++) {
        const series = [0, 1, 2].filter((s) => (i + s) % 4 !== 0).map((s) => {
          const t = i % 10 === 9 && i > 20 ? at(i - 5) + 1 : at(i)
          const m = expected.get(String(s)) ?? new Map<number, number>()
          m.set(t, i * 10 + s)
          expected.set(String(s), m)
          return { labels: L({ __name__: "m", s: String(s) }), samples: [{ timestampMs: t, value: i * 10 + s }] }
        })
        yield* first.tsdb.write({ series })
      }
      // No close: a second writer fences the first, as after a crash, and replays what is durable.
      const second = yield* openWith({ headCheckpointRecords: 7 })
      const check = Effect.gen(function*() {
        const selected = yield* second.tsdb.select([eq("__name__", "m")], 0, Number.MAX_SAFE_INTEGER)
        assert.strictEqual(selected.length, 3)
        for (const s of selected) {
          const want = [...expected.get(Object.fromEntries(s.labels)["s"]!)!].sort(([a], [b]) => a - b)
          assert.deepStrictEqual(samplesOf(s), want.map(([timestampMs, value]) => ({ timestampMs, value })))
        }
      })
      yield* check
      // The replayed heads go on: the next sample appends (and a retried one is a no-op).
      for (let k = 0; k < 2; k++) {
        const outcome = yield* second.tsdb.write({ series: [{ labels: L({ __name__: "m", s: "1" }), samples: [{ timestampMs: at(250), value: 2501 }] }] })
        assert.strictEqual(outcome.samplesWritten, k === 0 ? 1 : 0)
        assert.strictEqual(outcome.duplicates, 0)
      }
      expected.get("1")!.set(at(250), 2501)
      yield* check
      yield* second.close
      // Closed gracefully: the heads are checkpointed, and a third writer finds them whole.
      const third = yield* openWith({})
      const selected = yield* third.tsdb.select([eq("__name__", "m")], 0, Number.MAX_SAFE_INTEGER)
      assert.deepStrictEqual(selected.map((s) => s.timestamps.length), [0, 1, 2].map((s) => expected.get(String(s))!.size))
      yield* third.close
    }))

  it.effect("a reader (follower Db) sees the writer's head samples, before and after a checkpoint deletes the records", () =>
    Effect.gen(function*() {
      const { openWith } = yield* world
      const writer = yield* openWith({ headCheckpointRecords: 1000 })
      const labels = L({ __name__: "r", job: "x" })
      for (let i = 0; i < 30; i++) yield* writer.tsdb.write({ series: [{ labels, samples: [{ timestampMs: 1000 + i * 15_000, value: i }] }] })
      const reader = yield* openWith({}, "reader")
      const read = Effect.map(reader.tsdb.select([eq("__name__", "r")], 0, Number.MAX_SAFE_INTEGER), (s) => Array.from(s[0]?.values ?? []))
      assert.deepStrictEqual(yield* read, Array.from({ length: 30 }, (_, i) => i))
      // The writer closes (checkpointing: the records go) and a new one writes more.
      yield* writer.close
      const next = yield* openWith({ headCheckpointRecords: 1000 })
      for (let i = 30; i < 40; i++) yield* next.tsdb.write({ series: [{ labels, samples: [{ timestampMs: 1000 + i * 15_000, value: i }] }] })
      // The follower Db polls the store every second.
      yield* TestClock.adjust("2 seconds")
      assert.deepStrictEqual(yield* read, Array.from({ length: 40 }, (_, i) => i))
      yield* next.close
      yield* reader.close
    }))

  it.effect("reads postings as older versions stored them (a key per label) beside the series-per-bucket keys", () =>
    Effect.gen(function*() {
      const { open, openDb } = yield* world
      const t = 1_000_000
      const first = yield* open
      for (const job of ["a", "b", "c"]) {
        yield* first.tsdb.write({ series: [{ labels: L({ __name__: "r", job }), samples: [{ timestampMs: t, value: 1 }] }] })
      }
      yield* first.close
      // Rewrite two series' `j<bucket><id>` keys as the older `i<bucket><name>\0<value>\0<id>` keys.
      const { close: closeDb, db, storedLabels } = yield* openDb
      const rows = yield* Stream.runCollect(db.scan({ start: Uint8Array.of(0x6a), end: Uint8Array.of(0x6b) }))
      assert.strictEqual(rows.length, 3)
      const ops: Array<Db.WriteOp> = []
      for (const row of rows.slice(0, 2)) {
        const idBytes = row.key.subarray(5)
        ops.push({ _tag: "delete", key: row.key })
        for (const [name, value] of yield* storedLabels(idBytes)) {
          ops.push({ _tag: "put", key: Buffer.concat([Buffer.from(row.key.subarray(0, 5)), Buffer.from(`${name}\0${value}\0`), idBytes]).fill(0x69, 0, 1), value: new Uint8Array(0) })
        }
      }
      yield* db.write(ops)
      yield* closeDb
      const { close, tsdb } = yield* open
      const selected = yield* tsdb.select([eq("__name__", "r")], 0, t + 1)
      assert.deepStrictEqual(selected.map((s) => s.labels), ["a", "b", "c"].map((job) => L({ __name__: "r", job })))
      assert.deepStrictEqual(yield* tsdb.labelValues("job", [], 0, t + 1), ["a", "b", "c"])
      assert.deepStrictEqual(yield* tsdb.series([[eq("job", "a")]], 0, t + 1), [L({ __name__: "r", job: "a" })])
      yield* close
    }))

  it.effect("finds an older layout's chunk that reaches into the next bucket; marks where its own layout starts", () =>
    Effect.gen(function*() {
      const { open, openDb } = yield* world
      const bucketMs = 2 * 60 * 60_000
      const labels = L({ __name__: "legacy" })
      const first = yield* open
      // 121 samples in bucket 0: the first 120 sealed into one chunk, keyed in bucket 0.
      yield* first.tsdb.write({ series: [{ labels, samples: Array.from({ length: 121 }, (_, i) => ({ timestampMs: 1_000 + i * 1_000, value: i })) }] })
      yield* first.close
      // As an older writer left it: no layout key, and the chunk reaching into bucket 1 (older writers cut
      // chunks at 120 samples only).
      const { close: closeDb, db } = yield* openDb
      const layout = Uint8Array.of(0x4c)
      assert.isDefined(yield* db.get(layout))
      const [sealed] = yield* Stream.runCollect(db.scan({ start: Uint8Array.of(0x63), end: Uint8Array.of(0x64) }))
      const spanning = newChunk()
      const times = Array.from({ length: 120 }, (_, i) => (i < 100 ? 1_000 + i * 1_000 : bucketMs + (i - 100) * 1_000))
      for (const [i, t] of times.entries()) append(spanning, t, i)
      // The series' postings and the bucket list name bucket 1 too, as the older writer indexed them.
      const [posting] = yield* Stream.runCollect(db.scan({ start: Uint8Array.of(0x6a), end: Uint8Array.of(0x6b) }))
      const posting1 = Uint8Array.from(posting!.key)
      posting1[4] = 1
      yield* db.write([
        { _tag: "delete", key: layout },
        { _tag: "put", key: sealed!.key, value: chunkBytes(spanning) },
        { _tag: "put", key: posting1, value: new Uint8Array(0) },
        { _tag: "put", key: Uint8Array.of(0x62, 0, 0, 0, 1), value: new Uint8Array(0) }
      ])
      yield* closeDb
      const { close, tsdb } = yield* open
      const inBucket1 = () => Effect.map(tsdb.select([eq("__name__", "legacy")], bucketMs, 2 * bucketMs - 1), ([s]) => [...(s?.timestamps ?? [])])
      const expected = times.slice(100)
      assert.deepStrictEqual(yield* inBucket1(), expected)
      // A write of this layout marks the bucket after the last with data: the older chunk is still found.
      yield* tsdb.write({ series: [{ labels: L({ __name__: "other" }), samples: [{ timestampMs: 3 * bucketMs, value: 1 }] }] })
      assert.deepStrictEqual(yield* inBucket1(), expected)
      yield* close
      const again = yield* openDb
      const marked = yield* again.db.get(layout)
      yield* again.close
      // Buckets 0 and 1 held data: chunks lie in their bucket from bucket 2 on.
      assert.deepStrictEqual(marked, Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 2))
    }))

  it.effect("finds a series after a restart through the dictionary, with the labels in it (older versions) or not", () =>
    Effect.gen(function*() {
      const { open, openDb } = yield* world
      const t = 1_000_000
      const labelsOf = (job: string) => L({ __name__: "d", job })
      const first = yield* open
      for (const job of ["a", "b"]) yield* first.tsdb.write({ series: [{ labels: labelsOf(job), samples: [{ timestampMs: t, value: 1 }] }] })
      yield* first.close
      // Series a's dictionary entry as older versions wrote it: its canonical labels as the value.
      const { close: closeDb, db, storedLabels } = yield* openDb
      const entries = yield* Stream.runCollect(db.scan({ start: Uint8Array.of(0x68), end: Uint8Array.of(0x69) }))
      assert.strictEqual(entries.length, 2)
      assert.isTrue(entries.every((e) => e.value.length === 0))
      for (const e of entries) {
        const labels = yield* storedLabels(e.key.subarray(9))
        if (labels.some(([n, v]) => n === "job" && v === "a")) yield* db.write([{ _tag: "put", key: e.key, value: Buffer.from(canonical(labels)) }])
      }
      yield* closeDb
      // A new writer resolves both through the dictionary: their second samples join the same series.
      const { close, tsdb } = yield* open
      for (const job of ["a", "b"]) yield* tsdb.write({ series: [{ labels: labelsOf(job), samples: [{ timestampMs: t + 15_000, value: 2 }] }] })
      const selected = yield* tsdb.select([eq("__name__", "d")], 0, t + 15_000)
      assert.deepStrictEqual(selected.map((s) => [s.labels, Array.from(s.values)]), [[labelsOf("a"), [1, 2]], [labelsOf("b"), [1, 2]]])
      yield* close
    }))

  it.effect("a reader's postings index learns the series the writer creates after the reader first selected", () =>
    Effect.gen(function*() {
      const { openWith } = yield* world
      const writer = yield* openWith({})
      const write = (job: string, i: number) =>
        writer.tsdb.write({ series: [{ labels: L({ __name__: "r", job }), samples: [{ timestampMs: 1000 + i * 15_000, value: i }] }] })
      for (let i = 0; i < 5; i++) yield* write("a", i)
      const reader = yield* openWith({}, "reader")
      const jobs = (tsdb: typeof reader.tsdb) =>
        Effect.map(tsdb.select([eq("__name__", "r")], 0, Number.MAX_SAFE_INTEGER), (s) => s.map((x) => x.labels.find(([n]) => n === "job")![1]))
      // The first selection reads the bucket's postings into the index.
      assert.deepStrictEqual(yield* jobs(reader.tsdb), ["a"])
      assert.deepStrictEqual(yield* reader.tsdb.labelValues("job", [], 0, Number.MAX_SAFE_INTEGER), ["a"])
      // A new series in the same bucket, written by the writer: the reader's feed adds its postings.
      yield* write("b", 5)
      assert.deepStrictEqual(yield* jobs(writer.tsdb), ["a", "b"])
      yield* TestClock.adjust("2 seconds")
      assert.deepStrictEqual(yield* jobs(reader.tsdb), ["a", "b"])
      assert.deepStrictEqual(yield* reader.tsdb.labelValues("job", [], 0, Number.MAX_SAFE_INTEGER), ["a", "b"])
      assert.deepStrictEqual(yield* reader.tsdb.series([[eq("job", "b")]], 0, Number.MAX_SAFE_INTEGER), [L({ __name__: "r", job: "b" })])
      yield* writer.close
      yield* reader.close
    }))

  it.effect("selects only the samples in [mint, maxt] from sealed chunks, the head and the out-of-order buffer, by timestamp", () =>
    Effect.gen(function*() {
      const { open } = yield* world
      const { tsdb } = yield* open
      const labels = L({ __name__: "c" })
      const at = (i: number) => 1_000_000 + i * 15_000
      // 300 samples: two sealed chunks of 120 and a head of 60; sample 295 arrives late (out of order).
      for (let i = 0; i < 300; i++) if (i !== 295) yield* tsdb.write({ series: [{ labels, samples: [{ timestampMs: at(i), value: i }] }] })
      const late = yield* tsdb.write({ series: [{ labels, samples: [{ timestampMs: at(295), value: 295 }] }] })
      assert.strictEqual(late.outOfOrder, 1)
      const [s] = yield* tsdb.select([eq("__name__", "c")], at(100), at(297))
      assert.deepStrictEqual(Array.from(s!.timestamps), Array.from({ length: 198 }, (_, k) => at(100 + k)))
      assert.deepStrictEqual(Array.from(s!.values), Array.from({ length: 198 }, (_, k) => 100 + k))
      // Bounds are inclusive; a range between two samples selects nothing.
      assert.deepStrictEqual(Array.from((yield* tsdb.select([eq("__name__", "c")], at(7), at(7)))[0]!.values), [7])
      assert.strictEqual((yield* tsdb.select([eq("__name__", "c")], at(7) + 1, at(8) - 1)).length, 0)
    }))

  it.effect("selects many series (read with one scan per bucket) as it selects one", () =>
    Effect.gen(function*() {
      const { open } = yield* world
      const { tsdb } = yield* open
      const at = (i: number) => 1_000_000 + i * 60_000
      // 80 series, every other one selected; 300 samples each (sealed chunks in several buckets and a head).
      for (let i = 0; i < 300; i += 20) {
        yield* tsdb.write({
          series: Array.from({ length: 80 }, (_, k) => ({
            labels: L({ __name__: "w", parity: String(k % 2), k: String(k).padStart(2, "0") }),
            samples: Array.from({ length: 20 }, (_, j) => ({ timestampMs: at(i + j), value: k * 1000 + i + j }))
          }))
        })
      }
      const got = yield* tsdb.select([eq("__name__", "w"), eq("parity", "0")], at(50), at(280))
      assert.strictEqual(got.length, 40)
      for (const [n, s] of got.entries()) {
        const k = n * 2
        assert.deepStrictEqual(s.labels, L({ __name__: "w", k: String(k).padStart(2, "0"), parity: "0" }))
        assert.deepStrictEqual(Array.from(s.timestamps), Array.from({ length: 231 }, (_, j) => at(50 + j)))
        assert.deepStrictEqual(Array.from(s.values), Array.from({ length: 231 }, (_, j) => k * 1000 + 50 + j))
      }
    }))

  it.effect("fails with SamplesLimitExceeded when a selection would hold more than samplesMax samples", () =>
    Effect.gen(function*() {
      const { open } = yield* world
      const { tsdb } = yield* open
      for (const job of ["a", "b"]) {
        yield* tsdb.write({ series: [{ labels: L({ __name__: "m", job }), samples: Array.from({ length: 10 }, (_, i) => ({ timestampMs: 1000 + i, value: i })) }] })
      }
      assert.strictEqual((yield* tsdb.select([eq("__name__", "m")], 0, 10_000, { samplesMax: 20 })).length, 2)
      const error = yield* Effect.flip(tsdb.select([eq("__name__", "m")], 0, 10_000, { samplesMax: 19 }))
      assert.instanceOf(error, SamplesLimitExceeded)
      assert.strictEqual(error.kind, "limit")
    }))

  it.effect("accepts out-of-order samples within the window, rejects older ones and conflicting duplicates", () =>
    Effect.gen(function*() {
      const { open } = yield* world
      const { tsdb, close } = yield* open
      const labels = L({ __name__: "g" })
      const base = 100 * 60_000
      yield* tsdb.write({ series: [{ labels, samples: [{ timestampMs: base, value: 1 }] }] })
      const outcome = yield* tsdb.write({
        series: [{
          labels,
          samples: [
            { timestampMs: base - 60_000, value: 2 },
            { timestampMs: base - 11 * 60_000, value: 3 },
            { timestampMs: base, value: 1 },
            { timestampMs: base, value: 9 }
          ]
        }]
      })
      assert.deepStrictEqual(outcome, { samplesWritten: 1, outOfOrder: 1, tooOld: 1, duplicates: 1 })
      const [s] = yield* tsdb.select([eq("__name__", "g")], 0, Number.MAX_SAFE_INTEGER)
      assert.deepStrictEqual(samplesOf(s!), [{ timestampMs: base - 60_000, value: 2 }, { timestampMs: base, value: 1 }])
      yield* close
    }))

  it.effect("lists label names from the postings of the buckets in range, with or without selectors", () =>
    Effect.gen(function*() {
      const { open } = yield* world
      const { tsdb, close } = yield* open
      const hour = 3_600_000
      yield* tsdb.write({
        series: [
          { labels: L({ __name__: "a", zone: "z1" }), samples: [{ timestampMs: 1000, value: 1 }] },
          { labels: L({ __name__: "b", region: "r1" }), samples: [{ timestampMs: 10 * hour, value: 1 }] },
          { labels: L({ __name__: "b", region: "r2", rack: "k" }), samples: [{ timestampMs: 10 * hour, value: 2 }] }
        ]
      })
      assert.deepStrictEqual(yield* tsdb.labelNames([], 0, 20 * hour), ["__name__", "rack", "region", "zone"])
      // Only the buckets in range: the first sample's bucket (hours 0-2) is out.
      assert.deepStrictEqual(yield* tsdb.labelNames([], 9 * hour, 20 * hour), ["__name__", "rack", "region"])
      assert.deepStrictEqual(yield* tsdb.labelNames([], 0, 20 * hour, 2), ["__name__", "rack"])
      assert.deepStrictEqual(yield* tsdb.labelNames([[eq("region", "r1")]], 0, 20 * hour), ["__name__", "region"])
      yield* close
    }))

  it.effect("the label index: built from a bucket's postings once, then kept current by every write", () =>
    Effect.gen(function*() {
      const { open } = yield* world
      const first = yield* open
      const hour = 3_600_000
      yield* first.tsdb.write({ series: [{ labels: L({ __name__: "a", job: "j1" }), samples: [{ timestampMs: hour, value: 1 }] }] })
      assert.deepStrictEqual(yield* first.tsdb.labelValues("job", [], 0, 3 * hour), ["j1"])
      // Written after the bucket's index was built: new values, a new name, and a new bucket.
      yield* first.tsdb.write({
        series: [
          { labels: L({ __name__: "a", job: "j2" }), samples: [{ timestampMs: hour + 1, value: 1 }] },
          { labels: L({ __name__: "b", job: "j3", dc: "x" }), samples: [{ timestampMs: hour + 2, value: 1 }, { timestampMs: 5 * hour, value: 2 }] }
        ]
      })
      assert.deepStrictEqual(yield* first.tsdb.labelValues("job", [], 0, 3 * hour), ["j1", "j2", "j3"])
      assert.deepStrictEqual(yield* first.tsdb.labelNames([], 0, 3 * hour), ["__name__", "dc", "job"])
      assert.deepStrictEqual(yield* first.tsdb.labelValues("__name__", [], 4 * hour, 6 * hour), ["b"])
      yield* first.close
      // Another process reads the same from the postings.
      const second = yield* open
      assert.deepStrictEqual(yield* second.tsdb.labelValues("job", [], 0, 3 * hour), ["j1", "j2", "j3"])
      assert.deepStrictEqual(yield* second.tsdb.labelNames([], 0, 6 * hour), ["__name__", "dc", "job"])
      yield* second.close
    }))

  it.effect("takes float samples as columns exactly as objects: order checks, duplicates, stale markers, objects first", () =>
    Effect.gen(function*() {
      const { open } = yield* world
      const { tsdb, close } = yield* open
      const base = 100 * 60_000
      // The rows amid others (columns are ranges of arrays a request's series share).
      const columns = (rows: ReadonlyArray<readonly [number, number]>) => ({
        timestamps: Float64Array.from([-1, ...rows.map(([t]) => t), -1]),
        values: Float64Array.from([-1, ...rows.map(([, v]) => v), -1]),
        start: 1,
        end: 1 + rows.length
      })
      const rows: ReadonlyArray<readonly [number, number]> = [[base - 60_000, 2], [base - 11 * 60_000, 3], [base, 1], [base, 9], [base + 15_000, staleNaN]]
      const outcomes = []
      for (const name of ["objects", "columns"]) {
        const labels = L({ __name__: name })
        yield* tsdb.write({ series: [{ labels, samples: [{ timestampMs: base, value: 1 }] }] })
        const series = name === "objects"
          ? { labels, samples: rows.map(([timestampMs, value]) => ({ timestampMs, value })) }
          : { labels, samples: [], sampleColumns: columns(rows) }
        outcomes.push(yield* tsdb.write({ series: [series] }))
      }
      assert.deepStrictEqual(outcomes[1], outcomes[0])
      assert.deepStrictEqual(outcomes[0], { samplesWritten: 2, outOfOrder: 1, tooOld: 1, duplicates: 1 })
      const [a] = yield* tsdb.select([eq("__name__", "objects")], 0, Number.MAX_SAFE_INTEGER)
      const [b] = yield* tsdb.select([eq("__name__", "columns")], 0, Number.MAX_SAFE_INTEGER)
      assert.deepStrictEqual([...b!.timestamps], [...a!.timestamps])
      assert.deepStrictEqual([...b!.values].map(bits), [...a!.values].map(bits))
      // Objects and columns together: the objects' samples come first.
      const both = L({ __name__: "both" })
      const outcome = yield* tsdb.write({ series: [{ labels: both, samples: [{ timestampMs: 1_000, value: 1 }], sampleColumns: columns([[2_000, 2], [3_000, 3]]) }] })
      assert.strictEqual(outcome.samplesWritten, 3)
      const [c] = yield* tsdb.select([eq("__name__", "both")], 0, Number.MAX_SAFE_INTEGER)
      assert.deepStrictEqual(samplesOf(c!), [{ timestampMs: 1_000, value: 1 }, { timestampMs: 2_000, value: 2 }, { timestampMs: 3_000, value: 3 }])
      yield* close
    }))

  it.effect("keeps Prometheus staleness markers bit for bit", () =>
    Effect.gen(function*() {
      const { open } = yield* world
      const { tsdb, close } = yield* open
      yield* tsdb.write({ series: [{ labels: L({ __name__: "s" }), samples: [{ timestampMs: 1, value: 5 }, { timestampMs: 2, value: staleNaN }] }] })
      const [s] = yield* tsdb.select([eq("__name__", "s")], 0, 10)
      assert.strictEqual(bits(s!.values[1]!), "7ff0000000000002")
      yield* close
    }))

  it.effect("stores metadata and enforces retention by time", () =>
    Effect.gen(function*() {
      const { open } = yield* world
      const { tsdb, close } = yield* open
      yield* tsdb.write({ series: [], metadata: [{ metric: "up", type: "gauge", help: "Up.", unit: "" }] })
      assert.deepStrictEqual(yield* tsdb.metadata(), [{ metric: "up", type: "gauge", help: "Up.", unit: "" }])
      const labels = L({ __name__: "old" })
      const day = 24 * 60 * 60_000
      for (let i = 0; i < 130; i++) yield* tsdb.write({ series: [{ labels, samples: [{ timestampMs: day + i * 1000, value: i }] }] })
      yield* TestClock.setTime(30 * day)
      assert.isAbove(yield* tsdb.enforceRetention, 0)
      const left = yield* tsdb.select([eq("__name__", "old")], 0, Number.MAX_SAFE_INTEGER)
      // The sealed chunk and its index bucket went; the head's 10 samples go once it is checkpointed.
      assert.isAtMost(left.reduce((n, s) => n + s.timestamps.length, 0), 10)
      yield* close
    }))

  it.effect("retention drops the heads of series that stopped, in memory and stored, and keeps the others", () =>
    Effect.gen(function*() {
      const { openWith, openDb } = yield* world
      const day = 24 * 60 * 60_000
      const H = (id: number) => Uint8Array.of(0x48, 0, 0, 0, 0, 0, 0, 0, id)
      const storedHeads = Effect.gen(function*() {
        const { close, db } = yield* openDb
        const rows = yield* Stream.runCollect(db.scan({ start: H(0), end: Uint8Array.of(0x49) }))
        yield* close
        return rows.map((kv) => kv.key[8]!)
      })
      for (const checkpointEvery of [1, 4096]) {
        // 1: every write checkpoints, heads in memory are clean; 4096: the heads are stored on close and
        // the reopened process has none in memory.
        const first = yield* openWith({ headCheckpointRecords: checkpointEvery })
        yield* TestClock.setTime(0)
        yield* first.tsdb.write({ series: [{ labels: L({ __name__: "stopped" }), samples: [{ timestampMs: day, value: 1 }] }] })
        yield* first.tsdb.write({ series: [{ labels: L({ __name__: "going" }), samples: [{ timestampMs: day, value: 1 }, { timestampMs: 29 * day, value: 2 }] }] })
        const { close, db, tsdb } = checkpointEvery === 1 ? first : yield* Effect.andThen(first.close, openWith({ headCheckpointRecords: checkpointEvery }))
        const heads = Effect.map(Stream.runCollect(db.scan({ start: H(0), end: Uint8Array.of(0x49) })), (rows) => rows.map((kv) => kv.key[8]!))
        assert.deepStrictEqual(yield* heads, [1, 2])
        yield* TestClock.setTime(30 * day)
        yield* tsdb.enforceRetention
        // The stopped series' head went; the other's stays.
        assert.deepStrictEqual(yield* heads, [2])
        const names = (mint: number) => Effect.map(tsdb.select([eq("__name__", "stopped")], mint, Number.MAX_SAFE_INTEGER), (s) => s.length)
        assert.strictEqual(yield* names(0), 0)
        const [going] = yield* tsdb.select([eq("__name__", "going")], 0, Number.MAX_SAFE_INTEGER)
        assert.deepStrictEqual([...going!.timestamps], [29 * day])
        // The stopped series writes again: a new head, nothing of the old one.
        yield* tsdb.write({ series: [{ labels: L({ __name__: "stopped" }), samples: [{ timestampMs: 30 * day, value: 3 }] }] })
        const [again] = yield* tsdb.select([eq("__name__", "stopped")], 0, Number.MAX_SAFE_INTEGER)
        assert.deepStrictEqual(samplesOf(again!), [{ timestampMs: 30 * day, value: 3 }])
        yield* close
        // Stored: the "going" head and the new "stopped" one (ids 2 and 1), nothing else.
        assert.deepStrictEqual((yield* storedHeads).sort(), [1, 2])
        const wipe = yield* openDb
        yield* wipe.db.write((yield* Stream.runCollect(wipe.db.scan())).map((kv) => ({ _tag: "delete" as const, key: kv.key })))
        yield* wipe.close
      }
    }))

  it.effect("a request interrupted before the Db took it leaves nothing behind: its retry writes its samples", () =>
    Effect.gen(function*() {
      const store = yield* ObjectStore.ObjectStore.use(Effect.succeed).pipe(Effect.provide(ObjectStore.layerMemory))
      // WAL writes wait at a gate while it is closed.
      let gate: Deferred.Deferred<void> | undefined
      const gated: ObjectStore.ObjectStoreShape = {
        ...store,
        putIfAbsent: (key, body, options) =>
          Effect.andThen(
            Effect.suspend(() => gate === undefined || !key.endsWith(".wal") ? Effect.void : Deferred.await(gate)),
            store.putIfAbsent(key, body, options)
          )
      }
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        layer({ retentionIntervalMs: Number.MAX_SAFE_INTEGER }).pipe(
          // A budget of one unflushed write: a second write waits for the first to be flushed.
          Layer.provide(Db.layer({ path: "tsdb/", flushIntervalMs: 0, memtableBytesMax: 1, unflushedBytesMax: 1, gc: false })),
          Layer.provide(Layer.succeed(ObjectStore.ObjectStore, gated))
        ),
        scope
      )
      const tsdb = Context.get(context, Tsdb)
      const labels = L({ __name__: "up", job: "a" })
      const at = (t: number) => ({ series: [{ labels, samples: [{ timestampMs: t, value: t }] }] })
      yield* tsdb.write(at(1000))
      // Its flush returns the budget.
      for (let i = 0; i < 200; i++) yield* Effect.yieldNow
      gate = yield* Deferred.make<void>()
      const first = yield* Effect.forkChild(tsdb.write(at(2000)))
      const second = yield* Effect.forkChild(tsdb.write(at(3000)))
      for (let i = 0; i < 50; i++) yield* Effect.yieldNow
      // The second request waits for budget; its client gives up.
      yield* Fiber.interrupt(second)
      yield* Deferred.succeed(gate, undefined)
      gate = undefined
      yield* Fiber.join(first)
      const retried = yield* tsdb.write(at(3000))
      assert.strictEqual(retried.samplesWritten, 1)
      const [series] = yield* tsdb.select([eq("__name__", "up")], 0, 10_000)
      assert.deepStrictEqual(Array.from(series!.timestamps), [1000, 2000, 3000])
      yield* Scope.close(scope, Exit.void)
    }))
})
