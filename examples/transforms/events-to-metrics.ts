/**
 * From events to metrics: HTTP access-log events appended to `http-logs/<service>` as JSON (`{ "status":
 * 200, "path": "/x", "ms": 12 }`) become the cumulative counter `http_requests_total{service, status}` in
 * the TSDB, which PromQL then queries, all in process. The transform keeps a running count per status for
 * each input log (its state) and writes, for each event, one sample: the new count of its status, at the
 * event's timestamp.
 *
 * Samples count once like the log outputs do: they are written before the transform's position is
 * committed, and a batch processed again after a crash writes the same values at the same timestamps,
 * which the TSDB takes as no-ops.
 *
 *   npm run transform-metrics -w examples
 *
 * Exits 1 if the PromQL results do not match the events appended, within 10 seconds.
 */
import { Effect, Layer } from "effect"
import { EventStore, Transforms } from "@opendata/eventstore"
import { OpenData } from "@opendata/runtime"
import { PromQL, Tsdb } from "@opendata/tsdb"
import { waitUntil } from "./wait.ts"

interface AccessEvent {
  readonly status: number
  readonly path: string
  readonly ms: number
}

interface Counts {
  /** Requests so far, per status. */
  readonly byStatus: Readonly<Record<string, number>>
  /** The timestamp of the last sample written. */
  readonly lastMs: number
}

const toMetrics = Transforms.define({
  name: "http-metrics",
  source: { prefix: "http-logs/" },
  transform: {
    initial: { byStatus: {}, lastMs: 0 },
    step: (state: Counts, record) => {
      const event = record.json() as AccessEvent
      const status = String(event.status)
      const count = (state.byStatus[status] ?? 0) + 1
      // The record's timestamp; but records appended together share one, and a series holds one value per
      // timestamp (of several, one would count), so a record at the previous one's timestamp gets 1 ms more.
      const timestampMs = Math.max(record.timestamp, state.lastMs + 1)
      return {
        state: { byStatus: { ...state.byStatus, [status]: count }, lastMs: timestampMs },
        outputs: {
          labels: { __name__: "http_requests_total", service: record.key.slice("http-logs/".length), status },
          value: count,
          timestampMs
        }
      }
    }
  }
})

/** Access-log events per service: a fixed mix of statuses, so the expected counts are known. */
const statuses = [200, 200, 404, 200, 500, 200, 301]
const traffic: ReadonlyArray<readonly [service: string, events: ReadonlyArray<AccessEvent>]> = [
  ["api", Array.from({ length: 30 }, (_, i) => ({ status: statuses[i % statuses.length]!, path: `/api/items/${i % 4}`, ms: 5 + (i * 7) % 40 }))],
  ["web", Array.from({ length: 12 }, (_, i) => ({ status: statuses[(i * 3) % statuses.length]!, path: i % 2 === 0 ? "/" : "/about", ms: 20 + i }))]
]
const total = traffic.reduce((n, [, events]) => n + events.length, 0)

/** Runs `query` now and returns its samples as `{ "<label value>": value }` by the one label it groups by. */
const queryBy = (tsdb: Tsdb.TsdbShape, query: string, label: string) =>
  Effect.gen(function*() {
    // A minute ahead: the newest samples may be a few ms in the future (see timestampMs above).
    const result = yield* PromQL.instantQuery(tsdb, query, Date.now() + 60_000)
    if (result.type !== "vector") return yield* Effect.fail(new Error(`${query}: a ${result.type}, expected a vector`))
    const values: Record<string, number> = {}
    for (const s of result.samples) values[Object.fromEntries(s.labels)[label] ?? ""] = s.v
    console.log(`${query}:`)
    for (const [k, v] of Object.entries(values).sort()) console.log(`  ${label}=${k}  ${v}`)
    return values
  })

const same = (a: Record<string, number>, b: Record<string, number>) =>
  JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort())

const app = Effect.gen(function*() {
  const events = yield* EventStore.EventStore
  const transforms = yield* Transforms.Transforms
  const tsdb = yield* Tsdb.Tsdb
  const encoder = new TextEncoder()

  // Appended in batches of 5: the records of a batch share a timestamp.
  for (const [service, list] of traffic) {
    for (let i = 0; i < list.length; i += 5) {
      yield* events.append(`http-logs/${service}`, list.slice(i, i + 5).map((e) => ({ value: encoder.encode(JSON.stringify(e)) })))
    }
  }
  console.log(`appended ${total} access-log events: ${traffic.map(([s, l]) => `${l.length} to http-logs/${s}`).join(", ")}`)

  // A record counts as processed once its position is committed, after its samples were written.
  yield* waitUntil(`${total} events processed`, Effect.map(transforms.get(toMetrics.name), (i) => i.recordsIn === total))
  const info = yield* transforms.get(toMetrics.name)
  console.log(`${info.name}: ${info.recordsIn} in, ${info.samplesOut} samples out, ${info.samplesRejected} rejected, failed logs ${info.failedLogCount}`)
  if (info.samplesOut !== total || info.samplesRejected > 0) {
    return yield* Effect.fail(new Error(`${info.samplesOut} samples written and ${info.samplesRejected} rejected by the TSDB, expected ${total} and 0`))
  }

  const expectedByStatus: Record<string, number> = {}
  const expectedByService: Record<string, number> = {}
  for (const [service, list] of traffic) {
    expectedByService[service] = list.length
    for (const e of list) expectedByStatus[e.status] = (expectedByStatus[e.status] ?? 0) + 1
  }
  const byStatus = yield* queryBy(tsdb, "sum by (status) (http_requests_total)", "status")
  const byService = yield* queryBy(tsdb, "sum by (service) (http_requests_total)", "service")
  if (!same(byStatus, expectedByStatus)) {
    return yield* Effect.fail(new Error(`by status: ${JSON.stringify(byStatus)}, expected ${JSON.stringify(expectedByStatus)}`))
  }
  if (!same(byService, expectedByService)) {
    return yield* Effect.fail(new Error(`by service: ${JSON.stringify(byService)}, expected ${JSON.stringify(expectedByService)}`))
  }
})

Effect.runPromise(
  app.pipe(Effect.provide(OpenData.layerTransforms([toMetrics]).pipe(Layer.provideMerge(OpenData.layer({ store: { kind: "memory" } })))))
).then(
  () => console.log("ok: the counters match the events appended"),
  (e) => {
    console.error(`transform-metrics failed: ${e instanceof Error ? e.message : String(e)}`)
    process.exit(1)
  }
)
