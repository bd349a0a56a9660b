/**
 * MCP beyond one process: a node's `/mcp` over streamable HTTP (`networking.mcp: true`) driven
 * by the MCP SDK's own client, its bearer token, Origin check and access rules; `aio mcp` over
 * stdio across two nodes; and a client's cancellation reaching the stream at its source, over
 * both transports.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  ProgressNotificationSchema,
  ToolListChangedNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";
import { afterAll, describe, expect, it } from "vitest";
import { waitFor } from "../support.js";
import {
  aio,
  mcpOverStdio,
  project,
  type RunningNode,
  removeTempDirs,
  startNode,
  stopNodes,
} from "./helpers.js";

const SECRET = "mcp-http-test-secret-0123456789abcdef";

/** The house: tools for an agent, one tagged endpoint other nodes may not call, one untagged. */
const HOME = {
  "plugins/Home/plugin.ts": `import { writeFileSync } from "node:fs";
import { Plugin } from "aio-assistant-core";
export class Home extends Plugin {
  set_light(room: string, on: boolean) { return { room, on, node: process.env.AIO_WHO ?? "" }; }
  *rooms() { yield "kitchen"; yield "hall"; }
  async *ticks() {
    let n = 0;
    try {
      for (;;) {
        yield ++n;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      writeFileSync("ticks-stopped", String(n));
    }
  }
  unlock() { return "open"; }
  secret() { return "not a tool"; }
}
`,
  "plugins/Home/plugin_config.yml": `description: The house
version: 1.0.0
remote: true
endpoints:
  - internal_name: set_light
    description: Turns a room's light on or off
    tags: [mcp]
    remote: true
    arguments:
      - name: room
        type: str
        required: true
      - name: on
        type: bool
        required: true
  - internal_name: rooms
    description: The rooms of the house
    tags: [mcp]
    remote: true
  - internal_name: ticks
    description: Counts until stopped
    tags: [mcp]
    remote: true
  - internal_name: unlock
    description: Opens the front door (this node's own plugins only)
    tags: [mcp]
  - internal_name: secret
    remote: true
`,
};

const NETWORKING = "  enabled: true\n  port: 0\n  bind: 127.0.0.1\n  mcp: true\n";

afterAll(async () => {
  await stopNodes();
  removeTempDirs();
});

async function token(dir: string): Promise<string> {
  const printed = await aio(["mcp", "--token", "--config", "config.yml"], {
    cwd: dir,
    env: { AIO_SECRET: SECRET },
  });
  expect(printed.code, printed.stderr).toBe(0);
  return printed.stdout.trim();
}

async function httpClient(node: RunningNode, bearer: string): Promise<Client> {
  const client = new Client({ name: "aio-test", version: "1.0.0" });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${node.url}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${bearer}` } },
    }),
  );
  return client;
}

const INITIALIZE = JSON.stringify({
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: {
    protocolVersion: "2025-06-18",
    capabilities: {},
    clientInfo: { name: "curl", version: "1" },
  },
});

function post(node: RunningNode, headers: Record<string, string>): Promise<Response> {
  return fetch(`${node.url}/mcp`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      ...headers,
    },
    body: INITIALIZE,
  });
}

/** Calls Home.ticks, aborts after three items, and waits for the generator's finally. */
async function cancelTicks(client: Client, dir: string): Promise<void> {
  const progress: unknown[] = [];
  client.setNotificationHandler(ProgressNotificationSchema, (notification) => {
    progress.push(notification.params.message);
  });
  const controller = new AbortController();
  const call = client.callTool({ name: "Home.ticks", arguments: {} }, undefined, {
    signal: controller.signal,
    onprogress: () => undefined,
  });
  const failed = call.then(
    () => "answered",
    (error: unknown) => String(error),
  );
  await waitFor(() => progress.length >= 3, "three ticks as progress");
  controller.abort("enough");
  expect(await failed).toMatch(/abort|cancel|enough/i);
  // The generator on the node was stopped: its finally ran, soon after the third item.
  await waitFor(() => existsSync(join(dir, "ticks-stopped")), "the stream ended at its source");
  expect(Number(readFileSync(join(dir, "ticks-stopped"), "utf8"))).toBeLessThan(100);
}

describe("MCP over streamable HTTP (networking.mcp)", () => {
  it("takes the bearer token only: none, a wrong one, the raw secret, or another site's page are refused", async () => {
    const dir = project(HOME, { plugins: ["Home"], networking: NETWORKING });
    const node = await startNode(dir, ["config.yml"], { AIO_SECRET: SECRET });
    const bearer = await token(dir);
    expect(bearer).toMatch(/^[\w-]{40,}$/);
    expect(bearer).not.toContain(SECRET);

    const none = await post(node, {});
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect(await none.json()).toMatchObject({ error: { code: "UNAUTHORIZED" } });
    expect((await post(node, { authorization: "Bearer wrong-token-0123456789" })).status).toBe(401);
    expect((await post(node, { authorization: `Bearer ${SECRET}` })).status).toBe(401);
    const foreign = await post(node, {
      authorization: `Bearer ${bearer}`,
      origin: "https://evil.example",
    });
    expect(foreign.status).toBe(403);
    // The token opens /mcp and nothing else.
    const plugins = await fetch(`${node.url}/plugins`, {
      headers: { authorization: `Bearer ${bearer}` },
    });
    expect(plugins.status).toBe(401);
    const ok = await post(node, { authorization: `Bearer ${bearer}` });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("mcp-session-id")).toBeTruthy();
    await ok.body?.cancel();
  }, 30_000);

  it("offers the node's own tools other nodes may call; calls, streams, wrong types, disable", async () => {
    const dir = project(HOME, { plugins: ["Home"], networking: NETWORKING });
    const node = await startNode(dir, ["config.yml"], { AIO_SECRET: SECRET, AIO_WHO: "home" });
    const client = await httpClient(node, await token(dir));
    try {
      let changed = 0;
      client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
        changed++;
      });
      const { tools } = await client.listTools();
      // unlock carries the tag but is closed to other nodes; secret has no tag.
      expect(tools.map((t) => t.name).sort()).toEqual([
        "Home.rooms",
        "Home.set_light",
        "Home.ticks",
      ]);

      const result = await client.callTool({
        name: "Home.set_light",
        arguments: { room: "kitchen", on: true },
      });
      expect(result.isError).toBeFalsy();
      expect(result.structuredContent).toEqual({
        result: { room: "kitchen", on: true, node: "home" },
      });

      const progress: unknown[] = [];
      client.setNotificationHandler(ProgressNotificationSchema, (notification) => {
        progress.push(notification.params.message);
      });
      const stream = await client.callTool({ name: "Home.rooms", arguments: {} }, undefined, {
        onprogress: () => undefined,
      });
      expect(stream.structuredContent).toEqual({ result: ["kitchen", "hall"] });
      await waitFor(() => progress.length === 2, "both progress notifications");

      const wrong = await client.callTool({
        name: "Home.set_light",
        arguments: { room: "kitchen", on: "yes" },
      });
      expect(wrong.isError).toBe(true);
      expect(JSON.stringify(wrong.content)).toContain("INVALID_ARGUMENTS");
      const closed = await client.callTool({ name: "Home.unlock", arguments: {} });
      expect(closed.isError).toBe(true);

      const plugins = await client.readResource({ uri: "aio://plugins" });
      expect(JSON.parse(String((plugins.contents[0] as { text?: unknown }).text))).toEqual([
        {
          name: "Home",
          version: "1.0.0",
          state: "enabled",
          description: "The house",
          remote: true,
        },
      ]);

      const disabled = await aio(["console", "--node", node.url], {
        input: "disable Home\n",
        env: { AIO_SECRET: SECRET },
      });
      expect(disabled.code, disabled.stderr).toBe(0);
      await waitFor(() => changed > 0, "notifications/tools/list_changed", 10_000);
      expect((await client.listTools()).tools).toEqual([]);
    } finally {
      await client.close();
    }
  }, 30_000);

  it("a client's cancellation stops the stream on the node", async () => {
    const dir = project(HOME, { plugins: ["Home"], networking: NETWORKING });
    const node = await startNode(dir, ["config.yml"], { AIO_SECRET: SECRET });
    const client = await httpClient(node, await token(dir));
    try {
      await cancelTicks(client, dir);
      // The session goes on after a cancellation.
      const after = await client.callTool({ name: "Home.rooms", arguments: {} });
      expect(after.structuredContent).toEqual({ result: ["kitchen", "hall"] });
    } finally {
      await client.close();
    }
  }, 30_000);

  it("is not served unless networking.mcp is on", async () => {
    const dir = project(HOME, {
      plugins: ["Home"],
      networking: "  enabled: true\n  port: 0\n  bind: 127.0.0.1\n",
    });
    const node = await startNode(dir, ["config.yml"]);
    expect((await post(node, {})).status).toBe(404);
  }, 30_000);
});

describe("aio mcp over stdio, beyond one node", () => {
  it("offers both nodes' tools, told apart by host, and runs each where it was listed", async () => {
    const alpha = project(HOME, {
      plugins: ["Home"],
      general: "  hostname: alpha\n",
      networking: "  enabled: true\n  port: 0\n  bind: 127.0.0.1\n",
    });
    const node = await startNode(alpha, ["config.yml"], { AIO_SECRET: SECRET, AIO_WHO: "alpha" });
    const beta = project(HOME, {
      plugins: ["Home"],
      general: "  hostname: beta\n",
      networking: `  enabled: true\n  port: 0\n  bind: 127.0.0.1\n  node_ips: ["127.0.0.1:${node.port}"]\n`,
    });
    const client = await mcpOverStdio(beta, undefined, { AIO_SECRET: SECRET, AIO_WHO: "beta" });
    try {
      let names: string[] = [];
      await waitFor(async () => {
        names = (await client.listTools()).tools.map((t) => t.name).sort();
        return names.includes("alpha/Home.set_light");
      }, "alpha's tools");
      // Both serve Home: every tool is named with its host. beta's unlock is its own, so it
      // is offered; alpha's is closed to other nodes.
      expect(names).toEqual([
        "Home.unlock",
        "alpha/Home.rooms",
        "alpha/Home.set_light",
        "alpha/Home.ticks",
        "beta/Home.rooms",
        "beta/Home.set_light",
        "beta/Home.ticks",
      ]);
      for (const host of ["alpha", "beta"]) {
        const result = await client.callTool({
          name: `${host}/Home.set_light`,
          arguments: { room: "hall", on: true },
        });
        expect(result.structuredContent).toEqual({
          result: { room: "hall", on: true, node: host },
        });
      }
      // A stream on the other node, cancelled by the client: it stops there.
      const progress: unknown[] = [];
      client.setNotificationHandler(ProgressNotificationSchema, (n) => {
        progress.push(n.params.message);
      });
      const controller = new AbortController();
      const call = client
        .callTool({ name: "alpha/Home.ticks", arguments: {} }, undefined, {
          signal: controller.signal,
          onprogress: () => undefined,
        })
        .catch((error: unknown) => String(error));
      await waitFor(() => progress.length >= 3, "three ticks from alpha");
      controller.abort("enough");
      await call;
      await waitFor(() => existsSync(join(alpha, "ticks-stopped")), "alpha's stream stopped");
    } finally {
      await client.close();
    }
  }, 45_000);

  it("a client's cancellation stops a stream of the node itself", async () => {
    const dir = project(HOME, { plugins: ["Home"] });
    const client = await mcpOverStdio(dir);
    try {
      await cancelTicks(client, dir);
    } finally {
      await client.close();
    }
  }, 30_000);
});
