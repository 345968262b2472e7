import type { Route } from "../router.ts"
export const LogsPage = (_: { route: Route }) => <p>Logs</p>
