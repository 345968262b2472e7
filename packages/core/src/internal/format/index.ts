/**
 * The on-disk formats of the store (RFC 0002): entries, WAL objects, sorted tables and their blooms.
 */
export * from "./bloom.ts"
export * from "./bytes.ts"
export * from "./entry.ts"
export * from "./errors.ts"
export * from "./sst.ts"
export * from "./wal.ts"
