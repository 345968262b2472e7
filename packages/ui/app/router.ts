/** A tiny client-side router: the page is the path, its state the query string (so a link reproduces a view). */
import { useEffect, useState } from "preact/hooks"

export type Route = { readonly path: string; readonly params: URLSearchParams }

const current = (): Route => ({ path: location.pathname, params: new URLSearchParams(location.search) })
const listeners = new Set<() => void>()

/** Goes to `url` (a path with an optional query); `replace` rewrites the history entry instead of adding one. */
export const navigate = (url: string, replace = false): void => {
  if (replace) history.replaceState(null, "", url)
  else history.pushState(null, "", url)
  for (const listener of listeners) listener()
}

/** Rewrites the current URL's query (no new history entry): for state kept in the URL as the user edits. */
export const setParams = (params: URLSearchParams): void => {
  const query = params.toString()
  const url = `${location.pathname}${query === "" ? "" : `?${query}`}`
  if (url !== `${location.pathname}${location.search}`) navigate(url, true)
}

addEventListener("popstate", () => {
  for (const listener of listeners) listener()
})

/** The current route, re-rendering on navigation. */
export const useRoute = (): Route => {
  const [route, setRoute] = useState(current)
  useEffect(() => {
    const listener = () => setRoute(current())
    listeners.add(listener)
    return () => void listeners.delete(listener)
  }, [])
  return route
}

/** A link that navigates without reloading the page. */
export const onLinkClick = (event: MouseEvent): void => {
  const anchor = (event.currentTarget as HTMLAnchorElement)
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return
  event.preventDefault()
  navigate(anchor.getAttribute("href") ?? "/")
}
