import { describe, expect, it } from "vitest"
import type { Matcher } from "../src/internal/labels.ts"
import { matchesAll } from "../src/internal/labels.ts"
import { BucketPostings, intersect, union } from "../src/internal/postings.ts"

const m = (name: string, type: Matcher["type"], value: string): Matcher => ({ name, type, value }) as Matcher

describe("postings", () => {
  it("intersects and unites sorted lists", () => {
    expect(intersect([1, 3, 5, 7], [2, 3, 4, 7, 9])).toEqual([3, 7])
    expect(intersect([], [1])).toEqual([])
    expect(union([[5, 9], [1, 5], [2]])).toEqual([1, 2, 5, 9])
    expect(union([])).toEqual([])
  })

  it("sorts and deduplicates ids added out of order or twice", () => {
    const p = new BucketPostings()
    for (const id of [7, 3, 3, 9, 1, 7]) p.add("job", "api", id)
    expect(p.candidates([m("job", "=", "api")])).toEqual([1, 3, 7, 9])
    expect([...p.names()]).toEqual(["job"])
    expect([...p.values("job")]).toEqual(["api"])
    expect([...p.values("nope")]).toEqual([])
  })

  // Every candidate set must hold each series matching all matchers (the caller filters the rest by labels).
  it("selects a superset of the matching series, and exactly them for matchers that do not match empty", () => {
    const series: Array<Array<[string, string]>> = []
    const p = new BucketPostings()
    let seed = 12345
    const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff)
    for (let id = 0; id < 400; id++) {
      const labels: Array<[string, string]> = [["__name__", ["up", "http_requests_total", "errors"][id % 3]!]]
      if (random() < 0.8) labels.push(["code", ["200", "404", "500"][Math.floor(random() * 3)]!])
      if (random() < 0.9) labels.push(["job", `job-${Math.floor(random() * 5)}`])
      labels.sort((a, b) => (a[0] < b[0] ? -1 : 1))
      series.push(labels)
    }
    // Added in a shuffled order, some twice.
    const order = series.map((_, i) => i).sort(() => random() - 0.5)
    for (const id of [...order, ...order.slice(0, 50)]) for (const [n, v] of series[id]!) p.add(n, v, id)
    // With whether every matcher fails to match "" (then the postings alone decide: candidates are exact).
    const selections: Array<readonly [Array<Matcher>, boolean]> = [
      [[m("__name__", "=", "http_requests_total")], true],
      [[m("__name__", "=", "http_requests_total"), m("code", "=", "500")], true],
      [[m("code", "=~", "4..|5.."), m("job", "!=", "job-1")], false],
      [[m("job", "=~", ".+"), m("code", "!~", "2..")], false],
      [[m("code", "=", "")], false],
      [[m("job", "!=", "job-2")], false],
      [[m("__name__", "=", "nope")], true],
      [[m("code", "!=", ""), m("__name__", "=~", "up|errors")], true]
    ]
    for (const [matchers, exact] of selections) {
      const candidates = p.candidates(matchers)
      expect([...candidates].sort((a, b) => a - b)).toEqual(candidates)
      const expected = series.flatMap((labels, id) => (matchesAll(matchers, labels) ? [id] : []))
      expect(candidates.filter((id) => matchesAll(matchers, series[id]!))).toEqual(expected)
      if (exact) expect(candidates).toEqual(expected)
      else expect(candidates.length).toBeGreaterThan(expected.length)
    }
  })
})
