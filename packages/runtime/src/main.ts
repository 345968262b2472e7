/**
 * Process entry point: `npm start` (or `node packages/runtime/dist/main.js`). Reads the configuration
 * from the environment, serves until SIGINT/SIGTERM, then shuts down cleanly: the server stops accepting
 * requests, finishes those in flight, closes the object store, and the process exits with code 0. A
 * second signal during the shutdown forces the exit (code 130).
 */
import { NodeRuntime } from "@effect/platform-node"
import { Cause, ConfigProvider, Effect, Exit, Layer, Runtime } from "effect"
import * as Config from "./Config.ts"
import * as ConfigFile from "./ConfigFile.ts"
import * as Server from "./Server.ts"
import { forceExitOnSecondSignal } from "./Signals.ts"

const main = Effect.gen(function*() {
  // The environment, then opendata.yaml (or the file OPENDATA_CONFIG names).
  const provider = yield* ConfigFile.provider(undefined)
  const config = yield* Effect.provideService(Config.load, ConfigProvider.ConfigProvider, provider)
  return yield* Layer.launch(Server.layer(config))
})

/** A signal-driven shutdown that completed its cleanup is a success, as for Prometheus. */
const teardown: Runtime.Teardown = (exit, onExit) =>
  Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)

forceExitOnSecondSignal()
NodeRuntime.runMain(main, { teardown })
