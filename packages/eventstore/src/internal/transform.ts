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
import { Cause, Clock, Deferred, Effect, Exit, Option, Schedule, type Scope, Stream } from "effect"
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

/** A log seen to have records the transform has not processed: from which offset, up to which, since when. */
interface Behind {
  from: number
  next: number
  since: number
}

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

/** The sink's failure: retried, as the store's `Unavailable` is. */
class SinkUnavailable extends Error {
  readonly _tag = "SinkUnavailable"
}

/** What the store answers a commit that will not succeed however often it is tried. */
const refusedForGood: ReadonlySet<string> = new Set(["InvalidInput", "LimitExceeded", "FencingConflict", "OffsetConflict"])

const message = (e: unknown): string => (e instanceof Error ? e.message : typeof e === "string" ? e : JSON.stringify(e) ?? String(e))

/** A batch's outputs so far, within the limits of one transaction. */
interface Batch {
  readonly appends: Map<string, Array<RecordInput>>
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

    const positions = new Map<string, Position>()
    const remember = (key: string, p: Position) => {
      positions.delete(key)
      positions.set(key, p)
      if (positions.size > Limits.transformPositionsCached) positions.delete(positions.keys().next().value!)
    }
    const dirty = new Map<string, Behind>()
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
    /** The catch-up pass still to do: the list cursor to go on from (undefined: from the start). */
    let catchUp: { cursor: string | undefined } | undefined = { cursor: undefined }
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

    // --- positions ------------------------------------------------------------------------------------

    const decodePosition = (offset: number | undefined, metadata: string | undefined): Position => {
      const m = metadata === undefined || metadata === "" ? {} : (JSON.parse(metadata) as { state?: unknown; failed?: FailedLog })
      return { offset: offset ?? 0, state: stateful ? ("state" in m ? m.state : initial) : undefined, failed: m.failed }
    }
    const encodePosition = (p: Position): string | undefined => {
      if (!stateful && p.failed === undefined) return undefined
      return JSON.stringify({ ...(stateful ? { state: p.state } : {}), ...(p.failed !== undefined ? { failed: p.failed } : {}) })
    }
    /** The log's position: remembered, or as committed (a log deleted meanwhile: undefined). */
    const position = (key: string): Effect.Effect<Position | undefined, Unavailable> => {
      const known = positions.get(key)
      if (known !== undefined) return Effect.succeed(known)
      return store.fetchOffset(group, key).pipe(
        Effect.map((o) => {
          const p = decodePosition(o.offset, o.metadata)
          remember(key, p)
          noteFailure(p.failed, key)
          return p
        }),
        Effect.catchTag("LogNotFound", () => Effect.succeed(undefined)),
        Effect.catchTag("InvalidInput", (e) => Effect.die(e))
      )
    }

    // --- running the function over a batch --------------------------------------------------------------

    const toRecord = (key: string, r: LogRecord): TransformRecord => new InputRecord(key, r)

    /** Adds one record's outputs to the batch: a problem if they are invalid, "full" if they do not fit. */
    const addOutputs = (batch: Batch, input: TransformRecord, outputs: Outputs): string | "full" | undefined => {
      if (outputs === undefined || outputs === null) return undefined
      const list = Array.isArray(outputs) ? (outputs as ReadonlyArray<unknown>) : [outputs]
      const appends: Array<readonly [string, RecordInput]> = []
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
        appends.push([l.key, record])
      }
      let logs = batch.appends.size
      for (const [key] of appends) {
        const queued = batch.appends.get(key)
        if (queued === undefined) logs += 1
        if ((queued?.length ?? 0) + appends.filter(([k]) => k === key).length > Limits.batchRecordsMax) return "full"
      }
      if (logs > Limits.transactLogsMax || batch.bytes + bytes > Limits.transactBytesMax) return "full"
      for (const [key, record] of appends) {
        const queued = batch.appends.get(key)
        if (queued === undefined) batch.appends.set(key, [record])
        else queued.push(record)
      }
      for (const s of samples) batch.samples.push(s)
      batch.bytes += bytes
      return undefined
    }

    /**
     * Runs the function over `records` from position `p`: the batch of outputs, the position after the last
     * record whose outputs it holds (with its state), or at the record that failed.
     */
    const runBatch = (key: string, p: Position, records: ReadonlyArray<LogRecord>) =>
      Effect.gen(function*() {
        const batch: Batch = { appends: new Map(), samples: [], bytes: 0 }
        let state = p.state
        let offset = p.offset
        let failure: FailedLog | undefined
        let consumed = 0
        for (const r of records) {
          const input = toRecord(key, r)
          let outputs: Outputs
          let next = state
          try {
            let result: unknown = stateful
              ? (transform as StatefulTransform<unknown>).step(state, input)
              : (transform as StatelessTransform)(input)
            if (Effect.isEffect(result)) {
              const exit = yield* Effect.exit(result as Effect.Effect<unknown, unknown>)
              if (Exit.isFailure(exit)) throw Cause.squash(exit.cause)
              result = exit.value
            }
            if (stateful) {
              const step = result as StepResult<unknown>
              if (typeof step !== "object" || step === null || !("state" in step)) throw new Error("step must return { state, outputs? }")
              next = step.state
              outputs = step.outputs
            } else {
              outputs = result as Outputs
            }
          } catch (e) {
            failure = { key, offset: r.offset, error: message(e) }
            break
          }
          const added = addOutputs(batch, input, outputs)
          if (added === "full") {
            if (consumed === 0) failure = { key, offset: r.offset, error: "the outputs of this one record are over a transaction's limits" }
            break
          }
          if (added !== undefined) {
            failure = { key, offset: r.offset, error: added }
            break
          }
          state = next
          offset = r.offset + 1
          consumed += 1
        }
        const after: Position = { offset, state, failed: failure }
        if (stateful) {
          // The state is committed as JSON: it must survive that, within the metadata's bound.
          const encoded = encodePosition(after)
          if (encoded !== undefined && Buffer.byteLength(encoded, "utf8") > Limits.groupMetadataBytesMax) {
            return { batch: { appends: new Map(), samples: [], bytes: 0 }, consumed: 0, after: { ...p, failed: { key, offset: p.offset, error: `the state is over ${Limits.groupMetadataBytesMax} bytes as JSON` } } }
          }
        }
        return { batch, consumed, after }
      })

    // --- committing ------------------------------------------------------------------------------------

    /** Forever, from `transformRetryFirstMs` doubling up to `transformRetryMaxMs` apart. */
    const retryPolicy = Schedule.min([
      Schedule.exponential(`${Limits.transformRetryFirstMs} millis`),
      Schedule.spaced(`${Limits.transformRetryMaxMs} millis`)
    ])

    /** Samples, then the log outputs with the position: the commit of one batch. */
    const commit = (key: string, batch: Batch, after: Position) =>
      Effect.gen(function*() {
        if (batch.samples.length > 0) {
          const samples = lastPerTimestamp(batch.samples)
          counters.samplesRejected += batch.samples.length - samples.length
          const { rejected } = yield* sink!.write(samples).pipe(
            Effect.mapError((e) => new SinkUnavailable(`the TSDB refused the samples: ${e.message}`))
          )
          counters.samplesOut += samples.length - rejected
          counters.samplesRejected += rejected
        }
        const appends: Array<TransactAppend> = []
        for (const [k, records] of batch.appends) appends.push({ key: k, records })
        const position = { group, key, offset: after.offset, metadata: encodePosition(after) }
        if (settings.simulationMutant === "transform-position-apart") {
          // Broken on purpose (simulation): a crash between the two writes loses the outputs.
          yield* store.transact([], position)
          if (appends.length > 0) yield* store.transact(appends)
        } else {
          yield* store.transact(appends, position)
        }
        for (const records of batch.appends.values()) counters.recordsOut += records.length
      })

    /** Processes a log from its position until it has nothing more (or fails); retries what is refused for now. */
    const processLog = (key: string): Effect.Effect<void> =>
      Effect.gen(function*() {
        while (!paused) {
          const p = yield* position(key)
          if (p === undefined || p.failed !== undefined) return
          const read = yield* store.read(key, { from: p.offset, limit: batchRecords }).pipe(
            Effect.map((r) => r.records),
            Effect.catchTag("OffsetTrimmed", (e) => {
              // Records trimmed before the transform got to them: it goes on from the first one left.
              remember(key, { ...p, offset: e.first })
              return Effect.succeed(undefined)
            }),
            Effect.catchTag("LogNotFound", () => Effect.succeed([] as ReadonlyArray<LogRecord>))
          )
          if (read === undefined) continue
          if (read.length === 0) return
          const { batch, consumed, after } = yield* runBatch(key, p, read)
          yield* commit(key, batch, after).pipe(
            Effect.tapError(() => Effect.sync(() => positions.delete(key))) // re-read what was committed before trying again
          )
          remember(key, after)
          noteFailure(after.failed, key)
          if (after.failed !== undefined) failedNext.set(key, Math.max(failedNext.get(key) ?? 0, read[read.length - 1]!.offset + 1))
          counters.recordsIn += consumed
          counters.commits += 1
          retrying = undefined
          if (after.failed !== undefined || read.length < batchRecords) return
        }
      }).pipe(
        Effect.catch((e: { readonly _tag: string; readonly message: string }) =>
          e._tag === "LogNotFound"
            ? Effect.sync(() => positions.delete(key)) // the input log was deleted meanwhile
            : refusedForGood.has(e._tag)
            ? // Refused for good (a fenced output log, an output over a limit): the log stops at the batch.
              markFailed(key, e.message)
            : Effect.fail(e)
        ),
        Effect.tapError((e) => Effect.sync(() => (retrying = e.message))),
        Effect.retry(retryPolicy),
        Effect.orDie
      )

    /** Stops a log at its position, with `error`, committed so that a restart knows. */
    const markFailed = (key: string, error: string) =>
      Effect.gen(function*() {
        const p = yield* position(key)
        if (p === undefined) return
        const after: Position = { ...p, failed: { key, offset: p.offset, error } }
        yield* store.transact([], { group, key, offset: after.offset, metadata: encodePosition(after) }).pipe(
          Effect.catchTag("LogNotFound", () => Effect.void),
          Effect.catchTags({ InvalidInput: (e) => Effect.die(e), LimitExceeded: (e) => Effect.die(e) })
        )
        remember(key, after)
        noteFailure(after.failed, key)
      })

    // --- the loop --------------------------------------------------------------------------------------

    /** One page of the catch-up pass: the source's logs that are behind their positions are processed. */
    const catchUpPage = (from: { cursor: string | undefined }) =>
      Effect.gen(function*() {
        if ("log" in source) {
          const meta = yield* Effect.option(store.meta(source.log))
          catchUp = undefined
          if (Option.isSome(meta)) yield* processLog(source.log)
          return
        }
        const page = yield* store.list({ prefix: source.prefix, cursor: from.cursor, limit: Limits.listLogsMax }).pipe(
          Effect.catchTag("InvalidInput", (e) => Effect.die(e))
        )
        const behind: Array<string> = []
        for (const log of page.logs) {
          const p = yield* position(log.key)
          if (p?.failed !== undefined && failed.has(log.key)) failedNext.set(log.key, log.nextOffset)
          if (p !== undefined && p.failed === undefined && p.offset < log.nextOffset) behind.push(log.key)
        }
        yield* Effect.forEach(behind, processLog, { concurrency, discard: true })
        // A reset may have started the pass again meanwhile: only the pass this page belongs to moves on.
        if (catchUp === from) catchUp = page.cursor === undefined ? undefined : { cursor: page.cursor }
      }).pipe(
        Effect.tapError((e) => Effect.sync(() => (retrying = e.message))),
        Effect.retry(retryPolicy),
        Effect.orDie
      )

    const step = Effect.suspend((): Effect.Effect<void> => {
      const command = commands.shift()
      if (command !== undefined) return command
      if (paused) return waitForWork
      if (dirty.size > 0) {
        const keys: Array<string> = []
        for (const key of dirty.keys()) {
          keys.push(key)
          if (keys.length === concurrency) break
        }
        for (const key of keys) dirty.delete(key)
        return Effect.forEach(keys, processLog, { concurrency, discard: true })
      }
      if (catchUp !== undefined) return catchUpPage(catchUp)
      return waitForWork
    })
    const waitForWork = Effect.suspend(() => {
      const w = wake ?? (wake = Deferred.makeUnsafe<void>())
      return Deferred.await(w)
    })
    yield* Effect.forkScoped(Effect.forever(step))

    // --- following the store's appends ---------------------------------------------------------------

    const events = "prefix" in source ? store.tailPrefix(source.prefix) : store.tail(source.log, { _tag: "now" })
    const follow = Stream.runForEach(events, (event) =>
      Effect.sync(() => {
        if (event._tag !== "records" || event.records.length === 0) return
        const first = event.records[0]!
        const last = event.records[event.records.length - 1]!
        if (failed.has(event.key)) {
          // Stopped at a failure: nothing to do until skipped, but what waits is lag.
          failedNext.set(event.key, last.offset + 1)
          return
        }
        const known = dirty.get(event.key)
        if (known !== undefined) {
          known.next = Math.max(known.next, last.offset + 1)
        } else if (dirty.size < dirtyLogsMax) {
          dirty.set(event.key, { from: first.offset, next: last.offset + 1, since: first.timestamp })
        } else if (catchUp === undefined) {
          // Too many logs behind to remember: go through the source's logs from storage instead.
          catchUp = { cursor: undefined }
        }
        signal()
      }))
    // A tail that ends (the store closing) or fails is followed again; what it may have missed is caught up.
    yield* Effect.forkScoped(
      follow.pipe(
        Effect.ignore,
        Effect.andThen(Effect.sync(() => {
          catchUp ??= { cursor: undefined }
          signal()
        })),
        Effect.andThen(Effect.sleep(`${Limits.transformRetryFirstMs} millis`)),
        Effect.forever
      )
    )

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
      positions.clear()
      failed.clear()
      failedNext.clear()
      dirty.clear()
      catchUp = { cursor: undefined }
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
        yield* store.transact([], { group, key: log, offset: after.offset, metadata: encodePosition(after) }).pipe(
          Effect.catchTags({ LogNotFound: () => Effect.void, LimitExceeded: (e) => Effect.die(e), FencingConflict: (e) => Effect.die(e), OffsetConflict: (e) => Effect.die(e) })
        )
        remember(log, after)
        noteFailure(undefined, log)
        dirty.set(log, { from: after.offset, next: after.offset, since: Number.MAX_SAFE_INTEGER })
      }))

    const info = Effect.sync((): TransformInfo => {
      const now = clock.currentTimeMillisUnsafe()
      let lagRecords = 0
      let oldest = Number.POSITIVE_INFINITY
      for (const [key, b] of dirty) {
        const p = positions.get(key)
        lagRecords += Math.max(0, b.next - Math.max(b.from, p?.offset ?? 0))
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
        catchingUp: catchUp !== undefined,
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
