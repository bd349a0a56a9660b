/**
 * The attacked node of the `hostile` section (bench/sections/hostile.mjs), forked with IPC.
 * A PluginCore with networking on 127.0.0.1 (port 0), a secret, `drain_timeout: 1`, the heap
 * growth `aio run` sets (src/cli/heap.ts), serving
 * PluginB (examples) and BigStream (bench/fixtures: a generator of 64 KiB strings).
 *
 * Environment: AIO_BENCH_DIST (the package under test, a dist/index.js URL), AIO_BENCH_SECRET.
 *
 *   → parent: { type: "ready", port, pid }
 *   ← parent: { type: "cpu", id } → parent: { type: "cpu", id, us, memory } (user + system µs,
 *             process.memoryUsage())
 *   SIGTERM   → core.close(), then → parent { type: "closed", ms } (close() alone) and exit 0
 *
 * It also closes and exits when the IPC channel goes (the benchmark gone), so a crashed
 * benchmark leaves no process behind.
 */
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const { PluginCore } = await import(process.env.AIO_BENCH_DIST);
// The node runs as `aio run` runs it: with V8's heap growth limited (src/cli/heap.ts).
const { limitHeapGrowth } = await import(new URL("./cli/heap.js", process.env.AIO_BENCH_DIST).href);
limitHeapGrowth();

const core = new PluginCore({
  plugins: [
    { name: "PluginB", path: join(root, "examples/plugins_test/PluginB") },
    { name: "BigStream", path: join(root, "bench/fixtures/BigStream") },
  ],
  general: {
    hostname: "hostile-node",
    console_log_level: "ERROR",
    log_dir: "",
    drain_timeout: 1,
  },
  networking: {
    enabled: true,
    port: 0,
    bind: "127.0.0.1",
    secret: process.env.AIO_BENCH_SECRET,
    discover_nodes: false,
  },
});

let closing;
function close(report) {
  closing ??= (async () => {
    const t0 = performance.now();
    try {
      await core.close();
    } catch (error) {
      process.stderr.write(`close() failed: ${error?.stack ?? error}\n`);
    }
    const ms = performance.now() - t0;
    if (report && process.connected) {
      await new Promise((done) => process.send({ type: "closed", ms }, () => done()));
    }
    process.exit(0);
  })();
  return closing;
}

process.on("SIGTERM", () => void close(true));
process.on("disconnect", () => void close(false));
process.on("message", (message) => {
  if (message?.type === "cpu") {
    const { user, system } = process.cpuUsage();
    process.send({ type: "cpu", id: message.id, us: user + system, memory: process.memoryUsage() });
  }
});

await core.start();
const failed = core.listPlugins().filter((p) => p.state !== "enabled");
if (failed.length) {
  process.stderr.write(`plugins not enabled: ${JSON.stringify(failed)}\n`);
  process.exit(1);
}
process.send({ type: "ready", port: core.port, pid: process.pid });
