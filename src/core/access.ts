/**
 * Who may call an endpoint (the contract's "Who may call"), in one place: the dispatcher
 * applies it to every call, a node's `/info` answer uses it to tell each asking node which
 * endpoints it may call and why not the others, and `/has_plugin` says whether an endpoint is
 * open to other nodes at all.
 */

import type { Caller } from "./call.js";
import type { LoadedEndpoint } from "./endpoint.js";
import type { PluginSlot } from "./registry.js";

/**
 * Why `caller` may not call `endpoint` of the plugin in `slot` on the node `hostname`, or
 * undefined when it may.
 *
 * A call from another node must find the plugin and the endpoint both `remote: true`, and the
 * caller among the plugin's `allowed_nodes` if it lists any; a call that says it comes from a
 * plugin there must also find the endpoint open to other plugins, as a local one would.
 */
export function refusal(
  caller: Caller,
  slot: PluginSlot,
  endpoint: LoadedEndpoint,
  hostname: string,
): string | undefined {
  if (caller.kind === "application") return undefined;
  if (caller.kind === "plugin") return pluginRefusal(caller.name, slot, endpoint);
  const from = `node ${caller.hostname}`;
  if (!openToNodes(slot, endpoint)) {
    return `node "${hostname}" does not open it to other nodes (the plugin and the endpoint must both say remote: true); the caller is ${from}`;
  }
  const allowed = slot.entry.allowed_nodes;
  if (allowed.length > 0 && !allowed.includes(caller.hostname)) {
    return `node "${hostname}" lets only ${allowed.join(", ")} call ${slot.name} (allowed_nodes); the caller is ${from}`;
  }
  if (caller.author === undefined) return undefined;
  const refused = pluginRefusal(caller.author, slot, endpoint);
  return refused === undefined ? undefined : `${refused} on ${from}`;
}

/**
 * Whether the plugin in `slot`, and `endpoint` when given, say `remote: true`. `GET /has_plugin`
 * answers with it before any call, and it must agree with what `refusal` then does to the call.
 */
export function openToNodes(slot: PluginSlot, endpoint?: LoadedEndpoint): boolean {
  return slot.host?.identity().remote === true && (endpoint === undefined || endpoint.info.remote);
}

function pluginRefusal(
  author: string,
  slot: PluginSlot,
  endpoint: LoadedEndpoint,
): string | undefined {
  if (author === slot.name || endpoint.info.accessible_by_other_plugins) return undefined;
  return `only ${slot.name} itself may call it (accessible_by_other_plugins is false); the caller is plugin ${author}`;
}
