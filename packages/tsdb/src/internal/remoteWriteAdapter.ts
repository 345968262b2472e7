/** A remote-write body (snappy, protobuf 1.0 or 2.0) to the TSDB's write input. */
import * as Limits from "../limits.ts"
import type { LabelsInterner, WriteRequest } from "./remoteWrite/index.ts"
import { decodeWriteRequestV1, decodeWriteRequestV2, snappyDecompress } from "./remoteWrite/index.ts"

export { RemoteWriteDecodeError, RemoteWriteLimitError } from "./remoteWrite/index.ts"

/**
 * The decompressed body is decoded at once and nothing decoded refers to its bytes (strings and numbers
 * are copied out), so one buffer serves every request (decoding is synchronous), kept up to this size.
 */
const keptBodyBytesMax = 16 * 1024 * 1024
let body: Uint8Array = new Uint8Array(0)

export const decodeRemoteWrite = (compressed: Uint8Array, v2: boolean, interner?: LabelsInterner | undefined): WriteRequest => {
  const raw = snappyDecompress(compressed, Limits.writeDecompressedBytesMax, body)
  if (raw.buffer !== body.buffer && raw.length <= keptBodyBytesMax) body = raw
  return v2 ? decodeWriteRequestV2(raw) : decodeWriteRequestV1(raw, undefined, interner, true)
}
