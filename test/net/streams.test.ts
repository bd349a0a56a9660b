/**
 * Remote streams over the channel: order, credit-based backpressure (the producer never runs
 * more than a window ahead of the consumer), a million items in bounded memory (producer in a
 * child process, so the consuming process's memory is measured honestly), early break
 * cancelling the remote generator, and an error mid-stream.
 */

import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { PluginCore } from "aio-assistant-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  addr,
  type ChildNode,
  cleanup,
  collect,
  markCode,
  nodeConfig,
  pluginDir,
  rejection,
  rep,
  SLEEP,
  shared,
  sharedRef,
  spawnNode,
  startNode,
  waitFor,
  waitForNode,
} from "./helpers.js";

const WINDOW = 1024;

const STORE = `__aioNetStreams${process.pid}`;
const store = shared(STORE, {
  produced: 0,
  finallyAt: 0,
  finallyCount: 0,
  events: [] as string[],
});
const S = sharedRef(STORE);

const GEN = {
  header: SLEEP,
  body: `
  *range(n: number) { for (let i = 0; i < n; i++) yield i; }
  async *arange(n: number) { for (let i = 0; i < n; i++) { if (i % 100 === 0) await sleep(0); yield i; } }
  *values() { yield null; yield 0; yield ""; yield "héllo ✓ \\u0000"; yield [1, [2]]; yield { a: { b: [true, false] } }; yield -1.5; }
  *empty() {}
  *counted(n: number) { const s = ${S}; for (let i = 0; i < n; i++) { s.produced++; yield i; } }
  *endless() {
    const s = ${S};
    try { for (let i = 0; ; i++) { s.produced++; yield i; } }
    finally { s.finallyAt = Date.now(); s.finallyCount++; s.events.push("sync finally"); }
  }
  async *slow_endless() {
    const s = ${S};
    try { for (let i = 0; ; i++) { await sleep(20); s.produced++; yield i; } }
    finally { s.finallyAt = Date.now(); s.finallyCount++; s.events.push("async finally"); }
  }
  *fail_after(n: number) { for (let i = 0; i < n; i++) yield i; throw new TypeError("broke after " + n); }
  async *afail_after(n: number) { for (let i = 0; i < n; i++) { await sleep(0); yield i; } throw new RangeError("async broke after " + n); }
  *fail_first() { throw new Error("no items at all"); }`,
  endpoints: [
    rep("range", [{ name: "n", type: "int" }]),
    rep("arange", [{ name: "n", type: "int" }]),
    rep("values"),
    rep("empty"),
    rep("counted", [{ name: "n", type: "int" }]),
    rep("endless"),
    rep("slow_endless"),
    rep("fail_after", [{ name: "n", type: "int" }]),
    rep("afail_after", [{ name: "n", type: "int" }]),
    rep("fail_first"),
  ],
};

let a: PluginCore;

beforeAll(async () => {
  const dir = pluginDir({ Gen: GEN });
  const b = await startNode({ hostname: "B", dir, plugins: ["Gen"] });
  a = await startNode({ hostname: "A", dir, networking: { node_ips: [addr(b)] } });
});

afterAll(cleanup);

const onB = { host: "B" };

describe("order and values", () => {
  it("items arrive in order across many credit windows", async () => {
    const n = 5000;
    const items = await collect(a.executeStream<number>("Gen", "range", [n], onB));
    expect(items.length).toBe(n);
    expect(items.every((v, i) => v === i)).toBe(true);
    const asyncItems = await collect(a.executeStream<number>("Gen", "arange", { n: 1000 }, onB));
    expect(asyncItems).toEqual(Array.from({ length: 1000 }, (_, i) => i));
  });

  it("JSON values of every kind, and an empty stream", async () => {
    expect(await collect(a.executeStream("Gen", "values", undefined, onB))).toEqual([
      null,
      0,
      "",
      "héllo ✓ \u0000",
      [1, [2]],
      { a: { b: [true, false] } },
      -1.5,
    ]);
    expect(await collect(a.executeStream("Gen", "empty", undefined, onB))).toEqual([]);
  });

  it("several streams at once on one channel keep their own order", async () => {
    const runs = await Promise.all(
      [300, 700, 1100].map((n) => collect(a.executeStream<number>("Gen", "range", [n], onB))),
    );
    runs.forEach((items, k) => {
      const n = [300, 700, 1100][k] as number;
      expect(items).toEqual(Array.from({ length: n }, (_, i) => i));
    });
  });
});

describe("backpressure", () => {
  it("the remote producer never runs more than a window ahead of a slow consumer", async () => {
    store.produced = 0;
    const n = 2000;
    let consumed = 0;
    let maxAhead = 0;
    for await (const item of a.executeStream<number>("Gen", "counted", [n], onB)) {
      expect(item).toBe(consumed);
      consumed++;
      maxAhead = Math.max(maxAhead, store.produced - consumed);
      // A slow consumer: let the other side run now and then.
      if (consumed % 100 === 0) await new Promise((r) => setTimeout(r, 2));
    }
    expect(consumed).toBe(n);
    expect(store.produced).toBe(n);
    expect(maxAhead).toBeLessThanOrEqual(WINDOW + 1);
    // It does pipeline: the producer is let run ahead while the consumer is busy.
    expect(maxAhead).toBeGreaterThan(WINDOW / 4);
  });

  it("a consumer that stops reading stops the producer at the window", async () => {
    store.produced = 0;
    const stream = a.executeStream<number>("Gen", "counted", [100_000], onB);
    for (let i = 0; i < 10; i++) expect((await stream.next()).value).toBe(i);
    // Wait until the producer stands still (unchanged for 100 ms of polling).
    let last = -1;
    let stableSince = Date.now();
    await waitFor(() => {
      if (store.produced !== last) {
        last = store.produced;
        stableSince = Date.now();
      }
      return Date.now() - stableSince > 100;
    }, "the producer to stand still");
    expect(store.produced).toBeGreaterThanOrEqual(WINDOW / 2);
    expect(store.produced).toBeLessThanOrEqual(10 + WINDOW + 1);
    // Reading on lets it continue.
    for (let i = 10; i < 1000; i++) expect((await stream.next()).value).toBe(i);
    expect(store.produced).toBeLessThanOrEqual(1000 + WINDOW + 1);
    await stream.return(undefined);
  });
});

describe("early break", () => {
  it("closes a fast remote generator: its finally runs within 1 s", async () => {
    store.finallyAt = 0;
    store.finallyCount = 0;
    const got: number[] = [];
    for await (const item of a.executeStream<number>("Gen", "endless", undefined, onB)) {
      got.push(item);
      if (got.length === 5) break;
    }
    const brokeAt = Date.now();
    expect(got).toEqual([0, 1, 2, 3, 4]);
    await waitFor(() => store.finallyAt > 0, "the remote finally", 1000);
    expect(store.finallyAt - brokeAt).toBeLessThan(1000);
    expect(store.finallyCount).toBe(1);
  });

  it("closes a slow async remote generator busy in an await: its finally runs within 1 s", async () => {
    store.finallyAt = 0;
    store.finallyCount = 0;
    store.produced = 0;
    const got: number[] = [];
    for await (const item of a.executeStream<number>("Gen", "slow_endless", undefined, onB)) {
      got.push(item);
      if (got.length === 3) break;
    }
    const brokeAt = Date.now();
    await waitFor(() => store.finallyAt > 0, "the remote finally", 1000);
    expect(store.finallyAt - brokeAt).toBeLessThan(1000);
    // Its finally ran, so it is closed: no item beyond the few read plus the one in progress.
    expect(store.produced).toBeLessThanOrEqual(got.length + 2);
  });

  it("the channel keeps serving after many cancelled streams", async () => {
    store.finallyCount = 0;
    for (let k = 0; k < 20; k++) {
      let seen = 0;
      for await (const _ of a.executeStream("Gen", "endless", undefined, onB)) {
        if (++seen === 2) break;
      }
    }
    await waitFor(() => store.finallyCount === 20, "20 remote finally blocks", 2000);
    expect(await collect(a.executeStream("Gen", "range", [3], onB))).toEqual([0, 1, 2]);
  });

  it("a break after the first item closes the remote generator too", async () => {
    store.finallyAt = 0;
    store.finallyCount = 0;
    for await (const item of a.executeStream<number>("Gen", "endless", undefined, onB)) {
      expect(item).toBe(0);
      break;
    }
    await waitFor(() => store.finallyAt > 0, "the remote finally", 1000);
  });
});

describe("errors mid-stream", () => {
  for (const [method, n, name, text] of [
    ["fail_after", 3, "TypeError", "broke after 3"],
    ["fail_after", 1000, "TypeError", "broke after 1000"],
    ["afail_after", 5, "RangeError", "async broke after 5"],
  ] as const) {
    it(`${method}(${n}): the items before it, then a RequestError with the remote code and message`, async () => {
      const got: number[] = [];
      const error = await rejection(async () => {
        for await (const item of a.executeStream<number>("Gen", method, [n], onB)) got.push(item);
      });
      expect(got).toEqual(Array.from({ length: n }, (_, i) => i));
      expect(error.code).toBe("PLUGIN_ERROR");
      expect(error.message).toContain(text);
      expect(error.errorName).toBe(name);
      expect(error.plugin).toBe("Gen");
      expect(error.method).toBe(method);
    });
  }

  it("an error before the first item", async () => {
    const error = await rejection(collect(a.executeStream("Gen", "fail_first", undefined, onB)));
    expect(error.code).toBe("PLUGIN_ERROR");
    expect(error.message).toContain("no items at all");
  });

  it("wrong kind and bad arguments are refused before any item", async () => {
    expect((await rejection(a.execute("Gen", "range", [3], onB))).code).toBe("WRONG_KIND");
    expect((await rejection(collect(a.executeStream("Gen", "range", ["x"], onB)))).code).toBe(
      "INVALID_ARGUMENTS",
    );
    expect((await rejection(collect(a.executeStream("Gen", "nope", [], onB)))).code).toBe(
      "NO_NODE",
    );
  });
});

describe("a million items in bounded memory", () => {
  let producer: ChildNode;
  let consumer: PluginCore;

  beforeAll(async () => {
    const dir = pluginDir({
      Many: {
        body: `
        *many(n: number) {
          for (let i = 0; i < n; i++) yield { i, s: "item-" + i };
          ${markCode(`{ done: n }`)}
        }`,
        endpoints: [rep("many", [{ name: "n", type: "int" }])],
      },
    });
    producer = await spawnNode(nodeConfig({ hostname: "P", dir, plugins: ["Many"] }));
    consumer = await startNode({
      hostname: "Consumer",
      dir,
      networking: { node_ips: [`127.0.0.1:${producer.port}`] },
    });
    await waitForNode(consumer, "P");
  });

  it("1,000,000 small items stream with the consumer's heap staying far below what buffering them would take", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const n = 1_000_000;
    // What keeping items costs here: 50,000 of them held in an array.
    gc();
    const heldBefore = process.memoryUsage().heapUsed;
    const held = await collect(
      consumer.executeStream<{ i: number; s: string }>("Many", "many", [50_000], { host: "P" }),
    );
    gc();
    const perItem = (process.memoryUsage().heapUsed - heldBefore) / held.length;
    held.length = 0;
    expect(perItem).toBeGreaterThan(30);
    const bufferedAll = perItem * n;

    gc();
    const before = process.memoryUsage();
    let peakHeap = 0;
    let peakRss = 0;
    let count = 0;
    let sum = 0;
    const started = Date.now();
    for await (const item of consumer.executeStream<{ i: number; s: string }>("Many", "many", [n], {
      host: "P",
    })) {
      if (item.i !== count) throw new Error(`item ${count} arrived as ${item.i}`);
      sum += item.s.length;
      count++;
      if (count % 100_000 === 0) {
        gc();
        const now = process.memoryUsage();
        peakHeap = Math.max(peakHeap, now.heapUsed - before.heapUsed);
        peakRss = Math.max(peakRss, now.rss - before.rss);
      }
    }
    const seconds = (Date.now() - started) / 1000;
    expect(count).toBe(n);
    expect(sum).toBeGreaterThan(n * 6);
    await producer.mark((m) => (m as { done?: number }).done === n);
    // The retained heap while streaming stays under a tenth of what keeping every item would
    // take (and under 16 MiB); RSS does not grow by that much either.
    expect(peakHeap).toBeLessThan(Math.min(bufferedAll / 10, 16 * 2 ** 20));
    expect(peakRss).toBeLessThan(bufferedAll / 2);
    console.log(
      `1e6 items in ${seconds.toFixed(1)} s; buffering all would take ~${(bufferedAll / 2 ** 20).toFixed(0)} MiB; peak retained heap +${(peakHeap / 2 ** 20).toFixed(1)} MiB, rss +${(peakRss / 2 ** 20).toFixed(1)} MiB`,
    );
  }, 45_000);
});
