/**
 * The read path: reads of a log from an offset or a time, and tails (catch up from storage, then follow
 * the durable change feed through the tail registry, `internal/tails.ts`).
 */
import { Array as Arr, Channel, Effect, Option, Scope, Stream } from "effect"
import type { Db as CoreDb } from "@opendata/core"
import type { LogRecord, ReadOptions, ReadResult, TailCursor, TailEvent, TailStart } from "../EventStore.ts"
import { InvalidInput, OffsetTrimmed, Unavailable } from "../EventStore.ts"
import * as Limits from "../limits.ts"
import * as K from "./keys.ts"
import type { LogState } from "./logState.ts"
import { storeFailure } from "./logState.ts"
import { decodeAt, nextRecord, openBatch, recordSize } from "./record.ts"
import type { Delivery, Taken, TailRegistry } from "./tails.ts"
import { checkKey, isCount } from "./validate.ts"

export const makeReadPath = (db: CoreDb.DbShape, state: LogState, tails: TailRegistry, heartbeatMs: number) => {
  const { durableMeta, existingMeta } = state

  /**
   * The first offset whose timestamp is at or after `time`, or undefined if none. The time index has an
   * entry at least every `timeIndexIntervalMs` of timestamps: a record r with ts(r) lies less than that
   * after the entry before it. So every record before the first entry above `time - timeIndexIntervalMs`
   * is below `time`, and the answer is found by reading records on from that entry (at most that
   * interval's worth of them before one reaches `time`).
   */
  const offsetAtTime = (key: string, time: number) =>
    Effect.gen(function*() {
      const t = Math.max(0, Math.floor(time))
      const start = K.timeKey(key, Math.max(0, t - Limits.timeIndexIntervalMs + 1))
      const entry = yield* Stream.runHead(db.scan({ start, end: K.prefixEnd(K.timePrefix(key)) })).pipe(Effect.mapError(storeFailure))
      if (Option.isNone(entry)) return undefined
      const from = K.readU64(entry.value.value, 0)
      if (K.readU64(entry.value.key, entry.value.key.length - 8) >= t) return from
      let found: number | undefined
      // Batches share a timestamp: the answer is the first offset (from `from` on) of the first batch at or after `t`.
      const rows = db.scan({ start: K.recordKey(key, from), end: K.prefixEnd(K.recordPrefix(key)) }).pipe(Stream.mapError(storeFailure))
      yield* Stream.runForEachWhile(rows, (kv) =>
        Effect.sync(() => {
          const batch = openBatch(K.recordKeyOffset(kv.key), kv.value)
          if (batch.timestamp < t) return true
          found = Math.max(from, batch.first)
          return false
        }))
      return found
    })

  const readRange = (key: string, from: number, until: number, limit: number, maxBytes: number) =>
    Effect.gen(function*() {
      const records: Array<LogRecord> = []
      let bytes = 0
      const end = Math.min(until, from + limit)
      if (from >= end) return records
      // The first entry at or after `from`'s key is the batch holding `from` (batches are keyed by their last
      // offset); the scan stops once it has the records it needs.
      const rows = db.scan({ start: K.recordKey(key, from), end: K.prefixEnd(K.recordPrefix(key)) }).pipe(Stream.mapError(storeFailure))
      let done = false
      // One effect per array of rows, not per record; past `maxBytes` the read stops after the record that crossed it.
      yield* Stream.runForEachArray(rows.pipe(Stream.takeWhile(() => !done)), (kvs) =>
        Effect.sync(() => {
          for (const kv of kvs) {
            const batch = openBatch(K.recordKeyOffset(kv.key), kv.value)
            while (nextRecord(batch)) {
              if (batch.offset < from) continue
              if (batch.offset >= end) {
                done = true
                return
              }
              const record = decodeAt(batch)
              records.push(record)
              bytes += recordSize(record.value, record.headers)
              if (batch.offset + 1 >= end || bytes >= maxBytes) {
                done = true
                return
              }
            }
          }
        }))
      return records
    })

  const read = (key: string, options: ReadOptions = {}) =>
    Effect.gen(function*() {
      yield* checkKey(key)
      if (options.from !== undefined && options.fromTime !== undefined) {
        return yield* new InvalidInput({ field: "from", reason: "give from or fromTime, not both" })
      }
      if (options.from !== undefined && !isCount(options.from)) return yield* new InvalidInput({ field: "from", reason: "must be a non-negative integer" })
      if (options.fromTime !== undefined && !isCount(options.fromTime)) {
        return yield* new InvalidInput({ field: "fromTime", reason: "must be a non-negative integer (ms)" })
      }
      const limit = options.limit ?? Limits.readRecordsDefault
      if (!isCount(limit) || limit < 1 || limit > Limits.readRecordsMax) {
        return yield* new InvalidInput({ field: "limit", reason: `must be 1..${Limits.readRecordsMax}` })
      }
      const maxBytes = options.maxBytes ?? Limits.readBytesMax
      if (!isCount(maxBytes) || maxBytes < 1 || maxBytes > Limits.readBytesMax) {
        return yield* new InvalidInput({ field: "maxBytes", reason: `must be 1..${Limits.readBytesMax}` })
      }
      const meta = yield* existingMeta(key)
      let from = options.from ?? meta.firstOffset
      if (options.fromTime !== undefined) from = Math.max(meta.firstOffset, (yield* offsetAtTime(key, options.fromTime)) ?? meta.nextOffset)
      if (from < meta.firstOffset) return yield* new OffsetTrimmed({ key, requested: from, first: meta.firstOffset })
      if (from > meta.nextOffset) {
        return yield* new InvalidInput({ field: "from", reason: `is past the end of the log (next offset ${meta.nextOffset})` })
      }
      const records = yield* readRange(key, from, meta.nextOffset, limit, maxBytes)
      return { records, next: records.length === 0 ? from : records.at(-1)!.offset + 1 } satisfies ReadResult
    })

  /**
   * A cursor as a stream with one pull and nothing between it and its consumer: the pull polls, and
   * waits for `whenReady` only when a poll gives nothing.
   */
  const cursorStream = <E>(open: Effect.Effect<TailCursor, E, Scope.Scope>): Stream.Stream<TailEvent, E | Unavailable> =>
    Stream.fromChannel(Channel.fromTransform((_, scope) =>
      Effect.map(Scope.provide(open, scope), (cursor) => {
        const ready = Effect.callback<void>((resume) => {
          const cancel = cursor.whenReady(() => resume(Effect.void))
          return Effect.sync(cancel)
        })
        const pull: Effect.Effect<Arr.NonEmptyReadonlyArray<TailEvent>, Unavailable> = Effect.flatMap(
          cursor.poll,
          (events) => Arr.isReadonlyArrayNonEmpty(events) ? Effect.succeed(events) : Effect.andThen(ready, pull)
        )
        return pull
      })
    ))

  const tailCursor = (key: string, start: TailStart): Effect.Effect<TailCursor, InvalidInput | OffsetTrimmed | Unavailable, Scope.Scope> =>
    Effect.gen(function*() {
      yield* checkKey(key)
      // Subscribe before reading storage: every append durable from now on is delivered.
      const subscription = yield* tails.subscribeKey(key)
      const m = yield* durableMeta(key)
      const first = m?.firstOffset ?? 0
      const end = m?.nextOffset ?? 0
      let next: number
      switch (start._tag) {
        case "now":
          next = end
          break
        case "offset":
          if (!isCount(start.offset)) return yield* new InvalidInput({ field: "from", reason: "must be a non-negative integer" })
          if (start.offset < first) return yield* new OffsetTrimmed({ key, requested: start.offset, first })
          next = start.offset
          break
        case "time":
          if (!isCount(start.time)) return yield* new InvalidInput({ field: "fromTime", reason: "must be a non-negative integer (ms)" })
          next = Math.max(first, (yield* offsetAtTime(key, start.time)) ?? end)
      }
      let catchingUp = true

      /** Reads one page from storage at `next`; empty when caught up with what is durable. */
      const catchUp = Effect.gen(function*() {
        const current = yield* durableMeta(key)
        if (current === undefined) return []
        if (next < current.firstOffset) next = current.firstOffset // trimmed meanwhile: skip what is gone
        const page = yield* readRange(key, next, current.nextOffset, Limits.tailPageRecords, Limits.readBytesMax)
        if (page.length > 0) next = page.at(-1)!.offset + 1
        return page
      })

      /** What the subscription has now, as events (none when it must catch up from storage first). */
      const taken = (t: Taken): ReadonlyArray<TailEvent> => {
        if (t._tag === "none") return []
        if (t._tag === "idle") return [{ _tag: "heartbeat", key, next }]
        if (t._tag === "lost") {
          // Deliveries were dropped (a slow reader, or the feed skipped batches): storage has them.
          catchingUp = true
          return []
        }
        const records = t.deliveries.flatMap((d) => d.records).filter((r) => r.offset >= next)
        if (records.some((r, i) => r.offset !== next + i)) {
          // An append is missing from the feed, or an offset came twice (two writes of one offset became
          // durable together): storage has the log exactly once.
          catchingUp = true
          return []
        }
        if (records.length === 0) return []
        next = records.at(-1)!.offset + 1
        return [{ _tag: "records", key, records }]
      }

      const poll: Effect.Effect<ReadonlyArray<TailEvent>, Unavailable> = Effect.suspend(() => {
        if (!catchingUp) {
          const events = taken(subscription.takeNow())
          // A loss (or a gap) found just now: read storage at once rather than wait.
          return events.length === 0 && catchingUp ? poll : Effect.succeed(events)
        }
        return Effect.flatMap(catchUp, (page) => {
          if (page.length > 0) return Effect.succeed([{ _tag: "records", key, records: page }])
          catchingUp = false
          return poll
        })
      })
      return { poll, whenReady: (ready) => subscription.whenReady(heartbeatMs, ready) } satisfies TailCursor
    })

  const tailPrefixCursor = (prefixKey: string): Effect.Effect<TailCursor, InvalidInput | Unavailable, Scope.Scope> =>
    Effect.gen(function*() {
      if (prefixKey !== "") yield* checkKey(prefixKey, "prefix")
      const subscription = yield* tails.subscribePrefix(prefixKey)
      const nextOf = new Map<string, number>()
      // A heartbeat at once: from here on, every durable append under the prefix is delivered.
      let subscribed = false
      const heartbeat: ReadonlyArray<TailEvent> = [{ _tag: "heartbeat", key: undefined, next: undefined }]

      /** After lost deliveries: reads what the logs already followed got meanwhile. */
      const catchUp = Effect.gen(function*() {
        const events: Array<TailEvent> = []
        for (const [k, from] of nextOf) {
          const m = yield* durableMeta(k)
          if (m === undefined) continue
          const records = yield* readRange(k, Math.max(from, m.firstOffset), m.nextOffset, Limits.readRecordsMax, Limits.readBytesMax)
          if (records.length > 0) {
            nextOf.set(k, records.at(-1)!.offset + 1)
            events.push({ _tag: "records", key: k, records })
          }
        }
        return events
      })

      const delivered = (deliveries: ReadonlyArray<Delivery>): ReadonlyArray<TailEvent> => {
        const byLog = new Map<string, Array<LogRecord>>()
        for (const d of deliveries) {
          for (const record of d.records) {
            // Below what this tail sent: an earlier batch or this one already has it.
            if (record.offset < (nextOf.get(d.key) ?? 0)) continue
            nextOf.set(d.key, record.offset + 1)
            const list = byLog.get(d.key) ?? []
            list.push(record)
            byLog.set(d.key, list)
          }
        }
        const events: Array<TailEvent> = []
        for (const [k, records] of byLog) events.push({ _tag: "records", key: k, records })
        return events
      }

      const poll: Effect.Effect<ReadonlyArray<TailEvent>, Unavailable> = Effect.suspend(() => {
        if (!subscribed) {
          subscribed = true
          return Effect.succeed(heartbeat)
        }
        const t = subscription.takeNow()
        if (t._tag === "none") return Effect.succeed([])
        if (t._tag === "idle") return Effect.succeed(heartbeat)
        if (t._tag === "lost") return catchUp
        return Effect.succeed(delivered(t.deliveries))
      })
      return { poll, whenReady: (ready) => subscription.whenReady(heartbeatMs, ready) } satisfies TailCursor
    })

  const tail = (key: string, start: TailStart) => cursorStream(tailCursor(key, start))
  const tailPrefix = (prefixKey: string) => cursorStream(tailPrefixCursor(prefixKey))

  return { offsetAtTime, readRange, read, tail, tailPrefix, tailCursor, tailPrefixCursor }
}
