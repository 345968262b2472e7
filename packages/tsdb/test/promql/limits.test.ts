import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { Db, ObjectStore } from "@opendata/core"
import * as Limits from "../../src/limits.ts"
import { instantQuery, QueryError, rangeQuery } from "../../src/promql/engine.ts"
import * as Runner from "../../src/promql/testRunner.ts"
import type { SelectOptions, SeriesSource } from "../../src/Tsdb.ts"
import { layer, Tsdb } from "../../src/Tsdb.ts"

const tooMany = (n: number) => `query processing would load too many samples into memory (more than ${n})`

/** A TSDB over a Db over a memory store, with `m{job="a"}` and `m{job="b"}`: 20 samples each, 1 s apart. */
const tsdbWithData = Effect.gen(function*() {
  const scope = yield* Scope.make()
  const context = yield* Layer.buildWithScope(
    layer({ retentionIntervalMs: Number.MAX_SAFE_INTEGER }).pipe(
      Layer.provide(Db.layer({ path: "tsdb/", flushIntervalMs: 0, memtableBytesMax: 64 * 1024, gc: false })),
      Layer.provide(ObjectStore.layerMemory)
    ),
    scope
  )
  const tsdb = Context.get(context, Tsdb)
  for (const job of ["a", "b"]) {
    yield* tsdb.write({
      series: [{ labels: [["__name__", "m"], ["job", job]], samples: Array.from({ length: 20 }, (_, i) => ({ timestampMs: 1_000 + i * 1_000, value: i })) }]
    })
  }
  return { tsdb, close: Scope.close(scope, Exit.void) }
})

describe("the query sample limit (querySamplesMax)", () => {
  it("is Prometheus's default, 50,000,000 samples", () => {
    assert.strictEqual(Limits.querySamplesMax, 50_000_000)
  })

  it.effect("is what the engine asks a source for by default, less what the query already loaded", () =>
    Effect.gen(function*() {
      const asked: Array<SelectOptions | undefined> = []
      const store = new Runner.MemoryStore()
      for (const c of Runner.parseScript("load 1s\n  m 0+1x19")) if (c.kind === "load") store.load(c)
      const inner = store.source({ histograms: false, startTimestamps: false })
      const source: SeriesSource = {
        select: (matchers, mint, maxt, options) => {
          asked.push(options)
          return inner.select(matchers, mint, maxt, options)
        }
      }
      yield* instantQuery(source, "count_over_time(m[1m]) + count_over_time(m[1m])", 19_000)
      assert.deepStrictEqual(asked.map((o) => o?.samplesMax), [Limits.querySamplesMax, Limits.querySamplesMax - 20])
    }))

  it.effect("fails a query that would load more samples, as Prometheus words it (an execution error: HTTP 422)", () =>
    Effect.gen(function*() {
      const { tsdb, close } = yield* tsdbWithData
      // 40 samples selected in all: the limit is inclusive.
      const ok = yield* instantQuery(tsdb, "count_over_time(m[1m])", 20_000, { samplesMax: 40 })
      assert.strictEqual(ok.type, "vector")
      const one = yield* Effect.flip(instantQuery(tsdb, "count_over_time(m[1m])", 20_000, { samplesMax: 39 }))
      assert.instanceOf(one, QueryError)
      assert.strictEqual(one.kind, "execution")
      assert.strictEqual(one.message, tooMany(39))
      // The budget is the query's, across its selectors.
      const two = yield* Effect.flip(rangeQuery(tsdb, 'm{job="a"} + m{job="b"}', 1_000, 20_000, 1_000, { samplesMax: 30 }))
      assert.strictEqual(two.kind, "execution")
      assert.strictEqual(two.message, tooMany(30))
      yield* close
    }))

  it.effect("holds for a source that does not enforce it itself", () =>
    Effect.gen(function*() {
      const store = new Runner.MemoryStore()
      for (const c of Runner.parseScript("load 1s\n  m{job=\"a\"} 0+1x19\n  m{job=\"b\"} 0+1x19")) if (c.kind === "load") store.load(c)
      const source = store.source({ histograms: false, startTimestamps: false })
      const error = yield* Effect.flip(instantQuery(source, "count_over_time(m[1m])", 19_000, { samplesMax: 39 }))
      assert.strictEqual(error.kind, "execution")
      assert.strictEqual(error.message, tooMany(39))
    }))
})
