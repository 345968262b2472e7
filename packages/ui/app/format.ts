/** Number, byte, duration and time formatting shared by the pages. */

export const formatBytes = (n: number): string => {
  if (!Number.isFinite(n)) return String(n)
  const units = ["B", "KiB", "MiB", "GiB", "TiB"]
  let value = n
  let unit = 0
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit += 1
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ${units[unit]}`
}

export const formatCount = (n: number): string => (Number.isFinite(n) ? n.toLocaleString("en-US") : String(n))

export const formatDuration = (seconds: number): string => {
  const s = Math.max(0, Math.floor(seconds))
  const d = Math.floor(s / 86400)
  const h = Math.floor((s % 86400) / 3600)
  const m = Math.floor((s % 3600) / 60)
  const parts = [d > 0 ? `${d}d` : "", h > 0 ? `${h}h` : "", m > 0 ? `${m}m` : "", `${s % 60}s`].filter((p) => p !== "")
  return parts.slice(0, 3).join(" ")
}

export const formatTime = (ms: number): string => new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z")

export const formatRatio = (r: number | null | undefined): string => (r === null || r === undefined ? "—" : `${(r * 100).toFixed(1)}%`)
