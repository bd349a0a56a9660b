/**
 * NetworkManager: this node's presence on the network. It runs the HTTP server, keeps the
 * registry of the nodes it knows and the router that reaches them, and leaves finding and
 * watching them to the mesh of the configured transport (mesh.ts): the channel's, or NATS's.
 * Adding a transport is adding a folder under `transports/` with its mesh, and a line in MESHES.
 */
import { randomUUID } from "node:crypto";
import type { NetworkingConfig, TransportName } from "../config/types.js";
import type { NodeInfo } from "../core/types.js";
import type { Logger } from "../log.js";
import { bindAddress, checkBind, checkNatsServers } from "./address.js";
import { MAX_JSON_DEPTH } from "./limits.js";
import type { Mesh, MeshFactory } from "./mesh.js";
import { NodeRegistry } from "./nodes.js";
import { RemoteRouter } from "./router.js";
import type { LocalCalls } from "./serve.js";
import { type AdminApi, type HasPluginAnswer, type McpEndpoint, NodeServer } from "./server.js";
import { peerTls, serverTls } from "./tls.js";
import { RemoteTopicRoutes } from "./topic-routes.js";
import { ChannelMesh } from "./transports/channel/mesh.js";
import { NatsMesh } from "./transports/nats/mesh.js";
import type { WireEndpoint, WireRefusal } from "./wire.js";

/** The mesh of each transport (`networking.transport`). */
const MESHES: Record<TransportName, MeshFactory> = {
  channel: ChannelMesh,
  nats: NatsMesh,
};

export interface NetworkOptions {
  config: NetworkingConfig;
  hostname: string;
  logger: Logger;
  calls: LocalCalls;
  /** This node's endpoints as the node `requester` sees them: open to it, or closed and why. */
  localEndpoints(requester: string): {
    open: WireEndpoint[];
    closed: WireRefusal[];
    topics: string[];
  };
  /** The topic patterns this node's subscribers open to other nodes (allowed_nodes aside). */
  topicPatterns(): string[];
  hasPlugin(name: string, method: string | undefined, uuid: string | undefined): HasPluginAnswer;
  admin: AdminApi;
  /** MCP over streamable HTTP at `/mcp`, when `networking.mcp` is on. */
  mcp?: McpEndpoint | undefined;
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
  readonly topics: RemoteTopicRoutes;
  readonly #options: NetworkOptions;
  readonly #config: NetworkingConfig;
  readonly #logger: Logger;
  readonly #server: NodeServer;
  readonly #mesh: Mesh;
  readonly #bind: string;
  readonly #configFile: string | undefined;
  /** The endpoint-map version, in shared memory so the heartbeat thread reads it too. */
  readonly #version = new Int32Array(new SharedArrayBuffer(4));

  constructor(options: NetworkOptions, configFile?: string) {
    this.#options = options;
    this.#config = options.config;
    this.#logger = options.logger;
    this.#bind = bindAddress(options.config, configFile);
    this.#configFile = configFile;
    const tls = peerTls(options.config, configFile);
    const certificate = serverTls(options.config, configFile);
    this.#server = new NodeServer({
      hostname: options.hostname,
      instance: this.instance,
      secret: options.config.secret,
      metricsToken: options.config.metrics_token,
      ...(certificate ? { tls: certificate } : {}),
      bind: this.#bind,
      port: options.config.port,
      logger: options.logger,
      calls: options.calls,
      bodyLimit: options.config.max_body_bytes,
      maxCallsPerPeer: options.config.max_calls_per_peer,
      readTimeoutMs: options.config.read_timeout * 1000,
      allowedHosts: options.config.allowed_hosts,
      maxDepth: MAX_JSON_DEPTH,
      info: (request, from) => this.#mesh.answerInfo(request, from),
      hasPlugin: options.hasPlugin,
      admin: options.admin,
      mcp: options.mcp,
    });
    this.#mesh = new MESHES[options.config.transport]({
      config: options.config,
      configFile,
      hostname: options.hostname,
      instance: this.instance,
      logger: options.logger,
      nodes: this.nodes,
      emit: options.emit,
      server: this.#server,
      bind: this.#bind,
      tls,
      version: this.#version,
      localEndpoints: options.localEndpoints,
      topicPatterns: options.topicPatterns,
      calls: options.calls,
    });
    this.router = new RemoteRouter({
      nodes: this.nodes,
      hostname: options.hostname,
      blocking: this.#mesh.blocking,
      inProcess: PROCESS_NODES,
      refused: (node) => this.#mesh.refused(node),
    });
    this.topics = new RemoteTopicRoutes({
      nodes: this.nodes,
      hostname: options.hostname,
      logger: options.logger,
      broadcast: this.#mesh.broadcast,
    });
  }

  /** The port the server listens on (the configured one, or the one the OS chose for 0). */
  get port(): number {
    return this.#server.port;
  }

  get address(): string {
    return `${this.#bind}:${this.#server.port}`;
  }

  /**
   * Marks a change of this node's plugins. The nodes it knows are told at once, so a plugin
   * enabled here is callable there without waiting for a heartbeat.
   */
  bumpVersion(): void {
    Atomics.add(this.#version, 0, 1);
    this.#mesh.bumpVersion();
  }

  async start(): Promise<void> {
    const loopbackOnly = await checkBind(this.#config, this.#configFile);
    await checkNatsServers(this.#config, this.#configFile);
    PROCESS_NODES.add(this.instance);
    await this.#server.listen();
    this.#logger.info(`Listening on ${this.#bind}:${this.port} as "${this.#options.hostname}"`);
    if (!this.#config.secret && !loopbackOnly) {
      this.#logger.warn(
        `INSECURE: listening on ${this.#bind} without a secret (allow_insecure: true); anyone who can reach port ${this.port} can run this node's remote plugins`,
      );
    }
    Atomics.store(this.#version, 0, 1);
    await this.#mesh.start(loopbackOnly);
  }

  nodeList(): NodeInfo[] {
    return this.nodes.all().map((node) => node.info());
  }

  /**
   * The first step of closing: the channels and pipes to this node are told that it is
   * shutting down, and the mesh tells every node it knows, so their new calls go to other nodes
   * while the calls in flight here finish.
   */
  leave(): void {
    this.#server.leave();
    this.#mesh.leave();
  }

  /** Stops accepting calls, then closes every connection. */
  async close(): Promise<void> {
    await this.#mesh.close();
    PROCESS_NODES.delete(this.instance);
    await this.#server.close();
  }
}
