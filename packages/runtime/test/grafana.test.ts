/**
 * End to end, against the real server process: what Grafana's Prometheus data source and its alerting
 * pages call (checked against Grafana 12.2: packages/grafana-prometheus, pkg/promlib,
 * public/app/features/alerting/unified/api) answers 2xx in Prometheus's shapes; the rules, alerts and status
 * endpoints; 405 for a method a known path does not take; `U__` label names; gzip both ways.
 */
import * as http from "node:http"
import * as zlib from "node:zlib"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { parse as parseYaml } from "yaml"
import { RemoteWrite } from "@opendata/tsdb"
import { killAll, type ServerProcess, start } from "./process.ts"

let server: ServerProcess

/** Whole seconds, 20 minutes ago: every sample is inside the retention horizon and the head. */
const base = Math.floor(Date.now() / 1000) - 20 * 60
const minute = 60

type LabelPairs = Array<[string, string]>

/** Samples every 15 s from `fromS` to `toS` (seconds), in ms. */
const samples = (fromS: number, toS: number) =>
  Array.from({ length: Math.floor((toS - fromS) / 15) + 1 }, (_, i) => ({ timestampMs: (fromS + i * 15) * 1000, value: i }))

const written: Array<{ labels: LabelPairs; samples: ReturnType<typeof samples> }> = [
  { labels: [["__name__", "http_requests_total"], ["code", "200"], ["instance", "a"], ["job", "api"]], samples: samples(base, base + 19 * minute) },
  { labels: [["__name__", "http_requests_total"], ["code", "500"], ["instance", "a"], ["job", "api"]], samples: samples(base, base + 10 * minute) },
  { labels: [["__name__", "http_requests_total"], ["code", "200"], ["instance", "b"], ["job", "api"]], samples: samples(base, base + 10 * minute) },
  { labels: [["__name__", "up"], ["instance", "a"], ["job", "api"]], samples: samples(base, base + 5 * minute) },
  { labels: [["__name__", "up"], ["instance", "n"], ["job", "node"]], samples: samples(base, base + 5 * minute) },
  { labels: [["__name__", "my_metric"], ["my_label", "x"]], samples: samples(base - 10 * minute, base) }
]
const firstSampleMs = (base - 10 * minute) * 1000
const lastSampleMs = (base + 19 * minute) * 1000

beforeAll(async () => {
  server = await start({
    OPENDATA_STORE: "memory",
    OPENDATA_TSDB_QUERY_TIMEOUT_MS: "90000",
    OPENDATA_TSDB_QUERY_SAMPLES_MAX: "1234567",
    OPENDATA_TSDB_RETENTION_MS: String(10 * 86_400_000)
  })
  const res = await fetch(`${server.base}/api/v1/write`, {
    method: "POST",
    headers: { "content-type": "application/x-protobuf", "content-encoding": "snappy" },
    body: RemoteWrite.snappyCompress(RemoteWrite.encodeWriteRequestV1({
      series: written,
      metadata: [{ metric: "http_requests_total", type: "counter", help: "Requests.", unit: "" }],
      histograms: 0,
      exemplars: 0
    }))
  })
  expect(res.status).toBe(204)
})
afterAll(killAll)

const get = async (path: string) => {
  const res = await fetch(`${server.base}${path}`)
  return { status: res.status, headers: res.headers, body: (await res.json()) as any }
}

const form = async (path: string, params: Record<string, string>) => {
  const res = await fetch(`${server.base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(params).toString()
  })
  return { status: res.status, body: (await res.json()) as any }
}

/** A request over node:http, which (unlike fetch) shows the body and headers as sent. */
const raw = (method: string, path: string, headers: Record<string, string>, body?: Uint8Array) =>
  new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
    const req = http.request(new URL(path, server.base), { method, headers }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on("error", reject)
    })
    req.on("error", reject)
    req.end(body)
  })

const now = () => Math.floor(Date.now() / 1000)
/** Grafana's time range parameters (seconds), and its default series limit (DEFAULT_SERIES_LIMIT). */
const range = () => ({ start: String(now() - 3600), end: String(now()) })
const limit = "40000"

describe("what Grafana calls", () => {
  it("answers every call of the data source (queries, health check, editor lookups, rules, exemplars) with 2xx", async () => {
    const q = (p: Record<string, string>) => `?${new URLSearchParams(p)}`
    const vector = (body: any) => expect(body).toMatchObject({ status: "success", data: { resultType: "vector", result: expect.any(Array) } })
    // pkg/promlib health check: the instant query 1+1 at 4 s (a GET with httpMethod GET, else POST).
    const health = await get(`/api/v1/query${q({ query: "1+1", time: "4" })}`)
    expect(health.status).toBe(200)
    expect(health.body.data).toEqual({ resultType: "scalar", result: [4, "2"] })
    expect((await form("/api/v1/query", { query: "1+1", time: "4" })).body.data.result).toEqual([4, "2"])
    // pkg/promlib queries: instant and range, with `timeout` when the data source sets one.
    const instant = await form("/api/v1/query", { query: "sum(up)", time: String(base + 5 * minute), timeout: "30s" })
    expect(instant.status).toBe(200)
    vector(instant.body)
    expect(instant.body.data.result[0].value[1]).toBe("40")
    const rangeQuery = await form("/api/v1/query_range", { query: "up", start: String(base), end: String(base + 5 * minute), step: "60", timeout: "30s" })
    expect(rangeQuery.status).toBe(200)
    expect(rangeQuery.body.data.resultType).toBe("matrix")
    expect(rangeQuery.body.data.result).toHaveLength(2)
    // Exemplars: the data source's availability probe sends milliseconds, the backend seconds.
    for (const params of [{ query: "test", start: String(Date.now() - 1_800_000), end: String(Date.now()) }, { query: "up", ...range() }]) {
      const exemplars = await form("/api/v1/query_exemplars", params)
      expect(exemplars.status).toBe(200)
      expect(exemplars.body).toEqual({ status: "success", data: [] })
    }
    // The editor: metric names, label names (with and without match[]), label values, series, metadata.
    const names = await get(`/api/v1/label/__name__/values${q({ ...range(), limit })}`)
    expect(names.body).toEqual({ status: "success", data: ["http_requests_total", "my_metric", "up"] })
    const labels = await get(`/api/v1/labels${q({ ...range(), limit })}`)
    expect(labels.body.data).toEqual(["__name__", "code", "instance", "job", "my_label"])
    expect((await form("/api/v1/labels", { ...range(), limit, "match[]": "up" })).body.data).toEqual(["__name__", "instance", "job"])
    const jobs = await get(`/api/v1/label/job/values${q({ ...range(), limit, "match[]": "{__name__=\"up\"}" })}`)
    expect(jobs.body.data).toEqual(["api", "node"])
    const series = await get(`/api/v1/series${q({ ...range(), "match[]": "{__name__!=\"\"}", limit })}`)
    expect(series.status).toBe(200)
    expect(series.body.data).toHaveLength(written.length)
    expect((await form("/api/v1/series", { ...range(), "match[]": "up", limit })).body.data).toEqual([
      { __name__: "up", instance: "a", job: "api" },
      { __name__: "up", instance: "n", job: "node" }
    ])
    expect((await get("/api/v1/metadata")).body).toEqual({ status: "success", data: { http_requests_total: [{ type: "counter", help: "Requests.", unit: "" }] } })
    // Recording rules, loaded when the data source starts; alerting's rule and alert lists (Grafana proxies
    // them to /api/v1/rules and /api/v1/alerts with the query string as it is).
    expect(await get("/api/v1/rules")).toMatchObject({ status: 200, body: { status: "success", data: { groups: [] } } })
    expect(await get("/api/v1/alerts")).toMatchObject({ status: 200, body: { status: "success", data: { alerts: [] } } })
    // Build info: the health check's heuristics, version detection, alerting's feature discovery.
    expect((await get("/api/v1/status/buildinfo")).status).toBe(200)
    // Older Grafana alerting: the Thanos probe on flags, and the build info fallback query.
    expect((await get("/api/v1/status/flags")).status).toBe(200)
    vector((await get(`/api/v1/query${q({ query: "prometheus_build_info" })}`)).body)
  })

  it("reports a Prometheus version, and its own name and version apart, with no `features` (which means Mimir)", async () => {
    const { status, body } = await get("/api/v1/status/buildinfo")
    expect(status).toBe(200)
    expect(body.data).toMatchObject({ version: "3.0.0", application: "opendata", opendataVersion: "0.1.0", revision: "", branch: "" })
    expect(body.data.version).toMatch(/^\d+\.\d+\.\d+$/)
    expect(body.data).not.toHaveProperty("features")
  })
})

describe("rules and alerts", () => {
  it("answers an empty list of rule groups in Prometheus's shape, for every filter Grafana and Prometheus take", async () => {
    const alertingPage = new URLSearchParams([
      ["file", "ns"], ["file[]", "ns"], ["rule_group", "g"], ["rule_group[]", "g"], ["rule_name", "r"], ["rule_name[]", "r"],
      ["exclude_alerts", "true"], ["group_limit", "100"]
    ])
    for (const params of [alertingPage.toString(), "type=alert", "type=RECORD", "match[]=up&match[]={job=\"api\"}", "file[]=a&file[]=b", "exclude_alerts=0", "group_limit=1"]) {
      const { status, body } = await get(`/api/v1/rules?${params}`)
      expect(status, params).toBe(200)
      expect(body, params).toEqual({ status: "success", data: { groups: [] } })
    }
  })

  it("refuses bad rule filters as Prometheus does", async () => {
    const cases: Array<[string, RegExp]> = [
      ["type=alerting", /invalid parameter "type": not supported value "alerting"/],
      ["exclude_alerts=maybe", /invalid parameter "exclude_alerts"/],
      ["group_next_token=abc", /group_limit needs to be present in order to paginate/],
      ["group_limit=0", /group_limit needs to be greater than 0/],
      ["group_limit=x", /group_limit needs to be a valid number/],
      ["group_limit=5&group_next_token=abc", /invalid group_next_token 'abc'. were rule groups changed\?/],
      ["match[]=%7B%7D", /./],
      ["rulename=x", /unknown parameter "rulename"/],
      ["type=alert&type=record", /given more than once/]
    ]
    for (const [params, message] of cases) {
      const { status, body } = await get(`/api/v1/rules?${params}`)
      expect(status, params).toBe(400)
      expect(body.errorType, params).toBe("bad_data")
      expect(body.error, params).toMatch(message)
    }
  })

  it("answers an empty list of alerts", async () => {
    expect(await get("/api/v1/alerts")).toMatchObject({ status: 200, body: { status: "success", data: { alerts: [] } } })
    expect((await get("/api/v1/alerts?state=firing")).status).toBe(400)
  })
})

describe("status", () => {
  it("reports the flags that apply, with the server's values", async () => {
    const { status, body } = await get("/api/v1/status/flags")
    expect(status).toBe(200)
    expect(body.data).toMatchObject({
      "query.timeout": "1m30s",
      "query.max-samples": "1234567",
      "query.lookback-delta": "5m",
      "web.listen-address": `127.0.0.1:${server.port}`,
      "web.enable-admin-api": "false",
      "web.enable-lifecycle": "false"
    })
    for (const value of Object.values(body.data)) expect(typeof value).toBe("string")
    // The retention is reported once the server tells the API what it is (TsdbHttp.StatusSettings), never guessed.
    if ("storage.tsdb.retention.time" in body.data) expect(body.data["storage.tsdb.retention.time"]).toBe("10d")
  })

  it("reports a configuration that is valid YAML in Prometheus's shape", async () => {
    const { status, body } = await get("/api/v1/status/config")
    expect(status).toBe(200)
    expect(Object.keys(body.data)).toEqual(["yaml"])
    const config = parseYaml(body.data.yaml)
    expect(config.global).toEqual({})
    expect(config.storage.tsdb.out_of_order_time_window).toBe("10m")
    expect(config).not.toHaveProperty("scrape_configs")
    if (config.storage.tsdb.retention !== undefined) expect(config.storage.tsdb.retention).toEqual({ time: "10d" })
  })

  it("reports runtime information with Prometheus's fields", async () => {
    const { status, body } = await get("/api/v1/status/runtimeinfo")
    expect(status).toBe(200)
    const info = body.data
    expect(Object.keys(info).sort()).toEqual([
      "CWD", "GODEBUG", "GOGC", "GOMAXPROCS", "GOMEMLIMIT", "corruptionCount", "goroutineCount", "hostname",
      "lastConfigTime", "reloadConfigSuccess", "serverTime", "startTime", "storageRetention"
    ].sort())
    expect(info.CWD).toBe(process.cwd())
    expect(info.reloadConfigSuccess).toBe(true)
    expect(info.corruptionCount).toBe(0)
    expect(info.goroutineCount).toBe(0)
    expect(info.GOMAXPROCS).toBe(1)
    expect(info.GOMEMLIMIT).toBeGreaterThan(0)
    const started = Date.parse(info.startTime)
    expect(started).toBeLessThanOrEqual(Date.parse(info.serverTime))
    expect(Date.now() - started).toBeLessThan(10 * 60_000)
    expect(Date.parse(info.lastConfigTime)).toBe(started)
    expect(["", "10d"]).toContain(info.storageRetention)
  })

  it("reports the head's statistics and cardinality, computed from what was written", async () => {
    const { status, body } = await get("/api/v1/status/tsdb")
    expect(status).toBe(200)
    const tsdb = body.data
    expect(tsdb.headStats).toEqual({ numSeries: 6, numLabelPairs: 11, chunkCount: 0, minTime: firstSampleMs, maxTime: lastSampleMs })
    expect(tsdb.seriesCountByMetricName).toEqual([
      { name: "http_requests_total", value: 3 },
      { name: "up", value: 2 },
      { name: "my_metric", value: 1 }
    ])
    expect(tsdb.labelValueCountByLabelName).toEqual([
      { name: "__name__", value: 3 },
      { name: "instance", value: 3 },
      { name: "code", value: 2 },
      { name: "job", value: 2 },
      { name: "my_label", value: 1 }
    ])
    // Prometheus's SizeOfLabels: each pair's name and value with a one-byte length, times its series.
    expect(tsdb.memoryInBytesByLabelName).toEqual([
      { name: "__name__", value: (9 + 20) * 3 + (9 + 3) * 2 + (9 + 10) },
      { name: "instance", value: (9 + 2) * 5 },
      { name: "job", value: (4 + 4) * 4 + (4 + 5) },
      { name: "code", value: (5 + 4) * 3 },
      { name: "my_label", value: 9 + 2 }
    ])
    expect(tsdb.seriesCountByLabelValuePair).toEqual([
      { name: "job=api", value: 4 },
      { name: "__name__=http_requests_total", value: 3 },
      { name: "instance=a", value: 3 },
      { name: "__name__=up", value: 2 },
      { name: "code=200", value: 2 },
      { name: "__name__=my_metric", value: 1 },
      { name: "code=500", value: 1 },
      { name: "instance=b", value: 1 },
      { name: "instance=n", value: 1 },
      { name: "job=node", value: 1 }
    ])
  })

  it("takes a limit on the tables, as Prometheus does", async () => {
    const { body } = await get("/api/v1/status/tsdb?limit=2")
    expect(body.data.headStats.numSeries).toBe(6)
    expect(body.data.seriesCountByLabelValuePair).toEqual([{ name: "job=api", value: 4 }, { name: "__name__=http_requests_total", value: 3 }])
    for (const table of ["seriesCountByMetricName", "labelValueCountByLabelName", "memoryInBytesByLabelName"]) expect(body.data[table]).toHaveLength(2)
    for (const [limit, message] of [["0", "limit must be a positive number"], ["x", "limit must be a positive number"], ["10001", "limit must not exceed 10000"]]) {
      const refused = await get(`/api/v1/status/tsdb?limit=${limit}`)
      expect(refused.status).toBe(400)
      expect(refused.body).toMatchObject({ errorType: "bad_data", error: message })
    }
  })
})

describe("methods and label names", () => {
  it("answers a method a known path does not take with 405 and Allow, as Prometheus's router does", async () => {
    const post = await raw("POST", "/api/v1/label/job/values", { "content-type": "application/x-www-form-urlencoded" }, Buffer.from("start=1"))
    expect(post.status).toBe(405)
    expect(post.headers.allow).toBe("GET")
    expect(post.body.toString()).toBe("Method Not Allowed\n")
    for (const [method, path, allow] of [["PUT", "/api/v1/rules", "GET"], ["DELETE", "/api/v1/status/tsdb", "GET"], ["GET", "/api/v1/write", "POST"], ["PATCH", "/api/v1/query", "GET, POST"]]) {
      const res = await raw(method!, path!, {})
      expect(res.status, `${method} ${path}`).toBe(405)
      expect(res.headers.allow, `${method} ${path}`).toBe(allow)
    }
    // An unknown path is still a plain 404.
    expect((await raw("POST", "/api/v1/label/job/valuez", {})).status).toBe(404)
  })

  it("decodes Grafana's U__ escapes of label names in label values, and answers UTF-8 names", async () => {
    // `U__my__label` is my_label (`__` is `_`), `U__j_6f_b` is job.
    expect((await get("/api/v1/label/U__my__label/values")).body).toEqual({ status: "success", data: ["x"] })
    expect((await get("/api/v1/label/U__j_6f_b/values")).body.data).toEqual(["api", "node"])
    // Grafana's escape of `my.label`: a valid Prometheus 3 name with no values here (remote write takes
    // legacy names only), so an empty list, not the 400 Grafana would show as an error.
    expect(await get("/api/v1/label/U__my_2e_label/values")).toMatchObject({ status: 200, body: { status: "success", data: [] } })
    expect((await get(`/api/v1/label/${encodeURIComponent("my.label")}/values`)).body.data).toEqual([])
    // Not an escape (no closing `_`, not hex): the name as given, as Prometheus's UnescapeName does.
    expect((await get("/api/v1/label/U__my_2e/values")).status).toBe(200)
    expect((await get("/api/v1/label/U__my_zz_label/values")).status).toBe(200)
    // Only names that start with U__ are decoded.
    expect((await get("/api/v1/label/my__label/values")).body.data).toEqual([])
    // An escape that decodes to nothing is an empty name: 400, as in Prometheus.
    const empty = await get("/api/v1/label/U__/values")
    expect(empty.status).toBe(400)
    expect(empty.body).toMatchObject({ errorType: "bad_data", error: 'invalid label name: ""' })
  })
})

describe("gzip", () => {
  const rangePath = `/api/v1/query_range?${new URLSearchParams({ query: "http_requests_total", start: String(base), end: String(base + 30 * minute), step: "15" })}`

  it("compresses answers for clients that accept gzip, with Vary, and leaves small ones and other clients alone", async () => {
    const zipped = await raw("GET", rangePath, { "accept-encoding": "gzip" })
    expect(zipped.status).toBe(200)
    expect(zipped.headers["content-encoding"]).toBe("gzip")
    expect(zipped.headers.vary).toBe("Accept-Encoding")
    expect(zipped.headers["content-type"]).toMatch(/^application\/json/)
    expect(Number(zipped.headers["content-length"])).toBe(zipped.body.length)
    const plain = await raw("GET", rangePath, {})
    expect(plain.headers["content-encoding"]).toBeUndefined()
    expect(plain.headers.vary).toBe("Accept-Encoding")
    const unzipped = zlib.gunzipSync(zipped.body)
    expect(unzipped.toString()).toBe(plain.body.toString())
    expect(JSON.parse(unzipped.toString()).data.result).toHaveLength(3)
    // Several-fold smaller.
    expect(zipped.body.length * 4).toBeLessThan(plain.body.length)
    // The same through fetch, which decompresses.
    expect((await get(rangePath)).body).toEqual(JSON.parse(plain.body.toString()))
    // Under 1 KiB: as it is. Refused gzip (q=0): as it is.
    const small = await raw("GET", "/api/v1/status/buildinfo", { "accept-encoding": "gzip, deflate, br" })
    expect(small.headers["content-encoding"]).toBeUndefined()
    expect(small.headers.vary).toBe("Accept-Encoding")
    expect((await raw("GET", rangePath, { "accept-encoding": "gzip;q=0, identity" })).headers["content-encoding"]).toBeUndefined()
    expect((await raw("GET", rangePath, { "accept-encoding": "br;q=1.0, gzip;q=0.8, *;q=0.1" })).headers["content-encoding"]).toBe("gzip")
  })

  it("reads gzip-encoded form bodies", async () => {
    const body = zlib.gzipSync(new URLSearchParams({ query: "count(http_requests_total)", time: String(base + 5 * minute) }).toString())
    const res = await raw("POST", "/api/v1/query", { "content-type": "application/x-www-form-urlencoded", "content-encoding": "gzip" }, body)
    expect(res.status).toBe(200)
    expect(JSON.parse(res.body.toString()).data.result[0].value[1]).toBe("3")
    const corrupt = await raw("POST", "/api/v1/query", { "content-type": "application/x-www-form-urlencoded", "content-encoding": "gzip" }, Buffer.from("query=up"))
    expect(corrupt.status).toBe(400)
    expect(JSON.parse(corrupt.body.toString())).toMatchObject({ status: "error", errorType: "bad_data" })
    const brotli = await raw("POST", "/api/v1/query", { "content-type": "application/x-www-form-urlencoded", "content-encoding": "br" }, zlib.brotliCompressSync("query=up"))
    expect(brotli.status).toBe(415)
  })

  it("refuses a gzip bomb without inflating it: 413, and the server carries on", async () => {
    // 64 KiB on the wire, 64 MiB inflated: over the 10 MiB form limit.
    const bomb = zlib.gzipSync(Buffer.alloc(64 * 1024 * 1024, "a"), { level: 9 })
    expect(bomb.length).toBeLessThan(256 * 1024)
    const res = await raw("POST", "/api/v1/query", { "content-type": "application/x-www-form-urlencoded", "content-encoding": "gzip" }, bomb)
    expect(res.status).toBe(413)
    expect(JSON.parse(res.body.toString())).toMatchObject({ status: "error", errorType: "bad_data", error: expect.stringMatching(/over the limit of 10485760 bytes once decompressed/) })
    expect((await fetch(`${server.base}/-/healthy`)).status).toBe(200)
    expect((await get(`/api/v1/query?query=${encodeURIComponent("count(up)")}&time=${base + minute}`)).body.data.result[0].value[1]).toBe("2")
  })
})
