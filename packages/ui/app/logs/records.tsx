/**
 * The records of one log (or of many, in a prefix tail) as a list: one element per record, carrying its
 * `data-offset` (and `data-key`), with its times, headers and value.
 */
import { Component } from "preact"
import { useState } from "preact/hooks"
import { onLinkClick } from "../router.ts"
import type { LogRecord } from "./api.ts"
import { formatBytes, formatTime } from "./format.ts"
import { type BinaryMode, hexDump, type ValueView } from "./value.ts"

/** Values longer than this (characters of text, or bytes of binary) are cut until asked for in full. */
const previewMax = 4096

const Value = ({ value, binary }: { value: ValueView; binary: BinaryMode }) => {
  const [full, setFull] = useState(false)
  let text: string
  let length: number
  if (value.kind === "binary") {
    length = binary === "hex" ? value.size : value.base64.length
    const shown = full ? value.size : previewMax
    text = binary === "hex" ? hexDump(value.bytes, shown) : value.base64.slice(0, full ? undefined : previewMax)
  } else {
    // an invalid value shows what arrived, under a label that says it is not base64
    const shownText = value.kind === "invalid" ? value.raw : value.text
    length = shownText.length
    text = full ? shownText : shownText.slice(0, previewMax)
  }
  const cut = !full && length > previewMax
  return (
    <div class="record-value">
      {value.kind === "text" ? null : value.kind === "invalid" ? <span class="value-kind invalid">{value.text}</span> : (
        <span class="value-kind">{value.kind === "json" ? "JSON" : `binary, ${binary}`} · {formatBytes(value.size)}</span>
      )}
      <pre class={value.kind}>{text === "" ? <span class="muted">(empty)</span> : text}</pre>
      {cut
        ? <button class="link" onClick={() => setFull(true)}>Show all ({value.kind === "invalid" ? `${value.size} characters` : formatBytes(value.size)})</button>
        : null}
    </div>
  )
}

const Time = ({ ms, label }: { ms: number; label?: string }) => (
  <time dateTime={new Date(ms).toISOString()} title={`${new Date(ms).toISOString()} (${ms})`}>
    {label === undefined ? null : <span class="muted">{label} </span>}
    {formatTime(ms)}
  </time>
)

interface ItemProps {
  readonly record: LogRecord
  readonly showKey: boolean
  readonly binary: BinaryMode
}

/** One record; it re-renders only when what it shows changes (a live list re-renders often). */
class RecordItem extends Component<ItemProps> {
  override shouldComponentUpdate(next: ItemProps): boolean {
    return next.record !== this.props.record || next.showKey !== this.props.showKey || next.binary !== this.props.binary
  }

  override render({ record, showKey, binary }: ItemProps) {
    const headers = Object.entries(record.headers)
    return (
      <div class="record" data-offset={record.offset} data-key={record.key}>
        <div class="record-head">
          {showKey
            ? (
              <a class="record-key mono" href={`/logs?key=${encodeURIComponent(record.key)}`} onClick={onLinkClick}>
                {record.key}
              </a>
            )
            : null}
          <span class="record-offset mono">#{record.offset}</span>
          <Time ms={record.timestamp} />
          {record.eventTime === undefined ? null : <Time ms={record.eventTime} label="event" />}
          {headers.map(([k, v]) => <span key={k} class="chip mono" title={`${k}=${v}`}>{k}={v}</span>)}
        </div>
        <Value value={record.value} binary={binary} />
      </div>
    )
  }
}

/** Lower-cased filter text, or "" for none: whether a record matches it. */
export const matches = (record: LogRecord, filter: string): boolean => filter === "" || record.search.includes(filter)

export const RecordList = (
  { records, showKey, binary, empty }: {
    records: ReadonlyArray<LogRecord>
    showKey: boolean
    binary: BinaryMode
    empty: string
  }
) => (
  <>
    <div class="log-records" data-testid="log-records">
      {records.map((r) => <RecordItem key={`${r.key}\u0000${r.offset}`} record={r} showKey={showKey} binary={binary} />)}
    </div>
    {records.length === 0 ? <p class="notice">{empty}</p> : null}
  </>
)
