/**
 * Bad input: each gives a clear error (code, file and, for YAML, line) AND the rest keeps
 * working, shown by another plugin still answering.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, type PluginCore, type PluginInfo } from "aio-assistant-core";
import { afterEach, describe, expect, it } from "vitest";
import {
  cleanup,
  ep,
  expectHealthy,
  fixture,
  HEALTHY,
  infos,
  newCore,
  type PluginDef,
  pluginClass,
  rejection,
  SLEEP,
  startFixture,
  tempDir,
  yamlConfig,
} from "./helpers.js";

afterEach(cleanup);

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

/**
 * Starts a core with plugin `Bad` (from `def`, or the config entry `entry`) and Healthy.
 * Returns the core and Bad's PluginInfo, after checking that Healthy answers.
 */
async function withBad(
  def: PluginDef | undefined,
  opts: { entry?: string; general?: string; files?: Record<string, string> } = {},
): Promise<{ core: PluginCore; info: PluginInfo; dir: string }> {
  const plugins: Record<string, PluginDef> = { Healthy: HEALTHY };
  if (def) plugins.Bad = def;
  const { core, fx } = await startFixture({
    plugins,
    files: opts.files ?? {},
    configYaml: yamlConfig(`${opts.entry ?? "  - name: Bad\n"}  - name: Healthy\n`, opts.general),
  });
  await expectHealthy(core);
  expect(core.getPluginInfo("Healthy")?.state).toBe("enabled");
  const info = core.getPluginInfo("Bad") as PluginInfo;
  expect(info).toBeDefined();
  return { core, info, dir: fx.pluginDir("Bad") };
}

async function expectFailed(core: PluginCore, info: PluginInfo): Promise<void> {
  expect(info.state).toBe("failed");
  expect(typeof info.error).toBe("string");
  const error = await rejection(core.execute("Bad", "ping"));
  expect(error.code).toBe("PLUGIN_DISABLED");
  expect(error.message).toContain("failed");
}

describe("config.yml", () => {
  it("broken YAML: ConfigError naming file:line; a valid core still works", async () => {
    const fx = fixture({
      plugins: { Healthy: HEALTHY },
      configYaml: `plugins:\n  - name: Healthy\n    enabled: true: false\ngeneral:\n  log_dir: ""\n`,
    });
    const error = configError(() => newCore(fx.configFile));
    expect(error.code).toBe("CONFIG_INVALID");
    expect(error.file).toBe(fx.configFile);
    expect(error.line).toBe(3);
    expect(error.message).toContain(`${fx.configFile}:3`);
    expect(error.message).toMatch(/YAML/);

    const { core } = await startFixture({ plugins: { Healthy: HEALTHY } });
    await expectHealthy(core);
  });

  it("a repeated key and tab indentation are YAML errors with their line", () => {
    const dup = fixture({
      configYaml: `plugins: []\ngeneral:\n  log_dir: ""\n  log_dir: "x"\n`,
    });
    const dupError = configError(() => newCore(dup.configFile));
    expect(dupError.message).toContain(`${dup.configFile}:4`);
    const tab = fixture({ configYaml: `plugins:\n  - name: A\n\tenabled: true\n` });
    expect(configError(() => newCore(tab.configFile)).message).toContain(`${tab.configFile}:3`);
  });

  it("wrong types: every problem listed with file:line and key", () => {
    const fx = fixture({
      configYaml: `plugins:
  - name: A
    enabled: true
  - name: B
    enabled: "yes"
general:
  lifecycle_timeout: soon
  log_dir: ""
networking:
  port: "abc"
`,
    });
    const error = configError(() => newCore(fx.configFile));
    expect(error.code).toBe("CONFIG_INVALID");
    expect(error.problems).toHaveLength(3);
    expect(error.message).toContain(`${fx.configFile}:5 plugins[1].enabled`);
    expect(error.message).toContain(`${fx.configFile}:7 general.lifecycle_timeout`);
    expect(error.message).toContain(`${fx.configFile}:10 networking.port`);
    expect(error.message).toMatch(/expected a boolean, got string "yes"/);
  });

  it("a top level that is not a mapping is refused", () => {
    const fx = fixture({ configYaml: "- a\n- b\n" });
    const error = configError(() => newCore(fx.configFile));
    expect(error.message).toContain(`${fx.configFile}:1`);
    expect(error.message).toMatch(/mapping/);
  });

  it("a missing config file is a ConfigError naming it", () => {
    const file = join(tempDir(), "nope.yml");
    const error = configError(() => newCore(file));
    expect(error.code).toBe("CONFIG_INVALID");
    expect(error.message).toContain("nope.yml");
  });

  it("a config object with wrong types is a ConfigError naming the key", () => {
    const error = configError(() =>
      newCore({
        plugins: [{ name: 5 as unknown as string }],
        general: { console_log_level: "LOUD" as "ERROR", log_dir: "" },
      }),
    );
    expect(error.code).toBe("CONFIG_INVALID");
    expect(error.message).toContain("plugins[0].name");
    expect(error.message).toContain("general.console_log_level");
  });

  it("a log_dir that cannot be written is a ConfigError naming general.log_dir", () => {
    const dir = tempDir();
    const file = join(dir, "a-file");
    writeFileSync(file, "x");
    const error = configError(() =>
      newCore({ plugins: [], general: { console_log_level: "ERROR", log_dir: file } }),
    );
    expect(error.message).toContain("general.log_dir");
  });

  it("an unknown key is only a warning: the core starts", async () => {
    const { core } = await startFixture({
      plugins: { Healthy: HEALTHY },
      configYaml: yamlConfig(
        "  - name: Healthy\n    enabeld: false\n",
        "  consol_log_level: ERROR\n",
      ),
    });
    await expectHealthy(core);
  });

  it("an empty config.yml starts a core with no plugins", async () => {
    const { core } = await startFixture({ configYaml: "" });
    expect(core.listPlugins()).toEqual([]);
    expect((await rejection(core.execute("Healthy", "ping"))).code).toBe("PLUGIN_NOT_FOUND");
    await core.close();
  });

  const dup = (tag: string): PluginDef => ({
    code: pluginClass("Dup", `ping() { return "${tag}"; }`),
    manifest: { endpoints: [ep("ping")] },
  });
  const DUP_CONFIG = yamlConfig(`  - name: Dup
    path: ./plugins/DupA
  - name: Healthy
  - name: Dup
    path: ./plugins/DupB
`);

  it("a duplicate plugin name: the second entry is failed (CONFIG_INVALID), the first works", async () => {
    const { core } = await startFixture({
      plugins: { DupA: dup("first"), DupB: dup("second"), Healthy: HEALTHY },
      configYaml: DUP_CONFIG,
    });
    const entries = infos(core, "Dup");
    const enabled = entries.filter((p) => p.state === "enabled");
    const failed = entries.filter((p) => p.state === "failed");
    expect(enabled).toHaveLength(1);
    expect(enabled[0]?.path).toMatch(/DupA$/);
    expect(failed.length).toBeGreaterThanOrEqual(1);
    for (const entry of failed) {
      expect(entry.errorCode).toBe("CONFIG_INVALID");
      expect(entry.error).toMatch(/duplicate/i);
      expect(entry.path).toMatch(/DupB$/);
    }
    expect(core.getPluginInfo("Dup")?.state).toBe("enabled");
    await expect(core.execute("Dup", "ping")).resolves.toBe("first");
    await expectHealthy(core);
  });

  it("a duplicate plugin name is listed exactly once as failed", async () => {
    const { core } = await startFixture({
      plugins: { DupA: dup("first"), DupB: dup("second"), Healthy: HEALTHY },
      configYaml: DUP_CONFIG,
    });
    expect(infos(core, "Dup").map((p) => p.state)).toEqual(["enabled", "failed"]);
  });
});

describe("plugin_config.yml", () => {
  const code = pluginClass("Bad", "ping() { return 'pong'; }");

  it("broken YAML: the plugin fails with file:line; the rest works", async () => {
    const { core, info, dir } = await withBad({
      code,
      manifest:
        "version: 1.0.0\nendpoints:\n  - internal_name: ping\n    access_name: ping: pong\n",
    });
    await expectFailed(core, info);
    expect(info.errorCode).toBe("CONFIG_INVALID");
    expect(info.error).toContain(`${join(dir, "plugin_config.yml")}:4`);
  });

  it("wrong types: every problem with file:line and key; the rest works", async () => {
    const { core, info, dir } = await withBad({
      code,
      manifest: `version: 1.0.0
remote: maybe
endpoints:
  - internal_name: ping
    accessible_by_other_plugins: "yes"
    arguments:
      - name: x
        type: integer
`,
    });
    await expectFailed(core, info);
    const file = join(dir, "plugin_config.yml");
    expect(info.errorCode).toBe("CONFIG_INVALID");
    expect(info.error).toContain(`${file}:2 remote`);
    expect(info.error).toContain(`${file}:5 endpoints[0].accessible_by_other_plugins`);
    expect(info.error).toContain(`${file}:8 endpoints[0].arguments[0].type`);
    expect(info.error).toContain('did you mean "int"');
  });

  it("endpoints that is not a list fails the plugin", async () => {
    const { core, info, dir } = await withBad({ code, manifest: "endpoints: 5\n" });
    await expectFailed(core, info);
    expect(info.error).toContain(`${join(dir, "plugin_config.yml")}:1 endpoints`);
  });

  it("a default of the wrong type fails the plugin with its line", async () => {
    const { core, info, dir } = await withBad({
      code,
      manifest: `endpoints:
  - internal_name: ping
    arguments:
      - name: n
        type: int
        default: lots
`,
    });
    await expectFailed(core, info);
    expect(info.error).toContain(`${join(dir, "plugin_config.yml")}:6`);
    expect(info.error).toContain("default");
  });

  it("a duplicate access_name fails the plugin (CONFIG_INVALID) with its line", async () => {
    const { core, info, dir } = await withBad({
      code: pluginClass("Bad", "ping() { return 1; }\n  pong() { return 2; }"),
      manifest: `endpoints:
  - internal_name: ping
    access_name: same
  - internal_name: pong
    access_name: same
`,
    });
    await expectFailed(core, info);
    expect(info.errorCode).toBe("CONFIG_INVALID");
    expect(info.error).toContain(`${join(dir, "plugin_config.yml")}:5 endpoints[1].access_name`);
    expect(info.error).toMatch(/duplicate access_name "same"/);
  });

  it("an endpoint whose internal_name is not a method fails the plugin, naming the key", async () => {
    const { core, info, dir } = await withBad({
      code,
      manifest: { endpoints: [ep("ping"), ep("missing_method")] },
    });
    await expectFailed(core, info);
    expect(info.error).toContain(join(dir, "plugin_config.yml"));
    expect(info.error).toContain("endpoints[1].internal_name");
    expect(info.error).toContain("missing_method");
  });

  it("a missing plugin_config.yml fails the plugin", async () => {
    const { core, info } = await withBad(undefined, {
      // The folder exists but holds only a plugin file.
      files: { "plugins/Bad/plugin.ts": pluginClass("Bad", "ping() { return 1; }") },
    });
    await expectFailed(core, info);
    expect(info.errorCode).toBe("PLUGIN_LOAD_FAILED");
    expect(info.error).toContain("plugin_config.yml");
  });
});

describe("plugin folder and module", () => {
  it("a missing plugin folder fails that plugin, naming the folder", async () => {
    const { core, info } = await withBad(undefined, {
      entry: "  - name: Bad\n    path: ./plugins/does-not-exist\n",
    });
    await expectFailed(core, info);
    expect(info.errorCode).toBe("PLUGIN_LOAD_FAILED");
    expect(info.error).toContain("does-not-exist");
  });

  it("a folder without a plugin file fails that plugin", async () => {
    const { core, fx } = await startFixture({
      plugins: { Healthy: HEALTHY },
      files: { "plugins/Bad/plugin_config.yml": "endpoints: []\n" },
      configYaml: yamlConfig("  - name: Bad\n  - name: Healthy\n"),
    });
    const info = core.getPluginInfo("Bad") as PluginInfo;
    await expectFailed(core, info);
    expect(info.errorCode).toBe("PLUGIN_LOAD_FAILED");
    expect(info.error).toContain("plugin.ts");
    expect(info.error).toContain(fx.pluginDir("Bad"));
    await expectHealthy(core);
  });

  it("a module without the class fails that plugin, naming what it exports", async () => {
    const { core, info, dir } = await withBad({
      code: pluginClass("SomethingElse", "ping() { return 1; }"),
      manifest: { endpoints: [ep("ping")] },
    });
    await expectFailed(core, info);
    expect(info.errorCode).toBe("PLUGIN_LOAD_FAILED");
    expect(info.error).toContain(join(dir, "plugin.ts"));
    expect(info.error).toContain("Bad");
    expect(info.error).toContain("SomethingElse");
  });

  it("a class that does not extend Plugin fails that plugin", async () => {
    const { core, info } = await withBad({
      code: "export class Bad { ping() { return 1; } }\n",
      manifest: { endpoints: [ep("ping")] },
    });
    await expectFailed(core, info);
    expect(info.error).toMatch(/does not extend Plugin/);
  });

  it("a module with a syntax error fails that plugin, naming the file", async () => {
    const { core, info, dir } = await withBad({
      code: `import { Plugin } from "aio-assistant-core";\nexport class Bad extends Plugin {\n  ping() { return (1 + ; }\n}\n`,
      manifest: { endpoints: [ep("ping")] },
    });
    await expectFailed(core, info);
    expect(info.errorCode).toBe("PLUGIN_LOAD_FAILED");
    expect(info.error).toContain(join(dir, "plugin.ts"));
  });

  it("a module that throws when imported fails that plugin with the thrown message", async () => {
    const { core, info } = await withBad({
      code: `throw new Error("module top-level exploded");\nexport {};\n`,
      manifest: { endpoints: [ep("ping")] },
    });
    await expectFailed(core, info);
    expect(info.error).toContain("module top-level exploded");
  });

  it("a constructor that throws fails that plugin", async () => {
    const { core, info } = await withBad({
      code: pluginClass(
        "Bad",
        `constructor() { super(); throw new Error("ctor exploded"); }\n  ping() { return 1; }`,
      ),
      manifest: { endpoints: [ep("ping")] },
    });
    await expectFailed(core, info);
    expect(info.error).toContain("ctor exploded");
  });
});

describe("hooks", () => {
  it("onLoad throwing: the plugin fails with the message; the rest works", async () => {
    const { core, info } = await withBad({
      code: pluginClass(
        "Bad",
        `override onLoad() { throw new Error("onLoad exploded"); }\n  ping() { return 1; }`,
      ),
      manifest: { endpoints: [ep("ping")] },
    });
    await expectFailed(core, info);
    expect(info.errorCode).toBe("PLUGIN_LOAD_FAILED");
    expect(info.error).toContain("onLoad");
    expect(info.error).toContain("onLoad exploded");
    expect(info.error).toContain('"Bad"');
  });

  it("async onLoad rejecting fails the plugin too", async () => {
    const { core, info } = await withBad({
      code: pluginClass(
        "Bad",
        `override async onLoad() { await sleep(5); throw new Error("late failure"); }\n  ping() { return 1; }`,
        SLEEP,
      ),
      manifest: { endpoints: [ep("ping")] },
    });
    await expectFailed(core, info);
    expect(info.error).toContain("late failure");
  });

  it("onLoad throwing: the error message names the plugin's file or folder", async () => {
    const { info, dir } = await withBad({
      code: pluginClass(
        "Bad",
        `override onLoad() { throw new Error("onLoad exploded"); }\n  ping() { return 1; }`,
      ),
      manifest: { endpoints: [ep("ping")] },
    });
    expect(info.error).toContain(dir);
  });

  it("onEnable throwing: the plugin fails; the rest works", async () => {
    const { core, info } = await withBad({
      code: pluginClass(
        "Bad",
        `override onEnable() { throw new Error("enable exploded"); }\n  ping() { return 1; }`,
      ),
      manifest: { endpoints: [ep("ping")] },
    });
    await expectFailed(core, info);
    expect(info.error).toContain("onEnable");
    expect(info.error).toContain("enable exploded");
  });

  it("onEnable hanging: the plugin fails after lifecycle_timeout; the rest works", async () => {
    const { core, info } = await withBad(
      {
        code: pluginClass(
          "Bad",
          `override onEnable() { return new Promise<void>(() => {}); }\n  ping() { return 1; }`,
        ),
        manifest: { endpoints: [ep("ping")] },
      },
      { general: "  lifecycle_timeout: 0.2\n" },
    );
    await expectFailed(core, info);
    expect(info.error).toMatch(/onEnable did not finish within 0\.2 s/);
  });
});

describe("calls", () => {
  const TYPED: PluginDef = {
    code: pluginClass("Bad", "ping(n: number) { return n * 2; }"),
    manifest: { endpoints: [ep("ping", [{ name: "n", type: "int", required: true }])] },
  };

  it("arguments of the wrong type: INVALID_ARGUMENTS saying what was expected; the rest works", async () => {
    const { core } = await withBad(TYPED);
    const error = await rejection(core.execute("Bad", "ping", ["seven"]));
    expect(error.code).toBe("INVALID_ARGUMENTS");
    expect(error.message).toContain('"n"');
    expect(error.message).toContain("int");
    expect(error.message).toContain("seven");
    await expect(core.execute("Bad", "ping", [7])).resolves.toBe(14);
    await expectHealthy(core);
  });

  it("a disabled plugin: PLUGIN_DISABLED saying so; the rest works", async () => {
    const { core } = await withBad(TYPED);
    await core.disablePlugin("Bad");
    const error = await rejection(core.execute("Bad", "ping", [1]));
    expect(error.code).toBe("PLUGIN_DISABLED");
    expect(error.message).toContain("disabled");
    expect(error.message).toContain("Bad.ping");
    expect((await rejection(core.executeStream("Bad", "ping").next())).code).toBe(
      "PLUGIN_DISABLED",
    );
    await expectHealthy(core);
  });

  it("an unloaded (popped) plugin: PLUGIN_NOT_FOUND; the rest works", async () => {
    const { core } = await withBad(TYPED);
    await core.popPlugin("Bad");
    const error = await rejection(core.execute("Bad", "ping", [1]));
    expect(error.code).toBe("PLUGIN_NOT_FOUND");
    expect(error.message).toContain("Bad");
    await expectHealthy(core);
  });

  it("a plugin configured with enabled: false: PLUGIN_NOT_FOUND; the rest works", async () => {
    const { core, info } = await withBad(TYPED, { entry: "  - name: Bad\n    enabled: false\n" });
    expect(info.state).toBe("unloaded");
    expect((await rejection(core.execute("Bad", "ping", [1]))).code).toBe("PLUGIN_NOT_FOUND");
    await expectHealthy(core);
  });

  it("a failed plugin: PLUGIN_DISABLED with the reason; the rest works", async () => {
    const { core } = await withBad({
      code: pluginClass(
        "Bad",
        `override onLoad() { throw new Error("the reason"); }\n  ping() { return 1; }`,
      ),
      manifest: { endpoints: [ep("ping")] },
    });
    const error = await rejection(core.execute("Bad", "ping"));
    expect(error.code).toBe("PLUGIN_DISABLED");
    expect(error.message).toContain("the reason");
    await expectHealthy(core);
  });

  it("enablePlugin of a failed plugin rejects with PLUGIN_DISABLED", async () => {
    const { core } = await withBad({
      code: pluginClass(
        "Bad",
        `override onLoad() { throw new Error("broken"); }\n  ping() { return 1; }`,
      ),
      manifest: { endpoints: [ep("ping")] },
    });
    const error = await rejection(core.enablePlugin("Bad"));
    expect(error.code).toBe("PLUGIN_DISABLED");
    expect(error.message).toContain("broken");
    await expectHealthy(core);
  });

  it("reloadPlugin of a plugin failed by its manifest recovers it once the manifest is fixed", async () => {
    const { core, dir } = await withBad({
      code: pluginClass("Bad", "ping() { return 'ok'; }"),
      manifest: "endpoints: 5\n",
    });
    writeFileSync(join(dir, "plugin_config.yml"), "endpoints:\n  - internal_name: ping\n");
    await core.reloadPlugin("Bad");
    expect(core.getPluginInfo("Bad")?.state).toBe("enabled");
    expect(core.getPluginInfo("Bad")?.error).toBeUndefined();
    await expect(core.execute("Bad", "ping")).resolves.toBe("ok");
    await expectHealthy(core);
  });

  it("reloadPlugin of a plugin failed by its code loads the fixed code", async () => {
    const { core, dir } = await withBad({
      code: pluginClass(
        "Bad",
        `override onLoad() { throw new Error("broken"); }\n  ping() { return 1; }`,
      ),
      manifest: { endpoints: [ep("ping")] },
    });
    writeFileSync(join(dir, "plugin.ts"), pluginClass("Bad", "ping() { return 'fixed'; }"));
    await core.reloadPlugin("Bad");
    expect(core.getPluginInfo("Bad")?.state).toBe("enabled");
    await expect(core.execute("Bad", "ping")).resolves.toBe("fixed");
  });
});
