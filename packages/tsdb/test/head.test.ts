import { assert, describe, it } from "@effect/vitest"
import * as Limits from "../src/limits.ts"
import { emptyState, keepRecent, recentBucket, recentBytes, recentCount, recentMaxT, recentMinT, type SealedChunk } from "../src/internal/head.ts"

/** The rule `keepRecent` packs, on plain arrays: key order, a same-key chunk replaces, the last two buckets, at most `recentChunksMax`. */
const model = (list: Array<SealedChunk>, covered: { after: number }, chunk: SealedChunk) => {
  let at = list.length
  while (at > 0 && (list[at - 1]!.bucket > chunk.bucket || (list[at - 1]!.bucket === chunk.bucket && list[at - 1]!.minT > chunk.minT))) at--
  if (at > 0 && list[at - 1]!.bucket === chunk.bucket && list[at - 1]!.minT === chunk.minT) list[at - 1] = chunk
  else list.splice(at, 0, chunk)
  const newest = list.at(-1)!.bucket
  while (list.length > 0 && (list[0]!.bucket < newest - 1 || list.length > Limits.recentChunksMax)) covered.after = Math.max(covered.after, list.shift()!.bucket)
}

describe("a series' recent chunks, packed", () => {
  it("keep what the plain-array rule keeps, in order, bytes included, over random seals; a view read once keeps its bytes through later seals", () => {
    let seed = 7
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648)
    for (let round = 0; round < 200; round++) {
      const state = emptyState(1)
      state.coveredAfter = -1
      const list: Array<SealedChunk> = []
      const covered = { after: -1 }
      /** Views a read took (as a query keeps them past the lock), with the bytes they had then. */
      const taken: Array<readonly [Uint8Array, Array<number>]> = []
      let bucket = 0
      for (let n = 0; n < 40; n++) {
        if (random() < 0.2) bucket++
        // Mostly in order; sometimes an older bucket or a key already kept (an out-of-order chunk).
        const b = random() < 0.1 ? Math.max(0, bucket - 1) : bucket
        const minT = b * 1000 + Math.floor(random() * 20) * 10
        const bytes = Uint8Array.from({ length: 1 + Math.floor(random() * 30) }, () => Math.floor(random() * 256))
        const chunk: SealedChunk = { bucket: b, minT, maxT: minT + 5, bytes }
        keepRecent(state, chunk, minT + 5)
        model(list, covered, chunk)
        const r = state.recent
        assert.strictEqual(recentCount(r), list.length)
        list.forEach((c, i) => {
          assert.strictEqual(recentBucket(r, i), c.bucket)
          assert.strictEqual(recentMinT(r, i), c.minT)
          assert.strictEqual(recentMaxT(r, i), c.maxT)
          assert.deepStrictEqual(Array.from(recentBytes(r, i)), Array.from(c.bytes))
          taken.push([recentBytes(r, i), Array.from(c.bytes)])
        })
        assert.strictEqual(state.coveredAfter, covered.after)
      }
      for (const [view, bytes] of taken) assert.deepStrictEqual(Array.from(view), bytes)
    }
  })
})
