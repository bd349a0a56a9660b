/**
 * A/B (or A/B/C…) of builds on a remote workload (bench/remote-profile.mjs), in alternating
 * fresh process pairs; both the client and the server run the build under test:
 *
 *   node bench/remote-ab.mjs <distA> <distB> [...] [--runs 6] [--seconds 2] [--concurrency 64]
 *                            [--what aio] [--pin 0,1]
 *
 * --pin C,S: client on CPU C, server on CPU S (taskset), e.g. --pin 0,1 or --pin 0,0.
 *
 * A build given as <dist>@<what> runs that workload instead (aio, mol, http, stream,
 * http-stream), e.g. `dist@mol` to pair the Moleculer baseline with the AIO builds.
 *
 * Prints per build the medians of calls/s and of CPU µs per call in the client and the
 * server process, and the median of the paired ratios against the first build. On a busy
 * machine CPU per call is steadier than calls/s.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { median } from "./lib/harness.mjs";

const { values: o, positionals: dists } = parseArgs({
  allowPositionals: true,
  options: {
    runs: { type: "string", default: "6" },
    seconds: { type: "string", default: "2" },
    concurrency: { type: "string", default: "64" },
    what: { type: "string", default: "aio" },
    pin: { type: "string" },
  },
});
if (dists.length < 2) throw new Error("usage: remote-ab.mjs <distA> <distB> [...] [options]");
const script = fileURLToPath(new URL("./remote-profile.mjs", import.meta.url));

function once(spec) {
  // "dist@what" runs another workload with that build, e.g. `dist@mol` for the Moleculer baseline.
  const [dist, what = o.what] = spec.split("@");
  const r = spawnSync(process.execPath, [script, o.seconds, o.concurrency, what], {
    env: { ...process.env, AIO_BENCH_DIST: dist, ...(o.pin ? { AIO_BENCH_PIN: o.pin } : {}) },
    encoding: "utf8",
  });
  const line = r.stdout.trim().split("\n").pop();
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`${dist}: ${r.stdout}${r.stderr}`);
  }
}

const results = dists.map(() => []);
for (let i = 0; i < Number(o.runs); i++) {
  // Rotate which build goes first.
  for (let k = 0; k < dists.length; k++) {
    const j = (k + i) % dists.length;
    results[j].push(once(dists[j]));
  }
  process.stderr.write(`run ${i + 1}/${o.runs}\n`);
}

const base = results[0];
const m = (rs, key) => median(rs.map((r) => r[key]));
const paired = (rs, key) => median(rs.map((r, i) => r[key] / base[i][key]));
const shape = o.what.includes("stream")
  ? "streams of 10000 items, rates in items/s"
  : `${o.concurrency} in flight`;
console.log(`${o.what}, ${shape}, ${o.runs} runs × ${o.seconds} s`);
for (let j = 0; j < dists.length; j++) {
  const rs = results[j];
  const ratio =
    j === 0
      ? ""
      : `  vs A: ${paired(rs, "perSec").toFixed(2)}x rate, client CPU ${paired(rs, "clientUs").toFixed(2)}x, server CPU ${paired(rs, "serverUs").toFixed(2)}x`;
  console.log(
    `${String.fromCharCode(65 + j)} ${(m(rs, "perSec") / 1e3).toFixed(1)} k/s, CPU/call client ${m(rs, "clientUs").toFixed(2)} µs, server ${m(rs, "serverUs").toFixed(2)} µs${ratio}  (${dists[j]}) [${rs.map((r) => (r.perSec / 1e3).toFixed(1)).join(" ")}]`,
  );
}
