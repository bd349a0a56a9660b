/**
 * Three nodes in one process: where a call runs for every `host` value, least-in-flight spread
 * across two nodes serving one endpoint, `pluginUuid`, remote access rules, and endpoint maps
 * that follow a remote plugin being disabled, enabled, popped and loaded again.
 */
import type { PluginCore } from "aio-assistant-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  addr,
  base,
  cleanup,
  collect,
  nodeNamed,
  pluginDir,
  rejection,
  rep,
  SLEEP,
  shared,
  sharedRef,
  startNode,
  waitFor,
  waitForNode,
} from "./helpers.js";

const STORE = `__aioNetRouting${process.pid}`;
const store = shared(STORE, {
  active: {} as Record<string, number>,
  served: {} as Record<string, number>,
  release: [] as Array<() => void>,
});
const S = sharedRef(STORE);

const SVC = {
  header: SLEEP,
  body: `
  node = "?";
  onLoad(args: any) { this.node = args?.node ?? "?"; }
  who() { return this.node; }
  caller() {
    const c = this.currentCall;
    return { node: this.node, author: c?.author ?? null, authorHost: c?.authorHost ?? null };
  }
  uuid() { return this.pluginUuid; }
  size(s: string) { return s.length; }
  big(n: number) { return "z".repeat(n); }
  *count(n: number) { for (let i = 0; i < n; i++) yield this.node + ":" + i; }
  async held() {
    const s = ${S};
    s.served[this.node] = (s.served[this.node] ?? 0) + 1;
    await new Promise<void>((r) => s.release.push(r));
    return this.node;
  }`,
  endpoints: [
    rep("who"),
    rep("caller"),
    rep("uuid"),
    rep("size", ["s"]),
    rep("big", ["n"]),
    rep("count", [{ name: "n", type: "int" }]),
    rep("held"),
  ],
};

const plugins = {
  Svc: SVC,
  OnlyB: { body: `who() { return "B-only"; }`, endpoints: [rep("who")] },
  // The plugin says remote: false, its endpoint says remote: true: not callable remotely.
  Private: {
    remote: false,
    body: `who() { return "private"; }`,
    endpoints: [rep("who")],
  },
  // The plugin is remote, one endpoint is not.
  Half: {
    body: `open() { return "open"; } closed() { return "closed"; }`,
    endpoints: [rep("open"), rep("closed", [], { remote: false })],
  },
  // Reloaded / toggled by the refresh tests.
  Toggle: { body: `who() { return "toggle"; }`, endpoints: [rep("who")] },
  // Only open to the node named C (config.yml allowed_nodes).
  Picky: { body: `who() { return "picky"; }`, endpoints: [rep("who")] },
};

let a: PluginCore;
let b: PluginCore;
let c: PluginCore;

beforeAll(async () => {
  const dir = pluginDir(plugins);
  b = await startNode({
    hostname: "B",
    dir,
    plugins: [
      { name: "Svc", arguments: { node: "B" } },
      "OnlyB",
      "Private",
      "Half",
      "Toggle",
      { name: "Picky", allowed_nodes: ["C"] },
    ],
  });
  c = await startNode({
    hostname: "C",
    dir,
    plugins: [{ name: "Svc", arguments: { node: "C" } }],
  });
  a = await startNode({
    hostname: "A",
    dir,
    plugins: [{ name: "Svc", arguments: { node: "A" } }],
    networking: { node_ips: [addr(b), addr(c)] },
  });
  await waitForNode(a, "B");
  await waitForNode(a, "C");
  await waitForNode(b, "A");
  await waitForNode(c, "A");
});

afterAll(cleanup);

describe("host", () => {
  it('"any" (the default) runs on this node first', async () => {
    expect(await a.execute("Svc", "who")).toBe("A");
    expect(await a.execute("Svc", "who", undefined, { host: "any" })).toBe("A");
  });

  it('"any" goes to a remote node that has the endpoint when this node has not', async () => {
    expect(await a.execute("OnlyB", "who")).toBe("B-only");
  });

  it("a plugin only another node has, asked for an endpoint it lacks: ENDPOINT_NOT_FOUND naming its endpoints", async () => {
    const error = await rejection(a.execute("OnlyB", "nope"));
    expect(error.code).toBe("ENDPOINT_NOT_FOUND");
    expect(error.message).toMatch(/has no endpoint "nope"; it has who/);
    expect(error.host).toBe("B");
  });

  it('"local" and this node\'s own hostname stay on this node', async () => {
    expect(await a.execute("Svc", "who", undefined, { host: "local" })).toBe("A");
    expect(await a.execute("Svc", "who", undefined, { host: "A" })).toBe("A");
    const local = await rejection(a.execute("OnlyB", "who", undefined, { host: "local" }));
    expect(local.code).toBe("PLUGIN_NOT_FOUND");
    // The caller, an HTTP client of this node perhaps, learns where the plugin is.
    expect(local.message).toContain(`node "B" (${addr(b)}) has it`);
    expect((await rejection(a.execute("OnlyB", "who", undefined, { host: "A" }))).code).toBe(
      "PLUGIN_NOT_FOUND",
    );
  });

  it('"remote" never runs on this node', async () => {
    for (let i = 0; i < 6; i++) {
      expect(["B", "C"]).toContain(await a.execute("Svc", "who", undefined, { host: "remote" }));
    }
    expect(await a.execute("OnlyB", "who", undefined, { host: "remote" })).toBe("B-only");
  });

  it('"remote" with no remote node serving the endpoint is NO_NODE', async () => {
    const error = await rejection(a.execute("Nope", "who", undefined, { host: "remote" }));
    expect(error.code).toBe("NO_NODE");
  });

  it("a hostname runs on that node only", async () => {
    expect(await a.execute("Svc", "who", undefined, { host: "B" })).toBe("B");
    expect(await a.execute("Svc", "who", undefined, { host: "C" })).toBe("C");
    expect(await b.execute("Svc", "who", undefined, { host: "A" })).toBe("A");
    expect(await b.execute("Svc", "who", undefined, { host: "C" })).toBe("C");
  });

  it("a hostname that does not serve the endpoint is NO_NODE, even if another node does", async () => {
    const error = await rejection(a.execute("OnlyB", "who", undefined, { host: "C" }));
    expect(error.code).toBe("NO_NODE");
    expect(error.message).toContain("C");
  });

  it("an unknown hostname is NO_NODE naming it", async () => {
    const error = await rejection(a.execute("Svc", "who", undefined, { host: "nosuchnode" }));
    expect(error.code).toBe("NO_NODE");
    expect(error.message).toContain("nosuchnode");
  });

  it("streams follow the same routing", async () => {
    expect(await collect(a.executeStream("Svc", "count", [2]))).toEqual(["A:0", "A:1"]);
    expect(await collect(a.executeStream("Svc", "count", [2], { host: "B" }))).toEqual([
      "B:0",
      "B:1",
    ]);
    expect(await collect(a.executeStream("Svc", "count", { n: 3 }, { host: "C" }))).toEqual([
      "C:0",
      "C:1",
      "C:2",
    ]);
    const remote = await collect(a.executeStream("Svc", "count", [1], { host: "remote" }));
    expect(["B:0", "C:0"]).toContain(remote[0]);
    const error = await rejection(collect(a.executeStream("Svc", "count", [1], { host: "zz" })));
    expect(error.code).toBe("NO_NODE");
  });

  it("the remote plugin sees the calling node as authorHost, and no author for the application", async () => {
    expect(await a.execute("Svc", "caller", undefined, { host: "B" })).toEqual({
      node: "B",
      author: null,
      authorHost: "A",
    });
    expect(await a.execute("Svc", "caller", undefined, { host: "local" })).toEqual({
      node: "A",
      author: null,
      authorHost: null,
    });
  });
});

describe("size limits", () => {
  it("a call with 2 MiB of arguments is refused over the channel as over HTTP", async () => {
    const big = "x".repeat(2 * 1024 * 1024);
    const http = await fetch(`${base(b)}/execute`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ plugin: "Svc", method: "size", args: [big] }),
    });
    expect(http.status).toBe(413);
    const error = await rejection(a.execute("Svc", "size", [big], { host: "B" }));
    expect(["PAYLOAD_TOO_LARGE", "NETWORK", "BAD_REQUEST"]).toContain(error.code);
  });

  it("a call with 512 KiB of arguments and a 4 MiB result works over the channel", async () => {
    expect(await a.execute("Svc", "size", ["y".repeat(512 * 1024)], { host: "B" })).toBe(
      512 * 1024,
    );
    const result = await a.execute<string>("Svc", "big", [4 * 1024 * 1024], { host: "B" });
    expect(result.length).toBe(4 * 1024 * 1024);
    expect(await a.execute("Svc", "who", undefined, { host: "B" })).toBe("B");
  });
});

describe("blocking calls", () => {
  it("to a node in this same process are refused with WOULD_DEADLOCK, at once", () => {
    let error: unknown;
    try {
      a.executeSync("Svc", "who", undefined, { host: "B" });
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: "WOULD_DEADLOCK" });
    expect(a.executeSync("Svc", "who", undefined, { host: "local" })).toBe("A");
  });
});

describe("least in flight", () => {
  /** Starts 10 held calls with host "remote"; `between` runs after each (undefined: none). */
  async function spread(between?: () => Promise<void>): Promise<Record<string, number>> {
    store.served = {};
    store.release = [];
    const n = 10;
    const calls: Promise<string>[] = [];
    for (let i = 0; i < n; i++) {
      calls.push(a.execute<string>("Svc", "held", undefined, { host: "remote" }));
      if (between) await between();
    }
    await waitFor(
      () => Object.values(store.served).reduce((x, y) => x + y, 0) === n,
      `${n} held calls to arrive`,
    );
    const counts = { ...store.served };
    for (const release of store.release.splice(0)) release();
    const answers = await Promise.all(calls);
    expect(answers.filter((x) => x === "B").length).toBe(counts.B ?? 0);
    return counts;
  }

  it("calls started one after another spread evenly over two nodes", async () => {
    // Warm both channels first, so connecting is not part of the measurement.
    await a.execute("Svc", "who", undefined, { host: "B" });
    await a.execute("Svc", "who", undefined, { host: "C" });
    const counts = await spread(() => new Promise((r) => setImmediate(r)));
    expect(counts).toEqual({ B: 5, C: 5 });
  });

  it("calls started in the same tick spread evenly over two nodes", async () => {
    await a.execute("Svc", "who", undefined, { host: "B" });
    await a.execute("Svc", "who", undefined, { host: "C" });
    const counts = await spread();
    expect(counts).toEqual({ B: 5, C: 5 });
  });
});

describe("pluginUuid", () => {
  it("targets one instance anywhere", async () => {
    const uuidB = b.getPluginInfo("Svc")?.uuid as string;
    const uuidC = c.getPluginInfo("Svc")?.uuid as string;
    const uuidA = a.getPluginInfo("Svc")?.uuid as string;
    expect(new Set([uuidA, uuidB, uuidC]).size).toBe(3);
    for (let i = 0; i < 3; i++) {
      expect(await a.execute("Svc", "who", undefined, { pluginUuid: uuidB })).toBe("B");
      expect(await a.execute("Svc", "who", undefined, { pluginUuid: uuidC })).toBe("C");
      expect(await a.execute("Svc", "who", undefined, { pluginUuid: uuidA })).toBe("A");
    }
    expect(await a.execute("Svc", "uuid", undefined, { pluginUuid: uuidC, host: "remote" })).toBe(
      uuidC,
    );
    expect(await collect(a.executeStream("Svc", "count", [1], { pluginUuid: uuidC }))).toEqual([
      "C:0",
    ]);
  });

  it("an unknown uuid, or one of another plugin, is refused", async () => {
    const uuidB = b.getPluginInfo("Svc")?.uuid as string;
    const unknown = await rejection(
      a.execute("Svc", "who", undefined, { pluginUuid: "00000000-0000-4000-8000-000000000000" }),
    );
    expect(["PLUGIN_NOT_FOUND", "NO_NODE"]).toContain(unknown.code);
    const other = await rejection(a.execute("OnlyB", "who", undefined, { pluginUuid: uuidB }));
    expect(["PLUGIN_NOT_FOUND", "NO_NODE"]).toContain(other.code);
    const wrongHost = await rejection(
      a.execute("Svc", "who", undefined, { pluginUuid: uuidB, host: "C" }),
    );
    expect(wrongHost.code).toBe("NO_NODE");
    // This node's own instance is never reached with host "remote".
    const uuidA = a.getPluginInfo("Svc")?.uuid as string;
    const local = await rejection(
      a.execute("Svc", "who", undefined, { pluginUuid: uuidA, host: "remote" }),
    );
    expect(local.code).toBe("NO_NODE");
  });
});

describe("remote access", () => {
  it("/info advertises only endpoints the plugin and the endpoint both open to remote nodes", async () => {
    const response = await fetch(`${base(b)}/info`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ hostname: "probe", port: 0, discover_nodes_info: false }),
    });
    expect(response.status).toBe(200);
    const info = (await response.json()) as {
      endpoints: Array<{ plugin: string; access_name: string }>;
    };
    const names = info.endpoints.map((e) => `${e.plugin}.${e.access_name}`);
    expect(names).toContain("Svc.who");
    expect(names).toContain("Half.open");
    expect(names).not.toContain("Half.closed");
    expect(names.some((n) => n.startsWith("Private."))).toBe(false);
    const node = nodeNamed(a, "B");
    expect(node?.plugins).toContain("Half");
    expect(node?.plugins).not.toContain("Private");
  });

  it("a plugin that is not remote cannot be called from another node: ACCESS_DENIED naming the node and why", async () => {
    expect(await b.execute("Private", "who")).toBe("private");
    for (const host of ["B", "any", "remote"]) {
      const error = await rejection(a.execute("Private", "who", undefined, { host }));
      expect(error.code, host).toBe("ACCESS_DENIED");
      expect(error.message).toMatch(/node "B" does not open it to other nodes/);
      expect(error.message).toMatch(/remote: true/);
      expect(error.host).toBe("B");
    }
    const stream = await rejection(collect(a.executeStream("Private", "who")));
    expect(stream.code).toBe("ACCESS_DENIED");
  });

  it("an endpoint that is not remote cannot be called from another node: ACCESS_DENIED", async () => {
    expect(await a.execute("Half", "open", undefined, { host: "B" })).toBe("open");
    for (const host of ["B", "any"]) {
      const error = await rejection(a.execute("Half", "closed", undefined, { host }));
      expect(error.code, host).toBe("ACCESS_DENIED");
      expect(error.message).toMatch(/node "B" does not open it to other nodes/);
    }
  });

  it("the serving node refuses such calls itself (ACCESS_DENIED), whatever author the caller claims", async () => {
    for (const [plugin, method] of [
      ["Private", "who"],
      ["Half", "closed"],
    ] as const) {
      for (const author of [undefined, plugin, "Svc"]) {
        const response = await fetch(`${base(b)}/execute`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ plugin, method, args: [], author }),
        });
        expect(response.status).toBe(403);
        const body = (await response.json()) as { error: { code: string } };
        expect(body.error.code).toBe("ACCESS_DENIED");
      }
    }
  });

  it("allowed_nodes limits which nodes may call a plugin: ACCESS_DENIED saying who may", async () => {
    expect(await c.execute("Picky", "who", undefined, { host: "B" })).toBe("picky");
    for (const host of ["B", "any"]) {
      const error = await rejection(a.execute("Picky", "who", undefined, { host }));
      expect(error.code, host).toBe("ACCESS_DENIED");
      expect(error.message).toMatch(
        /node "B" lets only C call Picky \(allowed_nodes\); the caller is node A/,
      );
    }
  });
});

describe("endpoint maps follow remote lifecycle events", () => {
  const hasToggle = (core: PluginCore) => nodeNamed(core, "B")?.plugins.includes("Toggle");

  it("disable, enable, pop and load of a remote plugin reach the other nodes", async () => {
    await waitFor(() => hasToggle(a), "A to see Toggle on B");
    const firstUuid = b.getPluginInfo("Toggle")?.uuid as string;
    expect(await a.execute("Toggle", "who")).toBe("toggle");

    await b.disablePlugin("Toggle");
    await waitFor(() => !hasToggle(a), "A to drop Toggle after disable");
    expect(nodeNamed(a, "B")?.plugins).toContain("Svc");
    expect((await rejection(a.execute("Toggle", "who"))).code).toBe("PLUGIN_NOT_FOUND");
    expect((await rejection(a.execute("Toggle", "who", undefined, { host: "B" }))).code).toBe(
      "NO_NODE",
    );

    await b.enablePlugin("Toggle");
    await waitFor(() => hasToggle(a), "A to see Toggle after enable");
    expect(await a.execute("Toggle", "who", undefined, { host: "B" })).toBe("toggle");

    await b.popPlugin("Toggle");
    await waitFor(() => !hasToggle(a), "A to drop Toggle after pop");
    expect((await rejection(a.execute("Toggle", "who", undefined, { host: "B" }))).code).toBe(
      "NO_NODE",
    );

    await b.loadPlugin("Toggle");
    await b.enablePlugin("Toggle");
    await waitFor(() => hasToggle(a), "A to see Toggle after load");
    const secondUuid = b.getPluginInfo("Toggle")?.uuid as string;
    expect(secondUuid).not.toBe(firstUuid);
    // The new instance is reachable by its uuid, the old one no longer.
    await waitFor(
      () =>
        a.execute("Toggle", "who", undefined, { pluginUuid: secondUuid }).then(
          (v) => v === "toggle",
          () => false,
        ),
      "A to reach the new Toggle instance by uuid",
    );
    const old = await rejection(a.execute("Toggle", "who", undefined, { pluginUuid: firstUuid }));
    expect(["PLUGIN_NOT_FOUND", "NO_NODE"]).toContain(old.code);
  });
});
