/**
 * What a command works on: a core started in this process from a config (`--config`, the
 * default), or a node already running elsewhere (`--node URL`). Both answer the same questions
 * and take the same actions, so every command and the console work with either.
 */

import { resolve } from "node:path";
import type { LogLevelName } from "../config/types.js";
import type { EndpointInfo } from "../core/endpoint.js";
import { messagesOf } from "../core/topics.js";
import type {
  NodeInfo,
  PluginInfo,
  SubscriptionInfo,
  TaggedEndpoint,
  TopicMessage,
} from "../core/types.js";
import { CliError, UsageError } from "../errors.js";
import type { LogLine } from "../log.js";
import { bindAddress, hostForUrl } from "../net/address.js";
import type { AdminAction } from "../net/server.js";
import { runAdminAction } from "../node/admin.js";
import type { PluginCore } from "../node/plugin-core.js";
import { NodeClient, nodeUrl } from "./node-client.js";
import { colorsFor, describeError, EXIT, note, Progress } from "./output.js";
import { BUNDLED_EXAMPLE_CONFIG, chooseConfig } from "./paths.js";

export interface TargetCallOptions {
  host?: string | undefined;
  timeout?: number | undefined;
  signal?: AbortSignal | undefined;
}

/** On the channel, a moment for mDNS answers and the nodes the first ones tell of. */
const CHANNEL_DISCOVERY_MS = 1500;

export interface Target {
  /** Where commands go, for people: `node http://…` or `config /path/config.yml`. */
  readonly where: string;
  readonly kind: "local" | "node";
  hostname(): Promise<string>;
  plugins(): Promise<PluginInfo[]>;
  nodes(): Promise<NodeInfo[]>;
  /** Throws PLUGIN_NOT_FOUND for a plugin the node does not know. */
  endpoints(plugin: string): Promise<EndpointInfo[]>;
  /** Endpoints with `tag` (every one without) of the node and the nodes it knows. */
  tagged(tag: string | undefined): Promise<TaggedEndpoint[]>;
  /** The node's HTTP interface as OpenAPI 3.1. */
  openapi(): Promise<Record<string, unknown>>;
  /** Who subscribes to what, on the node and the nodes it knows. */
  subscriptions(): Promise<SubscriptionInfo[]>;
  /** Every publish to `pattern` the node hears, until the consumer stops or `signal` aborts. */
  watch(pattern: string, signal: AbortSignal): AsyncGenerator<TopicMessage, void, undefined>;
  /** The node's log: its recent lines, then each new one, until `signal` aborts. */
  log(signal: AbortSignal): AsyncGenerator<LogLine, void, undefined>;
  /** The Prometheus text the node serves at `GET /metrics`. */
  metrics(): Promise<string>;
  /**
   * Another node's plugins, asked of that node (signed as every command is); undefined where
   * this side cannot ask it (it is down, reached over NATS, or the target is a running node).
   */
  peerPlugins(node: NodeInfo): Promise<PluginInfo[] | undefined>;
  /** Publishes; resolves to how many subscribers took it. */
  notify(topic: string, args: unknown, options: TargetCallOptions): Promise<number>;
  /** `path` (load only) is a plugin folder; in-process only. */
  act(action: AdminAction, plugin?: string, path?: string): Promise<void>;
  execute(
    plugin: string,
    method: string,
    args: unknown,
    options: TargetCallOptions,
  ): Promise<unknown>;
  stream(
    plugin: string,
    method: string,
    args: unknown,
    options: TargetCallOptions,
  ): AsyncGenerator<unknown, void, undefined>;
  /** The address the node listens on, when known. */
  address(): string | undefined;
  /**
   * In-process, how long discovery takes to find the nodes there are once the core started: 0
   * without networking, and over NATS, whose start already asked who is there.
   */
  discoveryMs(): number;
  close(): Promise<void>;
}

export interface TargetOptions {
  config?: string | undefined;
  node?: string | undefined;
  logLevel?: LogLevelName | undefined;
}

// ------------------------------------------------------------------------------ in-process

/**
 * Starts `core`, showing on a terminal how many plugins are loaded and enabled so far.
 * Resolves when `start()` does; rejects with its error.
 */
export async function startWithProgress(core: PluginCore): Promise<void> {
  const progress = new Progress();
  const total = core.config.plugins.filter((entry) => entry.enabled).length;
  let loaded = 0;
  let enabled = 0;
  let failed = 0;
  const show = () =>
    progress.update(
      `Starting "${core.hostname}": ${loaded}/${total} plugins loaded, ${enabled} enabled${failed ? `, ${failed} failed` : ""}…`,
    );
  const onLoaded = () => {
    loaded++;
    show();
  };
  const onEnabled = () => {
    enabled++;
    show();
  };
  const onFailed = () => {
    failed++;
    show();
  };
  core.on("plugin:loaded", onLoaded);
  core.on("plugin:enabled", onEnabled);
  core.on("plugin:failed", onFailed);
  show();
  try {
    await core.start();
  } finally {
    core.off("plugin:loaded", onLoaded);
    core.off("plugin:enabled", onEnabled);
    core.off("plugin:failed", onFailed);
    progress.clear();
  }
}

/** Why `start()` failed, with the way out when the port is taken. */
export function startFailure(error: unknown, core: PluginCore): CliError {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown }).code;
  if (code === "EADDRINUSE" || message.includes("EADDRINUSE")) {
    const port = core.config.networking.port;
    return new CliError(
      "NETWORK",
      `port ${port} is in use (${message}). Is a node already running with this config? Use --node http://127.0.0.1:${port} to talk to it, or change networking.port.`,
    );
  }
  return new CliError(typeof code === "string" ? code : "START_FAILED", `start failed: ${message}`);
}

/**
 * Constructs a core for `file` (console log level: `logLevel`, else the config's), a
 * ConfigError becoming a CONFIG_INVALID failure.
 */
export async function createCore(
  file: string,
  logLevel: LogLevelName | undefined,
): Promise<PluginCore> {
  // Loaded only when a core runs here: commands that talk to a node start faster without it.
  const { PluginCore } = await import("../node/plugin-core.js");
  try {
    return new PluginCore(file, {
      ...(logLevel !== undefined ? { logLevel } : {}),
      // The bundled example may sit in an installed package: its logs go where a user's
      // config would put them, ./logs, never into the package.
      ...(resolve(file) === BUNDLED_EXAMPLE_CONFIG ? { logDir: resolve("logs") } : {}),
      color: colorsFor(process.stderr),
    });
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    throw new CliError(
      typeof code === "string" ? code : "CONFIG_INVALID",
      (error as Error).message ?? String(error),
    );
  }
}

class LocalTarget implements Target {
  readonly kind = "local";
  readonly where: string;
  readonly #core: PluginCore;
  /** Clients of the other nodes, by address, made when first asked. */
  readonly #peers = new Map<string, NodeClient>();

  constructor(core: PluginCore, file: string) {
    this.#core = core;
    this.where = `config ${file}`;
  }

  async hostname(): Promise<string> {
    return this.#core.hostname;
  }

  async plugins(): Promise<PluginInfo[]> {
    return this.#core.listPlugins();
  }

  async nodes(): Promise<NodeInfo[]> {
    return this.#core.nodes();
  }

  async endpoints(plugin: string): Promise<EndpointInfo[]> {
    const endpoints = this.#core.getPluginEndpoints(plugin);
    if (!endpoints) throw new CliError("PLUGIN_NOT_FOUND", `No plugin named "${plugin}"`);
    return endpoints;
  }

  async act(action: AdminAction, plugin = "", path?: string): Promise<void> {
    return runAdminAction(this.#core, action, plugin, path);
  }

  tagged(tag: string | undefined): Promise<TaggedEndpoint[]> {
    return this.#core.findEndpointsByTag(tag);
  }

  async subscriptions(): Promise<SubscriptionInfo[]> {
    return this.#core.listSubscriptions();
  }

  async openapi(): Promise<Record<string, unknown>> {
    return this.#core.openApiDocument();
  }

  watch(pattern: string, signal: AbortSignal): AsyncGenerator<TopicMessage, void, undefined> {
    return untilAborted(
      messagesOf(
        (handler) => this.#core.subscribe(pattern, handler),
        (dropped) =>
          note(`${dropped} message(s) of "${pattern}" dropped: this console fell behind`),
      ),
      signal,
    );
  }

  log(signal: AbortSignal): AsyncGenerator<LogLine, void, undefined> {
    return untilAborted(this.#core.tailLog(), signal);
  }

  async metrics(): Promise<string> {
    return (await this.#core.metrics()).text;
  }

  async peerPlugins(node: NodeInfo): Promise<PluginInfo[] | undefined> {
    const net = this.#core.config.networking;
    if (!node.alive || node.transport !== "channel" || this.#core.port === undefined) {
      return undefined;
    }
    let client = this.#peers.get(node.address);
    if (!client) {
      const at = node.address.lastIndexOf(":");
      const scheme = net.cert_file && net.key_file ? "https" : "http";
      const host = hostForUrl(node.address.slice(0, at));
      client = new NodeClient(
        new URL(`${scheme}://${host}:${node.address.slice(at + 1)}`),
        net.secret,
      );
      this.#peers.set(node.address, client);
    }
    try {
      return (await client.plugins()).plugins;
    } catch {
      return undefined;
    }
  }

  notify(topic: string, args: unknown, options: TargetCallOptions): Promise<number> {
    return this.#core.notify(topic, args, executeOptions(options));
  }

  execute(plugin: string, method: string, args: unknown, options: TargetCallOptions) {
    return this.#core.execute(plugin, method, args, executeOptions(options));
  }

  stream(plugin: string, method: string, args: unknown, options: TargetCallOptions) {
    return this.#core.executeStream(plugin, method, args, executeOptions(options));
  }

  address(): string | undefined {
    return listenAddress(this.#core);
  }

  discoveryMs(): number {
    const net = this.#core.config.networking;
    return net.enabled && net.transport !== "nats" ? CHANNEL_DISCOVERY_MS : 0;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#peers.values()].map((client) => client.close()));
    await this.#core.close();
  }
}

function executeOptions(options: TargetCallOptions) {
  return {
    ...(options.host !== undefined ? { host: options.host } : {}),
    ...(options.timeout !== undefined ? { timeout: options.timeout } : {}),
    ...(options.signal !== undefined ? { signal: options.signal } : {}),
  };
}

/** `http://127.0.0.1:2510` for a core whose networking runs; undefined otherwise. */
export function listenAddress(core: PluginCore): string | undefined {
  const port = core.port;
  if (port === undefined) return undefined;
  const net = core.config.networking;
  const scheme = net.cert_file && net.key_file ? "https" : "http";
  return `${scheme}://${hostForUrl(bindAddress(net))}:${port}`;
}

// ------------------------------------------------------------------------------ remote node

class RemoteTarget implements Target {
  readonly kind = "node";
  readonly where: string;
  readonly #client: NodeClient;
  #hostname: string | undefined;

  constructor(client: NodeClient) {
    this.#client = client;
    this.where = `node ${client.url.origin}`;
  }

  async hostname(): Promise<string> {
    this.#hostname ??= (await this.#client.plugins()).hostname;
    return this.#hostname;
  }

  async plugins(): Promise<PluginInfo[]> {
    const answer = await this.#client.plugins();
    this.#hostname = answer.hostname;
    return answer.plugins;
  }

  async nodes(): Promise<NodeInfo[]> {
    return (await this.#client.nodes()).nodes;
  }

  endpoints(plugin: string): Promise<EndpointInfo[]> {
    return this.#client.endpoints(plugin);
  }

  tagged(tag: string | undefined): Promise<TaggedEndpoint[]> {
    return this.#client.tagged(tag);
  }

  subscriptions(): Promise<SubscriptionInfo[]> {
    return this.#client.subscriptions();
  }

  openapi(): Promise<Record<string, unknown>> {
    return this.#client.openapi();
  }

  watch(pattern: string, signal: AbortSignal): AsyncGenerator<TopicMessage, void, undefined> {
    return this.#client.subscribe(pattern, { signal });
  }

  log(signal: AbortSignal): AsyncGenerator<LogLine, void, undefined> {
    return this.#client.log({ signal });
  }

  metrics(): Promise<string> {
    return this.#client.metrics();
  }

  async peerPlugins(): Promise<undefined> {
    return undefined;
  }

  async notify(topic: string, args: unknown, options: TargetCallOptions): Promise<number> {
    await this.#checkHost(options.host);
    return this.#client.notify(topic, args, options);
  }

  async act(action: AdminAction, plugin?: string, path?: string): Promise<void> {
    if (path !== undefined) {
      throw new CliError(
        "BAD_REQUEST",
        "a running node loads plugins from its own config; a path can be given only in-process (--config)",
      );
    }
    await this.#client.act(action, plugin);
  }

  /**
   * A call sent to a node runs on that node: `host` may be "any", "local" or the node's own
   * hostname, nothing else.
   */
  async #checkHost(host: string | undefined): Promise<void> {
    if (host === undefined || host === "any" || host === "local") return;
    const hostname = await this.hostname();
    if (host !== hostname) {
      throw new CliError(
        "NO_NODE",
        `--host ${host}: a call sent with --node runs on that node, which is "${hostname}"; use --config with networking to choose among nodes`,
      );
    }
  }

  async execute(plugin: string, method: string, args: unknown, options: TargetCallOptions) {
    await this.#checkHost(options.host);
    return this.#client.execute(plugin, method, args, options);
  }

  async *stream(plugin: string, method: string, args: unknown, options: TargetCallOptions) {
    await this.#checkHost(options.host);
    yield* this.#client.stream(plugin, method, args, options);
  }

  address(): string | undefined {
    return this.#client.url.origin;
  }

  discoveryMs(): number {
    return 0;
  }

  close(): Promise<void> {
    return this.#client.close();
  }
}

// ------------------------------------------------------------------------------ choosing

/**
 * The target the flags name: `--node URL` (signed with AIO_SECRET when set), else a core
 * started here from `--config F`, ./config.yml, or the bundled example.
 */
export async function openTarget(options: TargetOptions): Promise<Target> {
  if (options.node !== undefined && options.config !== undefined) {
    throw new UsageError("--node and --config are alternatives: give one");
  }
  if (options.node !== undefined) {
    return new RemoteTarget(new NodeClient(nodeUrl(options.node), process.env.AIO_SECRET ?? ""));
  }
  const { file, why, fallback } = chooseConfig(options.config);
  if (fallback) note(`aio: using ${file} (${why})`);
  const core = await createCore(file, options.logLevel ?? "WARNING");
  try {
    await startWithProgress(core);
  } catch (error) {
    await core.close().catch(() => undefined);
    throw startFailure(error, core);
  }
  return new LocalTarget(core, file);
}

/**
 * Opens the target, runs `work` on it and closes it. Returns `work`'s exit code (0 if none);
 * a failure is shown as `CODE: message` (exit 1); a usage error is thrown on, for exit 2.
 */
export async function withTarget(
  options: TargetOptions,
  work: (target: Target) => Promise<unknown>,
): Promise<number> {
  let target: Target | undefined;
  try {
    target = await openTarget(options);
    const code = await work(target);
    return typeof code === "number" ? code : EXIT.OK;
  } catch (error) {
    if (error instanceof UsageError) throw error;
    note(describeError(error));
    return EXIT.FAILED;
  } finally {
    await target?.close().catch(() => undefined);
  }
}

/** Ends `messages` when `signal` aborts, even while it waits for the next one. */
async function* untilAborted<T>(
  messages: AsyncGenerator<T, void, undefined>,
  signal: AbortSignal,
): AsyncGenerator<T, void, undefined> {
  const aborted = new Promise<IteratorResult<T, void>>((resolve) => {
    if (signal.aborted) resolve({ done: true, value: undefined });
    signal.addEventListener("abort", () => resolve({ done: true, value: undefined }), {
      once: true,
    });
  });
  try {
    for (;;) {
      const step = await Promise.race([messages.next(), aborted]);
      if (step.done) return;
      yield step.value;
    }
  } finally {
    await messages.return();
  }
}
