/**
 * The PromQL engine (Prometheus 3.x semantics) over a `SeriesSource`: `instantQuery` and `rangeQuery`
 * parse a query (parser.ts), refuse the experimental features it uses that are not switched on, evaluate
 * it (evaluator.ts) and return its value as Prometheus's API does (names dropped, a label set at most once,
 * range results sorted by labels, the sort functions' order).
 */
import { Effect } from "effect"
import type { Labels } from "../internal/labels.ts"
import { labelValue } from "../internal/labels.ts"
import type { SeriesSource } from "../SeriesSource.ts"
import type { Call, Expr } from "./ast.ts"
import { ParseError } from "./ast.ts"
import { parseWithDurations } from "./parser.ts"
import { resolveDurations } from "./durations.ts"
import { functions } from "./functionTable.ts"
import type { FloatHistogram } from "./histogram.ts"
import type { InstantSample, Point, PromqlFeature, QueryOptions, Value } from "./types.ts"
import { compareLabels, QueryError } from "./types.ts"
import type { Ctx, MSeries, SampleValue } from "./evalContext.ts"
import { checkUnique, outputLabels, sigOf, stepTime } from "./evalContext.ts"
import { evaluate, makeCtx } from "./evaluator.ts"

export { QueryError }
export type { QueryOptions, Value }
export { xxhash64 } from "./aggregation.ts"

/** What each experimental feature a query may use is called where an error names it. */
const featureUses: Record<PromqlFeature, string> = {
  "promql-experimental-functions": "experimental functions",
  "promql-duration-expr": "duration expressions",
  "promql-extended-range-selectors": "the anchored and smoothed modifiers",
  "promql-binop-fill-modifiers": "the fill modifiers",
  "use-start-timestamps": "start timestamps"
}

/** The experimental features a parsed query uses. */
const featuresOf = (expr: Expr, durationExpressions: boolean): Set<PromqlFeature> => {
  const used = new Set<PromqlFeature>()
  if (durationExpressions) used.add("promql-duration-expr")
  const walk = (e: Expr | undefined): void => {
    if (e === undefined) return
    switch (e.type) {
      case "VectorSelector":
        if (e.anchored === true || e.smoothed === true) used.add("promql-extended-range-selectors")
        return
      case "MatrixSelector":
        return walk(e.vector)
      case "Subquery":
      case "Unary":
      case "Paren":
        return walk(e.expr)
      case "Call":
        if (functions.get(e.func)?.experimental === true) used.add("promql-experimental-functions")
        return e.args.forEach(walk)
      case "Aggregate":
        if (e.op === "limitk" || e.op === "limit_ratio") used.add("promql-experimental-functions")
        walk(e.expr)
        return walk(e.param)
      case "Binary":
        if (e.matching?.fillLeft !== undefined || e.matching?.fillRight !== undefined) used.add("promql-binop-fill-modifiers")
        walk(e.lhs)
        return walk(e.rhs)
      default:
        return
    }
  }
  walk(expr)
  return used
}

/** Parses a query and refuses the experimental features it uses that are not switched on. */
const parseQuery = (query: string, options: QueryOptions | undefined) =>
  Effect.try({
    try: () => {
      const { durationExpressions, expr } = parseWithDurations(query)
      const enabled = new Set(options?.features ?? [])
      for (const feature of featuresOf(expr, durationExpressions)) {
        if (!enabled.has(feature)) throw new QueryError({ kind: "bad_data", message: `${featureUses[feature]} are not enabled: switch on ${feature} (as Prometheus's --enable-feature)` })
      }
      return expr
    },
    catch: (e) => (e instanceof ParseError ? new QueryError({ kind: "bad_data", message: e.message }) : e instanceof QueryError ? e : new QueryError({ kind: "bad_data", message: String(e) }))
  })

/** The query's duration expressions that use `step()` or `range()`, evaluated for this query. */
const withDurations = (expr: Expr, stepMs: number, rangeMs: number) =>
  Effect.try({
    try: () => resolveDurations(expr, { stepMs, rangeMs }),
    catch: (e) => (e instanceof ParseError ? new QueryError({ kind: "bad_data", message: e.message }) : e instanceof QueryError ? e : new QueryError({ kind: "bad_data", message: String(e) }))
  })

/** The value with the query's annotations, if it has any. */
const annotated = (ctx: Ctx, value: Value): Value =>
  ctx.notes.warnings.size + ctx.notes.infos.size === 0 ? value : { ...value, annotations: { warnings: [...ctx.notes.warnings], infos: [...ctx.notes.infos] } }

/** Evaluates a query at one time. */
export const instantQuery = (source: SeriesSource, query: string, timeMs: number, options?: QueryOptions): Effect.Effect<Value, QueryError> =>
  asQueryError(Effect.gen(function*() {
    const expr = yield* withDurations(yield* parseQuery(query, options), 0, 0)
    const ctx = makeCtx(source, timeMs, timeMs, 0, options)
    const v = yield* evaluate(ctx, expr)
    switch (v.kind) {
      case "scalar":
        return annotated(ctx, { type: "scalar", t: timeMs, v: v.values[0]! })
      case "string":
        return annotated(ctx, { type: "string", t: timeMs, v: v.value })
      case "matrix": {
        const series = v.series.map((s) => ({ labels: outputLabels(s), samples: matrixPoints(s) }))
        assertUnique(series.map((s) => s.labels))
        return annotated(ctx, { type: "matrix", series })
      }
      case "vector": {
        const samples = v.series.flatMap((s) => (s.values[0] === undefined ? [] : [{ labels: outputLabels(s), t: timeMs, ...pointValue(s.values[0]) }]))
        assertUnique(samples.map((s) => s.labels))
        const sorted = isSorting(expr) ? sortForFunction(expr, samples) : samples
        return annotated(ctx, { type: "vector", samples: sorted })
      }
    }
  }))

/** Evaluates a query at every step from start to end (inclusive). */
export const rangeQuery = (
  source: SeriesSource,
  query: string,
  startMs: number,
  endMs: number,
  stepMs: number,
  options?: QueryOptions
): Effect.Effect<Value, QueryError> =>
  asQueryError(Effect.gen(function*() {
    if (!(stepMs > 0)) return yield* Effect.fail(new QueryError({ kind: "bad_data", message: "zero or negative query resolution step widths are not accepted. Try a positive integer" }))
    if (endMs < startMs) return yield* Effect.fail(new QueryError({ kind: "bad_data", message: "end timestamp must not be before start time" }))
    const expr = yield* withDurations(yield* parseQuery(query, options), stepMs, endMs - startMs)
    const ctx = makeCtx(source, startMs, endMs, stepMs, options)
    const v = yield* evaluate(ctx, expr)
    switch (v.kind) {
      case "scalar":
        return annotated(ctx, { type: "matrix", series: [{ labels: [], samples: v.values.map((x, i) => ({ t: stepTime(ctx, i), v: x })) }] })
      case "vector": {
        // Series that share labels (their names dropped) merge when no step holds two values.
        const series = checkUnique(v.series.map((s) => ({ labels: outputLabels(s), values: [...s.values] }))).map((s) => ({
          labels: s.labels,
          samples: s.values.flatMap((x, i): Array<Point> => (x === undefined ? [] : [{ t: stepTime(ctx, i), ...pointValue(x) }]))
        })).filter((s) => s.samples.length > 0)
        // Prometheus sorts a range result by labels.
        series.sort((a, b) => compareLabels(a.labels, b.labels))
        return annotated(ctx, { type: "matrix", series })
      }
      default:
        return yield* Effect.fail(new QueryError({ kind: "bad_data", message: `invalid expression type "${v.kind === "matrix" ? "range vector" : "string"}" for range query, must be Scalar or instant Vector` }))
    }
  }))

/** A sample's value as a result point carries it. */
const pointValue = (x: SampleValue): { v: number; h?: FloatHistogram } => (typeof x === "number" ? { v: x } : { v: 0, h: x })

/** A range series' points, floats and histograms merged by time. */
const matrixPoints = (s: MSeries): Array<Point> => {
  const points = Array.from(s.ts, (t, i): Point => ({ t, v: s.vs[i]! }))
  if (s.hts === undefined || s.hs === undefined) return points
  for (let j = 0; j < s.hts.length; j++) points.push({ t: s.hts[j]!, v: 0, h: s.hs[j]! })
  return points.sort((a, b) => a.t - b.t)
}

/** A QueryError thrown anywhere in evaluation is a failure, not a defect. */
const asQueryError = <A>(self: Effect.Effect<A, QueryError>): Effect.Effect<A, QueryError> =>
  Effect.catchDefect(self, (d) => (d instanceof QueryError ? Effect.fail(d) : Effect.die(d)))

const assertUnique = (labelSets: ReadonlyArray<Labels>) => {
  const seen = new Set<string>()
  for (const l of labelSets) {
    const key = sigOf(l)
    if (seen.has(key)) throw new QueryError({ kind: "execution", message: "vector cannot contain metrics with the same labelset" })
    seen.add(key)
  }
}

const sortingFunctions = new Set(["sort", "sort_desc", "sort_by_label", "sort_by_label_desc"])
const isSorting = (expr: Expr): boolean => expr.type === "Call" && sortingFunctions.has(expr.func)

/** Whether `a` sorts before `b` in natural order (runs of digits compared as numbers), as Go's `natsort.Compare`. */
const naturalLess = (a: string, b: string): boolean => {
  const chunksA = a.match(/\d+|\D+/g) ?? []
  const chunksB = b.match(/\d+|\D+/g) ?? []
  for (let i = 0; i < chunksA.length; i++) {
    if (i >= chunksB.length) return false
    const x = chunksA[i]!
    const y = chunksB[i]!
    const numeric = /^\d+$/.test(x) && /^\d+$/.test(y)
    if (numeric ? Number(x) === Number(y) : x === y) {
      if (i === chunksA.length - 1) return true
      if (i === chunksB.length - 1) return false
      continue
    }
    return numeric ? Number(x) < Number(y) : x < y
  }
  return false
}

const sortForFunction = (expr: Expr, samples: Array<InstantSample>): Array<InstantSample> => {
  const call = expr as Call
  if (call.func === "sort_by_label" || call.func === "sort_by_label_desc") {
    const names = call.args.slice(1).map((a) => (a as { value: string }).value)
    const sign = call.func === "sort_by_label_desc" ? -1 : 1
    return [...samples].sort((a, b) => {
      for (const name of names) {
        const x = labelValue(a.labels, name)
        const y = labelValue(b.labels, name)
        if (x === y) continue
        return sign * (naturalLess(x, y) ? -1 : 1)
      }
      return sign * compareLabels(a.labels, b.labels)
    })
  }
  const desc = call.func === "sort_desc"
  // sort and sort_desc pass over histograms.
  return samples.filter((s) => s.h === undefined).sort((a, b) => {
    if (Number.isNaN(a.v)) return 1
    if (Number.isNaN(b.v)) return -1
    return desc ? b.v - a.v : a.v - b.v
  })
}

export type { Call }
