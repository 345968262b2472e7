/** The TSDB's simulation workload: a few seeds here; `npm run sim -- --workload tsdb` sweeps. */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Simulation from "@opendata/core/simulation"
import { tsdbWorkload } from "@opendata/tsdb/simulation"

describe("TSDB simulation", () => {
  // Seed 1 once lost an acknowledged sample: a retry found the samples of a refused batch in memory.
  for (const seed of [1, 2, 3]) {
    it.live(`every acknowledged sample is readable once, with its value (seed ${seed})`, () =>
      Effect.gen(function*() {
        const result = yield* Simulation.run(tsdbWorkload, { seed })
        assert.isTrue(result.ok, `${result.violation}\n${result.trace.join("\n")}\nreproduce: npm run sim -- --seed ${seed} --workload tsdb`)
      }))
  }

  it.live("catches a writer that ignores fencing", () =>
    Effect.gen(function*() {
      assert.isFalse((yield* Simulation.run(tsdbWorkload, { seed: 1, mutant: "skip-fencing" })).ok)
    }))
})
