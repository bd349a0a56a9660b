/**
 * The seam between the network layer and a transport's way of meeting other nodes: how nodes
 * are found, heard and watched, and how calls reach them. One implementation per transport
 * folder (`transports/channel/mesh.ts`: node_ips, `/info` gossip, mDNS, UDP heartbeats and the
 * WebSocket channel; `transports/nats/mesh.ts`: announces and pipes on NATS). The manager owns
 * what every transport shares: the HTTP server, the registry of nodes, the router.
 */
import type { NetworkingConfig } from "../config/types.js";
import type { NodeInfo } from "../core/types.js";
import type { Logger } from "../log.js";
import type { NodeRegistry, RemoteNode } from "./nodes.js";
import type { LocalCalls } from "./serve.js";
import type { NodeServer } from "./server.js";
import type { BlockingRoute } from "./sync-remote.js";
import type { PeerTls } from "./tls.js";
import type { InfoAnswer, InfoRequest, WireEndpoint, WireNode, WireRefusal } from "./wire.js";

/** What a mesh is given by the manager. */
export interface MeshContext {
  config: NetworkingConfig;
  configFile: string | undefined;
  hostname: string;
  instance: string;
  logger: Logger;
  nodes: NodeRegistry;
  emit(event: "node:up" | "node:down", node: NodeInfo): void;
  /** The HTTP server: its port, and the sessions that serve calls arriving over a pipe. */
  server: NodeServer;
  /** The address the server listens on. */
  bind: string;
  tls: PeerTls;
  /** The endpoint-map version, in shared memory (a heartbeat thread reads it too). */
  version: Int32Array;
  /** This node's endpoints as the node `requester` sees them: open to it, or closed and why. */
  localEndpoints(requester: string): {
    open: WireEndpoint[];
    closed: WireRefusal[];
    topics: string[];
  };
  /** The topic patterns this node's subscribers open to other nodes (allowed_nodes aside). */
  topicPatterns(): string[];
  /** This node's calls and deliveries, as other nodes reach them. */
  calls: LocalCalls;
}

/**
 * A transport that publishes to many nodes at once (NATS, by subject) instead of once per node
 * over its pipe. Resolves to how many subscribers took it, from the answers of the nodes that
 * had one, waiting for those in `expected` at most `timeoutMs`.
 */
export type Broadcast = (
  publish: { topic: string; args: unknown; author: string | undefined; authorHost: string },
  expected: RemoteNode[],
  timeoutMs: number,
) => Promise<number>;

export interface Mesh {
  /** How blocking calls reach the nodes of this transport. */
  readonly blocking: BlockingRoute;
  /** Starts finding and watching nodes; `loopbackOnly`: the server listens on loopback alone. */
  start(loopbackOnly: boolean): Promise<void>;
  /** The answer to an `/info` request that came over HTTP from `from`, or undefined (418). */
  answerInfo(request: InfoRequest, from: string): InfoAnswer | undefined;
  /** This node's plugins changed: the nodes it knows are told soon. */
  bumpVersion(): void;
  /** A blocking call found nothing listening at the node's address. */
  refused(node: RemoteNode): void;
  /** Set when the transport publishes to many nodes at once. */
  readonly broadcast?: Broadcast | undefined;
  /** The first step of closing: the others hear that this node is leaving. */
  leave(): void;
  close(): Promise<void>;
}

export type MeshFactory = new (context: MeshContext) => Mesh;

/** This node's info answer for `request`, passing on `nodes`. */
export function infoAnswer(
  context: MeshContext,
  request: InfoRequest,
  nodes: WireNode[],
): InfoAnswer {
  const { open, closed, topics } = context.localEndpoints(request.hostname);
  return {
    hostname: context.hostname,
    auto_discoverable: context.config.auto_discoverable,
    nodes,
    endpoints: open,
    closed,
    topics,
    version: Atomics.load(context.version, 0),
    instance: context.instance,
    port: context.server.port,
    tls: context.tls.enabled,
  };
}
