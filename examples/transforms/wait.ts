/** What the transform examples share: waiting for a transform's work to show. */
import { Effect } from "effect"
import { Transforms } from "@opendata/eventstore"

/** Checks `done` every 20 ms until it holds; fails after 10 s, saying what it waited for and the transforms' failed logs. */
export const waitUntil = <E, R>(what: string, done: Effect.Effect<boolean, E, R>) =>
  Effect.gen(function*() {
    const deadline = Date.now() + 10_000
    while (!(yield* done)) {
      if (Date.now() > deadline) {
        const failed = (yield* Effect.flatMap(Transforms.Transforms, (t) => t.list)).flatMap((i) => i.failedLogs)
        const why = failed.map((f) => `; ${f.key} failed at offset ${f.offset}: ${f.error}`).join("")
        return yield* Effect.fail(new Error(`timed out after 10 s waiting for ${what}${why}`))
      }
      yield* Effect.sleep("20 millis")
    }
  })
