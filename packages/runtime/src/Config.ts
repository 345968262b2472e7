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
 * | `OPENDATA_FLUSH_INTERVAL_MS` | `100` on s3, `5` otherwise | least time between two WAL writes (group commit) |
 * | `OPENDATA_TSDB_RETENTION_MS` | `1296000000` (15 days) | TSDB samples older than this are deleted |
 * | `OPENDATA_TSDB_QUERY_TIMEOUT_MS` | `120000` | longest a PromQL query may run (a request's `timeout` may only shorten it) |
 * | `OPENDATA_TSDB_QUERY_SAMPLES_MAX` | `50000000` | most samples one PromQL query may select |
 * | `OPENDATA_EVENTSTORE_TAIL_HEARTBEAT_MS` | `5000` | an idle EventStore tail sends a heartbeat this often |
 * | `OPENDATA_EVENTSTORE_RETENTION_INTERVAL_MS` | `60000` | how often EventStore retention runs |
 * | `OPENDATA_EVENTSTORE_RETENTION_MAX_AGE_MS`, `_MAX_BYTES` | none | retention of logs that have none of their own |
 */
import { Config, Effect, Option, Redacted, Schema } from "effect"
import type { ObjectStore } from "@opendata/core"
import type { EventStoreSettings } from "@opendata/eventstore"

export const defaultPort = 9095

/**
 * What a process does. `all` runs everything in one process (the embedded default). Split over one shared
 * bucket: `writer` takes ingest (and serves reads), `reader` follows the manifests and serves queries and
 * tails, `compactor` compacts and collects garbage under its own epoch.
 */
export type Role = "all" | "writer" | "reader" | "compactor"
export const roles: ReadonlyArray<Role> = ["all", "writer", "reader", "compactor"]

/** A configuration that parses but cannot run, named by field, value and what is allowed. */
export class InvalidConfig extends Schema.TaggedError<InvalidConfig>()("InvalidConfig", {
  field: Schema.String,
  value: Schema.String,
  allowed: Schema.String
}) {
  override get message() {
    return `invalid configuration: ${this.field}=${this.value}: ${this.allowed}`
  }
}

export type StoreConfig =
  | { readonly kind: "memory" }
  | { readonly kind: "local"; readonly root: string }
  | { readonly kind: "s3"; readonly settings: ObjectStore.S3Settings }

export interface RuntimeConfig {
  readonly host: string
  readonly port: number
  readonly store: StoreConfig
  readonly preflight: boolean
  readonly role: Role
  /** Least time between the starts of two WAL writes; defaults by store (see `flushIntervalFor`). */
  readonly flushIntervalMs?: number | undefined
  readonly tsdbRetentionMs?: number | undefined
  readonly tsdbQueryTimeoutMs?: number | undefined
  readonly tsdbQuerySamplesMax?: number | undefined
  readonly eventStore: EventStoreSettings
}

/**
 * The group-commit interval: on S3 every WAL object is a paid PUT, so writes gather for 100 ms; on a local
 * disk (or in memory) a write costs an fsync, so acknowledgements come after a few milliseconds.
 */
export const flushIntervalFor = (config: Pick<RuntimeConfig, "store" | "flushIntervalMs">): number =>
  config.flushIntervalMs ?? (config.store.kind === "s3" ? 100 : 5)

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

const PositiveInt = Schema.Int.check(Schema.isGreaterThan(0))
const positiveInt = (name: string) => Config.option(Config.schema(PositiveInt, name))

const eventStoreConfig: Config.Config<EventStoreSettings> = Config.all({
  tailHeartbeatMs: positiveInt("OPENDATA_EVENTSTORE_TAIL_HEARTBEAT_MS"),
  retentionIntervalMs: positiveInt("OPENDATA_EVENTSTORE_RETENTION_INTERVAL_MS"),
  maxAgeMs: positiveInt("OPENDATA_EVENTSTORE_RETENTION_MAX_AGE_MS"),
  maxBytes: positiveInt("OPENDATA_EVENTSTORE_RETENTION_MAX_BYTES")
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

const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

/** The runtime configuration from the environment. */
export const fromEnv: Config.Config<RuntimeConfig> = Config.all({
  host: Config.String("OPENDATA_HOST").pipe(Config.withDefault("0.0.0.0")),
  port: Config.Port("OPENDATA_PORT").pipe(Config.withDefault(defaultPort)),
  store: storeConfig,
  preflight: Config.Boolean("OPENDATA_STORE_PREFLIGHT").pipe(Config.withDefault(true)),
  role: Config.Literals(roles, "OPENDATA_ROLE").pipe(Config.withDefault("all" as const)),
  flushIntervalMs: Config.option(Config.schema(NonNegativeInt, "OPENDATA_FLUSH_INTERVAL_MS")),
  tsdbRetentionMs: positiveInt("OPENDATA_TSDB_RETENTION_MS"),
  tsdbQueryTimeoutMs: positiveInt("OPENDATA_TSDB_QUERY_TIMEOUT_MS"),
  tsdbQuerySamplesMax: positiveInt("OPENDATA_TSDB_QUERY_SAMPLES_MAX"),
  eventStore: eventStoreConfig
}).pipe(
  Config.map(({ flushIntervalMs, tsdbQuerySamplesMax, tsdbQueryTimeoutMs, tsdbRetentionMs, ...c }): RuntimeConfig => ({
    ...c,
    ...(Option.isSome(flushIntervalMs) ? { flushIntervalMs: flushIntervalMs.value } : {}),
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

/** Reads `fromEnv` and validates it, for use where a plain effect is handier than a `Config`. */
export const load = Effect.gen(function*() {
  return yield* validate(yield* fromEnv)
})
