/**
 * The consuming end of a stream whose items arrive as messages (from another node or another
 * thread). It holds what arrived, hands it out in order, and grants the producer more credit
 * as the consumer reads, so the producer is never more than one window ahead.
 */
export class StreamInbox {
  readonly #window: number;
  readonly #grant: (n: number) => void;
  #queue: unknown[] = [];
  #next = 0;
  #consumed = 0;
  #done = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;

  /** `grant(n)` tells the producer the consumer read `n` more items. */
  constructor(window: number, grant: (n: number) => void) {
    this.#window = window;
    this.#grant = grant;
  }

  get done(): boolean {
    return this.#done;
  }

  push(items: readonly unknown[]): void {
    for (const item of items) this.#queue.push(item);
    this.#wake?.();
  }

  /** No more items will come; with `error`, the stream failed after the items so far. */
  end(error?: Error): void {
    if (this.#done) return;
    this.#done = true;
    this.#error = error;
    this.#wake?.();
  }

  async *items(): AsyncGenerator<unknown, void, undefined> {
    for (;;) {
      if (this.#next < this.#queue.length) {
        const item = this.#queue[this.#next++];
        // Drop what was read now and then, rather than shifting the array per item.
        if (this.#next >= 1024) {
          this.#queue = this.#queue.slice(this.#next);
          this.#next = 0;
        }
        if (++this.#consumed >= this.#window / 2 && !this.#done) {
          this.#grant(this.#consumed);
          this.#consumed = 0;
        }
        yield item;
        continue;
      }
      if (this.#done) {
        if (this.#error) throw this.#error;
        return;
      }
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = undefined;
    }
  }
}
