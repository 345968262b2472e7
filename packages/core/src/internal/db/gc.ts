/**
 * Garbage collection: deletes objects no reader can need. Only the current writer collects, or, when
 * the roles run in separate processes, the current compactor: after listing, it reads the latest manifest
 * (by GET, so a lagging listing cannot hide it) and stops with `Fenced` if a newer one of its role has
 * opened since.
 *
 * The lease (`minAgeMs`) protects readers, snapshots and uncommitted tables of other processes. It counts
 * from the moment an object stopped being needed, and on the store's clock: "now" is the `lastModified`
 * of a marker the pass writes first, so a skewed local clock cannot make anything look old, and an object
 * without a timestamp counts as young.
 * - a manifest goes once the version that superseded it is older than the lease (a reader may hold a
 *   manifest for the lease after it stopped being the latest), unless it is at or above the head pointer
 *   or a live snapshot of this process pins it;
 * - a table goes once no remaining manifest references it and it is older than the lease (a table a
 *   removed manifest referenced was dropped by that manifest's successor, itself older than the lease;
 *   one never referenced is another process's uncommitted or abandoned output) and this process is not
 *   about to commit it;
 * - a WAL object goes once a manifest older than the lease has flushed past it (every manifest that still
 *   needed it was superseded longer than the lease ago), unless it is a fence: a fence stays forever, as it
 *   is what a zombie writer's next WAL write collides with.
 */
import { Clock, Effect, Option, Stream } from "effect"
import type { ObjectStoreShape } from "../../ObjectStore.ts"
import type { CorruptObject } from "../format/errors.ts"
import type { ListEntry, Unavailable } from "../objectStore/model.ts"
import type { ManifestStore, Role } from "./manifestStore.ts"
import { Fenced, manifestPrefix } from "./manifestStore.ts"
import { parseVersion } from "./versionedLog.ts"

/** The marker each pass writes to read "now" off the store's clock. */
export const gcClockKey = "gc/clock"

export const collectGarbage = (
  store: ObjectStoreShape,
  manifests: ManifestStore,
  options: {
    /** The collector's role and epoch: nothing is deleted once a newer one of that role exists. */
    readonly fencing: { readonly role: Role; readonly epoch: number }
    readonly pinnedVersions: ReadonlySet<number>
    /** Tables this process is writing and has not committed yet. */
    readonly uncommittedTables: ReadonlySet<string>
    readonly minAgeMs: number
    readonly walPrefix: string
    /** Simulation only: the lease counted by the local clock from each object's creation (the old bug). */
    readonly mutant?: "gc-lease-from-creation" | undefined
  }
): Effect.Effect<number, Unavailable | CorruptObject | Fenced> =>
  Effect.gen(function*() {
    const orDieKey = <A, E>(self: Effect.Effect<A, E | { readonly _tag: "InvalidKey" }>) =>
      Effect.catchTag(self as Effect.Effect<A, { readonly _tag: "InvalidKey" }>, "InvalidKey", (e) => Effect.die(e)) as Effect.Effect<
        A,
        Exclude<E, { readonly _tag: "InvalidKey" }>
      >
    const list = (prefix: string) => orDieKey(Stream.runCollect(store.list(prefix)))
    const remove = (key: string) => orDieKey(store.delete(key))
    // "Now" by the store's clock, taken before listing: whatever is listed is at most this old.
    yield* orDieKey(store.put(gcClockKey, new Uint8Array(0)))
    const nowMs = (yield* orDieKey(store.head(gcClockKey)).pipe(
      Effect.map((meta): number | undefined => meta.lastModifiedMs),
      Effect.catchTag("NotFound", () => Effect.succeed(undefined))
    ))
    const localNowMs = options.mutant === "gc-lease-from-creation" ? yield* Clock.currentTimeMillis : undefined
    // List first: whatever a newer writer writes after these listings is not a candidate.
    const manifestEntries = yield* list(manifestPrefix)
    const tableEntries = yield* list("sst/")
    const walEntries = yield* list(options.walPrefix)
    // Copied before the latest manifest is read: a table this process commits from now on is missing from
    // that manifest, and must stay here even once the live set has let it go.
    const uncommitted = new Set(options.uncommittedTables)
    const latest = yield* manifests.log.latest()
    if (latest === undefined) return 0
    const epoch = options.fencing.role === "writer" ? latest.value.writerEpoch : latest.value.compactorEpoch
    if (epoch > options.fencing.epoch) {
      return yield* new Fenced({ role: options.fencing.role, epoch: options.fencing.epoch, newerEpoch: epoch })
    }
    // Versions from the head pointer on stay, so that `latest` can always read forward from it.
    const head = yield* manifests.log.head

    /** Whether a time stamped by the store is at least the lease ago (a missing stamp is young). */
    const leaseOver = (stampMs: number | undefined) => {
      if (options.minAgeMs === 0) return true
      const now = localNowMs ?? nowMs
      if (now === undefined || stampMs === undefined || !Number.isFinite(stampMs) || stampMs <= 0) return false
      return now - stampMs >= options.minAgeMs
    }
    const oldEnough = (e: ListEntry) => leaseOver(e.lastModifiedMs)
    let deleted = 0

    // Manifests first: the tables that stay referenced are those of the manifests that stay.
    const versions = new Map<number, ListEntry>()
    for (const entry of manifestEntries) {
      const version = parseVersion(manifestPrefix, entry.key)
      if (version !== undefined) versions.set(version, entry)
    }
    const listedVersions = [...versions.keys()].sort((x, y) => x - y)
    /** When `version` stopped being the latest: the creation of the next version listed (or the latest). */
    const supersededAt = (version: number): number | undefined => {
      if (options.mutant === "gc-lease-from-creation") return versions.get(version)?.lastModifiedMs
      for (const v of listedVersions) if (v > version) return versions.get(v)!.lastModifiedMs
      return undefined
    }
    const referenced = new Set<string>()
    for (const t of [...latest.value.l0, ...latest.value.runs.flatMap((r) => r.ssts)]) referenced.add(t.id)
    // The WAL flushed point of the newest manifest older than the lease: WAL objects up to it are unneeded.
    let walIdUnneeded = leaseOver(versions.get(latest.version)?.lastModifiedMs) ? latest.value.walIdFlushed : 0
    for (const version of listedVersions) {
      if (version >= latest.version) continue
      const entry = versions.get(version)!
      if (head !== undefined && version < head && !options.pinnedVersions.has(version) && leaseOver(supersededAt(version))) {
        yield* remove(entry.key)
        deleted += 1
        continue
      }
      const m = yield* manifests.log.read(version)
      if (m === undefined) continue
      if (oldEnough(entry)) walIdUnneeded = Math.max(walIdUnneeded, m.walIdFlushed)
      for (const t of [...m.l0, ...m.runs.flatMap((r) => r.ssts)]) referenced.add(t.id)
    }
    if (options.mutant === "gc-lease-from-creation") walIdUnneeded = latest.value.walIdFlushed

    for (const entry of tableEntries) {
      const id = entry.key.slice("sst/".length).replace(/\.sst$/, "")
      if (referenced.has(id) || uncommitted.has(id) || !oldEnough(entry)) continue
      yield* remove(entry.key)
      deleted += 1
    }

    const fences = new Set(latest.value.walFences)
    for (const entry of walEntries) {
      const id = Option.fromUndefinedOr(parseVersion(options.walPrefix, entry.key.replace(/\.wal$/, "")))
      if (Option.isNone(id) || id.value > walIdUnneeded || fences.has(id.value)) continue
      if (options.mutant === "gc-lease-from-creation" && !oldEnough(entry)) continue
      yield* remove(entry.key)
      deleted += 1
    }
    return deleted
  })
