/**
 * A small deterministic PRNG for the fuzz suite (sfc32, seeded through a string hash), and the random
 * choices the generators make with it. Nothing here reads the clock or `Math.random`: one (seed, case
 * index) pair always yields the same case.
 */

/** 32-bit FNV-1a of a string, then mixed (murmur3 finalizer): seeds from arbitrary text. */
const hash32 = (text: string, salt: number): number => {
  let h = (0x811c9dc5 ^ salt) >>> 0
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b) >>> 0
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35) >>> 0
  h ^= h >>> 16
  return h >>> 0
}

export class Prng {
  private a: number
  private b: number
  private c: number
  private d: number

  /** A generator for `seed` and any further parts (e.g. the case index): same parts, same sequence. */
  constructor(seed: string, ...parts: ReadonlyArray<string | number>) {
    const text = [seed, ...parts].join("\u0001")
    this.a = hash32(text, 1)
    this.b = hash32(text, 2)
    this.c = hash32(text, 3)
    this.d = hash32(text, 4) | 1
    for (let i = 0; i < 15; i++) this.next()
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0
    this.d = (this.d + 1) >>> 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) >>> 0
    this.c = (this.c << 21) | (this.c >>> 11)
    this.c = (this.c + t) >>> 0
    return t
  }

  /** A float in [0, 1). */
  float(): number {
    return this.next() / 4294967296
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n)
  }

  /** An integer in [lo, hi] (inclusive). */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1)
  }

  chance(p: number): boolean {
    return this.float() < p
  }

  pick<T>(items: ReadonlyArray<T>): T {
    if (items.length === 0) throw new Error("pick from an empty list")
    return items[this.int(items.length)]!
  }

  /** One of `[weight, item]` pairs, by weight. */
  weighted<T>(items: ReadonlyArray<readonly [number, T]>): T {
    const total = items.reduce((s, [w]) => s + w, 0)
    let x = this.float() * total
    for (const [w, item] of items) {
      x -= w
      if (x < 0) return item
    }
    return items[items.length - 1]![1]
  }

  /** `n` distinct items (fewer if the list is shorter), in random order. */
  sample<T>(items: ReadonlyArray<T>, n: number): Array<T> {
    const copy = [...items]
    const out: Array<T> = []
    while (out.length < n && copy.length > 0) out.push(copy.splice(this.int(copy.length), 1)[0]!)
    return out
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n)
    for (let i = 0; i < n; i++) out[i] = this.next() & 0xff
    return out
  }

  /** Letters and digits. */
  alnum(n: number): string {
    const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    let s = ""
    for (let i = 0; i < n; i++) s += chars[this.int(chars.length)]
    return s
  }

  /** Printable, URL-hostile and non-ASCII characters (well-formed Unicode, no NUL). */
  text(n: number): string {
    const pool = [
      "a", "b", "z", "0", "9", " ", "/", "%", "?", "#", "&", "=", "+", "\"", "'", "\\", "{", "}", "[", "]",
      ".", ",", ":", ";", "~", "*", "\t", "\n", "\u0001", "\u007f", "é", "ß", "€", "日本", "🙂", "\u200b", "\ufeff", "\uffff"
    ]
    let s = ""
    for (let i = 0; i < n; i++) s += this.pick(pool)
    return s
  }
}

/** The FUZZ_SEED as given, or the fixed default. */
export const seedFrom = (env: string | undefined, fallback: string): string =>
  env === undefined || env.trim() === "" ? fallback : env.trim()
