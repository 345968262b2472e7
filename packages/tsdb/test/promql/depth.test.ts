/**
 * Bounded nesting (`promqlDepthMax`): every tree the parser returns is at most that many nodes deep, so
 * the type checker, the printer, the JSON encoder and the evaluator, which recurse over it, never overflow
 * Node's stack. For each shape of nesting, a query exactly at the limit parses, prints, re-parses and
 * evaluates; one level more, and a huge one, fail with the parse error (HTTP 400 `bad_data`), never a
 * `RangeError`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Db, ObjectStore } from "@opendata/core"
import { Effect, Layer } from "effect"
import { HttpRouter } from "effect/http"
import * as Http from "../../src/Http.ts"
import * as Limits from "../../src/limits.ts"
import type { Expr } from "../../src/promql/ast.ts"
import { ParseError } from "../../src/promql/ast.ts"
import { instantQuery, QueryError, rangeQuery } from "../../src/promql/engine.ts"
import { promqlFeatures } from "../../src/promql/types.ts"

/** Duration expressions and the rest of the experimental language switched on: depth is what is tested. */
const everything = { features: promqlFeatures }
import { describeParseError, formatExpr, parse } from "../../src/promql/parser.ts"
import * as Runner from "../../src/promql/testRunner.ts"
import { layer } from "../../src/Tsdb.ts"

const N = Limits.promqlDepthMax
const message = `expression nested too deeply (more than ${N} levels)`

/** The height of a tree (1 for a leaf), duration expressions included; without recursion. */
const height = (root: Expr): number => {
  let max = 0
  const stack: Array<readonly [Expr, number]> = [[root, 1]]
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    const [e, d] = top
    max = Math.max(max, d)
    const children: Array<Expr | undefined> = []
    switch (e.type) {
      case "VectorSelector":
        children.push(e.offsetExpr)
        break
      case "MatrixSelector":
        children.push(e.vector, e.rangeExpr)
        break
      case "Subquery":
        children.push(e.expr, e.rangeExpr, e.stepExpr, e.offsetExpr)
        break
      case "Call":
        children.push(...e.args)
        break
      case "Aggregate":
        children.push(e.param, e.expr)
        break
      case "Binary":
        children.push(e.lhs, e.rhs)
        break
      case "Unary":
      case "Paren":
        children.push(e.expr)
        break
      default:
        break
    }
    for (const c of children) if (c !== undefined) stack.push([c, d + 1])
  }
  return max
}

/** The error `parse` throws; anything else (a RangeError above all) fails the test. */
const parseError = (query: string): ParseError => {
  try {
    parse(query)
  } catch (e) {
    if (e instanceof ParseError) return e
    throw e
  }
  throw new Error(`expected a parse error for a query of ${query.length} characters`)
}

/** `m{job="a"}` and `m{job="b"}`: 0, 1, ..., 19 at 1 s, 2 s, ..., 20 s. */
const source = (() => {
  const store = new Runner.MemoryStore()
  for (const c of Runner.parseScript('load 1s\n  m{job="a"} 1+1x19\n  m{job="b"} 1+1x19')) if (c.kind === "load") store.load(c)
  return store.source({ histograms: false, startTimestamps: false })
})()

const t = 20_000

/** `max_over_time(...max_over_time(m[1m:10s])...[1m:10s])`, k of each: 2k + 1 deep. */
const subqueries = (k: number) => "max_over_time(".repeat(k) + "m" + "[1m:10s])".repeat(k)

interface Shape {
  readonly name: string
  /** A query exactly `N` deep. */
  readonly at: string
  /** Its value at `t`: a scalar, or the number of samples of a vector. */
  readonly value: { readonly scalar: number } | { readonly samples: number }
  /** A query `N + 1` deep, and where its error is. */
  readonly past: string
  readonly pastAt: number
  /** A query far deeper (what used to overflow the stack), and where its error is. */
  readonly huge: string
  readonly hugeAt: number
}

const shapes: ReadonlyArray<Shape> = [
  {
    name: "parentheses",
    at: "(".repeat(N - 1) + "m" + ")".repeat(N - 1),
    value: { samples: 2 },
    past: "(".repeat(N) + "m" + ")".repeat(N),
    // The first expression deeper than N: the `m` inside N parentheses.
    pastAt: N,
    huge: "(".repeat(10_000) + "1" + ")".repeat(10_000),
    hugeAt: N
  },
  {
    name: "unary minus",
    at: "-".repeat(N - 1) + "m",
    value: { samples: 2 },
    past: "-".repeat(N) + "m",
    pastAt: N,
    // Folded into the number literal, but the parser would still recurse once a sign.
    huge: "-".repeat(10_000) + "1",
    hugeAt: N
  },
  {
    name: "a binary chain (left-deep: as deep as it is long)",
    at: "1" + "+1".repeat(N - 1),
    value: { scalar: N },
    past: "1" + "+1".repeat(N),
    // The N-th `+`, which makes the tree N + 1 deep.
    pastAt: 2 * N - 1,
    huge: "1" + "+1".repeat(50_000 - 1),
    hugeAt: 2 * N - 1
  },
  {
    name: "a binary chain of vectors",
    at: "m" + " + m".repeat(N - 1),
    value: { samples: 2 },
    past: "m" + " + m".repeat(N),
    pastAt: 4 * N - 2,
    huge: "m" + " + m".repeat(50_000 - 1),
    hugeAt: 4 * N - 2
  },
  {
    name: "a right-associative chain (^)",
    at: "2" + " ^ 1".repeat(N - 1),
    value: { scalar: 2 },
    past: "2" + " ^ 1".repeat(N),
    // The (N + 1)-th operand.
    pastAt: 4 * N,
    huge: "2" + " ^ 1".repeat(50_000 - 1),
    hugeAt: 4 * N
  },
  {
    name: "nested function calls",
    at: "abs(".repeat(N - 1) + "m" + ")".repeat(N - 1),
    value: { samples: 2 },
    past: "abs(".repeat(N) + "m" + ")".repeat(N),
    pastAt: 4 * N,
    huge: "abs(".repeat(10_000) + "m" + ")".repeat(10_000),
    hugeAt: 4 * N
  },
  {
    name: "nested aggregations",
    at: "sum by (job) (".repeat(N - 1) + "m" + ")".repeat(N - 1),
    value: { samples: 2 },
    past: "sum by (job) (".repeat(N) + "m" + ")".repeat(N),
    pastAt: 14 * N,
    huge: "sum(".repeat(10_000) + "m" + ")".repeat(10_000),
    hugeAt: 4 * N
  },
  {
    name: "nested aggregations with a parameter",
    at: "topk(2, ".repeat(N - 1) + "m" + ")".repeat(N - 1),
    value: { samples: 2 },
    past: "topk(2, ".repeat(N) + "m" + ")".repeat(N),
    // The parameter of the innermost one.
    pastAt: 8 * N - 3,
    huge: "topk(2, ".repeat(10_000) + "m" + ")".repeat(10_000),
    hugeAt: 8 * N - 3
  },
  {
    name: "nested subqueries",
    // A call and a subquery a level each: 2k + 1 deep, parenthesised up to N.
    at: (N % 2 === 0 ? "(" : "") + subqueries(Math.floor((N - 1) / 2)) + (N % 2 === 0 ? ")" : ""),
    value: { samples: 2 },
    past: (N % 2 === 1 ? "(" : "") + subqueries(Math.floor(N / 2)) + (N % 2 === 1 ? ")" : ""),
    // Only the outermost subquery makes the tree too deep.
    pastAt: subqueries(Math.floor(N / 2)).lastIndexOf("[") + (N % 2 === 1 ? 1 : 0),
    huge: subqueries(5_000),
    // Past the limit on the way down, at the first call too deep.
    hugeAt: "max_over_time(".length * N
  },
  {
    name: "a duration expression",
    // A call, the range selector, N - 3 parentheses and the duration.
    at: "count_over_time(m[" + "(".repeat(N - 3) + "1m" + ")".repeat(N - 3) + "])",
    value: { samples: 2 },
    past: "count_over_time(m[" + "(".repeat(N - 2) + "1m" + ")".repeat(N - 2) + "])",
    pastAt: "count_over_time(m[".length + N - 2,
    huge: "m offset " + "(".repeat(10_000) + "1m" + ")".repeat(10_000),
    hugeAt: "m offset ".length + N
  },
  {
    name: "calls around a binary chain",
    at: "abs(".repeat(N / 2) + "m" + " + m".repeat(N / 2 - 1) + ")".repeat(N / 2),
    value: { samples: 2 },
    past: "abs(".repeat(N / 2) + "m" + " + m".repeat(N / 2) + ")".repeat(N / 2),
    // The operator that makes the chain one too long for the depth it starts at.
    pastAt: 4 * (N / 2) + 4 * (N / 2) - 2,
    huge: "abs(".repeat(N / 2) + "m" + " + m".repeat(50_000) + ")".repeat(N / 2),
    hugeAt: 4 * (N / 2) + 4 * (N / 2) - 2
  }
]

describe("promqlDepthMax", () => {
  it("is 256 levels", () => {
    assert.strictEqual(N, 256)
  })

  for (const s of shapes) {
    describe(s.name, () => {
      it("parses, prints and re-parses at the limit", () => {
        const e = parse(s.at)
        assert.strictEqual(height(e), N)
        const text = formatExpr(e)
        assert.strictEqual(height(parse(text)), N)
        assert.strictEqual(formatExpr(parse(text)), text)
        // What /api/v1/parse_query answers.
        assert.isString(JSON.stringify(e))
      })

      it.effect("evaluates at the limit, instant and range", () =>
        Effect.gen(function*() {
          const instant = yield* instantQuery(source, s.at, t, everything)
          const range = yield* rangeQuery(source, s.at, 10_000, t, 5_000, everything)
          if ("scalar" in s.value) {
            assert.deepStrictEqual(instant, { type: "scalar", t, v: s.value.scalar })
            assert.strictEqual(range.type, "matrix")
            if (range.type === "matrix") assert.deepStrictEqual(range.series[0]?.samples.map((p) => p.v), [s.value.scalar, s.value.scalar, s.value.scalar])
          } else {
            assert.strictEqual(instant.type, "vector")
            if (instant.type === "vector") assert.strictEqual(instant.samples.length, s.value.samples)
            assert.strictEqual(range.type, "matrix")
            if (range.type === "matrix") assert.strictEqual(range.series.length, s.value.samples)
          }
        }))

      it("fails one level past the limit, at the token where it gets too deep", () => {
        const e = parseError(s.past)
        assert.strictEqual(e.message, message)
        assert.strictEqual(e.position, s.pastAt)
        assert.strictEqual(describeParseError(s.past, e), `1:${s.pastAt + 1}: parse error: ${message}`)
      })

      it("fails far past the limit with the parse error, not a stack overflow", () => {
        const e = parseError(s.huge)
        assert.strictEqual(e.message, message)
        assert.strictEqual(e.position, s.hugeAt)
      })

      it.effect("is a bad_data query error past the limit", () =>
        Effect.gen(function*() {
          for (const q of [s.past, s.huge]) {
            const instant = yield* Effect.flip(instantQuery(source, q, t, everything))
            assert.instanceOf(instant, QueryError)
            assert.strictEqual(instant.kind, "bad_data")
            assert.strictEqual(instant.message, message)
            const range = yield* Effect.flip(rangeQuery(source, q, 10_000, t, 5_000, everything))
            assert.strictEqual(range.kind, "bad_data")
            assert.strictEqual(range.message, message)
          }
        }))
    })
  }
})

// ---------------------------------------------------------------------------------------------------------
// Random mixtures of every kind of nesting, generated with a known height: at most N parses to a tree of
// exactly that height, more fails with the nesting error.

/** A deterministic generator (mulberry32). */
const random = (seed: number) => {
  let a = seed >>> 0
  return (n: number): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return (((x ^ (x >>> 14)) >>> 0) / 4294967296) * n
  }
}

/**
 * An instant-vector query exactly `h` deep, its binary chains joined by `ops`. `atom`: one that binds
 * tighter than any binary operator and takes a postfix `[..:..]` (no sign, no chain).
 */
const generate = (rand: (n: number) => number, ops: ReadonlyArray<string>, h: number, atom = false): string => {
  const go = (h: number, atom = false): string => generate(rand, ops, h, atom)
  if (h === 1) return "m"
  if (h === 2) return rand(2) < 1 ? "(m)" : "abs(m)"
  switch (Math.floor(rand(atom ? 5 : 7))) {
    case 0:
      return `(${go(h - 1)})`
    case 1:
      return `abs(${go(h - 1)})`
    case 2:
      return rand(2) < 1 ? `sum by (job) (${go(h - 1)})` : `topk(2, ${go(h - 1)})`
    case 3:
      // A call over a subquery over an atom (2 levels), or a selector with an offset in h - 2 parentheses.
      return rand(2) < 1 ? `max_over_time(${go(h - 2, true)}[1m:10s])` : `m offset ${"(".repeat(h - 2)}1s${")".repeat(h - 2)}`
    case 4:
      // A call over a range selector over a duration in h - 3 parentheses.
      return `count_over_time(m[${"(".repeat(h - 3)}1m${")".repeat(h - 3)}])`
    case 5:
      return `-${go(h - 1, true)}`
    default: {
      // A left-deep chain of k operands: the first sits k - 1 levels down, the i-th (i >= 2) k - i + 1.
      // The others are shallow (at most 3 deep), which keeps the query's length linear in its depth.
      const k = 2 + Math.floor(rand(Math.min(h - 1, 40)))
      const op = ops[Math.floor(rand(ops.length))]!
      const operands = [go(h - (k - 1), true)]
      for (let i = 2; i <= k; i++) operands.push(go(1 + Math.floor(rand(Math.min(3, h - k + i - 1))), true))
      return operands.join(op)
    }
  }
}

describe("random nesting", () => {
  it("parses every query up to the limit to a tree that deep, and rejects every deeper one", () => {
    const rand = random(20_240_601)
    for (let i = 0; i < 300; i++) {
      const h = N - 3 + (i % 7)
      const q = generate(rand, [" + ", " or ", " * ", " / ", " > ", " unless "], h)
      if (h <= N) {
        const e = parse(q)
        assert.strictEqual(height(e), h, q)
        assert.strictEqual(height(parse(formatExpr(e))), h, q)
      } else {
        assert.strictEqual(parseError(q).message, message, q)
      }
    }
  })

  it.effect("evaluates queries at the limit", () =>
    Effect.gen(function*() {
      const rand = random(7)
      for (let i = 0; i < 30; i++) {
        // Arithmetic keeps every result's label sets distinct (`or` of series with and without a name may not).
        const q = generate(rand, [" + ", " * "], N)
        const v = yield* instantQuery(source, q, t, everything)
        assert.strictEqual(v.type, "vector", q)
      }
    }))
})

// ---------------------------------------------------------------------------------------------------------
// Over HTTP

describe("the HTTP API", () => {
  it.effect("answers a query nested too deeply with 400 bad_data, never a 500", () =>
    Effect.gen(function*() {
      const tsdb = layer({ retentionIntervalMs: Number.MAX_SAFE_INTEGER }).pipe(
        Layer.provide(Db.layer({ path: "tsdb/", flushIntervalMs: 0, memtableBytesMax: 64 * 1024, gc: false })),
        Layer.provide(ObjectStore.layerMemory)
      )
      // The handlers read the Tsdb service from the server's context, as Server.ts provides it.
      const app = Http.routes.pipe(Layer.provideMerge(tsdb))
      const { dispose, handler } = HttpRouter.toWebHandler(app, { disableLogger: true })
      const post = (path: string, query: string) =>
        Effect.promise(async () => {
          const range = path.endsWith("query_range") ? { start: "10", end: "20", step: "5" } : {}
          const res = await handler(
            new Request(`http://localhost${path}`, {
              method: "POST",
              headers: { "content-type": "application/x-www-form-urlencoded" },
              body: new URLSearchParams({ query, ...range }).toString()
            })
          )
          return { status: res.status, body: (await res.json()) as unknown }
        })
      const deep = ["1+".repeat(50_000) + "1", "(".repeat(10_000) + "1" + ")".repeat(10_000), "-".repeat(10_000) + "1"]
      for (const path of ["/api/v1/format_query", "/api/v1/parse_query", "/api/v1/query", "/api/v1/query_range"]) {
        for (const q of deep) {
          const { body, status } = yield* post(path, q)
          assert.deepStrictEqual({ status, body }, { status: 400, body: { status: "error", errorType: "bad_data", error: message } }, path)
        }
      }
      const atLimit = "1" + "+1".repeat(N - 1)
      assert.deepStrictEqual(yield* post("/api/v1/format_query", atLimit), { status: 200, body: { status: "success", data: "1" + " + 1".repeat(N - 1) } })
      assert.strictEqual((yield* post("/api/v1/parse_query", atLimit)).status, 200)
      yield* Effect.promise(dispose)
    }))
})
