/**
 * The evaluator's operations over several native histograms at once (Prometheus 3.x semantics): the
 * increase of a counter histogram over a window with its resets, the compensated sum and the mean used by
 * `sum`/`avg` and `sum_over_time`/`avg_over_time`. One histogram's own arithmetic is in histogram.ts.
 *
 * Every function answers `undefined` where Prometheus drops the element (histograms that cannot be
 * combined: exponential with custom buckets), rather than throwing.
 */
import type { CombineInfo } from "./histogram.ts"
import { FloatHistogram, HistogramError } from "./histogram.ts"

/**
 * What combining histograms ran into, for the annotations Prometheus gives: custom bounds reconciled
 * (info), exponential and custom buckets mixed (warning, the element dropped), a gauge where a counter was
 * expected or the reverse (warning).
 */
export interface Seen {
  reconciled: boolean
  mixedSchemas: boolean
  notCounter: boolean
  notGauge: boolean
  /** Histograms saying "reset" and "not_reset" were added up (a warning). */
  conflictingResets: boolean
  /** Floats and histograms in one window, which the function cannot combine (a warning). */
  mixedFloats: boolean
  /** A sample's start timestamp before the sample ahead of it (a warning). */
  startTimeOverlap: boolean
}

export const newSeen = (): Seen => ({
  reconciled: false,
  mixedSchemas: false,
  notCounter: false,
  notGauge: false,
  conflictingResets: false,
  mixedFloats: false,
  startTimeOverlap: false
})

/** Notes what a combination reported. */
const note = (seen: Seen | undefined, info: CombineInfo) => {
  if (seen !== undefined && info.nhcbBoundsReconciled) seen.reconciled = true
}

/** Runs a combination of histograms; false when they cannot be combined (Prometheus drops the element). */
export const tryCombine = (combine: () => CombineInfo | void, seen?: Seen): boolean => {
  try {
    const info = combine()
    if (info !== undefined) note(seen, info)
    return true
  } catch (e) {
    if (e instanceof HistogramError) {
      if (seen !== undefined) seen.mixedSchemas = true
      return false
    }
    throw e
  }
}

/**
 * The increase of histograms `hs[lo, hi)` (at least two) from the first to the last, with counter resets
 * added back for a counter (`isCounter`): the last minus the first, at the lowest schema among them, plus
 * each histogram before a reset. A reset between the first two ignores the first (its bucket layout does not
 * matter). Undefined when exponential and custom-bucket histograms are mixed. The result is a gauge,
 * compacted.
 */
export const histogramRate = (
  hs: ReadonlyArray<FloatHistogram>,
  lo: number,
  hi: number,
  isCounter: boolean,
  seen?: Seen,
  /** Start timestamps aligned with `hs`, and the histograms' times (with use-start-timestamps). */
  starts?: { readonly sts: Float64Array; readonly ts: Float64Array; readonly isReset: (prevSt: number, prevT: number, st: number, t: number) => boolean; readonly overlaps: (prevSt: number, prevT: number, st: number) => boolean }
): FloatHistogram | undefined => {
  const stReset = (i: number) => starts !== undefined && starts.isReset(starts.sts[i - 1]!, starts.ts[i - 1]!, starts.sts[i]!, starts.ts[i]!)
  let prev = hs[lo]!
  const last = hs[hi - 1]!
  if (seen !== undefined) {
    // A counter function over a gauge histogram (or delta over a counter) may not mean what was meant.
    if (isCounter && (prev.counterResetHint === "gauge" || last.counterResetHint === "gauge" || hs.slice(lo + 1, hi - 1).some((h) => h.counterResetHint === "gauge"))) seen.notCounter = true
    if (!isCounter && (prev.counterResetHint !== "gauge" || last.counterResetHint !== "gauge")) seen.notGauge = true
  }
  if (isCounter && hi - lo > 1) {
    const second = hs[lo + 1]!
    if (stReset(lo + 1) || second.detectReset(prev)) prev = new FloatHistogram({ schema: second.schema, customValues: second.customValues })
  }
  const custom = prev.usesCustomBuckets()
  const mixed = () => {
    if (seen !== undefined) seen.mixedSchemas = true
    return undefined
  }
  if (last.usesCustomBuckets() !== custom) return mixed()
  let minSchema = Math.min(last.schema, prev.schema)
  for (let i = lo + 1; i < hi - 1; i++) {
    const h = hs[i]!
    if (!isCounter) continue
    if (h.schema < minSchema) minSchema = h.schema
    if (h.usesCustomBuckets() !== custom) return mixed()
  }
  const result = last.copyToSchema(minSchema)
  if (!tryCombine(() => result.sub(prev), seen)) return undefined
  if (isCounter) {
    let before = prev
    for (let i = lo + 1; i < hi; i++) {
      const h = hs[i]!
      if (starts !== undefined && seen !== undefined && !seen.startTimeOverlap && starts.overlaps(starts.sts[i - 1]!, starts.ts[i - 1]!, starts.sts[i]!)) seen.startTimeOverlap = true
      if ((stReset(i) || h.detectReset(before)) && !tryCombine(() => result.add(before), seen)) return undefined
      before = h
    }
  }
  result.counterResetHint = "gauge"
  return result.compact(0)
}

/** Whether the histograms say both "reset" and "not_reset" (Prometheus warns of conflicting counter resets). */
export const conflictingResets = (hs: ReadonlyArray<FloatHistogram>): boolean =>
  hs.some((h) => h.counterResetHint === "reset") && hs.some((h) => h.counterResetHint === "not_reset")

/** Whether any count of the histogram is infinite (a running sum that overflowed). */
const overflowed = (h: FloatHistogram): boolean => {
  if (!Number.isFinite(h.count) || !Number.isFinite(h.sum) || !Number.isFinite(h.zeroCount)) return true
  for (const b of h.positiveBuckets) if (!Number.isFinite(b)) return true
  for (const b of h.negativeBuckets) if (!Number.isFinite(b)) return true
  return false
}

/**
 * The Kahan-compensated sum of histograms (at least one); compacted when `compact` (as the `sum`
 * aggregation; `sum_over_time` leaves the layout as it is). Undefined when they cannot be combined.
 */
export const sum = (hs: ReadonlyArray<FloatHistogram>, compact = false, seen?: Seen): FloatHistogram | undefined => {
  const total = hs[0]!.copy()
  let c: FloatHistogram | undefined
  for (let i = 1; i < hs.length; i++) {
    const h = hs[i]!
    if (!tryCombine(() => {
      const r = total.kahanAdd(h, c)
      c = r.compensation
      return r
    }, seen)) return undefined
  }
  const compensation: FloatHistogram | undefined = c
  if (compensation !== undefined && !tryCombine(() => total.add(compensation))) return undefined
  return compact ? total.compact(0) : total
}

/**
 * The mean of histograms (at least one), as Prometheus computes it: a compensated sum divided by the count
 * while the sum stays finite, an incremental mean from where it would overflow. Compacted when `compact`.
 */
export const average = (hs: ReadonlyArray<FloatHistogram>, compact = false, seen?: Seen): FloatHistogram | undefined => {
  let total = hs[0]!.copy()
  let c: FloatHistogram | undefined
  let mean: FloatHistogram | undefined
  let count = 1
  for (let i = 1; i < hs.length; i++) {
    const h = hs[i]!
    count = i + 1
    if (mean === undefined) {
      const next = total.copy()
      let nextC = c?.copy()
      if (!tryCombine(() => {
        const r = next.kahanAdd(h, nextC)
        nextC = r.compensation
        return r
      }, seen)) return undefined
      if (!overflowed(next)) {
        total = next
        c = nextC
        continue
      }
      mean = total.copy().div(count - 1)
      c?.div(count - 1)
    }
    const q = (count - 1) / count
    c?.mul(q)
    const m = mean.mul(q)
    const toAdd = h.copy().div(count)
    if (!tryCombine(() => {
      const r = m.kahanAdd(toAdd, c)
      c = r.compensation
      return r
    }, seen)) return undefined
  }
  let result: FloatHistogram
  const compensation: FloatHistogram | undefined = c
  if (mean !== undefined) {
    result = mean
    if (compensation !== undefined && !tryCombine(() => result.add(compensation))) return undefined
  } else {
    result = total.div(count)
    if (compensation !== undefined && !tryCombine(() => result.add(compensation.div(count)))) return undefined
  }
  return compact ? result.compact(0) : result
}
