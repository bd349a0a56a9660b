import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const dist = fileURLToPath(new URL("./dist/", import.meta.url));

export default defineConfig({
  resolve: {
    // Tests use the package as users do: its built output, loaded by Node itself, so the
    // plugins a test loads at run time share one copy of the runtime with the test.
    alias: [{ find: /^aio-assistant-core$/, replacement: `${dist}index.js` }],
  },
  test: {
    include: ["test/**/*.test.ts"],
    // The JSON report gives .ci/run its "N passed, N failed" line.
    reporters: ["default", "json"],
    outputFile: { json: ".vitest-report.json" },
    pool: "forks",
    // Two test files at a time even on two cores: most tests wait on other processes (nodes,
    // nats-server, a browser) rather than compute, and the tests are written to pass on a busy
    // machine. One at a time, the suite takes over six minutes.
    maxWorkers: 2,
    testTimeout: 20_000,
    hookTimeout: 20_000,
    server: { deps: { external: [/\/dist\//] } },
  },
});
