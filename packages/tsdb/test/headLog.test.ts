import { assert, describe, it } from "@effect/vitest"
import { zstdCompressSync } from "node:zlib"
import { decodeCheckpointed, decodeRecord, encodeCheckpointed, HeadLogCorrupt, RecordBuilder } from "../src/internal/headLog.ts"

const f64 = new Float64Array(1)
const u32 = new Uint32Array(f64.buffer)
const bitsOf = (v: number) => {
  f64[0] = v
  return [u32[0]!, u32[1]!] as const
}

describe("head log", () => {
  const build = () => {
    const b = new RecordBuilder(2)
    const rows: Array<readonly [number, number, number]> = [
      [7, 1_700_000_000_000, 1.5],
      [3, 1_700_000_000_015, -0],
      [900_000_000_000, 0, Number.NaN],
      [7, 1_699_999_999_000, Number.POSITIVE_INFINITY],
      [8, 9_007_199_254_740_991, 123456789.25]
    ]
    for (const [id, t, v] of rows) {
      const [lo, hi] = bitsOf(v)
      b.add(id, t, lo, hi)
    }
    return { b, rows }
  }

  for (const form of ["compressed", "plain"] as const) {
    it(`a ${form} record decodes to its samples, values bit for bit, in order`, () => {
      const { b, rows } = build()
      const r = decodeRecord(form === "compressed" ? b.encode() : b.encodePlain())
      assert.strictEqual(r.count, rows.length)
      rows.forEach(([id, t, v], i) => {
        assert.strictEqual(r.ids[i], id)
        assert.strictEqual(r.timestamps[i], t)
        const [lo, hi] = bitsOf(v)
        assert.strictEqual(r.bits[2 * i], lo)
        assert.strictEqual(r.bits[2 * i + 1], hi)
      })
    })
  }

  it("a record of runs of one series (values XORed with the run's previous one) decodes bit for bit; so do the older versions", () => {
    const b = new RecordBuilder(4)
    const rows: Array<readonly [number, number, readonly [number, number]]> = []
    const values = [1.5, 1.5, 2.25, -0, Number.NaN, 1e308, -1e-308, 0]
    for (const id of [5, 5, 5, 9, 5, 5, 12, 12, 12, 12]) {
      const v = values[rows.length % values.length]!
      rows.push([id, 1_700_000_000_000 + rows.length * 15_000, bitsOf(v)])
    }
    // Prometheus's stale marker: a NaN with its own bits, which must come back as they went.
    rows.push([12, 1_700_000_200_000, [2, 0x7ff00000]])
    for (const [id, t, [lo, hi]] of rows) b.add(id, t, lo, hi)
    const written = b.encode()
    assert.strictEqual(written[0], 4)
    const plain = b.encodePlain()
    // Version 2, as older servers wrote it: the plain body in one zstd frame.
    const compressed = zstdCompressSync(plain.subarray(1))
    const older = new Uint8Array(1 + compressed.length)
    older[0] = 2
    older.set(compressed, 1)
    for (const record of [written, plain, older]) {
      const r = decodeRecord(record)
      assert.strictEqual(r.count, rows.length)
      rows.forEach(([id, t, [lo, hi]], i) => {
        assert.strictEqual(r.ids[i], id)
        assert.strictEqual(r.timestamps[i], t)
        assert.strictEqual(r.bits[2 * i], lo)
        assert.strictEqual(r.bits[2 * i + 1], hi)
      })
    }
  })

  it("a record that is not one is refused with HeadLogCorrupt, never decoded into samples", () => {
    const good = build().b.encodePlain()
    for (const bad of [new Uint8Array(0), Uint8Array.of(9, 1), Uint8Array.of(6, 1), Uint8Array.of(0, 1), good.subarray(0, good.length - 3), Uint8Array.of(2, 1, 2, 3)]) {
      assert.throws(() => decodeRecord(bad), HeadLogCorrupt)
    }
  })

  it("a checkpointed head keeps its record, chunk and out-of-order buffer; an older head value reads as of no record", () => {
    const head = Uint8Array.of(0, 1, 2, 3)
    const ooo = Uint8Array.of(0, 2, 9)
    assert.deepStrictEqual(decodeCheckpointed(encodeCheckpointed(2 ** 40 + 5, head, ooo)), { asOf: 2 ** 40 + 5, head, ooo })
    assert.deepStrictEqual(decodeCheckpointed(encodeCheckpointed(1, undefined, undefined)), { asOf: 1, head: undefined, ooo: undefined })
    assert.deepStrictEqual(decodeCheckpointed(head), { asOf: 0, head, ooo: undefined })
    assert.throws(() => decodeCheckpointed(Uint8Array.of(0xff, 0, 0)), HeadLogCorrupt)
  })
})
