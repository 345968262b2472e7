/**
 * End to end: the roles over one real S3 bucket (Ceph radosgw on loopback, as `npm run s3:up` starts it).
 * A writer takes appends and remote writes; a reader follows the manifests and serves tails and PromQL,
 * and refuses writes; a compactor compacts both products under its own epoch; `opendata inspect` and
 * `opendata verify` see the result; a second writer fences the first and finds everything acknowledged.
 */
import { spawn } from "node:child_process"
import * as path from "node:path"
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3"
import WebSocket from "ws"
import { afterAll, describe, expect, it } from "vitest"
import { RemoteWrite } from "@opendata/tsdb"
import { findS3Server, ifMatchUnquoted } from "../../core/test/s3Server.ts"
import { killAll, start } from "./process.ts"

process.env["AWS_EC2_METADATA_DISABLED"] = "true"

afterAll(killAll)

const server = findS3Server()
const bucket = process.env["OPENDATA_S3_BUCKET"] ?? "opendata-test"
const prefix = `roles-${process.pid}-${Date.now().toString(36)}/`

const s3Env = (): Record<string, string> => ({
  OPENDATA_STORE: "s3",
  OPENDATA_S3_BUCKET: bucket,
  OPENDATA_S3_ENDPOINT: server!.endpoint,
  OPENDATA_S3_REGION: server!.region,
  OPENDATA_S3_ACCESS_KEY_ID: server!.accessKeyId,
  OPENDATA_S3_SECRET_ACCESS_KEY: server!.secretAccessKey,
  OPENDATA_S3_FORCE_PATH_STYLE: "true",
  OPENDATA_S3_IF_MATCH_UNQUOTED: String(ifMatchUnquoted),
  OPENDATA_S3_PREFIX: prefix,
  AWS_EC2_METADATA_DISABLED: "true"
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Polls `f` until it returns something other than undefined. */
const eventually = async <T>(f: () => Promise<T | undefined>, what: string, ms = 20_000): Promise<T> => {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await f()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
}

const append = async (base: string, key: string, values: ReadonlyArray<string>) => {
  const response = await fetch(`${base}/v1/logs/${encodeURIComponent(key)}/records`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ records: values.map((value) => ({ value })) })
  })
  return { status: response.status, body: await response.json() as { offsets?: Array<number>; error?: string; message?: string } }
}

const remoteWrite = (base: string, name: string, samples: Array<{ timestampMs: number; value: number }>) =>
  fetch(`${base}/api/v1/write`, {
    method: "POST",
    headers: { "content-type": "application/x-protobuf", "content-encoding": "snappy", "x-prometheus-remote-write-version": "0.1.0" },
    body: RemoteWrite.snappyCompress(RemoteWrite.encodeWriteRequestV1({ series: [{ labels: [["__name__", name]], samples }], metadata: [], histograms: 0, exemplars: 0 }))
  })

const instant = async (base: string, query: string, time: number) => {
  const response = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(query)}&time=${time}`)
  return await response.json() as { status: string; data: { result: Array<{ value: [number, string] }> } }
}

/** Runs `opendata <args>` (the compiled CLI) against the bucket; resolves with its exit code and output. */
const cli = (args: ReadonlyArray<string>) =>
  new Promise<{ code: number | null; output: string }>((resolve) => {
    const child = spawn(process.execPath, [path.resolve(import.meta.dirname, "../dist/cli.js"), ...args], {
      env: { ...process.env, ...s3Env() },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    child.stdout.on("data", (d) => (output += d))
    child.stderr.on("data", (d) => (output += d))
    child.on("exit", (code) => resolve({ code, output }))
  })

/** Follows a log over WebSocket from offset 0; collects the values it receives. */
const tail = (base: string, key: string) => {
  const values: Array<string> = []
  const ws = new WebSocket(`${base.replace(/^http/, "ws")}/v1/logs/${encodeURIComponent(key)}/tail?from=0`)
  ws.on("message", (data) => {
    const m = JSON.parse(data.toString()) as { type: string; records?: Array<{ value: string }> }
    if (m.type === "records") for (const r of m.records!) values.push(r.value)
  })
  const opened = new Promise<void>((resolve, reject) => {
    ws.on("open", () => resolve())
    ws.on("error", reject)
  })
  return { values, opened, close: () => ws.close() }
}

if (server === undefined) {
  if (process.env["CI"] === "true") {
    describe("roles over one S3 bucket", () => {
      it("has an S3 server to run against (CI=true)", () => {
        expect.fail("no S3 server configured: run `npm run s3:up` first, or set OPENDATA_S3_ENDPOINT")
      })
    })
  } else {
    console.warn("\n[roles] SKIPPED: no S3 server configured. Run `npm run s3:up` to run the roles end-to-end test.\n")
    describe.skip("roles over one S3 bucket (no server: run `npm run s3:up`)", () => {
      it("is skipped", () => {})
    })
  }
} else {
  describe("roles over one S3 bucket", () => {
    it("writer, reader and compactor processes share the bucket; nothing acknowledged is lost", async () => {
      const client = new S3Client({
        endpoint: server.endpoint,
        region: server.region,
        forcePathStyle: true,
        credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey }
      })
      await client.send(new CreateBucketCommand({ Bucket: bucket })).catch((e: { name?: string }) => {
        if (e.name !== "BucketAlreadyOwnedByYou" && e.name !== "BucketAlreadyExists") throw e
      })
      client.destroy()

      let writer = await start({ ...s3Env(), OPENDATA_ROLE: "writer" })
      const reader = await start({ ...s3Env(), OPENDATA_ROLE: "reader" })
      const compactor = await start({ ...s3Env(), OPENDATA_ROLE: "compactor" })
      const key = "orders/eu"
      const follow = tail(reader.base, key)
      await follow.opened

      // Rounds of writes; each writer restart flushes its memtable into a level-0 table, which the
      // compactor (not the writer) merges once there are enough of them.
      const t0 = 1_800_000_000_000
      const appended: Array<string> = []
      for (let round = 0; round < 5; round++) {
        const values = Array.from({ length: 20 }, (_, i) => `r${round}-${i}`)
        const a = await append(writer.base, key, values)
        expect(a.status, JSON.stringify(a.body)).toBe(200)
        appended.push(...values)
        const w = await remoteWrite(writer.base, "roles_test", Array.from({ length: 10 }, (_, i) => ({ timestampMs: t0 + (round * 10 + i) * 15_000, value: round * 10 + i })))
        expect(w.status).toBe(204)
        if (round < 4) {
          writer.child.kill("SIGTERM")
          expect(await writer.exited).toBe(0)
          writer = await start({ ...s3Env(), OPENDATA_ROLE: "writer" })
        }
      }

      // The reader's tail delivers every record, in order; its PromQL sees every sample.
      await eventually(async () => (follow.values.length >= appended.length ? true : undefined), "the reader's tail")
      expect(follow.values).toEqual(appended)
      follow.close()
      const lastT = (t0 + 49 * 15_000) / 1000
      const count = await eventually(async () => {
        const r = await instant(reader.base, "count_over_time(roles_test[1h])", lastT)
        const v = r.data.result[0]?.value[1]
        return v === "50" ? v : undefined
      }, "the reader's query to see all 50 samples")
      expect(count).toBe("50")

      // The reader refuses writes, naming the writer.
      const refused = await append(reader.base, key, ["nope"])
      expect(refused.status).toBe(503)
      expect(refused.body.message).toMatch(/read-only follower here: send writes to the writer/)
      expect((await remoteWrite(reader.base, "roles_test", [{ timestampMs: t0 + 3_600_000, value: 1 }])).status).toBe(503)
      // The compactor serves no product API.
      expect((await fetch(`${compactor.base}/api/v1/query?query=1`)).status).toBe(404)

      // The compactor merged the writer's level-0 tables under its own epoch.
      const inspected = await eventually(async () => {
        const r = await cli(["inspect"])
        return /compactor epoch 1/.test(r.output) && /tables: \d+ \(\d+ in level 0, [1-9]\d* sorted runs?\)/.test(r.output) ? r.output : undefined
      }, "a compaction by the compactor process")
      expect(inspected).toMatch(/eventstore\//)
      const verified = await cli(["verify"])
      expect(verified.code, verified.output).toBe(0)
      expect(verified.output).toMatch(/tsdb\/: \d+ objects, .* 0 problems/)

      // A second writer fences the first: the old one's writes fail, the new one has everything.
      const second = await start({ ...s3Env(), OPENDATA_ROLE: "writer" })
      const zombie = await append(writer.base, key, ["zombie"])
      expect(zombie.status).not.toBe(200)
      const more = await append(second.base, key, ["last"])
      expect(more.status).toBe(200)
      expect(more.body.offsets).toEqual([appended.length])
      const records = await (await fetch(`${second.base}/v1/logs/${encodeURIComponent(key)}/records?limit=1000`)).json() as { records: Array<{ value: string }> }
      expect(records.records.map((r) => r.value)).toEqual([...appended, "last"])
      const all = await instant(second.base, "count_over_time(roles_test[1h])", lastT)
      expect(all.data.result[0]?.value[1]).toBe("50")

      for (const p of [second, reader, compactor]) p.child.kill("SIGTERM")
      for (const p of [second, reader, compactor]) expect(await p.exited).toBe(0)

      // `opendata compact` on the stopped bucket: one sorted run per product, nothing lost.
      const compacted = await cli(["compact"])
      expect(compacted.code, compacted.output).toBe(0)
      for (const product of ["eventstore", "tsdb"]) {
        expect(compacted.output).toMatch(new RegExp(`^${product}/: \\d+ -> \\d+ bytes .*now 1 tables in 1 sorted runs$`, "m"))
      }
      const verifiedAfter = await cli(["verify"])
      expect(verifiedAfter.code, verifiedAfter.output).toBe(0)
      const third = await start({ ...s3Env(), OPENDATA_ROLE: "writer" })
      const after = await (await fetch(`${third.base}/v1/logs/${encodeURIComponent(key)}/records?limit=1000`)).json() as { records: Array<{ value: string }> }
      expect(after.records.map((r) => r.value)).toEqual([...appended, "last"])
      const allAfter = await instant(third.base, "count_over_time(roles_test[1h])", lastT)
      expect(allAfter.data.result[0]?.value[1]).toBe("50")
      third.child.kill("SIGTERM")
      expect(await third.exited).toBe(0)
    }, 180_000)
  })
}
