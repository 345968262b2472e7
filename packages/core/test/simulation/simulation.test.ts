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

  /**
   * Each protocol mutant is caught at a known seed (the seed passes without the mutant: the sweeps run it).
   * Where a seed is caught only with one fault kind, the test also shows it passes once that kind is left out.
   */
  const caught: ReadonlyArray<{
    readonly mutant: Simulation.Mutant
    readonly workload: Simulation.Workload
    readonly seed: number
    readonly needs?: Simulation.FaultKind
    readonly violation: RegExp
  }> = [
    { mutant: "flush-not-idempotent", workload: Simulation.dbWorkload, seed: 17, needs: "outages", violation: /a reader at seq \d+ saw a state no writer had/ },
    { mutant: "flush-not-idempotent", workload: Simulation.dbRolesWorkload, seed: 77, violation: /recovered a state that is not the previous writer's/ },
    { mutant: "forget-ambiguous-put", workload: Simulation.dbWorkload, seed: 35, needs: "outages", violation: /Fenced, yet no newer writer/ },
    { mutant: "forget-ambiguous-put", workload: Simulation.dbRolesWorkload, seed: 77, violation: /Fenced, yet no newer writer/ },
    { mutant: "gc-lease-from-creation", workload: Simulation.dbRolesWorkload, seed: 228, needs: "clock-skew", violation: /table referenced by the manifest is missing/ },
    { mutant: "unrecorded-fences", workload: Simulation.dbWorkload, seed: 134, violation: /acknowledged after a newer writer recovered only up to/ },
    { mutant: "head-pointer-trusted", workload: Simulation.dbWorkload, seed: 19, needs: "late-writes", violation: /the head pointer names version \d+, yet no version from it on can be read/ }
  ]
  for (const c of caught) {
    it.live(`catches the ${c.mutant} mutant (${c.workload.name} seed ${c.seed}${c.needs === undefined ? "" : `, only with ${c.needs}`})`, () =>
      Effect.gen(function*() {
        const result = yield* Simulation.run(c.workload, { seed: c.seed, mutant: c.mutant })
        assert.isFalse(result.ok, `the ${c.mutant} mutant passed seed ${c.seed}`)
        assert.match(result.violation ?? "", c.violation)
        if (c.needs === undefined) return
        const without = yield* Simulation.run(c.workload, { seed: c.seed, mutant: c.mutant, without: [c.needs] })
        assert.isTrue(without.ok, without.violation)
      }))
  }

  it.live("split roles: a compactor process, crashed and replaced, loses nothing (seeds 1-5)", () =>
    Effect.gen(function*() {
      for (let seed = 1; seed <= 5; seed++) {
        const result = yield* Simulation.run(Simulation.dbRolesWorkload, { seed })
        assert.isTrue(result.ok, `${result.violation}\n${result.trace.join("\n")}\nreproduce: npm run sim -- --seed ${seed} --workload db-roles`)
      }
    }), 60_000)

  it.live("ends a run that never settles as a liveness violation, with its trace, and replays it exactly", () =>
    Effect.gen(function*() {
      // A workload that waits for something that never comes: only virtual time passes.
      const waiting: Simulation.Workload = {
        name: "waiting",
        run: (sim) => Effect.andThen(sim.trace("waiting for a verdict that never comes"), Effect.never)
      }
      const a = yield* Simulation.run(waiting, { seed: 7, virtualTimeMsMax: 5_000 })
      assert.isFalse(a.ok)
      assert.match(a.violation ?? "", /^no verdict after 5000 ms of virtual time \/ 5000 scheduler rounds .*\(liveness\)$/)
      assert.include(a.trace.join("\n"), "waiting for a verdict that never comes")
      assert.strictEqual(a.virtualTimeMs, 5_000)
      const b = yield* Simulation.run(waiting, { seed: 7, virtualTimeMsMax: 5_000 })
      assert.strictEqual(a.digest, b.digest)
    }))

  it.live("ends a run whose workload spins without waiting, by the rounds budget", () =>
    Effect.gen(function*() {
      // Yields to the scheduler and nothing else; its finalizer, once interrupted, never finishes either.
      const spinning: Simulation.Workload = {
        name: "spinning",
        run: () => Effect.forever(Effect.yieldNow).pipe(Effect.onInterrupt(() => Effect.never))
      }
      const result = yield* Simulation.run(spinning, { seed: 7, roundsMax: 2_000 })
      assert.isFalse(result.ok)
      assert.match(result.violation ?? "", /^no verdict after 2000 ms of virtual time \/ 2000 scheduler rounds .*\(liveness\)$/)
      assert.include(result.trace.join("\n"), "left behind")
    }))

  it.live("sets the default budget well above a long passing run", () =>
    Effect.gen(function*() {
      const result = yield* Simulation.run(Simulation.dbWorkload, { seed: 27 })
      assert.isTrue(result.ok, result.violation)
      assert.isBelow(result.virtualTimeMs * 4, Simulation.virtualTimeMsMaxDefault)
      assert.isAtMost(result.rounds, result.virtualTimeMs)
    }))

  for (const { seed, found } of regressions.db) {
    it.live(`regression seed ${seed}: ${found}`, () =>
      Effect.gen(function*() {
        const result = yield* Simulation.run(Simulation.dbWorkload, { seed })
        assert.isTrue(result.ok, `${result.violation}\n${result.trace.join("\n")}\nreproduce: npm run sim -- --seed ${seed}`)
      }))
  }
})
