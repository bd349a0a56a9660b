/**
 * The server's side of authentication, as fastify hooks: with a secret, every request but a
 * bare `/ping` must be signed, fresh and new (see auth.ts), and every answer is signed back.
 * A request that fails learns nothing but 401 UNAUTHORIZED.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import {
  HEADER_ANSWER,
  HEADER_NONCE,
  HEADER_SIGNATURE,
  HEADER_TIME,
  type NonceCache,
  signAnswer,
  verifyRequest,
} from "./auth.js";

const UNAUTHORIZED = { error: { code: "UNAUTHORIZED", message: "unauthorized" } };

/** Routes that answer an unsigned request, with less. */
const OPEN_ROUTES = new Set(["GET /ping", "HEAD /ping"]);

export interface RequestAuth {
  /** The request's nonce if it was authenticated; undefined if anonymous (or no secret). */
  nonceOf(request: FastifyRequest): string | undefined;
  /**
   * Checks a signed request against its raw body, before the body is parsed; false means
   * answer 401. Always true without a secret.
   */
  verify(request: FastifyRequest, body: string): boolean;
  /** Whether the request carries the signature headers at all. */
  signedHeaders(request: FastifyRequest): boolean;
}

/** Thrown by the body parser for a request that fails authentication. */
export class Unauthorized extends Error {
  readonly statusCode = 401;
}

export const UNAUTHORIZED_BODY = UNAUTHORIZED;

const path = (request: FastifyRequest) => request.url.split("?")[0] ?? "";

const signed = (request: FastifyRequest) =>
  [HEADER_TIME, HEADER_NONCE, HEADER_SIGNATURE].every(
    (header) => typeof request.headers[header] === "string",
  );

function unauthorized(reply: FastifyReply): FastifyReply {
  return reply.code(401).send(UNAUTHORIZED);
}

export function installAuth(
  app: FastifyInstance,
  secret: string,
  nonces: NonceCache,
  instance: string,
): RequestAuth {
  const authenticated = new WeakMap<FastifyRequest, string>();
  const auth: RequestAuth = {
    nonceOf: (request) => authenticated.get(request),
    signedHeaders: (request) => signed(request),
    verify: (request, body) => {
      if (!secret || !signed(request)) return !secret;
      const nonce = verifyRequest(
        secret,
        nonces,
        instance,
        request.method,
        request.url,
        request.headers,
        body,
      );
      if (nonce === undefined) return false;
      authenticated.set(request, nonce);
      return true;
    },
  };
  if (!secret) return auth;

  // Unsigned requests end here, before their body is read or parsed.
  app.addHook("onRequest", async (request, reply) => {
    if (!signed(request) && !OPEN_ROUTES.has(`${request.method} ${path(request)}`)) {
      return unauthorized(reply);
    }
  });
  // A request with a body was checked by the body parser; one without is checked here.
  app.addHook("preHandler", async (request, reply) => {
    if (!signed(request) || authenticated.has(request)) return;
    if (!auth.verify(request, "")) return unauthorized(reply);
  });
  app.addHook("onSend", async (request, reply, payload) => {
    const nonce = authenticated.get(request);
    if (nonce !== undefined && (typeof payload === "string" || Buffer.isBuffer(payload))) {
      reply.header(HEADER_ANSWER, signAnswer(secret, nonce, payload));
    }
    return payload;
  });
  return auth;
}
