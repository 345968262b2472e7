/**
 * The `opendata` command as an operator runs it: serve, then inspect and verify the data directory, and
 * verify finds a damaged table.
 */
import { execFile } from "node:child_process"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { killAll, start, tempDir } from "./process.ts"

afterEach(killAll)

const cli = path.resolve(import.meta.dirname, "../dist/cli.js")
const run = (args: Array<string>) =>
  new Promise<{ code: number; out: string }>((resolve) =>
    execFile(process.execPath, [cli, ...args], (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : (error as { code?: number }).code ?? 1, out: stdout + stderr })))

describe("the opendata command", () => {
  it("inspects and verifies a data directory, and finds a damaged table", async () => {
    const dir = await tempDir()
    const server = await start({ OPENDATA_DATA_DIR: dir })
    for (let i = 0; i < 5; i++) {
      await fetch(`${server.base}/v1/logs/k/records`, { method: "POST", body: JSON.stringify({ records: [{ value: `v${i}` }] }) })
    }
    server.child.kill("SIGTERM") // closing flushes the memtable into a table
    expect(await server.exited).toBe(0)

    const inspect = await run(["inspect", "--data-dir", dir])
    expect(inspect.code).toBe(0)
    expect(inspect.out).toMatch(/eventstore\/[\s\S]*writer epoch 1[\s\S]*tables: 1/)
    const verify = await run(["verify", "--data-dir", dir])
    expect(verify.code).toBe(0)
    expect(verify.out).toMatch(/eventstore\/: \d+ objects, .* 0 problems/)

    // Flip one byte in the middle of the table: verify must say which object and fail.
    const sstDir = path.join(dir, "eventstore", "sst")
    const [table] = await fs.readdir(sstDir)
    const file = path.join(sstDir, table!)
    const bytes = await fs.readFile(file)
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff
    await fs.writeFile(file, bytes)
    const damaged = await run(["verify", "--data-dir", dir])
    expect(damaged.code).not.toBe(0)
    expect(damaged.out).toMatch(/1 problems/)
    await fs.rm(dir, { recursive: true, force: true })
  })

  it("prints help", async () => {
    const help = await run(["--help"])
    expect(help.out).toMatch(/serve[\s\S]*inspect[\s\S]*verify/)
  })
})
