/**
 * A request's body: read whole, straight from a Node request's events where there is one, and refused
 * (413) beyond `requestBodyBytesMax` bytes before it is parsed; then parsed as JSON and decoded with a
 * route's schema.
 */
import { Effect, type Schema, Stream } from "effect"
import type { HttpServerRequest } from "effect/http"
import { InvalidInput, LimitExceeded } from "../EventStore.ts"
import { decodeWith, utf8Decoder } from "./codecs.ts"

/** A request body is refused (413) beyond this many bytes, before it is parsed. */
export const requestBodyBytesMax = 8 * 1024 * 1024

/** A Node request body not read yet (duck-typed: other platforms read through `request.stream`). */
interface NodeBody {
  readonly readableEnded: boolean
  on(event: "data" | "end" | "error" | "close", listener: (chunk?: unknown) => void): unknown
  off(event: "data" | "end" | "error" | "close", listener: (chunk?: unknown) => void): unknown
  resume(): unknown
}

const nodeBodyOf = (request: HttpServerRequest.HttpServerRequest): NodeBody | undefined => {
  const source = request.source as Partial<NodeBody> | undefined
  return typeof source === "object" && source !== null && source.readableEnded === false && typeof source.on === "function" &&
      typeof source.off === "function" && typeof source.resume === "function"
    ? source as NodeBody
    : undefined
}

const concatChunks = (chunks: ReadonlyArray<Uint8Array>, size: number) => {
  if (chunks.length === 1) return chunks[0]!
  const body = new Uint8Array(size)
  let at = 0
  for (const chunk of chunks) {
    body.set(chunk, at)
    at += chunk.length
  }
  return body
}

/**
 * A Node request's body read straight from its events: one callback effect per request instead of a
 * stream step per chunk (an append's body is one small chunk).
 */
const readNodeBody = (source: NodeBody, tooLarge: () => LimitExceeded): Effect.Effect<Uint8Array, InvalidInput | LimitExceeded> =>
  Effect.callback<Uint8Array, InvalidInput | LimitExceeded>((resume) => {
    const chunks: Array<Uint8Array> = []
    let size = 0
    const cleanup = () => {
      source.off("data", onData)
      source.off("end", onEnd)
      source.off("error", onError)
      source.off("close", onError)
    }
    const onData = (chunk: unknown) => {
      const bytes = chunk as Uint8Array
      size += bytes.length
      if (size > requestBodyBytesMax) {
        cleanup()
        source.resume() // the rest is discarded
        resume(Effect.fail(tooLarge()))
        return
      }
      chunks.push(bytes)
    }
    const onEnd = () => {
      cleanup()
      resume(Effect.succeed(concatChunks(chunks, size)))
    }
    const onError = () => {
      cleanup()
      resume(Effect.fail(new InvalidInput({ field: "body", reason: "could not be read" })))
    }
    source.on("data", onData)
    source.on("end", onEnd)
    source.on("error", onError)
    source.on("close", onError)
    return Effect.sync(cleanup)
  })

/** The request body, refused with 413 beyond `requestBodyBytesMax` bytes before anything is parsed. */
const readBody = (request: HttpServerRequest.HttpServerRequest): Effect.Effect<Uint8Array, InvalidInput | LimitExceeded> =>
  Effect.gen(function*() {
    // Errors are made only when they happen: constructing one captures a stack, too dear per request.
    const tooLarge = () => new LimitExceeded({ field: "body", limit: requestBodyBytesMax })
    const declared = request.headers["content-length"]
    if (declared !== undefined && Number(declared) > requestBodyBytesMax) return yield* tooLarge()
    const node = nodeBodyOf(request)
    if (node !== undefined) return yield* readNodeBody(node, tooLarge)
    const chunks: Array<Uint8Array> = []
    let size = 0
    yield* request.stream.pipe(
      Stream.runForEach((chunk) => {
        size += chunk.length
        if (size > requestBodyBytesMax) return Effect.fail(tooLarge())
        chunks.push(chunk)
        return Effect.void
      }),
      Effect.mapError((e) =>
        e instanceof LimitExceeded ? e : new InvalidInput({ field: "body", reason: "could not be read" })
      )
    )
    return concatChunks(chunks, size)
  })

/** The request body as JSON (UTF-8), not yet validated. */
export const readJson = (request: HttpServerRequest.HttpServerRequest): Effect.Effect<unknown, InvalidInput | LimitExceeded> =>
  Effect.flatMap(readBody(request), (bytes) =>
    Effect.suspend(() => {
      let text: string
      try {
        text = utf8Decoder.decode(bytes)
      } catch {
        return Effect.fail(new InvalidInput({ field: "body", reason: "is not valid UTF-8" }))
      }
      if (text.trim() === "") return Effect.fail(new InvalidInput({ field: "body", reason: "is required (JSON)" }))
      try {
        return Effect.succeed(JSON.parse(text) as unknown)
      } catch (e) {
        return Effect.fail(
          new InvalidInput({ field: "body", reason: `is not valid JSON (${e instanceof Error ? e.message : String(e)})` })
        )
      }
    }))

export const decodeBody = <S extends Schema.Top & { readonly DecodingServices: never }>(
  request: HttpServerRequest.HttpServerRequest,
  schema: S
): Effect.Effect<S["Type"], InvalidInput | LimitExceeded> =>
  Effect.flatMap(readJson(request), (json) => decodeWith(schema, json, "body", "field"))
