/**
 * Functions over range vectors (`rate`, `increase`, `delta`, `irate`, `deriv`, `predict_linear`,
 * `changes`, `resets`, `*_over_time`, ...): each series' window (t - range, t] at each step, with two
 * cursors sliding over its float samples (and two more over its native histograms), so that a range query
 * does not rescan each window. Float-only functions pass over histogram samples as Prometheus's do. Also
 * the experimental extended windows of `x[r] anchored` and `x[r] smoothed`.
 */
import { Effect } from "effect"
import type { MatrixSelector } from "./ast.ts"
import type { FloatHistogram } from "./histogram.ts"
import * as NH from "./nativeHistograms.ts"
import { QueryError } from "./types.ts"
import type { Ctx, EvalValue, Nums, SampleValue, VSeries } from "./evalContext.ts"
import { evalTime, fail, inform, metricName, reportSeen, stepTime } from "./evalContext.ts"
import { firstAfter, interpolateHistogram, load, type RangeInput, span, withoutStale } from "./selectors.ts"
import { kahanSum, mean, variance } from "./summation.ts"
import { quantile } from "./quantiles.ts"
import { formatGoFloat } from "./format.ts"
import { anchoredFunctions, smoothedFunctions } from "./functionTable.ts"

// -------------------------------------------------------------------------------------------------
// Windows
// -------------------------------------------------------------------------------------------------

/**
 * A function of the samples of one series in the window (t - range, t] at one step: the samples are
 * `ts[lo..hi)` and `vs[lo..hi)` (lo < hi), read in place.
 */
export type WindowFn = (
  ts: Float64Array,
  vs: Float64Array,
  lo: number,
  hi: number,
  t: number,
  rangeMs: number,
  extra: ReadonlyArray<number>,
  stepT: number,
  /** The floats' start timestamps (with use-start-timestamps; 0: none), and what to report for the series. */
  sts: Float64Array | undefined,
  seen: NH.Seen
) => number | undefined

/**
 * The samples of one series in the window (t - range, t] at one step when native histograms are among
 * them: floats `ts/vs[lo, hi)` (maybe none) and histograms `hts/hs[hlo, hhi)` (hlo < hhi).
 */
export interface HistogramWindow {
  ts: Float64Array
  vs: Float64Array
  lo: number
  hi: number
  hts: Float64Array
  hs: ReadonlyArray<FloatHistogram>
  hlo: number
  hhi: number
  t: number
  rangeMs: number
  extra: ReadonlyArray<number>
  /** The histograms' and the floats' start timestamps (with use-start-timestamps; 0: none). */
  hsts: Float64Array | undefined
  sts: Float64Array | undefined
  /** What combining this series' histograms ran into (reported once per series). */
  seen: NH.Seen
}
export type HistogramWindowFn = (w: HistogramWindow) => SampleValue | undefined

/**
 * A function over range windows: `fn` for windows of floats only; `hfn` for windows holding native
 * histograms (without it, a window's histograms are ignored, as Prometheus's float-only functions do).
 */
export interface RangeFunction {
  readonly fn: WindowFn
  readonly hfn?: HistogramWindowFn
  /** How `hfn` combines histograms, as annotations name it (default subtraction). */
  readonly combines?: "aggregation" | "subtraction"
  readonly keepName?: boolean
  readonly params?: number
}

/** The window's samples merged by time (floats and histograms), oldest first, with start timestamps if read. */
const windowSamples = (w: HistogramWindow, sts?: Float64Array): Array<{ t: number; v: SampleValue; st?: number }> => {
  const out: Array<{ t: number; v: SampleValue; st?: number }> = []
  let i = w.lo
  let j = w.hlo
  while (i < w.hi || j < w.hhi) {
    if (j >= w.hhi || (i < w.hi && w.ts[i]! < w.hts[j]!)) {
      out.push(sts === undefined ? { t: w.ts[i]!, v: w.vs[i]! } : { t: w.ts[i]!, v: w.vs[i]!, st: sts[i]! })
      i++
    } else {
      out.push(w.hsts === undefined ? { t: w.hts[j]!, v: w.hs[j]! } : { t: w.hts[j]!, v: w.hs[j]!, st: w.hsts[j]! })
      j++
    }
  }
  return out
}

/**
 * Prometheus's info that `rate`/`increase` of a metric whose name does not end like a counter's may not
 * mean much: its text for a result series with a float value and a metric name, else undefined.
 */
export const counterNameText = (s: VSeries): string | undefined => {
  const name = metricName(s.labels)
  if (name === "" || /_(total|sum|count|bucket)$/.test(name) || !s.values.some((x) => typeof x === "number")) return undefined
  return `metric might not be a counter, name does not end in _total/_sum/_count/_bucket: ${JSON.stringify(name)}`
}

/**
 * Applies a range function to each series' window at each step, with two cursors sliding over its float
 * samples (and two more over its histograms, when it has any).
 */
export const overWindows = (ctx: Ctx, input: RangeInput, f: RangeFunction, extra: ReadonlyArray<number>): Array<VSeries> =>
  Array.from(windowsOf(ctx, input, f, extra))

/**
 * `overWindows` one series at a time, as the input streams them: an aggregation over a range function
 * (`sum(rate(x[5m]))`) takes each result series as it comes and holds none of them.
 */
export function* windowsOf(ctx: Ctx, input: RangeInput, f: RangeFunction, extra: ReadonlyArray<number>): Generator<VSeries> {
  const rangeMs = input.rangeMs
  const { fn, hfn } = f
  for (const s of input.series) {
    const { ts, vs } = s
    const n = ts.length
    // Each series' resets are counted afresh (see `fallsIn`).
    fallsOf = undefined
    const values: Array<SampleValue | undefined> = new Array(ctx.steps)
    let any = false
    let lo = 0
    let hi = 0
    const hts = s.hts ?? ts.subarray(0, 0)
    const nh = hts.length
    const w: HistogramWindow = { ts, vs, lo: 0, hi: 0, hts, hs: s.hs ?? [], hsts: s.hsts, sts: s.sts, hlo: 0, hhi: 0, t: 0, rangeMs, extra, seen: NH.newSeen() }
    const sts = s.sts
    let hlo = 0
    let hhi = 0
    let lastT = Number.NEGATIVE_INFINITY
    for (let i = 0; i < ctx.steps; i++) {
      const t = input.timeAt(i)
      if (t < lastT) {
        lo = 0
        hi = 0
        hlo = 0
        hhi = 0
      }
      lastT = t
      while (hi < n && ts[hi]! <= t) hi++
      while (lo < hi && ts[lo]! <= t - rangeMs) lo++
      let v: SampleValue | undefined
      if (nh > 0) {
        while (hhi < nh && hts[hhi]! <= t) hhi++
        while (hlo < hhi && hts[hlo]! <= t - rangeMs) hlo++
      }
      if (hhi > hlo) {
        if (hfn !== undefined) {
          w.lo = lo
          w.hi = hi
          w.hlo = hlo
          w.hhi = hhi
          w.t = t
          v = hfn(w)
        } else if (hi > lo) {
          v = fn(ts, vs, lo, hi, t, rangeMs, extra, stepTime(ctx, i), sts, w.seen)
          // Prometheus: the histograms are left out of a float function's window (and says so).
          inform(ctx, `ignored histograms in a range containing both floats and histograms for metric name ${JSON.stringify(metricName(s.labels))}`)
        }
      } else if (hi > lo) v = fn(ts, vs, lo, hi, t, rangeMs, extra, stepTime(ctx, i), sts, w.seen)
      if (v === undefined) continue
      values[i] = v
      any = true
    }
    reportSeen(ctx, w.seen, metricName(s.labels), f.combines ?? "subtraction")
    if (any) yield { labels: s.labels, dropName: f.keepName === true ? s.dropName : true, values }
  }
  fallsOf = undefined
}

// -------------------------------------------------------------------------------------------------
// Extended range selectors (experimental): `x[r] anchored`, `x[r] smoothed`
// -------------------------------------------------------------------------------------------------

/**
 * rate/increase/delta (and, anchored, changes/resets) over an extended window, without extrapolation:
 * - anchored: the window's samples after the newest sample at or before its start (within the lookback),
 *   which anchors it; at least one sample must be in the window;
 * - smoothed: from the value at the window's start to the value at its end, each interpolated between
 *   the samples around it (within the lookback either side); for counters, a reset between two samples
 *   interpolates from zero.
 * Counter resets in between count as for increase.
 */
export const evalExtendedRange = (ctx: Ctx, name: string, sel: MatrixSelector) =>
  Effect.gen(function*() {
    const v = sel.vector
    const smoothed = v.smoothed === true
    const allowed = smoothed ? smoothedFunctions : anchoredFunctions
    if (!allowed.includes(name)) {
      return fail("bad_data", `${smoothed ? "smoothed" : "anchored"} modifier can only be used with: ${allowed.join(", ")} - not with ${name}`) as never
    }
    const back = ctx.lookbackMs
    const { mint, maxt } = span(ctx, v.at, v.offsetMs, sel.rangeMs + back)
    const loaded = (yield* load(ctx, v.matchers, mint, smoothed ? maxt + back : maxt)).map(withoutStale)
    const rangeMs = sel.rangeMs
    const counter = name === "increase" || name === "rate"
    const out: Array<VSeries> = []
    for (const s of loaded) {
      const { ts, vs } = s
      if (s.hts !== undefined && s.hs !== undefined && (name === "rate" || name === "increase" || name === "delta")) {
        // A series with histograms: per step, histograms only (floats too are a warning, no value).
        const seen = NH.newSeen()
        const values: Array<SampleValue | undefined> = new Array(ctx.steps)
        let any = false
        for (let i = 0; i < ctx.steps; i++) {
          const t = evalTime(ctx, stepTime(ctx, i), v.at, v.offsetMs)
          const reach = smoothed ? t + back : t
          const floats = firstAfter(ts, reach) - firstAfter(ts, t - rangeMs - back)
          const hists = firstAfter(s.hts, reach) - firstAfter(s.hts, t - rangeMs - back)
          if (hists === 0) continue
          if (floats > 0) {
            seen.mixedFloats = true
            continue
          }
          const h = extendedHistogramRate(s.hts, s.hs, t, rangeMs, back, smoothed, name, seen)
          if (h === undefined) continue
          values[i] = h
          any = true
        }
        reportSeen(ctx, seen, metricName(s.labels), "subtraction")
        if (any) out.push({ labels: s.labels, dropName: true, values })
        continue
      }
      if (s.hts !== undefined && s.hs !== undefined && (name === "changes" || name === "resets")) {
        // Anchored changes/resets over floats and histograms merged by time (a switch between the two
        // counts as a change and as a reset, as Prometheus counts it).
        const merged: Array<{ t: number; v: SampleValue }> = []
        for (let k = 0; k < ts.length; k++) merged.push({ t: ts[k]!, v: vs[k]! })
        for (let k = 0; k < s.hts.length; k++) merged.push({ t: s.hts[k]!, v: s.hs[k]! })
        merged.sort((a, b) => a.t - b.t)
        const mts = Float64Array.from(merged, (m) => m.t)
        const values: Array<number | undefined> = new Array(ctx.steps)
        let any = false
        for (let i = 0; i < ctx.steps; i++) {
          const t = evalTime(ctx, stepTime(ctx, i), v.at, v.offsetMs)
          const lo = firstAfter(mts, t - rangeMs)
          const hi = firstAfter(mts, t)
          if (hi <= lo) continue
          const seq = merged.slice(lo > 0 && mts[lo - 1]! > t - rangeMs - back ? lo - 1 : lo, hi).map((m) => m.v)
          let count = 0
          for (let k = 1; k < seq.length; k++) {
            const a = seq[k - 1]!
            const b = seq[k]!
            if (typeof a === "number" && typeof b === "number") {
              if (name === "resets" ? b < a : a !== b && !(Number.isNaN(a) && Number.isNaN(b))) count++
            } else if (typeof a === "number" || typeof b === "number") count++
            else if (name === "resets" ? b.detectReset(a) : !b.equals(a)) count++
          }
          values[i] = count
          any = true
        }
        if (any) out.push({ labels: s.labels, dropName: true, values })
        continue
      }
      const n = ts.length
      /** The first index with a timestamp above `x`. */
      const after = (x: number) => firstAfter(ts, x)
      /** The value at `x`, interpolated between the samples around it. */
      const at = (x: number): number | undefined => {
        const k = after(x)
        const before = k > 0 && ts[k - 1]! > x - back ? k - 1 : -1
        const next = k < n && ts[k]! < x + back ? k : -1
        if (before >= 0 && (next < 0 || ts[before] === x)) return vs[before]!
        if (before < 0) return next < 0 ? undefined : vs[next]!
        let from = vs[before]!
        const to = vs[next]!
        if (counter && to < from) from = 0
        return from + (to - from) * (x - ts[before]!) / (ts[next]! - ts[before]!)
      }
      const values: Array<number | undefined> = new Array(ctx.steps)
      let any = false
      for (let i = 0; i < ctx.steps; i++) {
        const t = evalTime(ctx, stepTime(ctx, i), v.at, v.offsetMs)
        const lo = after(t - rangeMs)
        const hi = after(t)
        const seq: Array<number> = []
        if (smoothed) {
          // Data only before the window or only after it gives nothing.
          if (lo >= n || hi === 0) continue
          const first = at(t - rangeMs)
          const last = at(t)
          if (first === undefined || last === undefined) continue
          seq.push(first)
          for (let k = lo; k < hi; k++) seq.push(vs[k]!)
          seq.push(last)
        } else {
          if (hi <= lo) continue
          if (lo > 0 && ts[lo - 1]! > t - rangeMs - back) seq.push(vs[lo - 1]!)
          for (let k = lo; k < hi; k++) seq.push(vs[k]!)
        }
        let result: number
        if (name === "changes" || name === "resets") {
          result = 0
          for (let k = 1; k < seq.length; k++) {
            const a = seq[k - 1]!
            const b = seq[k]!
            if (name === "resets" ? b < a : a !== b && !(Number.isNaN(a) && Number.isNaN(b))) result++
          }
        } else {
          result = seq[seq.length - 1]! - seq[0]!
          if (counter) for (let k = 1; k < seq.length; k++) if (seq[k]! < seq[k - 1]!) result += seq[k - 1]!
          if (name === "rate") result /= rangeMs / 1000
        }
        values[i] = result
        any = true
      }
      if (any) out.push({ labels: s.labels, dropName: true, values })
    }
    return { kind: "vector", series: out } as EvalValue
  })

/**
 * rate/increase/delta over an extended window of histograms (Prometheus's `extendedHistogramRate`): from
 * the histogram at the window's start (anchored: the last at or before it; smoothed: interpolated) to the
 * one at its end (smoothed: interpolated), counter resets in between added back for a counter.
 */
const extendedHistogramRate = (
  hts: Float64Array,
  all: ReadonlyArray<FloatHistogram>,
  t: number,
  rangeMs: number,
  back: number,
  smoothed: boolean,
  name: string,
  seen: NH.Seen
): FloatHistogram | undefined => {
  const isCounter = name !== "delta"
  const rangeStart = t - rangeMs
  const rangeEnd = t
  // The histograms in (start - lookback, end] (smoothed: up to end + lookback).
  const from = firstAfter(hts, rangeStart - back)
  const to = smoothed ? firstAfter(hts, rangeEnd + back) : firstAfter(hts, rangeEnd)
  const ht = hts.subarray(from, to)
  const h = all.slice(from, to)
  if (h.length === 0) return undefined
  let last = h.length - 1
  const first = Math.max(0, firstAfter(ht, rangeStart, 0, last) - 1)
  if (smoothed) {
    let i = 0
    while (i < last && ht[i]! < rangeEnd) i++
    last = i
  }
  if (ht[last]! <= rangeStart) return undefined
  if (smoothed && ht[first]! > rangeEnd) return undefined
  const custom = h[first]!.usesCustomBuckets()
  for (let i = first; i <= last; i++) {
    if (h[i]!.usesCustomBuckets() !== custom) {
      seen.mixedSchemas = true
      return undefined
    }
    if (isCounter && h[i]!.counterResetHint === "gauge") seen.notCounter = true
  }
  const left = smoothed && ht[first]! < rangeStart
    ? interpolateHistogram(h[first]!, ht[first]!, h[first + 1]!, ht[first + 1]!, rangeStart, isCounter, seen)
    : h[first]!.copy()
  const right = smoothed && last > 0 && ht[last]! > rangeEnd
    ? interpolateHistogram(h[last - 1]!, ht[last - 1]!, h[last]!, ht[last]!, rangeEnd, isCounter, seen)
    : h[last]!.copy()
  if (left === undefined || right === undefined) return undefined
  if (!isCounter && (left.counterResetHint !== "gauge" || right.counterResetHint !== "gauge")) seen.notGauge = true
  const result = right.copy()
  if (!NH.tryCombine(() => result.sub(left), seen)) return undefined
  if (isCounter) {
    // Resets between the boundary samples: each adds back the histogram before it.
    let start = first + 1
    let prev = left
    if (smoothed && ht[first]! < rangeStart && h[first + 1]!.detectReset(h[first]!)) {
      // The left interpolation spanned that reset already.
      prev = h[first + 1]!
      start++
    }
    if (start <= last) {
      let correction: FloatHistogram | undefined
      const add = (x: FloatHistogram) => {
        if (correction === undefined) {
          correction = x.copy()
          return true
        }
        const c = correction
        return NH.tryCombine(() => c.add(x), seen)
      }
      for (let i = start; i < last; i++) {
        if (h[i]!.detectReset(prev) && !add(prev)) return undefined
        prev = h[i]!
      }
      if (right.detectReset(prev) && !add(prev)) return undefined
      const c: FloatHistogram | undefined = correction
      if (c !== undefined && !NH.tryCombine(() => result.add(c), seen)) return undefined
    }
  }
  if (name === "rate") result.div(rangeMs / 1000)
  result.counterResetHint = "gauge"
  return result.compact(0)
}

// -------------------------------------------------------------------------------------------------
// Functions over ranges
// -------------------------------------------------------------------------------------------------

/**
 * The values of the series last asked about, and for each position k how many values before it (from the
 * second on) are below the one before them: a counter's resets, counted once per series, not once per
 * window (a range query slides hundreds of windows over the same values). The counts are exact
 * integers; the correction itself is still summed window by window, in order, as Prometheus sums it.
 */
let fallsOf: Float64Array | undefined = undefined
let fallsBefore = new Int32Array(0)

/** Whether any of `vs[lo + 1 .. hi)` is below the value before it. */
const fallsIn = (vs: Float64Array, lo: number, hi: number): boolean => {
  if (fallsOf !== vs) {
    const n = vs.length
    if (fallsBefore.length < n + 1) fallsBefore = new Int32Array(Math.max(n + 1, fallsBefore.length * 2))
    let count = 0
    fallsBefore[0] = 0
    if (n > 0) fallsBefore[1] = 0
    for (let i = 1; i < n; i++) {
      if (vs[i]! < vs[i - 1]!) count++
      fallsBefore[i + 1] = count
    }
    fallsOf = vs
  }
  return fallsBefore[hi]! - fallsBefore[lo + 1]! > 0
}

/** Prometheus's rate/increase/delta with extrapolation to the window edges. */
const extrapolated = (isCounter: boolean, isRate: boolean): WindowFn => (ts, vs, lo, hi, t, rangeMs, _extra, _stepT, sts, seen) => {
  const count = hi - lo
  const stSt = isCounter && sts !== undefined ? startInWindow(sts[lo]!, t - rangeMs, ts[lo]!) : false
  if (count < 2 && !stSt) return undefined
  const firstV = vs[lo]!
  let result = vs[hi - 1]! - firstV
  // Without start timestamps a window with no fall in value has nothing to add back: not scanned.
  if (isCounter && (sts !== undefined || fallsIn(vs, lo, hi))) {
    let prev = firstV
    for (let i = lo + 1; i < hi; i++) {
      const v = vs[i]!
      if (sts !== undefined && !seen.startTimeOverlap && startTimeOverlaps(sts[i - 1]!, ts[i - 1]!, sts[i]!)) seen.startTimeOverlap = true
      if (v < prev || (sts !== undefined && startTimestampReset(sts[i - 1]!, ts[i - 1]!, sts[i]!, ts[i]!))) result += prev
      prev = v
    }
  }
  if (stSt) return (result + firstV) * fromStart(sts![lo]!, ts[lo]!, ts[hi - 1]!, count, t, isRate, rangeMs)
  return result * extrapolation(ts[lo]!, ts[hi - 1]!, count, t, rangeMs, isCounter, isRate, firstV, result)
}

/**
 * Whether a sample's start timestamp says its counter reset after the sample before (Prometheus's
 * `isStartTimestampReset`): a start after the previous sample (and not after the sample itself); a start
 * at the previous sample counts only when that one's start is known and earlier (a delta series, not a
 * cumulative one of unknown start).
 */
const startTimestampReset = (prevSt: number, prevT: number, st: number, t: number): boolean => {
  if (st === 0 || st >= t || st < prevT) return false
  if (st > prevT) return true
  if (prevSt > prevT) return false
  return prevSt !== 0 && prevSt !== prevT
}

/** A start timestamp before the previous sample that is not the previous one's start (a warning). */
const startTimeOverlaps = (prevSt: number, prevT: number, st: number) => st !== 0 && st < prevT && st !== prevSt

/** Whether the first sample's start timestamp lies inside the window, before the sample. */
const startInWindow = (st: number, rangeStart: number, firstT: number) => st !== 0 && st > rangeStart && st < firstT

/**
 * The extrapolation factor when the window's first sample started inside it (at `st`): a zero-valued
 * sample is taken at `st` instead of extrapolating left; the right side as usual.
 */
const fromStart = (st: number, firstT: number, lastT: number, count: number, t: number, isRate: boolean, rangeMs: number) => {
  const averageBetween = count > 1 ? (lastT - firstT) / 1000 / (count - 1) : 0
  const sampledInterval = (lastT - st) / 1000
  let durationToEnd = (t - lastT) / 1000
  if (durationToEnd >= averageBetween * 1.1) durationToEnd = averageBetween / 2
  let factor = sampledInterval === 0 ? 1 : (sampledInterval + durationToEnd) / sampledInterval
  if (isRate) factor /= rangeMs / 1000
  return factor
}

/** rate/increase/delta over a window of native histograms (none when floats are mixed in). */
const extrapolatedHistogram = (isCounter: boolean, isRate: boolean): HistogramWindowFn => (w) => {
  const count = w.hhi - w.hlo
  if (w.hi > w.lo) {
    w.seen.mixedFloats = true
    return undefined
  }
  const sts = isCounter ? w.hsts : undefined
  const stSt = sts !== undefined && startInWindow(sts[w.hlo]!, w.t - w.rangeMs, w.hts[w.hlo]!)
  if (count < 2 && !stSt) return undefined
  const first = w.hs[w.hlo]!
  let result: FloatHistogram | undefined
  if (count >= 2) {
    const starts = sts === undefined ? undefined : { sts, ts: w.hts, isReset: startTimestampReset, overlaps: startTimeOverlaps }
    result = NH.histogramRate(w.hs, w.hlo, w.hhi, isCounter, w.seen, starts)
    if (result === undefined) return undefined
  }
  if (stSt) {
    // A zero-valued histogram at the first sample's start: the increase includes the first sample.
    if (result === undefined) result = first.copy()
    else {
      const r = result
      if (!NH.tryCombine(() => r.add(first), w.seen)) return undefined
    }
    result.counterResetHint = "gauge"
    return result.mul(fromStart(sts![w.hlo]!, w.hts[w.hlo]!, w.hts[w.hhi - 1]!, count, w.t, isRate, w.rangeMs))
  }
  return result!.mul(extrapolation(w.hts[w.hlo]!, w.hts[w.hhi - 1]!, count, w.t, w.rangeMs, isCounter, isRate, first.count, result!.count))
}

/**
 * The factor that extrapolates an increase seen from the first to the last sample (`count` of them) to the
 * window's edges; `first` and `result` (the first value and the increase) keep a counter from being
 * extrapolated below zero.
 */
const extrapolation = (firstT: number, lastT: number, count: number, t: number, rangeMs: number, isCounter: boolean, isRate: boolean, first: number, result: number) => {
  const rangeStart = t - rangeMs
  let durationToStart = (firstT - rangeStart) / 1000
  let durationToEnd = (t - lastT) / 1000
  const sampledInterval = (lastT - firstT) / 1000
  const averageBetween = sampledInterval / (count - 1)
  const threshold = averageBetween * 1.1
  if (durationToStart >= threshold) durationToStart = averageBetween / 2
  if (isCounter && result > 0 && first >= 0) {
    // A counter does not go below zero: do not extrapolate past where it would have been zero.
    const durationToZero = sampledInterval * (first / result)
    if (durationToZero < durationToStart) durationToStart = durationToZero
  }
  if (durationToEnd >= threshold) durationToEnd = averageBetween / 2
  const extrapolateTo = sampledInterval + durationToStart + durationToEnd
  let factor = extrapolateTo / sampledInterval
  if (isRate) factor /= rangeMs / 1000
  return factor
}

/** irate/idelta over the window's last two samples when histograms are among them (both must be histograms). */
const instantHistogramDelta = (isRate: boolean): HistogramWindowFn => (w) => {
  const samples = windowSamples(w, w.sts)
  if (samples.length < 2) return undefined
  const last = samples[samples.length - 1]!
  const previous = samples[samples.length - 2]!
  if (typeof last.v === "number" || typeof previous.v === "number") {
    w.seen.mixedFloats = true
    return undefined
  }
  const gauges = [last.v.counterResetHint === "gauge", previous.v.counterResetHint === "gauge"]
  if (isRate && gauges.some((g) => g)) w.seen.notCounter = true
  if (!isRate && !gauges.every((g) => g)) w.seen.notGauge = true
  const result = last.v.copy()
  const stReset = last.st !== undefined && previous.st !== undefined && startTimestampReset(previous.st, previous.t, last.st, last.t)
  if (!isRate || (!stReset && !last.v.detectReset(previous.v))) {
    if (!NH.tryCombine(() => result.sub(previous.v as FloatHistogram), w.seen)) return undefined
  }
  result.counterResetHint = "gauge"
  if (isRate) {
    const dt = last.t - previous.t
    if (dt === 0) return undefined
    result.div(dt / 1000)
  }
  return result
}

const instantDelta = (isRate: boolean): WindowFn => (ts, vs, lo, hi, _t, _r, _e, _s, sts) => {
  if (hi - lo < 2) return undefined
  const lastV = vs[hi - 1]!
  const prevV = vs[hi - 2]!
  const reset = isRate && (lastV < prevV || (sts !== undefined && startTimestampReset(sts[hi - 2]!, ts[hi - 2]!, sts[hi - 1]!, ts[hi - 1]!)))
  let result = reset ? lastV : lastV - prevV
  if (isRate) {
    const dt = (ts[hi - 1]! - ts[hi - 2]!) / 1000
    if (dt === 0) return undefined
    result /= dt
  }
  return result
}

/** Least squares slope and intercept of samples [lo, hi), times relative to `interceptTime` (ms). */
const linearRegression = (ts: Float64Array, vs: Float64Array, lo: number, hi: number, interceptTime: number) => {
  let n = 0
  let sumX = 0
  let sumY = 0
  let sumXY = 0
  let sumX2 = 0
  let constY = true
  const initY = vs[lo]!
  for (let i = lo; i < hi; i++) {
    const v = vs[i]!
    if (v !== initY) constY = false
    const x = (ts[i]! - interceptTime) / 1000
    n++
    sumX += x
    sumY += v
    sumXY += x * v
    sumX2 += x * x
  }
  if (constY) return { slope: 0, intercept: initY }
  const covXY = sumXY - (sumX * sumY) / n
  const varX = sumX2 - (sumX * sumX) / n
  const slope = covXY / varX
  const intercept = sumY / n - (slope * sumX) / n
  return { slope, intercept }
}

export const rangeFunctions: Record<string, RangeFunction> = {
  rate: { fn: extrapolated(true, true), hfn: extrapolatedHistogram(true, true) },
  increase: { fn: extrapolated(true, false), hfn: extrapolatedHistogram(true, false) },
  delta: { fn: extrapolated(false, false), hfn: extrapolatedHistogram(false, false) },
  irate: { fn: instantDelta(true), hfn: instantHistogramDelta(true) },
  idelta: { fn: instantDelta(false), hfn: instantHistogramDelta(false) },
  deriv: { fn: (ts, vs, lo, hi) => (hi - lo < 2 ? undefined : linearRegression(ts, vs, lo, hi, ts[lo]!).slope) },
  predict_linear: {
    // The intercept is at the evaluation step, not at an @ time (as Prometheus).
    fn: (ts, vs, lo, hi, _t, _r, [duration], stepT) => {
      if (hi - lo < 2) return undefined
      const { slope, intercept } = linearRegression(ts, vs, lo, hi, stepT)
      return slope * duration! + intercept
    },
    params: 1
  },
  changes: {
    fn: (_ts, vs, lo, hi) => {
      let n = 0
      for (let i = lo + 1; i < hi; i++) if (vs[i]! !== vs[i - 1]! && !(Number.isNaN(vs[i]!) && Number.isNaN(vs[i - 1]!))) n++
      return n
    },
    hfn: (w) => {
      const samples = windowSamples(w)
      let n = 0
      for (let i = 1; i < samples.length; i++) {
        const a = samples[i - 1]!.v
        const b = samples[i]!.v
        if (typeof a === "number" && typeof b === "number") {
          if (a !== b && !(Number.isNaN(a) && Number.isNaN(b))) n++
        } else if (typeof a === "number" || typeof b === "number" || !b.equals(a)) n++
      }
      return n
    }
  },
  resets: {
    fn: (ts, vs, lo, hi, _t, _r, _e, _s, sts) => {
      let n = 0
      for (let i = lo + 1; i < hi; i++) {
        if (vs[i]! < vs[i - 1]! || (sts !== undefined && startTimestampReset(sts[i - 1]!, ts[i - 1]!, sts[i]!, ts[i]!))) n++
      }
      return n
    },
    hfn: (w) => {
      const samples = windowSamples(w, w.sts)
      let n = 0
      for (let i = 1; i < samples.length; i++) {
        const a = samples[i - 1]!
        const b = samples[i]!
        const stReset = a.st !== undefined && b.st !== undefined && startTimestampReset(a.st, a.t, b.st, b.t)
        if (typeof a.v === "number" && typeof b.v === "number") {
          if (b.v < a.v || stReset) n++
        } else if (typeof a.v === "number" || typeof b.v === "number" || stReset || b.v.detectReset(a.v)) n++
      }
      return n
    }
  },
  avg_over_time: { fn: (_ts, vs, lo, hi) => mean(vs, lo, hi), hfn: (w) => overTime(w, NH.average), combines: "aggregation" },
  sum_over_time: { fn: (_ts, vs, lo, hi) => kahanSum(vs, lo, hi), hfn: (w) => overTime(w, NH.sum), combines: "aggregation" },
  count_over_time: { fn: (_ts, _vs, lo, hi) => hi - lo, hfn: (w) => w.hi - w.lo + w.hhi - w.hlo },
  min_over_time: {
    fn: (_ts, vs, lo, hi) => {
      let m = vs[lo]!
      for (let i = lo; i < hi; i++) if (Number.isNaN(m) || vs[i]! < m) m = vs[i]!
      return m
    }
  },
  max_over_time: {
    fn: (_ts, vs, lo, hi) => {
      let m = vs[lo]!
      for (let i = lo; i < hi; i++) if (Number.isNaN(m) || vs[i]! > m) m = vs[i]!
      return m
    }
  },
  last_over_time: {
    fn: (_ts, vs, _lo, hi) => vs[hi - 1]!,
    hfn: (w) => (w.hi > w.lo && w.ts[w.hi - 1]! > w.hts[w.hhi - 1]! ? w.vs[w.hi - 1]! : w.hs[w.hhi - 1]!.copy()),
    keepName: true
  },
  present_over_time: { fn: () => 1, hfn: () => 1 },
  stddev_over_time: { fn: (_ts, vs, lo, hi) => Math.sqrt(variance(vs, lo, hi)) },
  stdvar_over_time: { fn: (_ts, vs, lo, hi) => variance(vs, lo, hi) },
  quantile_over_time: { fn: (_ts, vs, lo, hi, _t, _r, [q]) => quantile(q!, Array.from(vs.subarray(lo, hi))), params: 1 },
  // Experimental (promql-experimental-functions).
  first_over_time: {
    fn: (_ts, vs, lo) => vs[lo]!,
    hfn: (w) => (w.hi > w.lo && w.ts[w.lo]! < w.hts[w.hlo]! ? w.vs[w.lo]! : w.hs[w.hlo]!.copy()),
    keepName: true
  },
  ts_of_first_over_time: { fn: (ts, _vs, lo) => ts[lo]! / 1000, hfn: (w) => Math.min(w.hi > w.lo ? w.ts[w.lo]! : Infinity, w.hts[w.hlo]!) / 1000 },
  ts_of_last_over_time: { fn: (ts, _vs, _lo, hi) => ts[hi - 1]! / 1000, hfn: (w) => Math.max(w.hi > w.lo ? w.ts[w.hi - 1]! : -Infinity, w.hts[w.hhi - 1]!) / 1000 },
  ts_of_max_over_time: { fn: (ts, vs, lo, hi) => tsOfExtreme(ts, vs, lo, hi, (x, m) => x >= m) },
  ts_of_min_over_time: { fn: (ts, vs, lo, hi) => tsOfExtreme(ts, vs, lo, hi, (x, m) => x <= m) },
  mad_over_time: {
    fn: (_ts, vs, lo, hi) => {
      // A NaN sample makes the answer NaN rather than being sorted away.
      for (let i = lo; i < hi; i++) if (Number.isNaN(vs[i]!)) return Number.NaN
      const median = quantile(0.5, Array.from(vs.subarray(lo, hi)))
      return quantile(0.5, Array.from(vs.subarray(lo, hi), (x) => Math.abs(x - median)))
    }
  },
  double_exponential_smoothing: { fn: (_ts, vs, lo, hi, _t, _r, [sf, tf]) => doubleExponentialSmoothing(vs, lo, hi, sf!, tf!), params: 2 }
}

/** sum_over_time / avg_over_time of a window of histograms only (none when floats are mixed in). */
function overTime(w: HistogramWindow, combine: (hs: ReadonlyArray<FloatHistogram>, compact: boolean, seen: NH.Seen) => FloatHistogram | undefined) {
  if (w.hi > w.lo) {
    w.seen.mixedFloats = true
    return undefined
  }
  const hs = w.hs.slice(w.hlo, w.hhi)
  if (NH.conflictingResets(hs)) w.seen.conflictingResets = true
  return combine(hs, false, w.seen)
}

/** The time (seconds) of the window's extreme value: the last one `better` keeps, NaN giving way to any number. */
function tsOfExtreme(ts: Nums, vs: Nums, lo: number, hi: number, better: (x: number, m: number) => boolean): number {
  let m = vs[lo]!
  let t = ts[lo]!
  for (let i = lo; i < hi; i++) {
    if (better(vs[i]!, m) || Number.isNaN(m)) {
      m = vs[i]!
      t = ts[i]!
    }
  }
  return t / 1000
}

/** Holt's linear smoothing (Prometheus's `double_exponential_smoothing`, once `holt_winters`); none below 2 samples. */
function doubleExponentialSmoothing(vs: Nums, lo: number, hi: number, sf: number, tf: number): number | undefined {
  if (!(sf > 0 && sf < 1)) throw new QueryError({ kind: "execution", message: `invalid smoothing factor. Expected: 0 < sf < 1, got: ${formatGoFloat(sf)}` })
  if (!(tf > 0 && tf < 1)) throw new QueryError({ kind: "execution", message: `invalid trend factor. Expected: 0 < tf < 1, got: ${formatGoFloat(tf)}` })
  if (hi - lo < 2) return undefined
  let s0 = 0
  let s1 = vs[lo]!
  let b = vs[lo + 1]! - vs[lo]!
  for (let i = 1; i < hi - lo; i++) {
    const x = sf * vs[lo + i]!
    if (i > 1) b = tf * (s1 - s0) + (1 - tf) * b
    const y = (1 - sf) * (s1 + b)
    s0 = s1
    s1 = x + y
  }
  return s1
}
