/**
 * The PromQL parser: query text → the syntax tree of `ast.ts`, with Prometheus 3.x's grammar, precedence
 * and (close to verbatim) error messages.
 *
 * The lexer (lexer.ts) feeds a hand-written recursive-descent parser; binary operators are parsed by
 * precedence climbing (lowest first: `or`; `and` `unless`; comparisons; `+` `-`; `*` `/` `%` `atan2`; `^`,
 * the only right-associative one). Unary `+`/`-` binds like `*`, so `-2 ^ 2` is `-(2 ^ 2)`, and a sign
 * directly in front of a number literal is folded into it. `[..]`, `offset`, `@`, `anchored` and
 * `smoothed` are postfix and bind tighter than any binary operator. Keywords are case-insensitive; function
 * names are not. As in Prometheus, syntax errors are reported first, then a separate pass checks types
 * (typeCheck.ts). Unlike Prometheus, nesting is bounded: no tree `parse` returns is more than
 * `promqlDepthMax` (limits.ts) nodes deep, and a deeper query is the parse error "expression nested too
 * deeply (more than N levels)", so every recursion over the tree (here, in the evaluator, in the printer)
 * stays far from Node's stack limit.
 *
 * Besides the stable language it accepts the experimental features that Prometheus's own test corpus
 * (promqltest v3.14.0) enables: duration expressions in `[..]` and after `offset` (`[5m + step()]`,
 * `offset min_of(step(), 1s)`; durations.ts), the `anchored` / `smoothed` selector modifiers, and the
 * `fill`, `fill_left`, `fill_right` binary-operator modifiers. The native histogram trim operators `</`
 * and `>/` bind as comparisons do.
 *
 * Exports: `parse`, `parseWithDurations`, `describeParseError` (`1:5: parse error: ...`); and, from the
 * modules the parser is made of, `typeOf` (typeCheck.ts), `formatExpr` (printer.ts: canonical text, as
 * `/api/v1/format_query`), `parseDuration`, `formatDuration`, `resolveDurations` (durations.ts),
 * `functions` (functionTable.ts: the function table), `goQuote` (format.ts), `decodeGoBytes` (lexer.ts).
 */
import { anchored, type Matcher, type MatchType, RegexSyntaxError } from "../internal/labels.ts"
import { promqlDepthMax } from "../limits.ts"
import type {
  AggregateOp,
  AtModifier,
  Binary,
  BinaryOp,
  Expr,
  MatrixSelector,
  NumberLiteral,
  Pos,
  Subquery,
  VectorMatching,
  VectorSelector
} from "./ast.ts"
import { ParseError } from "./ast.ts"
import { dependsOnQuery, durationMs, goRound } from "./durations.ts"
import { formatGoFloat, goQuote } from "./format.ts"
import { aggregateOps, aggregateParam, functions } from "./functionTable.ts"
import { describe, legacyLabelName, Lexer, reservedWords, type Token, type TokenKind } from "./lexer.ts"
import { checkTypes, operatorStart, setOps } from "./typeCheck.ts"

export { decodeGoBytes } from "./lexer.ts"
export { formatDuration, parseDuration, resolveDurations } from "./durations.ts"
export type { DurationContext } from "./durations.ts"
export { goQuote } from "./format.ts"
export { functions } from "./functionTable.ts"
export type { FunctionSpec } from "./functionTable.ts"
export { formatExpr } from "./printer.ts"
export { typeOf } from "./typeCheck.ts"

type BinaryToken = BinaryOp

const precedence: ReadonlyMap<string, number> = new Map<BinaryToken, number>([
  ["or", 1],
  ["and", 2],
  ["unless", 2],
  ["==", 3],
  ["!=", 3],
  ["<", 3],
  ["<=", 3],
  [">", 3],
  [">=", 3],
  ["</", 3],
  [">/", 3],
  ["+", 4],
  ["-", 4],
  ["*", 5],
  ["/", 5],
  ["%", 5],
  ["atan2", 5],
  ["^", 6]
])
const unaryPrecedence = 6 // the operand of unary +/- takes only `^` (and postfix modifiers)

class Parser {
  private readonly lexer: Lexer
  private readonly buffer: Array<Token> = []
  /** The end of the last consumed token. */
  private prevEnd = 0
  /**
   * How many expressions (`parseExpr`, `parseDurationExpr`) are being parsed, one inside the other: the
   * depth in the tree at which the one being parsed will sit, at least (see `nestingCheck`).
   */
  private depth = 0
  /** Whether a duration was written as an expression (arithmetic, parentheses, `step()`...): `promql-duration-expr`. */
  durationExpressions = false

  constructor(input: string) {
    this.lexer = new Lexer(input)
  }

  // --- tokens

  private peek(n = 0): Token {
    while (this.buffer.length <= n) {
      const last = this.buffer[this.buffer.length - 1]
      this.buffer.push(last?.kind === "eof" ? last : this.lexer.next())
    }
    return this.buffer[n]!
  }

  private next(): Token {
    const t = this.peek()
    this.buffer.shift()
    this.prevEnd = t.end
    return t
  }

  private isWord(t: Token, ...words: ReadonlyArray<string>) {
    return t.kind === "identifier" && words.includes(t.text.toLowerCase())
  }

  private isOp(t: Token, ...ops: ReadonlyArray<string>) {
    return t.kind === "operator" && ops.includes(t.text)
  }

  private unexpected(t: Token, context?: string, expected?: string): never {
    let msg = `unexpected ${describe(t)}`
    if (context !== undefined) msg += ` in ${context}`
    if (expected !== undefined) msg += `, expected ${expected}`
    throw new ParseError(msg, t.start)
  }

  private expect(kind: TokenKind, context?: string, expected?: string): Token {
    const t = this.peek()
    if (t.kind !== kind) this.unexpected(t, context, expected ?? `"${kind}"`)
    return this.next()
  }

  // --- nesting: no tree deeper than `promqlDepthMax` (limits.ts), and no recursion deeper either
  //
  // Every recursion of the parser goes through `parseExpr` or `parseDurationExpr`, which count `depth`
  // (the query is at depth 1) and refuse to start an expression deeper than the limit. An expression
  // parsed at depth d is a child of one parsed at depth d - 1 (a sign folded into a number literal
  // aside), so a tree that `parseExpr` or `parseDurationExpr` returns at depth d must be at most
  // `promqlDepthMax - d + 1` high. Nodes built from the operands of one recursion level, which add height
  // without recursing (a left-deep chain `a + b + c`, a subquery `x[5m:]`, `offset`), are checked by
  // `nestingCheck`; the others (parentheses, signs, calls, aggregations) are one higher than a child
  // parsed one level deeper, which holds by induction.

  /** Starts an expression at `depth + 1`; `leave` ends it. */
  private enter(): void {
    if (++this.depth > promqlDepthMax) throw nestedTooDeeply(this.peek().start)
  }

  private leave(): void {
    this.depth--
  }

  /** `e`, built at the current depth; fails at `at` if it is higher than the depth left. */
  private nestingCheck<E extends Expr>(e: E, at: number): E {
    if (this.depth - 1 + heightOf(e) > promqlDepthMax) throw nestedTooDeeply(at)
    return e
  }

  // --- expressions

  parseQuery(): Expr {
    if (this.peek().kind === "eof") throw new ParseError("no expression found in input", 0)
    const e = this.parseExpr(0)
    const t = this.peek()
    if (t.kind !== "eof") this.unexpected(t)
    return e
  }

  private binaryOp(t: Token): BinaryToken | undefined {
    if (t.kind === "operator") return precedence.has(t.text) ? (t.text as BinaryToken) : undefined
    if (t.kind === "identifier") {
      const w = t.text.toLowerCase()
      if (w === "and" || w === "or" || w === "unless" || w === "atan2") return w
    }
    return undefined
  }

  private parseExpr(minPrec: number): Expr {
    this.enter()
    try {
      let lhs = this.parseUnary()
      for (;;) {
        const opTok = this.peek()
        const op = this.binaryOp(opTok)
        const prec = op === undefined ? undefined : precedence.get(op)
        if (op === undefined || prec === undefined || prec < minPrec) return lhs
        this.next()
        const mods = this.parseBinaryModifiers(op)
        const rhs = this.parseExpr(op === "^" ? prec : prec + 1)
        lhs = this.nestingCheck(binary(op, lhs, rhs, mods), opTok.start)
        operatorStart.set(lhs, opTok.start)
      }
    } finally {
      this.leave()
    }
  }

  private parseUnary(): Expr {
    const t = this.peek()
    if (this.isOp(t, "+", "-")) {
      this.next()
      const operand = this.parseExpr(unaryPrecedence)
      return unary(t.text === "-" ? "-" : "+", operand, t.start)
    }
    return this.parsePostfix(this.parsePrimary())
  }

  private parsePrimary(): Expr {
    const t = this.peek()
    switch (t.kind) {
      case "number":
        this.next()
        return { type: "NumberLiteral", value: t.num, pos: pos(t.start, t.end) }
      case "duration":
        this.next()
        return { type: "NumberLiteral", value: t.num / 1000, pos: pos(t.start, t.end), duration: true }
      case "string":
        this.next()
        return { type: "StringLiteral", value: t.str, pos: pos(t.start, t.end) }
      case "(": {
        this.next()
        const inner = this.parseExpr(0)
        const close = this.expect(")", undefined, '")"')
        return { type: "Paren", expr: inner, pos: pos(t.start, close.end) }
      }
      case "{":
        return this.parseVectorSelector(undefined)
      case "identifier":
        return this.parseIdentifier()
      default:
        return this.unexpected(t)
    }
  }

  /** A function call, an aggregation, or a metric name (keywords may name metrics where unambiguous). */
  private parseIdentifier(): Expr {
    const t = this.peek()
    const word = t.text.toLowerCase()
    const after = this.peek(1)
    if (aggregateOps.has(word) && (after.kind === "(" || this.isWord(after, "by", "without"))) {
      return this.parseAggregate()
    }
    if (reservedWords.has(word)) this.unexpected(t)
    if (after.kind === "(") {
      if (t.text.includes(":")) this.unexpected(after)
      const spec = functions.get(t.text) ?? (["start", "end", "step", "range"].includes(word) ? functions.get(word) : undefined)
      if (spec === undefined) throw new ParseError(`unknown function with name ${goQuote(t.text)}`, t.start)
      this.next()
      const { args, end } = this.parseCallArgs()
      return { type: "Call", func: spec.name, args, pos: pos(t.start, end) }
    }
    this.next()
    return this.parseVectorSelector(t)
  }

  private parseCallArgs(): { args: ReadonlyArray<Expr>; end: number } {
    this.expect("(")
    const args: Array<Expr> = []
    if (this.peek().kind !== ")") {
      for (;;) {
        args.push(this.parseExpr(0))
        const t = this.peek()
        if (t.kind === ")") break
        if (t.kind !== ",") this.unexpected(t, "function call", '"," or ")"')
        this.next()
        if (this.peek().kind === ")") throw new ParseError("trailing commas not allowed in function call args", t.start)
      }
    }
    return { args, end: this.next().end }
  }

  private parseAggregate(): Expr {
    const opTok = this.next()
    const op = opTok.text.toLowerCase() as AggregateOp
    let grouping: ReadonlyArray<string> = []
    let without = false
    let hasGrouping = false
    const parseGrouping = () => {
      without = this.next().text.toLowerCase() === "without"
      grouping = this.parseGroupingLabels().labels
      hasGrouping = true
    }
    if (this.isWord(this.peek(), "by", "without")) parseGrouping()
    if (this.peek().kind !== "(") this.unexpected(this.peek(), "aggregation")
    const { args, end: bodyEnd } = this.parseCallArgs()
    let end = bodyEnd
    if (!hasGrouping && this.isWord(this.peek(), "by", "without")) {
      parseGrouping()
      end = this.prevEnd
    }
    const p = pos(opTok.start, end)
    if (args.length === 0) throw new ParseError("no arguments for aggregate expression provided", p.start)
    const wanted = aggregateParam.has(op) ? 2 : 1
    if (args.length !== wanted) {
      throw new ParseError(
        `wrong number of arguments for aggregate expression provided, expected ${wanted}, got ${args.length}`,
        p.start
      )
    }
    return {
      type: "Aggregate",
      op,
      expr: args[wanted - 1]!,
      param: wanted === 2 ? args[0] : undefined,
      grouping,
      without,
      pos: p
    }
  }

  /** `(label, "quoted label", ...)`, a trailing comma allowed. */
  private parseGroupingLabels(): { labels: ReadonlyArray<string>; end: number } {
    const open = this.peek()
    if (open.kind !== "(") this.unexpected(open, "grouping opts", '"("')
    this.next()
    const labels: Array<string> = []
    for (;;) {
      const t = this.peek()
      if (t.kind === ")") break
      if (t.kind === "identifier") {
        labels.push(t.text)
      } else if (t.kind === "string") {
        if (t.str === "") throw new ParseError(`invalid label name for grouping: ${goQuote(t.str)}`, t.start)
        labels.push(t.str)
      } else {
        this.unexpected(t, "grouping opts", "label")
      }
      this.next()
      const sep = this.peek()
      if (sep.kind === ",") this.next()
      else if (sep.kind !== ")") this.unexpected(sep, "grouping opts", '"," or ")"')
    }
    const close = this.next()
    return { labels, end: close.end }
  }

  /** `bool`, `on (..)` / `ignoring (..)`, `group_left (..)` / `group_right (..)`, `fill*(v)`. */
  private parseBinaryModifiers(op: BinaryToken): Modifiers {
    let bool = false
    let on: boolean | undefined
    let labels: ReadonlyArray<string> = []
    let card: VectorMatching["card"] = setOps.has(op) ? "many-to-many" : "one-to-one"
    let include: ReadonlyArray<string> = []
    let fillLeft: number | undefined
    let fillRight: number | undefined
    if (this.isWord(this.peek(), "bool")) {
      this.next()
      bool = true
    }
    if (this.isWord(this.peek(), "on", "ignoring")) {
      on = this.next().text.toLowerCase() === "on"
      labels = this.parseGroupingLabels().labels
      const g = this.peek()
      if (this.isWord(g, "group_left", "group_right")) {
        this.next()
        card = g.text.toLowerCase() === "group_left" ? "many-to-one" : "one-to-many"
        if (this.peek().kind === "(") include = this.parseGroupingLabels().labels
      }
    }
    while (this.isWord(this.peek(), "fill", "fill_left", "fill_right") && this.peek(1).kind === "(") {
      const kw = this.next()
      const which = kw.text.toLowerCase()
      this.next()
      const v = this.parseSignedNumber("fill modifier")
      this.expect(")", "fill modifier", '")"')
      const left = which !== "fill_right"
      const right = which !== "fill_left"
      if ((left && fillLeft !== undefined) || (right && fillRight !== undefined)) {
        throw new ParseError("fill modifier may not be set multiple times", kw.start)
      }
      if (left) fillLeft = v
      if (right) fillRight = v
    }
    return { bool, on, labels, card, include, fillLeft, fillRight }
  }

  /** A number literal with an optional sign (`@ -5`, `fill(-Inf)`); durations count as seconds. */
  private parseSignedNumber(context: string): number {
    let sign = 1
    if (this.isOp(this.peek(), "+", "-")) sign = this.next().text === "-" ? -1 : 1
    const t = this.peek()
    if (t.kind !== "number" && t.kind !== "duration") this.unexpected(t, context, "number")
    this.next()
    return t.kind === "number" ? sign * t.num : (sign * t.num) / 1000
  }

  /** `name`, `name{...}` or `{...}`; `nameTok` was consumed already. */
  private parseVectorSelector(nameTok: Token | undefined): VectorSelector {
    const matchers: Array<Matcher> = []
    const name = nameTok?.text
    if (name !== undefined) matchers.push({ name: "__name__", type: "=", value: name })
    let start = nameTok?.start
    let end = nameTok?.end ?? 0
    if (this.peek().kind === "{") {
      const open = this.next()
      start ??= open.start
      for (;;) {
        const t = this.peek()
        if (t.kind === "}") break
        let label: string
        if (t.kind === "identifier" && legacyLabelName.test(t.text)) label = t.text
        else if (t.kind === "string") label = t.str
        else return this.unexpected(t, "label matching", 'identifier or "}"')
        this.next()
        const opTok = this.peek()
        if (t.kind === "string" && (opTok.kind === "," || opTok.kind === "}")) {
          // `{"metric.name", ...}`: a quoted metric name.
          matchers.push({ name: "__name__", type: "=", value: label })
        } else {
          if (!this.isOp(opTok, "=", "!=", "=~", "!~")) {
            this.unexpected(opTok, "label matching", "label matching operator")
          }
          this.next()
          const v = this.peek()
          if (v.kind !== "string") this.unexpected(v, "label matching", "string")
          this.next()
          matchers.push(newMatcher(label, opTok.text as MatchType, v.str, t.start))
        }
        const sep = this.peek()
        if (sep.kind === ",") this.next()
        else if (sep.kind !== "}") this.unexpected(sep, "label matching", '"," or "}"')
      }
      end = this.next().end
    }
    return {
      type: "VectorSelector",
      name,
      matchers,
      offsetMs: 0,
      at: undefined,
      pos: pos(start ?? 0, end)
    }
  }

  // --- postfix: [range], [range:step], offset, @, anchored, smoothed

  private parsePostfix(primary: Expr): Expr {
    let e = primary
    for (;;) {
      const t = this.peek()
      if (t.kind === "[") e = this.parseRange(e)
      else if (this.isWord(t, "offset")) e = this.parseOffset(e)
      else if (t.kind === "@") e = this.parseAt(e)
      else if (this.isWord(t, "anchored", "smoothed")) e = this.parseExtendedModifier(e)
      else return e
      this.nestingCheck(e, t.start)
    }
  }

  private parseRange(e: Expr): Expr {
    const open = this.next()
    const range = this.parseDurationExpr()
    const t = this.peek()
    if (t.kind === "]") {
      const close = this.next()
      let err: string | undefined
      if (e.type !== "VectorSelector") err = "ranges only allowed for vector selectors"
      else if (e.offsetMs !== 0 || e.offsetExpr !== undefined) err = "no offset modifiers allowed before range"
      else if (e.at !== undefined) err = "no @ modifiers allowed before range"
      if (err !== undefined || e.type !== "VectorSelector") throw new ParseError(err ?? "", open.start)
      const r = durationField(range, false)
      return withOptional<MatrixSelector>(
        { type: "MatrixSelector", vector: e, rangeMs: r.ms, pos: pos(e.pos.start, close.end) },
        "rangeExpr",
        r.expr
      )
    }
    if (t.kind !== ":") this.unexpected(t, "subquery or range", '":" or "]"')
    this.next()
    let step: DurationField | undefined
    if (this.peek().kind !== "]") step = durationField(this.parseDurationExpr(), false)
    const close = this.peek()
    if (close.kind !== "]") this.unexpected(close, "subquery selector", '"]"')
    this.next()
    const r = durationField(range, false)
    let sq: Subquery = {
      type: "Subquery",
      expr: e,
      rangeMs: r.ms,
      stepMs: step === undefined || (step.ms === 0 && step.expr === undefined) ? undefined : step.ms,
      offsetMs: 0,
      at: undefined,
      pos: pos(e.pos.start, close.end)
    }
    sq = withOptional(sq, "rangeExpr", r.expr)
    return withOptional(sq, "stepExpr", step?.expr)
  }

  private parseOffset(e: Expr): Expr {
    const kw = this.next()
    const startTok = this.peek()
    let sign: "+" | "-" | undefined
    if (this.isOp(startTok, "+", "-")) {
      this.next()
      sign = startTok.text === "-" ? "-" : "+"
    }
    const operand = this.parseDurationPrimary("offset", "number or duration")
    const d = unary(sign ?? "+", operand, startTok.start)
    const expr = sign === undefined ? operand : d
    const f = durationField(expr, true)
    const end = expr.pos.end
    const set = <T extends VectorSelector | Subquery>(x: T): T => {
      if (x.offsetMs !== 0 || x.offsetExpr !== undefined) {
        throw new ParseError("offset may not be set multiple times", kw.start)
      }
      return withOptional({ ...x, offsetMs: f.ms }, "offsetExpr", f.expr)
    }
    switch (e.type) {
      case "VectorSelector":
        return { ...set(e), pos: pos(e.pos.start, end) }
      case "MatrixSelector":
        return { ...e, vector: set(e.vector), pos: pos(e.pos.start, end) }
      case "Subquery":
        return { ...set(e), pos: pos(e.pos.start, end) }
      default:
        throw new ParseError(
          "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery",
          kw.start
        )
    }
  }

  private parseAt(e: Expr): Expr {
    const at = this.next()
    let value: AtModifier
    const t = this.peek()
    let end: number
    if (this.isWord(t, "start", "end")) {
      this.next()
      this.expect("(", "@", '"("')
      end = this.expect(")", "@", '")"').end
      value = t.text.toLowerCase() === "start" ? "start" : "end"
    } else {
      if (!(t.kind === "number" || t.kind === "duration" || this.isOp(t, "+", "-"))) this.unexpected(t, "@", "timestamp")
      const seconds = this.parseSignedNumber("@")
      end = this.prevEnd
      if (!Number.isFinite(seconds) || Math.abs(seconds) >= 9.223372036854776e18) {
        throw new ParseError(`timestamp out of bounds for @ modifier: ${formatGoFloat(seconds)}`, at.start)
      }
      value = goRound(seconds * 1000)
    }
    const set = <T extends VectorSelector | Subquery>(x: T): T => {
      if (x.at !== undefined) throw new ParseError("@ <timestamp> may not be set multiple times", at.start)
      return { ...x, at: value }
    }
    switch (e.type) {
      case "VectorSelector":
        return { ...set(e), pos: pos(e.pos.start, end) }
      case "MatrixSelector":
        return { ...e, vector: set(e.vector), pos: pos(e.pos.start, end) }
      case "Subquery":
        return { ...set(e), pos: pos(e.pos.start, end) }
      default:
        throw new ParseError(
          "@ modifier must be preceded by an instant vector selector or range vector selector or a subquery",
          at.start
        )
    }
  }

  private parseExtendedModifier(e: Expr): Expr {
    const t = this.next()
    const which = t.text.toLowerCase() === "anchored" ? "anchored" : "smoothed"
    const other = which === "anchored" ? "smoothed" : "anchored"
    const set = (vs: VectorSelector): VectorSelector => {
      if (vs[other] === true) throw new ParseError("anchored and smoothed modifiers cannot be used together", t.start)
      return { ...vs, [which]: true }
    }
    switch (e.type) {
      case "VectorSelector":
        return { ...set(e), pos: pos(e.pos.start, t.end) }
      case "MatrixSelector":
        return { ...e, vector: set(e.vector), pos: pos(e.pos.start, t.end) }
      case "Subquery":
        throw new ParseError(`${which} modifier is not supported for subqueries`, t.start)
      default:
        throw new ParseError(
          `${which} modifier must be preceded by an instant vector selector or range vector selector`,
          t.start
        )
    }
  }

  // --- duration expressions: numbers (seconds), durations, + - * / % ^, (..), step(), range(), min_of, max_of

  private parseDurationExpr(minPrec = 0): Expr {
    this.enter()
    try {
      let lhs: Expr
      const t = this.peek()
      if (this.isOp(t, "+", "-")) {
        this.next()
        lhs = unary(t.text === "-" ? "-" : "+", this.parseDurationExpr(unaryPrecedence), t.start)
      } else {
        lhs = this.parseDurationPrimary("duration expression", "number or duration")
      }
      for (;;) {
        const opTok = this.peek()
        if (!this.isOp(opTok, "+", "-", "*", "/", "%", "^")) return lhs
        const op = opTok.text as BinaryOp
        const prec = precedence.get(op) ?? 0
        if (prec < minPrec) return lhs
        this.next()
        const rhs = this.parseDurationExpr(op === "^" ? prec : prec + 1)
        this.durationExpressions = true
        lhs = this.nestingCheck<Expr>(
          { type: "Binary", op, lhs, rhs, bool: false, matching: undefined, pos: pos(lhs.pos.start, rhs.pos.end) },
          opTok.start
        )
      }
    } finally {
      this.leave()
    }
  }

  private parseDurationPrimary(context: string, expected: string): Expr {
    const t = this.peek()
    if (t.kind === "number" || t.kind === "duration") {
      this.next()
      const lit: NumberLiteral = { type: "NumberLiteral", value: t.kind === "number" ? t.num : t.num / 1000, pos: pos(t.start, t.end) }
      return t.kind === "duration" ? { ...lit, duration: true } : lit
    }
    if (t.kind === "(") {
      this.next()
      const inner = this.parseDurationExpr()
      const close = this.expect(")", context, '")"')
      this.durationExpressions = true
      return { type: "Paren", expr: inner, pos: pos(t.start, close.end) }
    }
    if (this.isWord(t, "step", "range", "min_of", "max_of") && this.peek(1).kind === "(") {
      const func = t.text.toLowerCase()
      this.next()
      this.next()
      const args: Array<Expr> = []
      if (func === "min_of" || func === "max_of") {
        args.push(this.parseDurationExpr())
        this.expect(",", context, '","')
        args.push(this.parseDurationExpr())
      }
      const close = this.expect(")", context, '")"')
      this.durationExpressions = true
      return { type: "Call", func, args, pos: pos(t.start, close.end) }
    }
    return this.unexpected(t, context, expected)
  }
}

/** The error for an expression deeper than `promqlDepthMax`, at the token where it gets too deep. */
const nestedTooDeeply = (at: number): ParseError =>
  new ParseError(`expression nested too deeply (more than ${promqlDepthMax} levels)`, at)

/** The expressions directly inside `e`, duration expressions included (what a walk over the tree visits). */
const childrenOf = (e: Expr): ReadonlyArray<Expr | undefined> => {
  switch (e.type) {
    case "NumberLiteral":
    case "StringLiteral":
      return []
    case "VectorSelector":
      return [e.offsetExpr]
    case "MatrixSelector":
      return [e.vector, e.rangeExpr]
    case "Subquery":
      return [e.expr, e.rangeExpr, e.stepExpr, e.offsetExpr]
    case "Call":
      return e.args
    case "Aggregate":
      return [e.param, e.expr]
    case "Binary":
      return [e.lhs, e.rhs]
    case "Unary":
    case "Paren":
      return [e.expr]
  }
}

const heights = new WeakMap<Expr, number>()

/**
 * The height of a tree: 1 for a leaf, 1 + the highest child's otherwise. Remembered per node, so that the
 * parser's checks (a node at a time, over subtrees it checked already) cost O(1) each. Recurses only over
 * trees the parser has bounded.
 */
const heightOf = (e: Expr): number => {
  const known = heights.get(e)
  if (known !== undefined) return known
  let h = 1
  for (const c of childrenOf(e)) if (c !== undefined) h = Math.max(h, 1 + heightOf(c))
  heights.set(e, h)
  return h
}

interface Modifiers {
  readonly bool: boolean
  /** Undefined: neither `on` nor `ignoring`. */
  readonly on: boolean | undefined
  readonly labels: ReadonlyArray<string>
  readonly card: VectorMatching["card"]
  readonly include: ReadonlyArray<string>
  readonly fillLeft: number | undefined
  readonly fillRight: number | undefined
}

const pos = (start: number, end: number): Pos => ({ start, end })

/** `obj` with `key` set when `value` is defined (optional fields stay absent otherwise). */
const withOptional = <T extends object>(obj: T, key: keyof T, value: unknown): T =>
  value === undefined ? obj : { ...obj, [key]: value }

const unary = (op: "+" | "-", operand: Expr, start: number): Expr => {
  if (operand.type === "NumberLiteral") {
    return { ...operand, value: op === "-" ? -operand.value : operand.value, pos: pos(start, operand.pos.end) }
  }
  return { type: "Unary", op, expr: operand, pos: pos(start, operand.pos.end) }
}

/**
 * A binary expression. `matching` is set for now and cleared by the type check when a side is not an
 * instant vector (the tree's contract: present only between two vectors).
 */
const binary = (op: BinaryOp, lhs: Expr, rhs: Expr, m: Modifiers): Binary => {
  let matching: VectorMatching = {
    card: m.card,
    on: m.on ?? false,
    labels: m.labels,
    include: m.include
  }
  if (m.fillLeft !== undefined) matching = { ...matching, fillLeft: m.fillLeft }
  if (m.fillRight !== undefined) matching = { ...matching, fillRight: m.fillRight }
  return { type: "Binary", op, lhs, rhs, bool: m.bool, matching, pos: pos(lhs.pos.start, rhs.pos.end) }
}

interface DurationField {
  readonly ms: number
  /** The expression, unless it was a plain literal. */
  readonly expr: Expr | undefined
}

/** A parsed duration: folded to ms if it uses only literals; kept as an expression unless a plain literal. */
const durationField = (e: Expr, allowNegative: boolean): DurationField => {
  const literal = e.type === "NumberLiteral"
  if (dependsOnQuery(e)) return { ms: 0, expr: e }
  const ms = durationMs(e, undefined, true)
  // A literal `0s` is accepted (as Prometheus 2 did); a computed range or step must be positive.
  if (!allowNegative && (ms < 0 || (ms === 0 && !literal))) {
    throw new ParseError("duration must be greater than 0", e.pos.start)
  }
  return { ms, expr: literal ? undefined : e }
}

const newMatcher = (name: string, type: MatchType, value: string, at: number): Matcher => {
  if (type === "=~" || type === "!~") {
    try {
      anchored(value)
    } catch (e) {
      // Go's own text, `error parsing regexp: <code>: \`<the part at fault>\``, as Prometheus reports it.
      throw new ParseError(
        e instanceof RegexSyntaxError ? e.goMessage : `error parsing regexp: ${e instanceof Error ? e.message : String(e)}: \`${value}\``,
        at
      )
    }
  }
  return { name, type, value }
}

// ---------------------------------------------------------------------------------------------------------
// Entry points

/**
 * Parses and type-checks a PromQL query. Throws `ParseError` (Prometheus's message; `position` is the
 * character offset of the offending token or expression).
 */
export const parse = (query: string): Expr => checkTypes(new Parser(query).parseQuery()).expr

/** The tree, and whether the query writes a duration as an expression (Prometheus's `promql-duration-expr`). */
export const parseWithDurations = (query: string): { readonly expr: Expr; readonly durationExpressions: boolean } => {
  const parser = new Parser(query)
  const expr = checkTypes(parser.parseQuery()).expr
  return { expr, durationExpressions: parser.durationExpressions }
}

/** Prometheus's whole error text for a `ParseError` of `query`: `1:5: parse error: <message>`. */
export const describeParseError = (query: string, e: ParseError): string => {
  const before = query.slice(0, Math.max(0, Math.min(e.position, query.length)))
  const lines = before.split("\n")
  const line = lines.length
  const col = (lines[lines.length - 1]?.length ?? 0) + 1
  return `${line}:${col}: parse error: ${e.message}`
}
