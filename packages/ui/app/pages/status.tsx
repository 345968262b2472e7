/**
 * The Status page: build and runtime, configuration (secrets redacted by the server), storage per product,
 * the EventStore's totals, and the TSDB's head and cardinality (Prometheus's TSDB status, top 10 of each).
 */
import { useCallback, useEffect, useState } from "preact/hooks"
import { getJson, promGet } from "../api.ts"
import { formatBytes, formatCount, formatDuration, formatRatio, formatTime } from "../format.ts"
import type { NameValue, ServerStatus, StorageStatus, TransformStatus, TsdbStatus } from "../status/types.ts"
import "../status/status.css"

const KeyValues = ({ rows }: { rows: ReadonlyArray<readonly [string, string]> }) => (
  <table class="kv">
    <tbody>
      {rows.map(([k, v]) => (
        <tr key={k}>
          <th>{k}</th>
          <td class="mono">{v}</td>
        </tr>
      ))}
    </tbody>
  </table>
)

/** One row per storage figure, one column per product. */
const storageRows: ReadonlyArray<readonly [string, (s: StorageStatus) => string]> = [
  ["Manifest version", (s) => formatCount(s.manifestVersion)],
  ["Writer epoch", (s) => String(s.writerEpoch)],
  ["Compactor epoch", (s) => String(s.compactorEpoch)],
  ["WAL objects written", (s) => formatCount(s.walObjectsWritten)],
  ["WAL bytes written", (s) => formatBytes(s.walBytesWritten)],
  ["Tables", (s) => formatCount(s.tables)],
  ["Table bytes", (s) => formatBytes(s.tableBytes)],
  ["Table entries", (s) => formatCount(s.tableEntries)],
  ["Level-0 tables", (s) => formatCount(s.l0Tables)],
  ["Sorted runs", (s) => formatCount(s.sortedRuns)],
  ["Memtable bytes", (s) => formatBytes(s.memtableBytes)],
  ["Compaction backlog", (s) => formatCount(s.compactionBacklog)],
  ["Compactions (this process)", (s) => formatCount(s.compactions)],
  ["Write queue", (s) => formatCount(s.writeQueueDepth)],
  ["Block cache hit ratio", (s) => `${formatRatio(s.blockCache.hitRatio)} (${formatBytes(s.blockCache.bytes)})`],
  ["Metadata cache hit ratio", (s) => `${formatRatio(s.metaCache.hitRatio)} (${formatBytes(s.metaCache.bytes)})`]
]

const Storage = ({ storage }: { storage: ServerStatus["storage"] }) => {
  const products = Object.keys(storage)
  if (products.length === 0) return <p class="muted">No product storage in this role.</p>
  return (
    <div class="scroll">
      <table data-testid="storage">
        <thead>
          <tr>
            <th />
            {products.map((p) => <th key={p} class="num">{p}</th>)}
          </tr>
        </thead>
        <tbody>
          {storageRows.map(([label, value]) => (
            <tr key={label}>
              <th>{label}</th>
              {products.map((p) => <td key={p} class="num">{value(storage[p]!)}</td>)}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  )
}

const TopTable = ({ title, name, value, rows, bytes }: {
  title: string
  name: string
  value: string
  rows: ReadonlyArray<NameValue>
  bytes?: boolean
}) => (
  <div class="top-table">
    <h3>{title}</h3>
    {rows.length === 0 ? <p class="muted">None.</p> : (
      <table>
        <thead>
          <tr>
            <th>{name}</th>
            <th class="num">{value}</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.name}>
              <td class="mono">{r.name}</td>
              <td class="num">{bytes === true ? formatBytes(r.value) : formatCount(r.value)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    )}
  </div>
)

/** The transforms this process runs (none listed: none configured, or they run in another process). */
const TransformsTable = ({ transforms }: { transforms: ReadonlyArray<TransformStatus> }) => {
  if (transforms.length === 0) return <p class="muted">No transforms configured.</p>
  return (
    <div class="scroll">
      <table data-testid="transforms">
        <thead>
          <tr>
            <th>Name</th>
            <th>Source</th>
            <th>Status</th>
            <th class="num">In</th>
            <th class="num">Out</th>
            <th class="num">Lag</th>
            <th class="num">Failed logs</th>
          </tr>
        </thead>
        <tbody>
          {transforms.map((t) => (
            <tr key={t.name}>
              <td class="mono">{t.name}</td>
              <td class="mono">{"prefix" in t.source ? `${t.source.prefix}*` : t.source.log}</td>
              <td>
                {t.status}
                {t.catchingUp ? " (catching up)" : ""}
                {t.retrying !== null ? <span class="muted"> retrying: {t.retrying}</span> : null}
              </td>
              <td class="num">{formatCount(t.recordsIn)}</td>
              <td class="num">{formatCount(t.recordsOut + t.samplesOut)}</td>
              <td class="num">{formatCount(t.lagRecords)}{t.lagMs > 0 ? ` (${formatDuration(t.lagMs / 1000)})` : ""}</td>
              <td class="num" title={t.failedLogs.map((f) => `${f.key}@${f.offset}: ${f.error}`).join("\n")}>{formatCount(t.failedLogCount)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  )
}

const headTime = (ms: number): string => (Math.abs(ms) >= 2 ** 62 ? "no samples yet" : formatTime(ms))

const Tsdb = ({ tsdb, status }: { tsdb: TsdbStatus; status: ServerStatus }) => {
  const created = status.counters.tsdbSeriesCreated
  const perMinute = status.uptimeSeconds > 0 ? (created * 60) / status.uptimeSeconds : 0
  return (
    <>
      <KeyValues
        rows={[
          ["Head series", formatCount(tsdb.headStats.numSeries)],
          ["Label pairs", formatCount(tsdb.headStats.numLabelPairs)],
          ["First sample", headTime(tsdb.headStats.minTime)],
          ["Last sample", headTime(tsdb.headStats.maxTime)],
          ["Series created since start (churn)", `${formatCount(created)} (${perMinute.toFixed(1)} per minute)`],
          ["Samples ingested since start", formatCount(status.counters.tsdbSamplesIngested)]
        ]}
      />
      <div class="cardinality" data-testid="cardinality">
        <TopTable title="Top metric names by series" name="Metric name" value="Series" rows={tsdb.seriesCountByMetricName} />
        <TopTable title="Top label names by values" name="Label name" value="Values" rows={tsdb.labelValueCountByLabelName} />
        <TopTable title="Top label names by memory" name="Label name" value="Bytes" rows={tsdb.memoryInBytesByLabelName} bytes />
        <TopTable title="Top label pairs by series" name="Label pair" value="Series" rows={tsdb.seriesCountByLabelValuePair} />
      </div>
    </>
  )
}

export const StatusPage = () => {
  const [status, setStatus] = useState<ServerStatus | undefined>()
  const [tsdb, setTsdb] = useState<TsdbStatus | undefined>()
  const [transforms, setTransforms] = useState<ReadonlyArray<TransformStatus> | undefined>()
  const [error, setError] = useState<string | undefined>()
  const [loading, setLoading] = useState(false)
  const load = useCallback(async () => {
    setLoading(true)
    try {
      const [s, t, x] = await Promise.all([
        getJson<ServerStatus>("/v1/status"),
        promGet<TsdbStatus>("/api/v1/status/tsdb", { limit: "10" }).catch(() => undefined),
        getJson<{ transforms: ReadonlyArray<TransformStatus> }>("/v1/transforms").then((r) => r.transforms, () => undefined)
      ])
      setStatus(s)
      setTsdb(t)
      setTransforms(x)
      setError(undefined)
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e))
    } finally {
      setLoading(false)
    }
  }, [])
  useEffect(() => {
    void load()
  }, [load])
  if (status === undefined) {
    return error !== undefined ? <p class="error">{error}</p> : <p class="muted">Loading…</p>
  }
  const es = status.eventStore
  return (
    <div class="status-page">
      <div class="row">
        <h1>Status</h1>
        <span class="spacer" />
        <button onClick={() => void load()} disabled={loading}>{loading ? "Refreshing…" : "Refresh"}</button>
      </div>
      {error !== undefined ? <p class="error">{error}</p> : null}
      <section class="panel" data-testid="status-build">
        <h2>Build and runtime</h2>
        <KeyValues
          rows={[
            ["Version", status.build.version],
            ["Node.js", status.build.node],
            ["Role", status.role],
            ["Started", formatTime(Date.parse(status.startedAt))],
            ["Uptime", formatDuration(status.uptimeSeconds)]
          ]}
        />
      </section>
      <section class="panel">
        <h2>Storage</h2>
        <Storage storage={status.storage} />
      </section>
      <section class="panel">
        <h2>EventStore</h2>
        {"error" in es ? <p class="error">{es.error}</p> : (
          <KeyValues
            rows={[
              ["Logs", `${formatCount(es.logs)}${es.complete ? "" : " (at least: only the first are counted)"}`],
              ["Records", formatCount(es.records)],
              ["Bytes", formatBytes(es.bytes)],
              ["Appends since start", formatCount(status.counters.eventStoreAppends)],
              ["Records appended since start", formatCount(status.counters.eventStoreRecordsAppended)]
            ]}
          />
        )}
      </section>
      {transforms !== undefined
        ? (
          <section class="panel">
            <h2>Transforms</h2>
            <TransformsTable transforms={transforms} />
          </section>
        )
        : null}
      <section class="panel">
        <h2>TSDB head and cardinality</h2>
        {tsdb === undefined ? <p class="muted">The TSDB status is not available.</p> : <Tsdb tsdb={tsdb} status={status} />}
      </section>
      <section class="panel">
        <h2>Configuration</h2>
        <KeyValues rows={Object.entries(status.config).map(([k, v]) => [k, String(v)] as const)} />
      </section>
    </div>
  )
}
