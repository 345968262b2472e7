/**
 * Native histograms: Prometheus's `FloatHistogram` value type and its arithmetic, with Prometheus 3.x
 * semantics (model/histogram/float_histogram.go and generic.go).
 *
 * A histogram has an exponential schema (-4..8: bucket boundaries are powers of 2^(2^-schema), with a
 * zero bucket of width `zeroThreshold` around 0) or the custom-buckets schema -53 (NHCB: upper bounds in
 * `customValues`, the +Inf bucket implied). Buckets are sparse: `spans` give runs of consecutive bucket
 * indices (the first span's offset is absolute, later offsets are gaps after the previous span), and
 * the bucket arrays hold one absolute float count per bucket the spans cover.
 *
 * Mutating operations work in place like their Go counterparts (`add`, `sub`, `kahanAdd`, `mul`, `div`,
 * `compact`, `reduceResolution`, `trimBuckets`); the span layouts they produce are Prometheus's, bucket
 * for bucket, because PromQL results and the promqltest comparison depend on them. Also here: bucket
 * listings with bounds (the Go iterators as arrays), and the promqltest `{{...}}` notation both ways.
 */

import { formatG } from "../internal/goString.ts"

export type CounterResetHint = "unknown" | "reset" | "not_reset" | "gauge"

/** A run of `length` consecutive buckets, `offset` indices after the previous run (absolute for the first). */
export interface Span {
  offset: number
  length: number
}

/** A bucket with its bounds; `index` is its index in the schema (irrelevant for the zero bucket). */
export interface Bucket {
  lower: number
  upper: number
  lowerInclusive: boolean
  upperInclusive: boolean
  count: number
  index: number
}

export const customBucketsSchema = -53

const isExponential = (schema: number): boolean => schema >= -4 && schema <= 8

/**
 * Thrown by `add`, `sub` and `kahanAdd` when the two histograms cannot be combined: one has custom buckets,
 * the other exponential ones. (Prometheus 3 reconciles differing custom bounds instead of failing, so
 * "incompatible_custom_bounds", the error of earlier versions, is not thrown here.)
 */
export class HistogramError extends Error {
  override readonly name = "HistogramError"
  readonly reason: "mixed_exponential_custom" | "incompatible_custom_bounds"
  constructor(reason: "mixed_exponential_custom" | "incompatible_custom_bounds") {
    super(
      reason === "mixed_exponential_custom"
        ? "cannot apply this operation on histograms with a mix of exponential and custom bucket schemas"
        : "cannot apply this operation on custom buckets histograms with different custom bounds"
    )
    this.reason = reason
  }
}

// -------------------------------------------------------------------------------------------------
// Numbers
// -------------------------------------------------------------------------------------------------

/** One Kahan-Neumaier step: adds `inc` to `sum` with compensation `c` (Prometheus's kahansum.Inc). */
const kahanInc = (inc: number, sum: number, c: number): [number, number] => {
  const t = sum + inc
  if (t === Infinity || t === -Infinity) return [t, 0]
  return [t, c + (Math.abs(sum) >= Math.abs(inc) ? sum - t + inc : inc - t + sum)]
}

const bits = new Float64Array(1)
const words = new Uint32Array(bits.buffer)
/** Bit-level float equality (Go's math.Float64bits comparison): NaN equals a NaN of the same bits, 0 ≠ -0. */
const sameBits = (a: number, b: number): boolean => {
  bits[0] = a
  const [lo, hi] = [words[0], words[1]]
  bits[0] = b
  return lo === words[0] && hi === words[1]
}

const sameValues = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): boolean =>
  a.length === b.length && a.every((v, i) => v === b[i])

/** frac·2^exp for frac in [0.5, 1), rounded once even where the result is subnormal or overflows. */
const ldexp = (frac: number, exp: number): number =>
  exp > 1023 ? frac * 2 ** 1023 * 2 ** (exp - 1023) : exp < -1021 ? frac * 2 ** (exp + 64) * 2 ** -64 : frac * 2 ** exp

/**
 * Fractions in [0.5, 1) of the bucket boundaries in schema 8 (entry i is about 2^(i/256 - 1)): Prometheus's
 * precomputed table, kept bit for bit. Schema s < 8 uses every 2^(8-s)-th entry.
 */
// prettier-ignore
const boundFractions = [
  0.5, 0.5013556375251013, 0.5027149505564014, 0.5040779490592088, 0.5054446430258502, 0.5068150424757447,
  0.5081891574554764, 0.509566998038869, 0.5109485743270583, 0.5123338964485679, 0.5137229745593818, 0.5151158188430205,
  0.5165124395106142, 0.5179128468009786, 0.5193170509806894, 0.520725062344158, 0.5221368912137069, 0.5235525479396449,
  0.5249720429003435, 0.526395386502313, 0.5278225891802786, 0.5292536613972564, 0.5306886136446309, 0.5321274564422321,
  0.5335702003384117, 0.5350168559101208, 0.5364674337629877, 0.5379219445313954, 0.5393803988785598, 0.5408428074966075,
  0.5423091811066545, 0.5437795304588847, 0.5452538663326288, 0.5467321995364429, 0.5482145409081883, 0.549700901315111,
  0.5511912916539204, 0.5526857228508706, 0.5541842058618393, 0.5556867516724088, 0.5571933712979462, 0.5587040757836845,
  0.5602188762048033, 0.5617377836665098, 0.5632608093041209, 0.564787964283144, 0.5663192597993595, 0.5678547070789026,
  0.5693943173783458, 0.5709381019847808, 0.572486072215902, 0.5740382394200894, 0.5755946149764913, 0.5771552102951081,
  0.5787200368168754, 0.5802891060137493, 0.5818624293887887, 0.5834400184762408, 0.585021884841625, 0.5866080400818185,
  0.5881984958251406, 0.5897932637314379, 0.5913923554921704, 0.5929957828304968, 0.5946035575013605, 0.5962156912915756,
  0.5978321960199137, 0.5994530835371903, 0.6010783657263515, 0.6027080545025619, 0.6043421618132907, 0.6059806996384005,
  0.6076236799902344, 0.6092711149137041, 0.6109230164863786, 0.6125793968185725, 0.6142402680534349, 0.6159056423670379,
  0.6175755319684665, 0.6192499490999082, 0.620928906036742, 0.622612415087629, 0.6243004885946023, 0.6259931389331581,
  0.6276903785123455, 0.6293922197748583, 0.6310986751971253, 0.6328097572894031, 0.6345254785958666, 0.6362458516947014,
  0.637970889198196, 0.6397006037528346, 0.6414350080393891, 0.6431741147730128, 0.6449179367033329, 0.6466664866145447,
  0.6484197773255048, 0.6501778216898253, 0.6519406325959679, 0.6537082229673385, 0.6554806057623822, 0.6572577939746774,
  0.659039800633032, 0.6608266388015788, 0.6626183215798706, 0.6644148621029772, 0.6662162735415805, 0.6680225691020727,
  0.6698337620266515, 0.6716498655934177, 0.6734708931164728, 0.6752968579460171, 0.6771277734684463, 0.6789636531064505,
  0.6808045103191123, 0.6826503586020058, 0.6845012114872953, 0.6863570825438342, 0.688217985377265, 0.690083933630119,
  0.6919549409819159, 0.6938310211492645, 0.6957121878859629, 0.6975984549830999, 0.6994898362691555, 0.7013863456101023,
  0.7032879969095076, 0.7051948041086352, 0.7071067811865475, 0.7090239421602076, 0.7109463010845827, 0.7128738720527471,
  0.7148066691959849, 0.7167447066838943, 0.718687998724491, 0.7206365595643126, 0.7225904034885232, 0.7245495448210174,
  0.7265139979245261, 0.7284837772007218, 0.7304588970903234, 0.7324393720732029, 0.7344252166684908, 0.7364164454346837,
  0.7384130729697496, 0.7404151139112358, 0.7424225829363761, 0.7444354947621984, 0.7464538641456323, 0.7484777058836176,
  0.7505070348132126, 0.7525418658117031, 0.7545822137967112, 0.7566280937263048, 0.7586795205991071, 0.7607365094544071,
  0.762799075372269, 0.7648672334736434, 0.7669409989204777, 0.7690203869158282, 0.7711054127039704, 0.7731960915705107,
  0.7752924388424999, 0.7773944698885442, 0.7795022001189185, 0.7816156449856788, 0.7837348199827764, 0.7858597406461707,
  0.7879904225539431, 0.7901268813264122, 0.7922691326262467, 0.7944171921585818, 0.7965710756711334, 0.7987307989543135,
  0.8008963778413465, 0.8030678282083853, 0.805245165974627, 0.8074284071024302, 0.8096175675974316, 0.8118126635086642,
  0.8140137109286738, 0.8162207259936375, 0.8184337248834821, 0.820652723822003, 0.8228777390769823, 0.8251087869603088,
  0.8273458838280969, 0.8295890460808079, 0.8318382901633681, 0.8340936325652911, 0.8363550898207981, 0.8386226785089391,
  0.8408964152537144, 0.8431763167241966, 0.8454623996346523, 0.8477546807446661, 0.8500531768592616, 0.8523579048290255,
  0.8546688815502312, 0.8569861239649629, 0.8593096490612387, 0.8616394738731368, 0.8639756154809185, 0.8663180910111553,
  0.8686669176368529, 0.871022112577578, 0.8733836930995842, 0.8757516765159389, 0.8781260801866495, 0.8805069215187917,
  0.8828942179666361, 0.8852879870317771, 0.8876882462632604, 0.890095013257712, 0.8925083056594671, 0.8949281411607002,
  0.8973545375015533, 0.8997875124702672, 0.9022270839033115, 0.9046732696855155, 0.9071260877501991, 0.909585556079304,
  0.9120516927035263, 0.9145245157024483, 0.9170040432046711, 0.9194902933879467, 0.9219832844793128, 0.9244830347552253,
  0.9269895625416926, 0.92950288621441, 0.9320230241988943, 0.9345499949706191, 0.9370838170551498, 0.93962450902828,
  0.9421720895161669, 0.9447265771954693, 0.9472879907934827, 0.9498563490882775, 0.9524316709088368, 0.9550139751351947,
  0.9576032806985735, 0.9601996065815236, 0.9628029718180622, 0.9654133954938133, 0.9680308967461471, 0.9706554947643201,
  0.9732872087896164, 0.9759260581154889, 0.9785720620876999, 0.9812252401044634, 0.9838856116165875, 0.9865531961276168,
  0.9892280131939752, 0.9919100824251095, 0.9945994234836328, 0.9972960560854698,
]

/**
 * The upper bound of bucket `index` (Prometheus's getBound): for exponential schemas the boundary
 * 2^(index·2^-schema), with the last finite bucket ending at the largest float; for schema -53 the custom
 * bound (`-Inf` for index -1, `+Inf` for the implied last bucket).
 */
export const bucketUpperBound = (schema: number, index: number, customValues?: ReadonlyArray<number>): number => {
  if (schema === customBucketsSchema) {
    if (customValues === undefined) throw new Error("custom buckets need their custom values")
    if (index < -1 || index > customValues.length) {
      throw new RangeError(`index ${index} out of bounds for custom bounds of length ${customValues.length}`)
    }
    return index === -1 ? -Infinity : (customValues[index] ?? Infinity)
  }
  if (schema < 0) {
    const exp = index * 2 ** -schema
    return exp === 1024 ? Number.MAX_VALUE : 2 ** exp
  }
  if (schema > 8) throw new RangeError(`invalid histogram schema ${schema}`)
  const frac = boundFractions[(index & ((1 << schema) - 1)) << (8 - schema)]!
  const exp = (index >> schema) + 1
  return frac === 0.5 && exp === 1025 ? Number.MAX_VALUE : ldexp(frac, exp)
}

/** The index in `to` (≤ `from`) of the bucket that bucket `index` of schema `from` falls into. */
const targetIndex = (index: number, from: number, to: number): number => ((index - 1) >> (from - to)) + 1

// -------------------------------------------------------------------------------------------------
// Spans and bucket layouts
// -------------------------------------------------------------------------------------------------

/** A span with its absolute first index. */
interface Run {
  start: number
  length: number
}

const toRuns = (spans: ReadonlyArray<Span>): Array<Run> => {
  let end = 0
  return spans.map((s) => {
    const start = end + s.offset
    end = start + s.length
    return { start, length: s.length }
  })
}

const toSpans = (runs: ReadonlyArray<Run>): Array<Span> => {
  let end = 0
  return runs.map((r) => {
    const offset = r.start - end
    end = r.start + r.length
    return { offset, length: r.length }
  })
}

/** The bucket index of each bucket the spans cover, in order. */
const bucketIndices = (spans: ReadonlyArray<Span>): Array<number> => {
  const out: Array<number> = []
  for (const r of toRuns(spans)) for (let i = 0; i < r.length; i++) out.push(r.start + i)
  return out
}

/** Appends bucket `index` (above every index so far) to `runs`, starting a new run unless it is adjacent. */
const pushIndex = (runs: Array<Run>, index: number): void => {
  const last = runs.at(-1)
  if (last !== undefined && last.start + last.length === index) last.length++
  else runs.push({ start: index, length: 1 })
}

const copySpans = (spans: ReadonlyArray<Span>): Array<Span> => spans.map((s) => ({ ...s }))

/**
 * Spans equal but for zero-length spans, which only shift the next span (Prometheus's spansMatch, used by
 * `equals` and by promqltest's comparison): adjacent spans with offset 0 do not match a merged span.
 */
export const spansMatch = (a: ReadonlyArray<Span>, b: ReadonlyArray<Span>): boolean => {
  const normal = (spans: ReadonlyArray<Span>): Array<Span> => {
    const out: Array<Span> = []
    let shift = 0
    for (const s of spans) {
      if (s.length === 0) shift += s.offset
      else {
        out.push({ offset: s.offset + shift, length: s.length })
        shift = 0
      }
    }
    return out
  }
  const [x, y] = [normal(a), normal(b)]
  return x.length === y.length && x.every((s, i) => s.offset === y[i]!.offset && s.length === y[i]!.length)
}

/** One side (positive or negative) of a histogram, with optional Kahan compensation per bucket. */
interface Side {
  spans: Array<Span>
  buckets: Array<number>
  comp?: Array<number> | undefined
}

/**
 * Merges the buckets of `b` into (a copy of) `a`, as Prometheus's addBuckets: a bucket of `b` missing in
 * `a` extends the span it directly follows, else the span it directly precedes, else gets a new span, so
 * `a`'s layout otherwise survives (empty buckets, adjacent spans). For exponential schemas, the lowest
 * buckets of `b` with an upper bound ≤ `threshold` are skipped (they are in the zero bucket). With
 * compensation in `a` the sums are Kahan sums.
 */
const mergeSide = (schema: number, threshold: number, negate: boolean, a: Side, b: Side): Side => {
  const runs = toRuns(a.spans)
  const buckets = [...a.buckets]
  const comp = a.comp && [...a.comp]
  const indices = bucketIndices(b.spans)
  let skipping = isExponential(schema)
  for (let j = 0; j < indices.length && j < b.buckets.length; j++) {
    const at = indices[j]!
    if (skipping && bucketUpperBound(schema, at) <= threshold) continue
    skipping = false
    const v = negate ? -b.buckets[j]! : b.buckets[j]!
    const cv = negate ? -(b.comp?.[j] ?? 0) : (b.comp?.[j] ?? 0)
    let k = 0
    let pos = 0
    for (; k < runs.length && runs[k]!.start <= at; k++) {
      if (at < runs[k]!.start + runs[k]!.length) break
      pos += runs[k]!.length
    }
    const next = runs[k]
    if (next !== undefined && next.start <= at) {
      const p = pos + at - next.start
      if (comp === undefined) buckets[p] = buckets[p]! + v
      else {
        ;[buckets[p], comp[p]] = kahanInc(v, buckets[p]!, comp[p]!)
        if (cv !== 0) [buckets[p], comp[p]] = kahanInc(cv, buckets[p]!, comp[p]!)
      }
      continue
    }
    buckets.splice(pos, 0, v)
    comp?.splice(pos, 0, cv)
    const prev = runs[k - 1]
    if (prev !== undefined && prev.start + prev.length === at) prev.length++
    else if (next !== undefined && next.start === at + 1) {
      next.start--
      next.length++
    } else runs.splice(k, 0, { start: at, length: 1 })
  }
  return { spans: toSpans(runs), buckets, comp }
}

/**
 * The side in the lower-resolution schema `to` (Prometheus's reduceResolution): buckets falling into the
 * same target bucket are summed (Kahan sums when `comp` is given); empty buckets stay. Throws on a layout
 * that does not fit the buckets.
 */
const reduceSide = (side: Side, from: number, to: number): Side => {
  const mismatch = "histogram spans specify different number of buckets than provided"
  let needed = 0
  side.spans.forEach((s, n) => {
    if (n > 0 && s.offset < 0) throw new Error(`span number ${n + 1} with offset ${s.offset}: histogram has a span whose offset is negative`)
    needed += s.length
    if (needed > side.buckets.length) throw new Error(`have ${side.buckets.length} buckets but spans need more: ${mismatch}`)
  })
  if (needed !== side.buckets.length) throw new Error(`spans need ${needed} buckets, have ${side.buckets.length} buckets: ${mismatch}`)
  const indices = bucketIndices(side.spans)
  const { buckets: src, comp: srcComp } = side
  const runs: Array<Run> = []
  const buckets: Array<number> = []
  const comp: Array<number> = []
  let last = 0
  indices.forEach((index, i) => {
    const t = targetIndex(index, from, to)
    const k = buckets.length - 1
    if (k >= 0 && t === last) {
      if (srcComp === undefined) buckets[k] = buckets[k]! + src[i]!
      else {
        ;[buckets[k], comp[k]] = kahanInc(src[i]!, buckets[k]!, comp[k]!)
        ;[buckets[k], comp[k]] = kahanInc(srcComp[i]!, buckets[k]!, comp[k]!)
      }
    } else if (k < 0 || t > last) {
      pushIndex(runs, t)
      buckets.push(src[i]!)
      comp.push(srcComp?.[i] ?? 0)
      last = t
    }
  })
  return { spans: toSpans(runs), buckets, comp: srcComp && comp }
}

/**
 * Compaction (Prometheus's compactBuckets): keeps the non-empty buckets (a bucket is empty when its count
 * and compensation are 0), in one span while at most `maxEmpty` empty buckets separate them.
 */
const compactSide = (side: Side, maxEmpty: number): Side => {
  const indices = bucketIndices(side.spans)
  const runs: Array<Run> = []
  const buckets: Array<number> = []
  const comp: Array<number> = []
  for (let i = 0; i < indices.length && i < side.buckets.length; i++) {
    const [v, c] = [side.buckets[i]!, side.comp?.[i] ?? 0]
    if (v === 0 && c === 0) continue
    const at = indices[i]!
    const last = runs.at(-1)
    if (last !== undefined && at - (last.start + last.length) <= maxEmpty) {
      for (let gap = at - (last.start + last.length); gap > 0; gap--) {
        buckets.push(0)
        comp.push(0)
      }
      last.length = at - last.start + 1
    } else runs.push({ start: at, length: 1 })
    buckets.push(v)
    comp.push(c)
  }
  return { spans: toSpans(runs), buckets, comp: side.comp && comp }
}

/** The common bounds of two custom-bucket layouts. */
const intersectBounds = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): Array<number> => {
  const inB = new Set(b)
  return a.filter((x) => inB.has(x))
}

/** For each custom bucket (by index), the bucket of the coarser `target` layout it falls into. */
const customTarget = (bounds: ReadonlyArray<number>, target: ReadonlyArray<number>) => (index: number): number => {
  const t = index < bounds.length ? target.findIndex((x) => x >= bounds[index]!) : -1
  return t < 0 ? target.length : t
}

/**
 * Adds (or subtracts) custom-bucket sides with different bounds in the layout of the common bounds
 * (Prometheus's addCustomBucketsWithMismatches): each bucket goes to the first common bound at or above
 * its own; the result keeps only buckets that are not 0.
 */
const mergeCustomSides = (
  negate: boolean,
  a: Side & { bounds: ReadonlyArray<number> },
  b: Side & { bounds: ReadonlyArray<number> },
  target: ReadonlyArray<number>
): Side => {
  const sums = new Array<number>(target.length + 1).fill(0)
  const comps = new Array<number>(target.length + 1).fill(0)
  const put = (side: Side & { bounds: ReadonlyArray<number> }, sign: number): void => {
    const to = customTarget(side.bounds, target)
    bucketIndices(side.spans).forEach((index, i) => {
      if (i >= side.buckets.length) return
      const t = to(index)
      ;[sums[t], comps[t]] = kahanInc(sign * side.buckets[i]!, sums[t]!, comps[t]!)
      if (side.comp !== undefined) [sums[t], comps[t]] = kahanInc(side.comp[i]!, sums[t]!, comps[t]!)
    })
  }
  put(a, 1)
  put({ ...b, comp: undefined }, negate ? -1 : 1)
  const runs: Array<Run> = []
  const buckets: Array<number> = []
  const comp: Array<number> = []
  sums.forEach((v, t) => {
    if (v === 0 && comps[t] === 0) return
    pushIndex(runs, t)
    buckets.push(v)
    comp.push(comps[t]!)
  })
  return { spans: toSpans(runs), buckets, comp }
}

// -------------------------------------------------------------------------------------------------
// Bucket listings
// -------------------------------------------------------------------------------------------------

const bucketAt = (h: FloatHistogram, positive: boolean, index: number, count: number): Bucket => {
  const custom = h.usesCustomBuckets()
  const cv = positive ? h.customValues : undefined
  const [lo, hi] = [bucketUpperBound(h.schema, index - 1, cv), bucketUpperBound(h.schema, index, cv)]
  const [lower, upper] = positive ? [lo, hi] : [-hi, -lo]
  return {
    lower,
    upper,
    lowerInclusive: custom ? index === 0 : lower < 0,
    upperInclusive: custom ? true : upper > 0,
    count,
    index
  }
}

const sideBuckets = (h: FloatHistogram, positive: boolean): Array<Bucket> => {
  const [spans, counts] = positive ? [h.positiveSpans, h.positiveBuckets] : [h.negativeSpans, h.negativeBuckets]
  return bucketIndices(spans)
    .slice(0, counts.length)
    .map((index, i) => bucketAt(h, positive, index, counts[i]!))
}

/** The positive buckets, empty ones included, from the zero bucket upwards (PositiveBucketIterator). */
export const positiveBuckets = (h: FloatHistogram): Array<Bucket> => sideBuckets(h, true)

/** The negative buckets, empty ones included, from the zero bucket downwards (NegativeBucketIterator). */
export const negativeBuckets = (h: FloatHistogram): Array<Bucket> => sideBuckets(h, false)

/** The zero bucket [-zeroThreshold, zeroThreshold]. */
const zeroBucket = (h: FloatHistogram): Bucket => ({
  lower: -h.zeroThreshold,
  upper: h.zeroThreshold,
  lowerInclusive: true,
  upperInclusive: true,
  count: h.zeroCount,
  index: 0
})

/**
 * All buckets in ascending order (AllBucketIterator): negative buckets (highest index first), the zero
 * bucket when its count is > 0, positive buckets. A bucket overlapping the zero bucket is cut at the
 * zero threshold.
 */
export const allBuckets = (h: FloatHistogram): Array<Bucket> => {
  const zt = h.zeroThreshold
  const clamp = (b: Bucket): Bucket => {
    if (b.upper < 0 && b.upper > -zt) return { ...b, upper: -zt }
    if (b.lower > 0 && b.lower < zt) return { ...b, lower: zt }
    return b
  }
  const zero = h.zeroCount > 0 && !h.usesCustomBuckets() ? [zeroBucket(h)] : []
  return [...negativeBuckets(h).reverse().map(clamp), ...zero, ...positiveBuckets(h).map(clamp)]
}

/**
 * The buckets of one side as (index, count) in the schema `to` ≤ the histogram's (merged as Prometheus's
 * floatBucketIterator does), leaving out, for exponential schemas, the lowest buckets whose upper bound
 * is ≤ `above`.
 */
const strippedBuckets = (h: FloatHistogram, positive: boolean, to: number, above: number) => {
  const [spans, counts] = positive ? [h.positiveSpans, h.positiveBuckets] : [h.negativeSpans, h.negativeBuckets]
  const out: Array<{ index: number; count: number }> = []
  bucketIndices(spans)
    .slice(0, counts.length)
    .forEach((index, i) => {
      const t = targetIndex(index, h.schema, to)
      const last = out.at(-1)
      if (last !== undefined && last.index === t) last.count += counts[i]!
      else out.push({ index: t, count: counts[i]! })
    })
  if (!isExponential(to)) return out
  const first = out.findIndex((b) => bucketUpperBound(to, b.index) > above)
  return first < 0 ? [] : out.slice(first)
}

// -------------------------------------------------------------------------------------------------
// Zero buckets
// -------------------------------------------------------------------------------------------------

/**
 * The zero count `h` would have with the (larger or equal) zero threshold `larger`, with the Kahan
 * compensation of that sum (starting from `c`'s). A threshold inside a populated bucket is raised to that
 * bucket's far bound, which is returned as the threshold.
 */
const zeroCountAbove = (h: FloatHistogram, larger: number, c?: FloatHistogram) => {
  if (larger === h.zeroThreshold) return { count: h.zeroCount, threshold: larger, comp: c?.zeroCount ?? 0 }
  if (larger < h.zeroThreshold) throw new Error(`new threshold ${larger} is less than old threshold ${h.zeroThreshold}`)
  const [pos, neg] = [positiveBuckets(h), negativeBuckets(h)]
  for (;;) {
    let count = h.zeroCount
    let comp = c?.zeroCount ?? 0
    const take = (b: Bucket, i: number, compensation: ReadonlyArray<number> | undefined): void => {
      ;[count, comp] = kahanInc(b.count, count, comp)
      if (compensation !== undefined) [count, comp] = kahanInc(compensation[i]!, count, comp)
    }
    for (const [i, b] of pos.entries()) {
      if (b.lower >= larger) break
      take(b, i, c?.positiveBuckets)
      if (b.upper > larger) {
        if (b.count !== 0) larger = b.upper
        break
      }
    }
    let again = false
    for (const [i, b] of neg.entries()) {
      if (b.upper <= -larger) break
      take(b, i, c?.negativeBuckets)
      if (b.lower < -larger) {
        if (b.count !== 0) {
          larger = -b.lower
          again = true
        }
        break
      }
    }
    if (!again) return { count, threshold: larger, comp }
  }
}

/**
 * Widens the zero bucket of `h` or reckons that of `other` (left as is) until both have the same
 * threshold, not inside a populated bucket of either (Prometheus's reconcileZeroBuckets). Buckets of `h`
 * now inside its zero bucket are emptied and `h` is compacted. Returns `other`'s zero count for the
 * common threshold and its Kahan compensation.
 */
const reconcileZeroBuckets = (h: FloatHistogram, other: FloatHistogram, c: FloatHistogram | undefined): [number, number] => {
  let [otherCount, otherThreshold, otherComp] = [other.zeroCount, other.zeroThreshold, 0]
  while (otherThreshold !== h.zeroThreshold) {
    if (h.zeroThreshold > otherThreshold) {
      ;({ count: otherCount, threshold: otherThreshold, comp: otherComp } = zeroCountAbove(other, h.zeroThreshold))
    }
    if (otherThreshold > h.zeroThreshold) {
      const r = zeroCountAbove(h, otherThreshold, c)
      h.zeroCount = r.count
      h.zeroThreshold = r.threshold
      if (c !== undefined) c.zeroCount = r.comp
      emptyBucketsInZeroBucket(h, c)
    }
  }
  return [otherCount, otherComp]
}

/** Empties the buckets inside the zero bucket (their counts are already in the zero count), then compacts. */
const emptyBucketsInZeroBucket = (h: FloatHistogram, c: FloatHistogram | undefined): void => {
  for (const [i, b] of positiveBuckets(h).entries()) {
    if (b.lower >= h.zeroThreshold) break
    h.positiveBuckets[i] = 0
    if (c !== undefined) c.positiveBuckets[i] = 0
  }
  for (const [i, b] of negativeBuckets(h).entries()) {
    if (b.upper <= -h.zeroThreshold) break
    h.negativeBuckets[i] = 0
    if (c !== undefined) c.negativeBuckets[i] = 0
  }
  compactInPlace(h, 0, c)
}

const compactInPlace = (h: FloatHistogram, maxEmpty: number, c?: FloatHistogram): void => {
  const pos = compactSide({ spans: h.positiveSpans, buckets: h.positiveBuckets, comp: c?.positiveBuckets }, maxEmpty)
  const neg = compactSide({ spans: h.negativeSpans, buckets: h.negativeBuckets, comp: c?.negativeBuckets }, maxEmpty)
  ;[h.positiveSpans, h.positiveBuckets, h.negativeSpans, h.negativeBuckets] = [pos.spans, pos.buckets, neg.spans, neg.buckets]
  if (c !== undefined) {
    ;[c.positiveSpans, c.positiveBuckets, c.negativeSpans, c.negativeBuckets] = [copySpans(pos.spans), pos.comp!, copySpans(neg.spans), neg.comp!]
  }
}

// -------------------------------------------------------------------------------------------------
// FloatHistogram
// -------------------------------------------------------------------------------------------------

type Fields =
  | "counterResetHint"
  | "schema"
  | "zeroThreshold"
  | "zeroCount"
  | "count"
  | "sum"
  | "positiveSpans"
  | "negativeSpans"
  | "positiveBuckets"
  | "negativeBuckets"
  | "customValues"

export type FloatHistogramInit = Partial<Pick<FloatHistogram, Fields>>

/** What `add`, `sub` and `kahanAdd` report besides their result. */
export interface CombineInfo {
  /** One histogram said "reset", the other "not_reset": the result's hint became "unknown". */
  counterResetCollision: boolean
  /** Custom bounds differed: the result has the buckets of the bounds both have (an info annotation in PromQL). */
  nhcbBoundsReconciled: boolean
}

/** A native histogram with float counts (Prometheus's FloatHistogram); bucket counts are absolute. */
export class FloatHistogram {
  counterResetHint: CounterResetHint
  /** -4..8 for exponential buckets, -53 (`customBucketsSchema`) for custom buckets. */
  schema: number
  zeroThreshold: number
  zeroCount: number
  count: number
  /** The sum of observations (also the carrier of the stale marker). */
  sum: number
  positiveSpans: Array<Span>
  negativeSpans: Array<Span>
  positiveBuckets: Array<number>
  negativeBuckets: Array<number>
  /** Upper bounds of the custom buckets (schema -53), the +Inf bucket implied; treated as immutable. */
  customValues: Array<number>

  constructor(init: FloatHistogramInit = {}) {
    this.counterResetHint = init.counterResetHint ?? "unknown"
    this.schema = init.schema ?? 0
    this.zeroThreshold = init.zeroThreshold ?? 0
    this.zeroCount = init.zeroCount ?? 0
    this.count = init.count ?? 0
    this.sum = init.sum ?? 0
    this.positiveSpans = init.positiveSpans ?? []
    this.negativeSpans = init.negativeSpans ?? []
    this.positiveBuckets = init.positiveBuckets ?? []
    this.negativeBuckets = init.negativeBuckets ?? []
    this.customValues = init.customValues ?? []
  }

  usesCustomBuckets(): boolean {
    return this.schema === customBucketsSchema
  }

  /** A deep copy; like Go, without the fields the schema does not use (zero bucket and negative side, or custom values). */
  copy(): FloatHistogram {
    const custom = this.usesCustomBuckets()
    return new FloatHistogram({
      counterResetHint: this.counterResetHint,
      schema: this.schema,
      count: this.count,
      sum: this.sum,
      positiveSpans: copySpans(this.positiveSpans),
      positiveBuckets: [...this.positiveBuckets],
      ...(custom
        ? { customValues: [...this.customValues] }
        : {
            zeroThreshold: this.zeroThreshold,
            zeroCount: this.zeroCount,
            negativeSpans: copySpans(this.negativeSpans),
            negativeBuckets: [...this.negativeBuckets]
          })
    })
  }

  /**
   * A copy in the lower-resolution exponential schema `targetSchema` (a plain copy for the same schema).
   * As in Go, the copy's counter reset hint is "unknown". Throws for custom buckets or a higher schema.
   */
  copyToSchema(targetSchema: number): FloatHistogram {
    if (targetSchema === this.schema) return this.copy()
    if (this.usesCustomBuckets()) throw new Error(`cannot reduce resolution to ${targetSchema} when there are custom buckets`)
    if (targetSchema === customBucketsSchema) throw new Error("cannot reduce resolution to custom buckets schema")
    if (targetSchema > this.schema) throw new Error(`cannot copy from schema ${this.schema} to ${targetSchema}`)
    const pos = reduceSide({ spans: this.positiveSpans, buckets: this.positiveBuckets }, this.schema, targetSchema)
    const neg = reduceSide({ spans: this.negativeSpans, buckets: this.negativeBuckets }, this.schema, targetSchema)
    return new FloatHistogram({
      schema: targetSchema,
      zeroThreshold: this.zeroThreshold,
      zeroCount: this.zeroCount,
      count: this.count,
      sum: this.sum,
      positiveSpans: pos.spans,
      positiveBuckets: pos.buckets,
      negativeSpans: neg.spans,
      negativeBuckets: neg.buckets
    })
  }

  /** Scales all counts and the sum in place; a negative factor makes the histogram a gauge. */
  mul(factor: number): this {
    this.zeroCount *= factor
    this.count *= factor
    this.sum *= factor
    this.positiveBuckets.forEach((v, i, a) => (a[i] = v * factor))
    this.negativeBuckets.forEach((v, i, a) => (a[i] = v * factor))
    if (factor < 0) this.counterResetHint = "gauge"
    return this
  }

  /**
   * Divides all counts and the sum in place; a negative divisor makes the histogram a gauge. Division by
   * zero (as in Prometheus 3) divides count, sum and zero count (giving ±Inf or NaN) and removes all buckets.
   */
  div(scalar: number): this {
    this.zeroCount /= scalar
    this.count /= scalar
    this.sum /= scalar
    if (scalar === 0) {
      this.positiveSpans = []
      this.negativeSpans = []
      this.positiveBuckets = []
      this.negativeBuckets = []
      return this
    }
    this.positiveBuckets.forEach((v, i, a) => (a[i] = v / scalar))
    this.negativeBuckets.forEach((v, i, a) => (a[i] = v / scalar))
    if (scalar < 0) this.counterResetHint = "gauge"
    return this
  }

  /**
   * Adds `other` in place. Schemas are reconciled to the lower resolution, zero buckets to the wider one
   * (widened further while the threshold cuts a populated bucket), custom bounds to the bounds both have.
   * The result may hold empty buckets and adjacent spans: `compact` normalizes. Throws `HistogramError`
   * when one histogram has custom buckets and the other not.
   */
  add(other: FloatHistogram): CombineInfo {
    return this.#combine(other, false, false)[0]
  }

  /** Subtracts `other` in place, like `add` (the hint is adjusted like add's; PromQL's `-` then sets "gauge"). */
  sub(other: FloatHistogram): CombineInfo {
    return this.#combine(other, true, false)[0]
  }

  /**
   * `add` with Kahan summation: `compensation` holds the running compensation terms in this histogram's
   * layout (created on first use when undefined, else updated in place) and is returned; fold it in at
   * the end with `addCompensation`.
   */
  kahanAdd(other: FloatHistogram, compensation: FloatHistogram | undefined): CombineInfo & { compensation: FloatHistogram } {
    const [info, c] = this.#combine(other, false, true, compensation)
    return { ...info, compensation: c! }
  }

  /** A compensation histogram for `kahanAdd`: this histogram's layout, all zero. */
  #newCompensation(): FloatHistogram {
    const custom = this.usesCustomBuckets()
    return new FloatHistogram({
      counterResetHint: this.counterResetHint,
      schema: this.schema,
      zeroThreshold: this.zeroThreshold,
      customValues: this.customValues,
      positiveSpans: copySpans(this.positiveSpans),
      positiveBuckets: this.positiveBuckets.map(() => 0),
      negativeSpans: custom ? [] : copySpans(this.negativeSpans),
      negativeBuckets: custom ? [] : this.negativeBuckets.map(() => 0)
    })
  }

  /** Prometheus's adjustCounterReset: the hint of a sum or difference; true on a reset/not_reset collision. */
  #adjustCounterReset(other: FloatHistogram): boolean {
    const [mine, theirs] = [this.counterResetHint, other.counterResetHint]
    if (mine === theirs || mine === "gauge") return false
    this.counterResetHint = theirs === "gauge" ? "gauge" : "unknown"
    return theirs !== "gauge" && mine !== "unknown" && theirs !== "unknown"
  }

  /** add, sub (`negate`) and kahanAdd (`kahan`, with the `given` compensation or a new one, also returned). */
  #combine(other: FloatHistogram, negate: boolean, kahan: boolean, given?: FloatHistogram): [CombineInfo, FloatHistogram | undefined] {
    if (this.usesCustomBuckets() !== other.usesCustomBuckets()) throw new HistogramError("mixed_exponential_custom")
    const counterResetCollision = this.#adjustCounterReset(other)
    const c = kahan ? (given ?? this.#newCompensation()) : undefined
    const sign = negate ? -1 : 1
    const inc = (field: "zeroCount" | "count" | "sum", v: number): void => {
      if (c === undefined) this[field] += sign * v
      else [this[field], c[field]] = kahanInc(v, this[field], c[field])
    }
    if (!this.usesCustomBuckets()) {
      const [zeroCount, zeroComp] = reconcileZeroBuckets(this, other, c)
      inc("zeroCount", zeroCount)
      if (c !== undefined) inc("zeroCount", zeroComp)
    }
    inc("count", other.count)
    inc("sum", other.sum)

    const mine = (positive: boolean): Side =>
      positive
        ? { spans: this.positiveSpans, buckets: this.positiveBuckets, comp: c?.positiveBuckets }
        : { spans: this.negativeSpans, buckets: this.negativeBuckets, comp: c?.negativeBuckets }
    const theirs = (positive: boolean): Side =>
      positive ? { spans: other.positiveSpans, buckets: other.positiveBuckets } : { spans: other.negativeSpans, buckets: other.negativeBuckets }
    const store = (pos: Side, neg?: Side): void => {
      this.positiveSpans = pos.spans
      this.positiveBuckets = pos.buckets
      if (neg !== undefined) {
        this.negativeSpans = neg.spans
        this.negativeBuckets = neg.buckets
      }
      if (c === undefined) return
      c.schema = this.schema
      c.zeroThreshold = this.zeroThreshold
      c.customValues = this.customValues
      c.positiveSpans = copySpans(pos.spans)
      c.positiveBuckets = pos.comp!
      if (neg !== undefined) {
        c.negativeSpans = copySpans(neg.spans)
        c.negativeBuckets = neg.comp!
      }
    }

    if (this.usesCustomBuckets()) {
      if (sameValues(this.customValues, other.customValues)) {
        store(mergeSide(this.schema, this.zeroThreshold, negate, mine(true), theirs(true)))
        return [{ counterResetCollision, nhcbBoundsReconciled: false }, c]
      }
      const bounds = intersectBounds(this.customValues, other.customValues)
      const merged = mergeCustomSides(
        negate,
        { ...mine(true), bounds: this.customValues },
        { ...theirs(true), bounds: other.customValues },
        bounds
      )
      this.customValues = bounds
      store({ ...merged, comp: c && merged.comp })
      return [{ counterResetCollision, nhcbBoundsReconciled: true }, c]
    }

    let [myPos, myNeg, theirPos, theirNeg] = [mine(true), mine(false), theirs(true), theirs(false)]
    if (other.schema < this.schema) {
      ;[myPos, myNeg] = [reduceSide(myPos, this.schema, other.schema), reduceSide(myNeg, this.schema, other.schema)]
      this.schema = other.schema
    } else if (other.schema > this.schema) {
      // With Kahan summation the merged buckets of `other` bring their own compensation terms.
      const withComp = (s: Side): Side => (c === undefined ? s : { ...s, comp: s.buckets.map(() => 0) })
      theirPos = reduceSide(withComp(theirPos), other.schema, this.schema)
      theirNeg = reduceSide(withComp(theirNeg), other.schema, this.schema)
    }
    store(
      mergeSide(this.schema, this.zeroThreshold, negate, myPos, theirPos),
      mergeSide(this.schema, this.zeroThreshold, negate, myNeg, theirNeg)
    )
    return [{ counterResetCollision, nhcbBoundsReconciled: false }, c]
  }

  /**
   * Exact equality as Prometheus's Equals: schema, bit-identical count, sum, zero count and buckets, the
   * same zero threshold and custom bounds, and spans equal up to zero-length spans. The counter reset
   * hint is not compared.
   */
  equals(other: FloatHistogram): boolean {
    return (
      this.schema === other.schema &&
      sameBits(this.count, other.count) &&
      sameBits(this.sum, other.sum) &&
      (!this.usesCustomBuckets() || sameValues(this.customValues, other.customValues)) &&
      this.zeroThreshold === other.zeroThreshold &&
      sameBits(this.zeroCount, other.zeroCount) &&
      spansMatch(this.negativeSpans, other.negativeSpans) &&
      this.negativeBuckets.length === other.negativeBuckets.length &&
      this.negativeBuckets.every((v, i) => sameBits(v, other.negativeBuckets[i]!)) &&
      spansMatch(this.positiveSpans, other.positiveSpans) &&
      this.positiveBuckets.length === other.positiveBuckets.length &&
      this.positiveBuckets.every((v, i) => sameBits(v, other.positiveBuckets[i]!))
    )
  }

  /**
   * In place, as Prometheus's Compact: drops empty buckets at span edges and runs of more than
   * `maxEmptyBuckets` empty buckets inside spans, merges spans at most `maxEmptyBuckets` apart (filling
   * the gap with empty buckets) and removes zero-length spans.
   */
  compact(maxEmptyBuckets: number): this {
    compactInPlace(this, maxEmptyBuckets)
    return this
  }

  /**
   * Whether this histogram, following `previous`, is a counter reset (Prometheus's DetectReset): a
   * "reset"/"not_reset" hint decides; otherwise a smaller count, zero count or bucket, a populated
   * bucket gone, a higher schema, a lower zero threshold, a change between exponential and custom
   * buckets, or (for different custom bounds) a smaller sum over any common bound's buckets.
   */
  detectReset(previous: FloatHistogram): boolean {
    if (this.counterResetHint === "reset") return true
    if (this.counterResetHint === "not_reset") return false
    if (this.count < previous.count) return true
    if (this.usesCustomBuckets()) {
      if (!previous.usesCustomBuckets()) return true
      if (!sameValues(this.customValues, previous.customValues)) return customBucketsDecreased(this, previous)
    }
    if (this.schema > previous.schema || this.zeroThreshold < previous.zeroThreshold) return true
    const before = zeroCountAbove(previous, this.zeroThreshold)
    if (before.threshold !== this.zeroThreshold || this.zeroCount < before.count) return true
    return [true, false].some((positive) => {
      const now = new Map(strippedBuckets(this, positive, this.schema, this.zeroThreshold).map((b) => [b.index, b.count]))
      return strippedBuckets(previous, positive, this.schema, this.zeroThreshold).some((p) => {
        const c = now.get(p.index)
        return c === undefined ? p.count !== 0 : c < p.count
      })
    })
  }

  /** Reduces the exponential schema in place to the lower `targetSchema`; throws otherwise (also for the same schema, as Go). */
  reduceResolution(targetSchema: number): this {
    if (this.usesCustomBuckets()) throw new Error("cannot reduce resolution when there are custom buckets")
    if (targetSchema === customBucketsSchema) throw new Error("cannot reduce resolution to custom buckets schema")
    if (targetSchema >= this.schema) throw new Error(`cannot reduce resolution from schema ${this.schema} to ${targetSchema}`)
    const pos = reduceSide({ spans: this.positiveSpans, buckets: this.positiveBuckets }, this.schema, targetSchema)
    const neg = reduceSide({ spans: this.negativeSpans, buckets: this.negativeBuckets }, this.schema, targetSchema)
    ;[this.positiveSpans, this.positiveBuckets, this.negativeSpans, this.negativeBuckets] = [pos.spans, pos.buckets, neg.spans, neg.buckets]
    this.schema = targetSchema
    return this
  }

  /**
   * The PromQL trim operators in place (Prometheus's TrimBuckets): `h </ rhs` (`isUpperTrim`) keeps the
   * observations below `rhs`, `h >/ rhs` those above. A bucket containing `rhs` keeps the interpolated
   * share (linear for custom buckets and the zero bucket, logarithmic for exponential buckets). When
   * anything was cut, count and sum are re-estimated from the kept buckets (bucket midpoints) and the
   * histogram is compacted. Returns this histogram.
   */
  trimBuckets(rhs: number, isUpperTrim: boolean): FloatHistogram {
    const linear = this.usesCustomBuckets()
    let [count, sum, trimmed] = [0, 0, false]
    const seen = { positive: false, negative: false }
    const side = (list: ReadonlyArray<Bucket>, counts: Array<number>, positive: boolean): void =>
      list.forEach((b, i) => {
        if (b.count === 0) return
        seen[positive ? "positive" : "negative"] = true
        if (isUpperTrim ? b.upper <= rhs : b.lower >= rhs) {
          count += b.count
          sum += midpoint(b.lower, b.upper, positive, linear) * b.count
        } else if (isUpperTrim ? b.lower < rhs : b.upper > rhs) {
          const [keep, mid] = trimBucket(b, rhs, isUpperTrim, positive, linear)
          count += keep
          sum += mid * keep
          if (counts[i] !== keep) {
            counts[i] = keep
            trimmed = true
          }
        } else {
          counts[i] = 0
          trimmed = true
        }
      })
    side(positiveBuckets(this), this.positiveBuckets, true)
    side(negativeBuckets(this), this.negativeBuckets, false)
    if (this.zeroCount > 0 && !linear) {
      const [keep, mid] = trimZeroBucket(zeroBucket(this), rhs, seen.negative, seen.positive, isUpperTrim)
      if (this.zeroCount !== keep) {
        this.zeroCount = keep
        trimmed = true
      }
      sum += mid * keep
      count += keep
    }
    if (trimmed) {
      this.count = count
      this.sum = sum
      this.compact(0)
    }
    return this
  }

  /**
   * The histogram in promqltest notation (Prometheus's TestExpression), compacted to one span per side,
   * e.g. `{{schema:1 count:22 sum:3 z_bucket:1 z_bucket_w:0.001 counter_reset_hint:gauge offset:1 buckets:[5 10 7] n_buckets:[1]}}`.
   */
  toString(): string {
    const m = this.copy().compact(Infinity)
    const out: Array<string> = []
    if (m.schema !== 0) out.push(`schema:${m.schema}`)
    if (m.count !== 0) out.push(`count:${formatG(m.count)}`)
    if (m.sum !== 0) out.push(`sum:${formatG(m.sum)}`)
    if (m.zeroCount !== 0) out.push(`z_bucket:${formatG(m.zeroCount)}`)
    if (m.zeroThreshold !== 0) out.push(`z_bucket_w:${formatG(m.zeroThreshold)}`)
    if (m.usesCustomBuckets()) out.push(`custom_values:[${m.customValues.map((x) => formatG(x)).join(" ")}]`)
    if (m.counterResetHint !== "unknown") out.push(`counter_reset_hint:${m.counterResetHint}`)
    const side = (spans: ReadonlyArray<Span>, buckets: ReadonlyArray<number>, prefix: string): void => {
      const offset = spans[0]?.offset ?? 0
      if (offset !== 0) out.push(`${prefix}offset:${offset}`)
      if (buckets.length > 0) out.push(`${prefix}buckets:[${buckets.map((x) => formatG(x)).join(" ")}]`)
    }
    side(m.positiveSpans, m.positiveBuckets, "")
    side(m.negativeSpans, m.negativeBuckets, "n_")
    return `{{${out.join(" ")}}}`
  }
}

/** Folds a Kahan compensation histogram (from `kahanAdd`) into `h` in place and returns `h`. */
export const addCompensation = (h: FloatHistogram, c: FloatHistogram): FloatHistogram => {
  h.add(c)
  return h
}

/**
 * Reset detection for custom buckets with different bounds: whether, for any bound both layouts have
 * (and +Inf), the buckets up to it (above the previous common bound) hold less than before.
 */
const customBucketsDecreased = (h: FloatHistogram, previous: FloatHistogram): boolean => {
  const bounds = intersectBounds(h.customValues, previous.customValues)
  const sums = (x: FloatHistogram): Array<number> => {
    const out = new Array<number>(bounds.length + 1).fill(0)
    const to = customTarget(x.customValues, bounds)
    positiveBuckets(x).forEach((b) => (out[to(b.index)]! += b.count))
    return out
  }
  const [now, before] = [sums(h), sums(previous)]
  return now.some((v, i) => v < before[i]!)
}

// -------------------------------------------------------------------------------------------------
// Trimming
// -------------------------------------------------------------------------------------------------

/** The share of the bucket's width at or below `v` (strictly inside it): linear, or on a log2 scale. */
const fractionBelow = (b: Bucket, v: number, linear: boolean): number => {
  if (linear) return (v - b.lower) / (b.upper - b.lower)
  const [lo, hi, at] = [log2(Math.abs(b.lower)), log2(Math.abs(b.upper)), log2(Math.abs(v))]
  return v > 0 ? (at - lo) / (hi - lo) : 1 - (at - hi) / (lo - hi)
}

/** Go's math.Log2: log(frac)·log2(e) + exp for x = frac·2^exp, exact for powers of two. */
const log2 = (x: number): number => {
  if (!(x > 0) || x === Infinity) return Math.log2(x)
  const shift = x < 2 ** -1000 ? 64 : 0
  let exp = Math.floor(Math.log2(x * 2 ** shift)) + 1
  let frac = x * 2 ** shift * 2 ** -exp
  if (frac >= 1) [frac, exp] = [frac / 2, exp + 1]
  else if (frac < 0.5) [frac, exp] = [frac * 2, exp - 1]
  exp -= shift
  return frac === 0.5 ? exp - 1 : Math.log(frac) * Math.LOG2E + exp
}

/** Where the kept observations of a bucket are assumed to sit: the arithmetic or (signed) geometric mean. */
const midpoint = (lower: number, upper: number, positive: boolean, linear: boolean): number => {
  const [lowerInf, upperInf] = [Math.abs(lower) === Infinity, Math.abs(upper) === Infinity]
  if (lowerInf) return upperInf ? 0 : upper > 0 ? upper / 2 : upper
  if (upperInf) return lower
  if (linear) return (lower + upper) / 2
  const geo = Math.sqrt(Math.abs(lower * upper))
  return positive ? geo : -geo
}

/** The kept count and its midpoint for a bucket containing `rhs`. */
const trimBucket = (b: Bucket, rhs: number, upperTrim: boolean, positive: boolean, linear: boolean): [number, number] => {
  if (b.lower === -Infinity || b.upper === Infinity) return trimInfiniteBucket(b, rhs, upperTrim)
  const below = rhs <= b.lower ? 0 : rhs >= b.upper ? b.count : b.count * fractionBelow(b, rhs, linear)
  return upperTrim ? [below, midpoint(b.lower, rhs, positive, linear)] : [b.count - below, midpoint(rhs, b.upper, positive, linear)]
}

/** Trimming a bucket with an infinite bound, whose observations cannot be located: mostly all or nothing. */
const trimInfiniteBucket = (b: Bucket, rhs: number, upperTrim: boolean): [number, number] => {
  const finite = (x: number): number => (x === Infinity || x === -Infinity ? 0 : x)
  if (b.lower === -Infinity) {
    if (upperTrim) {
      if (rhs >= b.upper) return [b.count, 0]
      // A finite positive upper bound (only custom buckets): treat the lower bound as 0.
      if (rhs > 0 && b.upper > 0 && b.upper !== Infinity) return [(b.count * rhs) / b.upper, rhs / 2]
      if (b.upper <= 0) return [b.count, rhs]
      return [0, finite(b.upper)]
    }
    if (rhs <= b.lower) return [b.count, 0]
    if (rhs >= 0 && b.upper > rhs && b.upper !== Infinity) return [b.count * (1 - rhs / b.upper), (rhs + b.upper) / 2]
    return [0, finite(b.upper)]
  }
  if (upperTrim) return [0, finite(b.lower)]
  return rhs >= b.lower ? [b.count, rhs] : [0, finite(b.lower)]
}

/** The kept share of the zero bucket (linear), which only spans the side(s) that have populated buckets. */
const trimZeroBucket = (z: Bucket, rhs: number, hasNegative: boolean, hasPositive: boolean, upperTrim: boolean): [number, number] => {
  const lower = hasPositive && !hasNegative ? 0 : z.lower
  const upper = hasNegative && !hasPositive ? 0 : z.upper
  if (upperTrim) {
    if (rhs <= lower) return [0, 0]
    if (rhs >= upper) return [z.count, (lower + upper) / 2]
    return [z.count * ((rhs - lower) / (upper - lower)), (lower + rhs) / 2]
  }
  if (rhs <= lower) return [z.count, (lower + upper) / 2]
  if (rhs >= upper) return [0, 0]
  return [z.count * ((upper - rhs) / (upper - lower)), (rhs + upper) / 2]
}

// -------------------------------------------------------------------------------------------------
// promqltest notation
// -------------------------------------------------------------------------------------------------

/**
 * A number as PromQL's lexer and parser read it in a series description: `Inf`/`NaN` (any case), an
 * integer as Go's ParseInt with base prefix (`0x1f`, `0o17`, `0b11`, and `017` is octal), else a decimal
 * float (`1e3`, `.5`); `_` may separate digits. Undefined when malformed or out of range.
 */
const parseUnsigned = (text: string): number | undefined => {
  const lower = text.toLowerCase()
  if (lower === "inf") return Infinity
  if (lower === "nan") return NaN
  if (/(?<![0-9a-fxob])_|_(?![0-9a-f])/.test(lower)) return undefined
  const s = lower.replaceAll("_", "")
  if (/^(0x[0-9a-f]+|0o[0-7]+|0b[01]+|0[0-7]*|[1-9][0-9]*)$/.test(s)) {
    const n = BigInt(/^0[0-7]/.test(s) ? `0o${s.slice(1)}` : s)
    if (n < 2n ** 63n) return Number(n)
    if (!/^[0-9]+$/.test(s)) return undefined
  }
  if (!/^([0-9]+\.?[0-9]*|\.[0-9]+)(e[+-]?[0-9]+)?$/.test(s)) return undefined
  const v = Number(s)
  return Number.isFinite(v) ? v : undefined
}

const hints: ReadonlyArray<CounterResetHint> = ["unknown", "reset", "not_reset", "gauge"]

/**
 * Parses the inside of promqltest's `{{...}}` histogram notation, e.g. `schema:1 sum:3 count:22 buckets:[5 10 7]`
 * (keys as Prometheus's series-description grammar: schema, sum, count, z_bucket, z_bucket_w, buckets,
 * offset, n_buckets, n_offset, counter_reset_hint, custom_values; each at most once). `buckets` with
 * `offset` become one span of that length at that offset, as Prometheus's parser builds them (likewise
 * the negative side). Also says whether `counter_reset_hint` was given (promqltest then compares it).
 * Throws an Error on malformed text.
 */
export const parseHistogramText = (text: string): { histogram: FloatHistogram; counterResetHintSet: boolean } => {
  const fail = (why: string): never => {
    throw new Error(`bad histogram description {{${text}}}: ${why}`)
  }
  const init: FloatHistogramInit = {}
  let [positive, negative, offset, negativeOffset] = [[] as Array<number>, [] as Array<number>, 0, 0]
  const seen = new Set<string>()
  for (const token of text.match(/[^\s:]+:\[[^\]]*\]|\S+/g) ?? []) {
    const m = /^([A-Za-z_]+):(\[[^\]]*\]|[^[\]]+)$/.exec(token) ?? fail(`expected key:value, got ${JSON.stringify(token)}`)
    const [key, raw] = [m[1]!.toLowerCase(), m[2]!]
    if (seen.has(key)) fail(`duplicate key "${key}" in histogram`)
    seen.add(key)
    const number = (word: string, signed = true): number => {
      const sign = /^[-+]/.test(word) ? word[0]! : ""
      if (sign !== "" && !signed) fail(`${key} takes an unsigned number, got ${JSON.stringify(word)}`)
      const v = parseUnsigned(word.slice(sign.length)) ?? fail(`bad number ${JSON.stringify(word)} for ${key}`)
      return sign === "-" ? -v : v
    }
    const int = (): number => (/^-?[0-9]+$/.test(raw) ? Number(raw) + 0 : fail(`${key} takes an integer, got ${JSON.stringify(raw)}`))
    const list = (): Array<number> => {
      if (!raw.startsWith("[")) fail(`${key} takes a list like [1 2 3], got ${JSON.stringify(raw)}`)
      const inner = raw.slice(1, -1).trim()
      return inner === "" ? [] : inner.split(/\s+/).map((word) => number(word))
    }
    switch (key) {
      case "schema":
        init.schema = int()
        break
      case "offset":
        offset = int()
        break
      case "n_offset":
        negativeOffset = int()
        break
      case "sum":
        init.sum = number(raw)
        break
      case "count":
        init.count = number(raw)
        break
      case "z_bucket":
        init.zeroCount = number(raw)
        break
      case "z_bucket_w":
        init.zeroThreshold = number(raw, false)
        break
      case "buckets":
        positive = list()
        break
      case "n_buckets":
        negative = list()
        break
      case "custom_values":
        init.customValues = list()
        break
      case "counter_reset_hint":
        init.counterResetHint =
          hints.find((h) => h === raw.toLowerCase()) ?? fail(`bad counter_reset_hint ${JSON.stringify(raw)} (unknown, reset, not_reset or gauge)`)
        break
      default:
        fail(`unknown key ${JSON.stringify(key)}`)
    }
  }
  const spans = (buckets: Array<number>, at: number): Array<Span> => (buckets.length > 0 ? [{ offset: at, length: buckets.length }] : [])
  const histogram = new FloatHistogram({
    ...init,
    positiveSpans: spans(positive, offset),
    positiveBuckets: positive,
    negativeSpans: spans(negative, negativeOffset),
    negativeBuckets: negative
  })
  return { histogram, counterResetHintSet: seen.has("counter_reset_hint") }
}
