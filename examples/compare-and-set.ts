/**
 * A counter kept in one object and advanced by compare-and-set (`putIfMatch`), by several fibers at
 * once: each reads the value and its etag, writes value + 1 only if the etag is unchanged, and on
 * `PreconditionFailed` re-reads and tries again. No increment is lost, whatever the interleaving.
 *
 *   node --conditions=@opendata/source examples/compare-and-set.ts [directory]
 */
import { Effect } from "effect"
import { ObjectStore } from "@opendata/core"

const key = "examples/counter"
const encode = (n: number) => new TextEncoder().encode(String(n))
const decode = (bytes: Uint8Array) => Number(new TextDecoder().decode(bytes))

/** Adds one to the counter, retrying until this fiber's update is the one that lands. */
const increment = Effect.gen(function*() {
  const store = yield* ObjectStore.ObjectStore
  while (true) {
    const { meta, body } = yield* store.get(key)
    const won = yield* store.putIfMatch(key, encode(decode(body) + 1), meta.etag).pipe(
      Effect.as(true),
      Effect.catchTag("PreconditionFailed", () => Effect.succeed(false))
    )
    if (won) return
  }
})

const program = Effect.gen(function*() {
  const store = yield* ObjectStore.ObjectStore
  yield* store.put(key, encode(0))
  const fibers = 8
  const perFiber = 25
  yield* Effect.forEach(
    Array.from({ length: fibers }),
    () => Effect.forEach(Array.from({ length: perFiber }), () => increment, { discard: true }),
    { concurrency: "unbounded", discard: true }
  )
  const final = decode((yield* store.get(key)).body)
  console.log(`${fibers} fibers x ${perFiber} increments = ${final} on ${store.name}`)
  if (final !== fibers * perFiber) throw new Error("an increment was lost")
})

const root = process.argv[2] ?? "./example-data"
Effect.runPromise(Effect.provide(program, ObjectStore.layerLocal({ root }))).catch((e) => {
  console.error(e)
  process.exit(1)
})
