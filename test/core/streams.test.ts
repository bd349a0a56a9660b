/**
 * Streams: executeStream over sync and async generators, executeStreamSync over sync
 * generators, early exit closing the source, errors, timeouts, aborts, and streams between
 * plugins.
 */
import type { PluginCore } from "aio-assistant-core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  cleanup,
  collect,
  ep,
  pluginClass,
  recorder,
  rejection,
  SLEEP,
  startFixture,
  thrown,
  yamlConfig,
} from "./helpers.js";

const rec = recorder();
const open = { accessible_by_other_plugins: true };

const STREAMER = pluginClass(
  "Streamer",
  `
  *count(n = 3) { for (let i = 0; i < n; i++) yield i; }
  async *acount(n = 3) { for (let i = 0; i < n; i++) { await sleep(1); yield i; } }
  *guarded(n = 5) {
    try { for (let i = 0; i < n; i++) yield i; }
    finally { ${rec.push(`"sync finally"`)} }
  }
  async *aguarded(n = 5) {
    try { for (let i = 0; i < n; i++) { await sleep(1); yield i; } }
    finally { await sleep(5); ${rec.push(`"async finally"`)} }
  }
  *fail_after(n = 2) { for (let i = 0; i < n; i++) yield i; throw new TypeError("gen broke"); }
  async *afail_after(n = 2) { for (let i = 0; i < n; i++) yield i; throw new RangeError("agen broke"); }
  *lazy() { for (let i = 0; ; i++) { ${rec.push(`"produced " + i`)} yield i; } }
  async *alazy() { for (let i = 0; ; i++) { ${rec.push(`"aproduced " + i`)} yield i; } }
  async *stuck() { yield 1; await new Promise(() => {}); }
  async *named(prefix = "x", n = 1) { for (let i = 0; i < n; i++) yield prefix + i; }
  *starts() { ${rec.push(`"started"`)} yield 1; }
  async *slow_start() { await sleep(40); yield "late"; }`,
  SLEEP,
);

const STREAMER_ENDPOINTS = [
  ep("count", [{ name: "n", type: "int" }], open),
  ep("acount", [{ name: "n", type: "int" }], open),
  ep("guarded", ["n"], open),
  ep("aguarded", ["n"], open),
  ep("fail_after", ["n"]),
  ep("afail_after", ["n"]),
  ep("lazy"),
  ep("alazy"),
  ep("stuck"),
  ep("named", [
    { name: "prefix", type: "str" },
    { name: "n", type: "int" },
  ]),
  ep("starts"),
  ep("slow_start"),
];

const RELAY = pluginClass(
  "Relay",
  `
  async *relay(n: number) { yield* this.executeStream("Streamer", "acount", [n]); }
  async *relay_guarded() { yield* this.executeStream("Streamer", "aguarded", [10]); }
  *relay_sync(n: number) { yield* this.executeStreamSync("Streamer", "count", [n]); }
  relay_sync_list(n: number) { return [...this.executeStreamSync("Streamer", "count", [n])]; }
  async relay_async_list(n: number) {
    const out: unknown[] = [];
    for await (const item of this.executeStream("Streamer", "acount", { n })) out.push(item);
    return out;
  }`,
);

let core: PluginCore;

beforeAll(async () => {
  ({ core } = await startFixture({
    plugins: {
      Streamer: { code: STREAMER, manifest: { endpoints: STREAMER_ENDPOINTS } },
      Relay: {
        code: RELAY,
        manifest: {
          endpoints: [
            ep("relay", ["n"]),
            ep("relay_guarded"),
            ep("relay_sync", ["n"]),
            ep("relay_sync_list", ["n"]),
            ep("relay_async_list", ["n"]),
          ],
        },
      },
    },
    configYaml: yamlConfig("  - name: Streamer\n  - name: Relay\n", "  drain_timeout: 3\n"),
  }));
});
afterAll(cleanup);
beforeEach(() => {
  rec.events.length = 0;
});

describe("consuming streams", () => {
  it("executeStream consumes async and sync generators", async () => {
    await expect(collect(core.executeStream("Streamer", "acount", [4]))).resolves.toEqual([
      0, 1, 2, 3,
    ]);
    await expect(collect(core.executeStream("Streamer", "count", [3]))).resolves.toEqual([0, 1, 2]);
    await expect(collect(core.executeStream("Streamer", "count"))).resolves.toEqual([0, 1, 2]);
    await expect(collect(core.executeStream("Streamer", "count", [0]))).resolves.toEqual([]);
  });

  it("executeStream binds named arguments", async () => {
    await expect(
      collect(core.executeStream("Streamer", "named", { prefix: "p", n: 3 })),
    ).resolves.toEqual(["p0", "p1", "p2"]);
    await expect(collect(core.executeStream("Streamer", "named", { n: 2 }))).resolves.toEqual([
      "x0",
      "x1",
    ]);
  });

  it("executeStreamSync consumes a sync generator on the main thread", () => {
    expect([...core.executeStreamSync("Streamer", "count", [3])]).toEqual([0, 1, 2]);
    expect([...core.executeStreamSync("Streamer", "count", { n: 2 })]).toEqual([0, 1]);
  });

  it("executeStreamSync throws WOULD_DEADLOCK at once for an async generator", () => {
    const error = thrown(() => core.executeStreamSync("Streamer", "acount", [2]));
    expect(error.code).toBe("WOULD_DEADLOCK");
    expect(error.message).toContain("executeStream");
  });

  it("runs no plugin code before the first next()", async () => {
    const stream = core.executeStream("Streamer", "starts");
    await new Promise((r) => setImmediate(r));
    expect(rec.events).toEqual([]);
    expect(await stream.next()).toEqual({ value: 1, done: false });
    expect(rec.events).toEqual(["started"]);
    expect(await stream.next()).toEqual({ value: undefined, done: true });
  });

  it("reads nothing ahead of the consumer", async () => {
    const stream = core.executeStream("Streamer", "alazy");
    expect((await stream.next()).value).toBe(0);
    expect((await stream.next()).value).toBe(1);
    expect(rec.events).toEqual(["aproduced 0", "aproduced 1"]);
    await stream.return(undefined);

    const sync = core.executeStream("Streamer", "lazy");
    expect((await sync.next()).value).toBe(0);
    expect(rec.events).toEqual(["aproduced 0", "aproduced 1", "produced 0"]);
    await sync.return(undefined);
  });

  it("runs two streams of one endpoint independently", async () => {
    const a = core.executeStream("Streamer", "acount", [3]);
    const b = core.executeStream("Streamer", "acount", [2]);
    expect((await a.next()).value).toBe(0);
    expect((await b.next()).value).toBe(0);
    expect((await a.next()).value).toBe(1);
    expect(await collect(b)).toEqual([1]);
    expect(await collect(a)).toEqual([2]);
  });
});

describe("stopping early", () => {
  it("break out of for await over an async generator runs its finally before the loop exits", async () => {
    const seen: number[] = [];
    for await (const item of core.executeStream<number>("Streamer", "aguarded", [10])) {
      seen.push(item);
      if (item === 1) break;
    }
    expect(seen).toEqual([0, 1]);
    expect(rec.events).toEqual(["async finally"]);
  });

  it("break out of for await over a sync generator runs its finally before the loop exits", async () => {
    for await (const item of core.executeStream("Streamer", "guarded", [10])) {
      expect(item).toBe(0);
      break;
    }
    expect(rec.events).toEqual(["sync finally"]);
  });

  it("break out of for…of over executeStreamSync runs the generator's finally", () => {
    for (const item of core.executeStreamSync("Streamer", "guarded", [10])) {
      expect(item).toBe(0);
      break;
    }
    expect(rec.events).toEqual(["sync finally"]);
  });

  it("return() on the stream closes the source", async () => {
    const stream = core.executeStream("Streamer", "aguarded", [10]);
    await stream.next();
    await stream.return(undefined);
    expect(rec.events).toEqual(["async finally"]);
    expect(await stream.next()).toEqual({ value: undefined, done: true });
  });

  it("a throw in the consumer's loop body closes the source too", async () => {
    await expect(
      (async () => {
        for await (const _ of core.executeStream("Streamer", "aguarded", [10])) {
          throw new Error("consumer failed");
        }
      })(),
    ).rejects.toThrow("consumer failed");
    expect(rec.events).toEqual(["async finally"]);
  });

  it("break closes the whole chain when a plugin relays another plugin's stream", async () => {
    for await (const item of core.executeStream("Relay", "relay_guarded")) {
      expect(item).toBe(0);
      break;
    }
    expect(rec.events).toEqual(["async finally"]);
  });

  it("a stream ended early no longer counts as in flight (pop does not wait for it)", async () => {
    const { core: own } = await startFixture({
      plugins: { Streamer: { code: STREAMER, manifest: { endpoints: STREAMER_ENDPOINTS } } },
      configYaml: yamlConfig("  - name: Streamer\n", "  drain_timeout: 5\n"),
    });
    for await (const _ of own.executeStream("Streamer", "aguarded", [10])) break;
    for (const _ of own.executeStreamSync("Streamer", "guarded", [10])) break;
    const started = performance.now();
    await own.popPlugin("Streamer");
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe("errors in streams", () => {
  it("lookup and argument errors surface on the first next(), not when the stream is created", async () => {
    const cases: Array<[string, string, unknown, object | undefined, string]> = [
      ["Nope", "count", undefined, undefined, "PLUGIN_NOT_FOUND"],
      ["Streamer", "nope", undefined, undefined, "ENDPOINT_NOT_FOUND"],
      ["Streamer", "count", ["three"], undefined, "INVALID_ARGUMENTS"],
      ["Streamer", "count", { m: 1 }, undefined, "INVALID_ARGUMENTS"],
      ["Streamer", "count", undefined, { host: "remote" }, "NO_NODE"],
    ];
    for (const [plugin, method, args, options, code] of cases) {
      let stream: AsyncGenerator<unknown> | undefined;
      expect(() => {
        stream = core.executeStream(plugin, method, args, options);
      }).not.toThrow();
      const error = await rejection((stream as AsyncGenerator<unknown>).next());
      expect(error.code).toBe(code);
      expect(error.plugin).toBe(plugin);
      expect(error.method).toBe(method);
    }
  });

  it("executeStreamSync reports lookup errors synchronously", () => {
    expect(thrown(() => [...core.executeStreamSync("Nope", "count")]).code).toBe(
      "PLUGIN_NOT_FOUND",
    );
    expect(thrown(() => [...core.executeStreamSync("Streamer", "count", ["x"])]).code).toBe(
      "INVALID_ARGUMENTS",
    );
  });

  it("a generator that throws mid-stream yields its items, then PLUGIN_ERROR", async () => {
    for (const [method, name, text] of [
      ["fail_after", "TypeError", "gen broke"],
      ["afail_after", "RangeError", "agen broke"],
    ] as const) {
      const stream = core.executeStream("Streamer", method, [2]);
      expect((await stream.next()).value).toBe(0);
      expect((await stream.next()).value).toBe(1);
      const error = await rejection(stream.next());
      expect(error.code).toBe("PLUGIN_ERROR");
      expect(error.errorName).toBe(name);
      expect(error.message).toContain(text);
      expect(error.method).toBe(method);
      expect(await stream.next()).toEqual({ value: undefined, done: true });
    }
  });

  it("executeStreamSync turns a generator's throw into PLUGIN_ERROR after its items", () => {
    const items: unknown[] = [];
    const error = thrown(() => {
      for (const item of core.executeStreamSync("Streamer", "fail_after", [2])) items.push(item);
    });
    expect(items).toEqual([0, 1]);
    expect(error.code).toBe("PLUGIN_ERROR");
    expect(error.errorName).toBe("TypeError");
  });

  it("timeout fails a stream that stalls with TIMEOUT", async () => {
    const stream = core.executeStream("Streamer", "stuck", undefined, { timeout: 80 });
    expect((await stream.next()).value).toBe(1);
    const error = await rejection(stream.next());
    expect(error.code).toBe("TIMEOUT");
    await expect(collect(core.executeStream("Streamer", "count", [2]))).resolves.toEqual([0, 1]);
  });

  it("timeout also bounds the wait for the first item", async () => {
    const error = await rejection(
      core.executeStream("Streamer", "slow_start", undefined, { timeout: 10 }).next(),
    );
    expect(error.code).toBe("TIMEOUT");
  });

  it("aborting the signal fails a stalled stream with ABORTED", async () => {
    const controller = new AbortController();
    const stream = core.executeStream("Streamer", "stuck", undefined, {
      signal: controller.signal,
    });
    expect((await stream.next()).value).toBe(1);
    const pending = stream.next();
    controller.abort();
    expect((await rejection(pending)).code).toBe("ABORTED");
  });

  it("an already-aborted signal fails the stream's first next() with ABORTED", async () => {
    const controller = new AbortController();
    controller.abort();
    const stream = core.executeStream("Streamer", "count", [3], { signal: controller.signal });
    expect((await rejection(stream.next())).code).toBe("ABORTED");
  });
});

describe("streams between plugins", () => {
  it("a plugin relays another plugin's async and sync streams", async () => {
    await expect(collect(core.executeStream("Relay", "relay", [3]))).resolves.toEqual([0, 1, 2]);
    await expect(collect(core.executeStream("Relay", "relay_sync", [2]))).resolves.toEqual([0, 1]);
    expect([...core.executeStreamSync("Relay", "relay_sync", [2])]).toEqual([0, 1]);
    await expect(core.execute("Relay", "relay_sync_list", [3])).resolves.toEqual([0, 1, 2]);
    expect(core.executeSync("Relay", "relay_sync_list", [2])).toEqual([0, 1]);
    await expect(core.execute("Relay", "relay_async_list", [2])).resolves.toEqual([0, 1]);
  });
});
