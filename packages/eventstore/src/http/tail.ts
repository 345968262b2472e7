/**
 * The WebSocket tail: a log's (or a key prefix's) tail events sent as JSON text messages on an upgraded
 * connection, by a fiber of its own once the request is answered, until the client closes, the server
 * shuts down or the tail fails. Also the connection's send-buffer back-pressure, which append sessions
 * share: a client that reads slowly is waited for, then closed (1008).
 */
import { Effect, Exit, Fiber, Schema, Scope } from "effect"
import { type HttpServerRequest, HttpServerResponse } from "effect/http"
import { Socket } from "effect/socket"
import type { InvalidInput, OffsetTrimmed, TailCursor, TailEvent, Unavailable } from "../EventStore.ts"
import { type Encoding, encodeRecords, type RecordJson } from "./codecs.ts"
import { errorAnswer } from "./errors.ts"

/** A tail message carries records of at most about this many bytes (at least one record). */
export const tailMessageBytesMax = 1024 * 1024
/** A tail stops sending while this many bytes wait in the connection's send buffer... */
export const tailSendBufferBytes = 1024 * 1024
/** ...and closes the socket (1008) if the client does not read them within this time. */
export const tailDrainTimeoutMs = 30_000

/** The close code of a tail that ends on an error: 4000 + its HTTP status (e.g. 4416 for OffsetTrimmed). */
export const tailErrorCloseCode = (status: number) => 4000 + status

/** The connection under a Node request (duck-typed, so other platforms simply get no back-pressure). */
interface SendBuffer {
  readonly writableLength: number
  readonly destroyed: boolean
  once(event: "drain" | "close", listener: () => void): unknown
  off(event: "drain" | "close", listener: () => void): unknown
  /** Node's: writes between `cork` and `uncork` leave in one system call. */
  cork?(): void
  uncork?(): void
}

export const sendBufferOf = (request: HttpServerRequest.HttpServerRequest): SendBuffer | undefined => {
  const socket = (request.source as { readonly socket?: unknown }).socket
  if (typeof socket !== "object" || socket === null) return undefined
  const s = socket as Partial<SendBuffer>
  return typeof s.writableLength === "number" && typeof s.once === "function" && typeof s.off === "function"
    ? (socket as SendBuffer)
    : undefined
}

class SlowConsumer extends Schema.TaggedError<SlowConsumer>()("SlowConsumer", {}) {}

/** Whether more than `tailSendBufferBytes` wait to be sent on the connection (the client reads slowly). */
export const needsDrain = (buffer: SendBuffer | undefined): buffer is SendBuffer =>
  buffer !== undefined && !buffer.destroyed && buffer.writableLength >= tailSendBufferBytes

/**
 * Waits while more than `tailSendBufferBytes` wait to be sent (the client reads slowly): the tail stream is
 * not pulled meanwhile, so the store falls back to reading storage for this subscriber.
 */
export const awaitDrain = (buffer: SendBuffer | undefined): Effect.Effect<void, SlowConsumer> =>
  !needsDrain(buffer)
    ? Effect.void
    : Effect.callback<void>((resume) => {
      const done = () => {
        cleanup()
        resume(Effect.void)
      }
      const cleanup = () => {
        buffer.off("drain", done)
        buffer.off("close", done)
      }
      buffer.once("drain", done)
      buffer.once("close", done)
      return Effect.sync(cleanup)
    }).pipe(
      Effect.timeoutOrElse({ duration: tailDrainTimeoutMs, orElse: () => Effect.fail(new SlowConsumer()) })
    )

/** The JSON messages of one tail event: records split into messages of about `tailMessageBytesMax`. */
const eventMessages = (event: TailEvent, encoding: Encoding): Effect.Effect<Array<string>, InvalidInput> => {
  if (event._tag === "heartbeat") {
    return Effect.succeed([
      JSON.stringify({
        type: "heartbeat",
        ...(event.key !== undefined ? { key: event.key } : {}),
        ...(event.next !== undefined ? { next: event.next } : {})
      })
    ])
  }
  return Effect.map(encodeRecords(event.records, encoding), (records) => {
    const messages: Array<string> = []
    let batch: Array<RecordJson> = []
    let bytes = 0
    const flush = () => {
      if (batch.length > 0) messages.push(JSON.stringify({ type: "records", key: event.key, records: batch }))
      batch = []
      bytes = 0
    }
    for (const r of records) {
      const size = r.value.length + 64
      if (batch.length > 0 && bytes + size > tailMessageBytesMax) flush()
      batch.push(r)
      bytes += size
    }
    flush()
    return messages
  })
}

/**
 * Where tails run once their connection is upgraded: fibers in the API's scope (interrupted when it closes),
 * ended at shutdown by one fiber that waits for the shutdown signal, rather than a fiber per tail; append
 * sessions hear of the shutdown from the same watcher.
 */
export interface TailHome {
  readonly scope: Scope.Scope
  /** Registers `end` to be called once the server begins to shut down; returns its removal. */
  readonly onShutdown: (end: () => void) => () => void
  /** Completes once the server begins to shut down (for a connection that waits in a fiber of its own). */
  readonly shutdown: Effect.Effect<void>
  /**
   * Runs an effect of a connection from a callback, in `scope`, with the API's services: not the request's,
   * which a connection would then hold for as long as it lives.
   */
  readonly run: <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E>
  /** As `run`, but not interrupted by the scope's close: a connection's own close, which must finish. */
  readonly runDetached: <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E>
}

export const makeTailHome = (shutdown: Effect.Effect<void>): Effect.Effect<TailHome, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const ends = new Set<() => void>()
    let shuttingDown = false
    // An idle tail has no fiber for the scope's close to interrupt: it is ended by its callback.
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        shuttingDown = true
        for (const end of ends) end()
        ends.clear()
      })
    )
    yield* Effect.forkScoped(Effect.andThen(
      shutdown,
      Effect.sync(() => {
        shuttingDown = true
        for (const end of ends) end()
        ends.clear()
      })
    ))
    const onShutdown = (end: () => void) => {
      if (shuttingDown) {
        end()
        return () => {}
      }
      ends.add(end)
      return () => {
        ends.delete(end)
      }
    }
    const runWith = Effect.runForkWith(yield* Effect.context<never>())
    return {
      scope,
      run: (effect) => Fiber.runIn(runWith(effect), scope),
      runDetached: runWith,
      onShutdown,
      shutdown: Effect.callback<void>((resume) => Effect.sync(onShutdown(() => resume(Effect.void))))
    }
  })

/**
 * Upgrades to a WebSocket and sends the tail's events as JSON text messages until the client closes, the
 * server shuts down (close 1001), or the tail fails (an error message, then a close with code 4000 +
 * status).
 *
 * Once the connection is upgraded the request is answered, and the tail goes on as passes: a pass is a
 * fiber in `home.scope` that polls the cursor and sends what it gives until it gives nothing, then asks
 * the cursor to call back when there is more (records, a loss to catch up from storage, or a heartbeat
 * due). An idle tail is that callback, its subscription and the connection: no fiber, and not a request
 * in the HTTP server's pipeline. The client's close and the server's shutdown end it by callback (an
 * interrupted tail closes with 1001). Messages from the client are not read: the socket keeps at most
 * 64 KiB of them, then stops reading the connection until the tail ends.
 */
export const serveTail = (
  request: HttpServerRequest.HttpServerRequest,
  open: Effect.Effect<TailCursor, InvalidInput | OffsetTrimmed | Unavailable, Scope.Scope>,
  encoding: Encoding,
  home: TailHome
): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
  Effect.gen(function*() {
    const socket = yield* request.upgrade
    const scope = yield* Scope.make()
    // The 101 handshake is sent when the reader is acquired.
    const opened = yield* Effect.exit(Scope.provide(Effect.andThen(socket.reader, socket.writer), scope)).pipe(
      // The request ended (the client gone) while upgrading: what was acquired goes with it.
      Effect.onInterrupt(() => Scope.close(scope, Exit.void))
    )
    if (Exit.isFailure(opened)) {
      yield* Scope.close(scope, Exit.void)
      return HttpServerResponse.empty()
    }
    const writer = opened.value
    const buffer = sendBufferOf(request)
    const send = (message: string) => Effect.andThen(awaitDrain(buffer), writer.write(message))

    /** Sends what the cursor has until it has nothing (true: the tail goes on) or the tail ended (false). */
    let cursor: TailCursor | undefined
    const pass: Effect.Effect<boolean> = Effect.gen(function*() {
      if (cursor === undefined) cursor = yield* Scope.provide(open, scope)
      for (;;) {
        const events = yield* cursor.poll
        if (events.length === 0) return true
        for (const event of events) {
          const messages = yield* eventMessages(event, encoding)
          for (const message of messages) yield* send(message)
        }
      }
    }).pipe(
      Effect.catch((e) => {
        const last = e._tag === "SlowConsumer"
          ? writer.write(new Socket.CloseEvent(1008, "client too slow"))
          : e._tag === "SocketError"
          ? Effect.void
          : Effect.suspend(() => {
            const answer = errorAnswer(e)
            return writer.write(JSON.stringify({ type: "error", status: answer.status, ...answer.body })).pipe(
              Effect.andThen(writer.write(new Socket.CloseEvent(tailErrorCloseCode(answer.status), e._tag)))
            )
          })
        return Effect.as(Effect.ignore(last), false)
      })
    )

    let running: Fiber.Fiber<boolean> | undefined
    let cancelWait: (() => void) | undefined
    let ended = false
    let closed = false
    const close = (exit: Exit.Exit<unknown, unknown>) => {
      if (closed) return
      closed = true
      buffer?.off("close", end)
      removeEnd()
      cancelWait?.()
      // Closes the socket (1001 if the tail was interrupted, else after its own close message) and ends the
      // subscription.
      home.runDetached(Scope.close(scope, exit))
    }
    const end = () => {
      ended = true
      if (running !== undefined) running.interruptUnsafe()
      else close(Exit.interrupt())
    }
    const startPass = () => {
      cancelWait = undefined
      if (closed || running !== undefined) return
      const fiber = home.run(pass)
      running = fiber
      fiber.addObserver((exit) => {
        running = undefined
        if (Exit.isSuccess(exit) && exit.value && !ended) cancelWait = cursor!.whenReady(startPass)
        else close(ended ? Exit.interrupt() : exit)
      })
    }
    // Set before `onShutdown`, which ends the tail at once (and so calls `close`) if the server is stopping.
    let removeEnd: () => void = () => {}
    buffer?.once("close", end)
    removeEnd = home.onShutdown(end)
    // Gone already (the client, or the server shutting down, meanwhile).
    if (buffer?.destroyed === true) end()
    else startPass()
    // The HTTP exchange ends here, switched to the WebSocket (what request metrics and logs record).
    return HttpServerResponse.empty({ status: 101 })
  }).pipe(
    Effect.catch(() => Effect.succeed(HttpServerResponse.empty()))
  )
