/**
 * Compaction and garbage collection as a role runs them: one implementation for the writer (which does
 * both in its own process unless told not to) and for the compactor role in a process of its own
 * (`compactorProcess.ts`), as SlateDB's compactor and collector serve either.
 *
 * What differs between the two roles is passed in as a `MaintenanceRole`: the role and epoch that fence
 * its commits and collections; the manifest a job is planned against (the writer's own state; for the
 * compactor, the latest in the store) and the one its commit starts from; which versions a compaction must
 * keep (above the oldest live snapshot of the writer; above the manifest's last seq for the compactor);
 * what becomes of a manifest it committed; and which manifest versions live snapshots pin. The rest is
 * shared: table ids, the set of tables written but not yet committed (which the writer's flusher adds to,
 * and the collector leaves alone), one compaction at a time, and the counters.
 *
 * The planning and running of a job are in `compaction.ts`; a collection pass is in `gc.ts`.
 */
import { Clock, Effect, Semaphore } from "effect"
import type { ResolvedSettings } from "../../Db.ts"
import type { ObjectStoreShape } from "../../ObjectStore.ts"
import { planCompaction, runCompaction } from "./compaction.ts"
import { collectGarbage } from "./gc.ts"
import type { DbManifest } from "./manifest.ts"
import type { Fenced, ManifestError, ManifestStore, Role } from "./manifestStore.ts"
import { settled, walPrefix } from "./storeView.ts"
import type { Tables } from "./tables.ts"
import type { Versioned } from "./versionedLog.ts"

export interface MaintenanceRole {
  /** The role and epoch its commits and collections are fenced by. */
  readonly fencing: { readonly role: Role; readonly epoch: number }
  /** The manifest a compaction is planned against. */
  readonly planBase: Effect.Effect<Versioned<DbManifest>, Fenced | ManifestError>
  /** The manifest a compaction's commit starts from; a conflict rebases it onto the newest in the store. */
  readonly commitBase: (planned: Versioned<DbManifest>) => Effect.Effect<Versioned<DbManifest>>
  /** Versions above this seq stay as they are in a compaction's output (a snapshot may read them). */
  readonly retainAbove: (planned: DbManifest) => Effect.Effect<number>
  /** Takes in a manifest version a compaction committed. */
  readonly committed: (manifest: Versioned<DbManifest>) => Effect.Effect<void>
  /** The manifest versions live snapshots of this process pin; garbage collection keeps them. */
  readonly pinnedVersions: () => ReadonlySet<number>
}

/**
 * The later of two manifest versions. The flusher and the compactor commit concurrently, each rebasing on
 * the other; the state must only move forward, or a read would see tables a newer version replaced.
 */
export const newest = (a: Versioned<DbManifest>, b: Versioned<DbManifest>) => (b.version > a.version ? b : a)

export const makeMaintenance = (
  store: ObjectStoreShape,
  manifests: ManifestStore,
  tables: Tables,
  settings: ResolvedSettings,
  role: MaintenanceRole
) => {
  const { fencing } = role
  const counters = { tables: 0, compactions: 0, collected: 0 }
  /** Tables written but not yet in a committed manifest: garbage collection must not take them. */
  const uncommitted = new Set<string>()
  // Table ids are `<time>-<writer epoch>-<n>` or `<time>-c<compactor epoch>-<n>`: both roles write to
  // `sst/`, and the `c` keeps their ids apart.
  const owner = fencing.role === "writer" ? String(fencing.epoch) : `c${fencing.epoch}`
  const newTableId = Effect.map(Clock.currentTimeMillis, (now) => {
    const id = `${Math.floor(now).toString(36)}-${owner}-${(counters.tables++).toString(36)}`
    uncommitted.add(id)
    return id
  })

  // One compaction at a time in this process: a job plans against the manifest it will replace.
  const lock = Semaphore.makeUnsafe(1)
  const compactOnce = lock.withPermit(settled(Effect.scoped(Effect.gen(function*() {
    const planned = yield* role.planBase
    const job = planCompaction(planned.value, settings)
    if (job === undefined) return false
    const retainAbove = yield* role.retainAbove(planned.value)
    const written: Array<string> = []
    yield* Effect.addFinalizer(() => Effect.sync(() => written.forEach((id) => uncommitted.delete(id))))
    const output = yield* runCompaction(tables, job, {
      retainAbove,
      merge: settings.merge,
      newTableId: Effect.tap(newTableId, (id) => Effect.sync(() => written.push(id))),
      settings
    })
    const committed = yield* manifests.commit(yield* role.commitBase(planned), (m) => job.apply(m, output), fencing)
    yield* role.committed(committed)
    counters.compactions += 1
    return true
  }))))

  const gcOnce = Effect.gen(function*() {
    const deleted = yield* collectGarbage(store, manifests, {
      fencing,
      pinnedVersions: role.pinnedVersions(),
      uncommittedTables: uncommitted,
      minAgeMs: settings.gcMinAgeMs,
      walPrefix,
      mutant: settings.simulationMutant === "gc-lease-from-creation" ? "gc-lease-from-creation" : undefined
    })
    counters.collected += deleted
    return deleted
  })

  return { counters, uncommitted, newTableId, compactOnce, gcOnce }
}
