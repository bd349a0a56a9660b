/**
 * `aio run` and the commands that talk to a running node (`--node URL`): the start-up summary,
 * calls and streams over HTTP signed with AIO_SECRET (and answers checked), the operator
 * listings, and the graceful and forced ends of `aio run`.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  aio,
  configYaml,
  project,
  type RunningNode,
  removeTempDirs,
  startNode,
  stopNodes,
  writeTree,
} from "./helpers.js";

const SECRET = "cli-test-secret-0123456789";
// Bound to loopback: no mDNS; other nodes only through node_ips and the /info exchange.
const NETWORK = `  enabled: true\n  port: 0\n  bind: 127.0.0.1\n`;

let dir: string;
let node: RunningNode;
/** Answers like a node, but does not know the secret. */
let fake: Server;
let fakeUrl: string;

beforeAll(async () => {
  dir = project(
    {},
    {
      general: "  hostname: alpha\n",
      extraEntries: "  - name: Ghost\n    enabled: true\n",
      networking: NETWORK,
    },
  );
  // At INFO, it logs the nodes it finds ("Found node …"), which a test awaits.
  node = await startNode(dir, ["config.yml", "--log-level", "info"], { AIO_SECRET: SECRET });
  fake = createServer((request, response) => {
    if (request.url === "/ping") {
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify({ status: "ok", instance: "fake", time: Date.now() }));
      return;
    }
    if (request.url === "/execute_stream") {
      response.writeHead(200, { "content-type": "application/x-ndjson" });
      response.end(
        `{"item":1,"mac":"${"0".repeat(64)}"}\n{"end":true,"mac":"${"0".repeat(64)}"}\n`,
      );
      return;
    }
    response.writeHead(200, {
      "content-type": "application/json",
      "x-aio-answer": "f".repeat(64),
    });
    response.end('{"result":666}');
  });
  await new Promise<void>((resolve) => fake.listen(0, "127.0.0.1", resolve));
  fakeUrl = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => fake.close(() => resolve()));
  await stopNodes();
  removeTempDirs();
});

const withSecret = { env: { AIO_SECRET: SECRET } };

describe.concurrent("aio run, and commands for a running node", () => {
  it("summarizes what runs: plugins with version, state, load time, isolation; failures; address; nodes", () => {
    const out = node.stdout;
    expect(out).toContain(`Config: ${dir}/config.yml`);
    expect(out).toContain('Node "alpha" is running');
    expect(out).toMatch(/Listening on http:\/\/127\.0\.0\.1:\d+\n/);
    expect(out).toMatch(/PLUGIN\s+VERSION\s+STATE\s+LOAD\s+ISOLATION\s+REMOTE/);
    expect(out).toMatch(/Calc\s+1\.2\.3\s+enabled\s+\d+(\.\d+)? m?s\s+none\s+yes/);
    expect(out).toMatch(/Ghost\s+-\s+failed\s+-\s+none\s+no/);
    expect(out).toMatch(/Failed:\n\s+Ghost: .*folder not found/);
    expect(out).toContain("Nodes: none found yet");
    expect(out).toContain("Press Ctrl-C to stop.");
  });

  it("exits 1 on a config error", async () => {
    const other = project({}, { networking: NETWORK });
    writeTree(other, { "config.yml": "plugins:\n  - name: [oops\n" });
    const broken = await aio(["run", "config.yml"], { cwd: other });
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/^CONFIG_INVALID: config\.yml:\d+ YAML syntax error/m);
  });

  it("aio call signs its request and prints the result", async () => {
    const r = await aio(["call", "Calc", "add", "[20, 22]", "--node", node.url], withSecret);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("42\n");
  });

  it("without the secret, or with a wrong one: UNAUTHORIZED, exit 1", async () => {
    const [none, wrong] = await Promise.all([
      aio(["call", "Calc", "add", "[1, 2]", "--node", node.url]),
      aio(["call", "Calc", "add", "[1, 2]", "--node", node.url], { env: { AIO_SECRET: "nope" } }),
    ]);
    expect(none.code).toBe(1);
    expect(none.stdout).toBe("");
    expect(none.stderr).toMatch(/^UNAUTHORIZED: .*requires a secret: set AIO_SECRET/m);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/^UNAUTHORIZED: .*not the node's secret/m);
  });

  it("aio stream prints the items of a signed stream, each line's MAC checked", async () => {
    const r = await aio(
      ["stream", "Calc", "count", "4", "--node", node.url.replace("http://", "")],
      withSecret,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("1\n2\n3\n4\n");
  });

  it("passes the node's errors on as CODE: message", async () => {
    const [threw, missing, args, host, timeout] = await Promise.all([
      aio(["call", "Calc", "fail", '"nope"', "--node", node.url], withSecret),
      aio(["stream", "Calc", "nothing", "--node", node.url], withSecret),
      aio(["call", "Calc", "add", "[1, 2, 3]", "--node", node.url], withSecret),
      aio(["call", "Calc", "add", "[1, 2]", "--node", node.url, "--host", "gamma"], withSecret),
      aio(["call", "Calc", "slow", "3000", "--node", node.url, "--timeout", "200"], withSecret),
    ]);
    expect(threw.stderr).toMatch(/^PLUGIN_ERROR: .*nope/m);
    expect(missing.stderr).toMatch(/^ENDPOINT_NOT_FOUND: /m);
    expect(args.stderr).toMatch(/^INVALID_ARGUMENTS: /m);
    expect(host.stderr).toMatch(/^NO_NODE: --host gamma: .*"alpha"/m);
    expect(timeout.stderr).toMatch(/^TIMEOUT: /m);
    for (const r of [threw, missing, args, host, timeout]) expect(r.code).toBe(1);
    const same = await aio(
      ["call", "Calc", "add", "[1, 2]", "--node", node.url, "--host", "alpha"],
      withSecret,
    );
    expect(same.stdout).toBe("3\n");
  });

  it("aio plugins: a table, or JSON with --json", async () => {
    const [table, json] = await Promise.all([
      aio(["plugins", "--node", node.url], withSecret),
      aio(["plugins", "--node", node.url, "--json"], withSecret),
    ]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(
      /^PLUGIN\s+VERSION\s+STATE\s+LOAD\s+ISOLATION\s+REMOTE\nCalc\s+1\.2\.3\s+enabled/,
    );
    expect(table.stdout).toMatch(/Failed:\n\s+Ghost: /);
    const parsed = JSON.parse(json.stdout) as {
      hostname: string;
      plugins: Array<{ name: string; state: string }>;
    };
    expect(parsed.hostname).toBe("alpha");
    expect(parsed.plugins.map((p) => [p.name, p.state])).toEqual([
      ["Calc", "enabled"],
      ["Ghost", "failed"],
    ]);
  });

  it("aio endpoints: a table, JSON, and PLUGIN_NOT_FOUND", async () => {
    const [table, json, missing] = await Promise.all([
      aio(["endpoints", "Calc", "--node", node.url], withSecret),
      aio(["endpoints", "Calc", "--node", node.url, "--json"], withSecret),
      aio(["endpoints", "Nope", "--node", node.url], withSecret),
    ]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(
      /^ENDPOINT\s+KIND\s+ARGUMENTS\s+REMOTE\s+OTHER PLUGINS\s+DESCRIPTION\n/,
    );
    expect(table.stdout).toMatch(
      /add\s+function\s+a: number, b\?: number = 1\s+yes\s+no\s+Adds two numbers/,
    );
    expect(table.stdout).toMatch(/ticks\s+async generator\s+n\?: int = 3, ms\?: int = 10/);
    const parsed = JSON.parse(json.stdout) as {
      plugin: string;
      endpoints: Array<{ access_name: string; kind: string }>;
    };
    expect(parsed.plugin).toBe("Calc");
    expect(parsed.endpoints.map((e) => e.kind)).toEqual([
      "function",
      "function",
      "async function",
      "function",
      "generator",
      "async generator",
    ]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^PLUGIN_NOT_FOUND: /m);
  });

  it("a node that cannot be reached: NETWORK, exit 1; a malformed URL: exit 2", async () => {
    const [down, bad] = await Promise.all([
      aio(["plugins", "--node", "http://127.0.0.1:9"]),
      aio(["plugins", "--node", "ftp://127.0.0.1:9"]),
    ]);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/^NETWORK: http:\/\/127\.0\.0\.1:9: connection refused/m);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("must be an http:// or https:// URL");
  });

  it("a forged answer or stream line is UNAUTHORIZED and never printed", async () => {
    const [call, stream, unsigned] = await Promise.all([
      aio(["call", "Calc", "add", "[1, 2]", "--node", fakeUrl], withSecret),
      aio(["stream", "Calc", "count", "2", "--node", fakeUrl], withSecret),
      aio(["call", "Calc", "add", "[1, 2]", "--node", fakeUrl]),
    ]);
    expect(call.code).toBe(1);
    expect(call.stdout).toBe("");
    expect(call.stderr).toMatch(/^UNAUTHORIZED: .*without proof that it knows the secret/m);
    expect(stream.code).toBe(1);
    expect(stream.stdout).toBe("");
    expect(stream.stderr).toMatch(/^UNAUTHORIZED: /m);
    // Without a secret there is nothing to check.
    expect(unsigned.stdout).toBe("666\n");
  });
});

/**
 * Tests that start nodes of their own run one at a time, after the concurrent ones. Their
 * deadlines (15 s for a node to start, 20 s a test) then cover their own work, a few `aio`
 * processes of under a second of CPU each, not that of every test starting processes at the
 * same moment: among those, on a busy machine, a node took more than 15 s to start.
 */
describe("aio run, with nodes of the test's own", () => {
  it("lists the nodes it found", async () => {
    // beta and probe serve no plugin: what is looked at here is finding alpha.
    const other = project(
      {},
      {
        plugins: [],
        general: "  hostname: beta\n",
        networking: `${NETWORK}  node_ips: ["127.0.0.1:${node.port}"]\n`,
      },
    );
    const beta = await startNode(other, ["config.yml"], { AIO_SECRET: SECRET });
    expect(beta.stdout).toMatch(
      /Nodes:\nNODE\s+ADDRESS\s+STATE\s+LAST SEEN\s+PLUGINS\nalpha\s+127\.0\.0\.1:\d+\s+up\s+\S.*\s+Calc/,
    );
    // alpha learns of beta when beta asks it /info, and contacts it back: soon, not at once.
    await node.waitFor('Found node "beta"', 15_000, "stderr");
    const nodes = await aio(["nodes", "--node", node.url, "--json"], withSecret);
    expect(nodes.code, nodes.stderr).toBe(0);
    const listed = JSON.parse(nodes.stdout) as {
      hostname: string;
      nodes: Array<{ hostname: string; alive: boolean }>;
    };
    expect(listed.hostname).toBe("alpha");
    expect(listed.nodes).toEqual([expect.objectContaining({ hostname: "beta", alive: true })]);
    // In-process: the core contacts alpha while it starts.
    writeTree(other, {
      "probe.yml": configYaml({
        plugins: [],
        general: "  hostname: probe\n",
        networking: `${NETWORK}  node_ips: ["127.0.0.1:${node.port}"]\n`,
      }),
    });
    const local = await aio(["nodes", "--config", "probe.yml", "--wait", "0"], {
      cwd: other,
      env: { AIO_SECRET: SECRET },
    });
    expect(local.code, local.stderr).toBe(0);
    expect(local.stdout).toMatch(
      /^NODE\s+ADDRESS\s+STATE\s+LAST SEEN\s+PLUGINS\nalpha\s+127\.0\.0\.1:\d+\s+up/,
    );
    const table = await aio(["nodes", "--node", beta.url], withSecret);
    expect(table.stdout).toMatch(
      /^NODE\s+ADDRESS\s+STATE\s+LAST SEEN\s+PLUGINS\nalpha\s+127\.0\.0\.1:\d+\s+up/,
    );
    expect((await beta.stop()).code).toBe(0);
  });

  it("SIGTERM: the call in flight finishes, then the node exits 0", async () => {
    const other = project({}, { networking: NETWORK });
    const open = await startNode(other);
    const call = aio(["call", "Calc", "slow", "1000", "--node", open.url]);
    await open.waitFor("slow call of 1000 ms started", 15_000, "stderr");
    const stopped = open.stop("SIGTERM");
    const result = await call;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe('"done"\n');
    expect((await stopped).code).toBe(0);
    expect(open.stdout).toContain("SIGTERM: shutting down");
  });

  it("a second signal exits at once with 130", async () => {
    const other = project({
      "plugins/Stuck/plugin.ts": `import { Plugin } from "aio-assistant-core";
export class Stuck extends Plugin {
  override async onDisable(): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 60_000));
  }
}
`,
      "plugins/Stuck/plugin_config.yml":
        "description: never stops\nversion: 1.0.0\nendpoints: []\n",
      "config.yml": configYaml({ plugins: ["Stuck"], general: "  lifecycle_timeout: 120\n" }),
    });
    const stuck = await startNode(other);
    stuck.child.kill("SIGINT");
    await stuck.waitFor("SIGINT: shutting down");
    const started = Date.now();
    stuck.child.kill("SIGINT");
    const { code } = await stuck.exited;
    expect(code).toBe(130);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(stuck.stderr).toContain("SIGINT again: exiting without waiting for plugins");
  });
});
