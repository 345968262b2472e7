/** Number, byte, duration and time formatting shared by the pages (the Logs page included). */

const byteUnits = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]

/** Two decimals under 10, one under 100, none from 100, judged after rounding (9.999 is "10.0", not "10.00"). */
const fixed = (value: number): string => {
  const two = value.toFixed(2)
  if (Math.abs(Number(two)) < 10) return two
  const one = value.toFixed(1)
  return Math.abs(Number(one)) < 100 ? one : value.toFixed(0)
}

/** A size in binary units with about three significant digits: 512 B, 1.50 KiB, 10.0 MiB, 100 GiB. */
export const formatBytes = (n: number): string => {
  if (!Number.isFinite(n)) return String(n)
  let value = n
  let unit = 0
  while (Math.abs(value) >= 1024 && unit < byteUnits.length - 1) {
    value /= 1024
    unit += 1
  }
  if (unit === 0) return `${value} B`
  // The unit and the number of decimals are chosen by the value as written (rounded), not as it is: 1 MiB
  // less one byte is 1023.999 KiB, which rounds to "1024" and so is written in MiB, as "1.00 MiB".
  for (;;) {
    const text = fixed(value)
    if (Math.abs(Number(text)) < 1024 || unit === byteUnits.length - 1) return `${text} ${byteUnits[unit]}`
    value /= 1024
    unit += 1
  }
}

/** A count with thousands separators, the en-US way whatever the browser's locale: 12,345. */
export const formatCount = (n: number): string => (Number.isFinite(n) ? n.toLocaleString("en-US") : String(n))

/** Whole seconds in days, hours, minutes and seconds, at most three parts: 1d 2h 3m, 1h, 5m 30s, 0s. */
export const formatDuration = (seconds: number): string => {
  if (Number.isNaN(seconds) || seconds === Infinity) return "—"
  const s = Math.max(0, Math.floor(seconds))
  const d = Math.floor(s / 86400)
  const h = Math.floor((s % 86400) / 3600)
  const m = Math.floor((s % 3600) / 60)
  const parts = [d > 0 ? `${d}d` : "", h > 0 ? `${h}h` : "", m > 0 ? `${m}m` : "", s % 60 > 0 ? `${s % 60}s` : ""].filter((p) => p !== "")
  return parts.length === 0 ? "0s" : parts.slice(0, 3).join(" ")
}

/** A time (ms since the epoch) in UTC to the second, ISO-like: 2025-11-21 08:00:00Z; "—" when it is no time. */
export const formatTime = (ms: number): string => {
  const d = new Date(ms)
  // NaN (e.g. Date.parse of something that is not a date) and times out of Date's range: toISOString throws.
  if (Number.isNaN(d.getTime())) return "—"
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z")
}

export const formatRatio = (r: number | null | undefined): string => (r === null || r === undefined ? "—" : `${(r * 100).toFixed(1)}%`)
