/**
 * Fuzz suite: the real server process (`dist/main.js`, memory store) under seeded, bounded, mostly hostile
 * input on every route family and both codecs (JSON and protobuf/snappy), over HTTP and WebSocket.
 *
 * What runs (generators in `fuzz/cases.ts`, one group per route family):
 * - a sweep: every route with every method it does not take (PATCH, OPTIONS, PROPFIND, CONNECT, ...);
 * - then FUZZ_COUNT (default 1,500) random cases, each from its own PRNG (seed, index): EventStore query
 *   strings (unknown, repeated, empty, huge, mistyped parameters), JSON bodies (truncated, mistyped, extra
 *   fields, deep nesting, huge arrays, not JSON), non-canonical base64, odd key segments (bad
 *   percent-encoding, NUL, lone surrogates, over-long), unknown routes, TSDB parameters, PromQL (token
 *   soup, deep nesting, catastrophic and RE2-invalid regexes), remote write (random bytes, truncated snappy,
 *   mutated protobuf, old and zero timestamps, unknown media and message types), WebSocket tails (bad
 *   parameters, bad upgrades, garbage frames on an open tail).
 *
 * What it asserts:
 * 1. Every case is answered (within FUZZ_CASE_TIMEOUT_MS), never with a 5xx (nor a WebSocket close 1011 or
 *    4500+, nor an `error` message with a 5xx status).
 * 2. A case that is bad input by construction gets a 4xx (a WebSocket: refused before the upgrade), and the
 *    status the contract names where it names one (400 malformed/unknown/repeated, 404/405 unknown routes and
 *    methods, 413 over limits, 415 unknown media/message types, 409/416). A case that is valid in any state
 *    gets a 2xx.
 * 3. The process stays healthy: a probe (worker thread) GETs `/-/healthy` every 50 ms for the whole run;
 *    every probe must answer within 1,000 ms and the median within 100 ms (both are printed). A case after
 *    which the process is dead or does not answer is a failure; the server is then restarted (its control
 *    data rewritten) and that case's generator skipped for the rest of the run, so one wedge costs seconds.
 * 4. Control data unchanged: a control log (records, metadata, a consumer group's offset; no fencing token,
 *    no retention) and a control series (samples, series, metadata), written before fuzzing, read back
 *    byte-identical afterwards. Cases target the control log only with requests that are bad by construction
 *    (e.g. `DELETE /v1/logs/<control>?force=true`), so any change is a wrongly accepted request.
 * 5. `/metrics` keeps its label values bounded: routes and methods from fixed sets, no key material.
 *
 * Every failure is collected (the first 30 printed in full: seed, case index, generator, method, target,
 * body excerpt, status, response excerpt), with a summary by generator, before the test fails.
 *
 * Replay: FUZZ_SEED=<seed> (default below) reproduces a run; FUZZ_CASES=12,345 runs only those cases
 * (after the same setup); FUZZ_COUNT=<n> changes the number of random cases:
 *   FUZZ_SEED=42 FUZZ_CASES=812 npm test -w packages/runtime -- test/fuzz.test.ts
 */
import { afterAll, describe, it } from "vitest"
import { RemoteWrite } from "@opendata/tsdb"
import { type Case, type Fixtures, generate, sweepSize } from "./fuzz/cases.ts"
import { type HttpOutcome, rawHttp, runWs, type WsOutcome } from "./fuzz/client.ts"
import { type ProbeResult, probeStats, startProbe } from "./fuzz/probe.ts"
import { seedFrom } from "./fuzz/prng.ts"
import { killAll, type ServerProcess, start } from "./process.ts"

// -------------------------------------------------------------------------------------------------
// Settings
// -------------------------------------------------------------------------------------------------

const seed = seedFrom(process.env.FUZZ_SEED, "2")
const randomCases = Number(process.env.FUZZ_COUNT ?? 1500)
const onlyCases = process.env.FUZZ_CASES?.split(",").filter((s) => s.trim() !== "").map((s) => Number(s.trim()))
const caseTimeoutMs = Number(process.env.FUZZ_CASE_TIMEOUT_MS ?? 5000)
/** How long a WebSocket case waits, after its frames, for the server to close. */
const wsLingerMs = 100
const probeIntervalMs = 50
const probeTimeoutMs = 2000
const probeMaxMs = 1000
const probeMedianMaxMs = 100
const failuresPrinted = 30
/** Cases between two full reads of the control data (a change is then narrowed to that window). */
const checkpointEvery = 500

const serverEnv = {
  OPENDATA_STORE: "memory",
  // A slow (asynchronous) query ends as a 503 the suite reports, instead of holding the run.
  OPENDATA_TSDB_QUERY_TIMEOUT_MS: "4000",
  OPENDATA_EVENTSTORE_TAIL_HEARTBEAT_MS: "1000"
}

/** "Now", read once: every time-dependent value of the run derives from it. */
const nowMs = Math.floor(Date.now() / 1000) * 1000

const fx: Fixtures = {
  controlKey: "fuzz-control/log",
  controlGroup: "fuzz-control-group",
  controlSeries: "fuzz_control_series",
  redosSeries: "fz_redos",
  redosValue: "a".repeat(40) + "!",
  fixtureSeries: "fz_fixture"
}

afterAll(killAll)

// -------------------------------------------------------------------------------------------------
// Fixtures and control data
// -------------------------------------------------------------------------------------------------

const enc = encodeURIComponent
/** The control series' samples: 30, 30 s apart, ending a minute before `nowMs`. */
const controlEndMs = nowMs - 60_000
const controlSamples = Array.from({ length: 30 }, (_, i) => ({ timestampMs: controlEndMs - (29 - i) * 30_000, value: i * 1.5 - 7 }))

/** A request of the suite itself (setup, control reads); status 0 when the server does not answer in 5 s. */
const call = async (server: ServerProcess, method: string, path: string, body?: string | Uint8Array, headers: Record<string, string> = {}) => {
  try {
    const res = await fetch(server.base + path, { method, headers, signal: AbortSignal.timeout(5000), ...(body === undefined ? {} : { body }) })
    return { status: res.status, text: await res.text() }
  } catch (e) {
    return { status: 0, text: `no answer: ${e instanceof Error ? e.message : String(e)}` }
  }
}

const must = async (what: string, answer: Promise<{ status: number; text: string }>, status: number) => {
  const a = await answer
  if (a.status !== status) throw new Error(`fuzz setup: ${what} answered ${a.status} (expected ${status}): ${a.text.slice(0, 300)}`)
}

/** Writes the control log, group offset and series, and the fixtures some cases query. */
const writeFixtures = async (server: ServerProcess) => {
  const key = enc(fx.controlKey)
  await must("control append", call(server, "POST", `/v1/logs/${key}/records`, JSON.stringify({
    records: [
      { value: "alpha", headers: { h: "1", "content-type": "text/plain" }, eventTime: 1_700_000_000_000 },
      { value: "βeta ✓ \u0001" },
      { value: "{\"json\":true}", headers: { empty: "" } }
    ]
  }), { "content-type": "application/json" }), 200)
  await must("control append (base64)", call(server, "POST", `/v1/logs/${key}/records?encoding=base64`, JSON.stringify({
    records: [{ value: Buffer.from("delta \u00e9").toString("base64") }]
  })), 200)
  await must("control group offset", call(server, "PUT", `/v1/groups/${enc(fx.controlGroup)}/offsets/${key}`, JSON.stringify({ offset: 2 })), 200)
  const series = [
    { labels: [["__name__", fx.controlSeries], ["instance", "c"], ["job", "control"]] as Array<[string, string]>, samples: controlSamples },
    { labels: [["__name__", fx.fixtureSeries], ["job", "fz"]] as Array<[string, string]>, samples: [{ timestampMs: nowMs - 120_000, value: 3 }, { timestampMs: nowMs - 60_000, value: 4 }] },
    { labels: [["__name__", fx.redosSeries], ["v", fx.redosValue]] as Array<[string, string]>, samples: [{ timestampMs: nowMs - 60_000, value: 1 }] }
  ]
  const metadata = [{ metric: fx.controlSeries, type: "gauge" as const, help: "Control series of the fuzz suite.", unit: "" }]
  await must("control remote write", call(server, "POST", "/api/v1/write", RemoteWrite.snappyCompress(RemoteWrite.encodeWriteRequestV1({ series, metadata, histograms: 0, exemplars: 0 })), {
    "content-type": "application/x-protobuf",
    "content-encoding": "snappy"
  }), 204)
}

/** Everything read back about the control data, each as `status body`: compared byte for byte. */
const controlReads = (): ReadonlyArray<readonly [string, string]> => {
  const key = enc(fx.controlKey)
  const endS = controlEndMs / 1000
  return [
    ["log metadata", `/v1/logs/${key}`],
    ["records (utf8)", `/v1/logs/${key}/records?from=0`],
    ["records (base64)", `/v1/logs/${key}/records?from=0&encoding=base64`],
    ["records from offset 2", `/v1/logs/${key}/records?from=2&limit=1`],
    ["list by prefix", `/v1/logs?prefix=${enc("fuzz-control/")}`],
    ["group offset", `/v1/groups/${enc(fx.controlGroup)}/offsets/${key}`],
    ["series samples", `/api/v1/query?query=${enc(`${fx.controlSeries}[20m]`)}&time=${endS + 1}`],
    ["series range", `/api/v1/query_range?query=${enc(fx.controlSeries)}&start=${endS - 900}&end=${endS}&step=30`],
    ["series", `/api/v1/series?match[]=${enc(fx.controlSeries)}`],
    ["series metadata", `/api/v1/metadata?metric=${fx.controlSeries}`]
  ]
}

/** The reads a request to the control log or group could change: checked after each such request. */
const quickReads = new Set(["log metadata", "records (base64)", "group offset"])

const readControl = async (server: ServerProcess, only?: ReadonlySet<string>): Promise<Map<string, string>> => {
  const out = new Map<string, string>()
  for (const [name, path] of controlReads()) {
    if (only !== undefined && !only.has(name)) continue
    const a = await call(server, "GET", path)
    out.set(name, `${a.status} ${a.text}`)
  }
  return out
}

/** The reads that differ from `before` (only those read in `after`). */
const controlDiff = (before: Map<string, string>, after: Map<string, string>): Array<string> =>
  [...after].filter(([name, now]) => before.get(name) !== now).map(([name, now]) =>
    `control data changed: ${name}\n      before: ${before.get(name)!.slice(0, 400)}\n      after:  ${now.slice(0, 400)}`
  )

/** Whether a case is a request that could change the control log or group (any method but GET and HEAD). */
const targetsControl = (c: Case) =>
  c.run._tag === "http" && c.run.request.method !== "GET" && c.run.request.method !== "HEAD" &&
  (c.run.request.target.includes(`/${enc(fx.controlKey)}`) || c.run.request.target.includes(`/${enc(fx.controlGroup)}/`))

/** Checks the fresh control data is what was written (so that "unchanged" means something). */
const checkControlWritten = (snapshot: Map<string, string>) => {
  const meta = JSON.parse(snapshot.get("log metadata")!.slice(4)) as { nextOffset: number; fenced: boolean; retention: unknown; firstOffset: number }
  const samples = JSON.parse(snapshot.get("series samples")!.slice(4)) as { data: { result: Array<{ values: Array<unknown> }> } }
  if (meta.nextOffset !== 4 || meta.firstOffset !== 0 || meta.fenced || meta.retention !== null || samples.data.result[0]?.values.length !== 30) {
    throw new Error(`fuzz setup: the control data reads back wrong:\n${[...snapshot].map(([k, v]) => `${k}: ${v.slice(0, 300)}`).join("\n")}`)
  }
}

// -------------------------------------------------------------------------------------------------
// Running a case, and the assertion policy
// -------------------------------------------------------------------------------------------------

type Outcome = HttpOutcome | WsOutcome

const execute = (server: ServerProcess, c: Case): Promise<Outcome> =>
  c.run._tag === "http"
    ? rawHttp(server.port, c.run.request, caseTimeoutMs)
    : runWs(`ws://127.0.0.1:${server.port}${c.run.target}`, c.run.actions, wsLingerMs, caseTimeoutMs)

const statusOf = (o: Outcome): number | undefined =>
  o._tag === "answer" || o._tag === "refused" ? o.status : o._tag === "opened" ? 101 : undefined

/** The one assertion policy: what is wrong with this outcome for this case, if anything. */
const judge = (c: Case, o: Outcome): string | undefined => {
  if (o._tag === "timeout") return `no answer within ${caseTimeoutMs} ms`
  if (o._tag === "error") return `no answer: ${o.message}`
  if (o._tag === "opened") {
    if (o.closeCode === 1011 || (o.closeCode !== undefined && o.closeCode >= 4500 && o.closeCode < 4600)) {
      return `tail closed with a server-error code ${o.closeCode}`
    }
    // A tail's error message, or an append session's answer, with a 5xx status.
    const serverError = o.messages.find((m) => /"status":5\d\d/.test(m))
    if (serverError !== undefined) return `tail sent a server error: ${serverError.slice(0, 200)}`
    if (c.expect === "bad") return `upgraded (101) although the input is bad (the contract: refused with a 4xx before the upgrade)${o.closeCode !== undefined ? `; then closed ${o.closeCode}` : ""}`
    return undefined
  }
  const status = o.status
  if (status >= 500) return `${status}: a server error`
  if (c.expect === "bad" && (status < 400 || status > 499)) return `${status}: bad input must get a 4xx`
  if (c.expect === "good" && (status < 200 || status > 299)) return `${status}: valid input must get a 2xx`
  if (c.expect !== "any" && c.statuses !== undefined && !c.statuses.includes(status)) {
    return `${status}: the contract answers this with ${c.statuses.join(" or ")}`
  }
  return undefined
}

// -------------------------------------------------------------------------------------------------
// Reporting
// -------------------------------------------------------------------------------------------------

/** Text as JSON (escapes visible), or hex when it is mostly not printable UTF-8. */
const excerpt = (bytes: Uint8Array | undefined, max = 160): string => {
  if (bytes === undefined || bytes.length === 0) return "(none)"
  const text = Buffer.from(bytes.subarray(0, max * 4)).toString("utf8").slice(0, max)
  const odd = [...text].filter((ch) => ch === "\ufffd" || (ch < " " && ch !== "\n" && ch !== "\r" && ch !== "\t")).length
  const shown = odd <= text.length * 0.2
    ? JSON.stringify(text) + (bytes.length > Buffer.byteLength(text) ? "..." : "")
    : `hex ${Buffer.from(bytes.subarray(0, 48)).toString("hex")}${bytes.length > 48 ? "..." : ""}`
  return `${bytes.length} bytes: ${shown}`
}

/** The request-target as sent, printable (bytes outside ASCII as \xNN), cut to `max`. */
const targetText = (target: string, max = 200) => {
  const shown = target.replace(/[^\x21-\x7e]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, "0")}`)
  return shown.length > max ? `${shown.slice(0, max)}... (${target.length} bytes)` : shown
}

const outcomeText = (o: Outcome): string => {
  switch (o._tag) {
    case "answer":
      return `${o.status} ${excerpt(o.body, 200)}`
    case "refused":
      return `${o.status} (upgrade refused) ${excerpt(Buffer.from(o.body), 200)}`
    case "opened":
      return `101 (upgraded); server close: ${o.closeCode ?? "none within the wait"}; messages: ${JSON.stringify(o.messages.slice(0, 2)).slice(0, 200)}`
    case "timeout":
      return `no answer within ${caseTimeoutMs} ms`
    case "error":
      return o.message
  }
}

interface Failure {
  readonly c: Case
  problem: string
  outcome: string
}

const describeCase = (c: Case): string => {
  const head = `#${c.index} [${c.generator}] ${c.expect}${c.statuses !== undefined ? ` (contract: ${c.statuses.join("/")})` : ""}: ${c.why}`
  if (c.run._tag === "ws") {
    const frames = c.run.actions.map((a) => `${a._tag}(${"data" in a ? (typeof a.data === "string" ? a.data.length : a.data.length) : 0})`).join(" ")
    return `${head}\n    WS ${targetText(c.run.target)}${frames === "" ? "" : `  frames: ${frames}`}`
  }
  const r = c.run.request
  const headers = (r.headers ?? []).map(([n, v]) => `${n}: ${v}`).join("; ")
  return `${head}\n    ${targetText(r.method, 40)} ${targetText(r.target)}${headers === "" ? "" : `\n    headers: ${headers}`}${r.declaredLength !== undefined ? `\n    declared Content-Length: ${r.declaredLength}` : ""}\n    body: ${excerpt(r.body)}`
}

const formatFailure = (f: Failure) => `${describeCase(f.c)}\n    -> ${f.outcome}\n    PROBLEM: ${f.problem}`

// -------------------------------------------------------------------------------------------------
// The run
// -------------------------------------------------------------------------------------------------

/** Whether the server answers `/-/healthy` within `ms`. */
const healthyWithin = async (server: ServerProcess, ms: number) => {
  const o = await rawHttp(server.port, { method: "GET", target: "/-/healthy" }, ms)
  return o._tag === "answer" && o.status === 200
}

const hasExited = (server: ServerProcess) => server.child.exitCode !== null || server.child.signalCode !== null

/** The server's log lines that are not the access log: errors, defects, exit messages (the last 25). */
/** The server's last log lines, without access-log lines (one logfmt line each). */
const serverErrors = (output: string): string =>
  output.split("\n").filter((line) => !/Sent HTTP response/.test(line)).map((line) => line.slice(0, 300)).slice(-25).join("\n      ")

const startServer = async () => {
  const server = await start(serverEnv)
  await writeFixtures(server)
  const snapshot = await readControl(server)
  checkControlWritten(snapshot)
  return { server, snapshot }
}

/** Route and method label values `/metrics` may show (see Metrics.routeOf and methodOf). */
const metricRoutes = new Set([
  "other", "/-/healthy", "/-/ready", "/metrics", "/v1/logs", "/v1/logs/{key}/records", "/v1/logs/{key}/tail", "/v1/groups", "/v1/tail", "/v1/append",
  ...["write", "query", "query_range", "format_query", "parse_query", "series", "labels", "metadata", "query_exemplars", "rules", "alerts"].map((n) => `/api/v1/${n}`),
  "/api/v1/label/...", "/api/v1/status/..."
])
const metricMethods = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "other"])

/** What is wrong with `/metrics` after the run: unbounded or raw label values. */
const checkMetrics = (text: string): Array<string> => {
  const problems: Array<string> = []
  const lines = text.split("\n").filter((l) => l.startsWith("opendata_http_"))
  const seen = new Set<string>()
  for (const line of lines) {
    const labels = /\{([^}]*)\}/.exec(line)?.[1] ?? ""
    for (const m of labels.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      const [, name, value] = m as unknown as [string, string, string]
      const ok = name === "route" ? metricRoutes.has(value) : name === "method" ? metricMethods.has(value) : name === "code" ? /^\d{3}$/.test(value) : name === "le"
      if (!ok) problems.push(`/metrics label ${name}="${value.slice(0, 80)}" is not from its fixed set: ${line.slice(0, 160)}`)
    }
    if (line.startsWith("opendata_http_request_duration_seconds_count")) seen.add(labels)
  }
  if (seen.size > 400) problems.push(`/metrics has ${seen.size} request series: its labels are not bounded`)
  return problems.slice(0, 10)
}

describe("fuzz", () => {
  it(`survives seeded hostile input on every route (seed ${seed})`, { timeout: 300_000 }, async () => {
    const started = performance.now()
    let { server, snapshot } = await startServer()
    const probe = startProbe(server.base, probeIntervalMs, probeTimeoutMs)

    const indices = onlyCases ?? Array.from({ length: sweepSize + randomCases }, (_, i) => i)
    const failures: Array<Failure> = []
    const runProblems: Array<string> = []
    const quarantined = new Map<string, number>()
    const skipped = new Map<string, number>()
    const perGenerator = new Map<string, { cases: number; failures: number; first?: number }>()
    const statusClasses = new Map<string, number>()
    const durations: Array<readonly [number, number]> = []
    const controlProblems: Array<string> = []
    let sinceCheckpoint = 0
    let restarts = 0
    /** Records a problem of a case: one entry per case, its problems joined. */
    const fail = (c: Case, problem: string, outcome: string) => {
      const last = failures.at(-1)
      if (last !== undefined && last.c.index === c.index) {
        last.problem += `\n    PROBLEM: ${problem}`
        last.outcome += `\n    ${outcome}`
        return
      }
      failures.push({ c, problem, outcome })
      const stats = perGenerator.get(c.generator)!
      stats.failures++
      stats.first ??= c.index
    }

    for (const index of indices) {
      const c = generate(seed, index, nowMs, fx)
      if (quarantined.has(c.generator)) {
        skipped.set(c.generator, (skipped.get(c.generator) ?? 0) + 1)
        continue
      }
      probe.setCase(index)
      const outcome = await execute(server, c)
      probe.setCase(-1)
      const ms = "ms" in outcome ? outcome.ms : 0
      durations.push([ms, index])
      const status = statusOf(outcome)
      const cls = status === undefined ? outcome._tag : `${Math.floor(status / 100)}xx`
      statusClasses.set(cls, (statusClasses.get(cls) ?? 0) + 1)
      const stats = perGenerator.get(c.generator) ?? { cases: 0, failures: 0 }
      perGenerator.set(c.generator, stats)
      stats.cases++
      const problem = judge(c, outcome)
      if (problem !== undefined) fail(c, problem, outcomeText(outcome))
      // A request to the control log or group is bad by construction: it must change nothing. The baseline
      // moves on after a reported change, so that later changes are attributed to their own case.
      const alive = !hasExited(server) && outcome._tag !== "timeout" && outcome._tag !== "error"
      if (alive && targetsControl(c)) {
        const now = await readControl(server, quickReads)
        const changed = [...now.values()].some((v) => v.startsWith("0 ")) ? [] : controlDiff(snapshot, now)
        if (changed.length > 0) {
          fail(c, "this request changed the control data, which no request to it may", changed.join("\n    "))
          snapshot = await readControl(server)
        }
      }
      if (alive && ++sinceCheckpoint >= checkpointEvery) {
        sinceCheckpoint = 0
        const now = await readControl(server)
        const changed = controlDiff(snapshot, now)
        if (changed.length > 0) controlProblems.push(`between the checkpoint before and case #${index}:\n    ${changed.join("\n    ")}`)
        snapshot = now
      }
      // A case may kill or wedge the process: then report it, skip its generator, and restart.
      const suspicious = hasExited(server) || outcome._tag === "timeout" || outcome._tag === "error"
      if (suspicious && (hasExited(server) || !(await healthyWithin(server, 1500)))) {
        // A process on its way out (listener closed, finalizers running) is given a moment to exit.
        await Promise.race([server.exited, new Promise((r) => setTimeout(r, 1000))])
        const why = hasExited(server)
          ? `the server process exited (code ${server.child.exitCode}, signal ${server.child.signalCode}) during or after this case`
          : "the server stopped answering /-/healthy after this case (wedged)"
        fail(c, `${why}; restarted it, and skipped this generator for the rest of the run`, `server output:\n      ${serverErrors(server.output())}`)
        if (!hasExited(server) && (await healthyWithin(server, 500))) {
          const changed = controlDiff(snapshot, await readControl(server))
          if (changed.length > 0) controlProblems.push(`before the restart after case #${index}:\n    ${changed.join("\n    ")}`)
        }
        runProblems.push(`#${c.index} [${c.generator}]: ${why}`)
        quarantined.set(c.generator, index)
        probe.pause()
        server.child.kill("SIGKILL")
        ;({ server, snapshot } = await startServer())
        probe.setBase(server.base)
        probe.resume()
        restarts++
      }
    }

    const probes: ReadonlyArray<ProbeResult> = await probe.stop()
    const fuzzMs = performance.now() - started

    // The control data, read back.
    const finalDiff = controlDiff(snapshot, await readControl(server))
    if (finalDiff.length > 0) controlProblems.push(`between the last checkpoint and the end of the run:\n    ${finalDiff.join("\n    ")}`)
    const metricsProblems = checkMetrics((await call(server, "GET", "/metrics")).text)
    const ready = await call(server, "GET", "/-/ready")
    if (ready.status !== 200) runProblems.push(`/-/ready answers ${ready.status} after the run`)

    // The probe.
    const p = probeStats(probes, probeMaxMs)
    const probeProblems: Array<string> = []
    if (probes.length === 0) probeProblems.push("the health probe recorded nothing")
    for (const b of p.bad.slice(0, 10)) {
      probeProblems.push(`health probe at ${(b.at / 1000).toFixed(1)} s: ${b.status === 0 ? `no answer (${b.error})` : `${b.status}`} after ${b.ms.toFixed(0)} ms, during case #${b.caseIndex}`)
    }
    if (p.bad.length > 10) probeProblems.push(`... and ${p.bad.length - 10} more probes over ${probeMaxMs} ms or unanswered`)
    if (p.medianMs > probeMedianMaxMs) probeProblems.push(`median health probe ${p.medianMs.toFixed(1)} ms, over ${probeMedianMaxMs} ms`)

    // The report.
    const families = new Map<string, number>()
    for (const [g, s] of perGenerator) {
      const family = g.split(".").slice(0, 2).join(".")
      families.set(family, (families.get(family) ?? 0) + s.cases)
    }
    const slowest = [...durations].sort((a, b) => b[0] - a[0]).slice(0, 5).map(([ms, i]) => `#${i} ${ms.toFixed(0)} ms`).join(", ")
    const summary = [
      `fuzz seed ${seed}: ${durations.length} cases run (sweep ${onlyCases === undefined ? sweepSize : "-"}, random ${onlyCases === undefined ? randomCases : "-"}) in ${(fuzzMs / 1000).toFixed(1)} s; answers ${[...statusClasses].sort().map(([k, v]) => `${k}: ${v}`).join(", ")}`,
      `health probe: ${p.count} probes every ${probeIntervalMs} ms; median ${p.medianMs.toFixed(1)} ms (limit ${probeMedianMaxMs}), p99 ${p.p99Ms.toFixed(1)} ms, max ${p.maxMs.toFixed(0)} ms (limit ${probeMaxMs}); ${p.bad.length} over the limit or unanswered`,
      `cases by family: ${[...families].sort().map(([f, n]) => `${f} ${n}`).join(", ")}`,
      `slowest cases: ${slowest}`,
      `server restarts: ${restarts}${quarantined.size > 0 ? `; generators skipped after a wedge or crash: ${[...quarantined].map(([g, i]) => `${g} (at #${i}, ${skipped.get(g) ?? 0} skipped)`).join(", ")}` : ""}`
    ]
    const byGenerator = [...perGenerator].filter(([, s]) => s.failures > 0).sort((a, b) => b[1].failures - a[1].failures)
      .map(([g, s]) => `  ${g.padEnd(44)} ${String(s.failures).padStart(4)} of ${String(s.cases).padEnd(4)} first #${s.first}`)
    const problemsFound = failures.length + controlProblems.length + probeProblems.length + metricsProblems.length + runProblems.length
    console.log([...summary, problemsFound === 0 ? "no problems found" : `${problemsFound} problems found (listed in the failure)`].join("\n"))
    const report = [
      ...summary,
      ...(problemsFound === 0 ? [] : [
        `${failures.length} failing cases${failures.length > 0 ? ", by generator:" : ""}`,
        ...byGenerator,
        ...(failures.length > 0 ? [`first ${Math.min(failuresPrinted, failures.length)} failures:`, ...failures.slice(0, failuresPrinted).map(formatFailure)] : []),
        ...controlProblems,
        ...probeProblems,
        ...metricsProblems,
        ...runProblems,
        `replay: FUZZ_SEED=${seed} FUZZ_CASES=${[...new Set(failures.map((f) => f.c.index))].slice(0, 20).join(",")} npm test -w packages/runtime -- test/fuzz.test.ts`
      ])
    ].join("\n")
    if (problemsFound > 0) throw new Error(`fuzz (seed ${seed}) found ${problemsFound} problems:\n${report}`)
  })
})
