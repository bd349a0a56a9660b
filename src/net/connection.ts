/**
 * The calling side of the pipe to one remote node, whatever the transport: opens the pipe on
 * first use, pairs answers with calls, and tells apart a call that never left this node (safe
 * to send to another node) from one that may have run (never repeated). While open it pings the
 * node and gives up on a pipe that stays silent, so a call never waits on a dead connection.
 */
import { type Call, watchBounds } from "../core/call.js";
import { STREAM_WINDOW } from "../core/credit.js";
import { StreamInbox } from "../core/stream-inbox.js";
import { callErrors, NetworkRequestError, NotDelivered } from "../errors.js";
import type { Dial, PacketPipe } from "./transport.js";
import { type ClientPacket, errorFromWire, wireCall } from "./wire.js";

export interface ConnectionOptions {
  /** Opens the pipe (see transport.ts). */
  dial: Dial;
  /** The node's name, for messages. */
  hostname: string;
  /** Largest packet this side sends; a larger call fails with PAYLOAD_TOO_LARGE. */
  maxPacketBytes: number;
  /**
   * An open pipe is pinged every `intervalMs` it carries nothing, and dropped once it has been
   * silent for `silentMs` while `heard()` says the node is silent by other signs too (a node
   * whose main thread is busy still answers its heartbeats, and its calls end at their
   * deadlines).
   */
  keepalive: { intervalMs: number; silentMs: number; heard(): boolean };
  /** The pipe closed without this side closing it (the node went away, or was cut off). */
  onLost?: () => void;
  /** The keepalive gave up on the pipe: the node is silent. */
  onSilent?: () => void;
  onBadMessage?: (error: Error) => void;
  /** The node said it is shutting down. */
  onLeaving?: () => void;
}

interface PendingCall {
  kind: "call";
  call: Call;
  /** The pipe it was sent on. */
  pipe: PacketPipe;
  /** The packet's position on the pipe: later than `written` means it never left. */
  packet: number;
  resolve(value: unknown): void;
  reject(error: Error): void;
}

interface PendingStream {
  kind: "stream";
  call: Call;
  pipe: PacketPipe;
  packet: number;
  inbox: StreamInbox;
}

type Pending = PendingCall | PendingStream;

export class NodeConnection {
  readonly #options: ConnectionOptions;
  #pipe: PacketPipe | undefined;
  #connecting: Promise<PacketPipe> | undefined;
  readonly #pending = new Map<number, Pending>();
  /** Calls waiting for the pipe to open: in flight already, as routing counts them. */
  #connectingCalls = 0;
  #seq = 0;
  #closed = false;
  /** When the open pipe last received anything (monotonic ms). */
  #lastReceived = 0;
  #watchdog: ReturnType<typeof setInterval> | undefined;
  readonly #ended = new WeakSet<PacketPipe>();
  /** Pipes whose node said `closed`: nothing more sent on them runs. */
  readonly #emptied = new WeakSet<PacketPipe>();

  constructor(options: ConnectionOptions) {
    this.#options = options;
  }

  /** Calls and streams this node has open on the connection. */
  get inFlight(): number {
    return this.#pending.size + this.#connectingCalls;
  }

  get connected(): boolean {
    return this.#pipe?.open === true;
  }

  #connect(): Promise<PacketPipe> {
    if (this.#pipe?.open) return Promise.resolve(this.#pipe);
    if (this.#closed) return Promise.reject(new NotDelivered("the connection is closed"));
    if (this.#connecting) return this.#connecting;
    let opened: PacketPipe | undefined;
    this.#connecting = this.#options
      .dial({
        packet: (packet) => this.#receive(packet),
        heard: () => {
          this.#lastReceived = performance.now();
        },
        badMessage: (error) => this.#options.onBadMessage?.(error),
        closed: () => {
          if (!opened) return;
          if (this.#pipe === opened) this.#pipe = undefined;
          this.#lost(opened, true);
        },
      })
      .then(
        (pipe) => {
          this.#connecting = undefined;
          // Closed while it was opening: the pipe goes too, quietly.
          if (this.#closed) {
            pipe.close();
            throw new NotDelivered("the connection is closed");
          }
          opened = pipe;
          this.#pipe = pipe;
          this.#watch(pipe);
          return pipe;
        },
        (error: unknown) => {
          this.#connecting = undefined;
          throw error;
        },
      );
    return this.#connecting;
  }

  /**
   * While the pipe is open: a ping when it has been quiet for an interval, and the end of it
   * when it has been silent past the deadline and the node's heartbeats are silent too.
   */
  #watch(pipe: PacketPipe): void {
    const { intervalMs, silentMs, heard } = this.#options.keepalive;
    this.#lastReceived = performance.now();
    clearInterval(this.#watchdog);
    this.#watchdog = setInterval(
      () => {
        if (this.#pipe !== pipe) return;
        const quiet = performance.now() - this.#lastReceived;
        if (quiet >= silentMs && !heard()) {
          this.reset();
          this.#options.onSilent?.();
          return;
        }
        if (quiet >= intervalMs) pipe.ping();
      },
      Math.max(50, Math.min(intervalMs, silentMs / 2)),
    );
    this.#watchdog.unref();
  }

  /**
   * The connection dropped. A call whose packet never left may go to another node; one that
   * was sent may have run, so it fails with NETWORK and is not repeated.
   */
  #lost(pipe: PacketPipe, unexpected: boolean): void {
    // Once per pipe: this side's reset or close ends it before its socket says so.
    if (this.#ended.has(pipe)) return;
    this.#ended.add(pipe);
    // A pipe the node emptied may close after the next one opened, which has its own watchdog.
    if (this.#pipe === undefined) {
      clearInterval(this.#watchdog);
      this.#watchdog = undefined;
    }
    if (this.#emptied.has(pipe)) {
      this.#refuseAll(pipe);
      if (unexpected) this.#options.onLost?.();
      return;
    }
    for (const [id, pending] of this.#pending) {
      if (pending.pipe !== pipe) continue;
      this.#pending.delete(id);
      if (pending.packet > pipe.written) {
        this.#settle(
          pending,
          undefined,
          undefined,
          new NotDelivered(
            `the connection to ${this.#options.hostname} closed before the call was sent`,
          ),
        );
        continue;
      }
      const error = new NetworkRequestError(
        "NETWORK",
        `The connection to ${this.#options.hostname} closed while ${pending.call.plugin}.${pending.call.method} was running; it may have run there, so it is not repeated`,
        {
          requestId: pending.call.requestId,
          plugin: pending.call.plugin,
          method: pending.call.method,
          host: this.#options.hostname,
        },
      );
      this.#settle(pending, error);
    }
    if (unexpected) this.#options.onLost?.();
  }

  #settle(
    pending: Pending,
    error: Error | undefined,
    value?: unknown,
    notSent?: NotDelivered,
  ): void {
    const failure = notSent ?? error;
    if (pending.kind === "call") {
      if (failure) pending.reject(failure);
      else pending.resolve(value);
      return;
    }
    pending.inbox.end(failure);
  }

  #receive(packet: unknown): void {
    if (typeof packet !== "object" || packet === null) return;
    const record = packet as {
      t?: unknown;
      id?: unknown;
      value?: unknown;
      error?: unknown;
      items?: unknown;
    };
    if (record.t === "leaving") {
      this.#options.onLeaving?.();
      return;
    }
    if (record.t === "closed") {
      this.#drained();
      return;
    }
    if (typeof record.id !== "number") return;
    const pending = this.#pending.get(record.id);
    if (!pending) return;
    switch (record.t) {
      case "result":
        this.#pending.delete(record.id);
        this.#settle(pending, undefined, record.value);
        return;
      case "error":
        this.#pending.delete(record.id);
        this.#settle(pending, errorFromWire(record.error, this.#options.hostname));
        return;
      case "items":
        if (pending.kind === "stream" && Array.isArray(record.items)) {
          pending.inbox.push(record.items);
        }
        return;
      case "end":
        this.#pending.delete(record.id);
        this.#settle(pending, undefined);
        return;
      case "refused":
        this.#pending.delete(record.id);
        this.#settle(
          pending,
          undefined,
          undefined,
          new NotDelivered(
            `${this.#options.hostname} is shutting down; the call was not run there`,
          ),
        );
        return;
      default:
        return;
    }
  }

  /**
   * The node answered every call it ran on the open pipe and closes it next: whatever is still
   * unanswered, or sent before the pipe is gone, never ran there and may go to another node.
   */
  #drained(): void {
    const pipe = this.#pipe;
    if (!pipe) return;
    this.#emptied.add(pipe);
    this.#pipe = undefined;
    this.#refuseAll(pipe);
  }

  #refuseAll(pipe: PacketPipe): void {
    for (const [id, pending] of this.#pending) {
      if (pending.pipe !== pipe) continue;
      this.#pending.delete(id);
      this.#settle(
        pending,
        undefined,
        undefined,
        new NotDelivered(`${this.#options.hostname} is shutting down; the call was not run there`),
      );
    }
  }

  /** Opens the pipe, counting the call as in flight meanwhile so routing sees it. */
  async #pipeFor(): Promise<PacketPipe> {
    this.#connectingCalls++;
    try {
      return await this.#connect();
    } finally {
      this.#connectingCalls--;
    }
  }

  /** A packet too large to send fails its call here rather than the whole connection. */
  #tooLarge(call: Call): Error {
    return callErrors.tooLarge(call, this.#options.maxPacketBytes);
  }

  /** Runs a function endpoint on the node. Rejects with `NotDelivered` if it never left. */
  execute(call: Call, args: unknown, authorHost: string): Promise<unknown> {
    const open = this.#pipe;
    if (open?.open) return this.#executeOn(open, call, args, authorHost, "call");
    return this.#pipeFor().then((pipe) => this.#executeOn(pipe, call, args, authorHost, "call"));
  }

  /**
   * Hands a publish to the node (`call` names the topic as its method); resolves to how many
   * of its subscribers took it. Rejects with `NotDelivered` if it never left.
   */
  notify(call: Call, args: unknown, authorHost: string): Promise<number> {
    const open = this.#pipe;
    if (open?.open)
      return this.#executeOn(open, call, args, authorHost, "notify") as Promise<number>;
    return this.#pipeFor().then(
      (pipe) => this.#executeOn(pipe, call, args, authorHost, "notify") as Promise<number>,
    );
  }

  #executeOn(
    pipe: PacketPipe,
    call: Call,
    args: unknown,
    authorHost: string,
    kind: "call" | "notify",
  ): Promise<unknown> {
    const id = ++this.#seq;
    // The packet is the object wireCall made, not a copy spread into a new one.
    const packet = wireCall(call, args, authorHost) as ClientPacket;
    packet.t = kind;
    packet.id = id;
    return new Promise((resolve, reject) => {
      const pending: PendingCall = {
        kind: "call",
        call,
        pipe,
        packet: 0,
        resolve: (value) => {
          stop();
          resolve(value);
        },
        reject: (error) => {
          stop();
          reject(error);
        },
      };
      this.#pending.set(id, pending);
      const stop = watchBounds(call, (error) => {
        if (!this.#pending.delete(id)) return;
        if (pending.packet > 0) pipe.send({ t: "cancel", id });
        reject(error);
      });
      // Already aborted, or a deadline already passed: it ended before anything was sent.
      if (!this.#pending.has(id)) return;
      pending.packet = pipe.send(packet);
      if (pending.packet <= 0) {
        this.#pending.delete(id);
        stop();
        reject(
          pending.packet < 0
            ? this.#tooLarge(call)
            : new NotDelivered(`the connection to ${this.#options.hostname} closed`),
        );
      }
    });
  }

  /**
   * Consumes a generator endpoint on the node. Credit keeps at most one window of items
   * between the two sides; a consumer that stops early cancels the source.
   */
  async *stream(
    call: Call,
    args: unknown,
    authorHost: string,
  ): AsyncGenerator<unknown, void, undefined> {
    const pipe = await this.#pipeFor();
    const id = ++this.#seq;
    const state: PendingStream = {
      kind: "stream",
      call,
      pipe,
      packet: 0,
      inbox: new StreamInbox(STREAM_WINDOW, (n) => pipe.send({ t: "credit", id, n })),
    };
    this.#pending.set(id, state);
    let endedEarly: Error | undefined;
    const stop = watchBounds(call, (error) => {
      if (!this.#pending.delete(id)) return;
      if (state.packet > 0) pipe.send({ t: "cancel", id });
      endedEarly = error;
      this.#settle(state, error);
    });
    // Already aborted, or a deadline already passed: it ended before anything was sent.
    if (endedEarly) {
      stop();
      throw endedEarly;
    }
    state.packet = pipe.send({
      t: "open",
      id,
      credit: STREAM_WINDOW,
      ...wireCall(call, args, authorHost),
    });
    if (state.packet <= 0) {
      this.#pending.delete(id);
      stop();
      throw state.packet < 0
        ? this.#tooLarge(call)
        : new NotDelivered(`the connection to ${this.#options.hostname} closed`);
    }
    try {
      yield* state.inbox.items();
    } finally {
      stop();
      if (this.#pending.delete(id)) pipe.send({ t: "cancel", id });
    }
  }

  /** Opens the pipe if it is not open: proof that the node can be reached and called. */
  async open(): Promise<void> {
    await this.#connect();
  }

  /**
   * Drops the pipe at once, without a word to the node, which may be unreachable: every
   * call sent on it fails with NETWORK (it may have run), every call not yet sent may go to
   * another node. The next call opens a new pipe.
   */
  reset(): void {
    const pipe = this.#pipe;
    if (!pipe) return;
    this.#pipe = undefined;
    pipe.terminate();
    this.#lost(pipe, false);
  }

  /** Closes the pipe for good, after writing what is queued on it. */
  close(): void {
    this.#closed = true;
    const pipe = this.#pipe;
    this.#pipe = undefined;
    if (!pipe) return;
    pipe.close();
    this.#lost(pipe, false);
  }
}
