/** `/metrics`: the runtime's own metrics in Prometheus's text format, checked by promtool when present. */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
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
    if (fs.existsSync("/usr/bin/promtool")) {
      // promtool reads the exposition on stdin and exits non-zero on a format error.
      execFileSync("/usr/bin/promtool", ["check", "metrics"], { input: text })
    }
  })
})
