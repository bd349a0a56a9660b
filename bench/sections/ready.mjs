/**
 * Time to ready with the five example plugins: cold, in fresh child processes (bench/ready.mjs;
 * the first import and the first compile of each plugin count), and warm, a further core in
 * this process after one has already started (modules imported and compiled).
 */
import { spawn } from "node:child_process";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { exampleConfig } from "../lib/example-config.mjs";
import { formatMs, median, table } from "../lib/harness.mjs";

export const name = "ready";
export const description = "time from new PluginCore(examples config) to ready, cold and warm";

const CHILD = fileURLToPath(new URL("../ready.mjs", import.meta.url));

function runChild(ctx, config) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, [CHILD], {
      env: {
        ...process.env,
        AIO_BENCH_CONFIG: JSON.stringify(config),
        AIO_BENCH_DIST: ctx.distUrl,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("error", reject);
    child.on("close", (code) => {
      const wallMs = performance.now() - started;
      if (code !== 0) return reject(new Error(`bench/ready.mjs exited ${code}: ${err || out}`));
      try {
        resolve({ ...JSON.parse(out.trim().split("\n").pop()), wallMs, stderr: err });
      } catch (error) {
        reject(new Error(`bench/ready.mjs printed no result: ${out}${err}`, { cause: error }));
      }
    });
  });
}

export async function run(ctx) {
  const config = exampleConfig(ctx.root);
  const expected = config.plugins.filter((p) => p.enabled !== false).length;
  const { cold: coldRuns, warm: warmRuns } = ctx.ready;

  ctx.progress(`  cold: ${coldRuns} fresh processes`);
  const cold = [];
  for (let i = 0; i < coldRuns; i++) {
    const result = await runChild(ctx, config);
    if (result.enabled !== expected) {
      throw new Error(
        `only ${result.enabled}/${expected} example plugins enabled:\n${result.stderr}`,
      );
    }
    cold.push(result);
  }

  ctx.progress(`  warm: ${warmRuns} more cores in this process`);
  const { PluginCore } = await import(ctx.distUrl);
  const first = new PluginCore(config);
  await first.waitUntilReady();
  await first.close();
  const warm = [];
  for (let i = 0; i < warmRuns; i++) {
    const t0 = performance.now();
    const core = new PluginCore(config);
    await core.waitUntilReady();
    warm.push(performance.now() - t0);
    const enabled = core.listPlugins().filter((p) => p.state === "enabled").length;
    await core.close();
    if (enabled !== expected)
      throw new Error(`warm core: only ${enabled}/${expected} plugins enabled`);
  }

  const pick = (key) => median(cold.map((r) => r[key]));
  const range = (values) => `${formatMs(Math.min(...values))}–${formatMs(Math.max(...values))}`;
  const rows = [
    ["cold: import of the package", formatMs(pick("importMs")), range(cold.map((r) => r.importMs))],
    ["cold: new PluginCore → ready", formatMs(pick("readyMs")), range(cold.map((r) => r.readyMs))],
    [
      "cold: import + new → ready",
      formatMs(median(cold.map((r) => r.importMs + r.readyMs))),
      range(cold.map((r) => r.importMs + r.readyMs)),
    ],
    [
      "cold: process start → ready",
      formatMs(pick("sinceBoot")),
      range(cold.map((r) => r.sinceBoot)),
    ],
    [
      "cold: spawn → exit (incl. close)",
      formatMs(pick("wallMs")),
      range(cold.map((r) => r.wallMs)),
    ],
    ["warm: new PluginCore → ready", formatMs(median(warm)), range(warm)],
  ];
  ctx.print(
    [
      `Time to ready, examples/config.yml (${expected} plugins, console ERROR, no log file, InteropCaller run_on_enable off): median of ${coldRuns} cold / ${warmRuns} warm`,
      table(["measure", "median", "range"], rows),
    ].join("\n"),
  );
  return {
    cold: {
      importMs: pick("importMs"),
      readyMs: pick("readyMs"),
      sinceBoot: pick("sinceBoot"),
      wallMs: pick("wallMs"),
    },
    warm: { readyMs: median(warm) },
  };
}
