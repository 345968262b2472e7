/**
 * `npm run sim -- [--seed N | --seeds COUNT [--from N]] [--steps S] [--mutant NAME] [--without KIND,...] [--workload db|db-roles|eventstore|transforms|tsdb]`
 *
 * Runs the deterministic simulation: one seed (replays it exactly), or a sweep of seeds. On a violation
 * it prints the reason, the last events of the trace (the fault schedule included) and
 * `reproduce: npm run sim -- --seed N`, and exits with code 1. A run with no verdict within its liveness
 * budget (virtual time and scheduler rounds, see `Simulation.run`) is such a violation too. A sweep ends with
 * its longest run in virtual time, against which the budget is set.
 */
import { Effect } from "effect"
import * as Simulation from "@opendata/core/simulation"
import { eventStoreWorkload, transformsWorkload } from "@opendata/eventstore/simulation"
import { tsdbWorkload } from "@opendata/tsdb/simulation"

const args = process.argv.slice(2)
const flag = (name: string) => {
  const i = args.indexOf(`--${name}`)
  return i === -1 ? undefined : args[i + 1]
}
const usage = () => {
  console.error("usage: npm run sim -- [--seed N | --seeds COUNT [--from N]] [--steps S] [--mutant NAME] [--without KIND,...] [--workload db|db-roles|eventstore|transforms|tsdb]")
  process.exit(2)
}
const int = (name: string, fallback: number) => {
  const value = flag(name)
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < 0) usage()
  return n
}

const workloads: Record<string, Simulation.Workload> = { db: Simulation.dbWorkload, "db-roles": Simulation.dbRolesWorkload, eventstore: eventStoreWorkload, transforms: transformsWorkload, tsdb: tsdbWorkload }
const workload = workloads[flag("workload") ?? "db"] ?? usage()
const withoutFlag = flag("without")
const without = withoutFlag === undefined ? [] : withoutFlag.split(",")
for (const kind of without) {
  if (!(Simulation.faultKinds as ReadonlyArray<string>).includes(kind)) {
    console.error(`unknown fault kind ${kind}; one of: ${Simulation.faultKinds.join(", ")}`)
    usage()
  }
}
const mutantFlag = flag("mutant")
if (mutantFlag !== undefined && !(Simulation.mutants as ReadonlyArray<string>).includes(mutantFlag)) {
  console.error(`unknown mutant ${mutantFlag}; one of: ${Simulation.mutants.join(", ")}`)
  usage()
}
const mutant = mutantFlag as Simulation.Mutant | undefined
const steps = int("steps", Simulation.stepsDefault)
const seeds = flag("seed") !== undefined
  ? [int("seed", 0)]
  : Array.from({ length: int("seeds", 100) }, (_, i) => int("from", 1) + i)

const reproduce = (seed: number) =>
  `reproduce: npm run sim -- --seed ${seed}${workload.name === "db" ? "" : ` --workload ${workload.name}`}${steps === Simulation.stepsDefault ? "" : ` --steps ${steps}`}${
    mutant === undefined ? "" : ` --mutant ${mutant}`
  }${without.length === 0 ? "" : ` --without ${without.join(",")}`}`

const main = async () => {
  const started = performance.now()
  let passed = 0
  let longest: Simulation.SimResult | undefined
  for (const seed of seeds) {
    const result = await Effect.runPromise(Simulation.run(workload, { seed, steps, mutant, without: without as ReadonlyArray<Simulation.FaultKind> }))
    if (result.ok) {
      passed += 1
      if (longest === undefined || result.virtualTimeMs > longest.virtualTimeMs) longest = result
      if (seeds.length === 1) console.log(`seed ${seed}: ok (trace digest ${result.digest}; ${Math.floor(result.virtualTimeMs)} ms of virtual time)`)
      continue
    }
    console.log(`seed ${seed}: VIOLATION (${workload.name}${mutant === undefined ? "" : `, mutant ${mutant}`})`)
    console.log(`  ${result.violation?.split("\n").join("\n  ")}`)
    console.log("last events:")
    for (const line of result.trace) console.log(`  ${line}`)
    console.log(reproduce(seed))
    process.exit(1)
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1)
  console.log(`${passed}/${seeds.length} seeds passed (${workload.name}, ${steps} steps each${mutant === undefined ? "" : `, mutant ${mutant}`}) in ${seconds}s`)
  if (longest !== undefined) {
    console.log(`longest run: seed ${longest.seed}, ${Math.floor(longest.virtualTimeMs)} ms of virtual time, ${longest.rounds} scheduler rounds`)
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
