/**
 * One call in flight: who made it, what it targets, its deadline, and the ways it can end
 * early (timeout, abort, its plugin being unloaded). Nothing here knows where the plugin runs.
 */
import { type CallSite, callErrors, type RequestError } from "../errors.js";
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
  readonly #deadline: number | undefined;
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
    this.#deadline =
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
    return this.#deadline === undefined
      ? undefined
      : Math.max(0, this.#deadline - performance.now());
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

/** Something in flight that can be ended from outside. */
export interface Cancellable {
  fail(error: RequestError): void;
}

/** The calls in flight on one plugin, so unloading can wait for them, then end the rest. */
export class InFlight {
  readonly #active = new Set<Cancellable>();
  #whenIdle: Array<() => void> = [];

  get size(): number {
    return this.#active.size;
  }

  add(entry: Cancellable): void {
    this.#active.add(entry);
  }

  delete(entry: Cancellable): void {
    if (this.#active.delete(entry) && this.#active.size === 0 && this.#whenIdle.length > 0) {
      const waiting = this.#whenIdle;
      this.#whenIdle = [];
      for (const resolve of waiting) resolve();
    }
  }

  /** Waits until nothing is in flight or `ms` pass; resolves to how many are still running. */
  drain(ms: number): Promise<number> {
    if (this.#active.size === 0) return Promise.resolve(0);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(this.#active.size), ms);
      this.#whenIdle.push(() => {
        clearTimeout(timer);
        resolve(0);
      });
    });
  }

  failAll(makeError: () => RequestError): void {
    for (const entry of [...this.#active]) entry.fail(makeError());
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
  const ms = call.remaining();
  // Beyond what a timer can hold (about 24.8 days) a deadline cannot pass during this run.
  const timer =
    ms === undefined || ms > MAX_TIMER_MS
      ? undefined
      : setTimeout(() => end(callErrors.timeout(call, call.timeout ?? ms)), ms);
  const onAbort = () => end(callErrors.aborted(call, signal?.reason));
  signal?.addEventListener("abort", onAbort, { once: true });
  return () => {
    if (timer !== undefined) clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  };
}

function noop(): void {}

/** The longest delay setTimeout takes; longer ones fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

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
 * first. The plugin's own error is turned into a `RequestError` by `wrapError`.
 */
export function trackPromise(
  inFlight: InFlight,
  call: Call,
  work: PromiseLike<unknown>,
  wrapError: (error: unknown) => RequestError,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let done = false;
    let stopWatching: (() => void) | undefined;
    const end = (error: RequestError) => {
      call.cancel(error);
      finish(error, undefined);
    };
    const entry: Cancellable = { fail: end };
    function finish(error: RequestError | undefined, value: unknown): void {
      if (done) return;
      done = true;
      inFlight.delete(entry);
      stopWatching?.();
      if (error) reject(error);
      else resolve(value);
    }
    inFlight.add(entry);
    stopWatching = watchBounds(call, end);
    work.then(
      (value) => finish(undefined, value),
      (error: unknown) => finish(wrapError(error), undefined),
    );
  });
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
): AsyncGenerator<unknown, void, undefined> {
  let failure: RequestError | undefined;
  let interrupt: ((error: RequestError) => void) | undefined;
  const entry: Cancellable = {
    fail(error) {
      failure ??= error;
      call.cancel(error);
      interrupt?.(error);
    },
  };
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
        throw wrapError(error);
      } finally {
        interrupt = undefined;
      }
      busy = false;
      if (step.done) {
        exhausted = true;
        return;
      }
      yield step.value;
    }
  } finally {
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
