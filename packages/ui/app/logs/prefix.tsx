/** A live tail of every log under a prefix (`/logs?prefix=P&live=1`): records of many logs, with their keys. */
import { useRef, useState } from "preact/hooks"
import type { Route } from "../router.ts"
import type { LogRecord } from "./api.ts"
import { LiveMessage, LiveStatus } from "./controls.tsx"
import { FilteredRecords } from "./filtered.tsx"
import { liveCap, useLiveTail } from "./live.ts"

export const PrefixTail = ({ route, prefix }: { route: Route; prefix: string }) => {
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
      <FilteredRecords
        params={route.params}
        records={records}
        released={released}
        showKey={true}
        emptyText="Waiting for appends to logs under this prefix…"
      />
    </section>
  )
}
