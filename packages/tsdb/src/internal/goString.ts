/**
 * Go's string literal rules, as Prometheus reads label values: double or single quotes with escapes
 * (\\n, \\t, \\xHH, \\uHHHH, \\UHHHHHHHH, octal \\NNN, ...), backticks raw.
 */
export class StringEscapeError extends Error {}

/** The value of a quoted string's body (the text between the quotes). */
export const unquote = (quote: string, body: string): string => {
  if (quote === "`") return body
  let out = ""
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!
    if (c !== "\\") {
      out += c
      continue
    }
    const n = body[++i]
    switch (n) {
      case "n": out += "\n"; break
      case "t": out += "\t"; break
      case "r": out += "\r"; break
      case "\\": out += "\\"; break
      case '"': out += '"'; break
      case "'": out += "'"; break
      case "a": out += "\x07"; break
      case "b": out += "\b"; break
      case "f": out += "\f"; break
      case "v": out += "\v"; break
      case "x": case "u": case "U": {
        const len = n === "x" ? 2 : n === "u" ? 4 : 8
        const hex = body.slice(i + 1, i + 1 + len)
        if (!new RegExp(`^[0-9a-fA-F]{${len}}$`).test(hex)) throw new StringEscapeError(`invalid escape \\${n}${hex}`)
        out += String.fromCodePoint(parseInt(hex, 16))
        i += len
        break
      }
      default: {
        const oct = body.slice(i, i + 3)
        if (!/^[0-7]{3}$/.test(oct)) throw new StringEscapeError(`unknown escape sequence \\${n ?? ""}`)
        out += String.fromCharCode(parseInt(oct, 8))
        i += 2
      }
    }
  }
  return out
}

/**
 * Go's shortest `%g` of a float64 (`exponentFrom` 6), or `%v` (21): decimal digits, or exponent form
 * (`1.5e+06`, `1e-05`) once the exponent is below -4 or at least `exponentFrom`; `+Inf`, `-Inf`, `NaN`.
 */
export const formatG = (x: number, exponentFrom = 6): string => {
  if (Number.isNaN(x)) return "NaN"
  if (Math.abs(x) === Infinity) return x > 0 ? "+Inf" : "-Inf"
  if (x === 0) return Object.is(x, -0) ? "-0" : "0"
  const [mantissa = "", e = ""] = Math.abs(x).toExponential().split("e")
  const [digits, exp, sign] = [mantissa.replace(".", ""), Number(e), x < 0 ? "-" : ""]
  if (exp < -4 || exp >= exponentFrom) {
    const frac = digits.length > 1 ? `.${digits.slice(1)}` : ""
    return `${sign}${digits[0]}${frac}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`
  }
  if (exp < 0) return `${sign}0.${"0".repeat(-exp - 1)}${digits}`
  return sign + (digits.length <= exp + 1 ? digits.padEnd(exp + 1, "0") : `${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`)
}
