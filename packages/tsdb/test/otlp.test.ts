/**
 * OTLP metrics: the names Prometheus 3 gives OTLP metrics and attributes, the translation of each metric
 * kind, and hostile protobuf bodies (every truncation and random corruptions decode or throw one of the two
 * decode errors, nothing else).
 */
import { describe, expect, it } from "vitest"
import { decodeMetricsJson, decodeMetricsProto, encodeExportResponse } from "../src/internal/otlp/decode.ts"
import { defaultSettings, labelName, metricName, plainFloat, translate, unitName } from "../src/internal/otlp/translate.ts"
import { isStaleNaN, RemoteWriteDecodeError, RemoteWriteLimitError } from "../src/internal/remoteWrite/decode.ts"
import { prng } from "./remoteWrite/helpers.ts"
import { cat, d, f64, ld, v } from "./remoteWrite/pb.ts"

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
          { name: "exp", exponentialHistogram: { aggregationTemporality: 2, dataPoints: [{ timeUnixNano: ns(t0), count: "1" }] } }
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

  it("puts the resource on target_info at its latest time and refuses exponential histograms", () => {
    const info = find("target_info")
    expect(info).toHaveLength(1)
    expect(info[0]!.labels).toEqual([["__name__", "target_info"], ["instance", "pod-7"], ["job", "api"], ["k8s_pod_uid", "abc"], ["replicas", "3"]])
    expect(info[0]!.samples).toEqual([{ timestampMs: t0 + 1000, value: 1 }])
    expect(out.rejectedPoints).toBe(1)
    expect(out.reasons[0]).toContain("exponential histograms")
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
    expect(() => decodeMetricsProto(body, { pointsMax: 1, stringBytesMax: 100, bucketsMax: 10 })).toThrow(RemoteWriteLimitError)
  })
})
