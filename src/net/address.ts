/**
 * Addresses: where a node listens, and how node_ips entries and peer addresses are read.
 * Kept apart from the network stack so the config can be checked without loading it.
 */
import { isIP } from "node:net";
import type { NetworkingConfig } from "../config/types.js";
import { ConfigError } from "../errors.js";

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

export function isLoopback(address: string): boolean {
  return LOOPBACK.has(address) || address.startsWith("127.");
}

/** The address to listen on: `bind`, else loopback without a secret, every interface with one. */
export function bindAddress(config: NetworkingConfig, file?: string): string {
  const bind = config.bind || (config.secret ? "0.0.0.0" : "127.0.0.1");
  if (!isLoopback(bind) && !config.secret && !config.allow_insecure) {
    throw new ConfigError(
      "CONFIG_INVALID",
      `networking.bind: listening on ${bind} without a secret would let anyone who can reach port ${config.port} run your plugins. Set networking.secret (or the AIO_SECRET environment variable), bind to 127.0.0.1, or set networking.allow_insecure: true if this network is trusted`,
      { file, key: "networking.bind" },
    );
  }
  return bind;
}

/** `host` or `host:port` (or `[v6]:port`) of a node_ips entry. */
export function parseNodeAddress(
  entry: string,
  defaultPort: number,
): { address: string; port: number } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
  if (bracketed)
    return {
      address: bracketed[1] as string,
      port: bracketed[2] ? Number(bracketed[2]) : defaultPort,
    };
  if (isIP(entry) === 6) return { address: entry, port: defaultPort };
  const colon = entry.lastIndexOf(":");
  if (colon > 0) return { address: entry.slice(0, colon), port: Number(entry.slice(colon + 1)) };
  return { address: entry, port: defaultPort };
}

export function hostForUrl(address: string): string {
  return isIP(address) === 6 ? `[${address}]` : address;
}

/** Addresses as Node reports them for IPv4 clients on a dual-stack socket. */
export function normalizeAddress(address: string): string {
  return address.startsWith("::ffff:") ? address.slice(7) : address;
}
