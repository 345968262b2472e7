/**
 * A versioned object log: the generic compare-and-set behind the manifest. Version `v` of a value lives
 * in its own object `<prefix><v, 20 digits>`, created with put-if-absent, so exactly one writer can
 * create each version. It knows nothing of what the value means; fencing (epochs) is the caller's, via
 * the `Conflict` it gets when a version is taken.
 *
 * A commit also checks that no later version exists: a version deleted by garbage collection could
 * otherwise be re-created by a slow writer that never saw the later ones. After a commit, the object
 * `<prefix>head` is set to its version: listings may lag behind writes, so `latest` starts from the head
 * pointer (or the listing, if newer) and reads forward until a version is missing.
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
  /**
   * The head pointer: a version at or below the latest. Versions from it on must not be collected, so a
   * reader can always find the latest by reading forward from it.
   */
  readonly head: Effect.Effect<number | undefined, Unavailable>
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
  /** Simulation only: `latest` reads forward from the head pointer alone, as if it never moved back. */
  readonly mutant?: "head-pointer-trusted" | undefined
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

  const headKey = prefix + "head"
  /** The head pointer: a version that exists (or did, before it was superseded); a hint, never the truth. */
  const readHead = orDieKey(store.get(headKey)).pipe(
    Effect.map(({ body }): number | undefined => {
      const n = Number(new TextDecoder().decode(body))
      return Number.isSafeInteger(n) && n > 0 ? n : undefined
    }),
    Effect.catchTags({ NotFound: () => Effect.succeed(undefined), InvalidRange: (e) => Effect.die(e) })
  )

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
        const floor = after ?? 0
        // Start from the newest version known to exist: the head pointer (versions from it on are never
        // collected) or the listing's last entry (which a lagging listing may not show yet).
        const head = yield* readHead
        const listed = options.mutant === "head-pointer-trusted" && head !== undefined ? undefined : (yield* versionsAfter(after)).at(-1)
        let found: Versioned<T> | undefined
        for (const candidate of [listed, head].filter((v): v is number => v !== undefined && v > floor).sort((x, y) => y - x)) {
          const value = yield* read(candidate)
          if (value !== undefined) {
            found = { version: candidate, value }
            break
          }
        }
        // Reads see every version a listing may still hide: probe forward until a version is missing.
        for (let next = (found?.version ?? floor) + 1; ; next++) {
          const value = yield* read(next)
          if (value === undefined) break
          found = { version: next, value }
        }
        // A head pointer says versions exist: finding none means they are not visible yet (a listing that
        // lags, a head pointer that a late write moved back to a collected version), never an empty log.
        if (found === undefined && after === undefined && head !== undefined) {
          return yield* Effect.fail(new Unavailable({ operation: "list", key: prefix, reason: `the head pointer names version ${head}, yet no version from it on can be read` }))
        }
        return found
      }),
    head: readHead,
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
        // Move the head pointer; if this fails it only lags, and readers probe forward from it.
        yield* orDieKey(store.put(headKey, new TextEncoder().encode(String(version)))).pipe(Effect.ignore)
      }),
    versions: versionsAfter(undefined),
    delete: (version) => orDieKey(store.delete(versionKey(prefix, version)))
  }
}
