/**
 * The PromQL lexer: query text → tokens, one at a time as the parser asks. Numbers (decimal, hex, octal,
 * `Inf`, `NaN`), durations (`5m`, `1h30m`: ms), strings with Go's escapes (decoded to the bytes Go would
 * hold: `decodeGoBytes`), identifiers and keywords, operators and brackets; comments (`# ...`) are
 * skipped. Bad characters and unbalanced brackets are reported here, with Prometheus's messages; so is
 * how a token is named in the parser's "unexpected ..." messages (`describe`).
 */
import { ParseError } from "./ast.ts"
import { parseModelDuration } from "./durations.ts"
import { goQuote } from "./format.ts"
import { aggregateOps } from "./functionTable.ts"

export type TokenKind =
  | "number"
  | "duration"
  | "string"
  | "identifier"
  | "operator"
  | "("
  | ")"
  | "{"
  | "}"
  | "["
  | "]"
  | ","
  | ":"
  | "@"
  | "eof"

export interface Token {
  readonly kind: TokenKind
  /** The source text. */
  readonly text: string
  readonly start: number
  readonly end: number
  /** number: its value; duration: ms. */
  readonly num: number
  /** string: the unquoted value. */
  readonly str: string
}

/** Keywords (matched case-insensitively) and how Prometheus describes them in errors. */
const keywordDesc: ReadonlyMap<string, string> = new Map([
  ...["and", "or", "unless", "atan2"].map((k) => [k, `<op:${k}>`] as const),
  ...[...aggregateOps].map((k) => [k, `<aggr:${k}>`] as const),
  ...["offset", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "anchored", "smoothed"].map(
    (k) => [k, `<${k}>`] as const
  )
])
/** Keywords that cannot name a metric. */
export const reservedWords: ReadonlySet<string> = new Set(["on", "ignoring", "group_left", "group_right", "bool", "atan2"])

const isDigit = (c: string | undefined) => c !== undefined && c >= "0" && c <= "9"
const isAlpha = (c: string | undefined) =>
  c !== undefined && ((c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || c === "_")
const isAlphaNumeric = (c: string | undefined) => isAlpha(c) || isDigit(c)
const isSpace = (c: string | undefined) => c === " " || c === "\t" || c === "\n" || c === "\r"

/** A Go rune literal (`%q` of a rune), for error messages. */
const quoteRune = (c: string) => (c === "'" ? "'\\''" : `'${goQuote(c).slice(1, -1)}'`)

export class Lexer {
  private readonly input: string
  private pos = 0
  private parenDepth = 0
  private braceOpen = false
  private bracketOpen = false

  constructor(input: string) {
    this.input = input
  }

  private fail(message: string, at: number): never {
    throw new ParseError(message, at)
  }

  private token(kind: TokenKind, start: number, num = 0, str = ""): Token {
    return { kind, text: this.input.slice(start, this.pos), start, end: this.pos, num, str }
  }

  next(): Token {
    const s = this.input
    for (;;) {
      while (isSpace(s[this.pos])) this.pos++
      if (s[this.pos] !== "#") break
      while (this.pos < s.length && s[this.pos] !== "\n") this.pos++
    }
    const start = this.pos
    const c = s[this.pos]
    if (c === undefined) {
      if (this.braceOpen) this.fail("unexpected end of input inside braces", start)
      if (this.parenDepth > 0) this.fail("unclosed left parenthesis", start)
      if (this.bracketOpen) this.fail("unclosed left bracket", start)
      return this.token("eof", start)
    }
    this.pos++
    const peek = s[this.pos]
    switch (c) {
      case ",":
        return this.token(",", start)
      case "(":
        this.parenDepth++
        return this.token("(", start)
      case ")":
        if (--this.parenDepth < 0) this.fail("unexpected right parenthesis ')'", start)
        return this.token(")", start)
      case "{":
        if (this.braceOpen) this.fail("unexpected left brace '{'", start)
        this.braceOpen = true
        return this.token("{", start)
      case "}":
        if (!this.braceOpen) this.fail("unexpected right brace '}'", start)
        this.braceOpen = false
        return this.token("}", start)
      case "[":
        if (this.bracketOpen) this.fail("unexpected left bracket '['", start)
        this.bracketOpen = true
        return this.token("[", start)
      case "]":
        if (!this.bracketOpen) this.fail("unexpected right bracket ']'", start)
        this.bracketOpen = false
        return this.token("]", start)
      case "@":
        return this.token("@", start)
      case "+":
      case "-":
      case "*":
      case "/":
      case "%":
      case "^":
        return this.token("operator", start)
      case "=":
        if (peek === "=" || peek === "~") this.pos++
        return this.token("operator", start)
      case "!":
        if (peek !== "=" && peek !== "~") {
          this.fail(`unexpected character after '!': ${peek === undefined ? "EOF" : quoteRune(peek)}`, start)
        }
        this.pos++
        return this.token("operator", start)
      case "<":
      case ">":
        if (peek === "=" || peek === "/") this.pos++
        return this.token("operator", start)
      case '"':
      case "'":
      case "`":
        return this.lexString(c, start)
      case ":":
        if (this.bracketOpen) return this.token(":", start)
        return this.lexIdentifier(start)
      default:
        if (isDigit(c) || (c === "." && isDigit(peek))) return this.lexNumber(start)
        if (isAlpha(c)) return this.lexIdentifier(start)
        return this.fail(`unexpected character: ${quoteRune(c)}`, start)
    }
  }

  private lexIdentifier(start: number): Token {
    const s = this.input
    // Inside braces and brackets a colon is not part of a name.
    const colon = !this.braceOpen && !this.bracketOpen
    while (isAlphaNumeric(s[this.pos]) || (colon && s[this.pos] === ":")) this.pos++
    const text = s.slice(start, this.pos)
    const lower = text.toLowerCase()
    if (!this.braceOpen && (lower === "inf" || lower === "nan")) return this.token("number", start, lower === "inf" ? Infinity : NaN)
    return this.token("identifier", start)
  }

  /** A number (decimal, hex, exponent) or a duration (`5m`, `1h30m`, `100ms`). */
  private lexNumber(start: number): Token {
    const s = this.input
    const accept = (chars: string) => {
      const c = s[this.pos]
      if (c !== undefined && chars.includes(c)) {
        this.pos++
        return true
      }
      return false
    }
    const acceptRun = (chars: string) => {
      while (accept(chars)) {
        // consume
      }
    }
    let digits = "0123456789"
    let hex = false
    if (s[this.pos - 1] === "0" && accept("xX")) {
      digits = "0123456789abcdefABCDEF"
      hex = true
    } else {
      this.pos-- // rescan the first digit (or the dot)
    }
    acceptRun(digits)
    if (accept(".")) acceptRun(digits)
    if (!hex && accept("eE")) {
      accept("+-")
      acceptRun("0123456789")
    }
    if (!isAlphaNumeric(s[this.pos])) {
      const text = s.slice(start, this.pos)
      const value = parseNumber(text)
      if (value === undefined) this.fail(`error parsing number: ${goQuote(text)}`, start)
      return this.token("number", start, value)
    }
    // A duration: a unit, then optionally more numbers and units (y only first).
    if (accept("smhdwy")) {
      accept("s")
      let ok = true
      while (ok && accept("0123456789")) {
        acceptRun("0123456789")
        ok = accept("smhdw")
        accept("s")
      }
      if (ok && !isAlphaNumeric(s[this.pos])) {
        const text = s.slice(start, this.pos)
        let ms: number
        try {
          ms = parseModelDuration(text)
        } catch (e) {
          this.fail(e instanceof Error ? e.message : String(e), start)
        }
        return this.token("duration", start, ms)
      }
    }
    while (isAlphaNumeric(s[this.pos])) this.pos++
    return this.fail(`bad number or duration syntax: ${goQuote(s.slice(start, this.pos))}`, start)
  }

  private lexString(quote: string, start: number): Token {
    const s = this.input
    if (quote === "`") {
      const close = s.indexOf("`", this.pos)
      if (close < 0) this.fail("unterminated raw string", start)
      this.pos = close + 1
      return this.token("string", start, 0, s.slice(start + 1, close))
    }
    const bytes: Array<number> = []
    const encoder = new TextEncoder()
    const hexDigits = (n: number, base: number): number => {
      const digits = s.slice(this.pos, this.pos + n)
      const re = base === 8 ? /^[0-7]+$/ : /^[0-9a-fA-F]+$/
      if (digits.length < n || !re.test(digits)) {
        this.fail(`unknown escape sequence: ${goQuote(s.slice(this.pos - 2, this.pos + n))}`, this.pos - 2)
      }
      this.pos += n
      return parseInt(digits, base)
    }
    for (;;) {
      const c = s[this.pos]
      if (c === undefined || c === "\n") return this.fail("unterminated quoted string", start)
      this.pos++
      if (c === quote) break
      if (c !== "\\") {
        const cp = s.codePointAt(this.pos - 1) ?? 0
        const ch = String.fromCodePoint(cp)
        this.pos += ch.length - 1
        bytes.push(...encoder.encode(ch))
        continue
      }
      const e = s[this.pos]
      if (e === undefined || e === "\n") return this.fail("escape sequence not terminated", this.pos - 1)
      this.pos++
      const simple: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, "\\": 92 }
      const code = simple[e]
      if (code !== undefined) bytes.push(code)
      else if (e === quote) bytes.push(quote.charCodeAt(0))
      else if (e >= "0" && e <= "7") {
        this.pos--
        const v = hexDigits(3, 8)
        if (v > 255) this.fail(`octal escape value > 255: ${v}`, this.pos - 4)
        bytes.push(v)
      } else if (e === "x") bytes.push(hexDigits(2, 16))
      else if (e === "u" || e === "U") {
        const v = hexDigits(e === "u" ? 4 : 8, 16)
        if (v > 0x10ffff || (v >= 0xd800 && v < 0xe000)) {
          this.fail("escape sequence is an invalid Unicode code point", this.pos - (e === "u" ? 6 : 10))
        }
        bytes.push(...encoder.encode(String.fromCodePoint(v)))
      } else this.fail(`unknown escape sequence U+${e.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")} ${quoteRune(e)}`, this.pos - 2)
    }
    return this.token("string", start, 0, decodeGoBytes(bytes))
  }
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true })

/**
 * A Go string's bytes as a JS string. Go strings may hold bytes that are not UTF-8 (`"\xc5"`); each such
 * byte becomes the lone surrogate U+DC80 + (byte - 0x80) (Python's "surrogateescape"), so that `goQuote`
 * prints it back as Go does (`\xc5`) and it never equals a valid string.
 */
export const decodeGoBytes = (bytes: ReadonlyArray<number>): string => {
  const all = Uint8Array.from(bytes)
  try {
    return strictUtf8.decode(all)
  } catch {
    let out = ""
    let i = 0
    while (i < all.length) {
      const b = all[i]!
      const n = b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0
      if (n > 0 && i + n <= all.length) {
        try {
          out += strictUtf8.decode(all.subarray(i, i + n))
          i += n
          continue
        } catch {
          // Not a valid sequence: the lead byte alone is escaped below.
        }
      }
      out += String.fromCharCode(0xdc00 + b)
      i++
    }
    return out
  }
}

/** Go's `strconv.ParseInt(s, 0, 64)`, else `strconv.ParseFloat(s, 64)`, for what the lexer accepts. */
const parseNumber = (text: string): number | undefined => {
  if (/^0[xX][0-9a-fA-F]+$/.test(text)) return parseInt(text.slice(2), 16)
  if (/^0[xX]/.test(text)) return undefined
  if (/^0[0-7]+$/.test(text)) return parseInt(text, 8)
  const v = Number(text)
  return Number.isNaN(v) ? undefined : v
}

/** Label and metric names as Prometheus's legacy validation accepts them (the printer quotes the others). */
export const legacyLabelName = /^[a-zA-Z_][a-zA-Z0-9_]*$/
export const legacyMetricName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/

/** How Prometheus names a token in "unexpected ..." messages. */
export const describe = (t: Token): string => {
  switch (t.kind) {
    case "eof":
      return "end of input"
    case "number":
      return `number ${goQuote(t.text)}`
    case "duration":
      return `duration ${goQuote(t.text)}`
    case "string":
      return `string ${t.text.length > 10 ? goQuote([...t.text].slice(0, 10).join("")) + "..." : goQuote(t.text)}`
    case "identifier": {
      const kw = keywordDesc.get(t.text.toLowerCase())
      if (kw !== undefined) return kw
      return `${t.text.includes(":") ? "metric identifier" : "identifier"} ${goQuote(t.text)}`
    }
    case "operator":
      return t.text === "=" ? '"="' : `<op:${t.text}>`
    case "@":
      return "<op:@>"
    default:
      return goQuote(t.text)
  }
}
