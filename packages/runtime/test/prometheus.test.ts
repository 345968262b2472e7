/**
 * End to end against a real Prometheus (Debian's 2.42, `/usr/bin/prometheus`): it scrapes itself every second
 * and remote-writes (protobuf + snappy, plus its metadata-only requests) into the real server process
 * (`dist/main.js`, memory store). Once the data has arrived, our Prometheus API must answer what
 * Prometheus's own API answers for the same series, label names, label values and metadata; then bad
 * input gets Prometheus's error envelope, malformed remote-write bodies a 4xx, and both processes stop on
 * SIGTERM (ours with exit code 0).
 *
 * Without Prometheus installed the suite is skipped with a warning, except under `CI=true`, where it fails.
 */
import * as fsp from "node:fs/promises"
import * as http from "node:http"
import { RemoteWrite } from "@opendata/tsdb"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { killAll, type ServerProcess, start, tempDir } from "./process.ts"
import { eventually as eventuallyWithin, getJson, prometheusAvailable, type PrometheusProcess, requirePrometheus, startPrometheus } from "./prometheusProcess.ts"

requirePrometheus("prometheus.test.ts")
const available = prometheusAvailable

/** How long to wait for data to travel scrape -> Prometheus WAL -> remote write -> us. Generous: no timing is asserted. */
const arrivalDeadlineMs = 90_000

/** Polls `probe` until it returns a value, or fails at the (generous) arrival deadline. */
const eventually = <A>(what: string, probe: () => Promise<A | undefined>, deadlineMs = arrivalDeadlineMs) => eventuallyWithin(what, probe, deadlineMs)

/** Series (label objects) in a canonical order, to compare two answers. */
const sortSeries = (series: ReadonlyArray<Record<string, string>>) =>
  series.map((s) => JSON.stringify(Object.fromEntries(Object.entries(s).sort(([a], [b]) => (a < b ? -1 : 1))))).sort()

describe.skipIf(!available)("a real Prometheus remote-writing into the server", () => {
  let dir = ""
  let ours: ServerProcess
  let prom: PrometheusProcess | undefined
  const api = (p: string) => `${ours.base}/api/v1/${p}`
  const promApi = (p: string) => `${prom!.base}/api/v1/${p}`
  const diagnostics = () => `\n--- prometheus output (tail) ---\n${prom?.output().slice(-4000) ?? ""}\n--- our output (tail) ---\n${ours?.output().slice(-4000)}`

  /** Both answers for the same API path: ours and Prometheus's. */
  const both = async (p: string, init?: RequestInit) => {
    const [a, b] = await Promise.all([getJson(api(p), init), getJson(promApi(p), init)])
    return { ours: a, prom: b }
  }

  beforeAll(async () => {
    dir = await tempDir()
    ours = await start({ OPENDATA_STORE: "memory" })
    prom = await startPrometheus(dir, (port) => [
      "global:",
      "  scrape_interval: 1s",
      "  evaluation_interval: 1s",
      "scrape_configs:",
      "  - job_name: prometheus",
      "    static_configs:",
      `      - targets: ["127.0.0.1:${port}"]`,
      "remote_write:",
      `  - url: ${ours.base}/api/v1/write`,
      "    queue_config:",
      "      batch_send_deadline: 1s",
      "    metadata_config:",
      "      send: true",
      "      send_interval: 2s"
    ], [], diagnostics)
    // The data has arrived once our API has the series (scraped, then remote-written) Prometheus has.
    await eventually("the scraped series to arrive by remote write", async () => {
      for (const metric of ["up", "prometheus_build_info", "prometheus_http_requests_total"]) {
        const r = await getJson(api(`series?match[]=${metric}`))
        if (r.status !== 200 || r.body.data.length === 0) return undefined
      }
      return true
    }).catch((e) => {
      throw new Error(`${(e as Error).message}${diagnostics()}`)
    })
  })

  afterAll(async () => {
    // Prometheus first, while we still accept its last remote-write flush; then us.
    await prom?.stop()
    killAll()
    if (dir !== "") await fsp.rm(dir, { recursive: true, force: true })
  })

  it("has the same series as Prometheus for match[]=up and match[]=prometheus_build_info", async () => {
    for (const match of ["up", "prometheus_build_info"]) {
      const r = await both(`series?match[]=${match}`)
      expect(r.ours.status).toBe(200)
      expect(r.prom.status).toBe(200)
      expect(r.ours.body.status).toBe("success")
      expect(r.prom.body.data.length).toBeGreaterThan(0)
      expect(sortSeries(r.ours.body.data)).toEqual(sortSeries(r.prom.body.data))
    }
    // Spot check the content, not just the agreement.
    const up = await getJson(api("series?match[]=up"))
    expect(up.body.data).toContainEqual(expect.objectContaining({ __name__: "up", job: "prometheus" }))
  })

  it("eventually has every prometheus_http_requests_total series Prometheus has", async () => {
    // Our queries to Prometheus's API create new handler series there: they reach us a scrape later.
    let last: { ours: Array<string>; prom: Array<string> } = { ours: [], prom: [] }
    await eventually("the same prometheus_http_requests_total series", async () => {
      const r = await both(`series?match[]=prometheus_http_requests_total`)
      last = { ours: sortSeries(r.ours.body.data), prom: sortSeries(r.prom.body.data) }
      return JSON.stringify(last.ours) === JSON.stringify(last.prom) ? true : undefined
    }).catch(() => {
      expect(last.ours).toEqual(last.prom)
    })
  })

  it("has the same label values and label names as Prometheus", async () => {
    const job = await both("label/job/values")
    expect(job.ours.status).toBe(200)
    expect(job.ours.body.data).toEqual(job.prom.body.data)
    expect(job.ours.body.data).toContain("prometheus")

    const labels = await both("labels?match[]=prometheus_build_info")
    expect(labels.ours.status).toBe(200)
    expect(labels.ours.body.data).toEqual(labels.prom.body.data)
    expect(labels.ours.body.data).toEqual(expect.arrayContaining(["__name__", "instance", "job", "version", "goversion"]))

    // Metric names: ours may lag Prometheus by a scrape, so ours must be a subset holding the ones checked.
    const names = await both("label/__name__/values")
    expect(names.ours.status).toBe(200)
    for (const name of ["up", "prometheus_build_info", "prometheus_http_requests_total", "go_goroutines"]) {
      expect(names.prom.body.data).toContain(name)
      expect(names.ours.body.data).toContain(name)
    }
    const prom = new Set<string>(names.prom.body.data)
    expect((names.ours.body.data as Array<string>).filter((n) => !prom.has(n))).toEqual([])
    expect(names.ours.body.data).toEqual([...names.ours.body.data].sort())
  })

  it("has the metadata Prometheus sent (type and help of prometheus_http_requests_total)", async () => {
    // Prometheus 2.42 sends metadata in requests of their own (no samples), every metadata send_interval.
    const metric = "prometheus_http_requests_total"
    const ours = await eventually("metadata to arrive", async () => {
      const r = await getJson(api(`metadata?metric=${metric}`))
      return r.status === 200 && r.body.data[metric] !== undefined ? r.body.data[metric] : undefined
    })
    expect(ours).toEqual([{ type: "counter", help: "Counter of HTTP requests.", unit: "" }])
    const prom = await getJson(promApi(`metadata?metric=${metric}`))
    expect(ours).toEqual(prom.body.data[metric])
    // Every metric's metadata: the same as Prometheus's, once the next metadata send has arrived.
    let last: { ours: unknown; prom: unknown } = { ours: undefined, prom: undefined }
    await eventually("the same metadata for every metric", async () => {
      const r = await both("metadata")
      last = { ours: r.ours.body.data, prom: r.prom.body.data }
      return JSON.stringify(Object.entries(last.ours as object).sort()) === JSON.stringify(Object.entries(last.prom as object).sort()) ? true : undefined
    }).catch(() => {
      expect(last.ours).toEqual(last.prom)
    })
  })

  it("answers POSTed forms (application/x-www-form-urlencoded) as Prometheus does", async () => {
    const form = (fields: Record<string, string>): RequestInit => ({
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(fields).toString()
    })
    const series = await both("series", form({ "match[]": "prometheus_build_info" }))
    expect(series.ours.status).toBe(200)
    expect(series.prom.status).toBe(200)
    expect(sortSeries(series.ours.body.data)).toEqual(sortSeries(series.prom.body.data))
    expect(series.ours.body.data.length).toBe(1)

    const labels = await both("labels", form({ "match[]": "prometheus_build_info" }))
    expect(labels.ours.status).toBe(200)
    expect(labels.ours.body.data).toEqual(labels.prom.body.data)

    // A form and the query string together: both sets of match[] count.
    const merged = await both("series?match[]=up", form({ "match[]": "prometheus_build_info" }))
    expect(merged.ours.status).toBe(200)
    expect(sortSeries(merged.ours.body.data)).toEqual(sortSeries(merged.prom.body.data))
    expect(merged.ours.body.data.length).toBe(2)
  })

  it("answers a bad match[] with Prometheus's error envelope (400, bad_data)", async () => {
    for (const p of ["series?match[]=up{", "labels?match[]=up{", "label/job/values?match[]=up{", `series?match[]=${encodeURIComponent("{job=~\".*\"}")}`]) {
      const r = await both(p)
      expect(r.prom.status, p).toBe(400)
      expect(r.ours.status, p).toBe(400)
      for (const body of [r.ours.body, r.prom.body]) {
        expect(body).toEqual({ status: "error", errorType: "bad_data", error: expect.any(String) })
      }
      // Prometheus words the messages itself (its series endpoint names the parameter, labels does not).
      expect(r.ours.body.error).toMatch(/^invalid parameter "match\[\]": ./)
    }
    const none = await both("series")
    expect(none.ours.status).toBe(400)
    expect(none.ours.body).toEqual(none.prom.body)
    // Prometheus 3 takes any UTF-8 label name here (this Prometheus, 2.42, refuses `1bad` with 400): as
    // Prometheus 3, an empty list.
    const utf8Name = await both("label/1bad/values")
    expect(utf8Name.ours.status).toBe(200)
    expect(utf8Name.ours.body).toEqual({ status: "success", data: [] })
  })

  it("refuses malformed, non-snappy and oversized remote-write bodies with a 4xx and stays healthy", async () => {
    const write = (body: Uint8Array, headers: Record<string, string> = {}) =>
      fetch(api("write"), {
        method: "POST",
        headers: {
          "content-type": "application/x-protobuf",
          "content-encoding": "snappy",
          "x-prometheus-remote-write-version": "0.1.0",
          ...headers
        },
        body
      }).then(async (r) => ({ status: r.status, text: await r.text() }))
    const sample = { labels: [["__name__", "e2e_probe"], ["job", "e2e"]] as Array<[string, string]>, samples: [{ timestampMs: Date.now(), value: 1 }] }
    const protobuf = RemoteWrite.encodeWriteRequestV1({ series: [sample], metadata: [], histograms: 0, exemplars: 0 })

    // Valid snappy around bytes that are not a WriteRequest.
    const garbage = RemoteWrite.snappyCompress(Uint8Array.of(0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02))
    expect((await write(garbage)).status).toBe(400)
    // A protobuf body sent uncompressed (not snappy) while claiming snappy.
    expect((await write(protobuf)).status).toBe(400)
    // A truncated snappy block.
    const compressed = RemoteWrite.snappyCompress(protobuf)
    expect((await write(compressed.subarray(0, compressed.length - 3))).status).toBe(400)
    // Another encoding or content type than remote write's.
    expect((await write(compressed, { "content-encoding": "gzip" })).status).toBe(415)
    expect((await write(compressed, { "content-type": "application/json" })).status).toBe(415)
    // A snappy header announcing more than the decompressed-size limit (a decompression bomb).
    const bomb = Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x02, 0x00, 0x61) // announces 512 MiB
    const bombAnswer = await write(bomb)
    expect(bombAnswer.status, bombAnswer.text).toBe(413)
    // A body over the request-size limit.
    const oversized = new Uint8Array(33 * 1024 * 1024)
    const oversizedAnswer = await write(oversized)
    expect(oversizedAnswer.status, oversizedAnswer.text).toBe(413)

    // Still healthy, and a well-formed request right after is stored.
    expect((await fetch(`${ours.base}/-/healthy`)).status).toBe(200)
    expect((await write(compressed)).status).toBe(204)
    const stored = await getJson(api("series?match[]=e2e_probe"))
    expect(stored.body.data).toEqual([{ __name__: "e2e_probe", job: "e2e" }])
    // Nothing of the refused bodies was stored.
    const names = await getJson(api("label/__name__/values"))
    expect(names.body.data.filter((n: string) => n.startsWith("e2e_"))).toEqual(["e2e_probe"])
  })

  it("took every sample and metadata entry Prometheus sent (its own remote-write counters)", async () => {
    // Live values from its /metrics (a PromQL query would see them only a scrape later): the sum over the
    // remote-write queues of each counter.
    const value = async (metric: string) => {
      const text = await (await fetch(`${prom!.base}/metrics`)).text()
      const lines = text.split("\n").filter((l) => l.startsWith(`${metric}{`) || l.startsWith(`${metric} `))
      expect(lines.length, `${metric} in Prometheus's /metrics`).toBeGreaterThan(0)
      return lines.reduce((n, l) => n + Number(l.slice(l.lastIndexOf(" ") + 1)), 0)
    }
    await eventually("Prometheus to count sent samples and metadata", async () =>
      (await value("prometheus_remote_storage_samples_total")) > 0 && (await value("prometheus_remote_storage_metadata_total")) > 0 ? true : undefined)
    expect(await value("prometheus_remote_storage_samples_failed_total")).toBe(0)
    expect(await value("prometheus_remote_storage_metadata_failed_total")).toBe(0)
    expect(await value("prometheus_remote_storage_samples_dropped_total")).toBe(0)
  })

  it("both stop on SIGTERM; ours exits 0", async () => {
    prom!.child.kill("SIGTERM")
    expect(await prom!.exited).toBe(0)
    expect(prom!.output()).not.toMatch(/level=error/)
    // Prometheus's remote-write queue did not have to drop anything it sent us.
    expect(prom!.output()).not.toMatch(/non-recoverable error/)
    ours.child.kill("SIGTERM")
    expect(await ours.exited).toBe(0)
  }, 60_000)
})

describe.skipIf(!available)("a real Prometheus remote-writing with a bearer token (remote_write.authorization)", () => {
  const writeToken = "prometheus-remote-write-5c1e9a7b3d"
  const readToken = "grafana-read-only-8f2d4b6a0c"
  let dir = ""
  let ours: ServerProcess
  let prom: PrometheusProcess | undefined
  const diagnostics = () => `\n--- prometheus output (tail) ---\n${prom?.output().slice(-4000) ?? ""}\n--- our output (tail) ---\n${ours?.output().slice(-4000)}`
  const read = (p: string) => getJson(`${ours.base}/api/v1/${p}`, { headers: { authorization: `Bearer ${readToken}` } })
  /** The sum over the series of `metric{remote_name="<queue>"}` in Prometheus's own /metrics. */
  const queueCounter = async (metric: string, queue: string) => {
    const text = await (await fetch(`${prom!.base}/metrics`)).text()
    return text.split("\n").filter((l) => l.startsWith(`${metric}{`) && l.includes(`remote_name="${queue}"`))
      .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(" ") + 1)), 0)
  }

  beforeAll(async () => {
    dir = await tempDir()
    ours = await start({
      OPENDATA_STORE: "memory",
      OPENDATA_AUTH_TOKENS: JSON.stringify([
        { name: "prometheus", token: writeToken, scope: "write" },
        { name: "grafana", token: readToken, scope: "read" }
      ])
    })
    // Two queues to us, their samples labelled by queue: one with our token, one with a wrong one.
    const queue = (name: string, credentials: string) => [
      `  - name: ${name}`,
      `    url: ${ours.base}/api/v1/write`,
      "    authorization:",
      "      type: Bearer",
      `      credentials: ${credentials}`,
      "    write_relabel_configs:",
      "      - target_label: via",
      `        replacement: ${name}`,
      "    queue_config:",
      "      batch_send_deadline: 1s"
    ]
    prom = await startPrometheus(dir, (port) => [
      "global:",
      "  scrape_interval: 1s",
      "scrape_configs:",
      "  - job_name: prometheus",
      "    static_configs:",
      `      - targets: ["127.0.0.1:${port}"]`,
      "remote_write:",
      ...queue("right", writeToken),
      ...queue("wrong", "not-our-token-0123456789")
    ], [], diagnostics)
  })

  afterAll(async () => {
    await prom?.stop()
    killAll()
    if (dir !== "") await fsp.rm(dir, { recursive: true, force: true })
  })

  it("takes the samples sent with our token, refuses those sent with a wrong one with 401", async () => {
    // The right queue's samples arrive...
    await eventually("the right queue's samples to arrive", async () => {
      const r = await read(`series?match[]=${encodeURIComponent("up{via=\"right\"}")}`)
      return r.status === 200 && r.body.data.length > 0 ? true : undefined
    }).catch((e) => {
      throw new Error(`${(e as Error).message}${diagnostics()}`)
    })
    const up = await read(`query?query=${encodeURIComponent("up{via=\"right\"}")}`)
    expect(up.body.data.result).toEqual([expect.objectContaining({ metric: { __name__: "up", instance: expect.any(String), job: "prometheus", via: "right" } })])
    // ...the wrong queue's are refused: Prometheus counts them failed, having been answered 401 by us.
    await eventually("the wrong queue's samples to fail", async () => (await queueCounter("prometheus_remote_storage_samples_failed_total", "wrong")) > 0 ? true : undefined)
      .catch((e) => {
        throw new Error(`${(e as Error).message}${diagnostics()}`)
      })
    expect(prom!.output()).toMatch(/remote_name=wrong .*server returned HTTP status 401 Unauthorized/)
    expect(prom!.output()).not.toMatch(/remote_name=right .*server returned HTTP status/)
    expect(await queueCounter("prometheus_remote_storage_samples_failed_total", "right")).toBe(0)
    expect((await read(`series?match[]=${encodeURIComponent("{via=\"wrong\"}")}`)).body.data).toEqual([])
    // And without a token, our API answers nothing.
    const anonymous = await getJson(`${ours.base}/api/v1/series?match[]=up`)
    expect(anonymous.status).toBe(401)
    expect(anonymous.body).toEqual({ status: "error", errorType: "unauthorized", error: expect.any(String) })
  })

  it("both stop on SIGTERM; ours exits 0", async () => {
    prom!.child.kill("SIGTERM")
    expect(await prom!.exited).toBe(0)
    ours.child.kill("SIGTERM")
    expect(await ours.exited).toBe(0)
    expect(ours.output()).not.toContain(writeToken)
  }, 60_000)
})

describe.skipIf(!available)("a real Prometheus forwarding exemplars (--enable-feature=exemplar-storage, send_exemplars)", () => {
  let dir = ""
  let ours: ServerProcess
  let prom: PrometheusProcess | undefined
  let target: http.Server
  let scrapes = 0
  const diagnostics = () => `\n--- prometheus output (tail) ---\n${prom?.output().slice(-4000) ?? ""}\n--- our output (tail) ---\n${ours?.output().slice(-4000)}`

  beforeAll(async () => {
    dir = await tempDir()
    ours = await start({ OPENDATA_STORE: "memory" })
    // A target exposing OpenMetrics with exemplars (a counter and a histogram), a new exemplar per scrape.
    target = http.createServer((_request, response) => {
      scrapes += 1
      const now = (Date.now() / 1000).toFixed(3)
      const body = [
        "# TYPE checkout_requests counter",
        `checkout_requests_total{path="/pay"} ${scrapes * 3} # {trace_id="trace-${scrapes}",span_id="span-${scrapes}"} 1 ${now}`,
        "# TYPE checkout_latency_seconds histogram",
        `checkout_latency_seconds_bucket{le="0.1"} ${scrapes}`,
        `checkout_latency_seconds_bucket{le="1.0"} ${scrapes * 2} # {trace_id="slow-${scrapes}"} 0.${scrapes % 10}5 ${now}`,
        `checkout_latency_seconds_bucket{le="+Inf"} ${scrapes * 2}`,
        `checkout_latency_seconds_sum ${scrapes}`,
        `checkout_latency_seconds_count ${scrapes * 2}`,
        "# EOF",
        ""
      ].join("\n")
      response.writeHead(200, { "content-type": "application/openmetrics-text; version=1.0.0; charset=utf-8" })
      response.end(body)
    })
    await new Promise<void>((resolve) => target.listen(0, "127.0.0.1", resolve))
    const targetPort = (target.address() as { port: number }).port
    prom = await startPrometheus(dir, () => [
      "global:",
      "  scrape_interval: 1s",
      "scrape_configs:",
      "  - job_name: shop",
      "    static_configs:",
      `      - targets: ["127.0.0.1:${targetPort}"]`,
      "remote_write:",
      `  - url: ${ours.base}/api/v1/write`,
      "    send_exemplars: true",
      "    queue_config:",
      "      batch_send_deadline: 1s"
    ], ["--enable-feature=exemplar-storage"], diagnostics)
  })

  afterAll(async () => {
    await prom?.stop()
    killAll()
    target?.close()
    if (dir !== "") await fsp.rm(dir, { recursive: true, force: true })
  })

  interface SeriesExemplars {
    readonly seriesLabels: Record<string, string>
    readonly exemplars: ReadonlyArray<{ readonly labels: Record<string, string>; readonly value: string; readonly timestamp: number }>
  }
  const exemplarsOf = async (base: string, query: string, start: number, end: number): Promise<Array<SeriesExemplars>> => {
    const r = await getJson(`${base}/api/v1/query_exemplars?query=${encodeURIComponent(query)}&start=${start}&end=${end}`)
    if (r.status !== 200 || r.body.status !== "success") throw new Error(`query_exemplars answered ${r.status}: ${JSON.stringify(r.body)}`)
    return r.body.data as Array<SeriesExemplars>
  }
  const key = (s: SeriesExemplars) => JSON.stringify(Object.entries(s.seriesLabels).sort())

  it("answers query_exemplars with the exemplars Prometheus has, as Prometheus answers it", async () => {
    const start = Date.now() / 1000 - 600
    const query = `checkout_requests_total or checkout_latency_seconds_bucket{le="1.0"}`
    // Wait until at least three exemplars of each series have come through.
    const got = await eventually("exemplars to arrive by remote write", async () => {
      const data = await exemplarsOf(ours.base, query, start, Date.now() / 1000 + 60)
      return data.length === 2 && data.every((s) => s.exemplars.length >= 3) ? data : undefined
    }).catch((e) => {
      throw new Error(`${(e as Error).message}${diagnostics()}`)
    })
    const end = Math.max(...got.flatMap((s) => s.exemplars.map((e) => e.timestamp)))
    // Over the same range (up to our newest), Prometheus's answer is ours: series, labels, values, times.
    const ourAnswer = await exemplarsOf(ours.base, query, start, end)
    const theirs = await exemplarsOf(prom!.base, query, start, end)
    expect(ourAnswer.map(key).sort()).toEqual(theirs.map(key).sort())
    for (const s of ourAnswer) {
      const their = theirs.find((t) => key(t) === key(s))!
      expect(s.exemplars).toEqual(their.exemplars)
    }
    expect(ourAnswer.find((s) => s.seriesLabels["__name__"] === "checkout_requests_total")?.exemplars[0]?.labels).toMatchObject({
      trace_id: expect.stringMatching(/^trace-\d+$/),
      span_id: expect.stringMatching(/^span-\d+$/)
    })
    // A query whose selectors match nothing has none; a bad query is Prometheus's 400.
    expect(await exemplarsOf(ours.base, "nothing_here", start, end)).toEqual([])
    const bad = await getJson(`${ours.base}/api/v1/query_exemplars?query=${encodeURIComponent("sum(")}`)
    expect(bad.status).toBe(400)
    expect(bad.body.errorType).toBe("bad_data")
  })
})
