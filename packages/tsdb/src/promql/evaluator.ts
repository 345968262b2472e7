/**
 * The PromQL evaluator (Prometheus 3.x semantics) over a `SeriesSource`. `evaluate` evaluates each node
 * once for all steps of the query (evalContext.ts), handing selectors and subqueries (selectors.ts),
 * function calls (functions.ts), aggregations (aggregation.ts) and binary operators (binaryOps.ts) to
 * their modules; `makeCtx` makes a query's context, which carries `evaluate` to them.
 *
 * A sample is a float or a native histogram (histogram.ts): selectors, range functions, aggregations and
 * operators follow Prometheus 3's rules for histograms (nativeHistograms.ts, histogramStats.ts), and
 * float-only functions pass over histogram samples as Prometheus's do.
 */
import { Effect } from "effect"
import * as Limits from "../limits.ts"
import type { SeriesSource } from "../SeriesSource.ts"
import type { Expr } from "./ast.ts"
import type { QueryOptions } from "./types.ts"
import { QueryError } from "./types.ts"
import type { Ctx, EvalValue, MSeries } from "./evalContext.ts"
import { vectorOf } from "./evalContext.ts"
import { evalVectorSelector, rangeInput } from "./selectors.ts"
import { evalCall } from "./functions.ts"
import { evalAggregate } from "./aggregation.ts"
import { evalBinary } from "./binaryOps.ts"

const defaultLookbackMs = 5 * 60_000

/** Evaluates a node at every step of the context. */
export const evaluate = (ctx: Ctx, node: Expr): Effect.Effect<EvalValue, QueryError> =>
  Effect.suspend((): Effect.Effect<EvalValue, QueryError> => {
    switch (node.type) {
      case "NumberLiteral":
        return Effect.succeed({ kind: "scalar", values: new Array(ctx.steps).fill(node.value) })
      case "StringLiteral":
        return Effect.succeed({ kind: "string", value: node.value })
      case "Paren":
        return evaluate(ctx, node.expr)
      case "Unary":
        return Effect.map(evaluate(ctx, node.expr), (v) => {
          if (node.op === "+") return v
          if (v.kind === "scalar") return { kind: "scalar", values: v.values.map((x) => -x) }
          return {
            kind: "vector",
            series: vectorOf(v).map((s) => ({
              labels: s.labels,
              dropName: true,
              values: s.values.map((x) => (x === undefined ? undefined : typeof x === "number" ? -x : x.copy().mul(-1)))
            }))
          }
        })
      case "VectorSelector":
        return evalVectorSelector(ctx, node)
      case "MatrixSelector":
      case "Subquery":
        return Effect.map(rangeInput(ctx, node), (input) => {
          // The window (t - range, t] at the (only) step.
          const t = input.timeAt(0)
          const series: Array<MSeries> = []
          const inWindow = (ts: Float64Array) => {
            let lo = 0
            while (lo < ts.length && ts[lo]! <= t - input.rangeMs) lo++
            let hi = lo
            while (hi < ts.length && ts[hi]! <= t) hi++
            return [lo, hi] as const
          }
          for (const s of input.series) {
            const [lo, hi] = inWindow(s.ts)
            const [hlo, hhi] = s.hts === undefined ? [0, 0] : inWindow(s.hts)
            if (hi <= lo && hhi <= hlo) continue
            // A transient series' columns are reused by the next one: the matrix keeps copies.
            const part = (a: Float64Array, from: number, to: number) => (input.transient ? a.slice(from, to) : a.subarray(from, to))
            const m: MSeries = { labels: s.labels, dropName: s.dropName, ts: part(s.ts, lo, hi), vs: part(s.vs, lo, hi) }
            if (hhi > hlo) {
              m.hts = part(s.hts!, hlo, hhi)
              m.hs = s.hs!.slice(hlo, hhi)
            }
            series.push(m)
          }
          return { kind: "matrix", series, rangeMs: input.rangeMs }
        })
      case "Call":
        return evalCall(ctx, node)
      case "Aggregate":
        return evalAggregate(ctx, node)
      case "Binary":
        return evalBinary(ctx, node)
    }
  }).pipe(
    Effect.catchDefect((d) => (d instanceof QueryError ? Effect.fail(d) : Effect.die(d)))
  )

/** The context of a query from `start` to `end` (inclusive) every `step` ms (0: an instant query). */
export const makeCtx = (source: SeriesSource, start: number, end: number, step: number, options: QueryOptions | undefined): Ctx => ({
  start,
  end,
  queryStart: start,
  queryEnd: end,
  step,
  steps: step === 0 ? 1 : Math.floor((end - start) / step) + 1,
  lookbackMs: options?.lookbackMs ?? defaultLookbackMs,
  source,
  samples: 0,
  samplesMax: options?.samplesMax ?? Limits.querySamplesMax,
  notes: { warnings: new Set(), infos: new Set() },
  statsOnly: false,
  useStartTimestamps: options?.features?.includes("use-start-timestamps") === true,
  evaluate
})
