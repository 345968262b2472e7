/**
 * Append sessions (`GET /v1/append`): pipelined appends over one WebSocket.
 *
 * - In process, against a store whose appends to `slow/...` logs wait until the test lets them go: answers
 *   for different logs come out of order, answers for one log never do.
 * - End to end, on the real server process (`dist/main.js`) with a real `ws` client: hundreds of appends in
 *   flight over one connection, ordered per log; bad frames answered with an error and nothing appended;
 *   backpressure at the in-flight bound; a session closed mid-flight loses nothing it acknowledged; a
 *   prefix-restricted token.
 */
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { NodeHttpServer } from "@effect/platform-node"
import { Deferred, Effect, Layer, ManagedRuntime } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import { EventStore, EventStoreHttp, Limits } from "@opendata/eventstore"
import WebSocket from "ws"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { killAll, type ServerProcess, start } from "./process.ts"

interface Answer {
  readonly id: number | null
  readonly offsets?: Array<number>
  readonly next?: number
  readonly error?: { readonly error: string; readonly message: string; readonly status: number; readonly field?: string }
}

/** A test client of one session: sends frames, collects the answers in the order they arrive. */
const openSession = async (url: string, headers: Record<string, string> = {}) => {
  const ws = new WebSocket(url, { headers })
  const answers: Array<Answer> = []
  const waiting = new Map<number, (a: Answer) => void>()
  const anonymous: Array<(a: Answer) => void> = []
  ws.on("message", (data) => {
    const answer = JSON.parse(data.toString()) as Answer
    answers.push(answer)
    if (answer.id === null) anonymous.shift()?.(answer)
    else {
      waiting.get(answer.id)?.(answer)
      waiting.delete(answer.id)
    }
  })
  const closed = new Promise<number>((resolve) => ws.on("close", (code) => resolve(code)))
  await new Promise<void>((resolve, reject) => {
    ws.on("open", () => resolve())
    ws.on("error", reject)
  })
  return {
    ws,
    answers,
    closed,
    /** Sends one append; resolves with its answer. */
    send: (frame: { readonly id: number } & Record<string, unknown>) => {
      const answered = new Promise<Answer>((resolve) => waiting.set(frame.id, resolve))
      ws.send(JSON.stringify(frame))
      return answered
    },
    /** Resolves with the next answer for `id` (of a frame sent already). */
    answerFor: (id: number) => new Promise<Answer>((resolve) => waiting.set(id, resolve)),
    /** Sends a frame that has no valid id; resolves with the next answer without one. */
    sendRaw: (data: string | Buffer) => {
      const answered = new Promise<Answer>((resolve) => anonymous.push(resolve))
      ws.send(data)
      return answered
    },
    close: () => ws.close()
  }
}

const records = (...values: Array<string>) => values.map((value) => ({ value }))

// -------------------------------------------------------------------------------------------------
// In process: the order of answers
// -------------------------------------------------------------------------------------------------

describe("append session, in process against a controlled store", () => {
  // Appends to `slow/...` logs wait until `release` is called; every append is durable at once.
  let gate = Deferred.makeUnsafe<void>()
  const next = new Map<string, number>()
  let started = 0
  const store = {
    appendQueued: (key: string, rs: ReadonlyArray<unknown>) =>
      Effect.gen(function*() {
        started++
        if (key.startsWith("slow/")) yield* Deferred.await(gate)
        const first = next.get(key) ?? 0
        next.set(key, first + rs.length)
        return { result: { offsets: rs.map((_, i) => first + i), next: first + rs.length }, durable: Effect.void }
      })
  } as unknown as EventStore.EventStoreShape
  const runtime = ManagedRuntime.make(
    HttpRouter.serve(EventStoreHttp.routes).pipe(
      Layer.provide(Layer.succeed(EventStore.EventStore, store)),
      Layer.provideMerge(NodeHttpServer.layer(() => createServer(), { port: 0, host: "127.0.0.1" }))
    )
  )
  let url = ""
  beforeAll(async () => {
    const address = await runtime.runPromise(Effect.gen(function*() {
      return (yield* HttpServer.HttpServer).address
    }))
    url = `ws://127.0.0.1:${(address as unknown as AddressInfo).port}/v1/append`
  })
  afterAll(() => runtime.dispose())

  it("answers appends to other logs while one log waits, and keeps each log's order", async () => {
    gate = Deferred.makeUnsafe<void>()
    const session = await openSession(url)
    const slow = [1, 2, 3].map((id) => session.send({ id, key: "slow/a", records: records(`s${id}`) }))
    const fast = await Promise.all([10, 11, 12, 13].map((id) => session.send({ id, key: `fast/${id % 2}`, records: records(`f${id}`) })))
    // The slow log's appends are still waiting; the others are answered, each log in order.
    expect(session.answers.map((a) => a.id)).toEqual([10, 11, 12, 13])
    expect(fast.map((a) => a.offsets)).toEqual([[0], [0], [1], [1]])
    Effect.runSync(Deferred.succeed(gate, undefined))
    const answered = await Promise.all(slow)
    expect(answered.map((a) => a.offsets)).toEqual([[0], [1], [2]])
    expect(session.answers.map((a) => a.id)).toEqual([10, 11, 12, 13, 1, 2, 3])
    session.close()
    expect(await session.closed).toBe(1005)
  })

  it("stops reading frames at the in-flight bound, and reads on as appends are answered", async () => {
    gate = Deferred.makeUnsafe<void>()
    const session = await openSession(url)
    const before = started
    const bound = Limits.appendSessionAppendsMax
    const sent = Array.from({ length: bound + 50 }, (_, id) => session.send({ id, key: `slow/bound/${id}`, records: records("x") }))
    await new Promise((r) => setTimeout(r, 300))
    // Exactly the bound's worth of appends taken (each to its own log, so none waits for another); the
    // rest wait unread in the connection.
    expect(started - before).toBe(bound)
    Effect.runSync(Deferred.succeed(gate, undefined))
    const answers = await Promise.all(sent)
    expect(started - before).toBe(bound + 50)
    expect(answers.every((a) => a.error === undefined)).toBe(true)
    session.close()
  })

  it("answers a bad frame with the HTTP error body and goes on", async () => {
    const session = await openSession(url)
    const notJson = await session.sendRaw("{")
    expect(notJson).toMatchObject({ id: null, error: { error: "InvalidInput", field: "frame", status: 400 } })
    const binary = await session.sendRaw(Buffer.from(JSON.stringify({ id: 1, key: "k", records: records("x") })))
    expect(binary).toMatchObject({ id: null, error: { error: "InvalidInput", field: "frame", status: 400 } })
    const noId = await session.sendRaw(JSON.stringify({ key: "k", records: records("x") }))
    expect(noId).toMatchObject({ id: null, error: { field: "id", status: 400 } })
    const unknownField = await session.send({ id: 2, key: "k", records: records("x"), force: true })
    expect(unknownField).toMatchObject({ id: 2, error: { error: "InvalidInput", field: "force", status: 400 } })
    const badValue = await session.send({ id: 3, key: "k", records: [{ value: 1 }] })
    expect(badValue).toMatchObject({ id: 3, error: { field: "records[0].value", status: 400 } })
    const tooMany = await session.send({ id: 4, key: "k", records: Array.from({ length: 1001 }, () => ({ value: "x" })) })
    expect(tooMany).toMatchObject({ id: 4, error: { error: "LimitExceeded", field: "records", status: 413 } })
    const good = await session.send({ id: 5, key: "bad-frames/k", records: records("x") })
    expect(good).toEqual({ id: 5, offsets: [0], next: 1 })
    session.close()
  })

  it("refuses an id already in flight, and keys outside the session's prefix", async () => {
    gate = Deferred.makeUnsafe<void>()
    const session = await openSession(`${url}?prefix=slow/`)
    session.ws.send(JSON.stringify({ id: 7, key: "slow/b", records: records("x") }))
    // The first append with id 7 waits at the gate: the second one's answer is the refusal.
    const again = await session.send({ id: 7, key: "slow/b", records: records("y") })
    expect(again).toMatchObject({ id: 7, error: { field: "id", status: 400 } })
    const outside = await session.send({ id: 8, key: "fast/x", records: records("x") })
    expect(outside).toMatchObject({ id: 8, error: { field: "key", status: 400 } })
    const first = session.answerFor(7)
    Effect.runSync(Deferred.succeed(gate, undefined))
    expect((await first).offsets).toEqual([0])
    session.close()
  })

  it("answers 426 to a request without an upgrade, and 400 to an unknown parameter", async () => {
    const http = url.replace(/^ws/, "http")
    expect((await fetch(http)).status).toBe(426)
    const unknown = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`${url}?force=true`)
      ws.on("unexpected-response", (_request, response) => resolve(response.statusCode ?? 0))
      ws.on("open", () => resolve(101))
    })
    expect(unknown).toBe(400)
  })
})

// -------------------------------------------------------------------------------------------------
// End to end, on the real server
// -------------------------------------------------------------------------------------------------

describe("append session, end to end on the server process", () => {
  let server: ServerProcess
  beforeAll(async () => {
    server = await start({ OPENDATA_STORE: "memory" })
  })
  afterAll(killAll)

  const url = () => `${server.base.replace(/^http/, "ws")}/v1/append`
  const readValues = async (key: string) => {
    const response = await fetch(`${server.base}/v1/logs/${encodeURIComponent(key)}/records?limit=10000`)
    if (response.status === 404) return []
    const body = await response.json() as { records: Array<{ offset: number; value: string }> }
    return body.records.map((r) => `${r.offset}:${r.value}`)
  }

  it("takes 2,000 appends over 10 logs in flight at once; every log holds them in the order sent", async () => {
    const appendsCounted = async () => {
      const text = await (await fetch(`${server.base}/metrics`)).text()
      return Number(/^opendata_eventstore_appends_total (\S+)$/m.exec(text)?.[1] ?? Number.NaN)
    }
    const countedBefore = await appendsCounted()
    const session = await openSession(url())
    const prefix = `e2e-${Date.now().toString(36)}/`
    const sent = Array.from({ length: 2000 }, (_, id) => ({ id, key: `${prefix}${id % 10}`, records: records(`v${id}`) }))
    const answers = await Promise.all(sent.map((frame) => session.send(frame)))
    for (let k = 0; k < 10; k++) {
      const key = `${prefix}${k}`
      // Answers for one log come in the order its frames were sent, with consecutive offsets.
      const mine = session.answers.filter((a) => a.id !== null && sent[a.id]!.key === key)
      expect(mine.map((a) => a.id)).toEqual(sent.filter((f) => f.key === key).map((f) => f.id))
      expect(mine.map((a) => a.offsets![0])).toEqual(Array.from({ length: 200 }, (_, i) => i))
      expect(await readValues(key)).toEqual(sent.filter((f) => f.key === key).map((f, i) => `${i}:v${f.id}`))
    }
    expect(answers.every((a) => a.error === undefined)).toBe(true)
    // Every acknowledged append is counted in /metrics, once.
    expect((await appendsCounted()) - countedBefore).toBe(2000)
    session.close()
  })

  it("a client that stops reading its answers holds its appends; once it reads, everything is answered in order", async () => {
    const session = await openSession(url())
    const key = `bp-${Date.now().toString(36)}`
    session.ws.pause()
    const total = 3000
    for (let id = 0; id < total; id++) session.ws.send(JSON.stringify({ id, key, records: records("x".repeat(100)) }))
    await new Promise((r) => setTimeout(r, 500))
    const done = new Promise<void>((resolve) => {
      session.ws.on("message", () => {
        if (session.answers.length === total) resolve()
      })
    })
    session.ws.resume()
    await done
    expect(session.answers.map((a) => a.offsets?.[0])).toEqual(Array.from({ length: total }, (_, i) => i))
    expect((await readValues(key)).length).toBe(total)
    session.close()
  })

  it("loses nothing it acknowledged when the client closes mid-flight", async () => {
    const session = await openSession(url())
    const key = `close-${Date.now().toString(36)}`
    const acknowledged: Array<number> = []
    session.ws.on("message", (data) => {
      const a = JSON.parse(data.toString()) as Answer
      if (a.offsets !== undefined) acknowledged.push(a.offsets[0]!)
    })
    for (let id = 0; id < 500; id++) session.ws.send(JSON.stringify({ id, key, records: records(`v${id}`) }))
    await new Promise((r) => setTimeout(r, 5))
    session.ws.terminate()
    await session.closed
    await new Promise((r) => setTimeout(r, 200))
    const stored = await readValues(key)
    // Every acknowledged append is there, at its offset; what was not acknowledged may or may not be.
    for (const offset of acknowledged) expect(stored[offset]).toBe(`${offset}:v${offset}`)
    expect(stored.length).toBeGreaterThanOrEqual(acknowledged.length)
    // The log is whole: consecutive offsets, each value the frame of that position.
    expect(stored).toEqual(stored.map((_, i) => `${i}:v${i}`))
    // The server is fine: a new session appends after them.
    const again = await openSession(url())
    expect((await again.send({ id: 1, key, records: records("after") })).offsets).toEqual([stored.length])
    again.close()
  })
})
