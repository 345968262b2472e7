import { describe, expect, it } from "vitest"
import * as shared from "../app/format.ts"
import { formatAgo, formatBytes, formatCount, formatRate, formatTime, parseOffset, parseTime } from "../app/logs/format.ts"

const now = Date.UTC(2025, 10, 21, 13, 0, 0)

describe("the test zone", () => {
  // vitest.config.ts pins TZ so that local-time mistakes show; the tests below about date-only input
  // depend on the zone not being UTC.
  it("is not UTC", () => {
    expect(new Date(2025, 0, 1).getTimezoneOffset()).toBe(300)
    expect(new Date(2025, 6, 1).getTimezoneOffset()).toBe(240)
  })
})

// The Logs page writes counts and sizes as the other pages do: app/format.ts has the one formatCount and
// formatBytes (tested in format.test.ts); these are the same functions, not copies that drift apart.
describe("formatCount", () => {
  it("is the shared one", () => {
    expect(formatCount).toBe(shared.formatCount)
  })

  it("groups thousands the en-US way, whatever the locale", () => {
    expect(formatCount(0)).toBe("0")
    expect(formatCount(12345)).toBe("12,345")
    expect(formatCount(1234567.5)).toBe("1,234,567.5")
    expect(formatCount(-9876543)).toBe("-9,876,543")
    expect(formatCount(2 ** 53)).toBe("9,007,199,254,740,992")
  })
})

describe("formatBytes", () => {
  it("is the shared one", () => {
    expect(formatBytes).toBe(shared.formatBytes)
  })

  it("writes bytes under 1 KiB as bytes", () => {
    expect(formatBytes(0)).toBe("0 B")
    expect(formatBytes(1)).toBe("1 B")
    expect(formatBytes(512)).toBe("512 B")
    expect(formatBytes(1023)).toBe("1023 B")
  })

  it("writes about three significant digits, in binary units", () => {
    expect(formatBytes(1024)).toBe("1.00 KiB")
    expect(formatBytes(1536)).toBe("1.50 KiB")
    expect(formatBytes(10 * 1024)).toBe("10.0 KiB")
    expect(formatBytes(100.4 * 1024)).toBe("100 KiB")
    expect(formatBytes(20 * 1024 ** 2)).toBe("20.0 MiB")
    expect(formatBytes(3.25 * 1024 ** 3)).toBe("3.25 GiB")
    expect(formatBytes(1024 ** 4)).toBe("1.00 TiB")
    expect(formatBytes(1024 ** 5)).toBe("1.00 PiB")
  })

  it("stops at PiB for very large sizes", () => {
    expect(formatBytes(2 ** 53)).toBe("8.00 PiB")
    expect(formatBytes(1024 ** 6)).toBe("1024 PiB")
  })

  // Was a bug: the unit was chosen before rounding, so a size just under the next unit was written with
  // 1024 in it: 1024 * 1024 - 1 bytes gave "1024 KiB" (and 1 GiB - 1 gave "1024 MiB").
  it("never writes 1024 of a unit below PiB", () => {
    expect(formatBytes(1024 * 1024 - 1)).toBe("1.00 MiB")
    expect(formatBytes(1024 ** 3 - 1)).toBe("1.00 GiB")
  })
})

describe("formatTime (ms)", () => {
  it("writes local time to the millisecond", () => {
    expect(formatTime(new Date(2025, 10, 21, 8, 0, 0, 123).getTime())).toBe("2025-11-21 08:00:00.123")
    expect(formatTime(new Date(2025, 0, 2, 3, 4, 5, 6).getTime())).toBe("2025-01-02 03:04:05.006")
    expect(formatTime(new Date(2025, 11, 31, 23, 59, 59, 0).getTime())).toBe("2025-12-31 23:59:59.000")
  })

  it("writes times before 1970 correctly", () => {
    const d = new Date(-1)
    expect(formatTime(-1).endsWith(`:${String(d.getSeconds()).padStart(2, "0")}.999`)).toBe(true)
  })
})

describe("formatAgo", () => {
  it("says how long ago, in the largest whole unit", () => {
    expect(formatAgo(now, now)).toBe("just now")
    expect(formatAgo(now - 4_400, now)).toBe("just now")
    expect(formatAgo(now - 5_000, now)).toBe("5 s ago")
    expect(formatAgo(now - 59_000, now)).toBe("59 s ago")
    expect(formatAgo(now - 60_000, now)).toBe("1 min ago")
    expect(formatAgo(now - 3_599_000, now)).toBe("59 min ago")
    expect(formatAgo(now - 3_600_000, now)).toBe("1 h ago")
    expect(formatAgo(now - 86_399_000, now)).toBe("23 h ago")
    expect(formatAgo(now - 86_400_000, now)).toBe("1 d ago")
    expect(formatAgo(now - 400 * 86_400_000, now)).toBe("400 d ago")
  })

  it("says a time after now is in the future", () => {
    expect(formatAgo(now + 10_000, now)).toBe("in the future")
  })

  it("is relative to the clock when not told now", () => {
    expect(formatAgo(Date.now() - 10 * 60_000)).toBe("10 min ago")
  })
})

describe("formatRate", () => {
  it("writes zero as 0, one decimal under 10, and whole grouped numbers from 10", () => {
    expect(formatRate(0)).toBe("0")
    expect(formatRate(0.04)).toBe("0.0")
    expect(formatRate(3.44)).toBe("3.4")
    expect(formatRate(9.94)).toBe("9.9")
    expect(formatRate(10)).toBe("10")
    expect(formatRate(1249.6)).toBe(formatCount(1250))
    expect(formatRate(1_000_000)).toBe(formatCount(1_000_000))
  })
})

describe("parseTime", () => {
  it("is undefined for nothing", () => {
    expect(parseTime("", now)).toBeUndefined()
    expect(parseTime("   ", now)).toBeUndefined()
  })

  it("reads epoch milliseconds (10 digits or more)", () => {
    expect(parseTime("1763712000123", now)).toBe(1763712000123)
    expect(parseTime(" 1763712000123 ", now)).toBe(1763712000123)
    expect(parseTime("1000000000", now)).toBe(1000000000)
  })

  it("reads relative times in the past", () => {
    expect(parseTime("-5m", now)).toBe(now - 300_000)
    expect(parseTime("5m", now)).toBe(now - 300_000)
    expect(parseTime("- 5m", now)).toBe(now - 300_000)
    expect(parseTime("90s ago", now)).toBe(now - 90_000)
    expect(parseTime("2h", now)).toBe(now - 7_200_000)
    expect(parseTime("1.5h", now)).toBe(now - 5_400_000)
    expect(parseTime("500ms", now)).toBe(now - 500)
    expect(parseTime("10 min ago", now)).toBe(now - 600_000)
    expect(parseTime("3d", now)).toBe(now - 3 * 86_400_000)
    expect(parseTime("0s", now)).toBe(now)
  })

  it("reads relative units in any case", () => {
    expect(parseTime("5M", now)).toBe(now - 300_000)
    expect(parseTime("2H AGO", now)).toBe(now - 7_200_000)
    expect(parseTime("250MS", now)).toBe(now - 250)
  })

  it("rounds relative times to the millisecond", () => {
    expect(parseTime("0.0004s", now)).toBe(now)
    expect(Number.isInteger(parseTime("1.23456s", now))).toBe(true)
  })

  it("reads a date and time as local time", () => {
    expect(parseTime("2025-11-21 08:00", now)).toBe(new Date(2025, 10, 21, 8, 0).getTime())
    expect(parseTime("2025-11-21 08:00:30.250", now)).toBe(new Date(2025, 10, 21, 8, 0, 30, 250).getTime())
    expect(parseTime("2025-11-21T08:00", now)).toBe(new Date(2025, 10, 21, 8, 0).getTime())
    expect(parseTime("2025-07-01 08:00", now)).toBe(new Date(2025, 6, 1, 8, 0).getTime())
  })

  it("reads a date and time in the zone it names", () => {
    expect(parseTime("2025-11-21T08:00:00Z", now)).toBe(Date.UTC(2025, 10, 21, 8))
    expect(parseTime("2025-11-21 08:00:00Z", now)).toBe(Date.UTC(2025, 10, 21, 8))
    expect(parseTime("2025-11-21T08:00:00+01:00", now)).toBe(Date.UTC(2025, 10, 21, 7))
  })

  it("reads back what formatTime writes", () => {
    for (const ms of [now, now + 123, Date.UTC(2024, 2, 10, 7, 30, 0, 1), Date.UTC(2000, 1, 29, 12), 1]) {
      expect(parseTime(formatTime(ms), now)).toBe(ms)
    }
  })

  it("is undefined for what is not a time", () => {
    for (const text of ["garbage", "5 minutes", "5x", "ago", "-", "2025-13-45 99:99", "5m later"]) {
      expect(parseTime(text, now), text).toBeUndefined()
    }
  })

  // Was a bug: a short number is neither epoch ms (10+ digits) nor relative (no unit), so it fell through to
  // Date.parse, whose V8 fallback reads "0" as 2000-01-01, "5" as 2001-05-01, "1.5" as 2001-01-05 and
  // "123" as the year 123, local time; the doc promises undefined "when it is none of these". Numbers-only
  // input that is not epoch ms is now rejected before Date.parse.
  it("is undefined for a short number that is neither epoch ms nor relative", () => {
    for (const text of ["0", "5", "12", "1.5", "123", "2025", "-5", "+5", "5 5", "1,5", "2025-11", "999999999"]) {
      expect(parseTime(text, now), text).toBeUndefined()
    }
  })

  it("is undefined for a date with no year (which Date.parse would put in 2001)", () => {
    for (const text of ["Nov 21", "21 Nov", "11/21", "5/1", "1-2"]) expect(parseTime(text, now), text).toBeUndefined()
  })

  // Was a bug: the doc says a date is "local unless it names a zone", but Date.parse reads a date-only ISO
  // form ("2025-11-21") as UTC midnight, so in New York it meant 19:00 the day before, while
  // "2025-11-21 00:00" meant local midnight.
  it("reads a date without a time as local midnight, like a date with 00:00", () => {
    expect(parseTime("2025-11-21", now)).toBe(parseTime("2025-11-21 00:00", now))
    expect(parseTime("2025-11-21", now)).toBe(new Date(2025, 10, 21).getTime())
    expect(parseTime("2025-07-01", now)).toBe(new Date(2025, 6, 1).getTime())
  })

  it("reads the zone however ISO 8601 writes it", () => {
    expect(parseTime("2025-11-21t08:00z", now)).toBe(Date.UTC(2025, 10, 21, 8))
    expect(parseTime("2025-11-21 08:00 Z", now)).toBe(Date.UTC(2025, 10, 21, 8))
    expect(parseTime("2025-11-21T08:00:00+0100", now)).toBe(Date.UTC(2025, 10, 21, 7))
    expect(parseTime("2025-11-21T08:00:00.123456Z", now)).toBe(Date.UTC(2025, 10, 21, 8, 0, 0, 123))
  })

  it("still reads other date forms that name a year", () => {
    expect(parseTime("2025/11/21", now)).toBe(new Date(2025, 10, 21).getTime())
    expect(parseTime("Nov 21 2025 08:00", now)).toBe(new Date(2025, 10, 21, 8).getTime())
    expect(parseTime("Fri, 21 Nov 2025 08:00:00 GMT", now)).toBe(Date.UTC(2025, 10, 21, 8))
    expect(parseTime(new Date(now).toString(), now)).toBe(now)
  })
})

describe("parseOffset", () => {
  it("reads non-negative integers", () => {
    expect(parseOffset("0")).toBe(0)
    expect(parseOffset("42")).toBe(42)
    expect(parseOffset(" 42 ")).toBe(42)
    expect(parseOffset("007")).toBe(7)
    expect(parseOffset("9007199254740991")).toBe(Number.MAX_SAFE_INTEGER)
  })

  it("is undefined for anything else", () => {
    for (const text of ["", "  ", "-1", "+1", "1.5", "1e3", "0x10", "abc", "12abc", "1 2", "١٢", "Infinity"]) {
      expect(parseOffset(text), text).toBeUndefined()
    }
  })

  it("is undefined past the largest safe integer (it would not be exact)", () => {
    expect(parseOffset("9007199254740992")).toBeUndefined()
    expect(parseOffset("99999999999999999999")).toBeUndefined()
  })
})
