/**
 * The PromQL parser: a table of valid queries with their canonical text (as Prometheus's
 * `/api/v1/format_query` prints it), the shape of the tree where it matters (precedence, modifiers,
 * duration expressions), a table of invalid queries with Prometheus's messages, durations, and a walk over
 * every `eval` query of Prometheus's own test corpus (promqltest v3.14.0), which must parse.
 */
import { defaultDir } from "../../src/promql/testRunner.ts"
import { assert, describe, it } from "@effect/vitest"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { ParseError } from "../../src/promql/ast.ts"
import {
  describeParseError,
  formatDuration,
  formatExpr,
  functions,
  parse,
  parseDuration,
  resolveDurations,
  typeOf
} from "../../src/promql/parser.ts"

const parseError = (query: string): ParseError => {
  try {
    parse(query)
  } catch (e) {
    if (e instanceof ParseError) return e
    throw e
  }
  throw new Error(`expected a parse error for ${query}`)
}

/** The tree without positions, for structural comparisons. */
const shape = (e: unknown): unknown =>
  Array.isArray(e)
    ? e.map(shape)
    : typeof e === "object" && e !== null
      ? Object.fromEntries(Object.entries(e).filter(([k]) => k !== "pos").map(([k, v]) => [k, shape(v)]))
      : e

// ---------------------------------------------------------------------------------------------------------

describe("valid queries", () => {
  // [query, canonical text (undefined: the query itself)]
  const cases: ReadonlyArray<readonly [string, string?]> = [
    // literals
    ["1"],
    ["-1"],
    ["+1", "1"],
    ["- - - 1", "-1"],
    [".5", "0.5"],
    ["5.", "5"],
    ["1e3", "1000"],
    ["12.34e-6", "0.00001234"],
    ["1e21", "1000000000000000000000"],
    ["0x1F", "31"],
    ["010", "8"],
    ["Inf", "+Inf"],
    ["-inf", "-Inf"],
    ["nAn", "NaN"],
    ['"foo"'],
    ["'foo'", '"foo"'],
    ["`a\\nb`", '"a\\\\nb"'],
    ['"a\\tb\\"c"'],
    ['"\\u00e9\\xc3\\xa9\\101"', '"ééA"'],
    ['("Foo")'],
    // selectors
    ["foo"],
    ["foo:bar:baz"],
    ["foo{}", "foo"],
    ['foo{b="2",a="1"}', 'foo{a="1",b="2"}'],
    ['foo{a="1",}', 'foo{a="1"}'],
    ['{__name__=~"foo|bar"}'],
    ["{a!~'x', b=\"y\"}", '{a!~"x",b="y"}'],
    ['{"metric.name", "label.x"="v"}', '{"label.x"="v",__name__="metric.name"}'],
    ['foo{"a"="b"}', 'foo{a="b"}'],
    ['foo{on="1", by="2", offset="3", bool="4", nan="5"}', 'foo{bool="4",by="2",nan="5",offset="3",on="1"}'],
    ["sum"],
    ["by"],
    ["offset"],
    ["anchored"],
    ["sum{a='b'}", 'sum{a="b"}'],
    ["avg + count", "avg + count"],
    ["foo[5m]"],
    ["foo[90s]", "foo[1m30s]"],
    ["foo[1800]", "foo[30m]"],
    ["foo[1h30m]"],
    ["foo[1d]"],
    ["foo[2w]"],
    ["foo[1y]"],
    ["foo[100ms]"],
    ["foo offset 5m"],
    ["foo offset -5m"],
    ["foo OFFSET 1h30m", "foo offset 1h30m"],
    ["foo offset 100", "foo offset 1m40s"],
    ["foo @ 100", "foo @ 100.000"],
    ["foo @ 1.234", "foo @ 1.234"],
    ["foo @ -5", "foo @ -5.000"],
    ["foo @ 1m40s", "foo @ 100.000"],
    ["foo @ start()"],
    ["foo @ END()", "foo @ end()"],
    ["foo offset 5m @ 100", "foo @ 100.000 offset 5m"],
    ["foo[5m] offset 1m @ 10", "foo[5m] @ 10.000 offset 1m"],
    ["foo[5m:1m]"],
    ["foo[5m:]"],
    ["rate(foo[5m])[30m:1m] offset 1m @ end()", "rate(foo[5m])[30m:1m] @ end() offset 1m"],
    ['{__name__="up"} @ start()[1h:1m] offset 1m16s', '{__name__="up"} @ start()[1h:1m] offset 1m16s'],
    ["foo[5m] anchored"],
    ["foo[5m] smoothed"],
    ["foo smoothed"],
    ["foo @ 100 smoothed + 0", "foo @ 100.000 smoothed + 0"],
    // functions
    ["time()"],
    ["rate(foo[5m])"],
    ["rate(foo[5m] anchored)"],
    ["changes(foo[5m] anchored)"],
    ["increase(foo[5m] smoothed)"],
    ["histogram_quantile(0.9, sum by (le) (rate(foo_bucket[5m])))"],
    ["round(foo)"],
    ["round(foo, 0.5)"],
    ["hour()"],
    ['label_join(foo, "dst", ",", "a", "b", "c")'],
    ['label_replace(foo, "dst", "$1", "src", "(.*)")'],
    ['sort_by_label(foo, "a", "b")'],
    ['histogram_quantiles(foo, "q", 0.1, 0.5, 0.9)'],
    ["predict_linear(foo[1h], 1h)"],
    ["predict_linear(foo[1h], 3600)"],
    ["clamp(foo, 0, 1)"],
    ["info(foo)"],
    ['info(foo, {data=~".*"})'],
    ["start() + end() - step() * range()"],
    ["min_of(3, 5)"],
    ["STEP()", "step()"],
    ["start_timestamp(foo)"],
    ["vector(1)"],
    ["pi()"],
    // aggregations
    ["sum(foo)"],
    ["sum(rate(http_requests_total[5m])) by (job)", "sum by (job) (rate(http_requests_total[5m]))"],
    ["SUM BY (job) (foo)", "sum by (job) (foo)"],
    ["sum without (a, b) (foo)"],
    ["sum without () (foo)"],
    ["sum by () (foo)", "sum(foo)"],
    ["sum by (a,) (foo)", "sum by (a) (foo)"],
    ["sum by (on, bool, offset, by) (foo)"],
    ['sum by ("foo.bar", job) (foo)'],
    ["topk(3, foo)"],
    ["topk by (a) (3, foo)"],
    ["bottomk(1, foo) without (a)", "bottomk without (a) (1, foo)"],
    ["quantile(0.9, foo)"],
    ['count_values("value", foo)'],
    ['count_values(((("v"))), foo)'],
    ["limitk(2, foo)"],
    ["limit_ratio(0.5, foo)"],
    ["group(foo)"],
    ["stddev(foo)"],
    // operators
    ["1 + 2 * 3"],
    ["(1 + 2) * 3"],
    ["2 ^ 3 ^ 2"],
    ["-2 ^ 2"],
    ["-2^---1*3", "-2 ^ -1 * 3"],
    ["1 - -1"],
    ["10 atan2 20"],
    ["foo ATAN2 bar", "foo atan2 bar"],
    ["1 == bool 2"],
    ["foo > 2"],
    ["foo > bool 2"],
    ["foo and bar or baz unless qux"],
    ["foo + on(a, b) bar", "foo + on (a, b) bar"],
    ["foo + ignoring(a) bar", "foo + ignoring (a) bar"],
    ["foo + on() bar", "foo + on () bar"],
    ["foo * on(a) group_left(b) bar", "foo * on (a) group_left (b) bar"],
    ["foo * ignoring(a) group_right bar", "foo * ignoring (a) group_right () bar"],
    ["foo == bool on(a) bar", "foo == bool on (a) bar"],
    ["foo and on(a) bar", "foo and on (a) bar"],
    ["foo + fill(0) bar"],
    ["foo + fill_left(1) fill_right(-Inf) bar"],
    ["foo + on(a) group_left fill_right(1) bar", "foo + on (a) group_left () fill_right(1) bar"],
    ["foo > bool fill(25) bar"],
    ["fill + fill(0) other"],
    ["other + fill"],
    ["other + fill(0) fill"],
    ["foo offset 100 + 2", "foo offset 1m40s + 2"],
    ["foo offset 2 ^ 2", "foo offset 2s ^ 2"],
    ["-foo offset 5m"],
    ["-{job=\"api\"}", '-{job="api"}'],
    ["+foo"],
    // duration expressions
    ["foo[26m+4m]", "foo[26m + 4m]"],
    ["foo[60*30]", "foo[60 * 30]"],
    ["foo[-5m+35m]", "foo[-5m + 35m]"],
    ["foo[1h30m % 1h]"],
    ["foo[step()]"],
    ["foo[1+(STep()-5)*2]", "foo[1 + (step() - 5) * 2]"],
    ["foo[min_of(step()+1,1h)]", "foo[min_of(step() + 1, 1h)]"],
    ["foo[29s+1s:5s+5s]", "foo[29s + 1s:5s + 5s]"],
    ["foo offset (1h / 2)"],
    ["foo offset -(20 * 2)"],
    ["foo offset step()"],
    ["foo offset -min_of(step(), 1s) + 8000"],
    ["foo offset range()"],
    // comments and whitespace
    ["sum(foo) # the total", "sum(foo)"],
    ["sum by (job) (\n  # requests\n  rate(foo[5m])\n)", "sum by (job) (rate(foo[5m]))"],
    // the example of the brief
    ["sum by (job) (rate(http_requests_total[5m]))"]
  ]
  for (const [query, canonical] of cases) {
    it(`parses ${JSON.stringify(query)}`, () => {
      const text = formatExpr(parse(query))
      assert.strictEqual(text, canonical ?? query)
      // The canonical text parses to the same text.
      assert.strictEqual(formatExpr(parse(text)), text)
    })
  }
})

describe("the tree", () => {
  it("has the metric name outside braces as name and as a __name__ matcher", () => {
    const e = parse('foo{a=~"b.*"}')
    assert.deepStrictEqual(e, {
      type: "VectorSelector",
      name: "foo",
      matchers: [
        { name: "__name__", type: "=", value: "foo" },
        { name: "a", type: "=~", value: "b.*" }
      ],
      offsetMs: 0,
      at: undefined,
      pos: { start: 0, end: 13 }
    })
  })

  it("folds a sign into a number literal but not through ^", () => {
    assert.deepStrictEqual(shape(parse("-1")), { type: "NumberLiteral", value: -1 })
    assert.deepStrictEqual(shape(parse("-2 ^ 2")), {
      type: "Unary",
      op: "-",
      expr: {
        type: "Binary",
        op: "^",
        lhs: { type: "NumberLiteral", value: 2 },
        rhs: { type: "NumberLiteral", value: 2 },
        bool: false,
        matching: undefined
      }
    })
  })

  it("binds ^ to the right and the others to the left", () => {
    const pow = parse("2 ^ 3 ^ 2")
    assert.strictEqual(pow.type === "Binary" && pow.rhs.type, "Binary")
    const sub = parse("1 - 2 - 3")
    assert.strictEqual(sub.type === "Binary" && sub.lhs.type, "Binary")
    const mixed = parse("a or b and c unless d")
    assert.isTrue(mixed.type === "Binary" && mixed.op === "or" && mixed.rhs.type === "Binary" && mixed.rhs.op === "unless")
  })

  it("reads the histogram trim operators at the level of comparisons", () => {
    const upper = parse("h </ 2 * 3")
    assert.isTrue(upper.type === "Binary" && upper.op === "</" && upper.rhs.type === "Binary")
    const lower = parse("h >/ 1 == 2")
    assert.isTrue(lower.type === "Binary" && lower.op === "==" && lower.lhs.type === "Binary" && lower.lhs.op === ">/")
  })

  it("puts unary minus at the level of *", () => {
    const e = parse("-a * b")
    assert.isTrue(e.type === "Binary" && e.op === "*" && e.lhs.type === "Unary")
    const f = parse("a * -b ^ c")
    assert.isTrue(f.type === "Binary" && f.rhs.type === "Unary" && f.rhs.expr.type === "Binary")
  })

  it("keeps offset and @ on the selector, also inside a range selector", () => {
    const e = parse("rate(foo[5m] offset -1m @ 1.5)")
    assert.strictEqual(e.type, "Call")
    const m = e.type === "Call" ? e.args[0] : undefined
    assert.strictEqual(m?.type, "MatrixSelector")
    if (m?.type !== "MatrixSelector") return
    assert.strictEqual(m.rangeMs, 300_000)
    assert.strictEqual(m.vector.offsetMs, -60_000)
    assert.strictEqual(m.vector.at, 1500)
    assert.deepStrictEqual(m.pos, { start: 5, end: 29 })
    assert.deepStrictEqual(shape(parse("foo @ start()")), { ...(shape(parse("foo")) as object), at: "start" })
  })

  it("builds subqueries with an optional step", () => {
    const e = parse("sum(foo)[1h:] offset 5m @ 10")
    assert.isTrue(e.type === "Subquery")
    if (e.type !== "Subquery") return
    assert.strictEqual(e.rangeMs, 3_600_000)
    assert.strictEqual(e.stepMs, undefined)
    assert.strictEqual(e.offsetMs, 300_000)
    assert.strictEqual(e.at, 10_000)
    assert.strictEqual(e.expr.type, "Aggregate")
    const s = parse("foo[1h:30s]")
    assert.strictEqual(s.type === "Subquery" && s.stepMs, 30_000)
  })

  it("describes vector matching", () => {
    const e = parse("a * on(x) group_left(y) b")
    assert.deepStrictEqual(e.type === "Binary" && e.matching, {
      card: "many-to-one",
      on: true,
      labels: ["x"],
      include: ["y"]
    })
    const plain = parse("a / b")
    assert.deepStrictEqual(plain.type === "Binary" && plain.matching, {
      card: "one-to-one",
      on: false,
      labels: [],
      include: []
    })
    const set = parse("a unless ignoring(z) b")
    assert.deepStrictEqual(set.type === "Binary" && set.matching, {
      card: "many-to-many",
      on: false,
      labels: ["z"],
      include: []
    })
    const filled = parse("a - fill_left(1) fill_right(2) b")
    assert.deepStrictEqual(filled.type === "Binary" && filled.matching, {
      card: "one-to-one",
      on: false,
      labels: [],
      include: [],
      fillLeft: 1,
      fillRight: 2
    })
    // No matching unless both sides are instant vectors.
    const scalar = parse("a + on() 1")
    assert.isTrue(scalar.type === "Binary" && scalar.matching === undefined)
    const bool = parse("a > bool 1")
    assert.isTrue(bool.type === "Binary" && bool.bool && bool.matching === undefined)
  })

  it("builds aggregations with parameters and grouping", () => {
    assert.deepStrictEqual(shape(parse("topk without (a) (5, foo)")), {
      type: "Aggregate",
      op: "topk",
      expr: shape(parse("foo")),
      param: { type: "NumberLiteral", value: 5 },
      grouping: ["a"],
      without: true
    })
    const e = parse("COUNT(foo) BY (Job)")
    assert.isTrue(e.type === "Aggregate" && e.op === "count" && e.grouping[0] === "Job" && !e.without)
    assert.deepStrictEqual(e.pos, { start: 0, end: 19 })
  })

  it("records anchored and smoothed on the selector", () => {
    const e = parse("increase(foo[1m] anchored)")
    assert.isTrue(e.type === "Call" && e.args[0]?.type === "MatrixSelector" && e.args[0].vector.anchored === true)
    const s = parse("foo smoothed")
    assert.isTrue(s.type === "VectorSelector" && s.smoothed === true && s.anchored === undefined)
  })

  it("folds constant duration expressions and keeps step()/range() ones for resolveDurations", () => {
    const c = parse("foo[2m * (10 + 5)] offset (1h / 2)")
    assert.isTrue(c.type === "MatrixSelector")
    if (c.type !== "MatrixSelector") return
    assert.strictEqual(c.rangeMs, 1_800_000)
    assert.strictEqual(c.vector.offsetMs, 1_800_000)
    assert.strictEqual(c.rangeExpr?.type, "Binary")
    const literal = parse("foo[1800]")
    assert.isTrue(literal.type === "MatrixSelector" && literal.rangeMs === 1_800_000 && literal.rangeExpr === undefined)

    const d = parse("sum_over_time(foo[step() + 1s:step()] offset -min_of(range(), 8s))")
    const ctx = { stepMs: 5_000, rangeMs: 10_000 }
    const r = resolveDurations(d, ctx)
    const sq = r.type === "Call" ? r.args[0] : undefined
    assert.isTrue(sq?.type === "Subquery")
    if (sq?.type !== "Subquery") return
    assert.strictEqual(sq.rangeMs, 6_000)
    assert.strictEqual(sq.stepMs, 5_000)
    assert.strictEqual(sq.offsetMs, -8_000)
    // resolveDurations leaves the tree it was given alone.
    const before = d.type === "Call" ? d.args[0] : undefined
    assert.strictEqual(before?.type === "Subquery" && before.rangeMs, 0)

    const o = resolveDurations(parse("foo offset (step() / 10)"), ctx)
    assert.strictEqual(o.type === "VectorSelector" && o.offsetMs, 500)
    assert.strictEqual(resolveDurations(parse("foo[range()]"), { stepMs: 1000, rangeMs: 60_000 }).type, "MatrixSelector")
    assert.throws(() => resolveDurations(parse("foo[range()]"), { stepMs: 0, rangeMs: 0 }), /duration must be greater than 0/)
  })

  it("reads durations as seconds where a number is expected", () => {
    assert.deepStrictEqual(shape(parse("1h")), { type: "NumberLiteral", value: 3600, duration: true })
    assert.deepStrictEqual(shape(parse("-90s")), { type: "NumberLiteral", value: -90, duration: true })
    assert.strictEqual(formatExpr(parse("time() - 1h")), "time() - 1h")
  })

  it("reports the type of an expression", () => {
    const types: ReadonlyArray<readonly [string, string]> = [
      ["1", "scalar"],
      ['"a"', "string"],
      ["foo", "vector"],
      ["foo[5m]", "matrix"],
      ["foo[5m:]", "matrix"],
      ["time()", "scalar"],
      ["scalar(foo)", "scalar"],
      ["1 + 1", "scalar"],
      ["1 + foo", "vector"],
      ["-(1)", "scalar"],
      ["(foo)", "vector"],
      ["sum(foo)", "vector"],
      ["1 == bool 1", "scalar"],
      ["rate(foo[5m])", "vector"]
    ]
    for (const [q, t] of types) assert.strictEqual(typeOf(parse(q)), t, q)
  })

  it("gives every node its character range", () => {
    const e = parse("sum(rate(foo[5m])) + 1")
    assert.deepStrictEqual(e.pos, { start: 0, end: 22 })
    assert.isTrue(e.type === "Binary" && e.lhs.pos.end === 18 && e.rhs.pos.start === 21)
  })
})

// ---------------------------------------------------------------------------------------------------------

describe("invalid queries", () => {
  // [query, fragment of the message, position (optional)]
  const cases: ReadonlyArray<readonly [string, string, number?]> = [
    ["", "no expression found in input", 0],
    ["  # only a comment", "no expression found in input"],
    ["1 +", "unexpected end of input", 3],
    ["foo bar", 'unexpected identifier "bar"', 4],
    ["foo 1", 'unexpected number "1"'],
    ["sum(foo", "unclosed left parenthesis", 7],
    ["foo)", "unexpected right parenthesis ')'", 3],
    ["foo[5m", "unclosed left bracket"],
    ['foo{a="b"', "unexpected end of input inside braces"],
    ["foo{a=1}", 'unexpected number "1" in label matching, expected string'],
    ["foo{a}", 'unexpected "}" in label matching, expected label matching operator'],
    ["foo{a==\"b\"}", "unexpected <op:==> in label matching, expected label matching operator"],
    ["foo !~ bar", "unexpected <op:!~>"],
    ["foo ! bar", "unexpected character after '!'"],
    ["foo $", "unexpected character: '$'"],
    ["5mx", 'bad number or duration syntax: "5mx"'],
    ["foo[1.5m]", 'not a valid duration string: "1.5m"'],
    ["foo[1m1h]", 'not a valid duration string: "1m1h"'],
    ["'abc", "unterminated quoted string"],
    ['"a\nb"', "unterminated quoted string"],
    ['"\\q"', "unknown escape sequence"],
    ['"\\\'"', "unknown escape sequence"],
    ["{}", "vector selector must contain at least one non-empty matcher", 0],
    ['{a=""}', "vector selector must contain at least one non-empty matcher"],
    ['{a=~".*"}', "vector selector must contain at least one non-empty matcher"],
    ['{a!~".+"}', "vector selector must contain at least one non-empty matcher"],
    ['foo{__name__="bar"}', 'metric name must not be set twice: "foo" or "bar"'],
    ['foo{a=~"(.*"}', "error parsing regexp"],
    ["sum by foo (bar)", 'unexpected identifier "foo" in grouping opts, expected "("'],
    ["sum by (1) (bar)", 'unexpected number "1" in grouping opts, expected label'],
    ["sum by (a b) (bar)", 'unexpected identifier "b" in grouping opts, expected "," or ")"'],
    ["sum()", "no arguments for aggregate expression provided"],
    ["sum(a, b)", "wrong number of arguments for aggregate expression provided, expected 1, got 2"],
    ["topk(foo)", "wrong number of arguments for aggregate expression provided, expected 2, got 1"],
    ["sum(foo[5m])", "expected type instant vector in aggregation expression, got range vector", 4],
    ["sum(1)", "expected type instant vector in aggregation expression, got scalar"],
    ['topk("a", foo)', "expected type scalar in aggregation parameter, got string"],
    ["count_values(1, foo)", "expected type string in aggregation parameter, got scalar"],
    ["quantile(foo, bar)", "expected type scalar in aggregation parameter, got instant vector"],
    ["foo(bar)", 'unknown function with name "foo"', 0],
    ["Rate(foo[5m])", 'unknown function with name "Rate"'],
    ["rate(foo)", 'expected type range vector in call to function "rate", got instant vector', 5],
    ["abs(foo[5m])", 'expected type instant vector in call to function "abs", got range vector'],
    ["rate()", 'expected 1 argument(s) in call to "rate", got 0'],
    ["rate(foo[5m], 1)", 'expected 1 argument(s) in call to "rate", got 2'],
    ["label_join(foo)", 'expected at least 3 argument(s) in call to "label_join", got 1'],
    ["round(foo, 1, 2)", 'expected at most 2 argument(s) in call to "round", got 3'],
    ['label_replace(foo, "a", "b", "c", 1)', 'expected type string in call to function "label_replace", got scalar'],
    ["vector(foo)", 'expected type scalar in call to function "vector", got instant vector'],
    ["rate(foo[5m],)", "trailing commas not allowed in function call args"],
    ["info(foo, bar)", "expected label selectors only, got vector selector instead"],
    ['info(foo, "a")', 'expected type instant vector in call to function "info", got string'],
    ["(foo)[5m]", "ranges only allowed for vector selectors"],
    ["rate(foo[5m])[5m]", "ranges only allowed for vector selectors"],
    ["foo offset 5m [5m]", "no offset modifiers allowed before range"],
    ["foo @ 10 [5m]", "no @ modifiers allowed before range"],
    ["foo[5m][5m:1m]", "subquery is only allowed on instant vector, got matrix instead"],
    ["1[5m:1m]", "subquery is only allowed on instant vector, got scalar instead"],
    ["foo[5m:1m:]", 'unexpected ":" in subquery selector, expected "]"'],
    ["foo[5m foo]", 'unexpected identifier "foo" in subquery or range, expected ":" or "]"'],
    ["foo[]", 'unexpected "]" in duration expression, expected number or duration'],
    ["foo[-5m]", "duration must be greater than 0"],
    ["foo[5m - 5m]", "duration must be greater than 0"],
    ["foo[5m:-1m]", "duration must be greater than 0"],
    ["foo[1h / 0]", "division by zero"],
    ["foo[1h % 0]", "modulo by zero"],
    ["foo offset 5m offset 1m", "offset may not be set multiple times"],
    ["foo @ 1 @ 2", "@ <timestamp> may not be set multiple times"],
    ["sum(foo) offset 5m", "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery"],
    ["(foo) @ 5", "@ modifier must be preceded by an instant vector selector or range vector selector or a subquery"],
    ["foo offset bar", 'unexpected identifier "bar" in offset, expected number or duration'],
    ["foo @ bar", 'unexpected identifier "bar" in @, expected timestamp'],
    ["foo @ NaN", "timestamp out of bounds for @ modifier"],
    ["foo @ Inf", "timestamp out of bounds for @ modifier"],
    ["foo[5m:1m] anchored", "anchored modifier is not supported for subqueries"],
    ["foo anchored smoothed", "anchored and smoothed modifiers cannot be used together"],
    ["sum(foo) smoothed", "smoothed modifier must be preceded by"],
    ["deriv(foo[3m] smoothed)", "smoothed modifier can only be used with: delta, increase, rate - not with deriv"],
    ["max_over_time(foo[3m] anchored)", "anchored modifier can only be used with: changes, delta, increase, rate, resets - not with max_over_time"],
    ["-foo[5m]", 'unary expression only allowed on expressions of type scalar or instant vector, got "range vector"'],
    ['-"a"', 'unary expression only allowed on expressions of type scalar or instant vector, got "string"'],
    ["foo[5m] + 1", "binary expression must contain only scalar and instant vector types"],
    ['"a" + 1', "binary expression must contain only scalar and instant vector types"],
    ["1 == 1", "comparisons between scalars must use BOOL modifier", 2],
    ["foo + bool bar", "bool modifier can only be used on comparison operators", 4],
    ["foo and bool bar", "bool modifier can only be used on comparison operators"],
    ["foo and 1", 'set operator "and" not allowed in binary scalar expression'],
    ["1 or foo", 'set operator "or" not allowed in binary scalar expression'],
    ["foo and on(a) group_left bar", 'no grouping allowed for "and" operation'],
    ["1 + on(a) foo", "vector matching only allowed between instant vectors"],
    ["foo * on(a) group_left(a) bar", 'label "a" must not occur in ON and GROUP clause at once'],
    ["1 + fill(0) foo", "filling in missing series only allowed between instant vectors"],
    ["foo and fill(0) bar", "filling in missing series not allowed for set operators"],
    ["foo + fill(0) fill(1) bar", "fill modifier may not be set multiple times"],
    ["foo + group_left bar", "unexpected <group_left>"],
    ["on", "unexpected <on>"],
    ["foo + bool", "unexpected end of input"]
  ]
  for (const [query, message, position] of cases) {
    it(`rejects ${JSON.stringify(query)}`, () => {
      const e = parseError(query)
      assert.include(e.message, message)
      if (position !== undefined) assert.strictEqual(e.position, position)
    })
  }

  it("describes an error as Prometheus does", () => {
    const q = "sum(\n  rate(foo[5m]) +\n)"
    assert.strictEqual(describeParseError(q, parseError(q)), "3:1: parse error: unexpected \")\"")
    assert.strictEqual(describeParseError("sum(foo", parseError("sum(foo")), "1:8: parse error: unclosed left parenthesis")
  })
})

// ---------------------------------------------------------------------------------------------------------

describe("durations", () => {
  it("parses Prometheus durations and float seconds", () => {
    const cases: ReadonlyArray<readonly [string, number]> = [
      ["1h30m", 5_400_000],
      ["5m", 300_000],
      ["1d", 86_400_000],
      ["1w", 604_800_000],
      ["1y", 31_536_000_000],
      ["100ms", 100],
      ["1m40s", 100_000],
      ["0", 0],
      ["0s", 0],
      ["30", 30_000],
      ["1.5", 1_500],
      ["-5", -5_000],
      ["1e3", 1_000_000]
    ]
    for (const [s, ms] of cases) assert.strictEqual(parseDuration(s), ms, s)
    for (const bad of ["", "1.5m", "5x", "1m1h", "m", "1M", "Inf"]) {
      assert.throws(() => parseDuration(bad), ParseError, undefined, bad)
    }
  })

  it("prints durations as Prometheus does", () => {
    const cases: ReadonlyArray<readonly [number, string]> = [
      [0, "0s"],
      [5_400_000, "1h30m"],
      [90 * 86_400_000, "90d"],
      [14 * 86_400_000, "2w"],
      [31_536_000_000, "1y"],
      [1_500, "1s500ms"],
      [100_000, "1m40s"]
    ]
    for (const [ms, s] of cases) assert.strictEqual(formatDuration(ms), s)
  })
})

describe("the function table", () => {
  it("has every function with consistent arities", () => {
    assert.isAtLeast(functions.size, 90)
    for (const [name, f] of functions) {
      assert.strictEqual(f.name, name)
      assert.isTrue(f.variadic === 0 || f.variadic === -1 || f.variadic > 0)
      assert.isTrue(f.variadic === 0 || f.argTypes.length > 0, name)
    }
    assert.deepStrictEqual(functions.get("label_join")?.argTypes, ["vector", "string", "string", "string"])
    assert.strictEqual(functions.get("label_join")?.variadic, -1)
    assert.strictEqual(functions.get("sort_by_label")?.experimental, true)
    assert.strictEqual(functions.get("rate")?.experimental, false)
  })
})

// ---------------------------------------------------------------------------------------------------------

const corpusDir = process.env["PROMQLTEST_DIR"] ?? defaultDir

interface EvalQuery {
  readonly file: string
  readonly line: number
  readonly query: string
  /** `eval_fail`, or an `expect fail` line in its block. */
  readonly expectFail: boolean
}

/** Every `eval` command of a promqltest file (see FORMAT.md). */
const evalQueries = (file: string, text: string): ReadonlyArray<EvalQuery> => {
  const lines = text.split("\n")
  const out: Array<EvalQuery> = []
  lines.forEach((line, i) => {
    const m = /^\s*(eval(?:_fail|_warn|_info|_ordered)?)\s+(?:instant\s+at\s+\S+|range\s+from\s+\S+\s+to\s+\S+\s+step\s+\S+)\s+(.*)$/.exec(line)
    if (m === null) return
    let expectFail = m[1] === "eval_fail"
    for (let j = i + 1; j < lines.length; j++) {
      const next = (lines[j] ?? "").trim()
      if (next === "" || /^(eval|load|clear)\b/.test(next)) break
      if (/^expect\s+fail\b/.test(next)) expectFail = true
    }
    out.push({ file, line: i + 1, query: m[2] ?? "", expectFail })
  })
  return out
}

/**
 * Failures that are known and not the parser's to fix: the histogram trim operators (no `BinaryOp` for
 * them in ast.ts; native histograms are not stored).
 */
const knownCause = (message: string): string | undefined =>
  message.includes("histogram trim operator") ? "histogram trim operators </ and >/ (not in BinaryOp)" : undefined

describe("the promqltest corpus", () => {
  // Prometheus's test files are data beside the project; without them this test is skipped with a
  // warning, except in CI (CI=true), where their absence fails.
  const absent = !existsSync(corpusDir) && process.env["CI"] !== "true"
  if (absent) console.warn(`\n[promqltest corpus] SKIPPED: no PromQL test files at ${corpusDir} (set PROMQLTEST_DIR)\n`)
  it.skipIf(absent)("parses every eval query that is expected to succeed", () => {
    const files = readdirSync(corpusDir).filter((f) => f.endsWith(".test")).sort()
    assert.isAbove(files.length, 0)
    const all = files.flatMap((f) => evalQueries(f, readFileSync(join(corpusDir, f), "utf8")))
    const ok = all.filter((q) => !q.expectFail)
    const failures: Array<{ readonly q: EvalQuery; readonly message: string }> = []
    const unstable: Array<string> = []
    for (const q of ok) {
      try {
        const text = formatExpr(parse(q.query))
        // Printing is canonical: the printed text parses and prints the same.
        const again = formatExpr(parse(text))
        if (again !== text) unstable.push(`${q.file}:${q.line}: ${q.query} → ${text} → ${again}`)
      } catch (e) {
        if (!(e instanceof ParseError)) throw e
        failures.push({ q, message: e.message })
      }
    }
    let rejectedOfFailing = 0
    for (const q of all.filter((x) => x.expectFail)) {
      try {
        parse(q.query)
      } catch {
        rejectedOfFailing++
      }
    }
    const byCause = new Map<string, Array<string>>()
    for (const f of failures) {
      const cause = knownCause(f.message) ?? `UNEXPECTED: ${f.message}`
      byCause.set(cause, [...(byCause.get(cause) ?? []), `${f.q.file}:${f.q.line}: ${f.q.query}`])
    }
    const report = [
      `promqltest ${corpusDir}: ${all.length} eval queries, ${ok.length} expected to succeed, ` +
        `${ok.length - failures.length} of them parse; ` +
        `${all.length - ok.length} expected to fail, ${rejectedOfFailing} of them rejected by the parser`,
      ...[...byCause].map(([cause, qs]) => `  ${qs.length} × ${cause}\n${qs.map((s) => `      ${s}`).join("\n")}`)
    ].join("\n")
    console.log(report)
    assert.deepStrictEqual(unstable, [])
    assert.deepStrictEqual(
      failures.filter((f) => knownCause(f.message) === undefined).map((f) => `${f.q.file}:${f.q.line}: ${f.q.query} → ${f.message}`),
      []
    )
  })
})
