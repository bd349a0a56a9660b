/**
 * Hosts over NATS between network namespaces (see netns-support.ts): a nats-server on a fourth
 * host, three nodes that reach only it. They find each other through it with no node_ips; a
 * host cut off at the switch (a silent partition: no connection is closed) is marked down by
 * the others, and it finds itself without NATS: its calls to other nodes fail with NETWORK
 * while its local calls go on; after the heal all of them meet again by themselves.
 *
 * Needs root, iproute2 and Debian's nats-server; skipped where namespaces cannot be created.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { natsServerBinary } from "./nats-support.js";
import { canUseNamespaces, type Line, NamespacedNode, Network } from "./netns-support.js";

const available = canUseNamespaces();
const network = new Network(4, 2);
const [N1, N2, N3, SERVER] = network.hosts as [
  (typeof network.hosts)[number],
  (typeof network.hosts)[number],
  (typeof network.hosts)[number],
  (typeof network.hosts)[number],
];
const nodes: NamespacedNode[] = [];
let natsServer: ChildProcess | undefined;

const isUp = (hostname: string) => (line: Line) =>
  line.event === "node:up" && line.hostname === hostname;
const isDown = (hostname: string) => (line: Line) =>
  line.event === "node:down" && line.hostname === hostname;

/** nats-server in the fourth host's namespace, on its address; resolves once it is ready. */
function startNatsServer(): Promise<void> {
  const child = spawn(
    "ip",
    ["netns", "exec", SERVER.netns, natsServerBinary(), "-a", SERVER.address, "-p", "4222"],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  natsServer = child;
  const log: string[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`nats-server not ready:\n${log.join("\n")}`)),
      5000,
    );
    createInterface({ input: child.stderr as NodeJS.ReadableStream }).on("line", (line) => {
      log.push(line);
      if (line.endsWith("Server is ready")) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

describe.skipIf(!available)("three hosts over a nats-server on a fourth", () => {
  beforeAll(async () => {
    network.build();
    await startNatsServer();
    const networking = {
      transport: "nats",
      secret: randomBytes(24).toString("base64url"),
      nats: { servers: [`nats://${SERVER.address}:4222`] },
      heartbeat_interval: 0.3,
      liveness_timeout: 1.5,
    };
    for (const host of [N1, N2, N3]) nodes.push(new NamespacedNode(host, { networking }));
  });

  afterAll(() => {
    for (const node of nodes) node.stop();
    natsServer?.kill("SIGKILL");
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

  it("a host cut off is down for the others, and they for it; no call hangs; healed, all meet again", async () => {
    const [n1, n2, n3] = nodes as [NamespacedNode, NamespacedNode, NamespacedNode];
    // A pipe from n3 to n1 is open when the link goes.
    expect(await n3.call("Echo", "whoami", undefined, { host: "n1" })).toMatchObject({
      result: "n1",
    });
    const from = nodes.map((node) => node.lines.length);
    network.link(N3, false);
    // Sent into the silence, with no deadline: it fails once n3 gives n1 up, it does not hang.
    const lost = n3.call("Echo", "whoami", undefined, { host: "n1" });
    for (const [index, node] of [n1, n2].entries()) {
      await node.waitFor(isDown("n3"), "n3 to be marked down", from[index], 10_000);
    }
    for (const name of ["n1", "n2"]) {
      await n3.waitFor(isDown(name), `n3 to mark ${name} down`, from[2], 10_000);
    }
    expect((await lost).error?.code).toBe("NETWORK");
    expect((await n1.call("Echo", "whoami", undefined, { host: "n3" })).error?.code).toBe(
      "NO_NODE",
    );
    expect((await n3.call("Echo", "whoami", undefined, { host: "n1" })).error?.code).toBe(
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
    for (const name of ["n1", "n2"]) {
      await n3.waitFor(isUp(name), `n3 to see ${name} up again`, from[2], 15_000);
    }
    expect(await n1.call("Echo", "whoami", undefined, { host: "n3" })).toMatchObject({
      result: "n3",
    });
    expect(await n3.call("Echo", "whoami", undefined, { host: "n2" })).toMatchObject({
      result: "n2",
    });
  }, 60_000);
});
