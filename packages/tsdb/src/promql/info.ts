/**
 * `info(v, {selector})` (experimental): the data labels of info metrics (`target_info` by default) joined
 * onto the series of the target they describe, identified by `instance` and `job`.
 */
import { Effect } from "effect"
import type { Labels, Matcher } from "../internal/labels.ts"
import { labelValue, matches } from "../internal/labels.ts"
import type { Call } from "./ast.ts"
import { QueryError } from "./types.ts"
import type { Ctx, EvalValue, SampleValue, VSeries } from "./evalContext.ts"
import { evaluate, fail, sigOf, sortLabelsLocal, vectorOf } from "./evalContext.ts"
import { load, lookback, span } from "./selectors.ts"

/** The labels that say which target an info metric describes, as Prometheus joins them. */
const identifyingLabels = ["instance", "job"]

/**
 * `info(v, {selector})`: each series of `v` gains the data labels of the info series of its target (same
 * `instance` and `job`) at each step: those of `target_info` by default, of the info metrics the
 * selector's `__name__` matchers name otherwise (with only negative ones, among the `*_info` metrics), only
 * the data labels the selector has matchers for when it has any, never one the series has already. A
 * series with no info series at a step stays as it is if every data-label matcher accepts the empty
 * value, else is dropped at that step. Series that are themselves info metrics named by the selector are
 * left as they are.
 */
export const evalInfo = (ctx: Ctx, call: Call): Effect.Effect<EvalValue, QueryError> =>
  Effect.gen(function*() {
    const base = vectorOf(yield* evaluate(ctx, call.args[0]!))
    const selector = call.args[1]
    const given = selector !== undefined && selector.type === "VectorSelector" ? selector.matchers : []
    const nameMatchers = given.filter((m) => m.name === "__name__")
    const dataMatchers = given.filter((m) => m.name !== "__name__")
    const positive = nameMatchers.some((m) => m.type === "=" || m.type === "=~")
    const infoNames: Array<Matcher> = nameMatchers.length === 0
      ? [{ name: "__name__", type: "=", value: "target_info" }]
      : positive
      ? nameMatchers
      : [{ name: "__name__", type: "=~", value: ".+_info" }, ...nameMatchers]
    const named = (labels: Labels) => {
      const name = labelValue(labels, "__name__")
      return infoNames.every((m) => matches(m, name))
    }
    // The info series with, at each step, the time of the sample the lookback finds (or none).
    const { mint, maxt } = span(ctx, undefined, 0, ctx.lookbackMs)
    /** Steps at which an info series has a histogram sample (info samples must be floats). */
    const histogramAt = new Set<number>()
    const infos = (yield* load(ctx, [...infoNames, ...dataMatchers], mint, maxt)).map((s) => {
      const times: Array<number | undefined> = new Array(ctx.steps)
      lookback(ctx, s.timestamps, s.values, undefined, 0, (i, k) => {
        times[i] = s.timestamps[k]!
        if (s.histograms?.[k] !== undefined) histogramAt.add(i)
      })
      return { labels: s.labels, name: labelValue(s.labels, "__name__"), times }
    })
    const signature = (labels: Labels) => identifyingLabels.map((l) => labelValue(labels, l)).join("\xff")
    const bySignature = new Map<string, Array<(typeof infos)[number]>>()
    for (const s of infos) {
      const key = signature(s.labels)
      const list = bySignature.get(key)
      if (list === undefined) bySignature.set(key, [s])
      else list.push(s)
    }
    const wanted = new Set(dataMatchers.map((m) => m.name))
    const emptyAccepted = dataMatchers.every((m) => matches(m, ""))
    const out = new Map<string, VSeries>()
    const put = (labels: Labels, dropName: boolean | undefined, i: number, v: SampleValue) => {
      const key = sigOf(labels)
      const o = out.get(key) ?? { labels, dropName, values: new Array(ctx.steps) }
      o.values[i] = v
      out.set(key, o)
    }
    for (const s of base) {
      const ignored = positive && named(s.labels)
      const candidates = ignored ? [] : bySignature.get(signature(s.labels)) ?? []
      for (let i = 0; i < ctx.steps; i++) {
        const v = s.values[i]
        if (v === undefined) continue
        if (histogramAt.has(i)) fail("execution", "info sample should be float")
        if (ignored) {
          put(s.labels, s.dropName, i, v)
          continue
        }
        // Of the series of one info metric, the one with the newest sample (an info series that changed
        // labels leaves the old one behind within the lookback).
        const newest = new Map<string, (typeof candidates)[number]>()
        for (const c of candidates) {
          const t = c.times[i]
          if (t === undefined) continue
          const best = newest.get(c.name)
          if (best === undefined || best.times[i]! < t) newest.set(c.name, c)
        }
        const present = [...newest.values()]
        if (present.length === 0) {
          if (emptyAccepted) put(s.labels, s.dropName, i, v)
          continue
        }
        const own = new Set(s.labels.map(([n]) => n))
        const added = new Map<string, string>()
        for (const info of present) {
          for (const [n, value] of info.labels) {
            if (n === "__name__" || identifyingLabels.includes(n) || own.has(n) || value === "") continue
            if (wanted.size > 0 && !wanted.has(n)) continue
            const earlier = added.get(n)
            if (earlier !== undefined && earlier !== value) fail("execution", `conflicting label: ${n} (from more than one info metric)`)
            added.set(n, value)
          }
        }
        put(added.size === 0 ? s.labels : sortLabelsLocal([...s.labels, ...added]), s.dropName, i, v)
      }
    }
    return { kind: "vector", series: [...out.values()] }
  })
