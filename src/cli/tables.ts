/** The tables `aio run`, `aio plugins`, `aio nodes`, `aio endpoints` and the console print. */

import type { EndpointInfo } from "../core/endpoint.js";
import type {
  NodeInfo,
  PluginInfo,
  PluginState,
  SubscriptionInfo,
  TaggedEndpoint,
} from "../core/types.js";
import { ago, type Color, paint, safe, table } from "./output.js";

const STATE_COLORS: Record<PluginState, Color> = {
  enabled: "green",
  loaded: "yellow",
  disabled: "yellow",
  failed: "red",
  unloaded: "dim",
};

function loadTime(ms: number | undefined): string {
  if (ms === undefined) return "-";
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
}

/** Lines after the first, indented under it. */
function indentRest(text: string, indent: string): string {
  return text.split("\n").join(`\n${indent}`);
}

/** One row per plugin; then, for failed plugins, why. */
export function pluginTable(plugins: PluginInfo[], color: boolean): string {
  if (plugins.length === 0) return "No plugins.";
  const rows = [["PLUGIN", "VERSION", "STATE", "LOAD", "ISOLATION", "REMOTE"]];
  for (const p of plugins) {
    rows.push([
      safe(p.name),
      safe(p.version) || "-",
      paint(p.state, STATE_COLORS[p.state] ?? "dim", color),
      loadTime(p.loadTimeMs),
      p.isolation,
      p.remote ? "yes" : "no",
    ]);
  }
  const failed = plugins.filter((p) => p.state === "failed");
  const reasons = failed.map(
    (p) =>
      `  ${paint(safe(p.name), "red", color)}: ${indentRest(safe(p.error ?? "unknown reason"), "    ")}`,
  );
  return [table(rows), ...(reasons.length ? ["", "Failed:", ...reasons] : [])].join("\n");
}

export function nodeTable(nodes: NodeInfo[], color: boolean): string {
  if (nodes.length === 0) return "No other nodes known.";
  const rows = [["NODE", "ADDRESS", "STATE", "LAST SEEN", "PLUGINS"]];
  const now = Date.now();
  for (const n of nodes) {
    rows.push([
      safe(n.hostname),
      safe(n.address),
      n.alive ? paint("up", "green", color) : paint("down", "red", color),
      ago(n.lastSeen, now),
      n.plugins.map(safe).join(", ") || "-",
    ]);
  }
  return table(rows);
}

/** `name: type` for each argument; `?` marks an optional one, `= value` its default. */
export function argumentList(endpoint: EndpointInfo): string {
  return (
    endpoint.arguments
      .map((a) => {
        const optional = a.required ? "" : "?";
        const fallback = Object.hasOwn(a, "default") ? ` = ${JSON.stringify(a.default)}` : "";
        return `${safe(a.name)}${optional}: ${a.type}${fallback}`;
      })
      .join(", ") || "-"
  );
}

/** Who subscribes to what, as the console's `topics` lists it. */
export function subscriptionTable(subscriptions: SubscriptionInfo[]): string {
  if (subscriptions.length === 0) return "No subscriptions.";
  const rows = [["NODE", "PATTERN", "SUBSCRIBER", "KIND"]];
  for (const s of subscriptions) {
    rows.push([safe(s.hostname), safe(s.pattern), safe(s.subscriber), s.kind]);
  }
  return table(rows);
}

/** Endpoints of several nodes, as `aio endpoints [--tag]` lists them. */
export function taggedTable(endpoints: TaggedEndpoint[], tag: string | undefined): string {
  if (endpoints.length === 0) {
    return tag === undefined ? "No endpoints." : `No endpoints with the tag "${safe(tag)}".`;
  }
  const rows = [["NODE", "PLUGIN", "ENDPOINT", "KIND", "TAGS", "TOPIC"]];
  for (const { hostname, plugin, endpoint } of endpoints) {
    rows.push([
      safe(hostname),
      safe(plugin),
      safe(endpoint.access_name),
      endpoint.kind,
      safe(endpoint.tags.join(", ")),
      safe(endpoint.topic ?? ""),
    ]);
  }
  return table(rows);
}

export function endpointTable(endpoints: EndpointInfo[]): string {
  if (endpoints.length === 0) return "No endpoints (the plugin is not loaded, or declares none).";
  const rows = [["ENDPOINT", "KIND", "ARGUMENTS", "REMOTE", "OTHER PLUGINS", "DESCRIPTION"]];
  for (const e of endpoints) {
    rows.push([
      safe(e.access_name),
      e.kind,
      argumentList(e),
      e.remote ? "yes" : "no",
      e.accessible_by_other_plugins ? "yes" : "no",
      safe(e.description),
    ]);
  }
  return table(rows);
}
