/**
 * Several hosts on one machine: three network namespaces joined by veth pairs to a bridge in
 * a fourth, each running a node bound to its own address. Discovery is by mDNS alone; one host
 * is cut off at the switch and brought back.
 *
 * Needs root and iproute2 (CI runs as root); skipped where namespaces cannot be created.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canUseNamespaces, NamespacedNode, Network } from "./netns-support.js";

const network = new Network(3, 0);
const HOSTS = network.hosts;

const available = canUseNamespaces();
const nodes: NamespacedNode[] = [];

describe.skipIf(!available)("three hosts in network namespaces", () => {
  beforeAll(() => {
    network.build();
    for (const host of HOSTS) nodes.push(new NamespacedNode(host));
  });

  afterAll(() => {
    for (const node of nodes) node.stop();
    network.remove();
  });

  it("find each other over mDNS, without node_ips", async () => {
    for (const node of nodes) await node.waitFor((line) => line.event === "ready", "ready");
    for (const [index, node] of nodes.entries()) {
      for (const other of HOSTS.filter((_, i) => i !== index)) {
        await node.waitFor(
          (line) => line.event === "node:up" && line.hostname === other.name,
          `${HOSTS[index]?.name} to find ${other.name}`,
        );
      }
    }
  });

  it("call a plugin on a named host across the network", async () => {
    const [n1] = nodes;
    expect(await n1?.call("Echo", "whoami", undefined, { host: "n3" })).toMatchObject({
      result: "n3",
    });
    expect(await n1?.call("Echo", "whoami", undefined, { host: "n2" })).toMatchObject({
      result: "n2",
    });
  });

  it("mark a host that is cut off down, and up again when it is back", async () => {
    const [n1, n2] = nodes as [NamespacedNode, NamespacedNode];
    const cut = HOSTS[2] as (typeof HOSTS)[number];
    const from1 = n1.lines.length;
    const from2 = n2.lines.length;
    network.link(cut, false);
    for (const node of [n1, n2]) {
      await node.waitFor(
        (line) => line.event === "node:down" && line.hostname === "n3",
        "n3 to be marked down",
        node === n1 ? from1 : from2,
      );
    }
    const refused = await n1.call("Echo", "whoami", undefined, { host: "n3" });
    expect(refused.error?.code).toBe("NO_NODE");

    network.link(cut, true);
    for (const node of [n1, n2]) {
      await node.waitFor(
        (line) => line.event === "node:up" && line.hostname === "n3",
        "n3 to be marked up again",
        node === n1 ? from1 : from2,
      );
    }
    expect(await n1.call("Echo", "whoami", undefined, { host: "n3" })).toMatchObject({
      result: "n3",
    });
  });
});
