/**
 * What this node knows of the others: where each is, whether it answers, and which endpoints
 * it serves. Nodes are told apart by their instance id, so one node reached at two addresses
 * is one node, and two nodes claiming one hostname are two nodes, reported as a conflict.
 */

import type { NodeInfo } from "../core/types.js";
import { type TopicMatcher, topicMatcher } from "../topic-names.js";
import type { PeerIdentity } from "./auth.js";
import type { NodeConnection } from "./connection.js";
import { leastInFlight } from "./strategies/least-in-flight.js";
import type { BalancingStrategy } from "./strategies/strategy.js";
import type { InfoAnswer, WireEndpoint } from "./wire.js";

export class RemoteNode {
  readonly instance: string;
  hostname: string;
  address: string;
  port: number;
  tls: boolean;
  alive = true;
  /** It said it is shutting down: down for good (a restart is a new instance). */
  leaving = false;
  /** When it last answered, by the wall clock: for people (`nodes()`). */
  lastSeen = Date.now();
  /** When it last answered, by the monotonic clock: for liveness, which a clock jump must not fool. */
  heardAt = performance.now();
  /** Its clock minus this node's, in ms, as measured when it was last asked who it is. */
  clockOffsetMs = 0;
  version = -1;
  autoDiscoverable = true;
  /** plugin name → access name → endpoint */
  endpoints = new Map<string, Map<string, WireEndpoint>>();
  /** plugin name → access name → why this node may not call it, for endpoints closed to it. */
  closed = new Map<string, Map<string, string>>();
  uuids = new Map<string, string>();
  /** The topic patterns this node may publish to there, and their matchers. */
  topicPatterns: string[] = [];
  topics: TopicMatcher[] = [];
  readonly connection: NodeConnection;
  readonly transport: NodeInfo["transport"];
  /** The last round trip measured to it, in ms. */
  rttMs: number | undefined;

  constructor(
    answer: InfoAnswer,
    address: string,
    port: number,
    transport: NodeInfo["transport"],
    createConnection: (node: RemoteNode) => NodeConnection,
  ) {
    this.instance = answer.instance;
    this.transport = transport;
    this.hostname = answer.hostname;
    this.address = address;
    this.port = port;
    this.tls = answer.tls;
    this.connection = createConnection(this);
    this.update(answer);
  }

  /** Where it is reached, for people: `address:port`, or the address alone without a port. */
  get place(): string {
    return this.port ? `${this.address}:${this.port}` : this.address;
  }

  /** What requests to it are signed for. */
  identity(): PeerIdentity {
    return { instance: this.instance, clockOffsetMs: this.clockOffsetMs };
  }

  /** It answered just now. */
  heard(): void {
    this.heardAt = performance.now();
    this.lastSeen = Date.now();
  }

  /** Milliseconds since it last answered. */
  silentFor(): number {
    return performance.now() - this.heardAt;
  }

  update(answer: InfoAnswer): void {
    this.hostname = answer.hostname;
    this.version = answer.version;
    this.autoDiscoverable = answer.auto_discoverable;
    const closed = new Map<string, Map<string, string>>();
    for (const refusal of answer.closed) {
      let methods = closed.get(refusal.plugin);
      if (!methods) {
        methods = new Map();
        closed.set(refusal.plugin, methods);
      }
      methods.set(refusal.access_name, refusal.reason);
    }
    this.closed = closed;
    const endpoints = new Map<string, Map<string, WireEndpoint>>();
    const uuids = new Map<string, string>();
    for (const endpoint of answer.endpoints) {
      let methods = endpoints.get(endpoint.plugin);
      if (!methods) {
        methods = new Map();
        endpoints.set(endpoint.plugin, methods);
      }
      methods.set(endpoint.access_name, endpoint);
      uuids.set(endpoint.plugin_uuid, endpoint.plugin);
    }
    this.endpoints = endpoints;
    this.uuids = uuids;
    this.topicPatterns = answer.topics;
    this.topics = answer.topics.map(topicMatcher);
  }

  /** Whether it has a subscriber of `topic` this node may publish to. */
  subscribes(topic: string): boolean {
    for (const matches of this.topics) if (matches(topic)) return true;
    return false;
  }

  serves(plugin: string, method: string, uuid: string | undefined): boolean {
    if (uuid !== undefined && this.uuids.get(uuid) !== plugin) return false;
    return this.endpoints.get(plugin)?.has(method) === true;
  }

  /** Why it refuses this node `plugin.method`, if it has the endpoint but keeps it closed. */
  refuses(plugin: string, method: string): string | undefined {
    return this.closed.get(plugin)?.get(method);
  }

  info(): NodeInfo {
    return {
      hostname: this.hostname,
      address: this.place,
      alive: this.alive,
      lastSeen: this.lastSeen,
      plugins: [...this.endpoints.keys()],
      transport: this.transport,
      ...(this.rttMs === undefined ? {} : { rttMs: Math.round(this.rttMs * 100) / 100 }),
    };
  }
}

export class NodeRegistry {
  readonly #byInstance = new Map<string, RemoteNode>();
  readonly #strategy: BalancingStrategy;
  /**
   * Addresses to contact that have not answered as they should, with the reason (refused the
   * credentials, nothing listens, …): an error about a plugin no known node serves names them.
   */
  readonly unreachable = new Map<string, string>();

  constructor(strategy: BalancingStrategy = leastInFlight) {
    this.#strategy = strategy;
  }

  get(instance: string): RemoteNode | undefined {
    return this.#byInstance.get(instance);
  }

  add(node: RemoteNode): void {
    this.#byInstance.set(node.instance, node);
  }

  remove(node: RemoteNode): void {
    this.#byInstance.delete(node.instance);
  }

  all(): RemoteNode[] {
    return [...this.#byInstance.values()];
  }

  byAddress(address: string, port: number): RemoteNode | undefined {
    for (const node of this.#byInstance.values()) {
      if (node.address === address && node.port === port) return node;
    }
    return undefined;
  }

  /** Alive nodes with this hostname; more than one is a conflict. */
  withHostname(hostname: string): RemoteNode[] {
    return this.all().filter((node) => node.alive && node.hostname === hostname);
  }

  /**
   * Alive nodes that serve `plugin.method` (and the instance `uuid`, if given), on the host
   * the call names, in the order of the balancing strategy.
   */
  candidates(
    plugin: string,
    method: string,
    uuid: string | undefined,
    hostname?: string,
  ): RemoteNode[] {
    const found: RemoteNode[] = [];
    for (const node of this.#byInstance.values()) {
      if (!node.alive) continue;
      if (hostname !== undefined && node.hostname !== hostname) continue;
      if (node.serves(plugin, method, uuid)) found.push(node);
    }
    if (found.length > 1) this.#strategy.order(found);
    return found;
  }

  /** Alive nodes with a subscriber of `topic`, fewest calls in flight first. */
  subscribers(topic: string, hostname?: string): RemoteNode[] {
    const found: RemoteNode[] = [];
    for (const node of this.#byInstance.values()) {
      if (!node.alive) continue;
      if (hostname !== undefined && node.hostname !== hostname) continue;
      if (node.subscribes(topic)) found.push(node);
    }
    if (found.length > 1) this.#strategy.order(found);
    return found;
  }

  /** Nodes that may be passed on to others in `/info` answers. */
  shareable(): RemoteNode[] {
    return this.all().filter((node) => node.alive && node.autoDiscoverable);
  }
}
