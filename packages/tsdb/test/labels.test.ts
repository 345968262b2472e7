import { assert, describe, it } from "@effect/vitest"
import { canonical, hashCanonical } from "../src/internal/labels.ts"

/** The definition `canonical` keeps: every value as JSON.stringify writes it (the dictionary's hash is over it). */
const reference = (labels: ReadonlyArray<readonly [string, string]>) => "{" + labels.map(([n, v]) => `${n}=${JSON.stringify(v)}`).join(",") + "}"

describe("canonical label sets", () => {
  it("are written as JSON.stringify writes each value, whatever the value holds", () => {
    let seed = 11
    const random = (n: number) => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n
    // Plain text, then what JSON escapes or must keep: quotes, backslashes, controls, DEL, U+2028, pairs and lone surrogates.
    const alphabet = ["a", "Z", "0", " ", ".", ":", "\"", "\\", "\n", "\u0000", "\u001f", "\u007f", "\u2028", "é", "😀", "\ud800", "\udfff"]
    for (let round = 0; round < 2_000; round++) {
      const labels = Array.from({ length: random(5) }, (_, i) => {
        const value = Array.from({ length: random(8) }, () => alphabet[random(round < 1_000 ? 7 : alphabet.length)]!).join("")
        return [`l${i}`, value] as const
      })
      assert.strictEqual(canonical(labels), reference(labels))
    }
  })

  it("hash as they always have: the dictionary's keys stay where they were written", () => {
    // The hashes earlier versions wrote into the dictionary's keys for these label sets.
    assert.strictEqual(hashCanonical(canonical([["__name__", "up"], ["job", "node"]])), 712028465503784)
    assert.strictEqual(hashCanonical(canonical([["a", "x\"y\\z\n"]])), 2361994597307050)
  })
})
