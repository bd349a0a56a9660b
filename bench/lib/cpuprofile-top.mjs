/**
 * Summarizes a .cpuprofile (node --cpu-prof): self time per function, and total (inclusive)
 * time for functions from the package under test.
 *   node bench/lib/cpuprofile-top.mjs [--top N] file.cpuprofile ...
 * Given several files (node writes one per thread; the module-hooks thread is one), the one
 * with the most samples not idle is summarized.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: "string", default: "25" } },
});
const top = Number(values.top);
const profiles = positionals.map((f) => JSON.parse(readFileSync(f, "utf8")));
if (!profiles.length) throw new Error("usage: cpuprofile-top.mjs [--top N] file.cpuprofile ...");
// An idle thread (the module hooks' one, when a plugin is TypeScript) can take more samples.
const busy = (p) => {
  const idle = new Set(
    p.nodes.filter((n) => n.callFrame.functionName === "(idle)").map((n) => n.id),
  );
  return p.samples.filter((id) => !idle.has(id)).length;
};
const profile = profiles.sort((a, b) => busy(b) - busy(a))[0];
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const self = new Map();
const dt = profile.timeDeltas;
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i];
  self.set(id, (self.get(id) ?? 0) + (dt[i] ?? 0));
}
const total = [...self.values()].reduce((a, b) => a + b, 0);
const keyOf = (n) => {
  const f = n.callFrame;
  const url = f.url.replace(/^file:\/\/.*?\/(dist|bench|node_modules|examples)\//, "$1/");
  return `${f.functionName || "(anonymous)"} ${url}${url ? `:${f.lineNumber + 1}` : ""}`;
};
const selfBy = new Map();
const inclBy = new Map();
for (const [id, t] of self) {
  const n = byId.get(id);
  selfBy.set(keyOf(n), (selfBy.get(keyOf(n)) ?? 0) + t);
  // Inclusive: charge every distinct function on the stack once.
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const k = keyOf(byId.get(cur));
    if (seen.has(k)) continue;
    seen.add(k);
    inclBy.set(k, (inclBy.get(k) ?? 0) + t);
  }
}
const pct = (t) => `${((t / total) * 100).toFixed(1).padStart(5)}%`;
console.log(`self time, top ${top} (total ${(total / 1000).toFixed(0)} ms sampled)`);
for (const [k, t] of [...selfBy].sort((a, b) => b[1] - a[1]).slice(0, top))
  console.log(`${pct(t)}  ${k}`);
console.log("\ninclusive time, package code (dist/)");
for (const [k, t] of [...inclBy]
  .filter(([k]) => k.includes("dist/"))
  .sort((a, b) => b[1] - a[1])
  .slice(0, top))
  console.log(`${pct(t)}  ${k}`);
