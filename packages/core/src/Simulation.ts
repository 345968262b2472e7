/**
 * Deterministic simulation (test support; import from `@opendata/core/simulation`).
 *
 * One root seed decides everything: the workload's choices, the object-store faults (latency,
 * unavailability, lost requests and replies, listing lag), when processes crash, when a second writer
 * opens and turns the first into a zombie, and every put-id. Time is `TestClock` time, advanced by a
 * driver fiber, so a run takes milliseconds of real time and replays exactly: a failing seed prints
 * `reproduce: npm run sim -- --seed N` and the last events of its trace.
 *
 * A `Workload` is a scenario with its own model and checker, written against the `Sim` primitives
 * (processes over one shared store, crashes, healing, time); products add theirs. `dbWorkload` checks the
 * core `Db`: every acknowledged write survives any crash, nothing appears that was neither acknowledged
 * nor in flight, snapshot reads are stable, a fenced writer's writes never appear, readers agree, and
 * once faults heal everything settles within a bounded virtual time.
 *
 * Every run also has a liveness budget, in virtual time and in scheduler rounds (never wall time, so a
 * budget verdict replays like any other): a run that has no verdict when either is spent is a violation,
 * whatever the workload is waiting for.
 */
import { Cause, Clock, Deferred, Effect, Exit, Fiber, Layer, Option, Random, References, Schedule, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as Db from "./Db.ts"
import * as ObjectStore from "./ObjectStore.ts"
import type { Prng } from "./internal/prng.ts"
import { makePrng } from "./internal/prng.ts"

export type { Prng }

/** What the checker found. */
export class Violation extends Error {
  readonly _tag = "Violation"
}

/** Fault kinds a run can leave out (`SimOptions.without`). */
export type FaultKind = "outages" | "late-writes" | "clock-skew" | "listing-shows-deleted" | "pauses" | "crashes-inside"

export const faultKinds: ReadonlyArray<FaultKind> = ["outages", "late-writes", "clock-skew", "listing-shows-deleted", "pauses", "crashes-inside"]

/**
 * Deliberately broken variants of the products built on the Db, which the Db ignores (each product takes
 * its own from `Sim.mutant`): `transform-position-apart`, the EventStore's transforms commit a batch's
 * position apart from its outputs (`TransformSettings.simulationMutant`; the `transforms` workload catches it).
 */
export type ProductMutant = "transform-position-apart"

/** The deliberately broken variants the simulator runs on demand (see `Db.SimulationMutant` and `ProductMutant`). */
export type Mutant = Db.SimulationMutant | ProductMutant

export const mutants: ReadonlyArray<Mutant> = [
  "skip-fencing",
  "unrecorded-fences",
  "flush-not-idempotent",
  "forget-ambiguous-put",
  "gc-lease-from-creation",
  "head-pointer-trusted",
  "transform-position-apart"
]

/** The Db's part of a run's mutant, for `Db.DbSettings.simulationMutant` ("none" for a product's mutant). */
export const dbMutant = (mutant: Mutant | undefined): Db.SimulationMutant | "none" =>
  mutant === undefined || mutant === "transform-position-apart" ? "none" : mutant

/** Workload steps of a run unless `SimOptions.steps` says otherwise. */
export const stepsDefault = 200

/**
 * Liveness budget in virtual time for `stepsDefault` steps (scaled up for more). Over seeds 1-100 the
 * longest passing runs took 36.8 s (db, db-roles), 62.3 s (eventstore, seeds 1-200) and 68.8 s (tsdb) of
 * virtual time: this is about 9 times the longest, and above the deadlines the workloads wait out
 * themselves (up to 5 minutes after faults heal), so that their more precise verdicts come first.
 */
export const virtualTimeMsMaxDefault = 600_000

/**
 * Liveness budget in scheduler rounds for `stepsDefault` steps (scaled up for more). The clock driver
 * advances virtual time 1 ms a round, so rounds never outrun virtual time and today this binds together
 * with the time budget at most; it bounds the work of a run should the driver ever jump ahead in time.
 */
export const roundsMaxDefault = 600_000

/** Once a budget is spent, how long (virtual) the interrupted workload may take to finish its finalizers. */
const interruptMsMax = 60_000

export interface SimOptions {
  readonly seed: number
  /** Workload steps (default `stepsDefault`). */
  readonly steps?: number | undefined
  /** Run a deliberately broken variant, to see the checker catch it. */
  readonly mutant?: Mutant | undefined
  /** Fault kinds left out of the run, to see which kind a mutant needs. */
  readonly without?: ReadonlyArray<FaultKind> | undefined
  /** Events kept for the failure report (default 40). */
  readonly traceMax?: number | undefined
  /** Virtual time after which a run without a verdict is a liveness violation (default `virtualTimeMsMaxDefault`, per 200 steps). */
  readonly virtualTimeMsMax?: number | undefined
  /** Scheduler rounds after which a run without a verdict is a liveness violation (default `roundsMaxDefault`, per 200 steps). */
  readonly roundsMax?: number | undefined
}

/** One simulated process: its own view of the shared store, which a crash cuts off mid-operation. */
export interface SimProcess {
  readonly id: number
  readonly store: ObjectStore.ObjectStoreShape
  readonly scope: Scope.Closeable
  /** The process's own clock: the true (virtual) time plus this process's skew. */
  readonly clock: Clock.Clock
  readonly skewMs: number
  /** Runs `self` as this process: its store, its clock, its scope. */
  readonly run: <A, E>(self: Effect.Effect<A, E, ObjectStore.ObjectStore | Scope.Scope>) => Effect.Effect<A, E>
  /** The process dies: every store call it makes from now on never completes; nothing is cleaned up. */
  readonly crash: Effect.Effect<void>
  /** The process dies just before its `calls`-th store call from now (0: before the next one). */
  readonly crashAfter: (calls: number) => Effect.Effect<void>
  /** The process dies just before its `writes`-th write (put, put-if-absent, put-if-match, delete) from now. */
  readonly crashAfterWrites: (writes: number) => Effect.Effect<void>
  /**
   * The process stops for `ms` of virtual time (a long GC pause, a frozen VM) and then resumes: every store
   * call it makes meanwhile waits until the pause ends.
   */
  readonly pause: (ms: number) => Effect.Effect<void>
  /** Closes the process gracefully (its scope's finalizers run). */
  readonly close: Effect.Effect<void>
}

export interface FaultPlan {
  readonly unavailableRate: number
  readonly lostReplyRate: number
  readonly lostRequestRate: number
  readonly latencyMsMax: number
  readonly listingLagMs: number
  /** Whether each listing lags by its own amount in [0, listingLagMs] rather than by all of it. */
  readonly listingLagVaries: boolean
  /** Windows in which every request of a kind fails or loses its reply (rate 1.0), then heals. */
  readonly outages: ReadonlyArray<ObjectStore.Outage>
  /** Probability that a write lands up to `lateMsMax` after its caller was told it failed. */
  readonly lateRate: number
  readonly lateMsMax: number
  /** Each process's clock is off by a skew drawn from [-clockSkewMsMax, clockSkewMsMax]. */
  readonly clockSkewMsMax: number
}

export interface Sim {
  readonly seed: number
  readonly mutant: Mutant | undefined
  readonly steps: number
  /** The workload's own generator, derived from the root seed. */
  readonly rng: Prng
  readonly faults: FaultPlan
  readonly trace: (event: string) => Effect.Effect<void>
  /** Starts a process on the shared store (with faults, until `heal`). */
  readonly spawn: Effect.Effect<SimProcess>
  /** The shared store without faults, as an operator would inspect it. */
  readonly inspect: ObjectStore.ObjectStoreShape
  /** Stops injecting faults. */
  readonly heal: Effect.Effect<void>
  /** Lets `ms` of virtual time pass. */
  readonly sleep: (ms: number) => Effect.Effect<void>
  readonly fail: (message: string) => Effect.Effect<never, Violation>
  /**
   * Retries what the store's own retries gave up on (`Unavailable`, or a product's, such as
   * `EventStoreUnavailable`), as an operator would: faults are transient, and an outage lasts at most
   * about 15 s of virtual time, so this waits out a minute. Any other failure, or one that outlasts that,
   * is a violation named by `what`.
   */
  readonly persist: <A, E extends { readonly _tag: string; readonly message: string }>(what: string, self: Effect.Effect<A, E>) => Effect.Effect<A, Violation>
  /** Whether the run injects this kind of fault (workloads consult it for pauses and crashes inside operations). */
  readonly injects: (kind: FaultKind) => boolean
}

const persistUnavailable = <A, E extends { readonly _tag: string; readonly message: string }>(what: string, self: Effect.Effect<A, E>) =>
  self.pipe(
    // Retried while the store is unavailable: core's `Unavailable`, or a product's (`EventStoreUnavailable`).
    Effect.retry({ schedule: Schedule.spaced("500 millis"), times: 120, while: (e) => e._tag.endsWith("Unavailable") }),
    Effect.mapError((e) => new Violation(`${what}: ${e.message}`))
  )

export interface Workload {
  readonly name: string
  readonly run: (sim: Sim) => Effect.Effect<void, Violation>
}

export interface SimResult {
  readonly seed: number
  readonly ok: boolean
  readonly violation: string | undefined
  readonly trace: ReadonlyArray<string>
  readonly faults: FaultPlan
  /** A digest of the whole trace: equal for two runs of one seed. */
  readonly digest: string
  /** Virtual time the run took. */
  readonly virtualTimeMs: number
  /** Scheduler rounds the clock driver made (1 ms of virtual time each). */
  readonly rounds: number
}

/** Runs one seed of a workload. Never fails: a violation (or a defect) is reported in the result. */
export const run = (workload: Workload, options: SimOptions): Effect.Effect<SimResult> =>
  Effect.gen(function*() {
    const root = makePrng(options.seed)
    const faultRng = root.fork()
    const rng = root.fork()
    const randomSeed = root.fork().nextInt(2 ** 31)
    // One seed in eight has listings that lag by varying amounts, up to longer than the workloads' GC
    // leases (up to 2 s): a listing may then show versions the collector deleted after a fresher listing
    // showed it their successors, while hiding those successors. Drawn from a generator of its own, so
    // that the seeds it leaves alone keep every other choice.
    const longLagRng = root.fork()
    const longLagMs = longLagRng.nextInt(8) === 0 ? 2_000 + longLagRng.nextInt(8_000) : 0
    const drawnFaults: FaultPlan = {
      unavailableRate: faultRng.nextInt(4) === 0 ? 0 : faultRng.next() * 0.1,
      lostReplyRate: faultRng.nextInt(4) === 0 ? 0 : faultRng.next() * 0.1,
      lostRequestRate: faultRng.nextInt(4) === 0 ? 0 : faultRng.next() * 0.05,
      latencyMsMax: faultRng.nextInt(60),
      listingLagMs: Math.max(longLagMs, faultRng.nextInt(3) === 0 ? 0 : faultRng.nextInt(200)),
      listingLagVaries: longLagMs > 0,
      outages: Array.from({ length: faultRng.nextInt(4) }, (): ObjectStore.Outage => {
        const startMs = faultRng.nextInt(40_000)
        return {
          startMs,
          endMs: startMs + 500 + faultRng.nextInt(15_000),
          operations: (["writes", "reads", "lists", "all"] as const)[faultRng.nextInt(4)]!,
          mode: faultRng.nextInt(2) === 0 ? "refuse" : "loseReply"
        }
      }),
      lateRate: faultRng.nextInt(3) === 0 ? faultRng.next() * 0.02 : 0,
      lateMsMax: 1000 + faultRng.nextInt(10_000),
      clockSkewMsMax: faultRng.nextInt(2) === 0 ? 0 : faultRng.nextInt(600_000)
    }
    const without = new Set(options.without ?? [])
    const injects = (kind: FaultKind) => !without.has(kind)
    // Drawn in full whatever is left out, so that the rest of the run's choices stay the same.
    const faults: FaultPlan = {
      ...drawnFaults,
      outages: injects("outages") ? drawnFaults.outages : [],
      lateRate: injects("late-writes") ? drawnFaults.lateRate : 0,
      clockSkewMsMax: injects("clock-skew") ? drawnFaults.clockSkewMsMax : 0
    }
    const traceMax = options.traceMax ?? 40
    const steps = options.steps ?? stepsDefault
    const scale = Math.max(1, steps / stepsDefault)
    const virtualTimeMsMax = options.virtualTimeMsMax ?? Math.ceil(virtualTimeMsMaxDefault * scale)
    const roundsMax = options.roundsMax ?? Math.ceil(roundsMaxDefault * scale)
    if (!(virtualTimeMsMax > 0 && roundsMax > 0)) throw new Error("Simulation.run: the liveness budgets must be positive")
    let rounds = 0
    let virtualTimeMs = 0
    const events: Array<string> = []
    let digest = 0x811c9dc5
    const trace = (event: string) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const line = `t=${Math.floor(now)}ms ${event}`
        for (let i = 0; i < line.length; i++) digest = Math.imul(digest ^ line.charCodeAt(i), 0x01000193) >>> 0
        events.push(line)
        if (events.length > traceMax) events.shift()
      })

    const program = Effect.gen(function*() {
      const memory = yield* ObjectStore.ObjectStore.use(Effect.succeed).pipe(Effect.provide(ObjectStore.layerMemory))
      const faulty = ObjectStore.make(
        ObjectStore.makeFaultyDriver(ObjectStore.toDriver(memory), { seed: faultRng.nextInt(2 ** 31), ...faults, listingShowsDeleted: injects("listing-shows-deleted") }),
        { retry: { retriesMax: 4, delayBaseMs: 5, delayMaxMs: 200 } }
      )
      let healed = false
      let processes = 0
      const trueClock = yield* Clock.Clock
      const skewRng = faultRng.fork()
      const spawn = Effect.gen(function*() {
        const id = ++processes
        let alive = true
        let pausedUntilMs = 0
        /** Store calls (or writes) left before a planned crash (`crashAfter`, `crashAfterWrites`); -1: none planned. */
        let callsBeforeCrash = -1
        let writesBeforeCrash = -1
        const skewMs = faults.clockSkewMsMax === 0 ? 0 : skewRng.nextInt(2 * faults.clockSkewMsMax + 1) - faults.clockSkewMsMax
        const clock: Clock.Clock = skewMs === 0 ? trueClock : {
          ...trueClock,
          currentTimeMillisUnsafe: () => trueClock.currentTimeMillisUnsafe() + skewMs,
          currentTimeMillis: Effect.map(trueClock.currentTimeMillis, (t) => t + skewMs),
          currentTimeNanosUnsafe: () => trueClock.currentTimeNanosUnsafe() + BigInt(skewMs) * 1_000_000n,
          currentTimeNanos: Effect.map(trueClock.currentTimeNanos, (t) => t + BigInt(skewMs) * 1_000_000n),
          sleep: (d) => trueClock.sleep(d)
        }
        // The store runs on the true clock (it stamps what it stores), whatever the caller's skew; a paused
        // process's calls wait for the pause to end; a crashed one's never complete.
        const gate = <A, E>(self: () => Effect.Effect<A, E>, write = false): Effect.Effect<A, E> =>
          Effect.provideService(
            Effect.gen(function*() {
              if (callsBeforeCrash === 0) alive = false
              if (callsBeforeCrash > 0) callsBeforeCrash -= 1
              if (write && writesBeforeCrash === 0) alive = false
              if (write && writesBeforeCrash > 0) writesBeforeCrash -= 1
              if (!alive) return yield* Effect.never
              const now = yield* Clock.currentTimeMillis
              if (now < pausedUntilMs) yield* Effect.sleep(`${Math.ceil(pausedUntilMs - now)} millis`)
              if (!alive) return yield* Effect.never
              return yield* self()
            }),
            Clock.Clock,
            trueClock
          )
        const via = () => (healed ? memory : faulty)
        const store: ObjectStore.ObjectStoreShape = {
          name: `process ${id}`,
          keyBytesMax: memory.keyBytesMax,
          etagsUnique: memory.etagsUnique,
          get: (k, r) => gate(() => via().get(k, r)),
          head: (k) => gate(() => via().head(k)),
          put: (k, b, o) => gate(() => via().put(k, b, o), true),
          putIfAbsent: (k, b, o) => gate(() => via().putIfAbsent(k, b, o), true),
          putIfMatch: (k, b, e, o) => gate(() => via().putIfMatch(k, b, e, o), true),
          listPage: (p, o) => gate(() => via().listPage(p, o)),
          // The pages are fetched as the stream runs, outside `gate`: they too run on the true clock.
          list: (p, o) => Stream.unwrap(gate(() => Effect.succeed(Stream.provideService(via().list(p, o), Clock.Clock, trueClock)))),
          delete: (k) => gate(() => via().delete(k), true),
          resolvePut: (k, p) => gate(() => via().resolvePut(k, p))
        }
        const scope = yield* Scope.make()
        return {
          id,
          store,
          scope,
          clock,
          skewMs,
          run: (self) =>
            self.pipe(Effect.provideService(ObjectStore.ObjectStore, store), Scope.provide(scope), Effect.provideService(Clock.Clock, clock)),
          crash: Effect.sync(() => {
            alive = false
          }),
          crashAfter: (calls) =>
            Effect.sync(() => {
              callsBeforeCrash = calls
            }),
          crashAfterWrites: (writes) =>
            Effect.sync(() => {
              writesBeforeCrash = writes
            }),
          pause: (ms) =>
            Effect.map(trueClock.currentTimeMillis, (now) => {
              pausedUntilMs = Math.max(pausedUntilMs, now + ms)
            }),
          close: Scope.close(scope, Exit.void)
        } satisfies SimProcess
      })
      // Virtual time flows while the program runs: one millisecond per scheduler round. The driver counts
      // its rounds and raises `spent` once a budget is; it keeps ticking after, so that the workload's
      // finalizers can still wait out virtual time while it is interrupted.
      const spent = yield* Deferred.make<string>()
      let raised = false
      const clock = yield* Effect.forkChild(Effect.forever(Effect.gen(function*() {
        yield* TestClock.adjust("1 millis")
        yield* Effect.yieldNow
        rounds += 1
        virtualTimeMs = yield* Clock.currentTimeMillis
        if (!raised && (rounds >= roundsMax || virtualTimeMs >= virtualTimeMsMax)) {
          raised = true
          yield* Deferred.succeed(
            spent,
            `no verdict after ${Math.floor(virtualTimeMs)} ms of virtual time / ${rounds} scheduler rounds ` +
              `(budget ${virtualTimeMsMax} ms / ${roundsMax} rounds): a run that never settles (liveness)`
          )
        }
      })))
      const sim: Sim = {
        seed: options.seed,
        mutant: options.mutant,
        steps,
        rng,
        faults,
        trace,
        spawn,
        inspect: memory,
        heal: Effect.andThen(Effect.sync(() => {
          healed = true
        }), trace("faults healed")),
        sleep: (ms) => Effect.sleep(`${ms} millis`),
        fail: (message) => Effect.fail(new Violation(message)),
        persist: persistUnavailable,
        injects
      }
      yield* trace(`seed ${options.seed}: ${workload.name}; faults ${JSON.stringify(faults)}`)
      // The workload runs in a fiber of its own, so that a budget verdict does not wait for it; detached,
      // so that one that never stops (a finalizer that hangs) does not keep the run from returning.
      const running = yield* Effect.forkDetach(workload.run(sim))
      const first = yield* Effect.raceFirst(
        Effect.map(Fiber.await(running), (exit) => ({ _tag: "verdict", exit }) as const),
        Effect.map(Deferred.await(spent), (message) => ({ _tag: "spent", message }) as const)
      )
      if (first._tag === "spent") {
        yield* trace("liveness budget spent: the workload is interrupted")
        // A workload that does not stop within a bounded (virtual) time is left behind.
        const stopped = yield* Effect.exit(Effect.timeout(Fiber.interrupt(running), `${interruptMsMax} millis`))
        if (Exit.isFailure(stopped)) yield* trace(`the workload did not stop within ${interruptMsMax} ms of being interrupted: left behind`)
      }
      yield* Fiber.interrupt(clock)
      return first._tag === "verdict" ? first.exit : Exit.fail(new Violation(first.message))
    })

    const exit = yield* program.pipe(
      Random.withSeed(randomSeed),
      Effect.provide(TestClock.layer()),
      Effect.provideService(References.MinimumLogLevel, "None")
    )
    const violation = Exit.isSuccess(exit)
      ? undefined
      : Option.match(Exit.findErrorOption(exit), {
        onNone: () => `defect: ${Cause.pretty(exit.cause)}`,
        onSome: (e) => e.message
      })
    return {
      seed: options.seed,
      ok: violation === undefined,
      violation,
      trace: events,
      faults,
      digest: digest.toString(16).padStart(8, "0"),
      virtualTimeMs,
      rounds
    }
  })

// -------------------------------------------------------------------------------------------------
// The Db workload
// -------------------------------------------------------------------------------------------------

type KvState = ReadonlyMap<string, string>

interface WriteRecord {
  readonly seq: number
  readonly batch: ReadonlyArray<Db.WriteOp>
  acked: boolean
  settled: boolean
}

/** One writer's lifetime: from its open (and the state it recovered) to its fencing or crash. */
interface Incarnation {
  readonly process: SimProcess
  readonly db: Db.DbShape
  /** The state it recovered on open, and the seq it recovered up to. */
  readonly base: KvState
  readonly baseSeq: number
  readonly writes: Array<WriteRecord>
  /** Set when a later writer opened: the last seq of this incarnation that it recovered. */
  recoveredUpTo: number | undefined
  /** What its change feed delivered, in order. */
  readonly feed: Array<Db.DurableBatch>
  /** How many writers had begun opening when it opened. */
  readonly opensAtOpen: number
}

const decoder = new TextDecoder()
const encoder = new TextEncoder()
const text = (b: Uint8Array) => decoder.decode(b)

const addition: Db.MergeOperator = (_key, existing, operands) =>
  encoder.encode(String(operands.reduce((sum, o) => sum + Number(text(o)), existing === undefined ? 0 : Number(text(existing)))))

const applyBatch = (state: Map<string, string>, batch: ReadonlyArray<Db.WriteOp>) => {
  for (const op of batch) {
    const key = text(op.key)
    if (op._tag === "put") state.set(key, text(op.value))
    else if (op._tag === "delete") state.delete(key)
    else state.set(key, String(Number(state.get(key) ?? "0") + Number(text(op.value))))
  }
}

/** The state of an incarnation after its writes up to `seq` (in seq order). */
const stateAt = (inc: Incarnation, seq: number): Map<string, string> => {
  const state = new Map(inc.base)
  for (const w of [...inc.writes].sort((a, b) => a.seq - b.seq)) {
    const first = w.seq - w.batch.length + 1
    if (first > seq) break
    applyBatch(state, w.batch)
  }
  return state
}

const same = (a: KvState, b: KvState) => a.size === b.size && [...a].every(([k, v]) => b.get(k) === v)
const show = (s: KvState) => JSON.stringify([...s].sort(([a], [b]) => (a < b ? -1 : 1)).slice(0, 12))

const scanAll = (scan: Stream.Stream<Db.KeyValue, Db.DbReadError>) =>
  Effect.map(Stream.runCollect(scan), (kvs) => new Map(kvs.map((kv) => [text(kv.key), text(kv.value)])))

/**
 * The core Db under faults, crashes and zombies, checked against a model of acknowledged writes.
 */
export const dbWorkload: Workload = { name: "db", run: (sim) => runDbWorkload(sim, false) }

/**
 * The same, with the roles split: the writer neither compacts nor collects; a compactor process does,
 * under its own epoch, and is itself crashed and replaced (the replaced one left running as a zombie).
 * Snapshots are checked only within the cross-process lease (`gcMinAgeMs`), which is all they are promised.
 */
export const dbRolesWorkload: Workload = { name: "db-roles", run: (sim) => runDbWorkload(sim, true) }

/** The lease that protects other processes' snapshots and uncommitted tables when the roles are split. */
const splitLeaseMs = 60_000

const runDbWorkload = (sim: Sim, split: boolean) =>
    Effect.gen(function*() {
      const { rng } = sim
      const drawn: Db.DbSettings = {
        flushIntervalMs: rng.nextInt(3) === 0 ? 0 : rng.nextInt(100),
        memtableBytesMax: 512 + rng.nextInt(4096),
        unflushedBytesMax: 64 * 1024,
        l0CompactionTrigger: 2 + rng.nextInt(3),
        l0Max: 8,
        sortedRunsMax: 1 + rng.nextInt(3),
        blockBytesTarget: 128 + rng.nextInt(512),
        sstBytesTarget: 1024 + rng.nextInt(8192),
        gcMinAgeMs: rng.nextInt(2000),
        gcIntervalMs: 200 + rng.nextInt(2000),
        merge: addition,
        simulationMutant: dbMutant(sim.mutant)
      }
      const settings: Db.DbSettings = split ? { ...drawn, compactor: false, gc: false, gcMinAgeMs: splitLeaseMs, manifestPollMs: 1000 } : drawn
      yield* sim.trace(`db settings ${JSON.stringify({ ...settings, merge: undefined })}`)
      const incarnations: Array<Incarnation> = []
      const keys = Array.from({ length: 3 + rng.nextInt(20) }, (_, i) => `k${i}`)
      const key = () => keys[rng.nextInt(keys.length)]!

      /** Checks an acknowledgement against what the next writer recovered. */
      const checkAck = (inc: Incarnation, w: WriteRecord) =>
        inc.recoveredUpTo !== undefined && w.seq > inc.recoveredUpTo
          ? sim.fail(
            `process ${inc.process.id}: write seq ${w.seq} was acknowledged after a newer writer recovered only up to ` +
              `seq ${inc.recoveredUpTo}: an acknowledged write is lost (a fenced writer got through)`
          )
          : Effect.void

      /**
       * Retries what the store's own retries gave up on: an operator would, and faults are transient (an
       * outage lasts at most about 15 s of virtual time; this waits out a minute).
       */
      const persist = sim.persist

      let healed = false
      /**
       * Whether a failed read is explained: only an unreachable store while faults last. A read that finds
       * an object missing or corrupt, or dies, is a violation whenever it happens.
       */
      const readFailure = (what: string, exit: Exit.Exit<unknown, { readonly _tag: string; readonly message: string }>) => {
        if (Exit.isSuccess(exit)) return Effect.void
        const error = Exit.findErrorOption(exit)
        if (Option.isSome(error) && error.value._tag === "Unavailable" && !healed) return Effect.void
        if (Cause.hasInterruptsOnly(exit.cause)) return Effect.void
        return sim.fail(`${what} failed${healed ? " after faults healed" : ""}: ${Option.isSome(error) ? error.value.message : Cause.pretty(exit.cause)}`)
      }

      /** Writers that began opening so far: a writer may be fenced only by one that began after it. */
      let opensStarted = 0

      /** Opens a writer in a new process, and checks what it recovered against the previous writer's model. */
      const openWriter = Effect.gen(function*() {
        const process = yield* sim.spawn
        opensStarted += 1
        const opensAtOpen = opensStarted
        const db = yield* persist("opening a writer", process.run(Db.make(settings)))
        const recovered = yield* persist("scan after open", scanAll(db.scan()))
        const seq = yield* db.durableSeq
        const previous = incarnations.at(-1)
        if (previous !== undefined) {
          const expected = stateAt(previous, seq)
          if (!same(expected, recovered)) {
            return yield* sim.fail(
              `process ${process.id} recovered a state that is not the previous writer's writes up to seq ${seq}:\n` +
                `  expected ${show(expected)}\n  found    ${show(recovered)}`
            )
          }
          previous.recoveredUpTo = seq
          for (const w of previous.writes) if (w.acked) yield* checkAck(previous, w)
        } else if (recovered.size !== 0) {
          return yield* sim.fail(`a new store is not empty: ${show(recovered)}`)
        }
        const inc: Incarnation = { process, db, base: recovered, baseSeq: seq, writes: [], recoveredUpTo: undefined, feed: [], opensAtOpen }
        incarnations.push(inc)
        // Follow its change feed from now on: checked at the end for contiguous seqs and the model's writes.
        const next = yield* process.run(db.subscribe)
        yield* Effect.forkIn(Effect.forever(Effect.map(next, (batch) => void inc.feed.push(batch))), process.scope)
        yield* sim.trace(`process ${process.id} opened the writer at seq ${seq} (${recovered.size} keys)`)
        return inc
      })

      const write = (inc: Incarnation) =>
        Effect.gen(function*() {
          const batch: Array<Db.WriteOp> = Array.from({ length: 1 + rng.nextInt(3) }, () => {
            const k = encoder.encode(key())
            const roll = rng.nextInt(10)
            return roll < 6
              ? { _tag: "put" as const, key: k, value: encoder.encode(String(rng.nextInt(1000))) }
              : roll < 8
              ? { _tag: "delete" as const, key: k }
              : { _tag: "merge" as const, key: k, value: encoder.encode(String(1 + rng.nextInt(9))) }
          })
          const submitted = yield* Effect.exit(inc.db.write(batch, { awaitDurable: false }))
          if (Exit.isFailure(submitted)) return // stopped (fenced or closed): nothing was accepted
          const record: WriteRecord = { seq: submitted.value.seq, batch, acked: false, settled: false }
          inc.writes.push(record)
          yield* Effect.forkChild(
            Effect.exit(submitted.value.durable).pipe(
              Effect.flatMap((exit) => {
                record.settled = true
                if (Exit.isFailure(exit)) {
                  // Fenced only if a newer writer began opening: a writer that fences itself (say, taking its
                  // own earlier WAL object for another's) stops for nothing.
                  const error = Exit.findErrorOption(exit)
                  if (Option.isSome(error) && error.value._tag === "Fenced" && opensStarted === inc.opensAtOpen) {
                    return sim.fail(`process ${inc.process.id}: write seq ${record.seq} failed with Fenced, yet no newer writer began opening`)
                  }
                  return Effect.void
                }
                record.acked = true
                return checkAck(inc, record)
              }),
              Effect.catch((v) => Effect.sync(() => failures.push(v)))
            )
          )
        })
      const failures: Array<Violation> = []

      /** A point read must return the value at some durable seq between its start and its end. */
      const checkGet = (inc: Incarnation) =>
        Effect.gen(function*() {
          const k = key()
          const before = yield* inc.db.durableSeq
          const got = yield* Effect.exit(inc.db.get(encoder.encode(k)))
          const after = yield* inc.db.durableSeq
          if (Exit.isFailure(got)) return yield* readFailure(`process ${inc.process.id}: get ${k}`, got)
          const value = got.value === undefined ? undefined : text(got.value)
          for (let s = before; s <= after; s++) if (stateAt(inc, s).get(k) === value) return
          return yield* sim.fail(`process ${inc.process.id}: get ${k} = ${value} matches no state between seq ${before} and ${after}`)
        })

      const snapshots: Array<{ inc: Incarnation; snapshot: Db.Snapshot; scope: Scope.Closeable; expected: KvState; takenMs: number }> = []
      const takeSnapshot = (inc: Incarnation) =>
        Effect.gen(function*() {
          const scope = yield* Scope.make()
          const snapshot = yield* inc.db.snapshot.pipe(Scope.provide(scope))
          snapshots.push({ inc, snapshot, scope, expected: stateAt(inc, snapshot.seq), takenMs: yield* Clock.currentTimeMillis })
          yield* sim.trace(`process ${inc.process.id} took a snapshot at seq ${snapshot.seq}`)
        })
      const checkOneSnapshot = (s: typeof snapshots[number]) => Effect.gen(function*() {
        if (incarnations.at(-1) !== s.inc) return
        // With the roles split, the collector in another process keeps a snapshot's tables for the lease only.
        if (split && (yield* Clock.currentTimeMillis) - s.takenMs > splitLeaseMs / 2) return
        const seen = yield* Effect.exit(scanAll(s.inc.db.scan(undefined, { snapshot: s.snapshot })))
        if (Exit.isFailure(seen)) return yield* readFailure(`a scan of the snapshot at seq ${s.snapshot.seq}`, seen)
        if (!same(seen.value, s.expected)) {
          return yield* sim.fail(
            `snapshot at seq ${s.snapshot.seq} changed:\n  expected ${show(s.expected)}\n  found    ${show(seen.value)}`
          )
        }
      })
      const checkSnapshot = Effect.suspend(() => {
        const s = snapshots[rng.nextInt(snapshots.length)]
        return s === undefined ? Effect.void : checkOneSnapshot(s)
      })

      const checkReader = Effect.gen(function*() {
        // Everything acknowledged before a reader opens is durable, so the reader must see it.
        let ackedBefore = 0
        for (const inc of incarnations) for (const w of inc.writes) if (w.acked && w.seq > ackedBefore) ackedBefore = w.seq
        const process = yield* sim.spawn
        const reader = yield* process.run(Db.makeFollower({ pollIntervalMs: 3_600_000, merge: addition })).pipe(Effect.exit)
        if (Exit.isFailure(reader)) {
          yield* process.close
          return yield* readFailure("opening a follower", reader)
        }
        const seen = yield* Effect.exit(scanAll(reader.value.scan()))
        const seq = yield* reader.value.durableSeq
        yield* process.close
        if (Exit.isFailure(seen)) return yield* readFailure(`a follower's scan at seq ${seq}`, seen)
        if (seq < ackedBefore) {
          return yield* sim.fail(`a reader opened at seq ${seq}, after seq ${ackedBefore} had been acknowledged`)
        }
        const inc = incarnations.findLast((i) => i.baseSeq <= seq)
        if (inc === undefined) return
        // The reader may have caught up to a writer that opened since, or be behind the current one.
        if (inc.recoveredUpTo !== undefined && seq > inc.recoveredUpTo) return
        const expected = stateAt(inc, seq)
        if (!same(seen.value, expected)) {
          return yield* sim.fail(`a reader at seq ${seq} saw a state no writer had:\n  expected ${show(expected)}\n  found    ${show(seen.value)}`)
        }
      })

      /** The compactor role in a process of its own (split roles only). */
      const openCompactor = Effect.gen(function*() {
        const process = yield* sim.spawn
        const compactor = yield* persist("opening a compactor", process.run(Db.makeCompactor(settings)))
        yield* sim.trace(`process ${process.id} opened a compactor at epoch ${(yield* compactor.stats).compactorEpoch}`)
        return { process, compactor }
      })

      let current = yield* openWriter
      let zombie: Incarnation | undefined
      let pauses = 0
      const pausesMax = 2
      let compactor = split ? yield* openCompactor : undefined
      for (let step = 0; step < sim.steps; step++) {
        if (failures.length > 0) return yield* Effect.fail(failures[0]!)
        const roll = rng.nextInt(100)
        if (roll < 40) yield* write(current)
        else if (roll < 45 && zombie !== undefined) yield* write(zombie)
        else if (roll < 58) yield* checkGet(current)
        else if (roll < 70) yield* sim.sleep(rng.nextInt(200))
        else if (roll < 73) yield* takeSnapshot(current)
        else if (roll < 77) yield* checkSnapshot
        else if (roll < 80) yield* Effect.ignore(current.db.flush)
        else if (roll < 83) yield* Effect.ignore(compactor === undefined ? current.db.compact : compactor.compactor.compact)
        else if (roll < 86) yield* Effect.ignore(compactor === undefined ? current.db.collectGarbage : compactor.compactor.collectGarbage)
        else if (roll < 89) yield* checkReader
        else if (roll < 92) {
          yield* sim.trace(`process ${current.process.id} crashes`)
          yield* current.process.crash
          current = yield* openWriter
        } else if (roll < 95) {
          yield* sim.trace(`process ${current.process.id} is left running: a new writer opens`)
          zombie = current
          current = yield* openWriter
        } else if (roll < 96) {
          yield* sim.trace(`process ${current.process.id} restarts gracefully`)
          const closing = yield* Effect.forkChild(current.process.close)
          yield* Fiber.await(closing).pipe(Effect.timeout("60 seconds"), Effect.ignore)
          current = yield* openWriter
        } else if (roll < 98) {
          const what = rng.nextInt(5)
          const kind: FaultKind = what === 1 || what === 2 ? "pauses" : "crashes-inside"
          // At most `pausesMax` pauses a run: a paused compactor stalls the writer (backpressure) meanwhile.
          if (!sim.injects(kind) || (kind === "pauses" && pauses >= pausesMax)) {
            yield* sim.sleep(rng.nextInt(200))
          } else if (what === 0) {
            // Crash inside opening: a new writer starts opening and its process dies midway; then another opens.
            const process = yield* sim.spawn
            // Opening writes: the epoch commit, its head pointer, the fence, the commit recording it, its head.
            const writes = rng.nextInt(5)
            yield* sim.trace(`process ${process.id} starts opening a writer and crashes before its write ${writes + 1}`)
            // The writer it was taking over from is slow meanwhile (a pause): it resumes once the next writer
            // has taken over, flushed and collected, and its next WAL write must still meet a fence.
            if (sim.injects("pauses")) {
              // It has a write in hand when it stops, whose WAL put goes out when it resumes.
              yield* current.process.pause(3_000 + rng.nextInt(12_000))
              yield* write(current)
            }
            yield* process.crashAfterWrites(writes)
            opensStarted += 1
            const opening = yield* Effect.forkChild(process.run(Db.make(settings)))
            yield* sim.sleep(200)
            yield* process.crash
            yield* Fiber.interrupt(opening)
            zombie = current
            current = yield* openWriter
            yield* Effect.ignore(current.db.flush)
          } else if (what === 1) {
            // A pause: the writer stops for minutes mid-operation; a new writer takes over meanwhile, and the
            // old one resumes as a zombie (epochs moved on, objects it knew collected, its leases expired).
            const pauseMs = 60_000 + rng.nextInt(120_000)
            pauses += 1
            yield* sim.trace(`process ${current.process.id} pauses for ${pauseMs} ms; a new writer opens`)
            yield* Effect.forkChild(Effect.ignore(current.db.flush))
            yield* current.process.pause(pauseMs)
            zombie = current
            current = yield* openWriter
          } else if (what === 2 && compactor !== undefined) {
            const pauseMs = 60_000 + rng.nextInt(120_000)
            pauses += 1
            yield* sim.trace(`compactor process ${compactor.process.id} pauses for ${pauseMs} ms mid-operation`)
            yield* Effect.forkChild(Effect.ignore(compactor.compactor.collectGarbage))
            yield* sim.sleep(rng.nextInt(20))
            yield* compactor.process.pause(pauseMs)
          } else {
            // Crash inside a flush, a compaction or a collection.
            const op = (["flush", "compaction", "garbage collection"] as const)[rng.nextInt(3)]!
            const running = op === "flush"
              ? current.db.flush
              : compactor === undefined
              ? (op === "compaction" ? current.db.compact : current.db.collectGarbage)
              : (op === "compaction" ? compactor.compactor.compact : compactor.compactor.collectGarbage)
            const crashed = compactor !== undefined && op !== "flush" ? compactor.process : current.process
            const calls = rng.nextInt(10)
            const byWrites = rng.nextInt(2) === 0
            yield* sim.trace(`process ${crashed.id} crashes inside a ${op}, before its ${byWrites ? "write" : "store call"} ${calls + 1}`)
            yield* (byWrites ? crashed.crashAfterWrites(calls) : crashed.crashAfter(calls))
            yield* Effect.forkChild(Effect.ignore(running))
            yield* sim.sleep(200)
            yield* crashed.crash
            if (crashed === current.process) current = yield* openWriter
            else if (compactor !== undefined) compactor = yield* openCompactor
          }
        } else if (compactor !== undefined && roll < 99) {
          // The compactor process crashes, or is left running while a new one takes over.
          if (rng.nextInt(2) === 0) {
            yield* sim.trace(`compactor process ${compactor.process.id} crashes`)
            yield* compactor.process.crash
          } else yield* sim.trace(`compactor process ${compactor.process.id} is left running: a new compactor opens`)
          compactor = yield* openCompactor
        } else {
          yield* sim.sleep(rng.nextInt(2000))
        }
      }
      if (failures.length > 0) return yield* Effect.fail(failures[0]!)

      // Liveness: once faults heal, every write of the current writer settles within a bounded time.
      healed = true
      yield* sim.heal
      const deadline = 120_000
      let waited = 0
      while (current.writes.some((w) => !w.settled) && waited < deadline) {
        yield* sim.sleep(100)
        waited += 100
      }
      const stuck = current.writes.filter((w) => !w.settled)
      if (stuck.length > 0) {
        return yield* sim.fail(`${stuck.length} writes did not settle within ${deadline} ms of virtual time after faults healed`)
      }
      for (const w of current.writes) {
        if (!w.acked) return yield* sim.fail(`write seq ${w.seq} failed on a healthy writer after faults healed`)
      }
      // And it still takes writes: it did not stop on its own during the run.
      const probeBatch: ReadonlyArray<Db.WriteOp> = [{ _tag: "put", key: encoder.encode(key()), value: encoder.encode("0") }]
      const probe = yield* Effect.exit(Effect.timeout(current.db.write(probeBatch), "60 seconds"))
      if (Exit.isFailure(probe)) {
        return yield* sim.fail(`the current writer (process ${current.process.id}) refuses writes after faults healed: ${Cause.pretty(probe.cause).slice(0, 300)}`)
      }
      current.writes.push({ seq: probe.value.seq, batch: probeBatch, acked: true, settled: true })
      if (failures.length > 0) return yield* Effect.fail(failures[0]!)
      // Every live snapshot of the current writer still reads what it read when taken.
      for (const s of snapshots) yield* checkOneSnapshot(s)
      for (const s of snapshots) yield* Scope.close(s.scope, Exit.void)
      // awaitDurable answers at once for what is acknowledged.
      for (const w of current.writes) {
        const awaited = yield* Effect.exit(Effect.timeout(current.db.awaitDurable(w.seq), "1 second"))
        if (Exit.isFailure(awaited)) return yield* sim.fail(`awaitDurable(${w.seq}) of an acknowledged write did not return: ${Cause.pretty(awaited.cause)}`)
      }
      // The change feed delivered every write of the current writer, in seq order, with no gap, as written.
      yield* sim.sleep(10)
      let expectSeq = current.baseSeq + 1
      const bySeq = new Map(current.writes.map((w) => [w.seq - w.batch.length + 1, w]))
      for (const batch of current.feed) {
        if (batch.firstSeq !== expectSeq) {
          return yield* sim.fail(`change feed of process ${current.process.id}: a batch starts at seq ${batch.firstSeq}, expected ${expectSeq} (a gap or a repeat)`)
        }
        for (let i = 0; i < batch.entries.length;) {
          const w = bySeq.get(batch.entries[i]!.seq)
          if (w === undefined || !w.batch.every((op, j) => batch.entries[i + j]?.kind === op._tag && text(batch.entries[i + j]!.key) === text(op.key))) {
            return yield* sim.fail(`change feed of process ${current.process.id}: seq ${batch.entries[i]!.seq} is not the write the model holds`)
          }
          i += w.batch.length
        }
        expectSeq = batch.lastSeq + 1
      }
      const lastWritten = Math.max(current.baseSeq, ...current.writes.map((w) => w.seq))
      if (expectSeq !== lastWritten + 1) {
        return yield* sim.fail(`change feed of process ${current.process.id} ends at seq ${expectSeq - 1}, the writer acknowledged up to ${lastWritten}`)
      }
      // A follower polling the store catches up with the writer within a bounded time and agrees with it.
      {
        const process = yield* sim.spawn
        const follower = yield* persist("opening a follower", process.run(Db.makeFollower({ pollIntervalMs: 500, merge: addition })))
        let caughtUp = false
        for (let waited = 0; waited < 30_000 && !caughtUp; waited += 100) {
          caughtUp = (yield* follower.durableSeq) >= lastWritten
          if (!caughtUp) yield* sim.sleep(100)
        }
        if (!caughtUp) return yield* sim.fail(`a follower did not reach seq ${lastWritten} within 30 s of polling after faults healed`)
        const seen = yield* persist("a follower's scan", scanAll(follower.scan()))
        const expected = stateAt(current, lastWritten)
        if (!same(seen, expected)) {
          return yield* sim.fail(`a follower at seq ${lastWritten} disagrees with the writer:\n  expected ${show(expected)}\n  found    ${show(seen)}`)
        }
        yield* process.close
      }
      // A last writer must recover everything the current one acknowledged.
      yield* sim.trace(`process ${current.process.id} closes; a last writer checks what it recovers`)
      const closing = yield* Effect.forkChild(current.process.close)
      yield* Fiber.await(closing).pipe(Effect.timeout("60 seconds"), Effect.ignore)
      const last = yield* openWriter
      const lastAcked = Math.max(current.baseSeq, ...current.writes.filter((w) => w.acked).map((w) => w.seq))
      if ((current.recoveredUpTo ?? 0) < lastAcked) {
        return yield* sim.fail(`the last writer recovered up to seq ${current.recoveredUpTo}, below acknowledged seq ${lastAcked}`)
      }
      yield* last.process.close
    }).pipe(Effect.scoped)

/** The shared layer used by tests that want a faulty memory store with a given seed. */
export const layerFaultyMemory = (seed: number, faults: Omit<ObjectStore.FaultSettings, "seed">) =>
  ObjectStore.layerFaulty({ seed, ...faults }).pipe(Layer.provide(ObjectStore.layerMemory))
