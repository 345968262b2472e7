/**
 * End to end: the real server process, started as `npm start` starts it, driven over HTTP.
 */
import * as fs from "node:fs/promises"
import * as net from "node:net"
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

  it("a second signal forces the exit while the graceful shutdown waits on a request in flight", async () => {
    const server = await start({ OPENDATA_STORE: "memory" })
    // A request whose body never finishes keeps the graceful shutdown waiting (up to its 10 s timeout).
    const socket = net.connect(server.port, "127.0.0.1")
    await new Promise<void>((resolve) => socket.on("connect", resolve))
    socket.write("POST /api/v1/write HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 1000\r\n\r\nabc")
    await new Promise((r) => setTimeout(r, 200))
    server.child.kill("SIGTERM")
    // Not ready once the shutdown began, but still up: the request holds it.
    for (let i = 0; i < 100 && (await fetch(`${server.base}/-/ready`).then((r) => r.status, () => 0)) === 200; i++) {
      await new Promise((r) => setTimeout(r, 20))
    }
    expect(server.child.exitCode).toBe(null)
    server.child.kill("SIGTERM")
    expect(await server.exited).toBe(130)
    expect(server.output()).toMatch(/exiting now/)
    socket.destroy()
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

  it("refuses a split role on a store that one process owns", async () => {
    const dir = await tempDir()
    const { code, output } = await runToExit({ OPENDATA_DATA_DIR: dir, OPENDATA_ROLE: "reader" })
    expect(code).not.toBe(0)
    expect(output).toMatch(/OPENDATA_ROLE=reader: a role other than "all" needs a store that processes share/)
    await fs.rm(dir, { recursive: true, force: true })
  })
})
