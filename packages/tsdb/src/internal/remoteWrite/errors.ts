/**
 * The two ways a remote-write body is refused. A `RemoteWriteDecodeError` is a malformed body (HTTP 400); a
 * `RemoteWriteLimitError` is a well-formed body that asks for more than the receiver accepts (HTTP 413).
 * Decoding throws nothing else.
 */

/** A malformed body: bad snappy stream, bad protobuf wire data, or content the spec forbids. */
export class RemoteWriteDecodeError extends Error {
  override readonly name = "RemoteWriteDecodeError"
  /** The message field (e.g. `TimeSeries.labels`) or stage (`snappy`) at fault. */
  readonly field: string
  /** Why, without the field. */
  readonly reason: string
  /** Byte offset in the decoded buffer where it was noticed, or -1. */
  readonly offset: number

  constructor(field: string, reason: string, offset = -1) {
    super(`remote write: ${field}: ${reason}${offset >= 0 ? ` (at byte ${offset})` : ""}`)
    this.field = field
    this.reason = reason
    this.offset = offset
  }
}

/** A body over one of the receiver's limits. */
export class RemoteWriteLimitError extends Error {
  override readonly name = "RemoteWriteLimitError"
  /** The limit's name, as in `limits` (e.g. `maxSamplesPerRequest`), or `decompressedBytes`. */
  readonly limit: string
  /** The limit's value. */
  readonly max: number

  constructor(limit: string, max: number, detail = "") {
    super(`remote write: over limit ${limit} = ${max}${detail === "" ? "" : `: ${detail}`}`)
    this.limit = limit
    this.max = max
  }
}
