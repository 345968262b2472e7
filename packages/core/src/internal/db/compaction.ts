/**
 * Compaction: the pure plan (which tables to merge, and how the manifest changes) and the job that runs
 * it (merge the inputs in key order, drop what no reader can see, write the output as a sorted run).
 *
 * Policy, size-tiered to start: once level 0 holds `l0CompactionTrigger` tables they are merged into a new
 * sorted run, the newest; once there are more than `sortedRunsMax` runs, all of them are merged into one.
 * Only a job that includes the oldest data (the "bottom") may drop tombstones and resolve merge operands
 * into values.
 */
import { Effect } from "effect"
import * as Limits from "../../limits.ts"
import { compareBytes } from "../format/bytes.ts"
import type { Entry } from "../format/entry.ts"
import { entryBytes } from "../format/entry.ts"
import type { OutcomeUnknown, Unavailable } from "../objectStore/model.ts"
import type { DbManifest, SortedRun, SstRef } from "./manifest.ts"
import type { Cursor, MergeOperator } from "./read.ts"
import { mergeCursors, pending, resolveVersions } from "./read.ts"
import type { ReadError, Tables } from "./tables.ts"
import { pause, runCursor } from "./tables.ts"
import { SstBuilder, sstEncodeSliceEntries } from "../format/sst.ts"

export interface CompactionSettings {
  readonly l0CompactionTrigger: number
  readonly sortedRunsMax: number
  readonly sstBytesTarget: number
  readonly blockBytesTarget: number
  readonly bloomBitsPerKey: number
}

export interface CompactionJob {
  /** Inputs, newest first: each element is one sorted source (a level-0 table, or a run's tables). */
  readonly sources: ReadonlyArray<ReadonlyArray<SstRef>>
  /** The job includes the oldest data: tombstones can be dropped and merges resolved. */
  readonly bottom: boolean
  /**
   * The manifest with the inputs replaced by `output`; undefined if there is nothing to commit: the job
   * was applied already, or its inputs are no longer all there (an earlier attempt of it landed, or a
   * newer compactor replaced them). Its output tables are then left for garbage collection.
   */
  readonly apply: (m: DbManifest, output: SortedRun) => DbManifest | undefined
}

export const planCompaction = (m: DbManifest, settings: CompactionSettings): CompactionJob | undefined => {
  if (m.l0.length >= settings.l0CompactionTrigger) {
    const inputs = new Set(m.l0.map((t) => t.id))
    return {
      sources: m.l0.map((t) => [t]),
      bottom: m.runs.length === 0,
      apply: (current, output) => {
        if (current.runs.some((r) => r.id === output.id)) return undefined
        if (!m.l0.every((t) => current.l0.some((c) => c.id === t.id))) return undefined
        return {
          ...current,
          l0: current.l0.filter((t) => !inputs.has(t.id)),
          runs: output.ssts.length === 0 ? current.runs : [output, ...current.runs]
        }
      }
    }
  }
  if (m.runs.length > settings.sortedRunsMax) {
    const inputs = new Set(m.runs.map((r) => r.id))
    return {
      sources: m.runs.map((r) => r.ssts),
      bottom: true,
      apply: (current, output) => {
        if (current.runs.some((r) => r.id === output.id)) return undefined
        if (!m.runs.every((r) => current.runs.some((c) => c.id === r.id))) return undefined
        const kept = current.runs.filter((r) => !inputs.has(r.id))
        return { ...current, runs: output.ssts.length === 0 ? kept : [...kept, output] }
      }
    }
  }
  return undefined
}

/**
 * Which versions of one key (newest first) a compaction keeps. Versions above `retainAbove` stay (a
 * snapshot may read them); below it only what the newest visible version needs.
 */
export const retainVersions = (
  versions: ReadonlyArray<Entry>,
  retainAbove: number,
  bottom: boolean,
  merge: MergeOperator | undefined
): Array<Entry> => {
  const out: Array<Entry> = []
  let i = 0
  for (; i < versions.length && versions[i]!.seq > retainAbove; i++) out.push(versions[i]!)
  const rest = versions.slice(i)
  if (rest.length === 0) return out
  if (bottom) {
    const value = resolveVersions(rest[0]!.key, rest, merge)
    if (value !== undefined) out.push({ key: rest[0]!.key, seq: rest[0]!.seq, kind: "put", value })
    return out
  }
  for (const v of rest) {
    out.push(v)
    if (v.kind !== "merge") break
  }
  return out
}

/** Runs a job: merges its inputs and writes the output tables. */
export const runCompaction = (
  tables: Tables,
  job: CompactionJob,
  options: {
    readonly retainAbove: number
    readonly merge: MergeOperator | undefined
    readonly newTableId: Effect.Effect<string>
    readonly settings: CompactionSettings
  }
): Effect.Effect<SortedRun, ReadError | Unavailable | OutcomeUnknown> =>
  Effect.gen(function*() {
    const cursors: Array<Cursor<ReadError>> = job.sources.map((ssts) => runCursor(tables, ssts, undefined, undefined))
    const cursor = mergeCursors(cursors)
    const ssts: Array<SstRef> = []
    // Compressed, in larger blocks: a compaction's output is where data stays (flushes write theirs plain).
    const tableOptions = { ...options.settings, blockBytesTarget: options.settings.blockBytesTarget * Limits.compactedBlockScale, compress: true }
    // The open output table, built as entries come: what it holds is encoded blocks, not the entries.
    let current: SstBuilder | undefined
    let currentBytes = 0
    let sincePause = 0
    const emit = Effect.gen(function*() {
      if (current === undefined) return
      const table = current.finish()
      current = undefined
      currentBytes = 0
      const id = yield* options.newTableId
      ssts.push(yield* tables.write(id, table))
    })
    let versions: Array<Entry> = []
    const finishKey = Effect.gen(function*() {
      if (versions.length === 0) return
      const kept = retainVersions(versions, options.retainAbove, job.bottom, options.merge)
      versions = []
      if (kept.length === 0) return
      const bytes = kept.reduce((n, e) => n + entryBytes(e), 0)
      // Close the table before it passes its target; all versions of a key stay in one table.
      if (current !== undefined && currentBytes + bytes > options.settings.sstBytesTarget) yield* emit
      current ??= new SstBuilder(tableOptions)
      for (const e of kept) current.add(e)
      currentBytes += bytes
      sincePause += kept.length
      if (sincePause >= sstEncodeSliceEntries) {
        sincePause = 0
        yield* pause
      }
    })
    for (;;) {
      let e = cursor.nextSync()
      if (e === pending) e = yield* cursor.next
      if (e === undefined) break
      if (versions.length > 0 && compareBytes(versions[0]!.key, e.key) !== 0) yield* finishKey
      versions.push(e)
    }
    yield* finishKey
    yield* emit
    return { id: ssts[0]?.id ?? (yield* options.newTableId), ssts }
  })
