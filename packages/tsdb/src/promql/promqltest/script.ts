/**
 * Reading Prometheus's PromQL test scripts (`promql/promqltest/testdata/*.test`, format in its README):
 * the text as `load` / `clear` / `eval` commands, series descriptions expanded (`1 2+3x4 _ stale`, native
 * histograms `{{...}}`, `@st` start timestamps), expectations read; and which experimental features an
 * eval's query uses.
 */
import type { Labels } from "../../internal/labels.ts"
import { canonical, sortLabels } from "../../internal/labels.ts"
import { StringEscapeError, unquote } from "../../internal/goString.ts"
import { FloatHistogram, parseHistogramText } from "../histogram.ts"
import { staleNaN } from "../types.ts"

// -------------------------------------------------------------------------------------------------
// Numbers and durations

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

export const goUnquote = (quote: string, body: string): string => {
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
export const withoutStrings = (q: string): string => {
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
