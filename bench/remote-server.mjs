/**
 * Server process of the `remote` section (bench/sections/remote.mjs), started with
 * child_process.fork. It serves the same work three ways, on 127.0.0.1, random ports:
 *
 *   - AIO Core: a PluginCore with networking, PluginB (examples) and StreamBench (bench/fixtures)
 *   - Moleculer 0.14: a broker with the TCP transporter (static URLs, no UDP discovery) and a
 *     service PluginB with the action calculate_square, and StreamBench.numbers (a stream of
 *     `count` items { i }, an object-mode Readable)
 *   - raw node:http: POST /square {"number":6} → {"result":36};
 *     POST /stream {"count":N} → NDJSON {"item":{"i":k}} lines, then {"end":true}
 *
 * Protocol with the parent over IPC:
 *   → parent: { type: "ready", aioPort, aioHostname, molPort, molNodeID, httpPort }
 *   ← parent: { type: "cpu", id }  → parent: { type: "cpu", id, user, system } (µs, process.cpuUsage)
 *   ← parent: { type: "profile", id, action: "start" | "stop", file }: CPU profile (inspector) of
 *             a window, written to `file` on stop → parent: { type: "profile", id, action }
 *   ← parent: { type: "stop" }     → closes everything and exits 0 (so --cpu-prof gets written)
 *
 * AIO_BENCH_DIST selects the package under test (a dist/index.js URL), AIO_BENCH_HOSTNAME the
 * AIO node's hostname (default bench-server); AIO_BENCH_SECRET and
 * AIO_BENCH_CERT/_KEY/_CA turn on signing and TLS for the AIO node (see securityOptions).
 * AIO_BENCH_NATS (a nats:// URL) puts both the AIO node (`transport: nats`, subject prefix
 * AIO_BENCH_NATS_PREFIX, default aio) and the Moleculer broker (NATS transporter) on that
 * nats-server instead of their own TCP ports; "ready" then says molNats (the URL).
 */
import { once } from "node:events";
import { createServer } from "node:http";
import { join, resolve } from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath, pathToFileURL } from "node:url";
import moleculer from "moleculer";
import { profile } from "./lib/profiler.mjs";

const root = resolve(fileURLToPath(new URL("..", import.meta.url)));
const distUrl = process.env.AIO_BENCH_DIST ?? pathToFileURL(join(root, "dist/index.js")).href;
const only = new Set((process.env.AIO_BENCH_SERVE ?? "aio,mol,http").split(","));

const SERVER_HOSTNAME = process.env.AIO_BENCH_HOSTNAME || "bench-server";
const MOL_SERVER_ID = "bench-mol-server";
const NATS_URL = process.env.AIO_BENCH_NATS || "";
const NATS_PREFIX = process.env.AIO_BENCH_NATS_PREFIX || "aio";

function send(message) {
  if (process.send) process.send(message);
  else process.stdout.write(`${JSON.stringify(message)}\n`);
}

// ------------------------------------------------------------------ AIO Core

/**
 * The `security` section serves AIO with a secret (AIO_BENCH_SECRET; the server then listens on
 * 0.0.0.0, and the clients still dial 127.0.0.1) and TLS (AIO_BENCH_CERT, AIO_BENCH_KEY,
 * AIO_BENCH_CA: files made by openssl for IP 127.0.0.1). Its servers share one secret and, on
 * 0.0.0.0, would find each other over mDNS: discovery is off, so each serves its own client only.
 */
function securityOptions() {
  const env = process.env;
  return {
    discover_nodes: false,
    ...(env.AIO_BENCH_SECRET ? { secret: env.AIO_BENCH_SECRET } : {}),
    ...(env.AIO_BENCH_CERT
      ? { cert_file: env.AIO_BENCH_CERT, key_file: env.AIO_BENCH_KEY, ca_file: env.AIO_BENCH_CA }
      : {}),
  };
}

async function startAio() {
  const { PluginCore } = await import(distUrl);
  const core = new PluginCore({
    plugins: [
      { name: "PluginB", path: join(root, "examples/plugins_test/PluginB") },
      { name: "StreamBench", path: join(root, "bench/fixtures/StreamBench") },
    ],
    general: { hostname: SERVER_HOSTNAME, console_log_level: "ERROR", log_dir: "" },
    networking: {
      enabled: true,
      port: 0,
      ...securityOptions(),
      ...(NATS_URL
        ? { transport: "nats", nats: { servers: [NATS_URL], subject_prefix: NATS_PREFIX } }
        : {}),
    },
  });
  await core.start();
  const failed = core.listPlugins().filter((p) => p.state !== "enabled");
  if (failed.length) throw new Error(`plugins not enabled: ${JSON.stringify(failed)}`);
  return core;
}

// ------------------------------------------------------------------ Moleculer

async function startMoleculer() {
  const broker = new moleculer.ServiceBroker({
    nodeID: MOL_SERVER_ID,
    logger: false,
    validator: false,
    metrics: false,
    tracing: false,
    // TCP: port null → a random port, read back below; the client names this node in its urls.
    transporter: NATS_URL
      ? { type: "NATS", options: { url: NATS_URL } }
      : { type: "TCP", options: { udpDiscovery: false, port: null, urls: [] } },
  });
  broker.createService({
    name: "PluginB",
    actions: {
      calculate_square(ctx) {
        return ctx.params.number ** 2;
      },
    },
  });
  broker.createService({
    name: "StreamBench",
    actions: {
      numbers(ctx) {
        return Readable.from(numbers(ctx.params.count));
      },
    },
  });
  await broker.start();
  if (NATS_URL) return { broker, port: undefined };
  const port = broker.transit.tx.opts.port;
  if (!port) throw new Error("moleculer TCP transporter reported no port");
  return { broker, port };
}

// ------------------------------------------------------------------ raw node:http

/** The items of every stream served here (NDJSON and Moleculer), as StreamBench yields them. */
async function* numbers(count) {
  for (let i = 0; i < count; i++) yield { i };
}

function readBody(req) {
  return new Promise((resolveBody, reject) => {
    let text = "";
    req.setEncoding("utf8");
    req.on("data", (chunk) => (text += chunk));
    req.on("end", () => resolveBody(text));
    req.on("error", reject);
  });
}

async function streamNdjson(res, count) {
  res.writeHead(200, { "content-type": "application/x-ndjson" });
  for await (const item of numbers(count)) {
    if (!res.write(`${JSON.stringify({ item })}\n`)) await once(res, "drain");
  }
  res.end('{"end":true}\n');
}

async function startHttp() {
  const server = createServer(async (req, res) => {
    try {
      const body = JSON.parse(await readBody(req));
      if (req.url === "/square") {
        const json = JSON.stringify({ result: body.number ** 2 });
        res.writeHead(200, {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(json),
        });
        res.end(json);
      } else if (req.url === "/stream") {
        await streamNdjson(res, body.count);
      } else {
        res.writeHead(404).end();
      }
    } catch (error) {
      if (!res.headersSent) res.writeHead(400, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: String(error?.message ?? error) } }));
    }
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return server;
}

// ------------------------------------------------------------------ main

const core = only.has("aio") ? await startAio() : undefined;
const mol = only.has("mol") ? await startMoleculer() : undefined;
const http = only.has("http") ? await startHttp() : undefined;

async function stop() {
  const httpClosed = http && new Promise((r) => http.close(r));
  http?.closeAllConnections();
  await Promise.all([core?.close(), mol?.broker.stop(), httpClosed]);
  process.exit(0);
}

process.on("message", (message) => {
  if (message?.type === "profile") {
    profile(message.action, message.file).then(() =>
      send({ type: "profile", id: message.id, action: message.action }),
    );
  } else if (message?.type === "cpu") {
    const { user, system } = process.cpuUsage();
    send({ type: "cpu", id: message.id, user, system });
  } else if (message?.type === "stop") {
    void stop();
  }
});
process.on("disconnect", () => void stop());
process.on("SIGTERM", () => void stop());

send({
  type: "ready",
  aioPort: core?.port,
  aioHostname: SERVER_HOSTNAME,
  molPort: mol?.port,
  molNodeID: MOL_SERVER_ID,
  molNats: mol && NATS_URL ? NATS_URL : undefined,
  httpPort: http?.address().port,
});
