/** The configuration file: it configures the server, the environment overrides it, and bad files stop it. */
import * as fs from "node:fs/promises"
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
    await fs.rm(dir, { recursive: true, force: true })
  })
})
