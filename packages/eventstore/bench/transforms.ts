/**
 * `npm run bench:transforms`: what a trivial transform costs, beside what the appends it follows cost, on
 * the local filesystem store (flush interval 0, as the server's default on a local disk).
 *
 * Two phases, one process, one store each:
 * - append: `BENCH_LOGS` logs get `BENCH_RECORDS` records in all, in appends of `BENCH_BATCH` records
 *   (64 appends in flight), no transform running;
 * - transform: a copy transform (`in/<k>` -> `out/<k>`, the value as it is) starts over those logs and runs
 *   until it has processed every record (its catch-up: read a batch, run the function, one transaction).
 * Each prints records/s and the process's CPU per record (user + system, so the Db's flushes and the
 * WAL writes are counted where they happen); the last line is the transform's cost relative to the appends.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Layer } from "effect"
import { Db, ObjectStore } from "@opendata/core"
import { EventStore, layer, Transforms } from "@opendata/eventstore"

const logs = Number(process.env["BENCH_LOGS"] ?? 100)
const total = Number(process.env["BENCH_RECORDS"] ?? 200_000)
const batch = Number(process.env["BENCH_BATCH"] ?? 100)
const value = new Uint8Array(100).fill(120)

const copy = Transforms.define({
  name: "copy",
  source: { prefix: "in/" },
  transform: (r) => ({ key: `out/${r.key.slice(3)}`, value: r.value })
})

const measure = async <A>(run: () => Promise<A>) => {
  const cpu = process.cpuUsage()
  const started = performance.now()
  const result = await run()
  const used = process.cpuUsage(cpu)
  return { result, ms: performance.now() - started, cpuMs: (used.user + used.system) / 1000 }
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "opendata-bench-transforms-"))
const store = layer({}).pipe(
  Layer.provide(Db.layer({ path: "eventstore/", flushIntervalMs: 0 })),
  Layer.provide(ObjectStore.layerLocal({ root: dir }))
)

const appendAll = Effect.gen(function*() {
  const es = yield* EventStore.EventStore
  const appends = Math.ceil(total / batch)
  yield* Effect.forEach(
    Array.from({ length: appends }, (_, i) => i),
    (i) => es.append(`in/${i % logs}`, Array.from({ length: batch }, () => ({ value }))),
    { concurrency: 64, discard: true }
  )
})

const transformAll = Effect.gen(function*() {
  const t = yield* Transforms.Transforms
  while ((yield* t.get("copy")).recordsIn < total) yield* Effect.sleep("5 millis")
})

const report = (phase: string, m: { ms: number; cpuMs: number }) => {
  const perSecond = Math.round(total / (m.ms / 1000))
  const cpuUs = (m.cpuMs * 1000) / total
  console.log(`${phase.padEnd(10)} ${String(perSecond).padStart(9)} records/s   ${cpuUs.toFixed(1).padStart(6)} us CPU per record   (${(m.ms / 1000).toFixed(2)} s)`)
  return cpuUs
}

console.log(`${total} records of 100 B in ${logs} logs, appends of ${batch}; local store in ${dir}`)
const appended = await measure(() => Effect.runPromise(Effect.scoped(Effect.provide(appendAll, store))))
const appendCpu = report("append", appended)
const transformed = await measure(() =>
  Effect.runPromise(Effect.scoped(Effect.provide(transformAll, Transforms.layer([copy]).pipe(Layer.provideMerge(store)))))
)
const transformCpu = report("transform", transformed)
console.log(`transform / append CPU per record: ${(transformCpu / appendCpu).toFixed(2)}x`)
fs.rmSync(dir, { recursive: true, force: true })
