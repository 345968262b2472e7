/**
 * Exemplars: kept per series in order in one bounded buffer (oldest overwritten, and deleted from the store),
 * refused out of order or with labels over 128 characters, duplicates dropped, read back by selector and
 * time, across a reopen, and dropped by retention.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import { ExemplarRing, refusal } from "../src/internal/exemplars.ts"
import type { Exemplar, Labels, Matcher } from "../src/Tsdb.ts"
import { world } from "./world.ts"

const L = (o: Record<string, string>): Labels => Object.entries(o)
const eq = (name: string, value: string): Matcher => ({ name, type: "=", value })
const ex = (t: number, value: number, trace = `t${t}`): Exemplar => ({ labels: [["trace_id", trace]], value, timestampMs: t })


const requests = L({ __name__: "http_requests_total", job: "api" })
const latency = L({ __name__: "latency_bucket", job: "api", le: "0.5" })

describe("the exemplar buffer", () => {
  it("overwrites the oldest when full, keeping each series' exemplars in order", () => {
    const ring = new ExemplarRing(3)
    assert.strictEqual(ring.add(1, ex(1, 1)), undefined)
    ring.add(2, ex(2, 2))
    ring.add(1, ex(3, 3))
    assert.deepStrictEqual(ring.add(2, ex(4, 4)), { seriesId: 1, exemplar: ex(1, 1) })
    assert.deepStrictEqual(ring.of(1), [ex(3, 3)])
    assert.deepStrictEqual(ring.of(2), [ex(2, 2), ex(4, 4)])
    assert.deepStrictEqual(ring.overwrittenBy(2), [{ seriesId: 2, exemplar: ex(2, 2) }, { seriesId: 1, exemplar: ex(3, 3) }])
  })

  it("refuses what Prometheus refuses", () => {
    assert.strictEqual(refusal(undefined, ex(5, 1)), undefined)
    assert.strictEqual(refusal(ex(5, 1), ex(5, 1)), "duplicate")
    assert.strictEqual(refusal(ex(5, 1), ex(5, 2)), "out of order")
    assert.strictEqual(refusal(ex(5, 1), ex(4, 2)), "out of order")
    assert.strictEqual(refusal(ex(5, 1), ex(6, 2)), undefined)
    assert.strictEqual(refusal(undefined, ex(-1, 2)), "out of order")
    // 128 characters of names and values together at most.
    assert.strictEqual(refusal(undefined, { labels: [["trace_id", "x".repeat(120)]], value: 1, timestampMs: 1 }), undefined)
    assert.strictEqual(refusal(undefined, { labels: [["trace_id", "x".repeat(121)]], value: 1, timestampMs: 1 }), "labels too long")
    assert.strictEqual(refusal(undefined, { labels: [["trace id", "x"]], value: 1, timestampMs: 1 }), "invalid labels")
  })
})

describe("Tsdb exemplars", () => {
  it.effect("stores a request's exemplars with its samples and reads them by selector and time", () =>
    Effect.gen(function*() {
      const { open } = yield* world
      const { close, tsdb } = yield* open()
      const outcome = yield* tsdb.write({
        series: [
          { labels: requests, samples: [{ timestampMs: 1000, value: 1 }], exemplars: [ex(900, 1), ex(1000, 1)] },
          { labels: latency, samples: [{ timestampMs: 1000, value: 3 }], exemplars: [ex(950, 0.42, "abc")] }
        ]
      })
      assert.strictEqual(outcome.exemplarsWritten, 3)
      assert.strictEqual(outcome.exemplarsRefused, 0)
      const found = yield* tsdb.exemplars([[eq("job", "api")]], 0, 10_000)
      assert.deepStrictEqual(found, [
        { labels: requests, exemplars: [ex(900, 1), ex(1000, 1)] },
        { labels: latency, exemplars: [ex(950, 0.42, "abc")] }
      ].sort((a, b) => (JSON.stringify(a.labels) < JSON.stringify(b.labels) ? -1 : 1)))
      const inTime = yield* tsdb.exemplars([[eq("__name__", "http_requests_total")]], 950, 10_000)
      assert.deepStrictEqual(inTime.map((s) => s.exemplars), [[ex(1000, 1)]])
      // A retry of the request: duplicates, dropped silently; an older one refused; a newer one kept.
      const again = yield* tsdb.write({
        series: [{ labels: requests, samples: [{ timestampMs: 1000, value: 1 }], exemplars: [ex(1000, 1), ex(500, 9), ex(2000, 2)] }]
      })
      assert.deepStrictEqual([again.exemplarsWritten, again.exemplarsRefused], [1, 1])
      // Exemplars of a series this request has no samples for: kept if the series is known.
      const alone = yield* tsdb.write({ series: [{ labels: requests, samples: [], exemplars: [ex(3000, 3)] }, { labels: L({ __name__: "nope" }), samples: [], exemplars: [ex(1, 1)] }] })
      assert.deepStrictEqual([alone.exemplarsWritten, alone.exemplarsRefused], [1, 1])
      const all = yield* tsdb.exemplars([[eq("__name__", "http_requests_total")]], 0, 10_000)
      assert.deepStrictEqual(all[0]!.exemplars.map((e) => e.timestampMs), [900, 1000, 2000, 3000])
      yield* close
    }))

  it.effect("keeps at most exemplarsMax, deleting the overwritten ones from the store, across a reopen", () =>
    Effect.gen(function*() {
      const { open } = yield* world
      const first = yield* open({ exemplarsMax: 3 })
      for (let i = 1; i <= 5; i++) {
        yield* first.tsdb.write({ series: [{ labels: requests, samples: [{ timestampMs: i * 1000, value: i }], exemplars: [ex(i * 1000, i)] }] })
      }
      const kept = yield* first.tsdb.exemplars([[eq("job", "api")]], 0, 100_000)
      assert.deepStrictEqual(kept[0]!.exemplars.map((e) => e.timestampMs), [3000, 4000, 5000])
      yield* first.close
      // Reopened with a smaller buffer: the oldest beyond it go at the first write with exemplars.
      const second = yield* open({ exemplarsMax: 2 })
      yield* second.tsdb.write({ series: [{ labels: latency, samples: [{ timestampMs: 6000, value: 1 }], exemplars: [ex(6000, 6)] }] })
      const after = yield* second.tsdb.exemplars([[eq("job", "api")]], 0, 100_000)
      assert.deepStrictEqual(after.flatMap((s) => s.exemplars.map((e) => e.timestampMs)).sort(), [5000, 6000])
      // An out-of-order exemplar is still refused after the reopen: the buffer was loaded.
      const old = yield* second.tsdb.write({ series: [{ labels: latency, samples: [], exemplars: [ex(5500, 1)] }] })
      assert.strictEqual(old.exemplarsRefused, 1)
      yield* second.close
    }))

  it.effect("retention drops exemplars older than what it keeps", () =>
    Effect.gen(function*() {
      const { open } = yield* world
      const day = 24 * 60 * 60_000
      const { close, tsdb } = yield* open({ retentionMs: day })
      yield* tsdb.write({ series: [{ labels: requests, samples: [{ timestampMs: 1000, value: 1 }], exemplars: [ex(1000, 1)] }] })
      yield* TestClock.adjust(3 * day)
      yield* tsdb.write({ series: [{ labels: requests, samples: [{ timestampMs: 3 * day, value: 2 }], exemplars: [ex(3 * day, 2)] }] })
      yield* tsdb.enforceRetention
      const left = yield* tsdb.exemplars([[eq("job", "api")]], 0, 4 * day)
      assert.deepStrictEqual(left.flatMap((s) => s.exemplars.map((e) => e.timestampMs)), [3 * day])
      yield* close
    }))
})
