/**
 * The fault-injecting driver: wraps another driver and, driven by a seed, adds latency, fails calls with
 * `Unavailable` before they reach the store, loses the reply of writes that did happen, and hides freshly
 * written keys from listings for a while. Same seed, same sequence of calls: same faults.
 */
import { Clock, Effect, Exit } from "effect"
import { makePrng } from "../prng.ts"
import type { Driver, ListEntry } from "./model.ts"
import { OutcomeUnknown, Unavailable } from "./model.ts"

export interface FaultSettings {
  /** Root of every choice this wrapper makes. */
  readonly seed: number
  /** Probability that a call fails with `Unavailable` without reaching the store. */
  readonly unavailableRate?: number | undefined
  /**
   * Probability that a write's reply is lost after the store handled it (whether it succeeded or lost
   * its race): `OutcomeUnknown` for conditional writes, `Unavailable` for plain puts and deletes.
   */
  readonly lostReplyRate?: number | undefined
  /**
   * Probability that a conditional write's request is lost on the way: it never reaches the store, yet
   * the caller cannot tell and gets `OutcomeUnknown`.
   */
  readonly lostRequestRate?: number | undefined
  /** Each call first waits a uniform random time in [latencyMsMin, latencyMsMax] milliseconds of `Clock` time. */
  readonly latencyMsMax?: number | undefined
  readonly latencyMsMin?: number | undefined
  /** A key written less than this long ago (by `Clock`) is missing from listings. */
  readonly listingLagMs?: number | undefined
}

export const makeFaultyDriver = (inner: Driver, faults: FaultSettings): Driver => {
  const prng = makePrng(faults.seed)
  const unavailableRate = faults.unavailableRate ?? 0
  const lostReplyRate = faults.lostReplyRate ?? 0
  const lostRequestRate = faults.lostRequestRate ?? 0
  const latencyMsMax = faults.latencyMsMax ?? 0
  const latencyMsMin = Math.min(faults.latencyMsMin ?? 0, latencyMsMax)
  const listingLagMs = faults.listingLagMs ?? 0
  const writtenAtMs = new Map<string, number>()

  /** Latency, then maybe a refusal: the request never reached the store. */
  const before = (operation: string, key: string): Effect.Effect<void, Unavailable> =>
    Effect.suspend(() => {
      const delay = latencyMsMax > 0 ? latencyMsMin + prng.nextInt(latencyMsMax - latencyMsMin + 1) : 0
      const refuse = unavailableRate > 0 && prng.next() < unavailableRate
      const wait = delay > 0 ? Effect.sleep(`${delay} millis`) : Effect.void
      return refuse
        ? Effect.andThen(wait, Effect.fail(new Unavailable({ operation, key, reason: "injected fault: unavailable" })))
        : wait
    })

  const replyLost = () => lostReplyRate > 0 && prng.next() < lostReplyRate

  const noteWrite = (key: string) =>
    listingLagMs > 0 ? Effect.map(Clock.currentTimeMillis, (now) => void writtenAtMs.set(key, now)) : Effect.void

  /** Runs a write; `lost` is the error its caller sees when the request or the reply is lost. */
  const write = <A, E, L>(
    operation: string,
    key: string,
    self: Effect.Effect<A, E>,
    lost: (reason: string) => L,
    conditional: boolean
  ) =>
    Effect.gen(function*() {
      yield* before(operation, key)
      if (conditional && lostRequestRate > 0 && prng.next() < lostRequestRate) {
        return yield* Effect.fail(lost("injected fault: request lost before the store"))
      }
      const exit = yield* Effect.exit(self)
      if (Exit.isSuccess(exit)) yield* noteWrite(key)
      if (replyLost()) return yield* Effect.fail(lost("injected fault: reply lost after the store handled the write"))
      return yield* exit
    })
  const idempotent = (operation: string, key: string) => (reason: string) => new Unavailable({ operation, key, reason })
  const conditional = (operation: string, key: string, putId: string) => (reason: string) =>
    new OutcomeUnknown({ operation, key, putId, reason })

  return {
    name: `faulty(${inner.name})`,
    keyBytesMax: inner.keyBytesMax,
    etagsUnique: inner.etagsUnique,
    get: (key, range) => Effect.andThen(before("get", key), inner.get(key, range)),
    head: (key) => Effect.andThen(before("head", key), inner.head(key)),
    put: (key, body, putId) => write("put", key, inner.put(key, body, putId), idempotent("put", key), false),
    putIfAbsent: (key, body, putId) =>
      write("putIfAbsent", key, inner.putIfAbsent(key, body, putId), conditional("putIfAbsent", key, putId), true),
    putIfMatch: (key, body, etag, putId) =>
      write("putIfMatch", key, inner.putIfMatch(key, body, etag, putId), conditional("putIfMatch", key, putId), true),
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
    delete: (key) => write("delete", key, inner.delete(key), idempotent("delete", key), false)
  }
}
