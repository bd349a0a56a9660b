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
