/**
 * Group commit for the EventStore's writes: every decision (an append, a trim's batch, a metadata update)
 * adds its Db ops to the open group synchronously, and one writer fiber hands each group to the Db as ONE
 * atomic `Db.write`, so the Db sees one write (one effect, one sequence range) per group rather than one per
 * append, and in exactly the order the decisions were taken.
 *
 * A group is closed when the writer takes it (at once when the writer is idle: a lone append waits for no
 * timer) or when the next decision would take it past `appendGroupBytesMax` (a decision is never split).
 * While the Db pushes back (its unflushed budget is spent), closed groups queue here up to
 * `appendQueuedBytesMax`; past that, `hasRoom` is false and writers wait in `awaitRoom`: backpressure,
 * never unbounded memory.
 *
 * The overlay: the value each key was last given by a write that is not durable yet (Db reads see only
 * durable writes). An entry is removed when its group settles, not when its caller stops waiting: an
 * append given up on still lands, and the next decision on its log must see it.
 */
import { Cause, Deferred, Effect, Exit, Fiber, Option, Scope } from "effect"
import type { Db as CoreDb } from "@opendata/core"
import { Unavailable } from "../EventStore.ts"
import * as Limits from "../limits.ts"

export interface Group {
  readonly ops: Array<CoreDb.WriteOp>
  bytes: number
  /** Whether every op's buffers were made for it (then the Db keeps them rather than copying). */
  fresh: boolean
  /** The overlay keys this group set. */
  readonly keys: Array<string>
  /** Settles once the group is durable (or failed). */
  readonly done: Deferred.Deferred<void, Unavailable>
  /** How it settled: undefined until then; null when durable, else the failure. */
  outcome: Unavailable | null | undefined
  /** Called (synchronously) when it settles. */
  listeners: Array<(failure: Unavailable | undefined) => void> | undefined
}

/** Calls `callback` when `group` settles (at once if it has): `undefined` when durable, else the failure. */
export const whenSettled = (group: Group, callback: (failure: Unavailable | undefined) => void) => {
  if (group.outcome !== undefined) callback(group.outcome ?? undefined)
  else (group.listeners ??= []).push(callback)
}

/** A key's value in a write not yet durable (undefined: a delete). */
export interface Pending {
  readonly value: Uint8Array | undefined
  readonly group: Group
}

export interface Remembered {
  /** The overlay key (`overlayKey` of the Db key). */
  readonly key: string
  readonly value: Uint8Array | undefined
}

export interface GroupWriter {
  readonly overlay: ReadonlyMap<string, Pending>
  /** Whether a decision may add to the open group without waiting (the queued groups are under their bound). */
  readonly hasRoom: () => boolean
  /** Waits until `hasRoom`, or fails once the writer has closed. */
  readonly awaitRoom: Effect.Effect<void, Unavailable>
  /**
   * Adds one decision's ops (`bytes` as the Db counts them) to the open group, remembering `remember` in the
   * overlay; returns the group. Synchronous: the caller decided under the state this module's order keeps.
   * `fresh`: the ops' keys and values were made for this write and are never changed (nor views of
   * buffers something else holds), so the Db may keep them without a copy.
   */
  readonly add: (ops: ReadonlyArray<CoreDb.WriteOp>, bytes: number, remember: ReadonlyArray<Remembered>, fresh?: boolean) => Group
  /** Fails adds from now on (the store is closing). */
  readonly isClosed: () => boolean
  /** Waits until every group added so far has settled (fails if one of them failed). */
  readonly awaitSettled: Effect.Effect<void, Unavailable>
}

/** The bytes `Db.write` counts for an op. */
export const opBytes = (key: Uint8Array, value: Uint8Array | undefined) => key.length + (value === undefined ? 0 : value.length) + 16

/** The overlay key of a Db key. */
export const overlayKey = (k: Uint8Array) => Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString("latin1")

const closedError = new Unavailable({ reason: "the event store is closed" })

const failed = (cause: Cause.Cause<unknown>): Exit.Exit<never, Unavailable> => {
  const error = Cause.squash(cause)
  return Exit.fail(new Unavailable({ reason: error instanceof Error ? error.message : String(error) }))
}

/**
 * Starts the writer in `scope`. `onFailed` runs (synchronously) when a group could not be written or made
 * durable: whatever the caller cached from decisions may now be ahead of storage.
 */
export const makeGroupWriter = (
  db: CoreDb.DbShape,
  scope: Scope.Scope,
  onFailed: () => void
): Effect.Effect<GroupWriter> =>
  Effect.gen(function*() {
    const overlay = new Map<string, Pending>()
    /** Closed groups, oldest first, not yet handed to the Db. */
    const queue: Array<Group> = []
    let open: Group | undefined
    /** The newest group: groups settle in order, so once it has, every one before it has. */
    let last: Group | undefined
    /** Bytes of the open and queued groups. */
    let queuedBytes = 0
    let closed = false
    let wakeWriter: Deferred.Deferred<void> | undefined
    let roomFreed: Deferred.Deferred<void> | undefined

    const newGroup = (): Group => ({
      ops: [],
      bytes: 0,
      fresh: true,
      keys: [],
      done: Deferred.makeUnsafe<void, Unavailable>(),
      outcome: undefined,
      listeners: undefined
    })

    const settle = (group: Group, exit: Exit.Exit<void, Unavailable>) => {
      for (const k of group.keys) {
        if (overlay.get(k)?.group === group) overlay.delete(k)
      }
      if (group.outcome !== undefined) return
      if (Exit.isFailure(exit)) onFailed()
      const failure = Exit.isFailure(exit) ? (Option.getOrUndefined(Exit.findErrorOption(exit)) ?? closedError) : undefined
      group.outcome = failure ?? null
      Deferred.doneUnsafe(group.done, exit)
      const listeners = group.listeners
      group.listeners = undefined
      if (listeners !== undefined) for (const listener of listeners) listener(failure)
    }

    const add = (ops: ReadonlyArray<CoreDb.WriteOp>, bytes: number, remember: ReadonlyArray<Remembered>, fresh = false): Group => {
      if (open !== undefined && open.ops.length > 0 && open.bytes + bytes > Limits.appendGroupBytesMax) {
        queue.push(open)
        open = undefined
      }
      const group = open ?? (open = newGroup())
      last = group
      for (const op of ops) group.ops.push(op)
      group.bytes += bytes
      group.fresh &&= fresh
      queuedBytes += bytes
      for (const r of remember) {
        overlay.set(r.key, { value: r.value, group })
        group.keys.push(r.key)
      }
      if (closed) {
        // Nothing takes it any more: the decision fails rather than waits forever.
        open = undefined
        queuedBytes -= group.bytes
        settle(group, Exit.fail(closedError))
      } else if (wakeWriter !== undefined) {
        const wake = wakeWriter
        wakeWriter = undefined
        Deferred.doneUnsafe(wake, Exit.void)
      }
      return group
    }

    const hasRoom = () => queuedBytes < Limits.appendQueuedBytesMax

    const awaitRoom: Effect.Effect<void, Unavailable> = Effect.suspend(() => {
      if (closed) return Effect.fail(closedError)
      if (hasRoom()) return Effect.void
      const freed = roomFreed ?? (roomFreed = Deferred.makeUnsafe<void>())
      return Effect.andThen(Deferred.await(freed), awaitRoom)
    })

    const freeRoom = (bytes: number) => {
      queuedBytes -= bytes
      if (roomFreed !== undefined && (hasRoom() || closed)) {
        const freed = roomFreed
        roomFreed = undefined
        Deferred.doneUnsafe(freed, Exit.void)
      }
    }

    /** Settles a group once the Db says its write is durable. */
    const awaitDurable = (group: Group, durable: Effect.Effect<void, CoreDb.DbError>) =>
      Effect.flatMap(Effect.exit(durable), (exit) => Effect.sync(() => settle(group, Exit.isSuccess(exit) ? Exit.void : failed(exit.cause))))

    const writer: Effect.Effect<void> = Effect.gen(function*() {
      for (;;) {
        const group = queue.shift() ?? open
        if (group === undefined) {
          if (closed) return
          wakeWriter = Deferred.makeUnsafe<void>()
          yield* Deferred.await(wakeWriter)
          // Let the fibers already runnable (producers answered by the last durable write) decide first:
          // their appends join this group rather than each making its own.
          yield* Effect.yieldNow
          continue
        }
        if (group === open) open = undefined
        // The Db queues all or nothing; an interrupted writer (the store's scope closing without a drain)
        // leaves the group unsettled, and its callers' waits end with their own scopes.
        const written = yield* Effect.exit(db.write(group.ops, { awaitDurable: false, handOver: group.fresh }))
        freeRoom(group.bytes)
        if (Exit.isFailure(written)) {
          settle(group, failed(written.cause))
          continue
        }
        yield* Effect.forkDetach(awaitDurable(group, written.value.durable))
      }
    })
    const fiber = yield* Effect.forkIn(writer, scope)

    // Closing: no new decisions; what was decided is handed to the Db (bounded), the rest fails.
    yield* Scope.addFinalizer(
      scope,
      Effect.gen(function*() {
        closed = true
        if (wakeWriter !== undefined) Deferred.doneUnsafe(wakeWriter, Exit.void)
        if (roomFreed !== undefined) Deferred.doneUnsafe(roomFreed, Exit.void)
        yield* Fiber.await(fiber).pipe(Effect.timeout(`${Limits.closeDrainMs} millis`), Effect.ignore)
        yield* Fiber.interrupt(fiber)
        for (const group of [...queue, ...(open === undefined ? [] : [open])]) settle(group, Exit.fail(closedError))
        queue.length = 0
        open = undefined
      })
    )

    const awaitSettled: Effect.Effect<void, Unavailable> = Effect.suspend(() =>
      last === undefined || last.outcome === null ? Effect.void : Deferred.await(last.done)
    )

    return { overlay, hasRoom, awaitRoom, add, isClosed: () => closed, awaitSettled } satisfies GroupWriter
  })
