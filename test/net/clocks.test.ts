/**
 * Clocks that disagree, with real processes whose clocks libfaketime (Debian's faketime) moves:
 * a peer whose clock is far ahead is adopted and called both ways, and the operator is told
 * of clock skew with the amount, never to check the secret; a peer whose clock is behind is not
 * locked out after a restart; a node whose own clock jumps forward marks nobody down.
 *
 * Skipped where libfaketime is not installed (`.ci/run` installs it).
 */
import { randomBytes } from "node:crypto";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { PluginCore } from "aio-assistant-core";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import {
  addr,
  type ChildNode,
  cleanup,
  closeAll,
  closeNode,
  freePort,
  heartbeats,
  killChild,
  LOOPBACK,
  logLines,
  nodeConfig,
  nodeNamed,
  pluginDir,
  rep,
  spawnNode,
  startNode,
  tempDir,
  WARN,
  waitFor,
  waitForNode,
} from "./helpers.js";

const FAKETIME = ["/usr/lib/x86_64-linux-gnu/faketime", "/usr/lib/aarch64-linux-gnu/faketime"]
  .map((folder) => join(folder, "libfaketimeMT.so.1"))
  .find((file) => existsSync(file));

/** The environment that runs a child's wall clock `offset` off ("+40s", "-12s"), or by a file. */
function fakeClock(setting: { offset: string } | { file: string }): Record<string, string> {
  return {
    LD_PRELOAD: FAKETIME as string,
    // Timers and liveness run on the monotonic clock, which stays true.
    FAKETIME_DONT_FAKE_MONOTONIC: "1",
    ...("offset" in setting
      ? { FAKETIME: setting.offset }
      : { FAKETIME_TIMESTAMP_FILE: setting.file, FAKETIME_NO_CACHE: "1" }),
  };
}

const SECRET = `clocks-${randomBytes(24).toString("hex")}`;

const dir = pluginDir({
  Svc: {
    body: `node = "?"; onLoad(args: any) { this.node = args?.node ?? "?"; } who() { return this.node; }`,
    endpoints: [rep("who", [], { accessible_by_other_plugins: true })],
  },
  // Calls back to the node named A: the skewed node signs requests too.
  Back: {
    body: `back() { return this.execute("Svc", "who", undefined, { host: "A" }); }`,
    endpoints: [rep("back")],
  },
  // What the node it runs on knows of the others, and how often one was marked down.
  Watch: {
    body: `downs = 0;
  onLoad() { (globalThis as any).__aioChildCore?.on("node:down", () => { this.downs++; }); }
  view() { return { downs: this.downs, nodes: (globalThis as any).__aioChildCore?.nodes() ?? [] }; }`,
    endpoints: [rep("view")],
  },
});
const svc = (node: string) => ({ name: "Svc", arguments: { node } });

afterEach(closeAll);
afterAll(cleanup);

async function skewedB(a: PluginCore, offset: string, port = 0): Promise<ChildNode> {
  return spawnNode(
    nodeConfig({
      hostname: "B",
      dir,
      plugins: [svc("B"), { name: "Back", arguments: {} }],
      networking: { ...LOOPBACK, secret: SECRET, port, node_ips: [addr(a)] },
    }),
    10_000,
    fakeClock({ offset }),
  );
}

describe.skipIf(!FAKETIME)("clocks", () => {
  it("a peer 40 s ahead is adopted and called both ways; the log says clock skew with the amount, not the secret", async () => {
    const logDir = tempDir("aio-clocks-log-");
    const a = await startNode({
      hostname: "A",
      dir,
      plugins: [svc("A")],
      networking: { ...LOOPBACK, secret: SECRET },
      general: { log_dir: logDir },
    });
    await skewedB(a, "+40s");
    await waitForNode(a, "B", (node) => node.plugins.includes("Back"));
    expect(await a.execute("Svc", "who", undefined, { host: "B" })).toBe("B");
    await calledBack(a, "A");
    // Heartbeats keep it up: pings are timed by B's clock too.
    await heartbeats(a, "B", 3);
    expect(nodeNamed(a, "B")?.alive).toBe(true);
    const file = a.logFile as string;
    await closeNode(a);
    const warnings = logLines(file).filter((line) => line.level >= WARN);
    expect(warnings.map((line) => line.msg)).toEqual([
      expect.stringMatching(/The clock of node "B" is 4\d\.\d s ahead of this node's/),
    ]);
    expect(warnings.some((line) => /secret|credentials/.test(line.msg))).toBe(false);
  });

  /** Waits until B, asked by `a`, calls `a` back and gets `who`. */
  const calledBack = (a: PluginCore, who: string) =>
    waitFor(
      () =>
        a.execute("Back", "back", undefined, { host: "B" }).then(
          (answer) => answer === who,
          () => false,
        ),
      `B to call ${who} back`,
    );

  it("a peer 12 s behind is not locked out after it restarts, nor after this node restarts", async () => {
    const portA = await freePort();
    let a = await startNode({
      hostname: "A",
      dir,
      plugins: [svc("A")],
      networking: { ...LOOPBACK, secret: SECRET, port: portA },
    });
    const portB = await freePort();
    let b = await skewedB(a, "-12s", portB);
    await waitForNode(a, "B", (node) => node.plugins.includes("Back"));
    // B knows A once its call-back after A's first request is done: not necessarily yet.
    await calledBack(a, "A");

    await killChild(b, "SIGTERM");
    b = await skewedB(a, "-12s", portB);
    await waitForNode(a, "B", (node) => node.plugins.includes("Back"));
    // At once: no request of B's is refused for being dated before A (or B) started.
    expect(await a.execute("Svc", "who", undefined, { host: "B" })).toBe("B");
    await calledBack(a, "A");

    await closeNode(a);
    a = await startNode({
      hostname: "A",
      dir,
      plugins: [svc("A2")],
      networking: { ...LOOPBACK, secret: SECRET, port: portA, node_ips: [`127.0.0.1:${portB}`] },
    });
    // B learns of the new A from A's first request, and asks it back.
    await calledBack(a, "A2");
    await killChild(b, "SIGTERM");
  });

  it("a node whose wall clock jumps 2 minutes ahead marks no peer down, and is marked down by none", async () => {
    const clock = join(tempDir("aio-clocks-"), "faketime");
    writeFileSync(clock, "+0s\n");
    const a = await startNode({
      hostname: "A",
      dir,
      plugins: [svc("A")],
      networking: { ...LOOPBACK, secret: SECRET },
    });
    const downs: string[] = [];
    a.on("node:down", (node) => downs.push(node.hostname));
    const b = await spawnNode(
      nodeConfig({
        hostname: "B",
        dir,
        plugins: [svc("B"), { name: "Back", arguments: {} }, { name: "Watch", arguments: {} }],
        networking: { ...LOOPBACK, secret: SECRET, node_ips: [addr(a)] },
      }),
      10_000,
      fakeClock({ file: clock }),
    );
    await waitForNode(a, "B", (node) => node.plugins.includes("Watch"));
    writeFileSync(clock, "+120s\n");
    // Several liveness timeouts (0.8 s) of heartbeats after the jump, in both directions.
    await heartbeats(a, "B", 8);
    const view = (await a.execute("Watch", "view", undefined, { host: "B" })) as {
      downs: number;
      nodes: Array<{ hostname: string; alive: boolean }>;
    };
    expect(view.downs).toBe(0);
    expect(view.nodes).toEqual([expect.objectContaining({ hostname: "A", alive: true })]);
    expect(downs).toEqual([]);
    expect(await a.execute("Back", "back", undefined, { host: "B" })).toBe("A");
    await killChild(b, "SIGTERM");
  });
});
