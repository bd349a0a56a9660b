#!/usr/bin/env node
/**
 * One server of the `http` section under autocannon's load, for profiling:
 *
 *   node bench/http-profile.mjs [seconds] [aio|bare] [plain|signed] [--dist PATH] [--profile FILE]
 *
 * Prints requests/s, p50/p99 and the server's CPU µs per request; with --profile, a CPU profile
 * of the server over the measured window (after a 1 s warm-up) goes to FILE, to read with
 * bench/lib/cpuprofile-top.mjs.
 */
import { randomBytes } from "node:crypto";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { checkServer, load, startHttpServer } from "./lib/http.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { dist: { type: "string" }, profile: { type: "string" } },
});
const [seconds = "4", kind = "aio", mode = "plain"] = positionals;
const dist = values.dist
  ? isAbsolute(values.dist)
    ? values.dist
    : resolve(process.cwd(), values.dist)
  : join(root, "dist");
const distUrl = pathToFileURL(dist.endsWith(".js") ? dist : join(dist, "index.js")).href;

const server = await startHttpServer(kind, {
  distUrl,
  secret: mode === "signed" ? randomBytes(32).toString("hex") : "",
});
try {
  await checkServer(server);
  await load(server, 1000);
  if (values.profile) await server.profile("start");
  const r = await load(server, Number(seconds) * 1000);
  if (values.profile) await server.profile("stop", resolve(values.profile));
  console.log(
    `${kind} ${mode}: ${(r.rate / 1000).toFixed(1)} k requests/s, p50 ${r.p50} ms, p99 ${r.p99} ms, server CPU ${r.cpuUs.toFixed(1)} µs/request`,
  );
} finally {
  await server.stop();
}
