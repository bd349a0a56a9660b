/** Size and shape limits of what crosses the network. */

/** Deepest nesting of JSON accepted from the network. */
export const MAX_JSON_DEPTH = 64;

/** Largest answer packet (a result or a batch of stream items) sent over the channel. */
export const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

/** How many calls each peer (by address) has in progress here, against a ceiling. */
export class PeerLimiter {
  readonly #max: number;
  readonly #counts = new Map<string, number>();

  constructor(max: number) {
    this.#max = max;
  }

  get max(): number {
    return this.#max;
  }

  /** Counts a call for `peer`; false (and nothing counted) when the peer is at its ceiling. */
  acquire(peer: string): boolean {
    const count = this.#counts.get(peer) ?? 0;
    if (count >= this.#max) return false;
    this.#counts.set(peer, count + 1);
    return true;
  }

  release(peer: string): void {
    const count = (this.#counts.get(peer) ?? 1) - 1;
    if (count <= 0) this.#counts.delete(peer);
    else this.#counts.set(peer, count);
  }
}

/** The smallest bounds of {@link BodyBudget}, per address and in all. */
const BODIES_PER_PEER = 32 * 1024 * 1024;
const BODIES_TOTAL = 64 * 1024 * 1024;

/**
 * Bytes of request bodies on their way, per address and in all, against bounds: twice and four
 * times the body limit, and at least 32 and 64 MiB. On a node without a secret nothing is
 * authenticated, so this is what keeps many large bodies at once from filling its memory.
 */
export class BodyBudget {
  readonly perPeer: number;
  readonly total: number;
  readonly #byPeer = new Map<string, number>();
  #inAll = 0;

  constructor(bodyLimit: number) {
    this.perPeer = Math.max(BODIES_PER_PEER, 2 * bodyLimit);
    this.total = Math.max(BODIES_TOTAL, 4 * bodyLimit);
  }

  /** Counts `bytes` for `peer`; false (and nothing counted) beyond a bound. */
  reserve(peer: string, bytes: number): boolean {
    const mine = this.#byPeer.get(peer) ?? 0;
    if (mine + bytes > this.perPeer || this.#inAll + bytes > this.total) return false;
    this.#byPeer.set(peer, mine + bytes);
    this.#inAll += bytes;
    return true;
  }

  release(peer: string, bytes: number): void {
    const mine = (this.#byPeer.get(peer) ?? bytes) - bytes;
    if (mine <= 0) this.#byPeer.delete(peer);
    else this.#byPeer.set(peer, mine);
    this.#inAll -= bytes;
  }
}

/** How many refused connections a server holds at once, and for how long. */
const TARPIT_CAPACITY = 1000;
const TARPIT_HOLD_MS = 3000;

/**
 * Connections refused while their body was still arriving, held open and unread for a while
 * before they are destroyed. Destroying one at once lets its sender open the next at once: a
 * flood of forged bodies then runs as fast as the sender's CPU, and takes that CPU from every
 * other process on the machine (callers included). Held, the sender's writes stall on a full
 * window instead. A sender that reads its answer and closes loses nothing: the answer was sent
 * at once. At most `capacity` are held (each is a file descriptor); beyond that one is destroyed
 * at once, as before.
 */
export class Tarpit {
  readonly #held = new Set<{ destroy(): void }>();

  constructor(
    readonly capacity = TARPIT_CAPACITY,
    readonly holdMs = TARPIT_HOLD_MS,
  ) {}

  get size(): number {
    return this.#held.size;
  }

  hold(socket: {
    destroy(): void;
    readonly destroyed: boolean;
    once(event: "close", listener: () => void): unknown;
  }): void {
    if (socket.destroyed) return;
    if (this.#held.size >= this.capacity) {
      socket.destroy();
      return;
    }
    this.#held.add(socket);
    const timer = setTimeout(() => socket.destroy(), this.holdMs);
    timer.unref();
    socket.once("close", () => {
      clearTimeout(timer);
      this.#held.delete(socket);
    });
  }

  /** Whether `socket` is held here (its answer is out already). */
  holds(socket: object): boolean {
    return this.#held.has(socket as { destroy(): void });
  }

  /** Destroys every connection held (the server is closing). */
  release(): void {
    for (const socket of this.#held) socket.destroy();
  }
}
