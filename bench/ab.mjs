/**
 * A/B of two builds on the AIO hot loop (bench/profile.mjs), in alternating fresh processes:
 *
 *   node bench/ab.mjs <distA> <distB> [--runs 6] [--seconds 2] [--concurrency 1] [--args positional] [--timeout MS]
 *
 * A dist is a folder holding index.js (a scratch copy needs node_modules reachable from it,
 * e.g. a symlink, and a package.json with "type": "module"). Prints each side's median and
 * the median of the paired ratios B/A.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { median } from "./lib/harness.mjs";

const { values: o, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    runs: { type: "string", default: "6" },
    seconds: { type: "string", default: "2" },
    concurrency: { type: "string", default: "1" },
    args: { type: "string", default: "positional" },
    timeout: { type: "string" },
  },
});
if (positionals.length !== 2) throw new Error("usage: ab.mjs <distA> <distB> [options]");
const script = fileURLToPath(new URL("./profile.mjs", import.meta.url));

function once(dist) {
  const argv = [script, o.seconds, o.concurrency, o.args];
  if (o.timeout !== undefined) argv.push(o.timeout);
  const r = spawnSync(process.execPath, argv, {
    env: { ...process.env, AIO_BENCH_DIST: dist },
    encoding: "utf8",
  });
  const m = /([\d.]+) M calls\/s/.exec(r.stdout);
  if (!m) throw new Error(`${dist}: ${r.stdout}${r.stderr}`);
  return Number(m[1]);
}

const a = [];
const b = [];
for (let i = 0; i < Number(o.runs); i++) {
  // Alternate which side goes first.
  if (i % 2) {
    b.push(once(positionals[1]));
    a.push(once(positionals[0]));
  } else {
    a.push(once(positionals[0]));
    b.push(once(positionals[1]));
  }
}
const ratio = median(b.map((v, i) => v / a[i]));
console.log(
  `A ${median(a).toFixed(2)} M/s [${a.join(" ")}]\nB ${median(b).toFixed(2)} M/s [${b.join(" ")}]\nB/A ${ratio.toFixed(3)}x (${o.concurrency} in flight, ${o.args} args${o.timeout ? `, timeout ${o.timeout} ms` : ""})`,
);
