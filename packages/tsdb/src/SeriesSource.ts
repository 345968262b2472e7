/**
 * The storage interface the PromQL engine reads: a `SeriesSource` selects series by matchers over a time
 * range, each as a `SelectedSeries` (its samples in columns), failing with a `TsdbError`
 * (`SamplesLimitExceeded` past a selection's sample limit). The TSDB service implements it; the engine's
 * tests implement it in memory.
 */
import type { Effect } from "effect"
import { Schema } from "effect"
import type { Labels, Matcher } from "./internal/labels.ts"
import type { FloatHistogram } from "./promql/histogram.ts"

export interface Sample {
  readonly timestampMs: number
  readonly value: number
  /** When the sample's counter started (ms; remote write 2.0's created timestamp), if known. */
  readonly startTimestampMs?: number | undefined
}

/**
 * A selected series: its samples in [mint, maxt] (both inclusive) as two columns, index for index, by
 * strictly increasing timestamp. No object per sample: a selection of millions of samples costs 16 bytes
 * each, outside the JavaScript heap.
 */
export interface SelectedSeries {
  readonly labels: Labels
  /** Timestamps (ms, integers), strictly increasing. */
  readonly timestamps: Float64Array
  /** Values, bit for bit as written (the stale marker's NaN payload included). */
  readonly values: Float64Array
  /**
   * Native histogram samples, by index: where `histograms[i]` is defined, sample i is that histogram (and
   * `values[i]` is 0). Absent when the series has no histogram sample in the range. A stale marker is a
   * float stale marker in `values` either way.
   */
  readonly histograms?: ReadonlyArray<FloatHistogram | undefined> | undefined
  /**
   * Start timestamps (ms), by index: when the counter of sample i started (OTLP's and remote write 2.0's
   * start/created timestamp; 0: not known). Absent when no sample in the range has one.
   */
  readonly startTimestamps?: Float64Array | undefined
}

export interface SelectOptions {
  /**
   * Samples the selection may hold at most (default `querySamplesMax`): past it, `select` fails with a
   * `limit` error as soon as it knows, without decoding the rest.
   */
  readonly samplesMax?: number | undefined
}

/**
 * A selected series whose samples are decoded only when read, so that a query holds one series' samples at
 * a time rather than the whole selection's (as Prometheus's series iterators do).
 */
export interface SeriesReader {
  readonly labels: Labels
  /**
   * The series' samples in the selection's range (possibly none). The columns may be views of a buffer that
   * the selection's next `read` reuses: use them, or copy them, before reading another series.
   */
  readonly read: () => SelectedSeries
}

/** What the PromQL engine reads through: series by matchers over a time range. */
export interface SeriesSource {
  readonly select: (
    matchers: ReadonlyArray<Matcher>,
    mint: number,
    maxt: number,
    options?: SelectOptions
  ) => Effect.Effect<ReadonlyArray<SelectedSeries>, TsdbError>
  /**
   * The series `select` would give, in the same order, each decoded when read (the selection's sample limit
   * is then the reader's to keep). A source whose series are decoded already may leave it out: the engine
   * then reads `select`'s.
   */
  readonly selectReaders?: (
    matchers: ReadonlyArray<Matcher>,
    mint: number,
    maxt: number
  ) => Effect.Effect<ReadonlyArray<SeriesReader>, TsdbError>
}

/** A selected series' samples as objects (for tests and checks; the engine reads the columns). */
export const samplesOf = (series: SelectedSeries): Array<Sample> =>
  Array.from(series.timestamps, (timestampMs, i) => ({ timestampMs, value: series.values[i]! }))

/** A selected series from samples sorted by strictly increasing timestamp (for `SeriesSource` test doubles). */
export const selectedSeries = (labels: Labels, samples: ReadonlyArray<Sample>): SelectedSeries => {
  const timestamps = new Float64Array(samples.length)
  const values = new Float64Array(samples.length)
  for (let i = 0; i < samples.length; i++) {
    timestamps[i] = samples[i]!.timestampMs
    values[i] = samples[i]!.value
  }
  return { labels, timestamps, values }
}

/** Why a TSDB operation failed: `unavailable` (retry later), `bad_data` (fix the input), `limit` (too large). */
export class TsdbError extends Schema.TaggedError<TsdbError>()("TsdbError", {
  kind: Schema.Literals(["unavailable", "bad_data", "limit"]),
  message: Schema.String
}) {}

/** A selection would hold more than `samplesMax` samples (a `limit` error the PromQL engine words as Prometheus does). */
export class SamplesLimitExceeded extends TsdbError {
  readonly samplesMax: number
  constructor(samplesMax: number) {
    super({ kind: "limit", message: `more than ${samplesMax} samples selected` })
    this.samplesMax = samplesMax
  }
}
