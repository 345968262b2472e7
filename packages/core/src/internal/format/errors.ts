/**
 * The error of the on-disk formats (RFC 0002): an object whose bytes are not a valid encoding.
 */
import { Schema } from "effect"
import { FormatError } from "./bytes.ts"

/**
 * The object's bytes are not a valid encoding: bad magic, unknown format version, checksum mismatch,
 * truncation or a field out of range. Retrying the read will not help unless the read itself was wrong
 * (a short or misplaced range); otherwise the object is damaged and must be restored or rebuilt.
 */
export class CorruptObject extends Schema.TaggedError<CorruptObject>()("CorruptObject", {
  object: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `corrupt object ${this.object}: ${this.reason}`
  }
}

/**
 * Runs a decoder, turning the `FormatError` it throws on malformed input into `CorruptObject` naming the
 * object. Other exceptions are bugs and pass through.
 */
export const decoding = <A>(object: string, decode: () => A): A => {
  try {
    return decode()
  } catch (error) {
    if (error instanceof FormatError) throw new CorruptObject({ object, reason: error.message })
    throw error
  }
}
