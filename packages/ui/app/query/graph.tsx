/** The Graph tab's chart and legend for a range query's series: clicking a legend item shows or hides its series. */
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks"
import { type Aligned, alignSeries } from "./align.ts"
import { seriesColor, TimeChart } from "./chart.ts"
import { formatLabels, type RangeSeries } from "./result.ts"

/** Legend items drawn; past this the rest are counted (their series are still charted). */
const maxLegendItems = 1000

export interface GraphProps {
  readonly series: ReadonlyArray<RangeSeries>
  /** The query's range and step, in seconds. */
  readonly start: number
  readonly end: number
  readonly step: number
  readonly stacked: boolean
}

const chartHeight = (width: number): number => Math.round(Math.min(400, Math.max(220, width * 0.4)))

/** A counter bumped when the system's light/dark setting changes: the canvas reads its colors when drawn. */
const useColorScheme = (): number => {
  const [scheme, setScheme] = useState(0)
  useEffect(() => {
    const media = matchMedia("(prefers-color-scheme: dark)")
    const listener = () => setScheme((n) => n + 1)
    media.addEventListener("change", listener)
    return () => media.removeEventListener("change", listener)
  }, [])
  return scheme
}

export const Graph = ({ series, start, end, step, stacked }: GraphProps) => {
  const data = useMemo(() => alignSeries(series, start, end, step), [series, start, end, step])
  const labels = useMemo(() => series.map((s) => formatLabels(s.metric)), [series])
  // Which series are shown, reset with each new result.
  const [shown, setShown] = useState<{ readonly data: Aligned; readonly visible: ReadonlyArray<boolean> } | undefined>(undefined)
  const allShown = useMemo(() => data.ys.map(() => true), [data])
  const visible = shown !== undefined && shown.data === data ? shown.visible : allShown
  const scheme = useColorScheme()

  const box = useRef<HTMLDivElement>(null)
  const chart = useRef<TimeChart | undefined>(undefined)
  const visibleNow = useRef(visible)
  visibleNow.current = visible

  useLayoutEffect(() => {
    const root = box.current
    if (root === null || data.x.length === 0 || data.ys.length === 0) return
    const width = root.clientWidth
    const instance = new TimeChart(root, { data, labels, stacked, visible: visibleNow.current }, width, chartHeight(width))
    chart.current = instance
    const observer = new ResizeObserver(() => {
      const w = root.clientWidth
      if (w > 0) instance.resize(w, chartHeight(w))
    })
    observer.observe(root)
    return () => {
      observer.disconnect()
      instance.destroy()
      chart.current = undefined
    }
  }, [data, labels, stacked, scheme])

  useEffect(() => {
    chart.current?.setVisible(visible)
  }, [visible])

  /** Click: show or hide one series. Ctrl/Cmd-click: show only it (or all again if it already is alone). */
  const toggle = (index: number, only: boolean) => {
    let next: Array<boolean>
    if (only) {
      const alone = visible.every((show, i) => show === (i === index))
      next = visible.map((_, i) => alone || i === index)
    } else {
      next = [...visible]
      next[index] = !next[index]
    }
    setShown({ data, visible: next })
  }

  if (data.ys.length === 0 || data.x.length === 0) {
    return <div class="graph" data-testid="graph"><p class="muted empty">No data points found.</p></div>
  }
  const items = labels.length > maxLegendItems ? labels.slice(0, maxLegendItems) : labels
  return (
    <div class="graph-wrap">
      <div class="graph" data-testid="graph" ref={box} />
      <div class="graph-legend" data-testid="graph-legend">
        {items.map((label, i) => (
          <div
            key={i}
            class={visible[i] === false ? "legend-item off" : "legend-item"}
            title="Click to show or hide; Ctrl-click to show only this series"
            onClick={(event) => toggle(i, event.ctrlKey || event.metaKey)}
          >
            <span class="swatch" style={{ background: seriesColor(i) }} />
            <span class="legend-label">{label}</span>
          </div>
        ))}
      </div>
      {labels.length > maxLegendItems ? (
        <p class="muted">Legend shows the first {maxLegendItems} of {labels.length} series.</p>
      ) : null}
    </div>
  )
}
