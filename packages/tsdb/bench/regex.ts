/**
 * Selector regex matching throughput, before and after src/internal/regex.ts:
 *
 *   node --conditions=@opendata/source --experimental-strip-types packages/tsdb/bench/regex.ts
 *
 * - old: what labels.ts did before, reproduced here: the pattern translated for JavaScript (`(?i)` spelled
 *   out as `[xX]` classes) and compiled as a native backtracking `RegExp` `^(?:re)$` with flags `su`;
 * - new: `compileMatcher` (a fast path where the pattern has a simple shape, re2js otherwise);
 * - re2js: the new module's slow path alone (`compileMatcherSlow`), to show what the fast paths buy.
 *
 * Each matcher runs over 100,000 realistic values of its label (jobs, `host:port` instances, HTTP paths,
 * status codes, log-like messages; generated from a fixed seed), compiled once beforehand as the cache
 * would have it; ops/s = values tested per second, over rounds of the whole set until at least
 * `BENCH_MS` (default 500) ms, after one untimed round. The three must agree on how many values match.
 */
import { matches, type Matcher } from "../src/internal/labels.ts"
import { compileMatcher, compileMatcherSlow } from "../src/internal/regex.ts"

/** The old labels.ts translation of RE2's `(?i)` / `(?i:...)` for JavaScript. */
const oldFromRe2 = (pattern: string): string => {
  let out = ""
  let inClass = false
  const stack: Array<boolean> = [false]
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!
    const fold = stack.at(-1)!
    if (c === "\\") {
      out += c + (pattern[i + 1] ?? "")
      i++
    } else if (inClass) {
      if (c === "]") inClass = false
      out += c
    } else if (c === "[") {
      inClass = true
      out += c
    } else if (pattern.startsWith("(?i)", i)) {
      stack[stack.length - 1] = true
      i += 3
    } else if (pattern.startsWith("(?i:", i)) {
      stack.push(true)
      out += "(?:"
      i += 3
    } else if (c === "(") {
      stack.push(fold)
      out += c
    } else if (c === ")") {
      if (stack.length > 1) stack.pop()
      out += c
    } else {
      out += fold && /[a-zA-Z]/.test(c) ? `[${c.toLowerCase()}${c.toUpperCase()}]` : c
    }
  }
  return out
}
const oldAnchored = (pattern: string): RegExp => new RegExp(`^(?:${oldFromRe2(pattern)})$`, "su")

/** The old selector path of labels.ts `matches`: its pattern cache, then the backtracking RegExp. */
const oldCache = new Map<string, RegExp>()
const oldMatches = (m: Matcher, value: string): boolean => {
  let re = oldCache.get(m.value)
  if (re === undefined) {
    re = oldAnchored(m.value)
    oldCache.set(m.value, re)
  }
  return m.type === "=~" ? re.test(value) : !re.test(value)
}

/** mulberry32: a fixed seed, so every run tests the same values. */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}
const random = prng(42)
const int = (n: number) => Math.floor(random() * n)
const pick = <T>(xs: ReadonlyArray<T>): T => xs[int(xs.length)]!

const N = 100_000
const words = ["user", "order", "cart", "login", "search", "item", "payment", "session", "foo", "report", "export"]
const values = {
  job: Array.from({ length: N }, () => pick(["api", "web", "db", "cache", "worker", "node-exporter", "prometheus", "api-gateway", "webhook"])),
  instance: Array.from({ length: N }, () => `${pick(["10", "10", "192", "172"])}.${int(3)}.${int(256)}.${int(256)}:${pick([80, 443, 9090, 9100, 8080])}`),
  path: Array.from({ length: N }, () => {
    const v = random() < 0.7 ? `/api/v${1 + int(3)}/` : pick(["/static/", "/health", "/metrics", "/api/"])
    return v + Array.from({ length: int(4) }, () => (random() < 0.3 ? String(int(100_000)) : pick(words))).join("/")
  }),
  code: Array.from({ length: N }, () => String(pick([200, 200, 200, 201, 204, 301, 304, 400, 401, 404, 429, 500, 502, 503]))),
  name: Array.from({ length: N }, () => `${pick(["http", "process", "go", "node"])}_${pick(words)}_${pick(["total", "seconds", "bytes", "count"])}`),
  message: Array.from({ length: N }, () =>
    `${pick(["level=info", "level=warn", "level=ERROR", "level=error", "level=debug"])} msg="${pick(words)} ${pick(["done", "failed", "Error: timeout", "ok"])}" id=${int(1e6)}`
  )
}

const matchers: ReadonlyArray<readonly [string, "=~" | "!~", string, ReadonlyArray<string>]> = [
  ["job", "=~", "api|web", values.job],
  ["instance", "=~", "10\\.0\\..*", values.instance],
  ["path", "=~", "/api/v[0-9]+/.*", values.path],
  ["code", "!~", "5..", values.code],
  ["__name__", "=~", ".*foo.*", values.name],
  ["msg", "=~", "(?i)error", values.message],
  ["msg", "=~", "(?i).*error.*", values.message]
]

const benchMs = Number(process.env.BENCH_MS ?? 500)

/** Values tested per second, and how many of the values match. */
const run = (test: (v: string) => boolean, vs: ReadonlyArray<string>): { readonly opsPerSec: number; readonly matched: number } => {
  let matched = 0
  for (const v of vs) if (test(v)) matched++
  let rounds = 0
  const start = performance.now()
  let elapsed = 0
  let sink = 0
  while (elapsed < benchMs) {
    for (let i = 0; i < vs.length; i++) if (test(vs[i]!)) sink++
    rounds++
    elapsed = performance.now() - start
  }
  if (sink !== matched * rounds) throw new Error("unstable result")
  return { opsPerSec: (rounds * vs.length * 1000) / elapsed, matched }
}

const fmt = (x: number) => `${(x / 1e6).toFixed(1)}M`
console.log(`${N.toLocaleString("en")} values per matcher, >= ${benchMs} ms per measurement, ${process.version}\n`)
console.log(["matcher".padEnd(28), "strategy".padEnd(16), "matched".padStart(8), "old ops/s".padStart(10), "new ops/s".padStart(10), "re2js ops/s".padStart(12), "new/old".padStart(8)].join("  "))
const paths: Array<string> = []
for (const [label, op, pattern, vs] of matchers) {
  const negate = op === "!~"
  const old = oldAnchored(pattern)
  const fresh = compileMatcher(pattern)
  const slow = compileMatcherSlow(pattern)
  const a = run((v) => old.test(v) !== negate, vs)
  const b = run((v) => fresh.test(v) !== negate, vs)
  const c = run((v) => slow.test(v) !== negate, vs)
  // The whole selector path, as a selection runs it for each series: labels.ts `matches` (pattern cache,
  // then the matcher), against the old one.
  const m: Matcher = { name: label, type: op as "=~" | "!~", value: pattern }
  const oldPath = run((v) => oldMatches(m, v), vs)
  const newPath = run((v) => matches(m, v), vs)
  paths.push(`${`${label}${op}${JSON.stringify(pattern)}`.padEnd(28)}  ${fmt(oldPath.opsPerSec).padStart(10)}  ${fmt(newPath.opsPerSec).padStart(10)}  ${(newPath.opsPerSec / oldPath.opsPerSec).toFixed(2).padStart(8)}`)
  if (a.matched !== b.matched || b.matched !== c.matched) throw new Error(`${pattern}: old ${a.matched}, new ${b.matched}, re2js ${c.matched} matches`)
  console.log(
    [
      `${label}${op}${JSON.stringify(pattern)}`.padEnd(28),
      fresh.strategy.padEnd(16),
      String(b.matched).padStart(8),
      fmt(a.opsPerSec).padStart(10),
      fmt(b.opsPerSec).padStart(10),
      fmt(c.opsPerSec).padStart(12),
      (b.opsPerSec / a.opsPerSec).toFixed(2).padStart(8)
    ].join("  ")
  )
}
console.log(`\nthrough labels.ts matches(), as a selection calls it for each series:`)
console.log(["matcher".padEnd(28), "old ops/s".padStart(10), "new ops/s".padStart(10), "new/old".padStart(8)].join("  "))
for (const line of paths) console.log(line)
