/** Durations (`1h30m`), the graph's range presets and step, and end times as the panel reads and shows them. */

const unitSeconds: Readonly<Record<string, number>> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 }
const durationPart = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w|y)/y

/**
 * Seconds in a Prometheus duration (`5m`, `1h30m`, `1.5h`) or a plain number of seconds (`30`, `0.5`);
 * undefined if it is neither or not positive.
 */
export const parseDuration = (text: string): number | undefined => {
  const trimmed = text.trim()
  if (trimmed === "") return undefined
  if (/^[0-9]+(\.[0-9]+)?$/.test(trimmed)) {
    const seconds = Number(trimmed)
    return seconds > 0 ? seconds : undefined
  }
  let seconds = 0
  durationPart.lastIndex = 0
  while (durationPart.lastIndex < trimmed.length) {
    const match = durationPart.exec(trimmed)
    if (match === null) return undefined
    seconds += Number(match[1]) * (unitSeconds[match[2] ?? ""] ?? 0)
  }
  return seconds > 0 ? seconds : undefined
}

/** Seconds as a Prometheus duration, largest units first: 5400 → `1h30m`, 0.25 → `250ms`. */
export const formatDuration = (seconds: number): string => {
  // Test the value rounded to whole milliseconds: a positive duration under half a millisecond is 0 ms, and
  // without this would write no unit at all (an empty string). Not finite (or NaN) is no duration either.
  let rest = Math.round(seconds * 1000)
  if (!Number.isFinite(rest) || rest <= 0) return "0s"
  let out = ""
  for (const [unit, size] of [["d", 86400000], ["h", 3600000], ["m", 60000], ["s", 1000], ["ms", 1]] as const) {
    const count = Math.floor(rest / size)
    if (count > 0) {
      out += `${count}${unit}`
      rest -= count * size
    }
  }
  return out
}

/** The graph's time range presets, shortest first. */
export const rangePresets = ["5m", "15m", "30m", "1h", "2h", "6h", "12h", "1d", "2d", "7d"] as const

/** The preset after (`direction` 1) or before (-1) a range, which need not be a preset itself. */
export const stepRange = (range: string, direction: 1 | -1): string => {
  const seconds = parseDuration(range) ?? 3600
  const ordered = direction === 1 ? rangePresets : [...rangePresets].reverse()
  const next = ordered.find((preset) => {
    const presetSeconds = parseDuration(preset) ?? 0
    return direction === 1 ? presetSeconds > seconds : presetSeconds < seconds
  })
  return next ?? range
}

/** The step to use when none is given: about 250 points over the range, whole seconds, at least 1s. */
export const autoStep = (rangeSeconds: number): number => Math.max(1, Math.floor(rangeSeconds / 250))

/** An end time as the URL holds it (ms since epoch, or anything Date.parse reads, e.g. RFC3339) in ms. */
export const parseEnd = (text: string): number | undefined => {
  const trimmed = text.trim()
  if (trimmed === "") return undefined
  if (/^[0-9]+(\.[0-9]+)?$/.test(trimmed)) return Number(trimmed)
  const ms = Date.parse(trimmed)
  return Number.isNaN(ms) ? undefined : ms
}

const pad = (n: number, width = 2): string => String(n).padStart(width, "0")

/** A time (ms) as a datetime-local input's value, in local time: `2024-05-01T13:45:00`. */
export const toLocalInput = (ms: number): string => {
  const d = new Date(ms)
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
}

/** A time (seconds since epoch) for people, in local time: `2024-05-01 13:45:00.250`. */
export const formatTime = (seconds: number): string => {
  const ms = Math.round(seconds * 1000)
  const d = new Date(ms)
  // getMilliseconds, not ms % 1000: the remainder is negative before 1970.
  const millis = d.getMilliseconds()
  const base = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  return millis === 0 ? base : `${base}.${pad(millis, 3)}`
}
