/**
 * `npm run bench:objectstore`: put and get throughput and latency of 4 KiB and 1 MiB objects against the
 * local filesystem store and, when one is configured (as for the S3 tests: `npm run s3:up` or
 * `OPENDATA_S3_ENDPOINT`), an S3 server. Prints one table row per backend, size and operation.
 *
 * Knobs: `BENCH_CONCURRENCY` (default 8), `BENCH_SCALE` (multiplies the op counts, default 1).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Layer } from "effect"
import { ObjectStore } from "@opendata/core"
import { findS3Server, ifMatchUnquoted } from "../test/s3Server.ts"

process.env["AWS_EC2_METADATA_DISABLED"] = "true"

const concurrency = Number(process.env["BENCH_CONCURRENCY"] ?? 8)
const scale = Number(process.env["BENCH_SCALE"] ?? 1)

interface Case {
  readonly label: string
  readonly bytes: number
  readonly ops: number
}

const quantile = (sorted: Array<number>, q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!

const measure = (ops: number, op: (i: number) => Effect.Effect<unknown, unknown>) =>
  Effect.gen(function*() {
    const latencies: Array<number> = []
    const started = performance.now()
    yield* Effect.forEach(
      Array.from({ length: ops }, (_, i) => i),
      (i) =>
        Effect.suspend(() => {
          const t0 = performance.now()
          return Effect.map(op(i), () => void latencies.push(performance.now() - t0))
        }),
      { concurrency, discard: true }
    )
    const seconds = (performance.now() - started) / 1000
    latencies.sort((a, b) => a - b)
    return { opsPerSecond: ops / seconds, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), seconds }
  })

const row = (cells: Array<string>) => console.log(cells.map((c, i) => (i < 3 ? c.padEnd(10) : c.padStart(12))).join(" "))

const runBackend = (backend: string, layer: Layer.Layer<ObjectStore.ObjectStore, ObjectStore.StoreUnusable>, cases: Array<Case>) =>
  Effect.gen(function*() {
    const store = yield* ObjectStore.ObjectStore
    for (const c of cases) {
      const body = new Uint8Array(c.bytes).map((_, i) => (i * 31) & 0xff)
      const key = (i: number) => `bench/${c.label}/${String(i).padStart(6, "0")}`
      const put = yield* measure(c.ops, (i) => store.put(key(i), body))
      const get = yield* measure(c.ops, (i) => store.get(key(i)))
      const mib = (r: { opsPerSecond: number }) => ((r.opsPerSecond * c.bytes) / 2 ** 20).toFixed(1)
      row([backend, c.label, "put", put.opsPerSecond.toFixed(0), mib(put), put.p50.toFixed(2), put.p99.toFixed(2), String(c.ops)])
      row([backend, c.label, "get", get.opsPerSecond.toFixed(0), mib(get), get.p50.toFixed(2), get.p99.toFixed(2), String(c.ops)])
      yield* Effect.forEach(Array.from({ length: c.ops }, (_, i) => key(i)), (k) => store.delete(k), { concurrency, discard: true })
    }
  }).pipe(Effect.provide(layer))

const program = Effect.gen(function*() {
  console.log(`object store benchmark: concurrency ${concurrency}; latency in ms`)
  row(["backend", "size", "op", "ops/s", "MiB/s", "p50 ms", "p99 ms", "ops"])
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "opendata-bench-"))
  try {
    yield* runBackend("local", ObjectStore.layerLocal({ root }), [
      { label: "4KiB", bytes: 4096, ops: 2000 * scale },
      { label: "1MiB", bytes: 1 << 20, ops: 200 * scale }
    ])
  } finally {
    fs.rmSync(root, { recursive: true, force: true })
  }
  const s3 = findS3Server()
  if (s3 === undefined) {
    console.log("s3: skipped (no server configured: run `npm run s3:up` or set OPENDATA_S3_ENDPOINT)")
    return
  }
  yield* runBackend(
    "s3",
    ObjectStore.layerS3({
      bucket: process.env["OPENDATA_S3_BUCKET"] ?? "opendata-bench",
      endpoint: s3.endpoint,
      region: s3.region,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      forcePathStyle: true,
      ifMatchUnquoted,
      createBucket: true,
      prefix: `bench-${process.pid}`
    }),
    [
      { label: "4KiB", bytes: 4096, ops: 500 * scale },
      { label: "1MiB", bytes: 1 << 20, ops: 100 * scale }
    ]
  )
})

Effect.runPromise(program).catch((e) => {
  console.error(e)
  process.exit(1)
})
