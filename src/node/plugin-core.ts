/**
 * PluginCore: the application's handle on a node. It reads the config, owns the plugins'
 * lifecycle, and lets the application and the plugins call each other by name.
 *
 * src/node/ is the composition root, the one place that knows every implementation: here the
 * core's registry, lifecycle and dispatcher get the plugin hosts (plugins/: this thread or a
 * worker), the file watcher for hot reload, and the network stack (net/, imported only when
 * networking is on) behind the interfaces of core/ports.ts. Wiring them here, above the three
 * folders, is what lets core/ import neither plugins/ nor net/, and those two not each other.
 * PluginCore stays one class rather than a subclass of a core-level engine, so what users get
 * (its prototype and type declarations) is unchanged.
 */
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { isAbsolute, resolve } from "node:path";
import { type ConfigWarning, loadConfigFile, resolveConfigObject } from "../config/load.js";
import type {
  AioConfig,
  ConfigObject,
  Isolation,
  LogLevelName,
  PluginEntry,
  PluginManifest,
} from "../config/types.js";
import { openToNodes, refusal } from "../core/access.js";
import { APPLICATION, type Caller, type CallOptions } from "../core/call.js";
import { Dispatcher } from "../core/dispatcher.js";
import type { EndpointInfo } from "../core/endpoint.js";
import { Lifecycle, type LifecycleEvents } from "../core/lifecycle.js";
import { CallMetrics } from "../core/metrics.js";
import type { PluginHost } from "../core/ports.js";
import { PluginRegistry, PluginSlot } from "../core/registry.js";
import { Topics } from "../core/topics.js";
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
  NodeInfo,
  PluginInfo,
  Subscription,
  SubscriptionInfo,
  TaggedEndpoint,
  TopicHandler,
  TopicOptions,
} from "../core/types.js";
import { ConfigError, callErrors } from "../errors.js";
import { createLogging, type Logger, type Logging, type LogLine } from "../log.js";
import { bindAddress } from "../net/address.js";
import type { NetworkManager } from "../net/manager.js";
import type { MetricsExporter } from "../net/metrics.js";
import { openApiDocument } from "../net/openapi.js";
import type { AdminAction, HasPluginAnswer } from "../net/server.js";
import type { WireEndpoint, WireRefusal } from "../net/wire.js";
import { InProcessHost } from "../plugins/in-process.js";
import { findEntryFile } from "../plugins/loader.js";
import type { PluginContext } from "../plugins/plugin.js";
import { PluginWatcher } from "../plugins/watch.js";
import { WorkerHost } from "../plugins/worker-host.js";
import { packageVersion } from "../version.js";
import { runAdminAction } from "./admin.js";
import type { NodeMcp } from "./mcp.js";

export interface PluginCoreEvents extends LifecycleEvents {
  "node:up": [node: NodeInfo];
  "node:down": [node: NodeInfo];
}

function readConfig(config: string | ConfigObject): {
  config: AioConfig;
  warnings: ConfigWarning[];
} {
  if (typeof config === "string") return loadConfigFile(config);
  return resolveConfigObject(config);
}

function formatWarning(warning: ConfigWarning): string {
  const where = warning.file ? `${warning.file}${warning.line ? `:${warning.line}` : ""} ` : "";
  return `${where}${warning.key}: ${warning.message}`;
}

/** How a program runs the core, beyond what the config says (the command line sets these). */
export interface PluginCoreOptions {
  /** Console log level, instead of `general.console_log_level`. */
  logLevel?: LogLevelName;
  /** Colored console output on or off; default: on a terminal, unless NO_COLOR is set. */
  color?: boolean;
  /** The log file's folder, instead of `general.log_dir` (`""`: no log file). */
  logDir?: string;
}

export class PluginCore extends EventEmitter<PluginCoreEvents> {
  /** This node's name, as other nodes and `host` options know it. */
  readonly hostname: string;
  readonly #config: AioConfig;
  readonly #logging: Logging;
  readonly #logger: Logger;
  readonly #registry = new PluginRegistry();
  /** Config entries refused for a duplicate name, so each is reported once. */
  readonly #refusedEntries = new WeakSet<PluginEntry>();
  readonly #dispatcher: Dispatcher;
  /** What `/metrics` reports; undefined with `general.metrics: false`. */
  readonly #metrics: CallMetrics | undefined;
  #exporter: MetricsExporter | undefined;
  readonly #topics: Topics;
  readonly #lifecycle: Lifecycle;
  readonly #watcher = new PluginWatcher();
  readonly #reloads = new Map<string, Promise<void>>();
  /** Created by `start()` when networking is enabled; the network stack loads only then. */
  #network: NetworkManager | undefined;
  #mcp: NodeMcp | undefined;
  #starting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;

  /**
   * @param config a path to config.yml, or the same data as an object. Throws `ConfigError`
   *   naming the file, line and key of every problem.
   */
  constructor(config: string | ConfigObject, options: PluginCoreOptions = {}) {
    super();
    const { config: resolved, warnings } = readConfig(config);
    this.#config = resolved;
    this.hostname = resolved.general.hostname;
    try {
      this.#logging = createLogging({
        level: options.logLevel ?? resolved.general.console_log_level,
        logDir: options.logDir ?? resolved.general.log_dir,
        name: "core",
        ...(options.color !== undefined ? { color: options.color } : {}),
      });
    } catch (error) {
      throw new ConfigError(
        "CONFIG_INVALID",
        `general.log_dir: cannot write logs to ${options.logDir ?? resolved.general.log_dir}: ${(error as Error).message}`,
        { file: resolved.file, key: "general.log_dir" },
        { cause: error },
      );
    }
    this.#logger = this.#logging.logger;
    for (const warning of warnings) this.#logger.warn(formatWarning(warning));

    const idPrefix = `${randomBytes(3).toString("hex")}-`;
    this.#metrics = resolved.general.metrics ? new CallMetrics() : undefined;
    this.#dispatcher = new Dispatcher({
      registry: this.#registry,
      hostname: this.hostname,
      idPrefix,
      closing: () => this.#closing !== undefined,
      metrics: this.#metrics,
    });
    this.#topics = new Topics({
      registry: this.#registry,
      dispatcher: this.#dispatcher,
      hostname: this.hostname,
      logger: this.#logger,
      idPrefix: `${idPrefix}t`,
      changed: () => this.#network?.bumpVersion(),
    });
    this.#lifecycle = new Lifecycle({
      registry: this.#registry,
      logger: this.#logger,
      hookTimeoutMs: resolved.general.lifecycle_timeout * 1000,
      drainTimeoutMs: resolved.general.drain_timeout * 1000,
      createHost: (slot, manifest, uuid) => this.#createHost(slot, manifest, uuid),
      retired: (uuid) => this.#topics.endSubscriptionsOf(uuid),
      entryFile: findEntryFile,
      emit: (event, ...args) => {
        this.#topics.invalidate();
        this.#network?.bumpVersion();
        this.#followFiles(event, args[0].name);
        this.emit(event, ...(args as never));
      },
    });
    // Checked now, so an unsafe bind fails at construction like any other config error.
    if (resolved.networking.enabled) bindAddress(resolved.networking, resolved.file);
  }

  async #startNetwork(): Promise<void> {
    const { NetworkManager } = await import("../net/manager.js");
    const config = this.#config;
    const dispatcher = this.#dispatcher;
    const topics = this.#topics;
    if (config.networking.mcp) {
      const { startMcp } = await import("./mcp.js");
      this.#mcp = await startMcp(
        {
          hostname: this.hostname,
          dispatcher,
          topics,
          plugins: () => this.listPlugins(),
          nodes: () => this.nodes(),
        },
        config.networking,
      );
    }
    this.#network = new NetworkManager(
      {
        config: config.networking,
        hostname: this.hostname,
        logger: this.#logger,
        calls: {
          execute: dispatcher.execute.bind(dispatcher),
          executeStream: dispatcher.executeStream.bind(dispatcher),
          notify: (caller, topic, args) => topics.deliver(caller, topic, args),
          requestTopic: topics.requestTopic.bind(topics),
          requestTopicStream: topics.requestTopicStream.bind(topics),
        },
        localEndpoints: (requester) => this.#remoteEndpoints(requester),
        topicPatterns: () => topics.remotePatterns(),
        hasPlugin: (name, method, uuid) => this.#hasPlugin(name, method, uuid),
        admin: {
          plugins: () => this.listPlugins(),
          nodes: () => this.nodes(),
          endpoints: (name) => this.getPluginEndpoints(name),
          tagged: (tag) => this.#topics.findEndpointsByTag(APPLICATION, tag),
          subscriptions: () => this.#topics.subscriptions(),
          openapi: () => this.openApiDocument(),
          metrics: () => this.metrics(),
          log: () => this.tailLog(),
          watch: (pattern) => this.#topics.watch(pattern),
          act: (action, plugin) => this.#act(action, plugin),
        },
        mcp: this.#mcp,
        emit: (event, node) => this.emit(event, node),
      },
      config.file,
    );
    this.#dispatcher.remote = this.#network.router;
    this.#topics.remote = this.#network.topics;
    await this.#network.start();
  }

  /**
   * Hot reload: a plugin whose `watch` is on (its entry, else its manifest, else
   * `general.watch`) is reloaded when its files change, and retried when it failed.
   */
  #followFiles(event: keyof LifecycleEvents, name: string): void {
    const slot = this.#registry.get(name);
    if (!slot || this.#closing) return;
    if (event === "plugin:unloaded") {
      void this.#watcher.unwatch(name);
      return;
    }
    if (event !== "plugin:loaded" && event !== "plugin:failed") return;
    if (!this.#watches(slot, slot.host?.manifest)) return;
    void this.#watcher.watch(name, slot.entry.path, () => {
      this.#logger.info(`${name} changed; reloading`);
      this.reloadPlugin(name).catch((error: unknown) => {
        this.#logger.error(`reload of ${name} failed: ${(error as Error).message}`);
      });
    });
  }

  /**
   * An operator's action sent to the node over the network (`aio console --node`). It names
   * only plugins this node knows (from its config or an earlier load): the network can never
   * point the node at a folder to load code from.
   */
  #act(action: AdminAction, plugin: string | undefined): Promise<void> {
    const name = plugin ?? "";
    const known = this.#registry.has(name) || this.#config.plugins.some((p) => p.name === name);
    if (action !== "purge" && !known) {
      return Promise.reject(callErrors.pluginNotFound({ plugin: name, method: action }));
    }
    return runAdminAction(this, action, name);
  }

  /** The port this node listens on while networking runs. */
  get port(): number | undefined {
    return this.#network?.port || undefined;
  }

  /**
   * Endpoints of enabled plugins as the node `requester` sees them: those it may call, and the
   * others with the reason it may not (see access.ts).
   */
  #remoteEndpoints(requester: string): {
    open: WireEndpoint[];
    closed: WireRefusal[];
    topics: string[];
  } {
    const open: WireEndpoint[] = [];
    const closed: WireRefusal[] = [];
    const caller: Caller = { kind: "remote", hostname: requester };
    for (const slot of this.#registry.slots()) {
      if (slot.state !== "enabled") continue;
      for (const endpoint of slot.endpoints.values()) {
        const why = refusal(caller, slot, endpoint, this.hostname);
        if (why !== undefined) {
          closed.push({ plugin: slot.name, access_name: endpoint.info.access_name, reason: why });
          continue;
        }
        const info = endpoint.info;
        const wire: WireEndpoint = {
          plugin: slot.name,
          plugin_uuid: slot.uuid,
          access_name: info.access_name,
          kind: info.kind,
          description: info.description,
          tags: info.tags,
          accessible_by_other_plugins: info.accessible_by_other_plugins,
          arguments: info.arguments,
        };
        if (info.topic !== undefined) wire.topic = info.topic;
        if (info.returns !== undefined) wire.returns = info.returns;
        open.push(wire);
      }
    }
    return { open, closed, topics: this.#topics.patternsOpenTo(requester) };
  }

  #hasPlugin(name: string, method: string | undefined, uuid: string | undefined): HasPluginAnswer {
    const slot = this.#registry.get(name);
    const endpoint = method === undefined ? undefined : slot?.endpoints.get(method);
    const usable =
      slot !== undefined &&
      slot.state === "enabled" &&
      (uuid === undefined || slot.uuid === uuid) &&
      (method === undefined || endpoint !== undefined);
    return {
      available: usable,
      remote: usable && openToNodes(slot, endpoint),
      hostname: this.hostname,
      plugin_uuid: usable ? slot.uuid : "",
    };
  }

  /** The config this core runs with, defaults applied and paths absolute. */
  get config(): Readonly<AioConfig> {
    return this.#config;
  }

  /** The log file this core writes, if any. */
  get logFile(): string | undefined {
    return this.#logging.file;
  }

  /**
   * Where a plugin runs. A watched plugin runs in a worker unless told otherwise: an ES module
   * can never be unloaded, so each in-process reload would keep the old code in memory, while
   * a worker's memory is freed with it.
   */
  #isolationOf(slot: PluginSlot, manifest: PluginManifest): Isolation {
    const isolation = slot.entry.isolation ?? manifest.isolation;
    if (isolation) return isolation;
    return this.#watches(slot, manifest) ? "worker" : "none";
  }

  #watches(slot: PluginSlot, manifest: PluginManifest | undefined): boolean {
    return slot.entry.watch ?? manifest?.watch ?? this.#config.general.watch;
  }

  #createHost(slot: PluginSlot, manifest: PluginManifest, uuid: string): PluginHost {
    if (this.#isolationOf(slot, manifest) === "worker") {
      return new WorkerHost({
        entry: slot.entry,
        manifest,
        // Calls a worker plugin makes are served here, as that plugin's.
        context: this.#contextFor(slot, manifest, uuid, () => undefined),
        moduleVersion: slot.moduleVersion,
        logLevel: this.#logger.level,
        restarted: () => this.#metrics?.workerRestarted(slot.name),
      });
    }
    let host: InProcessHost | undefined;
    const context = this.#contextFor(slot, manifest, uuid, () => host?.currentCall);
    host = new InProcessHost(slot.entry, manifest, context, slot.moduleVersion);
    return host;
  }

  #contextFor(
    slot: PluginSlot,
    manifest: PluginManifest,
    uuid: string,
    currentCall: () => CallInfo | undefined,
  ): PluginContext {
    const caller: Caller = { kind: "plugin", name: slot.name };
    const dispatcher = this.#dispatcher;
    const topics = this.#topics;
    // A call made while serving one that blocked other threads carries their chain along,
    // so a cycle of blocking calls is refused instead of hanging.
    const inherit = (options: ExecuteOptions | undefined): CallOptions | undefined => {
      const chain = (currentCall() as { chain?: string[] } | undefined)?.chain;
      return chain && !(options as CallOptions | undefined)?.chain
        ? { ...options, chain }
        : options;
    };
    const current = () => slot.uuid === uuid;
    return {
      name: slot.name,
      uuid,
      logger: this.#logging.forPlugin(slot.name),
      version: manifest.version,
      description: manifest.description,
      remote: manifest.remote,
      arguments: slot.entry.arguments !== undefined ? slot.entry.arguments : manifest.arguments,
      state: () => (current() ? slot.state : "unloaded"),
      endpoints: () => (current() ? [...slot.endpoints.values()].map((e) => e.info) : []),
      currentCall,
      execute: (plugin, method, args, options) =>
        dispatcher.execute(caller, plugin, method, args, inherit(options)),
      executeSync: (plugin, method, args, options) =>
        dispatcher.executeSync(caller, plugin, method, args, inherit(options)),
      executeStream: (plugin, method, args, options) =>
        dispatcher.executeStream(caller, plugin, method, args, inherit(options)),
      executeStreamSync: (plugin, method, args, options) =>
        dispatcher.executeStreamSync(caller, plugin, method, args, inherit(options)),
      notify: (topic, args, options) => topics.notify(caller, topic, args, options),
      notifySync: (topic, args, options) => topics.notifySync(caller, topic, args, options),
      requestTopic: (topic, args, options) =>
        topics.requestTopic(caller, topic, args, inherit(options)),
      requestTopicStream: (topic, args, options) =>
        topics.requestTopicStream(caller, topic, args, inherit(options)),
      requestTopicSync: (topic, args, options) =>
        topics.requestTopicSync(caller, topic, args, inherit(options)),
      requestTopicStreamSync: (topic, args, options) =>
        topics.requestTopicStreamSync(caller, topic, args, inherit(options)),
      subscribe: (pattern, handler) =>
        topics.subscribe(pattern, handler, { name: slot.name, uuid }),
      findEndpointsByTag: async (tag) => topics.findEndpointsByTag(caller, tag),
    };
  }

  // ---------------------------------------------------------------- lifecycle

  /** Loads and enables the configured plugins. Calling it again returns the same promise. */
  start(): Promise<void> {
    if (this.#closing)
      return Promise.reject(callErrors.closed({ plugin: "PluginCore", method: "start" }));
    this.#starting ??= this.#start();
    return this.#starting;
  }

  /** Starts the core if needed and resolves when it is ready; safe to call many times. */
  waitUntilReady(): Promise<void> {
    return this.start();
  }

  async #start(): Promise<void> {
    const started = performance.now();
    const configured = this.#config.plugins.filter((entry) => entry.enabled);
    // Calls between plugins wait for a plugin that is still starting instead of failing,
    // so onEnable may call any plugin regardless of the order they are listed in.
    const releases = new Map<string, () => void>();
    for (const entry of configured) {
      const slot = this.#slotFor(entry);
      if (!slot) continue;
      slot.gate = new Promise<void>((release) => releases.set(slot.name, release));
    }
    const release = (slot: PluginSlot) => {
      slot.gate = undefined;
      releases.get(slot.name)?.();
    };
    const networking = this.#config.networking.enabled ? this.#startNetwork() : undefined;
    // Awaited below; handled now so a failure while plugins load is not an unhandled rejection.
    networking?.catch(() => undefined);
    await this.getPlugins();
    await Promise.all(
      this.#registry.slots().map(async (slot) => {
        if (!releases.has(slot.name)) return;
        try {
          if (slot.state === "loaded") await this.#lifecycle.enable(slot);
        } catch {
          // Recorded as the plugin's failure; the others start regardless.
        } finally {
          release(slot);
        }
      }),
    );
    await networking;
    await this.#watcher.ready();
    const plugins = this.#registry.list();
    const enabled = plugins.filter((p) => p.state === "enabled").length;
    const failed = plugins.filter((p) => p.state === "failed").length;
    this.#logger.info(
      `Ready in ${Math.round(performance.now() - started)} ms: ${enabled} plugin(s) enabled${failed ? `, ${failed} failed` : ""}`,
    );
  }

  /** Registers a config entry, refusing a second plugin with a name already taken. */
  #slotFor(entry: PluginEntry): PluginSlot | undefined {
    const existing = this.#registry.get(entry.name);
    if (existing) {
      if (existing.entry === entry || this.#refusedEntries.has(entry)) {
        return existing.entry === entry ? existing : undefined;
      }
      this.#refusedEntries.add(entry);
      const message = `Plugin "${entry.name}": duplicate plugin name in ${this.#config.file ?? "the config"}; this entry (path ${entry.path}) is ignored, the first one (path ${existing.entry.path}) is used`;
      this.#logger.error(message);
      const error = new ConfigError("CONFIG_INVALID", message, {
        file: this.#config.file,
        key: "plugins",
      });
      this.#registry.refuse({
        name: entry.name,
        version: "",
        uuid: "",
        state: "failed",
        remote: false,
        description: "",
        path: entry.path,
        isolation: entry.isolation ?? "none",
        error: message,
        errorCode: error.code,
      });
      return undefined;
    }
    const slot = new PluginSlot(entry);
    this.#registry.add(slot);
    return slot;
  }

  /** Loads the plugins the config enables; a plugin that fails is reported and skipped. */
  async getPlugins(): Promise<void> {
    const toLoad: PluginSlot[] = [];
    for (const entry of this.#config.plugins) {
      const slot = this.#slotFor(entry);
      if (slot && entry.enabled && slot.state === "unloaded") toLoad.push(slot);
    }
    await Promise.all(
      toLoad.map((slot) =>
        this.#lifecycle.load(slot).catch(() => {
          // Recorded on the slot and logged; one plugin's failure does not stop the rest.
          slot.gate = undefined;
        }),
      ),
    );
  }

  /** Enables every loaded plugin. */
  async startPlugins(): Promise<void> {
    await Promise.all(
      this.#registry
        .slots()
        .filter((slot) => slot.state === "loaded" || slot.state === "disabled")
        .map((slot) => this.#lifecycle.enable(slot).catch(() => undefined)),
    );
  }

  #slot(name: string, action: string): PluginSlot {
    const slot = this.#registry.get(name);
    if (!slot) throw callErrors.pluginNotFound({ plugin: name, method: action });
    return slot;
  }

  /**
   * Loads one plugin, from its config.yml entry merged with `entry`, or from `entry` alone.
   * A plugin already loaded is unloaded first. Throws the reason if it fails.
   */
  async loadPlugin(name: string, entry: Partial<PluginEntry> = {}): Promise<void> {
    if (/[\\/]|\.\./.test(name)) {
      throw new ConfigError(
        "CONFIG_INVALID",
        `loadPlugin: "${name}" is not a plugin name (a plugin is named like its class; give a folder as entry.path)`,
        { key: "name" },
      );
    }
    const existing = this.#registry.get(name);
    const base = existing?.entry ?? this.#config.plugins.find((p) => p.name === name);
    const baseDir = this.#config.baseDir;
    const merged: PluginEntry = {
      name,
      enabled: true,
      allowed_nodes: [],
      ...base,
      ...entry,
      path:
        entry.path !== undefined
          ? isAbsolute(entry.path)
            ? entry.path
            : resolve(baseDir, entry.path)
          : (base?.path ?? resolve(this.#config.general.plugin_package, name)),
    };
    const slot = existing ?? new PluginSlot(merged);
    if (!existing) this.#registry.add(slot);
    if (slot.state !== "unloaded") await this.#lifecycle.unload(slot);
    slot.entry = merged;
    await this.#lifecycle.load(slot);
  }

  async enablePlugin(name: string): Promise<void> {
    await this.#lifecycle.enable(this.#slot(name, "enablePlugin"));
  }

  async disablePlugin(name: string): Promise<void> {
    await this.#lifecycle.disable(this.#slot(name, "disablePlugin"));
  }

  /** Loads the plugin's code afresh and swaps it in; calls wait briefly, none is lost. */
  reloadPlugin(name: string): Promise<void> {
    const slot = this.#slot(name, "reloadPlugin");
    // One reload at a time per plugin: a save during a reload reloads again afterwards.
    const previous = this.#reloads.get(name) ?? Promise.resolve();
    const next = previous
      .catch(() => undefined)
      .then(() => this.#lifecycle.reload(slot, slot.entry.enabled))
      .then(() => this.#metrics?.reloaded(name));
    this.#reloads.set(name, next);
    return next;
  }

  /**
   * Removes one plugin, as the seed's `pop_plugin` does: calls in flight get the drain time,
   * then fail with `UNLOADED`, and the core forgets it (`loadPlugin(name)` brings it back).
   */
  async popPlugin(name: string): Promise<void> {
    await this.#remove(this.#slot(name, "popPlugin"));
  }

  async purgePlugins(): Promise<void> {
    await Promise.all(this.#registry.slots().map((slot) => this.#remove(slot)));
  }

  async purgePluginsExcept(names: string[]): Promise<void> {
    const keep = new Set(names);
    await Promise.all(
      this.#registry
        .slots()
        .filter((slot) => !keep.has(slot.name))
        .map((slot) => this.#remove(slot)),
    );
  }

  async #remove(slot: PluginSlot): Promise<void> {
    await this.#lifecycle.unload(slot);
    // A loadPlugin that ran meanwhile has made the slot live again: it stays.
    if (slot.state === "unloaded") this.#registry.remove(slot);
  }

  /** Unloads every plugin (calls in flight get the drain time), then flushes the log. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    // Before anything awaits: no call from another node may start after close() began.
    this.#network?.leave();
    await this.#starting?.catch(() => undefined);
    await this.#watcher.close();
    // Unloaded but still listed: what the core ran stays visible after it closed.
    await Promise.all(this.#registry.slots().map((slot) => this.#lifecycle.unload(slot)));
    await this.#mcp?.close();
    await this.#network?.close();
    this.#logger.info("Closed");
    await this.#logging.close();
  }

  // ---------------------------------------------------------------- queries

  listPlugins(): PluginInfo[] {
    return this.#registry.list();
  }

  getPluginInfo(name: string): PluginInfo | undefined {
    return this.#registry.get(name)?.info();
  }

  /** The endpoints of a loaded plugin; `undefined` for a name this node does not know. */
  getPluginEndpoints(name: string): EndpointInfo[] | undefined {
    const slot = this.#registry.get(name);
    if (!slot) return undefined;
    return [...slot.endpoints.values()].map((endpoint) => ({ ...endpoint.info }));
  }

  /** Known remote nodes; empty while networking is off. */
  nodes(): NodeInfo[] {
    return this.#network?.nodeList() ?? [];
  }

  // ---------------------------------------------------------------- calls

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
    return this.#dispatcher.execute(
      this.#dispatcher.callerFor(options),
      plugin,
      method,
      args,
      options,
    );
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
    return this.#dispatcher.executeSync(
      this.#dispatcher.callerFor(options),
      plugin,
      method,
      args,
      options,
    );
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
    return this.#dispatcher.executeStream(
      this.#dispatcher.callerFor(options),
      plugin,
      method,
      args,
      options,
    );
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
    return this.#dispatcher.executeStreamSync(
      this.#dispatcher.callerFor(options),
      plugin,
      method,
      args,
      options,
    );
  }

  // ---------------------------------------------------------------- topics and tags

  /**
   * Publishes to every subscriber of `topic` that the application may reach, on this node and
   * (as `options.host` allows) the others. Resolves to how many subscribers took it; what a
   * subscriber does with it, errors included, stays there.
   */
  notify(topic: string, args?: unknown, options?: TopicOptions): Promise<number> {
    try {
      return this.#topics.notify(this.#dispatcher.callerFor(undefined), topic, args, options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** `notify` without waiting: counts this node's subscribers; other nodes are told in the background. */
  notifySync(topic: string, args?: unknown, options?: TopicOptions): number {
    return this.#topics.notifySync(this.#dispatcher.callerFor(undefined), topic, args, options);
  }

  /** One subscriber of `topic` answers, chosen as `execute` chooses a node (this one first under "any"). */
  requestTopic<T = unknown>(topic: string, args?: unknown, options?: ExecuteOptions): Promise<T> {
    return this.#topics.requestTopic(
      this.#dispatcher.callerFor(options),
      topic,
      args,
      options,
    ) as Promise<T>;
  }

  requestTopicStream<T = unknown>(
    topic: string,
    args?: unknown,
    options?: ExecuteOptions,
  ): AsyncGenerator<T, void, undefined> {
    return this.#topics.requestTopicStream(
      this.#dispatcher.callerFor(options),
      topic,
      args,
      options,
    ) as AsyncGenerator<T, void, undefined>;
  }

  /** `requestTopic` that blocks this thread; this node's handlers only (see docs/api.md). */
  requestTopicSync<T = unknown>(topic: string, args?: unknown, options?: ExecuteOptions): T {
    return this.#topics.requestTopicSync(
      this.#dispatcher.callerFor(options),
      topic,
      args,
      options,
    ) as T;
  }

  requestTopicStreamSync<T = unknown>(
    topic: string,
    args?: unknown,
    options?: ExecuteOptions,
  ): Generator<T, void, undefined> {
    return this.#topics.requestTopicStreamSync(
      this.#dispatcher.callerFor(options),
      topic,
      args,
      options,
    ) as Generator<T, void, undefined>;
  }

  /**
   * Calls `handler` with what is published to topics matching `pattern`, from this node and
   * every other, until `unsubscribe()` or `close()`.
   */
  subscribe(pattern: string, handler: TopicHandler): Subscription {
    return this.#topics.subscribe(pattern, handler);
  }

  /** Who subscribes to what: this node's subscriptions, and those other nodes offer it. */
  listSubscriptions(): SubscriptionInfo[] {
    return this.#topics.subscriptions();
  }

  /**
   * Endpoints carrying `tag` that the application may call, on this node and every alive node;
   * without a tag, every endpoint it may call.
   */
  async findEndpointsByTag(tag?: string): Promise<TaggedEndpoint[]> {
    return this.#topics.findEndpointsByTag(this.#dispatcher.callerFor(undefined), tag);
  }

  /**
   * What `GET /metrics` serves: the Prometheus text and its content type (`aio dashboard`
   * draws its charts from it). With `general.metrics: false`, the process metrics only.
   */
  async metrics(): Promise<{ contentType: string; text: string }> {
    // Loaded on the first scrape: a node nobody scrapes never loads prom-client.
    const { MetricsExporter: Exporter } = await import("../net/metrics.js");
    this.#exporter ??= new Exporter({
      calls: this.#metrics,
      nodes: () => this.nodes(),
      plugins: () => this.listPlugins(),
    });
    return { contentType: this.#exporter.contentType, text: await this.#exporter.text() };
  }

  /**
   * The log as it is written: the last 200 lines of INFO and above, then each new one, until
   * the consumer stops (`break`, or `return()`). A consumer that falls 1,000 lines behind loses
   * the oldest. Whatever the console level, INFO and above are here.
   */
  tailLog(): AsyncGenerator<LogLine, void, undefined> {
    return this.#logging.tail.lines();
  }

  /**
   * This node's HTTP interface as OpenAPI 3.1: `POST /execute` and `POST /execute_stream` for
   * each endpoint other nodes may call (the plugin and the endpoint `remote: true`), with
   * `args` described from the manifests. `GET /openapi.json` serves it; `aio openapi` prints it.
   */
  openApiDocument(): Record<string, unknown> {
    const endpoints: TaggedEndpoint[] = [];
    for (const slot of this.#registry.slots()) {
      if (slot.state !== "enabled") continue;
      for (const endpoint of slot.endpoints.values()) {
        if (!openToNodes(slot, endpoint)) continue;
        endpoints.push({
          hostname: this.hostname,
          plugin: slot.name,
          pluginUuid: slot.uuid,
          endpoint: endpoint.info,
        });
      }
    }
    return openApiDocument({
      hostname: this.hostname,
      version: packageVersion(),
      endpoints,
      secured: this.#config.networking.secret !== "",
    });
  }
}
