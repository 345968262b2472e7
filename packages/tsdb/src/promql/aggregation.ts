/**
 * Aggregations (`sum`, `avg`, `count`, `min`, `max`, `stddev`, `stdvar`, `quantile`, `group`, `topk`,
 * `bottomk`, `count_values`, and the experimental `limitk`, `limit_ratio`) over the groups of `by` /
 * `without`, with native histograms where Prometheus takes them (`sum`, `avg`). `sum`, `count`, `group`,
 * `min` and `max` of a range function take its series as they stream, holding none of them.
 */
import { Effect } from "effect"
import type { Labels } from "../internal/labels.ts"
import { formatG } from "../internal/goString.ts"
import type { Aggregate } from "./ast.ts"
import type { FloatHistogram } from "./histogram.ts"
import * as NH from "./nativeHistograms.ts"
import { QueryError } from "./types.ts"
import type { Ctx, EvalValue, SampleValue, VSeries } from "./evalContext.ts"
import {
  evaluate,
  fail,
  inform,
  invalidQuantile,
  reportSeen,
  scalarOf,
  sigOf,
  sortLabelsLocal,
  stringOf,
  vectorOf,
  warn
} from "./evalContext.ts"
import { quantile } from "./quantiles.ts"
import { formatValue, goQuote, histogramText } from "./format.ts"
import { streamedCall } from "./functions.ts"
import { kahanSum, mean, variance } from "./summation.ts"

// xxHash64 (seed 0) of a label set as Prometheus's `labels.Hash` feeds it (name, 0xff, value, 0xff, ...),
// for `limit_ratio` to pick the series Prometheus picks.
const mask64 = (1n << 64n) - 1n
const P1 = 11400714785074694791n
const P2 = 14029467366897019727n
const P3 = 1609587929392839161n
const P4 = 9650029242287828579n
const P5 = 2870177450012600261n
const rotl = (x: bigint, r: bigint) => ((x << r) | (x >> (64n - r))) & mask64
const xxRound = (acc: bigint, input: bigint) => (rotl((acc + input * P2) & mask64, 31n) * P1) & mask64
const xxMerge = (acc: bigint, v: bigint) => (((acc ^ xxRound(0n, v)) * P1) + P4) & mask64

export const xxhash64 = (b: Uint8Array): bigint => {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength)
  const n = b.length
  let i = 0
  let h: bigint
  if (n >= 32) {
    let v1 = (P1 + P2) & mask64
    let v2 = P2
    let v3 = 0n
    let v4 = (-P1) & mask64
    for (; i + 32 <= n; i += 32) {
      v1 = xxRound(v1, view.getBigUint64(i, true))
      v2 = xxRound(v2, view.getBigUint64(i + 8, true))
      v3 = xxRound(v3, view.getBigUint64(i + 16, true))
      v4 = xxRound(v4, view.getBigUint64(i + 24, true))
    }
    h = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & mask64
    h = xxMerge(xxMerge(xxMerge(xxMerge(h, v1), v2), v3), v4)
  } else h = P5
  h = (h + BigInt(n)) & mask64
  for (; i + 8 <= n; i += 8) {
    h ^= xxRound(0n, view.getBigUint64(i, true))
    h = ((rotl(h, 27n) * P1) + P4) & mask64
  }
  if (i + 4 <= n) {
    h ^= (BigInt(view.getUint32(i, true)) * P1) & mask64
    h = ((rotl(h, 23n) * P2) + P3) & mask64
    i += 4
  }
  for (; i < n; i++) {
    h ^= (BigInt(b[i]!) * P5) & mask64
    h = (rotl(h, 11n) * P1) & mask64
  }
  h ^= h >> 33n
  h = (h * P2) & mask64
  h ^= h >> 29n
  h = (h * P3) & mask64
  h ^= h >> 32n
  return h
}

const utf8 = new TextEncoder()
/** Where a label set's hash falls in [0, 1]: `float64(hash) / float64(MaxUint64)`. */
const labelsHashOffset = (labels: Labels): number => {
  const parts: Array<Uint8Array> = []
  for (const [name, value] of labels) parts.push(utf8.encode(name), Uint8Array.of(0xff), utf8.encode(value), Uint8Array.of(0xff))
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    bytes.set(p, at)
    at += p.length
  }
  return Number(xxhash64(bytes)) / 18446744073709551615
}

const groupLabels = (labels: Labels, grouping: ReadonlyArray<string>, without: boolean): Labels =>
  without ? labels.filter(([n]) => n !== "__name__" && !grouping.includes(n)) : labels.filter(([n]) => grouping.includes(n))

/** The aggregations computed series by series, from state per group and step: their input can stream. */
const streamable: ReadonlySet<string> = new Set(["sum", "count", "group", "min", "max"])

/**
 * A group's state in a streamed aggregation, per step: how many floats it took, their compensated sum
 * (`sum`) or their minimum or maximum (`min`, `max`) so far, and its histograms in the order taken.
 */
interface StreamedGroup {
  readonly labels: Labels
  dropName: boolean
  readonly floats: Uint32Array
  readonly acc: Float64Array
  readonly comp: Float64Array | undefined
  histograms: Array<Array<FloatHistogram> | undefined> | undefined
}

/**
 * `sum`, `count`, `group`, `min` and `max` over series taken one at a time. Each step's result is the one
 * the whole-vector path computes: the same members in the same order, the sum compensated the same way
 * step by step, the same mixes of floats and histograms refused or passed over.
 */
const aggregateStreamed = (ctx: Ctx, agg: Aggregate, series: Iterable<VSeries>): EvalValue => {
  const op = agg.op
  const steps = ctx.steps
  const groups = new Map<string, StreamedGroup>()
  for (const s of series) {
    const labels = groupLabels(s.labels, agg.grouping, agg.without)
    const key = sigOf(labels)
    let g = groups.get(key)
    if (g === undefined) {
      g = { labels, dropName: false, floats: new Uint32Array(steps), acc: new Float64Array(steps), comp: op === "sum" ? new Float64Array(steps) : undefined, histograms: undefined }
      groups.set(key, g)
    }
    if (s.dropName === true) g.dropName = true
    const { floats, acc, comp } = g
    const values = s.values
    for (let i = 0; i < steps; i++) {
      const x = values[i]
      if (x === undefined) continue
      if (typeof x !== "number") {
        const hs = (g.histograms ??= new Array(steps))
        const list = hs[i]
        if (list === undefined) hs[i] = [x]
        else list.push(x)
        continue
      }
      const n = floats[i]!
      floats[i] = n + 1
      if (op === "sum") {
        // kahanSum's step, one member at a time.
        const sum = acc[i]!
        const t = sum + x
        comp![i] = comp![i]! + (Math.abs(sum) >= Math.abs(x) ? (sum - t) + x : (x - t) + sum)
        acc[i] = t
      } else if (op === "min" || op === "max") {
        const m = acc[i]!
        if (n === 0 || Number.isNaN(m) || (op === "min" ? x < m : x > m)) acc[i] = x
      }
    }
  }
  const seen = NH.newSeen()
  const out: Array<VSeries> = []
  for (const g of groups.values()) {
    const values = Array.from({ length: steps }, (_, i): SampleValue | undefined => {
      const nx = g.floats[i]!
      const hs = g.histograms?.[i]
      const nh = hs === undefined ? 0 : hs.length
      if (nx === 0 && nh === 0) return undefined
      switch (op) {
        case "count":
          return nx + nh
        case "group":
          return 1
      }
      if (nh > 0 && op === "sum") {
        if (nx > 0) {
          warn(ctx, "encountered a mix of histograms and floats for aggregation")
          return undefined
        }
        if (NH.conflictingResets(hs!)) seen.conflictingResets = true
        return NH.sum(hs!, true, seen)
      }
      if (nh > 0) inform(ctx, `ignored histogram in ${op} aggregation`)
      if (nx === 0) return undefined
      if (op === "sum") {
        const sum = g.acc[i]!
        return Number.isFinite(sum) ? sum + g.comp![i]! : sum
      }
      return g.acc[i]!
    })
    out.push({ labels: g.labels, dropName: g.dropName, values })
  }
  return aggregated(ctx, seen, out)
}

/** The groups' series, once what combining their histograms ran into is reported. */
const aggregated = (ctx: Ctx, seen: NH.Seen, out: Array<VSeries>): EvalValue => {
  // Exponential and custom buckets in one sum: Prometheus names no metric.
  if (seen.mixedSchemas) {
    seen.mixedSchemas = false
    warn(ctx, `vector contains a mix of histograms with exponential and custom buckets schemas for metric name ""`)
  }
  reportSeen(ctx, seen, "", "aggregation")
  return { kind: "vector", series: out }
}

export const evalAggregate = (ctx: Ctx, agg: Aggregate): Effect.Effect<EvalValue, QueryError> =>
  Effect.gen(function*() {
    if (streamable.has(agg.op)) {
      const streamed = yield* streamedCall(ctx, agg.expr)
      if (streamed !== undefined) return aggregateStreamed(ctx, agg, streamed)
    }
    const series = vectorOf(yield* evaluate(ctx, agg.expr))
    const param = agg.param === undefined ? undefined : yield* evaluate(ctx, agg.param)
    // A group drops its name (kept only by `by (__name__)`) when any of its members drops theirs.
    const groups = new Map<string, { labels: Labels; members: Array<VSeries>; dropName: boolean }>()
    for (const s of series) {
      const labels = groupLabels(s.labels, agg.grouping, agg.without)
      const key = sigOf(labels)
      const g = groups.get(key) ?? { labels, members: [], dropName: false }
      g.members.push(s)
      if (s.dropName === true) g.dropName = true
      groups.set(key, g)
    }
    const op = agg.op
    if (op === "limit_ratio") {
      // Each series is in or out by where the hash of its labels falls (Prometheus's `AddRatioSample`): a
      // ratio r in [0, 1] keeps those below r, a negative one those at or above 1 + r, so r and r - 1 split
      // the series between them.
      const r = scalarOf(param!)
      if (r.some((x) => Number.isNaN(x))) fail("execution", "Ratio value is NaN")
      for (const x of new Set(r)) {
        if (x < -1 || x > 1) warn(ctx, `ratio value should be between -1 and 1, got ${formatG(x)}, capping to ${x < -1 ? -1 : 1}`)
      }
      const out: Array<VSeries> = []
      for (const s of series) {
        const offset = labelsHashOffset(s.labels)
        const values = s.values.map((v, i) => {
          if (v === undefined) return undefined
          const ratio = Math.max(-1, Math.min(1, r[i]!))
          return (ratio >= 0 && offset < ratio) || (ratio < 0 && offset >= 1 + ratio) ? v : undefined
        })
        if (values.some((v) => v !== undefined)) out.push({ labels: s.labels, dropName: s.dropName, values })
      }
      return { kind: "vector", series: out }
    }
    if (op === "topk" || op === "bottomk" || op === "limitk") {
      const k = scalarOf(param!)
      if (k.some((x) => Number.isNaN(x))) fail("execution", "Parameter value is NaN")
      const out = new Map<string, VSeries>()
      for (const g of groups.values()) {
        for (let i = 0; i < ctx.steps; i++) {
          const kk = Math.floor(k[i]!)
          if (!(kk >= 1)) continue
          // limitk: the first k of the group, in the input's order; topk and bottomk pass over histograms.
          const present = g.members.filter((s) => (op === "limitk" ? s.values[i] !== undefined : typeof s.values[i] === "number"))
          if (op !== "limitk" && g.members.some((s) => s.values[i] !== undefined && typeof s.values[i] !== "number")) inform(ctx, `ignored histogram in ${op} aggregation`)
          if (op !== "limitk") present.sort((a, b) => {
            const x = a.values[i] as number
            const y = b.values[i] as number
            if (Number.isNaN(x)) return 1
            if (Number.isNaN(y)) return -1
            return op === "topk" ? y - x : x - y
          })
          for (const s of present.slice(0, kk)) {
            const key = sigOf(s.labels)
            const o = out.get(key) ?? { labels: s.labels, dropName: s.dropName, values: new Array(ctx.steps) }
            o.values[i] = s.values[i]
            out.set(key, o)
          }
        }
      }
      return { kind: "vector", series: [...out.values()] }
    }
    if (op === "count_values") {
      const label = stringOf(param!)
      if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(label)) fail("bad_data", `invalid label name ${goQuote(label)}`)
      const out = new Map<string, VSeries>()
      for (const g of groups.values()) {
        for (let i = 0; i < ctx.steps; i++) {
          for (const s of g.members) {
            const v = s.values[i]
            if (v === undefined) continue
            const text = typeof v === "number" ? formatValue(v) : histogramText(v)
            const labels = sortLabelsLocal([...g.labels.filter(([n]) => n !== label), [label, text]])
            const key = sigOf(labels)
            const o = out.get(key) ?? { labels, dropName: g.dropName, values: new Array(ctx.steps) }
            o.values[i] = (o.values[i] ?? 0) + 1
            out.set(key, o)
          }
        }
      }
      return { kind: "vector", series: [...out.values()] }
    }
    const q = op === "quantile" ? scalarOf(param!) : undefined
    if (q !== undefined && groups.size > 0) {
      for (const x of new Set(q)) invalidQuantile(ctx, x)
    }
    const seen = NH.newSeen()
    const out: Array<VSeries> = []
    /**
     * The group's floats (the first `nx` of `xs`) and histograms at one step: reused from step to step and
     * group to group (the functions below only read them), so a step allocates nothing.
     */
    let membersMax = 0
    for (const g of groups.values()) membersMax = Math.max(membersMax, g.members.length)
    const xs = new Float64Array(membersMax)
    let nx = 0
    const hs: Array<FloatHistogram> = []
    for (const g of groups.values()) {
      const values = Array.from({ length: ctx.steps }, (_, i): SampleValue | undefined => {
        nx = 0
        hs.length = 0
        for (const s of g.members) {
          const x = s.values[i]
          if (typeof x === "number") xs[nx++] = x
          else if (x !== undefined) hs.push(x)
        }
        if (nx === 0 && hs.length === 0) return undefined
        switch (op) {
          case "count":
            return nx + hs.length
          case "group":
            return 1
        }
        if (hs.length > 0 && (op === "sum" || op === "avg")) {
          // Floats and histograms do not add up: the group has no value at this step.
          if (nx > 0) {
            warn(ctx, "encountered a mix of histograms and floats for aggregation")
            return undefined
          }
          if (NH.conflictingResets(hs)) seen.conflictingResets = true
          return op === "sum" ? NH.sum(hs, true, seen) : NH.average(hs, true, seen)
        }
        // The other aggregations pass over histograms.
        if (hs.length > 0) inform(ctx, `ignored histogram in ${op} aggregation`)
        if (nx === 0) return undefined
        switch (op) {
          case "sum":
            return kahanSum(xs, 0, nx)
          case "avg":
            return mean(xs, 0, nx)
          case "min":
          case "max": {
            let m = xs[0]!
            for (let k = 1; k < nx; k++) {
              const x = xs[k]!
              if (Number.isNaN(m) || (op === "min" ? x < m : x > m)) m = x
            }
            return m
          }
          case "stddev":
            return Math.sqrt(variance(xs, 0, nx))
          case "stdvar":
            return variance(xs, 0, nx)
          case "quantile":
            return quantile(q![i]!, Array.from(xs.subarray(0, nx)))
          default:
            return fail("unsupported", `aggregation ${op} is not supported`) as never
        }
      })
      out.push({ labels: g.labels, dropName: g.dropName, values })
    }
    return aggregated(ctx, seen, out)
  })
