/**
 * The JSON of the HTTP API: the `Schema`s its query parameters, request bodies and append-session frames
 * are decoded with (a failure is the `InvalidInput` the API answers with, naming the field or parameter),
 * append bodies as the store's input, and the answers' encodings: log metadata and records as JSON (values
 * as UTF-8 text or base64), a read as an Arrow IPC stream.
 */
import * as Arrow from "apache-arrow"
import { Effect, Exit, Option, Schema, SchemaGetter, SchemaIssue } from "effect"
import { Base64 } from "effect/encoding"
import { InvalidInput, type LogMeta, type LogRecord, type ReadResult, type RecordInput, type Retention } from "../EventStore.ts"
import * as Limits from "../limits.ts"
import * as K from "../internal/keys.ts"

export const utf8Encoder = new TextEncoder()
export const utf8Decoder = new TextDecoder("utf-8", { fatal: true })

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

export const Encoding = Schema.Literals(["utf8", "base64"])
export type Encoding = typeof Encoding.Type

export const EncodingQuery = Schema.Struct({ encoding: Schema.optionalKey(Encoding) })
export const NoQuery = Schema.Struct({})

export const ListQuery = Schema.Struct({
  prefix: Schema.optionalKey(Schema.String),
  cursor: Schema.optionalKey(Schema.String),
  limit: Schema.optionalKey(QueryInt)
})

export const ReadQuery = Schema.Struct({
  from: Schema.optionalKey(QueryInt),
  fromTime: Schema.optionalKey(QueryInt),
  limit: Schema.optionalKey(QueryInt),
  maxBytes: Schema.optionalKey(QueryInt),
  encoding: Schema.optionalKey(Encoding)
})

export const TailQuery = Schema.Struct({
  from: Schema.optionalKey(QueryInt),
  fromTime: Schema.optionalKey(QueryInt),
  now: Schema.optionalKey(Schema.Literals(["", "true"])),
  encoding: Schema.optionalKey(Encoding)
})

/** A key prefix: empty, or checked as keys are (`nameProblem`: well-formed UTF-8, no NUL, at most logKeyBytesMax bytes). */
const KeyPrefix = Schema.String.check(
  Schema.makeFilter((s: string) => s === "" || (K.nameProblem(s, Limits.logKeyBytesMax) ?? true))
)

export const TailPrefixQuery = Schema.Struct({
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
export const AppendBodyUtf8 = appendBody(WellFormedString)
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
export const AppendBodyBase64 = appendBody(CanonicalBase64)

/** One append of an append session: the HTTP append's body with the client's `id` and the log's `key`. */
const appendFrame = <V extends Schema.Top>(value: V) =>
  Schema.Struct({ id: Offset, key: Schema.String, encoding: Schema.optionalKey(Encoding), ...appendBody(value).fields })
export const AppendFrameUtf8 = appendFrame(WellFormedString)
export const AppendFrameBase64 = appendFrame(CanonicalBase64)

export const AppendSessionQuery = Schema.Struct({
  prefix: Schema.optionalKey(KeyPrefix),
  encoding: Schema.optionalKey(Encoding)
})

export const TrimBody = Schema.Struct({ before: Offset })
export const FencingTokenBody = Schema.Struct({
  token: Schema.NullOr(WellFormedString),
  current: Schema.optionalKey(WellFormedString)
})
export const RetentionBody = Schema.NullOr(
  Schema.Struct({ maxAgeMs: Schema.optionalKey(Offset), maxBytes: Schema.optionalKey(Offset) })
)

export const CommitBody = Schema.Struct({ offset: Offset, metadata: Schema.optionalKey(Schema.String) })

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
export const decodeSync = <S extends Schema.Top & { readonly DecodingServices: never }>(
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

export const decodeWith = <S extends Schema.Top & { readonly DecodingServices: never }>(
  schema: S,
  input: unknown,
  root: string,
  what: "field" | "parameter"
): Effect.Effect<S["Type"], InvalidInput> =>
  Schema.decodeUnknownEffect(schema)(input, parseOptions).pipe(
    Effect.mapError((e) => toInvalidInput(e, root, what))
  )

/** A route's query parameters: the ones it knows, each optional or required, each of one type. */
export type QuerySchema = Schema.Struct<Schema.Struct.Fields> & { readonly DecodingServices: never }

/**
 * A route's query, decoded before its handler runs: an unknown parameter (`?force=true` on a DELETE,
 * `?__proto__=1` included) or a repeated one is a 400 and nothing happens.
 */
export const decodeQuery = <S extends QuerySchema>(schema: S, query: string): Effect.Effect<S["Type"], InvalidInput> =>
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

// -------------------------------------------------------------------------------------------------
// Append bodies as the store's input
// -------------------------------------------------------------------------------------------------

type AppendBody = typeof AppendBodyUtf8.Type | typeof AppendBodyBase64.Type

export const inputRecords = (body: AppendBody): Array<RecordInput> =>
  body.records.map((r) => ({
    value: typeof r.value === "string" ? utf8Encoder.encode(r.value) : r.value,
    headers: r.headers,
    eventTime: r.eventTime
  }))

export const appendOptions = (body: AppendBody) => ({
  expectedOffset: body.expectedOffset,
  fencingToken: body.fencingToken,
  producerId: body.producerId,
  producerSeq: body.producerSeq
})

// -------------------------------------------------------------------------------------------------
// Output
// -------------------------------------------------------------------------------------------------

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

export interface RecordJson {
  readonly offset: number
  readonly timestamp: number
  readonly eventTime?: number
  readonly headers: Readonly<Record<string, string>>
  readonly value: string
}

/** Records as JSON with their values in `encoding`; text that is not UTF-8 is refused, not mangled. */
export const encodeRecords = (
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
