/**
 * The HTTP and WebSocket API of the EventStore (see the package README for the reference).
 *
 * `routes` is a Layer that adds the API to the process's `HttpRouter`; it needs the `EventStore` service.
 * Every input (path segment, query parameter, JSON body) is validated with `Schema` before the store is
 * called, and every failure is answered with one JSON envelope: `{"error":"<code>","message":"...", ...}`.
 *
 * Routing: the router matches only the fixed prefixes (`/v1/logs/*`, `/v1/groups/*`, `/v1/tail`); the rest
 * of the raw path is split and percent-decoded here. That keeps a key's `%2F` a part of the key, allows
 * keys of any permitted length (the router caps parameters at 100 characters), and gives JSON 404/405s.
 */
import * as Arrow from "apache-arrow"
import { Cause, Context, Deferred, Effect, Exit, Fiber, Layer, Option, Schema, Scope, SchemaGetter, SchemaIssue, Stream } from "effect"
import { Base64 } from "effect/encoding"
import { HttpMiddleware, HttpRouter, HttpServerError, HttpServerRequest, HttpServerResponse } from "effect/http"
import { Socket } from "effect/socket"
import {
  type AppendResult,
  EventStore,
  type EventStoreError,
  type EventStoreShape,
  type GroupOffset,
  InvalidInput,
  LimitExceeded,
  type LogMeta,
  type LogRecord,
  type OffsetTrimmed,
  type ReadResult,
  type RecordInput,
  type Retention,
  type TailEvent,
  type TailStart,
  type Unavailable
} from "./EventStore.ts"
import * as Limits from "./limits.ts"
import * as K from "./internal/keys.ts"
import { takeAppend, type TakenAppend } from "./internal/appendJson.ts"

// -------------------------------------------------------------------------------------------------
// Limits and names of the API
// -------------------------------------------------------------------------------------------------

/** A request body is refused (413) beyond this many bytes, before it is parsed. */
export const requestBodyBytesMax = 8 * 1024 * 1024
/** The media type of an Arrow IPC stream (records reads with this `Accept` get one). */
export const arrowMediaType = "application/vnd.apache.arrow.stream"
/** Response header of an Arrow read: the offset to read next (also in the schema metadata as `next`). */
export const nextOffsetHeader = "x-next-offset"
/** A tail message carries records of at most about this many bytes (at least one record). */
export const tailMessageBytesMax = 1024 * 1024
/** A tail stops sending while this many bytes wait in the connection's send buffer... */
export const tailSendBufferBytes = 1024 * 1024
/** ...and closes the socket (1008) if the client does not read them within this time. */
export const tailDrainTimeoutMs = 30_000
/**
 * Completes when the server begins to shut down (default: never). Open tails then close with 1001 at
 * once, so that a graceful shutdown does not wait for them; a server provides it from a layer released
 * before the HTTP server's own graceful wait.
 */
export const ShutdownSignal = Context.Reference<Effect.Effect<void>>("@opendata/eventstore/Http/ShutdownSignal", {
  defaultValue: () => Effect.never
})

/** The close code of a tail that ends on an error: 4000 + its HTTP status (e.g. 4416 for OffsetTrimmed). */
export const tailErrorCloseCode = (status: number) => 4000 + status

// -------------------------------------------------------------------------------------------------
// Errors of the HTTP layer itself (the store's are in EventStore.ts)
// -------------------------------------------------------------------------------------------------

/** 404: no such route. */
export class RouteNotFound extends Schema.TaggedError<RouteNotFound>()("NotFound", {
  method: Schema.String,
  path: Schema.String
}) {
  override get message() {
    return `no route for ${this.method} ${this.path}`
  }
}

/** 405: the route exists but not with this method. */
export class MethodNotAllowed extends Schema.TaggedError<MethodNotAllowed>()("MethodNotAllowed", {
  method: Schema.String,
  allow: Schema.Array(Schema.String)
}) {
  override get message() {
    return `method ${this.method} is not allowed here; use ${this.allow.join(", ")}`
  }
}

/** 426: a tail endpoint was called without a WebSocket upgrade. */
export class UpgradeRequired extends Schema.TaggedError<UpgradeRequired>()("UpgradeRequired", {}) {
  override get message() {
    return "this endpoint is a WebSocket: send an Upgrade: websocket request"
  }
}

export type ApiError = EventStoreError | RouteNotFound | MethodNotAllowed | UpgradeRequired

interface ErrorAnswer {
  readonly status: number
  readonly body: Record<string, unknown>
  readonly headers?: Record<string, string>
}

/** The status, JSON envelope and headers of every error the API answers with. */
export const errorAnswer = (e: ApiError): ErrorAnswer => {
  const body = (extra: Record<string, unknown>) => ({ error: e._tag, message: e.message, ...extra })
  switch (e._tag) {
    case "InvalidInput":
      return { status: 400, body: body({ field: e.field, reason: e.reason }) }
    case "LogNotFound":
      return { status: 404, body: body({ key: e.key }) }
    case "OffsetConflict":
      return { status: 409, body: body({ key: e.key, expected: e.expected, next: e.next }) }
    case "FencingConflict":
      return { status: 409, body: body({ key: e.key, next: e.next }) }
    case "LimitExceeded":
      return { status: 413, body: body({ field: e.field, limit: e.limit }) }
    case "OffsetTrimmed":
      return { status: 416, body: body({ key: e.key, requested: e.requested, first: e.first }) }
    case "EventStoreUnavailable":
      return { status: 503, body: body({ reason: e.reason }), headers: { "retry-after": "1" } }
    case "NotFound":
      return { status: 404, body: body({}) }
    case "MethodNotAllowed":
      return { status: 405, body: body({ allow: e.allow }), headers: { allow: e.allow.join(", ") } }
    case "UpgradeRequired":
      return { status: 426, body: body({}), headers: { upgrade: "websocket" } }
  }
}

const errorResponse = (e: ApiError): HttpServerResponse.HttpServerResponse => {
  const answer = errorAnswer(e)
  return HttpServerResponse.jsonUnsafe(answer.body, {
    status: answer.status,
    ...(answer.headers !== undefined ? { headers: answer.headers } : {})
  })
}

const internalErrorResponse = HttpServerResponse.jsonUnsafe(
  { error: "InternalError", message: "internal error; see the server log" },
  { status: 500 }
)

/** Answers typed errors with their envelope, and any defect with a 500 (logged); interruption passes. */
const answerErrors = <R>(
  effect: Effect.Effect<HttpServerResponse.HttpServerResponse, ApiError, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, R> =>
  effect.pipe(
    Effect.catch((e) => Effect.succeed(errorResponse(e))),
    Effect.catchCause((cause) =>
      Cause.hasInterruptsOnly(cause)
        ? Effect.failCause(cause)
        : Effect.as(Effect.logError("eventstore http: unexpected failure", cause), internalErrorResponse)
    )
  )

// -------------------------------------------------------------------------------------------------
// Input schemas
// -------------------------------------------------------------------------------------------------

const Offset = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThanOrEqualTo(Number.MAX_SAFE_INTEGER))
/** Milliseconds since the epoch (may be before it). */
const Millis = Schema.Int.check(Schema.isBetween({ minimum: -Number.MAX_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER }))

/** A query parameter holding a non-negative decimal integer (no sign, exponent or fraction). */
const QueryInt = Schema.String.check(
  Schema.isPattern(/^(0|[1-9][0-9]{0,15})$/, { expected: "a non-negative decimal integer" })
).pipe(Schema.decodeTo(Schema.FiniteFromString), Schema.decodeTo(Offset))

const WellFormedString = Schema.String.check(
  Schema.makeFilter((s: string) => s.isWellFormed() || "must be well-formed Unicode (no lone surrogates)")
)

const Encoding = Schema.Literals(["utf8", "base64"])
type Encoding = typeof Encoding.Type

const EncodingQuery = Schema.Struct({ encoding: Schema.optionalKey(Encoding) })
const NoQuery = Schema.Struct({})

const ListQuery = Schema.Struct({
  prefix: Schema.optionalKey(Schema.String),
  cursor: Schema.optionalKey(Schema.String),
  limit: Schema.optionalKey(QueryInt)
})

const ReadQuery = Schema.Struct({
  from: Schema.optionalKey(QueryInt),
  fromTime: Schema.optionalKey(QueryInt),
  limit: Schema.optionalKey(QueryInt),
  maxBytes: Schema.optionalKey(QueryInt),
  encoding: Schema.optionalKey(Encoding)
})

const TailQuery = Schema.Struct({
  from: Schema.optionalKey(QueryInt),
  fromTime: Schema.optionalKey(QueryInt),
  now: Schema.optionalKey(Schema.Literals(["", "true"])),
  encoding: Schema.optionalKey(Encoding)
})

/** A key prefix: empty, or checked as keys are (`nameProblem`: well-formed UTF-8, no NUL, at most logKeyBytesMax bytes). */
const KeyPrefix = Schema.String.check(
  Schema.makeFilter((s: string) => s === "" || (K.nameProblem(s, Limits.logKeyBytesMax) ?? true))
)

const TailPrefixQuery = Schema.Struct({
  prefix: Schema.optionalKey(KeyPrefix),
  encoding: Schema.optionalKey(Encoding)
})

const appendBody = <V extends Schema.Top>(value: V) =>
  Schema.Struct({
    records: Schema.Array(
      Schema.Struct({
        value,
        headers: Schema.optionalKey(Schema.Record(WellFormedString, WellFormedString)),
        eventTime: Schema.optionalKey(Millis)
      })
    ),
    expectedOffset: Schema.optionalKey(Offset),
    fencingToken: Schema.optionalKey(WellFormedString),
    producerId: Schema.optionalKey(WellFormedString),
    producerSeq: Schema.optionalKey(Offset)
  })
const AppendBodyUtf8 = appendBody(WellFormedString)
/**
 * Canonical base64 (RFC 4648 section 4, padded, no whitespace, zero pad bits): exactly what encoding the
 * bytes gives back, so one value has one spelling and a mangled one (`\r\n` inside, a trailing newline,
 * the URL alphabet) is refused rather than guessed at.
 */
const CanonicalBase64 = Schema.String.check(
  Schema.makeFilter((s: string) =>
    (/^[A-Za-z0-9+/]*={0,2}$/.test(s) && s.length % 4 === 0 && Buffer.from(s, "base64").toString("base64") === s) ||
    "must be canonical base64 (padded, no whitespace)"
  )
).pipe(Schema.decodeTo(Schema.Uint8Array, {
  decode: SchemaGetter.transform((s: string) => new Uint8Array(Buffer.from(s, "base64"))),
  encode: SchemaGetter.transform((bytes: Uint8Array) => Buffer.from(bytes).toString("base64"))
}))
const AppendBodyBase64 = appendBody(CanonicalBase64)

/** One append of an append session: the HTTP append's body with the client's `id` and the log's `key`. */
const appendFrame = <V extends Schema.Top>(value: V) =>
  Schema.Struct({ id: Offset, key: Schema.String, encoding: Schema.optionalKey(Encoding), ...appendBody(value).fields })
const AppendFrameUtf8 = appendFrame(WellFormedString)
const AppendFrameBase64 = appendFrame(CanonicalBase64)

const AppendSessionQuery = Schema.Struct({
  prefix: Schema.optionalKey(KeyPrefix),
  encoding: Schema.optionalKey(Encoding)
})

const TrimBody = Schema.Struct({ before: Offset })
const FencingTokenBody = Schema.Struct({
  token: Schema.NullOr(WellFormedString),
  current: Schema.optionalKey(WellFormedString)
})
const RetentionBody = Schema.NullOr(
  Schema.Struct({ maxAgeMs: Schema.optionalKey(Offset), maxBytes: Schema.optionalKey(Offset) })
)
/** Group names the transforms keep their positions under: not committed through this API. */
const reservedGroupPrefix = "transform/"

const CommitBody = Schema.Struct({ offset: Offset, metadata: Schema.optionalKey(Schema.String) })

const parseOptions = { onExcessProperty: "error", errors: "first" } as const
const issueFormatter = SchemaIssue.makeFormatterStandardSchemaV1()

/** `records[0].value` from a schema issue's path; `root` when the issue is about the whole input. */
const fieldName = (path: ReadonlyArray<unknown>, root: string): string =>
  path.length === 0 ? root : path.map((segment, i) => {
    const p = typeof segment === "object" && segment !== null && "key" in segment ? segment.key : segment
    return typeof p === "number" ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`
  }).join("")

const toInvalidInput = (error: Schema.SchemaError, root: string, what: "field" | "parameter"): InvalidInput => {
  const issue = issueFormatter(error.issue).issues[0]
  const field = fieldName(issue?.path ?? [], root)
  const message = issue?.message ?? "is invalid"
  const reason = message === "Expected no excess property"
    ? `is not a known ${what}`
    : message === "Missing key"
    ? "is required"
    : message
  return new InvalidInput({ field, reason })
}

/** `decodeWith` without an effect: the decoded value, or the error the API answers with. */
const decodeSync = <S extends Schema.Top & { readonly DecodingServices: never }>(
  schema: S,
  input: unknown,
  root: string,
  what: "field" | "parameter"
): S["Type"] | InvalidInput => {
  const exit = Schema.decodeUnknownExit(schema)(input, parseOptions)
  if (Exit.isSuccess(exit)) return exit.value
  const error = Exit.findErrorOption(exit)
  return Option.isSome(error) ? toInvalidInput(error.value, root, what) : new InvalidInput({ field: root, reason: "is invalid" })
}

const decodeWith = <S extends Schema.Top & { readonly DecodingServices: never }>(
  schema: S,
  input: unknown,
  root: string,
  what: "field" | "parameter"
): Effect.Effect<S["Type"], InvalidInput> =>
  Schema.decodeUnknownEffect(schema)(input, parseOptions).pipe(
    Effect.mapError((e) => toInvalidInput(e, root, what))
  )

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

/** A route's query parameters: the ones it knows, each optional or required, each of one type. */
type QuerySchema = Schema.Struct<Schema.Struct.Fields> & { readonly DecodingServices: never }

/**
 * A route's query, decoded before its handler runs: an unknown parameter (`?force=true` on a DELETE,
 * `?__proto__=1` included) or a repeated one is a 400 and nothing happens.
 */
const decodeQuery = <S extends QuerySchema>(schema: S, query: string): Effect.Effect<S["Type"], InvalidInput> =>
  Effect.suspend(() => {
    // Only names the schema defines become properties, so no parameter can reach the prototype.
    const params: Record<string, string> = Object.create(null)
    for (const [name, value] of new URLSearchParams(query)) {
      if (!Object.hasOwn(schema.fields, name)) return Effect.fail(new InvalidInput({ field: name, reason: "is not a known parameter" }))
      if (Object.hasOwn(params, name)) return Effect.fail(new InvalidInput({ field: name, reason: "is given more than once" }))
      params[name] = value
    }
    return decodeWith(schema, { ...params }, "query", "parameter")
  })

const utf8Encoder = new TextEncoder()
const utf8Decoder = new TextDecoder("utf-8", { fatal: true })

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

/** A Node request body not read yet (duck-typed: other platforms read through `request.stream`). */
interface NodeBody {
  readonly readableEnded: boolean
  on(event: "data" | "end" | "error" | "close", listener: (chunk?: unknown) => void): unknown
  off(event: "data" | "end" | "error" | "close", listener: (chunk?: unknown) => void): unknown
  resume(): unknown
}

const nodeBodyOf = (request: HttpServerRequest.HttpServerRequest): NodeBody | undefined => {
  const source = request.source as Partial<NodeBody> | undefined
  return typeof source === "object" && source !== null && source.readableEnded === false && typeof source.on === "function" &&
      typeof source.off === "function" && typeof source.resume === "function"
    ? source as NodeBody
    : undefined
}

const concatChunks = (chunks: ReadonlyArray<Uint8Array>, size: number) => {
  if (chunks.length === 1) return chunks[0]!
  const body = new Uint8Array(size)
  let at = 0
  for (const chunk of chunks) {
    body.set(chunk, at)
    at += chunk.length
  }
  return body
}

/**
 * A Node request's body read straight from its events: one callback effect per request instead of a
 * stream step per chunk (an append's body is one small chunk).
 */
const readNodeBody = (source: NodeBody, tooLarge: () => LimitExceeded): Effect.Effect<Uint8Array, InvalidInput | LimitExceeded> =>
  Effect.callback<Uint8Array, InvalidInput | LimitExceeded>((resume) => {
    const chunks: Array<Uint8Array> = []
    let size = 0
    const cleanup = () => {
      source.off("data", onData)
      source.off("end", onEnd)
      source.off("error", onError)
      source.off("close", onError)
    }
    const onData = (chunk: unknown) => {
      const bytes = chunk as Uint8Array
      size += bytes.length
      if (size > requestBodyBytesMax) {
        cleanup()
        source.resume() // the rest is discarded
        resume(Effect.fail(tooLarge()))
        return
      }
      chunks.push(bytes)
    }
    const onEnd = () => {
      cleanup()
      resume(Effect.succeed(concatChunks(chunks, size)))
    }
    const onError = () => {
      cleanup()
      resume(Effect.fail(new InvalidInput({ field: "body", reason: "could not be read" })))
    }
    source.on("data", onData)
    source.on("end", onEnd)
    source.on("error", onError)
    source.on("close", onError)
    return Effect.sync(cleanup)
  })

/** The request body, refused with 413 beyond `requestBodyBytesMax` bytes before anything is parsed. */
const readBody = (request: HttpServerRequest.HttpServerRequest): Effect.Effect<Uint8Array, InvalidInput | LimitExceeded> =>
  Effect.gen(function*() {
    // Errors are made only when they happen: constructing one captures a stack, too dear per request.
    const tooLarge = () => new LimitExceeded({ field: "body", limit: requestBodyBytesMax })
    const declared = request.headers["content-length"]
    if (declared !== undefined && Number(declared) > requestBodyBytesMax) return yield* tooLarge()
    const node = nodeBodyOf(request)
    if (node !== undefined) return yield* readNodeBody(node, tooLarge)
    const chunks: Array<Uint8Array> = []
    let size = 0
    yield* request.stream.pipe(
      Stream.runForEach((chunk) => {
        size += chunk.length
        if (size > requestBodyBytesMax) return Effect.fail(tooLarge())
        chunks.push(chunk)
        return Effect.void
      }),
      Effect.mapError((e) =>
        e instanceof LimitExceeded ? e : new InvalidInput({ field: "body", reason: "could not be read" })
      )
    )
    return concatChunks(chunks, size)
  })

/** The request body as JSON (UTF-8), not yet validated. */
const readJson = (request: HttpServerRequest.HttpServerRequest): Effect.Effect<unknown, InvalidInput | LimitExceeded> =>
  Effect.flatMap(readBody(request), (bytes) =>
    Effect.suspend(() => {
      let text: string
      try {
        text = utf8Decoder.decode(bytes)
      } catch {
        return Effect.fail(new InvalidInput({ field: "body", reason: "is not valid UTF-8" }))
      }
      if (text.trim() === "") return Effect.fail(new InvalidInput({ field: "body", reason: "is required (JSON)" }))
      try {
        return Effect.succeed(JSON.parse(text) as unknown)
      } catch (e) {
        return Effect.fail(
          new InvalidInput({ field: "body", reason: `is not valid JSON (${e instanceof Error ? e.message : String(e)})` })
        )
      }
    }))

const decodeBody = <S extends Schema.Top & { readonly DecodingServices: never }>(
  request: HttpServerRequest.HttpServerRequest,
  schema: S
): Effect.Effect<S["Type"], InvalidInput | LimitExceeded> =>
  Effect.flatMap(readJson(request), (json) => decodeWith(schema, json, "body", "field"))

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
// Output
// -------------------------------------------------------------------------------------------------

const ok = (body: unknown, status = 200) => HttpServerResponse.jsonUnsafe(body, { status })

const retentionJson = (r: Retention) => ({
  ...(r.maxAgeMs !== undefined ? { maxAgeMs: r.maxAgeMs } : {}),
  ...(r.maxBytes !== undefined ? { maxBytes: r.maxBytes } : {})
})

/** A log's metadata as JSON: absent values are `null`, so every field is always there. */
export const metaJson = (m: LogMeta) => ({
  key: m.key,
  firstOffset: m.firstOffset,
  nextOffset: m.nextOffset,
  bytes: m.bytes,
  records: m.records,
  createdMs: m.createdMs,
  lastAppendMs: m.lastAppendMs ?? null,
  retention: m.retention === undefined ? null : retentionJson(m.retention),
  fenced: m.fenced
})

interface RecordJson {
  readonly offset: number
  readonly timestamp: number
  readonly eventTime?: number
  readonly headers: Readonly<Record<string, string>>
  readonly value: string
}

/** Records as JSON with their values in `encoding`; text that is not UTF-8 is refused, not mangled. */
const encodeRecords = (
  records: ReadonlyArray<LogRecord>,
  encoding: Encoding
): Effect.Effect<Array<RecordJson>, InvalidInput> =>
  Effect.suspend(() => {
    const out: Array<RecordJson> = []
    for (const r of records) {
      let value: string
      if (encoding === "base64") {
        value = Base64.encode(r.value)
      } else {
        try {
          value = utf8Decoder.decode(r.value)
        } catch {
          return Effect.fail(
            new InvalidInput({
              field: "encoding",
              reason: `the value of record ${r.offset} is not UTF-8 text: read it with encoding=base64`
            })
          )
        }
      }
      out.push({
        offset: r.offset,
        timestamp: r.timestamp,
        ...(r.eventTime !== undefined ? { eventTime: r.eventTime } : {}),
        headers: r.headers,
        value
      })
    }
    return Effect.succeed(out)
  })

const arrowSchema = (next: number) =>
  new Arrow.Schema(
    [
      new Arrow.Field("offset", new Arrow.Int64(), false),
      new Arrow.Field("timestamp", new Arrow.TimestampMillisecond(), false),
      new Arrow.Field("eventTime", new Arrow.TimestampMillisecond(), true),
      new Arrow.Field("headers", new Arrow.Utf8(), false),
      new Arrow.Field("value", new Arrow.Binary(), false)
    ],
    new Map([["next", String(next)]])
  )

/** A read as an Arrow IPC stream: one record batch (none when empty), `next` in the schema metadata. */
export const toArrow = (result: ReadResult): Uint8Array => {
  const schema = arrowSchema(result.next)
  const rs = result.records
  const table = rs.length === 0
    ? new Arrow.Table(schema)
    : new Arrow.Table(schema, {
      offset: Arrow.vectorFromArray(rs.map((r) => BigInt(r.offset)), new Arrow.Int64()),
      timestamp: Arrow.vectorFromArray(rs.map((r) => r.timestamp), new Arrow.TimestampMillisecond()),
      eventTime: Arrow.vectorFromArray(rs.map((r) => r.eventTime ?? null), new Arrow.TimestampMillisecond()),
      headers: Arrow.vectorFromArray(rs.map((r) => JSON.stringify(r.headers)), new Arrow.Utf8()),
      value: Arrow.vectorFromArray(rs.map((r) => r.value), new Arrow.Binary())
    })
  return Arrow.tableToIPC(table, "stream")
}

// -------------------------------------------------------------------------------------------------
// WebSocket tails
// -------------------------------------------------------------------------------------------------

/** The connection under a Node request (duck-typed, so other platforms simply get no back-pressure). */
interface SendBuffer {
  readonly writableLength: number
  readonly destroyed: boolean
  once(event: "drain" | "close", listener: () => void): unknown
  off(event: "drain" | "close", listener: () => void): unknown
  /** Node's: writes between `cork` and `uncork` leave in one system call. */
  cork?(): void
  uncork?(): void
}

const sendBufferOf = (request: HttpServerRequest.HttpServerRequest): SendBuffer | undefined => {
  const socket = (request.source as { readonly socket?: unknown }).socket
  if (typeof socket !== "object" || socket === null) return undefined
  const s = socket as Partial<SendBuffer>
  return typeof s.writableLength === "number" && typeof s.once === "function" && typeof s.off === "function"
    ? (socket as SendBuffer)
    : undefined
}

class SlowConsumer extends Schema.TaggedError<SlowConsumer>()("SlowConsumer", {}) {}

/** Whether more than `tailSendBufferBytes` wait to be sent on the connection (the client reads slowly). */
const needsDrain = (buffer: SendBuffer | undefined): buffer is SendBuffer =>
  buffer !== undefined && !buffer.destroyed && buffer.writableLength >= tailSendBufferBytes

/**
 * Waits while more than `tailSendBufferBytes` wait to be sent (the client reads slowly): the tail stream is
 * not pulled meanwhile, so the store falls back to reading storage for this subscriber.
 */
const awaitDrain = (buffer: SendBuffer | undefined): Effect.Effect<void, SlowConsumer> =>
  !needsDrain(buffer)
    ? Effect.void
    : Effect.callback<void>((resume) => {
      const done = () => {
        cleanup()
        resume(Effect.void)
      }
      const cleanup = () => {
        buffer.off("drain", done)
        buffer.off("close", done)
      }
      buffer.once("drain", done)
      buffer.once("close", done)
      return Effect.sync(cleanup)
    }).pipe(
      Effect.timeoutOrElse({ duration: tailDrainTimeoutMs, orElse: () => Effect.fail(new SlowConsumer()) })
    )

/** The JSON messages of one tail event: records split into messages of about `tailMessageBytesMax`. */
const eventMessages = (event: TailEvent, encoding: Encoding): Effect.Effect<Array<string>, InvalidInput> => {
  if (event._tag === "heartbeat") {
    return Effect.succeed([
      JSON.stringify({
        type: "heartbeat",
        ...(event.key !== undefined ? { key: event.key } : {}),
        ...(event.next !== undefined ? { next: event.next } : {})
      })
    ])
  }
  return Effect.map(encodeRecords(event.records, encoding), (records) => {
    const messages: Array<string> = []
    let batch: Array<RecordJson> = []
    let bytes = 0
    const flush = () => {
      if (batch.length > 0) messages.push(JSON.stringify({ type: "records", key: event.key, records: batch }))
      batch = []
      bytes = 0
    }
    for (const r of records) {
      const size = r.value.length + 64
      if (batch.length > 0 && bytes + size > tailMessageBytesMax) flush()
      batch.push(r)
      bytes += size
    }
    flush()
    return messages
  })
}

/**
 * Where tails run once their connection is upgraded: fibers in the API's scope (interrupted when it closes),
 * ended at shutdown by one fiber that waits for the shutdown signal, rather than a fiber per tail; append
 * sessions hear of the shutdown from the same watcher.
 */
interface TailHome {
  readonly scope: Scope.Scope
  /** Registers `end` to be called once the server begins to shut down; returns its removal. */
  readonly onShutdown: (end: () => void) => () => void
  /** Completes once the server begins to shut down (for a connection that waits in a fiber of its own). */
  readonly shutdown: Effect.Effect<void>
}

const makeTailHome = (shutdown: Effect.Effect<void>): Effect.Effect<TailHome, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const ends = new Set<() => void>()
    let shuttingDown = false
    yield* Effect.forkScoped(Effect.andThen(
      shutdown,
      Effect.sync(() => {
        shuttingDown = true
        for (const end of ends) end()
        ends.clear()
      })
    ))
    const onShutdown = (end: () => void) => {
      if (shuttingDown) {
        end()
        return () => {}
      }
      ends.add(end)
      return () => {
        ends.delete(end)
      }
    }
    return {
      scope,
      onShutdown,
      shutdown: Effect.callback<void>((resume) => Effect.sync(onShutdown(() => resume(Effect.void))))
    }
  })

/**
 * Upgrades to a WebSocket and sends the tail's events as JSON text messages until the client closes, the
 * server shuts down (close 1001), or the tail fails (an error message, then a close with code 4000 +
 * status).
 *
 * Once the connection is upgraded the request is answered, and the tail goes on as one fiber of its own
 * in `home.scope`, holding the socket in a scope of its own: an idle tail is that fiber, suspended in its
 * subscription's wait, and the connection, not a request in the HTTP server's pipeline. The client's close
 * and the server's shutdown interrupt it by callback (an interrupted tail closes with 1001). Messages from
 * the client are not read: the socket keeps at most 64 KiB of them, then stops reading the connection until
 * the tail ends.
 */
const serveTail = (
  request: HttpServerRequest.HttpServerRequest,
  events: Stream.Stream<TailEvent, InvalidInput | OffsetTrimmed | Unavailable>,
  encoding: Encoding,
  home: TailHome
): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
  Effect.gen(function*() {
    const socket = yield* request.upgrade
    const scope = yield* Scope.make()
    // The 101 handshake is sent when the reader is acquired.
    const opened = yield* Effect.exit(Scope.provide(Effect.andThen(socket.reader, socket.writer), scope)).pipe(
      // The request ended (the client gone) while upgrading: what was acquired goes with it.
      Effect.onInterrupt(() => Scope.close(scope, Exit.void))
    )
    if (Exit.isFailure(opened)) {
      yield* Scope.close(scope, Exit.void)
      return HttpServerResponse.empty()
    }
    const writer = opened.value
    const buffer = sendBufferOf(request)
    let ended = false
    let fiber: Fiber.Fiber<void> | undefined
    const end = () => {
      ended = true
      fiber?.interruptUnsafe()
    }
    buffer?.once("close", end)
    const removeEnd = home.onShutdown(end)
    const send = (message: string) => Effect.andThen(awaitDrain(buffer), writer.write(message))
    const pump = events.pipe(
      Stream.runForEach((event) =>
        Effect.flatMap(eventMessages(event, encoding), (messages) =>
          messages.length === 1 ? send(messages[0]!) : Effect.forEach(messages, send, { discard: true }))
      ),
      Effect.andThen(writer.write(new Socket.CloseEvent(1000, "end of stream"))),
      Effect.catch((e) => {
        if (e._tag === "SlowConsumer") return writer.write(new Socket.CloseEvent(1008, "client too slow"))
        if (e._tag === "SocketError") return Effect.void
        const answer = errorAnswer(e)
        return writer.write(JSON.stringify({ type: "error", status: answer.status, ...answer.body })).pipe(
          Effect.andThen(writer.write(new Socket.CloseEvent(tailErrorCloseCode(answer.status), e._tag)))
        )
      }),
      Effect.ignore,
      Effect.onExit((exit) => {
        buffer?.off("close", end)
        removeEnd()
        // Closes the socket: 1001 if the tail was interrupted, else after its own close message.
        return Scope.close(scope, exit)
      })
    )
    const running = yield* Effect.forkIn(pump, home.scope)
    fiber = running
    // Ended before it started (the client gone, or the server shutting down, meanwhile).
    if (ended) running.interruptUnsafe()
    // The HTTP exchange ends here, switched to the WebSocket (what request metrics and logs record).
    return HttpServerResponse.empty({ status: 101 })
  }).pipe(
    Effect.catch(() => Effect.succeed(HttpServerResponse.empty()))
  )

// -------------------------------------------------------------------------------------------------
// Append sessions
// -------------------------------------------------------------------------------------------------

type AppendBody = typeof AppendBodyUtf8.Type | typeof AppendBodyBase64.Type

const inputRecords = (body: AppendBody): Array<RecordInput> =>
  body.records.map((r) => ({
    value: typeof r.value === "string" ? utf8Encoder.encode(r.value) : r.value,
    headers: r.headers,
    eventTime: r.eventTime
  }))

const appendOptions = (body: AppendBody) => ({
  expectedOffset: body.expectedOffset,
  fencingToken: body.fencingToken,
  producerId: body.producerId,
  producerSeq: body.producerSeq
})

/** An append session's answer to a frame it cannot take: the HTTP error body with its status. */
const errorFrame = (id: number | null, e: ApiError): string => {
  const answer = errorAnswer(e)
  return JSON.stringify({ id, error: { ...answer.body, status: answer.status } })
}

/**
 * An append session: upgrades to a WebSocket and takes JSON text frames, each one append
 * (`{"id", "key", "records", "expectedOffset"?, "fencingToken"?, "producerId"?, "producerSeq"?, "encoding"?}`), many in
 * flight; answers each once it is durable (`{"id", "offsets", "next"}`) or refused (`{"id", "error"}`).
 *
 * Frames are read and validated in order, synchronously; an append the store can decide at once
 * (`appendNow`: its log's state is in memory) is decided right there and answered from the store's
 * durability callback, with no effect of its own. One that must wait (its log's state is read from
 * storage, or the store pushes back) runs in a fiber of its own, as do the later appends to its log until
 * it is decided: a log that waits holds up only itself. Answers for one log go out in the order of its
 * frames (each log keeps a queue of its unanswered appends); one sender fiber writes them. At most
 * `appendSessionAppendsMax` appends (`appendSessionBytesMax` bytes of frames) are in flight, counted until
 * their answers are written: then the server stops reading, which stops the client's sends. A frame that is
 * not valid is answered with its error (`id` null when the frame has no valid id) and appends nothing; the
 * session goes on.
 */
const serveAppendSession = (
  request: HttpServerRequest.HttpServerRequest,
  store: EventStoreShape,
  query: typeof AppendSessionQuery.Type,
  shutdown: Effect.Effect<void>
): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
  Effect.gen(function*() {
    const frameSchema = query.encoding === "base64" ? AppendFrameBase64 : AppendFrameUtf8
    const prefix = query.prefix ?? ""
    const socket = yield* request.upgrade
    const reader = yield* socket.reader
    const writer = yield* socket.writer
    const scope = yield* Effect.scope

    /** An append in flight: answered once it has its message and every earlier one to its log is answered. */
    interface InFlight {
      readonly id: number
      readonly key: string
      readonly weight: number
      message: string | undefined
    }
    const inFlight = new Set<number>()
    let bytesInFlight = 0
    /** Per log, its unanswered appends in frame order. */
    const unanswered = new Map<string, Array<InFlight>>()
    /** Per log, the decision its appends wait for (an append that could not be decided at once). */
    const undecided = new Map<string, Deferred.Deferred<void>>()
    /** Answers ready to write, in order; `done` frees an append's room once written. */
    const outbox: Array<{ readonly message: string; readonly done?: InFlight | undefined }> = []
    let wakeSender: Deferred.Deferred<void> | undefined
    /** Signalled when a written answer frees room for more appends. */
    let room: Deferred.Deferred<void> | undefined

    const post = (message: string, done?: InFlight) => {
      outbox.push({ message, done })
      if (wakeSender !== undefined) {
        const wake = wakeSender
        wakeSender = undefined
        Deferred.doneUnsafe(wake, Exit.void)
      }
    }
    /** Records an append's answer; posts every answer of its log that is now due. */
    const complete = (entry: InFlight, message: string) => {
      entry.message = message
      const queue = unanswered.get(entry.key)
      if (queue === undefined) return
      while (queue.length > 0 && queue[0]!.message !== undefined) {
        const due = queue.shift()!
        post(due.message!, due)
      }
      if (queue.length === 0) unanswered.delete(entry.key)
    }
    const answered = (id: number, result: AppendResult) => JSON.stringify({ id, offsets: result.offsets, next: result.next })

    // Answers wait while the client does not read them (its connection's send buffer is full), which holds
    // their appends in flight, which stops the reading of frames: backpressure end to end. A client that
    // reads nothing for `tailDrainTimeoutMs` is closed with 1008.
    const buffer = sendBufferOf(request)
    const tooSlow = Deferred.makeUnsafe<void>()
    /** Writes the answers due at once: one socket write for all of them (the connection is corked meanwhile). */
    const writeReady = (): Effect.Effect<void, Socket.SocketError> => {
      const ready = outbox.splice(0)
      const messages = ready.map((r) => r.message)
      buffer?.cork?.()
      return writer.writeAll(messages as [string, ...Array<string>]).pipe(
        Effect.ensuring(Effect.sync(() => {
          buffer?.uncork?.()
          for (const { done } of ready) {
            if (done === undefined) continue
            inFlight.delete(done.id)
            bytesInFlight -= done.weight
          }
          if (room !== undefined) {
            const r = room
            room = undefined
            Deferred.doneUnsafe(r, Exit.void)
          }
        }))
      )
    }
    const sender: Effect.Effect<never, Socket.SocketError> = Effect.forever(
      Effect.suspend(() => {
        if (outbox.length === 0) {
          wakeSender = Deferred.makeUnsafe<void>()
          return Deferred.await(wakeSender)
        }
        // Past the send buffer's bound, wait for the client to read (or close it as too slow).
        if (needsDrain(buffer)) return Effect.catchTag(awaitDrain(buffer), "SlowConsumer", () => Deferred.succeed(tooSlow, undefined))
        return writeReady()
      })
    )

    /** The answer of an append once it is settled. */
    const answerOf = (id: number, outcome: Exit.Exit<AppendResult, EventStoreError>): Effect.Effect<string> => {
      if (Exit.isSuccess(outcome)) return Effect.succeed(answered(id, outcome.value))
      const error = Exit.findErrorOption(outcome)
      if (Option.isSome(error)) return Effect.succeed(errorFrame(id, error.value))
      return Effect.as(
        Effect.logError("eventstore append session: unexpected failure", outcome.cause),
        JSON.stringify({ id, error: { error: "InternalError", message: "internal error; see the server log", status: 500 } })
      )
    }

    /** Validates a frame (synchronously): the append to run, or the refusal to send. */
    const validate = (data: string | Uint8Array): { readonly id: number; readonly size: number; readonly key: string; readonly append: TakenAppend } | string => {
      if (typeof data !== "string") return errorFrame(null, new InvalidInput({ field: "frame", reason: "must be a text frame holding one JSON append" }))
      const size = Buffer.byteLength(data, "utf8")
      if (size > requestBodyBytesMax) return errorFrame(null, new LimitExceeded({ field: "frame", limit: requestBodyBytesMax }))
      let json: unknown
      try {
        json = JSON.parse(data)
      } catch (e) {
        return errorFrame(null, new InvalidInput({ field: "frame", reason: `is not valid JSON (${e instanceof Error ? e.message : String(e)})` }))
      }
      const rawId = typeof json === "object" && json !== null ? (json as { readonly id?: unknown }).id : undefined
      const id = Number.isSafeInteger(rawId) && (rawId as number) >= 0 ? rawId as number : null
      if (id === null) return errorFrame(null, new InvalidInput({ field: "id", reason: "must be a non-negative integer" }))
      if (inFlight.has(id)) return errorFrame(id, new InvalidInput({ field: "id", reason: "is already in flight in this session" }))
      const raw = (json as { readonly records?: unknown }).records
      if (Array.isArray(raw) && raw.length > Limits.batchRecordsMax) return errorFrame(id, new LimitExceeded({ field: "records", limit: Limits.batchRecordsMax }))
      // A frame's own `encoding` wins over the session's.
      const encoding = (json as { readonly encoding?: unknown }).encoding
      const schema = encoding === "base64" ? AppendFrameBase64 : encoding === "utf8" ? AppendFrameUtf8 : frameSchema
      // The plain shape in one pass; anything else through the schema (and its error).
      let key: string
      let append = schema === AppendFrameUtf8 ? takeAppend(json, true) : undefined
      if (append !== undefined) {
        key = (json as { readonly key: string }).key
      } else {
        const body = decodeSync(schema, json, "frame", "field")
        if (body instanceof InvalidInput) return errorFrame(id, body)
        key = body.key
        append = { records: inputRecords(body), options: appendOptions(body) }
      }
      if (!key.startsWith(prefix)) {
        return errorFrame(id, new InvalidInput({ field: "key", reason: `must start with the session's prefix ${JSON.stringify(prefix)}` }))
      }
      return { id, size, key, append }
    }

    /**
     * Takes one frame: answers it or decides it at once (undefined), or gives the effect that starts the fiber
     * that decides it.
     */
    const frame = (data: string | Uint8Array): Effect.Effect<void> | undefined => {
      const valid = validate(data)
      if (typeof valid === "string") {
        post(valid)
        return undefined
      }
      const { id, key } = valid
      const entry: InFlight = { id, key, weight: Math.min(valid.size, Limits.appendSessionBytesMax), message: undefined }
      inFlight.add(id)
      bytesInFlight += entry.weight
      const queue = unanswered.get(key)
      if (queue === undefined) unanswered.set(key, [entry])
      else queue.push(entry)
      const { options, records } = valid.append
      const previous = undecided.get(key)
      if (previous === undefined && store.appendNow !== undefined) {
        const decided = store.appendNow(key, records, options)
        if (decided !== undefined) {
          if ("result" in decided) {
            decided.whenDurable((failure) => complete(entry, failure === undefined ? answered(id, decided.result) : errorFrame(id, failure)))
          } else {
            complete(entry, errorFrame(id, decided))
          }
          return undefined
        }
      }
      // Decided in a fiber: the log's later appends wait for this decision.
      const mine = Deferred.makeUnsafe<void>()
      undecided.set(key, mine)
      const decide = () => {
        Deferred.doneUnsafe(mine, Exit.void)
        if (undecided.get(key) === mine) undecided.delete(key)
      }
      const run = Effect.gen(function*() {
        if (previous !== undefined) yield* Deferred.await(previous)
        const queued = yield* Effect.exit(store.appendQueued(key, records, options))
        decide()
        const outcome: Exit.Exit<AppendResult, EventStoreError> = Exit.isSuccess(queued)
          ? yield* Effect.exit(Effect.as(queued.value.durable, queued.value.result))
          : Exit.failCause(queued.cause)
        complete(entry, yield* answerOf(id, outcome))
      }).pipe(Effect.ensuring(Effect.sync(decide)))
      return Effect.asVoid(Effect.forkIn(run, scope))
    }

    /** Backpressure: room for another append in flight, else wait for it (and so read no more frames). */
    const hasRoom = () => inFlight.size < Limits.appendSessionAppendsMax && bytesInFlight < Limits.appendSessionBytesMax
    const awaitRoom: Effect.Effect<void> = Effect.suspend(() => {
      if (hasRoom()) return Effect.void
      room ??= Deferred.makeUnsafe<void>()
      return Effect.andThen(Deferred.await(room), awaitRoom)
    })

    /** Takes the frames of one read from `from` on, synchronously while there is room and nothing to fork. */
    const takeFrames = (frames: ReadonlyArray<string | Uint8Array>, from: number): Effect.Effect<void> => {
      for (let i = from; i < frames.length; i++) {
        if (!hasRoom()) return Effect.andThen(awaitRoom, Effect.suspend(() => takeFrames(frames, i)))
        const fork = frame(frames[i]!)
        if (fork !== undefined) return Effect.andThen(fork, Effect.suspend(() => takeFrames(frames, i + 1)))
      }
      return Effect.void
    }

    const readLoop = Effect.forever(Effect.flatMap(reader.pull, (frames) => takeFrames(frames, 0))).pipe(Effect.ignore)
    const serverGone = Effect.andThen(shutdown, writer.write(new Socket.CloseEvent(1001, "server shutting down"))).pipe(
      Effect.ignore
    )
    const clientTooSlow = Effect.andThen(Deferred.await(tooSlow), writer.write(new Socket.CloseEvent(1008, "client too slow"))).pipe(
      Effect.ignore
    )
    yield* Effect.raceAllFirst([readLoop, Effect.ignore(sender), serverGone, clientTooSlow])
    return HttpServerResponse.empty()
  }).pipe(
    Effect.catch(() => Effect.succeed(HttpServerResponse.empty())),
    Effect.scoped
  )

// -------------------------------------------------------------------------------------------------
// Handlers
// -------------------------------------------------------------------------------------------------

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
    return yield* serveTail(request, store.tail(key, start), q.encoding ?? "utf8", home)
  })

  const tailPrefix = Effect.fnUntraced(function*(request: Request, q: typeof TailPrefixQuery.Type): Answered {
    if (!isWebSocketUpgrade(request)) return yield* new UpgradeRequired()
    return yield* serveTail(request, store.tailPrefix(q.prefix ?? ""), q.encoding ?? "utf8", home)
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
