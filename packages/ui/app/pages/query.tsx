/**
 * The Query page: PromQL query panels, each with a table and a graph, as Prometheus's UI has them. All state
 * is in the URL (see query/params.ts), so reloading or sharing the link restores every panel and reruns it.
 */
import { useRef } from "preact/hooks"
import { QueryPanel } from "../query/panel.tsx"
import { defaultPanel, maxPanels, type PanelState, readPanels, writePanels } from "../query/params.ts"
import "../query/query.css"
import { type Route, setParams } from "../router.ts"

/** The panels as the URL has them now (read afresh, so back-to-back changes build on each other). */
const currentPanels = (): Array<PanelState> => readPanels(new URLSearchParams(location.search))
const savePanels = (panels: ReadonlyArray<PanelState>): void => setParams(writePanels(new URLSearchParams(location.search), panels))

export const QueryPage = ({ route }: { route: Route }) => {
  const panels = readPanels(route.params)
  // Stable keys for panels, so removing one keeps the others' editors and results.
  const keys = useRef<Array<number>>([])
  const nextKey = useRef(0)
  while (keys.current.length < panels.length) keys.current.push(nextKey.current++)
  keys.current.length = panels.length

  const update = (index: number, patch: Partial<PanelState>) =>
    savePanels(currentPanels().map((panel, i) => (i === index ? { ...panel, ...patch } : panel)))
  const remove = (index: number) => {
    keys.current.splice(index, 1)
    savePanels(currentPanels().filter((_, i) => i !== index))
  }

  return (
    <div class="query-page">
      {panels.map((panel, index) => (
        <QueryPanel
          key={keys.current[index]}
          state={panel}
          onChange={(patch) => update(index, patch)}
          onRemove={panels.length > 1 ? () => remove(index) : undefined}
        />
      ))}
      <button
        type="button"
        data-testid="add-panel"
        disabled={panels.length >= maxPanels}
        title={panels.length >= maxPanels ? `At most ${maxPanels} panels` : undefined}
        onClick={() => savePanels([...currentPanels(), defaultPanel])}
      >
        Add panel
      </button>
    </div>
  )
}
