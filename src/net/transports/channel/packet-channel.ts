/**
 * The channel's pipe (see ../../transport.ts): JSON packets over one WebSocket, several packets
 * per message under load.
 *
 * Packets produced during one turn of the event loop leave together, as one WebSocket message
 * holding a JSON array, so 64 answers cost one write instead of 64. A lone packet goes out as
 * a bare JSON object. Both sides decode both forms.
 */
import type { RawData, WebSocket } from "ws";
import type { ChannelSigner } from "../../auth.js";
import type { PacketPipe } from "../../transport.js";
import { parseJson } from "../../wire.js";

/** Above this many bytes queued, a batch goes out at once rather than at the end of the turn. */
export const FLUSH_BYTES = 256 * 1024;

export interface ChannelOptions {
  /** Deepest nesting accepted in a received packet. */
  maxDepth: number;
  /** Largest packet `send` accepts. */
  maxPacketBytes: number;
  onPacket(packet: unknown): void;
  /** A received message that is not valid JSON, or is hostile. */
  onBadMessage(error: Error): void;
}

export class PacketChannel implements PacketPipe {
  readonly #socket: WebSocket;
  readonly #options: ChannelOptions;
  #queue: string[] = [];
  #queuedBytes = 0;
  #scheduled = false;
  #queued = 0;
  #written = 0;
  /** With a shared secret: seals every message sent and opens every message received. */
  #signer: ChannelSigner | undefined;
  #drainWaiters: Array<{ bytes: number; resolve: () => void }> = [];

  constructor(socket: WebSocket, options: ChannelOptions) {
    this.#socket = socket;
    this.#options = options;
    socket.on("message", (data, isBinary) => this.#receive(data, isBinary));
    socket.once("close", this.#checkDrained);
  }

  /** Signs the channel from now on; set once, right after the handshake. */
  sign(signer: ChannelSigner): void {
    this.#signer = signer;
  }

  get socket(): WebSocket {
    return this.#socket;
  }

  get open(): boolean {
    return this.#socket.readyState === this.#socket.OPEN;
  }

  /** Bytes queued or handed to the socket but not yet written: the channel's backpressure. */
  get buffered(): number {
    return this.#socket.bufferedAmount + this.#queuedBytes;
  }

  /**
   * Resolves once no more than `bytes` are buffered (see {@link buffered}), or the channel
   * closed: a producer that waits for it never runs ahead of a peer that does not read.
   */
  whenDrained(bytes: number): Promise<void> {
    if (!this.open || this.buffered <= bytes) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push({ bytes, resolve }));
  }

  #checkDrained = (): void => {
    if (this.#drainWaiters.length === 0) return;
    const open = this.open;
    const buffered = this.buffered;
    this.#drainWaiters = this.#drainWaiters.filter((waiter) => {
      if (open && buffered > waiter.bytes) return true;
      waiter.resolve();
      return false;
    });
  };

  /**
   * Queues a packet. Returns its position in the channel's order (compare with
   * {@link written}), 0 if the channel is closed, -1 if the packet is over the size limit.
   */
  send(packet: object): number {
    return this.sendJson(JSON.stringify(packet));
  }

  /** {@link send} for a packet already written as JSON text. */
  sendJson(text: string): number {
    if (!this.open) return 0;
    if (text.length > this.#options.maxPacketBytes) return -1;
    this.#queue.push(text);
    this.#queuedBytes += text.length;
    if (this.#queuedBytes >= FLUSH_BYTES) this.flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => this.flush());
    }
    return ++this.#queued;
  }

  /** How many packets have been handed to the socket; later ones never left this process. */
  get written(): number {
    return this.#written;
  }

  /** Writes what is queued now. */
  flush(): void {
    this.#scheduled = false;
    const queue = this.#queue;
    if (queue.length === 0) return;
    this.#queue = [];
    this.#queuedBytes = 0;
    if (!this.open) return;
    this.#written = this.#queued;
    const text = queue.length === 1 ? (queue[0] as string) : `[${queue.join(",")}]`;
    // Called once the message is written to the socket: a producer waiting for room may go on.
    const message = this.#signer ? this.#signer.seal(text) : text;
    this.#socket.send(message, { binary: false }, this.#checkDrained);
  }

  #receive(data: RawData, isBinary: boolean): void {
    let decoded: unknown;
    try {
      if (isBinary) throw new Error("binary messages are not part of the protocol");
      const received = Array.isArray(data)
        ? Buffer.concat(data)
        : Buffer.isBuffer(data)
          ? data
          : Buffer.from(data);
      const text = this.#signer ? this.#signer.open(received) : received.toString("utf8");
      if (text === undefined) throw new Error("a message failed its signature check");
      decoded = parseJson(text, this.#options.maxDepth);
    } catch (error) {
      this.#options.onBadMessage(error as Error);
      return;
    }
    if (Array.isArray(decoded)) {
      for (const packet of decoded) this.#options.onPacket(packet);
    } else {
      this.#options.onPacket(decoded);
    }
  }

  ping(): void {
    this.#socket.ping();
  }

  close(code = 1000, reason = ""): void {
    this.flush();
    this.#socket.close(code, reason);
  }

  terminate(): void {
    this.#socket.terminate();
  }
}
