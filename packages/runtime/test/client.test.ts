/**
 * The EventStore client (`@opendata/eventstore/client`) and `opendata logs`, against the real server
 * process on a local data directory: every call, typed errors, pipelined sessions, and a tail that resumes
 * across a kill -9 and restart of the server without losing or repeating a record.
 */
import { execFile, spawn } from "node:child_process"
import * as path from "node:path"
import { EventStoreClientError, makeClient } from "@opendata/eventstore/client"
import { afterAll, describe, expect, it } from "vitest"
import { killAll, type ServerProcess, start, tempDir } from "./process.ts"

const launcher = path.resolve(import.meta.dirname, "../bin/opendata.js")

afterAll(killAll)

/** Starts the server on `dir` at `port` (fixed, so that a client can reconnect after a restart). */
const startOn = async (dir: string, port: number) => {
  return await start({ OPENDATA_STORE: "local", OPENDATA_DATA_DIR: dir, OPENDATA_PORT: String(port) })
}

const caught = async (p: Promise<unknown>) => {
  try {
    await p
  } catch (e) {
    return e
  }
  throw new Error("expected a failure")
}

describe("the EventStore client", () => {
  let server: ServerProcess
  let dir = ""
  it("appends, reads, lists and commits; errors are typed with the server's details", async () => {
    dir = await tempDir()
    server = await start({ OPENDATA_STORE: "local", OPENDATA_DATA_DIR: dir })
    const client = makeClient({ url: server.base })
    expect(await client.append("orders/1", ["placed", { value: "paid", headers: { by: "card" }, eventTime: 5 }])).toEqual({ offsets: [0, 1], next: 2 })
    // Bytes go as base64, and come back as bytes when asked.
    const bytes = Uint8Array.from([0, 255, 10, 13])
    expect((await client.append("orders/1", [bytes])).offsets).toEqual([2])
    const read = await client.read("orders/1", { limit: 2 })
    expect(read.records.map((r) => r.value)).toEqual(["placed", "paid"])
    // Bytes that are not UTF-8 text are refused as text: the server says to read them as base64.
    expect(await caught(client.read("orders/1", { from: 2 }))).toMatchObject({ status: 400, code: "InvalidInput" })
    expect(read.records[1]).toMatchObject({ key: "orders/1", offset: 1, eventTime: 5, headers: { by: "card" } })
    const binary = await client.read("orders/1", { from: 2, encoding: "base64" })
    expect(binary.records[0]!.value).toEqual(bytes)
    expect(await client.meta("orders/1")).toMatchObject({ key: "orders/1", records: 3, nextOffset: 3 })
    expect((await client.list({ prefix: "orders/" })).logs.map((l) => l.key)).toEqual(["orders/1"])
    expect(await client.commit("billing", "orders/1", 2)).toMatchObject({ offset: 2, lag: 1 })
    expect(await client.fetch("billing", "orders/1")).toMatchObject({ offset: 2, lag: 1 })

    const conflict = await caught(client.append("orders/1", ["late"], { expectedOffset: 1 }))
    expect(conflict).toBeInstanceOf(EventStoreClientError)
    expect(conflict).toMatchObject({ status: 409, code: "OffsetConflict", details: { expected: 1, next: 3 } })
    expect(await caught(client.meta("nope"))).toMatchObject({ status: 404, code: "LogNotFound" })
    expect(await caught(makeClient({ url: "http://127.0.0.1:1" }).meta("x"))).toMatchObject({ status: 0, code: "Network" })
  })

  it("pipelines appends over a session, strings and bytes, in order per log", async () => {
    const client = makeClient({ url: server.base })
    const session = await client.session()
    const answers = await Promise.all(Array.from({ length: 300 }, (_, i) => session.append(`s/${i % 3}`, i % 10 === 0 ? [Uint8Array.of(i % 256)] : [`v${i}`])))
    expect(answers.filter((_, i) => i % 3 === 0).map((a) => a.offsets[0])).toEqual(Array.from({ length: 100 }, (_, i) => i))
    expect(await caught(session.append("s/0", ["x"], { expectedOffset: 0 }))).toMatchObject({ status: 409, code: "OffsetConflict" })
    session.close()
    expect(await caught(session.append("s/0", ["after close"]))).toMatchObject({ code: "Closed" })
    const read = await client.read("s/0", { limit: 4 })
    expect(read.records.map((r) => r.value)).toEqual(["\u0000", "v3", "v6", "v9"])
  })

  it("follows a log, and resumes across a kill -9 and restart of the server: every record once, in order", async () => {
    const port = server.port
    const client = makeClient({ url: server.base })
    for (let i = 0; i < 5; i++) await client.append("tailed", [`r${i}`])
    const seen: Array<string> = []
    const abort = new AbortController()
    const following = (async () => {
      for await (const r of client.tail("tailed", { from: 0, signal: abort.signal })) {
        seen.push(`${r.offset}:${r.value}`)
        if (seen.length === 15) abort.abort()
      }
    })()
    const until = async (n: number) => {
      for (let i = 0; seen.length < n; i++) {
        if (i > 200) throw new Error(`the tail saw ${seen.length} of ${n}: ${seen.join(" ")}`)
        await new Promise((r) => setTimeout(r, 50))
      }
    }
    await until(5)
    for (let i = 5; i < 10; i++) await client.append("tailed", [`r${i}`])
    await until(10)
    server.child.kill("SIGKILL")
    await server.exited
    server = await startOn(dir, port)
    for (let i = 10; i < 15; i++) await client.append("tailed", [`r${i}`])
    await following
    expect(seen).toEqual(Array.from({ length: 15 }, (_, i) => `${i}:r${i}`))
  })

  it("opendata logs: append (arguments and standard input), read, list, tail", async () => {
    const env = { ...process.env, OPENDATA_URL: server.base }
    const run = (args: Array<string>, input?: string) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        const child = execFile(process.execPath, [launcher, "logs", ...args], { env }, (error, stdout, stderr) =>
          resolve({ code: error === null ? 0 : (error as { code?: number }).code ?? 1, stdout, stderr }))
        if (input !== undefined) child.stdin!.end(input)
      })
    expect((await run(["append", "cli/a", "one", "two"])).stdout).toBe("appended 2 to cli/a: offsets 0..1, next 2\n")
    const lines = Array.from({ length: 2500 }, (_, i) => `line ${i}`).join("\n") + "\n"
    expect((await run(["append", "cli/b"], lines)).stdout).toBe("appended 2500 to cli/b, next 2500\n")
    const read = await run(["read", "cli/b", "--from", "2498"])
    expect(read.stdout).toMatch(/^2498\t\S+\tline 2498\n2499\t\S+\tline 2499\n$/)
    const json = await run(["read", "cli/a", "--json", "--limit", "1"])
    expect(JSON.parse(json.stdout)).toMatchObject({ key: "cli/a", offset: 0, value: "one" })
    expect((await run(["read", "cli/b"])).stdout.split("\n").length).toBe(2501)
    expect((await run(["list", "--prefix", "cli/"])).stdout).toMatch(/^cli\/a\t2 records\t6 bytes\tnext 2\ncli\/b\t2500 records\t\d+ bytes\tnext 2500\n$/)
    const missing = await run(["read", "cli/none"])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toMatch(/LogNotFound/)

    // A tail from offset 1 prints what is there, then what is appended, until interrupted.
    const tail = spawn(process.execPath, [launcher, "logs", "tail", "cli/a", "--from", "1"], { env })
    let out = ""
    tail.stdout.on("data", (d) => (out += d))
    const exited = new Promise<number | null>((resolve) => tail.on("exit", (code) => resolve(code)))
    for (let i = 0; !out.includes("two") && i < 100; i++) await new Promise((r) => setTimeout(r, 50))
    await run(["append", "cli/a", "three"])
    for (let i = 0; !out.includes("three") && i < 100; i++) await new Promise((r) => setTimeout(r, 50))
    tail.kill("SIGINT")
    expect(await exited).toBe(0)
    expect(out).toMatch(/^1\t\S+\ttwo\n2\t\S+\tthree\n$/)
  })
})

