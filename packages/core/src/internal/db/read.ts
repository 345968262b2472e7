/**
 * The read path's pure parts: resolving the versions of one key (newest first) into a value, with the
 * product's merge operator; cursors over sorted entries; and a k-way merge of cursors in
 * `compareEntries` order.
 */
import { Effect } from "effect"
import { compareBytes } from "../format/bytes.ts"
import type { Entry } from "../format/entry.ts"
import { compareEntries } from "../format/entry.ts"

/**
 * Combines merge operands into a value. `existing` is the value below the operands (undefined if the key
 * had none or was deleted); `operands` are oldest first. Must be deterministic.
 */
export type MergeOperator = (key: Uint8Array, existing: Uint8Array | undefined, operands: ReadonlyArray<Uint8Array>) => Uint8Array

/** The value of a key from its versions, newest first; `undefined` if absent or deleted. */
export const resolveVersions = (
  key: Uint8Array,
  versions: Iterable<Entry>,
  merge: MergeOperator | undefined
): Uint8Array | undefined => {
  const operands: Array<Uint8Array> = []
  let base: Uint8Array | undefined
  for (const v of versions) {
    if (v.kind === "merge") {
      operands.push(v.value)
      continue
    }
    if (v.kind === "put") base = v.value
    break
  }
  if (operands.length === 0) return base
  if (merge === undefined) throw new Error("a merge entry was written but the Db has no merge operator")
  return merge(key, base, operands.reverse())
}

/** What `Cursor.nextSync` answers when the next entry needs I/O: run `next` instead. */
export const pending: unique symbol = Symbol("pending")
export type Pending = typeof pending

/**
 * Pulls entries one at a time, in `compareEntries` order; `undefined` at the end. `nextSync` answers
 * without an effect whenever the entry is in memory (a loaded block, a memtable), or `pending` (having
 * consumed nothing) when it needs I/O: a scan runs one effect per block read, not one per entry.
 */
export interface Cursor<E> {
  readonly nextSync: () => Entry | undefined | Pending
  readonly next: Effect.Effect<Entry | undefined, E>
}

export const cursorFromIterator = (it: Iterator<Entry>): Cursor<never> => {
  const nextSync = () => {
    const r = it.next()
    return r.done === true ? undefined : r.value
  }
  return { nextSync, next: Effect.sync(nextSync) }
}

/**
 * Merges cursors into one, in `compareEntries` order. Sequence numbers are unique, so equal entries
 * cannot come from two cursors.
 */
export const mergeCursors = <E>(cursors: ReadonlyArray<Cursor<E>>): Cursor<E> => {
  const heads: Array<{ entry: Entry; source: number }> = []
  let started = false
  const push = (item: { entry: Entry; source: number }) => {
    heads.push(item)
    let i = heads.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (compareEntries(heads[parent]!.entry, heads[i]!.entry) <= 0) break
      ;[heads[parent], heads[i]] = [heads[i]!, heads[parent]!]
      i = parent
    }
  }
  const pop = () => {
    const top = heads[0]!
    const last = heads.pop()!
    if (heads.length > 0) {
      heads[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < heads.length && compareEntries(heads[l]!.entry, heads[m]!.entry) < 0) m = l
        if (r < heads.length && compareEntries(heads[r]!.entry, heads[m]!.entry) < 0) m = r
        if (m === i) break
        ;[heads[m], heads[i]] = [heads[i]!, heads[m]!]
        i = m
      }
    }
    return top
  }
  /** The source whose next entry is still to go into the heap (the one the last entry came from). */
  let refill = -1
  const take = (): Entry | undefined => {
    if (heads.length === 0) return undefined
    const top = pop()
    refill = top.source
    return top.entry
  }
  const nextSync = (): Entry | undefined | Pending => {
    if (!started) return pending
    if (refill >= 0) {
      const entry = cursors[refill]!.nextSync()
      if (entry === pending) return pending
      if (entry !== undefined) push({ entry, source: refill })
      refill = -1
    }
    return take()
  }
  return {
    nextSync,
    next: Effect.gen(function*() {
      if (!started) {
        started = true
        for (let i = 0; i < cursors.length; i++) {
          const entry = yield* cursors[i]!.next
          if (entry !== undefined) push({ entry, source: i })
        }
      }
      if (refill >= 0) {
        const entry = yield* cursors[refill]!.next
        if (entry !== undefined) push({ entry, source: refill })
        refill = -1
      }
      return take()
    })
  }
}

/** A resolved key-value pair. */
export interface KeyValue {
  readonly key: Uint8Array
  readonly value: Uint8Array
}

/**
 * Where a scan of a merged cursor stands between pages: `pending` is the first entry of the next key,
 * `versions` the versions of the key being gathered when the cursor needed I/O, and `loaded` the entry
 * that I/O brought (taken before the cursor's next).
 */
export interface ResolveState {
  pending: Entry | undefined
  done: boolean
  versions?: Array<Entry> | undefined
  loaded?: { readonly entry: Entry | undefined } | undefined
}

export const resolveState = (): ResolveState => ({ pending: undefined, done: false })

/**
 * Resolves pairs into `out` (up to `limit`) while the cursor answers from memory; "io" when it needs a
 * read first (nothing consumed that is not kept in `state`), "ok" otherwise.
 */
const resolveSync = <E>(
  cursor: Cursor<E>,
  state: ResolveState,
  seqMax: number,
  merge: MergeOperator | undefined,
  limit: number,
  out: Array<KeyValue>
): "ok" | "io" => {
  const pull = (): Entry | undefined | Pending => {
    const loaded = state.loaded
    if (loaded === undefined) return cursor.nextSync()
    state.loaded = undefined
    return loaded.entry
  }
  while (out.length < limit && !state.done) {
    // A key's versions: an array only once it has a second one (or a read comes between them); a key
    // with one version, the usual case, allocates nothing but its answer.
    let versions = state.versions
    let first: Entry
    if (versions === undefined) {
      const next = state.pending ?? pull()
      if (next === pending) return "io"
      state.pending = undefined
      if (next === undefined) {
        state.done = true
        break
      }
      first = next
    } else {
      first = versions[0]!
    }
    const key = first.key
    for (;;) {
      const e = pull()
      if (e === pending) {
        state.versions = versions ?? [first]
        return "io"
      }
      if (e === undefined) {
        state.done = true
        break
      }
      if (compareBytes(e.key, key) !== 0) {
        state.pending = e
        break
      }
      versions ??= [first]
      versions.push(e)
    }
    state.versions = undefined
    let value: Uint8Array | undefined
    if (versions === undefined) {
      if (first.seq <= seqMax) value = first.kind === "put" ? first.value : first.kind === "merge" ? resolveVersions(key, [first], merge) : undefined
    } else {
      value = resolveVersions(key, versions.filter((v) => v.seq <= seqMax), merge)
    }
    if (value !== undefined) out.push({ key, value })
  }
  return "ok"
}

/**
 * Reads up to `limit` resolved pairs from a merged cursor: versions above `seqMax` are skipped, the rest
 * of each key's versions resolved. Synchronous while the cursor answers from memory (loaded blocks,
 * memtables); one effect per read it needs.
 */
export const resolveBatch = <E>(
  cursor: Cursor<E>,
  state: ResolveState,
  seqMax: number,
  merge: MergeOperator | undefined,
  limit: number
): Effect.Effect<Array<KeyValue>, E> => {
  const out: Array<KeyValue> = []
  const step = (): Effect.Effect<Array<KeyValue>, E> => {
    if (resolveSync(cursor, state, seqMax, merge, limit, out) === "ok") return Effect.succeed(out)
    return Effect.flatMap(cursor.next, (entry) => {
      state.loaded = { entry }
      return step()
    })
  }
  return Effect.suspend(step)
}
