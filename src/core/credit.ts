/**
 * How far the producer of a stream may run ahead of its consumer. The consumer grants credit
 * as it reads (see `StreamInbox`); these bound what either side holds in memory.
 */

/** Items a stream to another node may send before the consumer grants more. */
export const STREAM_WINDOW = 1024;

/** Most credit a consumer on another node may hold: a peer cannot make this node buffer more. */
export const MAX_CREDIT = 4 * 1024;

/** Bytes of a stream's items sent to another node but not yet read, at most (one item may exceed it). */
export const STREAM_WINDOW_BYTES = 8 * 1024 * 1024;

/** Items a stream to another thread may send before the consumer grants more. */
export const THREAD_STREAM_WINDOW = 256;

/**
 * The producing end of a stream whose consumer grants credit: it reads the source only while
 * the consumer has credit, so it never runs more than a window ahead of what was read, and it
 * closes the source when the consumer stops. Subclasses say where items go and what else holds
 * the stream back.
 */
export abstract class CreditPump<T = unknown> {
  readonly #source: Iterator<T> | AsyncIterator<T>;
  readonly #maxCredit: number;
  #credit: number;
  #stopped = false;
  #wake: (() => void) | undefined;

  constructor(
    source: Iterator<T> | AsyncIterator<T>,
    credit: number,
    maxCredit = Number.POSITIVE_INFINITY,
  ) {
    this.#source = source;
    this.#credit = credit;
    this.#maxCredit = maxCredit;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** The consumer read `n` more items: that many more may be sent. */
  grant(n: number): void {
    this.#credit = Math.min(this.#credit + n, this.#maxCredit);
    this.read(n);
    this.#wake?.();
  }

  /** The consumer is gone or cancelled: close the source, send nothing more. */
  stop(): void {
    this.#stopped = true;
    this.#wake?.();
  }

  /** Takes one item the consumer has credit for. */
  protected abstract send(item: T): void;

  /** The source ended; everything sent has been flushed. */
  protected abstract end(): void;

  /** The source threw. */
  protected abstract fail(error: unknown): void;

  /** Sends what `send` held back: the pump is about to wait, and the consumer must see it. */
  protected flush(): void {}

  /** The consumer read `n` more items. */
  protected read(_n: number): void {}

  /** Whether the consumer holds all it may besides credit. */
  protected full(): boolean {
    return false;
  }

  /** Whether the way to the consumer is gone: the pump stops as if stopped. */
  protected gone(): boolean {
    return false;
  }

  /** Whether the way to the consumer holds too much not yet passed on; see `drained`. */
  protected congested(): boolean {
    return false;
  }

  /** Resolves once the way to the consumer is no longer congested. */
  protected drained(): Promise<void> {
    return Promise.resolve();
  }

  /** The source was closed because the consumer stopped or went away. */
  protected sourceClosed(): void {}

  /** Runs until the source ends or throws (see `fail`), or the consumer stops. */
  async run(): Promise<void> {
    const source = this.#source;
    try {
      for (;;) {
        // Checked before awaiting: with room to go on, an item costs no extra turn.
        if (this.#mustWait()) await this.#room();
        if (this.#stopped || this.gone()) {
          await source.return?.();
          this.sourceClosed();
          return;
        }
        const step = await source.next();
        if (step.done) break;
        this.#credit--;
        this.send(step.value);
      }
      this.flush();
      this.end();
    } catch (error) {
      this.fail(error);
    }
  }

  #mustWait(): boolean {
    return !this.#stopped && !this.gone() && (this.congested() || this.#credit <= 0 || this.full());
  }

  /** Waits for credit, for the consumer to read, and for the way to it to drain. */
  async #room(): Promise<void> {
    while (this.#mustWait()) {
      this.flush();
      await (this.congested() ? Promise.race([this.drained(), this.#woken()]) : this.#woken());
    }
  }

  /** Resolves at the next grant or stop. */
  #woken(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#wake = () => {
        this.#wake = undefined;
        resolve();
      };
    });
  }
}
