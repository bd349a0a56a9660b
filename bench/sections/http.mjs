/**
 * The HTTP endpoint as scripts, curl and home automation tools use it: autocannon (in this
 * process) sends `POST /execute` of an async echo over 64 keep-alive connections to servers in
 * child processes (bench/lib/http-server.mjs):
 *
 *   node        a PluginCore serving bench/fixtures/Echo
 *   bare        fastify with that one route answering the same JSON (the ceiling)
 *
 * each without a secret and with one (every request signed afresh by the client; the bare
 * server then does the same HMAC work by hand: the signature, a nonce cache, the body's digest,
 * the answer's MAC). Rounds: the four in an order rotated per round; per round and server
 * requests/s, p50/p99 (autocannon's) and the server's CPU µs per request.
 */

import { randomBytes } from "node:crypto";
import { formatRate, median, table } from "../lib/harness.mjs";
import { CONNECTIONS, checkServer, load, startHttpServer } from "../lib/http.mjs";
import { formatLatency } from "../lib/remote.mjs";

export const name = "http";
export const description =
  "POST /execute of an async echo from autocannon (64 connections): a node against a bare fastify route, without and with a secret";

const MIN_RATIO = 0.8;

const CONTENDERS = [
  { id: "node", kind: "aio", signed: false, label: "node" },
  { id: "bare", kind: "bare", signed: false, label: "bare fastify" },
  { id: "node-signed", kind: "aio", signed: true, label: "node, secret" },
  { id: "bare-signed", kind: "bare", signed: true, label: "bare fastify + HMAC" },
];

const range = (values, digits = 2) =>
  values.length > 1
    ? ` (${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)})`
    : "";

export async function run(ctx) {
  const s = {
    rounds: ctx.http?.rounds ?? (ctx.quick ? 2 : 5),
    ms: ctx.http?.ms ?? (ctx.quick ? 500 : 2000),
    warmupMs: ctx.http?.warmupMs ?? (ctx.quick ? 300 : 1000),
  };
  const secret = randomBytes(32).toString("hex");
  const servers = {};
  try {
    for (const c of CONTENDERS) {
      servers[c.id] = await startHttpServer(c.kind, {
        distUrl: ctx.distUrl,
        secret: c.signed ? secret : "",
      });
      await checkServer(servers[c.id]);
    }
    ctx.progress(`  four servers answer; warm-up ${s.warmupMs} ms each`);
    for (const c of CONTENDERS) await load(servers[c.id], s.warmupMs);
    const rounds = Object.fromEntries(CONTENDERS.map((c) => [c.id, []]));
    for (let r = 0; r < s.rounds; r++) {
      const order = CONTENDERS.map((_, i) => CONTENDERS[(i + r) % CONTENDERS.length]);
      for (const c of order) rounds[c.id].push(await load(servers[c.id], s.ms));
      ctx.progress(
        `    round ${r + 1}/${s.rounds}: ${CONTENDERS.map((c) => `${c.id} ${formatRate(rounds[c.id][r].rate)} (${rounds[c.id][r].cpuUs.toFixed(1)} µs)`).join(", ")}`,
      );
    }
    return report(ctx, s, rounds);
  } finally {
    await Promise.all(Object.values(servers).map((server) => server.stop()));
  }
}

function report(ctx, s, rounds) {
  const stat = (id, key) => median(rounds[id].map((r) => r[key]));
  const paired = (a, b, key = "rate") => rounds[a].map((r, i) => r[key] / rounds[b][i][key]);
  const against = { node: "bare", "node-signed": "bare-signed" };
  const out = {};
  const rows = [];
  for (const c of CONTENDERS) {
    const ratios = against[c.id] ? paired(c.id, against[c.id]) : undefined;
    // The bare server's CPU per request over the node's: steadier than requests/s when other
    // processes take the CPUs the client and the servers share.
    const cpuRatios = against[c.id] ? paired(against[c.id], c.id, "cpuUs") : undefined;
    out[c.id] = {
      perSec: stat(c.id, "rate"),
      rates: rounds[c.id].map((r) => r.rate),
      p50Ms: stat(c.id, "p50"),
      p99Ms: stat(c.id, "p99"),
      cpuUsPerRequest: stat(c.id, "cpuUs"),
      cpuUs: rounds[c.id].map((r) => r.cpuUs),
      ...(ratios ? { ratio: median(ratios), pairedRatios: ratios } : {}),
      ...(cpuRatios ? { cpuRatio: median(cpuRatios), pairedCpuRatios: cpuRatios } : {}),
    };
    rows.push([
      c.label,
      `${formatRate(out[c.id].perSec)}${range(
        out[c.id].rates.map((v) => v / 1000),
        1,
      ).replace(")", " k)")}`,
      formatLatency(out[c.id].p50Ms),
      formatLatency(out[c.id].p99Ms),
      `${out[c.id].cpuUsPerRequest.toFixed(1)}${range(out[c.id].cpuUs, 1)}`,
      ratios ? `${median(ratios).toFixed(2)}x${range(ratios)}` : "",
      cpuRatios ? `${median(cpuRatios).toFixed(2)}x${range(cpuRatios)}` : "",
    ]);
  }
  const signing = {
    node: paired("node-signed", "node"),
    bare: paired("bare-signed", "bare"),
    nodeCpuUs: stat("node-signed", "cpuUs") - stat("node", "cpuUs"),
    bareCpuUs: stat("bare-signed", "cpuUs") - stat("bare", "cpuUs"),
  };
  const lines = [
    `POST /execute {"plugin":"Echo","method":"echo","args":{"text":"hello"}} → {"result":"hello"} from autocannon, ${CONNECTIONS} connections, no pipelining; the servers in child processes, the four in an order rotated per round (${s.rounds} × ${s.ms} ms each): requests/s (median, range), p50/p99 (median of the rounds), the server's CPU µs per request (all its threads; median, range), the node against the bare server of the same row pair (median of the paired rounds, range): its requests/s over the bare server's, and the bare server's CPU per request over its own`,
    table(
      ["server", "requests/s", "p50", "p99", "CPU µs/request", "vs bare", "CPU: bare / node"],
      rows,
    ),
    "",
    `Signing's own cost, requests/s with a secret over without: node ${median(signing.node).toFixed(2)}x${range(signing.node)}, bare fastify + HMAC ${median(signing.bare).toFixed(2)}x${range(signing.bare)}; CPU per request +${signing.nodeCpuUs.toFixed(1)} µs (node), +${signing.bareCpuUs.toFixed(1)} µs (bare)`,
    "",
  ];
  const met = out.node.ratio >= MIN_RATIO && out["node-signed"].ratio >= MIN_RATIO;
  lines.push(
    `Target the node serves ≥ ${MIN_RATIO}x the bare route's requests/s, without and with a secret: ${met ? "MET" : "MISSED"} (${out.node.ratio.toFixed(2)}x, ${out["node-signed"].ratio.toFixed(2)}x; CPU per request ${out.node.cpuRatio.toFixed(2)}x, ${out["node-signed"].cpuRatio.toFixed(2)}x)`,
  );
  ctx.print(lines.join("\n"));
  return { ...out, signing, met };
}
