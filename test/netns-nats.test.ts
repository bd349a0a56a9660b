/**
 * Hosts over NATS between network namespaces (see netns-support.ts): a nats-server on a fourth
 * host, three nodes that reach only it. They find each other through it with no node_ips. A
 * host cut off at the switch (a silent partition: no connection is closed) is marked down by
 * the others, whose calls running there fail with NETWORK; it notices by its pings that its
 * NATS server is gone, so its calls to other nodes fail with NETWORK naming NATS, its local
 * calls go on, and it blames no other node; after the heal all of them meet again by
 * themselves. And two nodes whose server, one of a 2-server cluster, goes silent move to the
 * other one within seconds.
 *
 * Needs root, iproute2 and Debian's nats-server; skipped where namespaces cannot be created.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type NatsServer,
  type NatsServerOptions,
  startNatsServer,
  stopNatsServers,
} from "./nats-support.js";
import {
  canUseNamespaces,
  type Host,
  type Line,
  NamespacedNode,
  Network,
} from "./netns-support.js";
import { waitFor } from "./support.js";

const available = canUseNamespaces();
const network = new Network(4, 2);
const [N1, N2, N3, SERVER] = network.hosts as [
  (typeof network.hosts)[number],
  (typeof network.hosts)[number],
  (typeof network.hosts)[number],
  (typeof network.hosts)[number],
];
const nodes: NamespacedNode[] = [];

const isUp = (hostname: string) => (line: Line) =>
  line.event === "node:up" && line.hostname === hostname;
const isDown = (hostname: string) => (line: Line) =>
  line.event === "node:down" && line.hostname === hostname;

/** A nats-server in `host`'s namespace, on its address. */
function natsServerOn(host: Host, options: NatsServerOptions = {}): Promise<NatsServer> {
  return startNatsServer({ ...options, netns: { name: host.netns, host: host.address } });
}

describe.skipIf(!available)("three hosts over a nats-server on a fourth", () => {
  let server: NatsServer;

  beforeAll(async () => {
    network.build();
    server = await natsServerOn(SERVER);
    const networking = {
      transport: "nats",
      secret: randomBytes(24).toString("base64url"),
      nats: { servers: [server.url] },
      heartbeat_interval: 0.5,
      liveness_timeout: 3,
    };
    for (const host of [N1, N2, N3]) nodes.push(new NamespacedNode(host, { networking }));
  });

  afterAll(async () => {
    for (const node of nodes.splice(0)) node.stop();
    await stopNatsServers();
    network.remove();
  });

  it("find each other through NATS, with no node_ips, and call each other by name", async () => {
    for (const [index, node] of nodes.entries()) {
      for (const other of ["n1", "n2", "n3"].filter((_, i) => i !== index)) {
        await node.waitFor(isUp(other), `n${index + 1} to find ${other}`);
      }
    }
    const [n1, n2] = nodes as [NamespacedNode, NamespacedNode];
    expect(await n1.call("Echo", "whoami", undefined, { host: "n3" })).toMatchObject({
      result: "n3",
    });
    expect(await n2.call("Echo", "whoami", undefined, { host: "n1" })).toMatchObject({
      result: "n1",
    });
  });

  it("a host cut off: down for the others; it knows NATS is gone, and says so; healed, all meet again", async () => {
    const [n1, n2, n3] = nodes as [NamespacedNode, NamespacedNode, NamespacedNode];
    // A pipe from n3 to n1 is open when the link goes.
    expect(await n3.call("Echo", "whoami", undefined, { host: "n1" })).toMatchObject({
      result: "n1",
    });
    // And a call from n1, with no deadline, runs on n3.
    const holding = n3.lines.length;
    const held = n1.call("Echo", "hold", [600_000], { host: "n3" });
    await n3.waitFor((line) => line.event === "hold", "the call to run on n3", holding);
    const from = nodes.map((node) => node.lines.length);
    network.link(N3, false);
    // Sent into the silence, with no deadline: it fails, it does not hang.
    const lost = await n3.call("Echo", "whoami", undefined, { host: "n1" });
    expect(lost.error?.code).toBe("NETWORK");
    for (const [index, node] of [n1, n2].entries()) {
      await node.waitFor(isDown("n3"), "n3 to be marked down", from[index], 10_000);
    }
    // The call n1 had running there fails once n3 is down: it may have run, so it is not repeated.
    const heldAnswer = await held;
    expect(heldAnswer.error?.code).toBe("NETWORK");
    expect(heldAnswer.error?.message).toMatch(/may have run/);
    // n3 noticed that its NATS server is gone before any node fell silent for long enough: it
    // blames NATS, not the others, whom it never marks down.
    const after = await n3.call("Echo", "whoami", undefined, { host: "n1" });
    expect(after.error?.code).toBe("NETWORK");
    expect(after.error?.message).toContain(
      `NATS is not connected (the connection to ${SERVER.address}:${server.port} was lost)`,
    );
    expect((await n1.call("Echo", "whoami", undefined, { host: "n3" })).error?.code).toBe(
      "NO_NODE",
    );
    // Its own plugin still answers.
    expect(await n3.call("Echo", "whoami", undefined, { host: "local" })).toMatchObject({
      result: "n3",
    });

    network.link(N3, true);
    for (const [index, node] of [n1, n2].entries()) {
      await node.waitFor(isUp("n3"), "n3 to be up again", from[index], 15_000);
    }
    expect(await n1.call("Echo", "whoami", undefined, { host: "n3" })).toMatchObject({
      result: "n3",
    });
    expect(await n3.call("Echo", "whoami", undefined, { host: "n2" })).toMatchObject({
      result: "n2",
    });
    expect(n3.lines.slice(from[2]).filter((line) => line.event === "node:down")).toEqual([]);
  }, 60_000);
});

describe.skipIf(!available)("two hosts on a 2-server NATS cluster whose server goes silent", () => {
  const cluster = new Network(4, 3);
  const [A, B, S1, S2] = cluster.hosts as [Host, Host, Host, Host];
  let a: NamespacedNode;
  let b: NamespacedNode;

  beforeAll(async () => {
    cluster.build();
    const s1 = await natsServerOn(S1, { cluster: "aio" });
    // S2 runs once to pick its ports, and is stopped until both nodes are on S1.
    const s2 = await natsServerOn(S2, { cluster: "aio", routes: [s1.routeUrl] });
    await s2.kill();
    const networking = {
      transport: "nats",
      secret: randomBytes(24).toString("base64url"),
      nats: { servers: [s1.url, s2.url] },
      heartbeat_interval: 0.5,
      liveness_timeout: 3,
    };
    a = new NamespacedNode(A, { networking });
    b = new NamespacedNode(B, { networking });
    nodes.push(a, b);
    await a.waitFor(isUp("n2"), "A to find B");
    await s2.start();
    await waitFor(() => /Route connection created/.test(s2.log()), "S2's route to S1");
  });

  afterAll(async () => {
    for (const node of nodes.splice(0)) node.stop();
    await stopNatsServers();
    cluster.remove();
  });

  it("the nodes move to the other server by themselves and call each other again within seconds", async () => {
    expect(await a.call("Echo", "whoami", undefined, { host: "n2" })).toMatchObject({
      result: "n2",
    });
    const cutAt = Date.now();
    cluster.link(S1, false);
    // NATS's own pings (every 2 minutes by default) would keep them on S1 for minutes.
    for (const [from, to] of [
      [a, "n2"],
      [b, "n1"],
    ] as const) {
      for (;;) {
        const answer = await from.call("Echo", "whoami", undefined, { host: to, timeout: 1000 });
        if (answer.result === to) break;
        expect(Date.now() - cutAt).toBeLessThan(10_000);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  }, 30_000);
});
