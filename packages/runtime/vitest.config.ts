import { defineConfig } from "vitest/config"

export default defineConfig({
  resolve: { conditions: ["@opendata/source", "node"] },
  ssr: { resolve: { conditions: ["@opendata/source", "node"] } },
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/build.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    fileParallelism: false
  }
})
