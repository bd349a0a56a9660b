/**
 * Serving calls that arrive from the network, over HTTP or the channel. Every call runs as a
 * remote caller's, on this node only, so the remote access rules apply whatever the caller
 * claims, and a remote node can never make this node call a third one.
 */

import type { Caller, CallOptions, CancelSignal } from "../core/call.js";
import { CreditPump, MAX_CREDIT, STREAM_WINDOW, STREAM_WINDOW_BYTES } from "../core/credit.js";
import { type CallSite, callErrors, RequestError, type WireError, WireProblem } from "../errors.js";
import { MAX_ANSWER_BYTES, type PeerLimiter } from "./limits.js";
import type { PacketPipe } from "./transport.js";
import { readCall, type ServerPacket, type WireCall } from "./wire.js";

/** Sends one of the serving side's packets: typed, so each is one docs/protocol.md lists. */
function answer(pipe: PacketPipe, packet: ServerPacket): number {
  return pipe.send(packet);
}

/** The part of the dispatcher that serves calls; implemented by `Dispatcher`. */
export interface LocalCalls {
  execute(
    caller: Caller,
    plugin: string,
    method: string,
    args: unknown,
    options: CallOptions,
  ): Promise<unknown>;
  executeStream(
    caller: Caller,
    plugin: string,
    method: string,
    args: unknown,
    options: CallOptions,
  ): AsyncGenerator<unknown, void, undefined>;
  /** Hands a publish to this node's subscribers; returns how many took it. */
  notify(caller: Caller, topic: string, args: unknown): number;
  requestTopic(
    caller: Caller,
    topic: string,
    args: unknown,
    options: CallOptions,
  ): Promise<unknown>;
  requestTopicStream(
    caller: Caller,
    topic: string,
    args: unknown,
    options: CallOptions,
  ): AsyncGenerator<unknown, void, undefined>;
}

export function remoteCaller(call: WireCall, peerHost: string): Caller {
  const hostname = call.author_host ?? peerHost;
  return call.author === undefined
    ? { kind: "remote", hostname }
    : { kind: "remote", hostname, author: call.author };
}

export function callOptions(call: WireCall, signal: CancelSignal | undefined): CallOptions {
  const options: CallOptions = { host: "local" };
  if (call.plugin_uuid !== undefined) options.pluginUuid = call.plugin_uuid;
  if (call.timeout_ms !== undefined) options.timeout = call.timeout_ms;
  if (call.request_id !== undefined) options.requestId = call.request_id;
  if (signal) options.signal = signal;
  return options;
}

/** The `error` member to send for anything a served call ended with. */
export function wireErrorOf(error: unknown, call?: WireCall): WireError {
  if (error instanceof RequestError) return error.toJSON();
  if (error instanceof WireProblem) {
    return { code: error.code, message: error.message };
  }
  const site = { plugin: call?.plugin, method: call?.method, requestId: call?.request_id };
  return callErrors.pluginThrew(site, error).toJSON();
}

/**
 * Ends a served call when the peer cancels it or goes away. Not an AbortController: creating
 * its signal, and the listeners a call adds to it, cost microseconds per call; this is the part
 * of an AbortSignal a call uses. Every call removes the listener it added when it ends, in
 * place rather than by copying the list.
 */
export class Canceller implements CancelSignal {
  aborted = false;
  reason: unknown;
  #listeners: Array<() => void> | undefined;

  addEventListener(_type: "abort", listener: () => void): void {
    if (this.#listeners) this.#listeners.push(listener);
    else this.#listeners = [listener];
  }

  removeEventListener(_type: "abort", listener: () => void): void {
    const listeners = this.#listeners;
    const at = listeners?.indexOf(listener) ?? -1;
    if (at >= 0) listeners?.splice(at, 1);
  }

  abort(reason: unknown = new Error("the caller cancelled the call")): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listeners = this.#listeners;
    this.#listeners = undefined;
    for (const listener of listeners ?? []) listener();
  }
}

interface Active {
  controller: Canceller;
  stream?: StreamPump;
  /** Whose quota of calls in progress it counts against (see {@link callerKey}). */
  key: string;
  site: CallSite;
}

/**
 * Whose quota of calls in progress a call counts against: the calling node as it names itself
 * (`author_host`) at the address it calls from, so two nodes behind one NAT address each have
 * their own; the address alone for a caller that names no node (curl, the command line).
 */
export function callerKey(address: string, call: WireCall): string {
  return call.author_host === undefined ? address : `${address} ${call.author_host}`;
}

/** Answers this node has not been able to write to a peer beyond which it takes no more calls from it. */
const UNREAD_ANSWERS_BYTES = 16 * 1024 * 1024;

/** One peer's channel, seen from the serving side. */
export class ChannelSession {
  readonly #channel: PacketPipe;
  readonly #calls: LocalCalls;
  readonly #peerHost: string;
  readonly #limiter: PeerLimiter;
  readonly #active = new Map<number, Active>();
  #leaving = false;
  /**
   * The quota key of the last call and the `author_host` it was made for: a peer's calls name
   * the same node, and the same string each time is hashed once by the limiter's map.
   */
  #lastAuthorHost: string | undefined;
  #lastKey: string | undefined;

  constructor(channel: PacketPipe, calls: LocalCalls, peerHost: string, limiter: PeerLimiter) {
    this.#channel = channel;
    this.#calls = calls;
    this.#peerHost = peerHost;
    this.#limiter = limiter;
  }

  get inFlight(): number {
    return this.#active.size;
  }

  receive(packet: unknown): void {
    if (typeof packet !== "object" || packet === null) return;
    const record = packet as { t?: unknown; id?: unknown; n?: unknown };
    const id = record.id;
    if (typeof id !== "number" || !Number.isSafeInteger(id)) return;
    switch (record.t) {
      case "call":
        this.#call(id, packet);
        return;
      case "open":
        this.#open(id, packet);
        return;
      case "notify":
        this.#notify(id, packet);
        return;
      case "credit":
        if (typeof record.n === "number" && record.n > 0)
          this.#active.get(id)?.stream?.grant(record.n);
        return;
      case "cancel": {
        const active = this.#active.get(id);
        active?.controller.abort();
        active?.stream?.stop();
        return;
      }
      default:
        return;
    }
  }

  #begin(id: number, packet: unknown): { call: WireCall; active: Active } | undefined {
    if (this.#leaving) {
      answer(this.#channel, { t: "refused", id });
      return undefined;
    }
    let call: WireCall;
    try {
      call = readCall(packet);
    } catch (error) {
      answer(this.#channel, { t: "error", id, error: wireErrorOf(error) });
      return undefined;
    }
    const site = { plugin: call.plugin, method: call.method, requestId: call.request_id };
    // A peer that does not read its answers gets no more calls run: they would pile up here.
    if (this.#channel.buffered > UNREAD_ANSWERS_BYTES) {
      const error = callErrors.unreadAnswers(site, this.#channel.buffered);
      answer(this.#channel, { t: "error", id, error: error.toJSON() });
      return undefined;
    }
    if (this.#lastKey === undefined || call.author_host !== this.#lastAuthorHost) {
      this.#lastAuthorHost = call.author_host;
      this.#lastKey = callerKey(this.#peerHost, call);
    }
    const key = this.#lastKey;
    if (!this.#limiter.acquire(key)) {
      const error = callErrors.overloaded(site, this.#limiter.max);
      answer(this.#channel, { t: "error", id, error: error.toJSON() });
      return undefined;
    }
    if (this.#active.has(id)) {
      this.#limiter.release(key);
      answer(this.#channel, {
        t: "error",
        id,
        error: {
          code: "BAD_REQUEST",
          message: `request id ${id} is already in use on this channel`,
        },
      });
      return undefined;
    }
    const active: Active = { controller: new Canceller(), key, site };
    this.#active.set(id, active);
    return { call, active };
  }

  #call(id: number, packet: unknown): void {
    const begun = this.#begin(id, packet);
    if (!begun) return;
    const { call, active } = begun;
    const caller = remoteCaller(call, this.#peerHost);
    const options = callOptions(call, active.controller);
    const running =
      call.topic === undefined
        ? this.#calls.execute(caller, call.plugin, call.method, call.args, options)
        : this.#calls.requestTopic(caller, call.topic, call.args, options);
    // The call's slot is freed in the same turn as its answer is queued, not on a later
    // microtask: with `.finally`, that turn came between the answer and the NATS client's flush.
    running.then(
      (value) => {
        try {
          if (answer(this.#channel, { t: "result", id, value }) < 0) {
            const error = callErrors.tooLarge(
              { plugin: call.plugin, method: call.method, requestId: call.request_id },
              MAX_ANSWER_BYTES,
            );
            answer(this.#channel, { t: "error", id, error: error.toJSON() });
          }
        } finally {
          this.#finish(id);
        }
      },
      (error: unknown) => {
        try {
          answer(this.#channel, { t: "error", id, error: wireErrorOf(error, call) });
        } finally {
          this.#finish(id);
        }
      },
    );
  }

  #finish(id: number): void {
    const active = this.#active.get(id);
    if (!active) return;
    this.#active.delete(id);
    this.#limiter.release(active.key);
  }

  #open(id: number, packet: unknown): void {
    const begun = this.#begin(id, packet);
    if (!begun) return;
    const { call, active } = begun;
    const credit = (packet as { credit?: unknown }).credit;
    const caller = remoteCaller(call, this.#peerHost);
    const options = callOptions(call, active.controller);
    const source =
      call.topic === undefined
        ? this.#calls.executeStream(caller, call.plugin, call.method, call.args, options)
        : this.#calls.requestTopicStream(caller, call.topic, call.args, options);
    active.stream = new StreamPump(
      id,
      source,
      this.#channel,
      typeof credit === "number" && credit > 0 ? Math.min(credit, MAX_CREDIT) : STREAM_WINDOW,
      call,
    );
    active.stream.run().finally(() => this.#finish(id));
  }

  /** A publish from the peer: answered with how many of this node's subscribers took it. */
  #notify(id: number, packet: unknown): void {
    const begun = this.#begin(id, packet);
    if (!begun) return;
    const { call } = begun;
    try {
      if (call.topic === undefined) {
        throw new WireProblem("BAD_REQUEST", `a "notify" packet needs a "topic"`);
      }
      const count = this.#calls.notify(remoteCaller(call, this.#peerHost), call.topic, call.args);
      answer(this.#channel, { t: "result", id, value: count });
    } catch (error) {
      answer(this.#channel, { t: "error", id, error: wireErrorOf(error, call) });
    } finally {
      this.#finish(id);
    }
  }

  /**
   * This node is shutting down: tells the peer, so it sends new calls elsewhere, and refuses
   * any that cross the notice on the way. Calls already running finish.
   */
  leave(): void {
    this.#leaving = true;
    answer(this.#channel, { t: "leaving" });
  }

  /**
   * Closes the channel after writing what is queued on it (this node is closing). A call still
   * running now outlived the drain: it is stopped and fails with NETWORK, as it may have run.
   * The last packet, `closed`, tells the peer that every other call it sent is unanswered
   * because it never ran: calls that crossed the close on the wire, which could not be answered
   * `refused` any more, go to another node instead of failing.
   */
  shutdown(code: number, reason: string): void {
    this.#leaving = true;
    for (const [id, active] of this.#active) {
      active.controller.abort();
      active.stream?.stop();
      answer(this.#channel, {
        t: "error",
        id,
        error: callErrors.closedWhileRunning(active.site).toJSON(),
      });
    }
    answer(this.#channel, { t: "closed" });
    this.#channel.close(code, reason);
  }

  /** The peer is gone: end everything it started. */
  ended(): void {
    for (const active of this.#active.values()) {
      active.controller.abort();
      active.stream?.stop();
    }
  }
}

/** Items of one stream leave in packets of about this many bytes. */
const BATCH_BYTES = 64 * 1024;
/** A stream waits while its channel holds more than this not yet written to the socket… */
const HIGH_WATER_BYTES = 1024 * 1024;
/** …until it is down to this. */
const LOW_WATER_BYTES = 256 * 1024;

/**
 * Sends a stream's items as the consumer grants credit. Items produced in one turn of the
 * event loop leave as one packet (of about {@link BATCH_BYTES} at most). Nothing is read from
 * the source without credit, nor while the consumer has {@link STREAM_WINDOW_BYTES} of items it
 * has not read, nor while the channel's socket has more than {@link HIGH_WATER_BYTES} it could
 * not write: a consumer that grants credit without reading its socket stalls the generator
 * instead of filling this node's memory, and neither side buffers more than a window.
 */
class StreamPump extends CreditPump {
  readonly #id: number;
  readonly #channel: PacketPipe;
  readonly #call: WireCall;
  /** The items waiting to leave, each as JSON. */
  #batch: string[] = [];
  #batchBytes = 0;
  /** The size of each item sent and not yet read (credit tells which were read), oldest first. */
  #unread: number[] = [];
  #unreadFrom = 0;
  #unreadBytes = 0;
  #oversized = false;

  constructor(
    id: number,
    source: AsyncGenerator<unknown, void, undefined>,
    channel: PacketPipe,
    credit: number,
    call: WireCall,
  ) {
    super(source, credit, MAX_CREDIT);
    this.#id = id;
    this.#channel = channel;
    this.#call = call;
  }

  /** The items read no longer count against {@link STREAM_WINDOW_BYTES}. */
  protected override read(n: number): void {
    for (let i = 0; i < n && this.#unreadFrom < this.#unread.length; i++) {
      this.#unreadBytes -= this.#unread[this.#unreadFrom++] as number;
    }
    if (this.#unreadFrom > 1024) {
      this.#unread = this.#unread.slice(this.#unreadFrom);
      this.#unreadFrom = 0;
    }
  }

  protected override full(): boolean {
    return this.#unreadBytes + this.#batchBytes >= STREAM_WINDOW_BYTES;
  }

  protected override gone(): boolean {
    return !this.#channel.open;
  }

  protected override congested(): boolean {
    return this.#channel.buffered > HIGH_WATER_BYTES;
  }

  protected override drained(): Promise<void> {
    return this.#channel.whenDrained(LOW_WATER_BYTES);
  }

  protected override send(item: unknown): void {
    const text = JSON.stringify(item) ?? "null";
    if (this.#batch.length === 0) setImmediate(this.#emit);
    this.#batch.push(text);
    this.#batchBytes += text.length;
    if (this.#batchBytes >= BATCH_BYTES) this.#emit();
  }

  protected override flush(): void {
    this.#emit();
  }

  #emit = (): void => {
    if (this.#batch.length === 0) return;
    const items = this.#batch;
    const bytes = this.#batchBytes;
    this.#batch = [];
    this.#batchBytes = 0;
    const packet = (list: string[]) => `{"t":"items","id":${this.#id},"items":[${list.join(",")}]}`;
    if (this.#channel.sendJson(packet(items)) >= 0) {
      for (const item of items) this.#unread.push(item.length);
      this.#unreadBytes += bytes;
      return;
    }
    // Too large together: one by one, and an item too large on its own ends the stream.
    for (const item of items) {
      if (this.#channel.sendJson(packet([item])) < 0) {
        this.#oversized = true;
        this.stop();
        return;
      }
      this.#unread.push(item.length);
      this.#unreadBytes += item.length;
    }
  };

  protected override end(): void {
    answer(this.#channel, { t: "end", id: this.#id });
  }

  protected override sourceClosed(): void {
    if (!this.#oversized) return;
    const call = this.#call;
    const site = { plugin: call.plugin, method: call.method, requestId: call.request_id };
    const error = callErrors.tooLarge(site, MAX_ANSWER_BYTES).toJSON();
    answer(this.#channel, { t: "error", id: this.#id, error });
  }

  protected override fail(error: unknown): void {
    if (this.stopped) return;
    this.#emit();
    answer(this.#channel, { t: "error", id: this.#id, error: wireErrorOf(error, this.#call) });
  }
}
