/**
 * Several hosts on one machine for the multi-host tests: network namespaces joined by veth pairs
 * to a bridge in a namespace of its own (the switch), each host with an address of 10.77.x.0/24
 * and a node in a child process whose output the test awaits.
 *
 * Needs root and iproute2 (CI runs as root); {@link canUseNamespaces} tells a test to skip.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const NODE_SCRIPT = fileURLToPath(new URL("./fixtures/netns-node/node.mjs", import.meta.url));

export function ip(...args: string[]): void {
  execFileSync("ip", args, { stdio: "pipe" });
}

export function canUseNamespaces(): boolean {
  const probe = `aio-probe-${randomBytes(3).toString("hex")}`;
  try {
    ip("netns", "add", probe);
    ip("netns", "del", probe);
    return true;
  } catch {
    return false;
  }
}

export interface Host {
  name: string;
  netns: string;
  address: string;
  /** The veth end inside the host's namespace. */
  hostSide: string;
  /** The veth end on the switch: set it down to cut the host off. */
  switchSide: string;
}

/** `count` hosts n1…n<count> on the subnet 10.77.<subnet>.0/24, and their switch. */
export class Network {
  readonly hosts: Host[];
  readonly switch: string;

  constructor(count: number, subnet: number) {
    const tag = randomBytes(3).toString("hex");
    this.switch = `aio-sw-${tag}`;
    this.hosts = Array.from({ length: count }, (_, index) => {
      const i = index + 1;
      return {
        name: `n${i}`,
        netns: `aio-n${i}-${tag}`,
        address: `10.77.${subnet}.${i}`,
        hostSide: `aio${i}${tag}`,
        switchSide: `aio${i}s${tag}`,
      };
    });
  }

  build(): void {
    ip("netns", "add", this.switch);
    ip("-n", this.switch, "link", "add", "br0", "type", "bridge");
    ip("-n", this.switch, "link", "set", "br0", "up");
    for (const host of this.hosts) {
      ip("netns", "add", host.netns);
      ip("link", "add", host.hostSide, "type", "veth", "peer", "name", host.switchSide);
      ip("link", "set", host.hostSide, "netns", host.netns);
      ip("link", "set", host.switchSide, "netns", this.switch);
      ip("-n", this.switch, "link", "set", host.switchSide, "master", "br0");
      ip("-n", this.switch, "link", "set", host.switchSide, "up");
      ip("-n", host.netns, "link", "set", "lo", "up");
      ip("-n", host.netns, "addr", "add", `${host.address}/24`, "dev", host.hostSide);
      ip("-n", host.netns, "link", "set", host.hostSide, "up");
      ip("-n", host.netns, "route", "add", "224.0.0.0/4", "dev", host.hostSide);
    }
  }

  /** Cuts `host` off at the switch (`up: false`), or connects it again. */
  link(host: Host, up: boolean): void {
    ip("-n", this.switch, "link", "set", host.switchSide, up ? "up" : "down");
  }

  remove(): void {
    for (const name of [this.switch, ...this.hosts.map((host) => host.netns)]) {
      try {
        ip("netns", "del", name);
      } catch {
        // Not created; nothing to remove.
      }
    }
  }
}

export interface Line {
  event?: string;
  hostname?: string;
  id?: number;
  result?: unknown;
  error?: { code: string; message: string };
}

export interface NodeOptions {
  /** node_ips, as `address` or `address:port`. */
  nodeIps?: string[];
  /** networking overrides (the fixture's defaults: heartbeat 0.3 s, liveness 1.5 s). */
  networking?: Record<string, unknown>;
  /** false: no Echo plugin on this node. */
  plugins?: boolean;
}

/** A node in a namespace, with its output as a stream of parsed lines to wait on. */
export class NamespacedNode {
  readonly lines: Line[] = [];
  /** When each line arrived (Date.now()), by index. */
  readonly times: number[] = [];
  readonly #waiters: Array<() => void> = [];
  readonly #child: ChildProcess;
  #seq = 0;

  constructor(host: Host, options: NodeOptions = {}) {
    const json = JSON.stringify({
      ...(options.networking ? { networking: options.networking } : {}),
      ...(options.plugins === false ? { plugins: false } : {}),
    });
    this.#child = spawn(
      "ip",
      [
        "netns",
        "exec",
        host.netns,
        process.execPath,
        NODE_SCRIPT,
        host.name,
        host.address,
        JSON.stringify(options.nodeIps ?? []),
        json,
      ],
      { stdio: ["pipe", "pipe", "inherit"] },
    );
    createInterface({ input: this.#child.stdout as NodeJS.ReadableStream }).on("line", (text) => {
      this.lines.push(JSON.parse(text) as Line);
      this.times.push(Date.now());
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

  /** Sends a call (PluginCore.execute's arguments); resolves with its answer line. */
  call(...call: unknown[]): Promise<Line> {
    const id = ++this.#seq;
    this.#child.stdin?.write(`${JSON.stringify({ id, call })}\n`);
    return this.waitFor((line) => line.id === id, `the answer to call ${id}`, 0, 120_000);
  }

  stop(): void {
    this.#child.kill("SIGKILL");
  }
}
