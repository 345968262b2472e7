/**
 * Exemplars, as Prometheus keeps them: one circular buffer of at most `capacity` exemplars for the whole
 * TSDB, each series' exemplars chained in the order they came, oldest overwritten first. An exemplar is
 * refused when its labels are over 128 characters (names and values together) or not valid label names,
 * when the series already has a newer one or one at the same time, or its time is before the epoch (out
 * of order), and silently dropped when it repeats the series' newest exactly (a duplicate, e.g. from a
 * retried request).
 *
 * The buffer decides; the Db keeps what it holds (`e<series id><timestamp>` -> value and labels), written in
 * the same batch as the request's samples (so a durable acknowledgement covers them) and deleted when the
 * buffer overwrites them. Queries read the Db, so every process (a reader role too) serves them.
 */
import type { Labels } from "./labels.ts"

export interface Exemplar {
  readonly labels: Labels
  readonly value: number
  readonly timestampMs: number
}

/** Prometheus's `exemplar.ExemplarMaxLabelSetLength`: characters of all names and values together. */
export const labelSetCharsMax = 128

export type Refusal = "invalid labels" | "labels too long" | "out of order" | "duplicate"

interface Slot {
  readonly seriesId: number
  readonly exemplar: Exemplar
  /** The next slot of the same series (newer), or -1. */
  next: number
}

/** How many characters (code points) a string has, as Go's `utf8.RuneCountInString`. */
const chars = (s: string) => {
  let n = 0
  for (const _ of s) n++
  return n
}

const sameLabels = (a: Labels, b: Labels) => a.length === b.length && a.every(([n, v], i) => b[i]![0] === n && b[i]![1] === v)

/**
 * Why `e` cannot follow `newest` (the series' newest exemplar, if any) in the buffer, or undefined if it
 * can: labels over `labelSetCharsMax` characters or not valid label names, a duplicate of the newest, or
 * not after it (out of order).
 */
export const refusal = (newest: Exemplar | undefined, e: Exemplar): Refusal | undefined => {
  let n = 0
  for (const [name, value] of e.labels) {
    if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(name)) return "invalid labels"
    n += chars(name) + chars(value)
  }
  if (n > labelSetCharsMax) return "labels too long"
  // A time before the epoch (or not a whole number of ms) cannot be kept: refused as out of order.
  if (!Number.isSafeInteger(e.timestampMs) || e.timestampMs < 0) return "out of order"
  if (newest === undefined) return undefined
  if (newest.timestampMs === e.timestampMs && Object.is(newest.value, e.value) && sameLabels(newest.labels, e.labels)) return "duplicate"
  if (e.timestampMs <= newest.timestampMs) return "out of order"
  return undefined
}

export class ExemplarRing {
  readonly capacity: number
  private readonly slots: Array<Slot | undefined>
  /** The next slot to write. */
  private head = 0
  /** Per series: its oldest and newest slots. */
  private readonly bySeries = new Map<number, { oldest: number; newest: number }>()

  constructor(capacity: number) {
    this.capacity = capacity
    this.slots = new Array<Slot | undefined>(capacity)
  }

  get size() {
    let n = 0
    for (const s of this.slots) if (s !== undefined) n++
    return n
  }

  /** The newest exemplar of a series, if it has any. */
  newest(seriesId: number): Exemplar | undefined {
    const chain = this.bySeries.get(seriesId)
    return chain === undefined ? undefined : this.slots[chain.newest]!.exemplar
  }

  /** The exemplars the next `n` adds (n <= capacity) overwrite, with their series: the oldest in the buffer. */
  overwrittenBy(n: number): Array<{ readonly seriesId: number; readonly exemplar: Exemplar }> {
    const out: Array<{ readonly seriesId: number; readonly exemplar: Exemplar }> = []
    for (let i = 0; i < Math.min(n, this.capacity); i++) {
      const slot = this.slots[(this.head + i) % this.capacity]
      if (slot !== undefined) out.push({ seriesId: slot.seriesId, exemplar: slot.exemplar })
    }
    return out
  }

  /**
   * Adds an exemplar `refusal` accepted; answers the exemplar it overwrote (the oldest in the buffer, with
   * its series), if the buffer was full.
   */
  add(seriesId: number, e: Exemplar): { readonly seriesId: number; readonly exemplar: Exemplar } | undefined {
    if (this.capacity === 0) return undefined
    const at = this.head
    this.head = (this.head + 1) % this.capacity
    const old = this.slots[at]
    if (old !== undefined) {
      // The overwritten slot is its series' oldest: the series' chain starts at the next one.
      const chain = this.bySeries.get(old.seriesId)!
      if (old.next === -1) this.bySeries.delete(old.seriesId)
      else chain.oldest = old.next
    }
    this.slots[at] = { seriesId, exemplar: e, next: -1 }
    const chain = this.bySeries.get(seriesId)
    if (chain === undefined) this.bySeries.set(seriesId, { oldest: at, newest: at })
    else {
      this.slots[chain.newest]!.next = at
      chain.newest = at
    }
    return old === undefined ? undefined : { seriesId: old.seriesId, exemplar: old.exemplar }
  }

  /** The exemplars of a series, oldest first. */
  of(seriesId: number): Array<Exemplar> {
    const out: Array<Exemplar> = []
    const chain = this.bySeries.get(seriesId)
    for (let i = chain === undefined ? -1 : chain.oldest; i !== -1; i = this.slots[i]!.next) out.push(this.slots[i]!.exemplar)
    return out
  }
}

// -------------------------------------------------------------------------------------------------
// Stored form: the value as 8 bytes, then the labels as JSON.
// -------------------------------------------------------------------------------------------------

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export const encodeExemplar = (e: Exemplar): Uint8Array => {
  const labels = encoder.encode(JSON.stringify(e.labels))
  const out = new Uint8Array(8 + labels.length)
  new DataView(out.buffer).setFloat64(0, e.value)
  out.set(labels, 8)
  return out
}

export const decodeExemplar = (timestampMs: number, bytes: Uint8Array): Exemplar => ({
  timestampMs,
  value: new DataView(bytes.buffer, bytes.byteOffset, 8).getFloat64(0),
  labels: JSON.parse(decoder.decode(bytes.subarray(8))) as Labels
})
