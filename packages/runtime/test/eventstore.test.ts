/**
 * End to end: the EventStore's HTTP and WebSocket API on the real server process (`dist/main.js`, memory
 * store), driven with fetch and a real `ws` client.
 */
import { tableFromIPC } from "apache-arrow"
import WebSocket from "ws"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { killAll, type ServerProcess, start } from "./process.ts"

const heartbeatMs = 200

let server: ServerProcess
let base = ""
let wsBase = ""

beforeAll(async () => {
  server = await start({ OPENDATA_STORE: "memory", OPENDATA_EVENTSTORE_TAIL_HEARTBEAT_MS: String(heartbeatMs), OPENDATA_LOG_LEVEL: "debug" })
  base = server.base
  wsBase = base.replace(/^http/, "ws")
})

afterAll(killAll)

// -------------------------------------------------------------------------------------------------
// Helpers
// -------------------------------------------------------------------------------------------------

let unique = 0
/** A fresh key with a `/` in it (sent as %2F). */
const freshKey = (name: string) => `t${Date.now().toString(36)}-${unique++}/${name}`
const enc = encodeURIComponent

interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly body: any
}

const call = async (method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Answer> => {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { "content-type": "application/json", ...headers },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) })
  })
  const text = await response.text()
  return { status: response.status, headers: response.headers, body: text === "" ? undefined : JSON.parse(text) }
}

const get = (path: string) => call("GET", path)
const post = (path: string, body: unknown) => call("POST", path, body)
const put = (path: string, body: unknown) => call("PUT", path, body)

const append = async (key: string, values: ReadonlyArray<string>, extra: Record<string, unknown> = {}) => {
  const answer = await post(`/v1/logs/${enc(key)}/records`, { records: values.map((value) => ({ value })), ...extra })
  expect(answer.status, JSON.stringify(answer.body)).toBe(200)
  return answer.body as { offsets: Array<number>; next: number }
}

const readAll = async (key: string, query = "") => {
  const answer = await get(`/v1/logs/${enc(key)}/records${query}`)
  expect(answer.status, JSON.stringify(answer.body)).toBe(200)
  return answer.body as { records: Array<{ offset: number; timestamp: number; eventTime?: number; headers: Record<string, string>; value: string }>; next: number }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Polls `f` until it returns something other than undefined. */
const eventually = async <T>(f: () => T | undefined | Promise<T | undefined>, what: string, ms = 10_000): Promise<T> => {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await f()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

interface TailMessage {
  readonly type: "records" | "heartbeat" | "error"
  readonly key?: string
  readonly next?: number
  readonly records?: Array<{ offset: number; timestamp: number; headers: Record<string, string>; value: string }>
  readonly status?: number
  readonly error?: string
  readonly first?: number
}

interface TailClient {
  readonly messages: Array<TailMessage>
  readonly closed: Promise<{ readonly code: number; readonly reason: string }>
  readonly isClosed: () => boolean
  /** The records received so far, in order, as [key, offset, value]. */
  readonly records: () => Array<{ key: string; offset: number; value: string }>
  readonly close: () => void
}

/** Opens a tail; rejects with the HTTP status and body if the server refuses the upgrade. */
const openTail = (path: string) =>
  new Promise<TailClient>((resolve, reject) => {
    const ws = new WebSocket(`${wsBase}${path}`)
    const messages: Array<TailMessage> = []
    let closedFlag = false
    const closed = new Promise<{ code: number; reason: string }>((resolveClosed) =>
      ws.on("close", (code, reason) => {
        closedFlag = true
        resolveClosed({ code, reason: reason.toString() })
      })
    )
    ws.on("message", (data, isBinary) => {
      expect(isBinary).toBe(false)
      messages.push(JSON.parse(data.toString()) as TailMessage)
    })
    ws.on("unexpected-response", (_request, response) => {
      let body = ""
      response.on("data", (d: Buffer) => (body += d.toString()))
      response.on("end", () => reject(Object.assign(new Error(`HTTP ${response.statusCode}`), { status: response.statusCode, body: JSON.parse(body) })))
    })
    ws.on("error", reject)
    ws.on("open", () =>
      resolve({
        messages,
        closed,
        isClosed: () => closedFlag,
        records: () =>
          messages.flatMap((m) => (m.type === "records" ? m.records!.map((r) => ({ key: m.key!, offset: r.offset, value: r.value })) : [])),
        close: () => ws.close()
      }))
  })

// -------------------------------------------------------------------------------------------------
// HTTP
// -------------------------------------------------------------------------------------------------

describe("EventStore HTTP API", () => {
  it("appends and reads back text records with headers and event times", async () => {
    const key = freshKey("basic")
    const answer = await post(`/v1/logs/${enc(key)}/records`, {
      records: [
        { value: "hello", headers: { kind: "greeting" }, eventTime: 1_700_000_000_000 },
        { value: "wörld ✓" }
      ]
    })
    expect(answer.status).toBe(200)
    expect(answer.body).toEqual({ offsets: [0, 1], next: 2 })
    expect((await append(key, ["third"])).offsets).toEqual([2])

    const read = await readAll(key)
    expect(read.next).toBe(3)
    expect(read.records.map((r) => [r.offset, r.value])).toEqual([[0, "hello"], [1, "wörld ✓"], [2, "third"]])
    expect(read.records[0]!.headers).toEqual({ kind: "greeting" })
    expect(read.records[0]!.eventTime).toBe(1_700_000_000_000)
    expect(read.records[1]!.eventTime).toBeUndefined()
    expect(read.records[1]!.headers).toEqual({})
    expect(typeof read.records[0]!.timestamp).toBe("number")

    const page = await readAll(key, "?from=1&limit=1")
    expect(page.records.map((r) => r.offset)).toEqual([1])
    expect(page.next).toBe(2)

    // At debug, reads are in the access log; appends, many a second, are not.
    const logged = (method: string) => new RegExp(`http\\.method=${method} http\\.url="?/v1/logs/${enc(key)}/records`).test(server.output())
    await eventually(() => (logged("GET") ? true : undefined), "a read's access-log line")
    expect(logged("POST")).toBe(false)
  })

  it("takes and gives base64 values with ?encoding=base64", async () => {
    const key = freshKey("binary")
    const bytes = Uint8Array.from({ length: 256 }, (_, i) => i)
    const b64 = Buffer.from(bytes).toString("base64")
    const answer = await post(`/v1/logs/${enc(key)}/records?encoding=base64`, { records: [{ value: b64 }, { value: Buffer.from("text").toString("base64") }] })
    expect(answer.status).toBe(200)
    const read = await readAll(key, "?encoding=base64")
    expect(read.records.map((r) => r.value)).toEqual([b64, Buffer.from("text").toString("base64")])
    // Reading binary as text is refused, not mangled; text is fine.
    const asText = await get(`/v1/logs/${enc(key)}/records`)
    expect(asText.status).toBe(400)
    expect(asText.body.error).toBe("InvalidInput")
    expect(asText.body.field).toBe("encoding")
    expect((await readAll(key, "?from=1")).records[0]!.value).toBe("text")
    // Bad base64 names the field.
    const bad = await post(`/v1/logs/${enc(key)}/records?encoding=base64`, { records: [{ value: "AAAA" }, { value: "not base64!" }] })
    expect(bad.status).toBe(400)
    expect(bad.body.field).toBe("records[1].value")
    expect((await get(`/v1/logs/${enc(key)}`)).body.nextOffset).toBe(2)
  })

  it("answers 409 with next on an expectedOffset conflict", async () => {
    const key = freshKey("occ")
    expect((await append(key, ["a"], { expectedOffset: 0 })).next).toBe(1)
    expect((await append(key, ["b"], { expectedOffset: 1 })).next).toBe(2)
    const conflict = await post(`/v1/logs/${enc(key)}/records`, { records: [{ value: "c" }], expectedOffset: 1 })
    expect(conflict.status).toBe(409)
    expect(conflict.body).toMatchObject({ error: "OffsetConflict", next: 2, expected: 1 })
    expect(typeof conflict.body.message).toBe("string")
    expect((await readAll(key)).records.map((r) => r.value)).toEqual(["a", "b"])
  })

  it("sets, rotates and removes a fencing token; stale or missing tokens get 409", async () => {
    const key = freshKey("fenced")
    const path = `/v1/logs/${enc(key)}/fencing-token`
    const set = await put(path, { token: "A" })
    expect(set.status).toBe(200)
    expect(set.body.fenced).toBe(true)

    const missing = await post(`/v1/logs/${enc(key)}/records`, { records: [{ value: "x" }] })
    expect(missing.status).toBe(409)
    expect(missing.body).toMatchObject({ error: "FencingConflict", next: 0 })
    expect((await append(key, ["by A"], { fencingToken: "A" })).offsets).toEqual([0])

    // Rotating needs the current token.
    const wrongCurrent = await put(path, { token: "B", current: "nope" })
    expect(wrongCurrent.status).toBe(409)
    expect(wrongCurrent.body.error).toBe("FencingConflict")
    expect((await put(path, { token: "B", current: "A" })).status).toBe(200)

    const stale = await post(`/v1/logs/${enc(key)}/records`, { records: [{ value: "late A" }], fencingToken: "A" })
    expect(stale.status).toBe(409)
    expect(stale.body).toMatchObject({ error: "FencingConflict", next: 1 })
    expect((await append(key, ["by B"], { fencingToken: "B" })).offsets).toEqual([1])

    const removed = await put(path, { token: null, current: "B" })
    expect(removed.status).toBe(200)
    expect(removed.body.fenced).toBe(false)
    expect((await append(key, ["anyone"])).offsets).toEqual([2])
    expect((await readAll(key)).records.map((r) => r.value)).toEqual(["by A", "by B", "anyone"])

    const badBody = await put(path, { tokn: "x" })
    expect(badBody.status).toBe(400)
  })

  it("makes a retried (producerId, producerSeq) return the same offsets and append once", async () => {
    const key = freshKey("idempotent")
    await append(key, ["before"])
    const body = { records: [{ value: "p1" }, { value: "p2" }], producerId: "producer-1", producerSeq: 0 }
    const first = await post(`/v1/logs/${enc(key)}/records`, body)
    expect(first.status).toBe(200)
    expect(first.body.offsets).toEqual([1, 2])
    const retry = await post(`/v1/logs/${enc(key)}/records`, body)
    expect(retry.status).toBe(200)
    expect(retry.body.offsets).toEqual([1, 2])
    const nextSeq = await post(`/v1/logs/${enc(key)}/records`, { ...body, records: [{ value: "p3" }], producerSeq: 1 })
    expect(nextSeq.body.offsets).toEqual([3])
    expect((await readAll(key)).records.map((r) => r.value)).toEqual(["before", "p1", "p2", "p3"])
  })

  it("reads from a timestamp", async () => {
    const key = freshKey("time")
    await append(key, ["early"])
    await sleep(30)
    await append(key, ["late-1", "late-2"])
    const all = await readAll(key)
    const lateTs = all.records[1]!.timestamp
    expect(lateTs).toBeGreaterThan(all.records[0]!.timestamp)
    const fromTime = await readAll(key, `?fromTime=${lateTs}`)
    expect(fromTime.records.map((r) => r.value)).toEqual(["late-1", "late-2"])
    expect((await readAll(key, `?fromTime=${lateTs + 60_000}`)).records).toEqual([])
  })

  it("refuses over-limit and malformed requests with the right status and field, appending nothing", async () => {
    const key = freshKey("limits")
    await append(key, ["seed"])
    const records = `/v1/logs/${enc(key)}/records`

    const tooMany = await post(records, { records: Array.from({ length: 1001 }, () => ({ value: "x" })) })
    expect(tooMany.status).toBe(413)
    expect(tooMany.body).toMatchObject({ error: "LimitExceeded", field: "records", limit: 1000 })

    const hugeBody = await call("POST", records, JSON.stringify({ records: [{ value: "x".repeat(9 * 1024 * 1024) }] }))
    expect(hugeBody.status).toBe(413)
    expect(hugeBody.body).toMatchObject({ error: "LimitExceeded", field: "body" })

    // Without a Content-Length, the limit applies while the body streams in.
    const chunk = new TextEncoder().encode(" ".repeat(1024 * 1024))
    let sent = 0
    const chunked = await fetch(`${base}${records}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: new ReadableStream({
        pull(controller) {
          if (sent++ < 10) controller.enqueue(chunk)
          else controller.close()
        }
      }),
      duplex: "half"
    } as RequestInit)
    expect(chunked.status).toBe(413)
    expect(((await chunked.json()) as { field: string }).field).toBe("body")

    const badJson = await call("POST", records, "{\"records\": [")
    expect(badJson.status).toBe(400)
    expect(badJson.body).toMatchObject({ error: "InvalidInput", field: "body" })
    expect(badJson.body.message).toMatch(/body/)

    const noBody = await call("POST", records)
    expect(noBody.status).toBe(400)

    const badField = await post(records, { records: [{ value: "ok" }, { value: "x", eventTime: "yesterday" }] })
    expect(badField.status).toBe(400)
    expect(badField.body.field).toBe("records[1].eventTime")
    expect(badField.body.message).toContain("records[1].eventTime")

    const unknownField = await post(records, { records: [{ value: "x" }], expectedOfset: 1 })
    expect(unknownField.status).toBe(400)
    expect(unknownField.body.field).toBe("expectedOfset")

    const badHeader = await post(records, { records: [{ value: "x", headers: { a: 1 } }] })
    expect(badHeader.status).toBe(400)
    expect(badHeader.body.field).toBe("records[0].headers.a")

    const negative = await post(records, { records: [{ value: "x" }], expectedOffset: -1 })
    expect(negative.status).toBe(400)
    expect(negative.body.field).toBe("expectedOffset")

    const nulKey = await post(`/v1/logs/a%00b/records`, { records: [{ value: "x" }] })
    expect(nulKey.status).toBe(400)
    expect(nulKey.body).toMatchObject({ error: "InvalidInput", field: "key" })
    const longKey = await post(`/v1/logs/${"k".repeat(513)}/records`, { records: [{ value: "x" }] })
    expect(longKey.status).toBe(400)
    expect(longKey.body.field).toBe("key")
    const emptyKey = await post(`/v1/logs//records`, { records: [{ value: "x" }] })
    expect(emptyKey.status).toBe(400)
    expect(emptyKey.body.field).toBe("key")
    const badEscape = await get(`/v1/logs/%E0%A4%A/records`)
    expect(badEscape.status).toBe(400)
    expect(badEscape.body.error).toBe("InvalidInput")
    // A key of exactly the maximum length is fine (the router's own parameter cap does not apply).
    const maxKey = "é".repeat(256)
    expect((await append(maxKey, ["max"])).offsets).toEqual([0])
    expect((await get(`/v1/logs/${enc(maxKey)}`)).body.key).toBe(maxKey)

    const badLimit = await get(`${records}?limit=-1`)
    expect(badLimit.status).toBe(400)
    expect(badLimit.body.field).toBe("limit")
    const badFrom = await get(`${records}?from=1e3`)
    expect(badFrom.status).toBe(400)
    expect(badFrom.body.field).toBe("from")
    const both = await get(`${records}?from=0&fromTime=0`)
    expect(both.status).toBe(400)
    expect(both.body.error).toBe("InvalidInput")
    const unknownParam = await get(`${records}?form=0`)
    expect(unknownParam.status).toBe(400)
    expect(unknownParam.body.field).toBe("form")
    const twice = await get(`${records}?from=0&from=1`)
    expect(twice.status).toBe(400)
    expect(twice.body.field).toBe("from")

    const wrongMethod = await call("PATCH", records)
    expect(wrongMethod.status).toBe(405)
    expect(wrongMethod.headers.get("allow")).toBe("GET, POST")
    const noRoute = await get(`/v1/logs/${enc(key)}/nothing`)
    expect(noRoute.status).toBe(404)
    expect(noRoute.body.error).toBe("NotFound")

    // Nothing was appended by any of the refused requests, and the server is still up.
    const meta = await get(`/v1/logs/${enc(key)}`)
    expect(meta.body.nextOffset).toBe(1)
    expect((await fetch(`${base}/-/healthy`)).status).toBe(200)
  })

  it("refuses an unknown or repeated query parameter on every route with 400, before anything happens", async () => {
    const key = freshKey("params")
    await append(key, ["a", "b", "c"])
    const log = `/v1/logs/${enc(key)}`
    const refused: ReadonlyArray<[string, string, unknown?]> = [
      ["DELETE", `${log}?force=true`],
      ["DELETE", `${log}?__proto__=1`],
      ["POST", `${log}/records?__proto__=x`, { records: [{ value: "d" }] }],
      ["POST", `${log}/trim?constructor=1`, { before: 2 }],
      ["POST", `${log}/trim?x=1`, { before: 2 }],
      ["PUT", `${log}/fencing-token?token=a`, { token: "a" }],
      ["PUT", `${log}/retention?maxBytes=1`, { maxBytes: 1 }],
      ["PUT", `/v1/groups/g/offsets/${enc(key)}?offset=1`, { offset: 1 }],
      ["POST", `${log}/records?encoding=utf8&sync=1`, { records: [{ value: "d" }] }],
      ["POST", `${log}/records?encoding=utf8&encoding=utf8`, { records: [{ value: "d" }] }],
      ["GET", `${log}?verbose=1`],
      ["GET", `${log}/records?x=1`],
      ["GET", `/v1/logs?prefix=t&prefix=u`],
      ["GET", `/v1/groups/g/offsets/${enc(key)}?x=1`]
    ]
    for (const [method, path, body] of refused) {
      const answer = await call(method, path, body)
      expect(answer.status, `${method} ${path}`).toBe(400)
      expect(answer.body.error, `${method} ${path}`).toBe("InvalidInput")
    }
    // Nothing happened: the log is there, untrimmed, unfenced, with no retention and no group offset.
    const meta = await get(log)
    expect(meta.status).toBe(200)
    expect(meta.body).toMatchObject({ firstOffset: 0, nextOffset: 3 })
    expect(meta.body.retention ?? null).toBeNull()
    expect(meta.body.fenced ?? false).toBe(false)
    expect((await get(`/v1/groups/g/offsets/${enc(key)}`)).body.offset).toBeNull()
    // A fencing token put with a stray parameter created no log either.
    const other = freshKey("params-none")
    expect((await call("PUT", `/v1/logs/${enc(other)}/fencing-token?token=a`, { token: "a" })).status).toBe(400)
    expect((await get(`/v1/logs/${enc(other)}`)).status).toBe(404)
  })

  it("takes only canonical base64 with ?encoding=base64", async () => {
    const key = freshKey("base64")
    const records = `/v1/logs/${enc(key)}/records?encoding=base64`
    for (const value of ["aGVsbG8gd29ybGQ=\n", "aGVs\r\nbG8=", "aGVsbG8", "aGVsbG9=", "aGV sbG8=", "aGVsbG8_", "aGVsbG8-"]) {
      const answer = await post(records, { records: [{ value }] })
      expect(answer.status, JSON.stringify(value)).toBe(400)
      expect(answer.body.field, JSON.stringify(value)).toBe("records[0].value")
    }
    expect((await get(`/v1/logs/${enc(key)}`)).status).toBe(404)
    expect((await post(records, { records: [{ value: "aGVsbG8=" }, { value: "" }] })).status).toBe(200)
    expect((await readAll(key)).records.map((r) => r.value)).toEqual(["hello", ""])
  })

  it("answers 404 for an unknown log", async () => {
    const key = freshKey("missing")
    for (const answer of [
      await get(`/v1/logs/${enc(key)}`),
      await get(`/v1/logs/${enc(key)}/records`),
      await call("DELETE", `/v1/logs/${enc(key)}`),
      await post(`/v1/logs/${enc(key)}/trim`, { before: 1 })
    ]) {
      expect(answer.status).toBe(404)
      expect(answer.body).toMatchObject({ error: "LogNotFound", key })
    }
  })

  it("lists logs by prefix with cursor pagination", async () => {
    const prefix = `${freshKey("list")}/`
    const keys = ["a", "b", "c", "d", "e"].map((k) => `${prefix}${k}`)
    for (const key of keys) await append(key, [key])
    await append(`${prefix.slice(0, -1)}-other`, ["not in the prefix"])

    const seen: Array<string> = []
    let cursor: string | undefined
    let pages = 0
    do {
      const answer = await get(`/v1/logs?prefix=${enc(prefix)}&limit=2${cursor === undefined ? "" : `&cursor=${enc(cursor)}`}`)
      expect(answer.status).toBe(200)
      expect(answer.body.logs.length).toBeLessThanOrEqual(2)
      seen.push(...answer.body.logs.map((m: { key: string }) => m.key))
      cursor = answer.body.cursor
      pages++
    } while (cursor !== undefined && pages < 10)
    expect(seen).toEqual(keys)
    expect(pages).toBeGreaterThanOrEqual(3)

    // A cursor that sorts before the prefix lists from the prefix, never keys outside it.
    const early = await get(`/v1/logs?prefix=${enc(prefix)}&cursor=${enc("0")}`)
    expect(early.body.logs.map((m: { key: string }) => m.key)).toEqual(keys)

    const meta = (await get(`/v1/logs?prefix=${enc(keys[0]!)}`)).body.logs[0]
    expect(meta).toMatchObject({ key: keys[0], firstOffset: 0, nextOffset: 1, records: 1, fenced: false, retention: null })
  })

  it("gives a log's metadata, sets its retention, trims it (416 with first below) and deletes it", async () => {
    const key = freshKey("lifecycle")
    await append(key, ["0", "1", "2", "3", "4"])
    const meta = await get(`/v1/logs/${enc(key)}`)
    expect(meta.status).toBe(200)
    expect(meta.body).toMatchObject({ key, firstOffset: 0, nextOffset: 5, records: 5, bytes: expect.any(Number), fenced: false, retention: null })
    expect(meta.body.createdMs).toEqual(expect.any(Number))
    expect(meta.body.lastAppendMs).toEqual(expect.any(Number))

    const retention = await put(`/v1/logs/${enc(key)}/retention`, { maxAgeMs: 3_600_000 })
    expect(retention.status).toBe(200)
    expect(retention.body.retention).toEqual({ maxAgeMs: 3_600_000 })
    expect((await put(`/v1/logs/${enc(key)}/retention`, null)).body.retention).toBeNull()
    expect((await put(`/v1/logs/${enc(key)}/retention`, { maxAge: 1 })).status).toBe(400)

    const trimmed = await post(`/v1/logs/${enc(key)}/trim`, { before: 3 })
    expect(trimmed.status).toBe(200)
    expect(trimmed.body).toMatchObject({ firstOffset: 3, nextOffset: 5 })
    const below = await get(`/v1/logs/${enc(key)}/records?from=1`)
    expect(below.status).toBe(416)
    expect(below.body).toMatchObject({ error: "OffsetTrimmed", first: 3 })
    expect((await readAll(key)).records.map((r) => r.value)).toEqual(["3", "4"])
    expect((await post(`/v1/logs/${enc(key)}/trim`, { before: "x" })).status).toBe(400)

    const deleted = await call("DELETE", `/v1/logs/${enc(key)}`)
    expect(deleted.status).toBe(204)
    expect((await get(`/v1/logs/${enc(key)}`)).status).toBe(404)
    expect((await get(`/v1/logs/${enc(key)}/records`)).status).toBe(404)
  })

  it("commits and fetches consumer group offsets with lag", async () => {
    const key = freshKey("grouped")
    const group = "billing/v2"
    await append(key, ["0", "1", "2", "3", "4"])
    const path = `/v1/groups/${enc(group)}/offsets/${enc(key)}`
    const before = await get(path)
    expect(before.status).toBe(200)
    expect(before.body).toEqual({ group, key, offset: null, lag: 5 })
    const commit = await put(path, { offset: 3 })
    expect(commit.status).toBe(200)
    expect(commit.body).toEqual({ group, key, offset: 3, lag: 2 })
    expect((await get(path)).body).toEqual({ group, key, offset: 3, lag: 2 })
    await append(key, ["5"])
    expect((await get(path)).body.lag).toBe(3)
    expect((await put(path, { offset: "3" })).status).toBe(400)
    expect((await put(`/v1/groups/${enc(group)}/offsets/${enc(freshKey("nolog"))}`, { offset: 0 })).status).toBe(404)
  })

  it("reads records as an Arrow IPC stream", async () => {
    const key = freshKey("arrow")
    const bytes = Uint8Array.from([0, 1, 2, 250, 255])
    await post(`/v1/logs/${enc(key)}/records?encoding=base64`, {
      records: [
        { value: Buffer.from("first").toString("base64"), headers: { h: "v" }, eventTime: 1_700_000_000_123 },
        { value: Buffer.from(bytes).toString("base64") }
      ]
    })
    const response = await fetch(`${base}/v1/logs/${enc(key)}/records`, { headers: { accept: "application/vnd.apache.arrow.stream" } })
    expect(response.status).toBe(200)
    expect(response.headers.get("content-type")).toContain("application/vnd.apache.arrow.stream")
    expect(response.headers.get("x-next-offset")).toBe("2")
    const table = tableFromIPC(new Uint8Array(await response.arrayBuffer()))
    expect(table.numRows).toBe(2)
    expect(table.schema.fields.map((f) => f.name)).toEqual(["offset", "timestamp", "eventTime", "headers", "value"])
    expect(table.schema.metadata.get("next")).toBe("2")
    const rows = table.toArray().map((row) => row.toJSON())
    expect(rows.map((r) => Number(r.offset))).toEqual([0, 1])
    expect(Number(rows[0]!.eventTime)).toBe(1_700_000_000_123)
    expect(rows[1]!.eventTime).toBeNull()
    expect(JSON.parse(rows[0]!.headers as string)).toEqual({ h: "v" })
    expect(Buffer.from(rows[0]!.value as Uint8Array).toString()).toBe("first")
    expect(Array.from(rows[1]!.value as Uint8Array)).toEqual(Array.from(bytes))
    const json = await readAll(key, "?encoding=base64")
    expect(rows.map((r) => Number(r.timestamp))).toEqual(json.records.map((r) => r.timestamp))

    const empty = await fetch(`${base}/v1/logs/${enc(key)}/records?from=2`, { headers: { accept: "application/vnd.apache.arrow.stream" } })
    expect(tableFromIPC(new Uint8Array(await empty.arrayBuffer())).numRows).toBe(0)
  })
})

// -------------------------------------------------------------------------------------------------
// WebSocket tails
// -------------------------------------------------------------------------------------------------

describe("EventStore WebSocket tail", () => {
  it("catches up from the first offset, then delivers live appends with no gap and no duplicate", async () => {
    const key = freshKey("tail")
    await append(key, ["0", "1", "2"])
    const tail = await openTail(`/v1/logs/${enc(key)}/tail`)
    await eventually(() => (tail.records().length >= 3 ? true : undefined), "the catch-up")
    // Live appends, some concurrent.
    await append(key, ["3"])
    await Promise.all([append(key, ["4", "5"]), append(key, ["6"]), append(key, ["7", "8", "9"])])
    for (let i = 10; i < 30; i++) await append(key, [String(i)])
    await eventually(() => (tail.records().length >= 30 ? true : undefined), "30 records")
    await sleep(100)
    const offsets = tail.records().map((r) => r.offset)
    expect(offsets).toEqual(Array.from({ length: 30 }, (_, i) => i))
    const read = await readAll(key)
    expect(tail.records().map((r) => r.value)).toEqual(read.records.map((r) => r.value))
    expect(tail.records().every((r) => r.key === key)).toBe(true)
    tail.close()
  })

  it("resumes from an offset after reconnecting, and from a time", async () => {
    const key = freshKey("resume")
    await append(key, ["0", "1", "2"])
    const first = await openTail(`/v1/logs/${enc(key)}/tail?from=0`)
    await eventually(() => (first.records().length >= 3 ? true : undefined), "the first connection's records")
    const last = first.records().at(-1)!.offset
    first.close()
    await first.closed
    await append(key, ["3", "4"])
    const second = await openTail(`/v1/logs/${enc(key)}/tail?from=${last + 1}`)
    await eventually(() => (second.records().length >= 2 ? true : undefined), "the resumed records")
    await sleep(100)
    expect(second.records().map((r) => [r.offset, r.value])).toEqual([[3, "3"], [4, "4"]])
    second.close()

    const ts = (await readAll(key)).records[3]!.timestamp
    const byTime = await openTail(`/v1/logs/${enc(key)}/tail?fromTime=${ts}`)
    await eventually(() => (byTime.records().length >= 2 ? true : undefined), "records from a time")
    expect(byTime.records()[0]!.offset).toBe(3)
    byTime.close()

    const now = await openTail(`/v1/logs/${enc(key)}/tail?now`)
    await eventually(() => now.messages.find((m) => m.type === "heartbeat"), "a heartbeat")
    await append(key, ["5"])
    await eventually(() => (now.records().length >= 1 ? true : undefined), "a live record")
    expect(now.records().map((r) => r.offset)).toEqual([5])
    now.close()
  })

  it("sends heartbeats with the next offset while idle", async () => {
    const key = freshKey("idle")
    await append(key, ["0", "1"])
    const tail = await openTail(`/v1/logs/${enc(key)}/tail?from=2`)
    const heartbeat = await eventually(
      () => tail.messages.find((m) => m.type === "heartbeat"),
      "a heartbeat",
      heartbeatMs * 20
    )
    expect(heartbeat).toEqual({ type: "heartbeat", key, next: 2 })
    expect(tail.records()).toEqual([])
    tail.close()
  })

  it("sends base64 values with ?encoding=base64", async () => {
    const key = freshKey("tail64")
    await post(`/v1/logs/${enc(key)}/records?encoding=base64`, { records: [{ value: Buffer.from([255, 0, 1]).toString("base64") }] })
    const tail = await openTail(`/v1/logs/${enc(key)}/tail?encoding=base64`)
    await eventually(() => (tail.records().length >= 1 ? true : undefined), "a record")
    expect(Buffer.from(tail.records()[0]!.value, "base64")).toEqual(Buffer.from([255, 0, 1]))
    tail.close()
  })

  it("follows every log under a prefix from now on", async () => {
    const prefix = `${freshKey("prefix")}/`
    await append(`${prefix}a`, ["old"])
    const tail = await openTail(`/v1/tail?prefix=${enc(prefix)}`)
    // A heartbeat shows the subscription is running: what is appended from now on must arrive.
    await eventually(() => tail.messages.find((m) => m.type === "heartbeat"), "a heartbeat")
    await append(`${prefix}a`, ["a1"])
    await append(`${prefix}b`, ["b1"])
    await append(`${prefix.slice(0, -1)}-elsewhere`, ["x"])
    await append(`${prefix}a`, ["a2"])
    await eventually(() => (tail.records().length >= 3 ? true : undefined), "records of two logs")
    await sleep(200)
    const got = tail.records()
    expect(got.map((r) => [r.key, r.value])).toEqual([[`${prefix}a`, "a1"], [`${prefix}b`, "b1"], [`${prefix}a`, "a2"]])
    tail.close()
  })

  it("sends an error and closes when the start offset was trimmed", async () => {
    const key = freshKey("trimmed")
    await append(key, ["0", "1", "2", "3"])
    await post(`/v1/logs/${enc(key)}/trim`, { before: 2 })
    const tail = await openTail(`/v1/logs/${enc(key)}/tail?from=0`)
    const { code } = await tail.closed
    expect(tail.messages).toHaveLength(1)
    expect(tail.messages[0]).toMatchObject({ type: "error", status: 416, error: "OffsetTrimmed", first: 2 })
    expect(typeof tail.messages[0]!.error).toBe("string")
    expect(code).toBe(4416)
    // Without a start it follows from the first offset still stored.
    const fromFirst = await openTail(`/v1/logs/${enc(key)}/tail`)
    await eventually(() => (fromFirst.records().length >= 2 ? true : undefined), "the stored records")
    expect(fromFirst.records().map((r) => r.offset)).toEqual([2, 3])
    fromFirst.close()
  })

  it("refuses bad requests with an HTTP error before upgrading", async () => {
    const key = freshKey("refused")
    await expect(openTail(`/v1/logs/${enc(key)}/tail?from=0&fromTime=0`)).rejects.toMatchObject({ status: 400 })
    await expect(openTail(`/v1/logs/${enc(key)}/tail?from=x`)).rejects.toMatchObject({ status: 400, body: { field: "from" } })
    await expect(openTail(`/v1/logs/a%00b/tail`)).rejects.toMatchObject({ status: 400, body: { field: "key" } })
    await expect(openTail(`/v1/tail?prefix=a&extra=1`)).rejects.toMatchObject({ status: 400, body: { field: "extra" } })
    await expect(openTail(`/v1/tail?__proto__=1`)).rejects.toMatchObject({ status: 400, body: { field: "__proto__" } })
    await expect(openTail(`/v1/tail?prefix=a%00b`)).rejects.toMatchObject({ status: 400, body: { field: "prefix" } })
    await expect(openTail(`/v1/tail?prefix=${"x".repeat(513)}`)).rejects.toMatchObject({ status: 400, body: { field: "prefix" } })
    const plain = await get(`/v1/logs/${enc(key)}/tail`)
    expect(plain.status).toBe(426)
    expect(plain.body.error).toBe("UpgradeRequired")
  })

  it("keeps a slow reader's tail complete and in order (back-pressure, then catch-up)", async () => {
    const key = freshKey("slow")
    await append(key, ["start"])
    const ws = new WebSocket(`${wsBase}/v1/logs/${enc(key)}/tail`)
    const offsets: Array<number> = []
    let largest = 0
    ws.on("message", (data) => {
      largest = Math.max(largest, (data as Buffer).length)
      const m = JSON.parse(data.toString()) as TailMessage
      if (m.type === "records") offsets.push(...m.records!.map((r) => r.offset))
    })
    await new Promise((resolve, reject) => {
      ws.on("open", resolve)
      ws.on("error", reject)
    })
    await eventually(() => (offsets.length >= 1 ? true : undefined), "the first record")
    // Stop reading: the server's send buffer fills while 16 MiB are appended.
    const socket = (ws as unknown as { _socket: { pause(): void; resume(): void } })._socket
    socket.pause()
    const value = "v".repeat(64 * 1024)
    for (let batch = 0; batch < 16; batch++) {
      await append(key, Array.from({ length: 16 }, () => value))
    }
    socket.resume()
    await eventually(() => (offsets.length >= 257 ? true : undefined), "every record", 30_000)
    await sleep(200)
    expect(offsets).toEqual(Array.from({ length: 257 }, (_, i) => i))
    // Big catch-up pages are split into messages of about a MiB.
    expect(largest).toBeLessThan(2 * 1024 * 1024)
    ws.close()
  })

  it("ends the subscription when the client closes", async () => {
    const key = freshKey("closing")
    await append(key, ["0"])
    const path = `/v1/logs/${enc(key)}/tail`
    // Tails being followed, as /metrics counts them (other tests' tails may still be open: compare).
    const subscribers = async () => {
      const text = await (await fetch(`${server.base}/metrics`)).text()
      return Number(/^opendata_eventstore_tail_subscribers (\d+)$/m.exec(text)?.[1] ?? Number.NaN)
    }
    await sleep(200)
    const before = await subscribers()
    const tail = await openTail(path)
    await eventually(() => (tail.records().length >= 1 ? true : undefined), "a record")
    await sleep(heartbeatMs * 2)
    expect(await subscribers()).toBe(before + 1)
    tail.close()
    await tail.closed
    await eventually(async () => ((await subscribers()) <= before ? true : undefined), "the end of the subscription")
    // Many short-lived tails leave nothing behind either: all of their subscriptions end.
    const many = await Promise.all(Array.from({ length: 20 }, () => openTail(path)))
    await Promise.all(many.map((t) => eventually(() => (t.records().length >= 1 ? true : undefined), "a record")))
    expect(await subscribers()).toBe(before + 20)
    for (const t of many) t.close()
    await eventually(async () => ((await subscribers()) <= before ? true : undefined), "the end of 20 subscriptions")
  })

  it("lets the server stop cleanly on SIGTERM while tails are open", async () => {
    const own = await start({ OPENDATA_STORE: "memory" })
    const ws = new WebSocket(`${own.base.replace(/^http/, "ws")}/v1/tail?prefix=`)
    await new Promise((resolve, reject) => {
      ws.on("open", resolve)
      ws.on("error", reject)
    })
    const closed = new Promise<number>((resolve) => ws.on("close", (code) => resolve(code)))
    // An append session hears of the shutdown from the same watcher.
    const session = new WebSocket(`${own.base.replace(/^http/, "ws")}/v1/append`)
    await new Promise((resolve, reject) => {
      session.on("open", resolve)
      session.on("error", reject)
    })
    const sessionClosed = new Promise<number>((resolve) => session.on("close", (code) => resolve(code)))
    const t0 = Date.now()
    own.child.kill("SIGTERM")
    expect(await own.exited).toBe(0)
    expect(Date.now() - t0).toBeLessThan(5_000)
    expect(await closed).toBe(1001)
    expect(await sessionClosed).toBe(1001)
  })
})
