/**
 * Tsdb: Prometheus-style time series on the core `Db`.
 *
 * Write path (one remote-write request = one atomic Db batch, acknowledged once durable): each series'
 * labels resolve to an id through a dictionary keyed by a hash of the labels (collisions resolved by
 * comparing the stored labels); each accepted sample goes to the series' head in memory (an XOR chunk
 * appended to, or, if older than the head but within the out-of-order window, the out-of-order buffer),
 * and the request's accepted samples are logged as one columnar record (`W`), which the WAL makes
 * durable: the batch carries what arrived, not re-encoded chunks. A full head (120 samples) or buffer is
 * sealed into an immutable chunk in its time bucket in the same batch; the first sample of a series in a
 * bucket adds it to that bucket's inverted index. Every `headCheckpointRecords` records (or
 * `headCheckpointBytes`), and on close, the changed heads are checkpointed (`H`, each saying which record
 * it reflects) and the records they cover deleted; a restart, or a reader, replays the records after the
 * checkpoint into the heads (see internal/headLog.ts). Decisions are taken under one lock; the durable
 * wait is not.
 *
 * The key layout in the Db (`tsdb/` path): internal/keys.ts.
 *
 * Native histograms take the same path in their own columns: a series' histogram samples go to its
 * histogram head (in order only, as Prometheus takes them), are logged in the same record (version 3),
 * checkpointed with its head, and sealed (`chunkSamplesMax` of them) into `g` chunks
 * (internal/histogramChunk.ts). A series may hold floats and histograms at different times.
 */
import { Clock, Context, Deferred, Effect, Exit, Layer, Scope, Semaphore, Stream } from "effect"
import type { Db as CoreDb } from "@opendata/core"
import { BoundedMap, Db, Keys } from "@opendata/core"
import * as Limits from "./limits.ts"
import { decodeSamples, encodeSamples, openStored, storedChunk } from "./internal/chunkCodec.ts"
import type { LogRecord } from "./internal/headLog.ts"
import { BucketPostings } from "./internal/postings.ts"
import { hash32, SeriesLookup } from "./internal/seriesLookup.ts"
import {
  bucketKey,
  bucketOf,
  bucketSeriesKey,
  bucketSeriesPrefix,
  cat,
  checkpointKey,
  chunkPrefix,
  decodeLabels,
  decoder,
  dictKey,
  dictPrefix,
  encodeLabels,
  encoder,
  exemplarKey,
  exemplarsStart,
  headKey,
  histogramBucketKey,
  histogramChunkPrefix,
  metaKey,
  layoutKey,
  nextIdKey,
  noBytes,
  oooKey,
  postingPrefix,
  prefixEnd,
  readU32,
  recordKey,
  recordsEnd,
  seriesKey,
  startKey,
  startPrefix,
  u32,
  zero
} from "./internal/keys.ts"
import {
  applyHistogram,
  applySample,
  chunksCapacity,
  columnSlab,
  decodeRange,
  emptyState,
  appendFloats,
  isIndexed,
  isStaleHistogram,
  keepRecent,
  markIndexed,
  newestSample,
  noChunks,
  noSealed,
  pushStored,
  recentBucket,
  recentBytes,
  recentCount,
  recentMaxT,
  recentMinT,
  withHistograms,
  withStarts
} from "./internal/head.ts"
import type { ColumnSlab, FloatIntake, HistogramRun, SealedChunk, SeriesState } from "./internal/head.ts"
import { decodeCheckpointed, decodeRecord, encodeCheckpointed, RecordBuilder } from "./internal/headLog.ts"
import type { Exemplar } from "./internal/exemplars.ts"
import { decodeExemplar, encodeExemplar, ExemplarRing, refusal } from "./internal/exemplars.ts"
import type { Labels, Matcher } from "./internal/labels.ts"
import { canonical, hashCanonical, labelValue, matchesAll, sortLabels } from "./internal/labels.ts"
import type { FloatHistogram } from "./promql/histogram.ts"
import { decodeHistogramChunk, encodeHistogramChunk } from "./internal/histogramChunk.ts"
import type { Sample, SelectedSeries, SeriesReader, SeriesSource } from "./SeriesSource.ts"
import type { SampleColumns } from "./internal/remoteWrite/types.ts"
import { SamplesLimitExceeded, TsdbError } from "./SeriesSource.ts"

export type { Exemplar, Labels, Matcher }
export type { Sample, SelectedSeries, SelectOptions, SeriesReader, SeriesSource } from "./SeriesSource.ts"
export { SamplesLimitExceeded, samplesOf, selectedSeries, TsdbError } from "./SeriesSource.ts"

const { readU64, u64 } = Keys

/** The float samples of a series input, objects and columns together. */
const floatCount = (s: SeriesInput): number => s.samples.length + (s.sampleColumns === undefined ? 0 : s.sampleColumns.end - s.sampleColumns.start)

const noSamples: ReadonlyArray<Sample> = []

/**
 * A series' float samples as objects: those of `samples`, then its columns', with its histograms' stale
 * markers among them in time order (a stale marker sent as a histogram is a stale marker, as for floats).
 */
const floatSamples = (s: SeriesInput, histograms: ReadonlyArray<HistogramInput>): ReadonlyArray<Sample> => {
  const stale = histograms.filter((x) => isStaleHistogram(x.histogram))
  if (s.sampleColumns === undefined && stale.length === 0) return s.samples
  const out: Array<Sample> = [...s.samples]
  const columns = s.sampleColumns
  if (columns !== undefined) {
    for (let k = columns.start; k < columns.end; k++) out.push({ timestampMs: columns.timestamps[k]!, value: columns.values[k]! })
  }
  if (stale.length === 0) return out
  for (const x of stale) out.push({ timestampMs: x.timestampMs, value: x.histogram.sum })
  return out.sort((a, b) => a.timestampMs - b.timestampMs)
}

/** A native histogram sample. */
export interface HistogramInput {
  readonly timestampMs: number
  readonly histogram: FloatHistogram
  /** When the histogram's counter started (ms), if known. */
  readonly startTimestampMs?: number | undefined
}

export interface SeriesInput {
  readonly labels: Labels
  readonly samples: ReadonlyArray<Sample>
  /**
   * Float samples as two columns (no object per sample; what the remote-write decoder gives), taken after
   * those of `samples`.
   */
  readonly sampleColumns?: SampleColumns | undefined
  /**
   * Native histogram samples (a histogram whose sum is the stale marker is a stale marker). In order per
   * series: one at or before the series' newest histogram is a duplicate (the same histogram: nothing to
   * do) or refused (as Prometheus refuses out-of-order histograms).
   */
  readonly histograms?: ReadonlyArray<HistogramInput> | undefined
  /** Exemplars of the series (kept in one buffer of `exemplarsMax`, as Prometheus keeps them). */
  readonly exemplars?: ReadonlyArray<Exemplar> | undefined
}

/** A series and its exemplars in a time range (`/api/v1/query_exemplars`). */
export interface SeriesExemplars {
  readonly labels: Labels
  readonly exemplars: ReadonlyArray<Exemplar>
}

export interface MetricMetadata {
  readonly metric: string
  readonly type: string
  readonly help: string
  readonly unit: string
}

export interface WriteInput {
  readonly series: ReadonlyArray<SeriesInput>
  readonly metadata?: ReadonlyArray<MetricMetadata> | undefined
}

/** What a write did. Rejected samples are not stored; the rest of the request is. */
export interface WriteOutcome {
  readonly samplesWritten: number
  /** Native histogram samples stored; left out when the request had none. */
  readonly histogramsWritten?: number | undefined
  /** Series this write created (new label sets); left out when none. */
  readonly seriesCreated?: number | undefined
  readonly outOfOrder: number
  /**
   * Samples refused as out of bounds: before the retention horizon (now - retention: retention would drop
   * them at once), too far behind the series' newest sample for the out-of-order window, or at a
   * timestamp that is not a non-negative integer of milliseconds.
   */
  readonly tooOld: number
  readonly duplicates: number
  /** Exemplars stored; left out when the request had none. */
  readonly exemplarsWritten?: number | undefined
  /** Exemplars refused (out of order, labels too long, or of a series that has no samples), left out when none. */
  readonly exemplarsRefused?: number | undefined
}

/** A cache's size and use: entries and (roughly, as the heap holds them) bytes, its bound, and its lookups. */
export interface CacheStats {
  readonly entries: number
  readonly bytes: number
  readonly capacityBytes: number
  readonly hits: number
  readonly misses: number
}

/** The TSDB's caches: the postings of recent buckets (`postingsCacheBytes`). */
export interface TsdbCacheStats {
  readonly postings: CacheStats
}

export interface TsdbShape extends SeriesSource {
  readonly write: (input: WriteInput) => Effect.Effect<WriteOutcome, TsdbError>
  /** Label sets of the series matching any of the selectors in [mint, maxt]. */
  readonly series: (selectors: ReadonlyArray<ReadonlyArray<Matcher>>, mint: number, maxt: number, limit?: number) => Effect.Effect<ReadonlyArray<Labels>, TsdbError>
  readonly labelNames: (selectors: ReadonlyArray<ReadonlyArray<Matcher>>, mint: number, maxt: number, limit?: number) => Effect.Effect<ReadonlyArray<string>, TsdbError>
  readonly labelValues: (
    name: string,
    selectors: ReadonlyArray<ReadonlyArray<Matcher>>,
    mint: number,
    maxt: number,
    limit?: number
  ) => Effect.Effect<ReadonlyArray<string>, TsdbError>
  readonly metadata: (metric?: string, limit?: number) => Effect.Effect<ReadonlyArray<MetricMetadata>, TsdbError>
  /** The exemplars in [mint, maxt] of the series matching any of the selectors, series with none left out. */
  readonly exemplars: (selectors: ReadonlyArray<ReadonlyArray<Matcher>>, mint: number, maxt: number) => Effect.Effect<ReadonlyArray<SeriesExemplars>, TsdbError>
  /** Deletes chunks and index buckets older than the retention; returns the buckets dropped. */
  readonly enforceRetention: Effect.Effect<number, TsdbError>
  /** What the TSDB's caches hold, for `/metrics`. */
  readonly cacheStats: Effect.Effect<TsdbCacheStats>
}

export class Tsdb extends Context.Service<Tsdb, TsdbShape>()("@opendata/tsdb/Tsdb") {}

export interface TsdbSettings {
  readonly retentionMs?: number | undefined
  readonly outOfOrderWindowMs?: number | undefined
  readonly retentionIntervalMs?: number | undefined
  /** Log records after which the heads are checkpointed (default `headCheckpointRecords`). */
  readonly headCheckpointRecords?: number | undefined
  /** Log bytes after which the heads are checkpointed (default `headCheckpointBytes`). */
  readonly headCheckpointBytes?: number | undefined
  /** Exemplars kept over all series (default `exemplarsMax`; 0 keeps none). */
  readonly exemplarsMax?: number | undefined
  /** Bytes of postings kept in memory, roughly as the heap holds them (default `postingsCacheBytes`). */
  readonly postingsCacheBytes?: number | undefined
  /**
   * Keep samples' start timestamps (remote write 2.0's created timestamps), as Prometheus's `st-storage`
   * feature: off by default. Read back in `SelectedSeries.startTimestamps` (for PromQL's
   * `use-start-timestamps`).
   */
  readonly startTimestamps?: boolean | undefined
}

// -------------------------------------------------------------------------------------------------
// Implementation
// -------------------------------------------------------------------------------------------------

/** The labels sorted by name (the same array when they are, as senders send them). */
const sorted = (labels: Labels): Labels => {
  for (let i = 1; i < labels.length; i++) if (!(labels[i - 1]![0] < labels[i]![0])) return sortLabels(labels)
  return labels
}

/**
 * Whether many series close together by id (ascending) are read with one scan over the span of their
 * ids (other series' keys in it skipped), rather than a read each.
 */
const scanWide = (ids: ReadonlyArray<number>) =>
  ids.length >= Limits.selectScanSeriesMin && ids.length * Limits.selectScanSpanPerSeriesMax >= ids.at(-1)! - ids[0]! + 1

/** The runs of consecutive ids among the sorted `ids` that `wanted` keeps, as [first, last] (both inclusive). */
const idRuns = (ids: ReadonlyArray<number>, wanted: (id: number) => boolean): Array<readonly [number, number]> => {
  const runs: Array<readonly [number, number]> = []
  let first = -1
  let last = -1
  for (const id of ids) {
    if (!wanted(id)) continue
    if (first >= 0 && id === last + 1) {
      last = id
      continue
    }
    if (first >= 0) runs.push([first, last])
    first = last = id
  }
  if (first >= 0) runs.push([first, last])
  return runs
}

const noHistogramInputs: ReadonlyArray<HistogramInput> = []

export const make = (settings: TsdbSettings = {}): Effect.Effect<TsdbShape, never, CoreDb.Db | Scope.Scope> =>
  Effect.gen(function*() {
    const db = yield* Db.Db
    const retentionMs = settings.retentionMs ?? Limits.retentionMsDefault
    const oooWindowMs = settings.outOfOrderWindowMs ?? Limits.outOfOrderWindowMs
    const checkpointRecords = settings.headCheckpointRecords ?? Limits.headCheckpointRecords
    const checkpointBytes = settings.headCheckpointBytes ?? Limits.headCheckpointBytes
    const keepStarts = settings.startTimestamps === true
    const failed = (e: { readonly message: string }) => new TsdbError({ kind: "unavailable", message: e.message })

    const lock = Semaphore.makeUnsafe(1)
    /** The head: series state by id, least recently written first (a Map keeps insertion order). */
    const heads = new Map<number, SeriesState>()
    /** Series ids by labels, at most `headSeriesMax`. */
    const ids = new SeriesLookup()
    /** Series ids by label sets shared by requests (see the write path), by identity. */
    const idsByIdentity = new WeakMap<Labels, number>()
    /** Series writes so far (see `SeriesState.touched`). */
    let writes = 0
    /**
     * Single-key writes not yet durable: Db reads do not see them yet. An entry lives until the Db's
     * durable watermark reaches its seq (not until the request that wrote it returns: a request given up
     * on by its client still lands).
     */
    const overlay = new Map<string, { readonly value: Uint8Array; readonly seq: number }>()
    /** Series created by writes not yet durable (canonical labels -> id): the dictionary scan misses them. */
    const pendingSeries = new Map<string, { readonly id: number; readonly seq: number }>()
    /** The overlay's keys and pending series by write, oldest first, to drop them once durable. */
    const overlayBySeq: Array<{ readonly seq: number; readonly keys: ReadonlyArray<string>; readonly series: ReadonlyArray<string> }> = []
    const okey = (k: Uint8Array) => Buffer.from(k).toString("latin1")
    const dropDurableOverlay = (durableSeq: number) => {
      let n = 0
      while (n < overlayBySeq.length && overlayBySeq[n]!.seq <= durableSeq) {
        for (const k of overlayBySeq[n]!.keys) {
          const entry = overlay.get(k)
          if (entry !== undefined && entry.seq <= durableSeq) overlay.delete(k)
        }
        for (const k of overlayBySeq[n]!.series) {
          const entry = pendingSeries.get(k)
          if (entry !== undefined && entry.seq <= durableSeq) pendingSeries.delete(k)
        }
        n += 1
      }
      if (n > 0) overlayBySeq.splice(0, n)
    }
    /** Label sets by series id, read once (they never change), at most `seriesLabelsCacheMax`. */
    const labelsCache = new Map<number, Labels>()
    /** Keeps a series' labels in `labelsCache` (they never change); returns them. */
    const rememberLabels = (id: number, labels: Labels): Labels => {
      labelsCache.set(id, labels)
      BoundedMap.trimOldest(labelsCache, Limits.seriesLabelsCacheMax)
      return labels
    }
    /**
     * The postings of recent buckets in memory (`internal/postings.ts`), for selections and the label APIs:
     * a bucket's are read from its series keys (`j`, with their labels; and the older `i` keys) when first
     * asked for, then kept current from the Db's change feed (this process's writes and, on a follower, the
     * writer's), so they hold exactly what is durable, as a scan would. At most `postingsBucketsMax`
     * buckets, the least recently asked for first. A gap in the feed (it dropped batches) drops them all:
     * they are read again when next asked for.
     */
    interface IndexedBucket {
      readonly postings: BucketPostings
      /** Completes once the bucket's postings are read. */
      readonly ready: Deferred.Deferred<void, TsdbError>
      /** Series the feed added whose labels were not in memory: read before the postings are used. */
      unlabelled: Set<number>
    }
    const postingsIndex = new Map<number, IndexedBucket>()
    const postingsCapacity = settings.postingsCacheBytes ?? Limits.postingsCacheBytes
    let postingsHits = 0
    let postingsMisses = 0
    const postingsBytes = () => {
      let bytes = 0
      for (const entry of postingsIndex.values()) bytes += entry.postings.bytes
      return bytes
    }
    /** Drops the least recently asked for buckets past `postingsBucketsMax` or the bytes bound; never the last asked for. */
    const evictPostings = () => {
      let bytes = postingsBytes()
      while (postingsIndex.size > 1 && (postingsIndex.size > Limits.postingsBucketsMax || bytes > postingsCapacity)) {
        const [oldest, entry] = postingsIndex.entries().next().value!
        postingsIndex.delete(oldest)
        bytes -= entry.postings.bytes
      }
    }
    const cacheStats: TsdbShape["cacheStats"] = Effect.sync(() => ({
      postings: { entries: postingsIndex.size, bytes: postingsBytes(), capacityBytes: postingsCapacity, hits: postingsHits, misses: postingsMisses }
    }))
    const feed = yield* db.subscribe
    /** The last seq the feed has applied, and the durable seq the index was last read entire at. */
    let feedSeq = yield* db.durableSeq
    let validSeq = feedSeq
    const feedWaiters = new Set<{ readonly seq: number; readonly done: Deferred.Deferred<void> }>()
    const applyFeed = (batch: CoreDb.DurableBatch) => {
      if (batch.firstSeq > feedSeq + 1) postingsIndex.clear()
      feedSeq = Math.max(feedSeq, batch.lastSeq)
      if (postingsIndex.size > 0) {
        // A new series' labels come in the batch that creates it.
        let created: Map<number, Uint8Array> | undefined
        for (const e of batch.entries) {
          const k = e.key
          if (e.kind !== "put" || k[0] !== 0x6a || k.length !== 13) continue
          const entry = postingsIndex.get(readU32(k, 1))
          if (entry === undefined) continue
          const id = readU64(k, 5)
          let labels = labelsCache.get(id)
          if (labels === undefined) {
            if (created === undefined) {
              created = new Map()
              for (const x of batch.entries) if (x.kind === "put" && x.key[0] === 0x53 && x.key.length === 9) created.set(readU64(x.key, 1), x.value)
            }
            const bytes = created.get(id)
            if (bytes !== undefined) labels = rememberLabels(id, decodeLabels(bytes))
          }
          if (labels === undefined) entry.unlabelled.add(id)
          else entry.postings.addSeries(id, labels)
        }
      }
      for (const w of feedWaiters) {
        if (w.seq > feedSeq) continue
        feedWaiters.delete(w)
        Deferred.doneUnsafe(w.done, Exit.void)
      }
    }
    yield* Effect.forkScoped(Effect.forever(Effect.flatMap(feed, (batch) => Effect.sync(() => applyFeed(batch)))))
    /**
     * Waits until the index holds everything durable now: the feed has applied it (it follows the durable
     * watermark closely), or, past `postingsFeedWaitMs` (a follower that adopted a manifest without
     * publishing its batches), the index is dropped and read again.
     */
    const postingsCurrent = Effect.gen(function*() {
      const durable = yield* db.durableSeq
      if (Math.max(feedSeq, validSeq) >= durable) return
      const waiter = { seq: durable, done: Deferred.makeUnsafe<void>() }
      feedWaiters.add(waiter)
      const caught = yield* Deferred.await(waiter.done).pipe(
        Effect.timeoutOption(`${Limits.postingsFeedWaitMs} millis`),
        Effect.ensuring(Effect.sync(() => feedWaiters.delete(waiter)))
      )
      if (caught._tag === "None" && Math.max(feedSeq, validSeq) < durable) {
        postingsIndex.clear()
        validSeq = durable
      }
    })
    let nextId: number | undefined
    /** Buckets this process has registered (re-registering after a restart is harmless). */
    const knownBuckets = new Set<number>()
    /** Buckets this process has marked as holding native histograms (`G` keys). */
    const knownHistogramBuckets = new Set<number>()

    const getKey = (k: Uint8Array) =>
      Effect.suspend(() => {
        const pending = overlay.get(okey(k))
        return pending !== undefined ? Effect.succeed(pending.value as Uint8Array | undefined) : Effect.mapError(db.get(k), failed)
      })
    /** The seq of a write of `k` that is not durable yet (0 if none). */
    const pendingSeqOf = (k: Uint8Array) => overlay.get(okey(k))?.seq ?? 0

    /**
     * The first bucket from which every chunk lies in the bucket its key names (the `L` key), once known:
     * a selection need not look one bucket back from there on. Written by the first write of a writer
     * of this layout: the bucket after the last that holds data then (0 in a new store). An older
     * writer's chunks, and the head chunk it left (which this layout cuts in its own bucket), hold
     * samples of those buckets only.
     */
    let chunksInBucketFrom: number | undefined
    /** Whether this writer has written (or found) the `L` key. */
    let layoutWritten = false
    const loadLayout = Effect.gen(function*() {
      if (chunksInBucketFrom !== undefined) return
      const bytes = yield* getKey(layoutKey)
      if (bytes !== undefined) chunksInBucketFrom = readU64(bytes, 0)
    })
    /** The first bucket a selection from `mint` reads: the bucket before `mint`'s too where a chunk there may reach into it. */
    const firstBucketFor = (mint: number) =>
      Effect.map(loadLayout, () => {
        const bucket = bucketOf(Math.max(0, mint))
        return chunksInBucketFrom !== undefined && bucket >= chunksInBucketFrom ? bucket : bucket - 1
      })

    /** The head log record of the write being decided (reset for each). */
    const recordBuilder = new RecordBuilder(1024)

    const loadNextId = Effect.gen(function*() {
      if (nextId === undefined) {
        const bytes = yield* getKey(nextIdKey)
        nextId = bytes === undefined ? 1 : readU64(bytes, 0)
      }
      return nextId
    })

    // --- the log and its checkpoints ----------------------------------------------------------------

    /** The next record number to log, once the log has been read (`catchUp`). */
    let nextRecord = 1
    /** The last record applied to the head. */
    let lastApplied = 0
    /** The last checkpoint: records up to it are reflected in the `H` keys (and deleted). */
    let checkpointed = 0
    /** Records and their bytes logged since the last checkpoint. */
    let recordsSinceCheckpoint = 0
    let bytesSinceCheckpoint = 0
    /** Whether the log has been read since this process started (writes wait for it). */
    let caughtUpOnce = false
    /** The seq of the last batch this process queued (a head read back from the Db waits for it). */
    let lastSubmittedSeq = 0

    /** A series' head from its `H` key (undefined: none stored), given the key's bytes. */
    const stateFrom = (id: number, bytes: Uint8Array | undefined): SeriesState => {
      const state = emptyState(id)
      if (bytes === undefined) return state
      const c = decodeCheckpointed(bytes)
      state.asOf = c.asOf
      state.lastRecord = c.asOf
      if (c.head !== undefined) state.headChunk = openStored(c.head)
      if (c.ooo !== undefined) state.ooo = decodeSamples(c.ooo)
      if (c.histograms !== undefined) state.histograms = decodeHistogramChunk(c.histograms)
      state.pendingSeq = pendingSeqOf(headKey(id))
      return state
    }

    /**
     * The stored values of many series' `keyOf(id)` keys (a tag and the id; ascending ids): one scan over
     * their span when they are close together, a read each otherwise.
     */
    const readStored = (ids: ReadonlyArray<number>, keyOf: (id: number) => Uint8Array) =>
      Effect.gen(function*() {
        const found = new Map<number, Uint8Array>()
        if (ids.length === 0) return found
        if (scanWide(ids)) {
          const wanted = new Set(ids)
          yield* Stream.runForEachArray(db.scan({ start: keyOf(ids[0]!), end: prefixEnd(keyOf(ids.at(-1)!)) }), (kvs) =>
            Effect.sync(() => {
              for (const kv of kvs) {
                const id = readU64(kv.key, 1)
                if (wanted.has(id)) found.set(id, kv.value)
              }
            })).pipe(Effect.mapError(failed))
        } else {
          for (const id of ids) {
            const bytes = yield* Effect.mapError(db.get(keyOf(id)), failed)
            if (bytes !== undefined) found.set(id, bytes)
          }
        }
        return found
      })

    /** The `H` values of many series (ascending ids), not yet durable ones from the overlay. */
    const readHeads = (ids: ReadonlyArray<number>) =>
      Effect.gen(function*() {
        const found = yield* readStored(ids, headKey)
        for (const id of ids) {
          const pending = overlay.get(okey(headKey(id)))
          if (pending !== undefined) found.set(id, pending.value)
        }
        return found
      })

    /**
     * Brings the head up to the log: applies the records after the last one applied (a writer after a
     * restart; a reader whenever it is asked). If a checkpoint covered records not applied here (they are
     * deleted), the head restarts from the checkpointed heads.
     */
    const catchUp = Effect.gen(function*() {
      // Db reads see durable writes only: what this process queued must be there first.
      if (!caughtUpOnce && lastSubmittedSeq > 0) yield* Effect.mapError(db.awaitDurable(lastSubmittedSeq), failed)
      const rows = yield* Stream.runCollect(db.scan({ start: recordKey(lastApplied + 1), end: recordsEnd })).pipe(Effect.mapError(failed))
      const markerBytes = yield* getKey(checkpointKey)
      const marker = markerBytes === undefined ? 0 : readU64(markerBytes, 0)
      if (marker > lastApplied) {
        heads.clear()
        lastApplied = marker
      }
      checkpointed = Math.max(checkpointed, marker)
      const records: Array<{ readonly n: number; readonly record: LogRecord; readonly bytes: number }> = []
      const missing = new Set<number>()
      for (const kv of rows) {
        const n = readU64(kv.key, 1)
        if (n <= lastApplied) continue
        const record = yield* Effect.try({ try: () => decodeRecord(kv.value), catch: (e) => new TsdbError({ kind: "unavailable", message: `head log record ${n}: ${String(e)}` }) })
        records.push({ n, record, bytes: kv.value.length })
        for (let i = 0; i < record.count; i++) if (!heads.has(record.ids[i]!)) missing.add(record.ids[i]!)
        for (const id of record.histograms?.ids ?? []) if (!heads.has(id)) missing.add(id)
      }
      if (records.length > 0) {
        const stored = yield* readHeads([...missing].sort((a, b) => a - b))
        for (const id of missing) heads.set(id, stateFrom(id, stored.get(id)))
        for (const { bytes, n, record } of records) {
          for (let i = 0; i < record.count; i++) {
            const state = heads.get(record.ids[i]!)!
            if (n <= state.asOf) continue
            applySample(state, record.timestamps[i]!, record.bits[2 * i]!, record.bits[2 * i + 1]!, undefined)
            state.lastRecord = n
          }
          const hs = record.histograms
          if (hs !== undefined) {
            for (let i = 0; i < hs.ids.length; i++) {
              const state = heads.get(hs.ids[i]!)!
              if (n <= state.asOf) continue
              applyHistogram(state, hs.timestamps[i]!, hs.values[i]!, undefined)
              state.lastRecord = n
            }
          }
          lastApplied = n
          recordsSinceCheckpoint += 1
          bytesSinceCheckpoint += bytes
        }
      }
      nextRecord = Math.max(nextRecord, lastApplied + 1)
      caughtUpOnce = true
    })

    /**
     * Writes the heads that changed since their last checkpoint (`H` keys, each saying which record it
     * reflects), then, in the last batch, the checkpoint marker and the deletion of the records it covers.
     * Queued, not awaited: the Db makes batches durable in order, and a crash between batches leaves heads
     * that say what they reflect, so a replay skips what they hold.
     */
    const checkpoint = Effect.gen(function*() {
      const upTo = nextRecord - 1
      if (upTo <= checkpointed) return
      const batches: Array<Array<CoreDb.WriteOp>> = [[]]
      let batchBytes = 0
      const written: Array<readonly [string, Uint8Array, number]> = []
      /** Heads written, and the record each reflects: clean once every batch is queued. */
      const clean: Array<readonly [SeriesState, number]> = []
      for (const state of heads.values()) {
        if (state.lastRecord <= state.asOf) continue
        const value = encodeCheckpointed(
          state.lastRecord,
          state.headChunk.count > 0 ? storedChunk(state.headChunk.bytes()) : undefined,
          state.ooo.length > 0 ? encodeSamples(state.ooo) : undefined,
          state.histograms.length > 0 ? encodeHistogramChunk(state.histograms) : undefined
        )
        if (batchBytes + value.length > Limits.headCheckpointBatchBytes) {
          batches.push([])
          batchBytes = 0
        }
        const key = headKey(state.id)
        batches.at(-1)!.push({ _tag: "put", key, value })
        batchBytes += value.length + key.length
        written.push([okey(key), value, batches.length - 1])
        clean.push([state, state.lastRecord])
      }
      const last = batches.at(-1)!
      last.push({ _tag: "put", key: checkpointKey, value: u64(upTo) })
      for (let n = checkpointed + 1; n <= upTo; n++) last.push({ _tag: "delete", key: recordKey(n) })
      for (let b = 0; b < batches.length; b++) {
        const { seq } = yield* Effect.mapError(db.write(batches[b]!, { awaitDurable: false }), failed)
        const keys: Array<string> = []
        for (const [k, value, batch] of written) {
          if (batch !== b) continue
          overlay.set(k, { value, seq })
          keys.push(k)
        }
        if (b === batches.length - 1) {
          overlay.set(okey(checkpointKey), { value: u64(upTo), seq })
          keys.push(okey(checkpointKey))
        }
        overlayBySeq.push({ seq, keys, series: [] })
        lastSubmittedSeq = seq
      }
      for (const [state, asOf] of clean) state.asOf = Math.max(state.asOf, asOf)
      checkpointed = upTo
      recordsSinceCheckpoint = 0
      bytesSinceCheckpoint = 0
    })

    /** Finds or creates the series id of a label set; a new series adds its dictionary ops to `ops`. */
    /**
     * Every label hash in the dictionary (loaded once, then kept up to date by this writer, the only one),
     * so that a series never seen before is known new without a dictionary scan. Undefined until loaded,
     * and for good past `knownHashesMax` hashes (then every new series scans, as before).
     */
    let knownHashes: Set<number> | undefined
    let knownHashesLoaded = false
    const loadKnownHashes = Effect.gen(function*() {
      const hashes = new Set<number>()
      const rows = db.scan({ start: encoder.encode("h"), end: encoder.encode("i") })
      yield* Stream.runForEachWhile(rows, (kv) =>
        Effect.sync(() => {
          hashes.add(readU64(kv.key, 1))
          return hashes.size <= Limits.knownHashesMax
        }))
      knownHashesLoaded = true
      if (hashes.size <= Limits.knownHashesMax) knownHashes = hashes
    }).pipe(
      // Not loaded this time (the store is unavailable): this write scans, a later one loads again.
      Effect.catch(() => Effect.void)
    )

    /** Creates a series never seen before: its dictionary ops go into `ops`. */
    const createSeries = (labels: Labels, key: string, hash: number, ops: Array<CoreDb.WriteOp>, created: Map<string, number>) => {
      const id = nextId!
      nextId = id + 1
      created.set(key, id)
      if (knownHashes !== undefined) {
        knownHashes.add(hash)
        if (knownHashes.size > Limits.knownHashesMax) knownHashes = undefined
      }
      // The labels are under `S` only (older versions also stored them here).
      ops.push({ _tag: "put", key: dictKey(hash, id), value: noBytes })
      ops.push({ _tag: "put", key: seriesKey(id), value: encodeLabels(labels) })
      const state = emptyState(id)
      // No chunk of a new series is stored but those this process seals.
      state.coveredAfter = -1
      return state
    }

    /**
     * The head of a series not in memory when that needs no Db read: a new series (its hash unknown to
     * the dictionary), or one created by a write not durable yet. Undefined otherwise (see `resolve`).
     */
    const resolveInMemory = (labels: Labels, h: number, ops: Array<CoreDb.WriteOp>, created: Map<string, number>): SeriesState | undefined => {
      if (knownHashes === undefined || nextId === undefined) return undefined
      const key = canonical(labels)
      const pending = pendingSeries.get(key)
      let state: SeriesState | undefined
      if (pending !== undefined) state = heads.get(pending.id)
      else {
        const hash = hashCanonical(key)
        if (!knownHashes.has(hash)) state = createSeries(labels, key, hash, ops, created)
      }
      if (state === undefined) return undefined
      ids.set(labels, h, state.id)
      heads.set(state.id, state)
      return state
    }

    /** The head of a series: in memory, or read from its `H` key (a new series' is empty). */
    const resolve = (labels: Labels, h: number, ops: Array<CoreDb.WriteOp>, created: Map<string, number>) =>
      Effect.gen(function*() {
        const key = canonical(labels)
        const hash = hashCanonical(key)
        if (!knownHashesLoaded) yield* loadKnownHashes
        // A series created by a write not durable yet is not in the Db's dictionary yet.
        let id: number | undefined = ids.get(labels, h) ?? pendingSeries.get(key)?.id
        if (id === undefined && (knownHashes === undefined || knownHashes.has(hash))) {
          // The dictionary: every id under this hash, compared by labels (a collision is just another id).
          const candidates = yield* Stream.runCollect(db.scan({ start: dictPrefix(hash), end: prefixEnd(dictPrefix(hash)) })).pipe(Effect.mapError(failed))
          for (const kv of candidates) {
            const candidate = readU64(kv.key, 9)
            const labelsThere = kv.value.length > 0 ? decoder.decode(kv.value) : canonical((yield* labelsOf(candidate)) ?? [])
            if (labelsThere === key) id = candidate
          }
        }
        let state: SeriesState
        if (id === undefined) {
          yield* loadNextId
          state = createSeries(labels, key, hash, ops, created)
        } else {
          state = heads.get(id) ?? stateFrom(id, yield* getKey(headKey(id)))
        }
        ids.set(labels, h, state.id)
        heads.set(state.id, state)
        return state
      })

    /** The head of a label set if it is in memory. */
    const cachedState = (labels: Labels, h: number): SeriesState | undefined => {
      const id = ids.get(labels, h)
      return id === undefined ? undefined : heads.get(id)
    }

    /** The exemplars kept (one buffer over all series), loaded from the store at the first write that has some. */
    const exemplarRing = new ExemplarRing(settings.exemplarsMax ?? Limits.exemplarsMax)
    let exemplarsLoaded = false
    const loadExemplars = Effect.gen(function*() {
      const rows = yield* Stream.runCollect(db.scan({ start: exemplarsStart, end: prefixEnd(exemplarsStart) })).pipe(Effect.mapError(failed))
      const stored = rows
        .map((kv) => ({ id: readU64(kv.key, 1), exemplar: decodeExemplar(readU64(kv.key, 9), kv.value) }))
        .sort((a, b) => a.exemplar.timestampMs - b.exemplar.timestampMs)
      const gone: Array<CoreDb.WriteOp> = []
      for (const { exemplar, id } of stored) {
        const old = exemplarRing.add(id, exemplar)
        if (old !== undefined) gone.push({ _tag: "delete", key: exemplarKey(old.seriesId, old.exemplar.timestampMs) })
      }
      // More were stored than the buffer holds now (a smaller `exemplarsMax`): the oldest go.
      if (gone.length > 0) yield* Effect.mapError(db.write(gone), failed)
      exemplarsLoaded = true
    })

    const write = (input: WriteInput) =>
      Effect.gen(function*() {
        let submitted = false
        const touched: Array<SeriesState> = []
        /** Series created by this request (canonical labels -> id), and their lookup keys. */
        const created = new Map<string, number>()
        const createdLabels: Array<readonly [Labels, number]> = []
        const decided = yield* lock.withPermit(Effect.gen(function*() {
          if (!caughtUpOnce) yield* catchUp
          if (!exemplarsLoaded && input.series.some((s) => s.exemplars !== undefined && s.exemplars.length > 0)) yield* loadExemplars
          const durableSeq = yield* db.durableSeq
          dropDurableOverlay(durableSeq)
          const ops: Array<CoreDb.WriteOp> = []
          /** The `L` key this write adds (the first write of this writer, where the store has none). */
          let layoutFrom: number | undefined
          if (!layoutWritten) {
            yield* loadLayout
            if (chunksInBucketFrom === undefined) {
              // Past every bucket that holds data now (an older writer's chunk lies in those).
              const stored = yield* bucketsIn(0, 0xfffffffe)
              layoutFrom = stored.length === 0 ? 0 : stored.at(-1)! + 1
              ops.push({ _tag: "put", key: layoutKey, value: u64(layoutFrom) })
            }
          }
          /** Ids from here on are created by this request. */
          const firstNewId = nextId ?? Number.POSITIVE_INFINITY
          // One builder for every record (writes decide under the lock, one at a time).
          const record = recordBuilder
          record.reset()
          const recordNo = nextRecord
          /** The series being written (a sealed chunk is also kept with it until durable). */
          let sealing: SeriesState | undefined
          const seal = (key: Uint8Array, value: Uint8Array, maxT: number, outOfOrder: boolean) => {
            ops.push({ _tag: "put", key, value })
            const chunk: SealedChunk = { bucket: readU32(key, 1), minT: readU64(key, key.length - 8), maxT, bytes: value }
            if (sealing!.sealedPending === noSealed) sealing!.sealedPending = []
            sealing!.sealedPending.push(chunk)
            keepRecent(sealing!, chunk, outOfOrder ? undefined : maxT)
          }
          let waitFor = 0
          // A sample before the retention horizon would be dropped as soon as it was stored: refused.
          const horizon = (yield* Clock.currentTimeMillis) - retentionMs
          /** Exemplars this request adds, in order, and the newest it decided per series. */
          const exemplarAdds: Array<readonly [number, Exemplar]> = []
          const exemplarNewest = new Map<number, Exemplar>()
          let exemplarsRefused = 0
          const decideExemplars = (state: SeriesState, list: ReadonlyArray<Exemplar>) => {
            for (const e of list) {
              const exemplar: Exemplar = { labels: sorted(e.labels), value: e.value, timestampMs: e.timestampMs }
              const why = refusal(exemplarNewest.get(state.id) ?? exemplarRing.newest(state.id), exemplar)
              if (why === "duplicate") {
                // Perhaps from an earlier attempt of this request: its batch is the one to wait for.
                waitFor = Math.max(waitFor, state.pendingSeq)
                continue
              }
              if (why !== undefined) {
                exemplarsRefused += 1
                continue
              }
              exemplarNewest.set(state.id, exemplar)
              exemplarAdds.push([state.id, exemplar])
            }
          }
          for (const m of input.metadata ?? []) {
            if (m.metric === "") continue
            ops.push({ _tag: "put", key: metaKey(m.metric), value: encoder.encode(JSON.stringify(m)) })
          }
          /** Adds the postings of the bucket of `t` for a series written there for the first time. */
          const indexSample = (state: SeriesState, labels: Labels, t: number) => {
            const bucket = bucketOf(t)
            // Samples of a series mostly fall in the bucket of its last one: nothing to look up then.
            if (bucket === state.lastBucket) return
            state.lastBucket = bucket
            if (!knownBuckets.has(bucket)) {
              knownBuckets.add(bucket)
              ops.push({ _tag: "put", key: bucketKey(bucket), value: noBytes })
            }
            if (!isIndexed(state, bucket)) {
              markIndexed(state, bucket)
              ops.push({ _tag: "put", key: bucketSeriesKey(bucket, state.id), value: noBytes })
              rememberLabels(state.id, labels)
            }
          }
          let histogramsIn = 0
          let histogramsWritten = 0
          /**
           * Keeps a sample's start timestamp: a key when it differs from the series' last, or opens a
           * bucket (so a read finds a sample's start in its own bucket, at or before it).
           */
          const noteStart = (state: SeriesState, t: number, st: number) => {
            const bucket = bucketOf(t)
            if (st === state.lastStart && bucket === state.lastStartBucket) return
            state.lastStart = st
            state.lastStartBucket = bucket
            ops.push({ _tag: "put", key: startKey(bucket, state.id, t), value: u64(Number.isSafeInteger(st) && st > 0 ? st : 0) })
          }
          /** The float samples' way into the heads, and what became of the request's samples (floats and histograms). */
          const intake: FloatIntake = {
            horizon,
            oooWindowMs,
            record,
            seal,
            newBucket: indexSample,
            inOrderStart: keepStarts ? noteStart : undefined,
            written: 0,
            duplicates: 0,
            tooOld: 0,
            outOfOrder: 0
          }
          /** The histogram chunks sealed by this request, by the series sealing them. */
          const sealHistogram = (key: Uint8Array, value: Uint8Array) => {
            ops.push({ _tag: "put", key, value })
            if (sealing!.histogramsSealedPending === noChunks) sealing!.histogramsSealedPending = []
            sealing!.histogramsSealedPending.push(value)
          }
          for (const s of input.series) {
            const histograms = s.histograms ?? noHistogramInputs
            histogramsIn += histograms.length
            if (floatCount(s) === 0 && histograms.length === 0) {
              // Exemplars alone: of a series this process has in memory, else refused (as Prometheus
              // refuses an exemplar of a series it does not know).
              if (s.exemplars !== undefined && s.exemplars.length > 0) {
                const labels = sorted(s.labels)
                const known = cachedState(labels, hash32(labels))
                if (known === undefined) exemplarsRefused += s.exemplars.length
                else decideExemplars(known, s.exemplars)
              }
              continue
            }
            // A label set shared by requests (frozen: remembered by the remote-write decoder) is found by
            // identity; others by their hash and a comparison.
            const shared = Object.isFrozen(s.labels)
            const sharedId = shared ? idsByIdentity.get(s.labels) : undefined
            let state = sharedId === undefined ? undefined : heads.get(sharedId)
            let labels = s.labels
            if (state === undefined) {
              labels = sorted(s.labels)
              const h = hash32(labels)
              // Most series are in memory already, and new ones usually known new: no effect to run for them.
              state = cachedState(labels, h) ?? resolveInMemory(labels, h, ops, created) ?? (yield* resolve(labels, h, ops, created))
              if (state.id >= firstNewId) createdLabels.push([labels, h])
              else if (shared) idsByIdentity.set(s.labels, state.id)
            }
            state.touched = ++writes
            // A sample already here may be from an earlier attempt of this request that is not durable yet.
            waitFor = Math.max(waitFor, state.pendingSeq)
            if (state.sealedPending.length > 0 && state.pendingSeq <= durableSeq) state.sealedPending = noSealed
            if (state.histogramsSealedPending.length > 0 && state.pendingSeq <= durableSeq) state.histogramsSealedPending = noChunks
            touched.push(state)
            sealing = state
            // A stale marker sent as a histogram is a stale marker, as for floats.
            // The float samples: the columns alone (the remote-write path), else objects.
            const onlyColumns = s.sampleColumns !== undefined && s.samples.length === 0 && !histograms.some((x) => isStaleHistogram(x.histogram))
            const columns = onlyColumns ? s.sampleColumns : undefined
            const floats = onlyColumns ? noSamples : floatSamples(s, histograms)
            let logged = appendFloats(
              state,
              labels,
              columns !== undefined
                ? { timestamps: columns.timestamps, values: columns.values, samples: noSamples, from: columns.start, to: columns.end }
                : { timestamps: undefined, values: undefined, samples: floats, from: 0, to: floats.length },
              intake
            )
            for (const { histogram: h, timestampMs: t, startTimestampMs } of histograms) {
              if (isStaleHistogram(h)) continue
              if (!Number.isSafeInteger(t) || t < 0 || t < horizon) {
                intake.tooOld += 1
                continue
              }
              const newest = state.histograms.at(-1)
              if (newest !== undefined && t <= newest.t) {
                // The same histogram again is a no-op (perhaps an earlier attempt of this request); another
                // at the same time a duplicate; an older one is refused (histograms are taken in order).
                const same = state.histograms.find((x) => x.t === t)
                if (same === undefined) intake.tooOld += 1
                else if (same.h.equals(h)) waitFor = Math.max(waitFor, state.pendingSeq)
                else intake.duplicates += 1
                continue
              }
              applyHistogram(state, t, h, sealHistogram)
              record.addHistogram(state.id, t, h)
              logged = true
              histogramsWritten += 1
              indexSample(state, labels, t)
              const bucket = bucketOf(t)
              if (!knownHistogramBuckets.has(bucket)) {
                knownHistogramBuckets.add(bucket)
                ops.push({ _tag: "put", key: histogramBucketKey(bucket), value: new Uint8Array(0) })
              }
              if (keepStarts) noteStart(state, t, startTimestampMs ?? 0)
            }
            if (logged) state.lastRecord = recordNo
            if (s.exemplars !== undefined && s.exemplars.length > 0) decideExemplars(state, s.exemplars)
          }
          // The buffer keeps at most `capacity`: of more in one request, the newest.
          const keptAdds = exemplarAdds.slice(Math.max(0, exemplarAdds.length - exemplarRing.capacity))
          for (const [id, e] of keptAdds) ops.push({ _tag: "put", key: exemplarKey(id, e.timestampMs), value: encodeExemplar(e) })
          for (const old of exemplarRing.overwrittenBy(keptAdds.length)) {
            ops.push({ _tag: "delete", key: exemplarKey(old.seriesId, old.exemplar.timestampMs) })
          }
          const outcome: WriteOutcome = {
            samplesWritten: intake.written,
            ...(histogramsIn > 0 ? { histogramsWritten } : {}),
            ...(created.size > 0 ? { seriesCreated: created.size } : {}),
            outOfOrder: intake.outOfOrder,
            tooOld: intake.tooOld,
            duplicates: intake.duplicates,
            ...(exemplarAdds.length + exemplarsRefused > 0 ? { exemplarsWritten: keptAdds.length, exemplarsRefused } : {})
          }
          const logging = record.count > 0 || record.histogramCount > 0
          if (ops.length === 0 && !logging) return { outcome, durable: Effect.mapError(db.awaitDurable(waitFor), failed) }
          let recordBytes = 0
          if (logging) {
            const bytes = record.encode()
            recordBytes = bytes.length
            ops.push({ _tag: "put", key: recordKey(recordNo), value: bytes })
          }
          // The next free id, once a batch (not once a new series).
          const remember = new Map<string, Uint8Array>()
          if (created.size > 0) ops.push({ _tag: "put", key: nextIdKey, value: u64(nextId!) })
          if (nextId !== undefined) remember.set(okey(nextIdKey), u64(nextId))
          // Db.write either queues the batch (and answers its seq) or fails having queued nothing, even when
          // interrupted; what it queued is recorded here before any interruption can land.
          const result = yield* Effect.uninterruptibleMask((restore) =>
            Effect.tap(
              restore(Effect.mapError(db.write(ops, { awaitDurable: false }), (e) => e._tag === "InvalidWrite" ? new TsdbError({ kind: "limit", message: e.message }) : failed(e))),
              (result) =>
                Effect.sync(() => {
                  submitted = true
                  lastSubmittedSeq = result.seq
                  if (logging) {
                    nextRecord = recordNo + 1
                    lastApplied = recordNo
                    recordsSinceCheckpoint += 1
                    bytesSinceCheckpoint += recordBytes
                  }
                  for (const [k, value] of remember) overlay.set(k, { value, seq: result.seq })
                  for (const [k, id] of created) pendingSeries.set(k, { id, seq: result.seq })
                  if (layoutFrom !== undefined) chunksInBucketFrom = layoutFrom
                  layoutWritten = true
                  overlayBySeq.push({ seq: result.seq, keys: [...remember.keys()], series: [...created.keys()] })
                  for (const state of touched) state.pendingSeq = result.seq
                  for (const [id, e] of keptAdds) exemplarRing.add(id, e)
                })
            )
          )
          // Bound the log a restart replays, and the heads kept in memory: a checkpoint makes every head
          // clean, and clean heads can go (the least recently written first).
          if (recordsSinceCheckpoint >= checkpointRecords || bytesSinceCheckpoint >= checkpointBytes || heads.size > Limits.headSeriesMax) {
            yield* checkpoint.pipe(Effect.catch((e) => Effect.logWarning(`head checkpoint failed: ${e.message}`)))
          }
          dropCleanHeads()
          return { outcome, durable: Effect.andThen(Effect.mapError(result.durable, failed), Effect.mapError(db.awaitDurable(waitFor), failed)) }
        }).pipe(
          // Nothing was queued (the Db refused the batch, a lookup failed, or the request was interrupted):
          // forget the in-memory changes made for it (the touched series reload from the Db and the
          // overlay), or a retry would find its samples "already written" and acknowledge what was never
          // written. Ids handed out stay used: an id is never given twice.
          Effect.onExit((exit) =>
            Exit.isSuccess(exit) || submitted ? Effect.void : Effect.sync(() => {
              // A head with logged samples of earlier records cannot be read back from its `H` key: the
              // whole head is read again from the log.
              for (const state of touched) heads.delete(state.id)
              for (const [labels, h] of createdLabels) ids.delete(labels, h)
              if (touched.some((s) => s.lastRecord > s.asOf)) {
                heads.clear()
                ids.clear()
                lastApplied = 0
                caughtUpOnce = false
              }
              knownBuckets.clear()
              knownHistogramBuckets.clear()
            })
          )
        ))
        yield* decided.durable
        return decided.outcome
      })

    /** Drops the least recently written clean heads past `headSeriesMax` (their `H` keys hold them). */
    const dropCleanHeads = () => {
      if (heads.size > Limits.headSeriesMax) {
        const clean = [...heads.values()].filter((s) => s.lastRecord <= s.asOf).sort((a, b) => a.touched - b.touched)
        for (const state of clean.slice(0, heads.size - Limits.headSeriesMax)) heads.delete(state.id)
      }
      // The lookup keys go in the order they came (a key whose head went is looked up again).
      ids.trim(Limits.headSeriesMax)
    }

    // --- reads -----------------------------------------------------------------------------------

    const labelsOf = (id: number): Effect.Effect<Labels | undefined, TsdbError> => {
      const cached = labelsCache.get(id)
      if (cached !== undefined) return Effect.succeed(cached)
      return Effect.map(Effect.mapError(db.get(seriesKey(id)), failed), (bytes) => (bytes === undefined ? undefined : rememberLabels(id, decodeLabels(bytes))))
    }

    const scanKeys = (start: Uint8Array, end: Uint8Array | undefined) =>
      Effect.map(Stream.runCollect(db.scan({ start, end })).pipe(Effect.mapError(failed)), (kvs) => kvs.map((kv) => kv.key))

    /**
     * Adds the series of `bucket` matching every matcher, with their labels, to `found`: the candidates
     * from the bucket's postings, checked against their labels (for the matchers that match "").
     */
    const selectInBucket = (bucket: number, matchers: ReadonlyArray<Matcher>, found: Map<number, Labels>) =>
      Effect.gen(function*() {
        const candidates = (yield* bucketPostings(bucket)).candidates(matchers)
        // Labels are mostly cached: only the others are read, one effect each.
        const unread: Array<number> = []
        for (const id of candidates) {
          if (found.has(id)) continue
          const labels = labelsCache.get(id)
          if (labels === undefined) unread.push(id)
          else if (matchesAll(matchers, labels)) found.set(id, labels)
        }
        for (const id of unread) {
          const labels = yield* labelsOf(id)
          if (labels !== undefined && matchesAll(matchers, labels)) found.set(id, labels)
        }
        if (found.size > Limits.selectSeriesMax) return yield* Effect.fail(new TsdbError({ kind: "limit", message: `more than ${Limits.selectSeriesMax} series selected` }))
      })

    /** The buckets holding data in [first, last] (only those: a wide range costs nothing). */
    const bucketsIn = (first: number, last: number) =>
      Effect.map(
        scanKeys(bucketKey(Math.max(0, first)), bucketKey(Math.min(last, 0xfffffffe) + 1)),
        (keys) => keys.map((k) => readU32(k, 1))
      )

    /** The buckets in [first, last] marked as holding native histograms. */
    const histogramBucketsIn = (first: number, last: number) =>
      Effect.map(
        scanKeys(histogramBucketKey(Math.max(0, first)), histogramBucketKey(Math.min(last, 0xfffffffe) + 1)),
        (keys) => new Set(keys.map((k) => readU32(k, 1)))
      )

    const selectIds = (matchers: ReadonlyArray<Matcher>, mint: number, maxt: number) =>
      Effect.gen(function*() {
        const found = new Map<number, Labels>()
        for (const b of yield* bucketsIn(bucketOf(Math.max(0, mint)), bucketOf(Math.max(0, maxt)))) yield* selectInBucket(b, matchers, found)
        return found
      })

    /**
     * What memory holds of each series in `ids` that has its head in memory, taken at one instant (the log
     * read up to now first, so that a reader sees what the writer logged): its kept sealed chunks of the
     * `buckets` after its `coveredAfter` (`recent`, with that bucket); its other sealed chunks not durable
     * yet, head chunk and out-of-order buffer (`found`); its histogram chunks not durable yet and histogram
     * head. Float chunks wholly outside [mint, maxt] are left out (memory knows each one's time span).
     */
    const headsInMemory = (ids: ReadonlyArray<number>, buckets: ReadonlySet<number>, mint: number, maxt: number) =>
      lock.withPermit(Effect.gen(function*() {
        yield* catchUp
        const durableSeq = yield* db.durableSeq
        const found = new Map<number, Array<Uint8Array>>()
        const recent = new Map<number, { readonly coveredAfter: number; readonly chunks: Array<Uint8Array> }>()
        const histograms = new Map<number, Array<HistogramRun>>()
        // The head chunks that fall in the window, copied (they go on taking samples) into one buffer.
        let headBytes = 0
        for (const id of ids) {
          const head = heads.get(id)?.headChunk
          if (head !== undefined && head.count > 0 && head.minTime! <= maxt && head.maxTime! >= mint) headBytes += head.byteLength
        }
        const headCopies = new Uint8Array(headBytes)
        let headAt = 0
        for (const id of ids) {
          const state = heads.get(id)
          if (state === undefined) continue
          if (state.sealedPending.length > 0 && state.pendingSeq <= durableSeq) state.sealedPending = noSealed
          const covered = state.coveredAfter
          if (covered !== Number.POSITIVE_INFINITY) {
            const kept: Array<Uint8Array> = []
            const r = state.recent
            for (let i = 0; i < recentCount(r); i++) {
              const bucket = recentBucket(r, i)
              if (bucket > covered && buckets.has(bucket) && recentMinT(r, i) <= maxt && recentMaxT(r, i) >= mint) kept.push(recentBytes(r, i))
            }
            recent.set(id, { coveredAfter: covered, chunks: kept })
          }
          const chunks: Array<Uint8Array> = []
          for (const c of state.sealedPending) if (c.bucket <= covered && c.minT <= maxt && c.maxT >= mint) chunks.push(c.bytes)
          const head = state.headChunk
          if (head.count > 0 && head.minTime! <= maxt && head.maxTime! >= mint) {
            chunks.push(head.copyInto(headCopies, headAt))
            headAt += head.byteLength
          }
          const ooo = state.ooo
          if (ooo.length > 0 && ooo[0]!.timestampMs <= maxt && ooo.at(-1)!.timestampMs >= mint) chunks.push(encodeSamples(ooo))
          found.set(id, chunks)
          if (state.histogramsSealedPending.length > 0 && state.pendingSeq <= durableSeq) state.histogramsSealedPending = noChunks
          const runs: Array<HistogramRun> = [...state.histogramsSealedPending]
          if (state.histograms.length > 0) runs.push([...state.histograms])
          if (runs.length > 0) histograms.set(id, runs)
        }
        return { found, recent, histograms }
      }))

    /**
     * The encoded chunks of each series in `ids` (ascending) in the `buckets` (ascending) that may hold
     * samples up to maxt, in merge order: sealed chunks by bucket and first timestamp (a chunk that starts
     * after maxt is not read; the buckets memory covers from its kept chunks), then the head and the
     * out-of-order buffer (from memory, or from their checkpoint). Many series close together by id are
     * read with a range per bucket over the span of their ids (other series' chunks in that span are
     * skipped undecoded), others with a range per series and bucket, all in one `scanRanges`.
     */
    const readChunks = (ids: ReadonlyArray<number>, buckets: ReadonlyArray<number>, histogramBuckets: ReadonlySet<number>, mint: number, maxt: number) =>
      Effect.gen(function*() {
        const chunks = new Map<number, Array<Uint8Array>>(ids.map((id) => [id, []]))
        /** Histogram chunks and heads, by series (only those that have some). */
        const histograms = new Map<number, Array<HistogramRun>>()
        if (ids.length === 0) return { chunks, histograms }
        // Heads first: a chunk sealed after this is in them or already stored, never in neither.
        const { found: inMemory, histograms: histogramsInMemory, recent } = yield* headsInMemory(ids, new Set(buckets), mint, maxt)
        /** Whether memory holds the series' sealed chunks of the bucket (then the Db's are not read). */
        const inRecent = (id: number, bucket: number) => {
          const r = recent.get(id)
          return r !== undefined && bucket > r.coveredAfter
        }
        const addHistograms = (id: number, run: HistogramRun) => {
          const list = histograms.get(id)
          if (list === undefined) histograms.set(id, [run])
          else list.push(run)
        }
        const lowId = ids[0]!
        const highId = ids.at(-1)!
        const wide = scanWide(ids)
        /** A stored head (`H`): its float chunks into the list, its histogram head apart. */
        const pushHead = (id: number, list: Array<Uint8Array>, kind: "head" | "ooo", bytes: Uint8Array) => {
          const stored = pushStored(list, kind, bytes)
          if (stored?.histograms !== undefined) addHistograms(id, stored.histograms)
        }
        const scanInto = (ranges: ReadonlyArray<CoreDb.ScanRange>, idAt: number, kind: "sealed" | "histograms" | "head" | "ooo") =>
          Stream.runForEachArray(db.scanRanges(ranges), (kvs) =>
            Effect.sync(() => {
              for (const kv of kvs) {
                const id = readU64(kv.key, idAt)
                const list = chunks.get(id)
                if (list === undefined) continue
                // A sealed chunk's key ends with its first timestamp.
                if (kind === "sealed") {
                  if (readU64(kv.key, kv.key.length - 8) <= maxt && !inRecent(id, readU32(kv.key, 1))) list.push(kv.value)
                } else if (kind === "histograms") {
                  if (readU64(kv.key, kv.key.length - 8) <= maxt) addHistograms(id, kv.value)
                } else if (kind === "ooo" || !inMemory.has(id)) pushHead(id, list, kind, kv.value)
              }
            })).pipe(Effect.mapError(failed))
        // Every bucket's chunks in one read each for floats and histograms (histogram chunks only where the
        // bucket is marked as holding them): a range per bucket over the span of the ids, or a range per
        // series and bucket.
        const sealed: Array<CoreDb.ScanRange> = []
        const histogramRanges: Array<CoreDb.ScanRange> = []
        const allRuns = wide ? [] : idRuns(ids, () => true)
        for (const b of buckets) {
          const hist = histogramBuckets.has(b)
          if (wide) {
            if (!ids.every((id) => inRecent(id, b))) sealed.push({ start: chunkPrefix(b, lowId), end: prefixEnd(chunkPrefix(b, highId)) })
            if (hist) histogramRanges.push({ start: histogramChunkPrefix(b, lowId), end: prefixEnd(histogramChunkPrefix(b, highId)) })
          } else {
            // A range per run of consecutive ids (a target's series are created together): as many reads
            // of chunks as a range per series, with a cursor each run instead of each series.
            for (const [first, last] of idRuns(ids, (id) => !inRecent(id, b))) {
              sealed.push({ start: chunkPrefix(b, first), end: prefixEnd(chunkPrefix(b, last)) })
            }
            if (hist) {
              for (const [first, last] of allRuns) histogramRanges.push({ start: histogramChunkPrefix(b, first), end: prefixEnd(histogramChunkPrefix(b, last)) })
            }
          }
        }
        yield* scanInto(sealed, 5, "sealed")
        if (histogramRanges.length > 0) yield* scanInto(histogramRanges, 5, "histograms")
        // Stored heads of the series memory does not hold: point reads when they are few, else the span.
        // Out-of-order buffers are an older layout's (seldom any): always the span, one seek per table.
        const notInMemory = ids.filter((id) => !inMemory.has(id))
        for (const [kind, key] of [["head", headKey], ["ooo", oooKey]] as const) {
          if (kind === "head" && notInMemory.length === 0) {
            // every head is in memory
          } else if (wide || kind === "ooo" || notInMemory.length >= Limits.selectScanSeriesMin) {
            yield* scanInto([{ start: key(lowId), end: prefixEnd(key(highId)) }], 1, kind)
          } else {
            for (const id of notInMemory) {
              const bytes = yield* Effect.mapError(db.get(key(id)), failed)
              if (bytes !== undefined) pushHead(id, chunks.get(id)!, kind, bytes)
            }
          }
          if (kind === "head") {
            // After the stored chunks (of older buckets), those memory holds, then the rest of the head.
            for (const [id, r] of recent) chunks.get(id)!.push(...r.chunks)
            for (const [id, list] of inMemory) chunks.get(id)!.push(...list)
            for (const [id, runs] of histogramsInMemory) for (const run of runs) addHistograms(id, run)
          }
        }
        return { chunks, histograms }
      })

    /** The start-timestamp keys (time, start) of each series in `ids` (ascending) in the `buckets` (ascending), by series, in time order. */
    const readStarts = (ids: ReadonlyArray<number>, buckets: ReadonlyArray<number>, maxt: number) =>
      Effect.gen(function*() {
        const found = new Map<number, Array<readonly [number, number]>>()
        if (ids.length === 0) return found
        const wanted = new Set(ids)
        const collect = (ranges: ReadonlyArray<CoreDb.ScanRange>) =>
          Stream.runForEachArray(db.scanRanges(ranges), (kvs) =>
            Effect.sync(() => {
              for (const kv of kvs) {
                const id = readU64(kv.key, 5)
                const t = readU64(kv.key, 13)
                if (!wanted.has(id) || t > maxt) continue
                const list = found.get(id)
                if (list === undefined) found.set(id, [[t, readU64(kv.value, 0)]])
                else list.push([t, readU64(kv.value, 0)])
              }
            })).pipe(Effect.mapError(failed))
        const ranges: Array<CoreDb.ScanRange> = []
        const wide = scanWide(ids)
        for (const b of buckets) {
          if (wide) ranges.push({ start: startPrefix(b, ids[0]!), end: prefixEnd(startPrefix(b, ids.at(-1)!)) })
          else for (const id of ids) ranges.push({ start: startPrefix(b, id), end: prefixEnd(startPrefix(b, id)) })
        }
        yield* collect(ranges)
        for (const list of found.values()) list.sort((a, b) => a[0] - b[0])
        return found
      })

    /**
     * The series matching `matchers` with their chunks read (still encoded), sorted by label set: each
     * decoded when read, into one buffer the selection's reads share (sized for its largest series).
     */
    const selectReaders = (matchers: ReadonlyArray<Matcher>, mint: number, maxt: number) =>
      Effect.gen(function*() {
        const ids = yield* selectIds(matchers, mint, maxt)
        // A sealed chunk lies in its bucket; the bucket before mint is read too, for chunks stored before
        // heads were cut at each bucket's start (those span into the next bucket).
        const firstBucket = yield* firstBucketFor(mint)
        const buckets = yield* bucketsIn(firstBucket, bucketOf(Math.max(0, maxt)))
        const histogramBuckets = yield* histogramBucketsIn(firstBucket, bucketOf(Math.max(0, maxt)))
        const sortedIds = [...ids.keys()].sort((a, b) => a - b)
        const { chunks, histograms } = yield* readChunks(sortedIds, buckets, histogramBuckets, mint, maxt)
        const starts = keepStarts ? yield* readStarts(sortedIds, buckets, maxt) : undefined
        const sorted = [...ids].map(([id, labels]) => ({ id, labels, key: canonical(labels) })).sort((a, b) => (a.key < b.key ? -1 : 1))
        let widest = 0
        for (const c of chunks.values()) widest = Math.max(widest, chunksCapacity(c))
        let shared: ColumnSlab | undefined
        /** A series' samples: into `into` when given, else into arrays of its own. */
        const read = (id: number, labels: Labels, into?: ColumnSlab): SelectedSeries => {
          const floats = decodeRange(labels, chunks.get(id)!, mint, maxt, into)
          const runs = histograms.get(id)
          const merged = runs === undefined ? floats : withHistograms(floats, runs, mint, maxt)
          const keys = starts?.get(id)
          return keys === undefined ? merged : withStarts(merged, keys)
        }
        return {
          sorted,
          read,
          readers: sorted.map(({ id, labels }): SeriesReader => ({
            labels,
            read: () => {
              shared ??= columnSlab(widest)
              shared.at = 0
              return read(id, labels, shared)
            }
          }))
        }
      })

    const select: SeriesSource["select"] = (matchers, mint, maxt, options) =>
      Effect.gen(function*() {
        const samplesMax = options?.samplesMax ?? Limits.querySamplesMax
        const selection = yield* selectReaders(matchers, mint, maxt)
        const out: Array<SelectedSeries> = []
        let total = 0
        for (const { id, labels } of selection.sorted) {
          const series = selection.read(id, labels)
          total += series.timestamps.length
          if (total > samplesMax) return yield* Effect.fail(new SamplesLimitExceeded(samplesMax))
          if (series.timestamps.length > 0) out.push(series)
        }
        return out
      })

    /** Label sets matching any selector (no selector: every series) with samples in range. */
    const seriesMatching = (selectors: ReadonlyArray<ReadonlyArray<Matcher>>, mint: number, maxt: number) =>
      Effect.gen(function*() {
        const found = new Map<number, Labels>()
        for (const matchers of selectors.length === 0 ? [[]] : selectors) {
          for (const [id, labels] of yield* selectIds(matchers, mint, maxt)) found.set(id, labels)
        }
        return [...found.values()].map((labels) => ({ labels, key: canonical(labels) })).sort((a, b) => (a.key < b.key ? -1 : 1)).map((s) => s.labels)
      })

    const limited = <A>(items: ReadonlyArray<A>, limit: number | undefined) => (limit === undefined || limit <= 0 ? items : items.slice(0, limit))

    const series: TsdbShape["series"] = (selectors, mint, maxt, limit) => Effect.map(seriesMatching(selectors, mint, maxt), (s) => limited(s, limit))

    const exemplars: TsdbShape["exemplars"] = (selectors, mint, maxt) =>
      Effect.gen(function*() {
        const found = new Map<number, Labels>()
        for (const matchers of selectors) {
          for (const [id, labels] of yield* selectIds(matchers, mint, maxt)) found.set(id, labels)
        }
        const out: Array<SeriesExemplars> = []
        for (const [id, labels] of found) {
          const rows = yield* Stream.runCollect(db.scan({ start: exemplarKey(id, Math.max(0, mint)), end: exemplarKey(id, Math.max(0, maxt) + 1) })).pipe(
            Effect.mapError(failed)
          )
          if (rows.length > 0) out.push({ labels, exemplars: rows.map((kv) => decodeExemplar(readU64(kv.key, 9), kv.value)) })
        }
        return out.sort((a, b) => (canonical(a.labels) < canonical(b.labels) ? -1 : 1))
      })

    /** Adds postings stored as older versions stored them (a key per label) to `postings`. */
    const readLegacyPostings = (bucket: number, postings: BucketPostings) => {
      const p = postingPrefix(bucket)
      // Keys come sorted by name, then value: each name and value is decoded once, not once per series.
      let nameBytes: Uint8Array | undefined
      let name = ""
      let valueBytes: Uint8Array | undefined
      let value = ""
      return Stream.runForEachArray(db.scan({ start: p, end: prefixEnd(p) }), (kvs) =>
        Effect.sync(() => {
          for (const kv of kvs) {
            const k = kv.key
            const z = k.indexOf(0, p.length)
            if (z < 0 || k.length < z + 10) continue
            const n = k.subarray(p.length, z)
            if (nameBytes === undefined || Buffer.compare(n, nameBytes) !== 0) {
              nameBytes = n
              name = decoder.decode(n)
              valueBytes = undefined
            }
            const v = k.subarray(z + 1, k.length - 9)
            if (valueBytes === undefined || Buffer.compare(v, valueBytes) !== 0) {
              valueBytes = v
              value = decoder.decode(v)
            }
            postings.add(name, value, readU64(k, k.length - 8))
          }
        })).pipe(Effect.mapError(failed))
    }

    /** Adds the series `ids` (ascending) to `postings` by their labels: from memory, or read (`readStored`). */
    const addLabelled = (postings: BucketPostings, ids: ReadonlyArray<number>) =>
      Effect.gen(function*() {
        const unread: Array<number> = []
        for (const id of ids) {
          const labels = labelsCache.get(id)
          if (labels === undefined) unread.push(id)
          else postings.addSeries(id, labels)
        }
        for (const [id, bytes] of yield* readStored(unread, seriesKey)) postings.addSeries(id, rememberLabels(id, decodeLabels(bytes)))
      })

    /**
     * A bucket's postings from the index, read from its `i` keys if not there. The entry is in the index
     * while it is read, so that the feed adds what becomes durable meanwhile (adding twice is harmless);
     * others asking for it wait for the read.
     */
    const bucketPostings = (bucket: number): Effect.Effect<BucketPostings, TsdbError> =>
      Effect.gen(function*() {
        yield* postingsCurrent
        const cached = postingsIndex.get(bucket)
        if (cached !== undefined) {
          postingsHits++
          postingsIndex.delete(bucket)
          postingsIndex.set(bucket, cached)
          evictPostings()
          yield* Deferred.await(cached.ready)
          if (cached.unlabelled.size > 0) {
            const ids = [...cached.unlabelled].sort((a, b) => a - b)
            yield* addLabelled(cached.postings, ids)
            for (const id of ids) cached.unlabelled.delete(id)
          }
          return cached.postings
        }
        const entry: IndexedBucket = { postings: new BucketPostings(), ready: Deferred.makeUnsafe<void, TsdbError>(), unlabelled: new Set() }
        postingsMisses++
        postingsIndex.set(bucket, entry)
        evictPostings()
        const ids: Array<number> = []
        const read = Effect.gen(function*() {
          yield* readLegacyPostings(bucket, entry.postings)
          const p = bucketSeriesPrefix(bucket)
          yield* Stream.runForEachArray(db.scan({ start: p, end: prefixEnd(p) }), (kvs) =>
            Effect.sync(() => {
              for (const kv of kvs) if (kv.key.length === 13) ids.push(readU64(kv.key, 5))
            })).pipe(Effect.mapError(failed))
          yield* addLabelled(entry.postings, ids)
        })
        const exit = yield* Effect.exit(read)
        if (Exit.isFailure(exit) && postingsIndex.get(bucket) === entry) postingsIndex.delete(bucket)
        Deferred.doneUnsafe(entry.ready, Exit.asVoid(exit))
        // Its bytes are known now (it was empty when it came in).
        evictPostings()
        yield* exit
        return entry.postings
      })

    const labelNames: TsdbShape["labelNames"] = (selectors, mint, maxt, limit) =>
      Effect.gen(function*() {
        if (selectors.length > 0) {
          const all = yield* seriesMatching(selectors, mint, maxt)
          return limited([...new Set(all.flatMap((l) => l.map(([n]) => n)))].sort(), limit ?? Limits.labelValuesMax)
        }
        // Without selectors the label index answers: the names of each bucket in range.
        const names = new Set<string>()
        for (const b of yield* bucketsIn(bucketOf(Math.max(0, mint)), bucketOf(Math.max(0, maxt)))) {
          for (const name of (yield* bucketPostings(b)).names()) names.add(name)
        }
        return limited([...names].sort(), limit ?? Limits.labelValuesMax)
      })

    const labelValues: TsdbShape["labelValues"] = (name, selectors, mint, maxt, limit) =>
      Effect.gen(function*() {
        if (selectors.length > 0) {
          const all = yield* seriesMatching(selectors, mint, maxt)
          return limited([...new Set(all.map((l) => labelValue(l, name)).filter((v) => v !== ""))].sort(), limit ?? Limits.labelValuesMax)
        }
        // Without selectors the label index answers: the values of `name` in each bucket in range.
        const values = new Set<string>()
        for (const b of yield* bucketsIn(bucketOf(Math.max(0, mint)), bucketOf(Math.max(0, maxt)))) {
          for (const value of (yield* bucketPostings(b)).values(name)) values.add(value)
        }
        return limited([...values].sort(), limit ?? Limits.labelValuesMax)
      })

    const metadata: TsdbShape["metadata"] = (metric, limit) =>
      Effect.gen(function*() {
        const p = metric === undefined ? encoder.encode("m") : metaKey(metric)
        const rows = yield* Stream.runCollect(db.scan({ start: p, end: metric === undefined ? prefixEnd(p) : cat(p, zero) })).pipe(Effect.mapError(failed))
        return limited(rows.map((kv) => JSON.parse(decoder.decode(kv.value)) as MetricMetadata), limit)
      })

    // --- retention --------------------------------------------------------------------------------

    /**
     * The heads of series whose newest sample is before `cutoffMs` (series that stopped: what retention
     * dropped was their last data), as Prometheus's head drops series with nothing left in it: those in
     * memory once checkpointed (a head with records not checkpointed yet waits for the next pass), and the
     * stored heads (`H`) of series not in memory. Answers how many went.
     */
    const dropStaleHeads = (cutoffMs: number) =>
      lock.withPermit(Effect.gen(function*() {
        const gone = new Set<number>()
        for (const state of heads.values()) {
          if (state.lastRecord > state.asOf || newestSample(state) >= cutoffMs) continue
          gone.add(state.id)
        }
        for (const id of gone) heads.delete(id)
        yield* Stream.runForEachArray(db.scan({ start: headKey(0), end: prefixEnd(encoder.encode("H")) }), (kvs) =>
          Effect.sync(() => {
            for (const kv of kvs) {
              const id = readU64(kv.key, 1)
              if (gone.has(id) || heads.has(id)) continue
              let newest: number
              try {
                newest = newestSample(stateFrom(id, kv.value))
              } catch {
                // A head that does not decode is left for `opendata verify` to report.
                continue
              }
              if (newest < cutoffMs) gone.add(id)
            }
          })).pipe(Effect.mapError(failed))
        const deletes = [...gone].map((id): CoreDb.WriteOp => ({ _tag: "delete", key: headKey(id) }))
        for (let i = 0; i < deletes.length; i += 1000) yield* Effect.mapError(db.write(deletes.slice(i, i + 1000)), failed)
        return gone.size
      }))

    const enforceRetention = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const cutoff = bucketOf(Math.max(0, now - retentionMs))
      const dropped = new Set<number>()
      for (const kind of ["c", "g", "G", "s", "i", "j", "b"]) {
        // Buckets are ordered: everything from the kind's first key up to the cutoff bucket goes.
        const start = encoder.encode(kind)
        const end = cat(kind, u32(cutoff))
        for (;;) {
          const keys = yield* Stream.runCollect(db.scan({ start, end }).pipe(Stream.take(1000), Stream.map((kv) => kv.key))).pipe(Effect.mapError(failed))
          if (keys.length === 0) break
          if (kind === "c" || kind === "g") for (const k of keys) dropped.add(readU32(k, 1))
          yield* Effect.mapError(db.write(keys.map((k) => ({ _tag: "delete" as const, key: k }))), (e) => new TsdbError({ kind: "unavailable", message: e.message }))
        }
      }
      for (const b of knownBuckets) if (b < cutoff) knownBuckets.delete(b)
      for (const b of knownHistogramBuckets) if (b < cutoff) knownHistogramBuckets.delete(b)
      for (const b of postingsIndex.keys()) if (b < cutoff) postingsIndex.delete(b)
      const cutoffMs = cutoff * Limits.bucketMs
      yield* dropStaleHeads(cutoffMs)
      // Exemplars of the dropped buckets' time go too (at most `exemplarsMax` keys to look at).
      const oldExemplars = yield* Stream.runCollect(
        db.scan({ start: exemplarsStart, end: prefixEnd(exemplarsStart) }).pipe(
          Stream.filter((kv) => readU64(kv.key, 9) < cutoffMs),
          Stream.map((kv) => kv.key)
        )
      ).pipe(Effect.mapError(failed))
      for (let i = 0; i < oldExemplars.length; i += 1000) {
        const keys = oldExemplars.slice(i, i + 1000)
        yield* Effect.mapError(db.write(keys.map((k) => ({ _tag: "delete" as const, key: k }))), (e) => new TsdbError({ kind: "unavailable", message: e.message }))
      }
      return dropped.size
    })

    yield* Effect.forkScoped(Effect.forever(
      Effect.sleep(`${settings.retentionIntervalMs ?? Limits.retentionIntervalMs} millis`).pipe(
        Effect.andThen(enforceRetention),
        Effect.catch((e) => Effect.logWarning(`retention pass failed: ${e.message}`))
      )
    ))

    // Closing checkpoints the heads this process logged, so that the next start replays nothing.
    yield* Effect.addFinalizer(() =>
      lock.withPermit(Effect.gen(function*() {
        if (lastSubmittedSeq === 0 || nextRecord - 1 <= checkpointed) return
        yield* checkpoint
        yield* Effect.mapError(db.awaitDurable(lastSubmittedSeq), failed)
      })).pipe(Effect.catch((e) => Effect.logWarning(`head checkpoint on close failed: ${e.message}`)))
    )

    const readersOf: TsdbShape["selectReaders"] = (matchers, mint, maxt) => Effect.map(selectReaders(matchers, mint, maxt), (s) => s.readers)

    return { write, select, selectReaders: readersOf, series, labelNames, labelValues, metadata, exemplars, enforceRetention, cacheStats } satisfies TsdbShape
  })

/** The TSDB over the core `Db` in context (open it with its own path, e.g. `tsdb/`). */
export const layer = (settings: TsdbSettings = {}): Layer.Layer<Tsdb, never, CoreDb.Db> => Layer.effect(Tsdb, make(settings))
