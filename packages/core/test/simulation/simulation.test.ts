/**
 * The simulator's own guarantees: a seed replays exactly, the checker catches a broken variant, and
 * every seed that once found a bug stays fixed. (`npm run sim -- --seeds N` sweeps; CI runs a sweep too.)
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Simulation from "@opendata/core/simulation"

const regressions = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, "regressions.json"), "utf8")) as {
  readonly db: ReadonlyArray<{ readonly seed: number; readonly found: string }>
}

describe("simulation", () => {
  it.live("replays a seed exactly: the same trace, event for event", () =>
    Effect.gen(function*() {
      const a = yield* Simulation.run(Simulation.dbWorkload, { seed: 42 })
      const b = yield* Simulation.run(Simulation.dbWorkload, { seed: 42 })
      assert.isTrue(a.ok, a.violation)
      assert.strictEqual(a.digest, b.digest)
      assert.deepStrictEqual(a.trace, b.trace)
      const c = yield* Simulation.run(Simulation.dbWorkload, { seed: 43 })
      assert.notStrictEqual(a.digest, c.digest)
    }))

  it.live("catches a writer that ignores fencing (the skip-fencing mutant)", () =>
    Effect.gen(function*() {
      const result = yield* Simulation.run(Simulation.dbWorkload, { seed: 1, mutant: "skip-fencing" })
      assert.isFalse(result.ok)
      assert.match(result.violation ?? "", /acknowledged/)
    }))

  it.live("split roles: a compactor process, crashed and replaced, loses nothing (seeds 1-5)", () =>
    Effect.gen(function*() {
      for (let seed = 1; seed <= 5; seed++) {
        const result = yield* Simulation.run(Simulation.dbRolesWorkload, { seed })
        assert.isTrue(result.ok, `${result.violation}\n${result.trace.join("\n")}\nreproduce: npm run sim -- --seed ${seed} --workload db-roles`)
      }
    }), 60_000)

  for (const { seed, found } of regressions.db) {
    it.live(`regression seed ${seed}: ${found}`, () =>
      Effect.gen(function*() {
        const result = yield* Simulation.run(Simulation.dbWorkload, { seed })
        assert.isTrue(result.ok, `${result.violation}\n${result.trace.join("\n")}\nreproduce: npm run sim -- --seed ${seed}`)
      }))
  }
})
