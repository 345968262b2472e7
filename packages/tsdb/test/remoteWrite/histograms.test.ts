/**
 * Native histograms in remote write 1.0 (`prometheus.Histogram`, TimeSeries field 4) and 2.0
 * (`io.prometheus.write.v2.Histogram`, TimeSeries field 3): decoding to `FloatHistogram`s with absolute
 * counts, Prometheus's validation, limits, and round trips through the encoders.
 */
import { describe, expect, it } from "vitest"
import {
  decodeWriteRequestV1,
  decodeWriteRequestV2,
  encodeWriteRequestV1,
  encodeWriteRequestV2,
  isStaleNaN,
  LabelsInterner,
  limits,
  staleNaN
} from "../../src/internal/remoteWrite/decode.ts"
import type { HistogramSample, RemoteWriteLimits, Series, WriteRequest } from "../../src/internal/remoteWrite/decode.ts"
import { isIntegerHistogram } from "../../src/internal/remoteWrite/encode.ts"
import { FloatHistogram } from "../../src/promql/histogram.ts"
import type { FloatHistogramInit } from "../../src/promql/histogram.ts"
import { bits, decodeError, limitError, outcome, prng } from "./helpers.ts"
import { cat, d, label, ld, s, sample1, tag, v, varint } from "./pb.ts"

// ---------------------------------------------------------------------------------------------------
// Building blocks (independent of the code under test)

/** The zigzag encoding of sint32/sint64. */
const zigzag = (x: number | bigint): bigint => {
  const n = BigInt(x)
  return n >= 0n ? n << 1n : ((-n) << 1n) - 1n
}
/** Field `n` as a sint32/sint64 varint. */
const sv = (n: number, x: number | bigint): Uint8Array => v(n, zigzag(x))
/** Field `n` as packed sint64s. */
const packedS = (n: number, xs: ReadonlyArray<number | bigint>): Uint8Array => ld(n, ...xs.map((x) => varint(zigzag(x))))
/** A double's 8 little-endian bytes. */
const le = (x: number): Uint8Array => {
  const out = new Uint8Array(8)
  new DataView(out.buffer).setFloat64(0, x, true)
  return out
}
/** Field `n` as packed doubles. */
const packedD = (n: number, xs: ReadonlyArray<number>): Uint8Array => ld(n, ...xs.map(le))
/** A BucketSpan at field `n`. */
const span = (n: number, offset: number, length: number): Uint8Array => ld(n, sv(1, offset), v(2, length))

/** A v1 body: one series `{__name__="h"}` holding the histogram messages (their payloads). */
const v1Body = (...histograms: ReadonlyArray<Uint8Array>): Uint8Array =>
  ld(1, label("__name__", "h"), ...histograms.map((h) => ld(4, h)))
/** A v2 body: the same series, labels by reference. */
const v2Body = (...histograms: ReadonlyArray<Uint8Array>): Uint8Array =>
  cat(s(4, ""), s(4, "__name__"), s(4, "h"), ld(5, ld(1, varint(1), varint(2)), ...histograms.map((h) => ld(3, h))))

type Decode = (bytes: Uint8Array, overrides?: Partial<RemoteWriteLimits>) => WriteRequest
const versions: ReadonlyArray<readonly [string, (...h: ReadonlyArray<Uint8Array>) => Uint8Array, Decode]> = [
  ["v1", v1Body, decodeWriteRequestV1],
  ["v2", v2Body, decodeWriteRequestV2]
]

/** The one histogram sample of a decoded one-series request. */
const only = (req: WriteRequest): HistogramSample => {
  expect(req.series).toHaveLength(1)
  expect(req.histograms).toBe(1)
  const hs = req.series[0]!.histograms
  expect(hs).toHaveLength(1)
  return hs![0]!
}

/** A histogram's fields as a plain object (for deep comparison). */
const plain = (h: FloatHistogram) => ({
  counterResetHint: h.counterResetHint,
  schema: h.schema,
  zeroThreshold: h.zeroThreshold,
  zeroCount: h.zeroCount,
  count: h.count,
  sum: h.sum,
  positiveSpans: h.positiveSpans.map((x) => ({ ...x })),
  negativeSpans: h.negativeSpans.map((x) => ({ ...x })),
  positiveBuckets: [...h.positiveBuckets],
  negativeBuckets: [...h.negativeBuckets],
  customValues: [...h.customValues]
})

const fh = (init: FloatHistogramInit): FloatHistogram => new FloatHistogram(init)

/** The fields of a protobuf message: number, wire type, and the payload (LEN) or value. */
const fields = (bytes: Uint8Array): Array<{ field: number; wire: number; payload: Uint8Array; value: bigint }> => {
  const out: Array<{ field: number; wire: number; payload: Uint8Array; value: bigint }> = []
  let pos = 0
  const uvarint = (): bigint => {
    let x = 0n
    let shift = 0n
    for (;;) {
      const b = bytes[pos++]!
      x |= BigInt(b & 0x7f) << shift
      if (b < 0x80) return x
      shift += 7n
    }
  }
  while (pos < bytes.length) {
    const t = Number(uvarint())
    const wire = t & 7
    const field = t >>> 3
    if (wire === 0) out.push({ field, wire, payload: new Uint8Array(), value: uvarint() })
    else if (wire === 1) {
      out.push({ field, wire, payload: bytes.subarray(pos, pos + 8), value: 0n })
      pos += 8
    } else if (wire === 2) {
      const n = Number(uvarint())
      out.push({ field, wire, payload: bytes.subarray(pos, pos + n), value: 0n })
      pos += n
    } else throw new Error(`wire type ${wire} in a test body`)
  }
  return out
}

/** The histogram messages of an encoded one-series body, as the encoder wrote them. */
const encodedHistograms = (version: "v1" | "v2", body: Uint8Array): Array<Uint8Array> => {
  const ts = fields(body).find((f) => f.field === (version === "v1" ? 1 : 5))!
  return fields(ts.payload)
    .filter((f) => f.field === (version === "v1" ? 4 : 3))
    .map((f) => f.payload)
}

/** Whether an encoded histogram message is an integer one (has count_int) or a float one (count_float). */
const kindOf = (message: Uint8Array): "int" | "float" | "none" => {
  const f = fields(message)
  if (f.some((x) => x.field === 1)) return "int"
  if (f.some((x) => x.field === 2)) return "float"
  return "none"
}

const request = (histograms: Array<HistogramSample>, extra: Partial<Series> = {}): WriteRequest => ({
  series: [{ labels: [["__name__", "h"]], samples: [], histograms, ...extra }],
  metadata: [],
  histograms: histograms.length,
  exemplars: 0
})

const encoders = [
  ["v1", encodeWriteRequestV1, decodeWriteRequestV1],
  ["v2", encodeWriteRequestV2, decodeWriteRequestV2]
] as const

// ---------------------------------------------------------------------------------------------------
// Test histograms

/** Integer counts, exponential schema 3, both sides (a negative first offset), a zero bucket. */
const intExponential = (): FloatHistogram =>
  fh({
    counterResetHint: "reset",
    schema: 3,
    zeroThreshold: 0.001,
    zeroCount: 2,
    count: 22,
    sum: 123.5,
    negativeSpans: [
      { offset: -2, length: 2 },
      { offset: 1, length: 2 }
    ],
    negativeBuckets: [1, 3, 0, 2],
    positiveSpans: [
      { offset: 0, length: 3 },
      { offset: 5, length: 1 }
    ],
    positiveBuckets: [4, 1, 7, 2]
  })

/** Float counts, the lowest exponential schema, both sides and a zero bucket. */
const floatExponential = (): FloatHistogram =>
  fh({
    counterResetHint: "gauge",
    schema: -4,
    zeroThreshold: 1e-128,
    zeroCount: 0.25,
    count: 5.5,
    sum: -3.75,
    negativeSpans: [{ offset: 1, length: 1 }],
    negativeBuckets: [1.5],
    positiveSpans: [
      { offset: -3, length: 2 },
      { offset: 0, length: 1 }
    ],
    positiveBuckets: [0.5, 2.25, 1]
  })

/** Custom buckets (NHCB) with integer counts. */
const intCustom = (): FloatHistogram =>
  fh({
    counterResetHint: "not_reset",
    schema: -53,
    count: 9,
    sum: 12,
    positiveSpans: [
      { offset: 0, length: 2 },
      { offset: 1, length: 2 }
    ],
    positiveBuckets: [3, 0, 5, 1],
    customValues: [0.1, 0.5, 1, 5]
  })

/** Custom buckets with float counts (the last bucket is the implied +Inf one). */
const floatCustom = (): FloatHistogram =>
  fh({
    schema: -53,
    count: 2,
    sum: 0.5,
    positiveSpans: [
      { offset: 0, length: 1 },
      { offset: 3, length: 1 }
    ],
    positiveBuckets: [0.5, 1.5],
    customValues: [-1, 0, 1, 10]
  })

// ---------------------------------------------------------------------------------------------------

describe("native histograms: round trips through the encoders", () => {
  const cases: ReadonlyArray<readonly [string, () => FloatHistogram, "int" | "float"]> = [
    ["integer, exponential schema, negative buckets and a zero bucket", intExponential, "int"],
    ["float, exponential schema, negative buckets and a zero bucket", floatExponential, "float"],
    ["integer, custom buckets", intCustom, "int"],
    ["float, custom buckets", floatCustom, "float"],
    ["empty (all defaults)", () => fh({}), "int"],
    ["integer, NaN sum, more observations than in the buckets", () => fh({ ...plain(intExponential()), sum: NaN, count: 30 }), "int"],
    [
      "integer, schema 8, counts near 2^53 (wide varints, large deltas)",
      () =>
        fh({
          schema: 8,
          count: 2 ** 53 - 1,
          sum: 1,
          positiveSpans: [{ offset: -(2 ** 31), length: 3 }],
          positiveBuckets: [2 ** 52, 0, 2 ** 52 - 1]
        }),
      "int"
    ],
    ["float: integer counts whose buckets do not add up to the count", () => fh({ count: 10, sum: 3, positiveSpans: [{ offset: 0, length: 2 }], positiveBuckets: [1, 2] }), "float"],
    ["float: a -0 count", () => fh({ count: -0, sum: 0 }), "float"],
    ["float: an infinite and a NaN bucket count", () => fh({ count: Infinity, sum: NaN, positiveSpans: [{ offset: 0, length: 2 }], positiveBuckets: [Infinity, NaN] }), "float"]
  ]
  for (const [name, make, kind] of cases) {
    for (const [version, encode, decode] of encoders) {
      it(`${version}: ${name}`, () => {
        const h = make()
        expect(isIntegerHistogram(h)).toBe(kind === "int")
        const body = encode(request([{ timestampMs: 1_760_000_000_123, histogram: h }]))
        const messages = encodedHistograms(version, body)
        expect(messages).toHaveLength(1)
        expect(kindOf(messages[0]!)).toBe(kind)
        const got = only(decode(body))
        expect(got.timestampMs).toBe(1_760_000_000_123)
        expect(got.histogram).toBeInstanceOf(FloatHistogram)
        expect(plain(got.histogram)).toEqual(plain(h))
        expect(Object.is(got.histogram.count, h.count)).toBe(true)
        expect(bits(got.histogram.sum)).toBe(bits(h.sum))
      })
    }
  }

  it("every reset hint, both kinds, both versions", () => {
    for (const hint of ["unknown", "reset", "not_reset", "gauge"] as const) {
      for (const make of [intExponential, floatExponential, intCustom, floatCustom]) {
        const h = make()
        h.counterResetHint = hint
        for (const [, encode, decode] of encoders) {
          expect(only(decode(encode(request([{ timestampMs: 5, histogram: h }])))).histogram.counterResetHint).toBe(hint)
        }
      }
    }
  })

  it("a stale marker in the sum keeps its bits", () => {
    for (const h of [fh({ sum: staleNaN }), fh({ ...plain(floatExponential()), sum: staleNaN })]) {
      for (const [, encode, decode] of encoders) {
        const got = only(decode(encode(request([{ timestampMs: 7, histogram: h }])))).histogram
        expect(bits(got.sum)).toBe("7ff0000000000002")
        expect(isStaleNaN(got.sum)).toBe(true)
      }
    }
  })

  it("several histograms, samples and exemplars on a series, several series; counted per request", () => {
    const req: WriteRequest = {
      series: [
        {
          labels: [["__name__", "a"]],
          samples: [{ timestampMs: 1, value: 1 }],
          histograms: [
            { timestampMs: 10, histogram: intExponential() },
            { timestampMs: 20, histogram: floatExponential() },
            { timestampMs: 30, histogram: intCustom() }
          ],
          exemplars: [{ labels: [["trace_id", "x"]], value: 1, timestampMs: 10 }]
        },
        { labels: [["__name__", "b"]], samples: [{ timestampMs: 2, value: 2 }] },
        { labels: [["__name__", "c"]], samples: [], histograms: [{ timestampMs: 40, histogram: floatCustom() }] }
      ],
      metadata: [],
      histograms: 4,
      exemplars: 1
    }
    for (const [, encode, decode] of encoders) {
      const got = decode(encode(req))
      expect(got.histograms).toBe(4)
      expect(got.exemplars).toBe(1)
      expect(got.series.map((x) => x.histograms?.map((h) => h.timestampMs))).toEqual([[10, 20, 30], undefined, [40]])
      expect(got.series[1]!).not.toHaveProperty("histograms")
      expect(got.series[0]!.histograms!.map((h) => plain(h.histogram))).toEqual(req.series[0]!.histograms!.map((h) => plain(h.histogram)))
      expect(got.series[0]!.samples).toEqual([{ timestampMs: 1, value: 1 }])
    }
  })

  it("v2 start timestamps (field 17; the legacy series field 6 as their default); not in v1", () => {
    const h = intExponential()
    const req = request([
      { timestampMs: 100, histogram: h, startTimestampMs: 50 },
      { timestampMs: 200, histogram: h }
    ])
    const v2 = decodeWriteRequestV2(encodeWriteRequestV2(req)).series[0]!.histograms!
    expect(v2.map((x) => x.startTimestampMs)).toEqual([50, undefined])
    expect(v2[1]!).not.toHaveProperty("startTimestampMs")
    const v1 = decodeWriteRequestV1(encodeWriteRequestV1(req)).series[0]!.histograms!
    expect(v1.map((x) => x.startTimestampMs)).toEqual([undefined, undefined])
    // v1 has no field 17: it is skipped as an unknown field.
    expect(only(decodeWriteRequestV1(v1Body(cat(v(1, 0), v(15, 9), v(17, 5))))).startTimestampMs).toBeUndefined()
    expect(only(decodeWriteRequestV2(v2Body(cat(v(1, 0), v(15, 9), v(17, 5))))).startTimestampMs).toBe(5)
    // The pre-rc.4 series field 6 (created_timestamp) is the default start of its histograms too.
    const legacy = cat(s(4, ""), s(4, "__name__"), s(4, "h"), ld(5, ld(1, varint(1), varint(2)), ld(3, v(1, 0), v(17, 5)), ld(3, v(1, 0)), v(6, 77)))
    expect(decodeWriteRequestV2(legacy).series[0]!.histograms!.map((x) => x.startTimestampMs)).toEqual([5, 77])
  })
})

describe("native histograms: hand-built bodies", () => {
  // schema 1, zero bucket 2; negative buckets at -1, 0 with counts 1, 2 (deltas 1, 1); positive buckets at
  // 0, 1 and 5 with counts 3, 1, 3 (deltas 3, -2, 2); count 2 + 3 + 7 = 12.
  const expected = {
    counterResetHint: "not_reset",
    schema: 1,
    zeroThreshold: 0.01,
    zeroCount: 2,
    count: 12,
    sum: 7.25,
    negativeSpans: [{ offset: -1, length: 2 }],
    negativeBuckets: [1, 2],
    positiveSpans: [
      { offset: 0, length: 2 },
      { offset: 3, length: 1 }
    ],
    positiveBuckets: [3, 1, 3],
    customValues: []
  }
  // Field by field, as Prometheus marshals an integer histogram (packed deltas, proto3 defaults left out
  // except the oneof counts).
  const packedInt = cat(
    v(1, 12), // count_int
    d(3, 7.25), // sum
    v(4, 2), // schema 1 (zigzag)
    d(5, 0.01), // zero_threshold
    v(6, 2), // zero_count_int
    ld(8, v(1, 1), v(2, 2)), // negative_spans: offset -1 (zigzag 1), length 2
    ld(9, varint(2), varint(2)), // negative_deltas packed: 1, 1 (zigzag 2, 2)
    ld(11, v(2, 2)), // positive_spans: offset 0 (default, left out), length 2
    ld(11, v(1, 6), v(2, 1)), // positive_spans: offset 3 (zigzag 6), length 1
    ld(12, varint(6), varint(3), varint(4)), // positive_deltas packed: 3, -2, 2
    v(14, 2), // reset_hint NO
    v(15, 1_700_000_000_123) // timestamp
  )

  it("v1 and v2: decode to the expected FloatHistogram; the encoders write the same bytes back", () => {
    for (const [version, body, decode] of versions) {
      const got = only(decode(body(packedInt)))
      expect(got.timestampMs).toBe(1_700_000_000_123)
      expect(plain(got.histogram)).toEqual(expected)
      const encode = version === "v1" ? encodeWriteRequestV1 : encodeWriteRequestV2
      expect(encode(request([got]))).toEqual(body(packedInt))
    }
  })

  it("unpacked deltas, and packed and unpacked runs mixed, decode the same", () => {
    const unpacked = cat(
      v(1, 12),
      d(3, 7.25),
      v(4, 2),
      d(5, 0.01),
      v(6, 2),
      span(8, -1, 2),
      v(9, 2), // negative_deltas, one varint field each
      v(9, 2),
      span(11, 0, 2),
      span(11, 3, 1),
      v(12, 6),
      packedS(12, [-2]), // a packed run between unpacked ones
      v(12, 4),
      v(14, 2),
      v(15, 1_700_000_000_123)
    )
    // Fields in another order (spans after their buckets, scalars last) mean the same.
    const shuffled = cat(
      packedS(12, [3]),
      packedS(9, [1, 1]),
      span(11, 0, 2),
      sv(12, -2),
      span(8, -1, 2),
      sv(12, 2),
      span(11, 3, 1),
      v(15, 1_700_000_000_123),
      v(14, 2),
      v(6, 2),
      d(5, 0.01),
      sv(4, 1),
      d(3, 7.25),
      v(1, 12)
    )
    for (const [, body, decode] of versions) {
      expect(plain(only(decode(body(unpacked))).histogram)).toEqual(expected)
      expect(plain(only(decode(body(shuffled))).histogram)).toEqual(expected)
    }
  })

  it("a float histogram: packed and unpacked counts, exponential and custom buckets", () => {
    const float = cat(
      d(2, 5.5), // count_float
      d(3, -3.75),
      sv(4, -4),
      d(5, 1e-128),
      d(7, 0.25), // zero_count_float
      span(8, 1, 1),
      d(10, 1.5), // negative_counts, unpacked
      span(11, -3, 2),
      span(11, 0, 1),
      packedD(13, [0.5, 2.25]), // positive_counts, packed then unpacked
      d(13, 1),
      v(14, 3) // GAUGE
    )
    const custom = cat(
      d(2, 2),
      d(3, 0.5),
      sv(4, -53),
      d(7, 0),
      span(11, 0, 1),
      span(11, 3, 1),
      packedD(13, [0.5, 1.5]),
      d(16, -1), // custom_values, unpacked then packed
      packedD(16, [0, 1, 10])
    )
    for (const [, body, decode] of versions) {
      const got = only(decode(body(float)))
      expect(got.timestampMs).toBe(0)
      expect(plain(got.histogram)).toEqual(plain(floatExponential()))
      expect(plain(only(decode(body(custom))).histogram)).toEqual(plain(floatCustom()))
    }
  })

  it("an integer histogram with custom buckets, custom values unpacked", () => {
    const custom = cat(
      v(1, 9),
      d(3, 12),
      sv(4, -53),
      v(6, 0),
      span(11, 0, 2),
      span(11, 1, 2),
      packedS(12, [3, -3, 5, -4]),
      v(14, 2),
      d(16, 0.1),
      d(16, 0.5),
      d(16, 1),
      d(16, 5)
    )
    for (const [, body, decode] of versions) expect(plain(only(decode(body(custom))).histogram)).toEqual(plain(intCustom()))
  })

  it("a reset hint out of the enum is unknown; repeated scalars: the last wins", () => {
    for (const [, body, decode] of versions) {
      expect(only(decode(body(cat(v(1, 0), v(14, 7))))).histogram.counterResetHint).toBe("unknown")
      expect(only(decode(body(cat(v(1, 0), v(14, -1))))).histogram.counterResetHint).toBe("unknown")
      const h = only(decode(body(cat(v(1, 1), sv(4, 9), v(15, 3), v(6, 5), d(3, 9), v(1, 0), sv(4, 2), v(6, 0), d(3, 1), v(15, 4)))))
      expect(h.timestampMs).toBe(4)
      expect(plain(h.histogram)).toMatchObject({ count: 0, schema: 2, zeroCount: 0, sum: 1 })
    }
  })

  it("unknown fields inside histograms and spans are skipped", () => {
    for (const [, body, decode] of versions) {
      const h = only(decode(body(cat(v(1, 1), v(100, 5), ld(11, v(2, 1), d(9, 1)), packedS(12, [1]), s(101, "x")))))
      expect(plain(h.histogram)).toMatchObject({ count: 1, positiveSpans: [{ offset: 0, length: 1 }], positiveBuckets: [1] })
    }
  })
})

describe("native histograms: refusals", () => {
  /** Refused by both versions as malformed, naming `field`. */
  const refused = (histogram: Uint8Array, field: string, reason?: RegExp): void => {
    for (const [version, body, decode] of versions) {
      const e = decodeError(() => decode(body(histogram)))
      expect([version, e.field]).toEqual([version, field])
      if (reason !== undefined) expect(e.reason).toMatch(reason)
    }
  }
  const accepted = (histogram: Uint8Array): void => {
    for (const [, body, decode] of versions) only(decode(body(histogram)))
  }

  it("a schema outside -4..8 and other than -53", () => {
    for (const schema of [9, -5, 52, -9, -52, -54, 2 ** 31 - 1, -(2 ** 31)]) refused(cat(v(1, 0), sv(4, schema)), "Histogram.schema", /invalid schema/)
    for (const schema of [-4, 0, 8, -53]) accepted(cat(v(1, 0), sv(4, schema)))
    refused(cat(d(2, 0), sv(4, 9)), "Histogram.schema")
  })

  it("spans that do not match the number of buckets", () => {
    refused(cat(v(1, 3), span(11, 0, 3), packedS(12, [1, 0])), "Histogram.positive_spans", /spans need 3 buckets, have 2/)
    refused(cat(v(1, 3), span(11, 0, 1), packedS(12, [1, 0, 0])), "Histogram.positive_spans")
    refused(cat(v(1, 1), packedS(12, [1])), "Histogram.positive_spans") // buckets without spans
    refused(cat(v(1, 0), span(8, 0, 1)), "Histogram.negative_spans") // spans without buckets
    refused(cat(v(1, 2), span(8, 0, 1), span(8, 1, 2), packedS(9, [1, 0])), "Histogram.negative_spans")
    refused(cat(d(2, 1), span(11, 0, 2), packedD(13, [1])), "Histogram.positive_spans")
    refused(cat(d(2, 1), span(8, 0, 2), packedD(10, [1])), "Histogram.negative_spans")
    refused(cat(d(2, 1), sv(4, -53), d(16, 1), span(11, 0, 2), packedD(13, [1])), "Histogram.positive_spans")
    // Zero-length spans are fine.
    accepted(cat(v(1, 1), span(11, -2, 0), span(11, 3, 1), span(11, 0, 0), packedS(12, [1])))
  })

  it("a negative offset after the first span (or anywhere, for custom buckets)", () => {
    refused(cat(v(1, 2), span(11, 0, 1), span(11, -1, 1), packedS(12, [1, 0])), "Histogram.positive_spans", /negative offset/)
    refused(cat(v(1, 2), span(8, 1, 1), span(8, -3, 1), packedS(9, [1, 0])), "Histogram.negative_spans", /negative offset/)
    accepted(cat(v(1, 1), span(11, -5, 1), packedS(12, [1])))
    refused(cat(v(1, 1), sv(4, -53), d(16, 1), span(11, -1, 1), packedS(12, [1])), "Histogram.positive_spans", /negative offset/)
  })

  it("a negative bucket count of an integer histogram (the deltas add up below 0)", () => {
    refused(cat(v(1, 0), span(11, 0, 2), packedS(12, [2, -3])), "Histogram.positive_deltas", /bucket 2 has a negative count -1/)
    refused(cat(v(1, 0), span(8, 0, 1), packedS(9, [-1])), "Histogram.negative_deltas", /negative count/)
    refused(cat(v(1, 0), sv(4, -53), d(16, 1), span(11, 0, 2), packedS(12, [1, -2])), "Histogram.positive_deltas")
  })

  it("negative counts of a float histogram", () => {
    refused(cat(d(2, 1), span(11, 0, 2), packedD(13, [1, -0.5])), "Histogram.positive_counts", /negative count/)
    refused(cat(d(2, 1), span(8, 0, 1), packedD(10, [-1])), "Histogram.negative_counts")
    refused(cat(d(2, -1)), "Histogram.count_float", /negative count/)
    refused(cat(d(2, 1), d(7, -0.5)), "Histogram.zero_count_float", /negative zero count/)
    // Float counts need not add up (and NaN is not below 0).
    accepted(cat(d(2, 100), d(7, 1), span(11, 0, 2), packedD(13, [NaN, 3])))
  })

  it("an integer histogram's count: the buckets' total exactly, or at least it when the sum is NaN", () => {
    // 5 observations: zero bucket 1, positive 1 and 2 (deltas 1, 1), negative 1.
    const buckets = cat(v(6, 1), span(11, 0, 2), packedS(12, [1, 1]), span(8, 0, 1), packedS(9, [1]))
    accepted(cat(v(1, 5), d(3, 1), buckets))
    refused(cat(v(1, 6), d(3, 1), buckets), "Histogram.count_int", /5 observations in the buckets, but the count is 6/)
    refused(cat(v(1, 4), d(3, 1), buckets), "Histogram.count_int")
    refused(cat(d(3, 1), buckets), "Histogram.count_int") // no count field: 0
    accepted(cat(v(1, 6), d(3, NaN), buckets))
    accepted(cat(v(1, 5), d(3, NaN), buckets))
    refused(cat(v(1, 4), d(3, NaN), buckets), "Histogram.count_int", /more than the count/)
  })

  it("custom buckets: bounds and what custom buckets must not have", () => {
    const cb = (...parts: ReadonlyArray<Uint8Array>): Uint8Array => cat(v(1, 1), sv(4, -53), span(11, 0, 1), packedS(12, [1]), ...parts)
    accepted(cb(packedD(16, [1, 2])))
    accepted(cb()) // no bounds: the one bucket is the +Inf one
    accepted(cb(packedD(16, [-Infinity, 0]))) // as Prometheus: only NaN, order and a last +Inf are checked
    refused(cb(packedD(16, [1, 1])), "Histogram.custom_values", /strictly increasing/)
    refused(cb(packedD(16, [2, 1])), "Histogram.custom_values", /strictly increasing/)
    refused(cb(packedD(16, [1, NaN])), "Histogram.custom_values", /NaN/)
    refused(cb(packedD(16, [1, Infinity])), "Histogram.custom_values", /\+Inf/)
    // Spans reaching past the bounds (+1 for the +Inf bucket).
    refused(cat(v(1, 2), sv(4, -53), d(16, 1), span(11, 0, 1), span(11, 1, 1), packedS(12, [1, 0])), "Histogram.custom_values", /do not cover/)
    accepted(cat(v(1, 2), sv(4, -53), packedD(16, [1, 2]), span(11, 0, 1), span(11, 1, 1), packedS(12, [1, 0])))
    refused(cb(v(6, 1)), "Histogram.zero_count_int", /zero count/)
    refused(cat(d(2, 1), sv(4, -53), d(7, 1)), "Histogram.zero_count_float", /zero count/)
    refused(cb(d(5, 0.5)), "Histogram.zero_threshold")
    refused(cb(span(8, 0, 0)), "Histogram.negative_spans")
    refused(cb(packedS(9, [0])), "Histogram.negative_deltas", /negative buckets/)
    refused(cat(d(2, 1), sv(4, -53), packedD(10, [0])), "Histogram.negative_counts")
    // And an exponential schema must not have custom values.
    refused(cat(v(1, 0), sv(4, 0), d(16, 1)), "Histogram.custom_values", /exponential/)
  })

  it("integer and float fields in one histogram", () => {
    refused(cat(v(1, 1), span(11, 0, 1), packedD(13, [1])), "Histogram.positive_counts", /integer fields .* and float fields/)
    refused(cat(d(2, 1), v(6, 0)), "Histogram.zero_count_int")
    refused(cat(v(1, 1), d(2, 1)), "Histogram.count_float")
    refused(cat(packedD(10, [1]), packedS(9, [1])), "Histogram.negative_deltas")
    // Float fields alone (no count) make a float histogram.
    for (const [, body, decode] of versions) {
      expect(plain(only(decode(body(cat(span(11, 0, 1), d(13, 2))))).histogram)).toMatchObject({ count: 0, positiveBuckets: [2] })
    }
  })

  it("numbers outside what a number holds exactly", () => {
    refused(cat(v(1, 2 ** 53)), "Histogram.count_int", /safe integer/)
    refused(cat(v(1, -1)), "Histogram.count_int", /safe integer/) // 2^64 - 1 as a uint64
    refused(cat(v(6, 2n ** 63n)), "Histogram.zero_count_int")
    refused(cat(v(1, 0), span(11, 0, 1), packedS(12, [2n ** 60n])), "Histogram.positive_deltas", /safe integer/)
    refused(cat(v(1, 0), span(11, 0, 1), packedS(12, [-(2n ** 53n)])), "Histogram.positive_deltas", /safe integer/)
    refused(cat(v(1, 0), span(11, 0, 2), packedS(12, [2 ** 53 - 1, 1])), "Histogram.positive_deltas", /bucket count outside the safe integer range/)
    refused(cat(v(1, 0), v(15, 2n ** 60n)), "Histogram.timestamp")
    // The extremes that do fit.
    accepted(cat(v(1, 2 ** 53 - 1), d(3, NaN), span(11, 0, 2), packedS(12, [2 ** 53 - 1, -(2 ** 53 - 1)])))
  })

  it("malformed wire data: wrong wire types, truncations", () => {
    refused(cat(v(1, 0), d(4, 1)), "Histogram.4", /wrong wire type/)
    refused(cat(v(1, 0), ld(15, v(1, 1))), "Histogram.15", /wrong wire type/)
    refused(cat(v(1, 0), ld(11, d(1, 0))), "Histogram.positive_spans.1", /wrong wire type/)
    refused(cat(v(1, 10), tag(3, 1), Uint8Array.of(0, 0, 0)), "Histogram.sum", /truncated/)
    refused(cat(v(1, 0), ld(12, Uint8Array.of(0x80))), "Histogram.positive_deltas", /truncated varint/)
    refused(cat(d(2, 0), ld(13, new Uint8Array(7))), "Histogram.positive_counts", /truncated fixed64/)
    refused(cat(v(1, 0), ld(16, new Uint8Array(12))), "Histogram.custom_values", /truncated fixed64/)
    refused(cat(v(1, 0), tag(11, 2), varint(5), v(2, 1)), "Histogram.positive_spans", /past the end/)
    refused(cat(v(1, 0), ld(11, tag(2, 0))), "Histogram.positive_spans.length", /truncated/)
    refused(cat(v(1, 0), tag(4, 0)), "Histogram.schema", /truncated/)
  })

  it("every truncation of a histogram is refused or (cut at a field boundary) decoded, nothing else", () => {
    const message = encodedHistograms("v1", encodeWriteRequestV1(request([{ timestampMs: 1, histogram: intExponential() }])))[0]!
    const boundaries = new Set<number>([0])
    {
      let at = 0
      for (const f of fields(message)) {
        at += tag(f.field, f.wire).length + (f.wire === 0 ? varint(f.value).length : f.wire === 1 ? 8 : varint(f.payload.length).length + f.payload.length)
        boundaries.add(at)
      }
    }
    for (const [, body, decode] of versions) {
      for (let n = 0; n < message.length; n++) {
        const result = outcome(() => decode(body(message.subarray(0, n))))
        // Cut at a field boundary the message is well formed (though, short of buckets, rarely valid).
        if (!boundaries.has(n)) expect([n, result]).toEqual([n, "decode"])
        else expect(result).not.toBe("limit")
      }
      // The histogram's length prefix claiming more than there is.
      const whole = body(message)
      expect(outcome(() => decode(whole.subarray(0, whole.length - 1)))).toBe("decode")
    }
  })

  it("random corruptions of histogram bodies throw only remote-write errors", () => {
    const rnd = prng(1234)
    const req: WriteRequest = {
      series: [
        {
          labels: [["__name__", "h"]],
          samples: [],
          histograms: [intExponential(), floatExponential(), intCustom(), floatCustom()].map((histogram, i) => ({ timestampMs: i, histogram }))
        }
      ],
      metadata: [],
      histograms: 4,
      exemplars: 0
    }
    const seen = { ok: 0, decode: 0, limit: 0 }
    for (const [, encode, decode] of encoders) {
      const bytes = encode(req)
      for (let i = 0; i < 3000; i++) {
        const mutated = bytes.slice()
        const edits = 1 + Math.floor(rnd() * 3)
        for (let e = 0; e < edits; e++) mutated[Math.floor(rnd() * mutated.length)] = Math.floor(rnd() * 256)
        seen[outcome(() => decode(mutated))]++
        seen[outcome(() => decode(mutated, { maxBucketsPerHistogram: 5 }))]++
      }
    }
    expect(seen.decode).toBeGreaterThan(1000)
    expect(seen.ok).toBeGreaterThan(10)
    expect(seen.limit).toBeGreaterThan(10)
  })
})

describe("native histograms: limits", () => {
  it("the default bucket limit", () => {
    expect(limits.maxBucketsPerHistogram).toBe(16_384)
    const n = limits.maxBucketsPerHistogram
    const at = (buckets: number): FloatHistogram =>
      fh({ count: buckets, sum: 1, positiveSpans: [{ offset: 0, length: buckets }], positiveBuckets: new Array<number>(buckets).fill(1) })
    for (const [, encode, decode] of encoders) {
      expect(only(decode(encode(request([{ timestampMs: 1, histogram: at(n) }])))).histogram.positiveBuckets).toHaveLength(n)
      const e = limitError(() => decode(encode(request([{ timestampMs: 1, histogram: at(n + 1) }]))))
      expect([e.limit, e.max]).toEqual(["maxBucketsPerHistogram", n])
    }
  })

  it("buckets (both sides together), spans and custom values are held to maxBucketsPerHistogram", () => {
    const lim = { maxBucketsPerHistogram: 4 }
    const four = cat(v(1, 4), span(11, 0, 2), packedS(12, [1, 0]), span(8, 0, 2), packedS(9, [1, 0]))
    const five = cat(v(1, 5), span(11, 0, 3), packedS(12, [1, 0, 0]), span(8, 0, 2), packedS(9, [1, 0]))
    const floats = cat(d(2, 5), span(11, 0, 5), d(13, 1), d(13, 1), d(13, 1), d(13, 1), d(13, 1))
    const spans5 = cat(v(1, 0), span(11, 0, 0), span(11, 0, 0), span(11, 0, 0), span(8, 0, 0), span(8, 0, 0))
    const custom5 = cat(v(1, 0), sv(4, -53), packedD(16, [1, 2, 3, 4, 5]))
    for (const [, body, decode] of versions) {
      only(decode(body(four), lim))
      only(decode(body(cat(v(1, 0), sv(4, -53), packedD(16, [1, 2, 3, 4]))), lim))
      for (const over of [five, floats, spans5, custom5]) {
        const e = limitError(() => decode(body(over), lim))
        expect([e.limit, e.max]).toEqual(["maxBucketsPerHistogram", 4])
      }
      only(decode(body(five)))
    }
  })

  it("histograms count against maxSamplesPerRequest with the float samples", () => {
    const req = request(
      [
        { timestampMs: 3, histogram: intExponential() },
        { timestampMs: 4, histogram: floatCustom() }
      ],
      {
        samples: [
          { timestampMs: 1, value: 1 },
          { timestampMs: 2, value: 2 }
        ]
      }
    )
    for (const [, encode, decode] of encoders) {
      const bytes = encode(req)
      expect(decode(bytes, { maxSamplesPerRequest: 4 }).histograms).toBe(2)
      expect(limitError(() => decode(bytes, { maxSamplesPerRequest: 3 })).limit).toBe("maxSamplesPerRequest")
      // Histograms alone, too.
      const onlyHistograms = encode(request(req.series[0]!.histograms!))
      expect(limitError(() => decode(onlyHistograms, { maxSamplesPerRequest: 1 })).limit).toBe("maxSamplesPerRequest")
    }
  })
})

describe("native histograms with remembered labels (LabelsInterner)", () => {
  it("decode as without it, also when labels come after the histograms", () => {
    const interner = new LabelsInterner(100)
    const body = encodeWriteRequestV1(request([{ timestampMs: 1, histogram: intExponential() }], { samples: [{ timestampMs: 1, value: 1 }] }))
    const plainDecode = decodeWriteRequestV1(body)
    decodeWriteRequestV1(body, limits, interner)
    expect(decodeWriteRequestV1(body, limits, interner)).toEqual(plainDecode)
    // The remembered first label run, then a histogram, then another label: decoded again in full,
    // the histogram counted once.
    const histogram = encodedHistograms("v1", body)[0]!
    const interleaved = ld(1, label("__name__", "h"), ld(4, histogram), sample1(1, 1), label("job", "x"))
    const got = decodeWriteRequestV1(interleaved, { maxSamplesPerRequest: 2 }, interner)
    expect(got.histograms).toBe(1)
    expect(got.series[0]!.labels).toEqual([
      ["__name__", "h"],
      ["job", "x"]
    ])
    expect(got.series[0]!.histograms!.map((h) => plain(h.histogram))).toEqual([plain(intExponential())])
  })
})
