/**
 * Running a test script against an engine: its data loaded into a `MemoryStore`, each eval's query run
 * (with promqltest's re-runs of an instant eval: in range mode, and with `@` on its selectors at other
 * times) and judged passed, failed or unsupported, as testRunner.ts describes.
 */
import { Cause, Effect, Exit } from "effect"
import type { Matcher } from "../../internal/labels.ts"
import { matchesAll, sortLabels } from "../../internal/labels.ts"
import type { SeriesSource } from "../../SeriesSource.ts"
import type { Expr } from "../ast.ts"
import type { InstantSample, QueryOptions, Value } from "../types.ts"
import { promqlFeatures, QueryError } from "../types.ts"
import type { EvalCommand } from "./script.ts"
import { experimentalFeatures, goUnquote, parseScript, withoutStrings } from "./script.ts"
import { MemoryStore, type Touched } from "./memoryStore.ts"
import type { Mismatch } from "./compare.ts"
import {
  checkAnnotations,
  checkFailure,
  compareResult,
  compareScalar,
  compareVector,
  formatExpected,
  formatResult,
  mismatch,
  unsorted
} from "./compare.ts"

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
 * The engine (engine.ts), imported when asked (so the runner's parsing and comparison work, and are
 * tested, while the engine does not load); when it cannot be loaded, an engine that answers every query
 * "unsupported" with the reason.
 */
export const loadEngine = async (): Promise<Engine> => {
  try {
    const module = await import("../engine.ts")
    const parser = await import("../parser.ts")
    return { instantQuery: module.instantQuery, rangeQuery: module.rangeQuery, parse: parser.parse }
  } catch (e) {
    const missing = Effect.fail(new QueryError({ kind: "unsupported", message: `engine.ts could not be loaded: ${e instanceof Error ? e.message : String(e)}` }))
    return { instantQuery: () => missing, rangeQuery: () => missing }
  }
}
