/**
 * Where the S3 test server is: `OPENDATA_S3_ENDPOINT` (+ `_REGION`, `_ACCESS_KEY_ID`,
 * `_SECRET_ACCESS_KEY`), or else the `s3.json` that `npm run s3:up` writes into `OPENDATA_S3_DIR`
 * (default `<tmpdir>/opendata-radosgw`). `undefined` when neither exists. Shared by the S3 tests and the
 * object-store benchmark.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

export interface S3Server {
  readonly endpoint: string
  readonly region: string
  readonly accessKeyId: string
  readonly secretAccessKey: string
}

export const findS3Server = (): S3Server | undefined => {
  const env = process.env
  if (env["OPENDATA_S3_ENDPOINT"] !== undefined) {
    return {
      endpoint: env["OPENDATA_S3_ENDPOINT"],
      region: env["OPENDATA_S3_REGION"] ?? "us-east-1",
      accessKeyId: env["OPENDATA_S3_ACCESS_KEY_ID"] ?? "",
      secretAccessKey: env["OPENDATA_S3_SECRET_ACCESS_KEY"] ?? ""
    }
  }
  const file = path.join(env["OPENDATA_S3_DIR"] ?? path.join(os.tmpdir(), "opendata-radosgw"), "s3.json")
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as S3Server
  } catch {
    return undefined
  }
}

/** Whether to send If-Match etags unquoted (Ceph radosgw, the default test server, needs it). */
export const ifMatchUnquoted = (process.env["OPENDATA_S3_IF_MATCH_UNQUOTED"] ?? "true") === "true"
