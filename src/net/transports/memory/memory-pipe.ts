/**
 * A transport inside one process: pipes whose packets cross as JSON text, in order, batched
 * per turn of the event loop as on the channel, with no network under them. It runs the
 * transport contract suite fast (test/net/transport-contract.test.ts), and shows in the least
 * code what a transport must do.
 */
import { NotDelivered } from "../../../errors.js";
import type { Dial, PacketPipe, PipeEvents } from "../../transport.js";
import { parseJson } from "../../wire.js";

export interface MemoryPipeOptions {
  maxDepth: number;
  maxPacketBytes: number;
}

export class MemoryPipe implements PacketPipe {
  readonly #options: MemoryPipeOptions;
  #peer: MemoryPipe | undefined;
  #events: PipeEvents | undefined;
  #queue: string[] = [];
  #queued = 0;
  #written = 0;
  #scheduled = false;
  #open = true;

  constructor(options: MemoryPipeOptions) {
    this.#options = options;
  }

  /** Two ends, each delivering what it sends to the other. */
  static pair(options: MemoryPipeOptions): [MemoryPipe, MemoryPipe] {
    const a = new MemoryPipe(options);
    const b = new MemoryPipe(options);
    a.#peer = b;
    b.#peer = a;
    return [a, b];
  }

  /** Where this end reports what arrives; set once, before anything is sent to it. */
  attach(events: PipeEvents): void {
    this.#events = events;
  }

  get open(): boolean {
    return this.#open;
  }

  /** Nothing waits for a wire: what is queued is handed over at the end of the turn. */
  get buffered(): number {
    return 0;
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
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => this.flush());
    }
    return ++this.#queued;
  }

  flush(): void {
    this.#scheduled = false;
    const queue = this.#queue;
    this.#queue = [];
    if (!this.#open || queue.length === 0) return;
    this.#written = this.#queued;
    const peer = this.#peer;
    if (peer) for (const text of queue) peer.#receive(text);
  }

  #receive(text: string): void {
    if (!this.#open) return;
    let packet: unknown;
    try {
      packet = parseJson(text, this.#options.maxDepth);
    } catch (error) {
      this.#events?.badMessage(error as Error);
      this.terminate();
      // Not this side's doing either: it hears that its pipe closed, as the other side does.
      this.#events?.closed();
      return;
    }
    this.#events?.heard();
    this.#events?.packet(packet);
  }

  ping(): void {
    const peer = this.#peer;
    if (peer?.open) queueMicrotask(() => this.#events?.heard());
  }

  close(): void {
    this.flush();
    this.terminate();
  }

  /** Ends both ends; the other one hears that its pipe closed. */
  terminate(): void {
    if (!this.#open) return;
    this.#open = false;
    const peer = this.#peer;
    if (peer?.open) {
      peer.#open = false;
      peer.#events?.closed();
    }
  }
}

/** Named places in this process that pipes can be dialled to. */
export class MemoryNetwork {
  readonly #listeners = new Map<string, (pipe: MemoryPipe) => void>();
  readonly #options: MemoryPipeOptions;

  constructor(options: MemoryPipeOptions) {
    this.#options = options;
  }

  /** Serves `name`: `accept` gets the serving end of each pipe dialled to it. */
  listen(name: string, accept: (pipe: MemoryPipe) => void): void {
    this.#listeners.set(name, accept);
  }

  unlisten(name: string): void {
    this.#listeners.delete(name);
  }

  dial(name: string): Dial {
    return (events) => {
      const accept = this.#listeners.get(name);
      if (!accept) return Promise.reject(new NotDelivered(`nothing listens at ${name}`));
      const [near, far] = MemoryPipe.pair(this.#options);
      near.attach(events);
      accept(far);
      return Promise.resolve(near);
    };
  }
}
