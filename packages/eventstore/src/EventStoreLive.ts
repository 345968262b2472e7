/**
 * The EventStore on the core `Db` (see EventStore.ts for the model and the key layout).
 *
 * Append path: validate; decide from the log's metadata and producer state as this process last decided
 * them (held in memory, bounded, least recently used dropped; loaded from the overlay or the Db under the
 * log's lock when missing): the fencing token, the producer sequence and `expectedOffset`; assign offsets
 * and a timestamp; add records, metadata, time-index entry and producer state to the open write group
 * (internal/groups.ts), which reaches the Db as ONE atomic batch with the other decisions taken meanwhile;
 * answer once that group is durable. The common case is synchronous: one effect per append, no lock, no
 * read. An overlay entry stays until its group settles, not until its caller stops waiting: an append that
 * timed out is still queued, and the next decision on the log must see it.
 *
 * Tail: subscribe to the Db's change feed first, then catch up from storage, then follow the feed,
 * dropping what the catch-up already delivered. A gap (a seq jump in the feed: the subscriber fell behind
 * and the bounded feed dropped batches; or offsets that do not follow on, skipping or repeating one) sends
 * it back to storage reads, so memory stays bounded and nothing is skipped or sent twice.
 */
import { Clock, Deferred, Effect, Layer, Option, Schema, Scope, Semaphore, Stream } from "effect"
import type { Db as CoreDb } from "@opendata/core"
import { Db } from "@opendata/core"
import type {
  AppendOptions,
  AppendResult,
  DecidedAppend,
  EventStoreShape,
  GroupOffset,
  ListOptions,
  QueuedAppend,
  LogMeta,
  LogRecord,
  ReadOptions,
  ReadResult,
  RecordInput,
  Retention,
  TailEvent,
  TailStart
} from "./EventStore.ts"
import {
  EventStore,
  FencingConflict,
  InvalidInput,
  LimitExceeded,
  LogNotFound,
  OffsetConflict,
  OffsetTrimmed,
  Unavailable
} from "./EventStore.ts"
import * as Limits from "./limits.ts"
import * as K from "./internal/keys.ts"
import type { StoredMeta } from "./internal/meta.ts"
import { decodeMeta, encodeMeta as encodeMetaBytes } from "./internal/meta.ts"
import { decodeRecord, encodeRecord, recordSize } from "./internal/record.ts"
import type { Group, Remembered } from "./internal/groups.ts"
import { makeGroupWriter, opBytes, overlayKey, whenSettled } from "./internal/groups.ts"
import { makeTailRegistry } from "./internal/tails.ts"

export interface EventStoreSettings {
  /** Retention of logs that have none of their own. */
  readonly defaultRetention?: Retention | undefined
  readonly retentionIntervalMs?: number | undefined
  readonly tailHeartbeatMs?: number | undefined
}

const ProducerState = Schema.Struct({ seq: Schema.Number, offsets: Schema.Array(Schema.Number), next: Schema.Number })
type ProducerState = typeof ProducerState.Type
const decodeProducer = Schema.decodeUnknownSync(ProducerState)

const json = (value: unknown) => K.utf8(JSON.stringify(value))
/** Encoded metadata, remembered with what it encodes so that a write of it can update the cache unparsed. */
const encodedMetas = new WeakMap<Uint8Array, StoredMeta>()
const encodeMeta = (meta: StoredMeta): Uint8Array => {
  const bytes = encodeMetaBytes(meta)
  encodedMetas.set(bytes, meta)
  return bytes
}
const parse = <A>(decode: (u: unknown) => A, bytes: Uint8Array): A => decode(JSON.parse(K.fromUtf8(bytes)))

const toMeta = (key: string, m: StoredMeta): LogMeta => ({
  key,
  firstOffset: m.firstOffset,
  nextOffset: m.nextOffset,
  bytes: m.bytes,
  records: m.records,
  createdMs: m.createdMs,
  lastAppendMs: m.lastAppendMs,
  retention: m.retention === undefined ? undefined : { ...m.retention },
  fenced: m.token !== undefined
})

const isCount = (n: unknown): n is number => typeof n === "number" && Number.isSafeInteger(n) && n >= 0

const storeFailure = (e: { readonly message: string }) => new Unavailable({ reason: e.message })

export const make = (settings: EventStoreSettings = {}): Effect.Effect<EventStoreShape, never, CoreDb.Db | Scope.Scope> =>
  Effect.gen(function*() {
    const db = yield* Db.Db
    const scope = yield* Scope.Scope
    const heartbeatMs = settings.tailHeartbeatMs ?? Limits.tailHeartbeatMs
    const retentionIntervalMs = settings.retentionIntervalMs ?? Limits.retentionIntervalMs

    // --- writes: decisions grouped into Db writes (internal/groups.ts) -----------------------------

    const clock = yield* Clock.Clock
    const groups = yield* makeGroupWriter(db, scope, () => {
      // A group failed (the Db stopped): what was cached from decisions may be ahead of storage.
      metaCache.clear()
      producerCache.clear()
    })
    const overlay = groups.overlay

    /** A key's value: a write not yet durable first (Db reads see only durable writes), then the Db. */
    const getKey = (k: Uint8Array) =>
      Effect.suspend(() => {
        const pending = overlay.get(overlayKey(k))
        if (pending !== undefined) return Effect.succeed(pending.value)
        return Effect.mapError(db.get(k), storeFailure)
      })
    const awaitGroup = (group: Group) => Deferred.await(group.done)

    /**
     * Each log's latest metadata as this process decided it (durable or not), by log key, least recently
     * used first, at most `metadataCacheEntries`: this process is the only writer, so what it decided last is
     * current. An entry is set where the write of the metadata is added to a group, so it never runs ahead of
     * the overlay; a log without an entry is read from the overlay or the Db.
     */
    const metaCache = new Map<string, StoredMeta | undefined>()
    const cacheMeta = (key: string, meta: StoredMeta | undefined) => {
      metaCache.delete(key)
      metaCache.set(key, meta)
      if (metaCache.size > Limits.metadataCacheEntries) metaCache.delete(metaCache.keys().next().value!)
    }
    /** Producer states by `log NUL producerId` (null: none stored), as `metaCache`, at most `producerCacheEntries`. */
    const producerCache = new Map<string, ProducerState | null>()
    const producerCacheKey = (key: string, producerId: string) => `${key}\u0000${producerId}`
    const cacheProducer = (k: string, state: ProducerState | null) => {
      producerCache.delete(k)
      producerCache.set(k, state)
      if (producerCache.size > Limits.producerCacheEntries) producerCache.delete(producerCache.keys().next().value!)
    }
    const loadMeta = (key: string): Effect.Effect<StoredMeta | undefined, Unavailable> => {
      if (metaCache.has(key)) {
        const cached = metaCache.get(key)
        cacheMeta(key, cached)
        return Effect.succeed(cached)
      }
      return Effect.map(getKey(K.metaKey(key)), (bytes) => {
        const meta = bytes === undefined ? undefined : decodeMeta(bytes)
        cacheMeta(key, meta)
        return meta
      })
    }
    const loadProducer = (key: string, producerId: string): Effect.Effect<ProducerState | null, Unavailable> => {
      const ck = producerCacheKey(key, producerId)
      const cached = producerCache.get(ck)
      if (cached !== undefined) return Effect.succeed(cached)
      return Effect.map(getKey(K.producerKey(key, producerId)), (bytes) => {
        const state = bytes === undefined ? null : parse(decodeProducer, bytes)
        cacheProducer(ck, state)
        return state
      })
    }
    const durableMeta = (key: string) =>
      Effect.map(Effect.mapError(db.get(K.metaKey(key)), storeFailure), (bytes) => (bytes === undefined ? undefined : decodeMeta(bytes)))
    const existingMeta = (key: string) =>
      Effect.flatMap(durableMeta(key), (m) => (m === undefined ? Effect.fail(new LogNotFound({ key })) : Effect.succeed(m)))
    /**
     * The metadata once every write decided on it is durable, for a decision under the log's lock that also
     * scans the log's records (trim, delete): an append does not wait for its write to be durable.
     */
    const settledMeta = (key: string) =>
      Effect.gen(function*() {
        const pending = overlay.get(overlayKey(K.metaKey(key)))
        if (pending !== undefined) yield* awaitGroup(pending.group)
        return yield* existingMeta(key)
      })

    /**
     * Adds a batch to the open group (waiting for room first) and remembers its `remember` keys in the
     * overlay; returns the wait until it is durable. Metadata it writes is cached as decided (read back when
     * written from bytes this module did not encode).
     */
    const writeBatch = (ops: ReadonlyArray<CoreDb.WriteOp>, remember: ReadonlyArray<Uint8Array>) =>
      Effect.map(groups.awaitRoom, () => {
        let bytes = 0
        for (const op of ops) bytes += opBytes(op.key, op._tag === "delete" ? undefined : op.value)
        const remembered = remember.map((k): Remembered => {
          const op = ops.findLast((o) => o.key.length === k.length && Buffer.compare(o.key, k) === 0)
          return { key: overlayKey(k), value: op === undefined || op._tag === "delete" ? undefined : op.value }
        })
        // Cached first: a group that fails at once (the Db stopped) clears the caches as it settles.
        for (const op of ops) {
          if (!K.isMetaKey(op.key)) continue
          const logKey = K.fromUtf8(op.key.subarray(1))
          const decided = op._tag === "put" ? encodedMetas.get(op.value) : undefined
          if (op._tag !== "delete" && decided === undefined) metaCache.delete(logKey)
          else cacheMeta(logKey, decided)
        }
        return awaitGroup(groups.add(ops, bytes, remembered))
      })

    // --- per-log locks (the rare decisions that read storage: trims, deletes, metadata updates) -----

    const locks = new Map<string, { readonly semaphore: Semaphore.Semaphore; users: number }>()
    const withLog = <A, E, R>(key: string, self: Effect.Effect<A, E, R>) =>
      Effect.acquireUseRelease(
        Effect.sync(() => {
          let lock = locks.get(key)
          if (lock === undefined) {
            lock = { semaphore: Semaphore.makeUnsafe(1), users: 0 }
            locks.set(key, lock)
          }
          lock.users += 1
          return lock
        }),
        (lock) => lock.semaphore.withPermit(self),
        (lock) =>
          Effect.sync(() => {
            lock.users -= 1
            if (lock.users === 0) locks.delete(key)
          })
      )

    // --- validation (synchronous: an error, or the records' total size) ------------------------------

    const keyProblem = (key: string, field = "key") => {
      const problem = K.nameProblem(key, Limits.logKeyBytesMax)
      return problem === undefined ? undefined : new InvalidInput({ field, reason: problem })
    }
    const checkKey = (key: string, field = "key") => {
      const problem = keyProblem(key, field)
      return problem === undefined ? Effect.void : Effect.fail(problem)
    }
    const tokenProblem = (value: string | undefined, field: string) => {
      if (value === undefined) return undefined
      const problem = K.nameProblem(value, Limits.tokenBytesMax)
      return problem === undefined ? undefined : new InvalidInput({ field, reason: problem })
    }
    const checkToken = (value: string | undefined, field: string) => {
      const problem = tokenProblem(value, field)
      return problem === undefined ? Effect.void : Effect.fail(problem)
    }

    const recordsProblem = (records: ReadonlyArray<RecordInput>): InvalidInput | LimitExceeded | number => {
      if (!Array.isArray(records) || records.length === 0) return new InvalidInput({ field: "records", reason: "must be a non-empty array" })
      if (records.length > Limits.batchRecordsMax) return new LimitExceeded({ field: "records", limit: Limits.batchRecordsMax })
      let total = 0
      for (let i = 0; i < records.length; i++) {
        const r = records[i]!
        if (!(r.value instanceof Uint8Array)) return new InvalidInput({ field: `records[${i}].value`, reason: "must be bytes" })
        let size = r.value.length
        if (r.headers !== undefined) {
          const entries = Object.entries(r.headers)
          if (entries.length > Limits.headersMax) return new LimitExceeded({ field: `records[${i}].headers`, limit: Limits.headersMax })
          for (const [k, v] of entries) {
            if (typeof v !== "string") return new InvalidInput({ field: `records[${i}].headers.${k}`, reason: "must be a string" })
            const kb = K.utf8(k).length
            const vb = K.utf8(v).length
            if (kb > Limits.headerBytesMax || vb > Limits.headerBytesMax) {
              return new LimitExceeded({ field: `records[${i}].headers.${k}`, limit: Limits.headerBytesMax })
            }
            size += kb + vb
          }
        }
        if (r.eventTime !== undefined && !isCount(r.eventTime)) {
          return new InvalidInput({ field: `records[${i}].eventTime`, reason: "must be a non-negative integer (ms)" })
        }
        if (size > Limits.recordBytesMax) return new LimitExceeded({ field: `records[${i}]`, limit: Limits.recordBytesMax })
        total += size
      }
      if (total > Limits.batchBytesMax) return new LimitExceeded({ field: "records", limit: Limits.batchBytesMax })
      return total
    }

    const appendProblem = (key: string, records: ReadonlyArray<RecordInput>, options: AppendOptions) => {
      const bad = keyProblem(key)
      if (bad !== undefined) return bad
      const total = recordsProblem(records)
      if (typeof total !== "number") return total
      const badToken = tokenProblem(options.fencingToken, "fencingToken") ?? tokenProblem(options.producerId, "producerId")
      if (badToken !== undefined) return badToken
      if (options.expectedOffset !== undefined && !isCount(options.expectedOffset)) {
        return new InvalidInput({ field: "expectedOffset", reason: "must be a non-negative integer" })
      }
      if ((options.producerId === undefined) !== (options.producerSeq === undefined)) {
        return new InvalidInput({ field: "producerSeq", reason: "producerId and producerSeq go together" })
      }
      if (options.producerSeq !== undefined && !isCount(options.producerSeq)) {
        return new InvalidInput({ field: "producerSeq", reason: "must be a non-negative integer" })
      }
      return total
    }

    // --- append -------------------------------------------------------------------------------------

    type AppendError = InvalidInput | LimitExceeded | OffsetConflict | FencingConflict | Unavailable

    /**
     * The decision on an append, synchronous, from the log's metadata and producer state as decided so far;
     * its writes are added to the open group before anything else runs, so decisions on a log are written in
     * the order they were taken.
     */
    const decideAppend = (
      key: string,
      current: StoredMeta | undefined,
      producer: ProducerState | null,
      records: ReadonlyArray<RecordInput>,
      total: number,
      options: AppendOptions
    ): DecidedAppend | AppendError => {
      // A closed store takes no decisions (it would cache what it can no longer write).
      if (groups.isClosed()) return new Unavailable({ reason: "the event store is closed" })
      const now = Math.floor(clock.currentTimeMillisUnsafe())
      const meta: StoredMeta = current ?? { firstOffset: 0, nextOffset: 0, bytes: 0, records: 0, createdMs: now, lastTimestamp: 0, lastIndexedMs: 0 }
      if (meta.token !== undefined || options.fencingToken !== undefined) {
        if (options.fencingToken !== meta.token) return new FencingConflict({ key, next: meta.nextOffset })
      }
      if (options.producerId !== undefined && producer !== null) {
        if (options.producerSeq === producer.seq) {
          // A retry of the last batch: answer as the first attempt did, write nothing, but only once that
          // attempt is durable.
          const pending = overlay.get(overlayKey(K.producerKey(key, options.producerId)))
          return {
            result: { offsets: producer.offsets, next: producer.next },
            durable: pending === undefined ? Effect.void : awaitGroup(pending.group),
            whenDurable: pending === undefined ? (callback) => callback(undefined) : (callback) => whenSettled(pending.group, callback)
          }
        }
        if (options.producerSeq! < producer.seq) {
          return new InvalidInput({ field: "producerSeq", reason: `must be above the last one seen (${producer.seq})` })
        }
      }
      if (options.expectedOffset !== undefined && options.expectedOffset !== meta.nextOffset) {
        return new OffsetConflict({ key, expected: options.expectedOffset, next: meta.nextOffset })
      }
      const timestamp = Math.max(now, meta.lastTimestamp)
      const first = meta.nextOffset
      const next = first + records.length
      const offsets: Array<number> = new Array(records.length)
      const ops: Array<CoreDb.WriteOp> = []
      let bytes = 0
      const prefix = K.recordPrefix(key)
      for (let i = 0; i < records.length; i++) {
        const r = records[i]!
        offsets[i] = first + i
        const recordKey = K.withU64(prefix, first + i)
        const value = encodeRecord(timestamp, r.eventTime, r.headers ?? {}, r.value)
        ops.push({ _tag: "put", key: recordKey, value })
        bytes += opBytes(recordKey, value)
      }
      // The time index holds an entry at least every `timeIndexIntervalMs` of a log's timestamps (see
      // `offsetAtTime`), not one per append.
      const indexed = meta.records === 0 || timestamp >= meta.lastIndexedMs + Limits.timeIndexIntervalMs
      if (indexed) {
        const timeKey = K.timeKey(key, timestamp)
        const value = K.u64(first)
        ops.push({ _tag: "put", key: timeKey, value })
        bytes += opBytes(timeKey, value)
      }
      const updated: StoredMeta = {
        ...meta,
        nextOffset: next,
        bytes: meta.bytes + total,
        records: meta.records + records.length,
        lastAppendMs: now,
        lastTimestamp: timestamp,
        lastIndexedMs: indexed ? timestamp : meta.lastIndexedMs
      }
      const metaKey = K.metaKey(key)
      const metaValue = encodeMetaBytes(updated)
      ops.push({ _tag: "put", key: metaKey, value: metaValue })
      bytes += opBytes(metaKey, metaValue)
      const remember: Array<Remembered> = [{ key: overlayKey(metaKey), value: metaValue }]
      let state: ProducerState | undefined
      if (options.producerId !== undefined) {
        const pk = K.producerKey(key, options.producerId)
        state = { seq: options.producerSeq!, offsets, next }
        const value = json(state)
        ops.push({ _tag: "put", key: pk, value })
        bytes += opBytes(pk, value)
        remember.push({ key: overlayKey(pk), value })
      }
      // Cached first: a group that fails at once (the Db stopped) clears the caches as it settles.
      cacheMeta(key, updated)
      if (state !== undefined) cacheProducer(producerCacheKey(key, options.producerId!), state)
      // Every key and value above was made for this write (record values are encoded copies).
      const group = groups.add(ops, bytes, remember, true)
      return { result: { offsets, next }, durable: awaitGroup(group), whenDurable: (callback) => whenSettled(group, callback) }
    }

    const toEffect = (decided: DecidedAppend | AppendError): Effect.Effect<QueuedAppend, AppendError> =>
      "result" in decided ? Effect.succeed(decided) : Effect.fail(decided)

    /** An append whose log state is not all in memory, or that must wait: under the log's lock. */
    const appendLocked = (key: string, records: ReadonlyArray<RecordInput>, total: number, options: AppendOptions) =>
      withLog(
        key,
        Effect.gen(function*() {
          yield* groups.awaitRoom
          const meta = yield* loadMeta(key)
          const producer = options.producerId === undefined ? null : yield* loadProducer(key, options.producerId)
          return yield* toEffect(decideAppend(key, meta, producer, records, total, options))
        })
      )

    /**
     * The common case, decided at once: the log's state is in memory, no locked decision on it is running
     * or waiting, and the groups have room. Undefined otherwise.
     */
    const decideNow = (key: string, records: ReadonlyArray<RecordInput>, total: number, options: AppendOptions) => {
      if (locks.has(key) || !metaCache.has(key) || !groups.hasRoom()) return undefined
      const producer = options.producerId === undefined ? null : producerCache.get(producerCacheKey(key, options.producerId))
      if (producer === undefined) return undefined
      const meta = metaCache.get(key)
      cacheMeta(key, meta)
      return decideAppend(key, meta, producer, records, total, options)
    }

    const appendNow = (key: string, records: ReadonlyArray<RecordInput>, options: AppendOptions = {}) => {
      const total = appendProblem(key, records, options)
      return typeof total !== "number" ? total : decideNow(key, records, total, options)
    }

    const appendQueued = (key: string, records: ReadonlyArray<RecordInput>, options: AppendOptions = {}) =>
      Effect.suspend((): Effect.Effect<QueuedAppend, AppendError> => {
        const total = appendProblem(key, records, options)
        if (typeof total !== "number") return Effect.fail(total)
        const decided = decideNow(key, records, total, options)
        return decided === undefined ? appendLocked(key, records, total, options) : toEffect(decided)
      })

    const append = (key: string, records: ReadonlyArray<RecordInput>, options: AppendOptions = {}) =>
      Effect.flatMap(appendQueued(key, records, options), (queued) => Effect.as(queued.durable, queued.result satisfies AppendResult))

    // --- read ---------------------------------------------------------------------------------------

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
        const rows = db.scan({ start: K.recordKey(key, from), end: K.prefixEnd(K.recordPrefix(key)) }).pipe(Stream.mapError(storeFailure))
        yield* Stream.runForEachWhile(rows, (kv) =>
          Effect.sync(() => {
            if (K.readU64(kv.value, 0) < t) return true
            found = K.readU64(kv.key, kv.key.length - 8)
            return false
          }))
        return found
      })

    const readRange = (key: string, from: number, until: number, limit: number, maxBytes: number) =>
      Effect.gen(function*() {
        const records: Array<LogRecord> = []
        let bytes = 0
        if (from >= until) return records
        // End the scan at `from + limit` too: the table cursor then fetches only the blocks it needs.
        const rows = db.scan({ start: K.recordKey(key, from), end: K.recordKey(key, Math.min(until, from + limit)) }).pipe(
          Stream.take(limit),
          Stream.mapError(storeFailure)
        )
        // One effect per batch of rows, not per record; past `maxBytes` the scan stops after its batch.
        yield* Stream.runForEachArray(rows.pipe(Stream.takeWhile(() => bytes < maxBytes)), (kvs) =>
          Effect.sync(() => {
            for (const kv of kvs) {
              if (bytes >= maxBytes) return
              const parsed = K.parseRecordKey(kv.key)
              if (parsed === undefined) continue
              const record = decodeRecord(parsed.offset, kv.value)
              records.push(record)
              bytes += recordSize(record.value, record.headers)
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

    // --- metadata, list, delete, trim, tokens, retention, groups -----------------------------------

    const meta = (key: string) => Effect.andThen(checkKey(key), Effect.map(existingMeta(key), (m) => toMeta(key, m)))

    const list = (options: ListOptions = {}) =>
      Effect.gen(function*() {
        const prefix = options.prefix ?? ""
        if (prefix !== "") yield* checkKey(prefix, "prefix")
        if (options.cursor !== undefined) yield* checkKey(options.cursor, "cursor")
        const limit = options.limit ?? Limits.listLogsDefault
        if (!isCount(limit) || limit < 1 || limit > Limits.listLogsMax) {
          return yield* new InvalidInput({ field: "limit", reason: `must be 1..${Limits.listLogsMax}` })
        }
        const base = K.metaKey(prefix)
        const after = options.cursor === undefined ? undefined : Uint8Array.from([...K.metaKey(options.cursor), 0])
        // A cursor before the prefix starts the listing at the prefix, never outside it.
        const start = after === undefined || Buffer.compare(after, base) < 0 ? base : after
        const rows = yield* Stream.runCollect(
          db.scan({ start, end: K.prefixEnd(base) }).pipe(Stream.take(limit + 1), Stream.mapError(storeFailure))
        )
        const logs = rows.slice(0, limit).map((kv) => toMeta(K.fromUtf8(kv.key.subarray(1)), decodeMeta(kv.value)))
        return { logs, cursor: rows.length > limit ? logs.at(-1)?.key : undefined }
      })

    /**
     * Deletes every key in [start, end) in batches; `last` ops ride along with the final batch, and the keys
     * of them in `remember` go through the overlay (see `writeBatch`).
     */
    const deleteRange = (
      start: Uint8Array,
      end: Uint8Array | undefined,
      last: ReadonlyArray<CoreDb.WriteOp> = [],
      remember: ReadonlyArray<Uint8Array> = []
    ) =>
      Effect.gen(function*() {
        for (;;) {
          const keys = yield* Stream.runCollect(
            db.scan({ start, end }).pipe(Stream.take(Limits.trimBatchRecords), Stream.map((kv) => kv.key), Stream.mapError(storeFailure))
          )
          const done = keys.length < Limits.trimBatchRecords
          const ops: Array<CoreDb.WriteOp> = keys.map((k) => ({ _tag: "delete", key: k }))
          if (done) ops.push(...last)
          if (ops.length > 0) yield* Effect.flatten(writeBatch(ops, done ? remember : []))
          if (done) return
        }
      })

    const remove = (key: string) =>
      Effect.gen(function*() {
        yield* checkKey(key)
        yield* withLog(
          key,
          Effect.gen(function*() {
            yield* settledMeta(key)
            // The metadata goes first: from then on the log does not exist, whatever is left to delete.
            const metaKey = K.metaKey(key)
            yield* Effect.flatten(writeBatch([{ _tag: "delete", key: metaKey }], [metaKey]))
            yield* deleteRange(K.recordPrefix(key), K.prefixEnd(K.recordPrefix(key)))
            yield* deleteRange(K.timePrefix(key), K.prefixEnd(K.timePrefix(key)))
            yield* deleteRange(K.producerPrefix(key), K.prefixEnd(K.producerPrefix(key)))
          })
        )
      })

    /** Trims records below `before`, under the log's lock. */
    const trimLocked = (key: string, before: number) =>
      Effect.gen(function*() {
        const m = yield* settledMeta(key)
        const until = Math.min(before, m.nextOffset)
        if (until <= m.firstOffset) return m
        let bytes = 0
        let count = 0
        const rows = db.scan({ start: K.recordKey(key, m.firstOffset), end: K.recordKey(key, until) }).pipe(Stream.mapError(storeFailure))
        yield* Stream.runForEachArray(rows, (kvs) =>
          Effect.sync(() => {
            for (const kv of kvs) {
              const parsed = K.parseRecordKey(kv.key)
              if (parsed === undefined) continue
              const r = decodeRecord(parsed.offset, kv.value)
              bytes += recordSize(r.value, r.headers)
              count += 1
            }
          }))
        const updated: StoredMeta = { ...m, firstOffset: until, bytes: Math.max(0, m.bytes - bytes), records: Math.max(0, m.records - count) }
        // Time index: drop an entry once the next entry starts at or below the trim point.
        const times = yield* Stream.runCollect(
          db.scan({ start: K.timePrefix(key), end: K.prefixEnd(K.timePrefix(key)) }).pipe(Stream.mapError(storeFailure))
        )
        const timeDeletes: Array<CoreDb.WriteOp> = []
        for (let i = 0; i + 1 < times.length; i++) {
          if (K.readU64(times[i + 1]!.value, 0) <= until) timeDeletes.push({ _tag: "delete", key: times[i]!.key })
        }
        const metaKey = K.metaKey(key)
        yield* deleteRange(K.recordKey(key, m.firstOffset), K.recordKey(key, until), [
          ...timeDeletes,
          { _tag: "put", key: metaKey, value: encodeMeta(updated) }
        ], [metaKey])
        return updated
      })

    const trim = (key: string, before: number) =>
      Effect.gen(function*() {
        yield* checkKey(key)
        if (!isCount(before)) return yield* new InvalidInput({ field: "before", reason: "must be a non-negative integer" })
        const m = yield* withLog(key, trimLocked(key, before))
        return toMeta(key, m)
      })

    const updateMeta = <E>(key: string, create: boolean, f: (m: StoredMeta) => Effect.Effect<StoredMeta, E>) =>
      withLog(
        key,
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const current = yield* loadMeta(key)
          if (current === undefined && !create) return yield* new LogNotFound({ key })
          const next = yield* f(current ?? { firstOffset: 0, nextOffset: 0, bytes: 0, records: 0, createdMs: Math.floor(now), lastTimestamp: 0, lastIndexedMs: 0 })
          const durable = yield* writeBatch([{ _tag: "put", key: K.metaKey(key), value: encodeMeta(next) }], [K.metaKey(key)])
          yield* durable
          return toMeta(key, next)
        })
      )

    const setFencingToken = (key: string, token: string | undefined, current?: string) =>
      Effect.gen(function*() {
        yield* checkKey(key)
        yield* checkToken(token, "token")
        yield* checkToken(current, "current")
        return yield* updateMeta(key, true, (m) => {
          if (m.token !== undefined && current !== m.token) return Effect.fail(new FencingConflict({ key, next: m.nextOffset }))
          const { token: _old, ...rest } = m
          return Effect.succeed(token === undefined ? rest : { ...rest, token })
        }).pipe(Effect.catchTag("LogNotFound", (e) => Effect.die(e))) // created if missing
      })

    const setRetention = (key: string, retention: Retention | undefined) =>
      Effect.gen(function*() {
        yield* checkKey(key)
        if (retention !== undefined) {
          if (retention.maxAgeMs !== undefined && (!isCount(retention.maxAgeMs) || retention.maxAgeMs === 0)) {
            return yield* new InvalidInput({ field: "maxAgeMs", reason: "must be a positive integer" })
          }
          if (retention.maxBytes !== undefined && (!isCount(retention.maxBytes) || retention.maxBytes === 0)) {
            return yield* new InvalidInput({ field: "maxBytes", reason: "must be a positive integer" })
          }
        }
        return yield* updateMeta(key, false, (m) => {
          const { retention: _old, ...rest } = m
          return Effect.succeed(retention === undefined ? rest : { ...rest, retention: { ...retention } })
        })
      })

    const groupOffset = (group: string, key: string) =>
      Effect.gen(function*() {
        const m = yield* existingMeta(key)
        const bytes = yield* Effect.mapError(db.get(K.groupKey(group, key)), storeFailure)
        const offset = bytes === undefined ? undefined : K.readU64(bytes, 0)
        return { group, key, offset, lag: Math.max(0, m.nextOffset - (offset ?? m.firstOffset)) } satisfies GroupOffset
      })

    const commitOffset = (group: string, key: string, offset: number) =>
      Effect.gen(function*() {
        yield* checkKey(group, "group")
        yield* checkKey(key)
        if (!isCount(offset)) return yield* new InvalidInput({ field: "offset", reason: "must be a non-negative integer" })
        const m = yield* existingMeta(key)
        if (offset > m.nextOffset) return yield* new InvalidInput({ field: "offset", reason: `is past the end of the log (next offset ${m.nextOffset})` })
        yield* Effect.mapError(db.put(K.groupKey(group, key), K.u64(offset)), storeFailure)
        return yield* groupOffset(group, key)
      })

    const fetchOffset = (group: string, key: string) =>
      Effect.andThen(Effect.andThen(checkKey(group, "group"), checkKey(key)), groupOffset(group, key))

    // --- tail ---------------------------------------------------------------------------------------

    // One reader of the change feed for every tail, which wakes only the subscribers of the logs a
    // durable batch touched (internal/tails.ts).
    const tails = yield* makeTailRegistry(db, scope)

    const tail = (key: string, start: TailStart): Stream.Stream<TailEvent, InvalidInput | OffsetTrimmed | Unavailable> =>
      Stream.unwrap(
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

          const step: Effect.Effect<ReadonlyArray<TailEvent>, Unavailable> = Effect.gen(function*() {
            if (catchingUp) {
              const page = yield* catchUp
              if (page.length > 0) return [{ _tag: "records", key, records: page } as const]
              catchingUp = false
            }
            const taken = yield* subscription.take(heartbeatMs)
            if (taken._tag === "idle") return [{ _tag: "heartbeat", key, next } as const]
            if (taken._tag === "lost") {
              // Deliveries were dropped (a slow reader, or the feed skipped batches): storage has them.
              catchingUp = true
              return []
            }
            const records = taken.deliveries.flatMap((d) => d.records).filter((r) => r.offset >= next)
            if (records.some((r, i) => r.offset !== next + i)) {
              // An append is missing from the feed, or an offset came twice (two writes of one offset became
              // durable together): storage has the log exactly once.
              catchingUp = true
              return []
            }
            if (records.length === 0) return []
            next = records.at(-1)!.offset + 1
            return [{ _tag: "records", key, records } as const]
          })
          return Stream.flatMap(Stream.fromEffectRepeat(step), Stream.fromIterable)
        })
      )

    const tailPrefix = (prefixKey: string): Stream.Stream<TailEvent, InvalidInput | Unavailable> =>
      Stream.unwrap(
        Effect.gen(function*() {
          if (prefixKey !== "") yield* checkKey(prefixKey, "prefix")
          const subscription = yield* tails.subscribePrefix(prefixKey)
          const nextOf = new Map<string, number>()

          const step: Effect.Effect<ReadonlyArray<TailEvent>, Unavailable> = Effect.gen(function*() {
            const taken = yield* subscription.take(heartbeatMs)
            if (taken._tag === "idle") return [{ _tag: "heartbeat", key: undefined, next: undefined } as const]
            const events: Array<TailEvent> = []
            if (taken._tag === "lost") {
              // Deliveries were dropped: read what the logs already followed got meanwhile.
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
            }
            const byLog = new Map<string, Array<LogRecord>>()
            for (const d of taken.deliveries) {
              for (const record of d.records) {
                // Below what this tail sent: an earlier batch or this one already has it.
                if (record.offset < (nextOf.get(d.key) ?? 0)) continue
                nextOf.set(d.key, record.offset + 1)
                const list = byLog.get(d.key) ?? []
                list.push(record)
                byLog.set(d.key, list)
              }
            }
            for (const [k, records] of byLog) events.push({ _tag: "records", key: k, records })
            return events
          })
          return Stream.flatMap(Stream.fromEffectRepeat(step), Stream.fromIterable)
        })
      )

    // --- retention ----------------------------------------------------------------------------------

    const enforceRetention = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      let trimmed = 0
      let cursor: string | undefined
      let examined = 0
      do {
        const page = yield* list({ cursor, limit: Limits.listLogsMax }).pipe(
          Effect.catchTag("InvalidInput", (e) => Effect.die(e))
        )
        for (const log of page.logs) {
          examined += 1
          const retention = log.retention ?? settings.defaultRetention
          if (retention === undefined || log.records === 0) continue
          let before = log.firstOffset
          if (retention.maxAgeMs !== undefined) {
            before = Math.max(before, (yield* offsetAtTime(log.key, now - retention.maxAgeMs)) ?? log.nextOffset)
          }
          if (retention.maxBytes !== undefined && log.bytes > retention.maxBytes) {
            let excess = log.bytes - retention.maxBytes
            const rows = db.scan({ start: K.recordKey(log.key, before), end: K.recordKey(log.key, log.nextOffset) }).pipe(Stream.mapError(storeFailure))
            yield* Stream.runForEachWhile(rows, (kv) =>
              Effect.sync(() => {
                const parsed = K.parseRecordKey(kv.key)
                if (parsed === undefined || excess <= 0) return false
                const r = decodeRecord(parsed.offset, kv.value)
                excess -= recordSize(r.value, r.headers)
                before = parsed.offset + 1
                return excess > 0
              }))
          }
          if (before > log.firstOffset) {
            yield* withLog(log.key, trimLocked(log.key, before)).pipe(Effect.catchTag("LogNotFound", () => Effect.void))
            trimmed += 1
          }
        }
        cursor = page.cursor
      } while (cursor !== undefined && examined < Limits.retentionLogsPerPass)
      return trimmed
    })

    yield* Effect.forkScoped(Effect.forever(
      Effect.sleep(`${retentionIntervalMs} millis`).pipe(
        Effect.andThen(enforceRetention),
        Effect.catch((e) => Effect.logWarning(`retention pass failed: ${e.message}`))
      )
    ))

    return {
      append,
      appendQueued,
      appendNow,
      read,
      meta,
      list,
      delete: remove,
      trim,
      setFencingToken,
      setRetention,
      commitOffset,
      fetchOffset,
      tail,
      tailPrefix,
      enforceRetention
    } satisfies EventStoreShape
  })

/** The EventStore over the core `Db` in context (open it with its own path, e.g. `eventstore/`). */
export const layer = (settings: EventStoreSettings = {}): Layer.Layer<EventStore, never, CoreDb.Db> =>
  Layer.effect(EventStore, make(settings))
