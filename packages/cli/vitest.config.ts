import { defineProject } from "vitest/config"

// The workspace's packages export `dist/` to everyone else; this condition makes tests resolve their sources
// (see "@effect-inference/source" in each package.json), so no build is needed to test. The rest is Vite's default.
const conditions = ["@effect-inference/source", "module", "node", "development|production"]

export default defineProject({
  resolve: { conditions },
  ssr: { resolve: { conditions } },
  test: {
    name: "cli",
    include: ["test/**/*.test.ts"],
    sequence: { concurrent: false }
  }
})
