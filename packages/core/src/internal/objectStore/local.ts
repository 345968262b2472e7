/**
 * The local-filesystem driver: one file per object under a root directory.
 *
 * Writes go to a temporary file in `<root>/.tmp`, are fsynced, and are then moved into place: `link` for
 * put-if-absent (fails atomically if the name exists), `rename` for put and put-if-match, followed by an
 * fsync of the directory. Put-if-match and delete are serialized per key within the process and check the
 * etag under that lock; a `.lock` file keeps a second process off the same root. Key-to-path mapping:
 * see `keys.ts`; no key can name a path outside the root. The Db's WAL objects (`.../wal/<n>.wal`) are
 * not files but frames of an append-only log under `<root>/.packed`, made durable in batches by one
 * `fdatasync` each (see `packedLog.ts`).
 *
 * Object file layout (all integers big-endian):
 *
 *   0      4      8             8+H
 *   +------+------+-------------+----------------------+
 *   | ODO1 |  H   | header JSON | body                 |
 *   +------+------+-------------+----------------------+
 *   magic   u32    {"key","putId","etag"} (UTF-8, H bytes)
 */
import { createHash } from "node:crypto"
import { crc32 } from "node:zlib"
import type { FileHandle } from "node:fs/promises"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Effect } from "effect"
import * as KeyedLock from "../../KeyedLock.ts"
import type { Scope } from "effect"
import { compareKeys, decodeSegment, digestMark, encodeSegment, fileSuffix, needsDigest } from "./keys.ts"
import { fsyncDir, isPackedKey, openPackedLog } from "./packedLog.ts"
import type { ByteRange, Driver, ListEntry, ObjectMeta, PutResult } from "./model.ts"
import { AlreadyExists, InvalidRange, NotFound, OutcomeUnknown, PreconditionFailed, StoreUnusable, Unavailable } from "./model.ts"

const magic = Buffer.from("ODO1", "latin1")
const prefixBytes = 8
/** Largest header this driver writes or accepts, in bytes (a 1 KiB key plus ids, JSON-escaped). */
const headerBytesMax = 16 * 1024
const tmpDirName = ".tmp"
const lockFileName = ".lock"
const segmentFileName = ".segment"

interface Header {
  readonly key: string
  readonly putId: string
  readonly etag: string
}

const errnoOf = (e: unknown): string | undefined =>
  typeof e === "object" && e !== null && "code" in e ? String((e as { code: unknown }).code) : undefined

const isErrno = (e: unknown, code: string) => errnoOf(e) === code

class FileCorrupt extends Error {}

const encodeObject = (header: Header, body: Uint8Array): Array<Uint8Array> => {
  const json = Buffer.from(JSON.stringify(header), "utf8")
  const prefix = Buffer.alloc(prefixBytes)
  magic.copy(prefix, 0)
  prefix.writeUInt32BE(json.length, 4)
  return [prefix, json, body]
}

/** Reads the header of an open object file; returns it with the body's offset and size. */
const readHeader = async (handle: FileHandle, file: string) => {
  const prefix = Buffer.alloc(prefixBytes)
  const { bytesRead } = await handle.read(prefix, 0, prefixBytes, 0)
  if (bytesRead !== prefixBytes || !prefix.subarray(0, 4).equals(magic)) throw new FileCorrupt(`bad object file prefix: ${file}`)
  const headerBytes = prefix.readUInt32BE(4)
  if (headerBytes > headerBytesMax) throw new FileCorrupt(`object header too large: ${file}`)
  const json = Buffer.alloc(headerBytes)
  const read = await handle.read(json, 0, headerBytes, prefixBytes)
  if (read.bytesRead !== headerBytes) throw new FileCorrupt(`truncated object header: ${file}`)
  const header = JSON.parse(json.toString("utf8")) as Header
  const stat = await handle.stat()
  const bodyOffset = prefixBytes + headerBytes
  return { header, bodyOffset, size: stat.size - bodyOffset, mtimeMs: Math.floor(stat.mtimeMs) }
}

/**
 * An object's ETag: its put-id (unique to each put; a retry of one put reuses it with the same body)
 * hashed, with the body's CRC-32 and length. Cheap on large bodies (native CRC rather than MD5 over
 * every WAL and table byte), and still different for any two puts.
 */
const etagOf = (putId: string, body: Uint8Array) =>
  createHash("md5").update(putId).digest("hex").slice(0, 16) + crc32(body).toString(16).padStart(8, "0") + body.length.toString(16)

export const makeLocalDriver = (
  root: string,
  options: { readonly packedSegmentBytes?: number | undefined } = {}
): Effect.Effect<Driver, StoreUnusable, Scope.Scope> =>
  Effect.gen(function*() {
    const rootDir = path.resolve(root)
    const tmpDir = path.join(rootDir, tmpDirName)
    const name = `local:${root}`
    const unusable = (reason: string) => new StoreUnusable({ store: name, reason })

    // Open: create the root, take the lock, check the filesystem, clear temporary files of an earlier run.
    yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          await fs.mkdir(tmpDir, { recursive: true })
          const lockPath = await takeLock(rootDir)
          try {
            await checkFilesystem(tmpDir)
            for (const entry of await fs.readdir(tmpDir)) await fs.rm(path.join(tmpDir, entry), { force: true })
          } catch (e) {
            await releaseLock(rootDir, lockPath)
            throw e
          }
          return lockPath
        },
        catch: (e) => unusable(e instanceof Error ? e.message : String(e))
      }),
      (lockPath) => Effect.promise(() => releaseLock(rootDir, lockPath))
    )

    // The Db's WAL objects live in the packed log (see packedLog.ts); a WAL object stored as a file by an
    // earlier version is still read, listed, overwritten and deleted where it is.
    const packed = yield* Effect.acquireRelease(
      Effect.tryPromise({ try: () => openPackedLog(rootDir, { segmentBytes: options.packedSegmentBytes }), catch: (e) => unusable(e instanceof Error ? e.message : String(e)) }),
      (log) => Effect.promise(() => log.close())
    )

    const reasonOf = (e: unknown): string => (e instanceof AfterMove ? `after the write: ${reasonOf(e.cause)}` : e instanceof Error ? e.message : String(e))
    const fail = (operation: string, key: string) => (e: unknown) => new Unavailable({ operation, key, reason: reasonOf(e) })
    /** For conditional writes: a failure after the object was moved into place may have applied it. */
    const failConditional = (operation: string, key: string, putId: string) => (e: unknown) =>
      e instanceof AfterMove
        ? new OutcomeUnknown({ operation, key, putId, reason: reasonOf(e) })
        : new Unavailable({ operation, key, reason: reasonOf(e) })

    // --- key <-> path --------------------------------------------------------------------------

    const digestName = (segment: string) => digestMark + createHash("sha256").update(segment).digest("hex").slice(0, 40)

    /** Directory names (as stored) and the file name for a key. */
    const namesOf = (key: string) => {
      const segments = key.split("/")
      const last = segments.pop()!
      const dirs = segments.map((segment) => {
        const encoded = encodeSegment(segment)
        return { segment, name: needsDigest(encoded, "") ? digestName(segment) : encoded }
      })
      const encodedFile = encodeSegment(last)
      const file = (needsDigest(encodedFile, fileSuffix) ? digestName(last) : encodedFile) + fileSuffix
      return { dirs, file }
    }

    const pathOf = (key: string) => {
      const { dirs, file } = namesOf(key)
      const full = path.join(rootDir, ...dirs.map((d) => d.name), file)
      // Defence in depth: the encoding never yields "." or ".." or a separator, so this cannot fail.
      if (!full.startsWith(rootDir + path.sep)) throw new Error(`key maps outside the root: ${key}`)
      return full
    }

    /**
     * Directories this process made or found (the store never removes one), so that a put checks each
     * directory once rather than once per object. Bounded: past the limit it starts over.
     */
    const knownDirs = new Set<string>()
    const knownDirsMax = 100_000

    /** Creates the key's directories; a new directory is made durable by an fsync of its parent. */
    const ensureParents = async (key: string) => {
      const { dirs } = namesOf(key)
      let dir = rootDir
      for (const { segment, name: dirName } of dirs) {
        const parent = dir
        dir = path.join(dir, dirName)
        if (knownDirs.has(dir)) continue
        const created = await fs.mkdir(dir).then(() => true, (e: unknown) => {
          if (isErrno(e, "EEXIST")) return false
          throw e
        })
        if (created) await fsyncDir(parent)
        if (dirName.startsWith(digestMark)) {
          const segmentFile = path.join(dir, segmentFileName)
          const exists = await fs.access(segmentFile).then(() => true, () => false)
          if (!exists) await writeDurably(segmentFile, [Buffer.from(segment, "utf8")], "rename").catch(afterMoveIsDone)
        }
        if (knownDirs.size >= knownDirsMax) knownDirs.clear()
        knownDirs.add(dir)
      }
    }

    // --- writing ---------------------------------------------------------------------------------

    let tmpCounter = 0
    const tmpPath = () => path.join(tmpDir, `${process.pid}-${++tmpCounter}`)

    /**
     * Writes `chunks` to a temporary file, fsyncs it and moves it to `target` by `link` or `rename`, then
     * fsyncs the directory. Returns "exists" if `link` found the name taken. A failure before the move
     * throws (nothing happened); a failure after it throws `AfterMove` (the object may be in place).
     */
    const writeDurably = async (target: string, chunks: Array<Uint8Array>, how: "link" | "rename"): Promise<"written" | "exists"> => {
      const tmp = tmpPath()
      const handle = await fs.open(tmp, "wx")
      try {
        await handle.writev(chunks)
        await handle.sync()
      } catch (e) {
        await handle.close().catch(() => undefined)
        await fs.rm(tmp, { force: true }).catch(() => undefined)
        throw e
      }
      await handle.close()
      try {
        if (how === "link") await fs.link(tmp, target)
        else await fs.rename(tmp, target)
      } catch (e) {
        await fs.rm(tmp, { force: true }).catch(() => undefined)
        if (how === "link" && isErrno(e, "EEXIST")) return "exists"
        throw e
      }
      try {
        if (how === "link") await fs.rm(tmp, { force: true })
        await fsyncDir(path.dirname(target))
      } catch (e) {
        throw new AfterMove(e)
      }
      return "written"
    }

    const readMeta = async (key: string, file: string): Promise<ObjectMeta> => {
      const handle = await fs.open(file, "r")
      try {
        const { header, size, mtimeMs } = await readHeader(handle, file)
        return { key, size, etag: header.etag, lastModifiedMs: mtimeMs, putId: header.putId }
      } finally {
        await handle.close()
      }
    }

    const keyLocks = KeyedLock.make()
    /** Serializes the writes of one key that must check-then-act (put-if-match) against the others. */
    const withKeyLock = <A, E>(key: string, self: Effect.Effect<A, E>) =>
      // Uninterruptible inside the lock: an abandoned file operation would keep running after the lock is
      // released and could overwrite a later write.
      keyLocks.withLock(key, Effect.uninterruptible(self))

    const write = (key: string, body: Uint8Array, putId: string): { chunks: Array<Uint8Array>; result: PutResult } => {
      const etag = etagOf(putId, body)
      return { chunks: encodeObject({ key, putId, etag }, body), result: { etag, putId } }
    }

    // --- listing ---------------------------------------------------------------------------------

    /** The key segment a directory entry stands for, or `undefined` for entries that are not objects. */
    const segmentOfEntry = async (dir: string, entry: string, isDir: boolean): Promise<string | undefined> => {
      if (entry.startsWith(".")) return undefined
      if (isDir) {
        if (!entry.startsWith(digestMark)) return decodeSegment(entry)
        return fs.readFile(path.join(dir, entry, segmentFileName), "utf8").catch(() => undefined)
      }
      if (!entry.endsWith(fileSuffix)) return undefined
      const stem = entry.slice(0, -fileSuffix.length)
      if (!stem.startsWith(digestMark)) return decodeSegment(stem)
      // A long final segment: its text is in the object's header.
      const key = await readHeaderKey(path.join(dir, entry))
      return key === undefined ? undefined : key.slice(key.lastIndexOf("/") + 1)
    }

    const listPage = async (prefix: string, startAfter: string | undefined, limit: number) => {
      const entries: Array<ListEntry> = []
      let truncated = false
      // Walks directories in key order; `keyPrefix` is the key text the directory stands for.
      const walk = async (dir: string, keyPrefix: string): Promise<boolean> => {
        let names: Array<import("node:fs").Dirent>
        try {
          names = await fs.readdir(dir, { withFileTypes: true })
        } catch (e) {
          if (isErrno(e, "ENOENT") || isErrno(e, "ENOTDIR")) return true
          throw e
        }
        const children: Array<{ sortKey: string; name: string; isDir: boolean }> = []
        for (const dirent of names) {
          const isDir = dirent.isDirectory()
          const segment = await segmentOfEntry(dir, dirent.name, isDir)
          if (segment === undefined) continue
          const sortKey = keyPrefix + segment + (isDir ? "/" : "")
          // Prune: keep only what can hold keys under `prefix` and after `startAfter`.
          const overlapsPrefix = sortKey.startsWith(prefix) || (isDir && prefix.startsWith(sortKey))
          if (!overlapsPrefix) continue
          if (startAfter !== undefined) {
            if (isDir ? compareKeys(sortKey, startAfter) < 0 && !startAfter.startsWith(sortKey) : compareKeys(sortKey, startAfter) <= 0) continue
          }
          children.push({ sortKey, name: dirent.name, isDir })
        }
        children.sort((a, b) => compareKeys(a.sortKey, b.sortKey))
        for (const child of children) {
          const full = path.join(dir, child.name)
          if (child.isDir) {
            if (!(await walk(full, child.sortKey))) return false
            continue
          }
          if (entries.length === limit) {
            truncated = true
            return false
          }
          try {
            const meta = await readMeta(child.sortKey, full)
            entries.push({ key: child.sortKey, size: meta.size, etag: meta.etag, lastModifiedMs: meta.lastModifiedMs })
          } catch (e) {
            if (!isErrno(e, "ENOENT")) throw e // deleted while listing
          }
        }
        return true
      }
      await walk(rootDir, "")
      return { entries, next: truncated ? entries.at(-1)?.key : undefined }
    }

    const readHeaderKey = async (file: string): Promise<string | undefined> => {
      const handle = await fs.open(file, "r").catch(() => undefined)
      if (handle === undefined) return undefined
      try {
        return (await readHeader(handle, file)).header.key
      } finally {
        await handle.close()
      }
    }

    const fileDriver: Driver = {
      name,
      get: (key: string, range: ByteRange | undefined) =>
        Effect.tryPromise({
          try: async () => {
            const file = pathOf(key)
            let handle: FileHandle
            try {
              handle = await fs.open(file, "r")
            } catch (e) {
              if (isErrno(e, "ENOENT") || isErrno(e, "ENOTDIR")) return new NotFound({ key })
              throw e
            }
            try {
              const { header, bodyOffset, size, mtimeMs } = await readHeader(handle, file)
              const meta: ObjectMeta = { key, size, etag: header.etag, lastModifiedMs: mtimeMs, putId: header.putId }
              const start = range?.start ?? 0
              if (range !== undefined && start >= size) return new InvalidRange({ key, start, end: range.end, size })
              const end = Math.min(range?.end ?? size, size)
              const body = Buffer.alloc(end - start)
              let done = 0
              while (done < body.length) {
                const { bytesRead } = await handle.read(body, done, body.length - done, bodyOffset + start + done)
                if (bytesRead === 0) throw new FileCorrupt(`object file shorter than its header says: ${file}`)
                done += bytesRead
              }
              return { meta, body: new Uint8Array(body.buffer, body.byteOffset, body.length) }
            } finally {
              await handle.close()
            }
          },
          catch: fail("get", key)
        }).pipe(Effect.flatMap((r) => ("_tag" in r ? Effect.fail(r) : Effect.succeed(r)))),
      head: (key) =>
        Effect.tryPromise({
          try: () =>
            readMeta(key, pathOf(key)).catch((e) => {
              if (isErrno(e, "ENOENT") || isErrno(e, "ENOTDIR")) return new NotFound({ key })
              throw e
            }),
          catch: fail("head", key)
        }).pipe(Effect.flatMap((r) => (r instanceof NotFound ? Effect.fail(r) : Effect.succeed(r)))),
      put: (key, body, putId) =>
        withKeyLock(
          key,
          Effect.tryPromise({
            try: async () => {
              const { chunks, result } = write(key, body, putId)
              await ensureParents(key)
              await writeDurably(pathOf(key), chunks, "rename")
              return result
            },
            catch: fail("put", key)
          })
        ),
      putIfAbsent: (key, body, putId) =>
        Effect.tryPromise({
          try: async () => {
            const { chunks, result } = write(key, body, putId)
            await ensureParents(key)
            const outcome = await writeDurably(pathOf(key), chunks, "link")
            return outcome === "exists" ? new AlreadyExists({ key }) : result
          },
          catch: failConditional("putIfAbsent", key, putId)
        }).pipe(
          // A file operation cannot be called back: once started, it runs to the end.
          Effect.uninterruptible,
          Effect.flatMap((r) => (r instanceof AlreadyExists ? Effect.fail(r) : Effect.succeed(r)))
        ),
      putIfMatch: (key, body, etag, putId) =>
        withKeyLock(
          key,
          Effect.tryPromise({
            try: async () => {
              const file = pathOf(key)
              const current = await readMeta(key, file).catch((e) => {
                if (isErrno(e, "ENOENT") || isErrno(e, "ENOTDIR")) return undefined
                throw e
              })
              if (current?.etag !== etag) return new PreconditionFailed({ key, expectedEtag: etag })
              const { chunks, result } = write(key, body, putId)
              await writeDurably(file, chunks, "rename")
              return result
            },
            catch: failConditional("putIfMatch", key, putId)
          }).pipe(Effect.flatMap((r) => (r instanceof PreconditionFailed ? Effect.fail(r) : Effect.succeed(r))))
        ),
      listPage: (prefix, startAfter, limit) =>
        Effect.tryPromise({ try: () => listPage(prefix, startAfter, limit), catch: fail("list", prefix) }),
      delete: (key) =>
        withKeyLock(
          key,
          Effect.tryPromise({
            try: async () => {
              const file = pathOf(key)
              try {
                await fs.unlink(file)
              } catch (e) {
                if (isErrno(e, "ENOENT") || isErrno(e, "ENOTDIR")) return
                throw e
              }
              await fsyncDir(path.dirname(file))
            },
            catch: fail("delete", key)
          })
        )
    }
    // --- packed keys: the log first, a file of an earlier version second ---------------------------

    /**
     * The files an earlier version left in each WAL directory, read once per directory: no file is made
     * there any more, so after that a WAL write costs no file-system call but its append.
     */
    const legacyFiles = new Map<string, Set<string>>()
    const legacyIn = async (dir: string) => {
      let names = legacyFiles.get(dir)
      if (names === undefined) {
        names = new Set(await fs.readdir(dir).catch((e: unknown) => {
          if (isErrno(e, "ENOENT") || isErrno(e, "ENOTDIR")) return []
          throw e
        }))
        legacyFiles.set(dir, names)
      }
      return names
    }
    const legacyMeta = async (key: string) => {
      const file = pathOf(key)
      if (!(await legacyIn(path.dirname(file))).has(path.basename(file))) return undefined
      return readMeta(key, file).catch((e) => {
        if (isErrno(e, "ENOENT") || isErrno(e, "ENOTDIR")) return undefined
        throw e
      })
    }
    /** Removes a file an earlier version stored for a key the log now holds. */
    const removeLegacy = async (key: string) => {
      const file = pathOf(key)
      const names = await legacyIn(path.dirname(file))
      if (!names.has(path.basename(file))) return
      try {
        await fs.unlink(file)
      } catch (e) {
        if (!isErrno(e, "ENOENT") && !isErrno(e, "ENOTDIR")) throw e
      }
      names.delete(path.basename(file))
      await fsyncDir(path.dirname(file))
    }
    /** A packed write: the log's failure may come after its bytes reached the disk. */
    const packedPut = async (key: string, body: Uint8Array, putId: string): Promise<PutResult> => {
      const etag = etagOf(putId, body)
      try {
        await packed.put(key, body, putId, etag)
      } catch (e) {
        throw new AfterMove(e)
      }
      return { etag, putId }
    }

    const driver: Driver = {
      name,
      get: (key, range) => {
        if (!isPackedKey(key)) return fileDriver.get(key, range)
        return Effect.tryPromise({
          try: async () => {
            const meta = packed.meta(key)
            if (meta === undefined) return undefined
            const start = range?.start ?? 0
            if (range !== undefined && start >= meta.size) return new InvalidRange({ key, start, end: range.end, size: meta.size })
            return await packed.read(key, start, Math.min(range?.end ?? meta.size, meta.size))
          },
          catch: fail("get", key)
        }).pipe(
          Effect.flatMap((r) => (r === undefined ? fileDriver.get(key, range) : "_tag" in r ? Effect.fail(r) : Effect.succeed(r)))
        )
      },
      head: (key) => {
        const meta = isPackedKey(key) ? packed.meta(key) : undefined
        return meta === undefined ? fileDriver.head(key) : Effect.succeed(meta)
      },
      put: (key, body, putId) => {
        if (!isPackedKey(key)) return fileDriver.put(key, body, putId)
        return withKeyLock(
          key,
          Effect.tryPromise({
            try: async () => {
              const result = await packedPut(key, body, putId)
              await removeLegacy(key)
              return result
            },
            catch: fail("put", key)
          })
        )
      },
      putIfAbsent: (key, body, putId) => {
        if (!isPackedKey(key)) return fileDriver.putIfAbsent(key, body, putId)
        return withKeyLock(
          key,
          Effect.tryPromise({
            try: async () => {
              if (packed.meta(key) !== undefined || (await legacyMeta(key)) !== undefined) return new AlreadyExists({ key })
              return await packedPut(key, body, putId)
            },
            catch: failConditional("putIfAbsent", key, putId)
          })
        ).pipe(Effect.flatMap((r) => (r instanceof AlreadyExists ? Effect.fail(r) : Effect.succeed(r))))
      },
      putIfMatch: (key, body, etag, putId) => {
        if (!isPackedKey(key)) return fileDriver.putIfMatch(key, body, etag, putId)
        return withKeyLock(
          key,
          Effect.tryPromise({
            try: async () => {
              const current = packed.meta(key) ?? (await legacyMeta(key))
              if (current?.etag !== etag) return new PreconditionFailed({ key, expectedEtag: etag })
              const result = await packedPut(key, body, putId)
              await removeLegacy(key).catch((e) => {
                throw new AfterMove(e)
              })
              return result
            },
            catch: failConditional("putIfMatch", key, putId)
          })
        ).pipe(Effect.flatMap((r) => (r instanceof PreconditionFailed ? Effect.fail(r) : Effect.succeed(r))))
      },
      listPage: (prefix, startAfter, limit) =>
        Effect.map(fileDriver.listPage(prefix, startAfter, limit), (files) => {
          const logged = packed.list(prefix, startAfter, limit + 1)
          if (logged.length === 0) return files
          // Both in key order; a key in both (a file being replaced) is the log's.
          const inLog = new Set(logged.map((e) => e.key))
          const merged = [...logged, ...files.entries.filter((e) => !inLog.has(e.key))].sort((a, b) => compareKeys(a.key, b.key))
          const entries = merged.slice(0, limit)
          const more = files.next !== undefined || logged.length > limit || merged.length > limit
          return { entries, next: more ? entries.at(-1)?.key : undefined }
        }),
      delete: (key) => {
        if (!isPackedKey(key)) return fileDriver.delete(key)
        return withKeyLock(
          key,
          Effect.tryPromise({
            try: async () => {
              await packed.remove(key)
              await removeLegacy(key)
            },
            catch: fail("delete", key)
          })
        )
      }
    }
    return driver
  })

/** A failure after a write was moved into place: the object may be there. */
class AfterMove extends Error {
  constructor(cause: unknown) {
    super(String(cause), { cause })
  }
}

/** For writes whose effect is the same either way (the `.segment` file of a directory). */
const afterMoveIsDone = (e: unknown) => {
  if (!(e instanceof AfterMove)) throw e
}

/** Roots this process has open: a second open in the same process is refused like one from another. */
const openRoots = new Set<string>()

/**
 * Takes `<root>/.lock`, created exclusively, holding our pid. A lock whose pid is not alive, or is our
 * own pid while this process does not hold the root (a restarted container is pid 1 again), is stale and
 * taken over.
 */
const takeLock = async (rootDir: string): Promise<string> => {
  const lockPath = path.join(rootDir, lockFileName)
  if (openRoots.has(rootDir)) throw new Error(`the directory is in use by process ${process.pid} (${lockPath})`)
  for (let attempt = 0; ; attempt++) {
    try {
      await fs.writeFile(lockPath, `${process.pid}\n`, { flag: "wx" })
      openRoots.add(rootDir)
      return lockPath
    } catch (e) {
      if (!isErrno(e, "EEXIST") || attempt > 0) throw e
    }
    const owner = Number.parseInt(await fs.readFile(lockPath, "utf8").catch(() => ""), 10)
    if (Number.isSafeInteger(owner) && owner !== process.pid && processAlive(owner)) {
      throw new Error(`the directory is in use by process ${owner} (${lockPath})`)
    }
    await fs.rm(lockPath, { force: true })
  }
}

const releaseLock = async (rootDir: string, lockPath: string) => {
  openRoots.delete(rootDir)
  await fs.rm(lockPath, { force: true })
}

/**
 * Refuses a case-insensitive or Unicode-normalising filesystem (macOS's default, Windows): there, keys
 * such as `a` and `A` would name one file.
 */
const checkFilesystem = async (tmpDir: string) => {
  const probe = path.join(tmpDir, `Case-\u00e9-${process.pid}`)
  const twins = [path.join(tmpDir, `case-\u00e9-${process.pid}`), path.join(tmpDir, `Case-e\u0301-${process.pid}`)]
  await fs.writeFile(probe, "")
  try {
    for (const twin of twins) {
      if (await fs.access(twin).then(() => true, () => false)) {
        throw new Error("the filesystem folds case or normalises Unicode in file names, so distinct keys would collide")
      }
    }
  } finally {
    await fs.rm(probe, { force: true })
  }
}

const processAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return isErrno(e, "EPERM")
  }
}
