/**
 * Test helpers: the real server process, started as `npm start` starts it (the compiled `dist/main.js`,
 * built once by `build.ts`), on a free loopback port.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs/promises"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"

const main = path.resolve(import.meta.dirname, "../dist/main.js")
const children: Array<ChildProcess> = []

/** Kills (SIGKILL) every server the helpers started and that is still running. */
export const killAll = () => {
  for (const child of children.splice(0)) child.kill("SIGKILL")
}

export const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = net.createServer()
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
    server.on("error", reject)
  })

export interface ServerProcess {
  readonly base: string
  readonly port: number
  readonly child: ChildProcess
  /** Resolves with the exit code once the process exits. */
  readonly exited: Promise<number | null>
  /** Everything the process wrote to stdout and stderr so far. */
  readonly output: () => string
}

/** Starts the server process as `npm start` does, with extra environment (`OPENDATA_PORT` in it: that port). */
export const spawnServer = async (env: Record<string, string>): Promise<ServerProcess> => {
  const port = env["OPENDATA_PORT"] !== undefined ? Number(env["OPENDATA_PORT"]) : await freePort()
  const child = spawn(process.execPath, [main], {
    env: { ...process.env, OPENDATA_HOST: "127.0.0.1", OPENDATA_PORT: String(port), ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  children.push(child)
  let output = ""
  child.stdout!.on("data", (d) => (output += d))
  child.stderr!.on("data", (d) => (output += d))
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  return { base: `http://127.0.0.1:${port}`, port, child, exited, output: () => output }
}

/** Starts a server and waits until it is ready (`/-/ready` answers 200). */
export const start = async (env: Record<string, string>): Promise<ServerProcess> => {
  const server = await spawnServer(env)
  for (let i = 0; ; i++) {
    const ok = await fetch(`${server.base}/-/ready`).then((r) => r.ok, () => false)
    if (ok) return server
    if (server.child.exitCode !== null || i > 400) throw new Error(`server did not come up:\n${server.output()}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** Starts a server that is expected to exit by itself; returns its exit code and output. */
export const runToExit = async (env: Record<string, string>) => {
  const server = await spawnServer(env)
  return { code: await server.exited, output: server.output() }
}

export const tempDir = () => fs.mkdtemp(path.join(os.tmpdir(), "opendata-runtime-"))
