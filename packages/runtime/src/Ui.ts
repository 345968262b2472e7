/**
 * The web UI (`@opendata/ui`, built into static files by `npm run build`), served by the server itself:
 * `/` redirects to `/query`; `/query`, `/logs` and `/status` answer the app's page (never cached, so a new
 * build shows at once); `/assets/<name>` the script and stylesheet, named by their content hash and cached
 * for a year (gzipped when the client accepts it). The files are read once, when the server starts; they
 * are small (a few hundred KiB). The UI talks to the same APIs as any client: it adds nothing to their
 * paths. Without a build, the pages answer 503 saying how to build it.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { distDir } from "@opendata/ui"
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"

/** The pages of the app; each answers the same document, and the app draws the page its path names. */
export const pages = ["/query", "/logs", "/status"] as const

interface Asset {
  readonly contentType: string
  readonly body: Uint8Array
  readonly gzipped: Uint8Array | undefined
}

const contentTypes: Readonly<Record<string, string>> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".html": "text/html; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".woff2": "font/woff2"
}

/**
 * What the page may load and connect to: only this server (WebSocket tails included). Inline styles are
 * allowed because the chart and the editor position their elements with them.
 */
const contentSecurityPolicy =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

/** The built UI, read from `dir`: its document and its assets by name; `undefined` if it is not built. */
export const load = (dir: string = distDir): { readonly index: Uint8Array; readonly assets: ReadonlyMap<string, Asset> } | undefined => {
  let index: Uint8Array
  try {
    index = fs.readFileSync(path.join(dir, "index.html"))
  } catch {
    return undefined
  }
  const assets = new Map<string, Asset>()
  const assetsDir = path.join(dir, "assets")
  const names = fs.existsSync(assetsDir) ? fs.readdirSync(assetsDir) : []
  for (const name of names) {
    if (name.endsWith(".gz")) continue
    const contentType = contentTypes[path.extname(name)]
    if (contentType === undefined) continue
    const gz = names.includes(`${name}.gz`) ? fs.readFileSync(path.join(assetsDir, `${name}.gz`)) : undefined
    assets.set(name, { contentType, body: fs.readFileSync(path.join(assetsDir, name)), gzipped: gz })
  }
  return { index, assets }
}

const notBuilt = HttpServerResponse.text(
  "The web UI is not built: run `npm run build` (npm start does), then restart the server.\n",
  { status: 503 }
)

const acceptsGzip = (request: HttpServerRequest.HttpServerRequest) => /\bgzip\b/.test(request.headers["accept-encoding"] ?? "")

/** The UI's routes. */
export const routes = (dir: string = distDir): Layer.Layer<never, never, HttpRouter.HttpRouter> => {
  const built = load(dir)
  const document = built === undefined
    ? Effect.succeed(notBuilt)
    : Effect.succeed(HttpServerResponse.uint8Array(built.index, {
      contentType: contentTypes[".html"]!,
      headers: {
        "cache-control": "no-cache",
        "content-security-policy": contentSecurityPolicy,
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer"
      }
    }))
  const asset = Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const { name } = yield* HttpRouter.params
    const found = name === undefined ? undefined : built?.assets.get(name)
    if (found === undefined) return HttpServerResponse.text("Not Found\n", { status: 404 })
    const gzip = found.gzipped !== undefined && acceptsGzip(request)
    return HttpServerResponse.uint8Array(gzip ? found.gzipped! : found.body, {
      contentType: found.contentType,
      headers: {
        "cache-control": "public, max-age=31536000, immutable",
        "x-content-type-options": "nosniff",
        vary: "accept-encoding",
        ...(gzip ? { "content-encoding": "gzip" } : {})
      }
    })
  })
  return Layer.mergeAll(
    HttpRouter.add("GET", "/", Effect.succeed(HttpServerResponse.redirect("/query", { status: 302 }))),
    ...pages.map((page) => HttpRouter.add("GET", page, document)),
    HttpRouter.add("GET", "/assets/:name", asset)
  )
}
