/**
 * The price of security on remote calls (issue: signing costs at most 15% at 64 in flight).
 * Three AIO server processes on 127.0.0.1 serve PluginB, each with its own client node in
 * this process, measured in interleaved rounds like the `remote` section:
 *
 *   plain   no secret, plain HTTP/WebSocket
 *   signed  `secret` set: every request and channel frame carries an HMAC-SHA256
 *   tls     `secret` and `cert_file`/`key_file`/`ca_file` (a cluster CA made with openssl here)
 *
 * Calls/s of `client.execute("PluginB", "calculate_square", 6)` at 1 and 64 in flight, and the
 * ratios signed/plain and tls/plain. Without openssl the TLS row is skipped, with a note.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatRate, makeCase, median, spread, table } from "../lib/harness.mjs";
import {
  affinity,
  formatLatency,
  makeLatencyCase,
  measureRounds,
  percentile,
  pooled,
  ratioCell,
  startAioClient,
  startServer,
} from "../lib/remote.mjs";

export const name = "security";
export const description = "remote calls with signing and TLS, as ratios of the same calls without";

const CONCURRENCIES = [1, 64];
const MAX_SIGNING_COST = 0.15;

/** A throw-away cluster CA and one node certificate for IP 127.0.0.1, as docs/security.md shows. */
function makeCertificates() {
  const dir = mkdtempSync(join(tmpdir(), "aio-bench-certs-"));
  const openssl = (...args) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl(
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "1",
    "-subj",
    "/CN=AIO bench CA",
  );
  writeFileSync(
    join(dir, "node.ext"),
    "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n",
  );
  openssl("req", ...ec, "-keyout", "node.key", "-out", "node.csr", "-subj", "/CN=bench-server");
  openssl(
    "x509",
    "-req",
    "-in",
    "node.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "node.crt",
    "-days",
    "1",
    "-extfile",
    "node.ext",
  );
  return {
    dir,
    cert_file: join(dir, "node.crt"),
    key_file: join(dir, "node.key"),
    ca_file: join(dir, "ca.crt"),
  };
}

export async function run(ctx) {
  const s = { ...ctx.remote };
  const secret = randomBytes(32).toString("hex");
  let certs;
  try {
    certs = makeCertificates();
  } catch (error) {
    ctx.progress(`  openssl failed (${error.message.split("\n")[0]}): the TLS case is skipped`);
  }
  const tls = certs && {
    cert_file: certs.cert_file,
    key_file: certs.key_file,
    ca_file: certs.ca_file,
  };
  const variants = [
    { id: "plain", label: "no secret, HTTP", networking: {} },
    { id: "signed", label: "secret (HMAC-SHA256 per call)", networking: { secret } },
    ...(tls
      ? [{ id: "tls", label: "secret + TLS (cluster CA)", networking: { secret, ...tls } }]
      : []),
  ];
  // Every variant runs first, second and third equally often: rounds in multiples of three.
  s.rounds = Math.ceil(s.rounds / variants.length) * variants.length;
  const cpus = affinity();
  s.pinned = s.pin && cpus.available;
  const started = [];
  try {
    ctx.progress(
      `  starting ${variants.length} server processes: ${variants.map((v) => v.id).join(", ")}`,
    );
    for (const v of variants) {
      const env = {
        AIO_BENCH_SECRET: v.networking.secret ?? "",
        AIO_BENCH_HOSTNAME: `server-${v.id}`,
      };
      if (v.networking.cert_file)
        Object.assign(env, {
          AIO_BENCH_CERT: v.networking.cert_file,
          AIO_BENCH_KEY: v.networking.key_file,
          AIO_BENCH_CA: v.networking.ca_file,
        });
      const server = await startServer({ distUrl: ctx.distUrl, serve: "aio", env });
      const entry = { ...v, server };
      started.push(entry);
      entry.client = await startAioClient(
        ctx.distUrl,
        server.ready,
        { ...v.networking, discover_nodes: false },
        `client-${v.id}`,
      );
      entry.fn = () => entry.client.execute("PluginB", "calculate_square", 6);
      const got = await entry.fn();
      if (got !== 36) throw new Error(`${v.id}: calculate_square(6) returned ${got}`);
    }

    const results = {};
    for (const concurrency of CONCURRENCIES) {
      if (s.pinned && concurrency === 1)
        cpus.pin([process.pid, ...started.map((v) => v.server.pid)], "0");
      else cpus.restore();
      ctx.progress(
        `  ${concurrency} in flight: warm-up ${s.warmupMs} ms each, ${s.rounds} rounds × (${s.ms} ms + ${s.latencyMs} ms latency pass)`,
      );
      results[concurrency] = await measureRounds(
        started.map((v) => ({
          id: v.id,
          server: v.server,
          measure: makeCase(v.fn, concurrency, { chunk: concurrency > 1 ? 8 : 64 }),
          latency: makeLatencyCase(v.fn, concurrency),
        })),
        { ...s, onRound: (r, n) => ctx.progress(`    round ${r}/${n} done`) },
      );
    }
    return report(ctx, s, started, results);
  } finally {
    cpus.restore();
    await Promise.allSettled(started.map((v) => v.client?.close()));
    for (const v of started) {
      const code = await v.server.stop();
      if (code !== 0) ctx.progress(`  ${v.id} server exited ${code}\n${v.server.stderr}`);
    }
    if (certs) rmSync(certs.dir, { recursive: true, force: true });
  }
}

function report(ctx, s, variants, results) {
  const col = (c) =>
    c === 1 ? (s.pinned ? "1 in flight (CPU 0)" : "1 in flight") : `${c} in flight`;
  const out = [];
  out.push(
    `Remote PluginB.calculate_square(6) with and without security, client and server in two processes on 127.0.0.1: calls/s, median of ${s.rounds} interleaved rounds × ${s.ms} ms (± half the range); p50 from separate latency passes; CPU µs per call, medians`,
  );
  const header = ["server"];
  for (const n of CONCURRENCIES) header.push(`${col(n)}: calls/s`, "p50", "CPU client / server");
  out.push(
    table(
      header,
      variants.map((v) => {
        const row = [v.label];
        for (const n of CONCURRENCIES) {
          const r = results[n][v.id];
          row.push(
            `${formatRate(median(r.rates))} ${spread(r.rates)}`,
            formatLatency(percentile(pooled(r.latency), 50)),
            `${median(r.clientCpu).toFixed(1)} µs / ${median(r.serverCpu).toFixed(1)} µs`,
          );
        }
        return row;
      }),
    ),
  );
  out.push("");
  const pairs = variants.filter((v) => v.id !== "plain");
  out.push("Ratios of medians against no secret (range of the per-round paired ratios)");
  out.push(
    table(
      ["ratio", ...CONCURRENCIES.map(col)],
      pairs.map((v) => [
        `${v.id} / plain`,
        ...CONCURRENCIES.map((n) => ratioCell(results[n][v.id].rates, results[n].plain.rates).text),
      ]),
    ),
  );
  out.push("");
  // The median of the per-round paired ratios: at 64 in flight the rate of every variant
  // drifts together on a busy machine, and pairs within a round cancel most of that.
  const paired = results[64].signed.rates.map((rate, i) => rate / results[64].plain.rates[i]);
  const signed = median(paired);
  const cost = 1 - signed;
  const met = cost <= MAX_SIGNING_COST;
  out.push(
    `Target signing costs at most ${MAX_SIGNING_COST * 100}% at 64 in flight: ${met ? "MET" : "NOT MET"} (costs ${(cost * 100).toFixed(1)}%: median of the paired per-round ratios, ${signed.toFixed(2)}x)`,
  );
  if (!variants.some((v) => v.id === "tls")) out.push("(TLS not measured: openssl is missing)");
  ctx.print(out.join("\n"));
  return {
    calls: Object.fromEntries(
      CONCURRENCIES.map((n) => [
        n,
        Object.fromEntries(
          variants.map((v) => [
            v.id,
            { perSec: median(results[n][v.id].rates), rates: results[n][v.id].rates },
          ]),
        ),
      ]),
    ),
    signingCost: cost,
    met,
  };
}
