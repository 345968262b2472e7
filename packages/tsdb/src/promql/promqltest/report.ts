/** Counting and listing the outcomes of test scripts: per file, in sum, each failure, and failures by cause. */
import type { FileReport, Status } from "./run.ts"

export interface Counts {
  readonly passed: number
  readonly failed: number
  readonly unsupported: number
  readonly total: number
  readonly floatOnlyPassed: number
  readonly floatOnlyTotal: number
}

export const countReport = (r: FileReport): Counts => {
  const by = (s: Status) => r.outcomes.filter((o) => o.status === s).length
  const floatOnly = r.outcomes.filter((o) => o.floatOnly)
  return {
    passed: by("passed"),
    failed: by("failed"),
    unsupported: by("unsupported") + r.unknownCommands.length,
    total: r.outcomes.length + r.unknownCommands.length,
    floatOnlyPassed: floatOnly.filter((o) => o.status === "passed").length,
    floatOnlyTotal: floatOnly.length
  }
}

export const sumCounts = (counts: ReadonlyArray<Counts>): Counts =>
  counts.reduce(
    (a, c) => ({
      passed: a.passed + c.passed,
      failed: a.failed + c.failed,
      unsupported: a.unsupported + c.unsupported,
      total: a.total + c.total,
      floatOnlyPassed: a.floatOnlyPassed + c.floatOnlyPassed,
      floatOnlyTotal: a.floatOnlyTotal + c.floatOnlyTotal
    }),
    { passed: 0, failed: 0, unsupported: 0, total: 0, floatOnlyPassed: 0, floatOnlyTotal: 0 }
  )

export const fileLine = (r: FileReport): string => {
  const c = countReport(r)
  return `${r.file}: ${c.passed} passed, ${c.failed} failed, ${c.unsupported} unsupported of ${c.total}`
}

export const summaryLine = (c: Counts): string =>
  `promqltest: ${c.passed} passed, ${c.failed} failed, ${c.unsupported} unsupported of ${c.total} evals (float-only non-experimental: ${c.floatOnlyPassed} of ${c.floatOnlyTotal} passed)`

/** Each failing (or, with `all`, non-passing) eval with its query, expected and got. */
export const verboseLines = (r: FileReport, all = false): Array<string> => {
  const out: Array<string> = []
  for (const o of r.outcomes) {
    if (o.status === "passed" || (o.status === "unsupported" && !all)) continue
    out.push(`${r.file}:${o.line}: ${o.status.toUpperCase()} ${o.text}`)
    out.push(`  reason:   ${o.reason ?? ""}`)
    out.push(`  expected: ${o.expected.split("\n").join("\n            ")}`)
    if (o.got !== undefined) out.push(`  got:      ${o.got.split("\n").join("\n            ")}`)
  }
  return out
}

/** Failures grouped by cause, most frequent first, with a few example queries each. */
export const causeLines = (reports: ReadonlyArray<FileReport>, status: Status = "failed", examples = 3): Array<string> => {
  const groups = new Map<string, Array<string>>()
  for (const r of reports) {
    for (const o of r.outcomes) {
      if (o.status !== status) continue
      const key = o.cause ?? "(no cause)"
      let g = groups.get(key)
      if (g === undefined) groups.set(key, (g = []))
      g.push(`${r.file}:${o.line}: ${o.query}`)
    }
  }
  const out: Array<string> = []
  for (const [cause, items] of [...groups].sort((a, b) => b[1].length - a[1].length)) {
    out.push(`${items.length} × ${cause}`)
    for (const q of items.slice(0, examples)) out.push(`    ${q}`)
  }
  return out
}
