/**
 * Series selectors as the Prometheus API takes them in `match[]`: `metric`, `metric{a="b",c=~"d"}`,
 * `{__name__=~"x.*",job!="y"}`. Label values are Go-style strings in double quotes, single quotes or
 * backticks. At least one matcher must not match the empty string (Prometheus's rule).
 */
import type { Matcher, MatchType } from "./labels.ts"
import { anchored, matchesEmpty } from "./labels.ts"
import { StringEscapeError, unquote } from "./goString.ts"

export class SelectorError extends Error {}

const identStart = /[a-zA-Z_:]/
const ident = /[a-zA-Z0-9_:]/
const labelStart = /[a-zA-Z_]/
const labelChar = /[a-zA-Z0-9_]/

const unescape = (quote: string, body: string): string => {
  try {
    return unquote(quote, body)
  } catch (e) {
    if (e instanceof StringEscapeError) throw new SelectorError(e.message)
    throw e
  }
}

export const parseSelector = (input: string): Array<Matcher> => {
  const s = input.trim()
  let i = 0
  const matchers: Array<Matcher> = []
  const skip = () => {
    while (i < s.length && /\s/.test(s[i]!)) i++
  }
  if (i < s.length && identStart.test(s[i]!)) {
    let name = ""
    while (i < s.length && ident.test(s[i]!)) name += s[i++]
    matchers.push({ name: "__name__", type: "=", value: name })
  }
  skip()
  if (i < s.length && s[i] === "{") {
    i++
    for (;;) {
      skip()
      if (s[i] === "}") {
        i++
        break
      }
      if (i >= s.length || !labelStart.test(s[i]!)) throw new SelectorError(`unexpected ${i < s.length ? JSON.stringify(s[i]) : "end of input"} in label matching`)
      let name = ""
      while (i < s.length && labelChar.test(s[i]!)) name += s[i++]
      skip()
      const op = ["=~", "!~", "!=", "="].find((o) => s.startsWith(o, i)) as MatchType | undefined
      if (op === undefined) throw new SelectorError(`expected a label matching operator after ${JSON.stringify(name)}`)
      i += op.length
      skip()
      const quote = s[i]
      if (quote !== '"' && quote !== "'" && quote !== "`") throw new SelectorError(`expected a quoted label value for ${JSON.stringify(name)}`)
      let j = i + 1
      while (j < s.length && s[j] !== quote) j += s[j] === "\\" && quote !== "`" ? 2 : 1
      if (j >= s.length) throw new SelectorError("unterminated quoted string")
      const value = unescape(quote, s.slice(i + 1, j))
      i = j + 1
      if (op === "=~" || op === "!~") {
        try {
          anchored(value)
        } catch (e) {
          throw new SelectorError(`invalid regular expression ${JSON.stringify(value)}: ${(e as Error).message}`)
        }
      }
      matchers.push({ name, type: op, value })
      skip()
      if (s[i] === ",") {
        i++
        continue
      }
      if (s[i] === "}") {
        i++
        break
      }
      throw new SelectorError(`unexpected ${i < s.length ? JSON.stringify(s[i]) : "end of input"} in label matching`)
    }
  }
  skip()
  if (i !== s.length) throw new SelectorError(`unexpected ${JSON.stringify(s.slice(i, i + 10))} after the selector`)
  if (matchers.length === 0) throw new SelectorError("an empty selector")
  if (matchers.every(matchesEmpty)) throw new SelectorError("vector selector must contain at least one non-empty matcher")
  return matchers
}
