/**
 * Running the test scripts of a directory: the only part of the runner that reads files. And where
 * Prometheus's v3.14.0 scripts are kept.
 */
import * as path from "node:path"
import { readdir, readFile } from "node:fs/promises"
import { join } from "node:path"
import type { Engine, FileReport, RunOptions } from "./run.ts"
import { runScript } from "./run.ts"

/**
 * Where the Prometheus v3.14.0 scripts are: `shared/promqltest/v3.14.0` beside the repository's root
 * (data, not part of the repo).
 */
export const defaultDir = path.resolve(import.meta.dirname, "../../../../../..", "shared/promqltest/v3.14.0")

export interface DirectoryOptions extends RunOptions {
  /** Which files to run (by file name); all `*.test` files by default. */
  readonly files?: ((file: string) => boolean) | undefined
  /** Called after each file, in order. */
  readonly onFile?: ((report: FileReport) => void) | undefined
}

/** Runs every `*.test` script of a directory, in name order. */
export const runDirectory = async (dir: string, engine: Engine, options: DirectoryOptions = {}): Promise<Array<FileReport>> => {
  const files = (await readdir(dir)).filter((f) => f.endsWith(".test") && (options.files?.(f) ?? true)).sort()
  const reports: Array<FileReport> = []
  for (const file of files) {
    const report = await runScript(file, await readFile(join(dir, file), "utf8"), engine, options)
    options.onFile?.(report)
    reports.push(report)
  }
  return reports
}
