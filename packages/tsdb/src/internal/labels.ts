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

export const canonical = (labels: Labels): string =>
  "{" + labels.map(([n, v]) => `${n}=${JSON.stringify(v)}`).join(",") + "}"

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

/** A 64-bit FNV-1a hash of the canonical string, as two 32-bit halves in one number (53 bits kept). */
export const hashLabels = (labels: Labels): number => {
  const s = canonical(labels)
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
