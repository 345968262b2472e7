/**
 * `npm run bench:eventstore:redis`: our EventStore server against Redis Streams, side by side, in one run.
 *
 * The bench starts both servers itself on loopback, each on a fresh temporary directory, a fresh pair for
 * every cell, one server at a time (ours, then Redis, per cell), and drives them from this one process with
 * the same workload:
 *
 * - ours: `packages/runtime/dist/main.js` (built with `npm run build` if missing) with `OPENDATA_STORE=local`;
 *   appends are `POST /v1/logs/{key}/records` over HTTP/1.1 keep-alive (an undici `Pool` with one connection
 *   per producer), answered once durable;
 * - ours over append sessions (`ours-session`): the same server, the same appends sent as frames of
 *   `GET /v1/append` sessions, one session per producer up to 64 (more producers share them), each
 *   producer still awaiting each answer: a session carries many producers' appends at once.
 * - Redis: `redis-server --appendonly yes --appendfsync always --save ""` (acknowledged once fsynced, as
 *   ours); one stream per key, `XADD key * v <value>` on one connection per producer (node-redis), a batch
 *   is a MULTI/EXEC of its XADDs awaited as one.
 *
 * Records are 100 bytes of random printable ASCII (fixed seed). Each producer appends to a random key of
 * 1,000 (seeded), awaiting each ack before the next append. Cells:
 *
 * - a: 1 producer; b: 64 producers; c: 1,024 producers; d: 64 producers, 100 records per request;
 * - e: cell b while 10,000 idle tail subscribers wait on other keys (ours: WebSocket tails `?now`; Redis:
 *   one connection each blocked in `XREAD BLOCK 0 STREAMS <key> $`), fewer if the fd limit is too low.
 *
 * Cells b and e also follow one of the producers' keys with a live tail (ours: a WebSocket tail `?now`;
 * Redis: `XREAD BLOCK 0` from the last id, looped), whose records carry their send time: the note gives
 * the latency from an append being sent to its record arriving at the tail (p50/p99 over the window).
 *
 * Every cell warms up for 1 s, then measures BENCH_SECONDS: records/s (acked in the window), ack latency
 * p50/p99 (per request), the server's CPU seconds per million records (utime+stime+cutime+cstime of the
 * server process from /proc/<pid>/stat, so Redis's AOF-rewrite children count too), its CPU use in cores,
 * its peak RSS (VmHWM, the server is fresh for each cell), its CPU use over 1 s idle right after start,
 * and this client's CPU use. Cell e also says how long the tails took to open, the server's RSS with them
 * and its CPU use with them and no appends (over one heartbeat period of ours, BENCH_TAIL_HEARTBEAT_MS,
 * default 30 s, our default); its load window is a whole number of heartbeat periods too, and so is cell b's
 * when e runs (b is its baseline: equal windows hold equal shares of the store's periodic flushes).
 *
 * The client shares the machine with the server: where its CPU use nears 100% (one core, as for Redis with
 * 64 producers or more), the records/s are the client's limit, not the server's; the CPU per record holds.
 *
 * Knobs: BENCH_SECONDS (window, default 10), BENCH_CELLS (e.g. `a,b`, default all), BENCH_SERVERS (e.g.
 * `ours-session,redis`, default all three), BENCH_ROUNDS (every cell this many times, alternating; the table
 * gives each figure's median, default 1), BENCH_TAILS (idle tails
 * of cell e, default 10000), BENCH_PROFILE=1 (run our server with `--cpu-prof`, and print at the end the
 * top 25 self-time functions of its main thread over every cell's measurement window, then each cell's top
 * 10; BENCH_PROFILE_DIR keeps the profiles there, each with its window), BENCH_OURS_NODE_ARGS (Node flags
 * for our server), BENCH_SERVER_OUTPUT (a directory to keep the servers' output in), BENCH_REDIS_SERVER
 * (default `redis-server`).
 */
import { spawn, execFileSync, type ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { createClient } from "redis"
import { Pool, WebSocket, request } from "undici"

const seconds = Number(process.env["BENCH_SECONDS"] ?? 10)
const warmupSeconds = 1
const profile = process.env["BENCH_PROFILE"] === "1"
/** Every cell on every server, this many times over (cells alternate, so a slow spell of the machine is spread). */
const rounds = Math.max(1, Number(process.env["BENCH_ROUNDS"] ?? 1))
let round = 1
const cellFilter = process.env["BENCH_CELLS"]?.split(",").map((s) => s.trim()).filter((s) => s !== "")
const tailsWanted = Number(process.env["BENCH_TAILS"] ?? 10_000)
const redisServer = process.env["BENCH_REDIS_SERVER"] ?? "redis-server"
/** Node flags for our server (e.g. V8 heap flags), space-separated. */
const oursNodeArgs = (process.env["BENCH_OURS_NODE_ARGS"] ?? "").split(" ").filter((a) => a !== "")
const keyCount = 1_000
const valueBytes = 100
/** Our server's tail heartbeat period (its default); idle tails cost what their heartbeats cost. */
const tailHeartbeatMs = Number(process.env["BENCH_TAIL_HEARTBEAT_MS"] ?? 30_000)
/**
 * Cells with tails are measured over whole heartbeat periods (idle, and under load), so that every tail's
 * heartbeat falls in the window once per period rather than the window missing them.
 */
const idleSampleSeconds = tailHeartbeatMs / 1000
const tailWindowSeconds = Math.max(seconds, Math.ceil(seconds / idleSampleSeconds) * idleSampleSeconds)
/**
 * Cell b is cell e's baseline ("vs plain (b)"), so when e runs, b is measured over e's window too: a longer
 * window also holds the store's periodic work (memtable flushes to tables), which a shorter one may miss.
 */
const windowSecondsOf = (cell: { readonly id: string; readonly tails: number }) =>
  cell.tails > 0 || (cell.id === "b" && (cellFilter === undefined || cellFilter.includes("e"))) ? tailWindowSeconds : seconds

const repoRoot = path.resolve(import.meta.dirname, "../../..")
const serverMain = path.join(repoRoot, "packages/runtime/dist/main.js")
const clockTicks = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100

// -------------------------------------------------------------------------------------------------
// Workload
// -------------------------------------------------------------------------------------------------

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
const prng = (seed: number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const valueRandom = prng(0x0da7a)
/** 1,024 values of 100 random printable ASCII bytes (0x20..0x7e), used in turn. */
const values: ReadonlyArray<string> = Array.from({ length: 1024 }, () => {
  let s = ""
  for (let i = 0; i < valueBytes; i++) s += String.fromCharCode(0x20 + Math.floor(valueRandom() * 95))
  return s
})
const keys: ReadonlyArray<string> = Array.from({ length: keyCount }, (_, i) => `bench-${i}`)
/** Request bodies for ours, prepared once so that the client does the same little work for both servers. */
const singleBodies = values.map((v) => JSON.stringify({ records: [{ value: v }] }))
const batchOf = (seq: number, batch: number) => Array.from({ length: batch }, (_, i) => values[(seq * batch + i) % values.length]!)
const batchBodies = new Map<number, ReadonlyArray<string>>()
const bodiesFor = (batch: number) => {
  if (batch === 1) return singleBodies
  let bodies = batchBodies.get(batch)
  if (bodies === undefined) {
    bodies = Array.from({ length: 256 }, (_, seq) => JSON.stringify({ records: batchOf(seq, batch).map((value) => ({ value })) }))
    batchBodies.set(batch, bodies)
  }
  return bodies
}

interface Cell {
  readonly id: string
  readonly title: string
  readonly producers: number
  readonly batch: number
  readonly tails: number
}

/** Idle tails cell e can hold: this process holds them all at once, next to the producers' connections. */
const fdLimit = (() => {
  try {
    const line = fs.readFileSync("/proc/self/limits", "utf8").split("\n").find((l) => l.startsWith("Max open files"))
    const soft = Number(line?.split(/\s{2,}/)[1])
    return Number.isFinite(soft) ? soft : 1024
  } catch {
    return 1024
  }
})()
const tailCount = Math.max(0, Math.min(tailsWanted, fdLimit - 64 - 512))

const allCells: ReadonlyArray<Cell> = [
  { id: "a", title: "1 producer", producers: 1, batch: 1, tails: 0 },
  { id: "b", title: "64 producers", producers: 64, batch: 1, tails: 0 },
  { id: "c", title: "1,024 producers", producers: 1024, batch: 1, tails: 0 },
  { id: "d", title: "64 producers, batches of 100", producers: 64, batch: 100, tails: 0 },
  { id: "e", title: `(b) + ${tailCount.toLocaleString("en-US")} idle tails`, producers: 64, batch: 1, tails: tailCount }
]
const cells = allCells.filter((c) => cellFilter === undefined || cellFilter.includes(c.id))
const serverFilter = process.env["BENCH_SERVERS"]?.split(",").map((s) => s.trim()).filter((s) => s !== "")
const servers = (["ours", "ours-session", "redis"] as const).filter((n) => serverFilter === undefined || serverFilter.includes(n))

// -------------------------------------------------------------------------------------------------
// Processes: CPU, memory, temporary directories, cleanup
// -------------------------------------------------------------------------------------------------

/** CPU seconds of a process so far: its threads (utime, stime) and its reaped children (cutime, cstime). */
const cpuSeconds = (pid: number): number => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  // fields[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
  return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / clockTicks
}

/** A `Vm*` line of /proc/<pid>/status in MB. */
const vmMb = (pid: number, field: "VmHWM" | "VmRSS"): number => {
  const line = fs.readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith(field + ":"))
  return Number(line?.match(/(\d+)/)?.[1] ?? Number.NaN) / 1024
}

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "opendata-bench-redis-"))
const children = new Set<ChildProcess>()
let cleanedUp = false
const cleanup = () => {
  if (cleanedUp) return
  cleanedUp = true
  for (const child of children) {
    try {
      child.kill("SIGKILL")
    } catch {
      // already gone
    }
  }
  fs.rmSync(tmpRoot, { recursive: true, force: true })
}
process.on("exit", cleanup)
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    console.error(`\n${signal}: stopping the servers and removing ${tmpRoot}`)
    cleanup()
    process.exit(130)
  })
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))))
    })
  })

interface Running {
  readonly name: "ours" | "redis"
  readonly pid: number
  readonly port: number
  /** The last lines the server printed, for the error when it fails. */
  readonly output: () => string
  readonly exited: () => boolean
  /** SIGTERM, then SIGKILL after 30 s; resolves when the process is gone. */
  readonly stop: () => Promise<void>
}

const launch = (name: "ours" | "redis", command: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv, cwd: string, port: number): Running => {
  const child = spawn(command, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] })
  children.add(child)
  let output = ""
  // BENCH_SERVER_OUTPUT=<dir>: every line the server prints, kept in <dir>/<name>-<pid>.log (with --trace-gc, say).
  const outputDir = process.env["BENCH_SERVER_OUTPUT"]
  if (outputDir !== undefined) fs.mkdirSync(outputDir, { recursive: true })
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000)
    if (outputDir !== undefined) fs.appendFileSync(path.join(outputDir, `${name}-${child.pid}.log`), chunk)
  }
  child.stdout!.on("data", keep)
  child.stderr!.on("data", keep)
  let exited = false
  const gone = new Promise<void>((resolve) => {
    child.once("exit", () => {
      exited = true
      children.delete(child)
      resolve()
    })
    child.once("error", (e) => {
      keep(Buffer.from(`\nspawn ${command}: ${e.message}\n`))
      exited = true
      children.delete(child)
      resolve()
    })
  })
  return {
    name,
    pid: child.pid ?? -1,
    port,
    output: () => output.trim(),
    exited: () => exited,
    stop: async () => {
      if (exited) return
      child.kill("SIGTERM")
      const killer = setTimeout(() => child.kill("SIGKILL"), 30_000)
      await gone
      clearTimeout(killer)
    }
  }
}

/** Waits until `probe` succeeds, failing early if the server exits or after `timeoutMs`. */
const waitReady = async (server: Running, probe: () => Promise<boolean>, timeoutMs = 60_000) => {
  const deadline = performance.now() + timeoutMs
  while (performance.now() < deadline) {
    if (server.exited()) throw new Error(`${server.name} exited at startup:\n${server.output()}`)
    if (await probe().catch(() => false)) return
    await sleep(50)
  }
  throw new Error(`${server.name} not ready after ${timeoutMs} ms:\n${server.output()}`)
}

/** BENCH_PROFILE_DIR keeps the profiles (one directory per cell and server); by default they go with the run. */
const profileDir = process.env["BENCH_PROFILE_DIR"] ?? path.join(tmpRoot, "profiles")
/** Each cell's measurement window on our server, in µs of the monotonic clock that V8's profiles use too. */
const profileWindows = new Map<string, { readonly startUs: number; readonly endUs: number }>()
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n)

/** Which of our runs a profile belongs to: the cell, and `s` for the append-session run. */
const profileKey = (cell: Cell, name: ServerName, of = round) =>
  `${name === "ours-session" ? `${cell.id}s` : cell.id}${rounds > 1 ? `-${of}` : ""}`

const startOurs = async (dir: string, cell: Cell, name: ServerName): Promise<Running> => {
  if (!fs.existsSync(serverMain)) {
    console.log(`${path.relative(repoRoot, serverMain)} is missing: npm run build`)
    execFileSync("npm", ["run", "build"], { cwd: repoRoot, stdio: "inherit" })
  }
  const port = await freePort()
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("OPENDATA_")) env[k] = v
  Object.assign(env, {
    OPENDATA_STORE: "local",
    OPENDATA_DATA_DIR: path.join(dir, "data"),
    OPENDATA_PORT: String(port),
    OPENDATA_HOST: "127.0.0.1",
    OPENDATA_EVENTSTORE_TAIL_HEARTBEAT_MS: String(tailHeartbeatMs)
  })
  const nodeFlags = [
    ...oursNodeArgs,
    ...(profile ? ["--cpu-prof", "--cpu-prof-dir", path.join(profileDir, profileKey(cell, name))] : [])
  ]
  // cwd: the fresh directory, so that no opendata.yaml of the caller's is read.
  const server = launch("ours", process.execPath, [...nodeFlags, serverMain], env, dir, port)
  await waitReady(server, async () => {
    const res = await request(`http://127.0.0.1:${port}/-/ready`)
    await res.body.dump()
    return res.statusCode === 200
  })
  return server
}

const makeRedisClient = (port: number) => createClient({ socket: { host: "127.0.0.1", port, reconnectStrategy: false } })
type RedisClient = ReturnType<typeof makeRedisClient>

const redisClient = async (port: number): Promise<RedisClient> => {
  const client = makeRedisClient(port)
  client.on("error", () => {}) // surfaced by the commands that fail
  await client.connect()
  return client
}

const startRedis = async (dir: string): Promise<Running> => {
  const port = await freePort()
  const args = [
    "--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--appendonly", "yes", "--appendfsync", "always",
    "--save", "", "--maxclients", String(tailCount + 2048), "--daemonize", "no"
  ]
  const server = launch("redis", redisServer, args, process.env, dir, port)
  await waitReady(server, async () => {
    const client = await redisClient(port)
    try {
      return (await client.ping()) === "PONG"
    } finally {
      client.destroy()
    }
  })
  // Acks only after the fsync of the AOF, like ours: check that the server runs so.
  const admin = await redisClient(port)
  const fsync = await admin.configGet("appendfsync")
  const aof = await admin.configGet("appendonly")
  admin.destroy()
  if (fsync["appendfsync"] !== "always" || aof["appendonly"] !== "yes") {
    await server.stop()
    throw new Error(`redis runs with appendonly=${aof["appendonly"]} appendfsync=${fsync["appendfsync"]}`)
  }
  return server
}

/** Runs `f` over `items` with at most `limit` at a time. */
const forEachLimit = async <A>(items: ReadonlyArray<A>, limit: number, f: (a: A, i: number) => Promise<void>) => {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++
      await f(items[i]!, i)
    }
  }))
}

// -------------------------------------------------------------------------------------------------
// Drivers: one append (a request of `batch` records) by producer p to a key, awaited
// -------------------------------------------------------------------------------------------------

interface Driver {
  /** `value`: the record's value instead of the prepared one (a stamped record for the live tail). */
  readonly append: (producer: number, key: string, seq: number, value?: string) => Promise<void>
  readonly close: () => Promise<void>
}

const oursDriver = (server: Running, cell: Cell): Driver => {
  const pool = new Pool(`http://127.0.0.1:${server.port}`, { connections: cell.producers, pipelining: 1 })
  const bodies = bodiesFor(cell.batch)
  const headers = { "content-type": "application/json" }
  return {
    append: async (_producer, key, seq, value) => {
      const res = await pool.request({
        path: `/v1/logs/${encodeURIComponent(key)}/records`,
        method: "POST",
        headers,
        body: value === undefined ? bodies[seq % bodies.length]! : JSON.stringify({ records: [{ value }] })
      })
      const text = await res.body.text()
      if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`)
    },
    close: () => pool.close()
  }
}

/** How many append sessions the session run opens: one per producer, at most 64 (more producers share them). */
const sessionsFor = (cell: Cell) => Math.min(cell.producers, 64)

/**
 * Ours over append sessions (`GET /v1/append`): producer p sends its appends on session p mod 64, each
 * frame the HTTP body with an `id` and the `key`, and awaits its answer as over HTTP; a session carries
 * the appends of all its producers at once.
 */
const oursSessionDriver = async (server: Running, cell: Cell): Promise<Driver> => {
  const bodies = bodiesFor(cell.batch)
  const sessions = await Promise.all(Array.from({ length: sessionsFor(cell) }, async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/v1/append`)
    const pending = new Map<number, { resolve: () => void; reject: (e: Error) => void }>()
    ws.addEventListener("message", (event) => {
      const answer = JSON.parse(String(event.data)) as { id: number | null; error?: { status: number; message: string } }
      const waiter = answer.id === null ? undefined : pending.get(answer.id)
      if (waiter === undefined) return
      pending.delete(answer.id!)
      if (answer.error === undefined) waiter.resolve()
      else waiter.reject(new Error(`session answer ${answer.error.status}: ${answer.error.message}`))
    })
    ws.addEventListener("close", () => {
      for (const w of pending.values()) w.reject(new Error("session closed"))
      pending.clear()
    })
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener("open", () => resolve(), { once: true })
      ws.addEventListener("error", () => reject(new Error("append session did not open")), { once: true })
    })
    return { ws, pending }
  }))
  let nextId = 0
  return {
    append: (producer, key, seq, value) =>
      new Promise<void>((resolve, reject) => {
        const session = sessions[producer % sessions.length]!
        const id = nextId++
        session.pending.set(id, { resolve, reject })
        const body = value === undefined ? bodies[seq % bodies.length]! : JSON.stringify({ records: [{ value }] })
        session.ws.send(`{"id":${id},"key":${JSON.stringify(key)},${body.slice(1)}`)
      }),
    close: async () => {
      for (const { ws } of sessions) ws.close()
    }
  }
}

const redisDriver = async (server: Running, cell: Cell): Promise<Driver> => {
  const clients: Array<RedisClient> = []
  await forEachLimit(Array.from({ length: cell.producers }), 64, async (_, i) => {
    clients[i] = await redisClient(server.port)
  })
  return {
    append: async (producer, key, seq, value) => {
      const client = clients[producer]!
      if (cell.batch === 1) {
        await client.xAdd(key, "*", { v: value ?? values[seq % values.length]! })
      } else {
        const multi = client.multi()
        for (const v of batchOf(seq, cell.batch)) multi.xAdd(key, "*", { v })
        await multi.exec()
      }
    },
    close: async () => {
      for (const c of clients) c.destroy()
    }
  }
}

// -------------------------------------------------------------------------------------------------
// Idle tails (cell e)
// -------------------------------------------------------------------------------------------------

interface Tails {
  readonly opened: number
  readonly setupSeconds: number
  readonly close: () => Promise<void>
}

const openOursTails = async (server: Running, n: number): Promise<Tails> => {
  const start = performance.now()
  const sockets: Array<WebSocket> = []
  let failures = 0
  await forEachLimit(Array.from({ length: n }), 128, async (_, i) => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/v1/logs/idle-${i}/tail?now`)
    ws.addEventListener("message", () => {}) // heartbeats: read and dropped
    const ok = await new Promise<boolean>((resolve) => {
      ws.addEventListener("open", () => resolve(true), { once: true })
      ws.addEventListener("error", () => resolve(false), { once: true })
      ws.addEventListener("close", () => resolve(false), { once: true })
    })
    if (ok) sockets.push(ws)
    else failures += 1
  })
  const setupSeconds = (performance.now() - start) / 1000
  // The server's own count, from /metrics (the subscription starts just after the upgrade).
  let subscribers = Number.NaN
  for (let i = 0; i < 100 && !(subscribers >= sockets.length); i++) {
    const res = await request(`http://127.0.0.1:${server.port}/metrics`)
    const text = await res.body.text()
    subscribers = Number(text.match(/^opendata_eventstore_tail_subscribers\S*\s+(\S+)/m)?.[1] ?? Number.NaN)
    if (!(subscribers >= sockets.length)) await sleep(100)
  }
  if (failures > 0 || !(subscribers >= sockets.length)) {
    console.log(`  ours: ${sockets.length} of ${n} tails open (${failures} failed), the server counts ${subscribers} subscribers`)
  }
  return {
    opened: sockets.length,
    setupSeconds,
    close: async () => {
      const closed = sockets.map((ws) =>
        ws.readyState === WebSocket.CLOSED ? Promise.resolve() : new Promise<void>((resolve) => ws.addEventListener("close", () => resolve(), { once: true }))
      )
      for (const ws of sockets) ws.close()
      await Promise.race([Promise.all(closed), sleep(10_000)])
    }
  }
}

const openRedisTails = async (server: Running, n: number): Promise<Tails> => {
  const start = performance.now()
  const clients: Array<RedisClient> = []
  let failures = 0
  await forEachLimit(Array.from({ length: n }), 128, async (_, i) => {
    try {
      const client = await redisClient(server.port)
      clients.push(client)
      // Blocks this connection until a record arrives on a key that receives none; rejected at close.
      client.xRead({ key: `idle-${i}`, id: "$" }, { BLOCK: 0 }).catch(() => {})
    } catch {
      failures += 1
    }
  })
  const setupSeconds = (performance.now() - start) / 1000
  const admin = await redisClient(server.port)
  let blocked = 0
  for (let i = 0; i < 100 && blocked < clients.length; i++) {
    blocked = Number((await admin.info("clients")).match(/blocked_clients:(\d+)/)?.[1] ?? 0)
    if (blocked < clients.length) await sleep(100)
  }
  admin.destroy()
  if (failures > 0 || blocked < clients.length) {
    console.log(`  redis: ${clients.length} of ${n} tail connections (${failures} failed), ${blocked} blocked in XREAD`)
  }
  return {
    opened: Math.min(blocked, clients.length),
    setupSeconds,
    close: async () => {
      for (const c of clients) c.destroy()
    }
  }
}

// -------------------------------------------------------------------------------------------------
// The live tail (cells b and e): one tail on a key the producers append to, measuring delivery latency
// -------------------------------------------------------------------------------------------------

/** The key the live tail follows: one of the producers' keys. */
const watchedKey = keys[0]!

/** A record value carrying its send time (this process's `performance.now()`), padded to `valueBytes`. */
const stamped = () => {
  const stamp = `t${performance.now().toFixed(3)} `
  return stamp + values[0]!.slice(stamp.length)
}

/** The latency of a stamped value, from its append being sent to its arrival here (ms); undefined if not stamped. */
const latencyOf = (value: string): number | undefined => {
  if (!value.startsWith("t")) return undefined
  const sent = Number(value.slice(1, value.indexOf(" ")))
  return Number.isFinite(sent) ? performance.now() - sent : undefined
}

interface Watch {
  /** Delivery latencies (ms) of the stamped records that arrived while `recording` was on. */
  readonly latencies: Array<number>
  recording: boolean
  readonly close: () => Promise<void>
}

const watchOurs = async (server: Running): Promise<Watch> => {
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}/v1/logs/${encodeURIComponent(watchedKey)}/tail?now`)
  const watch: Watch = {
    latencies: [],
    recording: false,
    close: async () => ws.close()
  }
  ws.addEventListener("message", (event) => {
    const message = JSON.parse(String(event.data)) as { type: string; records?: Array<{ value: string }> }
    if (message.type !== "records" || !watch.recording) return
    for (const r of message.records ?? []) {
      const latency = latencyOf(r.value)
      if (latency !== undefined) watch.latencies.push(latency)
    }
  })
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener("open", () => resolve(), { once: true })
    ws.addEventListener("error", () => reject(new Error("the live tail did not open")), { once: true })
  })
  return watch
}

const watchRedis = async (server: Running): Promise<Watch> => {
  const client = await redisClient(server.port)
  let open = true
  const watch: Watch = {
    latencies: [],
    recording: false,
    close: async () => {
      open = false
      client.destroy()
    }
  }
  void (async () => {
    let id = "$"
    while (open) {
      const answer = await client.xRead({ key: watchedKey, id }, { BLOCK: 0 }).catch(() => null) as
        | Array<{ messages: Array<{ id: string; message: Record<string, string> }> }>
        | null
      if (answer === null) continue
      for (const stream of answer) {
        for (const m of stream.messages) {
          id = m.id
          const latency = watch.recording ? latencyOf(m.message["v"] ?? "") : undefined
          if (latency !== undefined) watch.latencies.push(latency)
        }
      }
    }
  })()
  return watch
}

// -------------------------------------------------------------------------------------------------
// One cell on one server
// -------------------------------------------------------------------------------------------------

/** Our server over HTTP, our server over append sessions, and Redis. */
type ServerName = "ours" | "ours-session" | "redis"

interface Result {
  readonly cell: Cell
  readonly server: ServerName
  readonly records: number
  readonly recordsPerSecond: number
  readonly p50: number
  readonly p99: number
  readonly cpuPerMillion: number
  readonly cpuCores: number
  readonly rssMb: number
  readonly clientCpuPercent: number
  readonly idleCpuPercent: number
  readonly errors: number
  readonly notes: ReadonlyArray<string>
}

const quantile = (sorted: ArrayLike<number>, q: number) =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** Each cell and server's median over the rounds, figure by figure; notes of the round with the median records/s. */
const medians = (runs: ReadonlyArray<Result>): Array<Result> => {
  const groups = new Map<string, Array<Result>>()
  for (const r of runs) {
    const key = `${r.cell.id} ${r.server}`
    groups.set(key, [...(groups.get(key) ?? []), r])
  }
  return [...groups.values()].map((group) => {
    if (group.length === 1) return group[0]!
    const of = (f: (r: Result) => number) => median(group.map(f))
    const middle = [...group].sort((a, b) => a.recordsPerSecond - b.recordsPerSecond)[group.length >> 1]!
    return {
      ...middle,
      records: of((r) => r.records),
      recordsPerSecond: of((r) => r.recordsPerSecond),
      p50: of((r) => r.p50),
      p99: of((r) => r.p99),
      cpuPerMillion: of((r) => r.cpuPerMillion),
      cpuCores: of((r) => r.cpuCores),
      rssMb: of((r) => r.rssMb),
      clientCpuPercent: of((r) => r.clientCpuPercent),
      idleCpuPercent: of((r) => r.idleCpuPercent),
      errors: group.reduce((n, r) => n + r.errors, 0),
      notes: [`rounds: ${group.map((r) => fmt(r.recordsPerSecond)).join(", ")} rec/s`, ...middle.notes]
    }
  })
}

const runCell = async (cell: Cell, name: ServerName): Promise<Result> => {
  const dir = fs.mkdtempSync(path.join(tmpRoot, `${cell.id}-${name}-`))
  const ours = name !== "redis"
  const server = ours ? await startOurs(dir, cell, name) : await startRedis(dir)
  const notes: Array<string> = []
  let tails: Tails | undefined
  let driver: Driver | undefined
  let watch: Watch | undefined
  try {
    // What the server does with nothing to do, for reference (timers, heartbeats of nothing).
    await sleep(250)
    const idle0 = cpuSeconds(server.pid)
    await sleep(1000)
    const idleCores = cpuSeconds(server.pid) - idle0
    if (cell.tails > 0) {
      tails = ours ? await openOursTails(server, cell.tails) : await openRedisTails(server, cell.tails)
      const rss = vmMb(server.pid, "VmRSS")
      await sleep(500)
      const cpu0 = cpuSeconds(server.pid)
      await sleep(idleSampleSeconds * 1000)
      const idleCpu = (cpuSeconds(server.pid) - cpu0) / idleSampleSeconds
      notes.push(
        `${tails.opened} tails open in ${tails.setupSeconds.toFixed(1)} s, RSS ${rss.toFixed(0)} MB with them, ` +
          `${(idleCpu * 100).toFixed(1)}% CPU idle`
      )
    }
    if (cell.tails > 0 || cell.id === "b") watch = ours ? await watchOurs(server) : await watchRedis(server)
    driver = name === "ours" ? oursDriver(server, cell) : name === "ours-session" ? await oursSessionDriver(server, cell) : await redisDriver(server, cell)
    const append = driver.append

    let phase: "warmup" | "window" | "done" = "warmup"
    let windowStart = 0
    let windowEnd = 0
    let cpuStart = 0
    let cpuEnd = 0
    let client0 = process.cpuUsage()
    let clientCpu = 0
    let records = 0
    let errors = 0
    let firstError = ""
    const latencies: Array<number> = []

    const producer = async (p: number) => {
      const random = prng(0x5eed + p)
      let seq = p * 7919
      while (phase !== "done") {
        const key = keys[Math.floor(random() * keyCount)]!
        const t0 = performance.now()
        try {
          await append(p, key, seq++, watch !== undefined && key === watchedKey ? stamped() : undefined)
        } catch (e) {
          errors += 1
          if (firstError === "") firstError = e instanceof Error ? e.message : String(e)
          await sleep(10)
          continue
        }
        if (phase === "window") {
          records += cell.batch
          latencies.push(performance.now() - t0)
        }
      }
    }
    const timer = (async () => {
      await sleep(warmupSeconds * 1000)
      cpuStart = cpuSeconds(server.pid)
      client0 = process.cpuUsage()
      windowStart = performance.now()
      const startUs = monotonicUs()
      phase = "window"
      if (watch !== undefined) watch.recording = true
      await sleep(windowSecondsOf(cell) * 1000)
      if (watch !== undefined) watch.recording = false
      cpuEnd = cpuSeconds(server.pid)
      const used = process.cpuUsage(client0)
      windowEnd = performance.now()
      if (ours) {
        const window = { startUs, endUs: monotonicUs() }
        profileWindows.set(profileKey(cell, name), window)
        // Beside the profile, so that a kept profile (BENCH_PROFILE_DIR) can be read for the window alone.
        if (profile) {
          fs.mkdirSync(path.join(profileDir, profileKey(cell, name)), { recursive: true })
          fs.writeFileSync(path.join(profileDir, profileKey(cell, name), "window.json"), JSON.stringify(window))
        }
      }
      clientCpu = (used.user + used.system) / 1e6
      phase = "done"
    })()
    await Promise.all([timer, ...Array.from({ length: cell.producers }, (_, p) => producer(p))])
    const rssMb = vmMb(server.pid, "VmHWM")

    const elapsed = (windowEnd - windowStart) / 1000
    const sorted = Float64Array.from(latencies).sort()
    if (errors > 0) notes.push(`${errors} failed appends, first: ${firstError}`)
    if (watch !== undefined) {
      const seen = Float64Array.from(watch.latencies).sort()
      notes.push(`live tail of one producer key: append sent to record received p50 ${quantile(seen, 0.5).toFixed(2)} ms, p99 ${quantile(seen, 0.99).toFixed(2)} ms over ${seen.length} records`)
    }
    return {
      cell,
      server: name,
      records,
      recordsPerSecond: records / elapsed,
      p50: quantile(sorted, 0.5),
      p99: quantile(sorted, 0.99),
      cpuPerMillion: records === 0 ? Number.NaN : ((cpuEnd - cpuStart) / records) * 1e6,
      cpuCores: (cpuEnd - cpuStart) / elapsed,
      rssMb,
      clientCpuPercent: (clientCpu / elapsed) * 100,
      idleCpuPercent: idleCores * 100,
      errors,
      notes
    }
  } finally {
    await driver?.close().catch(() => {})
    await watch?.close().catch(() => {})
    await tails?.close().catch(() => {})
    await server.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

// -------------------------------------------------------------------------------------------------
// CPU profile of our server
// -------------------------------------------------------------------------------------------------

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly hitCount?: number
}
interface CpuProfile {
  readonly startTime: number
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples?: ReadonlyArray<number>
  readonly timeDeltas?: ReadonlyArray<number>
}

/** Self time (µs) by function and by origin, of the samples taken in a measurement window. */
interface SelfTimes {
  readonly byFunction: Map<string, number>
  readonly byOrigin: Map<string, number>
  idleUs: number
  totalUs: number
}

const emptySelfTimes = (): SelfTimes => ({ byFunction: new Map(), byOrigin: new Map(), idleUs: 0, totalUs: 0 })

const readProfile = (file: string, into: ReadonlyArray<SelfTimes>) => {
  const prof = JSON.parse(fs.readFileSync(file, "utf8")) as CpuProfile
  // Only the samples of the measurement window (not the startup, warm-up and shutdown).
  const window = profileWindows.get(path.basename(path.dirname(file)))
  const byId = new Map(prof.nodes.map((n) => [n.id, n]))
  const add = (node: ProfileNode | undefined, us: number) => {
    if (node === undefined || us <= 0) return
    const { functionName, url, lineNumber } = node.callFrame
    const file = url.replace(/^file:\/\//, "").replace(repoRoot + "/", "")
    const label = `${functionName === "" ? "(anonymous)" : functionName}${url === "" ? "" : ` ${file}:${lineNumber + 1}`}`
    const origin = url === ""
      ? (functionName.startsWith("(") ? functionName : "native (bindings, builtins)")
      : file.startsWith("node:")
      ? "node internals"
      : file.startsWith("packages/")
      ? `ours: ${file.split("/").slice(0, 2).join("/")}`
      : (file.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/)?.[1] ?? "other")
    for (const t of into) {
      t.totalUs += us
      if (functionName === "(idle)") {
        t.idleUs += us
        continue
      }
      t.byFunction.set(label, (t.byFunction.get(label) ?? 0) + us)
      t.byOrigin.set(origin, (t.byOrigin.get(origin) ?? 0) + us)
    }
  }
  if (prof.samples === undefined || prof.timeDeltas === undefined) {
    for (const n of prof.nodes) add(n, (n.hitCount ?? 0) * 1000)
    return
  }
  // timeDeltas[i] is the time before sample i: the time of sample i is the delta that follows it.
  const samples = prof.samples
  const deltas = prof.timeDeltas
  const between = (from: number, to: number, dryRun: boolean) => {
    let t = prof.startTime
    let matched = 0
    for (let i = 0; i < samples.length; i++) {
      t += deltas[i]!
      if (t < from || t > to) continue
      matched += 1
      if (!dryRun) add(byId.get(samples[i]!), deltas[i + 1] ?? deltas[i] ?? 0)
    }
    return matched
  }
  if (window !== undefined && between(window.startUs, window.endUs, true) > 0) {
    between(window.startUs, window.endUs, false)
  } else {
    console.log(`(profile ${path.relative(profileDir, file)}: no samples in the measurement window, all of them counted)`)
    between(-Infinity, Infinity, false)
  }
}

const printSelfTimes = (title: string, t: SelfTimes, top: number) => {
  const busyUs = t.totalUs - t.idleUs
  console.log(`\n### ${title}: main thread busy ${(busyUs / 1e6).toFixed(1)} s of ${(t.totalUs / 1e6).toFixed(1)} s sampled\n`)
  console.log(
    "by origin: " +
      [...t.byOrigin].sort((a, b) => b[1] - a[1]).map(([o, us]) => `${o} ${((us / busyUs) * 100).toFixed(1)}%`).join(", ") + "\n"
  )
  console.log("| % of busy | self ms | function |")
  console.log("|---:|---:|---|")
  for (const [label, us] of [...t.byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`| ${((us / busyUs) * 100).toFixed(1)} | ${(us / 1000).toFixed(0)} | ${label.replaceAll("|", "\\|")} |`)
  }
}

/** The top self-time functions of our server over every cell's window, then each cell's own top 10. */
const printProfile = () => {
  const all = emptySelfTimes()
  const perCell: Array<[string, SelfTimes]> = []
  for (const cell of cells) {
    for (const name of servers.filter((n) => n !== "redis")) {
      const own = emptySelfTimes()
      let found = 0
      for (let of = 1; of <= rounds; of++) {
        const dir = path.join(profileDir, profileKey(cell, name, of))
        const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith(".cpuprofile")) : []
        for (const f of files) readProfile(path.join(dir, f), [all, own])
        found += files.length
      }
      if (found === 0) {
        console.log(`\nno CPU profile of our server for cell ${cell.id} (${name}; did it exit cleanly?)`)
        continue
      }
      perCell.push([`${cell.id}: ${cell.title}, ${name}`, own])
    }
  }
  if (perCell.length === 0) return
  console.log(`\n## Our server's CPU profile (main thread, self time, measurement windows only)`)
  printSelfTimes(`Top 25 over every run of ours`, all, 25)
  if (perCell.length > 1) for (const [title, own] of perCell) printSelfTimes(`Top 10 of cell ${title}`, own, 10)
}

// -------------------------------------------------------------------------------------------------
// Main
// -------------------------------------------------------------------------------------------------

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits }) : "-")

const main = async () => {
  const redisVersion = execFileSync(redisServer, ["--version"]).toString().trim()
  console.log(
    `EventStore (ours) vs Redis Streams: ${seconds} s windows after ${warmupSeconds} s warm-up, ${valueBytes} B records, ` +
      `${keyCount} keys; ${os.cpus().length} cores, node ${process.version}, ${redisVersion.split(" ").slice(0, 3).join(" ")}` +
      (profile ? "; our server runs with --cpu-prof" : "")
  )
  if (fs.existsSync(serverMain)) {
    console.log(`our server: ${path.relative(repoRoot, serverMain)} built ${fs.statSync(serverMain).mtime.toISOString()} (npm run build to refresh)`)
  }
  if (tailCount < tailsWanted) console.log(`cell e: ${tailCount} idle tails, not ${tailsWanted}: this process may open ${fdLimit} files`)
  const runs: Array<Result> = []
  let failed = false
  for (round = 1; round <= rounds; round++) {
    if (rounds > 1) console.log(`round ${round} of ${rounds}`)
    for (const cell of cells) {
      for (const name of servers) {
        try {
          const r = await runCell(cell, name)
          runs.push(r)
          console.log(
            `${cell.id} ${cell.title.padEnd(32)} ${name.padEnd(12)} ${fmt(r.recordsPerSecond).padStart(10)} rec/s  p50 ${fmt(r.p50, 2)} ms  ` +
              `p99 ${fmt(r.p99, 2)} ms  ${fmt(r.cpuPerMillion, 1)} CPU s/M  ${fmt(r.cpuCores * 100)}% server CPU  ` +
              `${fmt(r.rssMb)} MB  idle ${fmt(r.idleCpuPercent, 1)}% CPU  client ${fmt(r.clientCpuPercent)}% CPU${r.notes.length > 0 ? "  (" + r.notes.join("; ") + ")" : ""}`
          )
        } catch (e) {
          failed = true
          console.log(`${cell.id} ${cell.title} ${name}: FAILED: ${e instanceof Error ? e.message : String(e)}`)
        }
      }
    }
  }
  const results = medians(runs)

  const find = (id: string, server: ServerName) => results.find((r) => r.cell.id === id && r.server === server)
  console.log(
    `\n## EventStore vs Redis Streams (${seconds} s windows, 100 B records, durable acks${rounds > 1 ? `; medians of ${rounds} rounds` : ""})\n`
  )
  console.log(
    "| cell | server | records/s | p50 ms | p99 ms | server CPU s / M rec | server CPU (cores) | server idle CPU % | peak RSS MB | client CPU % | ours/Redis records/s | ours/Redis CPU/rec | notes |"
  )
  console.log("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
  for (const r of results) {
    const redis = find(r.cell.id, "redis")
    const notes = [...r.notes]
    if (r.cell.tails > 0) {
      const plain = find("b", r.server)
      if (plain !== undefined) {
        notes.push(
          `vs plain (b): records/s x${fmt(r.recordsPerSecond / plain.recordsPerSecond, 2)}, CPU/rec x${fmt(r.cpuPerMillion / plain.cpuPerMillion, 2)}`
        )
        // Each round's own ratio too: b and e of one round ran minutes apart, on the same machine state.
        const own = (id: string) => runs.filter((x) => x.cell.id === id && x.server === r.server)
        const [withTails, without] = [own(r.cell.id), own("b")]
        if (rounds > 1 && withTails.length === without.length) {
          notes.push(`by round: CPU/rec x${withTails.map((x, i) => fmt(x.cpuPerMillion / without[i]!.cpuPerMillion, 2)).join(", ")}`)
        }
      }
    }
    console.log(
      `| ${r.cell.id}: ${r.cell.title} | ${r.server} | ${fmt(r.recordsPerSecond)} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ` +
        `${fmt(r.cpuPerMillion, 1)} | ${fmt(r.cpuCores, 2)} | ${fmt(r.idleCpuPercent, 1)} | ${fmt(r.rssMb)} | ${fmt(r.clientCpuPercent)} | ` +
        (r.server !== "redis" && redis !== undefined
          ? `${fmt(r.recordsPerSecond / redis.recordsPerSecond, 2)} | ${fmt(r.cpuPerMillion / redis.cpuPerMillion, 1)} | `
          : "| | ") +
        `${notes.join("; ").replaceAll("|", "\\|")} |`
    )
  }
  if (profile) printProfile()
  if (failed || results.some((r) => r.errors > 0)) process.exitCode = 1
}

try {
  await main()
} finally {
  cleanup()
}
// Sockets still closing (tails) would keep the process alive: the servers are gone, so leave.
process.exit()
