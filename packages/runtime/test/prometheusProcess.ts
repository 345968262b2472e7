/**
 * Test support: a real Prometheus process (Debian's 2.42, `/usr/bin/prometheus`, or `$PROMETHEUS_BIN`) on
 * a free port, with a generated configuration, for the end-to-end suites that compare our API with
 * Prometheus's; and the small HTTP helpers they share.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as fsp from "node:fs/promises"
import * as path from "node:path"
import { describe, it } from "vitest"
import { freePort } from "./process.ts"

export const prometheusBin = process.env["PROMETHEUS_BIN"] ?? "/usr/bin/prometheus"
export const prometheusAvailable = fs.existsSync(prometheusBin)

/**
 * Without Prometheus, a suite is skipped with a warning naming `suite`, except under `CI=true`, where a
 * failing test says it must be installed.
 */
export const requirePrometheus = (suite: string) => {
  if (prometheusAvailable) return
  if (process.env["CI"] !== "true") {
    console.warn(`${suite}: ${prometheusBin} not found; the suite is SKIPPED (apt-get install prometheus)`)
    return
  }
  describe(`real Prometheus in CI (${suite})`, () => {
    it("is installed", () => {
      throw new Error(`${prometheusBin} is missing; CI must install it (apt-get install prometheus)`)
    })
  })
}

export interface Json {
  readonly status: number
  readonly body: any
}

/** A response's status and body (parsed when it is JSON, else the text). */
export const getJson = async (url: string, init?: RequestInit): Promise<Json> => {
  const response = await fetch(url, init)
  const text = await response.text()
  let body: unknown = text
  try {
    body = JSON.parse(text)
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, body }
}

/** Polls `probe` until it returns a value other than undefined, or fails with `what` at the deadline. */
export const eventually = async <A>(what: string, probe: () => Promise<A | undefined>, deadlineMs: number): Promise<A> => {
  const until = Date.now() + deadlineMs
  let lastError: unknown
  for (;;) {
    try {
      const value = await probe()
      if (value !== undefined) return value
    } catch (e) {
      lastError = e
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}${lastError === undefined ? "" : `: ${String(lastError)}`}`)
    await new Promise((r) => setTimeout(r, 250))
  }
}

/** A real Prometheus process on a free port. */
export interface PrometheusProcess {
  readonly base: string
  readonly port: number
  readonly child: ChildProcess
  readonly exited: Promise<number | null>
  readonly output: () => string
  /** SIGTERM (SIGKILL after 30 s): it flushes its remote-write queue to us first, so stop it before us. */
  readonly stop: () => Promise<void>
}

/**
 * Starts Prometheus in `dir` with `config(port)` (YAML lines) and extra flags, and waits until it is
 * ready; `diagnostics` is added to the error if it is not.
 */
export const startPrometheus = async (
  dir: string,
  config: (port: number) => ReadonlyArray<string>,
  flags: ReadonlyArray<string>,
  diagnostics: () => string
): Promise<PrometheusProcess> => {
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  await fsp.writeFile(path.join(dir, "prometheus.yml"), [...config(port), ""].join("\n"))
  const child = spawn(prometheusBin, [
    `--config.file=${path.join(dir, "prometheus.yml")}`,
    `--web.listen-address=127.0.0.1:${port}`,
    `--storage.tsdb.path=${path.join(dir, "data")}`,
    // On SIGTERM it flushes its remote-write queue to us (still up then); do not wait a minute if that fails.
    "--storage.remote.flush-deadline=10s",
    ...flags
  ], { stdio: ["ignore", "pipe", "pipe"] })
  let output = ""
  child.stdout!.on("data", (d) => (output += d))
  child.stderr!.on("data", (d) => (output += d))
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  await eventually("Prometheus to be ready", async () => {
    if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}${diagnostics()}`)
    return (await fetch(`${base}/-/ready`)).ok ? true : undefined
  }, 60_000)
  const stop = async () => {
    if (child.exitCode !== null) return
    child.kill("SIGTERM")
    const code = await Promise.race([exited, new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 30_000))])
    if (code === "timeout") child.kill("SIGKILL")
  }
  return { base, port, child, exited, output: () => output, stop }
}
