/**
 * Blocking on another thread's answer: the calling thread posts a request on a MessagePort and
 * sleeps in `Atomics.wait` until the serving thread writes the answer and wakes it. The
 * answer is read with `receiveMessageOnPort`, so the caller's event loop never runs while it
 * waits (the technique synckit uses).
 */
import { availableParallelism } from "node:os";
import { MessageChannel, type MessagePort, receiveMessageOnPort } from "node:worker_threads";
import { BlockingTimeout } from "../errors.js";

/** Posted to the serving side: a request and where to wake the caller. */
export interface BlockingRequest<T> {
  id: number;
  request: T;
}

/** Posted back: exactly one of `value` or `error`. */
export interface BlockingAnswer {
  id: number;
  value?: unknown;
  error?: unknown;
}

/** Where requests are posted: a MessagePort, or a Worker from the parent's side. */
export type RequestPort = Pick<MessagePort, "postMessage">;

/**
 * How long a caller polls the flag before it sleeps. Waking a sleeping thread on another CPU
 * costs tens of µs on a VM (the raw round trip measured 56 µs there, 3 µs with this poll);
 * a quick answer comes within the poll, and a slow call wastes at most this much CPU. With a
 * single CPU the poll would only keep the answering thread off it: sleep at once.
 */
const POLL_MS = availableParallelism() > 1 ? 0.05 : 0;

/** Polls `flag[0]` until it is not 0 or `ms` pass; whether it turned. */
function pollFlag(flag: Int32Array, ms: number): boolean {
  const until = performance.now() + ms;
  do {
    if (Atomics.load(flag, 0) !== 0) return true;
  } while (performance.now() < until);
  return false;
}

/** The waiting side. One request at a time: a thread that is blocked cannot send another. */
export class BlockingClient<T> {
  readonly #port: RequestPort;
  readonly #answers: MessagePort;
  readonly #flag = new Int32Array(new SharedArrayBuffer(4));
  #seq = 0;

  constructor(port: RequestPort) {
    this.#port = port;
    const { port1, port2 } = new MessageChannel();
    this.#answers = port1;
    // The serving side answers on port2; this side only ever reads port1 synchronously.
    this.#port.postMessage({ answers: port2, flag: this.#flag }, [port2]);
    this.#answers.unref();
  }

  /**
   * Sends `request` and blocks until the answer arrives or `timeoutMs` pass. Throws
   * `BlockingTimeout` on time-out; rethrows what the serving side sent as `error`.
   */
  call(request: T, timeoutMs = Number.POSITIVE_INFINITY): unknown {
    const id = ++this.#seq;
    Atomics.store(this.#flag, 0, 0);
    this.#port.postMessage({ id, request } satisfies BlockingRequest<T>);
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0) throw new BlockingTimeout("no answer in time");
      if (!pollFlag(this.#flag, Math.min(POLL_MS, left)))
        Atomics.wait(this.#flag, 0, 0, Number.isFinite(left) ? left : undefined);
      Atomics.store(this.#flag, 0, 0);
      let message = receiveMessageOnPort(this.#answers);
      while (message) {
        const answer = message.message as BlockingAnswer;
        // A late answer to an earlier request that timed out is dropped.
        if (answer.id === id) {
          if ("error" in answer) throw answer.error;
          return answer.value;
        }
        message = receiveMessageOnPort(this.#answers);
      }
    }
  }

  close(): void {
    this.#answers.close();
  }
}

/** Control of a serving side. */
export interface BlockingServer {
  /** Answers every request still being served with `error`: the serving thread is dying. */
  failPending(error: unknown): void;
}

/**
 * The serving side: receives requests on `port` and answers each, waking the caller. `serve`
 * may be async; the caller stays blocked until it settles.
 */
export function serveBlocking<T>(
  port: MessagePort,
  serve: (request: T) => unknown,
): BlockingServer {
  let answers: MessagePort | undefined;
  let flag: Int32Array | undefined;
  const pending = new Set<number>();
  const reply = (answer: BlockingAnswer) => {
    if (!pending.delete(answer.id)) return;
    answers?.postMessage(answer);
    if (flag) {
      Atomics.store(flag, 0, 1);
      Atomics.notify(flag, 0);
    }
  };
  port.on(
    "message",
    (message: { answers?: MessagePort; flag?: Int32Array } & Partial<BlockingRequest<T>>) => {
      if (message.answers) {
        answers = message.answers;
        flag = message.flag;
        return;
      }
      const { id, request } = message as BlockingRequest<T>;
      pending.add(id);
      Promise.resolve()
        .then(() => serve(request))
        .then(
          (value) => reply({ id, value }),
          (error: unknown) => reply({ id, error }),
        );
    },
  );
  return {
    failPending(error) {
      for (const id of [...pending]) reply({ id, error });
    },
  };
}

/** A blocking reader's step through a stream the serving side holds open. */
export interface StreamRequest {
  kind: "next" | "close";
  stream: number;
}

/** The answer to `next`. */
export interface StreamStep {
  done: boolean;
  value?: unknown;
}

/**
 * Reads, one blocking request per item, a stream that `ask(open)` opens on the serving side
 * (which answers the stream's id; see `BlockingStreams`). A reader that stops early closes the
 * stream there. `closeAfterError` must match the server's `forgetFailed`: a server that keeps a
 * failed stream open lets go of it only when the reader closes it.
 */
export function* readBlocking<R>(
  ask: (request: R | StreamRequest) => unknown,
  open: R,
  { closeAfterError }: { closeAfterError: boolean },
): Generator<unknown, void, undefined> {
  const stream = ask(open) as number;
  let finished = false;
  try {
    for (;;) {
      const step = ask({ kind: "next", stream }) as StreamStep;
      if (step.done) {
        finished = true;
        return;
      }
      yield step.value;
    }
  } catch (error) {
    finished = !closeAfterError;
    throw error;
  } finally {
    if (!finished) ask({ kind: "close", stream });
  }
}

/** The serving side of `readBlocking`: the streams open for blocking readers, by id. */
export class BlockingStreams {
  readonly #open = new Map<number, Iterator<unknown> | AsyncIterator<unknown>>();
  readonly #gone: () => unknown;
  readonly #forgetFailed: boolean;
  #seq = 0;

  /**
   * `gone()` is what a `next` on a stream that is not open throws. With `forgetFailed`, a
   * stream whose `next` threw is let go at once; without, when the reader closes it.
   */
  constructor({
    gone = () => new Error("the stream is closed"),
    forgetFailed = false,
  }: { gone?: () => unknown; forgetFailed?: boolean } = {}) {
    this.#gone = gone;
    this.#forgetFailed = forgetFailed;
  }

  /** Holds `source` open for a reader; the id the reader asks with. */
  open(source: Iterator<unknown> | AsyncIterator<unknown>): number {
    const id = ++this.#seq;
    this.#open.set(id, source);
    return id;
  }

  async serve(request: StreamRequest): Promise<StreamStep | undefined> {
    const source = this.#open.get(request.stream);
    if (request.kind === "close") {
      this.#open.delete(request.stream);
      await source?.return?.();
      return undefined;
    }
    if (!source) throw this.#gone();
    let step: IteratorResult<unknown>;
    try {
      step = await source.next();
    } catch (error) {
      if (this.#forgetFailed) this.#open.delete(request.stream);
      throw error;
    }
    if (step.done) this.#open.delete(request.stream);
    return { done: step.done === true, value: step.done ? undefined : step.value };
  }

  /** Closes every stream: their readers are gone. */
  closeAll(): void {
    for (const source of this.#open.values()) void source.return?.();
    this.#open.clear();
  }
}
