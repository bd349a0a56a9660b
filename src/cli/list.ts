/** `aio plugins`, `aio nodes`, `aio endpoints`: what a node runs, as tables or JSON. */
import { colorsFor, json, out, Progress } from "./output.js";
import { endpointTable, nodeTable, pluginTable } from "./tables.js";
import { type Target, type TargetOptions, withTarget } from "./target.js";

export interface ListOptions extends TargetOptions {
  json?: boolean | undefined;
}

export interface NodesOptions extends ListOptions {
  /** In-process: milliseconds to wait for other nodes to be found before listing. */
  wait?: number | undefined;
}

export function pluginsCommand(options: ListOptions): Promise<number> {
  return withTarget(options, async (target) => {
    const plugins = await target.plugins();
    const hostname = await target.hostname();
    if (options.json) out(json({ hostname, plugins }));
    else out(pluginTable(plugins, colorsFor(process.stdout)));
  });
}

/** Waits up to `ms` for nodes, on a terminal showing how many were found so far. */
async function discover(target: Target, ms: number): Promise<void> {
  const progress = new Progress();
  const until = Date.now() + ms;
  try {
    while (Date.now() < until) {
      const found = (await target.nodes()).length;
      const left = Math.max(0, (until - Date.now()) / 1000);
      progress.update(`Waiting for other nodes: ${found} found, ${left.toFixed(1)} s left…`);
      await new Promise((resolve) => setTimeout(resolve, Math.min(200, until - Date.now())));
    }
  } finally {
    progress.clear();
  }
}

export function nodesCommand(options: NodesOptions): Promise<number> {
  return withTarget(options, async (target) => {
    // In-process, discovery has only just begun: give it a moment.
    const wait = options.wait ?? (target.address() ? 1500 : 0);
    if (target.kind === "local" && wait > 0) await discover(target, wait);
    const nodes = await target.nodes();
    const hostname = await target.hostname();
    if (options.json) out(json({ hostname, nodes }));
    else out(nodeTable(nodes, colorsFor(process.stdout)));
  });
}

export function endpointsCommand(plugin: string, options: ListOptions): Promise<number> {
  return withTarget(options, async (target) => {
    const endpoints = await target.endpoints(plugin);
    if (options.json) out(json({ plugin, endpoints }));
    else out(endpointTable(endpoints));
  });
}
