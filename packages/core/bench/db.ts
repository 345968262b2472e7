/**
 * `npm run bench:core`: the Db's write and read figures on the local filesystem and on the memory store
 * with S3-like latency (20-60 ms a request). Prints, per backend, value size and key space:
 * writes/s and MB/s (pipelined writers), durable-ack p50/p99 (awaiting writers), object PUTs per MB
 * written and per second, then point reads and scans, cold (fresh process state) and warm.
 *
 * Knobs: BENCH_SECONDS (write phase length, default 4), BENCH_BACKENDS (default "local,s3like").
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Exit, Layer, Scope, Stream } from "effect"
import { Db, ObjectStore } from "@opendata/core"

const seconds = Number(process.env["BENCH_SECONDS"] ?? 4)
const backends = (process.env["BENCH_BACKENDS"] ?? "local,s3like").split(",")
const flushIntervalMs = 100

interface Counts {
  puts: number
  gets: number
  lists: number
  deletes: number
  putBytes: number
}

/** Counts the requests a store serves. */
const counting = (store: ObjectStore.ObjectStoreShape, counts: Counts): ObjectStore.ObjectStoreShape => ({
  ...store,
  get: (k, r) => Effect.suspend(() => ((counts.gets += 1), store.get(k, r))),
  head: (k) => Effect.suspend(() => ((counts.gets += 1), store.head(k))),
  put: (k, b, o) => Effect.suspend(() => ((counts.puts += 1), (counts.putBytes += b.length), store.put(k, b, o))),
  putIfAbsent: (k, b, o) => Effect.suspend(() => ((counts.puts += 1), (counts.putBytes += b.length), store.putIfAbsent(k, b, o))),
  putIfMatch: (k, b, e, o) => Effect.suspend(() => ((counts.puts += 1), (counts.putBytes += b.length), store.putIfMatch(k, b, e, o))),
  listPage: (p, o) => Effect.suspend(() => ((counts.lists += 1), store.listPage(p, o))),
  list: (p, o) => Stream.unwrap(Effect.sync(() => ((counts.lists += 1), store.list(p, o)))),
  delete: (k) => Effect.suspend(() => ((counts.deletes += 1), store.delete(k)))
})

const quantile = (sorted: Array<number>, q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0
const fmt = (n: number, digits = 0) => n.toFixed(digits).padStart(10)

/** A deterministic key generator over a key space of `space` keys. */
const keyOf = (i: number, space: number) => {
  const k = (Math.imul(i + 1, 0x9e3779b1) >>> 0) % space
  return new TextEncoder().encode(`key-${String(k).padStart(8, "0")}`)
}

const openDb = (store: ObjectStore.ObjectStoreShape) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const db = yield* Db.make({ flushIntervalMs }).pipe(Effect.provideService(ObjectStore.ObjectStore, store), Scope.provide(scope))
    return { db, close: Scope.close(scope, Exit.void) }
  })

const writePhase = (store: ObjectStore.ObjectStoreShape, counts: Counts, valueBytes: number, space: number) =>
  Effect.gen(function*() {
    const { db, close } = yield* openDb(store)
    const value = new Uint8Array(valueBytes).fill(7)
    // Pipelined: writers do not wait for durability; the mailbox and the unflushed budget bound them.
    const before = { ...counts }
    const start = performance.now()
    let written = 0
    let last: Db.WriteResult | undefined
    while (performance.now() - start < seconds * 1000) {
      const batch = yield* Effect.forEach(Array.from({ length: 256 }, (_, i) => i), (i) =>
        db.put(keyOf(written + i, space), value, { awaitDurable: false }))
      written += batch.length
      last = batch.at(-1)
    }
    if (last !== undefined) yield* last.durable
    const elapsed = (performance.now() - start) / 1000
    const puts = counts.puts - before.puts
    const mb = (written * (valueBytes + 12)) / 1e6
    // Awaiting: 64 writers, each waiting for its write to be durable before the next.
    const latencies: Array<number> = []
    const ackStart = performance.now()
    yield* Effect.forEach(Array.from({ length: 64 }, (_, w) => w), (w) =>
      Effect.gen(function*() {
        let i = 0
        while (performance.now() - ackStart < 1500) {
          const t0 = performance.now()
          yield* db.put(keyOf(w * 100_000 + i++, space), value)
          latencies.push(performance.now() - t0)
        }
      }), { concurrency: "unbounded", discard: true })
    latencies.sort((a, b) => a - b)
    yield* close
    return {
      writesPerSecond: written / elapsed,
      mbPerSecond: mb / elapsed,
      putsPerSecond: puts / elapsed,
      putsPerMb: puts / mb,
      ackP50: quantile(latencies, 0.5),
      ackP99: quantile(latencies, 0.99),
      written
    }
  })

const readPhase = (store: ObjectStore.ObjectStoreShape, space: number, written: number) =>
  Effect.gen(function*() {
    const { db, close } = yield* openDb(store)
    yield* db.flush
    yield* close
    const reads = Math.min(2000, written)
    const measure = (db: Db.DbShape) =>
      Effect.gen(function*() {
        const t0 = performance.now()
        yield* Effect.forEach(Array.from({ length: reads }, (_, i) => i), (i) => db.get(keyOf(i * 7, space)), {
          concurrency: 16,
          discard: true
        })
        const getsPerSecond = reads / ((performance.now() - t0) / 1000)
        const t1 = performance.now()
        const entries = yield* Stream.runCount(db.scan())
        const scanPerSecond = entries / ((performance.now() - t1) / 1000)
        return { getsPerSecond, scanPerSecond, entries }
      })
    const reopened = yield* openDb(store)
    const cold = yield* measure(reopened.db)
    const warm = yield* measure(reopened.db)
    yield* reopened.close
    return { cold, warm }
  })

const program = Effect.gen(function*() {
  console.log(`Db benchmark: flushIntervalMs ${flushIntervalMs}, write phase ${seconds}s; 1000/flushIntervalMs = ${1000 / flushIntervalMs} WAL PUTs/s`)
  console.log(
    ["backend", "value", "keys"].map((h) => h.padEnd(8)).join(" ") +
      ["writes/s", "MB/s", "PUTs/s", "PUTs/MB", "ack p50", "ack p99", "get/s cold", "get/s warm", "scan/s cold", "scan/s warm"]
        .map((h) => h.padStart(10)).join(" ")
  )
  for (const backend of backends) {
    for (const valueBytes of [100, 4096]) {
      for (const space of [1_000, 1_000_000]) {
        const counts: Counts = { puts: 0, gets: 0, lists: 0, deletes: 0, putBytes: 0 }
        const root = fs.mkdtempSync(path.join(os.tmpdir(), "opendata-bench-db-"))
        const base = backend === "local"
          ? ObjectStore.layerLocal({ root })
          : ObjectStore.layerFaulty({ seed: 1, latencyMsMin: 20, latencyMsMax: 60 }).pipe(Layer.provide(ObjectStore.layerMemory))
        yield* Effect.gen(function*() {
          const store = counting(yield* ObjectStore.ObjectStore, counts)
          const w = yield* writePhase(store, counts, valueBytes, space)
          const r = yield* readPhase(store, space, w.written)
          console.log(
            [backend, `${valueBytes}B`, String(space)].map((h) => h.padEnd(8)).join(" ") +
              [
                fmt(w.writesPerSecond),
                fmt(w.mbPerSecond, 1),
                fmt(w.putsPerSecond, 1),
                fmt(w.putsPerMb, 2),
                fmt(w.ackP50, 1),
                fmt(w.ackP99, 1),
                fmt(r.cold.getsPerSecond),
                fmt(r.warm.getsPerSecond),
                fmt(r.cold.scanPerSecond),
                fmt(r.warm.scanPerSecond)
              ].join(" ")
          )
        }).pipe(Effect.provide(base), Effect.scoped)
        fs.rmSync(root, { recursive: true, force: true })
      }
    }
  }
  console.log("ack in ms; PUTs count every object-store write (WAL, tables, manifests); MB counts keys + values.")
})

Effect.runPromise(program).catch((e) => {
  console.error(e)
  process.exit(1)
})
