/**
 * PromQL functions over one native histogram, with Prometheus 3.x semantics: `histogram_quantile`,
 * `histogram_fraction` (Prometheus's `HistogramQuantile` / `HistogramFraction`), `histogram_stdvar`,
 * `histogram_stddev`, `histogram_avg`, `histogram_count` and `histogram_sum`.
 *
 * Interpolation inside a bucket:
 * - standard exponential buckets: on a log2 scale ("exponential interpolation"), i.e. as if the bucket's
 *   observations spread evenly over the buckets of a finer schema — the median of (1, 2] is √2, for any
 *   schema; negative buckets are mirrored;
 * - the zero bucket and custom (NHCB, schema -53) buckets: linearly.
 * A zero bucket straddling 0 starts at 0 when the histogram has only positive buckets and ends at 0 when
 * it has only negative ones. For custom buckets, the infinite first bucket is taken to start at 0 (or the
 * quantile is its upper bound when that is ≤ 0) and a quantile in the +Inf bucket is that bucket's lower
 * bound.
 *
 * Observations of NaN raise `count` but fall in no bucket (and make `sum` NaN): a quantile then treats
 * them as +Inf and a fraction leaves them out; both report it with an info annotation
 * ({@link HistogramAnnotation}, Prometheus's message text in {@link annotationMessage}).
 *
 * The variance is that of the bucket midpoints: geometric for exponential buckets, 0 for the zero
 * bucket, arithmetic for custom buckets, around the mean `sum / count`.
 */
import type { FloatHistogram } from "./histogram.ts"
import { allBuckets } from "./histogram.ts"

/**
 * The info annotations Prometheus returns for one native histogram:
 * - `quantile_nan_result`: it has NaN observations and the quantile falls above every bucket, so it is NaN;
 * - `quantile_nan_skew`: it has NaN observations, counted as +Inf, so the quantile is skewed higher;
 * - `fraction_nans_excluded`: it has NaN observations, which no fraction includes.
 */
export type HistogramAnnotation = "quantile_nan_result" | "quantile_nan_skew" | "fraction_nans_excluded"

/** A function's value, and the annotation Prometheus would add for this histogram (if any). */
export interface HistogramStat {
  readonly value: number
  readonly annotation?: HistogramAnnotation
}

const messages: Record<HistogramAnnotation, string> = {
  quantile_nan_result: "input to histogram_quantile has NaN observations, result is NaN",
  quantile_nan_skew: "input to histogram_quantile has NaN observations, result is skewed higher",
  fraction_nans_excluded: "input to histogram_fraction has NaN observations, which are excluded from all fractions"
}

/** Prometheus's text of an annotation (all are info level), e.g. `PromQL info: … for metric name "x"`. */
export const annotationMessage = (annotation: HistogramAnnotation, metricName = ""): string =>
  `PromQL info: ${messages[annotation]}${metricName === "" ? "" : ` for metric name ${JSON.stringify(metricName)}`}`

const stat = (value: number, annotation?: HistogramAnnotation): HistogramStat =>
  annotation === undefined ? { value } : { value, annotation }

interface Bounds {
  lower: number
  upper: number
  count: number
}

/** Where `v` (strictly inside the bucket) lies in it, from 0 to 1: linearly, or on a log2 scale. */
const fractionBelow = (b: Bounds, v: number, linear: boolean): number => {
  if (linear) return (v - b.lower) / (b.upper - b.lower)
  const logLower = Math.log2(Math.abs(b.lower))
  const logUpper = Math.log2(Math.abs(b.upper))
  const logV = Math.log2(Math.abs(v))
  return v > 0 ? (logV - logLower) / (logUpper - logLower) : 1 - (logV - logUpper) / (logLower - logUpper)
}

/** A bucket containing 0: the zero bucket, or a custom bucket across 0. */
const straddlesZero = (b: Bounds): boolean => b.lower <= 0 && b.upper >= 0

/**
 * The φ-quantile of the observations (`histogram_quantile(φ, h)`): -Inf for φ < 0, +Inf for φ > 1, NaN
 * for a NaN φ or an empty histogram. The rank is counted from below for φ < 0.5 (or when `sum` is NaN),
 * from above otherwise, so a rank falling exactly between two populated buckets separated by empty ones
 * resolves to the bound of the bucket reached first.
 */
export const histogramQuantile = (q: number, h: FloatHistogram): HistogramStat => {
  if (q < 0) return stat(Number.NEGATIVE_INFINITY)
  if (q > 1) return stat(Number.POSITIVE_INFINITY)
  if (h.count === 0 || Number.isNaN(q)) return stat(Number.NaN)

  const custom = h.usesCustomBuckets()
  const hasNaNs = Number.isNaN(h.sum)
  const upward = hasNaNs || q < 0.5
  const buckets = upward ? allBuckets(h) : allBuckets(h).toReversed()
  let rank = (upward ? q : 1 - q) * h.count

  // Accumulate until the rank is reached; `bucket` is the last one visited (a point at 0 if there is none).
  let bucket: Bounds = { lower: 0, upper: 0, count: 0 }
  let count = 0
  let next = 0
  while (next < buckets.length) {
    bucket = buckets[next++]!
    if (bucket.count === 0) continue
    count += bucket.count
    if (count >= rank) break
  }
  let { lower, upper } = bucket
  if (!custom && lower < 0 && upper > 0) {
    if (h.negativeBuckets.length === 0 && h.positiveBuckets.length > 0) lower = 0
    else if (h.positiveBuckets.length === 0 && h.negativeBuckets.length > 0) upper = 0
  } else if (custom) {
    if (lower === Number.NEGATIVE_INFINITY) {
      if (upper <= 0) return stat(upper)
      lower = 0
    } else if (upper === Number.POSITIVE_INFINITY) {
      return stat(lower)
    }
  }
  count = Math.min(count, h.count) // float error may sum the buckets above the count
  if (count < rank) {
    // The buckets ran out before the rank: NaN observations (or an inconsistent histogram).
    return hasNaNs ? stat(Number.NaN, "quantile_nan_result") : stat(upper)
  }
  rank = upward ? rank - (count - bucket.count) : count - rank // observations of the bucket below the quantile

  let annotation: HistogramAnnotation | undefined
  if (hasNaNs) {
    // Prometheus walks its iterator on through the remaining buckets here to total them, leaving its
    // current bucket at the last one, which the interpolation below then uses; kept for identical results.
    for (; next < buckets.length; next++) {
      bucket = buckets[next]!
      count += bucket.count
      lower = bucket.lower
      upper = bucket.upper
    }
    if (count < h.count) annotation = "quantile_nan_skew"
  }

  const fraction = rank / bucket.count
  if (custom || (lower <= 0 && upper >= 0)) return stat(lower + (upper - lower) * fraction, annotation)
  const logLower = Math.log2(Math.abs(lower))
  const logUpper = Math.log2(Math.abs(upper))
  return lower > 0
    ? stat(2 ** (logLower + (logUpper - logLower) * fraction), annotation)
    : stat(-(2 ** (logUpper + (logLower - logUpper) * (1 - fraction))), annotation)
}

/**
 * The fraction of all observations between `lower` and `upper` (`histogram_fraction(lower, upper, h)`),
 * interpolated inside the buckets the bounds fall in (the inverse of {@link histogramQuantile}): NaN for a
 * NaN bound or an empty histogram, 0 when lower ≥ upper. A bucket with an infinite bound (custom buckets)
 * contributes nothing when a bound falls inside it. NaN observations count in the denominator only.
 * {@link histogramFractionStat} also answers the annotation.
 */
export const histogramFraction = (lower: number, upper: number, h: FloatHistogram): number =>
  histogramFractionStat(lower, upper, h).value

/** {@link histogramFraction}, with the `fraction_nans_excluded` annotation when `h` has NaN observations. */
export const histogramFractionStat = (lower: number, upper: number, h: FloatHistogram): HistogramStat => {
  if (h.count === 0 || Number.isNaN(lower) || Number.isNaN(upper)) return stat(Number.NaN)
  if (lower >= upper) return stat(0)

  const custom = h.usesCustomBuckets()
  const onlyPositive = h.negativeBuckets.length === 0 && h.positiveBuckets.length > 0
  const onlyNegative = h.positiveBuckets.length === 0 && h.negativeBuckets.length > 0
  const buckets = allBuckets(h)
  let count = 0 // observations in the buckets visited
  let rank = 0 // observations below the current bucket
  let lowerRank: number | undefined
  let upperRank: number | undefined
  let next = 0
  while (next < buckets.length) {
    const b: Bounds = { ...buckets[next++]! }
    count += b.count
    const linear = custom || straddlesZero(b)
    if (straddlesZero(b)) {
      if (onlyPositive) b.lower = 0
      else if (onlyNegative) b.upper = 0
    }
    // The observations at or below v, v inside b: an infinite bucket contributes none of its own.
    const rankAt = (v: number): number =>
      linear && b.lower === Number.NEGATIVE_INFINITY ? b.count : rank + b.count * fractionBelow(b, v, linear)
    if (lowerRank === undefined && b.lower >= lower) lowerRank = rank
    if (upperRank === undefined && b.lower >= upper) upperRank = rank
    if (lowerRank !== undefined && upperRank !== undefined) break
    if (lowerRank === undefined && b.lower < lower && b.upper > lower) lowerRank = rankAt(lower)
    if (upperRank === undefined && b.lower < upper && b.upper > upper) upperRank = rankAt(upper)
    if (lowerRank !== undefined && upperRank !== undefined) break
    rank += b.count
  }

  let annotation: HistogramAnnotation | undefined
  if (Number.isNaN(h.sum)) {
    // There may be NaN observations: only those in buckets are ranked.
    for (; next < buckets.length; next++) count += buckets[next]!.count
    if (count < h.count) annotation = "fraction_nans_excluded"
  } else {
    count = h.count
  }
  const lowerAt = lowerRank === undefined || lowerRank > count ? count : lowerRank
  const upperAt = upperRank === undefined || upperRank > count ? count : upperRank
  return stat((upperAt - lowerAt) / h.count, annotation)
}

/** The representative value of a bucket's observations for the variance. */
const midpoint = (b: Bounds, custom: boolean): number => {
  if (custom) return (b.lower + b.upper) / 2
  if (straddlesZero(b)) return 0 // the zero bucket
  const geometric = Math.sqrt(b.lower * b.upper)
  return b.upper < 0 ? -geometric : geometric
}

/**
 * The population variance of the observations (`histogram_stdvar(h)`), each taken at its bucket's
 * midpoint, around the mean `sum / count` (so NaN for an empty histogram or a NaN sum). Kahan–Neumaier
 * summation, as Prometheus.
 */
export const histogramStdVar = (h: FloatHistogram): number => {
  const mean = h.sum / h.count
  const custom = h.usesCustomBuckets()
  let sum = 0
  let c = 0
  for (const b of allBuckets(h)) {
    if (b.count === 0) continue
    const delta = midpoint(b, custom) - mean
    const inc = b.count * delta * delta
    const t = sum + inc
    if (Math.abs(t) === Number.POSITIVE_INFINITY) c = 0
    else if (Math.abs(sum) >= Math.abs(inc)) c += sum - t + inc
    else c += inc - t + sum
    sum = t
  }
  return (sum + c) / h.count
}

/** The population standard deviation of the observations (`histogram_stddev(h)`): √{@link histogramStdVar}. */
export const histogramStdDev = (h: FloatHistogram): number => Math.sqrt(histogramStdVar(h))

/** The mean observation (`histogram_avg(h)`): `sum / count`, NaN for an empty histogram. */
export const histogramAvg = (h: FloatHistogram): number => h.sum / h.count

/** The number of observations (`histogram_count(h)`). */
export const histogramCount = (h: FloatHistogram): number => h.count

/** The sum of the observations (`histogram_sum(h)`). */
export const histogramSum = (h: FloatHistogram): number => h.sum
