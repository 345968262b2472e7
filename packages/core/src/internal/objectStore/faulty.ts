/**
 * The fault-injecting driver: wraps another driver and, driven by a seed, adds latency, fails calls with
 * `Unavailable` before they reach the store, loses the reply of writes that did happen, lets writes land
 * late (after their caller was told they failed), hides freshly written keys from listings and keeps
 * freshly deleted ones in them for a while, and runs outage windows in which every request of a kind
 * fails or loses its reply. Same seed, same sequence of calls: same faults.
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
  /**
   * A key written less than this long ago (by `Clock`) is missing from listings, and one deleted less than
   * this long ago is still in them.
   */
  readonly listingLagMs?: number | undefined
  /**
   * Whether the lag varies over time, between 0 and `listingLagMs`, as a replica that falls behind and
   * catches up: each second of `Clock` time has a lag of its own, so that a listing may show what an
   * earlier one did not, and the reverse (default false: every listing lags by `listingLagMs`).
   */
  readonly listingLagVaries?: boolean | undefined
  /** Whether listings keep showing keys deleted less than `listingLagMs` ago (default true). */
  readonly listingShowsDeleted?: boolean | undefined
  /**
   * Probability that a write lands late: its caller is told it failed (`OutcomeUnknown` for a conditional
   * write, `Unavailable` otherwise) at once, and the store applies it up to `lateMsMax` later.
   */
  readonly lateRate?: number | undefined
  readonly lateMsMax?: number | undefined
  /** Windows of `Clock` time in which every request of a kind fails before the store, or loses its reply. */
  readonly outages?: ReadonlyArray<Outage> | undefined
}

/** From `startMs` (inclusive) to `endMs` (exclusive), every request of `operations` fails. */
export interface Outage {
  readonly startMs: number
  readonly endMs: number
  readonly operations: "writes" | "reads" | "lists" | "all"
  /** `refuse`: fails before the store; `loseReply`: writes reach the store, their replies are lost. */
  readonly mode: "refuse" | "loseReply"
}

type OperationKind = "writes" | "reads" | "lists"

export const makeFaultyDriver = (inner: Driver, faults: FaultSettings): Driver => {
  const prng = makePrng(faults.seed)
  const unavailableRate = faults.unavailableRate ?? 0
  const lostReplyRate = faults.lostReplyRate ?? 0
  const lostRequestRate = faults.lostRequestRate ?? 0
  const latencyMsMax = faults.latencyMsMax ?? 0
  const latencyMsMin = Math.min(faults.latencyMsMin ?? 0, latencyMsMax)
  const listingLagMs = faults.listingLagMs ?? 0
  /** The listing lag during the second that `nowMs` falls in. */
  const lagAt = (nowMs: number) =>
    faults.listingLagVaries === true ? makePrng((faults.seed ^ Math.floor(nowMs / 1000)) >>> 0).nextInt(listingLagMs + 1) : listingLagMs
  const lateRate = faults.lateRate ?? 0
  const lateMsMax = faults.lateMsMax ?? 0
  const outages = faults.outages ?? []
  const writtenAtMs = new Map<string, number>()
  /** Keys deleted less than `listingLagMs` ago, as listings still show them. */
  const deleted = new Map<string, { readonly entry: ListEntry; readonly atMs: number }>()

  /** The outage under way for this kind of request, if any. */
  const outageAt = (nowMs: number, kind: OperationKind) =>
    outages.find((o) => o.startMs <= nowMs && nowMs < o.endMs && (o.operations === "all" || o.operations === kind))

  /** Latency, then maybe a refusal: the request never reached the store. */
  const before = (operation: string, key: string, kind: OperationKind): Effect.Effect<void, Unavailable> =>
    Effect.gen(function*() {
      const delay = latencyMsMax > 0 ? latencyMsMin + prng.nextInt(latencyMsMax - latencyMsMin + 1) : 0
      const refuse = unavailableRate > 0 && prng.next() < unavailableRate
      if (delay > 0) yield* Effect.sleep(`${delay} millis`)
      const outage = outages.length === 0 ? undefined : outageAt(yield* Clock.currentTimeMillis, kind)
      if (refuse || (outage !== undefined && (outage.mode === "refuse" || kind !== "writes"))) {
        return yield* Effect.fail(new Unavailable({ operation, key, reason: outage !== undefined ? "injected fault: outage" : "injected fault: unavailable" }))
      }
    })

  /** Whether the reply of a write that reached the store is lost (at random, or in a reply-losing outage). */
  const replyLostAt = (nowMs: number) => outageAt(nowMs, "writes")?.mode === "loseReply" || replyLost()

  const replyLost = () => lostReplyRate > 0 && prng.next() < lostReplyRate

  const noteWrite = (key: string) =>
    listingLagMs > 0
      ? Effect.map(Clock.currentTimeMillis, (now) => {
        writtenAtMs.set(key, now)
        deleted.delete(key)
      })
      : Effect.void

  /** Runs a write; `lost` is the error its caller sees when the request or the reply is lost. */
  const write = <A, E, L>(
    operation: string,
    key: string,
    self: Effect.Effect<A, E>,
    lost: (reason: string) => L,
    conditional: boolean
  ) =>
    Effect.gen(function*() {
      yield* before(operation, key, "writes")
      if (conditional && lostRequestRate > 0 && prng.next() < lostRequestRate) {
        return yield* Effect.fail(lost("injected fault: request lost before the store"))
      }
      if (lateRate > 0 && prng.next() < lateRate) {
        // The request is stuck on the way: its caller gives up now, the store applies it later.
        const delay = 1 + prng.nextInt(Math.max(1, lateMsMax))
        yield* Effect.forkDetach(Effect.andThen(Effect.sleep(`${delay} millis`), Effect.andThen(Effect.exit(self), noteWrite(key))))
        return yield* Effect.fail(lost("injected fault: the request will land after its caller gave up"))
      }
      const exit = yield* Effect.exit(self)
      if (Exit.isSuccess(exit)) yield* noteWrite(key)
      if (replyLostAt(yield* Clock.currentTimeMillis)) return yield* Effect.fail(lost("injected fault: reply lost after the store handled the write"))
      return yield* exit
    })
  const idempotent = (operation: string, key: string) => (reason: string) => new Unavailable({ operation, key, reason })
  const conditional = (operation: string, key: string, putId: string) => (reason: string) =>
    new OutcomeUnknown({ operation, key, putId, reason })

  return {
    name: `faulty(${inner.name})`,
    keyBytesMax: inner.keyBytesMax,
    etagsUnique: inner.etagsUnique,
    get: (key, range) => Effect.andThen(before("get", key, "reads"), inner.get(key, range)),
    head: (key) => Effect.andThen(before("head", key, "reads"), inner.head(key)),
    put: (key, body, putId) => write("put", key, inner.put(key, body, putId), idempotent("put", key), false),
    putIfAbsent: (key, body, putId) =>
      write("putIfAbsent", key, inner.putIfAbsent(key, body, putId), conditional("putIfAbsent", key, putId), true),
    putIfMatch: (key, body, etag, putId) =>
      write("putIfMatch", key, inner.putIfMatch(key, body, etag, putId), conditional("putIfMatch", key, putId), true),
    listPage: (prefix, startAfter, limit) =>
      Effect.gen(function*() {
        yield* before("list", prefix, "lists")
        const page = yield* inner.listPage(prefix, startAfter, limit)
        if (listingLagMs === 0) return page
        const now = yield* Clock.currentTimeMillis
        const lagMs = lagAt(now)
        const visible = (entry: ListEntry) => {
          const at = writtenAtMs.get(entry.key)
          return at === undefined || now - at >= lagMs
        }
        // Keys deleted a moment ago that this page covers still show, as a lagging index would show them.
        const ghosts: Array<ListEntry> = []
        for (const [key, d] of deleted) {
          if (now - d.atMs >= listingLagMs) {
            deleted.delete(key)
            continue
          }
          if (now - d.atMs >= lagMs) continue
          if (!key.startsWith(prefix) || (startAfter !== undefined && key <= startAfter)) continue
          if (page.next !== undefined && key > page.next) continue
          ghosts.push(d.entry)
        }
        const entries = page.entries.filter(visible)
        if (ghosts.length === 0) return { entries, next: page.next }
        const present = new Set(entries.map((e) => e.key))
        const merged = [...entries, ...ghosts.filter((g) => !present.has(g.key))].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
        return { entries: merged, next: page.next }
      }),
    delete: (key) =>
      Effect.gen(function*() {
        // What the listing showed of the key, to keep showing it for the lag after it is gone.
        const shown = listingLagMs > 0 && faults.listingShowsDeleted !== false ? yield* Effect.option(inner.head(key)) : undefined
        yield* write("delete", key, inner.delete(key), idempotent("delete", key), false)
        if (shown !== undefined && shown._tag === "Some") {
          const { key: k, size, etag, lastModifiedMs } = shown.value
          deleted.set(key, { entry: { key: k, size, etag, lastModifiedMs }, atMs: yield* Clock.currentTimeMillis })
        }
      })
  }
}
