/**
 * Shutdown signals. The first SIGINT or SIGTERM starts the graceful shutdown (the Effect runtime interrupts
 * the main fiber: stop accepting, let in-flight requests finish, drain and flush the products, close the
 * store). A second one forces the exit at once, as an operator pressing Ctrl-C twice expects: requests
 * still in flight are cut off unanswered, so nothing they carried was acknowledged; everything
 * acknowledged before is already durable.
 */
export const exitCodeForced = 130

/** Installs the "second signal forces the exit" handler; call once, before the runtime starts. */
export const forceExitOnSecondSignal = (): void => {
  let received = 0
  const onSignal = (signal: NodeJS.Signals) => {
    received += 1
    if (received < 2) return
    process.stderr.write(`received ${signal} during shutdown: exiting now (in-flight requests are not acknowledged)\n`)
    process.exit(exitCodeForced)
  }
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)
}
