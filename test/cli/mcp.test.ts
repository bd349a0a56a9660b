/**
 * `aio mcp` over stdio, driven by the MCP SDK's own client: endpoints tagged `mcp` become tools
 * with their arguments as input schema; a call returns text and structured content; a stream's
 * items come as progress and all together; wrong arguments are a tool error with the code;
 * endpoints without the tag are not offered.
 */
import {
  ProgressNotificationSchema,
  ToolListChangedNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";
import { afterAll, describe, expect, it } from "vitest";
import { waitFor } from "../support.js";
import { aio, mcpOverStdio, project, removeTempDirs, startNode, stopNodes } from "./helpers.js";

const HOME = {
  "plugins/Home/plugin.ts": `import { Plugin } from "aio-assistant-core";
export class Home extends Plugin {
  #lights = new Map<string, boolean>();
  set_light(room: string, on: boolean) { this.#lights.set(room, on); return { room, on }; }
  *rooms() { yield "kitchen"; yield "hall"; }
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
  - internal_name: secret
`,
};

afterAll(async () => {
  await stopNodes();
  removeTempDirs();
});

/** A resource's text (resources here are JSON text, not binary). */
const textOf = (content: unknown) => String((content as { text?: unknown } | undefined)?.text);

describe("aio mcp", () => {
  it("offers the tagged endpoints as tools, calls them, streams, and reports errors", async () => {
    const dir = project(HOME, { plugins: ["Home"] });
    const client = await mcpOverStdio(dir);
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name).sort()).toEqual(["Home.rooms", "Home.set_light"]);
      const setLight = tools.find((t) => t.name === "Home.set_light");
      expect(setLight?.description).toContain("Turns a room's light on or off");
      expect(setLight?.inputSchema).toMatchObject({
        type: "object",
        properties: { room: { type: "string" }, on: { type: "boolean" } },
        required: ["room", "on"],
      });

      const result = await client.callTool({
        name: "Home.set_light",
        arguments: { room: "kitchen", on: true },
      });
      expect(result.isError).toBeFalsy();
      expect(result.structuredContent).toEqual({ result: { room: "kitchen", on: true } });
      expect(result.content).toEqual([{ type: "text", text: '{"room":"kitchen","on":true}' }]);

      // Every progress notification, recorded as it arrives: the SDK's own handler hands them
      // to `onprogress` a microtask late and drops those still queued when the answer is in.
      const progress: unknown[] = [];
      client.setNotificationHandler(ProgressNotificationSchema, (notification) => {
        progress.push(notification.params.message);
      });
      const stream = await client.callTool({ name: "Home.rooms", arguments: {} }, undefined, {
        onprogress: () => undefined,
      });
      expect(stream.structuredContent).toEqual({ result: ["kitchen", "hall"] });
      await waitFor(() => progress.length === 2, "both progress notifications");
      expect(progress).toEqual(['"kitchen"', '"hall"']);

      const wrong = await client.callTool({
        name: "Home.set_light",
        arguments: { room: "kitchen", on: "yes" },
      });
      expect(wrong.isError).toBe(true);
      expect(JSON.stringify(wrong.content)).toContain("INVALID_ARGUMENTS");
      const unknown = await client.callTool({ name: "Home.secret", arguments: {} });
      expect(unknown.isError).toBe(true);

      // The plugins and nodes, as resources an agent reads before it calls.
      const { resources } = await client.listResources();
      expect(resources.map((r) => r.uri).sort()).toEqual(["aio://nodes", "aio://plugins"]);
      const plugins = await client.readResource({ uri: "aio://plugins" });
      expect(JSON.parse(textOf(plugins.contents[0]))).toEqual([
        {
          name: "Home",
          version: "1.0.0",
          state: "enabled",
          description: "The house",
          remote: true,
        },
      ]);
      const nodes = await client.readResource({ uri: "aio://nodes" });
      expect(JSON.parse(textOf(nodes.contents[0]))).toEqual([]);
    } finally {
      await client.close();
    }
  }, 30_000);

  it("--node: the node's tools; a plugin disabled there leaves the list, and the client is told", async () => {
    const secret = "mcp-test-secret-0123456789abcdef";
    const dir = project(HOME, {
      plugins: ["Home"],
      networking: "  enabled: true\n  port: 0\n  bind: 127.0.0.1\n",
    });
    const node = await startNode(dir, ["config.yml"], { AIO_SECRET: secret });
    const client = await mcpOverStdio(dir, ["--node", node.url], { AIO_SECRET: secret });
    try {
      let changed = 0;
      client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
        changed++;
      });
      expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual([
        "Home.rooms",
        "Home.set_light",
      ]);
      const call = await client.callTool({
        name: "Home.set_light",
        arguments: { room: "hall", on: false },
      });
      expect(call.structuredContent).toEqual({ result: { room: "hall", on: false } });
      const disabled = await aio(["console", "--node", node.url], {
        input: "disable Home\n",
        env: { AIO_SECRET: secret },
      });
      expect(disabled.code, disabled.stderr).toBe(0);
      await waitFor(() => changed > 0, "notifications/tools/list_changed", 10_000);
      expect((await client.listTools()).tools).toEqual([]);
    } finally {
      await client.close();
    }
  }, 30_000);
});
