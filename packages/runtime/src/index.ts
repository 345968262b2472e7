/**
 * @opendata/runtime: the process that serves the products over HTTP, and the Layers to embed it.
 */
export * as Config from "./Config.ts"
export * as Server from "./Server.ts"
