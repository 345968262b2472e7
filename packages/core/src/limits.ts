/**
 * Named limits of the core package. Every queue, batch, request and retry has a bound; the bounds live
 * here so their relationships can be asserted once, at load.
 */

/** Longest object key, in UTF-8 bytes (S3's limit). */
export const objectKeyBytesMax = 1024

/** Largest object a single `put*` call accepts, in bytes. Bigger objects need a multipart protocol. */
export const objectPutBytesMax = 64 * 1024 * 1024

/** Default and largest page size of `ObjectStore.listPage` (S3 returns at most 1000 keys a page). */
export const listPageSizeDefault = 1000
export const listPageSizeMax = 1000

/** Retries of a retryable object-store failure (attempts = retries + 1). */
export const objectRetriesMax = 6
/** First retry delay; later delays grow exponentially, jittered, up to `objectRetryDelayMaxMs`. */
export const objectRetryDelayBaseMs = 50
export const objectRetryDelayMaxMs = 2_000

/** One S3 request (send to last byte) may take at most this long before it counts as lost. */
export const s3RequestTimeoutMs = 30_000

/** Concurrent requests the S3 client keeps open. */
export const s3SocketsMax = 64

const assert = (condition: boolean, message: string): void => {
  if (!condition) throw new Error(`limits: ${message}`)
}
assert(listPageSizeDefault <= listPageSizeMax, "listPageSizeDefault <= listPageSizeMax")
assert(objectRetryDelayBaseMs <= objectRetryDelayMaxMs, "objectRetryDelayBaseMs <= objectRetryDelayMaxMs")
assert(objectRetriesMax >= 1, "objectRetriesMax >= 1")

// ---------------------------------------------------------------------------------------------------------
// Db (the LSM key-value store)
// ---------------------------------------------------------------------------------------------------------

/** Minimum time between the starts of two WAL writes (group commit); the cost bound of a paid store. */
export const flushIntervalMsDefault = 100
/** Largest WAL object (one batch of writes). */
export const walBatchBytesMax = 8 * 1024 * 1024
/** Write requests waiting in the writer's mailbox before a submitter suspends. */
export const writeQueueMax = 4096
/** Largest key, in bytes (the table format stores key lengths in 16 bits). */
export const dbKeyBytesMax = 16 * 1024
/** Largest value, in bytes. */
export const dbValueBytesMax = 4 * 1024 * 1024
/** Memtable size at which it is frozen and flushed to a level-0 table. */
export const memtableBytesMax = 32 * 1024 * 1024
/** Written but not yet flushed to tables: past this, writers suspend (backpressure). */
export const unflushedBytesMax = 128 * 1024 * 1024
/** Level-0 tables at which a compaction into a sorted run starts. */
export const l0CompactionTrigger = 4
/** Level-0 tables at which memtable flushes wait for compaction (and so writers, once unflushed bytes fill). */
export const l0Max = 16
/** Sorted runs at which they are all merged into one. */
export const sortedRunsMax = 4
/** Target size of a data block, and of one table written by a compaction. */
export const blockBytesTarget = 4 * 1024
/**
 * A compaction's blocks are this many times `blockBytesTarget` (16 KiB by default), and compressed: zstd
 * finds more to share in a larger block (the TSDB's data at rest: 2.37 bytes a sample in 4 KiB blocks, 2.00
 * in 16 KiB), and a read that needs one key of it pays for one object-store range either way.
 */
export const compactedBlockScale = 4
export const sstBytesTarget = 32 * 1024 * 1024
export const bloomBitsPerKey = 10
/** Caches of table blocks and of table metadata (footer, index, bloom). */
export const blockCacheBytes = 64 * 1024 * 1024
export const metaCacheBytes = 16 * 1024 * 1024
/** Garbage collection: how often, and how old an unreferenced object must be before it is deleted. */
export const gcIntervalMs = 60_000
export const gcMinAgeMs = 10 * 60_000
/**
 * How often a process that does not commit every manifest itself (a writer whose compactor runs elsewhere,
 * a read-only follower, a compactor process) reads the latest manifest version.
 */
export const manifestPollMs = 1000
/** Durable batches a change-feed subscriber may lag before the oldest are dropped (it sees the gap). */
export const changeFeedBatchesMax = 1024
/** Restarts of a crashed (defective) actor before the Db gives up and closes. */
export const actorRestartsMax = 5
/** An actor that ran this long since its last (re)start has its restart budget back. */
export const actorRestartWindowMs = 60_000
/** Closing a Db waits at most this long for each of its WAL drain and final flush, then gives up on them. */
export const closeDrainMs = 30_000

assert(walBatchBytesMax <= objectPutBytesMax, "walBatchBytesMax <= objectPutBytesMax")
assert(dbKeyBytesMax <= 65535, "dbKeyBytesMax fits the 16-bit key length of the table format")
assert(dbKeyBytesMax + dbValueBytesMax + 64 <= walBatchBytesMax, "one write fits one WAL object")
assert(memtableBytesMax <= unflushedBytesMax, "memtableBytesMax <= unflushedBytesMax")
assert(l0CompactionTrigger < l0Max, "l0CompactionTrigger < l0Max")
assert(manifestPollMs * 10 <= gcMinAgeMs, "followers adopt new manifests well within the GC lease")
// A table is closed once past its target, so it can exceed it by one key's versions plus the index.
assert(2 * sstBytesTarget <= objectPutBytesMax, "2 * sstBytesTarget <= objectPutBytesMax")
assert(2 * memtableBytesMax <= objectPutBytesMax, "a flushed memtable fits one object")
