/**
 * `GET /v1/status`: what the web UI's Status page shows, as JSON: build and version, role, the effective
 * configuration (secrets redacted, as the startup log shows it), uptime, each product's storage (manifest
 * version, epochs, tables and their bytes, WAL objects written, memtables, compaction backlog, cache hit
 * ratios), the products' counters since start (samples, series created: the TSDB's churn; appends), and
 * the EventStore's log count and bytes (summed over at most `statusLogsMax` logs; `complete` says whether
 * that was all of them). The TSDB's head and cardinality are Prometheus's `/api/v1/status/tsdb`.
 */
import { Clock, Context, Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import type { Db } from "@opendata/core"
import { EventStore } from "@opendata/eventstore"
import type { Role, RuntimeConfig } from "./Config.ts"
import { describe as describeConfig } from "./Config.ts"
import * as Metrics from "./Metrics.ts"

/** Each product's Db stats by name (`eventstore`, `tsdb`), registered as the Dbs open. */
export class ProductDbs extends Context.Service<ProductDbs, Map<string, Effect.Effect<Db.DbStats>>>()("@opendata/runtime/ProductDbs") {}

export const layerProductDbs = Layer.sync(ProductDbs, () => new Map())

/** Logs the status page sums over at most (a listing of them, in pages). */
export const statusLogsMax = 10_000
const listPage = 1_000

const ratio = (c: { readonly hits: number; readonly misses: number }) =>
  c.hits + c.misses === 0 ? null : c.hits / (c.hits + c.misses)

const storageOf = (s: Db.DbStats) => ({
  manifestVersion: s.manifestVersion,
  writerEpoch: s.writerEpoch,
  compactorEpoch: s.compactorEpoch,
  durableSeq: s.durableSeq,
  walObjectsWritten: s.walObjectsWritten,
  walBytesWritten: s.walBytesWritten,
  tables: s.tables,
  tableBytes: s.tableBytes,
  tableEntries: s.tableEntries,
  l0Tables: s.l0Tables,
  sortedRuns: s.sortedRuns,
  memtableBytes: s.memtableBytes,
  frozenMemtables: s.frozenMemtables,
  writeQueueDepth: s.writeQueueDepth,
  /** Work compaction has not done yet: level-0 tables and memtables waiting for a flush. */
  compactionBacklog: s.l0Tables + s.frozenMemtables,
  compactions: s.compactions,
  blockCache: { ...s.blockCache, hitRatio: ratio(s.blockCache) },
  metaCache: { ...s.metaCache, hitRatio: ratio(s.metaCache) }
})

/** The EventStore's logs, records and bytes, summed over at most `statusLogsMax` logs. */
const eventStoreTotals = Effect.gen(function*() {
  const store = yield* EventStore.EventStore
  let logs = 0
  let records = 0
  let bytes = 0
  let cursor: string | undefined
  do {
    const page = yield* store.list({ limit: Math.min(listPage, statusLogsMax - logs), cursor })
    for (const log of page.logs) {
      logs += 1
      records += log.records
      bytes += log.bytes
    }
    cursor = page.cursor
  } while (cursor !== undefined && logs < statusLogsMax)
  return { logs, records, bytes, complete: cursor === undefined }
})

/** The route, for a process serving the products in `role`. */
export const routes = (config: RuntimeConfig, role: Role) =>
  Layer.unwrap(Effect.gen(function*() {
    const startedMs = yield* Clock.currentTimeMillis
    return HttpRouter.add(
      "GET",
      "/v1/status",
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const dbs = yield* ProductDbs
        const metrics = yield* Metrics.Metrics
        const storage: Record<string, ReturnType<typeof storageOf>> = {}
        for (const [name, stats] of dbs) storage[name] = storageOf(yield* stats)
        const eventStore = yield* Effect.result(eventStoreTotals)
        return HttpServerResponse.jsonUnsafe({
          build: { version: Metrics.version, node: process.versions.node },
          role,
          startedAt: new Date(startedMs).toISOString(),
          uptimeSeconds: Math.round((now - startedMs) / 1000),
          config: describeConfig(config),
          storage,
          counters: metrics.totals(),
          eventStore: eventStore._tag === "Success" ? eventStore.success : { error: eventStore.failure.message }
        })
      })
    )
  }))
