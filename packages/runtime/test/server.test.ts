/**
 * End to end: the real server process, started as `npm start` starts it, driven over HTTP.
 */
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { killAll, runToExit, start, tempDir } from "./process.ts"

afterEach(killAll)

describe("the server process", () => {
  it("answers /-/healthy and /-/ready on the embedded local store, and stops cleanly on SIGTERM", async () => {
    const dir = await tempDir()
    const dataDir = path.join(dir, "data")
    const server = await start({ OPENDATA_DATA_DIR: dataDir })
    const healthy = await fetch(`${server.base}/-/healthy`)
    expect(healthy.status).toBe(200)
    expect(await healthy.text()).toBe("OpenData is Healthy.\n")
    const ready = await fetch(`${server.base}/-/ready`)
    expect(ready.status).toBe(200)
    expect(await ready.text()).toBe("OpenData is Ready.\n")
    expect((await fetch(`${server.base}/-/healthy`, { method: "HEAD" })).status).toBe(200)
    expect((await fetch(`${server.base}/no/such/path`)).status).toBe(404)
    // The data directory is open and locked by this process.
    expect((await fs.readFile(path.join(dataDir, ".lock"), "utf8")).trim()).toBe(String(server.child.pid))

    server.child.kill("SIGTERM")
    expect(await server.exited).toBe(0)
    // Shutdown released the directory.
    await expect(fs.access(path.join(dataDir, ".lock"))).rejects.toThrow()
    await fs.rm(dir, { recursive: true, force: true })
  })

  it("stops cleanly on SIGINT", async () => {
    const server = await start({ OPENDATA_STORE: "memory" })
    server.child.kill("SIGINT")
    expect(await server.exited).toBe(0)
  })

  it("refuses to start on a data directory another server holds", async () => {
    const dir = await tempDir()
    const first = await start({ OPENDATA_DATA_DIR: dir })
    const { code, output } = await runToExit({ OPENDATA_DATA_DIR: dir })
    expect(code).not.toBe(0)
    expect(output).toMatch(/in use by process/)
    first.child.kill("SIGTERM")
    expect(await first.exited).toBe(0)
    await fs.rm(dir, { recursive: true, force: true })
  })

  it("rejects an invalid configuration with a clear error", async () => {
    const { code, output } = await runToExit({ OPENDATA_STORE: "floppy" })
    expect(code).not.toBe(0)
    expect(output).toMatch(/OPENDATA_STORE/)
  })
})
