/**
 * The settings as the runtime reads them, in process: roles, the flush interval by store, retention,
 * durations and sizes in their readable forms, the effective configuration as logged, and the logger's
 * levels and access-log policy.
 */
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { ConfigProvider, Effect, Exit } from "effect"
import { afterEach, describe, expect, it, vi } from "vitest"
import * as Config from "../src/Config.ts"
import * as ConfigFile from "../src/ConfigFile.ts"
import * as Server from "../src/Server.ts"
import { tempDir } from "./process.ts"

const loadFrom = (env: Record<string, string>) =>
  Effect.runPromiseExit(Effect.provideService(Config.load, ConfigProvider.ConfigProvider, ConfigProvider.fromEnvRecord(env)))

const loaded = async (env: Record<string, string>) => {
  const exit = await loadFrom(env)
  if (Exit.isFailure(exit)) throw new Error(String(exit.cause))
  return exit.value
}

/** The configuration an `opendata.yaml` holding `yaml` gives. */
const loadedFromFile = async (yaml: string) => {
  const dir = await tempDir()
  try {
    const file = path.join(dir, "opendata.yaml")
    await fs.writeFile(file, yaml)
    return await loaded(await Effect.runPromise(ConfigFile.read(file)))
  } finally {
    await fs.rm(dir, { recursive: true, force: true })
  }
}

/** Each of `values` for `variable` is refused, naming the variable. */
const refusesEach = async (variable: string, values: ReadonlyArray<string>) => {
  for (const bad of values) {
    const exit = await loadFrom({ [variable]: bad })
    expect(Exit.isFailure(exit) && String(exit.cause)).toMatch(new RegExp(variable))
  }
}

describe("configuration values", () => {
  it("defaults: everything in one process, no wait for a WAL write on the local store, 100 ms on s3", async () => {
    const local = await loaded({})
    expect(local.role).toBe("all")
    expect(Config.flushIntervalFor(local)).toBe(0)
    const s3 = await loaded({ OPENDATA_STORE: "s3", OPENDATA_S3_BUCKET: "b" })
    expect(Config.flushIntervalFor(s3)).toBe(100)
    const set = await loaded({ OPENDATA_FLUSH_INTERVAL_MS: "7", OPENDATA_TSDB_RETENTION_MS: "3600000" })
    expect(Config.flushIntervalFor(set)).toBe(7)
    expect(set.tsdbRetentionMs).toBe(3_600_000)
  })

  it("takes a split role over s3 and refuses it on a store one process owns", async () => {
    expect((await loaded({ OPENDATA_STORE: "s3", OPENDATA_S3_BUCKET: "b", OPENDATA_ROLE: "reader" })).role).toBe("reader")
    const local = await loadFrom({ OPENDATA_ROLE: "compactor" })
    expect(Exit.isFailure(local) && String(local.cause)).toMatch(/OPENDATA_ROLE=compactor: a role other than "all" needs a store that processes share/)
    const unknown = await loadFrom({ OPENDATA_ROLE: "leader" })
    expect(Exit.isFailure(unknown) && String(unknown.cause)).toMatch(/OPENDATA_ROLE/)
    const negative = await loadFrom({ OPENDATA_FLUSH_INTERVAL_MS: "-1" })
    expect(Exit.isFailure(negative) && String(negative.cause)).toMatch(/OPENDATA_FLUSH_INTERVAL_MS/)
  })

  it("takes the block cache size of each product's Db in MiB (default the Db's 64) and refuses one under 1 MiB", async () => {
    expect((await loaded({})).blockCacheMb).toBeUndefined()
    expect(Config.describe(await loaded({})).blockCacheMb).toBe(64)
    expect((await loaded({ OPENDATA_BLOCK_CACHE_MB: "256" })).blockCacheMb).toBe(256)
    await refusesEach("OPENDATA_BLOCK_CACHE_MB", ["0", "-1", "1.5", "lots"])
    expect((await loadedFromFile("blockCacheMb: 16\n")).blockCacheMb).toBe(16)
  })

  it("takes how far the heap may grow (default 100%, 0 leaves it to V8) and refuses a negative or fractional one", async () => {
    expect((await loaded({})).heapGrowthPercent).toBeUndefined()
    expect(Config.describe(await loaded({})).heapGrowthPercent).toBe(Config.heapGrowthPercentDefault)
    expect((await loaded({ OPENDATA_HEAP_GROWTH_PERCENT: "50" })).heapGrowthPercent).toBe(50)
    expect((await loaded({ OPENDATA_HEAP_GROWTH_PERCENT: "0" })).heapGrowthPercent).toBe(0)
    await refusesEach("OPENDATA_HEAP_GROWTH_PERCENT", ["-1", "1.5", "lots"])
    expect((await loadedFromFile("heapGrowthPercent: 30\n")).heapGrowthPercent).toBe(30)
  })

  it("reads role, flush interval and TSDB retention from opendata.yaml", async () => {
    const dir = await tempDir()
    const file = path.join(dir, "opendata.yaml")
    await fs.writeFile(file, "store: s3\ns3: { bucket: b }\nrole: writer\nflushIntervalMs: 20\ntsdb: { retentionMs: 86400000 }\n")
    const env = await Effect.runPromise(ConfigFile.read(file))
    const config = await loaded(env)
    expect(config.role).toBe("writer")
    expect(Config.flushIntervalFor(config)).toBe(20)
    expect(config.tsdbRetentionMs).toBe(86_400_000)
    await fs.writeFile(file, "role: boss\n")
    const bad = await Effect.runPromiseExit(ConfigFile.read(file))
    expect(Exit.isFailure(bad) && String(bad.cause)).toMatch(/role /)
    await fs.rm(dir, { recursive: true, force: true })
  })
})

describe("durations and sizes", () => {
  it("parses Prometheus's duration forms, and plain integers as milliseconds", () => {
    const cases: ReadonlyArray<[string, number | undefined]> = [
      ["15d", 15 * 86_400_000],
      ["90s", 90_000],
      ["500ms", 500],
      ["1h30m", 5_400_000],
      ["2w", 14 * 86_400_000],
      ["1y", 365 * 86_400_000],
      ["1d2h3m4s5ms", 93_784_005],
      ["0s", 0],
      ["1500", 1500],
      ["0", 0],
      ["", undefined],
      ["15 days", undefined],
      ["1m1h", undefined], // units largest first, as Prometheus requires
      ["1.5s", undefined],
      ["-5s", undefined],
      ["5", 5]
    ]
    for (const [text, ms] of cases) expect([text, Config.parseDurationMs(text)]).toEqual([text, ms])
    expect(Config.formatDurationMs(5_400_000)).toBe("1h30m")
    expect(Config.formatDurationMs(1_296_000_000)).toBe("15d")
  })

  it("parses sizes with decimal and binary units, and plain integers as bytes", () => {
    const cases: ReadonlyArray<[string, number | undefined]> = [
      ["512MiB", 512 * 2 ** 20],
      ["1GB", 1e9],
      ["64KiB", 65_536],
      ["1.5GiB", 1.5 * 2 ** 30],
      ["2tb", 2e12],
      ["100B", 100],
      ["1073741824", 2 ** 30],
      ["1.5", undefined],
      ["1 parsec", undefined],
      ["", undefined]
    ]
    for (const [text, bytes] of cases) expect([text, Config.parseBytes(text)]).toEqual([text, bytes])
    expect(Config.formatBytes(2 ** 30)).toBe("1GiB")
    expect(Config.formatBytes(1000)).toBe("1000B")
  })

  it("reads every duration and size setting in either form, and names the setting of a bad value", async () => {
    const config = await loaded({
      OPENDATA_FLUSH_INTERVAL_MS: "50ms",
      OPENDATA_TSDB_RETENTION_MS: "30d",
      OPENDATA_TSDB_QUERY_TIMEOUT_MS: "90000",
      OPENDATA_EVENTSTORE_TAIL_HEARTBEAT_MS: "2s",
      OPENDATA_EVENTSTORE_RETENTION_INTERVAL_MS: "1m",
      OPENDATA_EVENTSTORE_RETENTION_MAX_AGE_MS: "1h30m",
      OPENDATA_EVENTSTORE_RETENTION_MAX_BYTES: "64KiB"
    })
    expect(config.flushIntervalMs).toBe(50)
    expect(config.tsdbRetentionMs).toBe(30 * 86_400_000)
    expect(config.tsdbQueryTimeoutMs).toBe(90_000)
    expect(config.eventStore).toEqual({ tailHeartbeatMs: 2000, retentionIntervalMs: 60_000, defaultRetention: { maxAgeMs: 5_400_000, maxBytes: 65_536 } })
    for (const [variable, value, problem] of [
      ["OPENDATA_TSDB_RETENTION_MS", "15 days", "must be a duration"],
      ["OPENDATA_TSDB_QUERY_TIMEOUT_MS", "0s", "must be more than 0"],
      ["OPENDATA_EVENTSTORE_TAIL_HEARTBEAT_MS", "soon", "must be a duration"],
      ["OPENDATA_EVENTSTORE_RETENTION_MAX_BYTES", "1 parsec", "must be a size such as 512MiB, 1GB or 64KiB"],
      ["OPENDATA_TSDB_QUERY_SAMPLES_MAX", "1.5", "Expected an integer"]
    ]) {
      const exit = await loadFrom({ [variable!]: value! })
      expect(Exit.isFailure(exit) && String(exit.cause)).toContain(`invalid configuration: ${variable}=${value}: ${problem}`)
    }
    const missing = await loadFrom({ OPENDATA_STORE: "s3" })
    expect(Exit.isFailure(missing) && String(missing.cause)).toContain("invalid configuration: OPENDATA_S3_BUCKET: must be set")
  })

  it("describes the effective configuration with defaults filled in and the S3 secret redacted", async () => {
    const config = await loaded({
      OPENDATA_STORE: "s3",
      OPENDATA_S3_BUCKET: "b",
      OPENDATA_S3_ACCESS_KEY_ID: "AKIA-visible",
      OPENDATA_S3_SECRET_ACCESS_KEY: "very-secret",
      OPENDATA_LOG_FORMAT: "json"
    })
    const described = Config.describe(config)
    expect(described).toMatchObject({
      store: "s3",
      "s3.bucket": "b",
      "s3.accessKeyId": "AKIA-visible",
      "s3.secretAccessKey": "<redacted>",
      "log.level": "info",
      "log.format": "json",
      flushInterval: "100ms",
      "tsdb.retention": "15d",
      "eventstore.retentionMaxBytes": "none"
    })
    expect(JSON.stringify(described)).not.toContain("very-secret")
  })
})

describe("the logger", () => {
  afterEach(() => {
    vi.restoreAllMocks()
  })

  /** What the logger of `settings` writes to stderr while `effect` runs. */
  const logged = async (settings: Pick<Config.RuntimeConfig, "logLevel" | "logFormat">, effect: Effect.Effect<void>) => {
    const lines: Array<string> = []
    vi.spyOn(process.stderr, "write").mockImplementation((chunk) => {
      lines.push(String(chunk))
      return true
    })
    await Effect.runPromise(effect.pipe(Effect.provide(Server.layerLogging(settings))))
    vi.restoreAllMocks()
    return lines.join("")
  }
  /** An entry of the access log, as Effect's HttpMiddleware.logger writes it, for a request of `ms`. */
  const request = (url: string, status: number, ms: number) =>
    Effect.log("Sent HTTP response").pipe(
      Effect.annotateLogs({ "http.method": "GET", "http.url": url, "http.status": status }),
      Effect.delay(`${ms} millis`),
      Effect.withLogSpan("http.span")
    )
  const traffic = Effect.gen(function*() {
    yield* Effect.logDebug("a debug entry")
    yield* Effect.logInfo("an info entry")
    yield* Effect.logWarning("a warning")
    yield* request("/fast", 200, 0)
    yield* request("/failed", 503, 0)
    yield* request("/slow", 200, Server.slowRequestMs + 100)
    yield* request("/tail", 101, Server.slowRequestMs + 100)
  })

  it("access-logs only errors and slow requests at info, every request at debug, and filters by level", async () => {
    const info = await logged({ logLevel: "info", logFormat: "logfmt" }, traffic)
    expect(info).not.toContain("a debug entry")
    expect(info).toMatch(/level=INFO .*message="an info entry"/)
    expect(info).toMatch(/level=ERROR .*message="Sent HTTP response" .*http\.url=\/failed http\.status=503/)
    expect(info).toMatch(/level=WARN .*message="slow request \(over 1000 ms\)" http\.span=1\d{3}ms .*http\.url=\/slow /)
    expect(info).not.toContain("http.url=/fast")
    expect(info).not.toContain("http.url=/tail") // a WebSocket tail is long-lived, never slow

    const debug = await logged({ logLevel: "debug", logFormat: "json" }, traffic)
    const entries = debug.trim().split("\n").map((l) => JSON.parse(l) as { message: string; level: string; annotations: Record<string, unknown> })
    expect(entries.map((e) => [e.level, e.annotations["http.url"] ?? e.message])).toEqual([
      ["DEBUG", "a debug entry"],
      ["INFO", "an info entry"],
      ["WARN", "a warning"],
      ["DEBUG", "/fast"],
      ["ERROR", "/failed"],
      ["WARN", "/slow"],
      ["DEBUG", "/tail"]
    ])

    const error = await logged({ logLevel: "error", logFormat: "logfmt" }, traffic)
    expect(error.trim().split("\n")).toHaveLength(1)
    expect(error).toContain("http.url=/failed")
  })
})
