/**
 * A node's `/mcp` (`networking.mcp: true`): what an MCP client over HTTP may see and call. It
 * is a remote caller like any HTTP client, so it gets what the node opens to other nodes:
 * endpoints whose plugin and endpoint both say `remote: true`, with the tag, of this node only,
 * and each call is checked by the same access rules (src/core/access.ts) as a call from another
 * node named "mcp" (so a plugin with `allowed_nodes` is offered only if the list names `mcp`).
 */
import type { NetworkingConfig } from "../config/types.js";
import type { Caller } from "../core/call.js";
import type { Dispatcher } from "../core/dispatcher.js";
import type { Topics } from "../core/topics.js";
import type { NodeInfo, PluginInfo } from "../core/types.js";
import type { McpSource } from "../mcp/tools.js";
import { mcpToken } from "../net/auth.js";
import type { McpEndpoint } from "../net/server.js";

/** Who an MCP client over HTTP is, to the access rules. */
export const MCP_CALLER: Caller = { kind: "remote", hostname: "mcp" };

export interface NodeParts {
  hostname: string;
  dispatcher: Dispatcher;
  topics: Topics;
  plugins(): PluginInfo[];
  nodes(): NodeInfo[];
}

export type NodeMcp = McpEndpoint & { close(): Promise<void> };

/** Starts serving MCP for `parts` (the SDK is loaded only here, when `/mcp` is on). */
export async function startMcp(parts: NodeParts, config: NetworkingConfig): Promise<NodeMcp> {
  const { McpHttp } = await import("../mcp/http.js");
  const { hostname, dispatcher, topics } = parts;
  const local = { host: "local" } as const;
  const source: McpSource = {
    pinsHost: false,
    endpoints: async (tag) =>
      topics.findEndpointsByTag(MCP_CALLER, tag).filter((e) => e.hostname === hostname),
    plugins: async () =>
      parts
        .plugins()
        .filter((p) => p.remote)
        .map(({ name, version, state, description, remote }) => ({
          name,
          version,
          state,
          description,
          remote,
        })),
    nodes: async () => parts.nodes(),
    execute: (plugin, method, args, { signal }) =>
      dispatcher.execute(MCP_CALLER, plugin, method, args, { ...local, signal }),
    stream: (plugin, method, args, { signal }) =>
      dispatcher.executeStream(MCP_CALLER, plugin, method, args, { ...local, signal }),
  };
  const http = new McpHttp(source, config.mcp_tag);
  return {
    token: mcpToken(config),
    handle: (request, response, body) => http.handle(request, response, body),
    close: () => http.close(),
  };
}
