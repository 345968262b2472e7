/**
 * The one HTTP server of a process. It opens the configured object store, then serves the health
 * endpoints (`/-/healthy`, `/-/ready`, as Prometheus names them), `/metrics`, and the products' APIs: the
 * EventStore (`/v1/logs`, `/v1/groups`, `/v1/tail`, on its own `Db` under `eventstore/` in the store) and
 * the TSDB (the Prometheus API under `/api/v1/`, on its own `Db` under `tsdb/`).
 *
 * Roles (see `Config.Role`): `all` opens each product's Db as the writer, with compaction and garbage
 * collection in process. Over one shared bucket, `writer` does the same without compaction and GC,
 * `reader` runs the products on read-only followers of the Dbs (writes answer 503, naming the writer),
 * and `compactor` serves no product API: it compacts and collects both Dbs under its own epoch.
 *
 * Closing its scope (SIGINT/SIGTERM in `main.ts`) marks it not ready, stops accepting requests, lets
 * in-flight ones finish, then closes the products and the store.
 */
import { createServer } from "node:http"
import * as v8 from "node:v8"
import { NodeHttpServer } from "@effect/platform-node"
import { Clock, Context, Deferred, Effect, Layer, Logger, LogLevel, Ref, References } from "effect"
import { HttpRouter, HttpServer, type HttpServerError, HttpServerResponse } from "effect/http"
import { Db, ObjectStore } from "@opendata/core"
import { EventStoreHttp, layer as layerEventStoreOnDb, Transforms } from "@opendata/eventstore"
import type { EventStore, EventStoreSettings } from "@opendata/eventstore"
import { Limits as TsdbLimits, Otlp as TsdbOtlp, Tsdb, TsdbHttp } from "@opendata/tsdb"
import * as Auth from "./Auth.ts"
import type { Role, RuntimeConfig, StoreConfig } from "./Config.ts"
import { describe as describeConfig, flushIntervalFor, heapGrowthPercentDefault } from "./Config.ts"
import * as Metrics from "./Metrics.ts"
import * as Status from "./Status.ts"
import * as RuntimeTransforms from "./Transforms.ts"
import * as Ui from "./Ui.ts"

/** Whether the process is ready to serve: true once everything is open, false again while shutting down. */
export class Readiness extends Context.Service<Readiness, Ref.Ref<boolean>>()("@opendata/runtime/Readiness") {}

/** The object store a configuration names. */
export const layerStore = (store: StoreConfig, preflight: boolean): Layer.Layer<ObjectStore.ObjectStore, ObjectStore.StoreUnusable> => {
  switch (store.kind) {
    case "memory":
      return ObjectStore.layerMemory
    case "local":
      return ObjectStore.layerLocal({ root: store.root, preflight })
    case "s3":
      return ObjectStore.layerS3({ ...store.settings, preflight })
  }
}

const healthRoutes = Layer.mergeAll(
  HttpRouter.add("GET", "/-/healthy", Metrics.noParameters(Effect.succeed(HttpServerResponse.text("OpenData is Healthy.\n")))),
  HttpRouter.add(
    "GET",
    "/-/ready",
    Metrics.noParameters(Effect.gen(function*() {
      const ready = yield* Ref.get(yield* Readiness)
      return ready
        ? HttpServerResponse.text("OpenData is Ready.\n")
        : HttpServerResponse.text("Service Unavailable\n", { status: 503 })
    }))
  )
)

const readiness = Layer.effect(Readiness, Ref.make(false))

/** Where each product's Db lives in the object store. */
export const productPaths = { eventStore: "eventstore/", tsdb: "tsdb/" } as const

/** A product's Db as a role opens it: the writer (with or without compaction and GC), or a follower. */
export const layerDb = (
  path: string,
  role: Exclude<Role, "compactor">,
  settings: Db.DbSettings = {}
): Layer.Layer<Db.Db, Db.DbError, ObjectStore.ObjectStore> =>
  role === "reader"
    ? Db.layerFollower({ path })
    : Db.layer({ ...settings, path, ...(role === "writer" ? { compactor: false, gc: false } : {}) })

/** The EventStore service on its own Db (object keys under `eventstore/`) in the object store. */
export const layerEventStore = <R = ObjectStore.ObjectStore>(
  settings: EventStoreSettings,
  db: Layer.Layer<Db.Db, Db.DbError, R> = Db.layer({ path: productPaths.eventStore }) as Layer.Layer<Db.Db, Db.DbError, R>
): Layer.Layer<EventStore.EventStore, Db.DbError, R> => layerEventStoreOnDb(settings).pipe(Layer.provide(db))

/** The TSDB service on its own Db (object keys under `tsdb/`) in the object store. */
export const layerTsdb = <R = ObjectStore.ObjectStore>(
  settings: Tsdb.TsdbSettings = {},
  db: Layer.Layer<Db.Db, Db.DbError, R> = Db.layer({ path: productPaths.tsdb }) as Layer.Layer<Db.Db, Db.DbError, R>
): Layer.Layer<Tsdb.Tsdb, Db.DbError, R> => Tsdb.layer(settings).pipe(Layer.provide(db))

/**
 * A reader never enforces retention (that deletes, which is the writer's job): its retention loops wait
 * this long, the longest timer Node keeps (about 24.8 days), and the process is normally restarted sooner.
 */
const readerRetentionIntervalMs = 2 ** 31 - 1

/** A product's Db whose stats `/metrics` reports, labelled `db="<name>"`. */
const measured = (name: string, db: Layer.Layer<Db.Db, Db.DbError, ObjectStore.ObjectStore>) =>
  Layer.effect(
    Db.Db,
    Effect.gen(function*() {
      const opened = yield* Db.Db
      const metrics = yield* Metrics.Metrics
      yield* metrics.register(Effect.map(opened.stats, (stats) => Metrics.dbSamples(name, stats)))
      const dbs = yield* Status.ProductDbs
      yield* Effect.acquireRelease(Effect.sync(() => dbs.set(name, opened.stats)), () => Effect.sync(() => dbs.delete(name)))
      return opened
    })
  ).pipe(Layer.provide(logOpening(name, db)))

/** Both products, on their Dbs as the role opens them. */
const layerProducts = (config: RuntimeConfig, role: Exclude<Role, "compactor">) => {
  const dbSettings: Db.DbSettings = {
    flushIntervalMs: flushIntervalFor(config),
    ...(config.blockCacheMb !== undefined ? { blockCacheBytes: config.blockCacheMb * 2 ** 20 } : {})
  }
  const reader = role === "reader"
  // Each product's service is wrapped to count its writes, appends, tails and queries for `/metrics`.
  return Layer.mergeAll(
    Metrics.measureEventStore(layerEventStore(
      { ...config.eventStore, ...(reader ? { retentionIntervalMs: readerRetentionIntervalMs } : {}) },
      measured("eventstore", layerDb(productPaths.eventStore, role, dbSettings))
    )),
    Metrics.measureTsdb(layerTsdb(
      {
        ...(config.tsdbRetentionMs !== undefined ? { retentionMs: config.tsdbRetentionMs } : {}),
        ...(reader ? { retentionIntervalMs: readerRetentionIntervalMs } : {}),
        // Start timestamps are kept when PromQL may use them (Prometheus's st-storage with use-start-timestamps).
        ...(config.tsdbFeatures?.includes("use-start-timestamps") === true ? { startTimestamps: true } : {})
      },
      measured("tsdb", layerDb(productPaths.tsdb, role, dbSettings))
    ))
  )
}

/**
 * The configured transforms, where the EventStore is written (roles `all` and `writer`): their modules are
 * loaded as the server starts (a module that fails to load stops it), and their figures go to `/metrics`.
 */
const layerTransforms = (config: RuntimeConfig) =>
  config.role === "reader" || config.role === "compactor"
    ? Layer.empty
    : config.transforms === undefined || config.transforms.length === 0
    ? RuntimeTransforms.layer([]) // none configured: the API lists none
    : Layer.unwrap(Effect.map(RuntimeTransforms.loadDefinitions(config.transforms), (definitions) =>
      Layer.effectDiscard(Effect.gen(function*() {
        const transforms = yield* Transforms.Transforms
        const metrics = yield* Metrics.Metrics
        yield* metrics.register(Effect.map(transforms.list, RuntimeTransforms.samples))
        yield* Effect.logInfo(`transforms running: ${definitions.map((d) => d.name).join(", ")}`)
      })).pipe(Layer.provideMerge(RuntimeTransforms.layer(definitions)))))

/**
 * The compactor role: compaction and garbage collection of both products' Dbs under its own epoch. A
 * newer compactor fences this one: it stops working and reports not ready (it does not exit, which would
 * have a supervisor restart it and fence the other one in turn).
 */
const layerCompactors = Layer.effectDiscard(
  Effect.gen(function*() {
    const ready = yield* Readiness
    const metrics = yield* Metrics.Metrics
    for (const [name, path] of [["eventstore", productPaths.eventStore], ["tsdb", productPaths.tsdb]] as const) {
      const compactor = yield* Db.makeCompactor({ path })
      yield* metrics.register(Effect.map(compactor.stats, (stats) => Metrics.compactorSamples(name, stats)))
      yield* Effect.forkScoped(
        Effect.flatMap(compactor.stopped, (reason) =>
          Effect.andThen(Effect.logError(`compactor for ${path} stopped: ${reason.message}`), Ref.set(ready, false)))
      )
    }
  })
)

/** Completed when shutdown begins, before the HTTP server waits for in-flight requests. */
class ShuttingDown extends Context.Service<ShuttingDown, Deferred.Deferred<void>>()("@opendata/runtime/ShuttingDown") {}

/** The shutdown signal, and the EventStore's view of it (its open tails close when it completes). */
const shuttingDown = Layer.effect(EventStoreHttp.ShutdownSignal, Effect.map(ShuttingDown, Deferred.await)).pipe(
  Layer.provideMerge(Layer.effect(ShuttingDown, Deferred.make<void>()))
)

/**
 * Built after the HTTP server and so released before it: completes the shutdown signal first, so that
 * long-lived requests (WebSocket tails) end instead of holding the graceful shutdown to its timeout.
 */
const signalShutdown = Layer.effectDiscard(
  Effect.flatMap(ShuttingDown, (signal) => Effect.addFinalizer(() => Deferred.succeed(signal, undefined)))
)

/**
 * WebSocket frames a client may send: an append session's frame is one append, as large as an HTTP
 * append's body may be (the `ws` default would buffer up to 100 MiB per message); a larger one closes the
 * connection with 1009.
 */
const webSocketPayloadMax = EventStoreHttp.requestBodyBytesMax

/** Marks the process ready once everything is open, and not ready as soon as shutdown begins. */
const markReady = (role: Role) => Layer.effectDiscard(
  Effect.gen(function*() {
    const ready = yield* Readiness
    const store = yield* ObjectStore.ObjectStore
    yield* HttpServer.addressFormattedWith((address) => Effect.logInfo(`listening on ${address}`))
    yield* Effect.acquireRelease(
      Effect.andThen(Ref.set(ready, true), Effect.logInfo(`ready; object store: ${store.name}; role: ${role}`)),
      () => Effect.andThen(Ref.set(ready, false), Effect.logInfo("shutting down"))
    )
  })
)

/**
 * Node's HTTP server, answering `CONNECT` (which Node hands to a `connect` listener, or else drops the
 * connection without a word) with 405: this server is no proxy.
 */
const newHttpServer = () => {
  const server = createServer()
  server.on("connect", (_request, socket) => {
    socket.on("error", () => {})
    socket.end("HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD, POST, PUT, DELETE\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
  })
  return server
}

/**
 * The whole server: object store, products, routes and the Node HTTP listener. The products open before
 * the server is marked ready and close after it stopped serving.
 */
export const layer = (
  config: RuntimeConfig
): Layer.Layer<
  HttpServer.HttpServer | Readiness | ObjectStore.ObjectStore,
  HttpServerError.ServeError | Db.DbError | ObjectStore.StoreUnusable | Transforms.InvalidDefinition | RuntimeTransforms.TransformModuleError
> => {
  const listener = NodeHttpServer.layer(newHttpServer, {
    port: config.port,
    host: config.host,
    gracefulShutdownTimeout: "10 seconds",
    websocket: { maxPayload: webSocketPayloadMax }
  })
  // Auth's middleware is added after (so runs inside) the metrics' one: refused requests are counted too.
  const base = Layer.mergeAll(healthRoutes, Metrics.routes, Metrics.httpMiddleware, Auth.layer(config.auth?.tokens ?? []))
  const served = config.role === "compactor"
    ? signalShutdown.pipe(
      Layer.provideMerge(HttpRouter.serve(base, serveOptions)),
      Layer.provideMerge(markReady(config.role)),
      Layer.provideMerge(listener),
      Layer.provideMerge(layerCompactors),
      Layer.provideMerge(readiness),
      Layer.provideMerge(shuttingDown)
    )
    : signalShutdown.pipe(
      Layer.provideMerge(
        HttpRouter.serve(
          Layer.mergeAll(base, EventStoreHttp.routes, TsdbHttp.routes, RuntimeTransforms.routes, Status.routes(config, config.role), Ui.routes()),
          serveOptions
        )
      ),
      Layer.provideMerge(Layer.succeed(TsdbHttp.QueryLimits, {
        timeoutMs: config.tsdbQueryTimeoutMs ?? TsdbLimits.queryTimeoutMsDefault,
        samplesMax: config.tsdbQuerySamplesMax ?? TsdbLimits.querySamplesMax
      })),
      Layer.provideMerge(Layer.succeed(TsdbHttp.OtlpSettings, config.tsdbOtlp ?? TsdbOtlp.defaultSettings)),
      Layer.provideMerge(Layer.succeed(TsdbHttp.PromqlFeatures, config.tsdbFeatures ?? [])),
      Layer.provideMerge(Layer.succeed(TsdbHttp.StatusSettings, {
        retentionMs: config.tsdbRetentionMs ?? TsdbLimits.retentionMsDefault,
        outOfOrderWindowMs: TsdbLimits.outOfOrderWindowMs
      })),
      Layer.provideMerge(markReady(config.role)),
      Layer.provideMerge(listener),
      Layer.provideMerge(readiness),
      Layer.provideMerge(shuttingDown),
      Layer.provideMerge(layerTransforms(config)),
      Layer.provideMerge(layerProducts(config, config.role))
    )
  return served.pipe(
    // No tracer is configured, so a request's span could never be seen: none is made (a span, and a copy of
    // the request's context, per request; and held by every open WebSocket for as long as it lasts).
    Layer.provide(Layer.succeed(References.TracerEnabled, false)),
    Layer.provideMerge(layerCountedStore(config.store, config.preflight)),
    Layer.provideMerge(Metrics.layer),
    Layer.provideMerge(Status.layerProductDbs)
  )
}

/** The configured store, with every request counted and timed for `/metrics`. */
const layerCountedStore = (store: StoreConfig, preflight: boolean) =>
  Layer.effect(
    ObjectStore.ObjectStore,
    Effect.gen(function*() {
      const inner = yield* ObjectStore.ObjectStore
      return Metrics.countingStore(inner, yield* Metrics.Metrics)
    })
  ).pipe(Layer.provide(layerStore(store, preflight)))

// -------------------------------------------------------------------------------------------------
// Logging: format and level, the access-log policy, and what the server logs as it starts
// -------------------------------------------------------------------------------------------------

/**
 * A request that takes longer than this is access-logged (at warn) even when it succeeded. WebSocket
 * tails (status 101) last as long as their client wants and are never slow.
 */
export const slowRequestMs = 1_000

/**
 * Effect's access log (`HttpMiddleware.logger`, which `HttpRouter.serve` installs, and which routes such
 * as remote write or the unknown-route 404 turn off with `withLoggerDisabled`) stays; the address it
 * would log is logged by `markReady` instead, in the same words as the rest.
 */
const serveOptions = { disableListenLog: true } as const

const effectLevels = { debug: "Debug", info: "Info", warn: "Warn", error: "Error" } as const

/**
 * The access-log policy. An entry of Effect's access log (annotated `http.status`, timed by its
 * `http.span`) is re-levelled: a 5xx is an error, a slow request a warning, anything else debug, so that
 * only errors and slow requests show at the default level and every request at `debug`. Any other entry
 * is left as it is.
 */
const accessLogEntry = (options: Logger.Options<unknown>): Logger.Options<unknown> => {
  const status = options.fiber.getRef(References.CurrentLogAnnotations)["http.status"]
  if (typeof status !== "number") return options
  if (status >= 500) return { ...options, logLevel: "Error" }
  const span = options.fiber.getRef(References.CurrentLogSpans).find(([label]) => label === "http.span")
  const tookMs = span === undefined ? 0 : options.date.getTime() - span[1]
  return status !== 101 && tookMs > slowRequestMs
    ? { ...options, logLevel: "Warn", message: `slow request (over ${slowRequestMs} ms)` }
    : { ...options, logLevel: "Debug" }
}

/**
 * The process's logger: one line per entry on stderr, in logfmt or JSON, at the configured level and
 * above, with the access-log policy applied. Effect's own minimum stays at `Info` (unless `debug`), so
 * that the access log's entries reach the policy before the configured level filters them.
 */
export const layerLogging = (config: Pick<RuntimeConfig, "logLevel" | "logFormat">): Layer.Layer<never> => {
  const minimum = effectLevels[config.logLevel ?? "info"]
  const format = config.logFormat === "json" ? Logger.formatJson : Logger.formatLogFmt
  const logger = Logger.make((options) => {
    const entry = accessLogEntry(options)
    if (LogLevel.isLessThan(entry.logLevel, minimum)) return
    process.stderr.write(`${format.log(entry)}\n`)
  })
  return Layer.mergeAll(
    Logger.layer([logger]),
    Layer.succeed(References.MinimumLogLevel, minimum === "Debug" ? "Debug" : "Info")
  )
}

/**
 * A product's Db, logged as it opens: opening replays the WAL written since the last flush, which can take
 * a while after a crash, and the Db reports no progress of its own.
 */
const logOpening = <E, R>(name: string, db: Layer.Layer<Db.Db, E, R>): Layer.Layer<Db.Db, E, R> =>
  Layer.effectContext(Effect.gen(function*() {
    yield* Effect.logInfo(`opening ${name}...`)
    const startedMs = yield* Clock.currentTimeMillis
    const context = yield* Layer.build(db)
    yield* Effect.logInfo(`opened ${name} in ${(yield* Clock.currentTimeMillis) - startedMs} ms`)
    return context
  }))

/**
 * Serves until interrupted (SIGINT, SIGTERM), as `main.ts` and `opendata serve` do: logs the effective
 * configuration (secrets redacted) and, without API tokens, a warning that the API is open; then builds and
 * runs `layer`, all with the configured logger.
 */
export const launch = (config: RuntimeConfig) =>
  Effect.sync(() => applyHeapGrowth(config)).pipe(
    Effect.andThen(Effect.logInfo("configuration").pipe(Effect.annotateLogs(describeConfig(config)))),
    Effect.andThen(Auth.warnIfOpen({ host: config.host, port: config.port, tokens: config.auth?.tokens ?? [] })),
    Effect.andThen(Layer.launch(layer(config))),
    Effect.provide(layerLogging(config))
  )

/**
 * Sets how far V8 lets the heap grow past the live data of the last full collection (see
 * `Config.heapGrowthPercentDefault`). A process setting: applied by `launch` (the `opendata` process), not by
 * the layers an application embeds. V8 reads it at each full collection, so setting it after start works.
 */
const applyHeapGrowth = (config: RuntimeConfig) => {
  const percent = config.heapGrowthPercent ?? heapGrowthPercentDefault
  if (percent > 0) v8.setFlagsFromString(`--heap-growing-percent=${percent}`)
}
