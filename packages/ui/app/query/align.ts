/**
 * A range query's series laid out for uPlot: one shared x array (seconds) and, per series, a y array on it with
 * null where the series has no point (a gap). Written as plain loops: it runs on 1,000 series x 1,000 points.
 */
import { parseValue, type RangeSeries } from "./result.ts"

export interface Aligned {
  readonly x: Array<number>
  /** One array per series, same length as x; null is a gap. Infinities and NaN are gaps too. */
  readonly ys: Array<Array<number | null>>
}

/** The most points of a step grid alignSeries lays out. */
const maxGrid = 1_000_000

/**
 * Aligns `series` on the query's step grid start, start + step, … end; if a timestamp falls off that grid
 * (a server that did not snap to it), on the union of all timestamps instead. A range with no grid (a step
 * that is not positive and finite, an end before the start, or times that are not numbers) gives no points:
 * an empty x and an empty y array per series. A grid of more than maxGrid points (a tiny step) is not built:
 * the union of the timestamps is used, as its size is bounded by the data.
 */
export const alignSeries = (series: ReadonlyArray<RangeSeries>, start: number, end: number, step: number): Aligned => {
  const n = Math.floor((end - start) / step + 1e-9) + 1
  if (!(step > 0) || !Number.isFinite(step) || !Number.isFinite(n) || n < 1) return { x: [], ys: series.map(() => []) }
  if (n > maxGrid) return alignOnUnion(series)
  const tolerance = step * 1e-6
  const ys: Array<Array<number | null>> = []
  for (const s of series) {
    const y: Array<number | null> = new Array<number | null>(n).fill(null)
    const values = s.values ?? []
    for (let i = 0; i < values.length; i++) {
      const sample = values[i]!
      const k = Math.round((sample[0] - start) / step)
      if (k < 0 || k >= n || Math.abs(start + k * step - sample[0]) > tolerance) return alignOnUnion(series)
      const value = parseValue(sample[1])
      y[k] = Number.isFinite(value) ? value : null
    }
    ys.push(y)
  }
  const x: Array<number> = new Array<number>(n)
  for (let k = 0; k < n; k++) x[k] = start + k * step
  return { x, ys }
}

/** The general case: x is every timestamp any series has, sorted. */
const alignOnUnion = (series: ReadonlyArray<RangeSeries>): Aligned => {
  const times = new Set<number>()
  for (const s of series) for (const sample of s.values ?? []) times.add(sample[0])
  const x = [...times].sort((a, b) => a - b)
  const index = new Map<number, number>()
  for (let k = 0; k < x.length; k++) index.set(x[k]!, k)
  const ys = series.map((s) => {
    const y: Array<number | null> = new Array<number | null>(x.length).fill(null)
    for (const sample of s.values ?? []) {
      const value = parseValue(sample[1])
      y[index.get(sample[0])!] = Number.isFinite(value) ? value : null
    }
    return y
  })
  return { x, ys }
}

/**
 * Stacks visible series: each becomes the running sum of itself and the visible series before it (a missing
 * point counts as 0 in the sum but stays a gap). Hidden series are left as they are.
 */
export const stackSeries = (ys: ReadonlyArray<Array<number | null>>, visible: ReadonlyArray<boolean>): Array<Array<number | null>> => {
  const n = ys[0]?.length ?? 0
  const sums = new Float64Array(n)
  return ys.map((y, i) => {
    if (visible[i] === false) return y
    const out: Array<number | null> = new Array<number | null>(n)
    for (let k = 0; k < n; k++) {
      const value = y[k]
      if (value === null || value === undefined) out[k] = null
      else {
        const sum = sums[k]! + value
        sums[k] = sum
        out[k] = sum
      }
    }
    return out
  })
}
