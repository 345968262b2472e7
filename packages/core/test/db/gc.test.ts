/**
 * Garbage collection racing a commit in the same process: a table that was uncommitted when the pass
 * read the latest manifest, and committed before the pass reached the tables, must stay.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Scope } from "effect"
import { Db, ObjectStore } from "@opendata/core"
import { b, s, small } from "./helpers.ts"

/** A point in the store's traffic where requests wait until `release`; `reached` completes at the first. */
const makeHold = Effect.gen(function*() {
  const reached = yield* Deferred.make<void>()
  const released = yield* Deferred.make<void>()
  let armed = false
  return {
    arm: Effect.sync(() => {
      armed = true
    }),
    reached: Deferred.await(reached),
    release: Effect.andThen(Effect.sync(() => {
      armed = false
    }), Deferred.succeed(released, undefined)),
    wrap: <A, E>(self: Effect.Effect<A, E>): Effect.Effect<A, E> =>
      Effect.suspend(() => (armed ? Effect.andThen(Deferred.succeed(reached, undefined), Effect.andThen(Deferred.await(released), self)) : self))
  }
})

describe("Db garbage collection", () => {
  it.live("keeps a table committed while a collection pass is under way", () =>
    Effect.gen(function*() {
      const shared = yield* ObjectStore.ObjectStore.use(Effect.succeed).pipe(Effect.provide(ObjectStore.layerMemory))
      const commit = yield* makeHold
      const removal = yield* makeHold
      const store: ObjectStore.ObjectStoreShape = {
        ...shared,
        putIfAbsent: (k, body, o) => (k.startsWith("manifest/") ? commit.wrap(shared.putIfAbsent(k, body, o)) : shared.putIfAbsent(k, body, o)),
        delete: (k) => removal.wrap(shared.delete(k))
      }
      const scope = yield* Scope.make()
      // Collection and compaction only when asked: the test interleaves them by hand.
      const db = yield* Db.make({ ...small, gc: false, l0CompactionTrigger: 7 }).pipe(
        Effect.provideService(ObjectStore.ObjectStore, store),
        Scope.provide(scope)
      )
      // Given manifest versions below the head, which a pass deletes before it looks at tables,
      yield* db.put(b("a"), b("1"))
      yield* db.flush
      yield* db.put(b("b"), b("2"))
      yield* db.flush
      // and a flush that has written its table and waits to commit it,
      yield* commit.arm
      yield* db.put(b("c"), b("3"))
      const flushing = yield* Effect.forkChild(db.flush)
      yield* commit.reached
      // when a pass lists that table, reads the latest manifest (without it), and waits at its first delete,
      yield* removal.arm
      const collecting = yield* Effect.forkChild(db.collectGarbage)
      yield* removal.reached
      // and the flush commits the table before the pass goes on,
      yield* commit.release
      yield* Fiber.join(flushing)
      yield* removal.release
      yield* Fiber.join(collecting)
      // then every table the latest manifest references is still there, and the write reads back.
      const verification = yield* Db.verify("").pipe(Effect.provideService(ObjectStore.ObjectStore, shared))
      assert.deepStrictEqual(verification.problems, [])
      assert.strictEqual(s(yield* db.get(b("c"))), "3")
      yield* Scope.close(scope, Exit.void)
    }))
})
