/**
 * The S3 driver, on `@aws-sdk/client-s3`, for AWS S3 and S3-compatible servers (Ceph radosgw, MinIO...).
 *
 * The SDK makes one attempt per call (`maxAttempts: 1`); retries belong to the caller's `Schedule`.
 * Interrupting the fiber aborts the HTTP request. Conditional writes use `If-None-Match: *` and
 * `If-Match: <etag>`, with the put-id in the object's metadata (`x-amz-meta-put-id`). A 412 (or 304 on a
 * create) means "lost the race"; a 409, a 5xx, a timeout or a dropped connection on a conditional write
 * means the outcome is unknown, and `ObjectStore` resolves it by reading the put-id back. A 404 on a
 * write means the bucket is gone, so the write did not happen.
 *
 * ETags are the MD5 of the body: two writes of the same bytes get the same etag (`etagsUnique: false`).
 */
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client
} from "@aws-sdk/client-s3"
import { Effect } from "effect"
import type { Scope } from "effect"
import * as Limits from "../../limits.ts"
import type { ByteRange, Driver, GetResult, ObjectMeta, PutResult } from "./model.ts"
import {
  AlreadyExists,
  InvalidRange,
  NotFound,
  OutcomeUnknown,
  PreconditionFailed,
  sliceRange,
  StoreUnusable,
  Unavailable
} from "./model.ts"

export interface S3Settings {
  readonly bucket: string
  /** Default `us-east-1`. */
  readonly region?: string | undefined
  /** Endpoint URL of an S3-compatible server, e.g. `http://127.0.0.1:7480`; AWS when absent. */
  readonly endpoint?: string | undefined
  /** Keys live under this prefix in the bucket (a `/` is appended if missing). */
  readonly prefix?: string | undefined
  /** Explicit credentials; the SDK's default provider chain when absent. */
  readonly credentials?: {
    readonly accessKeyId: string
    readonly secretAccessKey: string
    readonly sessionToken?: string | undefined
  } | undefined
  /** Address buckets as `endpoint/bucket` instead of `bucket.endpoint` (needed by most local servers). */
  readonly forcePathStyle?: boolean | undefined
  /** Send `If-Match` etags without quotes (Ceph radosgw matches only unquoted etags). */
  readonly ifMatchUnquoted?: boolean | undefined
  /** A request taking longer counts as lost. Default `s3RequestTimeoutMs`. */
  readonly requestTimeoutMs?: number | undefined
  /** Create the bucket on open if it does not exist (for development and tests). */
  readonly createBucket?: boolean | undefined
}

/** How a failed request ended, as far as the client can tell. */
type Failure =
  | { readonly kind: "notFound" }
  | { readonly kind: "lostRace" } // 412, or 304 on a create
  | { readonly kind: "invalidRange" }
  | { readonly kind: "ambiguous"; readonly reason: string } // 409, 5xx, timeout, dropped connection
  | { readonly kind: "refused"; readonly reason: string } // never reached the server
  | { readonly kind: "rejected"; readonly status: number; readonly reason: string } // other 4xx: a bug or misconfiguration

const refusedCodes = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH"])

const classify = (e: unknown): Failure => {
  const err = e as { name?: string; message?: string; code?: string; $metadata?: { httpStatusCode?: number } }
  const status = err?.$metadata?.httpStatusCode
  const name = err?.name ?? "Error"
  const reason = `${name}${status === undefined ? "" : ` (HTTP ${status})`}: ${err?.message ?? String(e)}`
  if (status === 404 || name === "NoSuchKey" || name === "NotFound") return { kind: "notFound" }
  if (status === 412 || status === 304) return { kind: "lostRace" }
  if (status === 416 || name === "InvalidRange") return { kind: "invalidRange" }
  if (status === 409 || status === 429 || (status !== undefined && status >= 500)) return { kind: "ambiguous", reason }
  if (status !== undefined) return { kind: "rejected", status, reason }
  const code = err?.code ?? (err as { cause?: { code?: string } })?.["cause"]?.code
  if (code !== undefined && refusedCodes.has(code)) return { kind: "refused", reason }
  return { kind: "ambiguous", reason }
}

const unquote = (etag: string | undefined): string => (etag ?? "").replace(/^"(.*)"$/, "$1")

/** Parses `bytes a-b/size` from a Content-Range header. */
const totalOf = (contentRange: string | undefined): number | undefined => {
  const match = contentRange === undefined ? null : /\/(\d+)$/.exec(contentRange)
  return match === null ? undefined : Number(match[1])
}

export const makeS3Driver = (settings: S3Settings): Effect.Effect<Driver, StoreUnusable, Scope.Scope> =>
  Effect.gen(function*() {
    const bucket = settings.bucket
    const base = settings.prefix === undefined || settings.prefix === "" ? "" : settings.prefix.replace(/\/?$/, "/")
    const name = `s3://${bucket}/${base}`
    const timeoutMs = settings.requestTimeoutMs ?? Limits.s3RequestTimeoutMs
    const client = yield* Effect.acquireRelease(
      Effect.sync(() =>
        new S3Client({
          region: settings.region ?? "us-east-1",
          ...(settings.endpoint === undefined ? {} : { endpoint: settings.endpoint }),
          ...(settings.credentials === undefined ? {} : {
            credentials: {
              accessKeyId: settings.credentials.accessKeyId,
              secretAccessKey: settings.credentials.secretAccessKey,
              ...(settings.credentials.sessionToken === undefined ? {} : { sessionToken: settings.credentials.sessionToken })
            }
          }),
          forcePathStyle: settings.forcePathStyle ?? false,
          maxAttempts: 1,
          // Old S3-compatible servers reject the SDK's newer default checksums.
          requestChecksumCalculation: "WHEN_REQUIRED",
          responseChecksumValidation: "WHEN_REQUIRED",
          requestHandler: { requestTimeout: timeoutMs, connectionTimeout: timeoutMs, httpAgent: { maxSockets: Limits.s3SocketsMax } }
        })
      ),
      (c) => Effect.sync(() => c.destroy())
    )

    /**
     * Sends one request and reads its reply with `read` (e.g. the body); the fiber's interruption aborts
     * both, and both are abandoned after `timeoutMs`, so a reply that trickles in cannot outlast it.
     */
    const exchange = <O, A>(
      command: { readonly input: unknown },
      read: (out: O, signal: AbortSignal) => Promise<A>
    ): Effect.Effect<A, Failure> =>
      Effect.tryPromise({
        try: async (signal) => read(await (client.send(command as never, { abortSignal: signal }) as Promise<O>), signal),
        catch: classify
      }).pipe(
        Effect.timeoutOrElse({
          duration: `${timeoutMs} millis`,
          orElse: () => Effect.fail<Failure>({ kind: "ambiguous", reason: `no reply within ${timeoutMs} ms` })
        })
      )

    /** Sends one request whose reply is all in its headers. */
    const send = <O>(command: { readonly input: unknown }): Effect.Effect<O, Failure> =>
      exchange<O, O>(command, (out) => Promise.resolve(out))

    const reject = (operation: string, key: string, failure: Failure) =>
      Effect.die(new Error(`S3 ${operation} ${key} was rejected: ${"reason" in failure ? failure.reason : failure.kind}`))

    // Reached only by writes and lists (reads handle 404 themselves): the bucket itself is missing.
    const noSuchBucket = `no such bucket ${bucket} (HTTP 404)`

    const unavailable = (operation: string, key: string, failure: Failure): Effect.Effect<never, Unavailable> =>
      failure.kind === "rejected"
        ? reject(operation, key, failure)
        : Effect.fail(
          new Unavailable({
            operation,
            key,
            reason: "reason" in failure ? failure.reason : failure.kind === "notFound" ? noSuchBucket : failure.kind
          })
        )

    const conditionalFailure = <L>(operation: string, key: string, putId: string, lost: () => L) =>
    (failure: Failure): Effect.Effect<never, L | Unavailable | OutcomeUnknown> => {
      switch (failure.kind) {
        case "lostRace":
          return Effect.fail(lost())
        case "notFound":
          // If-Match on a missing object: it is gone, so the expected version is too. On a create, only
          // the bucket can be missing: the write surely did not happen.
          return operation === "putIfMatch"
            ? Effect.fail(lost())
            : Effect.fail(new Unavailable({ operation, key, reason: noSuchBucket }))
        case "refused":
          return Effect.fail(new Unavailable({ operation, key, reason: failure.reason }))
        case "ambiguous":
          return Effect.fail(new OutcomeUnknown({ operation, key, putId, reason: failure.reason }))
        default:
          return reject(operation, key, failure)
      }
    }

    const putCommand = (key: string, body: Uint8Array, putId: string, condition: { IfNoneMatch?: string; IfMatch?: string }) =>
      new PutObjectCommand({
        Bucket: bucket,
        Key: base + key,
        Body: body,
        ContentLength: body.length,
        ContentType: "application/octet-stream",
        Metadata: { "put-id": putId },
        ...condition
      })

    const putResult = (putId: string) => (out: { ETag?: string | undefined }): PutResult => ({ etag: unquote(out.ETag), putId })

    type HeadOut = {
      ContentLength?: number
      ETag?: string
      LastModified?: Date
      Metadata?: Record<string, string>
      ContentRange?: string
    }
    const metaOf = (key: string, out: HeadOut, size: number): ObjectMeta => ({
      key,
      size,
      etag: unquote(out.ETag),
      lastModifiedMs: out.LastModified?.getTime() ?? 0,
      putId: out.Metadata?.["put-id"]
    })

    /** A GET's body: a Node stream mixed with the SDK's readers. */
    type Body = { transformToByteArray(): Promise<Uint8Array>; destroy?: () => void }
    type GetOut = HeadOut & { Body?: Body; $metadata?: { httpStatusCode?: number } }

    /**
     * Reads a body to the end. How far the SDK's abort reaches past the response headers depends on its
     * HTTP handler and version, so an abort also destroys the Node stream: the socket closes instead of
     * downloading on.
     */
    const readBody = async (body: Body | undefined, signal: AbortSignal): Promise<Uint8Array> => {
      if (body === undefined) return new Uint8Array(0)
      const destroy = () => body.destroy?.()
      if (signal.aborted) {
        destroy()
        throw signal.reason
      }
      signal.addEventListener("abort", destroy, { once: true })
      try {
        return await body.transformToByteArray()
      } finally {
        signal.removeEventListener("abort", destroy)
      }
    }

    /**
     * The part of a GET's reply that was asked for. A server (or proxy) that ignores `Range` answers 200
     * with the whole object and no Content-Range: slice it here, with the port's range rules.
     */
    const rangeOf = (key: string, range: ByteRange | undefined, out: GetOut, body: Uint8Array): GetResult | InvalidRange => {
      const total = totalOf(out.ContentRange)
      if (range === undefined || (out.$metadata?.httpStatusCode === 206 && out.ContentRange !== undefined)) {
        return { meta: metaOf(key, out, total ?? body.length), body }
      }
      const slice = sliceRange(key, body, range)
      if (slice instanceof InvalidRange) return slice
      // A copy, so that a small range does not keep the whole object alive.
      return { meta: metaOf(key, out, body.length), body: body.slice(slice.start, slice.end) }
    }

    // Open: the bucket must be reachable (and is created first if asked).
    const unusable = (failure: Failure) =>
      new StoreUnusable({ store: name, reason: "reason" in failure ? failure.reason : failure.kind })
    if (settings.createBucket === true) {
      yield* send(new CreateBucketCommand({ Bucket: bucket })).pipe(
        Effect.catch((failure) =>
          failure.kind === "rejected" && failure.status === 409 ? Effect.void : Effect.fail(unusable(failure))
        )
      )
    }
    yield* send(new HeadBucketCommand({ Bucket: bucket })).pipe(
      Effect.mapError((failure) => (failure.kind === "notFound" ? new StoreUnusable({ store: name, reason: "no such bucket" }) : unusable(failure)))
    )

    const driver: Driver = {
      name,
      etagsUnique: false,
      keyBytesMax: Limits.objectKeyBytesMax - Buffer.byteLength(base, "utf8"),
      get: (key, range) =>
        exchange<GetOut, { out: GetOut; body: Uint8Array }>(
          new GetObjectCommand({
            Bucket: bucket,
            Key: base + key,
            ...(range === undefined ? {} : { Range: `bytes=${range.start}-${range.end === undefined ? "" : range.end - 1}` })
          }),
          async (out, signal) => ({ out, body: await readBody(out.Body, signal) })
        ).pipe(
          Effect.catch((failure): Effect.Effect<never, NotFound | InvalidRange | Unavailable> => {
            switch (failure.kind) {
              case "notFound":
                return Effect.fail(new NotFound({ key }))
              case "invalidRange":
                return Effect.fail(new InvalidRange({ key, start: range?.start ?? 0, end: range?.end }))
              default:
                return unavailable("get", key, failure)
            }
          }),
          Effect.flatMap(({ body, out }) => {
            const result = rangeOf(key, range, out, body)
            return result instanceof InvalidRange ? Effect.fail(result) : Effect.succeed(result)
          })
        ),
      head: (key) =>
        send<HeadOut>(new HeadObjectCommand({ Bucket: bucket, Key: base + key })).pipe(
          Effect.map((out) => metaOf(key, out, out.ContentLength ?? 0)),
          Effect.catch((failure): Effect.Effect<never, NotFound | Unavailable> =>
            failure.kind === "notFound" ? Effect.fail(new NotFound({ key })) : unavailable("head", key, failure))
        ),
      put: (key, body, putId) =>
        send<{ ETag?: string }>(putCommand(key, body, putId, {})).pipe(
          Effect.map(putResult(putId)),
          Effect.catch((failure) => unavailable("put", key, failure))
        ),
      putIfAbsent: (key, body, putId) =>
        send<{ ETag?: string }>(putCommand(key, body, putId, { IfNoneMatch: "*" })).pipe(
          Effect.map(putResult(putId)),
          Effect.catch(conditionalFailure("putIfAbsent", key, putId, () => new AlreadyExists({ key })))
        ),
      putIfMatch: (key, body, etag, putId) =>
        send<{ ETag?: string }>(putCommand(key, body, putId, { IfMatch: settings.ifMatchUnquoted === true ? etag : `"${etag}"` })).pipe(
          Effect.map(putResult(putId)),
          Effect.catch(conditionalFailure("putIfMatch", key, putId, () => new PreconditionFailed({ key, expectedEtag: etag })))
        ),
      listPage: (prefix, startAfter, limit) =>
        send<{
          Contents?: Array<{ Key?: string; Size?: number; ETag?: string; LastModified?: Date }>
          IsTruncated?: boolean
        }>(
          new ListObjectsV2Command({
            Bucket: bucket,
            Prefix: base + prefix,
            MaxKeys: limit,
            ...(startAfter === undefined ? {} : { StartAfter: base + startAfter })
          })
        ).pipe(
          Effect.map((out) => {
            const entries = (out.Contents ?? []).map((o) => ({
              key: (o.Key ?? "").slice(base.length),
              size: o.Size ?? 0,
              etag: unquote(o.ETag),
              lastModifiedMs: o.LastModified?.getTime() ?? 0
            }))
            return { entries, next: out.IsTruncated === true ? entries.at(-1)?.key : undefined }
          }),
          Effect.catch((failure) => unavailable("list", prefix, failure))
        ),
      delete: (key) =>
        send(new DeleteObjectCommand({ Bucket: bucket, Key: base + key })).pipe(
          Effect.asVoid,
          Effect.catch((failure) => (failure.kind === "notFound" ? Effect.void : unavailable("delete", key, failure)))
        )
    }
    return driver
  })
