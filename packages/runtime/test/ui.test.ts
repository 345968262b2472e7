/**
 * The web UI as HTTP serves it, and the status it reads, against the real server process: `/` redirects to
 * `/query`; each page answers the app's document, uncached, with a content security policy; the assets it
 * names are served with a year-long immutable cache, gzipped when asked; unknown assets 404; and
 * `GET /v1/status` reports build, role, configuration, storage per product and the EventStore's totals.
 */
import * as http from "node:http"
import { gunzipSync } from "node:zlib"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { RemoteWrite } from "@opendata/tsdb"
import { killAll, type ServerProcess, start } from "./process.ts"

let server: ServerProcess

beforeAll(async () => {
  server = await start({ OPENDATA_STORE: "memory" })
})
afterAll(killAll)

/** A GET that neither follows redirects nor decompresses: what the server sent. */
const raw = (p: string, headers: Record<string, string> = {}) =>
  new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
    http.get({ host: "127.0.0.1", port: server.port, path: p, headers }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
    }).on("error", reject)
  })

describe("the web UI", () => {
  it("redirects / to the Query page", async () => {
    const answer = await raw("/")
    expect(answer.status).toBe(302)
    expect(answer.headers.location).toBe("/query")
  })

  it("answers each page with the app's document, uncached, under a content security policy", async () => {
    for (const p of ["/query", "/logs", "/status", "/query?expr=up&range=1h&tab=graph"]) {
      const answer = await raw(p)
      expect(answer.status, p).toBe(200)
      expect(answer.headers["content-type"], p).toMatch(/^text\/html/)
      expect(answer.headers["cache-control"], p).toBe("no-cache")
      expect(answer.headers["content-security-policy"], p).toMatch(/default-src 'self'/)
      expect(String(answer.body), p).toMatch(/<script type="module" src="\/assets\/app-[0-9a-f]{12}\.js"><\/script>/)
    }
  })

  it("serves the assets it names, cached for a year, gzipped when the client accepts it", async () => {
    const html = String((await raw("/query")).body)
    const names = [...html.matchAll(/"\/assets\/(app-[0-9a-f]{12}\.(?:js|css))"/g)].map((m) => m[1]!)
    expect(names).toHaveLength(2)
    for (const name of names) {
      const plain = await raw(`/assets/${name}`)
      expect(plain.status, name).toBe(200)
      expect(plain.headers["cache-control"], name).toBe("public, max-age=31536000, immutable")
      expect(plain.headers["content-type"], name).toMatch(name.endsWith(".js") ? /^text\/javascript/ : /^text\/css/)
      expect(plain.headers["content-encoding"], name).toBeUndefined()
      const gzipped = await raw(`/assets/${name}`, { "accept-encoding": "gzip, br" })
      expect(gzipped.headers["content-encoding"], name).toBe("gzip")
      expect(gzipped.body.length, name).toBeLessThan(plain.body.length)
      expect(gunzipSync(gzipped.body).equals(plain.body), name).toBe(true)
    }
    expect((await raw("/assets/app-000000000000.js")).status).toBe(404)
    expect((await raw("/nope")).status).toBe(404)
  })
})

describe("GET /v1/status", () => {
  it("reports build, role, configuration, storage per product and the EventStore's totals", async () => {
    const append = await fetch(`${server.base}/v1/logs/orders%2F1/records`, {
      method: "POST",
      body: JSON.stringify({ records: [{ value: "created" }, { value: "paid" }] })
    })
    expect(append.status).toBe(200)
    const write = await fetch(`${server.base}/api/v1/write`, {
      method: "POST",
      headers: { "content-type": "application/x-protobuf", "content-encoding": "snappy" },
      body: RemoteWrite.snappyCompress(RemoteWrite.encodeWriteRequestV1({
        series: [{ labels: [["__name__", "up"], ["job", "api"]], samples: [{ timestampMs: Date.now(), value: 1 }] }],
        metadata: [],
        histograms: 0,
        exemplars: 0
      }))
    })
    expect(write.status).toBe(204)
    const status = (await (await fetch(`${server.base}/v1/status`)).json()) as any
    expect(status).toMatchObject({
      build: { version: expect.any(String), node: process.versions.node },
      role: "all",
      config: { store: "memory", role: "all", "auth.tokens": "none" },
      counters: { eventStoreAppends: 1, eventStoreRecordsAppended: 2, tsdbSamplesIngested: 1, tsdbSeriesCreated: 1 },
      eventStore: { logs: 1, records: 2, bytes: "createdpaid".length, complete: true }
    })
    expect(status.uptimeSeconds).toBeGreaterThanOrEqual(0)
    // No transforms configured: the Status page lists none.
    expect(await (await fetch(`${server.base}/v1/transforms`)).json()).toEqual({ transforms: [] })
    expect(Object.keys(status.storage).sort()).toEqual(["eventstore", "tsdb"])
    for (const product of ["eventstore", "tsdb"]) {
      expect(status.storage[product]).toMatchObject({
        manifestVersion: expect.any(Number),
        writerEpoch: 1,
        walObjectsWritten: expect.any(Number),
        tables: expect.any(Number),
        tableBytes: expect.any(Number),
        compactionBacklog: expect.any(Number),
        blockCache: { hits: expect.any(Number), misses: expect.any(Number) }
      })
      expect(status.storage[product].walObjectsWritten, product).toBeGreaterThan(0)
    }
  })
})
