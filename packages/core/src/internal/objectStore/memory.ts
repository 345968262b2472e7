/**
 * The memory driver: the port's reference semantics. Every operation is atomic (JavaScript runs one
 * operation at a time and none of them yields midway), keys list in UTF-8 byte order, and every write
 * gets a fresh etag, so an if-match never succeeds against a version it did not see.
 */
import { Clock, Effect } from "effect"
import { compareKeys } from "./keys.ts"
import type { ByteRange, Driver, GetResult, InvalidRange, ListEntry, ObjectMeta } from "./model.ts"
import { AlreadyExists, NotFound, PreconditionFailed, sliceRange } from "./model.ts"

interface Stored {
  readonly meta: ObjectMeta
  readonly body: Uint8Array
}

export const makeMemoryDriver = (): Driver => {
  const objects = new Map<string, Stored>()
  let sortedKeys: Array<string> | undefined
  let generation = 0

  /**
   * Stores the object if `allowed` holds when it is stored: the condition is checked in the same
   * synchronous step as the write (a check in one effect and the write in another would let another
   * fiber's conditional write run in between, and both succeed).
   */
  const store = <E>(key: string, body: Uint8Array, putId: string, refused?: () => E | undefined) =>
    Effect.flatMap(Clock.currentTimeMillis, (now): Effect.Effect<{ readonly etag: string; readonly putId: string }, E> => {
      const refusal = refused?.()
      if (refusal !== undefined) return Effect.fail(refusal)
      generation += 1
      const meta: ObjectMeta = {
        key,
        size: body.length,
        etag: `m${generation.toString(16).padStart(8, "0")}`,
        lastModifiedMs: now,
        putId
      }
      if (!objects.has(key)) sortedKeys = undefined
      // Copy: the caller may reuse its buffer, and the store must not see later changes.
      objects.set(key, { meta, body: body.slice() })
      return Effect.succeed({ etag: meta.etag, putId })
    })

  const keysInOrder = (): Array<string> => {
    if (sortedKeys === undefined) sortedKeys = [...objects.keys()].sort(compareKeys)
    return sortedKeys
  }

  return {
    name: "memory",
    get: (key: string, range: ByteRange | undefined) =>
      Effect.suspend((): Effect.Effect<GetResult, NotFound | InvalidRange> => {
        const found = objects.get(key)
        if (found === undefined) return Effect.fail(new NotFound({ key }))
        const slice = sliceRange(key, found.body, range)
        if ("_tag" in slice) return Effect.fail(slice)
        return Effect.succeed({ meta: found.meta, body: found.body.slice(slice.start, slice.end) })
      }),
    head: (key) =>
      Effect.suspend(() => {
        const found = objects.get(key)
        return found === undefined ? Effect.fail(new NotFound({ key })) : Effect.succeed(found.meta)
      }),
    put: (key, body, putId) => store(key, body, putId),
    putIfAbsent: (key, body, putId) => store(key, body, putId, () => (objects.has(key) ? new AlreadyExists({ key }) : undefined)),
    putIfMatch: (key, body, etag, putId) =>
      store(key, body, putId, () => (objects.get(key)?.meta.etag === etag ? undefined : new PreconditionFailed({ key, expectedEtag: etag }))),
    listPage: (prefix, startAfter, limit) =>
      Effect.sync(() => {
        const keys = keysInOrder()
        // Binary search for the first key past both the prefix start and `startAfter`.
        const from = startAfter !== undefined && compareKeys(startAfter, prefix) >= 0 ? startAfter : undefined
        let lo = 0
        let hi = keys.length
        while (lo < hi) {
          const mid = (lo + hi) >>> 1
          const k = keys[mid]!
          const before = from === undefined ? compareKeys(k, prefix) < 0 : compareKeys(k, from) <= 0
          if (before) lo = mid + 1
          else hi = mid
        }
        const entries: Array<ListEntry> = []
        let i = lo
        for (; i < keys.length && entries.length < limit; i++) {
          const key = keys[i]!
          if (!key.startsWith(prefix)) break
          const { meta } = objects.get(key)!
          entries.push({ key, size: meta.size, etag: meta.etag, lastModifiedMs: meta.lastModifiedMs })
        }
        const more = i < keys.length && keys[i]!.startsWith(prefix)
        return { entries, next: more ? entries.at(-1)?.key : undefined }
      }),
    delete: (key) =>
      Effect.sync(() => {
        if (objects.delete(key)) sortedKeys = undefined
      })
  }
}
