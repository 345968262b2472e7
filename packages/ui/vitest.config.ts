import { defineConfig } from "vitest/config"

// The app's local-time helpers (end times, the Logs page's time input) read the process's zone: pin one that
// is not UTC and has daylight saving, so that local-versus-UTC mistakes show. Set before the workers start.
process.env["TZ"] = "America/New_York"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    environment: "node",
    env: { TZ: "America/New_York" }
  }
})
