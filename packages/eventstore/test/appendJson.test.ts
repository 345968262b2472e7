import { assert, describe, it } from "vitest"
import { takeAppend } from "../src/internal/appendJson.ts"

const text = (b: Uint8Array) => new TextDecoder().decode(b)

describe("append bodies' fast path", () => {
  it("takes the plain shape: values as bytes in one buffer, headers, event times and options as given", () => {
    const taken = takeAppend(
      JSON.parse('{"records":[{"value":"a"},{"value":"héllo ✓","headers":{"h":"v"},"eventTime":-5}],"expectedOffset":3,"producerId":"p","producerSeq":0,"fencingToken":"t"}'),
      false
    )
    assert.isDefined(taken)
    assert.deepStrictEqual(taken!.records.map((r) => [text(r.value), r.headers, r.eventTime]), [["a", undefined, undefined], ["héllo ✓", { h: "v" }, -5]])
    assert.strictEqual(taken!.records[0]!.value.buffer, taken!.records[1]!.value.buffer)
    assert.deepStrictEqual(taken!.options, { expectedOffset: 3, producerId: "p", producerSeq: 0, fencingToken: "t" })
    assert.deepStrictEqual(takeAppend({ records: [] }, false)?.records, [])
    const frame = takeAppend({ id: 7, key: "k", encoding: "utf8", records: [{ value: "x" }] }, true)
    assert.deepStrictEqual(frame?.records.map((r) => text(r.value)), ["x"])
  })

  it("leaves to the schema whatever is not plainly valid", () => {
    const bodies: Array<unknown> = [
      null,
      [],
      "records",
      {},
      { records: {} },
      { records: [{ value: "a" }], extra: 1 },
      { records: [{ value: "a", extra: 1 }] },
      JSON.parse('{"records":[{"value":"a"}],"__proto__":{}}'),
      JSON.parse('{"records":[{"value":"a","__proto__":{}}]}'),
      { records: [{ value: 1 }] },
      { records: [{ value: null }] },
      { records: [{}] },
      { records: [null] },
      { records: [[]] },
      { records: [{ value: "\ud800" }] },
      { records: [{ value: "a", headers: { h: 1 } }] },
      { records: [{ value: "a", headers: { "\udc00": "v" } }] },
      { records: [{ value: "a", headers: { h: "\ud800" } }] },
      { records: [{ value: "a", headers: [] }] },
      { records: [{ value: "a", headers: null }] },
      { records: [{ value: "a", eventTime: 1.5 }] },
      { records: [{ value: "a", eventTime: "1" }] },
      { records: [{ value: "a", eventTime: 2 ** 53 }] },
      { records: [{ value: "a" }], expectedOffset: -1 },
      { records: [{ value: "a" }], expectedOffset: 0.5 },
      { records: [{ value: "a" }], producerSeq: "1" },
      { records: [{ value: "a" }], producerId: 5 },
      { records: [{ value: "a" }], fencingToken: "\ud800" },
      { id: 1, key: "k", records: [{ value: "a" }] }
    ]
    for (const body of bodies) assert.isUndefined(takeAppend(body, false), JSON.stringify(body))
    const frames: Array<unknown> = [
      { key: "k", records: [{ value: "a" }] },
      { id: -1, key: "k", records: [{ value: "a" }] },
      { id: 1.5, key: "k", records: [{ value: "a" }] },
      { id: 1, key: 3, records: [{ value: "a" }] },
      { id: 1, key: "k", encoding: "base64", records: [{ value: "YQ==" }] },
      { id: 1, key: "k", encoding: "latin1", records: [{ value: "a" }] },
      { id: 1, key: "k", records: [{ value: "a" }], more: true }
    ]
    for (const frame of frames) assert.isUndefined(takeAppend(frame, true), JSON.stringify(frame))
  })
})
