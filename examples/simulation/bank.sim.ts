/**
 * A simulation test of the bank app: the harness from `@opendata/core/simulation` crashes its process,
 * injects store faults and moves virtual time, all from one seed; the workload checks the app's own
 * invariants after every recovery: the total never changes, and every acknowledged transfer is counted.
 *
 *   npm run simulation -w examples -- --seeds 50      (or --seed N to replay one)
 */
import { Effect, Exit } from "effect"
import { Db } from "@opendata/core"
import * as Simulation from "@opendata/core/simulation"
import { addition, makeBank } from "./bank.ts"

const accounts = 8
const initial = 100

const bankWorkload: Simulation.Workload = {
  name: "bank",
  run: (sim) =>
    Effect.gen(function*() {
      let acknowledged = 0
      const open = Effect.gen(function*() {
        const process = yield* sim.spawn
        // Opening and auditing wait out store outages (`sim.persist`), as an operator would.
        const db = yield* sim.persist("opening the Db", process.run(Db.make({ merge: addition, flushIntervalMs: 20, memtableBytesMax: 2048 })))
        return { process, bank: makeBank(db) }
      })
      const check = (bank: ReturnType<typeof makeBank>) =>
        Effect.gen(function*() {
          const audit = yield* sim.persist("the audit", bank.audit)
          if (audit.total !== accounts * initial) return yield* sim.fail(`money changed: total ${audit.total}`)
          if (audit.transfers < acknowledged) {
            return yield* sim.fail(`${acknowledged} transfers acknowledged, ${audit.transfers} recorded`)
          }
          acknowledged = audit.transfers
        })
      let current = yield* open
      yield* sim.persist("opening the accounts", current.bank.open(accounts, initial))
      for (let step = 0; step < sim.steps; step++) {
        const roll = sim.rng.nextInt(100)
        if (roll < 80) {
          const from = sim.rng.nextInt(accounts)
          const to = (from + 1 + sim.rng.nextInt(accounts - 1)) % accounts
          const done = yield* Effect.exit(current.bank.transfer(from, to, 1 + sim.rng.nextInt(20)))
          if (Exit.isSuccess(done)) acknowledged += 1
        } else if (roll < 95) {
          yield* sim.sleep(sim.rng.nextInt(100))
        } else {
          yield* sim.trace(`process ${current.process.id} crashes`)
          yield* current.process.crash
          current = yield* open
          yield* check(current.bank)
        }
      }
      yield* check(current.bank)
    }).pipe(Effect.scoped)
}

const args = process.argv.slice(2)
const value = (name: string) => {
  const i = args.indexOf(`--${name}`)
  return i === -1 ? undefined : Number(args[i + 1])
}
const seeds = value("seed") !== undefined ? [value("seed")!] : Array.from({ length: value("seeds") ?? 20 }, (_, i) => i + 1)

for (const seed of seeds) {
  const result = await Effect.runPromise(Simulation.run(bankWorkload, { seed, steps: 150 }))
  if (!result.ok) {
    console.log(`seed ${seed}: VIOLATION: ${result.violation}`)
    for (const line of result.trace) console.log(`  ${line}`)
    console.log(`reproduce: npm run simulation -w examples -- --seed ${seed}`)
    process.exit(1)
  }
}
console.log(`bank simulation: ${seeds.length} seeds passed`)
