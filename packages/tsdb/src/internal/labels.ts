/**
 * Label sets and matchers, as Prometheus defines them. A label set is sorted by name; its canonical
 * string (`{a="1",b="2"}` with Go-style escaping) identifies a series. Regex matchers are fully anchored.
 */

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
 * RE2 (Go) syntax JavaScript lacks: `(?i)` (to the end of its group) and `(?i:...)`: each letter they cover,
 * outside a character class, is written as `[xX]`.
 */
const fromRe2 = (pattern: string): { readonly source: string; readonly flags: string } => {
  let out = ""
  let inClass = false
  // One entry per open group: whether case-insensitivity applies inside it.
  const stack: Array<boolean> = [false]
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!
    const fold = stack.at(-1)!
    if (c === "\\") {
      out += c + (pattern[i + 1] ?? "")
      i++
      continue
    }
    if (inClass) {
      if (c === "]") inClass = false
      out += c
      continue
    }
    if (c === "[") {
      inClass = true
      out += c
      continue
    }
    if (pattern.startsWith("(?i)", i)) {
      // From here to the end of the enclosing group.
      stack[stack.length - 1] = true
      i += 3
      continue
    }
    if (pattern.startsWith("(?i:", i)) {
      stack.push(true)
      out += "(?:"
      i += 3
      continue
    }
    if (c === "(") {
      stack.push(fold)
      out += c
      continue
    }
    if (c === ")") {
      if (stack.length > 1) stack.pop()
      out += c
      continue
    }
    out += fold && /[a-zA-Z]/.test(c) ? `[${c.toLowerCase()}${c.toUpperCase()}]` : c
  }
  return { source: out, flags: "su" }
}

const regexCache = new Map<string, RegExp>()
/** A fully anchored regex (Prometheus: `^(?:re)$`), compiled once. Throws on an invalid pattern. */
export const anchored = (pattern: string): RegExp => {
  let re = regexCache.get(pattern)
  if (re === undefined) {
    const { source, flags } = fromRe2(pattern)
    re = new RegExp(`^(?:${source})$`, flags)
    if (regexCache.size > 10_000) regexCache.clear()
    regexCache.set(pattern, re)
  }
  return re
}

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
