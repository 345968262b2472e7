/**
 * Records as the Logs pages show them: under a filter box (the URL's `filter`), a hex/base64 toggle when
 * some are binary (`bin`), the count that matches, and a note when older records left the page.
 */
import type { LogRecord } from "./api.ts"
import { BinaryToggle, FilterInput } from "./controls.tsx"
import { formatCount } from "./format.ts"
import { liveCap } from "./live.ts"
import { replaceParams } from "./params.ts"
import { matches, RecordList } from "./records.tsx"
import type { BinaryMode } from "./value.ts"

export const FilteredRecords = ({ params, records, released, showKey, emptyText }: {
  params: URLSearchParams
  records: ReadonlyArray<LogRecord>
  /** Records that left the page (past `liveCap`). */
  released: number
  showKey: boolean
  /** What to say when there is no record (not counting those the filter hides). */
  emptyText: string
}) => {
  const filter = (params.get("filter") ?? "").toLowerCase()
  const binary: BinaryMode = params.get("bin") === "base64" ? "base64" : "hex"
  const shown = filter === "" ? records : records.filter((r) => matches(r, filter))
  return (
    <>
      <div class="row tools">
        <FilterInput value={params.get("filter") ?? ""} onInput={(v) => replaceParams({ filter: v === "" ? undefined : v })} />
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
        showKey={showKey}
        binary={binary}
        empty={filter !== "" && records.length > 0 ? "No record matches the filter." : emptyText}
      />
    </>
  )
}
