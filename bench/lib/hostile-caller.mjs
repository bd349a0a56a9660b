/**
 * The normal caller of the `hostile` section (bench/sections/hostile.mjs), forked with IPC
 * (serialization "advanced"). An AIO node without plugins, the same secret as the attacked node
 * and that node in its `node_ips`; it calls `execute("PluginB", "calculate_square", 6)` over
 * its channel to the node, as nodes do.
 *
 * Environment: AIO_BENCH_DIST (the package under test), AIO_BENCH_SECRET, AIO_BENCH_NODE_PORT.
 *
 *   → parent: { type: "ready" } once a call returned 36
 *   ← parent: { type: "measure", id, ms, concurrency }: `concurrency` closed loops of awaited
 *             calls for `ms`, every call timed with performance.now()
 *             → parent: { type: "measured", id, ops, errors, firstError, ms, latency: Float64Array }
 *   ← parent: { type: "cpu", id } → parent: { type: "cpu", id, us }
 *   ← parent: { type: "gc", id } → a full GC (with --expose-gc) → parent: { type: "gc", id }
 *   ← parent: { type: "stop" } (or the IPC channel gone) → closes and exits 0
 */
const { PluginCore } = await import(process.env.AIO_BENCH_DIST);
const port = Number(process.env.AIO_BENCH_NODE_PORT);
const now = () => performance.now();

const core = new PluginCore({
  plugins: [],
  general: { hostname: "hostile-caller", console_log_level: "CRITICAL", log_dir: "" },
  networking: {
    enabled: true,
    port: 0,
    bind: "127.0.0.1",
    secret: process.env.AIO_BENCH_SECRET,
    discover_nodes: false,
    node_ips: [`127.0.0.1:${port}`],
  },
});

let stopping;
function stop() {
  stopping ??= core
    .close()
    .catch(() => undefined)
    .then(() => process.exit(0));
  return stopping;
}
process.on("disconnect", () => void stop());

const call = () => core.execute("PluginB", "calculate_square", 6);

async function measure(ms, concurrency) {
  const latency = [];
  let errors = 0;
  let firstError;
  const start = now();
  const end = start + ms;
  const loop = async () => {
    do {
      const t = now();
      try {
        const value = await call();
        if (value !== 36) throw new Error(`returned ${JSON.stringify(value)}`);
        latency.push(now() - t);
      } catch (error) {
        errors++;
        firstError ??= String(error?.code ?? error?.message ?? error);
      }
    } while (now() < end);
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  return {
    ops: latency.length,
    errors,
    firstError,
    ms: now() - start,
    latency: Float64Array.from(latency),
  };
}

process.on("message", (message) => {
  if (message?.type === "measure") {
    measure(message.ms, message.concurrency).then((result) =>
      process.send({ type: "measured", id: message.id, ...result }),
    );
  } else if (message?.type === "cpu") {
    const { user, system } = process.cpuUsage();
    process.send({ type: "cpu", id: message.id, us: user + system });
  } else if (message?.type === "gc") {
    globalThis.gc?.();
    process.send({ type: "gc", id: message.id });
  } else if (message?.type === "stop") {
    void stop();
  }
});

await core.start();
const deadline = Date.now() + 15_000;
for (;;) {
  try {
    if ((await call()) === 36) break;
  } catch (error) {
    if (Date.now() > deadline) {
      process.stderr.write(`no successful call to the node: ${error?.stack ?? error}\n`);
      process.exit(1);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
const listed = core.nodes().find((n) => n.hostname === "hostile-node");
if (!listed?.alive) {
  process.stderr.write(`the caller does not list the node: ${JSON.stringify(core.nodes())}\n`);
  process.exit(1);
}
process.send({ type: "ready" });
