/**
 * How the S3 adapter treats the network, against a loopback HTTP server that misbehaves: it stalls,
 * trickles a body, ignores `Range`, or has no bucket. Interrupting a fiber aborts its request (body
 * included), a request that does not complete in time counts as unavailable, and a whole object sent
 * back to a ranged read is sliced. These run without an S3 server.
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import { ObjectStore } from "@opendata/core"

process.env["AWS_EC2_METADATA_DISABLED"] = "true"

interface Loopback {
  readonly endpoint: string
  /** Object requests received, as `METHOD path` (query string dropped). */
  readonly requests: Array<string>
  /** The `Range` header of each object request, `undefined` when absent. */
  readonly ranges: Array<string | undefined>
  /** Paths of object requests whose socket closed. */
  readonly closed: Array<string>
}

/** A server that answers bucket requests with 200 and object requests with `handle`. */
const loopback = (handle: (req: http.IncomingMessage, res: http.ServerResponse) => void) =>
  Effect.acquireRelease(
    Effect.promise(
      () =>
        new Promise<{ server: http.Server; loopback: Loopback }>((resolve) => {
          const requests: Array<string> = []
          const ranges: Array<string | undefined> = []
          const closed: Array<string> = []
          const server = http.createServer((req, res) => {
            const path = (req.url ?? "").split("?")[0]!
            if (path === "/bucket" || path === "/bucket/") {
              res.writeHead(200).end()
              return
            }
            requests.push(`${req.method} ${path}`)
            ranges.push(req.headers.range)
            req.socket.on("close", () => closed.push(path))
            handle(req, res)
          })
          server.listen(0, "127.0.0.1", () =>
            resolve({
              server,
              loopback: { endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests, ranges, closed }
            }))
        })
    ),
    ({ server }) =>
      Effect.promise(() => {
        server.closeAllConnections()
        return new Promise<void>((resolve) => server.close(() => resolve()))
      })
  ).pipe(Effect.map(({ loopback }) => loopback))

const objectHeaders = () => ({
  "Content-Type": "application/octet-stream",
  ETag: "\"0123456789abcdef0123456789abcdef\"",
  "Last-Modified": new Date(0).toUTCString()
})

/** Never answers. */
const stall = () => {}

/** Answers a GET with 200 and a 1000-byte body, one byte every 100 ms (100 s in all). */
const trickle = (_req: http.IncomingMessage, res: http.ServerResponse) => {
  res.writeHead(200, { ...objectHeaders(), "Content-Length": "1000" })
  res.write(new Uint8Array(1))
  let sent = 1
  const timer = setInterval(() => {
    res.write(new Uint8Array(1))
    if (++sent === 1000) {
      clearInterval(timer)
      res.end()
    }
  }, 100)
  res.on("close", () => clearInterval(timer))
}

const digits = new TextEncoder().encode("0123456789")

/** Answers every GET with the whole object (200, no Content-Range), as a server that ignores `Range`. */
const ignoreRange = (_req: http.IncomingMessage, res: http.ServerResponse) => {
  res.writeHead(200, { ...objectHeaders(), "Content-Length": String(digits.length) }).end(digits)
}

/** Answers every request as S3 does when the bucket is gone. */
const noBucket = (req: http.IncomingMessage, res: http.ServerResponse) => {
  req.resume()
  const body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" +
    "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>"
  res.writeHead(404, { "Content-Type": "application/xml", "Content-Length": String(body.length) }).end(body)
}

const settings = (endpoint: string, requestTimeoutMs: number): ObjectStore.S3Settings & ObjectStore.StoreSettings => ({
  bucket: "bucket",
  endpoint,
  region: "us-east-1",
  credentials: { accessKeyId: "k", secretAccessKey: "s" },
  forcePathStyle: true,
  requestTimeoutMs,
  preflight: false,
  retry: { retriesMax: 1, delayBaseMs: 1, delayMaxMs: 1 }
})

const open = (server: Loopback, requestTimeoutMs: number) =>
  ObjectStore.ObjectStore.use(Effect.succeed).pipe(Effect.provide(ObjectStore.layerS3(settings(server.endpoint, requestTimeoutMs))))

/** Waits (up to ~5 s) until `done` holds. */
const until = (done: () => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 500 && !done(); i++) yield* Effect.sleep("10 millis")
  })

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

describe("ObjectStore S3 client", () => {
  it.live("aborts the HTTP request when the fiber is interrupted", () =>
    Effect.gen(function*() {
      const server = yield* loopback(stall)
      const store = yield* open(server, 60_000)
      const fiber = yield* Effect.forkChild(store.get("some/key"))
      yield* until(() => server.requests.length > 0)
      yield* Fiber.interrupt(fiber)
      // The client closed the connection: the request is gone, not left running.
      yield* until(() => server.closed.length > 0)
      assert.deepStrictEqual(server.closed, ["/bucket/some/key"])
    }).pipe(Effect.scoped))

  it.live("counts a request without a reply in time as Unavailable, and a conditional one as OutcomeUnknown", () =>
    Effect.gen(function*() {
      const server = yield* loopback(stall)
      const store = yield* open(server, 200)
      const got = yield* Effect.exit(store.get("slow"))
      assert.isTrue(Exit.isFailure(got))
      assert.match(String(got), /Unavailable/)
      const created = yield* Effect.exit(store.putIfAbsent("slow", new Uint8Array([1])))
      assert.match(String(created), /OutcomeUnknown/)
    }).pipe(Effect.scoped))

  it.live("counts a body that does not arrive in time as Unavailable", () =>
    Effect.gen(function*() {
      // Headers come at once, the body would take 100 s (past the test's own timeout): the request timeout
      // covers the whole exchange, so two attempts fail long before.
      const server = yield* loopback(trickle)
      const store = yield* open(server, 500)
      const error = yield* Effect.flip(store.get("slow"))
      assert.strictEqual(error._tag, "Unavailable")
      assert.deepStrictEqual(server.requests, ["GET /bucket/slow", "GET /bucket/slow"])
    }).pipe(Effect.scoped))

  it.live("closes the connection when the fiber is interrupted while the body arrives", () =>
    Effect.gen(function*() {
      const server = yield* loopback(trickle)
      const store = yield* open(server, 60_000)
      const fiber = yield* Effect.forkChild(store.get("slow"))
      yield* until(() => server.requests.length > 0)
      // Let the headers reach the client, so that it is reading the body when interrupted.
      yield* Effect.sleep("300 millis")
      yield* Fiber.interrupt(fiber)
      yield* until(() => server.closed.length > 0)
      assert.deepStrictEqual(server.closed, ["/bucket/slow"])
    }).pipe(Effect.scoped))

  it.live("slices a ranged read answered with the whole object", () =>
    Effect.gen(function*() {
      const server = yield* loopback(ignoreRange)
      const store = yield* open(server, 5_000)
      const middle = yield* store.get("k", { start: 2, end: 5 })
      assert.strictEqual(text(middle.body), "234")
      assert.strictEqual(middle.meta.size, 10)
      assert.strictEqual(text((yield* store.get("k", { start: 8 })).body), "89")
      assert.strictEqual(text((yield* store.get("k", { start: 3, end: 100 })).body), "3456789")
      assert.strictEqual(text((yield* store.get("k")).body), "0123456789")
      const past = yield* Effect.flip(store.get("k", { start: 10 }))
      assert.strictEqual(past._tag, "InvalidRange")
      assert.deepStrictEqual(server.ranges, ["bytes=2-4", "bytes=8-", "bytes=3-99", undefined, "bytes=10-"])
    }).pipe(Effect.scoped))

  it.live("fails a create in a missing bucket as Unavailable, and a compare-and-set as lost", () =>
    Effect.gen(function*() {
      // A 404 on PUT means no bucket: the write surely did not happen, so its outcome is known.
      const server = yield* loopback(noBucket)
      const store = yield* open(server, 5_000)
      const created = yield* Effect.flip(store.putIfAbsent("k", new Uint8Array([1])))
      assert.strictEqual(created._tag, "Unavailable")
      assert.match(created.message, /no such bucket/)
      assert.deepStrictEqual(server.requests, ["PUT /bucket/k", "PUT /bucket/k"])
      const replaced = yield* Effect.flip(store.putIfMatch("k", new Uint8Array([1]), "0123456789abcdef0123456789abcdef"))
      assert.strictEqual(replaced._tag, "PreconditionFailed")
    }).pipe(Effect.scoped))
})
