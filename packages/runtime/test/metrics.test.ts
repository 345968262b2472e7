/** `/metrics`: the runtime's own metrics in Prometheus's text format, checked by promtool when present. */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import WebSocket from "ws"
import { afterAll, describe, expect, it } from "vitest"
import { killAll, start } from "./process.ts"

afterAll(killAll)

describe("/metrics", () => {
  it("counts HTTP and object-store requests in Prometheus's text format", async () => {
    const server = await start({ OPENDATA_STORE: "memory" })
    await fetch(`${server.base}/v1/logs/k/records`, { method: "POST", body: JSON.stringify({ records: [{ value: "a" }] }) })
    await fetch(`${server.base}/api/v1/labels`)
    const res = await fetch(`${server.base}/metrics`)
    expect(res.status).toBe(200)
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/)
    const text = await res.text()
    expect(text).toMatch(/opendata_http_request_duration_seconds_count\{route="\/v1\/logs\/\{key\}\/records",method="POST",code="200"\} 1/)
    expect(text).toMatch(/opendata_http_request_duration_seconds_count\{route="\/api\/v1\/labels",method="GET",code="200"\} 1/)
    expect(text).toMatch(/opendata_object_store_request_duration_seconds_count\{operation="put_if_absent",outcome="ok"\} \d+/)
    // Each product's Db: WAL write latency, queue depth, compaction backlog, cache hit ratio.
    expect(text).toMatch(/opendata_db_wal_write_duration_seconds_count\{db="eventstore"\} [1-9]\d*/)
    expect(text).toMatch(/opendata_db_wal_write_duration_seconds_bucket\{db="tsdb",le="\+Inf"\} \d+/)
    expect(text).toMatch(/opendata_db_write_queue_depth\{db="eventstore"\} 0/)
    expect(text).toMatch(/opendata_db_l0_tables\{db="tsdb"\} \d+/)
    expect(text).toMatch(/opendata_db_cache_hit_ratio\{db="eventstore",cache="block"\} /)
    expect(text).toMatch(/opendata_http_requests_in_flight\{route="\/metrics"\} 1/)
    if (fs.existsSync("/usr/bin/promtool")) {
      // promtool reads the exposition on stdin and exits non-zero on a format error.
      execFileSync("/usr/bin/promtool", ["check", "metrics"], { input: text })
    }
  })

  it("keeps its label values bounded whatever paths and methods clients send, and logs unknown paths only at debug", async () => {
    const server = await start({ OPENDATA_STORE: "memory" })
    const net = await import("node:net")
    // Methods Node accepts but no route serves, and paths no route serves: each set shares one label value.
    for (const method of ["PROPFIND", "MKCOL", "LOCK", "PURGE", "SEARCH"]) await fetch(`${server.base}/metrics`, { method })
    for (let i = 0; i < 30; i++) await fetch(`${server.base}/${i === 0 ? "api/v1" : "no/such"}/path-${i}?x=${i}`)
    // CONNECT gets an answer (405), not a dropped connection.
    const connect = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(server.port, "127.0.0.1", () => socket.write("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"))
      let got = ""
      socket.on("data", (d) => (got += d.toString()))
      socket.on("end", () => resolve(got))
      socket.on("error", reject)
    })
    expect(connect).toMatch(/^HTTP\/1\.1 405 /)
    const text = await (await fetch(`${server.base}/metrics`)).text()
    const series = text.split("\n").filter((l) => l.startsWith("opendata_http_request_duration_seconds_count"))
    expect(series.filter((l) => l.includes('route="other"'))).toEqual([
      'opendata_http_request_duration_seconds_count{route="other",method="GET",code="404"} 30'
    ])
    expect(series.filter((l) => l.includes('method="other"'))).toEqual([
      'opendata_http_request_duration_seconds_count{route="/metrics",method="other",code="404"} 5'
    ])
    expect(server.output()).not.toMatch(/path-\d/)
  })

  it("shows open WebSocket tails as requests in flight on the tail route", async () => {
    const server = await start({ OPENDATA_STORE: "memory" })
    const tails = await Promise.all([1, 2].map(() =>
      new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(`${server.base.replace(/^http/, "ws")}/v1/logs/k/tail`)
        ws.on("open", () => resolve(ws))
        ws.on("error", reject)
      })))
    const open = await (await fetch(`${server.base}/metrics`)).text()
    expect(open).toMatch(/opendata_http_requests_in_flight\{route="\/v1\/logs\/\{key\}\/tail"\} 2/)
    for (const ws of tails) ws.close()
    for (let i = 0; i < 100; i++) {
      const text = await (await fetch(`${server.base}/metrics`)).text()
      if (/opendata_http_requests_in_flight\{route="\/v1\/logs\/\{key\}\/tail"\} 0/.test(text)) return
      await new Promise((r) => setTimeout(r, 20))
    }
    expect.fail("the tails did not leave the in-flight gauge")
  })
})
