/**
 * Record values. The page reads and tails with `encoding=base64`, so every value arrives as bytes whatever
 * they hold; here they are shown as text, as pretty-printed JSON when they parse as JSON, or as binary
 * (hex or base64) when they are not UTF-8 text or hold control characters.
 */

/**
 * How a value is shown: decided once, when the record arrives. "invalid" is a value the server sent that is
 * not base64 at all (so its bytes are unknown): `text` says so, `raw` is what arrived, `size` its length.
 */
export type ValueView =
  | { readonly kind: "text"; readonly text: string; readonly size: number }
  | { readonly kind: "json"; readonly text: string; readonly raw: string; readonly size: number }
  | { readonly kind: "binary"; readonly bytes: Uint8Array; readonly base64: string; readonly size: number }
  | { readonly kind: "invalid"; readonly text: string; readonly raw: string; readonly size: number }

/** What an "invalid" view says. */
export const invalidBase64Text = "invalid base64 from server"

export type BinaryMode = "hex" | "base64"

/** Standard base64 to bytes; throws (a DOMException) when it is not base64. */
export const fromBase64 = (base64: string): Uint8Array => {
  const binary = atob(base64)
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return bytes
}

/** Bytes to standard, padded base64 (what the API accepts with `encoding=base64`). */
export const toBase64 = (bytes: Uint8Array): string => {
  let binary = ""
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
  return btoa(binary)
}

const utf8 = new TextDecoder("utf-8", { fatal: true })
/** Control characters other than tab, line feed and carriage return: their presence means "binary". */
const control = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/

/**
 * Pretty-prints text that JSON.parse has accepted, two spaces an indent, as JSON.stringify(value, null, 2)
 * lays it out, but token by token from the text itself: strings and numbers are copied as they are written,
 * so a number a double cannot hold (12345678901234567890, 1e400) keeps its digits instead of being rounded
 * or written as null. Only for valid JSON: it does not check the syntax.
 */
export const prettyJson = (json: string): string => {
  const out: Array<string> = []
  let depth = 0
  const newline = (): void => {
    out.push("\n", "  ".repeat(depth))
  }
  const isSpace = (c: string | undefined): boolean => c === " " || c === "\t" || c === "\n" || c === "\r"
  const n = json.length
  let i = 0
  while (i < n) {
    const c = json[i]!
    if (isSpace(c)) {
      i++
    } else if (c === "\"") {
      // to the closing quote, skipping escaped characters (a valid string has no raw quote or control inside)
      let end = i + 1
      while (json[end] !== "\"") end += json[end] === "\\" ? 2 : 1
      out.push(json.slice(i, end + 1))
      i = end + 1
    } else if (c === "{" || c === "[") {
      let next = i + 1
      while (isSpace(json[next])) next++
      if (json[next] === (c === "{" ? "}" : "]")) {
        out.push(c === "{" ? "{}" : "[]")
        i = next + 1
      } else {
        out.push(c)
        depth++
        newline()
        i++
      }
    } else if (c === "}" || c === "]") {
      depth--
      newline()
      out.push(c)
      i++
    } else if (c === ",") {
      out.push(",")
      newline()
      i++
    } else if (c === ":") {
      out.push(": ")
      i++
    } else {
      // a number, true, false or null: to the next delimiter
      let end = i + 1
      while (end < n && !isSpace(json[end]) && json[end] !== "," && json[end] !== "}" && json[end] !== "]") end++
      out.push(json.slice(i, end))
      i = end
    }
  }
  return out.join("")
}

/** Classifies a value that arrived as base64. */
export const viewOf = (base64: string): ValueView => {
  let bytes: Uint8Array
  try {
    bytes = fromBase64(base64)
  } catch {
    return { kind: "invalid", text: invalidBase64Text, raw: base64, size: base64.length }
  }
  let text: string
  try {
    text = utf8.decode(bytes)
  } catch {
    return { kind: "binary", bytes, base64, size: bytes.length }
  }
  if (control.test(text)) return { kind: "binary", bytes, base64, size: bytes.length }
  const first = text.trimStart()[0]
  if (first === "{" || first === "[") {
    try {
      JSON.parse(text)
    } catch {
      // not JSON after all: plain text
      return { kind: "text", text, size: bytes.length }
    }
    return { kind: "json", text: prettyJson(text), raw: text, size: bytes.length }
  }
  return { kind: "text", text, size: bytes.length }
}

const hexByte = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"))

/**
 * A hex dump, 16 bytes a line: the position, the bytes in hex, and the printable ASCII ones.
 * At most `max` bytes are shown.
 */
export const hexDump = (bytes: Uint8Array, max = bytes.length): string => {
  const end = Math.min(bytes.length, max)
  const lines: Array<string> = []
  for (let at = 0; at < end; at += 16) {
    const row = bytes.subarray(at, Math.min(at + 16, end))
    let hex = ""
    let ascii = ""
    for (let i = 0; i < 16; i++) {
      const b = row[i]
      hex += (b === undefined ? "  " : hexByte[b]) + (i === 7 ? "  " : " ")
      if (b !== undefined) ascii += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : "."
    }
    lines.push(`${at.toString(16).padStart(8, "0")}  ${hex} ${ascii}`)
  }
  return lines.join("\n")
}

/** The text a filter matches against for this value (lower case): JSON both as sent and as shown. */
export const searchTextOf = (view: ValueView): string =>
  (view.kind === "binary" ? view.base64 : view.kind === "json" || view.kind === "invalid" ? `${view.raw}\n${view.text}` : view.text)
    .toLowerCase()
