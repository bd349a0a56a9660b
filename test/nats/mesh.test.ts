/**
 * Nodes over NATS (`networking.transport: nats`), against real nats-server processes: they
 * find each other with no node_ips, call and stream through NATS as over the channel, keep
 * apart by subject prefix, refuse what lacks the secret, and ride out a NATS restart.
 */
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { connect, headers } from "@nats-io/transport-node";
import type { PluginCore } from "aio-assistant-core";
import { afterAll, describe, expect, it } from "vitest";
import {
  natsOperator,
  startNatsCluster,
  startNatsServer,
  stopNatsServers,
} from "../nats-support.js";
import {
  cleanup,
  closeNode,
  collect,
  killChild,
  LOOPBACK,
  nodeConfig,
  nodeEvent,
  pluginDir,
  rejection,
  rep,
  SLEEP,
  spawnNode,
  startNode,
  waitForNode,
} from "../net/helpers.js";
import { H_ANSWER, mac, readLog, sha256Hex, signHeaders } from "../security/helpers.js";
import { tempDir, waitFor } from "../support.js";

const SECRET = `nats-${randomBytes(24).toString("hex")}`;

const dir = pluginDir({
  Private: {
    remote: false,
    body: `who() { return "private"; }`,
    endpoints: [rep("who")],
  },
  Picky: {
    body: `who() { return "picky"; }`,
    endpoints: [rep("who")],
  },
  Svc: {
    header: SLEEP,
    body: `
  node = "?";
  onLoad(args: any) { this.node = args?.node ?? "?"; }
  who() { return this.node; }
  add(a: number, b: number) { return a + b; }
  *items(n: number) { for (let i = 0; i < n; i++) yield this.node + i; }
  async *failing() { yield 1; throw new Error("broke mid-stream"); }
  async slow(ms: number) { await sleep(ms); return "done"; }`,
    endpoints: [
      rep("who", [], { accessible_by_other_plugins: true }),
      rep("add", [
        { name: "a", type: "int" },
        { name: "b", type: "int" },
      ]),
      rep("items", [{ name: "n", type: "int" }]),
      rep("failing"),
      rep("slow", [{ name: "ms", type: "int" }]),
    ],
  },
  Relay: {
    body: `
  ask(host: string) { return this.execute("Svc", "who", undefined, { host }); }
  tell(topic: string) { return this.notify(topic, "from S"); }`,
    endpoints: [
      rep("ask", [{ name: "host", type: "str" }]),
      rep("tell", [{ name: "topic", type: "str" }]),
    ],
  },
});

/** Preloaded into a child node to set its clock wrong (AIO_TEST_CLOCK_SKEW_MS). */
const CLOCK_SKEW = fileURLToPath(new URL("../fixtures/clock-skew.mjs", import.meta.url));

afterAll(async () => {
  await cleanup();
  await stopNatsServers();
});

/** Waits until `core` knows `hostname` alive with its Svc plugin (loaded after it is found). */
const serving = (core: PluginCore, hostname: string) =>
  waitForNode(core, hostname, (node) => node.plugins.includes("Svc"));

/** A node's networking on the NATS `servers`, with the mesh's secret unless `extra` says. */
function natsNetworking(servers: string[], extra: Record<string, unknown> = {}) {
  return {
    ...LOOPBACK,
    secret: SECRET,
    transport: "nats",
    nats: { servers, subject_prefix: "aio" },
    ...extra,
  } as never;
}

function natsNode(hostname: string, servers: string[], extra: Record<string, unknown> = {}) {
  return startNode({
    hostname,
    dir,
    plugins: hostname === "A" ? [] : [{ name: "Svc", arguments: { node: hostname } }],
    networking: natsNetworking(servers, extra),
  });
}

describe("two and three nodes over one nats-server", () => {
  it("find each other with no node_ips; calls, streams, errors and deadlines work as on the channel", async () => {
    const server = await startNatsServer();
    const a = await natsNode("A", [server.url]);
    const b = await natsNode("B", [server.url]);
    const c = await natsNode("C", [server.url]);
    try {
      await serving(a, "B");
      await serving(a, "C");
      expect(await a.execute("Svc", "who", undefined, { host: "B" })).toBe("B");
      expect(await a.execute("Svc", "add", { a: 2, b: 40 }, { host: "C" })).toBe(42);
      expect(await collect(a.executeStream("Svc", "items", [3], { host: "B" }))).toEqual([
        "B0",
        "B1",
        "B2",
      ]);
      const many = await collect(a.executeStream("Svc", "items", [5000], { host: "C" }));
      expect(many).toHaveLength(5000);
      expect(many.at(-1)).toBe("C4999");
      const midStream = await rejection(
        collect(a.executeStream("Svc", "failing", [], { host: "B" })),
      );
      expect(midStream.code).toBe("PLUGIN_ERROR");
      expect(midStream.message).toMatch(/broke mid-stream/);
      const late = await rejection(a.execute("Svc", "slow", [5000], { host: "B", timeout: 0.2 }));
      expect(late.code).toBe("TIMEOUT");
      // Both nodes answer "any": the calls are spread.
      const answers = new Set(
        await Promise.all(Array.from({ length: 20 }, () => a.execute("Svc", "who"))),
      );
      expect([...answers].sort()).toEqual(["B", "C"]);
      const bad = await rejection(a.execute("Svc", "add", { a: "x", b: 1 }, { host: "B" }));
      expect(bad.code).toBe("INVALID_ARGUMENTS");
    } finally {
      await Promise.all([closeNode(a), closeNode(b), closeNode(c)]);
    }
  });

  it("blocking calls reach a node in another process over NATS, from a thread of their own", async () => {
    const server = await startNatsServer();
    const networking = natsNetworking([server.url]);
    const b = await spawnNode(
      nodeConfig({
        hostname: "B",
        dir,
        plugins: [{ name: "Svc", arguments: { node: "B" } }],
        networking,
      }),
    );
    const a = await startNode({ hostname: "A", dir, networking });
    try {
      await serving(a, "B");
      expect(a.executeSync("Svc", "add", { a: 1, b: 2 }, { host: "B" })).toBe(3);
      expect([...a.executeStreamSync("Svc", "items", [3], { host: "B" })]).toEqual([
        "B0",
        "B1",
        "B2",
      ]);
      const midStream = await rejection(() => [
        ...a.executeStreamSync("Svc", "failing", [], { host: "B" }),
      ]);
      expect(midStream.code).toBe("PLUGIN_ERROR");
      const late = await rejection(() =>
        a.executeSync("Svc", "slow", [5000], { host: "B", timeout: 0.2 }),
      );
      expect(late.code).toBe("TIMEOUT");
    } finally {
      await closeNode(a);
      await killChild(b, "SIGTERM");
    }
  });

  it("a node that joins later finds the others at once, not at their next heartbeat", async () => {
    const server = await startNatsServer();
    const rare = { heartbeat_interval: 30, liveness_timeout: 60 };
    const a = await natsNode("A", [server.url], rare);
    const b = await natsNode("B", [server.url], rare);
    try {
      await serving(a, "B");
      // B heard A's answer to its own announce: well within the 30 s heartbeat.
      await waitForNode(b, "A", () => true, 3000);
    } finally {
      await Promise.all([closeNode(a), closeNode(b)]);
    }
  });

  it("a node's start() returns knowing the nodes already there: its first call reaches them", async () => {
    const server = await startNatsServer();
    // Heartbeats far apart: only the answers to A's join can tell A of B and C in time.
    const rare = { heartbeat_interval: 30, liveness_timeout: 60 };
    const b = await natsNode("B", [server.url], rare);
    const c = await natsNode("C", [server.url], rare);
    const a = await natsNode("A", [server.url], rare);
    try {
      expect(
        a
          .nodes()
          .map((node) => node.hostname)
          .sort(),
      ).toEqual(["B", "C"]);
      expect(await a.execute("Svc", "who", undefined, { host: "C" })).toBe("C");
      expect(await a.execute("Svc", "add", [2, 3])).toBe(5);
    } finally {
      await Promise.all([closeNode(a), closeNode(b), closeNode(c)]);
    }
  });

  it("a node that closes is gone at once for the others", async () => {
    const server = await startNatsServer();
    const a = await natsNode("A", [server.url]);
    const b = await natsNode("B", [server.url]);
    await serving(a, "B");
    const down = nodeEvent(a, "node:down", "B");
    await closeNode(b);
    await down;
    const error = await rejection(a.execute("Svc", "who", undefined, { host: "B" }));
    expect(error.code).toBe("NO_NODE");
    await closeNode(a);
  });
});

describe("a node whose clock is off", () => {
  // Over the channel each request is timed by its target's clock, learnt from /ping; over
  // NATS announces and publishes go to every node, and are timed by the mesh's clock, which a
  // node takes from the older nodes' answers to its join.
  it.each([
    ["joins a mesh already there", true],
    ["is there first, and a node that joins takes its clock", false],
  ])(
    "%s: both find each other, call each other and hear each other's publishes, before and after the clock is set right",
    async (_, skewedJoins) => {
      const server = await startNatsServer();
      const logs = { A: tempDir(), S: tempDir() };
      const networking = natsNetworking([server.url]);
      const startA = () =>
        startNode({
          hostname: "A",
          dir,
          plugins: [{ name: "Svc", arguments: { node: "A" } }],
          general: { log_dir: logs.A },
          networking,
        });
      const startS = () =>
        spawnNode(
          nodeConfig({
            hostname: "S",
            dir,
            plugins: [{ name: "Svc", arguments: { node: "S" } }, "Relay"],
            general: { log_dir: logs.S, console_log_level: "CRITICAL" },
            networking,
          }),
          10_000,
          // Two minutes ahead: four times what a signed message may be off the receiver's clock.
          { NODE_OPTIONS: `--import ${CLOCK_SKEW}`, AIO_TEST_CLOCK_SKEW_MS: "120000" },
        );
      let a: PluginCore | undefined;
      let s: Awaited<ReturnType<typeof spawnNode>> | undefined;
      try {
        if (skewedJoins) {
          a = await startA();
          s = await startS();
        } else {
          s = await startS();
          a = await startA();
        }
        await serving(a, "S");
        expect(await a.execute("Svc", "who", undefined, { host: "S" })).toBe("S");
        // S calls A: its requests to A, timed by A's clock, pass A's check.
        expect(await a.execute("Relay", "ask", ["A"], { host: "S" })).toBe("A");
        const heard: unknown[] = [];
        a.subscribe("clock/>", (args) => void heard.push(args));
        // A's subscription reaches S with A's next info; S's publish is timed by the mesh's clock.
        await waitFor(
          async () => (await a?.execute("Relay", "tell", ["clock/test"], { host: "S" })) === 1,
          "S's publish reaching A's subscriber",
        );
        expect(heard).toContain("from S");
        // The younger node says that its clock is off, and by how much.
        const younger = skewedJoins ? logs.S : logs.A;
        const said = skewedJoins
          ? /this node's clock is 1[12]\d\.\d s ahead of the other nodes'/
          : /this node's clock is 1[12]\d\.\d s behind the other nodes'/;
        expect(readLog(younger)).toMatch(said);
        // NTP sets S's clock right at once: heartbeats off the clock make the nodes join again,
        // and the younger goes back to its own clock.
        s.proc.kill("SIGUSR2");
        await waitFor(
          () =>
            /this node's clock reads as the other nodes' do; it signs by its own again/.test(
              readLog(younger),
            ),
          "the younger node signing by its own clock again",
          10_000,
        );
        await serving(a, "S");
        heard.length = 0;
        await waitFor(
          async () => (await a?.execute("Relay", "tell", ["clock/again"], { host: "S" })) === 1,
          "S's publish reaching A's subscriber after the clock was set right",
        );
        expect(heard).toContain("from S");
        expect(await a.execute("Relay", "ask", ["A"], { host: "S" })).toBe("A");
      } finally {
        if (a) await closeNode(a);
        if (s) await killChild(s, "SIGTERM");
      }
    },
  );

  it("a heartbeat off the clock makes a node join again, and it takes an older node's clock", async () => {
    // The other side is a raw NATS client that signs as docs/security.md says.
    const server = await startNatsServer();
    const log = tempDir();
    const b = await startNode({
      hostname: "B",
      dir,
      general: { log_dir: log },
      networking: natsNetworking([server.url]),
    });
    const raw = await connect({ servers: server.url });
    try {
      const ahead = () => Date.now() + 120_000;
      const heard: Array<{ reply: string; time: number; nonce: string }> = [];
      raw.subscribe("aio.announce", {
        callback: (_error, message) => {
          if (!message.headers) return;
          heard.push({
            reply: message.reply ?? "",
            time: Number(message.headers.get("x-aio-time")),
            nonce: message.headers.get("x-aio-nonce"),
          });
        },
      });
      const next = (match: (m: (typeof heard)[number]) => boolean) =>
        waitFor(() => heard.find(match), "an announce from B");
      await raw.flush();
      // A heartbeat of a node two minutes ahead: genuine, but off B's clock.
      const body = JSON.stringify({ instance: "feedfeedfeedfeed", hostname: "old", version: 1 });
      const h = headers();
      const signature = signHeaders(SECRET, "NATS", "*", "aio.announce", body, { time: ahead() });
      for (const [name, value] of Object.entries(signature)) h.set(name, value);
      raw.publish("aio.announce", body, { headers: h });
      const join = await next((m) => m.reply !== "");
      expect(Math.abs(join.time - Date.now())).toBeLessThan(10_000);
      // Answered by a node that is older than B and two minutes ahead of it.
      const answer = JSON.stringify({
        instance: "feedfeedfeedfeed",
        hostname: "old",
        version: 1,
        time: ahead(),
        up_ms: 3_600_000,
      });
      const signed = headers();
      signed.set(H_ANSWER, mac(SECRET, "answer", join.nonce, sha256Hex(answer)));
      raw.publish(join.reply, answer, { headers: signed });
      // B announces itself again, by the older node's clock.
      const again = await next((m) => m.reply === "" && m.time > Date.now() + 100_000);
      expect(again.time - Date.now()).toBeLessThan(130_000);
      await waitFor(
        () => /this node's clock is 1[12]\d\.\d s behind the other nodes'/.test(readLog(log)),
        "B's log saying its clock is behind",
      );
    } finally {
      await raw.close();
      await closeNode(b);
    }
  });
});

describe("access rules over NATS", () => {
  it("remote: false, allowed_nodes, pluginUuid and plugin changes behave as on the channel", async () => {
    const server = await startNatsServer();
    const networking = natsNetworking([server.url]);
    const a = await startNode({ hostname: "A", dir, networking });
    const b = await startNode({
      hostname: "B",
      dir,
      plugins: [
        { name: "Svc", arguments: { node: "B" } },
        "Private",
        { name: "Picky", allowed_nodes: ["C"] },
      ],
      networking,
    });
    const c = await startNode({ hostname: "C", dir, networking });
    try {
      await serving(a, "B");
      await serving(c, "B");
      const closed = await rejection(a.execute("Private", "who", undefined, { host: "B" }));
      expect(closed.code).toBe("ACCESS_DENIED");
      const picky = await rejection(a.execute("Picky", "who", undefined, { host: "B" }));
      expect(picky.code).toBe("ACCESS_DENIED");
      expect(picky.message).toMatch(/node "B" lets only C call Picky \(allowed_nodes\)/);
      expect(await c.execute("Picky", "who", undefined, { host: "B" })).toBe("picky");
      const uuid = b.getPluginInfo("Svc")?.uuid as string;
      expect(await a.execute("Svc", "who", undefined, { pluginUuid: uuid })).toBe("B");
      const other = await rejection(
        a.execute("Svc", "who", undefined, { pluginUuid: "00000000-0000-4000-8000-000000000000" }),
      );
      expect(other.code).toBe("PLUGIN_NOT_FOUND");
      // A plugin disabled on B leaves A's map at once (an announce), and comes back with enable.
      await b.disablePlugin("Svc");
      await waitForNode(a, "B", (node) => !node.plugins.includes("Svc"));
      await b.enablePlugin("Svc");
      await serving(a, "B");
      expect(await a.execute("Svc", "who", undefined, { host: "B" })).toBe("B");
    } finally {
      await Promise.all([closeNode(a), closeNode(b), closeNode(c)]);
    }
  });
});

describe("separation and authentication", () => {
  it("nodes with another subject prefix never see each other", async () => {
    const server = await startNatsServer();
    const a = await natsNode("A", [server.url]);
    const b = await natsNode("B", [server.url], {
      nats: { servers: [server.url], subject_prefix: "other" },
    });
    const c = await natsNode("C", [server.url]);
    try {
      await serving(a, "C");
      expect(a.nodes().map((n) => n.hostname)).not.toContain("B");
    } finally {
      await Promise.all([closeNode(a), closeNode(b), closeNode(c)]);
    }
  });

  it("nodes with different secrets never meet, and both logs say why", async () => {
    const server = await startNatsServer();
    const logs = { A: tempDir(), B: tempDir() };
    const node = (hostname: "A" | "B", secret: string) =>
      startNode({
        hostname,
        dir,
        plugins: [{ name: "Svc", arguments: { node: hostname } }],
        general: { log_dir: logs[hostname] },
        networking: natsNetworking([server.url], { secret }),
      });
    const a = await node("A", SECRET);
    const b = await node("B", `${SECRET}-other`);
    try {
      // B joined after A: its announce reached A, and A's answer to it was never sent.
      expect(b.nodes()).toEqual([]);
      expect(a.nodes()).toEqual([]);
      expect((await rejection(b.execute("Svc", "who", undefined, { host: "A" }))).code).toBe(
        "NO_NODE",
      );
      // The log is JSON lines: the message's own quotes are escaped there.
      const why =
        /NATS: a node calling itself \\"[AB]\\" announces itself on aio\.announce signed with another secret \(or replayed\); it is ignored\. Nodes meet only with the same networking\.secret/;
      // A heard B's join; B hears A's next heartbeat.
      await waitFor(() => why.test(readLog(logs.A)), "A's log saying why it ignores B");
      await waitFor(() => why.test(readLog(logs.B)), "B's log saying why it ignores A");
      expect(a.nodes()).toEqual([]);
    } finally {
      await Promise.all([closeNode(a), closeNode(b)]);
    }
  });

  it("a raw NATS client without the secret runs nothing and is listed nowhere", async () => {
    const server = await startNatsServer();
    const raw = await connect({ servers: server.url });
    // B's instance id, from its own announce, as any client on the server can read it.
    const announced = new Promise<string>((resolve) => {
      const subscription = raw.subscribe("aio.announce", {
        callback: (_error, message) => {
          subscription.unsubscribe();
          resolve(
            (JSON.parse(new TextDecoder().decode(message.data)) as { instance: string }).instance,
          );
        },
      });
    });
    await raw.flush();
    const b = await natsNode("B", [server.url]);
    try {
      const instance = await announced;
      const forged = () => {
        const h = headers();
        h.set("x-aio-time", String(Date.now()));
        h.set("x-aio-nonce", randomBytes(16).toString("hex"));
        h.set("x-aio-digest", "0".repeat(64));
        h.set("x-aio-signature", "0".repeat(64));
        return h;
      };
      raw.publish(
        "aio.announce",
        JSON.stringify({ instance: "0123456789abcdef", hostname: "evil", version: 1 }),
        { headers: forged() },
      );
      // A forged info request, and a forged hello that would open a pipe: never answered,
      // signed or not.
      for (const subject of [`aio.node.${instance}.info`, `aio.node.${instance}.hello`]) {
        for (const h of [forged(), undefined]) {
          const body = JSON.stringify({ pipe: "ab".repeat(12), hostname: "evil", instance: "x" });
          await expect(
            raw.request(subject, body, { timeout: 300, ...(h ? { headers: h } : {}) }),
          ).rejects.toThrow(/timeout/i);
        }
      }
      expect(b.nodes().map((n) => n.hostname)).not.toContain("evil");
    } finally {
      await raw.close();
      await closeNode(b);
    }
  });

  it("NATS's own logins: user and password, or a token", async () => {
    for (const [login, settings] of [
      [
        { user: "aio", pass: "right" },
        { user: "aio", pass: "right" },
      ],
      [{ token: "t0ken-for-tests" }, { token: "t0ken-for-tests" }],
    ] as const) {
      const server = await startNatsServer(login);
      const nats = { servers: [server.url], subject_prefix: "aio", ...settings };
      const a = await natsNode("A", [server.url], { nats });
      const b = await natsNode("B", [server.url], { nats });
      try {
        await serving(a, "B");
        expect(await a.execute("Svc", "who", undefined, { host: "B" })).toBe("B");
      } finally {
        await Promise.all([closeNode(a), closeNode(b)]);
      }
    }
  });

  it("NATS's decentralized logins: a creds file (user JWT and nkey seed) of a trusted account", async () => {
    const { config, creds, untrustedCreds } = natsOperator();
    const server = await startNatsServer({ args: ["-c", config] });
    const nats = { servers: [server.url], subject_prefix: "aio", creds_file: creds };
    const a = await natsNode("A", [server.url], { nats });
    const b = await natsNode("B", [server.url], { nats });
    const stranger = await natsNode("S", [server.url], {
      nats: { ...nats, creds_file: untrustedCreds },
    });
    try {
      await serving(a, "B");
      expect(await a.execute("Svc", "who", undefined, { host: "B" })).toBe("B");
      // A user of an account the server does not trust gets no connection.
      const error = await rejection(stranger.execute("Svc", "who", undefined, { host: "B" }));
      expect(error.message).toMatch(/NATS .*Authorization Violation/i);
      expect(a.nodes().map((node) => node.hostname)).not.toContain("S");
    } finally {
      await Promise.all([closeNode(a), closeNode(b), closeNode(stranger)]);
    }
  });

  it("wrong NATS credentials: the node starts, and a remote call's error names NATS and why", async () => {
    const server = await startNatsServer({ user: "aio", pass: "right" });
    const a = await natsNode("A", [server.url], {
      nats: { servers: [server.url], subject_prefix: "aio", user: "aio", pass: "wrong" },
    });
    try {
      const error = await rejection(a.execute("Svc", "who", undefined, { host: "remote" }));
      // What a user reads names NATS and why it cannot be used.
      expect(error.message).toMatch(/NATS .*Authorization Violation/i);
    } finally {
      await closeNode(a);
    }
  });
});

describe("without a secret", () => {
  it("nodes on a NATS server on this machine call each other; one elsewhere is refused at start", async () => {
    const server = await startNatsServer();
    const open = { ...LOOPBACK, transport: "nats", nats: { servers: [server.url] } } as never;
    const a = await startNode({ hostname: "A", dir, networking: open });
    const b = await startNode({
      hostname: "B",
      dir,
      plugins: [{ name: "Svc", arguments: { node: "B" } }],
      networking: open,
    });
    try {
      await serving(a, "B");
      expect(await a.execute("Svc", "who", undefined, { host: "B" })).toBe("B");
    } finally {
      await Promise.all([closeNode(a), closeNode(b)]);
    }
    const far = startNode({
      hostname: "far",
      dir,
      networking: {
        ...LOOPBACK,
        transport: "nats",
        nats: { servers: ["nats://192.0.2.1:4222"] },
      } as never,
    });
    await expect(far).rejects.toMatchObject({
      code: "CONFIG_INVALID",
      message: expect.stringMatching(/192\.0\.2\.1.*not on this machine.*networking\.secret/),
    });
  });
});

describe("NATS going away", () => {
  it("the server killed: remote calls fail with NETWORK, local ones go on; restarted: calls work again", async () => {
    const server = await startNatsServer();
    const a = await startNode({
      hostname: "A",
      dir,
      plugins: [{ name: "Svc", arguments: { node: "A" } }],
      networking: natsNetworking([server.url]),
    });
    const b = await natsNode("B", [server.url]);
    try {
      await serving(a, "B");
      expect(await a.execute("Svc", "who", undefined, { host: "B" })).toBe("B");
      await server.kill();
      const error = await rejection(a.execute("Svc", "who", undefined, { host: "B", timeout: 2 }));
      expect(error.code).toBe("NETWORK");
      expect(await a.execute("Svc", "who", undefined, { host: "local" })).toBe("A");
      await server.restart();
      await serving(a, "B");
      await expect
        .poll(() => a.execute("Svc", "who", undefined, { host: "B" }).catch(() => "not yet"), {
          timeout: 5000,
        })
        .toBe("B");
    } finally {
      await Promise.all([closeNode(a), closeNode(b)]);
    }
  });

  it("a 2-server cluster with one server killed: nodes on the other server go on", async () => {
    const cluster = await startNatsCluster(2);
    const [first, second] = cluster.servers;
    const a = await natsNode("A", [first?.url ?? "", second?.url ?? ""]);
    const b = await natsNode("B", [second?.url ?? "", first?.url ?? ""]);
    try {
      await serving(a, "B");
      expect(await a.execute("Svc", "who", undefined, { host: "B" })).toBe("B");
      await first?.kill();
      await expect
        .poll(() => a.execute("Svc", "who", undefined, { host: "B" }).catch(() => "not yet"), {
          timeout: 8000,
        })
        .toBe("B");
    } finally {
      await Promise.all([closeNode(a), closeNode(b)]);
    }
  });
});
