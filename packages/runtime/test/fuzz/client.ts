/**
 * Clients of the fuzz suite that send exactly what a case says: a raw HTTP/1.1 request over a TCP socket
 * (any method token, any request-target bytes, any headers, a body with a true or a false Content-Length),
 * and a WebSocket (the `ws` package) that can also write raw bytes under its framing.
 */
import * as net from "node:net"
import WebSocket from "ws"

export interface RawRequest {
  readonly method: string
  /** The request-target as bytes: a "binary" string, one char per byte (see `bytesOf`). */
  readonly target: string
  readonly headers?: ReadonlyArray<readonly [string, string]>
  readonly body?: Uint8Array
  /** A Content-Length to declare instead of the body's (the body sent is still `body`). */
  readonly declaredLength?: number
}

export type HttpOutcome =
  | { readonly _tag: "answer"; readonly status: number; readonly headers: Record<string, string>; readonly body: Buffer; readonly ms: number }
  | { readonly _tag: "timeout"; readonly ms: number }
  | { readonly _tag: "error"; readonly message: string; readonly ms: number }

/** A string's UTF-8 bytes as a binary string (what `target` holds). */
export const bytesOf = (s: string): string => Buffer.from(s, "utf8").toString("latin1")

const headEnd = Buffer.from("\r\n\r\n")

/** Sends one request on a fresh connection (`Connection: close`) and reads the answer. */
export const rawHttp = (port: number, request: RawRequest, timeoutMs: number): Promise<HttpOutcome> =>
  new Promise((resolve) => {
    const started = performance.now()
    const elapsed = () => performance.now() - started
    const body = request.body ?? new Uint8Array(0)
    const lines = [`${request.method} ${request.target} HTTP/1.1`, `Host: 127.0.0.1:${port}`, "Connection: close"]
    for (const [name, value] of request.headers ?? []) lines.push(`${name}: ${value}`)
    const hasLength = (request.headers ?? []).some(([n]) => n.toLowerCase() === "content-length" || n.toLowerCase() === "transfer-encoding")
    if (!hasLength && (body.length > 0 || request.declaredLength !== undefined || ["POST", "PUT", "PATCH"].includes(request.method))) {
      lines.push(`Content-Length: ${request.declaredLength ?? body.length}`)
    }
    const head = Buffer.from(lines.join("\r\n") + "\r\n\r\n", "latin1")

    let settled = false
    let received: Buffer = Buffer.alloc(0)
    let status: number | undefined
    let headers: Record<string, string> = {}
    let bodyStart = -1
    const socket = net.connect(port, "127.0.0.1")
    const finish = (outcome: HttpOutcome) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      resolve(outcome)
    }
    const answer = () => {
      let payload = received.subarray(bodyStart)
      if (headers["transfer-encoding"]?.toLowerCase().includes("chunked")) payload = dechunk(payload)
      finish({ _tag: "answer", status: status!, headers, body: Buffer.from(payload), ms: elapsed() })
    }
    const timer = setTimeout(() => finish({ _tag: "timeout", ms: elapsed() }), timeoutMs)

    socket.on("connect", () => {
      socket.write(head)
      // The body goes in slices, and stops as soon as an answer starts (a server may refuse it early).
      let at = 0
      const pump = () => {
        while (at < body.length && status === undefined && !settled) {
          const slice = body.subarray(at, at + 256 * 1024)
          at += slice.length
          if (!socket.write(slice)) return void socket.once("drain", pump)
        }
      }
      pump()
    })
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk])
      if (status === undefined) {
        const end = received.indexOf(headEnd)
        if (end === -1) return
        const [statusLine = "", ...headerLines] = received.subarray(0, end).toString("latin1").split("\r\n")
        const m = /^HTTP\/\d\.\d (\d{3})/.exec(statusLine)
        if (m === null) return finish({ _tag: "error", message: `unparsable status line ${JSON.stringify(statusLine.slice(0, 80))}`, ms: elapsed() })
        status = Number(m[1])
        headers = {}
        for (const line of headerLines) {
          const colon = line.indexOf(":")
          if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
        }
        bodyStart = end + 4
      }
      if (status === 101 || request.method === "HEAD" || status === 204 || status === 304) return answer()
      const length = headers["content-length"]
      if (length !== undefined && received.length - bodyStart >= Number(length)) return answer()
    })
    socket.on("end", () => (status !== undefined ? answer() : finish({ _tag: "error", message: "connection closed without an answer", ms: elapsed() })))
    socket.on("close", () => (status !== undefined ? answer() : finish({ _tag: "error", message: "connection closed without an answer", ms: elapsed() })))
    socket.on("error", (e) => (status !== undefined ? answer() : finish({ _tag: "error", message: `${(e as NodeJS.ErrnoException).code ?? e.message} without an answer`, ms: elapsed() })))
  })

const dechunk = (data: Buffer): Buffer => {
  const parts: Array<Buffer> = []
  let at = 0
  for (;;) {
    const eol = data.indexOf("\r\n", at)
    if (eol === -1) break
    const size = parseInt(data.subarray(at, eol).toString("latin1"), 16)
    if (!(size > 0)) break
    parts.push(data.subarray(eol + 2, eol + 2 + size))
    at = eol + 2 + size + 2
  }
  return Buffer.concat(parts)
}

// -------------------------------------------------------------------------------------------------
// WebSocket
// -------------------------------------------------------------------------------------------------

/** What a case does on an open tail. */
export type WsAction =
  | { readonly _tag: "text"; readonly data: string }
  | { readonly _tag: "binary"; readonly data: Uint8Array }
  /** A text frame whose payload is these bytes (they need not be UTF-8). */
  | { readonly _tag: "textBytes"; readonly data: Uint8Array }
  | { readonly _tag: "ping"; readonly data: Uint8Array }
  /** Bytes written to the socket under the framing: any frame, well-formed or not. */
  | { readonly _tag: "raw"; readonly data: Uint8Array }

export type WsOutcome =
  | {
    readonly _tag: "opened"
    /** The close code the server sent, if it closed within the wait. */
    readonly closeCode: number | undefined
    readonly messages: ReadonlyArray<string>
    readonly ms: number
  }
  | { readonly _tag: "refused"; readonly status: number; readonly body: string; readonly ms: number }
  | { readonly _tag: "timeout"; readonly ms: number }
  | { readonly _tag: "error"; readonly message: string; readonly ms: number }

/**
 * Opens a WebSocket at `url`, and if it opens performs `actions`, then waits up to `lingerMs` for the
 * server to close (recording its close code and the messages it sent) before closing it.
 */
export const runWs = (
  url: string,
  actions: ReadonlyArray<WsAction>,
  lingerMs: number,
  timeoutMs: number
): Promise<WsOutcome> =>
  new Promise((resolve) => {
    const started = performance.now()
    const elapsed = () => performance.now() - started
    const messages: Array<string> = []
    let settled = false
    let opened = false
    let closeCode: number | undefined
    const ws = new WebSocket(url, { handshakeTimeout: timeoutMs, maxPayload: 8 * 1024 * 1024 })
    const finish = (outcome: WsOutcome) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      clearTimeout(linger)
      ws.removeAllListeners()
      ws.on("error", () => {})
      ws.terminate()
      resolve(outcome)
    }
    let linger: ReturnType<typeof setTimeout> | undefined
    const timer = setTimeout(() => finish({ _tag: "timeout", ms: elapsed() }), timeoutMs)
    ws.on("unexpected-response", (_req, res) => {
      let body = ""
      res.on("data", (d: Buffer) => (body += d.toString("utf8")))
      res.on("end", () => finish({ _tag: "refused", status: res.statusCode ?? 0, body, ms: elapsed() }))
      res.on("error", () => finish({ _tag: "refused", status: res.statusCode ?? 0, body, ms: elapsed() }))
    })
    ws.on("message", (data: Buffer) => {
      if (messages.length < 20) messages.push(data.toString("utf8").slice(0, 2000))
    })
    ws.on("close", (code) => {
      closeCode = code
      if (opened) finish({ _tag: "opened", closeCode, messages, ms: elapsed() })
    })
    ws.on("error", (e) => {
      if (!opened) finish({ _tag: "error", message: e.message, ms: elapsed() })
      // After the open, errors (e.g. the server closing on a bad frame) end in "close".
    })
    ws.on("open", () => {
      opened = true
      const socket = (ws as unknown as { _socket: net.Socket })._socket
      try {
        for (const action of actions) {
          switch (action._tag) {
            case "text":
              ws.send(action.data)
              break
            case "binary":
              ws.send(action.data, { binary: true })
              break
            case "textBytes":
              ws.send(Buffer.from(action.data), { binary: false })
              break
            case "ping":
              ws.ping(Buffer.from(action.data))
              break
            case "raw":
              socket.write(action.data)
              break
          }
        }
      } catch {
        // The socket closed under us: the close event reports it.
      }
      linger = setTimeout(() => finish({ _tag: "opened", closeCode, messages, ms: elapsed() }), lingerMs)
    })
  })
