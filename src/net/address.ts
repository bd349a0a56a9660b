/**
 * Addresses: where a node listens, and how node_ips entries and peer addresses are read.
 * Kept apart from the network stack so the config can be checked without loading it.
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { NetworkingConfig } from "../config/types.js";
import { ConfigError } from "../errors.js";

/** Whether an IP address (not a name) is a loopback one: 127.0.0.0/8 or ::1. */
function isLoopbackIp(address: string): boolean {
  const v4 = address.startsWith("::ffff:") ? address.slice(7) : address;
  if (isIP(v4) === 4) return v4.startsWith("127.");
  return isIP(address) === 6 && (address === "::1" || address === "0:0:0:0:0:0:0:1");
}

function insecure(bind: string, port: number, file: string | undefined): ConfigError {
  return new ConfigError(
    "CONFIG_INVALID",
    `networking.bind: listening on ${bind} without a secret would let anyone who can reach port ${port} run your plugins. Set networking.secret (or the AIO_SECRET environment variable), bind to 127.0.0.1, or set networking.allow_insecure: true if this network is trusted`,
    { file, key: "networking.bind" },
  );
}

/**
 * The address to listen on: `bind`, else loopback without a secret, every interface with one.
 * A non-loopback IP address without a secret is refused here; a name is checked by
 * {@link resolveBind} once it can be resolved.
 */
export function bindAddress(config: NetworkingConfig, file?: string): string {
  const bind = config.bind || (config.secret ? "0.0.0.0" : "127.0.0.1");
  if (isIP(bind) !== 0 && !isLoopbackIp(bind) && !config.secret && !config.allow_insecure) {
    throw insecure(bind, config.port, file);
  }
  return bind;
}

/**
 * Checks the address to listen on once it can be resolved: without a secret (and without
 * `allow_insecure`) every address a name resolves to must be a loopback one, since a name that
 * merely looks like one (`127.lan`, or a `localhost` an odd hosts file points elsewhere) would
 * otherwise open the node to the network. Resolves with whether the node is reachable from
 * loopback only.
 */
export async function checkBind(config: NetworkingConfig, file?: string): Promise<boolean> {
  const bind = bindAddress(config, file);
  if (isIP(bind) !== 0) return isLoopbackIp(bind);
  let addresses: Array<{ address: string }>;
  try {
    addresses = await lookup(bind, { all: true });
  } catch (error) {
    throw new ConfigError(
      "CONFIG_INVALID",
      `networking.bind: "${bind}" does not resolve to an address (${(error as Error).message})`,
      { file, key: "networking.bind" },
    );
  }
  const open = addresses.find(({ address }) => !isLoopbackIp(address));
  if (open && !config.secret && !config.allow_insecure) {
    throw insecure(`${bind} (${open.address})`, config.port, file);
  }
  return open === undefined;
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

/**
 * Without a secret, a node reaches NATS only on this machine (or with `allow_insecure`): nothing
 * on NATS is signed then, so every client of a NATS server elsewhere could run its plugins, as
 * anyone could reach a port it listened on.
 */
export async function checkNatsServers(config: NetworkingConfig, file?: string): Promise<void> {
  if (config.transport !== "nats" || config.secret || config.allow_insecure) return;
  for (const server of config.nats.servers) {
    const { address } = parseNodeAddress(server.replace(/^[a-z]+:\/\//i, ""), 4222);
    let addresses: Array<{ address: string }>;
    try {
      addresses = isIP(address) !== 0 ? [{ address }] : await lookup(address, { all: true });
    } catch {
      // A name that does not resolve reaches nothing; NATS itself says so once it tries.
      continue;
    }
    const open = addresses.find((entry) => !isLoopbackIp(entry.address));
    if (open) {
      throw new ConfigError(
        "CONFIG_INVALID",
        `networking.nats.servers: ${server} (${open.address}) is not on this machine, and without a secret every client of that NATS server could run your plugins. Set networking.secret (\`aio secret\` makes one; or the AIO_SECRET environment variable), or set networking.allow_insecure: true if that NATS server admits only your nodes`,
        { file, key: "networking.nats.servers" },
      );
    }
  }
}
