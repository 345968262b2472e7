/**
 * A tiny protobuf builder for tests, independent of the code under test: messages are concatenations of
 * fields, each built from its parts.
 */

export const cat = (...parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  let n = 0
  for (const p of parts) n += p.length
  const out = new Uint8Array(n)
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

/** A varint of a 64-bit value (negative numbers as two's complement). */
export const varint = (value: number | bigint): Uint8Array => {
  let v = BigInt.asUintN(64, BigInt(value))
  const out: Array<number> = []
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80)
    v >>= 7n
  }
  out.push(Number(v))
  return Uint8Array.from(out)
}

export const tag = (field: number, wireType: number): Uint8Array => varint(field * 8 + wireType)

/** Field `n` as a varint. */
export const v = (n: number, value: number | bigint): Uint8Array => cat(tag(n, 0), varint(value))

/** Field `n` as a little-endian double. */
export const d = (n: number, value: number): Uint8Array => {
  const b = new Uint8Array(8)
  new DataView(b.buffer).setFloat64(0, value, true)
  return cat(tag(n, 1), b)
}

/** Field `n` as 8 raw bytes (fixed64), given as a bigint. */
export const f64 = (n: number, value: bigint): Uint8Array => {
  const b = new Uint8Array(8)
  new DataView(b.buffer).setBigUint64(0, value, true)
  return cat(tag(n, 1), b)
}

/** Field `n` as fixed32. */
export const f32 = (n: number, value: number): Uint8Array => {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setUint32(0, value, true)
  return cat(tag(n, 5), b)
}

/** Field `n`, length-delimited, holding the parts. */
export const ld = (n: number, ...parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const body = cat(...parts)
  return cat(tag(n, 2), varint(body.length), body)
}

/** Field `n` as a UTF-8 string. */
export const s = (n: number, text: string): Uint8Array => ld(n, new TextEncoder().encode(text))

/** Field `n` as raw bytes. */
export const b = (n: number, bytes: Uint8Array): Uint8Array => ld(n, bytes)

/** Field `n` as a (deprecated) group holding the parts. */
export const group = (n: number, ...parts: ReadonlyArray<Uint8Array>): Uint8Array => cat(tag(n, 3), ...parts, tag(n, 4))

/** Field `n` as packed varints. */
export const packed = (n: number, values: ReadonlyArray<number>): Uint8Array => ld(n, ...values.map((x) => varint(x)))

/** Unknown fields of every wire type (numbers 100+), groups nested, to be skipped. */
export const unknowns: Uint8Array = cat(
  v(100, -1),
  f64(101, 0x7ff0000000000002n),
  s(102, "ignored"),
  group(103, v(1, 5), group(2, f32(3, 7), s(4, "deep")), d(5, 1.5)),
  f32(105, 0xffffffff),
  v(536870911, 1) // the largest field number
)

// prometheus.* (v1)
export const label = (name: string, value: string, ...extra: ReadonlyArray<Uint8Array>): Uint8Array =>
  ld(1, s(1, name), s(2, value), ...extra)
export const sample1 = (value: number, ts: number | bigint, ...extra: ReadonlyArray<Uint8Array>): Uint8Array =>
  ld(2, d(1, value), v(2, ts), ...extra)
