/**
 * Embedding: the products as Layers inside any Effect app, with or without the HTTP server.
 *
 *   const app = Effect.gen(function*() {
 *     const events = yield* EventStore.EventStore
 *     const tsdb = yield* Tsdb.Tsdb
 *     ...
 *   })
 *   app.pipe(Effect.provide(OpenData.layer({ store: { kind: "local", root: "./data" } })))
 *
 * Each product runs on its own `Db` (its own path in the one object store, its own writer), as in the
 * server, so an embedded process and the server can be pointed at the same data.
 */
import { Layer } from "effect"
import type { Db } from "@opendata/core"
import { ObjectStore } from "@opendata/core"
import type { EventStore, EventStoreSettings } from "@opendata/eventstore"
import type { Tsdb } from "@opendata/tsdb"
import type { StoreConfig } from "./Config.ts"
import { layerEventStore, layerStore, layerTsdb } from "./Server.ts"
import * as RuntimeTransforms from "./Transforms.ts"

export interface OpenDataConfig {
  /** Where the data lives: `{ kind: "memory" }`, `{ kind: "local", root }`, or `{ kind: "s3", settings }`. */
  readonly store: StoreConfig
  /** Check on open that the store honours conditional writes (default true). */
  readonly preflight?: boolean | undefined
  readonly eventStore?: EventStoreSettings | undefined
  readonly tsdb?: Tsdb.TsdbSettings | undefined
}

/** The object store, the EventStore and the TSDB, in process (no HTTP server). */
export const layer = (
  config: OpenDataConfig
): Layer.Layer<EventStore.EventStore | Tsdb.Tsdb | ObjectStore.ObjectStore, Db.DbError | ObjectStore.StoreUnusable> =>
  Layer.mergeAll(layerEventStore(config.eventStore ?? {}), layerTsdb(config.tsdb ?? {})).pipe(
    Layer.provideMerge(layerStore(config.store, config.preflight ?? true))
  )

/** Only the EventStore (and its object store). */
export const layerEventStoreOnly = (config: Omit<OpenDataConfig, "tsdb">) =>
  layerEventStore(config.eventStore ?? {}).pipe(Layer.provideMerge(layerStore(config.store, config.preflight ?? true)))

/** Only the TSDB (and its object store). */
export const layerTsdbOnly = (config: Omit<OpenDataConfig, "eventStore">) =>
  layerTsdb(config.tsdb ?? {}).pipe(Layer.provideMerge(layerStore(config.store, config.preflight ?? true)))

/**
 * Transforms (`Transforms.define(...)` from `@opendata/eventstore`) over the EventStore and the TSDB in
 * context: log outputs to the EventStore, samples to the TSDB. Provide `layer(...)` to it:
 *
 *   OpenData.layerTransforms([enrich]).pipe(Layer.provideMerge(OpenData.layer({ store: { kind: "memory" } })))
 */
export const layerTransforms = RuntimeTransforms.layer

export { ObjectStore }
