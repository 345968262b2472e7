/**
 * Prometheus remote write (1.0 and 2.0) request decoding: snappy block decompression with a size limit,
 * protobuf decoding into one normalized shape, limits, and encoders for tests and benchmarks.
 */
export * from "./decode.ts"
export { snappyCompress, snappyDecompress, snappyUncompressedLength } from "./snappy.ts"
