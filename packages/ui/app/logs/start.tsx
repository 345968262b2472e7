/**
 * The Live toggle and the choice of where the tail starts: now (the log's next offset), an offset, a
 * time, or the last N records. The choice goes into the URL (`tailFrom`, `tailTime`, `tailLast`) when
 * Live turns on; it can be edited while Live is off.
 */
import { useState } from "preact/hooks"
import { formatTime, parseOffset, parseTime } from "./format.ts"
import { intParam, replaceParams } from "./params.ts"

/** Where a live tail starts: the log's next offset, an offset, a time, or the last N records. */
export type StartMode = "now" | "offset" | "time" | "last"

export const startOfParams = (params: URLSearchParams): { mode: StartMode; value: number } => {
  const from = intParam(params, "tailFrom")
  if (from !== undefined) return { mode: "offset", value: from }
  const time = intParam(params, "tailTime")
  if (time !== undefined) return { mode: "time", value: time }
  const last = intParam(params, "tailLast")
  if (last !== undefined) return { mode: "last", value: last }
  return { mode: "now", value: 0 }
}

/** The Live toggle and where the tail starts (editable while it is off). */
export const LiveToggle = ({ params, live }: { params: URLSearchParams; live: boolean }) => {
  const initial = startOfParams(params)
  const [mode, setMode] = useState<StartMode>(initial.mode)
  const [value, setValue] = useState(
    initial.mode === "now" ? "" : initial.mode === "time" ? formatTime(initial.value) : String(initial.value)
  )
  const [problem, setProblem] = useState<string | undefined>(undefined)
  const toggle = (on: boolean) => {
    setProblem(undefined)
    if (!on) return replaceParams({ live: undefined })
    const start: Record<string, string | undefined> = { tailFrom: undefined, tailTime: undefined, tailLast: undefined }
    if (mode === "offset" || mode === "last") {
      const n = parseOffset(value)
      if (n === undefined) return setProblem(mode === "last" ? "Give how many records." : "Give an offset (0 or more).")
      start[mode === "last" ? "tailLast" : "tailFrom"] = String(n)
    } else if (mode === "time") {
      const ms = parseTime(value)
      if (ms === undefined) return setProblem("Give a time as 2025-11-21 08:00, -5m, 2h ago, or epoch ms.")
      start["tailTime"] = String(ms)
    }
    replaceParams({ live: "1", ...start })
  }
  return (
    <>
      <label class={`live-toggle${live ? " on" : ""}`}>
        <input type="checkbox" data-testid="tail-toggle" checked={live} onChange={(e) => toggle((e.currentTarget as HTMLInputElement).checked)} />
        Live
      </label>
      <label class="start">
        <span class="muted">from</span>
        <select
          value={mode}
          disabled={live}
          data-testid="tail-start"
          aria-label="Live tail starts"
          onChange={(e) => setMode((e.currentTarget as HTMLSelectElement).value as StartMode)}
        >
          <option value="now">now</option>
          <option value="offset">offset</option>
          <option value="time">time</option>
          <option value="last">last N records</option>
        </select>
      </label>
      {mode === "now" ? null : (
        <input
          class="short"
          disabled={live}
          data-testid="tail-start-value"
          aria-label="Start value"
          placeholder={mode === "time" ? "-5m or a date" : mode === "last" ? "N" : "offset"}
          value={value}
          onInput={(e) => setValue((e.currentTarget as HTMLInputElement).value)}
        />
      )}
      {problem === undefined ? null : <span class="error inline">{problem}</span>}
    </>
  )
}
