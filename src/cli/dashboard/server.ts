/**
 * `aio dashboard`: a web page on 127.0.0.1 that shows a node and the mesh it knows (nodes,
 * plugins, endpoints, live call figures, the log) and drives it (a call or stream through a
 * form, publish and watch, enable, disable, reload).
 *
 * The process holds the secret; the browser never sees it: the page talks to this process's
 * own API, which calls the node as `aio` does. That API answers only its own page: the Host must
 * be this server's loopback address (a site that rebinds its name to 127.0.0.1 is refused), an
 * Origin, when a browser sends one, must be this server, and every API request carries the
 * per-run token the printed URL holds in its fragment (never sent to a server, never logged).
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import Fastify, { type FastifyReply, type FastifyRequest } from "fastify";
import type { NodeInfo, PluginInfo } from "../../core/types.js";
import { CliError } from "../../errors.js";
import { ADMIN_ACTIONS, type AdminAction } from "../../net/server.js";
import { patternProblem } from "../../topic-names.js";
import { describeError, note, out } from "../output.js";
import { type Target, type TargetOptions, withTarget } from "../target.js";
import { CallFigures } from "./metrics.js";
import { dashboardPage } from "./page.js";

export interface DashboardOptions extends TargetOptions {
  port?: number | undefined;
}

const TOKEN_HEADER = "x-dashboard-token";
/** How often other nodes are asked for their plugins, at most. */
const PEERS_EVERY_MS = 3000;

class Refusal extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** A call's error as the page shows it: its code and message. */
function errorOf(error: unknown): { code: string; message: string } {
  const code = (error as { code?: unknown }).code;
  return {
    code: typeof code === "string" ? code : "ERROR",
    message: error instanceof Error ? error.message : String(error),
  };
}

function bodyOf(request: FastifyRequest): Record<string, unknown> {
  const body = request.body;
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new Refusal(400, "the body must be a JSON object");
  }
  return body as Record<string, unknown>;
}

function text(value: unknown, what: string): string {
  if (typeof value !== "string" || value === "") throw new Refusal(400, `"${what}" is required`);
  return value;
}

/** Lines of JSON, one per item, ended by `{"end":true}` or `{"error":…}`; `stop` on disconnect. */
function ndjson(
  reply: FastifyReply,
  items: AsyncGenerator<unknown, void, undefined>,
  stop: AbortController,
): FastifyReply {
  async function* lines() {
    try {
      for await (const item of items) yield `${JSON.stringify({ item: item ?? null })}\n`;
      yield `${JSON.stringify({ end: true })}\n`;
    } catch (error) {
      if (!stop.signal.aborted) yield `${JSON.stringify({ error: errorOf(error) })}\n`;
    }
  }
  const body = Readable.from(lines(), { objectMode: false });
  reply.raw.once("close", () => {
    stop.abort();
    void items.return();
  });
  return reply.type("application/x-ndjson").header("cache-control", "no-store").send(body);
}

/** The uPlot files the page loads, from the installed package. */
function uplotAssets(): { js: string; css: string } {
  const require = createRequire(import.meta.url);
  const js = require.resolve("uplot/dist/uPlot.iife.min.js");
  return {
    js: readFileSync(js, "utf8"),
    css: readFileSync(js.replace(/\.iife\.min\.js$/, ".min.css"), "utf8"),
  };
}

/** Serves the dashboard of `target` on 127.0.0.1:`port` until the process is stopped. */
export async function serveDashboard(
  target: Target,
  port: number,
): Promise<{ url: string; close(): Promise<void> }> {
  const token = randomBytes(24).toString("base64url");
  const tokenBytes = Buffer.from(token);
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
  const assets = uplotAssets();
  const figures = new CallFigures();
  let origin = "";
  const hosts = new Set<string>();

  // Before anything else: the Host names this server on loopback, an Origin is this server's.
  app.addHook("onRequest", async (request, reply) => {
    if (!hosts.has(request.headers.host ?? "")) {
      return reply.code(403).send({ error: { code: "UNAUTHORIZED", message: "wrong Host" } });
    }
    const from = request.headers.origin;
    if (
      from !== undefined &&
      from !== origin &&
      from !== origin.replace("127.0.0.1", "localhost")
    ) {
      return reply.code(403).send({ error: { code: "UNAUTHORIZED", message: "wrong Origin" } });
    }
    if (!request.url.startsWith("/api/")) return;
    const given = Buffer.from(String(request.headers[TOKEN_HEADER] ?? ""));
    if (given.length !== tokenBytes.length || !timingSafeEqual(given, tokenBytes)) {
      return reply.code(401).send({
        error: { code: "UNAUTHORIZED", message: "open the URL aio dashboard printed" },
      });
    }
  });
  app.setErrorHandler((error, _request, reply) => {
    const status = error instanceof Refusal ? error.status : 500;
    reply.code(status).send({ error: errorOf(error) });
  });

  // Other nodes' plugins, asked of each node at most every few seconds, in the background: a
  // slow node holds up no answer of this server.
  const peers = new Map<string, PluginInfo[]>();
  let peersAsked = 0;
  let asking = false;
  const askPeers = async (nodes: NodeInfo[]) => {
    // One round at a time: a node that is slow to answer delays the next round, not piles up.
    if (asking || Date.now() - peersAsked < PEERS_EVERY_MS) return;
    asking = true;
    try {
      await Promise.all(
        nodes.map(async (node) => {
          const plugins = await target.peerPlugins(node).catch(() => undefined);
          if (plugins) peers.set(node.hostname, plugins);
          else peers.delete(node.hostname);
        }),
      );
      const known = new Set(nodes.map((node) => node.hostname));
      for (const hostname of peers.keys()) if (!known.has(hostname)) peers.delete(hostname);
    } finally {
      asking = false;
      peersAsked = Date.now();
    }
  };

  const page = dashboardPage();
  app.get("/", (_request, reply) =>
    reply
      .type("text/html; charset=utf-8")
      .header("cache-control", "no-store")
      .header(
        "content-security-policy",
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
      )
      .header("x-frame-options", "DENY")
      .send(page),
  );
  app.get("/favicon.ico", (_request, reply) => reply.code(204).send());
  app.get("/assets/uplot.js", (_request, reply) =>
    reply.type("text/javascript; charset=utf-8").send(assets.js),
  );
  app.get("/assets/uplot.css", (_request, reply) =>
    reply.type("text/css; charset=utf-8").send(assets.css),
  );

  app.get("/api/state", async () => {
    const [hostname, plugins, nodes, endpoints, subscriptions] = await Promise.all([
      target.hostname(),
      target.plugins(),
      target.nodes(),
      target.tagged(undefined),
      target.subscriptions(),
    ]);
    // Through --node a call runs on that node (as any HTTP client's): the form offers its own
    // endpoints. In-process, the node is one of the mesh and calls any node.
    const anywhere = target.kind === "local";
    void askPeers(nodes);
    return {
      where: target.where,
      hostname,
      anywhere,
      plugins,
      peers: Object.fromEntries(peers),
      nodes,
      endpoints,
      subscriptions,
    };
  });
  app.get("/api/metrics", async () => figures.read(await target.metrics()));
  app.post("/api/call", async (request) => {
    const body = bodyOf(request);
    const host = typeof body.host === "string" && body.host !== "" ? body.host : undefined;
    try {
      const result = await target.execute(
        text(body.plugin, "plugin"),
        text(body.method, "method"),
        body.args,
        { host },
      );
      return { result: result ?? null };
    } catch (error) {
      if (error instanceof Refusal) throw error;
      return { error: errorOf(error) };
    }
  });
  app.post("/api/stream", async (request, reply) => {
    const body = bodyOf(request);
    const host = typeof body.host === "string" && body.host !== "" ? body.host : undefined;
    const stop = new AbortController();
    const items = target.stream(
      text(body.plugin, "plugin"),
      text(body.method, "method"),
      body.args,
      {
        host,
        signal: stop.signal,
      },
    );
    return ndjson(reply, items, stop);
  });
  app.post("/api/publish", async (request) => {
    const body = bodyOf(request);
    try {
      return { count: await target.notify(text(body.topic, "topic"), body.args, {}) };
    } catch (error) {
      return { error: errorOf(error) };
    }
  });
  app.post("/api/watch", async (request, reply) => {
    const pattern = bodyOf(request).pattern;
    const wrong = patternProblem(pattern);
    if (wrong) throw new Refusal(400, wrong);
    const stop = new AbortController();
    return ndjson(reply, target.watch(pattern as string, stop.signal), stop);
  });
  app.post("/api/log", async (_request, reply) => {
    const stop = new AbortController();
    return ndjson(reply, target.log(stop.signal), stop);
  });
  app.post("/api/act", async (request) => {
    const body = bodyOf(request);
    const action = body.action;
    if (typeof action !== "string" || !(ADMIN_ACTIONS as readonly string[]).includes(action)) {
      throw new Refusal(400, `"action" must be one of ${ADMIN_ACTIONS.join(", ")}`);
    }
    try {
      await target.act(action as AdminAction, text(body.plugin, "plugin"));
      return { ok: true };
    } catch (error) {
      if (error instanceof Refusal) throw error;
      return { error: errorOf(error) };
    }
  });

  try {
    await app.listen({ host: "127.0.0.1", port });
  } catch (error) {
    if ((error as { code?: string }).code !== "EADDRINUSE") throw error;
    throw new CliError(
      "NETWORK",
      `port ${port} on 127.0.0.1 is in use: choose another with --port, or leave --port out for any free one`,
    );
  }
  const bound = (app.server.address() as AddressInfo).port;
  origin = `http://127.0.0.1:${bound}`;
  hosts.add(`127.0.0.1:${bound}`).add(`localhost:${bound}`);
  return {
    url: `${origin}/#token=${token}`,
    close: () => app.close(),
  };
}

export function dashboardCommand(options: DashboardOptions): Promise<number> {
  return withTarget(options, async (target) => {
    const dashboard = await serveDashboard(target, options.port ?? 0);
    out(`Dashboard of ${target.where}: ${dashboard.url}`);
    note("Open that URL in a browser on this machine; it holds this run's token. Ctrl-C stops.");
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
    await dashboard.close().catch((error: unknown) => note(describeError(error)));
  });
}
