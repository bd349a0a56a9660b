/**
 * What the core needs from the layers above it, as interfaces they implement: plugins/ runs a
 * plugin's code behind `PluginHost`, net/ reaches other nodes behind `RemoteRoutes`. The core
 * knows only these, so it runs the same whether a plugin lives in this thread or a worker,
 * and with or without a network; PluginCore plugs the implementations in.
 */
import type { Isolation, PluginManifest } from "../config/types.js";
import type { RequestError } from "../errors.js";
import type { Call, Caller } from "./call.js";
import type { LoadedEndpoint } from "./endpoint.js";
import type { CallInfo, SubscriptionInfo, TaggedEndpoint, TopicOptions } from "./types.js";

/** What the plugin reports about itself once loaded (it may change these in `onLoad`). */
export interface PluginIdentity {
  uuid: string;
  version: string;
  description: string;
  remote: boolean;
}

/**
 * Where a plugin's code runs. The core manages every plugin through this interface, so the
 * lifecycle, routing and call tracking are the same whether the instance lives in this
 * thread or elsewhere.
 */
export interface PluginHost {
  /** Where the plugin's code runs. */
  readonly isolation: Isolation;
  /** Imports the module, constructs the plugin and runs `onLoad`. */
  load(): Promise<void>;
  enable(): Promise<void>;
  disable(): Promise<void>;
  /** Releases what the host holds; the plugin is never called again. */
  dispose(): Promise<void>;

  readonly manifest: PluginManifest;
  identity(): PluginIdentity;
  readonly endpoints: ReadonlyMap<string, LoadedEndpoint>;

  /**
   * Starts a function endpoint. Returns its value, or a promise of it. May throw what the
   * plugin throws.
   */
  invoke(endpoint: LoadedEndpoint, args: unknown[], call: CallInfo): unknown;
  /** Starts a generator endpoint and returns its iterator. */
  openStream(
    endpoint: LoadedEndpoint,
    args: unknown[],
    call: CallInfo,
  ): Iterator<unknown, unknown, undefined> | AsyncIterator<unknown, unknown, undefined>;
  /**
   * Runs a plain function endpoint to completion, blocking the calling thread until it
   * returns (`executeSync`).
   */
  invokeBlocking(endpoint: LoadedEndpoint, args: unknown[], call: CallInfo): unknown;
  /** Starts a sync generator endpoint whose every step blocks until it yields. */
  openStreamBlocking(
    endpoint: LoadedEndpoint,
    args: unknown[],
    call: CallInfo,
  ): Iterator<unknown, unknown, undefined>;
}

/** How the dispatcher reaches other nodes; implemented by the network layer. */
export interface RemoteRoutes {
  /** Whether some reachable node serves this call's endpoint. */
  canServe(call: Call): boolean;
  execute(call: Call, args: unknown): Promise<unknown>;
  executeStream(call: Call, args: unknown): AsyncGenerator<unknown, void, undefined>;
  /** Blocks this thread until the other node answers. */
  executeSync(call: Call, args: unknown): unknown;
  executeStreamSync(call: Call, args: unknown): Generator<unknown, void, undefined>;
  /**
   * The error to give when this node cannot serve the call (`local` says why) and no other
   * node can either: `local`, or what another node knows better (it has the plugin but refuses
   * this node), with the nodes that could not be asked.
   */
  explain(call: Call, local: RequestError): RequestError;
  /**
   * A call kept on this node (`host: "local"`, as every call over HTTP's `/execute` is) found no
   * such plugin here: `local`, saying which other node has it, if one does.
   */
  elsewhere(call: Call, local: RequestError): RequestError;
}

/**
 * How topics reach other nodes; implemented by the network layer. A topic request is a `Call`
 * whose `method` is the topic and whose `plugin` is empty until a node chooses its handler.
 */
export interface RemoteTopics {
  /** Hands a publish to the other nodes `options.host` allows; resolves to how many subscribers took it. */
  notify(caller: Caller, topic: string, args: unknown, options: TopicOptions): Promise<number>;
  /** Whether some reachable node (or the node named `host`) has a subscriber of the topic. */
  canAnswer(topic: string, host: string | undefined): boolean;
  requestTopic(call: Call, args: unknown): Promise<unknown>;
  requestTopicStream(call: Call, args: unknown): AsyncGenerator<unknown, void, undefined>;
  /** The subscriptions other nodes offer this one, as far as their `/info` tells. */
  subscriptions(): SubscriptionInfo[];
  /** Endpoints of other nodes carrying `tag` that `caller` may call, from their known maps. */
  endpointsByTag(caller: Caller, tag: string | undefined): TaggedEndpoint[];
}
