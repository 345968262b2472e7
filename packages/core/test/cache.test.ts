/** The byte-bounded cache of blocks and table metadata (src/internal/cache.ts). */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import { makeCache } from "../src/internal/cache.ts"

const sized = (capacityBytes: number) => makeCache<string>({ capacityBytes, sizeOf: (v) => v.length })

describe("cache", () => {
  it.effect("stays within its bytes, evicting the least recently used entry", () =>
    Effect.gen(function*() {
      const cache = sized(30)
      for (const k of ["a", "b", "c"]) yield* cache.getOrLoad(k, Effect.succeed(k.repeat(10)))
      // "a" is used again: when room is needed, "b" (the least recently used) goes first.
      assert.strictEqual(cache.peek("a"), "aaaaaaaaaa")
      yield* cache.getOrLoad("d", Effect.succeed("d".repeat(10)))
      assert.strictEqual(cache.peek("b"), undefined)
      assert.strictEqual(cache.peek("a"), "aaaaaaaaaa")
      assert.strictEqual(cache.peek("c"), "cccccccccc")
      assert.isAtMost(cache.stats().bytes, 30)
      // Then "a" (used before "c" was) goes.
      yield* cache.getOrLoad("e", Effect.succeed("e".repeat(10)))
      assert.strictEqual(cache.stats().entries, 3)
      assert.isAtMost(cache.stats().bytes, 30)
      assert.strictEqual(cache.stats().evictions, 2)
      // A value larger than the capacity is returned, not kept.
      assert.strictEqual(yield* cache.getOrLoad("big", Effect.succeed("x".repeat(31))), "x".repeat(31))
      assert.strictEqual(cache.peek("big"), undefined)
    }))

  it.effect("loads once for concurrent misses, and does not keep a failed load", () =>
    Effect.gen(function*() {
      const cache = sized(100)
      const gate = yield* Deferred.make<void>()
      let loads = 0
      const load = Effect.andThen(Deferred.await(gate), Effect.sync(() => `v${++loads}`))
      const fibers = yield* Effect.forEach([1, 2, 3], () => Effect.forkChild(cache.getOrLoad("k", load)))
      yield* Effect.yieldNow
      yield* Deferred.succeed(gate, undefined)
      const values = yield* Effect.forEach(fibers, Fiber.join)
      assert.deepStrictEqual(values, ["v1", "v1", "v1"])
      assert.strictEqual(loads, 1)
      const failed = yield* Effect.exit(cache.getOrLoad("bad", Effect.fail("boom")))
      assert.isTrue(failed._tag === "Failure")
      assert.strictEqual(cache.peek("bad"), undefined)
    }))
})
