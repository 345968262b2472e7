/**
 * @opendata/eventstore: millions of cheap per-key replayable logs on object storage, with a live tail.
 */
export * as EventStore from "./EventStore.ts"
export { layer, make } from "./EventStoreLive.ts"
export type { EventStoreSettings } from "./EventStoreLive.ts"
export * as Limits from "./limits.ts"
export * as EventStoreHttp from "./Http.ts"
/** The client of the HTTP and WebSocket API (also `@opendata/eventstore/client`, with nothing else). */
export * as EventStoreClient from "./Client.ts"
export * as Transforms from "./Transforms.ts"
