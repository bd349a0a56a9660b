/**
 * What a new user feels when two devices come up at different times: the time from a node's
 * start (the moment its process is spawned) to the first successful call from its peer.
 *
 * Two fresh processes per run on 127.0.0.1 (bench/lib/discovery-node.mjs), free ports picked
 * per run: A calls, B serves. One of them is started first and left alone for a while (`gap`);
 * then the other is spawned at t0 (Date.now() here, just before the spawn). A polls its call
 * (on failure it tries again after 5 ms) and prints Date.now() of the first success; the result
 * is that minus t0.
 *
 *   late server  A runs first (B's address in its node_ips), B is spawned at t0
 *   late caller  B runs first, A is spawned at t0 and calls as soon as its core is started
 *
 * each with (a) both nodes listing each other, (b) only A listing B. AIO Core with the default
 * heartbeat_interval and liveness_timeout, no secret (so bound to 127.0.0.1, mDNS off), calls
 * execute("PluginB", "calculate_square", 6). Baseline in the same run, interleaved run by run:
 * Moleculer 0.14, TCP transporter with static urls and udpDiscovery off, `math.square`.
 */
import { spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { once } from "node:events";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { formatMs, median, table } from "../lib/harness.mjs";

export const name = "discovery";
export const description =
  "time from a node's spawn to its peer's first successful call (late server / late caller) vs Moleculer TCP";

const CHILD = fileURLToPath(new URL("../lib/discovery-node.mjs", import.meta.url));
/** A run that has no successful call this long after t0 counts as timed out. */
const TIMEOUT_MS = 30_000;
/** The first node must print READY within this long. */
const START_TIMEOUT_MS = 30_000;
/**
 * How long the first node runs alone before the second is spawned: spread evenly over
 * [GAP_MIN_MS, GAP_MIN_MS + GAP_SPAN_MS) across the runs (the same gaps for both contenders), so
 * the second node comes up at varied moments of the first node's periodic timers (retries,
 * gossip), as for two devices started independently, instead of always at the same phase.
 */
const GAP_MIN_MS = 100;
const GAP_SPAN_MS = 1000;
const TARGET_MS = 1000;

const ORDERS = [
  { id: "lateServer", label: "late server", first: "caller" },
  { id: "lateCaller", label: "late caller", first: "server" },
];
const CONFIGS = [
  { id: "both", label: "both list each other" },
  { id: "callerOnly", label: "only A lists B" },
];
const CASES = CONFIGS.flatMap((config) =>
  ORDERS.map((order) => ({
    id: `${order.id}-${config.id}`,
    label: `${order.label}, ${config.label}`,
    order,
    config,
  })),
);
const IMPLS = [
  { id: "aio", label: "AIO Core" },
  { id: "mol", label: "Moleculer 0.14 TCP" },
];
const MOL_ID = { caller: "discovery-mol-a", server: "discovery-mol-b" };

/** The i-th of n gaps: a golden-ratio sequence, evenly spread over the span for any n. */
function gapOf(i) {
  return Math.round(GAP_MIN_MS + GAP_SPAN_MS * ((i * 0.6180339887 + 0.5) % 1));
}

// ------------------------------------------------------------------ ports

function listenTcp() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}

async function udpFree(port) {
  const socket = createSocket("udp4");
  try {
    socket.bind(port, "127.0.0.1");
    await once(socket, "listening");
    return true;
  } catch {
    return false;
  } finally {
    try {
      socket.close();
    } catch {
      // not bound
    }
  }
}

/**
 * `n` distinct ports free on 127.0.0.1 for TCP and UDP (an AIO node uses its port number for
 * both: the node channel and HTTP over TCP, heartbeats over UDP).
 */
async function freePorts(n) {
  for (let attempt = 0; attempt < 20; attempt++) {
    const servers = [];
    const ports = [];
    try {
      // Held open together, so the ports differ.
      for (let i = 0; i < n; i++) {
        const server = await listenTcp();
        servers.push(server);
        ports.push(server.address().port);
      }
    } finally {
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    }
    const udp = await Promise.all(ports.map(udpFree));
    if (ports.every((p) => p > 0) && udp.every(Boolean)) return ports;
  }
  throw new Error(`no ${n} ports free for both TCP and UDP on 127.0.0.1`);
}

// ------------------------------------------------------------------ children

const live = new Set();
function killAll() {
  for (const child of live) child.proc.kill("SIGKILL");
}

/** Spawns bench/lib/discovery-node.mjs; lines READY / CALLED / ERROR / FAILED come as events. */
function startChild(spec) {
  const proc = spawn(process.execPath, [CHILD, JSON.stringify(spec)], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  const child = { proc, spec, stderr: "", lines: [], waiters: new Set() };
  live.add(child);
  child.exited = new Promise((resolve) =>
    proc.once("exit", (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    }),
  );
  child.exited.then(({ code, signal }) => {
    const line = { tag: "EXIT", value: { code, signal } };
    for (const w of [...child.waiters]) w(line);
  });
  proc.stderr.setEncoding("utf8");
  proc.stderr.on("data", (d) => {
    child.stderr += d;
    if (child.stderr.length > 20_000) child.stderr = child.stderr.slice(-10_000);
  });
  proc.stdin.on("error", () => {});
  let buffer = "";
  proc.stdout.setEncoding("utf8");
  proc.stdout.on("data", (d) => {
    buffer += d;
    for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
      const text = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      const space = text.indexOf(" ");
      if (space < 0) continue;
      let value;
      try {
        value = JSON.parse(text.slice(space + 1));
      } catch {
        continue;
      }
      const line = { tag: text.slice(0, space), value };
      child.lines.push(line);
      for (const w of [...child.waiters]) w(line);
    }
  });
  return child;
}

/**
 * Resolves with the first line (seen so far or to come) whose tag is in `tags`, or with
 * { tag: "EXIT" } when the process ends, or { tag: "TIMEOUT" } at `deadline` (Date.now()).
 */
function waitLine(child, tags, deadline) {
  const seen = child.lines.find((l) => tags.includes(l.tag));
  if (seen) return Promise.resolve(seen);
  if (child.proc.exitCode !== null || child.proc.signalCode !== null)
    return Promise.resolve({ tag: "EXIT", value: { code: child.proc.exitCode } });
  return new Promise((resolve) => {
    const done = (line) => {
      clearTimeout(timer);
      child.waiters.delete(waiter);
      resolve(line);
    };
    const waiter = (line) => {
      if (tags.includes(line.tag) || line.tag === "EXIT") done(line);
    };
    const timer = setTimeout(
      () => done({ tag: "TIMEOUT", value: {} }),
      Math.max(0, deadline - Date.now()),
    );
    child.waiters.add(waiter);
  });
}

async function stopChild(child) {
  if (!child) return;
  if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill("SIGKILL");
  await child.exited;
}

function failure(child, line, what) {
  const detail =
    line.tag === "FAILED"
      ? line.value
      : line.tag === "EXIT"
        ? `exited ${JSON.stringify(line.value)}`
        : line.tag;
  return new Error(
    `${child.spec.impl} ${child.spec.role} ${what}: ${detail}\n${child.stderr.slice(-4000)}`,
  );
}

// ------------------------------------------------------------------ one run

function specs(ctx, impl, configId, [portA, portB]) {
  const both = configId === "both";
  const common = {
    impl,
    distUrl: ctx.distUrl,
    pluginPath: join(ctx.root, "examples/plugins_test/PluginB"),
    // The caller's own give-up, a safety net behind the deadline kept here.
    timeoutMs: TIMEOUT_MS + START_TIMEOUT_MS + GAP_MIN_MS + GAP_SPAN_MS,
  };
  const url = (port, role) =>
    impl === "aio" ? `127.0.0.1:${port}` : `127.0.0.1:${port}/${MOL_ID[role]}`;
  return {
    caller: { ...common, role: "caller", port: portA, peers: [url(portB, "server")] },
    server: { ...common, role: "server", port: portB, peers: both ? [url(portA, "caller")] : [] },
  };
}

/**
 * One run: returns { ms } (first success − t0) or { timedOut: true, error } when the caller
 * had no success TIMEOUT_MS after t0. A node that fails to start throws.
 */
async function runOnce(ctx, impl, testCase, gapMs) {
  const ports = await freePorts(2);
  const roles = specs(ctx, impl, testCase.config.id, ports);
  const firstRole = testCase.order.first;
  const secondRole = firstRole === "server" ? "caller" : "server";
  const children = {};
  try {
    children[firstRole] = startChild(roles[firstRole]);
    const ready = await waitLine(
      children[firstRole],
      ["READY", "FAILED"],
      Date.now() + START_TIMEOUT_MS,
    );
    if (ready.tag !== "READY") throw failure(children[firstRole], ready, "did not start");
    await new Promise((resolve) => setTimeout(resolve, gapMs));
    const early = children.caller?.lines.find((l) => l.tag === "CALLED");
    if (early) throw new Error(`${impl} caller succeeded before the server was started`);

    const t0 = Date.now();
    children[secondRole] = startChild(roles[secondRole]);
    const deadline = t0 + TIMEOUT_MS;
    const caller = children.caller;
    const server = children.server;
    const result = await Promise.race([
      waitLine(caller, ["CALLED", "TIMEOUT", "FAILED"], deadline),
      // The server failing to start (or dying) ends the run at once.
      waitLine(server, ["FAILED"], deadline).then((line) =>
        line.tag === "TIMEOUT" ? new Promise(() => {}) : { ...line, from: server },
      ),
    ]);
    if (result.tag === "CALLED") {
      // When the spawned node said it was started (its own start-up, the floor of the result).
      // (Its READY line may still be on its way through the other pipe.)
      const started = await waitLine(children[secondRole], ["READY"], Date.now() + 5000);
      return {
        ms: result.value.t - t0,
        startedMs: started.tag === "READY" ? started.value.t - t0 : null,
        attempts: result.value.attempts,
      };
    }
    if (result.tag === "TIMEOUT") {
      const errors = caller.lines.filter((l) => l.tag === "ERROR").map((l) => l.value.error);
      return {
        timedOut: true,
        error: errors.length ? errors[errors.length - 1] : "no call attempted",
      };
    }
    throw failure(result.from ?? caller, result, "failed");
  } finally {
    await Promise.all([stopChild(children.caller), stopChild(children.server)]);
  }
}

// ------------------------------------------------------------------ section

const fmt = (ms) => (Number.isFinite(ms) ? formatMs(ms) : `> ${TIMEOUT_MS / 1000} s`);

function summarize(runs) {
  // A timed-out run counts as +Infinity: it is slower than any that succeeded.
  const values = runs.map((r) => (r.timedOut ? Number.POSITIVE_INFINITY : r.ms));
  const done = values.filter(Number.isFinite);
  const started = runs.map((r) => r.startedMs).filter((v) => typeof v === "number");
  return {
    startedMedianMs: started.length ? median(started) : null,
    medianMs: median(values),
    minMs: Math.min(...values),
    maxMs: Math.max(...values),
    runsMs: runs.map((r) => (r.timedOut ? null : r.ms)),
    timeouts: runs.filter((r) => r.timedOut).length,
    errors: [...new Set(runs.filter((r) => r.timedOut).map((r) => r.error))],
    succeeded: done.length,
  };
}

function cell(s) {
  if (s.succeeded === 0) return `all ${s.runsMs.length} timed out`;
  const text = `${fmt(s.medianMs)} (${fmt(s.minMs)}–${fmt(s.maxMs)})`;
  return s.timeouts ? `${text}, ${s.timeouts} timed out` : text;
}

export async function run(ctx) {
  const runs = Math.max(1, Math.round(ctx.discovery?.runs ?? (ctx.quick ? 3 : 10)));
  const results = Object.fromEntries(
    CASES.map((c) => [c.id, Object.fromEntries(IMPLS.map((i) => [i.id, []]))]),
  );
  const onExit = () => killAll();
  process.on("exit", onExit);
  ctx.progress(
    `  ${runs} runs × ${CASES.length} cases × ${IMPLS.length} contenders, fresh processes each; timeout ${TIMEOUT_MS / 1000} s per run`,
  );
  try {
    for (let r = 0; r < runs; r++) {
      const gapMs = gapOf(r);
      const parts = [];
      for (const [k, testCase] of CASES.entries()) {
        // Alternate which contender goes first, so drift on the machine hits both alike.
        const order = (r + k) % 2 === 0 ? IMPLS : [...IMPLS].reverse();
        for (const impl of order) {
          const got = await runOnce(ctx, impl.id, testCase, gapMs);
          results[testCase.id][impl.id].push(got);
        }
        const show = (id) => {
          const got = results[testCase.id][id][r];
          return got.timedOut ? "timeout" : `${got.ms}`;
        };
        parts.push(`${show("aio")}/${show("mol")}`);
      }
      ctx.progress(
        `    run ${r + 1}/${runs} (gap ${gapMs} ms), ms AIO/Moleculer: ${CASES.map((c, i) => `${c.id} ${parts[i]}`).join(", ")}`,
      );
    }
  } finally {
    killAll();
    process.off("exit", onExit);
  }
  return report(ctx, runs, results);
}

function report(ctx, runs, results) {
  const cases = {};
  const rows = [];
  for (const c of CASES) {
    const aio = summarize(results[c.id].aio);
    const mol = summarize(results[c.id].mol);
    const ratio =
      Number.isFinite(mol.medianMs) && Number.isFinite(aio.medianMs)
        ? mol.medianMs / aio.medianMs
        : Number.NaN;
    cases[c.id] = { label: c.label, aio, mol, ratio: Number.isFinite(ratio) ? ratio : null };
    const startedText = (v) => (v === null ? "-" : formatMs(v));
    rows.push([
      c.label,
      cell(aio),
      cell(mol),
      Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : "-",
      `${startedText(aio.startedMedianMs)} / ${startedText(mol.startedMedianMs)}`,
    ]);
  }
  const out = [];
  out.push(
    `Discovery: time from the spawn of a node's process to the first successful call from its peer (A calls, B serves; ms, median (min–max) of ${runs} runs, fresh processes on 127.0.0.1 per run; the first node runs alone ${GAP_MIN_MS}–${GAP_MIN_MS + GAP_SPAN_MS} ms before the second is spawned; a failed call is retried after 5 ms; timeout ${TIMEOUT_MS / 1000} s)`,
  );
  out.push(
    table(
      [
        "case",
        "AIO Core",
        "Moleculer 0.14 TCP",
        "Moleculer / AIO",
        "spawned node started, AIO / Mol",
      ],
      rows,
    ),
  );
  out.push(
    "(Moleculer / AIO: ratio of the medians, how many times faster AIO is. Spawned node started: median time from its spawn to its own start-up done (PluginCore start() resolved, broker.start() resolved), the floor under the result.)",
  );
  out.push(
    '(AIO Core: default heartbeat_interval and liveness_timeout, no secret, bound to 127.0.0.1 so no mDNS, execute("PluginB", "calculate_square", 6). Moleculer: TCP transporter, udpDiscovery off, static urls "127.0.0.1:PORT/nodeID", defaults otherwise, broker.call("math.square", { n: 6 }).)',
  );
  const molCallerOnly = CASES.filter((c) => c.config.id === "callerOnly").map(
    (c) => cases[c.id].mol,
  );
  const molBoth = CASES.filter((c) => c.config.id === "both").map((c) => cases[c.id].mol);
  if (molCallerOnly.every((s) => s.succeeded === 0) && molBoth.some((s) => s.succeeded > 0)) {
    out.push(
      "Moleculer's static TCP transporter did not connect when only the caller lists the server: those rows have no Moleculer time.",
    );
  }
  for (const c of CASES) {
    for (const impl of IMPLS) {
      const s = cases[c.id][impl.id];
      if (s.timeouts)
        out.push(
          `${impl.label}, ${c.label}: ${s.timeouts}/${runs} runs timed out (last error seen by the caller: ${s.errors.join("; ")})`,
        );
    }
  }
  const target = {
    what: `AIO Core median under ${TARGET_MS} ms in every case`,
    worstMs: Math.max(...CASES.map((c) => cases[c.id].aio.medianMs)),
  };
  target.met = target.worstMs < TARGET_MS;
  out.push(
    `Target ${target.what}: ${target.met ? "MET" : "NOT MET"} (slowest median ${fmt(target.worstMs)})`,
  );
  ctx.print(out.join("\n"));
  return {
    runs,
    timeoutMs: TIMEOUT_MS,
    gapMs: [GAP_MIN_MS, GAP_MIN_MS + GAP_SPAN_MS],
    medians: Object.fromEntries(
      CASES.map((c) => [
        c.id,
        { aio: cases[c.id].aio.medianMs, mol: cases[c.id].mol.medianMs, ratio: cases[c.id].ratio },
      ]),
    ),
    cases,
    targets: [target],
    met: target.met,
  };
}
