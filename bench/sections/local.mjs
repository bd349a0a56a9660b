/**
 * Local `execute` against baselines in the same process, for a sync and an async endpoint,
 * each at 1 and 64 calls in flight:
 *
 * - AIO Core: `core.execute(plugin, "calculate_square", args)` on PluginB (a plain method) and
 *   on bench/fixtures/AsyncSquare (the same body in an `async` method), with the argument
 *   positional (`6`) and named (`{ number: 6 }`). Both manifests declare `number: number`, so
 *   every call is bound to the declared names and type-checked before the plugin runs.
 * - Moleculer 0.14, local `broker.call("<service>.calculate_square", { number: 6 })` (params are
 *   always named there): the service `PluginB` has a plain handler, `AsyncSquare` an `async`
 *   one, both `params: { number: "number" }`. One broker with `validator: false` (params
 *   unchecked: less work than AIO does) and one with its default fastest-validator checking
 *   `params` per call (the same check as AIO's). No transporter, metrics, tracing or logger.
 * - The ceiling: a direct method call (`await square(6)`), plain and `async`.
 */
import { join } from "node:path";
import moleculer from "moleculer";
import { formatRate, interleaved, makeCase, median, spread, table } from "../lib/harness.mjs";

export const name = "local";
export const description =
  "local execute of a sync and an async endpoint vs direct call and Moleculer";

const CONCURRENCIES = [1, 64];

async function startMoleculer(validator) {
  const broker = new moleculer.ServiceBroker({
    nodeID: validator ? "bench-validating" : "bench-plain",
    logger: false,
    transporter: null,
    // true: the default fastest-validator checks `params`; false: no validation at all.
    validator,
    metrics: false,
    tracing: false,
  });
  broker.createService({
    name: "PluginB",
    actions: {
      calculate_square: {
        params: { number: "number" },
        handler(ctx) {
          return ctx.params.number ** 2;
        },
      },
    },
  });
  broker.createService({
    name: "AsyncSquare",
    actions: {
      calculate_square: {
        params: { number: "number" },
        async handler(ctx) {
          return ctx.params.number ** 2;
        },
      },
    },
  });
  await broker.start();
  return broker;
}

async function startAio(ctx, metrics = true) {
  const { PluginCore } = await import(ctx.distUrl);
  const core = new PluginCore({
    plugins: [
      { name: "PluginB", path: join(ctx.root, "examples/plugins_test/PluginB") },
      { name: "AsyncSquare", path: join(ctx.root, "bench/fixtures/AsyncSquare") },
    ],
    general: { console_log_level: "ERROR", log_dir: "", metrics },
  });
  await core.start();
  return core;
}

export async function run(ctx) {
  const core = await startAio(ctx);
  // The same with `general.metrics: false`: what counting for /metrics costs.
  const bare = await startAio(ctx, false);
  const plain = await startMoleculer(false);
  const validating = await startMoleculer(true);
  const direct = {
    calculate_square(number) {
      return number ** 2;
    },
    async calculate_square_async(number) {
      return number ** 2;
    },
  };

  // Each contender's one call; every one must answer 36 before it is timed.
  const calls = [
    // The ceiling, `await plugin.calculate_square(6)`: the loop awaits every call's result.
    { id: "direct", label: "direct method call (ceiling)", fn: () => direct.calculate_square(6) },
    {
      id: "directAsync",
      label: "direct async method call (ceiling)",
      fn: () => direct.calculate_square_async(6),
    },
    {
      id: "aio",
      label: "AIO Core execute(…, 6)",
      fn: () => core.execute("PluginB", "calculate_square", 6),
    },
    {
      id: "aioNamed",
      label: "AIO Core execute(…, { number: 6 })",
      fn: () => core.execute("PluginB", "calculate_square", { number: 6 }),
    },
    {
      id: "aioNoMetrics",
      label: "AIO Core execute(…, 6), metrics off",
      fn: () => bare.execute("PluginB", "calculate_square", 6),
    },
    {
      id: "aioAsyncNoMetrics",
      label: "AIO Core async endpoint, metrics off",
      fn: () => bare.execute("AsyncSquare", "calculate_square", 6),
    },
    {
      id: "aioAsync",
      label: "AIO Core async endpoint, execute(…, 6)",
      fn: () => core.execute("AsyncSquare", "calculate_square", 6),
    },
    {
      id: "aioAsyncNamed",
      label: "AIO Core async endpoint, execute(…, { number: 6 })",
      fn: () => core.execute("AsyncSquare", "calculate_square", { number: 6 }),
    },
    {
      id: "mol",
      label: "Moleculer call, validator: false",
      fn: () => plain.call("PluginB.calculate_square", { number: 6 }),
    },
    {
      id: "molVal",
      label: "Moleculer call, fastest-validator",
      fn: () => validating.call("PluginB.calculate_square", { number: 6 }),
    },
    {
      id: "molAsync",
      label: "Moleculer async action, validator: false",
      fn: () => plain.call("AsyncSquare.calculate_square", { number: 6 }),
    },
    {
      id: "molAsyncVal",
      label: "Moleculer async action, fastest-validator",
      fn: () => validating.call("AsyncSquare.calculate_square", { number: 6 }),
    },
  ];
  for (const c of calls) {
    const got = await c.fn();
    if (got !== 36) throw new Error(`${c.label} returned ${got}, expected 36`);
  }
  // The validating contenders must really validate, and the other Moleculer must not.
  const outcome = (promise) =>
    promise.then(
      () => "accepted",
      (error) => error?.code ?? error?.type ?? "rejected",
    );
  const checks = {
    aio: await outcome(core.execute("PluginB", "calculate_square", "6")),
    aioAsync: await outcome(core.execute("AsyncSquare", "calculate_square", { number: "6" })),
    molVal: await outcome(validating.call("PluginB.calculate_square", { number: "6" })),
    molAsyncVal: await outcome(validating.call("AsyncSquare.calculate_square", { number: "6" })),
    mol: await outcome(plain.call("PluginB.calculate_square", { number: "6" })),
    molAsync: await outcome(plain.call("AsyncSquare.calculate_square", { number: "6" })),
  };
  if (
    checks.aio !== "INVALID_ARGUMENTS" ||
    checks.aioAsync !== "INVALID_ARGUMENTS" ||
    checks.molVal === "accepted" ||
    checks.molAsyncVal === "accepted" ||
    checks.mol !== "accepted" ||
    checks.molAsync !== "accepted"
  ) {
    throw new Error(`validation is not set up as intended: ${JSON.stringify(checks)}`);
  }

  const { rounds, ms, warmupMs } = ctx.local;
  const results = {};
  // CPU time of the process per call, each measured pass: steadier than calls/s when other
  // processes take turns on the machine's CPUs.
  const cpu = {};
  const withCpu = (samples, measure) => async (time) => {
    const before = process.cpuUsage();
    const result = await measure(time);
    const used = process.cpuUsage(before);
    samples.push(((used.user + used.system) * 1000) / result.ops);
    return result;
  };
  try {
    for (const concurrency of CONCURRENCIES) {
      cpu[concurrency] = Object.fromEntries(calls.map((c) => [c.id, []]));
      const contenders = calls.map((c) => ({
        id: c.id,
        measure: withCpu(cpu[concurrency][c.id], makeCase(c.fn, concurrency)),
      }));
      ctx.progress(
        `  ${concurrency} in flight: warm-up ${warmupMs} ms each, ${rounds} rounds × ${ms} ms`,
      );
      results[concurrency] = await interleaved(contenders, {
        rounds,
        ms,
        warmupMs,
        onRound: (r, n) => ctx.progress(`    round ${r}/${n} done`),
      });
    }
  } finally {
    await Promise.all([core.close(), bare.close(), plain.stop(), validating.stop()]);
  }

  // The warm-up pass of each contender is not a round.
  for (const n of CONCURRENCIES) for (const c of calls) cpu[n][c.id].shift();
  return report(ctx, calls, results, cpu);
}

/** Per-round ratios of a to b (rounds are interleaved, so round i of each is paired). */
function ratios(a, b) {
  return a.map((value, i) => value / b[i]);
}

/** Each AIO case and the Moleculer contenders with the same kind of handler. */
const MATCHES = [
  { aio: "aio", label: "AIO", mol: "mol", molVal: "molVal" },
  { aio: "aioNamed", label: "AIO named args", mol: "mol", molVal: "molVal" },
  { aio: "aioAsync", label: "AIO async", mol: "molAsync", molVal: "molAsyncVal" },
  { aio: "aioAsyncNamed", label: "AIO async named args", mol: "molAsync", molVal: "molAsyncVal" },
];

function report(ctx, calls, results, cpu) {
  const { rounds, ms } = ctx.local;
  const col = (c) => (c === 1 ? "sequential (1 in flight)" : `${c} in flight`);
  const rows = calls.map((c) => [
    c.label,
    ...CONCURRENCIES.map(
      (n) => `${formatRate(median(results[n][c.id]))} ${spread(results[n][c.id])}`,
    ),
    ...CONCURRENCIES.map((n) => `${median(cpu[n][c.id]).toFixed(0)} ns`),
  ]);
  const out = [];
  out.push(
    `Local execute of calculate_square(6), sync (PluginB) and async (AsyncSquare) endpoint: calls/s, median of ${rounds} interleaved rounds × ${ms} ms (± half the range)`,
  );
  out.push(
    table(
      ["contender", ...CONCURRENCIES.map(col), ...CONCURRENCIES.map((n) => `CPU/call, ${n}`)],
      rows,
    ),
  );
  out.push("");

  const pairs = [
    ["AIO, metrics on / off (target ≥ 0.9)", "aio", "aioNoMetrics"],
    ["AIO async, metrics on / off (target ≥ 0.9)", "aioAsync", "aioAsyncNoMetrics"],
    ["AIO / direct", "aio", "direct"],
    ["AIO async / direct async", "aioAsync", "directAsync"],
    ...MATCHES.flatMap((m) => [
      [`${m.label} / Moleculer ${m.mol} (validator: false)`, m.aio, m.mol],
      [`${m.label} / Moleculer ${m.molVal} (fastest-validator)`, m.aio, m.molVal],
    ]),
  ];
  const ratioRows = pairs.map(([label, a, b]) => [
    label,
    ...CONCURRENCIES.map((n) => {
      const r = median(results[n][a]) / median(results[n][b]);
      const per = ratios(results[n][a], results[n][b]);
      return `${r.toFixed(2)}x (rounds ${Math.min(...per).toFixed(2)}–${Math.max(...per).toFixed(2)})`;
    }),
    ...CONCURRENCIES.map((n) => `${(median(cpu[n][b]) / median(cpu[n][a])).toFixed(2)}x`),
  ]);
  out.push(
    "Ratios of medians (range of the per-round paired ratios); CPU: the other's CPU per call over AIO's",
  );
  out.push(
    table(
      ["ratio", ...CONCURRENCIES.map(col), ...CONCURRENCIES.map((n) => `CPU, ${n}`)],
      ratioRows,
    ),
  );
  out.push("");

  const targets = [];
  for (const n of CONCURRENCIES) {
    for (const m of MATCHES) {
      for (const against of [m.mol, m.molVal]) {
        const r = median(results[n][m.aio]) / median(results[n][against]);
        targets.push({ concurrency: n, case: m.aio, against, ratio: r, met: r >= 1 });
        out.push(
          `Target ${m.label} >= 1.0x Moleculer ${against}, ${col(n)}: ${r >= 1 ? "MET" : "NOT MET"} (${r.toFixed(2)}x)`,
        );
      }
    }
  }
  out.push(
    "(64 in flight = 64 concurrent async loops, each awaiting one call at a time; the same harness for every contender)",
  );
  ctx.print(out.join("\n"));

  const medians = Object.fromEntries(
    CONCURRENCIES.map((n) => [
      n,
      Object.fromEntries(calls.map((c) => [c.id, median(results[n][c.id])])),
    ]),
  );
  return {
    samples: results,
    cpuNsPerCall: cpu,
    medians,
    targets,
    met: targets.every((t) => t.met),
  };
}
