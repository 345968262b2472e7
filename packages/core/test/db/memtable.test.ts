/** The memtable keeps its keys in order across interleaved adds and ordered reads. */
import { assert, describe, it } from "@effect/vitest"
import { Memtable, keyString } from "../../src/internal/db/memtable.ts"
import { makePrngForTests } from "./prng.ts"

const entry = (key: string, seq: number) => ({ key: new TextEncoder().encode(key), seq, kind: "put" as const, value: new Uint8Array(0) })

describe("Memtable", () => {
  it("iterates keys in byte order after adds interleaved with ordered reads", () => {
    const rng = makePrngForTests(7)
    const table = new Memtable()
    const keys = new Set<string>()
    for (let seq = 1; seq <= 2000; seq++) {
      const key = `k${rng.nextInt(500)}`
      table.add(entry(key, seq))
      keys.add(key)
      if (rng.nextInt(20) === 0) {
        const seen = [...table.range(undefined, undefined, seq)].map((e) => keyString(e.key))
        assert.deepStrictEqual(seen, [...keys].sort())
      }
    }
    const from = keyString(new TextEncoder().encode("k2"))
    const to = keyString(new TextEncoder().encode("k3"))
    assert.deepStrictEqual(
      [...table.range(from, to, 2000)].map((e) => keyString(e.key)),
      [...keys].sort().filter((k) => k >= "k2" && k < "k3")
    )
  })

  it("keeps every key in order, and ranges exact, as its recent keys are merged into the bulk (tens of thousands of keys)", () => {
    const rng = makePrngForTests(11)
    const table = new Memtable()
    const keys = new Set<string>()
    const pad = (n: number) => String(n).padStart(6, "0")
    for (let seq = 1; seq <= 40_000; seq++) {
      const key = `k${pad(rng.nextInt(30_000))}`
      table.add(entry(key, seq))
      keys.add(key)
      if (rng.nextInt(500) === 0 || seq === 40_000) {
        const sorted = [...keys].sort()
        // A bounded range that starts inside both runs, and the whole table.
        const lo = `k${pad(rng.nextInt(30_000))}`
        const hi = `k${pad(rng.nextInt(30_000))}`
        const [from, to] = lo < hi ? [lo, hi] : [hi, lo]
        assert.deepStrictEqual(
          [...table.range(from, to, seq)].map((e) => keyString(e.key)),
          sorted.filter((k) => k >= from && k < to)
        )
        if (seq % 5 === 0 || seq === 40_000) assert.deepStrictEqual([...table.range(undefined, undefined, seq)].map((e) => keyString(e.key)), sorted)
      }
    }
  })
})
