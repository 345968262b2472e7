import { describe, expect, it } from "vitest"
import { fromBase64, hexDump, invalidBase64Text, prettyJson, searchTextOf, toBase64, type ValueView, viewOf } from "../app/logs/value.ts"

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)
const b64 = (bytes: Uint8Array | ReadonlyArray<number>): string => toBase64(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes))
const viewOfText = (text: string): ValueView => viewOf(b64(utf8(text)))

/** Deterministic pseudo-random bytes. */
const randomBytes = (n: number, seed = 1): Uint8Array => {
  const out = new Uint8Array(n)
  let s = seed
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2147483648
    out[i] = s >>> 16 & 0xff
  }
  return out
}

describe("base64", () => {
  it("decodes standard padded base64", () => {
    expect(fromBase64("")).toEqual(new Uint8Array())
    expect(fromBase64("YQ==")).toEqual(new Uint8Array([0x61]))
    expect(fromBase64("YWI=")).toEqual(new Uint8Array([0x61, 0x62]))
    expect(fromBase64("YWJj")).toEqual(new Uint8Array([0x61, 0x62, 0x63]))
    expect(fromBase64("AP+A")).toEqual(new Uint8Array([0x00, 0xff, 0x80]))
  })

  it("encodes to standard padded base64", () => {
    expect(toBase64(new Uint8Array())).toBe("")
    expect(toBase64(new Uint8Array([0x61]))).toBe("YQ==")
    expect(toBase64(new Uint8Array([0xfb, 0xff]))).toBe("+/8=")
    expect(toBase64(utf8("hello world"))).toBe(btoa("hello world"))
  })

  it("round-trips every byte value", () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i)
    expect(fromBase64(toBase64(all))).toEqual(all)
  })

  it("round-trips values larger than its 32 KiB chunk, at and around the chunk boundary", () => {
    for (const n of [0x8000 - 1, 0x8000, 0x8000 + 1, 3 * 0x8000 + 7, 200_000]) {
      const bytes = randomBytes(n, n)
      const encoded = toBase64(bytes)
      expect(encoded.length).toBe(4 * Math.ceil(n / 3))
      expect(fromBase64(encoded)).toEqual(bytes)
    }
  })

  it("encodes a subarray view as its own bytes only", () => {
    const whole = new Uint8Array([1, 2, 3, 4, 5, 6])
    expect(fromBase64(toBase64(whole.subarray(2, 5)))).toEqual(new Uint8Array([3, 4, 5]))
  })
})

describe("viewOf", () => {
  it("shows UTF-8 text as text, with its size in bytes", () => {
    expect(viewOfText("hello")).toEqual({ kind: "text", text: "hello", size: 5 })
    expect(viewOfText("")).toEqual({ kind: "text", text: "", size: 0 })
  })

  it("keeps multi-byte UTF-8 as text, its size counting bytes not characters", () => {
    const text = "héllo wörld 😀 日本語 Ω"
    expect(viewOfText(text)).toEqual({ kind: "text", text, size: utf8(text).length })
    expect(viewOfText("😀").size).toBe(4)
  })

  it("keeps tab, line feed and carriage return as text", () => {
    const text = "a\tb\nc\r\nd"
    expect(viewOfText(text)).toEqual({ kind: "text", text, size: 8 })
  })

  it("shows text with other control characters as binary", () => {
    for (const c of ["\u0000", "\u0001", "\u0007", "\u0008", "\u000b", "\u000c", "\u000e", "\u001b", "\u001f", "\u007f"]) {
      const bytes = utf8(`abc${c}def`)
      const view = viewOf(b64(bytes))
      expect(view.kind, JSON.stringify(c)).toBe("binary")
      if (view.kind === "binary") {
        expect(view.bytes).toEqual(bytes)
        expect(view.base64).toBe(b64(bytes))
        expect(view.size).toBe(7)
      }
    }
  })

  it("shows invalid UTF-8 as binary", () => {
    const invalid: Array<Array<number>> = [
      [0xff], // never valid
      [0x61, 0xc3], // truncated two-byte sequence
      [0xe2, 0x82], // truncated three-byte sequence
      [0xc0, 0xaf], // overlong "/"
      [0xed, 0xa0, 0x80], // an encoded UTF-16 surrogate
      [0xf4, 0x90, 0x80, 0x80], // beyond U+10FFFF
      [0x80, 0x61], // a lone continuation byte
      [0x68, 0x69, 0xfe, 0x68, 0x69]
    ]
    for (const bytes of invalid) {
      const view = viewOf(b64(bytes))
      expect(view.kind, bytes.join(",")).toBe("binary")
      expect(view.size).toBe(bytes.length)
    }
  })

  it("shows random bytes as binary", () => {
    const bytes = randomBytes(1000, 7)
    const view = viewOf(toBase64(bytes))
    expect(view.kind).toBe("binary")
    if (view.kind === "binary") expect(view.bytes).toEqual(bytes)
  })

  it("pretty-prints JSON objects and arrays, keeping the raw text", () => {
    const raw = '{"a":1,"b":[true,null,"x"],"c":{"d":1.5}}'
    expect(viewOfText(raw)).toEqual({
      kind: "json",
      text: JSON.stringify(JSON.parse(raw), null, 2),
      raw,
      size: raw.length
    })
    expect(viewOfText("[1, 2]")).toMatchObject({ kind: "json", text: "[\n  1,\n  2\n]" })
    expect(viewOfText("{}")).toMatchObject({ kind: "json", text: "{}" })
    expect(viewOfText("[]")).toMatchObject({ kind: "json", text: "[]" })
  })

  it("finds JSON after leading whitespace", () => {
    expect(viewOfText('  \n\t {"a": 1}\n')).toMatchObject({ kind: "json", text: '{\n  "a": 1\n}' })
  })

  it("keeps multi-byte characters in JSON", () => {
    const raw = '{"名前": "Zürich 😀"}'
    expect(viewOfText(raw)).toEqual({ kind: "json", text: '{\n  "名前": "Zürich 😀"\n}', raw, size: utf8(raw).length })
  })

  it("shows text that starts like JSON but is not JSON as text", () => {
    for (const text of ["{not json", "[1, 2", "{} trailing", "[INFO] started", "{'a': 1}"]) {
      expect(viewOfText(text), text).toEqual({ kind: "text", text, size: utf8(text).length })
    }
  })

  it("shows JSON scalars as text", () => {
    for (const text of ['"a string"', "42", "true", "null"]) expect(viewOfText(text).kind, text).toBe("text")
  })

  it("shows JSON holding a raw control character as binary", () => {
    expect(viewOfText('{"a": "\u0001"}').kind).toBe("binary")
    // an escaped one is just text
    expect(viewOfText('{"a": "\\u0001"}').kind).toBe("json")
  })

  // Was a bug: the pretty view was JSON.stringify(JSON.parse(raw)), so a number beyond double precision was
  // shown changed (an ID 12345678901234567890 as 12345678901234567000). It is now re-indented from the text.
  it("shows large integers in pretty JSON with all their digits", () => {
    const view = viewOfText('{"id": 12345678901234567890}')
    expect(view.kind).toBe("json")
    if (view.kind === "json") expect(view.text).toContain("12345678901234567890")
    expect(viewOfText('{"id":12345678901234567890,"n":[-0.10000000000000000001]}')).toMatchObject({
      kind: "json",
      text: '{\n  "id": 12345678901234567890,\n  "n": [\n    -0.10000000000000000001\n  ]\n}'
    })
  })

  // Was a bug: likewise a number that overflows a double (1e400) parsed to Infinity, which JSON.stringify
  // writes as null: the value was shown as `null`.
  it("does not show an out-of-range number as null in pretty JSON", () => {
    const view = viewOfText('{"x": 1e400}')
    expect(view.kind).toBe("json")
    if (view.kind === "json") expect(view.text).not.toContain("null")
    expect(viewOfText('[1e400, -1E-400, 1.50]')).toMatchObject({ kind: "json", text: "[\n  1e400,\n  -1E-400,\n  1.50\n]" })
  })

  it("keeps strings as written in pretty JSON, escapes and all", () => {
    const raw = '{"a\\"b": "x\\u00e9\\/y", "c": "{[,:]}", "d": "\\\\"}'
    expect(viewOfText(raw)).toMatchObject({ kind: "json", text: '{\n  "a\\"b": "x\\u00e9\\/y",\n  "c": "{[,:]}",\n  "d": "\\\\"\n}' })
  })

  it("shows an invalid value (base64 that is not) as such instead of throwing", () => {
    for (const base64 of ["not base64!", "YQ=x", "@@@@", "Y"]) {
      const view = viewOf(base64)
      expect(view, base64).toEqual({ kind: "invalid", text: invalidBase64Text, raw: base64, size: base64.length })
      expect(searchTextOf(view)).toContain(base64.toLowerCase())
      expect(searchTextOf(view)).toContain("invalid base64")
    }
    expect(invalidBase64Text).toBe("invalid base64 from server")
  })
})

describe("prettyJson", () => {
  it("lays out JSON as JSON.stringify(value, null, 2) does when nothing is lost", () => {
    const samples = [
      '{"a":1,"b":[true,null,"x"],"c":{"d":1.5}}',
      "[]",
      "{}",
      "[[]]",
      '[{}, {"a": {}}, [[], [1]]]',
      ' \t\r\n{ "a" : [ 1 , 2 ] , "b" : { "c" : null } }\n ',
      '{"deep": [[[[[{"x": [false]}]]]]]}',
      '["{", "}", "[", "]", ",", ":", " ", "a b"]',
      '{"": "", "k": -0.00125}',
      "[0, -0.5, 10, 123456789]"
    ]
    for (const raw of samples) expect(prettyJson(raw), raw).toBe(JSON.stringify(JSON.parse(raw), null, 2))
  })

  it("keeps every key of an object, even repeated ones (JSON.parse keeps the last)", () => {
    expect(prettyJson('{"a":1,"a":2}')).toBe('{\n  "a": 1,\n  "a": 2\n}')
  })

  it("handles long and deeply nested JSON without recursion", () => {
    const deep = "[".repeat(1000) + "]".repeat(1000)
    const pretty = prettyJson(deep)
    expect(pretty.startsWith("[\n  [\n    [")).toBe(true)
    expect(pretty.replace(/\s/g, "")).toBe(deep)
    const long = JSON.stringify(Array.from({ length: 20_000 }, (_, i) => ({ i, s: `v${i}` })))
    expect(prettyJson(long)).toBe(JSON.stringify(JSON.parse(long), null, 2))
  })
})

describe("hexDump", () => {
  const ascii = (text: string): Uint8Array => Uint8Array.from(text, (c) => c.charCodeAt(0))

  it("is empty for no bytes", () => {
    expect(hexDump(new Uint8Array())).toBe("")
  })

  it("writes a full line: position, 16 bytes in two groups of 8, and the printable ASCII", () => {
    expect(hexDump(ascii("0123456789abcdef"))).toBe(
      "00000000  30 31 32 33 34 35 36 37  38 39 61 62 63 64 65 66  0123456789abcdef"
    )
  })

  it("pads a short last line so the ASCII column lines up", () => {
    const lines = hexDump(ascii("ABCDEFGHIJKLMNOPQRS")).split("\n")
    expect(lines).toEqual([
      "00000000  41 42 43 44 45 46 47 48  49 4a 4b 4c 4d 4e 4f 50  ABCDEFGHIJKLMNOP",
      "00000010  51 52 53                                          QRS"
    ])
    expect(lines[0]!.indexOf("ABC")).toBe(lines[1]!.indexOf("QRS"))
  })

  it("shows bytes outside printable ASCII as dots", () => {
    expect(hexDump(new Uint8Array([0x00, 0x1f, 0x20, 0x7e, 0x7f, 0x80, 0xff]))).toBe(
      "00000000  00 1f 20 7e 7f 80 ff                              .. ~..."
    )
  })

  it("writes the position in hex on each line", () => {
    const lines = hexDump(new Uint8Array(0x10000 + 32)).split("\n")
    expect(lines).toHaveLength(0x1000 + 2)
    expect(lines[1]!.startsWith("00000010  ")).toBe(true)
    expect(lines[0x1000]!.startsWith("00010000  ")).toBe(true)
    expect(lines.at(-1)!.startsWith("00010010  ")).toBe(true)
  })

  it("shows at most max bytes", () => {
    const bytes = Uint8Array.from({ length: 40 }, (_, i) => 0x41 + i)
    expect(hexDump(bytes, 20).split("\n")).toEqual([
      "00000000  41 42 43 44 45 46 47 48  49 4a 4b 4c 4d 4e 4f 50  ABCDEFGHIJKLMNOP",
      "00000010  51 52 53 54                                       QRST"
    ])
    expect(hexDump(bytes, 16).split("\n")).toHaveLength(1)
    expect(hexDump(bytes, 0)).toBe("")
    expect(hexDump(bytes, 1000)).toBe(hexDump(bytes))
  })

  it("writes each byte as two lower-case hex digits", () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i)
    const hex = hexDump(all)
      .split("\n")
      .map((line) => line.slice(10, 59).replace(/\s+/g, " ").trim())
      .join(" ")
    expect(hex).toBe(Array.from(all, (b) => b.toString(16).padStart(2, "0")).join(" "))
  })
})

describe("searchTextOf", () => {
  it("is the lower-cased text of a text value", () => {
    expect(searchTextOf(viewOfText("Hello ÜBER World"))).toBe("hello über world")
  })

  it("is the raw and the pretty JSON, lower-cased", () => {
    const view = viewOfText('{"Key":"Value"}')
    expect(searchTextOf(view)).toBe('{"key":"value"}\n{\n  "key": "value"\n}')
  })

  it("is the base64 of a binary value, lower-cased", () => {
    const view = viewOf("AP+A")
    expect(view.kind).toBe("binary")
    expect(searchTextOf(view)).toBe("ap+a")
  })
})
