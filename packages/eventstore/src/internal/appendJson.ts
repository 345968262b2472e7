/**
 * The fast path of the HTTP API's append bodies and append-session frames. A body of the plain shape the
 * API's schema describes (`{"records": [{"value": "<text>", "headers"?: {...}, "eventTime"?: n}], ...}`,
 * values as UTF-8 text) is taken apart in one synchronous pass, its values written into one buffer rather
 * than one allocation each. Anything it is not sure of (a field it does not know, a value of another type)
 * gives undefined, and the caller decodes with the schema, whose error the API answers with: it accepts
 * nothing the schema refuses, and what it accepts it reads as the schema would.
 */
import type { AppendOptions, RecordInput } from "../EventStore.ts"

export interface TakenAppend {
  readonly records: Array<RecordInput>
  readonly options: AppendOptions
}

type Json = Record<string, unknown>

const isObject = (x: unknown): x is Json => typeof x === "object" && x !== null && !Array.isArray(x)
const isOffset = (n: unknown): boolean => typeof n === "number" && Number.isSafeInteger(n) && n >= 0
const isText = (s: unknown): s is string => typeof s === "string" && s.isWellFormed()
const isOptionalText = (s: unknown): boolean => s === undefined || isText(s)

const bodyFields = new Set(["records", "expectedOffset", "fencingToken", "producerId", "producerSeq"])
const frameFields = new Set([...bodyFields, "id", "key", "encoding"])
const recordFields = new Set(["value", "headers", "eventTime"])

const onlyFields = (o: Json, fields: ReadonlySet<string>): boolean => {
  for (const k in o) if (!fields.has(k)) return false
  return true
}

const isHeaders = (h: unknown): boolean => {
  if (h === undefined) return true
  if (!isObject(h)) return false
  for (const k in h) if (!k.isWellFormed() || !isText(h[k])) return false
  return true
}

/**
 * An append body (`frame`: an append session's frame, whose `id`, `key` and `encoding` the caller reads)
 * whose values are UTF-8 text, taken apart; undefined when the schema must decide.
 */
export const takeAppend = (json: unknown, frame: boolean): TakenAppend | undefined => {
  if (!isObject(json) || !onlyFields(json, frame ? frameFields : bodyFields)) return undefined
  if (frame && (!isOffset(json["id"]) || typeof json["key"] !== "string" || (json["encoding"] !== undefined && json["encoding"] !== "utf8"))) {
    return undefined
  }
  const { expectedOffset, fencingToken, producerId, producerSeq } = json
  if (expectedOffset !== undefined && !isOffset(expectedOffset)) return undefined
  if (producerSeq !== undefined && !isOffset(producerSeq)) return undefined
  if (!isOptionalText(fencingToken) || !isOptionalText(producerId)) return undefined
  const raw = json["records"]
  if (!Array.isArray(raw)) return undefined
  let bytes = 0
  for (let i = 0; i < raw.length; i++) {
    const r: unknown = raw[i]
    if (!isObject(r) || !onlyFields(r, recordFields) || !isText(r["value"]) || !isHeaders(r["headers"])) return undefined
    const eventTime = r["eventTime"]
    if (eventTime !== undefined && !(typeof eventTime === "number" && Number.isSafeInteger(eventTime))) return undefined
    bytes += Buffer.byteLength(r["value"], "utf8")
  }
  // Every value in one buffer; each record's value a view of its part.
  const values = Buffer.allocUnsafeSlow(bytes)
  const records = new Array<RecordInput>(raw.length)
  let at = 0
  for (let i = 0; i < raw.length; i++) {
    const r = raw[i] as Json
    const size = values.write(r["value"] as string, at, "utf8")
    records[i] = {
      value: new Uint8Array(values.buffer, values.byteOffset + at, size),
      headers: r["headers"] as Record<string, string> | undefined,
      eventTime: r["eventTime"] as number | undefined
    }
    at += size
  }
  return {
    records,
    options: {
      expectedOffset: expectedOffset as number | undefined,
      fencingToken: fencingToken as string | undefined,
      producerId: producerId as string | undefined,
      producerSeq: producerSeq as number | undefined
    }
  }
}
