/**
 * Series ids by label set, in memory, for the write path: a 32-bit hash of the labels finds the entries,
 * and the labels are compared to tell collisions apart. Building no string per lookup keeps the hot path
 * free of allocation (a canonical string per series per request was the write path's largest cost).
 */
import type { Labels } from "./labels.ts"

interface Entry {
  readonly labels: Labels
  readonly id: number
}

/** FNV-1a over the names and values, each followed by a separator no label contains at that place. */
export const hash32 = (labels: Labels): number => {
  let h = 0x811c9dc5
  for (let p = 0; p < labels.length; p++) {
    const [name, value] = labels[p]!
    for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193)
    h = Math.imul(h ^ 0xffff, 0x01000193)
    for (let i = 0; i < value.length; i++) h = Math.imul(h ^ value.charCodeAt(i), 0x01000193)
    // The value's length ends it: values may hold any character.
    h = Math.imul(h ^ (value.length + 0x10000), 0x01000193)
  }
  return h >>> 0
}

const sameLabels = (a: Labels, b: Labels): boolean => {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) {
    if (a[i]![0] !== b[i]![0] || a[i]![1] !== b[i]![1]) return false
  }
  return true
}

export class SeriesLookup {
  private readonly byHash = new Map<number, Entry | Array<Entry>>()
  private entries = 0

  get size(): number {
    return this.entries
  }

  get(labels: Labels, hash: number): number | undefined {
    const found = this.byHash.get(hash)
    if (found === undefined) return undefined
    if (!Array.isArray(found)) return sameLabels(found.labels, labels) ? found.id : undefined
    for (const e of found) if (sameLabels(e.labels, labels)) return e.id
    return undefined
  }

  set(labels: Labels, hash: number, id: number): void {
    const found = this.byHash.get(hash)
    if (found === undefined) {
      this.byHash.set(hash, { labels, id })
      this.entries++
      return
    }
    const list = Array.isArray(found) ? found : [found]
    const at = list.findIndex((e) => sameLabels(e.labels, labels))
    if (at >= 0) list[at] = { labels, id }
    else {
      list.push({ labels, id })
      this.entries++
    }
    if (!Array.isArray(found)) this.byHash.set(hash, list)
  }

  delete(labels: Labels, hash: number): void {
    const found = this.byHash.get(hash)
    if (found === undefined) return
    if (!Array.isArray(found)) {
      if (sameLabels(found.labels, labels)) {
        this.byHash.delete(hash)
        this.entries--
      }
      return
    }
    const rest = found.filter((e) => !sameLabels(e.labels, labels))
    this.entries -= found.length - rest.length
    if (rest.length === 0) this.byHash.delete(hash)
    else this.byHash.set(hash, rest.length === 1 ? rest[0]! : rest)
  }

  clear(): void {
    this.byHash.clear()
    this.entries = 0
  }

  /** Drops entries, the first added first, until at most `max` remain. */
  trim(max: number): void {
    for (const [hash, found] of this.byHash) {
      if (this.entries <= max) return
      this.byHash.delete(hash)
      this.entries -= Array.isArray(found) ? found.length : 1
    }
  }
}
