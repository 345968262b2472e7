/**
 * histogramStats.ts: `histogram_quantile`, `histogram_fraction`, `histogram_stdvar`/`histogram_stddev` and
 * `histogram_avg` over one native histogram (Prometheus 3.x semantics).
 *
 * Histograms are written in promqltest's `{{...}}` notation. With exponential buckets, `buckets:[a b c]`
 * starts at index 0, the bucket (2^-2^-schema, 1]; the zero bucket is `z_bucket` wide `z_bucket_w` on both
 * sides of 0. The first part derives expected values by hand; the second replays evals of Prometheus's own
 * promqltest files (v3.14.0 native_histograms.test and histograms.test), compared as promqltest does (a
 * relative tolerance of 1e-6).
 */
import { describe, expect, it } from "vitest"
import { parseHistogramText } from "../src/promql/histogram.ts"
import type { HistogramAnnotation } from "../src/promql/histogramStats.ts"
import {
  annotationMessage,
  histogramAvg,
  histogramCount,
  histogramFraction,
  histogramFractionStat,
  histogramQuantile,
  histogramStdDev,
  histogramStdVar,
  histogramSum
} from "../src/promql/histogramStats.ts"

const H = (text: string) => parseHistogramText(text).histogram

/** Equal as promqltest compares floats: NaN to NaN, infinities exactly, otherwise within a relative 1e-6. */
const near = (actual: number, expected: number, tolerance = 1e-6) => {
  if (Number.isNaN(expected) || !Number.isFinite(expected) || expected === 0) {
    if (expected === 0) expect(Math.abs(actual)).toBeLessThanOrEqual(1e-12)
    else expect(actual).toBe(expected)
    return
  }
  expect(Math.abs(actual - expected) / Math.abs(expected)).toBeLessThanOrEqual(tolerance)
}

const Inf = Number.POSITIVE_INFINITY
const nan = Number.NaN

describe("histogramQuantile", () => {
  // (0.5,1]:1 (1,2]:2 (2,4]:1
  const schema0 = "schema:0 count:4 sum:5 buckets:[1 2 1]"
  // schema 3: bucket i is (2^((i-1)/8), 2^(i/8)]; index 8 is (2^(7/8), 2], index 9 (2, 2^(9/8)]
  const schema3 = "schema:3 count:4 sum:8 offset:8 buckets:[1 3]"
  // schema -1: bucket i is (4^(i-1), 4^i]; n_buckets index 2 is [-16, -4)
  const schemaMinus1Negative = "schema:-1 count:4 sum:-32 n_buckets:[0 0 4]"
  // [-1,-0.5):4, the zero bucket [-0.5,0.5]:2, (0.5,1]:4
  const symmetric = "schema:0 count:10 sum:0 z_bucket:2 z_bucket_w:0.5 buckets:[4] n_buckets:[4]"

  it.each<[string, string, number, number]>([
    // Exponential interpolation: the bucket's observations spread evenly over a finer schema's buckets.
    ["the median of (1,2] holding half the observations is √2", schema0, 0.5, Math.SQRT2],
    ["a rank at the top of (0.5,1] is its upper bound", schema0, 0.25, 1],
    ["half-way through (0.5,1] is 2^-0.5", schema0, 0.125, Math.SQRT1_2],
    ["half-way through (2,4] (counted from the top) is 2^1.5", schema0, 0.875, 2 * Math.SQRT2],
    ["q = 1 is the upper bound of the highest bucket", schema0, 1, 4],
    ["q = 0 is the lower bound of the lowest bucket", schema0, 0, 0.5],
    ["schema 3: a third into (2, 2^(1/8)] is 2^(1 + 1/24)", schema3, 0.5, 2 ** (1 + 1 / 24)],
    ["schema 3: 40% into (2^(7/8), 2] is 2^(7/8 + 0.4/8)", schema3, 0.1, 2 ** (7 / 8 + 0.4 / 8)],
    ["schema -1: negative buckets are mirrored, the median of [-16,-4) is -8", schemaMinus1Negative, 0.5, -8],
    ["schema -1: a quarter up from -16 is -2^3.5", schemaMinus1Negative, 0.25, -(2 ** 3.5)],
    ["schema -1: three quarters up from -16 is -2^2.5", schemaMinus1Negative, 0.75, -(2 ** 2.5)],
    // The zero bucket is interpolated linearly, across 0 when both sides have buckets.
    ["the median of a symmetric histogram is 0", symmetric, 0.5, 0],
    ["a quarter into the zero bucket [-0.5,0.5] is -0.25", symmetric, 0.45, -0.25],
    ["three quarters into the zero bucket is 0.25", symmetric, 0.55, 0.25],
    ["half-way up [-1,-0.5) is -2^-0.5", symmetric, 0.2, -Math.SQRT1_2],
    ["the zero bucket starts at 0 with only positive buckets", "schema:0 count:4 sum:3 z_bucket:2 z_bucket_w:0.5 buckets:[2]", 0.25, 0.25],
    ["the zero bucket ends at 0 with only negative buckets", "schema:0 count:4 sum:-3 z_bucket:2 z_bucket_w:0.5 n_buckets:[2]", 0.75, -0.25],
    ["a lone zero bucket is centred on 0", "schema:0 count:1 sum:0.25 z_bucket:1 z_bucket_w:0.5", 0.5, 0],
    // q ≥ 0.5 counts from the top, so a rank between buckets separated by empty ones takes the upper one.
    ["q = 0.5 between (0.5,1]:1 and (4,8]:1 is 4, the lower bound of the upper bucket", "schema:0 count:2 sum:5 buckets:[1 0 0 1]", 0.5, 4],
    ["just below 0.5 it is near 1, the upper bound of the lower bucket", "schema:0 count:2 sum:5 buckets:[1 0 0 1]", 0.4999, 2 ** (-1 + 0.9998)],
    // Custom buckets (-Inf,5]:1 (5,10]:2 (10,+Inf]:1: linear, the first bucket starts at 0, the +Inf bucket
    // answers its lower bound.
    ["custom: linear within (5,10]", "schema:-53 count:4 sum:30 custom_values:[5 10] buckets:[1 2 1]", 0.5, 7.5],
    ["custom: the first bucket starts at 0", "schema:-53 count:4 sum:30 custom_values:[5 10] buckets:[1 2 1]", 0.1, 2],
    ["custom: a quantile in the +Inf bucket is its lower bound", "schema:-53 count:4 sum:30 custom_values:[5 10] buckets:[1 2 1]", 0.9, 10],
    ["custom: in a first bucket ending at or below 0 it is that bound", "schema:-53 count:4 sum:-3 custom_values:[-2 3] buckets:[2 2]", 0.25, -2],
    ["custom: q = 1 without a +Inf bucket is the top bound", "schema:-53 count:3 sum:20 custom_values:[5 10] buckets:[1 2]", 1, 10],
    // Edge values of q and empty histograms.
    ["q < 0 is -Inf", schema0, -0.1, -Inf],
    ["q > 1 is +Inf", schema0, 1.01, Inf],
    ["q NaN is NaN", schema0, nan, nan],
    ["no observations: NaN", "schema:0 count:0 sum:0", 0.5, nan],
    ["no observations but q < 0: still -Inf", "schema:0 count:0 sum:0", -1, -Inf],
    ["no observations but q > 1: still +Inf", "schema:0 count:0 sum:0", 2, Inf]
  ])("%s", (_, text, q, expected) => {
    const result = histogramQuantile(q, H(text))
    near(result.value, expected, 1e-12)
    expect(result.annotation).toBeUndefined()
  })
})

describe("histogramFraction", () => {
  // [-1,-0.5):4, the zero bucket [-0.5,0.5]:2, (0.5,1]:4
  const symmetric = "schema:0 count:10 sum:0 z_bucket:2 z_bucket_w:0.5 buckets:[4] n_buckets:[4]"
  // log2(1.5): how far 0.75 is into (0.5,1] on a log2 scale
  const l = Math.log2(1.5)

  it.each<[string, string, number, number, number]>([
    ["across 0, linearly inside the zero bucket", symmetric, -0.25, 0.25, 0.1],
    ["across 0, exponentially inside (0.5,1] and its mirror", symmetric, -0.75, 0.75, (4 * l + 2 + 4 * l) / 10],
    ["everything below 0", symmetric, -Inf, 0, 0.5],
    ["everything above 0", symmetric, 0, Inf, 0.5],
    ["everything", symmetric, -Inf, Inf, 1],
    ["bounds on bucket boundaries take whole buckets", symmetric, 0.5, 1, 0.4],
    ["lower ≥ upper is 0", symmetric, 1, 0, 0],
    ["lower = upper is 0", symmetric, 0.2, 0.2, 0],
    ["a NaN bound is NaN", symmetric, nan, 1, nan],
    ["no observations: NaN", "schema:0 count:0 sum:0", 0, 1, nan],
    ["the zero bucket starts at 0 with only positive buckets", "schema:0 count:4 sum:3 z_bucket:2 z_bucket_w:0.5 buckets:[2]", -1, 0.25, 0.25],
    // Custom buckets (-Inf,1]:1 (1,2]:2 (2,3]:3 (3,+Inf]:94
    ["custom: the first bucket starts at 0", "schema:-53 count:100 sum:1000 custom_values:[1 2 3] buckets:[1 2 3 94]", 0, 1.5, 0.02],
    ["custom: a bound in the +Inf bucket takes none of it", "schema:-53 count:100 sum:1000 custom_values:[1 2 3] buckets:[1 2 3 94]", 2, 5, 0.03],
    ["custom: up to +Inf takes the +Inf bucket", "schema:-53 count:100 sum:1000 custom_values:[1 2 3] buckets:[1 2 3 94]", 400, Inf, 0.94],
    // Custom buckets (-Inf,-3]:10 (-3,-2]:2 (-2,-1]:3 (-1,+Inf]:85
    ["custom: a bound in the -Inf bucket takes none of it", "schema:-53 count:100 sum:0 custom_values:[-3 -2 -1] buckets:[10 2 3 85]", -4, -2, 0.02],
    ["custom: from -Inf takes the -Inf bucket", "schema:-53 count:100 sum:0 custom_values:[-3 -2 -1] buckets:[10 2 3 85]", -Inf, -1.5, 0.135]
  ])("%s", (_, text, lower, upper, expected) => {
    const result = histogramFractionStat(lower, upper, H(text))
    near(result.value, expected, 1e-12)
    expect(result.annotation).toBeUndefined()
    expect(histogramFraction(lower, upper, H(text))).toBe(result.value)
  })

  it("is the inverse of histogramQuantile", () => {
    const h = H("schema:1 count:27 sum:40 z_bucket:2 z_bucket_w:0.001 buckets:[5 10 7] n_buckets:[3]")
    for (const q of [0.05, 0.2, 0.3, 0.5, 0.77, 0.95]) {
      near(histogramFraction(-Inf, histogramQuantile(q, h).value, h), q, 1e-9)
    }
  })
})

describe("histogramStdVar / histogramStdDev", () => {
  it.each<[string, string, number]>([
    // Midpoints √2 and √8 of (1,2] and (2,4], around the mean 1.5.
    ["geometric midpoints of exponential buckets", "schema:0 count:2 sum:3 buckets:[0 1 1]", ((Math.SQRT2 - 1.5) ** 2 + (Math.sqrt(8) - 1.5) ** 2) / 2],
    // Midpoints -√0.5, 0, √0.5 around the mean 0.
    ["the zero bucket at 0, negative buckets mirrored", "schema:0 count:3 sum:0 z_bucket:1 z_bucket_w:0.5 buckets:[1] n_buckets:[1]", 1 / 3],
    // Midpoints 2 and 6 of (0,4] and (4,8], around the mean 5.
    ["arithmetic midpoints of custom buckets", "schema:-53 count:2 sum:10 custom_values:[0 4 8] buckets:[0 1 1]", 5],
    ["observations in the infinite custom buckets make it infinite", "schema:-53 count:2 sum:10 custom_values:[8] buckets:[1 1]", Inf],
    ["no observations: NaN", "schema:0 count:0 sum:0", nan],
    ["a NaN sum: NaN", "schema:0 count:2 sum:NaN buckets:[2]", nan]
  ])("%s", (_, text, variance) => {
    const h = H(text)
    near(histogramStdVar(h), variance, 1e-12)
    near(histogramStdDev(h), Math.sqrt(variance), 1e-12)
  })
})

describe("histogramAvg / histogramCount / histogramSum", () => {
  it("read count and sum", () => {
    const h = H("schema:0 count:4 sum:5 buckets:[1 2 1]")
    expect([histogramAvg(h), histogramCount(h), histogramSum(h)]).toEqual([1.25, 4, 5])
    expect(histogramAvg(H("schema:0 count:0 sum:0"))).toBeNaN()
  })
})

describe("NaN observations (sum NaN, count above the buckets' total)", () => {
  // 12 observations in (0.5,1] and 3 NaNs.
  const someNaNs = "schema:0 count:15 sum:NaN buckets:[12]"
  const onlyNaNs = "schema:0 count:3 sum:NaN"

  it.each<[string, string, number, number, HistogramAnnotation]>([
    ["within the buckets the quantile is skewed higher", someNaNs, 0.8, 1, "quantile_nan_skew"],
    ["half-way through (0.5,1]", someNaNs, 0.4, Math.SQRT1_2, "quantile_nan_skew"],
    ["above the buckets the quantile is NaN", someNaNs, 0.81, nan, "quantile_nan_result"],
    ["q = 1 is NaN", someNaNs, 1, nan, "quantile_nan_result"],
    ["with only NaNs any quantile is NaN", onlyNaNs, 0.4, nan, "quantile_nan_result"],
    // (1,2]:2 (2,4]:2 and 2 NaNs: the rank 1.5 is 3/4 into (1,2], but Prometheus then interpolates in the
    // highest bucket, (2,4], giving 2^1.75 rather than 2^0.75 (its iterator has moved on; kept as is).
    ["as Prometheus, interpolated in the highest bucket", "schema:0 count:6 sum:NaN offset:1 buckets:[2 2]", 0.25, 2 ** 1.75, "quantile_nan_skew"]
  ])("histogramQuantile: %s", (_, text, q, expected, annotation) => {
    const result = histogramQuantile(q, H(text))
    near(result.value, expected)
    expect(result.annotation).toBe(annotation)
  })

  it.each<[string, string, number, number, number]>([
    ["NaNs are in no fraction", someNaNs, -Inf, Inf, 0.8],
    ["the inverse of the quantile", someNaNs, -Inf, Math.SQRT1_2, 0.4],
    ["with only NaNs every fraction is 0", onlyNaNs, -Inf, Inf, 0]
  ])("histogramFraction: %s", (_, text, lower, upper, expected) => {
    const result = histogramFractionStat(lower, upper, H(text))
    near(result.value, expected)
    expect(result.annotation).toBe("fraction_nans_excluded")
  })

  it("an infinite observation (sum ±Inf, not NaN) raises no annotation", () => {
    const h = H("schema:0 count:3 sum:Inf buckets:[2]")
    expect(histogramFractionStat(-Inf, Inf, h)).toEqual({ value: 1 })
    expect(histogramQuantile(0.5, h).annotation).toBeUndefined()
  })

  it("formats Prometheus's messages", () => {
    expect(annotationMessage("quantile_nan_result", "histogram_nan")).toBe(
      "PromQL info: input to histogram_quantile has NaN observations, result is NaN for metric name \"histogram_nan\""
    )
    expect(annotationMessage("fraction_nans_excluded")).toBe(
      "PromQL info: input to histogram_fraction has NaN observations, which are excluded from all fractions"
    )
  })
})

/** Evals of Prometheus's promqltest files, v3.14.0: the histogram, then [argument(s), expected]. */
describe("Prometheus promqltest evals", () => {
  const quantiles: Array<[string, Array<[number, number]>]> = [
    // native_histograms.test: histogram_quantile_1, positive buckets and a zero bucket
    ["schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]", [
      [1, 16], [0.99, 15.67072476139083], [0.9, 12.99603834169977], [0.6, 4.594793419988138],
      [0.5, 1.5874010519681994], [0.1, 0.0006], [0, 0], [1.001, Inf], [-1, -Inf]
    ]],
    // histogram_quantile_2: negative buckets and a zero bucket
    ["schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]", [
      [1, 0], [0.99, -0.00006], [0.9, -0.0006], [0.5, -1.5874010519681996], [0.1, -12.996038341699768], [0, -16]
    ]],
    // histogram_quantile_3: both, and a zero bucket
    ["schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]", [
      [1, 16], [0.99, 15.34822590920423], [0.9, 10.556063286183155], [0.7, 1.2030250360821164], [0.55, 0.0006],
      [0.5, 0], [0.45, -0.0006], [0.3, -1.2030250360821169], [0.1, -10.556063286183155], [0.01, -15.34822590920423],
      [0, -16]
    ]],
    // var_res_histogram: the interpolation does not depend on the schema
    ["schema:-1 sum:6 count:5 buckets:[0 5]", [[0.5, 2]]],
    ["schema:1 sum:4 count:5 buckets:[0 5]", [[0.5, 1.189207]]],
    ["schema:1 sum:4 count:5 buckets:[0 0 5]", [[0.5, 1.6817928305074292]]],
    ["schema:-1 sum:6 count:5 n_buckets:[0 0 5]", [[0.5, -8]]],
    // balanced_histogram: the median lands between the populated buckets around 0
    ["schema:0 sum:0 count:8 buckets:[1 2 1] n_buckets:[1 2 1]", [[0.5, 0.5]]],
    // single_zero_histogram, negative_histogram
    ["schema:0 z_bucket:1 z_bucket_w:0.5 sum:0.25 count:1", [[0.5, 0]]],
    ["schema:0 sum:-5 count:4 n_buckets:[1 2 1]", [[0.5, -1.414213562373095]]],
    // histogram_fraction_2/3/4: round trips
    ["schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]", [[0.08333333333333333, 0.0005], [0.6320802083934297, 6]]],
    ["schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]", [[0.9166666666666666, -0.0005], [0.36791979160657035, -6]]],
    // custom_buckets_histogram
    ["schema:-53 sum:5 count:4 custom_values:[5 10] buckets:[1 2 1]", [[0.5, 7.5]]],
    // histograms.test: testhistogram at 50m as NHCB, start="positive" and start="negative"
    ["schema:-53 count:120 sum:0 custom_values:[0.1 0.2 1] buckets:[50 20 40 10]", [[0, 0], [0.2, 0.048], [0.5, 0.15], [0.8, 0.72], [1, 1]]],
    ["schema:-53 count:30 sum:0 custom_values:[-0.2 -0.1 0.3] buckets:[10 10 0 10]", [[0, -0.2], [0.2, -0.2], [0.5, -0.15], [0.8, 0.3], [1, 0.3]]]
  ]
  for (const [text, cases] of quantiles) {
    it.each(cases)(`histogram_quantile(%s, {{${text}}}) = %s`, (q, expected) => {
      near(histogramQuantile(q, H(text)).value, expected)
    })
  }

  const fractions: Array<[string, Array<[number, number, number]>]> = [
    // native_histograms.test: histogram_fraction_2, positive buckets and a zero bucket
    ["schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]", [
      [0, Inf, 1], [-Inf, 0, 0], [0, 0.001, 0.16666666666666666], [0.001, Inf, 0.8333333333333334],
      [0, 0.0005, 0.08333333333333333], [1, 2, 0.25], [0, 1.5, 0.4795739585136224], [1.5, 2, 0.10375937481971091],
      [0, 6, 0.6320802083934297], [1.5, 6, 0.15250624987980724], [-6, -1, 0], [42, 3.1415, 0], [nan, 42, nan]
    ]],
    // histogram_fraction_3: negative buckets and a zero bucket
    ["schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]", [
      [-0.001, 0, 0.16666666666666666], [-0.0005, 0, 0.08333333333333333], [-Inf, -0.0005, 0.9166666666666666],
      [-2, -1.5, 0.10375937481971091], [-Inf, -6, 0.36791979160657035], [-6, -1.5, 0.15250624987980724]
    ]],
    // histogram_fraction_4: both
    ["schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]", [
      [0, Inf, 0.5], [-0.0005, 0.0005, 0.08333333333333333], [-Inf, 0.0005, 0.5416666666666666],
      [1.5, 2, 0.051879687409855414], [-6, -1, 0.14937343753004817], [-Inf, Inf, 1]
    ]],
    // var_res_histogram, low_res_histogram, custom_buckets_histogram
    ["schema:1 sum:4 count:5 buckets:[0 5]", [[0, 1.189207, 0.5]]],
    ["schema:-1 count:5 sum:8 offset:1 buckets:[5]", [[1, 4, 1]]],
    ["schema:-53 sum:5 count:4 custom_values:[5 10] buckets:[1 2 1]", [[5, 10, 0.5]]],
    // histograms.test: testhistogram3 at 50m as NHCB (its buckets across 0 start at 0)
    ["schema:-53 count:110 sum:330 custom_values:[0 0.1 0.2 1] buckets:[0 50 20 40]", [[0, 0.2, 0.6363636363636364]]],
    ["schema:-53 count:20 sum:80 custom_values:[-0.25 -0.2 -0.1 0.3] buckets:[0 10 10]", [[0, 0.2, 0]]],
    // histograms.test: upper_exactly_on_bucket_boundary and friends, as NHCB
    ["schema:-53 count:100 sum:0 custom_values:[1 2 3] buckets:[1 2 3 94]", [
      [0.5, 2, 0.025], [2, 3.5, 0.03], [4, 5, 0], [-Inf, Inf, 1]
    ]],
    ["schema:-53 count:100 sum:0 custom_values:[-3 -2 -1] buckets:[10 2 3 85]", [[0, 1, 0], [-Inf, Inf, 1]]],
    ["schema:-53 count:100 sum:0 buckets:[100]", [[0, 1, 0]]]
  ]
  for (const [text, cases] of fractions) {
    it.each(cases)(`histogram_fraction(%s, %s, {{${text}}}) = %s`, (lower, upper, expected) => {
      near(histogramFraction(lower, upper, H(text)), expected)
    })
  }

  const stdvar3Buckets = "buckets:[0 0 0 0 0 0 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0 1 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 ] " +
    "n_buckets:[0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 ]"
  const stdvars: Array<[string, number, number]> = [
    // native_histograms.test: histogram_stddev_stdvar_1 ({1, 2, 3, 4}), _2, _3 ({-50, -8, 0, 3, 8, 9}), _4, _5, _6, _7
    ["schema:2 count:4 sum:10 buckets:[1 0 0 0 1 0 0 1 1]", 1.0787993180043811, 1.163807968526718],
    ["schema:8 count:10 sum:10 buckets:[1 2 3 4]", 0.0048960313898237465, 2.3971123370139447e-05],
    [`schema:3 count:7 sum:62 z_bucket:1 ${stdvar3Buckets}`, 42.94723640026, 1844.4651144196398],
    ["schema:0 count:10 sum:-112946 z_bucket:0 n_buckets:[0 0 1 1 1 0 1 1 0 0 3 0 0 0 1 0 0 1]", 27556.344499842, 759352122.1939945],
    ["schema:0 count:10 sum:-100 z_bucket:0 n_buckets:[0 0 0 0 10]", 1.3137084989848, 1.725830020304794],
    [`schema:3 count:7 sum:NaN z_bucket:1 ${stdvar3Buckets}`, nan, nan],
    [`schema:3 count:7 sum:Inf z_bucket:1 ${stdvar3Buckets}`, Inf, Inf],
    // histograms.test: testhistogram3 at 50m as NHCB
    ["schema:-53 count:110 sum:330 custom_values:[0 0.1 0.2 1] buckets:[0 50 20 40]", 2.7435461458749795, 7.527045454545455],
    ["schema:-53 count:20 sum:80 custom_values:[-0.25 -0.2 -0.1 0.3] buckets:[0 10 10]", 4.187667907081458, 17.5365625]
  ]
  it.each(stdvars)("histogram_stddev / histogram_stdvar of {{%s}}", (text, stddev, stdvar) => {
    near(histogramStdDev(H(text)), stddev)
    near(histogramStdVar(H(text)), stdvar)
  })
})
