/**
 * A WebSocket tail that stays open: it parses the server's messages (records, heartbeats, errors), passes
 * on only records, and reconnects after a disconnect. A tail of one log resumes from the offset after the
 * last record it received (or the last heartbeat's `next`), so nothing is lost or repeated; a prefix tail
 * can only start again from now.
 */
import { openSocket } from "../api.ts"
import { type LogRecord, toRecords } from "./api.ts"

export type TailState = "connecting" | "open" | "retrying" | "failed" | "stopped"

export interface TailStatus {
  readonly state: TailState
  /** Why it is retrying or failed, or a note on what was skipped. */
  readonly message?: string
  /** When the next attempt starts (ms since the epoch), while retrying. */
  readonly retryAt?: number
}

export interface TailOptions {
  /** The socket's path and query, given where to resume (undefined: the tail's own start). */
  readonly path: (resumeFrom: number | undefined) => string
  /** Whether it can resume where it stopped (a single log's tail); a prefix tail restarts from now. */
  readonly resumable: boolean
  readonly onRecords: (records: Array<LogRecord>) => void
  readonly onStatus: (status: TailStatus) => void
}

type Message =
  | { type: "records"; key: string; records: Array<{ offset: number; timestamp: number; eventTime?: number; headers: Record<string, string>; value: string }> }
  | { type: "heartbeat"; key?: string; next?: number }
  | { type: "error"; status: number; error: string; message: string; first?: number }

const backoffMs = [250, 500, 1000, 2000, 5000, 10_000]

export class Tail {
  private socket: WebSocket | undefined
  private timer: ReturnType<typeof setTimeout> | undefined
  private attempt = 0
  private running = false
  /** The offset to resume from: after the last record received. */
  private resumeFrom: number | undefined
  private lastError: Extract<Message, { type: "error" }> | undefined
  private readonly options: TailOptions

  constructor(options: TailOptions) {
    this.options = options
  }

  /** Where a resumable tail would resume. */
  get next(): number | undefined {
    return this.resumeFrom
  }

  /** Opens the socket (again, after `stop`, resuming where it stopped when it can). */
  start(): void {
    if (this.running) return
    this.running = true
    this.attempt = 0
    this.connect()
  }

  /** Closes the socket and stops reconnecting. */
  stop(): void {
    this.running = false
    clearTimeout(this.timer)
    const socket = this.socket
    this.socket = undefined
    if (socket !== undefined) socket.close(1000)
    this.options.onStatus({ state: "stopped" })
  }

  private connect(): void {
    this.lastError = undefined
    this.options.onStatus({ state: "connecting" })
    const socket = openSocket(this.options.path(this.options.resumable ? this.resumeFrom : undefined))
    this.socket = socket
    socket.onopen = () => {
      if (this.socket !== socket) return
      this.options.onStatus({ state: "open" })
    }
    socket.onmessage = (event) => {
      if (this.socket !== socket || typeof event.data !== "string") return
      const message = JSON.parse(event.data) as Message
      // Records or a heartbeat show the tail works; an error message before a close does not.
      if (message.type === "records" || message.type === "heartbeat") this.attempt = 0
      this.handle(message)
    }
    socket.onclose = (event) => {
      if (this.socket !== socket) return
      this.socket = undefined
      this.closed(event.code)
    }
  }

  private handle(message: Message): void {
    switch (message.type) {
      case "records": {
        const last = message.records.at(-1)
        if (last !== undefined) this.resumeFrom = last.offset + 1
        this.options.onRecords(toRecords(message.key, message.records))
        return
      }
      case "heartbeat":
        if (message.next !== undefined) this.resumeFrom = message.next
        return
      case "error":
        this.lastError = message
        return
    }
  }

  /** After a close the tail did not ask for: give up on a refusal, resume after anything else. */
  private closed(code: number): void {
    if (!this.running) return
    const error = this.lastError
    let note: string | undefined
    if (code >= 4000 && code < 5000 && error !== undefined) {
      if (error.status === 416 && error.first !== undefined && this.options.resumable) {
        // The start was trimmed away: go on from the first record still stored.
        note = `Records before offset ${error.first} were trimmed; resumed from there.`
        this.resumeFrom = error.first
      } else if (error.status !== 503) {
        this.running = false
        this.options.onStatus({ state: "failed", message: error.message })
        return
      }
    }
    const delay = backoffMs[Math.min(this.attempt, backoffMs.length - 1)]!
    this.attempt++
    const reason = note ?? (this.options.resumable
      ? `Disconnected (${code}); resuming${this.resumeFrom === undefined ? "" : ` from offset ${this.resumeFrom}`}.`
      : `Disconnected (${code}); records appended meanwhile are not shown.`)
    this.options.onStatus({ state: "retrying", message: reason, retryAt: Date.now() + delay })
    this.timer = setTimeout(() => {
      if (this.running) this.connect()
    }, delay)
  }
}
