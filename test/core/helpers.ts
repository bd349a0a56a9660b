/**
 * Fixtures for the core behaviour tests: plugin folders and config files written into a fresh
 * temporary folder from strings, so each test states its plugins inline.
 *
 * Plugin files are loaded by the runtime at run time (through tsx), so they may use anything
 * Node 20 + tsx understand, decorators included. Test files themselves must not use
 * decorators (vitest's transform leaves them untouched).
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type ConfigObject, PluginCore, type PluginInfo, RequestError } from "aio-assistant-core";
import { expect } from "vitest";
import { removeTempDirs, tempDir, writeTree } from "../support.js";

export { tempDir, writeTree };

export const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const EXAMPLES = join(REPO_ROOT, "examples");

/** Quiet logging: errors only, no log file. */
export const QUIET = { console_log_level: "ERROR", log_dir: "" } as const;
/**
 * The `general` section of generated configs: plugins from ./plugins, no log file, and a console
 * level of CRITICAL, since many tests make plugins fail on purpose.
 */
export const QUIET_PLUGINS_YAML = `general:\n  plugin_package: plugins\n  console_log_level: CRITICAL\n  log_dir: ""\n`;

// ---------------------------------------------------------------------------------- manifests

export interface ArgSpec {
  name: string;
  type?: string;
  required?: boolean;
  default?: unknown;
  description?: string;
}

export interface EndpointSpec {
  internal_name: string;
  access_name?: string;
  accessible_by_other_plugins?: boolean;
  remote?: boolean;
  tags?: string[];
  description?: string;
  arguments?: ArgSpec[];
}

/**
 * An endpoint: `ep("add", ["a", "b"])` or `ep("add", [{ name: "a", type: "int" }], { access_name: "plus" })`.
 * Plain strings declare arguments of type any.
 */
export function ep(
  internal: string,
  args: Array<string | ArgSpec> = [],
  extra: Omit<EndpointSpec, "internal_name" | "arguments"> = {},
): EndpointSpec {
  return {
    internal_name: internal,
    ...extra,
    arguments: args.map((a) => (typeof a === "string" ? { name: a, type: "any" } : a)),
  };
}

export interface ManifestSpec {
  description?: string;
  version?: string;
  remote?: boolean;
  arguments?: unknown;
  endpoints?: EndpointSpec[];
}

/** plugin_config.yml text. JSON is YAML, so the object is written as JSON. */
export function manifest(spec: ManifestSpec): string {
  return `${JSON.stringify({ version: "1.0.0", ...spec }, null, 2)}\n`;
}

/** A plugin module exporting `class <name> extends Plugin { <body> }`. */
export function pluginClass(name: string, body: string, header = ""): string {
  return `import { Plugin } from "aio-assistant-core";\n${header}\nexport class ${name} extends Plugin {\n${body}\n}\n`;
}

export interface PluginDef {
  /** plugin.ts text (or the file named by `file`). */
  code: string;
  /** plugin_config.yml: text, or a spec turned into JSON. */
  manifest: string | ManifestSpec;
  /** Entry file name; default plugin.ts. */
  file?: string;
}

/** The files of one plugin folder at `folder` (relative). */
export function pluginFiles(folder: string, def: PluginDef): Record<string, string> {
  return {
    [join(folder, def.file ?? "plugin.ts")]: def.code,
    [join(folder, "plugin_config.yml")]:
      typeof def.manifest === "string" ? def.manifest : manifest(def.manifest),
  };
}

export interface FixtureSpec {
  /** Plugin folders by name; written to `<dir>/plugins/<name>`. */
  plugins?: Record<string, PluginDef>;
  /**
   * config.yml text. Default: every plugin of `plugins`, enabled, with quiet logging and
   * `plugin_package: plugins`.
   */
  configYaml?: string;
  /** Extra files (relative path -> text). */
  files?: Record<string, string>;
  /**
   * Write `{"type":"module"}` as package.json at the fixture's root (default true). Plugin
   * files are ES modules by contract; see the lifecycle test of a folder without it.
   */
  packageJson?: boolean;
}

export interface Fixture {
  dir: string;
  configFile: string;
  /** Absolute folder of plugin `name`. */
  pluginDir(name: string): string;
}

/** Writes a plugin package and config.yml into a fresh temporary folder. */
export function fixture(spec: FixtureSpec): Fixture {
  const dir = tempDir();
  const plugins = spec.plugins ?? {};
  const files: Record<string, string> = { ...(spec.files ?? {}) };
  for (const [name, def] of Object.entries(plugins)) {
    Object.assign(files, pluginFiles(join("plugins", name), def));
  }
  const configYaml =
    spec.configYaml ??
    `plugins:\n${Object.keys(plugins)
      .map((name) => `  - name: ${name}\n    enabled: true\n`)
      .join("")}${Object.keys(plugins).length === 0 ? "  []\n" : ""}${QUIET_PLUGINS_YAML}`;
  files["config.yml"] = configYaml;
  if (spec.packageJson !== false) files["package.json"] = '{ "type": "module" }\n';
  writeTree(dir, files);
  return {
    dir,
    configFile: join(dir, "config.yml"),
    pluginDir: (name) => join(dir, "plugins", name),
  };
}

// ---------------------------------------------------------------------------------- cores

const cores: PluginCore[] = [];

/** A PluginCore closed by {@link cleanup}. */
export function newCore(config: string | ConfigObject): PluginCore {
  const core = new PluginCore(config);
  cores.push(core);
  return core;
}

/** Writes the fixture, creates its core from the config file and starts it. */
export async function startFixture(spec: FixtureSpec): Promise<{ core: PluginCore; fx: Fixture }> {
  const fx = fixture(spec);
  const core = newCore(fx.configFile);
  await core.start();
  return { core, fx };
}

/** Closes every core and removes every temporary folder; use in afterEach. */
export async function cleanup(): Promise<void> {
  const closing = cores.splice(0).map((core) => core.close().catch(() => undefined));
  await Promise.all(closing);
  removeTempDirs();
}

// ---------------------------------------------------------------------------------- assertions

/** Awaits `work` and returns the RequestError it rejects with (fails if it resolves). */
export async function rejection(work: Promise<unknown> | (() => unknown)): Promise<RequestError> {
  try {
    await (typeof work === "function" ? work() : work);
  } catch (error) {
    expect(error).toBeInstanceOf(RequestError);
    return error as RequestError;
  }
  throw new Error("expected the call to fail");
}

/** Runs `fn` and returns the error it throws synchronously (fails if it does not throw). */
export function thrown(fn: () => unknown): RequestError {
  try {
    fn();
  } catch (error) {
    return error as RequestError;
  }
  throw new Error("expected a synchronous throw");
}

/** Collects an async iterable into an array. */
export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/** The listPlugins() entries named `name`. */
export function infos(core: PluginCore, name: string): PluginInfo[] {
  return core.listPlugins().filter((p) => p.name === name);
}

/** A promise of the next emission of `event` whose first argument has `name`. */
export function nextEvent(
  core: PluginCore,
  event:
    | "plugin:loaded"
    | "plugin:enabled"
    | "plugin:disabled"
    | "plugin:unloaded"
    | "plugin:failed",
  name: string,
): Promise<unknown[]> {
  return new Promise((resolve) => {
    const listener = (...args: unknown[]) => {
      if ((args[0] as PluginInfo).name !== name) return;
      core.off(event, listener as never);
      resolve(args);
    };
    core.on(event, listener as never);
  });
}

/** A simple healthy plugin used to show that the rest keeps working. */
export const HEALTHY: PluginDef = {
  code: pluginClass("Healthy", "  ping(x = 1) { return 'pong ' + x; }"),
  manifest: { endpoints: [ep("ping", ["x"], { accessible_by_other_plugins: true })] },
};

/** Asserts that plugin Healthy still answers. */
export async function expectHealthy(core: PluginCore): Promise<void> {
  await expect(core.execute("Healthy", "ping", [7])).resolves.toBe("pong 7");
}

// ---------------------------------------------------------------------------------- recording

let recorders = 0;

export interface Recorder {
  /** What plugin code pushed, in order. */
  readonly events: unknown[];
  /** Plugin code that pushes the value of the TypeScript expression `expr`. */
  push(expr: string): string;
}

/**
 * A list plugin code can push to (plugins run in the test's process), to observe hooks and
 * the order of things without sleeping.
 */
export function recorder(): Recorder {
  const key = `__aioRec${process.pid}_${++recorders}`;
  const events: unknown[] = [];
  (globalThis as Record<string, unknown>)[key] = events;
  return {
    events,
    push: (expr) => `(globalThis as any)[${JSON.stringify(key)}].push(${expr});`,
  };
}

/** Plugin code: `await sleep(ms)` for simulated work. */
export const SLEEP = `const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));`;

/**
 * config.yml text: `plugins` is the YAML of the list items (e.g. "  - name: A\n"), `general`
 * extra lines of the general section (e.g. "  drain_timeout: 0.2\n").
 */
export function yamlConfig(plugins: string, general = ""): string {
  return `plugins:\n${plugins}${QUIET_PLUGINS_YAML}${general}`;
}
