/** The discoverers a channel node runs, by its config. */
import type { Discoverer, DiscoveryContext } from "./discoverer.js";
import { GossipDiscoverer } from "./gossip.js";
import { MdnsDiscoverer } from "./mdns.js";
import { StaticDiscoverer } from "./static.js";

export { Discoverer, type DiscoveryContext, type Found } from "./discoverer.js";

export function discoverersFor(context: DiscoveryContext): Discoverer[] {
  const { config, loopbackOnly } = context;
  const discoverers: Discoverer[] = [new StaticDiscoverer(context)];
  if (config.discover_nodes) discoverers.push(new GossipDiscoverer());
  // mDNS only for a node reachable from the LAN: one bound to loopback has nothing to announce
  // and nobody to find.
  if (!loopbackOnly && (config.direct_discoverable || config.discover_nodes)) {
    discoverers.push(new MdnsDiscoverer(context));
  }
  return discoverers;
}
