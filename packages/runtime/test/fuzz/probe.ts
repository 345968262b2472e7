/**
 * The health probe of the fuzz suite: `GET /-/healthy` every `intervalMs` for the whole run, from a worker
 * thread (so the test's own work, building large cases, does not delay it and count as server latency).
 * Each probe records its latency and which case was in flight (a shared counter the runner updates).
 */
import { Worker } from "node:worker_threads"

export interface ProbeResult {
  /** Ms since the probe started. */
  readonly at: number
  readonly ms: number
  /** The HTTP status, or 0 when there was no answer within the probe's timeout (or an error). */
  readonly status: number
  readonly error?: string
  /** The index of the case in flight when the probe was sent (-1: none, e.g. setup). */
  readonly caseIndex: number
}

const workerSource = `
const { parentPort, workerData } = require("node:worker_threads")
const http = require("node:http")
const current = new Int32Array(workerData.shared)
let base = workerData.base
let paused = false
let stopped = false
const results = []
const started = performance.now()
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
parentPort.on("message", (m) => {
  if (m.type === "base") { base = m.base; agent.destroy() }
  if (m.type === "pause") paused = true
  if (m.type === "resume") paused = false
  if (m.type === "stop") stopped = true
})
const probe = () => new Promise((resolve) => {
  const caseIndex = Atomics.load(current, 0)
  const t0 = performance.now()
  let done = false
  const end = (status, error) => {
    if (done) return
    done = true
    clearTimeout(timer)
    const r = { at: t0 - started, ms: performance.now() - t0, status, caseIndex }
    if (error !== undefined) r.error = error
    resolve(r)
  }
  const req = http.get(base + "/-/healthy", { agent }, (res) => {
    res.resume()
    res.on("end", () => end(res.statusCode || 0))
    res.on("error", (e) => end(0, String(e.message)))
  })
  req.on("error", (e) => end(0, String(e.code || e.message)))
  const timer = setTimeout(() => { end(0, "no answer within " + workerData.timeoutMs + " ms"); req.destroy() }, workerData.timeoutMs)
})
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
;(async () => {
  while (!stopped) {
    if (paused) { await sleep(5); continue }
    const t0 = performance.now()
    const r = await probe()
    if (!paused) results.push(r)
    const wait = workerData.intervalMs - (performance.now() - t0)
    if (wait > 0) await sleep(wait)
  }
  agent.destroy()
  parentPort.postMessage({ type: "results", results })
})()
`

export interface Probe {
  /** Which case is in flight (recorded with each probe). */
  readonly setCase: (index: number) => void
  /** Probes the server at `base` from now on (after a restart). */
  readonly setBase: (base: string) => void
  /** Stops probing while the runner restarts the server (its downtime is not the server's latency). */
  readonly pause: () => void
  readonly resume: () => void
  /** Stops the probe and returns every result. */
  readonly stop: () => Promise<ReadonlyArray<ProbeResult>>
}

export const startProbe = (base: string, intervalMs: number, timeoutMs: number): Probe => {
  const shared = new SharedArrayBuffer(4)
  const current = new Int32Array(shared)
  current[0] = -1
  const worker = new Worker(workerSource, { eval: true, workerData: { base, intervalMs, timeoutMs, shared } })
  const results = new Promise<ReadonlyArray<ProbeResult>>((resolve, reject) => {
    worker.on("message", (m: { type: string; results: ReadonlyArray<ProbeResult> }) => {
      if (m.type === "results") resolve(m.results)
    })
    worker.on("error", reject)
  })
  return {
    setCase: (index) => Atomics.store(current, 0, index),
    setBase: (b) => worker.postMessage({ type: "base", base: b }),
    pause: () => worker.postMessage({ type: "pause" }),
    resume: () => worker.postMessage({ type: "resume" }),
    stop: async () => {
      worker.postMessage({ type: "stop" })
      const r = await results
      await worker.terminate()
      return r
    }
  }
}

/** The median and the maximum of the probes' latencies, and the probes over `slowMs` or unanswered. */
export const probeStats = (results: ReadonlyArray<ProbeResult>, slowMs: number) => {
  const sorted = results.map((r) => r.ms).sort((a, b) => a - b)
  const at = (q: number) => sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
  return {
    count: results.length,
    medianMs: at(0.5),
    p99Ms: at(0.99),
    maxMs: sorted.length === 0 ? 0 : sorted[sorted.length - 1]!,
    bad: results.filter((r) => r.status !== 200 || r.ms > slowMs)
  }
}
