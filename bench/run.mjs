#!/usr/bin/env node
/**
 * Benchmarks of aio-assistant-core. `npm run bench` builds, then runs every section.
 *
 *   node --expose-gc bench/run.mjs [section ...] [options]
 *
 * Sections (default: all, in this order): see SECTIONS below. A new benchmark is a module in
 * bench/sections/ exporting `name`, `description` and `async run(ctx)`; add it to SECTIONS.
 *
 * Options:
 *   --quick          short run to check that everything works
 *   --rounds N       measured rounds per case (default 5, quick 3; hostile: per attack, 3, quick 1;
 *                    http: 5, quick 2)
 *   --time MS        milliseconds per measured round (default 1000, quick 150; hostile: 3000, 1000;
 *                    http: 2000, 500; nats, topics: 600, 150)
 *   --warmup MS      warm-up per case (default 1000, quick 150; hostile: 1000, 300; http: 1000, 300;
 *                    nats, topics: 600, 150)
 *   --cold N         fresh processes for the cold start-up time (default 7, quick 3)
 *   --warm N         in-process cores for the warm start-up time (default 7, quick 3)
 *   --latency MS     remote, nats: per-call latency pass per round and contender (default 400,
 *                    nats 250, quick 100)
 *   --items N        remote, nats: items per stream (default 10000, quick 2000)
 *   --unpinned       remote: skip the second 1-in-flight line with both processes pinned to CPU 0
 *   --runs N         discovery: fresh process pairs per case and contender (default 10, quick 3)
 *   --dist PATH      benchmark another build (a dist folder or its index.js), e.g. a scratch copy
 *   --json FILE      also write the results as JSON
 *   --strict         exit 1 when a target is not met
 *   --list           list the sections
 */
import { writeFileSync } from "node:fs";
import { arch, cpus, platform } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const SECTIONS = {
  local: () => import("./sections/local.mjs"),
  ready: () => import("./sections/ready.mjs"),
  remote: () => import("./sections/remote.mjs"),
  nats: () => import("./sections/nats.mjs"),
  topics: () => import("./sections/topics.mjs"),
  security: () => import("./sections/security.mjs"),
  hostile: () => import("./sections/hostile.mjs"),
  http: () => import("./sections/http.mjs"),
  mcp: () => import("./sections/mcp.mjs"),
  dashboard: () => import("./sections/dashboard.mjs"),
  workers: () => import("./sections/workers.mjs"),
  discovery: () => import("./sections/discovery.mjs"),
};

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    quick: { type: "boolean", default: false },
    rounds: { type: "string" },
    time: { type: "string" },
    warmup: { type: "string" },
    cold: { type: "string" },
    warm: { type: "string" },
    latency: { type: "string" },
    items: { type: "string" },
    runs: { type: "string" },
    unpinned: { type: "boolean", default: false },
    dist: { type: "string" },
    json: { type: "string" },
    strict: { type: "boolean", default: false },
    list: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});

if (opts.help) {
  const text = (await import("node:fs")).readFileSync(fileURLToPath(import.meta.url), "utf8");
  console.log(
    text
      .split("*/")[0]
      .replace(/^#!.*\n\/\*\*\n?/, "")
      .replace(/^ \* ?/gm, ""),
  );
  process.exit(0);
}

if (opts.list) {
  for (const [key, load] of Object.entries(SECTIONS))
    console.log(`${key.padEnd(10)} ${(await load()).description}`);
  process.exit(0);
}

const unknown = positionals.filter((p) => !(p in SECTIONS));
if (unknown.length) {
  console.error(
    `Unknown section(s): ${unknown.join(", ")}. Known: ${Object.keys(SECTIONS).join(", ")}`,
  );
  process.exit(2);
}
const selected = positionals.length
  ? Object.keys(SECTIONS).filter((k) => positionals.includes(k))
  : Object.keys(SECTIONS);

const int = (value, fallback) => {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) {
    console.error(`Not a positive number: ${value}`);
    process.exit(2);
  }
  return n;
};

function distUrl() {
  if (!opts.dist) return pathToFileURL(join(root, "dist/index.js")).href;
  const path = isAbsolute(opts.dist) ? opts.dist : resolve(process.cwd(), opts.dist);
  return pathToFileURL(path.endsWith(".js") ? path : join(path, "index.js")).href;
}

const quick = opts.quick;
const ctx = {
  root,
  quick,
  distUrl: distUrl(),
  local: {
    rounds: int(opts.rounds, quick ? 3 : 5),
    ms: int(opts.time, quick ? 150 : 1000),
    warmupMs: int(opts.warmup, quick ? 150 : 1000),
  },
  ready: { cold: int(opts.cold, quick ? 3 : 7), warm: int(opts.warm, quick ? 3 : 7) },
  remote: {
    rounds: int(opts.rounds, quick ? 3 : 5),
    ms: int(opts.time, quick ? 150 : 1000),
    warmupMs: int(opts.warmup, quick ? 150 : 1000),
    latencyMs: int(opts.latency, quick ? 100 : 400),
    streamItems: int(opts.items, quick ? 2000 : 10_000),
    pin: !opts.unpinned,
  },
  nats: {
    rounds: int(opts.rounds, quick ? 3 : 5),
    ms: int(opts.time, quick ? 150 : 600),
    warmupMs: int(opts.warmup, quick ? 150 : 600),
    latencyMs: int(opts.latency, quick ? 100 : 250),
    streamItems: int(opts.items, quick ? 2000 : 10_000),
  },
  workers: {
    rounds: int(opts.rounds, quick ? 3 : 5),
    ms: int(opts.time, quick ? 150 : 1000),
    warmupMs: int(opts.warmup, quick ? 150 : 1000),
  },
  discovery: { runs: int(opts.runs, quick ? 3 : 10) },
  hostile: {
    rounds: int(opts.rounds, quick ? 1 : 3),
    ms: int(opts.time, quick ? 1000 : 3000),
    warmupMs: int(opts.warmup, quick ? 300 : 1000),
  },
  http: {
    rounds: int(opts.rounds, quick ? 2 : 5),
    ms: int(opts.time, quick ? 500 : 2000),
    warmupMs: int(opts.warmup, quick ? 300 : 1000),
  },
  print: (text) => console.log(`${text}\n`),
  progress: (text) => process.stderr.write(`${text}\n`),
};

if (typeof globalThis.gc !== "function") {
  ctx.progress("note: run with `node --expose-gc` so each measurement starts after a full GC");
}
const cpu = cpus()[0]?.model ?? "unknown CPU";
console.log(
  `aio-assistant-core benchmarks${quick ? " (--quick)" : ""}: node ${process.version}, ${platform()}/${arch()}, ${cpus().length} × ${cpu}`,
);
if (opts.dist) console.log(`package under test: ${ctx.distUrl}`);
console.log("");

const started = performance.now();
const results = {};
let failed = false;
for (const key of selected) {
  const section = await SECTIONS[key]();
  ctx.progress(`[${key}] ${section.description}`);
  const t0 = performance.now();
  try {
    results[key] = await section.run(ctx);
  } catch (error) {
    failed = true;
    console.error(`[${key}] failed: ${error?.stack ?? error}`);
    continue;
  }
  ctx.progress(`[${key}] done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
console.log(`Total ${((performance.now() - started) / 1000).toFixed(1)} s`);

if (opts.json) {
  writeFileSync(
    opts.json,
    `${JSON.stringify({ node: process.version, quick, results }, null, 2)}\n`,
  );
}
const missed = Object.values(results).some((r) => r && r.met === false);
process.exit(failed || (opts.strict && missed) ? 1 : 0);
