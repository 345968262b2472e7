/**
 * The fuzz suite's case generators, one group per route family. A case is generated from its own PRNG
 * (seed, case index), so any single case can be regenerated and replayed on its own.
 *
 * Each case says what it expects, by construction:
 * - `bad`: input the contract refuses: it must get a 4xx (or, for a WebSocket, be refused before the
 *   upgrade), and when the contract names the status (`statuses`), that status;
 * - `good`: input the contract accepts in any server state: it must get a 2xx (or `statuses`);
 * - `any`: valid-looking input whose answer depends on state or on choices the contract leaves open: it
 *   must only be answered, and not with a 5xx.
 *
 * The control log, its consumer group and the control series (see `Fixtures`) are only ever the target of
 * requests that are bad by construction: a server that wrongly accepts one changes control data, and the
 * suite's final comparison catches that too.
 */
import { RemoteWrite } from "@opendata/tsdb"
import { bytesOf, type RawRequest, type WsAction } from "./client.ts"
import { Prng } from "./prng.ts"

export type Expect = "bad" | "good" | "any"

export type Run =
  | { readonly _tag: "http"; readonly request: RawRequest }
  | { readonly _tag: "ws"; readonly target: string; readonly actions: ReadonlyArray<WsAction> }

export interface Case {
  readonly index: number
  /** The route family (`eventstore.bodies`, `tsdb.remoteWrite`, ...). */
  readonly family: string
  /** Family and variant (`tsdb.remoteWrite.tsZero`): failures are grouped, and a wedge quarantined, by it. */
  readonly generator: string
  readonly expect: Expect
  /** Statuses the contract names for this input, checked on top of `expect`. */
  readonly statuses?: ReadonlyArray<number>
  /** What the case is (and for a bad one, what makes it bad). */
  readonly why: string
  readonly run: Run
}

/** Data written before fuzzing: the control data, and fixtures some cases query. */
export interface Fixtures {
  readonly controlKey: string
  readonly controlGroup: string
  readonly controlSeries: string
  /** A series whose label `v` is `aaaa...!` (for regexes that backtrack catastrophically on it). */
  readonly redosSeries: string
  readonly redosValue: string
  readonly fixtureSeries: string
}

export interface Ctx {
  readonly rng: Prng
  readonly index: number
  /** Read once at the start of the run: generators never read the clock. */
  readonly nowMs: number
  readonly fx: Fixtures
}

type Spec = Omit<Case, "index" | "family" | "generator"> & { readonly variant: string }
type Generator = (ctx: Ctx) => Spec

const enc = encodeURIComponent
const utf8 = new TextEncoder()

// -------------------------------------------------------------------------------------------------
// Building requests
// -------------------------------------------------------------------------------------------------

const http = (
  method: string,
  target: string,
  body?: Uint8Array | string,
  headers: ReadonlyArray<readonly [string, string]> = []
): Run => ({
  _tag: "http",
  request: {
    method,
    target,
    headers,
    ...(body === undefined ? {} : { body: typeof body === "string" ? utf8.encode(body) : body })
  }
})

const json = (method: string, target: string, body: string | undefined) =>
  http(method, target, body, body === undefined ? [] : [["Content-Type", "application/json"]])

/** A query string from (name, value) pairs, both percent-encoded. */
const qs = (pairs: ReadonlyArray<readonly [string, string]>): string =>
  pairs.length === 0 ? "" : `?${pairs.map(([n, v]) => `${enc(n)}=${enc(v)}`).join("&")}`

const form = (pairs: ReadonlyArray<readonly [string, string]>) => pairs.map(([n, v]) => `${enc(n)}=${enc(v)}`).join("&")

const formPost = (path: string, pairs: ReadonlyArray<readonly [string, string]>, query = "") =>
  http("POST", path + query, form(pairs), [["Content-Type", "application/x-www-form-urlencoded"]])

// -------------------------------------------------------------------------------------------------
// Keys
// -------------------------------------------------------------------------------------------------

/** Logs the fuzz cases share (appends, trims, fencing tokens, deletes): their state is anyone's. */
const poolKeys = ["fz/a", "fz/b", "fz/ünï", "fz/" + "x".repeat(300), "fz/c d"]
const poolKey = (ctx: Ctx) => ctx.rng.pick(poolKeys)
/** A log only this case touches: a valid request on it has one answer. */
const freshKey = (ctx: Ctx, tag: string) => `fz-fresh/${ctx.index}/${tag}`
const poolGroups = ["fzg", "fzg/ü", "fzg-2"]

/**
 * The key a case may target: the control log only when `safe` (the case is bad by construction, or cannot
 * change anything), else a pool log or one of the case's own.
 */
const keyFor = (ctx: Ctx, safe: boolean): string =>
  safe && ctx.rng.chance(0.5) ? ctx.fx.controlKey : ctx.rng.chance(0.2) ? freshKey(ctx, "k") : poolKey(ctx)

const groupFor = (ctx: Ctx, bad: boolean, key: string): string =>
  bad && key === ctx.fx.controlKey && ctx.rng.chance(0.7) ? ctx.fx.controlGroup : ctx.rng.pick(poolGroups)

// -------------------------------------------------------------------------------------------------
// EventStore routes, their parameters and bodies
// -------------------------------------------------------------------------------------------------

type EsMethod = "GET" | "POST" | "PUT" | "DELETE"

interface Param {
  readonly name: string
  readonly valid: (ctx: Ctx) => string
  /** Values the contract refuses. */
  readonly invalid: ReadonlyArray<string>
}

/** Wrong spellings of a non-negative decimal integer (`from=1e3`, `limit=-1`, ...). */
const notQueryInts = [
  "-1", "1e3", "abc", "", "01", "1.5", " 1", "+1", "0x10", "99999999999999999", "NaN", "Infinity", "1,2", "١", "1 ",
  "\u0000", "true", "[]", "１", "9".repeat(400)
]

const int = (name: string, valid: ReadonlyArray<string>, extraInvalid: ReadonlyArray<string> = []): Param => ({
  name,
  valid: (ctx) => ctx.rng.pick(valid),
  invalid: [...notQueryInts, ...extraInvalid]
})

const encodingParam: Param = {
  name: "encoding",
  valid: (ctx) => ctx.rng.pick(["utf8", "base64"]),
  invalid: ["", "hex", "BASE64", "utf-8", "base64url", "base64 ", "utf8\u0000", "x".repeat(5000)]
}

const keyProblems = ["\u0000", "a\u0000b", "é".repeat(257)]

interface EsRoute {
  readonly name: string
  readonly path: (key: string, group: string) => string
  readonly methods: ReadonlyArray<EsMethod>
  /** Methods that change state: never sent valid to the control log. */
  readonly destructive: ReadonlyArray<EsMethod>
  readonly params: Partial<Record<EsMethod, ReadonlyArray<Param>>>
  /** Parameters that may not be given together. */
  readonly exclusive?: ReadonlyArray<string>
  readonly ws?: true
}

const esRoutes = (ctx: Ctx): ReadonlyArray<EsRoute> => [
  {
    name: "list",
    path: () => "/v1/logs",
    methods: ["GET"],
    destructive: [],
    params: {
      GET: [
        { name: "prefix", valid: (c) => c.rng.pick(["", "fz", "fz/", "fuzz-control/", "zz", c.rng.text(4)]), invalid: keyProblems },
        { name: "cursor", valid: (c) => c.rng.pick(["fz/a", "a", "fz/b"]), invalid: ["", ...keyProblems] },
        int("limit", ["1", "10", "100", "1000"], ["0", "1001"])
      ]
    }
  },
  { name: "meta", path: (k) => `/v1/logs/${enc(k)}`, methods: ["GET", "DELETE"], destructive: ["DELETE"], params: { GET: [], DELETE: [] } },
  {
    name: "records",
    path: (k) => `/v1/logs/${enc(k)}/records`,
    methods: ["GET", "POST"],
    destructive: ["POST"],
    params: {
      GET: [
        int("from", ["0", "1", "2", "3"]),
        int("fromTime", ["0", "1", String(ctx.nowMs - 3_600_000), String(ctx.nowMs + 3_600_000)]),
        int("limit", ["1", "2", "1000", "10000"], ["0", "10001"]),
        int("maxBytes", ["1", "100", "16777216"], ["0", "16777217"]),
        encodingParam
      ],
      POST: [encodingParam]
    },
    exclusive: ["from", "fromTime"]
  },
  { name: "trim", path: (k) => `/v1/logs/${enc(k)}/trim`, methods: ["POST"], destructive: ["POST"], params: { POST: [] } },
  { name: "fencing-token", path: (k) => `/v1/logs/${enc(k)}/fencing-token`, methods: ["PUT"], destructive: ["PUT"], params: { PUT: [] } },
  { name: "retention", path: (k) => `/v1/logs/${enc(k)}/retention`, methods: ["PUT"], destructive: ["PUT"], params: { PUT: [] } },
  {
    name: "group-offset",
    path: (k, g) => `/v1/groups/${enc(g)}/offsets/${enc(k)}`,
    methods: ["GET", "PUT"],
    destructive: ["PUT"],
    params: { GET: [], PUT: [] }
  },
  {
    name: "tail",
    path: (k) => `/v1/logs/${enc(k)}/tail`,
    methods: ["GET"],
    destructive: [],
    ws: true,
    params: {
      GET: [
        int("from", ["0", "1", "2"]),
        int("fromTime", ["0", String(ctx.nowMs)]),
        { name: "now", valid: (c) => c.rng.pick(["", "true"]), invalid: ["false", "1", "TRUE", "yes", "0"] },
        encodingParam
      ]
    },
    exclusive: ["from", "fromTime", "now"]
  },
  {
    name: "tail-prefix",
    path: () => "/v1/tail",
    methods: ["GET"],
    destructive: [],
    ws: true,
    params: {
      GET: [
        { name: "prefix", valid: (c) => c.rng.pick(["", "fz", "fz/", "fuzz-control/"]), invalid: keyProblems },
        encodingParam
      ]
    }
  }
]

/** Parameter names no route takes (`__proto__` and friends included: they must not slip through). */
const unknownParamNames = [
  "force", "x", "From", "FROM", "offset", "key", "limit[]", "encoding ", "", "__proto__", "constructor", "toString",
  "hasOwnProperty", "cascade", "recursive", "token", "dryRun", "\u0000", "é", "a".repeat(3000)
]

/** A valid body for a route and method (for the control log: one that would change it). */
const validBody = (ctx: Ctx, route: string, method: EsMethod, encoding: string | undefined): string | undefined => {
  const r = ctx.rng
  switch (`${route} ${method}`) {
    case "records POST": {
      const n = r.range(1, 3)
      const records = Array.from({ length: n }, () => ({
        value: encoding === "base64" ? Buffer.from(r.bytes(r.range(0, 12))).toString("base64") : r.text(r.range(0, 12)),
        ...(r.chance(0.3) ? { headers: { [r.alnum(3)]: r.text(3) } } : {}),
        ...(r.chance(0.3) ? { eventTime: ctx.nowMs - r.int(1_000_000) } : {})
      }))
      return JSON.stringify({ records })
    }
    case "trim POST":
      return JSON.stringify({ before: r.range(1, 3) })
    case "fencing-token PUT":
      return JSON.stringify({ token: "fz-token-" + r.alnum(4) })
    case "retention PUT":
      return r.pick([JSON.stringify({ maxAgeMs: 1 }), JSON.stringify({ maxBytes: 1 }), "null", "{}"])
    case "group-offset PUT":
      return JSON.stringify({ offset: r.range(0, 3) })
    default:
      return undefined
  }
}

// --- EventStore: query strings ---------------------------------------------------------------------

/**
 * A route and method of the EventStore with a query string: known parameters with valid or invalid
 * values, unknown parameters, repeated ones, exclusive ones together. Destructive methods carry a valid
 * body, so the parameters are the only thing wrong (on the control log: `DELETE ...?force=true`).
 */
const esParams: Generator = (ctx) => {
  const r = ctx.rng
  const route = r.pick(esRoutes(ctx))
  const method = r.pick(route.methods)
  const known = route.params[method] ?? []
  const pairs: Array<[string, string]> = []
  const problems: Array<string> = []
  for (const p of r.sample(known, r.int(known.length + 1))) {
    if (r.chance(0.25)) {
      const v = r.pick(p.invalid)
      pairs.push([p.name, v])
      problems.push(`${p.name}=${JSON.stringify(v.slice(0, 20))} is invalid`)
    } else pairs.push([p.name, p.valid(ctx)])
  }
  const mode = r.weighted<"unknown" | "repeat" | "exclusive" | "none">([[4, "unknown"], [2, "repeat"], [1, "exclusive"], [2, "none"]])
  let variant = problems.length > 0 ? "invalidValue" : "valid"
  if (mode === "unknown") {
    const name = r.pick(unknownParamNames)
    pairs.splice(r.int(pairs.length + 1), 0, [name, r.pick(["true", "", "1", "x".repeat(r.range(0, 2000))])])
    problems.push(`unknown parameter ${JSON.stringify(name.slice(0, 20))}`)
    variant = "unknownParam"
  } else if (mode === "repeat" && known.length > 0) {
    const p = r.pick(known)
    pairs.push([p.name, p.valid(ctx)], [p.name, p.valid(ctx)])
    problems.push(`${p.name} given twice`)
    variant = "repeatedParam"
  } else if (mode === "exclusive" && route.exclusive !== undefined && route.exclusive.every((n) => known.some((p) => p.name === n))) {
    const [a, b] = r.sample(route.exclusive, 2)
    const pa = known.find((p) => p.name === a)!
    const pb = known.find((p) => p.name === b)!
    if (!pairs.some(([n]) => n === a)) pairs.push([a!, pa.valid(ctx)])
    if (!pairs.some(([n]) => n === b)) pairs.push([b!, pb.valid(ctx)])
    problems.push(`${a} and ${b} together`)
    variant = "exclusiveParams"
  }
  const bad = problems.length > 0
  const destructive = route.destructive.includes(method)
  const key = keyFor(ctx, bad || !destructive)
  const group = groupFor(ctx, bad, key)
  const encoding = pairs.find(([n]) => n === "encoding")?.[1]
  const body = validBody(ctx, route.name, method, encoding)
  const target = route.path(key, group) + qs(pairs)
  if (route.ws === true) {
    return { variant: `tail.${variant}`, expect: bad ? "bad" : "any", ...(bad ? { statuses: [400] } : {}), why: `tail: ${problems.join("; ") || "valid parameters"}`, run: { _tag: "ws", target, actions: [] } }
  }
  return {
    variant,
    expect: bad ? "bad" : "any",
    ...(bad ? { statuses: [400] } : {}),
    why: `${route.name} ${method}: ${problems.join("; ") || "valid parameters"}`,
    run: json(method, target, body)
  }
}

// --- EventStore: JSON bodies -----------------------------------------------------------------------

/** Deeply nested JSON: `[[[...]]]` or `{"a":{"a":...}}`. */
const deep = (ctx: Ctx, depth: number) =>
  ctx.rng.chance(0.5) ? "[".repeat(depth) + "]".repeat(depth) : "{\"a\":".repeat(depth) + "1" + "}".repeat(depth)

/** Bodies the contract refuses, for each body-taking route: wrong types, extra and missing fields... */
const badBodies = (ctx: Ctx, route: string): ReadonlyArray<readonly [() => string, string, ReadonlyArray<number>?]> => {
  const r = ctx.rng
  const v = JSON.stringify(r.text(3))
  switch (route) {
    case "records":
      return [
        [() => "{}", "records missing"],
        [() => "{\"records\":[]}", "no records"],
        [() => "{\"records\":{}}", "records not an array"],
        [() => "{\"records\":[{}]}", "record without value"],
        [() => "{\"records\":[{\"value\":1}]}", "value a number"],
        [() => "{\"records\":[{\"value\":null}]}", "value null"],
        [() => "{\"records\":[{\"value\":[\"a\"]}]}", "value an array"],
        [() => `{"records":[{"value":${v},"extra":1}]}`, "extra record field"],
        [() => `{"records":[{"value":${v}}],"extra":true}`, "extra top-level field"],
        [() => `{"records":[{"value":${v}}],"__proto__":{"x":1}}`, "__proto__ field"],
        [() => `{"records":[{"value":${v},"headers":{"h":1}}]}`, "header value a number"],
        [() => `{"records":[{"value":${v},"headers":[]}]}`, "headers an array"],
        [() => `{"records":[{"value":${v},"headers":{"h":"\\ud800"}}]}`, "lone surrogate in a header"],
        [() => `{"records":[{"value":"\\udfff"}]}`, "lone surrogate in a value"],
        [() => `{"records":[{"value":"a\\ud83d"}]}`, "truncated surrogate pair in a value"],
        [() => `{"records":[{"value":${v},"eventTime":1.5}]}`, "fractional eventTime"],
        [() => `{"records":[{"value":${v},"eventTime":"1"}]}`, "eventTime a string"],
        [() => `{"records":[{"value":${v},"eventTime":-1}]}`, "negative eventTime"],
        [() => `{"records":[{"value":${v},"eventTime":1e300}]}`, "eventTime past the safe integers"],
        [() => `{"records":[{"value":${v}}],"expectedOffset":-1}`, "negative expectedOffset"],
        [() => `{"records":[{"value":${v}}],"expectedOffset":"0"}`, "expectedOffset a string"],
        [() => `{"records":[{"value":${v}}],"expectedOffset":0.5}`, "fractional expectedOffset"],
        [() => `{"records":[{"value":${v}}],"producerId":"p"}`, "producerId without producerSeq"],
        [() => `{"records":[{"value":${v}}],"producerSeq":1}`, "producerSeq without producerId"],
        [() => `{"records":[{"value":${v}}],"producerId":"p","producerSeq":-1}`, "negative producerSeq"],
        [() => `{"records":[{"value":${v}}],"fencingToken":7}`, "fencingToken a number"],
        [() => `{"records":[{"value":${v}}],"fencingToken":""}`, "empty fencingToken"],
        [() => `{"records":[{"value":${v}}],"producerId":"${"p".repeat(300)}","producerSeq":0}`, "producerId over 256 bytes"],
        [() => `{"records":[{"value":${v},"headers":${JSON.stringify(Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`h${i}`, "v"])))}}]}`, "65 headers", [413, 400]],
        [() => `{"records":[${Array.from({ length: 1001 }, () => "{\"value\":\"a\"}").join(",")}]}`, "1001 records", [413]],
        [() => `{"records":[${Array.from({ length: r.range(1001, 200_000) }, () => "1").join(",")}]}`, "a huge records array", [413]],
        [() => `{"records":[{"value":${v},"headers":{"h":${deep(ctx, r.pick([100, 10_000, 100_000]))}}}]}`, "deeply nested header value"],
        [() => `{"records":[{"value":${deep(ctx, r.pick([1000, 100_000]))}}]}`, "deeply nested value"],
        [() => `{"records":[{"value":${v}}],"x":${deep(ctx, 50_000)}}`, "deeply nested extra field"],
        [() => `{"records":[{"value":${v},"headers":{"h":[${Array.from({ length: 100_000 }, (_, i) => i).join(",")}]}}]}`, "huge array as a header value"]
      ]
    case "trim":
      return [
        [() => "{}", "before missing"],
        [() => "{\"before\":-1}", "negative before"],
        [() => "{\"before\":\"1\"}", "before a string"],
        [() => "{\"before\":1.5}", "fractional before"],
        [() => "{\"before\":1e400}", "before Infinity"],
        [() => "{\"before\":9007199254740993}", "before past the safe integers"],
        [() => "{\"before\":null}", "before null"],
        [() => "{\"before\":1,\"extra\":1}", "extra field"],
        [() => "{\"before\":[1]}", "before an array"],
        [() => `{"before":${deep(ctx, 10_000)}}`, "before deeply nested"]
      ]
    case "fencing-token":
      return [
        [() => "{}", "token missing"],
        [() => "{\"token\":5}", "token a number"],
        [() => "{\"token\":\"\\ud800\"}", "lone surrogate token"],
        [() => "{\"token\":\"\"}", "empty token"],
        [() => `{"token":"${"t".repeat(300)}"}`, "token over 256 bytes"],
        [() => "{\"token\":\"a\\u0000b\"}", "token with NUL"],
        [() => "{\"token\":\"a\",\"extra\":1}", "extra field"],
        [() => "{\"token\":\"a\",\"current\":5}", "current a number"],
        [() => "{\"token\":[\"a\"]}", "token an array"]
      ]
    case "retention":
      return [
        [() => "{\"maxAgeMs\":-5}", "negative maxAgeMs"],
        [() => "{\"maxAgeMs\":\"1\"}", "maxAgeMs a string"],
        [() => "{\"maxBytes\":1.5}", "fractional maxBytes"],
        [() => "{\"maxBytes\":1e400}", "maxBytes Infinity"],
        [() => "{\"x\":1}", "unknown field"],
        [() => "{\"maxAgeMs\":1,\"maxage\":1}", "extra field"],
        [() => "[]", "an array"],
        [() => "5", "a number"],
        [() => "\"null\"", "a string"]
      ]
    case "group-offset":
      return [
        [() => "{}", "offset missing"],
        [() => "{\"offset\":-1}", "negative offset"],
        [() => "{\"offset\":\"1\"}", "offset a string"],
        [() => "{\"offset\":0.5}", "fractional offset"],
        [() => "{\"offset\":null}", "offset null"],
        [() => "{\"offset\":1,\"group\":\"g\"}", "extra field"]
      ]
    default:
      return []
  }
}

const bodyRoutes: ReadonlyArray<readonly [string, EsMethod, (k: string, g: string) => string]> = [
  ["records", "POST", (k) => `/v1/logs/${enc(k)}/records`],
  ["trim", "POST", (k) => `/v1/logs/${enc(k)}/trim`],
  ["fencing-token", "PUT", (k) => `/v1/logs/${enc(k)}/fencing-token`],
  ["retention", "PUT", (k) => `/v1/logs/${enc(k)}/retention`],
  ["group-offset", "PUT", (k, g) => `/v1/groups/${enc(g)}/offsets/${enc(k)}`]
]

/** A truncation of valid JSON (always invalid: the outer value closes on the last character). */
const truncate = (ctx: Ctx, text: string) => text.slice(0, ctx.rng.range(1, text.length - 1))

/** JSON bodies: malformed, wrong types, extra fields, deep nesting, huge arrays, not JSON at all. */
const esBodies: Generator = (ctx) => {
  const r = ctx.rng
  const [route, method, path] = r.pick(bodyRoutes)
  const kind = r.weighted<"bad" | "truncated" | "notJson" | "valid" | "bytes">([[8, "bad"], [2, "truncated"], [2, "notJson"], [2, "valid"], [1, "bytes"]])
  const bad = kind !== "valid"
  const key = keyFor(ctx, bad)
  const target = path(key, groupFor(ctx, bad, key))
  if (kind === "valid") {
    const fresh = route === "records" && r.chance(0.5)
    const k = fresh ? freshKey(ctx, "append") : poolKey(ctx)
    return {
      variant: "valid",
      expect: fresh ? "good" : "any",
      ...(fresh ? { statuses: [200] } : {}),
      why: `${route}: a valid body${fresh ? " (fresh log)" : ""}`,
      run: json(method, path(k, r.pick(poolGroups)), validBody(ctx, route, method, undefined))
    }
  }
  if (kind === "truncated") {
    const valid = validBody(ctx, route, method, undefined)!
    if (valid.length < 2) return { variant: "truncated", expect: "bad", statuses: [400], why: `${route}: empty body`, run: json(method, target, "") }
    return { variant: "truncated", expect: "bad", statuses: [400], why: `${route}: truncated JSON`, run: json(method, target, truncate(ctx, valid)) }
  }
  if (kind === "notJson") {
    const text = r.pick(["", " ", "\n", "{", "}", "[", "nul", "undefined", "{'a':1}", "{\"a\":1,}", "\u0000", "NaN", "0x10", "{\"records\":[{\"value\":\"a\"}]}garbage", "\"unterminated", "{\"a\":\"\\x41\"}"])
    return { variant: "notJson", expect: "bad", statuses: [400], why: `${route}: not JSON (${JSON.stringify(text)})`, run: json(method, target, text) }
  }
  if (kind === "bytes") {
    const bytes = r.pick([Uint8Array.from([0xff, 0xfe, 0x7b, 0x7d]), Uint8Array.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d]), r.bytes(r.range(1, 64))])
    // Random bytes are bad unless they happen to be valid JSON of the right shape (never for these routes:
    // a random byte string is not an object with the required field).
    return { variant: "bytes", expect: "bad", why: `${route}: random or non-UTF-8 bytes`, run: http(method, target, bytes, [["Content-Type", "application/json"]]) }
  }
  const [body, why, statuses] = r.pick(badBodies(ctx, route))
  const variant = /nested/.test(why) ? "deepNesting" : /huge|1001|65 headers/.test(why) ? "huge" : /surrogate/.test(why) ? "loneSurrogate" : /extra|unknown field|__proto__/.test(why) ? "extraField" : "wrongType"
  return { variant, expect: "bad", statuses: statuses ?? [400], why: `${route}: ${why}`, run: json(method, target, body()) }
}

// --- EventStore: base64 ----------------------------------------------------------------------------

/** Spellings of "hello" (or other bytes) that are not canonical base64 (RFC 4648 section 4, padded). */
const nonCanonicalBase64 = [
  ["aGVs\\r\\nbG8=", "CRLF inside"],
  ["aGVsbG8=\\n", "trailing newline"],
  ["\\naGVsbG8=", "leading newline"],
  [" aGVsbG8=", "leading space"],
  ["aGVs bG8=", "space inside"],
  ["aGVsbG8", "missing padding"],
  ["aGVsbA", "missing padding (2)"],
  ["aGVsbG8==", "extra padding"],
  ["aGVsbG9=", "non-zero pad bits"],
  ["aGVsbB==", "non-zero pad bits (2)"],
  ["-_8=", "URL alphabet"],
  ["+_8=", "mixed alphabets"],
  ["____", "URL alphabet only"],
  ["====", "padding only"],
  ["=", "one pad"],
  ["a", "one character"],
  ["aGVsbG8=aGVsbG8=", "two padded blocks"],
  ["aGVs\\tbG8=", "tab inside"],
  ["aGVsbG8é", "non-ASCII"],
  ["data:text/plain;base64,aGVsbG8=", "a data URL"],
  ["aGVsbG8%3D", "percent-encoded pad"]
] as const

const esBase64: Generator = (ctx) => {
  const r = ctx.rng
  const kind = r.weighted<"bad" | "mixed" | "good" | "read">([[6, "bad"], [2, "mixed"], [2, "good"], [2, "read"]])
  if (kind === "read") {
    const key = r.chance(0.5) ? ctx.fx.controlKey : poolKey(ctx)
    return { variant: "read", expect: "any", why: "records read in base64", run: http("GET", `/v1/logs/${enc(key)}/records?encoding=base64&from=0`) }
  }
  if (kind === "good") {
    const values = Array.from({ length: r.range(1, 4) }, () => Buffer.from(r.bytes(r.range(0, 40))).toString("base64"))
    return {
      variant: "canonical",
      expect: "good",
      statuses: [200],
      why: `canonical base64 ${JSON.stringify(values[0])}`,
      run: json("POST", `/v1/logs/${enc(freshKey(ctx, "b64"))}/records?encoding=base64`, JSON.stringify({ records: values.map((value) => ({ value })) }))
    }
  }
  const [value, why] = r.pick(nonCanonicalBase64)
  const key = keyFor(ctx, true)
  const records = kind === "mixed"
    ? `[{"value":"aGVsbG8="},{"value":"${value}"},{"value":"d29ybGQ="}]`
    : `[{"value":"${value}"}]`
  return {
    variant: "nonCanonical",
    expect: "bad",
    statuses: [400],
    why: `non-canonical base64: ${why}${kind === "mixed" ? " (second of three records)" : ""}`,
    run: json("POST", `/v1/logs/${enc(key)}/records?encoding=base64`, `{"records":${records}}`)
  }
}

// --- EventStore: odd path segments -----------------------------------------------------------------

/**
 * Key (or group) path segments as sent, each classified by the contract (1..512 bytes of UTF-8, no NUL,
 * one percent-encoded segment): invalid percent-encoding, NUL, lone surrogates, over-long, raw bytes.
 */
const oddSegments = (ctx: Ctx): ReadonlyArray<readonly [string, Expect, string]> => [
  ["%00", "bad", "NUL"],
  ["a%00b", "bad", "NUL inside"],
  ["%ED%A0%80", "bad", "lone high surrogate (UTF-8 encoded)"],
  ["a%ED%BF%BFb", "bad", "lone low surrogate (UTF-8 encoded)"],
  ["%C0%AF", "bad", "overlong UTF-8"],
  ["%E0%80%80", "bad", "overlong UTF-8 (3 bytes)"],
  ["%E2%82", "bad", "truncated UTF-8"],
  ["%FF", "bad", "invalid UTF-8 byte"],
  ["%F4%90%80%80", "bad", "code point past U+10FFFF"],
  ["%", "bad", "lone percent"],
  ["%2", "bad", "truncated escape"],
  ["%G0", "bad", "non-hex escape"],
  ["%%41", "bad", "double percent"],
  [enc("é".repeat(257)), "bad", "514 bytes of UTF-8"],
  ["k".repeat(513), "bad", "513 bytes"],
  ["k".repeat(ctx.rng.range(2_000, 12_000)), "bad", "several KB"],
  ["k".repeat(ctx.rng.range(20_000, 60_000)), "bad", "tens of KB (past the header limit)"],
  ["\u0000", "bad", "raw NUL byte"],
  ["a b", "bad", "raw space"],
  ["a\rb", "bad", "raw CR"],
  [enc("é".repeat(256)), "any", "exactly 512 bytes of UTF-8"],
  ["k".repeat(512), "any", "exactly 512 bytes"],
  ["%2e%2e", "any", "encoded dot-dot"],
  ["..", "any", "raw dot-dot"],
  [".", "any", "raw dot"],
  ["%2F", "any", "an encoded slash alone"],
  ["%252F", "any", "double-encoded slash"],
  ["%25", "any", "an encoded percent"],
  ["+", "any", "a plus"],
  ["%EF%BF%BF", "any", "U+FFFF"],
  ["%F0%9F%99%82", "any", "an emoji"],
  ["%01%1F%7F", "any", "control characters"],
  [bytesOf("é"), "any", "raw UTF-8 bytes"],
  ["\xed\xa0\x80", "any", "raw lone surrogate bytes (WTF-8)"],
  ["\xff\xfe", "any", "raw invalid UTF-8 bytes"],
  [enc(ctx.rng.text(ctx.rng.range(1, 30))), "any", "random text"],
  ["a;b=c", "any", "matrix parameters"],
  ["%3Fx%3D1", "any", "an encoded query"],
  ["%23frag", "any", "an encoded fragment"]
]

const esPaths: Generator = (ctx) => {
  const r = ctx.rng
  const [segment, expect, why] = r.pick(oddSegments(ctx))
  const variant = expect === "bad" ? "badKey" : "oddValidKey"
  const route = r.weighted<string>([[3, "meta"], [3, "records"], [1, "trim"], [1, "fencing-token"], [1, "retention"], [2, "group-key"], [2, "group-name"]])
  // Odd but valid keys are fuzz keys of their own; destructive methods go only with a bad segment.
  const bad = expect === "bad"
  const valid = (rt: string, m: EsMethod) => validBody(ctx, rt, m, undefined)
  switch (route) {
    case "meta": {
      const m: EsMethod = bad ? r.pick(["GET", "DELETE"]) : "GET"
      return { variant, expect, why: `key: ${why}`, run: http(m, `/v1/logs/${segment}`) }
    }
    case "records": {
      const m: EsMethod = r.pick(["GET", "POST"])
      return { variant, expect, why: `key: ${why}`, run: json(m, `/v1/logs/${segment}/records`, m === "POST" ? valid("records", "POST") : undefined) }
    }
    case "group-key":
    case "group-name": {
      const m: EsMethod = r.pick(["GET", "PUT"])
      const target = route === "group-key" ? `/v1/groups/fzg/offsets/${segment}` : `/v1/groups/${segment}/offsets/fz%2Fa`
      return { variant, expect, why: `${route === "group-key" ? "key" : "group"}: ${why}`, run: json(m, target, m === "PUT" ? valid("group-offset", "PUT") : undefined) }
    }
    default: {
      const method: EsMethod = route === "trim" ? "POST" : "PUT"
      if (!bad) return { variant, expect, why: `key: ${why}`, run: http("GET", `/v1/logs/${segment}`) }
      return { variant, expect, why: `key: ${why}`, run: json(method, `/v1/logs/${segment}/${route}`, valid(route, method)) }
    }
  }
}

// -------------------------------------------------------------------------------------------------
// Every route x every method
// -------------------------------------------------------------------------------------------------

interface AnyRoute {
  readonly path: (ctx: Ctx) => string
  readonly allow: ReadonlyArray<string>
}

const allRoutes: ReadonlyArray<AnyRoute> = [
  { path: () => "/v1/logs", allow: ["GET"] },
  { path: (c) => `/v1/logs/${enc(keyFor(c, true))}`, allow: ["GET", "DELETE"] },
  { path: (c) => `/v1/logs/${enc(keyFor(c, true))}/records`, allow: ["GET", "POST"] },
  { path: (c) => `/v1/logs/${enc(keyFor(c, true))}/trim`, allow: ["POST"] },
  { path: (c) => `/v1/logs/${enc(keyFor(c, true))}/fencing-token`, allow: ["PUT"] },
  { path: (c) => `/v1/logs/${enc(keyFor(c, true))}/retention`, allow: ["PUT"] },
  { path: (c) => `/v1/logs/${enc(keyFor(c, true))}/tail`, allow: ["GET"] },
  { path: (c) => `/v1/groups/${enc(c.fx.controlGroup)}/offsets/${enc(c.fx.controlKey)}`, allow: ["GET", "PUT"] },
  { path: () => "/v1/tail", allow: ["GET"] },
  { path: () => "/v1/append", allow: ["GET"] },
  { path: () => "/api/v1/write", allow: ["POST"] },
  { path: () => "/api/v1/query?query=1", allow: ["GET", "POST"] },
  { path: (c) => `/api/v1/query_range?query=1&start=${c.nowMs / 1000 - 60}&end=${c.nowMs / 1000}&step=15`, allow: ["GET", "POST"] },
  { path: () => "/api/v1/format_query?query=1", allow: ["GET", "POST"] },
  { path: () => "/api/v1/parse_query?query=1", allow: ["GET", "POST"] },
  { path: () => "/api/v1/series?match[]=up", allow: ["GET", "POST"] },
  { path: () => "/api/v1/labels", allow: ["GET", "POST"] },
  { path: () => "/api/v1/label/job/values", allow: ["GET"] },
  { path: () => "/api/v1/metadata", allow: ["GET"] },
  { path: () => "/api/v1/status/buildinfo", allow: ["GET"] },
  { path: () => "/api/v1/query_exemplars?query=up", allow: ["GET", "POST"] },
  { path: () => "/-/healthy", allow: ["GET"] },
  { path: () => "/-/ready", allow: ["GET"] },
  { path: () => "/metrics", allow: ["GET"] }
]

/** Every method Node's HTTP parser accepts, and some it does not (it answers those 400 itself). */
const methods = [
  "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "PROPFIND", "PROPPATCH", "MKCOL", "COPY",
  "MOVE", "LOCK", "UNLOCK", "SEARCH", "PURGE", "REPORT", "MKACTIVITY", "CHECKOUT", "MERGE", "M-SEARCH", "NOTIFY",
  "SUBSCRIBE", "UNSUBSCRIBE", "LINK", "UNLINK", "BIND", "REBIND", "UNBIND", "ACL", "SOURCE", "QUERY", "MKCALENDAR",
  "FOO", "get", "Delete", "DELETE\u0000", "G\u00e9T", "X".repeat(300)
]

const methodMatrix: Generator = (ctx) => {
  const r = ctx.rng
  const route = r.pick(allRoutes)
  const path = route.path(ctx)
  const allowedHead = route.allow.includes("GET")
  const method = r.chance(0.08) && allowedHead ? "HEAD" : r.pick(methods.filter((m) => !route.allow.includes(m) && m !== "HEAD"))
  const body = r.chance(0.4) ? r.pick(["{\"records\":[{\"value\":\"a\"}]}", "{\"before\":99}", "{\"token\":\"t\"}", "null", "{\"offset\":0}"]) : undefined
  if (method === "HEAD") return { variant: "head", expect: "any", why: "HEAD on a GET route", run: http("HEAD", path) }
  if (method === "CONNECT") return { variant: "connect", expect: "bad", why: "CONNECT (no proxy here)", run: http("CONNECT", path) }
  return {
    variant: "wrongMethod",
    expect: "bad",
    why: `method ${JSON.stringify(method.slice(0, 12))} not in ${route.allow.join(",")}`,
    run: json(bytesOf(method), path, body)
  }
}

// -------------------------------------------------------------------------------------------------
// Unknown routes (`/` is the web UI's: it redirects to `/query`)
// -------------------------------------------------------------------------------------------------

const unknownRoutes: Generator = (ctx) => {
  const r = ctx.rng
  const [path, expect] = r.pick<readonly [string, Expect]>([
    ["/", "any"], ["/assets/x.js", "bad"], ["/assets/", "bad"], ["/assets/../../etc/passwd", "bad"], ["/query/x", "bad"], ["/v1", "bad"], ["/v1/", "bad"], ["/v1/logs/", "bad"], ["/v1/logsx", "bad"], ["/v1/log", "bad"], ["/v2/logs", "bad"],
    ["/v1/groups", "bad"], ["/v1/groups/", "bad"], ["/v1/groups/g", "bad"], ["/v1/groups/g/offsets", "bad"], ["/v1/groups/g/offsets/k/x", "bad"],
    ["/v1/groups/g/x/k", "bad"], ["/v1/logs/k/records/x", "bad"], ["/v1/logs/k/unknown", "bad"], ["/v1/logs/k/tail/x", "bad"], ["/v1/tail/x", "bad"],
    ["/v1/logs//records", "bad"], ["/api/v1", "bad"], ["/api/v1/", "bad"], ["/api/v1/nope", "bad"], ["/api/v1/label/job", "bad"],
    ["/api/v1/label//values", "bad"], ["/api/v1/label/a-b/values", "any"], ["/api/v1/label/%ZZ/values", "bad"], ["/api/v1/label/0x/values", "any"],
    ["/api/v1/status", "bad"], ["/api/v1/status/config", "any"], ["/api/v1/targets", "bad"], ["/api/v1/rules", "any"], ["/api/v1/alerts", "any"],
    ["/api/v2/write", "bad"], ["/api/v1/write/x", "bad"], ["/-/", "bad"], ["/-/reload", "bad"], ["/-/quit", "bad"], ["/favicon.ico", "bad"],
    ["/..%2f..%2fetc/passwd", "bad"], ["/%00", "bad"], ["/%", "bad"], ["/v1/%", "bad"], ["/api/v1/%E0%A4%A", "bad"],
    ["/" + "a".repeat(r.range(100, 10_000)), "bad"], ["/x?" + "a=1&".repeat(2000), "bad"],
    ["/metrics/", "any"], ["/-/healthy/", "any"], ["/api/v1/query/", "any"], ["/V1/LOGS", "any"], ["//v1/logs", "any"], ["/v1//logs", "any"],
    ["/v1/logs%2Ffz", "any"], ["/v1/logs;x", "any"], ["*", "any"], ["http://example.com/v1/logs", "any"], ["/v1/logs#frag", "any"], ["/./v1/logs", "any"]
  ])
  const method = r.pick(["GET", "GET", "POST", "DELETE", "PUT", "OPTIONS"])
  return { variant: expect === "bad" ? "unknownRoute" : "oddRoute", expect, why: `unknown route ${JSON.stringify(path.slice(0, 40))}`, run: json(method, path, method === "GET" ? undefined : "{}") }
}

// -------------------------------------------------------------------------------------------------
// TSDB: query parameters
// -------------------------------------------------------------------------------------------------

/** Queries that evaluate successfully on any data. */
const goodQueries = (fx: Fixtures) => [
  "1+2", "vector(1)", "up", "time()", fx.controlSeries, `sum(${fx.fixtureSeries})`, `rate(${fx.controlSeries}[5m])`,
  `count by (job) ({__name__=~"fuzz.*"})`, `label_replace(vector(1), "a", "b", "", "")`, `${fx.fixtureSeries} offset 5m`,
  `max_over_time(${fx.controlSeries}[10m:1m])`, `-${fx.fixtureSeries} * 2`, `sort_desc(${fx.controlSeries})`
]

interface TsdbRoute {
  readonly path: string
  readonly methods: ReadonlyArray<"GET" | "POST">
  /** Valid parameters (name, value), required ones always included. */
  readonly valid: (ctx: Ctx) => Array<[string, string]>
  /** One way to make the parameters invalid: (name, value, why); replaces or adds that parameter. */
  readonly invalid: ReadonlyArray<readonly [string, string, string]>
}

const times = (ctx: Ctx) => {
  const end = Math.floor(ctx.nowMs / 1000)
  return { start: String(end - 3600), end: String(end), rfc: new Date(ctx.nowMs - 600_000).toISOString() }
}

const badTimes = [["abc", "not a time"], ["1e999", "a time past float64"], ["2020-13-45T00:00:00Z", "an impossible date"], ["NaN", "NaN"], ["--1", "two signs"], ["1h", "a duration"], ["0x10", "hex"]] as const

const tsdbRoutes = (ctx: Ctx): ReadonlyArray<TsdbRoute> => {
  const r = ctx.rng
  const t = times(ctx)
  const q = () => r.pick(goodQueries(ctx.fx))
  const sel = () => r.pick(["up", ctx.fx.controlSeries, `{__name__="${ctx.fx.fixtureSeries}"}`, `{job=~"fz|control"}`])
  const timeBad = (name: string) => badTimes.map(([v, why]) => [name, v, `${name} is ${why}`] as const)
  const limitBad = [["limit", "-1", "negative limit"], ["limit", "abc", "limit not a number"], ["limit", "1.5", "fractional limit"], ["limit", "1e400", "limit Infinity"]] as const
  const selBad = [["match[]", "", "empty selector"], ["match[]", "{", "unclosed selector"], ["match[]", "up{job=}", "matcher without value"], ["match[]", "{a=~\"(?=x)\"}", "RE2-invalid regex"], ["match[]", "1+1", "an expression, not a selector"]] as const
  return [
    {
      path: "/api/v1/query",
      methods: ["GET", "POST"],
      valid: () => [["query", q()], ...(r.chance(0.7) ? [["time", r.pick([t.end, t.rfc, "", `${t.end}.5`])] as [string, string]] : []), ...(r.chance(0.2) ? [["timeout", r.pick(["10s", "5", "1m"])] as [string, string]] : []), ...(r.chance(0.2) ? [["limit", r.pick(["0", "1", "5"])] as [string, string]] : [])],
      invalid: [["query", "", "empty query"], ["query", "sum(", "unparsable query"], ...timeBad("time"), ["timeout", "abc", "timeout not a duration"], ["timeout", "-1", "negative timeout"], ["timeout", "0", "zero timeout"], ...limitBad]
    },
    {
      path: "/api/v1/query_range",
      methods: ["GET", "POST"],
      valid: () => [["query", q()], ["start", t.start], ["end", t.end], ["step", r.pick(["15", "60", "1m", "30s", "0.5"])]],
      invalid: [["query", "", "empty query"], ...timeBad("start"), ...timeBad("end"), ["step", "0", "zero step"], ["step", "-15", "negative step"], ["step", "abc", "step not a duration"], ["step", "", "empty step"], ["step", "0.001", "too many points"], ["end", "0", "end before start"], ["timeout", "-5s", "negative timeout"]]
    },
    { path: "/api/v1/format_query", methods: ["GET", "POST"], valid: () => [["query", q()]], invalid: [["query", "", "empty query"], ["query", "1 +", "unparsable query"]] },
    { path: "/api/v1/parse_query", methods: ["GET", "POST"], valid: () => [["query", q()]], invalid: [["query", "", "empty query"], ["query", "{}", "empty selector"]] },
    {
      path: "/api/v1/series",
      methods: ["GET", "POST"],
      valid: () => [["match[]", sel()], ...(r.chance(0.3) ? [["match[]", sel()] as [string, string]] : []), ...(r.chance(0.5) ? [["start", t.start], ["end", t.end]] as Array<[string, string]> : []), ...(r.chance(0.3) ? [["limit", "2"] as [string, string]] : [])],
      invalid: [...selBad, ...timeBad("start"), ...timeBad("end"), ["start", String(Number(t.end) + 10), "start after end"], ...limitBad]
    },
    {
      path: "/api/v1/labels",
      methods: ["GET", "POST"],
      valid: () => [...(r.chance(0.5) ? [["match[]", sel()] as [string, string]] : []), ...(r.chance(0.5) ? [["start", t.start], ["end", t.end]] as Array<[string, string]> : [])],
      invalid: [...selBad, ...timeBad("start"), ...limitBad]
    },
    {
      path: `/api/v1/label/${r.pick(["job", "__name__", "instance", "v"])}/values`,
      methods: ["GET"],
      valid: () => [...(r.chance(0.5) ? [["match[]", sel()] as [string, string]] : []), ...(r.chance(0.3) ? [["limit", "3"] as [string, string]] : [])],
      invalid: [...selBad, ...timeBad("end"), ...limitBad]
    },
    { path: "/api/v1/metadata", methods: ["GET"], valid: () => (r.chance(0.5) ? [["metric", r.pick([ctx.fx.controlSeries, "", "nope"])]] : []), invalid: [...limitBad] },
    { path: "/api/v1/status/buildinfo", methods: ["GET"], valid: () => [], invalid: [] },
    { path: "/api/v1/query_exemplars", methods: ["GET", "POST"], valid: () => [["query", "up"], ["start", t.start], ["end", t.end]], invalid: [...timeBad("start"), ["end", "0", "end before start"]] }
  ]
}

const tsdbKnown: Record<string, ReadonlyArray<string>> = {
  "/api/v1/query": ["query", "time", "timeout", "limit"],
  "/api/v1/query_range": ["query", "start", "end", "step", "timeout"],
  "/api/v1/format_query": ["query"],
  "/api/v1/parse_query": ["query"],
  "/api/v1/series": ["match[]", "start", "end", "limit"],
  "/api/v1/labels": ["match[]", "start", "end", "limit"],
  label: ["match[]", "start", "end", "limit"],
  "/api/v1/metadata": ["metric", "limit"],
  "/api/v1/status/buildinfo": [],
  "/api/v1/query_exemplars": ["query", "start", "end"]
}

/**
 * A TSDB route with its parameters in the query string or a form body (or both): valid ones, then maybe
 * one invalid value, an unknown parameter, or a repeated one (`match[]` may repeat).
 */
const tsdbParams: Generator = (ctx) => {
  const r = ctx.rng
  const route = r.pick(tsdbRoutes(ctx))
  const known = tsdbKnown[route.path.startsWith("/api/v1/label/") ? "label" : route.path] ?? []
  const params = route.valid(ctx)
  const mode = r.weighted<"invalid" | "unknown" | "repeat" | "valid">([[4, "invalid"], [3, "unknown"], [2, "repeat"], [2, "valid"]])
  let why = "valid parameters"
  let variant = "valid"
  let expect: Expect = "good"
  if (mode === "invalid" && route.invalid.length > 0) {
    const [name, value, w] = r.pick(route.invalid)
    const at = params.findIndex(([n]) => n === name)
    if (at === -1) params.push([name, value])
    else params[at] = [name, value]
    if (name === "end" && value === "0" && !params.some(([n]) => n === "start")) params.push(["start", times(ctx).start])
    if (name === "start" && route.path === "/api/v1/series" && !params.some(([n]) => n === "end")) params.push(["end", times(ctx).end])
    why = w
    variant = "invalidValue"
    expect = "bad"
  } else if (mode === "unknown") {
    const name = r.pick(["foo", "Query", "query ", "tme", "stepp", "match", "match[", "__proto__", "constructor", "", "x".repeat(3000), "dedup", "partial_response"])
    params.splice(r.int(params.length + 1), 0, [name, r.pick(["1", "", "true"])])
    why = `unknown parameter ${JSON.stringify(name.slice(0, 20))}`
    variant = "unknownParam"
    expect = "bad"
  } else if (mode === "repeat" && known.some((n) => n !== "match[]")) {
    const name = r.pick(known.filter((n) => n !== "match[]"))
    const existing = params.find(([n]) => n === name)
    const value = existing?.[1] ?? (name === "query" ? "1" : name === "limit" ? "1" : times(ctx).end)
    if (existing === undefined) params.push([name, value])
    params.push([name, value])
    why = `${name} given twice`
    variant = "repeatedParam"
    expect = "bad"
  }
  const method = r.pick(route.methods)
  const target = route.path
  const statuses = expect === "bad" ? [400] : [200]
  if (method === "POST" && r.chance(0.8)) {
    // Split between the query string and the form body, as Prometheus merges them.
    const inQuery = params.filter(() => r.chance(0.3))
    const inBody = params.filter((p) => !inQuery.includes(p))
    return { variant, expect, statuses, why: `${route.path} POST: ${why}`, run: formPost(target, inBody, qs(inQuery)) }
  }
  return { variant, expect, statuses, why: `${route.path} ${method}: ${why}`, run: http(method, target + qs(params)) }
}

// -------------------------------------------------------------------------------------------------
// PromQL
// -------------------------------------------------------------------------------------------------

const promqlEndpoints = ["/api/v1/query", "/api/v1/query_range", "/api/v1/format_query", "/api/v1/parse_query"] as const

/** A PromQL text sent to one of the query endpoints (form-encoded POST: some are hundreds of KB). */
const promqlRequest = (ctx: Ctx, query: string, endpoint: string = ctx.rng.pick(promqlEndpoints)): Run => {
  const t = times(ctx)
  const extra: Array<[string, string]> = endpoint === "/api/v1/query_range"
    ? [["start", String(Number(t.end) - 600)], ["end", t.end], ["step", "60"]]
    : endpoint === "/api/v1/query"
    ? [["time", t.end]]
    : []
  const params: Array<[string, string]> = [["query", query], ...extra]
  if (query.length < 2000 && ctx.rng.chance(0.4)) return http("GET", endpoint + qs(params))
  return formPost(endpoint, params)
}

const tokens = [
  "sum", "rate", "(", ")", "{", "}", "[", "]", ",", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "@",
  "bool", "and", "or", "unless", "+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<=", "=~", "!~", "=", "5m", "1h30m", "0s",
  "1", "0x1F", "1e308", "-Inf", "NaN", "Inf", ".5", "\"str\"", "'s'", "`raw`", "up", "job", "__name__", "label_replace", "histogram_quantile",
  "topk", "count_values", "quantile_over_time", "absent", "vector", "scalar", "time", "start()", "end()", ":", "#", "\n", "\"\\u0000\"",
  "\"\\xff\"", "\"\\ud800\"", "'\\'", "timestamp", "step()", "smoothed", "anchored", "limitk", "limit_ratio", "info", "sort_by_label",
  "1e-400", "999999999999999999999", "5y", "1ms", "-", "--", "+-+", "é", "🙂", "\u0000"
]

const corpus = (fx: Fixtures) => [
  ...goodQueries(fx),
  `sum by (job) (rate(${fx.controlSeries}[5m]))`, `histogram_quantile(0.9, rate(x_bucket[5m]))`, `topk(3, ${fx.fixtureSeries})`,
  `${fx.fixtureSeries} and on(job) ${fx.controlSeries}`, `absent(nope)`, `count_values("v", ${fx.fixtureSeries})`,
  `quantile_over_time(0.5, ${fx.controlSeries}[10m])`, `${fx.controlSeries} @ start()`, `predict_linear(${fx.controlSeries}[10m], 60)`,
  `label_join(${fx.fixtureSeries}, "x", ",", "job", "instance")`, `${fx.fixtureSeries}[5m] offset -1m`, `scalar(vector(1)) + 1`
]

const promqlSoup: Generator = (ctx) => {
  const r = ctx.rng
  let query: string
  const variant = r.chance(0.5) ? "tokens" : "mutated"
  if (variant === "tokens") {
    query = Array.from({ length: r.range(1, 25) }, () => r.pick(tokens)).join(r.pick(["", " "]))
  } else {
    // A valid query mutated: characters deleted, inserted, duplicated or swapped.
    query = r.pick(corpus(ctx.fx))
    for (let n = r.range(1, 4); n > 0; n--) {
      const at = r.int(query.length + 1)
      const op = r.int(4)
      query = op === 0
        ? query.slice(0, at) + query.slice(at + 1)
        : op === 1
        ? query.slice(0, at) + r.pick(tokens) + query.slice(at)
        : op === 2
        ? query.slice(0, at) + query.slice(at, at + r.range(1, 10)).repeat(r.range(2, 50)) + query.slice(at)
        : query.slice(0, at) + r.text(1) + query.slice(at)
    }
  }
  return { variant, expect: "any", why: `PromQL soup ${JSON.stringify(query.slice(0, 60))}`, run: promqlRequest(ctx, query) }
}

/** Deeply nested or very long expressions: the parser, checker, printer and evaluator must not overflow. */
const promqlDeep: Generator = (ctx) => {
  const r = ctx.rng
  const [query, expect, why] = r.pick<readonly [() => string, Expect, string]>([
    [() => "(".repeat(10_000) + "1" + ")".repeat(10_000), "any", "10,000 parentheses"],
    [() => "(".repeat(1_000) + "1" + ")".repeat(1_000), "any", "1,000 parentheses"],
    [() => "1+".repeat(50_000) + "1", "any", "50,000 `1+` terms"],
    [() => "1*".repeat(20_000) + "1", "any", "20,000 `1*` terms"],
    [() => "up and ".repeat(10_000) + "up", "any", "10,000 `and` terms"],
    [() => "-".repeat(10_000) + "1", "any", "10,000 unary minus"],
    [() => "+".repeat(10_000) + "1", "any", "10,000 unary plus"],
    [() => "- ".repeat(10_000) + "1", "any", "10,000 spaced unary minus"],
    [() => "-(".repeat(5_000) + "1" + ")".repeat(5_000), "any", "5,000 `-(`"],
    [() => "abs(".repeat(5_000) + "vector(1)" + ")".repeat(5_000), "any", "5,000 nested abs()"],
    [() => "sum(".repeat(3_000) + "up" + ")".repeat(3_000), "any", "3,000 nested sum()"],
    [() => "1" + " + (1".repeat(5_000) + ")".repeat(5_000), "any", "5,000 right-nested additions"],
    [() => "(".repeat(2_000) + "up[5m:1m]" + ")[5m:1m]".repeat(2_000), "any", "2,000 nested subqueries"],
    [() => "2^".repeat(20_000) + "2", "any", "20,000 `^` (right-associative)"],
    [() => "vector(1)" + " + vector(1)".repeat(20_000), "any", "20,000 vector additions"],
    [() => "(".repeat(10_000), "bad", "10,000 unclosed parentheses"],
    [() => ")".repeat(10_000), "bad", "10,000 closing parentheses"],
    [() => "(".repeat(10_000) + "1" + ")".repeat(9_999), "bad", "10,000 parentheses, one unclosed"],
    [() => "1+".repeat(50_000), "bad", "50,000 `1+` and no last operand"],
    [() => "{a=\"" + "\\\\".repeat(50_000) + "\"}", "any", "a long escaped label value"],
    [() => "\"" + "a".repeat(200_000) + "\"", "any", "a 200 KB string literal"],
    [() => "up{" + Array.from({ length: 2_000 }, (_, i) => `l${i}="v"`).join(",") + "}", "any", "2,000 matchers"],
    [() => "label_replace(".repeat(2_000) + "vector(1)" + ",\"a\",\"b\",\"\",\"\")".repeat(2_000), "any", "2,000 nested label_replace"]
  ])
  return { variant: expect === "bad" ? "unbalanced" : "deep", expect, ...(expect === "bad" ? { statuses: [400] } : {}), why: `PromQL ${why}`, run: promqlRequest(ctx, query()) }
}

/**
 * Regexes: ones that backtrack catastrophically in a backtracking engine (RE2, as Prometheus uses, is
 * linear), against a label value written first; and ones RE2 refuses (Prometheus answers 400).
 */
const promqlRegex: Generator = (ctx) => {
  const r = ctx.rng
  const fx = ctx.fx
  const redos = r.pick(["(a+)+b", "(a|a)+b", "(a|aa)+b", "(.*a){20}b", "(a*)*b", "((a+)+)+b"])
  const kind = r.weighted<"redosReplace" | "redosSelector" | "redosMatch" | "re2Invalid" | "re2InvalidMatch">([[2, "redosReplace"], [2, "redosSelector"], [1, "redosMatch"], [3, "re2Invalid"], [2, "re2InvalidMatch"]])
  const invalid = r.pick<readonly [string, string]>([
    ["(?=x)", "lookahead"], ["(?!x)", "negative lookahead"], ["(?<=x)a", "lookbehind"], ["(?<!x)a", "negative lookbehind"],
    ["(a)\\\\1", "backreference"], ["(?<n>a)\\\\k<n>", "named backreference"], ["a{1001}", "repeat count over 1000"], ["a{2000,}", "repeat count over 1000 (open)"],
    ["(?>a)", "atomic group"], ["a++", "possessive quantifier"], ["[a", "unclosed class"], ["(", "unclosed group"], ["*", "nothing to repeat"], ["\\\\", "trailing backslash"]
  ])
  switch (kind) {
    case "redosReplace": {
      const value = "a".repeat(r.pick([30, 40])) + "!"
      return {
        variant: kind,
        expect: "any",
        why: `catastrophic regex ${redos} in label_replace`,
        run: promqlRequest(ctx, `label_replace(label_replace(vector(1),"v","${value}","",""),"w","$1","v","${redos}")`, r.pick(["/api/v1/query", "/api/v1/query_range"]))
      }
    }
    case "redosSelector": {
      const op = r.pick(["=~", "!~"])
      const sel = r.pick([`{v${op}"${redos}"}`, `${fx.redosSeries}{v${op}"${redos}"}`, `count({__name__="${fx.redosSeries}",v${op}"${redos}"})`])
      return { variant: kind, expect: "any", why: `catastrophic regex ${redos} in a selector (against ${fx.redosValue.slice(0, 8)}...!)`, run: promqlRequest(ctx, sel, r.pick(["/api/v1/query", "/api/v1/query_range"])) }
    }
    case "redosMatch": {
      const path = r.pick(["/api/v1/series", "/api/v1/labels", "/api/v1/label/v/values"])
      return { variant: kind, expect: "any", why: `catastrophic regex ${redos} in match[] of ${path}`, run: http("GET", path + qs([["match[]", `{v=~"${redos}"}`]])) }
    }
    case "re2Invalid": {
      const [re, why] = invalid
      // In a selector the regex is refused when parsed (400, on every endpoint); label_replace's regex is a
      // string argument that Prometheus compiles when evaluating (so only queries refuse it: 400 or 422).
      if (r.chance(0.3)) {
        const q = `label_replace(vector(1),"w","$1","v","${re}")`
        return { variant: kind, expect: "bad", statuses: [400, 422], why: `RE2 refuses the regex (${why}): ${q.slice(0, 60)}`, run: promqlRequest(ctx, q, r.pick(["/api/v1/query", "/api/v1/query_range"])) }
      }
      const q = r.pick([`{v=~"${re}"}`, `${fx.fixtureSeries}{job!~"${re}"}`, `sum(rate({__name__=~"${re}"}[5m]))`])
      return { variant: kind, expect: "bad", statuses: [400], why: `RE2 refuses the regex (${why}): ${q.slice(0, 60)}`, run: promqlRequest(ctx, q) }
    }
    case "re2InvalidMatch": {
      const [re, why] = invalid
      const path = r.pick(["/api/v1/series", "/api/v1/labels", "/api/v1/label/job/values"])
      return { variant: kind, expect: "bad", statuses: [400], why: `RE2 refuses the regex (${why}) in match[] of ${path}`, run: http("GET", path + qs([["match[]", `{job=~"${re}"}`]])) }
    }
  }
}

// -------------------------------------------------------------------------------------------------
// Remote write
// -------------------------------------------------------------------------------------------------

type RwSeries = { labels: Array<[string, string]>; samples: Array<{ timestampMs: number; value: number }> }

const protoV1 = "application/x-protobuf"
const protoV2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request"

const rwHeaders = (contentType: string | undefined, encoding: string | undefined = "snappy"): Array<[string, string]> => [
  ...(contentType === undefined ? [] : [["Content-Type", contentType] as [string, string]]),
  ...(encoding === undefined ? [] : [["Content-Encoding", encoding] as [string, string]]),
  ["X-Prometheus-Remote-Write-Version", contentType === protoV2 ? "2.0.0" : "0.1.0"]
]

/** Valid series of this case only (`fz_rw_<case>_<n>`), samples in the last half hour, oldest first. */
const rwSeries = (ctx: Ctx, count = ctx.rng.range(1, 4)): Array<RwSeries> => {
  const r = ctx.rng
  return Array.from({ length: count }, (_, n) => {
    const labels: Array<[string, string]> = [["__name__", `fz_rw_${ctx.index}_${n}`], ["job", "fz"]]
    for (let i = r.int(3); i > 0; i--) labels.push([`l_${r.alnum(4)}`, r.text(r.range(1, 8))])
    const dedup = new Map(labels)
    const base = ctx.nowMs - 1_800_000 + r.int(1_200_000)
    const samples = Array.from({ length: r.range(1, 5) }, (_, i) => ({
      timestampMs: base + i * 15_000,
      value: r.pick([0, 1, -1, 1.5, 1e308, -1e-308, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, r.int(1_000_000)])
    }))
    return { labels: [...dedup], samples }
  })
}

const encode = (v2: boolean, series: Array<RwSeries>, metadata: Array<{ metric: string; type: "gauge" | "counter"; help: string; unit: string }> = []) => {
  const req = { series, metadata, histograms: 0, exemplars: 0 }
  return v2 ? RemoteWrite.encodeWriteRequestV2(req) : RemoteWrite.encodeWriteRequestV1(req)
}

const decodeLimit = 256 * 1024 * 1024

/**
 * Whether the server's decoders would refuse these bytes: used only to classify random bytes, which are
 * almost always refused but may by chance be a valid (e.g. empty) request.
 */
const refusedByDecoder = (body: Uint8Array, v2: boolean): boolean => {
  try {
    const raw = RemoteWrite.snappyDecompress(body, decodeLimit)
    if (v2) RemoteWrite.decodeWriteRequestV2(raw)
    else RemoteWrite.decodeWriteRequestV1(raw)
    return false
  } catch {
    return true
  }
}

/** A varint's bytes. */
const varint = (n: number): Array<number> => {
  const out: Array<number> = []
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80)
    n = Math.floor(n / 0x80)
  }
  out.push(n)
  return out
}

const readVarint = (buf: Uint8Array, at: number): [number, number] => {
  let v = 0
  let mul = 1
  for (;;) {
    const b = buf[at++]!
    v += (b & 0x7f) * mul
    if (b < 0x80) return [v, at]
    mul *= 128
  }
}

interface Field {
  readonly tagAt: number
  readonly field: number
  readonly wire: number
  readonly lenAt: number
  readonly valueAt: number
  readonly end: number
}

/** The fields of a protobuf message in [from, to) (well-formed input: our own encoding). */
const fields = (buf: Uint8Array, from: number, to: number): Array<Field> => {
  const out: Array<Field> = []
  let at = from
  while (at < to) {
    const tagAt = at
    const [tag, afterTag] = readVarint(buf, at)
    const wire = tag & 7
    let valueAt = afterTag
    let end: number
    if (wire === 0) end = readVarint(buf, afterTag)[1]
    else if (wire === 1) end = afterTag + 8
    else if (wire === 5) end = afterTag + 4
    else {
      const [len, v] = readVarint(buf, afterTag)
      valueAt = v
      end = v + len
    }
    out.push({ tagAt, field: tag >>> 3, wire, lenAt: afterTag, valueAt, end })
    at = end
  }
  return out
}

/** Known fields of a v1 request, by path: message fields to descend into. */
const v1Messages: Record<string, Record<number, string | null>> = {
  WriteRequest: { 1: "TimeSeries", 3: "Metadata" },
  TimeSeries: { 1: "Label", 2: "Sample" },
  Label: { 1: null, 2: null },
  Sample: { 1: null, 2: null },
  Metadata: { 1: null, 2: null, 4: null, 5: null }
}

/** Every known field of a v1 request (recursively), for mutations that must make it invalid. */
const v1Fields = (buf: Uint8Array): Array<Field> => {
  const out: Array<Field> = []
  const walk = (message: string, from: number, to: number) => {
    for (const f of fields(buf, from, to)) {
      const known = v1Messages[message]!
      if (!(f.field in known)) continue
      out.push(f)
      const sub = known[f.field]
      if (sub !== null && sub !== undefined) walk(sub, f.valueAt, f.end)
    }
  }
  walk("WriteRequest", 0, buf.length)
  return out
}

const splice = (buf: Uint8Array, at: number, remove: number, insert: ReadonlyArray<number>): Uint8Array =>
  Uint8Array.from([...buf.subarray(0, at), ...insert, ...buf.subarray(at + remove)])

const remoteWrite: Generator = (ctx) => {
  const r = ctx.rng
  const v2 = r.chance(0.3)
  const ct = v2 ? protoV2 : protoV1
  const post = (body: Uint8Array, headers: Array<[string, string]> = rwHeaders(ct), declaredLength?: number): Run => ({
    _tag: "http",
    request: { method: "POST", target: "/api/v1/write", headers, body, ...(declaredLength === undefined ? {} : { declaredLength }) }
  })
  const valid = () => encode(v2, rwSeries(ctx))
  const kind = r.weighted<string>([
    [3, "good"], [2, "randomBytes"], [2, "truncatedSnappy"], [2, "snappyRandomProto"], [3, "wireTypeFlip"], [3, "lengthPastEnd"],
    [2, "truncatedProto"], [2, "tsZero"], [2, "yearOld"], [1, "negativeTs"], [1, "mixedOld"], [2, "v3"], [2, "badMedia"], [1, "badEncoding"],
    [1, "declaredHuge"], [2, "badLabels"], [1, "duplicateTs"], [1, "empty"], [1, "fieldZero"], [1, "versionMismatch"]
  ])
  const snappy = RemoteWrite.snappyCompress
  switch (kind) {
    case "good":
      return { variant: kind, expect: "good", statuses: [204], why: `valid ${v2 ? "2.0" : "1.0"} write`, run: post(snappy(valid())) }
    case "randomBytes": {
      const body = r.bytes(r.range(1, 2000))
      return { variant: kind, expect: refusedByDecoder(body, v2) ? "bad" : "any", why: "random bytes", run: post(body) }
    }
    case "truncatedSnappy": {
      const full = snappy(valid())
      const body = full.subarray(0, r.range(1, full.length - 1))
      return { variant: kind, expect: "bad", statuses: [400], why: `snappy cut at ${body.length} of ${full.length} bytes`, run: post(body) }
    }
    case "snappyRandomProto": {
      const raw = r.bytes(r.range(1, 500))
      const body = snappy(raw)
      return { variant: kind, expect: refusedByDecoder(body, v2) ? "bad" : "any", why: "valid snappy of random protobuf bytes", run: post(body) }
    }
    case "fieldZero": {
      const raw = Uint8Array.from([r.pick([0x00, 0x02, 0x05]), ...r.bytes(r.range(0, 100))])
      return { variant: kind, expect: "bad", statuses: [400], why: "protobuf field number 0", run: post(snappy(raw)) }
    }
    case "wireTypeFlip": {
      const raw = encode(false, rwSeries(ctx))
      const known = v1Fields(raw)
      const f = r.pick(known)
      const wires = [0, 1, 2, 5].filter((w) => w !== f.wire)
      const tag = varint(f.field * 8 + r.pick(wires))
      const body = splice(raw, f.tagAt, f.lenAt - f.tagAt, tag)
      return { variant: kind, expect: "bad", statuses: [400], why: `1.0 request, field ${f.field} at byte ${f.tagAt} with wire type ${f.wire} flipped`, run: post(snappy(body), rwHeaders(protoV1)) }
    }
    case "lengthPastEnd": {
      const raw = encode(false, rwSeries(ctx))
      const lenFields = v1Fields(raw).filter((f) => f.wire === 2)
      const f = r.pick(lenFields)
      const oldLen = f.valueAt - f.lenAt
      const declared = raw.length - f.valueAt + 1 + r.int(r.pick([2, 1000, 1_000_000]))
      const body = splice(raw, f.lenAt, oldLen, varint(declared))
      return { variant: kind, expect: "bad", statuses: [400], why: `1.0 request, field ${f.field} at byte ${f.tagAt} declares ${declared} bytes, past the end`, run: post(snappy(body), rwHeaders(protoV1)) }
    }
    case "truncatedProto": {
      const raw = encode(false, rwSeries(ctx))
      const top = fields(raw, 0, raw.length)
      const f = r.pick(top)
      const cut = r.range(f.tagAt + 1, f.end - 1)
      return { variant: kind, expect: "bad", statuses: [400], why: `1.0 request cut inside a field, at ${cut} of ${raw.length} bytes`, run: post(snappy(raw.subarray(0, cut)), rwHeaders(protoV1)) }
    }
    case "tsZero":
    case "yearOld":
    case "negativeTs": {
      const ts = kind === "tsZero" ? 0 : kind === "yearOld" ? ctx.nowMs - 366 * 86_400_000 : -r.range(1, 1_000_000_000)
      const series: Array<RwSeries> = [{ labels: [["__name__", `fz_rw_${ctx.index}_old`], ["job", "fz"]], samples: [{ timestampMs: ts, value: 1 }] }]
      return { variant: kind, expect: "bad", statuses: [400], why: `${v2 ? "2.0" : "1.0"} sample at ${kind === "tsZero" ? "timestamp 0" : kind === "yearOld" ? "a year ago" : `negative timestamp ${ts}`}: never stored`, run: post(snappy(encode(v2, series))) }
    }
    case "mixedOld": {
      const series = rwSeries(ctx, 1)
      series.push({ labels: [["__name__", `fz_rw_${ctx.index}_old`]], samples: [{ timestampMs: r.pick([0, ctx.nowMs - 366 * 86_400_000]), value: 2 }] })
      return { variant: kind, expect: "bad", statuses: [400], why: "valid samples and one too old in one request", run: post(snappy(encode(v2, series))) }
    }
    case "v3": {
      const type = r.pick([
        "application/x-protobuf;proto=io.prometheus.write.v3.Request",
        "application/x-protobuf; proto=io.prometheus.write.v3.Request",
        "application/x-protobuf;proto=\"io.prometheus.write.v3.Request\"",
        "application/x-protobuf;proto=prometheus.WriteRequestV2",
        "application/x-protobuf;proto=io.prometheus.write.v2.request"
      ])
      return { variant: kind, expect: "bad", statuses: [415], why: `unknown proto message type: ${type}`, run: post(snappy(valid()), rwHeaders(type)) }
    }
    case "badMedia": {
      const type = r.pick(["application/json", "text/plain", "application/octet-stream", "application/x-protobuffer", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"])
      return { variant: kind, expect: "bad", statuses: [415], why: `content type ${type}`, run: post(snappy(valid()), rwHeaders(type)) }
    }
    case "badEncoding": {
      const encoding = r.pick(["gzip", "zstd", "identity", "deflate", "snappy, gzip", "br"])
      return { variant: kind, expect: "bad", statuses: [415], why: `content encoding ${encoding}`, run: post(snappy(valid()), rwHeaders(ct, encoding)) }
    }
    case "declaredHuge":
      return { variant: kind, expect: "bad", statuses: [413], why: "Content-Length of 1 GB (body not sent)", run: post(r.bytes(10), rwHeaders(ct), 1_000_000_000) }
    case "badLabels": {
      const [labels, why] = r.pick<readonly [Array<[string, string]>, string]>([
        [[], "no labels"],
        [[["__name__", `fz_rw_${ctx.index}`], ["0abc", "v"]], "label name starting with a digit"],
        [[["__name__", `fz_rw_${ctx.index}`], ["a-b", "v"]], "label name with a dash"],
        [[["__name__", `fz_rw_${ctx.index}`], ["", "v"]], "empty label name"],
        [[["__name__", `fz_rw_${ctx.index}`], ["job", "a"], ["job", "b"]], "duplicate label name"],
        [[["__name__", `fz_rw_${ctx.index}`], ["é", "v"]], "non-ASCII label name"]
      ])
      const series = [{ labels, samples: [{ timestampMs: ctx.nowMs - 60_000, value: 1 }] }]
      return { variant: kind, expect: "bad", statuses: [400], why: `series with ${why}`, run: post(snappy(encode(v2, series))) }
    }
    case "duplicateTs": {
      const ts = ctx.nowMs - 120_000
      const series = [{ labels: [["__name__", `fz_rw_${ctx.index}_dup`]] as Array<[string, string]>, samples: [{ timestampMs: ts, value: 1 }, { timestampMs: ts, value: 2 }] }]
      return { variant: kind, expect: "bad", statuses: [400], why: "two values at one timestamp", run: post(snappy(encode(v2, series))) }
    }
    case "empty": {
      const body = r.pick([new Uint8Array(0), snappy(new Uint8Array(0))])
      return { variant: kind, expect: refusedByDecoder(body, v2) ? "bad" : "any", why: body.length === 0 ? "empty body" : "snappy of nothing (an empty request)", run: post(body) }
    }
    default: {
      // A 2.0 body announced as 1.0 or the other way round.
      const body = snappy(encode(!v2, rwSeries(ctx)))
      return { variant: kind, expect: refusedByDecoder(body, v2) ? "bad" : "any", why: `a ${v2 ? "1.0" : "2.0"} body sent as ${v2 ? "2.0" : "1.0"}`, run: post(body) }
    }
  }
}

// -------------------------------------------------------------------------------------------------
// WebSocket tails
// -------------------------------------------------------------------------------------------------

/** A WebSocket frame as the client writes it (masked unless told), with any header bits and length. */
const frame = (ctx: Ctx, first: number, payload: Uint8Array, opts: { mask?: boolean; length?: number } = {}): Uint8Array => {
  const mask = opts.mask ?? true
  const len = opts.length ?? payload.length
  const head: Array<number> = [first]
  const m = mask ? 0x80 : 0
  if (len < 126) head.push(m | len)
  else if (len < 65536) head.push(m | 126, len >> 8, len & 0xff)
  else {
    head.push(m | 127)
    const big = BigInt(len)
    for (let i = 7; i >= 0; i--) head.push(Number((big >> BigInt(i * 8)) & 0xffn))
  }
  if (!mask) return Uint8Array.from([...head, ...payload])
  const key = ctx.rng.bytes(4)
  return Uint8Array.from([...head, ...key, ...payload.map((b, i) => b ^ key[i % 4]!)])
}

const garbage = (ctx: Ctx): readonly [ReadonlyArray<WsAction>, string] => {
  const r = ctx.rng
  const hello = utf8.encode("hello")
  return r.pick<readonly [ReadonlyArray<WsAction>, string]>([
    [[{ _tag: "text", data: r.text(r.range(1, 100)) }], "random text"],
    [[{ _tag: "text", data: "{\"type\":\"subscribe\",\"key\":\"x\"}" }], "a JSON message"],
    [[{ _tag: "binary", data: r.bytes(r.range(1, 1000)) }], "random binary"],
    [[{ _tag: "text", data: "x".repeat(70 * 1024) }], "a 70 KiB text frame"],
    [[{ _tag: "textBytes", data: Uint8Array.from([0xff, 0xfe, 0xc3, 0x28]) }], "a text frame that is not UTF-8"],
    [[{ _tag: "ping", data: r.bytes(125) }], "a 125-byte ping"],
    [Array.from({ length: 200 }, () => ({ _tag: "text", data: "m" }) as const), "200 small frames"],
    [[{ _tag: "raw", data: frame(ctx, 0x81, hello, { mask: false }) }], "an unmasked client frame"],
    [[{ _tag: "raw", data: frame(ctx, 0x83, hello) }], "reserved opcode 3"],
    [[{ _tag: "raw", data: frame(ctx, 0x8b, hello) }], "reserved control opcode 0xB"],
    [[{ _tag: "raw", data: frame(ctx, 0xc1, hello) }], "RSV1 set without an extension"],
    [[{ _tag: "raw", data: frame(ctx, 0x09, hello) }], "a fragmented ping"],
    [[{ _tag: "raw", data: frame(ctx, 0x80, hello) }], "a continuation with nothing to continue"],
    [[{ _tag: "raw", data: frame(ctx, 0x01, hello) }, { _tag: "raw", data: frame(ctx, 0x81, hello) }], "a new message inside a fragmented one"],
    [[{ _tag: "raw", data: frame(ctx, 0x88, Uint8Array.from([0x03, 0xe7])) }], "a close with code 999"],
    [[{ _tag: "raw", data: frame(ctx, 0x88, Uint8Array.from([0x03])) }], "a close with a 1-byte payload"],
    [[{ _tag: "raw", data: frame(ctx, 0x89, r.bytes(126)) }], "a ping over 125 bytes"],
    [[{ _tag: "raw", data: frame(ctx, 0x82, new Uint8Array(0), { length: 2 ** 53 }) }], "a frame declaring 2^53 bytes"],
    [[{ _tag: "raw", data: Uint8Array.from([0x82, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]) }], "a frame length with the top bit set"],
    [[{ _tag: "raw", data: r.bytes(r.range(1, 300)) }], "random bytes"],
    [[{ _tag: "raw", data: utf8.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n") }], "an HTTP request inside the WebSocket"]
  ])
}

const webSocket: Generator = (ctx) => {
  const r = ctx.rng
  const kind = r.weighted<"badParams" | "rawUpgrade" | "garbage">([[3, "badParams"], [2, "rawUpgrade"], [5, "garbage"]])
  if (kind === "badParams") {
    const [target, why] = r.pick<readonly [string, string]>([
      [`/v1/logs/${enc(ctx.fx.controlKey)}/tail?from=abc`, "from=abc"],
      [`/v1/logs/${enc(ctx.fx.controlKey)}/tail?from=-1`, "from=-1"],
      [`/v1/logs/${enc(ctx.fx.controlKey)}/tail?from=1e3`, "from=1e3"],
      [`/v1/logs/${enc(ctx.fx.controlKey)}/tail?from=1&fromTime=2`, "from and fromTime"],
      [`/v1/logs/${enc(ctx.fx.controlKey)}/tail?now&from=0`, "now and from"],
      [`/v1/logs/${enc(ctx.fx.controlKey)}/tail?now=false`, "now=false"],
      [`/v1/logs/${enc(ctx.fx.controlKey)}/tail?encoding=hex`, "encoding=hex"],
      [`/v1/logs/${enc(ctx.fx.controlKey)}/tail?from=0&from=1`, "from twice"],
      [`/v1/logs/${enc(ctx.fx.controlKey)}/tail?follow=true`, "unknown parameter"],
      [`/v1/logs/${enc(ctx.fx.controlKey)}/tail?__proto__=1`, "unknown parameter __proto__"],
      [`/v1/logs/%00/tail`, "NUL key"],
      [`/v1/logs/%ED%A0%80/tail`, "lone surrogate key"],
      [`/v1/logs/${"k".repeat(513)}/tail`, "513-byte key"],
      ["/v1/tail?prefix=%00", "NUL prefix"],
      ["/v1/tail?prefix=" + "p".repeat(600), "over-long prefix"],
      ["/v1/tail?encoding=base32", "encoding=base32"],
      ["/v1/tail?prefix=a&prefix=b", "prefix twice"],
      ["/v1/tail?from=0", "unknown parameter from"]
    ])
    return { variant: kind, expect: "bad", statuses: [400], why: `tail upgrade with ${why}`, run: { _tag: "ws", target, actions: [] } }
  }
  if (kind === "rawUpgrade") {
    const path = r.pick([`/v1/logs/${enc(poolKey(ctx))}/tail`, "/v1/tail?prefix=fz"])
    const [headers, why, expect] = r.pick<readonly [Array<[string, string]>, string, Expect]>([
      [[], "no Upgrade header (plain GET)", "bad"],
      [[["Upgrade", "websocket"], ["Connection", "Upgrade"]], "no Sec-WebSocket-Key or version", "bad"],
      [[["Upgrade", "websocket"], ["Connection", "Upgrade"], ["Sec-WebSocket-Version", "13"]], "no Sec-WebSocket-Key", "bad"],
      [[["Upgrade", "websocket"], ["Connection", "Upgrade"], ["Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="], ["Sec-WebSocket-Version", "99"]], "WebSocket version 99", "bad"],
      [[["Upgrade", "websocket"], ["Connection", "Upgrade"], ["Sec-WebSocket-Key", "short"], ["Sec-WebSocket-Version", "13"]], "a malformed Sec-WebSocket-Key", "bad"],
      [[["Upgrade", "h2c"], ["Connection", "Upgrade"]], "an h2c upgrade", "bad"],
      [[["Upgrade", "websocket"], ["Connection", "keep-alive"], ["Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="], ["Sec-WebSocket-Version", "13"]], "Connection without Upgrade", "any"]
    ])
    return { variant: kind, expect, why: `raw tail request: ${why}`, run: http("GET", path, undefined, headers) }
  }
  const target = r.pick([
    `/v1/logs/${enc(ctx.fx.controlKey)}/tail?from=0`,
    `/v1/logs/${enc(poolKey(ctx))}/tail`,
    `/v1/logs/${enc(poolKey(ctx))}/tail?now`,
    `/v1/logs/${enc(ctx.fx.controlKey)}/tail?encoding=base64`,
    "/v1/tail?prefix=fz",
    "/v1/tail"
  ])
  const [actions, why] = garbage(ctx)
  return { variant: kind, expect: "any", why: `open tail, then ${why}`, run: { _tag: "ws", target, actions } }
}

// -------------------------------------------------------------------------------------------------
// Append sessions: hostile frames on an open session, bad upgrades
// -------------------------------------------------------------------------------------------------

/**
 * One append frame, usually broken in one way. Frames naming the control log are all refused by
 * construction (a bad field, a bad id, or the control log's fencing token missing is not a guarantee, so
 * never a valid one); valid frames go to pool logs only.
 */
const appendFrame = (ctx: Ctx, base64: boolean): string => {
  const r = ctx.rng
  const id = r.range(0, 1000)
  const pool = poolKey(ctx)
  const value = base64 ? "aGVsbG8=" : "hello"
  const ok = { id, key: pool, records: [{ value }] }
  const control = ctx.fx.controlKey
  return r.pick<() => string>([
    () => JSON.stringify(ok),
    () => JSON.stringify({ ...ok, records: [{ value, headers: { a: "b" }, eventTime: 5 }], producerId: "p", producerSeq: r.range(0, 5) }),
    () => JSON.stringify({ ...ok, key: control, force: true }),
    () => JSON.stringify({ ...ok, key: control, id: -1 }),
    () => JSON.stringify({ ...ok, key: control, id: 1.5 }),
    () => JSON.stringify({ ...ok, key: control, id: "1" }),
    () => JSON.stringify({ ...ok, key: control, id: 2 ** 60 }),
    () => JSON.stringify({ key: control, records: [{ value }] }),
    () => JSON.stringify({ ...ok, key: control, records: [] }),
    () => JSON.stringify({ ...ok, key: control, records: "hello" }),
    () => JSON.stringify({ ...ok, key: control, records: [{ value: 5 }] }),
    () => JSON.stringify({ ...ok, key: control, records: [{ value, eventTime: -1.5 }] }),
    () => JSON.stringify({ ...ok, key: control, records: Array.from({ length: 1001 }, () => ({ value })) }),
    () => JSON.stringify({ ...ok, key: control, expectedOffset: "0" }),
    () => JSON.stringify({ ...ok, key: control, producerId: "p" }),
    () => JSON.stringify({ ...ok, key: control, records: [{ value: base64 ? "aGVsbG8gd29ybGQ=\n" : "\ud800" }] }),
    () => JSON.stringify({ ...ok, key: "" }),
    () => JSON.stringify({ ...ok, key: "\u0000" }),
    () => JSON.stringify({ ...ok, key: "k".repeat(600) }),
    () => `{"id":${id},"key":${JSON.stringify(control)},"records":[{"value":"a"}],"__proto__":{"admin":true}}`,
    () => `{"id":${id},"key":${JSON.stringify(control)},"records":${"[".repeat(5000)}${"]".repeat(5000)}}`,
    () => `{"id":${id},"key":${JSON.stringify(pool)},"records":[{"value":"a"}]`,
    () => "null",
    () => "[]",
    () => String(id),
    () => r.text(r.range(1, 80))
  ])()
}

const appendSession: Generator = (ctx) => {
  const r = ctx.rng
  const kind = r.weighted<"badParams" | "frames" | "garbage">([[2, "badParams"], [6, "frames"], [2, "garbage"]])
  if (kind === "badParams") {
    const [target, why] = r.pick<readonly [string, string]>([
      ["/v1/append?encoding=hex", "encoding=hex"],
      ["/v1/append?prefix=%00", "NUL prefix"],
      ["/v1/append?prefix=" + "p".repeat(600), "over-long prefix"],
      ["/v1/append?prefix=a&prefix=b", "prefix twice"],
      ["/v1/append?from=0", "unknown parameter from"],
      ["/v1/append/x", "a path below the session"]
    ])
    const statuses = why === "a path below the session" ? [404] : [400]
    return { variant: kind, expect: "bad", statuses, why: `append session upgrade with ${why}`, run: { _tag: "ws", target, actions: [] } }
  }
  if (kind === "garbage") {
    const [actions, why] = garbage(ctx)
    return { variant: kind, expect: "any", why: `open append session, then ${why}`, run: { _tag: "ws", target: "/v1/append", actions } }
  }
  const base64 = r.chance(0.3)
  const frames = Array.from({ length: r.range(1, 20) }, () => ({ _tag: "text", data: appendFrame(ctx, base64) }) as const)
  return {
    variant: kind,
    expect: "any",
    why: `append session${base64 ? " (base64)" : ""}: ${frames.length} frames, those on the control log all bad`,
    run: { _tag: "ws", target: base64 ? "/v1/append?encoding=base64" : "/v1/append", actions: frames }
  }
}

// -------------------------------------------------------------------------------------------------
// HTTP framing: chunked bodies, conflicting lengths, bodies over the limits
// -------------------------------------------------------------------------------------------------

const chunked = (parts: ReadonlyArray<string>) => parts.map((p) => `${Buffer.byteLength(p).toString(16)}\r\n${p}\r\n`).join("") + "0\r\n\r\n"

const framing: Generator = (ctx) => {
  const r = ctx.rng
  const kind = r.weighted<string>([[2, "chunked"], [1, "badChunk"], [1, "lengthAndChunked"], [1, "shortLength"], [1, "esOverLimit"], [1, "esDeclaredOver"], [1, "formOverLimit"], [1, "hugeHeader"], [2, "arrowAccept"]])
  const key = keyFor(ctx, true)
  const records = `/v1/logs/${enc(key)}/records`
  const appendJson = JSON.stringify({ records: [{ value: "framed" }] })
  switch (kind) {
    case "chunked": {
      const at = r.range(1, appendJson.length - 1)
      return {
        variant: kind, expect: "good", statuses: [200], why: "a valid append in chunked transfer encoding",
        run: http("POST", `/v1/logs/${enc(freshKey(ctx, "chunked"))}/records`, chunked([appendJson.slice(0, at), appendJson.slice(at)]), [["Transfer-Encoding", "chunked"], ["Content-Type", "application/json"]])
      }
    }
    case "badChunk":
      return { variant: kind, expect: "bad", why: "a chunk size that is not hex", run: http("POST", records, `zz\r\n${appendJson}\r\n0\r\n\r\n`, [["Transfer-Encoding", "chunked"]]) }
    case "lengthAndChunked":
      // RFC 9112 lets a server honour Transfer-Encoding here ("ought to be handled as an error"): a pool log.
      return { variant: kind, expect: "bad", why: "both Content-Length and Transfer-Encoding (request smuggling)", run: http("POST", `/v1/logs/${enc(poolKey(ctx))}/records`, chunked([appendJson]), [["Transfer-Encoding", "chunked"], ["Content-Length", String(appendJson.length)]]) }
    case "shortLength": {
      // The server reads the declared bytes (a truncated JSON body); the rest is a garbage next request.
      const cut = r.range(1, appendJson.length - 1)
      return { variant: kind, expect: "bad", statuses: [400], why: `Content-Length ${cut} of a ${appendJson.length}-byte body`, run: http("POST", records, appendJson, [["Content-Length", String(cut)]]) }
    }
    case "esOverLimit": {
      const path = r.pick([records, `/v1/logs/${enc(key)}/trim`])
      const body = `{"records":[{"value":"${"a".repeat(8 * 1024 * 1024 + r.int(1000))}"}]}`
      return { variant: kind, expect: "bad", statuses: [413], why: `a ${body.length}-byte body (over 8 MiB)`, run: json("POST", path, body) }
    }
    case "esDeclaredOver": {
      const [method, target] = r.pick([["POST", records], ["PUT", `/v1/logs/${enc(key)}/fencing-token`], ["POST", `/v1/logs/${enc(key)}/trim`]] as const)
      return { variant: kind, expect: "bad", statuses: [413], why: "Content-Length of 100 MB (body not sent)", run: { _tag: "http", request: { method, target, body: utf8.encode("{}"), declaredLength: 100_000_000 } } }
    }
    case "formOverLimit": {
      const body = "query=" + "1".repeat(10 * 1024 * 1024 + 10)
      return { variant: kind, expect: "bad", why: "a form body over 10 MiB", run: http("POST", r.pick(["/api/v1/query", "/api/v1/format_query"]), body, [["Content-Type", "application/x-www-form-urlencoded"]]) }
    }
    case "hugeHeader":
      return { variant: kind, expect: "bad", why: "a 40 KB header", run: http("GET", "/v1/logs", undefined, [["X-Big", "b".repeat(40_000)]]) }
    default: {
      const accept = r.pick(["application/vnd.apache.arrow.stream", "application/vnd.apache.arrow.stream;q=0", "application/vnd.apache.arrow.stream;q=abc", "*/*", "application/vnd.apache.arrow.stream, application/json;q=0.1", "APPLICATION/VND.APACHE.ARROW.STREAM", ""])
      const k = r.chance(0.5) ? ctx.fx.controlKey : poolKey(ctx)
      return { variant: kind, expect: "any", why: `records read with Accept ${JSON.stringify(accept)}`, run: http("GET", `/v1/logs/${enc(k)}/records?from=0`, undefined, [["Accept", accept]]) }
    }
  }
}

// -------------------------------------------------------------------------------------------------
// Health and metrics
// -------------------------------------------------------------------------------------------------

const misc: Generator = (ctx) => {
  const r = ctx.rng
  const path = r.pick(["/-/healthy", "/-/ready", "/metrics"])
  const query = r.pick(["", "?x=1", "?name[]=a&name[]=b", "?" + "a".repeat(3000), "?format=json", "?%00=%00"])
  return { variant: "healthAndMetrics", expect: "any", why: `${path}${query.slice(0, 20)}`, run: http(r.pick(["GET", "GET", "HEAD"]), path + query) }
}

// -------------------------------------------------------------------------------------------------
// All families
// -------------------------------------------------------------------------------------------------

/** Route families, their generators, and how often each is drawn. */
export const families: ReadonlyArray<readonly [number, string, Generator]> = [
  [14, "eventstore.params", esParams],
  [14, "eventstore.bodies", esBodies],
  [6, "eventstore.base64", esBase64],
  [8, "eventstore.paths", esPaths],
  [10, "http.methods", methodMatrix],
  [4, "http.unknownRoutes", unknownRoutes],
  [10, "tsdb.params", tsdbParams],
  [7, "promql.soup", promqlSoup],
  [3, "promql.deep", promqlDeep],
  [4, "promql.regex", promqlRegex],
  [13, "tsdb.remoteWrite", remoteWrite],
  [6, "websocket", webSocket],
  [5, "eventstore.appendSession", appendSession],
  [3, "http.framing", framing],
  [1, "misc", misc]
]

/**
 * The sweep: every route with every method it does not take (and HEAD on GET routes), once per run,
 * before the random cases. Routes with a key name the control log: a server that wrongly accepts a method
 * there changes control data.
 */
export const sweepSize = allRoutes.length * methods.length

const sweepCase = (index: number, nowMs: number, fx: Fixtures): Case => {
  const route = allRoutes[Math.floor(index / methods.length)]!
  const method = methods[index % methods.length]!
  const allowed = route.allow.includes(method) || (method === "HEAD" && route.allow.includes("GET"))
  // Fixed choices instead of random ones: `keyFor` then names the control log for a method the route does
  // not take, and a pool log for one it does (a bare `DELETE` of the control log would be valid).
  const fixed = { chance: () => !allowed, pick: <T>(xs: ReadonlyArray<T>) => xs[0]! } as unknown as Prng
  const path = route.path({ rng: fixed, index, nowMs, fx })
  return {
    index,
    family: "http.sweep",
    generator: allowed ? "http.sweep.allowed" : "http.sweep.wrongMethod",
    expect: allowed ? "any" : "bad",
    why: allowed ? `${method} is served here (no body, no parameters)` : `method ${JSON.stringify(method.slice(0, 12))} not in ${route.allow.join(",")}`,
    run: method === "CONNECT" ? http("CONNECT", path) : http(bytesOf(method), path)
  }
}

/**
 * The case at `index` of the run with `seed`: a pure function of the two (and of `nowMs` and the fixture
 * names). Indices below `sweepSize` are the sweep; the rest are drawn from the families by weight.
 */
export const generate = (seed: string, index: number, nowMs: number, fx: Fixtures): Case => {
  if (index < sweepSize) return sweepCase(index, nowMs, fx)
  const rng = new Prng(seed, index)
  const [, family, gen] = rng.weighted(families.map((f) => [f[0], f] as const))
  const { variant, ...spec } = gen({ rng, index, nowMs, fx })
  return { index, family, generator: `${family}.${variant}`, ...spec }
}
