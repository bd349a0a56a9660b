/**
 * A pipe over NATS (see ../../transport.ts): each side publishes to the other's subject of the
 * pipe (`<prefix>.pipe.<id>.s` towards the serving node, `.c` towards the calling one) and
 * subscribes to its own. Packets produced in one turn of the event loop leave as one message
 * (a JSON array, or a bare object when alone), as on the channel; with a secret, every message
 * is sealed with the pipe's session key and its sequence number, so none can be forged,
 * altered, replayed, dropped or reordered. NATS keeps one publisher's messages on one subject
 * in order.
 *
 * Two packets belong to the pipe itself and never reach the session: `{"t":"ping"}`, answered
 * by `{"t":"pong"}` (the keepalive), and `{"t":"bye"}`, sent by a side that closes.
 */
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { ChannelSigner } from "../../auth.js";
import type { PacketPipe, PipeEvents } from "../../transport.js";
import { parseJson } from "../../wire.js";

/** Room kept in a NATS message for the seal and the headers. */
const MESSAGE_OVERHEAD = 4 * 1024;

export interface NatsPipeOptions {
  nats: NatsConnection;
  /** Where this side's messages go. */
  sendSubject: string;
  /** Where the other side's messages arrive. */
  receiveSubject: string;
  maxDepth: number;
  /** Largest packet `send` accepts (at most what a NATS message holds). */
  maxPacketBytes: number;
  /** With a secret: seals and opens every message; the calling side sets it after the handshake. */
  signer?: ChannelSigner;
  events: PipeEvents;
  /** The pipe ended, by either side or the network: its owner forgets it. */
  onEnd(): void;
}

export class NatsPipe implements PacketPipe {
  readonly #options: NatsPipeOptions;
  readonly #subscription: Subscription;
  readonly #maxMessage: number;
  #queue: string[] = [];
  #queuedBytes = 0;
  #queued = 0;
  #written = 0;
  #scheduled = false;
  #open = true;
  #signer: ChannelSigner | undefined;

  constructor(options: NatsPipeOptions) {
    this.#options = options;
    this.#signer = options.signer;
    this.#maxMessage = Math.max(
      64 * 1024,
      (options.nats.info?.max_payload ?? 1024 * 1024) - MESSAGE_OVERHEAD,
    );
    this.#subscription = options.nats.subscribe(options.receiveSubject, {
      callback: (error, message) => {
        if (error) this.#end(true);
        else this.#receive(message.data);
      },
    });
  }

  /** Largest packet a pipe on `nats` can carry, given the node's own limit. */
  static maxPacketBytes(nats: NatsConnection, limit: number): number {
    return Math.min(limit, (nats.info?.max_payload ?? 1024 * 1024) - MESSAGE_OVERHEAD);
  }

  /** Signs the pipe from now on; set once, right after the handshake, before anything is sent. */
  sign(signer: ChannelSigner): void {
    this.#signer = signer;
  }

  get open(): boolean {
    return this.#open;
  }

  /** What waits for the end of the turn; NATS's own buffer is written as fast as it can. */
  get buffered(): number {
    return this.#queuedBytes;
  }

  get written(): number {
    return this.#written;
  }

  whenDrained(): Promise<void> {
    return Promise.resolve();
  }

  send(packet: object): number {
    return this.sendJson(JSON.stringify(packet));
  }

  sendJson(text: string): number {
    if (!this.#open) return 0;
    if (text.length > this.#options.maxPacketBytes) return -1;
    this.#queue.push(text);
    this.#queuedBytes += text.length;
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => this.flush());
    }
    return ++this.#queued;
  }

  flush(): void {
    this.#scheduled = false;
    const queue = this.#queue;
    if (queue.length === 0) return;
    this.#queue = [];
    this.#queuedBytes = 0;
    if (!this.#open) return;
    // As many packets per message as fit in one.
    let batch: string[] = [];
    let bytes = 0;
    for (const text of queue) {
      if (batch.length > 0 && bytes + text.length + 1 > this.#maxMessage) {
        this.#publish(batch);
        batch = [];
        bytes = 0;
      }
      batch.push(text);
      bytes += text.length + 1;
    }
    this.#publish(batch);
    this.#written = this.#queued;
  }

  #publish(batch: string[]): void {
    const text = batch.length === 1 ? (batch[0] as string) : `[${batch.join(",")}]`;
    const signer = this.#signer;
    try {
      this.#options.nats.publish(this.#options.sendSubject, signer ? signer.seal(text) : text);
    } catch {
      // The connection to NATS is closed: nothing more leaves on this pipe.
      this.#end(true);
    }
  }

  #receive(data: Uint8Array): void {
    if (!this.#open) return;
    let decoded: unknown;
    try {
      const signer = this.#signer;
      const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      const text = signer ? signer.open(bytes) : bytes.toString("utf8");
      if (text === undefined) throw new Error("a message failed its signature check");
      decoded = parseJson(text, this.#options.maxDepth);
    } catch (error) {
      this.#options.events.badMessage(error as Error);
      this.#end(true);
      return;
    }
    this.#options.events.heard();
    for (const packet of Array.isArray(decoded) ? decoded : [decoded]) {
      const kind = (packet as { t?: unknown } | null)?.t;
      if (kind === "ping") this.send({ t: "pong" });
      else if (kind === "bye") {
        this.#end(true);
        return;
      } else if (kind !== "pong") this.#options.events.packet(packet);
    }
  }

  ping(): void {
    this.send({ t: "ping" });
  }

  close(): void {
    if (!this.#open) return;
    this.send({ t: "bye" });
    this.flush();
    this.#end(false);
  }

  terminate(): void {
    this.#end(false);
  }

  /** The connection to NATS went: the pipe is gone, and its owner hears that it closed. */
  lost(): void {
    this.#end(true);
  }

  /**
   * Tells the other side, once NATS is back, that this pipe was lost with the connection: it
   * may not have noticed (its own connection stayed up), and would wait on the pipe otherwise.
   */
  farewell(): void {
    const text = JSON.stringify({ t: "bye" });
    try {
      this.#options.nats.publish(
        this.#options.sendSubject,
        this.#signer ? this.#signer.seal(text) : text,
      );
    } catch {
      // NATS went again: the other side's keepalive gives the pipe up.
    }
  }

  /** Ends the pipe; `byPeer`: not this side's doing, so its owner hears that it closed. */
  #end(byPeer: boolean): void {
    if (!this.#open) return;
    this.#open = false;
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#subscription.unsubscribe();
    this.#options.onEnd();
    if (byPeer) this.#options.events.closed();
  }
}
