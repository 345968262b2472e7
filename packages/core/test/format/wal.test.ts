/**
 * The entry encoding and the WAL object: round trips, golden bytes, refusal of caller bugs, and
 * `CorruptObject` (never another exception) for damaged, truncated and arbitrary input.
 */
import { assert, describe, it } from "@effect/vitest"
import {
  compareEntries,
  CorruptObject,
  crc32c,
  decodeWal,
  type Entry,
  encodeWal,
  type WalObject
} from "../../src/internal/format/index.ts"
import { assertCorrupt, entry, fromHex, hex, makeRandom, outcome, plain } from "./helpers.ts"

const roundTrip = (wal: WalObject): void => {
  const decoded = decodeWal("wal/1", encodeWal(wal))
  assert.strictEqual(decoded.kind, wal.kind)
  assert.strictEqual(decoded.writerEpoch, wal.writerEpoch)
  assert.strictEqual(decoded.walId, wal.walId)
  assert.deepStrictEqual(plain(decoded.entries), plain(wal.entries))
}

const golden: WalObject = { writerEpoch: 3, walId: 258, kind: "data", entries: [entry("k1", 1, "put", "v1"), entry("k2", 2, "delete")] }

describe("entry order", () => {
  it("sorts by key ascending, then seq descending", () => {
    const sorted = [entry("", 0), entry("a", 9), entry("a", 1), entry("a", 0), entry("ab", 5), entry("b", 7)]
    const shuffled = [sorted[3]!, sorted[5]!, sorted[0]!, sorted[2]!, sorted[4]!, sorted[1]!]
    assert.deepStrictEqual(plain(shuffled.sort(compareEntries)), plain(sorted))
    assert.strictEqual(compareEntries(entry("a", 1), entry("a", 1, "merge", "v")), 0)
  })
})

describe("WAL object", () => {
  it("round-trips data batches of every entry kind and size", () => {
    const random = makeRandom(3)
    roundTrip(golden)
    roundTrip({
      writerEpoch: Number.MAX_SAFE_INTEGER,
      walId: 0,
      kind: "data",
      entries: [
        entry("", 0), // empty key and value
        entry(new Uint8Array(65535).fill(0xee), Number.MAX_SAFE_INTEGER, "put", random.bytes(1000)), // 64 KiB key
        entry("k", 5, "merge", random.bytes(100_000)),
        entry("k", 5, "delete"), // write order, not sorted: duplicates are the WAL's business
        entry("a", 1, "put", "")
      ]
    })
    roundTrip({ writerEpoch: 1, walId: 1, kind: "data", entries: [] })
    roundTrip({
      writerEpoch: 2,
      walId: 99,
      kind: "data",
      entries: Array.from({ length: 5000 }, (_, i) => entry(random.bytes(i % 50), i, i % 3 === 0 ? "delete" : "put", i % 3 === 0 ? "" : random.bytes(i % 200)))
    })
  })

  it("round-trips a fence", () => {
    roundTrip({ writerEpoch: 4, walId: 259, kind: "fence", entries: [] })
  })

  it("pins the encoding with golden bytes", () => {
    const bytes =
      "4f44574c" + // magic "ODWL"
      "0001" + // format version 1
      "00" + // kind: data
      "0000000000000003" + // writer epoch 3
      "0000000000000102" + // wal id 258
      "00000002" + // 2 entries
      ("00" + "0000000000000001" + "0002" + "6b31" + "00000002" + "7631") + // put seq 1 "k1" = "v1"
      ("01" + "0000000000000002" + "0002" + "6b32" + "00000000") + // delete seq 2 "k2"
      "4bb3b1f0" // crc32c of all the above
    assert.strictEqual(hex(encodeWal(golden)), bytes)
    assert.strictEqual(crc32c(fromHex(bytes.slice(0, -8))), 0x4bb3b1f0)
    const fence = "4f44574c" + "0001" + "01" + "0000000000000004" + "0000000000000103" + "00000000" + "33ec732f"
    assert.strictEqual(hex(encodeWal({ writerEpoch: 4, walId: 259, kind: "fence", entries: [] })), fence)
  })

  it("refuses what it cannot encode with a plain Error (caller bugs)", () => {
    const bad: ReadonlyArray<WalObject> = [
      { writerEpoch: 1, walId: 1, kind: "fence", entries: [entry("k", 1)] },
      { writerEpoch: -1, walId: 1, kind: "data", entries: [] },
      { writerEpoch: 1, walId: 2 ** 53, kind: "data", entries: [] },
      { writerEpoch: 1, walId: 1, kind: "data", entries: [entry(new Uint8Array(65536), 1)] },
      { writerEpoch: 1, walId: 1, kind: "data", entries: [entry("k", -1)] },
      { writerEpoch: 1, walId: 1, kind: "data", entries: [entry("k", 0.5)] },
      { writerEpoch: 1, walId: 1, kind: "data", entries: [entry("k", 1, "delete", "v")] },
      { writerEpoch: 1, walId: 1, kind: "data", entries: [{ ...entry("k", 1), kind: "nope" as Entry["kind"] }] }
    ]
    for (const wal of bad) {
      try {
        encodeWal(wal)
        assert.fail(`encoded ${JSON.stringify(wal)}`)
      } catch (error) {
        assert.instanceOf(error, Error)
        assert.notInstanceOf(error, CorruptObject)
      }
    }
  })

  it("detects every flipped byte and every truncation as CorruptObject", () => {
    const bytes = encodeWal(golden)
    for (let i = 0; i < bytes.length; i++) {
      for (const mask of [0x01, 0x80, 0xff]) {
        const damaged = bytes.slice()
        damaged[i]! ^= mask
        assertCorrupt("wal/1", () => decodeWal("wal/1", damaged), `byte ${i} ^ ${mask}`)
      }
    }
    for (let n = 0; n < bytes.length; n++) assertCorrupt("wal/1", () => decodeWal("wal/1", bytes.subarray(0, n)), `first ${n} bytes`)
    const longer = new Uint8Array(bytes.length + 1)
    longer.set(bytes)
    assertCorrupt("wal/1", () => decodeWal("wal/1", longer), "a trailing byte")
  })

  it("names the reason: magic, version, checksum", () => {
    const bytes = encodeWal(golden)
    const reason = (damage: (b: Uint8Array) => void): string => {
      const b = bytes.slice()
      damage(b)
      try {
        decodeWal("wal/1", b)
      } catch (error) {
        if (error instanceof CorruptObject) return error.message
      }
      return "decoded"
    }
    assert.match(reason((b) => (b[0] = 0)), /^corrupt object wal\/1: bad magic/)
    assert.match(reason((b) => (b[5] = 2)), /unknown WAL format version 2/)
    assert.match(reason((b) => (b[30]! ^= 1)), /checksum mismatch/)
  })

  it("answers CorruptObject or a valid object for arbitrary bytes behind a valid header and checksum", () => {
    // Checksums stop random damage; this drives the structural checks behind them (counts, lengths, kinds).
    const random = makeRandom(11)
    const valid = encodeWal(golden)
    let corrupt = 0
    for (let round = 0; round < 20_000; round++) {
      let body: Uint8Array
      if (round % 2 === 0) {
        body = random.bytes(random.int(80))
        body.set(valid.subarray(0, Math.min(6, body.length)))
      } else {
        body = valid.slice(0, valid.length - 4)
        for (let k = 1 + random.int(3); k > 0; k--) body[6 + random.int(body.length - 6)] = random.u32() & 0xff
      }
      const withCrc = new Uint8Array(body.length + 4)
      withCrc.set(body)
      new DataView(withCrc.buffer).setUint32(body.length, crc32c(body))
      if (outcome("wal/x", () => decodeWal("wal/x", withCrc)) === "corrupt") corrupt++
    }
    assert.isAbove(corrupt, 10_000)
  })
})
