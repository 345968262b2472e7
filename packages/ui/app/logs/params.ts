/** The Logs page keeps its state in the URL query: helpers to read and change it. */
import { navigate, setParams } from "../router.ts"
import { parseOffset } from "./format.ts"

/** The current query with `changes` applied (undefined removes a parameter). */
const changed = (changes: Record<string, string | undefined>): URLSearchParams => {
  const params = new URLSearchParams(location.search)
  for (const [name, value] of Object.entries(changes)) {
    if (value === undefined) params.delete(name)
    else params.set(name, value)
  }
  return params
}

/** Edits the query in place (typing, toggles): no new history entry. */
export const replaceParams = (changes: Record<string, string | undefined>): void => setParams(changed(changes))

/** Moves to another view (a page of records, another key): a new history entry, so Back returns. */
export const pushParams = (changes: Record<string, string | undefined>): void => {
  const query = changed(changes).toString()
  navigate(`${location.pathname}${query === "" ? "" : `?${query}`}`)
}

/** A non-negative integer parameter, or undefined. */
export const intParam = (params: URLSearchParams, name: string): number | undefined => parseOffset(params.get(name) ?? "")

/** The link to a log's page. */
export const logHref = (key: string): string => `/logs?key=${encodeURIComponent(key)}`
