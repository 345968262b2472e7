/**
 * ObjectStore: the port everything in this project stands on.
 *
 * Keys are UTF-8 strings (see `internal/objectStore/keys.ts`); values are bytes. Besides plain reads and
 * writes the port offers two conditional writes, `putIfAbsent` (S3 `If-None-Match: *`) and `putIfMatch`
 * (S3 `If-Match: etag`), which make WAL fencing and manifest compare-and-set possible. Every write stores a
 * put-id with the object; a conditional write whose reply was lost is resolved by reading the object back
 * and comparing put-ids, so a caller sees "won", "lost", or, only if the store stays unreachable,
 * `OutcomeUnknown` with the put-id to resolve later.
 *
 * Adapters (`layerMemory`, `layerLocal`, `layerS3`, and `layerFaulty` around any of them) implement one
 * attempt per call (a `Driver`); `make` adds, once for all: key validation, retries of `Unavailable` on a
 * capped, jittered `Schedule`, and outcome resolution. Opening a persistent store runs a capability
 * preflight that refuses a store which does not honour conditional writes.
 */
import { Context, Effect, Layer, Option, Random, Schedule, Stream } from "effect"
import * as Limits from "./limits.ts"
import type { FaultSettings, Outage } from "./internal/objectStore/faulty.ts"
import { makeFaultyDriver } from "./internal/objectStore/faulty.ts"

export { makeFaultyDriver }
import { keyProblem, prefixProblem } from "./internal/objectStore/keys.ts"
import { makeLocalDriver } from "./internal/objectStore/local.ts"
import { makeMemoryDriver } from "./internal/objectStore/memory.ts"
import type {
  ByteRange,
  Driver,
  GetResult,
  ListEntry,
  ListPage,
  ListPageOptions,
  ObjectMeta,
  PutResult
} from "./internal/objectStore/model.ts"
import {
  AlreadyExists,
  InvalidKey,
  InvalidRange,
  NotFound,
  OutcomeUnknown,
  PreconditionFailed,
  StoreUnusable,
  Unavailable
} from "./internal/objectStore/model.ts"
import type { S3Settings } from "./internal/objectStore/s3.ts"

export type { ByteRange, Driver, FaultSettings, Outage, GetResult, ListEntry, ListPage, ListPageOptions, ObjectMeta, PutResult, S3Settings }
export { AlreadyExists, InvalidKey, InvalidRange, NotFound, OutcomeUnknown, PreconditionFailed, StoreUnusable, Unavailable }

export interface PutOptions {
  /** Id stored with the object to recognise this write later; a random 128-bit id by default. */
  readonly putId?: string | undefined
}

export interface ListOptions {
  /** List only keys strictly greater than this one. */
  readonly startAfter?: string | undefined
  /** Keys fetched per request, 1..`listPageSizeMax`. */
  readonly pageSize?: number | undefined
}

/** What a later read says of a write whose outcome was unknown. */
export type PutResolution =
  | { readonly _tag: "Written"; readonly etag: string }
  | { readonly _tag: "NotVisible"; readonly current: ObjectMeta | undefined }

export interface ObjectStoreShape {
  /** Describes the backend, e.g. `memory`, `local:./data`, `s3://bucket/prefix`. */
  readonly name: string
  /** Longest key this store takes, in UTF-8 bytes (1024, less the bytes of an S3 key prefix). */
  readonly keyBytesMax: number
  /** False where writing the same bytes again can bring back an old etag (S3: the etag is their MD5). */
  readonly etagsUnique: boolean
  /** Reads an object, or the byte range `[start, end)` of it. */
  readonly get: (
    key: string,
    range?: ByteRange
  ) => Effect.Effect<GetResult, NotFound | InvalidRange | Unavailable | InvalidKey>
  readonly head: (key: string) => Effect.Effect<ObjectMeta, NotFound | Unavailable | InvalidKey>
  /** Creates or replaces an object. Idempotent, hence retried on `Unavailable`. */
  readonly put: (key: string, body: Uint8Array, options?: PutOptions) => Effect.Effect<PutResult, Unavailable | InvalidKey>
  /** Creates an object only if the key is free; `AlreadyExists` leaves the existing content unchanged. */
  readonly putIfAbsent: (
    key: string,
    body: Uint8Array,
    options?: PutOptions
  ) => Effect.Effect<PutResult, AlreadyExists | OutcomeUnknown | Unavailable | InvalidKey>
  /** Replaces an object only if its etag is still `etag`; `PreconditionFailed` if not (or if it is gone). */
  readonly putIfMatch: (
    key: string,
    body: Uint8Array,
    etag: string,
    options?: PutOptions
  ) => Effect.Effect<PutResult, PreconditionFailed | OutcomeUnknown | Unavailable | InvalidKey>
  /** One page of keys under `prefix`, in UTF-8 byte order. */
  readonly listPage: (prefix: string, options?: ListPageOptions) => Effect.Effect<ListPage, Unavailable | InvalidKey>
  /** Every key under `prefix`, in UTF-8 byte order, fetched a page at a time. */
  readonly list: (prefix: string, options?: ListOptions) => Stream.Stream<ListEntry, Unavailable | InvalidKey>
  /** Deletes an object; deleting a missing key succeeds. */
  readonly delete: (key: string) => Effect.Effect<void, Unavailable | InvalidKey>
  /** Settles a write that ended in `OutcomeUnknown`, by comparing the stored put-id with `putId`. */
  readonly resolvePut: (key: string, putId: string) => Effect.Effect<PutResolution, Unavailable | InvalidKey>
}

export class ObjectStore extends Context.Service<ObjectStore, ObjectStoreShape>()("@opendata/core/ObjectStore") {}

// -------------------------------------------------------------------------------------------------
// Settings
// -------------------------------------------------------------------------------------------------

export interface RetrySettings {
  /** Retries after the first attempt. */
  readonly retriesMax: number
  readonly delayBaseMs: number
  /** Cap of one delay, before jitter. */
  readonly delayMaxMs: number
}

export const retrySettingsDefault: RetrySettings = {
  retriesMax: Limits.objectRetriesMax,
  delayBaseMs: Limits.objectRetryDelayBaseMs,
  delayMaxMs: Limits.objectRetryDelayMaxMs
}

export interface StoreSettings {
  readonly retry?: Partial<RetrySettings> | undefined
  /**
   * Check on open that the store rejects a second put-if-absent of one key and a stale put-if-match.
   * Turn off only for a store known to be correct: a store that ignores conditional writes corrupts data.
   */
  readonly preflight?: boolean | undefined
}

export interface LocalSettings extends StoreSettings {
  /** Directory holding the objects; created if missing. */
  readonly root: string
  /**
   * The Db's WAL objects are frames of an append-only log (`<root>/.packed`), rolled to a new segment
   * file past this many bytes (default 64 MiB).
   */
  readonly packedSegmentBytes?: number | undefined
}

/** The retry policy of `make`: capped exponential backoff with jitter, retrying `Unavailable` only. */
export const retrySchedule = (settings: RetrySettings = retrySettingsDefault) =>
  Schedule.min([
    Schedule.exponential(`${settings.delayBaseMs} millis`),
    Schedule.spaced(`${settings.delayMaxMs} millis`)
  ]).pipe(
    Schedule.jittered,
    Schedule.upTo({ times: settings.retriesMax }),
    Schedule.setInputType<{ readonly _tag: string }>(),
    Schedule.while(({ input }) => input._tag === "Unavailable")
  )

// -------------------------------------------------------------------------------------------------
// make: the behaviour every backend shares
// -------------------------------------------------------------------------------------------------


const checkBody = (key: string, body: Uint8Array): Effect.Effect<void> =>
  body instanceof Uint8Array && body.length <= Limits.objectPutBytesMax
    ? Effect.void
    : Effect.die(new Error(`object ${key}: body must be a Uint8Array of at most ${Limits.objectPutBytesMax} bytes`))

const checkRange = (key: string, range: ByteRange | undefined): Effect.Effect<void, InvalidRange> => {
  if (range === undefined) return Effect.void
  const { start, end } = range
  const ok = Number.isSafeInteger(start) && start >= 0 && (end === undefined || (Number.isSafeInteger(end) && end > start))
  return ok ? Effect.void : Effect.fail(new InvalidRange({ key, start, end }))
}

/** A fresh 128-bit put-id, from the `Random` service (seeded in tests). */
export const newPutId: Effect.Effect<string> = Effect.map(
  Effect.all([0, 1, 2, 3].map(() => Random.nextIntBetween(0, 0xffffffff))),
  (words) => words.map((w) => w.toString(16).padStart(8, "0")).join("")
)

type Verdict = "ours" | "lost" | "retry"

/** Wraps a driver into the public service. */
export const make = (driver: Driver, settings: StoreSettings = {}): ObjectStoreShape => {
  const retry = { ...retrySettingsDefault, ...settings.retry }
  const keyBytesMax = driver.keyBytesMax ?? Limits.objectKeyBytesMax
  const checkKey = (key: string): Effect.Effect<void, InvalidKey> => {
    const problem = keyProblem(key, keyBytesMax)
    return problem === undefined ? Effect.void : Effect.fail(new InvalidKey({ key: String(key), reason: problem }))
  }
  const checkPrefix = (prefix: string): Effect.Effect<void, InvalidKey> => {
    const problem = prefixProblem(prefix, keyBytesMax)
    return problem === undefined ? Effect.void : Effect.fail(new InvalidKey({ key: String(prefix), reason: problem }))
  }
  const schedule = retrySchedule(retry)
  const retrying = <A, E extends { readonly _tag: string }, R>(self: Effect.Effect<A, E, R>) =>
    Effect.retry(self, schedule)

  const head = (key: string) => Effect.andThen(checkKey(key), retrying(driver.head(key)))

  /** Reads the object back after an ambiguous conditional write and says who won. */
  const readBack = (operation: string, key: string, putId: string, decide: (meta: ObjectMeta | undefined) => Verdict) =>
    retrying(driver.head(key)).pipe(
      Effect.map((meta): ObjectMeta | undefined => meta),
      Effect.catchTag("NotFound", () => Effect.succeed(undefined)),
      Effect.mapError((e) => new OutcomeUnknown({ operation, key, putId, reason: `reading the object back failed: ${e.reason}` })),
      Effect.map((meta) => ({ meta, verdict: decide(meta) }))
    )

  /**
   * Runs a conditional write until it is settled. Once any attempt may have been applied, a "lost" reply
   * can be our own earlier attempt answering late, so it is checked by reading the put-id back too.
   */
  const conditional = <L extends AlreadyExists | PreconditionFailed>(
    operation: "putIfAbsent" | "putIfMatch",
    key: string,
    putId: string,
    attempt: Effect.Effect<PutResult, L | Unavailable | OutcomeUnknown>,
    lost: () => L,
    decide: (meta: ObjectMeta | undefined) => Verdict
  ): Effect.Effect<PutResult, L | Unavailable | OutcomeUnknown> => {
    let ambiguous = false
    const settle = (reason: string): Effect.Effect<PutResult, L | Unavailable | OutcomeUnknown> =>
      Effect.flatMap(readBack(operation, key, putId, decide), ({ meta, verdict }): Effect.Effect<PutResult, L | Unavailable> => {
        if (verdict === "ours" && meta !== undefined) return Effect.succeed({ etag: meta.etag, putId })
        if (verdict === "lost") return Effect.fail(lost())
        return Effect.fail(new Unavailable({ operation, key, reason: `not applied after ${reason}; retrying` }))
      })
    const once = Effect.catch(attempt, (e): Effect.Effect<PutResult, L | Unavailable | OutcomeUnknown> => {
      if (e._tag === "OutcomeUnknown") {
        ambiguous = true
        return settle(e.reason)
      }
      if (ambiguous && e._tag !== "Unavailable") return settle("a late reply")
      return Effect.fail(e)
    })
    return Effect.catch(retrying(once), (e): Effect.Effect<never, L | Unavailable | OutcomeUnknown> =>
      ambiguous && e._tag === "Unavailable"
        ? Effect.fail(new OutcomeUnknown({ operation, key, putId, reason: `retries exhausted: ${e.reason}` }))
        : Effect.fail(e))
  }

  const putIdOf = (options: PutOptions | undefined) =>
    options?.putId !== undefined ? Effect.succeed(options.putId) : newPutId

  const listPage = (prefix: string, options?: ListPageOptions) =>
    Effect.gen(function*() {
      yield* checkPrefix(prefix)
      const limit = options?.limit ?? Limits.listPageSizeDefault
      if (!Number.isSafeInteger(limit) || limit < 1 || limit > Limits.listPageSizeMax) {
        return yield* Effect.die(new Error(`list page limit must be 1..${Limits.listPageSizeMax}, got ${limit}`))
      }
      return yield* retrying(driver.listPage(prefix, options?.startAfter, limit))
    })

  return {
    name: driver.name,
    keyBytesMax,
    etagsUnique: driver.etagsUnique !== false,
    get: (key, range) =>
      Effect.gen(function*() {
        yield* checkKey(key)
        yield* checkRange(key, range)
        return yield* retrying(driver.get(key, range))
      }),
    head,
    put: (key, body, options) =>
      Effect.gen(function*() {
        yield* checkKey(key)
        yield* checkBody(key, body)
        const putId = yield* putIdOf(options)
        return yield* retrying(driver.put(key, body, putId))
      }),
    putIfAbsent: (key, body, options) =>
      Effect.gen(function*() {
        yield* checkKey(key)
        yield* checkBody(key, body)
        const putId = yield* putIdOf(options)
        return yield* conditional(
          "putIfAbsent",
          key,
          putId,
          driver.putIfAbsent(key, body, putId),
          () => new AlreadyExists({ key }),
          (meta) => (meta === undefined ? "retry" : meta.putId === putId ? "ours" : "lost")
        )
      }),
    putIfMatch: (key, body, etag, options) =>
      Effect.gen(function*() {
        yield* checkKey(key)
        yield* checkBody(key, body)
        const putId = yield* putIdOf(options)
        return yield* conditional(
          "putIfMatch",
          key,
          putId,
          driver.putIfMatch(key, body, etag, putId),
          () => new PreconditionFailed({ key, expectedEtag: etag }),
          // An unchanged etag proves the write did not happen only where every write gets a new etag
          // (not on S3, whose etag is a hash of the bytes): elsewhere the caller re-reads and decides.
          (meta) =>
            meta === undefined
              ? "lost"
              : meta.putId === putId
              ? "ours"
              : meta.etag === etag && driver.etagsUnique !== false
              ? "retry"
              : "lost"
        )
      }),
    listPage,
    list: (prefix, options) =>
      Stream.paginate(options?.startAfter, (startAfter: string | undefined) =>
        Effect.map(listPage(prefix, { startAfter, limit: options?.pageSize }), (page) =>
          [page.entries, page.next === undefined ? Option.none() : Option.some(page.next)] as const)),
    delete: (key) => Effect.andThen(checkKey(key), retrying(driver.delete(key))),
    resolvePut: (key, putId) =>
      head(key).pipe(
        Effect.map((meta): PutResolution =>
          meta.putId === putId ? { _tag: "Written", etag: meta.etag } : { _tag: "NotVisible", current: meta }
        ),
        Effect.catchTag("NotFound", () => Effect.succeed<PutResolution>({ _tag: "NotVisible", current: undefined }))
      )
  }
}

/** Uses a store as the driver of another one (how `layerFaulty` injects faults beneath retries). */
export const toDriver = (store: ObjectStoreShape): Driver => {
  const keyIsValid = <A, E>(self: Effect.Effect<A, E | InvalidKey>): Effect.Effect<A, Exclude<E, InvalidKey>> =>
    Effect.catchTag(self as Effect.Effect<A, InvalidKey>, "InvalidKey", (e) => Effect.die(e)) as never
  return {
    name: store.name,
    keyBytesMax: store.keyBytesMax,
    etagsUnique: store.etagsUnique,
    get: (key, range) => keyIsValid(store.get(key, range)),
    head: (key) => keyIsValid(store.head(key)),
    put: (key, body, putId) => keyIsValid(store.put(key, body, { putId })),
    putIfAbsent: (key, body, putId) => keyIsValid(store.putIfAbsent(key, body, { putId })),
    putIfMatch: (key, body, etag, putId) => keyIsValid(store.putIfMatch(key, body, etag, { putId })),
    listPage: (prefix, startAfter, limit) => keyIsValid(store.listPage(prefix, { startAfter, limit })),
    delete: (key) => keyIsValid(store.delete(key))
  }
}

// -------------------------------------------------------------------------------------------------
// Capability preflight
// -------------------------------------------------------------------------------------------------

/** Prefix of the objects the preflight writes (and deletes again). */
export const preflightPrefix = ".opendata/preflight/"

/**
 * Proves on open that the store honours conditional writes: a second put-if-absent of one key must lose
 * and leave the content unchanged; a put-if-match with the current etag must win and one with a stale
 * etag must lose. A store that fails any of these would let two writers both "win" and corrupt data.
 */
export const preflight = (store: ObjectStoreShape): Effect.Effect<void, StoreUnusable> =>
  Effect.gen(function*() {
    const unusable = (reason: string) => new StoreUnusable({ store: store.name, reason })
    const text = new TextEncoder()
    const key = `${preflightPrefix}${yield* newPutId}`
    const first = text.encode("preflight 1")
    const created = yield* store.putIfAbsent(key, first).pipe(
      Effect.mapError((e) => unusable(`a put-if-absent probe failed: ${e.message}`))
    )
    const second = yield* store.putIfAbsent(key, text.encode("preflight 2")).pipe(
      Effect.map(() => "accepted" as const),
      Effect.catchTag("AlreadyExists", () => Effect.succeed("rejected" as const)),
      Effect.mapError((e) => unusable(`a put-if-absent probe failed: ${e.message}`))
    )
    if (second === "accepted") {
      return yield* unusable(
        "it accepted a second put-if-absent (If-None-Match: *) of the same key, so it does not honour conditional " +
          "writes; use a store that does, or turn the preflight off only if you know better"
      )
    }
    const { body } = yield* store.get(key).pipe(Effect.mapError((e) => unusable(`reading a probe failed: ${e.message}`)))
    if (Buffer.compare(body, first) !== 0) {
      return yield* unusable("a losing put-if-absent changed the stored object")
    }
    const matched = yield* store.putIfMatch(key, text.encode("preflight 3"), created.etag).pipe(
      Effect.map(() => true),
      Effect.catchTag("PreconditionFailed", () => Effect.succeed(false)),
      Effect.mapError((e) => unusable(`a put-if-match probe failed: ${e.message}`))
    )
    if (!matched) {
      return yield* unusable(
        "it rejected a put-if-match (If-Match) carrying the object's current etag; " +
          "for Ceph radosgw set ifMatchUnquoted: true"
      )
    }
    const stale = yield* store.putIfMatch(key, text.encode("preflight 4"), created.etag).pipe(
      Effect.map(() => "accepted" as const),
      Effect.catchTag("PreconditionFailed", () => Effect.succeed("rejected" as const)),
      Effect.mapError((e) => unusable(`a put-if-match probe failed: ${e.message}`))
    )
    if (stale === "accepted") {
      return yield* unusable("it accepted a put-if-match (If-Match) with a stale etag, so it does not honour conditional writes")
    }
    yield* store.delete(key).pipe(Effect.mapError((e) => unusable(`deleting a probe failed: ${e.message}`)))
  })

const open = (driver: Driver, settings: StoreSettings) =>
  Effect.gen(function*() {
    const store = make(driver, settings)
    if (settings.preflight !== false) yield* preflight(store)
    return store
  })

// -------------------------------------------------------------------------------------------------
// Layers
// -------------------------------------------------------------------------------------------------

/** An empty in-memory store, the reference semantics: for unit tests and simulation. */
export const layerMemory: Layer.Layer<ObjectStore> = Layer.sync(ObjectStore, () => make(makeMemoryDriver()))

/** A store in a local directory: atomic creates, fsynced writes; one process per directory. */
export const layerLocal = (settings: LocalSettings): Layer.Layer<ObjectStore, StoreUnusable> =>
  Layer.effect(ObjectStore, Effect.flatMap(makeLocalDriver(settings.root, settings), (driver) => open(driver, settings)))

/** A store in an S3 bucket (AWS, Ceph radosgw, MinIO, ...), under an optional key prefix. */
export const layerS3 = (settings: S3Settings & StoreSettings): Layer.Layer<ObjectStore, StoreUnusable> =>
  Layer.effect(
    ObjectStore,
    Effect.gen(function*() {
      // Loaded on demand: the AWS SDK is large and most processes never talk to S3.
      const { makeS3Driver } = yield* Effect.promise(() => import("./internal/objectStore/s3.ts"))
      const driver = yield* makeS3Driver(settings)
      return yield* open(driver, settings)
    })
  )

/**
 * Wraps the `ObjectStore` below it with seeded faults (latency, unavailability, replies lost after a
 * successful write, listing lag), injected beneath the retry and resolution logic, as a real network
 * would. The same seed and the same calls give the same faults.
 */
export const layerFaulty = (faults: FaultSettings, settings: StoreSettings = {}): Layer.Layer<ObjectStore, never, ObjectStore> =>
  Layer.effect(
    ObjectStore,
    ObjectStore.useSync((inner) => make(makeFaultyDriver(toDriver(inner), faults), settings))
  )
