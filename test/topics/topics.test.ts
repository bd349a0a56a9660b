/**
 * Topics and tags (the contract's "Topics" and "Tags"): publishing with `notify`, the one
 * handler that answers `requestTopic`, code and manifest subscriptions, wildcards, access
 * rules, subscribers that throw or hang, ordering, plugins disabled and reloaded, and
 * `findEndpointsByTag`; on one node, across two and three nodes over the channel, and over NATS.
 */
import { randomBytes } from "node:crypto";
import { connect } from "@nats-io/transport-node";
import { ConfigError, type PluginCore, type TopicInfo } from "aio-assistant-core";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { startNatsServer, stopNatsServers } from "../nats-support.js";
import {
  addr,
  cleanup,
  closeAll,
  collect,
  LOOPBACK,
  pluginDir,
  rejection,
  rep,
  shared,
  sharedRef,
  startNode,
  waitFor,
  waitForNode,
  writePlugins,
  writeTree,
} from "../net/helpers.js";

const STORE = `__aioTopics${process.pid}`;
interface Seen {
  by: string;
  value: unknown;
  info?: TopicInfo;
}
const store = shared(STORE, { seen: [] as Seen[] });
const S = sharedRef(STORE);

const open = { accessible_by_other_plugins: true };
const dir = pluginDir({
  Sensor: {
    body: `
  publish(topic: string, value: unknown) { return this.notify(topic, value); }
  ask(topic: string, value: unknown) { return this.requestTopic(topic, value); }
  tagged(tag: string) { return this.findEndpointsByTag(tag); }`,
    endpoints: [
      rep("publish", ["topic", "value"], open),
      rep("ask", ["topic", "value"], open),
      rep("tagged", ["tag"], open),
    ],
  },
  Collector: {
    body: `
  node = "?";
  onLoad(args: any) { this.node = args?.node ?? "?"; }
  onEnable() {
    this.subscribe("alerts/>", (value, info) => { ${S}.seen.push({ by: "Collector.code@" + this.node, value, info }); });
  }
  seen(value: number) { ${S}.seen.push({ by: "Collector@" + this.node, value }); }`,
    endpoints: [
      rep("seen", [{ name: "value", type: "int" }], {
        ...open,
        topic: "sensor/*/temperature",
        tags: ["log", "mcp"],
      }),
    ],
  },
  Private: {
    body: `seen(value: unknown) { ${S}.seen.push({ by: "Private", value }); }`,
    endpoints: [rep("seen", ["value"], { topic: "sensor/>", tags: ["log"] })],
  },
  Thrower: {
    body: `boom(value: unknown) { throw new Error("subscriber failed on purpose"); }`,
    endpoints: [rep("boom", ["value"], { ...open, topic: "sensor/>" })],
  },
  Hanger: {
    body: `async hang(value: unknown) { await new Promise(() => {}); }`,
    endpoints: [rep("hang", ["value"], { ...open, topic: "sensor/>" })],
  },
  Answerer: {
    body: `
  node = "?";
  onLoad(args: any) { this.node = args?.node ?? "?"; }
  square(x: number) { return { node: this.node, value: x * x }; }
  *count(n: number) { for (let i = 0; i < n; i++) yield i; }`,
    endpoints: [
      rep("square", [{ name: "x", type: "int" }], { ...open, topic: "math/square" }),
      rep("count", [{ name: "n", type: "int" }], { ...open, topic: "math/count" }),
    ],
  },
  Local: {
    remote: false,
    body: `
  onEnable() { this.subscribe("alerts/>", (value) => { ${S}.seen.push({ by: "Local.code", value }); }); }`,
    endpoints: [],
  },
});

const WORKER = {
  body: `
  got: unknown[] = [];
  override onEnable() { this.subscribe("wk/>", (args: unknown, info: any) => { this.got.push([info.topic, args]); }); }
  seen() { return this.got; }
  pub(topic: string, value: unknown) { return this.notify(topic, value); }
  pubSync(topic: string, value: unknown) { return this.notifySync(topic, value); }
  ask(topic: string, value: unknown) { return this.requestTopic(topic, value); }
  askSync(topic: string, value: unknown) { return this.requestTopicSync(topic, value); }
  async *askStream(topic: string, value: unknown) { yield* this.requestTopicStream(topic, value); }
  async tagged(tag: string) {
    return (await this.findEndpointsByTag(tag)).map((t) => t.plugin + "." + t.endpoint.access_name);
  }`,
  endpoints: [
    rep("seen"),
    rep("pub", ["topic", "value"]),
    rep("pubSync", ["topic", "value"]),
    rep("ask", ["topic", "value"]),
    rep("askSync", ["topic", "value"]),
    rep("askStream", ["topic", "value"]),
    rep("tagged", ["tag"]),
  ],
};
writePlugins(dir, { WorkerTopics: WORKER });

const ALL = ["Sensor", "Collector", "Private", "Thrower", "Hanger", "Answerer", "Local"];
const seenBy = (by: string) => store.seen.filter((s) => s.by === by).map((s) => s.value);

beforeEach(() => {
  store.seen = [];
});
afterEach(closeAll);
afterAll(async () => {
  await cleanup();
  await stopNatsServers();
});

const local = (plugins: Array<string | { name: string; arguments?: unknown }> = ALL) =>
  startNode({
    hostname: "solo",
    dir,
    plugins,
    networking: { enabled: false },
    general: { drain_timeout: 0.1 },
  });

describe("topics on one node", () => {
  it("notify hands the publish to every matching subscriber and resolves to how many took it", async () => {
    const core = await local();
    const count = await core.notify("sensor/kitchen/temperature", 21);
    // Collector (one segment wildcard), Private (open to the application), Thrower, Hanger.
    expect(count).toBe(4);
    await waitFor(() => seenBy("Collector@?").length === 1, "Collector to get it");
    expect(seenBy("Private")).toEqual([21]);
    // The hanging and the throwing subscriber hold up nobody: the next publish goes through.
    expect(await core.notify("sensor/kitchen/humidity", 50)).toBe(3);
    await waitFor(() => seenBy("Private").length === 2, "the second publish");
    expect(seenBy("Collector@?")).toEqual([21]);
  });

  it("wildcards: * is one segment, > one or more at the end", async () => {
    const core = await local();
    expect(await core.notify("sensor/a/b/temperature", 1)).toBe(3); // not Collector's */temperature
    expect(await core.notify("sensor", 1)).toBe(0); // ">" needs at least one more segment
    expect(await core.notify("other/kitchen/temperature", 1)).toBe(0);
    const got: string[] = [];
    core.subscribe("a/*/c", (_args, info) => got.push(info.topic));
    core.subscribe("a/>", (_args, info) => got.push(`>${info.topic}`));
    expect(await core.notify("a/b/c", null)).toBe(2);
    expect(await core.notify("a/b/c/d", null)).toBe(1);
    await waitFor(() => got.length === 3, "three deliveries");
    expect(got).toEqual(["a/b/c", ">a/b/c", ">a/b/c/d"]);
  });

  it("a plugin publishing reaches only what is open to it (accessible_by_other_plugins)", async () => {
    const core = await local();
    // Private keeps its endpoint to itself; Thrower and Hanger are open; Collector is open.
    expect(await core.execute("Sensor", "publish", ["sensor/x/temperature", 5])).toBe(3);
    await waitFor(() => seenBy("Collector@?").length === 1, "Collector");
    expect(seenBy("Private")).toEqual([]);
  });

  it("a subscriber that refuses the arguments is not counted; its type checks are execute's", async () => {
    const core = await local();
    // Collector.seen declares an int; Private, Thrower and Hanger take anything.
    expect(await core.notify("sensor/x/temperature", "warm")).toBe(3);
  });

  it("a code subscription gets the arguments and who published; unsubscribe ends it", async () => {
    const core = await local();
    const got: Array<{ args: unknown; info: TopicInfo }> = [];
    const subscription = core.subscribe("alerts/*", (args, info) => {
      got.push({ args, info });
    });
    expect(subscription.pattern).toBe("alerts/*");
    // The application's subscription, Collector's code subscription and Local's.
    expect(await core.execute("Sensor", "publish", ["alerts/door", { open: true }])).toBe(3);
    await waitFor(() => got.length === 1, "the delivery");
    expect(got[0]).toEqual({
      args: { open: true },
      info: { topic: "alerts/door", publisherHost: "solo", publisher: "Sensor" },
    });
    subscription.unsubscribe();
    subscription.unsubscribe();
    expect(await core.notify("alerts/door", 1)).toBe(2);
  });

  it("deliveries from one publisher to one subscriber keep their order", async () => {
    const core = await local(["Collector"]);
    const got: number[] = [];
    core.subscribe("order/>", async (args) => {
      // An async subscriber that takes longer for early items still receives them in order.
      got.push(args as number);
    });
    const counts = await Promise.all(
      Array.from({ length: 500 }, (_, i) => core.notify("order/x", i)),
    );
    expect(counts.every((n) => n === 1)).toBe(true);
    await waitFor(() => got.length === 500, "every delivery");
    expect(got).toEqual(Array.from({ length: 500 }, (_, i) => i));
  });

  it("a subscriber that throws is logged, never thrown to the publisher, and others still get it", async () => {
    const core = await local(["Thrower", "Collector"]);
    const count = await core.notify("sensor/kitchen/temperature", 3);
    expect(count).toBe(2);
    await waitFor(() => seenBy("Collector@?").length === 1, "Collector");
  });

  it("requestTopic: one handler answers; a stream handler answers requestTopicStream; none is NO_HANDLER", async () => {
    const core = await local();
    expect(await core.requestTopic("math/square", 7)).toEqual({ node: "?", value: 49 });
    expect(await core.requestTopic("math/square", { x: 3 })).toEqual({ node: "?", value: 9 });
    expect(await collect(core.requestTopicStream("math/count", 3))).toEqual([0, 1, 2]);
    expect(core.requestTopicSync("math/square", 4)).toEqual({ node: "?", value: 16 });
    expect([...core.requestTopicStreamSync("math/count", 2)]).toEqual([0, 1]);
    const none = await rejection(core.requestTopic("math/cube", 2));
    expect(none.code).toBe("NO_HANDLER");
    expect(none.message).toContain('"math/cube"');
    const wrongArgs = await rejection(core.requestTopic("math/square", "seven"));
    expect(wrongArgs.code).toBe("INVALID_ARGUMENTS");
    // A code subscription answers too, with what its handler returns.
    core.subscribe("echo/*", (args, info) => ({ echoed: args, topic: info.topic }));
    expect(await core.requestTopic("echo/x", 1)).toEqual({ echoed: 1, topic: "echo/x" });
  });

  it("a code handler that throws is PLUGIN_ERROR, and an async one WOULD_DEADLOCK, for every blocking variant", async () => {
    const core = await local();
    core.subscribe("broken/*", () => {
      throw new Error("handler broke");
    });
    core.subscribe("later/*", async () => 1);
    for (const request of [
      () => core.requestTopicSync("broken/x", 1),
      () => [...core.requestTopicStreamSync("broken/x", 1)],
    ]) {
      expect(request).toThrow(expect.objectContaining({ code: "PLUGIN_ERROR" }));
      expect(request).toThrow(/handler broke/);
    }
    expect(() => core.requestTopicSync("later/x", 1)).toThrow(
      expect.objectContaining({ code: "WOULD_DEADLOCK" }),
    );
    expect(() => [...core.requestTopicStreamSync("later/x", 1)]).toThrow(
      /await requestTopicStream\(\)/,
    );
    expect((await rejection(core.requestTopic("broken/x", 1))).code).toBe("PLUGIN_ERROR");
    expect((await rejection(collect(core.requestTopicStream("broken/x", 1)))).code).toBe(
      "PLUGIN_ERROR",
    );
  });

  it("a malformed topic or pattern is INVALID_ARGUMENTS naming what is wrong", async () => {
    const core = await local(["Collector"]);
    expect((await rejection(core.notify("sensor/*/x", 1))).message).toMatch(/wildcard/);
    expect((await rejection(core.notify("a//b", 1))).message).toMatch(/empty segment/);
    expect(() => core.subscribe("a/>/b", () => undefined)).toThrow(/last segment/);
    expect(() => core.subscribe("a/b*", () => undefined)).toThrow(/whole segment/);
  });

  it("a malformed topic: in plugin_config.yml is a ConfigError with file and line", async () => {
    const bad = pluginDir({
      Bad: { body: `x() {}`, endpoints: [rep("x", [], { topic: "a/>/b" })] },
    });
    writeTree(bad, {
      "plugins/Bad/plugin_config.yml": `version: 1.0.0\nendpoints:\n  - internal_name: x\n    topic: "a/>/b"\n`,
    });
    const core = await startNode({
      hostname: "bad",
      dir: bad,
      plugins: ["Bad"],
      networking: { enabled: false },
    });
    const info = core.getPluginInfo("Bad");
    expect(info?.state).toBe("failed");
    expect(info?.errorCode).toBe("CONFIG_INVALID");
    expect(info?.error).toMatch(/plugin_config\.yml:4/);
    expect(info?.error).toMatch(/">" may only be the last segment/);
    expect(ConfigError).toBeDefined();
  });

  it("subscriptions end with the plugin and come back when it is enabled or reloaded", async () => {
    const core = await local(["Collector", "Sensor"]);
    expect(await core.notify("alerts/a", 1)).toBe(1);
    await core.disablePlugin("Collector");
    expect(await core.notify("alerts/a", 1)).toBe(0);
    expect(await core.notify("sensor/k/temperature", 1)).toBe(0);
    await core.enablePlugin("Collector");
    // onEnable subscribed again: the old subscription of the same instance is still there too.
    expect(await core.notify("sensor/k/temperature", 1)).toBe(1);
    await core.reloadPlugin("Collector");
    // The reloaded instance subscribed once; the old instance's subscriptions ended.
    expect(await core.notify("alerts/a", 1)).toBe(1);
    await core.popPlugin("Collector");
    expect(await core.notify("alerts/a", 1)).toBe(0);
  });

  it("findEndpointsByTag lists the endpoints with the tag that the caller may call", async () => {
    const core = await local();
    const forApp = await core.findEndpointsByTag("log");
    expect(forApp.map((e) => `${e.plugin}.${e.endpoint.access_name}`).sort()).toEqual([
      "Collector.seen",
      "Private.seen",
    ]);
    expect(forApp[0]).toMatchObject({ hostname: "solo", endpoint: { tags: expect.any(Array) } });
    const forSensor = (await core.execute("Sensor", "tagged", ["log"])) as Array<{
      plugin: string;
    }>;
    expect(forSensor.map((e) => e.plugin)).toEqual(["Collector"]);
    expect(await core.findEndpointsByTag("nothing")).toEqual([]);
  });
});

describe("topics from a plugin in a worker thread", () => {
  it("subscribes, publishes, asks (blocking too) and searches by tag as an in-process plugin does", async () => {
    const core = await local([
      { name: "WorkerTopics", isolation: "worker" } as never,
      "Collector",
      "Answerer",
    ]);
    expect(await core.notify("wk/a", 1)).toBe(1);
    await waitFor(
      async () => ((await core.execute("WorkerTopics", "seen")) as unknown[]).length === 1,
      "the worker's handler",
    );
    expect(await core.execute("WorkerTopics", "seen")).toEqual([["wk/a", 1]]);
    expect(await core.execute("WorkerTopics", "pub", ["sensor/w/temperature", 5])).toBe(1);
    expect(await core.execute("WorkerTopics", "pubSync", ["sensor/w/temperature", 6])).toBe(1);
    await waitFor(() => seenBy("Collector@?").length === 2, "Collector's deliveries");
    expect(await core.execute("WorkerTopics", "ask", ["math/square", 3])).toEqual({
      node: "?",
      value: 9,
    });
    expect(await core.execute("WorkerTopics", "askSync", ["math/square", 4])).toEqual({
      node: "?",
      value: 16,
    });
    expect(
      await collect(core.executeStream("WorkerTopics", "askStream", ["math/count", 2])),
    ).toEqual([0, 1]);
    expect(await core.execute("WorkerTopics", "tagged", ["mcp"])).toEqual(["Collector.seen"]);
    await core.reloadPlugin("WorkerTopics");
    // The new instance subscribed once; the old one's subscription ended.
    expect(await core.notify("wk/b", 2)).toBe(1);
  });
});

describe("topics across nodes over the channel", () => {
  const pair = async () => {
    const b = await startNode({
      hostname: "B",
      dir,
      plugins: [
        { name: "Collector", arguments: { node: "B" } },
        { name: "Answerer", arguments: { node: "B" } },
        "Local",
      ],
      networking: LOOPBACK,
    });
    const a = await startNode({
      hostname: "A",
      dir,
      plugins: ["Sensor"],
      networking: { ...LOOPBACK, node_ips: [addr(b)] },
    });
    await waitForNode(a, "B", (n) => n.plugins.includes("Answerer"));
    return { a, b };
  };

  it("a publish reaches the other node's subscribers once, and the count includes them", async () => {
    const { a } = await pair();
    expect(await a.notify("sensor/hall/temperature", 19)).toBe(1);
    expect(await a.execute("Sensor", "publish", ["alerts/smoke", "!"])).toBe(1);
    await waitFor(() => store.seen.length === 2, "both deliveries on B");
    expect(seenBy("Collector@B")).toEqual([19]);
    // Local is not remote: its code subscription hears only its own node.
    expect(seenBy("Local.code")).toEqual([]);
    const code = store.seen.find((s) => s.by === "Collector.code@B");
    expect(code?.info).toEqual({ topic: "alerts/smoke", publisherHost: "A", publisher: "Sensor" });
  });

  it("the application's code subscription on one node hears every node's publishes", async () => {
    const { a, b } = await pair();
    const got: TopicInfo[] = [];
    b.subscribe("news/>", (_args, info) => {
      got.push(info);
    });
    // A learns of the new subscription from B's next /info.
    await waitFor(async () => (await a.notify("news/today", 1)) === 1, "A to see B's subscription");
    expect(got.at(-1)).toEqual({
      topic: "news/today",
      publisherHost: "A",
      publisher: "application",
    });
  });

  it("requestTopic and requestTopicStream go to the node with a handler; none anywhere is NO_HANDLER", async () => {
    const { a } = await pair();
    expect(await a.requestTopic("math/square", 6)).toEqual({ node: "B", value: 36 });
    expect(await a.execute("Sensor", "ask", ["math/square", 5])).toEqual({ node: "B", value: 25 });
    expect(await collect(a.requestTopicStream("math/count", 4))).toEqual([0, 1, 2, 3]);
    expect((await rejection(a.requestTopic("math/cube", 1))).code).toBe("NO_HANDLER");
    expect((await rejection(a.requestTopic("math/square", 1, { host: "local" }))).code).toBe(
      "NO_HANDLER",
    );
    expect((await rejection(a.requestTopic("math/square", "x"))).code).toBe("INVALID_ARGUMENTS");
  });

  it("three nodes: each gets one message per publish; host narrows who is told", async () => {
    const { a, b } = await pair();
    const c = await startNode({
      hostname: "C",
      dir,
      plugins: [{ name: "Collector", arguments: { node: "C" } }],
      networking: { ...LOOPBACK, node_ips: [addr(b)] },
    });
    await waitForNode(a, "C", (n) => n.plugins.includes("Collector"));
    expect(await a.notify("sensor/x/temperature", 1)).toBe(2);
    expect(await a.notify("sensor/x/temperature", 2, { host: "C" })).toBe(1);
    expect(await a.notify("sensor/x/temperature", 3, { host: "local" })).toBe(0);
    await waitFor(() => store.seen.length === 3, "three deliveries");
    expect(seenBy("Collector@B")).toEqual([1]);
    expect(seenBy("Collector@C")).toEqual([1, 2]);
    expect(c.hostname).toBe("C");
    expect(b.hostname).toBe("B");
  });

  it("access rules: allowed_nodes and accessible_by_other_plugins keep another node's publish out", async () => {
    const b = await startNode({
      hostname: "B",
      dir,
      plugins: [
        { name: "Collector", arguments: { node: "B" }, allowed_nodes: ["Z"] },
        { name: "Private" },
      ],
      networking: LOOPBACK,
    });
    const a = await startNode({
      hostname: "A",
      dir,
      plugins: ["Sensor"],
      networking: { ...LOOPBACK, node_ips: [addr(b)] },
    });
    await waitForNode(a, "B");
    // Collector admits only node Z: only Private takes A's publish.
    expect(await a.notify("sensor/x/temperature", 1)).toBe(1);
    // A plugin's publish: Private keeps its endpoint to itself (accessible_by_other_plugins).
    expect(await a.execute("Sensor", "publish", ["sensor/x/temperature", 2])).toBe(0);
    expect(await b.notify("sensor/x/temperature", 3)).toBe(2);
    await waitFor(() => seenBy("Private").length === 2, "Private's deliveries");
    expect(seenBy("Private")).toEqual([1, 3]);
  });

  it("deliveries from one publisher to a subscriber on another node keep their order", async () => {
    const { a, b } = await pair();
    const got: number[] = [];
    b.subscribe("order/*", (args) => {
      got.push(args as number);
    });
    await waitFor(async () => (await a.notify("order/x", -1)) === 1, "A to see the subscription");
    got.length = 0;
    const counts = await Promise.all(Array.from({ length: 300 }, (_, i) => a.notify("order/x", i)));
    expect(counts.every((n) => n === 1)).toBe(true);
    await waitFor(() => got.length === 300, "every delivery");
    expect(got).toEqual(Array.from({ length: 300 }, (_, i) => i));
  });

  it("a disabled plugin's subscriptions stop being offered to other nodes", async () => {
    const { a, b } = await pair();
    expect(await a.notify("sensor/x/temperature", 1)).toBe(1);
    await b.disablePlugin("Collector");
    await waitFor(
      async () => (await a.notify("sensor/x/temperature", 1)) === 0,
      "A to see Collector gone",
    );
  });

  it("findEndpointsByTag lists other nodes' endpoints from what they sent, no round trip", async () => {
    const { a } = await pair();
    const found = await a.findEndpointsByTag("mcp");
    expect(found).toEqual([
      expect.objectContaining({
        hostname: "B",
        plugin: "Collector",
        endpoint: expect.objectContaining({ access_name: "seen", topic: "sensor/*/temperature" }),
      }),
    ]);
    expect(found[0]?.endpoint.arguments).toEqual([
      expect.objectContaining({ name: "value", type: "int" }),
    ]);
  });
});

describe("topics over NATS", () => {
  const natsNodes = async (secret = `topics-${randomBytes(16).toString("hex")}`) => {
    const server = await startNatsServer();
    const prefix = `t${randomBytes(4).toString("hex")}`;
    const networking = {
      ...LOOPBACK,
      secret,
      transport: "nats",
      nats: { servers: [server.url], subject_prefix: prefix },
    } as never;
    const b: PluginCore = await startNode({
      hostname: "B",
      dir,
      plugins: [
        { name: "Collector", arguments: { node: "B" } },
        { name: "Answerer", arguments: { node: "B" } },
      ],
      networking,
    });
    const c: PluginCore = await startNode({
      hostname: "C",
      dir,
      plugins: [{ name: "Collector", arguments: { node: "C" } }],
      networking,
    });
    const a = await startNode({ hostname: "A", dir, plugins: ["Sensor"], networking });
    await waitForNode(a, "B", (n) => n.plugins.includes("Answerer"));
    await waitForNode(a, "C", (n) => n.plugins.includes("Collector"));
    return { a, b, c, server, prefix };
  };

  it("a publish goes out once on its NATS subject and reaches every subscribing node; requests cross", async () => {
    const { a, b, server, prefix } = await natsNodes();
    const watcher = await connect({ servers: server.url });
    const subjects: string[] = [];
    watcher.subscribe(`${prefix}.topic.>`, {
      callback: (_e, m) => {
        subjects.push(m.subject);
      },
    });
    await watcher.flush();
    expect(await a.notify("sensor/x.y/temperature", 7)).toBe(2);
    await waitFor(() => store.seen.length === 2, "B's and C's deliveries");
    expect(seenBy("Collector@B")).toEqual([7]);
    expect(seenBy("Collector@C")).toEqual([7]);
    // One message on the topic's subject (the dot in a segment escaped), not one per node.
    expect(subjects).toEqual([`${prefix}.topic.sensor.x%2Ey.temperature`]);
    await watcher.close();
    expect(await a.notify("sensor/x/temperature", 8, { host: "B" })).toBe(1);
    expect(await a.requestTopic("math/square", 9)).toEqual({ node: "B", value: 81 });
    expect(await collect(a.requestTopicStream("math/count", 2))).toEqual([0, 1]);
    // An application subscription on B is a NATS subscription too, for A's next publish.
    const got: TopicInfo[] = [];
    b.subscribe("alerts/*", (_args, info) => {
      got.push(info);
    });
    await waitFor(async () => (await a.notify("alerts/fire", 1)) === 3, "B's new subscription");
    await waitFor(() => got.length > 0, "B's delivery");
    expect(got[0]).toEqual({ topic: "alerts/fire", publisherHost: "A", publisher: "application" });
  });

  it("a node with two patterns matching one topic gets it once; a publish without the secret is dropped", async () => {
    const { a, b, server, prefix } = await natsNodes();
    b.subscribe("sensor/>", () => undefined);
    await waitFor(
      async () => (await a.notify("sensor/k/temperature", 1)) === 3,
      "A to see B's second subscription",
    );
    // `notify` resolves once the counts are in, which promises no more than that the deliveries
    // were handed over. One more publish, delivered behind those of the tries above (one
    // publisher's deliveries to a node keep their order), marks their end on both nodes.
    expect(await a.notify("sensor/k/temperature", 0)).toBe(3);
    await waitFor(
      () => seenBy("Collector@B").includes(0) && seenBy("Collector@C").includes(0),
      "the deliveries of the tries",
    );
    store.seen = [];
    expect(await a.notify("sensor/k/temperature", 2)).toBe(3);
    await waitFor(() => store.seen.length === 2, "the deliveries");
    expect(seenBy("Collector@B")).toEqual([2]);
    const raw = await connect({ servers: server.url });
    raw.publish(
      `${prefix}.topic.sensor.k.temperature`,
      JSON.stringify({
        topic: "sensor/k/temperature",
        args: 666,
        author_host: "X",
        instance: "x",
        id: "1",
      }),
    );
    await raw.flush();
    await raw.close();
    // A round trip through both: anything the raw client sent has arrived by now.
    expect(await a.notify("sensor/k/temperature", 3)).toBe(3);
    await waitFor(() => store.seen.length === 4, "the last deliveries");
    expect(store.seen.map((s) => s.value)).not.toContain(666);
  });
});
