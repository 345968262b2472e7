/**
 * End to end: the real server process, started as `npm start` starts it, driven over HTTP.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs/promises"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"

const main = path.resolve(import.meta.dirname, "../dist/main.js")
const children: Array<ChildProcess> = []
afterEach(() => {
  for (const child of children.splice(0)) child.kill("SIGKILL")
})

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = net.createServer()
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
    server.on("error", reject)
  })

/** Starts the server process as `npm start` does, with extra environment. */
const spawnServer = async (env: Record<string, string>) => {
  const port = await freePort()
  const child = spawn(process.execPath, [main], {
    env: { ...process.env, OPENDATA_HOST: "127.0.0.1", OPENDATA_PORT: String(port), ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  children.push(child)
  let output = ""
  child.stdout.on("data", (d) => (output += d))
  child.stderr.on("data", (d) => (output += d))
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  return { base: `http://127.0.0.1:${port}`, child, exited, output: () => output }
}

/** Starts a server and waits until it answers `/-/healthy`. */
const start = async (env: Record<string, string>) => {
  const server = await spawnServer(env)
  for (let i = 0; ; i++) {
    const ok = await fetch(`${server.base}/-/healthy`).then((r) => r.ok, () => false)
    if (ok) return server
    if (server.child.exitCode !== null || i > 200) throw new Error(`server did not come up:\n${server.output()}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** Starts a server that is expected to exit by itself; returns its exit code and output. */
const runToExit = async (env: Record<string, string>) => {
  const server = await spawnServer(env)
  return { code: await server.exited, output: server.output() }
}

const tempDir = () => fs.mkdtemp(path.join(os.tmpdir(), "opendata-runtime-"))

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
