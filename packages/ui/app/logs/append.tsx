/**
 * The append form: a value (or one record per line), optional headers (a JSON object or key=value lines)
 * and an optional other key. Shown only when the token may write to the log.
 */
import { useEffect, useState } from "preact/hooks"
import { type Access, appendRecords, getAccess, mayAppend, type NewRecord } from "./api.ts"
import { formatCount } from "./format.ts"
import { logHref } from "./params.ts"
import { onLinkClick } from "../router.ts"

/** Headers typed as a JSON object of strings or as key=value lines; a string says what is wrong. */
export const parseHeaders = (input: string): Record<string, string> | string => {
  const text = input.trim()
  if (text === "") return {}
  if (text.startsWith("{")) {
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch (e) {
      return `Headers are not valid JSON: ${(e as Error).message}`
    }
    if (typeof json !== "object" || json === null || Array.isArray(json)) return "Headers must be a JSON object"
    const headers: Record<string, string> = {}
    for (const [k, v] of Object.entries(json)) {
      if (typeof v !== "string") return `Header ${JSON.stringify(k)} must be a string`
      headers[k] = v
    }
    return headers
  }
  const headers: Record<string, string> = {}
  for (const [i, line] of text.split("\n").entries()) {
    if (line.trim() === "") continue
    const at = line.indexOf("=")
    if (at <= 0) return `Header line ${i + 1} is not key=value`
    headers[line.slice(0, at).trim()] = line.slice(at + 1).trim()
  }
  return headers
}

const useAccess = (): Access | undefined => {
  const [access, setAccess] = useState<Access | undefined>(undefined)
  useEffect(() => {
    void getAccess().then(setAccess)
  }, [])
  return access
}

type Outcome =
  | { readonly ok: true; readonly key: string; readonly offsets: ReadonlyArray<number>; readonly next: number }
  | { readonly ok: false; readonly message: string }

const Result = ({ outcome, logKey }: { outcome: Outcome; logKey: string }) => {
  if (!outcome.ok) return <p class="error" data-testid="append-error">{outcome.message}</p>
  const first = outcome.offsets[0]
  const last = outcome.offsets.at(-1)
  const offsets = first === last ? `offset ${first}` : `offsets ${first}–${last}`
  return (
    <p class="append-ok" data-testid="append-result">
      Appended {formatCount(outcome.offsets.length)} record{outcome.offsets.length === 1 ? "" : "s"} at {offsets}
      {outcome.key === logKey ? null : <> to <a href={logHref(outcome.key)} onClick={onLinkClick}>{outcome.key}</a></>}
      {" "}(next {outcome.next}).
    </p>
  )
}

export const AppendForm = ({ logKey, onAppended }: { logKey: string; onAppended: (key: string) => void }) => {
  const access = useAccess()
  const [value, setValue] = useState("")
  const [headers, setHeaders] = useState("")
  const [otherKey, setOtherKey] = useState("")
  const [perLine, setPerLine] = useState(false)
  const [base64, setBase64] = useState(false)
  const [busy, setBusy] = useState(false)
  const [outcome, setOutcome] = useState<Outcome | undefined>(undefined)

  if (access === undefined) return null
  if (!mayAppend(access, logKey)) {
    return (
      <section class="panel">
        <h3>Append</h3>
        <p class="muted">
          {access.scope === "read" ? "This token may only read." : `This token may only write logs under "${access.prefix}".`}
        </p>
      </section>
    )
  }

  const submit = async (event: Event) => {
    event.preventDefault()
    const key = otherKey.trim() === "" ? logKey : otherKey.trim()
    const parsed = parseHeaders(headers)
    if (typeof parsed === "string") return setOutcome({ ok: false, message: parsed })
    if (!mayAppend(access, key)) return setOutcome({ ok: false, message: `This token may only write logs under "${access.prefix}".` })
    const values = perLine ? value.split("\n").filter((line) => line !== "") : [value]
    if (values.length === 0) return setOutcome({ ok: false, message: "Nothing to append: every line is empty." })
    const records: Array<NewRecord> = values.map((v) => Object.keys(parsed).length === 0 ? { value: v } : { value: v, headers: parsed })
    setBusy(true)
    try {
      const answer = await appendRecords(key, records, base64)
      setOutcome({ ok: true, key, offsets: answer.offsets, next: answer.next })
      onAppended(key)
    } catch (e) {
      setOutcome({ ok: false, message: e instanceof Error ? e.message : String(e) })
    } finally {
      setBusy(false)
    }
  }

  return (
    <section class="panel">
      <h3>Append</h3>
      <form class="append-form" data-testid="append-form" onSubmit={submit}>
        <label>
          Value{perLine ? " (one record per line)" : ""}
          <textarea
            rows={4}
            data-testid="append-value"
            value={value}
            placeholder={base64 ? "base64, e.g. 3q2+7w==" : 'text or JSON, e.g. {"status":"paid"}'}
            onInput={(e) => setValue((e.currentTarget as HTMLTextAreaElement).value)}
          />
        </label>
        <label>
          Headers <span class="muted">(JSON object or key=value lines, optional)</span>
          <textarea
            rows={2}
            data-testid="append-headers"
            value={headers}
            placeholder="by=web"
            onInput={(e) => setHeaders((e.currentTarget as HTMLTextAreaElement).value)}
          />
        </label>
        <label>
          Key <span class="muted">(optional, to append to another log)</span>
          <input
            data-testid="append-key"
            value={otherKey}
            placeholder={logKey}
            onInput={(e) => setOtherKey((e.currentTarget as HTMLInputElement).value)}
          />
        </label>
        <div class="row">
          <label class="check">
            <input type="checkbox" checked={perLine} onChange={(e) => setPerLine((e.currentTarget as HTMLInputElement).checked)} />
            one record per line
          </label>
          <label class="check">
            <input type="checkbox" checked={base64} onChange={(e) => setBase64((e.currentTarget as HTMLInputElement).checked)} />
            value is base64
          </label>
          <span class="spacer" />
          <button type="submit" class="primary" data-testid="append-submit" disabled={busy}>Append</button>
        </div>
      </form>
      {outcome === undefined ? null : <Result outcome={outcome} logKey={logKey} />}
    </section>
  )
}
