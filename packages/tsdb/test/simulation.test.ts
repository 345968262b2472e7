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

  // Whether one seed's schedule lets the zombie writer's batch through before the new one's depends on
  // timing (record sizes, say): the sweep must catch it within its first few seeds.
  it.live("catches a writer that ignores fencing (within seeds 1-3)", () =>
    Effect.gen(function*() {
      const results = yield* Effect.forEach([1, 2, 3], (seed) => Simulation.run(tsdbWorkload, { seed, mutant: "skip-fencing" }))
      assert.isTrue(results.some((r) => !r.ok))
    }))
})
