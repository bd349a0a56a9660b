/** How a node connects to its NATS servers (`networking.nats`), for the mesh and for blocking calls. */
import { readFileSync } from "node:fs";
import { credsAuthenticator, type NodeConnectionOptions } from "@nats-io/transport-node";
import type { NatsConfig } from "../../../config/types.js";

/** Pings the client leaves unanswered before it gives a server up as gone. */
const MAX_PINGS_OUT = 2;

/**
 * The client's options: reconnecting for ever, with the login and TLS the settings give.
 *
 * A server that vanishes without closing the connection (power lost, a cable pulled) is noticed
 * only by pings. NATS's default, a ping every 2 minutes, would leave a node on a dead server
 * for minutes, blaming the other nodes as they fall silent one by one. Pinging four times per
 * `livenessMs` (the node's liveness timeout) gives the server up after two unanswered pings:
 * within ¾ of it, before any other node is given up, so calls fail with NETWORK naming NATS,
 * and the client moves on to another server of the cluster by itself.
 */
export function natsConnectOptions(
  settings: NatsConfig,
  name: string,
  livenessMs: number,
): NodeConnectionOptions {
  return {
    servers: settings.servers,
    name,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    waitOnFirstConnect: true,
    pingInterval: Math.max(250, Math.round(livenessMs / 4)),
    maxPingOut: MAX_PINGS_OUT,
    // A connection attempt to a host that is gone waits this long: a server that comes back is
    // tried again soon (NATS's default waits 20 s).
    timeout: Math.min(20_000, Math.max(2000, livenessMs)),
    ...(settings.user ? { user: settings.user, pass: settings.pass } : {}),
    ...(settings.token ? { token: settings.token } : {}),
    ...(settings.creds_file
      ? { authenticator: credsAuthenticator(readFileSync(settings.creds_file)) }
      : {}),
    // The client does not read the scheme: TLS is asked for here, for tls:// or a CA file.
    ...(settings.ca_file || settings.servers.some((url) => /^tls:\/\//i.test(url))
      ? { tls: settings.ca_file ? { caFile: settings.ca_file } : {} }
      : {}),
  };
}
