/**
 * One steady remote workload between this process (client) and bench/remote-server.mjs, to
 * profile both sides or to A/B two builds (bench/remote-ab.mjs):
 *
 *   node [--cpu-prof --cpu-prof-dir=/tmp/prof/client] bench/remote-profile.mjs \
 *        [seconds=4] [concurrency=64] [what=aio]
 *
 * what: aio (client.execute of PluginB.calculate_square), signed (the same with a shared secret,
 * so every channel message carries a MAC), mol (Moleculer TCP call), http (raw
 * node:http + undici), stream (AIO executeStream of 10000 items; rates are items/s),
 * http-stream (the raw node:http NDJSON stream of the same items, read with undici); over a
 * nats-server started here (bench/lib/nats-server.mjs): nats (AIO `transport: nats`), nats-signed
 * (the same with a shared secret), nats-stream (AIO executeStream over NATS, with the secret),
 * mol-nats (Moleculer's NATS transporter).
 * AIO_BENCH_DIST: the package under test (path or file: URL; default dist/), used by both
 * processes. AIO_BENCH_SERVER_PROF=<dir>: the server runs with --cpu-prof into <dir>.
 * AIO_BENCH_PIN=C,S: pins the client to CPU C and the server to CPU S (taskset -a -p), e.g.
 * 0,0 for steady 1-in-flight numbers.
 * AIO_BENCH_PROFILE=<dir>: CPU profiles (inspector, 200 µs sampling) of the measured window
 * only, both processes: <dir>/client-<what>-<n>.cpuprofile and <dir>/server-<what>-<n>.cpuprofile.
 * Prints a human line, then one JSON line { what, concurrency, perSec, clientUs, serverUs }.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { makeCase } from "./lib/harness.mjs";
import { startNatsServer } from "./lib/nats-server.mjs";
import {
  clientCpu,
  consumeNdjson,
  httpPool,
  postJson,
  profileSelf,
  startAioClient,
  startAioNode,
  startMoleculerClient,
  startServer,
  waitForServerNode,
} from "./lib/remote.mjs";

const root = resolve(fileURLToPath(new URL("..", import.meta.url)));
const [seconds = "4", concurrencyText = "64", what = "aio"] = process.argv.slice(2);
const concurrency = Number(concurrencyText);
const dist = process.env.AIO_BENCH_DIST;
const distUrl = !dist
  ? pathToFileURL(join(root, "dist/index.js")).href
  : dist.startsWith("file:")
    ? dist
    : pathToFileURL(resolve(dist.endsWith(".js") ? dist : join(dist, "index.js"))).href;
const profDir = process.env.AIO_BENCH_SERVER_PROF;
const execArgv = profDir ? ["--cpu-prof", `--cpu-prof-dir=${profDir}`] : [];
const serve = what.startsWith("mol") ? "mol" : what.startsWith("http") ? "http" : "aio";
const secret = ["signed", "nats-signed", "nats-stream"].includes(what)
  ? randomBytes(32).toString("hex")
  : undefined;
const nats = what.startsWith("nats") || what === "mol-nats" ? await startNatsServer() : undefined;
const natsNetworking = nats && {
  transport: "nats",
  nats: { servers: [nats.url], subject_prefix: "aio" },
};
const natsClient =
  nats && serve === "aio"
    ? await startAioNode(
        distUrl,
        { ...natsNetworking, ...(secret ? { secret } : {}) },
        "bench-client",
      )
    : undefined;

const server = await startServer({
  distUrl,
  execArgv,
  serve,
  env: {
    ...(secret ? { AIO_BENCH_SECRET: secret } : {}),
    ...(nats ? { AIO_BENCH_NATS: nats.url } : {}),
  },
});
// AIO_BENCH_PIN="0,1": client on CPU 0, server on CPU 1 (taskset), for steadier A/B numbers.
if (process.env.AIO_BENCH_PIN) {
  const [clientCpuId, serverCpuId] = process.env.AIO_BENCH_PIN.split(",");
  execFileSync("taskset", ["-a", "-p", "-c", clientCpuId, String(process.pid)], {
    stdio: "ignore",
  });
  execFileSync("taskset", ["-a", "-p", "-c", serverCpuId, String(server.pid)], { stdio: "ignore" });
}
let fn;
let units = 1;
let close;
if (["aio", "signed", "stream", "nats", "nats-signed", "nats-stream"].includes(what)) {
  const networking = secret ? { secret, discover_nodes: false } : {};
  let client = natsClient;
  if (client) await waitForServerNode(client, server.ready.aioHostname);
  else client = await startAioClient(distUrl, server.ready, networking);
  close = () => client.close();
  if (!what.endsWith("stream")) fn = () => client.execute("PluginB", "calculate_square", 6);
  else {
    units = 10_000;
    fn = async () => {
      let n = 0;
      for await (const _ of client.executeStream("StreamBench", "numbers", units)) n++;
      return n;
    };
  }
} else if (what === "mol" || what === "mol-nats") {
  const broker = await startMoleculerClient(server.ready);
  close = () => broker.stop();
  fn = () => broker.call("PluginB.calculate_square", { number: 6 });
} else if (what === "http") {
  const pool = httpPool(server.ready.httpPort, 64);
  close = () => pool.close();
  fn = () => postJson(pool, "/square", '{"number":6}').then((b) => b.result);
} else if (what === "http-stream") {
  const pool = httpPool(server.ready.httpPort, 4);
  close = () => pool.close();
  units = 10_000;
  fn = () => consumeNdjson(pool, "/stream", JSON.stringify({ count: units }));
} else throw new Error(`unknown workload ${what}`);

const first = await fn();
if (first !== (units === 1 ? 36 : units)) throw new Error(`${what}: first call gave ${first}`);
const measure = makeCase(fn, units === 1 ? concurrency : 1, {
  chunk: units > 1 ? 1 : concurrency > 1 ? 8 : 64,
});
await measure(1000);
const profileDir = process.env.AIO_BENCH_PROFILE;
let stopProfile;
if (profileDir) {
  mkdirSync(profileDir, { recursive: true });
  await server.profile("start");
  stopProfile = await profileSelf();
}
const s0 = await server.cpu();
const c0 = clientCpu();
const { ops, perSec } = await measure(Number(seconds) * 1000);
const c1 = clientCpu();
const s1 = await server.cpu();
if (profileDir) {
  const tag = `${what}-${concurrency}`;
  await stopProfile(join(profileDir, `client-${tag}.cpuprofile`));
  await server.profile("stop", join(profileDir, `server-${tag}.cpuprofile`));
}
const result = {
  what,
  concurrency,
  perSec: perSec * units,
  clientUs: (c1 - c0) / (ops * units),
  serverUs: (s1 - s0) / (ops * units),
};
console.log(
  `${what}, ${units > 1 ? "stream" : `${concurrency} in flight`}: ${(result.perSec / 1e3).toFixed(1)} k/s, CPU per ${units > 1 ? "item" : "call"}: client ${result.clientUs.toFixed(2)} µs, server ${result.serverUs.toFixed(2)} µs`,
);
console.log(JSON.stringify(result));
await close();
await server.stop();
await nats?.stop();
