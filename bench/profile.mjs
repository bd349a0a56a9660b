/**
 * A steady AIO Core hot loop to profile, e.g.
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/aio-prof bench/profile.mjs [seconds] [concurrency] [args]
 *   node bench/lib/cpuprofile-top.mjs /tmp/aio-prof/<file>.cpuprofile
 *
 * args: "positional" (execute(…, 6), default) or "named" (execute(…, { number: 6 })) on PluginB's
 * sync endpoint; "async" or "async-named" the same on bench/fixtures/AsyncSquare's async one.
 * A fourth argument gives every call that `timeout` (ms).
 * AIO_BENCH_DIST selects another build (a dist/index.js URL or path), e.g. a scratch copy.
 */
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { makeCase } from "./lib/harness.mjs";

const root = resolve(fileURLToPath(new URL("..", import.meta.url)));
const [seconds = "5", concurrency = "1", shape = "positional", timeout] = process.argv.slice(2);
const dist = process.env.AIO_BENCH_DIST;
const distUrl = !dist
  ? pathToFileURL(join(root, "dist/index.js")).href
  : dist.startsWith("file:")
    ? dist
    : pathToFileURL(resolve(dist.endsWith(".js") ? dist : join(dist, "index.js"))).href;

const { PluginCore } = await import(distUrl);
const core = new PluginCore({
  plugins: [
    { name: "PluginB", path: join(root, "examples/plugins_test/PluginB") },
    { name: "AsyncSquare", path: join(root, "bench/fixtures/AsyncSquare") },
  ],
  general: { console_log_level: "ERROR", log_dir: "" },
});
await core.start();
if (!["positional", "named", "async", "async-named"].includes(shape))
  throw new Error(`unknown args "${shape}": positional, named, async or async-named`);
const args = shape.endsWith("named") ? { number: 6 } : 6;
const plugin = shape.startsWith("async") ? "AsyncSquare" : "PluginB";
const options = timeout === undefined ? undefined : { timeout: Number(timeout) };
const fn = () => core.execute(plugin, "calculate_square", args, options);
if ((await fn()) !== 36) throw new Error(`${plugin}.calculate_square(6) is not 36`);

const measure = makeCase(fn, Number(concurrency));
await measure(500);
const { perSec } = await measure(Number(seconds) * 1000);
console.log(
  `${shape} args${options ? `, timeout ${timeout} ms` : ""}, ${concurrency} in flight: ${(perSec / 1e6).toFixed(2)} M calls/s (${(1e9 / perSec).toFixed(0)} ns/call)`,
);
await core.close();
