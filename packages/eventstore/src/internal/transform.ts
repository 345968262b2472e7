/**
 * One transform's actor (see `Transforms.ts` for the contract). A single loop fiber owns the state and does
 * one step at a time: a command (reset, skip), or a chunk of input logs known to be behind, or one page
 * of the catch-up pass over the source's logs. Another fiber follows the store's durable appends under
 * the source and only marks logs as behind (bounded; past the bound it asks for a catch-up pass instead).
 *
 * A log is processed in batches: read from its position, run the function over the batch synchronously
 * (an effect only when the function returns one), then commit: samples to the sink, then the log outputs
 * with the new position and state as ONE transaction. Effects orchestrate batches, not records.
 */
import { Cause, Clock, Deferred, Effect, Exit, Schedule, type Scope, Stream } from "effect"
import type { EventStoreShape, LogRecord, RecordInput, TransactAppend, Unavailable } from "../EventStore.ts"
import { InvalidInput } from "../EventStore.ts"
import * as Limits from "../limits.ts"
import type {
  Definition,
  FailedLog,
  LogOutput,
  Outputs,
  SampleOutput,
  SampleSinkShape,
  SampleWrite,
  StatefulTransform,
  StatelessTransform,
  StepResult,
  TransformInfo,
  TransformRecord,
  TransformSettings
} from "../Transforms.ts"
import { keyProblem, recordsProblem } from "./validate.ts"

/** The consumer group under which a transform's positions are committed. */
export const groupOf = (name: string) => `transform/${name}`
/** The header that names an output record's input: `<input key>@<offset>`. */
export const sourceHeader = "opendata-source"

/** Where a transform is in one input log: the next offset to process, its state there, its failure if any. */
interface Position {
  readonly offset: number
  readonly state: unknown
  readonly failed: FailedLog | undefined
}

/** A log known to have records the transform has not processed: from which offset, up to which, since when. */
interface Behind {
  from: number
  next: number
  since: number
}

/** Batches one log may take in one turn before the others (and commands) get theirs. */
const batchesPerTurn = 16

export interface Runner {
  readonly info: Effect.Effect<TransformInfo>
  readonly pause: Effect.Effect<void>
  readonly resume: Effect.Effect<void>
  readonly reset: Effect.Effect<void, InvalidInput | Unavailable>
  readonly skip: (log: string, offset: number) => Effect.Effect<void, InvalidInput | Unavailable>
}

const metricNamePattern = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const labelNamePattern = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const decoder = new TextDecoder()
const encoder = new TextEncoder()

/** An input record as a function sees it: `text` and `json` on the prototype, not closures per record. */
class InputRecord implements TransformRecord {
  readonly key: string
  readonly offset: number
  readonly timestamp: number
  readonly eventTime: number | undefined
  readonly headers: Readonly<Record<string, string>>
  readonly value: Uint8Array
  constructor(key: string, r: LogRecord) {
    this.key = key
    this.offset = r.offset
    this.timestamp = r.timestamp
    this.eventTime = r.eventTime
    this.headers = r.headers
    this.value = r.value
  }
  text() {
    return decoder.decode(this.value)
  }
  json(): unknown {
    return JSON.parse(decoder.decode(this.value))
  }
}

/** The sink's failure: retried (`SinkUnavailable`, as the store's `Unavailable` is), or refused for good. */
class SinkUnavailable extends Error {
  readonly _tag = "SinkUnavailable"
}
class SinkRefused extends Error {
  readonly _tag = "SinkRefused"
}

/** What answers a commit that will not succeed however often it is tried. */
const refusedForGood: ReadonlySet<string> = new Set(["InvalidInput", "LimitExceeded", "FencingConflict", "OffsetConflict", "SinkRefused"])

/** Error texts kept in a position (committed as its metadata) are cut to this many characters. */
const errorChars = 1000

const message = (e: unknown): string => {
  let text: string
  try {
    text = e instanceof Error ? e.message : typeof e === "string" ? e : JSON.stringify(e) ?? String(e)
  } catch {
    text = String(e)
  }
  return text.length > errorChars ? `${text.slice(0, errorChars)}...` : text
}

/** A batch's outputs so far, within the limits of one transaction (and of one append per log). */
interface Batch {
  readonly appends: Map<string, { readonly records: Array<RecordInput>; bytes: number }>
  readonly samples: Array<SampleWrite>
  bytes: number
}

/** Why a sample is invalid, or undefined. */
const sampleProblem = (s: SampleOutput): string | undefined => {
  if (typeof s.labels !== "object" || s.labels === null) return "labels must be an object of strings"
  const name = s.labels["__name__"]
  if (typeof name !== "string" || !metricNamePattern.test(name)) return `labels.__name__ must be a metric name, got ${JSON.stringify(name)}`
  for (const [k, v] of Object.entries(s.labels)) {
    if (!labelNamePattern.test(k) && k !== "__name__") return `label name ${JSON.stringify(k)} is not valid`
    if (typeof v !== "string") return `label ${k} must be a string`
  }
  if (typeof s.value !== "number") return "value must be a number"
  if (s.timestampMs !== undefined && (!Number.isSafeInteger(s.timestampMs) || s.timestampMs < 0)) return "timestampMs must be a non-negative integer"
  return undefined
}

/** The samples, keeping only the last of each series at each timestamp (a series has one value per timestamp). */
const lastPerTimestamp = (samples: ReadonlyArray<SampleWrite>): ReadonlyArray<SampleWrite> => {
  const last = new Map<string, number>()
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i]!
    const names = Object.keys(s.labels).sort()
    let id = String(s.timestampMs)
    for (const n of names) id += `\u0000${n}\u0000${s.labels[n]}`
    last.set(id, i)
  }
  if (last.size === samples.length) return samples
  const keep = [...last.values()].sort((a, b) => a - b)
  return keep.map((i) => samples[i]!)
}

export const makeRunner = (
  definition: Definition<unknown>,
  store: EventStoreShape,
  sink: SampleSinkShape | undefined,
  settings: TransformSettings
): Effect.Effect<Runner, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { name, source, transform } = definition
    const group = groupOf(name)
    const stateful = typeof transform !== "function"
    const initial = stateful ? (transform as StatefulTransform<unknown>).initial : undefined
    const batchRecords = settings.batchRecords ?? Limits.transformBatchRecords
    const concurrency = settings.concurrency ?? Limits.transformConcurrency
    const dirtyLogsMax = settings.dirtyLogsMax ?? Limits.transformDirtyLogsMax
    const inSource = "prefix" in source ? (k: string) => k.startsWith(source.prefix) : (k: string) => k === source.log
    const clock = yield* Clock.Clock

    /** Logs known to be behind (from the store's appends, or a catch-up page), at most `dirtyLogsMax`. */
    const behind = new Map<string, Behind>()
    /** Logs being processed now (never two turns of one log at once). */
    const inFlight = new Set<string>()
    const failed = new Map<string, FailedLog>()
    /** The next offset of each failed log as last seen: the records waiting behind its failure count as lag. */
    const failedNext = new Map<string, number>()
    const noteFailure = (f: FailedLog | undefined, key: string) => {
      if (f === undefined) {
        failed.delete(key)
        failedNext.delete(key)
      } else if (failed.has(key) || failed.size < Limits.transformFailedLogsKept) {
        failed.set(key, f)
      }
    }
    /** The catch-up pass under way (the list cursor to go on from), and whether another must follow it. */
    let catchUp: { cursor: string | undefined } | undefined
    let catchUpAgain = false
    const requestCatchUp = () => {
      if (catchUp === undefined) catchUp = { cursor: undefined }
      else catchUpAgain = true
      signal()
    }
    let paused = false
    const commands: Array<Effect.Effect<void>> = []
    const counters = { recordsIn: 0, recordsOut: 0, samplesOut: 0, samplesRejected: 0, commits: 0 }
    let retrying: string | undefined
    let wake: Deferred.Deferred<void> | undefined
    const signal = () => {
      if (wake !== undefined) {
        Deferred.doneUnsafe(wake, Exit.void)
        wake = undefined
      }
    }
    /** Marks `key` behind up to `next` (bounded: past `dirtyLogsMax`, a catch-up pass finds it instead). */
    const markBehind = (key: string, from: number, next: number, since: number) => {
      const known = behind.get(key)
      if (known !== undefined) {
        known.next = Math.max(known.next, next)
        known.from = Math.min(known.from, from)
      } else if (behind.size < dirtyLogsMax) {
        behind.set(key, { from, next, since })
      } else {
        requestCatchUp()
      }
      signal()
    }

    // --- positions: read from storage for each turn of a log (a deleted log's went with it) -------------

    const decodePosition = (key: string, offset: number | undefined, metadata: string | undefined): Position => {
      const fresh = (): unknown => (stateful ? structuredClone(initial) : undefined)
      if (metadata === undefined || metadata === "") return { offset: offset ?? 0, state: fresh(), failed: undefined }
      try {
        const m = JSON.parse(metadata) as { state?: unknown; failed?: FailedLog }
        return { offset: offset ?? 0, state: stateful ? ("state" in m ? m.state : fresh()) : undefined, failed: m.failed }
      } catch (e) {
        // Not a position this transform committed (the group offsets API can write any metadata).
        return { offset: offset ?? 0, state: fresh(), failed: { key, offset: offset ?? 0, error: `its position's metadata is not JSON: ${message(e)}` } }
      }
    }
    /** The position as metadata (undefined: nothing to keep), or the reason it cannot be. */
    const encodePosition = (p: Position): { readonly metadata: string | undefined } | { readonly problem: string } => {
      if (!stateful && p.failed === undefined) return { metadata: undefined }
      let metadata: string
      try {
        metadata = JSON.stringify({ ...(stateful ? { state: p.state } : {}), ...(p.failed !== undefined ? { failed: p.failed } : {}) })
      } catch (e) {
        return { problem: `the state is not JSON: ${message(e)}` }
      }
      if (metadata === undefined) return { problem: "the state is not JSON" }
      // Room is left for a failure's text beside the state.
      if (Buffer.byteLength(metadata, "utf8") > Limits.groupMetadataBytesMax - 2 * errorChars) {
        return { problem: `the state is over ${Limits.groupMetadataBytesMax - 2 * errorChars} bytes as JSON` }
      }
      return { metadata }
    }
    /** The log's position as committed; undefined: no such log (deleted meanwhile). */
    const position = (key: string): Effect.Effect<Position | undefined, Unavailable> =>
      store.fetchOffset(group, key).pipe(
        Effect.map((o) => {
          const p = decodePosition(key, o.offset, o.metadata)
          noteFailure(p.failed, key)
          return p
        }),
        Effect.catchTags({ LogNotFound: () => Effect.succeed(undefined), InvalidInput: () => Effect.succeed(undefined) })
      )

    // --- running the function over a batch --------------------------------------------------------------

    const toRecord = (key: string, r: LogRecord): TransformRecord => new InputRecord(key, r)

    /** Adds one record's outputs to the batch: a problem if they are invalid, "full" if they do not fit. */
    const addOutputs = (batch: Batch, input: TransformRecord, outputs: Outputs): string | "full" | undefined => {
      if (outputs === undefined || outputs === null) return undefined
      const list = Array.isArray(outputs) ? (outputs as ReadonlyArray<unknown>) : [outputs]
      const appends: Array<readonly [string, RecordInput, number]> = []
      const samples: Array<SampleWrite> = []
      let bytes = 0
      for (const o of list) {
        if (typeof o !== "object" || o === null) return `an output must be an object, got ${JSON.stringify(o)}`
        if ("labels" in o) {
          const s = o as SampleOutput
          const problem = sampleProblem(s)
          if (problem !== undefined) return `sample output: ${problem}`
          if (sink === undefined) return "sample output: no TSDB to write samples to"
          samples.push({ labels: s.labels, value: s.value, timestampMs: s.timestampMs ?? input.timestamp })
          bytes += 64
          continue
        }
        const l = o as LogOutput
        const problem = keyProblem(l.key)
        if (problem !== undefined) return `log output: ${problem.message}`
        if (inSource(l.key)) return `log output: ${JSON.stringify(l.key)} is in the transform's own source (it would read its own outputs)`
        if (typeof l.value !== "string" && !(l.value instanceof Uint8Array)) return "log output: value must be a string or bytes"
        const record: RecordInput = {
          value: typeof l.value === "string" ? encoder.encode(l.value) : l.value,
          headers: { ...l.headers, [sourceHeader]: `${input.key}@${input.offset}` },
          ...(l.eventTime !== undefined ? { eventTime: l.eventTime } : {})
        }
        const checked = recordsProblem([record])
        if (typeof checked !== "number") return `log output: ${checked.message}`
        bytes += checked
        appends.push([l.key, record, checked])
      }
      // Within one transaction: logs, bytes, and per log the records and bytes an append may hold.
      let logs = batch.appends.size
      const adding = new Map<string, { records: number; bytes: number }>()
      for (const [key, , size] of appends) {
        const a = adding.get(key) ?? { records: 0, bytes: 0 }
        a.records += 1
        a.bytes += size
        adding.set(key, a)
      }
      for (const [key, a] of adding) {
        const queued = batch.appends.get(key)
        if (queued === undefined) logs += 1
        if ((queued?.records.length ?? 0) + a.records > Limits.batchRecordsMax) return "full"
        if ((queued?.bytes ?? 0) + a.bytes > Limits.batchBytesMax) return "full"
      }
      if (logs > Limits.transactLogsMax || batch.bytes + bytes > Limits.transactBytesMax) return "full"
      for (const [key, record, size] of appends) {
        const queued = batch.appends.get(key)
        if (queued === undefined) batch.appends.set(key, { records: [record], bytes: size })
        else {
          queued.records.push(record)
          queued.bytes += size
        }
      }
      for (const s of samples) batch.samples.push(s)
      batch.bytes += bytes
      return undefined
    }

    type Applied = { readonly outputs: Outputs; readonly state: unknown } | { readonly error: string }

    /** The function's answer for one record as outputs and next state, or why it is not one. */
    const interpret = (result: unknown, state: unknown): Applied => {
      if (typeof (result as { then?: unknown } | null)?.then === "function") {
        return { error: "the function returned a Promise: return outputs, or an Effect" }
      }
      if (!stateful) return { outputs: result as Outputs, state }
      const step = result as StepResult<unknown>
      if (typeof step !== "object" || step === null || !("state" in step)) return { error: "step must return { state, outputs? }" }
      return { outputs: step.outputs, state: step.state }
    }

    /** Runs the function on one record, synchronously; an Effect it returns is handed back to be run. */
    const apply = (state: unknown, input: TransformRecord): Applied | { readonly effect: Effect.Effect<unknown, unknown> } => {
      try {
        const result: unknown = stateful ? (transform as StatefulTransform<unknown>).step(state, input) : (transform as StatelessTransform)(input)
        return Effect.isEffect(result) ? { effect: result as Effect.Effect<unknown, unknown> } : interpret(result, state)
      } catch (e) {
        return { error: message(e) }
      }
    }

    /**
     * Runs the function over `records` from position `p`: the batch of outputs, the position after the last
     * record whose outputs it holds (with its state), or at the record that failed.
     */
    const runBatch = (key: string, p: Position, records: ReadonlyArray<LogRecord>) =>
      Effect.gen(function*() {
        const batch: Batch = { appends: new Map(), samples: [], bytes: 0 }
        // A step may change its state in place: the committed one is never handed out.
        let state = stateful ? structuredClone(p.state) : undefined
        let offset = p.offset
        let failure: FailedLog | undefined
        let consumed = 0
        for (const r of records) {
          const input = toRecord(key, r)
          const given = stateful ? structuredClone(state) : undefined
          let applied = apply(given, input)
          if ("effect" in applied) {
            // Only a function that returns an Effect costs an effect per record.
            const exit = yield* Effect.exit(applied.effect)
            applied = Exit.isSuccess(exit) ? interpret(exit.value, given) : { error: message(Cause.squash(exit.cause)) }
          }
          if ("error" in applied) {
            failure = { key, offset: r.offset, error: applied.error }
            break
          }
          const added = addOutputs(batch, input, applied.outputs)
          if (added === "full") {
            if (consumed === 0) failure = { key, offset: r.offset, error: "the outputs of this one record are over a transaction's limits" }
            break
          }
          if (added !== undefined) {
            failure = { key, offset: r.offset, error: added }
            break
          }
          state = applied.state
          offset = r.offset + 1
          consumed += 1
        }
        let after: Position = { offset, state, failed: failure }
        let encoded = encodePosition(after)
        if ("problem" in encoded) {
          // The new state cannot be kept: the log stops at the batch's first record, with the state it had.
          after = { ...p, failed: { key, offset: p.offset, error: encoded.problem } }
          encoded = encodePosition(after)
          return { batch: { appends: new Map(), samples: [], bytes: 0 } as Batch, consumed: 0, after, metadata: "metadata" in encoded ? encoded.metadata : undefined }
        }
        return { batch, consumed, after, metadata: encoded.metadata }
      })

    // --- committing ------------------------------------------------------------------------------------

    /** Forever, from `transformRetryFirstMs` doubling up to `transformRetryMaxMs` apart. */
    const retryPolicy = Schedule.min([
      Schedule.exponential(`${Limits.transformRetryFirstMs} millis`),
      Schedule.spaced(`${Limits.transformRetryMaxMs} millis`)
    ])

    /** Samples, then the log outputs with the position: the commit of one batch. */
    const commit = (key: string, batch: Batch, after: Position, metadata: string | undefined) =>
      Effect.gen(function*() {
        if (batch.samples.length > 0) {
          const samples = lastPerTimestamp(batch.samples)
          const { rejected } = yield* sink!.write(samples).pipe(
            Effect.mapError((e) =>
              (e as { readonly kind?: string }).kind === undefined || (e as { readonly kind?: string }).kind === "unavailable"
                ? new SinkUnavailable(`the TSDB cannot take the samples now: ${e.message}`)
                : new SinkRefused(`the TSDB refused the samples: ${e.message}`)
            )
          )
          counters.samplesRejected += batch.samples.length - samples.length + rejected
          counters.samplesOut += samples.length - rejected
        }
        const appends: Array<TransactAppend> = []
        for (const [k, queued] of batch.appends) appends.push({ key: k, records: queued.records })
        const position = { group, key, offset: after.offset, metadata }
        if (settings.simulationMutant === "transform-position-apart") {
          // Broken on purpose (simulation): a crash between the two writes loses the outputs.
          yield* store.transact([], position)
          if (appends.length > 0) yield* store.transact(appends)
        } else {
          yield* store.transact(appends, position)
        }
        for (const queued of batch.appends.values()) counters.recordsOut += queued.records.length
      })

    /** Stops a log at `offset` with `error`, committed if it can be (else kept in memory: the status shows it). */
    const markFailed = (key: string, p: Position, offset: number, error: string) =>
      Effect.gen(function*() {
        const after: Position = { ...p, offset, failed: { key, offset, error } }
        noteFailure(after.failed, key)
        const encoded = encodePosition(after)
        if ("problem" in encoded) return
        yield* store.transact([], { group, key, offset, metadata: encoded.metadata }).pipe(Effect.ignore)
      })

    /**
     * One turn of a log: from its committed position, batch after batch, until it has nothing more, fails,
     * the transform is paused, or the turn's batches are spent (then it stays behind for the next turn).
     * What the store (or the TSDB) refuses for now is retried; what it refuses for good stops the log at the
     * record that caused it (a refused batch is tried again one record at a time to find that record).
     */
    const processLog = (key: string): Effect.Effect<void> =>
      Effect.gen(function*() {
        let p = yield* position(key)
        let single = false
        for (let batches = 0; ; batches++) {
          if (p === undefined || p.failed !== undefined) {
            behind.delete(key)
            return
          }
          if (paused || batches === batchesPerTurn) {
            markBehind(key, p.offset, Math.max(p.offset + 1, behind.get(key)?.next ?? 0), clock.currentTimeMillisUnsafe())
            return
          }
          const known = behind.get(key)?.next
          const current: Position = p
          const read = yield* store.read(key, { from: current.offset, limit: single ? 1 : batchRecords }).pipe(
            Effect.map((r) => r.records),
            Effect.catchTags({
              // Records trimmed before the transform got to them: it goes on from the first one left.
              OffsetTrimmed: (e) => Effect.succeed({ trimmedTo: e.first }),
              LogNotFound: () => Effect.succeed(undefined),
              InvalidInput: () => Effect.succeed(undefined)
            })
          )
          if (read === undefined) {
            behind.delete(key)
            return
          }
          if ("trimmedTo" in read) {
            p = { ...current, offset: read.trimmedTo }
            continue
          }
          if (read.length === 0) {
            // Caught up, unless an append arrived during the read (then its records are there to read now).
            if (behind.get(key)?.next === known) behind.delete(key)
            else continue
            return
          }
          const { after, batch, consumed, metadata } = yield* runBatch(key, current, read)
          const refused = yield* commit(key, batch, after, metadata).pipe(
            Effect.as(undefined),
            Effect.catch((e: { readonly _tag: string; readonly message: string }) =>
              refusedForGood.has(e._tag) ? Effect.succeed(message(e)) : e._tag === "LogNotFound" ? Effect.succeed(null) : Effect.fail(e)
            )
          )
          if (refused === null) {
            behind.delete(key) // the input log was deleted meanwhile
            return
          }
          if (refused !== undefined) {
            if (read.length > 1 && !single) {
              single = true
              continue
            }
            yield* markFailed(key, current, current.offset, refused)
            behind.delete(key)
            return
          }
          single = false
          noteFailure(after.failed, key)
          if (after.failed !== undefined && failed.has(key)) failedNext.set(key, Math.max(failedNext.get(key) ?? 0, read[read.length - 1]!.offset + 1))
          counters.recordsIn += consumed
          counters.commits += 1
          retrying = undefined
          p = after
          const entry = behind.get(key)
          if (after.failed === undefined && entry !== undefined) entry.from = after.offset
        }
      }).pipe(
        Effect.tapError((e) => Effect.sync(() => (retrying = message(e)))),
        Effect.retry(retryPolicy),
        Effect.orDie
      )

    /** A turn for each of `keys`, at most `concurrency` at once. */
    const turns = (keys: ReadonlyArray<string>) =>
      Effect.forEach(keys, (key) =>
        Effect.suspend(() => {
          if (inFlight.has(key)) return Effect.void
          inFlight.add(key)
          return Effect.ensuring(processLog(key), Effect.sync(() => inFlight.delete(key)))
        }), { concurrency, discard: true })

    // --- the loop --------------------------------------------------------------------------------------

    /** One page of a catch-up pass: the source's logs that are behind their positions are processed. */
    const catchUpPage = (from: { cursor: string | undefined }) =>
      Effect.gen(function*() {
        const keys: Array<string> = []
        let cursor: string | undefined
        if ("log" in source) {
          const meta = yield* store.meta(source.log).pipe(Effect.catchTag("LogNotFound", () => Effect.succeed(undefined)))
          if (meta !== undefined) keys.push(source.log)
        } else {
          const page = yield* store.list({ prefix: source.prefix, cursor: from.cursor, limit: Limits.listLogsMax })
          cursor = page.cursor
          for (const log of page.logs) {
            const p = yield* position(log.key)
            if (p !== undefined && p.failed !== undefined && failed.has(log.key)) failedNext.set(log.key, log.nextOffset)
            if (p !== undefined && p.failed === undefined && p.offset < log.nextOffset) {
              markBehind(log.key, p.offset, log.nextOffset, log.lastAppendMs ?? clock.currentTimeMillisUnsafe())
              keys.push(log.key)
            }
          }
        }
        yield* turns(keys)
        // Paused halfway: the page is done again after resuming.
        if (paused) return
        if (cursor !== undefined) catchUp = { cursor }
        else if (catchUpAgain) {
          catchUpAgain = false
          catchUp = { cursor: undefined }
        } else catchUp = undefined
      }).pipe(
        Effect.catchTag("InvalidInput", (e) => Effect.fail(new Error(e.message))),
        Effect.tapError((e) => Effect.sync(() => (retrying = message(e)))),
        Effect.retry(retryPolicy),
        Effect.orDie
      )

    const step = Effect.suspend((): Effect.Effect<void> => {
      const command = commands.shift()
      if (command !== undefined) return command
      if (!paused) {
        const keys: Array<string> = []
        for (const key of behind.keys()) {
          if (inFlight.has(key)) continue
          keys.push(key)
          if (keys.length === concurrency) break
        }
        if (keys.length > 0) return turns(keys)
        if (catchUp !== undefined) return catchUpPage(catchUp)
      }
      // Nothing to do: wait for a signal (the deferred is made here, so none is missed in between).
      const w = wake ?? (wake = Deferred.makeUnsafe<void>())
      return Deferred.await(w)
    })
    // Supervised: a defect (a bug, a function that breaks the runtime) is logged, and the loop goes on.
    yield* Effect.forkScoped(Effect.forever(step.pipe(
      Effect.catchCause((cause) =>
        Effect.andThen(
          Effect.sync(() => (retrying = `the transform's loop failed: ${message(Cause.squash(cause))}`)),
          Effect.andThen(Effect.logError(`transform ${name}: its loop failed; going on`, cause), Effect.sleep(`${Limits.transformRetryMaxMs} millis`))
        )
      )
    )))

    // --- following the store's appends ---------------------------------------------------------------

    // The source's durable appends, as a prefix tail (a one-log source: the prefix of its key, that key
    // only). Its first heartbeat says it is subscribed: a catch-up pass then finds what came before.
    const follow = Stream.runForEach(store.tailPrefix("prefix" in source ? source.prefix : source.log), (event) =>
      Effect.sync(() => {
        if (event._tag === "heartbeat") {
          if (!subscribed) {
            subscribed = true
            requestCatchUp()
          }
          return
        }
        if (!inSource(event.key) || event.records.length === 0) return
        const first = event.records[0]!
        const last = event.records[event.records.length - 1]!
        if (failed.has(event.key)) failedNext.set(event.key, last.offset + 1)
        markBehind(event.key, first.offset, last.offset + 1, first.timestamp)
      }))
    let subscribed = false
    // A tail that ends (the store closing) or fails is followed again; a periodic pass over the source
    // finds anything the tail could not tell (it drops deliveries it cannot buffer, and offsets of a log
    // deleted and made again below what it already sent).
    yield* Effect.forkScoped(
      follow.pipe(
        Effect.ignore,
        Effect.andThen(Effect.sync(() => (subscribed = false))),
        Effect.andThen(Effect.sleep(`${Limits.transformRetryFirstMs} millis`)),
        Effect.forever
      )
    )
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(`${Limits.transformRescanMs} millis`), Effect.sync(requestCatchUp))))

    // --- commands --------------------------------------------------------------------------------------

    /** Runs `effect` in the loop, between steps (no log is being processed then). */
    const inLoop = <A, E>(effect: Effect.Effect<A, E>) =>
      Effect.gen(function*() {
        const done = Deferred.makeUnsafe<A, E>()
        commands.push(Effect.asVoid(Effect.flatMap(Effect.exit(effect), (exit) => Deferred.done(done, exit))))
        signal()
        return yield* Deferred.await(done)
      })

    const reset = inLoop(Effect.gen(function*() {
      yield* store.deleteGroup(group)
      failed.clear()
      failedNext.clear()
      behind.clear()
      catchUp = { cursor: undefined }
      catchUpAgain = false
    }))

    const skip = (log: string, offset: number) =>
      inLoop(Effect.gen(function*() {
        const p = yield* position(log)
        if (p === undefined) return yield* new InvalidInput({ field: "log", reason: `no log ${JSON.stringify(log)}` })
        if (p.failed === undefined || p.failed.offset !== offset) {
          return yield* new InvalidInput({
            field: "offset",
            reason: p.failed === undefined ? `log ${JSON.stringify(log)} has not failed` : `log ${JSON.stringify(log)} failed at offset ${p.failed.offset}`
          })
        }
        const after: Position = { offset: offset + 1, state: p.state, failed: undefined }
        const encoded = encodePosition(after)
        yield* store.transact([], { group, key: log, offset: after.offset, metadata: "metadata" in encoded ? encoded.metadata : undefined }).pipe(
          Effect.catchTags({ LogNotFound: () => Effect.void, LimitExceeded: (e) => Effect.die(e), FencingConflict: (e) => Effect.die(e), OffsetConflict: (e) => Effect.die(e) })
        )
        noteFailure(undefined, log)
        markBehind(log, after.offset, after.offset + 1, clock.currentTimeMillisUnsafe())
      }))

    const info = Effect.sync((): TransformInfo => {
      const now = clock.currentTimeMillisUnsafe()
      let lagRecords = 0
      let oldest = Number.POSITIVE_INFINITY
      for (const b of behind.values()) {
        lagRecords += Math.max(0, b.next - b.from)
        oldest = Math.min(oldest, b.since)
      }
      for (const [key, next] of failedNext) lagRecords += Math.max(0, next - (failed.get(key)?.offset ?? next))
      const failedLogs: Array<FailedLog> = []
      for (const f of failed.values()) {
        if (failedLogs.length === Limits.transformFailedLogsShown) break
        failedLogs.push(f)
      }
      return {
        name,
        source,
        status: paused ? "paused" : "running",
        ...counters,
        lagRecords,
        lagMs: Number.isFinite(oldest) && lagRecords > 0 ? Math.max(0, now - oldest) : 0,
        catchingUp: catchUp !== undefined || !subscribed,
        failedLogCount: failed.size,
        failedLogs,
        retrying
      }
    })

    return {
      info,
      pause: Effect.sync(() => {
        paused = true
      }),
      resume: Effect.sync(() => {
        paused = false
        signal()
      }),
      reset,
      skip
    } satisfies Runner
  })
