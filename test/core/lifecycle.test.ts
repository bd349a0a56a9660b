/**
 * Plugin lifecycle: start, enable/disable, pop/load, purge, reload, events, hook time limits,
 * the Plugin API seen from inside a plugin, and close().
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, type PluginInfo, RequestError } from "aio-assistant-core";
import { afterEach, describe, expect, it } from "vitest";
import {
  cleanup,
  ep,
  expectHealthy,
  fixture,
  HEALTHY,
  infos,
  newCore,
  nextEvent,
  pluginClass,
  QUIET,
  recorder,
  rejection,
  SLEEP,
  startFixture,
  tempDir,
  thrown,
} from "./helpers.js";

afterEach(cleanup);

/** A plugin that records its hooks; `value()` returns `tag`. */
function hooked(name: string, rec: ReturnType<typeof recorder>, tag = "v1") {
  return {
    code: pluginClass(
      name,
      `
  override onLoad(args: unknown) { ${rec.push(`["${name}", "onLoad", args]`)} }
  override onEnable() { ${rec.push(`["${name}", "onEnable"]`)} }
  override onDisable() { ${rec.push(`["${name}", "onDisable"]`)} }
  value() { return "${tag}"; }`,
    ),
    manifest: { endpoints: [ep("value", [], { accessible_by_other_plugins: true })] },
  };
}

describe("start", () => {
  it("loads and enables every configured plugin, once however often it is called", async () => {
    const rec = recorder();
    const fx = fixture({ plugins: { A: hooked("A", rec), B: hooked("B", rec) } });
    const core = newCore(fx.configFile);
    const first = core.start();
    expect(core.start()).toBe(first);
    await Promise.all([first, core.waitUntilReady(), core.waitUntilReady()]);
    await core.start();

    const list = core.listPlugins();
    expect(list.map((p) => [p.name, p.state]).sort()).toEqual([
      ["A", "enabled"],
      ["B", "enabled"],
    ]);
    for (const info of list) {
      expect(info.version).toBe("1.0.0");
      expect(info.uuid).toMatch(/^[0-9a-f-]{36}$/);
      expect(info.error).toBeUndefined();
      expect(info.path).toBe(fx.pluginDir(info.name));
    }
    // Each hook ran exactly once per plugin, onLoad before onEnable.
    for (const name of ["A", "B"]) {
      expect(
        rec.events.filter((e) => (e as string[])[0] === name).map((e) => (e as string[])[1]),
      ).toEqual(["onLoad", "onEnable"]);
    }
    await expect(core.execute("A", "value")).resolves.toBe("v1");
    await expect(core.execute("B", "value")).resolves.toBe("v1");
  });

  it("does not load `enabled: false` entries and lists them as unloaded", async () => {
    const rec = recorder();
    const { core } = await startFixture({
      plugins: { On: hooked("On", rec), Off: hooked("Off", rec) },
      configYaml: `plugins:
  - name: On
    enabled: true
  - name: Off
    enabled: false
general:
  plugin_package: plugins
  console_log_level: ERROR
  log_dir: ""
`,
    });
    expect(core.getPluginInfo("On")?.state).toBe("enabled");
    expect(core.getPluginInfo("Off")?.state).toBe("unloaded");
    expect(infos(core, "Off")).toHaveLength(1);
    expect(rec.events.some((e) => (e as string[])[0] === "Off")).toBe(false);
    expect((await rejection(core.execute("Off", "value"))).code).toBe("PLUGIN_NOT_FOUND");

    // It can still be loaded and enabled by hand.
    await core.loadPlugin("Off");
    expect(core.getPluginInfo("Off")?.state).toBe("loaded");
    expect((await rejection(core.execute("Off", "value"))).code).toBe("PLUGIN_DISABLED");
    await core.enablePlugin("Off");
    await expect(core.execute("Off", "value")).resolves.toBe("v1");
  });

  it("lets onEnable call a plugin listed after it that is still starting", async () => {
    const rec = recorder();
    const { core } = await startFixture({
      plugins: {
        Early: {
          code: pluginClass(
            "Early",
            `
  override async onEnable() {
    const got = await this.execute("Late", "value");
    ${rec.push(`["Early got", got]`)}
  }
  ok() { return "early"; }`,
          ),
          manifest: { endpoints: [ep("ok")] },
        },
        Late: {
          code: pluginClass(
            "Late",
            `
  override async onLoad() { await sleep(80); }
  override async onEnable() { await sleep(80); ${rec.push(`"Late enabled"`)} }
  value() { return "late value"; }`,
            SLEEP,
          ),
          manifest: { endpoints: [ep("value", [], { accessible_by_other_plugins: true })] },
        },
      },
    });
    expect(core.getPluginInfo("Early")?.state).toBe("enabled");
    expect(core.getPluginInfo("Late")?.state).toBe("enabled");
    // Late was fully enabled before Early's call reached it.
    expect(rec.events).toEqual(["Late enabled", ["Early got", "late value"]]);
  });

  it("lets onEnable call a plugin listed before it", async () => {
    const rec = recorder();
    const { core } = await startFixture({
      plugins: {
        First: {
          code: pluginClass(
            "First",
            `override async onEnable() { await sleep(50); }
  value() { return 1; }`,
            SLEEP,
          ),
          manifest: { endpoints: [ep("value", [], { accessible_by_other_plugins: true })] },
        },
        Second: {
          code: pluginClass(
            "Second",
            `override async onEnable() { ${rec.push(`await this.execute("First", "value")`)} }`,
          ),
          manifest: {},
        },
      },
    });
    expect(core.getPluginInfo("Second")?.state).toBe("enabled");
    expect(rec.events).toEqual([1]);
  });

  it("makes an application call issued once the plugin is loaded wait for its onEnable", async () => {
    const fx = fixture({
      plugins: {
        Slow: {
          code: pluginClass(
            "Slow",
            `override async onEnable() { await sleep(100); }
  value() { return "ready"; }`,
            SLEEP,
          ),
          manifest: { endpoints: [ep("value")] },
        },
      },
    });
    const core = newCore(fx.configFile);
    const loaded = nextEvent(core, "plugin:loaded", "Slow");
    const starting = core.start();
    await loaded;
    expect(core.getPluginInfo("Slow")?.state).toBe("loaded");
    await expect(core.execute("Slow", "value")).resolves.toBe("ready");
    await starting;
  });

  it("makes an application call issued right after start() wait for the plugin", async () => {
    const fx = fixture({
      plugins: {
        Slow: {
          code: pluginClass(
            "Slow",
            `override async onEnable() { await sleep(100); }
  value() { return "ready"; }`,
            SLEEP,
          ),
          manifest: { endpoints: [ep("value")] },
        },
      },
    });
    const core = newCore(fx.configFile);
    const starting = core.start();
    const call = core.execute("Slow", "value");
    await expect(call).resolves.toBe("ready");
    await starting;
  });

  it("makes a call waiting for a plugin whose onEnable then fails get PLUGIN_DISABLED", async () => {
    const fx = fixture({
      plugins: {
        Broken: {
          code: pluginClass(
            "Broken",
            `override async onEnable() { await sleep(30); throw new Error("cannot start"); }
  value() { return 1; }`,
            SLEEP,
          ),
          manifest: { endpoints: [ep("value")] },
        },
        Healthy: HEALTHY,
      },
      configYaml: `plugins:\n  - name: Broken\n  - name: Healthy\ngeneral:\n  plugin_package: plugins\n  console_log_level: CRITICAL\n  log_dir: ""\n`,
    });
    const core = newCore(fx.configFile);
    const loaded = nextEvent(core, "plugin:loaded", "Broken");
    const starting = core.start();
    await loaded;
    const error = await rejection(core.execute("Broken", "value"));
    expect(error.code).toBe("PLUGIN_DISABLED");
    expect(error.message).toContain("cannot start");
    await starting;
    expect(core.getPluginInfo("Broken")?.state).toBe("failed");
    await expectHealthy(core);
  });

  it("a call's timeout also bounds its wait for a plugin that is starting", async () => {
    const fx = fixture({
      plugins: {
        Slow: {
          code: pluginClass(
            "Slow",
            `override async onEnable() { await sleep(300); }
  value() { return "ready"; }`,
            SLEEP,
          ),
          manifest: { endpoints: [ep("value")] },
        },
      },
    });
    const core = newCore(fx.configFile);
    const loaded = nextEvent(core, "plugin:loaded", "Slow");
    const starting = core.start();
    await loaded;
    const error = await rejection(core.execute("Slow", "value", undefined, { timeout: 30 }));
    expect(error.code).toBe("TIMEOUT");
    await starting;
  });

  it("a call that waited for its plugin to start still times out at its deadline, before later calls", async () => {
    const hang = `async hang() { await sleep(2000); }`;
    const fx = fixture({
      plugins: {
        Slow: {
          code: pluginClass(
            "Slow",
            `override async onEnable() { await sleep(100); }\n  ${hang}`,
            SLEEP,
          ),
          manifest: { endpoints: [ep("hang")] },
        },
        Quick: {
          code: pluginClass("Quick", hang, SLEEP),
          manifest: { endpoints: [ep("hang")] },
        },
      },
    });
    const core = newCore(fx.configFile);
    const slowLoaded = nextEvent(core, "plugin:loaded", "Slow");
    const quickEnabled = nextEvent(core, "plugin:enabled", "Quick");
    const starting = core.start();
    await Promise.all([slowLoaded, quickEnabled]);
    const started = performance.now();
    const endsAt = (call: Promise<unknown>) =>
      call.then(
        () => ({ code: "resolved", ms: performance.now() - started }),
        (error: RequestError) => ({ code: error.code, ms: performance.now() - started }),
      );
    // Slow's call waits for its start, then runs with the deadline it got first, earlier than
    // that of Quick's call made meanwhile.
    const slow = endsAt(core.execute("Slow", "hang", undefined, { timeout: 300 }));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const later = performance.now() - started;
    const quick = endsAt(core.execute("Quick", "hang", undefined, { timeout: 300 }));
    const [s, q] = await Promise.all([slow, quick]);
    expect(s.code).toBe("TIMEOUT");
    expect(q.code).toBe("TIMEOUT");
    expect(s.ms).toBeGreaterThanOrEqual(300);
    expect(q.ms).toBeGreaterThanOrEqual(later + 300);
    expect(s.ms).toBeLessThan(q.ms);
    await starting;
  });

  it("makes a call issued right after start() to a plugin that then fails get PLUGIN_DISABLED", async () => {
    const fx = fixture({
      plugins: {
        Broken: {
          code: pluginClass(
            "Broken",
            `override async onEnable() { await sleep(30); throw new Error("cannot start"); }
  value() { return 1; }`,
            SLEEP,
          ),
          manifest: { endpoints: [ep("value")] },
        },
        Healthy: HEALTHY,
      },
    });
    const core = newCore(fx.configFile);
    const starting = core.start();
    const error = await rejection(core.execute("Broken", "value"));
    expect(error.code).toBe("PLUGIN_DISABLED");
    expect(error.message).toContain("cannot start");
    await starting;
    await expectHealthy(core);
  });

  it("passes a config object whose relative paths resolve against baseDir", async () => {
    const fx = fixture({ plugins: { Healthy: HEALTHY } });
    const core = newCore({
      plugins: [{ name: "Healthy", path: "./plugins/Healthy" }],
      general: QUIET,
      baseDir: fx.dir,
    });
    await core.start();
    expect(core.getPluginInfo("Healthy")?.path).toBe(fx.pluginDir("Healthy"));
    await expectHealthy(core);
  });

  it("resolves plugin_package relative to the config file, not the working directory", async () => {
    const fx = fixture({ plugins: { Healthy: HEALTHY } });
    expect(process.cwd()).not.toBe(fx.dir);
    const core = newCore(fx.configFile);
    await core.start();
    await expectHealthy(core);
  });
});

describe("plugin entry files", () => {
  it("loads plugin.mjs and plugin.js exporting the class as default", async () => {
    const { core } = await startFixture({
      plugins: {
        Mjs: {
          file: "plugin.mjs",
          code: `import { Plugin } from "aio-assistant-core";
export class Mjs extends Plugin { hi() { return "mjs"; } }`,
          manifest: { endpoints: [ep("hi")] },
        },
        Js: {
          file: "plugin.js",
          code: `import { Plugin } from "aio-assistant-core";
export default class Whatever extends Plugin { hi() { return "js default"; } }`,
          manifest: { endpoints: [ep("hi")] },
        },
      },
    });
    await expect(core.execute("Mjs", "hi")).resolves.toBe("mjs");
    await expect(core.execute("Js", "hi")).resolves.toBe("js default");
  });

  it("loads plugin.mjs from a folder with no package.json", async () => {
    const { core } = await startFixture({
      packageJson: false,
      plugins: {
        Mjs: {
          file: "plugin.mjs",
          code: `import { Plugin } from "aio-assistant-core";
export class Mjs extends Plugin { hi() { return "mjs"; } }`,
          manifest: { endpoints: [ep("hi")] },
        },
      },
    });
    await expect(core.execute("Mjs", "hi")).resolves.toBe("mjs");
  });

  it("loads plugin.ts from a folder with no package.json (ES module by contract)", async () => {
    const { core } = await startFixture({ packageJson: false, plugins: { Healthy: HEALTHY } });
    expect(core.getPluginInfo("Healthy")?.error).toBeUndefined();
    await expectHealthy(core);
  });
});

describe("time limits of hooks", () => {
  const hanging = (hook: "onLoad" | "onEnable") => ({
    code: pluginClass(
      "Hangs",
      `override ${hook}() { return new Promise<void>(() => {}); }
  value() { return 1; }`,
    ),
    manifest: { endpoints: [ep("value")] },
  });
  const config = (timeout: number) => `plugins:
  - name: Hangs
  - name: Healthy
general:
  plugin_package: plugins
  console_log_level: CRITICAL
  log_dir: ""
  lifecycle_timeout: ${timeout}
`;

  for (const hook of ["onLoad", "onEnable"] as const) {
    it(`fails a plugin whose ${hook} hangs past lifecycle_timeout; the others start`, async () => {
      const started = performance.now();
      const { core } = await startFixture({
        plugins: { Hangs: hanging(hook), Healthy: HEALTHY },
        // The limit also bounds importing the plugin file, which a busy machine makes slow.
        configYaml: config(1),
      });
      const elapsed = performance.now() - started;
      expect(elapsed).toBeGreaterThanOrEqual(950);
      expect(elapsed).toBeLessThan(5000);
      const info = core.getPluginInfo("Hangs") as PluginInfo;
      expect(info.state).toBe("failed");
      expect(info.error).toContain(hook);
      expect(info.error).toContain("within 1 s");
      expect(info.errorCode).toBe("PLUGIN_LOAD_FAILED");
      const error = await rejection(core.execute("Hangs", "value"));
      expect(error.code).toBe("PLUGIN_DISABLED");
      await expectHealthy(core);
    });
  }

  it("bounds a hanging onDisable so popPlugin and close() still finish", async () => {
    const { core } = await startFixture({
      plugins: {
        Stuck: {
          code: pluginClass(
            "Stuck",
            "override onDisable() { return new Promise<void>(() => {}); }\n  value() { return 1; }",
          ),
          manifest: { endpoints: [ep("value")] },
        },
        Healthy: HEALTHY,
      },
      configYaml: config(1).replace("Hangs", "Stuck"),
    });
    await core.popPlugin("Stuck");
    expect(core.getPluginInfo("Stuck")).toBeUndefined();
    await expectHealthy(core);
    await core.close();
  });
});

describe("enable, disable, pop, load, purge", () => {
  it("disablePlugin refuses new calls with PLUGIN_DISABLED and runs onDisable; enablePlugin restores", async () => {
    const rec = recorder();
    const { core } = await startFixture({ plugins: { A: hooked("A", rec), Healthy: HEALTHY } });
    rec.events.length = 0;
    await core.disablePlugin("A");
    expect(rec.events).toEqual([["A", "onDisable"]]);
    expect(core.getPluginInfo("A")?.state).toBe("disabled");
    const error = await rejection(core.execute("A", "value"));
    expect(error.code).toBe("PLUGIN_DISABLED");
    expect(error.plugin).toBe("A");
    expect(error.method).toBe("value");
    await expectHealthy(core);

    await core.enablePlugin("A");
    expect(rec.events).toEqual([
      ["A", "onDisable"],
      ["A", "onEnable"],
    ]);
    await expect(core.execute("A", "value")).resolves.toBe("v1");
  });

  it("disablePlugin lets a call in flight finish", async () => {
    const { core } = await startFixture({
      plugins: {
        Work: {
          code: pluginClass("Work", "async job() { await sleep(120); return 'done'; }", SLEEP),
          manifest: { endpoints: [ep("job")] },
        },
      },
    });
    const call = core.execute("Work", "job");
    await core.disablePlugin("Work");
    await expect(call).resolves.toBe("done");
  });

  it("popPlugin waits for a call in flight, then the plugin is unloaded and unknown to calls", async () => {
    const rec = recorder();
    const { core } = await startFixture({
      plugins: {
        Work: {
          code: pluginClass(
            "Work",
            `async job() { await sleep(100); return "done"; }
  override onDisable() { ${rec.push(`"onDisable"`)} }`,
            SLEEP,
          ),
          manifest: { endpoints: [ep("job")] },
        },
        Healthy: HEALTHY,
      },
    });
    const oldUuid = core.getPluginInfo("Work")?.uuid;
    const call = core.execute("Work", "job");
    await core.popPlugin("Work");
    await expect(call).resolves.toBe("done");
    expect(rec.events).toEqual(["onDisable"]);
    // Removed, as the seed's pop_plugin does: not listed, and loadPlugin brings it back.
    expect(core.getPluginInfo("Work")).toBeUndefined();
    expect(core.listPlugins().map((p) => p.name)).not.toContain("Work");
    const error = await rejection(core.execute("Work", "job"));
    expect(error.code).toBe("PLUGIN_NOT_FOUND");
    // The old instance's uuid no longer reaches anything either.
    expect(
      (await rejection(core.execute("Work", "job", undefined, { pluginUuid: oldUuid }))).code,
    ).toBe("PLUGIN_NOT_FOUND");
    await expectHealthy(core);

    // loadPlugin loads it again, without enabling it; enablePlugin enables it.
    await core.loadPlugin("Work");
    const info = core.getPluginInfo("Work") as PluginInfo;
    expect(info.state).toBe("loaded");
    expect(info.uuid).not.toBe(oldUuid);
    expect((await rejection(core.execute("Work", "job"))).code).toBe("PLUGIN_DISABLED");
    await core.enablePlugin("Work");
    await expect(core.execute("Work", "job")).resolves.toBe("done");
  });

  it("popPlugin fails a call still running after drain_timeout with UNLOADED", async () => {
    const { core } = await startFixture({
      plugins: {
        Stuck: {
          code: pluginClass(
            "Stuck",
            `forever() { return new Promise(() => {}); }
  async *stream() { yield 1; await new Promise(() => {}); }`,
          ),
          manifest: { endpoints: [ep("forever"), ep("stream")] },
        },
        Healthy: HEALTHY,
      },
      configYaml: `plugins:
  - name: Stuck
  - name: Healthy
general:
  plugin_package: plugins
  console_log_level: CRITICAL
  log_dir: ""
  drain_timeout: 0.2
`,
    });
    const call = core.execute("Stuck", "forever");
    call.catch(() => undefined);
    const stream = core.executeStream("Stuck", "stream");
    expect(await stream.next()).toEqual({ value: 1, done: false });
    const pending = stream.next();
    pending.catch(() => undefined);

    const started = performance.now();
    await core.popPlugin("Stuck");
    expect(performance.now() - started).toBeGreaterThanOrEqual(150);
    const error = await rejection(call);
    expect(error.code).toBe("UNLOADED");
    expect(error.plugin).toBe("Stuck");
    expect((await rejection(pending)).code).toBe("UNLOADED");
    expect(core.getPluginInfo("Stuck")).toBeUndefined();
    await expectHealthy(core);
  });

  it("popPlugin of an unknown plugin rejects with PLUGIN_NOT_FOUND", async () => {
    const { core } = await startFixture({ plugins: { Healthy: HEALTHY } });
    expect((await rejection(core.popPlugin("Nope"))).code).toBe("PLUGIN_NOT_FOUND");
    expect((await rejection(core.enablePlugin("Nope"))).code).toBe("PLUGIN_NOT_FOUND");
    expect((await rejection(core.disablePlugin("Nope"))).code).toBe("PLUGIN_NOT_FOUND");
    await expectHealthy(core);
  });

  it("loadPlugin of a plugin not in config.yml takes its entry from the argument", async () => {
    const fx = fixture({ plugins: {}, files: {} });
    const extra = fixture({ plugins: { Healthy: HEALTHY } });
    const core = newCore(fx.configFile);
    await core.start();
    expect(core.listPlugins()).toEqual([]);
    await core.loadPlugin("Healthy", { path: extra.pluginDir("Healthy") });
    await core.enablePlugin("Healthy");
    await expectHealthy(core);
  });

  it("purgePlugins unloads everything; purgePluginsExcept keeps the named ones", async () => {
    const rec = recorder();
    const { core } = await startFixture({
      plugins: { A: hooked("A", rec), B: hooked("B", rec), C: hooked("C", rec) },
    });
    await core.purgePluginsExcept(["B"]);
    expect(
      core
        .listPlugins()
        .map((p) => [p.name, p.state])
        .sort(),
    ).toEqual([["B", "enabled"]]);
    await expect(core.execute("B", "value")).resolves.toBe("v1");
    expect((await rejection(core.execute("A", "value"))).code).toBe("PLUGIN_NOT_FOUND");

    await core.purgePlugins();
    expect(core.listPlugins()).toEqual([]);
    expect((await rejection(core.execute("B", "value"))).code).toBe("PLUGIN_NOT_FOUND");
    const disabled = rec.events.filter((e) => (e as string[])[1] === "onDisable");
    expect(disabled.map((e) => (e as string[])[0]).sort()).toEqual(["A", "B", "C"]);
  });

  it("startPlugins enables every loaded plugin", async () => {
    const rec = recorder();
    const fx = fixture({ plugins: { A: hooked("A", rec), B: hooked("B", rec) } });
    const core = newCore(fx.configFile);
    await core.getPlugins();
    expect(core.listPlugins().map((p) => p.state)).toEqual(["loaded", "loaded"]);
    await core.startPlugins();
    expect(core.listPlugins().map((p) => p.state)).toEqual(["enabled", "enabled"]);
    await expect(core.execute("A", "value")).resolves.toBe("v1");
  });
});

describe("events", () => {
  it("emits loaded, enabled, disabled and unloaded with PluginInfo payloads", async () => {
    const rec = recorder();
    const fx = fixture({ plugins: { A: hooked("A", rec) } });
    const core = newCore(fx.configFile);
    const seen: Array<[string, string, string]> = [];
    for (const event of [
      "plugin:loaded",
      "plugin:enabled",
      "plugin:disabled",
      "plugin:unloaded",
    ] as const) {
      core.on(event, (info: PluginInfo) => seen.push([event, info.name, info.state]));
    }
    await core.start();
    await core.disablePlugin("A");
    await core.enablePlugin("A");
    await core.popPlugin("A");
    expect(seen).toEqual([
      ["plugin:loaded", "A", "loaded"],
      ["plugin:enabled", "A", "enabled"],
      ["plugin:disabled", "A", "disabled"],
      ["plugin:enabled", "A", "enabled"],
      ["plugin:disabled", "A", "disabled"],
      ["plugin:unloaded", "A", "unloaded"],
    ]);
  });

  for (const isolation of ["none", "worker"]) {
    it(`names the part of loading that threw: the constructor or onLoad (isolation ${isolation})`, async () => {
      const fx = fixture({
        plugins: {
          InCtor: {
            code: pluginClass(
              "InCtor",
              "constructor() {\n    super();\n    [1].forEach(() => { throw new Error('ctor says no'); });\n  }",
            ),
            manifest: {},
          },
          InLoad: {
            code: pluginClass(
              "InLoad",
              "override onLoad() {\n    throw new Error('load says no');\n  }",
            ),
            manifest: {},
          },
          Healthy: HEALTHY,
        },
        configYaml: `plugins:\n  - name: InCtor\n    isolation: ${isolation}\n  - name: InLoad\n    isolation: ${isolation}\n  - name: Healthy\ngeneral:\n  plugin_package: plugins\n  console_log_level: CRITICAL\n  log_dir: ""\n`,
      });
      const core = newCore(fx.configFile);
      await core.start();
      const ctor = core.getPluginInfo("InCtor") as PluginInfo;
      expect(ctor.state).toBe("failed");
      expect(ctor.error).toMatch(
        /the constructor of InCtor threw Error: ctor says no \(.*plugin\.ts:\d+\)/,
      );
      const load = core.getPluginInfo("InLoad") as PluginInfo;
      expect(load.error).toMatch(/onLoad threw Error: load says no \(.*plugin\.ts:\d+\)/);
      await expectHealthy(core);
    });
  }

  it("emits plugin:failed with the PluginInfo and a ConfigError", async () => {
    const fx = fixture({
      plugins: {
        Bad: {
          code: pluginClass("Bad", "override onLoad() { throw new Error('nope'); }"),
          manifest: {},
        },
        Healthy: HEALTHY,
      },
      configYaml: `plugins:\n  - name: Bad\n  - name: Healthy\ngeneral:\n  plugin_package: plugins\n  console_log_level: CRITICAL\n  log_dir: ""\n`,
    });
    const core = newCore(fx.configFile);
    const failed = nextEvent(core, "plugin:failed", "Bad");
    await core.start();
    const [info, error] = (await failed) as [PluginInfo, ConfigError];
    expect(info.state).toBe("failed");
    expect(info.errorCode).toBe("PLUGIN_LOAD_FAILED");
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toContain("nope");
    await expectHealthy(core);
  });
});

describe("reloadPlugin", () => {
  const versioned = (tag: string) =>
    pluginClass("Hot", `async value() { await sleep(2); return "${tag}"; }`, SLEEP);

  it("swaps in the new code of the plugin file with a new uuid", async () => {
    const { core, fx } = await startFixture({
      plugins: { Hot: { code: versioned("v1"), manifest: { endpoints: [ep("value")] } } },
    });
    const before = core.getPluginInfo("Hot")?.uuid;
    await expect(core.execute("Hot", "value")).resolves.toBe("v1");
    writeFileSync(join(fx.pluginDir("Hot"), "plugin.ts"), versioned("v2"));
    await core.reloadPlugin("Hot");
    await expect(core.execute("Hot", "value")).resolves.toBe("v2");
    const info = core.getPluginInfo("Hot") as PluginInfo;
    expect(info.state).toBe("enabled");
    expect(info.uuid).not.toBe(before);
    writeFileSync(join(fx.pluginDir("Hot"), "plugin.ts"), versioned("v3"));
    await core.reloadPlugin("Hot");
    await expect(core.execute("Hot", "value")).resolves.toBe("v3");
  });

  it("loses no call under concurrent load", async () => {
    const { core, fx } = await startFixture({
      plugins: { Hot: { code: versioned("old"), manifest: { endpoints: [ep("value")] } } },
    });
    writeFileSync(join(fx.pluginDir("Hot"), "plugin.ts"), versioned("new"));
    let reloading = true;
    const results: Array<Promise<unknown>> = [];
    const load = (async () => {
      while (reloading) {
        for (let i = 0; i < 5; i++) results.push(core.execute("Hot", "value"));
        await new Promise((r) => setImmediate(r));
      }
    })();
    await core.reloadPlugin("Hot");
    reloading = false;
    await load;
    const settled = await Promise.allSettled(results);
    const failures = settled.filter((s) => s.status === "rejected");
    expect(failures).toEqual([]);
    expect(results.length).toBeGreaterThan(10);
    const values = settled.map((s) => (s as PromiseFulfilledResult<unknown>).value);
    expect(values.every((v) => v === "old" || v === "new")).toBe(true);
    await expect(core.execute("Hot", "value")).resolves.toBe("new");
  });

  it("keeps the old instance serving when the new code fails to import", async () => {
    const { core, fx } = await startFixture({
      plugins: {
        Hot: { code: versioned("v1"), manifest: { endpoints: [ep("value")] } },
        Healthy: HEALTHY,
      },
      configYaml: `plugins:\n  - name: Hot\n  - name: Healthy\ngeneral:\n  plugin_package: plugins\n  console_log_level: CRITICAL\n  log_dir: ""\n`,
    });
    const before = core.getPluginInfo("Hot")?.uuid;
    writeFileSync(join(fx.pluginDir("Hot"), "plugin.ts"), "export class Hot extends {{{ broken");
    const error = await (async () => {
      try {
        await core.reloadPlugin("Hot");
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error("reload should have failed");
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.code).toBe("PLUGIN_LOAD_FAILED");
    expect(error.message).toContain("plugin.ts");
    const info = core.getPluginInfo("Hot") as PluginInfo;
    expect(info.state).toBe("enabled");
    expect(info.uuid).toBe(before);
    await expect(core.execute("Hot", "value")).resolves.toBe("v1");

    // Fixing the file makes the next reload succeed.
    writeFileSync(join(fx.pluginDir("Hot"), "plugin.ts"), versioned("v2"));
    await core.reloadPlugin("Hot");
    await expect(core.execute("Hot", "value")).resolves.toBe("v2");
    await expectHealthy(core);
  });
});

describe("the Plugin API inside a plugin", () => {
  const INSPECT = (rec: ReturnType<typeof recorder>) =>
    pluginClass(
      "Inspect",
      `
  override onLoad(args: unknown) {
    ${rec.push(`{ hook: "onLoad", args, enabled: this.enabled, name: this.pluginName, version: this.version, uuid: this.pluginUuid }`)}
  }
  report() {
    return {
      name: this.pluginName,
      version: this.version,
      uuid: this.pluginUuid,
      enabled: this.enabled,
      endpoints: this.endpoints.map((e) => [e.access_name, e.internal_name, e.kind]),
      logger: typeof this.logger.info,
      arguments: this.arguments,
    };
  }
  async *items() { yield 1; }`,
    );
  const MANIFEST = `description: inspects itself
version: 2.5.1
arguments:
  greeting: hello
  count: 1
endpoints:
  - internal_name: report
    access_name: whoami
  - internal_name: items
`;

  it("exposes name, version, uuid, enabled, endpoints, logger and the manifest's arguments", async () => {
    const rec = recorder();
    const { core } = await startFixture({
      plugins: { Inspect: { code: INSPECT(rec), manifest: MANIFEST } },
    });
    const info = core.getPluginInfo("Inspect") as PluginInfo;
    expect(info.version).toBe("2.5.1");
    expect(info.description).toBe("inspects itself");
    const report = await core.execute<Record<string, unknown>>("Inspect", "whoami");
    expect(report).toEqual({
      name: "Inspect",
      version: "2.5.1",
      uuid: info.uuid,
      enabled: true,
      endpoints: [
        ["whoami", "report", "function"],
        ["items", "items", "async generator"],
      ],
      logger: "function",
      arguments: { greeting: "hello", count: 1 },
    });
    expect(rec.events).toEqual([
      {
        hook: "onLoad",
        args: { greeting: "hello", count: 1 },
        enabled: false,
        name: "Inspect",
        version: "2.5.1",
        uuid: info.uuid,
      },
    ]);
    expect(core.getPluginEndpoints("Inspect")?.map((e) => e.access_name)).toEqual([
      "whoami",
      "items",
    ]);
    expect(core.getPluginEndpoints("Nope")).toBeUndefined();
  });

  it("gives config.yml's `arguments` precedence over the manifest's", async () => {
    const rec = recorder();
    const { core } = await startFixture({
      plugins: { Inspect: { code: INSPECT(rec), manifest: MANIFEST } },
      configYaml: `plugins:
  - name: Inspect
    arguments:
      greeting: overridden
general:
  plugin_package: plugins
  console_log_level: ERROR
  log_dir: ""
`,
    });
    expect((rec.events[0] as { args: unknown }).args).toEqual({ greeting: "overridden" });
    const report = await core.execute<{ arguments: unknown }>("Inspect", "whoami");
    expect(report.arguments).toEqual({ greeting: "overridden" });
  });
});

describe("close", () => {
  it("runs onDisable of every plugin, then refuses application calls with CLOSED", async () => {
    const rec = recorder();
    const { core } = await startFixture({ plugins: { A: hooked("A", rec), B: hooked("B", rec) } });
    rec.events.length = 0;
    const closing = core.close();
    expect(core.close()).toBe(closing);
    await closing;
    expect(rec.events.map((e) => (e as string[]).join(" ")).sort()).toEqual([
      "A onDisable",
      "B onDisable",
    ]);
    expect(core.listPlugins().every((p) => p.state === "unloaded")).toBe(true);
    const error = await rejection(core.execute("A", "value"));
    expect(error.code).toBe("CLOSED");
    expect(error).toBeInstanceOf(RequestError);
    expect(thrown(() => core.executeSync("A", "value")).code).toBe("CLOSED");
    expect((await rejection(core.executeStream("A", "value").next())).code).toBe("CLOSED");
    expect((await rejection(core.start())).code).toBe("CLOSED");
    await core.close();
  });

  it("a plugin's call to a plugin that close() already stopped fails with CLOSED", async () => {
    // Caller.later() waits for the test's go-ahead, then calls B: background work that is
    // still running while close() unloads B.
    const key = `__aioGo${process.pid}`;
    let go: () => void = () => undefined;
    (globalThis as Record<string, unknown>)[key] = new Promise<void>((resolve) => {
      go = resolve;
    });
    const { core } = await startFixture({
      plugins: {
        B: hooked("B", recorder()),
        Caller: {
          code: pluginClass(
            "Caller",
            `async later() {
    await (globalThis as any)[${JSON.stringify(key)}];
    try { return await this.execute("B", "value"); } catch (error: any) { return \`\${error.code}: \${error.message}\`; }
  }`,
          ),
          manifest: { endpoints: [ep("later")] },
        },
      },
    });
    const call = core.execute("Caller", "later");
    const unloaded = nextEvent(core, "plugin:unloaded", "B");
    const closing = core.close();
    await unloaded;
    go();
    await expect(call).resolves.toMatch(/^CLOSED: .*B\.value was not run/);
    await closing;
  });

  it("lets a call in flight finish before unloading", async () => {
    const { core } = await startFixture({
      plugins: {
        Work: {
          code: pluginClass("Work", "async job() { await sleep(80); return 'done'; }", SLEEP),
          manifest: { endpoints: [ep("job")] },
        },
      },
    });
    const call = core.execute("Work", "job");
    await core.close();
    await expect(call).resolves.toBe("done");
  });

  it("flushes the log file", async () => {
    const logDir = tempDir("aio-core-logs-");
    const fx = fixture({
      plugins: {
        Talk: {
          code: pluginClass(
            "Talk",
            "say(text: string) { this.logger.info('said: ' + text); return true; }",
          ),
          manifest: { endpoints: [ep("say", ["text"])] },
        },
      },
    });
    const core = newCore({
      plugins: [{ name: "Talk", path: fx.pluginDir("Talk") }],
      general: { console_log_level: "CRITICAL", log_dir: logDir },
    });
    await core.start();
    await core.execute("Talk", "say", ["marker-1234"]);
    const file = core.logFile as string;
    expect(file).toMatch(/AIO_AI_\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}\.log$/);
    await core.close();
    const text = readFileSync(file, "utf8");
    expect(text).toContain("said: marker-1234");
  });
});
