/**
 * The worker thread of a plugin running with `isolation: worker`. It loads the plugin as an
 * in-process host would, then serves the core's messages: lifecycle, calls, streams. The
 * plugin's own calls go back to the core, asynchronously, or blocking this thread while the
 * core serves them.
 */
import { type MessagePort, parentPort, workerData } from "node:worker_threads";
import pino from "pino";
import { BlockingClient, BlockingStreams, readBlocking, serveBlocking } from "../core/blocking.js";
import { THREAD_STREAM_WINDOW } from "../core/credit.js";
import type { LoadedEndpoint } from "../core/endpoint.js";
import { StreamInbox } from "../core/stream-inbox.js";
import type {
  CallInfo,
  ExecuteOptions,
  PluginState,
  Subscription,
  TopicHandler,
  TopicInfo,
  TopicOptions,
} from "../core/types.js";
import { callErrors, RequestError, runtimeFailure } from "../errors.js";
import type { Logger } from "../log.js";
import { InProcessHost } from "./in-process.js";
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
  ThreadPump,
  type TopicOp,
  type ToWorker,
  type WireOptions,
  type WorkerSetup,
} from "./worker-protocol.js";

interface Ports {
  /** Where this thread posts blocking requests; the core serves them. */
  blockingOut: MessagePort;
  /** Where the core posts blocking requests into this plugin. */
  blockingIn: MessagePort;
}

const setup = workerData as WorkerSetup & Ports;
const port = parentPort as MessagePort;
const name = setup.entry.name;
let state: PluginState = "loaded";

const out = new MessageBatcher<FromWorker>(port, (message, error) => unclonable(message, error));

function post(message: FromWorker): void {
  out.post(message);
}

/** A message that could not be copied to the core fails what it was for. */
function unclonable(message: FromWorker, error: Error): void {
  const reason = new Error(`a value cannot cross to another thread: ${error.message}`);
  switch (message.t) {
    case "answer":
      post({ t: "answer", id: message.id, error: errorData(reason) });
      return;
    case "items":
      post({ t: "end", id: message.id, error: errorData(reason) });
      return;
    case "call":
      answers
        .take(message.id)
        ?.reject(
          callErrors.invalidArguments(
            { plugin: message.plugin, method: message.method },
            `arguments cannot cross to another thread: ${error.message}`,
          ),
        );
      return;
    case "stream":
      inbound.get(message.id)?.end(reason);
      return;
    default:
      return;
  }
}

/** Log lines go to the core, which writes them to its console and file as this plugin's. */
const logger: Logger = pino(
  { level: setup.logLevel, base: undefined },
  { write: (record: string) => post({ t: "log", record }) },
);

/** A call served here, as the plugin sees it through `currentCall`. */
class ServedCall implements CallInfo {
  readonly requestId: string;
  readonly author: string | undefined;
  readonly authorHost: string | undefined;
  readonly deadline: number | undefined;
  readonly chain: string[];
  readonly #controller = new AbortController();

  constructor(meta: CallMeta) {
    this.requestId = meta.requestId;
    this.author = meta.author;
    this.authorHost = meta.authorHost;
    this.deadline = meta.remainingMs === undefined ? undefined : Date.now() + meta.remainingMs;
    this.chain = meta.chain;
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  cancel(reason: Error): void {
    this.#controller.abort(reason);
  }
}

// ------------------------------------------------------------------ the plugin's own calls

let seq = 0;
const answers = new PendingAnswers();
const inbound = new Map<number, StreamInbox>();
const blocking = new BlockingClient<BlockingOut>(setup.blockingOut);

/** The chain of threads waiting on the call this plugin is serving now, and this one. */
function chainFor(): string[] {
  const current = host.currentCall as ServedCall | undefined;
  return [...(current?.chain ?? []), name];
}

function wireOptions(options: ExecuteOptions | undefined): WireOptions {
  const { signal: _signal, ...rest } = options ?? {};
  return { ...rest, chain: chainFor() };
}

function refuseBlockingOnMain(plugin: string, method: string): void {
  const current = host.currentCall as ServedCall | undefined;
  if (current?.chain.includes("main")) {
    throw callErrors.wouldDeadlock(
      { plugin, method },
      "the main thread is blocked waiting for this plugin, and a blocking call needs it to serve; use the async form",
    );
  }
}

function execute(
  plugin: string,
  method: string,
  args: unknown,
  options: ExecuteOptions | undefined,
  topic?: TopicOp,
): Promise<unknown> {
  const id = ++seq;
  const answer = answers.wait(id);
  const message: FromWorker = {
    t: "call",
    id,
    plugin,
    method,
    args,
    options: wireOptions(options),
  };
  if (topic) message.topic = topic;
  post(message);
  options?.signal?.addEventListener(
    "abort",
    () => {
      const waiting = answers.take(id);
      if (!waiting) return;
      post({ t: "cancel", id });
      waiting.reject(callErrors.aborted({ plugin, method }, options.signal?.reason));
    },
    { once: true },
  );
  return answer;
}

async function* executeStream(
  plugin: string,
  method: string,
  args: unknown,
  options: ExecuteOptions | undefined,
  topic?: TopicOp,
): AsyncGenerator<unknown, void, undefined> {
  const id = ++seq;
  const stream = new StreamInbox(THREAD_STREAM_WINDOW, (n) => post({ t: "credit", id, n }));
  inbound.set(id, stream);
  const message: FromWorker = {
    t: "stream",
    id,
    plugin,
    method,
    args,
    options: wireOptions(options),
    credit: THREAD_STREAM_WINDOW,
  };
  if (topic) message.topic = topic;
  post(message);
  try {
    yield* stream.items();
  } finally {
    if (inbound.delete(id) && !stream.done) post({ t: "cancel", id });
  }
}

/**
 * A blocking request to the core. Its errors arrive as data and become errors again here;
 * arguments that cannot be copied fail like an async call's would.
 */
function block(request: BlockingOut, plugin: string, method: string): unknown {
  try {
    return blocking.call(request);
  } catch (error) {
    if (error instanceof Error) {
      if (error.name !== "DataCloneError") throw error;
      throw callErrors.invalidArguments(
        { plugin, method },
        `arguments cannot cross to another thread: ${error.message}`,
      );
    }
    throw errorFrom(error as ErrorData);
  }
}

function executeSync(
  plugin: string,
  method: string,
  args: unknown,
  options: ExecuteOptions | undefined,
  topic?: TopicOp,
): unknown {
  refuseBlockingOnMain(plugin, method);
  const request: BlockingOut = {
    kind: "execute",
    plugin,
    method,
    args,
    options: wireOptions(options),
  };
  if (topic) request.topic = topic;
  return block(request, plugin, method);
}

function* executeStreamSync(
  plugin: string,
  method: string,
  args: unknown,
  options: ExecuteOptions | undefined,
  topic?: TopicOp,
): Generator<unknown, void, undefined> {
  refuseBlockingOnMain(plugin, method);
  const request: BlockingOut = {
    kind: "open",
    plugin,
    method,
    args,
    options: wireOptions(options),
  };
  if (topic) request.topic = topic;
  yield* readBlocking((next: BlockingOut) => block(next, plugin, method), request, {
    closeAfterError: true,
  });
}

// ------------------------------------------------------------------ topics

/** This plugin's code subscriptions; the core holds the real ones and posts each publish here. */
const handlers = new Map<number, TopicHandler>();
let subscriptionSeq = 0;

function subscribe(pattern: string, handler: TopicHandler): Subscription {
  if (typeof handler !== "function") {
    throw callErrors.badTopic(
      { plugin: "", method: String(pattern) },
      "subscribe() needs a handler function",
    );
  }
  const sub = ++subscriptionSeq;
  handlers.set(sub, handler);
  post({ t: "subscribe", sub, pattern });
  return {
    id: `${setup.uuid}-s${sub}`,
    pattern,
    unsubscribe() {
      if (handlers.delete(sub)) post({ t: "unsubscribe", sub });
    },
  };
}

function deliver(sub: number, args: unknown, info: TopicInfo): void {
  const handler = handlers.get(sub);
  if (!handler) return;
  const failed = (error: unknown) =>
    logger.error(
      `subscription to "${info.topic}" failed: ${(error as Error)?.message ?? String(error)}`,
    );
  try {
    const result = handler(args, info);
    if (result instanceof Promise) result.catch(failed);
  } catch (error) {
    failed(error);
  }
}

const context: PluginContext = {
  name,
  uuid: setup.uuid,
  logger,
  version: setup.manifest.version,
  description: setup.manifest.description,
  remote: setup.manifest.remote,
  arguments: setup.arguments,
  state: () => state,
  endpoints: () => [...host.endpoints.values()].map((endpoint) => endpoint.info),
  currentCall: () => host.currentCall,
  execute,
  executeSync,
  executeStream,
  executeStreamSync: (plugin, method, args, options) =>
    executeStreamSync(plugin, method, args, options),
  notify: (topic, args, options?: TopicOptions) =>
    execute("", topic, args, options as ExecuteOptions, "notify") as Promise<number>,
  notifySync: (topic, args, options?: TopicOptions) =>
    executeSync("", topic, args, options as ExecuteOptions, "notify") as number,
  requestTopic: (topic, args, options) => execute("", topic, args, options, "request"),
  requestTopicStream: (topic, args, options) => executeStream("", topic, args, options, "request"),
  requestTopicSync: (topic, args, options) => executeSync("", topic, args, options, "request"),
  requestTopicStreamSync: (topic, args, options) =>
    executeStreamSync("", topic, args, options, "request"),
  subscribe,
  findEndpointsByTag: (tag) =>
    execute("", tag, undefined, undefined, "tags") as ReturnType<
      PluginContext["findEndpointsByTag"]
    >,
};

const host = new InProcessHost(setup.entry, setup.manifest, context, setup.moduleVersion);

// ------------------------------------------------------------------ serving the core

const served = new Map<number, ServedCall>();
const pumps = new Map<number, ThreadPump>();

function endpointOf(access: string): LoadedEndpoint {
  const endpoint = host.endpoints.get(access);
  if (!endpoint) throw new Error(`no endpoint "${access}" in the worker of ${name}`);
  return endpoint;
}

function answer(id: number, work: () => unknown): void {
  let result: unknown;
  try {
    result = work();
  } catch (error) {
    post({ t: "answer", id, error: errorData(error) });
    return;
  }
  Promise.resolve(result).then(
    (value) => post({ t: "answer", id, value }),
    (error: unknown) => post({ t: "answer", id, error: errorData(error) }),
  );
}

function serve(message: ToWorker): void {
  switch (message.t) {
    case "enable":
      answer(message.id, async () => {
        await host.enable();
        state = "enabled";
      });
      return;
    case "disable":
      state = "disabled";
      answer(message.id, () => host.disable());
      return;
    case "invoke": {
      const call = new ServedCall(message.call);
      served.set(message.id, call);
      answer(message.id, () => {
        const result = host.invoke(endpointOf(message.endpoint), message.args, call);
        return Promise.resolve(result).finally(() => served.delete(message.id));
      });
      return;
    }
    case "open": {
      const call = new ServedCall(message.call);
      served.set(message.id, call);
      let source: Iterator<unknown> | AsyncIterator<unknown>;
      try {
        source = host.openStream(endpointOf(message.endpoint), message.args, call);
      } catch (error) {
        served.delete(message.id);
        post({ t: "end", id: message.id, error: errorData(error) });
        return;
      }
      const pump = new ThreadPump(message.id, source, message.credit, post, { batch: true });
      pumps.set(message.id, pump);
      void pump.run().finally(() => {
        pumps.delete(message.id);
        served.delete(message.id);
      });
      return;
    }
    case "credit":
      pumps.get(message.id)?.grant(message.n);
      return;
    case "cancel":
      served.get(message.id)?.cancel(errorFrom(message.reason));
      pumps.get(message.id)?.stop();
      return;
    case "ping":
      post({ t: "pong", id: message.id });
      return;
    case "publish":
      deliver(message.sub, message.args, message.info);
      return;
    case "answer":
      answers.settle(message);
      return;
    case "items":
      inbound.get(message.id)?.push(message.items);
      return;
    case "end":
      inbound.get(message.id)?.end(message.error && errorFrom(message.error));
      return;
  }
}

// Blocking calls into this plugin: the core's thread waits while this one runs them.
const blockingStreams = new BlockingStreams();
const intoPlugin = serveBlocking<BlockingIn>(setup.blockingIn, (request) =>
  serveBlockingIn(request).catch((error: unknown) => {
    // Sent as data: an error object would lose its class and code on the way.
    throw errorData(error);
  }),
);

async function serveBlockingIn(request: BlockingIn): Promise<unknown> {
  switch (request.kind) {
    case "invoke": {
      const call = new ServedCall(request.call);
      const result = host.invoke(endpointOf(request.endpoint), request.args, call);
      if (result instanceof Promise || typeof (result as { then?: unknown })?.then === "function") {
        // Its outcome may need the main thread, which is blocked waiting for this answer.
        Promise.resolve(result).catch(() => undefined);
        throw runtimeFailure(
          callErrors.wouldDeadlock(
            { plugin: name, method: request.endpoint },
            "it returned a Promise, which a blocking call from the main thread cannot wait for. Use `await execute()` instead.",
          ),
          name,
        );
      }
      return result;
    }
    case "open":
      return blockingStreams.open(
        host.openStream(endpointOf(request.endpoint), request.args, new ServedCall(request.call)),
      );
    case "next":
    case "close":
      return blockingStreams.serve(request);
  }
}

port.on("message", (data: ToWorker | ToWorker[]) => eachMessage(data, serve));

/**
 * A thread that is going away answers the blocking call the core may be waiting in: that
 * thread cannot see the exit until it wakes up. (Running out of memory leaves no such chance;
 * the call then ends at its deadline.)
 */
function dying(why: string): void {
  const failure = new RequestError(
    "PLUGIN_ERROR",
    `the worker of ${name} ${why} during the call`,
    { plugin: name },
    { errorName: "WorkerCrash" },
  );
  intoPlugin.failPending(errorData(runtimeFailure(failure, name)));
}
process.on("exit", (code) => dying(`exited with code ${code}`));
process.on("uncaughtException", (error) => {
  dying(`crashed: ${error.message}`);
  // Still a crash: the core sees it and restarts the worker.
  throw error;
});

try {
  await host.load();
  const identity = host.identity();
  post({
    t: "ready",
    endpoints: [...host.endpoints.entries()].map(([access_name, endpoint]) => ({
      access_name,
      kind: endpoint.info.kind,
    })),
    identity: {
      version: identity.version,
      description: identity.description,
      remote: identity.remote,
    },
  });
} catch (error) {
  post({ t: "failed", error: errorData(error) });
}
