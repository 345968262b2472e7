/**
 * The server's APIs as the UI calls them: the Prometheus HTTP API (`/api/v1`), the EventStore's (`/v1`),
 * and WebSockets. With auth on, the token the user typed (kept in sessionStorage, for this tab only) goes
 * in `Authorization: Bearer`; a WebSocket, which cannot carry that header from a browser, offers it as the
 * subprotocol `bearer.<base64url token>` beside `opendata`, which the server picks.
 */
import { useEffect, useState } from "preact/hooks"

const tokenKey = "opendata.token"

export const getToken = (): string | undefined => sessionStorage.getItem(tokenKey) ?? undefined
export const setToken = (token: string | undefined): void => {
  if (token === undefined || token === "") sessionStorage.removeItem(tokenKey)
  else sessionStorage.setItem(tokenKey, token)
  notifyAuth()
}

/** Called when a request was refused for want of a (valid) token: the layout then asks for one. */
const authListeners = new Set<() => void>()
let authNeeded = false
const notifyAuth = () => {
  for (const listener of authListeners) listener()
}
export const useAuthNeeded = (): boolean => {
  const [needed, setNeeded] = useState(authNeeded)
  useEffect(() => {
    const listener = () => setNeeded(authNeeded)
    authListeners.add(listener)
    return () => void authListeners.delete(listener)
  }, [])
  return needed
}
export const setAuthNeeded = (needed: boolean): void => {
  authNeeded = needed
  notifyAuth()
}

/** An answer the server refused or could not give: its HTTP status and the API's own message. */
export class ApiError extends Error {
  readonly status: number
  readonly errorType: string | undefined
  constructor(status: number, message: string, errorType?: string) {
    super(message)
    this.status = status
    this.errorType = errorType
  }
}

/** `fetch` with the token, a 401 turned into "ask for a token", and the API's error message on failure. */
export const apiFetch = async (path: string, init: RequestInit = {}): Promise<Response> => {
  const headers = new Headers(init.headers)
  const token = getToken()
  if (token !== undefined) headers.set("authorization", `Bearer ${token}`)
  const response = await fetch(path, { ...init, headers })
  if (response.status === 401) setAuthNeeded(true)
  if (!response.ok) throw await errorOf(response)
  return response
}

const errorOf = async (response: Response): Promise<ApiError> => {
  const text = await response.text()
  try {
    const body = JSON.parse(text) as Record<string, unknown>
    // Prometheus: {status: "error", errorType, error}; EventStore: {error, message}.
    if (typeof body["status"] === "string" && typeof body["error"] === "string") {
      return new ApiError(response.status, body["error"], typeof body["errorType"] === "string" ? body["errorType"] : undefined)
    }
    if (typeof body["message"] === "string") {
      return new ApiError(response.status, body["message"], typeof body["error"] === "string" ? body["error"] : undefined)
    }
  } catch {
    // not JSON: the text is the message
  }
  return new ApiError(response.status, text.trim() === "" ? `HTTP ${response.status}` : text.trim())
}

export const getJson = async <A>(path: string, init?: RequestInit): Promise<A> => (await apiFetch(path, init)).json() as Promise<A>

/** A Prometheus API call (`/api/v1/...`): its `data`, or an ApiError with Prometheus's message. */
export const promApi = async <A>(path: string, params: Record<string, string>): Promise<{ data: A; warnings: Array<string> }> => {
  const body = new URLSearchParams(params)
  const json = await getJson<{ status: string; data: A; warnings?: Array<string>; infos?: Array<string> }>(path, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body
  })
  return { data: json.data, warnings: [...(json.warnings ?? []), ...(json.infos ?? [])] }
}

/** A Prometheus API GET (`/api/v1/status/...`, label values): its `data`, or an ApiError with Prometheus's message. */
export const promGet = async <A>(path: string, params: Record<string, string> = {}): Promise<A> => {
  const query = new URLSearchParams(params).toString()
  const json = await getJson<{ status: string; data: A }>(query === "" ? path : `${path}?${query}`)
  return json.data
}

const base64url = (text: string): string =>
  btoa(String.fromCharCode(...new TextEncoder().encode(text))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")

/** A WebSocket to `path` (with its query) on this server, carrying the token as a subprotocol. */
export const openSocket = (path: string): WebSocket => {
  const url = new URL(path, location.href)
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:"
  const token = getToken()
  return new WebSocket(url, token === undefined ? ["opendata"] : ["opendata", `bearer.${base64url(token)}`])
}

/** What the token in use may do (`GET /v1/whoami`): its scope, and the prefix it is restricted to. */
export interface Whoami {
  readonly auth: boolean
  readonly name?: string
  readonly scope: "read" | "write" | "admin"
  readonly prefix?: string
}
export const whoami = (): Promise<Whoami> => getJson<Whoami>("/v1/whoami")
