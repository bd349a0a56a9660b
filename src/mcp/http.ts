/**
 * MCP over streamable HTTP at a node's `/mcp` (`networking.mcp: true`). Each client that
 * initializes gets a session (the `Mcp-Session-Id` header) with its own SDK server and
 * transport; all sessions share one tool catalog, read again every second while any is open,
 * so a change is noticed once and every client hears `notifications/tools/list_changed`.
 *
 * Authentication (the bearer token) and the Host and Origin checks happen before this, in the
 * node's server, before a byte of the body is read. Sessions are bounded in number and end
 * when idle: nothing a client opens is kept without a bound.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import { createMcpServer, type McpSource, ToolCatalog } from "./tools.js";

/** Sessions open at once; an initialize beyond this is refused (503) until one ends. */
export const MAX_MCP_SESSIONS = 32;
/** A session no request used for this long is closed when a new client needs its place. */
export const MCP_SESSION_IDLE_MS = 10 * 60_000;
const WATCH_MS = 1000;

interface Session {
  server: Server;
  transport: StreamableHTTPServerTransport;
  usedAt: number;
}

/** A JSON-RPC error answer with no id, as the streamable HTTP transport answers them. */
function refuse(response: ServerResponse, status: number, code: number, message: string): void {
  const body = JSON.stringify({ jsonrpc: "2.0", error: { code, message }, id: null });
  response.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
  });
  response.end(body);
}

export class McpHttp {
  readonly #catalog: ToolCatalog;
  readonly #sessions = new Map<string, Session>();
  #unwatch: (() => void) | undefined;
  #closed = false;

  constructor(source: McpSource, tag: string) {
    this.#catalog = new ToolCatalog(source, tag);
  }

  /** Serves one request to `/mcp`; `body` is the parsed JSON of a POST. */
  async handle(request: IncomingMessage, response: ServerResponse, body: unknown): Promise<void> {
    const id = request.headers["mcp-session-id"];
    if (typeof id === "string") {
      const session = this.#sessions.get(id);
      if (!session) {
        refuse(response, 404, -32001, `no MCP session ${id}: it ended; initialize a new one`);
        return;
      }
      session.usedAt = Date.now();
      await session.transport.handleRequest(request, response, body);
      return;
    }
    if (request.method !== "POST" || !isInitializeRequest(body)) {
      refuse(response, 400, -32000, "no Mcp-Session-Id header: initialize a session first");
      return;
    }
    if (this.#sessions.size >= MAX_MCP_SESSIONS) this.#expireIdle();
    if (this.#closed || this.#sessions.size >= MAX_MCP_SESSIONS) {
      refuse(
        response,
        503,
        -32000,
        `${MAX_MCP_SESSIONS} MCP sessions are open; end one (DELETE /mcp) or wait until one is idle for ${MCP_SESSION_IDLE_MS / 60_000} minutes`,
      );
      return;
    }
    await this.#open().handleRequest(request, response, body);
  }

  #open(): StreamableHTTPServerTransport {
    const server = createMcpServer(this.#catalog);
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: randomUUID,
      onsessioninitialized: (id) => {
        this.#sessions.set(id, { server, transport, usedAt: Date.now() });
        this.#watchTools();
      },
      onsessionclosed: (id) => void this.#end(id),
    });
    transport.onclose = () => {
      if (transport.sessionId !== undefined) void this.#end(transport.sessionId);
    };
    void server.connect(transport);
    return transport;
  }

  async #end(id: string): Promise<void> {
    const session = this.#sessions.get(id);
    if (!session) return;
    this.#sessions.delete(id);
    if (this.#sessions.size === 0) {
      this.#unwatch?.();
      this.#unwatch = undefined;
    }
    await session.server.close().catch(() => undefined);
  }

  #expireIdle(): void {
    const before = Date.now() - MCP_SESSION_IDLE_MS;
    for (const [id, session] of this.#sessions) {
      if (session.usedAt < before) void this.#end(id);
    }
  }

  /** While sessions are open: one read of the tools a second, told to every session. */
  #watchTools(): void {
    this.#unwatch ??= this.#catalog.watch(WATCH_MS, () => {
      for (const session of this.#sessions.values()) {
        void session.server.sendToolListChanged().catch(() => undefined);
      }
    });
  }

  /** Ends every session (the node is closing). */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#sessions.keys()].map((id) => this.#end(id)));
  }
}
