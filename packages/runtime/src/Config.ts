/**
 * Runtime configuration: which object store to open and where to serve HTTP. Read from environment
 * variables (all optional); the defaults run everything embedded on a local directory.
 *
 * | variable | default | meaning |
 * |---|---|---|
 * | `OPENDATA_HOST` | `0.0.0.0` | address the HTTP server binds |
 * | `OPENDATA_PORT` | `9095` | HTTP port (9090 is Prometheus's own) |
 * | `OPENDATA_STORE` | `local` | `local`, `s3`, or `memory` (nothing survives a restart) |
 * | `OPENDATA_DATA_DIR` | `./data` | root directory of the `local` store |
 * | `OPENDATA_S3_BUCKET`, `_ENDPOINT`, `_REGION`, `_PREFIX` | | the `s3` store |
 * | `OPENDATA_S3_ACCESS_KEY_ID`, `_SECRET_ACCESS_KEY` | SDK default chain | S3 credentials |
 * | `OPENDATA_S3_FORCE_PATH_STYLE`, `_IF_MATCH_UNQUOTED` | `false` | S3 compatibility switches |
 * | `OPENDATA_STORE_PREFLIGHT` | `true` | check on open that the store honours conditional writes |
 * | `OPENDATA_ROLE` | `all` | `all`, or one role over a shared `s3` store: `writer`, `reader`, `compactor` |
 * | `OPENDATA_LOG_LEVEL` | `info` | `debug` (every request is access-logged), `info`, `warn`, `error` |
 * | `OPENDATA_LOG_FORMAT` | `logfmt` | `logfmt` or `json`, one line per entry on stderr |
 * | `OPENDATA_FLUSH_INTERVAL_MS` | `100ms` on s3, `0` otherwise | least time between two WAL writes (group commit) |
 * | `OPENDATA_HEAP_GROWTH_PERCENT` | `100` | how far the JavaScript heap may grow past what the last full collection kept, in percent (Go's `GOGC`); `0`: V8's own choice (up to 300%) |
 * | `OPENDATA_TSDB_RETENTION_MS` | `15d` | TSDB samples older than this are deleted |
 * | `OPENDATA_TSDB_QUERY_TIMEOUT_MS` | `2m` | longest a PromQL query may run (a request's `timeout` may only shorten it) |
 * | `OPENDATA_TSDB_QUERY_SAMPLES_MAX` | `50000000` | most samples one PromQL query may select |
 * | `OPENDATA_TSDB_ENABLE_FEATURES` | none | experimental PromQL, as Prometheus's `--enable-feature` (comma-separated): `promql-experimental-functions`, `promql-duration-expr`, `promql-extended-range-selectors`, `promql-binop-fill-modifiers`, `use-start-timestamps` (also keeps samples' start timestamps) |
 * | `OPENDATA_TSDB_OTLP_TRANSLATION_STRATEGY` | `UnderscoreEscapingWithSuffixes` | OTLP metric and attribute names to Prometheus names: escaped with unit and type suffixes, `UnderscoreEscapingWithoutSuffixes`, `NoUTF8EscapingWithSuffixes` (UTF-8 names kept, suffixes added) or `NoTranslation` (names as sent) |
 * | `OPENDATA_TSDB_OTLP_PROMOTE_RESOURCE_ATTRIBUTES` | none | OTLP resource attributes (comma-separated) copied onto every series of their resource |
 * | `OPENDATA_TSDB_OTLP_KEEP_IDENTIFYING_RESOURCE_ATTRIBUTES` | `false` | keep `service.name`, `service.namespace`, `service.instance.id` on `target_info` too |
 * | `OPENDATA_TSDB_OTLP_CONVERT_DELTA_TO_CUMULATIVE` | `false` | convert OTLP delta sums and histograms to cumulative (running totals in memory, per process), instead of refusing them |
 * | `OPENDATA_EVENTSTORE_TAIL_HEARTBEAT_MS` | `30s` | an idle EventStore tail sends a heartbeat this often |
 * | `OPENDATA_EVENTSTORE_RETENTION_INTERVAL_MS` | `1m` | how often EventStore retention runs |
 * | `OPENDATA_EVENTSTORE_RETENTION_MAX_AGE_MS`, `_MAX_BYTES` | none | retention of logs that have none of their own |
 * | `OPENDATA_AUTH_FILE` | none | a YAML or JSON file of API tokens (see Auth.ts); relative to the working directory |
 * | `OPENDATA_AUTH_TOKENS` | none | API tokens as YAML or JSON text, the same list; with the file's, both count |
 *
 * Without tokens the API is open to whoever can connect (and the server says so at start).
 *
 * Durations (the `_MS` settings) are written as Prometheus writes them (`15d`, `1h30m`, `90s`, `500ms`) or
 * as a plain number of milliseconds; sizes as `512MiB`, `1GB`, `64KiB` or a plain number of bytes (see
 * `parseDurationMs`, `parseBytes`). An invalid value fails `load` with an `InvalidConfig` naming the setting.
 */
import * as path from "node:path"
import { Config, ConfigProvider, Effect, Option, Redacted, Schema, SchemaIssue, SchemaTransformation } from "effect"
import { Limits as CoreLimits } from "@opendata/core"
import type { ObjectStore } from "@opendata/core"
import { Limits as EventStoreLimits } from "@opendata/eventstore"
import type { EventStoreSettings } from "@opendata/eventstore"
import { Limits as TsdbLimits, Otlp as TsdbOtlp, promqlFeatures } from "@opendata/tsdb"
import type { PromqlFeature } from "@opendata/tsdb"
import * as Auth from "./Auth.ts"
import type { TransformConfig } from "./Transforms.ts"

export const defaultPort = 9095

/**
 * What a process does. `all` runs everything in one process (the embedded default). Split over one shared
 * bucket: `writer` takes ingest (and serves reads), `reader` follows the manifests and serves queries and
 * tails, `compactor` compacts and collects garbage under its own epoch.
 */
export type Role = "all" | "writer" | "reader" | "compactor"
export const roles: ReadonlyArray<Role> = ["all", "writer", "reader", "compactor"]

/** A configuration that does not parse or cannot run, named by field, value (if any) and what is allowed. */
export class InvalidConfig extends Schema.TaggedError<InvalidConfig>()("InvalidConfig", {
  field: Schema.String,
  value: Schema.String,
  allowed: Schema.String
}) {
  override get message() {
    return this.value === ""
      ? `invalid configuration: ${this.field}: ${this.allowed}`
      : `invalid configuration: ${this.field}=${this.value}: ${this.allowed}`
  }
}

export type StoreConfig =
  | { readonly kind: "memory" }
  | { readonly kind: "local"; readonly root: string }
  | { readonly kind: "s3"; readonly settings: ObjectStore.S3Settings }

/** The least severity logged: `debug` adds every request to the access log (see `Server.layerLogging`). */
export type LogLevel = "debug" | "info" | "warn" | "error"
export const logLevels: ReadonlyArray<LogLevel> = ["debug", "info", "warn", "error"]

/** How log entries are written: logfmt (`key=value` pairs, Prometheus's default) or JSON, one per line. */
export type LogFormat = "logfmt" | "json"
export const logFormats: ReadonlyArray<LogFormat> = ["logfmt", "json"]

export interface RuntimeConfig {
  readonly host: string
  readonly port: number
  readonly store: StoreConfig
  readonly preflight: boolean
  readonly role: Role
  /** Default `info`. */
  readonly logLevel?: LogLevel | undefined
  /** Default `logfmt`. */
  readonly logFormat?: LogFormat | undefined
  /** Least time between the starts of two WAL writes; defaults by store (see `flushIntervalFor`). */
  readonly flushIntervalMs?: number | undefined
  /** How far the JavaScript heap grows past the last full collection's live data, in percent (default `heapGrowthPercentDefault`; 0: V8's own choice). */
  readonly heapGrowthPercent?: number | undefined
  /** Each product's Db block cache, in MiB (default `blockCacheMbDefault`). */
  readonly blockCacheMb?: number | undefined
  readonly tsdbRetentionMs?: number | undefined
  readonly tsdbQueryTimeoutMs?: number | undefined
  readonly tsdbQuerySamplesMax?: number | undefined
  /** Experimental PromQL switched on (Prometheus's `--enable-feature` names). */
  readonly tsdbFeatures?: ReadonlyArray<TsdbFeature> | undefined
  /** How OTLP metrics are translated; default `TsdbOtlp.defaultSettings`. */
  readonly tsdbOtlp?: TsdbOtlp.OtlpSettings | undefined
  readonly eventStore: EventStoreSettings
  /** API tokens (see Auth.ts); none: the API is open. */
  readonly auth?: AuthConfig | undefined
  /** Transforms to run where the EventStore is written (see Transforms.ts). */
  readonly transforms?: ReadonlyArray<TransformConfig> | undefined
}

/** The API tokens, from `OPENDATA_AUTH_TOKENS` and the file `OPENDATA_AUTH_FILE` names, together. */
export interface AuthConfig {
  readonly tokens: ReadonlyArray<Auth.Token>
  /** The tokens file, if one was given. */
  readonly file?: string | undefined
}

/**
 * The JavaScript heap may grow to twice what the last full collection kept, as Go's default (`GOGC=100`)
 * lets Prometheus's. Left to itself, V8 on a machine with much memory lets the heap grow to four times that,
 * and keeps the pages a collection frees for reuse rather than giving them back while the process is busy:
 * the process's resident memory then follows the largest heap it ever had. Measured on `npm run
 * bench:promql` (10,000 series x 6 h): peak RSS 0.77 GB with V8's choice, 0.58 GB at 100%, with no change in
 * ingest CPU that the machine's noise lets us see.
 */
export const heapGrowthPercentDefault = 100

/** The block cache of each product's Db, in MiB, unless configured: the Db's own default. */
export const blockCacheMbDefault = CoreLimits.blockCacheBytes / 2 ** 20

/**
 * The least time between the starts of two WAL writes: a cost bound, not a latency floor. On S3 every WAL
 * object is a paid PUT, so writes gather for 100 ms (at most 10 PUTs a second). On a local disk (or in
 * memory) a WAL write costs an fsync and nothing else, so none waits for a timer: a write alone is written
 * at once, and writes that arrive while one is in flight ride together in the next (group commit).
 */
export const flushIntervalFor = (config: Pick<RuntimeConfig, "store" | "flushIntervalMs">): number =>
  config.flushIntervalMs ?? (config.store.kind === "s3" ? 100 : 0)

const s3Config: Config.Config<StoreConfig> = Config.all({
  bucket: Config.NonEmptyString("OPENDATA_S3_BUCKET"),
  endpoint: Config.option(Config.NonEmptyString("OPENDATA_S3_ENDPOINT")),
  region: Config.String("OPENDATA_S3_REGION").pipe(Config.withDefault("us-east-1")),
  prefix: Config.String("OPENDATA_S3_PREFIX").pipe(Config.withDefault("")),
  accessKeyId: Config.option(Config.NonEmptyString("OPENDATA_S3_ACCESS_KEY_ID")),
  secretAccessKey: Config.option(Config.Redacted("OPENDATA_S3_SECRET_ACCESS_KEY")),
  forcePathStyle: Config.Boolean("OPENDATA_S3_FORCE_PATH_STYLE").pipe(Config.withDefault(false)),
  ifMatchUnquoted: Config.Boolean("OPENDATA_S3_IF_MATCH_UNQUOTED").pipe(Config.withDefault(false))
}).pipe(
  Config.map((c): StoreConfig => ({
    kind: "s3",
    settings: {
      bucket: c.bucket,
      region: c.region,
      prefix: c.prefix,
      forcePathStyle: c.forcePathStyle,
      ifMatchUnquoted: c.ifMatchUnquoted,
      ...(Option.isSome(c.endpoint) ? { endpoint: c.endpoint.value } : {}),
      ...(Option.isSome(c.accessKeyId) && Option.isSome(c.secretAccessKey)
        ? { credentials: { accessKeyId: c.accessKeyId.value, secretAccessKey: Redacted.value(c.secretAccessKey.value) } }
        : {})
    }
  }))
)

const storeConfig: Config.Config<StoreConfig> = Config.Literals(["local", "s3", "memory"], "OPENDATA_STORE").pipe(
  Config.withDefault("local" as const),
  Config.flatMap((kind): Config.Config<StoreConfig> => {
    switch (kind) {
      case "memory":
        return Config.succeed({ kind: "memory" })
      case "local":
        return Config.String("OPENDATA_DATA_DIR").pipe(
          Config.withDefault("./data"),
          Config.map((root): StoreConfig => ({ kind: "local", root }))
        )
      case "s3":
        return s3Config
    }
  })
)

// -------------------------------------------------------------------------------------------------
// Durations and sizes
// -------------------------------------------------------------------------------------------------

/** Milliseconds per duration unit, in the order Prometheus requires them (largest first). */
const durationUnits = [["y", 365 * 86_400_000], ["w", 7 * 86_400_000], ["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], [
  "s",
  1_000
], ["ms", 1]] as const
const durationPattern = /^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$/

/**
 * A duration in milliseconds, written as Prometheus writes one (`15d`, `1h30m`, `90s`, `500ms`: units y,
 * w, d, h, m, s, ms, each at most once, largest first) or as a plain integer of milliseconds (what every
 * `_MS` setting took before); `undefined` if the text is neither.
 */
export const parseDurationMs = (text: string): number | undefined => {
  const t = text.trim()
  if (/^\d+$/.test(t)) return Number.isSafeInteger(Number(t)) ? Number(t) : undefined
  const match = t === "" ? null : durationPattern.exec(t)
  if (match === null) return undefined
  let total = 0
  durationUnits.forEach(([, ms], i) => {
    if (match[i + 1] !== undefined) total += Number(match[i + 1]) * ms
  })
  return Number.isSafeInteger(total) ? total : undefined
}

/** Bytes per size unit: decimal (`KB` = 1000) and binary (`KiB` = 1024), case-insensitive. */
const sizeUnits: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40
}

/**
 * A size in bytes: `512MiB`, `1GB`, `64KiB`, `1.5GiB` (KB, MB, GB, TB are powers of 1000; KiB, MiB, GiB,
 * TiB powers of 1024), or a plain integer of bytes; `undefined` if the text is neither.
 */
export const parseBytes = (text: string): number | undefined => {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]+)?$/i.exec(text.trim())
  if (match === null) return undefined
  const unit = match[2] === undefined ? 1 : sizeUnits[match[2].toLowerCase()]
  if (unit === undefined || (match[2] === undefined && match[1]!.includes("."))) return undefined
  const bytes = Math.round(Number(match[1]) * unit)
  return Number.isSafeInteger(bytes) ? bytes : undefined
}

/** A duration in Prometheus's notation, for reading it back: `15d`, `1h30m`, `500ms`; `0s` for zero. */
export const formatDurationMs = (ms: number): string => {
  if (ms === 0) return "0s"
  let rest = ms
  let text = ""
  for (const [unit, unitMs] of durationUnits) {
    if (unit === "y" || unit === "w") continue
    const n = Math.floor(rest / unitMs)
    if (n > 0) text += `${n}${unit}`
    rest -= n * unitMs
  }
  return text
}

/** A size in the largest binary unit that divides it (`1GiB`, `64KiB`), else in bytes. */
export const formatBytes = (bytes: number): string => {
  for (const unit of ["TiB", "GiB", "MiB", "KiB"]) {
    const size = sizeUnits[unit.toLowerCase()]!
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`
  }
  return `${bytes}B`
}

export const durationExpected = "a duration such as 15d, 1h30m, 90s or 500ms (a plain number is milliseconds)"
export const sizeExpected = "a size such as 512MiB, 1GB or 64KiB (a plain number is bytes)"

/** A setting's text decoded by `parse`, failing with "must be <expected>" and the value. */
const textCodec = (expected: string, parse: (text: string) => number | undefined) =>
  Schema.String.pipe(Schema.decodeTo(
    Schema.Number,
    SchemaTransformation.transformEffect({
      decode: (text: string) => {
        const value = parse(text)
        return value === undefined
          ? Effect.fail(new SchemaIssue.InvalidValue({ message: `must be ${expected}` }))
          : Effect.succeed(value)
      },
      encode: (value: number) => Effect.succeed(String(value))
    })
  ))

/** A duration setting (see `parseDurationMs`) in milliseconds. */
export const DurationMs = textCodec(durationExpected, parseDurationMs)
/** A size setting (see `parseBytes`) in bytes. */
export const Bytes = textCodec(sizeExpected, parseBytes)

const positive = Schema.isGreaterThan(0, { message: "must be more than 0" })
const optional = <A>(codec: Schema.Codec<A, string>, name: string) => Config.option(Config.schema(codec, name))
const positiveDuration = (name: string) => optional(DurationMs.check(positive), name)
const positiveSize = (name: string) => optional(Bytes.check(positive), name)
const positiveInt = (name: string) => optional(Schema.NumberFromString.check(Schema.isInt(), positive), name)

// -------------------------------------------------------------------------------------------------
// The settings
// -------------------------------------------------------------------------------------------------

const eventStoreConfig: Config.Config<EventStoreSettings> = Config.all({
  tailHeartbeatMs: positiveDuration("OPENDATA_EVENTSTORE_TAIL_HEARTBEAT_MS"),
  retentionIntervalMs: positiveDuration("OPENDATA_EVENTSTORE_RETENTION_INTERVAL_MS"),
  maxAgeMs: positiveDuration("OPENDATA_EVENTSTORE_RETENTION_MAX_AGE_MS"),
  maxBytes: positiveSize("OPENDATA_EVENTSTORE_RETENTION_MAX_BYTES")
}).pipe(
  Config.map((c): EventStoreSettings => ({
    ...(Option.isSome(c.tailHeartbeatMs) ? { tailHeartbeatMs: c.tailHeartbeatMs.value } : {}),
    ...(Option.isSome(c.retentionIntervalMs) ? { retentionIntervalMs: c.retentionIntervalMs.value } : {}),
    ...(Option.isSome(c.maxAgeMs) || Option.isSome(c.maxBytes)
      ? {
        defaultRetention: {
          ...(Option.isSome(c.maxAgeMs) ? { maxAgeMs: c.maxAgeMs.value } : {}),
          ...(Option.isSome(c.maxBytes) ? { maxBytes: c.maxBytes.value } : {})
        }
      }
      : {})
  }))
)

/** Prometheus's `--enable-feature` names this server knows (experimental PromQL). */
export const tsdbFeatures = promqlFeatures
export type TsdbFeature = PromqlFeature

const featureList = Schema.String.pipe(
  Schema.decodeTo(
    Schema.Array(Schema.Literals(tsdbFeatures)),
    SchemaTransformation.transform({
      decode: (text: string): ReadonlyArray<TsdbFeature> => text.split(",").map((f) => f.trim()).filter((f) => f !== "") as Array<TsdbFeature>,
      encode: (list: ReadonlyArray<TsdbFeature>) => list.join(",")
    })
  )
)

const otlpConfig: Config.Config<TsdbOtlp.OtlpSettings | undefined> = Config.all({
  translationStrategy: Config.option(Config.Literals(TsdbOtlp.translationStrategies, "OPENDATA_TSDB_OTLP_TRANSLATION_STRATEGY")),
  promote: Config.option(Config.String("OPENDATA_TSDB_OTLP_PROMOTE_RESOURCE_ATTRIBUTES")),
  keepIdentifying: Config.option(Config.Boolean("OPENDATA_TSDB_OTLP_KEEP_IDENTIFYING_RESOURCE_ATTRIBUTES")),
  convertDelta: Config.option(Config.Boolean("OPENDATA_TSDB_OTLP_CONVERT_DELTA_TO_CUMULATIVE"))
}).pipe(
  Config.map((c) =>
    Option.isNone(c.translationStrategy) && Option.isNone(c.promote) && Option.isNone(c.keepIdentifying) && Option.isNone(c.convertDelta)
      ? undefined
      : {
        translationStrategy: Option.getOrElse(c.translationStrategy, () => TsdbOtlp.defaultSettings.translationStrategy),
        promoteResourceAttributes: Option.match(c.promote, {
          onNone: () => [],
          onSome: (list) => list.split(",").map((a) => a.trim()).filter((a) => a !== "")
        }),
        keepIdentifyingResourceAttributes: Option.getOrElse(c.keepIdentifying, () => false),
        convertDeltaToCumulative: Option.getOrElse(c.convertDelta, () => false)
      }
  )
)

/** The runtime configuration from the environment. */
export const fromEnv: Config.Config<RuntimeConfig> = Config.all({
  host: Config.String("OPENDATA_HOST").pipe(Config.withDefault("0.0.0.0")),
  port: Config.Port("OPENDATA_PORT").pipe(Config.withDefault(defaultPort)),
  store: storeConfig,
  preflight: Config.Boolean("OPENDATA_STORE_PREFLIGHT").pipe(Config.withDefault(true)),
  role: Config.Literals(roles, "OPENDATA_ROLE").pipe(Config.withDefault("all" as const)),
  logLevel: Config.Literals(logLevels, "OPENDATA_LOG_LEVEL").pipe(Config.withDefault("info" as const)),
  logFormat: Config.Literals(logFormats, "OPENDATA_LOG_FORMAT").pipe(Config.withDefault("logfmt" as const)),
  flushIntervalMs: optional(DurationMs, "OPENDATA_FLUSH_INTERVAL_MS"),
  heapGrowthPercent: optional(Schema.NumberFromString.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0, { message: "must be 0 or more" })), "OPENDATA_HEAP_GROWTH_PERCENT"),
  blockCacheMb: optional(Schema.NumberFromString.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(1, { message: "must be 1 or more" })), "OPENDATA_BLOCK_CACHE_MB"),
  tsdbRetentionMs: positiveDuration("OPENDATA_TSDB_RETENTION_MS"),
  tsdbQueryTimeoutMs: positiveDuration("OPENDATA_TSDB_QUERY_TIMEOUT_MS"),
  tsdbQuerySamplesMax: positiveInt("OPENDATA_TSDB_QUERY_SAMPLES_MAX"),
  tsdbOtlp: otlpConfig,
  tsdbFeatures: optional(featureList, "OPENDATA_TSDB_ENABLE_FEATURES"),
  eventStore: eventStoreConfig
}).pipe(
  Config.map(({ blockCacheMb, flushIntervalMs, heapGrowthPercent, tsdbFeatures, tsdbOtlp, tsdbQuerySamplesMax, tsdbQueryTimeoutMs, tsdbRetentionMs, ...c }): RuntimeConfig => ({
    ...c,
    ...(Option.isSome(tsdbFeatures) && tsdbFeatures.value.length > 0 ? { tsdbFeatures: tsdbFeatures.value } : {}),
    ...(tsdbOtlp !== undefined ? { tsdbOtlp } : {}),
    ...(Option.isSome(flushIntervalMs) ? { flushIntervalMs: flushIntervalMs.value } : {}),
    ...(Option.isSome(heapGrowthPercent) ? { heapGrowthPercent: heapGrowthPercent.value } : {}),
    ...(Option.isSome(blockCacheMb) ? { blockCacheMb: blockCacheMb.value } : {}),
    ...(Option.isSome(tsdbRetentionMs) ? { tsdbRetentionMs: tsdbRetentionMs.value } : {}),
    ...(Option.isSome(tsdbQueryTimeoutMs) ? { tsdbQueryTimeoutMs: tsdbQueryTimeoutMs.value } : {}),
    ...(Option.isSome(tsdbQuerySamplesMax) ? { tsdbQuerySamplesMax: tsdbQuerySamplesMax.value } : {})
  }))
)

/** Checks what the fields cannot check one by one. */
export const validate = (config: RuntimeConfig): Effect.Effect<RuntimeConfig, InvalidConfig> =>
  config.role !== "all" && config.store.kind !== "s3"
    ? Effect.fail(
      new InvalidConfig({
        field: "OPENDATA_ROLE",
        value: config.role,
        allowed: `a role other than "all" needs a store that processes share: OPENDATA_STORE=s3 (the ${config.store.kind} store belongs to one process)`
      })
    )
    : Effect.succeed(config)

const issueFormatter = SchemaIssue.makeFormatterStandardSchemaV1()

/**
 * A `ConfigError` as an `InvalidConfig`: the setting it is about (the first in its path), the value it
 * has in the provider (secrets are not repeated), and what is wrong with it.
 */
const explain = (error: Config.ConfigError) =>
  Effect.gen(function*() {
    if (error.cause._tag !== "SchemaError") return new InvalidConfig({ field: "configuration", value: "", allowed: error.message })
    const issue = issueFormatter(error.cause.issue).issues[0]
    const field = String((issue?.path ?? [])[0] ?? "configuration")
    const provider = yield* ConfigProvider.ConfigProvider
    const node = yield* provider.load([field]).pipe(Effect.orElseSucceed(() => undefined))
    if (node === undefined) return new InvalidConfig({ field, value: "", allowed: "must be set" })
    const raw = node._tag === "Value" ? node.value : ""
    return new InvalidConfig({ field, value: /SECRET|TOKEN/.test(field) ? "<redacted>" : raw, allowed: issue?.message ?? "is invalid" })
  })

/**
 * The API tokens: `OPENDATA_AUTH_TOKENS` (YAML or JSON text) and the file `OPENDATA_AUTH_FILE` names, both
 * if both are set. An error names the setting and the problem, never a secret.
 */
export const loadAuth: Effect.Effect<AuthConfig, InvalidConfig | Config.ConfigError> = Effect.gen(function*() {
  const file = yield* Config.option(Config.NonEmptyString("OPENDATA_AUTH_FILE"))
  const inline = yield* Config.option(Config.Redacted("OPENDATA_AUTH_TOKENS"))
  const invalid = (field: string, value: string) => (e: Auth.InvalidTokens) => new InvalidConfig({ field, value, allowed: e.message })
  const fromText = Option.isSome(inline)
    ? yield* Auth.parseTokens(Redacted.value(inline.value)).pipe(Effect.mapError(invalid("OPENDATA_AUTH_TOKENS", "")))
    : []
  const fromFile = Option.isSome(file)
    ? yield* Auth.readTokensFile(file.value).pipe(Effect.mapError(invalid("OPENDATA_AUTH_FILE", file.value)))
    : []
  const tokens = yield* Auth.checkUnique([...fromText, ...fromFile]).pipe(
    Effect.mapError((e) => new InvalidConfig({ field: "auth", value: "", allowed: e.message }))
  )
  return { tokens, ...(Option.isSome(file) ? { file: file.value } : {}) }
})

/**
 * The transforms `OPENDATA_TRANSFORMS` lists (JSON: `[{ name, from | log, module }]`; a relative module path
 * resolves from the working directory, or, written in the configuration file, from the file's directory).
 */
export const loadTransforms: Effect.Effect<ReadonlyArray<TransformConfig>, InvalidConfig | Config.ConfigError> = Effect.gen(function*() {
  const text = yield* Config.option(Config.String("OPENDATA_TRANSFORMS"))
  if (Option.isNone(text) || text.value.trim() === "") return []
  const invalid = (allowed: string) => new InvalidConfig({ field: "OPENDATA_TRANSFORMS", value: "", allowed })
  let raw: unknown
  try {
    raw = JSON.parse(text.value)
  } catch (e) {
    return yield* invalid(`must be a JSON list of { name, from | log, module }: ${(e as Error).message}`)
  }
  if (!Array.isArray(raw)) return yield* invalid("must be a list of { name, from | log, module }")
  const names = new Set<string>()
  const out: Array<TransformConfig> = []
  for (const [i, t] of raw.entries()) {
    const at = `transforms[${i}]`
    if (typeof t !== "object" || t === null) return yield* invalid(`${at} must be a mapping { name, from | log, module }`)
    const { from, log, module, name, ...rest } = t as Record<string, unknown>
    const unknown = Object.keys(rest)[0]
    if (unknown !== undefined) return yield* invalid(`${at}.${unknown} is not a known field (name, from, log, module)`)
    if (typeof name !== "string" || name === "") return yield* invalid(`${at}.name must be a non-empty string`)
    if (names.has(name)) return yield* invalid(`${at}.name ${JSON.stringify(name)} is taken by another transform`)
    names.add(name)
    if ((from === undefined) === (log === undefined)) return yield* invalid(`${at} must have exactly one of from (a key prefix) and log (one key)`)
    if (from !== undefined && typeof from !== "string") return yield* invalid(`${at}.from must be a string`)
    if (log !== undefined && (typeof log !== "string" || log === "")) return yield* invalid(`${at}.log must be a non-empty string`)
    if (typeof module !== "string" || module === "") return yield* invalid(`${at}.module must be the path of a JavaScript module`)
    out.push({ name, source: from !== undefined ? { prefix: from as string } : { log: log as string }, module: path.resolve(module) })
  }
  return out
})

/** Reads `fromEnv`, the API tokens and the transforms, and validates them, for use where a plain effect is handier than a `Config`. */
export const load = Effect.gen(function*() {
  const config = yield* fromEnv.pipe(Effect.catchTag("ConfigError", (e) => Effect.flatMap(explain(e), Effect.fail)))
  const auth = yield* loadAuth.pipe(Effect.catchTag("ConfigError", (e) => Effect.flatMap(explain(e), Effect.fail)))
  const transforms = yield* loadTransforms.pipe(Effect.catchTag("ConfigError", (e) => Effect.flatMap(explain(e), Effect.fail)))
  return yield* validate({
    ...config,
    ...(auth.tokens.length === 0 && auth.file === undefined ? {} : { auth }),
    ...(transforms.length === 0 ? {} : { transforms })
  })
})

/**
 * The effective configuration, every default filled in, as flat `name=value` pairs for the startup log:
 * durations and sizes in the notation they may be written in, the S3 secret access key redacted, the API
 * tokens by name, scope and prefix (never their secrets).
 */
export const describe = (config: RuntimeConfig): Record<string, string | number | boolean> => {
  const store = config.store
  const retention = config.eventStore.defaultRetention
  return {
    host: config.host,
    port: config.port,
    store: store.kind,
    ...(store.kind === "local" ? { dataDir: store.root } : {}),
    ...(store.kind === "s3"
      ? {
        "s3.bucket": store.settings.bucket,
        "s3.endpoint": store.settings.endpoint ?? "AWS",
        "s3.region": store.settings.region ?? "",
        "s3.prefix": store.settings.prefix ?? "",
        "s3.forcePathStyle": store.settings.forcePathStyle ?? false,
        "s3.ifMatchUnquoted": store.settings.ifMatchUnquoted ?? false,
        "s3.accessKeyId": store.settings.credentials?.accessKeyId ?? "SDK default chain",
        "s3.secretAccessKey": store.settings.credentials === undefined ? "SDK default chain" : "<redacted>"
      }
      : {}),
    preflight: config.preflight,
    role: config.role,
    "log.level": config.logLevel ?? "info",
    "log.format": config.logFormat ?? "logfmt",
    flushInterval: formatDurationMs(flushIntervalFor(config)),
    heapGrowthPercent: config.heapGrowthPercent ?? heapGrowthPercentDefault,
    blockCacheMb: config.blockCacheMb ?? blockCacheMbDefault,
    "tsdb.retention": formatDurationMs(config.tsdbRetentionMs ?? TsdbLimits.retentionMsDefault),
    "tsdb.queryTimeout": formatDurationMs(config.tsdbQueryTimeoutMs ?? TsdbLimits.queryTimeoutMsDefault),
    "tsdb.querySamplesMax": config.tsdbQuerySamplesMax ?? TsdbLimits.querySamplesMax,
    "tsdb.enableFeatures": config.tsdbFeatures === undefined ? "none" : config.tsdbFeatures.join(","),
    "tsdb.otlp.translationStrategy": (config.tsdbOtlp ?? TsdbOtlp.defaultSettings).translationStrategy,
    "tsdb.otlp.promoteResourceAttributes": (config.tsdbOtlp ?? TsdbOtlp.defaultSettings).promoteResourceAttributes.join(",") || "none",
    "tsdb.otlp.keepIdentifyingResourceAttributes": (config.tsdbOtlp ?? TsdbOtlp.defaultSettings).keepIdentifyingResourceAttributes,
    "tsdb.otlp.convertDeltaToCumulative": (config.tsdbOtlp ?? TsdbOtlp.defaultSettings).convertDeltaToCumulative ?? false,
    "eventstore.tailHeartbeat": formatDurationMs(config.eventStore.tailHeartbeatMs ?? EventStoreLimits.tailHeartbeatMs),
    "eventstore.retentionInterval": formatDurationMs(config.eventStore.retentionIntervalMs ?? EventStoreLimits.retentionIntervalMs),
    "eventstore.retentionMaxAge": retention?.maxAgeMs === undefined ? "none" : formatDurationMs(retention.maxAgeMs),
    "eventstore.retentionMaxBytes": retention?.maxBytes === undefined ? "none" : formatBytes(retention.maxBytes),
    "auth.tokens": config.auth === undefined || config.auth.tokens.length === 0 ? "none" : Auth.describeTokens(config.auth.tokens),
    ...(config.auth?.file !== undefined ? { "auth.file": config.auth.file } : {}),
    transforms: config.transforms === undefined || config.transforms.length === 0
      ? "none"
      : config.transforms.map((t) => `${t.name}(${"prefix" in t.source ? `${t.source.prefix}*` : t.source.log})`).join(" ")
  }
}
