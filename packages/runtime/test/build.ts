/**
 * Builds the runtime (with its entry points bundled) and the web UI once before the tests, so they start
 * the server exactly as `npm start` does.
 */
import { execFileSync } from "node:child_process"
import * as path from "node:path"

export default function setup() {
  const root = path.resolve(import.meta.dirname, "../../..")
  execFileSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-b", "packages/runtime"], {
    cwd: root,
    stdio: "inherit"
  })
  execFileSync(process.execPath, [path.join(root, "packages/runtime/scripts/bundle.mjs")], { cwd: root, stdio: "inherit" })
  execFileSync(process.execPath, [path.join(root, "packages/ui/build.mjs")], { cwd: root, stdio: "inherit" })
}
