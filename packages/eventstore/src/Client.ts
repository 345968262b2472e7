/**
 * A client of the EventStore's HTTP and WebSocket API, for Node 22 and browsers (it uses only `fetch`, the
 * built-in `WebSocket`, `TextEncoder` and `btoa`/`atob`). Promise-based, with typed errors:
 *
 *   const client = makeClient({ url: "http://localhost:9095", token: process.env.OPENDATA_TOKEN })
 *   await client.append("orders/42", ["placed", { value: "paid", headers: { by: "card" } }])
 *   const { records, next } = await client.read("orders/42", { from: 0 })
 *   for await (const record of client.tail("orders/42", { from: next })) console.log(record.offset, record.value)
 *   const session = await client.session()        // pipelined appends over one WebSocket
 *   await Promise.all(events.map((e) => session.append("orders/42", [e])))
 *
 * Values are strings (sent as UTF-8) or bytes (`Uint8Array`, sent as base64); reads return strings unless
 * asked for `encoding: "base64"`, which returns bytes. A tail resumes after a dropped connection from the
 * offset after the last record it delivered, so a consumer sees every record once, in order.
 */

/** Anything the server answers with its error envelope, or a failure to reach it (`status` 0). */
export class EventStoreClientError extends Error {
  override readonly name = "EventStoreClientError"
  /** The HTTP status (the one the request would have had, for an append session's answer); 0: no answer. */
  readonly status: number
  /** The envelope's `error` code (`OffsetConflict`, `LogNotFound`, ...), or `Network` / `Closed`. */
  readonly code: string
  /** The whole envelope: `field`, `next`, `first` and the other details of the error. */
  readonly details: Readonly<Record<string, unknown>>
  constructor(status: number, code: string, message: string, details: Readonly<Record<string, unknown>> = {}) {
    super(message)
    this.status = status
    this.code = code
    this.details = details
  }
}

export interface ClientOptions {
  /** The server's base URL, e.g. `http://localhost:9095`. */
  readonly url: string
  /** A bearer token (Node only for WebSockets: browsers cannot send headers on them). */
  readonly token?: string | undefined
  /** The `fetch` to use (default: the global one). */
  readonly fetch?: typeof fetch | undefined
  /**
   * Runs `run` after `ms` (default: the global `setTimeout`): when a tail reconnects. A test or a
   * simulation passes its own clock here.
   */
  readonly schedule?: ((run: () => void, ms: number) => void) | undefined
}

export type Value = string | Uint8Array
export interface RecordToAppend {
  readonly value: Value
  readonly headers?: Readonly<Record<string, string>> | undefined
  readonly eventTime?: number | undefined
}
export interface AppendOptions {
  readonly expectedOffset?: number | undefined
  readonly fencingToken?: string | undefined
  readonly producerId?: string | undefined
  readonly producerSeq?: number | undefined
}
export interface Appended {
  readonly offsets: ReadonlyArray<number>
  readonly next: number
}
export interface LogRecord<V extends Value = string> {
  readonly key: string
  readonly offset: number
  readonly timestamp: number
  readonly eventTime?: number
  readonly headers: Readonly<Record<string, string>>
  readonly value: V
}
export interface ReadOptions {
  readonly from?: number | undefined
  readonly fromTime?: number | undefined
  readonly limit?: number | undefined
  readonly maxBytes?: number | undefined
}
export interface LogMeta {
  readonly key: string
  readonly firstOffset: number
  readonly nextOffset: number
  readonly bytes: number
  readonly records: number
  readonly createdMs: number
  readonly lastAppendMs: number | null
  readonly retention: { readonly maxAgeMs?: number; readonly maxBytes?: number } | null
  readonly fenced: boolean
}
export interface TailOptions {
  /** Start at this offset; or `fromTime`; or `now` (only what is appended from now on). Default: the first offset stored. */
  readonly from?: number | undefined
  readonly fromTime?: number | undefined
  readonly now?: boolean | undefined
  /** Stop following (and end the iteration) when this signal aborts. */
  readonly signal?: AbortSignal | undefined
  /** Records buffered for a slow consumer before the connection is dropped and resumed later (default 10,000). */
  readonly bufferRecords?: number | undefined
}

/** A pipelined append session (`GET /v1/append`): many appends in flight, each answered once durable. */
export interface Session {
  readonly append: (key: string, records: ReadonlyArray<Value | RecordToAppend>, options?: AppendOptions) => Promise<Appended>
  /** Closes the session; appends still in flight fail with `Closed` (retry them with a producer id). */
  readonly close: () => void
}

export interface Client {
  readonly append: (key: string, records: ReadonlyArray<Value | RecordToAppend>, options?: AppendOptions) => Promise<Appended>
  readonly read: {
    (key: string, options?: ReadOptions & { readonly encoding?: "utf8" }): Promise<{ records: Array<LogRecord>; next: number }>
    (key: string, options: ReadOptions & { readonly encoding: "base64" }): Promise<{ records: Array<LogRecord<Uint8Array>>; next: number }>
  }
  readonly meta: (key: string) => Promise<LogMeta>
  readonly list: (options?: { readonly prefix?: string; readonly cursor?: string; readonly limit?: number }) => Promise<{ logs: Array<LogMeta>; cursor?: string }>
  /** Follows a log: catches up from the start point, then yields new records as they become durable. */
  readonly tail: (key: string, options?: TailOptions) => AsyncIterableIterator<LogRecord>
  readonly session: (options?: { readonly prefix?: string }) => Promise<Session>
  /** Commits a consumer group's offset for a log (the next record it will consume). */
  readonly commit: (group: string, key: string, offset: number) => Promise<{ offset: number | null; lag: number }>
  readonly fetch: (group: string, key: string) => Promise<{ offset: number | null; lag: number }>
}

const utf8 = new TextEncoder()
const utf8Decoder = new TextDecoder()
const toBase64 = (bytes: Uint8Array) => {
  let binary = ""
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
  return btoa(binary)
}
const fromBase64 = (text: string) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0))

/** The body of an append (records and options), and the encoding it needs. */
const appendBody = (records: ReadonlyArray<Value | RecordToAppend>, options: AppendOptions = {}) => {
  const all = records.map((r): RecordToAppend => (typeof r === "string" || r instanceof Uint8Array ? { value: r } : r))
  const binary = all.some((r) => typeof r.value !== "string")
  const body: Record<string, unknown> = {
    records: all.map((r) => ({
      value: binary ? toBase64(typeof r.value === "string" ? utf8.encode(r.value) : r.value) : r.value,
      ...(r.headers !== undefined ? { headers: r.headers } : {}),
      ...(r.eventTime !== undefined ? { eventTime: r.eventTime } : {})
    }))
  }
  for (const [name, value] of Object.entries(options)) if (value !== undefined) body[name] = value
  return { body, encoding: binary ? "base64" as const : "utf8" as const }
}

const query = (params: Record<string, string | number | boolean | undefined>) => {
  const q = new URLSearchParams()
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined || value === false) continue
    q.set(name, value === true ? "" : String(value))
  }
  const text = q.toString()
  return text === "" ? "" : `?${text}`
}

const errorOf = (status: number, envelope: Record<string, unknown>) =>
  new EventStoreClientError(status, String(envelope["error"] ?? "Error"), String(envelope["message"] ?? `HTTP ${status}`), envelope)

export const makeClient = (options: ClientOptions): Client => {
  const base = options.url.replace(/\/+$/, "")
  const wsBase = base.replace(/^http/, "ws")
  const doFetch = options.fetch ?? fetch
  const schedule = options.schedule ?? ((run: () => void, ms: number) => void setTimeout(run, ms))
  const authorization: Record<string, string> = options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }
  const log = (key: string) => `/v1/logs/${encodeURIComponent(key)}`

  const call = async <A>(method: string, path: string, body?: unknown): Promise<A> => {
    let response: Response
    try {
      response = await doFetch(`${base}${path}`, {
        method,
        headers: { ...authorization, ...(body === undefined ? {} : { "content-type": "application/json" }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) })
      })
    } catch (e) {
      throw new EventStoreClientError(0, "Network", `cannot reach ${base}: ${e instanceof Error ? e.message : String(e)}`)
    }
    const text = await response.text()
    let json: unknown
    try {
      json = text === "" ? undefined : JSON.parse(text)
    } catch {
      json = undefined
    }
    if (!response.ok) throw errorOf(response.status, typeof json === "object" && json !== null ? json as Record<string, unknown> : { message: text })
    return json as A
  }

  /** A WebSocket with the token (Node's WebSocket takes headers; a browser's cannot send them). */
  const openSocket = (url: string): WebSocket => {
    const Ws = WebSocket as unknown as new (url: string, options?: unknown) => WebSocket
    return options.token === undefined ? new Ws(url) : new Ws(url, { headers: authorization })
  }

  const decodeRecords = <V extends Value>(key: string, raw: ReadonlyArray<Record<string, unknown>>, binary: boolean): Array<LogRecord<V>> =>
    raw.map((r) => ({
      key,
      offset: r["offset"] as number,
      timestamp: r["timestamp"] as number,
      ...(r["eventTime"] !== undefined ? { eventTime: r["eventTime"] as number } : {}),
      headers: (r["headers"] ?? {}) as Record<string, string>,
      value: (binary ? fromBase64(r["value"] as string) : r["value"]) as V
    }))

  const tail = (key: string, tailOptions: TailOptions = {}): AsyncIterableIterator<LogRecord> => {
    const bufferMax = tailOptions.bufferRecords ?? 10_000
    const buffered: Array<LogRecord> = []
    let failure: EventStoreClientError | undefined
    let ended = false
    let wake: (() => void) | undefined
    let socket: WebSocket | undefined
    /** Where to resume: the offset after the last record received (or a heartbeat's `next`). */
    let next: number | undefined = tailOptions.from
    let backoffMs = 100
    let everOpened = false
    let paused = false
    const notify = () => {
      wake?.()
      wake = undefined
    }
    const finish = () => {
      ended = true
      socket?.close()
      notify()
    }
    tailOptions.signal?.addEventListener("abort", finish, { once: true })

    const connect = () => {
      if (ended) return
      const start = next !== undefined
        ? { from: next }
        : tailOptions.fromTime !== undefined
        ? { fromTime: tailOptions.fromTime }
        : tailOptions.now === true
        ? { now: true }
        : {}
      const ws = openSocket(`${wsBase}${log(key)}/tail${query(start)}`)
      socket = ws
      ws.addEventListener("open", () => {
        everOpened = true
        backoffMs = 100
      })
      ws.addEventListener("message", (event) => {
        const message = JSON.parse(String(event.data)) as Record<string, unknown>
        if (message["type"] === "records") {
          const records = decodeRecords<string>(key, message["records"] as Array<Record<string, unknown>>, false)
          for (const r of records) {
            // A resumed tail starts at `next`: anything before it was delivered already.
            if (next !== undefined && r.offset < next) continue
            buffered.push(r)
            next = r.offset + 1
          }
          if (buffered.length > bufferMax && !paused) {
            // The consumer is behind: stop receiving, resume from `next` once it catches up.
            paused = true
            ws.close()
          }
          notify()
        } else if (message["type"] === "heartbeat" && typeof message["next"] === "number") {
          next = Math.max(next ?? 0, message["next"])
        } else if (message["type"] === "error") {
          failure = errorOf(message["status"] as number, message)
          finish()
        }
      })
      // A connection that fails to open may report only an error (Node's WebSocket does), one that drops a
      // close: either way, once.
      let gone = false
      const lost = () => {
        if (gone) return
        gone = true
        if (socket !== ws || ended || failure !== undefined || paused) return
        // Never reached at all: a wrong address, not a restart; give up after a few seconds of trying.
        if (!everOpened && backoffMs > 5_000) {
          failure = new EventStoreClientError(0, "Network", `cannot open the tail of ${key} at ${wsBase}`)
          return finish()
        }
        // The server went away (a restart, a network blip): resume where the last record left off.
        schedule(connect, backoffMs)
        backoffMs = Math.min(backoffMs * 2, 10_000)
      }
      ws.addEventListener("close", lost)
      ws.addEventListener("error", lost)
    }
    connect()

    const iterator: AsyncIterableIterator<LogRecord> = {
      next: async () => {
        for (;;) {
          if (buffered.length > 0) {
            const record = buffered.shift()!
            if (paused && buffered.length < bufferMax / 2) {
              paused = false
              connect()
            }
            return { value: record, done: false }
          }
          if (failure !== undefined) throw failure
          if (ended) return { value: undefined, done: true }
          if (paused) {
            paused = false
            connect()
          }
          await new Promise<void>((resolve) => (wake = resolve))
        }
      },
      return: async () => {
        finish()
        return { value: undefined, done: true }
      },
      [Symbol.asyncIterator]: () => iterator
    }
    return iterator
  }

  const session = async (sessionOptions: { readonly prefix?: string } = {}): Promise<Session> => {
    const ws = openSocket(`${wsBase}/v1/append${query({ prefix: sessionOptions.prefix })}`)
    const pending = new Map<number, { resolve: (a: Appended) => void; reject: (e: EventStoreClientError) => void }>()
    let nextId = 0
    let closed: EventStoreClientError | undefined
    ws.addEventListener("message", (event) => {
      const answer = JSON.parse(String(event.data)) as { id: number | null; offsets?: Array<number>; next?: number; error?: Record<string, unknown> }
      const waiter = answer.id === null ? undefined : pending.get(answer.id)
      if (waiter === undefined) return
      pending.delete(answer.id!)
      if (answer.error !== undefined) waiter.reject(errorOf(answer.error["status"] as number, answer.error))
      else waiter.resolve({ offsets: answer.offsets!, next: answer.next! })
    })
    // Node's WebSocket may report a dropped connection as an error only.
    const lost = (why: string) => {
      closed ??= new EventStoreClientError(0, "Closed", `the append session closed (${why})`)
      for (const w of pending.values()) w.reject(closed)
      pending.clear()
    }
    ws.addEventListener("close", (event) => lost(`${event.code}${event.reason === "" ? "" : ` ${event.reason}`}`))
    ws.addEventListener("error", () => lost("connection error"))
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener("open", () => resolve(), { once: true })
      ws.addEventListener("error", () => reject(new EventStoreClientError(0, "Network", `cannot open an append session at ${wsBase}`)), { once: true })
    })
    return {
      append: (key, records, appendOptions) => {
        if (closed !== undefined) return Promise.reject(closed)
        const { body, encoding } = appendBody(records, appendOptions)
        const id = nextId++
        return new Promise<Appended>((resolve, reject) => {
          pending.set(id, { resolve, reject })
          // One socket for every append, so that appends to one log keep their order; bytes say so per frame.
          ws.send(JSON.stringify({ id, key, ...(encoding === "base64" ? { encoding } : {}), ...body }))
        })
      },
      close: () => {
        closed ??= new EventStoreClientError(0, "Closed", "the append session was closed")
        ws.close()
      }
    }
  }

  const group = (g: string, key: string) => `/v1/groups/${encodeURIComponent(g)}/offsets/${encodeURIComponent(key)}`

  return {
    append: (key, records, appendOptions) => {
      const { body, encoding } = appendBody(records, appendOptions)
      return call<Appended>("POST", `${log(key)}/records${query({ encoding: encoding === "base64" ? "base64" : undefined })}`, body)
    },
    read: (async (key: string, readOptions: ReadOptions & { readonly encoding?: "utf8" | "base64" } = {}) => {
      const { encoding, ...rest } = readOptions
      const result = await call<{ records: Array<Record<string, unknown>>; next: number }>(
        "GET",
        `${log(key)}/records${query({ ...rest, encoding: encoding === "base64" ? "base64" : undefined })}`
      )
      return { records: decodeRecords(key, result.records, encoding === "base64"), next: result.next }
    }) as Client["read"],
    meta: (key) => call("GET", log(key)),
    list: (listOptions = {}) => call("GET", `/v1/logs${query({ ...listOptions })}`),
    tail,
    session,
    commit: (g, key, offset) => call("PUT", group(g, key), { offset }),
    fetch: (g, key) => call("GET", group(g, key))
  }
}

/** The text of a value read as bytes (for tools that print what they read). */
export const valueText = (value: Value): string => (typeof value === "string" ? value : utf8Decoder.decode(value))
