/**
 * The runtime's own metrics, served at `/metrics` in Prometheus's text format from a `prom-client`
 * registry: HTTP requests by route, method and status with a latency histogram, requests in flight,
 * object-store requests by operation and outcome with latency, the products' work (TSDB samples, series
 * and queries; EventStore appends, records and tail subscribers), each product Db's WAL write latency,
 * write queue depth, memtables, compaction backlog and cache hits and misses (reported by collectors read
 * at each scrape), the compactor role's work, `opendata_build_info`, and prom-client's standard
 * `process_*` and `nodejs_*` metrics (CPU, memory, file descriptors, event-loop lag, GC, heap).
 *
 * Every label value comes from a fixed set (routes, methods, operations, outcomes, Dbs, query types): no
 * request can add a series.
 */
import * as fs from "node:fs"
import { Cause, Clock, Context, Effect, Layer, Option, type Scope, Stream } from "effect"
import { HttpMiddleware, HttpRouter, HttpServerError, HttpServerRequest, HttpServerResponse } from "effect/http"
import type { Db } from "@opendata/core"
import { ObjectStore } from "@opendata/core"
import { EventStore } from "@opendata/eventstore"
import { Tsdb } from "@opendata/tsdb"
import * as Prom from "prom-client"

const latencyBucketsS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** The runtime package's version, read from its package.json (one directory above `src/` and `dist/`). */
export const version: string = (() => {
  try {
    return String(JSON.parse(fs.readFileSync(new URL("../package.json", import.meta.url), "utf8")).version)
  } catch {
    return "unknown"
  }
})()

/** One sample of a metric family that a collector reports when `/metrics` is read. */
export interface Sample {
  readonly name: string
  readonly type: "counter" | "gauge" | "histogram"
  readonly help: string
  readonly labels: Record<string, string>
  readonly value: number
}

/** What `opendata_tsdb_queries_total` counts, by `type`. */
export type TsdbQueryType = "instant" | "range" | "metadata"

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
  readonly register: (collector: Effect.Effect<ReadonlyArray<Sample>>) => Effect.Effect<void, never, Scope.Scope>
  /** The exposition, in Prometheus's text format (`contentType`). */
  readonly render: Effect.Effect<string>
  readonly contentType: string
  /** Samples the TSDB stored (`opendata_tsdb_samples_ingested_total`). */
  readonly tsdbSamplesIngested: (samples: number) => void
  /** Series the TSDB created (`opendata_tsdb_series_created_total`). */
  readonly tsdbSeriesCreated: (series: number) => void
  /** One TSDB query of a type (`opendata_tsdb_queries_total{type}`). */
  readonly tsdbQueries: (type: TsdbQueryType) => void
  /** EventStore appends (batches) done (`opendata_eventstore_appends_total`). */
  readonly eventStoreAppends: (appends: number) => void
  /** Records those appends held (`opendata_eventstore_records_appended_total`). */
  readonly eventStoreRecordsAppended: (records: number) => void
  /** EventStore tail subscribers (`delta` +1 when one starts following, -1 when it stops). */
  readonly eventStoreTailSubscribers: (delta: number) => void
  /**
   * Whether a product's counts come from its service (`measureTsdb`, `measureEventStore`). Until then,
   * `httpMiddleware` derives what it can from the requests it sees; after, it leaves them to the service,
   * so that nothing is counted twice.
   */
  readonly measured: { tsdb: boolean; eventStore: boolean }
  /** The product counters' values since the process started (for the status page). */
  readonly totals: () => Totals
}

export interface Totals {
  readonly tsdbSamplesIngested: number
  readonly tsdbSeriesCreated: number
  readonly eventStoreAppends: number
  readonly eventStoreRecordsAppended: number
}

export class Metrics extends Context.Service<Metrics, MetricsShape>()("@opendata/runtime/Metrics") {}

/** A metric family as prom-client's registry reads it (what its own metric classes return from `get`). */
interface Family {
  readonly name: string
  readonly help: string
  readonly type: Sample["type"]
  readonly aggregator: "sum"
  readonly values: Array<{ readonly metricName: string; readonly labels: Record<string, string>; readonly value: number }>
}

/**
 * The collectors' samples as a registry of their own for one scrape: one family per name (a histogram's
 * `_bucket`, `_sum` and `_count` series under its base name), registered as prom-client reads metrics.
 */
const collectedRegistry = (samples: ReadonlyArray<Sample>): Prom.Registry => {
  const families = new Map<string, Family>()
  for (const sample of samples) {
    const name = sample.type === "histogram" ? sample.name.replace(/_(bucket|sum|count)$/, "") : sample.name
    let family = families.get(name)
    if (family === undefined) {
      family = { name, help: sample.help, type: sample.type, aggregator: "sum", values: [] }
      families.set(name, family)
    }
    family.values.push({ metricName: sample.name, labels: sample.labels, value: sample.value })
  }
  const registry = new Prom.Registry()
  for (const family of families.values()) {
    registry.registerMetric({ name: family.name, get: () => family } as unknown as Prom.Metric)
  }
  return registry
}

/** Where the HTTP API's query routes count in `opendata_tsdb_queries_total`. */
const queryTypes: ReadonlyMap<string, TsdbQueryType> = new Map([
  ["/api/v1/query", "instant"],
  ["/api/v1/query_range", "range"],
  ["/api/v1/series", "metadata"],
  ["/api/v1/labels", "metadata"],
  ["/api/v1/label/...", "metadata"],
  ["/api/v1/metadata", "metadata"]
])

export const make = (): MetricsShape => {
  const collectors = new Set<Effect.Effect<ReadonlyArray<Sample>>>()
  let unknownRouteLoggedMs = Number.NEGATIVE_INFINITY
  let unknownRouteUnlogged = 0
  // Three registries, merged at each scrape in this order: the runtime's own, the collectors', prom-client's defaults.
  const own = new Prom.Registry()
  const defaults = new Prom.Registry()
  Prom.collectDefaultMetrics({ register: defaults })
  // Gauges named like counters, which `promtool check metrics` refuses: each is the sum of the gauge of the
  // same name without `_total`, by `type` (`sum(nodejs_active_handles)`), which stays.
  for (const name of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]) defaults.removeSingleMetric(name)
  const registers = [own]
  const http = new Prom.Histogram({
    name: "opendata_http_request_duration_seconds",
    help: "HTTP requests by route, method and status code.",
    labelNames: ["route", "method", "code"],
    buckets: latencyBucketsS,
    registers
  })
  const inFlight = new Prom.Gauge({
    name: "opendata_http_requests_in_flight",
    help: "HTTP requests being served, by route (an open WebSocket tail is one).",
    labelNames: ["route"],
    registers
  })
  const store = new Prom.Histogram({
    name: "opendata_object_store_request_duration_seconds",
    help: "Object-store requests by operation and outcome.",
    labelNames: ["operation", "outcome"],
    buckets: latencyBucketsS,
    registers
  })
  const samplesIngested = new Prom.Counter({ name: "opendata_tsdb_samples_ingested_total", help: "Samples the TSDB stored.", registers })
  const seriesCreated = new Prom.Counter({ name: "opendata_tsdb_series_created_total", help: "Series the TSDB created.", registers })
  const queries = new Prom.Counter({
    name: "opendata_tsdb_queries_total",
    help: "TSDB queries by type: instant, range, metadata (series, label names and values, metric metadata).",
    labelNames: ["type"],
    registers
  })
  for (const type of ["instant", "range", "metadata"] as const) queries.inc({ type }, 0)
  const appends = new Prom.Counter({ name: "opendata_eventstore_appends_total", help: "EventStore appends (batches).", registers })
  const recordsAppended = new Prom.Counter({ name: "opendata_eventstore_records_appended_total", help: "Records the EventStore's appends held.", registers })
  const tailSubscribers = new Prom.Gauge({ name: "opendata_eventstore_tail_subscribers", help: "EventStore tails being followed (one log or a key prefix).", registers })
  new Prom.Gauge({
    name: "opendata_build_info",
    help: "The runtime's version and Node's; always 1.",
    labelNames: ["version", "node_version"],
    registers
  }).set({ version, node_version: process.versions.node }, 1)
  /** Adds `n` to a counter; nothing if it is not a positive number (prom-client throws on a negative one). */
  const totals = { tsdbSamplesIngested: 0, tsdbSeriesCreated: 0, eventStoreAppends: 0, eventStoreRecordsAppended: 0 }
  const add = (counter: Prom.Counter, n: number, total: keyof typeof totals) => {
    if (n > 0 && Number.isFinite(n)) {
      counter.inc(n)
      totals[total] += n
    }
  }
  const seconds = (s: number) => (Number.isFinite(s) && s >= 0 ? s : 0)
  return {
    observeHttp: (route, method, status, s) => http.observe({ route, method, code: String(status) }, seconds(s)),
    observeStore: (operation, outcome, s) => store.observe({ operation, outcome }, seconds(s)),
    inFlight: (route, delta) => inFlight.inc({ route }, delta),
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
      const scrape = Prom.Registry.merge([own, collectedRegistry(collected), defaults])
      return yield* Effect.promise(() => scrape.metrics())
    }),
    contentType: Prom.Registry.PROMETHEUS_CONTENT_TYPE,
    tsdbSamplesIngested: (n) => add(samplesIngested, n, "tsdbSamplesIngested"),
    tsdbSeriesCreated: (n) => add(seriesCreated, n, "tsdbSeriesCreated"),
    tsdbQueries: (type) => queries.inc({ type }),
    eventStoreAppends: (n) => add(appends, n, "eventStoreAppends"),
    eventStoreRecordsAppended: (n) => add(recordsAppended, n, "eventStoreRecordsAppended"),
    eventStoreTailSubscribers: (delta) => tailSubscribers.inc(delta),
    measured: { tsdb: false, eventStore: false },
    totals: () => ({ ...totals })
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
  const sample = (type: "counter" | "gauge", name: string, help: string, value: number, extra: Record<string, string> = {}): Sample => ({
    name,
    type,
    help,
    labels: { ...labels, ...extra },
    value
  })
  // Hits and misses as counters (a hit ratio is `rate(hits) / (rate(hits) + rate(misses))` over any window).
  const caches = (["block", "meta"] as const).flatMap((cache) => {
    const c = cache === "block" ? stats.blockCache : stats.metaCache
    return [
      sample("counter", "opendata_db_cache_hits_total", "Cache lookups that found their entry.", c.hits, { cache }),
      sample("counter", "opendata_db_cache_misses_total", "Cache lookups that did not.", c.misses, { cache }),
      sample("gauge", "opendata_db_cache_bytes", "Bytes held by the cache.", c.bytes, { cache }),
      sample("gauge", "opendata_db_cache_capacity_bytes", "Bytes the cache may hold (the block cache: OPENDATA_BLOCK_CACHE_MB).", c.capacityBytes, { cache })
    ]
  })
  return [
    ...histogramSamples("opendata_db_wal_write_duration_seconds", "WAL object writes, from the first attempt to durable.", labels, stats.walWriteMs.boundsMs.map((b) => b / 1000), {
      counts: stats.walWriteMs.counts,
      sum: stats.walWriteMs.sumMs / 1000,
      count: stats.walWriteMs.count
    }),
    sample("counter", "opendata_db_wal_objects_written_total", "WAL objects written.", stats.walObjectsWritten),
    sample("counter", "opendata_db_wal_bytes_written_total", "WAL bytes written.", stats.walBytesWritten),
    sample("gauge", "opendata_db_write_queue_depth", "Writes waiting in the writer's mailbox.", stats.writeQueueDepth),
    sample("gauge", "opendata_db_memtable_bytes", "Bytes in memtables not yet flushed to tables.", stats.memtableBytes),
    sample("gauge", "opendata_db_frozen_memtables", "Memtables waiting to be flushed.", stats.frozenMemtables),
    sample("gauge", "opendata_db_tables", "Tables the manifest references.", stats.tables),
    sample("gauge", "opendata_db_table_bytes", "Bytes of the tables the manifest references.", stats.tableBytes),
    ...compactionSamples(labels, stats),
    sample("gauge", "opendata_db_durable_seq", "Highest durable sequence number.", stats.durableSeq),
    sample("gauge", "opendata_db_manifest_version", "Manifest version this process reads.", stats.manifestVersion),
    ...caches
  ]
}

/** The TSDB's own caches (`cache="postings"`: the postings of recent buckets), sized in bytes as the heap holds them. */
export const tsdbCacheSamples = (stats: Tsdb.TsdbCacheStats): Array<Sample> =>
  (["postings"] as const).flatMap((cache) => {
    const c = stats[cache]
    const labels = { cache }
    return [
      { name: "opendata_tsdb_cache_hits_total", type: "counter", help: "TSDB cache lookups that found their entry.", labels, value: c.hits },
      { name: "opendata_tsdb_cache_misses_total", type: "counter", help: "TSDB cache lookups that did not (the entry was read from the Db).", labels, value: c.misses },
      { name: "opendata_tsdb_cache_entries", type: "gauge", help: "Entries the TSDB cache holds (postings: time buckets).", labels, value: c.entries },
      { name: "opendata_tsdb_cache_bytes", type: "gauge", help: "Bytes the TSDB cache holds, as the JavaScript heap holds them (an estimate).", labels, value: c.bytes },
      { name: "opendata_tsdb_cache_capacity_bytes", type: "gauge", help: "Bytes the TSDB cache may hold before it drops its least recently used entries.", labels, value: c.capacityBytes }
    ] satisfies Array<Sample>
  })

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
  if (path === "/v1/append") return "/v1/append"
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

/** The tail routes, whose WebSocket upgrades are tail subscribers until `measureEventStore` counts them. */
const tailRoutes: ReadonlySet<string> = new Set(["/v1/logs/{key}/tail", "/v1/tail"])

/**
 * The products' counts a response shows: TSDB queries by type (a 404 or 405 reached no query handler);
 * until the products' services are measured, samples a remote write 2.0 stored (its
 * `X-Prometheus-Remote-Write-Samples-Written` header: 1.0 answers carry none) and EventStore appends
 * (not the records they held: only the service knows).
 */
const countProducts = (metrics: MetricsShape, route: string, method: string, response: HttpServerResponse.HttpServerResponse) => {
  const query = queryTypes.get(route)
  if (query !== undefined && response.status !== 404 && response.status !== 405) metrics.tsdbQueries(query)
  if (!metrics.measured.tsdb && route === "/api/v1/write") {
    const written = Number(response.headers["x-prometheus-remote-write-samples-written"] ?? "0")
    if (Number.isSafeInteger(written)) metrics.tsdbSamplesIngested(written)
  }
  if (!metrics.measured.eventStore && route === "/v1/logs/{key}/records" && method === "POST" && response.status >= 200 && response.status < 300) {
    metrics.eventStoreAppends(1)
  }
}

/** Times every request, whatever route answers it, and counts the products' work it shows. */
export const httpMiddleware = HttpRouter.middleware(
  (httpEffect) =>
    Effect.gen(function*() {
      const metrics = yield* Metrics
      const request = yield* HttpServerRequest.HttpServerRequest
      const started = performance.now()
      const route = routeOf(request.url)
      const tail = !metrics.measured.eventStore && tailRoutes.has(route) && request.headers["upgrade"]?.toLowerCase() === "websocket"
      metrics.inFlight(route, 1)
      if (tail) metrics.eventStoreTailSubscribers(1)
      return yield* httpEffect.pipe(
        Effect.catchCause((cause) => {
          const error = Option.getOrUndefined(Cause.findErrorOption(cause)) as unknown
          return HttpServerError.isHttpServerError(error) && error.reason._tag === "RouteNotFound"
            ? unknownRoute(metrics, request.method, request.url)
            : Effect.failCause(cause)
        }),
        Effect.tap((response) =>
          Effect.sync(() => {
            metrics.observeHttp(route, methodOf(request.method), response.status, (performance.now() - started) / 1000)
            countProducts(metrics, route, request.method, response)
          })
        ),
        Effect.ensuring(Effect.sync(() => {
          metrics.inFlight(route, -1)
          if (tail) metrics.eventStoreTailSubscribers(-1)
        }))
      )
    }),
  { global: true }
)

/**
 * A route that takes no query parameters: any given is a 400 before the handler runs, as on every other
 * route of the server (a typo is an error, never silently ignored).
 */
export const noParameters = <E, R>(handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const q = request.url.indexOf("?")
    const first = q === -1 ? undefined : [...new URLSearchParams(request.url.slice(q + 1)).keys()][0]
    return first === undefined
      ? handler
      : Effect.succeed(HttpServerResponse.text(`unknown parameter ${JSON.stringify(first)}: this endpoint takes none\n`, { status: 400 }))
  })

export const routes = HttpRouter.add(
  "GET",
  "/metrics",
  noParameters(Metrics.use((metrics) => Effect.map(metrics.render, (text) => HttpServerResponse.text(text, { headers: { "content-type": metrics.contentType } }))))
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

/**
 * Counts the samples every TSDB write stored, whatever protocol brought them (remote write 1.0 and 2.0),
 * and the series it created when its outcome reports them (`seriesCreated`).
 */
export const countingTsdb = (tsdb: Tsdb.TsdbShape, metrics: MetricsShape): Tsdb.TsdbShape => ({
  ...tsdb,
  write: (input) =>
    Effect.tap(tsdb.write(input), (outcome) =>
      Effect.sync(() => {
        metrics.tsdbSamplesIngested(outcome.samplesWritten)
        metrics.tsdbSeriesCreated((outcome as { readonly seriesCreated?: number | undefined }).seriesCreated ?? 0)
      }))
})

/** Counts the EventStore's appends and the records they held, and its tails while they are followed. */
export const countingEventStore = (store: EventStore.EventStoreShape, metrics: MetricsShape): EventStore.EventStoreShape => {
  /** Counts a tail's subscriber until its scope closes (a cursor's, or a stream's). */
  const subscriber = Effect.acquireRelease(
    Effect.sync(() => metrics.eventStoreTailSubscribers(1)),
    () => Effect.sync(() => metrics.eventStoreTailSubscribers(-1))
  )
  const followed = <A, E, R>(stream: Stream.Stream<A, E, R>): Stream.Stream<A, E, R> => Stream.unwrap(Effect.as(subscriber, stream))
  return {
    ...store,
    append: (key, records, options) =>
      Effect.tap(store.append(key, records, options), () =>
        Effect.sync(() => {
          metrics.eventStoreAppends(1)
          metrics.eventStoreRecordsAppended(records.length)
        })),
    transact: (appends, commit) =>
      Effect.tap(store.transact(appends, commit), () =>
        Effect.sync(() => {
          if (appends.length === 0) return
          metrics.eventStoreAppends(appends.length)
          metrics.eventStoreRecordsAppended(appends.reduce((n, a) => n + a.records.length, 0))
        })),
    appendQueued: (key, records, options) =>
      Effect.map(store.appendQueued(key, records, options), (queued) => ({
        result: queued.result,
        durable: Effect.tap(queued.durable, () =>
          Effect.sync(() => {
            metrics.eventStoreAppends(1)
            metrics.eventStoreRecordsAppended(records.length)
          }))
      })),
    ...(store.appendNow === undefined ? {} : {
      appendNow: (key: string, records: ReadonlyArray<EventStore.RecordInput>, options?: EventStore.AppendOptions) => {
        const decided = store.appendNow!(key, records, options)
        if (decided === undefined || !("result" in decided)) return decided
        // Counted once durable, whichever of the two ways the caller waits.
        let counted = false
        const count = () => {
          if (counted) return
          counted = true
          metrics.eventStoreAppends(1)
          metrics.eventStoreRecordsAppended(records.length)
        }
        return {
          result: decided.result,
          // Made when asked for (as the store's own): an append session takes `whenDurable` alone.
          get durable() {
            return Effect.tap(decided.durable, () => Effect.sync(count))
          },
          whenDurable: (callback: (failure: EventStore.Unavailable | undefined) => void) =>
            decided.whenDurable((failure) => {
              if (failure === undefined) count()
              callback(failure)
            })
        }
      }
    }),
    tail: (key, start) => followed(store.tail(key, start)),
    tailPrefix: (prefix) => followed(store.tailPrefix(prefix)),
    tailCursor: (key, start) => Effect.tap(store.tailCursor(key, start), () => subscriber),
    tailPrefixCursor: (prefix) => Effect.tap(store.tailPrefixCursor(prefix), () => subscriber)
  }
}

/** The TSDB a layer builds, counted for `/metrics` (`countingTsdb`); the HTTP middleware then leaves its samples to it. */
export const measureTsdb = <E, R>(tsdb: Layer.Layer<Tsdb.Tsdb, E, R>): Layer.Layer<Tsdb.Tsdb, E, R | Metrics> =>
  Layer.effect(
    Tsdb.Tsdb,
    Effect.gen(function*() {
      const metrics = yield* Metrics
      metrics.measured.tsdb = true
      const tsdb = yield* Tsdb.Tsdb
      yield* metrics.register(Effect.map(tsdb.cacheStats, tsdbCacheSamples))
      return countingTsdb(tsdb, metrics)
    })
  ).pipe(Layer.provide(tsdb))

/** The EventStore a layer builds, counted for `/metrics` (`countingEventStore`); the HTTP middleware then leaves its counts to it. */
export const measureEventStore = <E, R>(
  eventStore: Layer.Layer<EventStore.EventStore, E, R>
): Layer.Layer<EventStore.EventStore, E, R | Metrics> =>
  Layer.effect(
    EventStore.EventStore,
    Effect.gen(function*() {
      const metrics = yield* Metrics
      metrics.measured.eventStore = true
      return countingEventStore(yield* EventStore.EventStore, metrics)
    })
  ).pipe(Layer.provide(eventStore))

export const layer = Layer.sync(Metrics, make)
