/**
 * Finds a plugin's module file and the class it exports. TypeScript files are loaded through
 * tsx at run time, so a plugin folder needs no build step.
 */
import { existsSync } from "node:fs";
import { register } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { ConfigError } from "../errors.js";
import { type HookData, VERSION_PARAM } from "./hooks.js";
import { isPluginClass, type PluginClass } from "./plugin.js";

/** Entry file names, in the order they are looked for. */
export const ENTRY_FILES = ["plugin.ts", "plugin.mts", "plugin.js", "plugin.mjs"] as const;

let hooksRegistered: Promise<void> | undefined;

/** Registers tsx and our resolution hooks, once, when the first plugin loads. */
function registerHooks(): Promise<void> {
  hooksRegistered ??= (async () => {
    // Imported here, not at the top: tsx costs ~60 ms to import, and a node may never load
    // a plugin.
    const { register: registerTsx } = await import("tsx/esm/api");
    // tsconfig: false compiles plugins the same way whatever folder the node runs from
    // (standard decorators, ES module output), instead of following a stray tsconfig.json.
    registerTsx({ tsconfig: false });
    // Registered after tsx so it runs first: the package name never reaches tsx's resolver.
    const data: HookData = { coreUrl: new URL("../index.js", import.meta.url).href };
    register(new URL("./hooks.js", import.meta.url), { data });
  })();
  return hooksRegistered;
}

export function findEntryFile(dir: string): string | undefined {
  for (const name of ENTRY_FILES) {
    const file = join(dir, name);
    if (existsSync(file)) return file;
  }
  return undefined;
}

function loadFailed(message: string, file: string, cause?: unknown): ConfigError {
  return new ConfigError("PLUGIN_LOAD_FAILED", message, { file }, { cause });
}

/**
 * Imports the plugin module in `dir` and returns the class named `name`, or its default
 * export. Each `version` is a fresh copy of the plugin's modules, so a load after an edit
 * sees the new code.
 */
export async function importPluginClass(
  dir: string,
  name: string,
  version: number,
): Promise<{ pluginClass: PluginClass; file: string }> {
  if (!existsSync(dir)) {
    throw loadFailed(`Plugin "${name}": folder not found: ${dir}`, dir);
  }
  const file = findEntryFile(dir);
  if (!file) {
    throw loadFailed(`Plugin "${name}": no ${ENTRY_FILES.join(", ")} in ${dir}`, dir);
  }
  await registerHooks();
  const url = pathToFileURL(file);
  url.searchParams.set(VERSION_PARAM, String(version));
  let namespace: Record<string, unknown>;
  try {
    namespace = await import(url.href);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw loadFailed(`Plugin "${name}": ${file} failed to import: ${reason}`, file, error);
  }
  const candidate = namespace[name] ?? namespace.default;
  if (isPluginClass(candidate)) return { pluginClass: candidate, file };
  const exported = Object.keys(namespace);
  const found =
    candidate === undefined
      ? `it exports no class named ${name} and no default export (exports: ${exported.join(", ") || "none"})`
      : `its export ${namespace[name] !== undefined ? name : "default"} does not extend Plugin from "aio-assistant-core"`;
  throw loadFailed(`Plugin "${name}": ${file}: ${found}`, file);
}
