/**
 * Transforms in the real server process, configured in `opendata.yaml` with their modules beside it, on a
 * local data directory: producers append while a stateless and a stateful transform run; the server is
 * killed with SIGKILL mid-stream and restarted, and every input record's outputs then exist exactly once,
 * in input order per input log (by their `opendata-source` headers), the stateful counts run 1..N without a
 * gap or a repeat, and the samples a third transform writes are queryable with PromQL. The HTTP API and
 * `/metrics` report each transform; a bad module stops the server with an error naming it.
 */
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { killAll, runToExit, type ServerProcess, start, tempDir } from "./process.ts"

afterEach(killAll)

const modules = {
  "copy.mjs": `export default (r) => ({ key: "copy/" + r.key.slice(3), value: r.text() })\n`,
  "count.mjs": `export default {
  initial: { n: 0 },
  step: (s, r) => ({ state: { n: s.n + 1 }, outputs: [{ key: "count/" + r.key.slice(3), value: String(s.n + 1) }] })
}\n`,
  // One sample per input record, at a timestamp of its own (an hour ago plus the record's offset, in ms).
  "metrics.mjs": `const t0 = ${Math.floor(Date.now() / 1000) * 1000 - 3_600_000}
export default {
  initial: { n: 0 },
  step: (s, r) => ({ state: { n: s.n + 1 }, outputs: [{ labels: { __name__: "transformed_total", log: r.key }, value: s.n + 1, timestampMs: t0 + r.offset }] })
}\n`
}

const config = (dir: string) =>
  [
    "store: local",
    `dataDir: ${path.join(dir, "data")}`,
    "transforms:",
    "  - { name: copy, from: \"in/\", module: ./copy.mjs }",
    "  - { name: count, from: \"in/\", module: ./count.mjs }",
    "  - { name: metrics, from: \"in/\", module: ./metrics.mjs }",
    ""
  ].join("\n")

const setUp = async () => {
  const dir = await tempDir()
  for (const [name, text] of Object.entries(modules)) await fs.writeFile(path.join(dir, name), text)
  await fs.writeFile(path.join(dir, "opendata.yaml"), config(dir))
  return { dir, env: { OPENDATA_CONFIG: path.join(dir, "opendata.yaml") } }
}

const get = async (server: ServerProcess, p: string) => {
  const res = await fetch(`${server.base}${p}`)
  return { status: res.status, body: (await res.json()) as any }
}

/** Every record of a log (empty if there is none). */
const readAll = async (server: ServerProcess, key: string) => {
  const out: Array<{ offset: number; value: string; headers: Record<string, string> }> = []
  for (let from = 0; ;) {
    const { status, body } = await get(server, `/v1/logs/${encodeURIComponent(key)}/records?from=${from}&limit=1000`)
    if (status === 404) return out
    out.push(...body.records)
    if (body.records.length < 1000) return out
    from = body.next
  }
}

/** Waits until every transform has caught up with everything appended. */
const settled = async (server: ServerProcess, inputs: number) => {
  for (let i = 0; i < 600; i++) {
    const { body } = await get(server, "/v1/transforms")
    const all = body.transforms as Array<any>
    if (all.length === 3 && all.every((t) => !t.catchingUp && t.lagRecords === 0)) {
      const copies = await Promise.all(Array.from({ length: inputs }, (_, i) => readAll(server, `copy/${i}`)))
      const inputsRead = await Promise.all(Array.from({ length: inputs }, (_, i) => readAll(server, `in/${i}`)))
      if (copies.every((c, k) => c.length === inputsRead[k]!.length)) return all
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`transforms did not catch up: ${JSON.stringify((await get(server, "/v1/transforms")).body)}`)
}

describe("transforms in the server process", () => {
  it("write every input's outputs exactly once, in order, across kill -9", async () => {
    const { env } = await setUp()
    let server = await start(env)
    const inputs = 4
    let stop = false
    const appender = async (k: number) => {
      for (let i = 0; !stop; i++) {
        const res = await fetch(`${server.base}/v1/logs/in%2F${k}/records`, {
          method: "POST",
          body: JSON.stringify({ records: [{ value: `v${i}` }, { value: `w${i}` }] })
        }).catch(() => undefined)
        if (!res?.ok) return
        await res.arrayBuffer()
      }
    }
    const clients = Array.from({ length: inputs }, (_, k) => appender(k))
    // Kill it once the transforms are busy: outputs written, more input arriving.
    for (let i = 0; i < 400; i++) {
      const copied = (await readAll(server, "copy/0")).length
      if (copied >= 40) break
      await new Promise((r) => setTimeout(r, 25))
    }
    server.child.kill("SIGKILL")
    await server.exited
    stop = true
    await Promise.all(clients)

    server = await start(env)
    const all = await settled(server, inputs)
    for (let k = 0; k < inputs; k++) {
      const input = await readAll(server, `in/${k}`)
      expect(input.length).toBeGreaterThan(0)
      const copies = await readAll(server, `copy/${k}`)
      // Exactly the inputs, in their order, each once: the outputs' provenance is the input sequence.
      expect(copies.map((c) => c.headers["opendata-source"])).toEqual(input.map((r) => `in/${k}@${r.offset}`))
      expect(copies.map((c) => c.value)).toEqual(input.map((r) => r.value))
      const counts = await readAll(server, `count/${k}`)
      expect(counts.map((c) => c.value)).toEqual(input.map((_, i) => String(i + 1)))
    }
    expect(all.map((t) => t.failedLogCount)).toEqual([0, 0, 0])
    // One sample per input record, none lost, none twice: as many samples as inputs, the last one the count.
    for (const [expr, what] of [["count_over_time(transformed_total[2h])", "samples"], ["last_over_time(transformed_total[2h])", "last"]] as const) {
      const query = await get(server, `/api/v1/query?query=${encodeURIComponent(expr)}`)
      const byLog = new Map<string, string>(query.body.data.result.map((r: any) => [r.metric.log, r.value[1]]))
      for (let k = 0; k < inputs; k++) expect(byLog.get(`in/${k}`), `${what} in/${k}`).toBe(String((await readAll(server, `in/${k}`)).length))
    }
    // /metrics, per transform.
    const metrics = await (await fetch(`${server.base}/metrics`)).text()
    expect(metrics).toMatch(/^opendata_transform_records_in_total\{transform="copy"\} \d+$/m)
    expect(metrics).toMatch(/^opendata_transform_lag_records\{transform="count"\} 0$/m)
  })

  it("answers its HTTP API, stops a failing log until skipped, and replays on reset", async () => {
    const { dir, env } = await setUp()
    await fs.writeFile(
      path.join(dir, "copy.mjs"),
      `export default (r) => { if (r.text() === "poison") throw new Error("no poison"); return { key: "copy/" + r.key.slice(3), value: r.text() } }\n`
    )
    const server = await start(env)
    const append = (key: string, values: Array<string>) =>
      fetch(`${server.base}/v1/logs/${encodeURIComponent(key)}/records`, { method: "POST", body: JSON.stringify({ records: values.map((value) => ({ value })) }) })
    await append("in/0", ["a", "poison", "c"])
    await append("in/1", ["x"])
    let copy: any
    for (let i = 0; i < 200; i++) {
      copy = (await get(server, "/v1/transforms/copy")).body
      if (copy.failedLogCount === 1 && copy.recordsIn === 2) break
      await new Promise((r) => setTimeout(r, 25))
    }
    expect(copy.failedLogs).toEqual([{ key: "in/0", offset: 1, error: "no poison" }])
    expect((await readAll(server, "copy/0")).map((r) => r.value)).toEqual(["a"])
    expect((await readAll(server, "copy/1")).map((r) => r.value)).toEqual(["x"])
    const post = async (p: string) => {
      const res = await fetch(`${server.base}${p}`, { method: "POST" })
      return { status: res.status, body: (await res.json()) as any }
    }
    expect((await post("/v1/transforms/copy/skip?log=in%2F0&offset=0")).status).toBe(400)
    expect((await post("/v1/transforms/nope/pause")).status).toBe(404)
    expect((await post("/v1/transforms/copy/skip?log=in%2F0&offset=1")).status).toBe(200)
    for (let i = 0; i < 200 && (await readAll(server, "copy/0")).length < 2; i++) await new Promise((r) => setTimeout(r, 25))
    expect((await readAll(server, "copy/0")).map((r) => r.value)).toEqual(["a", "c"])
    expect((await post("/v1/transforms/copy/pause")).body.status).toBe("paused")
    expect((await post("/v1/transforms/copy/resume")).body.status).toBe("running")
    // A reset replays from the start (the poison record fails again).
    expect((await post("/v1/transforms/copy/reset")).status).toBe(200)
    for (let i = 0; i < 200 && (await readAll(server, "copy/1")).length < 2; i++) await new Promise((r) => setTimeout(r, 25))
    expect((await readAll(server, "copy/1")).map((r) => r.value)).toEqual(["x", "x"])
  })

  it("does not start with a module that has no transform, and says which", async () => {
    const { dir, env } = await setUp()
    await fs.writeFile(path.join(dir, "count.mjs"), "export const nothing = 1\n")
    const { code, output } = await runToExit(env)
    expect(code).not.toBe(0)
    expect(output).toMatch(/transform "count": module .*count\.mjs has no default export/)
  })
})
