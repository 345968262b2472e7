/** The settings as the runtime reads them: roles, the flush interval by store, retention; in process. */
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { ConfigProvider, Effect, Exit } from "effect"
import { describe, expect, it } from "vitest"
import * as Config from "../src/Config.ts"
import * as ConfigFile from "../src/ConfigFile.ts"
import { tempDir } from "./process.ts"

const loadFrom = (env: Record<string, string>) =>
  Effect.runPromiseExit(Effect.provideService(Config.load, ConfigProvider.ConfigProvider, ConfigProvider.fromEnvRecord(env)))

const loaded = async (env: Record<string, string>) => {
  const exit = await loadFrom(env)
  if (Exit.isFailure(exit)) throw new Error(String(exit.cause))
  return exit.value
}

describe("configuration values", () => {
  it("defaults: everything in one process, a short group commit on the local store, 100 ms on s3", async () => {
    const local = await loaded({})
    expect(local.role).toBe("all")
    expect(Config.flushIntervalFor(local)).toBe(5)
    const s3 = await loaded({ OPENDATA_STORE: "s3", OPENDATA_S3_BUCKET: "b" })
    expect(Config.flushIntervalFor(s3)).toBe(100)
    const set = await loaded({ OPENDATA_FLUSH_INTERVAL_MS: "0", OPENDATA_TSDB_RETENTION_MS: "3600000" })
    expect(Config.flushIntervalFor(set)).toBe(0)
    expect(set.tsdbRetentionMs).toBe(3_600_000)
  })

  it("takes a split role over s3 and refuses it on a store one process owns", async () => {
    expect((await loaded({ OPENDATA_STORE: "s3", OPENDATA_S3_BUCKET: "b", OPENDATA_ROLE: "reader" })).role).toBe("reader")
    const local = await loadFrom({ OPENDATA_ROLE: "compactor" })
    expect(Exit.isFailure(local) && String(local.cause)).toMatch(/OPENDATA_ROLE=compactor: a role other than "all" needs a store that processes share/)
    const unknown = await loadFrom({ OPENDATA_ROLE: "leader" })
    expect(Exit.isFailure(unknown) && String(unknown.cause)).toMatch(/OPENDATA_ROLE/)
    const negative = await loadFrom({ OPENDATA_FLUSH_INTERVAL_MS: "-1" })
    expect(Exit.isFailure(negative) && String(negative.cause)).toMatch(/OPENDATA_FLUSH_INTERVAL_MS/)
  })

  it("reads role, flush interval and TSDB retention from opendata.yaml", async () => {
    const dir = await tempDir()
    const file = path.join(dir, "opendata.yaml")
    await fs.writeFile(file, "store: s3\ns3: { bucket: b }\nrole: writer\nflushIntervalMs: 20\ntsdb: { retentionMs: 86400000 }\n")
    const env = await Effect.runPromise(ConfigFile.read(file))
    const config = await loaded(env)
    expect(config.role).toBe("writer")
    expect(Config.flushIntervalFor(config)).toBe(20)
    expect(config.tsdbRetentionMs).toBe(86_400_000)
    await fs.writeFile(file, "role: boss\n")
    const bad = await Effect.runPromiseExit(ConfigFile.read(file))
    expect(Exit.isFailure(bad) && String(bad.cause)).toMatch(/role /)
    await fs.rm(dir, { recursive: true, force: true })
  })
})
