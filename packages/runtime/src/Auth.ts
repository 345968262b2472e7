/**
 * Bearer-token authentication of the HTTP API.
 *
 * Tokens come from the configuration (`auth.tokens` in `opendata.yaml`, `OPENDATA_AUTH_TOKENS`, and the
 * tokens file `auth.file` / `OPENDATA_AUTH_FILE` names), each with a `name`, its secret `token`, a `scope`
 * and optionally a `prefix`:
 *
 *   tokens:
 *     - { name: grafana, token: "<secret>", scope: read }
 *     - { name: prometheus, token: "<secret>", scope: write }
 *     - { name: orders-app, token: "<secret>", scope: write, prefix: "orders/" }
 *     - { name: operator, token: "<secret>", scope: admin }
 *
 * With tokens configured, every request but `/-/healthy` and `/-/ready` needs `Authorization: Bearer
 * <token>`: without a valid one it is answered 401 (with `WWW-Authenticate: Bearer`), outside the token's
 * scope or prefix 403, before any route runs (a WebSocket tail is refused before the upgrade, with the
 * HTTP status). The answer is in the envelope of the API asked: Prometheus's on `/api/v1`
 * (`{"status":"error","errorType":"unauthorized"|"forbidden","error":...}`), the EventStore's on `/v1`
 * (`{"error":"Unauthorized"|"Forbidden","message":...}`), plain text elsewhere.
 *
 * Scopes: `read` reads (every GET and HEAD, including tails and `/metrics`, and the POSTed Prometheus
 * queries); `write` also writes (remote write, appends and append sessions, offset commits, fencing
 * tokens, retention, and any other non-GET request); `admin` also destroys (DELETE of a log, trim). A
 * `prefix` restricts a token to the EventStore logs whose keys start with it (and the group offsets of those
 * logs): listing, prefix tails and append sessions must ask for a prefix (and a list `cursor`) that starts
 * with it (a session then refuses frames for other logs), and every other route (the TSDB, `/metrics`) is
 * refused.
 *
 * Secrets are compared in constant time (SHA-256 digests of the presented and of every configured token,
 * compared with `timingSafeEqual`, all of them every time), and never logged: a `Token` holds its secret
 * `Redacted`, and errors about a token name its place in the configuration, never its value.
 */
import { createHash, timingSafeEqual } from "node:crypto"
import * as fs from "node:fs"
import { Effect, Layer, Redacted, Schema } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { Limits as EventStoreLimits } from "@opendata/eventstore"
import { parse as parseYaml } from "yaml"

// -------------------------------------------------------------------------------------------------
// Tokens
// -------------------------------------------------------------------------------------------------

/** What a token may do: `read`; `write` (and read); `admin` (and write and read). */
export type Scope = "read" | "write" | "admin"
export const scopes: ReadonlyArray<Scope> = ["read", "write", "admin"]
const rank: Readonly<Record<Scope, number>> = { read: 0, write: 1, admin: 2 }

export interface Token {
  /** Names the token in logs and answers (never the secret). */
  readonly name: string
  /** The secret a client sends as `Authorization: Bearer <token>`. */
  readonly token: Redacted.Redacted<string>
  readonly scope: Scope
  /** Only EventStore logs whose keys start with this (and nothing else). */
  readonly prefix?: string | undefined
}

/** A secret shorter than this is refused: tokens are meant to be random (`openssl rand -hex 32`). */
export const tokenLengthMin = 16
export const tokenLengthMax = 4096
const nameLengthMax = 100

/** Tokens that cannot be used: `field` says where (`tokens[2].scope`), `reason` what is wrong; no secret. */
export class InvalidTokens extends Schema.TaggedError<InvalidTokens>()("InvalidTokens", {
  field: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `${this.field} ${this.reason}`
  }
}

const fields = ["name", "token", "scope", "prefix"]

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * A list of tokens as written in YAML or JSON (`[{ name, token, scope, prefix? }, ...]`), checked field by
 * field; `path` names the list in errors (`auth.tokens`).
 */
export const decodeTokens = (raw: unknown, path: string): Effect.Effect<ReadonlyArray<Token>, InvalidTokens> =>
  Effect.suspend(() => {
    const fail = (field: string, reason: string) => Effect.fail(new InvalidTokens({ field, reason }))
    if (!Array.isArray(raw)) return fail(path, "must be a list of tokens, each { name, token, scope, prefix? }")
    const tokens: Array<Token> = []
    for (const [i, entry] of raw.entries()) {
      const at = `${path}[${i}]`
      if (!isRecord(entry)) return fail(at, "must be a mapping with name, token, scope and optionally prefix")
      const unknown = Object.keys(entry).find((k) => !fields.includes(k))
      if (unknown !== undefined) return fail(`${at}.${unknown}`, "is not a known field (name, token, scope, prefix)")
      const { name, prefix, scope, token } = entry
      if (typeof name !== "string" || name.length === 0 || name.length > nameLengthMax || /[\p{Cc}]/u.test(name)) {
        return fail(`${at}.name`, `must be a non-empty string of at most ${nameLengthMax} characters, without control characters`)
      }
      if (typeof token !== "string") return fail(`${at}.token`, "must be a string (quote it in YAML)")
      if (token.length < tokenLengthMin || token.length > tokenLengthMax) {
        return fail(`${at}.token`, `must be ${tokenLengthMin} to ${tokenLengthMax} characters long (e.g. openssl rand -hex 32)`)
      }
      if (!/^[\x21-\x7e]+$/.test(token)) {
        return fail(`${at}.token`, "must be printable ASCII without spaces (what an Authorization header carries)")
      }
      if (typeof scope !== "string" || !(scopes as ReadonlyArray<string>).includes(scope)) {
        return fail(`${at}.scope`, "must be read, write or admin")
      }
      if (prefix !== undefined && prefix !== null) {
        if (typeof prefix !== "string" || prefix.length === 0) {
          return fail(`${at}.prefix`, "must be a non-empty string (leave it out for every log)")
        }
        if (!prefix.isWellFormed() || prefix.includes("\u0000") || Buffer.byteLength(prefix, "utf8") > EventStoreLimits.logKeyBytesMax) {
          return fail(`${at}.prefix`, `must be well-formed text without NUL, at most ${EventStoreLimits.logKeyBytesMax} bytes of UTF-8`)
        }
      }
      tokens.push({
        name,
        token: Redacted.make(token, { label: "token" }),
        scope: scope as Scope,
        ...(typeof prefix === "string" ? { prefix } : {})
      })
    }
    return Effect.succeed(tokens)
  })

/** Tokens from every source together: names must differ, and so must secrets (which one would it be?). */
export const checkUnique = (tokens: ReadonlyArray<Token>): Effect.Effect<ReadonlyArray<Token>, InvalidTokens> =>
  Effect.suspend(() => {
    const names = new Set<string>()
    const secrets = new Map<string, string>()
    for (const t of tokens) {
      if (names.has(t.name)) return Effect.fail(new InvalidTokens({ field: `the token named ${JSON.stringify(t.name)}`, reason: "is configured twice; names must differ" }))
      names.add(t.name)
      const digest = sha256(Redacted.value(t.token)).toString("hex")
      const other = secrets.get(digest)
      if (other !== undefined) {
        return Effect.fail(
          new InvalidTokens({
            field: `the tokens named ${JSON.stringify(other)} and ${JSON.stringify(t.name)}`,
            reason: "have the same secret; every token must be different"
          })
        )
      }
      secrets.set(digest, t.name)
    }
    return Effect.succeed(tokens)
  })

/**
 * The first line of a YAML or JSON parser's message: the following lines quote the source, which may hold
 * a secret.
 */
const firstLine = (e: unknown) => String(e instanceof Error ? e.message : e).split("\n")[0]!.replace(/:$/, "")

/**
 * Tokens written as YAML or JSON text (a tokens file, `OPENDATA_AUTH_TOKENS`): a list, or a mapping
 * `tokens: [...]`. At least one: a source that lists none is a mistake that would leave the API open.
 */
export const parseTokens = (text: string): Effect.Effect<ReadonlyArray<Token>, InvalidTokens> =>
  Effect.gen(function*() {
    const raw = yield* Effect.try({
      try: () => parseYaml(text) as unknown,
      catch: (e) => new InvalidTokens({ field: "the text", reason: `is not valid YAML or JSON: ${firstLine(e)}` })
    })
    if (isRecord(raw)) {
      const unknown = Object.keys(raw).find((k) => k !== "tokens")
      if (unknown !== undefined) return yield* new InvalidTokens({ field: unknown, reason: "is not a known field (tokens)" })
    }
    const tokens = yield* decodeTokens(isRecord(raw) ? raw["tokens"] : raw, "tokens")
    if (tokens.length === 0) {
      return yield* new InvalidTokens({ field: "tokens", reason: "lists no token (leave the setting out to serve without authentication)" })
    }
    return tokens
  })

/** The tokens of a tokens file (YAML or JSON; see `parseTokens`). */
export const readTokensFile = (file: string): Effect.Effect<ReadonlyArray<Token>, InvalidTokens> =>
  Effect.try({
    try: () => fs.readFileSync(file, "utf8"),
    catch: (e) => new InvalidTokens({ field: "the file", reason: `cannot be read: ${firstLine(e)}` })
  }).pipe(Effect.flatMap(parseTokens))

/** `grafana=read prometheus=write orders-app=write:orders/`: the tokens for the startup log, no secret. */
export const describeTokens = (tokens: ReadonlyArray<Token>): string =>
  tokens.map((t) => `${t.name}=${t.scope}${t.prefix !== undefined ? `:${t.prefix}` : ""}`).join(" ")

// -------------------------------------------------------------------------------------------------
// What a request needs
// -------------------------------------------------------------------------------------------------

/** Paths served to anyone: the health checks, which orchestrators and load balancers probe without credentials. */
const openPaths: ReadonlySet<string> = new Set(["/-/healthy", "/-/ready"])

/**
 * The web UI's pages and static assets, read without a token (they hold no data: the UI asks for a token
 * and sends it with every API call it makes).
 */
const isUiPath = (method: string, url: string): boolean => {
  if (method !== "GET" && method !== "HEAD") return false
  const routed = routedPath(url)
  if (routed === undefined) return false
  return uiPages.has(routed) || /^\/assets\/[a-z0-9._-]+$/.test(routed)
}
const uiPages: ReadonlySet<string> = new Set(["/", "/query", "/logs", "/status"])

/** Who asks: `GET /v1/whoami` needs any valid token (prefix-restricted ones too). */
const whoamiPath = "/v1/whoami"

/** The Prometheus API's routes that take a POSTed form and only read. */
const postedReads: ReadonlySet<string> = new Set([
  "/api/v1/query",
  "/api/v1/query_range",
  "/api/v1/format_query",
  "/api/v1/parse_query",
  "/api/v1/series",
  "/api/v1/labels",
  "/api/v1/query_exemplars"
])

const safeMethods: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS"])

/** The raw path and query of a request URL (the path still percent-encoded), as the EventStore splits it. */
const splitUrl = (url: string) => {
  const hash = url.indexOf("#")
  const noHash = hash === -1 ? url : url.slice(0, hash)
  const q = noHash.indexOf("?")
  return { path: q === -1 ? noHash : noHash.slice(0, q), query: q === -1 ? "" : noHash.slice(q + 1) }
}

/**
 * The path as the router matches it (see effect's FindMyWay): an absolute-form URL's scheme and host
 * dropped, cut at `?`, `;` or `#`, percent-decoded, duplicate slashes and a trailing slash removed,
 * lower-cased. `undefined` if it does not decode (the router finds no route for it either).
 */
const routedPath = (url: string): string | undefined => {
  let path = url.startsWith("/") ? url : url.replace(/^https?:\/\/.*?\//, "/")
  const cut = path.slice(1).search(/[?;#]/)
  if (cut !== -1) path = path.slice(0, cut + 1)
  try {
    path = decodeURI(path)
  } catch {
    return undefined
  }
  path = path.replace(/\/{2,}/g, "/")
  if (path.length > 1 && path.endsWith("/")) path = path.slice(0, -1)
  return path.toLowerCase()
}

const decodeSegment = (raw: string | undefined): string | undefined => {
  try {
    return decodeURIComponent(raw ?? "")
  } catch {
    return undefined
  }
}

/** What a request needs of a token: a scope, and for a prefix-restricted token, a check of what it touches. */
interface Need {
  readonly scope: Scope
  /**
   * Why a token restricted to `prefix` may not make this request, or `undefined` if it may. Absent:
   * the request is not about EventStore logs, and such a token may not make it.
   */
  readonly prefixRefusal?: ((prefix: string) => string | undefined) | undefined
}

const keyRefusal = (raw: string | undefined) => (prefix: string) => {
  const key = decodeSegment(raw)
  if (key === undefined) return "the log key is not validly percent-encoded"
  return key.startsWith(prefix) ? undefined : `log ${JSON.stringify(key)} is outside the token's prefix ${JSON.stringify(prefix)}`
}

/** Listing and prefix tails: every `prefix` (and list `cursor`) given must start with the token's prefix. */
const queryRefusal = (query: string, names: ReadonlyArray<"prefix" | "cursor">) => (prefix: string) => {
  const params = new URLSearchParams(query)
  if (params.getAll("prefix").length === 0) {
    return `the token may only see logs under ${JSON.stringify(prefix)}: give prefix=${encodeURIComponent(prefix)}... in the query`
  }
  for (const name of names) {
    for (const value of params.getAll(name)) {
      if (!value.startsWith(prefix)) return `${name} ${JSON.stringify(value)} does not start with the token's prefix ${JSON.stringify(prefix)}`
    }
  }
  return undefined
}

/**
 * What `method url` needs. GET and HEAD only read (tails, group offset fetches and `/metrics` included),
 * as do the Prometheus API's POSTed queries; DELETE and trim destroy (admin); anything else writes. The
 * EventStore's routes are recognised exactly as its dispatcher reads the raw URL (so that the key checked
 * is the key it acts on); a request it would not recognise touches no log.
 */
const need = (method: string, url: string): Need => {
  const safe = safeMethods.has(method)
  const byMethod: Scope = safe ? "read" : method === "DELETE" ? "admin" : "write"
  const { path, query } = splitUrl(url)
  const s = path.split("/").slice(1)
  if (s[0] === "v1") {
    if (s[1] === "whoami" && s.length === 2) return { scope: "read", prefixRefusal: () => undefined }

    if (s[1] === "tail" && s.length === 2) return { scope: byMethod, prefixRefusal: queryRefusal(query, ["prefix"]) }
    // An append session writes whatever its frames name: write scope, and within its `prefix`.
    if (s[1] === "append" && s.length === 2) return { scope: "write", prefixRefusal: queryRefusal(query, ["prefix"]) }
    if (s[1] === "logs" && s.length === 2) return { scope: byMethod, prefixRefusal: queryRefusal(query, ["prefix", "cursor"]) }
    if (s[1] === "logs" && (s.length === 3 || s.length === 4)) {
      return { scope: s[3] === "trim" && !safe ? "admin" : byMethod, prefixRefusal: keyRefusal(s[2]) }
    }
    if (s[1] === "groups" && s.length === 5 && s[3] === "offsets") return { scope: byMethod, prefixRefusal: keyRefusal(s[4]) }
  }
  const routed = routedPath(url)
  if (method === "POST" && routed !== undefined && postedReads.has(routed)) return { scope: "read" }
  // Resetting a transform writes all its outputs again: admin's, as deleting is. Matched as the router
  // matches (case, slashes, percent-encoding), so that no spelling of the path gets past it.
  if (!safe && routed !== undefined && /^\/v1\/transforms\/[^/]+\/reset$/.test(routed)) return { scope: "admin" }
  return { scope: routed === "/api/v1/write" ? "write" : byMethod }
}

// -------------------------------------------------------------------------------------------------
// The check
// -------------------------------------------------------------------------------------------------

const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest()

/** A request refused: 401 (no valid token) or 403 (a valid token that may not do this). */
export interface Refusal {
  readonly status: 401 | 403
  readonly message: string
  /** The RFC 6750 error code for `WWW-Authenticate`, if any. */
  readonly error?: "invalid_token" | "insufficient_scope" | undefined
}

/** The token an `Authorization: Bearer <token>` header presents; undefined if it presents none. */
const bearerToken = (authorization: string): string | undefined => /^bearer +([\x21-\x7e]+) *$/i.exec(authorization)?.[1]

/** The configured token whose secret is `presented`, if any: every token's digest is compared, always. */
const makeFind = (tokens: ReadonlyArray<Token>) => {
  const entries = tokens.map((token) => ({ token, digest: sha256(Redacted.value(token.token)) }))
  return (presented: string): Token | undefined => {
    const digest = sha256(presented)
    let found: Token | undefined
    for (const entry of entries) {
      if (timingSafeEqual(digest, entry.digest) && found === undefined) found = entry.token
    }
    return found
  }
}

/**
 * The credentials a request presents: its `Authorization` header; or, for a WebSocket upgrade without
 * one (a browser's WebSocket cannot send that header), a subprotocol `bearer.<token as base64url>` offered
 * beside the real one (`new WebSocket(url, ["opendata", "bearer." + base64url(token)])`; the server picks
 * the first, so the token is never echoed back).
 */
export const presentedAuthorization = (headers: Readonly<Record<string, string | undefined>>): string | undefined => {
  const authorization = headers["authorization"]
  if (authorization !== undefined) return authorization
  const protocols = headers["sec-websocket-protocol"]
  if (protocols === undefined || headers["upgrade"]?.toLowerCase() !== "websocket") return undefined
  for (const protocol of protocols.split(",")) {
    const p = protocol.trim()
    if (p.startsWith("bearer.")) {
      const token = Buffer.from(p.slice("bearer.".length), "base64url").toString("utf8")
      return `Bearer ${token}`
    }
  }
  return undefined
}

/**
 * The check of every request against `tokens`: `undefined` if it may go on, else why not. Every
 * configured token's digest is compared with the presented one's, whichever matches.
 */
export const makeCheck = (tokens: ReadonlyArray<Token>) => {
  const find = makeFind(tokens)
  return (method: string, url: string, authorization: string | undefined): Refusal | undefined => {
    if (openPaths.has(splitUrl(url).path) || isUiPath(method, url)) return undefined
    if (authorization === undefined || authorization.trim() === "") {
      return { status: 401, message: "this server requires a token: send Authorization: Bearer <token>" }
    }
    const presented = bearerToken(authorization)
    if (presented === undefined) {
      return /^bearer\b/i.test(authorization)
        ? { status: 401, message: "the bearer token is malformed", error: "invalid_token" }
        : { status: 401, message: "only Bearer authorization is accepted: send Authorization: Bearer <token>" }
    }
    const token = find(presented)
    if (token === undefined) return { status: 401, message: "the bearer token is not valid", error: "invalid_token" }
    const needed = need(method, url)
    const what = `${method} ${splitUrl(url).path}`
    if (rank[token.scope] < rank[needed.scope]) {
      return {
        status: 403,
        message: `token ${JSON.stringify(token.name)} has scope ${token.scope}; ${what} needs ${needed.scope}`,
        error: "insufficient_scope"
      }
    }
    if (token.prefix !== undefined) {
      const refusal = needed.prefixRefusal === undefined
        ? `token ${JSON.stringify(token.name)} is restricted to EventStore logs under ${JSON.stringify(token.prefix)}; ${what} is not about them`
        : needed.prefixRefusal(token.prefix)
      if (refusal !== undefined) return { status: 403, message: refusal, error: "insufficient_scope" }
    }
    return undefined
  }
}

/** A refusal in the envelope of the API asked: Prometheus's on `/api/`, the EventStore's on `/v1`, else text. */
export const refusalResponse = (url: string, refusal: Refusal): HttpServerResponse.HttpServerResponse => {
  const headers = refusal.status === 401 || refusal.error !== undefined
    ? { "www-authenticate": `Bearer realm="opendata"${refusal.error !== undefined ? `, error="${refusal.error}"` : ""}` }
    : undefined
  const options = { status: refusal.status, ...(headers !== undefined ? { headers } : {}) }
  const routed = routedPath(url) ?? ""
  if (routed.startsWith("/api/")) {
    return HttpServerResponse.jsonUnsafe(
      { status: "error", errorType: refusal.status === 401 ? "unauthorized" : "forbidden", error: refusal.message },
      options
    )
  }
  if (routed === "/v1" || routed.startsWith("/v1/")) {
    return HttpServerResponse.jsonUnsafe({ error: refusal.status === 401 ? "Unauthorized" : "Forbidden", message: refusal.message }, options)
  }
  return HttpServerResponse.text(`${refusal.status === 401 ? "Unauthorized" : "Forbidden"}: ${refusal.message}\n`, options)
}

/**
 * The check as a global middleware of the process's router: it runs before any route (and before the
 * router looks for one), so a refused request reaches no handler and a refused WebSocket tail is answered
 * with its HTTP status instead of an upgrade. Nothing without tokens.
 */
export const layer = (tokens: ReadonlyArray<Token>): Layer.Layer<never, never, HttpRouter.HttpRouter> => {
  const whoami = whoamiRoute(tokens)
  if (tokens.length === 0) return whoami
  const check = makeCheck(tokens)
  return Layer.merge(
    whoami,
    HttpRouter.middleware(
      (httpEffect) =>
        Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
          const refusal = check(request.method, request.url, presentedAuthorization(request.headers))
          return refusal === undefined ? httpEffect : Effect.succeed(refusalResponse(request.url, refusal))
        }),
      { global: true }
    )
  )
}

/**
 * `GET /v1/whoami`: what the presented token may do, `{"auth": true, "name", "scope", "prefix"?}`, so a
 * client (the web UI) can offer only what it may do; `{"auth": false, "scope": "admin"}` without tokens.
 * The check above has already refused a request without a valid token.
 */
const whoamiRoute = (tokens: ReadonlyArray<Token>) => {
  const find = makeFind(tokens)
  return HttpRouter.add(
    "GET",
    whoamiPath,
    Effect.map(HttpServerRequest.HttpServerRequest, (request) => {
      if (tokens.length === 0) return HttpServerResponse.jsonUnsafe({ auth: false, scope: "admin" })
      const presented = bearerToken(presentedAuthorization(request.headers) ?? "")
      const token = presented === undefined ? undefined : find(presented)
      if (token === undefined) {
        return refusalResponse(request.url, { status: 401, message: "the bearer token is not valid", error: "invalid_token" })
      }
      return HttpServerResponse.jsonUnsafe({
        auth: true,
        name: token.name,
        scope: token.scope,
        ...(token.prefix !== undefined ? { prefix: token.prefix } : {})
      })
    })
  )
}

// -------------------------------------------------------------------------------------------------
// Startup
// -------------------------------------------------------------------------------------------------

/** Whether only this machine can connect to `host`. */
export const isLoopback = (host: string): boolean => {
  const h = host.trim().toLowerCase().replace(/^\[(.*)\]$/, "$1")
  return h === "localhost" || h === "::1" || /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)
}

/**
 * Without tokens the API is open: a warning at start, louder when the server listens on an address
 * other machines can reach.
 */
export const warnIfOpen = (config: { readonly host: string; readonly port: number; readonly tokens: ReadonlyArray<Token> }) =>
  config.tokens.length > 0
    ? Effect.void
    : isLoopback(config.host)
    ? Effect.logWarning(
      `the API is unauthenticated: no auth tokens are configured, so whoever can connect may read, write and delete all data ` +
        `(only this machine can, on ${config.host}). Configure tokens (auth.tokens in opendata.yaml, or OPENDATA_AUTH_FILE) before exposing it`
    )
    : Effect.logWarning(
      `UNAUTHENTICATED API ON A NETWORK ADDRESS: no auth tokens are configured and the server listens on ${config.host}:${config.port}, ` +
        `so ANY machine that can reach this port may read, write and delete all data. Configure tokens (auth.tokens in opendata.yaml, ` +
        `or OPENDATA_AUTH_FILE), or listen on loopback only (OPENDATA_HOST=127.0.0.1)`
    )
