/** Readable numbers, sizes and times for the Logs page, and the time syntax its inputs accept. */

const counts = new Intl.NumberFormat()

/** A count with thousands separators: 12,345. */
export const formatCount = (n: number): string => counts.format(n)

/** A byte size in binary units: 512 B, 1.5 KiB, 20 MiB. */
export const formatBytes = (bytes: number): string => {
  if (bytes < 1024) return `${bytes} B`
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB"]
  let value = bytes / 1024
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`
}

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
 * A time typed by the user, in ms since the epoch: epoch milliseconds (`1763712000123`), a relative time
 * in the past (`-5m`, `90s ago`, `2h`), or a date and time (`2025-11-21 08:00`, local unless it names a
 * zone). Undefined when it is none of these.
 */
export const parseTime = (input: string, now = Date.now()): number | undefined => {
  const text = input.trim()
  if (text === "") return undefined
  if (/^\d{10,}$/.test(text)) return Number(text)
  const rel = relative.exec(text)
  if (rel !== null) return Math.round(now - Number(rel[1]) * (unitMs[rel[2]!.toLowerCase()] ?? 0))
  const ms = Date.parse(text.replace(" ", "T"))
  return Number.isNaN(ms) ? undefined : ms
}

/** A non-negative integer typed by the user, or undefined. */
export const parseOffset = (input: string): number | undefined => {
  const text = input.trim()
  return /^\d+$/.test(text) && Number.isSafeInteger(Number(text)) ? Number(text) : undefined
}
