/**
 * Process entry point: `npm start` (or `node packages/runtime/dist/main.js`). Reads the configuration
 * from the environment and `opendata.yaml`, serves until SIGINT/SIGTERM, then shuts down cleanly: the
 * server stops accepting requests, finishes those in flight, closes the object store, and the process
 * exits with code 0. A second signal during the shutdown forces the exit (code 130). See Signals.ts.
 */
import { ConfigProvider, Effect } from "effect"
import * as Config from "./Config.ts"
import * as ConfigFile from "./ConfigFile.ts"
import * as Server from "./Server.ts"
import { runMain } from "./Signals.ts"

const main = Effect.gen(function*() {
  // The environment, then opendata.yaml (or the file OPENDATA_CONFIG names).
  const provider = yield* ConfigFile.provider(undefined)
  const config = yield* Effect.provideService(Config.load, ConfigProvider.ConfigProvider, provider)
  // Logs the effective configuration, then serves with the configured log format and level.
  return yield* Server.launch(config)
})

runMain(main)
