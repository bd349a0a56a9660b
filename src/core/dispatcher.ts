/**
 * What a call means: find the target, check who may call it and with what arguments, run it,
 * and track it until it ends. Where plugins live is the registry's business; how they run is
 * their host's.
 */
import { ArgumentProblem, type CallMode, callErrors, RequestError } from "../errors.js";
import { refusal } from "./access.js";
import {
  APPLICATION,
  Call,
  type Caller,
  type CallOptions,
  isPromiseLike,
  trackPromise,
  trackStream,
  waitWithin,
} from "./call.js";
import { isStreamKind, type LoadedEndpoint } from "./endpoint.js";
import { type CallMetrics, type EndpointStats, NOT_TIMED, SAMPLE_MASK } from "./metrics.js";
import type { PluginHost, RemoteRoutes } from "./ports.js";
import type { PluginRegistry, PluginSlot } from "./registry.js";

const STREAM_MODES: ReadonlySet<CallMode> = new Set(["executeStream", "executeStreamSync"]);

interface Target {
  slot: PluginSlot;
  endpoint: LoadedEndpoint;
  args: unknown[];
}

/** Local failures after which `host: "any"` tries the other nodes. */
const TRY_REMOTE: ReadonlySet<string> = new Set([
  "PLUGIN_NOT_FOUND",
  "PLUGIN_DISABLED",
  "ENDPOINT_NOT_FOUND",
  "ACCESS_DENIED",
]);

type Route = "local" | "any" | "remote";

/** What `#place` answers for a call that goes to another node. */
const REMOTE = Symbol("remote");

export interface DispatcherOptions {
  registry: PluginRegistry;
  hostname: string;
  /** Prefix of this core's request ids, unique per core. */
  idPrefix: string;
  /** Whether the core has begun closing: the application and other nodes can then start no new calls. */
  closing(): boolean;
  /** Where calls are counted; none with `general.metrics: false`. */
  metrics?: CallMetrics | undefined;
}

export class Dispatcher {
  readonly #registry: PluginRegistry;
  readonly #hostname: string;
  readonly #idPrefix: string;
  readonly #closing: () => boolean;
  readonly #metrics: CallMetrics | undefined;
  #seq = 0;
  /** Set while networking runs. */
  remote: RemoteRoutes | undefined;

  constructor(options: DispatcherOptions) {
    this.#registry = options.registry;
    this.#hostname = options.hostname;
    this.#idPrefix = options.idPrefix;
    this.#closing = options.closing;
    this.#metrics = options.metrics;
  }

  /** The caller a call made on the core stands for: a plugin named by `author`, or the application. */
  callerFor(options: CallOptions | undefined): Caller {
    const author = options?.author;
    return author !== undefined && this.#registry.has(author)
      ? { kind: "plugin", name: author }
      : APPLICATION;
  }

  #call(caller: Caller, plugin: string, method: string, options: CallOptions | undefined): Call {
    return new Call(this.#idPrefix, ++this.#seq, plugin, method, caller, options);
  }

  execute(
    caller: Caller,
    plugin: string,
    method: string,
    args: unknown,
    options: CallOptions | undefined,
  ): Promise<unknown> {
    const seq = ++this.#seq;
    const fast = this.#executeFast(seq, caller, plugin, method, args, options);
    if (fast !== undefined) return fast;
    const call = new Call(this.#idPrefix, seq, plugin, method, caller, options);
    try {
      return this.#execute(call, args);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * The common case, checked in as few steps as possible: a local function endpoint, enabled,
   * open to the caller, with valid arguments. Anything else, including every error, returns
   * undefined and takes the full path, which says precisely what is wrong.
   */
  #executeFast(
    seq: number,
    caller: Caller,
    plugin: string,
    method: string,
    args: unknown,
    options: CallOptions | undefined,
  ): Promise<unknown> | undefined {
    if (options !== undefined) {
      const host = options.host;
      if (host !== undefined && host !== "any" && host !== "local" && host !== this.#hostname)
        return undefined;
      // A signal matters only to a call that does not finish at once; #invoke tracks it.
      if (options.pluginUuid !== undefined || options.signal?.aborted === true) return undefined;
    }
    if (caller.kind !== "plugin" && this.#closing()) return undefined;
    const slot = this.#registry.get(plugin);
    if (slot === undefined || slot.state !== "enabled") return undefined;
    const endpoint = slot.endpoints.get(method);
    if (endpoint === undefined || isStreamKind(endpoint.info.kind)) return undefined;
    if (caller.kind !== "application" && this.#denied(caller, slot, endpoint) !== undefined)
      return undefined;
    let positional: unknown[];
    try {
      positional = endpoint.bind(args);
    } catch {
      return undefined;
    }
    const call = new Call(this.#idPrefix, seq, plugin, method, caller, options);
    return this.#invoke(slot, endpoint, positional, call);
  }

  /**
   * `execute` of an endpoint already found, and open to `caller` (a topic's handler): the
   * lookups by name are skipped. Anything but the common case takes `execute`'s full path.
   */
  executeAt(
    caller: Caller,
    slot: PluginSlot,
    endpoint: LoadedEndpoint,
    args: unknown,
    options: CallOptions,
  ): Promise<unknown> {
    const seq = ++this.#seq;
    if (
      slot.state === "enabled" &&
      !isStreamKind(endpoint.info.kind) &&
      options.pluginUuid === undefined &&
      options.signal?.aborted !== true &&
      (caller.kind === "plugin" || !this.#closing())
    ) {
      let positional: unknown[] | undefined;
      try {
        positional = endpoint.bind(args);
      } catch {
        positional = undefined;
      }
      if (positional !== undefined) {
        const call = new Call(
          this.#idPrefix,
          seq,
          slot.name,
          endpoint.info.access_name,
          caller,
          options,
        );
        return this.#invoke(slot, endpoint, positional, call);
      }
    }
    return this.execute(caller, slot.name, endpoint.info.access_name, args, options);
  }

  /** Runs a function endpoint and tracks it until it settles. */
  #invoke(
    slot: PluginSlot,
    endpoint: LoadedEndpoint,
    args: unknown[],
    call: Call,
  ): Promise<unknown> {
    let stats: EndpointStats | undefined;
    let started = NOT_TIMED;
    if (this.#metrics !== undefined) {
      stats = this.#statsOf(slot, endpoint, call.caller);
      if ((++stats.calls & SAMPLE_MASK) === 1) started = performance.now();
    }
    let result: unknown;
    try {
      result = (slot.host as PluginHost).invoke(endpoint, args, call);
    } catch (error) {
      const failure = callErrors.pluginThrew(call, error);
      stats?.ended(started, failure.code);
      return Promise.reject(failure);
    }
    if (!isPromiseLike(result)) {
      stats?.ended(started);
      return Promise.resolve(result);
    }
    return trackPromise(
      slot.inFlight,
      call,
      result,
      (error) => callErrors.pluginThrew(call, error),
      stats,
      started,
    );
  }

  /** The counts of `endpoint` served here to `caller`'s side (metrics are on). */
  #statsOf(slot: PluginSlot, endpoint: LoadedEndpoint, caller: Caller): EndpointStats {
    const metrics = this.#metrics as CallMetrics;
    const name = endpoint.info.access_name;
    if (caller.kind === "remote") {
      endpoint.servedRemote ??= metrics.of(slot.name, name, "served_remote");
      return endpoint.servedRemote;
    }
    endpoint.servedLocal ??= metrics.of(slot.name, name, "served_local");
    return endpoint.servedLocal;
  }

  /** The counts of a stream of `endpoint` served here, counted; undefined with metrics off. */
  #streamStats(
    slot: PluginSlot,
    endpoint: LoadedEndpoint,
    caller: Caller,
  ): EndpointStats | undefined {
    if (this.#metrics === undefined) return undefined;
    const stats = this.#statsOf(slot, endpoint, caller);
    stats.streams++;
    return stats;
  }

  /** A call to another node, counted and timed until it settles. */
  #made(call: Call, work: Promise<unknown>): Promise<unknown> {
    const metrics = this.#metrics;
    if (metrics === undefined) return work;
    const stats = metrics.of(call.plugin, call.method, "made");
    stats.calls++;
    const started = performance.now();
    return work.then(
      (value) => {
        stats.ended(started);
        return value;
      },
      (error: unknown) => {
        stats.ended(started, (error as { code?: string }).code ?? "NETWORK");
        throw error;
      },
    );
  }

  /** A stream from another node, counted (its items are counted where it is served). */
  #madeStream(call: Call): void {
    if (this.#metrics !== undefined) this.#metrics.of(call.plugin, call.method, "made").streams++;
  }

  /** Refuses a call that may not start at all, and says where it goes. */
  #begin(call: Call): Route {
    const refusal = this.#refused(call);
    if (refusal) throw refusal;
    return this.#route(call);
  }

  #refused(call: Call): RequestError | undefined {
    if (call.caller.kind !== "plugin" && this.#closing()) return callErrors.closed(call);
    const signal = call.callerSignal;
    if (signal?.aborted) return callErrors.aborted(call, signal.reason);
    return undefined;
  }

  #route(call: Call): Route {
    const host = call.host;
    if (host === undefined || host === "any") return "any";
    if (host === "local" || host === this.#hostname) return "local";
    return "remote";
  }

  #remoteRoutes(call: Call): RemoteRoutes {
    if (this.remote) return this.remote;
    throw callErrors.noNode(
      call,
      call.host === "remote"
        ? "networking is disabled in this node's config, so there is no remote node to run it"
        : `no node named "${call.host}" is known (networking is disabled in this node's config)`,
    );
  }

  /**
   * Where a call that has begun runs: the local target, the gate of a plugin still starting
   * (wait for it, then ask again), or `REMOTE` for another node. The async, stream and
   * synchronous forms all ask here, so a local failure sends each of them on by the same rule.
   */
  #place(
    call: Call,
    route: Route,
    args: unknown,
    mode: CallMode,
  ): Target | Promise<void> | typeof REMOTE {
    if (route === "remote") {
      this.#remoteRoutes(call);
      return REMOTE;
    }
    try {
      return this.#resolve(call, args, mode);
    } catch (error) {
      return this.#elsewhere(call, route, error);
    }
  }

  /**
   * Under `host: "any"`, what a local failure leads to: `REMOTE` when another node serves the
   * call, else the error to throw (another node may know a better one). Under `"local"`, the
   * error, saying which node has a plugin this one lacks.
   */
  #elsewhere(call: Call, route: Route, error: unknown): typeof REMOTE {
    const remote = this.remote;
    if (route === "local" && remote && error instanceof RequestError) {
      throw this.#whileClosing(call, remote.elsewhere(call, error));
    }
    if (route !== "any" || !remote || !(error instanceof RequestError)) {
      throw this.#whileClosing(call, error);
    }
    if (!TRY_REMOTE.has(error.code)) throw error;
    if (remote.canServe(call)) return REMOTE;
    throw this.#whileClosing(call, remote.explain(call, error));
  }

  /**
   * A plugin's call to a plugin that close() has already disabled or unloaded fails with
   * CLOSED, the cause, rather than PLUGIN_NOT_FOUND or PLUGIN_DISABLED: background work a
   * plugin started can tell the node closing from a real failure.
   */
  #whileClosing(call: Call, error: unknown): unknown {
    if (!this.#closing() || !(error instanceof RequestError)) return error;
    if (error.code !== "PLUGIN_NOT_FOUND" && error.code !== "PLUGIN_DISABLED") return error;
    const state = this.#registry.get(call.plugin)?.state;
    return state === "unloaded" || state === "disabled" ? callErrors.closed(call) : error;
  }

  /**
   * Whether a call goes straight to another node: `host: "any"` for a plugin this node has
   * never heard of, which some node serves. Saves building the local PLUGIN_NOT_FOUND error
   * that the full path would only throw away.
   */
  #onlyRemote(call: Call, route: Route): boolean {
    return (
      route === "any" &&
      this.remote !== undefined &&
      call.pluginUuid === undefined &&
      !this.#registry.has(call.plugin) &&
      this.remote.canServe(call)
    );
  }

  #execute(call: Call, args: unknown): Promise<unknown> {
    const route = this.#begin(call);
    if (this.#onlyRemote(call, route)) {
      return this.#made(call, (this.remote as RemoteRoutes).execute(call, args));
    }
    const target = this.#place(call, route, args, "execute");
    if (target === REMOTE) return this.#made(call, this.#remoteRoutes(call).execute(call, args));
    if (isPromiseLike(target))
      return waitWithin(call, target).then(() => this.#execute(call, args));
    return this.#invoke(target.slot, target.endpoint, target.args, call);
  }

  executeStream(
    caller: Caller,
    plugin: string,
    method: string,
    args: unknown,
    options: CallOptions | undefined,
  ): AsyncGenerator<unknown, void, undefined> {
    const call = this.#call(caller, plugin, method, options);
    // Straight to the node that serves it, one generator layer less per item.
    if (this.#route(call) === "any" && !this.#refused(call) && this.#onlyRemote(call, "any")) {
      this.#madeStream(call);
      return (this.remote as RemoteRoutes).executeStream(call, args);
    }
    return this.#stream(call, args);
  }

  async *#stream(call: Call, args: unknown): AsyncGenerator<unknown, void, undefined> {
    const route = this.#begin(call);
    let target: Target | Promise<void> | typeof REMOTE;
    for (;;) {
      target = this.#place(call, route, args, "executeStream");
      if (!isPromiseLike(target)) break;
      await waitWithin(call, target);
    }
    if (target === REMOTE) {
      this.#madeStream(call);
      yield* this.#remoteRoutes(call).executeStream(call, args);
      return;
    }
    const { slot, endpoint } = target;
    const wrap = (error: unknown) => callErrors.pluginThrew(call, error);
    let source: ReturnType<PluginHost["openStream"]>;
    try {
      source = (slot.host as PluginHost).openStream(endpoint, target.args, call);
    } catch (error) {
      throw wrap(error);
    }
    yield* trackStream(
      slot.inFlight,
      call,
      source,
      wrap,
      this.#streamStats(slot, endpoint, call.caller),
    );
  }

  executeSync(
    caller: Caller,
    plugin: string,
    method: string,
    args: unknown,
    options: CallOptions | undefined,
  ): unknown {
    const call = this.#call(caller, plugin, method, options);
    const target = this.#resolveSync(call, args, "executeSync");
    if (target === REMOTE) return this.#remoteRoutes(call).executeSync(call, args);
    const { slot, endpoint, args: positional } = target;
    let stats: EndpointStats | undefined;
    let started = NOT_TIMED;
    if (this.#metrics !== undefined) {
      stats = this.#statsOf(slot, endpoint, call.caller);
      if ((++stats.calls & SAMPLE_MASK) === 1) started = performance.now();
    }
    let result: unknown;
    try {
      result = slot.host?.invokeBlocking(endpoint, positional, call);
    } catch (error) {
      const failure = callErrors.pluginThrew(call, error);
      stats?.ended(started, failure.code);
      throw failure;
    }
    stats?.ended(started);
    if (isPromiseLike(result)) {
      // It already ran; its outcome can only be observed asynchronously, so it is dropped
      // on purpose rather than left to surface as an unhandled rejection.
      result.then(undefined, () => undefined);
      throw callErrors.wouldDeadlock(
        call,
        "it returned a Promise, which executeSync() on the main thread cannot wait for. Use `await execute()` instead, or run the calling plugin with `isolation: worker`.",
      );
    }
    return result;
  }

  executeStreamSync(
    caller: Caller,
    plugin: string,
    method: string,
    args: unknown,
    options: CallOptions | undefined,
  ): Generator<unknown, void, undefined> {
    const call = this.#call(caller, plugin, method, options);
    const target = this.#resolveSync(call, args, "executeStreamSync");
    if (target === REMOTE) return this.#remoteRoutes(call).executeStreamSync(call, args);
    const { slot, endpoint, args: positional } = target;
    let source: Iterator<unknown, unknown, undefined>;
    try {
      source = slot.host?.openStreamBlocking(endpoint, positional, call) as Iterator<
        unknown,
        unknown,
        undefined
      >;
    } catch (error) {
      throw callErrors.pluginThrew(call, error);
    }
    return pullSync(call, source);
  }

  /**
   * The local target a synchronous call may reach from this thread, `REMOTE` when another
   * node serves it, or a `WOULD_DEADLOCK` error.
   */
  #resolveSync(call: Call, args: unknown, mode: CallMode): Target | typeof REMOTE {
    const target = this.#place(call, this.#begin(call), args, mode);
    if (target === REMOTE) return REMOTE;
    if (isPromiseLike(target)) {
      target.then(undefined, () => undefined);
      throw callErrors.wouldDeadlock(
        call,
        `the plugin is starting or being reloaded, and ${mode}() on the main thread cannot wait for it. Use the async form, or call it once it is enabled.`,
      );
    }
    const kind = target.endpoint.info.kind;
    if (kind === "async function" || kind === "async generator") {
      const use = kind === "async generator" ? "for await … of executeStream" : "await execute";
      throw callErrors.wouldDeadlock(
        call,
        `it is an ${kind}, and ${mode}() on the main thread cannot wait for it without blocking the event loop it needs. Use \`${use}()\` instead, or run the calling plugin with \`isolation: worker\`.`,
      );
    }
    return target;
  }

  /**
   * Finds the local endpoint a call targets and binds its arguments. Returns a promise when
   * the plugin is still starting: the caller waits for it, then resolves again.
   */
  #resolve(call: Call, args: unknown, mode: CallMode): Target | Promise<void> {
    const slot = this.#findSlot(call);
    if (slot.state !== "enabled") {
      if (slot.gate) return slot.gate;
      throw this.#refusal(call, slot.state, slot);
    }
    const endpoint = slot.endpoints.get(call.method);
    if (!endpoint) {
      // Only what the caller could call is named; the rest of the plugin stays private.
      const open = [...slot.endpoints.entries()]
        .filter(([, other]) => this.#denied(call.caller, slot, other) === undefined)
        .map(([name]) => name);
      throw callErrors.endpointNotFound(call, open);
    }
    const denied = this.#denied(call.caller, slot, endpoint);
    if (denied) throw callErrors.accessDenied(call, denied);
    const kind = endpoint.info.kind;
    if (isStreamKind(kind) !== STREAM_MODES.has(mode)) {
      throw callErrors.wrongKind(call, kind, mode, call.caller.kind === "remote");
    }
    try {
      return { slot, endpoint, args: endpoint.bind(args) };
    } catch (error) {
      if (error instanceof ArgumentProblem) throw callErrors.invalidArguments(call, error.message);
      throw error;
    }
  }

  #findSlot(call: Call): PluginSlot {
    const uuid = call.pluginUuid;
    const slot = uuid ? this.#registry.byUuid(uuid) : this.#registry.get(call.plugin);
    if (!slot || slot.name !== call.plugin || (slot.state === "unloaded" && !slot.gate)) {
      throw callErrors.pluginNotFound(call);
    }
    return slot;
  }

  #refusal(call: Call, state: string, slot?: PluginSlot): RequestError {
    return callErrors.pluginDisabled(call, state, slot?.error?.message);
  }

  #denied(caller: Caller, slot: PluginSlot, endpoint: LoadedEndpoint): string | undefined {
    return refusal(caller, slot, endpoint, this.#hostname);
  }
}

/** Pulls a plugin's synchronous generator, turning what it throws into `PLUGIN_ERROR`. */
function* pullSync(
  call: Call,
  source: Iterator<unknown, unknown, undefined>,
): Generator<unknown, void, undefined> {
  let exhausted = false;
  try {
    for (;;) {
      let step: IteratorResult<unknown, unknown>;
      try {
        step = source.next();
      } catch (error) {
        exhausted = true;
        throw callErrors.pluginThrew(call, error);
      }
      if (step.done) {
        exhausted = true;
        return;
      }
      yield step.value;
    }
  } finally {
    if (!exhausted) source.return?.();
  }
}
