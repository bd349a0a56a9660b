/** Public types of calls and of what the core reports about plugins and nodes. */
import type { Isolation } from "../config/types.js";
import type { EndpointInfo } from "./endpoint.js";

export interface ExecuteOptions {
  /** Where the call may run: "any" (default: this node first), "local", "remote", or a hostname. */
  host?: "any" | "local" | "remote" | (string & {});
  /** Run on exactly this plugin instance, wherever it is. */
  pluginUuid?: string;
  /**
   * Who is calling. A plugin's name makes the call subject to that plugin's access rules;
   * any other label is the application. Calls made through `Plugin` set it themselves.
   */
  author?: string;
  /** Milliseconds until the call fails with `TIMEOUT`. */
  timeout?: number;
  /** Aborting fails the call with `ABORTED`. */
  signal?: AbortSignal;
}

export type PluginState = "loaded" | "enabled" | "disabled" | "failed" | "unloaded";

export interface PluginInfo {
  name: string;
  version: string;
  /** Empty until an instance exists. */
  uuid: string;
  state: PluginState;
  remote: boolean;
  description: string;
  /** Why the plugin failed, with file and line where they are known. */
  error?: string;
  /** The code of that error. */
  errorCode?: string;
  /** The plugin folder. */
  path: string;
  isolation: Isolation;
  /** How long loading took, in milliseconds. */
  loadTimeMs?: number;
}

export interface NodeInfo {
  hostname: string;
  address: string;
  alive: boolean;
  /** Milliseconds since the epoch of the last answer from the node; 0 if none yet. */
  lastSeen: number;
  plugins: string[];
  /** How the node is reached: the node channel or NATS (`networking.transport`). */
  transport: "channel" | "nats";
  /**
   * The last round trip to the node, in milliseconds: a heartbeat's on the channel, an info
   * request's over NATS. Absent until one was measured.
   */
  rttMs?: number;
}

/**
 * The call a plugin method is serving, from `Plugin.currentCall`. Read it at the start of the
 * method, before the first `await` or `yield`: afterwards other calls may be running.
 */
export interface CallInfo {
  readonly requestId: string;
  /** The calling plugin's name, when a plugin made the call. */
  readonly author: string | undefined;
  /** The node the call came from; undefined for a call made on this node. */
  readonly authorHost: string | undefined;
  /**
   * Aborted when the caller stops waiting: its timeout passes (on whichever node), it aborts,
   * it breaks out of a stream, or the plugin is unloaded. Pass it on to fetch(), timers and
   * other plugins' calls so their work stops too.
   */
  readonly signal: AbortSignal;
  /** When the caller stops waiting, as a `Date.now()` time, if it has a deadline. */
  readonly deadline: number | undefined;
}

/** What a topic subscriber is told besides the arguments. */
export interface TopicInfo {
  /** The topic published to (never a pattern). */
  topic: string;
  /** The hostname of the node the publish came from. */
  publisherHost: string;
  /** The publishing plugin's name, or "application". */
  publisher: string;
}

export type TopicHandler = (args: unknown, info: TopicInfo) => unknown;

/** A code subscription, from `subscribe`. */
export interface Subscription {
  readonly id: string;
  readonly pattern: string;
  /** Ends the subscription; calling it again does nothing. */
  unsubscribe(): void;
}

export interface TopicOptions {
  /** Which subscribers: "any" (default: this node's and every other's), "local", "remote", or a hostname. */
  host?: "any" | "local" | "remote" | (string & {});
  /** Milliseconds to wait for other nodes to take the publish. */
  timeout?: number;
  signal?: AbortSignal;
}

/** One subscription, as `listSubscriptions` shows it. */
export interface SubscriptionInfo {
  /** The node it is on. */
  hostname: string;
  pattern: string;
  /** `Plugin.endpoint` for a manifest's `topic:`, else the subscribing plugin or "application". */
  subscriber: string;
  kind: "endpoint" | "code";
}

/** A publish as `watch` yields it. */
export interface TopicMessage extends TopicInfo {
  args: unknown;
}

/** An endpoint found by `findEndpointsByTag`. */
export interface TaggedEndpoint {
  hostname: string;
  plugin: string;
  pluginUuid: string;
  endpoint: EndpointInfo;
}
