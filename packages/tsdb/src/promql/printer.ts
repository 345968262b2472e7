/**
 * The PromQL printer: a tree as canonical PromQL text, as Prometheus prints it (`/api/v1/format_query`):
 * matchers sorted, names quoted only where needed, durations in their shortest form, modifiers in
 * Prometheus's order.
 */
import type { AtModifier, Expr, VectorSelector } from "./ast.ts"
import { formatDuration, goRound } from "./durations.ts"
import { formatNumber, goQuote } from "./format.ts"
import { legacyLabelName, legacyMetricName } from "./lexer.ts"

const formatLabelName = (name: string) => (legacyLabelName.test(name) ? name : goQuote(name))
const formatLabels = (labels: ReadonlyArray<string>) => labels.map(formatLabelName).join(", ")

const formatAt = (at: AtModifier | undefined): string =>
  at === undefined ? "" : at === "start" ? " @ start()" : at === "end" ? " @ end()" : ` @ ${(at / 1000).toFixed(3)}`

const formatOffset = (ms: number, expr: Expr | undefined): string =>
  expr !== undefined
    ? ` offset ${formatExpr(expr)}`
    : ms > 0
      ? ` offset ${formatDuration(ms)}`
      : ms < 0
        ? ` offset -${formatDuration(-ms)}`
        : ""

const formatModifiers = (vs: VectorSelector): string =>
  (vs.anchored === true ? " anchored" : "") + (vs.smoothed === true ? " smoothed" : "")

/** The selector without its modifiers: `name{a="b"}`, `{__name__=~"x"}`. */
const formatSelector = (vs: VectorSelector): string => {
  const shown = vs.name !== undefined && legacyMetricName.test(vs.name) ? vs.name : undefined
  const labels = vs.matchers
    .filter((m) => !(shown !== undefined && m.name === "__name__" && m.type === "=" && m.value === shown))
    .map((m) => `${formatLabelName(m.name)}${m.type}${goQuote(m.value)}`)
    .sort()
  if (labels.length === 0) return shown ?? "{}"
  return `${shown ?? ""}{${labels.join(",")}}`
}

/** Canonical PromQL text for a tree, as Prometheus prints it (`/api/v1/format_query`). */
export const formatExpr = (expr: Expr): string => {
  switch (expr.type) {
    case "NumberLiteral":
      if (expr.duration === true) {
        const ms = goRound(expr.value * 1000)
        return ms < 0 ? `-${formatDuration(-ms)}` : formatDuration(ms)
      }
      return formatNumber(expr.value)
    case "StringLiteral":
      return goQuote(expr.value)
    case "VectorSelector":
      return formatSelector(expr) + formatAt(expr.at) + formatOffset(expr.offsetMs, expr.offsetExpr) + formatModifiers(expr)
    case "MatrixSelector": {
      const vs = expr.vector
      const range = expr.rangeExpr !== undefined ? formatExpr(expr.rangeExpr) : formatDuration(expr.rangeMs)
      return `${formatSelector(vs)}[${range}]${formatAt(vs.at)}${formatOffset(vs.offsetMs, vs.offsetExpr)}${formatModifiers(vs)}`
    }
    case "Subquery": {
      const range = expr.rangeExpr !== undefined ? formatExpr(expr.rangeExpr) : formatDuration(expr.rangeMs)
      const step =
        expr.stepExpr !== undefined ? formatExpr(expr.stepExpr) : expr.stepMs === undefined ? "" : formatDuration(expr.stepMs)
      return `${formatExpr(expr.expr)}[${range}:${step}]${formatAt(expr.at)}${formatOffset(expr.offsetMs, expr.offsetExpr)}`
    }
    case "Call":
      return `${expr.func}(${expr.args.map(formatExpr).join(", ")})`
    case "Aggregate": {
      let s: string = expr.op
      if (expr.without) s += ` without (${formatLabels(expr.grouping)}) `
      else if (expr.grouping.length > 0) s += ` by (${formatLabels(expr.grouping)}) `
      const param = expr.param === undefined ? "" : `${formatExpr(expr.param)}, `
      return `${s}(${param}${formatExpr(expr.expr)})`
    }
    case "Binary": {
      let mods = expr.bool ? " bool" : ""
      const m = expr.matching
      if (m !== undefined) {
        const grouped = m.card === "many-to-one" || m.card === "one-to-many"
        if (m.on || m.labels.length > 0 || grouped) {
          mods += ` ${m.on ? "on" : "ignoring"} (${formatLabels(m.labels)})`
          if (grouped) mods += ` group_${m.card === "many-to-one" ? "left" : "right"} (${formatLabels(m.include)})`
        }
        if (m.fillLeft !== undefined && m.fillRight !== undefined && Object.is(m.fillLeft, m.fillRight)) {
          mods += ` fill(${formatNumber(m.fillLeft)})`
        } else {
          if (m.fillLeft !== undefined) mods += ` fill_left(${formatNumber(m.fillLeft)})`
          if (m.fillRight !== undefined) mods += ` fill_right(${formatNumber(m.fillRight)})`
        }
      }
      return `${formatExpr(expr.lhs)} ${expr.op}${mods} ${formatExpr(expr.rhs)}`
    }
    case "Unary":
      return `${expr.op}${formatExpr(expr.expr)}`
    case "Paren":
      return `(${formatExpr(expr.expr)})`
  }
}
