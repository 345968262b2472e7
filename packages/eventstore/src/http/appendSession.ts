/**
 * Append sessions (`/v1/append`): many appends in flight on one WebSocket, each a JSON text frame, each
 * answered once durable (or refused), in the order of its log's frames, with back-pressure on the reading
 * of frames.
 */
import { Deferred, Effect, Exit, Option } from "effect"
import { type HttpServerRequest, HttpServerResponse } from "effect/http"
import { Socket } from "effect/socket"
import { type AppendResult, type EventStoreError, type EventStoreShape, InvalidInput, LimitExceeded } from "../EventStore.ts"
import * as Limits from "../limits.ts"
import { takeAppend, type TakenAppend } from "../internal/appendJson.ts"
import { requestBodyBytesMax } from "./body.ts"
import { AppendFrameBase64, AppendFrameUtf8, type AppendSessionQuery, appendOptions, decodeSync, inputRecords } from "./codecs.ts"
import { type ApiError, errorAnswer } from "./errors.ts"
import { awaitDrain, needsDrain, sendBufferOf } from "./tail.ts"

/** An append session's answer to a frame it cannot take: the HTTP error body with its status. */
const errorFrame = (id: number | null, e: ApiError): string => {
  const answer = errorAnswer(e)
  return JSON.stringify({ id, error: { ...answer.body, status: answer.status } })
}

/**
 * An append session: upgrades to a WebSocket and takes JSON text frames, each one append
 * (`{"id", "key", "records", "expectedOffset"?, "fencingToken"?, "producerId"?, "producerSeq"?, "encoding"?}`), many in
 * flight; answers each once it is durable (`{"id", "offsets", "next"}`) or refused (`{"id", "error"}`).
 *
 * Frames are read and validated in order, synchronously; an append the store can decide at once
 * (`appendNow`: its log's state is in memory) is decided right there and answered from the store's
 * durability callback, with no effect of its own. One that must wait (its log's state is read from
 * storage, or the store pushes back) runs in a fiber of its own, as do the later appends to its log until
 * it is decided: a log that waits holds up only itself. Answers for one log go out in the order of its
 * frames (each log keeps a queue of its unanswered appends); one sender fiber writes them. At most
 * `appendSessionAppendsMax` appends (`appendSessionBytesMax` bytes of frames) are in flight, counted until
 * their answers are written: then the server stops reading, which stops the client's sends. A frame that is
 * not valid is answered with its error (`id` null when the frame has no valid id) and appends nothing; the
 * session goes on.
 */
export const serveAppendSession = (
  request: HttpServerRequest.HttpServerRequest,
  store: EventStoreShape,
  query: typeof AppendSessionQuery.Type,
  shutdown: Effect.Effect<void>
): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
  Effect.gen(function*() {
    const frameSchema = query.encoding === "base64" ? AppendFrameBase64 : AppendFrameUtf8
    const prefix = query.prefix ?? ""
    const socket = yield* request.upgrade
    const reader = yield* socket.reader
    const writer = yield* socket.writer
    const scope = yield* Effect.scope

    /** An append in flight: answered once it has its message and every earlier one to its log is answered. */
    interface InFlight {
      readonly id: number
      readonly key: string
      readonly weight: number
      message: string | undefined
    }
    const inFlight = new Set<number>()
    let bytesInFlight = 0
    /** Per log, its unanswered appends in frame order. */
    const unanswered = new Map<string, Array<InFlight>>()
    /** Per log, the decision its appends wait for (an append that could not be decided at once). */
    const undecided = new Map<string, Deferred.Deferred<void>>()
    /** Answers ready to write, in order; `done` frees an append's room once written. */
    const outbox: Array<{ readonly message: string; readonly done?: InFlight | undefined }> = []
    let wakeSender: Deferred.Deferred<void> | undefined
    /** Signalled when a written answer frees room for more appends. */
    let room: Deferred.Deferred<void> | undefined

    const post = (message: string, done?: InFlight) => {
      outbox.push({ message, done })
      if (wakeSender !== undefined) {
        const wake = wakeSender
        wakeSender = undefined
        Deferred.doneUnsafe(wake, Exit.void)
      }
    }
    /** Records an append's answer; posts every answer of its log that is now due. */
    const complete = (entry: InFlight, message: string) => {
      entry.message = message
      const queue = unanswered.get(entry.key)
      if (queue === undefined) return
      while (queue.length > 0 && queue[0]!.message !== undefined) {
        const due = queue.shift()!
        post(due.message!, due)
      }
      if (queue.length === 0) unanswered.delete(entry.key)
    }
    const answered = (id: number, result: AppendResult) => JSON.stringify({ id, offsets: result.offsets, next: result.next })

    // Answers wait while the client does not read them (its connection's send buffer is full), which holds
    // their appends in flight, which stops the reading of frames: backpressure end to end. A client that
    // reads nothing for `tailDrainTimeoutMs` is closed with 1008.
    const buffer = sendBufferOf(request)
    const tooSlow = Deferred.makeUnsafe<void>()
    /** Writes the answers due at once: one socket write for all of them (the connection is corked meanwhile). */
    const writeReady = (): Effect.Effect<void, Socket.SocketError> => {
      const ready = outbox.splice(0)
      const messages = ready.map((r) => r.message)
      buffer?.cork?.()
      return writer.writeAll(messages as [string, ...Array<string>]).pipe(
        Effect.ensuring(Effect.sync(() => {
          buffer?.uncork?.()
          for (const { done } of ready) {
            if (done === undefined) continue
            inFlight.delete(done.id)
            bytesInFlight -= done.weight
          }
          if (room !== undefined) {
            const r = room
            room = undefined
            Deferred.doneUnsafe(r, Exit.void)
          }
        }))
      )
    }
    const sender: Effect.Effect<never, Socket.SocketError> = Effect.forever(
      Effect.suspend(() => {
        if (outbox.length === 0) {
          wakeSender = Deferred.makeUnsafe<void>()
          return Deferred.await(wakeSender)
        }
        // Past the send buffer's bound, wait for the client to read (or close it as too slow).
        if (needsDrain(buffer)) return Effect.catchTag(awaitDrain(buffer), "SlowConsumer", () => Deferred.succeed(tooSlow, undefined))
        return writeReady()
      })
    )

    /** The answer of an append once it is settled. */
    const answerOf = (id: number, outcome: Exit.Exit<AppendResult, EventStoreError>): Effect.Effect<string> => {
      if (Exit.isSuccess(outcome)) return Effect.succeed(answered(id, outcome.value))
      const error = Exit.findErrorOption(outcome)
      if (Option.isSome(error)) return Effect.succeed(errorFrame(id, error.value))
      return Effect.as(
        Effect.logError("eventstore append session: unexpected failure", outcome.cause),
        JSON.stringify({ id, error: { error: "InternalError", message: "internal error; see the server log", status: 500 } })
      )
    }

    /** Validates a frame (synchronously): the append to run, or the refusal to send. */
    const validate = (data: string | Uint8Array): { readonly id: number; readonly size: number; readonly key: string; readonly append: TakenAppend } | string => {
      if (typeof data !== "string") return errorFrame(null, new InvalidInput({ field: "frame", reason: "must be a text frame holding one JSON append" }))
      const size = Buffer.byteLength(data, "utf8")
      if (size > requestBodyBytesMax) return errorFrame(null, new LimitExceeded({ field: "frame", limit: requestBodyBytesMax }))
      let json: unknown
      try {
        json = JSON.parse(data)
      } catch (e) {
        return errorFrame(null, new InvalidInput({ field: "frame", reason: `is not valid JSON (${e instanceof Error ? e.message : String(e)})` }))
      }
      const rawId = typeof json === "object" && json !== null ? (json as { readonly id?: unknown }).id : undefined
      const id = Number.isSafeInteger(rawId) && (rawId as number) >= 0 ? rawId as number : null
      if (id === null) return errorFrame(null, new InvalidInput({ field: "id", reason: "must be a non-negative integer" }))
      if (inFlight.has(id)) return errorFrame(id, new InvalidInput({ field: "id", reason: "is already in flight in this session" }))
      const raw = (json as { readonly records?: unknown }).records
      if (Array.isArray(raw) && raw.length > Limits.batchRecordsMax) return errorFrame(id, new LimitExceeded({ field: "records", limit: Limits.batchRecordsMax }))
      // A frame's own `encoding` wins over the session's.
      const encoding = (json as { readonly encoding?: unknown }).encoding
      const schema = encoding === "base64" ? AppendFrameBase64 : encoding === "utf8" ? AppendFrameUtf8 : frameSchema
      // The plain shape in one pass; anything else through the schema (and its error).
      let key: string
      let append = schema === AppendFrameUtf8 ? takeAppend(json, true) : undefined
      if (append !== undefined) {
        key = (json as { readonly key: string }).key
      } else {
        const body = decodeSync(schema, json, "frame", "field")
        if (body instanceof InvalidInput) return errorFrame(id, body)
        key = body.key
        append = { records: inputRecords(body), options: appendOptions(body) }
      }
      if (!key.startsWith(prefix)) {
        return errorFrame(id, new InvalidInput({ field: "key", reason: `must start with the session's prefix ${JSON.stringify(prefix)}` }))
      }
      return { id, size, key, append }
    }

    /**
     * Takes one frame: answers it or decides it at once (undefined), or gives the effect that starts the fiber
     * that decides it.
     */
    const frame = (data: string | Uint8Array): Effect.Effect<void> | undefined => {
      const valid = validate(data)
      if (typeof valid === "string") {
        post(valid)
        return undefined
      }
      const { id, key } = valid
      const entry: InFlight = { id, key, weight: Math.min(valid.size, Limits.appendSessionBytesMax), message: undefined }
      inFlight.add(id)
      bytesInFlight += entry.weight
      const queue = unanswered.get(key)
      if (queue === undefined) unanswered.set(key, [entry])
      else queue.push(entry)
      const { options, records } = valid.append
      const previous = undecided.get(key)
      if (previous === undefined && store.appendNow !== undefined) {
        const decided = store.appendNow(key, records, options)
        if (decided !== undefined) {
          if ("result" in decided) {
            decided.whenDurable((failure) => complete(entry, failure === undefined ? answered(id, decided.result) : errorFrame(id, failure)))
          } else {
            complete(entry, errorFrame(id, decided))
          }
          return undefined
        }
      }
      // Decided in a fiber: the log's later appends wait for this decision.
      const mine = Deferred.makeUnsafe<void>()
      undecided.set(key, mine)
      const decide = () => {
        Deferred.doneUnsafe(mine, Exit.void)
        if (undecided.get(key) === mine) undecided.delete(key)
      }
      const run = Effect.gen(function*() {
        if (previous !== undefined) yield* Deferred.await(previous)
        const queued = yield* Effect.exit(store.appendQueued(key, records, options))
        decide()
        const outcome: Exit.Exit<AppendResult, EventStoreError> = Exit.isSuccess(queued)
          ? yield* Effect.exit(Effect.as(queued.value.durable, queued.value.result))
          : Exit.failCause(queued.cause)
        complete(entry, yield* answerOf(id, outcome))
      }).pipe(Effect.ensuring(Effect.sync(decide)))
      return Effect.asVoid(Effect.forkIn(run, scope))
    }

    /** Backpressure: room for another append in flight, else wait for it (and so read no more frames). */
    const hasRoom = () => inFlight.size < Limits.appendSessionAppendsMax && bytesInFlight < Limits.appendSessionBytesMax
    const awaitRoom: Effect.Effect<void> = Effect.suspend(() => {
      if (hasRoom()) return Effect.void
      room ??= Deferred.makeUnsafe<void>()
      return Effect.andThen(Deferred.await(room), awaitRoom)
    })

    /** Takes the frames of one read from `from` on, synchronously while there is room and nothing to fork. */
    const takeFrames = (frames: ReadonlyArray<string | Uint8Array>, from: number): Effect.Effect<void> => {
      for (let i = from; i < frames.length; i++) {
        if (!hasRoom()) return Effect.andThen(awaitRoom, Effect.suspend(() => takeFrames(frames, i)))
        const fork = frame(frames[i]!)
        if (fork !== undefined) return Effect.andThen(fork, Effect.suspend(() => takeFrames(frames, i + 1)))
      }
      return Effect.void
    }

    const readLoop = Effect.forever(Effect.flatMap(reader.pull, (frames) => takeFrames(frames, 0))).pipe(Effect.ignore)
    const serverGone = Effect.andThen(shutdown, writer.write(new Socket.CloseEvent(1001, "server shutting down"))).pipe(
      Effect.ignore
    )
    const clientTooSlow = Effect.andThen(Deferred.await(tooSlow), writer.write(new Socket.CloseEvent(1008, "client too slow"))).pipe(
      Effect.ignore
    )
    yield* Effect.raceAllFirst([readLoop, Effect.ignore(sender), serverGone, clientTooSlow])
    return HttpServerResponse.empty()
  }).pipe(
    Effect.catch(() => Effect.succeed(HttpServerResponse.empty())),
    Effect.scoped
  )
