/**
 * `npm run bench:tsdb`: remote-write ingestion into our TSDB, beside a real Prometheus (Debian's 2.42) fed
 * the same payloads in the same run.
 *
 * Payloads are realistic remote-write 1.0 requests (protobuf + snappy, as Prometheus sends them), built
 * once before any target runs and then sent unchanged to every target: node-exporter-like series
 * (`__name__`, `instance`, `job`, and a `cpu`/`device`/`mode` label on some), counters that grow,
 * gauges that wander, constants, exactly 15 s apart per series. Two shapes:
 *
 *   (a) 10,000 series x 1 sample per request, each request 15 s after the previous one;
 *   (b) 2,000 series x 50 samples per request (12.5 min of data per request);
 *   (h) native histograms: 2,000 histogram series x 1 histogram per request (request-latency histograms
 *       of schema 3, 20 buckets each, growing every 15 s), as integer histograms (what Prometheus sends);
 *       "samples" are histograms. Prometheus runs with `--enable-feature=native-histograms` to take them.
 *
 * `BENCH_SENDERS` (default 4) senders run concurrently, each owning its own series (as Prometheus's
 * remote-write shards do; so (a) writes 4 x 10,000 series) and sending its requests in order, awaiting
 * each ack. Each target first gets an untimed warm-up that creates every series (its first sample, 500
 * series a request, Prometheus 2.42's default batch; reported as series creation), then the timed
 * requests: the whole pool or `BENCH_SECONDS` (default 10) of it, whichever ends first (requests in
 * flight at the cap finish and count); samples/s = samples in acknowledged requests / wall time.
 *
 * Targets:
 *
 *   - ours in-process: `Tsdb.layer()` over `Db.layer({ path: "tsdb/", flushIntervalMs: 100 })` over a
 *     counting `ObjectStore.layerLocal` in a temp dir; each request goes through `decodeRemoteWrite` (snappy
 *     + protobuf, the HTTP handler's decoder) and `tsdb.write`, which returns once the batch is durable
 *     (its WAL object written and fsynced). Also printed: object PUTs per million samples (every put,
 *     putIfAbsent, putIfMatch from the start of the timed requests to closing the Db, its final memtable
 *     flush included, which also holds the warm-up's writes), and
 *     bytes per sample at rest: the Db closed, reopened, flushed, compacted until there is one sorted run
 *     and nothing left to compact, then garbage-collected with gcMinAgeMs 0; then the size of every object
 *     under the store root (WAL, SSTs with their index and bloom filters, manifests: everything the TSDB
 *     keeps: series dictionary, postings, chunks, head chunks) and, separately, the files on disk (the
 *     local store adds a small header to each object file). A breakdown by TSDB key kind (logical key +
 *     value bytes, before SST encoding) follows.
 *   - ours over HTTP: the runtime server process (`node packages/runtime/dist/main.js`, built first with
 *     `tsc -b packages/runtime`), `OPENDATA_STORE=local` in a temp dir, `POST /api/v1/write`.
 *   - Prometheus over HTTP: `prometheus --web.enable-remote-write-receiver` with its own temp storage,
 *     `POST /api/v1/write`. Its ack means "appended to the head and written to its WAL" (no fsync per
 *     request); ours means "in a WAL object that is fsynced". After its timed phase, Prometheus (run with
 *     `--web.enable-admin-api`) takes a snapshot, which writes its head out as a block: that block's bytes
 *     (chunk files and index, the index split into symbols, series, postings and tables) per sample are
 *     printed beside ours at rest, with the ratio.
 *
 * Each (shape, target) pair starts from empty storage (a fresh temp dir, a fresh process).
 *
 * CPU (the metric our targets are stated in), per target, for series creation and the steady phase
 * separately: the CPU seconds (user + system) the server spends on the phase, and samples/cpu-s = samples
 * in acknowledged requests / those seconds.
 *
 *   - ours in-process: `process.cpuUsage()` of this process. Only the in-process target runs while it is
 *     measured and the payloads are prebuilt, so this is the TSDB's work (decode, write, WAL, flushes,
 *     compaction) plus this process's share of driving it (the senders' promises; no HTTP).
 *   - over HTTP (ours and Prometheus): the server process's own utime + stime (fields 14 and 15 of
 *     /proc/<pid>/stat, all its threads, in clock ticks of `getconf CLK_TCK`); its children, if any, are
 *     not counted. The pid is the server's itself: if the command were a shell or npm, the descendant
 *     running the server's binary. The client (this process, building the requests' HTTP) is not counted.
 *
 * The "before" reading is taken right before a phase's first request. Deferred work counts: after a
 * phase's last ack the bench waits until the server's CPU stops growing (a reading every 250 ms; it stops
 * once two consecutive readings differ by less than one clock tick, or after 10 s) and takes the "after"
 * reading then, so work the server does after acking (flushes, compaction, head maintenance) is charged
 * to the phase that caused it, including the warm-up's (the timed phase starts once it has settled). The
 * "after" reading also holds whatever idle CPU the server uses while settling (under one tick in the last
 * 250 ms).
 * Also printed, `rss MB` (MiB): for the servers, their peak RSS so far (VmHWM of /proc/<pid>/status) at the
 * end of each phase; for ours in-process, this whole process's current RSS (`process.memoryUsage().rss`,
 * payloads included) at the end of each phase, as its peak is the bench's, not the TSDB's.
 * After each table: `ratio ours/Prometheus samples per CPU-second` for ours in-process and over HTTP
 * (only the pairs that ran). After the rounds, `memory over HTTP`: each server's resident memory (VmRSS)
 * once ready and once the timed phase has settled, and the growth per active series and per sample taken.
 *
 * Knobs: BENCH_SECONDS (cap per target and shape, default 10), BENCH_SENDERS (default 4),
 * BENCH_REQUESTS_A / BENCH_REQUESTS_B / BENCH_REQUESTS_H (payload pool per sender, defaults 60 / 10 / 60),
 * BENCH_SHAPES (comma list of `a`, `b`, `h`; default `a,b`), BENCH_TARGETS (comma list of `ours` (in-process), `http` (ours over
 * HTTP), `prometheus`; default all; skipped targets are not printed, and the runtime is built only when
 * `http` runs), PROMETHEUS_BIN (default /usr/bin/prometheus; skipped with a note when missing),
 * BENCH_SERVER_CPU_PROF (a directory: our server runs with `--cpu-prof` and writes its profile there),
 * BENCH_SERVER_NODE_ARGS (more arguments for our server's node, space-separated, e.g. V8 flags),
 * BENCH_SERVER_OUTPUT (a directory: each server's output is kept there, a file per process),
 * BENCH_KEEP_DATA (a directory: the in-process target's store, as ingestion left it, is copied to
 * `<dir>/shape-<name>/` before the at-rest steps: a data directory for `opendata compact` and `inspect`),
 * BENCH_ROUNDS (default 1: each shape's targets run this many times in turn, each from empty storage, and
 * each target's median samples per CPU-second follows with the ratio of the medians: on a noisy machine a
 * single round can be off by a fifth).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { Context, Effect, Exit, Layer, Scope, Stream } from "effect"
import { Db, ObjectStore } from "@opendata/core"
import { FloatHistogram, RemoteWrite, Tsdb, TsdbInspect } from "@opendata/tsdb"
import { decodeRemoteWrite, releaseRemoteWrite } from "../src/internal/remoteWriteAdapter.ts"
import { clockTicks, type Meter, processMeter, settle, statusMb } from "./process.ts"

const seconds = Number(process.env["BENCH_SECONDS"] ?? 10)
const senders = Number(process.env["BENCH_SENDERS"] ?? 4)
const requestsA = Number(process.env["BENCH_REQUESTS_A"] ?? 60)
const requestsB = Number(process.env["BENCH_REQUESTS_B"] ?? 10)
const requestsH = Number(process.env["BENCH_REQUESTS_H"] ?? 60)
const roundsPerShape = Math.max(1, Number(process.env["BENCH_ROUNDS"] ?? 1))
const prometheusBin = process.env["PROMETHEUS_BIN"] ?? "/usr/bin/prometheus"
/** A comma list knob: the names it lists (each one of `allowed`), or all of `allowed` when unset or empty. */
const listKnob = <A extends string>(name: string, allowed: ReadonlyArray<A>, defaults: ReadonlyArray<A> = allowed): ReadonlyArray<A> => {
  const listed = (process.env[name] ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "")
  const unknown = listed.filter((s) => !(allowed as ReadonlyArray<string>).includes(s))
  if (unknown.length > 0) throw new Error(`${name}: unknown ${unknown.join(", ")} (expected a comma list of ${allowed.join(", ")})`)
  return listed.length === 0 ? defaults : allowed.filter((a) => listed.includes(a))
}
const shapeNames = listKnob("BENCH_SHAPES", ["a", "b", "h"], ["a", "b"])
const targets = listKnob("BENCH_TARGETS", ["ours", "http", "prometheus"])
const flushIntervalMs = 100
const repoRoot = path.resolve(import.meta.dirname, "../../..")
const scrapeIntervalMs = 15_000
/** Series per request of the untimed warm-up that creates every series (Prometheus 2.42 sends 500 samples a request by default). */
const warmupSeriesPerRequest = 500

// -------------------------------------------------------------------------------------------------
// Payloads
// -------------------------------------------------------------------------------------------------

interface Shape {
  readonly name: string
  readonly seriesPerRequest: number
  readonly samplesPerSeries: number
  readonly requestsPerSender: number
  /** Native histograms instead of floats. */
  readonly histograms?: boolean
}

interface Payload {
  readonly body: Uint8Array
  readonly samples: number
}

/** A deterministic PRNG (mulberry32). */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

type Kind = "counter" | "cpu" | "gauge" | "bytes" | "const"
/** 25 metric families; with 4 values of their extra label, 100 series per host. */
const families: ReadonlyArray<{ readonly name: string; readonly kind: Kind; readonly extra?: string }> = [
  { name: "node_cpu_seconds_total", kind: "cpu", extra: "cpu" },
  { name: "node_network_receive_bytes_total", kind: "counter", extra: "device" },
  { name: "node_network_transmit_bytes_total", kind: "counter", extra: "device" },
  { name: "node_network_receive_packets_total", kind: "counter", extra: "device" },
  { name: "node_network_transmit_packets_total", kind: "counter", extra: "device" },
  { name: "node_disk_read_bytes_total", kind: "counter", extra: "device" },
  { name: "node_disk_written_bytes_total", kind: "counter", extra: "device" },
  { name: "node_disk_io_time_seconds_total", kind: "cpu", extra: "device" },
  { name: "node_filesystem_avail_bytes", kind: "bytes", extra: "mountpoint" },
  { name: "node_filesystem_size_bytes", kind: "const", extra: "mountpoint" },
  { name: "node_memory_MemAvailable_bytes", kind: "bytes", extra: "numa" },
  { name: "node_memory_Cached_bytes", kind: "bytes", extra: "numa" },
  { name: "node_load1", kind: "gauge", extra: "window" },
  { name: "node_context_switches_total", kind: "counter", extra: "shard" },
  { name: "node_intr_total", kind: "counter", extra: "shard" },
  { name: "node_schedstat_running_seconds_total", kind: "cpu", extra: "cpu" },
  { name: "node_schedstat_waiting_seconds_total", kind: "cpu", extra: "cpu" },
  { name: "node_softnet_processed_total", kind: "counter", extra: "cpu" },
  { name: "node_softnet_dropped_total", kind: "const", extra: "cpu" },
  { name: "node_hwmon_temp_celsius", kind: "gauge", extra: "sensor" },
  { name: "process_resident_memory_bytes", kind: "bytes", extra: "process" },
  { name: "process_open_fds", kind: "gauge", extra: "process" },
  { name: "http_requests_total", kind: "counter", extra: "code" },
  { name: "http_request_duration_seconds_sum", kind: "cpu", extra: "handler" },
  { name: "up", kind: "const", extra: "probe" }
]
const extraValues = ["0", "1", "2", "3"]

interface SeriesState {
  readonly labels: Array<[string, string]>
  readonly kind: Kind
  value: number
  /** ms offset of this series' scrapes within the interval (per host, as Prometheus spreads targets). */
  readonly offsetMs: number
}

/** The series a sender owns: `count` series over hosts of 100 series each. */
const seriesOf = (shape: string, sender: number, count: number, random: () => number): Array<SeriesState> =>
  Array.from({ length: count }, (_, j) => {
    const host = Math.floor(j / 100)
    const family = families[j % families.length]!
    const variant = extraValues[Math.floor((j % 100) / families.length)]!
    const labels: Array<[string, string]> = [
      ["__name__", family.name],
      ["instance", `host-${shape}-${sender}-${host}.example.internal:9100`],
      ["job", "node"]
    ]
    if (family.extra !== undefined) labels.push([family.extra, variant])
    const value = family.kind === "const" ? (family.name === "up" ? 1 : 1e9 * (1 + Math.floor(random() * 100))) : family.kind === "bytes" ? Math.floor(random() * 8e9) : family.kind === "gauge" ? Math.round(random() * 10000) / 100 : Math.floor(random() * 1e6)
    return { labels: labels.sort(([a], [b]) => (a < b ? -1 : 1)), kind: family.kind, value, offsetMs: (host * 137) % scrapeIntervalMs }
  })

const step = (s: SeriesState, random: () => number): number => {
  switch (s.kind) {
    case "const":
      return s.value
    case "counter":
      s.value += Math.floor(random() * 5000)
      return s.value
    case "cpu":
      s.value = Math.round((s.value + random() * 15) * 100) / 100
      return s.value
    case "gauge":
      s.value = Math.round(Math.max(0, s.value + (random() - 0.5) * 2) * 100) / 100
      return s.value
    case "bytes":
      s.value = Math.max(0, s.value + Math.floor((random() - 0.5) * 4096) * 4096)
      return s.value
  }
}

/** A latency histogram series: schema 3, 20 buckets from 2^(-5/8) on, counts growing by scrape. */
interface HistogramSeries {
  readonly labels: Array<[string, string]>
  readonly buckets: Array<number>
  sum: number
  readonly offsetMs: number
}

const histogramSeriesOf = (shape: string, sender: number, count: number): Array<HistogramSeries> =>
  Array.from({ length: count }, (_, j) => ({
    labels: ([
      ["__name__", "http_request_duration_seconds"],
      ["handler", `/api/${j % 20}`],
      ["instance", `host-${shape}-${sender}-${Math.floor(j / 20)}.example.internal:8080`],
      ["job", "api"]
    ] as Array<[string, string]>).sort(([a], [b]) => (a < b ? -1 : 1)),
    buckets: Array.from({ length: 20 }, () => 0),
    sum: 0,
    offsetMs: (Math.floor(j / 20) * 137) % scrapeIntervalMs
  }))

/** The series' next histogram: a few more observations, mostly in the middle buckets. */
const stepHistogram = (s: HistogramSeries, random: () => number): FloatHistogram => {
  for (let b = 0; b < s.buckets.length; b++) {
    const added = Math.floor(random() * (b > 5 && b < 14 ? 8 : 2))
    s.buckets[b]! += added
    s.sum += added * 2 ** ((b - 5) / 8)
  }
  const count = s.buckets.reduce((n, x) => n + x, 0)
  return new FloatHistogram({
    schema: 3,
    zeroThreshold: 2.938735877055719e-39,
    count,
    sum: Math.round(s.sum * 1000) / 1000,
    positiveSpans: [{ offset: -5, length: s.buckets.length }],
    positiveBuckets: [...s.buckets]
  })
}

const encode = (series: Array<RemoteWrite.Series>, samples: number): Payload => ({
  body: RemoteWrite.snappyCompress(RemoteWrite.encodeWriteRequestV1({ series, metadata: [], histograms: 0, exemplars: 0 })),
  samples
})

interface Pool {
  /** For each sender: its series' first sample, in requests of `warmupSeriesPerRequest` series. */
  readonly warmup: Array<Array<Payload>>
  /** For each sender: its timed requests, in order. */
  readonly timed: Array<Array<Payload>>
}

/** The payload pool (the same bodies for every target). */
const buildPool = (shape: Shape, startMs: number): Pool => {
  const warmup: Array<Array<Payload>> = []
  const timed: Array<Array<Payload>> = []
  for (let sender = 0; sender < senders; sender++) {
    const random = prng(1 + sender + shape.seriesPerRequest)
    if (shape.histograms === true) {
      const hseries = histogramSeriesOf(shape.name, sender, shape.seriesPerRequest)
      const first: Array<Payload> = []
      for (let i = 0; i < hseries.length; i += warmupSeriesPerRequest) {
        const chunk = hseries.slice(i, i + warmupSeriesPerRequest)
        first.push(encode(chunk.map((s) => ({ labels: s.labels, samples: [], histograms: [{ timestampMs: startMs - scrapeIntervalMs + s.offsetMs, histogram: stepHistogram(s, random) }] })), chunk.length))
      }
      warmup.push(first)
      const payloads: Array<Payload> = []
      let t = startMs
      for (let r = 0; r < shape.requestsPerSender; r++) {
        payloads.push(encode(hseries.map((s) => ({ labels: s.labels, samples: [], histograms: [{ timestampMs: t + s.offsetMs, histogram: stepHistogram(s, random) }] })), hseries.length))
        t += scrapeIntervalMs
      }
      timed.push(payloads)
      continue
    }
    const series = seriesOf(shape.name, sender, shape.seriesPerRequest, random)
    const first: Array<Payload> = []
    for (let i = 0; i < series.length; i += warmupSeriesPerRequest) {
      const chunk = series.slice(i, i + warmupSeriesPerRequest)
      first.push(encode(chunk.map((s) => ({ labels: s.labels, samples: [{ timestampMs: startMs - scrapeIntervalMs + s.offsetMs, value: s.value }] })), chunk.length))
    }
    warmup.push(first)
    const payloads: Array<Payload> = []
    let t = startMs
    for (let r = 0; r < shape.requestsPerSender; r++) {
      const out: Array<RemoteWrite.Series> = series.map((s) => ({ labels: s.labels, samples: [] }))
      for (let k = 0; k < shape.samplesPerSeries; k++) {
        for (let i = 0; i < series.length; i++) {
          const s = series[i]!
          out[i]!.samples.push({ timestampMs: t + s.offsetMs, value: step(s, random) })
        }
        t += scrapeIntervalMs
      }
      payloads.push(encode(out, shape.seriesPerRequest * shape.samplesPerSeries))
    }
    timed.push(payloads)
  }
  return { warmup, timed }
}

// -------------------------------------------------------------------------------------------------
// Measuring
// -------------------------------------------------------------------------------------------------

interface Result {
  readonly target: string
  readonly samples: number
  readonly requests: number
  readonly errors: number
  readonly firstError?: string | undefined
  readonly elapsedS: number
  readonly p50: number
  readonly p99: number
}

const quantile = (sorted: ReadonlyArray<number>, q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN

/**
 * Runs the senders: each sends its payloads in order, awaiting each ack, until its pool is done or the
 * time cap passes. `send` returns undefined on success or an error text.
 */
const drive = async (
  target: string,
  pool: ReadonlyArray<ReadonlyArray<Payload>>,
  send: (p: Payload) => Promise<string | undefined>,
  capSeconds = seconds
): Promise<Result> => {
  const latencies: Array<number> = []
  let samples = 0
  let errors = 0
  let firstError: string | undefined
  const start = performance.now()
  await Promise.all(pool.map(async (payloads) => {
    for (const p of payloads) {
      if (performance.now() - start > capSeconds * 1000) break
      const t0 = performance.now()
      const error = await send(p)
      latencies.push(performance.now() - t0)
      if (error === undefined) samples += p.samples
      else {
        errors += 1
        firstError ??= error
      }
    }
  }))
  const elapsedS = (performance.now() - start) / 1000
  latencies.sort((a, b) => a - b)
  return { target, samples, requests: latencies.length, errors, firstError, elapsedS, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) }
}

const selfMeter: Meter = {
  cpuS: () => {
    const u = process.cpuUsage()
    return (u.user + u.system) / 1e6
  },
  rssMb: () => process.memoryUsage().rss / 1024 / 1024
}

/**
 * Waits until the deferred work is done: reads the CPU every 250 ms until two consecutive readings
 * differ by less than one clock tick, or 10 s have passed; returns the last reading.
 */
const settleDeferred = async (meter: Meter): Promise<number> =>
  (await settle(meter, { intervalMs: 250, quietCpuS: 1 / clockTicks, maxMs: 10_000 })).cpuS

interface Phase {
  readonly result: Result
  /** CPU seconds from right before the first request to the settled reading after the last ack. */
  readonly cpuS: number
  readonly rssMb: number
}

/** Runs one phase (a `drive`) and charges it the CPU its server spends on it, deferred work included. */
const phase = async (meter: Meter, run: () => Promise<Result>): Promise<Phase> => {
  const before = meter.cpuS()
  const result = await run()
  const after = await settleDeferred(meter)
  return { result, cpuS: after - before, rssMb: meter.rssMb() }
}

// -------------------------------------------------------------------------------------------------
// Ours, in-process
// -------------------------------------------------------------------------------------------------

interface Counts {
  puts: number
  putBytes: number
  gets: number
  lists: number
  deletes: number
}

/** Counts the requests a store serves: every put, putIfAbsent and putIfMatch is a PUT. */
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

const filesBytes = (dir: string): number => {
  let total = 0
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name)
    if (entry.isDirectory()) total += filesBytes(p)
    else if (entry.isFile()) total += fs.statSync(p).size
  }
  return total
}

interface AtRest {
  readonly objects: number
  readonly objectBytes: number
  readonly fileBytes: number
  readonly inspection: TsdbInspect.Inspection
  readonly sortedRuns: number
  readonly l0: number
}

interface Run {
  readonly warmup: Phase
  readonly timed: Phase
  /** Prometheus only: its data as a block, from a snapshot of its head. */
  readonly block?: PrometheusBlock | undefined
  /** Over HTTP: the server's resident memory (VmRSS, MiB) once ready, and once the timed phase has settled. */
  readonly memory?: { readonly idleMb: number; readonly heldMb: number } | undefined
}


/** A Prometheus block's bytes: its chunk files and its index, by index section (from the index's table of contents). */
interface PrometheusBlock {
  readonly samples: number
  readonly series: number
  readonly chunkBytes: number
  readonly indexBytes: number
  readonly symbols: number
  readonly seriesSection: number
  readonly postings: number
  /** Label indices, their offset table and the postings offset table. */
  readonly tables: number
}

/**
 * Prometheus's data at rest as its own blocks: a snapshot of the TSDB with its head (`POST
 * /api/v1/admin/tsdb/snapshot`, which writes the head out as a block, as compaction would), then every
 * block in it: the chunk files and the index, split by the index's table of contents (six big-endian u64
 * offsets and a CRC32 at its end: symbols, series, label indices, label offset table, postings, postings
 * offset table).
 */
const snapshotBlock = async (base: string, dataDir: string): Promise<PrometheusBlock | undefined> => {
  const response = await fetch(`${base}/api/v1/admin/tsdb/snapshot`, { method: "POST" })
  if (!response.ok) return undefined
  const name = ((await response.json()) as { data?: { name?: string } }).data?.name
  if (name === undefined) return undefined
  const root = path.join(dataDir, "snapshots", name)
  const total = { samples: 0, series: 0, chunkBytes: 0, indexBytes: 0, symbols: 0, seriesSection: 0, postings: 0, tables: 0 }
  for (const block of fs.readdirSync(root)) {
    const dir = path.join(root, block)
    const meta = JSON.parse(fs.readFileSync(path.join(dir, "meta.json"), "utf8")) as { stats?: { numSamples?: number; numSeries?: number } }
    total.samples += meta.stats?.numSamples ?? 0
    total.series += meta.stats?.numSeries ?? 0
    for (const f of fs.readdirSync(path.join(dir, "chunks"))) total.chunkBytes += fs.statSync(path.join(dir, "chunks", f)).size
    const index = fs.readFileSync(path.join(dir, "index"))
    total.indexBytes += index.length
    const toc = index.length - 52
    const at = (i: number) => Number(index.readBigUInt64BE(toc + 8 * i))
    const [symbols, series, labelIndices, , postings] = [at(0), at(1), at(2), at(3), at(4)]
    total.symbols += series - symbols
    total.seriesSection += labelIndices - series
    total.postings += at(5) - postings
    total.tables += postings - labelIndices + toc - at(5)
  }
  return total
}

const inProcess = async (pool: Pool, shapeName: string) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "opendata-bench-tsdb-"))
  try {
    const counts: Counts = { puts: 0, putBytes: 0, gets: 0, lists: 0, deletes: 0 }
    const store = Layer.effect(ObjectStore.ObjectStore, Effect.map(ObjectStore.ObjectStore, (s) => counting(s, counts))).pipe(
      Layer.provide(ObjectStore.layerLocal({ root }))
    )
    // Ingest: the TSDB as the runtime builds it (background GC off: it runs once at the end, below).
    const ingest = await Effect.runPromise(Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        Tsdb.layer().pipe(Layer.provideMerge(Db.layer({ path: "tsdb/", flushIntervalMs, gc: false })), Layer.provide(store)),
        scope
      )
      const tsdb = Context.get(context, Tsdb.Tsdb)
      const db = Context.get(context, Db.Db)
      // What the HTTP handler does with a body: decode (snappy + protobuf; label sets seen before are
      // taken as they were decoded), write, answer once durable.
      const interner = new RemoteWrite.LabelsInterner(1_000_000)
      const send = (p: Payload) =>
        Effect.runPromise(Effect.gen(function*() {
          const decoded = decodeRemoteWrite(p.body, false, interner)
          const outcome = yield* tsdb.write({ series: decoded.series, metadata: decoded.metadata })
          releaseRemoteWrite(decoded)
          const written = outcome.samplesWritten + (outcome.histogramsWritten ?? 0)
          return written === p.samples ? undefined : `${p.samples - written} samples not written`
        }).pipe(Effect.catch((e) => Effect.succeed(e.message))))
      const warmup = yield* Effect.promise(() => phase(selfMeter, () => drive("ours in-process", pool.warmup, send, Number.POSITIVE_INFINITY)))
      const before = { puts: counts.puts, putBytes: counts.putBytes, stats: yield* db.stats }
      const timed = yield* Effect.promise(() => phase(selfMeter, () => drive("ours in-process", pool.timed, send)))
      const after = yield* db.stats
      yield* Scope.close(scope, Exit.void) // flushes the memtable
      return {
        run: { warmup, timed } satisfies Run,
        puts: counts.puts - before.puts,
        putBytes: counts.putBytes - before.putBytes,
        walObjects: after.walObjectsWritten - before.stats.walObjectsWritten,
        tables: after.tablesWritten - before.stats.tablesWritten,
        compactions: after.compactions - before.stats.compactions
      }
    }))
    // BENCH_KEEP_DATA: the store as ingestion left it, copied out (a data directory for `opendata compact`
    // and `opendata inspect --data-dir`), one directory per shape.
    const keep = process.env["BENCH_KEEP_DATA"]
    if (keep !== undefined && keep !== "") fs.cpSync(root, path.join(keep, `shape-${shapeName}`), { recursive: true })
    // At rest: reopen, flush, compact to one sorted run, collect garbage with no minimum age.
    const atRest = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const db = yield* Db.make({ path: "tsdb/", flushIntervalMs, gc: false, gcMinAgeMs: 0, l0CompactionTrigger: 1, sortedRunsMax: 1 })
      yield* db.flush
      while (yield* db.compact) {
        // until there is nothing left to compact
      }
      while ((yield* db.collectGarbage) > 0) {
        // until a pass deletes nothing
      }
      const stats = yield* db.stats
      const inspection = yield* Effect.provideService(TsdbInspect.inspect, Db.Db, db)
      const objects = yield* Stream.runCollect((yield* ObjectStore.ObjectStore).list(""))
      return {
        objects: objects.length,
        objectBytes: objects.reduce((n, o) => n + o.size, 0),
        fileBytes: 0,
        inspection,
        sortedRuns: stats.sortedRuns,
        l0: stats.l0Tables
      } satisfies AtRest
    }).pipe(Effect.provide(ObjectStore.layerLocal({ root })))))
    return { ...ingest, atRest: { ...atRest, fileBytes: filesBytes(root) } }
  } finally {
    fs.rmSync(root, { recursive: true, force: true })
  }
}

// -------------------------------------------------------------------------------------------------
// Over HTTP: our server process and Prometheus
// -------------------------------------------------------------------------------------------------

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = net.createServer()
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
    server.on("error", reject)
  })

interface Proc {
  readonly child: ChildProcess
  readonly exited: Promise<number | null>
  readonly output: () => string
}

const launch = (command: string, args: ReadonlyArray<string>, env: Record<string, string> = {}): Proc => {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] })
  let output = ""
  // BENCH_SERVER_OUTPUT=<dir>: everything a server prints, kept in <dir>/<command>-<pid>.log (with --trace-gc, say).
  const outputDir = process.env["BENCH_SERVER_OUTPUT"]
  if (outputDir !== undefined) fs.mkdirSync(outputDir, { recursive: true })
  const keep = (d: Buffer) => {
    output = (output + d.toString()).slice(-20_000)
    if (outputDir !== undefined) fs.appendFileSync(path.join(outputDir, `${path.basename(command)}-${child.pid}.log`), d)
  }
  child.stdout!.on("data", keep)
  child.stderr!.on("data", keep)
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  return { child, exited, output: () => output }
}

const waitReady = async (url: string, proc: Proc, what: string) => {
  const until = Date.now() + 60_000
  for (;;) {
    if (await fetch(url).then((r) => r.ok, () => false)) return
    if (proc.child.exitCode !== null || Date.now() > until) throw new Error(`${what} did not come up:\n${proc.output()}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

const stop = async (proc: Proc, what: string) => {
  if (proc.child.exitCode !== null) return proc.child.exitCode
  proc.child.kill("SIGTERM")
  const code = await Promise.race([proc.exited, new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 30_000))])
  if (code === "timeout") {
    proc.child.kill("SIGKILL")
    console.log(`  (${what} did not stop within 30 s of SIGTERM; killed)`)
    return null
  }
  return code
}

/**
 * The pid of the process running `exe`: `pid` itself, or, were the server started through a shell or npm,
 * its first descendant (breadth first, /proc/<pid>/task/<tid>/children) whose /proc/<pid>/exe is `exe`.
 */
const serverPid = (pid: number, exe: string): number => {
  const want = fs.realpathSync(exe)
  const queue = [pid]
  for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
    try {
      if (fs.readlinkSync(`/proc/${p}/exe`) === want) return p
      for (const task of fs.readdirSync(`/proc/${p}/task`)) {
        const children = fs.readFileSync(`/proc/${p}/task/${task}/children`, "utf8").trim()
        if (children !== "") queue.push(...children.split(/\s+/).map(Number))
      }
    } catch {
      // gone, or not ours to read: not the server
    }
  }
  throw new Error(`no process running ${want} at or under pid ${pid}`)
}

const remoteWrite = (url: string) => async (p: Payload): Promise<string | undefined> => {
  const response = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/x-protobuf",
      "content-encoding": "snappy",
      "x-prometheus-remote-write-version": "0.1.0",
      "user-agent": "opendata-bench-tsdb"
    },
    body: p.body
  })
  const text = await response.text()
  return response.status >= 200 && response.status < 300 ? undefined : `${response.status} ${text.slice(0, 200)}`
}

const overHttpOurs = async (pool: Pool): Promise<Run> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "opendata-bench-tsdb-server-"))
  const port = await freePort()
  // BENCH_SERVER_CPU_PROF=<dir>: the server writes a CPU profile there when it exits.
  const profile = process.env["BENCH_SERVER_CPU_PROF"]
  // BENCH_SERVER_NODE_ARGS: more arguments for the server's node (e.g. V8 flags), space-separated.
  const nodeArgs = (process.env["BENCH_SERVER_NODE_ARGS"] ?? "").split(" ").filter((a) => a !== "")
  const proc = launch(process.execPath, [...nodeArgs, ...(profile === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${profile}`]), path.join(repoRoot, "packages/runtime/dist/main.js")], {
    OPENDATA_STORE: "local",
    OPENDATA_DATA_DIR: dir,
    OPENDATA_HOST: "127.0.0.1",
    OPENDATA_PORT: String(port)
  })
  try {
    const base = `http://127.0.0.1:${port}`
    await waitReady(`${base}/-/ready`, proc, "our server")
    const pid = serverPid(proc.child.pid!, process.execPath)
    const meter = processMeter(pid)
    const send = remoteWrite(`${base}/api/v1/write`)
    const idleMb = statusMb(pid, "VmRSS")
    const warmup = await phase(meter, () => drive("ours over HTTP", pool.warmup, send, Number.POSITIVE_INFINITY))
    const timed = await phase(meter, () => drive("ours over HTTP", pool.timed, send))
    const memory = { idleMb, heldMb: statusMb(pid, "VmRSS") }
    const code = await stop(proc, "our server")
    if (code !== 0) console.log(`  (our server exited with ${code}:\n${proc.output().slice(-2000)})`)
    return { warmup, timed, memory }
  } finally {
    if (proc.child.exitCode === null) proc.child.kill("SIGKILL")
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

const overHttpPrometheus = async (pool: Pool): Promise<Run> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "opendata-bench-prometheus-"))
  const port = await freePort()
  fs.writeFileSync(path.join(dir, "prometheus.yml"), "global:\n  scrape_interval: 1m\n")
  const proc = launch(prometheusBin, [
    `--config.file=${path.join(dir, "prometheus.yml")}`,
    `--web.listen-address=127.0.0.1:${port}`,
    `--storage.tsdb.path=${path.join(dir, "data")}`,
    "--web.enable-remote-write-receiver",
    // For the snapshot that writes its head out as a block (its bytes at rest).
    "--web.enable-admin-api",
    // Takes native histograms by remote write (shape h); floats are stored as without it.
    "--enable-feature=native-histograms"
  ])
  try {
    const base = `http://127.0.0.1:${port}`
    await waitReady(`${base}/-/ready`, proc, "Prometheus")
    const pid = serverPid(proc.child.pid!, prometheusBin)
    const meter = processMeter(pid)
    const send = remoteWrite(`${base}/api/v1/write`)
    const idleMb = statusMb(pid, "VmRSS")
    const warmup = await phase(meter, () => drive("Prometheus over HTTP", pool.warmup, send, Number.POSITIVE_INFINITY))
    const timed = await phase(meter, () => drive("Prometheus over HTTP", pool.timed, send))
    const memory = { idleMb, heldMb: statusMb(pid, "VmRSS") }
    const block = await snapshotBlock(base, path.join(dir, "data"))
    const code = await stop(proc, "Prometheus")
    if (code !== 0) console.log(`  (Prometheus exited with ${code})`)
    return { warmup, timed, block, memory }
  } finally {
    if (proc.child.exitCode === null) proc.child.kill("SIGKILL")
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

// -------------------------------------------------------------------------------------------------
// Report
// -------------------------------------------------------------------------------------------------

const fmt = (n: number, digits = 0) => (!Number.isFinite(n) ? "-" : n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits }))

const columns = ["samples", "requests", "seconds", "samples/s", "ack p50 ms", "ack p99 ms", "errors", "cpu s", "samples/cpu-s", "rss MB"]
const line = (first: string, cells: ReadonlyArray<string>) =>
  console.log("  " + first.padEnd(22) + cells.map((c, i) => c.padStart(Math.max(12, columns[i]!.length + 2))).join(""))

const header = () => line("target", columns)

const row = ({ result: r, cpuS, rssMb }: Phase) => {
  line(r.target, [
    fmt(r.samples),
    fmt(r.requests),
    fmt(r.elapsedS, 1),
    fmt(r.samples / r.elapsedS),
    fmt(r.p50, 1),
    fmt(r.p99, 1),
    fmt(r.errors),
    fmt(cpuS, 2),
    fmt(r.samples / cpuS),
    fmt(rssMb)
  ])
  if (r.firstError !== undefined) console.log(`    first error: ${r.firstError}`)
}

const perCpu = (p: Phase) => p.result.samples / p.cpuS

/** `ratio ours/Prometheus samples per CPU-second: ...` for the pairs that ran (nothing without Prometheus). */
const ratios = (ours: Phase | undefined, http: Phase | undefined, prom: Phase | undefined) => {
  if (prom === undefined || (ours === undefined && http === undefined)) return
  const parts = [
    ...(ours === undefined ? [] : [`in-process ${fmt(perCpu(ours) / perCpu(prom), 2)}`]),
    ...(http === undefined ? [] : [`HTTP ${fmt(perCpu(http) / perCpu(prom), 2)}`])
  ]
  console.log(`  ratio ours/Prometheus samples per CPU-second: ${parts.join(", ")}`)
}

/**
 * What a server holds for its series, over HTTP: resident memory (VmRSS) once the timed phase has settled,
 * less what it held once ready, per active series and per sample it took (all of them are in Prometheus's
 * head; ours holds the recent chunks, the memtable and its caches); medians over the rounds.
 */
const memoryReport = (http: ReadonlyArray<Run | undefined>, prom: ReadonlyArray<Run | undefined>, series: number) => {
  const figures = (runs: ReadonlyArray<Run | undefined>) => {
    const ran = runs.filter((r) => r?.memory !== undefined) as ReadonlyArray<Run & { memory: NonNullable<Run["memory"]> }>
    if (ran.length === 0) return undefined
    const samples = ran[0]!.warmup.result.samples + ran[0]!.timed.result.samples
    const idle = median(ran.map((r) => r.memory.idleMb))
    const held = median(ran.map((r) => r.memory.heldMb))
    const grown = (held - idle) * 1024 * 1024
    return { idle, held, perSeries: grown / series, perSample: grown / samples, samples }
  }
  const ours = figures(http)
  const theirs = figures(prom)
  const line = (name: string, f: NonNullable<ReturnType<typeof figures>>) =>
    `    ${name.padEnd(22)} idle ${fmt(f.idle)} MB, holding ${fmt(f.held)} MB after ${fmt(f.samples)} samples of ${fmt(series)} series: ` +
    `${fmt(f.perSeries / 1024, 2)} KiB per active series, ${fmt(f.perSample, 1)} B per sample`
  if (ours === undefined && theirs === undefined) return
  console.log(`  memory over HTTP (VmRSS once ready, and once the timed phase settled; medians over the rounds)`)
  if (ours !== undefined) console.log(line("ours over HTTP", ours))
  if (theirs !== undefined) console.log(line("Prometheus over HTTP", theirs))
  if (ours !== undefined && theirs !== undefined) {
    console.log(`  ratio ours/Prometheus resident memory per active series: ${fmt(ours.perSeries / theirs.perSeries, 2)}`)
  }
}

/** The median of some numbers (the mean of the middle two for an even count). */
const median = (xs: ReadonlyArray<number>): number => {
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** Each target's median samples per CPU-second over the rounds, for creation and the steady state, and their ratios. */
const medians = (rounds: ReadonlyArray<{ ours: Run | undefined; http: Run | undefined; prom: Run | undefined }>) => {
  console.log(`  medians over ${rounds.length} rounds, samples/cpu-s (each round's figures in order)`)
  const of = (pick: (r: (typeof rounds)[number]) => Run | undefined, phase: "warmup" | "timed") => {
    const xs = rounds.map(pick).filter((r) => r !== undefined).map((r) => perCpu(r[phase]))
    return xs.length === 0 ? undefined : { median: median(xs), all: xs }
  }
  for (const phase of ["warmup", "timed"] as const) {
    type Round = (typeof rounds)[number]
    const pickers: ReadonlyArray<readonly [string, (r: Round) => Run | undefined]> = [
      ["ours in-process", (r) => r.ours],
      ["ours over HTTP", (r) => r.http],
      ["Prometheus over HTTP", (r) => r.prom]
    ]
    const lines = pickers.map(([name, pick]) => [name, of(pick, phase)] as const)
    const prom = lines[2]![1]
    for (const [name, m] of lines) {
      if (m === undefined) continue
      const ratio = prom === undefined || name.startsWith("Prometheus") ? "" : `  ratio to Prometheus's median ${fmt(m.median / prom.median, 2)}`
      console.log(`    ${phase === "warmup" ? "series creation" : "steady state   "}  ${name.padEnd(22)} ${fmt(m.median).padStart(10)}  (${m.all.map((x) => fmt(x)).join(", ")})${ratio}`)
    }
  }
}

const main = async () => {
  const prometheusVersion = targets.includes("prometheus") && fs.existsSync(prometheusBin)
    ? execFileSync(prometheusBin, ["--version"], { encoding: "utf8" }).split("\n")[0]!.replace(/^prometheus, /, "")
    : undefined
  console.log(
    `TSDB benchmark: ${senders} concurrent senders, each awaiting its ack; cap ${seconds}s per target and shape; ` +
      `flushIntervalMs ${flushIntervalMs}; ${os.cpus().length} CPUs; node ${process.versions.node}; ` +
      `shapes ${shapeNames.join(",")}; targets ${targets.join(",")}; ` +
      `Prometheus ${
        !targets.includes("prometheus") ? "not selected" : prometheusVersion ?? `not found at ${prometheusBin}: skipped`
      }`
  )
  // Our server is started as `npm start` starts it: build it first.
  if (targets.includes("http")) {
    execFileSync(process.execPath, [path.join(repoRoot, "node_modules/typescript/bin/tsc"), "-b", "packages/runtime"], { cwd: repoRoot, stdio: "inherit" })
    // Then the bundle over what tsc wrote: the server as `npm start` runs it.
    execFileSync(process.execPath, [path.join(repoRoot, "packages/runtime/scripts/bundle.mjs")], { cwd: repoRoot, stdio: "inherit" })
  }

  const shapes: ReadonlyArray<Shape> = ([
    { name: "a", seriesPerRequest: 10_000, samplesPerSeries: 1, requestsPerSender: requestsA },
    { name: "b", seriesPerRequest: 2_000, samplesPerSeries: 50, requestsPerSender: requestsB },
    { name: "h", seriesPerRequest: 2_000, samplesPerSeries: 1, requestsPerSender: requestsH, histograms: true }
  ] satisfies Array<Shape>).filter((s) => (shapeNames as ReadonlyArray<string>).includes(s.name))
  for (const shape of shapes) {
    // Data ending about now: a fresh Prometheus accepts any start, but nothing older than its head's
    // newest sample minus an hour, so the senders' timelines stay together (they do the same work).
    const spanMs = shape.requestsPerSender * shape.samplesPerSeries * scrapeIntervalMs
    const startMs = Math.floor((Date.now() - spanMs - 60_000) / scrapeIntervalMs) * scrapeIntervalMs
    const t0 = performance.now()
    const pool = buildPool(shape, startMs)
    const bodies = pool.timed.flat()
    const compressed = bodies.reduce((n, p) => n + p.body.length, 0)
    const perRequest = shape.seriesPerRequest * shape.samplesPerSeries
    const seriesAll = senders * shape.seriesPerRequest
    console.log(
      `\n(${shape.name}) ${fmt(shape.seriesPerRequest)} series x ${shape.samplesPerSeries} sample${shape.samplesPerSeries > 1 ? "s" : ""} per request ` +
        `(${fmt(perRequest)} samples; ${fmt(compressed / bodies.length / 1024, 0)} KiB compressed, ` +
        `${fmt(compressed / (bodies.length * perRequest), 2)} B/sample on the wire); ${senders} senders with ${fmt(shape.seriesPerRequest)} series each ` +
        `(${fmt(seriesAll)} in all), a pool of ${shape.requestsPerSender} requests each; built in ${fmt((performance.now() - t0) / 1000, 1)}s`
    )
    // Each round runs every target afresh, in turn (BENCH_ROUNDS > 1: the medians follow the rounds).
    const rounds: Array<{ ours: Awaited<ReturnType<typeof inProcess>> | undefined; http: Run | undefined; prom: Run | undefined }> = []
    for (let round = 1; round <= roundsPerShape; round++) {
      const ours = targets.includes("ours") ? await inProcess(pool, shape.name) : undefined
      const http = targets.includes("http") ? await overHttpOurs(pool) : undefined
      const prom = prometheusVersion === undefined ? undefined : await overHttpPrometheus(pool)
      rounds.push({ ours, http, prom })
      const runs = [ours?.run, http, prom].filter((r) => r !== undefined)
      if (runs.length === 0) continue
      if (roundsPerShape > 1) console.log(`  round ${round} of ${roundsPerShape}`)
      console.log(`  series creation (untimed warm-up: every series' first sample, ${warmupSeriesPerRequest} series a request; samples = new series)`)
      header()
      for (const run of runs) row(run.warmup)
      ratios(ours?.run.warmup, http?.warmup, prom?.warmup)
      console.log(`  steady state (existing series; cap ${seconds}s)`)
      header()
      for (const run of runs) row(run.timed)
      ratios(ours?.run.timed, http?.timed, prom?.timed)
    }
    if (roundsPerShape > 1) medians(rounds.map((r) => ({ ours: r.ours?.run, http: r.http, prom: r.prom })))
    memoryReport(rounds.map((r) => r.http), rounds.map((r) => r.prom), seriesAll)
    const ours = rounds[0]?.ours
    if (ours === undefined) continue

    const samples = ours.run.timed.result.samples
    console.log(
      `  ours in-process: ${fmt(ours.puts)} object PUTs in the timed phase and the final flush = ${fmt((ours.puts / samples) * 1e6)} per million samples ` +
        `(WAL objects ${fmt(ours.walObjects)}, tables ${fmt(ours.tables)}, compactions ${fmt(ours.compactions)}; ` +
        `${fmt(ours.putBytes / 1e6, 1)} MB put = ${fmt(ours.putBytes / samples, 1)} B per sample)`
    )
    const stored = samples + ours.run.warmup.result.samples
    const r = ours.atRest
    console.log(
      `  at rest (closed, reopened, flushed, compacted to ${r.sortedRuns} sorted run${r.sortedRuns === 1 ? "" : "s"} + ${r.l0} L0 tables, GC'd with gcMinAgeMs 0): ` +
        `${fmt(r.objects)} objects, ${fmt(r.objectBytes / 1e6, 2)} MB for ${fmt(stored)} samples = ${fmt(r.objectBytes / stored, 2)} bytes/sample ` +
        `(files on disk ${fmt(r.fileBytes / 1e6, 2)} MB = ${fmt(r.fileBytes / stored, 2)} B/sample); ${fmt(stored / seriesAll, 1)} samples per series`
    )
    console.log(
      "  of which, by kind, key+value bytes compressed as compaction stores them (logical bytes before compression in brackets): " +
        r.inspection.kinds.map((k) =>
          `${k.name} ${fmt(k.compressedBytes / stored, 2)} B/sample (${fmt(k.keys)} keys, ${fmt(k.compressedBytes / 1e6, 2)} MB) [${fmt((k.keyBytes + k.valueBytes) / stored, 2)}]`
        ).join("; ")
    )
    const found = TsdbInspect.samplesOf(r.inspection)
    if (found !== stored) console.log(`  (the store holds ${fmt(found)} samples, not the ${fmt(stored)} acknowledged)`)
    const block = rounds[0]?.prom?.block
    if (block !== undefined) {
      const perSample = (n: number) => fmt(n / block.samples, 2)
      const bytes = block.chunkBytes + block.indexBytes
      console.log(
        `  Prometheus at rest (a snapshot: its head written out as a block): ${fmt(bytes / 1e6, 2)} MB for ${fmt(block.samples)} samples of ` +
          `${fmt(block.series)} series = ${perSample(bytes)} bytes/sample (chunks ${perSample(block.chunkBytes)}, index ${perSample(block.indexBytes)}: ` +
          `symbols ${perSample(block.symbols)}, series ${perSample(block.seriesSection)}, postings ${perSample(block.postings)}, tables ${perSample(block.tables)})`
      )
      if (block.samples !== stored) console.log(`  (Prometheus's block holds ${fmt(block.samples)} samples; ours ${fmt(stored)})`)
      console.log(`  ratio ours/Prometheus bytes per sample at rest: ${fmt(r.objectBytes / stored / (bytes / block.samples), 2)}`)
    }
  }
  console.log(
    "\nsamples/s: samples in acknowledged requests / wall time, decode (snappy + protobuf) included; ack = request sent -> " +
      "acknowledged (ours: durable in an fsynced WAL object; Prometheus: in its head and WAL, not fsynced per request). " +
      "cpu s: the server's CPU (user + system) from the phase's first request until its CPU settles after the last ack (deferred " +
      "work included; in-process: this process, process.cpuUsage(); over HTTP: the server process's utime + stime from /proc); " +
      "samples/cpu-s: samples in acknowledged requests / cpu s. rss MB: servers' peak RSS so far (VmHWM); in-process: this " +
      "process's RSS at the end of the phase. " +
      "PUTs: every put/putIfAbsent/putIfMatch from the start of the timed requests to closing the Db. Bytes at rest: every object under the " +
      "store root (WAL, SSTs with their blocks, index and bloom filters, manifests) after flush, full compaction and GC; " +
      "they hold the series dictionary, postings, sealed and head chunks, everything."
  )
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
