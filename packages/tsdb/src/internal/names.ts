/**
 * Label names in the HTTP API as Prometheus 3 takes them ("UTF-8 names"): a path segment may carry a name
 * escaped with the value-encoding scheme (`U__` prefix, `_2e_` for a code point in hex, `__` for `_`), which
 * clients such as Grafana use for names that are not `[a-zA-Z_][a-zA-Z0-9_]*`.
 */

const hex = /^[0-9a-fA-F]$/

/**
 * Prometheus's `model.UnescapeName(name, model.ValueEncodingEscaping)`: `U__my_2e_label` is `my.label`,
 * `U__a__b` is `a_b`. A name without the `U__` prefix, or one that is not a valid escape (an unknown
 * character in a code, more than six hex digits, a code that is no Unicode scalar value, a trailing `_`),
 * comes back unchanged, as Prometheus returns it.
 */
export const unescapeName = (name: string): string => {
  if (!name.startsWith("U__")) return name
  const escaped = name.slice(3)
  let out = ""
  for (let i = 0; i < escaped.length; i++) {
    if (escaped[i] !== "_") {
      out += escaped[i]
      continue
    }
    i++
    if (i >= escaped.length) return name
    if (escaped[i] === "_") {
      out += "_"
      continue
    }
    let code = 0
    let digits = 0
    for (;;) {
      if (i >= escaped.length || digits >= 6) return name
      const c = escaped[i]!
      if (c === "_") break
      if (!hex.test(c)) return name
      code = code * 16 + parseInt(c, 16)
      digits++
      i++
    }
    // Go's utf8.ValidRune: a Unicode scalar value (no surrogate, at most U+10FFFF).
    if (code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return name
    out += String.fromCodePoint(code)
  }
  return out
}

/** Prometheus 3's label name validity in the API (`model.UTF8Validation`): non-empty, well-formed Unicode. */
export const isValidLabelName = (name: string): boolean => name.length > 0 && name.isWellFormed()
