/**
 * The sorted table: round trips, golden bytes, block selection against a brute-force scan, the table's
 * bloom, and `CorruptObject` (never another exception) for damaged, truncated and arbitrary input.
 */
import { assert, describe, it } from "@effect/vitest"
import {
  bloomMayContain,
  compareBytes,
  compareEntries,
  crc32c,
  decodeSstBlock,
  decodeSstBloom,
  decodeSstFooter,
  decodeSstIndex,
  type Entry,
  encodeSst,
  encodeSstInSteps,
  findBlocks,
  type SstBuildOptions,
  sstFooterBytes
} from "../../src/internal/format/index.ts"
import { assertCorrupt, entry, hex, makeRandom, outcome, plain, readSst, utf8 } from "./helpers.ts"

const options: SstBuildOptions = { blockBytesTarget: 4096, bloomBitsPerKey: 10 }

/** Encodes, reads back footer-first, and checks entries, info, footer and index agree. */
const roundTrip = (entries: ReadonlyArray<Entry>, opts: SstBuildOptions = options) => {
  const { bytes, info } = encodeSst(entries, opts)
  const read = readSst("sst/1", bytes)
  assert.deepStrictEqual(plain(read.blocks.flat()), plain(entries))
  const seqs = entries.map((e) => e.seq)
  assert.deepStrictEqual(
    { size: info.size, entryCount: info.entryCount, firstKey: hex(info.firstKey), lastKey: hex(info.lastKey), minSeq: info.minSeq, maxSeq: info.maxSeq },
    {
      size: bytes.length,
      entryCount: entries.length,
      firstKey: hex(entries[0]!.key),
      lastKey: hex(entries[entries.length - 1]!.key),
      minSeq: Math.min(...seqs),
      maxSeq: Math.max(...seqs)
    }
  )
  assert.deepStrictEqual(
    { entryCount: read.footer.entryCount, minSeq: read.footer.minSeq, maxSeq: read.footer.maxSeq, formatVersion: read.footer.formatVersion },
    { entryCount: info.entryCount, minSeq: info.minSeq, maxSeq: info.maxSeq, formatVersion: opts.compress === true ? 2 : 1 }
  )
  read.index.forEach((h, i) => {
    const block = read.blocks[i]!
    assert.strictEqual(hex(h.firstKey), hex(block[0]!.key))
    assert.strictEqual(hex(h.lastKey), hex(block[block.length - 1]!.key))
    // A block closes once it reaches the target: only the last may be smaller.
    if (i < read.index.length - 1) assert.isAtLeast(h.length, Math.min(opts.blockBytesTarget, h.length))
  })
  for (const e of entries) assert.isTrue(bloomMayContain(read.bloom, e.key))
  return { bytes, read }
}

const sorted = (entries: Array<Entry>): Array<Entry> => entries.sort(compareEntries)

const goldenEntries = [entry("a", 2, "put", "x"), entry("a", 1, "delete"), entry("b", 3, "merge", "yz")]
const goldenOptions: SstBuildOptions = { blockBytesTarget: 30, bloomBitsPerKey: 10 }

describe("SST", () => {
  it("round-trips one entry, empty keys and values, and every kind", () => {
    roundTrip([entry("k", 0)])
    roundTrip([entry("", 9, "put", ""), entry("", 8, "delete"), entry("a", 7, "merge", ""), entry("b", Number.MAX_SAFE_INTEGER, "put", "v")])
  })

  it("round-trips many versions of one key spread over many blocks", () => {
    const entries = sorted([
      entry("a", 1000, "put", "first"),
      ...Array.from({ length: 200 }, (_, i) => entry("key", 500 - i, i % 7 === 0 ? "delete" : i % 2 === 0 ? "merge" : "put", i % 7 === 0 ? "" : `v${i}`)),
      entry("z", 1)
    ])
    const { read } = roundTrip(entries, { blockBytesTarget: 100, bloomBitsPerKey: 10 })
    assert.isAbove(read.index.length, 30)
    const key = utf8("key")
    const holding = read.blocks.flatMap((block, i) => (block.some((e) => compareBytes(e.key, key) === 0) ? [i] : []))
    assert.isAbove(holding.length, 30)
    assert.deepStrictEqual(findBlocks(read.index, key, utf8("key\0")).map((h) => read.index.indexOf(h)), holding)
  })

  it("round-trips 64 KiB keys and large values", () => {
    const random = makeRandom(5)
    const big = (fill: number) => new Uint8Array(65535).fill(fill)
    roundTrip(sorted([entry(big(1), 3, "put", random.bytes(300_000)), entry(big(1), 2), entry(big(2), 1, "put", ""), entry("small", 4, "put", "v")]))
  })

  it("round-trips thousands of entries in hundreds of blocks", () => {
    const random = makeRandom(9)
    const entries = sorted(Array.from({ length: 20_000 }, (_, i) => entry(`key/${(i * 7919) % 20_000}`, i + 1, "put", random.bytes(i % 64))))
    const { read } = roundTrip(entries, { blockBytesTarget: 1024, bloomBitsPerKey: 10 })
    assert.isAbove(read.index.length, 300)
  })

  it("encodes in slices that pause between them, to the same bytes as in one go", () => {
    const random = makeRandom(11)
    const entries = sorted(Array.from({ length: 5_000 }, (_, i) => entry(`key/${(i * 7919) % 5_000}`, i + 1, "put", random.bytes(i % 32))))
    const opts: SstBuildOptions = { blockBytesTarget: 512, bloomBitsPerKey: 10 }
    const steps = encodeSstInSteps(entries, opts, 1_000)
    let pauses = 0
    let step = steps.next()
    while (step.done !== true) {
      pauses += 1
      step = steps.next()
    }
    // One pause after each slice of 1,000 entries (the blocks are written as they close).
    assert.strictEqual(pauses, 5)
    assert.deepStrictEqual(step.value.bytes, encodeSst(entries, opts).bytes)
  })

  it("pins the encoding with golden bytes", () => {
    const golden =
      // block 0 at 0, 41 bytes: 2 entries
      "00000002" +
      ("00" + "0000000000000002" + "0001" + "61" + "00000001" + "78") + // put seq 2 "a" = "x"
      ("01" + "0000000000000001" + "0001" + "61" + "00000000") + // delete seq 1 "a"
      "3d2c53fe" + // crc32c of the block
      // block 1 at 41, 26 bytes: 1 entry
      "00000001" +
      ("02" + "0000000000000003" + "0001" + "62" + "00000002" + "797a") + // merge seq 3 "b" = "yz"
      "77a3c58a" +
      // bloom at 67, 13 bytes: k = 7, 64 bits, crc32c
      "07" + "4c04210080104446" + "3ec2ba40" +
      // index at 80, 44 bytes: 2 handles, crc32c
      "00000002" +
      ("0000000000000000" + "00000029" + "0001" + "61" + "0001" + "61") + // [0, +41) "a".."a"
      ("0000000000000029" + "0000001a" + "0001" + "62" + "0001" + "62") + // [41, +26) "b".."b"
      "2066df03" +
      // footer at 124, 54 bytes
      "4f445354" + // magic "ODST"
      "0001" + // format version 1
      "0000000000000050" + "0000002c" + // index offset 80, length 44
      "0000000000000043" + "0000000d" + // bloom offset 67, length 13
      "00000003" + // 3 entries
      "0000000000000001" + "0000000000000003" + // min seq 1, max seq 3
      "c45df433" // crc32c of the footer's preceding bytes
    const { bytes, info } = encodeSst(goldenEntries, goldenOptions)
    assert.strictEqual(hex(bytes), golden)
    assert.strictEqual(sstFooterBytes, 54)
    assert.strictEqual(info.size, 178)
    assert.strictEqual(crc32c(bytes.subarray(0, 37)), 0x3d2c53fe)
  })

  it("refuses what it cannot encode with a plain Error (caller bugs)", () => {
    assert.throws(() => encodeSst([], options), /no entries/)
    assert.throws(() => encodeSst([entry("b", 1), entry("a", 1)], options), /out of order/)
    assert.throws(() => encodeSst([entry("a", 1), entry("a", 2)], options), /out of order/)
    assert.throws(() => encodeSst([entry("a", 1), entry("a", 1, "merge", "v")], options), /duplicate/)
    assert.throws(() => encodeSst([entry(new Uint8Array(65536), 1)], options), /exceeds/)
    assert.throws(() => encodeSst([entry("a", 1)], { blockBytesTarget: 0, bloomBitsPerKey: 10 }), /blockBytesTarget/)
    assert.throws(() => encodeSst([entry("a", 1)], { blockBytesTarget: 10, bloomBitsPerKey: 0 }), /bits per key/)
  })

  it("has a bloom that keeps every key and drops most others", () => {
    const entries = sorted(Array.from({ length: 10_000 }, (_, i) => entry(`k${i}`, 1, "put", "v")))
    const { read } = roundTrip(entries)
    const falsePositives = Array.from({ length: 10_000 }, (_, i) => utf8(`absent${i}`)).filter((k) => bloomMayContain(read.bloom, k)).length
    assert.isBelow(falsePositives, 200)
  })
})

describe("SST with compressed blocks", () => {
  const compressible = (n: number) =>
    sorted(Array.from({ length: n }, (_, i) => entry(`series/${String(i).padStart(6, "0")}`, i + 1, "put", `{"__name__":"node_cpu_seconds_total","cpu":"${i % 8}","job":"node"}`)))

  it("round-trips, in far fewer bytes, and reads back as the plain table does", () => {
    const entries = compressible(3000)
    const { bytes: packed } = roundTrip(entries, { ...options, compress: true })
    const { bytes: plainBytes } = roundTrip(entries, options)
    assert.isBelow(packed.length, plainBytes.length / 4)
    // Compressed blocks start with four zero bytes.
    const read = readSst("sst/1", packed)
    assert.deepStrictEqual(Array.from(packed.subarray(read.index[0]!.offset, read.index[0]!.offset + 5)), [0, 0, 0, 0, 1])
  })

  it("keeps a block plain when zstd does not take an eighth off", () => {
    const random = makeRandom(5)
    const noise = sorted(Array.from({ length: 200 }, (_, i) => entry(`k${String(i).padStart(4, "0")}`, 1, "put", Uint8Array.from({ length: 256 }, () => random.int(256)))))
    const { bytes, read } = roundTrip(noise, { ...options, compress: true })
    for (const h of read.index) assert.notDeepEqual(Array.from(bytes.subarray(h.offset, h.offset + 4)), [0, 0, 0, 0])
  })

  it("answers CorruptObject for a damaged compressed block: the checksum catches damage; past it, nothing but CorruptObject", () => {
    const { bytes, read } = roundTrip(compressible(400), { ...options, compress: true })
    const h = read.index[0]!
    const block = bytes.slice(h.offset, h.offset + h.length)
    const reseal = (b: Uint8Array) => {
      const body = b.subarray(0, b.length - 4)
      new DataView(b.buffer, b.byteOffset).setUint32(b.length - 4, crc32c(body))
      return b
    }
    for (let i = 0; i < block.length; i++) {
      const b = block.slice()
      b[i] = b[i]! ^ 0x20
      assertCorrupt("sst/1", () => decodeSstBlock("sst/1", b), `byte ${i} flipped`)
      // With a checksum that matches the damage: a block that still decodes, or CorruptObject.
      if (i < block.length - 4) outcome("sst/1", () => decodeSstBlock("sst/1", reseal(b)))
    }
    // The header's own fields, resealed: an unknown codec, a wrong plain length.
    for (const [at, value] of [[4, 2], [8, 0], [7, 0xff]] as const) {
      const b = block.slice()
      b[at] = value
      assertCorrupt("sst/1", () => decodeSstBlock("sst/1", reseal(b)), `header byte ${at} set to ${value}`)
    }
    for (let n = 0; n < block.length; n++) assertCorrupt("sst/1", () => decodeSstBlock("sst/1", reseal(block.slice(0, Math.max(4, n)))), `cut to ${n}`)
  })
})

describe("findBlocks", () => {
  it("selects exactly the blocks whose key span meets [start, end), covering a brute-force scan", () => {
    const random = makeRandom(2024)
    const alphabet = [0x00, 0x01, 0x7f, 0x80, 0xff]
    const randomKey = () => Uint8Array.from({ length: random.int(4) }, () => alphabet[random.int(alphabet.length)]!)
    const inRange = (key: Uint8Array, start: Uint8Array | undefined, end: Uint8Array | undefined) =>
      (start === undefined || compareBytes(key, start) >= 0) && (end === undefined || compareBytes(key, end) < 0)
    let sharedKeys = 0
    let queries = 0
    for (let round = 0; round < 60; round++) {
      const entries: Array<Entry> = []
      const seen = new Set<string>()
      for (let i = 0; i < 20 + random.int(300); i++) {
        const key = randomKey()
        for (let v = 1 + random.int(6); v > 0; v--) {
          const seq = random.int(1000)
          const id = `${hex(key)}/${seq}`
          if (!seen.has(id)) entries.push(entry(key, seq, "put", random.bytes(random.int(20))))
          seen.add(id)
        }
      }
      sorted(entries)
      const { read } = roundTrip(entries, { blockBytesTarget: 20 + random.int(200), bloomBitsPerKey: 1 + random.int(12) })
      const blockOf = new Map(read.index.map((h, i) => [h, i]))
      let position = 0
      const positions = read.blocks.map((block) => block.map(() => position++))
      for (let i = 1; i < read.index.length; i++) if (compareBytes(read.index[i - 1]!.lastKey, read.index[i]!.firstKey) === 0) sharedKeys++
      for (let q = 0; q < 200; q++, queries++) {
        const start = random.int(5) === 0 ? undefined : randomKey()
        const end = random.int(5) === 0 ? undefined : randomKey()
        const got = findBlocks(read.index, start, end).map((h) => blockOf.get(h)!)
        const overlapping = read.index.flatMap((h, i) =>
          (start === undefined || compareBytes(h.lastKey, start) >= 0) && (end === undefined || compareBytes(h.firstKey, end) < 0) &&
            (start === undefined || end === undefined || compareBytes(start, end) < 0)
            ? [i]
            : []
        )
        assert.deepStrictEqual(got, overlapping)
        // Every entry a scan of the whole table finds in range is in a selected block (positions in `entries`).
        const scanned = entries.flatMap((e, p) => (inRange(e.key, start, end) ? [p] : []))
        const selected = got.flatMap((i) => positions[i]!.filter((p) => inRange(entries[p]!.key, start, end)))
        assert.deepStrictEqual(selected, scanned)
      }
    }
    assert.isAbove(sharedKeys, 100, "keys spanning blocks were exercised")
    assert.strictEqual(queries, 12_000)
  })

  it("handles empty and inverted ranges", () => {
    const { read } = roundTrip(goldenEntries, goldenOptions)
    assert.strictEqual(read.index.length, 2)
    assert.deepStrictEqual(findBlocks(read.index, utf8("a"), utf8("a")), [])
    assert.deepStrictEqual(findBlocks(read.index, utf8("b"), utf8("a")), [])
    assert.deepStrictEqual(findBlocks(read.index, undefined, utf8("a")), [])
    assert.deepStrictEqual(findBlocks(read.index, utf8("b\0"), undefined), [])
    assert.strictEqual(findBlocks(read.index, undefined, undefined).length, 2)
    assert.strictEqual(findBlocks(read.index, utf8("a"), utf8("a\0"))[0], read.index[0])
    assert.strictEqual(findBlocks(read.index, utf8("a\0"), utf8("c"))[0], read.index[1])
    assert.deepStrictEqual(findBlocks([], undefined, undefined), [])
  })
})

describe("SST corruption", () => {
  const { bytes } = encodeSst(goldenEntries, goldenOptions)
  const footer = decodeSstFooter("sst/1", bytes.subarray(bytes.length - sstFooterBytes), bytes.length)
  const index = decodeSstIndex("sst/1", bytes.subarray(footer.indexOffset, footer.indexOffset + footer.indexLength))
  const sections = [
    ...index.map((h, i) => ({ name: `block ${i}`, offset: h.offset, length: h.length, decode: (b: Uint8Array) => decodeSstBlock("sst/1", b) })),
    { name: "bloom", offset: footer.bloomOffset, length: footer.bloomLength, decode: (b: Uint8Array) => decodeSstBloom("sst/1", b) },
    { name: "index", offset: footer.indexOffset, length: footer.indexLength, decode: (b: Uint8Array) => decodeSstIndex("sst/1", b) },
    {
      name: "footer",
      offset: bytes.length - sstFooterBytes,
      length: sstFooterBytes,
      decode: (b: Uint8Array) => decodeSstFooter("sst/1", b, bytes.length)
    }
  ]

  it("has sections that tile the object", () => {
    let at = 0
    for (const s of sections) {
      assert.strictEqual(s.offset, at, s.name)
      at += s.length
    }
    assert.strictEqual(at, bytes.length)
  })

  it("detects every flipped byte, in its section and in a whole read", () => {
    for (const s of sections) {
      const section = bytes.slice(s.offset, s.offset + s.length)
      s.decode(section)
      for (let i = 0; i < section.length; i++) {
        for (const mask of [0x01, 0x80, 0xff]) {
          const damaged = section.slice()
          damaged[i]! ^= mask
          assertCorrupt("sst/1", () => s.decode(damaged), `${s.name} byte ${i} ^ ${mask}`)
          const whole = bytes.slice()
          whole[s.offset + i]! ^= mask
          assertCorrupt("sst/1", () => readSst("sst/1", whole), `object byte ${s.offset + i} ^ ${mask}`)
        }
      }
    }
  })

  it("detects every truncation, of a section and of the object", () => {
    for (const s of sections) {
      const section = bytes.subarray(s.offset, s.offset + s.length)
      for (let n = 0; n < section.length; n++) assertCorrupt("sst/1", () => s.decode(section.subarray(0, n)), `${s.name} cut to ${n}`)
      const longer = new Uint8Array(section.length + 1)
      longer.set(section)
      assertCorrupt("sst/1", () => s.decode(longer), `${s.name} with a trailing byte`)
    }
    for (let n = 0; n < bytes.length; n++) assertCorrupt("sst/1", () => readSst("sst/1", bytes.subarray(0, n)), `object cut to ${n}`)
    // A footer read from an object of another size points outside it.
    const tail = bytes.subarray(bytes.length - sstFooterBytes)
    for (const size of [0, 53, 54, bytes.length - 1, bytes.length + 1, 2 ** 53, Number.NaN]) {
      assertCorrupt("sst/1", () => decodeSstFooter("sst/1", tail, size), `size ${size}`)
    }
  })

  it("names the reason: magic, version, checksum", () => {
    const tail = bytes.slice(bytes.length - sstFooterBytes)
    const reason = (damage: (b: Uint8Array) => void): string => {
      const b = tail.slice()
      damage(b)
      try {
        decodeSstFooter("sst/1", b, bytes.length)
      } catch (error) {
        return (error as Error).message
      }
      return "decoded"
    }
    assert.match(reason((b) => (b[3] = 0)), /^corrupt object sst\/1: bad magic/)
    assert.match(reason((b) => (b[5] = 3)), /unknown SST format version 3/)
    assert.match(reason((b) => (b[20]! ^= 4)), /footer checksum mismatch/)
  })

  it("answers CorruptObject or a valid result for arbitrary sections with valid checksums", () => {
    // Checksums stop random damage; this drives the structural checks behind them (counts, lengths, order).
    const random = makeRandom(77)
    const { bytes: big } = encodeSst(
      sorted(Array.from({ length: 12 }, (_, i) => entry(`k${i % 5}`, i, i % 3 === 1 ? "delete" : "put", i % 3 === 1 ? "" : `v${i}`))),
      { blockBytesTarget: 60, bloomBitsPerKey: 10 }
    )
    const f = decodeSstFooter("sst/1", big.subarray(big.length - sstFooterBytes), big.length)
    const idx = decodeSstIndex("sst/1", big.subarray(f.indexOffset, f.indexOffset + f.indexLength))
    const targets = [
      ...idx.map((h) => ({ section: big.subarray(h.offset, h.offset + h.length), decode: (b: Uint8Array) => decodeSstBlock("sst/1", b) })),
      { section: big.subarray(f.bloomOffset, f.indexOffset), decode: (b: Uint8Array) => decodeSstBloom("sst/1", b) },
      { section: big.subarray(f.indexOffset, big.length - sstFooterBytes), decode: (b: Uint8Array) => decodeSstIndex("sst/1", b) },
      { section: big.subarray(big.length - sstFooterBytes), decode: (b: Uint8Array) => decodeSstFooter("sst/1", b, big.length) }
    ]
    const withCrc = (body: Uint8Array) => {
      const out = new Uint8Array(body.length + 4)
      out.set(body)
      new DataView(out.buffer).setUint32(body.length, crc32c(body))
      return out
    }
    let corrupt = 0
    let rounds = 0
    for (const t of targets) {
      for (let round = 0; round < 4000; round++, rounds++) {
        let body: Uint8Array
        if (round % 4 === 0) {
          body = random.bytes(random.int(t.section.length + 8))
        } else {
          // Keep the footer's magic and version so the damage reaches the fields behind them.
          body = t.section.slice(0, t.section.length - 4)
          const from = t.decode === targets[targets.length - 1]!.decode ? 6 : 0
          for (let k = 1 + random.int(3); k > 0; k--) body[from + random.int(body.length - from)] = random.u32() & 0xff
        }
        if (outcome("sst/1", () => t.decode(withCrc(body))) === "corrupt") corrupt++
      }
    }
    assert.isAbove(corrupt, rounds / 2)
  })
})
