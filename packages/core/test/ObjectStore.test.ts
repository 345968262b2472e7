import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Random } from "effect"
import { ObjectStore } from "@opendata/core"

const bytes = (s: string) => new TextEncoder().encode(s)

/** A memory store that ignores conditions, like the S3 emulators that "support" them. */
const ignoresConditions = (): ObjectStore.Driver => {
  const inner = ObjectStore.toDriver(ObjectStore.make(memoryDriver()))
  return {
    ...inner,
    putIfAbsent: (key, body, putId) => inner.put(key, body, putId),
    putIfMatch: (key, body, _etag, putId) => inner.put(key, body, putId)
  }
}
const memoryDriver = (): ObjectStore.Driver =>
  ObjectStore.toDriver(Effect.runSync(ObjectStore.ObjectStore.use(Effect.succeed).pipe(Effect.provide(ObjectStore.layerMemory))))

const errorOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const e = Exit.findErrorOption(exit)
  return e._tag === "Some" ? e.value : undefined
}

describe("ObjectStore", () => {
  it.effect("refuses on open a store that accepts a second put-if-absent", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(ObjectStore.preflight(ObjectStore.make(ignoresConditions())))
      const error = errorOf(exit)
      assert.strictEqual(error?._tag, "StoreUnusable")
      assert.match(error!.message, /second put-if-absent/)
    }))

  it.effect("accepts a correct store in the preflight and leaves nothing behind", () =>
    Effect.gen(function*() {
      const store = ObjectStore.make(memoryDriver())
      yield* ObjectStore.preflight(store)
      assert.deepStrictEqual((yield* store.listPage("")).entries, [])
    }))

  it.live("retries Unavailable on its schedule, then gives up with Unavailable", () =>
    Effect.gen(function*() {
      let calls = 0
      const down: ObjectStore.Driver = {
        ...memoryDriver(),
        get: (key) =>
          Effect.suspend(() => {
            calls += 1
            return Effect.fail(new ObjectStore.Unavailable({ operation: "get", key, reason: "down" }))
          })
      }
      const store = ObjectStore.make(down, { retry: { retriesMax: 3, delayBaseMs: 1, delayMaxMs: 1 } })
      const exit = yield* Effect.exit(store.get("k"))
      assert.strictEqual(errorOf(exit)?._tag, "Unavailable")
      assert.strictEqual(calls, 4)
    }))

  it.live("never retries a lost race", () =>
    Effect.gen(function*() {
      let calls = 0
      const base = memoryDriver()
      const counting: ObjectStore.Driver = {
        ...base,
        putIfAbsent: (key, body, putId) => Effect.suspend(() => ((calls += 1), base.putIfAbsent(key, body, putId)))
      }
      const store = ObjectStore.make(counting)
      yield* store.putIfAbsent("k", bytes("1"))
      const exit = yield* Effect.exit(store.putIfAbsent("k", bytes("2")))
      assert.strictEqual(errorOf(exit)?._tag, "AlreadyExists")
      assert.strictEqual(calls, 2)
    }))

  it.live("reports OutcomeUnknown with the put-id when the object cannot be read back", () =>
    Effect.gen(function*() {
      const base = memoryDriver()
      const blind: ObjectStore.Driver = {
        ...base,
        putIfAbsent: (key, body, putId) =>
          Effect.andThen(
            base.putIfAbsent(key, body, putId),
            Effect.fail(new ObjectStore.OutcomeUnknown({ operation: "putIfAbsent", key, putId, reason: "reply lost" }))
          ),
        head: (key) => Effect.fail(new ObjectStore.Unavailable({ operation: "head", key, reason: "down" }))
      }
      const store = ObjectStore.make(blind, { retry: { retriesMax: 2, delayBaseMs: 1, delayMaxMs: 1 } })
      const exit = yield* Effect.exit(store.putIfAbsent("k", bytes("1"), { putId: "p-1" }))
      const error = errorOf(exit)
      assert.strictEqual(error?._tag, "OutcomeUnknown")
      assert.strictEqual((error as ObjectStore.OutcomeUnknown).putId, "p-1")
      // The write did happen; resolving against the real store says so.
      assert.strictEqual((yield* ObjectStore.make(base).resolvePut("k", "p-1"))._tag, "Written")
    }))

  it.live("injects the same faults for the same seed", () =>
    Effect.gen(function*() {
      const trace = (seed: number) =>
        Effect.gen(function*() {
          const store = yield* ObjectStore.ObjectStore
          const outcomes: Array<string> = []
          for (let i = 0; i < 40; i++) {
            const exit = yield* Effect.exit(store.put(`k${i}`, bytes("v")))
            outcomes.push(Exit.isSuccess(exit) ? "ok" : errorOf(exit)!._tag)
          }
          return outcomes.join(",")
        }).pipe(
          Effect.provide(
            ObjectStore.layerFaulty({ seed, unavailableRate: 0.5 }, { retry: { retriesMax: 0 } }).pipe(
              Layer.provide(ObjectStore.layerMemory)
            )
          )
        )
      const a = yield* trace(42)
      assert.strictEqual(a, yield* trace(42))
      assert.notStrictEqual(a, yield* trace(43))
      assert.match(a, /Unavailable/)
      assert.match(a, /ok/)
    }))

  it.live("hides freshly written keys from listings for the configured lag", () =>
    Effect.gen(function*() {
      const store = yield* ObjectStore.ObjectStore
      yield* store.put("lag/a", bytes("a"))
      assert.deepStrictEqual((yield* store.listPage("lag/")).entries, [])
      yield* Effect.sleep("60 millis")
      assert.deepStrictEqual((yield* store.listPage("lag/")).entries.map((e) => e.key), ["lag/a"])
    }).pipe(
      Effect.provide(ObjectStore.layerFaulty({ seed: 1, listingLagMs: 50 }).pipe(Layer.provide(ObjectStore.layerMemory)))
    ))

  it.effect("derives put-ids from the Random service", () =>
    Effect.gen(function*() {
      const a = yield* Random.withSeed(ObjectStore.newPutId, 5)
      const b = yield* Random.withSeed(ObjectStore.newPutId, 5)
      assert.strictEqual(a, b)
      assert.match(a, /^[0-9a-f]{32}$/)
    }))
})
