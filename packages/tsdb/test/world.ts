/**
 * Test support: a TSDB over a Db over a memory store that outlives it, so a test can close and reopen it
 * (no background retention pass; tests move their clocks far).
 */
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { Db, ObjectStore } from "@opendata/core"
import { layer, Tsdb } from "../src/Tsdb.ts"
import type { TsdbSettings } from "../src/Tsdb.ts"

export const world = Effect.gen(function*() {
  const store = yield* ObjectStore.ObjectStore.use(Effect.succeed).pipe(Effect.provide(ObjectStore.layerMemory))
  const open = (settings: TsdbSettings = {}) =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        layer({ retentionIntervalMs: Number.MAX_SAFE_INTEGER, ...settings }).pipe(
          Layer.provide(Db.layer({ path: "tsdb/", flushIntervalMs: 0, memtableBytesMax: 64 * 1024, gc: false })),
          Layer.provide(Layer.succeed(ObjectStore.ObjectStore, store))
        ),
        scope
      )
      return { tsdb: Context.get(context, Tsdb), close: Scope.close(scope, Exit.void) }
    })
  return { open }
})
