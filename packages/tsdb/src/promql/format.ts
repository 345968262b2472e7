/**
 * How PromQL writes values as text, as Prometheus's Go code does: Go's `strconv.Quote` (`goQuote`), a
 * float as `strconv.FormatFloat(v, 'f', -1, 64)` (`formatNumber`, the printer's numbers) and as `%f`
 * (`formatGoFloat`, in error messages), and the label values `count_values` makes of floats
 * (`formatValue`) and of native histograms (`histogramText`).
 *
 * The HTTP API renders sample values with its own `formatFloat` (Http.ts), which differs from
 * `formatNumber` for -0 (`0` there, `-0` here).
 */
import { formatG } from "../internal/goString.ts"
import type { FloatHistogram } from "./histogram.ts"
import { allBuckets } from "./histogram.ts"

/** Go's `strconv.Quote`. */
export const goQuote = (s: string): string => {
  let out = '"'
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0
    switch (ch) {
      case '"':
        out += '\\"'
        continue
      case "\\":
        out += "\\\\"
        continue
      case "\x07":
        out += "\\a"
        continue
      case "\b":
        out += "\\b"
        continue
      case "\f":
        out += "\\f"
        continue
      case "\n":
        out += "\\n"
        continue
      case "\r":
        out += "\\r"
        continue
      case "\t":
        out += "\\t"
        continue
      case "\v":
        out += "\\v"
        continue
    }
    if (cp >= 0xdc80 && cp <= 0xdcff) out += `\\x${(cp - 0xdc00).toString(16)}` // a byte that is not UTF-8 (decodeGoBytes)
    else if (ch === " " || /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u.test(ch)) out += ch
    else if (cp < 0x80) out += `\\x${cp.toString(16).padStart(2, "0")}`
    else if (cp < 0x10000) out += `\\u${cp.toString(16).padStart(4, "0")}`
    else out += `\\U${cp.toString(16).padStart(8, "0")}`
  }
  return out + '"'
}

/** Go's `strconv.FormatFloat(v, 'f', -1, 64)`, with Prometheus's `+Inf` / `-Inf` / `NaN`. */
export const formatNumber = (v: number): string => {
  if (Number.isNaN(v)) return "NaN"
  if (v === Infinity) return "+Inf"
  if (v === -Infinity) return "-Inf"
  if (Object.is(v, -0)) return "-0"
  const s = String(v)
  const m = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(s)
  if (m === null) return s
  const [, sign, first, rest = "", expText] = m
  const exp = Number(expText)
  const digits = `${first}${rest}`
  if (exp >= 0) return sign + digits.padEnd(exp + 1, "0")
  return `${sign}0.${"0".repeat(-exp - 1)}${digits}`
}

/** Go's `%f` (used in an error message). */
export const formatGoFloat = (v: number): string =>
  Number.isNaN(v) ? "NaN" : v === Infinity ? "+Inf" : v === -Infinity ? "-Inf" : v.toFixed(6)

/** A float as Prometheus prints it in labels (count_values) and strings. */
export const formatValue = (v: number): string => {
  if (Number.isNaN(v)) return "NaN"
  if (v === Number.POSITIVE_INFINITY) return "+Inf"
  if (v === Number.NEGATIVE_INFINITY) return "-Inf"
  const s = String(v)
  return s.includes("e") ? s.replace(/e([+-])(\d)$/, "e$10$2") : s
}

/** A histogram as Prometheus's `FloatHistogram.String` prints it (count_values labels): non-empty buckets, ascending. */
export const histogramText = (h: FloatHistogram): string => {
  const parts = [`count:${formatG(h.count)}`, `sum:${formatG(h.sum)}`]
  for (const b of allBuckets(h)) {
    if (b.count === 0) continue
    parts.push(`${b.lowerInclusive ? "[" : "("}${formatG(b.lower)},${formatG(b.upper)}${b.upperInclusive ? "]" : ")"}:${formatG(b.count, 21)}`)
  }
  return `{${parts.join(", ")}}`
}
