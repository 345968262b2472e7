/**
 * The `opendata` command as an operator runs it, through the launcher npm links (`bin/opendata.js`): help
 * and version, built and from source; serve with its flags; inspect and verify a data directory (verify
 * finds a damaged table); compact a stopped data directory written by real server runs, after which the
 * server reads back everything unchanged; the transforms of a running server: list, show, pause, resume,
 * skip a failed record, reset (admin's), with a token.
 */
import { execFile, spawn } from "node:child_process"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { RemoteWrite } from "@opendata/tsdb"
import { afterEach, describe, expect, it } from "vitest"
import { freePort, killAll, start, tempDir } from "./process.ts"

afterEach(killAll)

const launcher = path.resolve(import.meta.dirname, "../bin/opendata.js")
const packageJson = path.resolve(import.meta.dirname, "../package.json")

/** Runs the command to its exit (through `bin`, the launcher by default; with more environment); its code, stdout and stderr. */
const run = (args: Array<string>, bin = launcher, env: Record<string, string> = {}) =>
  new Promise<{ code: number; out: string; stdout: string; stderr: string }>((resolve) =>
    execFile(process.execPath, [bin, ...args], { env: { ...process.env, ...env } }, (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : (error as { code?: number }).code ?? 1, out: stdout + stderr, stdout, stderr })))

const remoteWrite = (base: string, series: Array<{ labels: Array<[string, string]>; samples: Array<{ timestampMs: number; value: number }> }>) =>
  fetch(`${base}/api/v1/write`, {
    method: "POST",
    headers: { "content-type": "application/x-protobuf", "content-encoding": "snappy", "x-prometheus-remote-write-version": "0.1.0" },
    body: RemoteWrite.snappyCompress(RemoteWrite.encodeWriteRequestV1({ series, metadata: [], histograms: 0, exemplars: 0 }))
  })

describe("the opendata command", () => {
  it("prints help and its version, built or from the TypeScript source", async () => {
    const help = await run(["--help"])
    expect(help.code).toBe(0)
    expect(help.out).toMatch(/serve[\s\S]*inspect[\s\S]*verify[\s\S]*compact[\s\S]*version[\s\S]*logs[\s\S]*transforms/)
    const serveHelp = await run(["serve", "--help"])
    expect(serveHelp.out).toMatch(/--host[\s\S]*--log-level[\s\S]*debug, info, warn, error[\s\S]*--log-format[\s\S]*logfmt, json/)

    const { version } = JSON.parse(await fs.readFile(packageJson, "utf8")) as { version: string }
    const expected = `opendata, version ${version}\n  node version: ${process.version}\n  platform:     ${process.platform}/${process.arch}\n`
    const built = await run(["version"])
    expect(built.code).toBe(0)
    expect(built.stdout).toBe(expected)

    // Before any build: a copy of the launcher with no dist/ beside it runs src/cli.ts in a child Node.
    const dir = await tempDir()
    await fs.mkdir(path.join(dir, "bin"))
    await fs.copyFile(launcher, path.join(dir, "bin", "opendata.js"))
    await fs.symlink(path.resolve(import.meta.dirname, "../src"), path.join(dir, "src"))
    const fromSource = await run(["version"], path.join(dir, "bin", "opendata.js"))
    expect(fromSource.code).toBe(0)
    expect(fromSource.stdout).toBe(expected)
    const failing = await run(["compact", "--store", "memory"], path.join(dir, "bin", "opendata.js"))
    expect(failing.code).toBe(1)
    expect(failing.stderr).toMatch(/^opendata: compact: the memory store holds nothing/)
    await fs.rm(dir, { recursive: true, force: true })
  })

  it("serves with --host, --log-level and --log-format; by default only errors and slow requests are access-logged", async () => {
    const port = await freePort()
    const child = spawn(process.execPath, [launcher, "serve", "--host", "127.0.0.1", "--port", String(port), "--store", "memory", "--log-level", "debug", "--log-format", "json"], {
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    child.stdout.on("data", (d) => (output += d))
    child.stderr.on("data", (d) => (output += d))
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve))
    try {
      for (let i = 0; !(await fetch(`http://127.0.0.1:${port}/-/healthy`).then((r) => r.ok, () => false)); i++) {
        if (i > 400) throw new Error(`serve did not come up:\n${output}`)
        await new Promise((r) => setTimeout(r, 50))
      }
      await new Promise((r) => setTimeout(r, 100))
      const lines = output.trim().split("\n").map((line) => JSON.parse(line) as { message: string; level: string; annotations: Record<string, unknown> })
      expect(lines.find((l) => l.message === "configuration")?.annotations).toMatchObject({ host: "127.0.0.1", port, store: "memory", "log.level": "debug", "log.format": "json" })
      expect(lines.some((l) => l.message === `listening on http://127.0.0.1:${port}`)).toBe(true)
      expect(lines.some((l) => l.message === "opening eventstore...")).toBe(true)
      expect(lines.some((l) => /^opened tsdb in \d+ ms$/.test(l.message))).toBe(true)
      // At debug, every request is in the access log.
      expect(lines.find((l) => l.annotations["http.url"] === "/-/healthy")).toMatchObject({ level: "DEBUG", annotations: { "http.status": 200 } })
    } finally {
      child.kill("SIGTERM")
    }
    expect(await exited).toBe(0)

    // The default (info, logfmt): the start is logged, successful fast requests are not.
    const server = await start({ OPENDATA_STORE: "memory" })
    await fetch(`${server.base}/-/healthy`)
    await fetch(`${server.base}/v1/logs/k/records`, { method: "POST", body: JSON.stringify({ records: [{ value: "v" }] }) })
    await new Promise((r) => setTimeout(r, 100))
    expect(server.output()).toContain(`message="listening on http://127.0.0.1:${server.port}"`)
    expect(server.output()).toMatch(/level=INFO .*message=configuration host=127\.0\.0\.1 port=\d+ store=memory/)
    expect(server.output()).not.toContain("http.url")
    server.child.kill("SIGTERM")
    expect(await server.exited).toBe(0)
  })

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

  it("compacts a stopped data directory to one sorted run; the server then reads back everything unchanged", async () => {
    const dir = await tempDir()
    const env = { OPENDATA_DATA_DIR: dir }
    const logs = ["orders", "users/1", "users/2"]
    const records = new Map<string, Array<string>>(logs.map((log) => [log, []]))
    const samples = new Map<string, Array<[number, string]>>([["0", []], ["1", []]])
    const startMs = Date.now() - 10 * 60_000
    // Three runs: two stop cleanly (each leaves a level-0 table per product), the last is killed (its
    // writes are only in the WAL, which compact replays).
    for (let round = 0; round < 3; round++) {
      const server = await start(env)
      for (let i = 0; i < 30; i++) {
        const log = logs[i % logs.length]!
        const value = `r${round}-${i}-${"x".repeat(i * 10)}`
        const res = await fetch(`${server.base}/v1/logs/${encodeURIComponent(log)}/records`, { method: "POST", body: JSON.stringify({ records: [{ value }] }) })
        expect(res.status).toBe(200)
        records.get(log)!.push(value)
      }
      for (const [s, written] of samples) {
        const batch = Array.from({ length: 40 }, (_, j) => ({ timestampMs: startMs + round * 60_000 + j * 1_000, value: round * 1000 + j }))
        const res = await remoteWrite(server.base, [{ labels: [["__name__", "compact_test"], ["s", s]], samples: batch }])
        expect(res.status).toBe(204)
        written.push(...batch.map((b): [number, string] => [b.timestampMs / 1000, String(b.value)]))
      }
      server.child.kill(round < 2 ? "SIGTERM" : "SIGKILL")
      expect(await server.exited).toBe(round < 2 ? 0 : null)
    }

    // A directory a server holds is refused.
    const holder = await start(env)
    const refused = await run(["compact", "--data-dir", dir])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/in use by process/)
    holder.child.kill("SIGTERM")
    expect(await holder.exited).toBe(0)

    const compacted = await run(["compact", "--data-dir", dir])
    expect(compacted.code).toBe(0)
    // Not a terminal: plain progress lines on stderr, the report on stdout.
    expect(compacted.stderr).toMatch(/eventstore\/ opening \(replaying the WAL\)\.\.\.\n[\s\S]*tsdb\/ collecting garbage\.\.\./)
    for (const product of ["eventstore", "tsdb"]) {
      const [, before, after] = new RegExp(`^${product}/: (\\d+) -> (\\d+) bytes .*now 1 tables in 1 sorted runs$`, "m").exec(compacted.stdout) ?? []
      expect(before, compacted.out).toBeDefined()
      expect(Number(after)).toBeLessThanOrEqual(Number(before))
    }
    const [, totalBefore, totalAfter] = /^total: (\d+) -> (\d+) bytes/m.exec(compacted.stdout) ?? []
    expect(Number(totalAfter)).toBeLessThanOrEqual(Number(totalBefore))
    const inspect = await run(["inspect", "--data-dir", dir])
    expect(inspect.out.match(/tables: 1 \(0 in level 0, 1 sorted runs\)/g)).toHaveLength(2)
    expect(inspect.out.match(/manifest versions: (\d+)\.\.\1 \(1 kept\)/g)).toHaveLength(2)
    // The TSDB's own totals: every sample written, wherever it lies, and what it costs at rest.
    expect(inspect.out).toMatch(/^ {2}series 2; samples 240: /m)
    const [, perSample] = /^ {2}at rest: [\d.]+ MiB of objects = ([\d.]+) bytes per sample$/m.exec(inspect.out) ?? []
    expect(Number(perSample), inspect.out).toBeGreaterThan(0)
    expect(inspect.out).toMatch(/^ {4}series \(id -> labels\): 2 keys, /m)
    // Each kind as compaction compresses it, beside its logical bytes: never more.
    const kinds = [...inspect.out.matchAll(/^ {4}[^:\n]+: [\d,]+ keys, [\d.]+ MiB \[[\d.]+ MiB\], ([\d.]+) B\/sample \[([\d.]+)\]$/gm)]
    expect(kinds.length, inspect.out).toBeGreaterThan(3)
    for (const [, compressed, logical] of kinds) expect(Number(compressed)).toBeLessThanOrEqual(Number(logical))
    const verify = await run(["verify", "--data-dir", dir])
    expect(verify.code).toBe(0)
    expect(verify.out.match(/ 0 problems/g)).toHaveLength(2)
    // Compacting a compact store changes nothing (not even a writer's fence).
    const again = await run(["compact", "--data-dir", dir])
    expect(again.code).toBe(0)
    expect(again.stdout.match(/: \d+ bytes, compact already \(1 tables in 1 sorted runs\)/g)).toHaveLength(2)
    expect(again.stdout).toContain(`total: ${totalAfter} -> ${totalAfter} bytes`)

    const server = await start(env)
    for (const [log, values] of records) {
      const body = (await (await fetch(`${server.base}/v1/logs/${encodeURIComponent(log)}/records?from=0&limit=1000`)).json()) as {
        records: Array<{ offset: number; value: string }>
      }
      expect(body.records.map((r) => [r.offset, r.value])).toEqual(values.map((v, i) => [i, v]))
    }
    const query = new URLSearchParams({ query: "compact_test[1h]", time: String(Date.now() / 1000) })
    const result = (await (await fetch(`${server.base}/api/v1/query?${query}`)).json()) as {
      data: { result: Array<{ metric: Record<string, string>; values: Array<[number, string]> }> }
    }
    expect(result.data.result.map((s) => [s.metric["s"], s.values]).sort()).toEqual([...samples].sort())
    server.child.kill("SIGTERM")
    expect(await server.exited).toBe(0)
    await fs.rm(dir, { recursive: true, force: true })
  })

  it("transforms: lists, shows, pauses, resumes, skips a failed record and resets a running server's transforms", async () => {
    // A server with two transforms: one copies in/* to out/in/*, one stops at a record "bad" of log p/1.
    const dir = await tempDir()
    const secrets = { writer: "writer-3b5d7f9a1c2e4f60", admin: "admin-8e6c4a2f0d1b3e57" }
    await fs.writeFile(path.join(dir, "copy.mjs"), `export default (r) => ({ key: "out/" + r.key, value: r.text() })\n`)
    await fs.writeFile(
      path.join(dir, "picky.mjs"),
      `export default (r) => { if (r.text() === "bad") throw new Error("cannot take bad"); return { key: "out/" + r.key, value: r.text() } }\n`
    )
    await fs.writeFile(path.join(dir, "opendata.yaml"), [
      "store: memory",
      "auth:",
      "  tokens:",
      `    - { name: writer, token: "${secrets.writer}", scope: write }`,
      `    - { name: admin, token: "${secrets.admin}", scope: admin }`,
      "transforms:",
      `  - { name: copy, from: "in/", module: ./copy.mjs }`,
      `  - { name: picky, log: "p/1", module: ./picky.mjs }`,
      ""
    ].join("\n"))
    const server = await start({ OPENDATA_CONFIG: path.join(dir, "opendata.yaml") })
    const env = { OPENDATA_URL: server.base, OPENDATA_TOKEN: secrets.writer }
    const transforms = (args: Array<string>, more: Record<string, string> = {}) => run(["transforms", ...args], launcher, { ...env, ...more })
    const auth = { authorization: `Bearer ${secrets.admin}` }
    const append = async (key: string, ...values: Array<string>) => {
      const res = await fetch(`${server.base}/v1/logs/${encodeURIComponent(key)}/records`, {
        method: "POST",
        headers: auth,
        body: JSON.stringify({ records: values.map((value) => ({ value })) })
      })
      expect(res.status).toBe(200)
    }
    const status = async (name: string) =>
      (await (await fetch(`${server.base}/v1/transforms/${name}`, { headers: auth })).json()) as { recordsIn: number; failedLogCount: number; lagRecords: number }
    const until = async (what: string, done: () => Promise<boolean>) => {
      for (let i = 0; !(await done()); i++) {
        if (i > 200) throw new Error(`timed out waiting for ${what}:\n${server.output()}`)
        await new Promise((r) => setTimeout(r, 25))
      }
    }
    const values = async (key: string) =>
      ((await (await fetch(`${server.base}/v1/logs/${encodeURIComponent(key)}/records?from=0`, { headers: auth })).json()) as {
        records: Array<{ value: string }>
      }).records.map((r) => r.value)

    await append("in/a", "x", "y")
    await append("p/1", "a", "bad", "c")
    await until("copy to process 2 records", async () => (await status("copy")).recordsIn === 2)
    await until("picky to fail at p/1@1", async () => (await status("picky")).failedLogCount === 1)

    // Nothing changes until the next step: these commands run at once.
    const [list, listJson, show, showJson, missing, anonymous, unreachable, noOffset] = await Promise.all([
      transforms(["list"]),
      transforms(["list", "--json"]),
      transforms(["show", "picky"]),
      transforms(["show", "picky", "--json"]),
      transforms(["show", "nope"]),
      transforms(["list"], { OPENDATA_TOKEN: "" }),
      transforms(["list", "--url", "http://127.0.0.1:1"]),
      transforms(["skip", "picky", "--log", "p/1"])
    ])
    // list: a table, a row a transform; --json: the API's objects, one a line.
    expect(list.code, list.stderr).toBe(0)
    expect(list.stdout).toMatch(/^NAME +SOURCE +STATUS +IN +OUT +SAMPLES +LAG RECORDS +LAG MS +FAILED LOGS\n/)
    expect(list.stdout).toMatch(/\ncopy +in\/\* +running +2 +2 +0 +0 +0 +0\n/)
    expect(list.stdout).toMatch(/\npicky +p\/1 +running +1 +1 +0 +\d+ +\d+ +1\n$/)
    expect(listJson.stdout.trim().split("\n").map((line) => JSON.parse(line))).toMatchObject([
      { name: "copy", source: { prefix: "in/" }, status: "running", recordsIn: 2, recordsOut: 2, failedLogCount: 0, retrying: null },
      { name: "picky", source: { log: "p/1" }, recordsIn: 1, failedLogCount: 1 }
    ])
    // show: a readable block with the failed log and the command that skips its record; or the JSON.
    expect(show.code).toBe(0)
    expect(show.stdout).toContain(`name:         picky\nsource:       log "p/1"\nstatus:       running\n`)
    expect(show.stdout).toContain("failed logs:  1\n  p/1 at offset 1: cannot take bad\n    skip it: opendata transforms skip picky --log p/1 --offset 1\n")
    expect(JSON.parse(showJson.stdout)).toMatchObject({ name: "picky", failedLogs: [{ key: "p/1", offset: 1, error: "cannot take bad" }] })
    // Errors: the server's (or the network's), on one line, exit 1; a missing flag: the usage.
    expect(missing.code).toBe(1)
    expect(missing.stderr).toBe(`opendata: NotFound: no transform "nope"\n`)
    expect(anonymous.code).toBe(1)
    expect(anonymous.stderr).toMatch(/^opendata: Unauthorized: /)
    expect(unreachable.code).toBe(1)
    expect(unreachable.stderr).toMatch(/^opendata: Network: cannot reach http:\/\/127\.0\.0\.1:1/)
    expect(noOffset.code).toBe(1)
    expect(noOffset.out).toMatch(/--offset/)

    // pause: what is appended waits (as lag); resume: it is processed.
    const paused = await transforms(["pause", "copy"])
    expect(paused.stdout).toMatch(/^paused copy\nname: +copy\n[\s\S]*status: +paused\n/)
    await append("in/a", "z")
    await until("copy to see the lag", async () => (await status("copy")).lagRecords === 1)
    expect((await transforms(["list"])).stdout).toMatch(/\ncopy +in\/\* +paused +2 +2 +0 +1 +\d+ +0\n/)
    expect((await transforms(["resume", "copy"])).stdout).toMatch(/^resumed copy\n[\s\S]*status: +running/)
    await until("copy to process the third record", async () => (await status("copy")).recordsIn === 3)

    // skip: only at the offset the log failed at; then the log goes on.
    const wrong = await transforms(["skip", "picky", "--log", "p/1", "--offset", "2"])
    expect(wrong.code).toBe(1)
    expect(wrong.stderr).toMatch(/^opendata: InvalidInput: .*failed at offset 1/)
    const skipped = await transforms(["skip", "picky", "--log", "p/1", "--offset", "1"])
    expect(skipped.code, skipped.stderr).toBe(0)
    expect(skipped.stdout).toMatch(/^skipped p\/1@1 in picky\n[\s\S]*failed logs:  0\n$/)
    await until("picky to go on past the bad record", async () => (await values("out/p/1")).length === 2)
    expect(await values("out/p/1")).toEqual(["a", "c"])

    // reset: admin's; it writes every output again.
    const refused = await transforms(["reset", "copy"])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/^opendata: Forbidden: .*needs admin/)
    const reset = await transforms(["reset", "copy", "--token", secrets.admin, "--json"])
    expect(reset.code, reset.stderr).toBe(0)
    expect(JSON.parse(reset.stdout)).toMatchObject({ name: "copy", status: "running" })
    await until("copy to write its outputs again", async () => (await values("out/in/a")).length === 6)
    expect(await values("out/in/a")).toEqual(["x", "y", "z", "x", "y", "z"])

    server.child.kill("SIGTERM")
    expect(await server.exited).toBe(0)
    await fs.rm(dir, { recursive: true, force: true })
  })
})
