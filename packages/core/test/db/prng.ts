/** A seeded generator for tests (mulberry32): the seed alone decides every choice. */
export const makePrngForTests = (seed: number) => {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return { next, nextInt: (bound: number) => Math.floor(next() * bound) }
}
