/**
 * The Prometheus HTTP API of the TSDB: remote write in (`POST /api/v1/write`, 1.0 and 2.0), and the
 * series, labels, label values, metadata, buildinfo and exemplars endpoints, in Prometheus's JSON
 * envelope (`{"status":"success","data":...}` / `{"status":"error","errorType":...,"error":...}`).
 * GET and POST (form-encoded) where Prometheus has both.
 */
import { ByteSize, Context, Effect, Layer } from "effect"
import { HttpIncomingMessage, HttpMiddleware, HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import * as Limits from "./limits.ts"
import type { Matcher } from "./internal/labels.ts"
import { decodeRemoteWrite, RemoteWriteDecodeError, RemoteWriteLimitError } from "./internal/remoteWriteAdapter.ts"
import { parseSelector } from "./internal/selector.ts"
import { Tsdb, TsdbError } from "./Tsdb.ts"
import { instantQuery, QueryError, rangeQuery } from "./promql/engine.ts"
import type { Value } from "./promql/types.ts"
import { formatExpr, parse, parseDuration } from "./promql/parser.ts"
import { ParseError } from "./promql/ast.ts"

/** The version this server reports in buildinfo. */
export const version = "0.1.0"

type ErrorType = "bad_data" | "execution" | "internal" | "unavailable" | "not_found" | "timeout" | "canceled"

const success = (data: unknown) => HttpServerResponse.jsonUnsafe({ status: "success", data })
const failure = (status: number, errorType: ErrorType, error: string) =>
  HttpServerResponse.jsonUnsafe({ status: "error", errorType, error }, { status })

class BadRequest extends Error {}

/** Prometheus time parameters: a float of Unix seconds or RFC 3339; in ms. */
const parseTime = (value: string | undefined, fallback: number, name: string): number => {
  if (value === undefined || value === "") return fallback
  if (/^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(value)) {
    const ms = Math.round(Number(value) * 1000)
    if (Number.isFinite(ms)) return ms
  }
  const parsed = Date.parse(value)
  if (!Number.isNaN(parsed) && /\d{4}-\d{2}-\d{2}T/.test(value)) return parsed
  throw new BadRequest(`invalid parameter "${name}": cannot parse "${value}" to a valid timestamp`)
}

const minTime = 0
const maxTime = Number.MAX_SAFE_INTEGER

/**
 * The request body, read with a limit that holds for chunked bodies too (no Content-Length): reading
 * stops, and the effect fails, once `maxBytes` have arrived.
 */
const boundedBody = (request: HttpServerRequest.HttpServerRequest, maxBytes: number) =>
  request.arrayBuffer.pipe(
    Effect.provideService(HttpIncomingMessage.MaxBodySize, ByteSize.bytes(maxBytes)),
    Effect.map((buffer) => ({ _tag: "Body" as const, bytes: new Uint8Array(buffer) })),
    Effect.catch((e) =>
      Effect.succeed(
        isMaxBytes(e)
          ? { _tag: "TooLarge" as const, message: `request body over the limit of ${maxBytes} bytes` }
          : { _tag: "Unreadable" as const, message: `could not read the request body: ${String((e as { cause?: unknown }).cause ?? e)}` }
      ))
  )

const isMaxBytes = (e: unknown): boolean => {
  for (let cur: unknown = e, depth = 0; cur !== undefined && cur !== null && depth < 5; depth++) {
    if ((cur as { _tag?: unknown })._tag === "MaxBytesError") return true
    cur = (cur as { cause?: unknown }).cause
  }
  return false
}

/** Parameters a route may repeat (selectors); any other given twice is refused rather than guessed at. */
const repeatable: ReadonlySet<string> = new Set(["match[]"])

/**
 * A request's parameters: the query string, merged with a form-encoded body for POST (as Prometheus does),
 * checked against the route's known names before its handler runs. Prometheus ignores what it does not
 * know; here an unknown or repeated parameter is a 400, so a typo never silently changes an answer.
 */
const readParams = (known: ReadonlySet<string>) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const q = request.url.indexOf("?")
    const all = new URLSearchParams(q === -1 ? "" : request.url.slice(q + 1))
    if (request.method === "POST" && (request.headers["content-type"] ?? "").includes("application/x-www-form-urlencoded")) {
      const body = yield* boundedBody(request, Limits.formBodyBytesMax)
      if (body._tag !== "Body") return yield* Effect.die(new BadRequest(body.message))
      for (const [k, v] of new URLSearchParams(new TextDecoder().decode(body.bytes))) all.append(k, v)
    }
    const seen = new Set<string>()
    for (const name of all.keys()) {
      if (!known.has(name)) return yield* Effect.die(new BadRequest(`unknown parameter "${name}": this endpoint takes ${[...known].join(", ") || "none"}`))
      if (seen.has(name) && !repeatable.has(name)) return yield* Effect.die(new BadRequest(`invalid parameter "${name}": given more than once`))
      seen.add(name)
    }
    return all
  })

/** The request's parameters, checked by its route (see `route`). */
class Params extends Context.Service<Params, URLSearchParams>()("@opendata/tsdb/Http/Params") {}

const selectorsOf = (p: URLSearchParams): Array<Array<Matcher>> =>
  p.getAll("match[]").map((m) => {
    try {
      return parseSelector(m)
    } catch (e) {
      throw new BadRequest(`invalid parameter "match[]": ${(e as Error).message}`)
    }
  })

const limitOf = (p: URLSearchParams): number | undefined => {
  const v = p.get("limit")
  if (v === null || v === "") return undefined
  const n = Number(v)
  if (!Number.isSafeInteger(n) || n < 0) throw new BadRequest(`invalid parameter "limit": must be a non-negative integer`)
  return n
}

const range = (p: URLSearchParams) => {
  const start = parseTime(p.get("start") ?? undefined, minTime, "start")
  const end = parseTime(p.get("end") ?? undefined, maxTime, "end")
  if (end < start) throw new BadRequest(`invalid parameter "end": end timestamp must not be before start time`)
  return { start, end }
}

/** Runs a handler, answering bad input, TSDB failures and defects in the envelope. */
const answer = <R>(handler: Effect.Effect<HttpServerResponse.HttpServerResponse, TsdbError, R>) =>
  handler.pipe(
    Effect.catch((e) =>
      Effect.succeed(
        e.kind === "unavailable"
          ? failure(503, "unavailable", e.message)
          : e.kind === "limit"
          ? failure(422, "execution", e.message)
          : failure(400, "bad_data", e.message)
      )),
    Effect.catchDefect((d) =>
      Effect.succeed(
        d instanceof BadRequest ? failure(400, "bad_data", d.message) : failure(500, "internal", d instanceof Error ? d.message : String(d))
      ))
  )

const seriesHandler = answer(Effect.gen(function*() {
  const tsdb = yield* Tsdb
  const p = yield* Params
  const selectors = selectorsOf(p)
  if (selectors.length === 0) throw new BadRequest("no match[] parameter provided")
  const { start, end } = range(p)
  const series = yield* tsdb.series(selectors, start, end, limitOf(p))
  return success(series.map((labels) => Object.fromEntries(labels)))
}))

const labelsHandler = answer(Effect.gen(function*() {
  const tsdb = yield* Tsdb
  const p = yield* Params
  const { start, end } = range(p)
  return success(yield* tsdb.labelNames(selectorsOf(p), start, end, limitOf(p)))
}))

const labelValuesHandler = answer(Effect.gen(function*() {
  const tsdb = yield* Tsdb
  const p = yield* Params
  const name = (yield* HttpRouter.params)["name"] ?? ""
  if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(name)) throw new BadRequest(`invalid label name: "${name}"`)
  const { start, end } = range(p)
  return success(yield* tsdb.labelValues(name, selectorsOf(p), start, end, limitOf(p)))
}))

const metadataHandler = answer(Effect.gen(function*() {
  const tsdb = yield* Tsdb
  const p = yield* Params
  const metric = p.get("metric") ?? undefined
  const all = yield* tsdb.metadata(metric === "" ? undefined : metric, limitOf(p))
  const data: Record<string, Array<{ type: string; help: string; unit: string }>> = {}
  for (const m of all) (data[m.metric] ??= []).push({ type: m.type, help: m.help, unit: m.unit })
  return success(data)
}))

const buildinfoHandler = Effect.succeed(success({
  version,
  revision: "",
  branch: "",
  buildUser: "",
  buildDate: "",
  goVersion: `node ${process.versions.node}`
}))

const exemplarsHandler = answer(Effect.gen(function*() {
  const p = yield* Params
  range(p)
  return success([])
}))

/** A float as Prometheus renders sample values (Go's FormatFloat 'f', -1). */
export const formatFloat = (v: number): string => {
  if (Number.isNaN(v)) return "NaN"
  if (v === Number.POSITIVE_INFINITY) return "+Inf"
  if (v === Number.NEGATIVE_INFINITY) return "-Inf"
  const s = String(v)
  if (!s.includes("e")) return s
  const [mantissa, exp] = s.split("e") as [string, string]
  const e = Number(exp)
  const negative = mantissa.startsWith("-")
  const digits = mantissa.replace("-", "").replace(".", "")
  const point = mantissa.replace("-", "").indexOf(".")
  const intLen = (point === -1 ? mantissa.replace("-", "").length : point) + e
  const out = intLen <= 0 ? "0." + "0".repeat(-intLen) + digits : intLen >= digits.length ? digits + "0".repeat(intLen - digits.length) : digits.slice(0, intLen) + "." + digits.slice(intLen)
  return (negative ? "-" : "") + out
}

const metric = (labels: ReadonlyArray<readonly [string, string]>) => Object.fromEntries(labels)

const resultJson = (value: Value) => {
  switch (value.type) {
    case "scalar":
      return { resultType: "scalar", result: [value.t / 1000, formatFloat(value.v)] }
    case "string":
      return { resultType: "string", result: [value.t / 1000, value.v] }
    case "vector":
      return { resultType: "vector", result: value.samples.map((s) => ({ metric: metric(s.labels), value: [s.t / 1000, formatFloat(s.v)] })) }
    case "matrix":
      return {
        resultType: "matrix",
        result: value.series.map((s) => ({ metric: metric(s.labels), values: s.samples.map((p) => [p.t / 1000, formatFloat(p.v)]) }))
      }
  }
}

/** `step` and durations: float seconds or a Prometheus duration. */
const parseStep = (value: string | null, name: string): number => {
  if (value === null || value === "") throw new BadRequest(`invalid parameter "${name}": missing`)
  if (/^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(value)) return Math.round(Number(value) * 1000)
  try {
    return parseDuration(value)
  } catch {
    throw new BadRequest(`invalid parameter "${name}": cannot parse "${value}" to a valid duration`)
  }
}

const queryFailure = (e: QueryError) =>
  e.kind === "bad_data"
    ? failure(400, "bad_data", e.message)
    : e.kind === "timeout"
    ? failure(503, "timeout", e.message)
    : failure(422, "execution", e.message)

/**
 * The server's bounds on one query, as Prometheus's `--query.timeout` and `--query.max-samples`: the time
 * a query may run (a request's `timeout` parameter may shorten it, never lengthen it) and the samples it
 * may select. A server provides its configured values; the default is Prometheus's.
 */
export const QueryLimits = Context.Reference<{ readonly timeoutMs: number; readonly samplesMax: number }>("@opendata/tsdb/Http/QueryLimits", {
  defaultValue: () => ({ timeoutMs: Limits.queryTimeoutMsDefault, samplesMax: Limits.querySamplesMax })
})

/** Runs a query with the `timeout` parameter, capped by the server's query timeout, as its time limit. */
const withTimeout = (p: URLSearchParams, limits: { readonly timeoutMs: number }, self: Effect.Effect<Value, QueryError>) => {
  const timeout = p.get("timeout")
  const ms = timeout === null || timeout === "" ? limits.timeoutMs : Math.min(limits.timeoutMs, parseStep(timeout, "timeout"))
  return self.pipe(
    Effect.timeoutOrElse({ duration: `${ms} millis`, orElse: () => Effect.fail(new QueryError("timeout", "query timed out in query execution")) })
  )
}

const queryHandler = answer(Effect.gen(function*() {
  const tsdb = yield* Tsdb
  const p = yield* Params
  const query = p.get("query")
  if (query === null || query === "") throw new BadRequest(`invalid parameter "query": missing`)
  const clock = yield* Effect.clockWith((c) => Effect.succeed(c.currentTimeMillisUnsafe()))
  const time = parseTime(p.get("time") ?? undefined, clock, "time")
  const limits = yield* QueryLimits
  const result = yield* Effect.exit(withTimeout(p, limits, instantQuery(tsdb, query, time, { samplesMax: limits.samplesMax })))
  if (result._tag === "Failure") {
    const e = (result.cause as unknown as { reasons?: Array<{ error?: unknown }> }).reasons?.[0]?.error
    if (e instanceof QueryError) return queryFailure(e)
    throw e
  }
  const limit = limitOf(p)
  const value = result.value
  const limited = limit !== undefined && limit > 0 && value.type === "vector" ? { ...value, samples: value.samples.slice(0, limit) } : value
  return success(resultJson(limited))
}))

const queryRangeHandler = answer(Effect.gen(function*() {
  const tsdb = yield* Tsdb
  const p = yield* Params
  const query = p.get("query")
  if (query === null || query === "") throw new BadRequest(`invalid parameter "query": missing`)
  const start = parseTime(p.get("start") ?? undefined, Number.NaN, "start")
  const end = parseTime(p.get("end") ?? undefined, Number.NaN, "end")
  if (Number.isNaN(start)) throw new BadRequest(`invalid parameter "start": missing`)
  if (Number.isNaN(end)) throw new BadRequest(`invalid parameter "end": missing`)
  if (end < start) throw new BadRequest(`invalid parameter "end": end timestamp must not be before start time`)
  const step = parseStep(p.get("step"), "step")
  if (step <= 0) throw new BadRequest(`invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer`)
  if ((end - start) / step > 11_000) throw new BadRequest("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)")
  const limits = yield* QueryLimits
  const result = yield* Effect.exit(withTimeout(p, limits, rangeQuery(tsdb, query, start, end, step, { samplesMax: limits.samplesMax })))
  if (result._tag === "Failure") {
    const e = (result.cause as unknown as { reasons?: Array<{ error?: unknown }> }).reasons?.[0]?.error
    if (e instanceof QueryError) return queryFailure(e)
    throw e
  }
  return success(resultJson(result.value))
}))

const formatQueryHandler = answer(Effect.gen(function*() {
  const p = yield* Params
  try {
    return success(formatExpr(parse(p.get("query") ?? "")))
  } catch (e) {
    if (e instanceof ParseError) return failure(400, "bad_data", e.message)
    throw e
  }
}))

const parseQueryHandler = answer(Effect.gen(function*() {
  const p = yield* Params
  try {
    return success(parse(p.get("query") ?? ""))
  } catch (e) {
    if (e instanceof ParseError) return failure(400, "bad_data", e.message)
    throw e
  }
}))

/** Remote write 1.0 and 2.0. 204 once every stored sample is durable; 400 for what could not be stored. */
const writeHandler = Effect.gen(function*() {
  const tsdb = yield* Tsdb
  const request = yield* HttpServerRequest.HttpServerRequest
  const length = Number(request.headers["content-length"] ?? "0")
  if (length > Limits.writeBodyBytesMax) return failure(413, "bad_data", `request body of ${length} bytes is over the limit of ${Limits.writeBodyBytesMax}`)
  const contentType = request.headers["content-type"] ?? "application/x-protobuf"
  const [mediaType = "", ...parameters] = contentType.split(";").map((part) => part.trim())
  if (mediaType.toLowerCase() !== "application/x-protobuf") return failure(415, "bad_data", `unsupported content type ${contentType}`)
  // As Prometheus: no `proto` is 1.0; a message type it does not know is a 415, never read as another.
  const proto = parameters.find((p) => p.toLowerCase().startsWith("proto="))?.slice("proto=".length).replace(/^"|"$/g, "") ?? "prometheus.WriteRequest"
  if (proto !== "prometheus.WriteRequest" && proto !== "io.prometheus.write.v2.Request") {
    return failure(415, "bad_data", `unknown remote write proto message ${proto}: use prometheus.WriteRequest or io.prometheus.write.v2.Request`)
  }
  const v2 = proto === "io.prometheus.write.v2.Request"
  const encoding = request.headers["content-encoding"] ?? "snappy"
  if (encoding !== "snappy") return failure(415, "bad_data", `unsupported content encoding ${encoding}`)
  const read = yield* boundedBody(request, Limits.writeBodyBytesMax)
  if (read._tag === "TooLarge") return failure(413, "bad_data", read.message)
  if (read._tag === "Unreadable") return failure(400, "bad_data", read.message)
  const body = read.bytes
  let decoded: ReturnType<typeof decodeRemoteWrite>
  try {
    decoded = decodeRemoteWrite(body, v2)
  } catch (e) {
    if (e instanceof RemoteWriteLimitError) return failure(413, "bad_data", e.message)
    if (e instanceof RemoteWriteDecodeError) return failure(400, "bad_data", e.message)
    throw e
  }
  const outcome = yield* Effect.exit(tsdb.write({ series: decoded.series, metadata: decoded.metadata }))
  if (outcome._tag === "Failure") {
    const error = outcome.cause
    const e = (error as unknown as { reasons?: Array<{ error?: unknown }> }).reasons?.[0]?.error
    if (e instanceof TsdbError) {
      if (e.kind === "unavailable") return HttpServerResponse.text(e.message, { status: 503, headers: { "retry-after": "1" } })
      return HttpServerResponse.text(e.message, { status: e.kind === "limit" ? 413 : 400 })
    }
    return HttpServerResponse.text("internal error", { status: 500 })
  }
  const o = outcome.value
  const headers = v2
    ? {
      "x-prometheus-remote-write-samples-written": String(o.samplesWritten),
      "x-prometheus-remote-write-histograms-written": "0",
      "x-prometheus-remote-write-exemplars-written": "0"
    }
    : {}
  const rejected = o.duplicates + o.tooOld
  if (rejected > 0) {
    // As Prometheus: the rest is stored; the client must not retry what can never be stored.
    return HttpServerResponse.text(
      `${rejected} samples rejected (${o.duplicates} duplicate timestamps with another value, ${o.tooOld} out of bounds or too old)`,
      { status: 400, headers }
    )
  }
  if (decoded.histograms > 0 && v2) {
    return HttpServerResponse.text(`${decoded.histograms} native histograms are not supported`, { status: 400, headers })
  }
  return HttpServerResponse.empty({ status: 204, headers })
}).pipe(
  Effect.catchDefect((d) => Effect.succeed(HttpServerResponse.text(`internal error: ${d instanceof Error ? d.message : String(d)}`, { status: 500 })))
)

/** A route and the parameters it takes: they are checked here, once, before its handler runs. */
const route = <R>(
  methods: ReadonlyArray<"GET" | "POST">,
  path: HttpRouter.PathInput,
  known: ReadonlyArray<string>,
  handler: Effect.Effect<HttpServerResponse.HttpServerResponse, never, R | Params>
) => {
  const names: ReadonlySet<string> = new Set(known)
  const checked = answer(Effect.flatMap(readParams(names), (p) => Effect.provideService(handler, Params, p)))
  const [first, ...rest] = methods.map((method) => HttpRouter.add(method, path, checked))
  return Layer.mergeAll(first!, ...rest)
}

const both = ["GET", "POST"] as const
const selection = ["match[]", "start", "end", "limit"]

/** The routes; they need the `Tsdb` service. */
export const routes = Layer.mergeAll(
  // Remote writers send a request every few hundred samples: no access log line for each.
  route(["POST"], "/api/v1/write", [], HttpMiddleware.withLoggerDisabled(writeHandler)),
  route(both, "/api/v1/query", ["query", "time", "timeout", "limit"], queryHandler),
  route(both, "/api/v1/query_range", ["query", "start", "end", "step", "timeout"], queryRangeHandler),
  route(both, "/api/v1/format_query", ["query"], formatQueryHandler),
  route(both, "/api/v1/parse_query", ["query"], parseQueryHandler),
  route(both, "/api/v1/series", selection, seriesHandler),
  route(both, "/api/v1/labels", selection, labelsHandler),
  route(["GET"], "/api/v1/label/:name/values", selection, labelValuesHandler),
  route(["GET"], "/api/v1/metadata", ["metric", "limit"], metadataHandler),
  route(["GET"], "/api/v1/status/buildinfo", [], buildinfoHandler),
  route(both, "/api/v1/query_exemplars", ["query", "start", "end"], exemplarsHandler)
)
