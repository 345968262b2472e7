/**
 * A Db's view of the object store, shared by every role: its keys under the Db's path (`prefixed`, so
 * several Dbs can share one store), where its WAL objects live, and how a write whose outcome stayed
 * unknown after the retries is reported (`settled`: as the store being unavailable).
 */
import { Effect, Stream } from "effect"
import type { ObjectStoreShape } from "../../ObjectStore.ts"
import type { OutcomeUnknown } from "../objectStore/model.ts"
import { Unavailable } from "../objectStore/model.ts"
import { parseVersion, versionKey } from "./versionedLog.ts"

export const walPrefix = "wal/"
export const walKey = (path: string, id: number) => path + versionKey(walPrefix, id) + ".wal"
export const parseWalId = (path: string, key: string) => parseVersion(path + walPrefix, key.replace(/\.wal$/, ""))

const textEncoder = new TextEncoder()

/** A view of a store with every key under `path`. */
export const prefixed = (store: ObjectStoreShape, path: string): ObjectStoreShape => {
  if (path === "") return store
  return {
    ...store,
    name: `${store.name}/${path}`,
    keyBytesMax: store.keyBytesMax - textEncoder.encode(path).length,
    get: (key, range) => store.get(path + key, range),
    head: (key) => store.head(path + key),
    put: (key, body, options) => store.put(path + key, body, options),
    putIfAbsent: (key, body, options) => store.putIfAbsent(path + key, body, options),
    putIfMatch: (key, body, etag, options) => store.putIfMatch(path + key, body, etag, options),
    listPage: (prefix, options) =>
      Effect.map(
        store.listPage(path + prefix, options?.startAfter === undefined ? options : { ...options, startAfter: path + options.startAfter }),
        (page) => ({
          entries: page.entries.map((e) => ({ ...e, key: e.key.slice(path.length) })),
          next: page.next === undefined ? undefined : page.next.slice(path.length)
        })
      ),
    list: (prefix, options) =>
      Stream.map(
        store.list(path + prefix, options?.startAfter === undefined ? options : { ...options, startAfter: path + options.startAfter }),
        (e) => ({ ...e, key: e.key.slice(path.length) })
      ),
    delete: (key) => store.delete(path + key),
    resolvePut: (key, putId) => store.resolvePut(path + key, putId)
  }
}

/** After retries, an unsettled manifest or table write is reported as the store being unavailable. */
export const settled = <A, E>(self: Effect.Effect<A, E | OutcomeUnknown>): Effect.Effect<A, Exclude<E, OutcomeUnknown> | Unavailable> =>
  Effect.mapError(self, (e) =>
    (e as { _tag?: string })._tag === "OutcomeUnknown"
      ? new Unavailable({ operation: (e as OutcomeUnknown).operation, key: (e as OutcomeUnknown).key, reason: (e as OutcomeUnknown).reason })
      : e) as Effect.Effect<A, Exclude<E, OutcomeUnknown> | Unavailable>
