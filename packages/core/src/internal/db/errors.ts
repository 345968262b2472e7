/**
 * The Db's own typed errors, re-exported by `Db.ts` (as are `Fenced` from the manifest store and the
 * object store's errors). They live here, not in `Db.ts`, because the roles in this folder raise them and
 * `Db.ts` imports the roles: defined there, they would make an import cycle.
 */
import { Schema } from "effect"

/** The Db was closed (or failed and closed itself): reopen it. */
export class DbClosed extends Schema.TaggedError<DbClosed>()("DbClosed", { reason: Schema.String }) {
  override get message() {
    return `the Db is closed: ${this.reason}`
  }
}

/** A write to a read-only follower (`layerFollower`): writes go to the process that holds the writer role. */
export class ReadOnly extends Schema.TaggedError<ReadOnly>()("ReadOnly", { path: Schema.String }) {
  override get message() {
    return `the Db${this.path === "" ? "" : ` at ${this.path}`} is a read-only follower here: send writes to the writer`
  }
}

/** Input the Db cannot take: fix it. */
export class InvalidWrite extends Schema.TaggedError<InvalidWrite>()("InvalidWrite", { reason: Schema.String }) {
  override get message() {
    return `invalid write: ${this.reason}`
  }
}
