/**
 * `sum`, `count`, `group`, `min` and `max` of a range function take its series one at a time (streamed);
 * in parentheses the same aggregation takes the whole vector. Both must give the same answer, annotations
 * included, on the values that make the two easy to tell apart: sums that need their compensation, NaN
 * and infinities among the members, and floats mixed with native histograms.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { rangeQuery } from "../../src/promql/engine.ts"
import * as Runner from "../../src/promql/testRunner.ts"

const script = `load 1m
  x{g="a", i="1"} 1e100 1 NaN 5 _ 3 Inf 1 -Inf 2
  x{g="a", i="2"} 1 1e100 2 NaN 4 _ 1 -Inf 1 2
  x{g="a", i="3"} -1e100 -1e100 3 7 NaN 1 2 3 4 5
  x{g="b", i="1"} 0.1 0.2 0.3 _ _ 1e-300 1e308 1e308 1e308 -1e308
  x{g="b", i="2"} 0.7 0.1 {{schema:0 sum:5 count:4 buckets:[1 2 1]}} {{schema:0 sum:5 count:4 buckets:[1 2 1]}} 3 3 3 {{schema:0 sum:1 count:1 buckets:[1]}} 1 1
  x{g="c", i="1"} {{schema:0 sum:5 count:4 buckets:[1 2 1]}} {{schema:0 sum:6 count:5 buckets:[1 3 1]}} {{schema:1 sum:6 count:5 buckets:[1 3 1]}} {{schema:0 sum:1 count:1 buckets:[1]}} _ 1 2 3 4 5
  x{g="c", i="2"} {{schema:0 sum:5 count:4 buckets:[1 2 1]}} 2 {{schema:0 sum:5 count:4 buckets:[1 2 1]}} 1 _ _ _ _ _ 9
`

describe("aggregations over a streamed range function", () => {
  it.effect("answer as the whole-vector path does, annotations included", () =>
    Effect.gen(function*() {
      const store = new Runner.MemoryStore()
      for (const c of Runner.parseScript(script)) if (c.kind === "load") store.load(c)
      const source = store.source({ histograms: false, startTimestamps: false })
      let compared = 0
      for (const op of ["sum", "count", "group", "min", "max"]) {
        for (const grouping of ["", " by (g)", " without (i)", " by (i)"]) {
          for (const fn of ["last_over_time(x[1m])", "rate(x[3m])", "max_over_time(x[2m])"]) {
            const streamed = `${op}${grouping} (${fn})`
            const whole = `${op}${grouping} ((${fn}))`
            const a = yield* Effect.result(rangeQuery(source, streamed, 0, 9 * 60_000, 30_000))
            const b = yield* Effect.result(rangeQuery(source, whole, 0, 9 * 60_000, 30_000))
            assert.deepStrictEqual(JSON.stringify(a), JSON.stringify(b), streamed)
            compared++
          }
        }
      }
      assert.strictEqual(compared, 60)
    }))

  it.effect("sums with the compensation (a plain sum of 1e100, 1, -1e100 gives 0)", () =>
    Effect.gen(function*() {
      const store = new Runner.MemoryStore()
      for (const c of Runner.parseScript("load 1m\n  y{i=\"1\"} 1e100\n  y{i=\"2\"} 1\n  y{i=\"3\"} -1e100")) if (c.kind === "load") store.load(c)
      const v = yield* rangeQuery(store.source({ histograms: false, startTimestamps: false }), "sum(last_over_time(y[1m]))", 0, 0, 1000)
      assert.strictEqual(v.type, "matrix")
      if (v.type === "matrix") assert.deepStrictEqual(v.series[0]!.samples.map((s) => s.v), [1])
    }))
})
