/**
 * A stateless transform, embedded: every JSON order appended to `orders/<customer>` is written again to
 * `orders-enriched/<customer>` with a computed `total` and a `tier` label. Each output carries its
 * provenance in the `opendata-source` header (`<input key>@<offset>`), and is written exactly once: the
 * outputs and the transform's position in the input log are committed in one transaction.
 *
 *   npm run transform-enrich -w examples [-- ./some-dir]     (the memory store, or the local one in a directory)
 *
 * Exits 1 if the enriched orders are not all there, as expected, within 10 seconds.
 */
import { Effect, Layer } from "effect"
import { EventStore, Transforms } from "@opendata/eventstore"
import { OpenData } from "@opendata/runtime"
import { waitUntil } from "./wait.ts"

interface Order {
  readonly id: string
  readonly items: ReadonlyArray<{ readonly sku: string; readonly qty: number; readonly price: number }>
}

/** An order's total, in cents (integers: no floating-point surprises in the output). */
const totalCents = (order: Order) => order.items.reduce((sum, i) => sum + i.qty * Math.round(i.price * 100), 0)

const enrich = Transforms.define({
  name: "enrich-orders",
  source: { prefix: "orders/" },
  // Stateless: a function of the record alone (no clock, no randomness), so a reset replays it identically.
  transform: (record) => {
    const order = record.json() as Order // not JSON: the record fails, and stops its log until skipped
    const total = totalCents(order)
    return {
      key: `orders-enriched/${record.key.slice("orders/".length)}`,
      value: JSON.stringify({ ...order, total: total / 100, tier: total >= 100_00 ? "large" : "standard" }),
      headers: { "content-type": "application/json" }
    }
  }
})

const orders: ReadonlyArray<readonly [customer: string, order: Order]> = [
  ["alice", { id: "o-1", items: [{ sku: "book", qty: 2, price: 12.5 }] }],
  ["bob", { id: "o-2", items: [{ sku: "desk", qty: 1, price: 249 }, { sku: "lamp", qty: 1, price: 35.9 }] }],
  ["alice", { id: "o-3", items: [{ sku: "pen", qty: 10, price: 1.2 }] }],
  ["carol", { id: "o-4", items: [{ sku: "chair", qty: 4, price: 80 }] }],
  ["bob", { id: "o-5", items: [{ sku: "cable", qty: 3, price: 4.99 }] }]
]

const app = Effect.gen(function*() {
  const events = yield* EventStore.EventStore
  const transforms = yield* Transforms.Transforms
  const encoder = new TextEncoder()
  const decoder = new TextDecoder()

  for (const [customer, order] of orders) {
    yield* events.append(`orders/${customer}`, [{ value: encoder.encode(JSON.stringify(order)) }])
  }
  console.log(`appended ${orders.length} orders`)

  yield* waitUntil(
    `${orders.length} orders processed by ${enrich.name}`,
    Effect.map(transforms.get(enrich.name), (info) => info.recordsIn === orders.length)
  )
  const info = yield* transforms.get(enrich.name)
  console.log(`${info.name}: ${info.recordsIn} in, ${info.recordsOut} out, ${info.commits} commits, lag ${info.lagRecords}, failed logs ${info.failedLogCount}`)

  // Every output, with where it came from.
  const expected = new Map(orders.map(([, o]) => [o.id, totalCents(o) / 100]))
  let seen = 0
  const { logs } = yield* events.list({ prefix: "orders-enriched/" })
  for (const log of logs) {
    const { records } = yield* events.read(log.key)
    for (const r of records) {
      const source = r.headers["opendata-source"]
      const enriched = JSON.parse(decoder.decode(r.value)) as Order & { total: number; tier: string }
      console.log(`${log.key}@${r.offset} <- ${source}: ${enriched.id} total ${enriched.total} ${enriched.tier}`)
      if (source === undefined || !source.startsWith(`orders/${log.key.slice("orders-enriched/".length)}@`)) {
        return yield* Effect.fail(new Error(`${log.key}@${r.offset}: unexpected opendata-source ${String(source)}`))
      }
      if (expected.get(enriched.id) !== enriched.total) {
        return yield* Effect.fail(new Error(`${enriched.id}: total ${enriched.total}, expected ${expected.get(enriched.id)}`))
      }
      expected.delete(enriched.id)
      seen += 1
    }
  }
  if (seen !== orders.length || expected.size > 0) {
    return yield* Effect.fail(new Error(`${seen} enriched orders, expected ${orders.length} (missing: ${[...expected.keys()].join(", ")})`))
  }
})

const root = process.argv[2]
const store = OpenData.layer({ store: root === undefined ? { kind: "memory" } : { kind: "local", root } })
Effect.runPromise(app.pipe(Effect.provide(OpenData.layerTransforms([enrich]).pipe(Layer.provideMerge(store))))).then(
  () => console.log("ok: every order enriched exactly once"),
  (e) => {
    console.error(`transform-enrich failed: ${e instanceof Error ? e.message : String(e)}`)
    process.exit(1)
  }
)
