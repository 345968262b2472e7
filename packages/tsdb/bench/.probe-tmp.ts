import { Context, Effect, Layer, Scope } from "effect"
import { Db, ObjectStore } from "@opendata/core"
import { Tsdb } from "@opendata/tsdb"

const n = Number(process.argv[2] ?? 2000)
const main = Effect.gen(function*() {
  const scope = yield* Scope.make()
  const ctx = yield* Layer.buildWithScope(Tsdb.layer().pipe(Layer.provideMerge(Db.layer({ path: "tsdb/", flushIntervalMs: 100 })), Layer.provide(ObjectStore.layerMemory)), scope)
  const tsdb = Context.get(ctx, Tsdb.Tsdb)
  for (let round = 0; round < 3; round++) {
    const series = Array.from({ length: n }, (_, i) => ({ labels: [["__name__", "m"], ["i", `r${round}-${i}`]] as Array<[string, string]>, samples: [{ timestampMs: Date.now(), value: 1 }] }))
    const t0 = performance.now()
    yield* tsdb.write({ series })
    const t1 = performance.now()
    const again = series.map((s) => ({ labels: s.labels, samples: [{ timestampMs: Date.now() + 1000, value: 2 }] }))
    yield* tsdb.write({ series: again })
    console.log(`round ${round}: ${n} new series ${(t1 - t0).toFixed(0)} ms (${((t1 - t0) / n).toFixed(3)} ms each); same series again ${(performance.now() - t1).toFixed(0)} ms`)
  }
})
Effect.runPromise(main)
