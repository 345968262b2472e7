/**
 * The PromQL evaluator (Prometheus 3.x semantics) over a `SeriesSource`.
 *
 * Every node is evaluated once for all steps of the query: an instant vector is a set of series, each
 * with an optional value per step; a scalar is a value per step. Selectors load each series once for the
 * whole query and walk it with cursors (lookback: the newest sample in (t - 5m, t], a stale marker hides
 * the series); range windows (t - range, t] slide over the samples, so a range query does not rescan
 * each window. A sample is a float or a native histogram (histogram.ts): selectors, range functions,
 * aggregations and operators follow Prometheus 3's rules for histograms (nativeHistograms.ts,
 * histogramStats.ts), and float-only functions pass over histogram samples as Prometheus's do.
 */
import { Effect } from "effect"
import * as Limits from "../limits.ts"
import type { Labels, Matcher } from "../internal/labels.ts"
import { canonical, labelValue, matches, matchesAll } from "../internal/labels.ts"
import { formatG } from "../internal/goString.ts"
import { compileLabelReplace, expand, type SubmatchRegex } from "../internal/regex.ts"
import type { SelectedSeries, SeriesSource } from "../Tsdb.ts"
import { SamplesLimitExceeded } from "../Tsdb.ts"
import type { Aggregate, AtModifier, Binary, Call, Expr, MatrixSelector, Subquery, VectorSelector } from "./ast.ts"
import { ParseError } from "./ast.ts"
import { functions, goQuote, parseWithDurations, resolveDurations } from "./parser.ts"
import { allBuckets, FloatHistogram } from "./histogram.ts"
import * as Stats from "./histogramStats.ts"
import * as NH from "./nativeHistograms.ts"
import type { InstantSample, Point, PromqlFeature, QueryOptions, Value } from "./types.ts"
import { QueryError } from "./types.ts"

export { QueryError }
export type { QueryOptions, Value }

const defaultLookbackMs = 5 * 60_000

// -------------------------------------------------------------------------------------------------
// Evaluation values
// -------------------------------------------------------------------------------------------------

/** A sample's value: a float or a native histogram. */
type SampleValue = number | FloatHistogram

/** One series of an instant vector: a value (or none) at each step. */
interface VSeries {
  labels: Labels
  values: Array<SampleValue | undefined>
  /**
   * A function or operator dropped the metric name: it stays in `labels` (with `__type__` and `__unit__`)
   * until the result is returned, so `label_replace`, `by (__name__)` and matching still see it. This is
   * Prometheus's delayed name removal, which its own test engine runs with.
   */
  dropName?: boolean | undefined
}

/**
 * One series of a range vector: its float samples as columns, timestamps strictly increasing, and its
 * native histogram samples apart (as Prometheus keeps `Floats` and `Histograms`), absent when it has none.
 */
interface MSeries {
  labels: Labels
  ts: Float64Array
  vs: Float64Array
  hts?: Float64Array | undefined
  hs?: ReadonlyArray<FloatHistogram> | undefined
  /** The start timestamps of the floats and of the histograms (0: none), with `use-start-timestamps`. */
  sts?: Float64Array | undefined
  hsts?: Float64Array | undefined
  dropName?: boolean | undefined
}

type EvalValue =
  | { readonly kind: "scalar"; readonly values: Array<number> }
  | { readonly kind: "string"; readonly value: string }
  | { readonly kind: "vector"; readonly series: Array<VSeries> }
  | { readonly kind: "matrix"; readonly series: Array<MSeries>; readonly rangeMs: number }

interface Ctx {
  readonly start: number
  readonly end: number
  /** The query's own start and end, which `@ start()` and `@ end()` mean inside subqueries too. */
  readonly queryStart: number
  readonly queryEnd: number
  readonly step: number
  readonly steps: number
  readonly lookbackMs: number
  readonly source: SeriesSource
  /** Samples loaded so far, against samplesMax. */
  samples: number
  readonly samplesMax: number
  /** The query's annotations so far (shared by the contexts of its subqueries). */
  readonly notes: { readonly warnings: Set<string>; readonly infos: Set<string> }
  /**
   * Whether the selectors being evaluated feed only histogram_count/histogram_sum/histogram_avg: then, as
   * Prometheus's HistogramStatsIterator, a histogram whose reset hint is unknown gets one from a reset
   * detection against the sample before it (which makes a "reset" visible).
   */
  statsOnly: boolean
  /** `use-start-timestamps`: rate, increase, irate and resets read samples' start timestamps. */
  readonly useStartTimestamps: boolean
}

/** Adds a warning annotation (`PromQL warning: <text>`). */
const warn = (ctx: Ctx, text: string) => void ctx.notes.warnings.add(`PromQL warning: ${text}`)
/** Adds an info annotation (`PromQL info: <text>`). */
const inform = (ctx: Ctx, text: string) => void ctx.notes.infos.add(`PromQL info: ${text}`)
/** Prometheus's warning for a quantile outside [0, 1] (NaN included), when `q` is one. */
const invalidQuantile = (ctx: Ctx, q: number) => {
  if (Number.isNaN(q) || q < 0 || q > 1) warn(ctx, `quantile value should be between 0 and 1, got ${formatG(q)}`)
}
/** An annotation's text naming the metric, when there is one (Prometheus's `maybeAddMetricName`). */
const forMetric = (text: string, name: string) => (name === "" ? text : `${text} for metric name ${JSON.stringify(name)}`)
/** The metric name of a series (empty when it has none). */
const metricName = (labels: Labels) => labelValue(labels, "__name__")

const stepTime = (ctx: Ctx, i: number) => ctx.start + i * ctx.step

const staleBits = new DataView(new ArrayBuffer(8))
const isStale = (v: number) => {
  if (!Number.isNaN(v)) return false
  staleBits.setFloat64(0, v)
  return staleBits.getUint32(0) === 0x7ff00000 && staleBits.getUint32(4) === 2
}

const fail = (kind: "bad_data" | "execution" | "unsupported", message: string): never => {
  throw new QueryError(kind, message)
}

/** Drops the metric name (and the type and unit labels that describe it, as Prometheus 3 does). */
const dropName = (labels: Labels): Labels => labels.filter(([n]) => n !== "__name__" && n !== "__type__" && n !== "__unit__")
/** The labels a series is returned with. */
const outputLabels = (s: { labels: Labels; dropName?: boolean | undefined }): Labels => (s.dropName === true ? dropName(s.labels) : s.labels)
const sigOf = (labels: Labels) => canonical(labels)

/** Evaluation time of a selector at step time t, with its @ and offset. */
const evalTime = (ctx: Ctx, t: number, at: AtModifier | undefined, offsetMs: number) => {
  const base = at === undefined ? t : at === "start" ? ctx.queryStart : at === "end" ? ctx.queryEnd : at
  return base - offsetMs
}

// -------------------------------------------------------------------------------------------------
// Selectors
// -------------------------------------------------------------------------------------------------

const tooManySamples = (ctx: Ctx) =>
  new QueryError("execution", `query processing would load too many samples into memory (more than ${ctx.samplesMax})`)

/** The series a selector reads over [mint, maxt], counted against the query's sample limit. */
const load = (ctx: Ctx, matchers: ReadonlyArray<Matcher>, mint: number, maxt: number) =>
  Effect.gen(function*() {
    const selected = yield* Effect.mapError(
      ctx.source.select(matchers, mint, maxt, { samplesMax: Math.max(0, ctx.samplesMax - ctx.samples) }),
      (e) => (e instanceof SamplesLimitExceeded ? tooManySamples(ctx) : new QueryError("execution", e.message))
    )
    const out: Array<SelectedSeries> = []
    for (const s of selected) {
      if (!matchesAll(matchers, s.labels)) continue
      ctx.samples += s.timestamps.length
      if (ctx.samples > ctx.samplesMax) return yield* Effect.fail(tooManySamples(ctx))
      let kept = s
      // Start timestamps are read only with use-start-timestamps (as Prometheus's engine option).
      if (!ctx.useStartTimestamps && kept.startTimestamps !== undefined) kept = { labels: kept.labels, timestamps: kept.timestamps, values: kept.values, histograms: kept.histograms }
      if (ctx.statsOnly && kept.histograms !== undefined) kept = { ...kept, histograms: detectedHints(kept.histograms) }
      out.push(kept)
    }
    return out
  })

/** Histograms with their unknown reset hints decided by reset detection against the histogram before. */
const detectedHints = (hs: ReadonlyArray<FloatHistogram | undefined>): Array<FloatHistogram | undefined> => {
  let prev: FloatHistogram | undefined
  return hs.map((h) => {
    const before = prev
    prev = h
    if (h === undefined || before === undefined || h.counterResetHint !== "unknown") return h
    return withHint(h, h.detectReset(before) ? "reset" : "not_reset")
  })
}

/** The time span a selector reads for the whole query. */
const span = (ctx: Ctx, at: AtModifier | undefined, offsetMs: number, backMs: number) => {
  const first = evalTime(ctx, ctx.start, at, offsetMs)
  const last = evalTime(ctx, ctx.end, at, offsetMs)
  return { mint: Math.min(first, last) - backMs, maxt: Math.max(first, last) }
}

/**
 * For each step, the index of the newest sample at or before the selector's evaluation time that is
 * inside the lookback window and not a stale marker, or -1. Step times only grow (without @; with @
 * they are all equal), so a cursor walks the samples once.
 */
const lookback = (ctx: Ctx, ts: Float64Array, vs: Float64Array, at: AtModifier | undefined, offsetMs: number, visit: (i: number, j: number) => void) => {
  let j = 0
  let lastT = Number.NEGATIVE_INFINITY
  for (let i = 0; i < ctx.steps; i++) {
    const t = evalTime(ctx, stepTime(ctx, i), at, offsetMs)
    if (t < lastT) j = 0
    lastT = t
    while (j < ts.length && ts[j]! <= t) j++
    if (j === 0) continue
    const k = j - 1
    if (ts[k]! <= t - ctx.lookbackMs || isStale(vs[k]!)) continue
    visit(i, k)
  }
}

const evalVectorSelector = (ctx: Ctx, sel: VectorSelector) =>
  Effect.gen(function*() {
    if (sel.smoothed === true) return yield* evalSmoothedSelector(ctx, sel)
    const { mint, maxt } = span(ctx, sel.at, sel.offsetMs, ctx.lookbackMs)
    const loaded = yield* load(ctx, sel.matchers, mint, maxt)
    const series: Array<VSeries> = []
    for (const s of loaded) {
      const values: Array<SampleValue | undefined> = new Array(ctx.steps)
      let any = false
      const vs = s.values
      const hs = s.histograms
      lookback(ctx, s.timestamps, vs, sel.at, sel.offsetMs, (i, k) => {
        values[i] = hs?.[k] ?? vs[k]!
        any = true
      })
      if (any) series.push({ labels: s.labels, values })
    }
    return { kind: "vector", series } as EvalValue
  })

/**
 * `x smoothed` (experimental): at each step, the value interpolated between the newest sample at or before
 * the time and the next one after it (each within the lookback); the newest alone when none follows.
 */
const evalSmoothedSelector = (ctx: Ctx, sel: VectorSelector) =>
  Effect.gen(function*() {
    const back = ctx.lookbackMs
    const { mint, maxt } = span(ctx, sel.at, sel.offsetMs, back)
    const series: Array<VSeries> = []
    for (const s of (yield* load(ctx, sel.matchers, mint, maxt + back)).map(withoutStale)) {
      const { ts, vs } = s
      const values: Array<SampleValue | undefined> = new Array(ctx.steps)
      let any = false
      let k = 0
      let lastT = Number.NEGATIVE_INFINITY
      const seen = NH.newSeen()
      for (let i = 0; i < ctx.steps; i++) {
        const t = evalTime(ctx, stepTime(ctx, i), sel.at, sel.offsetMs)
        if (s.hts !== undefined && s.hs !== undefined && firstAfter(s.hts, t - back) < firstAfter(s.hts, t + back)) {
          // Histograms near t: floats near it too cannot be combined with them.
          if (firstAfter(ts, t - back) < firstAfter(ts, t + back)) {
            seen.mixedFloats = true
            continue
          }
          const h = smoothHistogram(s.hts, s.hs, t, back, seen)
          if (h === undefined) continue
          values[i] = h
          any = true
          continue
        }
        if (t < lastT) k = 0
        lastT = t
        while (k < ts.length && ts[k]! <= t) k++
        if (k === 0 || ts[k - 1]! <= t - back) continue
        const b = k - 1
        const next = k < ts.length && ts[k]! < t + back ? k : -1
        values[i] = next < 0 || ts[b] === t ? vs[b]! : vs[b]! + (vs[next]! - vs[b]!) * (t - ts[b]!) / (ts[next]! - ts[b]!)
        any = true
      }
      reportSeen(ctx, seen, metricName(s.labels), "subtraction")
      if (any) series.push({ labels: s.labels, values })
    }
    return { kind: "vector", series } as EvalValue
  })

/** The first index of `ts` (ascending) with a time above `x`. */
const firstAfter = (ts: ArrayLike<number>, x: number, lo = 0, hi = ts.length) => {
  while (lo < hi) {
    const m = (lo + hi) >> 1
    if (ts[m]! <= x) lo = m + 1
    else hi = m
  }
  return lo
}

/**
 * The histogram at `t1 + (t - t1)` between h1 (at t1) and h2 (at t2), linearly; a counter (`isCounter`)
 * that reset between them grows from zero to h2. Undefined when they cannot be combined.
 */
const interpolateHistogram = (h1: FloatHistogram, t1: number, h2: FloatHistogram, t2: number, t: number, isCounter: boolean, seen: NH.Seen): FloatHistogram | undefined => {
  if (t === t1) return h1.copy()
  if (t === t2) return h2.copy()
  const fraction = (t - t1) / (t2 - t1)
  if (isCounter && h2.detectReset(h1)) return h2.copy().mul(fraction)
  const result = h2.copy()
  if (!NH.tryCombine(() => result.sub(h1), seen)) return undefined
  result.mul(fraction)
  if (!NH.tryCombine(() => result.add(h1), seen)) return undefined
  return result
}

/**
 * `x smoothed` at time t over histograms: the one at t, else interpolated between the last before and the
 * first after (within the lookback either side; a counter unless both are gauges), else the last before
 * (its hint unknown: a hint describes a sample's relation to the one before, not its value).
 */
const smoothHistogram = (hts: Float64Array, hs: ReadonlyArray<FloatHistogram>, t: number, back: number, seen: NH.Seen): FloatHistogram | undefined => {
  const lo = firstAfter(hts, t - back)
  const hi = firstAfter(hts, t + back)
  // The first at or after t.
  let i = lo
  while (i < hi && hts[i]! < t) i++
  if (i < hi && hts[i] === t) return hs[i]!.copy()
  if (i > lo && i < hi) {
    const prev = hs[i - 1]!
    const next = hs[i]!
    if (prev.usesCustomBuckets() !== next.usesCustomBuckets()) {
      seen.mixedSchemas = true
      return undefined
    }
    return interpolateHistogram(prev, hts[i - 1]!, next, hts[i]!, t, prev.counterResetHint !== "gauge" || next.counterResetHint !== "gauge", seen)
  }
  if (i > lo) return withHint(hs[i - 1]!, "unknown")
  return undefined
}

/**
 * A function of the samples of one series in the window (t - range, t] at one step: the samples are
 * `ts[lo..hi)` and `vs[lo..hi)` (lo < hi), read in place.
 */
type WindowFn = (
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
interface HistogramWindow {
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
type HistogramWindowFn = (w: HistogramWindow) => SampleValue | undefined

/**
 * A function over range windows: `fn` for windows of floats only; `hfn` for windows holding native
 * histograms (without it, a window's histograms are ignored, as Prometheus's float-only functions do).
 */
interface RangeFunction {
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

interface RangeInput {
  readonly series: ReadonlyArray<MSeries>
  readonly rangeMs: number
  /** The evaluation time (after @ and offset) of step i. */
  readonly timeAt: (i: number) => number
}

/**
 * The series without its stale markers (the same columns when it has none), its native histograms apart
 * from its floats.
 */
const withoutStale = (s: SelectedSeries): MSeries => {
  const { timestamps: ts, values: vs, histograms, startTimestamps: st } = s
  let stale = 0
  let nh = 0
  for (let i = 0; i < vs.length; i++) {
    if (histograms?.[i] !== undefined) nh++
    else if (isStale(vs[i]!)) stale++
  }
  if (stale === 0 && nh === 0) return st === undefined ? { labels: s.labels, ts, vs } : { labels: s.labels, ts, vs, sts: st }
  const kts = new Float64Array(ts.length - stale - nh)
  const kvs = new Float64Array(ts.length - stale - nh)
  const ksts = st === undefined ? undefined : new Float64Array(ts.length - stale - nh)
  const hts = new Float64Array(nh)
  const hsts = st === undefined ? undefined : new Float64Array(nh)
  const hs: Array<FloatHistogram> = []
  let n = 0
  for (let i = 0; i < vs.length; i++) {
    const h = histograms?.[i]
    if (h !== undefined) {
      if (hsts !== undefined) hsts[hs.length] = st![i]!
      hts[hs.length] = ts[i]!
      hs.push(h)
      continue
    }
    if (isStale(vs[i]!)) continue
    kts[n] = ts[i]!
    kvs[n] = vs[i]!
    if (ksts !== undefined) ksts[n] = st![i]!
    n++
  }
  const floats: MSeries = ksts === undefined ? { labels: s.labels, ts: kts, vs: kvs } : { labels: s.labels, ts: kts, vs: kvs, sts: ksts }
  if (nh === 0) return floats
  floats.hts = hts
  floats.hs = hs
  if (hsts !== undefined) floats.hsts = hsts
  return floats
}

const loadMatrix = (ctx: Ctx, node: MatrixSelector) =>
  Effect.gen(function*() {
    const sel = node.vector
    const { mint, maxt } = span(ctx, sel.at, sel.offsetMs, node.rangeMs)
    const loaded = yield* load(ctx, sel.matchers, mint, maxt)
    return {
      series: loaded.map(withoutStale),
      rangeMs: Math.round(node.rangeMs),
      timeAt: (i: number) => evalTime(ctx, stepTime(ctx, i), sel.at, sel.offsetMs)
    } satisfies RangeInput
  })

/** A copy of a histogram with another counter reset hint. */
const withHint = (h: FloatHistogram, hint: FloatHistogram["counterResetHint"]): FloatHistogram => {
  const c = h.copy()
  c.counterResetHint = hint
  return c
}

/** The defined steps of an inner evaluation (step i at start + i * step) as a range series. */
const stepColumns = (labels: Labels, values: ReadonlyArray<SampleValue | undefined>, start: number, step: number, dropName?: boolean | undefined): MSeries => {
  let n = 0
  let nh = 0
  for (const v of values) {
    if (typeof v === "number") n++
    else if (v !== undefined) nh++
  }
  const ts = new Float64Array(n)
  const vs = new Float64Array(n)
  const hts = new Float64Array(nh)
  const hs: Array<FloatHistogram> = []
  let k = 0
  for (let i = 0; i < values.length; i++) {
    const v = values[i]
    if (v === undefined) continue
    if (typeof v !== "number") {
      hts[hs.length] = start + i * step
      // As Prometheus: a subquery's steps may skip or repeat samples, so their reset hints say nothing.
      hs.push(v.counterResetHint === "reset" || v.counterResetHint === "not_reset" ? withHint(v, "unknown") : v)
      continue
    }
    ts[k] = start + i * step
    vs[k] = v
    k++
  }
  return nh === 0 ? { labels, ts, vs, dropName } : { labels, ts, vs, hts, hs, dropName }
}

const loadSubquery = (ctx: Ctx, node: Subquery) =>
  Effect.gen(function*() {
    const stepMs = node.stepMs ?? 60_000
    if (stepMs <= 0) fail("bad_data", "zero or negative subquery step")
    const first = evalTime(ctx, ctx.start, node.at, node.offsetMs)
    const last = evalTime(ctx, ctx.end, node.at, node.offsetMs)
    const lo = Math.min(first, last) - node.rangeMs
    const hi = Math.max(first, last)
    // Subquery steps are aligned to multiples of the step, absolute in time.
    const innerStart = Math.floor(lo / stepMs) * stepMs + (lo % stepMs === 0 ? 0 : stepMs)
    const innerSteps = innerStart > hi ? 0 : Math.floor((hi - innerStart) / stepMs) + 1
    // A subquery's selectors are read as usual (Prometheus's stats iterator does not apply under one).
    const inner: Ctx = { ...ctx, start: innerStart, end: innerStart + (innerSteps - 1) * stepMs, step: stepMs, steps: innerSteps, statsOnly: false }
    const value = innerSteps === 0 ? ({ kind: "vector", series: [] } as EvalValue) : yield* evaluate(inner, node.expr)
    if (value.kind !== "vector" && value.kind !== "scalar") return fail("bad_data", "subquery is only allowed on instant vector")
    const series = value.kind === "scalar"
      ? [stepColumns([], value.values, innerStart, stepMs)]
      : value.series.map((s) => stepColumns(s.labels, s.values, innerStart, stepMs, s.dropName))
    ctx.samples += series.reduce((n, s) => n + s.ts.length + (s.hs?.length ?? 0), 0)
    return {
      series,
      rangeMs: node.rangeMs,
      timeAt: (i: number) => evalTime(ctx, stepTime(ctx, i), node.at, node.offsetMs)
    } satisfies RangeInput
  })

const rangeInput = (ctx: Ctx, node: Expr): Effect.Effect<RangeInput, QueryError> => {
  const inner = node.type === "Paren" ? node.expr : node
  if (inner.type === "MatrixSelector") return loadMatrix(ctx, inner)
  if (inner.type === "Subquery") return loadSubquery(ctx, inner)
  return Effect.fail(new QueryError("bad_data", "expected type range vector"))
}

/**
 * Prometheus's info that `rate`/`increase` of a metric whose name does not end like a counter's may not
 * mean much: for each result series with a float value and a metric name.
 */
const counterNameInfo = (ctx: Ctx, series: ReadonlyArray<VSeries>) => {
  for (const s of series) {
    const name = metricName(s.labels)
    if (name === "" || /_(total|sum|count|bucket)$/.test(name) || !s.values.some((x) => typeof x === "number")) continue
    inform(ctx, `metric might not be a counter, name does not end in _total/_sum/_count/_bucket: ${JSON.stringify(name)}`)
  }
}

/**
 * Applies a range function to each series' window at each step, with two cursors sliding over its float
 * samples (and two more over its histograms, when it has any).
 */
const overWindows = (ctx: Ctx, input: RangeInput, f: RangeFunction, extra: ReadonlyArray<number>): Array<VSeries> => {
  const out: Array<VSeries> = []
  const rangeMs = input.rangeMs
  const { fn, hfn } = f
  for (const s of input.series) {
    const { ts, vs } = s
    const n = ts.length
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
    if (any) out.push({ labels: s.labels, dropName: f.keepName === true ? s.dropName : true, values })
  }
  return out
}

/** The annotations for what combining a series' histograms ran into (`operation`: what combined them). */
const reportSeen = (ctx: Ctx, seen: NH.Seen, name: string, operation: "aggregation" | "addition" | "subtraction") => {
  if (seen.reconciled) inform(ctx, `mismatched custom buckets were reconciled during ${operation}`)
  if (seen.mixedSchemas) warn(ctx, `vector contains a mix of histograms with exponential and custom buckets schemas for metric name ${JSON.stringify(name)}`)
  if (seen.notCounter) warn(ctx, `this native histogram metric is not a counter: ${JSON.stringify(name)}`)
  if (seen.notGauge) warn(ctx, `this native histogram metric is not a gauge: ${JSON.stringify(name)}`)
  if (seen.conflictingResets) warn(ctx, `conflicting counter resets during histogram ${operation}`)
  if (seen.mixedFloats) warn(ctx, forMetric("encountered a mix of histograms and floats", name))
  if (seen.startTimeOverlap) warn(ctx, `sample has start time that overlaps with previous sample timestamp for metric ${JSON.stringify(name)}`)
}

// -------------------------------------------------------------------------------------------------
// Extended range selectors (experimental): `x[r] anchored`, `x[r] smoothed`
// -------------------------------------------------------------------------------------------------

const anchoredFunctions = ["changes", "delta", "increase", "rate", "resets"]
const smoothedFunctions = ["delta", "increase", "rate"]

/**
 * rate/increase/delta (and, anchored, changes/resets) over an extended window, without extrapolation:
 * - anchored: the window's samples after the newest sample at or before its start (within the lookback),
 *   which anchors it; at least one sample must be in the window;
 * - smoothed: from the value at the window's start to the value at its end, each interpolated between
 *   the samples around it (within the lookback either side); for counters, a reset between two samples
 *   interpolates from zero.
 * Counter resets in between count as for increase.
 */
const evalExtendedRange = (ctx: Ctx, name: string, sel: MatrixSelector) =>
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

/** Numbers read by index: an array, or a typed array's columns. `lo` and `hi` bound the part read. */
type Nums = ArrayLike<number>

const kahanSum = (xs: Nums, lo = 0, hi = xs.length) => {
  let sum = 0
  let c = 0
  for (let i = lo; i < hi; i++) {
    const x = xs[i]!
    const t = sum + x
    if (Math.abs(sum) >= Math.abs(x)) c += (sum - t) + x
    else c += (x - t) + sum
    sum = t
  }
  // Once the sum is infinite (or NaN) the compensation means nothing.
  return Number.isFinite(sum) ? sum + c : sum
}

/** Prometheus's rate/increase/delta with extrapolation to the window edges. */
const extrapolated = (isCounter: boolean, isRate: boolean): WindowFn => (ts, vs, lo, hi, t, rangeMs, _extra, _stepT, sts, seen) => {
  const count = hi - lo
  const stSt = isCounter && sts !== undefined ? startInWindow(sts[lo]!, t - rangeMs, ts[lo]!) : false
  if (count < 2 && !stSt) return undefined
  const firstV = vs[lo]!
  let result = vs[hi - 1]! - firstV
  if (isCounter) {
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

const quantile = (q: number, values: Array<number>): number => {
  if (values.length === 0) return Number.NaN
  if (Number.isNaN(q)) return Number.NaN
  if (q < 0) return Number.NEGATIVE_INFINITY
  if (q > 1) return Number.POSITIVE_INFINITY
  // Go's sort puts NaN first; so must we, for the same answers.
  const sorted = [...values].sort((a, b) => (Number.isNaN(a) ? (Number.isNaN(b) ? 0 : -1) : Number.isNaN(b) ? 1 : a - b))
  const n = sorted.length
  const rank = q * (n - 1)
  const lower = Math.max(0, Math.floor(rank))
  const upper = Math.min(n - 1, lower + 1)
  const weight = rank - Math.floor(rank)
  return sorted[lower]! * (1 - weight) + sorted[upper]! * weight
}

/**
 * The mean as Prometheus computes it: a compensated sum divided by the count while the sum stays finite;
 * once it would overflow, an incremental mean (mean = (n-1)/n * mean + x/n) that never leaves the range of
 * the inputs. With an infinity or NaN among the inputs, plain IEEE arithmetic decides (Inf, -Inf or NaN).
 */
const mean = (xs: Nums, lo = 0, hi = xs.length) => {
  const count = hi - lo
  let finite = true
  for (let i = lo; i < hi; i++) {
    if (!Number.isFinite(xs[i]!)) {
      finite = false
      break
    }
  }
  if (!finite) {
    let a = 0
    for (let i = lo; i < hi; i++) a += xs[i]!
    return a / count
  }
  const s = kahanSum(xs, lo, hi)
  if (Number.isFinite(s)) return s / count
  let m = 0
  let c = 0
  let n = 0
  for (let i = lo; i < hi; i++) {
    const x = xs[i]!
    n++
    const q = (n - 1) / n
    const base = q * m
    const add = x / n
    const t = base + add
    c = q * c + (Math.abs(base) >= Math.abs(add) ? (base - t) + add : (add - t) + base)
    m = t
  }
  return m + c
}

/** Population variance, Welford's way (as Prometheus): exactly 0 for equal values. */
const variance = (xs: Nums, lo = 0, hi = xs.length) => {
  let count = 0
  let m = 0
  let m2 = 0
  for (let i = lo; i < hi; i++) {
    const x = xs[i]!
    count++
    const delta = x - m
    m += delta / count
    m2 += delta * (x - m)
  }
  return m2 / count
}

const rangeFunctions: Record<string, RangeFunction> = {
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
  if (!(sf > 0 && sf < 1)) throw new QueryError("execution", `invalid smoothing factor. Expected: 0 < sf < 1, got: ${goFloat(sf)}`)
  if (!(tf > 0 && tf < 1)) throw new QueryError("execution", `invalid trend factor. Expected: 0 < tf < 1, got: ${goFloat(tf)}`)
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

/** Go's `%f`: six decimals. */
const goFloat = (v: number) => (Number.isFinite(v) ? v.toFixed(6) : Number.isNaN(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf")

// -------------------------------------------------------------------------------------------------
// Functions over instant vectors and scalars
// -------------------------------------------------------------------------------------------------

const mathFunctions: Record<string, (v: number) => number> = {
  abs: Math.abs,
  ceil: Math.ceil,
  floor: Math.floor,
  exp: Math.exp,
  sqrt: Math.sqrt,
  ln: Math.log,
  log2: Math.log2,
  log10: Math.log10,
  sgn: (v) => (v > 0 ? 1 : v < 0 ? -1 : v),
  sin: Math.sin,
  cos: Math.cos,
  tan: Math.tan,
  asin: Math.asin,
  acos: Math.acos,
  atan: Math.atan,
  sinh: Math.sinh,
  cosh: Math.cosh,
  tanh: Math.tanh,
  asinh: Math.asinh,
  acosh: Math.acosh,
  atanh: Math.atanh,
  deg: (v) => (v * 180) / Math.PI,
  rad: (v) => (v * Math.PI) / 180
}

const dateFunctions: Record<string, (d: Date) => number> = {
  minute: (d) => d.getUTCMinutes(),
  hour: (d) => d.getUTCHours(),
  day_of_week: (d) => d.getUTCDay(),
  day_of_month: (d) => d.getUTCDate(),
  day_of_year: (d) => {
    const start = Date.UTC(d.getUTCFullYear(), 0, 1)
    return Math.floor((d.getTime() - start) / 86_400_000) + 1
  },
  days_in_month: (d) => new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).getUTCDate(),
  month: (d) => d.getUTCMonth() + 1,
  year: (d) => d.getUTCFullYear()
}

const mapVector = (v: EvalValue, f: (x: number) => number, keepName = false): EvalValue => {
  if (v.kind !== "vector") fail("bad_data", "expected an instant vector")
  const series = (v as { series: Array<VSeries> }).series
  return {
    kind: "vector",
    // Float functions pass over native histograms (Prometheus drops them from the result).
    series: series.map((s) => ({ labels: s.labels, dropName: keepName ? s.dropName : true, values: s.values.map((x) => (typeof x === "number" ? f(x) : undefined)) }))
  }
}

const scalarOf = (v: EvalValue): Array<number> => {
  if (v.kind !== "scalar") fail("bad_data", "expected a scalar")
  return (v as { values: Array<number> }).values
}

const vectorOf = (v: EvalValue): Array<VSeries> => {
  if (v.kind !== "vector") fail("bad_data", "expected an instant vector")
  return (v as { series: Array<VSeries> }).series
}

const stringOf = (v: EvalValue): string => {
  if (v.kind !== "string") fail("bad_data", "expected a string")
  return (v as { value: string }).value
}

/** Go's `strconv.ParseFloat` of a label value (`+Inf`, `inf`, `NaN`, ...); NaN when it is not a number. */
const parseGoFloat = (text: string): number => {
  const t = text.trim()
  if (t === "" || t !== text) return Number.NaN
  if (/^[+-]?inf(inity)?$/i.test(t)) return t.startsWith("-") ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY
  if (/^nan$/i.test(t)) return Number.NaN
  return /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(t) || /^[+-]?0[xX]/.test(t) ? Number(t) : Number.NaN
}

/** Whether two counts are equal within Prometheus's tolerance for float imprecision (relative 1e-12). */
const nearlyEqual = (a: number, b: number) => a === b || Math.abs(a - b) <= 1e-12 * Math.max(Math.abs(a), Math.abs(b))

/** Whether a classic histogram's cumulative counts decrease somewhere (beyond float imprecision). */
const notMonotonic = (buckets: ReadonlyArray<{ le: number; count: number }>): boolean => {
  const sorted = [...buckets].sort((a, b) => a.le - b.le)
  let prev = sorted[0]?.count ?? 0
  for (let i = 1; i < sorted.length; i++) {
    const curr = sorted[i]!.count
    if (curr === prev || nearlyEqual(prev, curr)) continue
    if (curr < prev) return true
    prev = curr
  }
  return false
}

const histogramQuantile = (q: number, buckets: Array<{ le: number; count: number }>): number => {
  if (Number.isNaN(q)) return Number.NaN
  if (q < 0) return Number.NEGATIVE_INFINITY
  if (q > 1) return Number.POSITIVE_INFINITY
  buckets.sort((a, b) => a.le - b.le)
  if (buckets.length < 2 || buckets.at(-1)!.le !== Number.POSITIVE_INFINITY) return Number.NaN
  // Merge equal bounds, then force monotonic counts (as Prometheus does for float imprecision).
  const merged: Array<{ le: number; count: number }> = []
  for (const b of buckets) {
    const last = merged.at(-1)
    if (last !== undefined && last.le === b.le) last.count += b.count
    else merged.push({ ...b })
  }
  for (let i = 1; i < merged.length; i++) if (merged[i]!.count < merged[i - 1]!.count) merged[i]!.count = merged[i - 1]!.count
  const total = merged.at(-1)!.count
  if (total === 0 || Number.isNaN(total)) return Number.NaN
  const rank = q * total
  let b = merged.findIndex((x) => x.count >= rank)
  if (b === merged.length - 1) return merged[merged.length - 2]!.le
  if (b === 0 && merged[0]!.le <= 0) return merged[0]!.le
  let bucketStart = 0
  let bucketEnd = merged[b]!.le
  let count = merged[b]!.count
  let r = rank
  if (b > 0) {
    bucketStart = merged[b - 1]!.le
    count -= merged[b - 1]!.count
    r -= merged[b - 1]!.count
  }
  if (b < 0) b = 0
  return bucketStart + (bucketEnd - bucketStart) * (r / count)
}

/** The fraction of observations between lower and upper, from classic buckets (Prometheus's BucketFraction). */
const histogramFraction = (lower: number, upper: number, input: Array<{ le: number; count: number }>): number => {
  input.sort((a, b) => a.le - b.le)
  if (input.length === 0 || input.at(-1)!.le !== Number.POSITIVE_INFINITY) return Number.NaN
  const buckets: Array<{ le: number; count: number }> = []
  for (const b of input) {
    const last = buckets.at(-1)
    if (last !== undefined && last.le === b.le) last.count += b.count
    else buckets.push({ ...b })
  }
  for (let i = 1; i < buckets.length; i++) if (buckets[i]!.count < buckets[i - 1]!.count) buckets[i]!.count = buckets[i - 1]!.count
  const count = buckets.at(-1)!.count
  if (count === 0 || Number.isNaN(lower) || Number.isNaN(upper)) return Number.NaN
  if (lower >= upper) return 0
  // Each bucket contributes its observations in proportion to the part of it inside [lower, upper],
  // assuming they spread evenly; a bucket of infinite width contributes all of them when the range reaches
  // its unbounded end, and none otherwise.
  let observed = 0
  for (let i = 0; i < buckets.length; i++) {
    const hi = buckets[i]!.le
    // As for quantiles: the first bucket starts at zero when its upper bound is positive.
    const lo = i > 0 ? buckets[i - 1]!.le : hi > 0 ? 0 : Number.NEGATIVE_INFINITY
    const inBucket = buckets[i]!.count - (i > 0 ? buckets[i - 1]!.count : 0)
    if (upper <= lo || lower >= hi) continue
    if (lower <= lo && upper >= hi) observed += inBucket
    else if (Number.isFinite(lo) && Number.isFinite(hi)) {
      observed += inBucket * (Math.min(upper, hi) - Math.max(lower, lo)) / (hi - lo)
    } else if ((hi === Number.POSITIVE_INFINITY && upper === hi) || (lo === Number.NEGATIVE_INFINITY && lower === lo)) {
      observed += inBucket // the range is unbounded on the bucket's unbounded side
    }
  }
  return observed / count
}

const evalCall = (ctx: Ctx, call: Call): Effect.Effect<EvalValue, QueryError> =>
  Effect.gen(function*() {
    const name = call.func
    const ranged = rangeFunctions[name]
    if (ranged !== undefined) {
      const matrix = call.args.find((a) => a.type === "MatrixSelector" || (a.type === "Paren" && a.expr.type === "MatrixSelector"))
      const sel = matrix === undefined ? undefined : (matrix.type === "Paren" ? matrix.expr : matrix) as MatrixSelector
      if (sel !== undefined && (sel.vector.anchored === true || sel.vector.smoothed === true)) return yield* evalExtendedRange(ctx, name, sel)
    }
    if (ranged !== undefined) {
      const extra: Array<number> = []
      let rangeArg = call.args[0]!
      if (name === "quantile_over_time") {
        const q = scalarOf(yield* evaluate(ctx, call.args[0]!))[0] ?? Number.NaN
        invalidQuantile(ctx, q)
        extra.push(q)
        rangeArg = call.args[1]!
      }
      if (name === "predict_linear") extra.push(scalarOf(yield* evaluate(ctx, call.args[1]!))[0] ?? 0)
      if (name === "double_exponential_smoothing") {
        extra.push(scalarOf(yield* evaluate(ctx, call.args[1]!))[0] ?? Number.NaN, scalarOf(yield* evaluate(ctx, call.args[2]!))[0] ?? Number.NaN)
      }
      const input = yield* rangeInput(ctx, rangeArg)
      const series = overWindows(ctx, input, ranged, extra)
      if (name === "rate" || name === "increase") counterNameInfo(ctx, series)
      return { kind: "vector", series }
    }
    if (name === "absent_over_time") {
      const input = yield* rangeInput(ctx, call.args[0]!)
      const present = overWindows(ctx, input, rangeFunctions["present_over_time"]!, [])
      const sel = (call.args[0]!.type === "MatrixSelector" ? call.args[0]!.vector : undefined)
      return absentResult(ctx, present, sel?.matchers ?? [])
    }
    const math = mathFunctions[name]
    if (math !== undefined) return mapVector(yield* evaluate(ctx, call.args[0]!), math)
    const date = dateFunctions[name]
    if (date !== undefined) {
      if (call.args.length === 0) {
        return { kind: "vector", series: [{ labels: [], values: Array.from({ length: ctx.steps }, (_, i) => date(new Date(stepTime(ctx, i)))) }] }
      }
      return mapVector(yield* evaluate(ctx, call.args[0]!), (v) => date(new Date(v * 1000)))
    }
    switch (name) {
      case "time":
        return { kind: "scalar", values: Array.from({ length: ctx.steps }, (_, i) => stepTime(ctx, i) / 1000) }
      case "pi":
        return { kind: "scalar", values: new Array(ctx.steps).fill(Math.PI) }
      // The query's own bounds, in seconds (experimental, for duration expressions).
      case "start":
        return { kind: "scalar", values: new Array(ctx.steps).fill(ctx.start / 1000) }
      case "end":
        return { kind: "scalar", values: new Array(ctx.steps).fill(ctx.end / 1000) }
      case "range":
        return { kind: "scalar", values: new Array(ctx.steps).fill((ctx.end - ctx.start) / 1000) }
      case "step":
        return { kind: "scalar", values: new Array(ctx.steps).fill(ctx.step / 1000) }
      case "min_of":
      case "max_of": {
        const args: Array<ReadonlyArray<number>> = []
        for (const a of call.args) args.push(scalarOf(yield* evaluate(ctx, a)))
        const pick = name === "min_of" ? Math.min : Math.max
        return { kind: "scalar", values: Array.from({ length: ctx.steps }, (_, i) => pick(...args.map((v) => v[i]!))) }
      }
      case "vector": {
        const s = scalarOf(yield* evaluate(ctx, call.args[0]!))
        return { kind: "vector", series: [{ labels: [], values: [...s] }] }
      }
      case "scalar": {
        const v = vectorOf(yield* evaluate(ctx, call.args[0]!))
        return {
          kind: "scalar",
          values: Array.from({ length: ctx.steps }, (_, i) => {
            // Histograms do not count: one float sample (and any histograms) gives that float.
            const floats = v.filter((s) => typeof s.values[i] === "number")
            return floats.length === 1 ? (floats[0]!.values[i] as number) : Number.NaN
          })
        }
      }
      case "timestamp": {
        const arg = call.args[0]!
        let inner = arg
        while (inner.type === "Paren") inner = inner.expr
        if (inner.type === "VectorSelector") {
          // The timestamp of the sample itself, not the evaluation time.
          const { mint, maxt } = span(ctx, inner.at, inner.offsetMs, ctx.lookbackMs)
          const loaded = yield* load(ctx, inner.matchers, mint, maxt)
          const series: Array<VSeries> = []
          for (const s of loaded) {
            const values: Array<number | undefined> = new Array(ctx.steps)
            let any = false
            const ts = s.timestamps
            lookback(ctx, ts, s.values, inner.at, inner.offsetMs, (i, k) => {
              values[i] = ts[k]! / 1000
              any = true
            })
            if (any) series.push({ labels: s.labels, dropName: true, values })
          }
          return { kind: "vector", series }
        }
        const v = vectorOf(yield* evaluate(ctx, arg))
        return { kind: "vector", series: v.map((s) => ({ labels: s.labels, dropName: true, values: s.values.map((x, i) => (x === undefined ? undefined : stepTime(ctx, i) / 1000)) })) }
      }
      case "start_timestamp": {
        // Experimental: when each selected sample's counter started (seconds; 0 when not known). Only of a
        // selector's samples, and only with use-start-timestamps: of an expression, nothing.
        let inner = call.args[0]!
        while (inner.type === "Paren") inner = inner.expr
        if (!ctx.useStartTimestamps || inner.type !== "VectorSelector") {
          yield* evaluate(ctx, call.args[0]!)
          return { kind: "vector", series: [] }
        }
        const { mint, maxt } = span(ctx, inner.at, inner.offsetMs, ctx.lookbackMs)
        const series: Array<VSeries> = []
        for (const s of yield* load(ctx, inner.matchers, mint, maxt)) {
          const values: Array<number | undefined> = new Array(ctx.steps)
          let any = false
          const sts = s.startTimestamps
          lookback(ctx, s.timestamps, s.values, inner.at, inner.offsetMs, (i, k) => {
            values[i] = (sts?.[k] ?? 0) / 1000
            any = true
          })
          if (any) series.push({ labels: s.labels, dropName: true, values })
        }
        return { kind: "vector", series }
      }
      case "round": {
        const v = yield* evaluate(ctx, call.args[0]!)
        const to = call.args[1] === undefined ? new Array(ctx.steps).fill(1) : scalarOf(yield* evaluate(ctx, call.args[1]))
        const series = vectorOf(v)
        return {
          kind: "vector",
          series: series.map((s) => ({
            labels: s.labels,
            dropName: true,
            values: s.values.map((x, i) => {
              if (typeof x !== "number") return undefined
              const inv = 1 / to[i]!
              return Math.floor(x * inv + 0.5) / inv
            })
          }))
        }
      }
      case "clamp":
      case "clamp_min":
      case "clamp_max": {
        const series = vectorOf(yield* evaluate(ctx, call.args[0]!))
        const a = scalarOf(yield* evaluate(ctx, call.args[1]!))
        const b = name === "clamp" ? scalarOf(yield* evaluate(ctx, call.args[2]!)) : undefined
        const out: Array<VSeries> = []
        for (const s of series) {
          const values = s.values.map((x, i) => {
            if (typeof x !== "number") return undefined
            if (name === "clamp_min") return Number.isNaN(x) ? x : Math.max(x, a[i]!)
            if (name === "clamp_max") return Number.isNaN(x) ? x : Math.min(x, a[i]!)
            if (a[i]! > b![i]!) return undefined
            return Number.isNaN(x) ? x : Math.max(a[i]!, Math.min(b![i]!, x))
          })
          if (values.some((x) => x !== undefined)) out.push({ labels: s.labels, dropName: true, values })
        }
        return { kind: "vector", series: out }
      }
      case "absent": {
        const v = vectorOf(yield* evaluate(ctx, call.args[0]!))
        const arg = call.args[0]!
        return absentResult(ctx, v, arg.type === "VectorSelector" ? arg.matchers : [])
      }
      case "sort":
      case "sort_desc":
      case "sort_by_label":
      case "sort_by_label_desc":
        if (ctx.start !== ctx.end) warn(ctx, "sort is ineffective for range queries since results are always ordered by labels")
        return yield* evaluate(ctx, call.args[0]!)
      case "info":
        return yield* evalInfo(ctx, call)
      case "label_replace": {
        const [dst, replacement, src, regex] = [1, 2, 3, 4].map((i) => stringOf(call.args[i] === undefined ? { kind: "string", value: "" } : { kind: "string", value: (call.args[i] as { value: string }).value }))
        // As Prometheus: the regex is compiled first (Go RE2, `^(?s:regex)$`, linear-time matching), then
        // the destination is checked, then the vector is evaluated.
        let re: SubmatchRegex
        try {
          re = compileLabelReplace(regex!)
        } catch {
          return fail("bad_data", `invalid regular expression in label_replace(): ${regex}`) as never
        }
        if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(dst!)) fail("bad_data", `invalid destination label name in label_replace(): ${dst}`)
        const series = vectorOf(yield* evaluate(ctx, call.args[0]!))
        return {
          kind: "vector",
          series: checkUnique(series.map((s) => {
            const value = s.labels.find(([n]) => n === src)?.[1] ?? ""
            const m = re.exec(value)
            if (m === undefined) return s
            // Go's Regexp.Expand: `$1`, `${1}`, `$name`, `${name}`, `$$`; `$1x` is the (absent) group `1x`.
            const expanded = expand(replacement!, m)
            const labels = s.labels.filter(([n]) => n !== dst)
            // Writing the name keeps it: a name set by label_replace is not dropped later.
            const dropName = dst === "__name__" ? false : s.dropName
            return { labels: expanded === "" ? labels : sortLabelsLocal([...labels, [dst!, expanded]]), dropName, values: s.values }
          }))
        }
      }
      case "label_join": {
        const series = vectorOf(yield* evaluate(ctx, call.args[0]!))
        const dst = (call.args[1] as { value: string }).value
        const sep = (call.args[2] as { value: string }).value
        const srcs = call.args.slice(3).map((a) => (a as { value: string }).value)
        if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(dst)) fail("bad_data", `invalid destination label name in label_join(): ${dst}`)
        return {
          kind: "vector",
          series: checkUnique(series.map((s) => {
            const joined = srcs.map((n) => s.labels.find(([k]) => k === n)?.[1] ?? "").join(sep)
            const labels = s.labels.filter(([n]) => n !== dst)
            const dropName = dst === "__name__" ? false : s.dropName
            return { labels: joined === "" ? labels : sortLabelsLocal([...labels, [dst, joined]]), dropName, values: s.values }
          }))
        }
      }
      case "histogram_fraction":
      case "histogram_quantile": {
        const fraction = name === "histogram_fraction"
        const q = scalarOf(yield* evaluate(ctx, call.args[0]!))
        const upperArg = fraction ? scalarOf(yield* evaluate(ctx, call.args[1]!)) : undefined
        const series = vectorOf(yield* evaluate(ctx, call.args[fraction ? 2 : 1]!))
        if (!fraction) {
          for (const x of new Set(q)) invalidQuantile(ctx, x)
        }
        return { kind: "vector", series: bucketFunction(ctx, series, q, upperArg) }
      }
      case "histogram_quantiles": {
        // Experimental: one quantile per argument, each series labelled with it (`label`).
        const series = vectorOf(yield* evaluate(ctx, call.args[0]!))
        const label = stringOf(yield* evaluate(ctx, call.args[1]!))
        const out: Array<VSeries> = []
        for (const arg of call.args.slice(2)) {
          const q = scalarOf(yield* evaluate(ctx, arg))[0] ?? Number.NaN
          invalidQuantile(ctx, q)
          const text = formatG(q)
          const value = /^[+-]?\d+$/.test(text) ? `${text}.0` : text
          for (const s of bucketFunction(ctx, series, new Array(ctx.steps).fill(q), undefined)) {
            out.push({ labels: sortLabelsLocal([...s.labels.filter(([n]) => n !== label), [label, value]]), dropName: true, values: s.values })
          }
        }
        return { kind: "vector", series: checkUnique(out) }
      }
      case "histogram_count":
      case "histogram_sum":
      case "histogram_avg":
      case "histogram_stddev":
      case "histogram_stdvar": {
        const f = histogramFunctions[name]!
        const before = ctx.statsOnly
        // Only the count and sum are read (not stddev's buckets): Prometheus's stats iterator applies.
        if (name === "histogram_count" || name === "histogram_sum" || name === "histogram_avg") ctx.statsOnly = true
        const series = vectorOf(yield* evaluate(ctx, call.args[0]!))
        ctx.statsOnly = before
        const out: Array<VSeries> = []
        for (const s of series) {
          let any = false
          const values = s.values.map((x) => {
            if (x === undefined || typeof x === "number") return undefined
            any = true
            return f(x)
          })
          if (any) out.push({ labels: s.labels, dropName: true, values })
        }
        return { kind: "vector", series: out }
      }
      default:
        return fail("unsupported", `function ${name}() is not supported yet`) as never
    }
  })

/**
 * histogram_quantile (`upperArg` undefined: `q` is the quantile) or histogram_fraction (`q` the lower and
 * `upperArg` the upper bound), per step: of each native histogram, and of each group of classic buckets
 * (series with an `le` label, grouped by their other labels).
 */
const bucketFunction = (ctx: Ctx, series: ReadonlyArray<VSeries>, q: ReadonlyArray<number>, upperArg: ReadonlyArray<number> | undefined): Array<VSeries> => {
  const fraction = upperArg !== undefined
  const groups = new Map<string, { labels: Labels; members: Array<{ le: number; s: VSeries }> }>()
  // Two inputs with the same labels once the name is gone (e.g. `a_bucket` and `b_bucket`) collide.
  const seenInputs = new Set<string>()
  const out: Array<VSeries> = []
  /** The native histograms' results by their labels, to find classic buckets with the same labels. */
  const natived = new Map<string, Array<number | undefined>>()
  for (const s of series) {
    const inputKey = sigOf(dropName(s.labels))
    if (seenInputs.has(inputKey)) fail("execution", "vector cannot contain metrics with the same labelset")
    seenInputs.add(inputKey)
    // Native histograms: each on its own.
    let natives = false
    const nativeValues = s.values.map((x, i) => {
      if (x === undefined || typeof x === "number") return undefined
      natives = true
      const stat = fraction ? Stats.histogramFractionStat(q[i]!, upperArg![i]!, x) : Stats.histogramQuantile(q[i]!, x)
      if (stat.annotation !== undefined) ctx.notes.infos.add(Stats.annotationMessage(stat.annotation, metricName(s.labels)))
      return stat.value
    })
    if (natives) {
      out.push({ labels: s.labels, dropName: true, values: nativeValues })
      natived.set(inputKey, nativeValues)
    }
    if (!s.values.some((x) => typeof x === "number")) continue
    const leText = s.labels.find(([n]) => n === "le")?.[1]
    const le = leText === undefined ? Number.NaN : parseGoFloat(leText)
    if (Number.isNaN(le)) {
      warn(ctx, forMetric(`bucket label "le" is missing or has a malformed value of ${JSON.stringify(leText ?? "")}`, metricName(s.labels)))
      continue
    }
    const labels = dropName(s.labels.filter(([n]) => n !== "le"))
    const key = sigOf(labels)
    const g = groups.get(key) ?? { labels, members: [] }
    g.members.push({ le, s })
    groups.set(key, g)
  }
  for (const [key, g] of groups) {
    const native = natived.get(key)
    const name = metricName(g.members[0]!.s.labels)
    const values = Array.from({ length: ctx.steps }, (_, i) => {
      const buckets = g.members.flatMap((m) => {
        const count = m.s.values[i]
        return typeof count === "number" ? [{ le: m.le, count }] : []
      })
      if (buckets.length === 0) return undefined
      // Classic buckets and a native histogram of the same series: neither answers (Prometheus warns).
      if (native?.[i] !== undefined) {
        native[i] = undefined
        warn(ctx, forMetric("vector contains a mix of classic and native histograms", name))
        return undefined
      }
      if (!fraction && !Number.isNaN(q[i]!) && q[i]! >= 0 && q[i]! <= 1 && notMonotonic(buckets)) {
        inform(ctx, forMetric("input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile)", name))
      }
      return fraction ? histogramFraction(q[i]!, upperArg![i]!, buckets) : histogramQuantile(q[i]!, buckets)
    })
    if (values.some((v) => v !== undefined)) out.push({ labels: g.labels, values })
  }
  return out
}

/** The functions of one native histogram that give a float (float samples are passed over). */
const histogramFunctions: Record<string, (h: FloatHistogram) => number> = {
  histogram_count: Stats.histogramCount,
  histogram_sum: Stats.histogramSum,
  histogram_avg: Stats.histogramAvg,
  histogram_stddev: Stats.histogramStdDev,
  histogram_stdvar: Stats.histogramStdVar
}

// -------------------------------------------------------------------------------------------------
// info(): labels of info metrics joined onto series (experimental)
// -------------------------------------------------------------------------------------------------

/** The labels that say which target an info metric describes, as Prometheus joins them. */
const identifyingLabels = ["instance", "job"]

/**
 * `info(v, {selector})`: each series of `v` gains the data labels of the info series of its target (same
 * `instance` and `job`) at each step: those of `target_info` by default, of the info metrics the
 * selector's `__name__` matchers name otherwise (with only negative ones, among the `*_info` metrics), only
 * the data labels the selector has matchers for when it has any, never one the series has already. A
 * series with no info series at a step stays as it is if every data-label matcher accepts the empty
 * value, else is dropped at that step. Series that are themselves info metrics named by the selector are
 * left as they are.
 */
const evalInfo = (ctx: Ctx, call: Call): Effect.Effect<EvalValue, QueryError> =>
  Effect.gen(function*() {
    const base = vectorOf(yield* evaluate(ctx, call.args[0]!))
    const selector = call.args[1]
    const given = selector !== undefined && selector.type === "VectorSelector" ? selector.matchers : []
    const nameMatchers = given.filter((m) => m.name === "__name__")
    const dataMatchers = given.filter((m) => m.name !== "__name__")
    const positive = nameMatchers.some((m) => m.type === "=" || m.type === "=~")
    const infoNames: Array<Matcher> = nameMatchers.length === 0
      ? [{ name: "__name__", type: "=", value: "target_info" }]
      : positive
      ? nameMatchers
      : [{ name: "__name__", type: "=~", value: ".+_info" }, ...nameMatchers]
    const named = (labels: Labels) => {
      const name = labelValue(labels, "__name__")
      return infoNames.every((m) => matches(m, name))
    }
    // The info series with, at each step, the time of the sample the lookback finds (or none).
    const { mint, maxt } = span(ctx, undefined, 0, ctx.lookbackMs)
    /** Steps at which an info series has a histogram sample (info samples must be floats). */
    const histogramAt = new Set<number>()
    const infos = (yield* load(ctx, [...infoNames, ...dataMatchers], mint, maxt)).map((s) => {
      const times: Array<number | undefined> = new Array(ctx.steps)
      lookback(ctx, s.timestamps, s.values, undefined, 0, (i, k) => {
        times[i] = s.timestamps[k]!
        if (s.histograms?.[k] !== undefined) histogramAt.add(i)
      })
      return { labels: s.labels, name: labelValue(s.labels, "__name__"), times }
    })
    const signature = (labels: Labels) => identifyingLabels.map((l) => labelValue(labels, l)).join("\xff")
    const bySignature = new Map<string, Array<(typeof infos)[number]>>()
    for (const s of infos) {
      const key = signature(s.labels)
      const list = bySignature.get(key)
      if (list === undefined) bySignature.set(key, [s])
      else list.push(s)
    }
    const wanted = new Set(dataMatchers.map((m) => m.name))
    const emptyAccepted = dataMatchers.every((m) => matches(m, ""))
    const out = new Map<string, VSeries>()
    const put = (labels: Labels, dropName: boolean | undefined, i: number, v: SampleValue) => {
      const key = sigOf(labels)
      const o = out.get(key) ?? { labels, dropName, values: new Array(ctx.steps) }
      o.values[i] = v
      out.set(key, o)
    }
    for (const s of base) {
      const ignored = positive && named(s.labels)
      const candidates = ignored ? [] : bySignature.get(signature(s.labels)) ?? []
      for (let i = 0; i < ctx.steps; i++) {
        const v = s.values[i]
        if (v === undefined) continue
        if (histogramAt.has(i)) fail("execution", "info sample should be float")
        if (ignored) {
          put(s.labels, s.dropName, i, v)
          continue
        }
        // Of the series of one info metric, the one with the newest sample (an info series that changed
        // labels leaves the old one behind within the lookback).
        const newest = new Map<string, (typeof candidates)[number]>()
        for (const c of candidates) {
          const t = c.times[i]
          if (t === undefined) continue
          const best = newest.get(c.name)
          if (best === undefined || best.times[i]! < t) newest.set(c.name, c)
        }
        const present = [...newest.values()]
        if (present.length === 0) {
          if (emptyAccepted) put(s.labels, s.dropName, i, v)
          continue
        }
        const own = new Set(s.labels.map(([n]) => n))
        const added = new Map<string, string>()
        for (const info of present) {
          for (const [n, value] of info.labels) {
            if (n === "__name__" || identifyingLabels.includes(n) || own.has(n) || value === "") continue
            if (wanted.size > 0 && !wanted.has(n)) continue
            const earlier = added.get(n)
            if (earlier !== undefined && earlier !== value) fail("execution", `conflicting label: ${n} (from more than one info metric)`)
            added.set(n, value)
          }
        }
        put(added.size === 0 ? s.labels : sortLabelsLocal([...s.labels, ...added]), s.dropName, i, v)
      }
    }
    return { kind: "vector", series: [...out.values()] }
  })

const sortLabelsLocal = (labels: Array<readonly [string, string]>): Labels => labels.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))

const checkUnique = (series: Array<VSeries>): Array<VSeries> => {
  const seen = new Map<string, VSeries>()
  for (const s of series) {
    const key = sigOf(s.labels)
    const other = seen.get(key)
    if (other !== undefined) {
      for (let i = 0; i < s.values.length; i++) {
        if (s.values[i] !== undefined && other.values[i] !== undefined) fail("execution", "vector cannot contain metrics with the same labelset")
      }
      for (let i = 0; i < s.values.length; i++) if (other.values[i] === undefined) other.values[i] = s.values[i]
      continue
    }
    seen.set(key, s)
  }
  return [...seen.values()]
}

/** absent(): 1 at steps where the input is empty, with the labels of the selector's equality matchers. */
const absentResult = (ctx: Ctx, present: ReadonlyArray<VSeries>, matchers: ReadonlyArray<Matcher>): EvalValue => {
  const equalities = matchers.filter((m) => m.type === "=" && m.name !== "__name__")
  // A label with more than one matcher is ambiguous: Prometheus leaves it out.
  const labels = sortLabelsLocal(
    equalities.filter((m) => matchers.filter((o) => o.name === m.name).length === 1).map((m) => [m.name, m.value] as const)
  )
  const values = Array.from({ length: ctx.steps }, (_, i) => (present.some((s) => s.values[i] !== undefined) ? undefined : 1))
  return { kind: "vector", series: values.some((v) => v !== undefined) ? [{ labels, values }] : [] }
}

// -------------------------------------------------------------------------------------------------
// Aggregations
// -------------------------------------------------------------------------------------------------

// xxHash64 (seed 0) of a label set as Prometheus's `labels.Hash` feeds it (name, 0xff, value, 0xff, ...),
// for `limit_ratio` to pick the series Prometheus picks.
const mask64 = (1n << 64n) - 1n
const P1 = 11400714785074694791n
const P2 = 14029467366897019727n
const P3 = 1609587929392839161n
const P4 = 9650029242287828579n
const P5 = 2870177450012600261n
const rotl = (x: bigint, r: bigint) => ((x << r) | (x >> (64n - r))) & mask64
const xxRound = (acc: bigint, input: bigint) => (rotl((acc + input * P2) & mask64, 31n) * P1) & mask64
const xxMerge = (acc: bigint, v: bigint) => (((acc ^ xxRound(0n, v)) * P1) + P4) & mask64

export const xxhash64 = (b: Uint8Array): bigint => {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength)
  const n = b.length
  let i = 0
  let h: bigint
  if (n >= 32) {
    let v1 = (P1 + P2) & mask64
    let v2 = P2
    let v3 = 0n
    let v4 = (-P1) & mask64
    for (; i + 32 <= n; i += 32) {
      v1 = xxRound(v1, view.getBigUint64(i, true))
      v2 = xxRound(v2, view.getBigUint64(i + 8, true))
      v3 = xxRound(v3, view.getBigUint64(i + 16, true))
      v4 = xxRound(v4, view.getBigUint64(i + 24, true))
    }
    h = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & mask64
    h = xxMerge(xxMerge(xxMerge(xxMerge(h, v1), v2), v3), v4)
  } else h = P5
  h = (h + BigInt(n)) & mask64
  for (; i + 8 <= n; i += 8) {
    h ^= xxRound(0n, view.getBigUint64(i, true))
    h = ((rotl(h, 27n) * P1) + P4) & mask64
  }
  if (i + 4 <= n) {
    h ^= (BigInt(view.getUint32(i, true)) * P1) & mask64
    h = ((rotl(h, 23n) * P2) + P3) & mask64
    i += 4
  }
  for (; i < n; i++) {
    h ^= (BigInt(b[i]!) * P5) & mask64
    h = (rotl(h, 11n) * P1) & mask64
  }
  h ^= h >> 33n
  h = (h * P2) & mask64
  h ^= h >> 29n
  h = (h * P3) & mask64
  h ^= h >> 32n
  return h
}

const utf8 = new TextEncoder()
/** Where a label set's hash falls in [0, 1]: `float64(hash) / float64(MaxUint64)`. */
const labelsHashOffset = (labels: Labels): number => {
  const parts: Array<Uint8Array> = []
  for (const [name, value] of labels) parts.push(utf8.encode(name), Uint8Array.of(0xff), utf8.encode(value), Uint8Array.of(0xff))
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    bytes.set(p, at)
    at += p.length
  }
  return Number(xxhash64(bytes)) / 18446744073709551615
}

const groupLabels = (labels: Labels, grouping: ReadonlyArray<string>, without: boolean): Labels =>
  without ? labels.filter(([n]) => n !== "__name__" && !grouping.includes(n)) : labels.filter(([n]) => grouping.includes(n))

const evalAggregate = (ctx: Ctx, agg: Aggregate): Effect.Effect<EvalValue, QueryError> =>
  Effect.gen(function*() {
    const series = vectorOf(yield* evaluate(ctx, agg.expr))
    const param = agg.param === undefined ? undefined : yield* evaluate(ctx, agg.param)
    // A group drops its name (kept only by `by (__name__)`) when any of its members drops theirs.
    const groups = new Map<string, { labels: Labels; members: Array<VSeries>; dropName: boolean }>()
    for (const s of series) {
      const labels = groupLabels(s.labels, agg.grouping, agg.without)
      const key = sigOf(labels)
      const g = groups.get(key) ?? { labels, members: [], dropName: false }
      g.members.push(s)
      if (s.dropName === true) g.dropName = true
      groups.set(key, g)
    }
    const op = agg.op
    if (op === "limit_ratio") {
      // Each series is in or out by where the hash of its labels falls (Prometheus's `AddRatioSample`): a
      // ratio r in [0, 1] keeps those below r, a negative one those at or above 1 + r, so r and r - 1 split
      // the series between them.
      const r = scalarOf(param!)
      if (r.some((x) => Number.isNaN(x))) fail("execution", "Ratio value is NaN")
      for (const x of new Set(r)) {
        if (x < -1 || x > 1) warn(ctx, `ratio value should be between -1 and 1, got ${formatG(x)}, capping to ${x < -1 ? -1 : 1}`)
      }
      const out: Array<VSeries> = []
      for (const s of series) {
        const offset = labelsHashOffset(s.labels)
        const values = s.values.map((v, i) => {
          if (v === undefined) return undefined
          const ratio = Math.max(-1, Math.min(1, r[i]!))
          return (ratio >= 0 && offset < ratio) || (ratio < 0 && offset >= 1 + ratio) ? v : undefined
        })
        if (values.some((v) => v !== undefined)) out.push({ labels: s.labels, dropName: s.dropName, values })
      }
      return { kind: "vector", series: out }
    }
    if (op === "topk" || op === "bottomk" || op === "limitk") {
      const k = scalarOf(param!)
      if (k.some((x) => Number.isNaN(x))) fail("execution", "Parameter value is NaN")
      const out = new Map<string, VSeries>()
      for (const g of groups.values()) {
        for (let i = 0; i < ctx.steps; i++) {
          const kk = Math.floor(k[i]!)
          if (!(kk >= 1)) continue
          // limitk: the first k of the group, in the input's order; topk and bottomk pass over histograms.
          const present = g.members.filter((s) => (op === "limitk" ? s.values[i] !== undefined : typeof s.values[i] === "number"))
          if (op !== "limitk" && g.members.some((s) => s.values[i] !== undefined && typeof s.values[i] !== "number")) inform(ctx, `ignored histogram in ${op} aggregation`)
          if (op !== "limitk") present.sort((a, b) => {
            const x = a.values[i] as number
            const y = b.values[i] as number
            if (Number.isNaN(x)) return 1
            if (Number.isNaN(y)) return -1
            return op === "topk" ? y - x : x - y
          })
          for (const s of present.slice(0, kk)) {
            const key = sigOf(s.labels)
            const o = out.get(key) ?? { labels: s.labels, dropName: s.dropName, values: new Array(ctx.steps) }
            o.values[i] = s.values[i]
            out.set(key, o)
          }
        }
      }
      return { kind: "vector", series: [...out.values()] }
    }
    if (op === "count_values") {
      const label = stringOf(param!)
      if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(label)) fail("bad_data", `invalid label name ${goQuote(label)}`)
      const out = new Map<string, VSeries>()
      for (const g of groups.values()) {
        for (let i = 0; i < ctx.steps; i++) {
          for (const s of g.members) {
            const v = s.values[i]
            if (v === undefined) continue
            const text = typeof v === "number" ? formatValue(v) : histogramText(v)
            const labels = sortLabelsLocal([...g.labels.filter(([n]) => n !== label), [label, text]])
            const key = sigOf(labels)
            const o = out.get(key) ?? { labels, dropName: g.dropName, values: new Array(ctx.steps) }
            o.values[i] = (o.values[i] ?? 0) + 1
            out.set(key, o)
          }
        }
      }
      return { kind: "vector", series: [...out.values()] }
    }
    const q = op === "quantile" ? scalarOf(param!) : undefined
    if (q !== undefined && groups.size > 0) {
      for (const x of new Set(q)) invalidQuantile(ctx, x)
    }
    const seen = NH.newSeen()
    const out: Array<VSeries> = []
    /** The group's floats and histograms at one step (reused: the functions below only read them). */
    const xs: Array<number> = []
    const hs: Array<FloatHistogram> = []
    for (const g of groups.values()) {
      const values = Array.from({ length: ctx.steps }, (_, i): SampleValue | undefined => {
        xs.length = 0
        hs.length = 0
        for (const s of g.members) {
          const x = s.values[i]
          if (typeof x === "number") xs.push(x)
          else if (x !== undefined) hs.push(x)
        }
        if (xs.length === 0 && hs.length === 0) return undefined
        switch (op) {
          case "count":
            return xs.length + hs.length
          case "group":
            return 1
        }
        if (hs.length > 0 && (op === "sum" || op === "avg")) {
          // Floats and histograms do not add up: the group has no value at this step.
          if (xs.length > 0) {
            warn(ctx, "encountered a mix of histograms and floats for aggregation")
            return undefined
          }
          if (NH.conflictingResets(hs)) seen.conflictingResets = true
          return op === "sum" ? NH.sum(hs, true, seen) : NH.average(hs, true, seen)
        }
        // The other aggregations pass over histograms.
        if (hs.length > 0) inform(ctx, `ignored histogram in ${op} aggregation`)
        if (xs.length === 0) return undefined
        switch (op) {
          case "sum":
            return kahanSum(xs)
          case "avg":
            return mean(xs)
          case "min":
            return xs.reduce((m, x) => (Number.isNaN(m) || x < m ? x : m))
          case "max":
            return xs.reduce((m, x) => (Number.isNaN(m) || x > m ? x : m))
          case "stddev":
            return Math.sqrt(variance(xs))
          case "stdvar":
            return variance(xs)
          case "quantile":
            return quantile(q![i]!, xs)
          default:
            return fail("unsupported", `aggregation ${op} is not supported`) as never
        }
      })
      out.push({ labels: g.labels, dropName: g.dropName, values })
    }
    // Exponential and custom buckets in one sum: Prometheus names no metric.
    if (seen.mixedSchemas) {
      seen.mixedSchemas = false
      warn(ctx, `vector contains a mix of histograms with exponential and custom buckets schemas for metric name ""`)
    }
    reportSeen(ctx, seen, "", "aggregation")
    return { kind: "vector", series: out }
  })

/** A histogram as Prometheus's `FloatHistogram.String` prints it (count_values labels): non-empty buckets, ascending. */
const histogramText = (h: FloatHistogram): string => {
  const parts = [`count:${formatG(h.count)}`, `sum:${formatG(h.sum)}`]
  for (const b of allBuckets(h)) {
    if (b.count === 0) continue
    parts.push(`${b.lowerInclusive ? "[" : "("}${formatG(b.lower)},${formatG(b.upper)}${b.upperInclusive ? "]" : ")"}:${formatG(b.count, 21)}`)
  }
  return `{${parts.join(", ")}}`
}

/** A float as Prometheus prints it in labels (count_values) and strings. */
const formatValue = (v: number): string => {
  if (Number.isNaN(v)) return "NaN"
  if (v === Number.POSITIVE_INFINITY) return "+Inf"
  if (v === Number.NEGATIVE_INFINITY) return "-Inf"
  const s = String(v)
  return s.includes("e") ? s.replace(/e([+-])(\d)$/, "e$10$2") : s
}

// -------------------------------------------------------------------------------------------------
// Binary operators
// -------------------------------------------------------------------------------------------------

const arith = (op: string, a: number, b: number): number => {
  switch (op) {
    case "+":
      return a + b
    case "-":
      return a - b
    case "*":
      return a * b
    case "/":
      return a / b
    case "%":
      return b === 0 ? Number.NaN : a % b
    case "^":
      return Math.pow(a, b)
    case "atan2":
      return Math.atan2(a, b)
  }
  return Number.NaN
}

const comparison = new Set(["==", "!=", ">", "<", ">=", "<="])

/** The histogram trim operators: `</` keeps the observations below a value, `>/` those above. */
const isTrim = (op: string) => op === "</" || op === ">/"

/**
 * A binary operator where a native histogram (or a trim operator) is involved, as Prometheus's
 * `vectorElemBinop`: `h * x`, `x * h`, `h / x`, `h + h`, `h - h` (a gauge), `h == h`, `h != h` (keeping
 * the left; undefined when they differ), `h </ x`, `h >/ x`; null for every other combination (the
 * element dropped, even with `bool`), with Prometheus's annotation.
 */
const elementBinop = (ctx: Ctx, op: string, a: SampleValue, b: SampleValue): SampleValue | undefined | null => {
  const incompatible = () => {
    const type = (x: SampleValue) => (typeof x === "number" ? "float" : "histogram")
    inform(ctx, `incompatible sample types encountered for binary operator ${JSON.stringify(op)}: ${type(a)} ${op} ${type(b)}`)
    return null
  }
  if (typeof a === "number") {
    return typeof b !== "number" && op === "*" ? b.copy().mul(a).compact(0) : incompatible()
  }
  if (typeof b === "number") {
    switch (op) {
      case "*":
        return a.copy().mul(b).compact(0)
      case "/":
        return a.copy().div(b).compact(0)
      case "</":
        return a.copy().trimBuckets(b, true)
      case ">/":
        return a.copy().trimBuckets(b, false)
    }
    return incompatible()
  }
  switch (op) {
    case "+":
    case "-": {
      const r = a.copy()
      const operation = op === "+" ? "addition" : "subtraction"
      let collision = false
      const seen = NH.newSeen()
      if (!NH.tryCombine(() => {
        const info = op === "+" ? r.add(b) : r.sub(b)
        collision = info.counterResetCollision
        return info
      }, seen)) {
        warn(ctx, `incompatible bucket layout encountered for binary operator ${op}`)
        return null
      }
      if (seen.reconciled) inform(ctx, `mismatched custom buckets were reconciled during ${operation}`)
      if (collision) {
        // As Prometheus: a warning, and the element is not kept.
        warn(ctx, `conflicting counter resets during histogram ${operation}`)
        return null
      }
      if (op === "-") r.counterResetHint = "gauge"
      return r.compact(0)
    }
    case "==":
      return a.equals(b) ? a : undefined
    case "!=":
      return a.equals(b) ? undefined : a
  }
  return incompatible()
}
const compare = (op: string, a: number, b: number): boolean => {
  switch (op) {
    case "==":
      return a === b
    case "!=":
      return a !== b
    case ">":
      return a > b
    case "<":
      return a < b
    case ">=":
      return a >= b
    case "<=":
      return a <= b
  }
  return false
}

/** The labels a series matches on: those of `on(...)`, or all but the name and those of `ignoring(...)`. */
const matchLabels = (labels: Labels, on: boolean, names: ReadonlyArray<string>): Labels =>
  on ? labels.filter(([n]) => names.includes(n)) : labels.filter(([n]) => n !== "__name__" && !names.includes(n))
const matchSig = (labels: Labels, on: boolean, names: ReadonlyArray<string>) => sigOf(matchLabels(labels, on, names))

const evalBinary = (ctx: Ctx, node: Binary): Effect.Effect<EvalValue, QueryError> =>
  Effect.gen(function*() {
    const lhs = yield* evaluate(ctx, node.lhs)
    const rhs = yield* evaluate(ctx, node.rhs)
    const op = node.op
    const isCmp = comparison.has(op)
    const trim = isTrim(op)
    if (lhs.kind === "scalar" && rhs.kind === "scalar") {
      return {
        kind: "scalar",
        values: lhs.values.map((a, i) => {
          const b = rhs.values[i]!
          return isCmp ? (compare(op, a, b) ? 1 : 0) : arith(op, a, b)
        })
      }
    }
    if (lhs.kind === "vector" && rhs.kind === "scalar" || lhs.kind === "scalar" && rhs.kind === "vector") {
      const vecLeft = lhs.kind === "vector"
      const vec = (vecLeft ? lhs : rhs) as { series: Array<VSeries> }
      const sc = (vecLeft ? rhs : lhs) as { values: Array<number> }
      const out: Array<VSeries> = []
      for (const s of vec.series) {
        const values = s.values.map((x, i): SampleValue | undefined => {
          if (x === undefined) return undefined
          if (typeof x !== "number" || trim) {
            const r = elementBinop(ctx, op, vecLeft ? x : sc.values[i]!, vecLeft ? sc.values[i]! : x)
            if (r === null) return undefined
            if (node.bool) return r === undefined ? 0 : 1
            return r === undefined ? undefined : isCmp ? x : r
          }
          const a = vecLeft ? x : sc.values[i]!
          const b = vecLeft ? sc.values[i]! : x
          if (isCmp) {
            const ok = compare(op, a, b)
            if (node.bool) return ok ? 1 : 0
            return ok ? x : undefined
          }
          return arith(op, a, b)
        })
        if (values.some((v) => v !== undefined)) {
          // Filtering comparisons and the trim operators keep the metric name.
          out.push({ labels: s.labels, dropName: (isCmp && !node.bool) || isTrim(op) ? s.dropName : true, values })
        }
      }
      return { kind: "vector", series: out }
    }
    if (lhs.kind !== "vector" || rhs.kind !== "vector") return fail("bad_data", `binary expression must contain only scalar and instant vector types`) as never
    const matching = node.matching ?? { card: op === "and" || op === "or" || op === "unless" ? "many-to-many" : "one-to-one", on: false, labels: [], include: [] }
    const names = matching.labels
    if (op === "and" || op === "or" || op === "unless") {
      const out: Array<VSeries> = []
      for (let i = 0; i < 1; i++) {
        // Per step: which signatures the right side has.
        const rightSigs: Array<Set<string>> = Array.from({ length: ctx.steps }, () => new Set())
        for (const s of rhs.series) {
          const sig = matchSig(s.labels, matching.on, names)
          s.values.forEach((v, j) => {
            if (v !== undefined) rightSigs[j]!.add(sig)
          })
        }
        if (op === "or") {
          const leftSigs: Array<Set<string>> = Array.from({ length: ctx.steps }, () => new Set())
          for (const s of lhs.series) {
            const sig = matchSig(s.labels, matching.on, names)
            s.values.forEach((v, j) => {
              if (v !== undefined) leftSigs[j]!.add(sig)
            })
            out.push(s)
          }
          for (const s of rhs.series) {
            const sig = matchSig(s.labels, matching.on, names)
            const values = s.values.map((v, j) => (v !== undefined && !leftSigs[j]!.has(sig) ? v : undefined))
            if (values.some((v) => v !== undefined)) out.push({ labels: s.labels, dropName: s.dropName, values })
          }
          return { kind: "vector", series: mergeSameLabels(out) }
        }
        for (const s of lhs.series) {
          const sig = matchSig(s.labels, matching.on, names)
          const values = s.values.map((v, j) => {
            if (v === undefined) return undefined
            const has = rightSigs[j]!.has(sig)
            return (op === "and" ? has : !has) ? v : undefined
          })
          if (values.some((v) => v !== undefined)) out.push({ labels: s.labels, dropName: s.dropName, values })
        }
      }
      return { kind: "vector", series: out }
    }
    // Arithmetic and comparison between vectors, per step, by matching signature.
    const oneSide = matching.card === "one-to-many" ? lhs.series : rhs.series
    const manySide = matching.card === "one-to-many" ? rhs.series : lhs.series
    const manyIsLeft = matching.card !== "one-to-many"
    const out = new Map<string, VSeries>()
    // Signatures do not change from step to step.
    const oneSigs = oneSide.map((s) => matchSig(s.labels, matching.on, names))
    const manySigs = manySide.map((s) => matchSig(s.labels, matching.on, names))
    /** By many-side series: its result's labels (and their key) with each one-side series it matched. */
    const resultOf: Array<Map<VSeries | undefined, { readonly labels: Labels; readonly key: string }> | undefined> = new Array(manySide.length)
    // Fill modifiers (experimental): the value a missing match takes. `fill_right` fills the "one" side
    // (the right, or the left of a group_right), `fill_left` the "many" side, as Prometheus swaps the sides
    // of a group_right.
    const oneFill = matching.fillRight
    const manyFill = matching.fillLeft
    /** The operator on a many-side value `x` and a one-side value `y`: a comparison without bool keeps the left. */
    const apply = (x: SampleValue, y: SampleValue): SampleValue | undefined => {
      const a = manyIsLeft ? x : y
      const b = manyIsLeft ? y : x
      if (typeof a !== "number" || typeof b !== "number" || trim) {
        const r = elementBinop(ctx, op, a, b)
        if (r === null) return undefined
        if (node.bool) return r === undefined ? 0 : 1
        return r
      }
      if (!isCmp) return arith(op, a, b)
      const ok = compare(op, a, b)
      return node.bool ? (ok ? 1 : 0) : ok ? a : undefined
    }
    /** Results of one-side series no many-side series matched (filled), by one-side series. */
    const filledOf = new Map<VSeries, { readonly labels: Labels; readonly key: string }>()
    for (let i = 0; i < ctx.steps; i++) {
      const ones = new Map<string, VSeries>()
      for (const [k, s] of oneSide.entries()) {
        if (s.values[i] === undefined) continue
        const sig = oneSigs[k]!
        if (ones.has(sig)) {
          fail(
            "execution",
            matching.card === "one-to-one"
              ? "found duplicate series for the match group on the right hand-side of the operation: many-to-many matching not allowed: matching labels must be unique on one side"
              : "found duplicate series for the match group, many-to-many matching not allowed: matching labels must be unique on one side"
          )
        }
        ones.set(sig, s)
      }
      const seenMany = new Set<string>()
      const matched = new Set<string>()
      for (const [k, s] of manySide.entries()) {
        const x = s.values[i]
        if (x === undefined) continue
        const sig = manySigs[k]!
        const other = ones.get(sig)
        if (other === undefined && oneFill === undefined) continue
        matched.add(sig)
        if (matching.card === "one-to-one") {
          if (seenMany.has(sig)) {
            fail("execution", "found duplicate series for the match group on the left hand-side of the operation: many-to-many matching not allowed: matching labels must be unique on one side")
          }
          seenMany.add(sig)
        }
        const value = apply(x, other === undefined ? oneFill! : other.values[i]!)
        if (value === undefined) continue
        // The result's labels: a function of the pair, worked out once for it.
        const filter = isCmp && !node.bool
        const pairs = resultOf[k] ?? (resultOf[k] = new Map())
        let result = pairs.get(other)
        if (result === undefined) {
          let labels: Labels
          if (matching.card === "one-to-one") {
            labels = filter ? s.labels : matching.on ? s.labels.filter(([n]) => names.includes(n)) : s.labels.filter(([n]) => !names.includes(n))
          } else {
            // A filled "one" side has no labels to copy.
            const copied = matching.include.map((n) => [n, other?.labels.find(([k]) => k === n)?.[1] ?? ""] as const)
            labels = sortLabelsLocal([...s.labels.filter(([n]) => !matching.include.includes(n)), ...copied.filter(([, v]) => v !== "")])
          }
          result = { labels, key: sigOf(labels) }
          pairs.set(other, result)
        }
        const { labels, key } = result
        const o = out.get(key) ?? { labels, dropName: filter ? s.dropName : true, values: new Array(ctx.steps) }
        if (o.values[i] !== undefined) fail("execution", "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)")
        o.values[i] = value
        out.set(key, o)
      }
      if (manyFill === undefined) continue
      // One-side series no many-side series matched: against the filled value, labelled by their match group.
      for (const [sig, one] of ones) {
        if (matched.has(sig)) continue
        const value = apply(manyFill, one.values[i]!)
        if (value === undefined) continue
        let result = filledOf.get(one)
        if (result === undefined) {
          const labels = matchLabels(one.labels, matching.on, names)
          result = { labels, key: sigOf(labels) }
          filledOf.set(one, result)
        }
        const o = out.get(result.key) ?? { labels: result.labels, dropName: true, values: new Array(ctx.steps) }
        if (o.values[i] !== undefined) fail("execution", "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)")
        o.values[i] = value
        out.set(result.key, o)
      }
    }
    return { kind: "vector", series: [...out.values()] }
  })

const mergeSameLabels = (series: Array<VSeries>): Array<VSeries> => {
  const seen = new Map<string, VSeries>()
  for (const s of series) {
    const key = sigOf(s.labels)
    const o = seen.get(key)
    if (o === undefined) seen.set(key, { labels: s.labels, dropName: s.dropName, values: [...s.values] })
    else s.values.forEach((v, i) => {
      if (o.values[i] === undefined) o.values[i] = v
    })
  }
  return [...seen.values()]
}

// -------------------------------------------------------------------------------------------------
// The evaluator
// -------------------------------------------------------------------------------------------------

const evaluate = (ctx: Ctx, node: Expr): Effect.Effect<EvalValue, QueryError> =>
  Effect.suspend((): Effect.Effect<EvalValue, QueryError> => {
    switch (node.type) {
      case "NumberLiteral":
        return Effect.succeed({ kind: "scalar", values: new Array(ctx.steps).fill(node.value) })
      case "StringLiteral":
        return Effect.succeed({ kind: "string", value: node.value })
      case "Paren":
        return evaluate(ctx, node.expr)
      case "Unary":
        return Effect.map(evaluate(ctx, node.expr), (v) => {
          if (node.op === "+") return v
          if (v.kind === "scalar") return { kind: "scalar", values: v.values.map((x) => -x) }
          return {
            kind: "vector",
            series: vectorOf(v).map((s) => ({
              labels: s.labels,
              dropName: true,
              values: s.values.map((x) => (x === undefined ? undefined : typeof x === "number" ? -x : x.copy().mul(-1)))
            }))
          }
        })
      case "VectorSelector":
        return evalVectorSelector(ctx, node)
      case "MatrixSelector":
      case "Subquery":
        return Effect.map(rangeInput(ctx, node), (input) => {
          // The window (t - range, t] at the (only) step.
          const t = input.timeAt(0)
          const series: Array<MSeries> = []
          const inWindow = (ts: Float64Array) => {
            let lo = 0
            while (lo < ts.length && ts[lo]! <= t - input.rangeMs) lo++
            let hi = lo
            while (hi < ts.length && ts[hi]! <= t) hi++
            return [lo, hi] as const
          }
          for (const s of input.series) {
            const [lo, hi] = inWindow(s.ts)
            const [hlo, hhi] = s.hts === undefined ? [0, 0] : inWindow(s.hts)
            if (hi <= lo && hhi <= hlo) continue
            const m: MSeries = { labels: s.labels, dropName: s.dropName, ts: s.ts.subarray(lo, hi), vs: s.vs.subarray(lo, hi) }
            if (hhi > hlo) {
              m.hts = s.hts!.subarray(hlo, hhi)
              m.hs = s.hs!.slice(hlo, hhi)
            }
            series.push(m)
          }
          return { kind: "matrix", series, rangeMs: input.rangeMs }
        })
      case "Call":
        return evalCall(ctx, node)
      case "Aggregate":
        return evalAggregate(ctx, node)
      case "Binary":
        return evalBinary(ctx, node)
    }
  }).pipe(
    Effect.catchDefect((d) => (d instanceof QueryError ? Effect.fail(d) : Effect.die(d)))
  )

/** What each experimental feature a query may use is called where an error names it. */
const featureUses: Record<PromqlFeature, string> = {
  "promql-experimental-functions": "experimental functions",
  "promql-duration-expr": "duration expressions",
  "promql-extended-range-selectors": "the anchored and smoothed modifiers",
  "promql-binop-fill-modifiers": "the fill modifiers",
  "use-start-timestamps": "start timestamps"
}

/** The experimental features a parsed query uses. */
const featuresOf = (expr: Expr, durationExpressions: boolean): Set<PromqlFeature> => {
  const used = new Set<PromqlFeature>()
  if (durationExpressions) used.add("promql-duration-expr")
  const walk = (e: Expr | undefined): void => {
    if (e === undefined) return
    switch (e.type) {
      case "VectorSelector":
        if (e.anchored === true || e.smoothed === true) used.add("promql-extended-range-selectors")
        return
      case "MatrixSelector":
        return walk(e.vector)
      case "Subquery":
      case "Unary":
      case "Paren":
        return walk(e.expr)
      case "Call":
        if (functions.get(e.func)?.experimental === true) used.add("promql-experimental-functions")
        return e.args.forEach(walk)
      case "Aggregate":
        if (e.op === "limitk" || e.op === "limit_ratio") used.add("promql-experimental-functions")
        walk(e.expr)
        return walk(e.param)
      case "Binary":
        if (e.matching?.fillLeft !== undefined || e.matching?.fillRight !== undefined) used.add("promql-binop-fill-modifiers")
        walk(e.lhs)
        return walk(e.rhs)
      default:
        return
    }
  }
  walk(expr)
  return used
}

/** Parses a query and refuses the experimental features it uses that are not switched on. */
const parseQuery = (query: string, options: QueryOptions | undefined) =>
  Effect.try({
    try: () => {
      const { durationExpressions, expr } = parseWithDurations(query)
      const enabled = new Set(options?.features ?? [])
      for (const feature of featuresOf(expr, durationExpressions)) {
        if (!enabled.has(feature)) throw new QueryError("bad_data", `${featureUses[feature]} are not enabled: switch on ${feature} (as Prometheus's --enable-feature)`)
      }
      return expr
    },
    catch: (e) => (e instanceof ParseError ? new QueryError("bad_data", e.message) : e instanceof QueryError ? e : new QueryError("bad_data", String(e)))
  })

/** The query's duration expressions that use `step()` or `range()`, evaluated for this query. */
const withDurations = (expr: Expr, stepMs: number, rangeMs: number) =>
  Effect.try({
    try: () => resolveDurations(expr, { stepMs, rangeMs }),
    catch: (e) => (e instanceof ParseError ? new QueryError("bad_data", e.message) : e instanceof QueryError ? e : new QueryError("bad_data", String(e)))
  })

const makeCtx = (source: SeriesSource, start: number, end: number, step: number, options: QueryOptions | undefined): Ctx => ({
  start,
  end,
  queryStart: start,
  queryEnd: end,
  step,
  steps: step === 0 ? 1 : Math.floor((end - start) / step) + 1,
  lookbackMs: options?.lookbackMs ?? defaultLookbackMs,
  source,
  samples: 0,
  samplesMax: options?.samplesMax ?? Limits.querySamplesMax,
  notes: { warnings: new Set(), infos: new Set() },
  statsOnly: false,
  useStartTimestamps: options?.features?.includes("use-start-timestamps") === true
})

/** The value with the query's annotations, if it has any. */
const annotated = (ctx: Ctx, value: Value): Value =>
  ctx.notes.warnings.size + ctx.notes.infos.size === 0 ? value : { ...value, annotations: { warnings: [...ctx.notes.warnings], infos: [...ctx.notes.infos] } }

/** Evaluates a query at one time. */
export const instantQuery = (source: SeriesSource, query: string, timeMs: number, options?: QueryOptions): Effect.Effect<Value, QueryError> =>
  asQueryError(Effect.gen(function*() {
    const expr = yield* withDurations(yield* parseQuery(query, options), 0, 0)
    const ctx = makeCtx(source, timeMs, timeMs, 0, options)
    const v = yield* evaluate(ctx, expr)
    switch (v.kind) {
      case "scalar":
        return annotated(ctx, { type: "scalar", t: timeMs, v: v.values[0]! })
      case "string":
        return annotated(ctx, { type: "string", t: timeMs, v: v.value })
      case "matrix": {
        const series = v.series.map((s) => ({ labels: outputLabels(s), samples: matrixPoints(s) }))
        assertUnique(series.map((s) => s.labels))
        return annotated(ctx, { type: "matrix", series })
      }
      case "vector": {
        const samples = v.series.flatMap((s) => (s.values[0] === undefined ? [] : [{ labels: outputLabels(s), t: timeMs, ...pointValue(s.values[0]) }]))
        assertUnique(samples.map((s) => s.labels))
        const sorted = isSorting(expr) ? sortForFunction(expr, samples) : samples
        return annotated(ctx, { type: "vector", samples: sorted })
      }
    }
  }))

/** Evaluates a query at every step from start to end (inclusive). */
export const rangeQuery = (
  source: SeriesSource,
  query: string,
  startMs: number,
  endMs: number,
  stepMs: number,
  options?: QueryOptions
): Effect.Effect<Value, QueryError> =>
  asQueryError(Effect.gen(function*() {
    if (!(stepMs > 0)) return yield* Effect.fail(new QueryError("bad_data", "zero or negative query resolution step widths are not accepted. Try a positive integer"))
    if (endMs < startMs) return yield* Effect.fail(new QueryError("bad_data", "end timestamp must not be before start time"))
    const expr = yield* withDurations(yield* parseQuery(query, options), stepMs, endMs - startMs)
    const ctx = makeCtx(source, startMs, endMs, stepMs, options)
    const v = yield* evaluate(ctx, expr)
    switch (v.kind) {
      case "scalar":
        return annotated(ctx, { type: "matrix", series: [{ labels: [], samples: v.values.map((x, i) => ({ t: stepTime(ctx, i), v: x })) }] })
      case "vector": {
        // Series that share labels (their names dropped) merge when no step holds two values.
        const series = checkUnique(v.series.map((s) => ({ labels: outputLabels(s), values: [...s.values] }))).map((s) => ({
          labels: s.labels,
          samples: s.values.flatMap((x, i): Array<Point> => (x === undefined ? [] : [{ t: stepTime(ctx, i), ...pointValue(x) }]))
        })).filter((s) => s.samples.length > 0)
        // Prometheus sorts a range result by labels.
        series.sort((a, b) => compareLabels(a.labels, b.labels))
        return annotated(ctx, { type: "matrix", series })
      }
      default:
        return yield* Effect.fail(new QueryError("bad_data", `invalid expression type "${v.kind === "matrix" ? "range vector" : "string"}" for range query, must be Scalar or instant Vector`))
    }
  }))

/** A sample's value as a result point carries it. */
const pointValue = (x: SampleValue): { v: number; h?: FloatHistogram } => (typeof x === "number" ? { v: x } : { v: 0, h: x })

/** A range series' points, floats and histograms merged by time. */
const matrixPoints = (s: MSeries): Array<Point> => {
  const points = Array.from(s.ts, (t, i): Point => ({ t, v: s.vs[i]! }))
  if (s.hts === undefined || s.hs === undefined) return points
  for (let j = 0; j < s.hts.length; j++) points.push({ t: s.hts[j]!, v: 0, h: s.hs[j]! })
  return points.sort((a, b) => a.t - b.t)
}

/** A QueryError thrown anywhere in evaluation is a failure, not a defect. */
const asQueryError = <A>(self: Effect.Effect<A, QueryError>): Effect.Effect<A, QueryError> =>
  Effect.catchDefect(self, (d) => (d instanceof QueryError ? Effect.fail(d) : Effect.die(d)))

const compareLabels = (a: Labels, b: Labels): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const [an, av] = a[i]!
    const [bn, bv] = b[i]!
    if (an !== bn) return an < bn ? -1 : 1
    if (av !== bv) return av < bv ? -1 : 1
  }
  return a.length - b.length
}

const assertUnique = (labelSets: ReadonlyArray<Labels>) => {
  const seen = new Set<string>()
  for (const l of labelSets) {
    const key = sigOf(l)
    if (seen.has(key)) throw new QueryError("execution", "vector cannot contain metrics with the same labelset")
    seen.add(key)
  }
}

const sortingFunctions = new Set(["sort", "sort_desc", "sort_by_label", "sort_by_label_desc"])
const isSorting = (expr: Expr): boolean => expr.type === "Call" && sortingFunctions.has(expr.func)

/** Whether `a` sorts before `b` in natural order (runs of digits compared as numbers), as Go's `natsort.Compare`. */
const naturalLess = (a: string, b: string): boolean => {
  const chunksA = a.match(/\d+|\D+/g) ?? []
  const chunksB = b.match(/\d+|\D+/g) ?? []
  for (let i = 0; i < chunksA.length; i++) {
    if (i >= chunksB.length) return false
    const x = chunksA[i]!
    const y = chunksB[i]!
    const numeric = /^\d+$/.test(x) && /^\d+$/.test(y)
    if (numeric ? Number(x) === Number(y) : x === y) {
      if (i === chunksA.length - 1) return true
      if (i === chunksB.length - 1) return false
      continue
    }
    return numeric ? Number(x) < Number(y) : x < y
  }
  return false
}

const sortForFunction = (expr: Expr, samples: Array<InstantSample>): Array<InstantSample> => {
  const call = expr as Call
  if (call.func === "sort_by_label" || call.func === "sort_by_label_desc") {
    const names = call.args.slice(1).map((a) => (a as { value: string }).value)
    const sign = call.func === "sort_by_label_desc" ? -1 : 1
    return [...samples].sort((a, b) => {
      for (const name of names) {
        const x = labelValue(a.labels, name)
        const y = labelValue(b.labels, name)
        if (x === y) continue
        return sign * (naturalLess(x, y) ? -1 : 1)
      }
      return sign * compareLabels(a.labels, b.labels)
    })
  }
  const desc = call.func === "sort_desc"
  // sort and sort_desc pass over histograms.
  return samples.filter((s) => s.h === undefined).sort((a, b) => {
    if (Number.isNaN(a.v)) return 1
    if (Number.isNaN(b.v)) return -1
    return desc ? b.v - a.v : a.v - b.v
  })
}

export type { Call }
