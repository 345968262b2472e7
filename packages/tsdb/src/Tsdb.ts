/**
 * Tsdb: Prometheus-style time series on the core `Db`.
 *
 * Write path (one remote-write request = one atomic Db batch, acknowledged once durable): each series'
 * labels resolve to an id through a dictionary keyed by a hash of the labels (collisions resolved by
 * comparing the stored labels); each sample goes to the series' head chunk (XOR-encoded, rewritten in
 * the batch, so the WAL makes it durable), or, if older than the head but within the out-of-order window,
 * to the series' out-of-order buffer; a full head (120 samples) or buffer is sealed into an immutable
 * chunk in its time bucket; the first sample of a series in a bucket adds it to that bucket's inverted
 * index. Decisions are taken under one lock; the durable wait is not.
 *
 * Key layout in the Db (`tsdb/` path; integers big-endian):
 *   h<hash u64><id u64>                       -> labels     the dictionary
 *   S<id u64>                                 -> labels     id -> labels
 *   n                                         -> u64        next series id
 *   i<bucket u32><name>\0<value>\0<id u64>    -> (empty)    postings of a time bucket
 *   c<bucket u32><id u64><minT u64>           -> chunk      sealed chunks
 *   H<id u64> / O<id u64>                     -> chunk      head chunk / out-of-order buffer
 *   m<metric>                                 -> JSON       metric metadata
 *   b<bucket u32>                             -> (empty)    the buckets that hold data
 */
import { Clock, Context, Effect, Exit, Layer, Scope, Semaphore, Stream } from "effect"
import type { Db as CoreDb } from "@opendata/core"
import { Db, Keys } from "@opendata/core"
import * as Limits from "./limits.ts"
import { ChunkIterator, chunkSampleCount } from "./internal/chunk.ts"
import type { XorChunk } from "./internal/chunk.ts"
import { newChunk, openChunk } from "./internal/chunk.ts"
import { decodeSamples, encodeSamples } from "./internal/chunkCodec.ts"
import type { Labels, Matcher } from "./internal/labels.ts"
import { canonical, hashLabels, labelValue, matches, matchesAll, matchesEmpty, sortLabels } from "./internal/labels.ts"

export type { Labels, Matcher }

export interface Sample {
  readonly timestampMs: number
  readonly value: number
}

export interface SeriesInput {
  readonly labels: Labels
  readonly samples: ReadonlyArray<Sample>
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
}

/**
 * A selected series: its samples in [mint, maxt] (both inclusive) as two columns, index for index, by
 * strictly increasing timestamp. No object per sample: a selection of millions of samples costs 16 bytes
 * each, outside the JavaScript heap.
 */
export interface SelectedSeries {
  readonly labels: Labels
  /** Timestamps (ms, integers), strictly increasing. */
  readonly timestamps: Float64Array
  /** Values, bit for bit as written (the stale marker's NaN payload included). */
  readonly values: Float64Array
}

export interface SelectOptions {
  /**
   * Samples the selection may hold at most (default `querySamplesMax`): past it, `select` fails with a
   * `limit` error as soon as it knows, without decoding the rest.
   */
  readonly samplesMax?: number | undefined
}

/** What the PromQL engine reads through: series by matchers over a time range. */
export interface SeriesSource {
  readonly select: (
    matchers: ReadonlyArray<Matcher>,
    mint: number,
    maxt: number,
    options?: SelectOptions
  ) => Effect.Effect<ReadonlyArray<SelectedSeries>, TsdbError>
}

/** A selected series' samples as objects (for tests and checks; the engine reads the columns). */
export const samplesOf = (series: SelectedSeries): Array<Sample> =>
  Array.from(series.timestamps, (timestampMs, i) => ({ timestampMs, value: series.values[i]! }))

/** A selected series from samples sorted by strictly increasing timestamp (for `SeriesSource` test doubles). */
export const selectedSeries = (labels: Labels, samples: ReadonlyArray<Sample>): SelectedSeries => {
  const timestamps = new Float64Array(samples.length)
  const values = new Float64Array(samples.length)
  for (let i = 0; i < samples.length; i++) {
    timestamps[i] = samples[i]!.timestampMs
    values[i] = samples[i]!.value
  }
  return { labels, timestamps, values }
}

/** Why a TSDB operation failed: `unavailable` (retry later), `bad_data` (fix the input), `limit` (too large). */
export class TsdbError extends Error {
  readonly _tag = "TsdbError"
  readonly kind: "unavailable" | "bad_data" | "limit"
  constructor(kind: "unavailable" | "bad_data" | "limit", message: string) {
    super(message)
    this.kind = kind
  }
}

/** A selection would hold more than `samplesMax` samples (a `limit` error the PromQL engine words as Prometheus does). */
export class SamplesLimitExceeded extends TsdbError {
  readonly samplesMax: number
  constructor(samplesMax: number) {
    super("limit", `more than ${samplesMax} samples selected`)
    this.samplesMax = samplesMax
  }
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
  /** Deletes chunks and index buckets older than the retention; returns the buckets dropped. */
  readonly enforceRetention: Effect.Effect<number, TsdbError>
}

export class Tsdb extends Context.Service<Tsdb, TsdbShape>()("@opendata/tsdb/Tsdb") {}

export interface TsdbSettings {
  readonly retentionMs?: number | undefined
  readonly outOfOrderWindowMs?: number | undefined
  readonly retentionIntervalMs?: number | undefined
}

// -------------------------------------------------------------------------------------------------
// Keys
// -------------------------------------------------------------------------------------------------

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const { readU64, u64, writeU64 } = Keys
/** A one-byte tag and a u64: the keys written for every series on every write. */
const taggedU64 = (tag: string, n: number) => {
  const b = new Uint8Array(9)
  b[0] = tag.charCodeAt(0)
  writeU64(b, 1, n)
  return b
}
const u32 = (n: number) => {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setUint32(0, n)
  return b
}
const readU32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset + at, 4).getUint32(0)
const cat = (...parts: ReadonlyArray<Uint8Array | string>) => {
  const bytes = parts.map((p) => (typeof p === "string" ? encoder.encode(p) : p))
  const out = new Uint8Array(bytes.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of bytes) {
    out.set(p, at)
    at += p.length
  }
  return out
}
const zero = Uint8Array.of(0)
const prefixEnd = (prefix: Uint8Array): Uint8Array | undefined => {
  const end = prefix.slice()
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1
      return end.subarray(0, i + 1)
    }
  }
  return undefined
}

const dictPrefix = (hash: number) => cat("h", u64(hash))
const dictKey = (hash: number, id: number) => cat("h", u64(hash), u64(id))
const seriesKey = (id: number) => taggedU64("S", id)
const nextIdKey = encoder.encode("n")
const postingPrefix = (bucket: number, name?: string, value?: string) =>
  name === undefined ? cat("i", u32(bucket)) : value === undefined ? cat("i", u32(bucket), name, zero) : cat("i", u32(bucket), name, zero, value, zero)
const chunkPrefix = (bucket: number, id?: number) => (id === undefined ? cat("c", u32(bucket)) : cat("c", u32(bucket), u64(id)))
const chunkKey = (bucket: number, id: number, minT: number) => cat("c", u32(bucket), u64(id), u64(minT))
const headKey = (id: number) => taggedU64("H", id)
const oooKey = (id: number) => taggedU64("O", id)
const metaKey = (metric: string) => cat("m", metric)
const bucketKey = (bucket: number) => cat("b", u32(bucket))

const encodeLabels = (labels: Labels) => encoder.encode(JSON.stringify(labels))
const decodeLabels = (bytes: Uint8Array): Labels => JSON.parse(decoder.decode(bytes)) as Labels

/** Same float64 bits (so NaN payloads such as the stale marker compare exactly). */
const sameBits = (a: number, b: number) => {
  const v = new DataView(new ArrayBuffer(16))
  v.setFloat64(0, a)
  v.setFloat64(8, b)
  return v.getBigUint64(0) === v.getBigUint64(8)
}

// -------------------------------------------------------------------------------------------------
// Decoding a series' chunks into columns
// -------------------------------------------------------------------------------------------------

/** Float64 lanes as uint32 pairs: which of the two holds the high half on this machine. */
const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1
const hiLane = littleEndian ? 1 : 0
const loLane = 1 - hiLane

/**
 * The samples in [mint, maxt] of a series' chunks (sealed chunks by bucket and first timestamp, then the
 * head, then the out-of-order buffer), merged by timestamp; where two chunks hold the same timestamp the
 * earlier chunk's sample wins. Values are copied as their 64-bit patterns, never through a float.
 */
const decodeRange = (labels: Labels, chunks: ReadonlyArray<Uint8Array>, mint: number, maxt: number): SelectedSeries => {
  let capacity = 0
  for (const c of chunks) capacity += chunkSampleCount(c)
  let ts = new Float64Array(capacity)
  let vs = new Float64Array(capacity)
  const bits = new Uint32Array(vs.buffer)
  let n = 0
  /** The chunks' runs are in timestamp order one after the other (no out-of-order data overlaps). */
  let ordered = true
  for (const c of chunks) {
    const it = new ChunkIterator(c)
    while (it.next()) {
      const t = it.t
      if (t > maxt) break
      if (t < mint) continue
      if (n > 0 && ts[n - 1]! >= t) ordered = false
      ts[n] = t
      bits[2 * n + hiLane] = it.valueHi
      bits[2 * n + loLane] = it.valueLo
      n++
    }
  }
  if (!ordered) {
    // Rare (out-of-order data): a stable sort of the positions by timestamp, the first of equal ones kept.
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => ts[a]! - ts[b]! || a - b)
    const mts = new Float64Array(n)
    const mvs = new Float64Array(n)
    const mbits = new Uint32Array(mvs.buffer)
    let m = 0
    for (const i of order) {
      if (m > 0 && mts[m - 1] === ts[i]) continue
      mts[m] = ts[i]!
      mbits[2 * m] = bits[2 * i]!
      mbits[2 * m + 1] = bits[2 * i + 1]!
      m++
    }
    ts = mts
    vs = mvs
    n = m
  }
  if (n < ts.length) {
    ts = ts.slice(0, n)
    vs = vs.slice(0, n)
  }
  return { labels, timestamps: ts, values: vs }
}

// -------------------------------------------------------------------------------------------------
// Implementation
// -------------------------------------------------------------------------------------------------

interface SeriesState {
  readonly id: number
  readonly labels: Labels
  /** Samples of the head chunk, by timestamp. */
  head: Array<Sample>
  /** The head chunk's XOR encoding, appended to sample by sample (not re-encoded for each write). */
  headChunk: XorChunk
  /** Out-of-order samples not yet sealed, by timestamp. */
  ooo: Array<Sample>
  /** Buckets whose postings already hold this series. */
  readonly indexed: Set<number>
  /** Db seq of the last write that changed this series: a retry that finds its samples here waits for it. */
  pendingSeq: number
}

const bucketOf = (t: number) => Math.floor(t / Limits.bucketMs)

export const make = (settings: TsdbSettings = {}): Effect.Effect<TsdbShape, never, CoreDb.Db | Scope.Scope> =>
  Effect.gen(function*() {
    const db = yield* Db.Db
    const retentionMs = settings.retentionMs ?? Limits.retentionMsDefault
    const oooWindowMs = settings.outOfOrderWindowMs ?? Limits.outOfOrderWindowMs
    const failed = (e: { readonly message: string }) => new TsdbError("unavailable", e.message)

    const lock = Semaphore.makeUnsafe(1)
    /** Series state by canonical labels, least recently written first (a Map keeps insertion order). */
    const states = new Map<string, SeriesState>()
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
    /**
     * The label names and values of recent buckets, for the label APIs: a bucket's are read from its
     * postings by one scan when first asked for, then kept current from this process's writes, each applied
     * once the Db's durable watermark reaches it (a value is listed once its postings are durable, as a
     * scan would find them). At most `labelIndexBucketsMax` buckets, the least recently asked for first.
     */
    const labelIndex = new Map<number, Map<string, Set<string>>>()
    /** Postings written and not yet applied to the label index, oldest first. */
    const pendingPostings: Array<{ readonly seq: number; readonly postings: ReadonlyArray<readonly [number, string, string]> }> = []
    const applyDurablePostings = (durableSeq: number) => {
      let n = 0
      while (n < pendingPostings.length && pendingPostings[n]!.seq <= durableSeq) {
        for (const [bucket, name, value] of pendingPostings[n]!.postings) {
          const names = labelIndex.get(bucket)
          if (names === undefined) continue
          let values = names.get(name)
          if (values === undefined) names.set(name, (values = new Set()))
          values.add(value)
        }
        n += 1
      }
      if (n > 0) pendingPostings.splice(0, n)
    }
    let nextId: number | undefined
    /** Buckets this process has registered (re-registering after a restart is harmless). */
    const knownBuckets = new Set<number>()

    const getKey = (k: Uint8Array) =>
      Effect.suspend(() => {
        const pending = overlay.get(okey(k))
        return pending !== undefined ? Effect.succeed(pending.value as Uint8Array | undefined) : Effect.mapError(db.get(k), failed)
      })
    /** The seq of a write of `k` that is not durable yet (0 if none). */
    const pendingSeqOf = (k: Uint8Array) => overlay.get(okey(k))?.seq ?? 0

    const loadNextId = Effect.gen(function*() {
      if (nextId === undefined) {
        const bytes = yield* getKey(nextIdKey)
        nextId = bytes === undefined ? 1 : readU64(bytes, 0)
      }
      return nextId
    })

    /** The series state of a label set (its canonical form) if it is in memory, now the most recently used. */
    const cachedState = (key: string): SeriesState | undefined => {
      const cached = states.get(key)
      if (cached !== undefined) {
        states.delete(key)
        states.set(key, cached)
      }
      return cached
    }

    /** Finds or creates the series for a label set; new series add their dictionary ops to `ops`. */
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

    const resolve = (labels: Labels, key: string, ops: Array<CoreDb.WriteOp>, created: Map<string, number>) =>
      Effect.gen(function*() {
        const hash = hashLabels(labels)
        if (!knownHashesLoaded) yield* loadKnownHashes
        // A series created by a write not durable yet is not in the Db's dictionary yet.
        let id: number | undefined = pendingSeries.get(key)?.id
        if (id === undefined && (knownHashes === undefined || knownHashes.has(hash))) {
          // The dictionary: every id under this hash, compared by labels (a collision is just another id).
          const candidates = yield* Stream.runCollect(db.scan({ start: dictPrefix(hash), end: prefixEnd(dictPrefix(hash)) })).pipe(Effect.mapError(failed))
          for (const kv of candidates) if (decoder.decode(kv.value) === key) id = readU64(kv.key, 9)
        }
        let head: Array<Sample> = []
        let headChunk = newChunk()
        let ooo: Array<Sample> = []
        if (id === undefined) {
          id = yield* loadNextId
          nextId = id + 1
          created.set(key, id)
          if (knownHashes !== undefined) {
            knownHashes.add(hash)
            if (knownHashes.size > Limits.knownHashesMax) knownHashes = undefined
          }
          ops.push({ _tag: "put", key: dictKey(hash, id), value: encoder.encode(key) })
          ops.push({ _tag: "put", key: seriesKey(id), value: encodeLabels(labels) })
        } else {
          const h = yield* getKey(headKey(id))
          const o = yield* getKey(oooKey(id))
          head = h === undefined ? [] : decodeSamples(h)
          if (h !== undefined) headChunk = openChunk(h)
          ooo = o === undefined ? [] : decodeSamples(o)
        }
        // Reloaded from a write that is not durable yet: a retry finding its samples here must wait for it.
        const pendingSeq = Math.max(pendingSeqOf(headKey(id)), pendingSeqOf(oooKey(id)))
        const state: SeriesState = { id, labels, head, headChunk, ooo, indexed: new Set(), pendingSeq }
        states.set(key, state)
        return state
      })

    const write = (input: WriteInput) =>
      Effect.gen(function*() {
        let submitted = false
        const touched: Array<SeriesState> = []
        /** Series created by this request (canonical labels -> id). */
        const created = new Map<string, number>()
        /** Postings this request adds (bucket, name, value), for the label index once they are durable. */
        const postings: Array<readonly [number, string, string]> = []
        const decided = yield* lock.withPermit(Effect.gen(function*() {
          const durableSeq = yield* db.durableSeq
          dropDurableOverlay(durableSeq)
          applyDurablePostings(durableSeq)
          const ops: Array<CoreDb.WriteOp> = []
          /** Single-key writes of this batch that later reads (before it is durable) must see, by key. */
          const remember = new Map<string, Uint8Array>()
          let written = 0
          let waitFor = 0
          let outOfOrder = 0
          let tooOld = 0
          // A sample before the retention horizon would be dropped as soon as it was stored: refused.
          const horizon = (yield* Clock.currentTimeMillis) - retentionMs
          let duplicates = 0
          for (const m of input.metadata ?? []) {
            if (m.metric === "") continue
            ops.push({ _tag: "put", key: metaKey(m.metric), value: encoder.encode(JSON.stringify(m)) })
          }
          for (const s of input.series) {
            if (s.samples.length === 0) continue
            const labels = sortLabels(s.labels)
            const key = canonical(labels)
            // Most series are in memory already: no effect to run for them.
            const state = cachedState(key) ?? (yield* resolve(labels, key, ops, created))
            // A sample already here may be from an earlier attempt of this request that is not durable yet.
            waitFor = Math.max(waitFor, state.pendingSeq)
            touched.push(state)
            let headChanged = false
            let oooChanged = false
            for (const sample of s.samples) {
              const t = sample.timestampMs
              if (!Number.isSafeInteger(t) || t < 0 || t < horizon) {
                tooOld += 1
                continue
              }
              const last = state.head.at(-1)
              if (last === undefined || t > last.timestampMs) {
                if (state.head.length >= Limits.chunkSamplesMax) {
                  const first = state.head[0]!
                  ops.push({ _tag: "put", key: chunkKey(bucketOf(first.timestampMs), state.id, first.timestampMs), value: state.headChunk.bytes() })
                  state.head = []
                  state.headChunk = newChunk()
                }
                state.head.push(sample)
                state.headChunk.append(sample.timestampMs, sample.value)
                headChanged = true
              } else if (t === last.timestampMs || state.head.some((x) => x.timestampMs === t) || state.ooo.some((x) => x.timestampMs === t)) {
                // Prometheus: the same timestamp with the same value is a no-op, with another value an error.
                const existing = state.head.find((x) => x.timestampMs === t) ?? state.ooo.find((x) => x.timestampMs === t)
                if (existing !== undefined && sameBits(existing.value, sample.value)) continue
                duplicates += 1
                continue
              } else if (last.timestampMs - t <= oooWindowMs) {
                const at = state.ooo.findIndex((x) => x.timestampMs > t)
                state.ooo.splice(at === -1 ? state.ooo.length : at, 0, sample)
                outOfOrder += 1
                oooChanged = true
                if (state.ooo.length >= Limits.outOfOrderBufferSamples) {
                  const first = state.ooo[0]!
                  ops.push({ _tag: "put", key: chunkKey(bucketOf(first.timestampMs), state.id, first.timestampMs), value: encodeSamples(state.ooo) })
                  state.ooo = []
                }
              } else {
                tooOld += 1
                continue
              }
              written += 1
              const bucket = bucketOf(t)
              if (!knownBuckets.has(bucket)) {
                knownBuckets.add(bucket)
                ops.push({ _tag: "put", key: bucketKey(bucket), value: new Uint8Array(0) })
              }
              if (!state.indexed.has(bucket)) {
                state.indexed.add(bucket)
                for (const [name, value] of labels) {
                  ops.push({ _tag: "put", key: cat(postingPrefix(bucket, name, value), u64(state.id)), value: new Uint8Array(0) })
                  postings.push([bucket, name, value])
                }
              }
            }
            if (headChanged) {
              const value = state.headChunk.bytes()
              ops.push({ _tag: "put", key: headKey(state.id), value })
              remember.set(okey(headKey(state.id)), value)
            }
            if (oooChanged) {
              const value = encodeSamples(state.ooo)
              ops.push({ _tag: "put", key: oooKey(state.id), value })
              remember.set(okey(oooKey(state.id)), value)
            }
          }
          // Bound the head state kept in memory: the least recently written series go (their state is in the Db).
          while (states.size > Limits.headSeriesMax) {
            const [k] = states.keys()
            states.delete(k!)
          }
          const outcome: WriteOutcome = { samplesWritten: written, ...(created.size > 0 ? { seriesCreated: created.size } : {}), outOfOrder, tooOld, duplicates }
          if (ops.length === 0) return { outcome, durable: Effect.mapError(db.awaitDurable(waitFor), failed) }
          // The next free id, once a batch (not once a new series).
          if (created.size > 0) ops.push({ _tag: "put", key: nextIdKey, value: u64(nextId!) })
          if (nextId !== undefined) remember.set(okey(nextIdKey), u64(nextId))
          // Db.write either queues the batch (and answers its seq) or fails having queued nothing, even when
          // interrupted; what it queued is recorded here before any interruption can land.
          const result = yield* Effect.uninterruptibleMask((restore) =>
            Effect.tap(
              restore(Effect.mapError(db.write(ops, { awaitDurable: false }), (e) => e._tag === "InvalidWrite" ? new TsdbError("limit", e.message) : failed(e))),
              (result) =>
                Effect.sync(() => {
                  submitted = true
                  for (const [k, value] of remember) overlay.set(k, { value, seq: result.seq })
                  for (const [k, id] of created) pendingSeries.set(k, { id, seq: result.seq })
                  overlayBySeq.push({ seq: result.seq, keys: [...remember.keys()], series: [...created.keys()] })
                  if (postings.length > 0) pendingPostings.push({ seq: result.seq, postings })
                  for (const state of touched) state.pendingSeq = result.seq
                })
            )
          )
          return { outcome, durable: Effect.andThen(Effect.mapError(result.durable, failed), Effect.mapError(db.awaitDurable(waitFor), failed)) }
        }).pipe(
          // Nothing was queued (the Db refused the batch, a lookup failed, or the request was interrupted):
          // forget the in-memory changes made for it (the touched series reload from the Db and the
          // overlay), or a retry would find its samples "already written" and acknowledge what was never
          // written. Ids handed out stay used: an id is never given twice.
          Effect.onExit((exit) =>
            Exit.isSuccess(exit) || submitted ? Effect.void : Effect.sync(() => {
              for (const state of touched) states.delete(canonical(state.labels))
              knownBuckets.clear()
            })
          )
        ))
        yield* decided.durable
        return decided.outcome
      })

    // --- reads -----------------------------------------------------------------------------------

    /** Label sets by series id, read once (they never change), at most `seriesLabelsCacheMax`. */
    const labelsCache = new Map<number, Labels>()
    const labelsOf = (id: number): Effect.Effect<Labels | undefined, TsdbError> => {
      const cached = labelsCache.get(id)
      if (cached !== undefined) return Effect.succeed(cached)
      return Effect.map(Effect.mapError(db.get(seriesKey(id)), failed), (bytes) => {
        if (bytes === undefined) return undefined
        const labels = decodeLabels(bytes)
        labelsCache.set(id, labels)
        if (labelsCache.size > Limits.seriesLabelsCacheMax) labelsCache.delete(labelsCache.keys().next().value!)
        return labels
      })
    }

    const scanKeys = (start: Uint8Array, end: Uint8Array | undefined) =>
      Effect.map(Stream.runCollect(db.scan({ start, end })).pipe(Effect.mapError(failed)), (kvs) => kvs.map((kv) => kv.key))

    /** Ids of the series in `bucket` matching every matcher, and their labels. */
    const selectInBucket = (bucket: number, matchers: ReadonlyArray<Matcher>, found: Map<number, Labels>) =>
      Effect.gen(function*() {
        // Narrow by the most selective kind of matcher: an equality that does not match the empty string.
        const eq = matchers.find((m) => m.type === "=" && !matchesEmpty(m))
        const narrowing = eq ?? matchers.find((m) => !matchesEmpty(m))
        let ids: Array<number>
        if (narrowing !== undefined && narrowing.type === "=") {
          const p = postingPrefix(bucket, narrowing.name, narrowing.value)
          ids = (yield* scanKeys(p, prefixEnd(p))).map((k) => readU64(k, k.length - 8))
        } else if (narrowing !== undefined) {
          const p = postingPrefix(bucket, narrowing.name)
          ids = (yield* scanKeys(p, prefixEnd(p)))
            .filter((k) => matches(narrowing, decoder.decode(k.subarray(p.length, k.length - 9))))
            .map((k) => readU64(k, k.length - 8))
        } else {
          // Every matcher matches the empty string: every series of the bucket is a candidate.
          const p = postingPrefix(bucket)
          ids = [...new Set((yield* scanKeys(p, prefixEnd(p))).map((k) => readU64(k, k.length - 8)))]
        }
        for (const id of new Set(ids)) {
          if (found.has(id)) continue
          const labels = yield* labelsOf(id)
          if (labels !== undefined && matchesAll(matchers, labels)) found.set(id, labels)
          if (found.size > Limits.selectSeriesMax) return yield* Effect.fail(new TsdbError("limit", `more than ${Limits.selectSeriesMax} series selected`))
        }
      })

    /** The buckets holding data in [first, last] (only those: a wide range costs nothing). */
    const bucketsIn = (first: number, last: number) =>
      Effect.map(
        scanKeys(bucketKey(Math.max(0, first)), bucketKey(Math.min(last, 0xfffffffe) + 1)),
        (keys) => keys.map((k) => readU32(k, 1))
      )

    const selectIds = (matchers: ReadonlyArray<Matcher>, mint: number, maxt: number) =>
      Effect.gen(function*() {
        const found = new Map<number, Labels>()
        for (const b of yield* bucketsIn(bucketOf(Math.max(0, mint)), bucketOf(Math.max(0, maxt)))) yield* selectInBucket(b, matchers, found)
        return found
      })

    /**
     * The encoded chunks of each series in `ids` (ascending) that may hold samples up to maxt, in merge
     * order: sealed chunks by bucket and first timestamp (a chunk that starts after maxt is not read),
     * then the head, then the out-of-order buffer. Many series close together by id are read with one
     * scan per bucket over the span of their ids (other series' chunks in that span are skipped
     * undecoded), others with a scan each.
     */
    const readChunks = (ids: ReadonlyArray<number>, buckets: ReadonlyArray<number>, maxt: number) =>
      Effect.gen(function*() {
        const chunks = new Map<number, Array<Uint8Array>>(ids.map((id) => [id, []]))
        if (ids.length === 0) return chunks
        const lowId = ids[0]!
        const highId = ids.at(-1)!
        const wide = ids.length >= Limits.selectScanSeriesMin && ids.length * Limits.selectScanSpanPerSeriesMax >= highId - lowId + 1
        const scanInto = (start: Uint8Array, end: Uint8Array | undefined, idAt: number, sealed: boolean) =>
          Stream.runForEach(db.scan({ start, end }), (kv) =>
            Effect.sync(() => {
              const list = chunks.get(readU64(kv.key, idAt))
              // A sealed chunk's key ends with its first timestamp.
              if (list !== undefined && (!sealed || readU64(kv.key, kv.key.length - 8) <= maxt)) list.push(kv.value)
            })).pipe(Effect.mapError(failed))
        for (const b of buckets) {
          if (wide) yield* scanInto(chunkPrefix(b, lowId), prefixEnd(chunkPrefix(b, highId)), 5, true)
          else for (const id of ids) yield* scanInto(chunkPrefix(b, id), prefixEnd(chunkPrefix(b, id)), 5, true)
        }
        for (const key of [headKey, oooKey]) {
          if (wide) yield* scanInto(key(lowId), prefixEnd(key(highId)), 1, false)
          else {
            for (const id of ids) {
              const bytes = yield* Effect.mapError(db.get(key(id)), failed)
              if (bytes !== undefined) chunks.get(id)!.push(bytes)
            }
          }
        }
        return chunks
      })

    const select: SeriesSource["select"] = (matchers, mint, maxt, options) =>
      Effect.gen(function*() {
        const samplesMax = options?.samplesMax ?? Limits.querySamplesMax
        const ids = yield* selectIds(matchers, mint, maxt)
        // Sealed chunks can start in the bucket before mint (a chunk spans up to chunkSamplesMax samples).
        const buckets = yield* bucketsIn(bucketOf(Math.max(0, mint)) - 1, bucketOf(Math.max(0, maxt)))
        const chunks = yield* readChunks([...ids.keys()].sort((a, b) => a - b), buckets, maxt)
        const sorted = [...ids].map(([id, labels]) => ({ id, labels, key: canonical(labels) })).sort((a, b) => (a.key < b.key ? -1 : 1))
        const out: Array<SelectedSeries> = []
        let total = 0
        for (const { id, labels } of sorted) {
          const series = decodeRange(labels, chunks.get(id)!, mint, maxt)
          // Decoded chunks go as soon as they are read.
          chunks.delete(id)
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
        return [...found.values()].sort((a, b) => (canonical(a) < canonical(b) ? -1 : 1))
      })

    const limited = <A>(items: ReadonlyArray<A>, limit: number | undefined) => (limit === undefined || limit <= 0 ? items : items.slice(0, limit))

    const series: TsdbShape["series"] = (selectors, mint, maxt, limit) => Effect.map(seriesMatching(selectors, mint, maxt), (s) => limited(s, limit))

    /** A bucket's label names and their values, from the label index (read from its postings if not there). */
    const bucketLabels = (bucket: number) =>
      Effect.gen(function*() {
        applyDurablePostings(yield* db.durableSeq)
        const cached = labelIndex.get(bucket)
        if (cached !== undefined) {
          labelIndex.delete(bucket)
          labelIndex.set(bucket, cached)
          return cached
        }
        // Writes that land during the scan are applied from `pendingPostings` later: adding twice is harmless.
        const names = new Map<string, Set<string>>()
        const p = postingPrefix(bucket)
        yield* Stream.runForEach(db.scan({ start: p, end: prefixEnd(p) }), (kv) =>
          Effect.sync(() => {
            const k = kv.key
            const z = k.indexOf(0, p.length)
            if (z < 0 || k.length < z + 10) return
            const name = decoder.decode(k.subarray(p.length, z))
            let values = names.get(name)
            if (values === undefined) names.set(name, (values = new Set()))
            values.add(decoder.decode(k.subarray(z + 1, k.length - 9)))
          })).pipe(Effect.mapError(failed))
        labelIndex.set(bucket, names)
        if (labelIndex.size > Limits.labelIndexBucketsMax) labelIndex.delete(labelIndex.keys().next().value!)
        return names
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
          for (const name of (yield* bucketLabels(b)).keys()) names.add(name)
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
          for (const value of (yield* bucketLabels(b)).get(name) ?? []) values.add(value)
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

    const enforceRetention = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const cutoff = bucketOf(Math.max(0, now - retentionMs))
      let dropped = 0
      for (const kind of ["c", "i", "b"]) {
        // Buckets are ordered: everything from the kind's first key up to the cutoff bucket goes.
        const start = encoder.encode(kind)
        const end = cat(kind, u32(cutoff))
        for (;;) {
          const keys = yield* Stream.runCollect(db.scan({ start, end }).pipe(Stream.take(1000), Stream.map((kv) => kv.key))).pipe(Effect.mapError(failed))
          if (keys.length === 0) break
          if (kind === "c") dropped += new Set(keys.map((k) => readU32(k, 1))).size
          yield* Effect.mapError(db.write(keys.map((k) => ({ _tag: "delete" as const, key: k }))), (e) => new TsdbError("unavailable", e.message))
        }
      }
      for (const b of knownBuckets) if (b < cutoff) knownBuckets.delete(b)
      for (const b of labelIndex.keys()) if (b < cutoff) labelIndex.delete(b)
      return dropped
    })

    yield* Effect.forkScoped(Effect.forever(
      Effect.sleep(`${settings.retentionIntervalMs ?? Limits.retentionIntervalMs} millis`).pipe(
        Effect.andThen(enforceRetention),
        Effect.catch((e) => Effect.logWarning(`retention pass failed: ${e.message}`))
      )
    ))

    return { write, select, series, labelNames, labelValues, metadata, enforceRetention } satisfies TsdbShape
  })

/** The TSDB over the core `Db` in context (open it with its own path, e.g. `tsdb/`). */
export const layer = (settings: TsdbSettings = {}): Layer.Layer<Tsdb, never, CoreDb.Db> => Layer.effect(Tsdb, make(settings))
