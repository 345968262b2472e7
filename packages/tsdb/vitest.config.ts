import { defineConfig } from "vitest/config"

export default defineConfig({
  resolve: { conditions: ["@opendata/source", "node"] },
  ssr: { resolve: { conditions: ["@opendata/source", "node"] } },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores: keep one file at a time so real-server tests are not starved.
    fileParallelism: false
  }
})
