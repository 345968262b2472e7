/**
 * The fault-injecting driver: wraps another driver and, driven by a seed, adds latency, fails calls with
 * `Unavailable` before they reach the store, loses the reply of writes that did happen, and hides freshly
 * written keys from listings for a while. Same seed, same sequence of calls: same faults.
 */
import { Clock, Effect } from "effect"
import { makePrng } from "../prng.ts"
import type { Driver, ListEntry } from "./model.ts"
import { OutcomeUnknown, Unavailable } from "./model.ts"

export interface FaultSettings {
  /** Root of every choice this wrapper makes. */
  readonly seed: number
  /** Probability that a call fails with `Unavailable` without reaching the store. */
  readonly unavailableRate?: number | undefined
  /**
   * Probability that a write which succeeded loses its reply: `OutcomeUnknown` for conditional writes,
   * `Unavailable` for plain puts and deletes (which are idempotent).
   */
  readonly lostReplyRate?: number | undefined
  /** Each call first waits a uniform random time in [0, latencyMsMax] milliseconds of `Clock` time. */
  readonly latencyMsMax?: number | undefined
  /** A key written less than this long ago (by `Clock`) is missing from listings. */
  readonly listingLagMs?: number | undefined
}

export const makeFaultyDriver = (inner: Driver, faults: FaultSettings): Driver => {
  const prng = makePrng(faults.seed)
  const unavailableRate = faults.unavailableRate ?? 0
  const lostReplyRate = faults.lostReplyRate ?? 0
  const latencyMsMax = faults.latencyMsMax ?? 0
  const listingLagMs = faults.listingLagMs ?? 0
  const writtenAtMs = new Map<string, number>()

  /** Latency, then maybe a refusal: the request never reached the store. */
  const before = (operation: string, key: string): Effect.Effect<void, Unavailable> =>
    Effect.suspend(() => {
      const delay = latencyMsMax > 0 ? prng.nextInt(latencyMsMax + 1) : 0
      const refuse = unavailableRate > 0 && prng.next() < unavailableRate
      const wait = delay > 0 ? Effect.sleep(`${delay} millis`) : Effect.void
      return refuse
        ? Effect.andThen(wait, Effect.fail(new Unavailable({ operation, key, reason: "injected fault: unavailable" })))
        : wait
    })

  const replyLost = () => lostReplyRate > 0 && prng.next() < lostReplyRate

  const noteWrite = (key: string) =>
    listingLagMs > 0 ? Effect.map(Clock.currentTimeMillis, (now) => void writtenAtMs.set(key, now)) : Effect.void

  /** Runs a write; `lostReply` is the error its caller sees if the reply is lost after it happened. */
  const write = <A, E, L>(operation: string, key: string, self: Effect.Effect<A, E>, lostReply: (reason: string) => L) =>
    Effect.gen(function*() {
      yield* before(operation, key)
      const result = yield* self
      yield* noteWrite(key)
      if (replyLost()) return yield* Effect.fail(lostReply("injected fault: reply lost after the write"))
      return result
    })
  const idempotent = (operation: string, key: string) => (reason: string) => new Unavailable({ operation, key, reason })
  const conditional = (operation: string, key: string, putId: string) => (reason: string) =>
    new OutcomeUnknown({ operation, key, putId, reason })

  return {
    name: `faulty(${inner.name})`,
    keyBytesMax: inner.keyBytesMax,
    get: (key, range) => Effect.andThen(before("get", key), inner.get(key, range)),
    head: (key) => Effect.andThen(before("head", key), inner.head(key)),
    put: (key, body, putId) => write("put", key, inner.put(key, body, putId), idempotent("put", key)),
    putIfAbsent: (key, body, putId) =>
      write("putIfAbsent", key, inner.putIfAbsent(key, body, putId), conditional("putIfAbsent", key, putId)),
    putIfMatch: (key, body, etag, putId) =>
      write("putIfMatch", key, inner.putIfMatch(key, body, etag, putId), conditional("putIfMatch", key, putId)),
    listPage: (prefix, startAfter, limit) =>
      Effect.gen(function*() {
        yield* before("list", prefix)
        const page = yield* inner.listPage(prefix, startAfter, limit)
        if (listingLagMs === 0) return page
        const now = yield* Clock.currentTimeMillis
        const visible = (entry: ListEntry) => {
          const at = writtenAtMs.get(entry.key)
          return at === undefined || now - at >= listingLagMs
        }
        return { entries: page.entries.filter(visible), next: page.next }
      }),
    delete: (key) => write("delete", key, inner.delete(key), idempotent("delete", key))
  }
}
