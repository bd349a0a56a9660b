/**
 * HTTP requests to other nodes (discovery, heartbeats) and to any node from tools: one undici
 * agent, which keeps a keep-alive pool per node.
 */
import { Agent } from "undici";
import { callErrors, NetworkRequestError } from "../errors.js";
import { type PeerIdentity, signRequest } from "./auth.js";
import { type NodeRequest, pingNode, sendToNode, signedByNode } from "./signed-http.js";
import { type PeerTls, tlsConnector } from "./tls.js";
import { parseJson, readIdentity } from "./wire.js";

/** `error` and what caused it, in turn. */
function* causes(error: unknown): Generator<Error & { code?: string }> {
  for (let cause = error; cause instanceof Error; cause = cause.cause) yield cause;
}

/** Whether `error`, or what caused it, has one of `codes`. */
function causedBy(error: unknown, codes: readonly string[]): boolean {
  for (const cause of causes(error)) if (codes.includes(cause.code ?? "")) return true;
  return false;
}

/** Codes of a certificate this side does not trust (Node's and OpenSSL's names). */
const UNTRUSTED = [
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "ERR_TLS_CERT_ALTNAME_INVALID",
];

const TLS_ADVICE = {
  node: {
    untrusted:
      "check networking.ca_file (the CA that signed the nodes' certificates) or pinned_fingerprints",
    notTls: "that node does not use TLS; a cluster uses TLS on every node or on none",
    closed: "if that node uses TLS, this one needs networking.cert_file and key_file too",
  },
  cli: {
    untrusted: "trust its CA with NODE_EXTRA_CA_CERTS=ca.crt",
    notTls: "it does not use TLS: use http://",
    closed: "if it uses TLS, use https://",
  },
};

/**
 * What a failed connection to `url` says about TLS, as advice for a node's configuration or
 * for the command line; "" when nothing: a certificate this side does not trust, an answer
 * that is not TLS to https://, a connection closed without a word to http://.
 */
export function tlsHint(error: unknown, url: string, side: "node" | "cli"): string {
  const advice = TLS_ADVICE[side];
  const https = url.startsWith("https:") || url.startsWith("wss:");
  if (https && causedBy(error, UNTRUSTED)) {
    return ` (the node's certificate is not signed by a CA this side trusts: ${advice.untrusted})`;
  }
  const text = messagesOf(error);
  if (https && /wrong version number|packet length too long|ERR_SSL_WRONG_VERSION/i.test(text)) {
    return ` (the answer is not TLS: ${advice.notTls})`;
  }
  if (!https && /other side closed|socket hang up/i.test(text)) {
    return ` (the node closed the connection unanswered: ${advice.closed})`;
  }
  return "";
}

function messagesOf(error: unknown): string {
  return [...causes(error)].map((cause) => `${cause.message} ${cause.code ?? ""}`).join(" ");
}

/** Whether `error` is a connection the other side refused: nobody listens. */
export function connectionRefused(error: unknown): boolean {
  return causedBy(error, ["ECONNREFUSED"]);
}

/** Whether `error` is a connection that broke under a request (a kept-alive one the other side closed). */
export function connectionReset(error: unknown): boolean {
  return causedBy(error, ["ECONNRESET", "EPIPE", "UND_ERR_SOCKET"]);
}

export interface HttpClientOptions {
  connectTimeoutMs: number;
  maxDepth: number;
  /** Shared secret: requests are signed, and answers must carry a valid signature. */
  secret: string;
  tls: PeerTls;
}

export class HttpClient {
  readonly #agent: Agent;
  readonly #maxDepth: number;
  readonly #secret: string;

  constructor(options: HttpClientOptions) {
    this.#secret = options.secret;
    this.#agent = new Agent({
      keepAliveTimeout: 30_000,
      connections: 8,
      connect: options.tls.enabled
        ? tlsConnector(options.tls)
        : { timeout: options.connectTimeoutMs },
    });
    this.#maxDepth = options.maxDepth;
  }

  /**
   * Who answers at `origin` (`http://host:port`) this run, and how its clock stands against this
   * one's: its unsigned `GET /ping`, which a client needs before it can sign for the node.
   */
  async identify(origin: string, timeoutMs: number): Promise<PeerIdentity & { hostname?: string }> {
    const url = `${origin}/ping`;
    let ping: Awaited<ReturnType<typeof pingNode>>;
    try {
      ping = await pingNode(this.#agent, origin, timeoutMs);
    } catch (error) {
      throw unreachable(url, error);
    }
    if (ping.status === 421) throw misdirected(url);
    try {
      return readIdentity(parseJson(ping.text, this.#maxDepth), ping.sentAt, ping.receivedAt);
    } catch (error) {
      throw new NetworkRequestError(
        "NETWORK",
        `${url} answered HTTP ${ping.status} without what an AIO node's /ping answers: ${(error as Error).message}`,
      );
    }
  }

  /**
   * POSTs JSON and returns the status and parsed answer; with a secret, signed for `target`.
   * Throws `NetworkRequestError` when the node cannot be reached or answers with something that
   * is not JSON.
   */
  async postJson(
    url: string,
    body: unknown,
    timeoutMs: number,
    target?: PeerIdentity,
  ): Promise<{ status: number; body: unknown }> {
    const text = JSON.stringify(body);
    const { host, pathname } = new URL(url);
    if (this.#secret && !target) throw new Error("a signed request needs the node's identity");
    const signature =
      this.#secret && target
        ? signRequest(this.#secret, "POST", target, pathname, text)
        : undefined;
    const call: NodeRequest = { method: "POST", url, body: text, signature, timeoutMs };
    let answer: string;
    let response: Awaited<ReturnType<typeof sendToNode>>;
    try {
      response = await sendToNode(this.#agent, call);
      answer = await response.body.text();
    } catch (error) {
      throw unreachable(url, error);
    }
    if (response.statusCode === 421) throw misdirected(url);
    if (signature) {
      if (response.statusCode === 401) throw callErrors.unauthorizedBy(host);
      if (!signedByNode(this.#secret, signature, response.headers, answer)) {
        throw new NetworkRequestError(
          "UNAUTHORIZED",
          `${url} answered without proof that it knows the secret; the answer is ignored`,
        );
      }
    }
    try {
      return {
        status: response.statusCode,
        body: answer === "" ? undefined : parseJson(answer, this.#maxDepth),
      };
    } catch (error) {
      throw new NetworkRequestError(
        "NETWORK",
        `${url} answered HTTP ${response.statusCode} with a body that is not JSON: ${(error as Error).message}`,
      );
    }
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }
}

/** No answer from `url`: NETWORK, with what caused it and what TLS may have to do with it. */
function unreachable(url: string, error: unknown): NetworkRequestError {
  return new NetworkRequestError(
    "NETWORK",
    `${url}: ${(error as Error).message.trim()}${tlsHint(error, url, "node")}`,
    {},
    { cause: error },
  );
}

/** A node without a secret refused the Host it was reached under. */
function misdirected(url: string): NetworkRequestError {
  const { host } = new URL(url);
  return new NetworkRequestError(
    "NETWORK",
    `${url} refused the Host "${host}": the node knows itself under other names. Add "${host}" to networking.allowed_hosts on that node`,
  );
}
