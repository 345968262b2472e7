/**
 * End to end: PromQL over the Prometheus HTTP API of the real server process, after remote writes.
 */
import * as http from "node:http"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { parseHistogramText, RemoteWrite } from "@opendata/tsdb"
import { killAll, runToExit, type ServerProcess, start } from "./process.ts"

let server: ServerProcess
/** An hour ago, on a whole minute (seconds): inside the retention horizon, which remote write enforces. */
const t0 = Math.floor(Date.now() / 60_000) * 60 - 3600

beforeAll(async () => {
  server = await start({ OPENDATA_STORE: "memory" })
  const series = ["0", "1"].flatMap((instance) =>
    ["200", "500"].map((code) => ({
      labels: [["__name__", "http_requests_total"], ["code", code], ["instance", instance], ["job", "api"]] as Array<[string, string]>,
      samples: Array.from({ length: 21 }, (_, i) => ({ timestampMs: (t0 + i * 15) * 1000, value: i * (code === "200" ? 10 : 1) * (instance === "0" ? 1 : 2) }))
    }))
  )
  const res = await fetch(`${server.base}/api/v1/write`, {
    method: "POST",
    headers: { "content-type": "application/x-protobuf", "content-encoding": "snappy" },
    body: RemoteWrite.snappyCompress(RemoteWrite.encodeWriteRequestV1({ series, metadata: [], histograms: 0, exemplars: 0 }))
  })
  expect(res.status).toBe(204)
})
afterAll(killAll)

const get = async (path: string) => {
  const res = await fetch(`${server.base}${path}`)
  return { status: res.status, body: (await res.json()) as any }
}

describe("the query API", () => {
  it("answers an instant query in Prometheus's vector shape", async () => {
    const { status, body } = await get(`/api/v1/query?query=${encodeURIComponent('sum by (code) (rate(http_requests_total[1m]))')}&time=${t0 + 300}`)
    expect(status).toBe(200)
    expect(body.status).toBe("success")
    expect(body.data.resultType).toBe("vector")
    const byCode = Object.fromEntries(body.data.result.map((r: any) => [r.metric.code, Number(r.value[1])]))
    // 10/15s and 20/15s for code 200; 1/15s and 2/15s for 500.
    expect(byCode["200"]).toBeCloseTo(30 / 15, 6)
    expect(byCode["500"]).toBeCloseTo(3 / 15, 6)
    expect(body.data.result[0].value[0]).toBe(t0 + 300)
  })

  it("answers a range query in the matrix shape, step by step", async () => {
    const q = encodeURIComponent('http_requests_total{code="200",instance="1"}')
    const { status, body } = await get(`/api/v1/query_range?query=${q}&start=${t0}&end=${t0 + 60}&step=15s`)
    expect(status).toBe(200)
    expect(body.data.resultType).toBe("matrix")
    expect(body.data.result).toHaveLength(1)
    expect(body.data.result[0].metric).toEqual({ __name__: "http_requests_total", code: "200", instance: "1", job: "api" })
    expect(body.data.result[0].values).toEqual([0, 1, 2, 3, 4].map((i) => [t0 + i * 15, String(i * 20)]))
  })

  it("answers scalars, POST forms, and formats queries", async () => {
    expect((await get(`/api/v1/query?query=1%2B2&time=${t0}`)).body.data).toEqual({ resultType: "scalar", result: [t0, "3"] })
    const res = await fetch(`${server.base}/api/v1/query`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: `query=${encodeURIComponent("count(http_requests_total)")}&time=${t0 + 60}`
    })
    expect(((await res.json()) as any).data.result[0].value[1]).toBe("4")
    expect((await get(`/api/v1/format_query?query=${encodeURIComponent("sum(rate(x[5m]))by(job)")}`)).body.data).toBe(
      "sum by (job) (rate(x[5m]))"
    )
  })

  it("answers errors in Prometheus's envelope", async () => {
    const bad = await get(`/api/v1/query?query=${encodeURIComponent("sum(")}`)
    expect(bad.status).toBe(400)
    expect(bad.body).toMatchObject({ status: "error", errorType: "bad_data" })
    const step = await get(`/api/v1/query_range?query=up&start=${t0}&end=${t0 + 60}&step=0`)
    expect(step.status).toBe(400)
    const missing = await get(`/api/v1/query_range?query=up&start=${t0}&step=15`)
    expect(missing.body.errorType).toBe("bad_data")
    const execution = await get(`/api/v1/query?query=${encodeURIComponent("http_requests_total + on(job) http_requests_total")}&time=${t0 + 60}`)
    expect(execution.status).toBe(422)
    expect(execution.body.errorType).toBe("execution")
    expect((await fetch(`${server.base}/-/healthy`)).status).toBe(200)
  })

  it("holds a query to the server's configured sample and time limits", async () => {
    const limited = await start({ OPENDATA_STORE: "memory", OPENDATA_TSDB_QUERY_SAMPLES_MAX: "10", OPENDATA_TSDB_QUERY_TIMEOUT_MS: "60000" })
    const series = [{ labels: [["__name__", "m"]] as Array<[string, string]>, samples: Array.from({ length: 20 }, (_, i) => ({ timestampMs: (t0 + i * 15) * 1000, value: i })) }]
    const written = await fetch(`${limited.base}/api/v1/write`, {
      method: "POST",
      headers: { "content-type": "application/x-protobuf", "content-encoding": "snappy" },
      body: RemoteWrite.snappyCompress(RemoteWrite.encodeWriteRequestV1({ series, metadata: [], histograms: 0, exemplars: 0 }))
    })
    expect(written.status).toBe(204)
    const query = async (q: string) => {
      const res = await fetch(`${limited.base}/api/v1/query?query=${encodeURIComponent(q)}&time=${t0 + 300}`)
      return { status: res.status, body: (await res.json()) as any }
    }
    expect((await query("count_over_time(m[1m])")).status).toBe(200)
    const over = await query("count_over_time(m[10m])")
    expect(over.status).toBe(422)
    expect(over.body.errorType).toBe("execution")
    expect(over.body.error).toMatch(/query processing would load too many samples into memory \(more than 10\)/)
    limited.child.kill("SIGTERM")
    expect(await limited.exited).toBe(0)
  })

  it("answers experimental functions only when promql-experimental-functions is enabled", async () => {
    const q = encodeURIComponent(`sort_by_label_desc(first_over_time(http_requests_total{code="200"}[1m]), "instance")`)
    const off = await get(`/api/v1/query?query=${q}&time=${t0 + 300}`)
    expect(off.status).toBe(400)
    expect(off.body.errorType).toBe("bad_data")
    expect(off.body.error).toContain("promql-experimental-functions")
    // Each experimental part of the language behind its own feature.
    for (const [query, feature] of [
      ["rate(http_requests_total[1m] anchored)", "promql-extended-range-selectors"],
      ["rate(http_requests_total[1m + 1m])", "promql-duration-expr"],
      ["http_requests_total + fill(0) http_requests_total", "promql-binop-fill-modifiers"]
    ]) {
      const refused = await get(`/api/v1/query?query=${encodeURIComponent(query!)}&time=${t0 + 300}`)
      expect(refused.status, query).toBe(400)
      expect(refused.body.error, query).toContain(feature)
    }
    const on = await start({ OPENDATA_STORE: "memory", OPENDATA_TSDB_ENABLE_FEATURES: "promql-experimental-functions" })
    const series = ["0", "1"].map((instance) => ({
      labels: [["__name__", "http_requests_total"], ["code", "200"], ["instance", instance]] as Array<[string, string]>,
      samples: Array.from({ length: 5 }, (_, i) => ({ timestampMs: (t0 + i * 15) * 1000, value: i + (instance === "1" ? 100 : 0) }))
    }))
    const written = await fetch(`${on.base}/api/v1/write`, {
      method: "POST",
      headers: { "content-type": "application/x-protobuf", "content-encoding": "snappy" },
      body: RemoteWrite.snappyCompress(RemoteWrite.encodeWriteRequestV1({ series, metadata: [], histograms: 0, exemplars: 0 }))
    })
    expect(written.status).toBe(204)
    // The window (t0, t0 + 60s] is open on the left: its first sample is the one at t0 + 15s.
    const answer = (await (await fetch(`${on.base}/api/v1/query?query=${q}&time=${t0 + 60}`)).json()) as any
    expect(answer.data.result.map((r: any) => [r.metric.instance, r.value[1]])).toEqual([["1", "101"], ["0", "1"]])
    const flags = (await (await fetch(`${on.base}/api/v1/status/flags`)).json()) as any
    expect(flags.data["enable-feature"]).toBe("promql-experimental-functions")
    on.child.kill("SIGTERM")
    expect(await on.exited).toBe(0)
    // An unknown feature stops the server at start, naming it.
    const bad = await runToExit({ OPENDATA_STORE: "memory", OPENDATA_TSDB_ENABLE_FEATURES: "promql-no-such-thing" })
    expect(bad.code).not.toBe(0)
    expect(bad.output).toContain("OPENDATA_TSDB_ENABLE_FEATURES")
  })

  it("stops reading a chunked body (no Content-Length) at the limit, for remote write and for forms", async () => {
    // Streams 1 MiB chunks until the server answers, up to `totalMiB`, and never ends the body: only a
    // server that stops reading at its limit can answer.
    const chunked = (path: string, contentType: string, totalMiB: number) =>
      new Promise<{ status: number; body: string; sentMiB: number }>((resolve, reject) => {
        const url = new URL(path, server.base)
        let sent = 0
        let answered = false
        const req = http.request(url, { method: "POST", headers: { "content-type": contentType, "content-encoding": "snappy" } }, (res) => {
          answered = true
          let body = ""
          res.on("data", (d) => (body += d))
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body, sentMiB: sent }))
        })
        req.on("error", (e) => answered || reject(e))
        const chunk = Buffer.alloc(1024 * 1024, "a")
        const pump = () => {
          while (!answered && sent < totalMiB) {
            sent++
            if (!req.write(chunk)) return void req.once("drain", pump)
          }
        }
        pump()
      })
    const write = await chunked("/api/v1/write", "application/x-protobuf", 200)
    expect(write.status).toBe(413)
    expect(JSON.parse(write.body)).toMatchObject({ status: "error", errorType: "bad_data" })
    const form = await chunked("/api/v1/query", "application/x-www-form-urlencoded", 200)
    expect(form.status).toBe(400)
    expect(JSON.parse(form.body).error).toMatch(/over the limit/)
    expect((await get(`/api/v1/query?query=${encodeURIComponent("count(http_requests_total)")}&time=${t0 + 60}`)).body.data.result[0].value[1]).toBe("4")
  }, 30_000)
})

describe("native histograms over the API", () => {
  const h = (i: number) =>
    parseHistogramText(`schema:0 count:${4 * i} sum:${10 * i} z_bucket:${i} z_bucket_w:0.001 buckets:[${i} ${2 * i}] n_buckets:[0 0]`).histogram
  const write = async (v2: boolean, name: string, from: number) => {
    const series = [{
      labels: [["__name__", name], ["job", "api"]] as Array<[string, string]>,
      samples: [],
      histograms: Array.from({ length: 21 }, (_, i) => ({ timestampMs: (t0 + i * 15) * 1000, histogram: h(from + i) }))
    }]
    const request = { series, metadata: [], histograms: 21, exemplars: 0 }
    return fetch(`${server.base}/api/v1/write`, {
      method: "POST",
      headers: {
        "content-type": v2 ? "application/x-protobuf;proto=io.prometheus.write.v2.Request" : "application/x-protobuf",
        "content-encoding": "snappy"
      },
      body: RemoteWrite.snappyCompress(v2 ? RemoteWrite.encodeWriteRequestV2(request) : RemoteWrite.encodeWriteRequestV1(request))
    })
  }

  it("takes them by remote write 1.0 and 2.0 and answers in Prometheus's histogram shape, with annotations", async () => {
    expect((await write(false, "latency_seconds", 0)).status).toBe(204)
    const v2 = await write(true, "size_bytes", 1)
    expect(v2.status).toBe(204)
    expect(v2.headers.get("x-prometheus-remote-write-histograms-written")).toBe("21")
    // The raw histogram: count, sum and the non-empty buckets [boundary rule, lower, upper, count].
    const raw = await get(`/api/v1/query?query=latency_seconds&time=${t0 + 300}`)
    expect(raw.status).toBe(200)
    expect(raw.body.data.result).toEqual([{
      metric: { __name__: "latency_seconds", job: "api" },
      histogram: [t0 + 300, { count: "80", sum: "200", buckets: [[3, "-0.001", "0.001", "20"], [0, "0.5", "1", "20"], [0, "1", "2", "40"]] }]
    }])
    // rate() of histograms, a quantile over them, and a range query's `histograms`.
    const q = await get(`/api/v1/query?query=${encodeURIComponent("histogram_quantile(0.5, rate(latency_seconds[1m]))")}&time=${t0 + 300}`)
    expect(Number(q.body.data.result[0].value[1])).toBeCloseTo(1, 6)
    const range = await get(`/api/v1/query_range?query=${encodeURIComponent("sum(rate(size_bytes[1m]))")}&start=${t0 + 120}&end=${t0 + 180}&step=30s`)
    expect(range.body.data.result[0].histograms.map((p: any) => [p[0], Number(p[1].count)])).toEqual([[t0 + 120, 4 / 15], [t0 + 150, 4 / 15], [t0 + 180, 4 / 15]].map(([t, c]) => [t, expect.closeTo(c!, 9)]))
    // Annotations beside the data, only when there are some: a warning (sort in a range query), an info (a
    // histogram an aggregation passes over).
    const info = await get(`/api/v1/query?query=${encodeURIComponent("rate(latency_seconds[1m]) or rate(http_requests_total[1m])")}&time=${t0 + 300}`)
    expect(info.body.infos).toBeUndefined()
    const sorted = await get(`/api/v1/query_range?query=${encodeURIComponent("sort(http_requests_total)")}&start=${t0}&end=${t0 + 60}&step=15s`)
    expect(sorted.body.warnings).toEqual(["PromQL warning: sort is ineffective for range queries since results are always ordered by labels"])
    const mixed = await get(`/api/v1/query?query=${encodeURIComponent("max(latency_seconds)")}&time=${t0 + 300}`)
    expect(mixed.body.infos).toEqual(["PromQL info: ignored histogram in max aggregation"])
  })
})

describe("start timestamps (use-start-timestamps)", () => {
  it("keeps remote write 2.0's created timestamps and lets rate, increase and start_timestamp read them", async () => {
    const on = await start({ OPENDATA_STORE: "memory", OPENDATA_TSDB_ENABLE_FEATURES: "use-start-timestamps,promql-experimental-functions" })
    // A counter that started 30 s before its first sample, one sample a minute, 1 each.
    const series = [{
      labels: [["__name__", "jobs_total"], ["job", "batch"]] as Array<[string, string]>,
      samples: Array.from({ length: 5 }, (_, i) => ({ timestampMs: (t0 + 60 + i * 60) * 1000, value: i + 1, startTimestampMs: (t0 + 30) * 1000 }))
    }]
    const written = await fetch(`${on.base}/api/v1/write`, {
      method: "POST",
      headers: { "content-type": "application/x-protobuf;proto=io.prometheus.write.v2.Request", "content-encoding": "snappy" },
      body: RemoteWrite.snappyCompress(RemoteWrite.encodeWriteRequestV2({ series, metadata: [], histograms: 0, exemplars: 0 }))
    })
    expect(written.status).toBe(204)
    const query = async (q: string) => ((await (await fetch(`${on.base}/api/v1/query?query=${encodeURIComponent(q)}&time=${t0 + 300}`)).json()) as any).data.result
    expect((await query("start_timestamp(jobs_total)")).map((r: any) => r.value[1])).toEqual([String(t0 + 30)])
    // The window (t0, t0 + 300] holds all 5 samples; the counter started inside it at t0 + 30 (from 0): an
    // increase of 5, not extrapolated to the window's start.
    expect(Number((await query("increase(jobs_total[5m])"))[0].value[1])).toBeCloseTo(5, 9)
    on.child.kill("SIGTERM")
    expect(await on.exited).toBe(0)
  })
})

describe("input the API refuses", () => {
  const remoteWrite = (samples: Array<{ timestampMs: number; value: number }>, contentType = "application/x-protobuf") =>
    fetch(`${server.base}/api/v1/write`, {
      method: "POST",
      headers: { "content-type": contentType, "content-encoding": "snappy" },
      body: RemoteWrite.snappyCompress(RemoteWrite.encodeWriteRequestV1({
        series: [{ labels: [["__name__", "refused_probe"]], samples }],
        metadata: [],
        histograms: 0,
        exemplars: 0
      }))
    })

  it("answers an unknown or repeated parameter with 400 bad_data, on every endpoint", async () => {
    for (
      const path of [
        `/api/v1/query?query=up&tme=${t0}`,
        `/api/v1/query?query=up&query=down`,
        `/api/v1/query?query=up&timeout=0`,
        `/api/v1/query?query=up&timeout=-1`,
        `/api/v1/query_range?query=up&start=${t0}&end=${t0 + 60}&step=15&stepp=1`,
        "/api/v1/series?match[]=up&match[]=down&foo=1",
        "/api/v1/labels?x=1",
        "/api/v1/label/job/values?start=1&start=2",
        "/api/v1/metadata?metrics=up",
        "/api/v1/status/buildinfo?x",
        "/api/v1/format_query?query=up&pretty=1"
      ]
    ) {
      const { status, body } = await get(path)
      expect(status, path).toBe(400)
      expect(body, path).toMatchObject({ status: "error", errorType: "bad_data" })
    }
    // Repeating match[] is how several selectors are given.
    expect((await get("/api/v1/series?match[]=up&match[]=http_requests_total")).status).toBe(200)
  })

  it("refuses samples it would never keep (timestamp 0, before the retention horizon) with 400 and the count", async () => {
    for (const timestampMs of [0, Date.now() - 400 * 86_400_000]) {
      const res = await remoteWrite([{ timestampMs, value: 1 }])
      expect(res.status, String(timestampMs)).toBe(400)
      expect(await res.text()).toMatch(/^1 samples rejected/)
    }
    const now = Date.now()
    const mixed = await remoteWrite([{ timestampMs: now - 400 * 86_400_000, value: 1 }, { timestampMs: now, value: 2 }])
    expect(mixed.status).toBe(400)
    const { body } = await get(`/api/v1/query?query=refused_probe&time=${now / 1000}`)
    expect(body.data.result.map((r: any) => r.value[1])).toEqual(["2"])
  })

  it("answers a remote write message type it does not know with 415", async () => {
    const res = await remoteWrite([{ timestampMs: Date.now(), value: 1 }], "application/x-protobuf;proto=io.prometheus.write.v3.Request")
    expect(res.status).toBe(415)
    // Not read as a form either (only routes that take parameters read form bodies).
    expect((await remoteWrite([{ timestampMs: Date.now(), value: 1 }], "application/x-www-form-urlencoded")).status).toBe(415)
    expect((await remoteWrite([{ timestampMs: Date.now(), value: 1 }], "application/x-protobuf;proto=prometheus.WriteRequest")).status).toBe(204)
  })
})
