/**
 * Messages between the core and a plugin running in a worker thread. Values cross by
 * structured clone, so a worker plugin takes and returns what a local one does, except
 * functions and class instances with private state.
 */
import type { PluginEntry, PluginManifest } from "../config/types.js";
import type { StreamRequest } from "../core/blocking.js";
import { CreditPump } from "../core/credit.js";
import type { EndpointKind } from "../core/endpoint.js";
import type { ExecuteOptions, TopicInfo } from "../core/types.js";
import {
  AioError,
  RequestError,
  type RequestErrorCode,
  runtimeFailure,
  runtimeFailureOf,
} from "../errors.js";

/** What the worker is started with. */
export interface WorkerSetup {
  entry: PluginEntry;
  manifest: PluginManifest;
  moduleVersion: number;
  uuid: string;
  arguments: unknown;
  /** pino level name for the plugin's logger. */
  logLevel: string;
}

/** What a call into the worker says about itself, for `currentCall` and deadlock checks. */
export interface CallMeta {
  requestId: string;
  author: string | undefined;
  authorHost: string | undefined;
  /** Milliseconds left of the caller's deadline, if any. */
  remainingMs: number | undefined;
  /** Threads blocked, upstream, waiting for this call: "main" or worker plugin names. */
  chain: string[];
}

/** An error as it crosses the thread boundary. */
export interface ErrorData {
  name: string;
  message: string;
  code?: string;
  stack?: string;
  /** Raised by the runtime about a call into this plugin, not thrown by plugin code. */
  runtimeFor?: string;
}

export type ToWorker =
  | { t: "enable" | "disable"; id: number }
  | { t: "invoke"; id: number; endpoint: string; args: unknown[]; call: CallMeta }
  | { t: "open"; id: number; endpoint: string; args: unknown[]; call: CallMeta; credit: number }
  | { t: "credit"; id: number; n: number }
  | { t: "cancel"; id: number; reason: ErrorData }
  | { t: "ping"; id: number }
  // A publish to one of the worker plugin's code subscriptions:
  | { t: "publish"; sub: number; args: unknown; info: TopicInfo }
  // Answers to the worker's own calls:
  | { t: "answer"; id: number; value?: unknown; error?: ErrorData }
  | { t: "items"; id: number; items: unknown[] }
  | { t: "end"; id: number; error?: ErrorData };

export type FromWorker =
  | {
      t: "ready";
      endpoints: Array<{ access_name: string; kind: EndpointKind }>;
      identity: { version: string; description: string; remote: boolean };
    }
  | { t: "failed"; error: ErrorData }
  | { t: "answer"; id: number; value?: unknown; error?: ErrorData }
  | { t: "items"; id: number; items: unknown[] }
  | { t: "end"; id: number; error?: ErrorData }
  | { t: "pong"; id: number }
  | { t: "log"; record: string }
  // The worker's own calls to other plugins:
  | {
      t: "call";
      id: number;
      plugin: string;
      method: string;
      args: unknown;
      options: WireOptions;
      topic?: TopicOp;
    }
  | {
      t: "stream";
      id: number;
      plugin: string;
      method: string;
      args: unknown;
      options: WireOptions;
      credit: number;
      topic?: TopicOp;
    }
  | { t: "subscribe"; sub: number; pattern: string }
  | { t: "unsubscribe"; sub: number }
  | { t: "credit"; id: number; n: number }
  | { t: "cancel"; id: number };

/**
 * What a worker's call or stream asks for besides an endpoint: a publish (its `method` is the
 * topic), a topic request, or the endpoints with a tag (its `method` is the tag).
 */
export type TopicOp = "notify" | "request" | "tags";

/** What a stream sends to the thread that reads it. */
export type StreamMessage =
  | { t: "items"; id: number; items: unknown[] }
  | { t: "end"; id: number; error?: ErrorData };

/** ExecuteOptions as they cross: no AbortSignal (the worker sends `cancel` instead). */
export type WireOptions = Omit<ExecuteOptions, "signal"> & { chain?: string[] };

/** A blocking request from the worker, served by the main thread while the worker waits. */
export type BlockingOut =
  | {
      kind: "execute";
      plugin: string;
      method: string;
      args: unknown;
      options: WireOptions;
      topic?: TopicOp;
    }
  | {
      kind: "open";
      plugin: string;
      method: string;
      args: unknown;
      options: WireOptions;
      topic?: TopicOp;
    }
  | StreamRequest;

/** A blocking request from the main thread into the worker (executeSync on its plugin). */
export type BlockingIn =
  | { kind: "invoke"; endpoint: string; args: unknown[]; call: CallMeta }
  | { kind: "open"; endpoint: string; args: unknown[]; call: CallMeta }
  | StreamRequest;

export function errorData(error: unknown): ErrorData {
  if (error instanceof Error) {
    const data: ErrorData = { name: error.name, message: error.message };
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string") data.code = code;
    if (error.stack) data.stack = error.stack;
    const plugin = runtimeFailureOf(error);
    if (plugin !== undefined) data.runtimeFor = plugin;
    return data;
  }
  return { name: typeof error, message: String(error) };
}

/**
 * Rebuilds an error that crossed: a core error keeps its class and code; anything else
 * becomes an Error with the same name, message and stack.
 */
export function errorFrom(data: ErrorData): Error {
  if (data.code !== undefined && data.name.endsWith("RequestError")) {
    const error = new RequestError(data.code as RequestErrorCode, data.message);
    if (data.stack) error.stack = data.stack;
    return data.runtimeFor !== undefined ? runtimeFailure(error, data.runtimeFor) : error;
  }
  if (data.code !== undefined && data.name.endsWith("Error") && data.name !== "Error") {
    const error = new AioError(data.code as AioError["code"], data.message);
    error.name = data.name;
    if (data.stack) error.stack = data.stack;
    return error;
  }
  const error = new Error(data.message);
  error.name = data.name;
  if (data.stack) error.stack = data.stack;
  return error;
}

/** What settles a call to the other thread. */
export interface Settle {
  resolve(value: unknown): void;
  reject(error: Error): void;
}

/** The calls sent to the other thread and not yet answered, by id. */
export class PendingAnswers {
  readonly #waiting = new Map<number, Settle>();

  /** The answer to call `id`, once it comes. */
  wait(id: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
    });
  }

  /** Stops waiting for call `id`; what settles it, if it was still waiting. */
  take(id: number): Settle | undefined {
    const waiting = this.#waiting.get(id);
    if (waiting) this.#waiting.delete(id);
    return waiting;
  }

  /** Settles the call an `answer` message answers, if it is still waiting. */
  settle(answer: { id: number; value?: unknown; error?: ErrorData }): void {
    const waiting = this.take(answer.id);
    if (!waiting) return;
    if (answer.error) waiting.reject(errorFrom(answer.error));
    else waiting.resolve(answer.value);
  }

  rejectAll(error: Error): void {
    for (const waiting of this.#waiting.values()) waiting.reject(error);
    this.#waiting.clear();
  }
}

/**
 * Sends messages in batches: those posted during one microtask checkpoint leave as one array,
 * so many calls in flight cost one cross-thread wake-up instead of one each. A message that
 * cannot be cloned fails alone, through `unclonable`, and the rest still go.
 */
export class MessageBatcher<M> {
  readonly #target: { postMessage(value: unknown): void };
  readonly #unclonable: (message: M, error: Error) => void;
  #queue: M[] = [];
  #scheduled = false;

  constructor(
    target: { postMessage(value: unknown): void },
    unclonable: (message: M, error: Error) => void,
  ) {
    this.#target = target;
    this.#unclonable = unclonable;
  }

  post(message: M): void {
    this.#queue.push(message);
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(this.#flush);
  }

  #flush = (): void => {
    this.#scheduled = false;
    const queue = this.#queue;
    this.#queue = [];
    try {
      this.#target.postMessage(queue.length === 1 ? queue[0] : queue);
    } catch {
      for (const message of queue) {
        try {
          this.#target.postMessage(message);
        } catch (error) {
          this.#unclonable(message, error as Error);
        }
      }
    }
  };
}

/** Handles each message of what a MessageBatcher sent: one message, or an array of them. */
export function eachMessage<M>(data: M | M[], handle: (message: M) => void): void {
  if (Array.isArray(data)) for (const message of data) handle(message);
  else handle(data);
}

/**
 * Sends a stream's items to the thread that reads it, as that thread grants credit. With
 * `batch`, the items produced in one turn of the event loop leave as one message; without, each
 * leaves at once.
 */
export class ThreadPump extends CreditPump {
  readonly #id: number;
  readonly #post: (message: StreamMessage) => void;
  readonly #batched: boolean;
  #batch: unknown[] = [];

  constructor(
    id: number,
    source: Iterator<unknown> | AsyncIterator<unknown>,
    credit: number,
    post: (message: StreamMessage) => void,
    { batch }: { batch: boolean },
  ) {
    super(source, credit);
    this.#id = id;
    this.#post = post;
    this.#batched = batch;
  }

  protected override send(item: unknown): void {
    if (!this.#batched) {
      this.#post({ t: "items", id: this.#id, items: [item] });
      return;
    }
    if (this.#batch.length === 0) setImmediate(() => this.flush());
    this.#batch.push(item);
  }

  protected override flush(): void {
    if (this.#batch.length === 0) return;
    const items = this.#batch;
    this.#batch = [];
    this.#post({ t: "items", id: this.#id, items });
  }

  protected override end(): void {
    this.#post({ t: "end", id: this.#id });
  }

  protected override fail(error: unknown): void {
    this.flush();
    this.#post({ t: "end", id: this.#id, error: errorData(error) });
  }
}
