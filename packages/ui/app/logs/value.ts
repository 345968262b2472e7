/**
 * Record values. The page reads and tails with `encoding=base64`, so every value arrives as bytes whatever
 * they hold; here they are shown as text, as pretty-printed JSON when they parse as JSON, or as binary
 * (hex or base64) when they are not UTF-8 text or hold control characters.
 */

/** How a value is shown: decided once, when the record arrives. */
export type ValueView =
  | { readonly kind: "text"; readonly text: string; readonly size: number }
  | { readonly kind: "json"; readonly text: string; readonly raw: string; readonly size: number }
  | { readonly kind: "binary"; readonly bytes: Uint8Array; readonly base64: string; readonly size: number }

export type BinaryMode = "hex" | "base64"

/** Standard base64 to bytes. */
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

/** Classifies a value that arrived as base64. */
export const viewOf = (base64: string): ValueView => {
  const bytes = fromBase64(base64)
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
      return { kind: "json", text: JSON.stringify(JSON.parse(text), null, 2), raw: text, size: bytes.length }
    } catch {
      // not JSON after all: plain text
    }
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
  (view.kind === "binary" ? view.base64 : view.kind === "json" ? `${view.raw}\n${view.text}` : view.text).toLowerCase()
