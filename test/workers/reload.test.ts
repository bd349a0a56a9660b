/**
 * reloadPlugin under both isolations: the plugin's current files are loaded (its entry and the
 * helper modules it imports relatively), calls arriving during the swap wait and calls in flight
 * finish on the old instance (none lost under a steady load), a reload whose code fails to load
 * leaves the old instance serving and names the file, and the lifecycle events and uuid follow
 * the new instance.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, type PluginCore, type PluginInfo } from "aio-assistant-core";
import { afterEach, describe, expect, it } from "vitest";
import { cleanup, manifest, open, pingPlugin, pluginClass, startWith, thrown } from "./helpers.js";

afterEach(cleanup);

/** plugin.ts of plugin R at `version`; it imports ./lib.ts. */
function pluginSource(version: string, extra = ""): string {
  return `import { Plugin } from "aio-assistant-core";
import { isMainThread } from "node:worker_threads";
import { LIB } from "./lib.ts";

export class R extends Plugin {
  ${extra}
  value() { return "${version}:" + LIB; }
  async work(i: number) { await new Promise((r) => setImmediate(r)); return "${version}:" + i; }
  async slow(ms: number) { await new Promise((r) => setTimeout(r, ms)); return "${version} slow"; }
  *items(n: number) { for (let i = 0; i < n; i++) yield "${version}:" + i; }
  uuid() { return this.pluginUuid; }
  where() { return isMainThread ? "main" : "worker"; }
}
`;
}

function libSource(tag: string): string {
  return `export const LIB = "${tag}";\n`;
}

const R_MANIFEST = manifest({
  endpoints: [
    open("value"),
    open("work", ["i"]),
    open("slow", ["ms"]),
    open("items", ["n"]),
    open("uuid"),
    open("where"),
  ],
});

const DRIVER = {
  code: pluginClass(
    "Driver",
    `  viaSync(i: number) { return this.executeSync("R", "work", [i]); }
  valueSync() { return this.executeSync("R", "value"); }`,
  ),
  manifest: { endpoints: [open("viaSync", ["i"]), open("valueSync")] },
};

async function setupR(worker: boolean, driver = false) {
  const started = await startWith(
    {
      R: { def: { code: pluginSource("v1"), manifest: R_MANIFEST }, worker },
      Other: { def: pingPlugin("Other") },
      // A worker plugin whose blocking calls into R may wait out a swap (only its thread waits).
      ...(driver ? { Driver: { def: DRIVER, worker: true } } : {}),
    },
    {},
    { "plugins/R/lib.ts": libSource("lib1") },
  );
  const dir = started.pluginDir("R");
  return {
    ...started,
    writePlugin: (source: string) => writeFileSync(join(dir, "plugin.ts"), source),
    writeLib: (source: string) => writeFileSync(join(dir, "lib.ts"), source),
    pluginFile: join(dir, "plugin.ts"),
    libFile: join(dir, "lib.ts"),
  };
}

function describeError(error: unknown): string {
  const e = error as { code?: string; message?: string };
  return `${e.code ?? "no code"}: ${e.message ?? String(error)}`;
}

/** Records the lifecycle events of `name` from now on. */
function eventsOf(core: PluginCore, name: string) {
  const seen: Array<[string, PluginInfo]> = [];
  for (const event of [
    "plugin:loaded",
    "plugin:enabled",
    "plugin:disabled",
    "plugin:unloaded",
    "plugin:failed",
  ] as const) {
    core.on(event, (info: PluginInfo) => {
      if (info.name === name) seen.push([event, { ...info }]);
    });
  }
  return seen;
}

describe.each([
  ["in-process", false],
  ["worker", true],
])("reloadPlugin, %s plugin", (_label, worker) => {
  it("loads the current plugin.ts, and a changed helper module it imports", async () => {
    const { core, writePlugin, writeLib } = await setupR(worker);
    await expect(core.execute("R", "where")).resolves.toBe(worker ? "worker" : "main");
    await expect(core.execute("R", "value")).resolves.toBe("v1:lib1");

    writePlugin(pluginSource("v2"));
    await core.reloadPlugin("R");
    await expect(core.execute("R", "value")).resolves.toBe("v2:lib1");

    // Only the helper changes.
    writeLib(libSource("lib2"));
    await core.reloadPlugin("R");
    await expect(core.execute("R", "value")).resolves.toBe("v2:lib2");

    // Both, and a stream.
    writePlugin(pluginSource("v3"));
    writeLib(libSource("lib3"));
    await core.reloadPlugin("R");
    await expect(core.execute("R", "value")).resolves.toBe("v3:lib3");
    const items: unknown[] = [];
    for await (const item of core.executeStream("R", "items", [2])) items.push(item);
    expect(items).toEqual(["v3:0", "v3:1"]);
    expect(core.getPluginInfo("R")?.isolation).toBe(worker ? "worker" : "none");
    await expect(core.execute("R", "where")).resolves.toBe(worker ? "worker" : "main");
  });

  it("fires the lifecycle events for the new instance, whose pluginUuid is new", async () => {
    const { core, writePlugin } = await setupR(worker);
    const oldUuid = core.getPluginInfo("R")?.uuid;
    expect(oldUuid).toBeTruthy();
    await expect(core.execute("R", "uuid")).resolves.toBe(oldUuid);

    const seen = eventsOf(core, "R");
    writePlugin(pluginSource("v2"));
    await core.reloadPlugin("R");

    const newUuid = core.getPluginInfo("R")?.uuid;
    expect(newUuid).toBeTruthy();
    expect(newUuid).not.toBe(oldUuid);
    await expect(core.execute("R", "uuid")).resolves.toBe(newUuid);
    expect(seen.map(([event]) => event)).toEqual([
      "plugin:disabled",
      "plugin:loaded",
      "plugin:enabled",
    ]);
    const [, loaded] = seen[1] as [string, PluginInfo];
    const [, enabled] = seen[2] as [string, PluginInfo];
    expect(loaded.uuid).toBe(newUuid);
    expect(enabled.uuid).toBe(newUuid);
    expect(enabled.state).toBe("enabled");
    expect(enabled.isolation).toBe(worker ? "worker" : "none");
    // A call aimed at the old instance by uuid no longer finds it.
    await expect(
      core.execute("R", "value", undefined, { pluginUuid: oldUuid as string }),
    ).rejects.toMatchObject({ code: "PLUGIN_NOT_FOUND" });
    await expect(
      core.execute("R", "value", undefined, { pluginUuid: newUuid as string }),
    ).resolves.toBe("v2:lib1");
  });

  it("a call in flight finishes on the old instance; a call made during the swap waits for the new one", async () => {
    const { core, writePlugin } = await setupR(worker);
    const inFlight = core.execute("R", "slow", [300]);
    writePlugin(pluginSource("v2"));
    const reloading = core.reloadPlugin("R");
    // Once the swap has begun (the plugin is no longer "enabled"), a new call waits at the gate.
    const { during } = await new Promise<{ during: Promise<unknown> }>((resolve) => {
      const poll = () => {
        if (core.getPluginInfo("R")?.state !== "enabled")
          resolve({ during: core.execute("R", "value") });
        else setImmediate(poll);
      };
      poll();
    });
    await expect(inFlight).resolves.toBe("v1 slow");
    await expect(during).resolves.toBe("v2:lib1");
    await reloading;
    await expect(core.execute("Other", "ping", [1])).resolves.toBe("pong 1");
  });

  it("under a steady load (200 concurrent callers) and several reloads, every call is answered correctly", async () => {
    const { core, writePlugin, writeLib } = await setupR(worker, true);
    const versions = ["v1", "v2", "v3", "v4"];
    let running = true;
    let sent = 0;
    let answered = 0;
    const wrong: unknown[] = [];
    const seenVersions = new Set<string>();

    // Most callers use execute; one in ten goes through the worker plugin Driver, whose
    // executeSync into R blocks only Driver's thread and so may wait out a swap too.
    const caller = async (id: number) => {
      let n = 0;
      const viaDriver = id % 10 === 0;
      while (running) {
        const i = id * 1_000_000 + n++;
        sent++;
        try {
          const answer = (
            viaDriver
              ? await core.execute("Driver", "viaSync", [i])
              : await core.execute("R", "work", [i])
          ) as string;
          const [version, echoed] = answer.split(":");
          if (versions.includes(version as string) && Number(echoed) === i) {
            answered++;
            seenVersions.add(version as string);
          } else wrong.push(answer);
        } catch (error) {
          wrong.push(describeError(error));
        }
      }
    };
    const loops = Array.from({ length: 200 }, (_, id) => caller(id));

    const startedAt = Date.now();
    let reloads = 0;
    for (const version of versions.slice(1)) {
      writePlugin(pluginSource(version));
      writeLib(libSource(`lib${version.slice(1)}`));
      await core.reloadPlugin("R");
      reloads++;
      await expect(core.execute("R", "value")).resolves.toBe(`${version}:lib${version.slice(1)}`);
    }
    // At least a second of load in all.
    const left = 1000 - (Date.now() - startedAt);
    if (left > 0) await new Promise((resolve) => setTimeout(resolve, left));
    running = false;
    await Promise.all(loops);

    expect(reloads).toBe(3);
    // Distinct failures, with how often each happened.
    const counts = new Map<string, number>();
    for (const w of wrong) counts.set(String(w), (counts.get(String(w)) ?? 0) + 1);
    expect(Object.fromEntries(counts)).toEqual({});
    expect(answered).toBe(sent);
    expect(sent).toBeGreaterThan(2000);
    expect(seenVersions.has("v1")).toBe(true);
    expect(seenVersions.has("v4")).toBe(true);
  });

  it("executeSync from the main thread during the swap is refused at once with WOULD_DEADLOCK", async () => {
    const { core, writePlugin } = await setupR(worker);
    const inFlight = core.execute("R", "slow", [300]);
    writePlugin(pluginSource("v2"));
    const reloading = core.reloadPlugin("R");
    const error = await new Promise<Error>((resolve) => {
      const poll = () => {
        if (core.getPluginInfo("R")?.state !== "enabled") {
          resolve(thrown(() => core.executeSync("R", "value")));
        } else setImmediate(poll);
      };
      poll();
    });
    await inFlight;
    await reloading;
    expect((error as { code?: string }).code).toBe("WOULD_DEADLOCK");
  });

  it("executeSync from a worker plugin during the swap waits for the new instance", async () => {
    const { core, writePlugin } = await setupR(worker, true);
    const inFlight = core.execute("R", "slow", [300]);
    writePlugin(pluginSource("v2"));
    const reloading = core.reloadPlugin("R");
    const { during } = await new Promise<{ during: Promise<unknown> }>((resolve) => {
      const poll = () => {
        if (core.getPluginInfo("R")?.state !== "enabled") {
          resolve({ during: core.execute("Driver", "valueSync") });
        } else setImmediate(poll);
      };
      poll();
    });
    await expect(inFlight).resolves.toBe("v1 slow");
    await expect(during).resolves.toBe("v2:lib1");
    await reloading;
  });

  it("a reload whose new code fails to load (syntax error in plugin.ts or in a helper, onLoad throwing) is refused naming the file; the old instance keeps serving", async () => {
    const { core, writePlugin, writeLib, pluginFile, libFile } = await setupR(worker);
    const uuid = core.getPluginInfo("R")?.uuid;
    const seen = eventsOf(core, "R");
    const reloadError = () =>
      core.reloadPlugin("R").then(
        () => undefined,
        (e: unknown) => e as ConfigError,
      );
    const stillOld = async () => {
      expect(core.getPluginInfo("R")?.state).toBe("enabled");
      expect(core.getPluginInfo("R")?.uuid).toBe(uuid);
      await expect(core.execute("R", "value")).resolves.toBe("v1:lib1");
      expect(core.executeSync("R", "value")).toBe("v1:lib1");
    };

    // A syntax error in plugin.ts.
    writePlugin(`${pluginSource("v2")}\nexport const broken = ;\n`);
    const syntax = await reloadError();
    expect(syntax).toBeInstanceOf(ConfigError);
    expect(syntax?.message).toContain(pluginFile);
    await stillOld();

    // A syntax error in the helper module it imports.
    writePlugin(pluginSource("v2"));
    writeLib("export const LIB = ;\n");
    const helper = await reloadError();
    expect(helper).toBeInstanceOf(ConfigError);
    expect(helper?.message).toContain(libFile);
    await stillOld();

    // onLoad throws.
    writeLib(libSource("lib1"));
    writePlugin(
      pluginSource("v2", `override onLoad() { throw new Error("onLoad refuses to start"); }`),
    );
    const onLoad = await reloadError();
    expect(onLoad).toBeInstanceOf(ConfigError);
    expect(onLoad?.message).toMatch(/onLoad refuses to start/);
    expect(onLoad?.message).toContain(pluginFile);
    await stillOld();

    // The old instance was never disabled or replaced.
    expect(seen.map(([event]) => event)).toEqual([]);

    // Fixed, it reloads.
    writePlugin(pluginSource("v3"));
    await core.reloadPlugin("R");
    await expect(core.execute("R", "value")).resolves.toBe("v3:lib1");
    expect(core.getPluginInfo("R")?.uuid).not.toBe(uuid);
  });
});

describe("reload across isolations", () => {
  it("a plugin moved to a worker by its manifest runs there after a reload", async () => {
    const { core, pluginDir } = await setupR(false);
    await expect(core.execute("R", "where")).resolves.toBe("main");
    const file = join(pluginDir("R"), "plugin_config.yml");
    const spec = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
    writeFileSync(file, JSON.stringify({ ...spec, isolation: "worker" }));
    await core.reloadPlugin("R");
    await expect(core.execute("R", "where")).resolves.toBe("worker");
    expect(core.getPluginInfo("R")?.isolation).toBe("worker");
  });
});
