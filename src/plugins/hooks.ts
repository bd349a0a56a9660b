/**
 * Module resolution hooks, registered once with `module.register` before the first plugin
 * loads. A plugin imports "aio-assistant-core" wherever its folder is: the import resolves to
 * the very runtime that loads it, so `extends Plugin` and `instanceof AioError` hold even for
 * a plugin folder with no node_modules of its own, or with another copy of the package.
 */
import type { InitializeHook, ResolveHook } from "node:module";

export interface HookData {
  /** URL of the package entry point of the running runtime. */
  coreUrl: string;
}

const PACKAGE = "aio-assistant-core";
let coreUrl = "";

export const initialize: InitializeHook<HookData> = (data) => {
  coreUrl = data.coreUrl;
};

export const resolve: ResolveHook = (specifier, context, nextResolve) => {
  if (specifier === PACKAGE) return { url: coreUrl, format: "module", shortCircuit: true };
  return nextResolve(specifier, context);
};
