/**
 * Label sets and matchers, as Prometheus defines them. A label set is sorted by name; its canonical
 * string (`{a="1",b="2"}` with Go-style escaping) identifies a series. Regex matchers are fully anchored.
 */

import { compileMatcher, type Regex } from "./regex.ts"

export { RegexSyntaxError } from "./regex.ts"

export type Labels = ReadonlyArray<readonly [string, string]>

export type MatchType = "=" | "!=" | "=~" | "!~"

export interface Matcher {
  readonly name: string
  readonly type: MatchType
  readonly value: string
}

/** Characters JSON.stringify escapes (quote, backslash, controls; surrogates, which it escapes when lone). */
const escaped = /["\\\u0000-\u001f\ud800-\udfff]/

/**
 * A label set as one string, `{name="value",...}` with each value as JSON.stringify writes it: the key of
 * a series in maps, and what the dictionary's hash is taken over (so it must not change). A plain loop,
 * quoting a value without JSON.stringify when it has nothing to escape (twice as quick as mapping and
 * joining: it runs for every new series and every group of an aggregation).
 */
export const canonical = (labels: Labels): string => {
  let s = "{"
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i]!
    const v = label[1]
    if (i > 0) s += ","
    s += escaped.test(v) ? label[0] + "=" + JSON.stringify(v) : label[0] + "=\"" + v + "\""
  }
  return s + "}"
}

export const sortLabels = (labels: Labels): Labels => [...labels].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))

export const labelValue = (labels: Labels, name: string): string => labels.find(([n]) => n === name)?.[1] ?? ""

/**
 * The compiled regex of a `=~` / `!~` matcher: Go RE2 syntax, fully anchored (Prometheus: `^(?s:re)$`),
 * matched in linear time (src/internal/regex.ts), compiled once. Throws a `RegexSyntaxError` (Go's code as
 * its message, Go's whole text as `goMessage`) on a pattern Go rejects.
 */
export const anchored = (pattern: string): Regex => compileMatcher(pattern)

/** Whether a label value (the empty string when the label is absent) satisfies the matcher. */
export const matches = (m: Matcher, value: string): boolean => {
  switch (m.type) {
    case "=":
      return value === m.value
    case "!=":
      return value !== m.value
    case "=~":
      return anchored(m.value).test(value)
    case "!~":
      return !anchored(m.value).test(value)
  }
}

export const matchesAll = (matchers: ReadonlyArray<Matcher>, labels: Labels) =>
  matchers.every((m) => matches(m, labelValue(labels, m.name)))

/** Whether the matcher matches the empty string (then series without the label match too). */
export const matchesEmpty = (m: Matcher) => matches(m, "")

/**
 * The dictionary's hash of the label set whose `canonical` string is `s` (stored in keys: it must not
 * change): two 32-bit FNV-1a variants in one number (53 bits kept).
 */
export const hashCanonical = (s: string): number => {
  let h1 = 0x811c9dc5
  let h2 = 0x050c5d1f
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    h1 = Math.imul(h1 ^ c, 0x01000193) >>> 0
    h2 = Math.imul(h2 ^ c, 0x01000193 + 2) >>> 0
  }
  return (h1 & 0x1fffff) * 0x1_0000_0000 + h2
}

const labelName = /^[a-zA-Z_][a-zA-Z0-9_]*$/
export const validLabelName = (name: string) => labelName.test(name)
