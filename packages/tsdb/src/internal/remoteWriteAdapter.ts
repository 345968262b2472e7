/** A remote-write body (snappy, protobuf 1.0 or 2.0) to the TSDB's write input. */
import * as Limits from "../limits.ts"
import type { LabelsInterner, WriteRequest } from "./remoteWrite/index.ts"
import { decodeWriteRequestV1, decodeWriteRequestV2, snappyDecompress } from "./remoteWrite/index.ts"

export { RemoteWriteDecodeError, RemoteWriteLimitError } from "./remoteWrite/index.ts"

export const decodeRemoteWrite = (body: Uint8Array, v2: boolean, interner?: LabelsInterner | undefined): WriteRequest => {
  const raw = snappyDecompress(body, Limits.writeDecompressedBytesMax)
  return v2 ? decodeWriteRequestV2(raw) : decodeWriteRequestV1(raw, undefined, interner, true)
}
