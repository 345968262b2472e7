/**
 * A put-if-absent that recognises its own earlier attempt. Objects the Db creates (WAL objects, fences,
 * tables) carry a put-id fixed by what they are, not by the attempt: when a retry finds the key taken,
 * reading the put-id back tells our own object (an earlier attempt whose reply was lost) from another
 * writer's.
 */
import { Effect } from "effect"
import type { ObjectStoreShape } from "../../ObjectStore.ts"

/** `written` if the object at `key` is ours (this attempt or an earlier one with `putId`), `taken` if not. */
export const putOnce = (store: ObjectStoreShape, key: string, bytes: Uint8Array, putId: string, mutant?: string) =>
  store.putIfAbsent(key, bytes, { putId }).pipe(
    Effect.as<"written" | "taken">("written"),
    Effect.catchTag("AlreadyExists", () =>
      // The simulation's `forget-ambiguous-put` mutant takes every taken key for another's.
      mutant === "forget-ambiguous-put"
        ? Effect.succeed("taken" as const)
        : Effect.map(store.resolvePut(key, putId), (r) => (r._tag === "Written" ? "written" as const : "taken" as const))),
    Effect.catchTag("InvalidKey", (e) => Effect.die(e))
  )
