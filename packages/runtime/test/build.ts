/** Builds the runtime once before the tests, so they start the server exactly as `npm start` does. */
import { execFileSync } from "node:child_process"
import * as path from "node:path"

export default function setup() {
  const root = path.resolve(import.meta.dirname, "../../..")
  execFileSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-b", "packages/runtime"], {
    cwd: root,
    stdio: "inherit"
  })
}
