/**
 * Topics against Moleculer's events, in one process, every contender measured in the same run:
 *
 * - local: `core.notify(topic, args)` to 1 and to 10 subscribers (code subscriptions), against
 *   Moleculer `broker.emit` (1 listening service) and `broker.broadcast` (10);
 * - `core.requestTopic("bench/square", 6)` against `core.execute` of the same endpoint;
 * - remote: a publish from node A to a subscriber on node B, over the channel (with a secret)
 *   and over NATS (with a secret), against Moleculer's TCP and NATS transporters (two brokers).
 *
 * What is measured is delivered messages per second: publishers keep 64 publishes in flight
 * for the round's time, then the round ends when the subscribers have received every one, so
 * a publish that only queued a message is not counted as delivered. (AIO's `notify` resolves
 * once the subscriber's node took the message; Moleculer's `emit` once it is sent.)
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import moleculer from "moleculer";
import { formatRate, interleaved, makeCase, median, spread, table } from "../lib/harness.mjs";
import { startNatsServer } from "../lib/nats-server.mjs";

export const name = "topics";
export const description =
  "notify (local to 1 and 10, remote over the channel and NATS) and requestTopic vs Moleculer events and execute";

const IN_FLIGHT = 64;
const SECRET = `bench-topics-${randomBytes(16).toString("hex")}`;

/** A plugin folder: Square answers bench/square and is an endpoint subscriber of bench/typed. */
function pluginFolder() {
  const dir = mkdtempSync(join(tmpdir(), "aio-bench-topics-"));
  mkdirSync(join(dir, "Square"));
  writeFileSync(
    join(dir, "Square", "plugin.ts"),
    `import { Plugin } from "aio-assistant-core";
export class Square extends Plugin {
  square(number: number) { return number ** 2; }
  count(number: number) { const g = globalThis as any; g.__aioBenchSeen = (g.__aioBenchSeen ?? 0) + 1; }
}
`,
  );
  writeFileSync(
    join(dir, "Square", "plugin_config.yml"),
    `version: 1.0.0
remote: true
endpoints:
  - internal_name: square
    topic: bench/square
    remote: true
    arguments:
      - name: number
        type: number
  - internal_name: count
    topic: bench/remote
    remote: true
    arguments:
      - name: number
        type: number
`,
  );
  return dir;
}

async function aioNode(ctx, hostname, dir, plugins, networking) {
  const { PluginCore } = await import(ctx.distUrl);
  const core = new PluginCore({
    plugins: plugins.map((name) => ({ name, path: join(dir, name) })),
    general: { hostname, console_log_level: "ERROR", log_dir: "" },
    networking,
  });
  await core.start();
  return core;
}

/** Delivered messages per second: publish for `ms`, then wait until all arrived. */
function delivered(publish, received) {
  const loop = makeCase(publish, IN_FLIGHT);
  return async (ms) => {
    const before = received();
    const start = performance.now();
    const { ops } = await loop(ms);
    while (received() - before < ops) await new Promise((resolve) => setImmediate(resolve));
    const elapsed = performance.now() - start;
    return { ops, ms: elapsed, perSec: (ops / elapsed) * 1000 };
  };
}

async function waitUntil(condition, what) {
  const deadline = Date.now() + 15_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export async function run(ctx) {
  const { rounds, ms, warmupMs } = ctx.nats;
  const dir = pluginFolder();
  const closers = [];
  try {
    // ------------------------------------------------------------ local
    const core = await aioNode(ctx, "solo", dir, ["Square"], { enabled: false });
    closers.push(() => core.close());
    let one = 0;
    let ten = 0;
    core.subscribe("bench/one", () => {
      one++;
    });
    for (let i = 0; i < 10; i++) {
      core.subscribe("bench/ten", () => {
        ten++;
      });
    }
    const broker = new moleculer.ServiceBroker({
      nodeID: "bench-events",
      logger: false,
      transporter: null,
      metrics: false,
      tracing: false,
    });
    let molOne = 0;
    let molTen = 0;
    broker.createService({
      name: "one",
      events: {
        "bench.one"() {
          molOne++;
        },
      },
    });
    for (let i = 0; i < 10; i++) {
      broker.createService({
        name: `ten${i}`,
        events: {
          "bench.ten"() {
            molTen++;
          },
        },
      });
    }
    broker.createService({
      name: "Square",
      actions: { square: { handler: (c) => c.params.number ** 2 } },
    });
    await broker.start();
    closers.push(() => broker.stop());
    if ((await core.notify("bench/ten", 6)) !== 10)
      throw new Error("notify to 10 did not count 10");
    if ((await core.requestTopic("bench/square", 6)) !== 36) throw new Error("requestTopic ≠ 36");

    ctx.progress(`  local: warm-up ${warmupMs} ms each, ${rounds} rounds × ${ms} ms`);
    const local = await interleaved(
      [
        {
          id: "notify1",
          measure: delivered(
            () => core.notify("bench/one", 6),
            () => one,
          ),
        },
        {
          id: "emit1",
          measure: delivered(
            () => broker.emit("bench.one", { number: 6 }),
            () => molOne,
          ),
        },
        {
          id: "notify10",
          measure: delivered(
            () => core.notify("bench/ten", 6),
            () => ten / 10,
          ),
        },
        {
          id: "broadcast10",
          measure: delivered(
            () => broker.broadcast("bench.ten", { number: 6 }),
            () => molTen / 10,
          ),
        },
        { id: "request", measure: makeCase(() => core.requestTopic("bench/square", 6), IN_FLIGHT) },
        { id: "execute", measure: makeCase(() => core.execute("Square", "square", 6), IN_FLIGHT) },
        {
          id: "molCall",
          measure: makeCase(() => broker.call("Square.square", { number: 6 }), IN_FLIGHT),
        },
      ],
      { rounds, ms, warmupMs, onRound: (r, n) => ctx.progress(`    round ${r}/${n} done`) },
    );

    // ------------------------------------------------------------ remote
    const seen = () => globalThis.__aioBenchSeen ?? 0;
    const remoteContenders = [];
    const channelB = await aioNode(ctx, "B", dir, ["Square"], {
      enabled: true,
      port: 0,
      bind: "127.0.0.1",
      secret: SECRET,
    });
    closers.push(() => channelB.close());
    const channelA = await aioNode(ctx, "A", dir, [], {
      enabled: true,
      port: 0,
      bind: "127.0.0.1",
      secret: SECRET,
      node_ips: [`127.0.0.1:${channelB.port}`],
    });
    closers.push(() => channelA.close());
    await waitUntil(async () => (await channelA.notify("bench/remote", 6)) === 1, "A to see B");
    remoteContenders.push({
      id: "aioChannel",
      measure: delivered(() => channelA.notify("bench/remote", 6), seen),
    });

    let nats;
    try {
      nats = await startNatsServer();
    } catch (error) {
      ctx.progress(`  NATS skipped: ${error.message}`);
    }
    let molNatsSeen = 0;
    if (nats) {
      closers.push(() => nats.stop());
      const networking = {
        enabled: true,
        port: 0,
        bind: "127.0.0.1",
        secret: SECRET,
        transport: "nats",
        nats: { servers: [nats.url], subject_prefix: "benchtopics" },
      };
      const natsB = await aioNode(ctx, "NB", dir, ["Square"], networking);
      closers.push(() => natsB.close());
      const natsA = await aioNode(ctx, "NA", dir, [], networking);
      closers.push(() => natsA.close());
      await waitUntil(async () => (await natsA.notify("bench/remote", 6)) === 1, "NA to see NB");
      remoteContenders.push({
        id: "aioNats",
        measure: delivered(() => natsA.notify("bench/remote", 6), seen),
      });
      const molB = new moleculer.ServiceBroker({
        nodeID: "mol-nats-b",
        logger: false,
        transporter: nats.url,
        metrics: false,
        tracing: false,
      });
      molB.createService({
        name: "sub",
        events: {
          "bench.remote"() {
            molNatsSeen++;
          },
        },
      });
      const molA = new moleculer.ServiceBroker({
        nodeID: "mol-nats-a",
        logger: false,
        transporter: nats.url,
        metrics: false,
        tracing: false,
      });
      await Promise.all([molB.start(), molA.start()]);
      closers.push(
        () => molA.stop(),
        () => molB.stop(),
      );
      await molA.waitForServices("sub");
      remoteContenders.push({
        id: "molNats",
        measure: delivered(
          () => molA.emit("bench.remote", { number: 6 }),
          () => molNatsSeen,
        ),
      });
    }

    let molTcpSeen = 0;
    const tcp = (nodeID, port, peers) =>
      new moleculer.ServiceBroker({
        nodeID,
        logger: false,
        metrics: false,
        tracing: false,
        transporter: {
          type: "TCP",
          options: { udpDiscovery: false, port, urls: peers },
        },
      });
    const tcpPortB = 20_000 + Math.floor(Math.random() * 20_000);
    const tcpPortA = tcpPortB + 1;
    const tcpB = tcp("mol-tcp-b", tcpPortB, [`127.0.0.1:${tcpPortA}/mol-tcp-a`]);
    tcpB.createService({
      name: "sub",
      events: {
        "bench.remote"() {
          molTcpSeen++;
        },
      },
    });
    const tcpA = tcp("mol-tcp-a", tcpPortA, [`127.0.0.1:${tcpPortB}/mol-tcp-b`]);
    await Promise.all([tcpB.start(), tcpA.start()]);
    closers.push(
      () => tcpA.stop(),
      () => tcpB.stop(),
    );
    await tcpA.waitForServices("sub");
    remoteContenders.push({
      id: "molTcp",
      measure: delivered(
        () => tcpA.emit("bench.remote", { number: 6 }),
        () => molTcpSeen,
      ),
    });

    ctx.progress(`  remote: warm-up ${warmupMs} ms each, ${rounds} rounds × ${ms} ms`);
    const remote = await interleaved(remoteContenders, {
      rounds,
      ms,
      warmupMs,
      onRound: (r, n) => ctx.progress(`    round ${r}/${n} done`),
    });
    return report(ctx, local, remote);
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

const LABELS = {
  notify1: "AIO notify, 1 subscriber",
  emit1: "Moleculer emit, 1 listener",
  notify10: "AIO notify, 10 subscribers",
  broadcast10: "Moleculer broadcast, 10 listeners",
  request: "AIO requestTopic(bench/square)",
  execute: "AIO execute(Square.square)",
  molCall: "Moleculer call(Square.square)",
  aioChannel: "AIO notify A→B, channel, secret",
  aioNats: "AIO notify A→B, NATS, secret",
  molNats: "Moleculer emit A→B, NATS transporter",
  molTcp: "Moleculer emit A→B, TCP transporter",
};

function ratio(results, a, b) {
  if (!results[a] || !results[b]) return "-";
  const per = results[a].map((v, i) => v / results[b][i]);
  return `${(median(results[a]) / median(results[b])).toFixed(2)}x (rounds ${Math.min(...per).toFixed(2)}–${Math.max(...per).toFixed(2)})`;
}

function report(ctx, local, remote) {
  const { rounds, ms } = ctx.nats;
  const rows = (results) =>
    Object.keys(results).map((id) => [
      LABELS[id],
      `${formatRate(median(results[id]))} ${spread(results[id])}`,
    ]);
  const out = [];
  out.push(
    `Topics, ${IN_FLIGHT} in flight: messages delivered per second (calls/s for requests), median of ${rounds} interleaved rounds × ${ms} ms (± half the range)`,
  );
  out.push(table(["contender", "per second"], [...rows(local), ...rows(remote)]));
  out.push("");
  out.push("Ratios of medians (range of the per-round paired ratios)");
  out.push(
    table(
      ["pair", "ratio"],
      [
        ["notify 1 / Moleculer emit", ratio(local, "notify1", "emit1")],
        ["notify 10 / Moleculer broadcast 10", ratio(local, "notify10", "broadcast10")],
        ["requestTopic / execute (same endpoint)", ratio(local, "request", "execute")],
        ["requestTopic / Moleculer call", ratio(local, "request", "molCall")],
        ["remote, channel / Moleculer TCP", ratio(remote, "aioChannel", "molTcp")],
        ["remote, NATS / Moleculer NATS", ratio(remote, "aioNats", "molNats")],
      ],
    ),
  );
  ctx.print(out.join("\n"));
  return { local, remote };
}
