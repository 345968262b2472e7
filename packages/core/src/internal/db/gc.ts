/**
 * Garbage collection: deletes objects no reader can need. Only the current writer collects, or, when
 * the roles run in separate processes, the current compactor: after listing, it reads the latest manifest
 * (by GET, so a lagging listing cannot hide it) and gives up if a newer one of its role has opened since.
 * Then an object goes only if it is older than `minAgeMs` (a lease for readers, snapshots and uncommitted
 * tables in other processes) and:
 * - a manifest: it is below the latest and below the head pointer, and no live snapshot of this process
 *   pins it;
 * - a table: no remaining manifest references it, and this process is not about to commit it;
 * - a WAL object: its id is at or below the latest manifest's flushed point, and it is not a fence
 *   (a fence must stay forever: it is what a zombie writer's next WAL write collides with).
 */
import { Clock, Effect, Option, Stream } from "effect"
import type { ObjectStoreShape } from "../../ObjectStore.ts"
import type { CorruptObject } from "../format/errors.ts"
import type { ListEntry, Unavailable } from "../objectStore/model.ts"
import type { ManifestStore, Role } from "./manifestStore.ts"
import { manifestPrefix } from "./manifestStore.ts"
import { parseVersion } from "./versionedLog.ts"

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
  }
): Effect.Effect<number, Unavailable | CorruptObject> =>
  Effect.gen(function*() {
    const list = (prefix: string) => Stream.runCollect(store.list(prefix)).pipe(Effect.catchTag("InvalidKey", (e) => Effect.die(e)))
    const remove = (key: string) => store.delete(key).pipe(Effect.catchTag("InvalidKey", (e) => Effect.die(e)))
    // List first: whatever a newer writer writes after these listings is not a candidate.
    const manifestEntries = yield* list(manifestPrefix)
    const tableEntries = yield* list("sst/")
    const walEntries = yield* list(options.walPrefix)
    const latest = yield* manifests.log.latest()
    if (latest === undefined) return 0
    const epoch = options.fencing.role === "writer" ? latest.value.writerEpoch : latest.value.compactorEpoch
    if (epoch !== options.fencing.epoch) return 0
    // Versions from the head pointer on stay, so that `latest` can always read forward from it.
    const head = yield* manifests.log.head

    const now = yield* Clock.currentTimeMillis
    const oldEnough = (e: ListEntry) => options.minAgeMs === 0 || now - e.lastModifiedMs >= options.minAgeMs
    let deleted = 0

    // Manifests first: the tables that stay referenced are those of the manifests that stay.
    const referenced = new Set<string>()
    for (const t of [...latest.value.l0, ...latest.value.runs.flatMap((r) => r.ssts)]) referenced.add(t.id)
    for (const entry of manifestEntries) {
      const version = parseVersion(manifestPrefix, entry.key)
      if (version === undefined || version >= latest.version) continue
      if (head !== undefined && version < head && !options.pinnedVersions.has(version) && oldEnough(entry)) {
        yield* remove(entry.key)
        deleted += 1
        continue
      }
      const m = yield* manifests.log.read(version)
      if (m === undefined) continue
      for (const t of [...m.l0, ...m.runs.flatMap((r) => r.ssts)]) referenced.add(t.id)
    }

    for (const entry of tableEntries) {
      const id = entry.key.slice("sst/".length).replace(/\.sst$/, "")
      if (referenced.has(id) || options.uncommittedTables.has(id) || !oldEnough(entry)) continue
      yield* remove(entry.key)
      deleted += 1
    }

    const fences = new Set(latest.value.walFences)
    for (const entry of walEntries) {
      const id = Option.fromUndefinedOr(parseVersion(options.walPrefix, entry.key.replace(/\.wal$/, "")))
      if (Option.isNone(id) || id.value > latest.value.walIdFlushed || fences.has(id.value) || !oldEnough(entry)) continue
      yield* remove(entry.key)
      deleted += 1
    }
    return deleted
  })
