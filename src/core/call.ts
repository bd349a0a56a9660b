/**
 * One call in flight: who made it, what it targets, its deadline, and the ways it can end
 * early (timeout, abort, its plugin being unloaded). Nothing here knows where the plugin runs.
 */
import { type CallSite, callErrors, type RequestError } from "../errors.js";
import type { ExecuteOptions } from "./types.js";

/** Who is calling; access rules depend on it. */
export type Caller =
  | { readonly kind: "application" }
  | { readonly kind: "plugin"; readonly name: string }
  | { readonly kind: "remote"; readonly hostname: string; readonly author?: string };

export const APPLICATION: Caller = { kind: "application" };

export class Call implements CallSite {
  readonly #idPrefix: string;
  readonly #seq: number;
  #requestId: string | undefined;
  readonly plugin: string;
  readonly method: string;
  readonly host: string | undefined;
  readonly pluginUuid: string | undefined;
  readonly caller: Caller;
  readonly timeout: number | undefined;
  readonly signal: AbortSignal | undefined;

  constructor(
    idPrefix: string,
    seq: number,
    plugin: string,
    method: string,
    caller: Caller,
    options: ExecuteOptions | undefined,
  ) {
    this.#idPrefix = idPrefix;
    this.#seq = seq;
    this.plugin = plugin;
    this.method = method;
    this.caller = caller;
    this.host = options?.host;
    this.pluginUuid = options?.pluginUuid;
    this.timeout = options?.timeout;
    this.signal = options?.signal;
  }

  /** Formatted on first use: most calls never need it. */
  get requestId(): string {
    this.#requestId ??= `${this.#idPrefix}${this.#seq.toString(36)}`;
    return this.#requestId;
  }

  /** Whether anything besides the plugin itself can end this call. */
  get bounded(): boolean {
    return this.timeout !== undefined || this.signal !== undefined;
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

function validTimeout(call: Call): number | undefined {
  const ms = call.timeout;
  if (ms === undefined) return undefined;
  return Number.isFinite(ms) && ms >= 0 ? ms : undefined;
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
    let timer: ReturnType<typeof setTimeout> | undefined;
    const signal = call.signal;
    const entry: Cancellable = { fail: (error) => finish(error, undefined) };
    const onAbort = () => finish(callErrors.aborted(call, signal?.reason), undefined);
    let done = false;
    function finish(error: RequestError | undefined, value: unknown): void {
      if (done) return;
      done = true;
      inFlight.delete(entry);
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      if (error) reject(error);
      else resolve(value);
    }
    inFlight.add(entry);
    if (call.bounded) {
      const ms = validTimeout(call);
      if (ms !== undefined)
        timer = setTimeout(() => finish(callErrors.timeout(call, ms), undefined), ms);
      signal?.addEventListener("abort", onAbort, { once: true });
    }
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
      interrupt?.(error);
    },
  };
  const signal = call.signal;
  const onAbort = () => entry.fail(callErrors.aborted(call, signal?.reason));
  let timer: ReturnType<typeof setTimeout> | undefined;
  inFlight.add(entry);
  if (call.bounded) {
    const ms = validTimeout(call);
    if (ms !== undefined) timer = setTimeout(() => entry.fail(callErrors.timeout(call, ms)), ms);
    if (signal?.aborted) onAbort();
    else signal?.addEventListener("abort", onAbort, { once: true });
  }

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
    if (timer !== undefined) clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    if (!exhausted) {
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
