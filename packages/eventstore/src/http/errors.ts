/**
 * The HTTP API's errors: its own (no such route, a method the route does not take, a WebSocket endpoint
 * called without the upgrade) beside the store's (see EventStore.ts), and the status, JSON envelope
 * (`{"error":"<code>","message":"...", ...}`) and headers each one is answered with.
 */
import { Cause, Effect, Schema } from "effect"
import { HttpServerResponse } from "effect/http"
import type { EventStoreError } from "../EventStore.ts"

/** 404: no such route. */
export class RouteNotFound extends Schema.TaggedError<RouteNotFound>()("NotFound", {
  method: Schema.String,
  path: Schema.String
}) {
  override get message() {
    return `no route for ${this.method} ${this.path}`
  }
}

/** 405: the route exists but not with this method. */
export class MethodNotAllowed extends Schema.TaggedError<MethodNotAllowed>()("MethodNotAllowed", {
  method: Schema.String,
  allow: Schema.Array(Schema.String)
}) {
  override get message() {
    return `method ${this.method} is not allowed here; use ${this.allow.join(", ")}`
  }
}

/** 426: a tail endpoint was called without a WebSocket upgrade. */
export class UpgradeRequired extends Schema.TaggedError<UpgradeRequired>()("UpgradeRequired", {}) {
  override get message() {
    return "this endpoint is a WebSocket: send an Upgrade: websocket request"
  }
}

export type ApiError = EventStoreError | RouteNotFound | MethodNotAllowed | UpgradeRequired

interface ErrorAnswer {
  readonly status: number
  readonly body: Record<string, unknown>
  readonly headers?: Record<string, string>
}

/** The status, JSON envelope and headers of every error the API answers with. */
export const errorAnswer = (e: ApiError): ErrorAnswer => {
  const body = (extra: Record<string, unknown>) => ({ error: e._tag, message: e.message, ...extra })
  switch (e._tag) {
    case "InvalidInput":
      return { status: 400, body: body({ field: e.field, reason: e.reason }) }
    case "LogNotFound":
      return { status: 404, body: body({ key: e.key }) }
    case "OffsetConflict":
      return { status: 409, body: body({ key: e.key, expected: e.expected, next: e.next }) }
    case "FencingConflict":
      return { status: 409, body: body({ key: e.key, next: e.next }) }
    case "LimitExceeded":
      return { status: 413, body: body({ field: e.field, limit: e.limit }) }
    case "OffsetTrimmed":
      return { status: 416, body: body({ key: e.key, requested: e.requested, first: e.first }) }
    case "EventStoreUnavailable":
      return { status: 503, body: body({ reason: e.reason }), headers: { "retry-after": "1" } }
    case "NotFound":
      return { status: 404, body: body({}) }
    case "MethodNotAllowed":
      return { status: 405, body: body({ allow: e.allow }), headers: { allow: e.allow.join(", ") } }
    case "UpgradeRequired":
      return { status: 426, body: body({}), headers: { upgrade: "websocket" } }
  }
}

export const errorResponse = (e: ApiError): HttpServerResponse.HttpServerResponse => {
  const answer = errorAnswer(e)
  return HttpServerResponse.jsonUnsafe(answer.body, {
    status: answer.status,
    ...(answer.headers !== undefined ? { headers: answer.headers } : {})
  })
}

const internalErrorResponse = HttpServerResponse.jsonUnsafe(
  { error: "InternalError", message: "internal error; see the server log" },
  { status: 500 }
)

/** Answers typed errors with their envelope, and any defect with a 500 (logged); interruption passes. */
export const answerErrors = <R>(
  effect: Effect.Effect<HttpServerResponse.HttpServerResponse, ApiError, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, R> =>
  effect.pipe(
    Effect.catch((e) => Effect.succeed(errorResponse(e))),
    Effect.catchCause((cause) =>
      Cause.hasInterruptsOnly(cause)
        ? Effect.failCause(cause)
        : Effect.as(Effect.logError("eventstore http: unexpected failure", cause), internalErrorResponse)
    )
  )
