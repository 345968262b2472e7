/**
 * The transforms' simulation workload (test support; import from `@opendata/eventstore/simulation`), for
 * the core harness: producers append numbered batches (with producer ids, retried until acknowledged) to a
 * few input logs `in/<suffix>`, through lost replies, unavailability, outages, crashes (also inside the
 * store's writes), pauses, graceful restarts and zombie writers; every process runs two transforms over `in/`, in
 * its own scope, with small batches:
 * - `mirror`, stateless: `in/<suffix>@<offset>` -> one record `out:<value>` in `out/<suffix>`;
 * - `count`, stateful (a running count per input log): -> one record `<count>` in `count/<suffix>`.
 *
 * Checked once faults heal, producers are done and the transforms caught up: for every input log,
 * `out/<suffix>` holds exactly the outputs of its records, each once, in input order (values and the
 * `opendata-source` header `in/<suffix>@<offset>`), and `count/<suffix>` is exactly 1..N for its N records
 * (same provenance); no other log appears under `out/` or `count/`, and no log was stopped. Then the
 * process restarts gracefully and the next one's transforms, catching up from storage, must add nothing.
 *
 * Run with `--mutant transform-position-apart` (the position committed in one write, the outputs in
 * another), a crash or a failed write between the two loses outputs: the check must say so.
 */
import { Context, Effect, Exit, Fiber, Layer, Ref } from "effect"
import { Db, ObjectStore } from "@opendata/core"
import type { Sim, SimProcess, Workload } from "@opendata/core/simulation"
import { dbMutant, Violation } from "@opendata/core/simulation"
import type { EventStoreShape, LogRecord } from "./EventStore.ts"
import { EventStore } from "./EventStore.ts"
import { layer } from "./EventStoreLive.ts"
import { sourceHeader } from "./internal/transform.ts"
import * as Limits from "./limits.ts"
import * as Transforms from "./Transforms.ts"

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const text = (r: LogRecord) => decoder.decode(r.value)

interface Node {
  readonly process: SimProcess
  readonly store: EventStoreShape
  readonly transforms: Transforms.TransformsShape
}

/** The Db's objects live under this path of the shared store. */
const dbPath = "eventstore/"

const inputPrefix = "in/"
const suffixOf = (key: string) => key.slice(inputPrefix.length)

/** The stateless transform: each input record -> `out:<value>` in `out/<suffix>`. */
const mirrorValue = (value: string) => `out:${value}`
const mirror = Transforms.define({
  name: "mirror",
  source: { prefix: inputPrefix },
  transform: (r) => ({ key: `out/${suffixOf(r.key)}`, value: mirrorValue(r.text()) })
})

/** The stateful one: a running count per input log -> `<count>` in `count/<suffix>`. */
const count = Transforms.define<number>({
  name: "count",
  source: { prefix: inputPrefix },
  transform: {
    initial: 0,
    step: (n, r) => ({ state: n + 1, outputs: { key: `count/${suffixOf(r.key)}`, value: String(n + 1) } })
  }
})

const definitions = [mirror, count]

/** After faults heal: how long producers may take to finish. */
const settleMsMax = 300_000
/** How long transforms may take to catch up once producers are done (and again after the last restart). */
const catchUpMsMax = 120_000
/**
 * Idle transforms whose outputs have not changed for this long are done: longer than the longest pause
 * between their retries, so that a log being retried (which their lag does not count) has had its turn.
 */
const quietMs = Limits.transformRetryMaxMs + 2_000
/** Once the outputs are complete: how much longer to watch for outputs written twice. */
const completeSettleMs = 2_000
const pollMs = 200

/** "producer:seq:index", the identity of one input record. */
const label = (producer: number, seq: number, index: number) => `${producer}:${seq}:${index}`

/** One output record as the check compares it: its value and the input it came from. */
const show = (value: string, source: string | undefined) => `${JSON.stringify(value)} from ${source ?? "(no source header)"}`

export const transformsWorkload: Workload = {
  name: "transforms",
  run: (sim: Sim) =>
    Effect.gen(function*() {
      const { rng } = sim
      const inputs = Array.from({ length: 1 + rng.nextInt(3) }, (_, i) => `${inputPrefix}${i}`)
      const producers = 2 + rng.nextInt(3)
      const batchesPerProducer = 5 + rng.nextInt(15)
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
      const transformSettings: Transforms.TransformSettings = {
        // Small batches: many commits, so that crashes and failed writes land among them.
        batchRecords: 1 + rng.nextInt(7),
        concurrency: 1 + rng.nextInt(3),
        simulationMutant: sim.mutant === "transform-position-apart" ? "transform-position-apart" : "none"
      }
      const metaCheckpointRecords = 1 + rng.nextInt(16)
      yield* sim.trace(
        `${inputs.length} input logs, ${producers} producers x ${batchesPerProducer} batches; transforms in batches of ${transformSettings.batchRecords}, ${transformSettings.concurrency} logs at once`
      )

      const open = Effect.gen(function*() {
        const process = yield* sim.spawn
        // Built in the process's scope: the store and its transforms live until the process closes (or is
        // abandoned by a crash: a crashed process's transforms hang in their store calls, a zombie's go on).
        const store = layer({ tailHeartbeatMs: 200, metaCheckpointRecords }).pipe(
          Layer.provide(Db.layer(dbSettings)),
          Layer.provide(Layer.succeed(ObjectStore.ObjectStore, process.store))
        )
        const context = yield* sim.persist(
          "opening the event store and its transforms failed",
          Layer.buildWithScope(Transforms.layer(definitions, transformSettings).pipe(Layer.provideMerge(store)), process.scope)
        )
        yield* sim.trace(`process ${process.id} opened the event store and its transforms`)
        return { process, store: Context.get(context, EventStore), transforms: Context.get(context, Transforms.Transforms) } satisfies Node
      })
      const current = yield* Ref.make<Node>(yield* open)
      /** A writer left running after a newer one opened: producers sometimes append through it. */
      let zombie: Node | undefined

      /** Acknowledged batches: producer:seq -> the log and offsets the append answered. */
      const acked = new Map<string, { readonly log: string; readonly offsets: ReadonlyArray<number> }>()
      let settledProducers = 0
      let lastFailure = "none"

      const producer = (id: number) =>
        Effect.gen(function*() {
          for (let seq = 0; seq < batchesPerProducer; seq++) {
            yield* sim.sleep(rng.nextInt(300))
            const log = inputs[rng.nextInt(inputs.length)]!
            const size = 1 + rng.nextInt(3)
            const records = Array.from({ length: size }, (_, i) => ({ value: encoder.encode(label(id, seq, i)) }))
            // Retry the same (producer, seq) until it is acknowledged: a retry must never write twice.
            for (let attempt = 0; ; attempt++) {
              const node = zombie !== undefined && rng.nextInt(5) === 0 ? zombie : yield* Ref.get(current)
              const result = yield* Effect.exit(
                node.store.append(log, records, { producerId: `p${id}`, producerSeq: seq }).pipe(Effect.timeout("2 seconds"))
              )
              if (Exit.isSuccess(result)) {
                acked.set(`${id}:${seq}`, { log, offsets: result.value.offsets })
                break
              }
              lastFailure = `producer ${id} batch ${seq}: ${String(result.cause).slice(0, 240)}`
              yield* sim.sleep(10 + rng.nextInt(200))
            }
          }
          settledProducers += 1
        })
      const producerFibers = yield* Effect.forEach(Array.from({ length: producers }, (_, i) => i), (i) => Effect.forkChild(producer(i)))

      // The world happens to the producers and the transforms: crashes (also inside the store's writes, which
      // the transforms' commits are among), zombies, restarts, pauses.
      for (let step = 0; step < sim.steps && settledProducers < producers; step++) {
        yield* sim.sleep(rng.nextInt(400))
        const roll = rng.nextInt(100)
        const node = yield* Ref.get(current)
        if (roll < 5) {
          yield* sim.trace(`process ${node.process.id} crashes`)
          yield* node.process.crash
          yield* Ref.set(current, yield* open)
        } else if (roll < 10 && sim.injects("crashes-inside")) {
          const writes = rng.nextInt(4)
          yield* sim.trace(`process ${node.process.id} crashes before its write ${writes + 1} from now`)
          yield* node.process.crashAfterWrites(writes)
          yield* sim.sleep(rng.nextInt(400))
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
        } else if (roll < 19 && sim.injects("pauses")) {
          // Its store calls in flight (a transform's commit among them) go out when it resumes, as a zombie.
          const pauseMs = 2_000 + rng.nextInt(10_000)
          yield* sim.trace(`process ${node.process.id} pauses for ${pauseMs} ms mid-operation; a new writer opens`)
          yield* node.process.pause(pauseMs)
          zombie = node
          yield* Ref.set(current, yield* open)
        }
      }

      yield* sim.heal
      for (let waited = 0; settledProducers < producers && waited < settleMsMax; waited += 100) yield* sim.sleep(100)
      if (settledProducers < producers) {
        return yield* sim.fail(`producers did not finish within ${settleMsMax} ms after faults healed; last failure: ${lastFailure}`)
      }
      for (const f of producerFibers) yield* Fiber.await(f)

      /** Every record of a log (none if it does not exist), through `node`. */
      const readAll = (node: Node, key: string) =>
        Effect.gen(function*() {
          const records: Array<LogRecord> = []
          for (let from = 0; ;) {
            const page = yield* sim.persist(
              `reading ${key} after faults healed`,
              node.store.read(key, { from, limit: 1000 }).pipe(Effect.catchTag("LogNotFound", () => Effect.succeed({ records: [], next: from })))
            )
            records.push(...page.records)
            if (page.records.length === 0) return records
            from = page.next
          }
        })
      /** Every log under `prefix`. */
      const listAll = (node: Node, prefix: string) =>
        Effect.gen(function*() {
          const keys: Array<string> = []
          let cursor: string | undefined
          do {
            const page = yield* sim.persist(`listing ${prefix} after faults healed`, node.store.list({ prefix, cursor }))
            keys.push(...page.logs.map((l) => l.key))
            cursor = page.cursor
          } while (cursor !== undefined)
          return keys
        })

      // The inputs: gap-free, each acknowledged batch once where its append said (the eventstore workload
      // checks the store at length; here the inputs only need to be what the transforms' outputs are held to).
      const node0 = yield* Ref.get(current)
      const inputRecords = new Map<string, ReadonlyArray<LogRecord>>()
      for (const log of inputs) {
        const records = yield* readAll(node0, log)
        for (let i = 0; i < records.length; i++) {
          if (records[i]!.offset !== i) return yield* sim.fail(`${log}: offset ${records[i]!.offset} at position ${i}: not gap-free`)
        }
        const labels = records.map(text)
        if (new Set(labels).size !== labels.length) return yield* sim.fail(`${log}: an input record appears twice: ${labels.join(" ")}`)
        inputRecords.set(log, records)
      }
      for (const [batch, where] of acked) {
        const [p, seq] = batch.split(":")
        const records = inputRecords.get(where.log)!
        for (let i = 0; i < where.offsets.length; i++) {
          const found = records[where.offsets[i]!]
          const want = label(Number(p), Number(seq), i)
          if (found === undefined || text(found) !== want) {
            return yield* sim.fail(`acknowledged input ${want} at ${where.log}@${where.offsets[i]} is ${found === undefined ? "missing" : text(found)}`)
          }
        }
      }

      /** For each output log: what it must hold, in order ("value from source"). */
      const expected = new Map<string, ReadonlyArray<string>>()
      for (const log of inputs) {
        const records = inputRecords.get(log)!
        const suffix = suffixOf(log)
        expected.set(`out/${suffix}`, records.map((r) => show(mirrorValue(text(r)), `${log}@${r.offset}`)))
        expected.set(`count/${suffix}`, records.map((r, i) => show(String(i + 1), `${log}@${r.offset}`)))
      }

      const outputLengths = (node: Node) =>
        Effect.forEach([...expected.keys()], (key) => Effect.map(readAll(node, key), (r) => r.length))
      const describe = (infos: ReadonlyArray<Transforms.TransformInfo>) =>
        infos.map((i) =>
          `${i.name}: in ${i.recordsIn}, out ${i.recordsOut}, commits ${i.commits}, lag ${i.lagRecords}${i.catchingUp ? ", catching up" : ""}${
            i.retrying === undefined ? "" : `, last error ${i.retrying.slice(0, 160)}`
          }`
        ).join("; ")

      /**
       * Waits until the transforms of `node` are idle (no lag, no catch-up pass) and their outputs are
       * complete (then a little longer), or have not changed for `quietMs`; bounded by `catchUpMsMax`.
       */
      const awaitTransforms = (node: Node, when: string) =>
        Effect.gen(function*() {
          let last = ""
          let unchangedMs = 0
          let completeMs = -1
          for (let waited = 0; waited <= catchUpMsMax; waited += pollMs) {
            const infos = yield* node.transforms.list
            const idle = infos.every((i) => i.lagRecords === 0 && !i.catchingUp)
            const lengths = yield* outputLengths(node)
            const now = lengths.join(",")
            unchangedMs = now === last ? unchangedMs + pollMs : 0
            last = now
            const complete = [...expected.values()].every((want, i) => lengths[i]! >= want.length)
            if (idle && complete) {
              completeMs = completeMs === -1 ? 0 : completeMs + pollMs
              if (completeMs >= completeSettleMs) return
            } else {
              completeMs = -1
            }
            if (idle && unchangedMs >= quietMs) return
            yield* sim.sleep(pollMs)
          }
          return yield* sim.fail(
            `the transforms did not settle within ${catchUpMsMax} ms ${when}: ${describe(yield* node.transforms.list)}; output lengths ${last}`
          )
        })

      /** The outputs, exactly once each, in input order; nothing else under `out/` and `count/`; no log stopped. */
      const checkOutputs = (node: Node, when: string) =>
        Effect.gen(function*() {
          const infos = yield* node.transforms.list
          for (const info of infos) {
            if (info.failedLogCount > 0) {
              const f = info.failedLogs[0]!
              return yield* sim.fail(`${when}: transform ${info.name} stopped ${info.failedLogCount} log(s), ${f.key} at offset ${f.offset}: ${f.error}`)
            }
          }
          for (const [key, want] of expected) {
            const got = (yield* readAll(node, key)).map((r) => show(text(r), r.headers[sourceHeader]))
            if (got.length === want.length && got.every((g, i) => g === want[i])) continue
            const wantSet = new Set(want)
            const gotCounts = new Map<string, number>()
            for (const g of got) gotCounts.set(g, (gotCounts.get(g) ?? 0) + 1)
            const missing = want.filter((w) => !gotCounts.has(w))
            const twice = [...gotCounts].filter(([, n]) => n > 1).map(([g]) => g)
            const foreign = got.filter((g) => !wantSet.has(g))
            const at = got.findIndex((g, i) => g !== want[i])
            const first = at === -1 ? got.length : at // got is a strict prefix of want
            return yield* sim.fail(
              `${when}: ${key} holds ${got.length} records for ${want.length} inputs (not exactly once, in order)` +
                `${missing.length === 0 ? "" : `\n  missing ${missing.length}: ${missing.slice(0, 5).join("; ")}`}` +
                `${twice.length === 0 ? "" : `\n  written twice: ${twice.slice(0, 5).join("; ")}`}` +
                `${foreign.length === 0 ? "" : `\n  not an input's output: ${foreign.slice(0, 5).join("; ")}`}` +
                `\n  first difference at position ${first}: expected ${want[first] ?? "nothing"}, found ${got[first] ?? "nothing"}` +
                `\n  transforms: ${describe(infos)}`
            )
          }
          for (const prefix of ["out/", "count/"]) {
            const unexpected = (yield* listAll(node, prefix)).filter((k) => !expected.has(k))
            if (unexpected.length > 0) return yield* sim.fail(`${when}: unexpected output logs ${unexpected.join(", ")}`)
          }
        })

      const node = yield* Ref.get(current)
      yield* awaitTransforms(node, "after producers finished")
      yield* checkOutputs(node, "after faults healed")

      // A last restart: the next process's transforms catch up from storage, and must find nothing to do.
      yield* sim.trace(`process ${node.process.id} restarts gracefully; the next one's transforms must add nothing`)
      const closing = yield* Effect.forkChild(node.process.close)
      yield* Fiber.await(closing).pipe(Effect.timeout("30 seconds"), Effect.ignore)
      const last = yield* open
      yield* awaitTransforms(last, "after the last restart")
      yield* checkOutputs(last, "after the last restart")
      yield* sim.trace(`${acked.size} batches acknowledged; ${[...inputRecords.values()].reduce((n, r) => n + r.length, 0)} input records transformed exactly once`)
    }).pipe(
      Effect.catchDefect((d) => (d instanceof Violation ? Effect.fail(d) : Effect.die(d))),
      Effect.scoped
    )
}
