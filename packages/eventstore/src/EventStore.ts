/**
 * EventStore: millions of cheap per-key replayable logs on the core `Db`.
 *
 * A log is named by a key (1..512 bytes of UTF-8, no NUL). Its records have contiguous offsets from 0, a
 * system timestamp (ms, assigned at append, non-decreasing within the log), an optional producer event
 * time, string headers and a byte value. A log costs its bytes: there is no file, partition or object per
 * log; all logs share the Db's WAL and tables.
 *
 * Key layout in the Db (`eventstore/` path), with `\0` ending the log key:
 *   m<key>                  log metadata (JSON)
 *   r<key>\0<offset u64>    one record (see internal/record.ts)
 *   t<key>\0<ts u64>        time index: the first offset with that timestamp
 *   p<key>\0<producer id>   the last producer sequence and its offsets (idempotent retries)
 *   g<group>\0<key>         a consumer group's committed offset
 */
import type { Effect, Scope, Stream } from "effect"
import { Context, Schema } from "effect"

export interface RecordInput {
  readonly value: Uint8Array
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** Producer's event time, ms since the epoch. */
  readonly eventTime?: number | undefined
}

export interface LogRecord {
  readonly offset: number
  /** System time of the append, ms since the epoch; non-decreasing within a log. */
  readonly timestamp: number
  readonly eventTime?: number | undefined
  readonly headers: Readonly<Record<string, string>>
  readonly value: Uint8Array
}

export interface AppendOptions {
  /** Append only if the log's next offset is this (optimistic concurrency). */
  readonly expectedOffset?: number | undefined
  /** Required once the log has a fencing token: must equal it. */
  readonly fencingToken?: string | undefined
  /** Idempotent retries: a retried (producerId, producerSeq) returns the original offsets. */
  readonly producerId?: string | undefined
  readonly producerSeq?: number | undefined
}

/** An append decided and queued (`appendQueued`): its offsets, and the wait until it is durable. */
export interface QueuedAppend {
  readonly result: AppendResult
  readonly durable: Effect.Effect<void, Unavailable>
}

/**
 * A tail read by polling. `poll` gives the events there are now (catching up from storage first), or none
 * when the next would have to be waited for; `whenReady` then calls back once, when `poll` may give more:
 * records became durable, deliveries were lost (the next poll reads storage), or a heartbeat is due. It
 * calls back at once if there is something already; it returns its cancellation.
 */
export interface TailCursor {
  readonly poll: Effect.Effect<ReadonlyArray<TailEvent>, Unavailable>
  readonly whenReady: (ready: () => void) => () => void
}

/** An append decided at once (`appendNow`): its offsets, and its durability as a callback as well. */
export interface DecidedAppend extends QueuedAppend {
  /**
   * Calls `callback` (synchronously, once) when the append is durable (`undefined`) or has failed (the
   * error); at once if that is known already.
   */
  readonly whenDurable: (callback: (failure: Unavailable | undefined) => void) => void
}

export interface AppendResult {
  /** The offsets assigned to the records, in order. */
  readonly offsets: ReadonlyArray<number>
  /** The log's next offset after this append. */
  readonly next: number
}

export interface ReadOptions {
  /** First offset to read (inclusive). Default: the log's first offset. */
  readonly from?: number | undefined
  /** Or: the first record with a timestamp at or after this (ms). */
  readonly fromTime?: number | undefined
  /** At most this many records (default readRecordsDefault, at most readRecordsMax). */
  readonly limit?: number | undefined
  /** Stop after the record that crosses this many value bytes (at most readBytesMax). */
  readonly maxBytes?: number | undefined
}

export interface ReadResult {
  readonly records: ReadonlyArray<LogRecord>
  /** The offset to read next. */
  readonly next: number
}

export interface Retention {
  /** Records older than this (by system timestamp) are trimmed. */
  readonly maxAgeMs?: number | undefined
  /** The oldest records are trimmed while the log holds more than this many bytes. */
  readonly maxBytes?: number | undefined
}

export interface LogMeta {
  readonly key: string
  /** First offset still stored (records below were trimmed). */
  readonly firstOffset: number
  readonly nextOffset: number
  /** Bytes of the stored records (values and headers). */
  readonly bytes: number
  readonly records: number
  readonly createdMs: number
  readonly lastAppendMs: number | undefined
  readonly retention: Retention | undefined
  /** Whether appends need a fencing token. */
  readonly fenced: boolean
}

export interface ListOptions {
  readonly prefix?: string | undefined
  /** From a previous page's `cursor`. */
  readonly cursor?: string | undefined
  readonly limit?: number | undefined
}

export interface ListResult {
  readonly logs: ReadonlyArray<LogMeta>
  /** Pass as `cursor` for the next page; absent on the last page. */
  readonly cursor: string | undefined
}

export type TailStart =
  | { readonly _tag: "offset"; readonly offset: number }
  | { readonly _tag: "time"; readonly time: number }
  | { readonly _tag: "now" }

export type TailEvent =
  | { readonly _tag: "records"; readonly key: string; readonly records: ReadonlyArray<LogRecord> }
  /** Sent while idle: the next offset the subscriber will get (for one log), so it can resume from it. */
  | { readonly _tag: "heartbeat"; readonly key: string | undefined; readonly next: number | undefined }

export interface GroupOffset {
  readonly group: string
  readonly key: string
  /** The committed offset (the next record the group will consume), or undefined if none. */
  readonly offset: number | undefined
  /** next offset of the log - committed offset (the whole log if nothing was committed). */
  readonly lag: number
  /** What the consumer committed with the offset (as Kafka's offset metadata), if anything. */
  readonly metadata?: string | undefined
}

/** One log's records in a transaction. */
export interface TransactAppend {
  readonly key: string
  readonly records: ReadonlyArray<RecordInput>
}

/** A group offset committed with a transaction, with the consumer's own metadata (its state, say). */
export interface OffsetCommit {
  readonly group: string
  readonly key: string
  readonly offset: number
  readonly metadata?: string | undefined
}

/** A transaction's answer: one append result per append given, in order. */
export interface TransactResult {
  readonly results: ReadonlyArray<AppendResult>
}

// -------------------------------------------------------------------------------------------------
// Errors (each maps to one HTTP status in the API)
// -------------------------------------------------------------------------------------------------

/** 400: a field of the request is invalid. */
export class InvalidInput extends Schema.TaggedError<InvalidInput>()("InvalidInput", {
  field: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `invalid ${this.field}: ${this.reason}`
  }
}

/** 404: no such log. */
export class LogNotFound extends Schema.TaggedError<LogNotFound>()("LogNotFound", { key: Schema.String }) {
  override get message() {
    return `no log ${JSON.stringify(this.key)}`
  }
}

/** 409: `expectedOffset` did not match; `next` is the log's actual next offset. */
export class OffsetConflict extends Schema.TaggedError<OffsetConflict>()("OffsetConflict", {
  key: Schema.String,
  expected: Schema.Number,
  next: Schema.Number
}) {
  override get message() {
    return `log ${JSON.stringify(this.key)}: expected next offset ${this.expected}, actual ${this.next}`
  }
}

/** 409: the fencing token is missing or stale. */
export class FencingConflict extends Schema.TaggedError<FencingConflict>()("FencingConflict", {
  key: Schema.String,
  next: Schema.Number
}) {
  override get message() {
    return `log ${JSON.stringify(this.key)}: fencing token missing or stale`
  }
}

/** 413: over a named limit. */
export class LimitExceeded extends Schema.TaggedError<LimitExceeded>()("LimitExceeded", {
  field: Schema.String,
  limit: Schema.Number
}) {
  override get message() {
    return `${this.field} is over its limit of ${this.limit}`
  }
}

/** 416: the requested offset was trimmed; `first` is the first one still stored. */
export class OffsetTrimmed extends Schema.TaggedError<OffsetTrimmed>()("OffsetTrimmed", {
  key: Schema.String,
  requested: Schema.Number,
  first: Schema.Number
}) {
  override get message() {
    return `log ${JSON.stringify(this.key)}: offset ${this.requested} was trimmed; the first available is ${this.first}`
  }
}

/** 503: the store is unavailable, or this process stopped writing (fenced, closed). Retry later. */
export class Unavailable extends Schema.TaggedError<Unavailable>()("EventStoreUnavailable", {
  reason: Schema.String
}) {
  override get message() {
    return `event store unavailable: ${this.reason}`
  }
}

export type EventStoreError =
  | InvalidInput
  | LogNotFound
  | OffsetConflict
  | FencingConflict
  | LimitExceeded
  | OffsetTrimmed
  | Unavailable

// -------------------------------------------------------------------------------------------------
// The service
// -------------------------------------------------------------------------------------------------

export interface EventStoreShape {
  /** Appends a batch atomically; answers once it is durable. Creates the log on first append. */
  readonly append: (
    key: string,
    records: ReadonlyArray<RecordInput>,
    options?: AppendOptions
  ) => Effect.Effect<AppendResult, InvalidInput | LimitExceeded | OffsetConflict | FencingConflict | Unavailable>
  /**
   * `append` in two steps, for pipelining (append sessions): succeeds once the batch's offsets are
   * decided and its write is queued, with `durable`, which completes once it is durable (the append is
   * acknowledged only then). Appends to one log get their offsets in the order their decisions complete,
   * so a caller that starts the next append to a log after the previous one's decision keeps its order.
   */
  readonly appendQueued: (
    key: string,
    records: ReadonlyArray<RecordInput>,
    options?: AppendOptions
  ) => Effect.Effect<QueuedAppend, InvalidInput | LimitExceeded | OffsetConflict | FencingConflict | Unavailable>
  /**
   * `appendQueued` without an effect, when it can be decided at once (the log's state is in memory and
   * nothing waits): the decided append or its error, or undefined when it must wait (call `appendQueued`).
   * For callers that take many appends at once (append sessions) and must not spend an effect on each.
   */
  readonly appendNow?: (
    key: string,
    records: ReadonlyArray<RecordInput>,
    options?: AppendOptions
  ) => DecidedAppend | InvalidInput | LimitExceeded | OffsetConflict | FencingConflict | Unavailable | undefined
  readonly read: (
    key: string,
    options?: ReadOptions
  ) => Effect.Effect<ReadResult, InvalidInput | LogNotFound | OffsetTrimmed | Unavailable>
  readonly meta: (key: string) => Effect.Effect<LogMeta, InvalidInput | LogNotFound | Unavailable>
  readonly list: (options?: ListOptions) => Effect.Effect<ListResult, InvalidInput | Unavailable>
  /** Deletes a log and everything in it. */
  readonly delete: (key: string) => Effect.Effect<void, InvalidInput | LogNotFound | Unavailable>
  /** Trims every record below `before`. */
  readonly trim: (key: string, before: number) => Effect.Effect<LogMeta, InvalidInput | LogNotFound | Unavailable>
  /**
   * Sets (or with `undefined`, removes) the log's fencing token. If the log has one, `current` must equal
   * it. From then on appends must carry the new token. Creates the log if needed.
   */
  readonly setFencingToken: (
    key: string,
    token: string | undefined,
    current?: string
  ) => Effect.Effect<LogMeta, InvalidInput | FencingConflict | Unavailable>
  /** Sets (or removes) the log's retention; the default applies otherwise. */
  readonly setRetention: (
    key: string,
    retention: Retention | undefined
  ) => Effect.Effect<LogMeta, InvalidInput | LogNotFound | Unavailable>
  readonly commitOffset: (
    group: string,
    key: string,
    offset: number,
    metadata?: string
  ) => Effect.Effect<GroupOffset, InvalidInput | LimitExceeded | LogNotFound | Unavailable>
  /**
   * The groups that committed an offset of the log, by group name (at most `listGroupsMax`), each with its
   * offset, lag and metadata. Deleting the log deletes its groups' offsets.
   */
  readonly listGroups: (key: string) => Effect.Effect<ReadonlyArray<GroupOffset>, InvalidInput | LogNotFound | Unavailable>
  /** Deletes every offset `group` committed (all logs); returns how many. */
  readonly deleteGroup: (group: string) => Effect.Effect<number, InvalidInput | Unavailable>
  /**
   * Appends to several logs and, optionally, commits a group offset with metadata, atomically: after a
   * crash, all of it or none of it is there (what Kafka's transactions with `sendOffsetsToTransaction`
   * give a consume-transform-produce loop). Answers once durable. A fenced log refuses it
   * (`FencingConflict`); at most `transactLogsMax` logs and `transactBytesMax` bytes.
   */
  readonly transact: (
    appends: ReadonlyArray<TransactAppend>,
    commit?: OffsetCommit
  ) => Effect.Effect<TransactResult, InvalidInput | LimitExceeded | OffsetConflict | FencingConflict | LogNotFound | Unavailable>
  readonly fetchOffset: (group: string, key: string) => Effect.Effect<GroupOffset, InvalidInput | LogNotFound | Unavailable>
  /**
   * Follows one log: catches up from storage from `start`, then delivers durable appends as they happen,
   * with no gap and no duplicate; heartbeats while idle. A slow subscriber falls back to storage reads.
   */
  readonly tail: (key: string, start: TailStart) => Stream.Stream<TailEvent, InvalidInput | OffsetTrimmed | Unavailable>
  /**
   * Follows every log whose key starts with `prefix`, from now on: a heartbeat first, once subscribed, then
   * every durable append under the prefix.
   */
  readonly tailPrefix: (prefix: string) => Stream.Stream<TailEvent, InvalidInput | Unavailable>
  /**
   * `tail` read by polling, for a server holding many tails: nothing runs, and no fiber waits, while the
   * tail is idle. Follows the log until the scope closes.
   */
  readonly tailCursor: (key: string, start: TailStart) => Effect.Effect<TailCursor, InvalidInput | OffsetTrimmed | Unavailable, Scope.Scope>
  /** `tailPrefix` read by polling (see `tailCursor`). */
  readonly tailPrefixCursor: (prefix: string) => Effect.Effect<TailCursor, InvalidInput | Unavailable, Scope.Scope>
  /** Runs one retention pass now (normally done every retentionIntervalMs); returns the logs trimmed. */
  readonly enforceRetention: Effect.Effect<number, Unavailable>
}

export class EventStore extends Context.Service<EventStore, EventStoreShape>()("@opendata/eventstore/EventStore") {}

export type { Scope }
