/**
 * The configuration as the server process reads it: the file configures it and the environment overrides
 * it; durations and sizes in their readable forms; the log level and format; and bad values stop it with
 * an error naming the setting.
 */
import * as fs from "node:fs/promises"
import * as net from "node:net"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { killAll, runToExit, start, tempDir } from "./process.ts"

afterEach(killAll)

describe("opendata.yaml", () => {
  it("configures the server; the environment overrides it", async () => {
    const dir = await tempDir()
    const file = path.join(dir, "opendata.yaml")
    await fs.writeFile(file, `store: local\ndataDir: ${JSON.stringify(path.join(dir, "from-file"))}\neventstore:\n  tailHeartbeatMs: 1000\n`)
    const server = await start({ OPENDATA_CONFIG: file })
    await expect(fs.access(path.join(dir, "from-file", ".lock"))).resolves.toBeUndefined()
    server.child.kill("SIGTERM")
    expect(await server.exited).toBe(0)
    const overridden = await start({ OPENDATA_CONFIG: file, OPENDATA_DATA_DIR: path.join(dir, "from-env") })
    await expect(fs.access(path.join(dir, "from-env", ".lock"))).resolves.toBeUndefined()
    overridden.child.kill("SIGTERM")
    expect(await overridden.exited).toBe(0)
    await fs.rm(dir, { recursive: true, force: true })
  })

  it("stops with an error naming the field and the problem", async () => {
    const dir = await tempDir()
    const bad = path.join(dir, "bad.yaml")
    await fs.writeFile(bad, "port: 70000\n")
    const range = await runToExit({ OPENDATA_CONFIG: bad })
    expect(range.code).not.toBe(0)
    expect(range.output).toMatch(/bad\.yaml: port /)
    await fs.writeFile(bad, "storee: memory\n")
    const unknown = await runToExit({ OPENDATA_CONFIG: bad })
    expect(unknown.code).not.toBe(0)
    expect(unknown.output).toMatch(/storee is not a known field/)
    await fs.writeFile(bad, "store: [unclosed\n")
    const yaml = await runToExit({ OPENDATA_CONFIG: bad })
    expect(yaml.output).toMatch(/is not valid YAML/)
    await fs.writeFile(bad, "tsdb: { retentionMs: 15 days }\n")
    const duration = await runToExit({ OPENDATA_CONFIG: bad })
    expect(duration.code).toBe(1)
    expect(duration.output).toMatch(/^opendata: configuration file .*bad\.yaml: tsdb\.retentionMs must be a duration such as 15d, .*, not "15 days"$/m)
    await fs.writeFile(bad, "eventstore: { retentionMaxBytes: 1 parsec }\n")
    const size = await runToExit({ OPENDATA_CONFIG: bad })
    expect(size.output).toMatch(/eventstore\.retentionMaxBytes must be a size such as 512MiB/)
    await fs.rm(dir, { recursive: true, force: true })
  })

  it("stops with the reason when its port is taken", async () => {
    const taken = net.createServer()
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve))
    const port = (taken.address() as net.AddressInfo).port
    const busy = await runToExit({ OPENDATA_STORE: "memory", OPENDATA_PORT: String(port) })
    taken.close()
    expect(busy.code).toBe(1)
    expect(busy.output).toMatch(new RegExp(`^opendata: ServeError: listen EADDRINUSE: address already in use 127\\.0\\.0\\.1:${port}$`, "m"))
  })

  it("takes durations and sizes as Prometheus writes them, and the log level and format, from the file", async () => {
    const dir = await tempDir()
    const file = path.join(dir, "opendata.yaml")
    await fs.writeFile(
      file,
      "store: memory\nlog: { level: warn, format: json }\nflushIntervalMs: 20ms\ntsdb: { retentionMs: 30d, queryTimeoutMs: 1m30s }\n" +
        "eventstore: { tailHeartbeatMs: 1500, retentionMaxAgeMs: 1w, retentionMaxBytes: 512MiB }\n"
    )
    // The effective configuration is logged at info: raise the level to see it, in the file's format.
    const server = await start({ OPENDATA_CONFIG: file, OPENDATA_LOG_LEVEL: "info" })
    const entry = server.output().trim().split("\n").map((l) => JSON.parse(l) as { message: string; annotations: Record<string, unknown> })
      .find((l) => l.message === "configuration")
    expect(entry?.annotations).toMatchObject({
      "log.level": "info",
      "log.format": "json",
      flushInterval: "20ms",
      "tsdb.retention": "30d",
      "tsdb.queryTimeout": "1m30s",
      "eventstore.tailHeartbeat": "1s500ms",
      "eventstore.retentionMaxAge": "7d",
      "eventstore.retentionMaxBytes": "512MiB"
    })
    server.child.kill("SIGTERM")
    expect(await server.exited).toBe(0)
    // At warn, a clean start and stop logs nothing at all (with a token configured: without one, the
    // server warns that its API is unauthenticated).
    const quiet = await start({ OPENDATA_CONFIG: file, OPENDATA_AUTH_TOKENS: '[{name: t, token: "0123456789abcdef", scope: read}]' })
    quiet.child.kill("SIGTERM")
    expect(await quiet.exited).toBe(0)
    expect(quiet.output()).toBe("")
    await fs.rm(dir, { recursive: true, force: true })
  })

  it("stops at start with one line naming an environment variable whose value is invalid", async () => {
    const bad = await runToExit({ OPENDATA_STORE: "memory", OPENDATA_EVENTSTORE_RETENTION_MAX_AGE_MS: "7 days" })
    expect(bad.code).toBe(1)
    expect(bad.output).toBe(
      "opendata: invalid configuration: OPENDATA_EVENTSTORE_RETENTION_MAX_AGE_MS=7 days: must be a duration such as 15d, 1h30m, 90s or 500ms (a plain number is milliseconds)\n"
    )
    const level = await runToExit({ OPENDATA_STORE: "memory", OPENDATA_LOG_LEVEL: "verbose" })
    expect(level.output).toMatch(/^opendata: invalid configuration: OPENDATA_LOG_LEVEL=verbose: Expected "debug" \| "info" \| "warn" \| "error"$/m)
  })
})
