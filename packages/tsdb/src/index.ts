/**
 * @opendata/tsdb: a Prometheus backend on object storage (remote write in, PromQL over the Prometheus
 * HTTP API out). The series model, ingest, storage layout and PromQL engine land here; the package has no
 * public API yet.
 */
export {}
