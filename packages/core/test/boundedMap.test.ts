import { describe, expect, it } from "vitest"
import { trimOldest } from "../src/BoundedMap.ts"

describe("trimOldest", () => {
  it("keeps a map within its bound, forgetting the oldest first, a slice at a time", () => {
    const map = new Map<number, string>()
    const gone: Array<number> = []
    for (let i = 0; i < 10_000; i++) {
      map.set(i, `v${i}`)
      trimOldest(map, 1_000, (k) => gone.push(k))
      expect(map.size).toBeLessThanOrEqual(1_000)
    }
    // What went, went oldest first; what stays is the newest.
    expect(gone).toEqual(Array.from({ length: gone.length }, (_, i) => i))
    expect([...map.keys()]).toEqual(Array.from({ length: map.size }, (_, i) => 10_000 - map.size + i))
    expect(map.size).toBeGreaterThanOrEqual(1_000 - Math.floor(1_000 / 64))
  })

  it("leaves a map within its bound alone, and refreshing an entry (delete, set) makes it newest", () => {
    const map = new Map([[1, 1], [2, 2], [3, 3]])
    trimOldest(map, 3)
    expect([...map.keys()]).toEqual([1, 2, 3])
    map.delete(1)
    map.set(1, 1)
    map.set(4, 4)
    trimOldest(map, 3)
    expect([...map.keys()]).toEqual([3, 1, 4])
  })
})
