/**
 * The EventStore on the core `Db` (see EventStore.ts for the model and the key layout), assembled from
 * rooms of its own:
 *
 * - `internal/groups.ts`: decisions' writes grouped into one Db write per group, and the overlay of writes
 *   not yet durable;
 * - `internal/logState.ts`: each log's metadata and producer states as last decided (bounded caches), reads
 *   through the overlay, per-log locks for the rare decisions that read storage;
 * - `internal/append.ts`: the append path (synchronous in the common case: one effect per append, no lock,
 *   no read);
 * - `internal/read.ts` and `internal/tails.ts`: reads, and tails over the durable change feed;
 * - here: metadata, listing, deletes, trims, tokens, retention settings and enforcement, consumer groups.
 */
import { Clock, Effect, Layer, Scope, Stream } from "effect"
import type { Db as CoreDb } from "@opendata/core"
import { Db } from "@opendata/core"
import type { EventStoreShape, GroupOffset, ListOptions, LogMeta, Retention } from "./EventStore.ts"
import { EventStore, FencingConflict, InvalidInput, LogNotFound } from "./EventStore.ts"
import * as Limits from "./limits.ts"
import { commitProblem, makeAppendPath } from "./internal/append.ts"
import * as K from "./internal/keys.ts"
import { makeLogState, storeFailure } from "./internal/logState.ts"
import type { StoredMeta } from "./internal/meta.ts"
import { decodeMeta, encodeMeta } from "./internal/meta.ts"
import { makeReadPath } from "./internal/read.ts"
import { nextRecord, openBatch, sizeAt } from "./internal/record.ts"
import { makeTailRegistry } from "./internal/tails.ts"
import { checkKey, checkToken, isCount } from "./internal/validate.ts"

export interface EventStoreSettings {
  /** Retention of logs that have none of their own. */
  readonly defaultRetention?: Retention | undefined
  readonly retentionIntervalMs?: number | undefined
  readonly tailHeartbeatMs?: number | undefined
  /** How many records follow a log's stored metadata before it is rewritten (`Limits.metaCheckpointRecords`). */
  readonly metaCheckpointRecords?: number | undefined
}

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

export const make = (settings: EventStoreSettings = {}): Effect.Effect<EventStoreShape, never, CoreDb.Db | Scope.Scope> =>
  Effect.gen(function*() {
    const db = yield* Db.Db
    const scope = yield* Scope.Scope
    const heartbeatMs = settings.tailHeartbeatMs ?? Limits.tailHeartbeatMs
    const retentionIntervalMs = settings.retentionIntervalMs ?? Limits.retentionIntervalMs

    const state = yield* makeLogState(db, scope)
    const { bringForward, loadMeta, existingMeta, settledMeta, writeBatch, withLog } = state
    const { append, appendQueued, appendNow, transact } = makeAppendPath(state, settings.metaCheckpointRecords ?? Limits.metaCheckpointRecords)

    // One reader of the change feed for every tail, which wakes only the subscribers of the logs a
    // durable batch touched (internal/tails.ts).
    const tails = yield* makeTailRegistry(db, scope, heartbeatMs)
    const { offsetAtTime, read, tail, tailPrefix, tailCursor, tailPrefixCursor } = makeReadPath(db, state, tails, heartbeatMs)

    // --- metadata, list, delete, trim, tokens, retention, groups -----------------------------------

    const meta = (key: string) => Effect.andThen(checkKey(key), Effect.map(existingMeta(key), (m) => toMeta(key, m)))

    /** The stored metadata (checkpoints, not brought forward) of the logs a listing covers, and its cursor. */
    const listStored = (options: ListOptions = {}) =>
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
        const stored = rows.slice(0, limit).map((kv) => ({ key: K.fromUtf8(kv.key.subarray(1)), checkpoint: decodeMeta(kv.value) }))
        return { stored, cursor: rows.length > limit ? stored.at(-1)?.key : undefined }
      })

    const list = (options: ListOptions = {}) =>
      Effect.gen(function*() {
        const { cursor, stored } = yield* listStored(options)
        // Each stored metadata is a checkpoint: the records after it complete it.
        const logs: Array<LogMeta> = []
        for (const { checkpoint, key } of stored) logs.push(toMeta(key, (yield* bringForward(key, checkpoint)).meta))
        return { logs, cursor }
      })

    /**
     * Deletes every key in [start, end) in batches; `last` ops ride along with the final batch, which writes
     * the log's metadata `decided` (see `writeBatch`).
     */
    const deleteRange = (
      start: Uint8Array,
      end: Uint8Array | undefined,
      last: ReadonlyArray<CoreDb.WriteOp> = [],
      decided?: { readonly key: string; readonly meta: StoredMeta }
    ) =>
      Effect.gen(function*() {
        for (;;) {
          const keys = yield* Stream.runCollect(
            db.scan({ start, end }).pipe(Stream.take(Limits.trimBatchRecords), Stream.map((kv) => kv.key), Stream.mapError(storeFailure))
          )
          const done = keys.length < Limits.trimBatchRecords
          const ops: Array<CoreDb.WriteOp> = keys.map((k) => ({ _tag: "delete", key: k }))
          if (done) ops.push(...last)
          if (ops.length > 0) yield* Effect.flatten(writeBatch(ops, done ? decided : undefined))
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
            yield* Effect.flatten(writeBatch([{ _tag: "delete", key: K.metaKey(key) }], { key, meta: undefined }))
            yield* deleteRange(K.recordPrefix(key), K.prefixEnd(K.recordPrefix(key)))
            yield* deleteRange(K.timePrefix(key), K.prefixEnd(K.timePrefix(key)))
            yield* deleteRange(K.producerPrefix(key), K.prefixEnd(K.producerPrefix(key)))
            // Its groups' offsets too: a log made again under the key starts without them.
            const listed = K.logGroupPrefix(key)
            for (;;) {
              const rows = yield* Stream.runCollect(
                db.scan({ start: listed, end: K.prefixEnd(listed) }).pipe(Stream.take(Limits.trimBatchRecords), Stream.mapError(storeFailure))
              )
              if (rows.length === 0) break
              const ops: Array<CoreDb.WriteOp> = []
              for (const row of rows) {
                ops.push({ _tag: "delete", key: row.key }, { _tag: "delete", key: K.groupKey(K.fromUtf8(row.key.subarray(listed.length)), key) })
              }
              yield* Effect.flatten(writeBatch(ops))
            }
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
        // The records in [firstOffset, until): whole batches below `until`, and the start of the one holding it
        // (which stays, its records below `until` unread from now on).
        const rows = db.scan({ start: K.recordKey(key, m.firstOffset), end: K.prefixEnd(K.recordPrefix(key)) }).pipe(Stream.mapError(storeFailure))
        yield* Stream.runForEachWhile(rows, (kv) =>
          Effect.sync(() => {
            const batch = openBatch(K.recordKeyOffset(kv.key), kv.value)
            while (nextRecord(batch)) {
              if (batch.offset >= until) return false
              if (batch.offset < m.firstOffset) continue
              bytes += sizeAt(batch)
              count += 1
            }
            return true
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
        yield* deleteRange(K.recordKey(key, m.firstOffset), K.recordKey(key, until), [
          ...timeDeletes,
          { _tag: "put", key: K.metaKey(key), value: encodeMeta(updated) }
        ], { key, meta: updated })
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
          const durable = yield* writeBatch([{ _tag: "put", key: K.metaKey(key), value: encodeMeta(next) }], { key, meta: next })
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

    const groupOffset = (group: string, key: string) => Effect.flatMap(existingMeta(key), (m) => groupOffsetOf(m, group, key))

    /** A group's offset of a log whose metadata is `m`. */
    const groupOffsetOf = (m: StoredMeta, group: string, key: string) =>
      Effect.gen(function*() {
        const bytes = yield* Effect.mapError(db.get(K.groupKey(group, key)), storeFailure)
        const stored = bytes === undefined ? undefined : K.readGroupValue(bytes)
        const offset = stored?.offset
        return {
          group,
          key,
          offset,
          lag: Math.max(0, m.nextOffset - (offset ?? m.firstOffset)),
          ...(stored?.metadata !== undefined ? { metadata: stored.metadata } : {})
        } satisfies GroupOffset
      })

    const commitOffset = (group: string, key: string, offset: number, metadata?: string) =>
      Effect.gen(function*() {
        const problem = commitProblem({ group, key, offset, metadata })
        if (problem !== undefined) return yield* problem
        const m = yield* existingMeta(key)
        if (offset > m.nextOffset) return yield* new InvalidInput({ field: "offset", reason: `is past the end of the log (next offset ${m.nextOffset})` })
        yield* Effect.mapError(
          db.write([
            { _tag: "put", key: K.groupKey(group, key), value: K.groupValue(offset, metadata) },
            { _tag: "put", key: K.logGroupKey(key, group), value: new Uint8Array(0) }
          ]),
          storeFailure
        )
        return yield* groupOffset(group, key)
      })

    const fetchOffset = (group: string, key: string) =>
      Effect.andThen(Effect.andThen(checkKey(group, "group"), checkKey(key)), groupOffset(group, key))

    /** The groups that committed an offset of the log (at most `listGroupsMax`), with their offsets and lag. */
    const listGroups = (key: string) =>
      Effect.gen(function*() {
        yield* checkKey(key)
        const m = yield* existingMeta(key)
        const listed = K.logGroupPrefix(key)
        const rows = yield* Stream.runCollect(
          db.scan({ start: listed, end: K.prefixEnd(listed) }).pipe(Stream.take(Limits.listGroupsMax), Stream.mapError(storeFailure))
        )
        return yield* Effect.forEach(rows, (row) => groupOffsetOf(m, K.fromUtf8(row.key.subarray(listed.length)), key))
      })

    /** Deletes a group's offsets, `deleteGroupBatch` per Db batch (each batch atomic, the whole not). */
    const deleteGroup = (group: string) =>
      Effect.gen(function*() {
        yield* checkKey(group, "group")
        const prefix = K.groupPrefix(group)
        let deleted = 0
        while (true) {
          const rows = yield* Stream.runCollect(Stream.take(Stream.mapError(db.scan({ start: prefix, end: K.prefixEnd(prefix) }), storeFailure), Limits.deleteGroupBatch))
          if (rows.length === 0) return deleted
          const ops: Array<CoreDb.WriteOp> = []
          for (const kv of rows) {
            ops.push({ _tag: "delete", key: kv.key }, { _tag: "delete", key: K.logGroupKey(K.fromUtf8(kv.key.subarray(prefix.length)), group) })
          }
          yield* Effect.mapError(db.write(ops), storeFailure)
          deleted += rows.length
        }
      })

    // --- retention ----------------------------------------------------------------------------------

    const enforceRetention = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      let trimmed = 0
      let cursor: string | undefined
      let examined = 0
      do {
        const page = yield* listStored({ cursor, limit: Limits.listLogsMax }).pipe(
          Effect.catchTag("InvalidInput", (e) => Effect.die(e))
        )
        for (const { checkpoint, key } of page.stored) {
          examined += 1
          const retention = checkpoint.retention ?? settings.defaultRetention
          // A log without retention is passed over on its stored metadata: no read of its records.
          if (retention === undefined) continue
          const log = toMeta(key, (yield* bringForward(key, checkpoint)).meta)
          if (log.records === 0) continue
          let before = log.firstOffset
          if (retention.maxAgeMs !== undefined) {
            before = Math.max(before, (yield* offsetAtTime(log.key, now - retention.maxAgeMs)) ?? log.nextOffset)
          }
          if (retention.maxBytes !== undefined && log.bytes > retention.maxBytes) {
            let excess = log.bytes - retention.maxBytes
            const rows = db.scan({ start: K.recordKey(log.key, before), end: K.prefixEnd(K.recordPrefix(log.key)) }).pipe(Stream.mapError(storeFailure))
            yield* Stream.runForEachWhile(rows, (kv) =>
              Effect.sync(() => {
                const batch = openBatch(K.recordKeyOffset(kv.key), kv.value)
                while (excess > 0 && nextRecord(batch)) {
                  if (batch.offset < before) continue
                  excess -= sizeAt(batch)
                  before = batch.offset + 1
                }
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
      deleteGroup,
      listGroups,
      transact,
      tail,
      tailPrefix,
      tailCursor,
      tailPrefixCursor,
      enforceRetention
    } satisfies EventStoreShape
  })

/** The EventStore over the core `Db` in context (open it with its own path, e.g. `eventstore/`). */
export const layer = (settings: EventStoreSettings = {}): Layer.Layer<EventStore, never, CoreDb.Db> =>
  Layer.effect(EventStore, make(settings))
