/**
 * The one HTTP server of a process. It opens the configured object store, then serves the health
 * endpoints (`/-/healthy`, `/-/ready`, as Prometheus names them); the products mount their APIs on it.
 * Closing its scope (SIGINT/SIGTERM in `main.ts`) marks it not ready, stops accepting requests, lets
 * in-flight ones finish, then closes the store.
 */
import { createServer } from "node:http"
import { NodeHttpServer } from "@effect/platform-node"
import { Context, Effect, Layer, Ref } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { ObjectStore } from "@opendata/core"
import type { RuntimeConfig, StoreConfig } from "./Config.ts"

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

/** The whole server: object store, routes and the Node HTTP listener. */
export const layer = (config: RuntimeConfig) =>
  HttpRouter.serve(healthRoutes).pipe(
    Layer.provideMerge(markReady),
    Layer.provideMerge(NodeHttpServer.layer(createServer, { port: config.port, host: config.host, gracefulShutdownTimeout: "10 seconds" })),
    Layer.provideMerge(readiness),
    Layer.provideMerge(layerStore(config.store, config.preflight))
  )
