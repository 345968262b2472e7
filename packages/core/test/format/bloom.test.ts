/**
 * The bloom filter: its hash against published MurmurHash3 vectors, no false negatives, and a false
 * positive rate near the theory at 10 bits per key.
 */
import { assert, describe, it } from "@effect/vitest"
import { bloomHashCount, bloomMayContain, buildBloom, murmur3 } from "../../src/internal/format/index.ts"
import { makeRandom, utf8 } from "./helpers.ts"

describe("murmur3", () => {
  it("matches the reference vectors", () => {
    const cases: ReadonlyArray<readonly [string, number, number]> = [
      ["", 0, 0],
      ["", 1, 0x514e28b7],
      ["", 0xffffffff, 0x81f16f39],
      ["\0\0\0\0", 0, 0x2362f9de],
      ["aaaa", 0x9747b28c, 0x5a97808a],
      ["a", 0x9747b28c, 0x7fa09ea6],
      ["ab", 0x9747b28c, 0x74875592],
      ["abc", 0x9747b28c, 0xc84a62dd],
      ["Hello, world!", 0x9747b28c, 0x24884cba],
      ["The quick brown fox jumps over the lazy dog", 0x9747b28c, 0x2fa826cd]
    ]
    for (const [input, seed, want] of cases) assert.strictEqual(murmur3(utf8(input), seed), want, JSON.stringify(input))
  })
})

describe("bloom", () => {
  it("uses round(bitsPerKey * ln 2) hash functions, clamped to 1..30", () => {
    assert.strictEqual(bloomHashCount(10), 7)
    assert.strictEqual(bloomHashCount(0.1), 1)
    assert.strictEqual(bloomHashCount(100), 30)
    assert.strictEqual(buildBloom([], 0, 10)[0], 7)
  })

  it("has no false negatives and under 2% false positives at 10 bits per key", () => {
    const random = makeRandom(42)
    const present = Array.from({ length: 10_000 }, (_, i) => utf8(`user/${i}/${random.u32()}`))
    const absent = Array.from({ length: 10_000 }, (_, i) => utf8(`user/${i}/absent`))
    const bloom = buildBloom(present, present.length, 10)
    assert.strictEqual(bloom.length, 1 + 100_000 / 8)
    for (const key of present) assert.isTrue(bloomMayContain(bloom, key))
    const falsePositives = absent.filter((key) => bloomMayContain(bloom, key)).length
    // Theory for 10 bits and 7 hashes: 0.82%.
    assert.isBelow(falsePositives / absent.length, 0.02, `${falsePositives} false positives`)
  })

  it("filters random binary keys of every length, including the empty key", () => {
    const random = makeRandom(7)
    const keys = Array.from({ length: 2000 }, (_, i) => random.bytes(i % 40))
    const bloom = buildBloom(keys, keys.length, 10)
    for (const key of keys) assert.isTrue(bloomMayContain(bloom, key))
  })

  it("cannot exclude anything when malformed", () => {
    const key = utf8("k")
    assert.isTrue(bloomMayContain(new Uint8Array(0), key))
    assert.isTrue(bloomMayContain(Uint8Array.of(7), key))
    assert.isTrue(bloomMayContain(Uint8Array.of(0, 0, 0), key))
    assert.isTrue(bloomMayContain(Uint8Array.of(31, 0, 0), key))
  })

  it("refuses bad parameters", () => {
    assert.throws(() => buildBloom([], -1, 10))
    assert.throws(() => buildBloom([], 1, 0))
    assert.throws(() => buildBloom([], 1, Number.NaN))
  })
})
