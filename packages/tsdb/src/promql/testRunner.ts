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
 */
import * as path from "node:path"
import { readdir, readFile } from "node:fs/promises"
import { join } from "node:path"
import { Cause, Effect, Exit } from "effect"
import type { Labels, Matcher } from "../internal/labels.ts"
import { canonical, labelValue, matchesAll, sortLabels } from "../internal/labels.ts"
import { StringEscapeError, unquote } from "../internal/goString.ts"
import type { Sample, SelectedSeries, SeriesSource, TsdbError } from "../Tsdb.ts"
import type { Expr } from "./ast.ts"
import type { InstantSample, Point, QueryOptions, Value } from "./types.ts"
import { promqlFeatures } from "./types.ts"
import { QueryError } from "./types.ts"
import type { Span } from "./histogram.ts"
import { customBucketsSchema, FloatHistogram, parseHistogramText } from "./histogram.ts"

// -------------------------------------------------------------------------------------------------
// Numbers, durations, stale markers

/** Prometheus's stale marker: a NaN with bits 0x7ff0000000000002, made through a DataView. */
export const staleNaN: number = (() => {
  const view = new DataView(new ArrayBuffer(8))
  view.setUint32(0, 0x7ff00000)
  view.setUint32(4, 0x00000002)
  return view.getFloat64(0)
})()

const bitsView = new DataView(new ArrayBuffer(8))
export const isStaleNaN = (v: number): boolean => {
  if (!Number.isNaN(v)) return false
  bitsView.setFloat64(0, v)
  return bitsView.getUint32(0) === 0x7ff00000 && bitsView.getUint32(4) === 0x00000002
}

const minNormal = 2.2250738585072014e-308

/** Prometheus's `almost.Equal`: equal NaNs match, else relative difference below epsilon. */
export const almostEqual = (a: number, b: number, epsilon = 1e-6): boolean => {
  if (Number.isNaN(a) && Number.isNaN(b)) return true
  if (a === b) return true
  const absSum = Math.abs(a) + Math.abs(b)
  const diff = Math.abs(a - b)
  if (a === 0 || b === 0 || absSum < minNormal) return diff < epsilon * minNormal
  return diff / Math.min(absSum, Number.MAX_VALUE) < epsilon
}

const durationPattern = /^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$/
const durationUnits = [365 * 86_400_000, 7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1000, 1]

/** `model.ParseDuration`: `1h30m`, `5m`, `10s`, `100ms`, `0`; milliseconds, or undefined. */
export const parseDuration = (s: string): number | undefined => {
  if (s === "0") return 0
  if (s === "") return undefined
  const m = durationPattern.exec(s)
  if (m === null) return undefined
  let ms = 0
  for (let i = 0; i < durationUnits.length; i++) {
    const n = m[i + 1]
    if (n !== undefined) ms += Number(n) * durationUnits[i]!
  }
  return ms
}

const floatPattern = /^[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN])$/

/** Go's `strconv.ParseInt(s, 0, 64)` then `ParseFloat(s, 64)`, as promqltest reads a scalar line. */
export const parseNumber = (s: string): number | undefined => {
  const int = /^([+-]?)(0[xX][0-9a-fA-F]+|0[oO]?[0-7]+|0[bB][01]+|[1-9]\d*|0)$/.exec(s)
  if (int !== null) {
    const body = int[2]!
    const sign = int[1] === "-" ? -1 : 1
    const n = /^0[0-7]/.test(body) ? parseInt(body.replace(/^0[oO]?/, ""), 8) : Number(body.replace(/^0[oO]/, "0o"))
    return sign * n
  }
  if (!floatPattern.test(s)) return undefined
  const lower = s.toLowerCase()
  if (lower.endsWith("nan")) return NaN
  if (lower.endsWith("inf") || lower.endsWith("infinity")) return lower.startsWith("-") ? -Infinity : Infinity
  return Number(s)
}

// -------------------------------------------------------------------------------------------------
// Series descriptions: `metric{a="b"} 1 2+3x4 _ stale {{...}}`

export class ScriptError extends Error {}

/**
 * One point of an expanded sequence. An object, not an element of a number array: V8 may canonicalize a
 * NaN stored in a double array, which would lose the stale marker's bits.
 */
export interface SeqPoint {
  readonly kind: "float" | "omitted" | "histogram"
  readonly value: number
  /** The native histogram of a `histogram` point. */
  readonly histogram?: FloatHistogram | undefined
  /** Whether its counter reset hint was given (then a comparison checks it). */
  readonly hintSet?: boolean | undefined
}

const omitted: SeqPoint = { kind: "omitted", value: 0 }

/** The histogram of promqltest's `{{...}}` notation (`text` with the braces). */
const readHistogram = (text: string): { histogram: FloatHistogram; counterResetHintSet: boolean } => {
  try {
    return parseHistogramText(text.slice(2, -2))
  } catch (e) {
    throw new ScriptError(e instanceof Error ? e.message : String(e))
  }
}

/**
 * The points of a histogram item: `{{a}}`, `{{a}}xN` (N + 1 copies), `{{a}}+{{b}}xN` / `{{a}}-{{b}}xN`
 * (a, a+b, a+2b, ... N + 1 points; the hint given on the increment decides whether it is checked).
 */
const histogramItems = (item: string): Array<SeqPoint> => {
  const first = item.indexOf("}}") + 2
  const base = readHistogram(item.slice(0, first))
  const rest = item.slice(first)
  const point = (h: FloatHistogram, hintSet: boolean): SeqPoint => ({ kind: "histogram", value: NaN, histogram: h, hintSet })
  if (rest === "") return [point(base.histogram, base.counterResetHintSet)]
  const repeat = /^x(\d+)$/.exec(rest)
  if (repeat !== null) return Array.from({ length: Number(repeat[1]) + 1 }, () => point(base.histogram.copy(), base.counterResetHintSet))
  const m = /^([+-])(\{\{.*\}\})x(\d+)$/.exec(rest)
  if (m === null) throw new ScriptError(`invalid histogram series value ${JSON.stringify(item)}`)
  const inc = readHistogram(m[2]!)
  const out = [point(base.histogram, inc.counterResetHintSet)]
  let cur = base.histogram
  for (let k = 0; k < Number(m[3]); k++) {
    if (cur.schema > inc.histogram.schema) throw new ScriptError(`error combining histograms: cannot merge from schema ${inc.histogram.schema} to ${cur.schema}`)
    cur = cur.copy()
    try {
      if (m[1] === "+") cur.add(inc.histogram)
      else cur.sub(inc.histogram)
    } catch (e) {
      throw new ScriptError(e instanceof Error ? e.message : String(e))
    }
    out.push(point(cur, inc.counterResetHintSet))
  }
  return out
}

const goUnquote = (quote: string, body: string): string => {
  try {
    return unquote(quote, body)
  } catch (e) {
    if (e instanceof StringEscapeError) throw new ScriptError(e.message)
    throw e
  }
}

/** A quoted string at `s[i]`: its value and the index after the closing quote. */
const readQuoted = (s: string, i: number): { readonly value: string; readonly end: number } => {
  const quote = s[i]!
  let j = i + 1
  while (j < s.length && s[j] !== quote) j += s[j] === "\\" && quote !== "`" ? 2 : 1
  if (j >= s.length) throw new ScriptError(`unterminated quoted string in ${JSON.stringify(s)}`)
  return { value: goUnquote(quote, s.slice(i + 1, j)), end: j + 1 }
}

const isQuote = (c: string | undefined) => c === '"' || c === "'" || c === "`"

/**
 * The labels of a series description (`metric{a="b"}`, `{__name__="m"}`, `{"quoted.name", "a.b"="c"}`)
 * and the index where its values start.
 */
export const parseSeriesLabels = (s: string, from = 0): { readonly labels: Labels; readonly end: number } => {
  let i = from
  const skip = () => {
    while (i < s.length && /\s/.test(s[i]!)) i++
  }
  skip()
  const labels: Array<readonly [string, string]> = []
  const ident = /[a-zA-Z_:][a-zA-Z0-9_:]*/y
  ident.lastIndex = i
  const name = ident.exec(s)
  if (name !== null) {
    labels.push(["__name__", name[0]])
    i = ident.lastIndex
  }
  if (s[i] === "{") {
    i++
    for (;;) {
      skip()
      if (s[i] === "}") {
        i++
        break
      }
      let label: string
      if (isQuote(s[i])) {
        const q = readQuoted(s, i)
        i = q.end
        label = q.value
      } else {
        const id = /[a-zA-Z_][a-zA-Z0-9_]*/y
        id.lastIndex = i
        const m = id.exec(s)
        if (m === null) throw new ScriptError(`unexpected ${JSON.stringify(s.slice(i, i + 10))} in labels of ${JSON.stringify(s)}`)
        i = id.lastIndex
        label = m[0]
      }
      skip()
      if (s[i] === "=") {
        i++
        skip()
        if (!isQuote(s[i])) throw new ScriptError(`expected a quoted label value in ${JSON.stringify(s)}`)
        const q = readQuoted(s, i)
        i = q.end
        labels.push([label, q.value])
      } else {
        // A lone quoted string is the metric name (Prometheus 3 syntax).
        labels.push(["__name__", label])
      }
      skip()
      if (s[i] === ",") {
        i++
        continue
      }
      if (s[i] === "}") {
        i++
        break
      }
      throw new ScriptError(`unexpected ${JSON.stringify(s.slice(i, i + 10))} in labels of ${JSON.stringify(s)}`)
    }
  } else if (name === null) {
    throw new ScriptError(`expected a series description, got ${JSON.stringify(s)}`)
  }
  const seen = new Set<string>()
  for (const [n] of labels) {
    if (seen.has(n)) throw new ScriptError(`label ${n} given twice in ${JSON.stringify(s)}`)
    seen.add(n)
  }
  return { labels: sortLabels(labels.filter(([, v]) => v !== "")), end: i }
}

const num = String.raw`(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[iI][nN][fF]|[nN][aA][nN])`
const itemPattern = new RegExp(`^([+-]?${num})(?:([+-]${num})x(\\d+)|x(\\d+))?$`)

const parseSeriesNumber = (s: string): number => {
  const lower = s.toLowerCase().replace(/^\+/, "")
  if (lower === "nan" || lower === "-nan") return NaN
  if (lower === "inf") return Infinity
  if (lower === "-inf") return -Infinity
  return Number(s)
}

/** Splits a values text into items; a native histogram `{{...}}` (with `xN` or `+{{...}}xN`) is one item. */
const valueItems = (s: string): Array<string> => {
  const items: Array<string> = []
  let i = 0
  while (i < s.length) {
    if (/\s/.test(s[i]!)) {
      i++
      continue
    }
    const start = i
    if (s.startsWith("{{", i)) {
      const close = (from: number) => {
        const j = s.indexOf("}}", from)
        if (j < 0) throw new ScriptError(`unterminated histogram in ${JSON.stringify(s)}`)
        return j + 2
      }
      i = close(i)
      if ((s[i] === "+" || s[i] === "-") && s.startsWith("{{", i + 1)) i = close(i + 1)
      while (i < s.length && !/\s/.test(s[i]!)) i++
    } else {
      while (i < s.length && !/\s/.test(s[i]!)) i++
    }
    items.push(s.slice(start, i))
  }
  return items
}

/** Expands the values of a series description: `1 2+3x2 _ _x3 stale NaN -Inf 4x2 {{...}}`. */
export const parseSequence = (s: string): Array<SeqPoint> => {
  const out: Array<SeqPoint> = []
  for (const item of valueItems(s)) {
    if (item.startsWith("{{")) {
      out.push(...histogramItems(item))
      continue
    }
    if (item === "_") {
      out.push(omitted)
      continue
    }
    const blanks = /^_x(\d+)$/.exec(item)
    if (blanks !== null) {
      for (let k = 0; k < Number(blanks[1]); k++) out.push(omitted)
      continue
    }
    if (item === "stale") {
      out.push({ kind: "float", value: staleNaN })
      continue
    }
    const m = itemPattern.exec(item)
    if (m === null) throw new ScriptError(`invalid series value ${JSON.stringify(item)}`)
    let value = parseSeriesNumber(m[1]!)
    if (m[2] !== undefined) {
      const delta = parseSeriesNumber(m[2])
      for (let k = 0; k <= Number(m[3]); k++) {
        out.push({ kind: "float", value })
        value += delta
      }
    } else if (m[4] !== undefined) {
      for (let k = 0; k <= Number(m[4]); k++) out.push({ kind: "float", value })
    } else {
      out.push({ kind: "float", value })
    }
  }
  return out
}

/** A whole series description line: labels and expanded values. */
export const parseSeriesDesc = (line: string): { readonly labels: Labels; readonly points: Array<SeqPoint> } => {
  const { labels, end } = parseSeriesLabels(line)
  if (end < line.length && !/\s/.test(line[end]!)) throw new ScriptError(`expected a space after the labels in ${JSON.stringify(line)}`)
  return { labels, points: parseSequence(line.slice(end)) }
}

// -------------------------------------------------------------------------------------------------
// Scripts

export interface LoadSeries {
  readonly labels: Labels
  readonly points: ReadonlyArray<SeqPoint>
  /** Whether the series has start timestamps (`@st` lines). */
  readonly startTimestamps: boolean
  /** Its `@st` line: each point's start timestamp as an offset (ms) from the point's time (undefined: none). */
  readonly startOffsets?: ReadonlyArray<number | undefined> | undefined
}

export interface LoadCommand {
  readonly kind: "load"
  readonly line: number
  readonly intervalMs: number
  readonly withNhcb: boolean
  readonly series: ReadonlyArray<LoadSeries>
  /** Whether it loads native histograms (`{{...}}` values, or `load_with_nhcb`). */
  readonly histograms: boolean
  /** Why (some of) the data could not be loaded. */
  readonly error: string | undefined
}

export interface ClearCommand {
  readonly kind: "clear"
  readonly line: number
}

export interface UnknownCommand {
  readonly kind: "unknown"
  readonly line: number
  readonly text: string
}

export interface Expectation {
  /** Exact message (`msg:` / `expected_fail_message`) or pattern (`regex:` / `expected_fail_regexp`). */
  readonly message?: string | undefined
  readonly regex?: RegExp | undefined
}

export interface AnnotationExpectation extends Expectation {
  readonly type: "warn" | "info" | "no_warn" | "no_info"
}

export interface ExpectedSeries {
  readonly labels: Labels
  readonly points: ReadonlyArray<SeqPoint>
  /** 1-based position among the expected series, for `expect ordered`. */
  readonly pos: number
}

export interface EvalCommand {
  readonly kind: "eval"
  readonly line: number
  /** The eval line as written, for reports. */
  readonly text: string
  readonly query: string
  readonly instant: boolean
  /** Instant: the evaluation time (with `expect range vector`: its end). */
  readonly evalMs: number
  /** Range query, or an instant query with `expect range vector`: the expected steps. */
  readonly startMs: number
  readonly endMs: number
  readonly stepMs: number
  readonly fail: ReadonlyArray<Expectation>
  readonly ordered: boolean
  /** Annotation expectations: `expect warn|info [msg:|regex: ...]`, `expect no_warn|no_info`. */
  readonly annotations: ReadonlyArray<AnnotationExpectation>
  readonly expectScalar: SeqPoint | undefined
  readonly expectedString: string | undefined
  readonly expected: ReadonlyArray<ExpectedSeries>
  readonly excludeFromRangeMode: boolean
  /** Whether the expected values hold native histograms. */
  readonly histograms: boolean
  /** Why the eval could not be read (counted as failed: the script is valid Prometheus). */
  readonly error: string | undefined
}

export type Command = LoadCommand | ClearCommand | EvalCommand | UnknownCommand

const patLoad = /^load(?:_(with_nhcb))?\s+(.+?)$/
const patEvalInstant = /^eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$/
const patEvalRange = /^eval(?:_(fail|warn|info))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$/
const patExpect = /^expect\s+(ordered|fail|warn|no_warn|info|no_info)(?:\s+(regex|msg):(.+))?$/
const patExpectRange = /^expect range vector\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+)$/

/** Go RE2 patterns as JS regexes (the common subset; `(?s)`-style flag groups at the start). */
const goRegex = (pattern: string): RegExp => {
  const flags = /^\(\?([imsU]+)\)/.exec(pattern)
  const js = flags === null ? "" : [...new Set(flags[1]!.replace(/U/g, ""))].join("")
  return new RegExp(flags === null ? pattern : pattern.slice(flags[0].length), js)
}

const unquoteString = (s: string): string => {
  if (s.length >= 2 && isQuote(s[0]) && s[s.length - 1] === s[0]) return goUnquote(s[0]!, s.slice(1, -1))
  throw new ScriptError("expected string literal not valid - check that the string is correctly quoted")
}

const unsignedDuration = String.raw`(?:0|(?:\d+(?:ms|s|m|h|d|w|y))+)`
const startItem = new RegExp(`^([+-]?${unsignedDuration})(?:([+-])(${unsignedDuration})x(\\d+)|x(\\d+))?$`)

/** A duration of an `@st` line in ms (`-30s`, `1ms`, `+1m`, `0`, `1m30s`). */
const startDuration = (text: string): number => {
  const sign = text.startsWith("-") ? -1 : 1
  const body = text.replace(/^[+-]/, "")
  if (body === "0") return 0
  let ms = 0
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000, y: 31_536_000_000 }
  for (const m of body.matchAll(/(\d+)(ms|s|m|h|d|w|y)/g)) ms += Number(m[1]) * units[m[2]!]!
  return sign * ms
}

/**
 * An `@st` line's sequence: each point's start-timestamp offset from its time, as promqltest reads it:
 * `_`, `_xN`, `<d>`, `<d>xN` (N+1 times), `<d>+<d>xN` / `<d>-<d>xN` (N+1, stepping).
 */
export const parseStartSequence = (text: string): Array<number | undefined> => {
  const out: Array<number | undefined> = []
  for (const item of text.trim().split(/\s+/)) {
    if (item === "") continue
    if (item === "_") {
      out.push(undefined)
      continue
    }
    const blanks = /^_x(\d+)$/.exec(item)
    if (blanks !== null) {
      for (let k = 0; k < Number(blanks[1]); k++) out.push(undefined)
      continue
    }
    const m = startItem.exec(item)
    if (m === null) throw new ScriptError(`invalid @st value ${JSON.stringify(item)}`)
    const base = startDuration(m[1]!)
    if (m[2] !== undefined) {
      const delta = startDuration(m[3]!) * (m[2] === "-" ? -1 : 1)
      for (let k = 0; k <= Number(m[4]); k++) out.push(base + k * delta)
    } else {
      const n = m[5] === undefined ? 1 : Number(m[5]) + 1
      for (let k = 0; k < n; k++) out.push(base)
    }
  }
  return out
}

/** Lines trimmed, comments blanked (a comment ends a block, as in promqltest). */
const scriptLines = (text: string): Array<string> =>
  text.split("\n").map((l) => {
    const t = l.trim()
    return t.startsWith("#") ? "" : t
  })

const parseLoad = (lines: ReadonlyArray<string>, i: number): { readonly next: number; readonly cmd: LoadCommand } => {
  const line = i + 1
  const m = patLoad.exec(lines[i]!)
  const interval = m === null ? undefined : parseDuration(m[2]!)
  const errors: Array<string> = []
  if (interval === undefined) errors.push(`invalid load command ${JSON.stringify(lines[i])}`)
  const withNhcb = m?.[1] === "with_nhcb"
  const byKey = new Map<string, LoadSeries>()
  let histograms = withNhcb
  let pendingSt: { readonly key: string; readonly offsets: Array<number | undefined> } | undefined
  let defaultSt = false
  while (i + 1 < lines.length && lines[i + 1] !== "") {
    i++
    const def = lines[i]!
    const firstSpace = def.search(/[ \t]/)
    if (firstSpace > 0 && def.slice(0, firstSpace).endsWith("@st")) {
      const metric = def.slice(0, firstSpace - 3)
      if (metric === "") defaultSt = true
      else {
        try {
          pendingSt = { key: canonical(parseSeriesLabels(metric).labels), offsets: parseStartSequence(def.slice(firstSpace + 1)) }
        } catch (e) {
          errors.push(`line ${i + 1}: ${(e as Error).message}`)
        }
      }
      continue
    }
    try {
      const { labels, points } = parseSeriesDesc(def)
      if (points.some((p) => p.kind === "histogram")) histograms = true
      const key = canonical(labels)
      const own = pendingSt?.key === key ? pendingSt.offsets : undefined
      if (own !== undefined && own.length !== points.length) throw new ScriptError(`@st line has ${own.length} values but the sample line has ${points.length}`)
      byKey.set(key, { labels, points, startTimestamps: defaultSt || own !== undefined, startOffsets: own })
    } catch (e) {
      errors.push(`line ${i + 1}: ${(e as Error).message}`)
    }
    pendingSt = undefined
  }
  return {
    next: i,
    cmd: {
      kind: "load",
      line,
      intervalMs: interval ?? 0,
      withNhcb,
      series: [...byKey.values()],
      histograms,
      error: errors.length === 0 ? undefined : errors.join("; ")
    }
  }
}

const parseEval = (lines: ReadonlyArray<string>, i: number): { readonly next: number; readonly cmd: EvalCommand } => {
  const text = lines[i]!
  const line = i + 1
  const instantParts = patEvalInstant.exec(text)
  const rangeParts = instantParts === null ? patEvalRange.exec(text) : null
  const errors: Array<string> = []
  let query = ""
  let mod: string | undefined
  let instant = true
  let evalMs = 0
  let startMs = 0
  let endMs = -Infinity
  let stepMs = 0
  if (instantParts !== null) {
    mod = instantParts[1]
    query = instantParts[3]!
    const at = parseDuration(instantParts[2] ?? "")
    if (at === undefined) errors.push(`invalid timestamp definition ${JSON.stringify(instantParts[2] ?? "")}`)
    evalMs = startMs = at ?? 0
  } else if (rangeParts !== null) {
    instant = false
    mod = rangeParts[1]
    query = rangeParts[5]!
    const from = parseDuration(rangeParts[2]!)
    const to = parseDuration(rangeParts[3]!)
    const step = parseDuration(rangeParts[4]!)
    if (from === undefined || to === undefined || step === undefined) errors.push(`invalid range definition in ${JSON.stringify(text)}`)
    else if (to < from) errors.push("end timestamp is before start timestamp")
    startMs = from ?? 0
    endMs = to ?? 0
    stepMs = step ?? 0
    evalMs = endMs
  } else {
    errors.push(`invalid evaluation command ${JSON.stringify(text)}`)
  }
  const fail: Array<Expectation> = []
  let isFail = mod === "fail"
  let ordered = mod === "ordered"
  const annotations: Array<AnnotationExpectation> = []
  if (mod === "warn" || mod === "info") annotations.push({ type: mod })
  let expectScalar: SeqPoint | undefined
  let expectedString: string | undefined
  const expected = new Map<string, ExpectedSeries>()
  let excludeFromRangeMode = false
  let expectRangeVector = false
  let histograms = false
  let pos = 0
  while (i + 1 < lines.length && lines[i + 1] !== "") {
    i++
    const def = lines[i]!
    try {
      if (isFail && def.startsWith("expected_fail_message")) {
        fail.push({ message: def.slice("expected_fail_message".length).trim() })
        break
      }
      if (isFail && def.startsWith("expected_fail_regexp")) {
        fail.push({ regex: goRegex(def.slice("expected_fail_regexp".length).trim()) })
        break
      }
      if (def.startsWith("expect range vector")) {
        const m = patExpectRange.exec(def)
        const from = m === null ? undefined : parseDuration(m[1]!)
        const to = m === null ? undefined : parseDuration(m[2]!)
        const step = m === null ? undefined : parseDuration(m[3]!)
        if (from === undefined || to === undefined || step === undefined) throw new ScriptError(`invalid range vector definition ${JSON.stringify(def)}`)
        expectRangeVector = true
        startMs = from
        endMs = to
        stepMs = step
        evalMs = to
        excludeFromRangeMode = true
        continue
      }
      if (def.startsWith("expect string")) {
        expectedString = unquoteString(def.slice("expect string".length).trim())
        excludeFromRangeMode = true
        continue
      }
      if (def.split(" ")[0] === "expect") {
        const m = patExpect.exec(def.trim())
        if (m === null) throw new ScriptError(`invalid expect statement ${JSON.stringify(def)}`)
        const type = m[1]!
        const expectation: Expectation = m[2] === "msg" ? { message: m[3]!.trim() } : m[2] === "regex" ? { regex: goRegex(m[3]!.trim()) } : {}
        if (type === "fail") {
          isFail = true
          fail.push(expectation)
        } else if (type === "ordered") {
          ordered = true
        } else if (type === "warn" || type === "info" || type === "no_warn" || type === "no_info") {
          annotations.push({ type, ...expectation })
        }
        continue
      }
      const n = parseNumber(def)
      if (n !== undefined) {
        expectScalar = { kind: "float", value: n }
        break
      }
      const { labels, points } = parseSeriesDesc(def)
      if (points.some((p) => p.kind === "histogram")) histograms = true
      if (points.length > 1 && instant && !expectRangeVector) {
        throw new ScriptError("expecting multiple values in instant evaluation not allowed")
      }
      pos++
      expected.set(canonical(labels), { labels, points, pos })
    } catch (e) {
      errors.push(`line ${i + 1}: ${(e as Error).message}`)
    }
  }
  if (isFail && fail.length === 0) fail.push({})
  return {
    next: i,
    cmd: {
      kind: "eval",
      line,
      text,
      query,
      instant,
      evalMs,
      startMs,
      endMs,
      stepMs,
      fail,
      ordered,
      annotations,
      expectScalar,
      expectedString,
      expected: [...expected.values()],
      excludeFromRangeMode,
      histograms,
      error: errors.length === 0 ? undefined : errors.join("; ")
    }
  }
}

/** Parses a test script into its commands. Unknown commands are kept (as `unknown`), not thrown. */
export const parseScript = (text: string): Array<Command> => {
  const lines = scriptLines(text)
  const cmds: Array<Command> = []
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!
    if (l === "") continue
    const c = l.split(/[\t ]+/, 1)[0]!.toLowerCase()
    if (c === "clear") {
      cmds.push({ kind: "clear", line: i + 1 })
    } else if (c === "load" || c === "load_with_nhcb") {
      const { next, cmd } = parseLoad(lines, i)
      i = next
      cmds.push(cmd)
    } else if (c === "eval" || c === "eval_fail" || c === "eval_warn" || c === "eval_info" || c === "eval_ordered") {
      const { next, cmd } = parseEval(lines, i)
      i = next
      cmds.push(cmd)
    } else {
      // Skip the command's block too.
      cmds.push({ kind: "unknown", line: i + 1, text: l })
      while (i + 1 < lines.length && lines[i + 1] !== "") i++
    }
  }
  return cmds
}

// -------------------------------------------------------------------------------------------------
// Experimental features (Prometheus's TestParserOpts switches all of them on for every file)

const experimentalFunctions = [
  "double_exponential_smoothing", "first_over_time", "histogram_quantiles", "info", "integral", "mad_over_time",
  "sort_by_label", "sort_by_label_desc", "ts_of_first_over_time", "ts_of_last_over_time", "ts_of_max_over_time",
  "ts_of_min_over_time", "limitk", "limit_ratio"
]
const experimentalFunctionCall = new RegExp(`(?<![\\w:])(${experimentalFunctions.join("|")})\\s*\\(`, "g")
/** start()/end() are experimental functions, but `@ start()` / `@ end()` are not. */
const queryContextCall = /(?<![\w:]|@\s*)(start|end|step|range)\s*\(\s*\)/gi
const durationFunctionCall = /(?<![\w:])(min_of|max_of)\s*\(/gi
const fillModifier = /(?<![\w:])(fill|fill_left|fill_right)\s*\(/g
/** `anchored` / `smoothed` after a selector (`x[1m] anchored`, `x smoothed`, `x offset 1m smoothed`). */
const extendedRange = /(?<=[\]})\w]\s+|\])(anchored|smoothed)(?![\w:([{=])/g
/** Delayed name removal: `__name__` in a grouping list, or read or written by a label function. */
const delayedNameRemoval = /(?:\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\b__name__\b|\blabel_(?:replace|join)\s*\(.*["'`]__name__["'`])/i
const plainDuration = /^\s*(?:(?:\d+(?:ms|[smhdwy]))+|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*$/

/** The query with the contents of string literals blanked (so names inside them are not matched). */
const withoutStrings = (q: string): string => {
  let out = ""
  for (let i = 0; i < q.length; i++) {
    const c = q[i]!
    if (isQuote(c)) {
      let j = i + 1
      while (j < q.length && q[j] !== c) j += q[j] === "\\" && c !== "`" ? 2 : 1
      out += c + c
      i = j
    } else {
      out += c
    }
  }
  return out
}

/** The experimental features a query uses, by Prometheus's parser options (empty: none). */
export const experimentalFeatures = (query: string): Array<string> => {
  const q = withoutStrings(query)
  const found = new Set<string>()
  for (const m of q.matchAll(experimentalFunctionCall)) found.add(`${m[1]}()`)
  for (const m of q.matchAll(queryContextCall)) found.add(`${m[1]!.toLowerCase()}()`)
  for (const m of q.matchAll(durationFunctionCall)) found.add(`${m[1]!.toLowerCase()}()`)
  for (const m of q.matchAll(fillModifier)) found.add(`${m[1]} modifier`)
  for (const m of q.matchAll(extendedRange)) found.add(`${m[1]} modifier`)
  if (delayedNameRemoval.test(query)) found.add("delayed name removal")
  // Duration expressions: arithmetic in `[range]`, `[range:step]`, or a parenthesized offset.
  for (const m of q.matchAll(/\[([^\]]*)\]/g)) {
    const parts = m[1]!.split(":")
    if (parts.length > 2 || parts.some((p, i) => !(plainDuration.test(p) || (i === 1 && p.trim() === "")))) found.add("duration expression")
  }
  if (/(?<![\w:])offset\s*[-+]?\s*\(/i.test(q) || /@\s*[-+]?\s*\(/.test(q)) found.add("duration expression")
  return [...found].sort()
}

// -------------------------------------------------------------------------------------------------
// In-memory data

/** A loaded sample: a float (an object: a stale marker keeps its bits) or a native histogram. */
interface StoredSample extends Sample {
  readonly h?: FloatHistogram | undefined
  /** Its start timestamp (ms), when the `@st` line gives one. */
  readonly st?: number | undefined
}

interface StoredSeries {
  readonly labels: Labels
  /** Samples by timestamp. */
  samples: Array<StoredSample>
  /** The samples with their histograms' counter reset hints as a TSDB reads them back (made on first select). */
  read?: SelectedSeriesColumns | undefined
}

interface SelectedSeriesColumns {
  readonly timestamps: Float64Array
  readonly values: Float64Array
  readonly histograms: ReadonlyArray<FloatHistogram | undefined> | undefined
  readonly startTimestamps: Float64Array | undefined
}

/**
 * A series' columns with the counter reset hints a TSDB gives histograms it reads back: a histogram after
 * another (no float or stale marker between them) is `not_reset` unless a reset is given or detected
 * (then `unknown`: the chunk is cut there, and a chunk's first sample reads back so in Prometheus); a
 * gauge stays a gauge; the first keeps its own hint.
 */
const readBack = (samples: ReadonlyArray<StoredSample>): SelectedSeriesColumns => {
  const timestamps = new Float64Array(samples.length)
  const values = new Float64Array(samples.length)
  let histograms: Array<FloatHistogram | undefined> | undefined
  let prev: FloatHistogram | undefined
  const startTimestamps = samples.some((x) => x.st !== undefined) ? Float64Array.from(samples, (x) => x.st ?? 0) : undefined
  samples.forEach((x, i) => {
    timestamps[i] = x.timestampMs
    values[i] = x.h === undefined ? x.value : 0
    if (x.h === undefined) {
      prev = undefined
      return
    }
    const h = x.h.copy()
    if (h.counterResetHint !== "gauge" && prev !== undefined) {
      // At a reset the chunk is cut, and the first sample of a chunk reads back "unknown" (Prometheus
      // issue 15346: a reset is not visible as "reset" in query results).
      h.counterResetHint = h.counterResetHint === "reset" || h.detectReset(prev) ? "unknown" : "not_reset"
    }
    prev = x.h
    ;(histograms ??= new Array(samples.length))[i] = h
  })
  return { timestamps, values, histograms, startTimestamps }
}

/**
 * `load_with_nhcb`: the classic histograms of a load (`<name>_bucket{le}`, `_count`, `_sum`) as native
 * histograms with custom buckets under `<name>`, one per timestamp, as Prometheus's `convertnhcb`:
 * cumulative bucket counts made per-bucket, the count from `_count` (else the highest bucket), a `+Inf`
 * bucket added when missing; a timestamp whose buckets are not cumulative is left out.
 */
const classicToNhcb = (series: ReadonlyArray<{ labels: Labels; samples: ReadonlyArray<Sample> }>): Array<{ labels: Labels; samples: Array<StoredSample> }> => {
  interface Temp { buckets: Array<{ le: number; count: number }>; count: number | undefined; sum: number; bad: boolean }
  const byBase = new Map<string, { labels: Labels; byTime: Map<number, Temp> }>()
  for (const s of series) {
    const name = labelValue(s.labels, "__name__")
    const m = /^(.*)_(bucket|count|sum)$/.exec(name)
    if (m === null) continue
    let le = Number.NaN
    if (m[2] === "bucket") {
      const text = labelValue(s.labels, "le")
      le = /^\+?inf$/i.test(text) ? Infinity : text.trim() === "" ? Number.NaN : Number(text)
      if (Number.isNaN(le)) continue
    }
    const base = sortLabels(s.labels.filter(([n]) => n !== "le" && n !== "__name__").concat([["__name__", m[1]!]]))
    const key = canonical(base)
    let entry = byBase.get(key)
    if (entry === undefined) byBase.set(key, (entry = { labels: base, byTime: new Map() }))
    for (const x of s.samples) {
      let t = entry.byTime.get(x.timestampMs)
      if (t === undefined) entry.byTime.set(x.timestampMs, (t = { buckets: [], count: undefined, sum: 0, bad: false }))
      if (m[2] === "count") t.count = x.value
      else if (m[2] === "sum") t.sum = x.value
      else if (x.value < 0) t.bad = true
      else if (!t.buckets.some((b) => b.le === le)) t.buckets.push({ le, count: x.value })
    }
  }
  const out: Array<{ labels: Labels; samples: Array<StoredSample> }> = []
  for (const { labels, byTime } of byBase.values()) {
    const samples: Array<StoredSample> = []
    for (const [t, temp] of [...byTime].sort((a, b) => a[0] - b[0])) {
      const buckets = temp.buckets.sort((a, b) => a.le - b.le)
      if (temp.bad || buckets.some((b, i) => i > 0 && b.count < buckets[i - 1]!.count)) continue
      const count = temp.count ?? buckets.at(-1)?.count ?? 0
      if (buckets.length === 0 || buckets.at(-1)!.le !== Infinity) buckets.push({ le: Infinity, count })
      if (buckets.at(-1)!.count !== count) continue
      const integral = buckets.every((b) => Number.isInteger(b.count)) && Number.isInteger(count)
      const h = new FloatHistogram({
        schema: customBucketsSchema,
        count,
        sum: temp.sum,
        positiveSpans: [{ offset: 0, length: buckets.length }],
        positiveBuckets: buckets.map((b, i) => b.count - (i > 0 ? buckets[i - 1]!.count : 0)),
        customValues: buckets.slice(0, -1).map((b) => b.le)
      })
      // Integer counts go through Prometheus's integer histogram, compacted keeping runs of up to two empty buckets.
      samples.push({ timestampMs: t, value: 0, h: h.compact(integral ? 2 : 0) })
    }
    if (samples.length > 0) out.push({ labels, samples })
  }
  return out
}

/** Where special data is (native histograms, start timestamps), to classify the evals that touch it. */
interface Marker {
  readonly labels: Labels
  readonly times: Array<number>
}

/** Which special data an eval's selects touched. */
export interface Touched {
  /** Series with native histogram samples (counted apart in the report). */
  histograms: boolean
  startTimestamps: boolean
}

const lowerBound = (samples: ReadonlyArray<{ readonly timestampMs: number }>, t: number): number => {
  let lo = 0
  let hi = samples.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (samples[mid]!.timestampMs < t) lo = mid + 1
    else hi = mid
  }
  return lo
}

const anyIn = (times: ReadonlyArray<number>, mint: number, maxt: number): boolean => times.some((t) => t >= mint && t <= maxt)

/** The loaded data of a script: samples by series, plus where native histograms and start timestamps are. */
export class MemoryStore {
  private series = new Map<string, StoredSeries>()
  private byName = new Map<string, Set<string>>()
  private histograms = new Map<string, Marker>()
  private startTimestamps = new Map<string, Marker>()

  clear(): void {
    this.series.clear()
    this.byName.clear()
    this.histograms.clear()
    this.startTimestamps.clear()
  }

  /** Adds samples to a series (additive across loads; a later sample at the same timestamp replaces the earlier one). */
  private add(labels: Labels, samples: ReadonlyArray<StoredSample>) {
    const key = canonical(labels)
    let stored = this.series.get(key)
    if (stored === undefined) {
      stored = { labels, samples: [] }
      this.series.set(key, stored)
      const name = labelValue(labels, "__name__")
      let set = this.byName.get(name)
      if (set === undefined) this.byName.set(name, (set = new Set()))
      set.add(key)
    }
    const merged = new Map<number, StoredSample>()
    for (const x of stored.samples) merged.set(x.timestampMs, x)
    for (const x of samples) merged.set(x.timestampMs, x)
    stored.samples = [...merged.values()].sort((a, b) => a.timestampMs - b.timestampMs)
    stored.read = undefined
  }

  /** Metric names of series with native histograms / start timestamps (an eval naming one touches them). */
  specialNames(): { readonly histograms: ReadonlyArray<string>; readonly startTimestamps: ReadonlyArray<string> } {
    const names = (m: Map<string, Marker>) => [...new Set([...m.values()].map((s) => labelValue(s.labels, "__name__")).filter((n) => n !== ""))]
    return { histograms: names(this.histograms), startTimestamps: names(this.startTimestamps) }
  }

  private mark(map: Map<string, Marker>, labels: Labels, times: ReadonlyArray<number>) {
    const key = canonical(labels)
    const m = map.get(key)
    if (m === undefined) map.set(key, { labels, times: [...times] })
    else m.times.push(...times)
  }

  load(cmd: LoadCommand): void {
    const classic: Array<{ labels: Labels; samples: Array<Sample> }> = []
    for (const s of cmd.series) {
      const samples: Array<StoredSample> = []
      const floats: Array<Sample> = []
      const histTimes: Array<number> = []
      const allTimes: Array<number> = []
      s.points.forEach((p, i) => {
        const t = i * cmd.intervalMs
        const offset = s.startOffsets?.[i]
        const st = offset === undefined ? {} : { st: t + offset }
        if (p.kind === "float") {
          const x = { timestampMs: t, value: p.value, ...st }
          samples.push(x)
          floats.push(x)
        } else if (p.kind === "histogram") {
          samples.push({ timestampMs: t, value: 0, h: p.histogram, ...st })
          histTimes.push(t)
        }
        if (p.kind !== "omitted") allTimes.push(t)
      })
      if (histTimes.length > 0) this.mark(this.histograms, s.labels, histTimes)
      if (s.startTimestamps) this.mark(this.startTimestamps, s.labels, allTimes)
      if (samples.length > 0) this.add(s.labels, samples)
      if (cmd.withNhcb) classic.push({ labels: s.labels, samples: floats })
    }
    // load_with_nhcb also converts classic histograms to native histograms with custom buckets.
    for (const { labels, samples } of classicToNhcb(classic)) {
      this.mark(this.histograms, labels, samples.map((x) => x.timestampMs))
      this.add(labels, samples)
    }
  }

  /** A `SeriesSource` over the data that records in `touched` what special data the engine selected. */
  source(touched: Touched): SeriesSource {
    return {
      select: (matchers: ReadonlyArray<Matcher>, mint: number, maxt: number): Effect.Effect<ReadonlyArray<SelectedSeries>, TsdbError> =>
        Effect.sync(() => {
          for (const m of this.histograms.values()) {
            if (!touched.histograms && matchesAll(matchers, m.labels) && anyIn(m.times, mint, maxt)) touched.histograms = true
          }
          for (const m of this.startTimestamps.values()) {
            if (!touched.startTimestamps && matchesAll(matchers, m.labels) && anyIn(m.times, mint, maxt)) touched.startTimestamps = true
          }
          const nameEq = matchers.find((m) => m.name === "__name__" && m.type === "=")
          const keys = nameEq === undefined ? this.series.keys() : (this.byName.get(nameEq.value) ?? new Set<string>()).values()
          const out: Array<SelectedSeries> = []
          for (const key of keys) {
            const s = this.series.get(key)!
            if (!matchesAll(matchers, s.labels)) continue
            const from = lowerBound(s.samples, mint)
            const to = lowerBound(s.samples, maxt + 1)
            if (from >= to) continue
            const read = (s.read ??= readBack(s.samples))
            const histograms = read.histograms?.slice(from, to)
            out.push({
              labels: s.labels,
              timestamps: read.timestamps.slice(from, to),
              values: read.values.slice(from, to),
              ...(histograms === undefined || histograms.every((h) => h === undefined) ? {} : { histograms }),
              ...(read.startTimestamps === undefined ? {} : { startTimestamps: read.startTimestamps.slice(from, to) })
            })
          }
          return out
        })
    }
  }
}

// -------------------------------------------------------------------------------------------------
// Comparison

export const formatValue = (v: number): string =>
  isStaleNaN(v) ? "stale" : Number.isNaN(v) ? "NaN" : v === Infinity ? "+Inf" : v === -Infinity ? "-Inf" : String(v)

export const formatLabels = (labels: Labels): string => {
  const name = labelValue(labels, "__name__")
  const rest = labels.filter(([n]) => n !== "__name__" || name === "").map(([n, v]) => `${n}=${JSON.stringify(v)}`)
  return `${name}{${rest.join(", ")}}`
}

const formatPoints = (points: ReadonlyArray<SeqPoint>): string =>
  points.map((p) => (p.kind === "omitted" ? "_" : p.kind === "histogram" ? String(p.histogram) : formatValue(p.value))).join(" ")

/** A result's value: its histogram in `{{...}}` notation, or its float. */
const formatPointValue = (p: { readonly v: number; readonly h?: FloatHistogram | undefined }): string => (p.h === undefined ? formatValue(p.v) : p.h.toString())

/** Spans equal but for zero-length spans, which only move the offset (promqltest's `spansMatch`). */
const spansMatch = (a: ReadonlyArray<Span>, b: ReadonlyArray<Span>): boolean => {
  const norm = (spans: ReadonlyArray<Span>) => {
    const out: Array<Span> = []
    let carry = 0
    for (const sp of spans) {
      if (sp.length === 0) {
        carry += sp.offset
        continue
      }
      out.push({ offset: sp.offset + carry, length: sp.length })
      carry = 0
    }
    return out
  }
  const x = norm(a)
  const y = norm(b)
  return x.length === y.length && x.every((sp, i) => sp.offset === y[i]!.offset && sp.length === y[i]!.length)
}

const bucketsMatch = (a: ReadonlyArray<number>, b: ReadonlyArray<number>) => a.length === b.length && a.every((x, i) => almostEqual(x, b[i]!))

/**
 * promqltest's `compareNativeHistogram` of both sides compacted (empty buckets dropped): structure exact,
 * counts within 1e-6, the hint only when the expectation gives one.
 */
const histogramMatches = (expected: FloatHistogram, actual: FloatHistogram, hintSet: boolean): boolean => {
  const exp = expected.copy().compact(0)
  const got = actual.copy().compact(0)
  return exp.schema === got.schema &&
  almostEqual(exp.count, got.count) &&
  almostEqual(exp.sum, got.sum) &&
  (!exp.usesCustomBuckets() || (exp.customValues.length === got.customValues.length && exp.customValues.every((v, i) => v === got.customValues[i]))) &&
  exp.zeroThreshold === got.zeroThreshold &&
  almostEqual(exp.zeroCount, got.zeroCount) &&
  spansMatch(exp.negativeSpans, got.negativeSpans) &&
  bucketsMatch(exp.negativeBuckets, got.negativeBuckets) &&
  spansMatch(exp.positiveSpans, got.positiveSpans) &&
  bucketsMatch(exp.positiveBuckets, got.positiveBuckets) &&
  (!hintSet || exp.counterResetHint === got.counterResetHint)
}

/** Whether a result value is the expected point (a float, or a histogram). */
const pointMatches = (e: SeqPoint, got: { readonly v: number; readonly h?: FloatHistogram | undefined }): boolean =>
  e.kind === "histogram" ? got.h !== undefined && histogramMatches(e.histogram!, got.h, e.hintSet === true) : e.kind === "float" && got.h === undefined && checkValue(e.value, got.v)

export const formatExpected = (cmd: EvalCommand): string => {
  const lines: Array<string> = []
  if (cmd.fail.length > 0) lines.push(`expect fail${cmd.fail.map((f) => (f.message !== undefined ? ` msg: ${f.message}` : f.regex !== undefined ? ` regex: ${f.regex.source}` : "")).join("")}`)
  if (cmd.expectedString !== undefined) lines.push(`string ${JSON.stringify(cmd.expectedString)}`)
  if (cmd.expectScalar !== undefined) lines.push(`scalar ${formatPoints([cmd.expectScalar])}`)
  for (const e of cmd.expected) lines.push(`${formatLabels(e.labels)} ${formatPoints(e.points)}`)
  if (lines.length === 0) lines.push("(empty result)")
  return lines.join("\n")
}

export const formatResult = (v: Value): string => {
  switch (v.type) {
    case "scalar":
      return `scalar ${formatValue(v.v)}`
    case "string":
      return `string ${JSON.stringify(v.v)}`
    case "vector":
      return v.samples.length === 0 ? "(empty vector)" : v.samples.map((s) => `${formatLabels(s.labels)} ${formatPointValue(s)}`).join("\n")
    case "matrix":
      return v.series.length === 0
        ? "(empty matrix)"
        : v.series.map((s) => `${formatLabels(s.labels)} ${s.samples.map((p) => `${formatPointValue(p)}@${p.t / 1000}s`).join(" ")}`).join("\n")
  }
}

/** `labels.Compare`: label by label, name then value; then the shorter first. */
const compareLabels = (a: Labels, b: Labels): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const [an, av] = a[i]!
    const [bn, bv] = b[i]!
    if (an !== bn) return an < bn ? -1 : 1
    if (av !== bv) return av < bv ? -1 : 1
  }
  return a.length - b.length
}

/** A failed comparison: what went wrong, and a short kind for grouping. */
export interface Mismatch {
  readonly kind: string
  readonly message: string
}

const mismatch = (kind: string, message: string): Mismatch => ({ kind, message })

const checkValue = (expected: number, got: number): boolean => !isStaleNaN(got) && almostEqual(expected, got)

const compareMatrix = (cmd: EvalCommand, series: ReadonlyArray<{ readonly labels: Labels; readonly samples: ReadonlyArray<Point> }>): Mismatch | undefined => {
  if (cmd.ordered) return mismatch("ordered matrix", "expected ordered result, but query returned a matrix")
  if (cmd.expectScalar !== undefined) return mismatch("wrong result type", "expected scalar result, but got matrix")
  const sorted = series.map((s) => sortLabels(s.labels))
  const expected = new Map(cmd.expected.map((e) => [canonical(e.labels), e]))
  const seen = new Set<string>()
  for (let k = 0; k < series.length; k++) {
    const s = series[k]!
    const key = canonical(sorted[k]!)
    const exp = expected.get(key)
    if (exp === undefined) return mismatch("unexpected series", `unexpected metric ${formatLabels(s.labels)} in result`)
    seen.add(key)
    const points: Array<{ t: number; p: SeqPoint }> = []
    for (let i = 0; i < exp.points.length; i++) {
      const t = cmd.startMs + i * cmd.stepMs
      if (t > cmd.endMs) return mismatch("unexpected range vector", `expected ${exp.points.length} points for ${formatLabels(exp.labels)}, but query time range cannot return this many points`)
      const p = exp.points[i]!
      if (p.kind !== "omitted") points.push({ t, p })
    }
    if (points.length !== s.samples.length) {
      return mismatch("wrong point count", `expected ${points.length} points for ${formatLabels(exp.labels)}, got ${s.samples.length}`)
    }
    for (let i = 0; i < points.length; i++) {
      const e = points[i]!
      const g = s.samples[i]!
      if (e.t !== g.t) return mismatch("wrong timestamp", `expected point ${i} of ${formatLabels(exp.labels)} at t=${e.t}, got t=${g.t}`)
      if (!pointMatches(e.p, g)) {
        return mismatch("wrong value", `expected ${formatPoints([e.p])} at t=${e.t / 1000}s for ${formatLabels(exp.labels)}, got ${formatPointValue(g)}`)
      }
    }
  }
  for (const [key, e] of expected) {
    if (!seen.has(key)) return mismatch("missing series", `expected metric ${formatLabels(e.labels)} not found`)
  }
  // promqltest checks the order first; checked last here, so that a wrong value is reported before it.
  return unsorted(sorted)
}

/** Matrix series must be sorted by labels (Prometheus sorts range query results). */
const unsorted = (sorted: ReadonlyArray<Labels>): Mismatch | undefined => {
  for (let i = 0; i + 1 < sorted.length; i++) {
    if (compareLabels(sorted[i]!, sorted[i + 1]!) > 0) {
      return mismatch("matrix not sorted", `matrix results should always be sorted by labels, but ${formatLabels(sorted[i + 1]!)} comes after ${formatLabels(sorted[i]!)}`)
    }
  }
  return undefined
}

const compareVector = (cmd: EvalCommand, samples: ReadonlyArray<InstantSample>, ordered: boolean): Mismatch | undefined => {
  if (cmd.expectScalar !== undefined) return mismatch("wrong result type", "expected scalar result, but got vector")
  const expected = new Map(cmd.expected.map((e) => [canonical(e.labels), e]))
  const seen = new Set<string>()
  for (let pos = 0; pos < samples.length; pos++) {
    const s = samples[pos]!
    const key = canonical(sortLabels(s.labels))
    const exp = expected.get(key)
    if (exp === undefined) return mismatch("unexpected series", `unexpected metric ${formatLabels(s.labels)} in result, has value ${formatPointValue(s)}`)
    if (ordered && exp.pos !== pos + 1) return mismatch("wrong order", `expected metric ${formatLabels(s.labels)} at position ${exp.pos} but was at ${pos + 1}`)
    const e = exp.points[0]
    if (e === undefined || e.kind === "omitted") return mismatch("runner", `no value expected for ${formatLabels(exp.labels)}`)
    if (!pointMatches(e, s)) return mismatch("wrong value", `expected ${formatPoints([e])} for ${formatLabels(exp.labels)} but got ${formatPointValue(s)}`)
    seen.add(key)
  }
  for (const [key, e] of expected) {
    if (!seen.has(key)) return mismatch("missing series", `expected metric ${formatLabels(e.labels)} with ${formatPoints(e.points)} not found`)
  }
  return undefined
}

const compareScalar = (cmd: EvalCommand, v: number): Mismatch | undefined => {
  if (cmd.expectScalar === undefined) return mismatch("wrong result type", `expected vector or matrix result, but got scalar ${formatValue(v)}`)
  if (!checkValue(cmd.expectScalar.value, v)) return mismatch("wrong value", `expected scalar ${formatValue(cmd.expectScalar.value)} but got ${formatValue(v)}`)
  return undefined
}

/** Compares a query result with the eval's expectation, as promqltest's `compareResult`. */
export const compareResult = (cmd: EvalCommand, result: Value): Mismatch | undefined => {
  switch (result.type) {
    case "matrix":
      return compareMatrix(cmd, result.series)
    case "vector":
      return compareVector(cmd, result.samples, cmd.ordered)
    case "scalar":
      return compareScalar(cmd, result.v)
    case "string":
      if ((cmd.expectedString ?? "") !== result.v) return mismatch("wrong value", `expected string ${JSON.stringify(cmd.expectedString ?? "")} but got ${JSON.stringify(result.v)}`)
      return undefined
  }
}

const matchesExpectation = (e: Expectation, text: string) => (e.regex !== undefined ? e.regex.test(text) : e.message === undefined || e.message === text)

/**
 * The eval's annotation expectations against a result's annotations, as promqltest's `checkAnnotations`:
 * `expect warn` / `expect info` need at least one; with messages (`msg:`/`regex:`), each expected one must
 * be there and every one there must be expected; `no_warn` / `no_info` allow none.
 */
export const checkAnnotations = (cmd: EvalCommand, value: Value): Mismatch | undefined => {
  const warnings = value.annotations?.warnings ?? []
  const infos = value.annotations?.infos ?? []
  for (const [type, got] of [["warn", warnings], ["info", infos]] as const) {
    const expected = cmd.annotations.filter((a) => a.type === type)
    if (expected.length > 0 && got.length === 0) return mismatch("annotations", `expected ${type} annotations but none were found`)
    const withText = expected.filter((a) => a.message !== undefined || a.regex !== undefined)
    if (withText.length === 0) continue
    for (const e of withText) {
      if (!got.some((g) => matchesExpectation(e, g))) return mismatch("annotations", `expected ${type} annotation ${JSON.stringify(e.message ?? e.regex?.source)} but found ${JSON.stringify(got)}`)
    }
    for (const g of got) {
      if (!withText.some((e) => matchesExpectation(e, g))) return mismatch("annotations", `unexpected ${type} annotation ${JSON.stringify(g)}`)
    }
  }
  if (cmd.annotations.some((a) => a.type === "no_warn") && warnings.length > 0) return mismatch("annotations", `unexpected warning annotations: ${JSON.stringify(warnings)}`)
  if (cmd.annotations.some((a) => a.type === "no_info") && infos.length > 0) return mismatch("annotations", `unexpected info annotations: ${JSON.stringify(infos)}`)
  return undefined
}

/** Whether an error message satisfies the eval's `expect fail` lines (each must match). */
export const checkFailure = (cmd: EvalCommand, message: string): Mismatch | undefined => {
  for (const f of cmd.fail) {
    if (f.message !== undefined && f.message !== message) return mismatch("wrong error message", `expected error ${JSON.stringify(f.message)} but got: ${message}`)
    if (f.regex !== undefined && !f.regex.test(message)) return mismatch("wrong error message", `expected error matching ${f.regex.source} but got: ${message}`)
  }
  return undefined
}

// -------------------------------------------------------------------------------------------------
// Running

/** As Prometheus's test engine: the experimental features switched on. */
const engineOptions: QueryOptions = { features: promqlFeatures }

/** The engine under test (engine.ts's `instantQuery` / `rangeQuery`). */
export interface Engine {
  readonly instantQuery: (source: SeriesSource, query: string, timeMs: number, options?: QueryOptions) => Effect.Effect<Value, QueryError>
  readonly rangeQuery: (source: SeriesSource, query: string, startMs: number, endMs: number, stepMs: number, options?: QueryOptions) => Effect.Effect<Value, QueryError>
  /** The parser (parser.ts's `parse`), for the `@` re-runs of instant evals; without it they are skipped. */
  readonly parse?: ((query: string) => Expr) | undefined
}

export interface RunOptions {
  /** Per query (default 30 s). */
  readonly timeoutMs?: number | undefined
  /** Also check each instant eval in range mode (default true), as promqltest does. */
  readonly rangeMode?: boolean | undefined
  /** Also re-run each instant eval with `@ t` on its selectors at other times (default true), as promqltest does. */
  readonly atModifier?: boolean | undefined
}

/** Functions whose result varies with the evaluation time even with `@` arguments (Prometheus's list). */
const atModifierUnsafeFunctions = new Set(["days_in_month", "day_of_month", "day_of_week", "day_of_year", "hour", "minute", "month", "year", "predict_linear", "time", "timestamp",
  // The query's own bounds (experimental), which depend on the evaluation time as time() does.
  "start", "end", "range", "step"])

const children = (e: Expr): ReadonlyArray<Expr> => {
  switch (e.type) {
    case "NumberLiteral":
    case "StringLiteral":
    case "VectorSelector":
      return []
    case "MatrixSelector":
      return [e.vector]
    case "Subquery":
    case "Paren":
    case "Unary":
      return [e.expr]
    case "Call":
      return e.args
    case "Aggregate":
      return e.param === undefined ? [e.expr] : [e.param, e.expr]
    case "Binary":
      return [e.lhs, e.rhs]
  }
}

/**
 * promqltest's `atModifierTestCases`: the query with `@ <t>` added to every selector and subquery that
 * has none (not inside a subquery that has one), to be evaluated at other times with the same expected
 * result. Undefined when the query uses a function that depends on the evaluation time (or does not parse).
 * The `@` is inserted into the query text at the end of each node (the AST has positions, no printer).
 */
export const atModifierQuery = (query: string, evalMs: number, parse: (query: string) => Expr): string | undefined => {
  let expr: Expr
  try {
    expr = parse(query)
  } catch {
    return undefined
  }
  const inserts: Array<number> = []
  let unsafe = false
  const at = ` @ ${(evalMs / 1000).toFixed(3)}`
  const visit = (e: Expr, inMatrix: boolean) => {
    switch (e.type) {
      case "VectorSelector":
        if (!inMatrix && e.at === undefined) inserts.push(e.pos.end)
        return
      case "MatrixSelector":
        if (e.vector.at === undefined) inserts.push(e.pos.end)
        return
      case "Subquery":
        if (e.at === undefined) inserts.push(e.pos.end)
        // Selectors inside a subquery keep their times (the subquery's @ moves them).
        return
      case "Call":
        if (atModifierUnsafeFunctions.has(e.func)) unsafe = true
        break
      default:
        break
    }
    for (const c of children(e)) visit(c, false)
  }
  visit(expr, false)
  if (unsafe) return undefined
  let out = query
  for (const p of [...new Set(inserts)].sort((a, b) => b - a)) out = out.slice(0, p) + at + out.slice(p)
  return out
}

export type Status = "passed" | "failed" | "unsupported"

export interface EvalOutcome {
  readonly line: number
  readonly text: string
  readonly query: string
  readonly status: Status
  /** Why it failed or is unsupported. */
  readonly reason: string | undefined
  /** A short cause for grouping (e.g. "wrong value", "engine error: ..."). */
  readonly cause: string | undefined
  readonly expected: string
  readonly got: string | undefined
  readonly histograms: boolean
  readonly experimental: ReadonlyArray<string>
  /** No native histograms and no experimental features. */
  readonly floatOnly: boolean
}

export interface FileReport {
  readonly file: string
  readonly outcomes: ReadonlyArray<EvalOutcome>
  /** Unknown commands (counted as unsupported evals). */
  readonly unknownCommands: ReadonlyArray<string>
  /** Loads with native histograms. */
  readonly histogramLoads: number
  readonly loadErrors: ReadonlyArray<string>
}

type QueryOutcome =
  | { readonly _tag: "ok"; readonly value: Value }
  | { readonly _tag: "error"; readonly kind: string; readonly message: string }
  | { readonly _tag: "defect"; readonly message: string }

const runQuery = async (effect: Effect.Effect<Value, QueryError>, timeoutMs: number): Promise<QueryOutcome> => {
  let exit: Exit.Exit<Value, QueryError | Cause.TimeoutError>
  try {
    exit = await Effect.runPromiseExit(effect.pipe(Effect.timeout(timeoutMs)))
  } catch (e) {
    return { _tag: "defect", message: `threw: ${e instanceof Error ? e.message : String(e)}` }
  }
  if (Exit.isSuccess(exit)) return { _tag: "ok", value: exit.value }
  const error = Cause.findErrorOption(exit.cause)
  if (error._tag === "Some") {
    const e = error.value
    if (Cause.isTimeoutError(e)) return { _tag: "error", kind: "timeout", message: `timed out after ${timeoutMs} ms` }
    return { _tag: "error", kind: e.kind, message: e.message }
  }
  const squashed = Cause.squash(exit.cause)
  if (squashed instanceof QueryError) return { _tag: "defect", message: `QueryError (${squashed.kind}) thrown, not failed: ${squashed.message}` }
  return { _tag: "defect", message: squashed instanceof Error ? `${squashed.name}: ${squashed.message}` : String(squashed) }
}

const contextFunctions = /(start|end|range|step)\(\)/

/** A cause for grouping: the message with numbers, quoted strings and durations blanked. */
const causeOf = (prefix: string, message: string): string =>
  `${prefix}: ${message.replace(/"(?:[^"\\]|\\.)*"/g, '"…"').replace(/`[^`]*`/g, "`…`").replace(/\b\d+(?:\.\d+)?(?:e[+-]?\d+)?(?:ms|[smhdwy])?\b/g, "N").slice(0, 120)}`

interface Judgement {
  readonly status: "passed" | "failed" | "unsupported"
  readonly reason?: string | undefined
  readonly cause?: string | undefined
  readonly got?: string | undefined
}

/** Judges one engine answer against the eval (`mode` names the query in messages). */
const judge = (cmd: EvalCommand, outcome: QueryOutcome, mode: string): Judgement => {
  const where = mode === "" ? "" : ` (${mode})`
  if (outcome._tag === "defect") return { status: "failed", reason: `engine defect${where}: ${outcome.message}`, cause: causeOf("engine defect", outcome.message) }
  if (outcome._tag === "error") {
    if (outcome.kind === "unsupported") return { status: "unsupported", reason: `engine: ${outcome.message}`, cause: causeOf("engine unsupported", outcome.message) }
    if (cmd.fail.length > 0 && mode === "") {
      const m = checkFailure(cmd, outcome.message)
      return m === undefined ? { status: "passed" } : { status: "failed", reason: m.message, cause: m.kind, got: `error: ${outcome.message}` }
    }
    return { status: "failed", reason: `engine ${outcome.kind} error${where}: ${outcome.message}`, cause: causeOf(`engine ${outcome.kind} error`, outcome.message), got: `error: ${outcome.message}` }
  }
  if (cmd.fail.length > 0) return { status: "failed", reason: "expected the query to fail, but it succeeded", cause: "expected fail, succeeded", got: formatResult(outcome.value) }
  return { status: "passed" }
}

const runEval = async (cmd: EvalCommand, store: MemoryStore, engine: Engine, options: RunOptions): Promise<Judgement & { touched: Touched }> => {
  const timeoutMs = options.timeoutMs ?? 30_000
  const touched: Touched = { histograms: false, startTimestamps: false }
  const source = store.source(touched)
  if (cmd.error !== undefined) return { status: "failed", reason: `runner could not read the eval: ${cmd.error}`, cause: "runner: unreadable eval", touched }
  if (!cmd.instant) {
    const outcome = await runQuery(engine.rangeQuery(source, cmd.query, cmd.startMs, cmd.endMs, cmd.stepMs, engineOptions), timeoutMs)
    const j = judge(cmd, outcome, "")
    if (outcome._tag !== "ok" || j.status !== "passed" || cmd.fail.length > 0) return { ...j, touched }
    const got = formatResult(outcome.value)
    if (outcome.value.type !== "matrix") return { status: "failed", reason: `a range query returned a ${outcome.value.type}`, cause: "range query not a matrix", got, touched }
    const m = checkAnnotations(cmd, outcome.value) ?? compareResult(cmd, outcome.value)
    return m === undefined ? { status: "passed", touched } : { status: "failed", reason: m.message, cause: m.kind, got, touched }
  }
  const first = await runInstant(cmd, cmd.query, cmd.evalMs, source, engine, options, "")
  if (first.status !== "passed" || options.atModifier === false || engine.parse === undefined) return { ...first, touched }
  // promqltest also runs the query with `@ t` on its selectors at other times: same expected result.
  const atQuery = atModifierQuery(cmd.query, cmd.evalMs, engine.parse)
  if (atQuery === undefined) return { ...first, touched }
  const ts = cmd.evalMs
  const times = ts === 0 ? [-1000, 0, 1000] : [-10 * ts, 0, ts / 5, ts, 10 * ts]
  for (const t of times) {
    const j = await runInstant(cmd, atQuery, t, source, engine, options, `${atQuery} at ${t / 1000}s`)
    if (j.status !== "passed") return { ...j, touched }
  }
  return { ...first, touched }
}

/** One instant query of an eval (the eval's own, or an `@` variant), with its range-mode check. */
const runInstant = async (cmd: EvalCommand, query: string, evalMs: number, source: SeriesSource, engine: Engine, options: RunOptions, variant: string): Promise<Judgement> => {
  const timeoutMs = options.timeoutMs ?? 30_000
  const label = (s: string) => (variant === "" ? s : `@ variant ${variant}: ${s}`)
  const causeLabel = (s: string | undefined) => (variant === "" || s === undefined ? s : `@ variant: ${s}`)
  const outcome = await runQuery(engine.instantQuery(source, query, evalMs, engineOptions), timeoutMs)
  const j = judge(cmd, outcome, "")
  if (outcome._tag !== "ok" || j.status !== "passed" || cmd.fail.length > 0) {
    return j.status === "passed" || variant === "" ? j : { ...j, reason: label(j.reason ?? ""), cause: causeLabel(j.cause) }
  }
  const value = outcome.value
  const got = formatResult(value)
  const m = checkAnnotations(cmd, value) ?? compareResult(cmd, value)
  if (m !== undefined) return { status: "failed", reason: label(m.message), cause: causeLabel(m.kind), got }
  if (options.rangeMode === false || cmd.excludeFromRangeMode || contextFunctions.test(query)) return { status: "passed" }
  // Range mode: the same query from t-1m to t+1m step 1m must give the same result at t.
  const rangeOutcome = await runQuery(engine.rangeQuery(source, query, evalMs - 60_000, evalMs + 60_000, 60_000, engineOptions), timeoutMs)
  if (rangeOutcome._tag !== "ok") {
    const rj = judge({ ...cmd, fail: [] }, rangeOutcome, "range mode")
    return { ...rj, reason: label(rj.reason ?? ""), cause: causeLabel(rj.cause) }
  }
  if (cmd.ordered) return { status: "passed" }
  const rv = rangeOutcome.value
  const rgot = `range mode: ${formatResult(rv)}`
  if (rv.type !== "matrix") return { status: "failed", reason: label(`range mode: a range query returned a ${rv.type}`), cause: causeLabel("range query not a matrix"), got: rgot }
  const vector: Array<InstantSample> = []
  for (const s of rv.series) {
    const p = s.samples.find((x) => x.t === evalMs)
    if (p !== undefined) vector.push({ labels: s.labels, ...p })
  }
  let rm: Mismatch | undefined
  if (value.type === "scalar") {
    rm = vector[0] === undefined ? mismatch("range mode", "no point at the evaluation time") : compareScalar(cmd, vector[0].v)
  } else {
    rm = compareVector(cmd, vector, false)
  }
  rm ??= unsorted(rv.series.map((s) => sortLabels(s.labels)))
  return rm === undefined ? { status: "passed" } : { status: "failed", reason: label(`range mode: ${rm.message}`), cause: causeLabel(`range mode: ${rm.kind}`), got: rgot }
}

/** Whether the query names one of the metrics (as a name, or in a `__name__` matcher's value). */
const mentions = (query: string, names: ReadonlyArray<string>): boolean => {
  if (names.length === 0) return false
  const bare = withoutStrings(query)
  const nameMatchers: Array<Matcher> = []
  for (const m of query.matchAll(/__name__\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)/g)) {
    try {
      const type = m[1] as Matcher["type"]
      if (type === "=" || type === "=~") nameMatchers.push({ name: "__name__", type, value: goUnquote(m[2]![0]!, m[2]!.slice(1, -1)) })
    } catch {
      // not a name matcher we can read
    }
  }
  return names.some(
    (n) =>
      new RegExp(`(?<![\\w:])${n.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(?![\\w:])`).test(bare) ||
      nameMatchers.some((m) => {
        try {
          return matchesAll([m], [["__name__", n]])
        } catch {
          return false
        }
      })
  )
}

/** Runs one script against the engine. */
export const runScript = async (file: string, text: string, engine: Engine, options: RunOptions = {}): Promise<FileReport> => {
  const store = new MemoryStore()
  const outcomes: Array<EvalOutcome> = []
  const unknownCommands: Array<string> = []
  const loadErrors: Array<string> = []
  let histogramLoads = 0
  /** Why the data is incomplete since the last clear (then evals are unsupported). */
  let tainted: string | undefined
  for (const cmd of parseScript(text)) {
    switch (cmd.kind) {
      case "clear":
        store.clear()
        tainted = undefined
        break
      case "unknown":
        unknownCommands.push(`line ${cmd.line}: ${cmd.text}`)
        if (/^load/i.test(cmd.text)) tainted = `unsupported command at line ${cmd.line}`
        break
      case "load":
        if (cmd.histograms) histogramLoads++
        if (cmd.error !== undefined) {
          loadErrors.push(`line ${cmd.line}: ${cmd.error}`)
          tainted = `load at line ${cmd.line} could not be read: ${cmd.error}`
        }
        store.load(cmd)
        break
      case "eval": {
        const names = store.specialNames()
        const staticHistograms = cmd.histograms || mentions(cmd.query, names.histograms)
        const staticSt = mentions(cmd.query, names.startTimestamps)
        const features = experimentalFeatures(cmd.query)
        const base = {
          line: cmd.line,
          text: cmd.text,
          query: cmd.query,
          expected: formatExpected(cmd)
        }
        if (tainted !== undefined) {
          const experimental = staticSt ? [...features, "start timestamps"] : features
          outcomes.push({
            ...base,
            status: "unsupported",
            reason: tainted,
            cause: "runner: data not loaded",
            got: undefined,
            histograms: staticHistograms,
            experimental,
            floatOnly: !staticHistograms && experimental.length === 0
          })
          break
        }
        const j = await runEval(cmd, store, engine, options)
        const histograms = staticHistograms || j.touched.histograms
        const experimental = staticSt || j.touched.startTimestamps ? [...features, "start timestamps"] : features
        let status = j.status
        let reason = j.reason
        let cause = j.cause
        if (experimental.length > 0 && status === "failed") {
          status = "unsupported"
          reason = `experimental ${experimental.join(", ")} (${j.reason})`
          cause = `experimental: ${experimental.join(", ")}`
        }
        outcomes.push({ ...base, status, reason, cause, got: j.got, histograms, experimental, floatOnly: !histograms && experimental.length === 0 })
        break
      }
    }
  }
  return { file, outcomes, unknownCommands, histogramLoads, loadErrors }
}

/**
 * Where the Prometheus v3.14.0 scripts are: `shared/promqltest/v3.14.0` beside the repository's root
 * (data, not part of the repo).
 */
export const defaultDir = path.resolve(import.meta.dirname, "../../../../..", "shared/promqltest/v3.14.0")

/**
 * The engine (engine.ts), imported when asked (so the runner's parsing and comparison work, and are
 * tested, while the engine does not load); when it cannot be loaded, an engine that answers every query
 * "unsupported" with the reason.
 */
export const loadEngine = async (): Promise<Engine> => {
  try {
    const module = await import("./engine.ts")
    const parser = await import("./parser.ts")
    return { instantQuery: module.instantQuery, rangeQuery: module.rangeQuery, parse: parser.parse }
  } catch (e) {
    const missing = Effect.fail(new QueryError("unsupported", `engine.ts could not be loaded: ${e instanceof Error ? e.message : String(e)}`))
    return { instantQuery: () => missing, rangeQuery: () => missing }
  }
}

export interface DirectoryOptions extends RunOptions {
  /** Which files to run (by file name); all `*.test` files by default. */
  readonly files?: ((file: string) => boolean) | undefined
  /** Called after each file, in order. */
  readonly onFile?: ((report: FileReport) => void) | undefined
}

/** Runs every `*.test` script of a directory, in name order. */
export const runDirectory = async (dir: string, engine: Engine, options: DirectoryOptions = {}): Promise<Array<FileReport>> => {
  const files = (await readdir(dir)).filter((f) => f.endsWith(".test") && (options.files?.(f) ?? true)).sort()
  const reports: Array<FileReport> = []
  for (const file of files) {
    const report = await runScript(file, await readFile(join(dir, file), "utf8"), engine, options)
    options.onFile?.(report)
    reports.push(report)
  }
  return reports
}

// -------------------------------------------------------------------------------------------------
// Reports

export interface Counts {
  readonly passed: number
  readonly failed: number
  readonly unsupported: number
  readonly total: number
  readonly floatOnlyPassed: number
  readonly floatOnlyTotal: number
}

export const countReport = (r: FileReport): Counts => {
  const by = (s: Status) => r.outcomes.filter((o) => o.status === s).length
  const floatOnly = r.outcomes.filter((o) => o.floatOnly)
  return {
    passed: by("passed"),
    failed: by("failed"),
    unsupported: by("unsupported") + r.unknownCommands.length,
    total: r.outcomes.length + r.unknownCommands.length,
    floatOnlyPassed: floatOnly.filter((o) => o.status === "passed").length,
    floatOnlyTotal: floatOnly.length
  }
}

export const sumCounts = (counts: ReadonlyArray<Counts>): Counts =>
  counts.reduce(
    (a, c) => ({
      passed: a.passed + c.passed,
      failed: a.failed + c.failed,
      unsupported: a.unsupported + c.unsupported,
      total: a.total + c.total,
      floatOnlyPassed: a.floatOnlyPassed + c.floatOnlyPassed,
      floatOnlyTotal: a.floatOnlyTotal + c.floatOnlyTotal
    }),
    { passed: 0, failed: 0, unsupported: 0, total: 0, floatOnlyPassed: 0, floatOnlyTotal: 0 }
  )

export const fileLine = (r: FileReport): string => {
  const c = countReport(r)
  return `${r.file}: ${c.passed} passed, ${c.failed} failed, ${c.unsupported} unsupported of ${c.total}`
}

export const summaryLine = (c: Counts): string =>
  `promqltest: ${c.passed} passed, ${c.failed} failed, ${c.unsupported} unsupported of ${c.total} evals (float-only non-experimental: ${c.floatOnlyPassed} of ${c.floatOnlyTotal} passed)`

/** Each failing (or, with `all`, non-passing) eval with its query, expected and got. */
export const verboseLines = (r: FileReport, all = false): Array<string> => {
  const out: Array<string> = []
  for (const o of r.outcomes) {
    if (o.status === "passed" || (o.status === "unsupported" && !all)) continue
    out.push(`${r.file}:${o.line}: ${o.status.toUpperCase()} ${o.text}`)
    out.push(`  reason:   ${o.reason ?? ""}`)
    out.push(`  expected: ${o.expected.split("\n").join("\n            ")}`)
    if (o.got !== undefined) out.push(`  got:      ${o.got.split("\n").join("\n            ")}`)
  }
  return out
}

/** Failures grouped by cause, most frequent first, with a few example queries each. */
export const causeLines = (reports: ReadonlyArray<FileReport>, status: Status = "failed", examples = 3): Array<string> => {
  const groups = new Map<string, Array<string>>()
  for (const r of reports) {
    for (const o of r.outcomes) {
      if (o.status !== status) continue
      const key = o.cause ?? "(no cause)"
      let g = groups.get(key)
      if (g === undefined) groups.set(key, (g = []))
      g.push(`${r.file}:${o.line}: ${o.query}`)
    }
  }
  const out: Array<string> = []
  for (const [cause, items] of [...groups].sort((a, b) => b[1].length - a[1].length)) {
    out.push(`${items.length} × ${cause}`)
    for (const q of items.slice(0, examples)) out.push(`    ${q}`)
  }
  return out
}
