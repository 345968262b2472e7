/**
 * The PromQL test-script runner (src/promql/testRunner.ts): its parsing and comparison against a tiny fake
 * engine, then the ratchet: Prometheus's scripts against our engine must pass at least `ratchet.json`'s
 * `passed` evals (skipped when the scripts, which are data outside the repo, are not on this machine).
 */
import { existsSync, readFileSync } from "node:fs"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { SeriesSource } from "../../src/Tsdb.ts"
import { samplesOf } from "../../src/Tsdb.ts"
import { parseSelector } from "../../src/internal/selector.ts"
import * as Runner from "../../src/promql/testRunner.ts"
import type { Expr } from "../../src/promql/ast.ts"
import type { Point, Value } from "../../src/promql/types.ts"
import { QueryError } from "../../src/promql/types.ts"

const bits = (x: number) => {
  const v = new DataView(new ArrayBuffer(8))
  v.setFloat64(0, x)
  return v.getBigUint64(0).toString(16)
}

// -------------------------------------------------------------------------------------------------
// A fake engine: number and string literals, bare selectors (lookback 5m, stale markers hide), `boom`
// (fails), `nope` (unsupported), `wrong` (a vector with a wrong value), `stale_out` (returns a stale marker).

const lastAt = (samples: ReadonlyArray<{ timestampMs: number; value: number }>, t: number) => {
  let last: { timestampMs: number; value: number } | undefined
  for (const s of samples) if (s.timestampMs > t - 300_000 && s.timestampMs <= t) last = s
  return last === undefined || Runner.isStaleNaN(last.value) ? undefined : last
}

const fakeInstant = (source: SeriesSource, query: string, time: number): Effect.Effect<Value, QueryError> =>
  Effect.gen(function*() {
    const at = / @ (-?[\d.]+)$/.exec(query)
    const q = at === null ? query : query.slice(0, at.index)
    const t = at === null ? time : Number(at[1]) * 1000
    if (q === "boom") return yield* Effect.fail(new QueryError({ kind: "execution", message: "boom happened" }))
    if (q === "nope") return yield* Effect.fail(new QueryError({ kind: "unsupported", message: "not yet" }))
    if (q === "wrong") return { type: "vector", samples: [{ labels: [], t, v: 42 }] }
    if (q === "stale_out") return { type: "vector", samples: [{ labels: [], t, v: Runner.staleNaN }] }
    if (/^\d/.test(q)) return { type: "scalar", t, v: Number(q) }
    if (q.startsWith('"')) return { type: "string", t, v: q.slice(1, -1) }
    const series = yield* source.select(parseSelector(q), t - 300_000, t).pipe(Effect.orDie)
    const samples = series.flatMap((s) => {
      const last = lastAt(samplesOf(s), t)
      if (last === undefined) return []
      const h = s.histograms?.[s.timestamps.indexOf(last.timestampMs)]
      return [h === undefined ? { labels: s.labels, t, v: last.value } : { labels: s.labels, t, v: 0, h }]
    })
    return { type: "vector", samples }
  })

/** Parses what the fake engine reads: a bare selector is a VectorSelector spanning the query. */
const fakeParse = (q: string): Expr =>
  /^[a-z_{]/.test(q) && q !== "boom" && q !== "nope" && q !== "wrong" && q !== "stale_out"
    ? { type: "VectorSelector", name: undefined, matchers: parseSelector(q), offsetMs: 0, at: undefined, pos: { start: 0, end: q.length } }
    : { type: "NumberLiteral", value: 0, pos: { start: 0, end: q.length } }

const fakeEngine: Runner.Engine = {
  parse: fakeParse,
  instantQuery: fakeInstant,
  rangeQuery: (source, q, start, end, step) =>
    Effect.gen(function*() {
      const bySeries = new Map<string, { labels: ReadonlyArray<readonly [string, string]>; samples: Array<Point> }>()
      for (let t = start; t <= end; t += step) {
        const v = yield* fakeInstant(source, q, t)
        const samples = v.type === "vector" ? v.samples : v.type === "scalar" ? [{ labels: [], t, v: v.v }] : []
        for (const s of samples) {
          const key = JSON.stringify(s.labels)
          let e = bySeries.get(key)
          if (e === undefined) bySeries.set(key, (e = { labels: s.labels, samples: [] }))
          e.samples.push("h" in s && s.h !== undefined ? { t, v: s.v, h: s.h } : { t, v: s.v })
        }
      }
      return { type: "matrix", series: [...bySeries.values()].sort((a, b) => (JSON.stringify(a.labels) < JSON.stringify(b.labels) ? -1 : 1)) }
    })
}

describe("promqltest runner", () => {
  it("expands series values", () => {
    const p = Runner.parseSequence("1 2+3x2 _ _x2 stale NaN -Inf 4x2 1-1x2 {{schema:1 sum:3 count:22 buckets:[5 10 7]}} 5 {{count:1}}+{{count:2}}x1 0.1+0.1x2")
    const kinds = p.map((x) => (x.kind === "float" ? Runner.formatValue(x.value) : x.kind === "omitted" ? "_" : "H"))
    assert.deepStrictEqual(kinds, ["1", "2", "5", "8", "_", "_", "_", "stale", "NaN", "-Inf", "4", "4", "4", "1", "0", "-1", "H", "5", "H", "H", "0.1", "0.2", "0.30000000000000004"])
    assert.strictEqual(bits(p[7]!.value), "7ff0000000000002")
  })

  it("reads series labels, quoted names included", () => {
    assert.deepStrictEqual(Runner.parseSeriesLabels('metric{b="2", a="x y}"} 1').labels, [["__name__", "metric"], ["a", "x y}"], ["b", "2"]])
    assert.deepStrictEqual(Runner.parseSeriesLabels('{"my.metric", "a.b"="c"} 1').labels, [["__name__", "my.metric"], ["a.b", "c"]])
    assert.deepStrictEqual(Runner.parseSeriesLabels("{} 1").labels, [])
  })

  it("parses commands, expectations and deprecated forms", () => {
    const cmds = Runner.parseScript(`# comment
load 1m
  m{a="1"} 1+1x3
  h {{count:1}}

eval instant at 1m m
  expect no_warn
  expect ordered
  m{a="1"} 2

eval range from 0 to 2m step 1m m
  m{a="1"} 1 _ 3

eval_fail instant at 0 boom
  expected_fail_message boom happened

eval instant at 1m boom
  expect fail regex: boom h.ppened

eval instant at 5m 1
  1

eval instant at 1m "x"
  expect string "x"

eval instant at 1m m[1m]
  expect range vector from 0s to 1m step 1m
  m{a="1"} 1 2

clear
frobnicate 1m
`)
    assert.deepStrictEqual(cmds.map((c) => c.kind), ["load", "eval", "eval", "eval", "eval", "eval", "eval", "eval", "clear", "unknown"])
    const load = cmds[0] as Runner.LoadCommand
    assert.strictEqual(load.intervalMs, 60_000)
    assert.isTrue(load.histograms)
    const [e1, e2, e3, e4, e5, e6, e7] = cmds.slice(1, 8) as Array<Runner.EvalCommand>
    assert.isTrue(e1!.ordered)
    assert.strictEqual(e1!.evalMs, 60_000)
    assert.isFalse(e2!.instant)
    assert.deepStrictEqual([e2!.startMs, e2!.endMs, e2!.stepMs], [0, 120_000, 60_000])
    assert.deepStrictEqual(e3!.fail, [{ message: "boom happened" }])
    assert.strictEqual(e4!.fail[0]!.regex?.source, "boom h.ppened")
    assert.strictEqual(e5!.expectScalar?.value, 1)
    assert.strictEqual(e6!.expectedString, "x")
    assert.isTrue(e7!.excludeFromRangeMode)
    assert.strictEqual(e7!.startMs, 0)
  })

  it("compares floats as almost.Equal", () => {
    assert.isTrue(Runner.almostEqual(1, 1 + 1e-9))
    assert.isFalse(Runner.almostEqual(1, 1.001))
    assert.isTrue(Runner.almostEqual(NaN, NaN))
    assert.isTrue(Runner.almostEqual(0, 0))
    assert.isFalse(Runner.almostEqual(0, 1e-300))
    assert.isTrue(Runner.almostEqual(Infinity, Infinity))
    assert.isFalse(Runner.almostEqual(Infinity, -Infinity))
  })

  it("finds experimental features", () => {
    assert.deepStrictEqual(Runner.experimentalFeatures("rate(x[5m])"), [])
    assert.deepStrictEqual(Runner.experimentalFeatures('label_replace(x, "info", "fill(1)", "", "")'), [])
    assert.deepStrictEqual(Runner.experimentalFeatures("x @ start()"), [])
    assert.deepStrictEqual(Runner.experimentalFeatures("sum_over_time(x[5m:]) offset 1m"), [])
    assert.deepStrictEqual(Runner.experimentalFeatures("x[1800]"), [])
    assert.deepStrictEqual(Runner.experimentalFeatures("info(x)"), ["info()"])
    assert.deepStrictEqual(Runner.experimentalFeatures("limitk(1, x)"), ["limitk()"])
    assert.deepStrictEqual(Runner.experimentalFeatures("increase(x[1m] anchored)"), ["anchored modifier"])
    assert.deepStrictEqual(Runner.experimentalFeatures("a + fill_left(0) b"), ["fill_left modifier"])
    assert.deepStrictEqual(Runner.experimentalFeatures("changes(x[26m+4m])"), ["duration expression"])
    assert.deepStrictEqual(Runner.experimentalFeatures("x offset (1m * 2)"), ["duration expression"])
    assert.deepStrictEqual(Runner.experimentalFeatures("count_over_time(x[step()])"), ["duration expression", "step()"])
    assert.deepStrictEqual(Runner.experimentalFeatures("x offset -100 smoothed + 0"), ["smoothed modifier"])
    assert.deepStrictEqual(Runner.experimentalFeatures("sum by (smoothed) (x)"), [])
    assert.deepStrictEqual(Runner.experimentalFeatures('label_replace(rate(x[1m]), "a", "$1", "__name__", "(.+)")'), ["delayed name removal"])
    assert.deepStrictEqual(Runner.experimentalFeatures("sum by (__name__) (rate(x[1m]))"), ["delayed name removal"])
    assert.deepStrictEqual(Runner.experimentalFeatures('{__name__="x"}'), [])
  })

  it("selects from the in-memory data, stale markers intact", () =>
    Effect.gen(function*() {
      const store = new Runner.MemoryStore()
      for (const c of Runner.parseScript("load 1m\n  m{a=\"1\"} 1 stale 3\n  m{a=\"2\"} 5\n  n 1")) if (c.kind === "load") store.load(c)
      const touched = { histograms: false, startTimestamps: false }
      const got = yield* store.source(touched).select([{ name: "__name__", type: "=", value: "m" }, { name: "a", type: "=", value: "1" }], 0, 60_000)
      assert.strictEqual(got.length, 1)
      assert.deepStrictEqual(Array.from(got[0]!.timestamps), [0, 60_000])
      assert.strictEqual(bits(got[0]!.values[1]!), "7ff0000000000002")
      const all = yield* store.source(touched).select([{ name: "__name__", type: "=~", value: "m|n" }], 0, 0)
      assert.strictEqual(all.length, 3)
    }))

  it("runs a script and classifies its evals", async () => {
    const report = await Runner.runScript("t.test", `
load 1m
  m{a="1"} 1+1x3
  m{a="2"} 10 _ stale

eval instant at 1m m
  m{a="1"} 2
  m{a="2"} 10

eval instant at 1m m
  m{a="1"} 2

eval range from 0 to 2m step 1m m
  m{a="1"} 1 2 3
  m{a="2"} 10 10

eval instant at 1m boom
  expect fail msg: boom happened

eval instant at 1m boom
  expect fail msg: something else

eval instant at 1m m
  expect fail

eval instant at 1m nope

eval instant at 1m wrong
  {} 41

eval instant at 1m stale_out
  {} NaN

eval instant at 1m 7
  7

eval instant at 1m "s"
  expect string "s"

eval instant at 1m info(m)
  {} 1

load 1m
  h {{schema:0 sum:1 count:1}}

eval instant at 1m h
  h {{schema:0 sum:1 count:1}}

eval instant at 1m m{a="1"}
  m{a="1"} 2

eval instant at 1m h
`, fakeEngine)
    const statuses = report.outcomes.map((o) => `${o.line}:${o.status}`)
    assert.deepStrictEqual(statuses, [
      "6:passed", // both series
      "10:failed", // m{a="2"} unexpected
      "13:passed", // range, stale hides a="2" after t=0
      "17:passed", // expected failure
      "20:failed", // wrong message
      "23:failed", // succeeded though expected to fail
      "26:unsupported", // engine: unsupported
      "28:failed", // wrong value
      "31:failed", // a stale marker in a result never matches
      "34:passed", // scalar
      "37:passed", // string
      "40:unsupported", // experimental info(), not passing
      "46:passed", // the histogram, compared as promqltest does
      "49:passed", // float data after a histogram load
      "52:failed" // a histogram where none is expected
    ])
    const c = Runner.countReport(report)
    assert.deepStrictEqual([c.passed, c.failed, c.unsupported, c.total], [7, 6, 2, 15])
    // Float-only: all but the info() eval and the two histogram evals.
    assert.deepStrictEqual([c.floatOnlyPassed, c.floatOnlyTotal], [6, 12])
    assert.match(Runner.fileLine(report), /^t\.test: 7 passed, 6 failed, 2 unsupported of 15$/)
    assert.match(Runner.verboseLines(report).join("\n"), /t\.test:28: FAILED eval instant at 1m wrong\n {2}reason: {3}expected 41 for \{\} but got 42/)
  })

  it("checks annotations as promqltest does: warn/info need one, messages must match both ways, no_* allow none", () => {
    const evalOf = (expectations: string) => {
      const cmd = Runner.parseScript(`eval instant at 1m x\n${expectations}\n  {} 1\n`).find((c) => c.kind === "eval")
      if (cmd?.kind !== "eval") throw new Error("no eval")
      return cmd
    }
    const value = (warnings: Array<string>, infos: Array<string>): Value => ({ type: "vector", samples: [], annotations: { warnings, infos } })
    const w = "PromQL warning: sort is ineffective for range queries since results are always ordered by labels"
    const i = "PromQL info: ignored histogram in max aggregation"
    assert.isUndefined(Runner.checkAnnotations(evalOf("  expect warn"), value([w], [])))
    assert.match(Runner.checkAnnotations(evalOf("  expect warn"), value([], [i]))!.message, /expected warn annotations but none/)
    assert.isUndefined(Runner.checkAnnotations(evalOf(`  expect warn msg: ${w}`), value([w], [i])))
    assert.match(Runner.checkAnnotations(evalOf(`  expect warn msg: ${w}`), value([w, "PromQL warning: other"], []))!.message, /unexpected warn annotation/)
    assert.isUndefined(Runner.checkAnnotations(evalOf("  expect info regex: ignored histogram"), value([], [i])))
    assert.match(Runner.checkAnnotations(evalOf("  expect no_info"), value([], [i]))!.message, /unexpected info annotations/)
    assert.isUndefined(Runner.checkAnnotations(evalOf("  expect no_warn"), value([], [i])))
    // No expectation: nothing is checked (as promqltest since annotations became explicit).
    assert.isUndefined(Runner.checkAnnotations(evalOf(""), value([w], [i])))
  })

  it("checks instant evals in range mode too", async () => {
    // An engine whose range queries disagree with its instant queries.
    const broken: Runner.Engine = { ...fakeEngine, rangeQuery: () => Effect.succeed({ type: "matrix", series: [] }) }
    const report = await Runner.runScript("r.test", "load 1m\n  m 1\n\neval instant at 1m m\n  m 1\n", broken)
    assert.strictEqual(report.outcomes[0]!.status, "failed")
    assert.match(report.outcomes[0]!.reason ?? "", /^range mode: expected metric m\{\} with 1 not found/)
    const off = await Runner.runScript("r.test", "load 1m\n  m 1\n\neval instant at 1m m\n  m 1\n", broken, { rangeMode: false })
    assert.strictEqual(off.outcomes[0]!.status, "passed")
  })

  it("re-runs instant evals with @ at other times", async () => {
    assert.strictEqual(Runner.atModifierQuery("m", 60_000, fakeParse), "m @ 60.000")
    const seen: Array<string> = []
    const recording: Runner.Engine = {
      ...fakeEngine,
      instantQuery: (source, q, t) => {
        seen.push(`${q} at ${t}`)
        return fakeEngine.instantQuery(source, q, t)
      }
    }
    const report = await Runner.runScript("a.test", "load 1m\n  m 1 2\n\neval instant at 1m m\n  m 2\n", recording)
    assert.strictEqual(report.outcomes[0]!.status, "passed")
    assert.deepStrictEqual(seen, ["m at 60000", "m @ 60.000 at -600000", "m @ 60.000 at 0", "m @ 60.000 at 12000", "m @ 60.000 at 60000", "m @ 60.000 at 600000"])
    // An engine that ignores @ fails the variants evaluated at other times.
    const ignoring: Runner.Engine = { ...fakeEngine, instantQuery: (source, q, t) => fakeEngine.instantQuery(source, q.replace(/ @ .*$/, ""), t) }
    const bad = await Runner.runScript("a.test", "load 1m\n  m 1 2\n\neval instant at 1m m\n  m 2\n", ignoring)
    assert.strictEqual(bad.outcomes[0]!.status, "failed")
    assert.match(bad.outcomes[0]!.reason ?? "", /^@ variant m @ 60\.000 at -600s: expected metric m\{\} with 2 not found/)
  })
})

// -------------------------------------------------------------------------------------------------
// The ratchet

const dir = process.env["PROMQLTEST_DIR"] ?? Runner.defaultDir
const ratchet = JSON.parse(readFileSync(new URL("./ratchet.json", import.meta.url), "utf8")) as { passed: number }

describe("promqltest ratchet", () => {
  // Prometheus's test files are data beside the project; without them the ratchet is skipped with a
  // warning, except in CI (CI=true), where their absence fails.
  if (!existsSync(dir) && process.env["CI"] !== "true") {
    console.warn(`\n[promqltest] SKIPPED: no PromQL test files at ${dir} (set PROMQLTEST_DIR)\n`)
  }
  it.skipIf(!existsSync(dir) && process.env["CI"] !== "true")(
    `Prometheus's PromQL scripts: at least ratchet.json's passed evals pass (${dir})`,
    async () => {
      const engine = await Runner.loadEngine()
      const reports = await Runner.runDirectory(dir, engine)
      const total = Runner.sumCounts(reports.map(Runner.countReport))
      for (const r of reports) console.log(Runner.fileLine(r))
      console.log(Runner.summaryLine(total))
      assert.isAtLeast(total.passed, ratchet.passed, `fewer evals pass than ratchet.json records; run \`npm run promqltest -- --causes\` to see why`)
      // Every float-only non-experimental eval passes; none fails anywhere.
      assert.strictEqual(total.floatOnlyPassed, total.floatOnlyTotal, "a float-only non-experimental eval does not pass")
      assert.strictEqual(total.failed, 0, "an eval fails; run `npm run promqltest -- --verbose all` to see which")
    },
    600_000
  )
})
