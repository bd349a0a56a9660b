/**
 * A node under attack (docs/security.md, "Attacks, and what a node does"): what a normal caller
 * still gets from it, and the node's memory. Three child processes on 127.0.0.1:
 *
 *   node      bench/lib/hostile-node.mjs: a secret (64 random hex digits), bound to 127.0.0.1,
 *             `drain_timeout: 1`, serving PluginB and BigStream (64 KiB strings)
 *   caller    bench/lib/hostile-caller.mjs: an AIO node with the same secret and the node in
 *             its node_ips, calling execute("PluginB", "calculate_square", 6) over its channel,
 *             16 calls in flight, every call timed
 *   attacker  bench/lib/hostile-attacker.mjs: forged bodies, held connections, a stream the
 *             member never reads (see there)
 *
 * Rounds: baseline (no attack) and attack rounds alternate, B A B A … B, the attacks in an
 * order rotated per repetition; each attack round is paired with the mean of the two baseline
 * rounds around it. During every round the node's VmRSS is read from /proc every 20 ms (the
 * peak is reported) and the CPU time of each process is taken around the caller's pass.
 * At the end, with 1,000 held connections open, the node gets SIGTERM: the time to its exit.
 */
import { execFileSync, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { formatRate, median, table } from "../lib/harness.mjs";
import { formatLatency, percentile, pooled } from "../lib/remote.mjs";

export const name = "hostile";
export const description =
  "a node under attack (forged bodies, held connections, a stream not read): a caller's calls/s and p99, the node's RSS";

const CONCURRENCY = 16;
const MIN_RATIO = 0.8;
const MAX_RSS_MIB = 200;
const DRAIN_TIMEOUT_S = 1;
const MiB = 1024 * 1024;
const LEAD_MS = 200; // an attack runs this long before the caller's pass starts
const SETTLE_MS = 300; // pause after each round (the attack's connections closing)

const ATTACKS = [
  { id: "forged", label: "forged bodies: 1,000 conns × 1 MiB, no secret" },
  { id: "held", label: "held connections: 800 mid-headers + 200 idle" },
  { id: "stream", label: "stream not read: member, credit 4096 / 20 ms" },
];

const script = (file) => fileURLToPath(new URL(`../lib/${file}`, import.meta.url));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Forks `file` with IPC. Returns { pid, ready, ask(message), exited, alive(), kill(), stderr }:
 * `ready` resolves with its first `{ type: "ready" }` message; `ask` sends a message with an id
 * and resolves with the answer carrying that id (rejects on `{ type: "failed" }` or its exit).
 */
function child(file, env, execArgv = []) {
  const proc = fork(script(file), [], {
    env: { ...process.env, ...env },
    execArgv,
    serialization: "advanced",
    stdio: ["ignore", "inherit", "pipe", "ipc"],
  });
  let stderr = "";
  proc.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise((resolve) =>
    proc.once("exit", (code, signal) => resolve({ code, signal, at: performance.now() })),
  );
  const waiting = new Map();
  let seq = 0;
  let gone;
  const ready = new Promise((resolve, reject) => {
    proc.on("message", (m) => {
      if (m?.type === "ready") resolve(m);
      else if (m?.id !== undefined && waiting.has(m.id)) {
        const { ok, fail } = waiting.get(m.id);
        waiting.delete(m.id);
        if (m.type === "failed") fail(new Error(`${file}: ${m.error}`));
        else ok(m);
      }
    });
    exited.then(({ code, signal }) => {
      gone = new Error(`${file} exited (${code ?? signal})\n${stderr}`);
      reject(gone);
      for (const { fail } of waiting.values()) fail(gone);
      waiting.clear();
    });
  });
  ready.catch(() => undefined);
  const alive = () => proc.exitCode === null && proc.signalCode === null;
  return {
    proc,
    pid: proc.pid,
    ready,
    exited,
    alive,
    get stderr() {
      return stderr;
    },
    ask(message) {
      if (gone) return Promise.reject(gone);
      const id = ++seq;
      return new Promise((ok, fail) => {
        waiting.set(id, { ok, fail });
        proc.send({ ...message, id });
      });
    },
    /** SIGKILL if still running; resolves once it is gone. */
    async kill() {
      if (alive()) proc.kill("SIGKILL");
      await exited;
    },
  };
}

/** Resident memory of process `pid`, in bytes (Linux /proc). */
function rssOf(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

/** Samples the RSS of `pid` every 20 ms until stop(); returns { start, peak }. */
function rssSampler(pid) {
  const start = rssOf(pid);
  let peak = start;
  const timer = setInterval(() => {
    peak = Math.max(peak, rssOf(pid));
  }, 20);
  return {
    stop() {
      clearInterval(timer);
      return { start, peak: Math.max(peak, rssOf(pid)) };
    },
  };
}

/** Clock ticks per second of /proc's CPU times. */
function clockTicks() {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
}

/** CPU time (user + system, µs) of the main thread of process `pid` (Linux /proc, tick resolution). */
function mainThreadUs(pid, ticks) {
  try {
    const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) / ticks) * 1e6;
  } catch {
    return Number.NaN;
  }
}

const mib = (bytes) => (bytes / MiB).toFixed(0);

export async function run(ctx) {
  const s = {
    rounds: ctx.hostile?.rounds ?? (ctx.quick ? 1 : 3),
    ms: ctx.hostile?.ms ?? (ctx.quick ? 1000 : 3000),
    warmupMs: ctx.hostile?.warmupMs ?? (ctx.quick ? 300 : 1000),
  };
  if (process.platform !== "linux") {
    ctx.print("hostile: skipped, it reads the node's memory from /proc (Linux only)");
    return {};
  }
  const secret = randomBytes(32).toString("hex");
  const env = { AIO_BENCH_DIST: ctx.distUrl, AIO_BENCH_SECRET: secret };
  const started = [];
  try {
    const node = child("hostile-node.mjs", env);
    started.push(node);
    const { port } = await node.ready;
    const peers = { ...env, AIO_BENCH_NODE_PORT: String(port) };
    const caller = child("hostile-caller.mjs", peers, ["--expose-gc"]);
    started.push(caller);
    const attacker = child("hostile-attacker.mjs", peers);
    started.push(attacker);
    await Promise.all([caller.ready, attacker.ready]);
    ctx.progress(
      `  node on 127.0.0.1:${port} (pid ${node.pid}, ${mib(rssOf(node.pid))} MiB), caller and attacker ready; warm-up ${s.warmupMs} ms`,
    );
    const ticks = clockTicks();
    // CPU µs so far: node, caller, attacker (whole processes), and the node's main thread.
    const cpu = async () => [
      ...(await Promise.all(
        [node, caller, attacker].map((p) => p.ask({ type: "cpu" }).then((m) => m.us)),
      )),
      mainThreadUs(node.pid, ticks),
    ];
    await caller.ask({ type: "measure", ms: s.warmupMs, concurrency: CONCURRENCY });

    /** One round: the attack (if any) from LEAD_MS before the caller's pass to its end. */
    async function round(attack) {
      // A full GC in the caller (its own noise), none in the node: a node under attack gets
      // none either, so what an attack round leaves behind shows in the next round's start.
      await caller.ask({ type: "gc" });
      const rss = rssSampler(node.pid);
      if (attack) {
        await attacker.ask({ type: "start", attack });
        await sleep(LEAD_MS);
      }
      const c0 = await cpu();
      const pass = await caller.ask({ type: "measure", ms: s.ms, concurrency: CONCURRENCY });
      const c1 = await cpu();
      const stats = attack ? (await attacker.ask({ type: "stop" })).stats : undefined;
      const memory = rss.stop();
      // What the node's heap and buffers hold right after the round, before a GC.
      memory.after = (await node.ask({ type: "cpu" })).memory;
      await sleep(SETTLE_MS);
      if (pass.errors && !attack)
        ctx.progress(`    baseline: ${pass.errors} calls failed (${pass.firstError})`);
      return {
        rate: (pass.ops / pass.ms) * 1000,
        errors: pass.errors,
        firstError: pass.firstError,
        latency: pass.latency,
        rss: memory,
        // Percent of one CPU over the caller's pass: node, caller, attacker, node's main thread.
        cpu: c1.map((us, i) => ((us - c0[i]) / 1000 / pass.ms) * 100),
        stats,
      };
    }

    const baseline = [];
    const results = Object.fromEntries(ATTACKS.map((a) => [a.id, []]));
    const total = s.rounds * ATTACKS.length * 2 + 1;
    let done = 0;
    const note = (label, r) =>
      ctx.progress(
        `    ${++done}/${total} ${label}: ${formatRate(r.rate)} calls, p99 ${formatLatency(percentile(r.latency, 99))}, node RSS ${mib(r.rss.start)} → peak ${mib(r.rss.peak)} MiB (after: heap ${mib(r.rss.after.heapUsed)}/${mib(r.rss.after.heapTotal)}, buffers ${mib(r.rss.after.arrayBuffers)} MiB), CPU node ${r.cpu[0].toFixed(0)}% (main thread ${r.cpu[3].toFixed(0)}%) caller ${r.cpu[1].toFixed(0)}% attacker ${r.cpu[2].toFixed(0)}%${r.errors ? `, ${r.errors} failed (${r.firstError})` : ""}`,
      );
    ctx.progress(
      `  ${s.rounds} × ${ATTACKS.length} attack rounds of ${s.ms} ms, a baseline round before and after each`,
    );
    for (let rep = 0; rep < s.rounds; rep++) {
      for (let k = 0; k < ATTACKS.length; k++) {
        const attack = ATTACKS[(k + rep) % ATTACKS.length];
        const before = await round(undefined);
        baseline.push(before);
        note("baseline", before);
        const r = await round(attack.id);
        r.baselineIndex = baseline.length - 1; // paired with this one and the next
        results[attack.id].push(r);
        note(attack.id, r);
      }
    }
    const last = await round(undefined);
    baseline.push(last);
    note("baseline", last);

    // Close with 1,000 held connections still open.
    caller.ask({ type: "stop" }).catch(() => undefined);
    await Promise.race([caller.exited, sleep(10_000)]);
    await caller.kill();
    await attacker.ask({ type: "start", attack: "held" });
    await sleep(LEAD_MS);
    let closeReport;
    node.proc.on("message", (m) => {
      if (m?.type === "closed") closeReport = m;
    });
    const wall0 = Date.now();
    const t0 = performance.now();
    node.proc.kill("SIGTERM");
    const exit = await Promise.race([node.exited, sleep(30_000).then(() => undefined)]);
    if (!exit) throw new Error("the node did not exit within 30 s of SIGTERM");
    await sleep(300); // the attacker sees the last of its connections end
    const held = (await attacker.ask({ type: "stop" })).stats;
    // When the attacker saw each held connection end, from SIGTERM (its own event loop's
    // timing: a thousand ends arriving at once are seen over some tens of ms).
    const ended = held.closeTimes.map((t) => t - wall0).sort((a, b) => a - b);
    const close = {
      ms: exit.at - t0,
      closeMs: closeReport?.ms,
      code: exit.code ?? exit.signal,
      held: held.connected,
      ended: ended.length,
      firstEndedMs: ended[0],
      lastEndedMs: ended.at(-1),
    };
    ctx.progress(
      `  close: SIGTERM → exit ${close.ms.toFixed(0)} ms (close() ${close.closeMs?.toFixed(0) ?? "?"} ms), exit ${close.code}; ${close.ended} of ${close.held} held connections ended, ${close.firstEndedMs ?? "-"}–${close.lastEndedMs ?? "-"} ms after SIGTERM`,
    );
    return report(ctx, s, baseline, results, close);
  } finally {
    await Promise.all(started.map((p) => p.kill()));
  }
}

function report(ctx, s, baseline, results, close) {
  const baseRates = baseline.map((r) => r.rate);
  const baseP99 = percentile(pooled(baseline.map((r) => r.latency)), 99);
  const basePeak = Math.max(...baseline.map((r) => r.rss.peak));
  // The highest peak of the rounds, with the RSS that round started from.
  const rssCell = (rounds) => {
    const top = rounds.reduce((a, b) => (b.rss.peak > a.rss.peak ? b : a));
    return `${mib(top.rss.peak)} MiB (from ${mib(top.rss.start)})`;
  };
  const cpuCell = (rounds) => {
    const [node, caller, attacker, main] = [0, 1, 2, 3].map(
      (i) => `${median(rounds.map((r) => r.cpu[i])).toFixed(0)}%`,
    );
    return `${node} (${main}) / ${caller} / ${attacker}`;
  };
  const rows = [
    [
      "baseline (no attack)",
      formatRate(median(baseRates)),
      "1.00x",
      formatLatency(baseP99),
      "1.00x",
      rssCell(baseline),
      cpuCell(baseline),
    ],
  ];
  const out = {};
  for (const a of ATTACKS) {
    const rounds = results[a.id];
    // Each attack round against the mean of the baseline rounds just before and after it.
    const paired = rounds.map((r) => {
      const around = (baseline[r.baselineIndex].rate + baseline[r.baselineIndex + 1].rate) / 2;
      return r.rate / around;
    });
    const ratio = median(paired);
    const p99 = percentile(pooled(rounds.map((r) => r.latency)), 99);
    const peak = Math.max(...rounds.map((r) => r.rss.peak));
    const errors = rounds.reduce((n, r) => n + r.errors, 0);
    out[a.id] = {
      perSec: median(rounds.map((r) => r.rate)),
      rates: rounds.map((r) => r.rate),
      ratio,
      pairedRatios: paired,
      p99Ms: p99,
      p99Ratio: p99 / baseP99,
      peakRssMiB: peak / MiB,
      errors,
      stats: rounds.map((r) => r.stats),
    };
    const range =
      paired.length > 1
        ? ` (${Math.min(...paired).toFixed(2)}–${Math.max(...paired).toFixed(2)})`
        : "";
    rows.push([
      a.label,
      `${formatRate(out[a.id].perSec)}${errors ? `, ${errors} failed` : ""}`,
      `${ratio.toFixed(2)}x${range}`,
      formatLatency(p99),
      `${(p99 / baseP99).toFixed(2)}x`,
      rssCell(rounds),
      cpuCell(rounds),
    ]);
  }
  const lines = [];
  lines.push(
    `A node (secret, 127.0.0.1) under attack from a third process while a caller node makes execute("PluginB", "calculate_square", 6) over its channel, ${CONCURRENCY} in flight: calls/s (median of ${s.rounds} round(s) × ${s.ms} ms; ratio: median of each attack round over the mean of the baseline rounds before and after it, range), p99 pooled over the rounds, the node's highest VmRSS (sampled every 20 ms; no forced GC in the node), with its RSS at the round's start, CPU of the node (its main thread) / caller / attacker over the caller's pass (% of one CPU, median)`,
  );
  lines.push(
    table(
      [
        "attack",
        "calls/s",
        "vs baseline",
        "p99",
        "vs baseline",
        "node RSS peak (round start)",
        "CPU node (main) / caller / attacker",
      ],
      rows,
    ),
  );
  lines.push("");
  const sum = (rounds, key) => rounds.reduce((n, r) => n + (r.stats?.[key] ?? 0), 0);
  const perSec = (n, rounds) => formatRate(n / ((rounds.length * (s.ms + LEAD_MS)) / 1000));
  const forged = results.forged;
  const answered = {};
  for (const r of forged)
    for (const [status, n] of Object.entries(r.stats.answered))
      answered[status] = (answered[status] ?? 0) + n;
  lines.push(
    `forged: ${sum(forged, "opened")} connections opened (${perSec(sum(forged, "opened"), forged)}), answers ${JSON.stringify(answered)}, errors ${JSON.stringify(mergeCounts(forged.map((r) => r.stats.errors)))}`,
  );
  const held = results.held;
  lines.push(
    `held: ${sum(held, "opened")} connections opened over ${held.length} round(s), ${sum(held, "closedByNode")} closed by the node during the rounds`,
  );
  const stream = results.stream;
  lines.push(
    `stream: ${sum(stream, "channels")} channel(s) opened, ${sum(stream, "creditPackets")} credit packets sent, ${sum(stream, "closedByNode")} closed by the node`,
  );
  const closeLimit = (DRAIN_TIMEOUT_S + 1) * 1000;
  lines.push(
    `close with 1,000 held connections open (drain_timeout ${DRAIN_TIMEOUT_S} s): SIGTERM → exit ${close.ms.toFixed(0)} ms (close() itself ${close.closeMs?.toFixed(0) ?? "?"} ms), exit code ${close.code}; ${close.ended} of the ${close.held} held connections ended, ${close.firstEndedMs ?? "-"}–${close.lastEndedMs ?? "-"} ms after SIGTERM`,
  );
  lines.push("");
  const ratioMet = ATTACKS.every((a) => out[a.id].ratio >= MIN_RATIO);
  const peaks = [
    ["a baseline round", basePeak],
    ...ATTACKS.map((a) => [`a ${a.id} round`, out[a.id].peakRssMiB * MiB]),
  ];
  const [peakWhere, peakAll] = peaks.reduce((a, b) => (b[1] > a[1] ? b : a));
  const rssMet = peakAll < MAX_RSS_MIB * MiB;
  const closeMet = close.ms <= closeLimit && close.code === 0;
  const worst = ATTACKS.reduce((w, a) => (out[a.id].ratio < out[w.id].ratio ? a : w));
  // All three processes share this machine: an attacker that takes a whole CPU leaves the
  // caller and the node less than they had, whatever the node does. Said so when it is so.
  const cores = availableParallelism();
  const busy = median(results[worst.id].map((r) => r.cpu[0] + r.cpu[1] + r.cpu[2]));
  const saturated =
    busy >= 90 * cores
      ? `; the three processes kept ${busy.toFixed(0)}% of this machine's ${cores} CPUs busy`
      : "";
  lines.push(
    `Target the caller keeps ≥ ${MIN_RATIO}x its baseline calls/s under each attack: ${ratioMet ? "MET" : "MISSED"} (lowest: ${worst.id} ${out[worst.id].ratio.toFixed(2)}x${saturated})`,
  );
  lines.push(
    `Target the node's RSS stays under ${MAX_RSS_MIB} MiB: ${rssMet ? "MET" : "MISSED"} (peak ${mib(peakAll)} MiB, in ${peakWhere}; every round, baseline ones too)`,
  );
  lines.push(
    `Target close() with held connections ≤ drain_timeout + 1 s = ${closeLimit} ms: ${closeMet ? "MET" : "MISSED"} (${close.ms.toFixed(0)} ms)`,
  );
  ctx.print(lines.join("\n"));
  return {
    baseline: {
      perSec: median(baseRates),
      rates: baseRates,
      p99Ms: baseP99,
      peakRssMiB: basePeak / MiB,
    },
    attacks: out,
    close,
    met: ratioMet && rssMet && closeMet,
  };
}

function mergeCounts(list) {
  const all = {};
  for (const counts of list)
    for (const [key, n] of Object.entries(counts ?? {})) all[key] = (all[key] ?? 0) + n;
  return all;
}
