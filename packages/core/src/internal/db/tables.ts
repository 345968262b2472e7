/**
 * Sorted tables in the object store: writing them, and reading them through the caches. A reader
 * fetches the footer (a ranged GET of the last bytes), then bloom and index in one ranged GET, then only
 * the blocks it needs; metadata and blocks are cached by table id, which is never reused.
 */
import { Effect } from "effect"
import type { ObjectStoreShape } from "../../ObjectStore.ts"
import type { Cache } from "../cache.ts"
import type { Entry } from "../format/entry.ts"
import { CorruptObject } from "../format/errors.ts"
import { bloomMayContain } from "../format/bloom.ts"
import type { BlockHandle, SstBlock, SstBuildOptions, SstFooter, SstInfo } from "../format/sst.ts"
import { blockCompareKey, blockEntry, blockEntryCount, decodeSstBlock, decodeSstBloom, decodeSstFooter, decodeSstIndex, encodeSstInSteps, findBlocks, sstEncodeSliceEntries, sstFooterBytes } from "../format/sst.ts"
import type { OutcomeUnknown, Unavailable } from "../objectStore/model.ts"
import { putOnce } from "./putOnce.ts"
import type { SstRef } from "./manifest.ts"
import type { Cursor, Pending } from "./read.ts"
import { pending } from "./read.ts"

export type ReadError = Unavailable | CorruptObject

export interface TableMeta {
  readonly footer: SstFooter
  readonly index: ReadonlyArray<BlockHandle>
  readonly bloom: Uint8Array
}

export const sstKey = (id: string) => `sst/${id}.sst`

/** A scan fetches up to this many bytes of consecutive blocks in one request. */
const scanReadAheadBytes = 1024 * 1024
/** The second request of a scan reads this much; each later one twice as much, up to `scanReadAheadBytes`. */
const scanReadAheadFirstBytes = 64 * 1024

const hex = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex")
export const fromHex = (s: string) => new Uint8Array(Buffer.from(s, "hex"))

/** A table encoded by an `SstBuilder`, to store. */
export interface BuiltTable {
  readonly bytes: Uint8Array
  readonly info: SstInfo
}

/** A turn of the event loop: a long encoding pauses for it, so as not to hold up every request and ack. */
export const pause: Effect.Effect<void> = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/**
 * A table of `entries` (in `compareEntries` order), built as they come (`encodeSstInSteps`), with a pause
 * every `sstEncodeSliceEntries`: what a flush of hundreds of thousands of entries needs, without holding them.
 */
export const buildTable = (entries: Iterable<Entry>, options: SstBuildOptions, sizeHint?: number): Effect.Effect<BuiltTable> =>
  Effect.gen(function*() {
    const steps = encodeSstInSteps(entries, options, sstEncodeSliceEntries, sizeHint)
    for (;;) {
      const step = steps.next()
      if (step.done === true) return step.value
      yield* pause
    }
  })

export interface Tables {
  /** Stores a built table under `id` (a retry finds its own earlier attempt's object). */
  readonly write: (id: string, table: BuiltTable) => Effect.Effect<SstRef, Unavailable | OutcomeUnknown>
  readonly meta: (ref: SstRef) => Effect.Effect<TableMeta, ReadError>
  /** Versions of `key` in the table, newest first. */
  readonly get: (ref: SstRef, key: Uint8Array) => Effect.Effect<ReadonlyArray<Entry>, ReadError>
  /** Entries with keys in [start, end), in `compareEntries` order, a block at a time. */
  readonly cursor: (ref: SstRef, start: Uint8Array | undefined, end: Uint8Array | undefined) => Cursor<ReadError>
}

export const makeTables = (
  store: ObjectStoreShape,
  caches: { readonly meta: Cache<TableMeta>; readonly blocks: Cache<SstBlock> }
): Tables => {
  const fetch = (ref: SstRef, start: number, end: number) =>
    store.get(sstKey(ref.id), { start, end }).pipe(
      Effect.map((r) => r.body),
      Effect.catchTags({
        NotFound: () => Effect.fail(new CorruptObject({ object: sstKey(ref.id), reason: "table referenced by the manifest is missing" })),
        InvalidRange: () => Effect.fail(new CorruptObject({ object: sstKey(ref.id), reason: "table shorter than the manifest says" })),
        InvalidKey: (e) => Effect.die(e)
      })
    )

  const decode = <A>(f: () => A) =>
    Effect.try({ try: f, catch: (e) => (e instanceof CorruptObject ? e : new CorruptObject({ object: "?", reason: String(e) })) })

  const meta = (ref: SstRef) =>
    caches.meta.getOrLoad(
      ref.id,
      Effect.gen(function*() {
        const object = sstKey(ref.id)
        if (ref.size < sstFooterBytes) return yield* new CorruptObject({ object, reason: "smaller than a footer" })
        const footerBytes = yield* fetch(ref, ref.size - sstFooterBytes, ref.size)
        const footer = yield* decode(() => decodeSstFooter(object, footerBytes, ref.size))
        // The bloom section directly precedes the index: one ranged read gets both.
        const start = footer.bloomOffset
        const end = footer.indexOffset + footer.indexLength
        const both = yield* fetch(ref, start, end)
        const bloom = yield* decode(() => decodeSstBloom(object, both.subarray(0, footer.bloomLength)))
        const index = yield* decode(() => decodeSstIndex(object, both.subarray(footer.indexOffset - start)))
        return { footer, index, bloom }
      })
    )

  const block = (ref: SstRef, handle: BlockHandle) =>
    caches.blocks.getOrLoad(
      `${ref.id}@${handle.offset}`,
      Effect.flatMap(fetch(ref, handle.offset, handle.offset + handle.length), (bytes) =>
        decode(() => decodeSstBlock(sstKey(ref.id), bytes)))
    )

  return {
    write: (id, table) =>
      Effect.gen(function*() {
        const { bytes, info } = table
        // A retry of the same table finds its own object (same put-id) and goes on; another's is a bug.
        const outcome = yield* putOnce(store, sstKey(id), bytes, `t-${id}`)
        if (outcome === "taken") return yield* Effect.die(new Error(`table id reused: ${sstKey(id)}`))
        return {
          id,
          size: info.size,
          entryCount: info.entryCount,
          firstKey: hex(info.firstKey),
          lastKey: hex(info.lastKey),
          minSeq: info.minSeq,
          maxSeq: info.maxSeq
        }
      }),
    meta,
    get: (ref, key) =>
      Effect.gen(function*() {
        const m = yield* meta(ref)
        if (!bloomMayContain(m.bloom, key)) return []
        const end = new Uint8Array(key.length + 1)
        end.set(key)
        const out: Array<Entry> = []
        for (const handle of findBlocks(m.index, key, end)) {
          const b = yield* block(ref, handle)
          for (let i = firstAtOrAfter(b, key); i < blockEntryCount(b) && blockCompareKey(b, i, key) === 0; i++) out.push(blockEntry(b, i))
        }
        return out
      }),
    cursor: (ref, start, end) => {
      let handles: ReadonlyArray<BlockHandle> | undefined
      let blockIndex = 0
      // Blocks fetched ahead: a scan reads consecutive blocks in one request, one block at first, then
      // twice as many bytes each time up to `scanReadAheadBytes`, so a short scan (a seek, a small range)
      // reads and decodes what it needs and a long one few, large requests. Cached blocks are not fetched.
      const ahead: Array<SstBlock> = []
      let current: SstBlock | undefined
      let i = 0
      let aheadBytes = 0
      const fetchAhead = (hs: ReadonlyArray<BlockHandle>) =>
        Effect.gen(function*() {
          // Not cached: `nextSync` takes cached blocks itself.
          const first = hs[blockIndex]!
          let last = blockIndex
          while (last + 1 < hs.length && hs[last + 1]!.offset + hs[last + 1]!.length - first.offset <= aheadBytes) last++
          aheadBytes = aheadBytes === 0 ? scanReadAheadFirstBytes : Math.min(aheadBytes * 2, scanReadAheadBytes)
          if (last === blockIndex) {
            ahead.push(yield* block(ref, first))
            blockIndex += 1
            return
          }
          const lastHandle = hs[last]!
          const bytes = yield* fetch(ref, first.offset, lastHandle.offset + lastHandle.length)
          for (let h = blockIndex; h <= last; h++) {
            const handle = hs[h]!
            const slice = bytes.subarray(handle.offset - first.offset, handle.offset - first.offset + handle.length)
            const decoded = yield* decode(() => decodeSstBlock(sstKey(ref.id), slice))
            // Into the block cache too, so a repeated scan is served from memory.
            ahead.push(yield* caches.blocks.getOrLoad(`${ref.id}@${handle.offset}`, Effect.succeed(decoded)))
          }
          blockIndex = last + 1
        })
      /**
       * The next entry of the blocks in memory (read ahead, or in the caches); `pending` when the table's
       * index or the next block must be read first. A block is entered at the first key >= start.
       */
      const nextSync = (): Entry | undefined | Pending => {
        if (handles === undefined) {
          const m = caches.meta.peek(ref.id)
          if (m === undefined) return pending
          handles = findBlocks(m.index, start, end)
        }
        for (;;) {
          if (current !== undefined && i < blockEntryCount(current)) {
            // Entered at the first key >= start, and keys only grow: only the end needs checking.
            if (end !== undefined && blockCompareKey(current, i, end) >= 0) {
              i = blockEntryCount(current)
              blockIndex = handles.length
              ahead.length = 0
              return undefined
            }
            return blockEntry(current, i++)
          }
          if (ahead.length === 0) {
            if (blockIndex >= handles.length) return undefined
            const cached = caches.blocks.peek(`${ref.id}@${handles[blockIndex]!.offset}`)
            if (cached === undefined) return pending
            ahead.push(cached)
            blockIndex += 1
          }
          current = ahead.shift()!
          i = start === undefined ? 0 : firstAtOrAfter(current, start)
        }
      }
      return {
        nextSync,
        next: Effect.gen(function*() {
          if (handles === undefined) handles = findBlocks((yield* meta(ref)).index, start, end)
          for (;;) {
            const e = nextSync()
            if (e !== pending) return e
            yield* fetchAhead(handles)
          }
        })
      }
    }
  }
}

/** The first position of `block` (in key order) whose key is >= `key`. */
const firstAtOrAfter = (block: SstBlock, key: Uint8Array): number => {
  let lo = 0
  let hi = blockEntryCount(block)
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (blockCompareKey(block, mid, key) < 0) lo = mid + 1
    else hi = mid
  }
  return lo
}

/**
 * A cursor over tables of a sorted run, one after the other, over [start, end): the caller passes the
 * run's tables that meet the range (`tablesInRange` in `readPath.ts`), or all of them.
 */
export const runCursor = (tables: Tables, inRange: ReadonlyArray<SstRef>, start: Uint8Array | undefined, end: Uint8Array | undefined): Cursor<ReadError> => {
  let i = 0
  let current: Cursor<ReadError> | undefined
  return {
    nextSync: () => {
      for (;;) {
        if (current === undefined) {
          if (i >= inRange.length) return undefined
          current = tables.cursor(inRange[i++]!, start, end)
        }
        const e = current.nextSync()
        if (e !== undefined) return e
        current = undefined
      }
    },
    next: Effect.gen(function*() {
      for (;;) {
        if (current === undefined) {
          if (i >= inRange.length) return undefined
          current = tables.cursor(inRange[i++]!, start, end)
        }
        const e = yield* current.next
        if (e !== undefined) return e
        current = undefined
      }
    })
  }
}
