/**
 * The base class of every plugin.
 *
 * A plugin is constructed by the core with no arguments. The core hands the new instance its
 * context (name, uuid, logger, the way to call other plugins) before the subclass constructor
 * body runs, so even a constructor may log.
 */

import type { EndpointInfo } from "../core/endpoint.js";
import type {
  CallRest,
  CallResult,
  EndpointName,
  KnownPlugin,
  UntypedPlugin,
} from "../core/typed-calls.js";
import type {
  CallInfo,
  ExecuteOptions,
  PluginState,
  Subscription,
  TaggedEndpoint,
  TopicHandler,
  TopicOptions,
} from "../core/types.js";
import type { Logger } from "../log.js";

/** How a plugin reaches the rest of the system; implemented by the core. */
export interface PluginContext {
  readonly name: string;
  readonly uuid: string;
  readonly logger: Logger;
  readonly version: string;
  readonly description: string;
  readonly remote: boolean;
  readonly arguments: unknown;
  state(): PluginState;
  endpoints(): EndpointInfo[];
  currentCall(): CallInfo | undefined;
  execute(
    plugin: string,
    method: string,
    args: unknown,
    options: ExecuteOptions | undefined,
  ): Promise<unknown>;
  executeSync(
    plugin: string,
    method: string,
    args: unknown,
    options: ExecuteOptions | undefined,
  ): unknown;
  executeStream(
    plugin: string,
    method: string,
    args: unknown,
    options: ExecuteOptions | undefined,
  ): AsyncGenerator<unknown, void, undefined>;
  executeStreamSync(
    plugin: string,
    method: string,
    args: unknown,
    options: ExecuteOptions | undefined,
  ): Generator<unknown, void, undefined>;
  notify(topic: string, args: unknown, options: TopicOptions | undefined): Promise<number>;
  notifySync(topic: string, args: unknown, options: TopicOptions | undefined): number;
  requestTopic(topic: string, args: unknown, options: ExecuteOptions | undefined): Promise<unknown>;
  requestTopicStream(
    topic: string,
    args: unknown,
    options: ExecuteOptions | undefined,
  ): AsyncGenerator<unknown, void, undefined>;
  requestTopicSync(topic: string, args: unknown, options: ExecuteOptions | undefined): unknown;
  requestTopicStreamSync(
    topic: string,
    args: unknown,
    options: ExecuteOptions | undefined,
  ): Generator<unknown, void, undefined>;
  subscribe(pattern: string, handler: TopicHandler): Subscription;
  findEndpointsByTag(tag: string): Promise<TaggedEndpoint[]>;
}

let pendingContext: PluginContext | undefined;

/** Runs `construct` with `context` given to the Plugin it constructs. */
export function constructWithContext<T>(context: PluginContext, construct: () => T): T {
  pendingContext = context;
  try {
    return construct();
  } finally {
    pendingContext = undefined;
  }
}

function detached(): never {
  throw new Error(
    "This plugin was not created by a PluginCore; load it through a config instead of `new`.",
  );
}

export abstract class Plugin {
  readonly #context: PluginContext | undefined;

  /** The plugin's name as config.yml gives it. */
  pluginName: string;
  version: string;
  description: string;
  /** Whether other nodes may call it (each endpoint must agree too). */
  remote: boolean;

  constructor() {
    this.#context = pendingContext;
    pendingContext = undefined;
    this.pluginName = this.#context?.name ?? new.target.name;
    this.version = this.#context?.version ?? "0.0.0";
    this.description = this.#context?.description ?? "";
    this.remote = this.#context?.remote ?? false;
  }

  /** Identifies this instance; a reloaded plugin gets a new one. */
  get pluginUuid(): string {
    return this.#context?.uuid ?? "";
  }

  get enabled(): boolean {
    return this.#context?.state() === "enabled";
  }

  get endpoints(): EndpointInfo[] {
    return this.#context?.endpoints() ?? [];
  }

  /** A logger whose lines carry this plugin's name. */
  get logger(): Logger {
    return this.#context?.logger ?? detached();
  }

  /**
   * The call this plugin is serving, with its `signal`, `requestId` and `author`. Read it at
   * the start of the method, before the first `await` or `yield`; undefined outside a call.
   *
   * ```ts
   * async fetchPage(url: string) {
   *   const { signal } = this.currentCall!;
   *   return (await fetch(url, { signal })).text(); // stops when the caller gives up
   * }
   * ```
   */
  get currentCall(): CallInfo | undefined {
    return this.#context?.currentCall();
  }

  /** What `onLoad` received: plugin_config.yml's `arguments`, or config.yml's override. */
  get arguments(): unknown {
    return this.#context?.arguments;
  }

  /** Called once after construction, with the plugin's arguments. */
  onLoad(_args: unknown): void | Promise<void> {}

  /** Called when the plugin is enabled; calls reach it only afterwards. */
  onEnable(): void | Promise<void> {}

  /** Called when the plugin is disabled, unloaded, or the core closes. */
  onDisable(): void | Promise<void> {}

  execute<
    T = unknown,
    P extends KnownPlugin = KnownPlugin,
    M extends EndpointName<P> = EndpointName<P>,
  >(plugin: P, method: M, ...rest: CallRest<P, M>): Promise<CallResult<T, P, M>>;
  execute<T = unknown>(
    plugin: UntypedPlugin,
    method: string,
    args?: unknown,
    options?: ExecuteOptions,
  ): Promise<T>;
  execute(
    plugin: string,
    method: string,
    args?: unknown,
    options?: ExecuteOptions,
  ): Promise<unknown> {
    const context = this.#context ?? detached();
    return context.execute(plugin, method, args, options);
  }

  executeSync<
    T = unknown,
    P extends KnownPlugin = KnownPlugin,
    M extends EndpointName<P> = EndpointName<P>,
  >(plugin: P, method: M, ...rest: CallRest<P, M>): CallResult<T, P, M>;
  executeSync<T = unknown>(
    plugin: UntypedPlugin,
    method: string,
    args?: unknown,
    options?: ExecuteOptions,
  ): T;
  executeSync(plugin: string, method: string, args?: unknown, options?: ExecuteOptions): unknown {
    const context = this.#context ?? detached();
    return context.executeSync(plugin, method, args, options);
  }

  executeStream<
    T = unknown,
    P extends KnownPlugin = KnownPlugin,
    M extends EndpointName<P> = EndpointName<P>,
  >(
    plugin: P,
    method: M,
    ...rest: CallRest<P, M>
  ): AsyncGenerator<CallResult<T, P, M>, void, undefined>;
  executeStream<T = unknown>(
    plugin: UntypedPlugin,
    method: string,
    args?: unknown,
    options?: ExecuteOptions,
  ): AsyncGenerator<T, void, undefined>;
  executeStream(
    plugin: string,
    method: string,
    args?: unknown,
    options?: ExecuteOptions,
  ): AsyncGenerator<unknown, void, undefined> {
    const context = this.#context ?? detached();
    return context.executeStream(plugin, method, args, options);
  }

  executeStreamSync<
    T = unknown,
    P extends KnownPlugin = KnownPlugin,
    M extends EndpointName<P> = EndpointName<P>,
  >(plugin: P, method: M, ...rest: CallRest<P, M>): Generator<CallResult<T, P, M>, void, undefined>;
  executeStreamSync<T = unknown>(
    plugin: UntypedPlugin,
    method: string,
    args?: unknown,
    options?: ExecuteOptions,
  ): Generator<T, void, undefined>;
  executeStreamSync(
    plugin: string,
    method: string,
    args?: unknown,
    options?: ExecuteOptions,
  ): Generator<unknown, void, undefined> {
    const context = this.#context ?? detached();
    return context.executeStreamSync(plugin, method, args, options);
  }

  /** Publishes to `topic` as this plugin (see `PluginCore.notify`). */
  notify(topic: string, args?: unknown, options?: TopicOptions): Promise<number> {
    const context = this.#context ?? detached();
    return context.notify(topic, args, options);
  }

  notifySync(topic: string, args?: unknown, options?: TopicOptions): number {
    const context = this.#context ?? detached();
    return context.notifySync(topic, args, options);
  }

  requestTopic<T = unknown>(topic: string, args?: unknown, options?: ExecuteOptions): Promise<T> {
    const context = this.#context ?? detached();
    return context.requestTopic(topic, args, options) as Promise<T>;
  }

  requestTopicStream<T = unknown>(
    topic: string,
    args?: unknown,
    options?: ExecuteOptions,
  ): AsyncGenerator<T, void, undefined> {
    const context = this.#context ?? detached();
    return context.requestTopicStream(topic, args, options) as AsyncGenerator<T, void, undefined>;
  }

  requestTopicSync<T = unknown>(topic: string, args?: unknown, options?: ExecuteOptions): T {
    const context = this.#context ?? detached();
    return context.requestTopicSync(topic, args, options) as T;
  }

  requestTopicStreamSync<T = unknown>(
    topic: string,
    args?: unknown,
    options?: ExecuteOptions,
  ): Generator<T, void, undefined> {
    const context = this.#context ?? detached();
    return context.requestTopicStreamSync(topic, args, options) as Generator<T, void, undefined>;
  }

  /**
   * Subscribes this plugin instance: `handler` receives what is published to topics matching
   * `pattern` while the plugin is enabled (other nodes' publishes only if it is `remote`),
   * until `unsubscribe()` or until the instance is unloaded or reloaded.
   */
  subscribe(pattern: string, handler: TopicHandler): Subscription {
    const context = this.#context ?? detached();
    return context.subscribe(pattern, handler);
  }

  /** Endpoints carrying `tag` that this plugin may call, on this node and every alive one. */
  findEndpointsByTag(tag: string): Promise<TaggedEndpoint[]> {
    const context = this.#context ?? detached();
    return context.findEndpointsByTag(tag);
  }
}

/** A class a plugin module exports. */
export type PluginClass = new () => Plugin;

export function isPluginClass(value: unknown): value is PluginClass {
  return typeof value === "function" && value.prototype instanceof Plugin;
}
