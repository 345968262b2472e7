/**
 * The one HTTP server of a process. It opens the configured object store, then serves the health
 * endpoints (`/-/healthy`, `/-/ready`, as Prometheus names them) and the products' APIs: the EventStore
 * (`/v1/logs`, `/v1/groups`, `/v1/tail`, on its own `Db` under `eventstore/` in the store) and the TSDB
 * (the Prometheus API under `/api/v1/`, on its own `Db` under `tsdb/`).
 * Closing its scope (SIGINT/SIGTERM in `main.ts`) marks it not ready, stops accepting requests, lets
 * in-flight ones finish, then closes the products and the store.
 */
import { createServer } from "node:http"
import { NodeHttpServer } from "@effect/platform-node"
import { Context, Deferred, Effect, Layer, Ref } from "effect"
import { HttpRouter, type HttpServer, type HttpServerError, HttpServerResponse } from "effect/http"
import { Db, ObjectStore } from "@opendata/core"
import { EventStoreHttp, layer as layerEventStoreOnDb } from "@opendata/eventstore"
import type { EventStore, EventStoreSettings } from "@opendata/eventstore"
import { Tsdb, TsdbHttp } from "@opendata/tsdb"
import type { RuntimeConfig, StoreConfig } from "./Config.ts"
import * as Metrics from "./Metrics.ts"

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
  HttpRouter.add("GET", "/-/healthy", HttpServerResponse.text("OpenData is Healthy.\n")),
  HttpRouter.add(
    "GET",
    "/-/ready",
    Effect.gen(function*() {
      const ready = yield* Ref.get(yield* Readiness)
      return ready
        ? HttpServerResponse.text("OpenData is Ready.\n")
        : HttpServerResponse.text("Service Unavailable\n", { status: 503 })
    })
  )
)

const readiness = Layer.effect(Readiness, Ref.make(false))

/** The EventStore service on its own Db (object keys under `eventstore/`) in the object store. */
export const layerEventStore = (
  settings: EventStoreSettings
): Layer.Layer<EventStore.EventStore, Db.DbError, ObjectStore.ObjectStore> =>
  layerEventStoreOnDb(settings).pipe(Layer.provide(Db.layer({ path: "eventstore/" })))

/** The TSDB service on its own Db (object keys under `tsdb/`) in the object store. */
export const layerTsdb = (settings: Tsdb.TsdbSettings = {}): Layer.Layer<Tsdb.Tsdb, Db.DbError, ObjectStore.ObjectStore> =>
  Tsdb.layer(settings).pipe(Layer.provide(Db.layer({ path: "tsdb/" })))

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
 * WebSocket frames a client may send: the EventStore's tails read nothing from their clients, so frames
 * are kept small (the `ws` default would buffer up to 100 MiB per message).
 */
const webSocketPayloadMax = 64 * 1024

/** Marks the process ready once everything is open, and not ready as soon as shutdown begins. */
const markReady = Layer.effectDiscard(
  Effect.gen(function*() {
    const ready = yield* Readiness
    const store = yield* ObjectStore.ObjectStore
    yield* Effect.acquireRelease(
      Effect.andThen(Ref.set(ready, true), Effect.logInfo(`ready; object store: ${store.name}`)),
      () => Effect.andThen(Ref.set(ready, false), Effect.logInfo("shutting down"))
    )
  })
)

/**
 * The whole server: object store, products, routes and the Node HTTP listener. The products open before
 * the server is marked ready and close after it stopped serving.
 */
export const layer = (
  config: RuntimeConfig
): Layer.Layer<
  HttpServer.HttpServer | Readiness | EventStore.EventStore | Tsdb.Tsdb | ObjectStore.ObjectStore,
  HttpServerError.ServeError | Db.DbError | ObjectStore.StoreUnusable
> =>
  signalShutdown.pipe(
    Layer.provideMerge(
      HttpRouter.serve(Layer.mergeAll(healthRoutes, EventStoreHttp.routes, TsdbHttp.routes, Metrics.routes, Metrics.httpMiddleware))
    ),
    Layer.provideMerge(markReady),
    Layer.provideMerge(
      NodeHttpServer.layer(createServer, {
        port: config.port,
        host: config.host,
        gracefulShutdownTimeout: "10 seconds",
        websocket: { maxPayload: webSocketPayloadMax }
      })
    ),
    Layer.provideMerge(readiness),
    Layer.provideMerge(shuttingDown),
    Layer.provideMerge(layerEventStore(config.eventStore)),
    Layer.provideMerge(layerTsdb()),
    Layer.provideMerge(layerCountedStore(config.store, config.preflight)),
    Layer.provideMerge(Metrics.layer)
  )

/** The configured store, with every request counted and timed for `/metrics`. */
const layerCountedStore = (store: StoreConfig, preflight: boolean) =>
  Layer.effect(
    ObjectStore.ObjectStore,
    Effect.gen(function*() {
      const inner = yield* ObjectStore.ObjectStore
      return Metrics.countingStore(inner, yield* Metrics.Metrics)
    })
  ).pipe(Layer.provide(layerStore(store, preflight)))
