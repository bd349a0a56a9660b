/**
 * Finding nodes: node_ips, contact back, gossip of /info's `nodes`, the discover_nodes,
 * auto_discoverable and direct_discoverable switches, nodes(), heartbeats marking nodes down
 * and up again, and two nodes claiming one hostname.
 */
import { readFileSync } from "node:fs";
import { type NodeInfo, PluginCore } from "aio-assistant-core";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import {
  addr,
  base,
  cleanup,
  closeAll,
  closeNode,
  freePort,
  heartbeats,
  nodeConfig,
  nodeEvent,
  nodeNamed,
  pluginDir,
  rejection,
  rep,
  startNode,
  tempDir,
  waitFor,
  waitForNode,
} from "./helpers.js";

const dir = pluginDir({
  Svc: {
    body: `node = "?"; onLoad(args: any) { this.node = args?.node ?? "?"; } who() { return this.node; }`,
    endpoints: [rep("who")],
  },
  Local: { body: `who() { return "local"; }`, endpoints: [rep("who", [], { remote: false })] },
});

const svc = (node: string) => ({ name: "Svc", arguments: { node } });

afterEach(closeAll);
afterAll(cleanup);

const names = (nodes: NodeInfo[]) => nodes.map((n) => n.hostname).sort();

describe("discovery", () => {
  it("a node contacts its node_ips at start, and the contacted node contacts it back", async () => {
    const b = await startNode({ hostname: "B", dir, plugins: [svc("B"), "Local"] });
    const started = Date.now();
    const a = await startNode({
      hostname: "A",
      dir,
      plugins: [svc("A")],
      networking: { node_ips: [addr(b)] },
    });
    // Known as soon as start() resolves.
    const seen = nodeNamed(a, "B");
    expect(seen).toMatchObject({ hostname: "B", address: addr(b), alive: true, plugins: ["Svc"] });
    expect(seen?.lastSeen).toBeGreaterThanOrEqual(started - 1);
    expect(seen?.lastSeen).toBeLessThanOrEqual(Date.now());
    // B learns of A without being told.
    const back = await waitForNode(b, "A");
    expect(back.address).toBe(addr(a));
    expect(back.plugins).toEqual(["Svc"]);
    expect(await a.execute("Svc", "who", undefined, { host: "B" })).toBe("B");
    expect(await b.execute("Svc", "who", undefined, { host: "A" })).toBe("A");
    // A node never lists itself.
    expect(names(a.nodes())).toEqual(["B"]);
    expect(names(b.nodes())).toEqual(["A"]);
  });

  it("node:up is emitted when a node is first found", async () => {
    const b = await startNode({ hostname: "B", dir, plugins: [svc("B")] });
    const core = new PluginCore(
      nodeConfig({ hostname: "A", dir, networking: { node_ips: [addr(b)] } }),
    );
    const up = nodeEvent(core, "node:up", "B");
    try {
      await core.start();
      const node = await up;
      expect(node).toMatchObject({ hostname: "B", address: addr(b), alive: true });
    } finally {
      await core.close();
    }
  });

  it("gossip: A learns of C from B's /info answer", async () => {
    const b = await startNode({ hostname: "B", dir, plugins: [svc("B")] });
    // C does not follow or contact back anyone, so only B can tell A about it.
    const c = await startNode({
      hostname: "C",
      dir,
      plugins: [svc("C")],
      networking: { node_ips: [addr(b)], discover_nodes: false },
    });
    await waitForNode(b, "C");
    const a = await startNode({
      hostname: "A",
      dir,
      networking: { node_ips: [addr(b)] },
    });
    await waitForNode(a, "C");
    expect(nodeNamed(a, "C")?.address).toBe(addr(c));
    expect(await a.execute("Svc", "who", undefined, { host: "C" })).toBe("C");
    expect(names(a.nodes())).toEqual(["B", "C"]);
    // C, with discover_nodes off, only knows the node it was given.
    expect(names(c.nodes())).toEqual(["B"]);
  });

  it("start() ends when nodes pass each other on under another address than this node used", async () => {
    const c = await startNode({ hostname: "C", dir, plugins: [svc("C")] });
    const b = await startNode({
      hostname: "B",
      dir,
      plugins: [svc("B")],
      networking: { node_ips: [addr(c)] },
    });
    await waitForNode(c, "B");
    // A knows B and C as localhost; they pass each other on as 127.0.0.1, back and forth.
    const a = await startNode({
      hostname: "A",
      dir,
      networking: { node_ips: [`localhost:${b.port}`, `localhost:${c.port}`] },
    });
    expect(names(a.nodes())).toEqual(["B", "C"]);
    expect(a.nodes().filter((n) => n.hostname === "B")).toHaveLength(1);
  });

  it("discover_nodes: false follows no gossip", async () => {
    const b = await startNode({ hostname: "B", dir, plugins: [svc("B")] });
    const c = await startNode({
      hostname: "C",
      dir,
      plugins: [svc("C")],
      networking: { node_ips: [addr(b)] },
    });
    await waitForNode(b, "C");
    const a = await startNode({
      hostname: "A",
      dir,
      networking: { node_ips: [addr(b)], discover_nodes: false },
    });
    expect(names(a.nodes())).toEqual(["B"]);
    // A few heartbeats later still only B.
    await heartbeats(a, "B");
    expect(names(a.nodes())).toEqual(["B"]);
    expect(c.nodes().some((n) => n.hostname === "A")).toBe(false);
  });

  it("auto_discoverable: false keeps a node out of other nodes' gossip", async () => {
    const b = await startNode({ hostname: "B", dir, plugins: [svc("B")] });
    await startNode({
      hostname: "C",
      dir,
      plugins: [svc("C")],
      networking: { node_ips: [addr(b)], discover_nodes: false, auto_discoverable: false },
    });
    await waitForNode(b, "C");
    const a = await startNode({ hostname: "A", dir, networking: { node_ips: [addr(b)] } });
    await heartbeats(a, "B");
    expect(names(a.nodes())).toEqual(["B"]);
  });

  it("direct_discoverable: false answers /info with 418 and is not added", async () => {
    const b = await startNode({
      hostname: "B",
      dir,
      plugins: [svc("B")],
      // auto_discoverable forces direct_discoverable, so both are off.
      networking: { direct_discoverable: false, auto_discoverable: false },
    });
    const response = await fetch(`${base(b)}/info`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ hostname: "probe", port: 0, discover_nodes_info: true }),
    });
    expect(response.status).toBe(418);
    const a = await startNode({ hostname: "A", dir, networking: { node_ips: [addr(b)] } });
    expect(a.nodes()).toEqual([]);
    expect((await rejection(a.execute("Svc", "who", undefined, { host: "B" }))).code).toBe(
      "NO_NODE",
    );
    // Its other endpoints still serve.
    expect(((await (await fetch(`${base(b)}/ping`)).json()) as { status: string }).status).toBe(
      "ok",
    );
  });

  it("a node_ips entry pointing at the node itself is ignored", async () => {
    const b = await startNode({ hostname: "B", dir });
    const port = await freePort();
    const a = await startNode({
      hostname: "A",
      dir,
      networking: { port, node_ips: [`127.0.0.1:${port}`, `localhost:${port}`, addr(b)] },
    });
    expect(a.port).toBe(port);
    await heartbeats(a, "B");
    expect(names(a.nodes())).toEqual(["B"]);
  });

  it("a node_ips entry nobody listens on does not stop start(), and is found once it appears", async () => {
    const port = await freePort();
    const a = await startNode({
      hostname: "A",
      dir,
      networking: { node_ips: [`127.0.0.1:${port}`] },
    });
    expect(a.nodes()).toEqual([]);
    const up = nodeEvent(a, "node:up", "Late");
    await startNode({ hostname: "Late", dir, plugins: [svc("late")], networking: { port } });
    await up;
    expect(await a.execute("Svc", "who", undefined, { host: "Late" })).toBe("late");
  });
});

describe("liveness", () => {
  it("a closed node is marked down (node:down), calls to it fail with NO_NODE; a node restarted on the same port is up again (node:up)", async () => {
    const b = await startNode({ hostname: "B", dir, plugins: [svc("B1")] });
    const port = b.port as number;
    const a = await startNode({
      hostname: "A",
      dir,
      networking: { node_ips: [addr(b)] },
    });
    expect(await a.execute("Svc", "who", undefined, { host: "B" })).toBe("B1");

    const down = nodeEvent(a, "node:down", "B", 5000);
    const closedAt = Date.now();
    await closeNode(b);
    const downInfo = await down;
    expect(downInfo.alive).toBe(false);
    // heartbeat_interval 0.2 s, liveness_timeout 0.8 s
    expect(Date.now() - closedAt).toBeLessThan(3000);
    expect(nodeNamed(a, "B")?.alive).toBe(false);
    const error = await rejection(a.execute("Svc", "who", undefined, { host: "B" }));
    expect(error.code).toBe("NO_NODE");
    expect(error.message).toMatch(/down/);
    const anywhere = await rejection(a.execute("Svc", "who"));
    expect(anywhere.code).toBe("PLUGIN_NOT_FOUND");
    expect(anywhere.message).toMatch(/node "B" serves it but is shutting down/);

    const up = nodeEvent(a, "node:up", "B", 5000);
    await startNode({ hostname: "B", dir, plugins: [svc("B2")], networking: { port } });
    const upInfo = await up;
    expect(upInfo.alive).toBe(true);
    await waitFor(
      () =>
        a.execute("Svc", "who", undefined, { host: "B" }).then(
          (v) => v === "B2",
          () => false,
        ),
      "A to reach the restarted B",
    );
    // One entry for B, alive, not a stale one beside it.
    expect(a.nodes().filter((n) => n.hostname === "B")).toHaveLength(1);
    expect(nodeNamed(a, "B")?.alive).toBe(true);
  });

  it("a node restarted on the same port before it was marked down replaces the old instance", async () => {
    const b = await startNode({ hostname: "B", dir, plugins: [svc("B1")] });
    const port = b.port as number;
    const a = await startNode({
      hostname: "A",
      dir,
      // Long enough that B is never marked down here.
      networking: { node_ips: [addr(b)], liveness_timeout: 30 },
    });
    expect(await a.execute("Svc", "who", undefined, { host: "B" })).toBe("B1");
    await closeNode(b);
    await startNode({ hostname: "B", dir, plugins: [svc("B2")], networking: { port } });
    await waitFor(
      () =>
        a.execute("Svc", "who", undefined, { host: "B" }).then(
          (v) => v === "B2",
          () => false,
        ),
      "A to reach the new B",
    );
    expect(a.nodes().filter((n) => n.hostname === "B")).toHaveLength(1);
  });

  it("lastSeen advances with heartbeats", async () => {
    const b = await startNode({ hostname: "B", dir, plugins: [svc("B")] });
    const a = await startNode({ hostname: "A", dir, networking: { node_ips: [addr(b)] } });
    const first = nodeNamed(a, "B")?.lastSeen as number;
    await waitFor(() => (nodeNamed(a, "B")?.lastSeen ?? 0) > first, "lastSeen to advance");
  });
});

describe("hostname conflict", () => {
  it("two alive nodes claiming one hostname give NO_NODE naming both addresses, and an error is logged", async () => {
    const t1 = await startNode({ hostname: "twin", dir, plugins: [svc("t1")] });
    const t2 = await startNode({ hostname: "twin", dir, plugins: [svc("t2")] });
    const logDir = tempDir("aio-net-log-");
    const a = await startNode({
      hostname: "A",
      dir,
      networking: { node_ips: [addr(t1), addr(t2)] },
      general: { log_dir: logDir },
    });
    await waitFor(() => a.nodes().filter((n) => n.hostname === "twin").length === 2, "two twins");
    const error = await rejection(a.execute("Svc", "who", undefined, { host: "twin" }));
    expect(error.code).toBe("NO_NODE");
    expect(error.message).toContain(addr(t1));
    expect(error.message).toContain(addr(t2));
    const file = a.logFile as string;
    await closeNode(a);
    const lines = readFileSync(file, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { level: number; msg: string });
    const logged = lines.find((l) => l.level >= 50 && l.msg.includes("twin"));
    expect(logged?.msg).toContain(addr(t1));
    expect(logged?.msg).toContain(addr(t2));
  });

  it("a node claiming this node's own hostname: calls naming it stay on this node", async () => {
    const imposter = await startNode({ hostname: "A", dir, plugins: [svc("imposter")] });
    const a = await startNode({
      hostname: "A",
      dir,
      plugins: ["Local"],
      networking: { node_ips: [addr(imposter)] },
    });
    expect(a.nodes().map((n) => n.hostname)).toEqual(["A"]);
    expect(await a.execute("Local", "who", undefined, { host: "A" })).toBe("local");
    expect((await rejection(a.execute("Svc", "who", undefined, { host: "A" }))).code).toBe(
      "PLUGIN_NOT_FOUND",
    );
    // "any" may still use it, as any other node serving the endpoint.
    expect(await a.execute("Svc", "who")).toBe("imposter");
  });

  it("with one twin closed, the other serves calls naming that host again", async () => {
    const t1 = await startNode({ hostname: "twin", dir, plugins: [svc("t1")] });
    const t2 = await startNode({ hostname: "twin", dir, plugins: [svc("t2")] });
    const a = await startNode({
      hostname: "A",
      dir,
      networking: { node_ips: [addr(t1), addr(t2)] },
    });
    await waitFor(() => a.nodes().filter((n) => n.hostname === "twin").length === 2, "two twins");
    await closeNode(t1);
    await waitFor(
      () => a.nodes().filter((n) => n.hostname === "twin" && n.alive).length === 1,
      "one twin to be down",
    );
    expect(await a.execute("Svc", "who", undefined, { host: "twin" })).toBe("t2");
  });
});
