/**
 * Bearer-token authentication, end to end against the real server process (`dist/main.js`, memory store)
 * with tokens from a tokens file (`OPENDATA_AUTH_FILE`) and from `OPENDATA_AUTH_TOKENS`: 401 without a
 * valid token and 403 outside a token's scope or prefix, on every route family, in each API's envelope;
 * the health endpoints open; WebSocket tails refused before the upgrade; refused requests change nothing;
 * no secret in the server's output; the startup warning without tokens; configuration errors that name
 * the problem and never the secret.
 */
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as http from "node:http"
import WebSocket from "ws"
import { RemoteWrite } from "@opendata/tsdb"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { killAll, runToExit, type ServerProcess, start, tempDir } from "./process.ts"

const secrets = {
  reader: "reader-7f3a9c1e5b2d4f60a8e1",
  writer: "writer-2b8e6d0f4a1c9e73b5d2",
  admin: "admin-9d1f3b5a7c2e4068f1a3",
  orders: "orders-4c6e8a0b2d9f1e35a7c4",
  inline: "inline-1a3c5e7b9d2f4a68c0e2"
} as const

const tokensFile = [
  "tokens:",
  `  - { name: reader, token: "${secrets.reader}", scope: read }`,
  `  - { name: writer, token: "${secrets.writer}", scope: write }`,
  `  - { name: admin, token: "${secrets.admin}", scope: admin }`,
  `  - { name: orders-app, token: "${secrets.orders}", scope: write, prefix: "orders/" }`,
  ""
].join("\n")

let dir = ""
let server: ServerProcess

interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly text: string
  readonly json: any
}

const request = async (
  method: string,
  p: string,
  options: { token?: string; authorization?: string; body?: RequestInit["body"]; headers?: Record<string, string> } = {}
): Promise<Answer> => {
  const headers: Record<string, string> = { ...options.headers }
  if (options.token !== undefined) headers["authorization"] = `Bearer ${options.token}`
  if (options.authorization !== undefined) headers["authorization"] = options.authorization
  const res = await fetch(`${server.base}${p}`, { method, headers, ...(options.body !== undefined ? { body: options.body } : {}) })
  const text = await res.text()
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: res.status, headers: res.headers, text, json }
}

const json = (body: unknown) => ({ body: JSON.stringify(body), headers: { "content-type": "application/json" } })
const form = (fields: Record<string, string>) => ({
  body: new URLSearchParams(fields).toString(),
  headers: { "content-type": "application/x-www-form-urlencoded" }
})
const remoteWrite = (metric: string) => ({
  body: RemoteWrite.snappyCompress(RemoteWrite.encodeWriteRequestV1({
    series: [{ labels: [["__name__", metric], ["job", "auth"]], samples: [{ timestampMs: Date.now(), value: 1 }] }],
    metadata: [],
    histograms: 0,
    exemplars: 0
  })),
  headers: { "content-type": "application/x-protobuf", "content-encoding": "snappy", "x-prometheus-remote-write-version": "0.1.0" }
})
const records = (...values: Array<string>) => json({ records: values.map((value) => ({ value })) })

type Family = "prometheus" | "eventstore" | "text"

/** One request of each route family: method, path, body, and the envelope its refusals come in. */
const routes: ReadonlyArray<{ method: string; path: string; body?: () => { body: RequestInit["body"]; headers: Record<string, string> }; family: Family }> = [
  { method: "GET", path: "/api/v1/query?query=1", family: "prometheus" },
  { method: "POST", path: "/api/v1/query", body: () => form({ query: "1" }), family: "prometheus" },
  { method: "GET", path: "/api/v1/query_range?query=1&start=0&end=60&step=15", family: "prometheus" },
  { method: "GET", path: "/api/v1/series?match[]=up", family: "prometheus" },
  { method: "POST", path: "/api/v1/series", body: () => form({ "match[]": "up" }), family: "prometheus" },
  { method: "GET", path: "/api/v1/labels", family: "prometheus" },
  { method: "GET", path: "/api/v1/label/job/values", family: "prometheus" },
  { method: "GET", path: "/api/v1/metadata", family: "prometheus" },
  { method: "GET", path: "/api/v1/status/buildinfo", family: "prometheus" },
  { method: "POST", path: "/api/v1/write", body: () => remoteWrite("refused_total"), family: "prometheus" },
  { method: "GET", path: "/v1/logs", family: "eventstore" },
  { method: "GET", path: "/v1/logs/victim", family: "eventstore" },
  { method: "GET", path: "/v1/logs/victim/records?from=0", family: "eventstore" },
  { method: "POST", path: "/v1/logs/victim/records", body: () => records("refused"), family: "eventstore" },
  { method: "POST", path: "/v1/logs/victim/trim", body: () => json({ before: 2 }), family: "eventstore" },
  { method: "DELETE", path: "/v1/logs/victim", family: "eventstore" },
  { method: "PUT", path: "/v1/logs/victim/fencing-token", body: () => json({ token: "refused" }), family: "eventstore" },
  { method: "PUT", path: "/v1/logs/victim/retention", body: () => json({ maxBytes: 1 }), family: "eventstore" },
  { method: "GET", path: "/v1/groups/g/offsets/victim", family: "eventstore" },
  { method: "PUT", path: "/v1/groups/g/offsets/victim", body: () => json({ offset: 1 }), family: "eventstore" },
  { method: "GET", path: "/v1/logs/victim/tail?from=0", family: "eventstore" },
  { method: "GET", path: "/v1/tail?prefix=vic", family: "eventstore" },
  { method: "GET", path: "/metrics", family: "text" },
  { method: "GET", path: "/no/such/route", family: "text" }
]

const send = (route: (typeof routes)[number], options: { token?: string; authorization?: string } = {}) =>
  request(route.method, route.path, { ...options, ...(route.body !== undefined ? route.body() : {}) })

/** The refusal in the route's envelope. */
const expectRefused = (answer: Answer, status: 401 | 403, family: Family, what: string) => {
  expect(answer.status, what).toBe(status)
  switch (family) {
    case "prometheus":
      expect(answer.json, what).toEqual({ status: "error", errorType: status === 401 ? "unauthorized" : "forbidden", error: expect.any(String) })
      break
    case "eventstore":
      expect(answer.json, what).toEqual({ error: status === 401 ? "Unauthorized" : "Forbidden", message: expect.any(String) })
      break
    case "text":
      expect(answer.text, what).toMatch(status === 401 ? /^Unauthorized: / : /^Forbidden: /)
  }
}

/**
 * A WebSocket tail: refused before the upgrade (`status`, `body`), or opened (101, and its first message
 * other than a heartbeat); `onOpen` runs once it is open.
 */
const tail = (p: string, token?: string, onOpen?: () => Promise<unknown>) =>
  new Promise<{ status: number; body?: string; first?: any }>((resolve, reject) => {
    const ws = new WebSocket(`${server.base.replace(/^http/, "ws")}${p}`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } })
    ws.on("unexpected-response", (_req, res) => {
      let body = ""
      res.on("data", (d) => (body += d))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }))
    })
    ws.on("open", () => {
      onOpen?.().catch(reject)
    })
    ws.on("message", (data) => {
      const message = JSON.parse(String(data))
      if (message.type === "heartbeat") return
      ws.close()
      resolve({ status: 101, first: message })
    })
    ws.on("error", (e) => {
      if (!/Unexpected server response/.test(e.message)) reject(e)
    })
  })

beforeAll(async () => {
  dir = await tempDir()
  await fs.writeFile(path.join(dir, "tokens.yaml"), tokensFile)
  server = await start({
    OPENDATA_STORE: "memory",
    OPENDATA_LOG_LEVEL: "debug", // every request access-logged: none may show a secret
    OPENDATA_AUTH_FILE: path.join(dir, "tokens.yaml"),
    OPENDATA_AUTH_TOKENS: `[{ name: inline, token: "${secrets.inline}", scope: read }]`
  })
  // A log every refused request aims at, with three records.
  expect((await request("POST", "/v1/logs/victim/records", { token: secrets.writer, ...records("a", "b", "c") })).status).toBe(200)
})

afterAll(async () => {
  killAll()
  if (dir !== "") await fs.rm(dir, { recursive: true, force: true })
})

describe("without a valid token", () => {
  it("answers 401 with WWW-Authenticate: Bearer on every route family, in its API's envelope", async () => {
    for (const route of routes) {
      const what = `${route.method} ${route.path}`
      const none = await send(route)
      expectRefused(none, 401, route.family, what)
      expect(none.headers.get("www-authenticate"), what).toBe(`Bearer realm="opendata"`)
      const wrong = await send(route, { token: "not-a-configured-token-0000" })
      expectRefused(wrong, 401, route.family, what)
      expect(wrong.headers.get("www-authenticate"), what).toBe(`Bearer realm="opendata", error="invalid_token"`)
      // A configured secret, but not as a bearer token.
      const basic = await send(route, { authorization: `Basic ${Buffer.from(`reader:${secrets.reader}`).toString("base64")}` })
      expectRefused(basic, 401, route.family, what)
    }
    // A token's prefix or a part of it is no token.
    expect((await request("GET", "/api/v1/labels", { token: secrets.reader.slice(0, -1) })).status).toBe(401)
    expect((await request("GET", "/api/v1/labels", { token: `${secrets.reader}x` })).status).toBe(401)
    expect((await request("GET", "/api/v1/labels", { authorization: "Bearer" })).status).toBe(401)
  })

  it("keeps the health endpoints open", async () => {
    for (const p of ["/-/healthy", "/-/ready"]) {
      expect((await request("GET", p)).status).toBe(200)
      expect((await request("HEAD", p)).status).toBe(200)
      expect((await request("GET", p, { token: "not-a-configured-token-0000" })).status).toBe(200)
    }
  })

  it("refuses a WebSocket tail before the upgrade, with the HTTP status", async () => {
    const key = await tail("/v1/logs/victim/tail?from=0")
    expect(key.status).toBe(401)
    expect(JSON.parse(key.body!)).toEqual({ error: "Unauthorized", message: expect.any(String) })
    expect((await tail("/v1/tail?prefix=vic")).status).toBe(401)
    expect((await tail("/v1/logs/victim/tail?from=0", "not-a-configured-token-0000")).status).toBe(401)
  })
})

describe("scopes", () => {
  it("read: every read, including POSTed queries, tails and /metrics; nothing that writes", async () => {
    for (const token of [secrets.reader, secrets.inline]) {
      expect((await request("GET", "/api/v1/query?query=1", { token })).status).toBe(200)
      expect((await request("POST", "/api/v1/query", { token, ...form({ query: "1" }) })).status).toBe(200)
      expect((await request("POST", "/api/v1/query_range", { token, ...form({ query: "1", start: "0", end: "60", step: "15" }) })).status).toBe(200)
      expect((await request("POST", "/api/v1/labels", { token, ...form({}) })).status).toBe(200)
      expect((await request("GET", "/api/v1/status/buildinfo", { token })).status).toBe(200)
      expect((await request("GET", "/v1/logs", { token })).status).toBe(200)
      expect((await request("GET", "/v1/logs/victim", { token })).status).toBe(200)
      expect((await request("GET", "/v1/logs/victim/records?from=0", { token })).json.records).toHaveLength(3)
      expect((await request("GET", "/v1/groups/g/offsets/victim", { token })).status).toBe(200)
      expect((await request("GET", "/metrics", { token })).status).toBe(200)
      expect((await tail("/v1/logs/victim/tail?from=0", token)).first).toMatchObject({ type: "records", key: "victim" })
    }
    const writes = routes.filter((r) => r.method !== "GET" && !(r.method === "POST" && /query|series/.test(r.path)))
    expect(writes.map((r) => `${r.method} ${r.path}`)).toEqual([
      "POST /api/v1/write",
      "POST /v1/logs/victim/records",
      "POST /v1/logs/victim/trim",
      "DELETE /v1/logs/victim",
      "PUT /v1/logs/victim/fencing-token",
      "PUT /v1/logs/victim/retention",
      "PUT /v1/groups/g/offsets/victim"
    ])
    for (const route of writes) {
      const answer = await send(route, { token: secrets.reader })
      expectRefused(answer, 403, route.family, `${route.method} ${route.path}`)
      expect(answer.headers.get("www-authenticate")).toBe(`Bearer realm="opendata", error="insufficient_scope"`)
      expect(answer.text).toContain(`token \\"reader\\" has scope read`)
    }
  })

  it("refuses a write spelled the way the router also matches (case, slashes, escapes, ;)", async () => {
    for (const p of ["/API/V1/WRITE", "/api//v1/write/", "/api/v1/%77rite", "/api/v1/write;x", "/api/v1/write/"]) {
      expect((await request("POST", p, { token: secrets.reader, ...remoteWrite("sneaky_total") })).status, p).toBe(403)
    }
    // Trim needs admin; the EventStore recognises only its exact spelling.
    const trim = await request("POST", "/v1/logs/victim/TRIM", { token: secrets.writer, ...json({ before: 2 }) })
    expect(trim.status).toBe(404)
    expect((await request("GET", "/api/v1/series?match[]=sneaky_total", { token: secrets.reader })).json.data).toEqual([])
  })

  it("refused requests changed nothing", async () => {
    const meta = await request("GET", "/v1/logs/victim", { token: secrets.reader })
    expect(meta.json).toMatchObject({ key: "victim", firstOffset: 0, nextOffset: 3, retention: null, fenced: false })
    expect((await request("GET", "/v1/groups/g/offsets/victim", { token: secrets.reader })).json.offset).toBeNull()
    expect((await request("GET", "/api/v1/series?match[]=refused_total", { token: secrets.reader })).json.data).toEqual([])
  })

  it("write: remote write, appends, offset commits, fencing tokens, retention; not trim or delete", async () => {
    const token = secrets.writer
    expect((await request("POST", "/api/v1/write", { token, ...remoteWrite("written_total") })).status).toBe(204)
    expect((await request("GET", "/api/v1/series?match[]=written_total", { token })).json.data).toEqual([{ __name__: "written_total", job: "auth" }])
    expect((await request("POST", "/v1/logs/w/records", { token, ...records("x", "y") })).status).toBe(200)
    expect((await request("PUT", "/v1/groups/g/offsets/w", { token, ...json({ offset: 1 }) })).json.offset).toBe(1)
    expect((await request("PUT", "/v1/logs/w/fencing-token", { token, ...json({ token: "f1" }) })).status).toBe(200)
    expect((await request("PUT", "/v1/logs/w/retention", { token, ...json({ maxAgeMs: 86_400_000 }) })).status).toBe(200)
    expect((await request("GET", "/v1/logs/w/records?from=0", { token })).json.records).toHaveLength(2)
    const trim = await request("POST", "/v1/logs/w/trim", { token, ...json({ before: 1 }) })
    expectRefused(trim, 403, "eventstore", "trim")
    expect(trim.json.message).toBe(`token "writer" has scope write; POST /v1/logs/w/trim needs admin`)
    expectRefused(await request("DELETE", "/v1/logs/w", { token }), 403, "eventstore", "delete")
    expect((await request("GET", "/v1/logs/w", { token })).json.firstOffset).toBe(0)
  })

  it("admin: trim and delete", async () => {
    const token = secrets.admin
    expect((await request("POST", "/v1/logs/w/trim", { token, ...json({ before: 1 }) })).json.firstOffset).toBe(1)
    expect((await request("DELETE", "/v1/logs/w", { token })).status).toBe(204)
    expect((await request("GET", "/v1/logs/w", { token })).status).toBe(404)
    expect((await request("POST", "/api/v1/write", { token, ...remoteWrite("admin_total") })).status).toBe(204)
  })
})

describe("a token with a prefix", () => {
  const token = secrets.orders

  it("touches only the logs whose keys start with it, and their group offsets", async () => {
    expect((await request("POST", "/v1/logs/orders%2F1/records", { token, ...records("created", "paid") })).status).toBe(200)
    expect((await request("GET", "/v1/logs/orders%2F1/records?from=0", { token })).json.records).toHaveLength(2)
    expect((await request("GET", "/v1/logs/orders%2F1", { token })).status).toBe(200)
    expect((await request("PUT", "/v1/groups/billing/offsets/orders%2F1", { token, ...json({ offset: 1 }) })).status).toBe(200)
    expect((await request("GET", "/v1/groups/billing/offsets/orders%2F1", { token })).json.offset).toBe(1)
    for (
      const [method, p, body] of [
        ["POST", "/v1/logs/invoices%2F1/records", records("x")],
        ["GET", "/v1/logs/victim/records?from=0", undefined],
        ["GET", "/v1/logs/victim", undefined],
        ["GET", "/v1/logs/order", undefined],
        ["PUT", "/v1/logs/victim/retention", json({ maxBytes: 1 })],
        ["PUT", "/v1/groups/billing/offsets/victim", json({ offset: 1 })],
        ["GET", "/v1/groups/billing/offsets/victim", undefined],
        ["GET", "/v1/groups/orders%2F/offsets/victim", undefined] // the group is no key
      ] as const
    ) {
      const answer = await request(method, p, { token, ...(body ?? {}) })
      expectRefused(answer, 403, "eventstore", `${method} ${p}`)
    }
    expect((await request("GET", "/v1/logs/invoices%2F1", { token: secrets.reader })).status).toBe(404)
    // Its scope still applies under its prefix.
    expectRefused(await request("DELETE", "/v1/logs/orders%2F1", { token }), 403, "eventstore", "delete")
  })

  it("lists and tails by prefix only under it: no prefix, or one outside it, is a 403, not a filtered answer", async () => {
    const listed = await request("GET", "/v1/logs?prefix=orders/", { token })
    expect(listed.status).toBe(200)
    expect(listed.json.logs.map((l: { key: string }) => l.key)).toEqual(["orders/1"])
    expect((await request("GET", `/v1/logs?prefix=${encodeURIComponent("orders/1")}`, { token })).status).toBe(200)
    for (const p of ["/v1/logs", "/v1/logs?prefix=", "/v1/logs?prefix=order", "/v1/logs?prefix=v", "/v1/logs?prefix=orders/&cursor=a", "/v1/logs?limit=5"]) {
      expectRefused(await request("GET", p, { token }), 403, "eventstore", p)
    }
    expect((await tail("/v1/tail")).status).toBe(401)
    for (const p of ["/v1/tail", "/v1/tail?prefix=", "/v1/tail?prefix=v", "/v1/logs/victim/tail?from=0"]) {
      const refused = await tail(p, token)
      expect(refused.status, p).toBe(403)
      expect(JSON.parse(refused.body!), p).toEqual({ error: "Forbidden", message: expect.any(String) })
    }
    expect((await tail("/v1/logs/orders%2F1/tail?from=0", token)).first).toMatchObject({ type: "records", key: "orders/1" })
    // A prefix tail follows from now on: what is appended once it is open.
    const append = () => request("POST", "/v1/logs/orders%2F2/records", { token, ...records("shipped") })
    expect((await tail("/v1/tail?prefix=orders%2F", token, append)).first).toMatchObject({ type: "records", key: "orders/2" })
  })

  it("opens append sessions only under it, which then refuse frames for other logs", async () => {
    // `tail` opens the socket; the session answers the frame sent once it is open.
    const session = (p: string, t: string | undefined, frame: unknown) =>
      new Promise<{ status: number; body?: string; first?: any }>((resolve, reject) => {
        const ws = new WebSocket(`${server.base.replace(/^http/, "ws")}${p}`, t === undefined ? {} : { headers: { authorization: `Bearer ${t}` } })
        ws.on("unexpected-response", (_req, res) => {
          let body = ""
          res.on("data", (d) => (body += d))
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }))
        })
        ws.on("open", () => ws.send(JSON.stringify(frame)))
        ws.on("message", (data) => {
          ws.close()
          resolve({ status: 101, first: JSON.parse(String(data)) })
        })
        ws.on("error", (e) => {
          if (!/Unexpected server response/.test(e.message)) reject(e)
        })
      })
    const frame = (key: string) => ({ id: 1, key, records: [{ value: "placed" }] })
    expect((await session("/v1/append", undefined, frame("orders/3"))).status).toBe(401)
    expect((await session("/v1/append", secrets.reader, frame("orders/3"))).status).toBe(403)
    for (const p of ["/v1/append", "/v1/append?prefix=", "/v1/append?prefix=v"]) {
      const refused = await session(p, token, frame("orders/3"))
      expect(refused.status, p).toBe(403)
      expect(JSON.parse(refused.body!), p).toEqual({ error: "Forbidden", message: expect.any(String) })
    }
    expect((await session("/v1/append?prefix=orders%2F", token, frame("orders/3"))).first).toEqual({ id: 1, offsets: [0], next: 1 })
    const outside = await session("/v1/append?prefix=orders%2F", token, frame("victim"))
    expect(outside.first).toMatchObject({ id: 1, error: { error: "InvalidInput", field: "key", status: 400 } })
    expect((await request("GET", "/v1/logs/victim/records?from=0", { token: secrets.reader })).json.records).toHaveLength(3)
    expect((await session("/v1/append", secrets.writer, frame("victim"))).first).toMatchObject({ id: 1, offsets: [3] })
  })

  it("reaches nothing but EventStore logs: no TSDB, no /metrics", async () => {
    expectRefused(await request("GET", "/api/v1/query?query=1", { token }), 403, "prometheus", "query")
    expectRefused(await request("POST", "/api/v1/write", { token, ...remoteWrite("orders_total") }), 403, "prometheus", "write")
    expectRefused(await request("GET", "/metrics", { token }), 403, "text", "/metrics")
  })
})

describe("transforms", () => {
  it("reset needs admin, however its path is spelled; reading and pausing need read and write", async () => {
    for (const p of ["/v1/transforms/x/reset", "/V1/transforms/x/reset", "//v1/transforms/x/reset", "/v1/transforms/x/reset/", "/v1/transforms/x/%72eset", "/v1/transforms/x/reset;a"]) {
      expect((await request("POST", p, { token: secrets.writer })).status, p).toBe(403)
    }
    // Admin gets through to the route (no such transform here: 404).
    expect((await request("POST", "/v1/transforms/x/reset", { token: secrets.admin })).status).toBe(404)
    expect((await request("POST", "/v1/transforms/x/pause", { token: secrets.reader })).status).toBe(403)
    expect((await request("POST", "/v1/transforms/x/pause", { token: secrets.writer })).status).toBe(404)
    expect((await request("GET", "/v1/transforms", { token: secrets.reader })).json).toEqual({ transforms: [] })
    // The transforms' positions are not committed through the group offsets API.
    const put = await request("PUT", "/v1/groups/transform%2Fx/offsets/victim", { token: secrets.admin, body: JSON.stringify({ offset: 0 }) })
    expect(put.status).toBe(400)
    expect(put.json.message).toMatch(/transforms' positions/)
  })
})

describe("the web UI and browsers", () => {
  it("serves the UI's pages and assets without a token; they hold no data", async () => {
    for (const p of ["/query", "/logs", "/status"]) {
      const answer = await request("GET", p)
      expect(answer.status, p).toBe(200)
      expect(answer.text, p).toMatch(/<div id="app">/)
    }
    const script = /src="(\/assets\/app-[0-9a-f]+\.js)"/.exec((await request("GET", "/query")).text)![1]!
    expect((await request("GET", script)).status).toBe(200)
    // Not a way around the check: other paths under /assets, and the APIs, still need a token.
    const raw = (p: string) =>
      new Promise<number>((resolve, reject) => {
        http.get({ host: "127.0.0.1", port: server.port, path: p }, (res) => {
          res.resume()
          resolve(res.statusCode ?? 0)
        }).on("error", reject)
      })
    for (const p of ["/assets/../v1/logs/victim/records?from=0", "/assets/%2e%2e/v1/status", "/assets/x/../../v1/status"]) {
      expect(await raw(p), p).not.toBe(200)
    }
    expect((await request("POST", "/query")).status).toBe(401)
    expect((await request("GET", "/v1/status")).status).toBe(401)
  })

  it("tells a token what it may do (GET /v1/whoami), prefix-restricted tokens included", async () => {
    expect((await request("GET", "/v1/whoami")).status).toBe(401)
    expect((await request("GET", "/v1/whoami", { token: "not-a-token" })).status).toBe(401)
    expect((await request("GET", "/v1/whoami", { token: secrets.reader })).json).toEqual({ auth: true, name: "reader", scope: "read" })
    expect((await request("GET", "/v1/whoami", { token: secrets.orders })).json).toEqual({
      auth: true,
      name: "orders-app",
      scope: "write",
      prefix: "orders/"
    })
  })

  it("takes a WebSocket's token from a bearer.<base64url> subprotocol, as a browser must send it", async () => {
    const open = (protocols: Array<string>) =>
      new Promise<{ status: number; protocol?: string; first?: any }>((resolve, reject) => {
        const ws = new WebSocket(`${server.base.replace(/^http/, "ws")}/v1/logs/victim/tail?from=0`, protocols)
        ws.on("unexpected-response", (_req, res) => {
          res.resume()
          resolve({ status: res.statusCode ?? 0 })
        })
        ws.on("message", (data) => {
          const message = JSON.parse(String(data))
          if (message.type === "heartbeat") return
          ws.close()
          resolve({ status: 101, protocol: ws.protocol, first: message })
        })
        ws.on("error", (e) => {
          if (!/Unexpected server response/.test(e.message)) reject(e)
        })
      })
    const b64 = (t: string) => Buffer.from(t).toString("base64url")
    expect((await open(["opendata"])).status).toBe(401)
    expect((await open(["opendata", `bearer.${b64("wrong")}`])).status).toBe(401)
    const opened = await open(["opendata", `bearer.${b64(secrets.reader)}`])
    expect(opened).toMatchObject({ status: 101, protocol: "opendata", first: { type: "records", key: "victim" } })
    // The scope still applies: a reader's token opens no append session.
    const session = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`${server.base.replace(/^http/, "ws")}/v1/append`, ["opendata", `bearer.${b64(secrets.reader)}`])
      ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0))
      ws.on("open", () => {
        ws.close()
        resolve(101)
      })
      ws.on("error", () => {})
    })
    expect(session).toBe(403)
  })
})

describe("the server's output", () => {
  it("names the tokens in the effective configuration and never shows a secret", async () => {
    const output = server.output()
    expect(output).toMatch(/message=configuration .*auth\.tokens="inline=read reader=read writer=write admin=admin orders-app=write:orders\/" auth\.file=/)
    expect(output).toMatch(/http\.status=403/) // the access log (debug) saw the requests...
    for (const secret of Object.values(secrets)) expect(output).not.toContain(secret) // ...and no secret
    expect(output).not.toMatch(/unauthenticated/i)
  })
})

describe("without tokens", () => {
  it("serves, and warns at start that the API is unauthenticated; louder on a network address", async () => {
    const loopback = await start({ OPENDATA_STORE: "memory" })
    expect((await fetch(`${loopback.base}/api/v1/labels`)).status).toBe(200)
    expect(loopback.output()).toMatch(/level=WARN .*message="the API is unauthenticated: no auth tokens are configured.*only this machine can, on 127\.0\.0\.1/)
    expect(loopback.output()).toMatch(/auth\.tokens=none/)
    loopback.child.kill("SIGTERM")
    expect(await loopback.exited).toBe(0)
    const open = await start({ OPENDATA_STORE: "memory", OPENDATA_HOST: "0.0.0.0" })
    expect(open.output()).toMatch(/level=WARN .*message="UNAUTHENTICATED API ON A NETWORK ADDRESS: .* listens on 0\.0\.0\.0:\d+, so ANY machine/)
    open.child.kill("SIGTERM")
    expect(await open.exited).toBe(0)
  })
})

describe("configuration", () => {
  it("takes tokens from opendata.yaml, and a tokens file named there relative to it", async () => {
    const configDir = path.join(dir, "conf")
    await fs.mkdir(configDir)
    await fs.writeFile(path.join(configDir, "more-tokens.json"), JSON.stringify([{ name: "from-file", token: "file-token-5e7a9c1b3d", scope: "read" }]))
    await fs.writeFile(
      path.join(configDir, "opendata.yaml"),
      `store: memory\nauth:\n  file: more-tokens.json\n  tokens:\n    - { name: from-yaml, token: "yaml-token-8b0d2f4a6c", scope: write }\n`
    )
    const configured = await start({ OPENDATA_CONFIG: path.join(configDir, "opendata.yaml") })
    const labels = (token?: string) =>
      fetch(`${configured.base}/api/v1/labels`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status)
    expect(await labels()).toBe(401)
    expect(await labels("yaml-token-8b0d2f4a6c")).toBe(200)
    expect(await labels("file-token-5e7a9c1b3d")).toBe(200)
    expect(configured.output()).toContain(`auth.tokens="from-yaml=write from-file=read" auth.file=${path.join(configDir, "more-tokens.json")}`)
    expect(configured.output()).not.toMatch(/yaml-token|file-token/)
    configured.child.kill("SIGTERM")
    expect(await configured.exited).toBe(0)
  })

  it("stops with an error that names the problem, never the secret", async () => {
    const secret = "s3cr3t-never-printed-0123"
    const file = path.join(dir, "bad-tokens.yaml")
    const cases: ReadonlyArray<[string, Record<string, string>, RegExp]> = [
      [`tokens:\n  - { name: a, token: "${secret}", scope: rw }\n`, {}, /OPENDATA_AUTH_FILE=.*bad-tokens\.yaml: tokens\[0\]\.scope must be read, write or admin/],
      [`- { name: a, token: "short", scope: read }\n`, {}, /tokens\[0\]\.token must be 16 to 4096 characters long/],
      [`- { name: a, token: "${secret} x", scope: read }\n`, {}, /tokens\[0\]\.token must be printable ASCII without spaces/],
      [`- { name: a, token: "${secret}", scope: read, prefx: "o/" }\n`, {}, /tokens\[0\]\.prefx is not a known field/],
      [`- { name: a, token: "${secret}", scope: read, prefix: "" }\n`, {}, /tokens\[0\]\.prefix must be a non-empty string/],
      [`tokens: []\n`, {}, /OPENDATA_AUTH_FILE=.*: tokens lists no token/],
      [`tokens:\n  - { name: a, token: "${secret}", scope: read\n  - oops: [\n`, {}, /OPENDATA_AUTH_FILE=.*: the text is not valid YAML or JSON: /],
      [
        `- { name: a, token: "${secret}", scope: read }\n`,
        { OPENDATA_AUTH_TOKENS: `[{ name: b, token: "${secret}", scope: admin }]` },
        /invalid configuration: auth: the tokens named "b" and "a" have the same secret/
      ],
      [
        `- { name: a, token: "${secret}", scope: read }\n`,
        { OPENDATA_AUTH_TOKENS: `[{ name: a, token: "${secret}-2", scope: admin }]` },
        /the token named "a" is configured twice/
      ]
    ]
    for (const [text, env, expected] of cases) {
      await fs.writeFile(file, text)
      const { code, output } = await runToExit({ OPENDATA_STORE: "memory", OPENDATA_AUTH_FILE: file, ...env })
      expect(code, text).toBe(1)
      expect(output, text).toMatch(expected)
      expect(output, text).not.toContain(secret)
    }
    const missing = await runToExit({ OPENDATA_STORE: "memory", OPENDATA_AUTH_FILE: path.join(dir, "nope.yaml") })
    expect(missing.output).toMatch(/OPENDATA_AUTH_FILE=.*nope\.yaml: the file cannot be read: ENOENT/)
    const inline = await runToExit({ OPENDATA_STORE: "memory", OPENDATA_AUTH_TOKENS: `[{ name: a, token: "${secret}", scope: root }]` })
    expect(inline.output).toMatch(/invalid configuration: OPENDATA_AUTH_TOKENS: tokens\[0\]\.scope must be read, write or admin/)
    expect(inline.output).not.toContain(secret)
    // In opendata.yaml: the field's place in the file, and a YAML error without the line that holds the secret.
    const config = path.join(dir, "bad-opendata.yaml")
    await fs.writeFile(config, `store: memory\nauth:\n  tokens:\n    - { name: a, token: "${secret}", scope: read, prefix: 7 }\n`)
    const typed = await runToExit({ OPENDATA_CONFIG: config })
    expect(typed.output).toMatch(/bad-opendata\.yaml: auth\.tokens\[0\]\.prefix must be a non-empty string/)
    expect(typed.output).not.toContain(secret)
    await fs.writeFile(config, `store: memory\nauth:\n  tokens:\n    - { name: a, token: "${secret}", scope: read\n    - b: [\n`)
    const broken = await runToExit({ OPENDATA_CONFIG: config })
    expect(broken.output).toMatch(/bad-opendata\.yaml: is not valid YAML: /)
    expect(broken.output).not.toContain(secret)
  })
})
