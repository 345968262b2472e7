import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer } from "effect"
import { ObjectStore } from "@opendata/core"
import { afterAll } from "vitest"
import { conformance } from "./conformance.ts"

const parent = await fs.mkdtemp(path.join(os.tmpdir(), "opendata-local-"))
afterAll(() => fs.rm(parent, { recursive: true, force: true }))
let count = 0
const freshRoot = () => path.join(parent, `store-${++count}`, "root")

conformance("local filesystem", () => ObjectStore.layerLocal({ root: freshRoot() }))

/** Every file below `dir`, as paths relative to it. */
const filesUnder = async (dir: string): Promise<Array<string>> =>
  (await fs.readdir(dir, { recursive: true, withFileTypes: true }))
    .filter((d) => d.isFile())
    .map((d) => path.relative(dir, path.join(d.parentPath, d.name)))

describe("ObjectStore local filesystem", () => {
  it.live("keeps every key inside the root, however it is spelled", () =>
    Effect.gen(function*() {
      const root = freshRoot()
      const keys = ["../outside", "../../outside", "/abs", "a/../../../x", "..", ".", ".lock", ".tmp/x", "%2E%2E/y"]
      yield* Effect.gen(function*() {
        const store = yield* ObjectStore.ObjectStore
        for (const key of keys) yield* store.put(key, new TextEncoder().encode(key))
      }).pipe(Effect.provide(ObjectStore.layerLocal({ root })))
      const everything = yield* Effect.promise(() => filesUnder(path.dirname(root)))
      for (const file of everything) assert.isTrue(file.startsWith(`root${path.sep}`), file)
      // Reopening sees exactly the keys written.
      const listed = yield* ObjectStore.ObjectStore.use((store) =>
        Effect.map(store.listPage(""), (page) => page.entries.map((e) => e.key))
      ).pipe(Effect.provide(ObjectStore.layerLocal({ root })))
      assert.deepStrictEqual([...listed].sort(), [...keys].sort())
    }))

  it.live("refuses a second opener of the same directory while the first holds it", () =>
    Effect.gen(function*() {
      const root = freshRoot()
      const layer = ObjectStore.layerLocal({ root })
      const second = ObjectStore.layerLocal({ root })
      const inner = yield* Effect.exit(Layer.build(second).pipe(Effect.scoped, Effect.provide(layer)))
      assert.isTrue(Exit.isFailure(inner))
      assert.match(String(inner), /in use by process/)
      // Once the first closes, the directory can be opened again.
      yield* Layer.build(layer).pipe(Effect.scoped)
    }))

  it.live("removes temporary files of an interrupted run on open", () =>
    Effect.gen(function*() {
      const root = freshRoot()
      yield* Effect.promise(async () => {
        await fs.mkdir(path.join(root, ".tmp"), { recursive: true })
        await fs.writeFile(path.join(root, ".tmp", "999-1"), "half a write")
      })
      yield* Layer.build(ObjectStore.layerLocal({ root })).pipe(Effect.scoped)
      assert.deepStrictEqual(yield* Effect.promise(() => fs.readdir(path.join(root, ".tmp"))), [])
    }))

  it.live("pins the object file format with golden bytes", () =>
    Effect.gen(function*() {
      // "ODO1", u32 header length 0x60, header JSON {key, putId, etag = md5(putId)[0..16] ++ crc32(body) ++ length}, body.
      const golden =
        "4f444f3100000060" +
        Buffer.from(
          '{"key":"golden/k","putId":"0123456789abcdef0123456789abcdef","etag":"8516ac99dc6060323610a6865"}'
        ).toString("hex") +
        Buffer.from("hello").toString("hex")
      const root = freshRoot()
      const put = yield* ObjectStore.ObjectStore.use((store) =>
        store.put("golden/k", new TextEncoder().encode("hello"), { putId: "0123456789abcdef0123456789abcdef" })
      ).pipe(Effect.provide(ObjectStore.layerLocal({ root })))
      assert.strictEqual(put.etag, "8516ac99dc6060323610a6865")
      const file = yield* Effect.promise(() => fs.readFile(path.join(root, "golden", "k~")))
      assert.strictEqual(file.toString("hex"), golden)
    }))

  it.live("an interrupted compare-and-set never overwrites a later one", () =>
    Effect.gen(function*() {
      const root = freshRoot()
      yield* Effect.gen(function*() {
        const store = yield* ObjectStore.ObjectStore
        for (let round = 0; round < 10; round++) {
          const key = `cas/${round}`
          const base = yield* store.putIfAbsent(key, new Uint8Array([0]))
          const big = new Uint8Array(4 << 20)
          const slow = yield* Effect.forkChild(store.putIfMatch(key, big, base.etag, { putId: "interrupted" }))
          yield* Effect.sleep(`${round % 5} millis`)
          yield* Fiber.interrupt(slow)
          const later = yield* Effect.exit(store.putIfMatch(key, new Uint8Array([1]), base.etag, { putId: "later" }))
          const stored = (yield* store.head(key)).putId
          // Either the interrupted write finished first and the later one lost, or the later one won and stays.
          if (Exit.isSuccess(later)) assert.strictEqual(stored, "later")
          else assert.strictEqual(stored, "interrupted")
        }
      }).pipe(Effect.provide(ObjectStore.layerLocal({ root })))
    }))
})
