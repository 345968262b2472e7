import { describe, expect, it } from "vitest"
import { defaultPanel, maxPanels, type PanelState, readPanels, writePanels } from "../app/query/params.ts"

const panel = (fields: Partial<PanelState>): PanelState => ({ ...defaultPanel, ...fields })
const read = (query: string): Array<PanelState> => readPanels(new URLSearchParams(query))
/** Writes, then reads back through the query string as a browser would keep it. */
const roundTrip = (panels: ReadonlyArray<PanelState>, base = ""): Array<PanelState> =>
  read(writePanels(new URLSearchParams(base), panels).toString())

describe("readPanels", () => {
  it("gives one default panel for an empty query", () => {
    expect(read("")).toEqual([defaultPanel])
    expect(read("unrelated=1&g0.expr=up")).toEqual([defaultPanel])
  })

  it("reads panel 0 from the plain names", () => {
    expect(read("expr=up&tab=graph&range=6h&end=1714571100000&step=15s&stacked=1")).toEqual([
      { expr: "up", tab: "graph", range: "6h", end: "1714571100000", step: "15s", stacked: true }
    ])
  })

  it("reads panel i from the names prefixed p<i>.", () => {
    expect(read("expr=a&p1.expr=b&p1.tab=graph&p2.expr=c&p2.range=5m")).toEqual([
      panel({ expr: "a" }),
      panel({ expr: "b", tab: "graph" }),
      panel({ expr: "c", range: "5m" })
    ])
  })

  it("has panel i when any of its names is present, with defaults for the panels in between", () => {
    expect(read("p2.stacked=1")).toEqual([defaultPanel, defaultPanel, panel({ stacked: true })])
    expect(read("p1.end=2024-05-01T00:00:00Z")).toEqual([defaultPanel, panel({ end: "2024-05-01T00:00:00Z" })])
  })

  it("does not count names that only look like a panel's", () => {
    for (const query of ["p0.expr=x", "p01.expr=x", "p1.other=x", "P1.expr=x", "p1expr=x", "p-1.expr=x", "xp1.expr=x", "p1.expr.x=1"]) {
      expect(read(query), query).toHaveLength(1)
    }
  })

  it("falls back to the default tab and range when they are invalid, keeping the rest", () => {
    expect(read("tab=chart&range=forever&expr=up")).toEqual([panel({ expr: "up" })])
    expect(read("range=0s")).toEqual([defaultPanel])
    expect(read("range=")).toEqual([defaultPanel])
    expect(read("range=90")).toEqual([panel({ range: "90" })])
    expect(read("range=1h30m")).toEqual([panel({ range: "1h30m" })])
  })

  it("keeps end and step as written (they are checked where they are used)", () => {
    expect(read("end=tomorrow&step=nonsense")).toEqual([panel({ end: "tomorrow", step: "nonsense" })])
  })

  it("reads stacked only from 1 or true", () => {
    expect(read("stacked=1")[0]!.stacked).toBe(true)
    expect(read("stacked=true")[0]!.stacked).toBe(true)
    for (const value of ["0", "false", "yes", "", "TRUE", "on"]) expect(read(`stacked=${value}`)[0]!.stacked, value).toBe(false)
  })

  it("reads at most maxPanels (20) panels, ignoring names of panels past that", () => {
    expect(maxPanels).toBe(20)
    expect(read("p1000000.expr=x")).toEqual([defaultPanel])
    expect(read("expr=a&p99999999999999999999999.expr=x&p20.expr=y")).toEqual([panel({ expr: "a" })])
    const last = read("p19.expr=z&p20.expr=y&p21.tab=graph")
    expect(last).toHaveLength(20)
    expect(last[19]).toEqual(panel({ expr: "z" }))
  })

  it("uses the first of repeated names", () => {
    expect(read("expr=first&expr=second")[0]!.expr).toBe("first")
  })
})

describe("writePanels", () => {
  it("writes expr, tab and range always, and end, step and stacked only when set", () => {
    const out = writePanels(new URLSearchParams(), [defaultPanel, panel({ expr: "b", end: "0", step: "1m", stacked: true })])
    expect([...out]).toEqual([
      ["expr", ""],
      ["tab", "table"],
      ["range", "1h"],
      ["p1.expr", "b"],
      ["p1.tab", "table"],
      ["p1.range", "1h"],
      ["p1.end", "0"],
      ["p1.step", "1m"],
      ["p1.stacked", "1"]
    ])
  })

  it("keeps other names, in order, and drops every panel name it does not write", () => {
    const before = new URLSearchParams("a=1&expr=old&p3.expr=gone&p3.range=5m&b=2&p1.step=1s&stacked=1&a=3")
    const out = writePanels(before, [panel({ expr: "new" })])
    expect([...out]).toEqual([
      ["a", "1"],
      ["b", "2"],
      ["a", "3"],
      ["expr", "new"],
      ["tab", "table"],
      ["range", "1h"]
    ])
    expect(read(out.toString())).toEqual([panel({ expr: "new" })])
  })

  it("keeps names that only look like a panel's", () => {
    const out = writePanels(new URLSearchParams("p0.expr=x&p01.expr=y&p1.other=z"), [])
    expect(out.toString()).toBe("p0.expr=x&p01.expr=y&p1.other=z")
  })

  it("does not change the params it is given", () => {
    const before = new URLSearchParams("expr=up&x=1")
    writePanels(before, [panel({ expr: "down" })])
    expect(before.toString()).toBe("expr=up&x=1")
  })

  it("leaves no panel names for no panels, which reads back as one default panel", () => {
    const out = writePanels(new URLSearchParams("expr=up&p1.expr=x&keep=1"), [])
    expect(out.toString()).toBe("keep=1")
    expect(read(out.toString())).toEqual([defaultPanel])
  })

  it("renumbers panels when one is removed", () => {
    const panels = read("expr=a&p1.expr=b&p2.expr=c&p2.tab=graph")
    const out = writePanels(new URLSearchParams("expr=a&p1.expr=b&p2.expr=c&p2.tab=graph"), [panels[0]!, panels[2]!])
    expect(out.has("p2.expr")).toBe(false)
    expect(read(out.toString())).toEqual([panel({ expr: "a" }), panel({ expr: "c", tab: "graph" })])
  })
})

describe("URL <-> panels round trip", () => {
  it("round-trips the default panel", () => {
    expect(roundTrip([defaultPanel])).toEqual([defaultPanel])
  })

  it("round-trips every field of several panels", () => {
    const panels: Array<PanelState> = [
      { expr: "up", tab: "graph", range: "6h", end: "1714571100000", step: "15s", stacked: true },
      { expr: "", tab: "table", range: "1h", end: "", step: "", stacked: false },
      { expr: "rate(x[5m])", tab: "graph", range: "1.5h", end: "2024-05-01T13:45:00+02:00", step: "30", stacked: false }
    ]
    expect(roundTrip(panels)).toEqual(panels)
    expect(roundTrip(panels, "theme=dark&expr=stale&p7.expr=stale")).toEqual(panels)
  })

  it("round-trips expressions with URL-special, multi-byte and control characters", () => {
    const exprs = [
      'sum by (job) (rate(http_requests_total{path="/a?b=c&d=e#f", q="100%+1"}[5m]))',
      "métrique_😀{étiquette=\"日本語\"}",
      "a\nb\tc\r\nd",
      "  leading and trailing spaces  ",
      "+plus+ and %2B and %",
      "p1.expr=x&expr=y"
    ]
    const panels = exprs.map((expr, i) => panel({ expr, tab: i % 2 === 0 ? "graph" : "table" }))
    expect(roundTrip(panels)).toEqual(panels)
  })

  it("round-trips as many panels as there may be", () => {
    const panels = Array.from({ length: maxPanels }, (_, i) => panel({ expr: `q${i}`, stacked: i % 3 === 0 }))
    expect(roundTrip(panels)).toEqual(panels)
  })

  it("writes only the first maxPanels panels, as only those are read back", () => {
    const panels = Array.from({ length: maxPanels + 5 }, (_, i) => panel({ expr: `q${i}` }))
    const out = writePanels(new URLSearchParams(), panels)
    expect(out.has(`p${maxPanels - 1}.expr`)).toBe(true)
    expect(out.has(`p${maxPanels}.expr`)).toBe(false)
    expect(read(out.toString())).toEqual(panels.slice(0, maxPanels))
  })

  it("is stable: reading then writing a URL twice gives the same URL", () => {
    const query = "x=1&p2.step=5s&range=bad&tab=graph&stacked=true"
    const once = writePanels(new URLSearchParams(query), read(query)).toString()
    const twice = writePanels(new URLSearchParams(once), read(once)).toString()
    expect(twice).toBe(once)
  })
})
