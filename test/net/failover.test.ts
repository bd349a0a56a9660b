/**
 * What happens when a node goes away: a call that never left (the node's port is closed) goes
 * to another node that has the endpoint; a call whose connection drops after it was sent
 * fails with NETWORK and is never repeated. close() lets calls in flight finish, bounded by
 * drain_timeout. And the bind rule checked at construction.
 */
import { networkInterfaces } from "node:os";
import { ConfigError, NetworkRequestError, type NodeInfo, PluginCore } from "aio-assistant-core";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  addr,
  cleanup,
  closeAll,
  closeNode,
  collect,
  killChild,
  markCode,
  nodeConfig,
  nodeEvent,
  pluginDir,
  rejection,
  rep,
  SLEEP,
  shared,
  sharedRef,
  spawnNode,
  startNode,
  waitFor,
  waitForNode,
} from "./helpers.js";

const STORE = `__aioNetFailover${process.pid}`;
const store = shared(STORE, {
  served: {} as Record<string, number>,
  started: {} as Record<string, number>,
  release: [] as Array<() => void>,
});
const S = sharedRef(STORE);

const SVC = {
  // In a child process the test's store does not exist; a local one stands in.
  header: `${SLEEP}\nconst store = () => (${S} ??= { served: {}, started: {}, release: [] });`,
  body: `
  node = "?";
  onLoad(args: any) { this.node = args?.node ?? "?"; }
  who() { const s = store(); s.served[this.node] = (s.served[this.node] ?? 0) + 1; return this.node; }
  *items(n: number) { for (let i = 0; i < n; i++) yield this.node + i; }
  async hang(tag: string) {
    const s = store();
    s.started[this.node] = (s.started[this.node] ?? 0) + 1;
    if (process.env.AIO_CHILD === "1") ${markCode(`{ started: tag }`)}
    await new Promise(() => {});
  }
  async held() {
    const s = store();
    s.started[this.node] = (s.started[this.node] ?? 0) + 1;
    await new Promise<void>((r) => s.release.push(r));
    return "held done on " + this.node;
  }
  async slow(ms: number) {
    const s = store();
    s.started[this.node] = (s.started[this.node] ?? 0) + 1;
    await sleep(ms);
    return "slow done on " + this.node;
  }`,
  endpoints: [
    rep("who"),
    rep("items", [{ name: "n", type: "int" }]),
    rep("hang", ["tag"]),
    rep("held"),
    rep("slow", [{ name: "ms", type: "int" }]),
  ],
};

const dir = pluginDir({ Svc: SVC });
const svc = (node: string) => ({ name: "Svc", arguments: { node } });

/** Heartbeats so rare that no node is marked down, or refreshed, during a test. */
const NO_HEARTBEAT = { heartbeat_interval: 30, liveness_timeout: 60 };

beforeEach(() => {
  store.served = {};
  store.started = {};
  store.release = [];
});
afterEach(closeAll);
afterAll(cleanup);

/**
 * A knows B, then C, in that order (B first among equals), with heartbeats too rare to notice
 * B going away during the test.
 */
async function abc(
  makeB: () => Promise<{ port: number }>,
): Promise<{ a: PluginCore; c: PluginCore; b: { port: number } }> {
  const b = await makeB();
  const a = await startNode({
    hostname: "A",
    dir,
    networking: { ...NO_HEARTBEAT, node_ips: [`127.0.0.1:${b.port}`] },
  });
  await waitForNode(a, "B");
  const c = await startNode({
    hostname: "C",
    dir,
    plugins: [svc("C")],
    networking: { ...NO_HEARTBEAT, node_ips: [addr(a)] },
  });
  // C's plugins may start after A found C: A hears of them a moment later.
  await waitForNode(a, "C", (n) => n.plugins.includes("Svc"));
  expect(a.nodes().map((n) => n.hostname)).toEqual(["B", "C"]);
  return { a, b, c };
}

const alive = (a: PluginCore, hostname: string) =>
  a.nodes().find((n: NodeInfo) => n.hostname === hostname)?.alive;

describe("a call that never left goes to another node", () => {
  it("B's process is gone before A had a channel to it: the call and the stream go to C, and B is marked down at once", async () => {
    let child: Awaited<ReturnType<typeof spawnNode>> | undefined;
    const { a } = await abc(async () => {
      child = await spawnNode(nodeConfig({ hostname: "B", dir, plugins: [svc("B")] }));
      return { port: child.port };
    });
    const down = nodeEvent(a, "node:down", "B");
    // No channel from A to B and heartbeats too rare to see it: A learns it by calling.
    await killChild(child as Awaited<ReturnType<typeof spawnNode>>);
    expect(alive(a, "B")).toBe(true);
    store.served = {};
    expect(await a.execute("Svc", "who", undefined, { host: "remote" })).toBe("C");
    // The refused connection marked B down: nothing more is tried there.
    expect((await down).alive).toBe(false);
    expect(alive(a, "B")).toBe(false);
    expect(await a.execute("Svc", "who")).toBe("C");
    expect(await collect(a.executeStream("Svc", "items", [2], { host: "remote" }))).toEqual([
      "C0",
      "C1",
    ]);
    expect(store.served).toEqual({ C: 2 });
  });

  it("B's process is gone (SIGKILL) after A's channel to it was open: B is down at once, the call goes to C", async () => {
    let child: Awaited<ReturnType<typeof spawnNode>> | undefined;
    const { a } = await abc(async () => {
      child = await spawnNode(nodeConfig({ hostname: "B", dir, plugins: [svc("B")] }));
      return { port: child.port };
    });
    expect(await a.execute("Svc", "who", undefined, { host: "B" })).toBe("B");
    const down = nodeEvent(a, "node:down", "B");
    await killChild(child as Awaited<ReturnType<typeof spawnNode>>);
    // The channel closing makes A ask B again; the refused connection marks it down.
    await down;
    expect(alive(a, "B")).toBe(false);
    expect(await a.execute("Svc", "who", undefined, { host: "remote" })).toBe("C");
    expect(await collect(a.executeStream("Svc", "items", [1], { host: "remote" }))).toEqual(["C0"]);
  });

  it("with no other node to go to it fails with NETWORK saying the call was not sent", async () => {
    const b = await spawnNode(nodeConfig({ hostname: "B", dir, plugins: [svc("B")] }));
    const a = await startNode({
      hostname: "A",
      dir,
      networking: { ...NO_HEARTBEAT, node_ips: [`127.0.0.1:${b.port}`] },
    });
    await killChild(b);
    const started = Date.now();
    const error = await rejection(a.execute("Svc", "who", undefined, { host: "B" }));
    expect(error.code).toBe("NETWORK");
    expect(error).toBeInstanceOf(NetworkRequestError);
    expect(error.message).toMatch(/not sent/);
    expect(Date.now() - started).toBeLessThan(3000);
    // Marked down by the refused connection: the next call says so at once.
    const stream = await rejection(collect(a.executeStream("Svc", "items", [1], { host: "B" })));
    expect(stream.code).toBe("NO_NODE");
    expect(stream.message).toMatch(/down/);
  });
});

describe("a call that may have run is never repeated", () => {
  it("B is killed while running it: NETWORK, and C never sees the call", async () => {
    let child: Awaited<ReturnType<typeof spawnNode>> | undefined;
    const { a } = await abc(async () => {
      child = await spawnNode(nodeConfig({ hostname: "B", dir, plugins: [svc("B")] }));
      return { port: child.port };
    });
    const kid = child as Awaited<ReturnType<typeof spawnNode>>;
    const call = a.execute("Svc", "hang", ["r1"], { host: "remote" });
    call.catch(() => undefined);
    await kid.mark((m) => (m as { started?: string }).started === "r1");
    await killChild(kid);
    const error = await rejection(call);
    expect(error.code).toBe("NETWORK");
    expect(error.message).toMatch(/may have run/);
    expect(error.message).toMatch(/not repeated/);
    // A round trip to C: anything A had sent it has arrived by now.
    expect(await a.execute("Svc", "who", undefined, { host: "C" })).toBe("C");
    expect(store.started.C).toBeUndefined();
  });
});

describe("close()", () => {
  it("B tells A it is shutting down: B's calls in flight finish, every new call goes to C, none fails", async () => {
    let bCore: PluginCore | undefined;
    const { a } = await abc(async () => {
      bCore = await startNode({ hostname: "B", dir, plugins: [svc("B")] });
      return { port: bCore.port as number };
    });
    const b = bCore as PluginCore;
    const down: string[] = [];
    a.on("node:down", (node) => down.push(node.hostname));
    // Eight callers, one call after another, spread over B and C by least-in-flight.
    let stop = false;
    const answers: string[] = [];
    const callers = Array.from({ length: 8 }, async () => {
      while (!stop) answers.push(String(await a.execute("Svc", "slow", [5], { host: "remote" })));
    });
    await waitFor(() => (store.started.B ?? 0) >= 4, "calls to run on B");
    const closing = closeNode(b);
    // Streams started while B drains go to C too.
    const streamed = await collect(a.executeStream("Svc", "items", [2], { host: "remote" }));
    await closing;
    const bStarted = store.started.B ?? 0;
    const cBefore = store.started.C ?? 0;
    await waitFor(() => (store.started.C ?? 0) >= cBefore + 40, "C to serve 40 more calls");
    stop = true;
    await Promise.all(callers);
    expect(streamed).toEqual(["C0", "C1"]);
    expect(alive(a, "B")).toBe(false);
    expect(down).toEqual(["B"]);
    // Every call B began it finished, and none began there after it closed.
    expect(answers.filter((x) => x === "slow done on B")).toHaveLength(bStarted);
    expect(answers).toHaveLength(bStarted + (store.started.C ?? 0));
    expect(store.started.B).toBe(bStarted);
    // A names B's state when a call asks for it.
    const named = await rejection(a.execute("Svc", "who", undefined, { host: "B" }));
    expect(named.code).toBe("NO_NODE");
    expect(named.message).toMatch(/B" is shutting down/);
  });

  it("lets a remote call in flight finish and delivers its result", async () => {
    const names = Array.from({ length: 12 }, (_, i) => `B${i}`);
    const nodes = await Promise.all(
      names.map((name) => startNode({ hostname: name, dir, plugins: [svc(name)] })),
    );
    const a = await startNode({
      hostname: "A",
      dir,
      networking: { ...NO_HEARTBEAT, node_ips: nodes.map((b) => addr(b)) },
    });
    for (const name of names) await waitForNode(a, name);
    const outcomes: string[] = [];
    for (const [i, b] of nodes.entries()) {
      const name = names[i] as string;
      const call = a.execute("Svc", "slow", [50], { host: name });
      call.catch(() => undefined);
      await waitFor(() => store.started[name] === 1, `the call to start on ${name}`);
      await closeNode(b);
      outcomes.push(await call.then(String, (e: Error & { code?: string }) => `${e.code}`));
    }
    expect(outcomes).toEqual(names.map((name) => `slow done on ${name}`));
  });

  it("a call that finishes within the drain time is delivered, over HTTP too", async () => {
    const b = await startNode({ hostname: "B", dir, plugins: [svc("B")] });
    const response = fetch(`http://${addr(b)}/execute`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ plugin: "Svc", method: "held" }),
    });
    await waitFor(() => store.started.B === 1, "the call to start on B");
    const closing = closeNode(b);
    for (const release of store.release.splice(0)) release();
    await closing;
    const answer = await response;
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ result: "held done on B" });
  });

  it("is bounded by drain_timeout: a call that never ends fails, close() does not wait for it", async () => {
    const b = await startNode({
      hostname: "B",
      dir,
      plugins: [svc("B")],
      general: { drain_timeout: 0.3 },
    });
    const a = await startNode({ hostname: "A", dir, networking: { node_ips: [addr(b)] } });
    const call = a.execute("Svc", "hang", ["d1"], { host: "B" });
    call.catch(() => undefined);
    await waitFor(() => store.started.B === 1, "the call to start on B");
    const started = Date.now();
    await closeNode(b);
    expect(Date.now() - started).toBeLessThan(2000);
    const error = await rejection(call);
    expect(["UNLOADED", "NETWORK", "CLOSED"]).toContain(error.code);
    expect(Date.now() - started).toBeLessThan(2500);
  });

  it("refuses new calls once closing, with an error rather than a hang", async () => {
    const b = await startNode({ hostname: "B", dir, plugins: [svc("B")] });
    const a = await startNode({ hostname: "A", dir, networking: { node_ips: [addr(b)] } });
    const call = a.execute("Svc", "held", undefined, { host: "B" });
    call.catch(() => undefined);
    await waitFor(() => store.started.B === 1, "the call to start on B");
    const closing = closeNode(b);
    const late = await rejection(a.execute("Svc", "who", undefined, { host: "B", timeout: 2000 }));
    expect(["CLOSED", "PLUGIN_DISABLED", "UNLOADED", "NETWORK", "NO_NODE"]).toContain(late.code);
    expect(store.served.B).toBeUndefined();
    for (const release of store.release.splice(0)) release();
    await closing;
    await call.catch(() => undefined);
  });
});

describe("bind", () => {
  it('"0.0.0.0" without a secret and without allow_insecure is a ConfigError at construction', () => {
    let error: unknown;
    try {
      new PluginCore(nodeConfig({ hostname: "X", dir, networking: { bind: "0.0.0.0" } }));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toMatch(/secret/);
    expect((error as ConfigError).key).toBe("networking.bind");
  });

  it("allow_insecure: true allows it", async () => {
    const core = await startNode({
      hostname: "X",
      dir,
      networking: { bind: "0.0.0.0", allow_insecure: true },
    });
    const answer = await fetch(`http://127.0.0.1:${core.port}/ping`);
    expect(answer.status).toBe(200);
  });

  it("without a secret the node listens on 127.0.0.1 only", async () => {
    const core = await startNode({ hostname: "X", dir, plugins: [svc("X")] });
    expect((await fetch(`http://127.0.0.1:${core.port}/ping`)).status).toBe(200);
    const external = Object.values(networkInterfaces())
      .flat()
      .find((i) => i && i.family === "IPv4" && !i.internal);
    if (!external) return; // no other interface on this machine to try
    const error = await fetch(`http://${external.address}:${core.port}/ping`).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(error).toBeInstanceOf(Error);
  });
});
