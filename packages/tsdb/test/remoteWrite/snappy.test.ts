import { uncompress } from "snappyjs"
import { describe, expect, it } from "vitest"
import { RemoteWriteLimitError } from "../../src/internal/remoteWrite/decode.ts"
import { snappyCompress, snappyDecompress, snappyUncompressedLength } from "../../src/internal/remoteWrite/snappy.ts"
import { decodeError, hex, limitError, prng } from "./helpers.ts"

const text = (b: Uint8Array): string => new TextDecoder().decode(b)
const bytesOf = (s: string): Uint8Array => new TextEncoder().encode(s)

describe("snappy", () => {
  it("decodes hand-built blocks (golden bytes)", () => {
    // 12 bytes: literal "abc", then copy length 9 at offset 3 (1-byte-offset form, overlapping).
    expect(text(snappyDecompress(hex("0c 08 61 62 63 15 03"), 100))).toBe("abcabcabcabc")
    // 2-byte-offset copy: literal "ab", copy 6 at offset 2 -> "abababab".
    expect(text(snappyDecompress(hex("08 04 61 62 16 02 00"), 100))).toBe("abababab")
    // 4-byte-offset copy: literal "xyz", copy 3 at offset 3.
    expect(text(snappyDecompress(hex("06 08 78 79 7a 0b 03 00 00 00"), 100))).toBe("xyzxyz")
    // Literal with a 1-byte length (tag 60): 61 bytes.
    const lit = new Uint8Array(61).fill(0x41)
    expect(snappyDecompress(Uint8Array.of(61, 60 << 2, 60, ...lit), 100)).toEqual(lit)
    // Empty.
    expect(snappyDecompress(hex("00"), 0)).toEqual(new Uint8Array(0))
  })

  it("round trips, and agrees with snappyjs", () => {
    const rnd = prng(3)
    const sizes = [0, 1, 2, 15, 16, 17, 60, 61, 255, 256, 65_535, 65_536, 70_000, 1 << 20]
    for (const n of sizes) {
      for (const kind of ["random", "repetitive", "text"] as const) {
        const data = new Uint8Array(n)
        for (let i = 0; i < n; i++) {
          data[i] = kind === "random" ? Math.floor(rnd() * 256) : kind === "repetitive" ? i % 7 : "metric_name{job=\"x\"} "[i % 21]!.charCodeAt(0)
        }
        const c = snappyCompress(data)
        expect(snappyUncompressedLength(c)).toBe(n)
        expect(snappyDecompress(c, n)).toEqual(data)
        expect(new Uint8Array(uncompress(c))).toEqual(data)
      }
    }
  })

  it("decodes into a buffer it is given when that is long enough, else into a new one", () => {
    const data = bytesOf("metric_name{job=\"x\"} ".repeat(50))
    const c = snappyCompress(data)
    const big = new Uint8Array(data.length + 10).fill(7)
    const into = snappyDecompress(c, 1 << 20, big)
    expect(into.buffer).toBe(big.buffer)
    expect(into).toEqual(data)
    const small = new Uint8Array(data.length - 1)
    const fresh = snappyDecompress(c, 1 << 20, small)
    expect(fresh.buffer).not.toBe(small.buffer)
    expect(fresh).toEqual(data)
    // A malformed block is still refused, whatever the buffer.
    expect(decodeError(() => snappyDecompress(c.subarray(0, c.length - 1), 1 << 20, big)).field).toBe("snappy")
  })

  it("compresses Buffers and subarrays to plain Uint8Arrays", () => {
    const data = Buffer.from("hello hello hello hello")
    const c = snappyCompress(data.subarray(6))
    expect(Buffer.isBuffer(c)).toBe(false)
    expect(text(snappyDecompress(c, 100))).toBe("hello hello hello")
  })

  it("refuses a bomb from its header, before allocating", () => {
    // 32 MiB of zeros compresses ~21x (snappy's most: a 3-byte copy of 64 bytes).
    const bomb = snappyCompress(new Uint8Array(32 * 1024 * 1024))
    expect(bomb.length).toBeLessThan(2 * 1024 * 1024)
    expect(snappyUncompressedLength(bomb)).toBe(32 * 1024 * 1024)
    const e = limitError(() => snappyDecompress(bomb, 1024 * 1024))
    expect(e.limit).toBe("decompressedBytes")
    expect(e.max).toBe(1024 * 1024)
    // A header claiming 4 GiB - 1 in a 6-byte body: over the limit, or impossible for its size.
    const header = hex("ff ff ff ff 0f 00")
    expect(limitError(() => snappyDecompress(header, 1 << 30))).toBeInstanceOf(RemoteWriteLimitError)
    expect(decodeError(() => snappyDecompress(header, 2 ** 32)).field).toBe("snappy")
    // Within the limit but more than the input could expand to: refused without allocating.
    expect(decodeError(() => snappyDecompress(hex("80 80 80 01 00"), 2 ** 32)).reason).toMatch(/impossible/)
  })

  it("refuses malformed blocks", () => {
    const bad = [
      hex(""), // no header
      hex("80"), // truncated header
      hex("80 80 80 80 80 01"), // header over 5 bytes
      hex("ff ff ff ff 1f"), // header over 32 bits
      hex("03 08 61 62"), // literal past the end of input
      hex("01 08 61 62 63"), // literal past the announced length
      hex("04 00 61 05 00"), // copy with offset 0
      hex("08 00 61 05 02"), // copy offset beyond the output so far
      hex("0c 08 61 62 63 15"), // truncated copy
      hex("0c 08 61 62 63 16 03"), // truncated 2-byte-offset copy
      hex("0c 08 61 62 63 17 03 00 00"), // truncated 4-byte-offset copy
      hex("05 08 61 62 63 05 03"), // copy past the announced length
      hex("04 08 61 62 63"), // output shorter than announced
      hex("02 f0"), // literal length byte missing
      hex("02 fc ff ff"), // 4-byte literal length truncated
      hex("02 fc ff ff ff ff 61") // 4-byte literal length of 2^32
    ]
    for (const b of bad) expect(decodeError(() => snappyDecompress(b, 1 << 20)).field).toBe("snappy")
    expect(decodeError(() => snappyUncompressedLength(hex("80"))).field).toBe("snappy")
  })

  it("answers a corrupted block with its decode error or, when still well formed, what snappyjs decodes", () => {
    const rnd = prng(11)
    const parts: Array<string> = []
    for (let i = 0; i < 400; i++) parts.push(`up{instance="host-${i % 17}:9100",job="node"} ${i % 5}\n`)
    const data = bytesOf(parts.join(""))
    const valid = snappyCompress(data)
    let refused = 0
    for (let round = 0; round < 3_000; round++) {
      const c = valid.slice()
      // One to three bytes changed past the header (a changed header is a length error, tested above).
      for (let k = 1 + Math.floor(rnd() * 3); k > 0; k--) c[3 + Math.floor(rnd() * (c.length - 3))] = Math.floor(rnd() * 256)
      let out: Uint8Array | undefined
      try {
        out = snappyDecompress(c, 1 << 20)
      } catch (e) {
        expect(decodeError(() => { throw e }).field).toBe("snappy")
        refused += 1
        continue
      }
      expect(out.length).toBe(data.length)
      expect(new Uint8Array(uncompress(c))).toEqual(out)
    }
    // Most corruptions break the block; some only change its bytes.
    expect(refused).toBeGreaterThan(100)
    expect(refused).toBeLessThan(3_000)
  })

  it("decompresses a real remote-write sized body quickly", () => {
    const rnd = prng(5)
    const parts: Array<string> = []
    for (let i = 0; i < 20_000; i++) parts.push(`series_${i % 300}{instance="host-${Math.floor(rnd() * 50)}"} ${rnd()}\n`)
    const data = bytesOf(parts.join(""))
    const c = snappyCompress(data)
    expect(snappyDecompress(c, data.length)).toEqual(data)
    expect(limitError(() => snappyDecompress(c, data.length - 1)).limit).toBe("decompressedBytes")
  })
})
