import { describe, expect, it } from "vitest"
import { ChunkCorrupt, chunkBytes, decodeChunk, newChunk } from "../src/internal/chunk.ts"
import { decodeSamples, decodeStoredInto, encodeSamples, openStored, storedChunk, storedCount } from "../src/internal/chunkCodec.ts"
import { isPacked, packSamples } from "../src/internal/packedChunk.ts"

/** mulberry32 */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const bitsOf = (v: number) => {
  const f = new Float64Array([v])
  return Array.from(new Uint32Array(f.buffer)).join(",")
}

const xorOf = (samples: ReadonlyArray<readonly [number, number]>) => {
  const c = newChunk()
  for (const [t, v] of samples) c.append(t, v)
  return chunkBytes(c)
}

/** Scraped-looking series: a counter, seconds to the hundredth, a gauge, bytes in pages, a constant. */
const series = (kind: number, n: number, random: () => number): Array<readonly [number, number]> => {
  let v = kind === 4 ? 1e9 : kind === 3 ? 4096 * Math.floor(random() * 2e6) : Math.floor(random() * 1e6)
  let t = 1_700_000_000_000 + Math.floor(random() * 15_000)
  const out: Array<readonly [number, number]> = []
  for (let i = 0; i < n; i++) {
    t += 15_000 + (kind === 2 ? Math.floor(random() * 40) - 20 : 0)
    if (kind === 0) v += Math.floor(random() * 5000)
    else if (kind === 1) v = Math.round((v + random() * 15) * 100) / 100
    else if (kind === 2) v = Math.round((v + (random() - 0.5) * 2) * 100) / 100
    else if (kind === 3) v += Math.floor((random() - 0.5) * 4096) * 4096
    out.push([t, v])
  }
  return out
}

describe("packed chunks", () => {
  it("store short decimal values in far fewer bytes than XOR, and decode bit for bit", () => {
    const random = prng(7)
    for (let kind = 0; kind < 5; kind++) {
      for (const n of [1, 2, 3, 7, 120, 500]) {
        const samples = series(kind, n, random)
        const xor = xorOf(samples)
        const stored = storedChunk(xor)
        expect(isPacked(stored)).toBe(true)
        expect(storedCount(stored)).toBe(n)
        const back = decodeSamples(stored)
        expect(back.map((s) => [s.timestampMs, bitsOf(s.value)])).toEqual(samples.map(([t, v]) => [t, bitsOf(v)]))
        if (n === 120) expect(stored.length).toBeLessThan(xor.length * 0.7)
      }
    }
  })

  it("pack wide differences too: 25 to 53 bits a value, timestamps far apart", () => {
    const random = prng(5)
    for (const bits of [25, 31, 32, 33, 40, 49]) {
      const samples = Array.from({ length: 120 }, (_, i) => [i * 2 ** 20 + Math.floor(random() * 2 ** 19), Math.floor(random() * 2 ** bits)] as const)
      const stored = storedChunk(xorOf(samples))
      expect(isPacked(stored)).toBe(true)
      expect(decodeSamples(stored).map((s) => [s.timestampMs, s.value])).toEqual(samples.map(([t, v]) => [t, v]))
    }
  })

  it("a constant's values and a regular scrape's timestamps take no bits", () => {
    const samples = Array.from({ length: 120 }, (_, i) => [1_000 + i * 15_000, 42] as const)
    const stored = storedChunk(xorOf(samples))
    expect(stored.length).toBeLessThan(20)
  })

  it("keep the XOR chunk when a value is no short decimal: NaN (the stale marker), infinities, -0, 1/3", () => {
    const stale = new Float64Array(new Uint32Array([2, 0x7ff00000]).buffer)[0]!
    for (const odd of [stale, Infinity, -Infinity, -0, 1 / 3, 0.1 + 0.2, 2 ** 60]) {
      const samples: Array<readonly [number, number]> = [[1_000, 1.5], [2_000, odd], [3_000, 2]]
      const xor = xorOf(samples)
      const stored = storedChunk(xor)
      expect(stored).toBe(xor)
      expect(decodeSamples(stored).map((s) => bitsOf(s.value))).toEqual(samples.map(([, v]) => bitsOf(v)))
    }
  })

  it("decode a window into columns as XOR chunks do, and reopen as a head to append to", () => {
    const samples = series(1, 120, prng(3))
    const stored = storedChunk(xorOf(samples))
    const ts = new Float64Array(200)
    const vs = new Float64Array(200)
    const bits = new Uint32Array(vs.buffer)
    const lane = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1 ? 1 : 0
    const mint = samples[10]![0]
    const maxt = samples[20]![0]
    const n = decodeStoredInto(stored, ts, bits, 5, mint, maxt, lane)
    expect(n).toBe(5 + 11)
    expect(Array.from(ts.subarray(5, n))).toEqual(samples.slice(10, 21).map(([t]) => t))
    expect(Array.from(vs.subarray(5, n))).toEqual(samples.slice(10, 21).map(([, v]) => v))
    const head = openStored(stored)
    head.append(samples[119]![0] + 15_000, 1)
    expect(decodeChunk(chunkBytes(head)).length).toBe(121)
  })

  it("encodeSamples packs what it can and keeps the rest as XOR", () => {
    expect(isPacked(encodeSamples([{ timestampMs: 5, value: 0.25 }, { timestampMs: 9, value: 3 }]))).toBe(true)
    expect(isPacked(encodeSamples([{ timestampMs: 5, value: Math.PI }]))).toBe(false)
  })

  it("damaged bytes throw ChunkCorrupt, never read past the end, and decode nothing silently", () => {
    const random = prng(11)
    const stored = storedChunk(xorOf(series(0, 120, random)))
    for (let cut = 3; cut < stored.length; cut++) {
      expect(() => decodeSamples(stored.subarray(0, cut))).toThrow(ChunkCorrupt)
    }
    expect(() => decodeSamples(Uint8Array.of(...stored, 0))).toThrow(ChunkCorrupt)
    for (let i = 0; i < 2000; i++) {
      const bad = stored.slice()
      const at = 3 + Math.floor(random() * (bad.length - 3))
      bad[at] = bad[at]! ^ (1 << Math.floor(random() * 8))
      try {
        const back = decodeSamples(bad)
        expect(back.length).toBeLessThanOrEqual(65535)
      } catch (e) {
        expect(e).toBeInstanceOf(ChunkCorrupt)
      }
    }
  })

  it("an order-2 column for a counter growing steadily", () => {
    const samples = Array.from({ length: 120 }, (_, i) => [i * 1000, 1_000_000 + i * 1234 + (i % 2)] as const)
    const ts = Float64Array.from(samples, ([t]) => t)
    const vs = Float64Array.from(samples, ([, v]) => v)
    const packed = packSamples(ts, vs, 120)!
    expect(packed.length).toBeLessThan(40)
    expect(decodeSamples(packed).map((s) => s.value)).toEqual(samples.map(([, v]) => v))
  })
})
