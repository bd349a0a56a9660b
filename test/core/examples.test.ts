/**
 * The bundled examples (examples/config.yml and examples/plugins_test). The core is built from
 * a config object with baseDir examples/, so no log file is written into examples/.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { ConfigObject, PluginCore } from "aio-assistant-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { cleanup, collect, EXAMPLES, newCore, rejection } from "./helpers.js";

const QUIETER = { console_log_level: "CRITICAL", log_dir: "" } as const;

/** examples/config.yml as an object, with quiet logging and no log file. */
function examplesConfig(runOnEnable: boolean): ConfigObject {
  const data = parse(readFileSync(join(EXAMPLES, "config.yml"), "utf8")) as ConfigObject;
  return {
    ...data,
    plugins: (data.plugins ?? []).map((p) =>
      p.name === "InteropCaller" ? { ...p, arguments: { run_on_enable: runOnEnable } } : p,
    ),
    general: { ...data.general, ...QUIETER },
    baseDir: EXAMPLES,
  };
}

let core: PluginCore;

beforeAll(async () => {
  core = newCore(examplesConfig(false));
  await core.start();
});
afterAll(cleanup);

describe("examples/config.yml", () => {
  it("starts all seven example plugins", () => {
    const list = core.listPlugins();
    expect(list.map((p) => [p.name, p.state])).toEqual([
      ["PluginA", "enabled"],
      ["PluginB", "enabled"],
      ["PluginC", "enabled"],
      ["InteropTarget", "enabled"],
      ["InteropCaller", "enabled"],
      ["NotifierSubscriber", "enabled"],
      ["NotifierPublisher", "enabled"],
    ]);
    for (const info of list) {
      expect(info.version).toBe("0.0.1");
      expect(info.error).toBeUndefined();
      expect(info.remote).toBe(true);
    }
    expect(core.getPluginInfo("PluginA")?.path).toBe(join(EXAMPLES, "plugins_test", "pluginA_v1"));
    expect(core.getPluginInfo("PluginB")?.path).toBe(join(EXAMPLES, "plugins_test", "PluginB"));
  });

  it("starts from the file's own settings too (InteropCaller runs its suite on enable)", async () => {
    const own = newCore(examplesConfig(true));
    await own.start();
    expect(own.listPlugins().every((p) => p.state === "enabled")).toBe(true);
    await expect(own.execute("PluginB", "calculate_square", 6)).resolves.toBe(36);
    await expect(own.execute("InteropCaller", "interop_run")).resolves.toBe("OK");
    await expect(own.execute("NotifierPublisher", "run_cases")).resolves.toBe("OK");
    await own.close();
  });
});

describe("PluginB", () => {
  it("calculate_square(6) = 36, however it is called", async () => {
    await expect(core.execute("PluginB", "calculate_square", 6)).resolves.toBe(36);
    await expect(core.execute("PluginB", "calculate_square", [6])).resolves.toBe(36);
    await expect(core.execute("PluginB", "calculate_square", { number: 6 })).resolves.toBe(36);
    expect(core.executeSync("PluginB", "calculate_square", 6)).toBe(36);
    await expect(core.execute("PluginB", "calculate_square", 1.5)).resolves.toBe(2.25);
  });

  it("refuses a non-number with INVALID_ARGUMENTS", async () => {
    const error = await rejection(core.execute("PluginB", "calculate_square", "6"));
    expect(error.code).toBe("INVALID_ARGUMENTS");
    expect(error.message).toContain('"number"');
  });
});

describe("PluginA", () => {
  it("perform_operation squares through PluginB", async () => {
    await expect(core.execute("PluginA", "perform_operation", 5)).resolves.toBe(25);
    await expect(core.execute("PluginA", "perform_operation", { argument: 7 })).resolves.toBe(49);
  });

  it("perform_operation_stream_ABC yields the square five times, then 'ended stream test'", async () => {
    const started = performance.now();
    const items = await collect(core.executeStream("PluginA", "perform_operation_stream_ABC", 3));
    expect(items).toEqual([9, 9, 9, 9, 9, "ended stream test"]);
    expect(performance.now() - started).toBeGreaterThanOrEqual(2400);
  });

  it("perform_operation_stream_ABC is a stream: execute() names executeStream", async () => {
    const error = await rejection(core.execute("PluginA", "perform_operation_stream_ABC", 3));
    expect(error.code).toBe("WRONG_KIND");
    expect(error.message).toContain("executeStream()");
  });
});

describe("PluginC", () => {
  it("perform_operation calls PluginB with executeSync, and works through executeSync", async () => {
    expect(core.executeSync("PluginC", "perform_operation", 4)).toBe(16);
    expect(core.executeSync("PluginC", "perform_operation", [9])).toBe(81);
    await expect(core.execute("PluginC", "perform_operation", 3)).resolves.toBe(9);
  });
});

describe("InteropTarget and InteropCaller", () => {
  it("interop_run returns OK", async () => {
    await expect(core.execute("InteropCaller", "interop_run")).resolves.toBe("OK");
    await expect(core.execute("InteropCaller", "interop_run", "local")).resolves.toBe("OK");
    await expect(core.execute("InteropCaller", "interop_run", { host: "any" })).resolves.toBe("OK");
  });

  it("interop_run_sync passes in InteropCaller's worker thread, as the config runs it", async () => {
    expect(core.getPluginInfo("InteropCaller")?.isolation).toBe("worker");
    await expect(core.execute("InteropCaller", "interop_run_sync")).resolves.toBe("OK");
    await expect(core.execute("InteropCaller", "interop_run")).resolves.toBe("OK");
  });

  it("interop_run_sync on the main thread fails exactly the cases that target async code", async () => {
    // By design (see InteropCaller.run_suite_sync): executeSync/executeStreamSync of an async
    // target throw WOULD_DEADLOCK on the main thread: 3 of the 5 cases.
    const config = examplesConfig(false);
    config.plugins = config.plugins?.map((p) =>
      p.name === "InteropCaller" ? { ...p, isolation: "none" } : p,
    );
    const mainThread = newCore(config);
    await mainThread.start();
    expect(mainThread.executeSync("InteropCaller", "interop_run_sync")).toBe("FAIL (3 failed)");
  });

  it("InteropTarget serves every kind, with the methods' own defaults", async () => {
    await expect(core.execute("InteropTarget", "it_sync_add", 5)).resolves.toBe(6);
    await expect(core.execute("InteropTarget", "it_async_add", { a: 7, b: 8 })).resolves.toBe(15);
    expect(core.executeSync("InteropTarget", "it_sync_add", [2, 3])).toBe(5);
    expect([
      ...core.executeStreamSync("InteropTarget", "it_sync_gen", { n: 2, prefix: "q", delay_ms: 0 }),
    ]).toEqual(["q0", "q1"]);
    await expect(
      collect(core.executeStream("InteropTarget", "it_async_gen", { n: 3, prefix: "a" })),
    ).resolves.toEqual(["a0", "a1", "a2"]);
    expect((await rejection(core.execute("InteropTarget", "it_sync_gen", { n: 1.5 }))).code).toBe(
      "WRONG_KIND",
    );
    expect(
      (await rejection(core.executeStream("InteropTarget", "it_sync_gen", { n: 1.5 }).next())).code,
    ).toBe("INVALID_ARGUMENTS");
  });
});
