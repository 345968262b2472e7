/**
 * `useLiveTail`: a Tail (tail.ts) bound to a component. Records reach the page in batches (at most ten
 * renders a second); while paused they wait in a buffer, up to a cap: past it a resumable tail closes its
 * socket (and resumes from the buffer's end on unpause), a prefix tail drops the oldest. It also measures
 * the rate of arrivals over the last few seconds.
 */
import { useEffect, useRef, useState } from "preact/hooks"
import type { LogRecord } from "./api.ts"
import { Tail, type TailStatus } from "./tail.ts"

/** A live list keeps this many newest records; older ones leave the page. */
export const liveCap = 2000
/** Records waiting while paused. */
export const bufferMax = 10_000
const flushEveryMs = 100
const rateWindowMs = 5000

export interface LiveTail {
  readonly status: TailStatus
  /** Records per second over the last few seconds. */
  readonly rate: number
  readonly paused: boolean
  readonly buffered: number
  /** Records dropped from the buffer because it was full (prefix tails only). */
  readonly dropped: number
  /** Whether the socket was closed because the buffer filled (it reopens on unpause). */
  readonly suspended: boolean
  readonly setPaused: (paused: boolean) => void
}

export interface LiveTailOptions {
  /** Changing `id` ends the tail and starts another; undefined means no tail. */
  readonly id: string | undefined
  readonly path: (resumeFrom: number | undefined) => string
  readonly resumable: boolean
  /** Receives each batch of records to show, in order. */
  readonly onRecords: (records: Array<LogRecord>) => void
}

export const useLiveTail = (options: LiveTailOptions): LiveTail => {
  const [status, setStatus] = useState<TailStatus>({ state: "stopped" })
  const [rate, setRate] = useState(0)
  const [paused, setPausedState] = useState(false)
  const [buffered, setBuffered] = useState(0)
  const [dropped, setDropped] = useState(0)
  const [suspended, setSuspended] = useState(false)
  // The latest options and state, for the socket's callbacks.
  const latest = useRef(options)
  latest.current = options
  const state = useRef({
    tail: undefined as Tail | undefined,
    pending: [] as Array<LogRecord>,
    buffer: [] as Array<LogRecord>,
    paused: false,
    dropped: 0,
    timer: undefined as ReturnType<typeof setTimeout> | undefined,
    arrivals: [] as Array<{ at: number; count: number }>,
    startedAt: 0
  })

  const flush = () => {
    const s = state.current
    s.timer = undefined
    if (s.pending.length === 0) return
    const batch = s.pending
    s.pending = []
    latest.current.onRecords(batch)
  }

  const receive = (records: Array<LogRecord>) => {
    const s = state.current
    s.arrivals.push({ at: Date.now(), count: records.length })
    if (s.paused) {
      s.buffer.push(...records)
      if (s.buffer.length > bufferMax) {
        if (latest.current.resumable) {
          // Stop reading: the tail resumes after the buffer's last record on unpause.
          s.tail?.stop()
          setSuspended(true)
        } else {
          s.dropped += s.buffer.length - bufferMax
          s.buffer.splice(0, s.buffer.length - bufferMax)
          setDropped(s.dropped)
        }
      }
      setBuffered(s.buffer.length)
      return
    }
    s.pending.push(...records)
    s.timer ??= setTimeout(flush, flushEveryMs)
  }

  useEffect(() => {
    if (options.id === undefined) return
    const s = state.current
    s.pending = []
    s.buffer = []
    s.paused = false
    s.dropped = 0
    s.arrivals = []
    s.startedAt = Date.now()
    setPausedState(false)
    setBuffered(0)
    setDropped(0)
    setSuspended(false)
    setRate(0)
    const tail = new Tail({
      path: (from) => latest.current.path(from),
      resumable: options.resumable,
      onRecords: receive,
      onStatus: setStatus
    })
    s.tail = tail
    tail.start()
    const meter = setInterval(() => {
      const now = Date.now()
      s.arrivals = s.arrivals.filter((a) => a.at > now - rateWindowMs)
      const span = Math.min(rateWindowMs, Math.max(1000, now - s.startedAt))
      setRate(s.arrivals.reduce((sum, a) => sum + a.count, 0) / (span / 1000))
    }, 1000)
    return () => {
      clearInterval(meter)
      clearTimeout(s.timer)
      s.timer = undefined
      flush()
      tail.stop()
      s.tail = undefined
      setStatus({ state: "stopped" })
      setRate(0)
    }
  }, [options.id])

  const setPaused = (value: boolean) => {
    const s = state.current
    s.paused = value
    setPausedState(value)
    if (value) return
    // Show what waited, then reopen the socket if a full buffer had closed it.
    s.pending.push(...s.buffer)
    s.buffer = []
    setBuffered(0)
    flush()
    if (suspended) {
      setSuspended(false)
      s.tail?.start()
    }
  }

  return { status, rate, paused, buffered, dropped, suspended, setPaused }
}
