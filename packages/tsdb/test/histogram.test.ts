/**
 * Native histograms (src/promql/histogram.ts): Prometheus 3's FloatHistogram arithmetic (reconciling
 * schemas, zero buckets and custom bounds), the span layouts it produces, compaction, reset detection,
 * resolution reduction, scaling, the trim operators, bucket bounds, and the promqltest `{{...}}` notation.
 */
import { describe, expect, it } from "vitest"
import type { Bucket, CounterResetHint, Span } from "../src/promql/histogram.ts"
import {
  addCompensation,
  allBuckets,
  bucketUpperBound,
  customBucketsSchema,
  FloatHistogram,
  HistogramError,
  negativeBuckets,
  parseHistogramText,
  positiveBuckets,
  spansMatch
} from "../src/promql/histogram.ts"

/** A histogram from promqltest notation (the text inside `{{...}}`). */
const h = (text: string): FloatHistogram => parseHistogramText(text).histogram

/** The exact layout of both sides, not compacted. */
const layout = (x: FloatHistogram) => ({
  positiveSpans: x.positiveSpans,
  positiveBuckets: x.positiveBuckets,
  negativeSpans: x.negativeSpans,
  negativeBuckets: x.negativeBuckets
})

const spans = (...pairs: Array<[number, number]>): Array<Span> => pairs.map(([offset, length]) => ({ offset, length }))

/** A bucket as [lower, upper, lowerInclusive, upperInclusive, count, index]. */
const row = (b: Bucket) => [b.lower, b.upper, b.lowerInclusive, b.upperInclusive, b.count, b.index]

describe("bucketUpperBound", () => {
  it.each([
    { schema: 0, index: 0, bound: 1 },
    { schema: 0, index: 1, bound: 2 },
    { schema: 0, index: 3, bound: 8 },
    { schema: 0, index: -1, bound: 0.5 },
    // Prometheus's precomputed boundary table, not Math.SQRT2 (1.4142135623730951).
    { schema: 1, index: 1, bound: 1.414213562373095 },
    { schema: 1, index: -1, bound: 0.7071067811865475 },
    { schema: 1, index: 2, bound: 2 },
    { schema: 3, index: 5, bound: 1.5422108254079407 },
    { schema: -1, index: 1, bound: 4 },
    { schema: -1, index: -1, bound: 0.25 },
    { schema: -4, index: 1, bound: 65536 },
    // The last bucket for finite values ends at the largest float; the next one holds ±Inf.
    { schema: 0, index: 1024, bound: Number.MAX_VALUE },
    { schema: 0, index: 1025, bound: Infinity },
    { schema: -1, index: 512, bound: Number.MAX_VALUE },
    { schema: 8, index: 1024 * 256, bound: Number.MAX_VALUE },
    { schema: 0, index: -1074, bound: 5e-324 }
  ])("schema $schema, index $index: $bound", ({ schema, index, bound }) => {
    expect(bucketUpperBound(schema, index)).toBe(bound)
  })

  it("custom buckets: the custom values, -Inf below the first bucket, +Inf for the last", () => {
    const cv = [1, 2.5]
    expect([-1, 0, 1, 2].map((i) => bucketUpperBound(customBucketsSchema, i, cv))).toEqual([-Infinity, 1, 2.5, Infinity])
    expect(() => bucketUpperBound(customBucketsSchema, 3, cv)).toThrow(/out of bounds/)
  })
})

describe("allBuckets", () => {
  it.each([
    {
      name: "schema 0: negative buckets from the lowest, the zero bucket, positive buckets; empty buckets included",
      text: "z_bucket:3 z_bucket_w:0.001 buckets:[1 2] n_offset:1 n_buckets:[4 0 5]",
      rows: [
        [-8, -4, true, false, 5, 3],
        [-4, -2, true, false, 0, 2],
        [-2, -1, true, false, 4, 1],
        [-0.001, 0.001, true, true, 3, 0],
        [0.5, 1, false, true, 1, 0],
        [1, 2, false, true, 2, 1]
      ]
    },
    {
      name: "schema 1: boundaries at powers of √2; no zero bucket without zero count",
      text: "schema:1 z_bucket_w:0.001 offset:-1 buckets:[1 2 3]",
      rows: [
        [0.5, 0.7071067811865475, false, true, 1, -1],
        [0.7071067811865475, 1, false, true, 2, 0],
        [1, 1.414213562373095, false, true, 3, 1]
      ]
    },
    {
      name: "schema -1: boundaries at powers of 4; buckets overlapping the zero bucket are cut at its threshold",
      text: "schema:-1 z_bucket:1 z_bucket_w:0.5 buckets:[1 2] n_buckets:[3]",
      rows: [
        [-1, -0.5, true, false, 3, 0],
        [-0.5, 0.5, true, true, 1, 0],
        [0.5, 1, false, true, 1, 0],
        [1, 4, false, true, 2, 1]
      ]
    },
    {
      name: "custom buckets: from -Inf (inclusive) to +Inf, upper bounds inclusive",
      text: "schema:-53 custom_values:[1 5] buckets:[1 0 2]",
      rows: [
        [-Infinity, 1, true, true, 1, 0],
        [1, 5, false, true, 0, 1],
        [5, Infinity, false, true, 2, 2]
      ]
    },
    {
      name: "custom buckets with gaps",
      text: "schema:-53 custom_values:[-10 -5 0 10] offset:1 buckets:[7] ",
      rows: [[-10, -5, false, true, 7, 1]]
    }
  ])("$name", ({ text, rows }) => {
    expect(allBuckets(h(text)).map(row)).toEqual(rows)
  })

  it("positiveBuckets and negativeBuckets go outwards from zero and are not cut at the zero threshold", () => {
    const x = h("schema:-1 z_bucket:1 z_bucket_w:0.5 buckets:[1 2] n_buckets:[3 4]")
    expect(positiveBuckets(x).map(row)).toEqual([
      [0.25, 1, false, true, 1, 0],
      [1, 4, false, true, 2, 1]
    ])
    expect(negativeBuckets(x).map(row)).toEqual([
      [-1, -0.25, true, false, 3, 0],
      [-4, -1, true, false, 4, 1]
    ])
  })
})

describe("parseHistogramText", () => {
  it("reads every key; buckets with an offset become one span", () => {
    const { histogram: x, counterResetHintSet } = parseHistogramText(
      "schema:1 count:22 sum:3 z_bucket:1 z_bucket_w:0.001 offset:-2 buckets:[5 10 7] n_offset:3 n_buckets:[1] counter_reset_hint:gauge"
    )
    expect(counterResetHintSet).toBe(true)
    expect({ ...x }).toEqual({
      counterResetHint: "gauge",
      schema: 1,
      zeroThreshold: 0.001,
      zeroCount: 1,
      count: 22,
      sum: 3,
      positiveSpans: spans([-2, 3]),
      negativeSpans: spans([3, 1]),
      positiveBuckets: [5, 10, 7],
      negativeBuckets: [1],
      customValues: []
    })
  })

  it.each([
    { text: "", want: { schema: 0, count: 0, positiveSpans: [], counterResetHint: "unknown" } },
    { text: "  sum:1  count:2 ", want: { sum: 1, count: 2 } },
    { text: "schema:-53 custom_values:[1 2.5 1e3]", want: { schema: -53, customValues: [1, 2.5, 1000] } },
    { text: "custom_values:[]", want: { customValues: [] } },
    { text: "offset:5", want: { positiveSpans: [], positiveBuckets: [] } },
    { text: "sum:-Inf count:NaN", want: { sum: -Infinity, count: NaN } },
    { text: "sum:+Inf z_bucket:-2", want: { sum: Infinity, zeroCount: -2 } },
    { text: "buckets:[inf -2 1_000 .5 7e-1]", want: { positiveBuckets: [Infinity, -2, 1000, 0.5, 0.7] } },
    // Integers as Go's ParseInt with base prefix, so a leading 0 means octal (as in Prometheus).
    { text: "count:0x10 sum:010 z_bucket:09", want: { count: 16, sum: 8, zeroCount: 9 } },
    { text: "SCHEMA:2 Counter_Reset_Hint:Not_Reset", want: { schema: 2, counterResetHint: "not_reset" } }
  ])("$text", ({ text, want }) => {
    expect(h(text)).toMatchObject(want)
  })

  it("says whether the counter reset hint was given", () => {
    expect(parseHistogramText("count:1").counterResetHintSet).toBe(false)
    expect(parseHistogramText("counter_reset_hint:unknown").counterResetHintSet).toBe(true)
  })

  it.each([
    { text: "schema:1.5", error: /schema takes an integer/ },
    { text: "offset:0x1", error: /offset takes an integer/ },
    { text: "buckets:[1 x]", error: /bad number "x"/ },
    { text: "buckets:1", error: /buckets takes a list/ },
    { text: "buckets:[1 2", error: /expected key:value, got "buckets:\[1"/ },
    { text: "foo:1", error: /unknown key "foo"/ },
    { text: "sum:1 sum:2", error: /duplicate key "sum"/ },
    { text: "z_bucket_w:-1", error: /z_bucket_w takes an unsigned number/ },
    { text: "sum:1m", error: /bad number "1m"/ },
    { text: "sum:1e400", error: /bad number "1e400"/ },
    { text: "sum: 1", error: /expected key:value/ },
    { text: "counter_reset_hint:maybe", error: /bad counter_reset_hint "maybe"/ }
  ])("rejects $text", ({ text, error }) => {
    expect(() => parseHistogramText(text)).toThrow(error)
  })
})

describe("toString", () => {
  it.each([
    { name: "empty", in: "", out: "{{}}" },
    {
      name: "keys in Prometheus's order, defaults left out",
      in: "counter_reset_hint:gauge n_buckets:[1] buckets:[5 10 7] offset:1 z_bucket_w:0.001 z_bucket:1 sum:3 count:22 schema:1",
      out: "{{schema:1 count:22 sum:3 z_bucket:1 z_bucket_w:0.001 counter_reset_hint:gauge offset:1 buckets:[5 10 7] n_buckets:[1]}}"
    },
    { name: "unknown hint left out", in: "count:1 counter_reset_hint:unknown", out: "{{count:1}}" },
    { name: "custom buckets", in: "schema:-53 custom_values:[1 2.5] buckets:[1 2 3]", out: "{{schema:-53 custom_values:[1 2.5] buckets:[1 2 3]}}" },
    { name: "custom buckets without bounds", in: "schema:-53 buckets:[4]", out: "{{schema:-53 custom_values:[] buckets:[4]}}" },
    {
      name: "floats as Go's %g",
      in: "count:1e6 sum:0.00001 z_bucket:123456 z_bucket_w:0.0001 buckets:[1234567 0.1 NaN Inf -Inf -0.5]",
      out: "{{count:1e+06 sum:1e-05 z_bucket:123456 z_bucket_w:0.0001 buckets:[1.234567e+06 0.1 NaN +Inf -Inf -0.5]}}"
    }
  ])("$name", ({ in: text, out }) => {
    expect(h(text).toString()).toBe(out)
  })

  it("compacts to one span per side, empty buckets written out, edges trimmed", () => {
    const x = new FloatHistogram({
      count: 3,
      positiveSpans: spans([-1, 2], [2, 1]),
      positiveBuckets: [0, 1, 2],
      negativeSpans: spans([2, 1], [0, 2]),
      negativeBuckets: [1, 0, 0]
    })
    expect(x.toString()).toBe("{{count:3 buckets:[1 0 0 2] n_offset:2 n_buckets:[1]}}")
    expect(x.positiveSpans).toEqual(spans([-1, 2], [2, 1]))
  })

  it("round-trips through parseHistogramText", () => {
    const text = "schema:-2 count:9.5 sum:-3.25 z_bucket:0.5 z_bucket_w:1e-07 counter_reset_hint:reset offset:-3 buckets:[1 0 2] n_offset:4 n_buckets:[6]"
    expect(h(text).toString()).toBe(`{{${text}}}`)
    expect(h(h(text).toString().slice(2, -2)).equals(h(text))).toBe(true)
  })
})

describe("add", () => {
  it.each([
    {
      name: "same layout: bucket by bucket",
      a: "count:6 sum:10 z_bucket:1 z_bucket_w:0.001 buckets:[1 2] n_buckets:[2]",
      b: "count:10 sum:5 z_bucket:2 z_bucket_w:0.001 buckets:[3 4] n_buckets:[1]",
      sum: "{{count:16 sum:15 z_bucket:3 z_bucket_w:0.001 buckets:[4 6] n_buckets:[3]}}"
    },
    {
      name: "different schemas: the finer one is reduced to the coarser (buckets 1..3 of schema 1 become 1, 1, 2)",
      a: "schema:1 count:22 sum:3 offset:1 buckets:[5 10 7]",
      b: "schema:0 count:5 sum:10 buckets:[1 2 2]",
      sum: "{{count:27 sum:13 buckets:[1 17 9]}}"
    },
    {
      name: "different zero thresholds: buckets within the wider zero bucket move into it",
      a: "count:6 z_bucket:1 z_bucket_w:0.001 offset:-1 buckets:[2 3]",
      b: "count:6 z_bucket:2 z_bucket_w:0.5 offset:1 buckets:[4]",
      sum: "{{count:12 z_bucket:5 z_bucket_w:0.5 buckets:[3 4]}}"
    },
    {
      name: "a zero threshold inside a populated bucket widens to that bucket's upper bound",
      a: "count:6 z_bucket:1 z_bucket_w:0.001 buckets:[2 3]",
      b: "count:1 z_bucket:1 z_bucket_w:0.7",
      sum: "{{count:7 z_bucket:4 z_bucket_w:1 offset:1 buckets:[3]}}"
    },
    {
      name: "negative buckets reconcile with the zero bucket too",
      a: "count:5 z_bucket:1 z_bucket_w:0.001 n_offset:-1 n_buckets:[2 2]",
      b: "count:1 z_bucket:1 z_bucket_w:0.5",
      sum: "{{count:6 z_bucket:4 z_bucket_w:0.5 n_buckets:[2]}}"
    },
    {
      name: "custom buckets with the same bounds",
      a: "schema:-53 count:3 sum:4 custom_values:[1 2] buckets:[1 2]",
      b: "schema:-53 count:5 sum:6 custom_values:[1 2] offset:1 buckets:[2 3]",
      sum: "{{schema:-53 count:8 sum:10 custom_values:[1 2] buckets:[1 4 3]}}"
    },
    {
      name: "custom buckets with different bounds: summed in the buckets of the common bounds",
      a: "schema:-53 count:10 custom_values:[1 2 4] buckets:[1 2 3 4]",
      b: "schema:-53 count:100 custom_values:[2 3 4] buckets:[10 20 30 40]",
      sum: "{{schema:-53 count:110 custom_values:[2 4] buckets:[13 53 44]}}",
      reconciled: true
    },
    {
      name: "custom buckets without common bounds: all in the +Inf bucket",
      a: "schema:-53 count:3 custom_values:[1.5] buckets:[1 2]",
      b: "schema:-53 count:30 custom_values:[2.5] buckets:[10 20]",
      sum: "{{schema:-53 count:33 custom_values:[] buckets:[33]}}",
      reconciled: true
    }
  ])("$name", ({ a, b, sum, reconciled }) => {
    for (const [x, y] of [
      [a, b],
      [b, a]
    ] as const) {
      const left = h(x)
      const right = h(y)
      expect(left.add(right)).toEqual({ counterResetCollision: false, nhcbBoundsReconciled: reconciled ?? false })
      expect(left.toString()).toBe(sum)
      expect(right.toString()).toBe(h(y).toString())
    }
  })

  it.each([
    {
      name: "a bucket right after a span extends that span (leaving the next span at offset 0)",
      a: { positiveSpans: spans([0, 1], [1, 1]), positiveBuckets: [1, 2] },
      b: { positiveSpans: spans([1, 1]), positiveBuckets: [5] },
      want: { positiveSpans: spans([0, 2], [0, 1]), positiveBuckets: [1, 5, 2] }
    },
    {
      name: "a bucket right before a span extends it downwards",
      a: { positiveSpans: spans([0, 1], [3, 1]), positiveBuckets: [1, 2] },
      b: { positiveSpans: spans([3, 1]), positiveBuckets: [5] },
      want: { positiveSpans: spans([0, 1], [2, 2]), positiveBuckets: [1, 5, 2] }
    },
    {
      name: "a bucket inside a gap gets its own span",
      a: { positiveSpans: spans([0, 1], [3, 1]), positiveBuckets: [1, 2] },
      b: { positiveSpans: spans([2, 1]), positiveBuckets: [5] },
      want: { positiveSpans: spans([0, 1], [1, 1], [1, 1]), positiveBuckets: [1, 5, 2] }
    },
    {
      name: "buckets below and above all spans; empty buckets are kept",
      a: { positiveSpans: spans([2, 2]), positiveBuckets: [0, 2] },
      b: { positiveSpans: spans([-1, 1], [5, 1]), positiveBuckets: [5, 0] },
      want: { positiveSpans: spans([-1, 1], [2, 2], [1, 1]), positiveBuckets: [5, 0, 2, 0] }
    }
  ])("layout: $name", ({ a, b, want }) => {
    const x = new FloatHistogram(a)
    x.add(new FloatHistogram(b))
    expect(layout(x)).toEqual({ negativeSpans: [], negativeBuckets: [], ...want })
  })

  it.each<{ a: CounterResetHint; b: CounterResetHint; hint: CounterResetHint; collision: boolean }>([
    { a: "reset", b: "reset", hint: "reset", collision: false },
    { a: "reset", b: "not_reset", hint: "unknown", collision: true },
    { a: "not_reset", b: "reset", hint: "unknown", collision: true },
    { a: "gauge", b: "reset", hint: "gauge", collision: false },
    { a: "not_reset", b: "gauge", hint: "gauge", collision: false },
    { a: "unknown", b: "reset", hint: "unknown", collision: false },
    { a: "reset", b: "unknown", hint: "unknown", collision: false }
  ])("counter reset hint: $a + $b is $hint", ({ a, b, hint, collision }) => {
    const x = new FloatHistogram({ counterResetHint: a })
    expect(x.add(new FloatHistogram({ counterResetHint: b })).counterResetCollision).toBe(collision)
    expect(x.counterResetHint).toBe(hint)
  })

  it("refuses to mix exponential and custom buckets", () => {
    const x = h("count:1 buckets:[1]")
    const error = (() => {
      try {
        x.add(h("schema:-53 custom_values:[1] buckets:[1]"))
      } catch (e) {
        return e
      }
    })()
    expect(error).toBeInstanceOf(HistogramError)
    expect(error).toMatchObject({
      reason: "mixed_exponential_custom",
      message: "cannot apply this operation on histograms with a mix of exponential and custom bucket schemas"
    })
    expect(() => x.sub(h("schema:-53"))).toThrow(HistogramError)
    expect(() => x.kahanAdd(h("schema:-53"), undefined)).toThrow(HistogramError)
  })
})

describe("sub", () => {
  it.each([
    {
      name: "bucket by bucket; the hint is adjusted as for add",
      a: "count:10 sum:20 z_bucket:2 z_bucket_w:0.001 buckets:[4 6] n_buckets:[3] counter_reset_hint:not_reset",
      b: "count:4 sum:5 z_bucket:1 z_bucket_w:0.001 buckets:[1 1] n_buckets:[2] counter_reset_hint:not_reset",
      diff: "{{count:6 sum:15 z_bucket:1 z_bucket_w:0.001 counter_reset_hint:not_reset buckets:[3 5] n_buckets:[1]}}"
    },
    {
      name: "buckets missing on the left are inserted negated",
      a: "count:2 buckets:[2]",
      b: "count:1 offset:2 buckets:[1]",
      diff: "{{count:1 buckets:[2 0 -1]}}"
    },
    {
      name: "different schemas",
      a: "schema:0 count:9 buckets:[2 3 4]",
      b: "schema:2 count:3 offset:1 buckets:[1 1 1 1]",
      diff: "{{count:6 buckets:[2 -1 4]}}"
    },
    {
      name: "custom buckets with different bounds",
      a: "schema:-53 custom_values:[1 2] buckets:[5 5 5]",
      b: "schema:-53 custom_values:[2] buckets:[1 1]",
      diff: "{{schema:-53 custom_values:[2] buckets:[9 4]}}"
    },
    {
      name: "equal histograms leave empty buckets that compact removes",
      a: "count:3 buckets:[1 2]",
      b: "count:3 buckets:[1 2]",
      diff: "{{}}"
    }
  ])("$name", ({ a, b, diff }) => {
    const x = h(a)
    x.sub(h(b))
    expect(x.toString()).toBe(diff)
  })
})

describe("kahanAdd", () => {
  const parts = ["count:1 sum:1e100 buckets:[1e100]", "count:1 sum:1 buckets:[1]", "count:1 sum:-1e100 buckets:[-1e100]"]

  it("keeps what plain addition loses, folded back in with addCompensation", () => {
    const plain = h(parts[0]!)
    for (const p of parts.slice(1)) plain.add(h(p))
    expect(plain.toString()).toBe("{{count:3}}")

    const kahan = h(parts[0]!)
    let c: FloatHistogram | undefined
    for (const p of parts.slice(1)) c = kahan.kahanAdd(h(p), c).compensation
    expect(addCompensation(kahan, c!)).toBe(kahan)
    expect(kahan.compact(0).toString()).toBe("{{count:3 sum:1 buckets:[1]}}")
  })

  it("creates the compensation on first use, in the sum's layout, and updates it in place afterwards", () => {
    const x = h("schema:1 z_bucket_w:0.001 buckets:[1 2] n_buckets:[3]")
    const first = x.kahanAdd(h("schema:0 z_bucket_w:0.001 offset:2 buckets:[4]"), undefined)
    expect(first).toMatchObject({ counterResetCollision: false, nhcbBoundsReconciled: false })
    const c = first.compensation
    expect(c.schema).toBe(0)
    expect(c.positiveSpans).toEqual(x.positiveSpans)
    expect(c.negativeSpans).toEqual(x.negativeSpans)
    expect(c.positiveBuckets).toEqual(x.positiveBuckets.map(() => 0))
    expect(x.kahanAdd(h("schema:0 z_bucket_w:0.001 buckets:[1]"), c).compensation).toBe(c)
    expect(addCompensation(x, c).toString()).toBe("{{z_bucket_w:0.001 buckets:[2 2 4] n_buckets:[3]}}")
  })

  it("with custom buckets of different bounds", () => {
    const x = h("schema:-53 custom_values:[1 2] buckets:[1 1 1]")
    const r = x.kahanAdd(h("schema:-53 custom_values:[2 3] buckets:[1 1 1]"), undefined)
    expect(r.nhcbBoundsReconciled).toBe(true)
    expect(r.compensation.customValues).toEqual([2])
    expect(addCompensation(x, r.compensation).toString()).toBe("{{schema:-53 custom_values:[2] buckets:[3 3]}}")
  })
})

describe("compact", () => {
  it.each([
    {
      name: "empty buckets at span edges are dropped",
      in: { spans: spans([-2, 4]), buckets: [0, 1, 2, 0] },
      max: 0,
      out: { spans: spans([-1, 2]), buckets: [1, 2] }
    },
    {
      name: "a run of more than maxEmptyBuckets empty buckets splits the span",
      in: { spans: spans([0, 5]), buckets: [1, 0, 0, 2, 3] },
      max: 1,
      out: { spans: spans([0, 1], [2, 2]), buckets: [1, 2, 3] }
    },
    {
      name: "a run of at most maxEmptyBuckets stays",
      in: { spans: spans([0, 5]), buckets: [1, 0, 0, 2, 3] },
      max: 2,
      out: { spans: spans([0, 5]), buckets: [1, 0, 0, 2, 3] }
    },
    {
      name: "spans at most maxEmptyBuckets apart merge, the gap filled with empty buckets",
      in: { spans: spans([0, 1], [2, 1], [3, 1]), buckets: [1, 2, 3] },
      max: 2,
      out: { spans: spans([0, 4], [3, 1]), buckets: [1, 0, 0, 2, 3] }
    },
    {
      name: "adjacent spans merge",
      in: { spans: spans([0, 1], [0, 2]), buckets: [1, 2, 3] },
      max: 0,
      out: { spans: spans([0, 3]), buckets: [1, 2, 3] }
    },
    {
      name: "zero-length spans vanish, their offset kept",
      in: { spans: spans([1, 0], [2, 1], [1, 0]), buckets: [5] },
      max: 0,
      out: { spans: spans([3, 1]), buckets: [5] }
    },
    {
      name: "an all-empty side loses all spans",
      in: { spans: spans([0, 2], [4, 1]), buckets: [0, 0, 0] },
      max: 3,
      out: { spans: [], buckets: [] }
    },
    {
      name: "NaN is not empty",
      in: { spans: spans([0, 2]), buckets: [0, NaN] },
      max: 0,
      out: { spans: spans([1, 1]), buckets: [NaN] }
    }
  ])("$name", ({ in: side, max, out }) => {
    const x = new FloatHistogram({
      positiveSpans: side.spans,
      positiveBuckets: side.buckets,
      negativeSpans: structuredClone(side.spans),
      negativeBuckets: [...side.buckets]
    })
    expect(x.compact(max)).toBe(x)
    expect(layout(x)).toEqual({ positiveSpans: out.spans, positiveBuckets: out.buckets, negativeSpans: out.spans, negativeBuckets: out.buckets })
  })
})

describe("detectReset", () => {
  it.each([
    { name: "no change", prev: "count:3 buckets:[1 2]", cur: "count:3 buckets:[1 2]", reset: false },
    { name: "growth", prev: "count:3 buckets:[1 2]", cur: "count:5 z_bucket:1 buckets:[1 3]", reset: false },
    { name: "a smaller count", prev: "count:3 buckets:[1 2]", cur: "count:2 buckets:[1 2]", reset: true },
    { name: "a smaller bucket", prev: "count:3 buckets:[1 2]", cur: "count:3 buckets:[2 1]", reset: true },
    { name: "a smaller negative bucket", prev: "count:3 n_buckets:[1 2]", cur: "count:3 n_buckets:[2 1]", reset: true },
    { name: "a smaller zero bucket", prev: "count:3 z_bucket:2", cur: "count:3 z_bucket:1 buckets:[2]", reset: true },
    { name: "a populated bucket gone", prev: "count:3 buckets:[1 2]", cur: "count:3 offset:1 buckets:[3]", reset: true },
    { name: "an empty bucket gone", prev: "count:3 buckets:[0 3]", cur: "count:3 offset:1 buckets:[3]", reset: false },
    { name: "the sum does not matter", prev: "count:3 sum:10 buckets:[3]", cur: "count:3 sum:1 buckets:[3]", reset: false },
    { name: "hint reset wins", prev: "count:3 buckets:[3]", cur: "count:4 buckets:[4] counter_reset_hint:reset", reset: true },
    { name: "hint not_reset wins", prev: "count:3 buckets:[3]", cur: "count:1 buckets:[1] counter_reset_hint:not_reset", reset: false },
    { name: "hint gauge is ignored", prev: "count:3 buckets:[3]", cur: "count:1 buckets:[1] counter_reset_hint:gauge", reset: true },
    { name: "a higher schema", prev: "schema:0 count:3 buckets:[3]", cur: "schema:1 count:3 buckets:[3]", reset: true },
    {
      name: "a lower schema compares merged previous buckets (1 1 1 1 in schema 1 is 1 2 1 in schema 0)",
      prev: "schema:1 count:4 buckets:[1 1 1 1]",
      cur: "schema:0 count:4 buckets:[1 2 1]",
      reset: false
    },
    { name: "a lower schema with a smaller merged bucket", prev: "schema:1 count:4 buckets:[1 1 1 1]", cur: "schema:0 count:4 buckets:[1 1 2]", reset: true },
    { name: "a narrower zero bucket", prev: "count:1 z_bucket:1 z_bucket_w:0.5", cur: "count:1 z_bucket:1 z_bucket_w:0.25", reset: true },
    {
      name: "a wider zero bucket compares with the previous buckets inside it",
      prev: "count:6 z_bucket:1 z_bucket_w:0.001 buckets:[2 3]",
      cur: "count:6 z_bucket:3 z_bucket_w:1 offset:1 buckets:[3]",
      reset: false
    },
    {
      name: "a wider zero bucket holding less than the previous buckets inside it",
      prev: "count:6 z_bucket:1 z_bucket_w:0.001 buckets:[2 3]",
      cur: "count:6 z_bucket:2 z_bucket_w:1 offset:1 buckets:[4]",
      reset: true
    },
    {
      name: "a zero threshold inside a populated previous bucket",
      prev: "count:6 z_bucket:1 z_bucket_w:0.001 buckets:[2 3]",
      cur: "count:6 z_bucket:3 z_bucket_w:0.7 offset:1 buckets:[3]",
      reset: true
    },
    { name: "exponential to custom buckets", prev: "count:1 buckets:[1]", cur: "schema:-53 count:1 custom_values:[1] buckets:[1]", reset: true },
    { name: "custom to exponential buckets", prev: "schema:-53 count:1 custom_values:[1] buckets:[1]", cur: "count:1 buckets:[1]", reset: true },
    {
      name: "custom buckets, same bounds, a smaller bucket",
      prev: "schema:-53 count:2 custom_values:[1] buckets:[1 1]",
      cur: "schema:-53 count:2 custom_values:[1] buckets:[2]",
      reset: true
    },
    {
      name: "custom buckets, different bounds: compared over the common bounds",
      prev: "schema:-53 count:4 custom_values:[1 2 3] buckets:[1 1 1 1]",
      cur: "schema:-53 count:4 custom_values:[2 3] buckets:[2 1 1]",
      reset: false
    },
    {
      name: "custom buckets, different bounds, less up to a common bound",
      prev: "schema:-53 count:4 custom_values:[1 2 3] buckets:[1 1 1 1]",
      cur: "schema:-53 count:4 custom_values:[2 3] buckets:[1 2 1]",
      reset: true
    }
  ])("$name: $reset", ({ prev, cur, reset }) => {
    expect(h(cur).detectReset(h(prev))).toBe(reset)
  })
})

describe("reduceResolution and copyToSchema", () => {
  it.each([
    {
      name: "schema 1 to 0: pairs of buckets merge, gaps stay gaps",
      in: { schema: 1, positiveSpans: spans([0, 2], [3, 2]), positiveBuckets: [1, 2, 3, 4] },
      target: 0,
      out: { positiveSpans: spans([0, 2], [1, 1]), positiveBuckets: [1, 2, 7] }
    },
    {
      name: "schema 1 to -1",
      in: { schema: 1, positiveSpans: spans([0, 2], [3, 2]), positiveBuckets: [1, 2, 3, 4] },
      target: -1,
      out: { positiveSpans: spans([0, 3]), positiveBuckets: [1, 2, 7] }
    },
    {
      name: "schema 2 to 0 with negative indices; empty buckets stay",
      in: { schema: 2, negativeSpans: spans([-3, 5], [5, 1]), negativeBuckets: [1, 2, 3, 4, 0, 0] },
      target: 0,
      out: { negativeSpans: spans([0, 3]), negativeBuckets: [10, 0, 0] }
    }
  ])("$name", ({ in: init, target, out }) => {
    const x = new FloatHistogram({ ...init, count: 10, counterResetHint: "not_reset" })
    const copy = x.copyToSchema(target)
    expect(copy).toMatchObject({ schema: target, count: 10, counterResetHint: "unknown", ...out })
    expect(x.schema).toBe(init.schema)
    expect(x.reduceResolution(target)).toBe(x)
    expect(x).toMatchObject({ schema: target, counterResetHint: "not_reset", ...out })
  })

  it("copyToSchema to the same schema is a plain copy", () => {
    const x = h("schema:2 count:3 buckets:[1 2] counter_reset_hint:gauge")
    expect(x.copyToSchema(2).toString()).toBe(x.toString())
  })

  it.each([
    { name: "to the same schema", text: "schema:1", target: 1, error: "cannot reduce resolution from schema 1 to 1" },
    { name: "to a higher schema", text: "schema:1", target: 2, error: "cannot reduce resolution from schema 1 to 2" },
    { name: "with custom buckets", text: "schema:-53", target: 0, error: "cannot reduce resolution when there are custom buckets" },
    { name: "to custom buckets", text: "schema:1", target: -53, error: "cannot reduce resolution to custom buckets schema" }
  ])("reduceResolution refuses $name", ({ text, target, error }) => {
    expect(() => h(text).reduceResolution(target)).toThrow(error)
  })

  it("reduceResolution refuses layouts that do not fit the buckets", () => {
    const bad = (positiveSpans: Array<Span>, positiveBuckets: Array<number>) =>
      new FloatHistogram({ schema: 1, positiveSpans, positiveBuckets })
    expect(() => bad(spans([0, 3]), [1, 2]).reduceResolution(0)).toThrow("have 2 buckets but spans need more")
    expect(() => bad(spans([0, 1]), [1, 2]).reduceResolution(0)).toThrow("spans need 1 buckets, have 2 buckets")
    expect(() => bad(spans([0, 1], [-1, 1]), [1, 2]).reduceResolution(0)).toThrow("span number 2 with offset -1")
  })
})

describe("mul and div", () => {
  const base = "count:6 sum:-3 z_bucket:1 z_bucket_w:0.001 buckets:[2 0] n_buckets:[3] counter_reset_hint:not_reset"

  it.each([
    { op: "mul", by: 2, out: "{{count:12 sum:-6 z_bucket:2 z_bucket_w:0.001 counter_reset_hint:not_reset buckets:[4] n_buckets:[6]}}" },
    { op: "mul", by: 0, out: "{{z_bucket_w:0.001 counter_reset_hint:not_reset}}" },
    { op: "mul", by: -0.5, out: "{{count:-3 sum:1.5 z_bucket:-0.5 z_bucket_w:0.001 counter_reset_hint:gauge buckets:[-1] n_buckets:[-1.5]}}" },
    { op: "mul", by: NaN, out: "{{count:NaN sum:NaN z_bucket:NaN z_bucket_w:0.001 counter_reset_hint:not_reset buckets:[NaN NaN] n_buckets:[NaN]}}" },
    { op: "mul", by: Infinity, out: "{{count:+Inf sum:-Inf z_bucket:+Inf z_bucket_w:0.001 counter_reset_hint:not_reset buckets:[+Inf NaN] n_buckets:[+Inf]}}" },
    { op: "div", by: 2, out: "{{count:3 sum:-1.5 z_bucket:0.5 z_bucket_w:0.001 counter_reset_hint:not_reset buckets:[1] n_buckets:[1.5]}}" },
    { op: "div", by: -2, out: "{{count:-3 sum:1.5 z_bucket:-0.5 z_bucket_w:0.001 counter_reset_hint:gauge buckets:[-1] n_buckets:[-1.5]}}" },
    // Division by zero divides the totals and drops all buckets.
    { op: "div", by: 0, out: "{{count:+Inf sum:-Inf z_bucket:+Inf z_bucket_w:0.001 counter_reset_hint:not_reset}}" },
    { op: "div", by: -0, out: "{{count:-Inf sum:+Inf z_bucket:-Inf z_bucket_w:0.001 counter_reset_hint:not_reset}}" }
  ])("$op by $by", ({ op, by, out }) => {
    const x = h(base)
    const buckets = x.positiveBuckets
    expect(op === "mul" ? x.mul(by) : x.div(by)).toBe(x)
    expect(x.toString()).toBe(out)
    if (by !== 0) expect(x.positiveBuckets).toBe(buckets)
  })

  it("keeps the layout, empty buckets included", () => {
    const x = h("offset:1 buckets:[0 1]").mul(3)
    expect(layout(x)).toEqual({ positiveSpans: spans([1, 2]), positiveBuckets: [0, 3], negativeSpans: [], negativeBuckets: [] })
  })

  it("0/0 gives NaN", () => {
    expect(h("").div(0)).toMatchObject({ count: NaN, sum: NaN, zeroCount: NaN })
  })
})

describe("trimBuckets", () => {
  const exponential = "count:30 sum:100 buckets:[5 5 10 10]" // upper bounds 1, 2, 4, 8
  const custom = "schema:-53 count:20 sum:300 custom_values:[10 20] buckets:[4 10 6]" // (-Inf,10] (10,20] (20,+Inf]

  it.each([
    {
      name: "</ at a bucket boundary keeps the buckets below; sum re-estimated at geometric midpoints",
      in: exponential,
      rhs: 4,
      upper: true,
      count: 20,
      sum: Math.sqrt(0.5) * 5 + Math.sqrt(2) * 5 + Math.sqrt(8) * 10,
      buckets: [5, 5, 10],
      offset: 0
    },
    {
      name: ">/ at a bucket boundary keeps the buckets above",
      in: exponential,
      rhs: 2,
      upper: false,
      count: 20,
      sum: Math.sqrt(8) * 10 + Math.sqrt(32) * 10,
      buckets: [10, 10],
      offset: 2
    },
    {
      name: "</ inside a custom bucket interpolates linearly; the lowest bucket's midpoint is half its upper bound",
      in: custom,
      rhs: 15,
      upper: true,
      count: 9,
      sum: 4 * 5 + 5 * 12.5,
      buckets: [4, 5],
      offset: 0
    },
    {
      name: ">/ inside a custom bucket; the +Inf bucket sits at its lower bound",
      in: custom,
      rhs: 15,
      upper: false,
      count: 11,
      sum: 5 * 17.5 + 6 * 20,
      buckets: [5, 6],
      offset: 1
    },
    {
      name: "</ inside the +Inf bucket drops it (its observations cannot be located)",
      in: custom,
      rhs: 25,
      upper: true,
      count: 14,
      sum: 4 * 5 + 10 * 15,
      buckets: [4, 10],
      offset: 0
    },
    {
      name: "nothing cut: count and sum stay as they were",
      in: exponential,
      rhs: Infinity,
      upper: true,
      count: 30,
      sum: 100,
      buckets: [5, 5, 10, 10],
      offset: 0
    },
    {
      name: "</ -Inf cuts everything",
      in: exponential,
      rhs: -Infinity,
      upper: true,
      count: 0,
      sum: 0,
      buckets: [],
      offset: 0
    }
  ])("$name", ({ in: text, rhs, upper, count, sum, buckets, offset }) => {
    const x = h(text)
    expect(x.trimBuckets(rhs, upper)).toBe(x)
    expect(x.count).toBe(count)
    expect(x.sum).toBeCloseTo(sum, 12)
    expect(x.positiveBuckets).toEqual(buckets)
    expect(x.positiveSpans).toEqual(buckets.length > 0 ? spans([offset, buckets.length]) : [])
  })

  it("inside an exponential bucket the share is interpolated on a log scale", () => {
    const x = h("count:8 offset:2 buckets:[8]").trimBuckets(2 * Math.SQRT2, true) // (2, 4], cut at 2^1.5
    expect(x.count).toBeCloseTo(4, 12)
    expect(x.positiveBuckets[0]).toBeCloseTo(4, 12)
    expect(x.sum).toBeCloseTo(4 * Math.sqrt(2 * 2 * Math.SQRT2), 12)
  })

  it.each([
    { name: "zero bucket alone spans both sides", text: "count:4 z_bucket:4 z_bucket_w:1", rhs: 0, upper: true, out: "{{count:2 sum:-1 z_bucket:2 z_bucket_w:1}}" },
    { name: "zero bucket with positive buckets only spans [0, threshold]", text: "count:5 z_bucket:4 z_bucket_w:1 offset:1 buckets:[1]", rhs: 0, upper: true, out: "{{z_bucket_w:1}}" },
    { name: "zero bucket with negative buckets only spans [-threshold, 0]", text: "count:5 z_bucket:4 z_bucket_w:1 n_offset:1 n_buckets:[1]", rhs: -0.5, upper: false, out: "{{count:2 sum:-0.5 z_bucket:2 z_bucket_w:1}}" }
  ])("$name", ({ text, rhs, upper, out }) => {
    expect(h(text).trimBuckets(rhs, upper).toString()).toBe(out)
  })
})

describe("equals", () => {
  const base = "schema:3 count:2.2 sum:9.7 z_bucket:1.1 z_bucket_w:0.1 buckets:[3] n_buckets:[4]"
  const variant = (change: (x: FloatHistogram) => void): FloatHistogram => {
    const x = h(base)
    change(x)
    return x
  }

  it.each([
    { name: "a copy", other: variant(() => {}), equal: true },
    { name: "another counter reset hint (not compared)", other: variant((x) => (x.counterResetHint = "gauge")), equal: true },
    { name: "custom values on an exponential histogram (not compared)", other: variant((x) => (x.customValues = [1])), equal: true },
    { name: "a NaN count", other: variant((x) => (x.count = NaN)), equal: false },
    { name: "a NaN bucket", other: variant((x) => (x.positiveBuckets[0] = NaN)), equal: false },
    { name: "an extra empty bucket", other: variant((x) => ((x.positiveSpans = spans([0, 2])), x.positiveBuckets.push(0))), equal: false },
    {
      name: "zero-length spans in between",
      other: variant((x) => (x.positiveSpans = spans([-1, 0], [0, 0], [1, 1], [3, 0]))),
      equal: true
    },
    { name: "another zero threshold", other: variant((x) => (x.zeroThreshold = 0.2)), equal: false },
    { name: "another schema", other: variant((x) => (x.schema = 2)), equal: false }
  ])("$name: $equal", ({ other, equal }) => {
    const x = h(base)
    expect(x.equals(other)).toBe(equal)
    expect(other.equals(x)).toBe(equal)
  })

  it("0 and -0 differ", () => {
    expect(h("sum:0").equals(h("sum:-0"))).toBe(false)
    expect(h("sum:-0").equals(h("sum:-0"))).toBe(true)
  })

  it("NaNs of the same bits are equal", () => {
    const x = variant((y) => ((y.count = NaN), (y.positiveBuckets[0] = NaN)))
    expect(x.equals(x.copy())).toBe(true)
  })

  it("custom bounds are compared for custom buckets", () => {
    const x = h("schema:-53 custom_values:[1 2] buckets:[1]")
    expect(x.equals(h("schema:-53 custom_values:[1 2] buckets:[1]"))).toBe(true)
    expect(x.equals(h("schema:-53 custom_values:[1 3] buckets:[1]"))).toBe(false)
  })

  it("spansMatch: adjacent spans are not one span", () => {
    expect(spansMatch(spans([0, 1], [0, 1]), spans([0, 2]))).toBe(false)
    expect(spansMatch(spans([0, 1], [2, 0]), spans([0, 1]))).toBe(true)
  })
})

describe("copy", () => {
  it("is deep", () => {
    const x = h("count:1 buckets:[1] n_buckets:[2]")
    const y = x.copy()
    y.positiveBuckets[0] = 5
    y.negativeSpans[0]!.offset = 3
    expect(x.toString()).toBe("{{count:1 buckets:[1] n_buckets:[2]}}")
  })

  it("leaves out what the schema does not use", () => {
    const custom = new FloatHistogram({ schema: -53, zeroCount: 1, zeroThreshold: 1, negativeSpans: spans([0, 1]), negativeBuckets: [1], customValues: [1] })
    expect(custom.copy()).toMatchObject({ zeroCount: 0, zeroThreshold: 0, negativeSpans: [], negativeBuckets: [], customValues: [1] })
    expect(h("custom_values:[1]").copy().customValues).toEqual([])
  })
})
