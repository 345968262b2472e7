// Where the built web UI is: dist/index.html and dist/assets/ (see build.mjs).
import { fileURLToPath } from "node:url"

export const distDir = fileURLToPath(new URL("./dist/", import.meta.url))
