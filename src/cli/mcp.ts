/**
 * `aio mcp`: the endpoints carrying a tag (`mcp` by default), on this node and the nodes it
 * knows, as Model Context Protocol tools over stdio (src/mcp/tools.ts says what a tool is).
 * The list follows plugins and nodes as they come and go (`notifications/tools/list_changed`).
 */
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { loadConfigFile } from "../config/load.js";
import type { TaggedEndpoint } from "../core/types.js";
import { UsageError } from "../errors.js";
import { createMcpServer, type McpSource, ToolCatalog } from "../mcp/tools.js";
import { mcpToken } from "../net/auth.js";
import { EXIT, note, out } from "./output.js";
import { chooseConfig } from "./paths.js";
import { type Target, type TargetOptions, withTarget } from "./target.js";

export interface McpOptions extends TargetOptions {
  tag?: string | undefined;
  /** Print the bearer token the config's node requires at `/mcp`, and exit. */
  token?: boolean | undefined;
}

/** `aio mcp --token`: what an MCP client over HTTP must send to the config's node. */
function printToken(options: McpOptions): number {
  if (options.node !== undefined) {
    throw new UsageError(
      "--token reads the node's config file (--config), not a running node: the token is not sent over the network",
    );
  }
  const { file } = chooseConfig(options.config);
  const networking = loadConfigFile(file).config.networking;
  if (!networking.mcp) note(`networking.mcp is off in ${file}: the node serves no /mcp yet`);
  const token = mcpToken(networking);
  if (token === "") {
    note(
      `no token: ${file} sets neither a secret nor networking.mcp_token, so /mcp takes any client on this machine (the node listens on loopback only)`,
    );
    return EXIT.FAILED;
  }
  out(token);
  return EXIT.OK;
}

/** How often the tool list is read again, to tell the client when it changed. */
const WATCH_MS = 1000;

/**
 * The target as the MCP server's source. Through --node a call runs on that node as an HTTP
 * client's: only its own endpoints that other nodes may call are offered.
 */
async function sourceOf(target: Target): Promise<McpSource> {
  const own = target.kind === "node" ? await target.hostname() : undefined;
  const offered = (e: TaggedEndpoint) =>
    own === undefined || (e.hostname === own && e.endpoint.remote);
  return {
    pinsHost: own === undefined,
    endpoints: async (tag) => (await target.tagged(tag)).filter(offered),
    plugins: async () =>
      (await target.plugins()).map(({ name, version, state, description, remote }) => ({
        name,
        version,
        state,
        description,
        remote,
      })),
    nodes: () => target.nodes(),
    execute: (plugin, method, args, options) => target.execute(plugin, method, args, options),
    stream: (plugin, method, args, options) => target.stream(plugin, method, args, options),
  };
}

export async function mcpCommand(options: McpOptions): Promise<number> {
  if (options.token) return printToken(options);
  const tag = options.tag ?? "mcp";
  return withTarget(options, async (target: Target) => {
    const catalog = new ToolCatalog(await sourceOf(target), tag);
    await catalog.refresh();
    const server = createMcpServer(catalog);
    const transport = new StdioServerTransport();
    const closed = new Promise<void>((resolve) => {
      transport.onclose = () => resolve();
      process.stdin.once("end", () => resolve());
    });
    await server.connect(transport);
    // The list follows plugins and nodes: the client hears when it changed.
    const unwatch = catalog.watch(WATCH_MS, () => {
      void server.sendToolListChanged().catch(() => undefined);
    });
    await closed;
    unwatch();
    await server.close().catch(() => undefined);
  });
}
