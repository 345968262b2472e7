/** A remote-write body (snappy, protobuf 1.0 or 2.0) to the TSDB's write input. */
import * as Limits from "../limits.ts"
import type { LabelsInterner, WriteRequest } from "./remoteWrite/index.ts"
import { ColumnPool, decodeWriteRequestV1, decodeWriteRequestV2, snappyDecompress } from "./remoteWrite/index.ts"

export { RemoteWriteDecodeError, RemoteWriteLimitError } from "./remoteWrite/index.ts"

/**
 * The decompressed body is decoded at once and nothing decoded refers to its bytes (strings and numbers
 * are copied out), so one buffer serves every request (decoding is synchronous), kept up to this size.
 */
const keptBodyBytesMax = 16 * 1024 * 1024
let body: Uint8Array = new Uint8Array(0)

/** The float samples' columns of the requests decoded here, for the next ones once `releaseRemoteWrite` gives them back. */
const columns = new ColumnPool(Limits.writeColumnsPooled, Limits.writeColumnsPooledSamplesMax)

/** Decodes a remote-write body; once nothing reads the request any more, `releaseRemoteWrite` it. */
export const decodeRemoteWrite = (compressed: Uint8Array, v2: boolean, interner?: LabelsInterner | undefined): WriteRequest => {
  const raw = snappyDecompress(compressed, Limits.writeDecompressedBytesMax, body)
  if (raw.buffer !== body.buffer && raw.length <= keptBodyBytesMax) body = raw
  return v2 ? decodeWriteRequestV2(raw) : decodeWriteRequestV1(raw, undefined, interner, columns)
}

/**
 * Gives a decoded request's sample columns back for later requests: its series' `sampleColumns` must not
 * be read after this (the next request decodes into them). Not calling it is safe (they are collected).
 */
export const releaseRemoteWrite = (request: WriteRequest): void => columns.release(request)
