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
