/**
 * How the process ends (`main.ts`, `cli.ts`): shutdown signals, exit codes, and the report of a failure.
 *
 * The first SIGINT or SIGTERM starts the graceful shutdown (the Effect runtime interrupts the main fiber:
 * stop accepting, let in-flight requests finish, drain and flush the products, close the store); once it
 * completes, the process exits with code 0, as Prometheus does. A second signal forces the exit at once
 * (code 130), as an operator pressing Ctrl-C twice expects: requests still in flight are cut off
 * unanswered, so nothing they carried was acknowledged; everything acknowledged before is already durable.
 *
 * One Ctrl-C often arrives more than once: the terminal sends SIGINT to every process of the foreground
 * group, and the processes in front of the server (npm for `npm start` and `npx`, `bin/opendata.js`) pass
 * on what they receive as well, within milliseconds. A SIGINT that follows the first one within
 * `duplicateWindowMs` is a copy of it, not a second Ctrl-C. A SIGTERM always counts: supervisors send it
 * to one process, on purpose.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Exit, Option, Runtime } from "effect"

export const exitCodeForced = 130

/** A SIGINT this soon after the first signal is a copy of the same Ctrl-C (a person's second one comes later). */
export const duplicateWindowMs = 100

/** Installs the "second signal forces the exit" handler; call once, before the runtime starts. */
export const forceExitOnSecondSignal = (): void => {
  let firstAtMs: number | undefined
  const onSignal = (signal: NodeJS.Signals) => {
    const nowMs = performance.now()
    if (firstAtMs === undefined) {
      firstAtMs = nowMs
      return
    }
    if (signal === "SIGINT" && nowMs - firstAtMs < duplicateWindowMs) return
    process.stderr.write(`received ${signal} during shutdown: exiting now (in-flight requests are not acknowledged)\n`)
    process.exit(exitCodeForced)
  }
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)
}

/** A signal-driven shutdown that completed its cleanup is a success, as for Prometheus. */
const teardown: Runtime.Teardown = (exit, onExit) =>
  Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)

/**
 * An error as one line: its message; for one without (the HTTP server's `ServeError` around Node's
 * `listen EADDRINUSE`, say), its tag and its cause's description.
 */
export const describe = (error: unknown): string => {
  if (error instanceof Error && error.message !== "") return error.message
  const fields = typeof error === "object" && error !== null ? (error as { readonly _tag?: unknown; readonly cause?: unknown }) : undefined
  const tag = typeof fields?._tag === "string" ? fields._tag : undefined
  if (fields?.cause !== undefined && fields.cause !== error) return `${tag === undefined ? "" : `${tag}: `}${describe(fields.cause)}`
  return tag ?? String(error)
}

/**
 * Runs the process's main effect until it ends or a signal stops it. A failure (a bad configuration, a
 * store that cannot be used) is reported as one line on stderr, `opendata: <message>`, unless
 * `alreadyReported` says it was shown already; a defect, which is a bug, with its trace. Either exits 1.
 */
export const runMain = <E>(
  main: Effect.Effect<unknown, E>,
  options: { readonly alreadyReported?: ((error: E) => boolean) | undefined } = {}
): void => {
  const report = (cause: Cause.Cause<E>) =>
    Effect.sync(() => {
      if (Cause.hasInterruptsOnly(cause)) return
      const error = Cause.findErrorOption(cause)
      if (Option.isNone(error)) process.stderr.write(`${Cause.pretty(cause)}\n`)
      else if (options.alreadyReported?.(error.value) !== true) {
        process.stderr.write(`opendata: ${describe(error.value)}\n`)
      }
    })
  forceExitOnSecondSignal()
  NodeRuntime.runMain(Effect.tapCause(main, report), { teardown, disableErrorReporting: true })
}
