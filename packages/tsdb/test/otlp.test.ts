/**
 * OTLP metrics: the names Prometheus 3 gives OTLP metrics and attributes, the translation of each metric
 * kind, and hostile protobuf bodies (every truncation and random corruptions decode or throw one of the two
 * decode errors, nothing else).
 */
import { describe, expect, it } from "vitest"
import { decodeMetricsJson, decodeMetricsProto, encodeExportResponse } from "../src/internal/otlp/decode.ts"
import { defaultSettings, defaultZeroThreshold, labelName, metricName, plainFloat, translate, unitName } from "../src/internal/otlp/translate.ts"
import { FloatHistogram, negativeBuckets, positiveBuckets } from "../src/promql/histogram.ts"
import { isStaleNaN, RemoteWriteDecodeError, RemoteWriteLimitError } from "../src/internal/remoteWrite/decode.ts"
import { prng } from "./remoteWrite/helpers.ts"
import { cat, d, f64, ld, v, varint } from "./remoteWrite/pb.ts"

describe("names", () => {
  it("builds metric names with unit and type suffixes", () => {
    const cases: ReadonlyArray<[string, string, Parameters<typeof metricName>[2], string]> = [
      ["system.filesystem.usage", "By", "gauge", "system_filesystem_usage_bytes"],
      ["system.network.io", "By", "counter", "system_network_io_bytes_total"],
      ["http.server.request.duration", "s", "histogram", "http_server_request_duration_seconds"],
      ["speed", "m/s", "gauge", "speed_meters_per_second"],
      ["throughput", "1/s", "gauge", "throughput_per_second"],
      ["disk.io", "KiBy/s", "nonMonotonicCounter", "disk_io_kibibytes_per_second"],
      ["hits", "{hit}", "counter", "hits_total"],
      ["queue.size", "{item}", "nonMonotonicCounter", "queue_size"],
      ["cpu.utilization", "1", "gauge", "cpu_utilization_ratio"],
      ["cpu.ratio", "1", "gauge", "cpu_ratio"],
      ["requests.total", "1", "counter", "requests_total"],
      ["total.requests", "", "counter", "requests_total"],
      ["latency.seconds", "s", "gauge", "latency_seconds"],
      ["temperature", "Cel", "gauge", "temperature_celsius"],
      ["1st.metric", "", "gauge", "_1st_metric"],
      ["name:with:colons", "", "gauge", "name:with:colons"],
      ["multiple...dots__and_underscores", "", "gauge", "multiple_dots_and_underscores"],
      ["unknown.unit", "furlongs", "gauge", "unknown_unit_furlongs"],
      ["with.per.only", "/s", "gauge", "with_per_only_per_second"],
      ["…", "", "gauge", ""]
    ]
    for (const [name, unit, kind, expected] of cases) {
      expect(metricName(name, unit, kind, "UnderscoreEscapingWithSuffixes"), `${name} [${unit}] ${kind}`).toBe(expected)
    }
    expect(metricName("http.server.request.duration", "s", "histogram", "UnderscoreEscapingWithoutSuffixes")).toBe("http_server_request_duration")
    expect(metricName("hits", "1", "counter", "UnderscoreEscapingWithoutSuffixes")).toBe("hits")
  })

  it("builds label names", () => {
    expect(labelName("http.request.method")).toBe("http_request_method")
    expect(labelName("123invalid")).toBe("key_123invalid")
    expect(labelName("__reserved__")).toBe("__reserved__")
    expect(labelName("a..b")).toBe("a_b")
    expect(labelName("foo__bar")).toBe("foo_bar")
    expect(labelName("_private")).toBe("_private")
    expect(labelName("ünïcode")).toBe("_n_code")
    expect(labelName("___")).toBe("")
    expect(labelName("")).toBe("")
  })

  it("names units as Prometheus's metadata does", () => {
    expect(unitName("By/s")).toBe("bytes_per_second")
    expect(unitName("s")).toBe("seconds")
    expect(unitName("{request}")).toBe("")
    expect(unitName("1")).toBe("")
  })

  it("writes le and quantile values without exponents", () => {
    expect(plainFloat(0.005)).toBe("0.005")
    expect(plainFloat(1e-7)).toBe("0.0000001")
    expect(plainFloat(-1.5e-7)).toBe("-0.00000015")
    expect(plainFloat(2.5e-5)).toBe("0.000025")
    expect(plainFloat(1e21)).toBe("1000000000000000000000")
    expect(plainFloat(1.2345e22)).toBe("12345000000000000000000")
    expect(plainFloat(10)).toBe("10")
    expect(plainFloat(Infinity)).toBe("+Inf")
  })
})

const limits = { labelsPerSeriesMax: 128, labelValueBytesMax: 16384 }
const t0 = 1_760_000_000_000
const ns = (ms: number) => `${BigInt(ms) * 1_000_000n}`

describe("translation", () => {
  const request = decodeMetricsJson(JSON.stringify({
    resourceMetrics: [{
      resource: {
        attributes: [
          { key: "service.name", value: { stringValue: "api" } },
          { key: "service.instance.id", value: { stringValue: "pod-7" } },
          { key: "k8s.pod.uid", value: { stringValue: "abc" } },
          { key: "replicas", value: { intValue: "3" } }
        ]
      },
      scopeMetrics: [{
        scope: { name: "lib", version: "1" },
        metrics: [
          {
            name: "rpc.duration",
            unit: "ms",
            summary: {
              dataPoints: [{
                timeUnixNano: ns(t0),
                count: "4",
                sum: 10.5,
                quantileValues: [{ quantile: 0.5, value: 2 }, { quantile: 0.99, value: 7 }],
                attributes: [{ key: "rpc.method", value: { stringValue: "Get" } }]
              }]
            }
          },
          {
            name: "jobs",
            sum: {
              aggregationTemporality: "AGGREGATION_TEMPORALITY_CUMULATIVE",
              isMonotonic: true,
              dataPoints: [
                { timeUnixNano: ns(t0), asDouble: 1.5, attributes: [{ key: "a.b", value: { stringValue: "x" } }, { key: "a_b", value: { stringValue: "y" } }] },
                { timeUnixNano: ns(t0 + 1000), asInt: 2, flags: 1 }
              ]
            }
          },
          { name: "exp", exponentialHistogram: { aggregationTemporality: 1, dataPoints: [{ timeUnixNano: ns(t0), count: "1", zeroCount: "1" }] } }
        ]
      }]
    }]
  }))
  const out = translate(request, defaultSettings, limits)
  const find = (name: string, extra: Record<string, string> = {}) =>
    out.series.filter((s) => {
      const m = Object.fromEntries(s.labels)
      return m["__name__"] === name && Object.entries(extra).every(([k, x]) => m[k] === x)
    })

  it("makes summaries quantile series, _sum and _count", () => {
    expect(find("rpc_duration_milliseconds", { quantile: "0.99" })[0]?.samples).toEqual([{ timestampMs: t0, value: 7 }])
    expect(find("rpc_duration_milliseconds_sum")[0]?.samples[0]?.value).toBe(10.5)
    expect(find("rpc_duration_milliseconds_count")[0]?.labels).toEqual([
      ["__name__", "rpc_duration_milliseconds_count"],
      ["instance", "pod-7"],
      ["job", "api"],
      ["rpc_method", "Get"]
    ])
  })

  it("joins colliding attributes, marks points without a value stale", () => {
    const jobs = find("jobs_total")
    expect(Object.fromEntries(jobs[0]!.labels)["a_b"]).toBe("x;y")
    expect(isStaleNaN(jobs[1]!.samples[0]!.value)).toBe(true)
  })

  it("puts the resource on target_info at its latest time and refuses delta exponential histograms", () => {
    const info = find("target_info")
    expect(info).toHaveLength(1)
    expect(info[0]!.labels).toEqual([["__name__", "target_info"], ["instance", "pod-7"], ["job", "api"], ["k8s_pod_uid", "abc"], ["replicas", "3"]])
    expect(info[0]!.samples).toEqual([{ timestampMs: t0 + 1000, value: 1 }])
    expect(out.rejectedPoints).toBe(1)
    expect(out.reasons[0]).toContain(`invalid temporality and type combination for metric "exp"`)
    expect(out.metadata.find((m) => m.metric === "rpc_duration_milliseconds")).toEqual({ metric: "rpc_duration_milliseconds", type: "summary", help: "", unit: "milliseconds" })
  })

  it("keeps exemplars: trace and span ids as labels, on the bucket a histogram's exemplar falls in", () => {
    const withExemplars = decodeMetricsJson(JSON.stringify({
      resourceMetrics: [{
        resource: { attributes: [{ key: "service.name", value: { stringValue: "api" } }] },
        scopeMetrics: [{
          metrics: [
            {
              name: "latency",
              unit: "s",
              histogram: {
                aggregationTemporality: 2,
                dataPoints: [{
                  timeUnixNano: ns(t0),
                  count: "3",
                  bucketCounts: ["1", "1", "1"],
                  explicitBounds: [0.1, 1],
                  exemplars: [
                    { timeUnixNano: ns(t0 - 5), asDouble: 0.5, traceId: "5B8EFFF798038103D269B633813FC60C", spanId: "EEE19B7EC3C1B174" },
                    { timeUnixNano: ns(t0 - 3), asDouble: 7, filteredAttributes: [{ key: "user.id", value: { stringValue: "u1" } }] }
                  ]
                }]
              }
            },
            { name: "hits", gauge: { dataPoints: [{ timeUnixNano: ns(t0), asInt: "4", exemplars: [{ timeUnixNano: ns(t0), asInt: "1", spanId: "00ff" }] }] } }
          ]
        }]
      }]
    }))
    const result = translate(withExemplars, defaultSettings, limits)
    const exemplarsOf = (le: string) => result.series.find((x) => x.labels.some(([k, val]) => k === "le" && val === le))?.exemplars
    expect(exemplarsOf("1")).toEqual([{
      labels: [["trace_id", "5b8efff798038103d269b633813fc60c"], ["span_id", "eee19b7ec3c1b174"]],
      value: 0.5,
      timestampMs: t0 - 5
    }])
    expect(exemplarsOf("+Inf")).toEqual([{ labels: [["user_id", "u1"]], value: 7, timestampMs: t0 - 3 }])
    expect(exemplarsOf("0.1")).toBeUndefined()
    expect(result.series.find((x) => x.labels.some(([k, val]) => k === "__name__" && val === "hits"))?.exemplars).toEqual([
      { labels: [["span_id", "00ff"]], value: 1, timestampMs: t0 }
    ])
  })

  it("promotes resource attributes when told, a point's own attribute winning", () => {
    const promoted = translate(request, { ...defaultSettings, promoteResourceAttributes: ["k8s.pod.uid"] }, limits)
    const s = promoted.series.find((x) => x.labels.some(([k, val]) => k === "__name__" && val === "rpc_duration_milliseconds_sum"))
    expect(Object.fromEntries(s!.labels)["k8s_pod_uid"]).toBe("abc")
  })
})

describe("protobuf", () => {
  const kv = (key: string, value: string) => ld(1, ld(1, new TextEncoder().encode(key)), ld(2, ld(1, new TextEncoder().encode(value))))
  const str = (n: number, s: string) => ld(n, new TextEncoder().encode(s))
  const fixed = (n: number, value: number) => f64(n, BigInt(value))
  const packedFixed = (n: number, values: ReadonlyArray<number>) => {
    const b = new Uint8Array(8 * values.length)
    const view = new DataView(b.buffer)
    values.forEach((x, i) => view.setBigUint64(8 * i, BigInt(x), true))
    return ld(n, b)
  }
  const packedDouble = (n: number, values: ReadonlyArray<number>) => {
    const b = new Uint8Array(8 * values.length)
    const view = new DataView(b.buffer)
    values.forEach((x, i) => view.setFloat64(8 * i, x, true))
    return ld(n, b)
  }
  const body = cat(ld(
    1,
    ld(1, kv("service.name", "svc")),
    ld(
      2,
      ld(1, str(1, "scope")),
      ld(2, str(1, "g"), str(3, "By"), ld(5, ld(1, fixed(3, t0 * 1e6), d(4, 42), ld(7, cat(str(1, "k"), ld(2, str(1, "v"))))))),
      ld(
        2,
        str(1, "h"),
        str(3, "s"),
        ld(
          9,
          ld(
            1,
            fixed(3, t0 * 1e6),
            fixed(4, 3),
            d(5, 1.5),
            packedFixed(6, [1, 2, 0]),
            packedDouble(7, [0.5, 1]),
            ld(8, fixed(2, t0 * 1e6), d(3, 0.7), ld(5, Uint8Array.of(0xab, 0xcd)), ld(7, cat(str(1, "user"), ld(2, str(1, "u9")))))
          ),
          v(2, 2)
        )
      )
    )
  ))

  it("decodes gauges and histograms", () => {
    const out = translate(decodeMetricsProto(body), defaultSettings, limits)
    const byName = new Map(out.series.map((s) => [s.labels.map(([k, x]) => `${k}=${x}`).join(","), s.samples[0]!.value]))
    expect(byName.get("__name__=g_bytes,job=svc,k=v")).toBe(42)
    expect(byName.get("__name__=h_seconds_bucket,job=svc,le=0.5")).toBe(1)
    expect(byName.get("__name__=h_seconds_bucket,job=svc,le=1")).toBe(3)
    expect(byName.get("__name__=h_seconds_bucket,job=svc,le=+Inf")).toBe(3)
    expect(byName.get("__name__=h_seconds_sum,job=svc")).toBe(1.5)
    expect(out.rejectedPoints).toBe(0)
    const bucket = out.series.find((x) => x.labels.some(([k, val]) => k === "le" && val === "1"))
    expect(bucket?.exemplars).toEqual([{ labels: [["trace_id", "abcd"], ["user", "u9"]], value: 0.7, timestampMs: t0 }])
  })

  const decodesOrRefuses = (bytes: Uint8Array) => {
    try {
      translate(decodeMetricsProto(bytes), defaultSettings, limits)
    } catch (e) {
      if (!(e instanceof RemoteWriteDecodeError) && !(e instanceof RemoteWriteLimitError)) throw e
    }
  }

  it("decodes or refuses every truncation and 2,000 random corruptions", () => {
    for (let n = 0; n < body.length; n++) decodesOrRefuses(body.subarray(0, n))
    const random = prng(7)
    for (let i = 0; i < 2000; i++) {
      const mutated = body.slice()
      const flips = 1 + Math.floor(random() * 4)
      for (let f = 0; f < flips; f++) mutated[Math.floor(random() * mutated.length)] = Math.floor(random() * 256)
      decodesOrRefuses(mutated)
    }
  })

  it("reads nanosecond times to the exact millisecond (doubles cannot hold them)", () => {
    const ms = 1_796_585_946_937
    const json = decodeMetricsJson(JSON.stringify({
      resourceMetrics: [{ scopeMetrics: [{ metrics: [{ name: "g", gauge: { dataPoints: [{ timeUnixNano: `${BigInt(ms) * 1_000_000n + 999_999n}`, asInt: "1" }] } }] }] }]
    }))
    expect(json.resources[0]!.scopes[0]!.metrics[0]!.numberPoints[0]!.timeMs).toBe(ms)
    const proto = decodeMetricsProto(cat(ld(1, ld(2, ld(2, str(1, "g"), ld(5, ld(1, f64(3, BigInt(ms) * 1_000_000n + 999_999n), d(4, 1))))))))
    expect(proto.resources[0]!.scopes[0]!.metrics[0]!.numberPoints[0]!.timeMs).toBe(ms)
  })

  it("answers with an ExportMetricsServiceResponse: empty, or a partial success", () => {
    expect(encodeExportResponse(0, "")).toEqual(new Uint8Array(0))
    expect(encodeExportResponse(300, "no")).toEqual(cat(ld(1, v(1, 300), str(2, "no"))))
  })

  it("refuses more points than its limit", () => {
    expect(() => decodeMetricsProto(body, { pointsMax: 1, stringBytesMax: 100, bucketsMax: 10, exponentialBucketsMax: 10 })).toThrow(RemoteWriteLimitError)
  })
})

describe("exponential histograms", () => {
  const str = (n: number, text: string) => ld(n, new TextEncoder().encode(text))
  const fixed = (n: number, value: number) => f64(n, BigInt(value))
  /** A sint32 / sint64 varint field (zigzag). */
  const zz = (n: number, value: number) => v(n, value >= 0 ? 2 * value : -2 * value - 1)
  const kv = (key: string, value: string) => ld(1, str(1, key), ld(2, str(1, value)))
  /** A request of one resource (`service.name` "api") holding `metrics` (encoded `Metric` bodies). */
  const requestOf = (...metrics: ReadonlyArray<Uint8Array>) =>
    cat(ld(1, ld(1, ld(1, str(1, "service.name"), ld(2, str(1, "api")))), ld(2, ...metrics.map((m) => ld(2, m)))))
  /** An `ExponentialHistogram` metric named `name` with the given encoded data points. */
  const expMetric = (name: string, temporality: number, ...points: ReadonlyArray<Uint8Array>) =>
    cat(str(1, name), str(3, "s"), ld(10, ...points.map((p) => ld(1, p)), v(2, temporality)))

  /** Every field of `ExponentialHistogramDataPoint`: positive buckets packed, negative ones unpacked. */
  const fullPoint = cat(
    kv("http.route", "/a"),
    fixed(2, (t0 - 60_000) * 1e6),
    fixed(3, t0 * 1e6),
    fixed(4, 21),
    d(5, 42.5),
    zz(6, -2),
    fixed(7, 6),
    ld(8, zz(1, -1), ld(2, ...[1, 2, 0, 0, 0, 3, 0, 4].map((c) => varint(c)))),
    ld(9, zz(1, 2), v(2, 5)),
    v(10, 0),
    ld(11, fixed(2, t0 * 1e6), d(3, 0.3), ld(5, Uint8Array.of(0xab, 0xcd))),
    d(12, 0.001),
    d(13, 99),
    d(14, 0)
  )
  const fullJson = {
    attributes: [{ key: "http.route", value: { stringValue: "/a" } }],
    startTimeUnixNano: ns(t0 - 60_000),
    timeUnixNano: ns(t0),
    count: "21",
    sum: 42.5,
    scale: -2,
    zeroCount: 6,
    positive: { offset: -1, bucketCounts: ["1", "2", "0", "0", "0", "3", "0", 4] },
    negative: { offset: 2, bucketCounts: ["5"] },
    flags: 0,
    exemplars: [{ timeUnixNano: ns(t0), asDouble: 0.3, traceId: "abcd" }],
    min: 0.001,
    max: 99,
    zeroThreshold: 0
  }
  const jsonRequest = (metrics: ReadonlyArray<unknown>) =>
    JSON.stringify({ resourceMetrics: [{ resource: { attributes: [{ key: "service.name", value: { stringValue: "api" } }] }, scopeMetrics: [{ metrics }] }] })
  const jsonMetric = (name: string, temporality: unknown, points: ReadonlyArray<unknown>) => ({
    name,
    unit: "s",
    exponentialHistogram: { aggregationTemporality: temporality, dataPoints: points }
  })
  const decodedPoint = {
    attributes: [{ key: "http.route", value: "/a" }],
    timeMs: t0,
    count: 21,
    sum: 42.5,
    scale: -2,
    zeroCount: 6,
    zeroThreshold: 0,
    positive: { offset: -1, bucketCounts: [1, 2, 0, 0, 0, 3, 0, 4] },
    negative: { offset: 2, bucketCounts: [5] },
    flags: 0,
    exemplars: [{ attributes: [], traceId: "abcd", spanId: "", value: 0.3, timeMs: t0 }]
  }

  it("decodes data points from protobuf and from JSON alike", () => {
    const proto = decodeMetricsProto(requestOf(expMetric("latency", 2, fullPoint)))
    const json = decodeMetricsJson(jsonRequest([jsonMetric("latency", "AGGREGATION_TEMPORALITY_CUMULATIVE", [fullJson])]))
    for (const decoded of [proto, json]) {
      expect(decoded.points).toBe(1)
      const m = decoded.resources[0]!.scopes[0]!.metrics[0]!
      expect(m.kind).toBe("exponentialHistogram")
      expect(m.temporality).toBe(2)
      expect(m.exponentialHistogramPoints).toEqual([decodedPoint])
    }
  })

  it("merges a Buckets message sent twice, reads unpacked counts, and keeps an absent sum absent", () => {
    const point = cat(fixed(3, t0 * 1e6), fixed(4, 3), ld(8, zz(1, 4), v(2, 1)), ld(8, v(2, 2)), zz(6, 3))
    const p = decodeMetricsProto(requestOf(expMetric("x", 2, point))).resources[0]!.scopes[0]!.metrics[0]!.exponentialHistogramPoints[0]!
    expect(p.positive).toEqual({ offset: 4, bucketCounts: [1, 2] })
    expect(p.negative).toEqual({ offset: 0, bucketCounts: [] })
    expect(p.scale).toBe(3)
    expect(p.sum).toBeUndefined()
  })

  it("translates a point into one native histogram series: spans as Prometheus lays them out, absolute counts", () => {
    const out = translate(decodeMetricsProto(requestOf(expMetric("latency", 2, fullPoint))), defaultSettings, limits)
    expect(out.rejectedPoints).toBe(0)
    // No _bucket, _sum, _count series: one series under the metric's name (the unit's suffix, no _total).
    const [s, ...rest] = out.series.filter((x) => !x.labels.some(([k, val]) => k === "__name__" && val === "target_info"))
    expect(rest).toEqual([])
    expect(s!.labels).toEqual([["__name__", "latency_seconds"], ["http_route", "/a"], ["job", "api"]])
    expect(s!.samples).toEqual([])
    expect(s!.exemplars).toEqual([{ labels: [["trace_id", "abcd"]], value: 0.3, timestampMs: t0 }])
    expect(s!.histograms).toHaveLength(1)
    expect(s!.histograms![0]!.timestampMs).toBe(t0)
    // OTLP index i is Prometheus index i + 1; OTLP positive -1..6 is 0..7 with three empty buckets (2..4) cut
    // out as a gap (a new span) and one (6) kept in the span.
    expect(s!.histograms![0]!.histogram).toEqual(new FloatHistogram({
      counterResetHint: "unknown",
      schema: -2,
      zeroThreshold: defaultZeroThreshold,
      zeroCount: 6,
      count: 21,
      sum: 42.5,
      positiveSpans: [{ offset: 0, length: 2 }, { offset: 3, length: 3 }],
      positiveBuckets: [1, 2, 3, 0, 4],
      negativeSpans: [{ offset: 3, length: 1 }],
      negativeBuckets: [5],
      customValues: []
    }))
    // The buckets' bounds: OTLP bucket i at scale -2 covers (16^i, 16^(i+1)].
    const h = s!.histograms![0]!.histogram
    expect(positiveBuckets(h).map((b) => [b.lower, b.upper, b.count])).toEqual([
      [1 / 16, 1, 1], [1, 16, 2], [16 ** 4, 16 ** 5, 3], [16 ** 5, 16 ** 6, 0], [16 ** 6, 16 ** 7, 4]
    ])
    expect(negativeBuckets(h).map((b) => [b.lower, b.upper, b.count])).toEqual([[-(16 ** 3), -(16 ** 2), 5]])
    expect(out.metadata).toContainEqual({ metric: "latency_seconds", type: "histogram", help: "", unit: "seconds" })
  })

  it("translates JSON points the same, and uses the point's zero threshold when it has one", () => {
    const out = translate(decodeMetricsJson(jsonRequest([
      jsonMetric("latency", 2, [fullJson]),
      jsonMetric("narrow", 2, [{ ...fullJson, zeroThreshold: 0.001 }])
    ])), defaultSettings, limits)
    const fromProto = translate(decodeMetricsProto(requestOf(expMetric("latency", 2, fullPoint))), defaultSettings, limits)
    const named = (o: typeof out, n: string) => o.series.find((x) => x.labels.some(([k, val]) => k === "__name__" && val === n))
    expect(named(out, "latency_seconds")).toEqual(named(fromProto, "latency_seconds"))
    expect(named(out, "narrow_seconds")!.histograms![0]!.histogram.zeroThreshold).toBe(0.001)
  })

  it("reduces a scale above 8 to schema 8, merging buckets as Prometheus's reduceResolution would", () => {
    const point = {
      timeUnixNano: ns(t0),
      count: 10,
      sum: 20,
      scale: 10,
      positive: { offset: 3, bucketCounts: [1, 1, 1, 1, 1] },
      negative: { offset: -5, bucketCounts: [2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3] }
    }
    const out = translate(decodeMetricsJson(jsonRequest([jsonMetric("fine", 2, [point])])), defaultSettings, limits)
    expect(out.rejectedPoints).toBe(0)
    const h = out.series.find((x) => x.histograms !== undefined)!.histograms![0]!.histogram
    // Positive OTLP 3..7 -> floor(i / 4) + 1 = 1, 2, 2, 2, 2; negative -5 -> -1 and 5 -> 2 (two empty between).
    expect(h.schema).toBe(8)
    expect([h.positiveSpans, h.positiveBuckets]).toEqual([[{ offset: 1, length: 2 }], [1, 4]])
    expect([h.negativeSpans, h.negativeBuckets]).toEqual([[{ offset: -1, length: 4 }], [2, 0, 0, 3]])
    // The same as a schema-10 native histogram reduced by the histogram code.
    const schema10 = new FloatHistogram({
      schema: 10,
      count: 10,
      sum: 20,
      positiveSpans: [{ offset: 4, length: 5 }],
      positiveBuckets: [1, 1, 1, 1, 1],
      negativeSpans: [{ offset: -4, length: 1 }, { offset: 9, length: 1 }],
      negativeBuckets: [2, 3]
    }).reduceResolution(8)
    const filled = (bs: ReadonlyArray<{ index: number; count: number }>) => bs.filter((b) => b.count > 0).map((b) => [b.index, b.count])
    expect(filled(positiveBuckets(h))).toEqual(filled(positiveBuckets(schema10)))
    expect(filled(negativeBuckets(h))).toEqual(filled(negativeBuckets(schema10)))
  })

  it("refuses a scale below -4 for that point only, with the reason", () => {
    const out = translate(decodeMetricsJson(jsonRequest([jsonMetric("coarse", 2, [
      { timeUnixNano: ns(t0), count: 1, scale: -5, positive: { offset: 0, bucketCounts: [1] } },
      { timeUnixNano: ns(t0 + 1), count: 1, scale: -4, positive: { offset: 0, bucketCounts: [1] } }
    ])])), defaultSettings, limits)
    expect(out.rejectedPoints).toBe(1)
    expect(out.reasons).toEqual(["metric coarse_seconds: exponential histogram scale -5 is below -4, the lowest native histogram schema (1 data point)"])
    const written = out.series.filter((x) => x.histograms !== undefined)
    expect(written).toHaveLength(1)
    expect(written[0]!.histograms![0]!.histogram.schema).toBe(-4)
    expect(written[0]!.histograms![0]!.timestampMs).toBe(t0 + 1)
  })

  it("refuses delta and unspecified temporality, as for explicit histograms", () => {
    const point = { timeUnixNano: ns(t0), count: 1, zeroCount: 1 }
    const out = translate(decodeMetricsJson(jsonRequest([
      jsonMetric("delta", "AGGREGATION_TEMPORALITY_DELTA", [point, point]),
      jsonMetric("unspecified", undefined, [point])
    ])), defaultSettings, limits)
    expect(out.rejectedPoints).toBe(3)
    expect(out.series.filter((x) => x.histograms !== undefined)).toEqual([])
    expect(out.reasons).toEqual([
      `invalid temporality and type combination for metric "delta": only cumulative sums and histograms are accepted (delta is not converted) (2 data points)`,
      `invalid temporality and type combination for metric "unspecified": only cumulative sums and histograms are accepted (delta is not converted) (1 data point)`
    ])
  })

  it("makes a point flagged no recorded value a stale marker", () => {
    const out = translate(decodeMetricsProto(requestOf(expMetric("gone", 2, cat(fixed(3, t0 * 1e6), zz(6, 3), v(10, 1))))), defaultSettings, limits)
    expect(out.rejectedPoints).toBe(0)
    const h = out.series.find((x) => x.histograms !== undefined)!.histograms![0]!.histogram
    expect(isStaleNaN(h.sum)).toBe(true)
    expect(h.schema).toBe(3)
  })

  it("refuses points whose buckets do not add up to the count (as Prometheus's TSDB would)", () => {
    const out = translate(decodeMetricsJson(jsonRequest([jsonMetric("bad", 2, [
      { timeUnixNano: ns(t0), count: 5, sum: 1, zeroCount: 1, positive: { offset: 0, bucketCounts: [1, 1] } },
      { timeUnixNano: ns(t0 + 1), count: 5, sum: "NaN", zeroCount: 1, positive: { offset: 0, bucketCounts: [1, 1] } },
      { timeUnixNano: ns(t0 + 2), count: 1, sum: "NaN", zeroCount: 1, positive: { offset: 0, bucketCounts: [1, 1] } }
    ])])), defaultSettings, limits)
    expect(out.rejectedPoints).toBe(2)
    expect(out.reasons).toEqual([
      "metric bad_seconds: exponential histogram has 3 observations in its buckets, but a count of 5 (1 data point)",
      "metric bad_seconds: exponential histogram has 3 observations in its buckets, but a count of 1 (1 data point)"
    ])
    expect(out.series.filter((x) => x.histograms !== undefined).map((x) => x.histograms![0]!.timestampMs)).toEqual([t0 + 1])
  })

  it("refuses more buckets than exponentialBucketsMax, packed, unpacked or in JSON; points count against pointsMax", () => {
    const small = { pointsMax: 10, stringBytesMax: 100, bucketsMax: 10, exponentialBucketsMax: 4 }
    const packedPoint = cat(fixed(3, t0 * 1e6), ld(9, ld(2, ...[1, 1, 1, 1, 1].map((c) => varint(c)))))
    const unpackedPoint = cat(fixed(3, t0 * 1e6), ld(8, v(2, 1), v(2, 1), v(2, 1)), ld(8, v(2, 1), v(2, 1)))
    for (const point of [packedPoint, unpackedPoint]) {
      const e = (() => {
        try {
          decodeMetricsProto(requestOf(expMetric("x", 2, point)), small)
        } catch (err) {
          return err
        }
      })()
      expect(e).toBeInstanceOf(RemoteWriteLimitError)
      expect((e as RemoteWriteLimitError).limit).toBe("exponentialBucketsMax")
    }
    const four = cat(ld(8, ld(2, ...[1, 1, 1, 1].map((c) => varint(c)))), ld(9, v(2, 1), v(2, 1), v(2, 1), v(2, 1)))
    expect(() => decodeMetricsProto(requestOf(expMetric("x", 2, four)), small)).not.toThrow()
    expect(() => decodeMetricsJson(jsonRequest([jsonMetric("x", 2, [{ negative: { bucketCounts: [1, 1, 1, 1, 1] } }])]), small)).toThrow(RemoteWriteLimitError)
    const eleven = Array.from({ length: 11 }, () => fixed(3, t0 * 1e6))
    expect(() => decodeMetricsProto(requestOf(expMetric("x", 2, ...eleven)), small)).toThrow(RemoteWriteLimitError)
    expect(() => decodeMetricsProto(requestOf(expMetric("x", 2, ...eleven.slice(1))), small)).not.toThrow()
  })

  it("refuses malformed points with the field at fault", () => {
    const fieldOf = (f: () => unknown) => {
      try {
        f()
      } catch (e) {
        if (e instanceof RemoteWriteDecodeError) return e.field
        throw e
      }
      return undefined
    }
    const proto = (point: Uint8Array) => () => decodeMetricsProto(requestOf(expMetric("x", 2, point)))
    expect(fieldOf(proto(d(6, 1)))).toBe("ExponentialHistogramDataPoint.scale")
    expect(fieldOf(proto(v(4, 1)))).toBe("ExponentialHistogramDataPoint.count")
    expect(fieldOf(proto(v(8, 1)))).toBe("ExponentialHistogramDataPoint.positive")
    expect(fieldOf(proto(ld(9, d(1, 1))))).toBe("ExponentialHistogramDataPoint.negative.offset")
    expect(fieldOf(proto(ld(8, ld(2, Uint8Array.of(0x80)))))).toBe("ExponentialHistogramDataPoint.positive.bucket_counts")
    expect(fieldOf(proto(ld(8, v(2, 2n ** 60n))))).toBe("ExponentialHistogramDataPoint.positive.bucket_counts")
    const json = (point: unknown) => () => decodeMetricsJson(jsonRequest([jsonMetric("x", 2, [point])]))
    expect(fieldOf(json({ scale: "fine" }))).toBe("exponentialHistogram.dataPoints.scale")
    expect(fieldOf(json({ scale: 2 ** 31 }))).toBe("exponentialHistogram.dataPoints.scale")
    expect(fieldOf(json({ positive: { offset: 1.5 } }))).toBe("exponentialHistogram.dataPoints.positive.offset")
    expect(fieldOf(json({ negative: { bucketCounts: ["-1"] } }))).toBe("exponentialHistogram.dataPoints.negative.bucketCounts")
    expect(fieldOf(json({ zeroCount: -2 }))).toBe("exponentialHistogram.dataPoints.zeroCount")
    expect(fieldOf(json({ positive: [] }))).toBe("exponentialHistogram.dataPoints.positive")
    expect(fieldOf(json({ zeroThreshold: "wide" }))).toBe("exponentialHistogram.dataPoints.zeroThreshold")
  })

  it("decodes or refuses every truncation and 2,000 random corruptions", () => {
    const body = requestOf(expMetric("latency", 2, fullPoint, cat(fixed(3, t0 * 1e6), zz(6, 12), v(10, 1))))
    const decodesOrRefuses = (bytes: Uint8Array) => {
      try {
        translate(decodeMetricsProto(bytes), defaultSettings, limits)
      } catch (e) {
        if (!(e instanceof RemoteWriteDecodeError) && !(e instanceof RemoteWriteLimitError)) throw e
      }
    }
    for (let n = 0; n < body.length; n++) decodesOrRefuses(body.subarray(0, n))
    const random = prng(11)
    for (let i = 0; i < 2000; i++) {
      const mutated = body.slice()
      const flips = 1 + Math.floor(random() * 4)
      for (let f = 0; f < flips; f++) mutated[Math.floor(random() * mutated.length)] = Math.floor(random() * 256)
      decodesOrRefuses(mutated)
    }
  })
})
