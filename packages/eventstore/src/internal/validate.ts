/** Validation of what the EventStore's operations take: synchronous, an error or nothing (or a size). */
import { Effect } from "effect"
import type { AppendOptions, RecordInput } from "../EventStore.ts"
import { InvalidInput, LimitExceeded } from "../EventStore.ts"
import * as Limits from "../limits.ts"
import * as K from "./keys.ts"

export const isCount = (n: unknown): n is number => typeof n === "number" && Number.isSafeInteger(n) && n >= 0

export const keyProblem = (key: string, field = "key") => {
  const problem = K.nameProblem(key, Limits.logKeyBytesMax)
  return problem === undefined ? undefined : new InvalidInput({ field, reason: problem })
}
export const checkKey = (key: string, field = "key") => {
  const problem = keyProblem(key, field)
  return problem === undefined ? Effect.void : Effect.fail(problem)
}
export const tokenProblem = (value: string | undefined, field: string) => {
  if (value === undefined) return undefined
  const problem = K.nameProblem(value, Limits.tokenBytesMax)
  return problem === undefined ? undefined : new InvalidInput({ field, reason: problem })
}
export const checkToken = (value: string | undefined, field: string) => {
  const problem = tokenProblem(value, field)
  return problem === undefined ? Effect.void : Effect.fail(problem)
}

export const recordsProblem = (records: ReadonlyArray<RecordInput>): InvalidInput | LimitExceeded | number => {
  if (!Array.isArray(records) || records.length === 0) return new InvalidInput({ field: "records", reason: "must be a non-empty array" })
  if (records.length > Limits.batchRecordsMax) return new LimitExceeded({ field: "records", limit: Limits.batchRecordsMax })
  let total = 0
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!
    if (!(r.value instanceof Uint8Array)) return new InvalidInput({ field: `records[${i}].value`, reason: "must be bytes" })
    let size = r.value.length
    if (r.headers !== undefined) {
      const entries = Object.entries(r.headers)
      if (entries.length > Limits.headersMax) return new LimitExceeded({ field: `records[${i}].headers`, limit: Limits.headersMax })
      for (const [k, v] of entries) {
        if (typeof v !== "string") return new InvalidInput({ field: `records[${i}].headers.${k}`, reason: "must be a string" })
        const kb = Buffer.byteLength(k, "utf8")
        const vb = Buffer.byteLength(v, "utf8")
        if (kb > Limits.headerBytesMax || vb > Limits.headerBytesMax) {
          return new LimitExceeded({ field: `records[${i}].headers.${k}`, limit: Limits.headerBytesMax })
        }
        size += kb + vb
      }
    }
    if (r.eventTime !== undefined && !isCount(r.eventTime)) {
      return new InvalidInput({ field: `records[${i}].eventTime`, reason: "must be a non-negative integer (ms)" })
    }
    if (size > Limits.recordBytesMax) return new LimitExceeded({ field: `records[${i}]`, limit: Limits.recordBytesMax })
    total += size
  }
  if (total > Limits.batchBytesMax) return new LimitExceeded({ field: "records", limit: Limits.batchBytesMax })
  return total
}

export const appendProblem = (key: string, records: ReadonlyArray<RecordInput>, options: AppendOptions) => {
  const bad = keyProblem(key)
  if (bad !== undefined) return bad
  const total = recordsProblem(records)
  if (typeof total !== "number") return total
  const badToken = tokenProblem(options.fencingToken, "fencingToken") ?? tokenProblem(options.producerId, "producerId")
  if (badToken !== undefined) return badToken
  if (options.expectedOffset !== undefined && !isCount(options.expectedOffset)) {
    return new InvalidInput({ field: "expectedOffset", reason: "must be a non-negative integer" })
  }
  if ((options.producerId === undefined) !== (options.producerSeq === undefined)) {
    return new InvalidInput({ field: "producerSeq", reason: "producerId and producerSeq go together" })
  }
  if (options.producerSeq !== undefined && !isCount(options.producerSeq)) {
    return new InvalidInput({ field: "producerSeq", reason: "must be a non-negative integer" })
  }
  return total
}
