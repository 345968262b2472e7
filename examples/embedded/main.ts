/**
 * An Effect app with OpenData embedded: it appends events to a log and follows them as a Stream,
 * writes samples to the TSDB, selects them back and runs a PromQL query over them, all in process, on the
 * memory store (pass a directory to use the local store instead).
 *
 *   npm run embedded -w examples [-- ./some-dir]
 */
import { Effect, Fiber, Stream } from "effect"
import { EventStore } from "@opendata/eventstore"
import { OpenData } from "@opendata/runtime"
import { PromQL, Tsdb } from "@opendata/tsdb"

const text = new TextEncoder()

const app = Effect.gen(function*() {
  const events = yield* EventStore.EventStore
  const tsdb = yield* Tsdb.Tsdb

  // Follow a log from its start while appending to it: the tail sees every record, in order, once.
  const tail = yield* Effect.forkChild(
    events.tail("orders/42", { _tag: "offset", offset: 0 }).pipe(
      Stream.filter((e) => e._tag === "records"),
      Stream.flatMap((e) => Stream.fromIterable(e._tag === "records" ? e.records : [])),
      Stream.take(3),
      Stream.map((r) => `${r.offset}: ${new TextDecoder().decode(r.value)}`),
      Stream.runCollect
    )
  )
  yield* events.append("orders/42", [{ value: text.encode("created") }])
  yield* events.append("orders/42", [{ value: text.encode("paid") }, { value: text.encode("shipped") }], { expectedOffset: 1 })
  console.log("tailed:", yield* Fiber.join(tail))

  // Samples in, series out, as Prometheus's remote write and the PromQL engine would.
  // A minute ago (samples before the retention horizon, 15 days by default, are refused).
  const now = Math.floor(Date.now() / 60_000) * 60_000 - 60_000
  yield* tsdb.write({
    series: [0, 1, 2].map((i) => ({
      labels: [["__name__", "http_requests_total"], ["code", "200"], ["instance", `web-${i}`]] as Array<[string, string]>,
      samples: [{ timestampMs: now, value: 10 * i }, { timestampMs: now + 15_000, value: 10 * i + 3 }]
    }))
  })
  const selected = yield* tsdb.select(
    [{ name: "__name__", type: "=", value: "http_requests_total" }, { name: "instance", type: "=~", value: "web-[12]" }],
    now,
    now + 60_000
  )
  for (const s of selected) console.log(Object.fromEntries(s.labels), Array.from(s.values))

  // PromQL in process, over the same TSDB.
  const result = yield* PromQL.instantQuery(tsdb, 'sum by (code) (rate(http_requests_total[1m]))', now + 15_000)
  if (result.type === "vector") for (const s of result.samples) console.log("rate:", Object.fromEntries(s.labels), s.v)
})

const root = process.argv[2]
Effect.runPromise(
  app.pipe(Effect.provide(OpenData.layer({ store: root === undefined ? { kind: "memory" } : { kind: "local", root } })))
).then(
  () => console.log("done"),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
