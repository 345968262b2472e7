/**
 * What the EventStore's decisions share about each log: its metadata and producer states as this process
 * last decided them (bounded caches), the overlay of writes not yet durable (internal/groups.ts), reads of
 * single keys through it, the per-log locks of the rare decisions that read storage (trims, deletes,
 * metadata updates), and `writeBatch` for those decisions' writes.
 */
import { Clock, Deferred, Effect, Schema, Scope, Stream } from "effect"
import type { Db as CoreDb } from "@opendata/core"
import { BoundedMap, KeyedLock } from "@opendata/core"
import { LogNotFound, Unavailable } from "../EventStore.ts"
import * as Limits from "../limits.ts"
import type { Group } from "./groups.ts"
import { makeGroupWriter, opBytes, overlayKey } from "./groups.ts"
import * as K from "./keys.ts"
import type { StoredMeta } from "./meta.ts"
import { decodeMeta } from "./meta.ts"
import { nextRecord, openBatch, sizeAt } from "./record.ts"

export const ProducerState = Schema.Struct({ seq: Schema.Number, offsets: Schema.Array(Schema.Number), next: Schema.Number })
export type ProducerState = typeof ProducerState.Type
const decodeProducer = Schema.decodeUnknownSync(ProducerState)

export const json = (value: unknown) => K.utf8(JSON.stringify(value))
const parse = <A>(decode: (u: unknown) => A, bytes: Uint8Array): A => decode(JSON.parse(K.fromUtf8(bytes)))

export const storeFailure = (e: { readonly message: string }) => new Unavailable({ reason: e.message })

export const makeLogState = (db: CoreDb.DbShape, scope: Scope.Scope) =>
  Effect.gen(function*() {
    const clock = yield* Clock.Clock
    const groups = yield* makeGroupWriter(db, scope, () => {
      // A group failed (the Db stopped): what was cached from decisions may be ahead of storage.
      metaCache.clear()
      sinceCheckpoint.clear()
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
     * current. An entry is set where the decision is added to a group; a log without an entry is read from
     * storage once every write decided so far is durable (`loadMeta`).
     */
    const metaCache = new Map<string, StoredMeta | undefined>()
    /**
     * Records appended to each cached log since its metadata was last written: the stored metadata is a
     * checkpoint, written with a log's first append and then once `metaCheckpointRecords` records have
     * followed it (and by every trim, token or retention change), not with every append. The records after
     * it say the rest (`resolve`).
     */
    const sinceCheckpoint = new Map<string, number>()
    const cacheMeta = (key: string, meta: StoredMeta | undefined) => {
      metaCache.delete(key)
      metaCache.set(key, meta)
      BoundedMap.trimOldest(metaCache, Limits.metadataCacheEntries, (evicted) => sinceCheckpoint.delete(evicted))
    }
    /** Producer states by `log NUL producerId` (null: none stored), as `metaCache`, at most `producerCacheEntries`. */
    const producerCache = new Map<string, ProducerState | null>()
    const producerCacheKey = (key: string, producerId: string) => `${key}\u0000${producerId}`
    const cacheProducer = (k: string, state: ProducerState | null) => {
      producerCache.delete(k)
      producerCache.set(k, state)
      BoundedMap.trimOldest(producerCache, Limits.producerCacheEntries)
    }
    /**
     * A log's metadata as durable: its checkpoint, brought forward by the records after it (their count,
     * bytes and last timestamp), with how many there were. Undefined: no such log.
     */
    const resolve = (key: string): Effect.Effect<{ readonly meta: StoredMeta; readonly after: number } | undefined, Unavailable> =>
      Effect.flatMap(Effect.mapError(db.get(K.metaKey(key)), storeFailure), (bytes) =>
        bytes === undefined ? Effect.succeed(undefined) : bringForward(key, decodeMeta(bytes)))
    /** A checkpoint brought forward by the durable records after it. */
    const bringForward = (key: string, checkpoint: StoredMeta): Effect.Effect<{ readonly meta: StoredMeta; readonly after: number }, Unavailable> =>
      Effect.gen(function*() {
        let nextOffset = checkpoint.nextOffset
        let size = checkpoint.bytes
        let records = checkpoint.records
        let lastTimestamp = checkpoint.lastTimestamp
        let after = 0
        const rows = db.scan({ start: K.recordKey(key, checkpoint.nextOffset), end: K.prefixEnd(K.recordPrefix(key)) })
        yield* Stream.runForEachArray(Stream.mapError(rows, storeFailure), (kvs) =>
          Effect.sync(() => {
            for (const kv of kvs) {
              const batch = openBatch(K.recordKeyOffset(kv.key), kv.value)
              while (nextRecord(batch)) {
                if (batch.offset < checkpoint.nextOffset) continue
                size += sizeAt(batch)
                records += 1
                after += 1
              }
              nextOffset = Math.max(nextOffset, batch.offset + 1)
              lastTimestamp = Math.max(lastTimestamp, batch.timestamp)
            }
          }))
        if (after === 0) return { meta: checkpoint, after }
        return { meta: { ...checkpoint, nextOffset, bytes: size, records, lastTimestamp, lastAppendMs: lastTimestamp }, after }
      })

    /**
     * The log's metadata as last decided: cached, or (a log not in memory) resolved from storage once every
     * write decided so far is durable, so that the records after its checkpoint are all there to count.
     * Under the log's lock: no decision on it can be taken meanwhile.
     */
    const loadMeta = (key: string): Effect.Effect<StoredMeta | undefined, Unavailable> => {
      if (metaCache.has(key)) {
        const cached = metaCache.get(key)
        cacheMeta(key, cached)
        return Effect.succeed(cached)
      }
      return Effect.gen(function*() {
        yield* groups.awaitSettled
        const resolved = yield* resolve(key)
        cacheMeta(key, resolved?.meta)
        if (resolved === undefined) sinceCheckpoint.delete(key)
        else sinceCheckpoint.set(key, resolved.after)
        return resolved?.meta
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
    /** The log's metadata as durable (what reads see). */
    const durableMeta = (key: string) => Effect.map(resolve(key), (resolved) => resolved?.meta)
    const existingMeta = (key: string) =>
      Effect.flatMap(durableMeta(key), (m) => (m === undefined ? Effect.fail(new LogNotFound({ key })) : Effect.succeed(m)))
    /**
     * The metadata once every write decided on it is durable, for a decision under the log's lock that also
     * scans the log's records (trim, delete): an append does not wait for its write to be durable.
     */
    const settledMeta = (key: string) => Effect.andThen(groups.awaitSettled, existingMeta(key))

    /**
     * Adds a batch to the open group (waiting for room first); returns the wait until it is durable. `decided`:
     * the log's metadata the batch writes (or deletes, undefined), cached as decided.
     */
    const writeBatch = (ops: ReadonlyArray<CoreDb.WriteOp>, decided?: { readonly key: string; readonly meta: StoredMeta | undefined }) =>
      Effect.map(groups.awaitRoom, () => {
        let bytes = 0
        for (const op of ops) {
          bytes += opBytes(op.key, op._tag === "delete" ? undefined : op.value)
          // A deleted producer state (its log deleted) is forgotten: `log NUL producerId` is its key's rest.
          if (op._tag === "delete" && K.isProducerKey(op.key)) producerCache.delete(K.fromUtf8(op.key.subarray(1)))
        }
        // Cached first: a group that fails at once (the Db stopped) clears the caches as it settles.
        if (decided !== undefined) {
          cacheMeta(decided.key, decided.meta)
          sinceCheckpoint.set(decided.key, 0)
        }
        return awaitGroup(groups.add(ops, bytes, []))
      })

    // --- per-log locks (the rare decisions that read storage: trims, deletes, metadata updates) -----

    const locks = KeyedLock.make()
    const withLog = locks.withLock

    return {
      clock,
      groups,
      overlay,
      getKey,
      awaitGroup,
      metaCache,
      sinceCheckpoint,
      cacheMeta,
      producerCache,
      producerCacheKey,
      cacheProducer,
      loadMeta,
      loadProducer,
      durableMeta,
      bringForward,
      existingMeta,
      settledMeta,
      writeBatch,
      locks,
      withLog
    }
  })

export type LogState = Effect.Success<ReturnType<typeof makeLogState>>
