/**
 * OTLP metrics: the names Prometheus 3 gives OTLP metrics and attributes (under each translation strategy),
 * the translation of each metric kind, delta temporality converted to cumulative (running totals per stream,
 * restarts, out of order, the bounds on the streams kept), and hostile protobuf bodies (every truncation and
 * random corruptions decode or throw one of the two decode errors, nothing else).
 */
import { describe, expect, it } from "vitest"
import { decodeMetricsJson, decodeMetricsProto, encodeExportResponse } from "../src/internal/otlp/decode.ts"
import type { OtlpSettings } from "../src/internal/otlp/translate.ts"
import {
  defaultSettings,
  defaultZeroThreshold,
  DeltaStreams,
  labelName,
  metricName,
  plainFloat,
  translate,
  translationStrategies,
  unitName
} from "../src/internal/otlp/translate.ts"
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
    startTimeMs: t0 - 60_000,
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

describe("UTF-8 translation strategies", () => {
  it("offers Prometheus 3's four strategies", () => {
    expect(translationStrategies).toEqual(["UnderscoreEscapingWithSuffixes", "UnderscoreEscapingWithoutSuffixes", "NoUTF8EscapingWithSuffixes", "NoTranslation"])
  })

  it("keeps metric names as sent, with otlptranslator's suffixes (NoUTF8EscapingWithSuffixes) or none (NoTranslation)", () => {
    // [name, unit, kind, NoUTF8EscapingWithSuffixes]; NoTranslation gives the name unchanged.
    const cases: ReadonlyArray<[string, string, Parameters<typeof metricName>[2], string]> = [
      ["http.server.request.duration", "s", "histogram", "http.server.request.duration_seconds"],
      ["system.network.io", "By", "counter", "system.network.io_bytes_total"],
      ["http.server.requests", "{request}", "counter", "http.server.requests_total"],
      ["queue.size", "{item}", "nonMonotonicCounter", "queue.size"],
      ["disk.io", "KiBy/s", "nonMonotonicCounter", "disk.io_kibibytes_per_second"],
      ["throughput", "1/s", "gauge", "throughput_per_second"],
      // The "per" unit is cut from the name's end (with its delimiter) and appended after the main unit.
      ["throughput.per_second", "By/s", "gauge", "throughput_bytes_per_second"],
      ["cpu.utilization", "1", "gauge", "cpu.utilization_ratio"],
      // `_total` and `_ratio` replace the name's own ending and the one character before it, whatever it is.
      ["cpu.ratio", "1", "gauge", "cpu_ratio"],
      ["requests.total", "1", "counter", "requests_total"],
      ["subtotal", "", "counter", "su_total"],
      ["total", "", "counter", "total_total"],
      ["total.requests", "", "counter", "total.requests_total"],
      // A main unit the name already ends in (as a string, not a word) is not appended again.
      ["latency.seconds", "s", "gauge", "latency.seconds"],
      ["uptimeseconds", "s", "gauge", "uptimeseconds"],
      ["temperature", "Cel", "gauge", "temperature_celsius"],
      ["1st.metric", "", "gauge", "1st.metric"],
      ["日本.メトリック", "ms", "gauge", "日本.メトリック_milliseconds"],
      ["odd unit", "foo bar", "gauge", "odd unit_foo bar"],
      ["hits", "1", "counter", "hits_total"],
      ["rpc.server.duration", "ms", "histogram", "rpc.server.duration_milliseconds"]
    ]
    for (const [name, unit, kind, expected] of cases) {
      expect(metricName(name, unit, kind, "NoUTF8EscapingWithSuffixes"), `${name} [${unit}] ${kind}`).toBe(expected)
      expect(metricName(name, unit, kind, "NoTranslation"), `${name} [${unit}] ${kind}`).toBe(name)
    }
    for (const strategy of ["NoUTF8EscapingWithSuffixes", "NoTranslation"] as const) {
      expect(metricName("", "s", "gauge", strategy)).toBe("")
      expect(metricName("bad\ud800", "", "gauge", strategy)).toBe("")
    }
  })

  it("keeps label names as sent; a promoted one may not be only underscores", () => {
    expect(labelName("http.request.method", true)).toBe("http.request.method")
    expect(labelName("123.invalid", true)).toBe("123.invalid")
    expect(labelName("___", true)).toBe("")
    expect(labelName("", true)).toBe("")
  })

  const request = decodeMetricsJson(JSON.stringify({
    resourceMetrics: [{
      resource: {
        attributes: [
          { key: "service.name", value: { stringValue: "api" } },
          { key: "k8s.pod.uid", value: { stringValue: "abc" } }
        ]
      },
      scopeMetrics: [{
        metrics: [
          {
            name: "http.server.request.duration",
            unit: "s",
            histogram: {
              aggregationTemporality: 2,
              dataPoints: [{
                timeUnixNano: ns(t0),
                count: "2",
                sum: 0.4,
                bucketCounts: ["1", "1"],
                explicitBounds: [0.25],
                attributes: [{ key: "http.request.method", value: { stringValue: "GET" } }, { key: "__name__", value: { stringValue: "spoof" } }],
                exemplars: [{ timeUnixNano: ns(t0), asDouble: 0.1, filteredAttributes: [{ key: "user.id", value: { stringValue: "u1" } }] }]
              }]
            }
          },
          {
            name: "jobs.done",
            sum: {
              aggregationTemporality: 2,
              isMonotonic: true,
              dataPoints: [
                { timeUnixNano: ns(t0), asInt: "3", attributes: [{ key: "a.b", value: { stringValue: "x" } }, { key: "a_b", value: { stringValue: "y" } }, { key: "___", value: { stringValue: "z" } }] },
                { timeUnixNano: ns(t0), asInt: "4", attributes: [{ key: 'say "hi"', value: { stringValue: "x" } }] }
              ]
            }
          }
        ]
      }]
    }]
  }))
  const labelsOf = (settings: OtlpSettings) => {
    const out = translate(request, settings, limits)
    return { out, labels: out.series.map((s) => Object.fromEntries(s.labels)) }
  }

  it("writes series with UTF-8 metric and label names (NoUTF8EscapingWithSuffixes)", () => {
    const { out, labels } = labelsOf({ ...defaultSettings, translationStrategy: "NoUTF8EscapingWithSuffixes", promoteResourceAttributes: ["k8s.pod.uid"] })
    expect(labels).toContainEqual({ __name__: "http.server.request.duration_seconds_bucket", "http.request.method": "GET", job: "api", "k8s.pod.uid": "abc", le: "0.25" })
    expect(labels).toContainEqual({ __name__: "http.server.request.duration_seconds_count", "http.request.method": "GET", job: "api", "k8s.pod.uid": "abc" })
    // No collision of `a.b` and `a_b` (not escaped); `___` kept on a data point, as Prometheus keeps it.
    expect(labels).toContainEqual({ __name__: "jobs.done_total", "a.b": "x", a_b: "y", ___: "z", job: "api", "k8s.pod.uid": "abc" })
    expect(labels).toContainEqual({ __name__: "target_info", job: "api", "k8s.pod.uid": "abc" })
    // A name with a double quote cannot be stored (the TSDB's series key): that point only is refused.
    expect(out.rejectedPoints).toBe(1)
    expect(out.reasons).toEqual([`metric jobs.done_total: label name "say \\"hi\\"" holds a double quote or a NUL, which the TSDB cannot store in a name (1 data point)`])
    // Exemplar attributes keep the classic names the exemplar store takes.
    const bucket = out.series.find((x) => x.labels.some(([k, v]) => k === "le" && v === "0.25"))
    expect(bucket?.exemplars).toEqual([{ labels: [["user_id", "u1"]], value: 0.1, timestampMs: t0 }])
    expect(out.metadata).toContainEqual({ metric: "http.server.request.duration_seconds", type: "histogram", help: "", unit: "seconds" })
  })

  it("writes names exactly as sent (NoTranslation), `__name__` the metric's own", () => {
    const { labels } = labelsOf({ ...defaultSettings, translationStrategy: "NoTranslation" })
    expect(labels).toContainEqual({ __name__: "http.server.request.duration_bucket", "http.request.method": "GET", job: "api", le: "+Inf" })
    expect(labels).toContainEqual({ __name__: "http.server.request.duration_sum", "http.request.method": "GET", job: "api" })
    expect(labels).toContainEqual({ __name__: "jobs.done", "a.b": "x", a_b: "y", ___: "z", job: "api" })
  })

  it("refuses a promoted attribute named only with underscores, as Prometheus's LabelNamer does", () => {
    const promoted = decodeMetricsJson(JSON.stringify({
      resourceMetrics: [{
        resource: { attributes: [{ key: "__", value: { stringValue: "x" } }] },
        scopeMetrics: [{ metrics: [{ name: "g", gauge: { dataPoints: [{ timeUnixNano: ns(t0), asInt: "1" }] } }] }]
      }]
    }))
    const out = translate(promoted, { ...defaultSettings, translationStrategy: "NoTranslation", promoteResourceAttributes: ["__"] }, limits)
    expect(out.rejectedPoints).toBe(1)
    expect(out.reasons[0]).toContain(`attribute "__" has no valid label name`)
  })
})

describe("delta to cumulative", () => {
  interface P {
    readonly start?: number
    readonly time: number
    readonly value: number
    readonly attributes?: Record<string, string>
    readonly flags?: number
  }
  const attrs = (a: Record<string, string> = {}) => Object.entries(a).map(([key, value]) => ({ key, value: { stringValue: value } }))
  const requestOf = (metrics: ReadonlyArray<unknown>, service = "api") =>
    decodeMetricsJson(JSON.stringify({ resourceMetrics: [{ resource: { attributes: attrs({ "service.name": service }) }, scopeMetrics: [{ scope: { name: "s" }, metrics }] }] }))
  const deltaSum = (name: string, points: ReadonlyArray<P>, monotonic = true, temporality: unknown = 1) => ({
    name,
    sum: {
      aggregationTemporality: temporality,
      isMonotonic: monotonic,
      dataPoints: points.map((p) => ({
        ...(p.start === undefined ? {} : { startTimeUnixNano: ns(p.start) }),
        timeUnixNano: ns(p.time),
        asDouble: p.value,
        attributes: attrs(p.attributes),
        flags: p.flags ?? 0
      }))
    }
  })
  const on: OtlpSettings = { ...defaultSettings, convertDeltaToCumulative: true }
  /** Translates, keeps the totals (as once written), and answers the samples of `metric` as [time, value, labels]. */
  const send = (streams: DeltaStreams, nowMs: number, metrics: ReadonlyArray<unknown>, service = "api") => {
    const out = translate(requestOf(metrics, service), on, limits, { streams, nowMs })
    out.commit()
    return out
  }
  const values = (out: ReturnType<typeof translate>, name: string) =>
    out.series.filter((s) => s.labels.some(([k, v]) => k === "__name__" && v === name)).map((s) => s.samples[0]!.value)

  it("adds each delta point to its stream's running total, across requests", () => {
    const streams = new DeltaStreams()
    const s = 10_000
    expect(values(send(streams, t0, [deltaSum("requests", [{ start: t0 - s, time: t0, value: 3 }])]), "requests_total")).toEqual([3])
    expect(values(send(streams, t0, [deltaSum("requests", [{ start: t0, time: t0 + s, value: 4 }])]), "requests_total")).toEqual([7])
    const two = send(streams, t0, [deltaSum("requests", [{ start: t0 + s, time: t0 + 2 * s, value: 1 }, { start: t0 + 2 * s, time: t0 + 3 * s, value: 2.5 }])])
    expect(values(two, "requests_total")).toEqual([8, 10.5])
    expect(two.series.find((x) => x.samples.length > 0)!.samples[0]!.timestampMs).toBe(t0 + 2 * s)
    expect(two.rejectedPoints).toBe(0)
    expect(two.metadata).toContainEqual({ metric: "requests_total", type: "counter", help: "", unit: "" })
    // Each set of attributes, each resource is a stream of its own.
    expect(values(send(streams, t0, [deltaSum("requests", [{ start: t0 + 3 * s, time: t0 + 4 * s, value: 1, attributes: { code: "500" } }])]), "requests_total")).toEqual([1])
    expect(values(send(streams, t0, [deltaSum("requests", [{ start: t0 + 3 * s, time: t0 + 4 * s, value: 1 }])], "other"), "requests_total")).toEqual([1])
    expect(values(send(streams, t0, [deltaSum("requests", [{ start: t0 + 3 * s, time: t0 + 4 * s, value: 1 }])]), "requests_total")).toEqual([11.5])
    expect(streams.size).toBe(3)
  })

  it("passes a cumulative point's start time on as its samples' start timestamp; a converted delta's not", () => {
    const cumulative = translate(requestOf([deltaSum("done", [{ start: t0 - 60_000, time: t0, value: 3 }], true, 2)]), defaultSettings, limits)
    expect(cumulative.series.map((x) => x.samples[0]!.startTimestampMs)).toEqual([t0 - 60_000])
    const converted = send(new DeltaStreams(), t0, [deltaSum("done", [{ start: t0 - 60_000, time: t0, value: 3 }])])
    expect(converted.series.filter((x) => x.samples.length > 0).map((x) => x.samples[0]!.startTimestampMs)).toEqual([undefined])
  })

  it("keeps nothing of a request that was not written: its retry counts once", () => {
    const streams = new DeltaStreams()
    send(streams, t0, [deltaSum("c", [{ start: t0 - 1000, time: t0, value: 5 }])])
    const failed = translate(requestOf([deltaSum("c", [{ start: t0, time: t0 + 1000, value: 2 }])]), on, limits, { streams, nowMs: t0 })
    expect(values(failed, "c_total")).toEqual([7])
    // Not committed: the write failed. The retry gives the same total, and is not refused as out of order.
    expect(values(send(streams, t0, [deltaSum("c", [{ start: t0, time: t0 + 1000, value: 2 }])]), "c_total")).toEqual([7])
    // Once kept, the same request again is out of order.
    const again = send(streams, t0, [deltaSum("c", [{ start: t0, time: t0 + 1000, value: 2 }])])
    expect(again.series.filter((x) => x.samples.length > 0 && !x.labels.some(([, v]) => v === "target_info"))).toEqual([])
    expect(again.rejectedPoints).toBe(1)
  })

  it("starts the total again at a point whose start time does not continue the stream; no start time continues it", () => {
    const streams = new DeltaStreams()
    const run = (points: ReadonlyArray<P>) => values(send(streams, t0, [deltaSum("c", points)]), "c_total")
    expect(run([{ start: t0 - 1000, time: t0, value: 5 }, { start: t0, time: t0 + 1000, value: 5 }])).toEqual([5, 10])
    // A gap (the producer restarted, or a point was lost): from this point again.
    expect(run([{ start: t0 + 5000, time: t0 + 6000, value: 2 }])).toEqual([2])
    expect(run([{ start: t0 + 6000, time: t0 + 7000, value: 1 }])).toEqual([3])
    // An overlap (a start before the last point's time) too.
    expect(run([{ start: t0 + 6500, time: t0 + 8000, value: 4 }])).toEqual([4])
    // Points without a start time are all added (as statsd counts are).
    expect(run([{ time: t0 + 9000, value: 1 }, { time: t0 + 10_000, value: 1 }])).toEqual([5, 6])
  })

  it("refuses a point not after its stream's last one, with the reason, and writes the rest", () => {
    const streams = new DeltaStreams()
    send(streams, t0, [deltaSum("c", [{ start: t0 - 1000, time: t0, value: 5 }])])
    const out = send(streams, t0, [deltaSum("c", [
      { start: t0 - 2000, time: t0 - 1000, value: 1 },
      { start: t0 - 1000, time: t0, value: 1 },
      { start: t0, time: t0 + 1000, value: 1 }
    ])])
    expect(values(out, "c_total")).toEqual([6])
    expect(out.rejectedPoints).toBe(2)
    expect(out.reasons).toEqual(["metric c_total: delta data point not after the last one of its stream (out of order) (2 data points)"])
  })

  it("makes a point flagged no recorded value a stale marker and forgets its stream", () => {
    const streams = new DeltaStreams()
    send(streams, t0, [deltaSum("c", [{ start: t0 - 1000, time: t0, value: 5 }])])
    const gone = send(streams, t0, [deltaSum("c", [{ start: t0, time: t0 + 1000, value: 0, flags: 1 }])])
    const marker = gone.series.find((x) => x.labels.some(([k, v]) => k === "__name__" && v === "c_total"))!
    expect(isStaleNaN(marker.samples[0]!.value)).toBe(true)
    expect(streams.size).toBe(0)
    expect(values(send(streams, t0, [deltaSum("c", [{ start: t0 + 1000, time: t0 + 2000, value: 2 }])]), "c_total")).toEqual([2])
  })

  it("refuses delta non-monotonic sums and unspecified temporality even when converting, and delta when not", () => {
    const streams = new DeltaStreams()
    const out = send(streams, t0, [
      deltaSum("queue.size", [{ start: t0 - 1000, time: t0, value: 3 }], false),
      deltaSum("what", [{ start: t0 - 1000, time: t0, value: 3 }], true, 0)
    ])
    expect(out.series.filter((x) => !x.labels.some(([, v]) => v === "target_info"))).toEqual([])
    expect(out.reasons).toEqual([
      `delta non-monotonic sum (up-down counter) "queue.size" is not converted: send it with cumulative temporality (1 data point)`,
      `invalid temporality and type combination for metric "what": only cumulative and delta sums and histograms are accepted (1 data point)`
    ])
    expect(streams.size).toBe(0)
    const off = translate(requestOf([deltaSum("c", [{ start: t0 - 1000, time: t0, value: 3 }])]), defaultSettings, limits)
    expect(off.rejectedPoints).toBe(1)
    expect(off.reasons[0]).toContain("(delta is not converted)")
  })

  it("adds delta histograms bucket by bucket; other bounds start the total again", () => {
    const streams = new DeltaStreams()
    const histogram = (start: number, time: number, counts: ReadonlyArray<number>, bounds: ReadonlyArray<number>, sum: number) => ({
      name: "latency",
      unit: "s",
      histogram: {
        aggregationTemporality: "AGGREGATION_TEMPORALITY_DELTA",
        dataPoints: [{
          startTimeUnixNano: ns(start),
          timeUnixNano: ns(time),
          count: String(counts.reduce((a, b) => a + b, 0)),
          sum,
          bucketCounts: counts.map(String),
          explicitBounds: bounds
        }]
      }
    })
    const read = (out: ReturnType<typeof translate>) =>
      Object.fromEntries(out.series.filter((x) => x.samples.length > 0 && !x.labels.some(([, v]) => v === "target_info")).map((x) => {
        const m = Object.fromEntries(x.labels)
        return [`${m["__name__"]}${m["le"] === undefined ? "" : `{le=${m["le"]}}`}`, x.samples[0]!.value]
      }))
    expect(read(send(streams, t0, [histogram(t0 - 1000, t0, [1, 2, 0], [0.1, 1], 1.5)]))).toEqual({
      "latency_seconds_bucket{le=0.1}": 1,
      "latency_seconds_bucket{le=1}": 3,
      "latency_seconds_bucket{le=+Inf}": 3,
      latency_seconds_count: 3,
      latency_seconds_sum: 1.5
    })
    expect(read(send(streams, t0, [histogram(t0, t0 + 1000, [0, 1, 4], [0.1, 1], 20)]))).toEqual({
      "latency_seconds_bucket{le=0.1}": 1,
      "latency_seconds_bucket{le=1}": 4,
      "latency_seconds_bucket{le=+Inf}": 8,
      latency_seconds_count: 8,
      latency_seconds_sum: 21.5
    })
    expect(read(send(streams, t0, [histogram(t0 + 1000, t0 + 2000, [1, 1], [0.5], 0.7)]))).toEqual({
      "latency_seconds_bucket{le=0.5}": 1,
      "latency_seconds_bucket{le=+Inf}": 2,
      latency_seconds_count: 2,
      latency_seconds_sum: 0.7
    })
  })

  it("adds delta exponential histograms as native histograms, at the coarser of their scales", () => {
    const streams = new DeltaStreams()
    const exp = (start: number, time: number, scale: number, offset: number, counts: ReadonlyArray<number>, zeroCount: number, sum: number) => ({
      name: "rpc.duration",
      unit: "s",
      exponentialHistogram: {
        aggregationTemporality: 1,
        dataPoints: [{
          startTimeUnixNano: ns(start),
          timeUnixNano: ns(time),
          count: counts.reduce((a, b) => a + b, zeroCount),
          sum,
          scale,
          zeroCount,
          positive: { offset, bucketCounts: counts }
        }]
      }
    })
    const histogramOf = (out: ReturnType<typeof translate>) => out.series.find((x) => x.histograms !== undefined)!.histograms![0]!.histogram
    const first = histogramOf(send(streams, t0, [exp(t0 - 1000, t0, 1, 0, [1, 2], 1, 3)]))
    expect([first.schema, first.count, first.sum, first.zeroCount]).toEqual([1, 4, 3, 1])
    const second = histogramOf(send(streams, t0, [exp(t0, t0 + 1000, 0, 0, [5], 0, 10)]))
    // Scale 1 buckets 0 and 1 (Prometheus 1 and 2) merge into scale 0 bucket 0 (Prometheus 1), where the 5 are.
    expect(second.schema).toBe(0)
    expect([second.count, second.sum, second.zeroCount]).toEqual([9, 13, 1])
    expect(positiveBuckets(second).filter((b) => b.count > 0).map((b) => [b.lower, b.upper, b.count])).toEqual([[1, 2, 8]])
    expect(second.counterResetHint).toBe("unknown")
    // The same as the two native histograms added by the histogram code.
    const expected = new FloatHistogram({ schema: 1, zeroThreshold: defaultZeroThreshold, zeroCount: 1, count: 4, sum: 3, positiveSpans: [{ offset: 1, length: 2 }], positiveBuckets: [1, 2] })
    expected.add(new FloatHistogram({ schema: 0, zeroThreshold: defaultZeroThreshold, count: 5, sum: 10, positiveSpans: [{ offset: 1, length: 1 }], positiveBuckets: [5] }))
    expect(second.equals(expected.compact(2))).toBe(true)
    // A point that cannot be a native histogram is refused and leaves the total as it was.
    const bad = send(streams, t0, [exp(t0 + 1000, t0 + 2000, -5, 0, [1], 0, 1)])
    expect(bad.rejectedPoints).toBe(1)
    expect(histogramOf(send(streams, t0, [exp(t0 + 1000, t0 + 2000, 0, 0, [1], 0, 1)])).count).toBe(10)
  })

  it("keeps at most streamsMax streams, the least recently updated dropped first", () => {
    const streams = new DeltaStreams({ streamsMax: 2, staleMs: 60_000, stateBytesMax: 1e9 })
    const point = (name: string, i: number, value = 1) => deltaSum(name, [{ start: t0 + (i - 1) * 1000, time: t0 + i * 1000, value }])
    send(streams, t0, [point("a", 1), point("b", 1)])
    expect(values(send(streams, t0, [point("a", 2)]), "a_total")).toEqual([2])
    // A third stream: b, the least recently updated, goes.
    send(streams, t0, [point("c", 1)])
    expect(streams.size).toBe(2)
    expect(values(send(streams, t0, [point("a", 3)]), "a_total")).toEqual([3])
    expect(values(send(streams, t0, [point("b", 2, 5)]), "b_total")).toEqual([5])
    expect(streams.size).toBe(2)
  })

  it("drops a stream not updated for staleMs, and bounds the state's bytes", () => {
    const streams = new DeltaStreams({ streamsMax: 100, staleMs: 60_000, stateBytesMax: 1e9 })
    const point = (i: number) => deltaSum("c", [{ start: t0 + (i - 1) * 1000, time: t0 + i * 1000, value: 1 }])
    send(streams, 0, [point(1)])
    expect(values(send(streams, 60_000, [point(2)]), "c_total")).toEqual([2])
    // More than staleMs later (server time): the stream is gone, its next point starts from zero.
    expect(values(send(streams, 120_001, [point(3)]), "c_total")).toEqual([1])
    send(streams, 200_000, [deltaSum("d", [{ start: t0, time: t0 + 1000, value: 1 }])])
    expect(streams.size).toBe(1)
    expect(values(send(streams, 200_000, [point(4)]), "c_total")).toEqual([1])

    const small = new DeltaStreams({ streamsMax: 100, staleMs: 60_000, stateBytesMax: 1000 })
    for (let i = 0; i < 50; i++) send(small, 0, [deltaSum(`m${i}`, [{ start: t0, time: t0 + 1000, value: 1 }])])
    expect(small.bytes).toBeLessThanOrEqual(1000)
    expect(small.size).toBeGreaterThan(0)
    expect(small.size).toBeLessThan(50)
  })
})
