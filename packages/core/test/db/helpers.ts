/** Helpers for the Db tests: byte keys, a store that can "crash", and opening Dbs in their own scopes. */
import { Effect, Exit, Layer, Option, Scope } from "effect"
import { Db, ObjectStore } from "@opendata/core"

export const b = (s: string) => new TextEncoder().encode(s)
export const s = (bytes: Uint8Array | undefined) => (bytes === undefined ? undefined : new TextDecoder().decode(bytes))

/** Small bounds so that tests exercise flushes, compactions and GC with little data. */
export const small: Db.DbSettings = {
  flushIntervalMs: 0,
  memtableBytesMax: 2048,
  unflushedBytesMax: 64 * 1024,
  l0CompactionTrigger: 3,
  l0Max: 8,
  sortedRunsMax: 2,
  blockBytesTarget: 256,
  sstBytesTarget: 4096,
  gcMinAgeMs: 0,
  gcIntervalMs: 3_600_000
}

/**
 * A store shared by successive Db instances, that can be "crashed": from then on every call by the Dbs
 * opened before never completes, as if their process had died. Dbs opened later see the durable state.
 */
export const crashableStore = Effect.gen(function*() {
  const shared = yield* ObjectStore.ObjectStore.use(Effect.succeed).pipe(Effect.provide(ObjectStore.layerMemory))
  let generation = 0
  const view = (): ObjectStore.ObjectStoreShape => {
    const mine = generation
    const gate = <A, E>(self: Effect.Effect<A, E>): Effect.Effect<A, E> =>
      Effect.suspend(() => (mine === generation ? self : Effect.never))
    return {
      ...shared,
      get: (k, r) => gate(shared.get(k, r)),
      head: (k) => gate(shared.head(k)),
      put: (k, body, o) => gate(shared.put(k, body, o)),
      putIfAbsent: (k, body, o) => gate(shared.putIfAbsent(k, body, o)),
      putIfMatch: (k, body, e, o) => gate(shared.putIfMatch(k, body, e, o)),
      listPage: (p, o) => gate(shared.listPage(p, o)),
      list: (p, o) => shared.list(p, o).pipe((st) => st),
      delete: (k) => gate(shared.delete(k)),
      resolvePut: (k, id) => gate(shared.resolvePut(k, id))
    }
  }
  return {
    shared,
    /** Opens a Db in a new scope; `close` closes it gracefully. */
    open: (settings: Db.DbSettings = small) =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const db = yield* Db.make(settings).pipe(
          Effect.provideService(ObjectStore.ObjectStore, view()),
          Scope.provide(scope)
        )
        return { db, close: Scope.close(scope, Exit.void) }
      }),
    /** Every Db opened so far stops reaching the store, mid-operation or not. */
    crash: Effect.sync(() => {
      generation += 1
    })
  }
})

export const layerMemoryDb = (settings: Db.DbSettings = small) => Db.layer(settings).pipe(Layer.provide(ObjectStore.layerMemory))

/** "ok", the tag of the typed failure, or "defect". */
export const failureTag = (exit: Exit.Exit<unknown, { readonly _tag: string }>) => {
  if (Exit.isSuccess(exit)) return "ok"
  const e = Exit.findErrorOption(exit)
  return Option.isSome(e) ? e.value._tag : "defect"
}
