/**
 * @opendata/eventstore: millions of cheap per-key replayable logs on object storage, with a WebSocket live
 * tail. The log model, append/read/tail and consumer groups land here; the package has no public API yet.
 */
export {}
