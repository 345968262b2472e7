/**
 * PromQL regular expressions with Prometheus's semantics: Go's RE2 syntax, fully anchored, `.` matching a
 * newline, and matching in time linear in the input (no backtracking, so no pattern can freeze the
 * process). Matching runs on `re2js`, a JavaScript port of Go's `regexp`, behind fast paths in the spirit
 * of Prometheus's `FastRegexMatcher`, each deciding exactly what the regex would: a literal is an
 * equality, `a|b|c` a set lookup, `.*` matches everything, `foo.*` / `.*foo.*` prefix and substring
 * checks, `(?i)` over ASCII literals a case-folded comparison, and a pattern that never has a choice to
 * make (`/api/v[0-9]+/.*`, `5..`) one greedy pass over the value, atom by atom.
 * Everything else goes to re2js, which also validates every pattern but a plain literal alternation.
 *
 * - Selector matchers (`{a=~"re"}`): `compileMatcher(re)` is Prometheus's `NewFastRegexMatcher(re)`: the
 *   pattern is parsed alone with Go's Perl flags and `s` (so an invalid pattern fails with Go's message),
 *   then matched as `^(?s:re)$`.
 * - `label_replace`: `compileLabelReplace(re)` is Prometheus's `regexp.Compile("^(?s:" + re + ")$")`,
 *   searched as `FindStringSubmatchIndex` does, with `expand` for the replacement (Go's `Regexp.Expand`).
 */
import { BoundedMap } from "@opendata/core"
import { RE2JS, RE2JSSyntaxException } from "re2js"
import { regexCacheMax } from "../limits.ts"

/**
 * A pattern Go's `regexp/syntax` rejects. `code` and `expr` are Go's `syntax.Error` fields (the kind of
 * error, e.g. `invalid repeat count`, and the part of the pattern at fault, e.g. `{1001}`); the message is
 * the code alone, and `goMessage` Go's whole text, `error parsing regexp: <code>: \`<expr>\``, which is
 * what Prometheus reports after the position (`1:2: parse error: error parsing regexp: ...`).
 */
export class RegexSyntaxError extends Error {
  override readonly name = "RegexSyntaxError"
  readonly code: string
  readonly expr: string
  constructor(code: string, expr: string) {
    super(code)
    this.code = code
    this.expr = expr
  }
  /** Go's `(*syntax.Error).Error()`. */
  get goMessage(): string {
    return `error parsing regexp: ${this.code}: \`${this.expr}\``
  }
}

/** Go reports these two with the whole pattern; re2js leaves the fragment out. */
const wholePatternCodes: ReadonlySet<string> = new Set(["expression nests too deeply", "expression too large"])

const toSyntaxError = (e: unknown, pattern: string): RegexSyntaxError => {
  if (e instanceof RE2JSSyntaxException) {
    const expr = e.input ?? (wholePatternCodes.has(e.error) ? pattern : "")
    return new RegexSyntaxError(e.error, expr)
  }
  return new RegexSyntaxError(e instanceof Error ? e.message : String(e), pattern)
}

/** Compiles with re2js (Go's Perl flags), turning its syntax errors into Go's. */
const re2 = (pattern: string, errorPattern: string = pattern): RE2JS => {
  try {
    return RE2JS.compile(pattern)
  } catch (e) {
    // The error of the pattern as the user wrote it (Go parses it alone, without our wrapping).
    if (errorPattern !== pattern) {
      try {
        RE2JS.compile(errorPattern)
      } catch (inner) {
        throw toSyntaxError(inner, errorPattern)
      }
    }
    throw toSyntaxError(e, pattern)
  }
}

/** A bounded map: past `regexCacheMax` entries the oldest is dropped (no bookkeeping on a hit). */
const boundedCache = <V>() => {
  const map = new Map<string, V>()
  return (key: string, make: (key: string) => V): V => {
    let v = map.get(key)
    if (v === undefined) {
      v = make(key)
      map.set(key, v)
      BoundedMap.trimOldest(map, regexCacheMax)
    }
    return v
  }
}

// -------------------------------------------------------------------------------------------------
// Selector matchers

/** A compiled selector regex: `test` says whether the whole value matches. */
export interface Regex {
  /** The pattern as written. */
  readonly source: string
  /** Whether `^(?s:source)$` matches the value. */
  readonly test: (value: string) => boolean
  /** How `test` decides: a fast path's name, `re2`, or `prefix+re2` (a literal-prefix check first). */
  readonly strategy: string
}

/** Characters that are not literal outside a character class (Go's `regexp.QuoteMeta` set). */
const isMeta = (c: string) => "\\.+*?()|[]{}^$".includes(c)
const isAlnum = (c: string) => /^[0-9A-Za-z]$/.test(c)
const isAscii = (s: string) => /^[\x00-\x7f]*$/.test(s)
const hasSurrogate = (s: string) => /[\ud800-\udfff]/.test(s)
const isQuantifier = (c: string | undefined) => c !== undefined && "*+?{".includes(c)

/** The literal character at `i` (a plain one, or `\` before ASCII punctuation: Go reads it as itself). */
const literalAt = (p: string, i: number): { readonly char: string; readonly end: number } | undefined => {
  const c = p[i]
  if (c === undefined) return undefined
  if (c !== "\\") return isMeta(c) ? undefined : { char: c, end: i + 1 }
  const n = p[i + 1]
  return n === undefined || n.charCodeAt(0) >= 0x80 || isAlnum(n) ? undefined : { char: n, end: i + 2 }
}

/** The run of literal characters from `i`, up to the first thing that is not one. */
const readLiteral = (p: string, i: number): { readonly text: string; readonly end: number } => {
  let text = ""
  for (let l = literalAt(p, i); l !== undefined; l = literalAt(p, i)) {
    text += l.char
    i = l.end
  }
  return { text, end: i }
}

/** `lit|lit|...|lit` exactly (literals may be empty), or undefined. */
const literalAlternation = (p: string): Array<string> | undefined => {
  const out: Array<string> = []
  let i = 0
  for (;;) {
    const { text, end } = readLiteral(p, i)
    out.push(text)
    if (end === p.length) return out
    if (p[end] !== "|") return undefined
    i = end + 1
  }
}

/** `lit|...`, `(lit|...)` or `(?:lit|...)`. Inside the group no parenthesis can occur, so it spans the pattern. */
const literalSet = (p: string): Array<string> | undefined => {
  const inner = p.startsWith("(?:") && p.endsWith(")")
    ? p.slice(3, -1)
    : p.startsWith("(") && !p.startsWith("(?") && p.endsWith(")")
      ? p.slice(1, -1)
      : undefined
  return literalAlternation(p) ?? (inner === undefined ? undefined : literalAlternation(inner))
}

/**
 * The pattern as `L0.*L1.*...Ln` (each L a literal, possibly empty; at least one `.*`), or undefined.
 * `.` is any character here (the `s` flag), so `.*` is any string.
 */
const globLiterals = (p: string): Array<string> | undefined => {
  const literals: Array<string> = [""]
  let i = 0
  while (i < p.length) {
    if (p.startsWith(".*", i)) {
      // `.*?`, `.**` and the like are left to the other paths.
      if (isQuantifier(p[i + 2])) return undefined
      literals.push("")
      i += 2
      continue
    }
    const { text, end } = readLiteral(p, i)
    // Not a literal, or one whose last character a quantifier applies to.
    if (end === i || isQuantifier(p[end])) return undefined
    literals[literals.length - 1] += text
    i = end
  }
  return literals.length > 1 ? literals : undefined
}

/**
 * `L0.*L1.*...Ln` as a test: `at(v, i, k)` says whether literal k occurs at i, `find(v, from, k)` where it
 * next occurs (or -1). The value starts with L0 and ends with Ln (without overlap), and the middle
 * literals occur in order between them; taking the leftmost occurrence of each is never wrong.
 */
const globTest = (
  literals: ReadonlyArray<string>,
  at: (v: string, i: number, k: number) => boolean,
  find: (v: string, from: number, k: number) => number
): ((v: string) => boolean) => {
  const n = literals.length - 1
  const first = literals[0]!.length
  const last = literals[n]!.length
  return (v) => {
    const stop = v.length - last
    if (stop < first || (first > 0 && !at(v, 0, 0)) || (last > 0 && !at(v, stop, n))) return false
    let from = first
    for (let k = 1; k < n; k++) {
      const len = literals[k]!.length
      if (len === 0) continue
      const found = find(v, from, k)
      if (found < 0 || found + len > stop) return false
      from = found + len
    }
    return true
  }
}

/** A JavaScript regex source for one code point, escaped whatever it is (valid with the `u` flag). */
const jsChar = (c: string): string => (isAlnum(c) ? c : `\\u{${c.codePointAt(0)!.toString(16)}}`)

/**
 * Native regexes over one ASCII literal with the `iu` flags, for `(?i)`. With `u`, `i` compares simple
 * case foldings, which for an ASCII character is Go's case-folding orbit: the letter's two cases, plus
 * KELVIN SIGN for k and LONG S for s (test/regex.test.ts checks every BMP character against re2js). A
 * literal has no quantifier or alternation, so these run without backtracking; a match is as long as the
 * literal (every character folding to ASCII is one UTF-16 unit).
 */
const foldFinder = (literal: string) => {
  const source = [...literal].map(jsChar).join("")
  const sticky = new RegExp(source, "iuy")
  const global = new RegExp(source, "iug")
  return {
    at: (v: string, i: number) => {
      sticky.lastIndex = i
      return sticky.test(v)
    },
    find: (v: string, from: number) => {
      global.lastIndex = from
      return global.test(v) ? global.lastIndex - literal.length : -1
    }
  }
}

/**
 * ASCII upper case to lower case, KELVIN SIGN (U+212A) to `k` and LONG S (U+017F) to `s`: the only
 * characters outside ASCII in the simple case-folding orbit of an ASCII letter. Every other character is
 * kept, and so never equals an ASCII letter. The length is kept.
 */
const foldAscii = (v: string): string => {
  let out = ""
  let from = 0
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i)
    const to = c >= 65 && c <= 90 ? c + 32 : c === 0x212a ? 107 : c === 0x017f ? 115 : -1
    if (to >= 0) {
      out += v.slice(from, i) + String.fromCharCode(to)
      from = i + 1
    }
  }
  return from === 0 ? v : out + v.slice(from)
}

// --- deterministic sequences of atoms

/** The code points one atom matches: any (`.`), or ranges, possibly negated. */
type CharSet = { readonly any: true } | { readonly any: false; readonly negated: boolean; readonly ranges: ReadonlyArray<readonly [number, number]> }

const anyChar: CharSet = { any: true }
const oneChar = (cp: number): CharSet => ({ any: false, negated: false, ranges: [[cp, cp]] })

/** Whether two atoms can match the same character. */
const overlap = (a: CharSet, b: CharSet): boolean => {
  if (a.any || b.any) return true
  if (a.negated && b.negated) return true
  const inRanges = (cp: number, rs: ReadonlyArray<readonly [number, number]>) => rs.some(([lo, hi]) => lo <= cp && cp <= hi)
  if (!a.negated && !b.negated) return a.ranges.some(([lo, hi]) => b.ranges.some(([l, h]) => lo <= h && l <= hi))
  // A positive set (ASCII ranges or one character, so a short loop) against a negated one.
  const [pos, neg] = a.negated ? [b, a] : [a, b]
  return pos.ranges.some(([lo, hi]) => {
    for (let cp = lo; cp <= hi; cp++) if (!inRanges(cp, neg.ranges)) return true
    return false
  })
}

interface Atom {
  readonly set: CharSet
  /** The character, when the atom is a literal. */
  readonly literal?: string
  readonly quantifier: "" | "*" | "+" | "?"
}

/** A character allowed in a class here: printable ASCII, none of the class syntax (`[:alpha:]`, escapes). */
const classChar = (c: string | undefined): c is string => c !== undefined && c >= " " && c <= "~" && !"\\[]-^:".includes(c)

/**
 * The pattern as a sequence of atoms (a literal character, `.`, or a class of printable ASCII
 * characters and ranges, possibly negated), each with an optional greedy `*`, `+` or `?`; undefined for
 * anything else (groups, alternation, flags, escapes like `\d`, repeats `{n}`, lazy quantifiers).
 * `fold`: the atoms of a `(?i)` pattern, where only ASCII literals and `.` are taken.
 */
const parseAtoms = (p: string, fold: boolean): Array<Atom> | undefined => {
  const atoms: Array<Atom> = []
  let i = 0
  while (i < p.length) {
    let set: CharSet
    let literal: string | undefined
    if (p[i] === ".") {
      set = anyChar
      i++
    } else if (p[i] === "[") {
      if (fold) return undefined
      let j = i + 1
      const negated = p[j] === "^"
      if (negated) j++
      const ranges: Array<readonly [number, number]> = []
      while (p[j] !== "]") {
        const lo = p[j]
        if (!classChar(lo)) return undefined
        if (p[j + 1] === "-") {
          const hi = p[j + 2]
          // `[z-a]` is an error: left to re2js, which reports it.
          if (!classChar(hi) || hi < lo) return undefined
          ranges.push([lo.charCodeAt(0), hi.charCodeAt(0)])
          j += 3
        } else {
          ranges.push([lo.charCodeAt(0), lo.charCodeAt(0)])
          j++
        }
      }
      if (ranges.length === 0) return undefined
      set = { any: false, negated, ranges }
      i = j + 1
    } else {
      const l = literalAt(p, i)
      if (l === undefined) return undefined
      const cp = l.char.codePointAt(0)!
      // Printable ASCII, or (case-sensitive only) a character beyond ASCII.
      if (cp < 0x20 || cp === 0x7f || (cp >= 0x80 && fold)) return undefined
      set = fold ? foldSet(l.char) : oneChar(cp)
      literal = l.char
      i = l.end
    }
    const q = p[i]
    const quantifier = q === "*" || q === "+" || q === "?" ? q : ""
    if (quantifier !== "") i++
    // `a**`, `a*?`, `a{2}`: not this shape.
    if (isQuantifier(p[i])) return undefined
    atoms.push(literal === undefined ? { set, quantifier } : { set, literal, quantifier })
  }
  return atoms
}

/** Go's `(?i)` orbit of an ASCII character (see `foldFinder`). */
const foldSet = (c: string): CharSet => {
  const lower = c.toLowerCase().charCodeAt(0)
  const upper = c.toUpperCase().charCodeAt(0)
  const extra = c === "k" || c === "K" ? [0x212a] : c === "s" || c === "S" ? [0x017f] : []
  return { any: false, negated: false, ranges: [lower, upper, ...extra].map((cp) => [cp, cp] as const) }
}

/**
 * Whether the atoms match deterministically: no quantified atom can match a character that could also
 * start what follows it (the next atoms up to and including the first one that is not optional). Then
 * a match never has a choice to make: a quantified atom takes every character it can, and a backtracking
 * engine that gives one back fails at once on the next atom, so it runs in time linear in the value
 * (times the number of atoms).
 */
const deterministic = (atoms: ReadonlyArray<Atom>): boolean =>
  atoms.every((a, i) => {
    if (a.quantifier === "") return true
    for (const b of atoms.slice(i + 1)) {
      if (overlap(a.set, b.set)) return false
      if (b.quantifier === "" || b.quantifier === "+") break
    }
    return true
  })

/**
 * A matcher for a deterministic sequence of atoms, deciding what `^(?s:atoms)$` decides: a literal is
 * itself (folded as `foldFinder` says), `.` any code point (Go: any rune), a class of ASCII characters and
 * ranges (negated: any other code point, line feed included, as Go's Perl flags have it), greedy `*` `+`
 * `?`. Deterministic, so each quantified atom takes every character it can and nothing is given back: one
 * pass over the value, no RegExp, no allocation. A surrogate pair is one code point; a lone surrogate is
 * a code point of its own (as a `u`-flag RegExp reads it).
 */
const sequenceMatcher = (p: string): ((v: string) => boolean) | undefined => {
  const fold = p.startsWith("(?i)")
  const atoms = parseAtoms(fold ? p.slice(4) : p, fold)
  if (atoms === undefined || atoms.length === 0 || !deterministic(atoms)) return undefined
  // The leading run of single-character, unquantified, unfolded literals: one `startsWith`.
  let prefix = ""
  let first = 0
  while (first < atoms.length && !fold && atoms[first]!.quantifier === "" && atoms[first]!.literal !== undefined) {
    prefix += atoms[first]!.literal
    first++
  }
  // A final `.*` accepts whatever is left.
  const last = atoms.length - 1
  const anyTail = last >= first && atoms[last]!.set.any && atoms[last]!.quantifier === "*"
  const rest = atoms.slice(first, anyTail ? last : atoms.length)
  const minUnits = prefix.length + rest.filter((a) => a.quantifier === "" || a.quantifier === "+").length
  // Straight-line code, one block per atom, which V8 compiles as it compiles its own regexes; only numbers
  // from the parsed atoms go into the source (the prefix is an argument).
  const test = (set: CharSet): string =>
    set.any ? "true" : `${set.negated ? "!" : ""}(${set.ranges.map(([lo, hi]) => (lo === hi ? `cp === ${lo}` : `(cp >= ${lo} && cp <= ${hi})`)).join(" || ")})`
  const read = "cp = v.charCodeAt(i); w = 1; if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < len) { const lo = v.charCodeAt(i + 1); if (lo >= 0xdc00 && lo <= 0xdfff) { cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00); w = 2 } }"
  const body = rest.map((a) => {
    const t = test(a.set)
    switch (a.quantifier) {
      case "":
        return `if (i >= len) return false; ${read} if (!(${t})) return false; i += w;`
      case "?":
        return `if (i < len) { ${read} if (${t}) i += w }`
      case "*":
        return `while (i < len) { ${read} if (!(${t})) break; i += w }`
      case "+":
        return `start = i; while (i < len) { ${read} if (!(${t})) break; i += w } if (i === start) return false;`
    }
  })
  const source = `return (v) => { const len = v.length; if (len < ${minUnits} || !v.startsWith(prefix)) return false; ` +
    `let i = ${prefix.length}, cp = 0, w = 0, start = 0; ${body.join("\n")} return ${anyTail ? "true" : "i === len"} }`
  return new Function("prefix", source)(prefix) as (v: string) => boolean
}

/** A fast path deciding exactly what `^(?s:p)$` decides, when the pattern has one of the simple shapes. */
const fastPath = (p: string): { readonly strategy: string; readonly test: (v: string) => boolean } | undefined => {
  // Literals are compared as UTF-16; with no surrogate in them, a literal's bounds are character bounds.
  if (hasSurrogate(p)) return undefined
  const set = literalSet(p)
  if (set !== undefined) {
    if (set.length === 1) {
      const only = set[0]!
      return { strategy: "equal", test: (v) => v === only }
    }
    const values = new Set(set)
    return { strategy: "set", test: (v) => values.has(v) }
  }
  if (p === ".*") return { strategy: "any", test: () => true }
  if (p === ".+") return { strategy: "nonEmpty", test: (v) => v.length > 0 }
  const glob = globLiterals(p)
  if (glob !== undefined) {
    // The common globs as one string call each: `L.*`, `.*L`, `.*L.*`.
    if (glob.length === 2 && glob[1] === "") {
      const prefix = glob[0]!
      return { strategy: "prefix", test: (v) => v.startsWith(prefix) }
    }
    if (glob.length === 2 && glob[0] === "") {
      const suffix = glob[1]!
      return { strategy: "suffix", test: (v) => v.endsWith(suffix) }
    }
    if (glob.length === 3 && glob[0] === "" && glob[2] === "") {
      const infix = glob[1]!
      return { strategy: "contains", test: (v) => v.includes(infix) }
    }
    const test = globTest(glob, (v, i, k) => v.startsWith(glob[k]!, i), (v, from, k) => v.indexOf(glob[k]!, from))
    return { strategy: "glob", test }
  }
  if (p.startsWith("(?i)")) {
    const rest = p.slice(4)
    // `(?i)error`, `(?i)a|b`
    const folded = literalSet(rest)
    if (folded !== undefined && folded.every(isAscii)) {
      if (folded.length === 1) {
        const only = folded[0]!
        const finder = foldFinder(only)
        return { strategy: "foldEqual", test: (v) => v.length === only.length && finder.at(v, 0) }
      }
      const values = new Set(folded.map((s) => s.toLowerCase()))
      const lengths = new Set(folded.map((s) => s.length))
      return { strategy: "foldSet", test: (v) => lengths.has(v.length) && values.has(foldAscii(v)) }
    }
    // `(?i).*error.*`
    const glob = globLiterals(rest)
    if (glob !== undefined && glob.every(isAscii)) {
      const finders = glob.map(foldFinder)
      const test = globTest(glob, (v, i, k) => finders[k]!.at(v, i), (v, from, k) => finders[k]!.find(v, from))
      return { strategy: "foldGlob", test }
    }
  }
  const sequence = sequenceMatcher(p)
  if (sequence !== undefined) return { strategy: "sequence", test: sequence }
  return undefined
}

/**
 * The literal every match starts with, when the pattern is a plain concatenation (no `|` anywhere) that
 * opens with literal characters. The last one is kept only when an operand follows it (`.`, a class, a
 * capturing or `(?:` group, an escape such as `\d`): a quantifier may apply to it otherwise, even from
 * behind a flag group or an empty quote (Go reads `b(?i)*` and `b\Q\E*` as `b*`).
 */
const requiredPrefix = (p: string): string => {
  if (p.includes("|")) return ""
  const { text, end } = readLiteral(p, 0)
  const next = p.slice(end, end + 3)
  const operand = next.startsWith(".") || next.startsWith("[") || next.startsWith("(?:") ||
    (next.startsWith("(") && !next.startsWith("(?")) ||
    (next.startsWith("\\") && next.length > 1 && next[1] !== "Q" && next[1] !== "E")
  return operand ? text : text.slice(0, -1)
}

const newMatcher = (pattern: string): Regex => {
  const fast = fastPath(pattern)
  // A literal alternation is valid RE2 as it stands: no need to compile it (a long `a|b|...` stays cheap).
  if (fast !== undefined && (fast.strategy === "equal" || fast.strategy === "set")) {
    return { source: pattern, strategy: fast.strategy, test: fast.test }
  }
  // Go parses the pattern alone (Perl flags and `s`), so it is validated alone: `a)|(b` is an error.
  const re = re2(`(?s)${pattern}`, pattern)
  if (fast !== undefined) return { source: pattern, strategy: fast.strategy, test: fast.test }
  const prefix = hasSurrogate(pattern) ? "" : requiredPrefix(pattern)
  if (prefix !== "") {
    return { source: pattern, strategy: "prefix+re2", test: (v) => v.startsWith(prefix) && re.testExact(v) }
  }
  return { source: pattern, strategy: "re2", test: (v) => re.testExact(v) }
}

const matcherCache = boundedCache<Regex>()

/**
 * The selector regex for `pattern` (Prometheus's `NewFastRegexMatcher`), compiled once (a bounded
 * cache). Throws a `RegexSyntaxError` with Go's code and fragment when Go would reject the pattern.
 */
export const compileMatcher = (pattern: string): Regex => matcherCache(pattern, newMatcher)

/** The slow path alone (re2js, without fast paths or prefix check): for tests and benchmarks. */
export const compileMatcherSlow = (pattern: string): Regex => {
  const re = re2(`(?s)${pattern}`, pattern)
  return { source: pattern, strategy: "re2", test: (v) => re.testExact(v) }
}

// -------------------------------------------------------------------------------------------------
// label_replace

/** A match of a `label_replace` regex: its groups (0 the whole match, `undefined` when unmatched). */
export interface Submatch {
  readonly groups: ReadonlyArray<string | undefined>
  /** Group number of each named group. */
  readonly names: Readonly<Record<string, number>>
}

/** A compiled `label_replace` regex. */
export interface SubmatchRegex {
  readonly source: string
  /** The leftmost-first match in the value, as Go's `FindStringSubmatchIndex`; undefined if none. */
  readonly exec: (value: string) => Submatch | undefined
}

const newSubmatchRegex = (regex: string): SubmatchRegex => {
  // Exactly what Prometheus compiles; the wrapping is textual, as in Go.
  const re = re2(`^(?s:${regex})$`)
  const names = re.namedGroups()
  return {
    source: regex,
    exec: (value) => {
      const m = re.exec(value)
      return m === null ? undefined : { groups: Array.from(m as ArrayLike<string | undefined>), names }
    }
  }
}

const submatchCache = boundedCache<SubmatchRegex>()

/**
 * The regex of `label_replace(v, dst, replacement, src, regex)`: Go's `regexp.Compile("^(?s:" + regex +
 * ")$")`, compiled once (a bounded cache). Throws a `RegexSyntaxError` when Go would fail to compile it.
 */
export const compileLabelReplace = (regex: string): SubmatchRegex => submatchCache(regex, newSubmatchRegex)

const nameChar = /[\p{L}\p{Nd}_]/u

/**
 * Go's `Regexp.Expand`: the template with `$name` / `${name}` replaced by the group's text (a name of
 * ASCII digits only, without a leading zero, is a group number), and `$$` by `$`. The name is the longest
 * run of letters, digits and `_`, so `$1x` is the group named `1x`; a group that does not exist or did not
 * match expands to nothing; a `$` that starts no valid reference (`$-`, `${1`, a final `$`) is kept.
 */
export const expand = (template: string, m: Submatch): string => {
  let out = ""
  let i = 0
  for (;;) {
    const dollar = template.indexOf("$", i)
    if (dollar < 0) return out + template.slice(i)
    out += template.slice(i, dollar)
    i = dollar + 1
    if (template[i] === "$") {
      out += "$"
      i++
      continue
    }
    const brace = template[i] === "{"
    let j = brace ? i + 1 : i
    const nameStart = j
    while (j < template.length) {
      const cp = template.codePointAt(j)!
      const ch = String.fromCodePoint(cp)
      if (!nameChar.test(ch)) break
      j += ch.length
    }
    const name = template.slice(nameStart, j)
    if (name === "" || (brace && template[j] !== "}")) {
      // Malformed: the `$` is kept as text.
      out += "$"
      continue
    }
    i = brace ? j + 1 : j
    out += groupText(name, m) ?? ""
  }
}

/** A reference's text: a number (Go: ASCII digits, no leading zero, at most 9 of them) or else a group name. */
const groupText = (name: string, m: Submatch): string | undefined => {
  if (/^(?:0|[1-9][0-9]{0,8})$/.test(name)) return m.groups[Number(name)]
  const index = Object.hasOwn(m.names, name) ? m.names[name] : undefined
  return index === undefined ? undefined : m.groups[index]
}
