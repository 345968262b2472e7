/** `/metrics`: the runtime's own metrics in Prometheus's text format, checked by promtool when present. */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Exit, Fiber, Scope, Stream } from "effect"
import type { EventStore } from "@opendata/eventstore"
import { RemoteWrite, type Tsdb } from "@opendata/tsdb"
import WebSocket from "ws"
import { afterAll, describe, expect, it } from "vitest"
import * as Metrics from "../src/Metrics.ts"
import { killAll, start } from "./process.ts"

afterAll(killAll)

const { version } = JSON.parse(fs.readFileSync(path.resolve(import.meta.dirname, "../package.json"), "utf8")) as { version: string }

/** promtool reads the exposition on stdin and exits non-zero on a format or lint error. */
const promtoolCheck = (text: string) => {
  if (fs.existsSync("/usr/bin/promtool")) execFileSync("/usr/bin/promtool", ["check", "metrics"], { input: text })
}

/** The series of an exposition (`name{labels}`), without comments, blank lines and values. */
const seriesOf = (text: string) =>
  new Set(text.split("\n").filter((l) => l !== "" && !l.startsWith("#")).map((l) => l.slice(0, l.lastIndexOf(" "))))

/** The value of one series (`name{labels}` exactly as exposed), or undefined. */
const valueOf = (text: string, series: string) => {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

const remoteWrite2 = (base: string, series: Array<{ labels: Array<[string, string]>; samples: Array<{ timestampMs: number; value: number }> }>) =>
  fetch(`${base}/api/v1/write`, {
    method: "POST",
    headers: {
      "content-type": "application/x-protobuf;proto=io.prometheus.write.v2.Request",
      "content-encoding": "snappy",
      "x-prometheus-remote-write-version": "2.0.0"
    },
    body: RemoteWrite.snappyCompress(RemoteWrite.encodeWriteRequestV2({ series, metadata: [], histograms: 0, exemplars: 0 }))
  })

/** A small seeded generator (mulberry32): the same requests on every run. */
const random = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/** Route and method label values `/metrics` may show (see Metrics.routeOf and methodOf). */
const metricRoutes = new Set([
  "other", "/-/healthy", "/-/ready", "/metrics", "/v1/logs", "/v1/logs/{key}/records", "/v1/logs/{key}/tail", "/v1/groups", "/v1/tail",
  ...["write", "query", "query_range", "format_query", "parse_query", "series", "labels", "metadata", "query_exemplars", "rules", "alerts"].map((n) => `/api/v1/${n}`),
  "/api/v1/label/...", "/api/v1/status/..."
])
const metricMethods = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "other"])

describe("/metrics", () => {
  it("counts HTTP, object-store and product work in Prometheus's text format, with process and build metrics", async () => {
    const server = await start({ OPENDATA_STORE: "memory" })
    await fetch(`${server.base}/v1/logs/k/records`, { method: "POST", body: JSON.stringify({ records: [{ value: "a" }] }) })
    // A remote write 2.0 answer says how many samples it stored (1.0 answers do not).
    const now = Date.now()
    const written = await remoteWrite2(server.base, [{ labels: [["__name__", "up"], ["job", "a"]], samples: [{ timestampMs: now - 1000, value: 1 }, { timestampMs: now, value: 1 }] }])
    expect(written.status).toBe(204)
    expect(written.headers.get("x-prometheus-remote-write-samples-written")).toBe("2")
    await fetch(`${server.base}/api/v1/labels`)
    await fetch(`${server.base}/api/v1/query?query=up`)
    await fetch(`${server.base}/api/v1/query_range?query=up&start=0&end=60&step=15`)
    const res = await fetch(`${server.base}/metrics`)
    expect(res.status).toBe(200)
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/)
    const text = await res.text()
    expect(text).toMatch(/opendata_http_request_duration_seconds_count\{route="\/v1\/logs\/\{key\}\/records",method="POST",code="200"\} 1/)
    expect(text).toMatch(/opendata_http_request_duration_seconds_count\{route="\/api\/v1\/labels",method="GET",code="200"\} 1/)
    // prom-client puts `le` first in a histogram's bucket labels.
    expect(text).toMatch(/opendata_http_request_duration_seconds_bucket\{le="\+Inf",route="\/api\/v1\/labels",method="GET",code="200"\} 1/)
    expect(text).toMatch(/opendata_object_store_request_duration_seconds_count\{operation="put_if_absent",outcome="ok"\} \d+/)
    // Each product's Db: WAL write latency, queue depth, compaction backlog, cache hits and misses.
    expect(text).toMatch(/opendata_db_wal_write_duration_seconds_count\{db="eventstore"\} [1-9]\d*/)
    expect(text).toMatch(/opendata_db_wal_write_duration_seconds_bucket\{db="tsdb",le="\+Inf"\} \d+/)
    expect(text).toMatch(/opendata_db_write_queue_depth\{db="eventstore"\} 0/)
    expect(text).toMatch(/opendata_db_l0_tables\{db="tsdb"\} \d+/)
    expect(text).toMatch(/# TYPE opendata_db_cache_hits_total counter\n/)
    expect(text).toMatch(/opendata_db_cache_hits_total\{db="eventstore",cache="block"\} \d+/)
    expect(text).toMatch(/opendata_db_cache_misses_total\{db="tsdb",cache="meta"\} \d+/)
    expect(text).not.toMatch(/opendata_db_cache_hit_ratio/)
    // The TSDB's postings cache: the bucket the queries read, its bytes and its bound.
    expect(valueOf(text, 'opendata_tsdb_cache_misses_total{cache="postings"}')).toBeGreaterThanOrEqual(1)
    expect(valueOf(text, 'opendata_tsdb_cache_entries{cache="postings"}')).toBeGreaterThanOrEqual(1)
    expect(valueOf(text, 'opendata_tsdb_cache_bytes{cache="postings"}')).toBeGreaterThan(0)
    expect(valueOf(text, 'opendata_tsdb_cache_capacity_bytes{cache="postings"}')).toBe(64 * 1024 * 1024)
    expect(text).toMatch(/opendata_http_requests_in_flight\{route="\/metrics"\} 1/)
    // The products' work.
    expect(valueOf(text, 'opendata_tsdb_queries_total{type="instant"}')).toBe(1)
    expect(valueOf(text, 'opendata_tsdb_queries_total{type="range"}')).toBe(1)
    expect(valueOf(text, 'opendata_tsdb_queries_total{type="metadata"}')).toBe(1)
    expect(valueOf(text, "opendata_tsdb_samples_ingested_total")).toBe(2)
    expect(valueOf(text, "opendata_eventstore_appends_total")).toBe(1)
    expect(text).toMatch(/^opendata_tsdb_series_created_total \d+$/m)
    expect(text).toMatch(/^opendata_eventstore_records_appended_total \d+$/m)
    expect(valueOf(text, "opendata_eventstore_tail_subscribers")).toBe(0)
    // The build, and prom-client's process and Node.js metrics.
    expect(valueOf(text, `opendata_build_info{version="${version}",node_version="${process.versions.node}"}`)).toBe(1)
    for (
      const name of [
        "process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "process_max_fds", "process_start_time_seconds",
        "nodejs_eventloop_lag_seconds", "nodejs_heap_size_used_bytes", "nodejs_heap_size_total_bytes", "nodejs_external_memory_bytes",
        "nodejs_version_info"
      ]
    ) expect(text).toMatch(new RegExp(`^${name}(\\{[^}]*\\})? [-+\\d.e]+$`, "m"))
    expect(text).toMatch(/^# TYPE nodejs_gc_duration_seconds histogram$/m)
    expect(text).toMatch(/^nodejs_heap_space_size_used_bytes\{space="old"\} \d+$/m)
    promtoolCheck(text)
  })

  it("refuses query parameters on /metrics and the health endpoints, which take none", async () => {
    const server = await start({ OPENDATA_STORE: "memory" })
    for (const path of ["/metrics?name[]=up", "/-/healthy?x=1", "/-/ready?verbose"]) {
      const res = await fetch(`${server.base}${path}`)
      expect(res.status, path).toBe(400)
      expect(await res.text(), path).toMatch(/^unknown parameter /)
    }
    for (const path of ["/metrics", "/-/healthy", "/-/ready", "/-/healthy?"]) expect((await fetch(`${server.base}${path}`)).status, path).toBe(200)
  })

  it("scrapes fast", async () => {
    const server = await start({ OPENDATA_STORE: "memory" })
    await fetch(`${server.base}/metrics`)
    const tookMs: Array<number> = []
    for (let i = 0; i < 21; i++) {
      const started = performance.now()
      await (await fetch(`${server.base}/metrics`)).text()
      tookMs.push(performance.now() - started)
    }
    tookMs.sort((a, b) => a - b)
    expect(tookMs[10]).toBeLessThan(50)
  })

  it("keeps its label values bounded whatever paths and methods clients send, and logs unknown paths only at debug", async () => {
    const server = await start({ OPENDATA_STORE: "memory" })
    const net = await import("node:net")
    // Methods Node accepts but no route serves, and paths no route serves: each set shares one label value.
    for (const method of ["PROPFIND", "MKCOL", "LOCK", "PURGE", "SEARCH"]) await fetch(`${server.base}/metrics`, { method })
    for (let i = 0; i < 30; i++) await fetch(`${server.base}/${i === 0 ? "api/v1" : "no/such"}/path-${i}?x=${i}`)
    // CONNECT gets an answer (405), not a dropped connection.
    const connect = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(server.port, "127.0.0.1", () => socket.write("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"))
      let got = ""
      socket.on("data", (d) => (got += d.toString()))
      socket.on("end", () => resolve(got))
      socket.on("error", reject)
    })
    expect(connect).toMatch(/^HTTP\/1\.1 405 /)
    const text = await (await fetch(`${server.base}/metrics`)).text()
    const series = text.split("\n").filter((l) => l.startsWith("opendata_http_request_duration_seconds_count"))
    expect(series.filter((l) => l.includes('route="other"'))).toEqual([
      'opendata_http_request_duration_seconds_count{route="other",method="GET",code="404"} 30'
    ])
    expect(series.filter((l) => l.includes('method="other"'))).toEqual([
      'opendata_http_request_duration_seconds_count{route="/metrics",method="other",code="404"} 5'
    ])
    expect(server.output()).not.toMatch(/path-\d/)
  })

  it("does not grow with 1,000 requests to random paths with random methods", async () => {
    const server = await start({ OPENDATA_STORE: "memory" })
    // The standard methods fetch may send, and others Node's parser accepts (it refuses unknown ones itself).
    const methods = [
      "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS",
      "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "PURGE", "SEARCH", "REPORT", "MKCALENDAR", "NOTIFY", "SUBSCRIBE",
      "UNSUBSCRIBE", "ACL", "BIND", "UNBIND", "REBIND", "LINK", "UNLINK", "MERGE", "CHECKOUT", "MKACTIVITY"
    ]
    const prefixes = ["/", "/api/v1/", "/api/v1/label/", "/api/v1/status/", "/v1/logs/", "/v1/groups/", "/-/", "/metrics/", "/v1/tail/"]
    /**
     * 1,000 requests, each to a path never asked before: the request's shape (method, path prefix and
     * suffix, whether it has a body) from `shapeSeed`, its path words, query and body from `wordSeed`.
     */
    const round = async (shapeSeed: number, wordSeed: number) => {
      const shape = random(shapeSeed)
      const words = random(wordSeed)
      const pick = <A>(xs: ReadonlyArray<A>): A => xs[Math.floor(shape() * xs.length)]!
      const word = () => Array.from({ length: 1 + Math.floor(words() * 12) }, () => String.fromCharCode(33 + Math.floor(words() * 94))).join("")
      const request = (i: number) => {
        const method = pick(methods)
        const suffix = shape() < 0.3 ? `/${pick(["records", "tail", "values"])}` : ""
        const url = `${server.base}${pick(prefixes)}${encodeURIComponent(word())}/${i}${suffix}?${encodeURIComponent(word())}=${i}`
        const body = method === "GET" || method === "HEAD" || shape() < 0.5 ? undefined : word()
        return fetch(url, { method, ...(body !== undefined ? { body } : {}) }).then((r) => r.arrayBuffer(), () => undefined)
      }
      let sent = 0
      await Promise.all(Array.from({ length: 8 }, async () => {
        while (sent < 1000) await request(sent++)
      }))
      return (await fetch(`${server.base}/metrics`)).text()
    }
    const own = (text: string) => new Set([...seriesOf(text)].filter((s) => s.startsWith("opendata_")))
    const before = own(await (await fetch(`${server.base}/metrics`)).text())
    const first = await round(1, 2)
    const second = await round(1, 3)
    // Each (route, method, code) a shape reaches is one histogram (15 series), whatever its path.
    expect(own(first).size - before.size).toBeLessThan(1000)
    expect([...own(second)].filter((s) => !own(first).has(s))).toEqual([])
    for (const series of own(second)) {
      for (const m of series.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
        const [, name, value] = m as unknown as [string, string, string]
        if (name === "route") expect(metricRoutes, series).toContain(value)
        if (name === "method") expect(metricMethods, series).toContain(value)
        if (name === "code") expect(value, series).toMatch(/^\d{3}$/)
      }
    }
    promtoolCheck(second)
  })

  it("counts open WebSocket tails as tail subscribers, their upgrades as requests of the tail route (101)", async () => {
    const server = await start({ OPENDATA_STORE: "memory" })
    const tails = await Promise.all([1, 2].map(() =>
      new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(`${server.base.replace(/^http/, "ws")}/v1/logs/k/tail`)
        ws.on("open", () => resolve(ws))
        ws.on("error", reject)
      })))
    const until = async (done: (text: string) => boolean, what: string) => {
      for (let i = 0; i < 100; i++) {
        if (done(await (await fetch(`${server.base}/metrics`)).text())) return
        await new Promise((r) => setTimeout(r, 20))
      }
      expect.fail(what)
    }
    await until((text) => valueOf(text, "opendata_eventstore_tail_subscribers") === 2, "the tails were not counted as subscribers")
    // The HTTP exchange of a tail ends with its upgrade: not in flight for the tail's whole life.
    const open = await (await fetch(`${server.base}/metrics`)).text()
    expect(open).toMatch(/opendata_http_request_duration_seconds_count\{route="\/v1\/logs\/\{key\}\/tail",method="GET",code="101"\} 2/)
    expect(open).toMatch(/opendata_http_requests_in_flight\{route="\/v1\/logs\/\{key\}\/tail"\} 0/)
    for (const ws of tails) ws.close()
    await until((text) => valueOf(text, "opendata_eventstore_tail_subscribers") === 0, "the tails did not leave the subscribers")
  })
})

describe("the Metrics service", () => {
  const render = (metrics: Metrics.MetricsShape) => Effect.runPromise(metrics.render)

  it("counts what the products' services do once they are measured", async () => {
    const metrics = Metrics.make()
    const outcome = { samplesWritten: 5, seriesCreated: 2, outOfOrder: 0, tooOld: 1, duplicates: 0 }
    const tsdb = Metrics.countingTsdb({ write: () => Effect.succeed(outcome) } as unknown as Tsdb.TsdbShape, metrics)
    await Effect.runPromise(tsdb.write({ series: [] }))
    await Effect.runPromise(tsdb.write({ series: [] }))
    const store = Metrics.countingEventStore(
      {
        append: (_key, records) => Effect.succeed({ offsets: records.map((_, i) => i), next: records.length }),
        tail: () => Stream.never,
        tailPrefix: () => Stream.never
      } as Partial<EventStore.EventStoreShape> as EventStore.EventStoreShape,
      metrics
    )
    await Effect.runPromise(store.append("k", [{ value: new Uint8Array(1) }, { value: new Uint8Array(2) }, { value: new Uint8Array(3) }]))
    const tails = [store.tail("k", { _tag: "now" }), store.tailPrefix("p")].map((s) => Effect.runFork(Stream.runDrain(s)))
    await new Promise((r) => setTimeout(r, 10))
    let text = await render(metrics)
    expect(valueOf(text, "opendata_tsdb_samples_ingested_total")).toBe(10)
    expect(valueOf(text, "opendata_tsdb_series_created_total")).toBe(4)
    expect(valueOf(text, "opendata_eventstore_appends_total")).toBe(1)
    expect(valueOf(text, "opendata_eventstore_records_appended_total")).toBe(3)
    expect(valueOf(text, "opendata_eventstore_tail_subscribers")).toBe(2)
    await Effect.runPromise(Fiber.interruptAll(tails))
    text = await render(metrics)
    expect(valueOf(text, "opendata_eventstore_tail_subscribers")).toBe(0)
    // Nothing negative or non-finite reaches a counter.
    metrics.tsdbSamplesIngested(-1)
    metrics.eventStoreRecordsAppended(Number.NaN)
    expect(valueOf(await render(metrics), "opendata_tsdb_samples_ingested_total")).toBe(10)
  })

  it("renders collectors' samples through the registry while they are registered", async () => {
    const metrics = Metrics.make()
    const stats = {
      durableSeq: 7, manifestVersion: 3, writerEpoch: 1, walObjectsWritten: 2, walBytesWritten: 100, l0Tables: 1, sortedRuns: 0,
      compactorEpoch: 0, tables: 1, tableBytes: 4096, tableEntries: 12, tablesWritten: 1, compactions: 0, objectsCollected: 0, writeQueueDepth: 0, memtableBytes: 10, frozenMemtables: 0,
      blockCache: { hits: 9, misses: 3, loads: 3, evictions: 0, bytes: 1024, entries: 3, capacityBytes: 16 * 2 ** 20 },
      metaCache: { hits: 0, misses: 1, loads: 1, evictions: 0, bytes: 64, entries: 1, capacityBytes: 4096 },
      walWriteMs: { boundsMs: [1, 10], counts: [1, 1, 0], sumMs: 6, count: 2 }
    }
    const scope = Effect.runSync(Scope.make())
    await Effect.runPromise(Scope.provide(metrics.register(Effect.succeed(Metrics.dbSamples("tsdb", stats))), scope))
    let text = await render(metrics)
    expect(valueOf(text, 'opendata_db_cache_hits_total{db="tsdb",cache="block"}')).toBe(9)
    expect(valueOf(text, 'opendata_db_cache_misses_total{db="tsdb",cache="block"}')).toBe(3)
    expect(valueOf(text, 'opendata_db_cache_capacity_bytes{db="tsdb",cache="block"}')).toBe(16 * 2 ** 20)
    expect(valueOf(text, 'opendata_db_table_bytes{db="tsdb"}')).toBe(4096)
    expect(valueOf(text, 'opendata_db_wal_write_duration_seconds_bucket{db="tsdb",le="0.01"}')).toBe(2)
    expect(valueOf(text, 'opendata_db_wal_write_duration_seconds_sum{db="tsdb"}')).toBe(0.006)
    expect(text.match(/^# TYPE opendata_db_wal_write_duration_seconds histogram$/gm)).toHaveLength(1)
    promtoolCheck(text)
    await Effect.runPromise(Scope.close(scope, Exit.void))
    text = await render(metrics)
    expect(text).not.toMatch(/opendata_db_/)
  })
})
