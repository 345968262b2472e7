/**
 * The object-store port's data and errors, shared by the public service and its drivers.
 *
 * A driver performs single attempts against one backend (memory, local directory, S3). The public
 * `ObjectStore` adds what every backend needs the same way: key validation, retries of retryable
 * failures on a capped jittered schedule, and resolution of conditional writes whose outcome is unknown.
 */
import type { Effect } from "effect"
import { Schema } from "effect"

/** A byte range of an object: `start` inclusive, `end` exclusive (defaults to the object's end). */
export interface ByteRange {
  readonly start: number
  readonly end?: number | undefined
}

/** What `list` knows of an object. */
export interface ListEntry {
  readonly key: string
  readonly size: number
  readonly etag: string
  readonly lastModifiedMs: number
}

/** What `head` knows of an object: its list entry and the put-id of the write that created it. */
export interface ObjectMeta extends ListEntry {
  /** Id of the write that stored this version; `undefined` for objects written by other tools. */
  readonly putId: string | undefined
}

export interface GetResult {
  /** Metadata of the whole object; `meta.size` is the full size even for a ranged read. */
  readonly meta: ObjectMeta
  readonly body: Uint8Array
}

export interface PutResult {
  readonly etag: string
  readonly putId: string
}

export interface ListPage {
  readonly entries: ReadonlyArray<ListEntry>
  /**
   * Set when more keys may follow: list the next page with `startAfter: next`. It is the last key this
   * page covered, which may be later than the last entry returned (an adapter may hide entries).
   */
  readonly next: string | undefined
}

export interface ListPageOptions {
  /** List only keys strictly greater than this one. */
  readonly startAfter?: string | undefined
  /** Entries per page, 1..`listPageSizeMax`. */
  readonly limit?: number | undefined
}

// -------------------------------------------------------------------------------------------------
// Errors. Each tells the caller what to do next.
// -------------------------------------------------------------------------------------------------

/** The object does not exist. */
export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", {
  key: Schema.String
}) {
  override get message() {
    return `object not found: ${this.key}`
  }
}

/** `putIfAbsent` lost a create race: another write created the key first. Its content is unchanged. */
export class AlreadyExists extends Schema.TaggedError<AlreadyExists>()("AlreadyExists", {
  key: Schema.String
}) {
  override get message() {
    return `object already exists: ${this.key}`
  }
}

/** `putIfMatch` lost: the object no longer has the expected etag (or is gone). Re-read and decide again. */
export class PreconditionFailed extends Schema.TaggedError<PreconditionFailed>()("PreconditionFailed", {
  key: Schema.String,
  expectedEtag: Schema.String
}) {
  override get message() {
    return `object ${this.key} no longer has etag ${this.expectedEtag}`
  }
}

/** The store could not be reached or answered with a retryable failure. Safe to retry later. */
export class Unavailable extends Schema.TaggedError<Unavailable>()("Unavailable", {
  operation: Schema.String,
  key: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `object store unavailable (${this.operation} ${this.key}): ${this.reason}`
  }
}

/**
 * A conditional write was sent but its reply was lost (or the store answered 409/5xx), and reading the
 * object back did not settle it. The write may or may not have happened: resolve it later with
 * `ObjectStore.resolvePut(key, putId)`, which compares the put-id stored with the object.
 */
export class OutcomeUnknown extends Schema.TaggedError<OutcomeUnknown>()("OutcomeUnknown", {
  operation: Schema.String,
  key: Schema.String,
  putId: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `outcome of ${this.operation} ${this.key} (put-id ${this.putId}) is unknown: ${this.reason}`
  }
}

/** The key (or prefix) is not valid for any store: fix the input. */
export class InvalidKey extends Schema.TaggedError<InvalidKey>()("InvalidKey", {
  key: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `invalid object key ${JSON.stringify(this.key)}: ${this.reason}`
  }
}

/** The byte range is malformed, or starts at or past the end of the object. */
export class InvalidRange extends Schema.TaggedError<InvalidRange>()("InvalidRange", {
  key: Schema.String,
  start: Schema.Number,
  end: Schema.optional(Schema.Number),
  size: Schema.optional(Schema.Number)
}) {
  override get message() {
    const size = this.size === undefined ? "" : ` of an object of ${this.size} bytes`
    return `invalid range [${this.start}, ${this.end ?? "end"}) of ${this.key}${size}`
  }
}

/**
 * Opening the store failed: it is unreachable, misconfigured, or does not honour the conditional
 * writes this project relies on. Call an operator; nothing was written.
 */
export class StoreUnusable extends Schema.TaggedError<StoreUnusable>()("StoreUnusable", {
  store: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `object store ${this.store} cannot be used: ${this.reason}`
  }
}

// -------------------------------------------------------------------------------------------------
// Drivers
// -------------------------------------------------------------------------------------------------

/**
 * One backend, one attempt per call. Keys and ranges arrive validated. A driver returns `Unavailable`
 * only when the request surely had no effect or is idempotent, and `OutcomeUnknown` when a conditional
 * write may have been applied.
 */
export interface Driver {
  readonly name: string
  /** Longest key this backend takes, in UTF-8 bytes; `objectKeyBytesMax` unless a key prefix uses some. */
  readonly keyBytesMax?: number | undefined
  /**
   * Whether every write gets a new etag (true by default). S3's etag is an MD5 of the body, so writing
   * the same bytes again brings an old etag back; outcome resolution must then not conclude from an
   * unchanged etag that a compare-and-set did not happen.
   */
  readonly etagsUnique?: boolean | undefined
  readonly get: (key: string, range: ByteRange | undefined) => Effect.Effect<GetResult, NotFound | InvalidRange | Unavailable>
  readonly head: (key: string) => Effect.Effect<ObjectMeta, NotFound | Unavailable>
  readonly put: (key: string, body: Uint8Array, putId: string) => Effect.Effect<PutResult, Unavailable>
  readonly putIfAbsent: (
    key: string,
    body: Uint8Array,
    putId: string
  ) => Effect.Effect<PutResult, AlreadyExists | Unavailable | OutcomeUnknown>
  readonly putIfMatch: (
    key: string,
    body: Uint8Array,
    etag: string,
    putId: string
  ) => Effect.Effect<PutResult, PreconditionFailed | Unavailable | OutcomeUnknown>
  readonly listPage: (prefix: string, startAfter: string | undefined, limit: number) => Effect.Effect<ListPage, Unavailable>
  readonly delete: (key: string) => Effect.Effect<void, Unavailable>
}

/** Slices `[range.start, range.end)` out of a whole object, with the port's range rules. */
export const sliceRange = (
  key: string,
  body: Uint8Array,
  range: ByteRange | undefined
): { readonly start: number; readonly end: number } | InvalidRange => {
  if (range === undefined) return { start: 0, end: body.length }
  if (range.start >= body.length) return new InvalidRange({ key, start: range.start, end: range.end, size: body.length })
  return { start: range.start, end: Math.min(range.end ?? body.length, body.length) }
}
