/**
 * The append path: validate; decide from the log's state in memory (`internal/logState.ts`), or under the
 * log's lock after reading it; add the decision's writes to the open group (`internal/groups.ts`); answer
 * once the group is durable. `appendNow` is the synchronous case, for callers that take many appends at once.
 */
import { Effect } from "effect"
import type { Db as CoreDb } from "@opendata/core"
import type {
  AppendOptions,
  AppendResult,
  DecidedAppend,
  OffsetCommit,
  QueuedAppend,
  RecordInput,
  TransactAppend,
  TransactResult
} from "../EventStore.ts"
import { FencingConflict, InvalidInput, LimitExceeded, LogNotFound, OffsetConflict, Unavailable } from "../EventStore.ts"
import * as Limits from "../limits.ts"
import type { Group, Remembered } from "./groups.ts"
import { opBytes, overlayKey, whenSettled } from "./groups.ts"
import * as K from "./keys.ts"
import type { LogState, ProducerState } from "./logState.ts"
import { json } from "./logState.ts"
import type { StoredMeta } from "./meta.ts"
import { encodeMeta } from "./meta.ts"
import { encodeBatches } from "./record.ts"
import { appendProblem, isCount, keyProblem } from "./validate.ts"

export const makeAppendPath = (state: LogState, metaCheckpointRecords: number) => {
  const { clock, groups, overlay, awaitGroup, metaCache, sinceCheckpoint, cacheMeta, producerCache, producerCacheKey, cacheProducer, loadMeta, loadProducer, locks, withLog } =
    state

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
    options: AppendOptions,
    gather?: Gathered
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
        return decided({ offsets: producer.offsets, next: producer.next }, pending?.group)
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
    for (let i = 0; i < records.length; i++) offsets[i] = first + i
    // The records are one entry (a big append a few), under the key of its last offset (`internal/record.ts`).
    const ops: Array<CoreDb.WriteOp> = []
    let bytes = 0
    encodeBatches(timestamp, first, records, Limits.storedBatchBytesMax, (last, value) => {
      const batchKey = K.recordKey(key, last)
      ops.push({ _tag: "put", key: batchKey, value })
      bytes += opBytes(batchKey, value)
    })
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
    // The stored metadata is a checkpoint (see `sinceCheckpoint`): written with the log's first append, then
    // once enough records have followed it; readers count the records after it.
    const since = (sinceCheckpoint.get(key) ?? 0) + records.length
    const checkpoint = current === undefined || meta.records === 0 || since >= metaCheckpointRecords
    if (checkpoint) {
      const metaKey = K.metaKey(key)
      const metaValue = encodeMeta(updated)
      ops.push({ _tag: "put", key: metaKey, value: metaValue })
      bytes += opBytes(metaKey, metaValue)
    }
    // Producer states are read through the overlay while not durable (a retry must see its first attempt).
    const remember: Array<Remembered> = []
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
    sinceCheckpoint.set(key, checkpoint ? 0 : since)
    if (state !== undefined) cacheProducer(producerCacheKey(key, options.producerId!), state)
    if (gather !== undefined) {
      // Part of a transaction: its caller adds every decision's ops at once.
      for (const op of ops) gather.ops.push(op)
      gather.bytes += bytes
      return decided({ offsets, next }, undefined)
    }
    // Every key and value above was made for this write (record values are encoded copies).
    return decided({ offsets, next }, groups.add(ops, bytes, remember, true))
  }

  /** An append's answer, durable once `group` is (at once without one). */
  const decided = (result: AppendResult, group: Group | undefined): DecidedAppend =>
    group === undefined
      ? { result, durable: Effect.void, whenDurable: (callback) => callback(undefined) }
      : {
        result,
        // Made when asked for: the append session takes `whenDurable` alone.
        get durable() {
          return awaitGroup(group)
        },
        whenDurable: (callback) => whenSettled(group, callback)
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
    if (locks.isBusy(key) || !metaCache.has(key) || !groups.hasRoom()) return undefined
    const producer = options.producerId === undefined ? null : producerCache.get(producerCacheKey(key, options.producerId))
    if (producer === undefined) return undefined
    return decideAppend(key, metaCache.get(key), producer, records, total, options)
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

  /**
   * Appends to several logs and commits a group offset (with its metadata) as ONE write: after a crash,
   * all of it or none of it is there. Under the locks of every log it appends to (taken in key order, so
   * two transactions cannot deadlock); the offset's log is read as decided so far, without its lock.
   * Transactions take no producer ids, expected offsets or fencing tokens: a fenced log refuses them.
   */
  const transact = (appends: ReadonlyArray<TransactAppend>, commit?: OffsetCommit) =>
    Effect.suspend((): Effect.Effect<TransactResult, AppendError | LogNotFound> => {
      if (appends.length > Limits.transactLogsMax) {
        return Effect.fail(new LimitExceeded({ field: "appends", limit: Limits.transactLogsMax }))
      }
      // One decision per log: a log named twice gets its records in the order given.
      const byKey = new Map<string, { records: Array<RecordInput>; total: number }>()
      let bytes = 0
      for (const a of appends) {
        const entry = byKey.get(a.key) ?? { records: [], total: 0 }
        for (const r of a.records) entry.records.push(r)
        byKey.set(a.key, entry)
      }
      for (const [key, entry] of byKey) {
        const total = appendProblem(key, entry.records, {})
        if (typeof total !== "number") return Effect.fail(total)
        entry.total = total
        bytes += total
      }
      if (bytes > Limits.transactBytesMax) return Effect.fail(new LimitExceeded({ field: "bytes", limit: Limits.transactBytesMax }))
      const problem = commit === undefined ? undefined : commitProblem(commit)
      if (problem !== undefined) return Effect.fail(problem)
      const keys = [...byKey.keys()].sort()
      // The offset's log is locked too (a log being deleted must not get a group offset after its deletion).
      const locks = commit === undefined || byKey.has(commit.key) ? keys : [...keys, commit.key].sort()
      const decide = Effect.gen(function*() {
        yield* groups.awaitRoom
        const metas: Array<StoredMeta | undefined> = []
        for (const key of keys) metas.push(yield* loadMeta(key))
        if (commit !== undefined) {
          const at = keys.indexOf(commit.key)
          const m = at !== -1 ? metas[at] : yield* loadMeta(commit.key)
          if (m === undefined) return yield* new LogNotFound({ key: commit.key })
          if (commit.offset > m.nextOffset) {
            return yield* new InvalidInput({ field: "offset", reason: `is past the end of the log (next offset ${m.nextOffset})` })
          }
        }
        // From here on synchronous: every check before any decision, so that none is taken unless all are.
        if (groups.isClosed()) return yield* new Unavailable({ reason: "the event store is closed" })
        for (let i = 0; i < keys.length; i++) {
          if (metas[i]?.token !== undefined) return yield* new FencingConflict({ key: keys[i]!, next: metas[i]!.nextOffset })
        }
        const gather: Gathered = { ops: [], bytes: 0 }
        const results = new Map<string, AppendResult>()
        for (let i = 0; i < keys.length; i++) {
          const entry = byKey.get(keys[i]!)!
          const d = decideAppend(keys[i]!, metas[i], null, entry.records, entry.total, {}, gather)
          if (!("result" in d)) return yield* d
          results.set(keys[i]!, d.result)
        }
        if (commit !== undefined) {
          const k = K.groupKey(commit.group, commit.key)
          const value = K.groupValue(commit.offset, commit.metadata)
          const listed = K.logGroupKey(commit.key, commit.group)
          gather.ops.push({ _tag: "put", key: k, value }, { _tag: "put", key: listed, value: new Uint8Array(0) })
          gather.bytes += opBytes(k, value) + opBytes(listed, undefined)
        }
        const group = gather.ops.length === 0 ? undefined : groups.add(gather.ops, gather.bytes, [], true)
        return { results, group }
      })
      const locked = locks.reduceRight<Effect.Effect<{ results: Map<string, AppendResult>; group: Group | undefined }, AppendError | LogNotFound>>(
        (inner, key) => withLog(key, inner),
        decide
      )
      return Effect.flatMap(locked, ({ group, results }) =>
        Effect.as(group === undefined ? Effect.void : awaitGroup(group), {
          results: appends.map((a) => results.get(a.key)!)
        }))
    })

  return { append, appendQueued, appendNow, transact }
}

/** Ops gathered from several decisions, to be added as one. */
interface Gathered {
  readonly ops: Array<CoreDb.WriteOp>
  bytes: number
}

/** Why a group offset commit is invalid, or undefined. */
export const commitProblem = (commit: OffsetCommit): InvalidInput | LimitExceeded | undefined => {
  const group = keyProblem(commit.group, "group")
  if (group !== undefined) return group
  const key = keyProblem(commit.key)
  if (key !== undefined) return key
  if (!isCount(commit.offset)) return new InvalidInput({ field: "offset", reason: "must be a non-negative integer" })
  if (commit.metadata !== undefined) {
    if (typeof commit.metadata !== "string" || !commit.metadata.isWellFormed()) {
      return new InvalidInput({ field: "metadata", reason: "must be a string of valid UTF-16 (no lone surrogates)" })
    }
    if (Buffer.byteLength(commit.metadata, "utf8") > Limits.groupMetadataBytesMax) {
      return new LimitExceeded({ field: "metadata", limit: Limits.groupMetadataBytesMax })
    }
  }
  return undefined
}
