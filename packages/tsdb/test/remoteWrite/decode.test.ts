import { describe, expect, it } from "vitest"
import {
  ColumnPool,
  decodeWriteRequestV1,
  decodeWriteRequestV2,
  encodeWriteRequestV1,
  encodeWriteRequestV2,
  isRemoteWriteError,
  isStaleNaN,
  LabelsInterner,
  limits,
  RemoteWriteDecodeError,
  RemoteWriteLimitError,
  staleNaN
} from "../../src/internal/remoteWrite/decode.ts"
import type { Metadata, RemoteWriteLimits, Series, WriteRequest } from "../../src/internal/remoteWrite/decode.ts"
import { bits, decodeError, fromBits, hex, limitError, prng } from "./helpers.ts"
import { b, cat, d, f32, group, label, ld, packed, s, sample1, tag, unknowns, v, varint } from "./pb.ts"

const empty: WriteRequest = { series: [], metadata: [], histograms: 0, exemplars: 0 }
const req = (series: Array<Series>, metadata: Array<Metadata> = []): WriteRequest => ({ ...empty, series, metadata })

/**
 * Bits of values that must survive: the stale marker, Prometheus' NaN, JS's NaN, other NaNs, -0, 0,
 * infinities, extremes. Kept as bits: V8 quiets a signalling NaN stored in a plain number array.
 */
const specialBits = [
  "7ff0000000000002",
  "7ff8000000000001",
  "7ff8000000000000",
  "fff8000000000000",
  "7ff0000000000001",
  "fff0000000000002",
  "8000000000000000",
  "0000000000000000",
  "7ff0000000000000",
  "fff0000000000000",
  "0000000000000001",
  "7fefffffffffffff",
  "bff0000000000000"
]

describe("stale markers", () => {
  it("isStaleNaN is exact", () => {
    expect(bits(staleNaN)).toBe("7ff0000000000002")
    expect(isStaleNaN(staleNaN)).toBe(true)
    expect(isStaleNaN(fromBits("7ff0000000000002"))).toBe(true)
    expect(isStaleNaN(NaN)).toBe(false)
    expect(isStaleNaN(fromBits("7ff8000000000001"))).toBe(false) // Prometheus' math.NaN()
    expect(isStaleNaN(fromBits("7ff8000000000002"))).toBe(false) // quieted
    expect(isStaleNaN(fromBits("fff0000000000002"))).toBe(false)
    expect(isStaleNaN(0)).toBe(false)
    expect(isStaleNaN(Infinity)).toBe(false)
  })
})

describe("golden bytes", () => {
  const v1Golden = hex(`
    0a 3e                                  |WriteRequest.timeseries, 62 bytes|
      0a 0e                                |labels, 14|
        0a 08 5f 5f 6e 61 6d 65 5f 5f      |name __name__|
        12 02 75 70                        |value up|
      0a 08                                |labels, 8|
        0a 03 6a 6f 62                     |name job|
        12 01 61                           |value a|
      12 0c                                |samples, 12|
        09 00 00 00 00 00 00 f0 3f         |value 1.0|
        10 e8 07                           |timestamp 1000|
      12 14                                |samples, 20|
        09 02 00 00 00 00 00 f0 7f         |value stale NaN|
        10 ff ff ff ff ff ff ff ff ff 01   |timestamp -1|
    1a 09                                  |WriteRequest.metadata, 9|
      08 02                                |type GAUGE|
      12 02 75 70                          |metric_family_name up|
      22 01 68                             |help h|
  `)
  const v1Expected: WriteRequest = req(
    [
      {
        labels: [
          ["__name__", "up"],
          ["job", "a"]
        ],
        samples: [
          { timestampMs: 1000, value: 1 },
          { timestampMs: -1, value: staleNaN }
        ]
      }
    ],
    [{ metric: "up", type: "gauge", help: "h", unit: "" }]
  )

  it("v1 decodes", () => {
    const got = decodeWriteRequestV1(v1Golden)
    expect(got).toEqual(v1Expected)
    expect(bits(got.series[0]!.samples[1]!.value)).toBe("7ff0000000000002")
    expect(isStaleNaN(got.series[0]!.samples[1]!.value)).toBe(true)
  })

  it("v1 encodes to the same bytes", () => {
    expect(encodeWriteRequestV1(v1Expected)).toEqual(v1Golden)
  })

  const v2Golden = hex(`
    22 00                                  |symbols[0] ""|
    22 08 5f 5f 6e 61 6d 65 5f 5f          |symbols[1] __name__|
    22 02 75 70                            |symbols[2] up|
    22 03 6a 6f 62                         |symbols[3] job|
    22 01 61                               |symbols[4] a|
    22 01 68                               |symbols[5] h|
    2a 28                                  |timeseries, 40 bytes|
      0a 04 01 02 03 04                    |labels_refs packed 1 2 3 4|
      12 0c                                |samples, 12|
        09 00 00 00 00 00 00 f0 3f         |value 1.0|
        10 e8 07                           |timestamp 1000|
      12 0c                                |samples, 12|
        09 02 00 00 00 00 00 f0 7f         |value stale NaN|
        10 e9 07                           |timestamp 1001|
      2a 04 08 02 18 05                    |metadata: type GAUGE, help_ref 5|
  `)
  const v2Expected: WriteRequest = req(
    [
      {
        labels: [
          ["__name__", "up"],
          ["job", "a"]
        ],
        samples: [
          { timestampMs: 1000, value: 1 },
          { timestampMs: 1001, value: staleNaN }
        ]
      }
    ],
    [{ metric: "up", type: "gauge", help: "h", unit: "" }]
  )

  it("v2 decodes", () => {
    const got = decodeWriteRequestV2(v2Golden)
    expect(got).toEqual(v2Expected)
    expect(isStaleNaN(got.series[0]!.samples[1]!.value)).toBe(true)
  })

  it("v2 encodes to the same bytes", () => {
    expect(encodeWriteRequestV2(v2Expected)).toEqual(v2Golden)
  })

  it("v2 alternative wire forms: symbols after the series, unpacked refs, start timestamps", () => {
    const bytes = cat(
      ld(5, v(1, 3), v(1, 4), packed(1, [1, 2]), ld(2, d(1, 2.5), v(2, 5), v(3, 4))),
      ld(5, packed(1, [1, 2]), ld(2, d(1, 1), v(2, 6)), v(6, 3)), // legacy created_timestamp (field 6)
      s(4, ""),
      s(4, "__name__"),
      s(4, "up"),
      s(4, "job"),
      s(4, "a")
    )
    expect(decodeWriteRequestV2(bytes)).toEqual(
      req([
        {
          labels: [
            ["__name__", "up"],
            ["job", "a"]
          ],
          samples: [{ timestampMs: 5, value: 2.5, startTimestampMs: 4 }]
        },
        { labels: [["__name__", "up"]], samples: [{ timestampMs: 6, value: 1, startTimestampMs: 3 }] }
      ])
    )
  })
})

describe("round trips", () => {
  const random = (seed: number, nSeries: number): WriteRequest => {
    const rnd = prng(seed)
    const pick = <A>(xs: ReadonlyArray<A>): A => xs[Math.floor(rnd() * xs.length)]!
    const names = ["job", "instance", "mode", "cpu", "le", "quantile", "_x", "Z9", "path"]
    const values = ["", "a", "node", "host-1:9100", "ünïcödé ✓", "😀 emoji", "\uFEFFbom", "x".repeat(300), "with\nnewline\"quote"]
    const series: Array<Series> = []
    for (let i = 0; i < nSeries; i++) {
      const labels = new Map<string, string>([["__name__", `metric_${i % 50}`]])
      const nLabels = Math.floor(rnd() * 6)
      for (let j = 0; j < nLabels; j++) labels.set(pick(names), pick(values))
      labels.set("id", String(i))
      const samples = []
      const nSamples = Math.floor(rnd() * 4)
      let ts = Math.floor(rnd() * 2 ** 42) - 2 ** 20
      for (let j = 0; j < nSamples; j++) {
        ts += Math.floor(rnd() * 60_000)
        const value = rnd() < 0.3 ? fromBits(pick(specialBits)) : (rnd() - 0.5) * 10 ** Math.floor(rnd() * 40 - 20)
        samples.push({ timestampMs: ts, value })
      }
      series.push({ labels: [...labels].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)), samples })
    }
    return req(series)
  }

  const sameBits = (a: WriteRequest, b: WriteRequest): void => {
    expect(b.series.length).toBe(a.series.length)
    for (let i = 0; i < a.series.length; i++) {
      const x = a.series[i]!.samples
      const y = b.series[i]!.samples
      expect(y.map((p) => bits(p.value))).toEqual(x.map((p) => bits(p.value)))
    }
  }

  it("v1: many series, special values bit-exact", () => {
    const input = random(1, 5000)
    const got = decodeWriteRequestV1(encodeWriteRequestV1(input))
    expect(got).toEqual(input)
    sameBits(input, got)
  })

  it("v2: many series, special values bit-exact", () => {
    const input = random(2, 5000)
    const got = decodeWriteRequestV2(encodeWriteRequestV2(input))
    expect(got).toEqual(input)
    sameBits(input, got)
  })

  it("every special value in both versions", () => {
    const input = req([{ labels: [["__name__", "x"]], samples: specialBits.map((h, i) => ({ timestampMs: i, value: fromBits(h) })) }])
    const v1 = encodeWriteRequestV1(input)
    const v2 = encodeWriteRequestV2(input)
    for (const got of [decodeWriteRequestV1(v1), decodeWriteRequestV2(v2)]) {
      expect(got.series[0]!.samples.map((p) => bits(p.value))).toEqual(specialBits)
      expect(got.series[0]!.samples.map((p) => isStaleNaN(p.value))).toEqual(specialBits.map((h) => h === "7ff0000000000002"))
    }
    // And re-encoding gives the same bytes.
    expect(encodeWriteRequestV1(decodeWriteRequestV1(v1))).toEqual(v1)
    expect(encodeWriteRequestV2(decodeWriteRequestV2(v2))).toEqual(v2)
  })

  it("timestamps at the edges of the safe range", () => {
    const edges = [0, 1, -1, 127, 128, 2 ** 31, -(2 ** 31), 2 ** 32, 2 ** 49 - 1, 2 ** 49, 2 ** 53 - 1, -(2 ** 53 - 1), 1_760_000_000_000]
    const input = req([{ labels: [["a", "b"]], samples: edges.map((timestampMs) => ({ timestampMs, value: 1 })) }])
    expect(decodeWriteRequestV1(encodeWriteRequestV1(input))).toEqual(input)
    expect(decodeWriteRequestV2(encodeWriteRequestV2(input))).toEqual(input)
  })

  it("metadata-only requests", () => {
    const metadata: Array<Metadata> = [
      { metric: "http_requests_total", type: "counter", help: "Requests.", unit: "" },
      { metric: "temp", type: "gauge", help: "Temperature ✓", unit: "celsius" },
      { metric: "lat", type: "histogram", help: "", unit: "seconds" },
      { metric: "s", type: "stateset", help: "h", unit: "" },
      { metric: "u", type: "unknown", help: "only help", unit: "" }
    ]
    expect(decodeWriteRequestV1(encodeWriteRequestV1(req([], metadata)))).toEqual(req([], metadata))
    // v2 carries metadata on series: each entry rides on a sample-less series {__name__=metric}.
    const got = decodeWriteRequestV2(encodeWriteRequestV2(req([], metadata)))
    expect(got.metadata).toEqual(metadata)
    expect(got.series).toEqual(metadata.map((m) => ({ labels: [["__name__", m.metric]], samples: [] })))
  })

  it("v2 metadata is per series, merged when identical", () => {
    const md: Metadata = { metric: "up", type: "gauge", help: "Up.", unit: "" }
    const series: Array<Series> = [1, 2, 3].map((i) => ({
      labels: [
        ["__name__", "up"],
        ["i", String(i)]
      ],
      samples: [{ timestampMs: i, value: i }]
    }))
    const bytes = encodeWriteRequestV2(req(series, [md]))
    const got = decodeWriteRequestV2(bytes)
    expect(got).toEqual(req(series, [md]))
    // Conflicting entries for one metric are both kept.
    const other = cat(
      bytes,
      ld(5, packed(1, [1, 2]), ld(5, v(1, 1))) // __name__=up, type COUNTER
    )
    expect(decodeWriteRequestV2(other).metadata).toEqual([md, { ...md, type: "counter", help: "" }])
  })

  it("empty requests", () => {
    expect(decodeWriteRequestV1(new Uint8Array(0))).toEqual(empty)
    expect(decodeWriteRequestV2(new Uint8Array(0))).toEqual(empty)
    expect(encodeWriteRequestV1(empty)).toEqual(new Uint8Array(0))
    expect(decodeWriteRequestV2(encodeWriteRequestV2(empty))).toEqual(empty)
  })

  it("decodes a subarray of a larger buffer", () => {
    const inner = encodeWriteRequestV1(random(3, 10))
    const outer = new Uint8Array(inner.length + 20).fill(0xff)
    outer.set(inner, 7)
    expect(decodeWriteRequestV1(outer.subarray(7, 7 + inner.length))).toEqual(decodeWriteRequestV1(inner))
  })
})

describe("wire details", () => {
  it("skips unknown fields of every wire type at every level", () => {
    const withUnknowns = cat(
      unknowns,
      ld(1, unknowns, label("__name__", "up", unknowns), unknowns, sample1(2, 3, unknowns), unknowns),
      unknowns,
      ld(3, unknowns, v(1, 1), s(2, "up"), s(3, "field 3 is not in MetricMetadata"), s(4, "h"), s(5, "u"), unknowns),
      unknowns
    )
    expect(decodeWriteRequestV1(withUnknowns)).toEqual(
      req([{ labels: [["__name__", "up"]], samples: [{ timestampMs: 3, value: 2 }] }], [
        { metric: "up", type: "counter", help: "h", unit: "u" }
      ])
    )
    const v2 = cat(
      unknowns,
      s(4, ""),
      s(4, "__name__"),
      unknowns,
      s(4, "up"),
      ld(5, unknowns, packed(1, [1, 2]), unknowns, ld(2, unknowns, d(1, 2), v(2, 3), unknowns), ld(5, unknowns, v(1, 2), v(2, 99), unknowns)),
      v(1, 1), // v2 reserves 1-3 (where v1 puts its fields)
      unknowns
    )
    expect(decodeWriteRequestV2(v2)).toEqual(
      req([{ labels: [["__name__", "up"]], samples: [{ timestampMs: 3, value: 2 }] }], [
        { metric: "up", type: "gauge", help: "", unit: "" }
      ])
    )
  })

  it("a v1 body read as v2 is empty, and the reverse finds nothing either", () => {
    const v1 = encodeWriteRequestV1(req([{ labels: [["__name__", "up"]], samples: [{ timestampMs: 1, value: 1 }] }]))
    expect(decodeWriteRequestV2(v1)).toEqual(empty)
    const v2 = encodeWriteRequestV2(req([{ labels: [["__name__", "up"]], samples: [{ timestampMs: 1, value: 1 }] }]))
    expect(decodeWriteRequestV1(v2)).toEqual(empty)
  })

  it("counts histograms and exemplars, checking their wire data", () => {
    // count 10 = zero bucket 3 + negative 1, 2, 1 (deltas 1, 1, -1) + positive 2, 1 (deltas 2, -1); schema -2.
    const histogram = cat(
      v(1, 10),
      d(3, 12.5),
      v(4, 3),
      v(6, 3),
      ld(8, v(1, 0), v(2, 3)),
      packed(9, [2, 2, 1]),
      ld(11, v(1, 0), v(2, 2)),
      packed(12, [4, 1]),
      v(15, 1000)
    )
    const v1 = cat(
      ld(1, label("__name__", "h"), ld(4, histogram), ld(4, histogram), ld(3, label("trace_id", "abc"), d(2, 1), v(3, 5))),
      ld(1, label("__name__", "c"), sample1(1, 1), ld(3, d(2, 2)))
    )
    const got = decodeWriteRequestV1(v1)
    expect(got.histograms).toBe(2)
    expect(got.exemplars).toBe(2)
    expect(got.series.map((x) => x.samples.length)).toEqual([0, 1])

    const v2 = cat(
      s(4, ""),
      s(4, "__name__"),
      s(4, "h"),
      s(4, "trace_id"),
      s(4, "abc"),
      ld(5, packed(1, [1, 2]), ld(3, histogram), ld(4, packed(1, [3, 4]), d(2, 1), v(3, 5)), ld(4, v(1, 3), v(1, 4)), ld(4))
    )
    const got2 = decodeWriteRequestV2(v2)
    expect(got2.histograms).toBe(1)
    expect(got2.exemplars).toBe(3)
    // Bad exemplar refs are refused too.
    decodeError(() => decodeWriteRequestV2(cat(s(4, ""), s(4, "a"), ld(5, packed(1, [1, 0]), ld(4, packed(1, [1, 9]))))))
    decodeError(() => decodeWriteRequestV2(cat(s(4, ""), s(4, "a"), ld(5, packed(1, [1, 0]), ld(4, packed(1, [1]))))))
    // A truncated histogram inside is malformed.
    decodeError(() => decodeWriteRequestV1(ld(1, label("a", "b"), ld(4, v(1, 10), tag(3, 1), new Uint8Array(3)))))
    decodeError(() => decodeWriteRequestV1(ld(1, label("a", "b"), ld(3, label("x", ""), b(1, hex("0a 01 ff"))))))
  })

  it("sorts unsorted labels, refuses duplicates", () => {
    const unsorted = ld(1, label("job", "a"), label("__name__", "up"), label("a", "1"), sample1(1, 1))
    expect(decodeWriteRequestV1(unsorted).series[0]!.labels).toEqual([
      ["__name__", "up"],
      ["a", "1"],
      ["job", "a"]
    ])
    const dup = decodeError(() => decodeWriteRequestV1(ld(1, label("job", "a"), label("__name__", "up"), label("job", "b"))))
    expect(dup.field).toBe("TimeSeries.labels")
    expect(dup.reason).toMatch(/duplicate/)
    decodeError(() => decodeWriteRequestV1(ld(1, label("a", "1"), label("a", "1"))))
    const symbols = cat(s(4, ""), s(4, "b"), s(4, "a"), s(4, "x"))
    expect(decodeWriteRequestV2(cat(symbols, ld(5, packed(1, [1, 3, 2, 3])))).series[0]!.labels).toEqual([
      ["a", "x"],
      ["b", "x"]
    ])
    decodeError(() => decodeWriteRequestV2(cat(symbols, ld(5, packed(1, [1, 3, 2, 3, 1, 2])))))
  })

  it("label names: [a-zA-Z_][a-zA-Z0-9_]*", () => {
    for (const ok of ["__name__", "_", "a", "Z", "a1", "_9", "le", "A_b_C"]) {
      expect(decodeWriteRequestV1(ld(1, label(ok, "v"))).series[0]!.labels).toEqual([[ok, "v"]])
    }
    for (const bad of ["", "1a", "a-b", "a.b", "é", "a b", "a:b", "\u0000"]) {
      const e = decodeError(() => decodeWriteRequestV1(ld(1, label(bad, "v"))))
      expect(e.field).toBe("Label.name")
      const symbols = cat(s(4, ""), s(4, bad), s(4, "v"), s(4, "ok"))
      decodeError(() => decodeWriteRequestV2(cat(symbols, ld(5, packed(1, [3, 2, 1, 2])))))
    }
    // A Label without a name field.
    decodeError(() => decodeWriteRequestV1(ld(1, ld(1, s(2, "v")))))
  })

  it("a series needs a label", () => {
    decodeError(() => decodeWriteRequestV1(ld(1, sample1(1, 1))))
    decodeError(() => decodeWriteRequestV1(ld(1)))
    decodeError(() => decodeWriteRequestV2(cat(s(4, ""), ld(5, ld(2, d(1, 1))))))
  })

  it("v2: symbol refs in range, labels_refs even", () => {
    const symbols = cat(s(4, ""), s(4, "a"), s(4, "b"))
    expect(decodeWriteRequestV2(cat(symbols, ld(5, packed(1, [1, 2])))).series[0]!.labels).toEqual([["a", "b"]])
    const out = decodeError(() => decodeWriteRequestV2(cat(symbols, ld(5, packed(1, [1, 3])))))
    expect(out.field).toBe("TimeSeries.labels_refs")
    expect(out.reason).toMatch(/out of range/)
    decodeError(() => decodeWriteRequestV2(cat(symbols, ld(5, packed(1, [1, 2 ** 32 - 1])))))
    decodeError(() => decodeWriteRequestV2(cat(symbols, ld(5, packed(1, [1, 2]), ld(5, v(3, 7))))))
    decodeError(() => decodeWriteRequestV2(cat(symbols, ld(5, packed(1, [1, 2]), ld(5, v(4, 3))))))
    decodeError(() => decodeWriteRequestV2(ld(5, packed(1, [0, 0]))))
    const odd = decodeError(() => decodeWriteRequestV2(cat(symbols, ld(5, packed(1, [1, 2, 1])))))
    expect(odd.reason).toMatch(/odd/)
    // A ref that does not fit 32 bits.
    decodeError(() => decodeWriteRequestV2(cat(symbols, ld(5, ld(1, varint(2n ** 32n)), packed(1, [2])))))
    // Metadata refs 0 with no symbols at all read as "" (the spec's "unset").
    expect(decodeWriteRequestV2(cat(ld(5, ld(1, varint(1), varint(2)), ld(5, v(1, 1))), s(4, "x"), s(4, "__name__"), s(4, "m"))).metadata).toEqual([
      { metric: "m", type: "counter", help: "x", unit: "x" }
    ])
  })

  it("wrong wire types for known fields", () => {
    const cases: Array<[string, Uint8Array]> = [
      ["WriteRequest.1", v(1, 1)],
      ["WriteRequest.3", d(3, 1)],
      ["TimeSeries.1", ld(1, v(1, 0))],
      ["TimeSeries.2", ld(1, label("a", "b"), f32(2, 0))],
      ["Label.1", ld(1, ld(1, v(1, 1)))],
      ["Label.2", ld(1, ld(1, s(1, "a"), d(2, 0)))],
      ["Sample.1", ld(1, label("a", "b"), ld(2, v(1, 1)))],
      ["Sample.2", ld(1, label("a", "b"), ld(2, d(2, 1)))],
      ["MetricMetadata.1", ld(3, s(1, "x"))],
      ["MetricMetadata.2", ld(3, v(2, 1))]
    ]
    for (const [field, bytes] of cases) expect(decodeError(() => decodeWriteRequestV1(bytes)).field).toBe(field)
    const v2cases: Array<[string, Uint8Array]> = [
      ["Request.4", v(4, 1)],
      ["Request.5", d(5, 1)],
      ["TimeSeries.2", ld(5, v(2, 1))],
      ["TimeSeries.5", ld(5, v(5, 1))],
      ["Sample.3", ld(5, ld(2, d(3, 1)))],
      ["Metadata.3", ld(5, ld(5, s(3, "x")))]
    ]
    for (const [field, bytes] of v2cases) expect(decodeError(() => decodeWriteRequestV2(bytes)).field).toBe(field)
  })

  it("malformed wire data", () => {
    const bad = [
      hex("0a"), // tag, no length
      hex("0a 80"), // truncated length varint
      hex("0a 05 00"), // length past the end
      hex("0a ff ff ff ff 0f"), // length 2^32 - 1
      hex("0a ff ff ff ff ff ff ff ff ff 01"), // length overflowing 32 bits
      hex("80 80 80 80 80 80 80 80 80 80 00"), // 11-byte varint tag
      hex("00"), // field number 0
      hex("06"), // field 0, wire type 6
      hex("0e 00"), // wire type 6
      hex("0f 00"), // wire type 7
      hex("0c"), // end group without start
      hex("0b 0a 00"), // group never ended
      cat(group(100, v(1, 1)).subarray(0, 4), tag(101, 4)), // mismatched end group
      cat(...Array.from({ length: 40 }, () => tag(100, 3))), // groups nested deeper than allowed
      cat(tag(100, 1), new Uint8Array(7)), // truncated fixed64
      cat(tag(100, 5), new Uint8Array(3)), // truncated fixed32
      hex("f8 ff ff ff ff ff ff ff ff 02 00"), // varint tag over 32 bits
      cat(tag(100, 0), hex("ff ff ff ff ff ff ff ff ff 02")), // varint: 10th byte > 1
      cat(tag(100, 0), hex("ff ff ff ff ff ff ff ff ff 81 00")) // varint of 11 bytes
    ]
    for (const bytes of bad) {
      decodeError(() => decodeWriteRequestV1(bytes))
      decodeError(() => decodeWriteRequestV2(bytes))
    }
    decodeError(() => decodeWriteRequestV1(ld(1, label("a", "b"), ld(2, tag(1, 1), new Uint8Array(4))))) // truncated double
    decodeError(() => decodeWriteRequestV1(ld(1, label("a", "b"), ld(2, tag(2, 0), hex("80 80"))))) // truncated timestamp
    decodeError(() => decodeWriteRequestV2(cat(s(4, "a"), ld(5, packed(1, [0, 0]), ld(2, tag(1, 1), new Uint8Array(4))))))
  })

  it("int64 timestamps outside the safe range are refused", () => {
    const at = (ts: number | bigint) => ld(1, label("a", "b"), sample1(1, ts))
    expect(decodeWriteRequestV1(at(2 ** 53 - 1)).series[0]!.samples[0]!.timestampMs).toBe(2 ** 53 - 1)
    expect(decodeWriteRequestV1(at(-(2 ** 53 - 1))).series[0]!.samples[0]!.timestampMs).toBe(-(2 ** 53 - 1))
    for (const ts of [2n ** 53n, -(2n ** 53n), 2n ** 63n - 1n, -(2n ** 63n), 2n ** 60n]) {
      const e = decodeError(() => decodeWriteRequestV1(at(ts)))
      expect(e.field).toBe("Sample.timestamp")
    }
    // A non-minimal but valid 10-byte encoding of a small value.
    expect(decodeWriteRequestV1(ld(1, label("a", "b"), ld(2, tag(2, 0), hex("85 80 80 80 80 80 80 80 80 00")))).series[0]!.samples[0]!.timestampMs).toBe(5)
  })

  it("invalid UTF-8 is refused in every string", () => {
    const invalid = [hex("ff"), hex("c0 80"), hex("ed a0 80"), hex("e2 82"), hex("f4 90 80 80"), hex("61 80")]
    for (const bytes of invalid) {
      decodeError(() => decodeWriteRequestV1(ld(1, ld(1, s(1, "a"), b(2, bytes)))))
      decodeError(() => decodeWriteRequestV1(ld(1, ld(1, b(1, bytes), s(2, "a")))))
      decodeError(() => decodeWriteRequestV1(ld(3, b(2, bytes))))
      decodeError(() => decodeWriteRequestV1(ld(3, b(4, bytes))))
      decodeError(() => decodeWriteRequestV1(ld(3, b(5, bytes))))
      decodeError(() => decodeWriteRequestV2(b(4, bytes)))
    }
    // Valid multi-byte UTF-8 and a leading BOM are kept exactly.
    const got = decodeWriteRequestV1(ld(1, label("a", "\uFEFF€😀")))
    expect(got.series[0]!.labels).toEqual([["a", "\uFEFF€😀"]])
  })

  it("metric types map by number, unknown numbers to unknown", () => {
    const types = [0, 1, 2, 3, 4, 5, 6, 7, 8, -1, 2 ** 31 - 1]
    const got = decodeWriteRequestV1(cat(...types.map((t) => ld(3, v(1, t), s(2, "m")))))
    expect(got.metadata.map((m) => m.type)).toEqual([
      "unknown",
      "counter",
      "gauge",
      "histogram",
      "gaugehistogram",
      "summary",
      "info",
      "stateset",
      "unknown",
      "unknown",
      "unknown"
    ])
  })
})

describe("limits", () => {
  const many = (nSeries: number, nSamples: number): WriteRequest =>
    req(
      Array.from({ length: nSeries }, (_, i) => ({
        labels: [["__name__", `m${i}`]] as Array<[string, string]>,
        samples: Array.from({ length: nSamples }, (_, j) => ({ timestampMs: j, value: j }))
      }))
    )

  it("defaults", () => {
    expect(limits).toEqual({
      maxSeriesPerRequest: 100_000,
      maxSamplesPerRequest: 1_000_000,
      maxLabelsPerSeries: 128,
      maxLabelNameBytes: 4096,
      maxLabelValueBytes: 16384,
      maxMetadataPerRequest: 100_000,
      maxSymbolsPerRequest: 2_000_000,
      maxBucketsPerHistogram: 16_384
    })
  })

  it("series and samples per request", () => {
    for (const [encode, decode] of [
      [encodeWriteRequestV1, decodeWriteRequestV1],
      [encodeWriteRequestV2, decodeWriteRequestV2]
    ] as const) {
      const bytes = encode(many(10, 3))
      expect(decode(bytes, { maxSeriesPerRequest: 10, maxSamplesPerRequest: 30 }).series).toHaveLength(10)
      expect(limitError(() => decode(bytes, { maxSeriesPerRequest: 9 })).limit).toBe("maxSeriesPerRequest")
      expect(limitError(() => decode(bytes, { maxSamplesPerRequest: 29 })).limit).toBe("maxSamplesPerRequest")
    }
    // An override of undefined (from JS) keeps the default.
    const undef = { maxSeriesPerRequest: undefined } as unknown as Partial<RemoteWriteLimits>
    expect(limitError(() => decodeWriteRequestV1(encodeWriteRequestV1(many(3, 1)), { ...undef, maxSamplesPerRequest: 2 })).limit).toBe(
      "maxSamplesPerRequest"
    )
    expect(decodeWriteRequestV1(encodeWriteRequestV1(many(3, 1)), undef).series).toHaveLength(3)
    // The default series limit.
    const over = encodeWriteRequestV1(many(limits.maxSeriesPerRequest + 1, 0))
    expect(limitError(() => decodeWriteRequestV1(over)).max).toBe(100_000)
  })

  it("labels per series, name and value bytes", () => {
    const labels: Array<[string, string]> = Array.from({ length: 5 }, (_, i) => [`l${i}`, "v"])
    const long = (name: number, value: number) => req([{ labels: [["n".repeat(name), "v".repeat(value)]], samples: [] }])
    for (const [encode, decode] of [
      [encodeWriteRequestV1, decodeWriteRequestV1],
      [encodeWriteRequestV2, decodeWriteRequestV2]
    ] as const) {
      const bytes = encode(req([{ labels, samples: [] }]))
      expect(decode(bytes, { maxLabelsPerSeries: 5 }).series[0]!.labels).toEqual(labels)
      expect(limitError(() => decode(bytes, { maxLabelsPerSeries: 4 })).limit).toBe("maxLabelsPerSeries")
      expect(decode(encode(long(4096, 16384))).series).toHaveLength(1)
      expect(limitError(() => decode(encode(long(4097, 1)))).limit).toBe("maxLabelNameBytes")
      expect(limitError(() => decode(encode(long(1, 16385)))).limit).toBe("maxLabelValueBytes")
      // Bytes, not characters.
      const wide = req([{ labels: [["a", "é".repeat(3)]], samples: [] }])
      expect(limitError(() => decode(encode(wide), { maxLabelValueBytes: 5 })).limit).toBe("maxLabelValueBytes")
    }
  })

  it("metadata per request and v2 symbols", () => {
    const md = Array.from({ length: 5 }, (_, i): Metadata => ({ metric: `m${i}`, type: "gauge", help: "", unit: "" }))
    expect(limitError(() => decodeWriteRequestV1(encodeWriteRequestV1(req([], md)), { maxMetadataPerRequest: 4 })).limit).toBe(
      "maxMetadataPerRequest"
    )
    expect(limitError(() => decodeWriteRequestV2(encodeWriteRequestV2(req([], md)), { maxMetadataPerRequest: 4 })).limit).toBe(
      "maxMetadataPerRequest"
    )
    const symbols = cat(...Array.from({ length: 11 }, (_, i) => s(4, String(i))))
    expect(decodeWriteRequestV2(symbols, { maxSymbolsPerRequest: 11 })).toEqual(empty)
    expect(limitError(() => decodeWriteRequestV2(symbols, { maxSymbolsPerRequest: 10 })).limit).toBe("maxSymbolsPerRequest")
  })

  it("error classes", () => {
    const d = decodeError(() => decodeWriteRequestV1(hex("0a 05")))
    expect(d).toBeInstanceOf(Error)
    expect(d.name).toBe("RemoteWriteDecodeError")
    expect(d.message).toMatch(/WriteRequest.timeseries/)
    expect(isRemoteWriteError(d)).toBe(true)
    const l = new RemoteWriteLimitError("x", 1)
    expect(l.name).toBe("RemoteWriteLimitError")
    expect(isRemoteWriteError(l)).toBe(true)
    expect(isRemoteWriteError(new Error())).toBe(false)
    expect(l).not.toBeInstanceOf(RemoteWriteDecodeError)
  })
})

describe("encoder", () => {
  it("refuses timestamps that are not safe integers and lone surrogates", () => {
    expect(() => encodeWriteRequestV1(req([{ labels: [["a", "b"]], samples: [{ timestampMs: 2 ** 53, value: 1 }] }]))).toThrow(RangeError)
    expect(() => encodeWriteRequestV1(req([{ labels: [["a", "b"]], samples: [{ timestampMs: 1.5, value: 1 }] }]))).toThrow(RangeError)
    expect(() => encodeWriteRequestV1(req([{ labels: [["a", "\uD800"]], samples: [] }]))).toThrow(TypeError)
  })

  it("writes long payloads with multi-byte length prefixes", () => {
    const value = "v".repeat(70_000)
    const input = req([{ labels: [["a", value]], samples: [] }])
    expect(decodeWriteRequestV1(encodeWriteRequestV1(input), { maxLabelValueBytes: 100_000 })).toEqual(input)
    expect(decodeWriteRequestV2(encodeWriteRequestV2(input), { maxLabelValueBytes: 100_000 })).toEqual(input)
  })

  it("samples in every wire shape decode alike, mixed in one series", () => {
    // value then timestamp (what senders write), timestamp first, timestamp omitted (0), value omitted,
    // an unknown field after, a repeated timestamp (the last counts), a negative timestamp, a timestamp of 8 varint bytes, a two-byte length prefix.
    const shapes: Array<[Uint8Array, number, number]> = [
      [cat(d(1, 1.5), v(2, 1_700_000_000_000)), 1_700_000_000_000, 1.5],
      [cat(v(2, 1_700_000_015_000), d(1, 2.5)), 1_700_000_015_000, 2.5],
      [d(1, 3.5), 0, 3.5],
      [v(2, 7), 7, 0],
      [cat(d(1, 4.5), v(2, 9), v(9, 1)), 9, 4.5],
      [cat(d(1, 8.5), v(2, 9), v(2, 12)), 12, 8.5],
      [cat(d(1, 5.5), v(2, -3)), -3, 5.5],
      [cat(d(1, 6.5), v(2, 2 ** 50)), 2 ** 50, 6.5],
      [cat(d(1, 7.5), v(2, 11), ld(10, new Uint8Array(200))), 11, 7.5]
    ]
    const body = ld(1, label("__name__", "m"), ...shapes.map(([bytes]) => ld(2, bytes)), ...shapes.map(([bytes]) => ld(2, bytes)))
    const decoded = decodeWriteRequestV1(body)
    const expected = shapes.map(([, timestampMs, value]) => ({ timestampMs, value }))
    expect(decoded.series[0]!.samples).toEqual([...expected, ...expected])
    // A sample cut short inside the run is still an error.
    const cut = ld(1, label("__name__", "m"), ld(2, shapes[0]![0]), ld(2, shapes[0]![0].subarray(0, 12)))
    expect(decodeError(() => decodeWriteRequestV1(cut)).field).toMatch(/Sample/)
  })

  it("negative timestamps take 10 bytes, like Go", () => {
    const bytes = encodeWriteRequestV1(req([{ labels: [["a", "b"]], samples: [{ timestampMs: -2, value: 0 }] }]))
    expect(bytes.subarray(bytes.length - 11)).toEqual(hex("10 fe ff ff ff ff ff ff ff ff 01"))
  })
})

describe("samples as columns", () => {
  /** The request decoded with columns, its samples moved back into objects (to compare with a plain decode). */
  const viaColumns = (bytes: Uint8Array, interner?: LabelsInterner) => {
    const decoded = decodeWriteRequestV1(bytes, limits, interner, true)
    return {
      ...decoded,
      series: decoded.series.map(({ sampleColumns, ...rest }) => {
        expect(rest.samples).toEqual([])
        const samples = sampleColumns === undefined
          ? []
          : Array.from(sampleColumns.timestamps.subarray(sampleColumns.start, sampleColumns.end), (timestampMs, k) => ({ timestampMs, value: sampleColumns.values[sampleColumns.start + k]! }))
        return { ...rest, samples }
      })
    }
  }

  it("holds exactly the samples a plain decode gives, series by series, special values bit for bit", () => {
    const rnd = prng(21)
    const specials = [Number.NaN, Number.POSITIVE_INFINITY, -0, fromBits("7ff0000000000002"), 5e-324]
    const series: Array<Series> = Array.from({ length: 300 }, (_, i) => ({
      labels: [["__name__", `m${i % 7}`], ["i", String(i)]],
      // Some series without samples, some with thousands (the columns grow past their first size).
      samples: Array.from({ length: i % 10 === 0 ? 0 : i === 7 ? 5_000 : 1 + Math.floor(rnd() * 40) }, (_, k) => ({
        timestampMs: 1_700_000_000_000 + k * 15_000 - (k % 5 === 0 ? 3 : 0),
        value: k % 11 === 0 ? specials[k % specials.length]! : rnd() * 1e6
      }))
    }))
    const bytes = encodeWriteRequestV1(req(series))
    const plain = decodeWriteRequestV1(bytes)
    const columns = viaColumns(bytes)
    expect(columns.series.length).toBe(plain.series.length)
    for (let i = 0; i < plain.series.length; i++) {
      expect(columns.series[i]!.labels).toEqual(plain.series[i]!.labels)
      expect(columns.series[i]!.samples.map((x) => [x.timestampMs, bits(x.value)])).toEqual(plain.series[i]!.samples.map((x) => [x.timestampMs, bits(x.value)]))
    }
  })

  it("with remembered labels, labels after samples, and samples in every wire shape", () => {
    const interner = new LabelsInterner(100)
    const bodies = [
      cat(ld(1, label("__name__", "up"), sample1(1, 2), sample1(3, 4)), ld(1, label("__name__", "x"), sample1(5, 6))),
      // The first run matches a remembered set, then a label follows: decoded again in full.
      cat(ld(1, label("__name__", "up"), sample1(7, 8), label("job", "x")), ld(1, label("__name__", "x"), sample1(9, 10))),
      cat(ld(1, label("__name__", "up"), ld(2, v(2, 11), d(1, 12)), ld(2, d(1, 13)), sample1(14, -1)))
    ]
    for (const bytes of bodies) {
      expect(viaColumns(bytes, interner)).toEqual(decodeWriteRequestV1(bytes))
      expect(viaColumns(bytes, interner)).toEqual(decodeWriteRequestV1(bytes))
    }
  })

  it("from a pool: a released request's columns serve the next one, which decodes as without the pool", () => {
    const pool = new ColumnPool(2, 10_000)
    const body = (n: number, from: number) =>
      encodeWriteRequestV1(req(Array.from({ length: 50 }, (_, i) => ({
        labels: [["__name__", "m"], ["i", String(i)]],
        samples: Array.from({ length: n }, (_, k) => ({ timestampMs: from + k, value: i * 1000 + k }))
      }))))
    const first = decodeWriteRequestV1(body(20, 0), limits, undefined, pool)
    const firstColumns = first.series[0]!.sampleColumns!
    // Not released: the next request gets columns of its own.
    const second = decodeWriteRequestV1(body(20, 100), limits, undefined, pool)
    expect(second.series[0]!.sampleColumns!.timestamps).not.toBe(firstColumns.timestamps)
    expect(first.series[3]!.sampleColumns!.values[first.series[3]!.sampleColumns!.start]).toBe(3000)
    pool.release(first)
    pool.release(first)
    expect(pool.size).toBe(1)
    const third = decodeWriteRequestV1(body(20, 200), limits, undefined, pool)
    expect(pool.size).toBe(0)
    expect(third.series[0]!.sampleColumns!.timestamps).toBe(firstColumns.timestamps)
    const plain = decodeWriteRequestV1(body(20, 200))
    third.series.forEach((s, i) => {
      const c = s.sampleColumns!
      expect(Array.from(c.timestamps.subarray(c.start, c.end))).toEqual(plain.series[i]!.samples.map((x) => x.timestampMs))
      expect(Array.from(c.values.subarray(c.start, c.end))).toEqual(plain.series[i]!.samples.map((x) => x.value))
    })
    // A request larger than the pooled columns grows past them; columns over the pool's size are not kept.
    pool.release(third)
    const big = decodeWriteRequestV1(body(400, 0), limits, undefined, pool)
    expect(big.series[49]!.sampleColumns!.end).toBe(50 * 400)
    expect(big.series[49]!.sampleColumns!.timestamps.length).toBeGreaterThan(10_000)
    pool.release(big)
    expect(pool.size).toBeLessThanOrEqual(2)
    const small = new ColumnPool(1, 100)
    const kept = decodeWriteRequestV1(body(20, 0), limits, undefined, small)
    small.release(kept)
    expect(small.size).toBe(0)
  })

  it("limits hold as without columns", () => {
    const bytes = cat(ld(1, label("__name__", "up"), sample1(1, 2), sample1(3, 4)))
    expect(() => decodeWriteRequestV1(bytes, { maxSamplesPerRequest: 1 }, undefined, true)).toThrow(RemoteWriteLimitError)
  })
})

describe("labels remembered by their bytes (LabelsInterner)", () => {
  const body = (n: number) =>
    encodeWriteRequestV1(req(Array.from({ length: n }, (_, i) => ({
      labels: [["__name__", "m"], ["i", String(i)]] as Array<[string, string]>,
      samples: [{ timestampMs: i, value: i }]
    }))))

  it("a series sent again gets the same (frozen) labels, and decodes exactly as without it", () => {
    const interner = new LabelsInterner(100)
    const first = decodeWriteRequestV1(body(3), limits, interner)
    const again = decodeWriteRequestV1(body(3), limits, interner)
    expect(again).toEqual(decodeWriteRequestV1(body(3)))
    for (let i = 0; i < 3; i++) {
      expect(again.series[i]!.labels).toBe(first.series[i]!.labels)
      expect(Object.isFrozen(again.series[i]!.labels)).toBe(true)
    }
    expect(interner.size).toBe(3)
  })

  it("labels after other fields are decoded in full, however the first run matched", () => {
    const interner = new LabelsInterner(100)
    const plain = cat(ld(1, label("__name__", "up"), sample1(1, 2)))
    decodeWriteRequestV1(plain, limits, interner)
    // The same first label run, then a sample, then another label: not the remembered set.
    const interleaved = cat(ld(1, label("__name__", "up"), sample1(1, 2), label("job", "x")))
    const decoded = decodeWriteRequestV1(interleaved, limits, interner)
    expect(decoded.series[0]!.labels).toEqual([["__name__", "up"], ["job", "x"]])
    expect(decoded.series[0]!.samples).toEqual([{ timestampMs: 2, value: 1 }])
    expect(decodeWriteRequestV1(interleaved, limits, interner).series[0]!.labels).toEqual([["__name__", "up"], ["job", "x"]])
  })

  it("limits still hold: a request over a limit fails with it, remembered labels or not", () => {
    const interner = new LabelsInterner(100)
    decodeWriteRequestV1(body(3), limits, interner)
    expect(() => decodeWriteRequestV1(body(3), { maxSeriesPerRequest: 2 }, interner)).toThrow(RemoteWriteLimitError)
    expect(() => decodeWriteRequestV1(body(3), { maxSamplesPerRequest: 2 }, interner)).toThrow(RemoteWriteLimitError)
  })

  it("holds at most its bound", () => {
    const interner = new LabelsInterner(5)
    decodeWriteRequestV1(body(12), limits, interner)
    expect(interner.size).toBeLessThanOrEqual(5)
  })
})
