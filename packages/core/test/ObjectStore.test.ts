import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Random } from "effect"
import { TestClock } from "effect/testing"
import { ObjectStore } from "@opendata/core"

const bytes = (s: string) => new TextEncoder().encode(s)
const str = (b: Uint8Array) => new TextDecoder().decode(b)

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

  it.effect("keeps freshly deleted keys in listings for the configured lag", () =>
    Effect.gen(function*() {
      const store = yield* ObjectStore.ObjectStore
      yield* store.put("lag/a", bytes("a"))
      yield* store.put("lag/b", bytes("b"))
      yield* TestClock.adjust("100 millis")
      yield* store.delete("lag/a")
      assert.strictEqual(Exit.isFailure(yield* Effect.exit(store.get("lag/a"))), true)
      assert.deepStrictEqual((yield* store.listPage("lag/")).entries.map((e) => e.key), ["lag/a", "lag/b"])
      yield* TestClock.adjust("60 millis")
      assert.deepStrictEqual((yield* store.listPage("lag/")).entries.map((e) => e.key), ["lag/b"])
    }).pipe(
      Effect.provide(ObjectStore.layerFaulty({ seed: 1, listingLagMs: 50 }).pipe(Layer.provide(ObjectStore.layerMemory)))
    ))

  it.effect("fails every request of a kind during an outage window, then heals", () =>
    Effect.gen(function*() {
      const store = yield* ObjectStore.ObjectStore
      yield* store.put("o/a", bytes("a"))
      yield* TestClock.adjust("100 millis")
      // Writes refused from 100 ms to 200 ms; reads still work.
      assert.strictEqual(errorOf(yield* Effect.exit(store.put("o/c", bytes("c"))))?._tag, "Unavailable")
      assert.strictEqual(yield* Effect.map(store.get("o/a"), (r) => r.body.length), 1)
      yield* TestClock.adjust("100 millis")
      // From 200 ms to 300 ms, writes reach the store and lose their reply: a plain put fails though it was
      // applied; a conditional one is settled by reading its put-id back.
      assert.strictEqual(errorOf(yield* Effect.exit(store.put("o/d", bytes("d"))))?._tag, "Unavailable")
      assert.strictEqual((yield* store.head("o/d")).size, 1)
      yield* store.putIfAbsent("o/f", bytes("f"), { putId: "p1" })
      assert.deepStrictEqual(yield* store.resolvePut("o/f", "p1"), { _tag: "Written", etag: (yield* store.head("o/f")).etag })
      yield* TestClock.adjust("100 millis")
      yield* store.put("o/e", bytes("e"))
    }).pipe(
      Effect.provide(ObjectStore.layerFaulty({
        seed: 1,
        outages: [
          { startMs: 100, endMs: 200, operations: "writes", mode: "refuse" },
          { startMs: 200, endMs: 300, operations: "writes", mode: "loseReply" }
        ]
      }, { retry: { retriesMax: 0 } }).pipe(Layer.provide(ObjectStore.layerMemory)))
    ))

  it.effect("a write that lands late is applied after its caller was told it failed", () =>
    Effect.gen(function*() {
      const store = yield* ObjectStore.ObjectStore
      const exit = yield* Effect.exit(store.put("late/a", bytes("a")))
      assert.strictEqual(errorOf(exit)?._tag, "Unavailable")
      assert.strictEqual(errorOf(yield* Effect.exit(store.head("late/a")))?._tag, "NotFound")
      yield* TestClock.adjust("100 millis")
      yield* Effect.yieldNow
      assert.strictEqual((yield* store.head("late/a")).size, 1)
    }).pipe(
      Effect.provide(ObjectStore.layerFaulty({ seed: 1, lateRate: 1, lateMsMax: 50 }, { retry: { retriesMax: 0 } }).pipe(
        Layer.provide(ObjectStore.layerMemory)
      ))
    ))

  it.effect("derives put-ids from the Random service", () =>
    Effect.gen(function*() {
      const a = yield* Random.withSeed(ObjectStore.newPutId, 5)
      const b = yield* Random.withSeed(ObjectStore.newPutId, 5)
      assert.strictEqual(a, b)
      assert.match(a, /^[0-9a-f]{32}$/)
    }))

  describe("outcome resolution", () => {
    /** A memory driver whose conditional writes follow a script: each call takes the next step. */
    const scripted = (steps: Array<"ok" | "lostRequest" | "lostReply">, etagsUnique = true) => {
      const base = memoryDriver()
      let call = 0
      const step = <E>(
        operation: string,
        key: string,
        putId: string,
        run: Effect.Effect<ObjectStore.PutResult, E>
      ): Effect.Effect<ObjectStore.PutResult, E | ObjectStore.OutcomeUnknown> =>
        Effect.suspend((): Effect.Effect<ObjectStore.PutResult, E | ObjectStore.OutcomeUnknown> => {
          const next = steps[call++] ?? "ok"
          const unknown = new ObjectStore.OutcomeUnknown({ operation, key, putId, reason: next })
          if (next === "lostRequest") return Effect.fail(unknown)
          if (next === "lostReply") return Effect.andThen(Effect.exit(run), Effect.fail(unknown))
          return run
        })
      const driver: ObjectStore.Driver = {
        ...base,
        etagsUnique,
        putIfAbsent: (key, body, putId) => step("putIfAbsent", key, putId, base.putIfAbsent(key, body, putId)),
        putIfMatch: (key, body, etag, putId) => step("putIfMatch", key, putId, base.putIfMatch(key, body, etag, putId))
      }
      return { base, driver, calls: () => call }
    }
    const fast = { retry: { retriesMax: 4, delayBaseMs: 1, delayMaxMs: 1 } }

    it.live("a create whose request was lost is retried and wins", () =>
      Effect.gen(function*() {
        const { driver, calls } = scripted(["lostRequest"])
        const store = ObjectStore.make(driver, fast)
        const created = yield* store.putIfAbsent("k", bytes("v"), { putId: "mine" })
        assert.strictEqual(created.putId, "mine")
        assert.strictEqual(calls(), 2)
        assert.strictEqual((yield* store.head("k")).putId, "mine")
      }))

    it.live("a create whose reply was lost is recognised as ours without writing again", () =>
      Effect.gen(function*() {
        const { driver, calls } = scripted(["lostReply"])
        const store = ObjectStore.make(driver, fast)
        yield* store.putIfAbsent("k", bytes("v"), { putId: "mine" })
        assert.strictEqual(calls(), 1)
      }))

    it.live("a lost create reply of a lost race stays lost", () =>
      Effect.gen(function*() {
        const { driver } = scripted(["ok", "lostReply"])
        const store = ObjectStore.make(driver, fast)
        yield* store.putIfAbsent("k", bytes("first"), { putId: "theirs" })
        const exit = yield* Effect.exit(store.putIfAbsent("k", bytes("second"), { putId: "mine" }))
        assert.strictEqual(errorOf(exit)?._tag, "AlreadyExists")
        assert.strictEqual((yield* store.head("k")).putId, "theirs")
      }))

    it.live("a compare-and-set whose request was lost is retried where etags are unique", () =>
      Effect.gen(function*() {
        const { driver, calls } = scripted(["ok", "lostRequest"])
        const store = ObjectStore.make(driver, fast)
        const v1 = yield* store.putIfAbsent("k", bytes("v1"))
        const v2 = yield* store.putIfMatch("k", bytes("v2"), v1.etag, { putId: "mine" })
        assert.strictEqual(v2.putId, "mine")
        assert.strictEqual(calls(), 3)
      }))

    it.live("a compare-and-set whose request was lost reports lost where etags are content hashes", () =>
      Effect.gen(function*() {
        // The etag being unchanged does not prove the write missed: the same bytes may have been written back.
        const { driver } = scripted(["ok", "lostRequest"], false)
        const store = ObjectStore.make(driver, fast)
        const v1 = yield* store.putIfAbsent("k", bytes("v1"))
        const exit = yield* Effect.exit(store.putIfMatch("k", bytes("v2"), v1.etag, { putId: "mine" }))
        assert.strictEqual(errorOf(exit)?._tag, "PreconditionFailed")
        assert.strictEqual(str((yield* store.get("k")).body), "v1")
      }))

    it.live("a late-landing earlier attempt is recognised as ours, not as a lost race", () =>
      Effect.gen(function*() {
        // Attempt 1's reply is lost and reading back finds nothing, so the write is retried; meanwhile
        // attempt 1 lands after all, and attempt 2 loses to it. That is our own write: success.
        const base = memoryDriver()
        let attempts = 0
        let landing: Effect.Effect<unknown, unknown> | undefined
        const driver: ObjectStore.Driver = {
          ...base,
          putIfAbsent: (key, body, putId) =>
            Effect.suspend(() => {
              attempts += 1
              if (attempts > 1) return base.putIfAbsent(key, body, putId)
              landing = Effect.ignore(base.putIfAbsent(key, body, putId))
              return Effect.fail(new ObjectStore.OutcomeUnknown({ operation: "putIfAbsent", key, putId, reason: "lost" }))
            }),
          head: (key) =>
            Effect.suspend(() => {
              const land = landing
              landing = undefined
              // The first read-back sees nothing; the request lands right after it.
              return land === undefined ? base.head(key) : Effect.ensuring(base.head(key), Effect.ignore(land))
            })
        }
        const store = ObjectStore.make(driver, fast)
        const created = yield* store.putIfAbsent("k", bytes("v"), { putId: "mine" })
        assert.strictEqual(created.putId, "mine")
        assert.strictEqual(attempts, 2)
      }))

    it.live("once an attempt may have landed, exhausted retries report OutcomeUnknown, not Unavailable", () =>
      Effect.gen(function*() {
        const base = memoryDriver()
        let attempts = 0
        const driver: ObjectStore.Driver = {
          ...base,
          putIfAbsent: (key, _body, putId) =>
            Effect.suspend((): Effect.Effect<never, ObjectStore.OutcomeUnknown | ObjectStore.Unavailable> =>
              ++attempts === 1
                ? Effect.fail(new ObjectStore.OutcomeUnknown({ operation: "putIfAbsent", key, putId, reason: "lost" }))
                : Effect.fail(new ObjectStore.Unavailable({ operation: "putIfAbsent", key, reason: "down" }))
            )
        }
        const store = ObjectStore.make(driver, fast)
        const exit = yield* Effect.exit(store.putIfAbsent("k", bytes("v"), { putId: "mine" }))
        assert.strictEqual(errorOf(exit)?._tag, "OutcomeUnknown")
        assert.strictEqual((errorOf(exit) as ObjectStore.OutcomeUnknown).putId, "mine")
      }))

    it.live("under random lost requests and replies, every reported winner is the stored writer", () =>
      Effect.gen(function*() {
        const store = yield* ObjectStore.ObjectStore
        for (let round = 0; round < 30; round++) {
          const key = `race/${round}`
          const results = yield* Effect.forEach(
            Array.from({ length: 5 }, (_, i) => i),
            (i) => Effect.exit(store.putIfAbsent(key, bytes(`w${i}`), { putId: `p${round}-${i}` })),
            { concurrency: "unbounded" }
          )
          const winners = results.flatMap((r) => (Exit.isSuccess(r) ? [r.value.putId] : []))
          assert.isAtMost(winners.length, 1)
          const stored = (yield* store.head(key)).putId
          if (winners.length === 1) assert.strictEqual(winners[0], stored)
          for (const r of results) {
            if (Exit.isFailure(r)) assert.include(["AlreadyExists", "OutcomeUnknown"], errorOf(r)?._tag)
          }
        }
      }).pipe(
        Effect.provide(
          ObjectStore.layerFaulty(
            { seed: 3, lostRequestRate: 0.2, lostReplyRate: 0.2, unavailableRate: 0.1 },
            { retry: { retriesMax: 8, delayBaseMs: 1, delayMaxMs: 2 } }
          ).pipe(Layer.provide(ObjectStore.layerMemory))
        )
      ))
  })
})
