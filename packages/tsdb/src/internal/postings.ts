/**
 * The postings of one time bucket in memory, as Prometheus's head index holds them: per label name, its
 * values, and per value the ids of the series holding it, sorted and unique. A selection intersects the
 * postings of its matchers that do not match the empty string (a regex or negative matcher: the union of
 * the values it matches) instead of reading one posting list and filtering every series' labels.
 *
 * Ids mostly arrive in ascending order (new series get new ids); a list that got one out of order is
 * sorted (and deduplicated: the same posting may be added twice) when next read.
 */
import type { Matcher } from "./labels.ts"
import { matches, matchesEmpty } from "./labels.ts"

/** Series ids, sorted and unique when read. */
class IdList {
  private ids: Array<number> = []
  private sorted = true

  add(id: number) {
    const n = this.ids.length
    if (n > 0 && id <= this.ids[n - 1]!) this.sorted = false
    this.ids.push(id)
  }

  get(): ReadonlyArray<number> {
    if (!this.sorted) {
      const ids = this.ids.sort((a, b) => a - b)
      let w = 0
      for (let r = 0; r < ids.length; r++) if (w === 0 || ids[r] !== ids[w - 1]) ids[w++] = ids[r]!
      ids.length = w
      this.sorted = true
    }
    return this.ids
  }
}

const none: ReadonlyArray<number> = []

/** The ids in both sorted lists. */
export const intersect = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): Array<number> => {
  const out: Array<number> = []
  let i = 0
  let j = 0
  while (i < a.length && j < b.length) {
    const x = a[i]!
    const y = b[j]!
    if (x === y) {
      out.push(x)
      i++
      j++
    } else if (x < y) i++
    else j++
  }
  return out
}

/** The ids in any of the sorted lists, sorted and unique. */
export const union = (lists: ReadonlyArray<ReadonlyArray<number>>): ReadonlyArray<number> => {
  if (lists.length === 0) return none
  if (lists.length === 1) return lists[0]!
  const all: Array<number> = []
  for (const l of lists) for (const id of l) all.push(id)
  all.sort((a, b) => a - b)
  let w = 0
  for (let r = 0; r < all.length; r++) if (w === 0 || all[r] !== all[w - 1]) all[w++] = all[r]!
  all.length = w
  return all
}

/**
 * What the postings' parts take in the JavaScript heap, roughly (64-bit V8, no pointer compression): a
 * posting an array slot with room to grow; a value a map entry, its list object and array, and its string;
 * a name its map. What a cache of postings counts its bytes by.
 */
const postingBytes = 12
const valueBytes = 120
const nameBytes = 160

export class BucketPostings {
  private readonly byName = new Map<string, Map<string, IdList>>()
  private readonly all = new IdList()
  /** The heap this bucket's postings take, roughly (see `postingBytes`). */
  bytes = 0

  add(name: string, value: string, id: number) {
    let values = this.byName.get(name)
    if (values === undefined) {
      this.byName.set(name, (values = new Map()))
      this.bytes += nameBytes + 2 * name.length
    }
    let list = values.get(value)
    if (list === undefined) {
      values.set(value, (list = new IdList()))
      this.bytes += valueBytes + 2 * value.length
    }
    list.add(id)
    this.all.add(id)
    this.bytes += 2 * postingBytes
  }

  /** Adds a series by its labels. */
  addSeries(id: number, labels: ReadonlyArray<readonly [string, string]>) {
    for (const [name, value] of labels) this.add(name, value, id)
  }

  /** The label names of the bucket's series. */
  names(): Iterable<string> {
    return this.byName.keys()
  }

  /** The values `name` has in the bucket's series. */
  values(name: string): Iterable<string> {
    return this.byName.get(name)?.keys() ?? []
  }

  /** The postings (sorted ids) of the series a matcher that does not match "" selects. */
  private postingsOf(m: Matcher): ReadonlyArray<number> {
    const values = this.byName.get(m.name)
    if (values === undefined) return none
    if (m.type === "=") return values.get(m.value)?.get() ?? none
    const lists: Array<ReadonlyArray<number>> = []
    for (const [value, list] of values) if (matches(m, value)) lists.push(list.get())
    return union(lists)
  }

  /**
   * The ids of the series that may match every matcher, sorted: those in the postings of each matcher
   * that does not match the empty string (equalities first, the shortest list first), or every series of
   * the bucket when all match it. Matchers that match "" are left to the caller, on the series' labels.
   */
  candidates(matchers: ReadonlyArray<Matcher>): ReadonlyArray<number> {
    const narrowing = matchers.filter((m) => !matchesEmpty(m))
    if (narrowing.length === 0) return this.all.get()
    // Equalities are a lookup; regexes and negations walk the name's values: equalities first.
    narrowing.sort((a, b) => (a.type === "=" ? 0 : 1) - (b.type === "=" ? 0 : 1))
    let ids: ReadonlyArray<number> | undefined
    for (const m of narrowing) {
      const p = this.postingsOf(m)
      ids = ids === undefined ? p : p.length < ids.length ? intersect(p, ids) : intersect(ids, p)
      if (ids.length === 0) return none
    }
    return ids!
  }
}
