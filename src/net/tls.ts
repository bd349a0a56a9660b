/**
 * TLS between nodes. With `cert_file` and `key_file` a node serves HTTPS (and WSS) and calls
 * its peers over TLS too. A peer's certificate is verified against `ca_file` (or the system's
 * CAs), or matched against `pinned_fingerprints`; verification is never skipped.
 */
import { readFileSync } from "node:fs";
import { type ConnectionOptions, connect, type TLSSocket } from "node:tls";
import type { buildConnector } from "undici";
import type { NetworkingConfig } from "../config/types.js";
import { ConfigError } from "../errors.js";

/** What a node needs to reach its peers: plain data, so it can be handed to a thread. */
export interface PeerTls {
  enabled: boolean;
  /** PEM of the CA peers' certificates are verified against; empty: the system's CAs. */
  ca: string;
  /** Accepted certificate fingerprints (SHA-256, uppercase hex); when set, instead of a CA. */
  pins: string[];
}

function readPem(file: string, key: string, configFile: string | undefined): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new ConfigError(
      "CONFIG_INVALID",
      `networking.${key}: cannot read ${file}: ${(error as Error).message}`,
      { file: configFile, key: `networking.${key}` },
    );
  }
}

/** The server's certificate and key, when TLS is configured. */
export function serverTls(
  config: NetworkingConfig,
  configFile?: string,
): { cert: Buffer; key: Buffer } | undefined {
  if (!config.cert_file || !config.key_file) return undefined;
  return {
    cert: readPem(config.cert_file, "cert_file", configFile),
    key: readPem(config.key_file, "key_file", configFile),
  };
}

export function peerTls(config: NetworkingConfig, configFile?: string): PeerTls {
  return {
    enabled: Boolean(config.cert_file && config.key_file),
    ca: config.ca_file ? readPem(config.ca_file, "ca_file", configFile).toString("utf8") : "",
    pins: config.pinned_fingerprints,
  };
}

export function schemeOf(tls: PeerTls): { http: string; ws: string } {
  return tls.enabled ? { http: "https", ws: "wss" } : { http: "http", ws: "ws" };
}

function fingerprintOf(socket: TLSSocket): string {
  return (socket.getPeerCertificate().fingerprint256 ?? "").replaceAll(":", "").toUpperCase();
}

/**
 * Opens a TLS connection to a peer and verifies it: against the pins when there are any
 * (the chain is then not checked, the exact certificate is), else against the CA. Calls back
 * once, with the verified socket or the reason.
 */
export function connectVerified(
  tls: PeerTls,
  options: ConnectionOptions,
  done: (error: Error | null, socket: TLSSocket | null) => void,
): TLSSocket {
  const pinned = tls.pins.length > 0;
  const socket = connect({
    ...options,
    ...(tls.ca ? { ca: tls.ca } : {}),
    rejectUnauthorized: !pinned,
  });
  let settled = false;
  const finish = (error: Error | null) => {
    if (settled) return;
    settled = true;
    if (error) {
      socket.destroy(error);
      done(error, null);
    } else {
      done(null, socket);
    }
  };
  socket.once("secureConnect", () => {
    if (pinned && !tls.pins.includes(fingerprintOf(socket))) {
      finish(
        new Error(
          `the certificate of ${options.host}:${options.port} (SHA-256 ${fingerprintOf(socket)}) is not among networking.pinned_fingerprints`,
        ),
      );
      return;
    }
    finish(null);
  });
  socket.once("error", (error) => finish(error));
  return socket;
}

/** An undici connector that opens verified TLS connections to peers. */
export function tlsConnector(tls: PeerTls): buildConnector.connector {
  return (options, done) =>
    connectVerified(
      tls,
      {
        host: options.hostname,
        port: Number(options.port) || 443,
        servername: options.servername ?? undefined,
        ALPNProtocols: ["http/1.1"],
      },
      (error, socket) => (error ? done(error, null) : done(null, socket as TLSSocket)),
    );
}
