/**
 * Fixtures for the worker-isolation tests: plugin folders written into temp dirs (through
 * test/core/helpers.ts), configs that put chosen plugins in worker threads, a polling helper
 * with a deadline, and a reader for the JSON log file.
 *
 * Plugins that run in a worker thread cannot push to the test's globalThis: they report what
 * they saw through endpoints instead.
 */
import { readFileSync } from "node:fs";
import type { PluginCore } from "aio-assistant-core";
import { afterAll, beforeAll } from "vitest";
import {
  type EndpointSpec,
  ep,
  type FixtureSpec,
  fixture,
  newCore,
  type PluginDef,
  pluginClass,
  tempDir,
} from "../core/helpers.js";

export type { PluginDef } from "../core/helpers.js";
export {
  cleanup,
  ep,
  manifest,
  newCore,
  nextEvent,
  pluginClass,
  recorder,
  rejection,
  tempDir,
  thrown,
  writeTree,
} from "../core/helpers.js";

/** Every endpoint callable by other plugins, as most tests here need. */
export function open(
  internal: string,
  args: Array<string | { name: string; type?: string; required?: boolean; default?: unknown }> = [],
  extra: Omit<EndpointSpec, "internal_name" | "arguments"> = {},
): EndpointSpec {
  return ep(internal, args, { accessible_by_other_plugins: true, ...extra });
}

export interface PluginPlacement {
  def: PluginDef;
  /** Put it in a worker thread (config.yml's `isolation: worker`). */
  worker?: boolean;
  /** Extra YAML lines of the plugin entry, indented by four spaces. */
  extra?: string;
}

export interface WorkerFixtureOptions {
  /** A temp folder for the JSON log file (else no log file). */
  logs?: boolean;
  /** Extra YAML lines of the general section, indented by two spaces. */
  general?: string;
  /** Seconds for onLoad/onEnable/onDisable (default 8: a worker's first load compiles tsx). */
  lifecycleTimeout?: number;
  /** Seconds calls in flight get when a plugin is retired (default 2). */
  drainTimeout?: number;
}

/** config.yml text for `plugins` with placements. */
export function configYaml(
  plugins: Record<string, PluginPlacement>,
  options: WorkerFixtureOptions & { logDir?: string } = {},
): string {
  const entries = Object.entries(plugins)
    .map(
      ([name, p]) =>
        `  - name: ${name}\n    enabled: true\n${p.worker ? "    isolation: worker\n" : ""}${p.extra ?? ""}`,
    )
    .join("");
  return (
    `plugins:\n${entries}` +
    "general:\n" +
    "  plugin_package: plugins\n" +
    "  console_log_level: CRITICAL\n" +
    `  log_dir: ${JSON.stringify(options.logDir ?? "")}\n` +
    `  lifecycle_timeout: ${options.lifecycleTimeout ?? 8}\n` +
    `  drain_timeout: ${options.drainTimeout ?? 2}\n` +
    (options.general ?? "")
  );
}

export interface Started {
  core: PluginCore;
  dir: string;
  pluginDir(name: string): string;
}

/** Writes the plugins and config, creates the core and starts it. */
export async function startWith(
  plugins: Record<string, PluginPlacement>,
  options: WorkerFixtureOptions = {},
  files: FixtureSpec["files"] = {},
): Promise<Started> {
  const logDir = options.logs ? tempDir("aio-worker-logs-") : "";
  const defs = Object.fromEntries(Object.entries(plugins).map(([name, p]) => [name, p.def]));
  const fx = fixture({
    plugins: defs,
    configYaml: configYaml(plugins, { ...options, logDir }),
    files,
  });
  const core = newCore(fx.configFile);
  await core.start();
  return { core, dir: fx.dir, pluginDir: fx.pluginDir };
}

/**
 * Polls `probe` until it returns something truthy, or fails after `timeoutMs` saying `what`.
 * For conditions that have no event to await (state inside a worker thread).
 */
export async function until<T>(
  what: string,
  probe: () => T | Promise<T>,
  timeoutMs = 10_000,
  intervalMs = 10,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value as NonNullable<T>;
      last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what} (last: ${String(last)})`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** The JSON lines of a core's log file; read after `await core.close()`. */
export function logRecords(core: PluginCore): Array<Record<string, unknown>> {
  const file = core.logFile;
  if (!file) throw new Error("this core writes no log file");
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** The messages of a core's log file. */
export function logMessages(core: PluginCore): string[] {
  return logRecords(core).map((r) => String(r.msg ?? ""));
}

/**
 * A plugin with one endpoint of each kind plus `where()` (which thread runs it). The same code
 * runs in either isolation.
 */
export function kindsPlugin(name: string): PluginDef {
  return {
    code: pluginClass(
      name,
      `
  add(a: number, b: number) { return a + b; }
  async addAsync(a: number, b: number) { await new Promise((r) => setTimeout(r, 1)); return a + b; }
  *count(n: number, prefix = "") { for (let i = 0; i < n; i++) yield prefix + i; }
  async *countAsync(n: number, prefix = "") {
    for (let i = 0; i < n; i++) { await new Promise((r) => setImmediate(r)); yield prefix + i; }
  }
  where() { return { isMainThread, threadId, uuid: this.pluginUuid, name: this.pluginName }; }
  self() {
    return {
      enabled: this.enabled,
      version: this.version,
      endpoints: this.endpoints.map((e) => [e.access_name, e.kind]),
      author: this.currentCall?.author ?? null,
      hasSignal: this.currentCall?.signal instanceof AbortSignal,
    };
  }
  fail(message: string) { throw new TypeError(message); }
  async failAsync(message: string) { await null; throw new RangeError(message); }
  echo(value: unknown) { return value; }
  giveFunction() { return () => 1; }`,
      `import { isMainThread, threadId } from "node:worker_threads";`,
    ),
    manifest: {
      endpoints: [
        open("add", [
          { name: "a", type: "int", required: true },
          { name: "b", type: "int", default: 1 },
        ]),
        open("addAsync", [
          { name: "a", type: "int", required: true },
          { name: "b", type: "int", default: 1 },
        ]),
        open("count", [
          { name: "n", type: "int", required: true },
          { name: "prefix", type: "str" },
        ]),
        open("countAsync", [
          { name: "n", type: "int", required: true },
          { name: "prefix", type: "str" },
        ]),
        open("where"),
        open("fail", ["message"]),
        open("failAsync", ["message"]),
        open("echo", ["value"]),
        open("giveFunction"),
        open("self"),
      ],
    },
  };
}

/** A plain in-process plugin that answers `ping`, to show that the rest keeps serving. */
export function pingPlugin(name: string): PluginDef {
  return {
    code: pluginClass(name, `  ping(x = 1) { return "pong " + x; }`),
    manifest: { endpoints: [open("ping", ["x"])] },
  };
}

/**
 * One core for the tests of the enclosing describe block: started before the first, closed
 * after the last. Returns a getter. For tests that only call plugins and leave them as they
 * found them; a worker costs some 0.3 s of CPU to start.
 */
export function sharedCore<T extends { core: PluginCore }>(
  start: () => Promise<T>,
  timeoutMs = 30_000,
): () => T {
  let value: T | undefined;
  beforeAll(async () => {
    value = await start();
  }, timeoutMs);
  afterAll(async () => {
    await value?.core.close();
  }, timeoutMs);
  return () => {
    if (!value) throw new Error("the shared core did not start");
    return value;
  };
}
