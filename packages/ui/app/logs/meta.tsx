/** A log's metadata as a strip of figures (or a note that the log does not exist yet). */
import type { LogMeta } from "./api.ts"
import { formatAgo, formatBytes, formatCount, formatTime } from "./format.ts"

export const MetaStrip = ({ meta, logKey }: { meta: LogMeta | undefined; logKey: string }) => {
  if (meta === undefined) {
    return (
      <p class="warning" data-testid="log-meta">
        No log <code>{logKey}</code> yet: it is created by its first append (a live tail waits for it).
      </p>
    )
  }
  const retention = meta.retention === null
    ? "server default"
    : [
      meta.retention.maxAgeMs === undefined ? undefined : `${formatCount(meta.retention.maxAgeMs / 1000)} s`,
      meta.retention.maxBytes === undefined ? undefined : formatBytes(meta.retention.maxBytes)
    ].filter((x) => x !== undefined).join(", ")
  const stats: Array<[string, string, string | undefined]> = [
    ["Records", formatCount(meta.records), undefined],
    ["Offsets", `${formatCount(meta.firstOffset)} – ${formatCount(meta.nextOffset)}`, "first stored – next"],
    ["Next offset", formatCount(meta.nextOffset), "the offset of the next append"],
    ["Bytes", formatBytes(meta.bytes), `${formatCount(meta.bytes)} bytes of values and headers`],
    ["Last append", meta.lastAppendMs === null ? "never" : formatAgo(meta.lastAppendMs), meta.lastAppendMs === null ? undefined : formatTime(meta.lastAppendMs)],
    ["Created", formatTime(meta.createdMs), undefined],
    ["Retention", retention, undefined],
    ["Fenced", meta.fenced ? "yes" : "no", "whether appends need a fencing token"]
  ]
  return (
    <dl class="meta-strip" data-testid="log-meta">
      {stats.map(([label, value, title]) => (
        <div key={label} title={title}>
          <dt>{label}</dt>
          <dd>{value}</dd>
        </div>
      ))}
    </dl>
  )
}
