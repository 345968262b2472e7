/**
 * OTLP metrics ingest against the real server process: the OpenTelemetry JS SDK's own OTLP exporters (protobuf
 * and JSON) send counters, up-down counters, gauges, histograms and exponential histograms (stored as native
 * histograms) to `POST /api/v1/otlp/v1/metrics`, and PromQL reads them back under Prometheus 3's names; delta
 * temporality and bad bodies are refused with a reason. Servers started with other settings: UTF-8 names
 * (`NoUTF8EscapingWithSuffixes`) read back with PromQL's quoted names and the label APIs, and delta temporality
 * converted to cumulative.
 */
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as zlib from "node:zlib"
import { AggregationTemporalityPreference, OTLPMetricExporter as OTLPJsonExporter } from "@opentelemetry/exporter-metrics-otlp-http"
import { OTLPMetricExporter as OTLPProtoExporter } from "@opentelemetry/exporter-metrics-otlp-proto"
import { resourceFromAttributes } from "@opentelemetry/resources"
import { AggregationType, MeterProvider, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics"
import type { ViewOptions } from "@opentelemetry/sdk-metrics"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { killAll, type ServerProcess, start, tempDir } from "./process.ts"

let server: ServerProcess

beforeAll(async () => {
  server = await start({ OPENDATA_STORE: "memory", OPENDATA_TSDB_OTLP_PROMOTE_RESOURCE_ATTRIBUTES: "deployment.environment" })
}, 60_000)
afterAll(() => killAll())

const otlpUrl = () => `${server.base}/api/v1/otlp/v1/metrics`

interface VectorEntry {
  readonly metric: Record<string, string>
  readonly value: readonly [number, string]
}

const query = async (expr: string): Promise<Array<VectorEntry>> => {
  const response = await fetch(`${server.base}/api/v1/query?query=${encodeURIComponent(expr)}`)
  const body = (await response.json()) as { status: string; data: { result: Array<VectorEntry> }; error?: string }
  expect(body.status, body.error).toBe("success")
  return body.data.result
}

const valueOf = async (expr: string): Promise<number | undefined> => {
  const result = await query(expr)
  return result.length === 0 ? undefined : Number(result[0]!.value[1])
}

/** A meter provider whose one reader exports to the server with `exporter`, flushed by hand. */
const provider = (exporter: OTLPProtoExporter | OTLPJsonExporter, service: string, views: Array<ViewOptions> = []) => {
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 })
  const meterProvider = new MeterProvider({
    views,
    resource: resourceFromAttributes({
      "service.name": service,
      "service.namespace": "shop",
      "service.instance.id": "i-1",
      "deployment.environment": "test",
      "host.arch": "amd64"
    }),
    readers: [reader]
  })
  return { meter: meterProvider.getMeter("otlp-test", "1.2.3"), flush: () => reader.forceFlush(), close: () => meterProvider.shutdown() }
}

/** Records one of each instrument; the same for both exporters. */
const record = (meter: ReturnType<typeof provider>["meter"]) => {
  const attributes = { "http.request.method": "GET", "http.response.status_code": 200 }
  meter.createCounter("http.server.requests", { unit: "{request}", description: "Requests served." }).add(5, attributes)
  const queue = meter.createUpDownCounter("queue.size", { unit: "{item}" })
  queue.add(7)
  queue.add(-2)
  meter.createGauge("process.memory.usage", { unit: "By" }).record(123_456)
  meter.createGauge("cpu.utilization", { unit: "1" }).record(0.25)
  const duration = meter.createHistogram("http.server.request.duration", { unit: "s", advice: { explicitBucketBoundaries: [0.1, 0.5, 1] } })
  for (const v of [0.05, 0.2, 0.3, 0.7, 3]) duration.record(v, attributes)
}

describe("OTLP metrics from the OpenTelemetry SDK", () => {
  for (const [format, exporter] of [
    ["protobuf", () => new OTLPProtoExporter({ url: otlpUrl(), temporalityPreference: AggregationTemporalityPreference.CUMULATIVE })],
    ["JSON", () => new OTLPJsonExporter({ url: otlpUrl(), temporalityPreference: AggregationTemporalityPreference.CUMULATIVE })]
  ] as const) {
    it(`stores what the ${format} exporter sends, under Prometheus's names`, async () => {
      const service = `checkout-${format.toLowerCase()}`
      const p = provider(exporter(), service)
      record(p.meter)
      await p.flush()
      const job = `shop/${service}`
      const sel = `job="${job}"`

      const requests = await query(`http_server_requests_total{${sel}}`)
      expect(requests).toHaveLength(1)
      expect(requests[0]!.metric).toEqual({
        __name__: "http_server_requests_total",
        job,
        instance: "i-1",
        deployment_environment: "test",
        http_request_method: "GET",
        http_response_status_code: "200"
      })
      expect(requests[0]!.value[1]).toBe("5")
      expect(await valueOf(`queue_size{${sel}}`)).toBe(5)
      expect(await valueOf(`process_memory_usage_bytes{${sel}}`)).toBe(123_456)
      expect(await valueOf(`cpu_utilization_ratio{${sel}}`)).toBe(0.25)

      const buckets = await query(`http_server_request_duration_seconds_bucket{${sel}}`)
      expect(Object.fromEntries(buckets.map((b) => [b.metric["le"], Number(b.value[1])]))).toEqual({ "0.1": 1, "0.5": 3, "1": 4, "+Inf": 5 })
      expect(await valueOf(`http_server_request_duration_seconds_count{${sel}}`)).toBe(5)
      expect(await valueOf(`http_server_request_duration_seconds_sum{${sel}}`)).toBeCloseTo(4.25, 9)
      expect(await valueOf(`histogram_quantile(0.5, http_server_request_duration_seconds_bucket{${sel}})`)).toBeCloseTo(0.4, 9)

      // The resource's other attributes are on target_info, not on every series.
      const info = await query(`target_info{${sel}}`)
      expect(info).toHaveLength(1)
      expect(info[0]!.metric).toMatchObject({ host_arch: "amd64", deployment_environment: "test", instance: "i-1" })
      expect(info[0]!.metric["service_name"]).toBeUndefined()

      // Metadata as Prometheus keeps it.
      const metadata = (await (await fetch(`${server.base}/api/v1/metadata?metric=http_server_requests_total`)).json()) as {
        data: Record<string, Array<{ type: string; help: string }>>
      }
      expect(metadata.data["http_server_requests_total"]?.[0]).toMatchObject({ type: "counter", help: "Requests served." })

      // A later export of the same instruments moves the counter on.
      p.meter.createCounter("http.server.requests", { unit: "{request}" }).add(2, { "http.request.method": "GET", "http.response.status_code": 200 })
      await new Promise((r) => setTimeout(r, 5))
      await p.flush()
      expect(await valueOf(`http_server_requests_total{${sel}}`)).toBe(7)
      await p.close()
    })
  }
})

describe("OTLP exponential histograms from the OpenTelemetry SDK", () => {
  interface HistogramJson {
    readonly count: string
    readonly sum: string
    readonly buckets: ReadonlyArray<readonly [rule: number, lower: string, upper: string, count: string]>
  }
  /** Observations off the powers of two (no value on a bucket boundary at any scale), one of them zero. */
  const first = [0, 0.0013, 0.0021, 0.0042, 0.17, 0.3, 0.45, 0.7, 1.3, 3.1, 12.5]
  const later = [0.31, 0.33, 5.5]

  for (const [format, exporter] of [
    ["protobuf", () => new OTLPProtoExporter({ url: otlpUrl(), temporalityPreference: AggregationTemporalityPreference.CUMULATIVE })],
    ["JSON", () => new OTLPJsonExporter({ url: otlpUrl(), temporalityPreference: AggregationTemporalityPreference.CUMULATIVE })]
  ] as const) {
    it(`stores what the ${format} exporter sends as a native histogram, read back by PromQL`, async () => {
      const service = `rpc-${format.toLowerCase()}`
      const p = provider(exporter(), service, [
        { instrumentName: "rpc.*", aggregation: { type: AggregationType.EXPONENTIAL_HISTOGRAM } }
      ])
      const duration = p.meter.createHistogram("rpc.server.duration", { unit: "s", description: "RPC latency." })
      for (const x of first) duration.record(x, { "rpc.method": "Get" })
      await p.flush()
      const sel = `rpc_server_duration_seconds{job="shop/${service}"}`

      // One native histogram series: no _bucket, _sum, _count series, no _total.
      const raw = (await query(sel)) as unknown as Array<{ metric: Record<string, string>; histogram: readonly [number, HistogramJson] }>
      expect(raw).toHaveLength(1)
      expect(raw[0]!.metric).toEqual({
        __name__: "rpc_server_duration_seconds",
        job: `shop/${service}`,
        instance: "i-1",
        deployment_environment: "test",
        rpc_method: "Get"
      })
      expect(await query(`{__name__=~"rpc_server_duration_seconds_.+", job="shop/${service}"}`)).toEqual([])
      const h = raw[0]!.histogram[1]
      expect(Number(h.count)).toBe(first.length)
      // Each bucket holds exactly the observations in its bounds: the SDK's bucket i is Prometheus's i + 1.
      for (const [rule, lower, upper, count] of h.buckets) {
        const [lo, hi] = [Number(lower), Number(upper)]
        const inside = first.filter((x) => (rule === 3 ? x >= lo && x <= hi : x > lo && x <= hi))
        expect(Number(count), `bucket ${lower}..${upper}`).toBe(inside.length)
      }
      expect(h.buckets.reduce((n, b) => n + Number(b[3]), 0)).toBe(first.length)
      // The zero bucket, [-1e-128, 1e-128] (Prometheus's width, as the SDK sends no zero threshold), holds the 0.
      const zero = h.buckets[0]!
      expect([zero[0], Number(zero[1]), Number(zero[2]), zero[3]]).toEqual([3, -1e-128, 1e-128, "1"])

      const total = first.reduce((a, b) => a + b, 0)
      expect(await valueOf(`histogram_count(${sel})`)).toBe(first.length)
      expect(await valueOf(`histogram_sum(${sel})`)).toBeCloseTo(total, 9)
      // The median (rank 5.5 of 11) is in the bucket of the 6th smallest observation, 0.3.
      const median = (await valueOf(`histogram_quantile(0.5, ${sel})`))!
      const bucket = h.buckets.find(([, lower, upper]) => Number(lower) < 0.3 && 0.3 <= Number(upper))!
      expect(median).toBeGreaterThanOrEqual(Number(bucket[1]))
      expect(median).toBeLessThanOrEqual(Number(bucket[2]))
      expect(Math.abs(median / 0.3 - 1)).toBeLessThan(0.1)

      const metadata = (await (await fetch(`${server.base}/api/v1/metadata?metric=rpc_server_duration_seconds`)).json()) as {
        data: Record<string, Array<{ type: string; help: string; unit: string }>>
      }
      expect(metadata.data["rpc_server_duration_seconds"]?.[0]).toEqual({ type: "histogram", help: "RPC latency.", unit: "seconds" })

      // Two close values: the SDK keeps a fine scale (above 8), which becomes schema 8, buckets merged.
      const fine = p.meter.createHistogram("rpc.client.duration", { unit: "s" })
      for (const x of [0.3, 0.3001]) fine.record(x)
      await p.flush()
      const fineSel = `rpc_client_duration_seconds{job="shop/${service}"}`
      const fineRaw = (await query(fineSel)) as unknown as Array<{ histogram: readonly [number, HistogramJson] }>
      const fineBuckets = fineRaw[0]!.histogram[1].buckets
      expect(fineBuckets.reduce((n, b) => n + Number(b[3]), 0)).toBe(2)
      for (const [, lower, upper, count] of fineBuckets) {
        expect(Number(upper) / Number(lower)).toBeCloseTo(2 ** (2 ** -8), 12)
        expect(Number(count)).toBe([0.3, 0.3001].filter((x) => x > Number(lower) && x <= Number(upper)).length)
      }
      expect(await valueOf(`histogram_count(${fineSel})`)).toBe(2)

      // A later export is cumulative: the counts move on.
      for (const x of later) duration.record(x, { "rpc.method": "Get" })
      await new Promise((r) => setTimeout(r, 5))
      await p.flush()
      expect(await valueOf(`histogram_count(${sel})`)).toBe(first.length + later.length)
      expect(await valueOf(`histogram_sum(${sel})`)).toBeCloseTo(total + later.reduce((a, b) => a + b, 0), 9)
      // (0.01, 1]: 0.01 falls in an empty bucket and 1 on a bucket boundary (a power of two): nothing is interpolated.
      expect(await valueOf(`histogram_fraction(0.01, 1, ${sel})`)).toBeCloseTo(6 / 14, 9)
      await p.close()
    })
  }
})

describe("OTLP metrics refused", () => {
  const nowNanos = () => `${BigInt(Date.now()) * 1_000_000n}`
  const sumMetric = (name: string, temporality: number) => ({
    name,
    sum: {
      aggregationTemporality: temporality,
      isMonotonic: true,
      dataPoints: [{ asInt: "3", timeUnixNano: nowNanos(), attributes: [{ key: "k", value: { stringValue: "v" } }] }]
    }
  })
  const body = (metrics: Array<unknown>) => ({
    resourceMetrics: [{ resource: { attributes: [{ key: "service.name", value: { stringValue: "refusals" } }] }, scopeMetrics: [{ metrics }] }]
  })
  const post = (payload: string | Uint8Array, headers: Record<string, string>) =>
    fetch(otlpUrl(), { method: "POST", headers, body: payload })

  it("refuses delta sums point by point, with the reason, and writes the rest", async () => {
    const response = await post(JSON.stringify(body([sumMetric("delta.requests", 1), sumMetric("cumulative.requests", 2)])), {
      "content-type": "application/json"
    })
    expect(response.status).toBe(200)
    const answer = (await response.json()) as { partialSuccess?: { rejectedDataPoints: string; errorMessage: string } }
    expect(answer.partialSuccess?.rejectedDataPoints).toBe("1")
    expect(answer.partialSuccess?.errorMessage).toContain("delta.requests")
    expect(await valueOf(`cumulative_requests_total{job="refusals"}`)).toBe(3)
    expect(await query(`delta_requests_total`)).toEqual([])
  })

  it("keeps the exemplars of data points, served by /api/v1/query_exemplars", async () => {
    const t = Date.now()
    const payload = body([{
      name: "checkout.latency",
      unit: "s",
      histogram: {
        aggregationTemporality: 2,
        dataPoints: [{
          timeUnixNano: `${BigInt(t) * 1_000_000n}`,
          count: "2",
          bucketCounts: ["1", "1"],
          explicitBounds: [0.5],
          exemplars: [{ timeUnixNano: `${BigInt(t - 10) * 1_000_000n}`, asDouble: 0.9, traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7" }]
        }]
      }
    }])
    const response = await post(JSON.stringify(payload), { "content-type": "application/json" })
    expect(response.status).toBe(200)
    const q = encodeURIComponent(`histogram_quantile(0.9, rate(checkout_latency_seconds_bucket{job="refusals"}[5m]))`)
    const answer = (await (await fetch(`${server.base}/api/v1/query_exemplars?query=${q}&start=${(t - 60_000) / 1000}&end=${(t + 60_000) / 1000}`)).json()) as {
      data: Array<{ seriesLabels: Record<string, string>; exemplars: Array<{ labels: Record<string, string>; value: string; timestamp: number }> }>
    }
    expect(answer.data).toEqual([{
      seriesLabels: { __name__: "checkout_latency_seconds_bucket", job: "refusals", le: "+Inf" },
      exemplars: [{ labels: { trace_id: "4bf92f3577b34da6a3ce929d0e0e4736", span_id: "00f067aa0ba902b7" }, value: "0.9", timestamp: (t - 10) / 1000 }]
    }])
  })

  it("takes gzip-encoded bodies", async () => {
    const gz = zlib.gzipSync(JSON.stringify(body([sumMetric("gzipped.requests", 2)])))
    const response = await post(gz, { "content-type": "application/json", "content-encoding": "gzip" })
    expect(response.status).toBe(200)
    expect(await valueOf(`gzipped_requests_total{job="refusals"}`)).toBe(3)
  })

  it("answers bad bodies with a clear error and writes nothing", async () => {
    const bad = await post(new Uint8Array([0x0a, 0xff, 0xff, 0xff]), { "content-type": "application/x-protobuf" })
    expect(bad.status).toBe(400)
    expect(await bad.text()).toMatch(/^otlp: .*truncated|past the end/)
    const notJson = await post("{", { "content-type": "application/json" })
    expect(notJson.status).toBe(400)
    expect(await notJson.text()).toContain("not JSON")
    const wrongShape = await post(JSON.stringify({ resourceMetrics: {} }), { "content-type": "application/json" })
    expect(wrongShape.status).toBe(400)
    expect(await wrongShape.text()).toContain("resourceMetrics")
    const mediaType = await post("x", { "content-type": "text/plain" })
    expect(mediaType.status).toBe(415)
    const coding = await post("x", { "content-type": "application/json", "content-encoding": "br" })
    expect(coding.status).toBe(415)
    const corrupt = await post(new Uint8Array([1, 2, 3]), { "content-type": "application/json", "content-encoding": "gzip" })
    expect(corrupt.status).toBe(400)
    // The server is still up and nothing of the above was written.
    expect(await query(`{job="refusals", __name__!~"cumulative_requests_total|gzipped_requests_total|checkout_latency_seconds_.*|target_info"}`)).toEqual([])
  })
})

describe("OTLP settings from opendata.yaml", () => {
  it("names metrics without suffixes and keeps service attributes on target_info when told", async () => {
    const dir = await tempDir()
    const file = path.join(dir, "opendata.yaml")
    await fs.writeFile(
      file,
      "store: memory\ntsdb:\n  otlp:\n    translationStrategy: UnderscoreEscapingWithoutSuffixes\n    keepIdentifyingResourceAttributes: true\n"
    )
    const own = await start({ OPENDATA_CONFIG: file })
    const p = provider(new OTLPProtoExporter({ url: `${own.base}/api/v1/otlp/v1/metrics` }), "plain")
    p.meter.createCounter("http.server.requests", { unit: "{request}" }).add(3)
    await p.flush()
    await p.close()
    const ask = async (expr: string) =>
      ((await (await fetch(`${own.base}/api/v1/query?query=${encodeURIComponent(expr)}`)).json()) as { data: { result: Array<VectorEntry> } }).data.result
    expect((await ask("http_server_requests"))[0]?.value[1]).toBe("3")
    expect(await ask("http_server_requests_total")).toEqual([])
    expect((await ask("target_info"))[0]?.metric["service_name"]).toBe("plain")
    own.child.kill("SIGTERM")
    await own.exited
  })
})

/** Asks another server's API for JSON. */
const ask = async <A>(base: string, pathAndQuery: string): Promise<A> => {
  const response = await fetch(`${base}${pathAndQuery}`)
  const body = (await response.json()) as { status: string; data: A; error?: string }
  expect(body.status, body.error).toBe("success")
  return body.data
}

describe("OTLP UTF-8 names (NoUTF8EscapingWithSuffixes)", () => {
  it("keeps dots in metric and label names, read back with PromQL's quoted names and the label APIs", async () => {
    const own = await start({ OPENDATA_STORE: "memory", OPENDATA_TSDB_OTLP_TRANSLATION_STRATEGY: "NoUTF8EscapingWithSuffixes" })
    const p = provider(new OTLPProtoExporter({ url: `${own.base}/api/v1/otlp/v1/metrics` }), "utf8")
    const attributes = { "http.request.method": "GET", "http.response.status_code": 200 }
    p.meter.createCounter("http.server.requests", { unit: "{request}" }).add(5, attributes)
    const duration = p.meter.createHistogram("http.server.request.duration", { unit: "s", advice: { explicitBucketBoundaries: [0.1, 0.5, 1] } })
    for (const x of [0.05, 0.2, 0.3, 0.7, 3]) duration.record(x, attributes)
    p.meter.createGauge("cpu.utilization", { unit: "1" }).record(0.25)
    await p.flush()
    await p.close()
    const instant = (expr: string) => ask<{ result: Array<VectorEntry> }>(own.base, `/api/v1/query?query=${encodeURIComponent(expr)}`).then((d) => d.result)

    const requests = await instant(`{"http.server.requests_total", "http.request.method"="GET"}`)
    expect(requests).toHaveLength(1)
    expect(requests[0]!.metric).toEqual({
      __name__: "http.server.requests_total",
      job: "shop/utf8",
      instance: "i-1",
      "http.request.method": "GET",
      "http.response.status_code": "200"
    })
    expect(requests[0]!.value[1]).toBe("5")
    expect((await instant(`{"cpu.utilization_ratio"}`))[0]?.value[1]).toBe("0.25")
    expect((await instant(`{"http.server.request.duration_seconds_count"}`))[0]?.value[1]).toBe("5")
    const median = await instant(`histogram_quantile(0.5, sum by (le) ({"http.server.request.duration_seconds_bucket", "http.request.method"="GET"}))`)
    expect(Number(median[0]!.value[1])).toBeCloseTo(0.4, 9)
    const byMethod = await instant(`sum by ("http.request.method") ({"http.server.requests_total"})`)
    expect(byMethod.map((e) => e.metric)).toEqual([{ "http.request.method": "GET" }])
    // The resource's other attributes, on target_info, keep their names too.
    expect((await instant(`target_info{job="shop/utf8"}`))[0]?.metric).toMatchObject({ "host.arch": "amd64", "deployment.environment": "test" })

    // The series, labels and label values APIs: quoted names in match[], U__-escaped names in the path.
    const match = encodeURIComponent(`{"http.server.requests_total"}`)
    const series = await ask<Array<Record<string, string>>>(own.base, `/api/v1/series?match[]=${match}`)
    expect(series).toEqual([requests[0]!.metric])
    const names = await ask<Array<string>>(own.base, `/api/v1/labels?match[]=${match}`)
    expect(names).toEqual(["__name__", "http.request.method", "http.response.status_code", "instance", "job"])
    expect(await ask<Array<string>>(own.base, `/api/v1/label/U__http_2e_request_2e_method/values`)).toEqual(["GET"])
    expect(await ask<Array<string>>(own.base, `/api/v1/label/U__http_2e_request_2e_method/values?match[]=${encodeURIComponent(`{"http.request.method"="POST"}`)}`))
      .toEqual([])
    expect(await ask<Array<string>>(own.base, `/api/v1/label/__name__/values?match[]=${encodeURIComponent(`{job="shop/utf8"}`)}`)).toEqual([
      "cpu.utilization_ratio",
      "http.server.request.duration_seconds_bucket",
      "http.server.request.duration_seconds_count",
      "http.server.request.duration_seconds_sum",
      "http.server.requests_total",
      "target_info"
    ])
    const metadata = await ask<Record<string, Array<{ type: string }>>>(own.base, `/api/v1/metadata?metric=${encodeURIComponent("http.server.requests_total")}`)
    expect(metadata["http.server.requests_total"]?.[0]?.type).toBe("counter")
    own.child.kill("SIGTERM")
    await own.exited
  })
})

describe("OTLP delta temporality converted to cumulative", () => {
  it("stores the running totals of the SDK's delta counters and histograms", async () => {
    const own = await start({ OPENDATA_STORE: "memory", OPENDATA_TSDB_OTLP_CONVERT_DELTA_TO_CUMULATIVE: "true" })
    const p = provider(new OTLPProtoExporter({ url: `${own.base}/api/v1/otlp/v1/metrics`, temporalityPreference: AggregationTemporalityPreference.DELTA }), "delta", [
      { instrumentName: "rpc.*", aggregation: { type: AggregationType.EXPONENTIAL_HISTOGRAM } }
    ])
    const requests = p.meter.createCounter("http.server.requests", { unit: "{request}" })
    const duration = p.meter.createHistogram("http.server.request.duration", { unit: "s", advice: { explicitBucketBoundaries: [0.1, 1] } })
    const rpc = p.meter.createHistogram("rpc.server.duration", { unit: "s" })
    const deltas = [5, 2, 3]
    for (const n of deltas) {
      requests.add(n, { "http.request.method": "GET" })
      for (let i = 0; i < n; i++) {
        duration.record(0.05 * (i + 1))
        rpc.record(0.3 * (i + 1))
      }
      await p.flush()
      await new Promise((r) => setTimeout(r, 20))
    }
    await p.close()
    const instant = (expr: string) =>
      ask<{ result: Array<{ metric: Record<string, string>; value: readonly [number, string] }> }>(own.base, `/api/v1/query?query=${encodeURIComponent(expr)}`)
        .then((d) => d.result)
    const total = deltas.reduce((a, b) => a + b, 0)
    const sel = `http_server_requests_total{job="shop/delta", http_request_method="GET"}`
    // The raw counter is the cumulative total; each sample the total so far.
    expect((await instant(sel))[0]?.value[1]).toBe(String(total))
    const samples = await instant(`${sel}[1h]`) as unknown as Array<{ values: Array<readonly [number, string]> }>
    expect(samples[0]!.values.map(([, v]) => Number(v))).toEqual([5, 7, 10])
    expect((await instant(`resets(${sel}[1h])`))[0]?.value[1]).toBe("0")
    expect((await instant(`idelta(${sel}[1h])`))[0]?.value[1]).toBe("3")
    // increase() over the three samples: the 5 added after the first, extrapolated as for any counter.
    const increase = Number((await instant(`increase(${sel}[1h])`))[0]?.value[1])
    expect(increase).toBeGreaterThanOrEqual(total - 5)
    expect(increase).toBeLessThanOrEqual(total)
    // Histograms: the counts and buckets of all three exports.
    expect((await instant(`http_server_request_duration_seconds_count{job="shop/delta"}`))[0]?.value[1]).toBe(String(total))
    const buckets = await instant(`http_server_request_duration_seconds_bucket{job="shop/delta"}`)
    expect(Object.fromEntries(buckets.map((b) => [b.metric["le"], Number(b.value[1])]))).toEqual({ "0.1": 6, "1": 10, "+Inf": 10 })
    expect((await instant(`histogram_count(rpc_server_duration_seconds{job="shop/delta"})`))[0]?.value[1]).toBe(String(total))
    const rpcSum = [5, 2, 3].reduce((a, n) => a + Array.from({ length: n }, (_, i) => 0.3 * (i + 1)).reduce((x, y) => x + y, 0), 0)
    expect(Number((await instant(`histogram_sum(rpc_server_duration_seconds{job="shop/delta"})`))[0]?.value[1])).toBeCloseTo(rpcSum, 9)
    own.child.kill("SIGTERM")
    await own.exited
  })
})
