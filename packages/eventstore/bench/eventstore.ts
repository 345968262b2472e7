/**
 * `npm run bench:eventstore`: the EventStore's figures on the local filesystem (default) and, with
 * `BENCH_BACKENDS=local,s3like`, on the memory store with S3-like latency (20-60 ms a request). Prints one
 * table, a row a phase:
 *
 * - append: records/s and MB/s (values) with 100 B and 1 KiB values at 1, 64 and 1,024 concurrent
 *   producers, each appending batches of one record to its own log and awaiting each append; the
 *   durable-ack latency p50/p99; the object PUTs per second meanwhile.
 * - tail: a `tail(key, now)` subscriber on one log while producers append to it; latency = from calling
 *   `append` to the tail receiving that record (matched by offset).
 * - read: a log of ~100k records (built with 1,000-record appends) read from offset 0 in pages of 1,000,
 *   cold (a fresh EventStore and Db over the same store) and warm (again, on the same instance).
 * - puts: object PUTs per second while producers append to a random log among 1,000 and among 1,000,000.
 *   Expected: about 1000/flushIntervalMs WAL PUTs plus table and manifest writes, flat between the two.
 *
 * Every phase runs on a fresh store. Knobs: BENCH_SECONDS (length of a timed phase, default 3),
 * BENCH_BACKENDS (default "local"), BENCH_READ_RECORDS (default 100000), BENCH_PUT_PRODUCERS (default 256).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Exit, Fiber, Layer, Scope, Stream } from "effect"
import { Db, ObjectStore } from "@opendata/core"
import type { EventStore } from "@opendata/eventstore"
import { make } from "@opendata/eventstore"

const seconds = Number(process.env["BENCH_SECONDS"] ?? 3)
const backends = (process.env["BENCH_BACKENDS"] ?? "local").split(",")
const readRecords = Number(process.env["BENCH_READ_RECORDS"] ?? 100_000)
const putProducers = Number(process.env["BENCH_PUT_PRODUCERS"] ?? 256)
/** The Db default (core Limits.flushIntervalMsDefault), stated here so the figures say what they ran with. */
const flushIntervalMs = 100

interface Counts {
  puts: number
  gets: number
  getBytes: number
  lists: number
  deletes: number
}

/** Counts the requests a store serves: every put, putIfAbsent and putIfMatch is a PUT. */
const counting = (store: ObjectStore.ObjectStoreShape, counts: Counts): ObjectStore.ObjectStoreShape => ({
  ...store,
  get: (k, r) =>
    Effect.suspend(() => ((counts.gets += 1), store.get(k, r))).pipe(
      Effect.tap((result) => Effect.sync(() => (counts.getBytes += result.body.length)))
    ),
  head: (k) => Effect.suspend(() => ((counts.gets += 1), store.head(k))),
  put: (k, b, o) => Effect.suspend(() => ((counts.puts += 1), store.put(k, b, o))),
  putIfAbsent: (k, b, o) => Effect.suspend(() => ((counts.puts += 1), store.putIfAbsent(k, b, o))),
  putIfMatch: (k, b, e, o) => Effect.suspend(() => ((counts.puts += 1), store.putIfMatch(k, b, e, o))),
  listPage: (p, o) => Effect.suspend(() => ((counts.lists += 1), store.listPage(p, o))),
  list: (p, o) => Stream.unwrap(Effect.sync(() => ((counts.lists += 1), store.list(p, o)))),
  delete: (k) => Effect.suspend(() => ((counts.deletes += 1), store.delete(k)))
})

const quantile = (sorted: ReadonlyArray<number>, q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN
const fmt = (n: number | undefined, digits = 0) => (n === undefined || Number.isNaN(n) ? "-" : n.toFixed(digits)).padStart(10)
const range = (n: number) => Array.from({ length: n }, (_, i) => i)

interface Row {
  readonly phase: string
  readonly value: string
  readonly producers: number
  readonly logs: number
  readonly recordsPerSecond: number
  readonly mbPerSecond?: number | undefined
  readonly p50?: number | undefined
  readonly p99?: number | undefined
  readonly putsPerSecond?: number | undefined
}

const header = () =>
  console.log(
    ["backend", "phase"].map((h) => h.padEnd(12)).join(" ") +
      ["value", "producers", "logs", "records/s", "MB/s", "p50 ms", "p99 ms", "PUTs/s"].map((h) => h.padStart(10)).join(" ")
  )
const print = (backend: string, r: Row) =>
  console.log(
    [backend, r.phase].map((h) => h.padEnd(12)).join(" ") +
      [
        r.value.padStart(10),
        fmt(r.producers),
        fmt(r.logs),
        fmt(r.recordsPerSecond),
        fmt(r.mbPerSecond, 2),
        fmt(r.p50, 1),
        fmt(r.p99, 1),
        fmt(r.putsPerSecond, 1)
      ].join(" ")
  )

/** Opens a Db at `eventstore/` over the store and the EventStore on it; `close` flushes and stops both. */
const open = Effect.fnUntraced(function*(store: ObjectStore.ObjectStoreShape) {
  const scope = yield* Scope.make()
  const es = yield* Effect.gen(function*() {
    const db = yield* Db.make({ path: "eventstore/", flushIntervalMs })
    return yield* Effect.provideService(make(), Db.Db, db)
  }).pipe(Effect.provideService(ObjectStore.ObjectStore, store), Scope.provide(scope))
  return { es, close: Scope.close(scope, Exit.void) }
})

/** Runs `f` on a fresh store of the backend (a temporary directory for `local`, removed after). */
const withStore = <A, E>(backend: string, f: (store: ObjectStore.ObjectStoreShape, counts: Counts) => Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const counts: Counts = { puts: 0, gets: 0, getBytes: 0, lists: 0, deletes: 0 }
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "opendata-bench-eventstore-"))
    const base = backend === "local"
      ? ObjectStore.layerLocal({ root })
      : ObjectStore.layerFaulty({ seed: 1, latencyMsMin: 20, latencyMsMax: 60 }).pipe(Layer.provide(ObjectStore.layerMemory))
    return yield* Effect.gen(function*() {
      return yield* f(counting(yield* ObjectStore.ObjectStore, counts), counts)
    }).pipe(
      Effect.provide(base),
      Effect.scoped,
      Effect.ensuring(Effect.sync(() => fs.rmSync(root, { recursive: true, force: true })))
    )
  })

/**
 * `producers` fibers append one record at a time for `seconds`, each awaiting its append; `logOf` picks
 * the log of each append. Returns the rate, ack latencies and PUT rate (PUTs counted during the phase).
 */
const appendLoad = Effect.fnUntraced(function*(
  es: EventStore.EventStoreShape,
  counts: Counts,
  producers: number,
  valueBytes: number,
  logOf: (producer: number) => string,
  onAppend?: (offset: number, startedMs: number) => void
) {
  const value = new Uint8Array(valueBytes).fill(7)
  const records = [{ value }]
  const latencies: Array<number> = []
  const putsBefore = counts.puts
  const start = performance.now()
  yield* Effect.forEach(range(producers), (p) =>
    Effect.gen(function*() {
      while (performance.now() - start < seconds * 1000) {
        const t0 = performance.now()
        const result = yield* es.append(logOf(p), records)
        latencies.push(performance.now() - t0)
        onAppend?.(result.offsets[0]!, t0)
      }
    }), { concurrency: "unbounded", discard: true })
  const elapsed = (performance.now() - start) / 1000
  latencies.sort((a, b) => a - b)
  return {
    appended: latencies.length,
    recordsPerSecond: latencies.length / elapsed,
    mbPerSecond: (latencies.length * valueBytes) / 1e6 / elapsed,
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
    putsPerSecond: (counts.puts - putsBefore) / elapsed
  }
})

const appendPhase = (store: ObjectStore.ObjectStoreShape, counts: Counts, producers: number, valueBytes: number) =>
  Effect.gen(function*() {
    const { es, close } = yield* open(store)
    const r = yield* appendLoad(es, counts, producers, valueBytes, (p) => `producer-${p}`)
    yield* close
    return { phase: "append", value: `${valueBytes}B`, producers, logs: producers, ...r } satisfies Row
  })

const tailPhase = (store: ObjectStore.ObjectStoreShape, counts: Counts, producers: number, valueBytes: number) =>
  Effect.gen(function*() {
    const { es, close } = yield* open(store)
    const key = "hot"
    const received = new Map<number, number>() // offset -> when the tail got it
    const sent = new Map<number, number>() // offset -> when its append was called
    const tailFiber = yield* Effect.forkChild(
      Stream.runForEach(es.tail(key, { _tag: "now" }), (event) =>
        Effect.sync(() => {
          if (event._tag !== "records") return
          const now = performance.now()
          for (const r of event.records) received.set(r.offset, now)
        }))
    )
    // The tail subscribes when its stream starts: append until it sees a record, then measure.
    const warmup = new Uint8Array(valueBytes)
    while (received.size === 0) {
      yield* es.append(key, [{ value: warmup }])
      yield* Effect.sleep("20 millis")
    }
    const load = yield* appendLoad(es, counts, producers, valueBytes, () => key, (offset, t0) => sent.set(offset, t0))
    const last = Math.max(...sent.keys())
    const deadline = performance.now() + 5000
    while (!received.has(last) && performance.now() < deadline) yield* Effect.sleep("10 millis")
    yield* Fiber.interrupt(tailFiber)
    yield* close
    const latencies: Array<number> = []
    let missing = 0
    for (const [offset, t0] of sent) {
      const t1 = received.get(offset)
      if (t1 === undefined) missing += 1
      else latencies.push(t1 - t0)
    }
    if (missing > 0) console.log(`  (tail: ${missing} of ${sent.size} appended records never reached the tail)`)
    latencies.sort((a, b) => a - b)
    return {
      phase: "tail",
      value: `${valueBytes}B`,
      producers,
      logs: 1,
      recordsPerSecond: load.recordsPerSecond,
      mbPerSecond: load.mbPerSecond,
      p50: quantile(latencies, 0.5),
      p99: quantile(latencies, 0.99),
      putsPerSecond: load.putsPerSecond
    } satisfies Row
  })

const readPhase = (store: ObjectStore.ObjectStoreShape, counts: Counts) =>
  Effect.gen(function*() {
    const key = "big"
    const valueBytes = 100
    const batchRecords = 1000
    const rows: Array<Row> = []
    const notes: Array<string> = []
    {
      // Build the log: 1,000-record appends, 16 at a time (the log's lock covers only the decision).
      const { es, close } = yield* open(store)
      const batch = range(batchRecords).map(() => ({ value: new Uint8Array(valueBytes).fill(7) }))
      const appends = Math.ceil(readRecords / batchRecords)
      const putsBefore = counts.puts
      const t0 = performance.now()
      const latencies: Array<number> = []
      yield* Effect.forEach(range(appends), () =>
        Effect.gen(function*() {
          const t = performance.now()
          yield* es.append(key, batch)
          latencies.push(performance.now() - t)
        }), { concurrency: 16, discard: true })
      const elapsed = (performance.now() - t0) / 1000
      latencies.sort((a, b) => a - b)
      rows.push({
        phase: "build x1000",
        value: `${valueBytes}B`,
        producers: 16,
        logs: 1,
        recordsPerSecond: (appends * batchRecords) / elapsed,
        mbPerSecond: (appends * batchRecords * valueBytes) / 1e6 / elapsed,
        p50: quantile(latencies, 0.5),
        p99: quantile(latencies, 0.99),
        putsPerSecond: (counts.puts - putsBefore) / elapsed
      })
      yield* close // flushes the memtable: the reads below come from a table in the store
    }
    const { es, close } = yield* open(store)
    const measure = (phase: string) =>
      Effect.gen(function*() {
        const getsBefore = counts.gets
        const getBytesBefore = counts.getBytes
        const t0 = performance.now()
        const pages: Array<number> = []
        let from = 0
        let n = 0
        for (;;) {
          const t = performance.now()
          const page = yield* es.read(key, { from, limit: 1000 })
          if (page.records.length === 0) break
          pages.push(performance.now() - t)
          n += page.records.length
          from = page.next
        }
        const elapsed = (performance.now() - t0) / 1000
        pages.sort((a, b) => a - b)
        notes.push(
          `${phase}: ${pages.length} pages, ${counts.gets - getsBefore} GETs, ` +
            `${((counts.getBytes - getBytesBefore) / 1e6).toFixed(1)} MB fetched for ${((n * valueBytes) / 1e6).toFixed(1)} MB of values`
        )
        return {
          phase,
          value: `${valueBytes}B`,
          producers: 1,
          logs: 1,
          recordsPerSecond: n / elapsed,
          mbPerSecond: (n * valueBytes) / 1e6 / elapsed,
          p50: quantile(pages, 0.5),
          p99: quantile(pages, 0.99)
        } satisfies Row
      })
    rows.push(yield* measure("read cold"))
    rows.push(yield* measure("read warm"))
    yield* close
    return { rows, notes }
  })

const putsPhase = (store: ObjectStore.ObjectStoreShape, counts: Counts, logs: number) =>
  Effect.gen(function*() {
    const { es, close } = yield* open(store)
    const r = yield* appendLoad(es, counts, putProducers, 100, () => `log-${Math.floor(Math.random() * logs)}`)
    yield* close
    return { phase: logs >= 1_000_000 ? "puts 1M logs" : "puts 1k logs", value: "100B", producers: putProducers, logs, ...r } satisfies Row
  })

const program = Effect.gen(function*() {
  console.log(
    `EventStore benchmark: flushIntervalMs ${flushIntervalMs} (the Db default), ${seconds}s per timed phase, ` +
      `backends ${backends.join(",")} (local = filesystem in a temp dir; s3like = memory store + 20-60 ms a request), ` +
      `a fresh store per phase, ${os.cpus().length} CPUs`
  )
  header()
  for (const backend of backends) {
    for (const valueBytes of [100, 1024]) {
      for (const producers of [1, 64, 1024]) {
        print(backend, yield* withStore(backend, (store, counts) => appendPhase(store, counts, producers, valueBytes)))
      }
    }
    print(backend, yield* withStore(backend, (store, counts) => tailPhase(store, counts, 64, 100)))
    const read = yield* withStore(backend, readPhase)
    for (const row of read.rows) print(backend, row)
    for (const note of read.notes) console.log(`  (${backend} ${note})`)
    for (const logs of [1_000, 1_000_000]) {
      print(backend, yield* withStore(backend, (store, counts) => putsPhase(store, counts, logs)))
    }
  }
  console.log(
    "append/tail/puts: producers each await their append (batches of 1 record); p50/p99 = durable-ack latency in ms " +
      "(tail: append call -> tail delivery; build: one 1,000-record append; read: one 1,000-record page). MB counts values."
  )
  console.log(
    `PUTs/s counts every put/putIfAbsent/putIfMatch (WAL, tables, manifests). Expected for puts rows: about ` +
      `1000/flushIntervalMs = ${1000 / flushIntervalMs} WAL PUTs/s plus table writes, flat between 1k and 1M logs.`
  )
})

Effect.runPromise(program).catch((e) => {
  console.error(e)
  process.exit(1)
})
