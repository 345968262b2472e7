/**
 * Locks by key: `withLock(key, effect)` runs `effect` while no other `withLock` of the same key runs,
 * waiters in arrival order. A key's lock exists only while someone holds it or waits for it, so a map of
 * millions of keys costs nothing once they are idle. Shared by the object stores and the products.
 */
import { Effect, Semaphore } from "effect"

export interface KeyedLock {
  /** Runs `self` holding `key`'s lock. */
  readonly withLock: <A, E, R>(key: string, self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Whether `key`'s lock is held or waited for now. */
  readonly isBusy: (key: string) => boolean
}

export const make = (): KeyedLock => {
  const locks = new Map<string, { readonly semaphore: Semaphore.Semaphore; users: number }>()
  return {
    withLock: (key, self) =>
      Effect.acquireUseRelease(
        Effect.sync(() => {
          let lock = locks.get(key)
          if (lock === undefined) {
            lock = { semaphore: Semaphore.makeUnsafe(1), users: 0 }
            locks.set(key, lock)
          }
          lock.users += 1
          return lock
        }),
        (lock) => lock.semaphore.withPermit(self),
        (lock) =>
          Effect.sync(() => {
            lock.users -= 1
            if (lock.users === 0) locks.delete(key)
          })
      ),
    isBusy: (key) => locks.has(key)
  }
}
