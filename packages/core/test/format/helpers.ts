/**
 * Helpers of the format tests: a fixed-seed PRNG, entry builders, a whole-table reader that goes
 * footer-first like a real one, and a check that a decoder fails with `CorruptObject` and nothing else.
 */
import { assert } from "@effect/vitest"
import {
  type BlockHandle,
  CorruptObject,
  blockEntries,
  decodeSstBlock,
  decodeSstBloom,
  decodeSstFooter,
  decodeSstIndex,
  type Entry,
  type EntryKind,
  type SstFooter,
  sstFooterBytes
} from "../../src/internal/format/index.ts"

/** Mulberry32: a tiny deterministic generator, so failures replay. */
export const makeRandom = (seed: number) => {
  let a = seed >>> 0
  const u32 = (): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }
  const int = (bound: number): number => Math.floor((u32() / 0x1_0000_0000) * bound)
  const bytes = (n: number): Uint8Array => {
    const b = new Uint8Array(n)
    for (let i = 0; i < n; i++) b[i] = u32() & 0xff
    return b
  }
  return { u32, int, bytes }
}

export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)
export const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex")
export const fromHex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "hex"))

export const entry = (key: string | Uint8Array, seq: number, kind: EntryKind = "put", value: string | Uint8Array = ""): Entry => ({
  key: typeof key === "string" ? utf8(key) : key,
  seq,
  kind,
  value: typeof value === "string" ? utf8(value) : value
})

/** Entries as comparable plain data (hex keys and values). */
export const plain = (entries: ReadonlyArray<Entry>) =>
  entries.map((e) => ({ key: hex(e.key), seq: e.seq, kind: e.kind, value: hex(e.value) }))

export interface ReadSst {
  readonly footer: SstFooter
  readonly index: ReadonlyArray<BlockHandle>
  readonly bloom: Uint8Array
  readonly blocks: ReadonlyArray<ReadonlyArray<Entry>>
}

/** Reads a whole table the way a reader does: footer, then index and bloom, then each block by its handle. */
export const readSst = (object: string, bytes: Uint8Array): ReadSst => {
  const size = bytes.length
  const footer = decodeSstFooter(object, bytes.subarray(Math.max(0, size - sstFooterBytes)), size)
  const index = decodeSstIndex(object, bytes.subarray(footer.indexOffset, footer.indexOffset + footer.indexLength))
  const bloom = decodeSstBloom(object, bytes.subarray(footer.bloomOffset, footer.bloomOffset + footer.bloomLength))
  const last = index[index.length - 1]!
  if (last.offset + last.length !== footer.bloomOffset) throw new CorruptObject({ object, reason: "blocks do not end at the bloom" })
  const blocks = index.map((h) => blockEntries(decodeSstBlock(object, bytes.subarray(h.offset, h.offset + h.length))))
  return { footer, index, bloom, blocks }
}

/**
 * Runs `decode`: returns "ok" if it decoded, "corrupt" if it threw `CorruptObject` for `object`, and fails
 * the test on any other exception.
 */
export const outcome = (object: string, decode: () => unknown): "ok" | "corrupt" => {
  try {
    decode()
    return "ok"
  } catch (error) {
    if (error instanceof CorruptObject && error.object === object) return "corrupt"
    assert.fail(`expected CorruptObject, got ${String(error)}\n${error instanceof Error ? error.stack : ""}`)
  }
}

/** Fails the test unless `decode` throws `CorruptObject` for `object`. */
export const assertCorrupt = (object: string, decode: () => unknown, what: string): void => {
  assert.strictEqual(outcome(object, decode), "corrupt", `${what} decoded without error`)
}
