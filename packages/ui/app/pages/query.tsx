import type { Route } from "../router.ts"
export const QueryPage = (_: { route: Route }) => <p>Query</p>
