/** The EventStore's simulation workload: a few seeds here; `npm run sim -- --workload eventstore` sweeps. */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Simulation from "@opendata/core/simulation"
import { eventStoreWorkload } from "@opendata/eventstore/simulation"

describe("EventStore simulation", () => {
  for (const seed of [1, 2, 3]) {
    it.live(`holds every acknowledged append exactly once through crashes and zombies (seed ${seed})`, () =>
      Effect.gen(function*() {
        const result = yield* Simulation.run(eventStoreWorkload, { seed })
        assert.isTrue(result.ok, `${result.violation}\n${result.trace.join("\n")}\nreproduce: npm run sim -- --seed ${seed} --workload eventstore`)
      }))
  }

  it.live("catches a writer that ignores fencing", () =>
    Effect.gen(function*() {
      const result = yield* Simulation.run(eventStoreWorkload, { seed: 2, mutant: "skip-fencing" })
      assert.isFalse(result.ok)
    }))
})
