/**
 * The Prometheus HTTP API of the TSDB: remote write in (`POST /api/v1/write`, 1.0 and 2.0), queries, and
 * the series, labels, label values, metadata, exemplars, rules, alerts and status endpoints, in Prometheus's
 * JSON envelope (`{"status":"success","data":...}` / `{"status":"error","errorType":...,"error":...}`).
 * GET and POST (form-encoded, optionally gzip-encoded) where Prometheus has both; another method on a known
 * path is a 405. Answers are gzip-compressed for clients that accept it.
 */
import * as os from "node:os"
import * as v8 from "node:v8"
import { ByteSize, Clock, Context, Effect, Layer, Option, Result, Schema, Semaphore } from "effect"
import { HttpIncomingMessage, HttpMiddleware, HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "effect/http"
import * as Limits from "./limits.ts"
import { encodeResponse, gunzipBounded } from "./internal/compression.ts"
import { isValidLabelName, unescapeName } from "./internal/names.ts"
import { cardinality, formatDuration, headStart, sampleBounds } from "./internal/status.ts"
import type { Matcher } from "./internal/labels.ts"
import { LabelsInterner } from "./internal/remoteWrite/index.ts"
import { decodeRemoteWrite, releaseRemoteWrite, RemoteWriteDecodeError, RemoteWriteLimitError } from "./internal/remoteWriteAdapter.ts"
import * as OtlpDecode from "./internal/otlp/decode.ts"
import * as Otlp from "./internal/otlp/translate.ts"
import { limits as RemoteWriteLimits } from "./internal/remoteWrite/decode.ts"
import { parseSelector } from "./internal/selector.ts"
import { Tsdb, TsdbError } from "./Tsdb.ts"
import { instantQuery, QueryError, rangeQuery } from "./promql/engine.ts"
import type { PromqlFeature, Value } from "./promql/types.ts"
import type { FloatHistogram } from "./promql/histogram.ts"
import { allBuckets } from "./promql/histogram.ts"
import { formatExpr, parse, parseDuration } from "./promql/parser.ts"
import type { Expr } from "./promql/ast.ts"
import { ParseError } from "./promql/ast.ts"

/** This server's own version (buildinfo's `opendataVersion`). */
export const version = "0.1.0"

/**
 * The Prometheus version buildinfo reports as `version`, which clients compare to decide what the server
 * can do (Grafana keeps it as the data source's Prometheus version and gates features on it with semver).
 * 3.0.0: the API and PromQL are Prometheus 3's (left-open range windows, UTF-8 label names in the label
 * values API with `U__` escapes, `holt_winters` gone), and in 3.0.0 native histograms were still behind a
 * feature flag, off by default, so a default 3.0.0 server stores none either. A later 3.x would promise what
 * came after 3.0 (native histograms by default from 3.8, the `/api/v1/features` and notifications
 * endpoints); 2.x would hide the UTF-8 names support.
 */
export const prometheusVersion = "3.0.0"

/** The staleness lookback of queries (Prometheus's `--query.lookback-delta` default), passed to the engine. */
const lookbackDeltaMs = 5 * 60_000

type ErrorType = "bad_data" | "execution" | "internal" | "unavailable" | "not_found" | "timeout" | "canceled"

const success = (data: unknown) => HttpServerResponse.jsonUnsafe({ status: "success", data })

/** A query's answer with its annotations, as Prometheus's API puts them beside `data`. */
const answered = (value: Value) =>
  HttpServerResponse.jsonUnsafe({
    status: "success",
    data: resultJson(value),
    ...(value.annotations !== undefined && value.annotations.warnings.length > 0 ? { warnings: value.annotations.warnings } : {}),
    ...(value.annotations !== undefined && value.annotations.infos.length > 0 ? { infos: value.annotations.infos } : {})
  })
const failure = (status: number, errorType: ErrorType, error: string) =>
  HttpServerResponse.jsonUnsafe({ status: "error", errorType, error }, { status })

/** Bad input, answered with its status (400 unless told) and `bad_data`. */
class BadRequest extends Schema.TaggedError<BadRequest>()("BadRequest", { message: Schema.String, status: Schema.Number }) {}
const badRequest = (message: string, status = 400) => new BadRequest({ message, status })

/** Prometheus time parameters: a float of Unix seconds or RFC 3339; in ms. */
const parseTime = (value: string | undefined, fallback: number, name: string): Effect.Effect<number, BadRequest> => {
  if (value === undefined || value === "") return Effect.succeed(fallback)
  if (/^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(value)) {
    const ms = Math.round(Number(value) * 1000)
    if (Number.isFinite(ms)) return Effect.succeed(ms)
  }
  const parsed = Date.parse(value)
  if (!Number.isNaN(parsed) && /\d{4}-\d{2}-\d{2}T/.test(value)) return Effect.succeed(parsed)
  return Effect.fail(badRequest(`invalid parameter "${name}": cannot parse "${value}" to a valid timestamp`))
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

/** Parameters a route may repeat (selectors, rule filters); any other given twice is refused rather than guessed at. */
const repeatable: ReadonlySet<string> = new Set(["match[]", "rule_name[]", "rule_group[]", "file[]"])

/**
 * A form body's bytes, decoded as its `Content-Encoding` says: none (or `identity`), or gzip, decompressed
 * up to `formBodyBytesMax` (past it: 413, however small the compressed body). Another coding is a 415.
 */
const decodeFormBody = (encoding: string | undefined, bytes: Uint8Array) =>
  Effect.gen(function*() {
    const coding = (encoding ?? "").trim().toLowerCase()
    if (coding === "" || coding === "identity") return bytes
    if (coding !== "gzip" && coding !== "x-gzip") {
      return yield* badRequest(`unsupported content encoding ${encoding}: a form body may be gzip-encoded or not encoded`, 415)
    }
    const decoded = yield* gunzipBounded(bytes, Limits.formBodyBytesMax)
    if (decoded._tag === "TooLarge") return yield* badRequest(decoded.message, 413)
    if (decoded._tag === "Corrupt") return yield* badRequest(decoded.message)
    return decoded.bytes
  })

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
    // A route that takes no parameters (remote write) never reads its body as a form.
    if (known.size > 0 && request.method === "POST" && (request.headers["content-type"] ?? "").includes("application/x-www-form-urlencoded")) {
      const body = yield* boundedBody(request, Limits.formBodyBytesMax)
      if (body._tag !== "Body") return yield* badRequest(body.message)
      const bytes = yield* decodeFormBody(request.headers["content-encoding"], body.bytes)
      for (const [k, v] of new URLSearchParams(new TextDecoder().decode(bytes))) all.append(k, v)
    }
    const seen = new Set<string>()
    for (const name of all.keys()) {
      if (!known.has(name)) return yield* badRequest(`unknown parameter "${name}": this endpoint takes ${[...known].join(", ") || "none"}`)
      if (seen.has(name) && !repeatable.has(name)) return yield* badRequest(`invalid parameter "${name}": given more than once`)
      seen.add(name)
    }
    return all
  })

/** The request's parameters, checked by its route (see `route`). */
class Params extends Context.Service<Params, URLSearchParams>()("@opendata/tsdb/Http/Params") {}

const selectorsOf = (p: URLSearchParams): Effect.Effect<Array<Array<Matcher>>, BadRequest> =>
  Effect.forEach(p.getAll("match[]"), (m) => {
    try {
      return Effect.succeed(parseSelector(m))
    } catch (e) {
      const quoted = quotedNameSelector(m)
      if (Array.isArray(quoted)) return Effect.succeed(quoted)
      return Effect.fail(badRequest(`invalid parameter "match[]": ${quoted ?? (e as Error).message}`))
    }
  })

/**
 * A selector with Prometheus 3's quoted (UTF-8) names, as its API takes them in `match[]`
 * (`{"http.server.request.duration", "service.name"="x"}`: a quote just after `{` or `,`), read by the
 * PromQL parser: its matchers, or the parser's error; undefined when the input has no quoted name or is not
 * a plain vector selector (no offset or `@`).
 */
const quotedNameSelector = (input: string): Array<Matcher> | string | undefined => {
  if (!/[{,]\s*["'`]/.test(input)) return undefined
  try {
    const e = parse(input)
    if (e.type !== "VectorSelector" || e.offsetMs !== 0 || e.at !== undefined || e.offsetExpr !== undefined) return undefined
    return [...e.matchers]
  } catch (e) {
    return e instanceof ParseError ? e.message : undefined
  }
}

const limitOf = (p: URLSearchParams): Effect.Effect<number | undefined, BadRequest> => {
  const v = p.get("limit")
  if (v === null || v === "") return Effect.succeed(undefined)
  const n = Number(v)
  if (!Number.isSafeInteger(n) || n < 0) return Effect.fail(badRequest(`invalid parameter "limit": must be a non-negative integer`))
  return Effect.succeed(n)
}

const range = (p: URLSearchParams) =>
  Effect.gen(function*() {
    const start = yield* parseTime(p.get("start") ?? undefined, minTime, "start")
    const end = yield* parseTime(p.get("end") ?? undefined, maxTime, "end")
    if (end < start) return yield* badRequest(`invalid parameter "end": end timestamp must not be before start time`)
    return { start, end }
  })

/** A query's text parsed, or a 400 naming the parameter. */
const parseQueryParameter = (query: string): Effect.Effect<Expr, BadRequest> => {
  try {
    return Effect.succeed(parse(query))
  } catch (e) {
    if (e instanceof ParseError) return Effect.fail(badRequest(`invalid parameter "query": ${e.message}`))
    throw e
  }
}

/** What a handler may refuse with, each answered once, here, in Prometheus's envelope. */
type Refusal = BadRequest | TsdbError | QueryError

const refusal = (e: Refusal) => {
  switch (e._tag) {
    case "BadRequest":
      return failure(e.status, "bad_data", e.message)
    case "QueryError":
      return queryFailure(e)
    case "TsdbError":
      return e.kind === "unavailable"
        ? failure(503, "unavailable", e.message)
        : e.kind === "limit"
        ? failure(422, "execution", e.message)
        : failure(400, "bad_data", e.message)
  }
}

/** Runs a handler, answering what it refuses and its defects (a bug: 500) in the envelope. */
const answer = <R>(handler: Effect.Effect<HttpServerResponse.HttpServerResponse, Refusal, R>) =>
  handler.pipe(
    Effect.catch((e) => Effect.succeed(refusal(e))),
    Effect.catchDefect((d) => Effect.succeed(failure(500, "internal", d instanceof Error ? d.message : String(d))))
  )

const seriesHandler = answer(Effect.gen(function*() {
  const tsdb = yield* Tsdb
  const p = yield* Params
  const selectors = yield* selectorsOf(p)
  if (selectors.length === 0) return yield* badRequest("no match[] parameter provided")
  const { start, end } = yield* range(p)
  const series = yield* tsdb.series(selectors, start, end, yield* limitOf(p))
  return success(series.map((labels) => Object.fromEntries(labels)))
}))

const labelsHandler = answer(Effect.gen(function*() {
  const tsdb = yield* Tsdb
  const p = yield* Params
  const { start, end } = yield* range(p)
  return success(yield* tsdb.labelNames(yield* selectorsOf(p), start, end, yield* limitOf(p)))
}))

/**
 * Label values. The name is checked as Prometheus 3 checks it (any non-empty UTF-8 name), after undoing the
 * `U__` escape clients use for names that are not `[a-zA-Z_][a-zA-Z0-9_]*` (Grafana sends `my.label` as
 * `U__my_2e_label`): OTLP's UTF-8 translation strategies store such names (`service.name`); a name no
 * series has has no values: an empty list, not an error.
 */
const labelValuesHandler = answer(Effect.gen(function*() {
  const tsdb = yield* Tsdb
  const p = yield* Params
  const raw = (yield* HttpRouter.params)["name"] ?? ""
  const name = raw.startsWith("U__") ? unescapeName(raw) : raw
  if (!isValidLabelName(name)) return yield* badRequest(`invalid label name: ${JSON.stringify(name)}`)
  const limit = yield* limitOf(p)
  const { start, end } = yield* range(p)
  const selectors = yield* selectorsOf(p)
  // NUL separates names from values in the index keys: no stored name holds one (and a lookup must not alias).
  if (name.includes("\0")) return success([])
  return success(yield* tsdb.labelValues(name, selectors, start, end, limit))
}))

const metadataHandler = answer(Effect.gen(function*() {
  const tsdb = yield* Tsdb
  const p = yield* Params
  const metric = p.get("metric") ?? undefined
  const all = yield* tsdb.metadata(metric === "" ? undefined : metric, yield* limitOf(p))
  const data: Record<string, Array<{ type: string; help: string; unit: string }>> = {}
  for (const m of all) (data[m.metric] ??= []).push({ type: m.type, help: m.help, unit: m.unit })
  return success(data)
}))

/**
 * Prometheus's build information, with a Prometheus `version` (see `prometheusVersion`) and this server's
 * name and version in fields of its own. No `features` field: Grafana reads one as the mark of Mimir (and
 * then expects Mimir's ruler API).
 */
const buildinfoHandler = Effect.succeed(success({
  version: prometheusVersion,
  revision: "",
  branch: "",
  buildUser: "",
  buildDate: "",
  goVersion: `node ${process.versions.node}`,
  application: "opendata",
  opendataVersion: version
}))

/** Every selector of a PromQL expression, as matcher sets (Prometheus's `parser.ExtractSelectors`). */
const exprSelectors = (e: Expr): Array<ReadonlyArray<Matcher>> => {
  switch (e.type) {
    case "VectorSelector":
      return [e.matchers]
    case "MatrixSelector":
      return [e.vector.matchers]
    case "Subquery":
    case "Unary":
    case "Paren":
      return exprSelectors(e.expr)
    case "Aggregate":
      return [...exprSelectors(e.expr), ...(e.param === undefined ? [] : exprSelectors(e.param))]
    case "Binary":
      return [...exprSelectors(e.lhs), ...exprSelectors(e.rhs)]
    case "Call":
      return e.args.flatMap(exprSelectors)
    default:
      return []
  }
}

/**
 * `/api/v1/query_exemplars`: the exemplars in [start, end] of the series any selector of `query` selects,
 * in Prometheus's shape (`seriesLabels`, and `labels`, `value` as a string, `timestamp` in seconds).
 */
const exemplarsHandler = answer(Effect.gen(function*() {
  const tsdb = yield* Tsdb
  const p = yield* Params
  const { start, end } = yield* range(p)
  const expr = yield* parseQueryParameter(p.get("query") ?? "")
  const selectors = exprSelectors(expr)
  if (selectors.length === 0) return success([])
  const found = yield* tsdb.exemplars(selectors, start, end)
  return success(found.map((s) => ({
    seriesLabels: Object.fromEntries(s.labels),
    exemplars: s.exemplars.map((x) => ({ labels: Object.fromEntries(x.labels), value: formatFloat(x.value), timestamp: x.timestampMs / 1000 }))
  })))
}))

/** Go's `strconv.ParseInt(s, 10, 32)`, with its error text; undefined for the empty string. */
const parseInt32 = (s: string): number | undefined | Error => {
  if (s === "") return undefined
  if (!/^[+-]?[0-9]+$/.test(s)) return new Error(`strconv.ParseInt: parsing ${JSON.stringify(s)}: invalid syntax`)
  const n = Number(s)
  if (n < -(2 ** 31) || n > 2 ** 31 - 1) return new Error(`strconv.ParseInt: parsing ${JSON.stringify(s)}: value out of range`)
  return n
}

/**
 * Recording and alerting rules. This server evaluates none, so the answer is always an empty list of groups;
 * the parameters are checked as Prometheus checks them (a bad `type`, `exclude_alerts`, `match[]` or
 * pagination is a 400 with its message). Mimir's `file`, `rule_group` and `rule_name` (no brackets) are
 * accepted too: Grafana's alerting pages send both spellings.
 */
const rulesHandler = answer(Effect.gen(function*() {
  const p = yield* Params
  yield* selectorsOf(p)
  const type = (p.get("type") ?? "").toLowerCase()
  if (type !== "" && type !== "alert" && type !== "record") return yield* badRequest(`invalid parameter "type": not supported value ${JSON.stringify(type)}`)
  const excludeAlerts = (p.get("exclude_alerts") ?? "").toLowerCase()
  if (excludeAlerts !== "" && !["1", "t", "true", "0", "f", "false"].includes(excludeAlerts)) {
    return yield* badRequest(`invalid parameter "exclude_alerts": error converting exclude_alerts: strconv.ParseBool: parsing ${JSON.stringify(excludeAlerts)}: invalid syntax`)
  }
  const groupLimit = parseInt32(p.get("group_limit") ?? "")
  const nextToken = p.get("group_next_token") ?? ""
  if (nextToken !== "" && groupLimit === undefined) {
    return yield* badRequest(`invalid parameter "group_next_token": group_limit needs to be present in order to paginate over the groups`)
  }
  if (groupLimit instanceof Error) return yield* badRequest(`invalid parameter "group_limit": group_limit needs to be a valid number: ${groupLimit.message}`)
  if (groupLimit !== undefined && groupLimit <= 0) return yield* badRequest(`invalid parameter "group_limit": group_limit needs to be greater than 0`)
  // There is no rule group, so no token can name one.
  if (groupLimit !== undefined && nextToken !== "") {
    return yield* badRequest(`invalid parameter "group_next_token": invalid group_next_token '${nextToken}'. were rule groups changed?`)
  }
  return success({ groups: [] })
}))

/** Active alerts: none, as no alerting rule is evaluated here. */
const alertsHandler = Effect.succeed(success({ alerts: [] }))

/**
 * What the status endpoints report about the server's settings beyond `QueryLimits`. A server provides
 * them; retention left undefined is reported as unknown (absent from flags and config, `""` in runtimeinfo)
 * rather than guessed.
 */
export const StatusSettings = Context.Reference<{ readonly retentionMs: number | undefined; readonly outOfOrderWindowMs: number }>(
  "@opendata/tsdb/Http/StatusSettings",
  { defaultValue: () => ({ retentionMs: undefined, outOfOrderWindowMs: Limits.outOfOrderWindowMs }) }
)

/** Where the server listens, as Prometheus's `--web.listen-address` reads (`0.0.0.0:9090`), if known. */
const listenAddress = Effect.map(Effect.serviceOption(HttpServer.HttpServer), (server) =>
  Option.map(server, (s) => HttpServer.formatAddress(s.address).replace(/^http:\/\//, "")))

/**
 * The command-line flags of a Prometheus server that apply here, with this server's values, as Prometheus
 * prints them. Other Prometheus flags have no equivalent and are absent.
 */
const flagsHandler = Effect.gen(function*() {
  const limits = yield* QueryLimits
  const settings = yield* StatusSettings
  const address = yield* listenAddress
  const flags: Record<string, string> = {
    "query.lookback-delta": formatDuration(lookbackDeltaMs),
    "query.max-samples": String(limits.samplesMax),
    "query.timeout": formatDuration(limits.timeoutMs),
    ...(settings.retentionMs === undefined ? {} : { "storage.tsdb.retention.time": formatDuration(settings.retentionMs) }),
    ...((yield* PromqlFeatures).length > 0 ? { "enable-feature": (yield* PromqlFeatures).join(",") } : {}),
    "web.enable-admin-api": "false",
    "web.enable-lifecycle": "false",
    ...(Option.isSome(address) ? { "web.listen-address": address.value } : {})
  }
  return success(flags)
})

/**
 * The configuration in Prometheus's format, with only what applies: there is no scraping, no rule
 * evaluation and no alerting (samples arrive by remote write), so `global` is empty and there is no
 * `scrape_configs`, `rule_files` or `alerting`; `storage.tsdb` has the out-of-order window and, when known,
 * the retention.
 */
const configHandler = Effect.gen(function*() {
  const settings = yield* StatusSettings
  const lines = [
    `# opendata ${version}: only the parts of a Prometheus configuration that apply to this server.`,
    "# Samples arrive by remote write (POST /api/v1/write): nothing is scraped, no rule is evaluated, no alert sent.",
    "global: {}",
    "storage:",
    "  tsdb:",
    `    out_of_order_time_window: ${formatDuration(settings.outOfOrderWindowMs)}`,
    ...(settings.retentionMs === undefined ? [] : ["    retention:", `      time: ${formatDuration(settings.retentionMs)}`])
  ]
  return success({ yaml: lines.join("\n") + "\n" })
})

/** When the process started (the configuration is read once, then). */
const startTime = new Date(performance.timeOrigin).toISOString()

/**
 * Prometheus's runtime information, with Node's equivalents where there are some: `GOMAXPROCS` is 1 (the one
 * thread that runs JavaScript), `GOMEMLIMIT` the V8 heap limit in bytes. `goroutineCount` and
 * `corruptionCount` have no equivalent here and are 0; `GOGC` and `GODEBUG` are Go settings, empty.
 */
const runtimeinfoHandler = Effect.gen(function*() {
  const settings = yield* StatusSettings
  const now = yield* Effect.clockWith((c) => Effect.succeed(c.currentTimeMillisUnsafe()))
  return success({
    startTime,
    CWD: process.cwd(),
    hostname: os.hostname(),
    serverTime: new Date(now).toISOString(),
    reloadConfigSuccess: true,
    lastConfigTime: startTime,
    corruptionCount: 0,
    goroutineCount: 0,
    GOMAXPROCS: 1,
    GOMEMLIMIT: v8.getHeapStatistics().heap_size_limit,
    GOGC: "",
    GODEBUG: "",
    storageRetention: settings.retentionMs === undefined ? "" : formatDuration(settings.retentionMs)
  })
})

/** Prometheus's `/status/tsdb` limit: 10 unless given, at most this. */
const tsdbStatusLimitMax = 10_000

/**
 * TSDB statistics, computed from the store (see `internal/status.ts`): the head's series, label pairs and
 * first and last sample, and the top `limit` of each cardinality table. `chunkCount` has no equivalent
 * through the store's interface and is 0. An empty head has Prometheus's bounds (`minTime` the largest
 * int64, `maxTime` the smallest), which its UI shows as "no datapoints yet".
 */
const tsdbStatusHandler = answer(Effect.gen(function*() {
  const tsdb = yield* Tsdb
  const p = yield* Params
  const given = p.get("limit") ?? ""
  let limit = 10
  if (given !== "") {
    limit = /^[+-]?[0-9]+$/.test(given) ? Number(given) : Number.NaN
    if (!(limit >= 1)) return yield* badRequest("limit must be a positive number")
    if (limit > tsdbStatusLimitMax) return yield* badRequest(`limit must not exceed ${tsdbStatusLimitMax}`)
  }
  const now = yield* Effect.clockWith((c) => Effect.succeed(c.currentTimeMillisUnsafe()))
  const start = headStart(now)
  const stats = cardinality(yield* tsdb.series([], start, Number.MAX_SAFE_INTEGER), limit)
  const bounds = stats.numSeries === 0 ? undefined : yield* sampleBounds(tsdb, start, now, (yield* QueryLimits).samplesMax)
  return success({
    headStats: {
      numSeries: stats.numSeries,
      numLabelPairs: stats.numLabelPairs,
      chunkCount: 0,
      minTime: bounds?.minTime ?? 2 ** 63,
      maxTime: bounds?.maxTime ?? -(2 ** 63)
    },
    seriesCountByMetricName: stats.seriesCountByMetricName,
    labelValueCountByLabelName: stats.labelValueCountByLabelName,
    memoryInBytesByLabelName: stats.memoryInBytesByLabelName,
    seriesCountByLabelValuePair: stats.seriesCountByLabelValuePair
  })
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

/**
 * A native histogram as Prometheus's API renders it: count, sum and the non-empty buckets, each
 * `[boundaryRule, lower, upper, count]` with the rule 0 (lower exclusive, upper inclusive), 1 (lower
 * inclusive, upper exclusive), 2 (both exclusive) or 3 (both inclusive).
 */
export const histogramJson = (h: FloatHistogram) => ({
  count: formatFloat(h.count),
  sum: formatFloat(h.sum),
  buckets: allBuckets(h).filter((b) => b.count !== 0).map((b) => [
    b.lowerInclusive ? (b.upperInclusive ? 3 : 1) : b.upperInclusive ? 0 : 2,
    formatFloat(b.lower),
    formatFloat(b.upper),
    formatFloat(b.count)
  ])
})

const resultJson = (value: Value) => {
  switch (value.type) {
    case "scalar":
      return { resultType: "scalar", result: [value.t / 1000, formatFloat(value.v)] }
    case "string":
      return { resultType: "string", result: [value.t / 1000, value.v] }
    case "vector":
      return {
        resultType: "vector",
        result: value.samples.map((s) =>
          s.h === undefined
            ? { metric: metric(s.labels), value: [s.t / 1000, formatFloat(s.v)] }
            : { metric: metric(s.labels), histogram: [s.t / 1000, histogramJson(s.h)] }
        )
      }
    case "matrix":
      return {
        resultType: "matrix",
        result: value.series.map((s) => {
          const floats = s.samples.filter((p) => p.h === undefined)
          const histograms = s.samples.filter((p) => p.h !== undefined)
          return {
            metric: metric(s.labels),
            ...(floats.length > 0 || histograms.length === 0 ? { values: floats.map((p) => [p.t / 1000, formatFloat(p.v)]) } : {}),
            ...(histograms.length > 0 ? { histograms: histograms.map((p) => [p.t / 1000, histogramJson(p.h!)]) } : {})
          }
        })
      }
  }
}

/** `step` and durations: float seconds or a Prometheus duration. */
const parseStep = (value: string | null, name: string): Effect.Effect<number, BadRequest> => {
  if (value === null || value === "") return Effect.fail(badRequest(`invalid parameter "${name}": missing`))
  if (/^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(value)) return Effect.succeed(Math.round(Number(value) * 1000))
  try {
    return Effect.succeed(parseDuration(value))
  } catch {
    return Effect.fail(badRequest(`invalid parameter "${name}": cannot parse "${value}" to a valid duration`))
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
const withTimeout = (p: URLSearchParams, limits: { readonly timeoutMs: number }, self: Effect.Effect<Value, QueryError>) =>
  Effect.gen(function*() {
    const timeout = p.get("timeout")
    const given = timeout === null || timeout === "" ? undefined : yield* parseStep(timeout, "timeout")
    if (given !== undefined && !(given > 0)) return yield* badRequest(`invalid parameter "timeout": must be a positive duration`)
    const ms = given === undefined ? limits.timeoutMs : Math.min(limits.timeoutMs, given)
    return yield* self.pipe(
      Effect.timeoutOrElse({ duration: `${ms} millis`, orElse: () => Effect.fail(new QueryError({ kind: "timeout", message: "query timed out in query execution" })) })
    )
  })

/**
 * PromQL's experimental features a server switches on, by Prometheus's `--enable-feature` names
 * (`promql-experimental-functions`, `promql-duration-expr`, `promql-extended-range-selectors`,
 * `promql-binop-fill-modifiers`). None by default: a query that uses one is a 400 naming it.
 */
export const PromqlFeatures = Context.Reference<ReadonlyArray<PromqlFeature>>("@opendata/tsdb/Http/PromqlFeatures", {
  defaultValue: () => []
})

const queryOptions = (limits: { readonly samplesMax: number }, features: ReadonlyArray<PromqlFeature>) => ({
  samplesMax: limits.samplesMax,
  lookbackMs: lookbackDeltaMs,
  features
})

const queryHandler = answer(Effect.gen(function*() {
  const tsdb = yield* Tsdb
  const p = yield* Params
  const query = p.get("query")
  if (query === null || query === "") return yield* badRequest(`invalid parameter "query": missing`)
  const clock = yield* Effect.clockWith((c) => Effect.succeed(c.currentTimeMillisUnsafe()))
  const time = yield* parseTime(p.get("time") ?? undefined, clock, "time")
  const limits = yield* QueryLimits
  const value = yield* withTimeout(p, limits, instantQuery(tsdb, query, time, queryOptions(limits, yield* PromqlFeatures)))
  const limit = yield* limitOf(p)
  const limited = limit !== undefined && limit > 0 && value.type === "vector" ? { ...value, samples: value.samples.slice(0, limit) } : value
  return answered(limited)
}))

const queryRangeHandler = answer(Effect.gen(function*() {
  const tsdb = yield* Tsdb
  const p = yield* Params
  const query = p.get("query")
  if (query === null || query === "") return yield* badRequest(`invalid parameter "query": missing`)
  const start = yield* parseTime(p.get("start") ?? undefined, Number.NaN, "start")
  const end = yield* parseTime(p.get("end") ?? undefined, Number.NaN, "end")
  if (Number.isNaN(start)) return yield* badRequest(`invalid parameter "start": missing`)
  if (Number.isNaN(end)) return yield* badRequest(`invalid parameter "end": missing`)
  if (end < start) return yield* badRequest(`invalid parameter "end": end timestamp must not be before start time`)
  const step = yield* parseStep(p.get("step"), "step")
  if (step <= 0) return yield* badRequest(`invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer`)
  if ((end - start) / step > 11_000) return yield* badRequest("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)")
  const limits = yield* QueryLimits
  return answered(yield* withTimeout(p, limits, rangeQuery(tsdb, query, start, end, step, queryOptions(limits, yield* PromqlFeatures))))
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

/**
 * Label sets of remote-write 1.0 series seen before, by their bytes: a scrape sends the same ones every
 * time, and they are then neither decoded nor looked up again (see `LabelsInterner`). A cache: the same
 * bytes are the same labels whichever server decodes them.
 */
const labelsInterner = new LabelsInterner(Limits.remoteWriteLabelsCacheMax)

/** Remote write 1.0 and 2.0. 204 once every stored sample is durable; 400 for what could not be stored. */
/**
 * The answer to a write the TSDB refused, as remote-write clients read it: 503 with `Retry-After` when the
 * store is unavailable (they retry), 413 over a limit, 400 otherwise (they drop it), 500 for a defect.
 */
const writeFailure = (e: TsdbError) =>
  e.kind === "unavailable"
    ? HttpServerResponse.text(e.message, { status: 503, headers: { "retry-after": "1" } })
    : HttpServerResponse.text(e.message, { status: e.kind === "limit" ? 413 : 400 })

/** How OTLP metrics become Prometheus series (Prometheus's `otlp:` configuration); a server provides it from its config. */
export const OtlpSettings = Context.Reference<Otlp.OtlpSettings>("@opendata/tsdb/Http/OtlpSettings", {
  defaultValue: () => Otlp.defaultSettings
})

/**
 * The delta streams of each TSDB this process serves (`convertDeltaToCumulative`: running totals in memory,
 * bounded, see `Otlp.DeltaStreams`), with the lock that lets one request at a time translate, write and keep
 * its totals.
 */
const deltaStates = new WeakMap<object, { readonly streams: Otlp.DeltaStreams; readonly lock: Semaphore.Semaphore }>()
const deltaStateOf = (tsdb: object) => {
  let state = deltaStates.get(tsdb)
  if (state === undefined) {
    state = { streams: new Otlp.DeltaStreams(), lock: Semaphore.makeUnsafe(1) }
    deltaStates.set(tsdb, state)
  }
  return state
}

/** An OTLP `ExportMetricsServiceResponse`: empty, or a partial success with the points refused and why. */
const otlpResponse = (json: boolean, rejected: number, message: string) => {
  if (json) {
    const body = rejected > 0 || message !== "" ? { partialSuccess: { rejectedDataPoints: String(rejected), errorMessage: message } } : {}
    return HttpServerResponse.jsonUnsafe(body)
  }
  return HttpServerResponse.uint8Array(OtlpDecode.encodeExportResponse(rejected, message), { contentType: "application/x-protobuf" })
}

/**
 * `POST /api/v1/otlp/v1/metrics`: OTLP/HTTP metrics, protobuf (`application/x-protobuf`) or JSON
 * (`application/json`), optionally gzip-encoded, translated as Prometheus 3 does (`internal/otlp/translate.ts`)
 * and written like a remote write (answered once durable). Malformed bodies are a 400, bodies over a limit a
 * 413, other media types a 415; points that cannot be translated (delta temporality unless converted, an
 * exponential histogram's scale below -4) or that the TSDB refuses (duplicates, too old) are reported in the
 * response's `partial_success`, and the rest is written. With `convertDeltaToCumulative`, a request holding
 * delta points is translated, written and its running totals kept under one lock (as Prometheus's
 * `deltatocumulative` holds a mutex); the totals are kept only once the write succeeded, so that a retry
 * after a failed write is not counted twice.
 */
const otlpMetricsHandler = Effect.gen(function*() {
  const tsdb = yield* Tsdb
  const settings = yield* OtlpSettings
  const request = yield* HttpServerRequest.HttpServerRequest
  const length = Number(request.headers["content-length"] ?? "0")
  if (length > Limits.writeBodyBytesMax) return HttpServerResponse.text(`request body of ${length} bytes is over the limit of ${Limits.writeBodyBytesMax}`, { status: 413 })
  const mediaType = (request.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase()
  if (mediaType !== "application/x-protobuf" && mediaType !== "application/json") {
    return HttpServerResponse.text(`unsupported content type ${request.headers["content-type"] ?? "(none)"}: use application/x-protobuf or application/json`, { status: 415 })
  }
  const json = mediaType === "application/json"
  const coding = (request.headers["content-encoding"] ?? "").trim().toLowerCase()
  if (coding !== "" && coding !== "identity" && coding !== "gzip") {
    return HttpServerResponse.text(`unsupported content encoding ${coding}: use gzip or none`, { status: 415 })
  }
  const read = yield* boundedBody(request, Limits.writeBodyBytesMax)
  if (read._tag === "TooLarge") return HttpServerResponse.text(read.message, { status: 413 })
  if (read._tag === "Unreadable") return HttpServerResponse.text(read.message, { status: 400 })
  let body: Uint8Array = read.bytes
  if (coding === "gzip") {
    const inflated = yield* gunzipBounded(body, Limits.writeDecompressedBytesMax)
    if (inflated._tag === "TooLarge") return HttpServerResponse.text(inflated.message, { status: 413 })
    if (inflated._tag === "Corrupt") return HttpServerResponse.text(inflated.message, { status: 400 })
    body = inflated.bytes
  }
  let decoded: OtlpDecode.MetricsRequest
  try {
    const decodeLimits = { ...OtlpDecode.decodeLimits, pointsMax: RemoteWriteLimits.maxSamplesPerRequest, stringBytesMax: RemoteWriteLimits.maxLabelValueBytes }
    decoded = json
      ? OtlpDecode.decodeMetricsJson(new TextDecoder("utf-8", { fatal: true }).decode(body), decodeLimits)
      : OtlpDecode.decodeMetricsProto(body, decodeLimits)
  } catch (e) {
    if (e instanceof RemoteWriteLimitError) return HttpServerResponse.text(e.message.replace(/^remote write:/, "otlp:"), { status: 413 })
    if (e instanceof RemoteWriteDecodeError) return HttpServerResponse.text(`otlp: ${e.field}: ${e.reason}`, { status: 400 })
    if (e instanceof TypeError) return HttpServerResponse.text("otlp: the JSON body is not valid UTF-8", { status: 400 })
    throw e
  }
  const translateAndWrite = (deltas: { readonly streams: Otlp.DeltaStreams; readonly nowMs: number } | undefined) =>
    Effect.gen(function*() {
      const translated = Otlp.translate(decoded, settings, {
        labelsPerSeriesMax: RemoteWriteLimits.maxLabelsPerSeries,
        labelValueBytesMax: RemoteWriteLimits.maxLabelValueBytes
      }, deltas)
      if (translated.series.length > RemoteWriteLimits.maxSamplesPerRequest) {
        return HttpServerResponse.text(`otlp: ${translated.series.length} samples in one request, over the limit of ${RemoteWriteLimits.maxSamplesPerRequest}`, { status: 413 })
      }
      const outcome = yield* Effect.result(tsdb.write({ series: translated.series, metadata: translated.metadata }))
      if (Result.isFailure(outcome)) return writeFailure(outcome.failure)
      translated.commit()
      const o = outcome.success
      const reasons = [...translated.reasons]
      const refused = o.duplicates + o.tooOld
      if (refused > 0) reasons.push(`${refused} samples refused by the TSDB (${o.duplicates} duplicate timestamps with another value, ${o.tooOld} out of bounds or too old)`)
      return otlpResponse(json, translated.rejectedPoints, reasons.join("; "))
    })
  // Cumulative-only requests never wait for the delta streams' lock.
  if (settings.convertDeltaToCumulative !== true || !Otlp.hasDelta(decoded)) return yield* translateAndWrite(undefined)
  const deltas = deltaStateOf(tsdb)
  return yield* deltas.lock.withPermit(Effect.flatMap(Clock.currentTimeMillis, (nowMs) => translateAndWrite({ streams: deltas.streams, nowMs })))
}).pipe(
  Effect.catchDefect((d) => Effect.succeed(HttpServerResponse.text(`internal error: ${d instanceof Error ? d.message : String(d)}`, { status: 500 })))
)

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
    decoded = decodeRemoteWrite(body, v2, labelsInterner)
  } catch (e) {
    if (e instanceof RemoteWriteLimitError) return failure(413, "bad_data", e.message)
    if (e instanceof RemoteWriteDecodeError) return failure(400, "bad_data", e.message)
    throw e
  }
  const outcome = yield* Effect.result(tsdb.write({ series: decoded.series, metadata: decoded.metadata }))
  // The write is over (it keeps nothing of its input): the samples' buffers serve the next request.
  releaseRemoteWrite(decoded)
  if (Result.isFailure(outcome)) return writeFailure(outcome.failure)
  const o = outcome.success
  const headers = v2
    ? {
      "x-prometheus-remote-write-samples-written": String(o.samplesWritten),
      "x-prometheus-remote-write-histograms-written": String(o.histogramsWritten ?? 0),
      "x-prometheus-remote-write-exemplars-written": String(o.exemplarsWritten ?? 0)
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
  return HttpServerResponse.empty({ status: 204, headers })
}).pipe(
  Effect.catchDefect((d) => Effect.succeed(HttpServerResponse.text(`internal error: ${d instanceof Error ? d.message : String(d)}`, { status: 500 })))
)

/** The answer compressed as the request's `Accept-Encoding` allows (see `internal/compression.ts`). */
const compressed = <E, R>(self: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
    Effect.flatMap(self, (response) => encodeResponse(request.headers["accept-encoding"], response)))

/** Methods a client may try on a known path; those the route does not take are a 405. */
const otherMethods = ["GET", "POST", "PUT", "DELETE", "PATCH"] as const

/**
 * A known path asked with a method it does not take: 405 with the methods it does take in `Allow`, as
 * Prometheus's router answers (e.g. `POST /api/v1/label/job/values`), not the 404 of an unknown path.
 */
const methodNotAllowed = (allowed: ReadonlyArray<string>) =>
  HttpServerResponse.text("Method Not Allowed\n", {
    status: 405,
    contentType: "text/plain; charset=utf-8",
    headers: { allow: allowed.join(", "), "x-content-type-options": "nosniff" }
  })

/**
 * A route and the parameters it takes: they are checked here, once, before its handler runs; its answers
 * are compressed for clients that accept gzip; the other methods on its path are a 405.
 */
const route = <R>(
  methods: ReadonlyArray<"GET" | "POST">,
  path: HttpRouter.PathInput,
  known: ReadonlyArray<string>,
  handler: Effect.Effect<HttpServerResponse.HttpServerResponse, never, R | Params>
) => {
  const names: ReadonlySet<string> = new Set(known)
  const checked = compressed(answer(Effect.flatMap(readParams(names), (p) => Effect.provideService(handler, Params, p))))
  const refused = methodNotAllowed(methods)
  const [first, ...rest] = [
    ...methods.map((method) => HttpRouter.add(method, path, checked)),
    ...otherMethods.filter((m) => !methods.includes(m as "GET" | "POST")).map((method) => HttpRouter.add(method, path, refused))
  ]
  return Layer.mergeAll(first!, ...rest)
}

const both = ["GET", "POST"] as const
const selection = ["match[]", "start", "end", "limit"]

/** The routes; they need the `Tsdb` service. */
export const routes = Layer.mergeAll(
  // Remote writers send a request every few hundred samples: no access log line for each.
  route(["POST"], "/api/v1/write", [], HttpMiddleware.withLoggerDisabled(writeHandler)),
  route(["POST"], "/api/v1/otlp/v1/metrics", [], HttpMiddleware.withLoggerDisabled(otlpMetricsHandler)),
  route(both, "/api/v1/query", ["query", "time", "timeout", "limit"], queryHandler),
  route(both, "/api/v1/query_range", ["query", "start", "end", "step", "timeout"], queryRangeHandler),
  route(both, "/api/v1/format_query", ["query"], formatQueryHandler),
  route(both, "/api/v1/parse_query", ["query"], parseQueryHandler),
  route(both, "/api/v1/series", selection, seriesHandler),
  route(both, "/api/v1/labels", selection, labelsHandler),
  route(["GET"], "/api/v1/label/:name/values", selection, labelValuesHandler),
  route(["GET"], "/api/v1/metadata", ["metric", "limit"], metadataHandler),
  route(["GET"], "/api/v1/status/buildinfo", [], buildinfoHandler),
  route(["GET"], "/api/v1/status/flags", [], flagsHandler),
  route(["GET"], "/api/v1/status/config", [], configHandler),
  route(["GET"], "/api/v1/status/runtimeinfo", [], runtimeinfoHandler),
  route(["GET"], "/api/v1/status/tsdb", ["limit"], tsdbStatusHandler),
  route(both, "/api/v1/query_exemplars", ["query", "start", "end"], exemplarsHandler),
  route(
    ["GET"],
    "/api/v1/rules",
    ["type", "rule_name[]", "rule_group[]", "file[]", "exclude_alerts", "match[]", "group_limit", "group_next_token", "rule_name", "rule_group", "file"],
    rulesHandler
  ),
  route(["GET"], "/api/v1/alerts", [], alertsHandler)
)
