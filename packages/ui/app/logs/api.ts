/**
 * The EventStore API (`/v1`) as the Logs page uses it. Records are always read and tailed with
 * `encoding=base64`, so binary values arrive intact and are classified here (see value.ts).
 */
import { ApiError, getJson, whoami } from "../api.ts"
import { searchTextOf, type ValueView, viewOf } from "./value.ts"

/** A log's metadata (`GET /v1/logs/{key}` and each entry of a listing). */
export interface LogMeta {
  readonly key: string
  readonly firstOffset: number
  readonly nextOffset: number
  readonly bytes: number
  readonly records: number
  readonly createdMs: number
  readonly lastAppendMs: number | null
  readonly retention: { readonly maxAgeMs?: number; readonly maxBytes?: number } | null
  readonly fenced: boolean
}

/** A record as the API sends it (value in base64). */
interface WireRecord {
  readonly offset: number
  readonly timestamp: number
  readonly eventTime?: number
  readonly headers: Readonly<Record<string, string>>
  readonly value: string
}

/** A record ready to show: its log's key, its value classified, and the text a filter searches. */
export interface LogRecord {
  readonly key: string
  readonly offset: number
  readonly timestamp: number
  readonly eventTime: number | undefined
  readonly headers: Readonly<Record<string, string>>
  readonly value: ValueView
  readonly search: string
}

export const logPath = (key: string): string => `/v1/logs/${encodeURIComponent(key)}`

/** Makes wire records of log `key` ready to show. */
export const toRecords = (key: string, records: ReadonlyArray<WireRecord>): Array<LogRecord> =>
  records.map((r) => {
    const value = viewOf(r.value)
    const headers = Object.entries(r.headers).map(([k, v]) => `${k}=${v}`).join("\n")
    return {
      key,
      offset: r.offset,
      timestamp: r.timestamp,
      eventTime: r.eventTime,
      headers: r.headers,
      value,
      search: `${key.toLowerCase()}\n${headers.toLowerCase()}\n${searchTextOf(value)}`
    }
  })

const isNotFound = (e: unknown): boolean => e instanceof ApiError && e.status === 404 && e.errorType === "LogNotFound"

/** One page of logs whose keys start with `prefix`; `cursor` names the next page, if any. */
export const listLogs = (prefix: string, cursor: string | undefined, limit: number) => {
  const q = new URLSearchParams({ limit: String(limit) })
  if (prefix !== "") q.set("prefix", prefix)
  if (cursor !== undefined) q.set("cursor", cursor)
  return getJson<{ logs: Array<LogMeta>; cursor?: string }>(`/v1/logs?${q}`)
}

/** A log's metadata; undefined when there is no such log (yet). */
export const getMeta = async (key: string): Promise<LogMeta | undefined> => {
  try {
    return await getJson<LogMeta>(logPath(key))
  } catch (e) {
    if (isNotFound(e)) return undefined
    throw e
  }
}

export type ReadStart = { readonly from: number } | { readonly fromTime: number } | Record<string, never>

/** Reads up to `limit` records from a start; a log that does not exist reads as empty. */
export const readRecords = async (
  key: string,
  start: ReadStart,
  limit: number
): Promise<{ records: Array<LogRecord>; next: number }> => {
  const q = new URLSearchParams({ limit: String(limit), maxBytes: String(4 * 1024 * 1024), encoding: "base64" })
  if ("from" in start) q.set("from", String(start.from))
  if ("fromTime" in start) q.set("fromTime", String(start.fromTime))
  try {
    const answer = await getJson<{ records: Array<WireRecord>; next: number }>(`${logPath(key)}/records?${q}`)
    return { records: toRecords(key, answer.records), next: answer.next }
  } catch (e) {
    if (isNotFound(e)) return { records: [], next: 0 }
    throw e
  }
}

/** One record to append: its value (text, or base64 with `base64` set) and optional headers. */
export interface NewRecord {
  readonly value: string
  readonly headers?: Record<string, string>
}

/** Appends records to a log (created by its first append): the offsets given and the next one. */
export const appendRecords = (key: string, records: ReadonlyArray<NewRecord>, base64: boolean) =>
  getJson<{ offsets: Array<number>; next: number }>(
    `${logPath(key)}/records${base64 ? "?encoding=base64" : ""}`,
    { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ records }) }
  )

/** A consumer group's committed offset for a log (null when it never committed) and its lag. */
export interface GroupOffset {
  readonly group: string
  readonly key: string
  readonly offset: number | null
  readonly lag: number
}
export const getGroupOffset = (group: string, key: string) =>
  getJson<GroupOffset>(`/v1/groups/${encodeURIComponent(group)}/offsets/${encodeURIComponent(key)}`)
/** The groups that committed an offset of the log, with their lag. */
export const listGroups = (key: string) =>
  getJson<{ groups: ReadonlyArray<GroupOffset> }>(`/v1/logs/${encodeURIComponent(key)}/groups`).then((r) => r.groups)

/** What the token may do. Without the whoami route (or without auth) it may do anything. */
export interface Access {
  readonly scope: "read" | "write" | "admin"
  readonly prefix: string
}
let access: Promise<Access> | undefined
export const getAccess = (): Promise<Access> =>
  access ??= whoami().then(
    (w) => ({ scope: w.scope, prefix: w.prefix ?? "" }),
    (): Access => ({ scope: "admin", prefix: "" })
  )

/** Whether a token with `a` may append to log `key`. */
export const mayAppend = (a: Access, key: string): boolean => a.scope !== "read" && key.startsWith(a.prefix)
