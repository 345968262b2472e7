// Builds the web UI into dist/: one minified script and one stylesheet, named by their content hash
// (served with a year-long immutable cache), an index.html that names them (served uncached), and a gzip
// copy of each. Run by `npm run build` (and so by `npm start`).
import { build } from "esbuild"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { gzipSync } from "node:zlib"

const here = import.meta.dirname
const dist = path.join(here, "dist")
const assets = path.join(dist, "assets")

const result = await build({
  entryPoints: [path.join(here, "app/main.tsx")],
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2022"],
  jsx: "automatic",
  jsxImportSource: "preact",
  outdir: assets,
  write: false,
  legalComments: "none",
  define: { "process.env.NODE_ENV": '"production"' },
  logLevel: "warning"
})

fs.rmSync(dist, { recursive: true, force: true })
fs.mkdirSync(assets, { recursive: true })
const names = {}
for (const file of result.outputFiles) {
  const ext = path.extname(file.path)
  const hash = createHash("sha256").update(file.contents).digest("hex").slice(0, 12)
  const name = `app-${hash}${ext}`
  names[ext] = name
  fs.writeFileSync(path.join(assets, name), file.contents)
  fs.writeFileSync(path.join(assets, `${name}.gz`), gzipSync(file.contents, { level: 9 }))
}
const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>OpenData</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/${names[".css"]}">
<script type="module" src="/assets/${names[".js"]}"></script>
</head>
<body><div id="app"></div></body>
</html>
`
fs.writeFileSync(path.join(dist, "index.html"), html)
const size = (name) => {
  const raw = fs.statSync(path.join(assets, name)).size
  const gz = fs.statSync(path.join(assets, `${name}.gz`)).size
  return `${(raw / 1024).toFixed(1)} KiB (${(gz / 1024).toFixed(1)} KiB gzipped)`
}
console.log(`web UI built: ${names[".js"]} ${size(names[".js"])}, ${names[".css"]} ${size(names[".css"])}`)
