/**
 * A stateful transform across restarts: it counts the records of each `clicks/<key>` log (its state, `{
 * count }`, is kept per input log) and writes each new count to `counts/<key>`. The outputs, the position
 * in the input log and the new state are committed in one transaction, so when the process stops and
 * starts again on the same data, the counts go on from the committed state: no count is lost or repeated.
 *
 * Three "processes" on one local-store directory (a temporary one, removed at the end): the first counts
 * some clicks and stops; more clicks are appended while no transform runs; the second catches up on them
 * and counts new ones; the third, with nothing new, writes nothing.
 *
 *   npm run transform-counter -w examples
 *
 * Exits 1 if the counts are not exactly 1..n for each log's n clicks within 10 seconds.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Layer } from "effect"
import { EventStore, Transforms } from "@opendata/eventstore"
import { OpenData } from "@opendata/runtime"
import { waitUntil } from "./wait.ts"

const counter = Transforms.define({
  name: "click-counter",
  source: { prefix: "clicks/" },
  transform: {
    initial: { count: 0 },
    step: (state: { count: number }, record) => {
      const count = state.count + 1
      return {
        state: { count },
        outputs: { key: `counts/${record.key.slice("clicks/".length)}`, value: JSON.stringify({ count }) }
      }
    }
  }
})

const root = fs.mkdtempSync(path.join(os.tmpdir(), "opendata-counter-"))
const store = OpenData.layer({ store: { kind: "local", root } })
/** One "process" with the transform: built, then closed when `body` is done (its scope ends). */
const withTransform = <A, E>(body: Effect.Effect<A, E, EventStore.EventStore | Transforms.Transforms>) =>
  Effect.provide(body, OpenData.layerTransforms([counter]).pipe(Layer.provideMerge(store)))
/** One "process" without it. */
const withoutTransform = <A, E>(body: Effect.Effect<A, E, EventStore.EventStore>) => Effect.provide(body, store)

const encoder = new TextEncoder()
const decoder = new TextDecoder()
/** Clicks appended so far, per key: what the counts must come to. */
const appended = new Map<string, number>()

const click = (key: string, n: number) =>
  Effect.flatMap(EventStore.EventStore, (events) =>
    Effect.gen(function*() {
      for (let i = 0; i < n; i++) yield* events.append(`clicks/${key}`, [{ value: encoder.encode(`click ${i}`) }])
      appended.set(key, (appended.get(key) ?? 0) + n)
    }))

/** The counts written to `counts/<key>`, in order. */
const counts = (key: string) =>
  Effect.flatMap(EventStore.EventStore, (events) =>
    events.read(`counts/${key}`, { limit: 1000 }).pipe(
      Effect.map((r) => r.records.map((x) => (JSON.parse(decoder.decode(x.value)) as { count: number }).count)),
      Effect.catchTag("LogNotFound", () => Effect.succeed([] as Array<number>))
    ))

const info = Effect.flatMap(Transforms.Transforms, (t) => t.get(counter.name))

/** Prints each key's counts and its committed position; fails unless they are exactly 1..n for n clicks. */
const report = Effect.gen(function*() {
  const events = yield* EventStore.EventStore
  for (const [key, n] of [...appended].sort()) {
    const written = yield* counts(key)
    const committed = yield* events.fetchOffset(`transform/${counter.name}`, `clicks/${key}`)
    console.log(`  counts/${key}: ${written.join(" ")}    (committed: offset ${committed.offset}, ${committed.metadata})`)
    const expected = Array.from({ length: n }, (_, i) => i + 1)
    if (written.join(" ") !== expected.join(" ")) {
      return yield* Effect.fail(new Error(`counts/${key} is ${written.join(" ")}, expected ${expected.join(" ")} (once each)`))
    }
  }
})

const app = Effect.gen(function*() {
  console.log(`data in ${root}`)

  console.log("process 1: 3 clicks on a, 2 on b")
  yield* withTransform(Effect.gen(function*() {
    yield* click("a", 3)
    yield* click("b", 2)
    yield* waitUntil("5 clicks counted", Effect.map(info, (i) => i.recordsIn === 5))
    yield* report
  }))

  console.log("stopped: 2 more clicks on a, 1 on b, with no transform running")
  yield* withoutTransform(Effect.andThen(click("a", 2), click("b", 1)))

  console.log("process 2: catches up on those 3, then 1 more click on a and 2 on a new key c")
  yield* withTransform(Effect.gen(function*() {
    yield* click("a", 1)
    yield* click("c", 2)
    yield* waitUntil("3 + 3 clicks counted", Effect.map(info, (i) => i.recordsIn === 6 && !i.catchingUp))
    const i = yield* info
    console.log(`  ${i.name}: ${i.recordsIn} in, ${i.recordsOut} out since this start`)
    yield* report
  }))

  console.log("process 3: nothing new")
  yield* withTransform(Effect.gen(function*() {
    yield* waitUntil("the catch-up to finish", Effect.map(info, (i) => !i.catchingUp))
    const i = yield* info
    console.log(`  ${i.name}: ${i.recordsIn} in, ${i.recordsOut} out since this start`)
    if (i.recordsIn !== 0 || i.recordsOut !== 0) return yield* Effect.fail(new Error("a restart with nothing new processed records again"))
    yield* report
  }))
})

Effect.runPromise(app.pipe(Effect.ensuring(Effect.sync(() => fs.rmSync(root, { recursive: true, force: true }))))).then(
  () => console.log("ok: the counts went on across restarts, each exactly once"),
  (e) => {
    console.error(`transform-counter failed: ${e instanceof Error ? e.message : String(e)}`)
    process.exit(1)
  }
)
