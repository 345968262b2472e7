// Bundles the two process entry points, dist/main.js (the server `npm start` runs) and dist/cli.js (the
// `opendata` command), each into one file over what `tsc -b` wrote: the runtime, the products, Effect and
// every other dependency, with whitespace and comments dropped. A Node process keeps the source text of
// every module it loads; unbundled, the entry points load some 600 modules whose comments alone are
// megabytes (Effect documents every export), and the server idled at 151 MB resident with 61 MB of
// JavaScript heap. Bundled it idles at about 114 MB with 26 MB of heap, and starts faster.
//
// The library itself (dist/index.js and the rest, what an application embedding the layers imports) stays
// as tsc wrote it. The web UI package stays outside the bundle: it finds its built assets beside itself.
// Run by `npm run build` after `tsc -b packages/runtime` (and so by `npm start`).
import { build } from "esbuild"
import * as path from "node:path"

const here = path.resolve(import.meta.dirname, "..")

await build({
  entryPoints: { main: path.join(here, "src/main.ts"), cli: path.join(here, "src/cli.ts") },
  outdir: path.join(here, "dist"),
  bundle: true,
  platform: "node",
  format: "esm",
  target: ["node22"],
  // The workspace packages from their TypeScript sources, as the tests and the source launcher resolve them.
  conditions: ["@opendata/source"],
  external: ["@opendata/ui"],
  // Identifiers are not renamed (stack traces read as in the sources); only whitespace and syntax shrink.
  // Not `keepNames`: it wraps every function as it is created to pin its name, a cost on every closure a
  // request makes (append sessions at 64 producers: 16,400 -> 10,700-12,200 records/s).
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: "eof",
  sourcemap: "linked",
  // Dependencies written as CommonJS call require() for Node's modules: give the ES module bundle one.
  banner: { js: "import { createRequire as __bundleRequire } from \"node:module\"; const require = __bundleRequire(import.meta.url);" },
  logLevel: "warning"
})
