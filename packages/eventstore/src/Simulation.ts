/**
 * The EventStore's simulation workload (test support; import from `@opendata/eventstore/simulation`),
 * for the core harness: concurrent producers append numbered batches with producer ids, retrying the
 * same batch through lost replies, unavailability, crashes and zombie writers; tail subscribers follow
 * each log and resume after their process dies. Checked at the end, with faults healed: every log is a
 * gap-free, duplicate-free sequence that holds every acknowledged batch exactly once (and each producer's
 * batches in order), and every subscriber saw exactly that sequence, in order. Once faults heal, the store
 * must also verify: every table the latest manifest references is there and intact.
 */
import { Context, Effect, Exit, Fiber, Layer, Ref, Stream } from "effect"
import { Db, ObjectStore } from "@opendata/core"
import type { Sim, SimProcess, Workload } from "@opendata/core/simulation"
import { dbMutant, Violation } from "@opendata/core/simulation"
import type { EventStoreShape, LogRecord } from "./EventStore.ts"
import { EventStore } from "./EventStore.ts"
import { layer } from "./EventStoreLive.ts"

export { transformsWorkload } from "./TransformsSimulation.ts"

const encoder = new TextEncoder()
const decoder = new TextDecoder()

interface Node {
  readonly process: SimProcess
  readonly store: EventStoreShape
}

/** The Db's objects live under this path of the shared store. */
const dbPath = "eventstore/"

/** A subscriber whose tail ended on the process that is still current waits this long before resuming. */
const subscriberRetryMs = 100

/** After faults heal: how long producers may take to finish, and how often the store is verified meanwhile. */
const settleMsMax = 300_000
const storeCheckIntervalMs = 5_000

/** "producer:seq:index", the identity of one record. */
const label = (producer: number, seq: number, index: number) => `${producer}:${seq}:${index}`

export const eventStoreWorkload: Workload = {
  name: "eventstore",
  run: (sim: Sim) =>
    Effect.gen(function*() {
      const { rng } = sim
      const logs = Array.from({ length: 1 + rng.nextInt(4) }, (_, i) => `log-${i}`)
      const producers = 2 + rng.nextInt(4)
      const batchesPerProducer = 10 + rng.nextInt(30)
      const dbSettings: Db.DbSettings = {
        path: dbPath,
        flushIntervalMs: rng.nextInt(3) === 0 ? 0 : rng.nextInt(100),
        memtableBytesMax: 1024 + rng.nextInt(8192),
        l0CompactionTrigger: 2 + rng.nextInt(3),
        sortedRunsMax: 1 + rng.nextInt(3),
        blockBytesTarget: 256,
        sstBytesTarget: 4096,
        gcMinAgeMs: rng.nextInt(2000),
        gcIntervalMs: 500 + rng.nextInt(2000),
        simulationMutant: dbMutant(sim.mutant)
      }

      // From the seed, not the workload's generator (which would change every seed's scenario): logs'
      // metadata rewritten every 1 to 16 records, or at the default.
      const metaCheckpointRecords = sim.seed % 3 === 0 ? undefined : 1 + (Math.imul(sim.seed, 0x9e3779b1) >>> 0) % 16
      const open = Effect.gen(function*() {
        const process = yield* sim.spawn
        // Built in the process's scope: the store lives until the process closes (or is abandoned by a crash).
        const context = yield* sim.persist(
          "opening the event store failed",
          Layer.buildWithScope(
            layer({ tailHeartbeatMs: 200, metaCheckpointRecords }).pipe(
              Layer.provide(Db.layer(dbSettings)),
              Layer.provide(Layer.succeed(ObjectStore.ObjectStore, process.store))
            ),
            process.scope
          )
        )
        const store = Context.get(context, EventStore)
        yield* sim.trace(`process ${process.id} opened the event store`)
        return { process, store } satisfies Node
      })
      const current = yield* Ref.make<Node>(yield* open)

      /** Acknowledged batches: producer -> seq -> the log and offsets the append answered. */
      const acked = new Map<string, { readonly log: string; readonly offsets: ReadonlyArray<number> }>()
      let settledProducers = 0
      /** The last failed append, for the verdict if producers never finish. */
      let lastFailure = "none"

      const producer = (id: number) =>
        Effect.gen(function*() {
          for (let seq = 0; seq < batchesPerProducer; seq++) {
            yield* sim.sleep(rng.nextInt(400))
            const log = logs[rng.nextInt(logs.length)]!
            const size = 1 + rng.nextInt(3)
            const records = Array.from({ length: size }, (_, i) => ({ value: encoder.encode(label(id, seq, i)) }))
            // Retry the same (producer, seq) until it is acknowledged: a retry must never write twice.
            for (let attempt = 0; ; attempt++) {
              // Now and then through a zombie writer: fenced, it must fail; if it acknowledges, the batch
              // must be in the log like any other.
              const node = zombie !== undefined && rng.nextInt(5) === 0 ? zombie : yield* Ref.get(current)
              const result = yield* Effect.exit(
                node.store.append(log, records, { producerId: `p${id}`, producerSeq: seq }).pipe(Effect.timeout("5 seconds"))
              )
              if (Exit.isSuccess(result)) {
                acked.set(`${id}:${seq}`, { log, offsets: result.value.offsets })
                break
              }
              lastFailure = `producer ${id} batch ${seq}: ${String(result.cause).slice(0, 240)}`
              if (attempt % 20 === 19) {
                yield* sim.trace(`producer ${id} batch ${seq}: attempt ${attempt + 1} failed: ${String(Exit.isFailure(result) ? result.cause : "").slice(0, 160)}`)
              }
              yield* sim.sleep(10 + rng.nextInt(200))
            }
          }
          settledProducers += 1
        })

      /** A subscriber of one log; it resumes from the next offset on whatever process is current. */
      const seen = new Map<string, Array<LogRecord>>(logs.map((l) => [l, []]))
      const subscriber = (log: string) =>
        Effect.forever(
          Effect.gen(function*() {
            const node = yield* Ref.get(current)
            const got = seen.get(log)!
            const from = got.length === 0 ? 0 : got.at(-1)!.offset + 1
            yield* node.store.tail(log, { _tag: "offset", offset: from }).pipe(
              Stream.runForEach((event) =>
                Effect.suspend(() => {
                  if (event._tag === "records") got.push(...event.records)
                  return Ref.get(current).pipe(
                    // Follow the current process: a subscriber on a dead or fenced one resumes elsewhere.
                    Effect.flatMap((now) => (now === node ? Effect.void : Effect.fail("moved" as const)))
                  )
                })),
              Effect.timeout("3 seconds"),
              Effect.ignore
            )
            // Ended on the process that is still current (the store failed, or the timeout): resume after a
            // pause, as a client would. Resuming at once spins when the tail fails at once, and virtual time
            // hardly moves while it does.
            if ((yield* Ref.get(current)) === node) yield* sim.sleep(subscriberRetryMs)
          })
        )

      /** A writer left running after a newer one opened: producers sometimes append through it. */
      let zombie: Node | undefined
      const producerFibers = yield* Effect.forEach(Array.from({ length: producers }, (_, i) => i), (i) => Effect.forkChild(producer(i)))
      const subscriberFibers = yield* Effect.forEach(logs, (log) => Effect.forkChild(subscriber(log)))

      // The world happens to the producers and subscribers: crashes, zombies, restarts.
      for (let step = 0; step < sim.steps && settledProducers < producers; step++) {
        yield* sim.sleep(rng.nextInt(300))
        const roll = rng.nextInt(100)
        const node = yield* Ref.get(current)
        if (roll < 8) {
          yield* sim.trace(`process ${node.process.id} crashes`)
          yield* node.process.crash
          yield* Ref.set(current, yield* open)
        } else if (roll < 14) {
          yield* sim.trace(`process ${node.process.id} is left running: a new writer opens`)
          zombie = node
          yield* Ref.set(current, yield* open)
        } else if (roll < 17) {
          yield* sim.trace(`process ${node.process.id} restarts gracefully`)
          const closing = yield* Effect.forkChild(node.process.close)
          yield* Fiber.await(closing).pipe(Effect.timeout("30 seconds"), Effect.ignore)
          yield* Ref.set(current, yield* open)
        }
      }

      /**
       * With faults healed, every table the latest manifest references must be there and intact. A problem
       * counts only if that manifest stayed the latest throughout: a newer one may have dropped a table,
       * which the collector may then take.
       */
      const checkStore = Effect.gen(function*() {
        const latestVersion = Effect.map(Db.inspect(dbPath), (i) => i.latest?.version)
        const before = yield* latestVersion
        const { problems } = yield* Db.verify(dbPath)
        if (problems.length === 0 || (yield* latestVersion) !== before) return
        return yield* sim.fail(`the store is damaged after faults healed: ${problems.slice(0, 4).join("; ")}`)
      }).pipe(
        Effect.provideService(ObjectStore.ObjectStore, sim.inspect),
        Effect.catchTags({
          Unavailable: (e) => sim.fail(`checking the store after faults healed: ${e.message}`),
          CorruptObject: (e) => sim.fail(`checking the store after faults healed: ${e.message}`)
        })
      )

      // Heal and let everything settle.
      yield* sim.heal
      for (let waited = 100; settledProducers < producers && waited <= settleMsMax; waited += 100) {
        yield* sim.sleep(100)
        // A store that lost data fails the producers for good: say so, rather than wait out the deadline.
        if (waited % storeCheckIntervalMs === 0) yield* checkStore
      }
      if (settledProducers < producers) {
        return yield* sim.fail(`producers did not finish within ${settleMsMax} ms after faults healed; last failure: ${lastFailure}`)
      }
      yield* checkStore
      for (const f of producerFibers) yield* Fiber.await(f)
      const node = yield* Ref.get(current)

      // Every log: gap-free, duplicate-free, every acknowledged batch exactly once, producers in order.
      const finalLogs = new Map<string, ReadonlyArray<LogRecord>>()
      for (const log of logs) {
        const records: Array<LogRecord> = []
        for (let from = 0; ;) {
          const page = yield* node.store.read(log, { from, limit: 1000 }).pipe(
            Effect.catchTag("LogNotFound", () => Effect.succeed({ records: [], next: from })),
            Effect.mapError((e) => new Violation(`reading ${log}: ${e.message}`))
          )
          records.push(...page.records)
          if (page.records.length === 0) break
          from = page.next
        }
        finalLogs.set(log, records)
        const labels = records.map((r) => decoder.decode(r.value))
        records.forEach((r, i) => {
          if (r.offset !== i) throw new Violation(`${log}: offset ${r.offset} at position ${i}: not gap-free`)
        })
        if (new Set(labels).size !== labels.length) return yield* sim.fail(`${log}: a record appears twice: ${labels.join(" ")}`)
        const lastSeq = new Map<string, number>()
        for (const l of labels) {
          const [p, seq] = l.split(":")
          const previous = lastSeq.get(p!)
          if (previous !== undefined && Number(seq) < previous) return yield* sim.fail(`${log}: producer ${p} out of order: ${labels.join(" ")}`)
          lastSeq.set(p!, Number(seq))
        }
      }
      for (const [batch, where] of acked) {
        const [p, seq] = batch.split(":")
        const records = finalLogs.get(where.log)!
        where.offsets.forEach((offset, i) => {
          const found = records[offset]
          const want = label(Number(p), Number(seq), i)
          if (found === undefined || decoder.decode(found.value) !== want) {
            throw new Violation(`acknowledged record ${want} at ${where.log}@${offset} is ${found === undefined ? "missing" : decoder.decode(found.value)}`)
          }
        })
      }

      // Subscribers: once caught up, each saw exactly its log, in order.
      for (let waited = 0; waited < 60_000; waited += 100) {
        if (logs.every((l) => seen.get(l)!.length >= finalLogs.get(l)!.length)) break
        yield* sim.sleep(100)
      }
      for (const log of logs) {
        const expected = finalLogs.get(log)!.map((r) => `${r.offset}=${decoder.decode(r.value)}`)
        const got = seen.get(log)!.map((r) => `${r.offset}=${decoder.decode(r.value)}`)
        if (got.join(" ") !== expected.join(" ")) {
          return yield* sim.fail(`subscriber of ${log} saw\n  ${got.join(" ")}\nbut the log is\n  ${expected.join(" ")}`)
        }
      }
      for (const f of subscriberFibers) yield* Fiber.interrupt(f)
      yield* sim.trace(`${acked.size} batches acknowledged; ${logs.length} logs checked`)
    }).pipe(
      Effect.catchDefect((d) => (d instanceof Violation ? Effect.fail(d) : Effect.die(d))),
      Effect.scoped
    )
}
