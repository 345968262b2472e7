/**
 * OTLP metrics to Prometheus series, as Prometheus 3's OTLP receiver translates them (the OpenTelemetry
 * "Prometheus and OpenMetrics compatibility" specification):
 *
 * - metric names (`translationStrategy`, Prometheus's `otlp.translation_strategy`, otlptranslator v1.0.0's
 *   `MetricNamer`): with the escaping strategies, characters outside `[a-zA-Z0-9:]` split the name into
 *   words joined by `_`; with suffixes (the default, `UnderscoreEscapingWithSuffixes`) the unit is appended
 *   in Prometheus's words (`s` -> `seconds`, `By` -> `bytes`, `By/s` -> `bytes_per_second`, annotations in
 *   `{}` dropped) unless a word of the name already says it, monotonic sums end in `_total` and gauges of
 *   unit `1` in `_ratio`. `NoUTF8EscapingWithSuffixes` keeps the name as sent (dots and all) and appends the
 *   same words with `_` (see `utf8MetricName`); `NoTranslation` keeps it exactly as sent;
 * - attribute names: escaping strategies make characters outside `[a-zA-Z0-9]` `_` (runs collapsed), a
 *   leading digit gets `key_`; attributes that collide after that join their values with `;`. The UTF-8
 *   strategies keep them as sent (see `labelName`); exemplar attributes are always escaped (the
 *   exemplar store keeps classic label names only);
 * - resource: `service.namespace`/`service.name` become `job`, `service.instance.id` `instance` (on every
 *   series); the other resource attributes go to one `target_info` series (value 1), and those named in
 *   `promoteResourceAttributes` onto every series as well;
 * - gauges and non-monotonic sums are gauges, monotonic sums counters; histograms become `_bucket{le}`
 *   (cumulative), `_sum` and `_count`; summaries `{quantile}`, `_sum` and `_count`; exponential histograms
 *   one native histogram series each (see `nativeHistogram`); a point flagged "no recorded value" is a
 *   staleness marker on each of its series;
 * - delta (or unspecified) temporality of sums, histograms and exponential histograms is refused, point by
 *   point, with a reason, unless delta is converted (`convertDeltaToCumulative`, Prometheus's
 *   `otlp-deltatocumulative`: see `DeltaStreams`), and so are exponential histograms Prometheus cannot hold
 *   (scale below -4, buckets that do not add up to the count): the rest of the request is written.
 */
import { Buffer } from "node:buffer"
import * as Limits from "../../limits.ts"
import type { Exemplar, Labels, SeriesInput, MetricMetadata } from "../../Tsdb.ts"
import type { Span } from "../../promql/histogram.ts"
import { FloatHistogram } from "../../promql/histogram.ts"
import { staleNaN } from "../remoteWrite/decode.ts"
import type {
  Attribute,
  Exemplar as OtlpExemplar,
  ExponentialBuckets,
  ExponentialHistogramPoint,
  HistogramPoint,
  Metric,
  MetricsRequest,
  NumberPoint,
  SummaryPoint
} from "./decode.ts"
import { flagNoRecordedValue, temporalityCumulative, temporalityDelta } from "./decode.ts"

/** Prometheus 3's `otlp.translation_strategy` values. */
export type TranslationStrategy =
  | "UnderscoreEscapingWithSuffixes"
  | "UnderscoreEscapingWithoutSuffixes"
  | "NoUTF8EscapingWithSuffixes"
  | "NoTranslation"
export const translationStrategies: ReadonlyArray<TranslationStrategy> = [
  "UnderscoreEscapingWithSuffixes",
  "UnderscoreEscapingWithoutSuffixes",
  "NoUTF8EscapingWithSuffixes",
  "NoTranslation"
]

/** Whether a strategy escapes names to Prometheus's classic character sets (otlptranslator's `ShouldEscape`). */
export const escapesNames = (strategy: TranslationStrategy): boolean =>
  strategy === "UnderscoreEscapingWithSuffixes" || strategy === "UnderscoreEscapingWithoutSuffixes"
/** Whether a strategy appends unit and type suffixes (otlptranslator's `ShouldAddSuffixes`). */
export const addsSuffixes = (strategy: TranslationStrategy): boolean =>
  strategy === "UnderscoreEscapingWithSuffixes" || strategy === "NoUTF8EscapingWithSuffixes"

export interface OtlpSettings {
  readonly translationStrategy: TranslationStrategy
  /** Resource attributes copied onto every series of their resource (as well as onto `target_info`). */
  readonly promoteResourceAttributes: ReadonlyArray<string>
  /** Keep `service.name`, `service.namespace` and `service.instance.id` on `target_info` too. */
  readonly keepIdentifyingResourceAttributes: boolean
  /**
   * Convert delta sums (monotonic) and delta histograms to cumulative ones by keeping their running totals
   * in memory (Prometheus's `otlp-deltatocumulative`; see `DeltaStreams`); off (absent): delta is refused.
   */
  readonly convertDeltaToCumulative?: boolean | undefined
}

export const defaultSettings: OtlpSettings = {
  translationStrategy: "UnderscoreEscapingWithSuffixes",
  promoteResourceAttributes: [],
  keepIdentifyingResourceAttributes: false,
  convertDeltaToCumulative: false
}

export interface TranslateLimits {
  readonly labelsPerSeriesMax: number
  readonly labelValueBytesMax: number
}

export interface Translated {
  readonly series: Array<SeriesInput>
  readonly metadata: Array<MetricMetadata>
  /** Points not translated (refused), with one line per reason. */
  readonly rejectedPoints: number
  readonly reasons: ReadonlyArray<string>
  /**
   * Keeps the running totals of the delta streams this translation moved on (see `DeltaStreams`): to be
   * called once the series are written, so that a request that failed to be written (and is retried)
   * is not counted twice. Does nothing when no delta was converted.
   */
  readonly commit: () => void
}

// -------------------------------------------------------------------------------------------------
// Names
// -------------------------------------------------------------------------------------------------

const unitWords: Record<string, string> = {
  d: "days",
  h: "hours",
  min: "minutes",
  s: "seconds",
  ms: "milliseconds",
  us: "microseconds",
  ns: "nanoseconds",
  By: "bytes",
  KiBy: "kibibytes",
  MiBy: "mebibytes",
  GiBy: "gibibytes",
  TiBy: "tibibytes",
  KBy: "kilobytes",
  MBy: "megabytes",
  GBy: "gigabytes",
  TBy: "terabytes",
  m: "meters",
  V: "volts",
  A: "amperes",
  J: "joules",
  W: "watts",
  g: "grams",
  Cel: "celsius",
  Hz: "hertz",
  "1": "",
  "%": "percent"
}

const perUnitWords: Record<string, string> = { s: "second", m: "minute", h: "hour", d: "day", w: "week", mo: "month", y: "year" }

const isNameChar = (c: number) => (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x3a
const isLabelChar = (c: number) => (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39)
const isDigit = (c: number) => c >= 0x30 && c <= 0x39

/** The runs of `s` made of characters `keep` accepts (by UTF-16 code unit: anything else is a separator). */
const words = (s: string, keep: (c: number) => boolean): Array<string> => {
  const out: Array<string> = []
  let start = -1
  for (let i = 0; i <= s.length; i++) {
    const ok = i < s.length && keep(s.charCodeAt(i))
    if (ok && start < 0) start = i
    else if (!ok && start >= 0) {
      out.push(s.slice(start, i))
      start = -1
    }
  }
  return out
}

/** Replaces characters outside `[a-zA-Z0-9:]` with `_`, collapses runs of `_`, drops a leading `_`. */
const cleanUnit = (unit: string): string => {
  let out = ""
  for (let i = 0; i < unit.length; i++) {
    const c = unit.charCodeAt(i)
    const ch = isNameChar(c) ? unit[i]! : "_"
    if (ch === "_" && out.endsWith("_")) continue
    out += ch
  }
  return out.startsWith("_") ? out.slice(1) : out
}

/** The main and "per" unit words of an OTLP unit (`By/s` -> `bytes`, `per_second`); `{...}` annotations give none. */
const unitSuffixes = (unit: string): [main: string, per: string] => {
  const slash = unit.indexOf("/")
  const mainRaw = (slash < 0 ? unit : unit.slice(0, slash)).trim()
  const perRaw = slash < 0 ? "" : unit.slice(slash + 1).trim()
  const main = mainRaw !== "" && !/[{}]/.test(mainRaw) ? (unitWords[mainRaw] ?? mainRaw) : ""
  let per = perRaw !== "" && !/[{}]/.test(perRaw) ? (perUnitWords[perRaw] ?? perRaw) : ""
  if (per !== "") per = `per_${per}`
  return [main, per]
}

export type NameKind = "gauge" | "counter" | "nonMonotonicCounter" | "histogram" | "summary"

/**
 * otlptranslator's `trimSuffixAndDelimiter`: `name` without `suffix` and the one character before it
 * (taken to be a delimiter, whatever it is: `foo.total` -> `foo`, `subtotal` -> `su`), when `name` ends in
 * `suffix` and is longer (in UTF-8 bytes) than it by more than one; else `name`. Go cuts a byte there; a
 * whole character is cut here, so that the name stays valid UTF-8.
 */
const trimSuffixAndDelimiter = (name: string, suffix: string): string => {
  if (!name.endsWith(suffix) || Buffer.byteLength(name) <= Buffer.byteLength(suffix) + 1) return name
  const rest = name.slice(0, name.length - suffix.length)
  const last = rest.charCodeAt(rest.length - 1)
  const width = last >= 0xdc00 && last <= 0xdfff && rest.length >= 2 ? 2 : 1
  return rest.slice(0, rest.length - width)
}

/**
 * A metric name under the UTF-8 strategies (otlptranslator's `buildMetricName`): the name as sent; with
 * suffixes, the unit's words appended with `_` (the main unit unless the name already ends in it, then the
 * "per" unit, re-appended if the name ended in it), then `_total` for monotonic sums and `_ratio` for
 * gauges of unit `1`, each first cut from the name's end with its delimiter (`requests.total` ->
 * `requests_total`). Units are not escaped (`{...}` annotations are dropped, as in every strategy).
 */
const utf8MetricName = (name: string, unit: string, kind: NameKind, suffixes: boolean): string => {
  if (!suffixes) return name
  let out = name
  const ratio = unit === "1" && kind === "gauge"
  const total = kind === "counter"
  if (ratio) out = trimSuffixAndDelimiter(out, "ratio")
  if (total) out = trimSuffixAndDelimiter(out, "total")
  const [main, per] = unitSuffixes(unit)
  if (per !== "") out = trimSuffixAndDelimiter(out, per)
  if (main !== "" && !out.endsWith(main)) out = `${out}_${main}`
  if (per !== "") out = `${out}_${per}`
  if (total) out = `${out}_total`
  if (ratio) out = `${out}_ratio`
  return out
}

/**
 * The Prometheus metric name of an OTLP metric; "" when nothing of it is left (escaping strategies) or when
 * it is empty or not well-formed Unicode (UTF-8 strategies).
 */
export const metricName = (name: string, unit: string, kind: NameKind, strategy: TranslationStrategy): string => {
  if (!escapesNames(strategy)) return name === "" || !name.isWellFormed() ? "" : utf8MetricName(name, unit, kind, addsSuffixes(strategy))
  let tokens = words(name, isNameChar)
  if (strategy === "UnderscoreEscapingWithSuffixes") {
    const [mainRaw, perRaw] = unitSuffixes(unit)
    let main = cleanUnit(mainRaw)
    let per = cleanUnit(perRaw)
    if (tokens.includes(main)) main = ""
    if (per === "per_") per = ""
    else {
      if (per.endsWith("_")) per = per.slice(0, -1)
      if (tokens.includes(per)) per = ""
    }
    if (per !== "" && main.endsWith("_")) main = main.slice(0, -1)
    if (main !== "") tokens.push(main)
    if (per !== "") tokens.push(per)
    if (kind === "counter") tokens = [...tokens.filter((t) => t !== "total"), "total"]
    if (unit === "1" && kind === "gauge") tokens = [...tokens.filter((t) => t !== "ratio"), "ratio"]
  }
  let out = tokens.join("_")
  if (out !== "" && isDigit(out.charCodeAt(0))) out = `_${out}`
  return /^_*$/.test(out) ? "" : out
}

/**
 * The Prometheus label name of an attribute; "" when it would be only underscores. With `utf8` (the UTF-8
 * strategies, otlptranslator's `LabelNamer` with `UTF8Allowed`) the key as it is, "" when it is empty or
 * only underscores.
 */
export const labelName = (key: string, utf8 = false): string => {
  if (key === "") return ""
  if (utf8) return /^_+$/.test(key) ? "" : key
  let inner = key
  const reserved = key.length >= 4 && key.startsWith("__") && key.endsWith("__")
  if (reserved) inner = key.slice(2, -2)
  let out = ""
  let underscore = false
  for (let i = 0; i < inner.length; i++) {
    const c = inner.charCodeAt(i)
    if (isLabelChar(c)) {
      out += inner[i]
      underscore = false
    } else if (!underscore) {
      out += "_"
      underscore = true
    }
  }
  if (reserved) out = `__${out}__`
  if (out !== "" && isDigit(out.charCodeAt(0))) out = `key_${out}`
  return /^_*$/.test(out) ? "" : out
}

/** The unit as Prometheus's metadata writes it (`By/s` -> `bytes_per_second`). */
export const unitName = (unit: string): string => {
  const [main, per] = unitSuffixes(unit)
  const m = cleanUnit(main)
  const p = cleanUnit(per)
  let u = m !== "" && p !== "" ? `${m}_${p}` : m !== "" ? m : p
  if (u.startsWith("_")) u = u.slice(1)
  if (u.endsWith("_")) u = u.slice(0, -1)
  return u
}

/** A float as Go's `strconv.FormatFloat(v, 'f', -1, 64)`: the shortest digits, never an exponent (`le`, `quantile`). */
export const plainFloat = (v: number): string => {
  if (Number.isNaN(v)) return "NaN"
  if (v === Infinity) return "+Inf"
  if (v === -Infinity) return "-Inf"
  const s = String(v)
  const e = s.indexOf("e")
  if (e < 0) return s
  const negative = s.startsWith("-")
  const mantissa = s.slice(negative ? 1 : 0, e)
  const exponent = Number(s.slice(e + 1))
  const dot = mantissa.indexOf(".")
  const digits = mantissa.replace(".", "")
  const pointAt = (dot < 0 ? mantissa.length : dot) + exponent
  let out: string
  if (pointAt <= 0) out = `0.${"0".repeat(-pointAt)}${digits}`
  else if (pointAt >= digits.length) out = digits + "0".repeat(pointAt - digits.length)
  else out = `${digits.slice(0, pointAt)}.${digits.slice(pointAt)}`
  return negative ? `-${out}` : out
}

// -------------------------------------------------------------------------------------------------
// Series
// -------------------------------------------------------------------------------------------------

const identifying = new Set(["service.name", "service.namespace", "service.instance.id"])

class Rejection extends Error {}

/**
 * Why a UTF-8 label name cannot be stored, if it cannot: the TSDB keys a series by its labels written as
 * `{name="value",...}` and its postings by `name NUL value`, so a name must hold no `"` and no NUL (else
 * two label sets could share a key); and it must be well-formed Unicode (Prometheus's names are UTF-8).
 */
const unstorableName = (name: string): string | undefined =>
  name.includes('"') || name.includes("\0")
    ? `label name ${JSON.stringify(name)} holds a double quote or a NUL, which the TSDB cannot store in a name`
    : !name.isWellFormed()
    ? `label name ${JSON.stringify(name)} is not well-formed Unicode`
    : undefined

/**
 * Label sets of one resource: its `job`/`instance` and promoted attributes, then a point's attributes on
 * top (a point's attribute wins over a promoted one of the same name).
 */
const makeLabeller = (resource: ReadonlyArray<Attribute>, settings: OtlpSettings, limits: TranslateLimits) => {
  const get = (key: string) => resource.find((a) => a.key === key)?.value
  const serviceName = get("service.name")
  const namespace = get("service.namespace")
  const instance = get("service.instance.id")
  const job = serviceName === undefined ? undefined : namespace !== undefined && namespace !== "" ? `${namespace}/${serviceName}` : serviceName
  const promoted = resource.filter((a) => settings.promoteResourceAttributes.includes(a.key))
  const utf8 = !escapesNames(settings.translationStrategy)
  /**
   * A label name of an attribute. Under the UTF-8 strategies Prometheus keeps a data point's (and
   * `target_info`'s) attribute names as they are (only an empty one is refused here), and builds promoted
   * ones with its `LabelNamer` (only underscores refused too).
   */
  const nameOf = (key: string, isPromoted: boolean): string => {
    const name = !utf8 ? labelName(key) : isPromoted ? labelName(key, true) : key
    if (name === "") throw new Rejection(`attribute ${JSON.stringify(key)} has no valid label name`)
    const unstorable = utf8 ? unstorableName(name) : undefined
    if (unstorable !== undefined) throw new Rejection(unstorable)
    return name
  }

  /** Attributes to labels: sanitized names, colliding values joined with `;` (in key order). */
  const merge = (into: Map<string, string>, attributes: ReadonlyArray<Attribute>, isPromoted: boolean) => {
    const sorted = [...attributes].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    for (const a of sorted) {
      const name = nameOf(a.key, isPromoted)
      const existing = into.get(name)
      into.set(name, existing !== undefined && existing !== "" ? `${existing};${a.value}` : a.value)
    }
  }

  /**
   * The labels of a point's series: its attributes, promoted and target labels worked out once for the
   * point, then a series' name (and `le` or `quantile`) added by the function returned.
   */
  const point = (attributes: ReadonlyArray<Attribute>) => {
    const map = new Map<string, string>()
    const own = new Set(attributes.map((a) => (utf8 ? a.key : labelName(a.key))))
    merge(map, promoted.filter((a) => !own.has(utf8 ? a.key : labelName(a.key))), true)
    merge(map, attributes, false)
    if (job !== undefined) map.set("job", job)
    if (instance !== undefined) map.set("instance", instance)
    map.delete("__name__")
    const base: Array<readonly [string, string]> = []
    for (const [name, value] of map) {
      if (value === "") continue // an empty label value is no label, as in Prometheus
      if (Buffer.byteLength(value) > limits.labelValueBytesMax) {
        throw new Rejection(`label ${name} is over ${limits.labelValueBytesMax} bytes`)
      }
      base.push([name, value])
    }
    return (metric: string, extra?: readonly [string, string]): Labels => {
      const out = extra === undefined ? [...base] : base.filter(([n]) => n !== extra[0])
      out.push(["__name__", metric])
      if (extra !== undefined) out.push(extra)
      if (out.length > limits.labelsPerSeriesMax) throw new Rejection(`over ${limits.labelsPerSeriesMax} labels`)
      return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    }
  }

  /** `target_info` of the resource: its non-identifying attributes, when it has any. */
  const targetInfo = (): Labels | undefined => {
    const rest = resource.filter((a) => settings.keepIdentifyingResourceAttributes || !identifying.has(a.key))
    if (rest.length === 0) return undefined
    return point(rest)("target_info")
  }

  return { point, targetInfo }
}

/** An OTLP exemplar as Prometheus keeps it: `trace_id`, `span_id` (hex) and its filtered attributes as labels. */
const exemplarOf = (e: OtlpExemplar): Exemplar => {
  const labels: Array<readonly [string, string]> = []
  if (e.traceId !== "") labels.push(["trace_id", e.traceId])
  if (e.spanId !== "") labels.push(["span_id", e.spanId])
  for (const a of e.attributes) {
    const name = labelName(a.key)
    if (name !== "" && name !== "trace_id" && name !== "span_id") labels.push([name, a.value])
  }
  return { labels, value: e.value, timestampMs: e.timeMs }
}

// -------------------------------------------------------------------------------------------------
// Exponential histograms
// -------------------------------------------------------------------------------------------------

/** The native histogram schemas for exponential buckets: scales outside are reduced (above) or refused (below). */
export const nativeSchemaMax = 8
export const nativeSchemaMin = -4
/** Prometheus's zero bucket width for an OTLP point that does not say its own (`defaultZeroThreshold`). */
export const defaultZeroThreshold = 1e-128

/** Prometheus spans hold int32 offsets; an OTLP index past them cannot be stored. */
const int32Max = 0x7fffffff
const int32Min = -0x80000000

/** floor(i / 2^down) for any integer i in the int32 range (shifts past 32 bits give 0 or -1, as `>>`). */
const shiftDown = (i: number, down: number): number => (down === 0 ? i : down >= 32 ? (i < 0 ? -1 : 0) : Math.floor(i / 2 ** down))

/**
 * One side of an OTLP exponential histogram as Prometheus buckets: OTLP bucket i at `scale` covers
 * (base^i, base^(i+1)] and Prometheus bucket i+1 covers the same, so indices move up by one; with `down` > 0
 * (a scale above 8) each 2^down adjacent OTLP buckets merge into one (index floor(i / 2^down) + 1). As
 * Prometheus lays them out (client_golang's `makeBuckets`, taken by `convertBucketsLayout`), runs of up to
 * two empty buckets stay inside a span and a longer run starts a new span; empty buckets at either end are
 * left out (no zero-length span, no empty edge bucket). Counts stay absolute.
 */
const nativeSide = (side: ExponentialBuckets, down: number): { spans: Array<Span>; buckets: Array<number>; total: number } => {
  const spans: Array<Span> = []
  const buckets: Array<number> = []
  let total = 0
  let last = 0 // the index of the last bucket written
  let index = 0
  let pending = 0
  const flush = () => {
    if (pending === 0) return
    const gap = spans.length === 0 ? 0 : index - last - 1
    if (spans.length === 0) spans.push({ offset: index, length: 1 })
    else if (gap > 2) spans.push({ offset: gap, length: 1 })
    else {
      for (let k = 0; k < gap; k++) buckets.push(0)
      spans[spans.length - 1]!.length += gap + 1
    }
    buckets.push(pending)
    last = index
    pending = 0
  }
  const counts = side.bucketCounts
  for (let i = 0; i < counts.length; i++) {
    const at = shiftDown(side.offset + i, down) + 1
    if (i === 0 || at !== index) {
      flush()
      index = at
    }
    pending += counts[i]!
    total += counts[i]!
  }
  flush()
  return { spans, buckets, total }
}

/**
 * An OTLP exponential histogram point as Prometheus 3's OTLP receiver makes it a native histogram
 * (`exponentialToNativeHistogram`): schema = scale, a scale above 8 reduced to 8 (buckets merged), below
 * -4 refused; the zero bucket from `zero_count`, Prometheus's 1e-128 wide (`defaultZeroThreshold`) unless
 * the point sets `zero_threshold` (Prometheus ignores the field, a TODO there; SDKs leave it 0, and a
 * producer that sets it says its zero bucket is that wide); count as sent, sum as sent (0 when absent);
 * counter reset hint "unknown" (cumulative temporality only: Prometheus says "gauge" only for delta). A
 * point flagged "no recorded value" is a stale marker (sum = the stale NaN, built bit for bit; no buckets,
 * as Prometheus's own histogram stale markers). Refused, as Prometheus's TSDB refuses such a histogram on
 * append: buckets and zero count that do not add up to the count (at most the count when the sum is NaN);
 * refused too: a negative or non-finite zero threshold, bucket indices past int32.
 */
export const nativeHistogram = (p: ExponentialHistogramPoint, stale: boolean): FloatHistogram => {
  if (p.scale < nativeSchemaMin) {
    throw new Rejection(`exponential histogram scale ${p.scale} is below ${nativeSchemaMin}, the lowest native histogram schema`)
  }
  const down = Math.max(0, p.scale - nativeSchemaMax)
  const schema = Math.min(p.scale, nativeSchemaMax)
  if (!(p.zeroThreshold >= 0 && p.zeroThreshold < Infinity)) {
    throw new Rejection(`exponential histogram zero threshold ${p.zeroThreshold} is not a finite number >= 0`)
  }
  const zeroThreshold = p.zeroThreshold > 0 ? p.zeroThreshold : defaultZeroThreshold
  for (const side of [p.positive, p.negative]) {
    // Prometheus's index of the last bucket, offset + length, must be an int32.
    if (side.bucketCounts.length > 0 && (side.offset + side.bucketCounts.length > int32Max || side.offset < int32Min)) {
      throw new Rejection(`exponential histogram bucket indices past the int32 range`)
    }
  }
  if (stale) return new FloatHistogram({ counterResetHint: "unknown", schema, zeroThreshold, sum: staleNaN })
  const positive = nativeSide(p.positive, down)
  const negative = nativeSide(p.negative, down)
  const sum = p.sum ?? 0
  const observations = positive.total + negative.total + p.zeroCount
  if (Number.isNaN(sum) ? observations > p.count : observations !== p.count) {
    throw new Rejection(`exponential histogram has ${observations} observations in its buckets, but a count of ${p.count}`)
  }
  return new FloatHistogram({
    counterResetHint: "unknown",
    schema,
    zeroThreshold,
    zeroCount: p.zeroCount,
    count: p.count,
    sum,
    positiveSpans: positive.spans,
    positiveBuckets: positive.buckets,
    negativeSpans: negative.spans,
    negativeBuckets: negative.buckets
  })
}

const nameKind = (m: Metric): NameKind | undefined => {
  switch (m.kind) {
    case "gauge":
      return "gauge"
    case "sum":
      return m.monotonic ? "counter" : "nonMonotonicCounter"
    case "histogram":
    case "exponentialHistogram":
      return "histogram"
    case "summary":
      return "summary"
    default:
      return undefined
  }
}

const promType = (kind: NameKind) => (kind === "nonMonotonicCounter" ? "gauge" : kind)

// -------------------------------------------------------------------------------------------------
// Delta to cumulative
// -------------------------------------------------------------------------------------------------

export interface DeltaLimits {
  /** Streams kept at most; past it the least recently updated go first. */
  readonly streamsMax: number
  /** A stream not updated for longer is dropped. */
  readonly staleMs: number
  /** Estimated bytes of all streams' state at most; past it the least recently updated go first. */
  readonly stateBytesMax: number
}

export const deltaLimits: DeltaLimits = {
  streamsMax: Limits.otlpDeltaStreamsMax,
  staleMs: Limits.otlpDeltaStaleMs,
  stateBytesMax: Limits.otlpDeltaStateBytesMax
}

/** The running total of a stream: of a sum, of an explicit-bucket histogram, or of an exponential one (as a native histogram). */
type Total =
  | { readonly kind: "sum"; readonly value: number }
  | {
    readonly kind: "histogram"
    readonly bounds: ReadonlyArray<number>
    readonly counts: ReadonlyArray<number>
    readonly count: number
    readonly sum: number | undefined
  }
  | { readonly kind: "exponential"; readonly histogram: FloatHistogram }

/** A stream's state: its total and the time of its last point. */
interface StreamState {
  readonly lastMs: number
  readonly total: Total
}

interface Stream {
  readonly state: StreamState
  /** When (server time) the stream was last updated. */
  readonly updatedMs: number
  /** The estimated bytes it holds (see `estimateBytes`). */
  readonly bytes: number
}

/** About what a stream costs in memory: its key (UTF-16), its total, and a fixed overhead. */
const estimateBytes = (key: string, total: Total): number => {
  const fixed = 2 * key.length + 160
  switch (total.kind) {
    case "sum":
      return fixed
    case "histogram":
      return fixed + 16 * (total.bounds.length + total.counts.length)
    case "exponential": {
      const h = total.histogram
      return fixed + 8 * (h.positiveBuckets.length + h.negativeBuckets.length) + 24 * (h.positiveSpans.length + h.negativeSpans.length)
    }
  }
}

/**
 * The running totals of delta streams, for `convertDeltaToCumulative` (Prometheus's `otlp-deltatocumulative`,
 * which runs the OpenTelemetry Collector's `deltatocumulative` processor): one per stream, a stream being a
 * delta sum's or histogram's points of one resource, scope, metric and set of attributes. Held in memory
 * by one server process (lost on restart: the totals start again from zero, a counter reset to PromQL),
 * bounded: at most `streamsMax` streams and `stateBytesMax` estimated bytes (the least recently updated
 * dropped first), and a stream not updated for `staleMs` is dropped. A stream dropped starts again from
 * its next point.
 *
 * A translation reads and moves totals in a `DeltaBatch` of its own, kept (`commit`) once its series are
 * written; translations that share the streams must run one at a time (the HTTP handler holds a lock).
 */
export class DeltaStreams {
  readonly limits: DeltaLimits
  /** By key, least recently updated first (an update moves a stream to the end). */
  readonly #streams = new Map<string, Stream>()
  #bytes = 0

  constructor(limits: DeltaLimits = deltaLimits) {
    this.limits = limits
  }

  /** Streams held. */
  get size(): number {
    return this.#streams.size
  }

  /** Estimated bytes held. */
  get bytes(): number {
    return this.#bytes
  }

  /** A batch of updates at server time `nowMs`; the streams stale by then are dropped first. */
  begin(nowMs: number): DeltaBatch {
    this.#expire(nowMs)
    return new DeltaBatch(this, nowMs)
  }

  /** The state of a stream, unless it has none or it is stale at `nowMs`. */
  read(key: string, nowMs: number): StreamState | undefined {
    const s = this.#streams.get(key)
    return s === undefined || this.#stale(s, nowMs) ? undefined : s.state
  }

  /** Applies a batch's updates (undefined: the stream is gone), then the bounds. */
  apply(updates: ReadonlyMap<string, StreamState | undefined>, nowMs: number): void {
    for (const [key, state] of updates) {
      const old = this.#streams.get(key)
      if (old !== undefined) this.#drop(key, old)
      if (state === undefined) continue
      const stream: Stream = { state, updatedMs: nowMs, bytes: estimateBytes(key, state.total) }
      this.#streams.set(key, stream)
      this.#bytes += stream.bytes
    }
    this.#expire(nowMs)
    for (const [key, s] of this.#streams) {
      if (this.#streams.size <= this.limits.streamsMax && this.#bytes <= this.limits.stateBytesMax) break
      this.#drop(key, s)
    }
  }

  #stale(s: Stream, nowMs: number): boolean {
    return nowMs - s.updatedMs > this.limits.staleMs
  }

  #drop(key: string, s: Stream): void {
    this.#streams.delete(key)
    this.#bytes -= s.bytes
  }

  /** Drops the stale streams at the front (the least recently updated). */
  #expire(nowMs: number): void {
    for (const [key, s] of this.#streams) {
      if (!this.#stale(s, nowMs)) break
      this.#drop(key, s)
    }
  }
}

/** The updates of one translation to `DeltaStreams`, seen by its own later points, kept by `commit`. */
export class DeltaBatch {
  readonly #streams: DeltaStreams
  readonly #nowMs: number
  readonly #updates = new Map<string, StreamState | undefined>()

  constructor(streams: DeltaStreams, nowMs: number) {
    this.#streams = streams
    this.#nowMs = nowMs
  }

  get(key: string): StreamState | undefined {
    return this.#updates.has(key) ? this.#updates.get(key) : this.#streams.read(key, this.#nowMs)
  }

  set(key: string, state: StreamState | undefined): void {
    this.#updates.set(key, state)
  }

  commit(): void {
    this.#streams.apply(this.#updates, this.#nowMs)
    this.#updates.clear()
  }
}

/** Whether a request holds a delta sum, histogram or exponential histogram (then conversion needs the streams' lock). */
export const hasDelta = (request: MetricsRequest): boolean =>
  request.resources.some((r) =>
    r.scopes.some((s) =>
      s.metrics.some((m) => (m.kind === "sum" || m.kind === "histogram" || m.kind === "exponentialHistogram") && m.temporality === temporalityDelta)
    )
  )

/**
 * Whether a delta point continues its stream: its start time is the time of the stream's last point (the
 * OpenTelemetry data model's "aligns with the expected next-time window"), or it has none (0: statsd-like
 * deltas, which are all added). Another start time, later (a gap: the producer restarted, or a point was
 * lost) or earlier (an overlap), starts the total again from this point.
 */
const continues = (previous: StreamState, startMs: number | undefined): boolean => startMs === undefined || startMs === previous.lastMs

const sameBounds = (a: ReadonlyArray<number>, b: ReadonlyArray<number>) => a.length === b.length && a.every((x, i) => Object.is(x, b[i]))

const attributesKey = (attributes: ReadonlyArray<Attribute>): string =>
  JSON.stringify([...attributes].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).map((a) => [a.key, a.value]))

const outOfOrder = "delta data point not after the last one of its stream (out of order)"

/** Translates a decoded request; never throws (what it cannot translate is counted in `rejectedPoints`). */
export const translate = (
  request: MetricsRequest,
  settings: OtlpSettings,
  limits: TranslateLimits,
  /**
   * The delta streams and the server's time, to convert delta points when `convertDeltaToCumulative` is
   * on; without them delta points are refused.
   */
  deltas?: { readonly streams: DeltaStreams; readonly nowMs: number }
): Translated => {
  const series: Array<SeriesInput> = []
  const metadata = new Map<string, MetricMetadata>()
  const reasons = new Map<string, number>()
  const batch = deltas !== undefined && settings.convertDeltaToCumulative === true ? deltas.streams.begin(deltas.nowMs) : undefined
  let rejectedPoints = 0
  const reject = (reason: string, points: number) => {
    if (points === 0) return
    rejectedPoints += points
    reasons.set(reason, (reasons.get(reason) ?? 0) + points)
  }
  /** A sample; `startMs`: its point's start time (the TSDB keeps it when it keeps start timestamps). */
  const add = (labels: Labels, timeMs: number, value: number, exemplars?: ReadonlyArray<Exemplar>, startMs?: number) => {
    const sample = startMs === undefined ? { timestampMs: timeMs, value } : { timestampMs: timeMs, value, startTimestampMs: startMs }
    series.push(exemplars === undefined || exemplars.length === 0 ? { labels, samples: [sample] } : { labels, samples: [sample], exemplars })
  }

  for (const resource of request.resources) {
    const labeller = makeLabeller(resource.resource, settings, limits)
    let latestMs: number | undefined
    const seen = (t: number) => {
      if (latestMs === undefined || t > latestMs) latestMs = t
    }
    let resourceKey: string | undefined
    for (const scope of resource.scopes) {
      for (const m of scope.metrics) {
        const points = m.numberPoints.length + m.histogramPoints.length + m.summaryPoints.length + m.exponentialHistogramPoints.length
        const kind = nameKind(m)
        if (kind === undefined) continue // a metric without data
        /** The prefix of the keys of this metric's delta streams, when its points are converted. */
        let streamPrefix: string | undefined
        if ((m.kind === "sum" || m.kind === "histogram" || m.kind === "exponentialHistogram") && m.temporality !== temporalityCumulative) {
          if (batch === undefined || m.temporality !== temporalityDelta) {
            reject(
              m.temporality !== temporalityDelta && settings.convertDeltaToCumulative === true
                ? `invalid temporality and type combination for metric ${JSON.stringify(m.name)}: only cumulative and delta sums and histograms are accepted`
                : `invalid temporality and type combination for metric ${JSON.stringify(m.name)}: only cumulative sums and histograms are accepted (delta is not converted)`,
              points
            )
            continue
          }
          if (m.kind === "sum" && !m.monotonic) {
            // Its running total would be a gauge's level: after a restart or a dropped stream it would be
            // wrong, with nothing (no counter reset) to show it.
            reject(`delta non-monotonic sum (up-down counter) ${JSON.stringify(m.name)} is not converted: send it with cumulative temporality`, points)
            continue
          }
          resourceKey ??= attributesKey(resource.resource)
          streamPrefix = `${resourceKey}\u0001${JSON.stringify([scope.name, scope.version, m.name, m.unit, m.kind, m.monotonic])}\u0001`
        }
        const name = metricName(m.name, m.unit, kind, settings.translationStrategy)
        if (name === "") {
          reject(`metric name ${JSON.stringify(m.name)} leaves no valid Prometheus name`, points)
          continue
        }
        if (!metadata.has(name)) metadata.set(name, { metric: name, type: promType(kind), help: m.description, unit: unitName(m.unit) })
        const stale = (flags: number) => (flags & flagNoRecordedValue) !== 0
        const each = <P extends NumberPoint | HistogramPoint | SummaryPoint | ExponentialHistogramPoint>(ps: ReadonlyArray<P>, f: (p: P) => void) => {
          for (const p of ps) {
            try {
              f(p)
              seen(p.timeMs)
            } catch (e) {
              if (!(e instanceof Rejection)) throw e
              reject(`metric ${name}: ${e.message}`, 1)
            }
          }
        }
        /**
         * A delta point's stream: its key and state before the point; refused when the point is not after
         * the stream's last (out of order, or sent again).
         */
        const streamOf = (p: NumberPoint | HistogramPoint | ExponentialHistogramPoint) => {
          const key = streamPrefix + attributesKey(p.attributes)
          const previous = batch!.get(key)
          if (previous !== undefined && p.timeMs <= previous.lastMs) throw new Rejection(outOfOrder)
          return { key, previous: previous !== undefined && continues(previous, p.startTimeMs) ? previous : undefined }
        }
        each(m.numberPoints, (p) => {
          const labels = labeller.point(p.attributes)(name)
          if (streamPrefix === undefined || stale(p.flags)) {
            if (streamPrefix !== undefined) batch!.set(streamOf(p).key, undefined)
            // The stale NaN is passed on as it is (arithmetic or a reassigned variable may quiet its payload).
            add(labels, p.timeMs, stale(p.flags) ? staleNaN : p.value, p.exemplars.map(exemplarOf), stale(p.flags) ? undefined : p.startTimeMs)
            return
          }
          const { key, previous } = streamOf(p)
          const value = previous?.total.kind === "sum" ? previous.total.value + p.value : p.value
          batch!.set(key, { lastMs: p.timeMs, total: { kind: "sum", value } })
          add(labels, p.timeMs, value, p.exemplars.map(exemplarOf))
        })
        each(m.histogramPoints, (point) => {
          const st = stale(point.flags)
          const labels = labeller.point(point.attributes)
          let p: HistogramPoint = point
          let keep: (() => void) | undefined
          if (streamPrefix !== undefined) {
            const { key, previous } = streamOf(point)
            if (st) keep = () => batch!.set(key, undefined)
            else {
              const before = previous?.total
              const total = before?.kind === "histogram" && sameBounds(before.bounds, point.explicitBounds) && before.counts.length === point.bucketCounts.length
                ? {
                  kind: "histogram" as const,
                  bounds: before.bounds,
                  counts: before.counts.map((c, i) => c + point.bucketCounts[i]!),
                  count: before.count + point.count,
                  sum: before.sum !== undefined && point.sum !== undefined ? before.sum + point.sum : undefined
                }
                : { kind: "histogram" as const, bounds: point.explicitBounds, counts: point.bucketCounts, count: point.count, sum: point.sum }
              p = { ...point, count: total.count, sum: total.sum, bucketCounts: total.counts }
              keep = () => batch!.set(key, { lastMs: point.timeMs, total })
            }
          }
          const made: Array<[Labels, number, Array<Exemplar>?]> = []
          if (p.sum !== undefined) made.push([labels(`${name}_sum`), p.sum])
          made.push([labels(`${name}_count`), p.count])
          let cumulative = 0
          const n = Math.min(p.explicitBounds.length, p.bucketCounts.length)
          const firstBucket = made.length
          for (let i = 0; i < n; i++) {
            cumulative += p.bucketCounts[i]!
            made.push([labels(`${name}_bucket`, ["le", plainFloat(p.explicitBounds[i]!)]), cumulative])
          }
          made.push([labels(`${name}_bucket`, ["le", "+Inf"]), p.count])
          // Each exemplar goes with the bucket it falls in (the first bound at or above its value).
          for (const e of p.exemplars) {
            let i = 0
            while (i < n && e.value > p.explicitBounds[i]!) i++
            const bucket = made[firstBucket + i]!
            ;(bucket[2] ??= []).push(exemplarOf(e))
          }
          keep?.()
          // A converted delta's start is not the point's: only a cumulative point's start is passed on.
          const startMs = st || streamPrefix !== undefined ? undefined : point.startTimeMs
          for (const [labels, value, exemplars] of made) add(labels, p.timeMs, st ? staleNaN : value, exemplars, startMs)
        })
        each(m.summaryPoints, (p) => {
          const st = stale(p.flags)
          const labels = labeller.point(p.attributes)
          const made: Array<[Labels, number]> = [[labels(`${name}_sum`), p.sum], [labels(`${name}_count`), p.count]]
          for (const [q, v] of p.quantiles) made.push([labels(name, ["quantile", plainFloat(q)]), v])
          for (const [labels, value] of made) add(labels, p.timeMs, st ? staleNaN : value)
        })
        each(m.exponentialHistogramPoints, (p) => {
          let histogram = nativeHistogram(p, stale(p.flags))
          const labels = labeller.point(p.attributes)(name)
          if (streamPrefix !== undefined) {
            const { key, previous } = streamOf(p)
            if (stale(p.flags)) batch!.set(key, undefined)
            else {
              if (previous?.total.kind === "exponential") {
                const sum = previous.total.histogram.copy()
                sum.add(histogram)
                histogram = sum.compact(2)
              }
              batch!.set(key, { lastMs: p.timeMs, total: { kind: "exponential", histogram } })
              histogram = histogram.copy()
            }
          }
          const exemplars = p.exemplars.map(exemplarOf)
          const startMs = stale(p.flags) || streamPrefix !== undefined ? undefined : p.startTimeMs
          const histograms = [startMs === undefined ? { timestampMs: p.timeMs, histogram } : { timestampMs: p.timeMs, histogram, startTimestampMs: startMs }]
          series.push(exemplars.length === 0 ? { labels, samples: [], histograms } : { labels, samples: [], histograms, exemplars })
        })
      }
    }
    if (latestMs !== undefined) {
      try {
        const info = labeller.targetInfo()
        if (info !== undefined) {
          add(info, latestMs, 1)
          if (!metadata.has("target_info")) metadata.set("target_info", { metric: "target_info", type: "gauge", help: "Target metadata", unit: "" })
        }
      } catch (e) {
        if (!(e instanceof Rejection)) throw e
        reject(`target_info: ${e.message}`, 0)
      }
    }
  }
  return {
    series,
    metadata: [...metadata.values()],
    rejectedPoints,
    reasons: [...reasons].map(([reason, n]) => `${reason} (${n} data point${n === 1 ? "" : "s"})`),
    commit: () => batch?.commit()
  }
}
