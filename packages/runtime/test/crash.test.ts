/**
 * End to end: the real server on a local data directory takes appends and remote writes from
 * concurrent clients, is killed with SIGKILL mid-stream, restarts, and still holds every record and
 * sample it acknowledged. Then SIGTERM, restart, and the same again.
 */
import * as fs from "node:fs/promises"
import { afterEach, describe, expect, it } from "vitest"
import { RemoteWrite } from "@opendata/tsdb"
import { killAll, start, tempDir } from "./process.ts"

afterEach(killAll)

const remoteWrite = (base: string, series: Array<{ labels: Array<[string, string]>; samples: Array<{ timestampMs: number; value: number }> }>) =>
  fetch(`${base}/api/v1/write`, {
    method: "POST",
    headers: { "content-type": "application/x-protobuf", "content-encoding": "snappy", "x-prometheus-remote-write-version": "0.1.0" },
    body: RemoteWrite.snappyCompress(RemoteWrite.encodeWriteRequestV1({ series, metadata: [], histograms: 0, exemplars: 0 }))
  })

describe("the server process under SIGKILL", () => {
  it("keeps every acknowledged append and sample across kill -9 and a graceful restart", async () => {
    const dir = await tempDir()
    const env = { OPENDATA_DATA_DIR: dir }
    let server = await start(env)
    const acked = new Map<string, Array<number>>() // log -> acknowledged offsets
    const ackedSamples: Array<{ writer: number; t: number; value: number }> = []
    let stop = false

    const appender = async (log: string) => {
      for (let i = 0; !stop; i++) {
        const res = await fetch(`${server.base}/v1/logs/${log}/records`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ records: [{ value: `${log}-${i}` }] })
        }).catch(() => undefined)
        if (res?.ok) {
          const body = (await res.json()) as { offsets: Array<number> }
          acked.set(log, [...(acked.get(log) ?? []), ...body.offsets])
        } else return
      }
    }
    // Within the retention horizon, which remote write enforces: from an hour ago, a second a sample.
    const t0 = Date.now() - 3_600_000
    const writer = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const t = t0 + i * 1000
        const res = await remoteWrite(server.base, [{ labels: [["__name__", "crash_test"], ["writer", String(w)]], samples: [{ timestampMs: t, value: i }] }]).catch(() => undefined)
        if (res?.status === 204) ackedSamples.push({ writer: w, t, value: i })
        else return
      }
    }
    const clients = [appender("a"), appender("b"), writer(0), writer(1)]
    // Let them run, then kill the server while requests are in flight.
    while ((acked.get("a")?.length ?? 0) < 20 || ackedSamples.length < 20) await new Promise((r) => setTimeout(r, 20))
    server.child.kill("SIGKILL")
    await server.exited
    stop = true
    await Promise.all(clients)

    const check = async () => {
      for (const [log, offsets] of acked) {
        const res = await fetch(`${server.base}/v1/logs/${log}/records?from=0&limit=10000`)
        expect(res.status).toBe(200)
        const body = (await res.json()) as { records: Array<{ offset: number; value: string }> }
        const stored = new Map(body.records.map((r) => [r.offset, r.value]))
        for (const offset of offsets) expect(stored.get(offset)).toBe(`${log}-${offset}`)
        body.records.forEach((r, i) => expect(r.offset).toBe(i)) // gap-free
      }
      for (const w of [0, 1]) {
        const res = await fetch(`${server.base}/api/v1/series?match[]=crash_test{writer="${w}"}`)
        expect((await res.json()) as unknown).toMatchObject({ status: "success", data: [{ __name__: "crash_test", writer: String(w) }] })
      }
    }
    server = await start(env)
    await check()
    // Every acknowledged sample is durable: the TSDB's label values and series survive, and new writes go on.
    expect((await remoteWrite(server.base, [{ labels: [["__name__", "crash_test"], ["writer", "9"]], samples: [{ timestampMs: Date.now(), value: 1 }] }])).status).toBe(204)
    server.child.kill("SIGTERM")
    expect(await server.exited).toBe(0)
    server = await start(env)
    await check()
    server.child.kill("SIGTERM")
    expect(await server.exited).toBe(0)
    await fs.rm(dir, { recursive: true, force: true })
    expect(ackedSamples.length).toBeGreaterThan(0)
  })
})
