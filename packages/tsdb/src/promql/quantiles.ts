/**
 * Quantiles: of a set of floats (the `quantile` aggregation and `quantile_over_time`, as Prometheus's
 * `quantile`), and of classic histograms' buckets (`histogram_quantile` and `histogram_fraction` over
 * `le` series, as Prometheus's `BucketQuantile` and `BucketFraction`, counts made monotonic first). The
 * quantiles of native histograms are in histogramStats.ts.
 */

export const quantile = (q: number, values: Array<number>): number => {
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

/** Whether two counts are equal within Prometheus's tolerance for float imprecision (relative 1e-12). */
const nearlyEqual = (a: number, b: number) => a === b || Math.abs(a - b) <= 1e-12 * Math.max(Math.abs(a), Math.abs(b))

/** Whether a classic histogram's cumulative counts decrease somewhere (beyond float imprecision). */
export const notMonotonic = (buckets: ReadonlyArray<{ le: number; count: number }>): boolean => {
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

export const histogramQuantile = (q: number, buckets: Array<{ le: number; count: number }>): number => {
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
export const histogramFraction = (lower: number, upper: number, input: Array<{ le: number; count: number }>): number => {
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
