/**
 * A runner of Prometheus's PromQL test scripts (`promql/promqltest/testdata/*.test`, format in its
 * README): parses a script into `load` / `clear` / `eval` commands, loads the data into an in-memory
 * `SeriesSource`, runs each eval against an engine and compares the result as Prometheus's promqltest
 * does (test.go):
 *
 * - instant vectors as a set of (labels, value), in order only for `expect ordered`; matrices per series
 *   per step (step `start + i*step`, `_` = no point), sorted by labels; scalars; strings;
 * - floats with `almost.Equal(expected, got, 1e-6)` (relative error, NaN equals NaN); a stale marker
 *   (NaN bits 0x7ff0000000000002) in a result never matches;
 * - `expect fail` (and `eval_fail`): the query must fail, with the message (`msg:`, exact) or pattern
 *   (`regex:`, unanchored) when given; success counts as a failure;
 * - every instant eval also runs as a range query from t-1m to t+1m step 1m and its middle step must give
 *   the same result ("range mode"), unless the query uses start()/end()/range()/step(), expects a string
 *   or a range vector;
 * - every instant eval whose query has no time-dependent function (time(), timestamp(), hour(), ...,
 *   predict_linear()) is re-run with `@ <t>` added to its selectors and subqueries, at t*-10, 0, t/5, t and
 *   t*10 (-1s, 0, 1s when t = 0), each with its range-mode check, for the same expected result (needs the
 *   parser: `@` is inserted into the query text at the AST positions).
 *
 * One difference in reporting only: a matrix's label order is checked after its contents (promqltest
 * checks it first), so that a wrong value is what a failure reports.
 *
 * - `expect warn|info|no_warn|no_info` (with `msg:` or `regex:`): the result's annotations, as promqltest's
 *   `checkAnnotations` (on the eval's query and its `@` variants; not on the range-mode re-run).
 *
 * Native histograms (`{{...}}` points, `{{a}}+{{b}}xN` expansions, `load_with_nhcb` conversions of classic
 * histograms) are loaded and compared as promqltest does (structure exact, counts within 1e-6, the counter
 * reset hint only where the expectation gives one); the in-memory store gives histograms read back the
 * hints a TSDB's chunks record. `@st` lines give the next series' samples start timestamps (offsets from
 * each sample's time), which the store selects with them (`SelectedSeries.startTimestamps`).
 *
 * Each eval is passed, failed or unsupported. Unsupported: the engine answered `QueryError` of kind
 * `unsupported`; the environment could not be loaded (an unknown `load_*` command or a series the runner
 * cannot parse); or it uses an experimental feature and did not pass. Experimental features are
 * what Prometheus's test engine switches on for every file (`TestParserOpts`: experimental functions,
 * duration expressions, extended range selectors `anchored`/`smoothed`, binop fill modifiers; engine
 * options `EnableDelayedNameRemoval`, detected as `__name__` in a grouping or label function, and
 * `UseStartTimestamps`, for data with `@st` lines); no 3.14 file enables a feature in the file itself.
 * An experimental eval that passes counts as passed. The "float-only non-experimental" subset is the
 * evals with neither native histograms nor experimental features.
 *
 * The runner's parts, in promqltest/: script.ts (reading a script), memoryStore.ts (its data), compare.ts
 * (results against expectations), run.ts (running a script against an engine), fileRunner.ts (the scripts
 * of a directory: the only part that reads files) and report.ts (counts and listings). This module is
 * their public entry.
 */
export { isStaleNaN, staleNaN } from "./types.ts"
export {
  experimentalFeatures,
  parseDuration,
  parseNumber,
  parseScript,
  parseSequence,
  parseSeriesDesc,
  parseSeriesLabels,
  parseStartSequence,
  ScriptError
} from "./promqltest/script.ts"
export type {
  AnnotationExpectation,
  ClearCommand,
  Command,
  EvalCommand,
  Expectation,
  ExpectedSeries,
  LoadCommand,
  LoadSeries,
  SeqPoint,
  UnknownCommand
} from "./promqltest/script.ts"
export { MemoryStore } from "./promqltest/memoryStore.ts"
export type { Touched } from "./promqltest/memoryStore.ts"
export {
  almostEqual,
  checkAnnotations,
  checkFailure,
  compareResult,
  formatExpected,
  formatLabels,
  formatResult,
  formatValue
} from "./promqltest/compare.ts"
export type { Mismatch } from "./promqltest/compare.ts"
export { atModifierQuery, loadEngine, runScript } from "./promqltest/run.ts"
export type { Engine, EvalOutcome, FileReport, RunOptions, Status } from "./promqltest/run.ts"
export { defaultDir, runDirectory } from "./promqltest/fileRunner.ts"
export type { DirectoryOptions } from "./promqltest/fileRunner.ts"
export { causeLines, countReport, fileLine, sumCounts, summaryLine, verboseLines } from "./promqltest/report.ts"
export type { Counts } from "./promqltest/report.ts"
