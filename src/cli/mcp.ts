/**
 * `aio mcp`: the endpoints carrying a tag (`mcp` by default), on this node and the nodes it
 * knows, as Model Context Protocol tools over stdio, with the official SDK's server. A tool is
 * named `Plugin.endpoint`, or `host/Plugin.endpoint` where two nodes serve the same one; its
 * input schema is the endpoint's named arguments; a stream's items go out as progress
 * notifications and come back all together. Errors are tool errors with the code and the
 * message; the client's cancellation stops the call at its source. The list follows plugins and
 * nodes as they come and go (`notifications/tools/list_changed`).
 */
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import {
  CallToolRequestSchema,
  type CallToolResult,
  ListResourcesRequestSchema,
  ListToolsRequestSchema,
  ReadResourceRequestSchema,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js";
import { isStreamKind } from "../core/endpoint.js";
import type { TaggedEndpoint } from "../core/types.js";
import { namedArgumentsSchema } from "../net/openapi.js";
import { packageVersion } from "../version.js";
import { type Target, type TargetOptions, withTarget } from "./target.js";

export interface McpOptions extends TargetOptions {
  tag?: string | undefined;
}

/** How often the tool list is read again, to tell the client when it changed. */
const WATCH_MS = 1000;

interface Offered {
  tool: Tool;
  endpoint: TaggedEndpoint;
}

/** The tools for these endpoints: `Plugin.endpoint`, qualified by host where two nodes have it. */
function toolsOf(endpoints: TaggedEndpoint[]): Map<string, Offered> {
  const count = new Map<string, number>();
  for (const e of endpoints) {
    const name = `${e.plugin}.${e.endpoint.access_name}`;
    count.set(name, (count.get(name) ?? 0) + 1);
  }
  const tools = new Map<string, Offered>();
  for (const e of endpoints) {
    const plain = `${e.plugin}.${e.endpoint.access_name}`;
    const name = (count.get(plain) ?? 0) > 1 ? `${e.hostname}/${plain}` : plain;
    const kind = isStreamKind(e.endpoint.kind) ? "a stream: its items come as progress" : "";
    tools.set(name, {
      endpoint: e,
      tool: {
        name,
        description:
          [e.endpoint.description, `On node ${e.hostname}.`, kind].filter(Boolean).join(" ") ||
          name,
        inputSchema: namedArgumentsSchema(e.endpoint.arguments) as Tool["inputSchema"],
      },
    });
  }
  return tools;
}

function failed(error: unknown): CallToolResult {
  const code = (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : String(error);
  return {
    isError: true,
    content: [{ type: "text", text: typeof code === "string" ? `${code}: ${message}` : message }],
  };
}

/** What a call or stream returned, as text and as structured content. */
function answer(result: unknown): CallToolResult {
  const text = result === undefined ? "null" : JSON.stringify(result);
  return {
    content: [{ type: "text", text }],
    structuredContent: { result: result === undefined ? null : result },
  };
}

export function mcpCommand(options: McpOptions): Promise<number> {
  const tag = options.tag ?? "mcp";
  return withTarget(options, async (target: Target) => {
    // Through --node a call runs on that node as an HTTP client's: only its own endpoints
    // that other nodes may call are offered.
    const own = target.kind === "node" ? await target.hostname() : undefined;
    const offered = (e: TaggedEndpoint) =>
      own === undefined || (e.hostname === own && e.endpoint.remote);
    const read = async () => toolsOf((await target.tagged(tag)).filter(offered));
    let tools = await read();
    const server = new Server(
      { name: "aio-core", version: packageVersion() },
      { capabilities: { tools: { listChanged: true }, resources: {} } },
    );
    // What exists, for an agent to read before it calls: the plugins and the nodes.
    const resources: Record<
      string,
      { name: string; description: string; read(): Promise<unknown> }
    > = {
      "aio://plugins": {
        name: "plugins",
        description:
          "The plugins of the node: name, version, state, description, whether other nodes may call it",
        read: async () =>
          (await target.plugins()).map(({ name, version, state, description, remote }) => ({
            name,
            version,
            state,
            description,
            remote,
          })),
      },
      "aio://nodes": {
        name: "nodes",
        description: "The other nodes the node knows: hostname, address, up or down, plugins",
        read: () => target.nodes(),
      },
    };
    server.setRequestHandler(ListResourcesRequestSchema, async () => ({
      resources: Object.entries(resources).map(([uri, r]) => ({
        uri,
        name: r.name,
        description: r.description,
        mimeType: "application/json",
      })),
    }));
    server.setRequestHandler(ReadResourceRequestSchema, async (request) => {
      const resource = resources[request.params.uri];
      if (!resource)
        throw new Error(
          `no resource ${request.params.uri}; there are ${Object.keys(resources).join(", ")}`,
        );
      return {
        contents: [
          {
            uri: request.params.uri,
            mimeType: "application/json",
            text: JSON.stringify(await resource.read()),
          },
        ],
      };
    });
    server.setRequestHandler(ListToolsRequestSchema, async () => {
      tools = await read();
      return { tools: [...tools.values()].map((offered) => offered.tool) };
    });
    server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
      const offered = tools.get(request.params.name) ?? (await read()).get(request.params.name);
      if (!offered) {
        return failed(
          Object.assign(new Error(`no tool named "${request.params.name}"`), {
            code: "ENDPOINT_NOT_FOUND",
          }),
        );
      }
      const { endpoint } = offered;
      const args = request.params.arguments ?? {};
      const callOptions = {
        host: own === undefined ? endpoint.hostname : undefined,
        signal: extra.signal,
      };
      const method = endpoint.endpoint.access_name;
      try {
        if (!isStreamKind(endpoint.endpoint.kind)) {
          return answer(await target.execute(endpoint.plugin, method, args, callOptions));
        }
        const items: unknown[] = [];
        const progressToken = request.params._meta?.progressToken;
        for await (const item of target.stream(endpoint.plugin, method, args, callOptions)) {
          items.push(item);
          if (progressToken !== undefined) {
            await extra.sendNotification({
              method: "notifications/progress",
              params: { progressToken, progress: items.length, message: JSON.stringify(item) },
            });
          }
        }
        return answer(items);
      } catch (error) {
        return failed(error);
      }
    });
    const transport = new StdioServerTransport();
    const closed = new Promise<void>((resolve) => {
      transport.onclose = () => resolve();
      process.stdin.once("end", () => resolve());
    });
    await server.connect(transport);
    // The list follows plugins and nodes: the client hears when it changed.
    const listed = () => [...tools.values()].map((t) => JSON.stringify(t.tool)).join("\n");
    let shown = listed();
    const watch = setInterval(() => {
      void read().then((now) => {
        const before = shown;
        tools = now;
        shown = listed();
        if (shown !== before) void server.sendToolListChanged().catch(() => undefined);
      });
    }, WATCH_MS);
    await closed;
    clearInterval(watch);
    await server.close().catch(() => undefined);
  });
}
