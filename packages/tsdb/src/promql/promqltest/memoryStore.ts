/**
 * The in-memory data of a test script: the samples its `load` commands give (added up across loads, a
 * later sample at a timestamp replacing the earlier one; `load_with_nhcb` also makes native histograms of
 * classic ones), selected as a `SeriesSource` that reads histograms back with the counter reset hints a
 * TSDB's chunks record, and records which special data (native histograms, start timestamps) an eval's
 * selects touched.
 */
import { Effect } from "effect"
import type { Labels, Matcher } from "../../internal/labels.ts"
import { canonical, labelValue, matchesAll, sortLabels } from "../../internal/labels.ts"
import type { Sample, SelectedSeries, SeriesReader, SeriesSource, TsdbError } from "../../SeriesSource.ts"
import { customBucketsSchema, FloatHistogram } from "../histogram.ts"
import type { LoadCommand } from "./script.ts"

/** A loaded sample: a float (an object: a stale marker keeps its bits) or a native histogram. */
interface StoredSample extends Sample {
  readonly h?: FloatHistogram | undefined
  /** Its start timestamp (ms), when the `@st` line gives one. */
  readonly st?: number | undefined
}

interface StoredSeries {
  readonly labels: Labels
  /** Samples by timestamp. */
  samples: Array<StoredSample>
  /** The samples with their histograms' counter reset hints as a TSDB reads them back (made on first select). */
  read?: SelectedSeriesColumns | undefined
}

interface SelectedSeriesColumns {
  readonly timestamps: Float64Array
  readonly values: Float64Array
  readonly histograms: ReadonlyArray<FloatHistogram | undefined> | undefined
  readonly startTimestamps: Float64Array | undefined
}

/**
 * A series' columns with the counter reset hints a TSDB gives histograms it reads back: a histogram after
 * another (no float or stale marker between them) is `not_reset` unless a reset is given or detected
 * (then `unknown`: the chunk is cut there, and a chunk's first sample reads back so in Prometheus); a
 * gauge stays a gauge; the first keeps its own hint.
 */
const readBack = (samples: ReadonlyArray<StoredSample>): SelectedSeriesColumns => {
  const timestamps = new Float64Array(samples.length)
  const values = new Float64Array(samples.length)
  let histograms: Array<FloatHistogram | undefined> | undefined
  let prev: FloatHistogram | undefined
  const startTimestamps = samples.some((x) => x.st !== undefined) ? Float64Array.from(samples, (x) => x.st ?? 0) : undefined
  samples.forEach((x, i) => {
    timestamps[i] = x.timestampMs
    values[i] = x.h === undefined ? x.value : 0
    if (x.h === undefined) {
      prev = undefined
      return
    }
    const h = x.h.copy()
    if (h.counterResetHint !== "gauge" && prev !== undefined) {
      // At a reset the chunk is cut, and the first sample of a chunk reads back "unknown" (Prometheus
      // issue 15346: a reset is not visible as "reset" in query results).
      h.counterResetHint = h.counterResetHint === "reset" || h.detectReset(prev) ? "unknown" : "not_reset"
    }
    prev = x.h
    ;(histograms ??= new Array(samples.length))[i] = h
  })
  return { timestamps, values, histograms, startTimestamps }
}

/**
 * `load_with_nhcb`: the classic histograms of a load (`<name>_bucket{le}`, `_count`, `_sum`) as native
 * histograms with custom buckets under `<name>`, one per timestamp, as Prometheus's `convertnhcb`:
 * cumulative bucket counts made per-bucket, the count from `_count` (else the highest bucket), a `+Inf`
 * bucket added when missing; a timestamp whose buckets are not cumulative is left out.
 */
const classicToNhcb = (series: ReadonlyArray<{ labels: Labels; samples: ReadonlyArray<Sample> }>): Array<{ labels: Labels; samples: Array<StoredSample> }> => {
  interface Temp { buckets: Array<{ le: number; count: number }>; count: number | undefined; sum: number; bad: boolean }
  const byBase = new Map<string, { labels: Labels; byTime: Map<number, Temp> }>()
  for (const s of series) {
    const name = labelValue(s.labels, "__name__")
    const m = /^(.*)_(bucket|count|sum)$/.exec(name)
    if (m === null) continue
    let le = Number.NaN
    if (m[2] === "bucket") {
      const text = labelValue(s.labels, "le")
      le = /^\+?inf$/i.test(text) ? Infinity : text.trim() === "" ? Number.NaN : Number(text)
      if (Number.isNaN(le)) continue
    }
    const base = sortLabels(s.labels.filter(([n]) => n !== "le" && n !== "__name__").concat([["__name__", m[1]!]]))
    const key = canonical(base)
    let entry = byBase.get(key)
    if (entry === undefined) byBase.set(key, (entry = { labels: base, byTime: new Map() }))
    for (const x of s.samples) {
      let t = entry.byTime.get(x.timestampMs)
      if (t === undefined) entry.byTime.set(x.timestampMs, (t = { buckets: [], count: undefined, sum: 0, bad: false }))
      if (m[2] === "count") t.count = x.value
      else if (m[2] === "sum") t.sum = x.value
      else if (x.value < 0) t.bad = true
      else if (!t.buckets.some((b) => b.le === le)) t.buckets.push({ le, count: x.value })
    }
  }
  const out: Array<{ labels: Labels; samples: Array<StoredSample> }> = []
  for (const { labels, byTime } of byBase.values()) {
    const samples: Array<StoredSample> = []
    for (const [t, temp] of [...byTime].sort((a, b) => a[0] - b[0])) {
      const buckets = temp.buckets.sort((a, b) => a.le - b.le)
      if (temp.bad || buckets.some((b, i) => i > 0 && b.count < buckets[i - 1]!.count)) continue
      const count = temp.count ?? buckets.at(-1)?.count ?? 0
      if (buckets.length === 0 || buckets.at(-1)!.le !== Infinity) buckets.push({ le: Infinity, count })
      if (buckets.at(-1)!.count !== count) continue
      const integral = buckets.every((b) => Number.isInteger(b.count)) && Number.isInteger(count)
      const h = new FloatHistogram({
        schema: customBucketsSchema,
        count,
        sum: temp.sum,
        positiveSpans: [{ offset: 0, length: buckets.length }],
        positiveBuckets: buckets.map((b, i) => b.count - (i > 0 ? buckets[i - 1]!.count : 0)),
        customValues: buckets.slice(0, -1).map((b) => b.le)
      })
      // Integer counts go through Prometheus's integer histogram, compacted keeping runs of up to two empty buckets.
      samples.push({ timestampMs: t, value: 0, h: h.compact(integral ? 2 : 0) })
    }
    if (samples.length > 0) out.push({ labels, samples })
  }
  return out
}

/** Where special data is (native histograms, start timestamps), to classify the evals that touch it. */
interface Marker {
  readonly labels: Labels
  readonly times: Array<number>
}

/** Which special data an eval's selects touched. */
export interface Touched {
  /** Series with native histogram samples (counted apart in the report). */
  histograms: boolean
  startTimestamps: boolean
}

const lowerBound = (samples: ReadonlyArray<{ readonly timestampMs: number }>, t: number): number => {
  let lo = 0
  let hi = samples.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (samples[mid]!.timestampMs < t) lo = mid + 1
    else hi = mid
  }
  return lo
}

const anyIn = (times: ReadonlyArray<number>, mint: number, maxt: number): boolean => times.some((t) => t >= mint && t <= maxt)

/** The loaded data of a script: samples by series, plus where native histograms and start timestamps are. */
export class MemoryStore {
  private series = new Map<string, StoredSeries>()
  private byName = new Map<string, Set<string>>()
  private histograms = new Map<string, Marker>()
  private startTimestamps = new Map<string, Marker>()

  clear(): void {
    this.series.clear()
    this.byName.clear()
    this.histograms.clear()
    this.startTimestamps.clear()
  }

  /** Adds samples to a series (additive across loads; a later sample at the same timestamp replaces the earlier one). */
  private add(labels: Labels, samples: ReadonlyArray<StoredSample>) {
    const key = canonical(labels)
    let stored = this.series.get(key)
    if (stored === undefined) {
      stored = { labels, samples: [] }
      this.series.set(key, stored)
      const name = labelValue(labels, "__name__")
      let set = this.byName.get(name)
      if (set === undefined) this.byName.set(name, (set = new Set()))
      set.add(key)
    }
    const merged = new Map<number, StoredSample>()
    for (const x of stored.samples) merged.set(x.timestampMs, x)
    for (const x of samples) merged.set(x.timestampMs, x)
    stored.samples = [...merged.values()].sort((a, b) => a.timestampMs - b.timestampMs)
    stored.read = undefined
  }

  /** Metric names of series with native histograms / start timestamps (an eval naming one touches them). */
  specialNames(): { readonly histograms: ReadonlyArray<string>; readonly startTimestamps: ReadonlyArray<string> } {
    const names = (m: Map<string, Marker>) => [...new Set([...m.values()].map((s) => labelValue(s.labels, "__name__")).filter((n) => n !== ""))]
    return { histograms: names(this.histograms), startTimestamps: names(this.startTimestamps) }
  }

  private mark(map: Map<string, Marker>, labels: Labels, times: ReadonlyArray<number>) {
    const key = canonical(labels)
    const m = map.get(key)
    if (m === undefined) map.set(key, { labels, times: [...times] })
    else m.times.push(...times)
  }

  load(cmd: LoadCommand): void {
    const classic: Array<{ labels: Labels; samples: Array<Sample> }> = []
    for (const s of cmd.series) {
      const samples: Array<StoredSample> = []
      const floats: Array<Sample> = []
      const histTimes: Array<number> = []
      const allTimes: Array<number> = []
      s.points.forEach((p, i) => {
        const t = i * cmd.intervalMs
        const offset = s.startOffsets?.[i]
        const st = offset === undefined ? {} : { st: t + offset }
        if (p.kind === "float") {
          const x = { timestampMs: t, value: p.value, ...st }
          samples.push(x)
          floats.push(x)
        } else if (p.kind === "histogram") {
          samples.push({ timestampMs: t, value: 0, h: p.histogram, ...st })
          histTimes.push(t)
        }
        if (p.kind !== "omitted") allTimes.push(t)
      })
      if (histTimes.length > 0) this.mark(this.histograms, s.labels, histTimes)
      if (s.startTimestamps) this.mark(this.startTimestamps, s.labels, allTimes)
      if (samples.length > 0) this.add(s.labels, samples)
      if (cmd.withNhcb) classic.push({ labels: s.labels, samples: floats })
    }
    // load_with_nhcb also converts classic histograms to native histograms with custom buckets.
    for (const { labels, samples } of classicToNhcb(classic)) {
      this.mark(this.histograms, labels, samples.map((x) => x.timestampMs))
      this.add(labels, samples)
    }
  }

  /** A `SeriesSource` over the data that records in `touched` what special data the engine selected. */
  source(touched: Touched): SeriesSource {
    const select = (matchers: ReadonlyArray<Matcher>, mint: number, maxt: number): Effect.Effect<ReadonlyArray<SelectedSeries>, TsdbError> =>
        Effect.sync(() => {
          for (const m of this.histograms.values()) {
            if (!touched.histograms && matchesAll(matchers, m.labels) && anyIn(m.times, mint, maxt)) touched.histograms = true
          }
          for (const m of this.startTimestamps.values()) {
            if (!touched.startTimestamps && matchesAll(matchers, m.labels) && anyIn(m.times, mint, maxt)) touched.startTimestamps = true
          }
          const nameEq = matchers.find((m) => m.name === "__name__" && m.type === "=")
          const keys = nameEq === undefined ? this.series.keys() : (this.byName.get(nameEq.value) ?? new Set<string>()).values()
          const out: Array<SelectedSeries> = []
          for (const key of keys) {
            const s = this.series.get(key)!
            if (!matchesAll(matchers, s.labels)) continue
            const from = lowerBound(s.samples, mint)
            const to = lowerBound(s.samples, maxt + 1)
            if (from >= to) continue
            const read = (s.read ??= readBack(s.samples))
            const histograms = read.histograms?.slice(from, to)
            out.push({
              labels: s.labels,
              timestamps: read.timestamps.slice(from, to),
              values: read.values.slice(from, to),
              ...(histograms === undefined || histograms.every((h) => h === undefined) ? {} : { histograms }),
              ...(read.startTimestamps === undefined ? {} : { startTimestamps: read.startTimestamps.slice(from, to) })
            })
          }
          return out
        })
    return {
      select,
      // As a store that decodes on read: every read's columns go into the one buffer the next read
      // overwrites, so an engine that keeps a series' columns past its turn gets wrong answers here.
      selectReaders: (matchers, mint, maxt) =>
        Effect.map(select(matchers, mint, maxt), (selected) => {
          let ts = new Float64Array(0)
          let vs = new Float64Array(0)
          return selected.map((s): SeriesReader => ({
            labels: s.labels,
            read: () => {
              const n = s.timestamps.length
              if (ts.length < n) {
                ts = new Float64Array(n)
                vs = new Float64Array(n)
              }
              ts.fill(Number.NaN)
              vs.fill(Number.NaN)
              ts.set(s.timestamps)
              vs.set(s.values)
              return { ...s, timestamps: ts.subarray(0, n), values: vs.subarray(0, n) }
            }
          }))
        })
    }
  }
}
