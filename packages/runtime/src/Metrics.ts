/**
 * The runtime's own metrics, served at `/metrics` in Prometheus's text format: HTTP requests by route
 * and status with a latency histogram, object-store requests by operation and outcome with latency,
 * and process gauges. Counters live in memory and are bounded by the fixed sets of routes, operations
 * and outcomes.
 */
import { Context, Effect, Layer } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
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

export interface MetricsShape {
  readonly observeHttp: (route: string, method: string, status: number, seconds: number) => void
  readonly observeStore: (operation: string, outcome: string, seconds: number) => void
  readonly render: () => string
}

export class Metrics extends Context.Service<Metrics, MetricsShape>()("@opendata/runtime/Metrics") {}

const labelText = (labels: Record<string, string>) =>
  "{" + Object.entries(labels).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(",") + "}"

export const make = (): MetricsShape => {
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
  const histogramLines = (name: string, help: string, map: typeof http) => {
    const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`]
    for (const { labels, histogram } of map.values()) {
      let cumulative = 0
      latencyBucketsS.forEach((b, i) => {
        cumulative += histogram.counts[i]!
        lines.push(`${name}_bucket${labelText({ ...labels, le: String(b) })} ${cumulative}`)
      })
      cumulative += histogram.counts[latencyBucketsS.length]!
      lines.push(`${name}_bucket${labelText({ ...labels, le: "+Inf" })} ${cumulative}`)
      lines.push(`${name}_sum${labelText(labels)} ${histogram.sum}`)
      lines.push(`${name}_count${labelText(labels)} ${histogram.count}`)
    }
    return lines
  }
  return {
    observeHttp: (route, method, status, seconds) => observe(http, { route, method, code: String(status) }, seconds),
    observeStore: (operation, outcome, seconds) => observe(store, { operation, outcome }, seconds),
    render: () => {
      const memory = process.memoryUsage()
      return [
        ...histogramLines("opendata_http_request_duration_seconds", "HTTP requests by route, method and status code.", http),
        ...histogramLines("opendata_object_store_request_duration_seconds", "Object-store requests by operation and outcome.", store),
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
    }
  }
}

/** A fixed, small set of route names (never the raw path: keys and label values would be unbounded). */
const routeOf = (url: string): string => {
  const path = url.split("?")[0] ?? ""
  if (path.startsWith("/api/v1/")) {
    const name = path.slice("/api/v1/".length).split("/")[0] ?? ""
    return `/api/v1/${["label", "status"].includes(name) ? `${name}/...` : name}`
  }
  if (path.startsWith("/v1/logs")) return path.endsWith("/tail") ? "/v1/logs/{key}/tail" : path.includes("/records") ? "/v1/logs/{key}/records" : "/v1/logs"
  if (path.startsWith("/v1/groups")) return "/v1/groups"
  if (path.startsWith("/v1/tail")) return "/v1/tail"
  if (["/-/healthy", "/-/ready", "/metrics"].includes(path)) return path
  return "other"
}

/** Times every request, whatever route answers it. */
export const httpMiddleware = HttpRouter.middleware(
  (httpEffect) =>
    Effect.gen(function*() {
      const metrics = yield* Metrics
      const request = yield* HttpServerRequest.HttpServerRequest
      const started = performance.now()
      return yield* httpEffect.pipe(
        Effect.tap((response) =>
          Effect.sync(() => metrics.observeHttp(routeOf(request.url), request.method, response.status, (performance.now() - started) / 1000))
        )
      )
    }),
  { global: true }
)

export const routes = HttpRouter.add(
  "GET",
  "/metrics",
  Metrics.useSync((metrics) =>
    HttpServerResponse.text(metrics.render(), { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" } }))
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
