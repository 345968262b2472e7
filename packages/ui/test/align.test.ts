import { describe, expect, it } from "vitest"
import { alignSeries, stackSeries } from "../app/query/align.ts"
import type { RangeSeries, Sample } from "../app/query/result.ts"

const series = (values: ReadonlyArray<Sample> | undefined, metric: Record<string, string> = {}): RangeSeries =>
  values === undefined ? { metric } : { metric, values }

describe("alignSeries on the step grid", () => {
  it("lays series on start, start + step, … end with null for gaps", () => {
    const a = series([[100, "1"], [130, "3"], [160, "5"]])
    const b = series([[115, "2"], [145, "4"]])
    const { x, ys } = alignSeries([a, b], 100, 160, 15)
    expect(x).toEqual([100, 115, 130, 145, 160])
    expect(ys).toEqual([
      [1, null, 3, null, 5],
      [null, 2, null, 4, null]
    ])
  })

  it("keeps the grid when every series has the same gap", () => {
    const { x, ys } = alignSeries([series([[0, "1"], [20, "3"]]), series([[0, "4"], [20, "6"]])], 0, 20, 10)
    expect(x).toEqual([0, 10, 20])
    expect(ys).toEqual([[1, null, 3], [4, null, 6]])
  })

  it("ends at the last grid point not after end", () => {
    expect(alignSeries([], 0, 100, 30).x).toEqual([0, 30, 60, 90])
    expect(alignSeries([], 0, 89.9, 30).x).toEqual([0, 30, 60])
  })

  it("has one point when start is end", () => {
    const { x, ys } = alignSeries([series([[50, "7"]])], 50, 50, 15)
    expect(x).toEqual([50])
    expect(ys).toEqual([[7]])
  })

  it("gives the full grid and no y arrays for no series", () => {
    const { x, ys } = alignSeries([], 10, 40, 10)
    expect(x).toEqual([10, 20, 30, 40])
    expect(ys).toEqual([])
  })

  it("gives all nulls for a series without values (e.g. histograms only) or with an empty list", () => {
    const { ys } = alignSeries([series(undefined), series([])], 0, 20, 10)
    expect(ys).toEqual([[null, null, null], [null, null, null]])
  })

  it("turns infinities and NaN into gaps, and keeps other values exactly", () => {
    const { ys } = alignSeries(
      [series([[0, "+Inf"], [1, "-Inf"], [2, "NaN"], [3, "Inf"], [4, "1e308"], [5, "-1.5e-300"], [6, "0"], [7, "-0"], [8, "1.7976931348623157e308"]])],
      0, 8, 1
    )
    expect(ys[0]).toEqual([null, null, null, null, 1e308, -1.5e-300, 0, -0, Number.MAX_VALUE])
  })

  it("keeps one y array per series, in order, each as long as x", () => {
    const many = Array.from({ length: 50 }, (_, i) => series([[i % 10, String(i)]]))
    const { x, ys } = alignSeries(many, 0, 9, 1)
    expect(ys).toHaveLength(50)
    for (let i = 0; i < 50; i++) {
      expect(ys[i]).toHaveLength(x.length)
      expect(ys[i]![i % 10]).toBe(i)
      expect(ys[i]!.filter((v) => v !== null)).toHaveLength(1)
    }
  })

  it("does not lose the last grid point to floating-point error", () => {
    // (0.3 - 0.1) / 0.1 is 1.9999999999999996
    const { x, ys } = alignSeries([series([[0.1, "1"], [0.2, "2"], [0.30000000000000004, "3"]])], 0.1, 0.3, 0.1)
    expect(x).toHaveLength(3)
    expect(ys[0]).toEqual([1, 2, 3])
  })

  it("stays on the grid (keeping gaps) for a sub-second step at a real epoch time, with ms-rounded timestamps", () => {
    const start = 1714571100
    const step = 0.1
    const values: Array<Sample> = []
    for (let k = 0; k <= 1000; k++) if (k !== 500) values.push([Number(((start * 1000 + k * 100) / 1000).toFixed(3)), String(k)])
    const { x, ys } = alignSeries([series(values)], start, start + 100, step)
    expect(x).toHaveLength(1001)
    expect(ys[0]![500]).toBeNull()
    expect(ys[0]![501]).toBe(501)
    expect(ys[0]!.filter((v) => v === null)).toHaveLength(1)
  })

  it("accepts timestamps that are a hair off the grid", () => {
    const { x, ys } = alignSeries([series([[1000.0000001, "1"], [1015, "2"]])], 1000, 1015, 15)
    expect(x).toEqual([1000, 1015])
    expect(ys).toEqual([[1, 2]])
  })
})

describe("alignSeries with no grid", () => {
  // These threw a RangeError (an invalid array length) before.
  it("gives no points for a step that is not positive and finite", () => {
    const s = [series([[0, "1"], [10, "2"]]), series(undefined)]
    for (const step of [0, -0, -10, NaN, Infinity, -Infinity]) {
      expect(alignSeries(s, 0, 20, step), String(step)).toEqual({ x: [], ys: [[], []] })
    }
  })

  it("gives no points for an end before the start", () => {
    expect(alignSeries([series([[100, "1"]])], 100, 50, 10)).toEqual({ x: [], ys: [[]] })
    expect(alignSeries([series([[100, "1"]])], 100, 89.9, 10)).toEqual({ x: [], ys: [[]] })
    expect(alignSeries([], 100, 0, 10)).toEqual({ x: [], ys: [] })
  })

  it("gives no points for times that are not numbers", () => {
    expect(alignSeries([series([[0, "1"]])], NaN, 10, 1)).toEqual({ x: [], ys: [[]] })
    expect(alignSeries([series([[0, "1"]])], 0, NaN, 1)).toEqual({ x: [], ys: [[]] })
    expect(alignSeries([series([[0, "1"]])], 0, Infinity, 1)).toEqual({ x: [], ys: [[]] })
  })

  it("uses the union of timestamps rather than build a huge grid for a tiny step", () => {
    const { x, ys } = alignSeries([series([[0, "1"], [1, "2"]])], 0, 1, 1e-12)
    expect(x).toEqual([0, 1])
    expect(ys).toEqual([[1, 2]])
  })
})

describe("alignSeries off the grid (the union of timestamps)", () => {
  it("uses every timestamp of any series, sorted, with null where a series has none", () => {
    const a = series([[107, "1"], [100, "2"]])
    const b = series([[100, "3"], [130, "4"]])
    const { x, ys } = alignSeries([a, b], 100, 130, 15)
    expect(x).toEqual([100, 107, 130])
    expect(ys).toEqual([
      [2, 1, null],
      [3, null, 4]
    ])
  })

  it("falls back when a sample is before start or after end", () => {
    expect(alignSeries([series([[85, "1"], [100, "2"]])], 100, 130, 15).x).toEqual([85, 100])
    expect(alignSeries([series([[100, "1"], [145, "2"]])], 100, 130, 15).x).toEqual([100, 145])
  })

  it("falls back when an off-grid sample is in a later series, ignoring what the earlier ones gave", () => {
    const a = series([[0, "1"], [10, "2"], [20, "3"]])
    const b = series([[5, "9"]])
    const { x, ys } = alignSeries([a, b], 0, 20, 10)
    expect(x).toEqual([0, 5, 10, 20])
    expect(ys).toEqual([[1, null, 2, 3], [null, 9, null, null]])
  })

  it("turns infinities and NaN into gaps there too", () => {
    const { ys } = alignSeries([series([[1, "+Inf"], [2.5, "NaN"], [3, "-Inf"], [4, "2"]])], 0, 10, 2)
    expect(ys).toEqual([[null, null, null, 2]])
  })

  it("keeps series without values as all nulls", () => {
    const { x, ys } = alignSeries([series([[3, "1"]]), series(undefined)], 0, 10, 5)
    expect(x).toEqual([3])
    expect(ys).toEqual([[1], [null]])
  })
})

describe("stackSeries", () => {
  it("makes each visible series the running sum of itself and the visible ones before it", () => {
    const ys = [
      [1, 2, 3],
      [10, 20, 30],
      [100, 200, 300]
    ]
    expect(stackSeries(ys, [true, true, true])).toEqual([
      [1, 2, 3],
      [11, 22, 33],
      [111, 222, 333]
    ])
  })

  it("counts a missing point as 0 in the sum but leaves it a gap", () => {
    const ys = [
      [1, null, 3],
      [null, 20, 30],
      [100, 200, null]
    ]
    expect(stackSeries(ys, [true, true, true])).toEqual([
      [1, null, 3],
      [null, 20, 33],
      [101, 220, null]
    ])
  })

  it("leaves hidden series as they are and out of the sums", () => {
    const ys = [
      [1, 2],
      [10, 20],
      [100, 200]
    ]
    const out = stackSeries(ys, [true, false, true])
    expect(out).toEqual([
      [1, 2],
      [10, 20],
      [101, 202]
    ])
    expect(out[1]).toBe(ys[1])
  })

  it("skips a hidden first series", () => {
    expect(stackSeries([[5, 5], [1, 2], [3, 4]], [false, true, true])).toEqual([[5, 5], [1, 2], [4, 6]])
  })

  it("treats series with no visibility entry as visible", () => {
    expect(stackSeries([[1], [2], [3]], [true])).toEqual([[1], [3], [6]])
    expect(stackSeries([[1], [2]], [])).toEqual([[1], [3]])
  })

  it("handles negative values", () => {
    expect(stackSeries([[5, -5], [-10, 10]], [true, true])).toEqual([[5, -5], [-5, 5]])
  })

  it("does not change its input", () => {
    const ys = [[1, null], [2, 3]]
    const copy = JSON.parse(JSON.stringify(ys)) as typeof ys
    stackSeries(ys, [true, true])
    expect(ys).toEqual(copy)
  })

  it("gives nothing for nothing", () => {
    expect(stackSeries([], [])).toEqual([])
    expect(stackSeries([[], []], [true, true])).toEqual([[], []])
  })

  it("stacks what alignSeries gives", () => {
    const { ys } = alignSeries([series([[0, "1"], [10, "2"]]), series([[10, "3"], [20, "4"]])], 0, 20, 10)
    expect(stackSeries(ys, [true, true])).toEqual([[1, 2, null], [null, 5, 4]])
  })
})
