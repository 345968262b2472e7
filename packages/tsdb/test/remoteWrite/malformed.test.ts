/**
 * Hostile input: every truncation and many random corruptions of valid bodies must decode or throw one
 * of the two remote-write errors, never anything else, and never hang.
 */
import { describe, expect, it } from "vitest"
import {
  decodeWriteRequestV1,
  decodeWriteRequestV2,
  encodeWriteRequestV1,
  encodeWriteRequestV2,
  staleNaN
} from "../../src/internal/remoteWrite/decode.ts"
import type { WriteRequest } from "../../src/internal/remoteWrite/decode.ts"
import { snappyCompress, snappyDecompress } from "../../src/internal/remoteWrite/snappy.ts"
import { outcome, prng } from "./helpers.ts"
import { cat, d, group, label, ld, packed, s, sample1, unknowns, v } from "./pb.ts"

const request: WriteRequest = {
  series: [
    {
      labels: [
        ["__name__", "http_requests_total"],
        ["code", "200"],
        ["instance", "host-1:9100"],
        ["job", "api ✓"]
      ],
      samples: [
        { timestampMs: 1_760_000_000_000, value: 12 },
        { timestampMs: 1_760_000_015_000, value: staleNaN },
        { timestampMs: -5, value: -0.5 }
      ]
    },
    { labels: [["__name__", "up"]], samples: [{ timestampMs: 1, value: 1 }] },
    { labels: [["z", ""]], samples: [] }
  ],
  metadata: [
    { metric: "http_requests_total", type: "counter", help: "Requests served.", unit: "" },
    { metric: "up", type: "gauge", help: "", unit: "bool" }
  ],
  histograms: 0,
  exemplars: 0
}

// Bodies with histograms, exemplars, groups and unknown fields too, to reach every branch.
const v1Extra = cat(
  encodeWriteRequestV1(request),
  ld(
    1,
    label("__name__", "h"),
    ld(4, v(1, 3), d(3, 1.5), v(4, 1), ld(8, v(1, 0), v(2, 2)), packed(9, [2, 0]), ld(11, v(1, 0), v(2, 1)), packed(12, [2])),
    ld(3, label("trace_id", "t"), d(2, 1), v(3, 9)),
    unknowns,
    sample1(2, 3, unknowns)
  ),
  group(9, v(1, 1))
)
const v2Extra = cat(
  encodeWriteRequestV2(request),
  s(4, "extra"),
  ld(5, packed(1, [1, 2]), ld(3, v(1, 3), d(3, 1.5), v(6, 3)), ld(4, packed(1, [1, 2]), d(2, 1), v(3, 9)), ld(4, v(1, 1), v(1, 2)), v(6, 7), unknowns)
)
const bodies = [
  ["v1", encodeWriteRequestV1(request), decodeWriteRequestV1],
  ["v1 extra", v1Extra, decodeWriteRequestV1],
  ["v2", encodeWriteRequestV2(request), decodeWriteRequestV2],
  ["v2 extra", v2Extra, decodeWriteRequestV2]
] as const

/** Offsets where a top-level field ends (cutting there leaves a valid, shorter message). */
const topLevelEnds = (bytes: Uint8Array): Set<number> => {
  const ends = new Set<number>([0])
  let pos = 0
  const varint = (): number => {
    let x = 0
    let m = 1
    for (;;) {
      const b = bytes[pos++]!
      x += (b & 0x7f) * m
      m *= 128
      if (b < 0x80) return x
    }
  }
  while (pos < bytes.length) {
    const tag = varint()
    if ((tag & 7) === 2) {
      const n = varint()
      pos += n
    }
    else if ((tag & 7) === 0) varint()
    else if ((tag & 7) === 3) {
      // The test bodies' only group is the last field.
      pos = bytes.length
    } else throw new Error("unexpected wire type in test body")
    ends.add(pos)
  }
  return ends
}

describe("malformed input", () => {
  it("the test bodies are valid", () => {
    for (const [, bytes, decode] of bodies) expect(outcome(() => decode(bytes))).toBe("ok")
    expect(decodeWriteRequestV1(v1Extra).histograms).toBe(1)
    expect(decodeWriteRequestV2(v2Extra).exemplars).toBe(2)
  })

  it("every truncation: valid exactly at top-level field ends (v1), else a decode error", () => {
    for (const [name, bytes, decode] of bodies) {
      const ends = topLevelEnds(bytes)
      for (let n = 0; n < bytes.length; n++) {
        const result = outcome(() => decode(bytes.subarray(0, n)))
        if (name.startsWith("v1")) expect([name, n, result]).toEqual([name, n, ends.has(n) ? "ok" : "decode"])
        // v2: cutting the symbols table short can leave refs dangling, so a field end may still fail.
        else if (!ends.has(n)) expect([name, n, result]).toEqual([name, n, "decode"])
        else expect(result).not.toBe("limit")
      }
    }
  })

  it("random byte flips, insertions and deletions throw only remote-write errors", () => {
    const rnd = prng(42)
    const seen = { ok: 0, decode: 0, limit: 0 }
    const tight = { maxLabelsPerSeries: 3, maxSamplesPerRequest: 4, maxLabelValueBytes: 10 }
    for (const [, bytes, decode] of bodies) {
      for (let i = 0; i < 4000; i++) {
        const mutated = Array.from(bytes)
        const edits = 1 + Math.floor(rnd() * 4)
        for (let e = 0; e < edits; e++) {
          const at = Math.floor(rnd() * mutated.length)
          const kind = rnd()
          if (kind < 0.6) mutated[at] = Math.floor(rnd() * 256)
          else if (kind < 0.7) mutated[at] = mutated[at]! ^ (1 << Math.floor(rnd() * 8))
          else if (kind < 0.85) mutated.splice(at, 1)
          else mutated.splice(at, 0, Math.floor(rnd() * 256))
        }
        const input = Uint8Array.from(mutated)
        seen[outcome(() => decode(input))]++
        seen[outcome(() => decode(input, tight))]++
      }
    }
    // Both outcomes happen a lot; the point is that nothing else does.
    expect(seen.ok).toBeGreaterThan(100)
    expect(seen.decode).toBeGreaterThan(1000)
    expect(seen.limit).toBeGreaterThan(10)
  })

  it("random garbage throws only remote-write errors", () => {
    const rnd = prng(7)
    for (let i = 0; i < 3000; i++) {
      const n = Math.floor(rnd() * 64)
      const bytes = new Uint8Array(n)
      for (let j = 0; j < n; j++) bytes[j] = Math.floor(rnd() * 256)
      outcome(() => decodeWriteRequestV1(bytes))
      outcome(() => decodeWriteRequestV2(bytes))
      outcome(() => snappyDecompress(bytes, 1 << 20))
    }
  })

  it("corrupted snappy bodies throw only remote-write errors", () => {
    const rnd = prng(9)
    const compressed = snappyCompress(encodeWriteRequestV1(request))
    let ok = 0
    for (let i = 0; i < 5000; i++) {
      const bytes = compressed.slice()
      const at = Math.floor(rnd() * bytes.length)
      bytes[at] = Math.floor(rnd() * 256)
      if (outcome(() => decodeWriteRequestV1(snappyDecompress(bytes, 1 << 16))) === "ok") ok++
    }
    expect(ok).toBeGreaterThan(0)
    for (let n = 0; n < compressed.length; n++) {
      expect(outcome(() => snappyDecompress(compressed.subarray(0, n), 1 << 16))).toBe("decode")
    }
  })

  it("huge claimed lengths are refused without allocating", () => {
    // Each claims ~2^32 bytes; refused by the bounds check, not by running out of memory.
    const before = process.memoryUsage().arrayBuffers
    for (let i = 0; i < 1000; i++) {
      expect(outcome(() => decodeWriteRequestV1(Uint8Array.of(0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0)))).toBe("decode")
      expect(outcome(() => decodeWriteRequestV2(Uint8Array.of(0x22, 0xff, 0xff, 0xff, 0xff, 0x0f, 0)))).toBe("decode")
      expect(outcome(() => snappyDecompress(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x0f, 0), 2 ** 32))).toBe("decode")
    }
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 * 1024 * 1024)
  })

  it("deep nesting of groups is refused, not a stack overflow", () => {
    const depth = 100_000
    const bytes = new Uint8Array(depth * 2)
    for (let i = 0; i < depth; i++) bytes[i] = 0x7b // field 15, start group (15 << 3 | 3)
    expect(outcome(() => decodeWriteRequestV1(bytes))).toBe("decode")
    expect(outcome(() => decodeWriteRequestV2(bytes))).toBe("decode")
  })
})
