/**
 * The memtable: recent writes in memory, every version of each key, until they are flushed into a
 * level-0 table. Point reads are a map lookup. Ordered iteration keeps the keys in two sorted runs, a
 * large one and a small recent one, and merges them as it goes: keys added since the last ordered read
 * are sorted on their own and merged into the recent run, which is merged into the large one only once it
 * holds a sixty-fourth of its keys (at least `recentKeysMin`). So a scan between writes costs about the
 * new keys and the recent run (plus its own range), not a pass over every key the memtable holds, and
 * each key is merged into the large run once.
 * Keys are held as latin1 strings, whose JavaScript order is the unsigned byte order of the keys.
 *
 * An entry is held as a number, not as objects: its key and value bytes are copied into the memtable's
 * arena (buffers of up to `arenaBytesMax`, one of its own for a large value) and its seq, kind and place
 * into columns. A memtable of hundreds of thousands of small entries is then a few buffers for the
 * collector, not three objects and a buffer an entry that every major collection walks and sweeps until
 * the flush. Reads get `Entry` objects made on the spot, views of the arena.
 */
import type { Entry } from "../format/entry.ts"
import { kindCode, kindOfCode } from "../format/entry.ts"

/** Keys up to this long are made strings character by character (see `keyString`). */
const keyCharsMax = 64

/**
 * A key as a latin1 string. A short key's characters are taken one by one: reading `.buffer` of a small
 * typed array (V8 keeps up to 64 bytes inside the object) moves its bytes into a buffer of their own,
 * which costs ten times the string.
 */
export const keyString = (key: Uint8Array): string =>
  key.length <= keyCharsMax
    ? String.fromCharCode.apply(null, key as unknown as Array<number>)
    : Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString("latin1")

export const keyBytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "latin1"))

/** The recent run of keys is merged into the large one past this many keys (or a 64th of the large one). */
const recentKeysMin = 4096

/** Rough memory cost of one entry beyond its key and value bytes. */
const entryOverheadBytes = 48

/** The arena's first buffer; each next one is twice the last, up to `arenaBytesMax`. */
const arenaBytesFirst = 4 * 1024
/** The arena's largest buffer; an entry of more than a quarter of it gets a buffer of its own. */
const arenaBytesMax = 256 * 1024
/** Entries the columns have room for at first (they double as they fill). */
const entriesFirst = 64

const empty = new Uint8Array(0)
const mergeCode = kindCode("merge")

export class Memtable {
  /**
   * Versions of each key (entry numbers), oldest first (sequence numbers only grow): most keys have one,
   * held as it is (an array of one costs more than the number).
   */
  private readonly versions = new Map<string, number | Array<number>>()
  /** Every key, in order, in two runs (`sorted`, then the smaller `recent`), except those added since the last ordered read (`added`). */
  private sorted: Array<string> = []
  private recent: Array<string> = []
  private added: Array<string> = []
  /** The arena's buffers; entries are appended to the last one that is not a large entry's own. */
  private readonly buffers: Array<Uint8Array> = []
  private open: Uint8Array = empty
  private openIndex = -1
  private openAt = 0
  /** Per entry: its seq and kind; and where it is: buffer, offset, key length, value length. */
  private seqs = new Float64Array(entriesFirst)
  private kindCodes = new Uint8Array(entriesFirst)
  private places = new Uint32Array(entriesFirst * 4)
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

  /** Adds a version of a key: its bytes are copied, so the caller may reuse them. */
  add(entry: Entry): void {
    const k = keyString(entry.key)
    const n = this.entryCount
    if (n === this.seqs.length) this.grow()
    this.seqs[n] = entry.seq
    this.kindCodes[n] = kindCode(entry.kind)
    this.place(n, entry.key, entry.value)
    const held = this.versions.get(k)
    if (held === undefined) {
      this.versions.set(k, n)
      this.added.push(k)
    } else if (typeof held === "number") this.versions.set(k, [held, n])
    else held.push(n)
    this.bytes += entry.key.length + entry.value.length + entryOverheadBytes
    this.entryCount = n + 1
    if (entry.seq < this.minSeq) this.minSeq = entry.seq
    if (entry.seq > this.maxSeq) this.maxSeq = entry.seq
  }

  /** Copies entry `n`'s key and value into the arena, and notes where. */
  private place(n: number, key: Uint8Array, value: Uint8Array): void {
    const size = key.length + value.length
    let index: number
    let at: number
    if (size > arenaBytesMax >>> 2) {
      index = this.buffers.length
      this.buffers.push(new Uint8Array(size))
      at = 0
    } else {
      if (this.openIndex < 0 || this.openAt + size > this.open.length) {
        let capacity = this.open.length === 0 ? arenaBytesFirst : Math.min(arenaBytesMax, this.open.length * 2)
        while (capacity < size) capacity *= 2
        this.open = new Uint8Array(capacity)
        this.openIndex = this.buffers.length
        this.buffers.push(this.open)
        this.openAt = 0
      }
      index = this.openIndex
      at = this.openAt
      this.openAt += size
    }
    const buffer = this.buffers[index]!
    buffer.set(key, at)
    buffer.set(value, at + key.length)
    const p = n * 4
    this.places[p] = index
    this.places[p + 1] = at
    this.places[p + 2] = key.length
    this.places[p + 3] = value.length
  }

  private grow(): void {
    const capacity = this.seqs.length * 2
    const seqs = new Float64Array(capacity)
    seqs.set(this.seqs)
    const kindCodes = new Uint8Array(capacity)
    kindCodes.set(this.kindCodes)
    const places = new Uint32Array(capacity * 4)
    places.set(this.places)
    this.seqs = seqs
    this.kindCodes = kindCodes
    this.places = places
  }

  /** Entry `n`, as views of the arena. */
  private entry(n: number): Entry {
    const p = n * 4
    const buffer = this.buffers[this.places[p]!]!
    const at = this.places[p + 1]!
    const keyEnd = at + this.places[p + 2]!
    const valueLength = this.places[p + 3]!
    return {
      key: buffer.subarray(at, keyEnd),
      seq: this.seqs[n]!,
      kind: kindOfCode[this.kindCodes[n]!]!,
      value: valueLength === 0 ? empty : buffer.subarray(keyEnd, keyEnd + valueLength)
    }
  }

  /**
   * Versions of `key` with seq <= `seqMax`, newest first, down to the first that is not a merge operand
   * (older ones cannot change the value).
   */
  get(key: string, seqMax: number): Array<Entry> {
    const held = this.versions.get(key)
    if (held === undefined) return []
    if (typeof held === "number") return this.seqs[held]! <= seqMax ? [this.entry(held)] : []
    return this.newestFirst(held, seqMax)
  }

  /** The versions of a key's list a read at `seqMax` needs, newest first (see `get`). */
  private newestFirst(list: Array<number>, seqMax: number): Array<Entry> {
    const out: Array<Entry> = []
    for (let i = list.length - 1; i >= 0; i--) {
      const n = list[i]!
      if (this.seqs[n]! > seqMax) continue
      out.push(this.entry(n))
      if (this.kindCodes[n] !== mergeCode) break
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
      if (typeof held === "number") {
        if (seqMax === undefined || this.seqs[held]! <= seqMax) yield this.entry(held)
        continue
      }
      if (seqMax === undefined) {
        for (let v = held.length - 1; v >= 0; v--) yield this.entry(held[v]!)
        continue
      }
      yield* this.newestFirst(held, seqMax)
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
