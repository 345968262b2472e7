/**
 * Garbage collection: deletes objects no reader can need. An object goes only if it is older than
 * `minAgeMs` (a lease for readers in other processes and for tables written but not yet committed) and:
 * - a manifest: it is not the latest, and no live snapshot of this process pins it;
 * - a table: no remaining manifest references it, and this process is not about to commit it;
 * - a WAL object: its id is at or below the latest manifest's flushed point, and it is not a fence
 *   (a fence must stay forever: it is what a zombie writer's next WAL write collides with).
 */
import { Clock, Effect, Option, Stream } from "effect"
import type { ObjectStoreShape } from "../../ObjectStore.ts"
import type { CorruptObject } from "../format/errors.ts"
import type { ListEntry, Unavailable } from "../objectStore/model.ts"
import type { DbManifest } from "./manifest.ts"
import type { ManifestStore } from "./manifestStore.ts"
import { manifestPrefix } from "./manifestStore.ts"
import type { Versioned } from "./versionedLog.ts"
import { parseVersion } from "./versionedLog.ts"

export const collectGarbage = (
  store: ObjectStoreShape,
  manifests: ManifestStore,
  options: {
    readonly latest: Versioned<DbManifest>
    readonly pinnedVersions: ReadonlySet<number>
    /** Tables this process is writing and has not committed yet. */
    readonly uncommittedTables: ReadonlySet<string>
    readonly minAgeMs: number
    readonly walPrefix: string
  }
): Effect.Effect<number, Unavailable | CorruptObject> =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const oldEnough = (e: ListEntry) => options.minAgeMs === 0 || now - e.lastModifiedMs >= options.minAgeMs
    const list = (prefix: string) => Stream.runCollect(store.list(prefix)).pipe(Effect.catchTag("InvalidKey", (e) => Effect.die(e)))
    const remove = (key: string) => store.delete(key).pipe(Effect.catchTag("InvalidKey", (e) => Effect.die(e)))
    let deleted = 0

    // Manifests first: the tables that stay referenced are those of the manifests that stay.
    const manifestEntries = yield* list(manifestPrefix)
    const referenced = new Set<string>()
    for (const entry of manifestEntries) {
      const version = parseVersion(manifestPrefix, entry.key)
      if (version === undefined) continue
      const keep = version >= options.latest.version || options.pinnedVersions.has(version) || !oldEnough(entry)
      if (!keep) {
        yield* remove(entry.key)
        deleted += 1
        continue
      }
      const m = version === options.latest.version ? options.latest.value : yield* manifests.log.read(version)
      if (m === undefined) continue
      for (const t of [...m.l0, ...m.runs.flatMap((r) => r.ssts)]) referenced.add(t.id)
    }

    for (const entry of yield* list("sst/")) {
      const id = entry.key.slice("sst/".length).replace(/\.sst$/, "")
      if (referenced.has(id) || options.uncommittedTables.has(id) || !oldEnough(entry)) continue
      yield* remove(entry.key)
      deleted += 1
    }

    const fences = new Set(options.latest.value.walFences)
    for (const entry of yield* list(options.walPrefix)) {
      const id = Option.fromUndefinedOr(parseVersion(options.walPrefix, entry.key.replace(/\.wal$/, "")))
      if (Option.isNone(id) || id.value > options.latest.value.walIdFlushed || fences.has(id.value) || !oldEnough(entry)) continue
      yield* remove(entry.key)
      deleted += 1
    }
    return deleted
  })
