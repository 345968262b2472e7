/**
 * Selectors and subqueries. A selector's series are loaded once for the whole query (counted against its
 * sample limit) and walked with cursors: an instant selector takes at each step the newest sample in
 * (t - lookback, t], a stale marker hiding the series (`x smoothed`, experimental: the value interpolated
 * between the samples around t); a range selector or a subquery gives each series' samples without its
 * stale markers, floats and native histograms in columns of their own, for the range functions to window
 * (rangeFunctions.ts). Times are evaluation times: after `@` and `offset`.
 */
import { Effect } from "effect"
import type { Labels, Matcher } from "../internal/labels.ts"
import { matchesAll } from "../internal/labels.ts"
import type { SelectedSeries } from "../SeriesSource.ts"
import { SamplesLimitExceeded } from "../SeriesSource.ts"
import type { AtModifier, Expr, MatrixSelector, Subquery, VectorSelector } from "./ast.ts"
import type { FloatHistogram } from "./histogram.ts"
import * as NH from "./nativeHistograms.ts"
import { isStaleNaN, QueryError } from "./types.ts"
import type { Ctx, EvalValue, MSeries, SampleValue, VSeries } from "./evalContext.ts"
import { evaluate, evalTime, fail, metricName, reportSeen, stepTime } from "./evalContext.ts"

const tooManySamples = (ctx: Ctx) =>
  new QueryError({ kind: "execution", message: `query processing would load too many samples into memory (more than ${ctx.samplesMax})` })

/** The series a selector reads over [mint, maxt], counted against the query's sample limit. */
export const load = (ctx: Ctx, matchers: ReadonlyArray<Matcher>, mint: number, maxt: number) =>
  Effect.gen(function*() {
    const selected = yield* Effect.mapError(
      ctx.source.select(matchers, mint, maxt, { samplesMax: Math.max(0, ctx.samplesMax - ctx.samples) }),
      (e) => (e instanceof SamplesLimitExceeded ? tooManySamples(ctx) : new QueryError({ kind: "execution", message: e.message }))
    )
    const out: Array<SelectedSeries> = []
    for (const s of selected) {
      if (!matchesAll(matchers, s.labels)) continue
      ctx.samples += s.timestamps.length
      if (ctx.samples > ctx.samplesMax) return yield* Effect.fail(tooManySamples(ctx))
      out.push(kept(ctx, s))
    }
    return out
  })

/** A selected series as the query reads it. */
const kept = (ctx: Ctx, s: SelectedSeries): SelectedSeries => {
  let k = s
  // Start timestamps are read only with use-start-timestamps (as Prometheus's engine option).
  if (!ctx.useStartTimestamps && k.startTimestamps !== undefined) k = { labels: k.labels, timestamps: k.timestamps, values: k.values, histograms: k.histograms }
  if (ctx.statsOnly && k.histograms !== undefined) k = { ...k, histograms: detectedHints(k.histograms) }
  return k
}

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
export const span = (ctx: Ctx, at: AtModifier | undefined, offsetMs: number, backMs: number) => {
  const first = evalTime(ctx, ctx.start, at, offsetMs)
  const last = evalTime(ctx, ctx.end, at, offsetMs)
  return { mint: Math.min(first, last) - backMs, maxt: Math.max(first, last) }
}

/**
 * For each step, the index of the newest sample at or before the selector's evaluation time that is
 * inside the lookback window and not a stale marker, or -1. Step times only grow (without @; with @
 * they are all equal), so a cursor walks the samples once.
 */
export const lookback = (ctx: Ctx, ts: Float64Array, vs: Float64Array, at: AtModifier | undefined, offsetMs: number, visit: (i: number, j: number) => void) => {
  let j = 0
  let lastT = Number.NEGATIVE_INFINITY
  for (let i = 0; i < ctx.steps; i++) {
    const t = evalTime(ctx, stepTime(ctx, i), at, offsetMs)
    if (t < lastT) j = 0
    lastT = t
    while (j < ts.length && ts[j]! <= t) j++
    if (j === 0) continue
    const k = j - 1
    if (ts[k]! <= t - ctx.lookbackMs || isStaleNaN(vs[k]!)) continue
    visit(i, k)
  }
}

export const evalVectorSelector = (ctx: Ctx, sel: VectorSelector) =>
  Effect.gen(function*() {
    if (sel.smoothed === true) return yield* evalSmoothedSelector(ctx, sel)
    const { mint, maxt } = span(ctx, sel.at, sel.offsetMs, ctx.lookbackMs)
    const series: Array<VSeries> = []
    // One series' samples at a time: each step's value is copied out before the next series is read.
    for (const s of yield* selectStreamed(ctx, sel.matchers, mint, maxt)) {
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
export const firstAfter = (ts: ArrayLike<number>, x: number, lo = 0, hi = ts.length) => {
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
export const interpolateHistogram = (h1: FloatHistogram, t1: number, h2: FloatHistogram, t2: number, t: number, isCounter: boolean, seen: NH.Seen): FloatHistogram | undefined => {
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

export interface RangeInput {
  /**
   * The series, to be walked once. Transient (a selector's series, decoded as they are reached): each
   * series' columns are valid only until the next one is reached, so that a query holds one series'
   * samples at a time; copy what must outlive that.
   */
  readonly series: Iterable<MSeries>
  readonly transient: boolean
  readonly rangeMs: number
  /** The evaluation time (after @ and offset) of step i. */
  readonly timeAt: (i: number) => number
}

/**
 * The series without its stale markers (the same columns when it has none), its native histograms apart
 * from its floats.
 */
export const withoutStale = (s: SelectedSeries): MSeries => {
  const { timestamps: ts, values: vs, histograms, startTimestamps: st } = s
  let stale = 0
  let nh = 0
  for (let i = 0; i < vs.length; i++) {
    if (histograms?.[i] !== undefined) nh++
    else if (isStaleNaN(vs[i]!)) stale++
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
    if (isStaleNaN(vs[i]!)) continue
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

/**
 * The series a range selector reads over [mint, maxt], each decoded as the walk reaches it (when the
 * source can) and counted against the query's sample limit then.
 */
const loadStreamed = (ctx: Ctx, matchers: ReadonlyArray<Matcher>, mint: number, maxt: number) =>
  Effect.map(selectStreamed(ctx, matchers, mint, maxt), (selected): Iterable<MSeries> => ({
    *[Symbol.iterator]() {
      for (const s of selected) yield withoutStale(s)
    }
  }))

/**
 * The series a selector reads over [mint, maxt], as `load` gives them, each decoded as the walk reaches it
 * when the source can (its columns valid until the next series is reached), else all at once.
 */
const selectStreamed = (ctx: Ctx, matchers: ReadonlyArray<Matcher>, mint: number, maxt: number) =>
  Effect.gen(function*() {
    const source = ctx.source
    if (source.selectReaders === undefined) return yield* load(ctx, matchers, mint, maxt)
    const readers = yield* Effect.mapError(source.selectReaders(matchers, mint, maxt), (e) => new QueryError({ kind: "execution", message: e.message }))
    return {
      *[Symbol.iterator]() {
        for (const reader of readers) {
          if (!matchesAll(matchers, reader.labels)) continue
          const s = reader.read()
          ctx.samples += s.timestamps.length
          if (ctx.samples > ctx.samplesMax) throw tooManySamples(ctx)
          yield kept(ctx, s)
        }
      }
    } satisfies Iterable<SelectedSeries>
  })

const loadMatrix = (ctx: Ctx, node: MatrixSelector) =>
  Effect.gen(function*() {
    const sel = node.vector
    const { mint, maxt } = span(ctx, sel.at, sel.offsetMs, node.rangeMs)
    return {
      series: yield* loadStreamed(ctx, sel.matchers, mint, maxt),
      transient: true,
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
      transient: false,
      rangeMs: node.rangeMs,
      timeAt: (i: number) => evalTime(ctx, stepTime(ctx, i), node.at, node.offsetMs)
    } satisfies RangeInput
  })

export const rangeInput = (ctx: Ctx, node: Expr): Effect.Effect<RangeInput, QueryError> => {
  const inner = node.type === "Paren" ? node.expr : node
  if (inner.type === "MatrixSelector") return loadMatrix(ctx, inner)
  if (inner.type === "Subquery") return loadSubquery(ctx, inner)
  return Effect.fail(new QueryError({ kind: "bad_data", message: "expected type range vector" }))
}
