/**
 * @opendata/eventstore: millions of cheap per-key replayable logs on object storage, with a live tail.
 */
export * as EventStore from "./EventStore.ts"
export { layer, make } from "./EventStoreLive.ts"
export type { EventStoreSettings } from "./EventStoreLive.ts"
export * as Limits from "./limits.ts"
export * as EventStoreHttp from "./Http.ts"
