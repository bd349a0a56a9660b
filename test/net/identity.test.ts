/**
 * Nodes that come and go: a restarted node replaces its old self at once and quietly; a peer
 * that starts late is found without waiting for a heartbeat; a node that stops answering (its
 * process stopped) is marked down, its calls fail at once, and it is back with a working
 * channel when it answers again; errors name the real cause (a node that refuses, a node whose
 * credentials are refused).
 */
import { randomBytes } from "node:crypto";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import {
  addr,
  cleanup,
  closeAll,
  closeNode,
  ERROR,
  freePort,
  killChild,
  LOOPBACK,
  logLines,
  markCode,
  nodeConfig,
  nodeEvent,
  nodeNamed,
  pluginDir,
  rejection,
  rep,
  SLEEP,
  shared,
  sharedRef,
  spawnNode,
  startNode,
  tempDir,
  waitFor,
  waitForNode,
} from "./helpers.js";

const STORE = `__aioNetIdentity${process.pid}`;
const store = shared(STORE, { peeks: 0 });

const dir = pluginDir({
  Svc: {
    header: SLEEP,
    body: `node = "?";
  onLoad(args: any) { this.node = args?.node ?? "?"; }
  who() { return this.node; }
  async hang() {
    if (process.env.AIO_CHILD === "1") ${markCode(`"hanging"`)}
    await new Promise(() => {});
  }`,
    endpoints: [rep("who"), rep("hang")],
  },
  // Open to other nodes, but only to itself among plugins.
  Vault: {
    body: `peek() { ${sharedRef(STORE)}.peeks++; return "secret"; }`,
    endpoints: [rep("peek", [], { accessible_by_other_plugins: false })],
  },
  // A plugin that calls Vault on the node named B.
  Relay: {
    body: `relay() { return this.execute("Vault", "peek", undefined, { host: "B" }); }`,
    endpoints: [rep("relay")],
  },
  Shop: { body: `buy() { return "bought"; }`, endpoints: [rep("buy")] },
});

const svc = (node: string) => ({ name: "Svc", arguments: { node } });
/** Heartbeats so rare that nothing here can be their doing. */
const NO_HEARTBEAT = { heartbeat_interval: 60, liveness_timeout: 120 };

afterEach(closeAll);
afterAll(cleanup);

describe("a restarted node", () => {
  it("replaces its old self at once and quietly: one row, no conflict, calls naming it work", async () => {
    const logDir = tempDir("aio-identity-log-");
    const port = await freePort();
    let a = await startNode({
      hostname: "A",
      dir,
      plugins: [svc("A1")],
      networking: { ...NO_HEARTBEAT, port },
    });
    const b = await startNode({
      hostname: "B",
      dir,
      networking: { ...NO_HEARTBEAT, node_ips: [addr(a)] },
      general: { log_dir: logDir },
    });
    expect(await b.execute("Svc", "who", undefined, { host: "A" })).toBe("A1");
    const rows = () => b.nodes().filter((n) => n.hostname === "A");
    for (const generation of ["A2", "A3", "A4"]) {
      await closeNode(a);
      a = await startNode({
        hostname: "A",
        dir,
        plugins: [svc(generation)],
        networking: { ...NO_HEARTBEAT, port, node_ips: [addr(b)] },
      });
      await waitFor(() => {
        expect(rows().length).toBeLessThanOrEqual(1);
        return b.execute("Svc", "who", undefined, { host: "A" }).then(
          (who) => who === generation,
          () => false,
        );
      }, `B to call the restarted A (${generation})`);
      expect(rows()).toEqual([expect.objectContaining({ alive: true, plugins: ["Svc"] })]);
    }
    const file = b.logFile as string;
    await closeNode(b);
    const lines = logLines(file);
    expect(lines.filter((line) => line.level >= ERROR)).toEqual([]);
    expect(lines.filter((line) => /Node "A" restarted at/.test(line.msg))).toHaveLength(3);
  });

  it("tells the nodes it knows that it is leaving: they count it down at once, with no channel to it", async () => {
    const a = await startNode({
      hostname: "A",
      dir,
      plugins: [svc("A")],
      networking: NO_HEARTBEAT,
    });
    const b = await startNode({
      hostname: "B",
      dir,
      networking: { ...NO_HEARTBEAT, node_ips: [addr(a)] },
    });
    await waitForNode(a, "B");
    const down = nodeEvent(b, "node:down", "A");
    await closeNode(a);
    await down;
    const error = await rejection(b.execute("Svc", "who", undefined, { host: "A" }));
    expect(error.code).toBe("NO_NODE");
    expect(error.message).toMatch(/shutting down/);
  });
});

describe("a peer that starts late", () => {
  it("is found without a heartbeat, when only the node already running knows its address", async () => {
    const port = await freePort();
    const a = await startNode({
      hostname: "A",
      dir,
      networking: { ...NO_HEARTBEAT, node_ips: [`127.0.0.1:${port}`] },
    });
    expect(a.nodes()).toEqual([]);
    await startNode({
      hostname: "B",
      dir,
      plugins: [svc("B")],
      networking: { ...NO_HEARTBEAT, port },
    });
    // Probed twice a second while missing: found long before the 60 s heartbeat.
    await waitForNode(a, "B", (node) => node.plugins.includes("Svc"), 5000);
    expect(await a.execute("Svc", "who")).toBe("B");
  });

  it("is found at once when it knows the node already running", async () => {
    const a = await startNode({ hostname: "A", dir, networking: NO_HEARTBEAT });
    await startNode({
      hostname: "B",
      dir,
      plugins: [svc("B")],
      networking: { ...NO_HEARTBEAT, node_ips: [addr(a)] },
    });
    // B's start told A; A asked B back, and hears of B's plugins as they are enabled.
    await waitForNode(a, "B", (node) => node.plugins.includes("Svc"), 2000);
    expect(await a.execute("Svc", "who")).toBe("B");
  });
});

describe("a node that stops answering (its process is stopped)", () => {
  it("is marked down in about the liveness timeout; its calls fail at once with NETWORK; back up with a channel that works", async () => {
    const b = await spawnNode(nodeConfig({ hostname: "B", dir, plugins: [svc("B")] }));
    const c = await startNode({ hostname: "C", dir, plugins: [svc("C")] });
    const a = await startNode({
      hostname: "A",
      dir,
      networking: { node_ips: [`127.0.0.1:${b.port}`, addr(c)] },
    });
    await waitForNode(a, "B", (node) => node.plugins.includes("Svc"));
    await waitForNode(a, "C", (node) => node.plugins.includes("Svc"));
    // A call without a deadline, running on B when B goes silent.
    const hanging = a.execute("Svc", "hang", undefined, { host: "B" });
    hanging.catch(() => undefined);
    await b.mark((m) => m === "hanging");
    const down = nodeEvent(a, "node:down", "B");
    b.proc.kill("SIGSTOP");
    try {
      await down;
      const error = await rejection(hanging);
      expect(error.code).toBe("NETWORK");
      expect(error.message).toMatch(/may have run/);
      // "any" goes to C meanwhile.
      expect(await a.execute("Svc", "who")).toBe("C");
      const up = nodeEvent(a, "node:up", "B");
      b.proc.kill("SIGCONT");
      await up;
    } finally {
      b.proc.kill("SIGCONT");
    }
    // Listed up only with a working channel: the first call works.
    expect(await a.execute("Svc", "who", undefined, { host: "B" })).toBe("B");
    // And B gets its share of "any" again: nothing of the failed call counts as in flight.
    const served = await Promise.all(Array.from({ length: 8 }, () => a.execute("Svc", "who")));
    expect(served.filter((who) => who === "B")).toHaveLength(4);
    await killChild(b);
  });
});

describe("errors that name the real cause", () => {
  it("a node that refused this node's credentials is named in the error, with the way out", async () => {
    const b = await startNode({
      hostname: "B",
      dir,
      plugins: ["Shop"],
      networking: { ...LOOPBACK, secret: `right-${randomBytes(12).toString("hex")}` },
    });
    const a = await startNode({
      hostname: "A",
      dir,
      networking: {
        ...LOOPBACK,
        secret: `wrong-${randomBytes(12).toString("hex")}`,
        node_ips: [addr(b)],
      },
    });
    for (const host of ["any", "remote", "B"]) {
      const error = await rejection(a.execute("Shop", "buy", undefined, { host }));
      expect(error.code, host).toBe(host === "any" ? "PLUGIN_NOT_FOUND" : "NO_NODE");
      expect(error.message).toContain(addr(b));
      expect(error.message).toMatch(
        /refused this node's credentials; check that both nodes use the same secret/,
      );
    }
  });

  it("a plugin on another node calling an endpoint closed to other plugins: ACCESS_DENIED, and it does not run", async () => {
    const b = await startNode({ hostname: "B", dir, plugins: ["Vault"] });
    const a = await startNode({
      hostname: "A",
      dir,
      plugins: ["Relay"],
      networking: { node_ips: [addr(b)] },
    });
    await waitForNode(a, "B", (node) => node.plugins.includes("Vault"));
    store.peeks = 0;
    const error = await rejection(a.execute("Relay", "relay"));
    expect(error.code).toBe("PLUGIN_ERROR");
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    expect(cause?.code).toBe("ACCESS_DENIED");
    expect(cause?.message).toMatch(
      /only Vault itself may call it \(accessible_by_other_plugins is false\); the caller is plugin Relay on node A/,
    );
    expect(store.peeks).toBe(0);
    // The application on A is no plugin: it may.
    expect(await a.execute("Vault", "peek", undefined, { host: "B" })).toBe("secret");
    expect(store.peeks).toBe(1);
    expect(nodeNamed(a, "B")?.alive).toBe(true);
  });
});
