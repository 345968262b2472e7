/**
 * Opening a writer (RFC 0003, "Opening a writer, and fencing"): bump the writer epoch, replay the WAL
 * after the flushed point into a memtable, claim the next free WAL slot with a fence object, and record
 * the fence (and those of earlier openers met in the replay) in the manifest, so that garbage collection
 * never deletes them and the writers they fenced stay fenced.
 */
import { Clock, Effect, Option, Stream } from "effect"
import type { ResolvedSettings } from "../../Db.ts"
import type { ObjectStoreShape } from "../../ObjectStore.ts"
import { CorruptObject } from "../format/errors.ts"
import { decodeWal, encodeWal } from "../format/wal.ts"
import type { DbManifest } from "./manifest.ts"
import type { ManifestStore } from "./manifestStore.ts"
import { Memtable } from "./memtable.ts"
import { putOnce } from "./putOnce.ts"
import { parseWalId, walKey, walPrefix } from "./storeView.ts"
import type { Versioned } from "./versionedLog.ts"

/** How often a long WAL replay logs its progress. */
const replayLogEveryMs = 1000

export interface Opened {
  readonly manifest: Versioned<DbManifest>
  readonly memtable: Memtable
  readonly lastSeq: number
  readonly fenceWalId: number
}

/**
 * Takes over as the writer: bumps the writer epoch, replays every WAL object after the flushed point into
 * a memtable, and claims the next free WAL slot with a fence object, so the previous writer's next WAL
 * write fails. Records the fence in the manifest so garbage collection never deletes it.
 */
export const openWriter = (
  store: ObjectStoreShape,
  manifests: ManifestStore,
  mutant: ResolvedSettings["simulationMutant"],
  /** Also take the compactor role (a writer that compacts in its own process): fences any compactor process. */
  compactor: boolean
) =>
  Effect.gen(function*() {
    const loaded = yield* manifests.load
    const bumped = yield* manifests.commit(loaded, (m) => ({
      ...m,
      writerEpoch: m.writerEpoch + 1,
      compactorEpoch: compactor ? m.compactorEpoch + 1 : m.compactorEpoch
    }))
    const epoch = bumped.value.writerEpoch
    const memtable = new Memtable()
    let lastSeq = bumped.value.lastSeq
    let walId = bumped.value.walIdFlushed
    // Fences of earlier openers met in the WAL. An opener may have put its fence and failed before
    // recording it: recorded now, it is kept from garbage collection, so the writer it fenced stays fenced.
    const fencesMet: Array<number> = []
    const replay = (id: number) =>
      Effect.gen(function*() {
        const key = walKey("", id)
        const got = yield* store.get(key).pipe(
          Effect.map((r): Uint8Array | undefined => r.body),
          Effect.catchTag("NotFound", () => Effect.succeed(undefined)),
          Effect.catchTags({ InvalidRange: (e) => Effect.die(e), InvalidKey: (e) => Effect.die(e) })
        )
        if (got === undefined) return false
        const wal = yield* Effect.try({
          try: () => decodeWal(key, got),
          catch: (e) => (e instanceof CorruptObject ? e : new CorruptObject({ object: key, reason: String(e) }))
        })
        if (wal.kind === "fence" && mutant !== "unrecorded-fences") fencesMet.push(id)
        for (const e of wal.entries) {
          if (e.seq > lastSeq) {
            memtable.add(e)
            lastSeq = e.seq
          }
        }
        memtable.walIdLast = id
        return true
      })
    // WAL ids are contiguous: replay until the first missing slot.
    const listed = yield* Stream.runCollect(store.list(walPrefix, { startAfter: walKey("", walId) })).pipe(
      Effect.catchTag("InvalidKey", (e) => Effect.die(e))
    )
    const ids = listed.flatMap((e) => Option.toArray(Option.fromUndefinedOr(parseWalId("", e.key)))).sort((a, b) => a - b)
    // A long replay says how far it is, every `replayLogEveryMs`, and how long it took.
    const startedMs = yield* Clock.currentTimeMillis
    let loggedMs = startedMs
    let replayed = 0
    for (const id of ids) {
      if (id !== walId + 1) break
      if (!(yield* replay(id))) break
      walId = id
      replayed++
      const now = yield* Clock.currentTimeMillis
      if (now - loggedMs >= replayLogEveryMs) {
        loggedMs = now
        yield* Effect.logInfo(`replaying the WAL: ${replayed} of ${ids.length} objects, ${memtable.entryCount} entries (${memtable.bytes} bytes), up to seq ${lastSeq}`)
      }
    }
    const tookMs = (yield* Clock.currentTimeMillis) - startedMs
    if (tookMs >= replayLogEveryMs) yield* Effect.logInfo(`replayed ${replayed} WAL objects in ${tookMs} ms, up to seq ${lastSeq}`)
    // Claim the next free slot with a fence. If the previous writer just wrote it, replay that and go on.
    for (;;) {
      const fenceId = walId + 1
      const fence = encodeWal({ writerEpoch: epoch, walId: fenceId, kind: "fence", entries: [] })
      const claimed = (yield* putOnce(store, walKey("", fenceId), fence, `f${epoch}-${fenceId}`, mutant)) === "written"
      if (claimed) {
        memtable.walIdLast = fenceId
        const fences = [...fencesMet, fenceId]
        const manifest = yield* manifests.commit(
          bumped,
          (m) => {
            const missing = fences.filter((f) => !m.walFences.includes(f))
            return missing.length === 0 ? undefined : { ...m, walFences: [...m.walFences, ...missing].sort((x, y) => x - y) }
          },
          { role: "writer", epoch }
        )
        return { manifest, memtable, lastSeq, fenceWalId: fenceId } satisfies Opened
      }
      if (!(yield* replay(fenceId))) return yield* Effect.die(new Error(`WAL slot ${fenceId} is taken but cannot be read`))
      walId = fenceId
    }
  })
