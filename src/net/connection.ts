/**
 * The calling side of the channel to one remote node: opens the WebSocket on first use, pairs
 * answers with calls, and tells apart a call that never left this node (safe to send to
 * another node) from one that may have run (never repeated).
 */
import WebSocket from "ws";
import { type Call, watchBounds } from "../core/call.js";
import { StreamInbox } from "../core/stream-inbox.js";
import { callErrors, NetworkRequestError } from "../errors.js";
import {
  ChannelSigner,
  HEADER_ANSWER,
  HEADER_NONCE,
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
  /** How to verify the node's certificate, for wss:// URLs. */
  tls: PeerTls;
  connectTimeoutMs: number;
  onClose?: () => void;
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
      const { host, pathname } = new URL(this.#options.url);
      const signed = secret ? signRequest(secret, "GET", host, pathname, "") : undefined;
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
        resolve(channel);
      });
      // Every error, also after opening: one left unheard would end the process.
      socket.on("error", (error) => {
        if (!opened) {
          this.#connecting = undefined;
          reject(new NotDelivered(`cannot connect to ${this.#options.hostname}: ${error.message}`));
        }
      });
      socket.once("unexpected-response", (_request, response) => {
        this.#connecting = undefined;
        const status = response.statusCode ?? 0;
        const reason =
          status === 401
            ? callErrors.unauthorizedBy(this.#options.hostname)
            : new NotDelivered(`${this.#options.hostname} refused the channel (HTTP ${status})`);
        reject(reason);
        socket.terminate();
      });
      socket.once("close", () => {
        if (this.#channel === channel) this.#channel = undefined;
        if (opened) this.#lost(channel);
      });
    });
    return this.#connecting;
  }

  /**
   * The connection dropped. A call whose packet never left may go to another node; one that
   * was sent may have run, so it fails with NETWORK and is not repeated.
   */
  #lost(channel: PacketChannel): void {
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
    this.#options.onClose?.();
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

  close(): void {
    this.#closed = true;
    const channel = this.#channel;
    this.#channel = undefined;
    if (channel) {
      channel.close();
      this.#lost(channel);
    }
  }
}
