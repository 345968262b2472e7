/**
 * Operator tools, read-only: `inspect` summarises what is stored under a Db's path (manifest versions,
 * the latest manifest, objects by kind); `verify` reads every table the latest manifest references and
 * every WAL object after its flushed point and checks every checksum and format rule. Neither writes
 * nor fences anything, so they are safe to run beside a live writer.
 */
import { Effect, Stream } from "effect"
import type { Inspection, Verification } from "../../Db.ts"
import { ObjectStore } from "../../ObjectStore.ts"
import type { CorruptObject } from "../format/errors.ts"
import { decodeSstBlock, decodeSstBloom, decodeSstFooter, decodeSstIndex, sstFooterBytes } from "../format/sst.ts"
import { decodeWal } from "../format/wal.ts"
import type { Unavailable } from "../objectStore/model.ts"
import { makeManifestStore } from "./manifestStore.ts"
import { prefixed, walKey, walPrefix } from "./storeView.ts"

export const inspect = (path: string): Effect.Effect<Inspection, Unavailable | CorruptObject, ObjectStore> =>
  Effect.gen(function*() {
    const store = prefixed(yield* ObjectStore, path)
    const manifests = makeManifestStore(store)
    const entries = yield* Stream.runCollect(store.list("")).pipe(Effect.catchTag("InvalidKey", (e) => Effect.die(e)))
    const objects: Record<string, { count: number; bytes: number }> = {}
    for (const e of entries) {
      const kind = e.key.startsWith(walPrefix) ? "wal" : e.key.startsWith("sst/") ? "sst" : e.key.startsWith("manifest/") ? "manifest" : "other"
      const o = objects[kind] ?? { count: 0, bytes: 0 }
      o.count += 1
      o.bytes += e.size
      objects[kind] = o
    }
    const versions = yield* manifests.log.versions
    const latest = yield* manifests.log.latest()
    const m = latest?.value
    const all = m === undefined ? [] : [...m.l0, ...m.runs.flatMap((r) => r.ssts)]
    return {
      path,
      manifestVersions: versions,
      latest: latest === undefined || m === undefined ? undefined : {
        version: latest.version,
        writerEpoch: m.writerEpoch,
        compactorEpoch: m.compactorEpoch,
        walIdFlushed: m.walIdFlushed,
        walFences: m.walFences,
        lastSeq: m.lastSeq,
        l0Tables: m.l0.length,
        sortedRuns: m.runs.length,
        tables: all.length,
        tableBytes: all.reduce((n, t) => n + t.size, 0),
        entries: all.reduce((n, t) => n + t.entryCount, 0)
      },
      objects
    }
  })

export const verify = (
  path: string,
  progress: (done: number, total: number) => Effect.Effect<void>
): Effect.Effect<Verification, Unavailable | CorruptObject, ObjectStore> =>
  Effect.gen(function*() {
    const store = prefixed(yield* ObjectStore, path)
    const manifests = makeManifestStore(store)
    const latest = yield* manifests.log.latest()
    const problems: Array<string> = []
    let objectsChecked = 0
    let bytesChecked = 0
    if (latest === undefined) return { objectsChecked, bytesChecked, problems }
    const m = latest.value
    const tables = [...m.l0, ...m.runs.flatMap((r) => r.ssts)]
    const wals = (yield* Stream.runCollect(store.list(walPrefix, { startAfter: walKey("", m.walIdFlushed) })).pipe(
      Effect.catchTag("InvalidKey", (e) => Effect.die(e))
    )).map((e) => e.key)
    const total = tables.length + wals.length
    const read = (key: string) =>
      store.get(key).pipe(
        Effect.map((r): Uint8Array | undefined => r.body),
        Effect.catchTag("NotFound", () => Effect.succeed(undefined)),
        Effect.catchTags({ InvalidRange: (e) => Effect.die(e), InvalidKey: (e) => Effect.die(e) })
      )
    for (const t of tables) {
      const key = `sst/${t.id}.sst`
      const bytes = yield* read(key)
      objectsChecked += 1
      if (bytes === undefined) problems.push(`${key}: referenced by manifest ${latest.version} but missing`)
      else {
        bytesChecked += bytes.length
        if (bytes.length !== t.size) problems.push(`${key}: ${bytes.length} bytes, the manifest says ${t.size}`)
        const problem = checkTable(key, bytes, t.entryCount)
        if (problem !== undefined) problems.push(problem)
      }
      yield* progress(objectsChecked, total)
    }
    for (const key of wals) {
      const bytes = yield* read(key)
      objectsChecked += 1
      if (bytes !== undefined) {
        bytesChecked += bytes.length
        try {
          decodeWal(key, bytes)
        } catch (e) {
          problems.push(e instanceof Error ? e.message : String(e))
        }
      }
      yield* progress(objectsChecked, total)
    }
    return { objectsChecked, bytesChecked, problems }
  })

/** Decodes a whole table (footer, index, bloom, every block) and counts its entries. */
const checkTable = (key: string, bytes: Uint8Array, entryCount: number): string | undefined => {
  try {
    const footer = decodeSstFooter(key, bytes.subarray(bytes.length - sstFooterBytes), bytes.length)
    decodeSstBloom(key, bytes.subarray(footer.bloomOffset, footer.bloomOffset + footer.bloomLength))
    const index = decodeSstIndex(key, bytes.subarray(footer.indexOffset, footer.indexOffset + footer.indexLength))
    let entries = 0
    for (const h of index) entries += decodeSstBlock(key, bytes.subarray(h.offset, h.offset + h.length)).starts.length
    if (entries !== entryCount) return `${key}: ${entries} entries, the manifest says ${entryCount}`
    return undefined
  } catch (e) {
    return e instanceof Error ? e.message : String(e)
  }
}
