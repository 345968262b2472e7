/**
 * One query panel: the editor and Execute button, the Table/Graph tabs, the graph's range, end, step and
 * stacking controls, and the result with its errors, warnings and stats. Its settings live in the URL (the
 * page passes them in and writes changes back); it runs its query whenever they change or Execute is pressed.
 */
import { useEffect, useRef, useState } from "preact/hooks"
import { PromQLEditor } from "./editor.tsx"
import { Graph } from "./graph.tsx"
import type { PanelState, Tab } from "./params.ts"
import { seriesCount } from "./result.ts"
import { graphWindow, type Outcome, runPanel } from "./run.ts"
import { ResultTable } from "./table.tsx"
import { formatDuration, parseEnd, rangePresets, stepRange, toLocalInput } from "./time.ts"

export interface PanelProps {
  readonly state: PanelState
  readonly onChange: (patch: Partial<PanelState>) => void
  /** Absent when this is the only panel. */
  readonly onRemove?: (() => void) | undefined
}

interface Run {
  readonly loading: boolean
  readonly outcome?: Outcome | undefined
  readonly error?: string | undefined
}

const tabs: ReadonlyArray<{ readonly tab: Tab; readonly title: string }> = [
  { tab: "table", title: "Table" },
  { tab: "graph", title: "Graph" }
]

const valueOf = (event: Event): string => (event.currentTarget as HTMLInputElement | HTMLSelectElement).value

/** Runs the panel's query when its settings change or `runCount` is bumped; keeps the last answer while loading. */
const useQuery = (state: PanelState, runCount: number): Run => {
  const [run, setRun] = useState<Run>({ loading: false })
  useEffect(() => {
    if (state.expr.trim() === "") {
      setRun({ loading: false })
      return
    }
    // Settings changed again (or the panel went away) before the answer came: drop it.
    let stale = false
    setRun((previous) => ({ ...previous, loading: true }))
    runPanel(state).then(
      (outcome) => {
        if (!stale) setRun({ loading: false, outcome })
      },
      (error: unknown) => {
        if (!stale) setRun({ loading: false, error: error instanceof Error ? error.message : String(error) })
      }
    )
    return () => void (stale = true)
  }, [state.expr, state.tab, state.range, state.end, state.step, runCount])
  return run
}

/** The graph's range (with − and + through the presets), end time (empty: now), step and stacking. */
const GraphControls = ({ state, onChange, resolvedStep }: PanelProps & { resolvedStep: string }) => {
  const endMs = parseEnd(state.end)
  const timing = graphWindow(state)
  const options = (rangePresets as ReadonlyArray<string>).includes(state.range) ? rangePresets : [state.range, ...rangePresets]
  return (
    <div class="row graph-controls">
      <div class="control-group">
        <button type="button" title="Shorter range" data-testid="range-shorter" onClick={() => onChange({ range: stepRange(state.range, -1) })}>−</button>
        <select aria-label="Range" data-testid="range-select" value={state.range} onChange={(e) => onChange({ range: valueOf(e) })}>
          {options.map((range) => <option key={range} value={range}>{range}</option>)}
        </select>
        <button type="button" title="Longer range" data-testid="range-longer" onClick={() => onChange({ range: stepRange(state.range, 1) })}>+</button>
      </div>
      <div class="control-group">
        <input
          type="datetime-local"
          step="1"
          aria-label="End time"
          title="End time (empty: now)"
          data-testid="end-input"
          value={endMs === undefined ? "" : toLocalInput(endMs)}
          onChange={(e) => {
            const text = valueOf(e)
            const ms = text === "" ? undefined : new Date(text).getTime()
            onChange({ end: ms === undefined || Number.isNaN(ms) ? "" : new Date(ms).toISOString() })
          }}
        />
        {state.end !== "" ? <button type="button" title="End at now" data-testid="end-now" onClick={() => onChange({ end: "" })}>now</button> : null}
      </div>
      <label class="control-group">
        <span class="muted">Step</span>
        <input
          class={timing.badStep ? "step-input invalid" : "step-input"}
          aria-label="Step"
          data-testid="step-input"
          placeholder="auto"
          value={state.step}
          size={7}
          onChange={(e) => onChange({ step: valueOf(e).trim() })}
        />
        <span class="muted" data-testid="resolved-step">{resolvedStep}</span>
      </label>
      <label class="control-group">
        <input type="checkbox" data-testid="stacked" checked={state.stacked} onChange={(e) => onChange({ stacked: (e.currentTarget as HTMLInputElement).checked })} />
        stacked
      </label>
    </div>
  )
}

export const QueryPanel = ({ state, onChange, onRemove }: PanelProps) => {
  const draft = useRef(state.expr)
  const [runCount, setRunCount] = useState(0)
  const run = useQuery(state, runCount)

  /** Runs `text`: written to the URL if it changed (which runs it), and run again regardless. */
  const execute = (text: string) => {
    if (text !== state.expr) onChange({ expr: text })
    setRunCount((n) => n + 1)
  }
  /** Settings change with the text being edited, as Prometheus's UI does. */
  const change = (patch: Partial<PanelState>) => onChange(draft.current !== state.expr ? { expr: draft.current, ...patch } : patch)

  const timing = graphWindow(state)
  const resolvedStep = `${timing.autoStep ? "auto: " : ""}${formatDuration(timing.stepSeconds)}${timing.badStep ? " (invalid step ignored)" : ""}`
  const outcome = run.outcome !== undefined && run.outcome.kind === state.tab ? run.outcome : undefined

  return (
    <section class="panel query-panel" data-testid="query-panel">
      <div class="query-row">
        <PromQLEditor value={state.expr} onDraft={(text) => void (draft.current = text)} onRun={execute} />
        <button type="button" class="primary" data-testid="run-query" onClick={() => execute(draft.current)}>Execute</button>
      </div>
      <div class="tabs panel-tabs">
        {tabs.map(({ tab, title }) => (
          <button
            key={tab}
            type="button"
            class={state.tab === tab ? "active" : undefined}
            data-testid={`tab-${tab}`}
            onClick={() => change({ tab })}
          >
            {title}
          </button>
        ))}
        <span class="spacer" />
        <span class="muted query-stats" data-testid="query-stats">
          {run.loading ? "Loading… " : ""}
          {outcome !== undefined
            ? `${outcome.kind === "table" ? seriesCount(outcome.result) : outcome.series.length} series · ${Math.round(outcome.elapsedMs)} ms${outcome.kind === "graph" ? ` · step ${formatDuration(outcome.step)}` : ""}`
            : ""}
        </span>
        {onRemove !== undefined ? (
          <button type="button" class="link" title="Remove this panel" data-testid="remove-panel" onClick={onRemove}>Remove</button>
        ) : null}
      </div>
      {state.tab === "graph" ? <GraphControls state={state} onChange={change} resolvedStep={resolvedStep} /> : null}
      {run.error !== undefined ? <div class="error" data-testid="query-error">{run.error}</div> : null}
      {run.error === undefined && outcome !== undefined
        ? outcome.warnings.map((warning, i) => <div key={i} class="warning" data-testid="query-warning">{warning}</div>)
        : null}
      {run.error !== undefined || outcome === undefined
        ? state.expr.trim() === "" ? <p class="muted empty">Enter an expression and press Enter or Execute.</p> : null
        : outcome.kind === "table"
          ? <ResultTable result={outcome.result} />
          : <Graph series={outcome.series} start={outcome.start} end={outcome.end} step={outcome.step} stacked={state.stacked} />}
    </section>
  )
}
