/**
 * Nodes in separate processes (fixtures/node-proc.mjs): remote calls and streams between
 * processes, and a node killed with SIGKILL mid-call and mid-stream, which must end the
 * caller's call quickly with NETWORK, never hang. SIGSTOP/SIGCONT shows a node that stops
 * answering going down and coming back as the same instance.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NetworkRequestError, type PluginCore, type RequestError } from "aio-assistant-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type ChildNode,
  cleanup,
  closeAll,
  collect,
  killChild,
  markCode,
  nodeConfig,
  nodeEvent,
  nodeNamed,
  pluginDir,
  rejection,
  rep,
  SLEEP,
  spawnNode,
  startNode,
  waitFor,
  waitForNode,
} from "./helpers.js";

const dir = pluginDir({
  Remote: {
    header: SLEEP,
    body: `
    who() { return "pid " + process.pid; }
    add(a: number, b: number) { return a + b; }
    fail() { throw new RangeError("child says no"); }
    *gen(n: number) { for (let i = 0; i < n; i++) yield { i }; }
    async hang(tag: string) {
      ${markCode(`{ started: tag }`)}
      await new Promise(() => {});
    }
    *endless(tag: string) {
      try { for (let i = 0; ; i++) yield i; }
      finally { ${markCode(`{ closed: tag }`)} }
    }
    async die() {
      setTimeout(() => process.kill(process.pid, "SIGKILL"), 30);
      await new Promise(() => {});
    }
    async *die_streaming(marker: string) {
      yield 1;
      yield 2;
      // Dies once the caller has both items (it writes \`marker\`), never before they reach it.
      const { existsSync } = await import("node:fs");
      while (!existsSync(marker)) await sleep(5);
      process.kill(process.pid, "SIGKILL");
      await new Promise(() => {});
    }
    async *drip(tag: string) {
      for (let i = 0; ; i++) {
        if (i === 5) ${markCode(`{ streamed: tag }`)}
        yield i;
        await sleep(5);
      }
    }`,
    endpoints: [
      rep("who"),
      rep("add", [
        { name: "a", type: "int" },
        { name: "b", type: "int" },
      ]),
      rep("fail"),
      rep("gen", [{ name: "n", type: "int" }]),
      rep("hang", ["tag"]),
      rep("drip", ["tag"]),
      rep("endless", ["tag"]),
      rep("die"),
      rep("die_streaming", ["marker"]),
    ],
  },
});

afterAll(cleanup);

async function pair(hostname = "K"): Promise<{ child: ChildNode; a: PluginCore }> {
  const child = await spawnNode(
    nodeConfig({ hostname, dir, plugins: ["Remote"], general: { drain_timeout: 0.2 } }),
  );
  const a = await startNode({
    hostname: "A",
    dir,
    networking: { node_ips: [`127.0.0.1:${child.port}`] },
  });
  await waitForNode(a, hostname);
  return { child, a };
}

describe("calls between processes (one child for all)", () => {
  let child: ChildNode;
  let a: PluginCore;
  beforeAll(async () => {
    ({ child, a } = await pair());
  });
  afterAll(closeAll);

  it("calls, streams and errors cross the process boundary", async () => {
    expect(await a.execute("Remote", "who")).toBe(`pid ${child.pid}`);
    expect(await a.execute("Remote", "add", { a: 40, b: 2 }, { host: "K" })).toBe(42);
    const items = await collect(a.executeStream("Remote", "gen", [1000], { host: "remote" }));
    expect(items).toHaveLength(1000);
    expect(items[999]).toEqual({ i: 999 });
    const error = await rejection(a.execute("Remote", "fail", undefined, { host: "K" }));
    expect(error.code).toBe("PLUGIN_ERROR");
    expect(error.errorName).toBe("RangeError");
    expect(error.message).toContain("child says no");
    const bad = await rejection(a.execute("Remote", "add", ["x", 1], { host: "K" }));
    expect(bad.code).toBe("INVALID_ARGUMENTS");
    // The child knows A too (it contacted A back).
    expect(await a.execute("Remote", "who", undefined, { host: "K", timeout: 2000 })).toBe(
      `pid ${child.pid}`,
    );
  });

  it("executeSync and executeStreamSync work from the main thread", async () => {
    expect(a.executeSync("Remote", "add", [2, 3], { host: "K" })).toBe(5);
    expect(a.executeSync("Remote", "who")).toBe(`pid ${child.pid}`);
    expect([...a.executeStreamSync("Remote", "gen", [3], { host: "K" })]).toEqual([
      { i: 0 },
      { i: 1 },
      { i: 2 },
    ]);
    let error: unknown;
    try {
      a.executeSync("Remote", "fail", undefined, { host: "K" });
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: "PLUGIN_ERROR" });
    expect((error as Error).message).toContain("child says no");
  });

  it("the wrong kind of call names the method of the caller's own family, as a local call does", () => {
    const thrown = (work: () => unknown) => {
      try {
        work();
      } catch (error) {
        return error as RequestError;
      }
      throw new Error("did not throw");
    };
    const stream = thrown(() => [...a.executeStreamSync("Remote", "add", [2, 3], { host: "K" })]);
    expect(stream.code).toBe("WRONG_KIND");
    expect(stream.message).toMatch(/is a function; call it with executeSync\(\)$/);
    expect(stream.host).toBe("K");
    const plain = thrown(() => a.executeSync("Remote", "gen", [3], { host: "K" }));
    expect(plain.message).toMatch(/is a generator; call it with executeStreamSync\(\)$/);
  });

  it("a break after some items closes the remote generator", async () => {
    let n = 0;
    for (const _ of a.executeStreamSync("Remote", "endless", ["b3"], { host: "K" })) {
      if (++n === 3) break;
    }
    await child.mark((m) => (m as { closed?: string }).closed === "b3", 5000);
  });

  it("a break after the first item closes the remote generator", async () => {
    for (const item of a.executeStreamSync("Remote", "endless", ["b1"], { host: "K" })) {
      expect(item).toBe(0);
      break;
    }
    await child.mark((m) => (m as { closed?: string }).closed === "b1", 5000);
  });
});

describe("SIGKILL", () => {
  afterEach(closeAll);

  it("mid-call: every call in flight fails with NETWORK quickly, saying it may have run", async () => {
    const { child, a } = await pair();
    const tags = ["m1", "m2", "m3"];
    const calls = tags.map((tag) => a.execute("Remote", "hang", [tag], { host: "K" }));
    for (const call of calls) call.catch(() => undefined);
    for (const tag of tags) await child.mark((m) => (m as { started?: string }).started === tag);
    const killedAt = Date.now();
    await killChild(child);
    for (const call of calls) {
      const error = await rejection(call);
      expect(error).toBeInstanceOf(NetworkRequestError);
      expect(error.code).toBe("NETWORK");
      expect(error.message).toMatch(/may have run/);
      expect(error.plugin).toBe("Remote");
      expect(error.method).toBe("hang");
    }
    expect(Date.now() - killedAt).toBeLessThan(2000);
  });

  it("mid-stream: the items so far, then NETWORK quickly", async () => {
    const { child, a } = await pair();
    const got: number[] = [];
    let killedAt = 0;
    const error = await rejection(async () => {
      for await (const item of a.executeStream<number>("Remote", "drip", ["s1"], { host: "K" })) {
        got.push(item);
        if (got.length === 5) {
          await child.mark((m) => (m as { streamed?: string }).streamed === "s1");
          killedAt = Date.now();
          await killChild(child);
        }
      }
    });
    expect(Date.now() - killedAt).toBeLessThan(2000);
    expect(error.code).toBe("NETWORK");
    expect(error).toBeInstanceOf(NetworkRequestError);
    expect(got.length).toBeGreaterThanOrEqual(5);
    expect(got).toEqual(Array.from({ length: got.length }, (_, i) => i));
  });

  it("afterwards: node:down, then calls naming the node fail at once (NO_NODE), never hang", async () => {
    const { child, a } = await pair();
    await a.execute("Remote", "who", undefined, { host: "K" });
    const down = nodeEvent(a, "node:down", "K");
    await killChild(child);
    // Before it is marked down a call cannot be delivered: NETWORK, quickly.
    const early = Date.now();
    const before = await rejection(a.execute("Remote", "who", undefined, { host: "K" }));
    expect(["NETWORK", "NO_NODE"]).toContain(before.code);
    expect(Date.now() - early).toBeLessThan(4000);
    await down;
    expect(nodeNamed(a, "K")?.alive).toBe(false);
    const after = await rejection(a.execute("Remote", "who", undefined, { host: "K" }));
    expect(after.code).toBe("NO_NODE");
    const stream = await rejection(collect(a.executeStream("Remote", "gen", [3], { host: "K" })));
    expect(stream.code).toBe("NO_NODE");
    expect((await rejection(a.execute("Remote", "who"))).code).toBe("PLUGIN_NOT_FOUND");
  });
});

describe("SIGSTOP / SIGCONT", () => {
  afterEach(closeAll);

  it("a node that stops answering is marked down, and up again (same instance) when it answers", async () => {
    const { child, a } = await pair();
    expect(await a.execute("Remote", "who", undefined, { host: "K" })).toBe(`pid ${child.pid}`);
    const down = nodeEvent(a, "node:down", "K");
    child.proc.kill("SIGSTOP");
    try {
      await down;
      // A call to a silent node with a timeout ends on time.
      const timed = await rejection(
        a.execute("Remote", "who", undefined, { host: "remote", timeout: 200 }),
      );
      expect(["TIMEOUT", "NO_NODE"]).toContain(timed.code);
    } finally {
      child.proc.kill("SIGCONT");
    }
    await nodeEvent(a, "node:up", "K");
    await waitFor(() => nodeNamed(a, "K")?.alive, "K alive again");
    expect(a.nodes().filter((n) => n.hostname === "K")).toHaveLength(1);
    expect(await a.execute("Remote", "who", undefined, { host: "K" })).toBe(`pid ${child.pid}`);
  });

  it("a call in flight to a node that freezes ends with TIMEOUT, not a hang", async () => {
    const { child, a } = await pair();
    await a.execute("Remote", "who", undefined, { host: "K" });
    child.proc.kill("SIGSTOP");
    try {
      const started = Date.now();
      const error = await rejection(
        a.execute("Remote", "add", [1, 2], { host: "K", timeout: 300 }),
      );
      expect(["TIMEOUT", "NO_NODE"]).toContain(error.code);
      expect(Date.now() - started).toBeLessThan(1500);
    } finally {
      child.proc.kill("SIGCONT");
    }
  });
});

describe("blocking calls to a node that dies", () => {
  afterEach(closeAll);

  it("a node killed during a blocking call: NETWORK, no hang", async () => {
    const { child, a } = await pair();
    const started = Date.now();
    let error: unknown;
    try {
      a.executeSync("Remote", "die", undefined, { host: "K" });
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: "NETWORK" });
    expect((error as Error).message).toMatch(/may have run/);
    expect(Date.now() - started).toBeLessThan(3000);
    await child.exited;
  });

  it("a node killed during a blocking stream: the items so far, then NETWORK, no hang", async () => {
    const { child, a } = await pair();
    const marker = join(mkdtempSync(join(tmpdir(), "aio-die-")), "got-two");
    const got: unknown[] = [];
    let error: unknown;
    try {
      for (const item of a.executeStreamSync("Remote", "die_streaming", [marker], { host: "K" })) {
        got.push(item);
        if (got.length === 2) writeFileSync(marker, "");
      }
    } catch (e) {
      error = e;
    }
    expect(error, String((error as Error)?.stack ?? error)).toMatchObject({ code: "NETWORK" });
    expect(got).toEqual([1, 2]);
    await child.exited;
  });
});
