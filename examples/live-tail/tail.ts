/**
 * Follows one EventStore log over WebSocket and resumes after a disconnect from the next offset it has
 * not seen, so it never misses or repeats a record. Against a server started with `npm start`:
 *
 *   npm run live-tail -w examples -- orders/42 [http://localhost:9095] [--seconds 10]
 *
 * With authentication on, give a token with read scope in OPENDATA_TOKEN.
 */
import WebSocket from "ws"

const args = process.argv.slice(2)
const log = args.find((a) => !a.startsWith("--") && !a.startsWith("http")) ?? "orders/42"
const base = (args.find((a) => a.startsWith("http")) ?? "http://localhost:9095").replace(/^http/, "ws")
const secondsAt = args.indexOf("--seconds")
const seconds = secondsAt === -1 ? Number.POSITIVE_INFINITY : Number(args[secondsAt + 1])

const token = process.env["OPENDATA_TOKEN"]
const headers = token === undefined || token === "" ? {} : { authorization: `Bearer ${token}` }

let next = 0
let stopping = false

const connect = () => {
  const ws = new WebSocket(`${base}/v1/logs/${encodeURIComponent(log)}/tail?from=${next}`, { headers })
  ws.on("message", (data) => {
    const message = JSON.parse(String(data)) as
      | { type: "records"; records: Array<{ offset: number; timestamp: number; value: string }> }
      | { type: "heartbeat"; next?: number }
      | { type: "error"; message: string; first?: number }
    if (message.type === "records") {
      for (const r of message.records) {
        console.log(`${log}@${r.offset} ${new Date(r.timestamp).toISOString()} ${r.value}`)
        next = r.offset + 1
      }
    } else if (message.type === "error") {
      console.error(`tail error: ${message.message}`)
      if (message.first !== undefined) next = message.first // trimmed: resume at the first record kept
    }
  })
  ws.on("close", () => {
    if (stopping) return
    console.error(`disconnected; resuming from offset ${next} in 1 s`)
    setTimeout(connect, 1000)
  })
  ws.on("error", (e) => console.error(`connection error: ${e.message}`))
  return ws
}

let socket = connect()
if (Number.isFinite(seconds)) {
  setTimeout(() => {
    stopping = true
    socket.close()
  }, seconds * 1000)
}
process.on("SIGINT", () => {
  stopping = true
  socket.close()
})
void socket
