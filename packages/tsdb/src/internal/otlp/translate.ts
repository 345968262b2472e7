/**
 * OTLP metrics to Prometheus series, as Prometheus 3's OTLP receiver translates them (the OpenTelemetry
 * "Prometheus and OpenMetrics compatibility" specification):
 *
 * - metric names: characters outside `[a-zA-Z0-9:]` split the name into words joined by `_`; with suffixes
 *   (the default strategy, `UnderscoreEscapingWithSuffixes`) the unit is appended in Prometheus's words
 *   (`s` -> `seconds`, `By` -> `bytes`, `By/s` -> `bytes_per_second`, annotations in `{}` dropped) unless a
 *   word of the name already says it, monotonic sums end in `_total` and gauges of unit `1` in `_ratio`;
 * - attribute names: characters outside `[a-zA-Z0-9]` become `_` (runs collapsed), a leading digit gets
 *   `key_`; attributes that collide after that join their values with `;`;
 * - resource: `service.namespace`/`service.name` become `job`, `service.instance.id` `instance` (on every
 *   series); the other resource attributes go to one `target_info` series (value 1), and those named in
 *   `promoteResourceAttributes` onto every series as well;
 * - gauges and non-monotonic sums are gauges, monotonic sums counters; histograms become `_bucket{le}`
 *   (cumulative), `_sum` and `_count`; summaries `{quantile}`, `_sum` and `_count`; exponential histograms
 *   one native histogram series each (see `nativeHistogram`); a point flagged "no recorded value" is a
 *   staleness marker on each of its series;
 * - delta (or unspecified) temporality of sums, histograms and exponential histograms is refused, point by
 *   point, with a reason, and so are exponential histograms Prometheus cannot hold (scale below -4, buckets
 *   that do not add up to the count): the rest of the request is written.
 */
import { Buffer } from "node:buffer"
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
import { flagNoRecordedValue, temporalityCumulative } from "./decode.ts"

export type TranslationStrategy = "UnderscoreEscapingWithSuffixes" | "UnderscoreEscapingWithoutSuffixes"
export const translationStrategies: ReadonlyArray<TranslationStrategy> = ["UnderscoreEscapingWithSuffixes", "UnderscoreEscapingWithoutSuffixes"]

export interface OtlpSettings {
  readonly translationStrategy: TranslationStrategy
  /** Resource attributes copied onto every series of their resource (as well as onto `target_info`). */
  readonly promoteResourceAttributes: ReadonlyArray<string>
  /** Keep `service.name`, `service.namespace` and `service.instance.id` on `target_info` too. */
  readonly keepIdentifyingResourceAttributes: boolean
}

export const defaultSettings: OtlpSettings = {
  translationStrategy: "UnderscoreEscapingWithSuffixes",
  promoteResourceAttributes: [],
  keepIdentifyingResourceAttributes: false
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

/** The Prometheus metric name of an OTLP metric; "" when nothing of it is left. */
export const metricName = (name: string, unit: string, kind: NameKind, strategy: TranslationStrategy): string => {
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

/** The Prometheus label name of an attribute; "" when it would be only underscores. */
export const labelName = (key: string): string => {
  if (key === "") return ""
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

  /** Attributes to labels: sanitized names, colliding values joined with `;` (in key order). */
  const merge = (into: Map<string, string>, attributes: ReadonlyArray<Attribute>) => {
    const sorted = [...attributes].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    for (const a of sorted) {
      const name = labelName(a.key)
      if (name === "") throw new Rejection(`attribute ${JSON.stringify(a.key)} has no valid label name`)
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
    const own = new Set(attributes.map((a) => labelName(a.key)))
    merge(map, promoted.filter((a) => !own.has(labelName(a.key))))
    merge(map, attributes)
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

/** Translates a decoded request; never throws (what it cannot translate is counted in `rejectedPoints`). */
export const translate = (request: MetricsRequest, settings: OtlpSettings, limits: TranslateLimits): Translated => {
  const series: Array<SeriesInput> = []
  const metadata = new Map<string, MetricMetadata>()
  const reasons = new Map<string, number>()
  let rejectedPoints = 0
  const reject = (reason: string, points: number) => {
    if (points === 0) return
    rejectedPoints += points
    reasons.set(reason, (reasons.get(reason) ?? 0) + points)
  }
  const add = (labels: Labels, timeMs: number, value: number, exemplars?: ReadonlyArray<Exemplar>) =>
    series.push(
      exemplars === undefined || exemplars.length === 0
        ? { labels, samples: [{ timestampMs: timeMs, value }] }
        : { labels, samples: [{ timestampMs: timeMs, value }], exemplars }
    )

  for (const resource of request.resources) {
    const labeller = makeLabeller(resource.resource, settings, limits)
    let latestMs: number | undefined
    const seen = (t: number) => {
      if (latestMs === undefined || t > latestMs) latestMs = t
    }
    for (const scope of resource.scopes) {
      for (const m of scope.metrics) {
        const points = m.numberPoints.length + m.histogramPoints.length + m.summaryPoints.length + m.exponentialHistogramPoints.length
        const kind = nameKind(m)
        if (kind === undefined) continue // a metric without data
        if ((m.kind === "sum" || m.kind === "histogram" || m.kind === "exponentialHistogram") && m.temporality !== temporalityCumulative) {
          reject(
            `invalid temporality and type combination for metric ${JSON.stringify(m.name)}: only cumulative sums and histograms are accepted (delta is not converted)`,
            points
          )
          continue
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
        each(m.numberPoints, (p) =>
          add(labeller.point(p.attributes)(name), p.timeMs, stale(p.flags) ? staleNaN : p.value, p.exemplars.map(exemplarOf)))
        each(m.histogramPoints, (p) => {
          const st = stale(p.flags)
          const labels = labeller.point(p.attributes)
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
          for (const [labels, value, exemplars] of made) add(labels, p.timeMs, st ? staleNaN : value, exemplars)
        })
        each(m.summaryPoints, (p) => {
          const st = stale(p.flags)
          const labels = labeller.point(p.attributes)
          const made: Array<[Labels, number]> = [[labels(`${name}_sum`), p.sum], [labels(`${name}_count`), p.count]]
          for (const [q, v] of p.quantiles) made.push([labels(name, ["quantile", plainFloat(q)]), v])
          for (const [labels, value] of made) add(labels, p.timeMs, st ? staleNaN : value)
        })
        each(m.exponentialHistogramPoints, (p) => {
          const histogram = nativeHistogram(p, stale(p.flags))
          const labels = labeller.point(p.attributes)(name)
          const exemplars = p.exemplars.map(exemplarOf)
          const histograms = [{ timestampMs: p.timeMs, histogram }]
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
    reasons: [...reasons].map(([reason, n]) => `${reason} (${n} data point${n === 1 ? "" : "s"})`)
  }
}
