/**
 * The configuration file, `opendata.yaml` (or the file `--config` / `OPENDATA_CONFIG` names). Its
 * fields mirror the `OPENDATA_*` environment variables; the environment overrides the file, and flags
 * override the environment. The file is validated: an unknown field or a bad value stops the process
 * with an error that names the field, the value and what is allowed.
 *
 *   host: 0.0.0.0
 *   port: 9095
 *   store: local              # local | s3 | memory
 *   dataDir: ./data
 *   preflight: true
 *   role: all                 # all | writer | reader | compactor (the split roles need store: s3)
 *   log: { level: info, format: logfmt }   # debug | info | warn | error; logfmt | json
 *   flushIntervalMs: 5ms      # default 100ms on s3, 0 otherwise
 *   heapGrowthPercent: 100    # how far the JavaScript heap grows past its live data (Go's GOGC); 0: V8's choice
 *   blockCacheMb: 64          # each product's block cache (decoded table blocks), in MiB
 *   s3: { bucket: b, endpoint: "http://127.0.0.1:7480", region: us-east-1, prefix: "", forcePathStyle: true, ifMatchUnquoted: true }
 *   tsdb: { retentionMs: 15d, queryTimeoutMs: 2m, querySamplesMax: 50000000, enableFeatures: [promql-experimental-functions],
 *           otlp: { translationStrategy: UnderscoreEscapingWithSuffixes, promoteResourceAttributes: [k8s.namespace.name],
 *                   keepIdentifyingResourceAttributes: false, convertDeltaToCumulative: false } }
 *   eventstore: { tailHeartbeatMs: 30s, retentionIntervalMs: 1m, retentionMaxAgeMs: 7d, retentionMaxBytes: 1GiB }
 *   auth:
 *     file: ./tokens.yaml     # more tokens, in a file of their own (relative to this file); OPENDATA_AUTH_FILE
 *     tokens:                 # OPENDATA_AUTH_TOKENS; see Auth.ts
 *       - { name: grafana, token: "<secret>", scope: read }            # read | write | admin
 *       - { name: orders-app, token: "<secret>", scope: write, prefix: "orders/" }
 *   transforms:               # OPENDATA_TRANSFORMS (the same list as JSON); see Transforms.ts
 *     - { name: orders-by-status, from: "orders/", module: ./transforms/status.mjs }   # or log: "<key>"
 *
 * Durations (the `...Ms` fields) take Prometheus's notation (`15d`, `1h30m`, `90s`, `500ms`) or a number of
 * milliseconds; sizes (`retentionMaxBytes`) take `512MiB`, `1GB`, `64KiB` or a number of bytes.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { ConfigProvider, Effect, Schema, SchemaIssue } from "effect"
import { parse as parseYaml } from "yaml"
import { decodeTokens } from "./Auth.ts"
import { Otlp as TsdbOtlp } from "@opendata/tsdb"
import { durationExpected, logFormats, logLevels, parseBytes, parseDurationMs, sizeExpected } from "./Config.ts"

const Port = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 65535 }))
const Positive = Schema.Int.check(Schema.isGreaterThan(0))

/**
 * A field written as a number or as text that `parse` reads (a duration, a size), above zero if
 * `positive`. It stays as written: the environment variable it stands for is parsed the same way.
 */
const measured = (expected: string, parse: (text: string) => number | undefined, positive: boolean) =>
  Schema.Union([Schema.Number, Schema.String]).check(Schema.makeFilter((value: number | string) => {
    const parsed = parse(String(value))
    if (parsed === undefined) return `must be ${expected}, not ${JSON.stringify(value)}`
    return !positive || parsed > 0 || "must be more than 0"
  }))
const Duration = measured(durationExpected, parseDurationMs, true)
const DurationOrZero = measured(durationExpected, parseDurationMs, false)
const Size = measured(sizeExpected, parseBytes, true)

const File = Schema.Struct({
  host: Schema.optional(Schema.String),
  port: Schema.optional(Port),
  store: Schema.optional(Schema.Literals(["local", "s3", "memory"])),
  dataDir: Schema.optional(Schema.String),
  preflight: Schema.optional(Schema.Boolean),
  role: Schema.optional(Schema.Literals(["all", "writer", "reader", "compactor"])),
  log: Schema.optional(Schema.Struct({
    level: Schema.optional(Schema.Literals(logLevels)),
    format: Schema.optional(Schema.Literals(logFormats))
  })),
  flushIntervalMs: Schema.optional(DurationOrZero),
  heapGrowthPercent: Schema.optional(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
  blockCacheMb: Schema.optional(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))),
  tsdb: Schema.optional(Schema.Struct({
    retentionMs: Schema.optional(Duration),
    queryTimeoutMs: Schema.optional(Duration),
    querySamplesMax: Schema.optional(Positive),
    enableFeatures: Schema.optional(Schema.Array(Schema.String)),
    otlp: Schema.optional(Schema.Struct({
      translationStrategy: Schema.optional(Schema.Literals(TsdbOtlp.translationStrategies)),
      promoteResourceAttributes: Schema.optional(Schema.Array(Schema.String)),
      keepIdentifyingResourceAttributes: Schema.optional(Schema.Boolean),
      convertDeltaToCumulative: Schema.optional(Schema.Boolean)
    }))
  })),
  s3: Schema.optional(Schema.Struct({
    bucket: Schema.optional(Schema.String),
    endpoint: Schema.optional(Schema.String),
    region: Schema.optional(Schema.String),
    prefix: Schema.optional(Schema.String),
    accessKeyId: Schema.optional(Schema.String),
    secretAccessKey: Schema.optional(Schema.String),
    forcePathStyle: Schema.optional(Schema.Boolean),
    ifMatchUnquoted: Schema.optional(Schema.Boolean)
  })),
  eventstore: Schema.optional(Schema.Struct({
    tailHeartbeatMs: Schema.optional(Duration),
    retentionIntervalMs: Schema.optional(Duration),
    retentionMaxAgeMs: Schema.optional(Duration),
    retentionMaxBytes: Schema.optional(Size)
  })),
  auth: Schema.optional(Schema.Struct({
    file: Schema.optional(Schema.String),
    // Checked by `decodeTokens`, whose errors never repeat a secret.
    tokens: Schema.optional(Schema.Unknown)
  })),
  transforms: Schema.optional(Schema.Array(Schema.Struct({
    name: Schema.String,
    from: Schema.optional(Schema.String),
    log: Schema.optional(Schema.String),
    module: Schema.String
  })))
})
type File = typeof File.Type

export class ConfigFileError extends Schema.TaggedError<ConfigFileError>()("ConfigFileError", {
  file: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `configuration file ${this.file}: ${this.reason}`
  }
}

/** The file's settings as the environment variables they stand for; `file` is the configuration file. */
const asEnv = (f: File, file: string): Record<string, string> => {
  const env: Record<string, string | undefined> = {
    OPENDATA_HOST: f.host,
    OPENDATA_PORT: f.port?.toString(),
    OPENDATA_STORE: f.store,
    OPENDATA_DATA_DIR: f.dataDir,
    OPENDATA_STORE_PREFLIGHT: f.preflight?.toString(),
    OPENDATA_ROLE: f.role,
    OPENDATA_LOG_LEVEL: f.log?.level,
    OPENDATA_LOG_FORMAT: f.log?.format,
    OPENDATA_FLUSH_INTERVAL_MS: f.flushIntervalMs?.toString(),
    OPENDATA_HEAP_GROWTH_PERCENT: f.heapGrowthPercent?.toString(),
    OPENDATA_BLOCK_CACHE_MB: f.blockCacheMb?.toString(),
    OPENDATA_TSDB_RETENTION_MS: f.tsdb?.retentionMs?.toString(),
    OPENDATA_TSDB_QUERY_TIMEOUT_MS: f.tsdb?.queryTimeoutMs?.toString(),
    OPENDATA_TSDB_QUERY_SAMPLES_MAX: f.tsdb?.querySamplesMax?.toString(),
    OPENDATA_TSDB_ENABLE_FEATURES: f.tsdb?.enableFeatures?.join(","),
    OPENDATA_TSDB_OTLP_TRANSLATION_STRATEGY: f.tsdb?.otlp?.translationStrategy,
    OPENDATA_TSDB_OTLP_PROMOTE_RESOURCE_ATTRIBUTES: f.tsdb?.otlp?.promoteResourceAttributes?.join(","),
    OPENDATA_TSDB_OTLP_KEEP_IDENTIFYING_RESOURCE_ATTRIBUTES: f.tsdb?.otlp?.keepIdentifyingResourceAttributes?.toString(),
    OPENDATA_TSDB_OTLP_CONVERT_DELTA_TO_CUMULATIVE: f.tsdb?.otlp?.convertDeltaToCumulative?.toString(),
    OPENDATA_S3_BUCKET: f.s3?.bucket,
    OPENDATA_S3_ENDPOINT: f.s3?.endpoint,
    OPENDATA_S3_REGION: f.s3?.region,
    OPENDATA_S3_PREFIX: f.s3?.prefix,
    OPENDATA_S3_ACCESS_KEY_ID: f.s3?.accessKeyId,
    OPENDATA_S3_SECRET_ACCESS_KEY: f.s3?.secretAccessKey,
    OPENDATA_S3_FORCE_PATH_STYLE: f.s3?.forcePathStyle?.toString(),
    OPENDATA_S3_IF_MATCH_UNQUOTED: f.s3?.ifMatchUnquoted?.toString(),
    OPENDATA_EVENTSTORE_TAIL_HEARTBEAT_MS: f.eventstore?.tailHeartbeatMs?.toString(),
    OPENDATA_EVENTSTORE_RETENTION_INTERVAL_MS: f.eventstore?.retentionIntervalMs?.toString(),
    OPENDATA_EVENTSTORE_RETENTION_MAX_AGE_MS: f.eventstore?.retentionMaxAgeMs?.toString(),
    OPENDATA_EVENTSTORE_RETENTION_MAX_BYTES: f.eventstore?.retentionMaxBytes?.toString(),
    // A tokens file named here is found next to this file, wherever the server was started.
    OPENDATA_AUTH_FILE: f.auth?.file === undefined ? undefined : path.resolve(path.dirname(file), f.auth.file),
    OPENDATA_AUTH_TOKENS: f.auth?.tokens === undefined ? undefined : JSON.stringify(f.auth.tokens),
    // A transform's module is found next to this file too.
    OPENDATA_TRANSFORMS: f.transforms === undefined
      ? undefined
      : JSON.stringify(f.transforms.map((t) => ({ ...t, module: path.resolve(path.dirname(file), t.module) })))
  }
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined))
}

const formatter = SchemaIssue.makeFormatterStandardSchemaV1()

/** Reads and validates a configuration file; its settings as environment variables. */
export const read = (file: string): Effect.Effect<Record<string, string>, ConfigFileError> =>
  Effect.gen(function*() {
    const text = yield* Effect.try({
      try: () => fs.readFileSync(file, "utf8"),
      catch: (e) => new ConfigFileError({ file, reason: `cannot be read: ${(e as Error).message}` })
    })
    const raw = yield* Effect.try({
      try: () => parseYaml(text) as unknown,
      // Only the first line: the parser's next lines quote the source, which may hold a token.
      catch: (e) => new ConfigFileError({ file, reason: `is not valid YAML: ${(e as Error).message.split("\n")[0]!.replace(/:$/, "")}` })
    })
    const decoded = yield* Schema.decodeUnknownEffect(File)(raw ?? {}, { onExcessProperty: "error", errors: "first" }).pipe(
      Effect.mapError((error) => {
        const issue = formatter(error.issue).issues[0]
        const field = (issue?.path ?? []).map((p) => (typeof p === "object" && p !== null && "key" in p ? String(p.key) : String(p))).join(".")
        const message = issue?.message === "Expected no excess property" ? "is not a known field" : issue?.message ?? "is invalid"
        return new ConfigFileError({ file, reason: `${field === "" ? "the file" : field} ${message}` })
      })
    )
    if (decoded.auth?.tokens !== undefined) {
      yield* decodeTokens(decoded.auth.tokens, "auth.tokens").pipe(Effect.mapError((e) => new ConfigFileError({ file, reason: e.message })))
    }
    return asEnv(decoded, file)
  })

/**
 * The configuration source of the process: the environment, then the file. The file is `explicit` if
 * given (it must exist), else `opendata.yaml` in the working directory if there is one.
 */
export const provider = (explicit: string | undefined): Effect.Effect<ConfigProvider.ConfigProvider, ConfigFileError> =>
  Effect.gen(function*() {
    const file = explicit ?? process.env["OPENDATA_CONFIG"] ?? (fs.existsSync("opendata.yaml") ? "opendata.yaml" : undefined)
    const env = ConfigProvider.fromEnv()
    if (file === undefined) return env
    return ConfigProvider.orElse(env, ConfigProvider.fromEnvRecord(yield* read(file)))
  })
