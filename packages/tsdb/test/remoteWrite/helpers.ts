import { expect } from "vitest"
import { RemoteWriteDecodeError, RemoteWriteLimitError } from "../../src/internal/remoteWrite/decode.ts"

/** Bytes from hex, spaces and `|` comments allowed (`0a 08 |label| ...`). */
export const hex = (s: string): Uint8Array => {
  const clean = s.replace(/\|[^|]*\|/g, "").replace(/\s+/g, "")
  if (clean.length % 2 !== 0) throw new Error("odd hex")
  const out = new Uint8Array(clean.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16)
  return out
}

export const ascii = (s: string): string =>
  Array.from(new TextEncoder().encode(s), (b) => b.toString(16).padStart(2, "0")).join(" ")

/** The 64 bits of a double, as 16 hex digits. */
export const bits = (v: number): string => {
  const d = new DataView(new ArrayBuffer(8))
  d.setFloat64(0, v)
  return d.getBigUint64(0).toString(16).padStart(16, "0")
}

export const fromBits = (h: string): number => {
  const d = new DataView(new ArrayBuffer(8))
  d.setBigUint64(0, BigInt(`0x${h}`))
  return d.getFloat64(0)
}

/** A deterministic PRNG (mulberry32). */
export const prng = (seed: number): (() => number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Runs `f`; returns "ok", "decode" or "limit", and fails the test on any other exception. */
export const outcome = (f: () => unknown): "ok" | "decode" | "limit" => {
  try {
    f()
    return "ok"
  } catch (e) {
    if (e instanceof RemoteWriteDecodeError) return "decode"
    if (e instanceof RemoteWriteLimitError) return "limit"
    throw new Error(`unexpected exception: ${String(e)}`, { cause: e })
  }
}

export const decodeError = (f: () => unknown): RemoteWriteDecodeError => {
  try {
    f()
  } catch (e) {
    if (e instanceof RemoteWriteDecodeError) return e
    throw new Error(`expected RemoteWriteDecodeError, got ${String(e)}`, { cause: e })
  }
  expect.fail("expected RemoteWriteDecodeError, got success")
}

export const limitError = (f: () => unknown): RemoteWriteLimitError => {
  try {
    f()
  } catch (e) {
    if (e instanceof RemoteWriteLimitError) return e
    throw new Error(`expected RemoteWriteLimitError, got ${String(e)}`, { cause: e })
  }
  expect.fail("expected RemoteWriteLimitError, got success")
}
