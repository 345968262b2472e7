/** Paging through a log: older and newer pages, and jumps to an offset or a time (kept in the URL). */
import { useState } from "preact/hooks"
import type { LogMeta, LogRecord } from "./api.ts"
import { formatCount, parseOffset, parseTime } from "./format.ts"
import { pushParams } from "./params.ts"

/** Records per page. */
export const pageSize = 100

export /** Jump to an offset or a time, and page through the log. */
const Browse = (
  { meta, records, next, onReload }: {
    meta: LogMeta | undefined
    records: ReadonlyArray<LogRecord>
    next: number
    onReload: () => void
  }
) => {
  const [offset, setOffset] = useState("")
  const [time, setTime] = useState("")
  const [problem, setProblem] = useState<string | undefined>(undefined)
  const first = meta?.firstOffset ?? 0
  const end = meta?.nextOffset ?? 0
  const shownFirst = records[0]?.offset ?? next
  const go = (changes: Record<string, string | undefined>) => {
    setProblem(undefined)
    pushParams({ from: undefined, fromTime: undefined, ...changes })
  }
  return (
    <div class="browse">
      <div class="row">
        <button data-testid="page-oldest" disabled={shownFirst <= first} onClick={() => go({ from: String(first) })}>⇤ Oldest</button>
        <button
          data-testid="page-older"
          disabled={shownFirst <= first}
          onClick={() => go({ from: String(Math.max(first, shownFirst - pageSize)) })}
        >
          ← Older
        </button>
        <button data-testid="page-newer" disabled={next >= end} onClick={() => go({ from: String(next) })}>Newer →</button>
        <button data-testid="page-newest" onClick={() => (next >= end ? onReload() : go({}))}>Newest ⇥</button>
        <span class="muted">
          {records.length === 0 ? "no records here" : `offsets ${formatCount(shownFirst)}–${formatCount(next - 1)}`}
        </span>
      </div>
      <div class="row">
        <form
          class="row"
          onSubmit={(e) => {
            e.preventDefault()
            const at = parseOffset(offset)
            if (at === undefined) return setProblem("An offset is a whole number, 0 or more.")
            go({ from: String(at) })
          }}
        >
          <input class="short" inputMode="numeric" placeholder="offset" aria-label="Offset" data-testid="jump-offset" value={offset}
            onInput={(e) => setOffset((e.currentTarget as HTMLInputElement).value)} />
          <button type="submit">Go to offset</button>
        </form>
        <form
          class="row"
          onSubmit={(e) => {
            e.preventDefault()
            const at = parseTime(time)
            if (at === undefined) return setProblem("Give a time as 2025-11-21 08:00, -5m, 2h ago, or epoch ms.")
            go({ fromTime: String(at) })
          }}
        >
          <input placeholder="time: 2025-11-21 08:00, -5m" aria-label="Time" data-testid="jump-time" value={time}
            onInput={(e) => setTime((e.currentTarget as HTMLInputElement).value)} />
          <button type="submit">Go to time</button>
        </form>
      </div>
      {problem === undefined ? null : <p class="error">{problem}</p>}
    </div>
  )
}
