/**
 * How the S3 adapter treats the network, against a loopback HTTP server that stalls: interrupting a
 * fiber aborts its request, and a request that gets no reply in time counts as unavailable. These run
 * without an S3 server.
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import { ObjectStore } from "@opendata/core"

process.env["AWS_EC2_METADATA_DISABLED"] = "true"

/** A server that answers bucket requests at once and never answers object requests. */
const stallingServer = Effect.acquireRelease(
  Effect.promise(
    () =>
      new Promise<{ server: http.Server; endpoint: string; stalled: Array<http.IncomingMessage>; closed: Array<string> }>(
        (resolve) => {
          const stalled: Array<http.IncomingMessage> = []
          const closed: Array<string> = []
          const server = http.createServer((req, res) => {
            if (req.url === "/bucket" || req.url === "/bucket/") {
              res.writeHead(200).end()
              return
            }
            stalled.push(req)
            req.socket.on("close", () => closed.push((req.url ?? "").split("?")[0]!))
          })
          server.listen(0, "127.0.0.1", () =>
            resolve({ server, endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, stalled, closed }))
        }
      )
  ),
  ({ server }) =>
    Effect.promise(() => {
      server.closeAllConnections()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    })
)

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

describe("ObjectStore S3 client", () => {
  it.live("aborts the HTTP request when the fiber is interrupted", () =>
    Effect.gen(function*() {
      const server = yield* stallingServer
      const store = yield* ObjectStore.ObjectStore.use(Effect.succeed).pipe(
        Effect.provide(ObjectStore.layerS3(settings(server.endpoint, 60_000)))
      )
      const fiber = yield* Effect.forkChild(store.get("some/key"))
      while (server.stalled.length === 0) yield* Effect.sleep("10 millis")
      yield* Fiber.interrupt(fiber)
      // The client closed the connection: the request is gone, not left running.
      for (let i = 0; i < 100 && server.closed.length === 0; i++) yield* Effect.sleep("10 millis")
      assert.deepStrictEqual(server.closed, ["/bucket/some/key"])
    }).pipe(Effect.scoped))

  it.live("counts a request without a reply in time as Unavailable, and a conditional one as OutcomeUnknown", () =>
    Effect.gen(function*() {
      const server = yield* stallingServer
      const store = yield* ObjectStore.ObjectStore.use(Effect.succeed).pipe(
        Effect.provide(ObjectStore.layerS3(settings(server.endpoint, 200)))
      )
      const got = yield* Effect.exit(store.get("slow"))
      assert.isTrue(Exit.isFailure(got))
      assert.match(String(got), /Unavailable/)
      const created = yield* Effect.exit(store.putIfAbsent("slow", new Uint8Array([1])))
      assert.match(String(created), /OutcomeUnknown/)
    }).pipe(Effect.scoped))
})
