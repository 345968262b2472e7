/** A live tail of every log under a prefix (`/logs?prefix=P&live=1`): records of many logs, with their keys. */
import { useRef, useState } from "preact/hooks"
import type { Route } from "../router.ts"
import type { LogRecord } from "./api.ts"
import { BinaryToggle, FilterInput, LiveMessage, LiveStatus } from "./controls.tsx"
import { formatCount } from "./format.ts"
import { liveCap, useLiveTail } from "./live.ts"
import { replaceParams } from "./params.ts"
import { matches, RecordList } from "./records.tsx"
import type { BinaryMode } from "./value.ts"

export const PrefixTail = ({ route, prefix }: { route: Route; prefix: string }) => {
  const filter = (route.params.get("filter") ?? "").toLowerCase()
  const binary: BinaryMode = route.params.get("bin") === "base64" ? "base64" : "hex"
  const [records, setRecords] = useState<Array<LogRecord>>([])
  const latest = useRef(records)
  latest.current = records
  const [released, setReleased] = useState(0)

  const tail = useLiveTail({
    id: `prefix:${prefix}`,
    resumable: false,
    path: () => `/v1/tail?encoding=base64${prefix === "" ? "" : `&prefix=${encodeURIComponent(prefix)}`}`,
    onRecords: (batch) => {
      const all = latest.current.concat(batch)
      const over = Math.max(0, all.length - liveCap)
      if (over > 0) setReleased((n) => n + over)
      latest.current = over > 0 ? all.slice(over) : all
      setRecords(latest.current)
    }
  })

  const shown = filter === "" ? records : records.filter((r) => matches(r, filter))
  return (
    <section class="panel records-panel" data-testid="prefix-tail-panel">
      <div class="row live-bar">
        <strong>Live: {prefix === "" ? "all logs" : <>logs under <code>{prefix}</code></>}</strong>
        <LiveStatus live={tail} />
        <button onClick={() => {
          latest.current = []
          setRecords([])
          setReleased(0)
        }}>Clear</button>
      </div>
      <LiveMessage live={tail} />
      <div class="row tools">
        <FilterInput value={route.params.get("filter") ?? ""} onInput={(v) => replaceParams({ filter: v === "" ? undefined : v })} />
        {records.some((r) => r.value.kind === "binary")
          ? <BinaryToggle mode={binary} onChange={(m) => replaceParams({ bin: m === "hex" ? undefined : m })} />
          : null}
        {filter === "" ? null : <span class="muted">{formatCount(shown.length)} of {formatCount(records.length)} match</span>}
      </div>
      {released > 0
        ? <p class="muted">Showing the newest {formatCount(liveCap)}; {formatCount(released)} older records left the page.</p>
        : null}
      <RecordList
        records={shown}
        showKey={true}
        binary={binary}
        empty={filter !== "" && records.length > 0 ? "No record matches the filter." : "Waiting for appends to logs under this prefix…"}
      />
    </section>
  )
}
