/**
 * The graph: a uPlot time chart of aligned series, with our own hover tooltip (uPlot's legend is off; the
 * page draws its own). One instance lives as long as its data: hovering, toggling series, and resizing
 * update it in place.
 */
import uPlot from "uplot"
import "uplot/dist/uPlot.min.css"
import { type Aligned, stackSeries } from "./align.ts"
import { formatValue } from "./result.ts"
import { formatTime } from "./time.ts"

/** Series colors, picked by index: distinct hues that read on light and dark backgrounds. */
const palette = [
  "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
  "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#9c755f", "#ff9da7", "#76b7b2", "#edc948", "#af7aa1"
] as const
export const seriesColor = (index: number): string => palette[index % palette.length]!

/** The series drawn in full with hover points; past this, points are left off to keep hovering cheap. */
const maxHoverPoints = 50
/** Lines shown in the tooltip; the rest are counted. */
const maxTooltipRows = 10

export interface ChartInput {
  readonly data: Aligned
  readonly labels: ReadonlyArray<string>
  readonly stacked: boolean
  readonly visible: ReadonlyArray<boolean>
}

const cssVar = (name: string, fallback: string): string =>
  getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback

const withAlpha = (hex: string, alpha: number): string => {
  const n = parseInt(hex.slice(1), 16)
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`
}

export class TimeChart {
  private readonly plot: uPlot
  private readonly tooltip: HTMLDivElement
  private readonly input: ChartInput
  private visible: Array<boolean>

  constructor(root: HTMLElement, input: ChartInput, width: number, height: number) {
    this.input = input
    this.visible = [...input.visible]
    this.plot = new uPlot(this.options(width, height), this.plotData(), root)
    this.tooltip = document.createElement("div")
    this.tooltip.className = "chart-tooltip"
    this.tooltip.hidden = true
    this.plot.over.appendChild(this.tooltip)
    this.plot.over.addEventListener("mouseleave", () => void (this.tooltip.hidden = true))
  }

  /** Shows and hides series (one flag per series); stacked charts re-stack what is shown. */
  setVisible(visible: ReadonlyArray<boolean>): void {
    const changed = visible.some((show, i) => show !== this.visible[i])
    if (!changed) return
    const before = this.visible
    this.visible = [...visible]
    this.plot.batch(() => {
      visible.forEach((show, i) => {
        if (show !== before[i]) this.plot.setSeries(i + 1, { show }, false)
      })
      if (this.input.stacked) {
        this.plot.delBand(null)
        for (const band of this.bands()) this.plot.addBand(band)
        this.plot.setData(this.plotData())
      }
    })
  }

  /** Fits the chart to a new size (the container's width changed). */
  resize(width: number, height: number): void {
    if (width !== this.plot.width || height !== this.plot.height) this.plot.setSize({ width, height })
  }

  destroy(): void {
    this.plot.destroy()
  }

  private plotData(): uPlot.AlignedData {
    const { data, stacked } = this.input
    const ys = stacked ? stackSeries(data.ys, this.visible) : data.ys
    return [data.x, ...ys] as uPlot.AlignedData
  }

  /** Stacked: each shown series fills down to the shown series below it. */
  private bands(): Array<uPlot.Band> {
    const bands: Array<uPlot.Band> = []
    let below = -1
    this.visible.forEach((show, i) => {
      if (!show) return
      if (below >= 0) bands.push({ series: [i + 1, below + 1] })
      below = i
    })
    return bands
  }

  private options(width: number, height: number): uPlot.Options {
    const { labels, stacked } = this.input
    const text = cssVar("--fg-muted", "#5f6773")
    const grid = cssVar("--border", "#d9dde3")
    const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } }
    const series: Array<uPlot.Series> = [{}]
    labels.forEach((label, i) => {
      const color = seriesColor(i)
      series.push({
        label,
        stroke: color,
        width: 1.5,
        show: this.visible[i] !== false,
        spanGaps: false,
        points: { show: false },
        ...(stacked ? { fill: withAlpha(color, 0.35) } : {})
      })
    })
    return {
      width,
      height,
      legend: { show: false },
      cursor: { points: { show: labels.length <= maxHoverPoints }, drag: { x: true, y: false } },
      scales: { x: { time: true }, ...(stacked ? { y: { range: (_u, min, max) => [Math.min(0, min), Math.max(max, 0) || 1] } } : {}) },
      series,
      bands: stacked ? this.bands() : [],
      axes: [
        axis,
        {
          ...axis,
          values: (_u, splits) => splits.map((v) => formatValue(v)),
          size: (_u, values) => (values === null || values === undefined ? 40 : Math.max(...values.map((v) => v.length), 2) * 7 + 18)
        }
      ],
      hooks: { setCursor: [(u) => this.showTooltip(u)] }
    }
  }

  /** The tooltip at the cursor: its time and the shown series' values there, highest first. */
  private showTooltip(u: uPlot): void {
    const idx = u.cursor.idx
    const left = u.cursor.left ?? -1
    const top = u.cursor.top ?? -1
    if (idx === null || idx === undefined || left < 0) {
      this.tooltip.hidden = true
      return
    }
    const { data, labels } = this.input
    const rows: Array<{ i: number; value: number }> = []
    for (let i = 0; i < data.ys.length; i++) {
      const value = data.ys[i]![idx]
      if (this.visible[i] !== false && value !== null && value !== undefined) rows.push({ i, value })
    }
    rows.sort((a, b) => b.value - a.value)

    const tip = this.tooltip
    tip.replaceChildren()
    const head = document.createElement("div")
    head.className = "chart-tooltip-time"
    head.textContent = formatTime(data.x[idx]!)
    tip.appendChild(head)
    for (const { i, value } of rows.slice(0, maxTooltipRows)) {
      const row = document.createElement("div")
      row.className = "chart-tooltip-row"
      const swatch = document.createElement("span")
      swatch.className = "swatch"
      swatch.style.background = seriesColor(i)
      const name = document.createElement("span")
      name.className = "chart-tooltip-label"
      name.textContent = labels[i] ?? ""
      const val = document.createElement("span")
      val.className = "chart-tooltip-value"
      val.textContent = formatValue(value)
      row.append(swatch, name, val)
      tip.appendChild(row)
    }
    if (rows.length > maxTooltipRows) {
      const more = document.createElement("div")
      more.className = "muted"
      more.textContent = `… and ${rows.length - maxTooltipRows} more`
      tip.appendChild(more)
    }
    if (rows.length === 0) {
      const none = document.createElement("div")
      none.className = "muted"
      none.textContent = "no value"
      tip.appendChild(none)
    }
    tip.hidden = false
    // Beside the cursor, flipped to its left near the right edge, and kept inside the plot vertically.
    const width = u.over.clientWidth
    const height = u.over.clientHeight
    const tipWidth = tip.offsetWidth
    const tipHeight = tip.offsetHeight
    const x = left + 16 + tipWidth > width ? Math.max(0, left - 16 - tipWidth) : left + 16
    const y = Math.max(0, Math.min(top + 12, height - tipHeight))
    tip.style.transform = `translate(${x}px, ${y}px)`
  }
}
