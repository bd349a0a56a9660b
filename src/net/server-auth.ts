/**
 * The server's side of authentication: with a secret, every request but a
 * bare `/ping` must be signed, fresh and new (see auth.ts), and every answer is signed back.
 * The signature is checked on the headers alone, before a byte of the body is read: the body's
 * digest is a signed header, and the body is checked against it once it has arrived. A request
 * that fails learns nothing but 401 UNAUTHORIZED, and its connection is closed, so the body it
 * may still be sending is never read.
 */

import { createHash, timingSafeEqual } from "node:crypto";
import {
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
  STATUS_CODES,
} from "node:http";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import {
  bodyDigest,
  EMPTY_DIGEST,
  HEADER_ANSWER,
  HEADER_DIGEST,
  HEADER_NONCE,
  HEADER_SIGNATURE,
  HEADER_TIME,
  type NonceCache,
  type SecretKey,
  sameMac,
  signAnswer,
  verifyRequest,
} from "./auth.js";
import type { Tarpit } from "./limits.js";

const UNAUTHORIZED = { error: { code: "UNAUTHORIZED", message: "unauthorized" } };

/** Compared by digest: equal lengths, so the comparison takes the same time for any token. */
function digestOf(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

/** Routes that answer an unsigned request, with less. */
const OPEN_ROUTES = new Set(["GET /ping", "HEAD /ping"]);

export interface RequestAuth {
  /** The request's nonce if it was authenticated; undefined if anonymous (or no secret). */
  nonceOf(request: IncomingMessage): string | undefined;
  /**
   * Whether the received body is the one the request was signed with (its digest header);
   * always true without a secret. Checked over the raw bytes, before they are decoded.
   */
  bodyMatches(request: IncomingMessage, body: Buffer): boolean;
  /** The `x-aio-answer` MAC of an answer to an authenticated request; undefined otherwise. */
  answerMac(request: IncomingMessage, payload: string | Buffer): string | undefined;
  /** Whether the request carries the signature headers at all. */
  signedHeaders(request: FastifyRequest): boolean;
  /**
   * Runs on every HTTP request whose Host the server accepted, before fastify does: answers one
   * that fails authentication (401, its connection closed) and returns true; otherwise false.
   */
  gate(request: IncomingMessage, response: ServerResponse): boolean;
}

export const UNAUTHORIZED_BODY = UNAUTHORIZED;

const signed = (headers: IncomingHttpHeaders) =>
  typeof headers[HEADER_TIME] === "string" &&
  typeof headers[HEADER_NONCE] === "string" &&
  typeof headers[HEADER_SIGNATURE] === "string";

/** Whether a request's headers say it has a body (a length above 0, or chunks). */
export function hasBody(headers: Record<string, string | string[] | undefined>): boolean {
  const length = headers["content-length"];
  return headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

/**
 * Ends the connection of a request that is refused: nothing more of it is read, and once the
 * answer is out the connection closes (at once if the client is still sending its body, whose
 * bytes would otherwise be read and thrown away, at a cost a flood of such requests adds up).
 */
export function closeAfter(reply: FastifyReply): FastifyReply {
  const socket = reply.raw.socket;
  socket?.pause();
  reply.raw.once("finish", () => {
    if (!reply.request.raw.complete) socket?.destroy();
  });
  return reply.header("connection", "close");
}

/** The 401, on a connection that closes after it: the body on its way is never read. */
export function unauthorized(reply: FastifyReply): FastifyReply {
  return closeAfter(reply).code(401).send(UNAUTHORIZED);
}

/**
 * Checks a request's signature on its headers alone (see auth.ts `verifyRequest`). The digest
 * it is signed with is its `x-aio-digest` header, required when it has a body; without a body,
 * the digest of an empty one (a body signed for but not sent, stripped on its way, is not the
 * request that was signed). Returns the nonce and the digest the body must match, or undefined.
 */
export function verifyHeaders(
  secret: string | SecretKey,
  nonces: NonceCache,
  instance: string,
  method: string,
  url: string,
  headers: Record<string, string | string[] | undefined>,
): { nonce: string; digest: string } | undefined {
  const sent = headers[HEADER_DIGEST];
  if (sent !== undefined && typeof sent !== "string") return undefined;
  const digest = sent ?? EMPTY_DIGEST;
  if (hasBody(headers) ? sent === undefined : digest !== EMPTY_DIGEST) return undefined;
  const nonce = verifyRequest(secret, nonces, instance, method, url, headers, digest);
  return nonce === undefined ? undefined : { nonce, digest };
}

/**
 * An error answer at the raw HTTP level, before fastify sees the request, on a connection that
 * closes after it: `body` is the JSON of `{ error }`. When the request's body is still on its
 * way, nothing more of it is read: the answer is written straight to the socket, which the
 * tarpit holds paused and then destroys (see `Tarpit`).
 */
export function refuseRaw(
  request: IncomingMessage,
  response: ServerResponse,
  status: number,
  body: Buffer,
  tarpit: Tarpit,
  headers: Record<string, string> = {},
): void {
  const socket = request.socket;
  socket.pause();
  const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`);
  const head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${body.length}\r\n${extra.join("")}connection: close\r\n\r\n`;
  if (hasBody(request.headers)) {
    // Not through `response`: its end would make Node read the rest of the body to discard it.
    // Marked dumped, the body bytes already read with the headers are dropped, not kept.
    (request as IncomingMessage & { _dumped?: boolean })._dumped = true;
    socket.write(Buffer.concat([Buffer.from(head, "latin1"), body]));
    tarpit.hold(socket);
    return;
  }
  response.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": body.length,
    ...headers,
    connection: "close",
  });
  response.end(body);
}

export const UNAUTHORIZED_BYTES = Buffer.from(JSON.stringify(UNAUTHORIZED));
const FOREIGN_ORIGIN_BYTES = Buffer.from(
  JSON.stringify({
    error: { code: "UNAUTHORIZED", message: "/mcp answers no web page of another origin" },
  }),
);

/** The path of MCP over streamable HTTP. */
export const MCP_PATH = "/mcp";

export interface BearerRoutes {
  /** With a secret: the token `GET /metrics` also accepts; "" for none. */
  metricsToken: string;
  /**
   * Where the node serves MCP: the token `/mcp` requires (with or without a secret), "" for
   * none (only without a secret). Undefined: no `/mcp`, and the path is like any other.
   */
  mcpToken: string | undefined;
}

/**
 * Whether a request's Origin, if it has one, is a page of the node itself or of this machine
 * (MCP over HTTP must refuse other origins: a web page the user has open is not its client).
 */
function sameOrigin(request: IncomingMessage): boolean {
  const origin = request.headers.origin;
  if (origin === undefined) return true;
  try {
    const { host, hostname } = new URL(origin);
    return (
      host === request.headers.host ||
      hostname === "localhost" ||
      hostname === "127.0.0.1" ||
      hostname === "[::1]"
    );
  } catch {
    return false;
  }
}

/**
 * Authentication for a server. A refused request is answered by `gate`, before fastify: a flood
 * of forged requests costs the node what each one costs, and fastify's request and reply
 * objects, routing and hooks would add to it. The server checks the Host before.
 */
export function installAuth(
  app: FastifyInstance,
  secret: SecretKey | undefined,
  nonces: NonceCache,
  instance: string,
  tarpit: Tarpit,
  bearers: BearerRoutes,
): RequestAuth {
  const tokenDigest = (token: string | undefined) =>
    token === undefined || token === "" ? undefined : digestOf(`Bearer ${token}`);
  const metricsDigest = tokenDigest(bearers.metricsToken);
  const mcpDigest = tokenDigest(bearers.mcpToken);
  const bears = (request: IncomingMessage, digest: Buffer) => {
    const bearer = request.headers.authorization;
    return typeof bearer === "string" && timingSafeEqual(digestOf(bearer), digest);
  };
  const authenticated = new WeakMap<IncomingMessage, { nonce: string; digest: string }>();
  // Requests let in by a bearer token: their bodies were signed by no one.
  const byToken = new WeakSet<IncomingMessage>();
  const auth: RequestAuth = {
    nonceOf: (request) => authenticated.get(request)?.nonce,
    signedHeaders: (request) => signed(request.headers),
    bodyMatches: (request, body) => {
      if (!secret || byToken.has(request)) return true;
      const digest = authenticated.get(request)?.digest;
      if (digest !== undefined && sameMac(bodyDigest(body), digest)) return true;
      // Not the request that was signed after all: its answer carries no MAC either.
      authenticated.delete(request);
      return false;
    },
    answerMac: (request, payload) => {
      const nonce = secret && authenticated.get(request)?.nonce;
      return nonce ? signAnswer(secret, nonce, payload) : undefined;
    },
    gate: (request, response) => {
      const method = request.method ?? "";
      const url = request.url ?? "";
      // An MCP client holds a bearer token, never the secret: /mcp takes the token alone.
      if (bearers.mcpToken !== undefined && (url === MCP_PATH || url.startsWith(`${MCP_PATH}?`))) {
        if (!sameOrigin(request)) {
          refuseRaw(request, response, 403, FOREIGN_ORIGIN_BYTES, tarpit);
          return true;
        }
        if (mcpDigest !== undefined && !bears(request, mcpDigest)) {
          refuseRaw(request, response, 401, UNAUTHORIZED_BYTES, tarpit, {
            "www-authenticate": 'Bearer realm="aio-core"',
          });
          return true;
        }
        byToken.add(request);
        return false;
      }
      if (!secret) return false;
      if (!signed(request.headers)) {
        const route = `${method} ${url.split("?")[0]}`;
        if (OPEN_ROUTES.has(route)) return false;
        // Prometheus cannot sign: the scrape may show the metrics token instead.
        if (
          route === "GET /metrics" &&
          metricsDigest !== undefined &&
          bears(request, metricsDigest)
        ) {
          return false;
        }
        refuseRaw(request, response, 401, UNAUTHORIZED_BYTES, tarpit);
        return true;
      }
      const verified = verifyHeaders(secret, nonces, instance, method, url, request.headers);
      if (!verified) {
        refuseRaw(request, response, 401, UNAUTHORIZED_BYTES, tarpit);
        return true;
      }
      authenticated.set(request, verified);
      return false;
    },
  };
  if (!secret) return auth;
  // With a callback rather than async: a promise per answer costs more than the check.
  app.addHook("onSend", (request, reply, payload, done) => {
    if (typeof payload === "string" || Buffer.isBuffer(payload)) {
      const mac = auth.answerMac(request.raw, payload);
      if (mac !== undefined) reply.header(HEADER_ANSWER, mac);
    }
    done(null, payload);
  });
  return auth;
}
