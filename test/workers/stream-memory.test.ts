/**
 * A worker plugin streams 1,000,000 small items to a consumer on the main thread with bounded
 * memory: the main thread's heap, measured after GC while the stream runs, grows by a small
 * fraction of what holding every item would take (measured the same way).
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterEach, describe, expect, it } from "vitest";
import { cleanup, open, pluginClass, startWith } from "./helpers.js";

afterEach(cleanup);

/** `global.gc` when node runs with --expose-gc; else the flag is set now and gc fetched anew. */
function getGc(): () => void {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (existing) return existing;
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

/** Main-thread heap in use after a full collection (twice: weak callbacks run in between). */
function heapAfterGc(gc: () => void): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

const N = 1_000_000;

const STREAMER = {
  code: pluginClass(
    "S",
    `
  *many(n: number) { for (let i = 0; i < n; i++) yield { i, tag: "x" }; }
  async *manyAsync(n: number) { for (let i = 0; i < n; i++) { if (i % 1000 === 0) await null; yield { i, tag: "x" }; } }`,
  ),
  manifest: { endpoints: [open("many", ["n"]), open("manyAsync", ["n"])] },
};

describe("streaming a million items from a worker", () => {
  it("keeps the main thread's heap bounded, far below what buffering the items would take", async () => {
    const gc = getGc();
    const { core } = await startWith({ S: { def: STREAMER, worker: true } });

    // What holding every item on the main thread would cost, measured the same way.
    const before = heapAfterGc(gc);
    let hoard: Array<{ i: number; tag: string }> | undefined = Array.from(
      { length: N },
      (_, i) => ({
        i,
        tag: "x",
      }),
    );
    const buffered = heapAfterGc(gc) - before;
    expect(hoard.length).toBe(N);
    hoard = undefined;

    const MB = 1024 * 1024;
    for (const method of ["many", "manyAsync"]) {
      // Warm up the path, so its one-time allocations are in the baseline.
      for await (const _ of core.executeStream("S", method, [5000])) {
        /* drain */
      }
      const baseline = heapAfterGc(gc);
      let peak = 0;
      let count = 0;
      let sum = 0;
      let outOfOrder = 0;
      for await (const item of core.executeStream<{ i: number; tag: string }>("S", method, [N])) {
        if (item.i !== count) outOfOrder++;
        sum += item.i;
        count++;
        if (count % 100_000 === 0) peak = Math.max(peak, heapAfterGc(gc) - baseline);
      }
      expect(count).toBe(N);
      expect(outOfOrder).toBe(0);
      expect(sum).toBe((N * (N - 1)) / 2);

      const summary = `${method}: buffering ${N} items takes ${(buffered / MB).toFixed(1)} MB; streaming grew the heap by at most ${(peak / MB).toFixed(2)} MB`;
      // Holding the items costs tens of MB; the stream's working set is a credit window.
      expect(buffered, summary).toBeGreaterThan(15 * MB);
      expect(peak, summary).toBeLessThan(buffered / 10);
      expect(peak, summary).toBeLessThan(4 * MB);
    }
  }, 60_000);
});
