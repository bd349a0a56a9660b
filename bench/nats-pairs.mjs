/**
 * AIO over NATS against Moleculer over NATS at 1 call in flight, in many short rounds paired
 * back to back (the order swapped every round), with the CPU each process spends per call split
 * into user and system time, nats-server's included (from /proc, Linux only):
 *
 *   node bench/nats-pairs.mjs [--rounds 30] [--ms 1500] [--no-secret]
 *
 * The `nats` section's rounds are few and long, and the machine's speed moves between them;
 * the paired ratio of many short rounds has a tighter median. AIO_BENCH_DIST selects the build
 * (a dist/index.js URL), as for the other scripts.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { median } from "./lib/harness.mjs";
import { startNatsServer } from "./lib/nats-server.mjs";
import {
  startAioNode,
  startMoleculerClient,
  startServer,
  waitForServerNode,
} from "./lib/remote.mjs";

const { values: o } = parseArgs({
  options: {
    rounds: { type: "string", default: "30" },
    ms: { type: "string", default: "1500" },
    "no-secret": { type: "boolean", default: false },
  },
});
const distUrl = process.env.AIO_BENCH_DIST ?? new URL("../dist/index.js", import.meta.url).href;
const secret = o["no-secret"] ? "" : randomBytes(32).toString("hex");
const TICK_US = 10_000; // USER_HZ is 100 on Linux

/** A process's user and system CPU so far, in µs. */
function cpuOf(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return { user: Number(fields[11]) * TICK_US, system: Number(fields[12]) * TICK_US };
}

const nats = await startNatsServer();
const servers = [];
const prefix = "pairs";
try {
  const aioServer = await startServer({
    distUrl,
    serve: "aio",
    env: {
      AIO_BENCH_NATS: nats.url,
      AIO_BENCH_NATS_PREFIX: prefix,
      AIO_BENCH_HOSTNAME: "pairs-server",
      ...(secret ? { AIO_BENCH_SECRET: secret } : {}),
    },
  });
  servers.push(aioServer);
  const molServer = await startServer({ distUrl, serve: "mol", env: { AIO_BENCH_NATS: nats.url } });
  servers.push(molServer);
  const aio = await startAioNode(
    distUrl,
    {
      discover_nodes: false,
      transport: "nats",
      nats: { servers: [nats.url], subject_prefix: prefix },
      ...(secret ? { secret } : {}),
    },
    "pairs-client",
  );
  await waitForServerNode(aio, "pairs-server");
  const mol = await startMoleculerClient(molServer.ready);
  const contenders = {
    aio: { server: aioServer, call: () => aio.execute("PluginB", "calculate_square", 6) },
    mol: { server: molServer, call: () => mol.call("PluginB.calculate_square", { number: 6 }) },
  };
  const results = { aio: [], mol: [] };
  const round = async (name, ms) => {
    const { server, call } = contenders[name];
    const s0 = cpuOf(server.pid);
    const n0 = cpuOf(nats.pid);
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    let calls = 0;
    while (performance.now() - t0 < ms) {
      await call();
      calls++;
    }
    const elapsed = performance.now() - t0;
    const c = process.cpuUsage(c0);
    const s1 = cpuOf(server.pid);
    const n1 = cpuOf(nats.pid);
    return {
      rate: (calls / elapsed) * 1000,
      client: [c.user / calls, c.system / calls],
      server: [(s1.user - s0.user) / calls, (s1.system - s0.system) / calls],
      nats: [(n1.user - n0.user) / calls, (n1.system - n0.system) / calls],
    };
  };
  for (const name of ["aio", "mol"]) await round(name, 1000);
  const rounds = Number(o.rounds);
  for (let r = 0; r < rounds; r++) {
    for (const name of r % 2 ? ["aio", "mol"] : ["mol", "aio"]) {
      results[name].push(await round(name, Number(o.ms)));
    }
    process.stderr.write(`\r  round ${r + 1}/${rounds}`);
  }
  process.stderr.write("\n");
  const us = (rows, key, i) => median(rows.map((row) => row[key][i])).toFixed(1);
  console.log(
    `1 in flight over nats-server ${nats.version}, ${rounds} paired rounds × ${o.ms} ms, AIO ${secret ? "with" : "without"} a secret; CPU µs per call, user / system, medians`,
  );
  for (const [name, label] of [
    ["aio", "AIO over NATS"],
    ["mol", "Moleculer over NATS"],
  ]) {
    const rows = results[name];
    console.log(
      `${label.padEnd(20)} ${(median(rows.map((row) => row.rate)) / 1000).toFixed(2)} k/s   client ${us(rows, "client", 0)} / ${us(rows, "client", 1)}   server ${us(rows, "server", 0)} / ${us(rows, "server", 1)}   nats-server ${us(rows, "nats", 0)} / ${us(rows, "nats", 1)}`,
    );
  }
  const ratios = results.aio.map((row, i) => row.rate / results.mol[i].rate);
  const sorted = [...ratios].sort((a, b) => a - b);
  const quartile = (q) => sorted[Math.floor(q * (sorted.length - 1))].toFixed(2);
  console.log(
    `AIO / Moleculer, paired: median ${median(ratios).toFixed(3)}x (quartiles ${quartile(0.25)}–${quartile(0.75)}, range ${quartile(0)}–${quartile(1)})`,
  );
  await aio.close();
  await mol.stop();
} finally {
  for (const server of servers) await server.stop();
  await nats.stop();
}
