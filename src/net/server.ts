/**
 * The node's HTTP server: the five endpoints of the node protocol for any HTTP client, and the
 * WebSocket channel other nodes call through, on the same port.
 */
import { randomBytes } from "node:crypto";
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { type AddressInfo, isIP } from "node:net";
import { networkInterfaces } from "node:os";
import type { Duplex } from "node:stream";
import { Readable } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { WebSocketServer } from "ws";
import type { EndpointInfo } from "../core/endpoint.js";
import type {
  NodeInfo,
  PluginInfo,
  SubscriptionInfo,
  TaggedEndpoint,
  TopicMessage,
} from "../core/types.js";
import {
  AioError,
  callErrors,
  REQUEST_ERROR_STATUS,
  RequestError,
  type RequestErrorCode,
  Unauthorized,
  type WireError,
  WireProblem,
} from "../errors.js";
import type { Logger, LogLine } from "../log.js";
import { patternProblem } from "../topic-names.js";
import {
  ChannelSigner,
  HEADER_ANSWER,
  HEADER_NONCE,
  MAX_SKEW_MS,
  NonceCache,
  SecretKey,
  StreamMac,
  sessionKey,
  signAnswer,
} from "./auth.js";
import { BodyBudget, MAX_ANSWER_BYTES, PeerLimiter, Tarpit } from "./limits.js";
import {
  Canceller,
  ChannelSession,
  callerKey,
  callOptions,
  type LocalCalls,
  remoteCaller,
  wireErrorOf,
} from "./serve.js";
import {
  hasBody,
  installAuth,
  MCP_PATH,
  type RequestAuth,
  refuseRaw,
  UNAUTHORIZED_BODY,
  UNAUTHORIZED_BYTES,
  unauthorized,
  verifyHeaders,
} from "./server-auth.js";
import type { PacketPipe } from "./transport.js";
import { FLUSH_BYTES, PacketChannel } from "./transports/channel/packet-channel.js";
import {
  decodeUtf8,
  type InfoAnswer,
  type InfoRequest,
  parseJson,
  readCall,
  readInfoRequest,
  type WireCall,
} from "./wire.js";

export const CHANNEL_PATH = "/aio/channel";
const EXECUTE_PATH = "/execute";

/** How long a closing node lets its connections end by themselves before it ends them. */
const CLOSE_GRACE_MS = 1000;

export interface HasPluginAnswer {
  available: boolean;
  remote: boolean;
  hostname: string;
  plugin_uuid: string;
}

export interface ServerOptions {
  hostname: string;
  /** This run's instance id: what signed requests must be signed for. */
  instance: string;
  /** Shared secret; empty: no authentication (the node then listens on loopback only). */
  secret: string;
  /** With a secret: a bearer token `GET /metrics` accepts instead of a signature; "" for none. */
  metricsToken: string;
  /** MCP over streamable HTTP at `/mcp`, when the node serves it. */
  mcp?: McpEndpoint | undefined;
  /** Certificate and key: the node serves HTTPS (and WSS). */
  tls?: { cert: Buffer; key: Buffer };
  bind: string;
  port: number;
  logger: Logger;
  calls: LocalCalls;
  /** Bytes a request body may have. */
  bodyLimit: number;
  /** Calls one peer address may have in progress at once. */
  maxCallsPerPeer: number;
  /** Milliseconds a client may take to send a request's headers, and its whole body. */
  readTimeoutMs: number;
  /**
   * Host header values accepted besides IP addresses, localhost and `hostname`, on a node
   * without a secret (with one, signatures name the node and any Host is accepted).
   */
  allowedHosts: readonly string[];
  /** How deep a received JSON value may nest. */
  maxDepth: number;
  /** The `/info` answer, or undefined where this node is not direct_discoverable (418). */
  info(request: InfoRequest, from: string): InfoAnswer | undefined;
  hasPlugin(name: string, method: string | undefined, uuid: string | undefined): HasPluginAnswer;
  /** The operator's view and controls (`aio plugins`, `aio nodes`, `aio console --node`). */
  admin: AdminApi;
}

/** What serves `/mcp` (src/mcp/http.ts); the server authenticates before it. */
export interface McpEndpoint {
  /** The bearer token `/mcp` requires; "" for none (only on a node without a secret). */
  token: string;
  /** Answers one request; `body` is the parsed JSON of a POST. */
  handle(request: IncomingMessage, response: ServerResponse, body: unknown): Promise<void>;
}

export const ADMIN_ACTIONS = ["load", "enable", "disable", "reload", "pop", "purge"] as const;
export type AdminAction = (typeof ADMIN_ACTIONS)[number];

export interface AdminApi {
  plugins(): PluginInfo[];
  nodes(): NodeInfo[];
  endpoints(plugin: string): EndpointInfo[] | undefined;
  /** Endpoints with `tag` (every one without) of this node and the nodes it knows, as the operator may call them. */
  tagged(tag: string | undefined): TaggedEndpoint[];
  subscriptions(): SubscriptionInfo[];
  /** The node's HTTP interface as OpenAPI 3.1. */
  openapi(): Record<string, unknown>;
  /** `GET /metrics`: Prometheus's text format. */
  metrics(): Promise<{ contentType: string; text: string }>;
  /** Every publish to `pattern` this node hears, until the consumer stops. */
  watch(pattern: string): AsyncGenerator<TopicMessage, void, undefined>;
  /** The recent log lines, then each new one, until the consumer stops. */
  log(): AsyncGenerator<LogLine, void, undefined>;
  act(action: AdminAction, plugin: string | undefined): Promise<void>;
}

function statusOf(code: string): number {
  return REQUEST_ERROR_STATUS[code as RequestErrorCode] ?? 500;
}

function sendError(reply: FastifyReply, error: WireError): FastifyReply {
  return reply.code(statusOf(error.code)).send({ error });
}

/** The machine's own addresses, read again at most once a minute (they may change). */
let localAddresses: { at: number; addresses: Set<string> } | undefined;

function isLocalAddress(address: string): boolean {
  if (!localAddresses || Date.now() - localAddresses.at > 60_000) {
    const addresses = new Set(["0.0.0.0", "::"]);
    for (const list of Object.values(networkInterfaces())) {
      for (const entry of list ?? []) addresses.add(entry.address.toLowerCase());
    }
    localAddresses = { at: Date.now(), addresses };
  }
  return address.startsWith("127.") || localAddresses.addresses.has(address);
}

/**
 * Whether a Host header names this node: one of this machine's addresses, localhost, the
 * node's hostname or an allowed name, with this node's port (or a port given with the name
 * in allowed_hosts). A browser page on another site whose name resolves to this node (DNS
 * rebinding) sends its own name and is refused; so is a signed request captured on its way to
 * another node, since the signature covers the Host.
 */
function hostCheck(
  hostname: string,
  allowed: readonly string[],
  port: () => number,
): (host: string) => boolean {
  const lower = (names: Iterable<string>) => new Set([...names].map((n) => n.toLowerCase()));
  const names = lower(["localhost", hostname, `${hostname}.local`, ...allowed]);
  const accepts = (host: string) => {
    const lowered = host.toLowerCase();
    if (names.has(lowered)) return true;
    const match = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(lowered);
    if (!match) return false;
    const name = (match[1] as string).replace(/^\[|\]$/g, "");
    if (match[2] !== undefined && Number(match[2]) !== port()) return false;
    return names.has(name) || (isIP(name) !== 0 && isLocalAddress(name));
  };
  // A client sends the same Host request after request, and checking it cost up to a
  // microsecond of each in a busy node: the last one accepted passes again for a second.
  let last = "";
  let lastUntil = 0;
  return (host) => {
    if (host === last && Date.now() < lastUntil) return true;
    if (!accepts(host)) return false;
    last = host;
    lastUntil = Date.now() + 1000;
    return true;
  };
}

const NO_HOST: WireError = {
  code: "BAD_REQUEST",
  message: "the request has no Host header, which HTTP/1.1 requires",
};
const NO_HOST_BODY = Buffer.from(JSON.stringify({ error: NO_HOST }));

const MISDIRECTED_BODY = Buffer.from(
  JSON.stringify({
    error: {
      code: "ACCESS_DENIED",
      message:
        "the Host header names neither this node nor an address; add the name to networking.allowed_hosts to use it",
    },
  }),
);

/** A whole HTTP answer carrying a protocol error, for a socket outside fastify (an upgrade). */
function rawError(status: number, reason: string, error: WireError): string {
  const body = JSON.stringify({ error });
  return `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

const RAW_BAD_REQUEST_BODY = JSON.stringify({
  error: { code: "BAD_REQUEST", message: "malformed request" },
});
const RAW_BAD_REQUEST = `HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${RAW_BAD_REQUEST_BODY.length}\r\n\r\n${RAW_BAD_REQUEST_BODY}`;

export class NodeServer {
  readonly #options: ServerOptions;
  readonly #app: FastifyInstance;
  readonly #sockets: WebSocketServer;
  readonly #sessions = new Set<ChannelSession>();
  #leaving = false;
  #closing = false;
  readonly #nonces = new NonceCache();
  readonly #limiter: PeerLimiter;
  /** Extra headers of a channel handshake's answer, by request. */
  readonly #handshakes = new WeakMap<IncomingMessage, string[]>();
  readonly #auth: RequestAuth;
  /** The secret, to check requests and sign answers with; undefined without one. */
  readonly #key: SecretKey | undefined;
  readonly #sweep: ReturnType<typeof setInterval>;
  #port = 0;
  readonly #acceptsHost: (host: string) => boolean;
  /** Without a secret: the bytes of request bodies on their way. */
  #bodies: BodyBudget | undefined;
  readonly #tarpit = new Tarpit();

  constructor(options: ServerOptions) {
    this.#options = options;
    // A sender that trickles its request is cut off rather than holding a connection: the
    // read timeouts are checked every second (more often for a shorter timeout), not every
    // 30 s as Node does by default.
    const timing = {
      requestTimeout: options.readTimeoutMs,
      headersTimeout: options.readTimeoutMs,
      connectionsCheckingInterval: Math.min(1000, Math.max(50, options.readTimeoutMs / 4)),
      // A request without a Host gets the protocol's JSON error below, not Node's bare 400.
      requireHostHeader: false,
    };
    this.#app = Fastify({
      logger: false,
      bodyLimit: options.bodyLimit,
      serverFactory: (handler) => {
        // A request refused on its headers is answered before fastify sees it: a flood of
        // them costs what each costs, and every request is spared fastify's hooks.
        const gated = (request: IncomingMessage, response: ServerResponse) => {
          if (!this.#admits(request, response)) return;
          if (this.#takesExecute(request)) this.#executeRaw(request, response);
          else handler(request, response);
        };
        return options.tls
          ? createHttpsServer({ ...timing, ...options.tls }, gated)
          : createHttpServer(timing, gated);
      },
      // What the HTTP parser or the router refuse is answered in the protocol's own format.
      // (A connection the tarpit holds has had its answer: Node's read timeout adds none.)
      clientErrorHandler: (_error, socket) => {
        if (socket.writable && !this.#tarpit.holds(socket)) socket.end(RAW_BAD_REQUEST);
        else socket.destroy();
      },
      frameworkErrors: (_error, request, reply) => {
        const anonymous = options.secret && !this.#auth.signedHeaders(request as FastifyRequest);
        (reply as FastifyReply)
          .code(anonymous ? 401 : 400)
          .send(anonymous ? UNAUTHORIZED_BODY : JSON.parse(RAW_BAD_REQUEST_BODY));
      },
    }) as unknown as FastifyInstance;
    // An `Expect` header the node does not know gets a protocol error, not a bare 417.
    this.#app.server.on("checkExpectation", (_request, response) => {
      const body = JSON.stringify({
        error: { code: "BAD_REQUEST", message: "the Expect header is not supported" },
      });
      response.writeHead(417, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(body),
        connection: "close",
      });
      response.end(body);
    });
    this.#limiter = new PeerLimiter(options.maxCallsPerPeer);
    // Without a secret the Host check is what keeps a web page that rebinds its name to this
    // node from calling it. With one, a request is signed for this run of this node, whatever
    // address and port it was sent to, so a port forward or NAT needs no configuration.
    this.#acceptsHost = options.secret
      ? () => true
      : hostCheck(options.hostname, options.allowedHosts, () => this.#port);
    this.#key = options.secret ? new SecretKey(options.secret) : undefined;
    this.#auth = installAuth(this.#app, this.#key, this.#nonces, options.instance, this.#tarpit, {
      metricsToken: options.metricsToken,
      mcpToken: options.mcp?.token,
    });
    // Nothing is authenticated without a secret: what bodies may be on their way at once is
    // bounded instead.
    if (!options.secret) this.#bodies = new BodyBudget(options.bodyLimit);
    this.#sweep = setInterval(() => this.#nonces.sweep(), MAX_SKEW_MS);
    this.#sweep.unref();
    // A message batches packets of at most bodyLimit each; anything larger is refused.
    this.#sockets = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: options.bodyLimit + FLUSH_BYTES + 1024,
    });
    this.#sockets.on("headers", (headers, request) => {
      headers.push(...(this.#handshakes.get(request) ?? []));
    });
    this.#routes();
    this.#app.server.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.#upgrade(request, socket, head),
    );
  }

  get port(): number {
    return this.#port;
  }

  /** Peers' channels are told this node is shutting down, and new ones are refused. */
  leave(): void {
    this.#leaving = true;
    for (const session of this.#sessions) session.leave();
  }

  /**
   * Serves the calls a peer sends over `pipe`, whatever transport opened it; `peer` names it in
   * quotas and logs. Its owner calls `ended` when the pipe closes.
   */
  accept(pipe: PacketPipe, peer: string): { session: ChannelSession; ended(): void } {
    const session = new ChannelSession(pipe, this.#options.calls, peer, this.#limiter);
    // A pipe opened while this node is shutting down runs nothing either.
    if (this.#leaving) session.leave();
    this.#sessions.add(session);
    return {
      session,
      ended: () => {
        session.ended();
        this.#sessions.delete(session);
      },
    };
  }

  /** Open channel sessions and the calls they have in flight. */
  get sessions(): ReadonlySet<ChannelSession> {
    return this.#sessions;
  }

  async listen(): Promise<number> {
    await this.#app.listen({ host: this.#options.bind, port: this.#options.port });
    this.#port = (this.#app.server.address() as AddressInfo).port;
    return this.#port;
  }

  #routes(): void {
    const app = this.#app;
    const { maxDepth } = this.#options;

    app.removeAllContentTypeParsers();
    app.addContentTypeParser("application/json", { parseAs: "buffer" }, (request, body, done) => {
      // The raw bytes must be the ones that were signed: checked before they are decoded.
      if (!this.#auth.bodyMatches(request.raw, body as Buffer)) {
        return done(new Unauthorized(), undefined);
      }
      try {
        done(null, body.length === 0 ? undefined : parseJson(decodeUtf8(body as Buffer), maxDepth));
      } catch (error) {
        done(error as Error, undefined);
      }
    });

    app.setErrorHandler((error, _request, reply) => {
      if (error instanceof Unauthorized) return unauthorized(reply);
      if (error instanceof AioError) {
        const wire =
          error instanceof RequestError
            ? error.toJSON()
            : { code: error.code, message: error.message };
        return sendError(reply, wire);
      }
      if (error instanceof WireProblem)
        return sendError(reply, { code: error.code, message: error.message });
      const status = (error as { statusCode?: number }).statusCode ?? 500;
      const code: RequestErrorCode =
        status === 413 ? "PAYLOAD_TOO_LARGE" : status < 500 ? "BAD_REQUEST" : "NETWORK";
      return reply.code(status).send({ error: { code, message: (error as Error).message } });
    });
    app.setNotFoundHandler((request, reply) =>
      reply.code(404).send({
        error: { code: "BAD_REQUEST", message: `no route ${request.method} ${request.url}` },
      }),
    );

    // What a client needs before it can sign: this run's instance id and this node's clock.
    // Unsigned, with a secret set, nothing more; signed or without a secret, the hostname too.
    app.get("/ping", async (request) => {
      const identity = { status: "ok", instance: this.#options.instance, time: Date.now() };
      return this.#options.secret && this.#auth.nonceOf(request.raw) === undefined
        ? identity
        : { ...identity, hostname: this.#options.hostname };
    });

    // The operator's routes: beyond the five of the protocol, for `aio` and its console. Like
    // every route they need a signature when the node has a secret.
    const { admin } = this.#options;
    app.get("/plugins", async () => ({
      hostname: this.#options.hostname,
      plugins: admin.plugins(),
    }));
    app.get("/nodes", async () => ({ hostname: this.#options.hostname, nodes: admin.nodes() }));
    app.get("/endpoints", async (request) => {
      const query = request.query as Record<string, unknown>;
      const name = query.plugin;
      if (name === undefined || name === "") {
        const tag = typeof query.tag === "string" && query.tag !== "" ? query.tag : undefined;
        return { hostname: this.#options.hostname, endpoints: admin.tagged(tag) };
      }
      if (typeof name !== "string") {
        throw new WireProblem("BAD_REQUEST", `the query parameter "plugin" must be given once`);
      }
      const endpoints = admin.endpoints(name);
      if (!endpoints) throw callErrors.pluginNotFound({ plugin: name, method: "endpoints" });
      return { plugin: name, endpoints };
    });
    app.get("/openapi.json", async () => admin.openapi());
    const { mcp } = this.#options;
    if (mcp) {
      app.route({
        method: ["GET", "POST", "DELETE"],
        url: MCP_PATH,
        handler: async (request, reply) => {
          reply.hijack();
          await mcp.handle(request.raw, reply.raw, request.body);
        },
      });
    }
    app.get("/metrics", async (_request, reply) => {
      const { contentType, text } = await admin.metrics();
      return reply.type(contentType).send(text);
    });
    app.get("/topics", async () => ({
      hostname: this.#options.hostname,
      subscriptions: admin.subscriptions(),
    }));
    app.post("/subscribe", async (request, reply) => {
      const pattern = (request.body as Record<string, unknown> | undefined)?.pattern;
      const wrong = patternProblem(pattern);
      if (wrong) throw new WireProblem("BAD_REQUEST", wrong);
      // The answer starts at once: the subscription is in place once its headers arrive.
      const source = admin.watch(pattern as string);
      // The client went away: the subscription ends now, not at a next message that may not come.
      const canceller = new Canceller();
      canceller.addEventListener("abort", () => void source.return());
      // Headers go out with the first line otherwise, which may be long in coming: the client
      // learns at once that the subscription is in place.
      reply.raw.once("pipe", () => reply.raw.flushHeaders());
      reply.raw.once("close", () => canceller.abort());
      return this.#sendStream(request, reply, source, undefined, canceller, undefined);
    });
    app.post("/log", async (request, reply) => {
      const source = admin.log();
      const canceller = new Canceller();
      canceller.addEventListener("abort", () => void source.return());
      reply.raw.once("pipe", () => reply.raw.flushHeaders());
      reply.raw.once("close", () => canceller.abort());
      return this.#sendStream(request, reply, source, undefined, canceller, undefined);
    });
    app.post("/admin", async (request) => {
      const body = (request.body ?? {}) as Record<string, unknown>;
      const action = body.action;
      if (typeof action !== "string" || !(ADMIN_ACTIONS as readonly string[]).includes(action)) {
        throw new WireProblem("BAD_REQUEST", `"action" must be one of ${ADMIN_ACTIONS.join(", ")}`);
      }
      const plugin =
        typeof body.plugin === "string" && body.plugin !== "" ? body.plugin : undefined;
      if (plugin === undefined && action !== "purge") {
        throw new WireProblem("BAD_REQUEST", `"plugin" is required for ${action}`);
      }
      await admin.act(action as AdminAction, plugin);
      return { plugins: admin.plugins() };
    });

    app.get("/has_plugin", async (request) => {
      const query = request.query as Record<string, unknown>;
      const text = (key: string) =>
        typeof query[key] === "string" && query[key] !== "" ? (query[key] as string) : undefined;
      const name = text("name");
      if (!name) throw new WireProblem("BAD_REQUEST", `the query parameter "name" is required`);
      return this.#options.hasPlugin(name, text("method"), text("plugin_uuid"));
    });

    app.post("/info", async (request, reply) => {
      const answer = this.#options.info(readInfoRequest(request.body ?? {}), request.ip);
      if (!answer) {
        return reply.code(418).send({
          error: {
            code: "ACCESS_DENIED",
            message: `${this.#options.hostname} is not direct_discoverable`,
          },
        });
      }
      return answer;
    });

    // Most calls are served by #executeRaw before fastify sees them; this route takes the
    // rest (a chunked body, a query string, a charset other than UTF-8's name, …).
    app.post("/execute", async (request, reply) => {
      const { status, body } = await this.#execute(readCall(request.body), request.ip, reply.raw);
      return reply.code(status).send(body);
    });

    app.post("/notify", async (request, reply) => {
      const call = readCall(request.body);
      if (call.topic === undefined) {
        return sendError(reply, { code: "BAD_REQUEST", message: `"topic" is required` });
      }
      try {
        return {
          count: this.#options.calls.notify(remoteCaller(call, request.ip), call.topic, call.args),
        };
      } catch (error) {
        return sendError(reply, wireErrorOf(error, call));
      }
    });

    app.post("/execute_stream", async (request, reply) => {
      const call = readCall(request.body);
      const ip = request.ip;
      const key = callerKey(ip, call);
      if (!this.#limiter.acquire(key)) return this.#overloaded(reply, call);
      reply.raw.once("close", () => this.#limiter.release(key));
      const canceller = new Canceller();
      const caller = remoteCaller(call, ip);
      const options = callOptions(call, canceller);
      const calls = this.#options.calls;
      const source =
        call.topic === undefined
          ? calls.executeStream(caller, call.plugin, call.method, call.args, options)
          : calls.requestTopicStream(caller, call.topic, call.args, options);
      // The first step decides the status: an error before any item gets a fitting one.
      let first: IteratorResult<unknown, void>;
      try {
        first = await source.next();
      } catch (error) {
        return sendError(reply, wireErrorOf(error, call));
      }
      return this.#sendStream(request, reply, source, first, canceller, call);
    });
  }

  /**
   * Answers with a stream, one NDJSON line per item from `first` on, then `end`, or `error` if
   * the source throws; with a secret each line carries its MAC. The source is read only as fast
   * as the client reads, and stopped when it disconnects.
   */
  #sendStream(
    request: FastifyRequest,
    reply: FastifyReply,
    source: AsyncGenerator<unknown, void, undefined>,
    first: IteratorResult<unknown, void> | undefined,
    canceller: Canceller,
    call: WireCall | undefined,
  ): FastifyReply {
    const nonce = this.#auth.nonceOf(request.raw);
    const sealer = nonce === undefined ? undefined : new StreamMac(this.#options.secret, nonce);
    /** One NDJSON line; with a secret it carries its own MAC. */
    const line = (content: Record<string, unknown>) => {
      const bare = JSON.stringify(content);
      return `${sealer ? JSON.stringify({ ...content, mac: sealer.next(bare) }) : bare}\n`;
    };
    async function* lines(): AsyncGenerator<string, void, undefined> {
      try {
        let step = first ?? (await source.next());
        while (!step.done) {
          yield line({ item: step.value === undefined ? null : step.value });
          step = await source.next();
        }
        yield line({ end: true });
      } catch (error) {
        yield line({ error: wireErrorOf(error, call) });
      } finally {
        await source.return();
      }
    }
    const body = Readable.from(lines(), { objectMode: false, highWaterMark: 16 * 1024 });
    body.once("close", () => canceller.abort());
    return reply.code(200).type("application/x-ndjson").send(body);
  }

  /**
   * Whether fastify may take a request: one without a Host, or whose Host does not name this
   * node, one that fails authentication, or one whose body would exceed the budget is answered
   * here, on a connection closed after the answer.
   */
  #admits(request: IncomingMessage, response: ServerResponse): boolean {
    const host = request.headers.host;
    if (host === undefined) {
      refuseRaw(request, response, 400, NO_HOST_BODY, this.#tarpit);
      return false;
    }
    if (!this.#acceptsHost(host)) {
      refuseRaw(request, response, 421, MISDIRECTED_BODY, this.#tarpit);
      return false;
    }
    if (this.#auth.gate(request, response)) return false;
    return this.#bodies === undefined || this.#budget(this.#bodies, request, response);
  }

  /**
   * Reserves what a request's body may take while it arrives, by its declared length (or the
   * body limit when it has none), against the bounds per address and in all; refuses it, unread,
   * beyond them. Released when its answer is done.
   */
  #budget(bodies: BodyBudget, request: IncomingMessage, response: ServerResponse): boolean {
    const headers = request.headers;
    if (!hasBody(headers)) return true;
    const declared = headers["transfer-encoding"] === undefined;
    const bytes = Math.min(
      declared ? Number(headers["content-length"]) : Number.POSITIVE_INFINITY,
      this.#options.bodyLimit,
    );
    if (!Number.isFinite(bytes)) return true;
    const address = request.socket.remoteAddress ?? "";
    if (!bodies.reserve(address, bytes)) {
      const body = JSON.stringify({
        error: {
          code: "OVERLOADED",
          message: `bodies of ${bodies.perPeer} bytes from this address are on their way already; try again when they are in`,
        },
      });
      refuseRaw(request, response, 429, Buffer.from(body), this.#tarpit);
      return false;
    }
    response.on("close", () => bodies.release(address, bytes));
    return true;
  }

  /**
   * Runs the call of a `POST /execute` and says how to answer it: `{ result }`, or `{ error }`
   * with the status of its code. The call is cancelled if the client goes before its answer.
   */
  async #execute(
    call: WireCall,
    ip: string,
    response: ServerResponse,
  ): Promise<{ status: number; body: unknown }> {
    const key = callerKey(ip, call);
    if (!this.#limiter.acquire(key)) {
      const error = this.#overloadedError(call);
      return { status: statusOf(error.code), body: { error } };
    }
    const canceller = new Canceller();
    response.on("close", () => {
      this.#limiter.release(key);
      // Closed before the answer was written: the client went away.
      if (!response.writableFinished) canceller.abort();
    });
    try {
      const caller = remoteCaller(call, ip);
      const options = callOptions(call, canceller);
      const calls = this.#options.calls;
      const result = await (call.topic === undefined
        ? calls.execute(caller, call.plugin, call.method, call.args, options)
        : calls.requestTopic(caller, call.topic, call.args, options));
      return { status: 200, body: { result: result === undefined ? null : result } };
    } catch (error) {
      const wire = wireErrorOf(error, call);
      return { status: statusOf(wire.code), body: { error: wire } };
    }
  }

  /**
   * Whether a request is the common `POST /execute`, served without fastify: a JSON body of a
   * declared length within the limit. fastify's routing, request and reply objects, body
   * reader and serializer are a quarter of the CPU such a call costs (bench/README.md, `http`),
   * and scripts, curl and home automation tools make it again and again. Anything else goes
   * through fastify, whose route refuses or serves it.
   */
  #takesExecute(request: IncomingMessage): boolean {
    // Closing, fastify answers new requests with its 503.
    if (this.#closing || request.method !== "POST" || request.url !== EXECUTE_PATH) return false;
    const headers = request.headers;
    const type = headers["content-type"]?.toLowerCase();
    if (type !== "application/json" && type !== "application/json; charset=utf-8") return false;
    if (headers["transfer-encoding"] !== undefined) return false;
    const length = Number(headers["content-length"]);
    return Number.isInteger(length) && length > 0 && length <= this.#options.bodyLimit;
  }

  /** Serves a request {@link #takesExecute} took, as the `/execute` route would. */
  #executeRaw(request: IncomingMessage, response: ServerResponse): void {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const bytes = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
      if (!this.#auth.bodyMatches(request, bytes)) {
        refuseRaw(request, response, 401, UNAUTHORIZED_BYTES, this.#tarpit);
        return;
      }
      let call: WireCall;
      try {
        call = readCall(parseJson(decodeUtf8(bytes), this.#options.maxDepth));
      } catch (error) {
        const wire: WireError =
          error instanceof WireProblem
            ? { code: error.code, message: error.message }
            : { code: "BAD_REQUEST", message: (error as Error).message };
        this.#answerRaw(request, response, statusOf(wire.code), { error: wire });
        return;
      }
      const ip = request.socket.remoteAddress ?? "";
      void this.#execute(call, ip, response).then(({ status, body }) =>
        this.#answerRaw(request, response, status, body),
      );
    });
    // A client gone mid-body: nothing to answer, and the close listeners release what it held.
    request.on("error", () => undefined);
  }

  /** A JSON answer, with the headers fastify would give it, and its MAC with a secret. */
  #answerRaw(
    request: IncomingMessage,
    response: ServerResponse,
    status: number,
    body: unknown,
  ): void {
    // The client went away before its answer: nothing to write to.
    if (response.destroyed) return;
    let text: string;
    try {
      text = JSON.stringify(body);
    } catch (error) {
      // A result JSON cannot hold (a BigInt, a cycle), as fastify's error handler answers it.
      status = 500;
      text = JSON.stringify({ error: { code: "NETWORK", message: (error as Error).message } });
    }
    const headers: OutgoingHttpHeaders = {
      "content-type": "application/json; charset=utf-8",
      "content-length": Buffer.byteLength(text),
    };
    const mac = this.#auth.answerMac(request, text);
    if (mac !== undefined) headers[HEADER_ANSWER] = mac;
    response.writeHead(status, headers);
    response.end(text);
  }

  #overloaded(reply: FastifyReply, call: WireCall): FastifyReply {
    return sendError(reply, this.#overloadedError(call));
  }

  /** The error of a call refused because its caller has as many in progress as it may. */
  #overloadedError(call: WireCall): WireError {
    const site = { plugin: call.plugin, method: call.method, requestId: call.request_id };
    return callErrors.overloaded(site, this.#options.maxCallsPerPeer).toJSON();
  }

  #upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (request.url ?? "").split("?")[0];
    if (path !== CHANNEL_PATH) {
      socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n");
      return;
    }
    const host = request.headers.host;
    if (host === undefined) {
      socket.end(rawError(400, "Bad Request", NO_HOST));
      return;
    }
    if (!this.#acceptsHost(host)) {
      socket.end("HTTP/1.1 421 Misdirected Request\r\nConnection: close\r\n\r\n");
      return;
    }
    if (this.#leaving) {
      socket.end("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n");
      return;
    }
    let signer: ChannelSigner | undefined;
    const key = this.#key;
    if (key) {
      const clientNonce = verifyHeaders(
        key,
        this.#nonces,
        this.#options.instance,
        "GET",
        request.url ?? "",
        request.headers,
      )?.nonce;
      if (clientNonce === undefined) {
        socket.end(rawError(401, "Unauthorized", UNAUTHORIZED_BODY.error));
        return;
      }
      // The server proves it knows the secret too, and both sides derive the session key.
      const serverNonce = randomBytes(16).toString("hex");
      this.#handshakes.set(request, [
        `${HEADER_NONCE}: ${serverNonce}`,
        `${HEADER_ANSWER}: ${signAnswer(key, clientNonce, serverNonce)}`,
      ]);
      const channelKey = sessionKey(this.#options.secret, clientNonce, serverNonce);
      signer = new ChannelSigner(channelKey, "server");
    }
    this.#sockets.handleUpgrade(request, socket, head, (ws) => {
      const peer = request.socket.remoteAddress ?? "unknown";
      let session: ChannelSession | undefined;
      const channel = new PacketChannel(ws, {
        maxDepth: this.#options.maxDepth + 2,
        maxPacketBytes: MAX_ANSWER_BYTES,
        onPacket: (packet) => session?.receive(packet),
        onBadMessage: (error) => {
          this.#options.logger.warn(`closing the channel from ${peer}: ${error.message}`);
          ws.terminate();
        },
      });
      if (signer) channel.sign(signer);
      // A malformed frame ends that channel, never the node.
      ws.on("error", (error) => {
        this.#options.logger.warn(`closing the channel from ${peer}: ${error.message}`);
        ws.terminate();
      });
      const accepted = this.accept(channel, peer);
      session = accepted.session;
      ws.once("close", accepted.ended);
    });
  }

  /**
   * Stops accepting, then closes every connection, after writing what is queued on it. The calls
   * have drained by now: a connection still open after a second more (an idle client, one that
   * never finishes its request) is destroyed, so closing never waits on a client.
   */
  async close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#sweep);
    this.#tarpit.release();
    for (const session of this.#sessions) session.shutdown(1001, "node closing");
    const closed = this.#app.close();
    await Promise.race([closed, delay(CLOSE_GRACE_MS, undefined, { ref: false })]);
    this.#app.server.closeAllConnections();
    for (const client of this.#sockets.clients) client.terminate();
    await closed;
  }
}
