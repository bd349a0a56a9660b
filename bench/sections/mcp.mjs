/**
 * MCP `tools/call` round trips against a plain `execute` of the same endpoint.
 *
 * A node runs in a child process as `aio run` runs it (dist/cli/main.js), with a secret and
 * `networking.mcp: true`, serving bench/fixtures/Echo (`async echo(text)`, tagged `mcp`). From
 * this process, one call in flight (an agent waits for each tool's answer):
 *
 *   execute (channel)   a node here with the node in its node_ips:
 *                       execute("Echo", "echo", { text: "hello" }) over its channel (baseline)
 *   MCP over HTTP       the MCP SDK's client, streamable HTTP to the node's /mcp with its
 *                       bearer token: callTool({ name: "Echo.echo", arguments: { text } })
 *   MCP over stdio      the same client over stdio to `aio mcp --node URL` (a second child),
 *                       which calls the node's POST /execute, signed
 *
 * Rounds interleaved (order rotated per round); per round a throughput pass, then a latency
 * pass timing every call. Reported: calls/s (median) and its ratio to the baseline, p50 and
 * p99 pooled over the rounds. No target: the section shows what the protocol costs.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatRate, interleaved, makeCase, median, table } from "../lib/harness.mjs";
import { formatLatency, makeLatencyCase, percentile, pooled } from "../lib/remote.mjs";

export const name = "mcp";
export const description =
  "MCP tools/call over streamable HTTP and stdio, against execute of the same endpoint";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `aio <args>` in `cwd`; resolves with the child once `ready` appears on its stdout. */
function startAio(cli, args, cwd, env, ready) {
  const child = spawn(process.execPath, [cli, ...args], {
    cwd,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (err += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`aio ${args[0]}: not ready\n${out}${err}`)),
      20_000,
    );
    child.on("exit", (code) => reject(new Error(`aio ${args[0]} exited ${code}\n${out}${err}`)));
    child.stdout.on("data", () => {
      const found = ready.exec(out);
      if (!found) return;
      clearTimeout(timer);
      resolve({ child, match: found, output: () => out + err });
    });
  });
}

export async function run(ctx) {
  const cli = join(ctx.root, "dist/cli/main.js");
  const sdk = (path) =>
    import(join(ctx.root, "node_modules/@modelcontextprotocol/sdk/dist/esm", path));
  const { Client } = await sdk("client/index.js");
  const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");
  const { StdioClientTransport } = await sdk("client/stdio.js");
  const { PluginCore } = await import(ctx.distUrl);

  const secret = randomBytes(32).toString("hex");
  const env = { AIO_SECRET: secret };
  const dir = mkdtempSync(join(tmpdir(), "aio-bench-mcp-"));
  writeFileSync(
    join(dir, "config.yml"),
    `plugins:
  - name: Echo
    path: ${join(ctx.root, "bench/fixtures/Echo")}
general:
  hostname: mcp-node
  console_log_level: ERROR
  log_dir: ""
networking:
  enabled: true
  port: 0
  bind: 127.0.0.1
  discover_nodes: false
  mcp: true
`,
  );
  const stops = [];
  try {
    const node = await startAio(
      cli,
      ["run", "config.yml"],
      dir,
      env,
      /Listening on http:\/\/127\.0\.0\.1:(\d+)[\s\S]*Press Ctrl-C/,
    );
    stops.push(() => node.child.kill("SIGKILL"));
    const port = Number(node.match[1]);
    const url = `http://127.0.0.1:${port}`;
    const token = await new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [cli, "mcp", "--token", "--config", "config.yml"], {
        cwd: dir,
        env: { ...process.env, ...env },
        stdio: ["ignore", "pipe", "inherit"],
      });
      let out = "";
      child.stdout.on("data", (d) => (out += d));
      child.on("exit", (code) =>
        code === 0 ? resolve(out.trim()) : reject(new Error(`aio mcp --token: ${code}`)),
      );
    });

    const caller = new PluginCore({
      plugins: [],
      general: { hostname: "mcp-bench-caller", console_log_level: "CRITICAL", log_dir: "" },
      networking: {
        enabled: true,
        port: 0,
        bind: "127.0.0.1",
        secret,
        discover_nodes: false,
        node_ips: [`127.0.0.1:${port}`],
      },
    });
    await caller.start();
    stops.push(() => caller.close());
    for (let i = 0; ; i++) {
      try {
        if ((await caller.execute("Echo", "echo", { text: "hello" })) === "hello") break;
      } catch (error) {
        if (i > 100) throw error;
      }
      await sleep(50);
    }

    const http = new Client({ name: "aio-bench", version: "1.0.0" });
    await http.connect(
      new StreamableHTTPClientTransport(new URL(`${url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    );
    stops.push(() => http.close());
    const stdio = new Client({ name: "aio-bench", version: "1.0.0" });
    await stdio.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [cli, "mcp", "--node", url],
        cwd: dir,
        env: { ...process.env, ...env },
        stderr: "ignore",
      }),
    );
    stops.push(() => stdio.close());

    const args = { text: "hello" };
    const tool = { name: "Echo.echo", arguments: args };
    const check = (result) => {
      if (result.isError || result.structuredContent?.result !== "hello") {
        throw new Error(`tools/call answered ${JSON.stringify(result)}`);
      }
    };
    for (const client of [http, stdio]) check(await client.callTool(tool));

    const calls = {
      execute: () => caller.execute("Echo", "echo", args),
      http: () => http.callTool(tool),
      stdio: () => stdio.callTool(tool),
    };
    const labels = {
      execute: "execute over the channel (baseline)",
      http: "MCP tools/call, streamable HTTP (/mcp)",
      stdio: "MCP tools/call, stdio (aio mcp --node)",
    };
    const { rounds, ms, warmupMs } = ctx.local;
    const latency = Object.fromEntries(Object.keys(calls).map((id) => [id, []]));
    const samples = await interleaved(
      Object.entries(calls).map(([id, fn]) => {
        const throughput = makeCase(fn, 1, { chunk: 16 });
        const timed = makeLatencyCase(fn, 1);
        return {
          id,
          measure: async (time) => {
            const result = await throughput(time);
            latency[id].push(await timed(Math.min(time, 300)));
            return result;
          },
        };
      }),
      { rounds, ms, warmupMs, onRound: (r, n) => ctx.progress(`  round ${r}/${n}`) },
    );
    const base = median(samples.execute);
    const rows = Object.keys(calls).map((id) => {
      const all = pooled(latency[id]);
      return [
        labels[id],
        formatRate(median(samples[id])),
        `${(median(samples[id]) / base).toFixed(2)}x`,
        formatLatency(percentile(all, 50)),
        formatLatency(percentile(all, 99)),
      ];
    });
    ctx.print(
      [
        `MCP tools/call of Echo.echo({ text: "hello" }) on a node in another process (secret on), 1 in flight: calls/s (median of ${rounds} rounds × ${ms} ms), ratio to execute over the channel, latency pooled over the rounds`,
        table(["call", "calls/s", "vs execute", "p50", "p99"], rows),
      ].join("\n"),
    );
    return Object.fromEntries(
      Object.keys(calls).map((id) => [
        id,
        { perSec: median(samples[id]), p50: percentile(pooled(latency[id]), 50) },
      ]),
    );
  } finally {
    for (const stop of stops.reverse()) await Promise.resolve(stop()).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}
