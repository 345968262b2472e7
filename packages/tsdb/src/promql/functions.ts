/**
 * PromQL function calls: `evalCall` hands a call to the range functions (rangeFunctions.ts), to `info`
 * (info.ts), or evaluates it here: math and date functions, `time`, `vector`, `scalar`, `timestamp`,
 * `round`, `clamp*`, `absent`, the sort functions (sorted when the result is returned: engine.ts),
 * `label_replace`, `label_join`, and the `histogram_*` functions of native and classic histograms.
 */
import { Effect } from "effect"
import type { Labels, Matcher } from "../internal/labels.ts"
import { formatG } from "../internal/goString.ts"
import { compileLabelReplace, expand, type SubmatchRegex } from "../internal/regex.ts"
import type { Call, Expr, MatrixSelector } from "./ast.ts"
import type { FloatHistogram } from "./histogram.ts"
import * as Stats from "./histogramStats.ts"
import { QueryError } from "./types.ts"
import type { Ctx, EvalValue, VSeries } from "./evalContext.ts"
import {
  checkUnique,
  dropName,
  evaluate,
  fail,
  forMetric,
  inform,
  invalidQuantile,
  metricName,
  scalarOf,
  sigOf,
  sortLabelsLocal,
  stepTime,
  stringOf,
  vectorOf,
  warn
} from "./evalContext.ts"
import { load, lookback, rangeInput, span } from "./selectors.ts"
import { counterNameText, evalExtendedRange, overWindows, rangeFunctions, windowsOf } from "./rangeFunctions.ts"
import { histogramFraction, histogramQuantile, notMonotonic } from "./quantiles.ts"
import { evalInfo } from "./info.ts"

const mathFunctions: Record<string, (v: number) => number> = {
  abs: Math.abs,
  ceil: Math.ceil,
  floor: Math.floor,
  exp: Math.exp,
  sqrt: Math.sqrt,
  ln: Math.log,
  log2: Math.log2,
  log10: Math.log10,
  sgn: (v) => (v > 0 ? 1 : v < 0 ? -1 : v),
  sin: Math.sin,
  cos: Math.cos,
  tan: Math.tan,
  asin: Math.asin,
  acos: Math.acos,
  atan: Math.atan,
  sinh: Math.sinh,
  cosh: Math.cosh,
  tanh: Math.tanh,
  asinh: Math.asinh,
  acosh: Math.acosh,
  atanh: Math.atanh,
  deg: (v) => (v * 180) / Math.PI,
  rad: (v) => (v * Math.PI) / 180
}

const dateFunctions: Record<string, (d: Date) => number> = {
  minute: (d) => d.getUTCMinutes(),
  hour: (d) => d.getUTCHours(),
  day_of_week: (d) => d.getUTCDay(),
  day_of_month: (d) => d.getUTCDate(),
  day_of_year: (d) => {
    const start = Date.UTC(d.getUTCFullYear(), 0, 1)
    return Math.floor((d.getTime() - start) / 86_400_000) + 1
  },
  days_in_month: (d) => new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).getUTCDate(),
  month: (d) => d.getUTCMonth() + 1,
  year: (d) => d.getUTCFullYear()
}

const mapVector = (v: EvalValue, f: (x: number) => number, keepName = false): EvalValue => {
  if (v.kind !== "vector") fail("bad_data", "expected an instant vector")
  const series = (v as { series: Array<VSeries> }).series
  return {
    kind: "vector",
    // Float functions pass over native histograms (Prometheus drops them from the result).
    series: series.map((s) => ({ labels: s.labels, dropName: keepName ? s.dropName : true, values: s.values.map((x) => (typeof x === "number" ? f(x) : undefined)) }))
  }
}

/** Go's `strconv.ParseFloat` of a label value (`+Inf`, `inf`, `NaN`, ...); NaN when it is not a number. */
const parseGoFloat = (text: string): number => {
  const t = text.trim()
  if (t === "" || t !== text) return Number.NaN
  if (/^[+-]?inf(inity)?$/i.test(t)) return t.startsWith("-") ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY
  if (/^nan$/i.test(t)) return Number.NaN
  return /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(t) || /^[+-]?0[xX]/.test(t) ? Number(t) : Number.NaN
}

/** The call's range selector when it is an `anchored` or `smoothed` one (then the call is evaluated apart). */
const extendedRange = (call: Call): MatrixSelector | undefined => {
  const matrix = call.args.find((a) => a.type === "MatrixSelector" || (a.type === "Paren" && a.expr.type === "MatrixSelector"))
  const sel = matrix === undefined ? undefined : (matrix.type === "Paren" ? matrix.expr : matrix) as MatrixSelector
  return sel !== undefined && (sel.vector.anchored === true || sel.vector.smoothed === true) ? sel : undefined
}

/**
 * The result series of a range function call over a plain range, one at a time as its input streams
 * them (`undefined` for any other expression): for an aggregation that takes each series as it comes.
 */
export const streamedCall = (ctx: Ctx, node: Expr): Effect.Effect<Iterable<VSeries> | undefined, QueryError> =>
  node.type === "Call" && rangeFunctions[node.func] !== undefined && extendedRange(node) === undefined
    ? rangeCall(ctx, node)
    : Effect.succeed(undefined)

/** A range function's result series (over a plain range), lazily: each computed when reached. */
const rangeCall = (ctx: Ctx, call: Call): Effect.Effect<Iterable<VSeries>, QueryError> =>
  Effect.gen(function*() {
    const name = call.func
    const ranged = rangeFunctions[name]!
    const extra: Array<number> = []
    let rangeArg = call.args[0]!
    if (name === "quantile_over_time") {
      const q = scalarOf(yield* evaluate(ctx, call.args[0]!))[0] ?? Number.NaN
      invalidQuantile(ctx, q)
      extra.push(q)
      rangeArg = call.args[1]!
    }
    if (name === "predict_linear") extra.push(scalarOf(yield* evaluate(ctx, call.args[1]!))[0] ?? 0)
    if (name === "double_exponential_smoothing") {
      extra.push(scalarOf(yield* evaluate(ctx, call.args[1]!))[0] ?? Number.NaN, scalarOf(yield* evaluate(ctx, call.args[2]!))[0] ?? Number.NaN)
    }
    const input = yield* rangeInput(ctx, rangeArg)
    const counter = name === "rate" || name === "increase"
    return {
      *[Symbol.iterator]() {
        // The counter-name infos after the window functions' own, as when the result is built whole.
        const notes: Array<string> = []
        for (const s of windowsOf(ctx, input, ranged, extra)) {
          const text = counter ? counterNameText(s) : undefined
          if (text !== undefined) notes.push(text)
          yield s
        }
        for (const text of notes) inform(ctx, text)
      }
    }
  })

export const evalCall = (ctx: Ctx, call: Call): Effect.Effect<EvalValue, QueryError> =>
  Effect.gen(function*() {
    const name = call.func
    const ranged = rangeFunctions[name]
    if (ranged !== undefined) {
      const extended = extendedRange(call)
      if (extended !== undefined) return yield* evalExtendedRange(ctx, name, extended)
      return { kind: "vector", series: Array.from(yield* rangeCall(ctx, call)) }
    }
    if (name === "absent_over_time") {
      const input = yield* rangeInput(ctx, call.args[0]!)
      const present = overWindows(ctx, input, rangeFunctions["present_over_time"]!, [])
      const sel = (call.args[0]!.type === "MatrixSelector" ? call.args[0]!.vector : undefined)
      return absentResult(ctx, present, sel?.matchers ?? [])
    }
    const math = mathFunctions[name]
    if (math !== undefined) return mapVector(yield* evaluate(ctx, call.args[0]!), math)
    const date = dateFunctions[name]
    if (date !== undefined) {
      if (call.args.length === 0) {
        return { kind: "vector", series: [{ labels: [], values: Array.from({ length: ctx.steps }, (_, i) => date(new Date(stepTime(ctx, i)))) }] }
      }
      return mapVector(yield* evaluate(ctx, call.args[0]!), (v) => date(new Date(v * 1000)))
    }
    switch (name) {
      case "time":
        return { kind: "scalar", values: Array.from({ length: ctx.steps }, (_, i) => stepTime(ctx, i) / 1000) }
      case "pi":
        return { kind: "scalar", values: new Array(ctx.steps).fill(Math.PI) }
      // The query's own bounds, in seconds (experimental, for duration expressions).
      case "start":
        return { kind: "scalar", values: new Array(ctx.steps).fill(ctx.start / 1000) }
      case "end":
        return { kind: "scalar", values: new Array(ctx.steps).fill(ctx.end / 1000) }
      case "range":
        return { kind: "scalar", values: new Array(ctx.steps).fill((ctx.end - ctx.start) / 1000) }
      case "step":
        return { kind: "scalar", values: new Array(ctx.steps).fill(ctx.step / 1000) }
      case "min_of":
      case "max_of": {
        const args: Array<ReadonlyArray<number>> = []
        for (const a of call.args) args.push(scalarOf(yield* evaluate(ctx, a)))
        const pick = name === "min_of" ? Math.min : Math.max
        return { kind: "scalar", values: Array.from({ length: ctx.steps }, (_, i) => pick(...args.map((v) => v[i]!))) }
      }
      case "vector": {
        const s = scalarOf(yield* evaluate(ctx, call.args[0]!))
        return { kind: "vector", series: [{ labels: [], values: [...s] }] }
      }
      case "scalar": {
        const v = vectorOf(yield* evaluate(ctx, call.args[0]!))
        return {
          kind: "scalar",
          values: Array.from({ length: ctx.steps }, (_, i) => {
            // Histograms do not count: one float sample (and any histograms) gives that float.
            const floats = v.filter((s) => typeof s.values[i] === "number")
            return floats.length === 1 ? (floats[0]!.values[i] as number) : Number.NaN
          })
        }
      }
      case "timestamp": {
        const arg = call.args[0]!
        let inner = arg
        while (inner.type === "Paren") inner = inner.expr
        if (inner.type === "VectorSelector") {
          // The timestamp of the sample itself, not the evaluation time.
          const { mint, maxt } = span(ctx, inner.at, inner.offsetMs, ctx.lookbackMs)
          const loaded = yield* load(ctx, inner.matchers, mint, maxt)
          const series: Array<VSeries> = []
          for (const s of loaded) {
            const values: Array<number | undefined> = new Array(ctx.steps)
            let any = false
            const ts = s.timestamps
            lookback(ctx, ts, s.values, inner.at, inner.offsetMs, (i, k) => {
              values[i] = ts[k]! / 1000
              any = true
            })
            if (any) series.push({ labels: s.labels, dropName: true, values })
          }
          return { kind: "vector", series }
        }
        const v = vectorOf(yield* evaluate(ctx, arg))
        return { kind: "vector", series: v.map((s) => ({ labels: s.labels, dropName: true, values: s.values.map((x, i) => (x === undefined ? undefined : stepTime(ctx, i) / 1000)) })) }
      }
      case "start_timestamp": {
        // Experimental: when each selected sample's counter started (seconds; 0 when not known). Only of a
        // selector's samples, and only with use-start-timestamps: of an expression, nothing.
        let inner = call.args[0]!
        while (inner.type === "Paren") inner = inner.expr
        if (!ctx.useStartTimestamps || inner.type !== "VectorSelector") {
          yield* evaluate(ctx, call.args[0]!)
          return { kind: "vector", series: [] }
        }
        const { mint, maxt } = span(ctx, inner.at, inner.offsetMs, ctx.lookbackMs)
        const series: Array<VSeries> = []
        for (const s of yield* load(ctx, inner.matchers, mint, maxt)) {
          const values: Array<number | undefined> = new Array(ctx.steps)
          let any = false
          const sts = s.startTimestamps
          lookback(ctx, s.timestamps, s.values, inner.at, inner.offsetMs, (i, k) => {
            values[i] = (sts?.[k] ?? 0) / 1000
            any = true
          })
          if (any) series.push({ labels: s.labels, dropName: true, values })
        }
        return { kind: "vector", series }
      }
      case "round": {
        const v = yield* evaluate(ctx, call.args[0]!)
        const to = call.args[1] === undefined ? new Array(ctx.steps).fill(1) : scalarOf(yield* evaluate(ctx, call.args[1]))
        const series = vectorOf(v)
        return {
          kind: "vector",
          series: series.map((s) => ({
            labels: s.labels,
            dropName: true,
            values: s.values.map((x, i) => {
              if (typeof x !== "number") return undefined
              const inv = 1 / to[i]!
              return Math.floor(x * inv + 0.5) / inv
            })
          }))
        }
      }
      case "clamp":
      case "clamp_min":
      case "clamp_max": {
        const series = vectorOf(yield* evaluate(ctx, call.args[0]!))
        const a = scalarOf(yield* evaluate(ctx, call.args[1]!))
        const b = name === "clamp" ? scalarOf(yield* evaluate(ctx, call.args[2]!)) : undefined
        const out: Array<VSeries> = []
        for (const s of series) {
          const values = s.values.map((x, i) => {
            if (typeof x !== "number") return undefined
            if (name === "clamp_min") return Number.isNaN(x) ? x : Math.max(x, a[i]!)
            if (name === "clamp_max") return Number.isNaN(x) ? x : Math.min(x, a[i]!)
            if (a[i]! > b![i]!) return undefined
            return Number.isNaN(x) ? x : Math.max(a[i]!, Math.min(b![i]!, x))
          })
          if (values.some((x) => x !== undefined)) out.push({ labels: s.labels, dropName: true, values })
        }
        return { kind: "vector", series: out }
      }
      case "absent": {
        const v = vectorOf(yield* evaluate(ctx, call.args[0]!))
        const arg = call.args[0]!
        return absentResult(ctx, v, arg.type === "VectorSelector" ? arg.matchers : [])
      }
      case "sort":
      case "sort_desc":
      case "sort_by_label":
      case "sort_by_label_desc":
        if (ctx.start !== ctx.end) warn(ctx, "sort is ineffective for range queries since results are always ordered by labels")
        return yield* evaluate(ctx, call.args[0]!)
      case "info":
        return yield* evalInfo(ctx, call)
      case "label_replace": {
        const [dst, replacement, src, regex] = [1, 2, 3, 4].map((i) => stringOf(call.args[i] === undefined ? { kind: "string", value: "" } : { kind: "string", value: (call.args[i] as { value: string }).value }))
        // As Prometheus: the regex is compiled first (Go RE2, `^(?s:regex)$`, linear-time matching), then
        // the destination is checked, then the vector is evaluated.
        let re: SubmatchRegex
        try {
          re = compileLabelReplace(regex!)
        } catch {
          return fail("bad_data", `invalid regular expression in label_replace(): ${regex}`) as never
        }
        if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(dst!)) fail("bad_data", `invalid destination label name in label_replace(): ${dst}`)
        const series = vectorOf(yield* evaluate(ctx, call.args[0]!))
        return {
          kind: "vector",
          series: checkUnique(series.map((s) => {
            const value = s.labels.find(([n]) => n === src)?.[1] ?? ""
            const m = re.exec(value)
            if (m === undefined) return s
            // Go's Regexp.Expand: `$1`, `${1}`, `$name`, `${name}`, `$$`; `$1x` is the (absent) group `1x`.
            const expanded = expand(replacement!, m)
            const labels = s.labels.filter(([n]) => n !== dst)
            // Writing the name keeps it: a name set by label_replace is not dropped later.
            const dropName = dst === "__name__" ? false : s.dropName
            return { labels: expanded === "" ? labels : sortLabelsLocal([...labels, [dst!, expanded]]), dropName, values: s.values }
          }))
        }
      }
      case "label_join": {
        const series = vectorOf(yield* evaluate(ctx, call.args[0]!))
        const dst = (call.args[1] as { value: string }).value
        const sep = (call.args[2] as { value: string }).value
        const srcs = call.args.slice(3).map((a) => (a as { value: string }).value)
        if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(dst)) fail("bad_data", `invalid destination label name in label_join(): ${dst}`)
        return {
          kind: "vector",
          series: checkUnique(series.map((s) => {
            const joined = srcs.map((n) => s.labels.find(([k]) => k === n)?.[1] ?? "").join(sep)
            const labels = s.labels.filter(([n]) => n !== dst)
            const dropName = dst === "__name__" ? false : s.dropName
            return { labels: joined === "" ? labels : sortLabelsLocal([...labels, [dst, joined]]), dropName, values: s.values }
          }))
        }
      }
      case "histogram_fraction":
      case "histogram_quantile": {
        const fraction = name === "histogram_fraction"
        const q = scalarOf(yield* evaluate(ctx, call.args[0]!))
        const upperArg = fraction ? scalarOf(yield* evaluate(ctx, call.args[1]!)) : undefined
        const series = vectorOf(yield* evaluate(ctx, call.args[fraction ? 2 : 1]!))
        if (!fraction) {
          for (const x of new Set(q)) invalidQuantile(ctx, x)
        }
        return { kind: "vector", series: bucketFunction(ctx, series, q, upperArg) }
      }
      case "histogram_quantiles": {
        // Experimental: one quantile per argument, each series labelled with it (`label`).
        const series = vectorOf(yield* evaluate(ctx, call.args[0]!))
        const label = stringOf(yield* evaluate(ctx, call.args[1]!))
        const out: Array<VSeries> = []
        for (const arg of call.args.slice(2)) {
          const q = scalarOf(yield* evaluate(ctx, arg))[0] ?? Number.NaN
          invalidQuantile(ctx, q)
          const text = formatG(q)
          const value = /^[+-]?\d+$/.test(text) ? `${text}.0` : text
          for (const s of bucketFunction(ctx, series, new Array(ctx.steps).fill(q), undefined)) {
            out.push({ labels: sortLabelsLocal([...s.labels.filter(([n]) => n !== label), [label, value]]), dropName: true, values: s.values })
          }
        }
        return { kind: "vector", series: checkUnique(out) }
      }
      case "histogram_count":
      case "histogram_sum":
      case "histogram_avg":
      case "histogram_stddev":
      case "histogram_stdvar": {
        const f = histogramFunctions[name]!
        const before = ctx.statsOnly
        // Only the count and sum are read (not stddev's buckets): Prometheus's stats iterator applies.
        if (name === "histogram_count" || name === "histogram_sum" || name === "histogram_avg") ctx.statsOnly = true
        const series = vectorOf(yield* evaluate(ctx, call.args[0]!))
        ctx.statsOnly = before
        const out: Array<VSeries> = []
        for (const s of series) {
          let any = false
          const values = s.values.map((x) => {
            if (x === undefined || typeof x === "number") return undefined
            any = true
            return f(x)
          })
          if (any) out.push({ labels: s.labels, dropName: true, values })
        }
        return { kind: "vector", series: out }
      }
      default:
        return fail("unsupported", `function ${name}() is not supported yet`) as never
    }
  })

/**
 * histogram_quantile (`upperArg` undefined: `q` is the quantile) or histogram_fraction (`q` the lower and
 * `upperArg` the upper bound), per step: of each native histogram, and of each group of classic buckets
 * (series with an `le` label, grouped by their other labels).
 */
const bucketFunction = (ctx: Ctx, series: ReadonlyArray<VSeries>, q: ReadonlyArray<number>, upperArg: ReadonlyArray<number> | undefined): Array<VSeries> => {
  const fraction = upperArg !== undefined
  const groups = new Map<string, { labels: Labels; members: Array<{ le: number; s: VSeries }> }>()
  // Two inputs with the same labels once the name is gone (e.g. `a_bucket` and `b_bucket`) collide.
  const seenInputs = new Set<string>()
  const out: Array<VSeries> = []
  /** The native histograms' results by their labels, to find classic buckets with the same labels. */
  const natived = new Map<string, Array<number | undefined>>()
  for (const s of series) {
    const inputKey = sigOf(dropName(s.labels))
    if (seenInputs.has(inputKey)) fail("execution", "vector cannot contain metrics with the same labelset")
    seenInputs.add(inputKey)
    // Native histograms: each on its own.
    let natives = false
    const nativeValues = s.values.map((x, i) => {
      if (x === undefined || typeof x === "number") return undefined
      natives = true
      const stat = fraction ? Stats.histogramFractionStat(q[i]!, upperArg![i]!, x) : Stats.histogramQuantile(q[i]!, x)
      if (stat.annotation !== undefined) ctx.notes.infos.add(Stats.annotationMessage(stat.annotation, metricName(s.labels)))
      return stat.value
    })
    if (natives) {
      out.push({ labels: s.labels, dropName: true, values: nativeValues })
      natived.set(inputKey, nativeValues)
    }
    if (!s.values.some((x) => typeof x === "number")) continue
    const leText = s.labels.find(([n]) => n === "le")?.[1]
    const le = leText === undefined ? Number.NaN : parseGoFloat(leText)
    if (Number.isNaN(le)) {
      warn(ctx, forMetric(`bucket label "le" is missing or has a malformed value of ${JSON.stringify(leText ?? "")}`, metricName(s.labels)))
      continue
    }
    const labels = dropName(s.labels.filter(([n]) => n !== "le"))
    const key = sigOf(labels)
    const g = groups.get(key) ?? { labels, members: [] }
    g.members.push({ le, s })
    groups.set(key, g)
  }
  for (const [key, g] of groups) {
    const native = natived.get(key)
    const name = metricName(g.members[0]!.s.labels)
    const values = Array.from({ length: ctx.steps }, (_, i) => {
      const buckets = g.members.flatMap((m) => {
        const count = m.s.values[i]
        return typeof count === "number" ? [{ le: m.le, count }] : []
      })
      if (buckets.length === 0) return undefined
      // Classic buckets and a native histogram of the same series: neither answers (Prometheus warns).
      if (native?.[i] !== undefined) {
        native[i] = undefined
        warn(ctx, forMetric("vector contains a mix of classic and native histograms", name))
        return undefined
      }
      if (!fraction && !Number.isNaN(q[i]!) && q[i]! >= 0 && q[i]! <= 1 && notMonotonic(buckets)) {
        inform(ctx, forMetric("input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile)", name))
      }
      return fraction ? histogramFraction(q[i]!, upperArg![i]!, buckets) : histogramQuantile(q[i]!, buckets)
    })
    if (values.some((v) => v !== undefined)) out.push({ labels: g.labels, values })
  }
  return out
}

/** The functions of one native histogram that give a float (float samples are passed over). */
const histogramFunctions: Record<string, (h: FloatHistogram) => number> = {
  histogram_count: Stats.histogramCount,
  histogram_sum: Stats.histogramSum,
  histogram_avg: Stats.histogramAvg,
  histogram_stddev: Stats.histogramStdDev,
  histogram_stdvar: Stats.histogramStdVar
}

/** absent(): 1 at steps where the input is empty, with the labels of the selector's equality matchers. */
const absentResult = (ctx: Ctx, present: ReadonlyArray<VSeries>, matchers: ReadonlyArray<Matcher>): EvalValue => {
  const equalities = matchers.filter((m) => m.type === "=" && m.name !== "__name__")
  // A label with more than one matcher is ambiguous: Prometheus leaves it out.
  const labels = sortLabelsLocal(
    equalities.filter((m) => matchers.filter((o) => o.name === m.name).length === 1).map((m) => [m.name, m.value] as const)
  )
  const values = Array.from({ length: ctx.steps }, (_, i) => (present.some((s) => s.values[i] !== undefined) ? undefined : 1))
  return { kind: "vector", series: values.some((v) => v !== undefined) ? [{ labels, values }] : [] }
}
