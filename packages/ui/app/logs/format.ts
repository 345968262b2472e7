/** Readable numbers, sizes and times for the Logs page, and the time syntax its inputs accept. */

// Counts and sizes are written as on every other page (one formatCount, one formatBytes: en-US grouping,
// binary units); times here are local and to the millisecond, which the Logs page needs.
import { formatBytes, formatCount } from "../format.ts"

export { formatBytes, formatCount }

const pad = (n: number, width = 2): string => String(n).padStart(width, "0")

/** A time in local time, to the millisecond: 2025-11-21 08:00:00.123. */
export const formatTime = (ms: number): string => {
  const d = new Date(ms)
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`
}

/** How long before `now` a time was, roughly: "just now", "5 min ago", "3 d ago". */
export const formatAgo = (ms: number, now = Date.now()): string => {
  const s = Math.round((now - ms) / 1000)
  if (s < 0) return "in the future"
  if (s < 5) return "just now"
  if (s < 60) return `${s} s ago`
  if (s < 3600) return `${Math.floor(s / 60)} min ago`
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`
  return `${Math.floor(s / 86400)} d ago`
}

/** A rate: "0", "3.4", "1,250". */
export const formatRate = (perSecond: number): string =>
  perSecond === 0 ? "0" : perSecond < 10 ? perSecond.toFixed(1) : formatCount(Math.round(perSecond))

const relative = /^-?\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)(?:\s+ago)?$/i
const unitMs: Record<string, number> = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000 }

/**
 * An ISO 8601 date, with or without a time (after `T` or a space) and a zone: `2025-11-21`,
 * `2025-11-21 08:00`, `2025-11-21T08:00:30.250Z`, `2025-11-21 08:00+01:00`.
 */
const isoLike = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*(Z|[+-]\d{2}:?\d{2})?)?$/i
/** Only digits, signs, separators of numbers and spaces: a number (or numbers), never a date. */
const numeric = /^[\d\s.,+-]*$/
/** A four-digit year somewhere in it. */
const hasYear = /(?:^|\D)\d{4}(?:\D|$)/

/**
 * A time typed by the user, in ms since the epoch: epoch milliseconds (`1763712000123`), a relative time
 * in the past (`-5m`, `90s ago`, `2h`), or a date and time (`2025-11-21 08:00`, local unless it names a
 * zone; a date alone, `2025-11-21`, is local midnight). Undefined when it is none of these: in particular
 * for a number that is neither epoch ms nor relative (`5`, `1.5`, `2025`), which Date.parse would take for
 * some odd date. Dates in other forms Date.parse knows (`Nov 21 2025 08:00`, `2025/11/21`) are read when
 * they name a four-digit year.
 */
export const parseTime = (input: string, now = Date.now()): number | undefined => {
  const text = input.trim()
  if (text === "") return undefined
  if (/^\d{10,}$/.test(text)) return Number(text)
  const rel = relative.exec(text)
  if (rel !== null) return Math.round(now - Number(rel[1]) * (unitMs[rel[2]!.toLowerCase()] ?? 0))
  let ms: number
  const iso = isoLike.exec(text)
  if (iso !== null) {
    // Written out in the one form Date.parse reads the same everywhere: with a time (so that it is local,
    // not UTC, when no zone is named) and the zone as Z or ±hh:mm.
    const zone = iso[3]?.toUpperCase().replace(/^([+-]\d{2})(\d{2})$/, "$1:$2") ?? ""
    ms = Date.parse(`${iso[1]}T${iso[2] ?? "00:00"}${zone}`)
  } else if (numeric.test(text) || !hasYear.test(text)) {
    return undefined
  } else {
    ms = Date.parse(text)
  }
  return Number.isNaN(ms) ? undefined : ms
}

/** A non-negative integer typed by the user, or undefined. */
export const parseOffset = (input: string): number | undefined => {
  const text = input.trim()
  return /^\d+$/.test(text) && Number.isSafeInteger(Number(text)) ? Number(text) : undefined
}
