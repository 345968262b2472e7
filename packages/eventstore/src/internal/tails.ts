/**
 * The tail registry: one reader of the Db's change feed for the whole store, and the tail subscribers
 * indexed by the log they follow (and, for prefix tails, by prefix). A durable batch is parsed once and
 * wakes only the subscribers of the logs it touched, so idle tails cost nothing per batch and many tails
 * cost one pass over each batch rather than one each.
 *
 * A subscriber never blocks the feed: deliveries wait in its buffer (at most `tailBufferRecords` records);
 * past that, or when the feed itself skipped batches, the buffer is dropped and the subscriber is told it
 * `lost` deliveries, and catches up from storage (which has every durable record exactly once).
 */
import { Clock, Effect, Scope } from "effect"
import type { Db as CoreDb } from "@opendata/core"
import * as Limits from "../limits.ts"
import * as K from "./keys.ts"
import { decodeAt, nextRecord, openBatch } from "./record.ts"
import type { LogRecord } from "../EventStore.ts"

/** What a subscriber takes: records of one log from one durable batch, in offset order. */
export interface Delivery {
  readonly key: string
  readonly records: ReadonlyArray<LogRecord>
}

/**
 * What a subscriber has now: deliveries, `lost` (some were dropped: read storage to catch up), `idle` (a wait
 * passed its deadline with nothing: time for a heartbeat), or `none`.
 */
export type Taken =
  | { readonly _tag: "deliveries"; readonly deliveries: ReadonlyArray<Delivery> }
  | { readonly _tag: "lost" }
  | { readonly _tag: "idle" }
  | { readonly _tag: "none" }

/**
 * A subscriber's side of the registry, read by polling: no fiber waits while a tail is idle, only a
 * callback (`whenReady`) that a delivery, a loss or the deadline calls once.
 */
export interface Subscription {
  /** What there is now, without waiting. */
  readonly takeNow: () => Taken
  /**
   * Calls `ready` once there is something to take: at once (synchronously) if there is now, else on a
   * delivery, a loss, or `waitMs` from now (then `takeNow` gives `idle`). Returns the cancellation.
   */
  readonly whenReady: (waitMs: number, ready: () => void) => () => void
}

interface Subscriber {
  pending: Array<Delivery>
  pendingRecords: number
  lost: boolean
  /** A wait passed its deadline with nothing delivered. */
  due: boolean
  /** While waiting: the callback to call once. */
  wake: (() => void) | undefined
  /** While waiting: when (Clock ms) the wait ends with nothing. */
  deadline: number
}

const idle: Taken = { _tag: "idle" }
const none: Taken = { _tag: "none" }
const lost: Taken = { _tag: "lost" }

/** What a subscriber has to take now: its loss, its deliveries, a passed deadline, or nothing. */
const takeNow = (s: Subscriber): Taken => {
  if (s.lost) {
    s.lost = false
    return lost
  }
  if (s.pending.length > 0) {
    const deliveries = s.pending
    s.pending = []
    s.pendingRecords = 0
    s.due = false
    return { _tag: "deliveries", deliveries }
  }
  if (s.due) {
    s.due = false
    return idle
  }
  return none
}

const noCancel = () => {}

const hasNews = (s: Subscriber) => s.lost || s.pending.length > 0 || s.due

/** Ends a subscriber's wait (if it waits). */
const wakeUp = (s: Subscriber) => {
  const wake = s.wake
  s.wake = undefined
  if (wake !== undefined) wake()
}

export interface TailRegistry {
  /** Follows one log from now on (registered before this returns); ends with the scope. */
  readonly subscribeKey: (key: string) => Effect.Effect<Subscription, never, Scope.Scope>
  /** Follows every log whose key starts with `prefix` from now on; ends with the scope. */
  readonly subscribePrefix: (prefix: string) => Effect.Effect<Subscription, never, Scope.Scope>
}

const deliver = (s: Subscriber, d: Delivery) => {
  if (s.lost) return
  if (s.pendingRecords + d.records.length > Limits.tailBufferRecords) {
    // A slow subscriber: storage has what it dropped.
    s.pending = []
    s.pendingRecords = 0
    s.lost = true
  } else {
    s.pending.push(d)
    s.pendingRecords += d.records.length
  }
}

const markLost = (s: Subscriber) => {
  s.pending = []
  s.pendingRecords = 0
  s.lost = true
}

const latin1 = (b: Uint8Array, start: number, end: number) => Buffer.from(b.buffer, b.byteOffset + start, end - start).toString("latin1")

/** FNV-1a over `b[start, end)`: a log's key bytes, to pass over the records of logs nobody follows cheaply. */
const hashBytes = (b: Uint8Array, start: number, end: number): number => {
  let h = 0x811c9dc5
  for (let i = start; i < end; i++) h = Math.imul(h ^ b[i]!, 0x01000193)
  return h >>> 0
}

/** Runs the feed reader in `scope` (subscribed to the Db before this returns). */
export const makeTailRegistry = (db: CoreDb.DbShape, scope: Scope.Scope, heartbeatMs: number): Effect.Effect<TailRegistry> =>
  Effect.gen(function*() {
    const clock = yield* Clock.Clock
    /**
     * Subscribers waiting with nothing to take. One sweep every quarter heartbeat ends the waits that are
     * due, rather than a timer (and the fibers of a timeout race) per waiting subscriber: an idle tail holds
     * only its wait.
     */
    const waiting = new Set<Subscriber>()
    const sweepMs = Math.max(10, Math.floor(heartbeatMs / 4))
    const sweep = Effect.sync(() => {
      const now = clock.currentTimeMillisUnsafe()
      for (const s of waiting) {
        if (now < s.deadline) continue
        waiting.delete(s)
        s.due = true
        wakeUp(s)
      }
    })
    yield* Effect.forkIn(Effect.forever(Effect.andThen(Effect.sleep(`${sweepMs} millis`), sweep)), scope)
    const byKey = new Map<string, Set<Subscriber>>()
    const byPrefix = new Map<string, Set<Subscriber>>()
    /** The followed logs' and prefixes' UTF-8 bytes as latin1 strings, with how many subscriptions each. */
    const followedBytes = new Map<string, number>()
    const prefixBytes = new Map<string, number>()
    /** The hashes of the followed logs' key bytes, with how many subscriptions each. */
    const followedHashes = new Map<number, number>()
    const count = (index: Map<string, number>, name: string, by: number) => {
      const bytes = Buffer.from(name, "utf8")
      const raw = bytes.toString("latin1")
      const n = (index.get(raw) ?? 0) + by
      if (n === 0) index.delete(raw)
      else index.set(raw, n)
      if (index === followedBytes) {
        const h = hashBytes(bytes, 0, bytes.length)
        const m = (followedHashes.get(h) ?? 0) + by
        if (m === 0) followedHashes.delete(h)
        else followedHashes.set(h, m)
      }
    }
    const take = yield* Scope.provide(db.subscribe, scope)
    let lastSeq: number | undefined

    const wakeAll = (woken: Set<Subscriber>) =>
      Effect.sync(() => {
        for (const s of woken) {
          waiting.delete(s)
          wakeUp(s)
        }
      })

    /** Parses a batch once and hands each touched log's records to its subscribers. */
    const dispatch = (batch: CoreDb.DurableBatch) =>
      Effect.suspend(() => {
        const woken = new Set<Subscriber>()
        if (lastSeq !== undefined && batch.firstSeq !== lastSeq + 1) {
          // The feed dropped batches: every subscriber catches up from storage.
          for (const set of [...byKey.values(), ...byPrefix.values()]) {
            for (const s of set) {
              markLost(s)
              woken.add(s)
            }
          }
        }
        lastSeq = batch.lastSeq
        if (byKey.size === 0 && byPrefix.size === 0) return wakeAll(woken)
        // Records by log, decoded only for logs someone follows. A record's log is looked up by its key's
        // bytes (as a latin1 string: no UTF-8 decoding of the logs nobody follows).
        const records = new Map<string, Array<LogRecord>>()
        const wanted = new Map<string, string | null>()
        for (const e of batch.entries) {
          const k = e.key
          if (e.kind !== "put" || k[0] !== 0x72 || k.length < 10 || k[k.length - 9] !== 0) continue
          // Without prefix tails, a log is followed only if its key's hash is: most records stop here.
          if (byPrefix.size === 0 && !followedHashes.has(hashBytes(k, 1, k.length - 9))) continue
          const raw = latin1(k, 1, k.length - 9)
          let key = wanted.get(raw)
          if (key === undefined) {
            let want = followedBytes.has(raw)
            if (!want) for (const p of prefixBytes.keys()) if (raw.startsWith(p)) want = true
            key = want ? K.fromUtf8(k.subarray(1, k.length - 9)) : null
            wanted.set(raw, key)
          }
          if (key === null) continue
          let list = records.get(key)
          if (list === undefined) {
            list = []
            records.set(key, list)
          }
          const batch = openBatch(K.recordKeyOffset(k), e.value)
          while (nextRecord(batch)) list.push(decodeAt(batch))
        }
        for (const [key, list] of records) {
          // Offsets of one log are in order within a batch (sorted by seq, appends in offset order).
          const delivery: Delivery = { key, records: list }
          for (const s of byKey.get(key) ?? []) {
            deliver(s, delivery)
            woken.add(s)
          }
          for (const [p, set] of byPrefix) {
            if (!key.startsWith(p)) continue
            for (const s of set) {
              deliver(s, delivery)
              woken.add(s)
            }
          }
        }
        return wakeAll(woken)
      })

    // A batch that cannot be dispatched (a record that does not decode) must not stop every tail: its
    // subscribers read storage instead, which reports the damage to them.
    const dispatchOrCatchUp = (batch: CoreDb.DurableBatch) =>
      dispatch(batch).pipe(
        Effect.catchCause((cause) =>
          Effect.andThen(
            Effect.logError("tail registry: a durable batch could not be dispatched; tails read storage", cause),
            wakeAll(new Set([...byKey.values(), ...byPrefix.values()].flatMap((set) => [...set].map((s) => (markLost(s), s)))))
          )
        )
      )
    yield* Effect.forkIn(Effect.forever(Effect.flatMap(take, dispatchOrCatchUp)), scope)

    const subscribe = (index: Map<string, Set<Subscriber>>, name: string) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          count(index === byKey ? followedBytes : prefixBytes, name, 1)
          const s: Subscriber = { pending: [], pendingRecords: 0, lost: false, due: false, wake: undefined, deadline: 0 }
          let set = index.get(name)
          if (set === undefined) {
            set = new Set()
            index.set(name, set)
          }
          set.add(s)
          return s
        }),
        (s) =>
          Effect.sync(() => {
            count(index === byKey ? followedBytes : prefixBytes, name, -1)
            waiting.delete(s)
            const set = index.get(name)
            set?.delete(s)
            if (set !== undefined && set.size === 0) index.delete(name)
          })
      ).pipe(Effect.map((s): Subscription => ({
        takeNow: () => takeNow(s),
        // An idle subscriber is this callback: called by a delivery, a loss, or the sweep once the deadline
        // has passed.
        whenReady: (waitMs, ready) => {
          if (hasNews(s)) {
            ready()
            return noCancel
          }
          s.wake = ready
          s.deadline = clock.currentTimeMillisUnsafe() + waitMs
          waiting.add(s)
          return () => {
            if (s.wake !== ready) return
            s.wake = undefined
            waiting.delete(s)
          }
        }
      })))

    return {
      subscribeKey: (key) => subscribe(byKey, key),
      subscribePrefix: (prefix) => subscribe(byPrefix, prefix)
    }
  })
