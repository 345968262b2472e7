/**
 * Transforms in the server (see `@opendata/eventstore`'s `Transforms` for what a transform is): their
 * definitions loaded from the modules the configuration names, their samples written to the TSDB, their
 * HTTP API and their `/metrics`.
 *
 *   transforms:
 *     - name: orders-by-status        # unique
 *       from: "orders/"                # a key prefix (or `log: "exact key"`)
 *       module: ./transforms/status.mjs   # default export: a function, or { initial, step }
 *
 * HTTP: `GET /v1/transforms` (every transform's status), `GET /v1/transforms/{name}`, and `POST
 * /v1/transforms/{name}/pause|resume|reset`, `POST /v1/transforms/{name}/skip?log=..&offset=..`. Transforms
 * run where the EventStore is written (roles `all` and `writer`); elsewhere the routes answer 503.
 */
import { pathToFileURL } from "node:url"
import { Effect, Layer, Option, Schema } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import type { EventStore } from "@opendata/eventstore"
import { Transforms } from "@opendata/eventstore"
import { Tsdb } from "@opendata/tsdb"
import type { Sample } from "./Metrics.ts"

/** A transform as the configuration names it: its module is an absolute path (resolved from the file's directory). */
export interface TransformConfig {
  readonly name: string
  readonly source: Transforms.Source
  readonly module: string
}

/** A module that cannot be loaded, or whose default export is no transform: the server does not start. */
export class TransformModuleError extends Schema.TaggedError<TransformModuleError>()("TransformModuleError", {
  name: Schema.String,
  module: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `transform ${JSON.stringify(this.name)}: module ${this.module} ${this.reason}`
  }
}

/** Imports each configured module; its default export is the transform. */
export const loadDefinitions = (
  configs: ReadonlyArray<TransformConfig>
): Effect.Effect<ReadonlyArray<Transforms.Definition<unknown>>, TransformModuleError> =>
  Effect.forEach(configs, (c) =>
    Effect.gen(function*() {
      const loaded = yield* Effect.tryPromise({
        try: () => import(pathToFileURL(c.module).href) as Promise<{ readonly default?: unknown }>,
        catch: (e) => new TransformModuleError({ name: c.name, module: c.module, reason: `cannot be loaded: ${e instanceof Error ? e.message : String(e)}` })
      })
      const definition = { name: c.name, source: c.source, transform: loaded.default } as Transforms.Definition<unknown>
      if (loaded.default === undefined) {
        return yield* new TransformModuleError({ name: c.name, module: c.module, reason: "has no default export (export default a function, or { initial, step })" })
      }
      const problem = Transforms.definitionProblem(definition)
      if (problem !== undefined) return yield* new TransformModuleError({ name: c.name, module: c.module, reason: `default export: ${problem}` })
      return definition
    }))

/** Samples to the TSDB: one write per batch, grouped by series; what it refuses is counted, not retried. */
export const layerSampleSink: Layer.Layer<Transforms.SampleSink, never, Tsdb.Tsdb> = Layer.effect(
  Transforms.SampleSink,
  Effect.map(Tsdb.Tsdb, (tsdb) => ({
    write: (samples) => {
      const series = new Map<string, { labels: Array<readonly [string, string]>; samples: Array<Tsdb.Sample> }>()
      for (const s of samples) {
        const labels = Object.entries(s.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        const id = JSON.stringify(labels)
        const entry = series.get(id) ?? { labels, samples: [] }
        entry.samples.push({ timestampMs: s.timestampMs, value: s.value })
        series.set(id, entry)
      }
      return Effect.map(tsdb.write({ series: [...series.values()] }), (outcome) => ({
        rejected: outcome.tooOld + outcome.duplicates
      }))
    }
  }))
)

/** The transforms (and their sample sink) over the EventStore and the TSDB in context. */
export const layer = (
  definitions: ReadonlyArray<Transforms.Definition<any>>
): Layer.Layer<Transforms.Transforms, Transforms.InvalidDefinition, EventStore.EventStore | Tsdb.Tsdb> =>
  Transforms.layer(definitions).pipe(Layer.provide(layerSampleSink))

// -------------------------------------------------------------------------------------------------
// HTTP
// -------------------------------------------------------------------------------------------------

const json = (body: unknown, status = 200) => HttpServerResponse.jsonUnsafe(body, { status })
const problem = (status: number, error: string, message: string) => json({ error, message }, status)

const notHere = problem(503, "Unavailable", "transforms run in the process that writes the EventStore (role all or writer), not this one")

const asJson = (info: Transforms.TransformInfo) => ({
  ...info,
  source: "prefix" in info.source ? { prefix: info.source.prefix } : { log: info.source.log },
  retrying: info.retrying ?? null
})

/** Answers a transforms operation: its info, or the EventStore API's error shape. */
const answer = (operation: Effect.Effect<Transforms.TransformInfo, Transforms.TransformNotFound | { readonly _tag: string; readonly message: string }>) =>
  operation.pipe(
    Effect.map((info) => json(asJson(info))),
    Effect.catch((e: { readonly _tag: string; readonly message: string }) =>
      Effect.succeed(
        e._tag === "TransformNotFound"
          ? problem(404, "NotFound", e.message)
          : e._tag === "InvalidInput"
          ? problem(400, "InvalidInput", e.message)
          : problem(503, "Unavailable", e.message)
      )
    )
  )

const withTransforms = (f: (t: Transforms.TransformsShape) => Effect.Effect<HttpServerResponse.HttpServerResponse>) =>
  Effect.flatMap(Effect.serviceOption(Transforms.Transforms), (t) => (Option.isSome(t) ? f(t.value) : Effect.succeed(notHere)))

const actions = ["pause", "resume", "reset", "skip"] as const

/** The routes: status for any reader; pause, resume and skip write; reset (it writes every output again) is admin's. */
export const routes = Layer.mergeAll(
  HttpRouter.add("GET", "/v1/transforms", withTransforms((t) => Effect.map(t.list, (all) => json({ transforms: all.map(asJson) })))),
  HttpRouter.add(
    "GET",
    "/v1/transforms/:name",
    Effect.flatMap(HttpRouter.params, ({ name }) => withTransforms((t) => answer(t.get(name ?? ""))))
  ),
  HttpRouter.add(
    "POST",
    "/v1/transforms/:name/:action",
    Effect.gen(function*() {
      const { action, name = "" } = yield* HttpRouter.params
      const request = yield* HttpServerRequest.HttpServerRequest
      if (!(actions as ReadonlyArray<string | undefined>).includes(action)) {
        return problem(404, "NotFound", `no action ${JSON.stringify(action)}: pause, resume, reset or skip`)
      }
      return yield* withTransforms((t) => {
        switch (action) {
          case "pause":
            return answer(t.pause(name))
          case "resume":
            return answer(t.resume(name))
          case "reset":
            return answer(t.reset(name))
          default: {
            const query = new URLSearchParams(request.url.split("?")[1] ?? "")
            const log = query.get("log")
            const offset = Number(query.get("offset") ?? "")
            if (log === null || log === "") return Effect.succeed(problem(400, "InvalidInput", "invalid log: give the failed log as ?log=<key>"))
            if (!Number.isSafeInteger(offset) || offset < 0 || query.get("offset") === "") {
              return Effect.succeed(problem(400, "InvalidInput", "invalid offset: give the failed record's offset as &offset=<n>"))
            }
            return answer(t.skip(name, log, offset))
          }
        }
      })
    })
  )
)

// -------------------------------------------------------------------------------------------------
// /metrics
// -------------------------------------------------------------------------------------------------

/** Each transform's figures, labelled `transform="<name>"`. */
export const samples = (all: ReadonlyArray<Transforms.TransformInfo>): Array<Sample> =>
  all.flatMap((t) => {
    const labels = { transform: t.name }
    const sample = (type: "counter" | "gauge", name: string, help: string, value: number): Sample => ({ name, type, help, labels, value })
    return [
      sample("counter", "opendata_transform_records_in_total", "Input records a transform processed (committed).", t.recordsIn),
      sample("counter", "opendata_transform_records_out_total", "Log records a transform wrote.", t.recordsOut),
      sample("counter", "opendata_transform_samples_out_total", "Samples a transform wrote to the TSDB.", t.samplesOut),
      sample("counter", "opendata_transform_samples_rejected_total", "Samples the TSDB refused (too old, or another value at a taken timestamp).", t.samplesRejected),
      sample("counter", "opendata_transform_commits_total", "Batches a transform committed.", t.commits),
      sample("gauge", "opendata_transform_lag_records", "Records under a transform's source it has not processed yet (as far as it has seen).", t.lagRecords),
      sample("gauge", "opendata_transform_lag_seconds", "Age of the oldest of them.", t.lagMs / 1000),
      sample("gauge", "opendata_transform_failed_logs", "Input logs a transform stopped at a failing record.", t.failedLogCount),
      sample("gauge", "opendata_transform_paused", "1 while a transform is paused.", t.status === "paused" ? 1 : 0)
    ]
  })
