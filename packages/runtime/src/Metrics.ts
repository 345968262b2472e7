/**
 * The runtime's own metrics, served at `/metrics` in Prometheus's text format: HTTP requests by route
 * and status with a latency histogram, requests in flight and open tails, object-store requests by
 * operation and outcome with latency, each product Db's WAL write latency, write queue depth, memtables,
 * compaction backlog (level-0 tables, sorted runs) and cache hit ratios, the compactor role's work, and
 * process gauges. Counters live in memory and are bounded by the fixed sets of routes, operations,
 * outcomes and Dbs.
 */
import { Cause, Clock, Context, Effect, Layer, Option } from "effect"
import { HttpMiddleware, HttpRouter, HttpServerError, HttpServerRequest, HttpServerResponse } from "effect/http"
import type { Db } from "@opendata/core"
import { ObjectStore } from "@opendata/core"

const latencyBucketsS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

class Histogram {
  readonly counts = new Array<number>(latencyBucketsS.length + 1).fill(0)
  sum = 0
  count = 0
  observe(seconds: number) {
    let i = latencyBucketsS.findIndex((b) => seconds <= b)
    if (i === -1) i = latencyBucketsS.length
    this.counts[i]! += 1
    this.sum += seconds
    this.count += 1
  }
}

/** One sample of a metric family that a collector reports when `/metrics` is read. */
export interface Sample {
  readonly name: string
  readonly type: "counter" | "gauge" | "histogram"
  readonly help: string
  readonly labels: Record<string, string>
  readonly value: number
}

export interface MetricsShape {
  readonly observeHttp: (route: string, method: string, status: number, seconds: number) => void
  readonly observeStore: (operation: string, outcome: string, seconds: number) => void
  /** Requests being served now on a route (`delta` +1 when one starts, -1 when it ends). */
  readonly inFlight: (route: string, delta: number) => void
  /**
   * A request for a path no route serves arrived at `nowMs`: the number of such requests not logged since
   * the last one logged, when this one should be logged (once per `unknownRouteLogIntervalMs`), else undefined.
   */
  readonly unknownRouteLog: (nowMs: number) => number | undefined
  /** Adds a source of samples read at each scrape (a product's Db, a compactor); removed with its scope. */
  readonly register: (collector: Effect.Effect<ReadonlyArray<Sample>>) => Effect.Effect<void, never, import("effect").Scope.Scope>
  readonly render: Effect.Effect<string>
}

export class Metrics extends Context.Service<Metrics, MetricsShape>()("@opendata/runtime/Metrics") {}

const labelText = (labels: Record<string, string>) =>
  "{" + Object.entries(labels).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(",") + "}"

const renderSamples = (samples: ReadonlyArray<Sample>): Array<string> => {
  const families = new Map<string, Array<Sample>>()
  for (const sample of samples) {
    const family = families.get(sample.name) ?? []
    family.push(sample)
    families.set(sample.name, family)
  }
  const lines: Array<string> = []
  const described = new Set<string>()
  for (const [name, family] of families) {
    // A histogram's _bucket, _sum and _count series share one HELP and TYPE, under the base name.
    const base = family[0]!.type === "histogram" ? name.replace(/_(bucket|sum|count)$/, "") : name
    if (!described.has(base)) {
      described.add(base)
      lines.push(`# HELP ${base} ${family[0]!.help}`, `# TYPE ${base} ${family[0]!.type}`)
    }
    for (const sample of family) lines.push(`${name}${labelText(sample.labels)} ${sample.value}`)
  }
  return lines
}

export const make = (): MetricsShape => {
  const collectors = new Set<Effect.Effect<ReadonlyArray<Sample>>>()
  const inFlight = new Map<string, number>()
  let unknownRouteLoggedMs = Number.NEGATIVE_INFINITY
  let unknownRouteUnlogged = 0
  const http = new Map<string, { labels: Record<string, string>; histogram: Histogram }>()
  const store = new Map<string, { labels: Record<string, string>; histogram: Histogram }>()
  const observe = (map: typeof http, labels: Record<string, string>, seconds: number) => {
    const key = JSON.stringify(labels)
    let entry = map.get(key)
    if (entry === undefined) {
      entry = { labels, histogram: new Histogram() }
      map.set(key, entry)
    }
    entry.histogram.observe(seconds)
  }
  const histogramLines = (name: string, help: string, map: typeof http) =>
    renderSamples([...map.values()].flatMap(({ labels, histogram }) => histogramSamples(name, help, labels, latencyBucketsS, histogram)))
  return {
    observeHttp: (route, method, status, seconds) => observe(http, { route, method, code: String(status) }, seconds),
    observeStore: (operation, outcome, seconds) => observe(store, { operation, outcome }, seconds),
    inFlight: (route, delta) => {
      inFlight.set(route, (inFlight.get(route) ?? 0) + delta)
    },
    unknownRouteLog: (nowMs) => {
      if (nowMs - unknownRouteLoggedMs < unknownRouteLogIntervalMs) {
        unknownRouteUnlogged += 1
        return undefined
      }
      const unlogged = unknownRouteUnlogged
      unknownRouteLoggedMs = nowMs
      unknownRouteUnlogged = 0
      return unlogged
    },
    register: (collector) =>
      Effect.acquireRelease(Effect.sync(() => collectors.add(collector)), () => Effect.sync(() => collectors.delete(collector))),
    render: Effect.gen(function*() {
      const collected: Array<Sample> = []
      for (const collector of collectors) collected.push(...(yield* collector))
      const memory = process.memoryUsage()
      const flight = [...inFlight].map(([route, n]): Sample => ({
        name: "opendata_http_requests_in_flight",
        type: "gauge",
        help: "HTTP requests being served, by route (an open WebSocket tail is one).",
        labels: { route },
        value: n
      }))
      return [
        ...histogramLines("opendata_http_request_duration_seconds", "HTTP requests by route, method and status code.", http),
        ...renderSamples(flight),
        ...histogramLines("opendata_object_store_request_duration_seconds", "Object-store requests by operation and outcome.", store),
        ...renderSamples(collected),
        "# HELP opendata_process_resident_memory_bytes Resident memory.",
        "# TYPE opendata_process_resident_memory_bytes gauge",
        `opendata_process_resident_memory_bytes ${memory.rss}`,
        "# HELP opendata_process_heap_used_bytes JavaScript heap in use.",
        "# TYPE opendata_process_heap_used_bytes gauge",
        `opendata_process_heap_used_bytes ${memory.heapUsed}`,
        "# HELP opendata_process_uptime_seconds Seconds since the process started.",
        "# TYPE opendata_process_uptime_seconds gauge",
        `opendata_process_uptime_seconds ${process.uptime()}`,
        ""
      ].join("\n")
    })
  }
}

/** A histogram (counts per bucket, the last above every bound) as Prometheus's cumulative samples. */
const histogramSamples = (
  name: string,
  help: string,
  labels: Record<string, string>,
  boundsS: ReadonlyArray<number>,
  h: { readonly counts: ReadonlyArray<number>; readonly sum: number; readonly count: number }
): Array<Sample> => {
  const out: Array<Sample> = []
  let cumulative = 0
  boundsS.forEach((b, i) => {
    cumulative += h.counts[i]!
    out.push({ name: `${name}_bucket`, type: "histogram", help, labels: { ...labels, le: String(b) }, value: cumulative })
  })
  cumulative += h.counts[boundsS.length]!
  out.push({ name: `${name}_bucket`, type: "histogram", help, labels: { ...labels, le: "+Inf" }, value: cumulative })
  out.push({ name: `${name}_sum`, type: "histogram", help, labels, value: h.sum })
  out.push({ name: `${name}_count`, type: "histogram", help, labels, value: h.count })
  return out
}

/** Compaction backlog and work, reported alike by a writer's Db and by a compactor process. */
const compactionSamples = (
  labels: Record<string, string>,
  stats: Pick<Db.CompactorStats, "l0Tables" | "sortedRuns" | "compactions" | "tablesWritten" | "objectsCollected">
): Array<Sample> => [
  { name: "opendata_db_l0_tables", type: "gauge", help: "Level-0 tables (the compaction backlog).", labels, value: stats.l0Tables },
  { name: "opendata_db_sorted_runs", type: "gauge", help: "Sorted runs.", labels, value: stats.sortedRuns },
  { name: "opendata_db_compactions_total", type: "counter", help: "Compactions committed by this process.", labels, value: stats.compactions },
  { name: "opendata_db_tables_written_total", type: "counter", help: "Tables written by flushes and compactions in this process.", labels, value: stats.tablesWritten },
  { name: "opendata_db_objects_collected_total", type: "counter", help: "Objects deleted by garbage collection in this process.", labels, value: stats.objectsCollected }
]

/** The samples of one product's Db (`db` names it: `eventstore` or `tsdb`). */
export const dbSamples = (db: string, stats: Db.DbStats): Array<Sample> => {
  const labels = { db }
  const gauge = (name: string, help: string, value: number, extra: Record<string, string> = {}): Sample => ({
    name,
    type: "gauge",
    help,
    labels: { ...labels, ...extra },
    value
  })
  const counter = (name: string, help: string, value: number): Sample => ({ name, type: "counter", help, labels, value })
  const caches = (["block", "meta"] as const).flatMap((cache) => {
    const c = cache === "block" ? stats.blockCache : stats.metaCache
    const requests = c.hits + c.misses
    return [
      gauge("opendata_db_cache_hit_ratio", "Share of cache lookups that hit, since start (NaN before the first).", requests === 0 ? Number.NaN : c.hits / requests, { cache }),
      gauge("opendata_db_cache_bytes", "Bytes held by the cache.", c.bytes, { cache })
    ]
  })
  return [
    ...histogramSamples("opendata_db_wal_write_duration_seconds", "WAL object writes, from the first attempt to durable.", labels, stats.walWriteMs.boundsMs.map((b) => b / 1000), {
      counts: stats.walWriteMs.counts,
      sum: stats.walWriteMs.sumMs / 1000,
      count: stats.walWriteMs.count
    }),
    counter("opendata_db_wal_objects_written_total", "WAL objects written.", stats.walObjectsWritten),
    counter("opendata_db_wal_bytes_written_total", "WAL bytes written.", stats.walBytesWritten),
    gauge("opendata_db_write_queue_depth", "Writes waiting in the writer's mailbox.", stats.writeQueueDepth),
    gauge("opendata_db_memtable_bytes", "Bytes in memtables not yet flushed to tables.", stats.memtableBytes),
    gauge("opendata_db_frozen_memtables", "Memtables waiting to be flushed.", stats.frozenMemtables),
    ...compactionSamples(labels, stats),
    gauge("opendata_db_durable_seq", "Highest durable sequence number.", stats.durableSeq),
    gauge("opendata_db_manifest_version", "Manifest version this process reads.", stats.manifestVersion),
    ...caches
  ]
}

/** The samples of a compactor role for one product's Db. */
export const compactorSamples = (db: string, stats: Db.CompactorStats): Array<Sample> => {
  const labels = { db }
  return [
    { name: "opendata_compactor_epoch", type: "gauge", help: "Compactor epoch this process holds.", labels, value: stats.compactorEpoch },
    ...compactionSamples(labels, stats)
  ]
}

/** The API's endpoints under `/api/v1/` (anything else there is counted as `other`). */
const apiEndpoints: ReadonlySet<string> = new Set([
  "write", "query", "query_range", "format_query", "parse_query", "series", "labels", "label", "metadata", "status", "query_exemplars",
  "rules", "alerts"
])

/** A fixed, small set of route names (never the raw path: keys and label values would be unbounded). */
export const routeOf = (url: string): string => {
  const path = url.split("?")[0] ?? ""
  if (path.startsWith("/api/v1/")) {
    const name = path.slice("/api/v1/".length).split("/")[0] ?? ""
    if (!apiEndpoints.has(name)) return "other"
    return `/api/v1/${["label", "status"].includes(name) ? `${name}/...` : name}`
  }
  if (path === "/v1/logs" || path.startsWith("/v1/logs/")) return path.endsWith("/tail") ? "/v1/logs/{key}/tail" : path.includes("/records") ? "/v1/logs/{key}/records" : "/v1/logs"
  if (path.startsWith("/v1/groups/")) return "/v1/groups"
  if (path === "/v1/tail") return "/v1/tail"
  if (["/-/healthy", "/-/ready", "/metrics"].includes(path)) return path
  return "other"
}

/** HTTP's standard methods; any other a client sends is counted as `other` (label values stay bounded). */
const standardMethods: ReadonlySet<string> = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"])
export const methodOf = (method: string): string => (standardMethods.has(method) ? method : "other")

/** At most one log line per this many ms about requests for paths no route serves. */
export const unknownRouteLogIntervalMs = 10_000

/**
 * A request no route serves: a plain 404, not an error. It is counted under route `other`; it is logged
 * at debug level, at most once per `unknownRouteLogIntervalMs` (with how many went unlogged), and never in
 * the access log: scanners probing paths must not flood the log.
 */
const unknownRoute = (metrics: MetricsShape, method: string, url: string) =>
  Effect.gen(function*() {
    const unlogged = metrics.unknownRouteLog(yield* Clock.currentTimeMillis)
    if (unlogged !== undefined) {
      yield* Effect.logDebug("no route for the request", { method: methodOf(method), path: (url.split("?")[0] ?? "").slice(0, 200), unlogged })
    }
    return yield* HttpMiddleware.withLoggerDisabled(Effect.succeed(HttpServerResponse.text("404 page not found\n", { status: 404 })))
  })

/** Times every request, whatever route answers it. */
export const httpMiddleware = HttpRouter.middleware(
  (httpEffect) =>
    Effect.gen(function*() {
      const metrics = yield* Metrics
      const request = yield* HttpServerRequest.HttpServerRequest
      const started = performance.now()
      const route = routeOf(request.url)
      metrics.inFlight(route, 1)
      return yield* httpEffect.pipe(
        Effect.catchCause((cause) => {
          const error = Option.getOrUndefined(Cause.findErrorOption(cause)) as unknown
          return HttpServerError.isHttpServerError(error) && error.reason._tag === "RouteNotFound"
            ? unknownRoute(metrics, request.method, request.url)
            : Effect.failCause(cause)
        }),
        Effect.tap((response) =>
          Effect.sync(() => metrics.observeHttp(route, methodOf(request.method), response.status, (performance.now() - started) / 1000))
        ),
        Effect.ensuring(Effect.sync(() => metrics.inFlight(route, -1)))
      )
    }),
  { global: true }
)

export const routes = HttpRouter.add(
  "GET",
  "/metrics",
  Metrics.use((metrics) =>
    Effect.map(metrics.render, (text) => HttpServerResponse.text(text, { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" } })))
)

/** Counts and times every request the object store serves. */
export const countingStore = (store: ObjectStore.ObjectStoreShape, metrics: MetricsShape): ObjectStore.ObjectStoreShape => {
  const timed = <A, E extends { readonly _tag: string }, R>(operation: string, self: Effect.Effect<A, E, R>) =>
    Effect.suspend(() => {
      const started = performance.now()
      return self.pipe(
        Effect.onExit((exit) =>
          Effect.sync(() =>
            metrics.observeStore(
              operation,
              exit._tag === "Success" ? "ok" : (exit.cause as unknown as { reasons?: Array<{ error?: { _tag?: string } }> }).reasons?.[0]?.error?._tag ?? "interrupted",
              (performance.now() - started) / 1000
            )
          ))
      )
    })
  return {
    ...store,
    get: (k, r) => timed("get", store.get(k, r)),
    head: (k) => timed("head", store.head(k)),
    put: (k, b, o) => timed("put", store.put(k, b, o)),
    putIfAbsent: (k, b, o) => timed("put_if_absent", store.putIfAbsent(k, b, o)),
    putIfMatch: (k, b, e, o) => timed("put_if_match", store.putIfMatch(k, b, e, o)),
    listPage: (p, o) => timed("list", store.listPage(p, o)),
    delete: (k) => timed("delete", store.delete(k))
  }
}

export const layer = Layer.sync(Metrics, make)
