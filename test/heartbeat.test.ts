/**
 * Liveness: a node whose main thread is busy in a plugin keeps answering heartbeats (from its
 * heartbeat thread), so other nodes do not mark it down; a node that is gone is marked down.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { type NodeInfo, PluginCore } from "aio-assistant-core";
import { afterEach, describe, expect, it } from "vitest";

const NODE_SCRIPT = fileURLToPath(new URL("./fixtures/busy-node/node.mjs", import.meta.url));
const children: ChildProcess[] = [];
const cores: PluginCore[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) child.kill("SIGKILL");
  await Promise.all(cores.splice(0).map((core) => core.close()));
});

async function startBusyNode(): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [NODE_SCRIPT], { stdio: ["ignore", "pipe", "inherit"] });
  children.push(child);
  const [chunk] = (await once(child.stdout as NodeJS.ReadableStream, "data")) as [Buffer];
  return { child, port: Number(chunk.toString().trim()) };
}

function watcher(port: number): PluginCore {
  const core = new PluginCore({
    general: { hostname: "watcher", console_log_level: "CRITICAL", log_dir: "" },
    networking: {
      enabled: true,
      port: 0,
      node_ips: [`127.0.0.1:${port}`],
      heartbeat_interval: 0.2,
      liveness_timeout: 1,
    },
  });
  cores.push(core);
  return core;
}

describe("heartbeats", () => {
  it("do not mark a node down while a plugin keeps its main thread busy", async () => {
    const { port } = await startBusyNode();
    const core = watcher(port);
    const downs: NodeInfo[] = [];
    core.on("node:down", (node) => downs.push(node));
    await core.start();
    expect(core.nodes().map((node) => node.hostname)).toEqual(["busy"]);

    // Three times the liveness timeout, with the busy node's event loop blocked throughout.
    const spins = await core.execute<number>("Busy", "block", 3000, { timeout: 10_000 });
    expect(spins).toBeGreaterThan(0);
    expect(downs).toEqual([]);
    expect(core.nodes()[0]?.alive).toBe(true);
  });

  it("mark a node down when its process is gone", async () => {
    const { child, port } = await startBusyNode();
    const core = watcher(port);
    await core.start();
    const down = once(core, "node:down");
    child.kill("SIGKILL");
    const [node] = (await down) as [NodeInfo];
    expect(node).toMatchObject({ hostname: "busy", alive: false });
    expect(core.nodes()[0]?.alive).toBe(false);
  });
});
