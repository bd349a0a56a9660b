/**
 * The endpoints carrying a tag, as Model Context Protocol tools, and the plugins and nodes as
 * resources: one MCP server definition (the official SDK's low-level `Server`) for both
 * transports, `aio mcp` over stdio and a node's `/mcp` over streamable HTTP.
 *
 * A tool is named `Plugin.endpoint`, or `host/Plugin.endpoint` where two nodes serve the same
 * one; its input schema is the endpoint's named arguments. A stream's items go out as progress
 * notifications and come back all together. Errors are tool errors with the code and the
 * message; the client's cancellation aborts the call at its source.
 */
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
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

export interface McpCallOptions {
  /** The node that runs the call; undefined: wherever the source sends it. */
  host: string | undefined;
  signal: AbortSignal;
}

/** Where the tools come from and where their calls go. */
export interface McpSource {
  /** The endpoints offered as tools: those with `tag` that the MCP client may call. */
  endpoints(tag: string): Promise<TaggedEndpoint[]>;
  /** Whether a call names the node that listed the endpoint (else the source routes it). */
  readonly pinsHost: boolean;
  plugins(): Promise<unknown>;
  nodes(): Promise<unknown>;
  execute(
    plugin: string,
    method: string,
    args: Record<string, unknown>,
    options: McpCallOptions,
  ): Promise<unknown>;
  stream(
    plugin: string,
    method: string,
    args: Record<string, unknown>,
    options: McpCallOptions,
  ): AsyncIterable<unknown>;
}

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

/**
 * The tools of one source and tag, read again on demand. Every MCP session of a node shares
 * one catalog, so a change is noticed once and told to all of them.
 */
export class ToolCatalog {
  readonly #source: McpSource;
  readonly #tag: string;
  #tools = new Map<string, Offered>();
  #shown = "";
  /** The list last listed to a client or told changed; undefined before the first. */
  #told: string | undefined;

  constructor(source: McpSource, tag: string) {
    this.#source = source;
    this.#tag = tag;
  }

  get source(): McpSource {
    return this.#source;
  }

  /** Reads the tools again. */
  async refresh(): Promise<void> {
    this.#tools = toolsOf(await this.#source.endpoints(this.#tag));
    this.#shown = [...this.#tools.values()].map((t) => JSON.stringify(t.tool)).join("\n");
  }

  /** The tools, as a client is about to be shown them: what a later change is measured from. */
  listed(): Tool[] {
    this.#told = this.#shown;
    return [...this.#tools.values()].map((offered) => offered.tool);
  }

  /**
   * Reads the tools every `ms` and calls `changed` when they differ from those last listed to
   * a client (or last told changed): a client that has seen no list is told nothing. Returns
   * the function that stops it.
   */
  watch(ms: number, changed: () => void): () => void {
    const timer = setInterval(() => {
      this.refresh().then(
        () => {
          if (this.#told === undefined || this.#shown === this.#told) return;
          this.#told = this.#shown;
          changed();
        },
        () => undefined,
      );
    }, ms);
    timer.unref();
    return () => clearInterval(timer);
  }

  /** The tool named `name`, reading the list again if it is not known yet. */
  async find(name: string): Promise<Offered | undefined> {
    if (!this.#tools.has(name)) await this.refresh();
    return this.#tools.get(name);
  }
}

/** What exists, for an agent to read before it calls: the plugins and the nodes. */
function resourcesOf(source: McpSource) {
  return {
    "aio://plugins": {
      name: "plugins",
      description:
        "The plugins of the node: name, version, state, description, whether other nodes may call it",
      read: () => source.plugins(),
    },
    "aio://nodes": {
      name: "nodes",
      description: "The other nodes the node knows: hostname, address, up or down, plugins",
      read: () => source.nodes(),
    },
  } as Record<string, { name: string; description: string; read(): Promise<unknown> }>;
}

/** An MCP server (not yet connected to a transport) offering `catalog`'s tools. */
export function createMcpServer(catalog: ToolCatalog): Server {
  const source = catalog.source;
  const server = new Server(
    { name: "aio-core", version: packageVersion() },
    { capabilities: { tools: { listChanged: true }, resources: {} } },
  );
  const resources = resourcesOf(source);
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
    if (!resource) {
      throw new Error(
        `no resource ${request.params.uri}; there are ${Object.keys(resources).join(", ")}`,
      );
    }
    const text = JSON.stringify(await resource.read());
    return { contents: [{ uri: request.params.uri, mimeType: "application/json", text }] };
  });
  server.setRequestHandler(ListToolsRequestSchema, async () => {
    await catalog.refresh();
    return { tools: catalog.listed() };
  });
  server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
    const offered = await catalog.find(request.params.name);
    if (!offered) {
      return failed(
        Object.assign(new Error(`no tool named "${request.params.name}"`), {
          code: "ENDPOINT_NOT_FOUND",
        }),
      );
    }
    const { endpoint } = offered;
    const args = request.params.arguments ?? {};
    const options: McpCallOptions = {
      host: source.pinsHost ? endpoint.hostname : undefined,
      signal: extra.signal,
    };
    const method = endpoint.endpoint.access_name;
    try {
      if (!isStreamKind(endpoint.endpoint.kind)) {
        return answer(await source.execute(endpoint.plugin, method, args, options));
      }
      const items: unknown[] = [];
      const progressToken = request.params._meta?.progressToken;
      for await (const item of source.stream(endpoint.plugin, method, args, options)) {
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
  return server;
}
