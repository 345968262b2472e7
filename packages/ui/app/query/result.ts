/** The Prometheus query API's result shapes, and label sets and values written out for people. */

export type Labels = Readonly<Record<string, string>>
/** `[seconds, "value"]` as the API sends a sample. */
export type Sample = readonly [number, string]
/** A native histogram sample: `[seconds, {count, sum, buckets}]`. */
export type HistogramSample = readonly [number, { readonly count: string; readonly sum: string }]

export interface InstantSeries {
  readonly metric: Labels
  readonly value?: Sample
  readonly histogram?: HistogramSample
}
export interface RangeSeries {
  readonly metric: Labels
  readonly values?: ReadonlyArray<Sample>
  readonly histograms?: ReadonlyArray<HistogramSample>
}

export type QueryResult =
  | { readonly resultType: "vector"; readonly result: ReadonlyArray<InstantSeries> }
  | { readonly resultType: "matrix"; readonly result: ReadonlyArray<RangeSeries> }
  | { readonly resultType: "scalar"; readonly result: Sample }
  | { readonly resultType: "string"; readonly result: Sample }

/** How many series (or 1 for a scalar or string) a result holds. */
export const seriesCount = (result: QueryResult): number =>
  result.resultType === "vector" || result.resultType === "matrix" ? result.result.length : 1

const legacyName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const legacyLabel = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const quote = (text: string): string => JSON.stringify(text)

/**
 * A label set as PromQL writes a selector: `up{job="api", instance="a:9090"}`, `{job="api"}` without a name,
 * and names that are not plain identifiers quoted (`{"my.metric", "a.b"="c"}`).
 */
export const formatLabels = (labels: Labels): string => {
  const name = labels["__name__"]
  const parts: Array<string> = []
  let head = ""
  if (name !== undefined) {
    if (legacyName.test(name)) head = name
    else parts.push(quote(name))
  }
  for (const key in labels) {
    if (key === "__name__") continue
    parts.push(`${legacyLabel.test(key) ? key : quote(key)}=${quote(labels[key] ?? "")}`)
  }
  if (parts.length === 0 && head !== "") return head
  return `${head}{${parts.join(", ")}}`
}

/** A sample's value as a number: Prometheus writes infinities as `+Inf` / `-Inf`, which parseFloat misses. */
export const parseValue = (text: string): number => {
  if (text === "+Inf" || text === "Inf") return Infinity
  if (text === "-Inf") return -Infinity
  return parseFloat(text)
}

/**
 * A number shortened for a tooltip or axis: about six significant digits below 1000, thousands grouped with
 * at most two decimals from 1000, and exponent form (four significant digits) when tiny or huge. The form is
 * chosen by the value as it will be written, rounded: 999.9999999 rounds to 1000 and is written as 1000 is
 * ("1,000"), and 0.0000999999 rounds to 0.0001 and is written as 0.0001 is.
 */
export const formatValue = (value: number | null | undefined): string => {
  if (value === null || value === undefined) return "–"
  if (!Number.isFinite(value)) return Number.isNaN(value) ? "NaN" : value > 0 ? "+Inf" : "-Inf"
  if (value === 0) return "0"
  const plain = Number(value.toPrecision(6))
  if (Math.abs(plain) >= 1e-4 && Math.abs(plain) < 1000) return String(plain)
  if (Math.abs(plain) >= 1000 && Math.abs(value) < 1e15) return value.toLocaleString("en-US", { maximumFractionDigits: 2 })
  const exponent = value.toExponential(3)
  // A tiny value whose four digits round up to 1e-4 is written as 0.0001 is.
  if (Math.abs(value) < 1e-4 && Math.abs(Number(exponent)) >= 1e-4) return String(Number(exponent))
  return exponent.replace(/\.?0+e/, "e")
}
