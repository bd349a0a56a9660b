/**
 * Calls into a plugin running with `isolation: worker`: the same API, kinds, errors and events
 * as in-process; execute and executeStream of every kind; credit-based backpressure; an early
 * break closing the generator in the worker; blocking calls from the main thread.
 */
import { RequestError } from "aio-assistant-core";
import { afterAll, describe, expect, it } from "vitest";
import {
  cleanup,
  kindsPlugin,
  manifest,
  nextEvent,
  open,
  pluginClass,
  rejection,
  sharedCore,
  startWith,
  thrown,
  until,
} from "./helpers.js";

afterAll(cleanup);

/** A generator that counts what it produced and whether its finally ran. */
const PRODUCER = {
  code: pluginClass(
    "P",
    `
produced = 0;
closed = 0;
*items(n: number) {
  try { for (let i = 0; i < n; i++) { this.produced++; yield i; } }
  finally { this.closed++; }
}
async *itemsAsync(n: number) {
  try { for (let i = 0; i < n; i++) { this.produced++; await null; yield i; } }
  finally { this.closed++; }
}
stats() { return { produced: this.produced, closed: this.closed }; }
reset() { this.produced = 0; this.closed = 0; }`,
  ),
  manifest: {
    endpoints: [open("items", ["n"]), open("itemsAsync", ["n"]), open("stats"), open("reset")],
  },
};

const HOOKS = {
  code: pluginClass(
    "H",
    `
  seen: unknown[] = [];
  override onLoad(args: unknown) { this.seen.push(["load", args, isMainThread]); }
  override onEnable() { this.seen.push(["enable", this.enabled]); }
  override onDisable() { this.seen.push(["disable"]); }
  hooks() { return this.seen; }`,
    `import { isMainThread } from "node:worker_threads";`,
  ),
  manifest: { arguments: { greeting: "hi" }, endpoints: [open("hooks")] },
};

const GEN = {
  code: pluginClass(
    "G",
    `  *boom() { yield 1; yield 2; throw new SyntaxError("gen broke"); }
  async *boomAsync() { yield "a"; await null; throw new EvalError("agen broke"); }`,
  ),
  manifest: { endpoints: [open("boom"), open("boomAsync")] },
};

const BUSY = {
  code: pluginClass(
    "B",
    `
  async slow(ms: number) { await new Promise((r) => setTimeout(r, ms)); return "slow done"; }
  now() { return "now"; }`,
  ),
  manifest: { endpoints: [open("slow", ["ms"]), open("now")] },
};

/** One core for the tests that leave its plugins as they found them. */
const shared = sharedCore(() =>
  startWith({
    W: { def: kindsPlugin("W"), worker: true },
    M: { def: kindsPlugin("M") },
    P: { def: PRODUCER, worker: true },
    H: { def: HOOKS, worker: true },
    G: { def: GEN, worker: true },
    B: { def: BUSY, worker: true },
    Other: {
      def: {
        code: pluginClass(
          "Other",
          `  ping(x = 1) { return "pong " + x; }
  callSelf(target: string) { return this.execute(target, "self"); }`,
        ),
        manifest: { endpoints: [open("ping", ["x"]), open("callSelf", ["target"])] },
      },
    },
  }),
);

describe("a worker plugin is called like an in-process one", () => {
  it("runs in its own thread and reports isolation: worker", async () => {
    const { core } = shared();
    const w = (await core.execute("W", "where")) as Record<string, unknown>;
    const m = (await core.execute("M", "where")) as Record<string, unknown>;
    expect(w.isMainThread).toBe(false);
    expect(w.threadId).not.toBe(0);
    expect(m.isMainThread).toBe(true);
    expect(w.name).toBe("W");

    const info = core.getPluginInfo("W");
    expect(info?.isolation).toBe("worker");
    expect(info?.state).toBe("enabled");
    expect(info?.uuid).toBe(w.uuid);
    expect(core.getPluginInfo("M")?.isolation).toBe("none");
    expect(core.getPluginEndpoints("W")?.map((e) => [e.access_name, e.kind])).toEqual(
      core.getPluginEndpoints("M")?.map((e) => [e.access_name, e.kind]),
    );
    // The Plugin API seen from inside is the same in both.
    const wSelf = await core.execute("W", "self");
    expect(wSelf).toEqual(await core.execute("M", "self"));
    expect(wSelf).toMatchObject({ enabled: true, version: "1.0.0", hasSignal: true });
    await expect(core.execute("Other", "callSelf", ["W"])).resolves.toMatchObject({
      author: "Other",
    });
  });

  it("takes isolation: worker from the plugin's manifest too", async () => {
    const def = kindsPlugin("W");
    const spec = { ...(def.manifest as object), isolation: "worker" } as Parameters<
      typeof manifest
    >[0];
    const { core } = await startWith({ W: { def: { ...def, manifest: manifest(spec) } } });
    expect(core.getPluginInfo("W")?.isolation).toBe("worker");
    const where = (await core.execute("W", "where")) as { isMainThread: boolean };
    expect(where.isMainThread).toBe(false);
  });

  it("execute: plain and async functions, positional, named and single arguments", async () => {
    const { core } = shared();
    await expect(core.execute("W", "add", [2, 3])).resolves.toBe(5);
    await expect(core.execute("W", "add", { a: 7, b: 8 })).resolves.toBe(15);
    await expect(core.execute("W", "add", 5)).resolves.toBe(6);
    await expect(core.execute("W", "addAsync", [20, 22])).resolves.toBe(42);
    await expect(core.execute("W", "addAsync", { a: 1 })).resolves.toBe(2);
    const value = { nested: [1, "two", { three: 3 }], when: new Date(0), big: 10n, nil: null };
    await expect(core.execute("W", "echo", [value])).resolves.toEqual(value);
    // Many at once, interleaved.
    const many = await Promise.all(
      Array.from({ length: 200 }, (_, i) => core.execute("W", i % 2 ? "add" : "addAsync", [i, i])),
    );
    expect(many).toEqual(Array.from({ length: 200 }, (_, i) => 2 * i));
  });

  it("executeStream: sync and async generators", async () => {
    const { core } = shared();
    const items: unknown[] = [];
    for await (const item of core.executeStream("W", "count", [5, "s"])) items.push(item);
    expect(items).toEqual(["s0", "s1", "s2", "s3", "s4"]);
    const asyncItems: unknown[] = [];
    for await (const item of core.executeStream("W", "countAsync", { n: 3, prefix: "a" })) {
      asyncItems.push(item);
    }
    expect(asyncItems).toEqual(["a0", "a1", "a2"]);
    // Longer than the credit window, so credit must flow back for it to finish.
    let n = 0;
    for await (const item of core.executeStream("W", "count", [3000])) {
      expect(item).toBe(String(n));
      n++;
    }
    expect(n).toBe(3000);
    const empty: unknown[] = [];
    for await (const item of core.executeStream("W", "countAsync", [0])) empty.push(item);
    expect(empty).toEqual([]);
  });

  it("the wrong call for a kind is WRONG_KIND, said on the main side", async () => {
    const { core } = shared();
    const e1 = await rejection(core.execute("W", "count", [1]));
    expect(e1.code).toBe("WRONG_KIND");
    expect(e1.message).toMatch(/executeStream/);
    const e2 = await rejection(async () => {
      for await (const _ of core.executeStream("W", "add", [1, 2])) {
        /* never */
      }
    });
    expect(e2.code).toBe("WRONG_KIND");
    expect(e2.message).toMatch(/execute/);
  });

  it("arguments are validated on the main side before the worker runs", async () => {
    const { core } = shared();
    const missing = await rejection(core.execute("W", "add", []));
    expect(missing.code).toBe("INVALID_ARGUMENTS");
    const wrongType = await rejection(core.execute("W", "add", ["x", 1]));
    expect(wrongType.code).toBe("INVALID_ARGUMENTS");
    const unknownName = await rejection(core.execute("W", "add", { a: 1, zzz: 2 }));
    expect(unknownName.code).toBe("INVALID_ARGUMENTS");
    expect(thrown(() => core.executeSync("W", "add", ["x"])).code).toBe("INVALID_ARGUMENTS");
    const notFound = await rejection(core.execute("W", "nope", []));
    expect(notFound.code).toBe("ENDPOINT_NOT_FOUND");
    await expect(core.execute("W", "add", [1, 1])).resolves.toBe(2);
  });

  it("a function as an argument (or a result) is a clear error, not a crash", async () => {
    const { core } = shared();
    const error = await rejection(core.execute("W", "echo", [() => 1]));
    expect(error.message).toMatch(/cannot cross|could not be cloned/i);
    const inSync = thrown(() => core.executeSync("W", "echo", [{ f() {} }]));
    expect(inSync).toBeInstanceOf(RequestError);
    expect(inSync.message).toMatch(/cannot cross|could not be cloned/i);
    const result = await rejection(core.execute("W", "giveFunction"));
    expect(result.message).toMatch(/cannot cross|could not be cloned/i);
    // The worker was not harmed.
    await expect(core.execute("W", "add", [1, 2])).resolves.toBe(3);
    expect(core.getPluginInfo("W")?.state).toBe("enabled");
  });

  it("what the plugin throws comes back as PLUGIN_ERROR with its name and message", async () => {
    const { core } = shared();
    const sync = await rejection(core.execute("W", "fail", ["bad thing"]));
    expect(sync.code).toBe("PLUGIN_ERROR");
    expect(sync.message).toMatch(/TypeError/);
    expect(sync.message).toMatch(/bad thing/);
    const async = await rejection(core.execute("W", "failAsync", ["worse thing"]));
    expect(async.code).toBe("PLUGIN_ERROR");
    expect(async.message).toMatch(/RangeError/);
    expect(async.message).toMatch(/worse thing/);
    const blocking = thrown(() => core.executeSync("W", "fail", ["sync thing"]));
    expect(blocking.code).toBe("PLUGIN_ERROR");
    expect(blocking.message).toMatch(/sync thing/);
  });

  it("fires the same lifecycle events as an in-process plugin", async () => {
    const { core, dir } = await startWith({ W: { def: kindsPlugin("W"), worker: true } });
    expect(dir).toBeTruthy();
    const disabled = nextEvent(core, "plugin:disabled", "W");
    await core.disablePlugin("W");
    await disabled;
    expect((await rejection(core.execute("W", "add", [1]))).code).toBe("PLUGIN_DISABLED");
    const enabled = nextEvent(core, "plugin:enabled", "W");
    await core.enablePlugin("W");
    const [info] = (await enabled) as [{ isolation: string; state: string }];
    expect(info.isolation).toBe("worker");
    expect(info.state).toBe("enabled");
    const unloaded = nextEvent(core, "plugin:unloaded", "W");
    await core.popPlugin("W");
    await unloaded;
    expect((await rejection(core.execute("W", "add", [1]))).code).toBe("PLUGIN_NOT_FOUND");
    const loaded = nextEvent(core, "plugin:loaded", "W");
    await core.loadPlugin("W");
    await loaded;
    await core.enablePlugin("W");
    await expect(core.execute("W", "add", [1])).resolves.toBe(2);
  });

  it("onLoad, onEnable and onDisable run in the worker with the plugin's arguments", async () => {
    const { core } = shared();
    await core.disablePlugin("H");
    await core.enablePlugin("H");
    const seen = await core.execute("H", "hooks");
    expect(seen).toEqual([
      ["load", { greeting: "hi" }, false],
      ["enable", false],
      ["disable"],
      ["enable", false],
    ]);
  });
});

describe("streams from a worker", () => {
  for (const method of ["items", "itemsAsync"]) {
    it(`${method}: the producer stays at most ~256 items ahead of a slow consumer`, async () => {
      const { core } = shared();
      await core.execute("P", "reset");
      const stats = () =>
        core.execute("P", "stats") as Promise<{ produced: number; closed: number }>;
      const stream = core.executeStream<number>("P", method, [100_000]);
      let consumed = 0;
      let maxAhead = 0;
      const check = async () => {
        // Several round trips: the worker has run everything it could in between.
        for (let i = 0; i < 3; i++) {
          const { produced } = await stats();
          maxAhead = Math.max(maxAhead, produced - consumed);
        }
      };
      const first = await stream.next();
      expect(first.value).toBe(0);
      consumed = 1;
      // It fills the window, then waits for credit.
      await until("the producer to fill its window", async () => (await stats()).produced >= 256);
      await check();
      for (let round = 0; round < 20; round++) {
        for (let i = 0; i < 97; i++) {
          const step = await stream.next();
          expect(step.value).toBe(consumed);
          consumed++;
        }
        await check();
      }
      expect(maxAhead).toBeGreaterThanOrEqual(200);
      expect(maxAhead).toBeLessThanOrEqual(256 + 8);
      await stream.return(undefined);
      await until("the generator's finally", async () => (await stats()).closed === 1 || undefined);
      const { produced } = await stats();
      expect(produced).toBeLessThanOrEqual(consumed + 256 + 8);
    });

    it(`${method}: an early break runs the generator's finally in the worker`, async () => {
      const { core } = shared();
      await core.execute("P", "reset");
      const got: number[] = [];
      for await (const item of core.executeStream<number>("P", method, [1_000_000])) {
        got.push(item);
        if (got.length === 3) break;
      }
      expect(got).toEqual([0, 1, 2]);
      await until("the generator's finally", async () => {
        const s = (await core.execute("P", "stats")) as { closed: number };
        return s.closed === 1;
      });
      const { produced } = (await core.execute("P", "stats")) as { produced: number };
      expect(produced).toBeLessThan(1000);
      // Nothing is left running: the plugin serves new streams and calls.
      const again: number[] = [];
      for await (const item of core.executeStream<number>("P", method, [4])) again.push(item);
      expect(again).toEqual([0, 1, 2, 3]);
      await expect(core.execute("Other", "ping", [1])).resolves.toBe("pong 1");
    });
  }

  it("a throw inside a worker generator ends the stream with PLUGIN_ERROR after its items", async () => {
    const { core } = shared();
    const got: unknown[] = [];
    const error = await rejection(async () => {
      for await (const item of core.executeStream("G", "boom")) got.push(item);
    });
    expect(got).toEqual([1, 2]);
    expect(error.code).toBe("PLUGIN_ERROR");
    expect(error.message).toMatch(/gen broke/);
    const gotAsync: unknown[] = [];
    const errorAsync = await rejection(async () => {
      for await (const item of core.executeStream("G", "boomAsync")) gotAsync.push(item);
    });
    expect(gotAsync).toEqual(["a"]);
    expect(errorAsync.code).toBe("PLUGIN_ERROR");
    expect(errorAsync.message).toMatch(/agen broke/);
  });
});

describe("blocking calls from the main thread into a worker plugin", () => {
  it("executeSync reaches plain functions; executeStreamSync sync generators", async () => {
    const { core } = shared();
    expect(core.executeSync("W", "add", [40, 2])).toBe(42);
    expect(core.executeSync("W", "add", { a: 1 })).toBe(2);
    expect(core.executeSync("W", "echo", [{ a: [1, 2] }])).toEqual({ a: [1, 2] });
    expect([...core.executeStreamSync("W", "count", [4, "x"])]).toEqual(["x0", "x1", "x2", "x3"]);
    // A long one, and an early break that leaves the worker usable.
    let n = 0;
    for (const _ of core.executeStreamSync("W", "count", [2000])) n++;
    expect(n).toBe(2000);
    const few: unknown[] = [];
    for (const item of core.executeStreamSync("W", "count", [1_000_000])) {
      few.push(item);
      if (few.length === 2) break;
    }
    expect(few).toEqual(["0", "1"]);
    expect(core.executeSync("W", "add", [1, 1])).toBe(2);
    await expect(core.execute("W", "add", [2, 2])).resolves.toBe(4);
  });

  it("async targets are refused at once with WOULD_DEADLOCK naming the way out", async () => {
    const { core } = shared();
    const fn = thrown(() => core.executeSync("W", "addAsync", [1, 2]));
    expect(fn.code).toBe("WOULD_DEADLOCK");
    expect(fn.message).toMatch(/execute\(\)/);
    const gen = thrown(() => [...core.executeStreamSync("W", "countAsync", [2])]);
    expect(gen.code).toBe("WOULD_DEADLOCK");
    expect(gen.message).toMatch(/executeStream/);
    // Wrong kind for the sync forms too.
    expect(thrown(() => core.executeSync("W", "count", [1])).code).toBe("WRONG_KIND");
    expect(thrown(() => [...core.executeStreamSync("W", "add", [1])]).code).toBe("WRONG_KIND");
    await expect(core.execute("W", "addAsync", [1, 2])).resolves.toBe(3);
  });

  it("executeSync while the worker is busy with async calls waits its turn and answers", async () => {
    const { core } = shared();
    const slow = core.execute("B", "slow", [50]);
    // The worker's event loop is free while `slow` awaits, so the blocking call is served.
    expect(core.executeSync("B", "now")).toBe("now");
    await expect(slow).resolves.toBe("slow done");
  });
});
