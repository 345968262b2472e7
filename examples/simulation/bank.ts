/**
 * A small app on the core Db: accounts whose balances move by transfers. A transfer is one atomic batch
 * of two merge operands (-amount, +amount) and a count, so money is never created or destroyed, whatever
 * crashes in between.
 */
import { Effect, Stream } from "effect"
import { Db } from "@opendata/core"

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const number = (bytes: Uint8Array | undefined) => (bytes === undefined ? 0 : Number(decoder.decode(bytes)))

/** Balances and counters are decimal integers; merge operands are added. */
export const addition: Db.MergeOperator = (_key, existing, operands) =>
  encoder.encode(String(operands.reduce((sum, o) => sum + number(o), number(existing))))

const account = (id: number) => encoder.encode(`account/${String(id).padStart(4, "0")}`)
const transfers = encoder.encode("stats/transfers")

export const makeBank = (db: Db.DbShape) => ({
  open: (accounts: number, balance: number) =>
    db.write(Array.from({ length: accounts }, (_, i) => ({ _tag: "put" as const, key: account(i), value: encoder.encode(String(balance)) }))),
  transfer: (from: number, to: number, amount: number) =>
    db.write([
      { _tag: "merge", key: account(from), value: encoder.encode(String(-amount)) },
      { _tag: "merge", key: account(to), value: encoder.encode(String(amount)) },
      { _tag: "merge", key: transfers, value: encoder.encode("1") }
    ]),
  /** The sum of all balances, and how many transfers are recorded. */
  audit: Effect.gen(function*() {
    const balances = yield* Stream.runCollect(db.scan({ start: encoder.encode("account/"), end: encoder.encode("account0") }))
    return {
      accounts: balances.length,
      total: balances.reduce((sum, kv) => sum + number(kv.value), 0),
      transfers: number(yield* db.get(transfers))
    }
  })
})
