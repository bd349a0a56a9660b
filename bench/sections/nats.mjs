/**
 * Remote calls and streams over NATS (issue 14, "Benchmark"): AIO Core with
 * `networking.transport: nats` against Moleculer 0.14's NATS transporter on the same nats-server,
 * and against AIO over its own channel, in the same run, interleaved round by round.
 *
 * One nats-server (started here, 127.0.0.1, a port it picks) and four server processes
 * (bench/remote-server.mjs), each serving one contender to a client in this process:
 *
 *   aio-nats        AIO node, `transport: nats` on the nats-server, a secret (signed, sealed)
 *   mol-nats        Moleculer broker, NATS transporter on the same nats-server
 *   aio-channel     AIO node, `transport: channel`, the same secret, the client with node_ips
 *   aio-nats-plain  AIO node over NATS without a secret (its own subject prefix): what the
 *                   secret costs, since Moleculer signs nothing
 *
 * Calls: `execute("PluginB", "calculate_square", 6)` / `broker.call("PluginB.calculate_square",
 * { number: 6 })`, at 1 and 64 in flight, processes unpinned; calls/s, p50/p99 from separate
 * latency passes, CPU per call of client and server. Streams: AIO `executeStream` of
 * StreamBench.numbers (bench/fixtures) over NATS and over the channel, and Moleculer's
 * StreamBench.numbers (an object-mode Readable of the same items) over NATS.
 */
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { formatRate, makeCase, median, spread, table } from "../lib/harness.mjs";
import { startNatsServer } from "../lib/nats-server.mjs";
import {
  callsTable,
  makeLatencyCase,
  measureRounds,
  percentile,
  pooled,
  ratioCell,
  startAioClient,
  startAioNode,
  startMoleculerClient,
  startServer,
  waitForServerNode,
} from "../lib/remote.mjs";

export const name = "nats";
export const description =
  "remote execute/executeStream over NATS vs AIO over its channel and Moleculer's NATS transporter";

const PHASES = [
  { key: "1", concurrency: 1, label: "1 in flight" },
  { key: "64", concurrency: 64, label: "64 in flight" },
];
/** Unpinned rounds at 1 in flight flip between speeds (see `remote`): twice as many of them. */
const ROUNDS_AT_1_FACTOR = 2;
/** Each NATS pair has its own subject prefix: nodes with and without the secret stay apart. */
const PREFIXES = { aioNats: "aiobench", aioNatsPlain: "aiobenchplain" };

export async function run(ctx) {
  const s = { ...ctx.nats };
  const secret = randomBytes(32).toString("hex");
  const t0 = performance.now();
  const started = {};
  const clients = {};
  let nats;
  let mol;
  try {
    nats = await startNatsServer();
    ctx.progress(`  nats-server ${nats.version} ready at ${nats.url}`);
    const natsEnv = (id) => ({ AIO_BENCH_NATS: nats.url, AIO_BENCH_NATS_PREFIX: PREFIXES[id] });
    const natsNetworking = (id) => ({
      discover_nodes: false,
      transport: "nats",
      nats: { servers: [nats.url], subject_prefix: PREFIXES[id] },
    });
    const servers = {
      aioNats: { serve: "aio", env: { ...natsEnv("aioNats"), AIO_BENCH_SECRET: secret } },
      aioNatsPlain: { serve: "aio", env: natsEnv("aioNatsPlain") },
      aioChannel: { serve: "aio", env: { AIO_BENCH_SECRET: secret } },
      molNats: { serve: "mol", env: { AIO_BENCH_NATS: nats.url } },
    };
    clients.aioNats = await startAioNode(
      ctx.distUrl,
      { ...natsNetworking("aioNats"), secret },
      "bench-client-nats",
    );
    clients.aioNatsPlain = await startAioNode(
      ctx.distUrl,
      natsNetworking("aioNatsPlain"),
      "bench-client-nats-plain",
    );
    // All settled before any failure is thrown, so that `finally` stops every one started.
    const starts = await Promise.allSettled(
      Object.entries(servers).map(async ([id, { serve, env }]) => {
        started[id] = await startServer({
          distUrl: ctx.distUrl,
          serve,
          env: { ...env, AIO_BENCH_HOSTNAME: `server-${id}` },
        });
      }),
    );
    const failed = starts.find((start) => start.status === "rejected");
    if (failed) throw failed.reason;
    for (const id of ["aioNats", "aioNatsPlain"])
      await waitForServerNode(clients[id], started[id].ready.aioHostname);
    clients.aioChannel = await startAioClient(
      ctx.distUrl,
      started.aioChannel.ready,
      { secret, discover_nodes: false },
      "bench-client-channel",
    );
    mol = await startMoleculerClient(started.molNats.ready);
    await mol.waitForServices("StreamBench", 10_000);
    ctx.progress(`  ready in ${(performance.now() - t0).toFixed(0)} ms`);

    await checkRoutes(clients, started);

    const square = (id) => () => clients[id].execute("PluginB", "calculate_square", 6);
    const calls = [
      { id: "aioNats", label: "AIO over NATS (secret)", fn: square("aioNats") },
      {
        id: "molNats",
        label: "Moleculer 0.14 over NATS",
        fn: () => mol.call("PluginB.calculate_square", { number: 6 }),
      },
      { id: "aioChannel", label: "AIO over the channel (secret)", fn: square("aioChannel") },
      { id: "aioNatsPlain", label: "AIO over NATS, no secret", fn: square("aioNatsPlain") },
    ];
    for (const c of calls) {
      const got = await c.fn();
      if (got !== 36) throw new Error(`${c.label} returned ${got}, expected 36`);
    }

    const results = {};
    for (const phase of PHASES) {
      const { concurrency } = phase;
      const rounds = concurrency === 1 ? s.rounds * ROUNDS_AT_1_FACTOR : s.rounds;
      ctx.progress(
        `  ${phase.label}: warm-up ${s.warmupMs} ms each, ${rounds} rounds × (${s.ms} ms + ${s.latencyMs} ms latency pass)`,
      );
      results[phase.key] = await measureRounds(
        calls.map((c) => ({
          id: c.id,
          server: started[c.id],
          measure: makeCase(c.fn, concurrency, { chunk: concurrency > 1 ? 8 : 64 }),
          latency: makeLatencyCase(c.fn, concurrency),
        })),
        { ...s, rounds, onRound: (r, n) => ctx.progress(`    round ${r}/${n} done`) },
      );
    }

    // ---------------------------------------------------------------- streams
    const N = s.streamItems;
    const aioStream = (client) => async (onItem) => {
      let n = 0;
      for await (const item of client.executeStream("StreamBench", "numbers", N)) {
        onItem?.(item);
        n++;
      }
      return n;
    };
    const molStream = async (onItem) => {
      const stream = await mol.call("StreamBench.numbers", { count: N });
      let n = 0;
      for await (const item of stream) {
        onItem?.(item);
        n++;
      }
      return n;
    };
    const streams = [
      {
        id: "aioNats",
        label: "AIO executeStream over NATS (secret)",
        consume: aioStream(clients.aioNats),
      },
      { id: "molNats", label: "Moleculer 0.14 stream over NATS", consume: molStream },
      {
        id: "aioChannel",
        label: "AIO executeStream over the channel (secret)",
        consume: aioStream(clients.aioChannel),
      },
    ];
    for (const c of streams) {
      let expect = 0;
      const got = await c.consume((item) => {
        if (item?.i !== expect)
          throw new Error(`${c.label}: item ${expect} is ${JSON.stringify(item)}`);
        expect++;
      });
      if (got !== N) throw new Error(`${c.label} gave ${got} items, expected ${N}`);
    }
    ctx.progress(
      `  streams of ${N} items: warm-up ${s.warmupMs} ms each, ${s.rounds} rounds × ${s.ms} ms`,
    );
    const streamResults = await measureRounds(
      streams.map((c) => ({
        id: c.id,
        server: started[c.id],
        measure: makeCase(() => c.consume(), 1, { chunk: 1 }),
        unitsPerOp: N,
      })),
      { ...s, latencyMs: 0, onRound: (r, n) => ctx.progress(`    round ${r}/${n} done`) },
    );

    return report(ctx, s, nats, calls, results, streams, streamResults);
  } finally {
    await Promise.allSettled([...Object.values(clients).map((c) => c.close()), mol?.stop()]);
    for (const [id, server] of Object.entries(started)) {
      const code = await server.stop();
      if (code !== 0) ctx.progress(`  server process ${id} exited ${code}\n${server.stderr}`);
    }
    await nats?.stop();
  }
}

/**
 * Each AIO client knows its own server only, a NATS client through NATS (the server's address
 * is `nats:<instance>`), and has no PluginB of its own (`host: "local"` finds none).
 */
async function checkRoutes(clients, started) {
  for (const [id, client] of Object.entries(clients)) {
    const nodes = client.nodes();
    const overNats = id !== "aioChannel";
    if (
      nodes.length !== 1 ||
      nodes[0].hostname !== started[id].ready.aioHostname ||
      nodes[0].address.startsWith("nats:") !== overNats
    )
      throw new Error(
        `the ${id} client should know ${started[id].ready.aioHostname}${overNats ? " over NATS" : ""} only: ${nodes.map((n) => `${n.hostname}@${n.address}`)}`,
      );
    if (client.listPlugins().length !== 0) throw new Error(`the ${id} client has local plugins`);
    const local = await client.execute("PluginB", "calculate_square", 6, { host: "local" }).then(
      () => "accepted",
      (e) => e.code,
    );
    if (local !== "PLUGIN_NOT_FOUND")
      throw new Error(`host: "local" on the ${id} client gave ${local}, not PLUGIN_NOT_FOUND`);
  }
}

function report(ctx, s, nats, calls, results, streams, streamResults) {
  const out = [];
  out.push(
    `Remote PluginB.calculate_square(6) over nats-server ${nats.version} (127.0.0.1) and over AIO's channel, client and server in two processes, unpinned: calls/s, median of the interleaved rounds × ${s.ms} ms (${s.rounds * ROUNDS_AT_1_FACTOR} rounds at 1 in flight, ${s.rounds} at 64) (± half the range); latency from separate ${s.latencyMs} ms passes timing every call (pooled over the rounds); CPU µs per call of each process (nats-server's own not counted), medians`,
  );
  out.push(callsTable(PHASES, calls, results));
  out.push("");

  const pairs = [
    ["AIO-NATS / Moleculer-NATS", "aioNats", "molNats"],
    ["AIO-NATS / AIO-channel", "aioNats", "aioChannel"],
    ["AIO-NATS no secret / Moleculer-NATS", "aioNatsPlain", "molNats"],
    ["AIO-NATS / AIO-NATS no secret", "aioNats", "aioNatsPlain"],
  ];
  const p50 = (phase, id) => percentile(pooled(results[phase.key][id].latency), 50);
  out.push(
    "Ratios of calls/s, medians (range of the per-round paired ratios); p50: the other's p50 over AIO-NATS's (above 1.0x AIO-NATS answers sooner)",
  );
  out.push(
    table(
      ["ratio", ...PHASES.flatMap((phase) => [phase.label, "p50"])],
      pairs.map(([label, a, b]) => [
        label,
        ...PHASES.flatMap((phase) => [
          ratioCell(results[phase.key][a].rates, results[phase.key][b].rates).text,
          `${(p50(phase, b) / p50(phase, a)).toFixed(2)}x`,
        ]),
      ]),
    ),
  );
  out.push("");

  const N = s.streamItems;
  out.push(
    `Remote stream of ${N} items { i } per stream, consumed whole: items/s, median of ${s.rounds} interleaved rounds × ${s.ms} ms; CPU µs per item`,
  );
  out.push(
    table(
      ["contender", "items/s", "CPU client / server"],
      streams.map((c) => {
        const r = streamResults[c.id];
        return [
          c.label,
          `${formatRate(median(r.rates))} ${spread(r.rates)}`,
          `${median(r.clientCpu).toFixed(2)} µs / ${median(r.serverCpu).toFixed(2)} µs`,
        ];
      }),
    ),
  );
  const streamRatios = {
    molNats: ratioCell(streamResults.aioNats.rates, streamResults.molNats.rates),
    aioChannel: ratioCell(streamResults.aioNats.rates, streamResults.aioChannel.rates),
  };
  out.push(`AIO-NATS stream / Moleculer-NATS stream: ${streamRatios.molNats.text}`);
  out.push(`AIO-NATS stream / AIO-channel stream: ${streamRatios.aioChannel.text}`);
  out.push(
    "(Moleculer sends a stream's items one NATS message each, with no flow control: the receiver buffers whatever arrives; AIO batches items per message and the consumer grants credit)",
  );
  out.push("");

  const ratios = PHASES.map((phase) => ({
    label: phase.label,
    r: ratioCell(results[phase.key].aioNats.rates, results[phase.key].molNats.rates).r,
  }));
  const met = ratios.every((x) => x.r >= 1);
  out.push(
    `Target AIO over NATS ≥ 1.0x Moleculer over NATS at 1 and 64 in flight: ${met ? "MET" : "MISSED"} (${ratios.map((x) => `${x.label} ${x.r.toFixed(2)}x`).join(", ")})`,
  );
  out.push(
    "(64 in flight = 64 concurrent async loops, each awaiting one call at a time; AIO over NATS and over the channel with a secret: every message sealed with an HMAC-SHA256, as on a real mesh; Moleculer signs nothing, hence the no-secret row)",
  );
  ctx.print(out.join("\n"));

  const summary = (r) => ({
    perSec: median(r.rates),
    rates: r.rates,
    clientCpuUs: median(r.clientCpu),
    serverCpuUs: median(r.serverCpu),
    ...(r.latency.length
      ? { p50Ms: percentile(pooled(r.latency), 50), p99Ms: percentile(pooled(r.latency), 99) }
      : {}),
  });
  return {
    natsServer: nats.version,
    calls: Object.fromEntries(
      PHASES.map((phase) => [
        phase.key,
        Object.fromEntries(calls.map((c) => [c.id, summary(results[phase.key][c.id])])),
      ]),
    ),
    streams: Object.fromEntries(streams.map((c) => [c.id, summary(streamResults[c.id])])),
    streamItems: N,
    targets: ratios.map((x) => ({
      what: `AIO over NATS >= 1.0x Moleculer over NATS calls/s, ${x.label}`,
      ratio: x.r,
      met: x.r >= 1,
    })),
    met,
  };
}
