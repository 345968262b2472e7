/**
 * The compensated sum, the mean and the variance as Prometheus computes them, shared by the aggregations
 * and the `*_over_time` functions.
 */
import type { Nums } from "./evalContext.ts"

export const kahanSum = (xs: Nums, lo = 0, hi = xs.length) => {
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

/**
 * The mean as Prometheus computes it: a compensated sum divided by the count while the sum stays finite;
 * once it would overflow, an incremental mean (mean = (n-1)/n * mean + x/n) that never leaves the range of
 * the inputs. With an infinity or NaN among the inputs, plain IEEE arithmetic decides (Inf, -Inf or NaN).
 */
export const mean = (xs: Nums, lo = 0, hi = xs.length) => {
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
export const variance = (xs: Nums, lo = 0, hi = xs.length) => {
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
