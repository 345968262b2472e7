/**
 * The TSDB's simulation workload (test support; import from `@opendata/tsdb/simulation`), for the core
 * harness: concurrent remote writers send requests of samples for their own series (several a series
 * per request in some runs, far apart in others, so heads are sealed and cut at buckets), retrying the same
 * request through lost replies, unavailability, crashes and zombie writers; each request also carries a
 * native histogram sample of the writer's histogram series. Checked once faults heal: every acknowledged
 * sample and histogram is readable, once, with its value, and nothing was stored that was never sent.
 */
import { Context, Effect, Exit, Fiber, Layer, Ref } from "effect"
import { Db, ObjectStore } from "@opendata/core"
import type { Sim, SimProcess, Workload } from "@opendata/core/simulation"
import { dbMutant, Violation } from "@opendata/core/simulation"
import type { TsdbShape } from "./Tsdb.ts"
import { layer, samplesOf, Tsdb } from "./Tsdb.ts"
import { FloatHistogram } from "./promql/histogram.ts"

/** Writer w's histogram at request r: a counter histogram whose schema and layout depend on w. */
const histogramOf = (w: number, r: number) =>
  new FloatHistogram({
    schema: w % 3,
    zeroThreshold: 0.001,
    zeroCount: r,
    count: 4 * r + w + 1,
    sum: 2.5 * r + w,
    positiveSpans: [{ offset: w, length: 2 }, { offset: 1, length: 1 }],
    positiveBuckets: [r, 2 * r, w + 1],
    negativeSpans: [{ offset: 0, length: 1 }],
    negativeBuckets: [r]
  })

interface Node {
  readonly process: SimProcess
  readonly tsdb: TsdbShape
}

export const tsdbWorkload: Workload = {
  name: "tsdb",
  run: (sim: Sim) =>
    Effect.gen(function*() {
      const { rng } = sim
      const writers = 2 + rng.nextInt(3)
      const seriesPerWriter = 1 + rng.nextInt(5)
      const requestsPerWriter = 20 + rng.nextInt(60)
      // Several samples a series per request, some runs far apart: heads fill (a chunk is sealed every 120
      // samples) and cross buckets (a chunk is cut at each two-hour bucket), so crashes land between cuts.
      const samplesPerRequest = 1 + rng.nextInt(4)
      const sampleStepMs = [15_000, 60_000, 600_000][rng.nextInt(3)]!
      const dbSettings: Db.DbSettings = {
        path: "tsdb/",
        flushIntervalMs: rng.nextInt(3) === 0 ? 0 : rng.nextInt(100),
        memtableBytesMax: 2048 + rng.nextInt(16384),
        l0CompactionTrigger: 2 + rng.nextInt(3),
        sortedRunsMax: 1 + rng.nextInt(3),
        blockBytesTarget: 256,
        sstBytesTarget: 8192,
        gcMinAgeMs: rng.nextInt(2000),
        gcIntervalMs: 500 + rng.nextInt(2000),
        simulationMutant: dbMutant(sim.mutant)
      }
      // Checkpoints of the heads every few log records: crashes land between them, and replays start from them.
      const headCheckpointRecords = 1 + rng.nextInt(16)

      const open = Effect.gen(function*() {
        const process = yield* sim.spawn
        const context = yield* sim.persist(
          "opening the TSDB failed",
          Layer.buildWithScope(
            layer({ retentionIntervalMs: Number.MAX_SAFE_INTEGER, headCheckpointRecords }).pipe(
              Layer.provide(Db.layer(dbSettings)),
              Layer.provide(Layer.succeed(ObjectStore.ObjectStore, process.store))
            ),
            process.scope
          )
        )
        yield* sim.trace(`process ${process.id} opened the TSDB`)
        return { process, tsdb: Context.get(context, Tsdb) } satisfies Node
      })
      const current = yield* Ref.make<Node>(yield* open)

      /** Acknowledged samples: series key -> timestamp -> value. */
      const acked = new Map<string, Map<number, number>>()
      /** Acknowledged histograms: writer -> timestamp -> request number (its histogram is `histogramOf(w, r)`). */
      const ackedHistograms = new Map<number, Map<number, number>>()
      /** Every sample ever sent (acknowledged or not). */
      const sent = new Map<string, Map<number, number>>()
      let finished = 0

      const writer = (w: number) =>
        Effect.gen(function*() {
          for (let r = 0; r < requestsPerWriter; r++) {
            yield* sim.sleep(rng.nextInt(300))
            const t = 1_000_000 + r * 15_000
            const series = Array.from({ length: seriesPerWriter }, (_, s) => {
              const labels: Array<[string, string]> = [["__name__", "sim"], ["s", String(s)], ["writer", String(w)]]
              const samples = Array.from({ length: samplesPerRequest }, (_, j) => ({
                timestampMs: 1_000_000 + (r * samplesPerRequest + j) * sampleStepMs,
                value: w * 1_000_000 + s * 1000 + r + j / 8 + 0.5
              }))
              return { labels, samples }
            })
            for (const s of series) {
              const key = JSON.stringify(s.labels)
              const m = sent.get(key) ?? new Map<number, number>()
              for (const x of s.samples) m.set(x.timestampMs, x.value)
              sent.set(key, m)
            }
            const histogramSeries = {
              labels: [["__name__", "sim_hist"], ["writer", String(w)]] as Array<[string, string]>,
              samples: [],
              histograms: [{ timestampMs: t, histogram: histogramOf(w, r) }]
            }
            // A remote writer retries the same request until it is acknowledged.
            for (;;) {
              // Now and then through a zombie writer: fenced, it must fail; what it acknowledges must be read.
              const node = zombie !== undefined && rng.nextInt(5) === 0 ? zombie : yield* Ref.get(current)
              const result = yield* Effect.exit(node.tsdb.write({ series: [...series, histogramSeries] }).pipe(Effect.timeout("5 seconds")))
              if (Exit.isSuccess(result)) {
                yield* sim.trace(`writer ${w} request ${r} acknowledged by process ${node.process.id}: ${JSON.stringify(result.value)}`)
                for (const s of series) {
                  const key = JSON.stringify(s.labels)
                  const m = acked.get(key) ?? new Map<number, number>()
                  for (const x of s.samples) m.set(x.timestampMs, x.value)
                  acked.set(key, m)
                }
                const hm = ackedHistograms.get(w) ?? new Map<number, number>()
                hm.set(t, r)
                ackedHistograms.set(w, hm)
                break
              }
              yield* sim.sleep(10 + rng.nextInt(200))
            }
          }
          finished += 1
        })

      /** A writer left running after a newer one opened: remote writers sometimes send to it. */
      let zombie: Node | undefined
      const fibers = yield* Effect.forEach(Array.from({ length: writers }, (_, w) => w), (w) => Effect.forkChild(writer(w)))

      for (let step = 0; step < sim.steps && finished < writers; step++) {
        yield* sim.sleep(rng.nextInt(300))
        const roll = rng.nextInt(100)
        const node = yield* Ref.get(current)
        if (roll < 4 && sim.injects("crashes-inside")) {
          // Inside whatever it does next: a write, a checkpoint, a replay of the head log.
          const calls = rng.nextInt(30)
          yield* sim.trace(`process ${node.process.id} will crash before its ${calls}th store call from now`)
          yield* node.process.crashAfter(calls)
          yield* sim.sleep(rng.nextInt(2000))
          yield* Ref.set(current, yield* open)
        } else if (roll < 8) {
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

      yield* sim.heal
      for (let waited = 0; finished < writers && waited < 300_000; waited += 100) yield* sim.sleep(100)
      if (finished < writers) return yield* sim.fail("remote writers did not finish within bounded time after faults healed")
      for (const f of fibers) yield* Fiber.await(f)

      /** Every acknowledged sample is readable once, with its value, and nothing is that was never sent. */
      const check = (phase: string) =>
        Effect.gen(function*() {
          const node = yield* Ref.get(current)
          const selected = yield* node.tsdb.select([{ name: "__name__", type: "=", value: "sim" }], 0, Number.MAX_SAFE_INTEGER).pipe(
            Effect.retry({ times: 20 }),
            Effect.mapError((e) => new Violation(`select by ${phase} failed: ${e.message}`))
          )
          const stored = new Map(selected.map((s) => [JSON.stringify([...s.labels]), samplesOf(s)]))
          for (const [key, samples] of acked) {
            const got = stored.get(key) ?? []
            const byTime = new Map(got.map((s) => [s.timestampMs, s.value]))
            if (byTime.size !== got.length) return yield* sim.fail(`${key}: a timestamp appears twice (read by ${phase})`)
            for (const [t, v] of samples) {
              if (byTime.get(t) !== v) return yield* sim.fail(`${key}: acknowledged sample at ${t} = ${v} reads as ${byTime.get(t)} (read by ${phase})`)
            }
          }
          for (const [key, samples] of stored) {
            const known = sent.get(key)
            for (const s of samples) {
              if (known?.get(s.timestampMs) !== s.value) return yield* sim.fail(`${key}: a sample at ${s.timestampMs} = ${s.value} was never sent (read by ${phase})`)
            }
          }
          // Histograms: every acknowledged one reads back equal; every stored one was sent (a request r at 1_000_000 + r * 15_000).
          const histograms = yield* node.tsdb.select([{ name: "__name__", type: "=", value: "sim_hist" }], 0, Number.MAX_SAFE_INTEGER).pipe(
            Effect.retry({ times: 20 }),
            Effect.mapError((e) => new Violation(`select of histograms by ${phase} failed: ${e.message}`))
          )
          const byWriter = new Map(histograms.map((s) => [Number(s.labels.find(([n]) => n === "writer")![1]), s]))
          for (const [w, times] of ackedHistograms) {
            const s = byWriter.get(w)
            for (const [t, r] of times) {
              const i = s === undefined ? -1 : s.timestamps.indexOf(t)
              const h = i < 0 ? undefined : s!.histograms?.[i]
              if (h === undefined || !h.equals(histogramOf(w, r))) return yield* sim.fail(`writer ${w}: acknowledged histogram at ${t} reads as ${h === undefined ? "nothing" : h.toString()} (read by ${phase})`)
            }
          }
          for (const [w, s] of byWriter) {
            for (let i = 0; i < s.timestamps.length; i++) {
              const t = s.timestamps[i]!
              const r = (t - 1_000_000) / 15_000
              const h = s.histograms?.[i]
              if (!Number.isInteger(r) || r < 0 || r >= requestsPerWriter || h === undefined || !h.equals(histogramOf(w, r))) {
                return yield* sim.fail(`writer ${w}: a histogram at ${t} was never sent (read by ${phase})`)
              }
            }
          }
        })
      // Checked twice: by the writer that took the last writes, then by a writer that replaced it after a
      // crash and replayed the head log.
      yield* check("the last writer")
      const last = yield* Ref.get(current)
      yield* sim.trace(`process ${last.process.id} crashes; a new writer replays the head log`)
      yield* last.process.crash
      yield* Ref.set(current, yield* open)
      yield* check("a writer replaying after a crash")
      yield* sim.trace(`${[...acked.values()].reduce((n, m) => n + m.size, 0)} acknowledged samples and ${[...ackedHistograms.values()].reduce((n, m) => n + m.size, 0)} histograms checked`)
    }).pipe(Effect.scoped)
}
