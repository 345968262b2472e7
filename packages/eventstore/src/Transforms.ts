/**
 * Transforms: deterministic functions from the records of logs to records of other logs and to samples for
 * the TSDB, kept running, resumable, exactly once.
 *
 * A transform has a `name`, a `source` (every log whose key starts with a prefix, or one log) and a
 * function: stateless (`(record) => outputs`) or stateful per input log (`{ initial, step(state, record) =>
 * { state, outputs } }`, state as JSON). Each input log is processed in offset order, in batches; a
 * batch's log outputs, the transform's position in that input log and its new state are committed in ONE
 * atomic EventStore transaction (`EventStore.transact`, with the position as the group offset
 * `transform/<name>` of the input log and the state as its metadata): after a crash every input record's
 * outputs exist exactly once, in input order per input log. Samples go to the `SampleSink` (the TSDB)
 * before the position is committed; a batch that runs again after a crash writes the same samples at the
 * same timestamps, which the TSDB takes as no-ops, so they too count once. Output records carry their
 * provenance in the header `opendata-source: <input key>@<offset>`.
 *
 * Each transform is one supervised actor (`internal/transform.ts`): it follows the store's durable appends
 * under its source (no polling), catches up from storage at start, after a reset and whenever it could not
 * keep track (its set of logs to visit is bounded: `dirtyLogsMax`), retries what the store refuses for
 * now with backoff, and stops a log (not the transform) at a record whose function throws or whose
 * outputs are invalid, until `skip` or a reset. Functions get no clock and no randomness beyond the record:
 * given the same records, a transform gives the same outputs, so a `reset` replays it from the start into
 * new outputs.
 */
import { Context, Effect, Layer, Option, Schema, type Scope } from "effect"
import { EventStore, type InvalidInput, type Unavailable } from "./EventStore.ts"
import { makeRunner, type Runner } from "./internal/transform.ts"
import { keyProblem } from "./internal/validate.ts"
import * as Limits from "./limits.ts"

/** An input record as a transform's function sees it. */
export interface TransformRecord {
  readonly key: string
  readonly offset: number
  /** The append's system time, ms since the epoch. */
  readonly timestamp: number
  readonly eventTime: number | undefined
  readonly headers: Readonly<Record<string, string>>
  readonly value: Uint8Array
  /** The value as UTF-8 text. */
  readonly text: () => string
  /** The value parsed as JSON (throws if it is not JSON: the record then fails). */
  readonly json: () => unknown
}

/** A record for a log. */
export interface LogOutput {
  readonly key: string
  readonly value: string | Uint8Array
  readonly headers?: Readonly<Record<string, string>> | undefined
  readonly eventTime?: number | undefined
}

/**
 * A sample for the TSDB: `labels` must name the metric (`__name__`); `timestampMs` defaults to the record's
 * timestamp. A series has one value per timestamp: within a batch the last sample at a timestamp wins; the
 * TSDB refuses another value at a timestamp it already holds (counted in `samplesRejected`). Records of
 * one append share their timestamp, so a counter per record wants timestamps of its own (`eventTime`,
 * say).
 */
export interface SampleOutput {
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
  readonly timestampMs?: number | undefined
}

export type Output = LogOutput | SampleOutput
/** What a function may return for a record: outputs, one output, or nothing. */
export type Outputs = ReadonlyArray<Output> | Output | undefined | null | void

export type StatelessTransform = (record: TransformRecord) => Outputs | Effect.Effect<Outputs, unknown>

export interface StepResult<S> {
  readonly state: S
  readonly outputs?: Outputs
}

/** A transform with state per input log; the state must survive `JSON.stringify`/`JSON.parse`. */
export interface StatefulTransform<S> {
  readonly initial: S
  readonly step: (state: S, record: TransformRecord) => StepResult<S> | Effect.Effect<StepResult<S>, unknown>
}

export type Source = { readonly prefix: string } | { readonly log: string }

export interface Definition<S = unknown> {
  /** Unique; a new version of a transform is a new name (its positions are kept under it). */
  readonly name: string
  readonly source: Source
  readonly transform: StatelessTransform | StatefulTransform<S>
}

/** A definition, typed by its state. */
export const define = <S>(definition: Definition<S>): Definition<S> => definition

export interface FailedLog {
  readonly key: string
  /** The record that failed: the log's position stays there until `skip` or a reset. */
  readonly offset: number
  readonly error: string
}

export interface TransformInfo {
  readonly name: string
  readonly source: Source
  readonly status: "running" | "paused"
  /** Input records processed (committed) since start. */
  readonly recordsIn: number
  /**
   * Log records and samples written since start; samples not written are counted apart: the TSDB refused
   * them (too old, another value at a timestamp it holds), or a later sample of the same series at the same
   * timestamp in the batch replaced them.
   */
  readonly recordsOut: number
  readonly samplesOut: number
  readonly samplesRejected: number
  /** Batches committed since start. */
  readonly commits: number
  /** Records appended under the source that the transform has not processed yet, as far as it has seen. */
  readonly lagRecords: number
  /** Age of the oldest of them, ms (0 when none). */
  readonly lagMs: number
  /** Whether it is still going through its source's logs to find what it has not processed (at start, after a reset). */
  readonly catchingUp: boolean
  readonly failedLogCount: number
  /** The failed logs (at most `failedLogsShown`). */
  readonly failedLogs: ReadonlyArray<FailedLog>
  /** The last error the store or the TSDB answered (being retried), if any since the last success. */
  readonly retrying: string | undefined
}

/** 404: no transform of that name. */
export class TransformNotFound extends Schema.TaggedError<TransformNotFound>()("TransformNotFound", { name: Schema.String }) {
  override get message() {
    return `no transform ${JSON.stringify(this.name)}`
  }
}

/** A definition that cannot run; the layer fails with it. */
export class InvalidDefinition extends Schema.TaggedError<InvalidDefinition>()("InvalidDefinition", {
  name: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `transform ${JSON.stringify(this.name)}: ${this.reason}`
  }
}

export interface TransformsShape {
  readonly list: Effect.Effect<ReadonlyArray<TransformInfo>>
  readonly get: (name: string) => Effect.Effect<TransformInfo, TransformNotFound>
  /** Stops processing after the batch in flight (until `resume` or a restart). */
  readonly pause: (name: string) => Effect.Effect<TransformInfo, TransformNotFound>
  readonly resume: (name: string) => Effect.Effect<TransformInfo, TransformNotFound>
  /**
   * Forgets every position and state and failure of the transform, then processes its source again from
   * the start: its outputs are written again, after those it wrote before.
   */
  readonly reset: (name: string) => Effect.Effect<TransformInfo, TransformNotFound | InvalidInput | Unavailable>
  /** Moves a failed log past the record that failed (`offset`, as its status shows), keeping its state. */
  readonly skip: (name: string, log: string, offset: number) => Effect.Effect<TransformInfo, TransformNotFound | InvalidInput | Unavailable>
}

export class Transforms extends Context.Service<Transforms, TransformsShape>()("@opendata/eventstore/Transforms") {}

/** A sample as the sink takes it. */
export interface SampleWrite {
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
  readonly timestampMs: number
}

/**
 * Where samples go (the TSDB; the runtime provides it). `rejected`: samples it refused (too old, or another
 * value at a timestamp that already has one). A failure is retried. Without a sink, a record with sample
 * outputs fails.
 */
export interface SampleSinkShape {
  readonly write: (samples: ReadonlyArray<SampleWrite>) => Effect.Effect<{ readonly rejected: number }, { readonly message: string }>
}

export class SampleSink extends Context.Service<SampleSink, SampleSinkShape>()("@opendata/eventstore/SampleSink") {}

export interface TransformSettings {
  /** Input records one batch reads at most (default `Limits.transformBatchRecords`). */
  readonly batchRecords?: number | undefined
  /** Input logs a transform processes at once (default `Limits.transformConcurrency`). */
  readonly concurrency?: number | undefined
  /** Input logs it remembers as behind before it goes through its source from storage instead (default `Limits.transformDirtyLogsMax`). */
  readonly dirtyLogsMax?: number | undefined
  /**
   * Simulation only: a deliberately broken commit, for checking that the simulation catches it.
   * `transform-position-apart` commits the position in one write and the outputs in another.
   */
  readonly simulationMutant?: "none" | "transform-position-apart" | undefined
}

/** Why a definition cannot run, or undefined. */
export const definitionProblem = (d: Definition<unknown>): string | undefined => {
  if (typeof d !== "object" || d === null) return "must be an object { name, source, transform }"
  const name = keyProblem(d.name, "name")
  if (name !== undefined) return name.message
  if (typeof d.source !== "object" || d.source === null) return "source must be { prefix } or { log }"
  if (typeof d.name === "string" && Buffer.byteLength(d.name, "utf8") > Limits.logKeyBytesMax - "transform/".length) {
    return `name must be at most ${Limits.logKeyBytesMax - "transform/".length} bytes of UTF-8`
  }
  if ("prefix" in d.source) {
    if (typeof d.source.prefix !== "string") return "source.prefix must be a string"
    if (d.source.prefix !== "") {
      const prefix = keyProblem(d.source.prefix, "source.prefix")
      if (prefix !== undefined) return prefix.message
    }
  } else if ("log" in d.source) {
    const log = keyProblem(d.source.log, "source.log")
    if (log !== undefined) return log.message
  } else {
    return "source must be { prefix } or { log }"
  }
  const t = d.transform as unknown
  if (typeof t === "function") return undefined
  if (typeof t === "object" && t !== null && "initial" in t && typeof (t as { step?: unknown }).step === "function") {
    try {
      JSON.stringify((t as { initial: unknown }).initial)
    } catch (e) {
      return `transform.initial must be JSON: ${e instanceof Error ? e.message : String(e)}`
    }
    return undefined
  }
  return "transform must be a function (record) => outputs, or { initial, step(state, record) => { state, outputs } }"
}

/** The transforms, running in the current scope, over the `EventStore` in context (and a `SampleSink` if any). */
export const make = (
  definitions: ReadonlyArray<Definition<any>>,
  settings: TransformSettings = {}
): Effect.Effect<TransformsShape, InvalidDefinition, EventStore | Scope.Scope> =>
  Effect.gen(function*() {
    const names = new Set<string>()
    for (const d of definitions) {
      const problem = definitionProblem(d)
      if (problem !== undefined) return yield* new InvalidDefinition({ name: String(d?.name), reason: problem })
      if (names.has(d.name)) return yield* new InvalidDefinition({ name: d.name, reason: "another transform has this name" })
      names.add(d.name)
    }
    const store = yield* EventStore
    const sink = Option.getOrUndefined(yield* Effect.serviceOption(SampleSink))
    const runners = new Map<string, Runner>()
    for (const d of definitions) runners.set(d.name, yield* makeRunner(d, store, sink, settings))
    const find = (name: string) => {
      const runner = runners.get(name)
      return runner === undefined ? Effect.fail(new TransformNotFound({ name })) : Effect.succeed(runner)
    }
    const then = <E>(name: string, f: (r: Runner) => Effect.Effect<void, E>) =>
      Effect.flatMap(find(name), (r) => Effect.andThen(f(r), r.info))
    return {
      list: Effect.forEach([...runners.values()], (r) => r.info),
      get: (name) => Effect.flatMap(find(name), (r) => r.info),
      pause: (name) => then(name, (r) => r.pause),
      resume: (name) => then(name, (r) => r.resume),
      reset: (name) => then(name, (r) => r.reset),
      skip: (name, log, offset) => then(name, (r) => r.skip(log, offset))
    } satisfies TransformsShape
  })

/** The transforms, running in the layer's scope, over the `EventStore` in context (and a `SampleSink` if any). */
export const layer = (
  definitions: ReadonlyArray<Definition<any>>,
  settings: TransformSettings = {}
): Layer.Layer<Transforms, InvalidDefinition, EventStore> => Layer.effect(Transforms, make(definitions, settings))

export type { Scope }
