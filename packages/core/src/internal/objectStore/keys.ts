/**
 * Object keys: validation, ordering, and the reversible mapping of keys to local file names.
 *
 * A key is 1..`objectKeyBytesMax` bytes of UTF-8 without control characters (U+0000-U+001F, U+007F) and
 * without lone surrogates. Keys order by their UTF-8 bytes, which is Unicode code point order: the order
 * S3 lists in, and the order every adapter must list in.
 */
import { objectKeyBytesMax } from "../../limits.ts"

const encoder = new TextEncoder()

/** Why `key` is not a valid object key, or `undefined` if it is. */
export const keyProblem = (key: string, keyBytesMax: number = objectKeyBytesMax): string | undefined => {
  if (typeof key !== "string" || key.length === 0) return "a key must be a non-empty string"
  if (!key.isWellFormed()) return "a key must be well-formed UTF-16 (no lone surrogates)"
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(key)) return "a key must not contain control characters"
  const bytes = encoder.encode(key).length
  if (bytes > keyBytesMax) return `a key must be at most ${keyBytesMax} bytes of UTF-8 here, got ${bytes}`
  return undefined
}

/** Why `prefix` is not a valid list prefix (the empty prefix lists everything). */
export const prefixProblem = (prefix: string, keyBytesMax?: number): string | undefined =>
  prefix === "" ? undefined : keyProblem(prefix, keyBytesMax)

/** Compares two strings by code point, i.e. by their UTF-8 bytes. */
export const compareKeys = (a: string, b: string): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x === y) continue
    // UTF-16 code units order like code points except that surrogates (0xD800-0xDFFF, i.e. code points
    // >= 0x10000) must sort after 0xE000-0xFFFF.
    const xs = x >= 0xd800 && x <= 0xdfff
    const ys = y >= 0xd800 && y <= 0xdfff
    if (xs !== ys) return xs ? 1 : -1
    return x < y ? -1 : 1
  }
  return a.length - b.length
}

// ---------------------------------------------------------------------------------------------------------
// Local file names
//
// A key is split at "/" into segments; every segment but the last names a directory, the last names a
// file. Segment text is kept readable: only "%", "~", a leading "." and an empty segment are escaped, so
// `wal/00000001.wal` lives at `wal/00000001.wal~`. The "~" suffix on files keeps the key `a` (a file)
// apart from the keys under `a/` (a directory). Names that start with "." never come from a key: they are
// free for temporary files. A segment whose name would not fit in a file name (255 bytes) is stored under
// a digest of it; the listing recovers its text from the object header (files) or a `.segment` file
// (directories).
// ---------------------------------------------------------------------------------------------------------

/** Longest file name this mapping produces directly; longer segments are stored under a digest. */
export const segmentNameBytesMax = 240

export const fileSuffix = "~"
export const digestMark = "%#"

export const encodeSegment = (segment: string): string => {
  if (segment === "") return "%"
  let out = segment.replace(/[%~]/g, (c) => (c === "%" ? "%25" : "%7E"))
  if (out.startsWith(".")) out = "%2E" + out.slice(1)
  return out
}

export const decodeSegment = (name: string): string => {
  if (name === "%") return ""
  return name.replace(/%(25|7E|2E)/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)))
}

/** True when an encoded segment is too long to be a file name and must be stored under a digest. */
export const needsDigest = (encoded: string, suffix: string): boolean =>
  encoder.encode(encoded).length + suffix.length > segmentNameBytesMax
