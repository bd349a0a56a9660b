import { setTimeout as sleep } from "node:timers/promises";
import { Plugin } from "aio-assistant-core";

/** Blocks the thread, as a synchronous generator has no other way to pause. */
function blockFor(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** One endpoint of each kind: plain function, async function, generator, async generator. */
export class InteropTarget extends Plugin {
  sync_add(a = 0, b = 1): number {
    return a + b;
  }

  async async_add(a = 0, b = 1): Promise<number> {
    return a + b;
  }

  *sync_gen(n = 3, prefix = "g", delay_ms = 10): Generator<string> {
    for (let i = 0; i < Math.max(0, n); i++) {
      if (delay_ms > 0) blockFor(delay_ms);
      yield `${prefix}${i}`;
    }
  }

  async *async_gen(n = 3, prefix = "ag", delay_ms = 10): AsyncGenerator<string> {
    for (let i = 0; i < Math.max(0, n); i++) {
      if (delay_ms > 0) await sleep(delay_ms);
      yield `${prefix}${i}`;
    }
  }
}
