/**
 * Named limits of the EventStore. Every request, batch, page, buffer and background pass has a bound.
 */

/** A log key is 1..logKeyBytesMax bytes of UTF-8 (no NUL). */
export const logKeyBytesMax = 512
/** One record's value plus headers. */
export const recordBytesMax = 1024 * 1024
/** Records in one append. */
export const batchRecordsMax = 1000
/** Bytes in one append (values plus headers). */
export const batchBytesMax = 4 * 1024 * 1024
/**
 * An append's records are stored as one Db entry (a record batch), split into entries of about this many
 * bytes at most when larger (a record bigger than this is an entry of its own).
 */
export const storedBatchBytesMax = 1024 * 1024
/** Headers per record, and bytes of one header name or value. */
export const headersMax = 64
export const headerBytesMax = 4096
/** Producer ids and fencing tokens: bytes. */
export const tokenBytesMax = 256
/** Records one read returns at most, and its default. */
export const readRecordsMax = 10_000
export const readRecordsDefault = 1000
/** Bytes one read returns at most (it stops after the record that crosses this). */
export const readBytesMax = 16 * 1024 * 1024
/** Logs one list page returns at most, and its default. */
export const listLogsMax = 1000
export const listLogsDefault = 100
/** Log metadata kept in memory (least recently used beyond this is dropped, unless it has writes in flight). */
export const metadataCacheEntries = 100_000
/**
 * A log's time index (for reads and tails from a time, and retention by age) gets an entry when an append's
 * timestamp is at least this far past the last entry: finding a time reads at most this much of the log.
 */
export const timeIndexIntervalMs = 250
/**
 * A log's stored metadata is a checkpoint, rewritten once this many records have been appended after it
 * (and by trims, token and retention changes): reading a log's exact metadata counts at most this many
 * records after the checkpoint.
 */
export const metaCheckpointRecords = 256
/** Producer states (last sequence and its answer) held in memory, least recently used dropped first. */
export const producerCacheEntries = 100_000
/** A group of decisions handed to the Db as one write closes before it passes this (a decision is never split). */
export const appendGroupBytesMax = 1024 * 1024
/** Decided writes waiting to be handed to the Db (while it pushes back); past this, appends wait. */
export const appendQueuedBytesMax = 16 * 1024 * 1024
/** How long closing the store waits for decided writes to reach the Db. */
export const closeDrainMs = 10_000
/** Records a tail subscriber may have buffered before it falls back to reading from storage. */
export const tailBufferRecords = 10_000
/** A tail reads storage in pages of this many records while catching up. */
export const tailPageRecords = 500
/**
 * A tail sends a heartbeat after this long without records: often enough for proxies' idle timeouts
 * (commonly 60 s) and for a client to notice a dead connection, rarely enough that idle tails cost little
 * (10,000 idle tails are 333 heartbeats a second at 30 s; at 5 s, 2,000, about a fifth of a core).
 */
export const tailHeartbeatMs = 30_000
/**
 * An append session (`GET /v1/append`): appends it may have in flight (read, not yet answered), and their
 * frames' bytes. At either bound the server stops reading the socket until an answer goes out
 * (backpressure: the client's sends block, nothing is refused).
 */
export const appendSessionAppendsMax = 256
export const appendSessionBytesMax = 16 * 1024 * 1024
/** Retention: how often the background pass runs, and how many logs one pass examines. */
export const retentionIntervalMs = 60_000
export const retentionLogsPerPass = 10_000
/** Record deletions one trim writes per Db batch. */
export const trimBatchRecords = 500
/**
 * A transaction (`transact`): the logs it may append to, and the bytes of all its records (half the Db's
 * largest write, leaving room for keys, metadata and index entries).
 */
export const transactLogsMax = 1000
export const transactBytesMax = 4 * 1024 * 1024
/** A group offset's metadata (a consumer's own state, committed with the offset): UTF-8 bytes. */
export const groupMetadataBytesMax = 64 * 1024
/** Groups `listGroups` lists of one log at most. */
export const listGroupsMax = 1000
/** Group offsets `deleteGroup` deletes per Db batch. */
export const deleteGroupBatch = 1000
/** Transforms: input records one batch reads (and commits) at most, and input logs processed at once. */
export const transformBatchRecords = 500
export const transformConcurrency = 8
/**
 * Input logs a transform remembers as having new records to process; past it, it forgets them and goes
 * through its source's logs from storage instead (memory stays bounded however far behind it falls).
 */
export const transformDirtyLogsMax = 100_000
/** Failed logs a transform remembers by key, and shows in its status. */
export const transformFailedLogsKept = 10_000
export const transformFailedLogsShown = 100
/** Retries of what the store or the TSDB refuses for now: backoff from the first to the last. */
export const transformRetryFirstMs = 100
export const transformRetryMaxMs = 10_000
/**
 * A transform also goes through its source's logs this often, in case its tail could not tell it of some
 * appends (a tail drops deliveries it cannot buffer).
 */
export const transformRescanMs = 5 * 60_000

const assert = (condition: boolean, message: string): void => {
  if (!condition) throw new Error(`limits: ${message}`)
}
assert(recordBytesMax <= batchBytesMax, "recordBytesMax <= batchBytesMax")
// A stored batch (records up to storedBatchBytesMax, then one more record with its lengths) fits a Db value.
assert(storedBatchBytesMax + recordBytesMax + 64 * headersMax <= 4 * 1024 * 1024, "a stored batch fits a Db value")
assert(readRecordsDefault <= readRecordsMax, "readRecordsDefault <= readRecordsMax")
assert(listLogsDefault <= listLogsMax, "listLogsDefault <= listLogsMax")
