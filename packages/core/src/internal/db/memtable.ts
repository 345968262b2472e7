/**
 * The memtable: recent writes in memory, every version of each key, until they are flushed into a
 * level-0 table. Point reads are a map lookup. Ordered iteration keeps the keys in two sorted runs, a
 * large one and a small recent one, and merges them as it goes: keys added since the last ordered read
 * are sorted on their own and merged into the recent run, which is merged into the large one only once it
 * holds a sixty-fourth of its keys (at least `recentKeysMin`). So a scan between writes costs about the
 * new keys and the recent run (plus its own range), not a pass over every key the memtable holds, and
 * each key is merged into the large run once.
 * Keys are held as latin1 strings, whose JavaScript order is the unsigned byte order of the keys.
 */
import type { Entry } from "../format/entry.ts"

export const keyString = (key: Uint8Array): string => Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString("latin1")
export const keyBytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "latin1"))

/** The recent run of keys is merged into the large one past this many keys (or a 64th of the large one). */
const recentKeysMin = 4096

/** Rough memory cost of one entry beyond its key and value bytes. */
const entryOverheadBytes = 48

export class Memtable {
  /**
   * Versions of each key, oldest first (sequence numbers only grow): most keys have one, held as it is
   * (an array of one costs more than the entry).
   */
  private readonly versions = new Map<string, Entry | Array<Entry>>()
  /** Every key, in order, in two runs (`sorted`, then the smaller `recent`), except those added since the last ordered read (`added`). */
  private sorted: Array<string> = []
  private recent: Array<string> = []
  private added: Array<string> = []
  bytes = 0
  entryCount = 0
  minSeq = Number.POSITIVE_INFINITY
  maxSeq = 0
  /** Bytes taken from the Db's unflushed budget by the writes in this memtable. */
  permits = 0
  /** Highest WAL id whose entries are all in this memtable (0: none). */
  walIdLast = 0
  /**
   * The id of the level-0 table this memtable is flushed into, chosen at the first attempt and kept by
   * every retry, so a retry recognises the table (and the manifest commit) of an earlier attempt.
   */
  tableId: string | undefined = undefined

  add(entry: Entry): void {
    const k = keyString(entry.key)
    const held = this.versions.get(k)
    if (held === undefined) {
      this.versions.set(k, entry)
      this.added.push(k)
    } else if (Array.isArray(held)) held.push(entry)
    else this.versions.set(k, [held, entry])
    this.bytes += entry.key.length + entry.value.length + entryOverheadBytes
    this.entryCount += 1
    if (entry.seq < this.minSeq) this.minSeq = entry.seq
    if (entry.seq > this.maxSeq) this.maxSeq = entry.seq
  }

  /**
   * Versions of `key` with seq <= `seqMax`, newest first, down to the first that is not a merge operand
   * (older ones cannot change the value).
   */
  get(key: string, seqMax: number): Array<Entry> {
    const held = this.versions.get(key)
    if (held === undefined) return []
    if (!Array.isArray(held)) return held.seq <= seqMax ? [held] : []
    const list = held
    const out: Array<Entry> = []
    for (let i = list.length - 1; i >= 0; i--) {
      const e = list[i]!
      if (e.seq > seqMax) continue
      out.push(e)
      if (e.kind !== "merge") break
    }
    return out
  }

  /** Folds the keys added since the last ordered read into the runs. */
  private sortRuns(): void {
    if (this.added.length === 0) return
    const added = this.added.sort()
    this.added = []
    this.recent = mergeSorted(this.recent, added)
    if (this.recent.length > Math.max(recentKeysMin, this.sorted.length >>> 6)) {
      this.sorted = mergeSorted(this.sorted, this.recent)
      this.recent = []
    }
  }

  /**
   * Entries with keys in [start, end) (strings from `keyString`; undefined = unbounded), by `compareEntries`.
   * With `seqMax`, only what a read at that seq needs: each key's versions with seq <= `seqMax`, newest
   * first, down to the first that is not a merge operand (as `get`), so overwritten versions cost nothing.
   */
  *range(start: string | undefined, end: string | undefined, seqMax?: number): Generator<Entry> {
    this.sortRuns()
    const a = this.sorted
    const b = this.recent
    let i = start === undefined ? 0 : lowerBound(a, start)
    let j = start === undefined ? 0 : lowerBound(b, start)
    for (;;) {
      // The next key of the two runs (a key is in one run only).
      let k: string
      if (i < a.length && (j >= b.length || a[i]! < b[j]!)) k = a[i++]!
      else if (j < b.length) k = b[j++]!
      else return
      if (end !== undefined && k >= end) return
      const held = this.versions.get(k)!
      if (!Array.isArray(held)) {
        if (seqMax === undefined || held.seq <= seqMax) yield held
        continue
      }
      const list = held
      if (seqMax === undefined) {
        for (let v = list.length - 1; v >= 0; v--) yield list[v]!
        continue
      }
      for (let v = list.length - 1; v >= 0; v--) {
        const e = list[v]!
        if (e.seq > seqMax) continue
        yield e
        if (e.kind !== "merge") break
      }
    }
  }

  get isEmpty(): boolean {
    return this.entryCount === 0
  }
}

/** The first index of `keys` (sorted) whose key is >= `key`. */
const lowerBound = (keys: ReadonlyArray<string>, key: string): number => {
  let lo = 0
  let hi = keys.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (keys[mid]! < key) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** Two sorted arrays of distinct keys (no key in both), merged. */
const mergeSorted = (a: Array<string>, b: Array<string>): Array<string> => {
  if (a.length === 0) return b
  if (b.length === 0) return a
  const merged = new Array<string>(a.length + b.length)
  let i = 0
  let j = 0
  let k = 0
  while (i < a.length && j < b.length) merged[k++] = a[i]! < b[j]! ? a[i++]! : b[j++]!
  while (i < a.length) merged[k++] = a[i++]!
  while (j < b.length) merged[k++] = b[j++]!
  return merged
}
