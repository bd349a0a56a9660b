/**
 * One call in flight: who made it, what it targets, its deadline, and the ways it can end
 * early (timeout, abort, its plugin being unloaded). Nothing here knows where the plugin runs.
 */
import { type CallSite, callErrors, type RequestError } from "../errors.js";
import { type EndpointStats, NOT_TIMED } from "./metrics.js";
import type { CallInfo, ExecuteOptions } from "./types.js";

/** Who is calling; access rules depend on it. */
export type Caller =
  | { readonly kind: "application" }
  | { readonly kind: "plugin"; readonly name: string }
  | { readonly kind: "remote"; readonly hostname: string; readonly author?: string };

export const APPLICATION: Caller = { kind: "application" };

/**
 * The part of an AbortSignal a call listens to. The network layer passes a lighter object
 * than a real AbortSignal for each call it serves: creating one costs microseconds.
 */
export interface CancelSignal {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: "abort", listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: "abort", listener: () => void): void;
}

/** Options of a call as the core runs it: the public ones, plus what the network adds. */
export interface CallOptions extends Omit<ExecuteOptions, "signal"> {
  signal?: AbortSignal | CancelSignal | undefined;
  /** The id the calling node gave the call, kept so both nodes' logs and errors agree. */
  requestId?: string;
  /** Threads blocked upstream waiting for this call ("main", worker plugin names). */
  chain?: string[];
}

export class Call implements CallSite, CallInfo {
  readonly #idPrefix: string;
  readonly #seq: number;
  #requestId: string | undefined;
  readonly plugin: string;
  readonly method: string;
  readonly host: string;
  readonly pluginUuid: string | undefined;
  readonly caller: Caller;
  /** Threads blocked upstream waiting for this call; a worker plugin among them cannot serve it. */
  readonly chain: string[] | undefined;
  readonly timeout: number | undefined;
  /** When the call times out, on the `performance.now()` clock; set only with a valid timeout. */
  readonly expiresAt: number | undefined;
  /** The caller's own signal, from its options. */
  readonly callerSignal: CancelSignal | undefined;
  /** Created when the plugin first asks for `signal`; most calls never need one. */
  #controller: AbortController | undefined;
  #endedBy: Error | undefined;

  constructor(
    idPrefix: string,
    seq: number,
    plugin: string,
    method: string,
    caller: Caller,
    options: CallOptions | undefined,
  ) {
    this.#idPrefix = idPrefix;
    this.#seq = seq;
    this.#requestId = options?.requestId;
    this.plugin = plugin;
    this.method = method;
    this.caller = caller;
    this.host = options?.host ?? "any";
    this.pluginUuid = options?.pluginUuid;
    this.chain = options?.chain;
    const timeout = options?.timeout;
    this.timeout = timeout;
    this.expiresAt =
      timeout !== undefined && Number.isFinite(timeout) && timeout >= 0
        ? performance.now() + timeout
        : undefined;
    this.callerSignal = options?.signal;
  }

  get author(): string | undefined {
    const caller = this.caller;
    return caller.kind === "plugin"
      ? caller.name
      : caller.kind === "remote"
        ? caller.author
        : undefined;
  }

  get authorHost(): string | undefined {
    return this.caller.kind === "remote" ? this.caller.hostname : undefined;
  }

  /** Aborted when the call is ended from outside; see `CallInfo.signal`. */
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#endedBy) this.#controller.abort(this.#endedBy);
    }
    return this.#controller.signal;
  }

  get deadline(): number | undefined {
    const left = this.remaining();
    return left === undefined ? undefined : Date.now() + left;
  }

  /** The caller stopped waiting: tell the plugin through `signal`. */
  cancel(reason: Error): void {
    if (this.#endedBy) return;
    this.#endedBy = reason;
    this.#controller?.abort(reason);
  }

  /** Milliseconds left before the deadline, if the call has one. */
  remaining(): number | undefined {
    return this.expiresAt === undefined
      ? undefined
      : Math.max(0, this.expiresAt - performance.now());
  }

  /** Formatted on first use: most calls never need it. */
  get requestId(): string {
    this.#requestId ??= `${this.#idPrefix}${this.#seq.toString(36)}`;
    return this.#requestId;
  }

  /** Whether anything besides the plugin itself can end this call. */
  get bounded(): boolean {
    return this.timeout !== undefined || this.callerSignal !== undefined;
  }
}

/**
 * Something in flight that can be ended from outside. `prev`, `next` and `listed` belong to
 * the {@link InFlight} it is in: an entry is its own list node, so tracking a call allocates
 * nothing more.
 *
 * A list rather than a Set: a hash table that gains and loses a key per call is rebuilt every
 * few calls, and V8 links each table it drops to its successor; once a dropped table is in the
 * old generation, every young collection keeps the next table, and what its keys reach,
 * alive. A Set of calls in flight made an async call spend ~60% of its time in the GC.
 */
export interface Cancellable {
  prev: Cancellable | undefined;
  next: Cancellable | undefined;
  listed: boolean;
  fail(error: RequestError): void;
}

/** An entry whose `fail` is a given function. */
class Ender implements Cancellable {
  prev: Cancellable | undefined = undefined;
  next: Cancellable | undefined = undefined;
  listed = false;
  readonly fail: (error: RequestError) => void;

  constructor(fail: (error: RequestError) => void) {
    this.fail = fail;
  }
}

/** The calls in flight on one plugin, so unloading can wait for them, then end the rest. */
export class InFlight {
  #first: Cancellable | undefined;
  #size = 0;
  #whenIdle: Array<() => void> = [];

  get size(): number {
    return this.#size;
  }

  add(entry: Cancellable): void {
    const first = this.#first;
    entry.next = first;
    if (first !== undefined) first.prev = entry;
    this.#first = entry;
    entry.listed = true;
    this.#size++;
  }

  delete(entry: Cancellable): void {
    if (!entry.listed) return;
    entry.listed = false;
    const { prev, next } = entry;
    if (prev === undefined) this.#first = next;
    else prev.next = next;
    if (next !== undefined) next.prev = prev;
    entry.prev = entry.next = undefined;
    if (--this.#size === 0 && this.#whenIdle.length > 0) {
      const waiting = this.#whenIdle;
      this.#whenIdle = [];
      for (const resolve of waiting) resolve();
    }
  }

  /** Waits until nothing is in flight or `ms` pass; resolves to how many are still running. */
  drain(ms: number): Promise<number> {
    if (this.#size === 0) return Promise.resolve(0);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(this.#size), ms);
      this.#whenIdle.push(() => {
        clearTimeout(timer);
        resolve(0);
      });
    });
  }

  failAll(makeError: () => RequestError): void {
    // Failing an entry unlinks it, so the list is copied first.
    const all: Cancellable[] = [];
    for (let entry = this.#first; entry !== undefined; entry = entry.next) all.push(entry);
    for (const entry of all) entry.fail(makeError());
  }
}

/**
 * Calls `end` with the call's `TIMEOUT` or `ABORTED` error when either comes first; returns a
 * function that stops watching. Does nothing for an unbounded call.
 */
export function watchBounds(call: Call, end: (error: RequestError) => void): () => void {
  if (!call.bounded) return noop;
  const signal = call.callerSignal;
  if (signal?.aborted) {
    end(callErrors.aborted(call, signal.reason));
    return noop;
  }
  const at = call.expiresAt;
  // Beyond what a timer can hold (about 24.8 days) a deadline cannot pass during this run.
  const deadline =
    at === undefined || (call.timeout as number) > MAX_TIMER_MS
      ? undefined
      : new Deadline(call, at, end);
  if (signal === undefined) return deadline === undefined ? noop : () => deadline.stop();
  const onAbort = () => end(callErrors.aborted(call, signal.reason));
  signal.addEventListener("abort", onAbort, { once: true });
  return () => {
    deadline?.stop();
    signal.removeEventListener("abort", onAbort);
  };
}

function noop(): void {}

/** The longest delay setTimeout takes; longer ones fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A call's deadline, in the queue of the calls with the same timeout.
 *
 * A setTimeout and clearTimeout per call cost an async call with a timeout ~0.5 µs of CPU,
 * more than the rest of the call. Deadlines share a timer per timeout instead: calls with the
 * same timeout mostly start in the order their deadlines come, so a queue stays sorted by
 * appending, and its one timer waits for the first.
 */
class Deadline {
  readonly at: number;
  readonly #call: Call;
  readonly #end: (error: RequestError) => void;
  readonly #queue: DeadlineQueue;
  earlier: Deadline | undefined = undefined;
  later: Deadline | undefined = undefined;
  queued = false;

  constructor(call: Call, at: number, end: (error: RequestError) => void) {
    this.at = at;
    this.#call = call;
    this.#end = end;
    const key = call.timeout as number;
    let queue = queues.get(key);
    if (queue === undefined) {
      queue = new DeadlineQueue(key);
      queues.set(key, queue);
    }
    this.#queue = queue;
    queue.add(this);
  }

  stop(): void {
    this.#queue.remove(this);
  }

  expire(): void {
    this.#end(callErrors.timeout(this.#call, this.#queue.key));
  }
}

/** The queues by timeout. One lives until its timer finds it empty, not per call. */
const queues = new Map<number, DeadlineQueue>();

class DeadlineQueue {
  readonly key: number;
  #first: Deadline | undefined;
  #last: Deadline | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** When the timer fires, on the `performance.now()` clock. */
  #armedAt = Number.POSITIVE_INFINITY;
  readonly #fire = () => this.#expire();

  constructor(key: number) {
    this.key = key;
  }

  add(entry: Deadline): void {
    let before = this.#last;
    while (before !== undefined && before.at > entry.at) before = before.earlier;
    const after = before === undefined ? this.#first : before.later;
    entry.earlier = before;
    entry.later = after;
    if (before === undefined) this.#first = entry;
    else before.later = entry;
    if (after === undefined) this.#last = entry;
    else after.earlier = entry;
    entry.queued = true;
    if (before === undefined) this.#arm(entry.at);
  }

  remove(entry: Deadline): void {
    if (!entry.queued) return;
    entry.queued = false;
    const { earlier, later } = entry;
    if (earlier === undefined) this.#first = later;
    else earlier.later = later;
    if (later === undefined) this.#last = earlier;
    else later.earlier = earlier;
    entry.earlier = entry.later = undefined;
    // The timer stays set for a later call; unref'd, it keeps no process alive meanwhile.
    if (this.#first === undefined) this.#timer?.unref();
  }

  /** Makes sure the timer fires by `at`, and keeps the process alive for it. */
  #arm(at: number): void {
    const timer = this.#timer;
    if (timer !== undefined && this.#armedAt <= at) {
      timer.ref();
      return;
    }
    if (timer !== undefined) clearTimeout(timer);
    this.#armedAt = at;
    this.#timer = setTimeout(this.#fire, Math.max(0, Math.ceil(at - performance.now())));
  }

  #expire(): void {
    this.#timer = undefined;
    this.#armedAt = Number.POSITIVE_INFINITY;
    const now = performance.now();
    for (let first = this.#first; first !== undefined && first.at <= now; first = this.#first) {
      this.remove(first);
      first.expire();
    }
    if (this.#first !== undefined) this.#arm(this.#first.at);
    else if (this.#timer === undefined && queues.get(this.key) === this) queues.delete(this.key);
  }
}

/** Waits for `gate` (a plugin that is starting), within the call's timeout and signal. */
export function waitWithin(call: Call, gate: Promise<void>): Promise<void> {
  if (!call.bounded) return gate;
  return new Promise((resolve, reject) => {
    const stop = watchBounds(call, reject);
    gate.then(() => {
      stop();
      resolve();
    });
  });
}

/**
 * Settles with `work`, unless the call's timeout, its signal or `inFlight.failAll` end it
 * first. The plugin's own error is turned into a `RequestError` by `wrapError`. With `stats`,
 * its error is counted there, and its time since `started` observed unless it is `NOT_TIMED`.
 */
export function trackPromise(
  inFlight: InFlight,
  call: Call,
  work: PromiseLike<unknown>,
  wrapError: (error: unknown) => RequestError,
  stats?: EndpointStats,
  started = NOT_TIMED,
): Promise<unknown> {
  const tracked = new TrackedPromise(inFlight, call);
  if (stats !== undefined) {
    tracked.stats = stats;
    tracked.started = started;
  }
  const promise = new Promise((resolve, reject) => {
    tracked.resolve = resolve;
    tracked.reject = reject;
  });
  inFlight.add(tracked);
  if (call.bounded) tracked.stopWatching = watchBounds(call, (error) => tracked.fail(error));
  work.then(
    (value) => tracked.settle(undefined, value),
    (error: unknown) => tracked.settle(wrapError(error), undefined),
  );
  return promise;
}

// Public fields and no base class: with private fields, a base class and the executor as an
// arrow-function field, an async call cost 5–15% more CPU.
class TrackedPromise implements Cancellable {
  prev: Cancellable | undefined = undefined;
  next: Cancellable | undefined = undefined;
  listed = false;
  readonly inFlight: InFlight;
  readonly call: Call;
  /** Cleared once settled. */
  resolve: ((value: unknown) => void) | undefined = undefined;
  reject: ((error: RequestError) => void) | undefined = undefined;
  stopWatching: () => void = noop;
  stats: EndpointStats | undefined = undefined;
  started = NOT_TIMED;

  constructor(inFlight: InFlight, call: Call) {
    this.inFlight = inFlight;
    this.call = call;
  }

  fail(error: RequestError): void {
    this.call.cancel(error);
    this.settle(error, undefined);
  }

  settle(error: RequestError | undefined, value: unknown): void {
    const resolve = this.resolve;
    if (resolve === undefined) return;
    const reject = this.reject as (error: RequestError) => void;
    this.resolve = this.reject = undefined;
    this.inFlight.delete(this);
    this.stopWatching();
    this.stats?.ended(this.started, error?.code);
    if (error) reject(error);
    else resolve(value);
  }
}

type AnyIterator =
  | Iterator<unknown, unknown, undefined>
  | AsyncIterator<unknown, unknown, undefined>;

/**
 * Pulls items from a plugin's generator for a consumer. The consumer's pace drives the
 * source: nothing is read ahead, so memory stays bounded. An early `break` closes the
 * source; a timeout, abort or unload fails the stream without waiting for a stuck source.
 */
export async function* trackStream(
  inFlight: InFlight,
  call: Call,
  source: AnyIterator,
  wrapError: (error: unknown) => RequestError,
  stats?: EndpointStats,
): AsyncGenerator<unknown, void, undefined> {
  const started = stats === undefined ? 0 : performance.now();
  let outcome: RequestError | undefined;
  let failure: RequestError | undefined;
  let interrupt: ((error: RequestError) => void) | undefined;
  const entry = new Ender((error) => {
    failure ??= error;
    call.cancel(error);
    interrupt?.(error);
  });
  inFlight.add(entry);
  const stopWatching = watchBounds(call, (error) => entry.fail(error));

  // While a `next()` is pending the source is busy; closing it then would wait for it.
  let busy = false;
  let exhausted = false;
  try {
    for (;;) {
      if (failure) throw failure;
      busy = true;
      let step: IteratorResult<unknown, unknown>;
      try {
        const next = source.next();
        step = isPromiseLike(next)
          ? await new Promise<IteratorResult<unknown, unknown>>((resolve, reject) => {
              interrupt = reject;
              next.then(resolve, reject);
            })
          : next;
      } catch (error) {
        if (failure !== undefined && error === failure) throw error;
        exhausted = true;
        outcome = wrapError(error);
        throw outcome;
      } finally {
        interrupt = undefined;
      }
      busy = false;
      if (step.done) {
        exhausted = true;
        return;
      }
      if (stats !== undefined) stats.items++;
      yield step.value;
    }
  } finally {
    stats?.ended(started, (outcome ?? failure)?.code);
    inFlight.delete(entry);
    stopWatching();
    if (!exhausted) {
      call.cancel(failure ?? new Error("the consumer stopped reading the stream"));
      const closing = busy ? undefined : source.return?.();
      if (isPromiseLike(closing)) await closing.then(undefined, () => undefined);
      else if (busy) closeLater(source);
    }
  }
}

/** A source stuck in `next()` is closed once it gets there; nobody waits for it. */
function closeLater(source: AnyIterator): void {
  queueMicrotask(() => {
    try {
      const closing = source.return?.();
      if (isPromiseLike(closing)) closing.then(undefined, () => undefined);
    } catch {
      // The source already failed; there is nothing left to close.
    }
  });
}

export function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === "object" || typeof value === "function") &&
    typeof (value as { then?: unknown }).then === "function"
  );
}
