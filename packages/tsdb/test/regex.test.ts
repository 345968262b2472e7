/**
 * PromQL regexes (src/internal/regex.ts): Go RE2 syntax and semantics, linear-time matching, Go's error
 * messages, the fast paths against the regex engine, and label_replace's expansion (Go's Regexp.Expand).
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { Db, ObjectStore } from "@opendata/core"
import { RE2JS } from "re2js"
import { matches } from "../src/internal/labels.ts"
import { compileLabelReplace, compileMatcher, compileMatcherSlow, expand, RegexSyntaxError } from "../src/internal/regex.ts"
import { instantQuery, QueryError } from "../src/promql/engine.ts"
import { describeParseError, parse } from "../src/promql/parser.ts"
import { ParseError } from "../src/promql/ast.ts"
import * as Runner from "../src/promql/testRunner.ts"
import type { Value } from "../src/promql/types.ts"
import { layer, Tsdb } from "../src/Tsdb.ts"

/** 40 `a`s and a `!`: `(a+)+b` against it takes a backtracking engine about 2^40 steps. */
const evil = "a".repeat(40) + "!"

const memorySource = (script: string) => {
  const store = new Runner.MemoryStore()
  for (const c of Runner.parseScript(script)) if (c.kind === "load") store.load(c)
  return store.source({ histograms: false, startTimestamps: false })
}

/** The samples of an instant vector, as `{labels} value` lines, sorted. */
const lines = (v: Value): Array<string> => {
  assert.strictEqual(v.type, "vector")
  return v.type === "vector" ? v.samples.map((s) => `${Runner.formatLabels(s.labels)} ${s.v}`).sort() : []
}

const goError = (pattern: string): RegexSyntaxError => {
  try {
    compileMatcher(pattern)
  } catch (e) {
    assert.instanceOf(e, RegexSyntaxError)
    return e as RegexSyntaxError
  }
  return assert.fail(`${pattern} compiled`)
}

describe("linear-time matching (no catastrophic backtracking)", () => {
  it.effect("label_replace with (a+)+b over 40 a's returns", () =>
    Effect.gen(function*() {
      const q = `label_replace(label_replace(vector(1), "v", "${evil}", "", ""), "w", "$1", "v", "(a+)+b")`
      const v = yield* instantQuery(memorySource(""), q, 0)
      assert.deepStrictEqual(lines(v), [`{v="${evil}"} 1`])
    }))

  it.effect("a selector {v=~\"(a+)+b\"} against a stored 40-a value returns (memory source)", () =>
    Effect.gen(function*() {
      const source = memorySource(`load 1s\n  m{v="${evil}"} 1`)
      assert.deepStrictEqual(lines(yield* instantQuery(source, `{v=~"(a+)+b"}`, 0)), [])
      assert.deepStrictEqual(lines(yield* instantQuery(source, `m{v!~"(a+)+b"}`, 0)), [`m{v="${evil}"} 1`])
      assert.deepStrictEqual(lines(yield* instantQuery(source, `{v=~"(a+)+!"}`, 0)), [`m{v="${evil}"} 1`])
    }))

  it.effect("a selector {v=~\"(a+)+b\"} against a stored 40-a value returns (the TSDB's index)", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        layer({ retentionIntervalMs: Number.MAX_SAFE_INTEGER }).pipe(
          Layer.provide(Db.layer({ path: "tsdb/", flushIntervalMs: 0, memtableBytesMax: 64 * 1024, gc: false })),
          Layer.provide(ObjectStore.layerMemory)
        ),
        scope
      )
      const tsdb = Context.get(context, Tsdb)
      yield* tsdb.write({ series: [{ labels: [["__name__", "m"], ["v", evil]], samples: [{ timestampMs: 1_000, value: 1 }] }] })
      assert.deepStrictEqual(lines(yield* instantQuery(tsdb, `{v=~"(a+)+b"}`, 1_000)), [])
      assert.deepStrictEqual(lines(yield* instantQuery(tsdb, `{v=~"(a+)+!"}`, 1_000)), [`m{v="${evil}"} 1`])
      yield* Scope.close(scope, Exit.void)
    }))

  it("matches and label_replace searches stay fast on nested quantifiers", () => {
    for (const p of ["(a+)+b", "(a|aa)+b", "(a*)*b", "(.*a){20}b", "(a|a?)+b"]) {
      assert.isFalse(matches({ name: "v", type: "=~", value: p }, evil), p)
      assert.isUndefined(compileLabelReplace(p).exec(evil), p)
    }
  })
})

describe("patterns Go's RE2 rejects fail with Go's message", () => {
  // [pattern, Go's syntax.Error code, Go's fragment]
  const cases: ReadonlyArray<readonly [string, string, string]> = [
    ["(?=x)", "invalid or unsupported Perl syntax", "(?="],
    ["(?!x)", "invalid or unsupported Perl syntax", "(?!"],
    ["(?<=x)", "invalid named capture", "(?<=x)"],
    ["(a)\\1", "invalid escape sequence", "\\1"],
    ["a{1001}", "invalid repeat count", "{1001}"],
    ["(a{100}){100}", "invalid repeat count", "{100}"],
    ["(a", "missing closing )", "(a"],
    ["a)", "unexpected )", "a)"],
    ["[a", "missing closing ]", "[a"],
    ["a**", "invalid nested repetition operator", "**"],
    ["*", "missing argument to repetition operator", "*"],
    ["[z-a]", "invalid character class range", "z-a"],
    ["\\p{Foo}", "invalid character class range", "\\p{Foo}"],
    ["[[:foo:]]", "invalid character class range", "[:foo:]"],
    ["\\C", "invalid escape sequence", "\\C"],
    ["\\", "trailing backslash at end of expression", ""],
    ["(?P<n>a)(?P<n>b)", "duplicate capture group name", "n"],
    ["(?P=n)", "invalid or unsupported Perl syntax", "(?P"]
  ]

  it("as a RegexSyntaxError: Go's code and fragment, and Go's whole text", () => {
    for (const [pattern, code, expr] of cases) {
      const e = goError(pattern)
      assert.strictEqual(e.code, code, pattern)
      assert.strictEqual(e.expr, expr, pattern)
      assert.strictEqual(e.goMessage, `error parsing regexp: ${code}: \`${expr}\``, pattern)
    }
  })

  it("the exact Prometheus messages for lookahead, a backreference and a repeat over 1000", () => {
    assert.strictEqual(goError("(?=x)").goMessage, "error parsing regexp: invalid or unsupported Perl syntax: `(?=`")
    assert.strictEqual(goError("\\1").goMessage, "error parsing regexp: invalid escape sequence: `\\1`")
    assert.strictEqual(goError("a{1001}").goMessage, "error parsing regexp: invalid repeat count: `{1001}`")
    assert.isTrue(compileMatcher("a{1000}").test("a".repeat(1000)))
  })

  // Prometheus's whole text ends with Go's fragment (`(?=`), which the parser's newMatcher gets from the
  // error's `goMessage`; this holds with either fragment.
  it("in a selector: a parse error naming Go's error", () => {
    for (const [pattern, code] of cases) {
      const q = `{a=~${JSON.stringify(pattern)}}`
      try {
        parse(q)
        assert.fail(`${q} parsed`)
      } catch (e) {
        assert.instanceOf(e, ParseError)
        const message = describeParseError(q, e as ParseError)
        assert.match(message, /^1:\d+: parse error: error parsing regexp: /, q)
        assert.include(message, `error parsing regexp: ${code}: \``, q)
      }
    }
  })

  it("a selector regex is parsed alone, as Go does: `a)|(b` is an error there", () => {
    assert.strictEqual(goError("a)|(b").code, "unexpected )")
  })

  it.effect("in label_replace: Prometheus's message", () =>
    Effect.gen(function*() {
      for (const regex of ["(?=x)", "\\\\1", "a{1001}", "(.*"]) {
        const e = yield* Effect.flip(instantQuery(memorySource(""), `label_replace(vector(1), "dst", "$1", "src", "${regex}")`, 0))
        assert.instanceOf(e, QueryError)
        assert.strictEqual(e.kind, "bad_data")
        assert.strictEqual(e.message, `invalid regular expression in label_replace(): ${regex.replace("\\\\", "\\")}`)
      }
      // The regex is checked before the destination label, as in Prometheus.
      const both = yield* Effect.flip(instantQuery(memorySource(""), `label_replace(vector(1), "1bad", "", "src", "(?=x)")`, 0))
      assert.strictEqual(both.message, "invalid regular expression in label_replace(): (?=x)")
    }))

  it.effect("label_replace compiles `^(?s:` + regex + `)$` textually, as Prometheus does", () =>
    Effect.gen(function*() {
      // `a)|(b` becomes `^(?s:a)|(b)$`: valid, and unanchored on either side.
      const q = `label_replace(label_replace(vector(1), "src", "xb", "", ""), "dst", "[$1]", "src", "a)|(b")`
      assert.deepStrictEqual(lines(yield* instantQuery(memorySource(""), q, 0)), [`{dst="[b]", src="xb"} 1`])
    }))
})

describe("Go RE2 semantics", () => {
  // [pattern, value, whether ^(?s:pattern)$ matches in Go]
  const cases: ReadonlyArray<readonly [string, string, boolean]> = [
    ["\\pL+", "héllo", true],
    ["\\pL+", "hello1", false],
    ["\\p{Greek}+", "αβγ", true],
    ["\\p{Greek}+", "abc", false],
    ["\\PL", "1", true],
    ["(?i)error", "ERROR", true],
    ["(?i)ERROR", "eRrOr", true],
    ["(?i)k", "\u212a", true], // KELVIN SIGN folds to k
    ["(?i)s", "\u017f", true], // LONG S folds to s
    ["(?i)i", "\u0130", false], // no simple folding between I and İ
    ["(?i)é", "É", true],
    ["(?i:a)b", "Ab", true],
    ["(?i:a)b", "AB", false],
    ["a.b", "a\nb", true], // `s` is on
    ["(?-s)a.b", "a\nb", false],
    ["(?s)a.b", "a\nb", true],
    ["[^a]", "\n", true],
    ["[[:alpha:]]+", "abcXYZ", true],
    ["[[:alpha:]]+", "é", false],
    ["[[:^digit:]]", "x", true],
    ["[[:word:]]+", "a_1", true],
    ["\\Qa.b*\\E", "a.b*", true],
    ["\\Qa.b*\\E", "axbb", false],
    ["a\\z", "a", true],
    ["\\Aa", "a", true],
    ["(?P<name>x)y", "xy", true],
    ["(?<name>x)y", "xy", true],
    ["\\w+", "é", false], // ASCII only
    ["\\d", "٣", false],
    ["\\s", "\v", false], // Go's \s is [\t\n\f\r ]
    ["\\v", "\v", true],
    ["\\x{41}\\x42", "AB", true],
    ["\\101", "A", true], // octal
    ["a|ab", "ab", true], // leftmost-first does not stop a full match
    ["(?U)a+", "aaa", true],
    ["x*", "", true],
    ["", "", true],
    ["", "a", false],
    [".", "😀", true], // one code point
    ["..", "😀", false],
    ["\\x{1F600}", "😀", true],
    ["a$", "a", true],
    ["^a$", "a", true],
    ["a^b", "ab", false]
  ]

  it("each case, through matches() and the slow path", () => {
    for (const [pattern, value, expected] of cases) {
      assert.strictEqual(matches({ name: "x", type: "=~", value: pattern }, value), expected, `${pattern} ~ ${JSON.stringify(value)}`)
      assert.strictEqual(matches({ name: "x", type: "!~", value: pattern }, value), !expected, `${pattern} !~ ${JSON.stringify(value)}`)
      assert.strictEqual(compileMatcherSlow(pattern).test(value), expected, `slow: ${pattern} ~ ${JSON.stringify(value)}`)
    }
  })

  it.effect("through the engine: a selector with RE2-only syntax", () =>
    Effect.gen(function*() {
      const source = memorySource(`load 1s\n  m{v="héllo"} 1\n  m{v="ERROR"} 2\n  m{v="a.b"} 3\n  m{v="αβγ"} 4`)
      const run = (sel: string) => Effect.map(instantQuery(source, `sum(${sel})`, 0), (v) => lines(v)[0])
      assert.strictEqual(yield* run(`m{v=~"\\\\pL+"}`), "{} 7") // héllo, ERROR, αβγ
      assert.strictEqual(yield* run(`m{v=~"\\\\p{Greek}+"}`), "{} 4")
      assert.strictEqual(yield* run(`m{v=~"(?i)error"}`), "{} 2")
      assert.strictEqual(yield* run(`m{v=~"\\\\Qa.b\\\\E"}`), "{} 3")
      assert.strictEqual(yield* run(`m{v=~"[[:alpha:]]+"}`), "{} 2")
    }))
})

describe("fast paths decide what the regex engine decides", () => {
  /** A small seeded PRNG (mulberry32), so a failure reproduces. */
  const prng = (seed: number) => () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  const fixed = [
    "api|web", "10\\.0\\..*", "/api/v[0-9]+/.*", "5..", ".*foo.*", "(?i)error", "(?i).*error.*", ".*", ".+", "",
    "a", "a|", "|", "(a|b)", "(?:a|b|c)", "foo.+", ".+foo", "a.*b.*c", ".*.*", "a.*a", "aa.*aa", "(?i)k|s",
    "(?i)ab.*cd", "x\\.y\\-z", "a\\|b", "ab*", "ab+c", "a.*?b", ".**", "(a)|(b)", "(?i)a(b)", "\\Qa|b\\E", "é.*"
  ]

  // REGEX_SEED and REGEX_PATTERNS (default 3000) widen the search when a fast path changes.
  it("on fixed and random patterns and inputs", () => {
    const random = prng(Number(process.env.REGEX_SEED ?? 0x5eed))
    const pick = <T>(xs: ReadonlyArray<T>): T => xs[Math.floor(random() * xs.length)]!
    const litChars = ["a", "b", "A", "k", "s", "\\.", "-", "é", "/", "0"]
    const literal = () => Array.from({ length: Math.floor(random() * 4) }, () => pick(litChars)).join("")
    // Tails include what Go reads as a quantifier of the literal before them: `b(?i)*` is `b*`.
    const tails = ["[0-9]+", "b*", "x?", "(c|d)", "\\d", ".", "a{2}", "[a-c]+.*", "(?i)b", "$", "(?i)*", "\\Q\\E+", "(?-s)?", "{2}", "{,1}"]
    const tokens = ["a", "b", "(", ")", "|", "*", "?", "+", "[ab]", "\\w", ".", ".*", ".+", "(?i)", "(?-i)", "\\.", "k", "\\Q", "\\E", "{2}", "{"]
    const pattern = (): string => {
      const i = random() < 0.5 ? "(?i)" : ""
      switch (Math.floor(random() * 5)) {
        case 0: {
          const alts = Array.from({ length: 1 + Math.floor(random() * 4) }, literal).join("|")
          const open = pick(["", "(", "(?:"])
          return i + open + alts + (open === "" ? "" : ")")
        }
        case 1:
          return i + Array.from({ length: 1 + Math.floor(random() * 4) }, () => (random() < 0.4 ? pick([".*", ".+"]) : literal())).join("")
        case 2:
          return literal() + pick(tails)
        case 3:
          // Atoms with greedy quantifiers: the deterministic sequence path when no choice is possible.
          return i + Array.from({ length: 1 + Math.floor(random() * 5) }, () => pick(atoms) + pick(quantifiers)).join("")
        default:
          return Array.from({ length: 1 + Math.floor(random() * 6) }, () => pick(tokens)).join("")
      }
    }
    const atoms = ["a", "b", "k", "s", ".", "[ab]", "[^a]", "[0-9]", "[a-z0-9]", "[^0-9/]", "\\.", "-", "/", "x", "é"]
    const quantifiers = ["", "", "*", "+", "?"]
    const inputChars = ["a", "b", "A", "B", ".", "-", "k", "K", "\u212a", "s", "S", "\u017f", "é", "É", "\n", "😀", "\ud83d", "\ude00", "0", "1", "x", "/"]
    const input = () => Array.from({ length: Math.floor(random() * 7) }, () => pick(inputChars)).join("")
    /** Inputs built from the pattern's own characters, so that matches are common. */
    const near = (p: string) => {
      const plain = p.replace(/\\(.)/g, "$1").replace(/[()|*+?.[\]{}^$]/g, () => (random() < 0.5 ? "" : pick(inputChars)))
      return random() < 0.5 ? plain : random() < 0.5 ? plain.toUpperCase() : plain + input()
    }

    const strategies = new Set<string>()
    let compared = 0
    const patterns = [...fixed, ...Array.from({ length: Number(process.env.REGEX_PATTERNS ?? 3000) }, pattern)]
    for (const p of patterns) {
      let fast
      try {
        fast = compileMatcher(p)
      } catch (e) {
        // Rejected: the slow path rejects it the same way.
        assert.instanceOf(e, RegexSyntaxError)
        assert.throws(() => compileMatcherSlow(p), RegexSyntaxError, (e as RegexSyntaxError).message)
        continue
      }
      strategies.add(fast.strategy)
      const slow = compileMatcherSlow(p)
      // Go's own anchoring (`\\Q` quotes to the end of the pattern, so it cannot be wrapped textually).
      const reference = p.includes("\\Q") ? undefined : RE2JS.compile(`^(?s:${p})$`)
      const values = [...Array.from({ length: 12 }, input), ...Array.from({ length: 12 }, () => near(p)), "", p]
      for (const v of values) {
        const expected = slow.test(v)
        if (reference !== undefined) assert.strictEqual(reference.test(v), expected, `slow path vs ^(?s:${p})$ on ${JSON.stringify(v)}`)
        assert.strictEqual(fast.test(v), expected, `${fast.strategy} ${JSON.stringify(p)} on ${JSON.stringify(v)}`)
        compared++
      }
    }
    assert.isAbove(compared, 50_000)
    for (const s of ["equal", "set", "any", "nonEmpty", "prefix", "suffix", "contains", "glob", "foldEqual", "foldSet", "foldGlob", "sequence", "prefix+re2", "re2"]) {
      assert.isTrue(strategies.has(s), `strategy ${s} exercised`)
    }
  })

  it("JavaScript's `iu` case folding of an ASCII character is Go's (re2js's) on every BMP character", () => {
    // What the `(?i)` fast paths (native `iu` regexes over ASCII literals, foldAscii) rely on.
    for (let c = 0; c < 128; c++) {
      const ch = String.fromCharCode(c)
      const go = RE2JS.compile(`(?i)${RE2JS.quote(ch)}`)
      const js = new RegExp(`^\\u{${c.toString(16)}}$`, "iu")
      const literal = /[0-9A-Za-z]/.test(ch) ? ch : `\\${ch}`
      const one = compileMatcher(`(?i)${literal}`)
      const set = compileMatcher(`(?i)${literal}|zz`)
      assert.deepStrictEqual([one.strategy, set.strategy], ["foldEqual", "foldSet"], literal)
      const folded: Array<string> = []
      for (let u = 0; u < 0x10000; u++) {
        if (u >= 0xd800 && u <= 0xdfff) continue
        const v = String.fromCharCode(u)
        const expected = go.testExact(v)
        if (js.test(v) !== expected) assert.fail(`U+${u.toString(16)} against (?i)${JSON.stringify(ch)}`)
        if (expected && u >= 0x80) folded.push(`${ch}~U+${u.toString(16)}`)
        if (one.test(v) !== expected || set.test(v) !== expected) assert.fail(`fast paths: U+${u.toString(16)} against (?i)${JSON.stringify(ch)}`)
      }
      if (folded.length > 0) assert.deepStrictEqual(folded, ch.toLowerCase() === "k" ? [`${ch}~U+212a`] : [`${ch}~U+17f`])
    }
  })

  it("the fast paths are taken for the common shapes", () => {
    const strategy = (p: string) => compileMatcher(p).strategy
    assert.strictEqual(strategy("api"), "equal")
    assert.strictEqual(strategy("api|web"), "set")
    assert.strictEqual(strategy("(?:api|web)"), "set")
    assert.strictEqual(strategy(".*"), "any")
    assert.strictEqual(strategy(".+"), "nonEmpty")
    assert.strictEqual(strategy("10\\.0\\..*"), "prefix")
    assert.strictEqual(strategy(".*_total"), "suffix")
    assert.strictEqual(strategy(".*foo.*"), "contains")
    assert.strictEqual(strategy("a.*b.*c"), "glob")
    assert.strictEqual(strategy("(?i)error"), "foldEqual")
    assert.strictEqual(strategy("(?i)error|warn"), "foldSet")
    assert.strictEqual(strategy("(?i).*error.*"), "foldGlob")
    assert.strictEqual(strategy("/api/v[0-9]+/.*"), "sequence")
    assert.strictEqual(strategy("5.."), "sequence")
    assert.strictEqual(strategy("x.+"), "sequence")
    assert.strictEqual(strategy("[0-9]+[0-9]"), "re2") // a choice to make: not deterministic
    assert.strictEqual(strategy("ab\\d+"), "prefix+re2")
    assert.strictEqual(strategy("a(?i)*"), "re2") // `a*`: no prefix
    assert.strictEqual(strategy("a|b*"), "re2")
  })
})

describe("label_replace expansion (Go's Regexp.Expand)", () => {
  const regex = "(?P<first>[a-z]+)-(?P<second>[a-z]+)(x)?"
  // [template, expansion for src="ab-cd"]
  const cases: ReadonlyArray<readonly [string, string]> = [
    ["$1", "ab"],
    ["${1}", "ab"],
    ["$first", "ab"],
    ["${second}", "cd"],
    ["$1x", ""], // the group named `1x`, which does not exist
    ["${1}x", "abx"],
    ["$1.$2", "ab.cd"],
    ["$first_x", ""], // `first_x`
    ["${first}_x", "ab_x"],
    ["$1é", ""], // a letter continues the name
    ["$$1", "$1"],
    ["$$", "$"],
    ["a$", "a$"],
    ["$-", "$-"],
    ["${1", "${1"],
    ["${}", "${}"],
    ["$3", ""], // did not match
    ["$9", ""], // no such group
    ["$01", ""], // a leading zero makes it a name
    ["$0", "ab-cd"],
    ["[$2/$1]", "[cd/ab]"],
    ["$10", ""] // group 10
  ]

  it("directly", () => {
    const m = compileLabelReplace(regex).exec("ab-cd")
    assert.isDefined(m)
    for (const [template, expected] of cases) assert.strictEqual(expand(template, m!), expected, template)
  })

  it.effect("through the engine", () =>
    Effect.gen(function*() {
      for (const [template, expected] of cases) {
        const q = `label_replace(label_replace(vector(1), "src", "ab-cd", "", ""), "dst", ${JSON.stringify(template)}, "src", ${JSON.stringify(regex)})`
        const got = lines(yield* instantQuery(memorySource(""), q, 0))
        // An empty expansion removes the destination label.
        assert.deepStrictEqual(got, [expected === "" ? `{src="ab-cd"} 1` : `{dst=${JSON.stringify(expected)}, src="ab-cd"} 1`], template)
      }
    }))

  it("the match is a full match of the value, with groups", () => {
    const re = compileLabelReplace("source-value-(.*)")
    assert.deepStrictEqual(re.exec("source-value-10")?.groups, ["source-value-10", "10"])
    assert.isUndefined(re.exec("xsource-value-10"))
    assert.deepStrictEqual(compileLabelReplace("a|ab").exec("ab")?.groups, ["ab"])
    assert.deepStrictEqual(compileLabelReplace("(.*)").exec("a\nb")?.groups, ["a\nb", "a\nb"])
  })
})
