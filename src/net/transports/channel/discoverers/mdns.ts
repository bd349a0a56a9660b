/**
 * LAN discovery over mDNS (service type `_aio._tcp`): a node announces itself, and contacts
 * the nodes it hears of through `/info`, like any node found in node_ips. A node never
 * contacts itself: announcements carry its instance id.
 */

import { isIPv4 } from "node:net";
import { Bonjour, type Service } from "bonjour-service";
import { Discoverer, type DiscoveryContext, type Found } from "./discoverer.js";

export const SERVICE_TYPE = "aio";

function addressOf(service: Service): string | undefined {
  const candidates = [service.referer?.address, ...(service.addresses ?? [])].filter(
    (address): address is string => typeof address === "string" && address !== "",
  );
  return candidates.find((address) => isIPv4(address)) ?? candidates[0];
}

export class MdnsDiscoverer extends Discoverer {
  readonly #context: DiscoveryContext;
  #bonjour: Bonjour | undefined;

  constructor(context: DiscoveryContext) {
    super();
    this.#context = context;
  }

  start(found: Found): void {
    const { config, bind, hostname, instance, port, logger } = this.#context;
    const specific = bind !== "0.0.0.0" && bind !== "::";
    // multicast-dns binds to `interface` unless told otherwise, and a socket bound to a unicast
    // address never receives multicast: listen on every address, send on the chosen one.
    const bonjour = new Bonjour(
      specific ? ({ interface: bind, bind: "0.0.0.0" } as object) : {},
      (error: Error) => logger.warn(`mDNS discovery failed: ${error.message}`),
    );
    this.#bonjour = bonjour;
    if (config.direct_discoverable) {
      bonjour.publish({
        name: `${hostname} ${instance.slice(0, 8)}`,
        type: SERVICE_TYPE,
        protocol: "tcp",
        port,
        txt: { instance, hostname },
        disableIPv6: true,
      });
    }
    if (config.discover_nodes) {
      bonjour.find({ type: SERVICE_TYPE, protocol: "tcp" }, (service) => {
        const txt = (service.txt ?? {}) as { instance?: string };
        if (txt.instance === instance) return;
        const address = addressOf(service);
        if (address) void found(address, service.port, txt.instance);
      });
    }
  }

  override close(): Promise<void> {
    const bonjour = this.#bonjour;
    if (!bonjour) return Promise.resolve();
    return new Promise((resolve) => {
      bonjour.unpublishAll(() => bonjour.destroy(() => resolve()));
    });
  }
}
