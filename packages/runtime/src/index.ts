/**
 * @opendata/runtime: the process that serves the products over HTTP, and the Layers to embed them.
 */
export * as Config from "./Config.ts"
export * as OpenData from "./OpenData.ts"
export * as Server from "./Server.ts"
