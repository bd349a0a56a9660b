/**
 * `aio plugins`, `aio nodes`, `aio endpoints`: what a node runs, as tables or JSON; and
 * `aio publish`, which needs the nodes found as `aio nodes` does.
 */
import { parseArgs } from "./call.js";
import { colorsFor, json, out, Progress } from "./output.js";
import { endpointTable, nodeTable, pluginTable, taggedTable } from "./tables.js";
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

/** In-process, discovery has only just begun: gives it a moment (`--wait`). */
async function afterDiscovery(target: Target, wait: number | undefined): Promise<void> {
  const ms = wait ?? target.discoveryMs();
  if (target.kind === "local" && ms > 0) await discover(target, ms);
}

export function nodesCommand(options: NodesOptions): Promise<number> {
  return withTarget(options, async (target) => {
    await afterDiscovery(target, options.wait);
    const nodes = await target.nodes();
    const hostname = await target.hostname();
    if (options.json) out(json({ hostname, nodes }));
    else out(nodeTable(nodes, colorsFor(process.stdout)));
  });
}

export interface EndpointsOptions extends NodesOptions {
  tag?: string | undefined;
}

export function endpointsCommand(
  plugin: string | undefined,
  options: EndpointsOptions,
): Promise<number> {
  return withTarget(options, async (target) => {
    if (plugin === undefined) {
      await afterDiscovery(target, options.wait);
      const endpoints = await target.tagged(options.tag);
      if (options.json) out(json({ tag: options.tag ?? null, endpoints }));
      else out(taggedTable(endpoints, options.tag));
      return;
    }
    const all = await target.endpoints(plugin);
    const endpoints =
      options.tag === undefined ? all : all.filter((e) => e.tags.includes(options.tag as string));
    if (options.json) out(json({ plugin, endpoints }));
    else out(endpointTable(endpoints));
  });
}

/** Prints the node's OpenAPI 3.1 document. */
export function openapiCommand(options: TargetOptions): Promise<number> {
  return withTarget(options, async (target) => {
    out(json(await target.openapi()));
  });
}

export interface PublishOptions extends NodesOptions {
  host?: string | undefined;
}

/** Prints how many subscribers took the publish: a number alone, for scripts. */
export function publishCommand(
  topic: string,
  argsText: string | undefined,
  options: PublishOptions,
): Promise<number> {
  const args = parseArgs(argsText);
  return withTarget(options, async (target) => {
    await afterDiscovery(target, options.wait);
    out(String(await target.notify(topic, args, { host: options.host })));
  });
}
