/**
 * The key layout (`internal/keys.ts`, RFC 0004): each key's bytes, checked against a plain big-endian
 * encoding written here, and the integers read back from them.
 */
import { describe, expect, it } from "vitest"
import { Keys } from "@opendata/core"
import * as K from "../src/internal/keys.ts"

const be = (width: 4 | 8, n: number): Array<number> => {
  const b = new Uint8Array(8)
  const v = new DataView(b.buffer)
  v.setUint32(0, Math.floor(n / 2 ** 32))
  v.setUint32(4, n >>> 0)
  return [...b.subarray(8 - width)]
}
const key = (tag: string, ...parts: Array<[4 | 8, number]>) => Uint8Array.from([tag.charCodeAt(0), ...parts.flatMap(([w, n]) => be(w, n))])

describe("TSDB keys", () => {
  const samples = [0, 1, 255, 256, 65_535, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 1_700_000_000_123, Number.MAX_SAFE_INTEGER]
  const buckets = [0, 1, 236_111, 2 ** 31, 2 ** 32 - 1]

  it("lays out every key as RFC 0004 draws it", () => {
    for (const b of buckets) {
      for (const x of samples) {
        expect(K.chunkKey(b, x, samples[3]!)).toEqual(key("c", [4, b], [8, x], [8, samples[3]!]))
        expect(K.histogramChunkKey(b, x, 7)).toEqual(key("g", [4, b], [8, x], [8, 7]))
        expect(K.startKey(b, 3, x)).toEqual(key("s", [4, b], [8, 3], [8, x]))
        expect(K.bucketSeriesKey(b, x)).toEqual(key("j", [4, b], [8, x]))
        expect(K.chunkPrefix(b, x)).toEqual(key("c", [4, b], [8, x]))
        expect(K.histogramChunkPrefix(b, x)).toEqual(key("g", [4, b], [8, x]))
        expect(K.startPrefix(b, x)).toEqual(key("s", [4, b], [8, x]))
      }
      expect(K.chunkPrefix(b)).toEqual(key("c", [4, b]))
      expect(K.bucketSeriesPrefix(b)).toEqual(key("j", [4, b]))
      expect(K.bucketKey(b)).toEqual(key("b", [4, b]))
      expect(K.histogramBucketKey(b)).toEqual(key("G", [4, b]))
    }
    for (const x of samples) {
      expect(K.dictKey(x, 9)).toEqual(key("h", [8, x], [8, 9]))
      expect(K.dictPrefix(x)).toEqual(key("h", [8, x]))
      expect(K.exemplarKey(x, 5)).toEqual(key("e", [8, x], [8, 5]))
      expect(K.seriesKey(x)).toEqual(key("S", [8, x]))
      expect(K.headKey(x)).toEqual(key("H", [8, x]))
      expect(K.recordKey(x)).toEqual(key("W", [8, x]))
    }
  })

  it("reads the integers back, at any offset of any view", () => {
    for (const b of buckets) {
      for (const x of samples) {
        const k = K.chunkKey(b, x, samples.at(-1)!)
        const padded = new Uint8Array(k.length + 3)
        padded.set(k, 3)
        const view = padded.subarray(3)
        expect(K.readU32(view, 1)).toBe(b)
        expect(Keys.readU64(view, 5)).toBe(x)
        expect(Keys.readU64(view, 13)).toBe(samples.at(-1))
      }
    }
  })
})
