/**
 * A node reached through a TCP forward (port forwarding, NAT, a tunnel, a container's port
 * mapping), here a recording proxy on another port of 127.0.0.1:
 *
 * - with a secret, nodes find and call each other through it with no configuration, since
 *   requests are signed for the node's instance, not for the address they were sent to;
 * - what the proxy recorded is refused when replayed to another node sharing the secret, and
 *   by the same node after it restarted;
 * - without a secret, the node refuses the foreign Host, and the error says to add it to
 *   `allowed_hosts`, which then makes it work.
 */
import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import {
  API,
  cleanup,
  closeNode,
  failure,
  freePort,
  pluginDir,
  rawExchange,
  readLog,
  recordingProxy,
  startNode,
  statusOfRaw,
  tempDir,
  waitFor,
} from "./helpers.js";

const SECRET = `forward-${randomBytes(24).toString("hex")}`;
const dir = pluginDir({ Api: API });

afterAll(cleanup);

/**
 * The HTTP requests one client connection carried, each as the exact bytes sent (headers and
 * a body of `content-length` bytes), so a recording can be replayed request by request.
 */
function requestsIn(chunks: Buffer[]): Buffer[] {
  const bytes = Buffer.concat(chunks);
  const requests: Buffer[] = [];
  let at = 0;
  while (at < bytes.length) {
    const end = bytes.indexOf("\r\n\r\n", at);
    if (end < 0) break;
    const head = bytes.toString("latin1", at, end);
    if (!/^[A-Z]+ \S+ HTTP\/1\.1\r\n/.test(head)) break;
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    requests.push(bytes.subarray(at, end + 4 + length));
    at = end + 4 + length;
  }
  return requests;
}

/** Every recorded request whose request line starts with `line` (`POST /info`). */
function recorded(connections: Buffer[][], line: string): Buffer[] {
  return connections
    .flatMap(requestsIn)
    .filter((request) => request.toString("latin1").startsWith(line));
}

describe("through a TCP forward, with a secret", () => {
  it("nodes find and call each other with no configuration; the recording replays nowhere", async () => {
    const port = await freePort();
    let b = await startNode({
      hostname: "B",
      dir,
      plugins: ["Api"],
      networking: { secret: SECRET, port },
    });
    const proxy = await recordingProxy(port);
    const a = await startNode({
      hostname: "A",
      dir,
      networking: { secret: SECRET, node_ips: [`127.0.0.1:${proxy.port}`] },
    });
    // Found at the forwarded address, and called over a channel through it.
    expect(a.nodes()).toEqual([
      expect.objectContaining({ hostname: "B", address: `127.0.0.1:${proxy.port}`, alive: true }),
    ]);
    expect(await a.execute("Api", "add", { a: 2, b: 3 })).toBe(5);

    const info = recorded(proxy.connections, "POST /info");
    const upgrade = recorded(proxy.connections, "GET /aio/channel");
    expect(info.length).toBeGreaterThan(0);
    expect(upgrade.length).toBeGreaterThan(0);
    // Sent again as recorded, to B itself: a replay within the run, refused too.
    expect(statusOfRaw((await rawExchange(port, info[0] as Buffer)).received)).toBe(401);

    // Another node of the same cluster refuses what was signed for B.
    const c = await startNode({
      hostname: "C",
      dir,
      plugins: ["Api"],
      networking: { secret: SECRET },
    });
    for (const request of [...info, ...upgrade]) {
      expect(statusOfRaw((await rawExchange(c.port as number, request)).received)).toBe(401);
    }

    // B restarted on the same port refuses what was signed for its previous run.
    await closeNode(b);
    b = await startNode({
      hostname: "B",
      dir,
      plugins: ["Api"],
      networking: { secret: SECRET, port },
    });
    for (const request of [...info, ...upgrade]) {
      expect(statusOfRaw((await rawExchange(port, request)).received)).toBe(401);
    }
    // While A, which asks who it is before it signs, reaches the new B through the forward.
    await waitFor(
      () =>
        a.execute("Api", "add", { a: 1, b: 1 }, { host: "B" }).then(
          (sum) => sum === 2,
          () => false,
        ),
      "A to call the restarted B through the forward",
    );
    await proxy.close();
  });
});

describe("through a TCP forward, without a secret", () => {
  it("the node refuses the foreign Host and the error says to add it to allowed_hosts; with it, it works", async () => {
    const port = await freePort();
    const b = await startNode({ hostname: "B", dir, plugins: ["Api"], networking: { port } });
    const proxy = await recordingProxy(port);
    const logDir = tempDir("aio-forward-log-");
    const forwarded = `127.0.0.1:${proxy.port}`;
    const a = await startNode({
      hostname: "A",
      dir,
      networking: { node_ips: [forwarded], heartbeat_interval: 30, liveness_timeout: 60 },
      logDir,
    });
    expect(a.nodes()).toEqual([]);
    const error = await failure(a.execute("Api", "add", { a: 2, b: 3 }));
    expect(error.code).toBe("PLUGIN_NOT_FOUND");
    expect(error.message).toContain(
      `refused the Host "${forwarded}": the node knows itself under other names. Add "${forwarded}" to networking.allowed_hosts on that node`,
    );
    await closeNode(a);
    expect(readLog(logDir)).toContain(`cannot reach ${forwarded}`);

    await closeNode(b);
    await startNode({
      hostname: "B",
      dir,
      plugins: ["Api"],
      networking: { port, allowed_hosts: [forwarded] },
    });
    const again = await startNode({ hostname: "A", dir, networking: { node_ips: [forwarded] } });
    expect(await again.execute("Api", "add", { a: 2, b: 3 })).toBe(5);
    await proxy.close();
  });
});
