import { describe, expect, it } from "vitest"
import { autoStep, formatDuration, formatTime, parseDuration, parseEnd, rangePresets, stepRange, toLocalInput } from "../app/query/time.ts"

describe("parseDuration", () => {
  it("reads Prometheus durations, single and compound", () => {
    expect(parseDuration("5m")).toBe(300)
    expect(parseDuration("15s")).toBe(15)
    expect(parseDuration("1h30m")).toBe(5400)
    expect(parseDuration("1d2h3m4s5ms")).toBe(86400 + 7200 + 180 + 4 + 0.005)
    expect(parseDuration("1w")).toBe(604800)
    expect(parseDuration("1y")).toBe(31536000)
    expect(parseDuration("250ms")).toBe(0.25)
    expect(parseDuration("1h0m")).toBe(3600)
  })

  it("tells ms from m", () => {
    expect(parseDuration("1ms")).toBe(0.001)
    expect(parseDuration("1m")).toBe(60)
    expect(parseDuration("1m1ms")).toBe(60.001)
  })

  it("reads fractional amounts", () => {
    expect(parseDuration("1.5h")).toBe(5400)
    expect(parseDuration("0.5s")).toBe(0.5)
  })

  it("reads a plain number as seconds", () => {
    expect(parseDuration("30")).toBe(30)
    expect(parseDuration("0.5")).toBe(0.5)
    expect(parseDuration("007")).toBe(7)
  })

  it("ignores surrounding whitespace", () => {
    expect(parseDuration("  15s\t")).toBe(15)
    expect(parseDuration(" 30 ")).toBe(30)
  })

  it("is undefined for empty, zero and negative durations", () => {
    for (const text of ["", "   ", "0", "0.0", "0s", "0h0m", "0ms", "-5m", "-30"]) expect(parseDuration(text), text).toBeUndefined()
  })

  it("is undefined for what is not a duration", () => {
    for (const text of ["m", "5x", "5mm", "5m!", "1.h", ".5", "5.", "1e3", "1h 30m", "1H", "5 m", "abc", "Infinity", "NaN", "0x10", "+5m", "h1"]) {
      expect(parseDuration(text), text).toBeUndefined()
    }
  })

  it("keeps no state between calls (its sticky regex is reset)", () => {
    expect(parseDuration("5m10x")).toBeUndefined()
    expect(parseDuration("5m")).toBe(300)
    expect(parseDuration("1h30m")).toBe(5400)
    expect(parseDuration("1h")).toBe(3600)
  })

  it("handles very large values", () => {
    expect(parseDuration("100000000y")).toBe(100000000 * 31536000)
    expect(parseDuration("9007199254740993")).toBe(9007199254740992)
  })
})

describe("formatDuration", () => {
  it("writes largest units first", () => {
    expect(formatDuration(5400)).toBe("1h30m")
    expect(formatDuration(0.25)).toBe("250ms")
    expect(formatDuration(15)).toBe("15s")
    expect(formatDuration(60)).toBe("1m")
    expect(formatDuration(3600)).toBe("1h")
    expect(formatDuration(86400 + 3600 + 60 + 1 + 0.5)).toBe("1d1h1m1s500ms")
    expect(formatDuration(86400 + 1)).toBe("1d1s")
  })

  it("writes weeks and years as days", () => {
    expect(formatDuration(604800)).toBe("7d")
    expect(formatDuration(31536000)).toBe("365d")
  })

  it("rounds to the millisecond", () => {
    expect(formatDuration(1.0004)).toBe("1s")
    expect(formatDuration(1.0006)).toBe("1s1ms")
    expect(formatDuration(0.0005)).toBe("1ms")
  })

  it("writes zero and negative durations as 0s", () => {
    expect(formatDuration(0)).toBe("0s")
    expect(formatDuration(-1)).toBe("0s")
    expect(formatDuration(-Infinity)).toBe("0s")
  })

  it("round-trips with parseDuration for whole milliseconds", () => {
    let seed = 12345
    const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648)
    for (let i = 0; i < 500; i++) {
      const ms = (next() * 7919 + next()) % 1e11 + 1
      const seconds = ms / 1000
      const text = formatDuration(seconds)
      expect(parseDuration(text), text).toBeCloseTo(seconds, 6)
      expect(formatDuration(parseDuration(text)!)).toBe(text)
    }
    for (const preset of rangePresets) expect(parseDuration(formatDuration(parseDuration(preset)!))).toBe(parseDuration(preset))
  })

  // Was a bug: a positive duration under half a millisecond rounded to 0 ms and then no unit was written, so
  // the result was "" (the panel showed "step " with nothing after it). The guard now tests the rounded value.
  it("writes a positive duration under half a millisecond as 0s (not an empty string)", () => {
    expect(formatDuration(0.0001)).toBe("0s")
    expect(formatDuration(0.000499)).toBe("0s")
    expect(formatDuration(Number.MIN_VALUE)).toBe("0s")
  })

  it("writes NaN as 0s, never an empty string", () => {
    expect(formatDuration(NaN)).toBe("0s")
  })
})

describe("rangePresets and stepRange", () => {
  it("lists presets that all parse, shortest first", () => {
    const seconds = rangePresets.map((preset) => parseDuration(preset))
    for (const s of seconds) expect(s).toBeGreaterThan(0)
    expect([...seconds].sort((a, b) => a! - b!)).toEqual(seconds)
    expect(new Set(seconds).size).toBe(seconds.length)
  })

  it("steps to the next or previous preset", () => {
    expect(stepRange("1h", 1)).toBe("2h")
    expect(stepRange("1h", -1)).toBe("30m")
    expect(stepRange("5m", 1)).toBe("15m")
    expect(stepRange("2d", -1)).toBe("1d")
  })

  it("stays at the ends", () => {
    expect(stepRange("7d", 1)).toBe("7d")
    expect(stepRange("5m", -1)).toBe("5m")
  })

  it("steps from a range that is not a preset to the nearest preset in that direction", () => {
    expect(stepRange("45m", 1)).toBe("1h")
    expect(stepRange("45m", -1)).toBe("30m")
    expect(stepRange("60m", 1)).toBe("2h")
    expect(stepRange("3600", -1)).toBe("30m")
    expect(stepRange("1m", 1)).toBe("5m")
    expect(stepRange("1m", -1)).toBe("1m")
    expect(stepRange("30d", -1)).toBe("7d")
    expect(stepRange("30d", 1)).toBe("30d")
  })

  it("treats a range that does not parse as 1h", () => {
    expect(stepRange("nonsense", 1)).toBe("2h")
    expect(stepRange("", -1)).toBe("30m")
  })
})

describe("autoStep", () => {
  it("is about 250 points over the range, in whole seconds", () => {
    expect(autoStep(3600)).toBe(14)
    expect(autoStep(86400)).toBe(345)
    expect(autoStep(7 * 86400)).toBe(2419)
    expect(autoStep(500)).toBe(2)
    for (const preset of rangePresets) {
      const range = parseDuration(preset)!
      const step = autoStep(range)
      expect(Number.isInteger(step)).toBe(true)
      expect(range / step).toBeGreaterThanOrEqual(250)
      if (step > 1) expect(range / step).toBeLessThan(500)
    }
  })

  it("is at least 1s", () => {
    expect(autoStep(0)).toBe(1)
    expect(autoStep(1)).toBe(1)
    expect(autoStep(300)).toBe(1)
    expect(autoStep(499)).toBe(1)
    expect(autoStep(0.5)).toBe(1)
  })
})

describe("parseEnd", () => {
  it("is undefined for an empty end (now)", () => {
    expect(parseEnd("")).toBeUndefined()
    expect(parseEnd("   ")).toBeUndefined()
  })

  it("reads milliseconds since the epoch", () => {
    expect(parseEnd("1714571100000")).toBe(1714571100000)
    expect(parseEnd(" 1714571100000 ")).toBe(1714571100000)
    expect(parseEnd("1714571100000.5")).toBe(1714571100000.5)
    expect(parseEnd("0")).toBe(0)
  })

  it("reads RFC3339 with a zone", () => {
    expect(parseEnd("2024-05-01T13:45:00Z")).toBe(Date.UTC(2024, 4, 1, 13, 45))
    expect(parseEnd("2024-05-01T13:45:00.250Z")).toBe(Date.UTC(2024, 4, 1, 13, 45, 0, 250))
    expect(parseEnd("2024-05-01T13:45:00+02:00")).toBe(Date.UTC(2024, 4, 1, 11, 45))
    expect(parseEnd("2024-05-01T13:45:00-05:30")).toBe(Date.UTC(2024, 4, 1, 19, 15))
  })

  it("reads a date-time without a zone as local time (what a datetime-local input gives)", () => {
    expect(parseEnd("2024-05-01T13:45:00")).toBe(new Date(2024, 4, 1, 13, 45, 0).getTime())
    expect(parseEnd("2024-05-01T13:45")).toBe(new Date(2024, 4, 1, 13, 45).getTime())
  })

  it("is undefined for what is not a time", () => {
    expect(parseEnd("nonsense")).toBeUndefined()
    expect(parseEnd("2024-13-45T99:99:99Z")).toBeUndefined()
  })
})

describe("toLocalInput", () => {
  it("writes local time to the second, zero-padded", () => {
    expect(toLocalInput(new Date(2024, 4, 1, 13, 45, 7).getTime())).toBe("2024-05-01T13:45:07")
    expect(toLocalInput(new Date(2024, 0, 2, 3, 4, 5, 999).getTime())).toBe("2024-01-02T03:04:05")
    expect(toLocalInput(new Date(2024, 11, 31, 23, 59, 59).getTime())).toBe("2024-12-31T23:59:59")
  })

  it("round-trips with parseEnd (to the second), across daylight saving changes", () => {
    const times = [
      Date.UTC(2024, 4, 1, 13, 45, 7),
      Date.UTC(2024, 0, 15, 12),
      Date.UTC(2024, 2, 10, 7, 30), // just after the spring-forward change in New York
      Date.UTC(2024, 2, 10, 6, 59, 59), // just before it
      Date.UTC(2000, 1, 29, 0, 0, 1),
      Date.UTC(2100, 11, 31, 23, 59, 59)
    ]
    for (const ms of times) expect(parseEnd(toLocalInput(ms))).toBe(Math.floor(ms / 1000) * 1000)
  })
})

describe("formatTime (seconds)", () => {
  const local = new Date(2024, 4, 1, 13, 45, 0).getTime() / 1000

  it("writes local time, with milliseconds only when there are some", () => {
    expect(formatTime(local)).toBe("2024-05-01 13:45:00")
    expect(formatTime(local + 0.25)).toBe("2024-05-01 13:45:00.250")
    expect(formatTime(local + 0.001)).toBe("2024-05-01 13:45:00.001")
    expect(formatTime(local + 59.5)).toBe("2024-05-01 13:45:59.500")
  })

  it("rounds to the millisecond, carrying into the seconds", () => {
    expect(formatTime(local + 0.0004)).toBe("2024-05-01 13:45:00")
    expect(formatTime(local + 0.9996)).toBe("2024-05-01 13:45:01")
  })

  // Was a bug: the milliseconds were `ms % 1000`, which is negative before 1970, so -0.25 s came out as
  // "…:59.-250". They are now d.getMilliseconds(), as logs/format.ts has them.
  it("writes times before 1970 with their milliseconds", () => {
    const d = new Date(-250)
    const base = `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")} ` +
      `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}:${String(d.getSeconds()).padStart(2, "0")}`
    expect(formatTime(-0.25)).toBe(`${base}.750`)
    expect(formatTime(-1)).toBe(formatTime(-1).slice(0, 19))
    expect(formatTime(-1.001).endsWith(".999")).toBe(true)
  })
})
