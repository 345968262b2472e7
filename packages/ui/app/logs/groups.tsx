/**
 * Consumer groups of a log: those that committed an offset of it (`GET /v1/logs/{key}/groups`), with
 * their committed offset and lag, and any other group the user names (kept in the URL as `group=`).
 */
import { useEffect, useRef, useState } from "preact/hooks"
import { getGroupOffset, type GroupOffset, listGroups } from "./api.ts"
import { formatCount } from "./format.ts"
import { setParams } from "../router.ts"

type Row = { readonly group: string; readonly answer?: GroupOffset; readonly error?: string }

const setGroups = (groups: ReadonlyArray<string>) => {
  const params = new URLSearchParams(location.search)
  params.delete("group")
  for (const g of groups) params.append("group", g)
  setParams(params)
}

/** Lags are fetched again when `refresh` changes (the log's next offset), at most once per this long. */
const refreshMs = 5_000

/** `value`, changing at most once per `ms` (the last change shows at the end of the period). */
const useThrottled = <A,>(value: A, ms: number): A => {
  const [shown, setShown] = useState(value)
  const last = useRef(0)
  useEffect(() => {
    const wait = last.current + ms - Date.now()
    if (wait <= 0) {
      last.current = Date.now()
      setShown(value)
      return
    }
    const timer = setTimeout(() => {
      last.current = Date.now()
      setShown(value)
    }, wait)
    return () => clearTimeout(timer)
  }, [value, ms])
  return shown
}

/** `refresh` changes (e.g. the log's next offset) re-fetch every group's lag, at most every `refreshMs`. */
export const Groups = ({ logKey, groups, refresh: given }: { logKey: string; groups: ReadonlyArray<string>; refresh: unknown }) => {
  const refresh = useThrottled(given, refreshMs)
  const [rows, setRows] = useState<ReadonlyArray<Row>>([])
  const [name, setName] = useState("")
  const groupList = groups.join("\u0000")

  useEffect(() => {
    let cancelled = false
    const listed = listGroups(logKey).then(
      (all): ReadonlyArray<Row> => all.map((answer) => ({ group: answer.group, answer })),
      (): ReadonlyArray<Row> => []
    )
    const named = listed.then((found) =>
      Promise.all(groups.filter((g) => !found.some((r) => r.group === g)).map((group): Promise<Row> =>
        getGroupOffset(group, logKey).then(
          (answer) => ({ group, answer }),
          (e: unknown) => ({ group, error: e instanceof Error ? e.message : String(e) })
        )
      ))
    )
    void Promise.all([listed, named]).then(([a, b]) => {
      if (!cancelled) setRows([...a, ...b])
    })
    return () => {
      cancelled = true
    }
  }, [logKey, groupList, refresh])

  return (
    <section class="panel">
      <h3>Consumer groups</h3>
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault()
          const group = name.trim()
          if (group !== "" && !groups.includes(group)) setGroups([...groups, group])
          setName("")
        }}
      >
        <input
          class="grow"
          placeholder="group name"
          aria-label="Consumer group"
          data-testid="group-input"
          value={name}
          onInput={(e) => setName((e.currentTarget as HTMLInputElement).value)}
        />
        <button type="submit">Show lag</button>
      </form>
      {rows.length === 0 ? <p class="muted">No group has committed an offset of this log. Name one to see its lag.</p> : (
        <table class="groups" data-testid="groups">
          <thead>
            <tr>
              <th>Group</th>
              <th class="num">Committed</th>
              <th class="num">Lag</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {rows.map((row) => (
              <tr key={row.group} data-testid="group-row" data-group={row.group}>
                <td class="mono">{row.group}</td>
                {row.error !== undefined ? <td colSpan={2} class="error">{row.error}</td> : (
                  <>
                    <td class="num">{row.answer?.offset == null ? <span class="muted">none</span> : formatCount(row.answer.offset)}</td>
                    <td class="num">{formatCount(row.answer?.lag ?? 0)}</td>
                  </>
                )}
                <td>
                  {groups.includes(row.group)
                    ? <button class="link" title="Stop showing" onClick={() => setGroups(groups.filter((g) => g !== row.group))}>✕</button>
                    : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  )
}
