import { describe, expect, it } from "vitest"
import { formatBytes, formatCount, formatDuration, formatRatio, formatTime } from "../app/format.ts"

describe("formatBytes", () => {
  it("writes bytes under 1 KiB as they are", () => {
    expect(formatBytes(0)).toBe("0 B")
    expect(formatBytes(1)).toBe("1 B")
    expect(formatBytes(1023)).toBe("1023 B")
  })

  it("writes two decimals under 10, one under 100, none from 100", () => {
    expect(formatBytes(1024)).toBe("1.00 KiB")
    expect(formatBytes(1536)).toBe("1.50 KiB")
    expect(formatBytes(10 * 1024)).toBe("10.0 KiB")
    expect(formatBytes(99.44 * 1024)).toBe("99.4 KiB")
    expect(formatBytes(100 * 1024)).toBe("100 KiB")
    expect(formatBytes(5 * 1024 ** 2)).toBe("5.00 MiB")
    expect(formatBytes(1024 ** 3)).toBe("1.00 GiB")
    expect(formatBytes(1024 ** 4)).toBe("1.00 TiB")
  })

  it("stops at PiB (the Logs page's largest unit, now that both pages share this)", () => {
    expect(formatBytes(1024 ** 5)).toBe("1.00 PiB")
    expect(formatBytes(2 ** 53)).toBe("8.00 PiB")
    expect(formatBytes(2 ** 60)).toBe("1024 PiB")
    expect(formatBytes(2 ** 70)).toBe("1048576 PiB")
  })

  it("keeps the sign of a negative size", () => {
    expect(formatBytes(-512)).toBe("-512 B")
    expect(formatBytes(-1536)).toBe("-1.50 KiB")
  })

  it("writes non-finite sizes as they are", () => {
    expect(formatBytes(NaN)).toBe("NaN")
    expect(formatBytes(Infinity)).toBe("Infinity")
    expect(formatBytes(-Infinity)).toBe("-Infinity")
  })

  // Was a bug (also in logs/format.ts, which now uses this one): the unit was chosen before rounding, so
  // 1 MiB - 1 byte was "1024 KiB".
  it("never writes 1024 of a unit below PiB", () => {
    expect(formatBytes(1024 * 1024 - 1)).toBe("1.00 MiB")
    expect(formatBytes(1024 ** 3 - 1)).toBe("1.00 GiB")
    expect(formatBytes(1024 ** 4 - 1)).toBe("1.00 TiB")
    expect(formatBytes(1024 ** 5 - 2 ** 20)).toBe("1.00 PiB")
    expect(formatBytes(-(1024 * 1024 - 1))).toBe("-1.00 MiB")
    expect(formatBytes(1023.4 * 1024)).toBe("1023 KiB")
    for (let n = 1024; n < 2 ** 52; n = Math.ceil(n * 1.37)) expect(formatBytes(n), String(n)).not.toMatch(/^1024 (?!PiB)/)
  })

  it("chooses the decimals after rounding too", () => {
    expect(formatBytes(9.999 * 1024)).toBe("10.0 KiB")
    expect(formatBytes(99.96 * 1024)).toBe("100 KiB")
    expect(formatBytes(9.994 * 1024)).toBe("9.99 KiB")
  })
})

describe("formatCount", () => {
  it("groups thousands the en-US way, whatever the locale", () => {
    expect(formatCount(0)).toBe("0")
    expect(formatCount(999)).toBe("999")
    expect(formatCount(1234567)).toBe("1,234,567")
    expect(formatCount(-1234)).toBe("-1,234")
    expect(formatCount(1234.5)).toBe("1,234.5")
    expect(formatCount(2 ** 53)).toBe("9,007,199,254,740,992")
  })

  it("writes non-finite counts as they are", () => {
    expect(formatCount(NaN)).toBe("NaN")
    expect(formatCount(Infinity)).toBe("Infinity")
  })
})

describe("formatDuration", () => {
  it("writes whole seconds in d, h, m and s", () => {
    expect(formatDuration(0)).toBe("0s")
    expect(formatDuration(59.9)).toBe("59s")
    expect(formatDuration(61)).toBe("1m 1s")
    expect(formatDuration(3661)).toBe("1h 1m 1s")
    expect(formatDuration(86400 + 60 + 1)).toBe("1d 1m 1s")
  })

  it("writes at most three parts", () => {
    expect(formatDuration(86400 + 3600 + 60 + 1)).toBe("1d 1h 1m")
    expect(formatDuration(400 * 86400 + 23 * 3600 + 59 * 60 + 59)).toBe("400d 23h 59m")
  })

  it("writes negative durations as 0s", () => {
    expect(formatDuration(-5)).toBe("0s")
    expect(formatDuration(-Infinity)).toBe("0s")
  })

  it("leaves out zero seconds when larger units are there", () => {
    expect(formatDuration(60)).toBe("1m")
    expect(formatDuration(3600)).toBe("1h")
    expect(formatDuration(86400)).toBe("1d")
    expect(formatDuration(3600 + 60)).toBe("1h 1m")
    expect(formatDuration(86400 + 3600)).toBe("1d 1h")
    expect(formatDuration(0.5)).toBe("0s")
  })

  it("writes a dash for no duration", () => {
    expect(formatDuration(NaN)).toBe("—")
    expect(formatDuration(Infinity)).toBe("—")
  })
})

describe("formatTime", () => {
  it("writes UTC to the second, ISO-like", () => {
    expect(formatTime(0)).toBe("1970-01-01 00:00:00Z")
    expect(formatTime(Date.UTC(2025, 10, 21, 8, 0, 0, 999))).toBe("2025-11-21 08:00:00Z")
    expect(formatTime(-1)).toBe("1969-12-31 23:59:59Z")
  })

  it("writes a dash, not throwing, for what is no time", () => {
    expect(formatTime(NaN)).toBe("—")
    expect(formatTime(Date.parse("not a date"))).toBe("—")
    expect(formatTime(Infinity)).toBe("—")
    expect(formatTime(-Infinity)).toBe("—")
    expect(formatTime(8.64e15 + 1)).toBe("—")
    expect(formatTime(8.64e15)).toBe("+275760-09-13 00:00:00Z")
  })
})

describe("formatRatio", () => {
  it("writes a percentage with one decimal, or a dash for none", () => {
    expect(formatRatio(null)).toBe("—")
    expect(formatRatio(undefined)).toBe("—")
    expect(formatRatio(0)).toBe("0.0%")
    expect(formatRatio(0.5)).toBe("50.0%")
    expect(formatRatio(0.12345)).toBe("12.3%")
    expect(formatRatio(1)).toBe("100.0%")
  })
})
