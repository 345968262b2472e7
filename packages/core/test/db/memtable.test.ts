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

  it("holds copies of what it is given, small entries in its arena and large ones each in a buffer of its own", () => {
    const table = new Memtable()
    // An entry of no bytes at all first (the arena has no buffer yet).
    table.add({ key: new Uint8Array(0), seq: 0, kind: "put", value: new Uint8Array(0) })
    assert.deepStrictEqual(table.get("", 0).map((e) => [e.key.length, e.value.length]), [[0, 0]])
    const source = new Uint8Array(300_000)
    const added: Array<{ key: string; value: Uint8Array; seq: number; kind: "put" | "delete" | "merge" }> = []
    for (let seq = 1; seq <= 3000; seq++) {
      // Mostly small values, some larger than the arena's first buffers (the first of all among them), now
      // and then one larger than any of its buffers takes.
      const size = seq % 1000 === 0 ? 100_000 + seq : seq % 97 === 1 ? 5_000 + 37 * seq : seq % 50
      for (let i = 0; i < size; i++) source[i] = (seq * 31 + i) & 0xff
      const kind = seq % 7 === 0 ? "delete" : seq % 5 === 0 ? "merge" : "put"
      const value = kind === "delete" ? new Uint8Array(0) : source.subarray(0, size)
      const key = `key/${seq % 700}`
      table.add({ key: new TextEncoder().encode(key), seq, kind, value })
      added.push({ key, value: value.slice(), seq, kind })
      // The caller reuses its buffer: what the memtable holds must not change.
      source.fill(0xee, 0, size)
    }
    const expected = added
      .map((e) => ({ key: e.key, seq: e.seq, kind: e.kind, value: [...e.value] }))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : b.seq - a.seq))
    const seen = [...table.range("\u0001", undefined)].map((e) => ({ key: keyString(e.key), seq: e.seq, kind: e.kind, value: [...e.value] }))
    assert.strictEqual(seen.length, expected.length)
    // The first entry that differs, if any (a diff of every value would be too large to print).
    const differs = seen.findIndex((e, i) => JSON.stringify(e) !== JSON.stringify(expected[i]))
    assert.strictEqual(differs, -1, differs < 0 ? "" : `entry ${differs}: seq ${seen[differs]!.seq}, ${seen[differs]!.kind}`)
    // A point read: the newest version down to the first that is not a merge operand.
    const versions = table.get("key/0", 3000).map((e) => e.seq)
    const all = added.filter((e) => e.key === "key/0").reverse()
    const stop = all.findIndex((e) => e.kind !== "merge")
    assert.deepStrictEqual(versions, all.slice(0, stop + 1).map((e) => e.seq))
  })

  it("takes an entry larger than the arena's next buffer would be (a 60 KB value first, then 20 KB ones)", () => {
    const table = new Memtable()
    const sizes = [60_000, 20_000, 20_000, 3, 20_000, 64 * 1024 - 8]
    sizes.forEach((size, i) => table.add({ key: new TextEncoder().encode(`k${i}`), seq: i + 1, kind: "put", value: new Uint8Array(size).fill(i + 1) }))
    const seen = [...table.range(undefined, undefined)]
    assert.deepStrictEqual(seen.map((e) => e.value.length), sizes)
    assert.isTrue(seen.every((e, i) => e.value.every((b) => b === i + 1)))
  })
})
