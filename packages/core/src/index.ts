/**
 * @opendata/core: the storage core shared by the TSDB and the EventStore.
 */
export * as Limits from "./limits.ts"
export * as ObjectStore from "./ObjectStore.ts"
export * as Db from "./Db.ts"
export * as Keys from "./Keys.ts"
export * as KeyedLock from "./KeyedLock.ts"
export * as BoundedMap from "./BoundedMap.ts"
