/**
 * A series' head in memory (its open chunk, out-of-order buffer and native histogram head) and the steps
 * the write path and the replay of the head log both take on it; and the decoding of a series' chunks into
 * the columns of a `SelectedSeries`.
 */
import * as Limits from "../limits.ts"
import type { FloatHistogram } from "../promql/histogram.ts"
import { isStaleNaN } from "../promql/types.ts"
import type { Sample, SelectedSeries } from "../SeriesSource.ts"
import { ChunkCorrupt, ChunkIterator, hiLane, loLane, newChunk } from "./chunk.ts"
import type { XorChunk } from "./chunk.ts"
import { decodeSamples, decodeStoredInto, encodeSamples, storedChunk, storedCount } from "./chunkCodec.ts"
import { decodeCheckpointed } from "./headLog.ts"
import type { HistogramSample } from "./histogramChunk.ts"
import { decodeHistogramChunk, encodeHistogramChunk } from "./histogramChunk.ts"
import { bucketOf, chunkKey, histogramChunkKey } from "./keys.ts"
import type { Labels } from "./labels.ts"

// -------------------------------------------------------------------------------------------------
// Decoding a series' chunks into columns
// -------------------------------------------------------------------------------------------------

/** Float64 lanes as uint32 pairs: which of the two holds the high half on this machine. */
export { hiLane, loLane }

/**
 * Columns to decode series into from index `at` on: a selection's readers decode each series in turn into
 * one of these, sized for its largest series, so that a query holds one series' samples at a time.
 */
export interface ColumnSlab {
  readonly ts: Float64Array
  readonly bits: Uint32Array
  readonly vs: Float64Array
  /** The first free index. */
  at: number
}

/** A slab with room for `capacity` samples. */
export const columnSlab = (capacity: number): ColumnSlab => {
  const vs = new Float64Array(capacity)
  return { ts: new Float64Array(capacity), vs, bits: new Uint32Array(vs.buffer), at: 0 }
}

/** The samples a series' chunks hold at most (what `decodeRange` needs room for). */
export const chunksCapacity = (chunks: ReadonlyArray<Uint8Array>): number => {
  let capacity = 0
  for (const c of chunks) capacity += storedCount(c)
  return capacity
}

/**
 * The samples in [mint, maxt] of a series' chunks (sealed chunks by bucket and first timestamp, then the
 * head, then the out-of-order buffer), merged by timestamp; where two chunks hold the same timestamp the
 * earlier chunk's sample wins. Values are copied as their 64-bit patterns, never through a float. The
 * columns are views of `slab` from its first free index on (which moves past them) when one is given,
 * with room for `chunksCapacity(chunks)` samples; else arrays of their own.
 */
export const decodeRange = (labels: Labels, chunks: ReadonlyArray<Uint8Array>, mint: number, maxt: number, slab?: ColumnSlab): SelectedSeries => {
  const into = slab ?? columnSlab(chunksCapacity(chunks))
  const { ts, bits, at } = into
  let n = at
  /** The chunks' runs are in timestamp order one after the other (no out-of-order data overlaps). */
  let ordered = true
  for (const c of chunks) {
    const next = decodeStoredInto(c, ts, bits, n, mint, maxt, hiLane)
    if (next < 0) {
      // Malformed: a whole decode says how (it throws `ChunkCorrupt`).
      decodeSamples(c)
      throw new ChunkCorrupt("chunk does not decode")
    }
    // Within a chunk timestamps increase: only where one chunk's samples follow another's can order break.
    if (next > n && n > at && ts[n - 1]! >= ts[n]!) ordered = false
    n = next
  }
  if (!ordered) {
    // Rare (out-of-order data): a stable sort of the positions by timestamp, the first of equal ones kept,
    // into arrays of the series' own (the slab's room is free again).
    const order = Array.from({ length: n - at }, (_, i) => at + i).sort((a, b) => ts[a]! - ts[b]! || a - b)
    const mts = new Float64Array(order.length)
    const mvs = new Float64Array(order.length)
    const mbits = new Uint32Array(mvs.buffer)
    let m = 0
    for (const i of order) {
      if (m > 0 && mts[m - 1] === ts[i]) continue
      mts[m] = ts[i]!
      mbits[2 * m] = bits[2 * i]!
      mbits[2 * m + 1] = bits[2 * i + 1]!
      m++
    }
    return { labels, timestamps: mts.subarray(0, m), values: mvs.subarray(0, m) }
  }
  into.at = n
  // Views, not copies: the arrays are the query's, and go with it.
  return { labels, timestamps: ts.subarray(at, n), values: into.vs.subarray(at, n) }
}

/** Histogram samples of a series to read: a sealed (or checkpointed) histogram chunk, or a head's samples. */
export type HistogramRun = Uint8Array | ReadonlyArray<HistogramSample>

/**
 * A series' float samples merged with its histogram samples in [mint, maxt], by time: where both have a
 * sample at the same time the float wins, and where two histogram runs do, the earlier run's.
 */
export const withHistograms = (floats: SelectedSeries, runs: ReadonlyArray<HistogramRun>, mint: number, maxt: number): SelectedSeries => {
  const byTime = new Map<number, FloatHistogram>()
  for (const run of runs) {
    for (const s of run instanceof Uint8Array ? decodeHistogramChunk(run) : run) {
      if (s.t >= mint && s.t <= maxt && !byTime.has(s.t)) byTime.set(s.t, s.h)
    }
  }
  if (byTime.size === 0) return floats
  const fts = floats.timestamps
  for (const t of fts) byTime.delete(t)
  const hts = [...byTime.keys()].sort((a, b) => a - b)
  const n = fts.length + hts.length
  const timestamps = new Float64Array(n)
  const values = new Float64Array(n)
  const fbits = new Uint32Array(floats.values.buffer, floats.values.byteOffset, floats.values.length * 2)
  const bits = new Uint32Array(values.buffer)
  const histograms: Array<FloatHistogram | undefined> = new Array(n)
  let i = 0
  let j = 0
  for (let k = 0; k < n; k++) {
    if (j >= hts.length || (i < fts.length && fts[i]! < hts[j]!)) {
      timestamps[k] = fts[i]!
      bits[2 * k] = fbits[2 * i]!
      bits[2 * k + 1] = fbits[2 * i + 1]!
      i++
    } else {
      timestamps[k] = hts[j]!
      histograms[k] = byTime.get(hts[j]!)!
      j++
    }
  }
  return { labels: floats.labels, timestamps, values, histograms }
}

/**
 * A series with its samples' start timestamps: each sample's is that of the last start key at or before it
 * in its bucket (keys are written at a series' first sample in a bucket and wherever the start changes).
 */
export const withStarts = (series: SelectedSeries, keys: ReadonlyArray<readonly [number, number]>): SelectedSeries => {
  const ts = series.timestamps
  const startTimestamps = new Float64Array(ts.length)
  let k = -1
  let any = false
  for (let i = 0; i < ts.length; i++) {
    const t = ts[i]!
    while (k + 1 < keys.length && keys[k + 1]![0] <= t) k++
    if (k >= 0 && bucketOf(keys[k]![0]) === bucketOf(t) && keys[k]![1] !== 0) {
      startTimestamps[i] = keys[k]![1]
      any = true
    }
  }
  return any ? { ...series, startTimestamps } : series
}

/** Adds a stored head (`H`: its chunk and out-of-order buffer) or an older version's `O` buffer to a series' chunks. */
export const pushStored = (list: Array<Uint8Array>, kind: "head" | "ooo", bytes: Uint8Array) => {
  if (kind === "ooo") {
    list.push(bytes)
    return undefined
  }
  const stored = decodeCheckpointed(bytes)
  if (stored.head !== undefined) list.push(stored.head)
  if (stored.ooo !== undefined) list.push(stored.ooo)
  return stored
}

// -------------------------------------------------------------------------------------------------
// The head
// -------------------------------------------------------------------------------------------------

/**
 * A series' head, in memory: its open chunk and out-of-order buffer. Every series with samples logged
 * after its checkpointed head (`lastRecord > asOf`) is here; clean ones may be dropped (their `H` key
 * holds them).
 */
export interface SeriesState {
  readonly id: number
  /** The head chunk, appended to sample by sample. */
  headChunk: XorChunk
  /** Out-of-order samples not yet sealed, by timestamp. */
  ooo: Array<Sample>
  /** Chunks sealed by writes not durable yet (until `pendingSeq` is durable): reads find them here. */
  sealedPending: Array<SealedChunk>
  /**
   * Float chunks this process sealed, kept in memory (in key order: bucket, then first timestamp), from the
   * series' last two buckets, at most `recentChunksMax`. Together they are every stored float chunk of the
   * buckets after `coveredAfter`: reads of those buckets need no Db read.
   */
  recent: RecentChunks
  /**
   * Every stored float chunk of a bucket after this one is in `recent`: -1 for a series created by this
   * process; for one read back from storage, infinite until it seals a head chunk, then that chunk's last
   * sample's bucket (see `keepRecent`); raised past every bucket whose chunks are dropped from `recent`.
   */
  coveredAfter: number
  /**
   * The last two buckets whose postings this process wrote this series into (-1: none): a sample in
   * either needs no postings key; one in an older bucket (a late sample) writes its key again, which is
   * harmless. Two numbers, not a set that would grow with every bucket a long-lived series lives through.
   */
  indexedLast: number
  indexedBefore: number
  /** Db seq of the last write that changed this series: a retry that finds its samples here waits for it. */
  pendingSeq: number
  /** The last log record holding samples of this series. */
  lastRecord: number
  /** The record its checkpointed head (`H` key) reflects. */
  asOf: number
  /** When it was last written (a count of series writes), to drop the least recently written first. */
  touched: number
  /** The bucket of the last sample written in this process (its postings and bucket key are written). */
  lastBucket: number
  /** The native histogram head: histogram samples not yet sealed, by increasing time. */
  histograms: Array<HistogramSample>
  /** Histogram chunks sealed by writes not durable yet (as `sealedPending`). */
  histogramsSealedPending: Array<Uint8Array>
  /**
   * With start timestamps kept: the start of the last in-order sample written in this process, and its
   * bucket (-1: none yet). A sample whose start differs, or the first in a bucket, writes a start key.
   */
  lastStart: number
  lastStartBucket: number
}

/** A sealed float chunk: its bucket, first timestamp (its key's) and bytes. */
export interface SealedChunk {
  readonly bucket: number
  readonly minT: number
  /** Its last timestamp: a read of a window after it skips it undecoded. */
  readonly maxT: number
  readonly bytes: Uint8Array
}

/**
 * A series' recent chunks: their bytes in one buffer that is only ever appended to, and for each chunk, in
 * key order, its bucket, first and last timestamps and where its bytes are (five numbers in one array).
 * Ten thousand series keep eighty thousand chunks; as objects and views of their own that was three
 * objects a chunk for the collector to walk, here it is three objects a series.
 *
 * Bytes once written in the buffer are never written again, so a read may keep views of chunks (taken
 * under the TSDB's lock) while later writes go on: a chunk that replaces or drops another leaves the old
 * bytes where they are, and a chunk that does not fit goes with the chunks still kept into a new buffer
 * half as large again as they are (the old one lives on while views of it do). A seal then costs the
 * chunk's bytes, not a copy of every kept chunk into a buffer of its own, as it did.
 */
export interface RecentChunks {
  /** `count x (bucket, minT, maxT, start, end)`: chunk i's bytes are `bytes[start .. end)`. */
  readonly meta: Array<number>
  bytes: Uint8Array
  /** Bytes of `bytes` written so far. */
  used: number
}

const recentFields = 5
/** The first buffer of a series' recent chunks holds at least this many bytes. */
const recentBytesFirst = 512

export const noRecent: RecentChunks = Object.freeze({ meta: Object.freeze([]) as unknown as Array<number>, bytes: new Uint8Array(0), used: 0 })

export const recentCount = (recent: RecentChunks): number => recent.meta.length / recentFields
export const recentBucket = (recent: RecentChunks, i: number): number => recent.meta[i * recentFields]!
export const recentMinT = (recent: RecentChunks, i: number): number => recent.meta[i * recentFields + 1]!
export const recentMaxT = (recent: RecentChunks, i: number): number => recent.meta[i * recentFields + 2]!
const recentStart = (recent: RecentChunks, i: number): number => recent.meta[i * recentFields + 3]!
const recentEnd = (recent: RecentChunks, i: number): number => recent.meta[i * recentFields + 4]!
/** Chunk i's bytes (a view of the buffer: they stay as they are). */
export const recentBytes = (recent: RecentChunks, i: number): Uint8Array => recent.bytes.subarray(recentStart(recent, i), recentEnd(recent, i))

/**
 * Room for `size` more bytes in `recent`: when full, the kept chunks move to a new buffer half as large
 * again as they and `size` (a series' kept chunks stay about the same size, so a buffer takes a few seals
 * before the next move, for half the chunks' bytes more memory).
 */
const recentRoom = (recent: RecentChunks, size: number): void => {
  if (recent.used + size <= recent.bytes.length) return
  const meta = recent.meta
  let live = 0
  for (let m = 0; m < meta.length; m += recentFields) live += meta[m + 4]! - meta[m + 3]!
  const bytes = new Uint8Array(Math.max(recentBytesFirst, Math.ceil(1.5 * (live + size))))
  let to = 0
  for (let m = 0; m < meta.length; m += recentFields) {
    const from = meta[m + 3]!
    const end = meta[m + 4]!
    bytes.set(recent.bytes.subarray(from, end), to)
    meta[m + 3] = to
    to += end - from
    meta[m + 4] = to
  }
  recent.bytes = bytes
  recent.used = to
}

/**
 * Keeps a chunk the write path sealed (and stores) in the head's `recent` chunks (see `SeriesState`).
 * `lastT`: the last timestamp of a sealed head chunk (not given for an out-of-order one).
 */
export const keepRecent = (state: SeriesState, chunk: SealedChunk, lastT: number | undefined) => {
  if (state.coveredAfter === Number.POSITIVE_INFINITY) {
    // A series read back from storage: every chunk an earlier process stored starts at or before the
    // newest sample it had, which is at or before the last of the first head chunk this process seals.
    if (lastT === undefined) return
    state.coveredAfter = bucketOf(lastT)
  }
  if (state.recent === noRecent) state.recent = { meta: [], bytes: new Uint8Array(0), used: 0 }
  const recent = state.recent
  const meta = recent.meta
  // In key order; a chunk under the key of one kept replaces it (as it does in the Db).
  let at = recentCount(recent)
  while (at > 0 && (recentBucket(recent, at - 1) > chunk.bucket || (recentBucket(recent, at - 1) === chunk.bucket && recentMinT(recent, at - 1) > chunk.minT))) at--
  const replaces = at > 0 && recentBucket(recent, at - 1) === chunk.bucket && recentMinT(recent, at - 1) === chunk.minT
  recentRoom(recent, chunk.bytes.length)
  const start = recent.used
  recent.bytes.set(chunk.bytes, start)
  recent.used = start + chunk.bytes.length
  if (replaces) {
    const m = (at - 1) * recentFields
    meta[m + 2] = chunk.maxT
    meta[m + 3] = start
    meta[m + 4] = recent.used
  } else {
    meta.splice(at * recentFields, 0, chunk.bucket, chunk.minT, chunk.maxT, start, recent.used)
  }
  // Only the last two buckets, and at most `recentChunksMax` chunks: what goes takes its bucket's coverage.
  const newest = recentBucket(recent, recentCount(recent) - 1)
  let drop = 0
  const count = recentCount(recent)
  while (drop < count && (recentBucket(recent, drop) < newest - 1 || count - drop > Limits.recentChunksMax)) {
    state.coveredAfter = Math.max(state.coveredAfter, recentBucket(recent, drop))
    drop++
  }
  if (drop === count) state.recent = noRecent
  else if (drop > 0) meta.splice(0, drop * recentFields)
}

/** The empty lists every series without histograms shares (replaced, never pushed to). */
export const noHistograms: Array<HistogramSample> = []
export const noChunks: Array<Uint8Array> = []
/** Shared empty lists: a series has its own only once it has out-of-order samples or sealed chunks pending. */
export const noSamples: Array<Sample> = []
export const noSealed: Array<SealedChunk> = []
Object.freeze(noHistograms)
Object.freeze(noChunks)
Object.freeze(noSamples)
Object.freeze(noSealed)

/** Whether this process wrote the series into the postings of `bucket` (see `indexedLast`). */
export const isIndexed = (state: SeriesState, bucket: number) => state.indexedLast === bucket || state.indexedBefore === bucket

export const markIndexed = (state: SeriesState, bucket: number) => {
  if (bucket > state.indexedLast) {
    state.indexedBefore = state.indexedLast
    state.indexedLast = bucket
  } else state.indexedBefore = bucket
}

/**
 * The first chunk of a series with none yet: small enough that V8 keeps its bytes inside the array object
 * (up to 64), not in a buffer of its own, as a series' first few samples need; it grows as more come.
 */
const firstChunkBytes = 32

export const emptyState = (id: number): SeriesState => ({
  id,
  headChunk: newChunk(firstChunkBytes),
  ooo: noSamples,
  sealedPending: noSealed,
  recent: noRecent,
  coveredAfter: Number.POSITIVE_INFINITY,
  indexedLast: -1,
  indexedBefore: -1,
  pendingSeq: 0,
  lastRecord: 0,
  asOf: 0,
  touched: 0,
  lastBucket: -1,
  // Shared empty lists until a series has histograms (most never do): nothing allocated per series.
  histograms: noHistograms,
  histogramsSealedPending: noChunks,
  lastStart: 0,
  lastStartBucket: -1
})

/**
 * Appends a histogram sample to a series' histogram head (after its newest: the caller checks), sealing the
 * full head first. The write path and the replay take the same steps (see `applySample`).
 */
export const applyHistogram = (state: SeriesState, t: number, h: FloatHistogram, seal: ((key: Uint8Array, value: Uint8Array) => void) | undefined) => {
  const n = state.histograms.length
  // Cut when full, and at every bucket's start (as float chunks).
  if (n >= Limits.chunkSamplesMax || (n > 0 && bucketOf(t) !== bucketOf(state.histograms[0]!.t))) {
    const first = state.histograms[0]!.t
    seal?.(histogramChunkKey(bucketOf(first), state.id, first), encodeHistogramChunk(state.histograms))
    state.histograms = []
  }
  if (state.histograms === noHistograms) state.histograms = []
  state.histograms.push({ t, h })
}

/** The newest sample's timestamp in a head (its chunk, out-of-order buffer and histograms); -Infinity when empty. */
export const newestSample = (state: SeriesState): number => {
  let newest = Number.NEGATIVE_INFINITY
  if (state.headChunk.count > 0) newest = state.headChunk.maxTime!
  for (const s of state.ooo) if (s.timestampMs > newest) newest = s.timestampMs
  const h = state.histograms.at(-1)
  if (h !== undefined && h.t > newest) newest = h.t
  return newest
}

/** Whether a histogram is Prometheus's stale marker for a histogram series (its sum is the stale NaN). */
export const isStaleHistogram = (h: FloatHistogram) => isStaleNaN(h.sum)

/**
 * The first buffer of a series' next head chunk: room for a full chunk at its last chunk's bytes per
 * sample, and an eighth more (a series' chunks differ a little in size), so that it seldom grows.
 */
const nextChunkBytes = (lastBytes: number, lastCount: number): number =>
  Math.min(Math.ceil(lastBytes * Math.max(1, Limits.chunkSamplesMax / lastCount) * 1.125) + 16, nextChunkBytesMax)

/** At most this much is set aside up front for a head chunk (it grows past it when it must). */
const nextChunkBytesMax = 4096

/** Float64 <-> its two uint32 halves (scratch, one sample at a time). */
export const scratchF64 = new Float64Array(1)
export const scratchU32 = new Uint32Array(scratchF64.buffer)
const bitsToNumber = (lo: number, hi: number) => {
  scratchU32[loLane] = lo
  scratchU32[hiLane] = hi
  return scratchF64[0]!
}

/**
 * Applies an accepted sample to a head: appended if after the head's last (the full head sealed first),
 * otherwise inserted into the out-of-order buffer (sealed when full). The write path and the replay of
 * the log take the same steps, so a replayed head is the head the writes built. `seal` gets each sealed
 * chunk (the write path stores it; a replay finds it stored already).
 */
export const applySample = (
  state: SeriesState,
  t: number,
  lo: number,
  hi: number,
  seal: ((key: Uint8Array, value: Uint8Array, maxT: number, outOfOrder: boolean) => void) | undefined
): "head" | "ooo" => {
  const head = state.headChunk
  if (head.count === 0 || t > head.maxTime!) {
    // Cut when full, and at every bucket's start: a chunk lies in the bucket its key names, so a read
    // finds it by the buckets of its window (however sparse the series).
    if (head.count >= Limits.chunkSamplesMax || (head.count > 0 && bucketOf(t) !== bucketOf(head.minTime!))) {
      const first = head.minTime!
      const maxT = head.maxTime!
      const count = head.count
      const bytes = head.seal()
      seal?.(chunkKey(bucketOf(first), state.id, first), storedChunk(bytes), maxT, false)
      state.headChunk = newChunk(nextChunkBytes(bytes.length, count))
    }
    state.headChunk.appendBits(t, hi, lo)
    return "head"
  }
  if (state.ooo === noSamples) state.ooo = []
  const ooo = state.ooo
  let at = ooo.length
  while (at > 0 && ooo[at - 1]!.timestampMs > t) at--
  ooo.splice(at, 0, { timestampMs: t, value: bitsToNumber(lo, hi) })
  if (ooo.length >= Limits.outOfOrderBufferSamples) {
    // A chunk per bucket the late samples fall in (a chunk lies in the bucket its key names).
    let from = 0
    while (from < ooo.length) {
      const first = ooo[from]!
      const bucket = bucketOf(first.timestampMs)
      let to = from + 1
      while (to < ooo.length && bucketOf(ooo[to]!.timestampMs) === bucket) to++
      seal?.(chunkKey(bucket, state.id, first.timestampMs), encodeSamples(from === 0 && to === ooo.length ? ooo : ooo.slice(from, to)), ooo[to - 1]!.timestampMs, true)
      from = to
    }
    state.ooo = noSamples
  }
  return "ooo"
}

/**
 * What a request's float samples go through, series after series (see `appendFloats`), and what became
 * of them: counts over every series of the request.
 */
export interface FloatIntake {
  /** A sample before this (the retention horizon) is too old. */
  readonly horizon: number
  readonly oooWindowMs: number
  /** The request's log record. */
  readonly record: { add(id: number, t: number, lo: number, hi: number): void }
  /** Gets each chunk sealed (see `applySample`). */
  readonly seal: (key: Uint8Array, value: Uint8Array, maxT: number, outOfOrder: boolean) => void
  /** For an accepted sample in another bucket than its series' last. */
  readonly newBucket: (state: SeriesState, labels: Labels, t: number) => void
  /** When given, for each accepted in-order sample, with its start timestamp. */
  readonly inOrderStart: ((state: SeriesState, t: number, startTimestampMs: number) => void) | undefined
  written: number
  duplicates: number
  tooOld: number
  outOfOrder: number
}

/** The float samples of one series in a request: columns (the remote-write path) or objects. */
export interface FloatRun {
  readonly timestamps: ArrayLike<number> | undefined
  readonly values: ArrayLike<number> | undefined
  readonly samples: ReadonlyArray<{ readonly timestampMs: number; readonly value: number; readonly startTimestampMs?: number | undefined }>
  readonly from: number
  readonly to: number
}

/**
 * Takes a series' float samples of a request into its head, as Prometheus's appender does: a sample
 * before the horizon (or not a safe integer) is too old; one at a timestamp the head has is a no-op with
 * the same value and a duplicate with another; one older than the head's newest by more than the
 * out-of-order window is too old; an accepted one is applied (`applySample`) and logged in the record.
 * Plain code over the samples, run once a series. Returns whether a sample was logged.
 */
export const appendFloats = (state: SeriesState, labels: Labels, run: FloatRun, intake: FloatIntake): boolean => {
  const timestamps = run.timestamps
  const values = run.values
  const samples = run.samples
  const id = state.id
  let logged = false
  for (let k = run.from; k < run.to; k++) {
    const t = timestamps !== undefined ? timestamps[k]! : samples[k]!.timestampMs
    if (!Number.isSafeInteger(t) || t < 0 || t < intake.horizon) {
      intake.tooOld += 1
      continue
    }
    scratchF64[0] = values !== undefined ? values[k]! : samples[k]!.value
    const lo = scratchU32[loLane]!
    const hi = scratchU32[hiLane]!
    const head = state.headChunk
    const inOrder = head.count === 0 || t > head.maxTime!
    if (!inOrder) {
      // Prometheus: the same timestamp with the same value is a no-op, with another value an error.
      const existing = valueAt(state, t)
      if (existing !== undefined) {
        if (existing.lo !== lo || existing.hi !== hi) intake.duplicates += 1
        continue
      }
      if (head.maxTime! - t > intake.oooWindowMs) {
        intake.tooOld += 1
        continue
      }
      intake.outOfOrder += 1
    }
    applySample(state, t, lo, hi, intake.seal)
    intake.record.add(id, t, lo, hi)
    logged = true
    intake.written += 1
    // Samples of a series mostly fall in the bucket of its last one: nothing to look up then.
    if (bucketOf(t) !== state.lastBucket) intake.newBucket(state, labels, t)
    if (inOrder && intake.inOrderStart !== undefined) intake.inOrderStart(state, t, timestamps !== undefined ? 0 : samples[k]!.startTimestampMs ?? 0)
  }
  return logged
}

/** The value at `t` in a head (its chunk or its out-of-order buffer) as its 64-bit pattern, if any. */
export const valueAt = (state: SeriesState, t: number): { readonly lo: number; readonly hi: number } | undefined => {
  const head = state.headChunk
  if (head.count > 0 && t === head.maxTime) return { lo: head.lastLo, hi: head.lastHi }
  if (head.count > 0 && t >= head.minTime!) {
    const it = new ChunkIterator(head.bytes())
    while (it.next()) {
      if (it.t === t) return { lo: it.valueLo, hi: it.valueHi }
      if (it.t > t) break
    }
  }
  for (const s of state.ooo) {
    if (s.timestampMs === t) {
      scratchF64[0] = s.value
      return { lo: scratchU32[loLane]!, hi: scratchU32[hiLane]! }
    }
  }
  return undefined
}
