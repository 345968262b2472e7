/** The shapes the Status page reads: `GET /v1/status` and Prometheus's `GET /api/v1/status/tsdb`. */

export interface CacheStatus {
  readonly hits: number
  readonly misses: number
  readonly bytes: number
  readonly entries: number
  readonly hitRatio: number | null
}

export interface StorageStatus {
  readonly manifestVersion: number
  readonly writerEpoch: number
  readonly compactorEpoch: number
  readonly durableSeq: number
  readonly walObjectsWritten: number
  readonly walBytesWritten: number
  readonly tables: number
  readonly tableBytes: number
  readonly tableEntries: number
  readonly l0Tables: number
  readonly sortedRuns: number
  readonly memtableBytes: number
  readonly frozenMemtables: number
  readonly writeQueueDepth: number
  readonly compactionBacklog: number
  readonly compactions: number
  readonly blockCache: CacheStatus
  readonly metaCache: CacheStatus
}

export interface ServerStatus {
  readonly build: { readonly version: string; readonly node: string }
  readonly role: string
  readonly startedAt: string
  readonly uptimeSeconds: number
  readonly config: Readonly<Record<string, string | number | boolean>>
  readonly storage: Readonly<Record<string, StorageStatus>>
  readonly counters: {
    readonly tsdbSamplesIngested: number
    readonly tsdbSeriesCreated: number
    readonly eventStoreAppends: number
    readonly eventStoreRecordsAppended: number
  }
  readonly eventStore:
    | { readonly logs: number; readonly records: number; readonly bytes: number; readonly complete: boolean }
    | { readonly error: string }
}

export interface NameValue {
  readonly name: string
  readonly value: number
}

export interface TsdbStatus {
  readonly headStats: {
    readonly numSeries: number
    readonly numLabelPairs: number
    readonly chunkCount: number
    readonly minTime: number
    readonly maxTime: number
  }
  readonly seriesCountByMetricName: ReadonlyArray<NameValue>
  readonly labelValueCountByLabelName: ReadonlyArray<NameValue>
  readonly memoryInBytesByLabelName: ReadonlyArray<NameValue>
  readonly seriesCountByLabelValuePair: ReadonlyArray<NameValue>
}

export interface TransformStatus {
  readonly name: string
  readonly source: { readonly prefix: string } | { readonly log: string }
  readonly status: "running" | "paused"
  readonly recordsIn: number
  readonly recordsOut: number
  readonly samplesOut: number
  readonly lagRecords: number
  readonly lagMs: number
  readonly catchingUp: boolean
  readonly failedLogCount: number
  readonly failedLogs: ReadonlyArray<{ readonly key: string; readonly offset: number; readonly error: string }>
  readonly retrying: string | null
}
