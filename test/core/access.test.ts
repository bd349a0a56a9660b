/**
 * Who may call: the application reaches every declared endpoint; a plugin needs
 * `accessible_by_other_plugins: true` unless it calls itself. Checked for the four ways to
 * call, from inside a plugin and through PluginCore with `author`.
 */
import { type PluginCore, RequestError } from "aio-assistant-core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  cleanup,
  collect,
  ep,
  pluginClass,
  recorder,
  rejection,
  startFixture,
  thrown,
} from "./helpers.js";

const rec = recorder();
const open = { accessible_by_other_plugins: true };

const OWNER = pluginClass(
  "Owner",
  `
  open_fn() { return "open"; }
  closed_fn() { ${rec.push(`"closed_fn ran"`)} return "closed"; }
  *open_gen() { yield "open item"; }
  *closed_gen() { ${rec.push(`"closed_gen ran"`)} yield "closed item"; }
  async *closed_agen() { yield "closed async item"; }
  async self_call() { return this.execute("Owner", "closed_fn"); }
  self_call_sync() { return this.executeSync("Owner", "closed_fn"); }
  async self_stream() {
    const out: unknown[] = [];
    for await (const x of this.executeStream("Owner", "closed_agen")) out.push(x);
    return out;
  }
  self_stream_sync() { return [...this.executeStreamSync("Owner", "closed_gen")]; }`,
);

const GUEST = pluginClass(
  "Guest",
  `
  async attempt(how: string, plugin: string, method: string) {
    try {
      switch (how) {
        case "execute": return { ok: await this.execute(plugin, method) };
        case "executeSync": return { ok: this.executeSync(plugin, method) };
        case "executeStream": {
          const out: unknown[] = [];
          for await (const x of this.executeStream(plugin, method)) out.push(x);
          return { ok: out };
        }
        default: return { ok: [...this.executeStreamSync(plugin, method)] };
      }
    } catch (e) {
      const err = e as { code: string; message: string; plugin: string; method: string };
      return { code: err.code, message: err.message, plugin: err.plugin, method: err.method };
    }
  }
  async raw(plugin: string, method: string) { return this.execute(plugin, method); }`,
);

let core: PluginCore;

beforeAll(async () => {
  ({ core } = await startFixture({
    plugins: {
      Owner: {
        code: OWNER,
        manifest: {
          endpoints: [
            ep("open_fn", [], open),
            ep("closed_fn", [], { accessible_by_other_plugins: false }),
            ep("open_gen", [], open),
            ep("closed_gen"),
            ep("closed_agen"),
            ep("self_call"),
            ep("self_call_sync"),
            ep("self_stream"),
            ep("self_stream_sync"),
          ],
        },
      },
      Guest: {
        code: GUEST,
        manifest: {
          endpoints: [ep("attempt", ["how", "plugin", "method"]), ep("raw", ["plugin", "method"])],
        },
      },
    },
  }));
});
afterAll(cleanup);
beforeEach(() => {
  rec.events.length = 0;
});

describe("the application", () => {
  it("may call every declared endpoint, accessible to other plugins or not", async () => {
    await expect(core.execute("Owner", "open_fn")).resolves.toBe("open");
    await expect(core.execute("Owner", "closed_fn")).resolves.toBe("closed");
    expect(core.executeSync("Owner", "closed_fn")).toBe("closed");
    await expect(collect(core.executeStream("Owner", "closed_gen"))).resolves.toEqual([
      "closed item",
    ]);
    await expect(collect(core.executeStream("Owner", "closed_agen"))).resolves.toEqual([
      "closed async item",
    ]);
    expect([...core.executeStreamSync("Owner", "closed_gen")]).toEqual(["closed item"]);
  });

  it("is any author that is not a plugin's name", async () => {
    await expect(core.execute("Owner", "closed_fn", undefined, { author: "my-app" })).resolves.toBe(
      "closed",
    );
  });
});

describe("a plugin calling another plugin", () => {
  const ways = [
    ["execute", "open_fn", "closed_fn", "open"],
    ["executeSync", "open_fn", "closed_fn", "open"],
    ["executeStream", "open_gen", "closed_gen", ["open item"]],
    ["executeStreamSync", "open_gen", "closed_gen", ["open item"]],
  ] as const;

  for (const [how, openMethod, closedMethod, expected] of ways) {
    it(`${how}: reaches an accessible endpoint, gets ACCESS_DENIED on the others`, async () => {
      await expect(core.execute("Guest", "attempt", [how, "Owner", openMethod])).resolves.toEqual({
        ok: expected,
      });
      const denied = await core.execute<Record<string, string>>("Guest", "attempt", [
        how,
        "Owner",
        closedMethod,
      ]);
      expect(denied.code).toBe("ACCESS_DENIED");
      expect(denied.plugin).toBe("Owner");
      expect(denied.method).toBe(closedMethod);
      expect(denied.message).toContain("Guest");
      expect(denied.message).toContain("accessible_by_other_plugins");
      // The target never ran.
      expect(rec.events).toEqual([]);
    });
  }

  it("an async generator that is not accessible is refused too", async () => {
    const denied = await core.execute<Record<string, string>>("Guest", "attempt", [
      "executeStream",
      "Owner",
      "closed_agen",
    ]);
    expect(denied.code).toBe("ACCESS_DENIED");
  });

  it("the refusal reaches the application as the cause of the plugin's PLUGIN_ERROR", async () => {
    const error = await rejection(core.execute("Guest", "raw", ["Owner", "closed_fn"]));
    expect(error.code).toBe("PLUGIN_ERROR");
    expect(error.plugin).toBe("Guest");
    expect(error.cause).toBeInstanceOf(RequestError);
    expect((error.cause as RequestError).code).toBe("ACCESS_DENIED");
    await expect(core.execute("Guest", "raw", ["Owner", "open_fn"])).resolves.toBe("open");
  });

  it("a plugin may call its own endpoints that are not accessible to others", async () => {
    await expect(core.execute("Owner", "self_call")).resolves.toBe("closed");
    await expect(core.execute("Owner", "self_call_sync")).resolves.toBe("closed");
    await expect(core.execute("Owner", "self_stream")).resolves.toEqual(["closed async item"]);
    await expect(core.execute("Owner", "self_stream_sync")).resolves.toEqual(["closed item"]);
  });
});

describe("PluginCore calls with `author` set to a plugin's name", () => {
  it("are subject to that plugin's access rules", async () => {
    const as = { author: "Guest" };
    const error = await rejection(core.execute("Owner", "closed_fn", undefined, as));
    expect(error.code).toBe("ACCESS_DENIED");
    expect(thrown(() => core.executeSync("Owner", "closed_fn", undefined, as)).code).toBe(
      "ACCESS_DENIED",
    );
    expect(
      (await rejection(core.executeStream("Owner", "closed_gen", undefined, as).next())).code,
    ).toBe("ACCESS_DENIED");
    expect(
      thrown(() => [...core.executeStreamSync("Owner", "closed_gen", undefined, as)]).code,
    ).toBe("ACCESS_DENIED");
    expect(rec.events).toEqual([]);

    await expect(core.execute("Owner", "open_fn", undefined, as)).resolves.toBe("open");
    expect(core.executeSync("Owner", "open_fn", undefined, as)).toBe("open");
    await expect(collect(core.executeStream("Owner", "open_gen", undefined, as))).resolves.toEqual([
      "open item",
    ]);
  });

  it("may reach the plugin's own endpoints", async () => {
    await expect(core.execute("Owner", "closed_fn", undefined, { author: "Owner" })).resolves.toBe(
      "closed",
    );
    expect([
      ...core.executeStreamSync("Owner", "closed_gen", undefined, { author: "Owner" }),
    ]).toEqual(["closed item"]);
  });
});
