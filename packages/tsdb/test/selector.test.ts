import { describe, expect, it } from "vitest"
import { parseSelector, SelectorError } from "../src/internal/selector.ts"

describe("match[] selectors", () => {
  it("read label values with Go's escapes, as Prometheus does", () => {
    const [m] = parseSelector(String.raw`{a="x\n\t\"\x41\u00e9\U0001F600\101\\"}`)
    expect(m).toMatchObject({ name: "a", type: "=", value: "x\n\t\"Aé😀A\\" })
    expect(parseSelector("{a=`raw\\n`}")[0]).toMatchObject({ value: "raw\\n" })
    expect(parseSelector(String.raw`{a='it\'s'}`)[0]).toMatchObject({ value: "it's" })
  })

  it("refuse bad escapes with a clear error", () => {
    for (const bad of [String.raw`{a="\q"}`, String.raw`{a="\x4"}`, String.raw`{a="\u12"}`, String.raw`{a="\18"}`]) {
      expect(() => parseSelector(bad)).toThrow(SelectorError)
    }
  })
})
