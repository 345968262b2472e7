/**
 * Named limits of the TSDB. Every request, series, buffer and background pass has a bound.
 */

/** A remote-write request body, compressed, and once decompressed. */
export const writeBodyBytesMax = 32 * 1024 * 1024
export const writeDecompressedBytesMax = 256 * 1024 * 1024
/**
 * Sample columns kept for the decodes of later remote-write requests (as many as senders usually have in
 * flight), each pair of at most this many samples (16 B a sample: 4 MiB a pair, 16 MiB in all at most).
 */
export const writeColumnsPooled = 4
export const writeColumnsPooledSamplesMax = 256 * 1024
/** A form-encoded query body (POST /api/v1/query and the like); Prometheus's cap is the same 10 MB. */
export const formBodyBytesMax = 10 * 1024 * 1024
/** Samples older than the newest sample of their series by at most this are accepted (out of order). */
export const outOfOrderWindowMs = 10 * 60_000
/** Out-of-order samples buffered per series before they are sealed into a chunk. */
export const outOfOrderBufferSamples = 120
/** Width of an index and chunk time bucket. */
export const bucketMs = 2 * 60 * 60_000
/** Samples in a chunk before it is sealed (Prometheus cuts at about 120). */
export const chunkSamplesMax = 120
/** Series kept in memory with their head state (least recently written beyond this are dropped). */
export const headSeriesMax = 1_000_000
/**
 * Float chunks a series' head keeps in memory after sealing them (besides storing them), newest first,
 * from its last two buckets at most: queries over recent data read them from memory, as Prometheus's head
 * block holds its chunks, instead of a Db read per series and bucket.
 */
export const recentChunksMax = 8
/** Remote-write label sets remembered by their bytes, so that a series sent again is not decoded again. */
export const remoteWriteLabelsCacheMax = 1_000_000
/**
 * The heads are checkpointed (each changed head written whole, the log records it covers deleted) after
 * this many log records or bytes of them since the last checkpoint, whichever comes first: what a restart
 * replays is bounded by these.
 */
export const headCheckpointRecords = 4096
export const headCheckpointBytes = 32 * 1024 * 1024
/** A checkpoint is written in Db batches of at most this many bytes of heads. */
export const headCheckpointBatchBytes = 4 * 1024 * 1024
/**
 * Label sets of series kept in memory for selections, by id (a series' labels never change): beyond this
 * the first cached goes first. Some 200 bytes each, 20 MB at the limit.
 */
export const seriesLabelsCacheMax = 100_000
/**
 * Label hashes the writer keeps in memory to know a never-seen series is new without a dictionary scan
 * (8 bytes of key a series, some 40 MB at the limit); past it every new series scans the dictionary.
 */
export const knownHashesMax = 1_000_000
/** Series one selection may return. */
export const selectSeriesMax = 500_000
/**
 * Samples one query may select over all its selectors (Prometheus's `--query.max-samples` default).
 * Selected samples are held as two float64 columns, 16 bytes each outside the JavaScript heap (no object
 * per sample), so a query at the limit holds about 800 MB of samples; past it the query fails with
 * Prometheus's "query processing would load too many samples into memory" (HTTP 422, `execution`).
 */
export const querySamplesMax = 50_000_000
/** How long a query may run unless the server is configured otherwise (Prometheus's `--query.timeout`). */
export const queryTimeoutMsDefault = 2 * 60_000
/**
 * A selection of at least `selectScanSeriesMin` series whose ids span at most `selectScanSpanPerSeriesMax`
 * ids per selected series reads their chunks with one scan per time bucket over that span (reading, and
 * skipping, the chunks of the other series in it) instead of one scan per series and bucket.
 */
export const selectScanSeriesMin = 32
/**
 * 2: a selection of one metric among a few per target (8 of 34 series, ids 4.25 apart) reads only its own
 * series' chunks; with 8 the one scan read four times the chunks needed, and evicted the block cache
 * (bench:promql at 10,000 series: `sum(rate(...))` 1.76 s -> 1.11 s, `increase(...[1h])` 1.15 s -> 0.49 s).
 */
export const selectScanSpanPerSeriesMax = 2
/**
 * Compiled PromQL regexes kept, per kind (selector matchers, `label_replace` regexes); past it the
 * oldest is dropped. Prometheus's `FastRegexMatcher` cache holds as many.
 */
export const regexCacheMax = 10_000
/** Label names and values the label APIs return at most. */
export const labelValuesMax = 100_000
/**
 * Buckets whose postings (label names, values and the series holding each) are kept in memory for
 * selections and the label APIs (the least recently asked for goes first): 24 two-hour buckets, the last
 * two days, what dashboards ask about, and at most `postingsCacheBytes` of them (as the heap holds them,
 * roughly: 10,000 series of 6 labels take about 1.5 MB a bucket, so 24 buckets fit up to some 400,000
 * series; with more, fewer buckets stay). The bucket a request reads stays while it reads.
 */
export const postingsBucketsMax = 24
export const postingsCacheBytes = 64 * 1024 * 1024
/**
 * How long a selection waits for the Db's change feed to bring the postings index up to the durable
 * watermark (it follows within a tick) before reading the index again from storage instead.
 */
export const postingsFeedWaitMs = 1_000
/**
 * How deep a PromQL expression may nest: the parser rejects a query whose syntax tree would be more than
 * this many nodes deep, counting every operand, argument, parenthesis, sign, subquery and duration
 * expression (a chain `a + b + c + ...` is as deep as it is long), with the parse error "expression nested
 * too deeply (more than 256 levels)" (HTTP 400, `bad_data`). Prometheus has no cap (Go stacks grow); here
 * the parser, the type checker, the printer (`format_query`) and the JSON encoder (`parse_query`) recurse
 * over the tree on Node's fixed stack of about 1 MB. The most stack per level goes to nested aggregations
 * (six parser frames a level): measured behind the HTTP server they overflow at about 1,000 levels before
 * V8 has compiled the parser (the first requests) and 1,500 after; the evaluator runs on Effect's fiber loop
 * and uses no stack per level. 256 keeps a fourfold margin in the worst case and is far deeper than
 * queries are written (a longer `or` chain can be grouped with parentheses: `(a or b) or (c or d)`).
 */
export const promqlDepthMax = 256
/** Retention: default age of samples kept, and how often the background pass runs. */
export const retentionMsDefault = 15 * 24 * 60 * 60_000
export const retentionIntervalMs = 60 * 60_000
/** Exemplars kept, over all series (Prometheus's `storage.exemplars.max_exemplars`): one circular buffer. */
export const exemplarsMax = 100_000
/**
 * OTLP delta to cumulative conversion (`convertDeltaToCumulative`): the running totals of at most this many
 * streams are kept in memory, per server process; past it the least recently updated stream is dropped
 * (its next point starts its total again, a counter reset to PromQL).
 */
export const otlpDeltaStreamsMax = 100_000
/**
 * A stream not updated for this long is dropped (the OpenTelemetry Collector's `deltatocumulative`
 * processor's `max_stale` default, which Prometheus's `otlp-deltatocumulative` uses).
 */
export const otlpDeltaStaleMs = 5 * 60_000
/**
 * The estimated bytes of all streams' state together (keys, totals, histogram buckets); past it the least
 * recently updated streams are dropped as past `otlpDeltaStreamsMax`. Bounds memory when streams are
 * histograms with many buckets, which the stream count alone would not.
 */
export const otlpDeltaStateBytesMax = 256 * 1024 * 1024

const assert = (condition: boolean, message: string): void => {
  if (!condition) throw new Error(`limits: ${message}`)
}
assert(writeBodyBytesMax <= writeDecompressedBytesMax, "writeBodyBytesMax <= writeDecompressedBytesMax")
assert(chunkSamplesMax <= 65535, "chunkSamplesMax fits the chunk header")
assert(outOfOrderWindowMs < bucketMs, "outOfOrderWindowMs < bucketMs")
assert(Number.isSafeInteger(promqlDepthMax) && promqlDepthMax >= 1, "promqlDepthMax is a positive integer")
