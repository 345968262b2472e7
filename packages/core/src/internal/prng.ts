/**
 * A small seeded pseudo-random generator (SplitMix32). Simulation components own one each, derived from
 * the run's root seed, so their choices replay exactly whatever else consumes randomness.
 */
export interface Prng {
  /** A float in [0, 1). */
  readonly next: () => number
  /** An integer in [0, bound). */
  readonly nextInt: (bound: number) => number
  /** A new independent generator derived from this one. */
  readonly fork: () => Prng
}

export const makePrng = (seed: number): Prng => {
  let state = seed >>> 0
  const nextU32 = () => {
    state = (state + 0x9e3779b9) >>> 0
    let z = state
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
    return (z ^ (z >>> 16)) >>> 0
  }
  const prng: Prng = {
    next: () => nextU32() / 0x1_0000_0000,
    nextInt: (bound) => Math.floor(prng.next() * bound),
    fork: () => makePrng(nextU32())
  }
  return prng
}
