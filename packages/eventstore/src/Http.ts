/**
 * The HTTP and WebSocket API of the EventStore (see the package README for the reference).
 *
 * `routes` is a Layer that adds the API to the process's `HttpRouter`; it needs the `EventStore` service.
 * Every input (path segment, query parameter, JSON body) is validated with `Schema` before the store is
 * called, and every failure is answered with one JSON envelope: `{"error":"<code>","message":"...", ...}`.
 *
 * Routing: the router matches only the fixed prefixes (`/v1/logs/*`, `/v1/groups/*`, `/v1/tail`, `/v1/append`); the rest
 * of the raw path is split and percent-decoded here. That keeps a key's `%2F` a part of the key, allows
 * keys of any permitted length (the router caps parameters at 100 characters), and gives JSON 404/405s.
 *
 * Here: the routing, the handlers and the layer. The rest has rooms of its own under `http/`:
 *
 * - `codecs.ts`: the schemas of query parameters, bodies and append-session frames, and the JSON (or
 *   Arrow) of the answers;
 * - `body.ts`: reading a request's body;
 * - `errors.ts`: the API's own errors, and the status and envelope of every error;
 * - `tail.ts`: WebSocket tails (and the send-buffer back-pressure they share with append sessions);
 * - `appendSession.ts`: append sessions.
 */
import { Cause, Context, Effect, Layer, Option } from "effect"
import { HttpMiddleware, HttpRouter, HttpServerError, HttpServerRequest, HttpServerResponse } from "effect/http"
import {
  EventStore,
  type EventStoreShape,
  type GroupOffset,
  InvalidInput,
  LimitExceeded,
  type TailStart
} from "./EventStore.ts"
import * as Limits from "./limits.ts"
import { takeAppend } from "./internal/appendJson.ts"
import { serveAppendSession } from "./http/appendSession.ts"
import { decodeBody, readJson } from "./http/body.ts"
import {
  AppendBodyBase64,
  AppendBodyUtf8,
  AppendSessionQuery,
  appendOptions,
  CommitBody,
  decodeQuery,
  decodeSync,
  encodeRecords,
  EncodingQuery,
  FencingTokenBody,
  inputRecords,
  ListQuery,
  metaJson,
  NoQuery,
  type QuerySchema,
  ReadQuery,
  RetentionBody,
  TailPrefixQuery,
  TailQuery,
  toArrow,
  TrimBody,
  utf8Encoder
} from "./http/codecs.ts"
import { answerErrors, type ApiError, errorResponse, MethodNotAllowed, RouteNotFound, UpgradeRequired } from "./http/errors.ts"
import { makeTailHome, serveTail, type TailHome } from "./http/tail.ts"

// The rest of the API's public names, from the rooms that use them.
export { requestBodyBytesMax } from "./http/body.ts"
export { metaJson, toArrow } from "./http/codecs.ts"
export { type ApiError, errorAnswer, MethodNotAllowed, RouteNotFound, UpgradeRequired } from "./http/errors.ts"
export { tailDrainTimeoutMs, tailErrorCloseCode, tailMessageBytesMax, tailSendBufferBytes } from "./http/tail.ts"

// -------------------------------------------------------------------------------------------------
// Limits and names of the API
// -------------------------------------------------------------------------------------------------

/** The media type of an Arrow IPC stream (records reads with this `Accept` get one). */
export const arrowMediaType = "application/vnd.apache.arrow.stream"
/** Response header of an Arrow read: the offset to read next (also in the schema metadata as `next`). */
export const nextOffsetHeader = "x-next-offset"
/**
 * Completes when the server begins to shut down (default: never). Open tails then close with 1001 at
 * once, so that a graceful shutdown does not wait for them; a server provides it from a layer released
 * before the HTTP server's own graceful wait.
 */
export const ShutdownSignal = Context.Reference<Effect.Effect<void>>("@opendata/eventstore/Http/ShutdownSignal", {
  defaultValue: () => Effect.never
})

// -------------------------------------------------------------------------------------------------
// Request parsing
// -------------------------------------------------------------------------------------------------

interface Target {
  /** Raw (still percent-encoded) path segments after the leading `/`. */
  readonly segments: ReadonlyArray<string>
  readonly path: string
  readonly query: string
}

const splitUrl = (url: string): Target => {
  const hash = url.indexOf("#")
  const noHash = hash === -1 ? url : url.slice(0, hash)
  const q = noHash.indexOf("?")
  const path = q === -1 ? noHash : noHash.slice(0, q)
  const query = q === -1 ? "" : noHash.slice(q + 1)
  return { segments: path.split("/").slice(1), path, query }
}

const keyBytesMax = Limits.logKeyBytesMax

/**
 * A percent-decoded path segment naming a log (or a group). Checked here as the contract describes keys
 * (1..logKeyBytesMax bytes of UTF-8, no NUL) so that a tail answers a bad key with an HTTP 400 before the
 * upgrade; the store checks again.
 */
const decodeName = (raw: string | undefined, field: "key" | "group"): Effect.Effect<string, InvalidInput> =>
  Effect.suspend(() => {
    let name: string
    try {
      name = decodeURIComponent(raw ?? "")
    } catch {
      return Effect.fail(new InvalidInput({ field, reason: "is not validly percent-encoded UTF-8" }))
    }
    if (name.length === 0) return Effect.fail(new InvalidInput({ field, reason: "must not be empty" }))
    if (name.includes("\0")) return Effect.fail(new InvalidInput({ field, reason: "must not contain NUL" }))
    if (!name.isWellFormed()) return Effect.fail(new InvalidInput({ field, reason: "must be well-formed Unicode" }))
    if (utf8Encoder.encode(name).length > keyBytesMax) {
      return Effect.fail(new InvalidInput({ field, reason: `must be at most ${keyBytesMax} bytes of UTF-8` }))
    }
    return Effect.succeed(name)
  })

/** Whether the client asked for Arrow (an `Accept` listing the Arrow stream type with a non-zero q). */
const wantsArrow = (request: HttpServerRequest.HttpServerRequest): boolean => {
  const accept = request.headers["accept"]
  if (accept === undefined) return false
  return accept.split(",").some((part) => {
    const [type, ...params] = part.split(";").map((s) => s.trim().toLowerCase())
    if (type !== arrowMediaType) return false
    const q = params.find((p) => p.startsWith("q="))
    return q === undefined || Number(q.slice(2)) > 0
  })
}

const isWebSocketUpgrade = (request: HttpServerRequest.HttpServerRequest): boolean =>
  request.headers["upgrade"]?.toLowerCase() === "websocket"

// -------------------------------------------------------------------------------------------------
// Handlers
// -------------------------------------------------------------------------------------------------

const ok = (body: unknown, status = 200) => HttpServerResponse.jsonUnsafe(body, { status })

/** Group names the transforms keep their positions under: not committed through this API. */
const reservedGroupPrefix = "transform/"

type Handler = Effect.Effect<HttpServerResponse.HttpServerResponse, ApiError>
type Answered = Effect.fn.Return<HttpServerResponse.HttpServerResponse, ApiError>
type Request = HttpServerRequest.HttpServerRequest

const makeHandlers = (store: EventStoreShape, home: TailHome) => {
  const list = Effect.fnUntraced(function*(q: typeof ListQuery.Type): Answered {
    const result = yield* store.list(q)
    return ok({
      logs: result.logs.map(metaJson),
      ...(result.cursor !== undefined ? { cursor: result.cursor } : {})
    })
  })

  const meta = Effect.fnUntraced(function*(key: string): Answered {
    return ok(metaJson(yield* store.meta(key)))
  })

  const remove = Effect.fnUntraced(function*(key: string): Answered {
    yield* store.delete(key)
    return HttpServerResponse.empty({ status: 204 })
  })

  const append = Effect.fnUntraced(function*(request: Request, key: string, q: typeof EncodingQuery.Type): Answered {
    const encoding = q.encoding ?? "utf8"
    const json = yield* readJson(request)
    // Over-long batches are refused before their records are validated one by one.
    const raw = typeof json === "object" && json !== null ? (json as { readonly records?: unknown }).records : undefined
    if (Array.isArray(raw) && raw.length > Limits.batchRecordsMax) {
      return yield* new LimitExceeded({ field: "records", limit: Limits.batchRecordsMax })
    }
    // The plain shape in one pass; anything else through the schema (and its error).
    let append = encoding === "utf8" ? takeAppend(json, false) : undefined
    if (append === undefined) {
      const body = encoding === "base64"
        ? decodeSync(AppendBodyBase64, json, "body", "field")
        : decodeSync(AppendBodyUtf8, json, "body", "field")
      if (body instanceof InvalidInput) return yield* body
      append = { records: inputRecords(body), options: appendOptions(body) }
    }
    const result = yield* store.append(key, append.records, append.options)
    return ok({ offsets: result.offsets, next: result.next })
  })

  const read = Effect.fnUntraced(function*(request: Request, key: string, q: typeof ReadQuery.Type): Answered {
    if (q.from !== undefined && q.fromTime !== undefined) {
      return yield* new InvalidInput({ field: "fromTime", reason: "give either from or fromTime, not both" })
    }
    const result = yield* store.read(key, { from: q.from, fromTime: q.fromTime, limit: q.limit, maxBytes: q.maxBytes })
    if (wantsArrow(request)) {
      return HttpServerResponse.uint8Array(toArrow(result), {
        contentType: arrowMediaType,
        headers: { [nextOffsetHeader]: String(result.next) }
      })
    }
    const records = yield* encodeRecords(result.records, q.encoding ?? "utf8")
    return ok({ records, next: result.next })
  })

  const trim = Effect.fnUntraced(function*(request: Request, key: string): Answered {
    const body = yield* decodeBody(request, TrimBody)
    return ok(metaJson(yield* store.trim(key, body.before)))
  })

  const fencingToken = Effect.fnUntraced(function*(request: Request, key: string): Answered {
    const body = yield* decodeBody(request, FencingTokenBody)
    return ok(metaJson(yield* store.setFencingToken(key, body.token ?? undefined, body.current)))
  })

  const retention = Effect.fnUntraced(function*(request: Request, key: string): Answered {
    const body = yield* decodeBody(request, RetentionBody)
    return ok(metaJson(yield* store.setRetention(key, body ?? undefined)))
  })

  const groupJson = (g: GroupOffset) => ({
    group: g.group,
    key: g.key,
    offset: g.offset ?? null,
    lag: g.lag,
    ...(g.metadata !== undefined ? { metadata: g.metadata } : {})
  })

  const logGroups = Effect.fnUntraced(function*(key: string): Answered {
    return ok({ groups: (yield* store.listGroups(key)).map(groupJson) })
  })

  const groupOffset = Effect.fnUntraced(function*(request: Request, group: string, key: string): Answered {
    if (request.method === "PUT" && group.startsWith(reservedGroupPrefix)) {
      return yield* new InvalidInput({ field: "group", reason: `groups under ${JSON.stringify(reservedGroupPrefix)} are the transforms' positions: use the transforms API (skip, reset)` })
    }
    const result = request.method === "PUT"
      ? yield* Effect.flatMap(decodeBody(request, CommitBody), (body) => store.commitOffset(group, key, body.offset, body.metadata))
      : yield* store.fetchOffset(group, key)
    return ok(groupJson(result))
  })

  const tail = Effect.fnUntraced(function*(request: Request, key: string, q: typeof TailQuery.Type): Answered {
    const given = [q.from !== undefined, q.fromTime !== undefined, q.now !== undefined].filter(Boolean).length
    if (given > 1) {
      return yield* new InvalidInput({ field: "from", reason: "give at most one of from, fromTime and now" })
    }
    if (!isWebSocketUpgrade(request)) return yield* new UpgradeRequired()
    // "From the first offset" is the first record at or after time 0: every stored record, trim-proof.
    const start: TailStart = q.from !== undefined
      ? { _tag: "offset", offset: q.from }
      : q.fromTime !== undefined
      ? { _tag: "time", time: q.fromTime }
      : q.now !== undefined
      ? { _tag: "now" }
      : { _tag: "time", time: 0 }
    return yield* serveTail(request, store.tailCursor(key, start), q.encoding ?? "utf8", home)
  })

  const tailPrefix = Effect.fnUntraced(function*(request: Request, q: typeof TailPrefixQuery.Type): Answered {
    if (!isWebSocketUpgrade(request)) return yield* new UpgradeRequired()
    return yield* serveTail(request, store.tailPrefixCursor(q.prefix ?? ""), q.encoding ?? "utf8", home)
  })

  const appendSession = Effect.fnUntraced(function*(request: Request, q: typeof AppendSessionQuery.Type): Answered {
    if (!isWebSocketUpgrade(request)) return yield* new UpgradeRequired()
    return yield* serveAppendSession(request, store, q, home.shutdown)
  })

  /** A route's handler for one method, given the raw query: decodes the parameters it takes, then runs. */
  type Route = (query: string) => Handler
  const route = <S extends QuerySchema>(schema: S, run: (query: S["Type"]) => Handler): Route => (query) =>
    Effect.flatMap(decodeQuery(schema, query), run)
  const plain = (run: () => Handler): Route => route(NoQuery, run)

  /**
   * Runs the route of the request's method (HEAD runs GET's), or answers 405. Every route's query is
   * decoded here, once, before its handler runs.
   */
  const methods = (
    request: Request,
    query: string,
    table: Partial<Record<"GET" | "POST" | "PUT" | "DELETE", Route>>
  ): Handler => {
    const method = request.method === "HEAD" ? "GET" : request.method
    const r = (table as Record<string, Route | undefined>)[method]
    return r !== undefined
      ? r(query)
      : Effect.fail(new MethodNotAllowed({ method: request.method, allow: Object.keys(table) }))
  }

  /** Every route of the API, matched on the raw path. */
  const dispatch = Effect.fnUntraced(function*(request: Request): Answered {
    const { segments: s, path, query } = splitUrl(request.url)
    const notFound = () => new RouteNotFound({ method: request.method, path })
    if (s[0] !== "v1") return yield* notFound()
    if (s[1] === "tail" && s.length === 2) {
      return yield* methods(request, query, { GET: route(TailPrefixQuery, (q) => tailPrefix(request, q)) })
    }
    if (s[1] === "append" && s.length === 2) {
      return yield* methods(request, query, { GET: route(AppendSessionQuery, (q) => appendSession(request, q)) })
    }
    if (s[1] === "logs") {
      if (s.length === 2) return yield* methods(request, query, { GET: route(ListQuery, list) })
      if (s.length > 4) return yield* notFound()
      const action = s[3]
      if (action !== undefined && !["records", "trim", "fencing-token", "retention", "tail", "groups"].includes(action)) {
        return yield* notFound()
      }
      const key = yield* decodeName(s[2], "key")
      switch (action) {
        case undefined:
          return yield* methods(request, query, { GET: plain(() => meta(key)), DELETE: plain(() => remove(key)) })
        case "records":
          return yield* methods(request, query, {
            GET: route(ReadQuery, (q) => read(request, key, q)),
            // Producers append many times a second: no access-log line for each (failures are logged).
            POST: route(EncodingQuery, (q) =>
              Effect.provideService(HttpMiddleware.withLoggerDisabled(append(request, key, q)), HttpServerRequest.HttpServerRequest, request))
          })
        case "trim":
          return yield* methods(request, query, { POST: plain(() => trim(request, key)) })
        case "fencing-token":
          return yield* methods(request, query, { PUT: plain(() => fencingToken(request, key)) })
        case "retention":
          return yield* methods(request, query, { PUT: plain(() => retention(request, key)) })
        case "groups":
          return yield* methods(request, query, { GET: plain(() => logGroups(key)) })
        default:
          return yield* methods(request, query, { GET: route(TailQuery, (q) => tail(request, key, q)) })
      }
    }
    if (s[1] === "groups" && s.length === 5 && s[3] === "offsets") {
      const group = yield* decodeName(s[2], "group")
      const key = yield* decodeName(s[4], "key")
      const handler = plain(() => groupOffset(request, group, key))
      return yield* methods(request, query, { GET: handler, PUT: handler })
    }
    return yield* notFound()
  })

  return { dispatch }
}

// -------------------------------------------------------------------------------------------------
// Routes
// -------------------------------------------------------------------------------------------------

const apiPrefixes = ["/v1/logs", "/v1/groups", "/v1/tail", "/v1/append"]
const isApiPath = (url: string) =>
  apiPrefixes.some((p) => url === p || url.startsWith(`${p}/`) || url.startsWith(`${p}?`))

/**
 * The router gives up on a path it cannot percent-decode before any route sees it; under the API's prefixes
 * that becomes the JSON envelope (400) instead of the server's plain 404.
 */
const malformedPathAsJson = HttpRouter.middleware(
  (httpEffect) =>
    Effect.catchCause(httpEffect, (cause) => {
      const error = Option.getOrUndefined(Cause.findErrorOption(cause)) as unknown
      if (
        !HttpServerError.isHttpServerError(error) || error.reason._tag !== "RouteNotFound" ||
        !isApiPath(error.reason.request.url)
      ) {
        return Effect.failCause(cause)
      }
      const { method, url } = error.reason.request
      return Effect.succeed(errorResponse(
        hasMalformedEscape(url)
          ? new InvalidInput({ field: "path", reason: "is not validly percent-encoded" })
          : new RouteNotFound({ method, path: splitUrl(url).path })
      ))
    }),
  { global: true }
)

const hasMalformedEscape = (url: string): boolean => {
  try {
    decodeURI(splitUrl(url).path)
    return false
  } catch {
    return true
  }
}

/**
 * The EventStore API on the process's router: `/v1/logs...`, `/v1/groups...` and `/v1/tail`. Needs the
 * `EventStore` service (taken once, when the routes are added); reads `ShutdownSignal` if provided.
 */
export const routes: Layer.Layer<never, never, HttpRouter.HttpRouter | EventStore> = Layer.mergeAll(
  HttpRouter.use((router) =>
    Effect.gen(function*() {
      const { dispatch } = makeHandlers(yield* EventStore, yield* makeTailHome(yield* ShutdownSignal))
      const handler = (request: Request) => answerErrors(dispatch(request))
      yield* router.add("*", "/v1/logs/*", handler)
      yield* router.add("*", "/v1/groups/*", handler)
      yield* router.add("*", "/v1/tail", handler)
      yield* router.add("*", "/v1/append", handler)
    })
  ),
  malformedPathAsJson
)
