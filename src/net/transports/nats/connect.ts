/** How a node connects to its NATS servers (`networking.nats`), for the mesh and for blocking calls. */
import { readFileSync } from "node:fs";
import { credsAuthenticator, type NodeConnectionOptions } from "@nats-io/transport-node";
import type { NatsConfig } from "../../../config/types.js";

/** The client's options: reconnecting for ever, with the login and TLS the settings give. */
export function natsConnectOptions(settings: NatsConfig, name: string): NodeConnectionOptions {
  return {
    servers: settings.servers,
    name,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    waitOnFirstConnect: true,
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
