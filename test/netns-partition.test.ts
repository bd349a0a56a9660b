/**
 * Hosts that come late, and links that go silent, between network namespaces (see
 * netns-support.ts): a node that starts after its peer is found without waiting for a
 * heartbeat; a host cut off at the switch for 10 s and for 30 s, with calls in flight to it, is
 * marked down, its calls fail at once with NETWORK instead of hanging, and after the heal it is
 * called again at once and gets its share of "any" traffic.
 *
 * Needs root and iproute2; skipped where namespaces cannot be created.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canUseNamespaces, type Line, NamespacedNode, Network } from "./netns-support.js";

const available = canUseNamespaces();
const network = new Network(3, 1);
const [A, B, C] = network.hosts as [
  (typeof network.hosts)[number],
  (typeof network.hosts)[number],
  (typeof network.hosts)[number],
];
const started: NamespacedNode[] = [];

function start(...args: ConstructorParameters<typeof NamespacedNode>): NamespacedNode {
  const node = new NamespacedNode(...args);
  started.push(node);
  return node;
}

function stopAll(): void {
  for (const node of started.splice(0)) node.stop();
}

const isUp = (hostname: string) => (line: Line) =>
  line.event === "node:up" && line.hostname === hostname;
const isDown = (hostname: string) => (line: Line) =>
  line.event === "node:down" && line.hostname === hostname;

describe.skipIf(!available)("hosts that come late and links that go silent", () => {
  beforeAll(() => network.build());
  afterAll(() => {
    stopAll();
    network.remove();
  });

  it("a host that starts after the one that lists it is found before any heartbeat", async () => {
    // The default heartbeat (10 s): finding B must not wait for it.
    const defaults = { heartbeat_interval: 10, liveness_timeout: 30 };
    const a = start(A, { nodeIps: [B.address], networking: defaults, plugins: false });
    await a.waitFor((line) => line.event === "ready", "A to be ready");
    const b = start(B, { networking: defaults });
    await b.waitFor((line) => line.event === "ready", "B to be ready");
    await a.waitFor(isUp("n2"), "A to find B", 0, 5000);
    expect(await a.call("Echo", "whoami")).toMatchObject({ result: "n2" });
    stopAll();
  });

  describe("a host cut off with calls in flight to it (heartbeat 1 s, liveness 3 s)", () => {
    const timing = { heartbeat_interval: 1, liveness_timeout: 3 };
    let a: NamespacedNode;
    let b: NamespacedNode;

    beforeAll(async () => {
      a = start(A, { nodeIps: [B.address, C.address], networking: timing, plugins: false });
      b = start(B, { networking: timing });
      start(C, { networking: timing });
      for (const name of ["n2", "n3"]) await a.waitFor(isUp(name), `A to find ${name}`);
    });

    it.each([10, 30])(
      "for %i s: marked down, its calls fail at once, called again at once after the heal, and shares the load",
      async (seconds) => {
        // Calls without a deadline, running on B when its link goes silent.
        const holding = b.lines.length;
        const held = Array.from({ length: 4 }, () =>
          a.call("Echo", "hold", [600_000], { host: "n2" }),
        );
        await b.waitFor(
          () => b.lines.slice(holding).filter((line) => line.event === "hold").length === 4,
          "the four calls to run on B",
          holding,
        );
        const from = a.lines.length;
        network.link(B, false);
        const cutAt = Date.now();
        await a.waitFor(isDown("n2"), "B to be marked down", from, 10_000);
        // Once B is down, its calls fail with NETWORK (they may have run), none hangs.
        for (const answer of await Promise.all(held)) {
          expect(answer.error?.code).toBe("NETWORK");
          expect(answer.error?.message).toMatch(/may have run/);
        }
        // Meanwhile "any" goes to C; B by name is NO_NODE.
        expect(await a.call("Echo", "whoami")).toMatchObject({ result: "n3" });
        expect((await a.call("Echo", "whoami", null, { host: "n2" })).error?.code).toBe("NO_NODE");

        await waitUntil(cutAt + seconds * 1000);
        const healed = a.lines.length;
        network.link(B, true);
        const healedAt = Date.now();
        await a.waitFor(isUp("n2"), "B to be marked up", healed, 10_000);
        // Listed up with a working channel: the first call to it works.
        expect(await a.call("Echo", "whoami", null, { host: "n2" })).toMatchObject({
          result: "n2",
        });
        const upAt = a.times[a.lines.findIndex((line, i) => i >= healed && isUp("n2")(line))];
        expect((upAt as number) - healedAt).toBeLessThan(5000);
        // Nothing of the failed calls counts as in flight on B: "any" spreads over B and C.
        const spread = await Promise.all(Array.from({ length: 8 }, () => a.call("Echo", "whoami")));
        expect(spread.filter((answer) => answer.result === "n2").length).toBeGreaterThanOrEqual(2);
      },
      90_000,
    );
  });
});

/** Resolves at `time` (Date.now()): a partition lasts as long as the test says. */
function waitUntil(time: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, time - Date.now())));
}
