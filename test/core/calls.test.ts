/**
 * Calls and arguments: execute / executeSync on every kind of function, how `args` is bound,
 * declared types, required arguments and defaults, and the errors a call can end with.
 */

import type { PluginCore } from "aio-assistant-core";
import { RequestError } from "aio-assistant-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ArgSpec,
  cleanup,
  type EndpointSpec,
  ep,
  pluginClass,
  recorder,
  rejection,
  SLEEP,
  startFixture,
  thrown,
} from "./helpers.js";

const TYPES = [
  "int",
  "float",
  "number",
  "str",
  "string",
  "bool",
  "boolean",
  "dict",
  "object",
  "list",
  "array",
  "any",
] as const;

const rec = recorder();

const CALC = pluginClass(
  "Calc",
  `
  add(a = 0, b = 10) { return a + b; }
  async async_add(a: number, b: number) { await sleep(1); return a + b; }
  echo(v: unknown) { return v; }
  need(req: number, opt: number, extra = "js") { ${rec.push(`["need", req]`)} return [req, opt, extra]; }
  bump(cfg: { n: number }) { cfg.n += 1; return cfg.n; }
  whole(...args: unknown[]) { return args; }
  count(...args: unknown[]) { return args.length; }
  fail_sync(): never { throw new TypeError("bad sync"); }
  async fail_async() { await sleep(1); throw new RangeError("bad async"); }
  throw_string() { throw "just a string"; }
  returns_promise() { ${rec.push(`"returns_promise ran"`)} return Promise.resolve(1); }
  async slow(ms: number) { await sleep(ms); return "slow done"; }
  *gen() { yield 1; }
  async *agen() { yield 1; }
  self() { return this.pluginName; }
  internalName() { return "renamed"; }
  hidden() { return "not declared"; }`,
  SLEEP,
);

const typed = (type: string): EndpointSpec =>
  ep("echo", [{ name: "v", type, required: true }], { access_name: `echo_${type}` });

const CALC_ENDPOINTS: EndpointSpec[] = [
  ep("add", ["a", "b"]),
  ep("async_add", [
    { name: "a", type: "number" },
    { name: "b", type: "number" },
  ]),
  ...TYPES.map(typed),
  ep("need", [
    { name: "req", type: "int", required: true },
    { name: "opt", type: "int", default: 5 },
    { name: "extra", type: "str" },
  ] satisfies ArgSpec[]),
  ep("bump", [{ name: "cfg", type: "dict", default: { n: 1 } }]),
  ep("whole"),
  ep("count", ["x", "y", "z"]),
  ep("fail_sync"),
  ep("fail_async"),
  ep("throw_string"),
  ep("returns_promise"),
  ep("slow", [{ name: "ms", type: "int" }]),
  ep("gen"),
  ep("agen"),
  ep("self"),
  ep("internalName", [], { access_name: "publicName" }),
];

let core: PluginCore;

beforeAll(async () => {
  ({ core } = await startFixture({
    plugins: { Calc: { code: CALC, manifest: { endpoints: CALC_ENDPOINTS } } },
  }));
});
afterAll(cleanup);

describe("kinds of function", () => {
  it("execute calls plain and async functions", async () => {
    await expect(core.execute("Calc", "add", [1, 2])).resolves.toBe(3);
    await expect(core.execute("Calc", "async_add", [1, 2])).resolves.toBe(3);
    await expect(core.execute("Calc", "returns_promise")).resolves.toBe(1);
  });

  it("runs the method with `this` bound to the plugin instance", async () => {
    await expect(core.execute("Calc", "self")).resolves.toBe("Calc");
    expect(core.executeSync("Calc", "self")).toBe("Calc");
  });

  it("executeSync returns the value of a plain function synchronously", () => {
    expect(core.executeSync("Calc", "add", [2, 3])).toBe(5);
    expect(core.executeSync("Calc", "add", { b: 1 })).toBe(1);
  });

  it("executeSync throws WOULD_DEADLOCK at once for an async function", () => {
    const error = thrown(() => core.executeSync("Calc", "async_add", [1, 2]));
    expect(error).toBeInstanceOf(RequestError);
    expect(error.code).toBe("WOULD_DEADLOCK");
    expect(error.message).toContain("execute");
    expect(error.plugin).toBe("Calc");
    expect(error.method).toBe("async_add");
  });

  it("executeSync throws WOULD_DEADLOCK for a plain function that returns a Promise", () => {
    const error = thrown(() => core.executeSync("Calc", "returns_promise"));
    expect(error.code).toBe("WOULD_DEADLOCK");
    expect(error.message).toMatch(/Promise/);
  });

  it("executeSync throws the plugin's error as PLUGIN_ERROR", () => {
    const error = thrown(() => core.executeSync("Calc", "fail_sync"));
    expect(error.code).toBe("PLUGIN_ERROR");
    expect(error.errorName).toBe("TypeError");
    expect(error.message).toContain("bad sync");
  });

  it("executeSync throws lookup and argument errors synchronously", () => {
    expect(thrown(() => core.executeSync("Nope", "x")).code).toBe("PLUGIN_NOT_FOUND");
    expect(thrown(() => core.executeSync("Calc", "nope")).code).toBe("ENDPOINT_NOT_FOUND");
    expect(thrown(() => core.executeSync("Calc", "echo_int", ["x"])).code).toBe(
      "INVALID_ARGUMENTS",
    );
  });
});

describe("wrong kind", () => {
  const cases: Array<
    [string, "execute" | "executeSync" | "executeStream" | "executeStreamSync", string]
  > = [
    ["gen", "execute", "executeStream()"],
    ["agen", "execute", "executeStream()"],
    ["gen", "executeSync", "executeStreamSync()"],
    ["add", "executeStream", "execute()"],
    ["async_add", "executeStream", "execute()"],
    ["add", "executeStreamSync", "executeSync()"],
  ];
  for (const [method, via, use] of cases) {
    it(`${via}() of ${method} fails with WRONG_KIND naming ${use}`, async () => {
      let error: RequestError;
      if (via === "execute") error = await rejection(core.execute("Calc", method));
      else if (via === "executeStream")
        error = await rejection(core.executeStream("Calc", method).next());
      else if (via === "executeSync") error = thrown(() => core.executeSync("Calc", method));
      else error = thrown(() => [...core.executeStreamSync("Calc", method)]);
      expect(error.code).toBe("WRONG_KIND");
      expect(error.message).toContain(use);
      expect(error.plugin).toBe("Calc");
      expect(error.method).toBe(method);
    });
  }
});

describe("arguments", () => {
  it("an array is positional arguments", async () => {
    await expect(core.execute("Calc", "add", [1, 2])).resolves.toBe(3);
    await expect(core.execute("Calc", "count", [1, 2, 3])).resolves.toBe(3);
    await expect(core.execute("Calc", "add", [])).resolves.toBe(10);
  });

  it("[[1, 2]] passes one array", async () => {
    await expect(core.execute("Calc", "echo_list", [[1, 2]])).resolves.toEqual([1, 2]);
    await expect(core.execute("Calc", "echo_any", [[1, 2]])).resolves.toEqual([1, 2]);
    await expect(core.execute("Calc", "whole", [[1, 2]])).resolves.toEqual([[1, 2]]);
  });

  it("a plain object is named arguments placed by the declared names", async () => {
    await expect(core.execute("Calc", "add", { a: 1, b: 2 })).resolves.toBe(3);
    await expect(core.execute("Calc", "add", { b: 2, a: 1 })).resolves.toBe(3);
    // A missing optional argument lets the method's own parameter default apply.
    await expect(core.execute("Calc", "add", { a: 1 })).resolves.toBe(11);
    await expect(core.execute("Calc", "add", { b: 1 })).resolves.toBe(1);
    await expect(core.execute("Calc", "add", {})).resolves.toBe(10);
    // Untyped, optional arguments: the method gets as many as reach the last one given.
    await expect(core.execute("Calc", "count", { x: 1 })).resolves.toBe(1);
    await expect(core.execute("Calc", "count", { y: 1 })).resolves.toBe(2);
    await expect(core.execute("Calc", "count", {})).resolves.toBe(0);
  });

  it("a named argument that is not declared is INVALID_ARGUMENTS", async () => {
    const error = await rejection(core.execute("Calc", "add", { a: 1, c: 3 }));
    expect(error.code).toBe("INVALID_ARGUMENTS");
    expect(error.message).toContain('"c"');
    expect(error.message).toContain("a, b");
  });

  it("an endpoint that declares no arguments gets a plain object as its one argument", async () => {
    await expect(core.execute("Calc", "whole", { a: 1, b: 2 })).resolves.toEqual([{ a: 1, b: 2 }]);
    await expect(core.execute("Calc", "whole", [1, 2])).resolves.toEqual([1, 2]);
    await expect(core.execute("Calc", "whole", 5)).resolves.toEqual([5]);
  });

  it("undefined passes no arguments", async () => {
    await expect(core.execute("Calc", "whole")).resolves.toEqual([]);
    await expect(core.execute("Calc", "whole", undefined)).resolves.toEqual([]);
    await expect(core.execute("Calc", "count")).resolves.toBe(0);
    await expect(core.execute("Calc", "add")).resolves.toBe(10);
  });

  it("any other value is the one argument", async () => {
    await expect(core.execute("Calc", "add", 5)).resolves.toBe(15);
    await expect(core.execute("Calc", "echo_any", "text")).resolves.toBe("text");
    await expect(core.execute("Calc", "echo_any", 0)).resolves.toBe(0);
    await expect(core.execute("Calc", "echo_any", false)).resolves.toBe(false);
    await expect(core.execute("Calc", "echo_any", "")).resolves.toBe("");
    await expect(core.execute("Calc", "echo_any", null)).resolves.toBe(null);
    await expect(core.execute("Calc", "count", "x")).resolves.toBe(1);
  });

  it("more positional arguments than declared is INVALID_ARGUMENTS", async () => {
    const error = await rejection(core.execute("Calc", "add", [1, 2, 3]));
    expect(error.code).toBe("INVALID_ARGUMENTS");
    expect(error.message).toMatch(/at most 2/);
  });

  const date = new Date(0);
  class Point {
    x = 1;
  }
  const accepted: Record<(typeof TYPES)[number], unknown[]> = {
    int: [0, 3, -7, 2 ** 40],
    float: [3, 3.5, -0.25],
    number: [3, 3.5],
    str: ["x", ""],
    string: ["y", ""],
    bool: [true, false],
    boolean: [true, false],
    dict: [{ a: 1 }, {}, Object.create(null)],
    object: [{ nested: { deep: [1] } }],
    list: [[1, "a"], []],
    array: [[{}], []],
    any: [1, "s", null, [1], { a: 1 }, true],
  };
  const refused: Record<(typeof TYPES)[number], unknown[]> = {
    int: [3.5, "3", true, null, [3]],
    float: ["3.5", false, null],
    number: ["1", null, {}],
    str: [1, null, ["x"], true],
    string: [2, null],
    bool: ["true", 0, 1, null],
    boolean: ["false", null],
    dict: [[1], "x", 3, null, date, new Point()],
    object: [[], null, new Map()],
    list: ["abc", { 0: 1 }, 1, null],
    array: [{ length: 0 }, null],
    any: [],
  };

  for (const type of TYPES) {
    it(`type ${type}: accepts fitting values and refuses others with INVALID_ARGUMENTS`, async () => {
      for (const value of accepted[type]) {
        // Positionally, and by name.
        await expect(core.execute(`Calc`, `echo_${type}`, [value])).resolves.toEqual(value);
        await expect(core.execute(`Calc`, `echo_${type}`, { v: value })).resolves.toEqual(value);
      }
      for (const value of refused[type]) {
        const error = await rejection(core.execute("Calc", `echo_${type}`, [value]));
        expect(error.code, `${type} <- ${String(value)}`).toBe("INVALID_ARGUMENTS");
        expect(error.message).toContain('"v"');
        expect(error.message).toContain(type);
      }
    });
  }

  it("a required argument that is missing is INVALID_ARGUMENTS, and the plugin does not run", async () => {
    rec.events.length = 0;
    for (const args of [undefined, [], {}, { opt: 2 }, [undefined, 2]]) {
      const error = await rejection(core.execute("Calc", "need", args));
      expect(error.code).toBe("INVALID_ARGUMENTS");
      expect(error.message).toContain('missing required argument "req"');
    }
    expect(rec.events).toEqual([]);
  });

  it("manifest defaults fill missing arguments; the method's own default applies otherwise", async () => {
    await expect(core.execute("Calc", "need", [1])).resolves.toEqual([1, 5, "js"]);
    await expect(core.execute("Calc", "need", { req: 1 })).resolves.toEqual([1, 5, "js"]);
    await expect(core.execute("Calc", "need", { req: 1, extra: "x" })).resolves.toEqual([
      1,
      5,
      "x",
    ]);
    await expect(core.execute("Calc", "need", [1, undefined, "y"])).resolves.toEqual([1, 5, "y"]);
    await expect(core.execute("Calc", "need", [1, 2, "z"])).resolves.toEqual([1, 2, "z"]);
    expect(core.executeSync("Calc", "need", 4)).toEqual([4, 5, "js"]);
  });

  it("wrong types are refused before the plugin runs", async () => {
    rec.events.length = 0;
    expect((await rejection(core.execute("Calc", "need", ["1"]))).code).toBe("INVALID_ARGUMENTS");
    expect((await rejection(core.execute("Calc", "need", [1, 2, 3]))).code).toBe(
      "INVALID_ARGUMENTS",
    );
    expect((await rejection(core.execute("Calc", "need", { req: 1.5 }))).code).toBe(
      "INVALID_ARGUMENTS",
    );
    expect(rec.events).toEqual([]);
    // The endpoint still answers a good call.
    await expect(core.execute("Calc", "need", [7])).resolves.toEqual([7, 5, "js"]);
  });

  it("a default object is fresh for every call", async () => {
    await expect(core.execute("Calc", "bump")).resolves.toBe(2);
    await expect(core.execute("Calc", "bump")).resolves.toBe(2);
    await expect(core.execute("Calc", "bump", [{ n: 10 }])).resolves.toBe(11);
  });

  it("does not let the plugin's mutation of named-argument objects reach a later call", async () => {
    const cfg = { n: 1 };
    await expect(core.execute("Calc", "bump", { cfg })).resolves.toBe(2);
    await expect(core.execute("Calc", "bump")).resolves.toBe(2);
  });
});

describe("errors of a call", () => {
  it("execute never throws synchronously; it returns a rejected promise", async () => {
    const bad: Array<[string, string, unknown, object?]> = [
      ["Nope", "x", undefined],
      ["Calc", "nope", undefined],
      ["Calc", "echo_int", ["x"]],
      ["Calc", "gen", undefined],
      ["Calc", "fail_sync", undefined],
      ["Calc", "add", undefined, { host: "remote" }],
      ["Calc", "add", undefined, { pluginUuid: "no-such-uuid" }],
    ];
    const codes: string[] = [];
    for (const [plugin, method, args, options] of bad) {
      let promise: Promise<unknown> | undefined;
      expect(() => {
        promise = core.execute(plugin, method, args, options);
      }).not.toThrow();
      codes.push((await rejection(promise as Promise<unknown>)).code);
    }
    expect(codes).toEqual([
      "PLUGIN_NOT_FOUND",
      "ENDPOINT_NOT_FOUND",
      "INVALID_ARGUMENTS",
      "WRONG_KIND",
      "PLUGIN_ERROR",
      "NO_NODE",
      "PLUGIN_NOT_FOUND",
    ]);
  });

  it("every error carries code, requestId, plugin and method; request ids differ", async () => {
    const a = await rejection(core.execute("Calc", "nope"));
    const b = await rejection(core.execute("Calc", "nope"));
    for (const error of [a, b]) {
      expect(error).toBeInstanceOf(RequestError);
      expect(error.code).toBe("ENDPOINT_NOT_FOUND");
      expect(error.plugin).toBe("Calc");
      expect(error.method).toBe("nope");
      expect(typeof error.requestId).toBe("string");
      expect(error.requestId).not.toBe("");
    }
    expect(a.requestId).not.toBe(b.requestId);
  });

  it("PLUGIN_NOT_FOUND names the plugin", async () => {
    const error = await rejection(core.execute("Missing", "x"));
    expect(error.code).toBe("PLUGIN_NOT_FOUND");
    expect(error.message).toContain("Missing");
  });

  it("ENDPOINT_NOT_FOUND lists the endpoints; only declared access names are callable", async () => {
    const error = await rejection(core.execute("Calc", "nope"));
    expect(error.message).toContain("add");
    expect((await rejection(core.execute("Calc", "hidden"))).code).toBe("ENDPOINT_NOT_FOUND");
    expect((await rejection(core.execute("Calc", "internalName"))).code).toBe("ENDPOINT_NOT_FOUND");
    await expect(core.execute("Calc", "publicName")).resolves.toBe("renamed");
  });

  it("a plugin that throws gives PLUGIN_ERROR with its message, errorName and cause", async () => {
    const sync = await rejection(core.execute("Calc", "fail_sync"));
    expect(sync.code).toBe("PLUGIN_ERROR");
    expect(sync.message).toContain("bad sync");
    expect(sync.errorName).toBe("TypeError");
    expect(sync.cause).toBeInstanceOf(TypeError);
    expect((sync.cause as Error).message).toBe("bad sync");
    expect(sync.plugin).toBe("Calc");
    expect(sync.method).toBe("fail_sync");

    const async = await rejection(core.execute("Calc", "fail_async"));
    expect(async.code).toBe("PLUGIN_ERROR");
    expect(async.message).toContain("bad async");
    expect(async.errorName).toBe("RangeError");
    expect(async.cause).toBeInstanceOf(RangeError);

    const str = await rejection(core.execute("Calc", "throw_string"));
    expect(str.code).toBe("PLUGIN_ERROR");
    expect(str.message).toContain("just a string");
    expect(str.cause).toBe("just a string");

    // The plugin keeps answering.
    await expect(core.execute("Calc", "add", [1, 1])).resolves.toBe(2);
  });

  it("timeout fails a slow call with TIMEOUT; a fast one still resolves", async () => {
    const started = performance.now();
    const error = await rejection(core.execute("Calc", "slow", [2000], { timeout: 50 }));
    expect(error.code).toBe("TIMEOUT");
    expect(error.message).toContain("50 ms");
    expect(performance.now() - started).toBeLessThan(1500);
    await expect(core.execute("Calc", "slow", [5], { timeout: 2000 })).resolves.toBe("slow done");
  });

  it("calls with timeouts each end at their own deadline, however they interleave", async () => {
    const started = performance.now();
    const since = () => performance.now() - started;
    const endsAt = (call: Promise<unknown>) =>
      call.then(
        (value) => ({ value, ms: since() }),
        (error: RequestError) => ({ code: error.code, ms: since() }),
      );
    const first = endsAt(core.execute("Calc", "slow", [2000], { timeout: 300 }));
    const quick = endsAt(core.execute("Calc", "slow", [5], { timeout: 300 }));
    await new Promise((resolve) => setTimeout(resolve, 40));
    const later = since();
    const second = endsAt(core.execute("Calc", "slow", [2000], { timeout: 300 }));
    const short = endsAt(core.execute("Calc", "slow", [2000], { timeout: 20 }));
    const [a, q, b, s] = await Promise.all([first, quick, second, short]);
    expect(q).toMatchObject({ value: "slow done" });
    for (const ended of [a, b, s]) expect(ended).toMatchObject({ code: "TIMEOUT" });
    // Never early; the short one well before the first, the second after it.
    expect(a.ms).toBeGreaterThanOrEqual(300);
    expect(b.ms).toBeGreaterThanOrEqual(later + 300);
    expect(s.ms).toBeGreaterThanOrEqual(later + 20);
    expect(s.ms).toBeLessThan(a.ms);
    expect(a.ms).toBeLessThan(b.ms);
  });

  it("a call that ended before its timeout leaves no timer keeping the process alive", async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
    const before = timers();
    await expect(core.execute("Calc", "slow", [5], { timeout: 60_000 })).resolves.toBe("slow done");
    expect(timers()).toBeLessThanOrEqual(before);
  });

  it("aborting the signal fails the call with ABORTED", async () => {
    const controller = new AbortController();
    const call = core.execute("Calc", "slow", [2000], { signal: controller.signal });
    setTimeout(() => controller.abort(new Error("user gave up")), 20);
    const error = await rejection(call);
    expect(error.code).toBe("ABORTED");
    expect(error.message).toContain("user gave up");
    await expect(
      core.execute("Calc", "slow", [1], { signal: new AbortController().signal }),
    ).resolves.toBe("slow done");
  });

  it("an already-aborted signal fails execute() with ABORTED", async () => {
    const controller = new AbortController();
    controller.abort();
    const error = await rejection(
      core.execute("Calc", "slow", [300], { signal: controller.signal }),
    );
    expect(error.code).toBe("ABORTED");
  });

  it('host "local" and this hostname run here; "remote" and other hostnames fail with NO_NODE', async () => {
    await expect(core.execute("Calc", "add", [1, 2], { host: "local" })).resolves.toBe(3);
    await expect(core.execute("Calc", "add", [1, 2], { host: "any" })).resolves.toBe(3);
    await expect(core.execute("Calc", "add", [1, 2], { host: core.hostname })).resolves.toBe(3);
    const remote = await rejection(core.execute("Calc", "add", [1, 2], { host: "remote" }));
    expect(remote.code).toBe("NO_NODE");
    const other = await rejection(core.execute("Calc", "add", [1, 2], { host: "elsewhere-42" }));
    expect(other.code).toBe("NO_NODE");
    expect(other.message).toContain("elsewhere-42");
    expect(thrown(() => core.executeSync("Calc", "add", [1], { host: "remote" })).code).toBe(
      "NO_NODE",
    );
  });

  it("pluginUuid targets exactly that instance", async () => {
    const uuid = core.getPluginInfo("Calc")?.uuid as string;
    await expect(core.execute("Calc", "add", [1, 2], { pluginUuid: uuid })).resolves.toBe(3);
    const error = await rejection(
      core.execute("Calc", "add", [1, 2], { pluginUuid: "00000000-0000-0000-0000-000000000000" }),
    );
    expect(error.code).toBe("PLUGIN_NOT_FOUND");
  });
});
