/**
 * Several hosts on one machine: three network namespaces joined by veth pairs to a bridge in
 * a fourth, each running a node bound to its own address. Discovery is by mDNS alone; one host
 * is cut off at the switch and brought back.
 *
 * Needs root and iproute2 (CI runs as root); skipped where namespaces cannot be created.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const NODE_SCRIPT = fileURLToPath(new URL("./fixtures/netns-node/node.mjs", import.meta.url));
const tag = randomBytes(3).toString("hex");
const SWITCH = `aio-sw-${tag}`;
const HOSTS = [1, 2, 3].map((i) => ({
  name: `n${i}`,
  netns: `aio-n${i}-${tag}`,
  address: `10.77.0.${i}`,
  hostSide: `aio${i}${tag}`,
  switchSide: `aio${i}s${tag}`,
}));

function ip(...args: string[]): void {
  execFileSync("ip", args, { stdio: "pipe" });
}

function canUseNamespaces(): boolean {
  try {
    ip("netns", "add", `aio-probe-${tag}`);
    ip("netns", "del", `aio-probe-${tag}`);
    return true;
  } catch {
    return false;
  }
}

function buildNetwork(): void {
  ip("netns", "add", SWITCH);
  ip("-n", SWITCH, "link", "add", "br0", "type", "bridge");
  ip("-n", SWITCH, "link", "set", "br0", "up");
  for (const host of HOSTS) {
    ip("netns", "add", host.netns);
    ip("link", "add", host.hostSide, "type", "veth", "peer", "name", host.switchSide);
    ip("link", "set", host.hostSide, "netns", host.netns);
    ip("link", "set", host.switchSide, "netns", SWITCH);
    ip("-n", SWITCH, "link", "set", host.switchSide, "master", "br0");
    ip("-n", SWITCH, "link", "set", host.switchSide, "up");
    ip("-n", host.netns, "link", "set", "lo", "up");
    ip("-n", host.netns, "addr", "add", `${host.address}/24`, "dev", host.hostSide);
    ip("-n", host.netns, "link", "set", host.hostSide, "up");
    ip("-n", host.netns, "route", "add", "224.0.0.0/4", "dev", host.hostSide);
  }
}

function removeNetwork(): void {
  for (const name of [SWITCH, ...HOSTS.map((host) => host.netns)]) {
    try {
      ip("netns", "del", name);
    } catch {
      // Not created; nothing to remove.
    }
  }
}

interface Line {
  event?: string;
  hostname?: string;
  id?: number;
  result?: unknown;
  error?: { code: string; message: string };
}

/** A node in a namespace, with its output as a stream of parsed lines to wait on. */
class NamespacedNode {
  readonly lines: Line[] = [];
  readonly #waiters: Array<() => void> = [];
  readonly #child: ChildProcess;
  #seq = 0;

  constructor(host: (typeof HOSTS)[number]) {
    this.#child = spawn(
      "ip",
      ["netns", "exec", host.netns, process.execPath, NODE_SCRIPT, host.name, host.address, "[]"],
      { stdio: ["pipe", "pipe", "inherit"] },
    );
    createInterface({ input: this.#child.stdout as NodeJS.ReadableStream }).on("line", (text) => {
      this.lines.push(JSON.parse(text) as Line);
      for (const wake of this.#waiters.splice(0)) wake();
    });
  }

  /** Resolves with the first line (from `from` on) that `match` accepts. */
  async waitFor(
    match: (line: Line) => boolean,
    what: string,
    from = 0,
    ms = 15_000,
  ): Promise<Line> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.lines.slice(from).find(match);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadline - Date.now());
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async call(...call: unknown[]): Promise<Line> {
    const id = ++this.#seq;
    this.#child.stdin?.write(`${JSON.stringify({ id, call })}\n`);
    return this.waitFor((line) => line.id === id, `the answer to call ${id}`);
  }

  stop(): void {
    this.#child.kill("SIGKILL");
  }
}

const available = canUseNamespaces();
const nodes: NamespacedNode[] = [];

describe.skipIf(!available)("three hosts in network namespaces", () => {
  beforeAll(() => {
    buildNetwork();
    for (const host of HOSTS) nodes.push(new NamespacedNode(host));
  });

  afterAll(() => {
    for (const node of nodes) node.stop();
    removeNetwork();
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
    ip("-n", SWITCH, "link", "set", cut.switchSide, "down");
    for (const node of [n1, n2]) {
      await node.waitFor(
        (line) => line.event === "node:down" && line.hostname === "n3",
        "n3 to be marked down",
        node === n1 ? from1 : from2,
      );
    }
    const refused = await n1.call("Echo", "whoami", undefined, { host: "n3" });
    expect(refused.error?.code).toBe("NO_NODE");

    ip("-n", SWITCH, "link", "set", cut.switchSide, "up");
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
