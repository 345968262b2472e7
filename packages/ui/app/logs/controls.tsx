/** Controls shared by the log view and the prefix tail: live status, pause, filter, binary display. */
import { formatCount, formatRate } from "./format.ts"
import type { LiveTail } from "./live.ts"
import type { BinaryMode } from "./value.ts"

const stateText = (live: LiveTail): string => {
  const { status } = live
  switch (status.state) {
    case "connecting":
      return "connecting…"
    case "open":
      return "live"
    case "retrying":
      return "reconnecting…"
    case "failed":
      return "stopped"
    case "stopped":
      return live.suspended ? "paused, disconnected" : "off"
  }
}

/** The tail's state, its rate, and the Pause button with what waits in the buffer. */
export const LiveStatus = ({ live }: { live: LiveTail }) => (
  <>
    <span class={`live-state ${live.status.state}`} data-testid="tail-status" title={live.status.message}>
      <span class="dot" /> {stateText(live)}
    </span>
    <span class="mono" data-testid="tail-rate" title="records per second over the last 5 seconds">
      {formatRate(live.rate)} rec/s
    </span>
    <button data-testid="tail-pause" aria-pressed={live.paused} onClick={() => live.setPaused(!live.paused)}>
      {live.paused ? "Resume" : "Pause"}
    </button>
    {live.paused
      ? (
        <span class="muted" data-testid="tail-buffered">
          {formatCount(live.buffered)} buffered
          {live.suspended ? ` (buffer full: reading stopped until Resume)` : ""}
        </span>
      )
      : null}
    {live.dropped > 0 ? <span class="muted">{formatCount(live.dropped)} dropped while paused</span> : null}
  </>
)

/** The message of a tail that is retrying or failed. */
export const LiveMessage = ({ live }: { live: LiveTail }) => {
  const { status } = live
  if (status.message === undefined) return null
  return <p class={status.state === "failed" ? "error" : "warning"} data-testid="tail-message">{status.message}</p>
}

/** The text filter over shown records (value, key, headers). */
export const FilterInput = ({ value, onInput }: { value: string; onInput: (value: string) => void }) => (
  <input
    type="search"
    class="filter"
    placeholder="Filter: value, key, headers"
    aria-label="Filter records"
    data-testid="record-filter"
    value={value}
    onInput={(e) => onInput((e.currentTarget as HTMLInputElement).value)}
  />
)

/** How binary values are shown: hex dump or base64. */
export const BinaryToggle = ({ mode, onChange }: { mode: BinaryMode; onChange: (mode: BinaryMode) => void }) => (
  <span class="segmented" role="group" aria-label="Binary values as">
    <span class="muted">binary as</span>
    {(["hex", "base64"] as const).map((m) => (
      <button
        key={m}
        class={mode === m ? "active" : undefined}
        aria-pressed={mode === m}
        data-testid={`binary-${m}`}
        onClick={() => onChange(m)}
      >
        {m}
      </button>
    ))}
  </span>
)
