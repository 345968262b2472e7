/**
 * A latency histogram with fixed bounds, for the Db's stats (how long WAL writes take). Observing is a
 * plain array update, cheap enough for every write; `snapshot` copies the counts for `stats`, which the
 * runtime's metrics render as a Prometheus histogram.
 */
import type { LatencyHistogram } from "../../Db.ts"

const latencyBoundsMs = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000] as const

export const makeLatencyHistogram = () => {
  const counts = new Array<number>(latencyBoundsMs.length + 1).fill(0)
  let sumMs = 0
  let count = 0
  return {
    observe: (ms: number) => {
      const i = latencyBoundsMs.findIndex((b) => ms <= b)
      counts[i === -1 ? latencyBoundsMs.length : i]! += 1
      sumMs += ms
      count += 1
    },
    snapshot: (): LatencyHistogram => ({ boundsMs: latencyBoundsMs, counts: [...counts], sumMs, count })
  }
}
