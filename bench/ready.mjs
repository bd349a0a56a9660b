/**
 * Child process for the "ready" section: how long a fresh process takes to import the package
 * and bring the example node up. Prints one JSON line. The config object comes in
 * AIO_BENCH_CONFIG (built by the parent, so this process loads nothing but the package).
 *
 *   importMs  dynamic import of the package
 *   readyMs   new PluginCore(config) until waitUntilReady() resolves
 *   sinceBoot process start (performance.timeOrigin) until ready
 *   closeMs   close()
 */
import { performance } from "node:perf_hooks";

const config = JSON.parse(process.env.AIO_BENCH_CONFIG ?? "null");
const distUrl = process.env.AIO_BENCH_DIST ?? new URL("../dist/index.js", import.meta.url).href;
if (!config)
  throw new Error("AIO_BENCH_CONFIG is not set: run this through `node bench/run.mjs ready`");

const t0 = performance.now();
const { PluginCore } = await import(distUrl);
const t1 = performance.now();
const core = new PluginCore(config);
await core.waitUntilReady();
const t2 = performance.now();
const plugins = core.listPlugins();
await core.close();
const t3 = performance.now();

const enabled = plugins.filter((p) => p.state === "enabled").length;
process.stdout.write(
  `${JSON.stringify({ importMs: t1 - t0, readyMs: t2 - t1, sinceBoot: t2, closeMs: t3 - t2, enabled, plugins: plugins.length })}\n`,
);
