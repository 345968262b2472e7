/**
 * Commits to the Db manifest with epoch fencing, on top of the generic `VersionedLog`. An update is a
 * function of the latest manifest; on a conflict it is re-applied to the newer one, unless that one
 * carries a higher epoch of the committer's role, which means it was fenced.
 */
import { Effect, Schema } from "effect"
import type { ObjectStoreShape } from "../../ObjectStore.ts"
import type { CorruptObject } from "../format/errors.ts"
import type { OutcomeUnknown, Unavailable } from "../objectStore/model.ts"
import type { DbManifest } from "./manifest.ts"
import { decodeManifest, emptyManifest, encodeManifest, manifestProblem } from "./manifest.ts"
import type { Versioned, VersionedLog } from "./versionedLog.ts"
import { makeVersionedLog } from "./versionedLog.ts"

/** A newer writer (or compactor) took over: this one must stop. Nothing it writes from now is visible. */
export class Fenced extends Schema.TaggedError<Fenced>()("Fenced", {
  role: Schema.Literals(["writer", "compactor"]),
  epoch: Schema.Number,
  newerEpoch: Schema.Number
}) {
  override get message() {
    return `${this.role} epoch ${this.epoch} was fenced by a newer ${this.role} (epoch ${this.newerEpoch} or later)`
  }
}

export type Role = "writer" | "compactor"

const epochOf = (m: DbManifest, role: Role) => (role === "writer" ? m.writerEpoch : m.compactorEpoch)

export type ManifestError = Unavailable | OutcomeUnknown | CorruptObject

export interface ManifestStore {
  readonly log: VersionedLog<DbManifest, CorruptObject>
  /** The latest manifest; an empty one at version 0 if the Db was never written. */
  readonly load: Effect.Effect<Versioned<DbManifest>, Unavailable | CorruptObject>
  /**
   * Commits `update(latest)` as the next version, starting from `from`. With `role` and `epoch`, fails
   * with `Fenced` once the latest manifest carries a higher epoch for that role. `update` may return
   * `undefined` to commit nothing.
   */
  readonly commit: (
    from: Versioned<DbManifest>,
    update: (m: DbManifest) => DbManifest | undefined,
    fencing?: { readonly role: Role; readonly epoch: number }
  ) => Effect.Effect<Versioned<DbManifest>, Fenced | ManifestError>
}

export const manifestPrefix = "manifest/"

export const makeManifestStore = (store: ObjectStoreShape, mutant?: string): ManifestStore => {
  const log = makeVersionedLog<DbManifest, CorruptObject>({
    store,
    mutant: mutant === "head-pointer-trusted" ? mutant : undefined,
    prefix: manifestPrefix,
    encode: encodeManifest,
    decode: decodeManifest
  })
  const load = Effect.map(log.latest(), (latest) => latest ?? { version: 0, value: emptyManifest })

  const commit: ManifestStore["commit"] = (from, update, fencing) =>
    Effect.gen(function*() {
      let current = from
      for (;;) {
        if (fencing !== undefined && epochOf(current.value, fencing.role) > fencing.epoch) {
          return yield* new Fenced({ role: fencing.role, epoch: fencing.epoch, newerEpoch: epochOf(current.value, fencing.role) })
        }
        const next = update(current.value)
        if (next === undefined) return current
        const problem = manifestProblem(next)
        if (problem !== undefined) return yield* Effect.die(new Error(`manifest update breaks an invariant: ${problem}`))
        const version = current.version + 1
        const committed = yield* log.create(version, next).pipe(
          Effect.as(true),
          Effect.catchTag("Conflict", () => Effect.succeed(false))
        )
        if (committed) return { version, value: next }
        // Someone else committed first: re-read (the latest may be past the conflicting version) and rebase.
        const latest = yield* log.latest(current.version)
        current = latest ?? current
      }
    })

  return { log, load, commit }
}
