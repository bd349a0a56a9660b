/**
 * LAN discovery over mDNS (service type `_aio._tcp`): a node announces itself, and contacts
 * the nodes it hears of through `/info`, like any node found in node_ips. A node never
 * contacts itself: announcements carry its instance id.
 */

import { isIPv4 } from "node:net";
import { Bonjour, type Service } from "bonjour-service";
import type { Logger } from "../../../log.js";

export const SERVICE_TYPE = "aio";

export interface MdnsOptions {
  hostname: string;
  instance: string;
  port: number;
  /** The address the node listens on; a specific one also picks the multicast interface. */
  bind: string;
  announce: boolean;
  browse: boolean;
  logger: Logger;
  /** `instance` is the announcing node's, when its announcement carries one. */
  onFound(address: string, port: number, instance: string | undefined): void;
}

function addressOf(service: Service): string | undefined {
  const candidates = [service.referer?.address, ...(service.addresses ?? [])].filter(
    (address): address is string => typeof address === "string" && address !== "",
  );
  return candidates.find((address) => isIPv4(address)) ?? candidates[0];
}

export class MdnsDiscovery {
  readonly #bonjour: Bonjour;

  constructor(options: MdnsOptions) {
    const specific = options.bind !== "0.0.0.0" && options.bind !== "::";
    // multicast-dns binds to `interface` unless told otherwise, and a socket bound to a unicast
    // address never receives multicast: listen on every address, send on the chosen one.
    this.#bonjour = new Bonjour(
      specific ? ({ interface: options.bind, bind: "0.0.0.0" } as object) : {},
      (error: Error) => options.logger.warn(`mDNS discovery failed: ${error.message}`),
    );
    if (options.announce) {
      this.#bonjour.publish({
        name: `${options.hostname} ${options.instance.slice(0, 8)}`,
        type: SERVICE_TYPE,
        protocol: "tcp",
        port: options.port,
        txt: { instance: options.instance, hostname: options.hostname },
        disableIPv6: true,
      });
    }
    if (options.browse) {
      this.#bonjour.find({ type: SERVICE_TYPE, protocol: "tcp" }, (service) => {
        const txt = (service.txt ?? {}) as { instance?: string };
        if (txt.instance === options.instance) return;
        const address = addressOf(service);
        if (address) options.onFound(address, service.port, txt.instance);
      });
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#bonjour.unpublishAll(() => this.#bonjour.destroy(() => resolve()));
    });
  }
}
