/**
 * Byte helpers of the formats: CRC-32C against published check values and a bit-by-bit reference,
 * unsigned comparison, and the big-endian writer and reader.
 */
import { assert, describe, it } from "@effect/vitest"
import { ByteReader, ByteWriter, compareBytes, crc32c, FormatError } from "../../src/internal/format/index.ts"
import { hex, makeRandom, utf8 } from "./helpers.ts"

/** The definition of CRC-32C, one bit at a time: slow, obviously right. */
const crc32cReference = (bytes: Uint8Array): number => {
  let crc = 0xffffffff
  for (const b of bytes) {
    crc ^= b
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1
  }
  return ~crc >>> 0
}

describe("crc32c", () => {
  it("has the standard check value", () => {
    assert.strictEqual(crc32c(utf8("123456789")), 0xe3069283)
    assert.strictEqual(crc32c(new Uint8Array(0)), 0)
  })

  it("matches the RFC 3720 (iSCSI) test vectors", () => {
    const ascending = Uint8Array.from({ length: 32 }, (_, i) => i)
    assert.strictEqual(crc32c(new Uint8Array(32)), 0x8a9136aa)
    assert.strictEqual(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43)
    assert.strictEqual(crc32c(ascending), 0x46dd794e)
    assert.strictEqual(crc32c(ascending.slice().reverse()), 0x113fdb5c)
  })

  it("matches a bit-by-bit reference at every length and alignment, and continues from a seed", () => {
    const random = makeRandom(1)
    const data = random.bytes(300)
    for (let start = 0; start < 9; start++) {
      for (let end = start; end <= data.length; end += 1 + (end % 7)) {
        const slice = data.subarray(start, end)
        const want = crc32cReference(slice)
        assert.strictEqual(crc32c(slice), want)
        const cut = start + ((end - start) >> 1)
        assert.strictEqual(crc32c(data.subarray(cut, end), crc32c(data.subarray(start, cut))), want)
      }
    }
  })
})

describe("compareBytes", () => {
  it("orders unsigned, lexicographically, prefixes first", () => {
    const b = (...xs: Array<number>) => Uint8Array.from(xs)
    const sorted = [b(), b(0), b(0, 0), b(0, 1), b(1), b(1, 255), b(127), b(128), b(255), b(255, 0)]
    for (let i = 0; i < sorted.length; i++) {
      for (let j = 0; j < sorted.length; j++) {
        assert.strictEqual(Math.sign(compareBytes(sorted[i]!, sorted[j]!)), Math.sign(i - j), `${i} vs ${j}`)
      }
    }
  })
})

describe("ByteWriter and ByteReader", () => {
  it("round-trip big-endian fields through growth", () => {
    const w = new ByteWriter(1)
    w.u8(0xab).u16(0x1234).u32(0xdeadbeef).u64(0).u64(Number.MAX_SAFE_INTEGER).u64(0x1_0000_0001).bytes(utf8("xyz"))
    w.u32(0)
    w.setU32(w.length - 4, 7)
    const bytes = w.finish()
    assert.strictEqual(
      hex(bytes),
      "ab1234deadbeef" + "0000000000000000" + "001fffffffffffff" + "0000000100000001" + "78797a" + "00000007"
    )
    const r = new ByteReader(bytes)
    assert.strictEqual(r.u8(), 0xab)
    assert.strictEqual(r.u16(), 0x1234)
    assert.strictEqual(r.u32(), 0xdeadbeef)
    assert.strictEqual(r.u64(), 0)
    assert.strictEqual(r.u64(), Number.MAX_SAFE_INTEGER)
    assert.strictEqual(r.u64(), 0x1_0000_0001)
    assert.strictEqual(hex(r.bytes(3)), "78797a")
    assert.strictEqual(r.u32(), 7)
    assert.strictEqual(r.remaining, 0)
    r.end("everything")
  })

  it("refuses values that do not fit their field with a plain Error", () => {
    const w = new ByteWriter()
    for (const bad of [() => w.u8(256), () => w.u16(-1), () => w.u32(2 ** 32), () => w.u64(2 ** 53), () => w.u64(1.5)]) {
      assert.throws(bad, /out of range/)
    }
  })

  it("throws FormatError on overrun, an oversized u64 and trailing bytes, without moving", () => {
    const r = new ByteReader(Uint8Array.of(0x00, 0x20, 0, 0, 0, 0, 0, 0, 9))
    assert.throws(() => r.bytes(10), FormatError)
    assert.throws(() => r.u64(), FormatError) // 0x0020... is above 2^53-1
    assert.strictEqual(r.offset, 0)
    assert.strictEqual(r.u8(), 0)
    assert.throws(() => r.end("x"), FormatError)
    const sub = new ByteReader(Uint8Array.of(1, 2, 3, 4, 5).subarray(1, 3))
    assert.strictEqual(sub.u16(), 0x0203)
    assert.throws(() => sub.u8(), FormatError)
  })
})
