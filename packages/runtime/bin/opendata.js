#!/usr/bin/env node
/**
 * The `opendata` command as npm links it (the runtime package's `bin`), so that `npx opendata` works
 * right after `npm install`, before any build:
 *
 * - built (`npm run build` wrote `../dist/cli.js`): runs that, in this process;
 * - not built: runs the TypeScript source `../src/cli.ts` in a child Node process with type stripping
 *   and the `@opendata/source` export condition (which resolves the workspace packages to their sources),
 *   its stdio inherited; SIGINT and SIGTERM are passed on to it, and this process exits with its code.
 *
 * Plain JavaScript, committed as is: it is the one file that must run before anything is compiled.
 */
import { spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { constants } from "node:os"
import { fileURLToPath, pathToFileURL } from "node:url"

/** The engines field of the root package.json: type stripping and the CLI need this Node at least. */
const nodeMinimum = [22, 19]

const [major, minor] = process.versions.node.split(".").map(Number)
if (major < nodeMinimum[0] || (major === nodeMinimum[0] && minor < nodeMinimum[1])) {
  process.stderr.write(
    `opendata needs Node.js ${nodeMinimum.join(".")} or newer; this is ${process.version} (${process.execPath}).\n` +
      "Run it through npx or an npm script, which use the Node 22 that `npm install` brings.\n"
  )
  process.exit(1)
}

const built = fileURLToPath(new URL("../dist/cli.js", import.meta.url))
const source = fileURLToPath(new URL("../src/cli.ts", import.meta.url))

if (existsSync(built)) {
  await import(pathToFileURL(built).href)
} else {
  const child = spawn(
    process.execPath,
    ["--conditions=@opendata/source", "--experimental-strip-types", "--no-warnings=ExperimentalWarning", source, ...process.argv.slice(2)],
    { stdio: "inherit" }
  )
  // Passed on, not acted on here: the child shuts down gracefully on the first and exits at once on a
  // second (see src/Signals.ts), and this process follows it out.
  const forward = (signal) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal)
  }
  process.on("SIGINT", forward)
  process.on("SIGTERM", forward)
  child.on("error", (error) => {
    process.stderr.write(`opendata: cannot start ${process.execPath}: ${error.message}\n`)
    process.exit(1)
  })
  child.on("exit", (code, signal) => {
    // A child killed by a signal exits the shell way: 128 + the signal's number.
    process.exit(code ?? 128 + (constants.signals[signal] ?? 0))
  })
}
