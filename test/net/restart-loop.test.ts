/**
 * Restarts under load: node B (its own process) is restarted 20 times on the same port while A
 * keeps 64 calls in flight to a plugin that C serves too, with `host: "any"` and a secret. No
 * call fails, A never lists B twice, and nobody reports a hostname conflict.
 */
import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import {
  addr,
  type ChildNode,
  cleanup,
  closeNode,
  ERROR,
  freePort,
  killChild,
  LOOPBACK,
  logLines,
  nodeConfig,
  pluginDir,
  rep,
  spawnNode,
  startNode,
  tempDir,
  waitFor,
} from "./helpers.js";

const dir = pluginDir({
  Svc: {
    body: `node = "?"; onLoad(args: any) { this.node = args?.node ?? "?"; } who() { return this.node; }`,
    endpoints: [rep("who")],
  },
});
const svc = (node: string) => ({ name: "Svc", arguments: { node } });
const SECRET = `loop-${randomBytes(16).toString("hex")}`;
const RESTARTS = 20;
const IN_FLIGHT = 64;

afterAll(cleanup);

describe("20 restarts of a node under load", () => {
  it("fail no call, never list it twice, and report no conflict", async () => {
    const logDir = tempDir("aio-loop-log-");
    const port = await freePort();
    const a = await startNode({
      hostname: "A",
      dir,
      networking: { ...LOOPBACK, secret: SECRET, node_ips: [`127.0.0.1:${port}`] },
      general: { log_dir: logDir },
    });
    const c = await startNode({
      hostname: "C",
      dir,
      plugins: [svc("C")],
      networking: { ...LOOPBACK, secret: SECRET, node_ips: [addr(a)] },
    });
    const startB = (generation: number): Promise<ChildNode> =>
      spawnNode(
        nodeConfig({
          hostname: "B",
          dir,
          plugins: [svc(`B${generation}`)],
          networking: { ...LOOPBACK, secret: SECRET, port, node_ips: [addr(a)] },
        }),
        // The load keeps this machine's CPUs busy; a start may take longer than usual.
        30_000,
      );
    let b = await startB(0);
    const served = new Map<string, number>();
    const failures: unknown[] = [];
    let rowsSeen = 0;
    let running = true;
    const worker = async () => {
      while (running) {
        try {
          const who = (await a.execute("Svc", "who")) as string;
          served.set(who, (served.get(who) ?? 0) + 1);
        } catch (error) {
          // The first few tell what went wrong; a failing call must not spin up a heap of them.
          if (failures.length < 8) failures.push(error);
          running = false;
        }
        rowsSeen = Math.max(rowsSeen, a.nodes().filter((n) => n.hostname === "B").length);
      }
    };
    const load = Array.from({ length: IN_FLIGHT }, worker);
    const reached = (name: string) =>
      waitFor(
        () => failures.length > 0 || (served.get(name) ?? 0) > 0,
        `a call to reach ${name}`,
        10_000,
      );
    try {
      await reached("C");
      await reached("B0");
      expect(failures).toEqual([]);
      for (let generation = 1; generation <= RESTARTS; generation++) {
        await killChild(b, "SIGTERM");
        b = await startB(generation);
        await reached(`B${generation}`);
        expect(failures).toEqual([]);
      }
    } finally {
      running = false;
      await Promise.all(load);
    }
    expect(failures).toEqual([]);
    expect(rowsSeen).toBe(1);
    expect(a.nodes().filter((n) => n.hostname === "B")).toEqual([
      expect.objectContaining({ alive: true }),
    ]);
    const file = a.logFile as string;
    await killChild(b, "SIGTERM");
    await closeNode(c);
    await closeNode(a);
    const lines = logLines(file);
    expect(lines.filter((line) => line.level >= ERROR)).toEqual([]);
    expect(lines.some((line) => line.msg.includes("claim the hostname"))).toBe(false);
  }, 120_000);
});
