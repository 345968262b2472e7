/** Runs a panel's query against the Prometheus API: instant for the Table tab, range for the Graph tab. */
import { promApi } from "../api.ts"
import type { PanelState } from "./params.ts"
import type { QueryResult, RangeSeries } from "./result.ts"
import { autoStep, parseDuration, parseEnd } from "./time.ts"

/** What the Table tab shows. */
export interface TableOutcome {
  readonly kind: "table"
  readonly result: QueryResult
  readonly warnings: ReadonlyArray<string>
  readonly elapsedMs: number
}

/** What the Graph tab shows: the series and the grid they were asked on (seconds). */
export interface GraphOutcome {
  readonly kind: "graph"
  readonly series: ReadonlyArray<RangeSeries>
  readonly start: number
  readonly end: number
  readonly step: number
  readonly warnings: ReadonlyArray<string>
  readonly elapsedMs: number
}

export type Outcome = TableOutcome | GraphOutcome

/** The graph's window as the panel asks for it: range and step in seconds, end in ms (now when unset). */
export interface Window {
  readonly rangeSeconds: number
  readonly stepSeconds: number
  /** Whether the step came from the range rather than the panel's step field. */
  readonly autoStep: boolean
  /** True when the step field holds something that is not a duration (it is then ignored). */
  readonly badStep: boolean
}

export const graphWindow = (panel: PanelState): Window => {
  const rangeSeconds = parseDuration(panel.range) ?? 3600
  const given = parseDuration(panel.step)
  return {
    rangeSeconds,
    stepSeconds: given ?? autoStep(rangeSeconds),
    autoStep: given === undefined,
    badStep: panel.step.trim() !== "" && given === undefined
  }
}

const seconds = (ms: number): string => (ms / 1000).toFixed(3)

/** Runs `panel`'s expression for its tab; throws ApiError with Prometheus's message when the query fails. */
export const runPanel = async (panel: PanelState): Promise<Outcome> => {
  const endMs = parseEnd(panel.end) ?? Date.now()
  const began = performance.now()
  if (panel.tab === "table") {
    const { data, warnings } = await promApi<QueryResult>("/api/v1/query", { query: panel.expr, time: seconds(endMs) })
    return { kind: "table", result: data, warnings, elapsedMs: performance.now() - began }
  }
  const { rangeSeconds, stepSeconds } = graphWindow(panel)
  const end = Number(seconds(endMs))
  const start = Number(seconds(endMs - rangeSeconds * 1000))
  const { data, warnings } = await promApi<QueryResult>("/api/v1/query_range", {
    query: panel.expr,
    start: String(start),
    end: String(end),
    step: String(stepSeconds)
  })
  const series = data.resultType === "matrix" ? data.result : []
  return { kind: "graph", series, start, end, step: stepSeconds, warnings, elapsedMs: performance.now() - began }
}
