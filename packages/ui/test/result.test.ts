import { describe, expect, it } from "vitest"
import { formatLabels, formatValue, parseValue, seriesCount } from "../app/query/result.ts"

describe("seriesCount", () => {
  it("counts the series of a vector or matrix, and 1 for a scalar or string", () => {
    expect(seriesCount({ resultType: "vector", result: [] })).toBe(0)
    expect(seriesCount({ resultType: "vector", result: [{ metric: {}, value: [1, "1"] }, { metric: { a: "b" }, value: [1, "2"] }] })).toBe(2)
    expect(seriesCount({ resultType: "matrix", result: [{ metric: {}, values: [] }] })).toBe(1)
    expect(seriesCount({ resultType: "scalar", result: [1, "1"] })).toBe(1)
    expect(seriesCount({ resultType: "string", result: [1, "x"] })).toBe(1)
  })
})

describe("formatLabels", () => {
  it("writes a selector with the name in front", () => {
    expect(formatLabels({ __name__: "up", job: "api", instance: "a:9090" })).toBe('up{job="api", instance="a:9090"}')
  })

  it("writes the name alone when there are no other labels", () => {
    expect(formatLabels({ __name__: "up" })).toBe("up")
    expect(formatLabels({ __name__: "job:http_requests:rate5m" })).toBe("job:http_requests:rate5m")
  })

  it("writes braces without a name", () => {
    expect(formatLabels({ job: "api" })).toBe('{job="api"}')
    expect(formatLabels({})).toBe("{}")
  })

  it("puts the name wherever it is in the object in front", () => {
    expect(formatLabels({ job: "api", __name__: "up", env: "prod" })).toBe('up{job="api", env="prod"}')
  })

  it("quotes a name that is not a plain identifier, inside the braces", () => {
    expect(formatLabels({ __name__: "my.metric" })).toBe('{"my.metric"}')
    expect(formatLabels({ __name__: "my.metric", "a.b": "c" })).toBe('{"my.metric", "a.b"="c"}')
    expect(formatLabels({ __name__: "1abc", job: "x" })).toBe('{"1abc", job="x"}')
    expect(formatLabels({ __name__: "métrique" })).toBe('{"métrique"}')
  })

  it("quotes label names that are not plain identifiers (a colon is allowed in a metric name only)", () => {
    expect(formatLabels({ "a:b": "c" })).toBe('{"a:b"="c"}')
    expect(formatLabels({ "with space": "c", _ok: "d", "0start": "e" })).toBe('{"with space"="c", _ok="d", "0start"="e"}')
  })

  it("escapes quotes, backslashes and newlines in values", () => {
    expect(formatLabels({ path: 'C:\\dir\\"file"\n' })).toBe('{path="C:\\\\dir\\\\\\"file\\"\\n"}')
  })

  it("keeps multi-byte values as they are and empty values as empty strings", () => {
    expect(formatLabels({ city: "Zürich 😀 東京", empty: "" })).toBe('{city="Zürich 😀 東京", empty=""}')
  })
})

describe("parseValue", () => {
  it("reads Prometheus' infinities", () => {
    expect(parseValue("+Inf")).toBe(Infinity)
    expect(parseValue("Inf")).toBe(Infinity)
    expect(parseValue("-Inf")).toBe(-Infinity)
  })

  it("reads NaN", () => {
    expect(parseValue("NaN")).toBeNaN()
  })

  it("reads ordinary numbers exactly", () => {
    expect(parseValue("1.5")).toBe(1.5)
    expect(parseValue("-2e-3")).toBe(-0.002)
    expect(parseValue("0")).toBe(0)
    expect(Object.is(parseValue("-0"), -0)).toBe(true)
    expect(parseValue("1e308")).toBe(1e308)
    expect(parseValue("1.7976931348623157e+308")).toBe(Number.MAX_VALUE)
    expect(parseValue("5e-324")).toBe(Number.MIN_VALUE)
    expect(parseValue("9007199254740993")).toBe(9007199254740992)
    expect(parseValue("1714571100.123")).toBe(1714571100.123)
  })

  it("overflows to an infinity past the largest double", () => {
    expect(parseValue("1e309")).toBe(Infinity)
    expect(parseValue("-1e309")).toBe(-Infinity)
  })

  it("is NaN for what is not a number", () => {
    expect(parseValue("")).toBeNaN()
    expect(parseValue("abc")).toBeNaN()
  })
})

describe("formatValue", () => {
  it("writes a dash for no value", () => {
    expect(formatValue(null)).toBe("–")
    expect(formatValue(undefined)).toBe("–")
  })

  it("writes NaN and the infinities as Prometheus does", () => {
    expect(formatValue(NaN)).toBe("NaN")
    expect(formatValue(Infinity)).toBe("+Inf")
    expect(formatValue(-Infinity)).toBe("-Inf")
  })

  it("writes zero as 0", () => {
    expect(formatValue(0)).toBe("0")
    expect(formatValue(-0)).toBe("0")
  })

  it("keeps about six significant digits below 1000, without float noise", () => {
    expect(formatValue(1.23456789)).toBe("1.23457")
    expect(formatValue(0.1 + 0.2)).toBe("0.3")
    expect(formatValue(42)).toBe("42")
    expect(formatValue(-999.5)).toBe("-999.5")
    expect(formatValue(0.0001)).toBe("0.0001")
    expect(formatValue(0.000123456)).toBe("0.000123456")
  })

  it("groups thousands with at most two decimals from 1000 up", () => {
    expect(formatValue(1000)).toBe("1,000")
    expect(formatValue(1234.5678)).toBe("1,234.57")
    expect(formatValue(-1234.5)).toBe("-1,234.5")
    expect(formatValue(123456789012345)).toBe("123,456,789,012,345")
  })

  it("uses exponent form for tiny and huge values, without trailing zeros", () => {
    expect(formatValue(1e15)).toBe("1e+15")
    expect(formatValue(1.5e15)).toBe("1.5e+15")
    expect(formatValue(-2.25e20)).toBe("-2.25e+20")
    expect(formatValue(1.5e-5)).toBe("1.5e-5")
    expect(formatValue(1.2346e-7)).toBe("1.235e-7")
    expect(formatValue(1.01e-5)).toBe("1.01e-5")
    expect(formatValue(Number.MAX_VALUE)).toBe("1.798e+308")
    expect(formatValue(Number.MIN_VALUE)).toBe("4.941e-324")
  })

  it("writes a value that rounds to a boundary as the boundary itself is written", () => {
    expect(formatValue(999.9999999)).toBe(formatValue(1000))
    expect(formatValue(999.9999999)).toBe("1,000")
    expect(formatValue(-999.9999999)).toBe("-1,000")
    expect(formatValue(999.9995)).toBe("1,000")
    expect(formatValue(999.9994)).toBe("999.999")
    expect(formatValue(0.0000999999999)).toBe(formatValue(0.0001))
    expect(formatValue(0.00009999)).toBe("9.999e-5")
    expect(formatValue(0.0000999996)).toBe("0.0001")
    expect(formatValue(0.00009999996)).toBe("0.0001")
    expect(formatValue(-0.00009999996)).toBe("-0.0001")
    expect(formatValue(999999999999999.9)).toBe("999,999,999,999,999.9")
  })

  it("writes what parseValue reads back for the special values", () => {
    for (const text of ["+Inf", "-Inf", "NaN"]) expect(formatValue(parseValue(text))).toBe(text)
  })
})
