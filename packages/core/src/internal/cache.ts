/**
 * A byte-bounded cache with single-flight loading: concurrent misses on one key run one load and share
 * its result; a failed load is not cached. Hits, misses, loads and evictions are counted.
 *
 * Eviction is CLOCK (second chance), the approximation of least-recently-used that buffer pools use: a hit
 * only marks its entry as used; when room is needed, the oldest entry goes unless it was used since it was
 * last looked at, in which case it is unmarked and goes to the back. A hit costs a flag, where moving the
 * entry to the back of the map on every hit (strict LRU) cost a delete and an insert per block a scan read
 * (8% of a long range query's time).
 */
import { Deferred, Effect, Exit } from "effect"

export interface CacheStats {
  readonly hits: number
  readonly misses: number
  readonly loads: number
  readonly evictions: number
  readonly bytes: number
  readonly entries: number
  /** The bound on `bytes`. */
  readonly capacityBytes: number
}

export interface Cache<V> {
  readonly getOrLoad: <E>(key: string, load: Effect.Effect<V, E>) => Effect.Effect<V, E>
  /** The value if it is cached (a hit, now the most recently used), else undefined (no load, no miss). */
  readonly peek: (key: string) => V | undefined
  readonly invalidate: (key: string) => void
  readonly stats: () => CacheStats
}

export const makeCache = <V>(options: {
  /** Total `sizeOf` of the values kept. A value larger than this is returned but not kept. */
  readonly capacityBytes: number
  readonly sizeOf: (value: V) => number
}): Cache<V> => {
  // A Map iterates in insertion order: the first key is the oldest (or the longest since its second chance).
  const values = new Map<string, { readonly value: V; readonly bytes: number; used: boolean }>()
  const inflight = new Map<string, Deferred.Deferred<V, unknown>>()
  let bytes = 0
  let hits = 0
  let misses = 0
  let loads = 0
  let evictions = 0

  const keep = (key: string, value: V) => {
    const size = options.sizeOf(value)
    if (size > options.capacityBytes) return
    const old = values.get(key)
    if (old !== undefined) {
      bytes -= old.bytes
      values.delete(key)
    }
    values.set(key, { value, bytes: size, used: false })
    bytes += size
    while (bytes > options.capacityBytes) {
      const [oldest, entry] = values.entries().next().value!
      values.delete(oldest)
      if (entry.used && oldest !== key) {
        // Its second chance: to the back, unmarked.
        entry.used = false
        values.set(oldest, entry)
        continue
      }
      bytes -= entry.bytes
      evictions += 1
    }
  }

  const cache: Cache<V> = {
    getOrLoad: <E>(key: string, load: Effect.Effect<V, E>): Effect.Effect<V, E> =>
      Effect.suspend(() => {
        const found = values.get(key)
        if (found !== undefined) {
          hits += 1
          found.used = true
          return Effect.succeed(found.value)
        }
        misses += 1
        const pending = inflight.get(key)
        if (pending !== undefined) {
          // If the loading fiber was interrupted, its waiters load again rather than inherit the interruption.
          return Effect.catchIf(
            Deferred.await(pending) as Effect.Effect<V, E | typeof loaderInterrupted>,
            (e): e is typeof loaderInterrupted => e === loaderInterrupted,
            () => cache.getOrLoad(key, load)
          )
        }
        const deferred = Deferred.makeUnsafe<V, unknown>()
        inflight.set(key, deferred)
        loads += 1
        return load.pipe(
          Effect.onExit((exit) =>
            Effect.sync(() => {
              inflight.delete(key)
              if (Exit.isSuccess(exit)) keep(key, exit.value)
            }).pipe(
              Effect.andThen(
                Deferred.done(deferred, Exit.hasInterrupts(exit) ? Exit.fail(loaderInterrupted) : (exit as Exit.Exit<V, unknown>))
              )
            )
          )
        )
      }),
    peek: (key) => {
      const found = values.get(key)
      if (found === undefined) return undefined
      hits += 1
      found.used = true
      return found.value
    },
    invalidate: (key) => {
      const old = values.get(key)
      if (old !== undefined) {
        values.delete(key)
        bytes -= old.bytes
      }
    },
    stats: () => ({ hits, misses, loads, evictions, bytes, entries: values.size, capacityBytes: options.capacityBytes })
  }
  return cache
}

const loaderInterrupted = Symbol("loaderInterrupted")
