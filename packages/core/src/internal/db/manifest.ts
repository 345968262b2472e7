/**
 * The Db manifest: which objects make up the database at one version, and who may write it. One JSON
 * object per version in a `VersionedLog` (`manifest/<version>`). Invariants are checked before every
 * commit and after every read; see rfcs/0003-db.md.
 */
import { Effect, Schema } from "effect"
import { CorruptObject } from "../format/errors.ts"

const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const HexKey = Schema.String.check(Schema.isPattern(/^(?:[0-9a-f]{2})*$/))

export const SstRef = Schema.Struct({
  /** Object key suffix: the table lives at `sst/<id>.sst`. */
  id: Schema.String.check(Schema.isPattern(/^[0-9a-z-]{1,64}$/)),
  size: Count,
  entryCount: Count,
  firstKey: HexKey,
  lastKey: HexKey,
  minSeq: Count,
  maxSeq: Count
})
export type SstRef = typeof SstRef.Type

export const SortedRun = Schema.Struct({
  id: Schema.String,
  /** Tables in key order, their key ranges disjoint. */
  ssts: Schema.Array(SstRef)
})
export type SortedRun = typeof SortedRun.Type

export const DbManifest = Schema.Struct({
  formatVersion: Schema.Literal(1),
  /** Bumped by each writer that opens; fences out the previous one. */
  writerEpoch: Count,
  /** Bumped by each compactor that opens. */
  compactorEpoch: Count,
  /** Every WAL object with an id <= this is reflected in the tables below; replay starts after it. */
  walIdFlushed: Count,
  /** WAL slots that hold fence objects, ascending. Garbage collection never deletes them. */
  walFences: Schema.Array(Count),
  /** Highest sequence number stored in the tables below. */
  lastSeq: Count,
  /** Level-0 tables, newest first; their key ranges may overlap. */
  l0: Schema.Array(SstRef),
  /** Sorted runs, newest first. */
  runs: Schema.Array(SortedRun)
})
export type DbManifest = typeof DbManifest.Type

export const emptyManifest: DbManifest = {
  formatVersion: 1,
  writerEpoch: 0,
  compactorEpoch: 0,
  walIdFlushed: 0,
  walFences: [],
  lastSeq: 0,
  l0: [],
  runs: []
}

/** The compactor epoch and the tables a manifest references: how many, their bytes and entries (for stats). */
export const tableTotals = (m: DbManifest) => {
  let tables = 0
  let tableBytes = 0
  let tableEntries = 0
  const count = (sst: SstRef) => {
    tables += 1
    tableBytes += sst.size
    tableEntries += sst.entryCount
  }
  for (const sst of m.l0) count(sst)
  for (const run of m.runs) for (const sst of run.ssts) count(sst)
  return { compactorEpoch: m.compactorEpoch, tables, tableBytes, tableEntries }
}

/** What is wrong with a manifest, or `undefined`. */
export const manifestProblem = (m: DbManifest): string | undefined => {
  const ids = new Set<string>()
  const all = [...m.l0, ...m.runs.flatMap((r) => r.ssts)]
  for (const sst of all) {
    if (ids.has(sst.id)) return `table ${sst.id} appears twice`
    ids.add(sst.id)
    if (sst.minSeq > sst.maxSeq) return `table ${sst.id}: minSeq > maxSeq`
    if (sst.maxSeq > m.lastSeq) return `table ${sst.id} holds seq ${sst.maxSeq} > lastSeq ${m.lastSeq}`
    if (sst.firstKey > sst.lastKey) return `table ${sst.id}: firstKey > lastKey`
  }
  for (const run of m.runs) {
    for (let i = 1; i < run.ssts.length; i++) {
      if (run.ssts[i - 1]!.lastKey >= run.ssts[i]!.firstKey) return `run ${run.id}: tables overlap or are out of order`
    }
  }
  for (let i = 1; i < m.walFences.length; i++) {
    if (m.walFences[i - 1]! >= m.walFences[i]!) return "walFences not ascending"
  }
  return undefined
}

const decodeJson = Schema.decodeUnknownEffect(DbManifest)

export const encodeManifest = (m: DbManifest): Uint8Array => {
  const problem = manifestProblem(m)
  if (problem !== undefined) throw new Error(`refusing to write an invalid manifest: ${problem}`)
  return new TextEncoder().encode(JSON.stringify(m))
}

export const decodeManifest = (object: string, bytes: Uint8Array): Effect.Effect<DbManifest, CorruptObject> =>
  Effect.try({
    try: () => JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes)) as unknown,
    catch: (e) => new CorruptObject({ object, reason: `not JSON: ${String(e)}` })
  }).pipe(
    Effect.flatMap((json) => Effect.mapError(decodeJson(json), (e) => new CorruptObject({ object, reason: e.message }))),
    Effect.flatMap((m) => {
      const problem = manifestProblem(m)
      return problem === undefined ? Effect.succeed(m) : Effect.fail(new CorruptObject({ object, reason: problem }))
    })
  )
