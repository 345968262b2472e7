/**
 * A query panel's settings and how they live in the URL. Panel 0 uses plain names (`expr`, `tab`, `range`,
 * `end`, `step`, `stacked`); panel i >= 1 the same names prefixed `p<i>.` (e.g. `p1.expr`). A panel i >= 1
 * exists when any of its names is present, so an added panel always writes its `expr` (even empty). At most
 * `maxPanels` panels are read or written: names of panels past that are ignored (a URL naming `p1000000.expr`
 * must not make a million panels).
 */
import { parseDuration } from "./time.ts"

export type Tab = "graph" | "table"

export interface PanelState {
  readonly expr: string
  readonly tab: Tab
  /** The graph's time range as written, e.g. `1h`. */
  readonly range: string
  /** The end time as written in the URL (ms since epoch or RFC3339); empty means now. */
  readonly end: string
  /** The graph's step as written (`15s`, `30`); empty means automatic. */
  readonly step: string
  readonly stacked: boolean
}

export const defaultPanel: PanelState = { expr: "", tab: "table", range: "1h", end: "", step: "", stacked: false }

/** The most panels a page has. */
export const maxPanels = 20

const names = ["expr", "tab", "range", "end", "step", "stacked"] as const
const prefix = (index: number): string => (index === 0 ? "" : `p${index}.`)
const panelKey = /^p([1-9][0-9]*)\.(expr|tab|range|end|step|stacked)$/

/** The number of panels the URL describes: at least one, at most maxPanels. */
const panelCount = (params: URLSearchParams): number => {
  let count = 1
  for (const key of params.keys()) {
    const match = panelKey.exec(key)
    if (match === null) continue
    const index = Number(match[1])
    if (index < maxPanels) count = Math.max(count, index + 1)
  }
  return count
}

/** The panel at `index` as the URL describes it, with defaults for what is missing or invalid. */
const readPanel = (params: URLSearchParams, index: number): PanelState => {
  const get = (name: string): string | null => params.get(prefix(index) + name)
  const tab = get("tab")
  const range = get("range") ?? ""
  const stacked = get("stacked")
  return {
    expr: get("expr") ?? "",
    tab: tab === "graph" || tab === "table" ? tab : defaultPanel.tab,
    range: parseDuration(range) !== undefined ? range : defaultPanel.range,
    end: get("end") ?? "",
    step: get("step") ?? "",
    stacked: stacked === "1" || stacked === "true"
  }
}

/** All panels in the URL. */
export const readPanels = (params: URLSearchParams): Array<PanelState> =>
  Array.from({ length: panelCount(params) }, (_, index) => readPanel(params, index))

/**
 * The URL's query with `panels` written in place of whatever panels it described (other names kept); only
 * the first maxPanels are written, as only those are read back.
 */
export const writePanels = (params: URLSearchParams, panels: ReadonlyArray<PanelState>): URLSearchParams => {
  const next = new URLSearchParams()
  for (const [key, value] of params) {
    if (!panelKey.test(key) && !(names as ReadonlyArray<string>).includes(key)) next.append(key, value)
  }
  panels.slice(0, maxPanels).forEach((panel, index) => {
    const p = prefix(index)
    next.set(`${p}expr`, panel.expr)
    next.set(`${p}tab`, panel.tab)
    next.set(`${p}range`, panel.range)
    if (panel.end !== "") next.set(`${p}end`, panel.end)
    if (panel.step !== "") next.set(`${p}step`, panel.step)
    if (panel.stacked) next.set(`${p}stacked`, "1")
  })
  return next
}
