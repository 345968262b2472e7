#!/usr/bin/env node
/**
 * The `opendata` command (`bin/opendata.js` runs it, built or from source):
 *
 *   opendata serve   [--host H] [--port N] [--data-dir DIR] [--store local|s3|memory] [--role all|writer|reader|compactor]
 *                    [--log-level debug|info|warn|error] [--log-format logfmt|json] [--config FILE]
 *                    serve both products (npm start); with --role, one role over a shared s3 bucket
 *   opendata inspect [--data-dir DIR] [--store ...]   manifest versions, epochs, objects and sizes per product
 *   opendata verify  [--data-dir DIR] [--store ...]   read every referenced object and check every checksum
 *   opendata compact [--data-dir DIR] [--store ...]   compact and collect garbage of a stopped store, to completion
 *   opendata version                                  the runtime's version, Node's, and the platform
 *   opendata logs append|read|tail|list ...           the EventStore of a running server, over its API
 *   opendata transforms list|show|pause|resume|reset|skip ...   the transforms of a running server, over its API
 *
 * Flags override the `OPENDATA_*` environment variables, which override the configuration file
 * (`opendata.yaml`, see ConfigFile.ts), which overrides the defaults.
 */
import * as fs from "node:fs"
import { NodeServices } from "@effect/platform-node"
import { ConfigProvider, Console, Effect, Fiber, Layer, Option, Schema } from "effect"
import { Argument, CliConfig, CliError, Command, Flag, GlobalFlag } from "effect/cli"
import { Db } from "@opendata/core"
import { TsdbInspect } from "@opendata/tsdb"
import type { Transforms } from "@opendata/eventstore"
import { EventStoreClientError, makeClient } from "@opendata/eventstore/client"
import * as Config from "./Config.ts"
import * as ConfigFile from "./ConfigFile.ts"
import * as Server from "./Server.ts"
import { runMain } from "./Signals.ts"

/** The runtime package's version, read from its package.json (one directory above `src/` and `dist/`). */
const version: string = JSON.parse(fs.readFileSync(new URL("../package.json", import.meta.url), "utf8")).version

const host = Flag.String("host").pipe(Flag.withDescription("address the HTTP server binds (default 0.0.0.0; env OPENDATA_HOST)"), Flag.optional)
const port = Flag.Int("port").pipe(Flag.withDescription("HTTP port (default 9095; env OPENDATA_PORT)"), Flag.optional)
const dataDir = Flag.String("data-dir").pipe(Flag.withDescription("directory of the local store (default ./data; env OPENDATA_DATA_DIR)"), Flag.optional)
const store = Flag.Literals("store", ["local", "s3", "memory"]).pipe(Flag.withDescription("object store kind (default local; env OPENDATA_STORE)"), Flag.optional)
const role = Flag.Literals("role", ["all", "writer", "reader", "compactor"]).pipe(
  Flag.withDescription("what this process does (default all; env OPENDATA_ROLE): writer, reader and compactor split the work over one s3 bucket"),
  Flag.optional
)
const logLevel = Flag.Literals("log-level", Config.logLevels).pipe(
  Flag.withDescription("least severity logged (default info; env OPENDATA_LOG_LEVEL); debug also logs every request"),
  Flag.optional
)
const logFormat = Flag.Literals("log-format", Config.logFormats).pipe(
  Flag.withDescription("log line format on stderr (default logfmt; env OPENDATA_LOG_FORMAT)"),
  Flag.optional
)
const configFile = Flag.String("config").pipe(Flag.withDescription("configuration file (default ./opendata.yaml if present; env OPENDATA_CONFIG)"), Flag.optional)

/** The configuration: flags (already in the environment), then the environment, then the file. */
const loadConfig = (file: Option.Option<string>) =>
  Effect.flatMap(ConfigFile.provider(Option.getOrUndefined(file)), (provider) =>
    Effect.provideService(Config.load, ConfigProvider.ConfigProvider, provider))

/** The environment variable each flag stands for. */
const flagVariables = {
  host: "OPENDATA_HOST",
  port: "OPENDATA_PORT",
  dataDir: "OPENDATA_DATA_DIR",
  store: "OPENDATA_STORE",
  role: "OPENDATA_ROLE",
  logLevel: "OPENDATA_LOG_LEVEL",
  logFormat: "OPENDATA_LOG_FORMAT"
} as const

/** Flags win over the environment: they are written into it before the configuration is read. */
const applyFlags = (flags: { readonly [K in keyof typeof flagVariables]?: Option.Option<string | number> }) =>
  Effect.sync(() => {
    for (const [flag, variable] of Object.entries(flagVariables)) {
      const value = flags[flag as keyof typeof flagVariables]
      if (value !== undefined && Option.isSome(value)) process.env[variable] = String(value.value)
    }
  })

const products = Object.values(Server.productPaths)

/**
 * What the one-shot commands (inspect, verify, compact) log: warnings and errors only, as logfmt on stderr,
 * so that their report on stdout stays readable.
 */
const quietLogging = Server.layerLogging({ logLevel: "warn", logFormat: "logfmt" })

/** The configured object store, opened read-only (no preflight probes). */
const storeLayer = (file: Option.Option<string>) => Effect.map(loadConfig(file), (config) => Server.layerStore(config.store, false))

const serve = Command.make("serve", { host, port, dataDir, store, role, logLevel, logFormat, config: configFile }, (flags) =>
  Effect.gen(function*() {
    yield* applyFlags(flags)
    return yield* Server.launch(yield* loadConfig(flags.config))
  })).pipe(
    Command.withDescription("Serve the EventStore and the TSDB over HTTP (what `npm start` runs)"),
    Command.withExamples([
      { command: "opendata serve --port 9095 --data-dir ./data", description: "embedded, on a local directory" },
      { command: "opendata serve --host 127.0.0.1 --log-level debug --log-format json", description: "loopback only; every request logged, as JSON" },
      { command: "OPENDATA_STORE=s3 OPENDATA_S3_BUCKET=b opendata serve --role writer", description: "the ingest role over a shared bucket" },
      { command: "OPENDATA_STORE=s3 OPENDATA_S3_BUCKET=b opendata serve --role reader --port 9096", description: "a query and tail role over the same bucket" },
      { command: "OPENDATA_STORE=s3 OPENDATA_S3_BUCKET=b opendata serve --role compactor --port 9097", description: "compaction and garbage collection" }
    ])
  )

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(2)} MiB`

const inspectCommand = Command.make("inspect", { dataDir, store, config: configFile }, (flags) =>
  Effect.gen(function*() {
    yield* applyFlags(flags)
    const layer = yield* storeLayer(flags.config)
    for (const path of products) {
      const report = yield* Db.inspect(path).pipe(Effect.provide(layer))
      yield* Console.log(`${path}`)
      const versions = report.manifestVersions
      yield* Console.log(`  manifest versions: ${versions.length === 0 ? "none" : `${versions[0]}..${versions.at(-1)} (${versions.length} kept)`}`)
      if (report.latest !== undefined) {
        const l = report.latest
        yield* Console.log(`  latest: version ${l.version}, writer epoch ${l.writerEpoch}, compactor epoch ${l.compactorEpoch}, last seq ${l.lastSeq}`)
        yield* Console.log(`  WAL flushed through ${l.walIdFlushed}; fences at ${l.walFences.join(", ") || "none"}`)
        yield* Console.log(`  tables: ${l.tables} (${l.l0Tables} in level 0, ${l.sortedRuns} sorted runs), ${mib(l.tableBytes)}, ${l.entries} entries`)
      }
      for (const [kind, o] of Object.entries(report.objects)) yield* Console.log(`  ${kind}: ${o.count} objects, ${mib(o.bytes)}`)
      if (path === Server.productPaths.tsdb && report.latest !== undefined) {
        // Read-only: a follower of the TSDB's Db, whether or not a server is writing it.
        const tsdb = yield* Effect.scoped(Effect.provide(TsdbInspect.inspect, Db.layerFollower({ path }))).pipe(Effect.provide(layer))
        const samples = TsdbInspect.samplesOf(tsdb)
        const objectBytes = Object.values(report.objects).reduce((n, o) => n + o.bytes, 0)
        const count = (n: number) => n.toLocaleString("en-US")
        yield* Console.log(
          `  series ${count(tsdb.series)}; samples ${count(samples)}: ${count(tsdb.sealedSamples)} in sealed chunks, ${count(tsdb.headSamples)} in heads, ` +
            `${count(tsdb.logSamples)} in the head log, ${count(tsdb.histogramSamples)} native histograms`
        )
        if (samples > 0) yield* Console.log(`  at rest: ${mib(objectBytes)} of objects = ${(objectBytes / samples).toFixed(2)} bytes per sample`)
        yield* Console.log(`  keys by kind (key + value bytes as compaction compresses them; logical bytes in brackets):`)
        for (const k of tsdb.kinds) {
          const bytes = k.keyBytes + k.valueBytes
          const perSample = samples > 0 ? `, ${(k.compressedBytes / samples).toFixed(2)} B/sample [${(bytes / samples).toFixed(2)}]` : ""
          yield* Console.log(`    ${k.name}: ${count(k.keys)} keys, ${mib(k.compressedBytes)} [${mib(bytes)}]${perSample}`)
        }
      }
    }
  }).pipe(Effect.provide(quietLogging))).pipe(
    Command.withDescription("Show manifest versions, epochs, and objects with their sizes, for each product; for the TSDB also its series, samples, bytes per sample at rest and keys by kind")
  )

const verifyCommand = Command.make("verify", { dataDir, store, config: configFile }, (flags) =>
  Effect.gen(function*() {
    yield* applyFlags(flags)
    const layer = yield* storeLayer(flags.config)
    const tty = process.stdout.isTTY === true
    let failed = 0
    for (const path of products) {
      const progress = (done: number, total: number) =>
        tty ? Effect.sync(() => process.stdout.write(`\r  ${path} ${"#".repeat(Math.round((done / Math.max(1, total)) * 30)).padEnd(30, ".")} ${done}/${total}`)) : Effect.void
      const report = yield* Db.verify(path, progress).pipe(Effect.provide(layer))
      if (tty) process.stdout.write("\n")
      yield* Console.log(`${path}: ${report.objectsChecked} objects, ${mib(report.bytesChecked)} checked, ${report.problems.length} problems`)
      for (const p of report.problems) yield* Console.log(`  ${p}`)
      failed += report.problems.length
    }
    if (failed > 0) return yield* Effect.fail(new Error(`${failed} problems found`))
  }).pipe(Effect.provide(quietLogging))).pipe(Command.withDescription("Read every object the latest manifests reference and check every checksum"))

// -------------------------------------------------------------------------------------------------
// compact
// -------------------------------------------------------------------------------------------------

/** `compact` refused: nothing to compact, or a store it must not take over. */
class CompactRefused extends Schema.TaggedError<CompactRefused>()("CompactRefused", { reason: Schema.String }) {
  override get message() {
    return `compact: ${this.reason}`
  }
}

/** The four steps of compacting one product, in order: what the progress reports. */
const compactSteps = ["opening (replaying the WAL)", "flushing", "compacting", "collecting garbage"] as const

/**
 * Progress on stderr: on a terminal, one bar redrawn in place; otherwise one plain line per step, so that
 * a log file or a CI job shows where it is without control characters.
 */
const makeProgress = (total: number) => {
  const tty = process.stderr.isTTY === true
  const width = 30
  let done = 0
  let label = ""
  const draw = () => {
    const filled = Math.round((done / Math.max(1, total)) * width)
    process.stderr.write(`\r\x1b[K[${"#".repeat(filled).padEnd(width, ".")}] ${done}/${total} ${label}`)
  }
  return {
    /** A step begins. */
    begin: (text: string) =>
      Effect.sync(() => {
        label = text
        if (tty) draw()
        else process.stderr.write(`${text}...\n`)
      }),
    /** More detail on the step under way (the terminal bar only). */
    detail: (text: string) =>
      Effect.sync(() => {
        if (tty) {
          label = text
          draw()
        }
      }),
    /** The step under way is done. */
    end: Effect.sync(() => {
      done += 1
      if (tty) draw()
    }),
    /** Clears the bar, before the report is printed. */
    finish: Effect.sync(() => {
      if (tty) process.stderr.write("\r\x1b[K")
    })
  }
}
type Progress = ReturnType<typeof makeProgress>

/**
 * Whether a product is compact already: one manifest version, at most one sorted run and nothing in level
 * 0, every table referenced, and no WAL object but the fences (which stay forever). Opening it as the
 * writer would only add a fence, so `compact` leaves it alone, and running it twice changes nothing.
 */
const isCompact = (report: Db.Inspection) => {
  const latest = report.latest
  return latest !== undefined && latest.l0Tables === 0 && latest.sortedRuns <= 1 && report.manifestVersions.length === 1 &&
    (report.objects["sst"]?.count ?? 0) === latest.tables && (report.objects["wal"]?.count ?? 0) <= latest.walFences.length
}

/** Bytes and objects stored under a product's path. */
const footprint = (report: Db.Inspection) =>
  Object.values(report.objects).reduce((t, o) => ({ bytes: t.bytes + o.bytes, objects: t.objects + o.count }), { bytes: 0, objects: 0 })

/**
 * Compacts one product's Db to completion. Opening it as the writer replays the WAL and fences any
 * previous writer (the store is stopped, so there is none alive); the settings make every level-0 table
 * due for compaction and allow a single sorted run, so compaction goes on until everything is one sorted
 * run (versions no snapshot can read any more are dropped on the way); garbage collection then runs with
 * no lease, since no reader is left to protect. Closing the scope closes the Db.
 */
const compactProduct = (path: string, progress: Progress) =>
  Effect.scoped(Effect.gen(function*() {
    yield* progress.begin(`${path} ${compactSteps[0]}`)
    const db = yield* Db.make({ path, l0CompactionTrigger: 1, sortedRunsMax: 1, gcMinAgeMs: 0, gc: false })
    yield* progress.end
    yield* progress.begin(`${path} ${compactSteps[1]}`)
    yield* db.flush
    yield* progress.end
    yield* progress.begin(`${path} ${compactSteps[2]}`)
    const watch = yield* Effect.forkScoped(Effect.forever(Effect.andThen(
      Effect.sleep("200 millis"),
      Effect.flatMap(db.stats, (s) => progress.detail(`${path} ${compactSteps[2]}: ${s.compactions} merges, ${s.tablesWritten} tables written`))
    )))
    while (yield* db.compact) {
      // keep compacting while a job is due
    }
    yield* Fiber.interrupt(watch)
    yield* progress.end
    yield* progress.begin(`${path} ${compactSteps[3]}`)
    const collected = yield* db.collectGarbage
    yield* progress.end
    return { stats: yield* db.stats, collected }
  }))

const compactCommand = Command.make("compact", { dataDir, store, config: configFile }, (flags) =>
  Effect.gen(function*() {
    yield* applyFlags(flags)
    const config = yield* loadConfig(flags.config)
    if (config.store.kind === "memory") {
      return yield* new CompactRefused({ reason: "the memory store holds nothing once its process has exited; use --data-dir DIR or --store s3" })
    }
    if (config.store.kind === "local" && !fs.existsSync(config.store.root)) {
      return yield* new CompactRefused({ reason: `${config.store.root} does not exist` })
    }
    // The local store's lock refuses a directory a running server holds.
    const layer = Server.layerStore(config.store, false)
    yield* Effect.gen(function*() {
      const before = new Map<string, Db.Inspection>()
      for (const path of products) before.set(path, yield* Db.inspect(path))
      const present = products.filter((path) => before.get(path)!.latest !== undefined && !isCompact(before.get(path)!))
      const progress = makeProgress(present.length * compactSteps.length)
      const done = new Map<string, { readonly compactions: number; readonly tables: number; readonly collected: number }>()
      for (const path of present) {
        const { collected, stats } = yield* compactProduct(path, progress)
        done.set(path, { compactions: stats.compactions, tables: stats.tablesWritten, collected })
      }
      yield* progress.finish
      const total = { before: 0, after: 0 }
      for (const path of products) {
        const was = footprint(before.get(path)!)
        if (!done.has(path)) {
          const latest = before.get(path)!.latest
          yield* Console.log(latest === undefined ? `${path}: nothing stored` : `${path}: ${was.bytes} bytes, compact already (${latest.tables} tables in ${latest.sortedRuns} sorted runs)`)
          total.before += was.bytes
          total.after += was.bytes
          continue
        }
        const report = yield* Db.inspect(path)
        const is = footprint(report)
        const work = done.get(path)!
        total.before += was.bytes
        total.after += is.bytes
        yield* Console.log(
          `${path}: ${was.bytes} -> ${is.bytes} bytes (${mib(was.bytes)} -> ${mib(is.bytes)}), ${was.objects} -> ${is.objects} objects; ` +
            `${work.compactions} merges, ${work.tables} tables written, ${work.collected} objects deleted; ` +
            `now ${report.latest?.tables ?? 0} tables in ${report.latest?.sortedRuns ?? 0} sorted runs`
        )
      }
      yield* Console.log(`total: ${total.before} -> ${total.after} bytes (${mib(total.before)} -> ${mib(total.after)})`)
    }).pipe(Effect.provide(layer))
  }).pipe(Effect.provide(quietLogging))).pipe(
    Command.withShortDescription("Compact and garbage-collect a STOPPED store to completion; print the bytes before and after"),
    Command.withDescription(
      "Compact and garbage-collect each product of a STOPPED store to completion (one sorted run, no garbage left), " +
        "with progress on stderr, then print the bytes before and after per product and in total. It takes over as " +
        "the writer: a local directory a server holds is refused, but on a shared s3 bucket it would fence a running " +
        "writer, so stop every process first"
    ),
    Command.withExamples([{ command: "opendata compact --data-dir ./data", description: "after stopping the server on ./data" }])
  )

// -------------------------------------------------------------------------------------------------
// version, and the command itself
// -------------------------------------------------------------------------------------------------

const versionCommand = Command.make("version", {}, () =>
  Console.log(`opendata, version ${version}\n  node version: ${process.version}\n  platform:     ${process.platform}/${process.arch}`)).pipe(
    Command.withDescription("Print the version of OpenData, of Node.js, and the platform")
  )

// -------------------------------------------------------------------------------------------------
// logs: the EventStore of a running server, through the client
// -------------------------------------------------------------------------------------------------

const url = Flag.String("url").pipe(
  Flag.withDescription("the server (default http://localhost:9095; env OPENDATA_URL)"),
  Flag.optional
)
const token = Flag.String("token").pipe(Flag.withDescription("a bearer token (env OPENDATA_TOKEN)"), Flag.optional)
const json = Flag.Boolean("json").pipe(Flag.withDescription("one JSON object a record, as the API returns it"), Flag.withDefault(false))
const key = Argument.String("key").pipe(Argument.withDescription("the log's key"))

interface ServerFlags {
  readonly url: Option.Option<string>
  readonly token: Option.Option<string>
}

/** The server and the token: the flags, else `OPENDATA_URL` and `OPENDATA_TOKEN`. */
const serverOf = (flags: ServerFlags) => ({
  url: Option.getOrUndefined(flags.url) ?? process.env["OPENDATA_URL"] ?? "http://localhost:9095",
  token: Option.getOrUndefined(flags.token) ?? process.env["OPENDATA_TOKEN"]
})

const clientOf = (flags: ServerFlags) => makeClient(serverOf(flags))

/** A client call as an effect; its error is the server's message, on one line. */
const api = <A>(run: () => Promise<A>) =>
  Effect.tryPromise({
    try: run,
    catch: (e) => new Error(e instanceof EventStoreClientError ? `${e.code}: ${e.message}` : String(e))
  })

const recordLine = (r: { offset: number; timestamp: number; value: string }, asJson: boolean) =>
  asJson ? JSON.stringify(r) : `${r.offset}\t${new Date(r.timestamp).toISOString()}\t${r.value}`

/** Lines of standard input, in batches of at most `max` (the last one as soon as input ends). */
async function* stdinBatches(max: number): AsyncGenerator<Array<string>> {
  let batch: Array<string> = []
  let rest = ""
  for await (const chunk of process.stdin) {
    const lines = (rest + String(chunk)).split("\n")
    rest = lines.pop()!
    for (const line of lines) {
      batch.push(line)
      if (batch.length === max) {
        yield batch
        batch = []
      }
    }
  }
  if (rest !== "") batch.push(rest)
  if (batch.length > 0) yield batch
}

const logsAppend = Command.make(
  "append",
  { url, token, key, values: Argument.String("value").pipe(Argument.withDescription("records to append (none: one a line of standard input)"), Argument.variadic()) },
  (flags) =>
    Effect.gen(function*() {
      const client = clientOf(flags)
      const k = flags.key
      if (flags.values.length > 0) {
        const result = yield* api(() => client.append(k, flags.values))
        return yield* Console.log(`appended ${result.offsets.length} to ${k}: offsets ${result.offsets[0]}..${result.offsets.at(-1)}, next ${result.next}`)
      }
      // Standard input: batches of up to 1,000 lines, pipelined over one append session.
      const appended = yield* api(async () => {
        const session = await client.session()
        const inFlight: Array<Promise<unknown>> = []
        let records = 0
        let next = 0
        try {
          for await (const batch of stdinBatches(1000)) {
            inFlight.push(session.append(k, batch).then((r) => {
              records += r.offsets.length
              next = Math.max(next, r.next)
            }))
            if (inFlight.length >= 64) await inFlight.shift()
          }
          await Promise.all(inFlight)
        } finally {
          session.close()
        }
        return { records, next }
      })
      yield* Console.log(`appended ${appended.records} to ${k}, next ${appended.next}`)
    })
).pipe(
  Command.withDescription("Append records to a log (created on first append); each is answered once durable"),
  Command.withExamples([
    { command: "opendata logs append orders/42 placed paid", description: "two records" },
    { command: "tail -f app.log | opendata logs append app/web-1", description: "a record a line, pipelined" }
  ])
)

const logsRead = Command.make(
  "read",
  {
    url,
    token,
    json,
    key,
    from: Flag.Int("from").pipe(Flag.withDescription("first offset (default: the first stored)"), Flag.optional),
    limit: Flag.Int("limit").pipe(Flag.withDescription("records at most (default: all from the start)"), Flag.optional)
  },
  (flags) =>
    Effect.gen(function*() {
      const client = clientOf(flags)
      let from = Option.getOrUndefined(flags.from)
      let left = Option.getOrUndefined(flags.limit) ?? Number.POSITIVE_INFINITY
      while (left > 0) {
        const page = yield* api(() => client.read(flags.key, { from, limit: Math.min(1000, left) }))
        for (const r of page.records) yield* Console.log(recordLine(r, flags.json))
        left -= page.records.length
        if (page.records.length === 0 || page.next === from) break
        from = page.next
      }
    })
).pipe(Command.withDescription("Print a log's records: offset, time and value, a line each (or JSON)"))

const logsTail = Command.make(
  "tail",
  {
    url,
    token,
    json,
    key,
    from: Flag.Int("from").pipe(Flag.withDescription("start at this offset (default: only what is appended from now on)"), Flag.optional)
  },
  (flags) =>
    api(async () => {
      const client = clientOf(flags)
      const from = Option.getOrUndefined(flags.from)
      const abort = new AbortController()
      process.once("SIGINT", () => abort.abort())
      process.once("SIGTERM", () => abort.abort())
      for await (const r of client.tail(flags.key, from === undefined ? { now: true, signal: abort.signal } : { from, signal: abort.signal })) {
        process.stdout.write(`${recordLine(r, flags.json)}\n`)
      }
    })
).pipe(Command.withDescription("Follow a log: print its records as they become durable, until interrupted (resumes after a dropped connection)"))

const logsList = Command.make(
  "list",
  { url, token, json, prefix: Flag.String("prefix").pipe(Flag.withDescription("only keys starting with this"), Flag.optional) },
  (flags) =>
    Effect.gen(function*() {
      const client = clientOf(flags)
      let cursor: string | undefined
      do {
        const page = yield* api(() => client.list({ ...Option.match(flags.prefix, { onNone: () => ({}), onSome: (p) => ({ prefix: p }) }), ...(cursor === undefined ? {} : { cursor }), limit: 1000 }))
        for (const m of page.logs) {
          yield* Console.log(flags.json ? JSON.stringify(m) : `${m.key}\t${m.records} records\t${m.bytes} bytes\tnext ${m.nextOffset}`)
        }
        cursor = page.cursor
      } while (cursor !== undefined)
    })
).pipe(Command.withDescription("List logs (by key prefix): records, bytes, next offset"))

const logsCommand = Command.make("logs").pipe(
  Command.withDescription("The EventStore of a running server: append, read, tail and list logs over its API"),
  Command.withSubcommands([logsAppend, logsRead, logsTail, logsList])
)

// -------------------------------------------------------------------------------------------------
// transforms: the transforms of a running server, over its HTTP API
// -------------------------------------------------------------------------------------------------

/** A transform's status as the API returns it (`TransformInfo`, with `retrying` null when there is nothing). */
type TransformStatus = Omit<Transforms.TransformInfo, "retrying"> & { readonly retrying: string | null }

/**
 * One call to the transforms API (the EventStore's client has none); a failure is the server's error
 * envelope, reported as the `logs` commands report theirs (`<code>: <message>`).
 */
const transformsApi = <A>(flags: ServerFlags, method: "GET" | "POST", path: string) =>
  api(async (): Promise<A> => {
    const { token, url } = serverOf(flags)
    const base = url.replace(/\/+$/, "")
    let response: Response
    try {
      response = await fetch(`${base}${path}`, { method, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })
    } catch (e) {
      throw new EventStoreClientError(0, "Network", `cannot reach ${base}: ${e instanceof Error ? e.message : String(e)}`)
    }
    const text = await response.text()
    let body: unknown
    try {
      body = JSON.parse(text)
    } catch {
      body = undefined
    }
    if (!response.ok) {
      const envelope = typeof body === "object" && body !== null ? body as Record<string, unknown> : {}
      throw new EventStoreClientError(
        response.status,
        String(envelope["error"] ?? `HTTP ${response.status}`),
        String(envelope["message"] ?? (text.trim() || response.statusText))
      )
    }
    return body as A
  })

const transformPath = (name: string, action?: string) =>
  `/v1/transforms/${encodeURIComponent(name)}${action === undefined ? "" : `/${action}`}`

const sourceText = (source: Transforms.Source) => ("prefix" in source ? `${source.prefix}*` : source.log)

/** Rows of cells as columns aligned on spaces, the first row the header. */
const table = (rows: ReadonlyArray<ReadonlyArray<string>>) => {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  ")).join("\n")
}

/** A word as a shell reads it back: as it is if it is plain, else in single quotes. */
const shellWord = (word: string) => (/^[\w./:@%+=,-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`)

/** One transform as a readable block: its figures, then each failed log with the command that skips its record. */
const statusBlock = (t: TransformStatus) => {
  const lines = [
    `name:         ${t.name}`,
    `source:       ${"prefix" in t.source ? `prefix ${JSON.stringify(t.source.prefix)}` : `log ${JSON.stringify(t.source.log)}`}`,
    `status:       ${t.status}${t.catchingUp ? " (catching up)" : ""}`,
    `in:           ${t.recordsIn} records (${t.commits} commits)`,
    `out:          ${t.recordsOut} log records, ${t.samplesOut} samples (${t.samplesRejected} rejected)`,
    `lag:          ${t.lagRecords} records, ${t.lagMs} ms`,
    `retrying:     ${t.retrying ?? "no"}`,
    `failed logs:  ${t.failedLogCount}`
  ]
  for (const f of t.failedLogs) {
    lines.push(`  ${f.key} at offset ${f.offset}: ${f.error}`)
    lines.push(`    skip it: opendata transforms skip ${shellWord(t.name)} --log ${shellWord(f.key)} --offset ${f.offset}`)
  }
  if (t.failedLogCount > t.failedLogs.length) lines.push(`  ... and ${t.failedLogCount - t.failedLogs.length} more`)
  return lines.join("\n")
}

const transformName = Argument.String("name").pipe(Argument.withDescription("the transform's name"))
const transformJson = Flag.Boolean("json").pipe(Flag.withDescription("the transform's status as the API returns it"), Flag.withDefault(false))

const listJson = Flag.Boolean("json").pipe(Flag.withDescription("one JSON object a transform, as the API returns it"), Flag.withDefault(false))

const transformsList = Command.make("list", { url, token, json: listJson }, (flags) =>
  Effect.gen(function*() {
    const { transforms } = yield* transformsApi<{ transforms: ReadonlyArray<TransformStatus> }>(flags, "GET", "/v1/transforms")
    if (flags.json) {
      for (const t of transforms) yield* Console.log(JSON.stringify(t))
      return
    }
    yield* Console.log(table([
      ["NAME", "SOURCE", "STATUS", "IN", "OUT", "SAMPLES", "LAG RECORDS", "LAG MS", "FAILED LOGS"],
      ...transforms.map((t) => [
        t.name,
        sourceText(t.source),
        t.status,
        String(t.recordsIn),
        String(t.recordsOut),
        String(t.samplesOut),
        String(t.lagRecords),
        String(t.lagMs),
        String(t.failedLogCount)
      ])
    ]))
  })).pipe(
    Command.withShortDescription("A table of the transforms, a row each"),
    Command.withDescription(
      "A table of the transforms: name, source, status, input records processed, log records and samples written (since the server started), lag (records, ms), failed logs"
    )
  )

const transformsShow = Command.make("show", { url, token, json: transformJson, name: transformName }, (flags) =>
  Effect.gen(function*() {
    const t = yield* transformsApi<TransformStatus>(flags, "GET", transformPath(flags.name))
    yield* Console.log(flags.json ? JSON.stringify(t, null, 2) : statusBlock(t))
  })).pipe(Command.withDescription("One transform's status, with its failed logs (the record each stopped at, and why)"))

/** pause, resume and reset: the action, then the transform's status. */
const transformAction = (action: "pause" | "resume" | "reset", done: string, short: string, description = short) =>
  Command.make(action, { url, token, json: transformJson, name: transformName }, (flags) =>
    Effect.gen(function*() {
      const t = yield* transformsApi<TransformStatus>(flags, "POST", transformPath(flags.name, action))
      yield* Console.log(flags.json ? JSON.stringify(t, null, 2) : `${done} ${t.name}\n${statusBlock(t)}`)
    })).pipe(Command.withShortDescription(short), Command.withDescription(description))

const transformsPause = transformAction("pause", "paused", "Stop processing after the batch in flight, until resumed (or the server restarts)")
const transformsResume = transformAction("resume", "resumed", "Go on processing after a pause")
const transformsReset = transformAction(
  "reset",
  "reset",
  "Process the source again from the start, writing every output again (admin scope)",
  "Forget every position, state and failure, and process the source again from the start: every output is written again, after those written before (admin scope)"
)

const transformsSkip = Command.make(
  "skip",
  {
    url,
    token,
    json: transformJson,
    name: transformName,
    log: Flag.String("log").pipe(Flag.withDescription("the failed input log (its key)")),
    offset: Flag.Int("offset").pipe(Flag.withDescription("the offset of the record it failed at, as `show` gives it"))
  },
  (flags) =>
    Effect.gen(function*() {
      const query = new URLSearchParams({ log: flags.log, offset: String(flags.offset) })
      const t = yield* transformsApi<TransformStatus>(flags, "POST", `${transformPath(flags.name, "skip")}?${query}`)
      yield* Console.log(flags.json ? JSON.stringify(t, null, 2) : `skipped ${flags.log}@${flags.offset} in ${t.name}\n${statusBlock(t)}`)
    })
).pipe(
  Command.withDescription("Move a failed log past the record it failed at (its state kept), so that the transform goes on with the next"),
  Command.withExamples([{ command: "opendata transforms skip enrich --log orders/42 --offset 7", description: "as `opendata transforms show enrich` suggests" }])
)

const transformsCommand = Command.make("transforms").pipe(
  Command.withDescription("The transforms of a running server: list, show, pause, resume, reset, and skip a failed record, over its API"),
  Command.withSubcommands([transformsList, transformsShow, transformsPause, transformsResume, transformsReset, transformsSkip])
)

const opendata = Command.make("opendata").pipe(
  Command.withDescription("OpenData: a Prometheus-compatible TSDB and an event store on object storage"),
  Command.withSubcommands([serve, inspectCommand, verifyCommand, compactCommand, versionCommand, logsCommand, transformsCommand])
)

/**
 * The CLI's built-in global flags, but for its `--log-level`: `serve` has its own, which also takes
 * `OPENDATA_LOG_LEVEL` and the file, and sets the format and the access-log policy with it.
 */
const cliConfig = CliConfig.layer({ builtIns: [GlobalFlag.Help, GlobalFlag.Version, GlobalFlag.Wizard, GlobalFlag.Completions] })

// The CLI shows its own usage errors (with the help); every other failure is one line on stderr.
runMain(opendata.pipe(Command.run({ version }), Effect.provide(Layer.merge(NodeServices.layer, cliConfig))), {
  alreadyReported: CliError.isCliError
})
