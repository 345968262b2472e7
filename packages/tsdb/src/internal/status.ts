/**
 * What `/api/v1/status/tsdb` reports, computed from the store through the public `TsdbShape` (series,
 * select): the head's series count, label pairs and time bounds, and the top-N cardinality tables, with
 * Prometheus's definitions (`tsdb/index/postings.go` `MemPostings.Stats`, `model/labels` `SizeOfLabels`).
 *
 * "Head" here is what this store keeps hot, the current and the previous 2-hour time bucket
 * (`Limits.bucketMs`): between 2 and 4 hours of data, where Prometheus's head holds the last 1 to 3 hours.
 */
import { Effect } from "effect"
import * as Limits from "../limits.ts"
import type { Labels } from "./labels.ts"
import type { TsdbError, TsdbShape } from "../Tsdb.ts"

export interface TsdbStat {
  readonly name: string
  readonly value: number
}

export interface CardinalityStats {
  readonly numSeries: number
  /** Distinct `name=value` pairs over the series (Prometheus's `numLabelPairs`). */
  readonly numLabelPairs: number
  readonly seriesCountByMetricName: ReadonlyArray<TsdbStat>
  readonly labelValueCountByLabelName: ReadonlyArray<TsdbStat>
  readonly memoryInBytesByLabelName: ReadonlyArray<TsdbStat>
  readonly seriesCountByLabelValuePair: ReadonlyArray<TsdbStat>
}

const utf8Length = (s: string) => Buffer.byteLength(s, "utf8")

/** Prometheus's `stringlabels` encoding of one string: a length prefix (1 byte below 255, else 4), then the bytes. */
const encodedLength = (s: string) => {
  const n = utf8Length(s)
  return n + (n < 255 ? 1 : 4)
}

/** The `limit` largest entries, largest first (equal counts by name, so that answers are stable). */
const top = (counts: Map<string, number>, limit: number): Array<TsdbStat> =>
  [...counts].sort(([a, x], [b, y]) => (y - x) || (a < b ? -1 : a > b ? 1 : 0)).slice(0, limit).map(([name, value]) => ({ name, value }))

/**
 * The cardinality tables of a set of series, as Prometheus computes them from its head postings: series
 * per metric name, distinct values per label name, bytes of label data per label name (each pair's
 * encoded name and value, times the series that carry it), and series per `name=value` pair.
 */
export const cardinality = (series: ReadonlyArray<Labels>, limit: number): CardinalityStats => {
  const pairs = new Map<string, Map<string, number>>()
  for (const labels of series) {
    for (const [name, value] of labels) {
      let values = pairs.get(name)
      if (values === undefined) pairs.set(name, values = new Map())
      values.set(value, (values.get(value) ?? 0) + 1)
    }
  }
  const byMetric = pairs.get("__name__") ?? new Map<string, number>()
  const valuesByName = new Map<string, number>()
  const bytesByName = new Map<string, number>()
  const seriesByPair = new Map<string, number>()
  let numLabelPairs = 0
  for (const [name, values] of pairs) {
    valuesByName.set(name, values.size)
    numLabelPairs += values.size
    const nameBytes = encodedLength(name)
    let bytes = 0
    for (const [value, count] of values) {
      bytes += (nameBytes + encodedLength(value)) * count
      seriesByPair.set(`${name}=${value}`, count)
    }
    bytesByName.set(name, bytes)
  }
  return {
    numSeries: series.length,
    numLabelPairs,
    seriesCountByMetricName: top(byMetric, limit),
    labelValueCountByLabelName: top(valuesByName, limit),
    memoryInBytesByLabelName: top(bytesByName, limit),
    seriesCountByLabelValuePair: top(seriesByPair, limit)
  }
}

/** Where the head starts at `nowMs`: the start of the previous 2-hour bucket. */
export const headStart = (nowMs: number): number => Math.max(0, (Math.floor(nowMs / Limits.bucketMs) - 1) * Limits.bucketMs)

const farFuture = Number.MAX_SAFE_INTEGER

/** Windows tried, narrowest first, to find the head's first and last sample without reading all of it. */
const windowsMs = [60_000, 4 * 60_000, 16 * 60_000, 64 * 60_000, 256 * 60_000]

/**
 * The first and last sample timestamps in [start, ∞) over every series, or undefined when there is none.
 * Each bound is looked for in a window next to its end of the range, widened fourfold until samples are
 * found, so the usual answer reads minutes of samples, not hours; `samplesMax` bounds any one read.
 */
export const sampleBounds = (
  tsdb: TsdbShape,
  start: number,
  nowMs: number,
  samplesMax: number
): Effect.Effect<{ readonly minTime: number; readonly maxTime: number } | undefined, TsdbError> =>
  Effect.gen(function*() {
    let maxTime: number | undefined
    for (const w of [...windowsMs, Number.POSITIVE_INFINITY]) {
      const from = Math.max(start, nowMs - w)
      for (const s of yield* tsdb.select([], from, farFuture, { samplesMax })) {
        const last = s.timestamps[s.timestamps.length - 1]
        if (last !== undefined && (maxTime === undefined || last > maxTime)) maxTime = last
      }
      if (maxTime !== undefined || from === start) break
    }
    if (maxTime === undefined) return undefined
    let minTime: number | undefined
    for (const w of [...windowsMs, Number.POSITIVE_INFINITY]) {
      const to = Math.min(maxTime, start + w)
      for (const s of yield* tsdb.select([], start, to, { samplesMax })) {
        const first = s.timestamps[0]
        if (first !== undefined && (minTime === undefined || first < minTime)) minTime = first
      }
      if (minTime !== undefined || to === maxTime) break
    }
    return { minTime: minTime ?? maxTime, maxTime }
  })

/**
 * A duration as Prometheus prints one (`model.Duration.String`): `15d`, `2m`, `1h30m`, `2w`; years and
 * weeks only when they divide it exactly.
 */
export const formatDuration = (ms: number): string => {
  if (ms === 0) return "0s"
  let out = ""
  let rest = ms
  const unit = (name: string, size: number, exact: boolean) => {
    if (exact && rest % size !== 0) return
    const n = Math.floor(rest / size)
    if (n > 0) {
      out += `${n}${name}`
      rest -= n * size
    }
  }
  const day = 24 * 60 * 60_000
  unit("y", 365 * day, true)
  unit("w", 7 * day, true)
  unit("d", day, false)
  unit("h", 60 * 60_000, false)
  unit("m", 60_000, false)
  unit("s", 1000, false)
  unit("ms", 1, false)
  return out
}
