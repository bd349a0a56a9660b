/**
 * The command line over NATS: a short-lived in-process core (`--config`) joins the mesh as it
 * starts, so `aio nodes` lists and `aio call` reaches a node already running, with no wait.
 */
import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { startNatsServer, stopNatsServers } from "../nats-support.js";
import {
  aio,
  configYaml,
  project,
  removeTempDirs,
  startNode,
  stopNodes,
  writeTree,
} from "./helpers.js";

const SECRET = `cli-nats-${randomBytes(16).toString("hex")}`;

afterAll(async () => {
  await stopNodes();
  await stopNatsServers();
  removeTempDirs();
});

describe("aio over NATS", () => {
  it("aio nodes and aio call --config find a running node at once", async () => {
    const server = await startNatsServer();
    const networking = `  enabled: true\n  port: 0\n  bind: 127.0.0.1\n  transport: nats\n  nats:\n    servers: ["${server.url}"]\n`;
    const dir = project({}, { general: "  hostname: alpha\n", networking });
    const alpha = await startNode(dir, ["config.yml"], { AIO_SECRET: SECRET });
    writeTree(dir, {
      "probe.yml": configYaml({ plugins: [], general: "  hostname: probe\n", networking }),
    });
    const env = { AIO_SECRET: SECRET };
    // No --wait: over NATS the default is 0, and the core's start has asked who is there.
    const nodes = await aio(["nodes", "--config", "probe.yml", "--json"], { cwd: dir, env });
    expect(nodes.code, nodes.stderr).toBe(0);
    const listed = JSON.parse(nodes.stdout) as { nodes: Array<{ hostname: string }> };
    expect(listed.nodes.map((node) => node.hostname)).toEqual(["alpha"]);
    const sum = await aio(["call", "Calc", "add", "[2, 3]", "--config", "probe.yml"], {
      cwd: dir,
      env,
    });
    expect(sum.code, sum.stderr).toBe(0);
    expect(sum.stdout).toBe("5\n");
    expect((await alpha.stop()).code).toBe(0);
  });
});
