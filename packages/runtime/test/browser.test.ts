/**
 * The web UI in a real browser: Debian's headless Chromium (`/usr/bin/chromium`, or `CHROMIUM_BIN`) driven
 * by playwright-core, against the real server process with series remote-written and records appended.
 * It runs a query and sees a chart with a legend entry per series, a table, and Prometheus's error for a
 * bad query; opens a log and sees its records, turns on Live, appends over HTTP and sees the new records
 * arrive; lists logs; opens Status and sees the build and the cardinality table; and, with auth on, is
 * asked for a token, then works with it (a live tail included: its WebSocket carries the token as a
 * subprotocol). A screenshot of each page goes to `test-artifacts/ui/`.
 *
 * Without Chromium the suite is skipped with a warning, except under `CI=true`, where it fails.
 */
import * as fs from "node:fs"
import * as fsp from "node:fs/promises"
import * as path from "node:path"
import { type Browser, chromium, type Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { RemoteWrite } from "@opendata/tsdb"
import { killAll, type ServerProcess, start, tempDir } from "./process.ts"

const chromiumBin = process.env["CHROMIUM_BIN"] ?? "/usr/bin/chromium"
const available = fs.existsSync(chromiumBin)
const inCi = process.env["CI"] === "true"
const artifacts = path.resolve(import.meta.dirname, "../test-artifacts/ui")

if (!available && !inCi) {
  console.warn(`browser.test.ts: ${chromiumBin} not found; the web UI's browser suite is SKIPPED (apt-get install chromium)`)
}
if (!available && inCi) {
  describe("Chromium in CI", () => {
    it("is installed", () => {
      throw new Error(`${chromiumBin} is missing; CI must install it (apt-get install chromium)`)
    })
  })
}

/** Chromium as this machine runs it: no sandbox as root, and nothing reaching out to the internet. */
const launch = () =>
  chromium.launch({
    executablePath: chromiumBin,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync"
    ]
  })

/** Three series of a counter over the last half hour, 15 s apart. */
const remoteWrite = async (base: string, headers: Record<string, string> = {}) => {
  const now = Math.floor(Date.now() / 15_000) * 15_000
  const series = ["200", "404", "500"].map((code, k) => ({
    labels: [["__name__", "demo_requests_total"], ["code", code], ["job", "web"]] as Array<[string, string]>,
    samples: Array.from({ length: 120 }, (_, i) => ({ timestampMs: now - (119 - i) * 15_000, value: i * (k + 1) }))
  }))
  const res = await fetch(`${base}/api/v1/write`, {
    method: "POST",
    headers: { "content-type": "application/x-protobuf", "content-encoding": "snappy", ...headers },
    body: RemoteWrite.snappyCompress(RemoteWrite.encodeWriteRequestV1({ series, metadata: [], histograms: 0, exemplars: 0 }))
  })
  expect(res.status).toBe(204)
}

const append = async (base: string, key: string, values: Array<string>, headers: Record<string, string> = {}) => {
  const res = await fetch(`${base}/v1/logs/${encodeURIComponent(key)}/records`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ records: values.map((value) => ({ value })) })
  })
  expect(res.status).toBe(200)
  return (await res.json()) as { offsets: Array<number>; next: number }
}

/** A new page that fails the test on any uncaught error in the app. */
const newPage = async (browser: Browser, width = 1280, height = 900) => {
  const page = await browser.newPage({ viewport: { width, height } })
  const errors: Array<string> = []
  page.on("pageerror", (e) => errors.push(e.message))
  return { page, errors }
}

const shot = (page: Page, name: string) => page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true })

/** Types a query into the editor (replacing what is there) and runs it. */
const runQuery = async (page: Page, expr: string) => {
  const editor = page.getByTestId("query-input").first()
  await editor.click()
  await page.keyboard.press("ControlOrMeta+a")
  await page.keyboard.press("Backspace")
  await page.keyboard.type(expr)
  await page.keyboard.press("Escape") // close an autocompletion popup, if any
  await page.getByTestId("run-query").first().click()
}

describe.skipIf(!available)("the web UI in Chromium", () => {
  let server: ServerProcess
  let browser: Browser

  beforeAll(async () => {
    await fsp.mkdir(artifacts, { recursive: true })
    server = await start({ OPENDATA_STORE: "memory" })
    await remoteWrite(server.base)
    await append(server.base, "orders/1", ["created", JSON.stringify({ status: "paid", amount: 42 })])
    await append(server.base, "orders/2", ["created"])
    browser = await launch()
  })
  afterAll(async () => {
    await browser?.close()
    killAll()
  })

  it("graphs a query from the URL: one legend entry per series", async () => {
    const { page, errors } = await newPage(browser)
    await page.goto(`${server.base}/query?expr=${encodeURIComponent("demo_requests_total")}&range=1h&tab=graph`)
    const legend = page.getByTestId("graph-legend").first()
    await expect.poll(() => legend.locator(":scope > *").count(), { timeout: 10_000 }).toBe(3)
    await expect.poll(() => legend.textContent()).toMatch(/code="404"/)
    await expect.poll(() => page.getByTestId("graph").first().locator("canvas").count()).toBeGreaterThan(0)
    await shot(page, "query")
    // A query typed into the editor, then Execute: the chart follows.
    await runQuery(page, "sum by (job) (rate(demo_requests_total[5m]))")
    await expect.poll(() => legend.locator(":scope > *").count(), { timeout: 10_000 }).toBe(1)
    await expect.poll(() => legend.textContent()).toMatch(/job="web"/)
    expect(page.url()).toMatch(/expr=sum/)
    expect(errors).toEqual([])
    await page.close()
  })

  it("shows Prometheus's error for a bad query", async () => {
    const { page, errors } = await newPage(browser)
    // From a link (typing would have the editor close the parenthesis).
    await page.goto(`${server.base}/query?expr=${encodeURIComponent("sum(rate(demo_requests_total[5m])")}&tab=graph`)
    const error = page.getByTestId("query-error").first()
    await expect.poll(() => error.textContent(), { timeout: 10_000 }).toMatch(/unclosed left parenthesis/)
    // Typed: a binary operator without its right-hand side.
    await runQuery(page, "demo_requests_total +")
    await expect.poll(() => error.textContent(), { timeout: 10_000 }).toMatch(/unexpected end of input/)
    await shot(page, "query-error")
    expect(errors).toEqual([])
    await page.close()
  })

  it("tabulates an instant query", async () => {
    const { page, errors } = await newPage(browser)
    await page.goto(`${server.base}/query?expr=${encodeURIComponent("demo_requests_total")}&tab=table`)
    const table = page.getByTestId("result-table").first()
    await expect.poll(() => table.textContent(), { timeout: 10_000 }).toMatch(/code="500"/)
    expect(await table.textContent()).toMatch(/code="200"/)
    await shot(page, "query-table")
    expect(errors).toEqual([])
    await page.close()
  })

  it("lists logs, opens one, and shows records appended while Live is on", async () => {
    const { page, errors } = await newPage(browser)
    await page.goto(`${server.base}/logs`)
    const list = page.getByTestId("log-list")
    await expect.poll(() => list.textContent(), { timeout: 10_000 }).toMatch(/orders\/1/)
    expect(await list.textContent()).toMatch(/orders\/2/)
    await shot(page, "logs-list")

    // A consumer group that committed an offset of the log: the page lists it with its lag.
    const commit = await fetch(`${server.base}/v1/groups/billing/offsets/orders%2F1`, { method: "PUT", body: JSON.stringify({ offset: 1 }) })
    expect(commit.status).toBe(200)
    await page.goto(`${server.base}/logs?key=${encodeURIComponent("orders/1")}`)
    const records = page.getByTestId("log-records")
    await expect.poll(() => records.locator("[data-offset]").count(), { timeout: 10_000 }).toBe(2)
    expect(await records.locator('[data-offset="1"]').textContent()).toMatch(/paid/)
    await expect.poll(() => page.locator('[data-testid="group-row"][data-group="billing"]').textContent(), { timeout: 10_000 }).toMatch(/1\s*1/)
    await page.getByTestId("tail-toggle").click()
    // The tail is open once the server counts its subscriber; then what is appended must show.
    await expect.poll(async () => /opendata_eventstore_tail_subscribers 1\b/.test(await (await fetch(`${server.base}/metrics`)).text()), {
      timeout: 10_000
    }).toBe(true)
    const appendedAt = Date.now()
    await append(server.base, "orders/1", ["shipped", "delivered"])
    await records.locator('[data-offset="3"]').waitFor({ timeout: 10_000 })
    const tookMs = Date.now() - appendedAt
    console.log(`browser.test.ts: a record appended over HTTP showed in the live tail after ${tookMs} ms`)
    expect(await records.locator('[data-offset="2"]').textContent()).toMatch(/shipped/)
    // The log's figures and its groups' lag follow the live records (refreshed a second after them).
    await expect.poll(() => page.locator('[data-testid="group-row"][data-group="billing"]').textContent(), { timeout: 10_000 }).toMatch(/1\s*3/)
    await shot(page, "logs-live")
    expect(errors).toEqual([])
    await page.close()
  })

  it("shows the build and the cardinality on Status", async () => {
    const { page, errors } = await newPage(browser)
    await page.goto(`${server.base}/status`)
    await expect.poll(() => page.getByTestId("status-build").textContent(), { timeout: 10_000 }).toMatch(/Version\s*0\.\d+\.\d+/)
    await expect.poll(() => page.getByTestId("cardinality").textContent()).toMatch(/demo_requests_total\s*3/)
    await shot(page, "status")
    expect(errors).toEqual([])
    await page.close()
  })

  it("fits a phone's width", async () => {
    for (const p of ["/query?expr=demo_requests_total&range=1h&tab=graph", "/logs?key=orders%2F1", "/status"]) {
      const { page, errors } = await newPage(browser, 390, 844)
      await page.goto(`${server.base}${p}`)
      await page.waitForLoadState("networkidle")
      // A string, evaluated in the page (this file is type-checked without the DOM's types).
      const overflow = await page.evaluate<number>("document.documentElement.scrollWidth - document.documentElement.clientWidth")
      expect(overflow, p).toBeLessThanOrEqual(0)
      await shot(page, `phone-${p.slice(1).split("?")[0]}`)
      expect(errors, p).toEqual([])
      await page.close()
    }
  })
})

describe.skipIf(!available)("the web UI with auth on", () => {
  const reader = "reader-7d1f3a9c5e2b4f60"
  const writer = "writer-2b8e6c4a0f1d3e57"
  let server: ServerProcess
  let browser: Browser
  let dir = ""

  beforeAll(async () => {
    dir = await tempDir()
    await fsp.writeFile(
      path.join(dir, "tokens.yaml"),
      `tokens:\n  - { name: reader, token: "${reader}", scope: read }\n  - { name: writer, token: "${writer}", scope: write }\n`
    )
    server = await start({ OPENDATA_STORE: "memory", OPENDATA_AUTH_FILE: path.join(dir, "tokens.yaml") })
    await remoteWrite(server.base, { authorization: `Bearer ${writer}` })
    await append(server.base, "orders/1", ["created"], { authorization: `Bearer ${writer}` })
    browser = await launch()
  })
  afterAll(async () => {
    await browser?.close()
    killAll()
    if (dir !== "") await fsp.rm(dir, { recursive: true, force: true })
  })

  it("asks for a token, then queries and tails with it; a read token gets no append form", async () => {
    const { page, errors } = await newPage(browser)
    await page.goto(`${server.base}/query?expr=demo_requests_total&range=1h&tab=graph`)
    await page.getByTestId("token-dialog").waitFor({ timeout: 10_000 })
    await shot(page, "token")
    await page.getByTestId("token-input").fill(reader)
    await page.getByTestId("token-input").press("Enter")
    const legend = page.getByTestId("graph-legend").first()
    await expect.poll(() => legend.locator(":scope > *").count(), { timeout: 10_000 }).toBe(3)

    await page.goto(`${server.base}/logs?key=${encodeURIComponent("orders/1")}`)
    const records = page.getByTestId("log-records")
    await expect.poll(() => records.locator("[data-offset]").count(), { timeout: 10_000 }).toBe(1)
    expect(await page.getByTestId("append-form").count()).toBe(0)
    await page.getByTestId("tail-toggle").click()
    await expect.poll(async () => {
      const res = await fetch(`${server.base}/metrics`, { headers: { authorization: `Bearer ${reader}` } })
      return /opendata_eventstore_tail_subscribers 1\b/.test(await res.text())
    }, { timeout: 10_000 }).toBe(true)
    await append(server.base, "orders/1", ["paid"], { authorization: `Bearer ${writer}` })
    await records.locator('[data-offset="1"]').waitFor({ timeout: 10_000 })
    expect(errors).toEqual([])
    await page.close()
  })
})
