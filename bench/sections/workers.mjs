/**
 * Worker isolation: the round trip of a blocking executeSync from a worker plugin to an async
 * endpoint on the main thread (target p50 ≤ 50 µs), against synckit's blocking call measured in
 * the same run (it publishes ~143 µs), calls per second
 * into a worker plugin against the same plugin in-process, and the time a reload takes.
 */
import { fileURLToPath } from "node:url";
import { createSyncFn } from "synckit";
import {
  formatMs,
  formatRate,
  interleaved,
  makeCase,
  median,
  spread,
  table,
} from "../lib/harness.mjs";

export const name = "workers";
export const description =
  "worker isolation: executeSync round trip, calls into a worker, reload time";

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));
const PLUGIN_B = fileURLToPath(new URL("../../examples/plugins_test/PluginB", import.meta.url));

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

export async function run(ctx) {
  const { PluginCore } = await import(ctx.distUrl);
  const core = new PluginCore({
    plugins: [
      { name: "AsyncTarget", path: `${FIXTURES}AsyncTarget` },
      { name: "WorkerBench", path: `${FIXTURES}WorkerBench` },
      { name: "PluginB", path: PLUGIN_B },
    ],
    general: { console_log_level: "ERROR", log_dir: "" },
  });
  await core.start();
  const failed = core.listPlugins().filter((p) => p.state !== "enabled");
  if (failed.length) throw new Error(`plugins not enabled: ${JSON.stringify(failed)}`);
  const results = {};
  const { rounds, ms: timeMs, warmupMs } = ctx.workers;
  try {
    // 1. executeSync round trips, timed inside the worker where the call is made, against
    // synckit's blocking call to an async function in a worker, timed where it is made, in
    // interleaved rounds of the same number of calls.
    ctx.progress("  executeSync from a worker to an async main-thread endpoint, and synckit");
    const calls = ctx.quick ? 2_000 : 20_000;
    const syncAdd = createSyncFn(`${FIXTURES}synckit/add-worker.mjs`);
    const synckitRound = (n) => {
      const micros = [];
      for (let i = 0; i < n; i++) {
        const started = performance.now();
        const sum = syncAdd(i, 1);
        micros.push((performance.now() - started) * 1000);
        if (sum !== i + 1) throw new Error(`synckit add gave ${sum}, not ${i + 1}`);
      }
      return micros;
    };
    const sides = {
      aio: () => core.execute("WorkerBench", "sync_round_trips", calls),
      synckit: async () => synckitRound(calls),
    };
    await core.execute("WorkerBench", "sync_round_trips", 500);
    synckitRound(500);
    const percentiles = { aio: [], synckit: [] };
    for (let r = 0; r < rounds; r++) {
      for (const id of r % 2 ? ["synckit", "aio"] : ["aio", "synckit"]) {
        const micros = await sides[id]();
        micros.sort((a, b) => a - b);
        percentiles[id].push({ p50: percentile(micros, 50), p99: percentile(micros, 99) });
      }
    }
    const pick = (id, p) => median(percentiles[id].map((r) => r[p]));
    const p50 = pick("aio", "p50");
    const p99 = pick("aio", "p99");
    const synckit = { p50: pick("synckit", "p50"), p99: pick("synckit", "p99") };
    results.syncRoundTrip = { p50Micros: p50, p99Micros: p99, calls, synckit };

    // 2. Calls into the worker plugin, against the same plain function in-process.
    ctx.progress("  calls into a worker plugin vs in-process");
    const contenders = [];
    for (const concurrency of [1, 64]) {
      contenders.push({
        id: `worker-${concurrency}`,
        measure: makeCase(() => core.execute("WorkerBench", "calculate_square", 6), concurrency, {
          chunk: concurrency > 1 ? 8 : 64,
        }),
      });
      contenders.push({
        id: `local-${concurrency}`,
        measure: makeCase(() => core.execute("PluginB", "calculate_square", 6), concurrency),
      });
    }
    const samples = await interleaved(contenders, { rounds, ms: timeMs, warmupMs });
    const rate = (id) => median(samples[id]);
    results.calls = Object.fromEntries(Object.keys(samples).map((id) => [id, rate(id)]));

    // 3. Reload time, worker and in-process.
    ctx.progress("  reloads");
    const reloads = ctx.quick ? 3 : 10;
    const timeReloads = async (plugin) => {
      const times = [];
      for (let i = 0; i < reloads; i++) {
        const t0 = performance.now();
        await core.reloadPlugin(plugin);
        times.push(performance.now() - t0);
      }
      return median(times);
    };
    results.reload = {
      worker: await timeReloads("WorkerBench"),
      inProcess: await timeReloads("PluginB"),
    };

    const lines = [];
    lines.push(
      `Blocking round trip to an async function on another thread: ${calls} calls × ${rounds} interleaved rounds, each call timed where it is made (median of the rounds' percentiles)`,
    );
    lines.push(
      table(
        ["contender", "p50", "p99"],
        [
          [
            "AIO executeSync, worker plugin → main thread",
            `${p50.toFixed(1)} µs`,
            `${p99.toFixed(1)} µs`,
          ],
          [
            "synckit createSyncFn, main thread → worker",
            `${synckit.p50.toFixed(1)} µs`,
            `${synckit.p99.toFixed(1)} µs`,
          ],
        ],
      ),
    );
    lines.push(`AIO p50 / synckit p50: ${(p50 / synckit.p50).toFixed(2)}x (lower is faster)`);
    lines.push(
      `Target p50 <= 50 µs (synckit publishes ~143 µs): ${p50 <= 50 ? "MET" : "NOT MET"} (${p50.toFixed(1)} µs)`,
    );
    lines.push("");
    lines.push(
      "execute of calculate_square(6): a worker plugin against the same function in-process",
    );
    lines.push(
      table(
        ["contender", "1 in flight", "64 in flight"],
        [
          [
            "worker plugin",
            `${formatRate(rate("worker-1"))} ${spread(samples["worker-1"])}`,
            `${formatRate(rate("worker-64"))} ${spread(samples["worker-64"])}`,
          ],
          [
            "in-process plugin",
            `${formatRate(rate("local-1"))} ${spread(samples["local-1"])}`,
            `${formatRate(rate("local-64"))} ${spread(samples["local-64"])}`,
          ],
          [
            "worker / in-process",
            `${(rate("worker-1") / rate("local-1")).toFixed(3)}x`,
            `${(rate("worker-64") / rate("local-64")).toFixed(3)}x`,
          ],
        ],
      ),
    );
    lines.push("");
    lines.push(
      `Reload (median of ${reloads}): worker ${formatMs(results.reload.worker)} (a fresh thread, its module cache freed), in-process ${formatMs(results.reload.inProcess)} (fast, but each reload keeps the old module in memory)`,
    );
    ctx.print(lines.join("\n"));
    return { ...results, met: p50 <= 50 };
  } finally {
    await core.close();
  }
}
