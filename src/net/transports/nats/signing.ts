/**
 * Signing on NATS: a request (announce, info, hello) carries the same signature headers as an
 * HTTP request (docs/security.md), with method `NATS` and its subject as the path, for the
 * instance it is sent to; an answer carries `x-aio-answer` bound to the request's nonce.
 * Without a secret nothing is signed or checked.
 */
import { headers, type Msg, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { NetworkRequestError, NotDelivered } from "../../../errors.js";
import {
  answerSigned,
  bodyDigest,
  HEADER_ANSWER,
  HEADER_DIGEST,
  HEADER_NONCE,
  HEADER_SIGNATURE,
  HEADER_TIME,
  MAX_SKEW_MS,
  NonceCache,
  type PeerIdentity,
  SecretKey,
  signAnswer,
  signedRequest,
  signRequest,
  verifyRequest,
} from "../../auth.js";

/** How long a request to another node (info, hello) waits for its answer. */
const REQUEST_MS = 3000;

/** Announces and publishes go to every node: they are signed for this pseudo-instance. */
const EVERYONE = "*";

export class NatsSigning {
  readonly secret: string;
  /** The secret's padded keys, computed once: every message of the mesh is signed with it. */
  readonly #key: SecretKey | undefined;
  readonly #nonces = new NonceCache();
  /** The mesh's clock minus this node's, in ms (see `adoptClock`). */
  #clockOffsetMs = 0;

  constructor(secret: string) {
    this.secret = secret;
    this.#key = secret ? new SecretKey(secret) : undefined;
  }

  /** The mesh's clock now, in ms since the epoch. */
  now(): number {
    return Date.now() + this.#clockOffsetMs;
  }

  get clockOffsetMs(): number {
    return this.#clockOffsetMs;
  }

  /**
   * Times what this node sends to every node, and checks what it receives, by a clock that
   * reads `offsetMs` more than its own: what the nodes it joined read (their answers to its
   * announce tell). Requests to one node stay timed by that node's clock (their `target`).
   */
  adoptClock(offsetMs: number): void {
    this.#clockOffsetMs = offsetMs;
  }

  /** The headers of a message to every node on `subject`; none without a secret. */
  broadcastHeaders(subject: string, body: string): MsgHdrs | undefined {
    return this.headers({ instance: EVERYONE, clockOffsetMs: this.#clockOffsetMs }, subject, body);
  }

  /** The headers of a request to `subject` for `target`; none without a secret. */
  headers(target: PeerIdentity, subject: string, body: string): MsgHdrs | undefined {
    if (!this.#key) return undefined;
    const h = headers();
    for (const [key, value] of Object.entries(
      signRequest(this.#key, "NATS", target, subject, body),
    )) {
      h.set(key, value);
    }
    return h;
  }

  /** The nonce of a genuine, fresh request for `instance`; "" without a secret. */
  verify(message: Msg, instance: string): string | undefined {
    if (!this.#key) return "";
    const headers = this.#signatureOf(message);
    if (!headers) return undefined;
    return verifyRequest(
      this.#key,
      this.#nonces,
      instance,
      "NATS",
      message.subject,
      headers,
      bodyDigest(Buffer.from(message.data)),
      this.now(),
    );
  }

  /** The nonce of a genuine, fresh message to every node; "" without a secret. */
  verifyBroadcast(message: Msg): string | undefined {
    return this.verify(message, EVERYONE);
  }

  /**
   * The nonce of a message to every node that `verifyBroadcast` refused, though genuine: sent
   * at a time more than MAX_SKEW_MS off the mesh's clock (by a node whose clock is off, or
   * replayed). Undefined for anything else.
   */
  offClock(message: Msg): string | undefined {
    if (!this.#key) return undefined;
    const headers = this.#signatureOf(message);
    // One timed within the window failed for another reason: not hashed twice.
    if (!headers || !(Math.abs(Number(headers[HEADER_TIME]) - this.now()) > MAX_SKEW_MS)) {
      return undefined;
    }
    const digest = bodyDigest(Buffer.from(message.data));
    return signedRequest(this.#key, EVERYONE, "NATS", message.subject, headers, digest)?.nonce;
  }

  #signatureOf(message: Msg): Record<string, string | undefined> | undefined {
    const h = message.headers;
    if (!h) return undefined;
    const record: Record<string, string | undefined> = {};
    for (const key of [HEADER_TIME, HEADER_NONCE, HEADER_DIGEST, HEADER_SIGNATURE]) {
      record[key] = h.has(key) ? h.get(key) : undefined;
    }
    return record;
  }

  /** Answers the request with `nonce`. */
  respond(message: Msg, nonce: string, body: string): void {
    let h: MsgHdrs | undefined;
    if (this.#key) {
      h = headers();
      h.set(HEADER_ANSWER, signAnswer(this.#key, nonce, body));
    }
    message.respond(body, h ? { headers: h } : undefined);
  }

  /**
   * Asks `subject`, signed for `target`. Resolves with the answer's text once its MAC proves it
   * comes from a holder of the secret, and the request's nonce (the hello derives its session
   * key from it). `NotDelivered` when nothing answers in time.
   */
  async request(
    nats: NatsConnection,
    target: PeerIdentity,
    subject: string,
    body: string,
  ): Promise<{ text: string; nonce: string }> {
    const h = this.headers(target, subject, body);
    const nonce = h?.get(HEADER_NONCE) ?? "";
    let reply: Msg;
    try {
      reply = await nats.request(subject, body, {
        timeout: REQUEST_MS,
        ...(h ? { headers: h } : {}),
      });
    } catch (error) {
      throw new NotDelivered((error as Error).message ?? String(error));
    }
    const text = Buffer.from(reply.data).toString("utf8");
    if (!this.answers(reply, nonce, text)) {
      throw new NetworkRequestError(
        "UNAUTHORIZED",
        `the answer on ${subject} does not prove that it comes from a holder of the secret; check that every node uses the same secret`,
      );
    }
    return { text, nonce };
  }

  /** Whether `reply`, whose body is `text`, answers the request with `nonce`; true without a secret. */
  answers(reply: Msg, nonce: string, text: string): boolean {
    if (!this.#key) return true;
    const mac = reply.headers?.has(HEADER_ANSWER) ? reply.headers.get(HEADER_ANSWER) : undefined;
    return answerSigned(this.#key, { [HEADER_ANSWER]: mac }, nonce, text);
  }
}
