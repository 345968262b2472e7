/**
 * XOR chunks (RFC 0001): round trips of every kind of series, bit-exact values (NaN payloads included),
 * agreement with a slow reference encoder written from the RFC's description, golden bytes, seek, resumed
 * appends, caller errors, and `ChunkCorrupt` (never another exception, never a hang) for truncated,
 * damaged and arbitrary bytes.
 */
import { assert, describe, it } from "@effect/vitest"
import {
  append,
  appendBits,
  ChunkCorrupt,
  chunkBytes,
  chunkMaxTime,
  chunkMinTime,
  chunkSampleCount,
  chunkSamplesMax,
  chunkSamplesTarget,
  decodeChunk,
  decodeChunkInto,
  iterateChunk,
  newChunk,
  openChunk,
  type XorChunk
} from "../src/internal/chunk.ts"

// ---------------------------------------------------------------------------------------------------------
// Helpers

/** Mulberry32: deterministic, so failures replay. */
const makeRandom = (seed: number) => {
  let a = seed >>> 0
  const u32 = (): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }
  const float = (): number => u32() / 0x1_0000_0000
  const int = (bound: number): number => Math.floor(float() * bound)
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - float())) * Math.cos(2 * Math.PI * float())
  return { u32, float, int, normal }
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex")
const fromHex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "hex"))

/** A value as its 64-bit pattern, the unit of comparison (NaN payloads, -0). */
interface Bits {
  readonly hi: number
  readonly lo: number
}
const view = new DataView(new ArrayBuffer(8))
const bitsOf = (v: number): Bits => {
  view.setFloat64(0, v)
  return { hi: view.getUint32(0), lo: view.getUint32(4) }
}
const numberOf = (b: Bits): number => {
  view.setUint32(0, b.hi)
  view.setUint32(4, b.lo)
  return view.getFloat64(0)
}
const bigOf = (b: Bits): bigint => (BigInt(b.hi) << 32n) | BigInt(b.lo)

const staleNaN: Bits = { hi: 0x7ff00000, lo: 0x00000002 }

interface RawSample {
  readonly t: number
  readonly bits: Bits
}
const raw = (t: number, v: number): RawSample => ({ t, bits: bitsOf(v) })

const encode = (samples: ReadonlyArray<RawSample>): Uint8Array => {
  const chunk = newChunk()
  for (const s of samples) appendBits(chunk, s.t, s.bits.hi, s.bits.lo)
  return chunkBytes(chunk)
}

/** Decodes with the allocation-free iterator, keeping the exact bits. */
const decodeRaw = (bytes: Uint8Array): Array<RawSample> => {
  const it = iterateChunk(bytes)
  const out: Array<RawSample> = []
  while (it.next()) out.push({ t: it.t, bits: { hi: it.valueHi, lo: it.valueLo } })
  return out
}

const plain = (samples: ReadonlyArray<RawSample>) => samples.map((s) => `${s.t}:${bigOf(s.bits).toString(16)}`)

/** Encodes, compares with the reference encoder, decodes both ways and compares bit for bit. */
const roundTrip = (samples: ReadonlyArray<RawSample>): Uint8Array => {
  const bytes = encode(samples)
  assert.strictEqual(hex(bytes), referenceEncode(samples), "matches the reference encoder")
  assert.deepStrictEqual(plain(decodeRaw(bytes)), plain(samples))
  // Through numbers too (`append`, `decodeChunk`): V8 keeps NaN payloads in a number's own box.
  const chunk = newChunk()
  for (const s of samples) append(chunk, s.t, numberOf(s.bits))
  assert.strictEqual(hex(chunkBytes(chunk)), hex(bytes))
  const decoded = decodeChunk(bytes)
  assert.deepStrictEqual(plain(decoded.map((s) => raw(s.t, s.v))), plain(samples))
  assert.strictEqual(chunkSampleCount(bytes), samples.length)
  assert.strictEqual(chunkSampleCount(chunk), samples.length)
  assert.strictEqual(chunkMinTime(bytes), samples[0]?.t)
  assert.strictEqual(chunkMinTime(chunk), samples[0]?.t)
  assert.strictEqual(chunkMaxTime(bytes), samples.at(-1)?.t)
  assert.strictEqual(chunkMaxTime(chunk), samples.at(-1)?.t)
  return bytes
}

const assertCorrupt = (f: () => unknown, label = ""): void => {
  try {
    f()
  } catch (error) {
    if (error instanceof ChunkCorrupt) return
    throw new Error(`${label}: expected ChunkCorrupt, got ${String(error)}`)
  }
  assert.fail(`${label}: expected ChunkCorrupt, decoded`)
}

/** Decoding arbitrary bytes: either ChunkCorrupt (false), or samples that make a valid chunk (true). */
const decodesOrCorrupt = (bytes: Uint8Array): boolean => {
  let samples: Array<RawSample>
  try {
    samples = decodeRaw(bytes)
  } catch (error) {
    if (error instanceof ChunkCorrupt) return false
    throw error
  }
  // Plain checks, not assertions: this runs tens of thousands of times.
  if (samples.length !== ((bytes[0]! << 8) | bytes[1]!)) assert.fail(`count mismatch: ${hex(bytes)}`)
  for (let i = 0; i < samples.length; i++) {
    const t = samples[i]!.t
    if (!Number.isSafeInteger(t) || (i > 0 && !(t > samples[i - 1]!.t))) assert.fail(`bad timestamps: ${hex(bytes)}`)
  }
  // What decodes re-encodes to the same samples (the writer's bytes may differ: the decoder accepts
  // encodings the writer does not choose, such as a wider bucket than needed).
  const again = decodeRaw(encode(samples))
  for (let i = 0; i < samples.length; i++) {
    const a = samples[i]!
    const b = again[i]!
    if (a.t !== b.t || a.bits.hi !== b.bits.hi || a.bits.lo !== b.bits.lo) assert.fail(`re-encoding differs: ${hex(bytes)}`)
  }
  return true
}

// ---------------------------------------------------------------------------------------------------------
// A slow reference encoder, from the RFC's description: BigInt arithmetic on a string of '0'/'1'.

const referenceEncode = (samples: ReadonlyArray<RawSample>): string => {
  let out = samples.length.toString(2).padStart(16, "0")
  const put = (value: bigint, width: number): void => {
    out += BigInt.asUintN(width, value).toString(2).padStart(width, "0")
  }
  const signedVarint = (x: bigint): void => {
    for (;;) {
      const group = x & 0x7fn
      x >>= 7n
      const last = (x === 0n && (group & 0x40n) === 0n) || (x === -1n && (group & 0x40n) !== 0n)
      put(last ? group : group | 0x80n, 8)
      if (last) return
    }
  }
  const unsignedVarint = (x: bigint): void => {
    while (x >= 0x80n) {
      put((x & 0x7fn) | 0x80n, 8)
      x >>= 7n
    }
    put(x, 8)
  }
  const leadingZeros = (x: bigint): number => 64 - x.toString(2).length
  const trailingZeros = (x: bigint): number => {
    let n = 0
    while (((x >> BigInt(n)) & 1n) === 0n) n++
    return n
  }
  let window: { leading: number; trailing: number } | undefined
  let prevT = 0n
  let prevDelta = 0n
  let prevV = 0n
  samples.forEach((s, i) => {
    const t = BigInt(s.t)
    const v = bigOf(s.bits)
    if (i === 0) {
      signedVarint(t)
      put(v, 64)
    } else {
      const delta = t - prevT
      if (i === 1) unsignedVarint(delta)
      else {
        const dod = delta - prevDelta
        const fits = (n: number) => dod >= -((1n << BigInt(n - 1)) - 1n) && dod <= 1n << BigInt(n - 1)
        if (dod === 0n) put(0n, 1)
        else if (fits(14)) (put(0b10n, 2), put(dod, 14))
        else if (fits(17)) (put(0b110n, 3), put(dod, 17))
        else if (fits(20)) (put(0b1110n, 4), put(dod, 20))
        else (put(0b1111n, 4), put(dod, 64))
      }
      prevDelta = delta
      const x = v ^ prevV
      if (x === 0n) put(0n, 1)
      else {
        const leading = Math.min(31, leadingZeros(x))
        const trailing = trailingZeros(x)
        if (window !== undefined && leading >= window.leading && trailing >= window.trailing) {
          put(0b10n, 2)
          put(x >> BigInt(window.trailing), 64 - window.leading - window.trailing)
        } else {
          window = { leading, trailing }
          put(0b11n, 2)
          put(BigInt(leading), 5)
          put(BigInt(64 - leading - trailing), 6)
          put(x >> BigInt(trailing), 64 - leading - trailing)
        }
      }
    }
    prevT = t
    prevV = v
  })
  return bitsToHex(out)
}

const bitsToHex = (bits: string): string => {
  const padded = bits.padEnd(Math.ceil(bits.length / 8) * 8, "0")
  let h = ""
  for (let i = 0; i < padded.length; i += 8) h += parseInt(padded.slice(i, i + 8), 2).toString(16).padStart(2, "0")
  return h
}
const hexToBits = (h: string, width: number): string => BigInt(`0x${h}`).toString(2).padStart(width, "0")

// ---------------------------------------------------------------------------------------------------------
// Series generators

const t0 = 1_700_000_000_000
const scrape = 15_000

const series = (seed: number) => {
  const random = makeRandom(seed)
  const jitter = (ms: number) => random.int(2 * ms + 1) - ms
  return {
    /** A request counter scraped every 15 s, a few ms of jitter, integer increments. */
    counter: (n: number, jitterMs = 0): Array<RawSample> => {
      let v = random.int(1_000_000)
      return Array.from({ length: n }, (_, i) => {
        v += random.int(50)
        return raw(t0 + i * scrape + (i === 0 ? 0 : jitter(jitterMs)), v)
      })
    },
    /** A gauge: a slow wave plus Gaussian noise, full-precision floats. */
    noisyGauge: (n: number): Array<RawSample> =>
      Array.from({ length: n }, (_, i) => raw(t0 + i * scrape, 50 + 10 * Math.sin(i / 20) + random.normal())),
    randomWalk: (n: number): Array<RawSample> => {
      let v = 0
      return Array.from({ length: n }, (_, i) => {
        v += random.float() - 0.5
        return raw(t0 + i * scrape, v)
      })
    },
    constant: (n: number, v: number): Array<RawSample> => Array.from({ length: n }, (_, i) => raw(t0 + i * scrape, v)),
    /** Timestamps 1 ms to 10 min apart, values with two decimals (a gauge as a human would set it). */
    irregular: (n: number): Array<RawSample> => {
      let t = t0
      return Array.from({ length: n }, () => {
        t += 1 + random.int(600_000)
        return raw(t, Math.round(random.float() * 1e4) / 100 - 50)
      })
    },
    /** Gaps of up to 2^45 ms: most delta-of-deltas need the 64-bit case. */
    largeJumps: (n: number, tStart: number): Array<RawSample> => {
      let t = tStart
      return Array.from({ length: n }, (_, i) => {
        const sample = raw(t, -i * 1.5)
        t += 1 + (random.int(4) === 0 ? random.int(1000) : Math.floor(random.float() * 2 ** 45))
        return sample
      })
    },
    /** Arbitrary 64-bit patterns: every NaN payload, subnormals, infinities, -0. */
    arbitraryBits: (n: number): Array<RawSample> =>
      Array.from({ length: n }, (_, i) => ({ t: -5000 + i * 7, bits: { hi: random.u32(), lo: random.u32() } })),
    random
  }
}

// ---------------------------------------------------------------------------------------------------------

describe("XOR chunk round trips", () => {
  it("round-trips counters, gauges, walks, constants and irregular timestamps", () => {
    for (let seed = 1; seed <= 5; seed++) {
      const gen = series(seed)
      roundTrip(gen.counter(chunkSamplesTarget))
      roundTrip(gen.counter(chunkSamplesTarget, 5))
      roundTrip(gen.counter(1000, 2000))
      roundTrip(gen.noisyGauge(chunkSamplesTarget))
      roundTrip(gen.randomWalk(500))
      roundTrip(gen.constant(chunkSamplesTarget, 42))
      roundTrip(gen.constant(300, 0))
      roundTrip(gen.irregular(500))
    }
  })

  it("round-trips empty, single-sample and two-sample chunks", () => {
    assert.strictEqual(hex(roundTrip([])), "0000")
    roundTrip([raw(0, 0)])
    roundTrip([raw(-1, -1)])
    roundTrip([raw(t0, 1), raw(t0 + 1, 1)])
    roundTrip([raw(t0, 1), raw(t0 + 1, 2)])
    assert.strictEqual(chunkMinTime(newChunk()), undefined)
    assert.strictEqual(chunkMaxTime(newChunk()), undefined)
    assert.strictEqual(chunkMinTime(fromHex("0000")), undefined)
  })

  it("round-trips every delta-of-delta bucket and its edges", () => {
    // Prometheus's ranges: n bits hold -(2^(n-1) - 1) ..= 2^(n-1).
    const edges = [0, 1, -1, 8191, 8192, -8191, -8192, 8193, 65535, 65536, -65535, -65536, 65537, 524287, 524288, -524287, -524288, 524289]
    const extra = [2 ** 31, -(2 ** 31), 2 ** 32 + 5, 2 ** 40, -(2 ** 40)]
    for (const dod of [...edges, ...extra]) {
      const base = 2 ** 41 // delta of the second sample, so that negative dods keep deltas positive
      const samples = [raw(0, 1), raw(base, 2), raw(2 * base + dod, 3), raw(3 * base + 2 * dod, 3), raw(4 * base + 2 * dod, 4)]
      roundTrip(samples)
    }
  })

  it("round-trips large timestamp jumps and extreme timestamps", () => {
    const gen = series(7)
    roundTrip(gen.largeJumps(200, -(2 ** 50)))
    roundTrip(gen.largeJumps(200, t0))
    const max = Number.MAX_SAFE_INTEGER
    roundTrip([raw(-max, 1), raw(0, 2), raw(max, 3)]) // deltas of 2^53-1, dod 0
    roundTrip([raw(0, 1), raw(1, 2), raw(max, 3)]) // delta 1, then 2^53-2: dod 2^53-3
    roundTrip([raw(0, 1), raw(max - 1, 2), raw(max, 3)]) // delta 2^53-2, then 1: dod -(2^53-3)
    roundTrip([raw(max - 2, 1), raw(max - 1, 1), raw(max, 1)])
    for (const t of [-(2 ** 49), 2 ** 49 - 1, 2 ** 49, -(2 ** 49) - 1, 2 ** 52, -(2 ** 52), -64, -65, 63, 64, 8191, 8192])
      roundTrip([raw(t, 1), raw(t + 1, 1)])
  })

  it("keeps values bit for bit: ±Inf, NaN, the stale marker, -0, subnormals, extremes", () => {
    const specials = [
      Infinity,
      -Infinity,
      NaN,
      -0,
      0,
      Number.MIN_VALUE,
      -Number.MIN_VALUE,
      2.2250738585072014e-308,
      Number.MAX_VALUE,
      -Number.MAX_VALUE,
      Number.EPSILON,
      -1,
      -1e300,
      0.1
    ]
    const samples: Array<RawSample> = specials.map((v, i) => raw(t0 + i * 1000, v))
    samples.push({ t: t0 + 100_000, bits: staleNaN }, raw(t0 + 115_000, 7), { t: t0 + 130_000, bits: staleNaN })
    samples.push({ t: t0 + 145_000, bits: { hi: 0xfff80000, lo: 1 } }, { t: t0 + 146_000, bits: { hi: 0x7ff7ffff, lo: 0xffffffff } })
    roundTrip(samples)
    const bytes = encode(samples)
    const it = iterateChunk(bytes)
    assert.isTrue(it.seek(t0 + 100_000))
    assert.strictEqual(it.valueHi, 0x7ff00000)
    assert.strictEqual(it.valueLo, 0x00000002)
    assert.isTrue(Number.isNaN(it.v))
    // -0 is not +0: the sign bit is kept.
    assert.isTrue(Object.is(decodeChunk(bytes)[3]!.v, -0))
    for (let seed = 1; seed <= 5; seed++) roundTrip(series(seed).arbitraryBits(1000))
  })

  it("round-trips negative values and alternating signs", () => {
    const random = makeRandom(11)
    roundTrip(Array.from({ length: 300 }, (_, i) => raw(t0 + i * scrape, -random.float() * 1e6)))
    roundTrip(Array.from({ length: 300 }, (_, i) => raw(t0 + i * scrape, (i % 2 === 0 ? 1 : -1) * (i + 0.5))))
  })

  it("holds 65535 samples, and no more", () => {
    const gen = series(3)
    const samples = gen.counter(chunkSamplesMax, 3)
    const chunk = newChunk()
    for (const s of samples) appendBits(chunk, s.t, s.bits.hi, s.bits.lo)
    const bytes = chunkBytes(chunk)
    assert.strictEqual(hex(bytes.subarray(0, 2)), "ffff")
    assert.deepStrictEqual(plain(decodeRaw(bytes)), plain(samples))
    assert.throws(() => append(chunk, samples.at(-1)!.t + 1, 0), /full/)
    assert.strictEqual(hex(chunkBytes(chunk)), hex(bytes))
  })
})

describe("XOR chunk appends", () => {
  it("refuses non-increasing and unsafe timestamps with a plain Error, leaving the chunk as it was", () => {
    const chunk = newChunk()
    append(chunk, 1000, 1)
    append(chunk, 2000, 2)
    const before = hex(chunkBytes(chunk))
    const refuse = (t: number) => {
      try {
        append(chunk, t, 3)
      } catch (error) {
        assert.instanceOf(error, Error)
        assert.notInstanceOf(error, ChunkCorrupt)
        return
      }
      assert.fail(`appended ${t}`)
    }
    for (const t of [2000, 1999, -5, 2000.5, NaN, Infinity, 2 ** 53, -(2 ** 53)]) refuse(t)
    assert.strictEqual(hex(chunkBytes(chunk)), before)
    const far = newChunk()
    append(far, -Number.MAX_SAFE_INTEGER, 0)
    assert.throws(() => append(far, 1, 0), /2\^53-1/) // delta 2^53
    append(far, 0, 0)
    append(far, Number.MAX_SAFE_INTEGER, 0) // dod 0
    assert.strictEqual(chunkSampleCount(far), 3)
  })

  it("returns an independent copy of the bytes", () => {
    const chunk = newChunk()
    append(chunk, 1, 1)
    const bytes = chunkBytes(chunk)
    append(chunk, 2, 2)
    assert.strictEqual(chunkSampleCount(bytes), 1)
    assert.strictEqual(chunkSampleCount(chunkBytes(chunk)), 2)
  })

  it("seals to the same bytes, in its own buffer when that fits, and takes nothing after", () => {
    for (const [capacity, samples] of [[16, 120], [4096, 120], [128, 1], [64, 3]] as const) {
      const chunk = newChunk(capacity)
      for (let i = 0; i < samples; i++) append(chunk, 1_000 + 15_000 * i, i % 7 === 0 ? i : i * 1.5)
      const copy = chunkBytes(chunk)
      const sealed = chunk.seal()
      assert.deepStrictEqual(sealed, copy)
      assert.deepStrictEqual([...iterateChunk(sealed)].length, samples)
      assert.throws(() => append(chunk, 10_000_000, 1), /sealed/)
      // What was sealed did not change.
      assert.deepStrictEqual(sealed, copy)
    }
  })

  it("resumes appending to encoded bytes exactly as if it had never stopped", () => {
    const gen = series(5)
    const inputs = [gen.counter(300, 10), gen.noisyGauge(300), gen.arbitraryBits(300), gen.largeJumps(100, 0)]
    for (const samples of inputs) {
      for (const cut of [0, 1, 2, 3, 17, 150, samples.length]) {
        let chunk: XorChunk = newChunk()
        samples.forEach((s, i) => {
          if (i === cut) chunk = openChunk(chunkBytes(chunk))
          appendBits(chunk, s.t, s.bits.hi, s.bits.lo)
        })
        assert.strictEqual(hex(chunkBytes(chunk)), hex(encode(samples)), `cut at ${cut}`)
        const reopened = openChunk(chunkBytes(chunk))
        assert.strictEqual(chunkMaxTime(reopened), samples.at(-1)!.t)
        assert.strictEqual(chunkMinTime(reopened), samples[0]!.t)
      }
    }
    assertCorrupt(() => openChunk(fromHex("0001")))
  })
})

describe("XOR chunk encoding", () => {
  it("pins the encoding with golden bytes", () => {
    const stale = numberOf(staleNaN)
    const samples = [
      raw(1_700_000_000_000, 1),
      raw(1_700_000_015_000, 1), // delta 15000
      raw(1_700_000_030_000, 2), // dod 0
      raw(1_700_000_045_001, 3), // dod 1
      raw(1_700_000_105_002, -3), // dod 45000
      raw(1_700_000_665_003, stale), // dod 500000
      raw(1_700_000_680_003, -Infinity), // dod -545001
      raw(1_700_000_695_003, 0) // dod 0
    ]
    const fields = [
      "0000000000001000", // count 8
      // sample 0
      hexToBits("80d095ffbc31", 48), // t = 1700000000000, signed LEB128
      hexToBits("3ff0000000000000", 64), // v = 1, raw bits
      // sample 1
      hexToBits("9875", 16), // delta 15000, unsigned LEB128
      "0", // v: same bits
      // sample 2
      "0", // dod 0
      "11" + "00001" + "001011" + "11111111111", // v ^ prev = 0x7ff0...: new window, 1 leading, 11 bits
      // sample 3
      "10" + "00000000000001", // dod 1: 14 bits
      "11" + "01100" + "000001" + "1", // v ^ prev = 0x0008...: new window, 12 leading, 1 bit
      // sample 4
      "110" + "01010111111001000", // dod 45000: 17 bits
      "11" + "00000" + "000001" + "1", // v ^ prev = 0x8000...: new window, 0 leading, 1 bit
      // sample 5
      "1110" + "01111010000100100000", // dod 500000: 20 bits
      "11" + "00000" + "111111" + hexToBits("5ffc000000000001", 63), // v ^ prev = 0xbff8000000000002: 63 bits
      // sample 6
      "1111" + hexToBits("fffffffffff7af17", 64), // dod -545001: 64 bits
      "10" + hexToBits("4000000000000001", 63), // v ^ prev = 0x8000000000000002: the previous window
      // sample 7
      "0", // dod 0
      "10" + hexToBits("7ff8000000000000", 63) // v ^ prev = 0xfff0000000000000: the previous window
    ]
    const golden =
      "000880d095ffbc313ff0000000000000" + // count, sample 0
      "98753097ffe0007603cafc8c00f9e848307f7ff0000000000007fffffffffffdebc5e8000000000000002bffc0000000000000"
    assert.strictEqual(bitsToHex(fields.join("")), golden)
    assert.strictEqual(hex(roundTrip(samples)), golden)
    // A negative first timestamp: signed LEB128, not zigzag.
    assert.strictEqual(hex(encode([raw(-1000, 0.5)])), "0001" + "9878" + "3fe0000000000000")
  })

  it("is compact for regular series", () => {
    const gen = series(1)
    const perSample = (samples: ReadonlyArray<RawSample>) => encode(samples).length / samples.length
    assert.isBelow(perSample(gen.constant(chunkSamplesTarget, 42)), 0.5) // 2 bits a sample, and the first sample
    assert.isBelow(perSample(gen.counter(chunkSamplesTarget)), 2)
    assert.isBelow(perSample(gen.noisyGauge(chunkSamplesTarget)), 9)
  })
})

describe("XOR chunk iterator", () => {
  it("seeks forward to the first sample at or after a time, never back", () => {
    const samples = series(2).irregular(500)
    const bytes = encode(samples)
    const random = makeRandom(9)
    for (let round = 0; round < 200; round++) {
      const target = samples[0]!.t - 10 + random.int(samples.at(-1)!.t - samples[0]!.t + 20)
      const expected = samples.findIndex((s) => s.t >= target)
      const it = iterateChunk(bytes)
      if (expected < 0) {
        assert.isFalse(it.seek(target))
        assert.isFalse(it.next())
        continue
      }
      assert.isTrue(it.seek(target))
      assert.strictEqual(it.t, samples[expected]!.t)
      assert.deepStrictEqual(plain([{ t: it.t, bits: { hi: it.valueHi, lo: it.valueLo } }]), plain([samples[expected]!]))
      // Seeking to an earlier time, or to the current one, stays put.
      assert.isTrue(it.seek(target - 1_000_000))
      assert.strictEqual(it.t, samples[expected]!.t)
      assert.isTrue(it.seek(it.t))
      assert.strictEqual(it.t, samples[expected]!.t)
      // The rest follows.
      assert.deepStrictEqual(plain([...it].map((s) => raw(s.t, s.v))), plain(samples.slice(expected + 1)))
      assert.isFalse(it.seek(target)) // exhausted
    }
    // Exact timestamps, in order, on one iterator.
    const it = iterateChunk(bytes)
    for (const s of samples) {
      assert.isTrue(it.seek(s.t))
      assert.strictEqual(it.t, s.t)
    }
    assert.isFalse(it.seek(samples.at(-1)!.t + 1))
    assert.isFalse(iterateChunk(fromHex("0000")).seek(0))
  })

  it("is iterable, and at() gives the current sample", () => {
    const samples = series(4).counter(50)
    const bytes = encode(samples)
    assert.deepStrictEqual(plain([...iterateChunk(bytes)].map((s) => raw(s.t, s.v))), plain(samples))
    const it = iterateChunk(bytes)
    it.next()
    it.next()
    assert.deepStrictEqual(it.at(), { t: samples[1]!.t, v: numberOf(samples[1]!.bits) })
    assert.strictEqual(it.count, 50)
  })
})

describe("corrupt XOR chunks", () => {
  it("throws ChunkCorrupt for every truncation; the iterator yields a correct prefix first", () => {
    const gen = series(6)
    const inputs = [gen.counter(chunkSamplesTarget, 5), gen.noisyGauge(40), gen.largeJumps(30, -1000), gen.arbitraryBits(30), []]
    for (const samples of inputs) {
      const bytes = encode(samples)
      for (let length = 0; length < bytes.length; length++) {
        const truncated = bytes.slice(0, length)
        assertCorrupt(() => decodeChunk(truncated), `length ${length}`)
        const yielded: Array<RawSample> = []
        assertCorrupt(() => {
          const it = iterateChunk(truncated)
          while (it.next()) yielded.push({ t: it.t, bits: { hi: it.valueHi, lo: it.valueLo } })
        }, `iterating length ${length}`)
        assert.deepStrictEqual(plain(yielded), plain(samples.slice(0, yielded.length)))
        assert.isBelow(yielded.length, Math.max(1, samples.length))
      }
    }
  })

  it("throws ChunkCorrupt on bytes after the last sample and on non-zero padding", () => {
    const bytes = encode([raw(t0, 1), raw(t0 + scrape, 2), raw(t0 + 2 * scrape, 3)])
    assertCorrupt(() => decodeChunk(Uint8Array.of(...bytes, 0)))
    assertCorrupt(() => decodeChunk(Uint8Array.of(0, 0, 0)))
    const padded = bytes.slice()
    padded[padded.length - 1]! |= 1 // the last bits of this chunk are padding
    assertCorrupt(() => decodeChunk(padded))
    assertCorrupt(() => chunkMinTime(Uint8Array.of(0)))
    assertCorrupt(() => chunkSampleCount(Uint8Array.of(0)))
    const error = new ChunkCorrupt("why")
    assert.instanceOf(error, Error)
    assert.strictEqual(error.name, "ChunkCorrupt")
    assert.strictEqual(error.message, "corrupt chunk: why")
  })

  it("throws ChunkCorrupt on bit streams the writer never produces", () => {
    const body = (...fields: Array<string>) => fromHex(bitsToHex(fields.join("")))
    const count = (n: number) => n.toString(2).padStart(16, "0")
    const one = hexToBits("3ff0000000000000", 64)
    // Reuse of a window before any was set.
    assertCorrupt(() => decodeChunk(body(count(2), "00000001", one, "00000001", "10", "1".repeat(64))))
    // A window of 31 leading zeros and 40 bits.
    assertCorrupt(() => decodeChunk(body(count(2), "00000001", one, "00000001", "11", "11111", "101000", "1".repeat(40))))
    // Delta 0 (timestamps must increase), then a delta-of-delta making the delta negative.
    assertCorrupt(() => decodeChunk(body(count(2), "00000001", one, "00000000", "0")))
    assertCorrupt(() => decodeChunk(body(count(3), "00000001", one, "00000101", "0", "10", "11111111111011", "0")))
    // Varints longer than 8 bytes, or beyond the safe integers.
    assertCorrupt(() => decodeChunk(body(count(1), "10000000".repeat(8), "00000000", one)))
    assertCorrupt(() => decodeChunk(body(count(1), "11111111".repeat(7), "00010000", one))) // 2^53 + ...
    assertCorrupt(() => decodeChunk(body(count(1), "10000000".repeat(7), "01101111", one))) // -(2^53) - 2^49 * 1
    assertCorrupt(() => decodeChunk(body(count(2), "00000000", one, "11111111".repeat(7), "00010000", "0")))
    // A first timestamp of 2^53 - 1 and a delta of 1.
    assertCorrupt(() => decodeChunk(body(count(2), "11111111".repeat(7), "00001111", one, "00000001", "0")))
    // A 64-bit delta-of-delta of 2^53.
    assertCorrupt(() => decodeChunk(body(count(3), "00000000", one, "00000001", "0", "1111", hexToBits("0020000000000000", 64), "0")))
    // The edges that are fine: -(2^53 - 1) as the first timestamp.
    assert.deepStrictEqual(decodeChunk(body(count(1), "10000001", "10000000".repeat(6), "01110000", one)), [{ t: -Number.MAX_SAFE_INTEGER, v: 1 }])
    // A non-minimal encoding the writer never chooses still decodes (dod 0 in the 14-bit bucket).
    assert.deepStrictEqual(
      decodeChunk(body(count(3), "00000000", one, "00000001", "0", "10", "00000000000000", "0")).map((s) => s.t),
      [0, 1, 2]
    )
  })

  it("throws ChunkCorrupt or decodes to a valid chunk for damaged and arbitrary bytes", () => {
    const gen = series(8)
    const random = gen.random
    const valid = [gen.counter(chunkSamplesTarget, 5), gen.noisyGauge(chunkSamplesTarget), gen.largeJumps(50, 0), gen.arbitraryBits(60)].map(encode)
    const outcomes = { decoded: 0, corrupt: 0 }
    const tally = (bytes: Uint8Array) => (decodesOrCorrupt(bytes) ? outcomes.decoded++ : outcomes.corrupt++)
    for (const bytes of valid) {
      for (let bit = 0; bit < bytes.length * 8; bit++) {
        const flipped = bytes.slice()
        flipped[bit >>> 3]! ^= 0x80 >>> (bit & 7)
        tally(flipped)
      }
      for (let round = 0; round < 300; round++) {
        const damaged = bytes.slice()
        for (let k = 1 + random.int(4); k > 0; k--) damaged[random.int(damaged.length)] = random.u32() & 0xff
        tally(damaged)
      }
    }
    for (let round = 0; round < 5000; round++) {
      const arbitrary = new Uint8Array(random.int(200))
      for (let i = 0; i < arbitrary.length; i++) arbitrary[i] = random.u32() & 0xff
      if (arbitrary.length >= 2 && random.int(2) === 0) {
        arbitrary[0] = 0 // small counts get deeper into the stream
        arbitrary[1] = random.int(8)
      }
      tally(arbitrary)
    }
    // Both outcomes occur: most damage is caught, and the value bits have no redundancy to catch it with.
    assert.isAbove(outcomes.decoded, 1000)
    assert.isAbove(outcomes.corrupt, 1000)
    // A huge count over a few bytes ends with ChunkCorrupt, promptly.
    assertCorrupt(() => decodeChunk(Uint8Array.of(0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0)))
  })
})

describe("decoding into columns (decodeChunkInto)", () => {
  /** What the iterator decodes in [mint, maxt] (stopping after maxt), or "corrupt" where it throws first. */
  const viaIterator = (bytes: Uint8Array, mint: number, maxt: number): Array<RawSample> | "corrupt" => {
    try {
      const it = iterateChunk(bytes)
      const out: Array<RawSample> = []
      while (it.next()) {
        if (it.t > maxt) return out
        if (it.t >= mint) out.push({ t: it.t, bits: { hi: it.valueHi, lo: it.valueLo } })
      }
      return out
    } catch (e) {
      if (e instanceof ChunkCorrupt) return "corrupt"
      throw e
    }
  }
  const viaColumns = (bytes: Uint8Array, mint: number, maxt: number, at = 3): Array<RawSample> | "corrupt" => {
    const room = (bytes.length >= 2 ? (bytes[0]! << 8) | bytes[1]! : 0) + at
    const ts = new Float64Array(room)
    const bits = new Uint32Array(room * 2)
    const end = decodeChunkInto(bytes, ts, bits, at, mint, maxt, 0)
    if (end < 0) return "corrupt"
    return Array.from({ length: end - at }, (_, i) => ({ t: ts[at + i]!, bits: { hi: bits[2 * (at + i)]!, lo: bits[2 * (at + i) + 1]! } }))
  }

  it("decodes what the iterator decodes, in any window, for every kind of series", () => {
    for (let seed = 1; seed <= 4; seed++) {
      const gen = series(seed)
      const all = [
        gen.counter(chunkSamplesTarget, 5), gen.noisyGauge(chunkSamplesTarget), gen.randomWalk(200), gen.constant(50, 7),
        gen.irregular(300), gen.largeJumps(100, 0), gen.arbitraryBits(100), [raw(5, 1)], [raw(5, 1), raw(9, 2)], []
      ]
      for (const samples of all) {
        const bytes = encode(samples)
        const ts = samples.map((x) => x.t)
        const lo = ts[0] ?? 0
        const hi = ts.at(-1) ?? 0
        const windows: Array<[number, number]> = [[-Infinity, Infinity], [lo, hi], [lo + 1, hi - 1], [(lo + hi) / 2, hi], [lo, (lo + hi) / 2], [hi + 1, Infinity], [-Infinity, lo - 1]]
        for (const [mint, maxt] of windows) assert.deepStrictEqual(viaColumns(bytes, mint, maxt), viaIterator(bytes, mint, maxt))
      }
    }
  })

  it("answers -1 wherever the iterator finds the chunk corrupt: truncated, flipped and extended bytes", () => {
    const random = makeRandom(99)
    const gen = series(11)
    let corrupt = 0
    for (const samples of [gen.counter(chunkSamplesTarget, 5), gen.irregular(60), gen.largeJumps(30, 1_000), gen.arbitraryBits(40)]) {
      const bytes = encode(samples)
      for (let round = 0; round < 300; round++) {
        const broken = round % 3 === 0
          ? bytes.slice(0, random.int(bytes.length))
          : round % 3 === 1
          ? bytes.map((b, i) => (i === 2 + random.int(bytes.length - 2) ? b ^ (1 << random.int(8)) : b))
          : Uint8Array.from([...bytes, random.int(256)])
        const expected = viaIterator(broken, -Infinity, Infinity)
        if (expected === "corrupt") corrupt++
        assert.deepStrictEqual(viaColumns(broken, -Infinity, Infinity), expected)
      }
    }
    assert.isAbove(corrupt, 100)
  })
})
