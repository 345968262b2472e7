/**
 * The Logs page: `/logs` lists logs by key prefix (or tails them all live); `/logs?key=K` shows one log.
 * The parts live in ../logs/.
 */
import { LogList } from "../logs/list.tsx"
import { LogView } from "../logs/log.tsx"
import "../logs/logs.css"
import type { Route } from "../router.ts"

export const LogsPage = ({ route }: { route: Route }) => {
  const key = route.params.get("key")
  return key === null || key === ""
    ? <LogList route={route} />
    : <LogView key={key} route={route} logKey={key} />
}
