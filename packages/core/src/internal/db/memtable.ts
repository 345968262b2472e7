/**
 * The memtable: recent writes in memory, every version of each key, until they are flushed into a
 * level-0 table. Point reads are a map lookup; ordered iteration keeps the keys sorted: keys added since
 * the last ordered read are sorted on their own and merged in (linear), not the whole set sorted again.
 * Keys are held as latin1 strings, whose JavaScript order is the unsigned byte order of the keys.
 */
import type { Entry } from "../format/entry.ts"

export const keyString = (key: Uint8Array): string => Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString("latin1")
export const keyBytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "latin1"))

/** Rough memory cost of one entry beyond its key and value bytes. */
const entryOverheadBytes = 48

export class Memtable {
  /** Versions of each key, oldest first (sequence numbers only grow). */
  private readonly versions = new Map<string, Array<Entry>>()
  /** Every key, in order, except those added since the last ordered read (`added`). */
  private sorted: Array<string> = []
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
    let list = this.versions.get(k)
    if (list === undefined) {
      list = []
      this.versions.set(k, list)
      this.added.push(k)
    }
    list.push(entry)
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
    const list = this.versions.get(key)
    if (list === undefined) return []
    const out: Array<Entry> = []
    for (let i = list.length - 1; i >= 0; i--) {
      const e = list[i]!
      if (e.seq > seqMax) continue
      out.push(e)
      if (e.kind !== "merge") break
    }
    return out
  }

  private keysSorted(): Array<string> {
    if (this.added.length === 0) return this.sorted
    const added = this.added.sort()
    this.added = []
    if (this.sorted.length === 0) {
      this.sorted = added
      return added
    }
    // Merge two sorted arrays of distinct keys (a key is added once).
    const merged = new Array<string>(this.sorted.length + added.length)
    let i = 0
    let j = 0
    let k = 0
    while (i < this.sorted.length && j < added.length) merged[k++] = this.sorted[i]! < added[j]! ? this.sorted[i++]! : added[j++]!
    while (i < this.sorted.length) merged[k++] = this.sorted[i++]!
    while (j < added.length) merged[k++] = added[j++]!
    this.sorted = merged
    return merged
  }

  /**
   * Entries with keys in [start, end) (strings from `keyString`; undefined = unbounded), by `compareEntries`.
   * With `seqMax`, only what a read at that seq needs: each key's versions with seq <= `seqMax`, newest
   * first, down to the first that is not a merge operand (as `get`), so overwritten versions cost nothing.
   */
  *range(start: string | undefined, end: string | undefined, seqMax?: number): Generator<Entry> {
    const keys = this.keysSorted()
    let lo = 0
    if (start !== undefined) {
      let hi = keys.length
      while (lo < hi) {
        const mid = (lo + hi) >>> 1
        if (keys[mid]! < start) lo = mid + 1
        else hi = mid
      }
    }
    for (let i = lo; i < keys.length; i++) {
      const k = keys[i]!
      if (end !== undefined && k >= end) return
      const list = this.versions.get(k)!
      if (seqMax === undefined) {
        for (let j = list.length - 1; j >= 0; j--) yield list[j]!
        continue
      }
      for (let j = list.length - 1; j >= 0; j--) {
        const e = list[j]!
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
