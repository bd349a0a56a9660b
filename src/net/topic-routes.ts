/**
 * Topics across nodes: a publish goes once to each node that has a matching subscriber (as its
 * `/info` answer lists them), and a topic request to one such node, the next one if it never
 * got there. Tags are read from the endpoint maps the nodes already sent: no round trip.
 */
import { randomBytes } from "node:crypto";
import { Call, type Caller } from "../core/call.js";
import type { EndpointInfo, EndpointKind } from "../core/endpoint.js";
import type { RemoteTopics } from "../core/ports.js";
import type { SubscriptionInfo, TaggedEndpoint, TopicOptions } from "../core/types.js";
import { callErrors, NotDelivered, RequestError, TOPIC_PLUGIN } from "../errors.js";
import type { Logger } from "../log.js";
import { inTurn, streamInTurn } from "./failover.js";
import type { Broadcast } from "./mesh.js";
import type { NodeRegistry, RemoteNode } from "./nodes.js";
import type { WireEndpoint } from "./wire.js";

/** How long a publish waits for a node to say how many subscribers took it, by default. */
const NOTIFY_TIMEOUT_MS = 10_000;

export interface TopicRoutesOptions {
  nodes: NodeRegistry;
  /** This node's hostname, sent as the publisher's host. */
  hostname: string;
  logger: Logger;
  /** The transport's way to publish to many nodes at once, if it has one. */
  broadcast?: Broadcast | undefined;
}

export class RemoteTopicRoutes implements RemoteTopics {
  readonly #nodes: NodeRegistry;
  readonly #options: TopicRoutesOptions;
  readonly #idPrefix = `${randomBytes(3).toString("hex")}-p`;
  #seq = 0;

  constructor(options: TopicRoutesOptions) {
    this.#nodes = options.nodes;
    this.#options = options;
  }

  #named(host: string | undefined): string | undefined {
    return host === undefined || host === "any" || host === "remote" ? undefined : host;
  }

  notify(caller: Caller, topic: string, args: unknown, options: TopicOptions): Promise<number> {
    const named = this.#named(options.host);
    const nodes = this.#nodes.subscribers(topic, named);
    if (nodes.length === 0) return Promise.resolve(0);
    const broadcast = this.#options.broadcast;
    if (broadcast && named === undefined) {
      const author = caller.kind === "plugin" ? caller.name : undefined;
      return broadcast(
        { topic, args, author, authorHost: this.#options.hostname },
        nodes,
        options.timeout ?? NOTIFY_TIMEOUT_MS,
      );
    }
    const call = new Call(this.#idPrefix, ++this.#seq, TOPIC_PLUGIN, topic, caller, {
      timeout: options.timeout ?? NOTIFY_TIMEOUT_MS,
      signal: options.signal,
    });
    const toNode = (node: RemoteNode) =>
      node.connection.notify(call, args, this.#options.hostname).then(
        (count) => (typeof count === "number" && count > 0 ? count : 0),
        (error: unknown) => {
          this.#options.logger.warn(
            `publishing "${topic}" to node ${node.hostname} failed: ${(error as Error).message}`,
          );
          return 0;
        },
      );
    if (nodes.length === 1) return toNode(nodes[0] as RemoteNode);
    return Promise.all(nodes.map(toNode)).then((counts) =>
      counts.reduce((sum, count) => sum + count, 0),
    );
  }

  canAnswer(topic: string, host: string | undefined): boolean {
    return this.#nodes.subscribers(topic, this.#named(host)).length > 0;
  }

  requestTopic(call: Call, args: unknown): Promise<unknown> {
    return inTurn(
      this.#nodes.subscribers(call.method, this.#named(call.host)),
      (node) => node.connection.execute(call, args, this.#options.hostname),
      tryNext,
      (reasons) => this.#none(call, reasons),
    );
  }

  requestTopicStream(call: Call, args: unknown): AsyncGenerator<unknown, void, undefined> {
    return streamInTurn(
      this.#nodes.subscribers(call.method, this.#named(call.host)),
      (node) => node.connection.stream(call, args, this.#options.hostname),
      tryNext,
      (reasons) => this.#none(call, reasons),
    );
  }

  #none(call: Call, reasons: string[]): RequestError {
    return reasons.length === 0
      ? callErrors.noHandler(call, " on other nodes")
      : callErrors.noHandler(call, ` on other nodes (${reasons.join("; ")})`);
  }

  subscriptions(): SubscriptionInfo[] {
    const found: SubscriptionInfo[] = [];
    for (const node of this.#nodes.all()) {
      if (!node.alive) continue;
      const byEndpoint = new Set<string>();
      for (const [plugin, methods] of node.endpoints) {
        for (const endpoint of methods.values()) {
          if (endpoint.topic === undefined) continue;
          byEndpoint.add(endpoint.topic);
          found.push({
            hostname: node.hostname,
            pattern: endpoint.topic,
            subscriber: `${plugin}.${endpoint.access_name}`,
            kind: "endpoint",
          });
        }
      }
      // The rest are code subscriptions; a node does not say whose.
      for (const pattern of node.topicPatterns) {
        if (byEndpoint.has(pattern)) continue;
        found.push({ hostname: node.hostname, pattern, subscriber: "code", kind: "code" });
      }
    }
    return found;
  }

  endpointsByTag(caller: Caller, tag: string | undefined): TaggedEndpoint[] {
    const found: TaggedEndpoint[] = [];
    for (const node of this.#nodes.all()) {
      if (!node.alive) continue;
      for (const [plugin, methods] of node.endpoints) {
        for (const endpoint of methods.values()) {
          if (tag !== undefined && !endpoint.tags?.includes(tag)) continue;
          // The serving node lists what this node may call; a plugin also needs the endpoint
          // open to other plugins, as that node would check on the call.
          if (
            caller.kind === "plugin" &&
            caller.name !== plugin &&
            endpoint.accessible_by_other_plugins !== true
          ) {
            continue;
          }
          found.push(tagged(node, endpoint.plugin_uuid, plugin, endpoint));
        }
      }
    }
    return found;
  }
}

function tagged(
  node: RemoteNode,
  pluginUuid: string,
  plugin: string,
  endpoint: WireEndpoint,
): TaggedEndpoint {
  // Internal method names stay on their node: the access name stands in for it.
  const info: EndpointInfo = {
    access_name: endpoint.access_name,
    internal_name: endpoint.access_name,
    description: endpoint.description,
    tags: [...endpoint.tags],
    remote: true,
    accessible_by_other_plugins: endpoint.accessible_by_other_plugins === true,
    arguments: (endpoint.arguments ?? []).map((argument) => ({ ...argument })),
    kind: endpoint.kind as EndpointKind,
  };
  if (endpoint.topic !== undefined) info.topic = endpoint.topic;
  if (endpoint.returns !== undefined) info.returns = endpoint.returns;
  return { hostname: node.hostname, plugin, pluginUuid, endpoint: info };
}

/**
 * Another node may take the request: this one never got it, or has no handler of the kind
 * asked for (its subscriber of the topic is a stream where a value was asked, say).
 */
function tryNext(node: RemoteNode, error: unknown): string | undefined {
  const moveOn =
    error instanceof NotDelivered || (error instanceof RequestError && error.code === "NO_HANDLER");
  return moveOn ? `${node.hostname}: ${(error as Error).message}` : undefined;
}
