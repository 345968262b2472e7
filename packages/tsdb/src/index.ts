/**
 * @opendata/tsdb: a Prometheus backend on object storage: remote write in, the Prometheus HTTP API out.
 */
export * as Tsdb from "./Tsdb.ts"
export * as TsdbHttp from "./Http.ts"
export * as TsdbInspect from "./Inspect.ts"
export * as Limits from "./limits.ts"
export { parseSelector, SelectorError } from "./internal/selector.ts"
export * as RemoteWrite from "./internal/remoteWrite/index.ts"
export * as Otlp from "./internal/otlp/translate.ts"
export * as PromQL from "./promql/engine.ts"
export type { PromqlFeature, Value as PromQLValue } from "./promql/types.ts"
export { promqlFeatures } from "./promql/types.ts"
export { FloatHistogram, parseHistogramText } from "./promql/histogram.ts"
export type { CounterResetHint, Span as HistogramSpan } from "./promql/histogram.ts"
