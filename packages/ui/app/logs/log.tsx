/**
 * One log's page (`/logs?key=K`): its metadata, its records a page at a time (jump to an offset or a
 * time, older and newer pages), or live over the tail WebSocket; the append form and consumer groups.
 */
import { useEffect, useMemo, useRef, useState } from "preact/hooks"
import { onLinkClick, type Route } from "../router.ts"
import { getMeta, type LogMeta, type LogRecord, logPath, readRecords, type ReadStart } from "./api.ts"
import { AppendForm } from "./append.tsx"
import { Browse, pageSize } from "./browse.tsx"
import { LiveMessage, LiveStatus } from "./controls.tsx"
import { FilteredRecords } from "./filtered.tsx"
import { Groups } from "./groups.tsx"
import { liveCap, useLiveTail } from "./live.ts"
import { MetaStrip } from "./meta.tsx"
import { intParam } from "./params.ts"
import { LiveToggle, startOfParams } from "./start.tsx"

export const LogView = ({ route, logKey }: { route: Route; logKey: string }) => {
  const params = route.params
  const from = intParam(params, "from")
  const fromTime = intParam(params, "fromTime")
  const live = params.get("live") === "1"
  const start = startOfParams(params)

  const [meta, setMeta] = useState<LogMeta | undefined>(undefined)
  const [records, setRecords] = useState<Array<LogRecord>>([])
  /** The records as last set, for the tail's callback (which runs outside renders). */
  const latest = useRef(records)
  latest.current = records
  /** A metadata refresh due a second after live records arrive. */
  const metaTimer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined)
  useEffect(() => () => clearTimeout(metaTimer.current), [])
  /** The offset after the last record shown. */
  const [next, setNext] = useState(0)
  const [loaded, setLoaded] = useState(false)
  const [error, setError] = useState<string | undefined>(undefined)
  const [reload, setReload] = useState(0)
  /** How many records the live list let go of to stay under its cap. */
  const [released, setReleased] = useState(0)

  // Meta, then the page asked for (by default the newest records).
  useEffect(() => {
    let cancelled = false
    setError(undefined)
    void (async () => {
      try {
        const m = await getMeta(logKey)
        const first = m?.firstOffset ?? 0
        const readStart: ReadStart = fromTime !== undefined
          ? { fromTime }
          : { from: from !== undefined ? Math.max(from, first) : Math.max(first, (m?.nextOffset ?? 0) - pageSize) }
        const page = await readRecords(logKey, readStart, pageSize)
        if (cancelled) return
        setMeta(m)
        setRecords(page.records)
        setNext(page.next)
        setReleased(0)
      } catch (e) {
        if (!cancelled) setError(e instanceof Error ? e.message : String(e))
      } finally {
        if (!cancelled) setLoaded(true)
      }
    })()
    return () => {
      cancelled = true
    }
  }, [logKey, from, fromTime, reload])

  const refreshMeta = () =>
    void getMeta(logKey).then(setMeta, (e: unknown) => setError(e instanceof Error ? e.message : String(e)))

  // A live session starts each time Live turns on (or its start changes), once the first load is in.
  const liveId = live && loaded ? `${start.mode}:${start.value}` : undefined

  /** Where the tail starts and whether the records shown lead straight into it. */
  const liveStart = useMemo(() => {
    const end = Math.max(meta?.nextOffset ?? 0, next)
    switch (start.mode) {
      case "now":
        // From what is shown when it reaches the end (nothing appended meanwhile is missed), else from the end.
        return next >= (meta?.nextOffset ?? 0) ? { query: `from=${next}`, keep: true } : { query: `from=${end}`, keep: false }
      case "offset":
        return { query: `from=${start.value}`, keep: false }
      case "time":
        return { query: `fromTime=${start.value}`, keep: false }
      case "last":
        return { query: `from=${Math.max(meta?.firstOffset ?? 0, end - start.value)}`, keep: false }
    }
  }, [liveId])

  // Runs before the tail opens (effects run in order): clears the list when the tail does not continue it.
  useEffect(() => {
    if (liveId !== undefined && !liveStart.keep) {
      latest.current = []
      setRecords([])
      setReleased(0)
    }
  }, [liveId])

  const tail = useLiveTail({
    id: liveId === undefined ? undefined : `${logKey}:${liveId}`,
    resumable: true,
    path: (resume) => `${logPath(logKey)}/tail?encoding=base64&${resume === undefined ? liveStart.query : `from=${resume}`}`,
    onRecords: (batch) => {
      const all = latest.current.concat(batch)
      const over = Math.max(0, all.length - liveCap)
      if (over > 0) setReleased((n) => n + over)
      latest.current = over > 0 ? all.slice(over) : all
      setRecords(latest.current)
      setNext(batch.at(-1)!.offset + 1)
      metaTimer.current ??= setTimeout(() => {
        metaTimer.current = undefined
        refreshMeta()
      }, 1000)
    }
  })

  const slash = logKey.lastIndexOf("/")
  const parent = slash < 0 ? "" : logKey.slice(0, slash + 1)

  return (
    <div class="log-view">
      <div class="log-title">
        <a href={parent === "" ? "/logs" : `/logs?prefix=${encodeURIComponent(parent)}`} onClick={onLinkClick}>
          ← {parent === "" ? "All logs" : parent}
        </a>
        <h2 class="mono" data-testid="log-key">{logKey}</h2>
      </div>
      {error === undefined ? null : <p class="error" data-testid="log-error">{error}</p>}
      <div class="log-layout">
        <div class="log-main">
          {loaded ? <MetaStrip meta={meta} logKey={logKey} /> : <p class="muted">Loading…</p>}
          <section class="panel records-panel">
            <div class="row live-bar">
              <LiveToggle params={params} live={live} />
              {live ? <LiveStatus live={tail} /> : null}
            </div>
            {live ? <LiveMessage live={tail} /> : null}
            {live ? null : <Browse meta={meta} records={records} next={next} onReload={() => setReload((n) => n + 1)} />}
            <FilteredRecords
              params={params}
              records={records}
              released={released}
              showKey={false}
              emptyText={!loaded ? "" : live ? "Waiting for records…" : "No records here."}
            />
          </section>
        </div>
        <aside class="log-side">
          <AppendForm
            logKey={logKey}
            onAppended={(key) => {
              if (key !== logKey || live) return
              if (from === undefined && fromTime === undefined) setReload((n) => n + 1)
              else refreshMeta()
            }}
          />
          <Groups logKey={logKey} groups={params.getAll("group")} refresh={meta?.nextOffset} />
        </aside>
      </div>
    </div>
  )
}
