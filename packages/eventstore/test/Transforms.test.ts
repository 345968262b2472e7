import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { Db, ObjectStore } from "@opendata/core"
import { EventStore, layer, Transforms } from "@opendata/eventstore"

const b = (s: string) => new TextEncoder().encode(s)
const s = (x: Uint8Array) => new TextDecoder().decode(x)
const rec = (value: string): EventStore.RecordInput => ({ value: b(value) })

/** The EventStore over a Db on `objects` (kept across "restarts"), and transforms on it. */
const storeOn = (objects: Layer.Layer<ObjectStore.ObjectStore>) =>
  layer({ tailHeartbeatMs: 1000 }).pipe(Layer.provide(Db.layer({ path: "eventstore/", flushIntervalMs: 0 })), Layer.provide(objects))

/** Runs `body` with the store and the transforms built in a scope of its own, closed after. */
const withTransforms = <A, E>(
  objects: Layer.Layer<ObjectStore.ObjectStore>,
  definitions: ReadonlyArray<Transforms.Definition<any>>,
  body: Effect.Effect<A, E, EventStore.EventStore | Transforms.Transforms>,
  sink?: Transforms.SampleSinkShape
) => {
  const transforms = Transforms.layer(definitions, { batchRecords: 7 })
  const withSink = sink === undefined ? transforms : transforms.pipe(Layer.provide(Layer.succeed(Transforms.SampleSink, sink)))
  return Effect.provide(body, withSink.pipe(Layer.provideMerge(storeOn(objects))))
}

/** Waits until `done` holds (checked every 20 ms, for at most 10 s). */
const eventually = <E, R>(done: Effect.Effect<boolean, E, R>) =>
  Effect.gen(function*() {
    for (let i = 0; i < 500; i++) {
      if (yield* done) return
      yield* Effect.sleep("20 millis")
    }
    assert.fail("timed out")
  })

const values = (key: string) =>
  Effect.flatMap(EventStore.EventStore, (es) =>
    es.read(key, { limit: 10_000 }).pipe(
      Effect.map((r) => r.records.map((x) => s(x.value))),
      Effect.catchTag("LogNotFound", () => Effect.succeed([] as Array<string>))
    ))

const enrich = Transforms.define({
  name: "enrich",
  source: { prefix: "orders/" },
  transform: (r) => ({ key: `enriched/${r.key.slice("orders/".length)}`, value: r.text().toUpperCase(), headers: { by: "enrich" } })
})

const counter = Transforms.define({
  name: "count",
  source: { prefix: "orders/" },
  transform: {
    initial: { n: 0 },
    step: (state: { n: number }, r) => ({ state: { n: state.n + 1 }, outputs: [{ key: `counts/${r.key}`, value: String(state.n + 1) }] })
  }
})

describe("Transforms", () => {
  it.live("a stateless transform writes each input's outputs once, in order, with their provenance", () => {
    const objects = ObjectStore.layerMemory
    return withTransforms(objects, [enrich], Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      for (let i = 0; i < 20; i++) yield* es.append(`orders/${i % 3}`, [rec(`a${i}`), rec(`b${i}`)])
      yield* eventually(Effect.map(Effect.flatMap(Transforms.Transforms, (t) => t.get("enrich")), (i) => i.recordsIn === 40))
      assert.deepStrictEqual(yield* values("enriched/1"), Array.from({ length: 7 }, (_, k) => [`A${3 * k + 1}`, `B${3 * k + 1}`]).flat())
      assert.strictEqual((yield* values("enriched/0")).length, 14)
      assert.strictEqual((yield* values("enriched/2")).length, 12)
      const first = (yield* es.read("enriched/2")).records[0]!
      assert.deepStrictEqual(first.headers, { by: "enrich", "opendata-source": "orders/2@0" })
      const info = yield* Effect.flatMap(Transforms.Transforms, (t) => t.get("enrich"))
      assert.strictEqual(info.recordsIn, 40)
      assert.strictEqual(info.recordsOut, 40)
      // What it committed: its position in each input log, as the group offset transform/enrich.
      assert.strictEqual((yield* es.fetchOffset("transform/enrich", "orders/0")).offset, 14)
    }))
  })

  it.live("a stateful transform keeps its state per input log, across restarts, and catches up from storage", () =>
    Effect.scoped(Effect.gen(function*() {
      // One object store for every "process" below.
      const objects = Layer.succeedContext(yield* Layer.build(ObjectStore.layerMemory))
      yield* withTransforms(objects, [counter], Effect.gen(function*() {
        const es = yield* EventStore.EventStore
        for (let i = 0; i < 10; i++) yield* es.append("orders/a", [rec(`x${i}`)])
        yield* eventually(Effect.map(values("counts/orders/a"), (v) => v.length === 10))
      }))
      // Appended while no transform runs: found at the next start.
      yield* Effect.provide(Effect.flatMap(EventStore.EventStore, (es) => es.append("orders/a", [rec("late1"), rec("late2")])), storeOn(objects))
      yield* withTransforms(objects, [counter], eventually(Effect.map(values("counts/orders/a"), (v) => v.length === 12)))
      yield* withTransforms(objects, [counter], Effect.gen(function*() {
        assert.deepStrictEqual(yield* values("counts/orders/a"), Array.from({ length: 12 }, (_, i) => String(i + 1)))
      }))
    })))

  it.live("a record whose function throws stops its log only, until skipped", () => {
    const picky = Transforms.define({
      name: "picky",
      source: { prefix: "in/" },
      transform: (r) => {
        if (r.text() === "bad") throw new Error("cannot take bad")
        return { key: `out/${r.key}`, value: r.text() }
      }
    })
    return withTransforms(ObjectStore.layerMemory, [picky], Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      const t = yield* Transforms.Transforms
      yield* es.append("in/1", [rec("a"), rec("bad"), rec("c")])
      yield* es.append("in/2", [rec("x"), rec("y")])
      yield* eventually(Effect.map(t.get("picky"), (i) => i.failedLogCount === 1 && i.recordsIn === 3))
      const info = yield* t.get("picky")
      assert.deepStrictEqual(info.failedLogs, [{ key: "in/1", offset: 1, error: "cannot take bad" }])
      assert.deepStrictEqual(yield* values("out/in/1"), ["a"])
      assert.deepStrictEqual(yield* values("out/in/2"), ["x", "y"])
      // Later records of the failed log wait (they are lag); other logs go on.
      yield* es.append("in/1", [rec("d")])
      yield* es.append("in/2", [rec("z")])
      yield* eventually(Effect.map(values("out/in/2"), (v) => v.length === 3))
      assert.deepStrictEqual(yield* values("out/in/1"), ["a"])
      yield* eventually(Effect.map(t.get("picky"), (i) => i.lagRecords === 3))
      const wrong = yield* Effect.flip(t.skip("picky", "in/1", 2))
      assert.strictEqual(wrong._tag, "InvalidInput")
      yield* t.skip("picky", "in/1", 1)
      yield* eventually(Effect.map(values("out/in/1"), (v) => v.length === 3))
      assert.deepStrictEqual(yield* values("out/in/1"), ["a", "c", "d"])
      assert.strictEqual((yield* t.get("picky")).failedLogCount, 0)
    }))
  })

  it.live("outputs that are invalid, or in the transform's own source, fail the record", () => {
    const loop = Transforms.define({ name: "loop", source: { prefix: "l/" }, transform: (r) => ({ key: `l/${r.key}`, value: "again" }) })
    const badSample = Transforms.define({ name: "bad-sample", source: { prefix: "m/" }, transform: () => ({ labels: { job: "x" }, value: 1 }) })
    return withTransforms(ObjectStore.layerMemory, [loop, badSample], Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      const t = yield* Transforms.Transforms
      yield* es.append("l/1", [rec("a")])
      yield* es.append("m/1", [rec("a")])
      yield* eventually(Effect.map(t.list, (all) => all.every((i) => i.failedLogCount === 1)))
      assert.match((yield* t.get("loop")).failedLogs[0]!.error, /own source/)
      assert.match((yield* t.get("bad-sample")).failedLogs[0]!.error, /__name__/)
    }), { write: () => Effect.succeed({ rejected: 0 }) })
  })

  it.live("samples go to the sink before the position is committed; pause, resume and reset", () => {
    const written: Array<Transforms.SampleWrite> = []
    const toMetrics = Transforms.define({
      name: "http",
      source: { prefix: "http/" },
      transform: (r) => {
        const e = r.json() as { status: number }
        return { labels: { __name__: "http_requests", status: String(e.status) }, value: 1, timestampMs: r.offset * 1000 }
      }
    })
    const sink: Transforms.SampleSinkShape = { write: (samples) => Effect.sync(() => (written.push(...samples), { rejected: 0 })) }
    return withTransforms(ObjectStore.layerMemory, [toMetrics], Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      const t = yield* Transforms.Transforms
      yield* es.append("http/a", [rec('{"status":200}'), rec('{"status":500}')])
      yield* eventually(Effect.sync(() => written.length === 2))
      assert.deepStrictEqual(written.map((w) => [w.labels["status"], w.timestampMs]), [["200", 0], ["500", 1000]])
      assert.strictEqual((yield* t.pause("http")).status, "paused")
      yield* es.append("http/a", [rec('{"status":404}')])
      yield* Effect.sleep("200 millis")
      assert.strictEqual(written.length, 2)
      assert.strictEqual((yield* t.get("http")).lagRecords, 1)
      yield* t.resume("http")
      yield* eventually(Effect.sync(() => written.length === 3))
      // A reset replays the source from the start.
      yield* t.reset("http")
      yield* eventually(Effect.sync(() => written.length === 6))
      assert.deepStrictEqual(written.slice(3).map((w) => w.labels["status"]), ["200", "500", "404"])
    }), sink)
  })

  it.live("follows a thousand source logs", () =>
    withTransforms(ObjectStore.layerMemory, [enrich], Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      yield* Effect.forEach(Array.from({ length: 1000 }, (_, i) => i), (i) => es.append(`orders/${i}`, [rec(`v${i}`)]), { concurrency: 16 })
      const t = yield* Transforms.Transforms
      yield* eventually(Effect.map(t.get("enrich"), (i) => i.recordsIn === 1000))
      assert.deepStrictEqual(yield* values("enriched/999"), ["V999"])
      const info = yield* t.get("enrich")
      assert.strictEqual(info.recordsOut, 1000)
      assert.strictEqual(info.lagRecords, 0)
    })))

  it.live("remembers a bounded number of logs behind; past it, goes through its source from storage", () => {
    const transforms = Transforms.layer([enrich], { dirtyLogsMax: 10 })
    return Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      const t = yield* Transforms.Transforms
      yield* eventually(Effect.map(t.get("enrich"), (i) => !i.catchingUp))
      yield* t.pause("enrich")
      yield* Effect.forEach(Array.from({ length: 100 }, (_, i) => i), (i) => es.append(`orders/${i}`, [rec(`v${i}`)]), { concurrency: 8 })
      yield* Effect.sleep("100 millis")
      const paused = yield* t.get("enrich")
      // At most 10 logs remembered (their lag is what it knows of); the rest left to a pass over storage.
      assert.isAtMost(paused.lagRecords, 10)
      assert.isTrue(paused.catchingUp)
      yield* t.resume("enrich")
      yield* eventually(Effect.map(t.get("enrich"), (i) => i.recordsIn === 100 && !i.catchingUp))
      assert.deepStrictEqual(yield* values("enriched/99"), ["V99"])
    }).pipe(Effect.provide(transforms.pipe(Layer.provideMerge(storeOn(ObjectStore.layerMemory)))))
  })

  it.live("keeps the last sample of a series at a timestamp within a batch", () => {
    const written: Array<Transforms.SampleWrite> = []
    const counts = Transforms.define({
      name: "counts",
      source: { prefix: "c/" },
      transform: { initial: 0, step: (n: number, r) => ({ state: n + 1, outputs: { labels: { __name__: "seen_total", log: r.key }, value: n + 1 } }) }
    })
    return withTransforms(ObjectStore.layerMemory, [counts], Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      // One append: three records at one timestamp.
      yield* es.append("c/1", [rec("a"), rec("b"), rec("c")])
      yield* eventually(Effect.map(Effect.flatMap(Transforms.Transforms, (t) => t.get("counts")), (i) => i.recordsIn === 3))
      assert.deepStrictEqual(written.map((w) => w.value), [3])
      assert.strictEqual((yield* Effect.flatMap(Transforms.Transforms, (t) => t.get("counts"))).samplesRejected, 2)
    }), { write: (samples) => Effect.sync(() => (written.push(...samples), { rejected: 0 })) })
  })

  it.live("a function may return an Effect: its value is the outputs, its failure fails the record", () => {
    const lookup = Transforms.define({
      name: "lookup",
      source: { prefix: "e/" },
      transform: (r) =>
        r.text() === "unknown"
          ? Effect.fail(new Error("no such customer"))
          : Effect.succeed({ key: `enriched-e/${r.key}`, value: `${r.text()}!` })
    })
    return withTransforms(ObjectStore.layerMemory, [lookup], Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      yield* es.append("e/1", [rec("a"), rec("unknown"), rec("c")])
      const t = yield* Transforms.Transforms
      yield* eventually(Effect.map(t.get("lookup"), (i) => i.failedLogCount === 1))
      assert.deepStrictEqual(yield* values("enriched-e/e/1"), ["a!"])
      assert.deepStrictEqual((yield* t.get("lookup")).failedLogs[0], { key: "e/1", offset: 1, error: "no such customer" })
    }))
  })

  it.live("retries what the sink refuses for now, showing why, and writes each sample once it takes them", () => {
    let refusals = 2
    const written: Array<Transforms.SampleWrite> = []
    const gauge = Transforms.define({
      name: "gauge",
      source: { prefix: "g/" },
      transform: (r) => ({ labels: { __name__: "g", log: r.key }, value: r.offset })
    })
    const sink: Transforms.SampleSinkShape = {
      write: (samples) =>
        Effect.suspend(() => {
          if (refusals > 0) {
            refusals -= 1
            return Effect.fail({ message: "the TSDB is closing" })
          }
          written.push(...samples)
          return Effect.succeed({ rejected: 0 })
        })
    }
    return withTransforms(ObjectStore.layerMemory, [gauge], Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      const t = yield* Transforms.Transforms
      yield* es.append("g/1", [rec("a")])
      yield* eventually(Effect.map(t.get("gauge"), (i) => i.retrying !== undefined))
      assert.match((yield* t.get("gauge")).retrying!, /the TSDB is closing/)
      yield* eventually(Effect.map(t.get("gauge"), (i) => i.recordsIn === 1))
      assert.strictEqual(written.length, 1)
      assert.strictEqual((yield* t.get("gauge")).retrying, undefined)
    }), sink)
  })

  it.live("splits a batch whose outputs are over what one append to a log may hold", () => {
    const big = new Uint8Array(20 * 1024).fill(65)
    const fanIn = Transforms.define({ name: "fan-in", source: { prefix: "b/" }, transform: () => ({ key: "all", value: big }) })
    return Effect.provide(
      Effect.gen(function*() {
        const es = yield* EventStore.EventStore
        const t = yield* Transforms.Transforms
        // 300 records, 6 MiB of outputs to one log: more than one append (4 MiB) may hold.
        for (let i = 0; i < 3; i++) yield* es.append("b/1", Array.from({ length: 100 }, (_, j) => rec(`r${i * 100 + j}`)))
        yield* eventually(Effect.map(t.get("fan-in"), (info) => info.recordsIn === 300 || info.failedLogCount > 0))
        const info = yield* t.get("fan-in")
        assert.strictEqual(info.failedLogCount, 0)
        assert.isAbove(info.commits, 1)
        assert.strictEqual((yield* es.meta("all")).records, 300)
      }),
      Transforms.layer([fanIn], { batchRecords: 500 }).pipe(Layer.provideMerge(storeOn(ObjectStore.layerMemory)))
    )
  })

  it.live("a step that changes its state in place and then fails leaves no trace of that record in the state", () => {
    const mutating = Transforms.define({
      name: "mutating",
      source: { prefix: "s/" },
      transform: {
        initial: { n: 0 },
        step: (state: { n: number }, r) => {
          state.n += 1
          if (r.text() === "bad") throw new Error("bad record")
          return { state, outputs: { key: `n/${r.key}`, value: String(state.n) } }
        }
      }
    })
    return withTransforms(ObjectStore.layerMemory, [mutating], Effect.gen(function*() {
      const es = yield* EventStore.EventStore
      const t = yield* Transforms.Transforms
      yield* es.append("s/1", [rec("a"), rec("bad"), rec("c")])
      yield* es.append("s/2", [rec("x")])
      yield* eventually(Effect.map(t.get("mutating"), (i) => i.failedLogCount === 1 && i.recordsIn === 2))
      yield* t.skip("mutating", "s/1", 1)
      yield* eventually(Effect.map(values("n/s/1"), (v) => v.length === 2))
      // Each log counts from the initial state; the failed record counted for nothing.
      assert.deepStrictEqual(yield* values("n/s/1"), ["1", "2"])
      assert.deepStrictEqual(yield* values("n/s/2"), ["1"])
    }))
  })

  it.effect("refuses definitions that cannot run", () =>
    Effect.gen(function*() {
      const bad = [
        [{ name: "", source: { prefix: "a/" }, transform: () => undefined }, /name/],
        [{ name: "x", source: {}, transform: () => undefined }, /source/],
        [{ name: "x", source: { prefix: "a/" }, transform: { step: () => undefined } }, /transform must be/],
        [{ name: "x", source: { prefix: "a/" }, transform: 3 }, /transform must be/]
      ] as const
      for (const [definition, reason] of bad) {
        const error = yield* Effect.flip(Effect.scoped(Transforms.make([definition as any])).pipe(Effect.provide(storeOn(ObjectStore.layerMemory))))
        assert.match(error.message, reason)
      }
      const twice = yield* Effect.flip(Effect.scoped(Transforms.make([enrich, enrich])).pipe(Effect.provide(storeOn(ObjectStore.layerMemory))))
      assert.match(twice.message, /another transform has this name/)
    }))
})
