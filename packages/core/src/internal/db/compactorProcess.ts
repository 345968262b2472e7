/**
 * The compactor role in a process of its own (RFC 0003, "Compaction in its own process"), as SlateDB
 * runs its compactor apart from the writer. Opening bumps the compactor epoch in the manifest, which
 * fences any previous compactor process. Then one loop compacts every `manifestPollMs`, planning against
 * the latest manifest and committing under its own epoch (rebasing on the writer's flushes), and another
 * collects garbage every `gcIntervalMs`; both are the shared `maintenance.ts`. A defect or an unreachable
 * store costs one round; being fenced stops both loops and completes `stopped`.
 */
import { Deferred, Effect, Fiber, Ref, Scope } from "effect"
import type { CompactorShape, DbError, ResolvedSettings } from "../../Db.ts"
import { ObjectStore } from "../../ObjectStore.ts"
import { makeMaintenance, newest } from "./maintenance.ts"
import { Fenced, makeManifestStore } from "./manifestStore.ts"
import { tableAccess } from "./readPath.ts"
import { prefixed, settled } from "./storeView.ts"

export const makeCompactor = (settings: ResolvedSettings): Effect.Effect<CompactorShape, DbError, ObjectStore | Scope.Scope> =>
  Effect.gen(function*() {
    const store = prefixed(yield* ObjectStore, settings.path)
    const manifests = makeManifestStore(store, settings.simulationMutant)
    const { tables } = tableAccess(store, settings)
    const opened = yield* settled(Effect.flatMap(manifests.load, (loaded) =>
      manifests.commit(loaded, (m) => ({ ...m, compactorEpoch: m.compactorEpoch + 1 }))))
    const epoch = opened.value.compactorEpoch
    const fencing = { role: "compactor", epoch } as const
    const current = yield* Ref.make(opened)
    const stoppedSignal = yield* Deferred.make<DbError>()

    const latest = Effect.gen(function*() {
      const known = yield* Ref.get(current)
      const newer = yield* manifests.log.latest(known.version)
      const m = newer ?? known
      if (m.value.compactorEpoch > epoch) return yield* new Fenced({ role: "compactor", epoch, newerEpoch: m.value.compactorEpoch })
      yield* Ref.set(current, m)
      return m
    })

    const { counters, compactOnce, gcOnce } = makeMaintenance(store, manifests, tables, settings, {
      fencing,
      planBase: latest,
      commitBase: (planned) => Effect.succeed(planned),
      // Snapshots of other processes read the tables of the manifest they pinned (kept for the GC lease),
      // never this job's output: every version below the manifest's last seq may be collapsed.
      retainAbove: (planned) => Effect.succeed(planned.lastSeq),
      committed: (committed) => Ref.update(current, (known) => newest(known, committed)),
      // Snapshots of other processes are protected by the lease alone.
      pinnedVersions: () => new Set()
    })

    // An unreachable store or a defect (say, a job whose inputs another compactor changed) costs one
    // round: the next one plans again from the latest manifest. Being fenced ends the compactor.
    const loop = (name: string, intervalMs: number, step: Effect.Effect<unknown, DbError>) =>
      Effect.forever(Effect.sleep(`${intervalMs} millis`).pipe(
        Effect.andThen(step),
        Effect.catchTags({
          Unavailable: (e) => Effect.logWarning(`${name} failed: ${e.message}`),
          CorruptObject: (e) => Effect.logError(`${name} failed: ${e.message}`)
        }),
        Effect.catchDefect((d) => Effect.logError(`${name} crashed; trying again`, d))
      )).pipe(
        Effect.catch((e) => Effect.andThen(Effect.logError(`compactor stopped: ${e.message}`), Deferred.succeed(stoppedSignal, e)))
      )
    const compactFiber = yield* Effect.forkScoped(loop("compaction", settings.manifestPollMs, Effect.gen(function*() {
      while (yield* compactOnce) {
        // keep compacting while there is work
      }
    })))
    const gcFiber = yield* Effect.forkScoped(loop("garbage collection", settings.gcIntervalMs, gcOnce))
    // Fenced: the other loop stops too.
    yield* Effect.forkScoped(Effect.andThen(Deferred.await(stoppedSignal), Effect.andThen(Fiber.interrupt(compactFiber), Fiber.interrupt(gcFiber))))
    yield* Effect.logInfo(`compactor ${settings.path === "" ? "" : `for ${settings.path} `}took epoch ${epoch}`)

    return {
      compact: compactOnce,
      collectGarbage: gcOnce,
      stopped: Deferred.await(stoppedSignal),
      stats: Effect.gen(function*() {
        const m = yield* Ref.get(current)
        return {
          compactorEpoch: epoch,
          manifestVersion: m.version,
          l0Tables: m.value.l0.length,
          sortedRuns: m.value.runs.length,
          compactions: counters.compactions,
          tablesWritten: counters.tables,
          objectsCollected: counters.collected
        }
      })
    } satisfies CompactorShape
  })
