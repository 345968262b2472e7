import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect } from "effect"
import { ObjectStore } from "@opendata/core"
import { conformance } from "./conformance.ts"

conformance("memory", () => ObjectStore.layerMemory)

describe("memory store", () => {
  // A conditional write's check and its write must be one step: the store reads the clock in between,
  // and another fiber may run while it does (under the simulation's clock it did: two put-if-absent both
  // won, and a fenced writer's WAL object and its successor's fence shared a slot, db seed 1478).
  it.effect("of concurrent conditional writes on one key exactly one wins, even when reading the clock lets other fibers run", () =>
    Effect.gen(function*() {
      const clock = yield* Clock.Clock
      const yielding: Clock.Clock = { ...clock, currentTimeMillis: Effect.andThen(Effect.yieldNow, clock.currentTimeMillis) }
      const store = yield* ObjectStore.ObjectStore
      const race = <A, E>(attempt: (name: string) => Effect.Effect<A, E>) =>
        Effect.map(
          Effect.all(["a", "b", "c"].map((name) => Effect.exit(attempt(name))), { concurrency: "unbounded" }),
          (exits) => exits.filter((e) => e._tag === "Success").length
        ).pipe(Effect.provideService(Clock.Clock, yielding))
      assert.strictEqual(yield* race((name) => store.putIfAbsent("race/absent", new TextEncoder().encode(name), { putId: name })), 1)
      const base = yield* store.put("race/match", new Uint8Array([0]))
      assert.strictEqual(yield* race((name) => store.putIfMatch("race/match", new TextEncoder().encode(name), base.etag, { putId: name })), 1)
    }).pipe(Effect.provide(ObjectStore.layerMemory)))
})
