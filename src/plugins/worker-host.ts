/**
 * A plugin running in a worker thread of its own (`isolation: worker`). The core talks to it
 * over a MessagePort; blocking calls in either direction sleep in `Atomics.wait` while the
 * other thread serves them. A worker stuck past a call's deadline is terminated and started
 * again; one that crashes is restarted with backoff. The core and the other plugins keep
 * serving throughout.
 */
import { MessageChannel, Worker } from "node:worker_threads";
import type { PluginEntry, PluginManifest } from "../config/types.js";
import { BlockingClient, BlockingStreams, readBlocking, serveBlocking } from "../core/blocking.js";
import { THREAD_STREAM_WINDOW } from "../core/credit.js";
import { internalize, type LoadedEndpoint, loadedEndpoint } from "../core/endpoint.js";
import type { PluginHost, PluginIdentity } from "../core/ports.js";
import { StreamInbox } from "../core/stream-inbox.js";
import type { CallInfo, ExecuteOptions, Subscription, TopicOptions } from "../core/types.js";
import {
  BlockingTimeout,
  ConfigError,
  callErrors,
  RequestError,
  runtimeFailure,
} from "../errors.js";
import type { Logger } from "../log.js";
import type { PluginContext } from "./plugin.js";
import {
  type BlockingIn,
  type BlockingOut,
  type CallMeta,
  type ErrorData,
  eachMessage,
  errorData,
  errorFrom,
  type FromWorker,
  MessageBatcher,
  PendingAnswers,
  type Settle,
  ThreadPump,
  type TopicOp,
  type ToWorker,
  type WireOptions,
  type WorkerSetup,
} from "./worker-protocol.js";

/** A call served on behalf of the worker's plugin may carry the chain of blocked threads. */
type ChainedInfo = CallInfo & { chain?: string[] };

const STUCK_CHECK_MS = 1000;
const DEFAULT_BLOCKING_MS = 5 * 60_000;
const PINO_LEVELS: Record<number, "debug" | "info" | "warn" | "error" | "fatal"> = {
  10: "debug",
  20: "debug",
  30: "info",
  40: "warn",
  50: "error",
  60: "fatal",
};

/** A call or stream of the worker's own that the core is serving. */
interface Outbound {
  controller: AbortController;
  pump?: ThreadPump;
}

export interface WorkerHostOptions {
  entry: PluginEntry;
  manifest: PluginManifest;
  /** The plugin's context on the core's side: its calls run through it, as this plugin's. */
  context: PluginContext;
  moduleVersion: number;
  logLevel: string;
  /** The worker died and a new one serves the plugin (the metrics count it). */
  restarted?: () => void;
}

export class WorkerHost implements PluginHost {
  readonly isolation = "worker";
  readonly manifest: PluginManifest;
  readonly #options: WorkerHostOptions;
  readonly #name: string;
  readonly #logger: Logger;
  #worker: Worker | undefined;
  #out: MessageBatcher<ToWorker> | undefined;
  #toWorker: BlockingClient<BlockingIn> | undefined;
  #ready: Promise<void> = Promise.resolve();
  #loaded: Settle | undefined;
  #endpoints = new Map<string, LoadedEndpoint>();
  #identity: PluginIdentity;
  #seq = 0;
  readonly #answers = new PendingAnswers();
  readonly #inbound = new Map<number, StreamInbox>();
  readonly #outbound = new Map<number, Outbound>();
  #wantEnabled = false;
  #disposed = false;
  #restarts = 0;
  #stuckCheck: Promise<void> | undefined;
  /** Workers whose end was already handled (a crash is reported twice: error, then exit). */
  readonly #handled = new WeakSet<Worker>();

  constructor(options: WorkerHostOptions) {
    this.#options = options;
    this.manifest = options.manifest;
    this.#name = options.entry.name;
    this.#logger = options.context.logger;
    this.#identity = {
      uuid: options.context.uuid,
      version: options.manifest.version,
      description: options.manifest.description,
      remote: options.manifest.remote,
    };
  }

  get endpoints(): ReadonlyMap<string, LoadedEndpoint> {
    return this.#endpoints;
  }

  identity(): PluginIdentity {
    return this.#identity;
  }

  load(): Promise<void> {
    this.#ready = this.#spawn();
    return this.#ready;
  }

  #spawn(): Promise<void> {
    // A new thread runs onLoad again and subscribes anew; the old thread's subscriptions end.
    for (const subscription of this.#subscriptions.values()) subscription.unsubscribe();
    this.#subscriptions.clear();
    const toCore = new MessageChannel();
    const toWorker = new MessageChannel();
    const setup: WorkerSetup = {
      entry: this.#options.entry,
      manifest: this.#options.manifest,
      moduleVersion: this.#options.moduleVersion,
      uuid: this.#options.context.uuid,
      arguments: this.#options.context.arguments,
      logLevel: this.#options.logLevel,
    };
    const limits = this.#options.entry.resource_limits ?? this.#options.manifest.resource_limits;
    const worker = new Worker(new URL("./worker-entry.js", import.meta.url), {
      workerData: { ...setup, blockingOut: toCore.port2, blockingIn: toWorker.port2 },
      transferList: [toCore.port2, toWorker.port2],
      ...(limits ? { resourceLimits: limits } : {}),
    });
    this.#worker = worker;
    serveBlocking<BlockingOut>(toCore.port1, (request) => this.#serveBlocking(request));
    toCore.port1.unref();
    this.#toWorker = new BlockingClient<BlockingIn>(toWorker.port1);
    this.#out = new MessageBatcher<ToWorker>(worker, (message, error) =>
      this.#unclonable(message, error),
    );
    worker.on("message", (data: FromWorker | FromWorker[]) =>
      eachMessage(data, (message) => this.#receive(message)),
    );
    worker.on("error", (error) => this.#lost(worker, `crashed: ${error.message}`));
    worker.on("exit", (code) => this.#lost(worker, `exited with code ${code}`));
    return new Promise<void>((resolve, reject) => {
      this.#loaded = { resolve, reject };
    });
  }

  // ---------------------------------------------------------------- messages

  #post(message: ToWorker): void {
    this.#out?.post(message);
  }

  /** A message that could not be copied to the worker fails what it was for. */
  #unclonable(message: ToWorker, error: Error): void {
    const reason = new Error(`a value cannot cross to the plugin's thread: ${error.message}`);
    switch (message.t) {
      case "invoke":
      case "enable":
      case "disable":
      case "ping":
        this.#answers.take(message.id)?.reject(reason);
        return;
      case "open":
        this.#inbound.get(message.id)?.end(reason);
        return;
      case "answer":
        this.#post({ t: "answer", id: message.id, error: errorData(reason) });
        return;
      case "items":
        this.#post({ t: "end", id: message.id, error: errorData(reason) });
        this.#outbound.get(message.id)?.controller.abort();
        return;
      default:
        return;
    }
  }

  #request(make: (id: number) => ToWorker): Promise<unknown> {
    const id = ++this.#seq;
    const answer = this.#answers.wait(id);
    this.#post(make(id));
    return answer;
  }

  #receive(message: FromWorker): void {
    switch (message.t) {
      case "ready": {
        this.#endpoints = new Map(
          this.manifest.endpoints.flatMap((declared) => {
            const kind = message.endpoints.find(
              (e) => e.access_name === declared.access_name,
            )?.kind;
            if (!kind) return [];
            const endpoint: LoadedEndpoint = loadedEndpoint(declared, kind);
            return [[internalize(declared.access_name), endpoint] as const];
          }),
        );
        this.#identity = { uuid: this.#identity.uuid, ...message.identity };
        this.#loaded?.resolve(undefined);
        this.#loaded = undefined;
        return;
      }
      case "failed":
        this.#loaded?.reject(errorFrom(message.error));
        this.#loaded = undefined;
        this.#disposed = true;
        void this.#worker?.terminate();
        return;
      case "answer":
        this.#answers.settle(message);
        return;
      case "items":
        this.#inbound.get(message.id)?.push(message.items);
        return;
      case "end":
        this.#inbound.get(message.id)?.end(message.error && errorFrom(message.error));
        return;
      case "pong":
        this.#answers.take(message.id)?.resolve(undefined);
        return;
      case "log":
        this.#relog(message.record);
        return;
      case "call":
        this.#serveCall(
          message.id,
          message.plugin,
          message.method,
          message.args,
          message.options,
          message.topic,
        );
        return;
      case "stream":
        void this.#serveStream(
          message.id,
          message.plugin,
          message.method,
          message.args,
          message.options,
          message.credit,
          message.topic,
        );
        return;
      case "subscribe":
        this.#subscribe(message.sub, message.pattern);
        return;
      case "unsubscribe":
        this.#subscriptions.get(message.sub)?.unsubscribe();
        this.#subscriptions.delete(message.sub);
        return;
      case "credit":
        this.#outbound.get(message.id)?.pump?.grant(message.n);
        return;
      case "cancel":
        this.#outbound.get(message.id)?.controller.abort();
        return;
    }
  }

  #relog(record: string): void {
    try {
      const { level, msg, time: _time, ...rest } = JSON.parse(record) as Record<string, unknown>;
      const method = PINO_LEVELS[Number(level)] ?? "info";
      this.#logger[method](rest, typeof msg === "string" ? msg : "");
    } catch {
      this.#logger.info(record);
    }
  }

  // ---------------------------------------------------------------- the plugin's own calls

  #callOptions(options: WireOptions, controller: AbortController): ExecuteOptions {
    return { ...options, signal: controller.signal } as ExecuteOptions;
  }

  /** The worker plugin's code subscriptions, by the worker's number for each. */
  readonly #subscriptions = new Map<number, Subscription>();

  /**
   * Subscribes for the worker plugin: each publish is posted to the worker, which runs the
   * handler there. What the handler returns stays in the worker.
   */
  #subscribe(sub: number, pattern: string): void {
    try {
      const subscription = this.#options.context.subscribe(pattern, (args, info) => {
        if (this.#subscriptions.has(sub)) this.#post({ t: "publish", sub, args, info });
      });
      this.#subscriptions.set(sub, subscription);
    } catch (error) {
      this.#logger.error(
        `${this.#options.entry.name}: subscribe("${pattern}") failed: ${(error as Error).message}`,
      );
    }
  }

  /** A call the worker plugin makes: to an endpoint, or a topic operation. */
  #callFor(
    plugin: string,
    method: string,
    args: unknown,
    options: ExecuteOptions,
    topic: TopicOp | undefined,
  ): Promise<unknown> {
    const context = this.#options.context;
    switch (topic) {
      case undefined:
        return context.execute(plugin, method, args, options);
      case "notify":
        return context.notify(method, args, options as TopicOptions);
      case "request":
        return context.requestTopic(method, args, options);
      case "tags":
        return context.findEndpointsByTag(method);
    }
  }

  #streamFor(
    plugin: string,
    method: string,
    args: unknown,
    options: ExecuteOptions,
    topic: TopicOp | undefined,
  ): AsyncGenerator<unknown, void, undefined> {
    return topic === "request"
      ? this.#options.context.requestTopicStream(method, args, options)
      : this.#options.context.executeStream(plugin, method, args, options);
  }

  #serveCall(
    id: number,
    plugin: string,
    method: string,
    args: unknown,
    options: WireOptions,
    topic: TopicOp | undefined,
  ): void {
    const controller = new AbortController();
    this.#outbound.set(id, { controller });
    this.#callFor(plugin, method, args, this.#callOptions(options, controller), topic)
      .then(
        (value) => this.#post({ t: "answer", id, value }),
        (error: unknown) => this.#post({ t: "answer", id, error: errorData(error) }),
      )
      .finally(() => this.#outbound.delete(id));
  }

  async #serveStream(
    id: number,
    plugin: string,
    method: string,
    args: unknown,
    options: WireOptions,
    initialCredit: number,
    topic: TopicOp | undefined,
  ): Promise<void> {
    const controller = new AbortController();
    const outbound: Outbound = { controller };
    this.#outbound.set(id, outbound);
    const source = this.#streamFor(
      plugin,
      method,
      args,
      this.#callOptions(options, controller),
      topic,
    );
    const pump = new ThreadPump(id, source, initialCredit, (message) => this.#post(message), {
      batch: false,
    });
    outbound.pump = pump;
    controller.signal.addEventListener("abort", () => pump.stop());
    try {
      await pump.run();
    } finally {
      this.#outbound.delete(id);
    }
  }

  /** Blocking requests from the worker: its thread waits while this one serves them. */
  readonly #blockingStreams = new BlockingStreams();

  async #serveBlocking(request: BlockingOut): Promise<unknown> {
    try {
      switch (request.kind) {
        case "execute":
          return await this.#callFor(
            request.plugin,
            request.method,
            request.args,
            request.options as ExecuteOptions,
            request.topic,
          );
        case "open":
          return this.#blockingStreams.open(
            this.#streamFor(
              request.plugin,
              request.method,
              request.args,
              request.options as ExecuteOptions,
              request.topic,
            ),
          );
        case "next":
        case "close":
          return await this.#blockingStreams.serve(request);
      }
    } catch (error) {
      // Sent as data: an error object would lose its code on the way.
      throw errorData(error);
    }
  }

  // ---------------------------------------------------------------- calls into the plugin

  #meta(call: CallInfo, blockedMain: boolean): CallMeta {
    const chain = [...((call as ChainedInfo).chain ?? [])];
    if (blockedMain) chain.push("main");
    const remaining =
      call.deadline === undefined ? undefined : Math.max(0, call.deadline - Date.now());
    return {
      requestId: call.requestId,
      author: call.author,
      authorHost: call.authorHost,
      remainingMs: remaining,
      chain,
    };
  }

  /** A call from a thread this plugin is itself blocked on could never be served. */
  #refuseCycle(call: CallInfo): void {
    if ((call as ChainedInfo).chain?.includes(this.#name)) {
      throw runtimeFailure(
        callErrors.wouldDeadlock(
          { plugin: this.#name, requestId: call.requestId },
          `its thread is blocked waiting for the very call chain that now calls it (${[...((call as ChainedInfo).chain ?? []), this.#name].join(" → ")})`,
        ),
        this.#name,
      );
    }
  }

  /** When the caller gives up, tell the worker; if it does not answer at all, it is stuck. */
  #watch(id: number, call: CallInfo): void {
    call.signal.addEventListener(
      "abort",
      () => {
        this.#post({ t: "cancel", id, reason: errorData(call.signal.reason) });
        void this.#checkStuck();
      },
      { once: true },
    );
  }

  invoke(endpoint: LoadedEndpoint, args: unknown[], call: CallInfo): Promise<unknown> {
    this.#refuseCycle(call);
    return this.#ready.then(() => {
      const id = ++this.#seq;
      const result = this.#answers.wait(id);
      this.#post({
        t: "invoke",
        id,
        endpoint: endpoint.info.access_name,
        args,
        call: this.#meta(call, false),
      });
      this.#watch(id, call);
      return result;
    });
  }

  openStream(
    endpoint: LoadedEndpoint,
    args: unknown[],
    call: CallInfo,
  ): AsyncIterator<unknown, unknown, undefined> {
    this.#refuseCycle(call);
    return this.#stream(endpoint, args, call);
  }

  async *#stream(
    endpoint: LoadedEndpoint,
    args: unknown[],
    call: CallInfo,
  ): AsyncGenerator<unknown, void, undefined> {
    await this.#ready;
    const id = ++this.#seq;
    const stream = new StreamInbox(THREAD_STREAM_WINDOW, (n) => this.#post({ t: "credit", id, n }));
    this.#inbound.set(id, stream);
    this.#post({
      t: "open",
      id,
      endpoint: endpoint.info.access_name,
      args,
      call: this.#meta(call, false),
      credit: THREAD_STREAM_WINDOW,
    });
    this.#watch(id, call);
    try {
      yield* stream.items();
    } finally {
      if (this.#inbound.delete(id) && !stream.done) {
        this.#post({
          t: "cancel",
          id,
          reason: errorData(new Error("the consumer stopped reading")),
        });
      }
    }
  }

  #blocking(request: BlockingIn, call: CallInfo): unknown {
    const client = this.#toWorker;
    if (!client) throw new Error(`the worker of ${this.#name} is not running`);
    const wait =
      call.deadline === undefined ? DEFAULT_BLOCKING_MS : Math.max(0, call.deadline - Date.now());
    try {
      return client.call(request, wait);
    } catch (error) {
      if (error instanceof BlockingTimeout) {
        void this.#checkStuck();
        const method = "endpoint" in request ? request.endpoint : undefined;
        const site = { plugin: this.#name, method, requestId: call.requestId };
        throw runtimeFailure(callErrors.timeout(site, Math.round(wait)), this.#name);
      }
      throw error instanceof Error ? error : errorFrom(error as ErrorData);
    }
  }

  invokeBlocking(endpoint: LoadedEndpoint, args: unknown[], call: CallInfo): unknown {
    this.#refuseCycle(call);
    return this.#blocking(
      { kind: "invoke", endpoint: endpoint.info.access_name, args, call: this.#meta(call, true) },
      call,
    );
  }

  *openStreamBlocking(
    endpoint: LoadedEndpoint,
    args: unknown[],
    call: CallInfo,
  ): Generator<unknown, void, undefined> {
    this.#refuseCycle(call);
    yield* readBlocking(
      (request: BlockingIn) => this.#blocking(request, call),
      { kind: "open", endpoint: endpoint.info.access_name, args, call: this.#meta(call, true) },
      { closeAfterError: true },
    );
  }

  // ---------------------------------------------------------------- lifecycle

  async enable(): Promise<void> {
    this.#wantEnabled = true;
    await this.#ready;
    await this.#request((id) => ({ t: "enable", id }));
  }

  async disable(): Promise<void> {
    this.#wantEnabled = false;
    await this.#ready;
    await this.#request((id) => ({ t: "disable", id }));
  }

  async dispose(): Promise<void> {
    this.#disposed = true;
    this.#toWorker?.close();
    await this.#worker?.terminate();
  }

  // ---------------------------------------------------------------- containment

  /** Pings the worker; if it does not answer in time it is stuck in a loop: restart it. */
  #checkStuck(): Promise<void> {
    this.#stuckCheck ??= (async () => {
      const worker = this.#worker;
      // A ping the worker never got to (it crashed meanwhile) counts as no answer.
      const answered = await Promise.race([
        this.#request((id) => ({ t: "ping", id })).then(
          () => true,
          () => false,
        ),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), STUCK_CHECK_MS).unref()),
      ]);
      if (answered || !worker || worker !== this.#worker || this.#handled.has(worker)) return;
      this.#handled.add(worker);
      this.#logger.error(
        `${this.#name} is stuck past a call's deadline; stopping its worker and starting it again`,
      );
      // New calls wait for the next worker from here on, not for this one.
      this.#restart("was stuck");
      this.#fail(
        runtimeFailure(callErrors.timeout({ plugin: this.#name }, STUCK_CHECK_MS), this.#name),
      );
      await worker.terminate();
    })().finally(() => {
      this.#stuckCheck = undefined;
    });
    return this.#stuckCheck;
  }

  /** Fails everything in flight on the current worker. */
  #fail(error: Error): void {
    this.#answers.rejectAll(error);
    for (const stream of this.#inbound.values()) stream.end(error);
    this.#inbound.clear();
    for (const outbound of this.#outbound.values()) outbound.controller.abort();
    this.#outbound.clear();
    this.#blockingStreams.closeAll();
  }

  #lost(worker: Worker, why: string): void {
    // A crash fires both "error" and "exit": one restart is enough.
    if (worker !== this.#worker || this.#handled.has(worker)) return;
    this.#handled.add(worker);
    if (this.#loaded) {
      this.#loaded.reject(
        new ConfigError("PLUGIN_LOAD_FAILED", `Plugin "${this.#name}": its worker ${why}`, {
          file: this.#options.entry.path,
        }),
      );
      this.#loaded = undefined;
      this.#disposed = true;
      return;
    }
    if (this.#disposed) return;
    this.#logger.error(
      `the worker of ${this.#name} ${why}; its calls in flight fail, and it restarts`,
    );
    this.#restart(why);
    this.#fail(
      runtimeFailure(
        new RequestError(
          "PLUGIN_ERROR",
          `the worker of ${this.#name} ${why} during the call`,
          { plugin: this.#name },
          { errorName: "WorkerCrash" },
        ),
        this.#name,
      ),
    );
  }

  /** Starts a new worker after a backoff that grows with each restart (0.2 s to 30 s). */
  #restart(why: string): void {
    if (this.#disposed) return;
    const delay = Math.min(30_000, 200 * 2 ** this.#restarts);
    this.#restarts++;
    this.#ready = new Promise<void>((resolve, reject) => {
      setTimeout(() => {
        if (this.#disposed) return reject(new Error(`${this.#name} was unloaded`));
        this.#spawn()
          .then(async () => {
            if (this.#wantEnabled) await this.#request((id) => ({ t: "enable", id }));
            this.#logger.info(`${this.#name} restarted: its worker ${why}`);
            this.#options.restarted?.();
            // A minute without trouble, and the next restart is quick again.
            setTimeout(() => {
              this.#restarts = 0;
            }, 60_000).unref();
            resolve();
          })
          .catch((error: unknown) => {
            this.#logger.error(`${this.#name} failed to restart: ${(error as Error).message}`);
            this.#disposed = false;
            this.#restart(why);
            this.#ready.then(resolve, reject);
          });
      }, delay).unref();
    });
    this.#ready.catch(() => undefined);
  }
}
