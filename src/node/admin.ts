/**
 * What an operator's action does to a core, whether it comes from the command line running the
 * core in its own process (cli/target.ts) or over the network (`aio console --node`, which
 * PluginCore checks first). It names the core's methods by shape, not PluginCore's class, so
 * the command line loads the core only when it runs one, and plugin-core.ts imports this file
 * without a cycle.
 */
import type { AdminAction } from "../net/server.js";

/** The methods of PluginCore that the actions use. */
export interface ManagedCore {
  loadPlugin(name: string, entry: { path?: string }): Promise<void>;
  enablePlugin(name: string): Promise<void>;
  disablePlugin(name: string): Promise<void>;
  reloadPlugin(name: string): Promise<void>;
  popPlugin(name: string): Promise<void>;
  purgePlugins(): Promise<void>;
}

/** `path` (load only) is a plugin folder; without it the plugin's config entry says where. */
export function runAdminAction(
  core: ManagedCore,
  action: AdminAction,
  name: string,
  path?: string,
): Promise<void> {
  switch (action) {
    case "load":
      return core.loadPlugin(name, path === undefined ? {} : { path });
    case "enable":
      return core.enablePlugin(name);
    case "disable":
      return core.disablePlugin(name);
    case "reload":
      return core.reloadPlugin(name);
    case "pop":
      return core.popPlugin(name);
    case "purge":
      return core.purgePlugins();
  }
}
