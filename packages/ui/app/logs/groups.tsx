/**
 * Consumer groups of a log. The API has no listing of groups, only a named group's committed offset and
 * lag, so the user names the groups to watch (kept in the URL as `group=` parameters).
 */
import { useEffect, useState } from "preact/hooks"
import { getGroupOffset, type GroupOffset } from "./api.ts"
import { formatCount } from "./format.ts"
import { setParams } from "../router.ts"

type Row = { readonly group: string; readonly answer?: GroupOffset; readonly error?: string }

const setGroups = (groups: ReadonlyArray<string>) => {
  const params = new URLSearchParams(location.search)
  params.delete("group")
  for (const g of groups) params.append("group", g)
  setParams(params)
}

/** `refresh` changes (e.g. the log's next offset) re-fetch every group's lag. */
export const Groups = ({ logKey, groups, refresh }: { logKey: string; groups: ReadonlyArray<string>; refresh: unknown }) => {
  const [rows, setRows] = useState<ReadonlyArray<Row>>([])
  const [name, setName] = useState("")
  const groupList = groups.join("\u0000")

  useEffect(() => {
    let cancelled = false
    void Promise.all(groups.map((group): Promise<Row> =>
      getGroupOffset(group, logKey).then(
        (answer) => ({ group, answer }),
        (e: unknown) => ({ group, error: e instanceof Error ? e.message : String(e) })
      )
    )).then((r) => {
      if (!cancelled) setRows(r)
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
      {rows.length === 0 ? <p class="muted">Name a group to see its committed offset and lag.</p> : (
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
                  <button class="link" title="Stop showing" onClick={() => setGroups(groups.filter((g) => g !== row.group))}>✕</button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  )
}
