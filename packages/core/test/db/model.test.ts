/**
 * Random operation sequences against an in-memory model, with graceful reopens and crashes at random
 * points. After a crash the Db must hold every acknowledged write; writes in flight at the crash may
 * land or not, atomically per batch. A failure prints the seed that replays it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Stream } from "effect"
import { Db } from "@opendata/core"
import { makePrngForTests } from "./prng.ts"
import { b, crashableStore, s, small } from "./helpers.ts"

const addition: Db.MergeOperator = (_key, existing, operands) =>
  b(String(operands.reduce((sum, o) => sum + Number(s(o)), existing === undefined ? 0 : Number(s(existing)))))

type Model = Map<string, string>

const applyToModel = (model: Model, batch: ReadonlyArray<Db.WriteOp>) => {
  for (const op of batch) {
    const key = s(op.key)!
    if (op._tag === "put") model.set(key, s(op.value)!)
    else if (op._tag === "delete") model.delete(key)
    else model.set(key, String(Number(model.get(key) ?? "0") + Number(s(op.value))))
  }
}

const runSeed = (seed: number) =>
  Effect.gen(function*() {
    const rng = makePrngForTests(seed)
    const store = yield* crashableStore
    const settings: Db.DbSettings = { ...small, merge: addition }
    let current = yield* store.open(settings)
    let model: Model = new Map()
    const keyOf = () => `k${rng.nextInt(24)}`
    for (let step = 0; step < 150; step++) {
      const roll = rng.nextInt(100)
      if (roll < 70) {
        const size = 1 + rng.nextInt(3)
        const batch: Array<Db.WriteOp> = []
        for (let i = 0; i < size; i++) {
          const kind = rng.nextInt(10)
          const key = b(keyOf())
          if (kind < 6) batch.push({ _tag: "put", key, value: b(String(rng.nextInt(1000))) })
          else if (kind < 8) batch.push({ _tag: "delete", key })
          else batch.push({ _tag: "merge", key, value: b(String(rng.nextInt(10))) })
        }
        yield* current.db.write(batch)
        applyToModel(model, batch)
      } else if (roll < 80) {
        const key = keyOf()
        assert.strictEqual(s(yield* current.db.get(b(key))), model.get(key), `seed ${seed} step ${step}: get ${key}`)
      } else if (roll < 85) {
        yield* current.db.flush
      } else if (roll < 90) {
        yield* current.db.compact
      } else if (roll < 93) {
        yield* current.db.collectGarbage
      } else if (roll < 96) {
        yield* current.close
        current = yield* store.open(settings)
      } else {
        // Crash with one batch in flight: afterwards it is either wholly there or wholly absent.
        const batch: Array<Db.WriteOp> = [
          { _tag: "put", key: b(keyOf()), value: b("inflight") },
          { _tag: "put", key: b(keyOf()), value: b("inflight") }
        ]
        const inflight = yield* Effect.forkChild(current.db.write(batch))
        for (let i = rng.nextInt(3); i > 0; i--) yield* Effect.yieldNow
        yield* store.crash
        yield* Fiber.interrupt(inflight)
        current = yield* store.open(settings)
        const landed = new Map(model)
        applyToModel(landed, batch)
        const actual = yield* snapshotOf(current.db)
        const matches = (m: Model) => JSON.stringify([...m].sort()) === JSON.stringify([...actual].sort())
        assert.isTrue(matches(model) || matches(landed), `seed ${seed} step ${step}: state after crash matches neither outcome`)
        model = matches(landed) ? landed : model
      }
    }
    assert.deepStrictEqual([...(yield* snapshotOf(current.db))].sort(), [...model].sort(), `seed ${seed}: final state`)
    yield* current.close
  })

const snapshotOf = (db: Db.DbShape) =>
  Effect.map(Stream.runCollect(db.scan()), (kvs) => new Map(kvs.map((kv) => [s(kv.key)!, s(kv.value)!])))

describe("Db against a model", () => {
  const seeds = Array.from({ length: 24 }, (_, i) => 1000 + i)
  for (const seed of seeds) {
    it.effect(`random operations with reopens and crashes (seed ${seed})`, () =>
      runSeed(seed).pipe(Effect.tapDefect((d) => Effect.sync(() => console.error(`replay with seed ${seed}`, d)))))
  }
})
