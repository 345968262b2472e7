#!/usr/bin/env node
/**
 * The `opendata` command:
 *
 *   opendata serve   [--port N] [--data-dir DIR] [--store local|s3|memory] [--role all|writer|reader|compactor] [--config FILE]
 *                    serve both products (npm start); with --role, one role over a shared s3 bucket
 *   opendata inspect [--data-dir DIR] [--store ...]   manifest versions, epochs, objects and sizes per product
 *   opendata verify  [--data-dir DIR] [--store ...]   read every referenced object and check every checksum
 *
 * Flags override the `OPENDATA_*` environment variables, which override the configuration file
 * (`opendata.yaml`, see ConfigFile.ts), which overrides the defaults.
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Cause, ConfigProvider, Console, Effect, Exit, Layer, Option, Runtime } from "effect"
import { Command, Flag } from "effect/cli"
import { Db } from "@opendata/core"
import * as Config from "./Config.ts"
import * as ConfigFile from "./ConfigFile.ts"
import * as Server from "./Server.ts"
import { forceExitOnSecondSignal } from "./Signals.ts"

const port = Flag.Int("port").pipe(Flag.withDescription("HTTP port (default 9095; env OPENDATA_PORT)"), Flag.optional)
const dataDir = Flag.String("data-dir").pipe(Flag.withDescription("directory of the local store (default ./data; env OPENDATA_DATA_DIR)"), Flag.optional)
const store = Flag.Literals("store", ["local", "s3", "memory"]).pipe(Flag.withDescription("object store kind (default local; env OPENDATA_STORE)"), Flag.optional)
const role = Flag.Literals("role", ["all", "writer", "reader", "compactor"]).pipe(
  Flag.withDescription("what this process does (default all; env OPENDATA_ROLE): writer, reader and compactor split the work over one s3 bucket"),
  Flag.optional
)
const configFile = Flag.String("config").pipe(Flag.withDescription("configuration file (default ./opendata.yaml if present; env OPENDATA_CONFIG)"), Flag.optional)

/** The configuration: flags (already in the environment), then the environment, then the file. */
const loadConfig = (file: Option.Option<string>) =>
  Effect.flatMap(ConfigFile.provider(Option.getOrUndefined(file)), (provider) =>
    Effect.provideService(Config.load, ConfigProvider.ConfigProvider, provider))

/** Flags win over the environment: they are written into it before the configuration is read. */
const applyFlags = (flags: {
  readonly port?: Option.Option<number>
  readonly dataDir: Option.Option<string>
  readonly store: Option.Option<string>
  readonly role?: Option.Option<string>
}) =>
  Effect.sync(() => {
    if (flags.role !== undefined && Option.isSome(flags.role)) process.env["OPENDATA_ROLE"] = flags.role.value
    if (flags.port !== undefined && Option.isSome(flags.port)) process.env["OPENDATA_PORT"] = String(flags.port.value)
    if (Option.isSome(flags.dataDir)) process.env["OPENDATA_DATA_DIR"] = flags.dataDir.value
    if (Option.isSome(flags.store)) process.env["OPENDATA_STORE"] = flags.store.value
  })

const products = Object.values(Server.productPaths)

/** The configured object store, opened read-only (no preflight probes). */
const storeLayer = (file: Option.Option<string>) => Effect.map(loadConfig(file), (config) => Server.layerStore(config.store, false))

const serve = Command.make("serve", { port, dataDir, store, role, config: configFile }, (flags) =>
  Effect.gen(function*() {
    yield* applyFlags(flags)
    const config = yield* loadConfig(flags.config)
    return yield* Layer.launch(Server.layer(config))
  })).pipe(
    Command.withDescription("Serve the EventStore and the TSDB over HTTP (what `npm start` runs)"),
    Command.withExamples([
      { command: "opendata serve --port 9095 --data-dir ./data", description: "embedded, on a local directory" },
      { command: "OPENDATA_STORE=s3 OPENDATA_S3_BUCKET=b opendata serve --role writer", description: "the ingest role over a shared bucket" },
      { command: "OPENDATA_STORE=s3 OPENDATA_S3_BUCKET=b opendata serve --role reader --port 9096", description: "a query and tail role over the same bucket" },
      { command: "OPENDATA_STORE=s3 OPENDATA_S3_BUCKET=b opendata serve --role compactor --port 9097", description: "compaction and garbage collection" }
    ])
  )

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(2)} MiB`

const inspectCommand = Command.make("inspect", { dataDir, store, config: configFile }, (flags) =>
  Effect.gen(function*() {
    yield* applyFlags({ ...flags })
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
    }
  })).pipe(Command.withDescription("Show manifest versions, epochs, and objects with their sizes, for each product"))

const verifyCommand = Command.make("verify", { dataDir, store, config: configFile }, (flags) =>
  Effect.gen(function*() {
    yield* applyFlags({ ...flags })
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
  })).pipe(Command.withDescription("Read every object the latest manifests reference and check every checksum"))

const opendata = Command.make("opendata").pipe(
  Command.withDescription("OpenData: a Prometheus-compatible TSDB and an event store on object storage"),
  Command.withSubcommands([serve, inspectCommand, verifyCommand])
)

const teardown: Runtime.Teardown = (exit, onExit) =>
  Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)

forceExitOnSecondSignal()
opendata.pipe(Command.run({ version: "0.1.0" }), Effect.provide(NodeServices.layer), (self) => NodeRuntime.runMain(self as never, { teardown }))
