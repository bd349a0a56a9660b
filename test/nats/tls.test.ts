/**
 * NATS over TLS (`tls://` servers and `nats.ca_file`): two nodes call each other through a
 * nats-server that only speaks TLS, with a certificate from the test CA; a node that does not
 * trust that CA starts, and its remote calls fail with NETWORK naming NATS and the certificate.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TestCa, testCa } from "../certs.js";
import { type NatsServer, startNatsServer, stopNatsServers } from "../nats-support.js";
import {
  cleanup,
  LOOPBACK,
  pluginDir,
  rejection,
  rep,
  startNode,
  waitForNode,
} from "../net/helpers.js";

const SECRET = `nats-tls-${randomBytes(16).toString("hex")}`;
const dir = pluginDir({
  Svc: {
    body: `node = "?"; onLoad(args: any) { this.node = args?.node ?? "?"; } who() { return this.node; }`,
    endpoints: [rep("who")],
  },
});

let ca: TestCa;
let server: NatsServer;

beforeAll(async () => {
  ca = testCa();
  const { cert, key } = ca.issue("nats-server");
  server = await startNatsServer({ args: ["--tls", "--tlscert", cert, "--tlskey", key] });
}, 30_000);

afterAll(async () => {
  await cleanup();
  await stopNatsServers();
});

const networking = (caFile: string, prefix: string) =>
  ({
    ...LOOPBACK,
    secret: SECRET,
    transport: "nats",
    nats: {
      servers: [server.url.replace("nats://", "tls://")],
      ca_file: caFile,
      subject_prefix: prefix,
    },
  }) as never;

describe("NATS over TLS", () => {
  it("nodes trusting the server's CA find and call each other", async () => {
    const b = await startNode({
      hostname: "B",
      dir,
      plugins: [{ name: "Svc", arguments: { node: "B" } }],
      networking: networking(ca.ca, "tls1"),
    });
    const a = await startNode({ hostname: "A", dir, networking: networking(ca.ca, "tls1") });
    await waitForNode(a, "B", (n) => n.plugins.includes("Svc"));
    expect(await a.execute("Svc", "who", undefined, { host: "B" })).toBe("B");
    expect(b.hostname).toBe("B");
  });

  it("a node that does not trust the certificate starts; its remote calls say why", async () => {
    const other = testCa();
    const a = await startNode({ hostname: "A2", dir, networking: networking(other.ca, "tls2") });
    const error = await rejection(a.execute("Svc", "who", undefined, { host: "remote" }));
    expect(error.code).toMatch(/NETWORK|NO_NODE/);
    expect(error.message).toMatch(/NATS/);
    expect(error.message).toMatch(/certificate|self.signed|verify|TLS/i);
  });
});
