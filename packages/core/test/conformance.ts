/**
 * The ObjectStore conformance suite: one set of specifications every adapter must meet. Each adapter's
 * test file calls `conformance` with a way to open a fresh, empty store.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Stream } from "effect"
import { ObjectStore } from "@opendata/core"

const text = new TextEncoder()
const bytes = (s: string) => text.encode(s)
const str = (b: Uint8Array) => new TextDecoder().decode(b)

/** Runs an effect and returns the tag of its failure, or "ok". */
const outcome = <A, E extends { readonly _tag: string }, R>(self: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.exit(self), (exit) => (Exit.isSuccess(exit) ? "ok" : failureTag(exit)))
const failureTag = (exit: Exit.Exit<unknown, { readonly _tag: string }>): string => {
  if (Exit.isSuccess(exit)) return "ok"
  const error = Exit.findErrorOption(exit)
  return error._tag === "Some" ? error.value._tag : `defect: ${String(exit.cause)}`
}

const keysOf = (store: ObjectStore.ObjectStoreShape, prefix: string, pageSize?: number) =>
  Effect.map(Stream.runCollect(store.list(prefix, { pageSize })), (entries) => entries.map((e) => e.key))

export const conformance = (
  name: string,
  open: () => Layer.Layer<ObjectStore.ObjectStore, ObjectStore.StoreUnusable>
) =>
  describe(`ObjectStore conformance: ${name}`, () => {
    const run = <A, E>(body: (store: ObjectStore.ObjectStoreShape) => Effect.Effect<A, E>) =>
      ObjectStore.ObjectStore.use(body).pipe(Effect.provide(open()))

    it.live("reads back what it wrote, with head metadata", () =>
      run((store) =>
        Effect.gen(function*() {
          const put = yield* store.put("a/b.txt", bytes("hello"))
          const got = yield* store.get("a/b.txt")
          assert.strictEqual(str(got.body), "hello")
          assert.strictEqual(got.meta.size, 5)
          assert.strictEqual(got.meta.etag, put.etag)
          const head = yield* store.head("a/b.txt")
          assert.strictEqual(head.size, 5)
          assert.strictEqual(head.etag, put.etag)
          assert.strictEqual(head.putId, put.putId)
          const again = yield* store.put("a/b.txt", bytes("hello, again"))
          assert.notStrictEqual(again.etag, put.etag)
          assert.strictEqual(str((yield* store.get("a/b.txt")).body), "hello, again")
        })
      ))

    it.live("stores empty and binary objects byte for byte", () =>
      run((store) =>
        Effect.gen(function*() {
          const binary = Uint8Array.from({ length: 70_000 }, (_, i) => (i * 7919) & 0xff)
          yield* store.put("bin", binary)
          yield* store.put("empty", new Uint8Array(0))
          assert.deepStrictEqual((yield* store.get("bin")).body, binary)
          assert.strictEqual((yield* store.get("empty")).body.length, 0)
          assert.strictEqual((yield* store.head("empty")).size, 0)
        })
      ))

    it.live("reads byte ranges: start inclusive, end exclusive, clipped to the object", () =>
      run((store) =>
        Effect.gen(function*() {
          yield* store.put("r", bytes("0123456789"))
          assert.strictEqual(str((yield* store.get("r", { start: 2, end: 5 })).body), "234")
          assert.strictEqual(str((yield* store.get("r", { start: 7 })).body), "789")
          assert.strictEqual(str((yield* store.get("r", { start: 8, end: 100 })).body), "89")
          assert.strictEqual(str((yield* store.get("r", { start: 0, end: 1 })).body), "0")
          assert.strictEqual((yield* store.get("r", { start: 3, end: 4 })).meta.size, 10)
          assert.strictEqual(yield* outcome(store.get("r", { start: 10 })), "InvalidRange")
          assert.strictEqual(yield* outcome(store.get("r", { start: 5, end: 5 })), "InvalidRange")
          assert.strictEqual(yield* outcome(store.get("r", { start: -1 })), "InvalidRange")
        })
      ))

    it.live("answers NotFound for a missing object", () =>
      run((store) =>
        Effect.gen(function*() {
          assert.strictEqual(yield* outcome(store.get("missing")), "NotFound")
          assert.strictEqual(yield* outcome(store.head("missing")), "NotFound")
          assert.strictEqual(yield* outcome(store.get("missing", { start: 0, end: 1 })), "NotFound")
        })
      ))

    it.live("deletes idempotently", () =>
      run((store) =>
        Effect.gen(function*() {
          yield* store.put("d/x", bytes("x"))
          yield* store.delete("d/x")
          yield* store.delete("d/x")
          yield* store.delete("never/was")
          assert.strictEqual(yield* outcome(store.head("d/x")), "NotFound")
          assert.deepStrictEqual(yield* keysOf(store, "d/"), [])
          // The key can be created again after a delete.
          yield* store.putIfAbsent("d/x", bytes("again"))
          assert.strictEqual(str((yield* store.get("d/x")).body), "again")
        })
      ))

    it.live("lists by prefix in UTF-8 byte order, a page at a time", () =>
      run((store) =>
        Effect.gen(function*() {
          const keys = ["p/a", "p/a-c", "p/a/b", "p/a0", "p/b", "p/é", "p/\u{1F600}", "p/\uFF21", "q/a", "p"]
          for (const key of keys) yield* store.put(key, bytes(key))
          const expected = ["p/a", "p/a-c", "p/a/b", "p/a0", "p/b", "p/é", "p/\uFF21", "p/\u{1F600}"]
          assert.deepStrictEqual(yield* keysOf(store, "p/"), expected)
          assert.deepStrictEqual(yield* keysOf(store, "p/", 2), expected)
          assert.deepStrictEqual(yield* keysOf(store, "p/", 3), expected)
          assert.deepStrictEqual(yield* keysOf(store, "p/a"), ["p/a", "p/a-c", "p/a/b", "p/a0"])
          assert.deepStrictEqual(yield* keysOf(store, "p/a/"), ["p/a/b"])
          assert.deepStrictEqual(yield* keysOf(store, "nothing/"), [])
          assert.deepStrictEqual(yield* keysOf(store, ""), ["p", ...expected, "q/a"])
          const after = yield* Stream.runCollect(store.list("p/", { startAfter: "p/a0", pageSize: 2 }))
          assert.deepStrictEqual(after.map((e) => e.key), ["p/b", "p/é", "p/\uFF21", "p/\u{1F600}"])
          const page = yield* store.listPage("p/", { limit: 3 })
          assert.deepStrictEqual(page.entries.map((e) => e.key), expected.slice(0, 3))
          assert.strictEqual(page.next, "p/a/b")
          const last = yield* store.listPage("p/", { startAfter: "p/é", limit: 3 })
          assert.deepStrictEqual(last.entries.map((e) => e.key), ["p/\uFF21", "p/\u{1F600}"])
          assert.strictEqual(last.next, undefined)
          const entry = page.entries[0]!
          assert.strictEqual(entry.size, 3)
          assert.strictEqual(entry.etag, (yield* store.head("p/a")).etag)
        })
      ))

    it.live("lists more keys than one page holds", () =>
      run((store) =>
        Effect.gen(function*() {
          const keys = Array.from({ length: 25 }, (_, i) => `many/${String(i).padStart(3, "0")}`)
          yield* Effect.forEach(keys, (key) => store.put(key, bytes(key)), { concurrency: 8 })
          assert.deepStrictEqual(yield* keysOf(store, "many/", 4), keys)
          assert.deepStrictEqual(yield* keysOf(store, "many/"), keys)
        })
      ))

    it.live("round-trips unusual keys", () =>
      run((store) =>
        Effect.gen(function*() {
          const keys = [
            "../escape",
            "a/../../b",
            "./dot",
            "..",
            "a//b",
            "trailing/",
            "%2E%2E",
            "tilde~name",
            "spaces and punctuation: (a) [b] {c} !?#&=+,;'\"",
            "日本語/キー",
            "emoji/\u{1F680}",
            `long/${"x".repeat(300)}`,
            `${"segment".repeat(40)}/leaf`
          ]
          for (const key of keys) yield* store.put(key, bytes(key))
          for (const key of keys) assert.strictEqual(str((yield* store.get(key)).body), key)
          const listed = yield* keysOf(store, "")
          assert.deepStrictEqual([...listed].sort(), [...keys].sort())
        })
      ))

    it.live("rejects invalid keys with InvalidKey", () =>
      run((store) =>
        Effect.gen(function*() {
          for (const key of ["", "nul\u0000byte", "line\nbreak", "x".repeat(1025), "lone\uD800surrogate"]) {
            assert.strictEqual(yield* outcome(store.put(key, bytes("x"))), "InvalidKey", JSON.stringify(key))
            assert.strictEqual(yield* outcome(store.get(key)), "InvalidKey")
            assert.strictEqual(yield* outcome(store.putIfAbsent(key, bytes("x"))), "InvalidKey")
            assert.strictEqual(yield* outcome(store.delete(key)), "InvalidKey")
          }
          assert.strictEqual(yield* outcome(store.listPage("bad\u0001")), "InvalidKey")
          // The longest key is exactly `keyBytesMax` bytes of UTF-8 (less than 1024 under a key prefix).
          const longest = "é".repeat(Math.floor(store.keyBytesMax / 2)) + (store.keyBytesMax % 2 === 1 ? "x" : "")
          assert.strictEqual(yield* outcome(store.put(longest, bytes("x"))), "ok")
          assert.strictEqual(yield* outcome(store.put(longest + "x", bytes("x"))), "InvalidKey")
        })
      ))

    it.live("put-if-absent: the second create loses with AlreadyExists and changes nothing", () =>
      run((store) =>
        Effect.gen(function*() {
          const first = yield* store.putIfAbsent("c/k", bytes("first"))
          assert.strictEqual(yield* outcome(store.putIfAbsent("c/k", bytes("second"))), "AlreadyExists")
          const got = yield* store.get("c/k")
          assert.strictEqual(str(got.body), "first")
          assert.strictEqual(got.meta.etag, first.etag)
          assert.strictEqual(got.meta.putId, first.putId)
        })
      ))

    it.live("put-if-match: the current etag wins, a stale one loses and changes nothing", () =>
      run((store) =>
        Effect.gen(function*() {
          const v1 = yield* store.putIfAbsent("m/k", bytes("v1"))
          const v2 = yield* store.putIfMatch("m/k", bytes("v2"), v1.etag)
          assert.notStrictEqual(v2.etag, v1.etag)
          assert.strictEqual(yield* outcome(store.putIfMatch("m/k", bytes("stale"), v1.etag)), "PreconditionFailed")
          const got = yield* store.get("m/k")
          assert.strictEqual(str(got.body), "v2")
          assert.strictEqual(got.meta.etag, v2.etag)
          assert.strictEqual(yield* outcome(store.putIfMatch("m/missing", bytes("x"), v1.etag)), "PreconditionFailed")
          assert.strictEqual(yield* outcome(store.head("m/missing")), "NotFound")
        })
      ))

    it.live("20 concurrent creators of one key: exactly one wins", () =>
      run((store) =>
        Effect.gen(function*() {
          const results = yield* Effect.forEach(
            Array.from({ length: 20 }, (_, i) => i),
            (i) => Effect.map(Effect.exit(store.putIfAbsent("race/create", bytes(`creator ${i}`))), (exit) => ({ i, exit })),
            { concurrency: "unbounded" }
          )
          const winners = results.filter((r) => Exit.isSuccess(r.exit))
          assert.strictEqual(winners.length, 1, `winners: ${winners.map((w) => w.i).join(",")}`)
          for (const r of results) {
            if (Exit.isFailure(r.exit)) assert.strictEqual(failureTag(r.exit), "AlreadyExists")
          }
          const stored = yield* store.get("race/create")
          assert.strictEqual(str(stored.body), `creator ${winners[0]!.i}`)
        })
      ))

    it.live("20 concurrent compare-and-sets on one etag: exactly one wins", () =>
      run((store) =>
        Effect.gen(function*() {
          const base = yield* store.putIfAbsent("race/cas", bytes("base"))
          const results = yield* Effect.forEach(
            Array.from({ length: 20 }, (_, i) => i),
            (i) =>
              Effect.map(Effect.exit(store.putIfMatch("race/cas", bytes(`writer ${i}`), base.etag)), (exit) => ({ i, exit })),
            { concurrency: "unbounded" }
          )
          const winners = results.filter((r) => Exit.isSuccess(r.exit))
          assert.strictEqual(winners.length, 1, `winners: ${winners.map((w) => w.i).join(",")}`)
          for (const r of results) {
            if (Exit.isFailure(r.exit)) assert.strictEqual(failureTag(r.exit), "PreconditionFailed")
          }
          assert.strictEqual(str((yield* store.get("race/cas")).body), `writer ${winners[0]!.i}`)
        })
      ))

    it.live("resolves writes whose replies were lost by reading the put-id back", () =>
      Effect.gen(function*() {
        // Every reply of a write that happened is lost; reading back must still tell the truth.
        const lossy = ObjectStore.layerFaulty({ seed: 7, lostReplyRate: 1 }).pipe(Layer.provide(open()))
        yield* Effect.gen(function*() {
          const store = yield* ObjectStore.ObjectStore
          const created = yield* store.putIfAbsent("lost/k", bytes("one"))
          assert.strictEqual(created.etag, (yield* store.head("lost/k")).etag)
          assert.strictEqual(yield* outcome(store.putIfAbsent("lost/k", bytes("two"))), "AlreadyExists")
          const updated = yield* store.putIfMatch("lost/k", bytes("three"), created.etag)
          assert.strictEqual(str((yield* store.get("lost/k")).body), "three")
          assert.strictEqual(updated.etag, (yield* store.head("lost/k")).etag)
          assert.strictEqual(yield* outcome(store.putIfMatch("lost/k", bytes("four"), created.etag)), "PreconditionFailed")
          assert.strictEqual(str((yield* store.get("lost/k")).body), "three")
        }).pipe(Effect.provide(lossy))
        // resolvePut settles an unknown outcome on the plain store.
        yield* run((store) =>
          Effect.gen(function*() {
            const written = yield* store.putIfAbsent("lost/r", bytes("x"), { putId: "put-id-1" })
            assert.deepStrictEqual(yield* store.resolvePut("lost/r", "put-id-1"), { _tag: "Written", etag: written.etag })
            const other = yield* store.resolvePut("lost/r", "put-id-2")
            assert.strictEqual(other._tag, "NotVisible")
            assert.deepStrictEqual(yield* store.resolvePut("lost/none", "put-id-1"), { _tag: "NotVisible", current: undefined })
          })
        )
      }))

    it.live("retries through transient unavailability", () =>
      Effect.gen(function*() {
        const flaky = ObjectStore.layerFaulty(
          { seed: 11, unavailableRate: 0.3 },
          { retry: { retriesMax: 20, delayBaseMs: 1, delayMaxMs: 5 } }
        ).pipe(Layer.provide(open()))
        yield* Effect.gen(function*() {
          const store = yield* ObjectStore.ObjectStore
          for (let i = 0; i < 10; i++) yield* store.putIfAbsent(`flaky/${i}`, bytes(`v${i}`))
          for (let i = 0; i < 10; i++) assert.strictEqual(str((yield* store.get(`flaky/${i}`)).body), `v${i}`)
          assert.strictEqual((yield* keysOf(store, "flaky/", 3)).length, 10)
        }).pipe(Effect.provide(flaky))
      }))
  })
