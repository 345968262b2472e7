/**
 * Native histograms in the TSDB: written, sealed into histogram chunks, logged and replayed after a crash,
 * checkpointed, mixed with floats in one series, refused out of order, and read back bit for bit; the
 * histogram chunk and the head log record round-trip; the engine answers PromQL over what was stored.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import type { Labels, Matcher, SelectedSeries, Tsdb } from "../src/Tsdb.ts"
import { world } from "./world.ts"
import { FloatHistogram, parseHistogramText } from "../src/promql/histogram.ts"
import { decodeHistogramChunk, encodeHistogramChunk, HistogramChunkCorrupt } from "../src/internal/histogramChunk.ts"
import { decodeRecord, RecordBuilder } from "../src/internal/headLog.ts"
import { instantQuery } from "../src/promql/engine.ts"

const L = (o: Record<string, string>): Labels => Object.entries(o)
const eq = (name: string, value: string): Matcher => ({ name, type: "=", value })
const H = (text: string) => parseHistogramText(text).histogram

const staleNaN = (() => {
  const v = new DataView(new ArrayBuffer(8))
  v.setUint32(0, 0x7ff00000)
  v.setUint32(4, 0x00000002)
  return v.getFloat64(0)
})()

/** The i-th histogram of a growing counter: schema 0, a zero bucket, positive and negative buckets. */
const counterAt = (i: number) =>
  new FloatHistogram({
    schema: 0,
    zeroThreshold: 0.001,
    zeroCount: i,
    count: 6 * i + 1,
    sum: 10 * i + 0.5,
    positiveSpans: [{ offset: 0, length: 2 }, { offset: 1, length: 1 }],
    positiveBuckets: [i, 2 * i, 1],
    negativeSpans: [{ offset: 1, length: 1 }],
    negativeBuckets: [2 * i]
  })


/** The histograms of a selected series, by time (floats as numbers). */
const pointsOf = (s: SelectedSeries) => Array.from(s.timestamps, (t, i) => [t, s.histograms?.[i] ?? s.values[i]!] as const)

describe("native histograms in the TSDB", () => {
  it.effect("keeps histograms across sealed chunks, a crash (log replay) and a checkpoint, equal to what was written", () =>
    Effect.gen(function*() {
      const { open: openWith } = yield* world
      const first = yield* openWith({ headCheckpointRecords: 50 })
      const labels = L({ __name__: "latency", job: "x" })
      const at = (i: number) => 60_000 + i * 15_000
      // 300 requests: two sealed histogram chunks of 120, checkpoints every 50 records in between.
      for (let i = 0; i < 300; i++) {
        const outcome = yield* first.tsdb.write({ series: [{ labels, samples: [], histograms: [{ timestampMs: at(i), histogram: counterAt(i) }] }] })
        assert.strictEqual(outcome.histogramsWritten, 1)
      }
      const check = (tsdb: Tsdb["Service"], n: number) =>
        Effect.gen(function*() {
          const [series] = yield* tsdb.select([eq("__name__", "latency")], 0, Number.MAX_SAFE_INTEGER)
          assert.strictEqual(series!.timestamps.length, n)
          for (let i = 0; i < n; i++) {
            assert.strictEqual(series!.timestamps[i], at(i))
            assert.isTrue(series!.histograms![i]!.equals(counterAt(i)), `histogram ${i}`)
          }
        })
      yield* check(first.tsdb, 300)
      // No close: a second writer replays the log after the last checkpoint.
      const second = yield* openWith({ headCheckpointRecords: 50 })
      yield* check(second.tsdb, 300)
      // The same histogram again is a no-op; another at the same time a duplicate; an older one refused.
      const again = yield* second.tsdb.write({ series: [{ labels, samples: [], histograms: [{ timestampMs: at(299), histogram: counterAt(299) }] }] })
      assert.deepStrictEqual([again.histogramsWritten, again.duplicates, again.tooOld], [0, 0, 0])
      const other = yield* second.tsdb.write({ series: [{ labels, samples: [], histograms: [{ timestampMs: at(299), histogram: counterAt(1) }] }] })
      assert.deepStrictEqual([other.histogramsWritten, other.duplicates], [0, 1])
      const older = yield* second.tsdb.write({ series: [{ labels, samples: [], histograms: [{ timestampMs: at(10) + 1, histogram: counterAt(1) }] }] })
      assert.deepStrictEqual([older.histogramsWritten, older.tooOld], [0, 1])
      yield* second.tsdb.write({ series: [{ labels, samples: [], histograms: [{ timestampMs: at(300), histogram: counterAt(300) }] }] })
      yield* second.close
      // Closed gracefully: checkpointed heads, and a third writer finds them whole.
      const third = yield* openWith({})
      yield* check(third.tsdb, 301)
      yield* third.close
    }))

  it.effect("a series may hold floats and histograms; a histogram stale marker is a stale marker; reads cut [mint, maxt]", () =>
    Effect.gen(function*() {
      const { open: openWith } = yield* world
      const { tsdb, close } = yield* openWith({})
      const labels = L({ __name__: "mixed" })
      const stale = counterAt(0)
      stale.sum = staleNaN
      yield* tsdb.write({
        series: [{
          labels,
          samples: [{ timestampMs: 1000, value: 1 }, { timestampMs: 4000, value: 4 }],
          histograms: [{ timestampMs: 2000, histogram: counterAt(2) }, { timestampMs: 3000, histogram: stale }, { timestampMs: 5000, histogram: counterAt(5) }]
        }]
      })
      const [series] = yield* tsdb.select([eq("__name__", "mixed")], 1500, 5000)
      const points = pointsOf(series!)
      assert.deepStrictEqual(points.map(([t]) => t), [2000, 3000, 4000, 5000])
      assert.isTrue((points[0]![1] as FloatHistogram).equals(counterAt(2)))
      // Read from the column itself: an array literal holding a NaN may canonicalize its bits.
      const bits = new DataView(series!.values.buffer, series!.values.byteOffset + 8, 8)
      assert.deepStrictEqual([bits.getUint32(4, true), bits.getUint32(0, true)], [0x7ff00000, 2], "the stale marker, bit for bit")
      assert.strictEqual(points[2]![1], 4)
      assert.isTrue((points[3]![1] as FloatHistogram).equals(counterAt(5)))
      yield* close
    }))

  it.effect("PromQL over stored histograms: rate, histogram_quantile, sum and the raw selector", () =>
    Effect.gen(function*() {
      const { open: openWith } = yield* world
      const { tsdb, close } = yield* openWith({})
      yield* TestClock.setTime(10 * 60_000)
      for (let i = 0; i <= 20; i++) {
        yield* tsdb.write({
          series: ["a", "b"].map((pod) => ({
            labels: L({ __name__: "req_seconds", pod }),
            samples: [],
            histograms: [{ timestampMs: i * 15_000, histogram: H(`schema:0 count:${4 * i} sum:${10 * i} buckets:[${i} ${2 * i} ${i}]`) }]
          }))
        })
      }
      const at = 300_000
      const raw = yield* instantQuery(tsdb, `req_seconds{pod="a"}`, at)
      assert.strictEqual(raw.type, "vector")
      if (raw.type !== "vector") return
      assert.isTrue(raw.samples[0]!.h!.equals(H("schema:0 count:80 sum:200 buckets:[20 40 20]")))
      const rate = yield* instantQuery(tsdb, `sum(rate(req_seconds[1m]))`, at)
      if (rate.type !== "vector") return assert.fail("a vector")
      // Each series grows by 4 observations per 15 s: 16 a minute, 0.2667/s; two series.
      assert.closeTo(rate.samples[0]!.h!.count, 2 * 4 / 15, 1e-9)
      const q = yield* instantQuery(tsdb, `histogram_quantile(0.5, sum(rate(req_seconds[1m])))`, at)
      if (q.type !== "vector") return assert.fail("a vector")
      // Buckets (0.5,1], (1,2], (2,4] hold 1:2:1: the median is the middle bucket's middle (log-linear: 2^0.5).
      assert.closeTo(q.samples[0]!.v, Math.SQRT2, 1e-9)
      const count = yield* instantQuery(tsdb, `histogram_count(req_seconds)`, at)
      if (count.type !== "vector") return assert.fail("a vector")
      assert.deepStrictEqual(count.samples.map((s) => s.v), [80, 80])
      yield* close
    }))

  it.effect("keeps samples' start timestamps (startTimestamps): per sample, across buckets and a restart", () =>
    Effect.gen(function*() {
      const { open: openWith } = yield* world
      const first = yield* openWith({ startTimestamps: true })
      const labels = L({ __name__: "requests_total" })
      const at = (i: number) => 1_000_000 + i * 60_000
      // A counter that restarts at sample 5 (its start moves); samples 0-1 have no start; one every minute
      // over several 2-hour buckets.
      const startOf = (i: number) => (i < 2 ? undefined : i < 5 ? at(2) - 30_000 : at(5) - 10_000)
      const write = (tsdb: Tsdb["Service"], from: number, to: number) =>
        Effect.forEach(Array.from({ length: to - from }, (_, k) => from + k), (i) => {
          const st = startOf(i)
          return tsdb.write({ series: [{ labels, samples: [st === undefined ? { timestampMs: at(i), value: i } : { timestampMs: at(i), value: i, startTimestampMs: st }] }] })
        })
      yield* write(first.tsdb, 0, 200)
      yield* first.close
      const second = yield* openWith({ startTimestamps: true })
      yield* write(second.tsdb, 200, 300)
      const [series] = yield* second.tsdb.select([eq("__name__", "requests_total")], 0, Number.MAX_SAFE_INTEGER)
      assert.strictEqual(series!.timestamps.length, 300)
      assert.deepStrictEqual(Array.from(series!.startTimestamps!), Array.from({ length: 300 }, (_, i) => startOf(i) ?? 0))
      // A range inside one bucket reads the start written at that bucket's first sample.
      const [part] = yield* second.tsdb.select([eq("__name__", "requests_total")], at(250), at(255))
      assert.deepStrictEqual(Array.from(part!.startTimestamps!), Array.from({ length: 6 }, () => at(5) - 10_000))
      yield* second.close
      // Without the setting nothing is written or read.
      const plain = yield* openWith({})
      yield* plain.tsdb.write({ series: [{ labels: L({ __name__: "other_total" }), samples: [{ timestampMs: at(400), value: 1, startTimestampMs: at(399) }] }] })
      const [other] = yield* plain.tsdb.select([eq("__name__", "other_total")], 0, Number.MAX_SAFE_INTEGER)
      assert.isUndefined(other!.startTimestamps)
      yield* plain.close
    }))

  it("a histogram chunk and a head log record round-trip every field, and damaged chunks are refused", () => {
    const samples = Array.from({ length: 130 }, (_, i) => ({ t: 1000 + i * 15_000, h: counterAt(i) }))
    samples[7]!.h.counterResetHint = "reset"
    samples[8]!.h.counterResetHint = "not_reset"
    const custom = H("schema:-53 count:5 sum:3 custom_values:[0.1 0.5 1] buckets:[1 2 0 2] counter_reset_hint:gauge")
    samples.push({ t: samples.at(-1)!.t + 1, h: custom })
    // The same layout with counts that are not integers (a rate, say): XORed floats, not integer deltas.
    for (let i = 0; i < 5; i++) samples.push({ t: samples.at(-1)!.t + 1, h: custom.copy().mul(0.1 + i / 3) })
    const chunk = encodeHistogramChunk(samples)
    const back = decodeHistogramChunk(chunk)
    assert.strictEqual(back.length, samples.length)
    back.forEach((s, i) => {
      assert.strictEqual(s.t, samples[i]!.t)
      assert.isTrue(s.h.equals(samples[i]!.h), `sample ${i}`)
      assert.strictEqual(s.h.counterResetHint, samples[i]!.h.counterResetHint)
      assert.deepStrictEqual(s.h.positiveSpans, samples[i]!.h.positiveSpans)
    })
    // A few bytes a sample for this slowly changing counter (integer deltas), against ~120 bytes of fields.
    assert.isBelow(chunk.length, samples.length * 10)
    for (const cut of [1, 5, chunk.length - 1]) assert.throws(() => decodeHistogramChunk(chunk.subarray(0, cut)), HistogramChunkCorrupt)

    const record = new RecordBuilder()
    record.add(3, 1000, 0, 0x3ff00000)
    record.addHistogram(5, 2000, counterAt(3))
    record.addHistogram(3, 2000, custom)
    const decoded = decodeRecord(record.encode())
    assert.strictEqual(decoded.count, 1)
    assert.deepStrictEqual(decoded.histograms!.ids, [5, 3])
    assert.deepStrictEqual(decoded.histograms!.timestamps, [2000, 2000])
    assert.isTrue(decoded.histograms!.values[0]!.equals(counterAt(3)))
    assert.isTrue(decoded.histograms!.values[1]!.equals(custom))
  })
})
