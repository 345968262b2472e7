/**
 * A versioned object log: the generic compare-and-set behind the manifest. Version `v` of a value lives
 * in its own object `<prefix><v, 20 digits>`, created with put-if-absent, so exactly one writer can
 * create each version. It knows nothing of what the value means; fencing (epochs) is the caller's, via
 * the `Conflict` it gets when a version is taken.
 *
 * A commit also checks that no later version exists: a version deleted by garbage collection could
 * otherwise be re-created by a slow writer that never saw the later ones.
 */
import { Effect, Option, Stream } from "effect"
import type { ObjectStoreShape } from "../../ObjectStore.ts"
import { OutcomeUnknown, Unavailable } from "../objectStore/model.ts"

export const versionDigits = 20

export const versionKey = (prefix: string, version: number) => prefix + String(version).padStart(versionDigits, "0")

export const parseVersion = (prefix: string, key: string): number | undefined => {
  const digits = key.slice(prefix.length)
  return key.startsWith(prefix) && /^\d{20}$/.test(digits) ? Number(digits) : undefined
}

export interface Versioned<T> {
  readonly version: number
  readonly value: T
}

/** Someone else created this version (or a later one) first. Re-read and decide again. */
export interface Conflict {
  readonly _tag: "Conflict"
  readonly version: number
}

export interface VersionedLog<T, D> {
  /** The latest version after `after` (all versions if absent), or `undefined` if there is none. */
  readonly latest: (after?: number) => Effect.Effect<Versioned<T> | undefined, Unavailable | D>
  readonly read: (version: number) => Effect.Effect<T | undefined, Unavailable | D>
  /** Creates `version`; `Conflict` if it, or any later version, exists. */
  readonly create: (version: number, value: T) => Effect.Effect<void, Conflict | Unavailable | OutcomeUnknown>
  /** Every version that exists, oldest first. */
  readonly versions: Effect.Effect<ReadonlyArray<number>, Unavailable>
  readonly delete: (version: number) => Effect.Effect<void, Unavailable>
}

export const makeVersionedLog = <T, D>(options: {
  readonly store: ObjectStoreShape
  readonly prefix: string
  readonly encode: (value: T) => Uint8Array
  /** Decodes and validates; fails with `D` for a corrupt or invalid object. */
  readonly decode: (key: string, bytes: Uint8Array) => Effect.Effect<T, D>
}): VersionedLog<T, D> => {
  const { store, prefix } = options
  const orDieKey = <A, E>(self: Effect.Effect<A, E | { readonly _tag: "InvalidKey" }>) =>
    Effect.catchTag(self as Effect.Effect<A, { readonly _tag: "InvalidKey" }>, "InvalidKey", (e) => Effect.die(e)) as Effect.Effect<
      A,
      Exclude<E, { readonly _tag: "InvalidKey" }>
    >

  const versionsAfter = (after: number | undefined) =>
    orDieKey(
      Stream.runCollect(
        store.list(prefix, after === undefined ? {} : { startAfter: versionKey(prefix, after) })
      )
    ).pipe(Effect.map((entries) => entries.flatMap((e) => Option.toArray(Option.fromUndefinedOr(parseVersion(prefix, e.key))))))

  const read = (version: number) =>
    orDieKey(store.get(versionKey(prefix, version))).pipe(
      Effect.flatMap(({ body }) => options.decode(versionKey(prefix, version), body)),
      Effect.map((value): T | undefined => value),
      Effect.catchTag("NotFound", () => Effect.succeed(undefined)),
      Effect.catchTag("InvalidRange", (e) => Effect.die(e))
    )

  return {
    latest: (after) =>
      Effect.gen(function*() {
        // A version can vanish between the list and the read (garbage collection): list again.
        for (;;) {
          const versions = yield* versionsAfter(after)
          const last = versions.at(-1) ?? after
          let found: Versioned<T> | undefined
          if (last !== undefined && last !== after) {
            const value = yield* read(last)
            if (value === undefined) continue
            found = { version: last, value }
          }
          // A listing may lag behind the newest writes; reads do not. Probe forward until a version is missing.
          for (let next = (last ?? 0) + 1; ; next++) {
            const value = yield* read(next)
            if (value === undefined) break
            found = { version: next, value }
          }
          return found
        }
      }),
    read,
    create: (version, value) =>
      Effect.gen(function*() {
        const created = yield* orDieKey(store.putIfAbsent(versionKey(prefix, version), options.encode(value))).pipe(
          Effect.as(true),
          Effect.catchTag("AlreadyExists", () => Effect.succeed(false))
        )
        if (!created) return yield* Effect.fail<Conflict>({ _tag: "Conflict", version })
        const later = yield* versionsAfter(version)
        if (later.length > 0) return yield* Effect.fail<Conflict>({ _tag: "Conflict", version: later.at(-1)! })
        // A listing may lag: the next version, if any, is found by reading it.
        const next = yield* orDieKey(store.head(versionKey(prefix, version + 1))).pipe(
          Effect.as(true),
          Effect.catchTag("NotFound", () => Effect.succeed(false))
        )
        if (next) return yield* Effect.fail<Conflict>({ _tag: "Conflict", version: version + 1 })
      }),
    versions: versionsAfter(undefined),
    delete: (version) => orDieKey(store.delete(versionKey(prefix, version)))
  }
}
