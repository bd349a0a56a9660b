/**
 * NetworkManager: this node's presence on the network. It runs the server, finds other nodes
 * (node_ips, `/info` gossip, mDNS), keeps their endpoint maps current, watches their liveness,
 * and gives the dispatcher a router to reach them.
 */
import { randomUUID } from "node:crypto";
import type { NetworkingConfig } from "../config/types.js";
import type { NodeInfo } from "../core/types.js";
import type { Logger } from "../log.js";
import {
  bindAddress,
  hostForUrl,
  isLoopback,
  normalizeAddress,
  parseNodeAddress,
} from "./address.js";
import { NodeConnection } from "./connection.js";
import { HeartbeatPinger, HeartbeatResponder } from "./heartbeat.js";
import { HttpClient } from "./http-client.js";
import { MAX_JSON_DEPTH } from "./limits.js";
import { MdnsDiscovery } from "./mdns.js";
import { NodeRegistry, RemoteNode } from "./nodes.js";
import { RemoteRouter } from "./router.js";
import type { LocalCalls } from "./serve.js";
import { type AdminApi, CHANNEL_PATH, type HasPluginAnswer, NodeServer } from "./server.js";
import { SyncRemote } from "./sync-remote.js";
import { type PeerTls, peerTls, schemeOf, serverTls } from "./tls.js";
import type { InfoAnswer, InfoRequest, WireEndpoint } from "./wire.js";

export interface NetworkOptions {
  config: NetworkingConfig;
  hostname: string;
  logger: Logger;
  calls: LocalCalls;
  /** Endpoints of this node's enabled plugins that the node `requester` may call. */
  localEndpoints(requester: string): WireEndpoint[];
  hasPlugin(name: string, method: string | undefined, uuid: string | undefined): HasPluginAnswer;
  admin: AdminApi;
  emit(event: "node:up" | "node:down", node: NodeInfo): void;
}

/**
 * Instance ids of the nodes running in this process. A blocking call to one of them would wait
 * for the very thread it blocks, so it is refused with WOULD_DEADLOCK instead.
 */
export const PROCESS_NODES = new Set<string>();

export class NetworkManager {
  /** Random per running node; other nodes tell this one apart by it. */
  readonly instance = randomUUID();
  readonly nodes = new NodeRegistry();
  readonly router: RemoteRouter;
  readonly #options: NetworkOptions;
  readonly #config: NetworkingConfig;
  readonly #logger: Logger;
  readonly #http: HttpClient;
  readonly #server: NodeServer;
  readonly #sync: SyncRemote;
  readonly #bind: string;
  /** The endpoint-map version, in shared memory so the heartbeat thread reads it too. */
  readonly #version = new Int32Array(new SharedArrayBuffer(4));
  readonly #pinger: HeartbeatPinger;
  #responder: HeartbeatResponder | undefined;
  #mdns: MdnsDiscovery | undefined;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  readonly #contacting = new Set<string>();
  /** Addresses found to be this node itself. */
  readonly #selfAddresses = new Set<string>();
  /** Addresses that could not be reached, so each failure is reported loudly only once. */
  readonly #unreachable = new Set<string>();
  #closed = false;
  readonly #tls: PeerTls;
  readonly #scheme: { http: string; ws: string };

  constructor(options: NetworkOptions, configFile?: string) {
    this.#options = options;
    this.#config = options.config;
    this.#logger = options.logger;
    this.#bind = bindAddress(options.config, configFile);
    this.#tls = peerTls(options.config, configFile);
    this.#scheme = schemeOf(this.#tls);
    this.#sync = new SyncRemote(options.config.secret, this.#tls);
    this.#pinger = new HeartbeatPinger(options.config.secret);
    this.router = new RemoteRouter(
      this.nodes,
      options.hostname,
      this.#sync,
      PROCESS_NODES,
      this.#scheme.http,
    );
    this.#http = new HttpClient({
      connectTimeoutMs: 3000,
      maxDepth: MAX_JSON_DEPTH,
      secret: options.config.secret,
      tls: this.#tls,
    });
    const tls = serverTls(options.config, configFile);
    this.#server = new NodeServer({
      hostname: options.hostname,
      secret: options.config.secret,
      ...(tls ? { tls } : {}),
      bind: this.#bind,
      port: options.config.port,
      logger: options.logger,
      calls: options.calls,
      bodyLimit: options.config.max_body_bytes,
      maxCallsPerPeer: options.config.max_calls_per_peer,
      readTimeoutMs: options.config.read_timeout * 1000,
      allowedHosts: options.config.allowed_hosts,
      maxDepth: MAX_JSON_DEPTH,
      info: (request, from) => this.#answerInfo(request, from),
      hasPlugin: options.hasPlugin,
      admin: options.admin,
    });
  }

  /** The port the server listens on (the configured one, or the one the OS chose for 0). */
  get port(): number {
    return this.#server.port;
  }

  get address(): string {
    return `${this.#bind}:${this.#server.port}`;
  }

  /** Marks a change of this node's plugins, so other nodes refresh their view of it. */
  bumpVersion(): void {
    Atomics.add(this.#version, 0, 1);
  }

  async start(): Promise<void> {
    PROCESS_NODES.add(this.instance);
    await this.#server.listen();
    this.#logger.info(`Listening on ${this.#bind}:${this.port} as "${this.#options.hostname}"`);
    if (!this.#config.secret && !isLoopback(this.#bind)) {
      this.#logger.warn(
        `INSECURE: listening on ${this.#bind} without a secret (allow_insecure: true); anyone who can reach port ${this.port} can run this node's remote plugins`,
      );
    }
    Atomics.store(this.#version, 0, 1);
    this.#responder = new HeartbeatResponder(
      {
        bind: this.#bind,
        port: this.port,
        hostname: this.#options.hostname,
        instance: this.instance,
        version: this.#version,
        secret: this.#config.secret,
      },
      this.#logger,
    );
    await this.#responder.ready;
    this.#startMdns();
    this.#heartbeat = setInterval(() => this.#beat(), this.#config.heartbeat_interval * 1000);
    this.#heartbeat.unref();
    await Promise.all(this.#config.node_ips.map((entry) => this.#contactEntry(entry)));
  }

  /**
   * mDNS runs only for a node reachable from the LAN: one bound to loopback has nothing to
   * announce and nobody to find.
   */
  #startMdns(): void {
    const announce = this.#config.direct_discoverable;
    const browse = this.#config.discover_nodes;
    if (isLoopback(this.#bind) || (!announce && !browse)) return;
    this.#mdns = new MdnsDiscovery({
      hostname: this.#options.hostname,
      instance: this.instance,
      port: this.port,
      bind: this.#bind,
      announce,
      browse,
      logger: this.#logger,
      onFound: (address, port) => {
        if (!this.nodes.byAddress(address, port)) void this.#contact(address, port);
      },
    });
  }

  #contactEntry(entry: string): Promise<void> {
    const { address, port } = parseNodeAddress(entry, this.#config.port);
    return this.#contact(address, port);
  }

  #infoRequest(): InfoRequest {
    return {
      hostname: this.#options.hostname,
      port: this.port,
      discover_nodes_info: this.#config.discover_nodes,
      instance: this.instance,
    };
  }

  #answerInfo(request: InfoRequest, from: string): InfoAnswer | undefined {
    if (!this.#config.direct_discoverable) return undefined;
    const address = normalizeAddress(from);
    if (this.#config.discover_nodes && request.port > 0 && request.instance !== this.instance) {
      const known = request.instance ? this.nodes.get(request.instance) : undefined;
      if (known) this.#seen(known);
      else void this.#contact(address, request.port);
    }
    return {
      hostname: this.#options.hostname,
      auto_discoverable: this.#config.auto_discoverable,
      nodes: request.discover_nodes_info
        ? this.nodes
            .shareable()
            .filter((node) => node.instance !== request.instance)
            .map((node) => ({ hostname: node.hostname, address: node.address, port: node.port }))
        : [],
      endpoints: this.#options.localEndpoints(request.hostname),
      version: Atomics.load(this.#version, 0),
      instance: this.instance,
      port: this.port,
      tls: this.#tls.enabled,
    };
  }

  async #fetchInfo(address: string, port: number): Promise<InfoAnswer | undefined> {
    const url = `${this.#scheme.http}://${hostForUrl(address)}:${port}/info`;
    const timeout = Math.max(1000, this.#config.heartbeat_interval * 1000);
    const { status, body } = await this.#http.postJson(url, this.#infoRequest(), timeout);
    if (status === 418) {
      this.#logger.debug(`${address}:${port} is not direct_discoverable`);
      return undefined;
    }
    if (status !== 200) throw new Error(`${url} answered HTTP ${status}`);
    return readInfoAnswer(body);
  }

  /** Asks a node for its `/info`, adds or refreshes it, and follows the nodes it passes on. */
  async #contact(address: string, port: number): Promise<void> {
    const key = `${address}:${port}`;
    if (this.#closed || this.#contacting.has(key) || this.#selfAddresses.has(key)) return;
    this.#contacting.add(key);
    try {
      const answer = await this.#fetchInfo(address, port);
      if (!answer) return;
      if (answer.instance === this.instance) {
        this.#selfAddresses.add(key);
        return;
      }
      const node = this.#adopt(answer, address, port);
      if (this.#config.discover_nodes) {
        await Promise.all(
          answer.nodes
            .filter((other) => !this.nodes.byAddress(other.address, other.port))
            .map((other) => this.#contact(other.address, other.port)),
        );
      }
      this.#seen(node);
    } catch (error) {
      // Said once loudly (a wrong secret or certificate must not go unnoticed), then quietly.
      const message = `cannot reach ${key}: ${(error as Error).message}`;
      if (this.#unreachable.has(key)) this.#logger.debug(message);
      else this.#logger.warn(`${message}; retrying every heartbeat`);
      this.#unreachable.add(key);
    } finally {
      this.#contacting.delete(key);
    }
  }

  /** Adds a node from its `/info` answer, or refreshes the one already known. */
  #adopt(answer: InfoAnswer, address: string, port: number): RemoteNode {
    const known = this.nodes.get(answer.instance);
    if (known) {
      known.update(answer);
      this.#seen(known);
      return known;
    }
    if (answer.hostname === this.#options.hostname) {
      this.#logger.error(
        `The node at ${address}:${port} claims this node's own hostname "${answer.hostname}"; calls naming that host stay on this node. Give each node a unique general.hostname`,
      );
    }
    for (const other of this.nodes.withHostname(answer.hostname)) {
      this.#logger.error(
        `Two nodes claim the hostname "${answer.hostname}": ${other.address}:${other.port} and ${address}:${port}. Calls naming that host fail until one is renamed; give each node a unique general.hostname`,
      );
    }
    const url = `${this.#scheme.ws}://${hostForUrl(address)}:${port}${CHANNEL_PATH}`;
    const node: RemoteNode = new RemoteNode(
      answer,
      address,
      port,
      new NodeConnection({
        url,
        hostname: answer.hostname,
        maxDepth: MAX_JSON_DEPTH + 2,
        maxPacketBytes: this.#config.max_body_bytes,
        secret: this.#config.secret,
        tls: this.#tls,
        connectTimeoutMs: 3000,
        onBadMessage: (error) =>
          this.#logger.warn(`closing the channel to ${answer.hostname}: ${error.message}`),
        onLeaving: () => this.#left(node),
      }),
    );
    this.nodes.add(node);
    this.#logger.info(
      `Found node "${node.hostname}" at ${address}:${node.port} (${node.endpoints.size} plugin(s))`,
    );
    this.#options.emit("node:up", node.info());
    return node;
  }

  #seen(node: RemoteNode): void {
    node.lastSeen = Date.now();
    if (!node.alive && !node.leaving) {
      node.alive = true;
      this.#logger.info(`Node "${node.hostname}" is back`);
      this.#options.emit("node:up", node.info());
    }
  }

  /** The node said it is shutting down: no new calls go to it, and it never comes back. */
  #left(node: RemoteNode): void {
    node.leaving = true;
    if (!node.alive) return;
    node.alive = false;
    this.#logger.info(`Node "${node.hostname}" is shutting down; its calls go to other nodes`);
    this.#options.emit("node:down", node.info());
  }

  /** One heartbeat: refresh every known node, retry configured ones not yet found. */
  #beat(): void {
    if (this.#closed) return;
    const now = Date.now();
    for (const node of this.nodes.all()) {
      void this.#check(node);
      if (node.alive && now - node.lastSeen > this.#config.liveness_timeout * 1000) {
        node.alive = false;
        this.#logger.warn(`Node "${node.hostname}" stopped answering; marked down`);
        this.#options.emit("node:down", node.info());
      }
    }
    for (const entry of this.#config.node_ips) {
      const { address, port } = parseNodeAddress(entry, this.#config.port);
      if (!this.nodes.byAddress(address, port)) void this.#contact(address, port);
    }
  }

  /**
   * One node's heartbeat: a UDP ping answered by the node's heartbeat thread, and its
   * `/info` over HTTP when the endpoint map changed or UDP gets no answer.
   */
  async #check(node: RemoteNode): Promise<void> {
    const wait = this.#config.heartbeat_interval * 800;
    const pong = await this.#pinger.ping(node.address, node.port, wait);
    if (pong?.instance === node.instance) {
      this.#seen(node);
      if (pong.version === node.version) return;
    }
    await this.#refresh(node);
  }

  async #refresh(node: RemoteNode): Promise<void> {
    try {
      const answer = await this.#fetchInfo(node.address, node.port);
      if (!answer) return;
      if (answer.instance !== node.instance) {
        // A new process at the same address: the old instance is gone.
        this.nodes.remove(node);
        node.connection.close();
        if (node.alive) this.#options.emit("node:down", { ...node.info(), alive: false });
        this.#adopt(answer, node.address, node.port);
        return;
      }
      if (answer.version !== node.version) node.update(answer);
      this.#seen(node);
    } catch (error) {
      this.#logger.debug(`heartbeat to "${node.hostname}" failed: ${(error as Error).message}`);
    }
  }

  nodeList(): NodeInfo[] {
    return this.nodes.all().map((node) => node.info());
  }

  /**
   * The first step of closing: tells the nodes with a channel to this one that it is shutting
   * down, so their new calls go to other nodes while the calls in flight here finish.
   */
  leave(): void {
    this.#server.leave();
  }

  /** Stops accepting calls, then closes every connection. */
  async close(): Promise<void> {
    this.#closed = true;
    PROCESS_NODES.delete(this.instance);
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#pinger.close();
    await this.#mdns?.close();
    await this.#responder?.close();
    for (const node of this.nodes.all()) node.connection.close();
    await this.#server.close();
    await Promise.all([this.#http.close(), this.#sync.close()]);
  }
}

function readInfoAnswer(body: unknown): InfoAnswer {
  const record = (typeof body === "object" && body !== null ? body : {}) as Record<string, unknown>;
  const text = (key: string) => (typeof record[key] === "string" ? (record[key] as string) : "");
  const hostname = text("hostname");
  const instance = text("instance");
  if (!hostname || !instance) throw new Error("the /info answer lacks hostname or instance");
  const endpoints = Array.isArray(record.endpoints)
    ? record.endpoints.filter(
        (e): e is WireEndpoint =>
          typeof e === "object" &&
          e !== null &&
          typeof (e as WireEndpoint).plugin === "string" &&
          typeof (e as WireEndpoint).access_name === "string" &&
          typeof (e as WireEndpoint).plugin_uuid === "string",
      )
    : [];
  const nodes = Array.isArray(record.nodes)
    ? record.nodes.filter(
        (n): n is { hostname: string; address: string; port: number } =>
          typeof n === "object" &&
          n !== null &&
          typeof (n as { address?: unknown }).address === "string" &&
          typeof (n as { port?: unknown }).port === "number",
      )
    : [];
  return {
    hostname,
    instance,
    auto_discoverable: record.auto_discoverable === true,
    nodes,
    endpoints,
    version: typeof record.version === "number" ? record.version : 0,
    port: typeof record.port === "number" ? record.port : 0,
    tls: record.tls === true,
  };
}
