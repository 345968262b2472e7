/**
 * `npm run promqltest`: runs Prometheus's PromQL test scripts against our engine and prints one line per
 * file (`<file>: P passed, F failed, U unsupported of T`) and, last, the summary line
 * (`promqltest: ... (float-only non-experimental: Q of R passed)`). A report, not a gate: exit code 0.
 *
 *   npm run promqltest -- [name ...]          only the files whose name contains one of the names
 *   npm run promqltest -- --verbose <file>    each failing eval of that file (or `all`): query, expected, got
 *   npm run promqltest -- --unsupported       with --verbose: the unsupported evals too
 *   npm run promqltest -- --causes            failures (and unsupported evals) grouped by cause, with examples
 *   npm run promqltest -- --no-range-mode     skip the range-mode re-run of instant evals
 *   npm run promqltest -- --dir <dir>         the scripts (default $PROMQLTEST_DIR or shared/promqltest/v3.14.0 beside the repository)
 *
 * The runner is src/promql/testRunner.ts; the scripts are data read from --dir, not part of this repo.
 */
import * as Runner from "../src/promql/testRunner.ts"

const args = process.argv.slice(2)
let dir = process.env["PROMQLTEST_DIR"] ?? Runner.defaultDir
let verbose: string | undefined
let causes = false
let unsupported = false
let rangeMode = true
const filters: Array<string> = []
for (let i = 0; i < args.length; i++) {
  const a = args[i]!
  if (a === "--dir") dir = args[++i] ?? dir
  else if (a === "--verbose") verbose = args[++i] ?? "all"
  else if (a === "--causes") causes = true
  else if (a === "--unsupported") unsupported = true
  else if (a === "--no-range-mode") rangeMode = false
  else if (a === "--help" || a === "-h") {
    console.log("usage: npm run promqltest -- [name ...] [--verbose <file>|all] [--unsupported] [--causes] [--no-range-mode] [--dir <dir>]")
    process.exit(0)
  } else filters.push(a)
}

const matchesFile = (file: string, name: string) => name === "all" || name === "*" || file === name || file === `${name}.test` || file.endsWith(`/${name}`)

const engine = await Runner.loadEngine()
const reports = await Runner.runDirectory(dir, engine, {
  rangeMode,
  files: (file) => filters.length === 0 || filters.some((f) => file.includes(f)),
  onFile: (report) => {
    console.log(Runner.fileLine(report))
    if (verbose !== undefined && matchesFile(report.file, verbose)) {
      for (const l of Runner.verboseLines(report, unsupported)) console.log(l)
    }
  }
})
if (causes) {
  console.log("\nfailures by cause:")
  for (const l of Runner.causeLines(reports, "failed")) console.log(`  ${l}`)
  console.log("\nunsupported by cause:")
  for (const l of Runner.causeLines(reports, "unsupported")) console.log(`  ${l}`)
  const unknown = reports.flatMap((r) => r.unknownCommands.map((c) => `${r.file}: ${c}`))
  const loadErrors = reports.flatMap((r) => r.loadErrors.map((c) => `${r.file}: ${c}`))
  for (const l of unknown) console.log(`  unknown command: ${l}`)
  for (const l of loadErrors) console.log(`  unreadable load: ${l}`)
}
console.log(Runner.summaryLine(Runner.sumCounts(reports.map(Runner.countReport))))
