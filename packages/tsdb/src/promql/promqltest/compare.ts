/**
 * Comparing a query's answer with an eval's expectation, as Prometheus's promqltest does (test.go):
 * instant vectors as a set of (labels, value), in order only for `expect ordered`; matrices per series per
 * step, sorted by labels; floats with `almost.Equal(expected, got, 1e-6)`, a stale marker never matching;
 * native histograms by structure; annotations and failure messages. And the text of expected and actual
 * results, for reports.
 */
import type { Labels } from "../../internal/labels.ts"
import { canonical, labelValue, sortLabels } from "../../internal/labels.ts"
import type { FloatHistogram, Span } from "../histogram.ts"
import type { InstantSample, Point, Value } from "../types.ts"
import { compareLabels, isStaleNaN } from "../types.ts"
import type { EvalCommand, Expectation, SeqPoint } from "./script.ts"

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

/** A failed comparison: what went wrong, and a short kind for grouping. */
export interface Mismatch {
  readonly kind: string
  readonly message: string
}

export const mismatch = (kind: string, message: string): Mismatch => ({ kind, message })

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
export const unsorted = (sorted: ReadonlyArray<Labels>): Mismatch | undefined => {
  for (let i = 0; i + 1 < sorted.length; i++) {
    if (compareLabels(sorted[i]!, sorted[i + 1]!) > 0) {
      return mismatch("matrix not sorted", `matrix results should always be sorted by labels, but ${formatLabels(sorted[i + 1]!)} comes after ${formatLabels(sorted[i]!)}`)
    }
  }
  return undefined
}

export const compareVector = (cmd: EvalCommand, samples: ReadonlyArray<InstantSample>, ordered: boolean): Mismatch | undefined => {
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

export const compareScalar = (cmd: EvalCommand, v: number): Mismatch | undefined => {
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
