/**
 * Binary operators between scalars and instant vectors: arithmetic, comparisons (filtering, or 0/1 with
 * `bool`), the set operators `and`, `or`, `unless`, and the native histogram trim operators `</`, `>/`;
 * with vector matching (`on`, `ignoring`, `group_left`, `group_right`) and the experimental fill
 * modifiers.
 */
import { Effect } from "effect"
import type { Labels } from "../internal/labels.ts"
import type { Binary } from "./ast.ts"
import * as NH from "./nativeHistograms.ts"
import { QueryError } from "./types.ts"
import type { Ctx, EvalValue, SampleValue, VSeries } from "./evalContext.ts"
import { evaluate, fail, inform, sigOf, sortLabelsLocal, warn } from "./evalContext.ts"

const arith = (op: string, a: number, b: number): number => {
  switch (op) {
    case "+":
      return a + b
    case "-":
      return a - b
    case "*":
      return a * b
    case "/":
      return a / b
    case "%":
      return b === 0 ? Number.NaN : a % b
    case "^":
      return Math.pow(a, b)
    case "atan2":
      return Math.atan2(a, b)
  }
  return Number.NaN
}

const comparison = new Set(["==", "!=", ">", "<", ">=", "<="])

/** The histogram trim operators: `</` keeps the observations below a value, `>/` those above. */
const isTrim = (op: string) => op === "</" || op === ">/"

/**
 * A binary operator where a native histogram (or a trim operator) is involved, as Prometheus's
 * `vectorElemBinop`: `h * x`, `x * h`, `h / x`, `h + h`, `h - h` (a gauge), `h == h`, `h != h` (keeping
 * the left; undefined when they differ), `h </ x`, `h >/ x`; null for every other combination (the
 * element dropped, even with `bool`), with Prometheus's annotation.
 */
const elementBinop = (ctx: Ctx, op: string, a: SampleValue, b: SampleValue): SampleValue | undefined | null => {
  const incompatible = () => {
    const type = (x: SampleValue) => (typeof x === "number" ? "float" : "histogram")
    inform(ctx, `incompatible sample types encountered for binary operator ${JSON.stringify(op)}: ${type(a)} ${op} ${type(b)}`)
    return null
  }
  if (typeof a === "number") {
    return typeof b !== "number" && op === "*" ? b.copy().mul(a).compact(0) : incompatible()
  }
  if (typeof b === "number") {
    switch (op) {
      case "*":
        return a.copy().mul(b).compact(0)
      case "/":
        return a.copy().div(b).compact(0)
      case "</":
        return a.copy().trimBuckets(b, true)
      case ">/":
        return a.copy().trimBuckets(b, false)
    }
    return incompatible()
  }
  switch (op) {
    case "+":
    case "-": {
      const r = a.copy()
      const operation = op === "+" ? "addition" : "subtraction"
      let collision = false
      const seen = NH.newSeen()
      if (!NH.tryCombine(() => {
        const info = op === "+" ? r.add(b) : r.sub(b)
        collision = info.counterResetCollision
        return info
      }, seen)) {
        warn(ctx, `incompatible bucket layout encountered for binary operator ${op}`)
        return null
      }
      if (seen.reconciled) inform(ctx, `mismatched custom buckets were reconciled during ${operation}`)
      if (collision) {
        // As Prometheus: a warning, and the element is not kept.
        warn(ctx, `conflicting counter resets during histogram ${operation}`)
        return null
      }
      if (op === "-") r.counterResetHint = "gauge"
      return r.compact(0)
    }
    case "==":
      return a.equals(b) ? a : undefined
    case "!=":
      return a.equals(b) ? undefined : a
  }
  return incompatible()
}
const compare = (op: string, a: number, b: number): boolean => {
  switch (op) {
    case "==":
      return a === b
    case "!=":
      return a !== b
    case ">":
      return a > b
    case "<":
      return a < b
    case ">=":
      return a >= b
    case "<=":
      return a <= b
  }
  return false
}

/** The labels a series matches on: those of `on(...)`, or all but the name and those of `ignoring(...)`. */
const matchLabels = (labels: Labels, on: boolean, names: ReadonlyArray<string>): Labels =>
  on ? labels.filter(([n]) => names.includes(n)) : labels.filter(([n]) => n !== "__name__" && !names.includes(n))
const matchSig = (labels: Labels, on: boolean, names: ReadonlyArray<string>) => sigOf(matchLabels(labels, on, names))

export const evalBinary = (ctx: Ctx, node: Binary): Effect.Effect<EvalValue, QueryError> =>
  Effect.gen(function*() {
    const lhs = yield* evaluate(ctx, node.lhs)
    const rhs = yield* evaluate(ctx, node.rhs)
    const op = node.op
    const isCmp = comparison.has(op)
    const trim = isTrim(op)
    if (lhs.kind === "scalar" && rhs.kind === "scalar") {
      return {
        kind: "scalar",
        values: lhs.values.map((a, i) => {
          const b = rhs.values[i]!
          return isCmp ? (compare(op, a, b) ? 1 : 0) : arith(op, a, b)
        })
      }
    }
    if (lhs.kind === "vector" && rhs.kind === "scalar" || lhs.kind === "scalar" && rhs.kind === "vector") {
      const vecLeft = lhs.kind === "vector"
      const vec = (vecLeft ? lhs : rhs) as { series: Array<VSeries> }
      const sc = (vecLeft ? rhs : lhs) as { values: Array<number> }
      const out: Array<VSeries> = []
      for (const s of vec.series) {
        const values = s.values.map((x, i): SampleValue | undefined => {
          if (x === undefined) return undefined
          if (typeof x !== "number" || trim) {
            const r = elementBinop(ctx, op, vecLeft ? x : sc.values[i]!, vecLeft ? sc.values[i]! : x)
            if (r === null) return undefined
            if (node.bool) return r === undefined ? 0 : 1
            return r === undefined ? undefined : isCmp ? x : r
          }
          const a = vecLeft ? x : sc.values[i]!
          const b = vecLeft ? sc.values[i]! : x
          if (isCmp) {
            const ok = compare(op, a, b)
            if (node.bool) return ok ? 1 : 0
            return ok ? x : undefined
          }
          return arith(op, a, b)
        })
        if (values.some((v) => v !== undefined)) {
          // Filtering comparisons and the trim operators keep the metric name.
          out.push({ labels: s.labels, dropName: (isCmp && !node.bool) || isTrim(op) ? s.dropName : true, values })
        }
      }
      return { kind: "vector", series: out }
    }
    if (lhs.kind !== "vector" || rhs.kind !== "vector") return fail("bad_data", `binary expression must contain only scalar and instant vector types`) as never
    const matching = node.matching ?? { card: op === "and" || op === "or" || op === "unless" ? "many-to-many" : "one-to-one", on: false, labels: [], include: [] }
    const names = matching.labels
    if (op === "and" || op === "or" || op === "unless") {
      const out: Array<VSeries> = []
      for (let i = 0; i < 1; i++) {
        // Per step: which signatures the right side has.
        const rightSigs: Array<Set<string>> = Array.from({ length: ctx.steps }, () => new Set())
        for (const s of rhs.series) {
          const sig = matchSig(s.labels, matching.on, names)
          s.values.forEach((v, j) => {
            if (v !== undefined) rightSigs[j]!.add(sig)
          })
        }
        if (op === "or") {
          const leftSigs: Array<Set<string>> = Array.from({ length: ctx.steps }, () => new Set())
          for (const s of lhs.series) {
            const sig = matchSig(s.labels, matching.on, names)
            s.values.forEach((v, j) => {
              if (v !== undefined) leftSigs[j]!.add(sig)
            })
            out.push(s)
          }
          for (const s of rhs.series) {
            const sig = matchSig(s.labels, matching.on, names)
            const values = s.values.map((v, j) => (v !== undefined && !leftSigs[j]!.has(sig) ? v : undefined))
            if (values.some((v) => v !== undefined)) out.push({ labels: s.labels, dropName: s.dropName, values })
          }
          return { kind: "vector", series: mergeSameLabels(out) }
        }
        for (const s of lhs.series) {
          const sig = matchSig(s.labels, matching.on, names)
          const values = s.values.map((v, j) => {
            if (v === undefined) return undefined
            const has = rightSigs[j]!.has(sig)
            return (op === "and" ? has : !has) ? v : undefined
          })
          if (values.some((v) => v !== undefined)) out.push({ labels: s.labels, dropName: s.dropName, values })
        }
      }
      return { kind: "vector", series: out }
    }
    // Arithmetic and comparison between vectors, per step, by matching signature.
    const oneSide = matching.card === "one-to-many" ? lhs.series : rhs.series
    const manySide = matching.card === "one-to-many" ? rhs.series : lhs.series
    const manyIsLeft = matching.card !== "one-to-many"
    const out = new Map<string, VSeries>()
    // Signatures do not change from step to step.
    const oneSigs = oneSide.map((s) => matchSig(s.labels, matching.on, names))
    const manySigs = manySide.map((s) => matchSig(s.labels, matching.on, names))
    /** By many-side series: its result's labels (and their key) with each one-side series it matched. */
    const resultOf: Array<Map<VSeries | undefined, { readonly labels: Labels; readonly key: string }> | undefined> = new Array(manySide.length)
    // Fill modifiers (experimental): the value a missing match takes. `fill_right` fills the "one" side
    // (the right, or the left of a group_right), `fill_left` the "many" side, as Prometheus swaps the sides
    // of a group_right.
    const oneFill = matching.fillRight
    const manyFill = matching.fillLeft
    /** The operator on a many-side value `x` and a one-side value `y`: a comparison without bool keeps the left. */
    const apply = (x: SampleValue, y: SampleValue): SampleValue | undefined => {
      const a = manyIsLeft ? x : y
      const b = manyIsLeft ? y : x
      if (typeof a !== "number" || typeof b !== "number" || trim) {
        const r = elementBinop(ctx, op, a, b)
        if (r === null) return undefined
        if (node.bool) return r === undefined ? 0 : 1
        return r
      }
      if (!isCmp) return arith(op, a, b)
      const ok = compare(op, a, b)
      return node.bool ? (ok ? 1 : 0) : ok ? a : undefined
    }
    /** Results of one-side series no many-side series matched (filled), by one-side series. */
    const filledOf = new Map<VSeries, { readonly labels: Labels; readonly key: string }>()
    for (let i = 0; i < ctx.steps; i++) {
      const ones = new Map<string, VSeries>()
      for (const [k, s] of oneSide.entries()) {
        if (s.values[i] === undefined) continue
        const sig = oneSigs[k]!
        if (ones.has(sig)) {
          fail(
            "execution",
            matching.card === "one-to-one"
              ? "found duplicate series for the match group on the right hand-side of the operation: many-to-many matching not allowed: matching labels must be unique on one side"
              : "found duplicate series for the match group, many-to-many matching not allowed: matching labels must be unique on one side"
          )
        }
        ones.set(sig, s)
      }
      const seenMany = new Set<string>()
      const matched = new Set<string>()
      for (const [k, s] of manySide.entries()) {
        const x = s.values[i]
        if (x === undefined) continue
        const sig = manySigs[k]!
        const other = ones.get(sig)
        if (other === undefined && oneFill === undefined) continue
        matched.add(sig)
        if (matching.card === "one-to-one") {
          if (seenMany.has(sig)) {
            fail("execution", "found duplicate series for the match group on the left hand-side of the operation: many-to-many matching not allowed: matching labels must be unique on one side")
          }
          seenMany.add(sig)
        }
        const value = apply(x, other === undefined ? oneFill! : other.values[i]!)
        if (value === undefined) continue
        // The result's labels: a function of the pair, worked out once for it.
        const filter = isCmp && !node.bool
        const pairs = resultOf[k] ?? (resultOf[k] = new Map())
        let result = pairs.get(other)
        if (result === undefined) {
          let labels: Labels
          if (matching.card === "one-to-one") {
            labels = filter ? s.labels : matching.on ? s.labels.filter(([n]) => names.includes(n)) : s.labels.filter(([n]) => !names.includes(n))
          } else {
            // A filled "one" side has no labels to copy.
            const copied = matching.include.map((n) => [n, other?.labels.find(([k]) => k === n)?.[1] ?? ""] as const)
            labels = sortLabelsLocal([...s.labels.filter(([n]) => !matching.include.includes(n)), ...copied.filter(([, v]) => v !== "")])
          }
          result = { labels, key: sigOf(labels) }
          pairs.set(other, result)
        }
        const { labels, key } = result
        const o = out.get(key) ?? { labels, dropName: filter ? s.dropName : true, values: new Array(ctx.steps) }
        if (o.values[i] !== undefined) fail("execution", "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)")
        o.values[i] = value
        out.set(key, o)
      }
      if (manyFill === undefined) continue
      // One-side series no many-side series matched: against the filled value, labelled by their match group.
      for (const [sig, one] of ones) {
        if (matched.has(sig)) continue
        const value = apply(manyFill, one.values[i]!)
        if (value === undefined) continue
        let result = filledOf.get(one)
        if (result === undefined) {
          const labels = matchLabels(one.labels, matching.on, names)
          result = { labels, key: sigOf(labels) }
          filledOf.set(one, result)
        }
        const o = out.get(result.key) ?? { labels: result.labels, dropName: true, values: new Array(ctx.steps) }
        if (o.values[i] !== undefined) fail("execution", "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)")
        o.values[i] = value
        out.set(result.key, o)
      }
    }
    return { kind: "vector", series: [...out.values()] }
  })

const mergeSameLabels = (series: Array<VSeries>): Array<VSeries> => {
  const seen = new Map<string, VSeries>()
  for (const s of series) {
    const key = sigOf(s.labels)
    const o = seen.get(key)
    if (o === undefined) seen.set(key, { labels: s.labels, dropName: s.dropName, values: [...s.values] })
    else s.values.forEach((v, i) => {
      if (o.values[i] === undefined) o.values[i] = v
    })
  }
  return [...seen.values()]
}
