/**
 * `npm run bench:promql`: PromQL query latency of our TSDB beside a real Prometheus (Debian's 2.42), both
 * holding the same synthetic data, loaded through the same remote-write requests in the same run.
 *
 * Data: a web service's metrics, per instance (`job` one of four, `instance` an address):
 *
 *   - counters `http_requests_total{code, instance, job, method}`, 4 codes x 2 methods = 8 series;
 *   - classic histograms `http_request_duration_seconds_bucket{instance, job, le, method}` (11 buckets,
 *     `+Inf` included) with `_sum` and `_count`, per method: 2 x 13 = 26 series;
 *
 * so 34 series per instance, and SERIES / 34 instances (rounded). Every 15 s each instance serves a
 * Poisson-like number of requests (a per-instance base rate of 2-50 req/s with a daily cycle, split over
 * codes 93/4/2/1 % and methods 75/25 %); the same requests are observed in the histogram (log-normal
 * latencies, a per-method median that drifts, bucket counts drawn bucket by bucket), `_count` equals
 * the `+Inf` bucket and `_sum` adds the observations. Each instance has been up 0.5-30 days when the
 * data starts (its counters start at what it would have counted by then), and about half the instances
 * restart once in 6 h (all their counters drop to 0; never at the data's first sample), so `rate` has
 * resets to handle.
 *
 * Why counters do not start at 0: where a rate window holds a series' first samples (the window starts
 * more than 1.1 sample intervals before them), Prometheus 2.42 extrapolates half an interval towards the
 * window start, whereas Prometheus 3 (and ours) also stops that extrapolation where the counter would
 * have been 0 (3.x checks the zero point after the extrapolation threshold, 2.42 before). With counters
 * that start small, both are right for their version and differ in the first 5 minutes of the data (and
 * wherever a window reaches back to it, as `increase(...[1h])` or the subquery). FROM_ZERO=1 starts the
 * counters at 0 to show that difference.
 *
 * Timestamps end about now (Prometheus only accepts samples within an hour of its head's newest one, so
 * the data is sent oldest first) on a 15 s grid, each instance shifted by 2-12 s (per instance, fixed):
 * queries are evaluated at times that are multiples of 15 s (30 s past a minute, so even subquery steps
 * never fall on a range's start), so no sample ever sits exactly on the start of a range or lookback
 * window. That matters: Prometheus 2.42's windows are closed on the left, Prometheus 3's (ours) are open.
 *
 * Loading: remote write 1.0 (protobuf + snappy), requests of up to 2,000 series x up to 20 timestamps
 * (at most about 20,000 samples), oldest first, one request at a time, each awaiting its ack; the same
 * bodies, generated deterministically (generation is not timed), go to each target: first our server
 * process (`node packages/runtime/dist/main.js`, `OPENDATA_STORE=local`, a temp data dir), then
 * Prometheus (`--web.enable-remote-write-receiver`, its own temp storage). Load time = the sum of the
 * requests' send -> ack times. After its load, each server is left until it is quiet (under a tenth of
 * a core over a second, at most 120 s; the wait and the CPU spent meanwhile are printed): the queries
 * then measure the queries, not the flushes and compactions of the data just written (their cost is
 * ingest's, which `npm run bench:tsdb` counts).
 *
 * Queries: typical dashboard queries, as range queries over the whole window (step STEP, default 60 s)
 * plus one instant query at the window's end; each runs REPS times (default 5) on each target, ours and
 * Prometheus's runs interleaved, one query at a time; latency = request sent -> whole response body
 * received (JSON parsing not included). Reported: each side's p50 and ours / Prometheus's. Then the
 * first run's answers are compared: the same series (by label set), the same steps, and every value
 * within 1e-6 relative (NaN = NaN); any difference is printed (series, step time, Prometheus's value
 * vs ours). Where `topk` has ties (integer counters make equal rates likely) the two may keep different
 * series with the same value: such picks are listed and counted, not as differences.
 *
 * The metadata APIs Grafana calls when a query editor opens (labels, label values, series) run the same
 * way over the whole window, 4 x REPS + 1 times each (they take milliseconds, where one pause moves a run by
 * as much); their answers are compared as sets.
 *
 * Knobs: SERIES (default 1,000; the issue's full size is 10,000), HOURS (default 6; full size 24), STEP
 * (seconds, default 60), REPS (default 5), QUERIES (e.g. `10,11`: only those, numbered as printed), FROM_ZERO (1: counters start at 0, see above), PROMETHEUS_BIN
 * (default /usr/bin/prometheus; without it only our latencies are printed), OURS_NODE_ARGS (extra node flags for
 * our server, e.g. `--cpu-prof --cpu-prof-dir=DIR` or `--max-old-space-size=N`).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { RemoteWrite } from "@opendata/tsdb"
import { processMeter, type Settled, settle } from "./process.ts"

const seriesWanted = Number(process.env["SERIES"] ?? 1_000)
const hours = Number(process.env["HOURS"] ?? 6)
const stepS = Number(process.env["STEP"] ?? 60)
const reps = Math.max(1, Number(process.env["REPS"] ?? 5))
/**
 * The metadata requests take 1-8 ms on either side, where one garbage collection or scheduling hiccup moves
 * a run by as much: they run four times as often (an odd count), so that their medians mean something.
 */
const metaReps = 4 * reps + 1
/** After its load a server is quiet once it uses under this share of a core over a second... */
const settleCpuShare = 0.1
/** ...or after this many seconds. */
const settleMaxS = 120
const fromZero = process.env["FROM_ZERO"] === "1"
/** QUERIES=10,11: only those queries (numbered as printed). */
const only = process.env["QUERIES"]?.split(",").map((n) => Number(n.trim())).filter((n) => Number.isInteger(n))
const prometheusBin = process.env["PROMETHEUS_BIN"] ?? "/usr/bin/prometheus"
const ourNodeArgs = (process.env["OURS_NODE_ARGS"] ?? "").split(" ").filter((a) => a !== "")
const repoRoot = path.resolve(import.meta.dirname, "../../..")
const scrapeMs = 15_000
const tolerance = 1e-6

// -------------------------------------------------------------------------------------------------
// Data
// -------------------------------------------------------------------------------------------------

/** A deterministic PRNG (mulberry32). */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const jobs = ["api", "web", "auth", "billing"]
const codes = ["200", "404", "500", "503"]
const codeWeights = [0.93, 0.04, 0.02, 0.01]
const methods = ["GET", "POST"]
const methodWeights = [0.75, 0.25]
/** Median latency (s) per method, before the per-instance factor and the drift. */
const methodMedians = [0.04, 0.12]
const les = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
const leLabels = [...les.map(String), "+Inf"]
/** A representative latency per bucket (for `_sum`): the geometric middle of its bounds. */
const bucketMiddles = leLabels.map((_, i) => (i === 0 ? les[0]! / 2 : i < les.length ? Math.sqrt(les[i - 1]! * les[i]!) : les[les.length - 1]! * 2))
const seriesPerInstance = codes.length * methods.length + methods.length * (leLabels.length + 2)

type Labels = Array<[string, string]>

interface Instance {
  /** Series in a fixed order: counters (code-major), then per method its buckets, `_sum`, `_count`. */
  readonly series: ReadonlyArray<Labels>
  readonly offsetMs: number
  readonly rate: number
  readonly phase: number
  readonly latencyFactor: number
  readonly counters: Float64Array
  /** Per method: the cumulative bucket counters (`+Inf` last), then `_sum`, then `_count`. */
  readonly histograms: Array<Float64Array>
}

interface Dataset {
  readonly instances: number
  readonly series: number
  readonly steps: number
  /** Grid time of the first and last step (ms, multiples of 15 s); samples are at grid + instance offset. */
  readonly firstMs: number
  readonly lastMs: number
  readonly stepsPerRequest: number
  readonly instancesPerRequest: number
  readonly samples: number
}

const makeDataset = (): Dataset => {
  const instances = Math.max(1, Math.round(seriesWanted / seriesPerInstance))
  const steps = Math.max(2, Math.round((hours * 3_600_000) / scrapeMs))
  // The newest grid point at least 15 s (the largest offset is 12 s) before now.
  const lastMs = Math.floor(Date.now() / scrapeMs) * scrapeMs - scrapeMs
  const instancesPerRequest = Math.max(1, Math.floor(2_000 / seriesPerInstance))
  const seriesPerRequest = Math.min(instances, instancesPerRequest) * seriesPerInstance
  const stepsPerRequest = Math.max(1, Math.min(20, Math.floor(20_000 / seriesPerRequest)))
  return {
    instances,
    series: instances * seriesPerInstance,
    steps,
    firstMs: lastMs - (steps - 1) * scrapeMs,
    lastMs,
    stepsPerRequest,
    instancesPerRequest,
    samples: instances * seriesPerInstance * steps
  }
}

const makeInstances = (ds: Dataset, random: () => number): Array<Instance> =>
  Array.from({ length: ds.instances }, (_, i): Instance => {
    const job = jobs[i % jobs.length]!
    const instance = `10.1.${Math.floor(i / 250)}.${(i % 250) + 2}:8080`
    const series: Array<Labels> = []
    for (const code of codes) {
      for (const method of methods) {
        series.push([["__name__", "http_requests_total"], ["code", code], ["instance", instance], ["job", job], ["method", method]])
      }
    }
    for (const method of methods) {
      for (const le of leLabels) {
        series.push([["__name__", "http_request_duration_seconds_bucket"], ["instance", instance], ["job", job], ["le", le], ["method", method]])
      }
      series.push([["__name__", "http_request_duration_seconds_sum"], ["instance", instance], ["job", job], ["method", method]])
      series.push([["__name__", "http_request_duration_seconds_count"], ["instance", instance], ["job", job], ["method", method]])
    }
    const rate = 2 + random() * 48
    const latencyFactor = 0.6 + random() * 0.9
    const counters = new Float64Array(codes.length * methods.length)
    const histograms = methods.map(() => new Float64Array(leLabels.length + 2))
    if (!fromZero) {
      // Up for 0.5-30 days before the data starts: what it counted so far.
      const uptimeS = (0.5 + random() * 29.5) * 86_400
      for (let m = 0; m < methods.length; m++) {
        let n = 0
        for (let c = 0; c < codes.length; c++) {
          const v = Math.round(rate * codeWeights[c]! * methodWeights[m]! * uptimeS)
          counters[c * methods.length + m] = v
          n += v
        }
        const median = methodMedians[m]! * latencyFactor
        const h = histograms[m]!
        for (let b = 0; b < les.length; b++) h[b] = Math.round(n * phi((Math.log(les[b]!) - Math.log(median)) / 0.8))
        h[les.length] = n
        h[leLabels.length] = Math.round(n * median * Math.exp(0.32) * 1e3) / 1e3
        h[leLabels.length + 1] = n
      }
    }
    return {
      series,
      // 2.00-11.99 s: never a multiple of 15 s, whatever the query times (multiples of 15 s).
      offsetMs: 2_000 + ((i * 1_370) % 10_000),
      rate,
      phase: random() * 2 * Math.PI,
      latencyFactor,
      counters,
      histograms
    }
  })

const gauss = (random: () => number) => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random())

const poisson = (lambda: number, random: () => number): number => {
  if (lambda <= 0) return 0
  if (lambda < 30) {
    const limit = Math.exp(-lambda)
    let k = 0
    let p = random()
    while (p > limit) {
      k += 1
      p *= random()
    }
    return k
  }
  return Math.max(0, Math.round(lambda + Math.sqrt(lambda) * gauss(random)))
}

/** The standard normal CDF (Abramowitz and Stegun 7.1.26 for erf). */
const phi = (x: number): number => {
  const z = Math.abs(x) / Math.SQRT2
  const t = 1 / (1 + 0.3275911 * z)
  const erf = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-z * z)
  return x >= 0 ? (1 + erf) / 2 : (1 - erf) / 2
}

/** Advances one instance by one scrape interval ending at grid time `t`. */
const advance = (inst: Instance, t: number, resetProbability: number, random: () => number) => {
  if (random() < resetProbability) {
    inst.counters.fill(0)
    for (const h of inst.histograms) h.fill(0)
  }
  const day = (2 * Math.PI * t) / 86_400_000
  const load = inst.rate * (1 + 0.35 * Math.sin(day + inst.phase)) * (0.9 + 0.2 * random())
  const perMethod = methods.map(() => 0)
  for (let c = 0; c < codes.length; c++) {
    for (let m = 0; m < methods.length; m++) {
      const n = poisson((load * codeWeights[c]! * methodWeights[m]! * scrapeMs) / 1000, random)
      inst.counters[c * methods.length + m]! += n
      perMethod[m]! += n
    }
  }
  for (let m = 0; m < methods.length; m++) {
    const h = inst.histograms[m]!
    const n = perMethod[m]!
    // A log-normal latency whose median drifts over a 3-hour cycle.
    const median = methodMedians[m]! * inst.latencyFactor * (1 + 0.5 * Math.max(0, Math.sin(day * 8 + inst.phase * 3)))
    const sigma = 0.8
    let remaining = n
    let below = 0
    let cumulative = 0
    let sum = 0
    for (let b = 0; b < leLabels.length; b++) {
      let k: number
      if (b === leLabels.length - 1) k = remaining
      else {
        const upTo = phi((Math.log(les[b]!) - Math.log(median)) / sigma)
        const p = below >= 1 ? 1 : Math.min(1, Math.max(0, (upTo - below) / (1 - below)))
        below = upTo
        const mean = remaining * p
        k = Math.min(remaining, Math.max(0, Math.round(mean + Math.sqrt(mean * (1 - p)) * gauss(random))))
      }
      remaining -= k
      cumulative += k
      sum += k * bucketMiddles[b]! * (0.8 + 0.4 * random())
      h[b]! += cumulative
    }
    h[leLabels.length]! += Math.round(sum * 1e6) / 1e6
    h[leLabels.length + 1]! += n
  }
}

interface Body {
  readonly body: Uint8Array
  readonly samples: number
}

/** The requests, oldest first; deterministic (the same bodies every time it is called). */
function* requests(ds: Dataset): Generator<Body> {
  const random = prng(20_240_601)
  const instances = makeInstances(ds, random)
  // About half the instances restart once over 6 hours.
  const resetProbability = 0.5 / (6 * 240)
  for (let k0 = 0; k0 < ds.steps; k0 += ds.stepsPerRequest) {
    const k1 = Math.min(ds.steps, k0 + ds.stepsPerRequest)
    for (let i0 = 0; i0 < instances.length; i0 += ds.instancesPerRequest) {
      const chunk = instances.slice(i0, i0 + ds.instancesPerRequest)
      const series: Array<RemoteWrite.Series> = []
      let samples = 0
      for (const inst of chunk) {
        const out: Array<RemoteWrite.Series> = inst.series.map((labels) => ({ labels, samples: [] }))
        for (let k = k0; k < k1; k++) {
          const t = ds.firstMs + k * scrapeMs
          // Never a restart at the first sample: that would start the counters at 0 (see FROM_ZERO above).
          advance(inst, t, k === 0 ? 0 : resetProbability, random)
          const timestampMs = t + inst.offsetMs
          let j = 0
          for (const v of inst.counters) out[j++]!.samples.push({ timestampMs, value: v })
          for (const h of inst.histograms) for (const v of h) out[j++]!.samples.push({ timestampMs, value: v })
          samples += j
        }
        series.push(...out)
      }
      const raw = RemoteWrite.encodeWriteRequestV1({ series, metadata: [], histograms: 0, exemplars: 0 })
      yield { body: RemoteWrite.snappyCompress(raw), samples }
    }
  }
}

// -------------------------------------------------------------------------------------------------
// Processes
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
  readonly name: string
  readonly base: string
  readonly dir: string
  readonly child: ChildProcess
  readonly exited: Promise<number | null>
  readonly output: () => string
}

const running: Array<Proc> = []

const launch = (name: string, base: string, dir: string, command: string, args: ReadonlyArray<string>, env: Record<string, string> = {}): Proc => {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] })
  let output = ""
  const keep = (d: Buffer) => {
    output = (output + d.toString()).slice(-20_000)
  }
  child.stdout!.on("data", keep)
  child.stderr!.on("data", keep)
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  const proc = { name, base, dir, child, exited, output: () => output }
  running.push(proc)
  return proc
}

const waitReady = async (proc: Proc) => {
  const until = Date.now() + 60_000
  for (;;) {
    if (await fetch(`${proc.base}/-/ready`).then((r) => r.ok, () => false)) return
    if (proc.child.exitCode !== null || Date.now() > until) throw new Error(`${proc.name} did not come up:\n${proc.output()}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** SIGTERM, then SIGKILL after 30 s; removes the process's temp dir. */
const stop = async (proc: Proc): Promise<void> => {
  try {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
      console.log(`  (${proc.name} had already exited: code ${proc.child.exitCode}, signal ${proc.child.signalCode}; its last output:\n${proc.output().slice(-3_000)})`)
    } else {
      proc.child.kill("SIGTERM")
      const code = await Promise.race([proc.exited, new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 30_000))])
      if (code === "timeout") {
        proc.child.kill("SIGKILL")
        console.log(`  (${proc.name} did not stop within 30 s of SIGTERM; killed)`)
      } else if (code !== 0) console.log(`  (${proc.name} exited with ${code}:\n${proc.output().slice(-2_000)})`)
    }
  } finally {
    fs.rmSync(proc.dir, { recursive: true, force: true })
    running.splice(running.indexOf(proc), 1)
  }
}

/** The process's resident memory (MB; Linux), now or (`VmHWM`) its peak so far, or NaN. */
const rssMb = (proc: Proc, field: "VmRSS" | "VmHWM" = "VmRSS"): number => {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${proc.child.pid}/status`, "utf8"))
    return m === null ? Number.NaN : Number(m[1]) / 1024
  } catch {
    return Number.NaN
  }
}

/**
 * Waits until the process is quiet after its load (under `settleCpuShare` of a core over a second), at
 * most `settleMaxS`: queries then measure the query, not the compaction of the data just written.
 */
const settleAfterLoad = (proc: Proc): Promise<Settled> =>
  settle(processMeter(proc.child.pid!), { intervalMs: 1000, quietCpuS: settleCpuShare, maxMs: settleMaxS * 1000 })

const startOurs = async (): Promise<Proc> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "opendata-bench-promql-"))
  const port = await freePort()
  const proc = launch("our server", `http://127.0.0.1:${port}`, dir, process.execPath, [...ourNodeArgs, path.join(repoRoot, "packages/runtime/dist/main.js")], {
    OPENDATA_STORE: "local",
    OPENDATA_DATA_DIR: path.join(dir, "data"),
    OPENDATA_HOST: "127.0.0.1",
    OPENDATA_PORT: String(port)
  })
  await waitReady(proc)
  return proc
}

const startPrometheus = async (): Promise<Proc> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "opendata-bench-promql-prometheus-"))
  const port = await freePort()
  fs.writeFileSync(path.join(dir, "prometheus.yml"), "global:\n  scrape_interval: 1m\n")
  const retentionDays = Math.max(15, Math.ceil(hours / 24) + 7)
  const proc = launch("Prometheus", `http://127.0.0.1:${port}`, dir, prometheusBin, [
    `--config.file=${path.join(dir, "prometheus.yml")}`,
    `--web.listen-address=127.0.0.1:${port}`,
    `--storage.tsdb.path=${path.join(dir, "data")}`,
    `--storage.tsdb.retention.time=${retentionDays}d`,
    "--web.enable-remote-write-receiver"
  ])
  await waitReady(proc)
  return proc
}

// -------------------------------------------------------------------------------------------------
// Loading
// -------------------------------------------------------------------------------------------------

interface Load {
  readonly requests: number
  readonly samples: number
  readonly bytes: number
  readonly sendS: number
  readonly wallS: number
  readonly errors: number
  readonly firstError: string | undefined
}

const load = async (proc: Proc, ds: Dataset): Promise<Load> => {
  let requestsSent = 0
  let samples = 0
  let bytes = 0
  let sendMs = 0
  let errors = 0
  let firstError: string | undefined
  const start = performance.now()
  for (const r of requests(ds)) {
    const t0 = performance.now()
    const response = await fetch(`${proc.base}/api/v1/write`, {
      method: "POST",
      headers: {
        "content-type": "application/x-protobuf",
        "content-encoding": "snappy",
        "x-prometheus-remote-write-version": "0.1.0",
        "user-agent": "opendata-bench-promql"
      },
      body: r.body
    })
    const text = await response.text()
    sendMs += performance.now() - t0
    requestsSent += 1
    bytes += r.body.length
    if (response.status >= 200 && response.status < 300) samples += r.samples
    else {
      errors += 1
      firstError ??= `${response.status} ${text.slice(0, 300)}`
    }
  }
  return { requests: requestsSent, samples, bytes, sendS: sendMs / 1000, wallS: (performance.now() - start) / 1000, errors, firstError }
}

// -------------------------------------------------------------------------------------------------
// Queries
// -------------------------------------------------------------------------------------------------

interface Query {
  /** PromQL, or for `meta` the API path and its parameters but the window. */
  readonly expr: string
  readonly kind: "range" | "instant" | "meta"
}

const queries: ReadonlyArray<Query> = [
  { kind: "range", expr: "sum(rate(http_requests_total[5m]))" },
  { kind: "range", expr: "sum by (code) (rate(http_requests_total[5m]))" },
  { kind: "range", expr: "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))" },
  { kind: "range", expr: "histogram_quantile(0.5, sum by (job, le) (rate(http_request_duration_seconds_bucket[5m])))" },
  { kind: "range", expr: "topk(5, sum by (instance) (rate(http_requests_total[5m])))" },
  { kind: "range", expr: "max_over_time(sum(rate(http_requests_total[5m]))[1h:1m])" },
  { kind: "range", expr: "avg by (job) (rate(http_request_duration_seconds_sum[5m]) / rate(http_request_duration_seconds_count[5m]))" },
  { kind: "range", expr: "sum by (job) (rate(http_requests_total{code=~\"5..\"}[5m])) / sum by (job) (rate(http_requests_total[5m]))" },
  { kind: "instant", expr: "sum by (job, code) (increase(http_requests_total[1h]))" },
  // What Grafana asks when a query editor opens, over the whole window.
  { kind: "meta", expr: "/api/v1/labels" },
  { kind: "meta", expr: "/api/v1/label/__name__/values" },
  { kind: "meta", expr: "/api/v1/label/instance/values" },
  { kind: "meta", expr: "/api/v1/series?match[]=http_requests_total{code=\"500\",method=\"GET\"}" }
]

interface Answer {
  readonly ms: number
  readonly status: number
  readonly text: string
}

const ask = async (proc: Proc, q: Query, window: { start: number; end: number }): Promise<Answer> => {
  const params = q.kind === "range"
    ? new URLSearchParams({ query: q.expr, start: String(window.start / 1000), end: String(window.end / 1000), step: String(stepS) })
    : q.kind === "instant"
    ? new URLSearchParams({ query: q.expr, time: String(window.end / 1000) })
    : new URLSearchParams({ start: String(window.start / 1000), end: String(window.end / 1000) })
  const url = q.kind === "meta"
    ? `${proc.base}${q.expr}${q.expr.includes("?") ? "&" : "?"}${params}`
    : `${proc.base}/api/v1/${q.kind === "range" ? "query_range" : "query"}?${params}`
  const t0 = performance.now()
  try {
    const response = await fetch(url)
    const text = await response.text()
    return { ms: performance.now() - t0, status: response.status, text }
  } catch (e) {
    const cause = (e as { cause?: unknown }).cause
    return { ms: Number.NaN, status: 0, text: `${proc.name}: ${String(e)}${cause === undefined ? "" : ` (${String(cause)})`}` }
  }
}

/** Label set key -> time (ms) -> value. */
type Points = Map<string, Map<number, number>>

const parseValue = (s: string): number => (s === "+Inf" ? Infinity : s === "-Inf" ? -Infinity : Number(s))

const labelsKey = (metric: Record<string, string>) =>
  JSON.stringify(Object.fromEntries(Object.entries(metric).sort(([a], [b]) => (a < b ? -1 : 1))))

const pointsOf = (answer: Answer): Points | string => {
  let body: any
  try {
    body = JSON.parse(answer.text)
  } catch {
    return `HTTP ${answer.status}: ${answer.text.slice(0, 300)}`
  }
  if (answer.status !== 200 || body.status !== "success") return `HTTP ${answer.status}: ${body.errorType ?? ""} ${body.error ?? answer.text.slice(0, 300)}`
  const out: Points = new Map()
  const data = body.data
  // The metadata APIs answer a list (names, values, or label sets): compared as a set.
  if (Array.isArray(data)) {
    for (const item of data) out.set(typeof item === "string" ? item : labelsKey(item), new Map([[0, 1]]))
    return out
  }
  switch (data.resultType) {
    case "matrix":
      for (const s of data.result) out.set(labelsKey(s.metric), new Map(s.values.map(([t, v]: [number, string]) => [Math.round(t * 1000), parseValue(v)])))
      break
    case "vector":
      for (const s of data.result) out.set(labelsKey(s.metric), new Map([[Math.round(s.value[0] * 1000), parseValue(s.value[1])]]))
      break
    case "scalar":
      out.set("scalar", new Map([[Math.round(data.result[0] * 1000), parseValue(data.result[1])]]))
      break
    default:
      return `unexpected result type ${data.resultType}`
  }
  return out
}

const close = (a: number, b: number) =>
  Object.is(a, b) || a === b || (Number.isNaN(a) && Number.isNaN(b)) ||
  (Number.isFinite(a) && Number.isFinite(b) && Math.abs(a - b) <= tolerance * Math.max(Math.abs(a), Math.abs(b)))

interface Comparison {
  readonly agree: boolean
  readonly ties: number
  readonly summary: string
  readonly details: ReadonlyArray<string>
}

/**
 * Compares our points with Prometheus's: same series, same steps, values within the tolerance. A point
 * only one side has is a difference, unless at that step the other side has, in other series, points
 * only it has with the same values: then the two picked different series among equal values (`topk` and
 * `bottomk` ties, which PromQL leaves to the implementation), counted apart.
 */
const compare = (ours: Points | string, theirs: Points | string, window: { start: number }): Comparison => {
  if (typeof ours === "string" || typeof theirs === "string") {
    return {
      agree: false,
      ties: 0,
      summary: "cannot compare",
      details: [typeof ours === "string" ? `ours failed: ${ours}` : "", typeof theirs === "string" ? `Prometheus failed: ${theirs}` : ""].filter((s) => s !== "")
    }
  }
  const details: Array<string> = []
  let mismatches = 0
  let points = 0
  let maxRel = 0
  const when = (t: number) => `${new Date(t).toISOString()} (step ${Math.round((t - window.start) / (stepS * 1000))})`
  const note = (s: string) => {
    mismatches += 1
    if (details.length < 8) details.push(s)
  }
  type Lone = Map<number, Array<{ readonly key: string; readonly v: number }>>
  const oursOnly: Lone = new Map()
  const theirsOnly: Lone = new Map()
  const lone = (m: Lone, t: number, key: string, v: number) => {
    const list = m.get(t) ?? []
    list.push({ key, v })
    m.set(t, list)
  }
  for (const [key, theirPoints] of theirs) {
    const ourPoints = ours.get(key) ?? new Map<number, number>()
    for (const [t, v] of theirPoints) {
      points += 1
      const w = ourPoints.get(t)
      if (w === undefined) lone(theirsOnly, t, key, v)
      else if (!close(v, w)) note(`series ${key} at ${when(t)}: Prometheus ${v}, ours ${w}`)
      else if (Number.isFinite(v) && Number.isFinite(w) && v !== w) maxRel = Math.max(maxRel, Math.abs(v - w) / Math.max(Math.abs(v), Math.abs(w)))
    }
  }
  for (const [key, ourPoints] of ours) {
    const theirPoints = theirs.get(key)
    for (const [t, w] of ourPoints) if (theirPoints?.has(t) !== true) lone(oursOnly, t, key, w)
  }
  let ties = 0
  const tieSteps = new Set<number>()
  const byValue = (a: { v: number }, b: { v: number }) => a.v - b.v
  for (const t of new Set([...oursOnly.keys(), ...theirsOnly.keys()])) {
    const a = (oursOnly.get(t) ?? []).sort(byValue)
    const b = (theirsOnly.get(t) ?? []).sort(byValue)
    if (a.length === b.length && a.every((x, i) => close(x.v, b[i]!.v))) {
      ties += a.length
      tieSteps.add(t)
      if (details.length < 8) {
        details.push(`tie at ${when(t)}: ours picked ${a.map((x) => `${x.key} = ${x.v}`).join(", ")}; Prometheus picked ${b.map((x) => `${x.key} = ${x.v}`).join(", ")}`)
      }
      continue
    }
    for (const x of b) note(`series ${x.key} at ${when(t)}: Prometheus ${x.v}, ours has no point`)
    for (const x of a) note(`series ${x.key} at ${when(t)}: ours ${x.v}, Prometheus has no point`)
  }
  const counts = `ours ${ours.size} series, Prometheus ${theirs.size}; ${points} Prometheus points compared` +
    (ties > 0 ? `; at ${tieSteps.size} step${tieSteps.size === 1 ? "" : "s"} ${ties} different pick${ties === 1 ? "" : "s"} among equal values` : "")
  return mismatches === 0
    ? { agree: true, ties, summary: `agree (${counts}; max relative difference ${maxRel === 0 ? "0" : maxRel.toExponential(1)})`, details }
    : { agree: false, ties, summary: `DISAGREE: ${mismatches} differences (${counts})`, details }
}

const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? Number.NaN : s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

// -------------------------------------------------------------------------------------------------
// Report
// -------------------------------------------------------------------------------------------------

const fmt = (n: number, digits = 0) => (Number.isNaN(n) ? "-" : n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits }))

const loadLine = (proc: Proc, l: Load) => {
  console.log(
    `  ${(proc.name === "our server" ? "ours" : proc.name).padEnd(11)} ${fmt(l.sendS, 1)} s of requests (${fmt(l.wallS, 1)} s wall, generation included), ${fmt(l.requests)} requests, ` +
      `${fmt(l.samples)} samples acknowledged = ${fmt(l.samples / l.sendS)} samples/s, ${fmt(l.bytes / 1e6, 1)} MB sent, ` +
      `RSS then ${fmt(rssMb(proc))} MB` +
      (l.errors > 0 ? `; ${l.errors} requests FAILED, first: ${l.firstError}` : "")
  )
}

const settleLine = (proc: Proc, settled: Settled) => {
  console.log(
    `  ${(proc.name === "our server" ? "ours" : proc.name).padEnd(11)} quiet ${fmt(settled.waitedS, 1)} s after its load ` +
      `(${fmt(settled.spentS, 1)} CPU s meanwhile${settled.waitedS >= settleMaxS ? `; still busy after ${settleMaxS} s, querying anyway` : ""})`
  )
}

const main = async () => {
  const prometheusVersion = fs.existsSync(prometheusBin)
    ? execFileSync(prometheusBin, ["--version"], { encoding: "utf8" }).split("\n")[0]!.replace(/^prometheus, /, "")
    : undefined
  const ds = makeDataset()
  console.log(
    `PromQL benchmark: ${fmt(ds.series)} series (${fmt(ds.instances)} instances x ${seriesPerInstance}; SERIES=${seriesWanted}) x ` +
      `${hours} h (HOURS=${hours}) at 15 s = ${fmt(ds.steps)} samples per series, ${fmt(ds.samples)} samples; ` +
      `STEP=${stepS}s, REPS=${reps}${fromZero ? ", FROM_ZERO=1 (counters start at 0)" : ""}; ${os.cpus().length} CPUs; node ${process.versions.node}; ` +
      `Prometheus ${prometheusVersion ?? `not found at ${prometheusBin}: only ours is measured`}`
  )
  console.log(
    `data from ${new Date(ds.firstMs).toISOString()} to ${new Date(ds.lastMs).toISOString()} (15 s grid, each instance 2-12 s later); ` +
      `requests of up to ${fmt(Math.min(ds.instances, ds.instancesPerRequest) * seriesPerInstance)} series x ${ds.stepsPerRequest} timestamps, oldest first`
  )
  // Our server is started as `npm start` starts it: build it first.
  try {
    execFileSync(process.execPath, [path.join(repoRoot, "node_modules/typescript/bin/tsc"), "-b", "packages/runtime"], { cwd: repoRoot, stdio: "inherit" })
    // Then the bundle over what tsc wrote: the server as `npm start` runs it.
    execFileSync(process.execPath, [path.join(repoRoot, "packages/runtime/scripts/bundle.mjs")], { cwd: repoRoot, stdio: "inherit" })
  } catch {
    if (!fs.existsSync(path.join(repoRoot, "packages/runtime/dist/main.js"))) throw new Error("the build failed and there is no packages/runtime/dist/main.js")
    console.log("(the build reported errors; using packages/runtime/dist as it is)")
  }

  const procs: Array<Proc> = []
  try {
    console.log("\nloading (remote write 1.0, one request at a time, each awaiting its ack):")
    const ours = await startOurs()
    procs.push(ours)
    loadLine(ours, await load(ours, ds))
    settleLine(ours, await settleAfterLoad(ours))
    let prometheus: Proc | undefined
    if (prometheusVersion !== undefined) {
      prometheus = await startPrometheus()
      procs.push(prometheus)
      loadLine(prometheus, await load(prometheus, ds))
      settleLine(prometheus, await settleAfterLoad(prometheus))
    }

    // Query times: multiples of 15 s, 30 s past a minute, inside the data.
    const end = Math.floor((ds.lastMs - 30_000) / 60_000) * 60_000 + 30_000
    const start = end - Math.floor((end - ds.firstMs) / (stepS * 1000)) * stepS * 1000
    const window = { start, end }
    const steps = Math.round((end - start) / (stepS * 1000)) + 1
    console.log(
      `\nqueries: range queries from ${new Date(start).toISOString()} to ${new Date(end).toISOString()}, step ${stepS}s (${steps} steps); ` +
        `the instant query at the end; ${reps} runs each (metadata requests ${metaReps}), ours and Prometheus's interleaved; p50 of send -> whole body received`
    )
    const rows: Array<{ expr: string; ours: number; theirs: number; agree: string }> = []
    for (const [i, q] of queries.entries()) {
      if (only !== undefined && !only.includes(i + 1)) continue
      const ourRuns: Array<Answer> = []
      const theirRuns: Array<Answer> = []
      for (let r = 0; r < (q.kind === "meta" ? metaReps : reps); r++) {
        ourRuns.push(await ask(ours, q, window))
        if (prometheus !== undefined) theirRuns.push(await ask(prometheus, q, window))
      }
      // Latency of the answers that succeeded; a failed run shows as "failed".
      const ok = (a: Answer) => a.status === 200
      const ourP50 = median(ourRuns.filter(ok).map((a) => a.ms))
      const theirP50 = prometheus !== undefined ? median(theirRuns.filter(ok).map((a) => a.ms)) : Number.NaN
      const runs = (as: ReadonlyArray<Answer>) => as.map((a) => (ok(a) ? fmt(a.ms, 0) : "failed")).join(", ")
      console.log(`\n[${i + 1}] ${q.kind}: ${q.expr}`)
      console.log(
        `    ours p50 ${fmt(ourP50, 1)} ms (${runs(ourRuns)})` +
          (prometheus !== undefined
            ? `   Prometheus p50 ${fmt(theirP50, 1)} ms (${runs(theirRuns)})   ours/Prometheus ${fmt(ourP50 / theirP50, 1)}x`
            : "")
      )
      const ourPoints = pointsOf(ourRuns[0]!)
      let agree = "-"
      if (prometheus !== undefined) {
        const c = compare(ourPoints, pointsOf(theirRuns[0]!), window)
        agree = c.agree ? (c.ties > 0 ? "agree, ties" : "agree") : "DIFFER"
        console.log(`    results: ${c.summary}`)
        for (const d of c.details) console.log(`      ${d}`)
      } else if (typeof ourPoints === "string") console.log(`    ours failed: ${ourPoints}`)
      else console.log(`    ours: ${ourPoints.size} series`)
      rows.push({ expr: q.expr, ours: ourP50, theirs: theirP50, agree })
      const dead = [ours, prometheus].find((p) => p !== undefined && (p.child.exitCode !== null || p.child.signalCode !== null))
      if (dead !== undefined) {
        console.log(`\n${dead.name} has exited (code ${dead.child.exitCode}, signal ${dead.child.signalCode}): the remaining queries are skipped`)
        process.exitCode = 1
        break
      }
    }

    console.log("\nsummary (p50 ms):")
    console.log(`  ${"#".padEnd(3)}${"ours".padStart(10)}${"Prometheus".padStart(12)}${"ratio".padStart(9)}  results      query`)
    for (const [i, r] of rows.entries()) {
      console.log(
        `  ${String(i + 1).padEnd(3)}${fmt(r.ours, 1).padStart(10)}${fmt(r.theirs, 1).padStart(12)}${(fmt(r.ours / r.theirs, 1) + "x").padStart(9)}  ` +
          `${r.agree.padEnd(11)}  ${r.expr}`
      )
    }
    console.log(
      `RSS after the queries: ours ${fmt(rssMb(ours))} MB (peak ${fmt(rssMb(ours, "VmHWM"))} MB)` +
        (prometheus !== undefined ? `, Prometheus ${fmt(rssMb(prometheus))} MB (peak ${fmt(rssMb(prometheus, "VmHWM"))} MB)` : "")
    )
    // Where our memory is, as the server's own /metrics reports it.
    const metrics = await (await fetch(`${ours.base}/metrics`)).text()
    const gauge = (name: string) => Number(metrics.match(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m"))?.[1] ?? Number.NaN) / 2 ** 20
    console.log(
      `ours: V8 heap used ${fmt(gauge("nodejs_heap_size_used_bytes"))} MB of ${fmt(gauge("nodejs_heap_size_total_bytes"))} MB, ` +
        `external ${fmt(gauge("nodejs_external_memory_bytes"))} MB`
    )
  } finally {
    for (const p of procs.reverse()) await stop(p)
  }
}

const cleanUp = () => {
  for (const p of running) {
    if (p.child.exitCode === null) p.child.kill("SIGKILL")
    fs.rmSync(p.dir, { recursive: true, force: true })
  }
}
process.on("SIGINT", () => {
  cleanUp()
  process.exit(130)
})

main().catch((e) => {
  console.error(e)
  cleanUp()
  process.exit(1)
})
