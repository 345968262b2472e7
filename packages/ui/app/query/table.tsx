/** The Table tab: an instant query's result as rows of label set and value (a matrix row lists its samples). */
import type { ComponentChild } from "preact"
import { formatLabels, type HistogramSample, type QueryResult, type Sample } from "./result.ts"
import { formatTime } from "./time.ts"

/** Rows drawn at most; the rest are counted. */
export const maxTableRows = 10000

const histogramText = (h: HistogramSample[1]): string => `histogram count=${h.count} sum=${h.sum}`

/** A matrix row's samples, one per line: `value @ time`. */
const samplesCell = (values: ReadonlyArray<Sample>, histograms: ReadonlyArray<HistogramSample>): ComponentChild => (
  <>
    {values.map(([t, v]) => <div key={`v${t}`}>{v} <span class="muted">@ {formatTime(t)}</span></div>)}
    {histograms.map(([t, h]) => <div key={`h${t}`}>{histogramText(h)} <span class="muted">@ {formatTime(t)}</span></div>)}
  </>
)

interface Row {
  readonly label: string
  readonly value: ComponentChild
}

const rowsOf = (result: QueryResult): Array<Row> => {
  switch (result.resultType) {
    case "scalar":
      return [{ label: "scalar", value: result.result[1] }]
    case "string":
      return [{ label: "string", value: result.result[1] }]
    case "vector":
      return result.result.slice(0, maxTableRows).map((s) => ({
        label: formatLabels(s.metric),
        value: s.value !== undefined ? s.value[1] : s.histogram !== undefined ? histogramText(s.histogram[1]) : ""
      }))
    case "matrix":
      return result.result.slice(0, maxTableRows).map((s) => ({
        label: formatLabels(s.metric),
        value: samplesCell(s.values ?? [], s.histograms ?? [])
      }))
  }
}

export const ResultTable = ({ result }: { result: QueryResult }) => {
  const rows = rowsOf(result)
  const total = result.resultType === "vector" || result.resultType === "matrix" ? result.result.length : 1
  return (
    <div class="result-table-wrap">
      <table class="result-table" data-testid="result-table">
        <tbody>
          {rows.map((row, i) => (
            <tr key={i}>
              <td class="series mono">{row.label}</td>
              <td class="num mono">{row.value}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {total === 0 ? <p class="muted">Empty query result.</p> : null}
      {total > rows.length ? <p class="muted">Showing the first {rows.length} of {total} series.</p> : null}
    </div>
  )
}
