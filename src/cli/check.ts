/**
 * `aio check`: everything that can be wrong before a node starts, found without starting one.
 * Reads config.yml and every plugin's manifest, imports every plugin's module (its top-level
 * code runs; no plugin is constructed, no `onLoad`), and checks that each endpoint's
 * `internal_name` is a method of the plugin class.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { type ConfigWarning, formatProblem, loadConfigFile, loadManifest } from "../config/load.js";
import type { AioConfig, PluginManifest } from "../config/types.js";
import { parseYaml } from "../config/yaml.js";
import { ConfigError } from "../errors.js";
import { importPluginClass } from "../plugins/loader.js";
import { Plugin, type PluginClass } from "../plugins/plugin.js";
import { colorsFor, EXIT, json, note, out, Progress, paint, shownPath } from "./output.js";
import { chooseConfig } from "./paths.js";
import { TYPES_FILE, typesOfConfig } from "./types.js";

export interface CheckOptions {
  json?: boolean | undefined;
}

interface PluginReport {
  name: string;
  path: string;
  enabled: boolean;
  version?: string;
  endpoints: number;
  ok: boolean;
}

interface Report {
  config: string;
  ok: boolean;
  plugins: PluginReport[];
  problems: string[];
  warnings: string[];
}

function problemsOf(error: unknown): string[] {
  if (error instanceof ConfigError) return [...error.problems];
  return [error instanceof Error ? error.message : String(error)];
}

const warningText = (w: ConfigWarning) => formatProblem(w);

/** A plugin class constructed at most once, on first need; what `new` threw, if it threw. */
type Instance = () => { fields: Record<string, unknown> } | { error: string };

function lazyInstance(pluginClass: PluginClass): Instance {
  let made: ReturnType<Instance> | undefined;
  return () => {
    if (!made) {
      try {
        made = { fields: new pluginClass() as unknown as Record<string, unknown> };
      } catch (error) {
        made = { error: error instanceof Error ? error.message : String(error) };
      }
    }
    return made;
  };
}

/**
 * Why `name` is not a method the core can serve from `pluginClass`, or undefined if it is
 * one: a function on the class's prototype chain, below Plugin itself, or else a function in
 * a field (`name = () => …`), which only an instance has: then `instance` constructs one,
 * without a core and without `onLoad`, and check looks there.
 */
function methodProblem(
  pluginClass: PluginClass,
  instance: Instance,
  plugin: string,
  name: string,
): string | undefined {
  let proto: object | null = pluginClass.prototype as object;
  while (proto && proto !== Plugin.prototype && proto !== Object.prototype) {
    const descriptor = Object.getOwnPropertyDescriptor(proto, name);
    if (descriptor) {
      if (typeof descriptor.value === "function" && name !== "constructor") return undefined;
      if (descriptor.get || descriptor.set)
        return `${plugin}: "${name}" is a getter or setter, not a method`;
      return `${plugin}: "${name}" is not a method`;
    }
    proto = Object.getPrototypeOf(proto) as object | null;
  }
  if (name in Plugin.prototype || name in Object.prototype) {
    return `${plugin}: "${name}" is a member of ${name in Plugin.prototype ? "Plugin" : "Object"} itself, not a method of the plugin`;
  }
  const made = instance();
  if ("error" in made)
    return `${plugin} has no method "${name}" on its class, and constructing it to look for a field failed: ${made.error}`;
  if (typeof made.fields[name] === "function") return undefined;
  return `${plugin} has no method "${name}"`;
}

async function checkPlugins(config: AioConfig, report: Report, progress: Progress): Promise<void> {
  const file = config.file as string;
  const { lineOf, data } = parseYaml(readFileSync(file, "utf8"));
  const written = (data as { plugins?: Array<Record<string, unknown> | null> } | null)?.plugins;
  const seen = new Map<string, number>();
  let done = 0;
  for (const [index, entry] of config.plugins.entries()) {
    progress.update(`Checking plugins: ${done++}/${config.plugins.length} (${entry.name})…`);
    const at = (key: string, message: string) =>
      formatProblem({
        file,
        line: lineOf(["plugins", index, key]) ?? lineOf(["plugins", index]),
        key: `plugins[${index}].${key}`,
        message,
      });
    const first = seen.get(entry.name);
    if (first !== undefined) {
      report.problems.push(
        at(
          "name",
          `duplicate plugin name "${entry.name}"; plugins[${first}] already uses it, so this entry would be ignored`,
        ),
      );
      continue;
    }
    seen.set(entry.name, index);
    const plugin: PluginReport = {
      name: entry.name,
      path: entry.path,
      enabled: entry.enabled,
      endpoints: 0,
      ok: false,
    };
    report.plugins.push(plugin);
    const before = report.problems.length;

    let manifest: PluginManifest;
    try {
      const read = loadManifest(entry.path);
      manifest = read.manifest;
      report.warnings.push(...read.warnings.map(warningText));
    } catch (error) {
      // A missing manifest is best found from the config entry that points at it.
      if (error instanceof ConfigError && error.code === "PLUGIN_LOAD_FAILED") {
        const key = written?.[index]?.path === undefined ? "name" : "path";
        report.problems.push(at(key, `${entry.name}: ${error.message}`));
      } else {
        report.problems.push(...problemsOf(error));
      }
      continue;
    }
    plugin.version = manifest.version;
    plugin.endpoints = manifest.endpoints.length;

    let pluginClass: PluginClass;
    try {
      pluginClass = (await importPluginClass(entry.path, entry.name, 1)).pluginClass;
    } catch (error) {
      report.problems.push(...problemsOf(error));
      continue;
    }
    const instance = lazyInstance(pluginClass);
    manifest.endpoints.forEach((endpoint, i) => {
      const problem = methodProblem(pluginClass, instance, entry.name, endpoint.internal_name);
      if (problem) {
        report.problems.push(
          formatProblem({
            file: manifest.file,
            line: endpoint.line,
            key: `endpoints[${i}].internal_name`,
            message: problem,
          }),
        );
      }
    });
    plugin.ok = report.problems.length === before;
  }
  progress.clear();
}

/** Declarations `aio types` wrote beside the config must match the manifests as they are now. */
function checkTypes(file: string, report: Report): void {
  const typesFile = join(dirname(file), TYPES_FILE);
  if (!existsSync(typesFile)) return;
  if (readFileSync(typesFile, "utf8") === typesOfConfig(file, typesFile).text) return;
  report.warnings.push(
    `${shownPath(typesFile)}: out of date with the manifests; run \`aio types -o ${TYPES_FILE}\` to bring the typed calls in step`,
  );
}

export async function checkCommand(
  configArg: string | undefined,
  options: CheckOptions,
): Promise<number> {
  const { file, why, fallback } = chooseConfig(configArg);
  if (fallback) note(`aio: checking ${file} (${why})`);
  const report: Report = { config: file, ok: false, plugins: [], problems: [], warnings: [] };
  try {
    const { config, warnings } = loadConfigFile(file);
    report.warnings.push(...warnings.map(warningText));
    await checkPlugins(config, report, new Progress());
    if (report.problems.length === 0) checkTypes(file, report);
  } catch (error) {
    report.problems.push(...problemsOf(error));
  }
  report.ok = report.problems.length === 0;

  if (options.json) {
    out(json(report));
  } else {
    const color = colorsFor(process.stdout);
    const lines: string[] = [];
    for (const problem of report.problems) lines.push(paint(problem, "red", color));
    for (const warning of report.warnings)
      lines.push(paint(`warning: ${warning}`, "yellow", color));
    const shown = shownPath(file);
    const endpoints = report.plugins.reduce((sum, p) => sum + p.endpoints, 0);
    const what = `${shown}: ${report.plugins.length} plugin(s), ${endpoints} endpoint(s)`;
    if (lines.length) lines.push("");
    lines.push(
      report.ok
        ? paint(
            `OK ${what}, no problems${report.warnings.length ? ` (${report.warnings.length} warning(s))` : ""}.`,
            "green",
            color,
          )
        : paint(
            `${report.problems.length} problem(s) found in ${shown} and its plugins.`,
            "red",
            color,
          ),
    );
    out(lines.join("\n"));
  }
  return report.ok ? EXIT.OK : EXIT.FAILED;
}
