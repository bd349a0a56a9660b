/**
 * Module resolution hooks, registered once with `module.register` before the first plugin
 * loads.
 *
 * - A plugin imports "aio-assistant-core" wherever its folder is: the import resolves to the
 *   very runtime that loads it, so `extends Plugin` and `instanceof AioError` hold even for a
 *   plugin folder with no node_modules of its own, or with another copy of the package.
 * - Plugin code is ES modules by contract, also in a folder with no package.json to say so.
 * - Each load imports the entry with `?aio-v=N`; the same mark is passed on to the plugin's
 *   own files (not to packages), so a reload sees every changed file of the plugin, not only
 *   the entry.
 */
import { existsSync, statSync } from "node:fs";
import type { InitializeHook, ResolveHook } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";

export interface HookData {
  /** URL of the package entry point of the running runtime. */
  coreUrl: string;
}

const PACKAGE = "aio-assistant-core";
export const VERSION_PARAM = "aio-v";
const SOURCE_FILE = /\.(ts|mts|js|mjs)$/;
let coreUrl = "";

export const initialize: InitializeHook<HookData> = (data) => {
  coreUrl = data.coreUrl;
};

function isPluginSource(url: URL): boolean {
  return (
    url.protocol === "file:" &&
    SOURCE_FILE.test(url.pathname) &&
    !url.pathname.includes("/node_modules/")
  );
}

/**
 * The file a relative import of plugin code names, found here rather than by tsx: tsx would
 * load a .ts file of a folder without "type": "module" as CommonJS, cached by file name, so
 * a reload would never see it change. TypeScript's conventions apply: "./lib.js" may be
 * lib.ts, and "./lib" may be lib.ts, lib.js or lib/index.ts.
 */
function pluginFile(specifier: string, parent: URL): URL | undefined {
  if (!specifier.startsWith("./") && !specifier.startsWith("../")) return undefined;
  const base = new URL(specifier, parent);
  base.search = "";
  const path = fileURLToPath(base);
  const candidates = SOURCE_FILE.test(path)
    ? [path, path.replace(/\.js$/, ".ts").replace(/\.mjs$/, ".mts")]
    : [".ts", ".mts", ".js", ".mjs", "/index.ts", "/index.js"].map((ending) => path + ending);
  const found = candidates.find(
    (candidate) => existsSync(candidate) && statSync(candidate).isFile(),
  );
  return found === undefined ? undefined : pathToFileURL(found);
}

export const resolve: ResolveHook = async (specifier, context, nextResolve) => {
  if (specifier === PACKAGE) return { url: coreUrl, format: "module", shortCircuit: true };
  const parent = context.parentURL ? new URL(context.parentURL) : undefined;
  const version = parent?.searchParams.get(VERSION_PARAM);
  if (version && parent && isPluginSource(parent)) {
    const file = pluginFile(specifier, parent);
    if (file) {
      file.searchParams.set(VERSION_PARAM, version);
      return { url: file.href, format: "module", shortCircuit: true };
    }
  }
  const resolved = await nextResolve(specifier, context);
  const url = new URL(resolved.url);
  // A plugin's entry file, imported by the loader with its version mark.
  if (isPluginSource(url) && url.searchParams.has(VERSION_PARAM)) {
    return { ...resolved, format: "module" };
  }
  return resolved;
};
