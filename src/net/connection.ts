/**
 * The calling side of the channel to one remote node: opens the WebSocket on first use, pairs
 * answers with calls, and tells apart a call that never left this node (safe to send to
 * another node) from one that may have run (never repeated). While open it pings the node and
 * gives up on a channel that stays silent, so a call never waits on a dead connection.
 */
import WebSocket from "ws";
import { type Call, watchBounds } from "../core/call.js";
import { StreamInbox } from "../core/stream-inbox.js";
import { callErrors, NetworkRequestError } from "../errors.js";
import {
  ChannelSigner,
  HEADER_ANSWER,
  HEADER_NONCE,
  type PeerIdentity,
  sameMac,
  sessionKey,
  signAnswer,
  signRequest,
} from "./auth.js";
import { PacketChannel } from "./channel.js";
import { STREAM_WINDOW } from "./serve.js";
import { connectVerified, type PeerTls } from "./tls.js";
import { type ClientPacket, errorFromWire, wireCall } from "./wire.js";

/** The call never reached the node; the router may try another one. */
export class NotDelivered extends Error {}

export interface ConnectionOptions {
  /** `ws://host:port/aio/channel` or `wss://…`. */
  url: string;
  hostname: string;
  maxDepth: number;
  /** Largest packet this side sends; a larger call fails with PAYLOAD_TOO_LARGE. */
  maxPacketBytes: number;
  /** Shared secret: the handshake is signed, and every message after it. */
  secret: string;
  /** The run of the node the handshake is signed for, and its clock. */
  identity(): PeerIdentity;
  /** How to verify the node's certificate, for wss:// URLs. */
  tls: PeerTls;
  connectTimeoutMs: number;
  /**
   * An open channel is pinged every `intervalMs` it carries nothing, and closed once it has
   * been silent for `silentMs` while `heard()` says the node's heartbeats are silent too (a node
   * whose main thread is busy still answers those, and its calls end at their deadlines).
   */
  keepalive: { intervalMs: number; silentMs: number; heard(): boolean };
  /** The channel closed without this side closing it (the node went away, or was cut off). */
  onLost?: () => void;
  /** The keepalive gave up on the channel: the node is silent. */
  onSilent?: () => void;
  /** A connection attempt was refused: nothing listens at the node's address. */
  onRefused?: () => void;
  /** The node refused the handshake's credentials (a wrong secret, or a restarted node). */
  onUnauthorized?: () => void;
  onBadMessage?: (error: Error) => void;
  /** The node said it is shutting down. */
  onLeaving?: () => void;
}

interface PendingCall {
  kind: "call";
  call: Call;
  /** The packet's position on the channel: later than `written` means it never left. */
  packet: number;
  resolve(value: unknown): void;
  reject(error: Error): void;
}

interface PendingStream {
  kind: "stream";
  call: Call;
  packet: number;
  inbox: StreamInbox;
}

type Pending = PendingCall | PendingStream;

export class NodeConnection {
  readonly #options: ConnectionOptions;
  #channel: PacketChannel | undefined;
  #connecting: Promise<PacketChannel> | undefined;
  readonly #pending = new Map<number, Pending>();
  /** Calls waiting for the channel to open: in flight already, as routing counts them. */
  #connectingCalls = 0;
  #seq = 0;
  #closed = false;
  /** When the open channel last received anything (monotonic ms). */
  #lastReceived = 0;
  #watchdog: ReturnType<typeof setInterval> | undefined;
  readonly #ended = new WeakSet<PacketChannel>();

  constructor(options: ConnectionOptions) {
    this.#options = options;
  }

  /** Calls and streams this node has open on the connection. */
  get inFlight(): number {
    return this.#pending.size + this.#connectingCalls;
  }

  get connected(): boolean {
    return this.#channel?.open === true;
  }

  #connect(): Promise<PacketChannel> {
    if (this.#channel?.open) return Promise.resolve(this.#channel);
    if (this.#closed) return Promise.reject(new NotDelivered("the connection is closed"));
    this.#connecting ??= new Promise<PacketChannel>((resolve, reject) => {
      const secret = this.#options.secret;
      const { pathname } = new URL(this.#options.url);
      const signed = secret
        ? signRequest(secret, "GET", this.#options.identity(), pathname, "")
        : undefined;
      const socket = new WebSocket(this.#options.url, {
        perMessageDeflate: false,
        handshakeTimeout: this.#options.connectTimeoutMs,
        ...(signed ? { headers: { ...signed } } : {}),
        ...(this.#options.tls.enabled
          ? {
              createConnection: ((options: { host?: string; port?: number; servername?: string }) =>
                connectVerified(
                  this.#options.tls,
                  { host: options.host, port: options.port, servername: options.servername },
                  () => undefined,
                )) as unknown as WebSocket.ClientOptions["createConnection"],
            }
          : {}),
      });
      const channel = new PacketChannel(socket, {
        maxDepth: this.#options.maxDepth,
        maxPacketBytes: this.#options.maxPacketBytes,
        onPacket: (packet) => this.#receive(packet),
        onBadMessage: (error) => {
          this.#options.onBadMessage?.(error);
          socket.terminate();
        },
      });
      let opened = false;
      let refused = false;
      // The node must prove it knows the secret too; then both derive the session key.
      socket.once("upgrade", (response) => {
        if (!secret || !signed) return;
        const serverNonce = response.headers[HEADER_NONCE];
        const answer = response.headers[HEADER_ANSWER];
        const expected =
          typeof serverNonce === "string"
            ? signAnswer(secret, signed[HEADER_NONCE], serverNonce)
            : "";
        if (
          typeof answer !== "string" ||
          typeof serverNonce !== "string" ||
          !sameMac(answer, expected)
        ) {
          refused = true;
          this.#connecting = undefined;
          reject(
            new NetworkRequestError(
              "UNAUTHORIZED",
              `${this.#options.hostname} did not prove that it knows the secret; the channel is closed`,
              { host: this.#options.hostname },
            ),
          );
          socket.terminate();
          return;
        }
        channel.sign(
          new ChannelSigner(sessionKey(secret, signed[HEADER_NONCE], serverNonce), "client"),
        );
      });
      socket.once("open", () => {
        if (refused) return;
        opened = true;
        this.#channel = channel;
        this.#connecting = undefined;
        this.#watch(channel);
        resolve(channel);
      });
      // Every error, also after opening: one left unheard would end the process.
      socket.on("error", (error) => {
        if (opened) return;
        this.#connecting = undefined;
        reject(new NotDelivered(`cannot connect to ${this.#options.hostname}: ${error.message}`));
        if ((error as { code?: unknown }).code === "ECONNREFUSED") this.#options.onRefused?.();
      });
      socket.once("unexpected-response", (_request, response) => {
        this.#connecting = undefined;
        const status = response.statusCode ?? 0;
        reject(
          new NotDelivered(
            status === 401
              ? `${this.#options.hostname} refused this node's credentials`
              : `${this.#options.hostname} refused the channel (HTTP ${status})`,
          ),
        );
        socket.terminate();
        if (status === 401) this.#options.onUnauthorized?.();
      });
      socket.on("pong", () => {
        this.#lastReceived = performance.now();
      });
      socket.once("close", () => {
        if (this.#channel === channel) this.#channel = undefined;
        if (opened) this.#lost(channel, true);
      });
    });
    return this.#connecting;
  }

  /**
   * While the channel is open: a ping when it has been quiet for an interval, and the end of it
   * when it has been silent past the deadline and the node's heartbeats are silent too.
   */
  #watch(channel: PacketChannel): void {
    const { intervalMs, silentMs, heard } = this.#options.keepalive;
    this.#lastReceived = performance.now();
    channel.socket.on("message", () => {
      this.#lastReceived = performance.now();
    });
    clearInterval(this.#watchdog);
    this.#watchdog = setInterval(
      () => {
        if (this.#channel !== channel) return;
        const quiet = performance.now() - this.#lastReceived;
        if (quiet >= silentMs && !heard()) {
          this.reset();
          this.#options.onSilent?.();
          return;
        }
        if (quiet >= intervalMs) channel.socket.ping();
      },
      Math.max(50, Math.min(intervalMs, silentMs / 2)),
    );
    this.#watchdog.unref();
  }

  /**
   * The connection dropped. A call whose packet never left may go to another node; one that
   * was sent may have run, so it fails with NETWORK and is not repeated.
   */
  #lost(channel: PacketChannel, unexpected: boolean): void {
    // Once per channel: this side's reset or close ends it before its socket says so.
    if (this.#ended.has(channel)) return;
    this.#ended.add(channel);
    clearInterval(this.#watchdog);
    this.#watchdog = undefined;
    for (const [id, pending] of this.#pending) {
      this.#pending.delete(id);
      if (pending.packet > channel.written) {
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

  /** Opens the channel, counting the call as in flight meanwhile so routing sees it. */
  async #channelFor(): Promise<PacketChannel> {
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
    const open = this.#channel;
    if (open?.open) return this.#executeOn(open, call, args, authorHost);
    return this.#channelFor().then((channel) => this.#executeOn(channel, call, args, authorHost));
  }

  #executeOn(
    channel: PacketChannel,
    call: Call,
    args: unknown,
    authorHost: string,
  ): Promise<unknown> {
    const id = ++this.#seq;
    const packet: ClientPacket = { t: "call", id, ...wireCall(call, args, authorHost) };
    return new Promise((resolve, reject) => {
      const pending: PendingCall = {
        kind: "call",
        call,
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
        if (pending.packet > 0) channel.send({ t: "cancel", id });
        reject(error);
      });
      // Already aborted, or a deadline already passed: it ended before anything was sent.
      if (!this.#pending.has(id)) return;
      pending.packet = channel.send(packet);
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
    const channel = await this.#channelFor();
    const id = ++this.#seq;
    const state: PendingStream = {
      kind: "stream",
      call,
      packet: 0,
      inbox: new StreamInbox(STREAM_WINDOW, (n) => channel.send({ t: "credit", id, n })),
    };
    this.#pending.set(id, state);
    let endedEarly: Error | undefined;
    const stop = watchBounds(call, (error) => {
      if (!this.#pending.delete(id)) return;
      if (state.packet > 0) channel.send({ t: "cancel", id });
      endedEarly = error;
      this.#settle(state, error);
    });
    // Already aborted, or a deadline already passed: it ended before anything was sent.
    if (endedEarly) {
      stop();
      throw endedEarly;
    }
    state.packet = channel.send({
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
      if (this.#pending.delete(id)) channel.send({ t: "cancel", id });
    }
  }

  /** Opens the channel if it is not open: proof that the node can be reached and called. */
  async open(): Promise<void> {
    await this.#connect();
  }

  /**
   * Drops the channel at once, without a word to the node, which may be unreachable: every
   * call sent on it fails with NETWORK (it may have run), every call not yet sent may go to
   * another node. The next call opens a new channel.
   */
  reset(): void {
    const channel = this.#channel;
    if (!channel) return;
    this.#channel = undefined;
    channel.socket.terminate();
    this.#lost(channel, false);
  }

  /** Closes the channel for good, after writing what is queued on it. */
  close(): void {
    this.#closed = true;
    const channel = this.#channel;
    this.#channel = undefined;
    if (!channel) return;
    channel.close();
    this.#lost(channel, false);
  }
}
