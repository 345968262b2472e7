/**
 * The list of logs (`/logs`): logs whose keys start with a prefix, a page at a time (the API's cursor),
 * each linking to its log; or, with `live=1`, a live tail of every log under the prefix.
 */
import { useEffect, useState } from "preact/hooks"
import { onLinkClick, type Route } from "../router.ts"
import { getAccess, listLogs, type LogMeta } from "./api.ts"
import { formatAgo, formatBytes, formatCount, formatTime } from "./format.ts"
import { logHref, pushParams, replaceParams } from "./params.ts"
import { PrefixTail } from "./prefix.tsx"

const pageSize = 100

const LogTable = ({ logs }: { logs: ReadonlyArray<LogMeta> }) => (
  <table class="log-table">
    <thead>
      <tr>
        <th>Key</th>
        <th class="num">Records</th>
        <th class="num wide-only">Offsets</th>
        <th class="num">Bytes</th>
        <th>Last append</th>
        <th class="wide-only">Created</th>
      </tr>
    </thead>
    <tbody>
      {logs.map((log) => (
        <tr key={log.key} data-key={log.key}>
          <td class="key-cell"><a class="mono" href={logHref(log.key)} onClick={onLinkClick}>{log.key}</a></td>
          <td class="num">{formatCount(log.records)}</td>
          <td class="num wide-only">{formatCount(log.firstOffset)}–{formatCount(log.nextOffset)}</td>
          <td class="num" title={`${formatCount(log.bytes)} bytes`}>{formatBytes(log.bytes)}</td>
          <td title={log.lastAppendMs === null ? undefined : formatTime(log.lastAppendMs)}>
            {log.lastAppendMs === null ? <span class="muted">never</span> : formatAgo(log.lastAppendMs)}
          </td>
          <td class="wide-only">{formatTime(log.createdMs)}</td>
        </tr>
      ))}
    </tbody>
  </table>
)

/** `value`, once it has stopped changing for `ms`. */
const useSettled = <A,>(value: A, ms: number): A => {
  const [settled, setSettled] = useState(value)
  useEffect(() => {
    const timer = setTimeout(() => setSettled(value), ms)
    return () => clearTimeout(timer)
  }, [value])
  return settled
}

/** The prefix the token is restricted to ("" when it is not); undefined until whoami answers. */
const useTokenPrefix = (): string | undefined => {
  const [prefix, setPrefix] = useState<string | undefined>(undefined)
  useEffect(() => {
    void getAccess().then((a) => setPrefix(a.prefix))
  }, [])
  return prefix
}

export const LogList = ({ route }: { route: Route }) => {
  const tokenPrefix = useTokenPrefix()
  const asked = route.params.get("prefix") ?? ""
  // A token restricted to a prefix may only list (and tail) under it.
  const prefix = asked.startsWith(tokenPrefix ?? "") ? asked : tokenPrefix ?? ""
  const tailPrefix = useSettled(prefix, 400)
  const cursor = route.params.get("cursor") ?? undefined
  const live = route.params.get("live") === "1"
  const [page, setPage] = useState<{ logs: Array<LogMeta>; cursor?: string } | undefined>(undefined)
  const [error, setError] = useState<string | undefined>(undefined)
  const [reload, setReload] = useState(0)

  // Typing in the prefix re-lists after a short pause.
  useEffect(() => {
    if (live || tokenPrefix === undefined) return
    let cancelled = false
    const timer = setTimeout(() => {
      listLogs(prefix, cursor, pageSize).then(
        (answer) => {
          if (cancelled) return
          setPage(answer)
          setError(undefined)
        },
        (e: unknown) => {
          if (!cancelled) setError(e instanceof Error ? e.message : String(e))
        }
      )
    }, 150)
    return () => {
      cancelled = true
      clearTimeout(timer)
    }
  }, [prefix, cursor, live, reload, tokenPrefix])

  return (
    <div class="log-list-page">
      <div class="row list-bar">
        <h2>Logs</h2>
        <input
          type="search"
          class="grow"
          placeholder="Key prefix, e.g. orders/"
          aria-label="Key prefix"
          data-testid="prefix-input"
          value={asked}
          onInput={(e) => replaceParams({ prefix: (e.currentTarget as HTMLInputElement).value || undefined, cursor: undefined })}
        />
        {live
          ? <button data-testid="prefix-tail-stop" onClick={() => pushParams({ live: undefined })}>Stop tail</button>
          : <button data-testid="prefix-tail" onClick={() => pushParams({ live: "1", cursor: undefined })}>Tail prefix</button>}
        {live ? null : <button onClick={() => setReload((n) => n + 1)}>Refresh</button>}
      </div>
      {tokenPrefix !== undefined && !asked.startsWith(tokenPrefix)
        ? <p class="warning">This token sees only logs under <code>{tokenPrefix}</code>.</p>
        : null}
      {tokenPrefix === undefined ? null : live
        ? <PrefixTail key={tailPrefix} route={route} prefix={tailPrefix} />
        : (
          <section class="panel" data-testid="log-list">
            {error === undefined ? null : <p class="error">{error}</p>}
            {page === undefined ? <p class="muted">Loading…</p> : page.logs.length === 0
              ? <p class="notice">{prefix === "" ? "No logs yet." : `No log key starts with "${prefix}".`}</p>
              : <LogTable logs={page.logs} />}
            <div class="row pager">
              {cursor === undefined ? null : <button onClick={() => pushParams({ cursor: undefined })}>⇤ First page</button>}
              <span class="spacer" />
              {page?.cursor === undefined ? null : (
                <button data-testid="next-page" onClick={() => pushParams({ cursor: page.cursor })}>Next page →</button>
              )}
            </div>
          </section>
        )}
    </div>
  )
}
