/**
 * Helpers of the `remote` section: the server process, the clients of every contender,
 * per-call latency passes and CPU accounting on both sides.
 */
import { execFileSync, fork } from "node:child_process";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import moleculer from "moleculer";
import { Pool } from "undici";
import { collectGarbage, formatRate, median, spread, table } from "./harness.mjs";

const now = () => performance.now();
const SERVER = fileURLToPath(new URL("../remote-server.mjs", import.meta.url));

/**
 * Forks bench/remote-server.mjs and waits for its ports. `execArgv` e.g. ["--cpu-prof", …];
 * `serve` limits what it starts ("aio,mol,http"); `env` adds variables (AIO_BENCH_SECRET, …).
 * Returns { ready, cpu(), stop() }.
 */
export async function startServer({
  distUrl,
  execArgv = [],
  serve,
  env: extraEnv = {},
  timeoutMs = 30_000,
}) {
  const env = { ...process.env, ...extraEnv, AIO_BENCH_DIST: distUrl };
  if (serve) env.AIO_BENCH_SERVE = serve;
  const child = fork(SERVER, [], { execArgv, env, stdio: ["ignore", "inherit", "pipe", "ipc"] });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
  const ready = await new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`bench/remote-server.mjs not ready in ${timeoutMs} ms\n${stderr}`)),
      timeoutMs,
    );
    child.on("message", (m) => {
      if (m?.type !== "ready") return;
      clearTimeout(timer);
      resolve(m);
    });
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`bench/remote-server.mjs exited ${code} before ready:\n${stderr}`));
    });
  });
  let seq = 0;
  const waiting = new Map();
  child.on("message", (m) => {
    if (m?.type === "cpu" || m?.type === "profile") {
      waiting.get(m.id)?.(m);
      waiting.delete(m.id);
    }
  });
  let gone;
  exited.then((code) => {
    gone = new Error(`bench/remote-server.mjs exited ${code}\n${stderr}`);
    for (const settle of waiting.values()) settle(undefined);
    waiting.clear();
  });
  const ask = (message) => {
    if (gone) return Promise.reject(gone);
    const id = ++seq;
    return new Promise((resolve, reject) => {
      waiting.set(id, (m) => (m === undefined ? reject(gone) : resolve(m)));
      child.send({ ...message, id });
    });
  };
  return {
    ready,
    pid: child.pid,
    /** The server's CPU time so far, in µs (user + system). */
    cpu() {
      return ask({ type: "cpu" }).then((m) => m.user + m.system);
    },
    /** Starts a CPU profile of the server (inspector), or stops it and writes it to `file`. */
    profile(action, file) {
      return ask({ type: "profile", action, file });
    },
    /** Asks the server to close and exit; resolves with its exit code. */
    async stop() {
      if (child.exitCode === null && child.connected) child.send({ type: "stop" });
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    get stderr() {
      return stderr;
    },
  };
}

/**
 * CPU affinity of processes (and all their threads) with taskset, Linux only. `pin(pids, "0")`
 * puts them on CPU 0; `restore()` gives each back the affinity it had before the first pin.
 * `available` is false where taskset cannot be run; then pin and restore do nothing.
 */
export function affinity() {
  const saved = new Map();
  let available = process.platform === "linux";
  const taskset = (args) => execFileSync("taskset", args, { encoding: "utf8" });
  if (available) {
    try {
      taskset(["-c", "-p", String(process.pid)]);
    } catch {
      available = false;
    }
  }
  return {
    available,
    pin(pids, cpus) {
      if (!available) return;
      for (const pid of pids) {
        if (!saved.has(pid))
          saved.set(
            pid,
            taskset(["-c", "-p", String(pid)])
              .split(":")
              .pop()
              .trim(),
          );
        taskset(["-a", "-c", "-p", cpus, String(pid)]);
      }
    },
    restore() {
      for (const [pid, cpus] of saved) {
        try {
          taskset(["-a", "-c", "-p", cpus, String(pid)]);
        } catch {
          // The process is gone.
        }
      }
    },
  };
}

/** A CPU profile of this process over a window: `const stop = await profileSelf(); … await stop(file)`. */
export async function profileSelf(intervalUs = 200) {
  const { Session } = await import("node:inspector/promises");
  const { writeFileSync } = await import("node:fs");
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: intervalUs });
  await session.post("Profiler.start");
  return async (file) => {
    const { profile } = await session.post("Profiler.stop");
    writeFileSync(file, JSON.stringify(profile));
    session.disconnect();
  };
}

/** This process's CPU time so far, in µs (user + system). */
export function clientCpu() {
  const { user, system } = process.cpuUsage();
  return user + system;
}

// ------------------------------------------------------------------ clients

/**
 * The AIO client node: networking on, no plugins, the server in node_ips. `networking` adds
 * keys (secret, cert_file, …) to match a server started with them. Resolves once the client
 * lists the server node alive with PluginB.
 */
export async function startAioClient(distUrl, ready, networking = {}, hostname = "bench-client") {
  const client = await startAioNode(
    distUrl,
    { node_ips: [`127.0.0.1:${ready.aioPort}`], ...networking },
    hostname,
  );
  await waitForServerNode(client, ready.aioHostname);
  return client;
}

/** A started AIO node with networking on (`port: 0` and `networking`) and no plugins. */
export async function startAioNode(distUrl, networking, hostname) {
  const { PluginCore } = await import(distUrl);
  const client = new PluginCore({
    plugins: [],
    general: { hostname, console_log_level: "ERROR", log_dir: "" },
    networking: { enabled: true, port: 0, ...networking },
  });
  await client.start();
  return client;
}

/**
 * Resolves once `client` lists the node `hostname` alive with PluginB, at once or on a later
 * node:up; after `timeoutMs`, closes the client and throws.
 */
export async function waitForServerNode(client, hostname, timeoutMs = 10_000) {
  const serving = () =>
    client.nodes().some((n) => n.hostname === hostname && n.alive && n.plugins.includes("PluginB"));
  const found =
    serving() ||
    (await new Promise((resolve) => {
      const check = () => serving() && done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      const done = (ok) => {
        clearTimeout(timer);
        client.off("node:up", check);
        resolve(ok);
      };
      client.on("node:up", check);
    }));
  if (!found) {
    const nodes = client.nodes();
    await client.close();
    throw new Error(
      `the AIO client does not list the server node ${hostname} with PluginB within ${timeoutMs} ms: ${JSON.stringify(nodes)}`,
    );
  }
}

/**
 * The Moleculer client broker, on the transporter of the server's broker: TCP to its port
 * (static URL, no UDP discovery), or NATS when the server says `molNats` (its URL).
 */
export async function startMoleculerClient(ready, nodeID = "bench-mol-client") {
  const broker = new moleculer.ServiceBroker({
    nodeID,
    logger: false,
    validator: false,
    metrics: false,
    tracing: false,
    transporter: ready.molNats
      ? { type: "NATS", options: { url: ready.molNats } }
      : {
          type: "TCP",
          options: { udpDiscovery: false, urls: [`127.0.0.1:${ready.molPort}/${ready.molNodeID}`] },
        },
  });
  await broker.start();
  await broker.waitForServices("PluginB", 10_000);
  return broker;
}

/** One keep-alive connection per call in flight (64), no pipelining. */
export function httpPool(port, connections = 64) {
  return new Pool(`http://127.0.0.1:${port}`, {
    connections,
    pipelining: 1,
    keepAliveTimeout: 60_000,
  });
}

const JSON_HEADERS = { "content-type": "application/json" };

/** POST a JSON body, answer the parsed JSON body. */
export async function postJson(pool, path, text) {
  const { statusCode, body } = await pool.request({
    method: "POST",
    path,
    headers: JSON_HEADERS,
    body: text,
  });
  const value = await body.json();
  if (statusCode !== 200) throw new Error(`${path}: HTTP ${statusCode} ${JSON.stringify(value)}`);
  return value;
}

/**
 * POST a JSON body to an NDJSON endpoint and parse every line; `onItem(item)` per `{"item":…}`.
 * Returns the number of items; throws on an `{"error":…}` line or a missing `{"end":true}`.
 */
export async function consumeNdjson(pool, path, text, onItem) {
  const { statusCode, body } = await pool.request({
    method: "POST",
    path,
    headers: JSON_HEADERS,
    body: text,
  });
  if (statusCode !== 200) throw new Error(`${path}: HTTP ${statusCode} ${await body.text()}`);
  body.setEncoding("utf8");
  let rest = "";
  let items = 0;
  let ended = false;
  for await (const chunk of body) {
    const textChunk = rest === "" ? chunk : rest + chunk;
    let start = 0;
    for (let nl = textChunk.indexOf("\n"); nl !== -1; nl = textChunk.indexOf("\n", start)) {
      const line = JSON.parse(textChunk.slice(start, nl));
      start = nl + 1;
      if (line.item !== undefined) {
        items++;
        onItem?.(line.item);
      } else if (line.end === true) ended = true;
      else if (line.error) throw new Error(`${path}: ${JSON.stringify(line.error)}`);
    }
    rest = textChunk.slice(start);
  }
  if (!ended) throw new Error(`${path}: the stream ended without {"end":true}`);
  return items;
}

// ------------------------------------------------------------------ latency

/**
 * A latency pass: `concurrency` closed loops, each timing every call with performance.now().
 * Run separately from the throughput passes (which read the clock once per chunk).
 * Returns measure(ms) → Float64Array of per-call milliseconds.
 */
export function makeLatencyCase(fn, concurrency) {
  const loop = new Function(
    "fn",
    "now",
    `return async function latencyLoop(out, end) {
       do { const t = now(); await fn(); out.push(now() - t); } while (now() < end);
     };`,
  )(fn, now);
  return async function measure(ms) {
    const out = [];
    const end = now() + ms;
    const workers = [];
    for (let i = 0; i < concurrency; i++) workers.push(loop(out, end));
    await Promise.all(workers);
    return Float64Array.from(out);
  };
}

/** The p-th percentile (0..100) of the samples, nearest rank. */
export function percentile(samples, p) {
  if (samples.length === 0) return Number.NaN;
  const sorted = Float64Array.from(samples).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

export function formatLatency(ms) {
  if (!Number.isFinite(ms)) return "-";
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`;
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  return `${ms.toFixed(1)} ms`;
}

// ------------------------------------------------------------------ rounds

/**
 * Runs every contender `rounds` times, interleaved (order rotated per round, full GC before
 * each). Per round and contender: a throughput pass (clock read once per chunk) with the CPU
 * time both processes spent in it, then, if `latencyMs`, a separate latency pass timing every
 * call. A contender's own `server` (else `server`) is the process whose CPU is counted.
 * Returns { [id]: { rates, ops, clientCpu, serverCpu, latency: Float64Array[] } }.
 */
export async function measureRounds(
  contenders,
  { rounds, ms, warmupMs, latencyMs, server, onRound },
) {
  for (const c of contenders) {
    collectGarbage();
    await c.measure(warmupMs);
    if (latencyMs && c.latency) await c.latency(Math.min(latencyMs, warmupMs));
  }
  const out = Object.fromEntries(
    contenders.map((c) => [c.id, { rates: [], clientCpu: [], serverCpu: [], latency: [] }]),
  );
  for (let r = 0; r < rounds; r++) {
    const order = contenders.map((_, i) => contenders[(i + r) % contenders.length]);
    for (const c of order) {
      collectGarbage();
      const serving = c.server ?? server;
      const s0 = await serving.cpu();
      const c0 = clientCpu();
      const { ops, perSec } = await c.measure(ms);
      const c1 = clientCpu();
      const s1 = await serving.cpu();
      const per = c.unitsPerOp ?? 1;
      const o = out[c.id];
      o.rates.push(perSec * per);
      o.clientCpu.push((c1 - c0) / (ops * per));
      o.serverCpu.push((s1 - s0) / (ops * per));
      if (latencyMs && c.latency) {
        collectGarbage();
        o.latency.push(await c.latency(latencyMs));
      }
    }
    onRound?.(r + 1, rounds);
  }
  return out;
}

export function pooled(arrays) {
  const total = arrays.reduce((n, a) => n + a.length, 0);
  const all = new Float64Array(total);
  let at = 0;
  for (const a of arrays) {
    all.set(a, at);
    at += a.length;
  }
  return all;
}

/**
 * The table of remote calls by phase and contender: calls/s (median and spread of the rounds),
 * p50 and p99 of the pooled latency passes, and the CPU per call of both processes.
 */
export function callsTable(phases, calls, results) {
  const us = (values) => `${median(values).toFixed(1)} µs`;
  const rows = [];
  for (const phase of phases) {
    for (const c of calls) {
      const r = results[phase.key][c.id];
      const lat = pooled(r.latency);
      rows.push([
        phase.label,
        c.label,
        `${formatRate(median(r.rates))} ${spread(r.rates)}`,
        formatLatency(percentile(lat, 50)),
        formatLatency(percentile(lat, 99)),
        `${us(r.clientCpu)} / ${us(r.serverCpu)}`,
      ]);
    }
  }
  return table(["phase", "contender", "calls/s", "p50", "p99", "CPU client / server"], rows);
}

/** The ratio of the medians of two paired series, with the range of the per-round ratios. */
export function ratioCell(a, b) {
  const r = median(a) / median(b);
  const per = a.map((v, i) => v / b[i]);
  return {
    r,
    text: `${r.toFixed(2)}x (rounds ${Math.min(...per).toFixed(2)}–${Math.max(...per).toFixed(2)})`,
  };
}
