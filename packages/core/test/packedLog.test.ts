/**
 * The local store's packed log (src/internal/objectStore/packedLog.ts): the Db's WAL objects as frames of
 * an append-only log, through the ObjectStore API, across reopens, torn tails, rolled and compacted
 * segments, and WAL objects an earlier version stored as files.
 */
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Stream } from "effect"
import { ObjectStore } from "@opendata/core"
import { afterAll } from "vitest"

const parent = await fs.mkdtemp(path.join(os.tmpdir(), "opendata-packed-"))
afterAll(() => fs.rm(parent, { recursive: true, force: true }))
let count = 0
const freshRoot = () => path.join(parent, `store-${++count}`)

const text = new TextEncoder()
const bytes = (s: string) => text.encode(s)
const str = (b: Uint8Array) => new TextDecoder().decode(b)
const wal = (id: number, db = "db") => `${db}/wal/${String(id).padStart(20, "0")}.wal`

/** Runs `body` against the local store at `root`, opened for it and closed after. */
const withStore = <A, E>(root: string, body: (store: ObjectStore.ObjectStoreShape) => Effect.Effect<A, E>, settings: Partial<ObjectStore.LocalSettings> = {}) =>
  ObjectStore.ObjectStore.use(body).pipe(Effect.provide(ObjectStore.layerLocal({ root, preflight: false, ...settings })))

const keys = (store: ObjectStore.ObjectStoreShape, prefix: string, pageSize?: number) =>
  Effect.map(Stream.runCollect(store.list(prefix, { pageSize })), (entries) => entries.map((e) => e.key))

const tag = (exit: Exit.Exit<unknown, { readonly _tag: string }>) =>
  Exit.isSuccess(exit) ? "ok" : Exit.findErrorOption(exit)._tag === "Some" ? Exit.findErrorOption(exit).pipe((o) => (o._tag === "Some" ? o.value._tag : "")) : "defect"

const segmentFiles = (root: string) => fs.readdir(path.join(root, ".packed")).then((names) => names.filter((n) => n.endsWith(".log")).sort())

describe("local store: the packed log of WAL objects", () => {
  it.live("holds WAL objects as frames, not files; every operation answers as for any object", () =>
    Effect.gen(function*() {
      const root = freshRoot()
      yield* withStore(root, (store) =>
        Effect.gen(function*() {
          const first = yield* store.putIfAbsent(wal(1), bytes("one"))
          assert.strictEqual(tag(yield* Effect.exit(store.putIfAbsent(wal(1), bytes("again")))), "AlreadyExists")
          const got = yield* store.get(wal(1))
          assert.strictEqual(str(got.body), "one")
          assert.strictEqual(got.meta.etag, first.etag)
          assert.strictEqual(got.meta.putId, first.putId)
          assert.strictEqual(str((yield* store.get(wal(1), { start: 1, end: 2 })).body), "n")
          assert.strictEqual(tag(yield* Effect.exit(store.get(wal(1), { start: 3 }))), "InvalidRange")
          assert.strictEqual((yield* store.head(wal(1))).size, 3)
          // Put-if-match: the current etag wins, a stale one loses.
          const second = yield* store.putIfMatch(wal(1), bytes("uno"), first.etag)
          assert.strictEqual(tag(yield* Effect.exit(store.putIfMatch(wal(1), bytes("x"), first.etag))), "PreconditionFailed")
          assert.strictEqual((yield* store.head(wal(1))).etag, second.etag)
          const resolved = yield* store.resolvePut(wal(1), second.putId)
          assert.strictEqual(resolved._tag, "Written")
          yield* store.put(wal(2), bytes("two"))
          yield* store.put("db/manifest/1", bytes("m"))
          yield* store.delete(wal(1))
          yield* store.delete(wal(1))
          assert.strictEqual(tag(yield* Effect.exit(store.get(wal(1)))), "NotFound")
          assert.strictEqual(tag(yield* Effect.exit(store.head(wal(1)))), "NotFound")
          assert.deepStrictEqual(yield* keys(store, "db/"), ["db/manifest/1", wal(2)])
        }))
      // No file per WAL object: they are in the log's segment.
      const files = yield* Effect.promise(() => fs.readdir(path.join(root, "db"), { recursive: true }))
      assert.isFalse(files.some((f) => f.endsWith(".wal~")), files.join(", "))
      assert.deepStrictEqual(yield* Effect.promise(() => segmentFiles(root)), ["000000000001.log"])
    }))

  it.live("many concurrent writers share batches, and everything acknowledged is there after a reopen", () =>
    Effect.gen(function*() {
      const root = freshRoot()
      yield* withStore(root, (store) =>
        Effect.gen(function*() {
          yield* Effect.forEach(Array.from({ length: 200 }, (_, i) => i + 1), (i) => store.putIfAbsent(wal(i, `db${i % 3}`), bytes(`v${i}`)), {
            concurrency: 50,
            discard: true
          })
          // 20 creators of one key: exactly one wins.
          const exits = yield* Effect.forEach(Array.from({ length: 20 }), (_, i) => Effect.exit(store.putIfAbsent(wal(999), bytes(`c${i}`))), { concurrency: "unbounded" })
          assert.strictEqual(exits.filter(Exit.isSuccess).length, 1)
          for (let i = 1; i <= 200; i += 2) yield* store.delete(wal(i, `db${i % 3}`))
        }))
      yield* withStore(root, (store) =>
        Effect.gen(function*() {
          for (let i = 1; i <= 200; i++) {
            const exit = yield* Effect.exit(store.get(wal(i, `db${i % 3}`)))
            if (i % 2 === 1) assert.strictEqual(tag(exit), "NotFound", `wal ${i}`)
            else assert.strictEqual(Exit.isSuccess(exit) ? str(exit.value.body) : tag(exit), `v${i}`)
          }
          // Listing in key order, a page at a time.
          const listed = yield* keys(store, "db1/wal/", 7)
          const expected = Array.from({ length: 200 }, (_, i) => i + 1).filter((i) => i % 2 === 0 && i % 3 === 1).map((i) => wal(i, "db1"))
          assert.deepStrictEqual(listed, expected)
          assert.match(str((yield* store.get(wal(999))).body), /^c\d+$/)
        }))
    }))

  it.live("a torn frame at the end of the log is cut off at the next open; what came before stays", () =>
    Effect.gen(function*() {
      const root = freshRoot()
      yield* withStore(root, (store) => Effect.forEach([1, 2, 3], (i) => store.putIfAbsent(wal(i), bytes(`v${i}`)), { discard: true }))
      const segment = path.join(root, ".packed", "000000000001.log")
      const size = (yield* Effect.promise(() => fs.stat(segment))).size
      // Half a frame, as a crash in the middle of an append leaves it.
      yield* Effect.promise(() => fs.appendFile(segment, Buffer.from([0x4f, 0x50, 0x4b, 0x31, 200, 0, 0, 0, 1, 2, 3])))
      yield* withStore(root, (store) =>
        Effect.gen(function*() {
          assert.deepStrictEqual(yield* keys(store, "db/"), [wal(1), wal(2), wal(3)])
          yield* store.putIfAbsent(wal(4), bytes("v4"))
        }))
      yield* withStore(root, (store) =>
        Effect.gen(function*() {
          assert.deepStrictEqual(yield* keys(store, "db/"), [wal(1), wal(2), wal(3), wal(4)])
          assert.strictEqual(str((yield* store.get(wal(4))).body), "v4")
        }))
      assert.isAbove((yield* Effect.promise(() => fs.stat(segment))).size, size)
    }))

  it.live("rolls segments, drops the dead ones, and copies a few live objects (fences) forward", () =>
    Effect.gen(function*() {
      const root = freshRoot()
      const settings = { packedSegmentBytes: 4096 }
      yield* withStore(root, (store) =>
        Effect.gen(function*() {
          // A fence that stays forever, then WAL objects written and collected, as a Db does.
          yield* store.putIfAbsent(wal(1), bytes("fence"))
          for (let i = 2; i <= 120; i++) {
            yield* store.putIfAbsent(wal(i), new Uint8Array(300).fill(i))
            if (i > 5) yield* store.delete(wal(i - 3))
          }
        }), settings)
      const segments = yield* Effect.promise(() => segmentFiles(root))
      assert.isAtMost(segments.length, 3, segments.join(", "))
      assert.notInclude(segments, "000000000001.log")
      yield* withStore(root, (store) =>
        Effect.gen(function*() {
          assert.strictEqual(str((yield* store.get(wal(1))).body), "fence")
          assert.deepStrictEqual(yield* keys(store, "db/"), [wal(1), wal(2), wal(118), wal(119), wal(120)])
          assert.deepStrictEqual((yield* store.get(wal(119))).body, new Uint8Array(300).fill(119))
        }), settings)
    }))

  it.live("a segment mostly collected is rolled early, so the disk holds little more than the live objects", () =>
    Effect.gen(function*() {
      const root = freshRoot()
      yield* withStore(root, (store) =>
        Effect.gen(function*() {
          for (let i = 1; i <= 30; i++) yield* store.putIfAbsent(wal(i), new Uint8Array(1024).fill(i))
          for (let i = 2; i <= 30; i++) yield* store.delete(wal(i))
          // One more write after the collection: the log notices and rolls.
          yield* store.putIfAbsent(wal(31), bytes("x"))
        }), { packedSegmentBytes: 160 * 1024 })
      const dir = path.join(root, ".packed")
      const sizes = yield* Effect.promise(async () => Promise.all((await segmentFiles(root)).map(async (f) => (await fs.stat(path.join(dir, f))).size)))
      // 31 KiB were written; what stays is under the early-roll size (a sixteenth: 10 KiB) plus the live.
      assert.isBelow(sizes.reduce((a, b) => a + b, 0), 12 * 1024, sizes.join(", "))
      yield* withStore(root, (store) =>
        Effect.gen(function*() {
          assert.deepStrictEqual(yield* keys(store, "db/"), [wal(1), wal(31)])
          assert.deepStrictEqual((yield* store.get(wal(1))).body, new Uint8Array(1024).fill(1))
        }))
    }))

  it.live("closing drops a mostly dead segment too small to roll early: a stopped store keeps only its live objects", () =>
    Effect.gen(function*() {
      const root = freshRoot()
      yield* withStore(root, (store) =>
        Effect.gen(function*() {
          // A fence, then 800 KiB written and collected: well under the early roll of a 64 MiB segment (4 MiB).
          yield* store.putIfAbsent(wal(1), bytes("fence"))
          for (let i = 2; i <= 201; i++) yield* store.putIfAbsent(wal(i), new Uint8Array(4096).fill(i))
          for (let i = 2; i <= 201; i++) yield* store.delete(wal(i))
        }))
      const dir = path.join(root, ".packed")
      const sizes = yield* Effect.promise(async () => Promise.all((await segmentFiles(root)).map(async (f) => (await fs.stat(path.join(dir, f))).size)))
      assert.isBelow(sizes.reduce((a, b) => a + b, 0), 4096, sizes.join(", "))
      yield* withStore(root, (store) =>
        Effect.gen(function*() {
          assert.deepStrictEqual(yield* keys(store, "db/"), [wal(1)])
          assert.strictEqual(str((yield* store.get(wal(1))).body), "fence")
        }))
    }))

  it.live("reads, lists, replaces and deletes a WAL object an earlier version stored as a file", () =>
    Effect.gen(function*() {
      const root = freshRoot()
      // The file format of an object: "ODO1", the header's length, its JSON, the body.
      const legacy = async (key: string, body: string) => {
        const header = Buffer.from(JSON.stringify({ key, putId: "old", etag: "etag-old" }))
        const prefix = Buffer.alloc(8)
        prefix.write("ODO1", 0, "latin1")
        prefix.writeUInt32BE(header.length, 4)
        const file = path.join(root, ...key.split("/")) + "~"
        await fs.mkdir(path.dirname(file), { recursive: true })
        await fs.writeFile(file, Buffer.concat([prefix, header, Buffer.from(body)]))
        return file
      }
      yield* withStore(root, () => Effect.void)
      const file1 = yield* Effect.promise(() => legacy(wal(1), "old one"))
      const file2 = yield* Effect.promise(() => legacy(wal(2), "old two"))
      yield* withStore(root, (store) =>
        Effect.gen(function*() {
          yield* store.putIfAbsent(wal(3), bytes("new three"))
          assert.deepStrictEqual(yield* keys(store, "db/", 2), [wal(1), wal(2), wal(3)])
          assert.strictEqual(str((yield* store.get(wal(1))).body), "old one")
          assert.strictEqual(tag(yield* Effect.exit(store.putIfAbsent(wal(1), bytes("x")))), "AlreadyExists")
          yield* store.putIfMatch(wal(2), bytes("new two"), "etag-old")
          yield* store.delete(wal(1))
          assert.strictEqual(tag(yield* Effect.exit(store.get(wal(1)))), "NotFound")
          assert.deepStrictEqual(yield* keys(store, "db/"), [wal(2), wal(3)])
        }))
      const gone = yield* Effect.promise(() => Promise.all([file1, file2].map((f) => fs.access(f).then(() => false, () => true))))
      assert.deepStrictEqual(gone, [true, true])
      yield* withStore(root, (store) => Effect.map(store.get(wal(2)), (got) => assert.strictEqual(str(got.body), "new two")))
    }))
})
