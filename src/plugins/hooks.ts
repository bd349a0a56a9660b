/**
 * Module resolution hooks, registered once with `module.register` before the first plugin
 * loads.
 *
 * - A plugin imports "aio-assistant-core" wherever its folder is: the import resolves to the
 *   very runtime that loads it, so `extends Plugin` and `instanceof AioError` hold even for a
 *   plugin folder with no node_modules of its own, or with another copy of the package.
 * - Plugin code is ES modules by contract, also in a folder with no package.json to say so.
 * - A reload imports the entry with `?aio-v=N`; the same mark is passed on to the plugin's own
 *   files (not to packages), so a reload sees every changed file of the plugin, not only the
 *   entry.
 */
import type { InitializeHook, ResolveHook } from "node:module";

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

export const resolve: ResolveHook = async (specifier, context, nextResolve) => {
  if (specifier === PACKAGE) return { url: coreUrl, format: "module", shortCircuit: true };
  const resolved = await nextResolve(specifier, context);
  const url = new URL(resolved.url);
  if (!isPluginSource(url)) return resolved;
  const version = context.parentURL && new URL(context.parentURL).searchParams.get(VERSION_PARAM);
  if (version && !url.searchParams.has(VERSION_PARAM)) url.searchParams.set(VERSION_PARAM, version);
  if (!url.searchParams.has(VERSION_PARAM)) return resolved;
  return { ...resolved, url: url.href, format: "module" };
};
