/**
 * Authentication between nodes with a shared secret. The secret never crosses the network:
 * requests carry an HMAC-SHA256 over what they are, which run of which node they are for,
 * when they were made and a nonce; answers
 * carry one bound to the request's nonce; the channel derives a session key at its handshake
 * and signs every message with it and a sequence number.
 */
import { createHmac, hash, randomBytes, timingSafeEqual } from "node:crypto";
import { MAC_HEX_LENGTH, MacKey } from "./hmac.js";

export const HEADER_TIME = "x-aio-time";
export const HEADER_NONCE = "x-aio-nonce";
export const HEADER_SIGNATURE = "x-aio-signature";
/**
 * The SHA-256 of the body, which the signature covers: sent as a header, the signature can be
 * checked before the body is read, and the body against it as it arrives.
 */
export const HEADER_DIGEST = "x-aio-digest";
/** On answers: binds the answer to the request it answers. */
export const HEADER_ANSWER = "x-aio-answer";

/** How far a request's clock may be from this node's. */
export const MAX_SKEW_MS = 30_000;
/** Nonces remembered at most; a flood beyond it is refused rather than forgotten. */
const MAX_NONCES = 200_000;

/** Random bytes kept for nonces: one call into OpenSSL per 256 nonces rather than one each. */
const NONCE_POOL_BYTES = 4096;
const NONCE_BYTES = 16;
let noncePool = Buffer.alloc(0);
let nonceOffset = 0;

/**
 * 16 random bytes as 32 hex digits, never handed out twice. Drawn from a pool that the CSPRNG
 * refills, as Node's own `randomUUID` does: a `randomBytes` call per nonce costs several
 * microseconds on a CPU that was idle, on the path of every signed request.
 */
export function freshNonce(): string {
  if (nonceOffset + NONCE_BYTES > noncePool.length) {
    noncePool = randomBytes(NONCE_POOL_BYTES);
    nonceOffset = 0;
  }
  const nonce = noncePool.toString("hex", nonceOffset, nonceOffset + NONCE_BYTES);
  nonceOffset += NONCE_BYTES;
  return nonce;
}

export function bodyDigest(body: string | Buffer): string {
  return hash("sha256", body, "hex");
}

function hmac(key: string | SecretKey, ...parts: string[]): string {
  const text = parts.join("\n");
  return typeof key === "string"
    ? createHmac("sha256", key).update(text).digest("hex")
    : key.macOf(text);
}

/** Compares two hex MACs in constant time. */
export function sameMac(a: string, b: string): boolean {
  const left = Buffer.from(a, "utf8");
  const right = Buffer.from(b, "utf8");
  return left.length === right.length && timingSafeEqual(left, right);
}

export interface SignedHeaders {
  [HEADER_TIME]: string;
  [HEADER_NONCE]: string;
  [HEADER_DIGEST]: string;
  [HEADER_SIGNATURE]: string;
}

/** The digest of an empty body, which a request without one is signed with. */
export const EMPTY_DIGEST = bodyDigest("");

/** What a client must know of a node to sign requests for it, learned from its `GET /ping`. */
export interface PeerIdentity {
  /** The node's instance id: random per run, so a signature is good for one run of one node. */
  instance: string;
  /** The node's clock minus this one's, in ms: requests are timed by the node's clock. */
  clockOffsetMs: number;
}

/**
 * Headers that authenticate a request: method, the node it is for (its instance id), path
 * (with query), time, nonce, and the body's digest, which is sent along (`x-aio-digest`) so the
 * node can check the signature before it reads the body. Naming the instance rather than an
 * address means a request works however the node is reached (a port forward, NAT, a tunnel), while one captured on its
 * way to one node is refused by every other node of the cluster and by the same node after a
 * restart. The time is the node's, as far as `clockOffsetMs` knows it, so a peer whose clock is
 * off is not refused for it.
 */
export function signRequest(
  secret: string | SecretKey,
  method: string,
  target: PeerIdentity,
  path: string,
  body: string | Buffer,
): SignedHeaders {
  const time = String(Math.round(Date.now() + target.clockOffsetMs));
  const nonce = freshNonce();
  const digest = bodyDigest(body);
  const mac = hmac(secret, method.toUpperCase(), target.instance, path, time, nonce, digest);
  return {
    [HEADER_TIME]: time,
    [HEADER_NONCE]: nonce,
    [HEADER_DIGEST]: digest,
    [HEADER_SIGNATURE]: mac,
  };
}

/** The MAC an answer to the request with `nonce` carries, over the answer's body. */
export function signAnswer(
  secret: string | SecretKey,
  nonce: string,
  body: string | Buffer,
): string {
  return hmac(secret, "answer", nonce, bodyDigest(body));
}

/**
 * Refuses replayed requests: remembers each nonce until its timestamp is too old to pass.
 * Nonces live in memory; what a restart forgets cannot be replayed anyway, since requests are
 * signed for one run of a node (its instance id).
 */
export class NonceCache {
  readonly #seen = new Map<string, number>();

  /** Records `nonce`; false if it was seen before, or the cache is full of live nonces. */
  admit(nonce: string, time: number, now: number): boolean {
    if (this.#seen.has(nonce)) return false;
    if (this.#seen.size >= MAX_NONCES) {
      this.#evict(now);
      if (this.#seen.size >= MAX_NONCES) return false;
    }
    this.#seen.set(nonce, time);
    return true;
  }

  #evict(now: number): void {
    for (const [nonce, time] of this.#seen) {
      if (Math.abs(now - time) > MAX_SKEW_MS) this.#seen.delete(nonce);
    }
  }

  /** Drops nonces too old to be replayed anyway; called now and then. */
  sweep(now = Date.now()): void {
    this.#evict(now);
  }
}

/**
 * The time and nonce of a request whose signature headers are well formed and genuine (made
 * with the secret, for `instance`, over this method, path and body `digest`), whenever it was
 * sent; undefined otherwise. Freshness is {@link verifyRequest}'s.
 */
export function signedRequest(
  secret: string | SecretKey,
  instance: string,
  method: string,
  path: string,
  headers: Record<string, string | string[] | undefined>,
  digest: string,
): { sent: number; nonce: string } | undefined {
  const time = headers[HEADER_TIME];
  const nonce = headers[HEADER_NONCE];
  const signature = headers[HEADER_SIGNATURE];
  if (typeof time !== "string" || typeof nonce !== "string" || typeof signature !== "string") {
    return undefined;
  }
  if (!/^\d{1,15}$/.test(time) || !/^[0-9a-f]{32}$/.test(nonce) || !/^[0-9a-f]{64}$/.test(digest)) {
    return undefined;
  }
  const expected = hmac(secret, method.toUpperCase(), instance, path, time, nonce, digest);
  return sameMac(signature, expected) ? { sent: Number(time), nonce } : undefined;
}

/**
 * Checks a request's signature headers, before its body is read: the signature covers the
 * body's `digest` (its `x-aio-digest` header), and the body is checked against that digest as
 * it arrives. Returns the request's nonce when it is genuine, fresh by the clock `now` reads
 * and not a replay; undefined otherwise (the caller answers 401 and says no more).
 */
export function verifyRequest(
  secret: string | SecretKey,
  nonces: NonceCache,
  instance: string,
  method: string,
  path: string,
  headers: Record<string, string | string[] | undefined>,
  digest: string,
  now: number = Date.now(),
): string | undefined {
  const signed = signedRequest(secret, instance, method, path, headers, digest);
  if (!signed || Math.abs(now - signed.sent) > MAX_SKEW_MS) return undefined;
  return nonces.admit(signed.nonce, signed.sent, now) ? signed.nonce : undefined;
}

/**
 * The bearer token a node's `/mcp` requires: `mcp_token` when configured, else one derived from
 * the secret (an HMAC of it: the token shows nothing of the secret, and the secret cannot be
 * worked back from it), else none (a node without a secret listens on loopback only).
 */
export function mcpToken(config: { secret: string; mcp_token: string }): string {
  if (config.mcp_token !== "") return config.mcp_token;
  if (config.secret === "") return "";
  return createHmac("sha256", config.secret)
    .update("aio-core mcp bearer token")
    .digest("base64url");
}

/** The key a channel signs its messages with, from both sides' handshake nonces. */
export function sessionKey(secret: string, clientNonce: string, serverNonce: string): Buffer {
  return createHmac("sha256", secret).update(`session\n${clientNonce}\n${serverNonce}`).digest();
}

/**
 * A secret that signs or checks many messages: a server checks every request with it and signs
 * every answer, two MACs per request. `createHmac` would set the digest up anew for each, which
 * costs more than hashing a short text (see ./hmac.ts).
 */
export class SecretKey {
  readonly #key: MacKey;

  constructor(secret: string) {
    this.#key = new MacKey(Buffer.from(secret, "utf8"));
  }

  /** The MAC, as hex, of `text`, the same as `createHmac` with the secret gives. */
  macOf(text: string): string {
    return this.#key.hex(text);
  }
}

/**
 * Signs and checks channel messages. Each direction counts its messages, and the count is
 * part of the MAC, so a message cannot be replayed, dropped or reordered unnoticed.
 *
 * A message is `<mac>` + payload as UTF-8 bytes, the MAC being 64 hex characters of
 * HMAC(key, side \n n \n payload).
 */
export class ChannelSigner {
  readonly #key: MacKey;
  readonly #sendLabel: string;
  readonly #receiveLabel: string;
  #sent = 0;
  #received = 0;

  constructor(key: Buffer, side: "client" | "server") {
    this.#key = new MacKey(key);
    this.#sendLabel = side === "client" ? "c" : "s";
    this.#receiveLabel = side === "client" ? "s" : "c";
  }

  /** The sealed message: the payload is encoded once, behind room for the MAC. */
  seal(payload: string): Buffer {
    const message = asciiAfterMac(payload) ?? utf8AfterMac(payload);
    const label = `${this.#sendLabel}\n${++this.#sent}\n`;
    this.#key.writeHex(label, message, MAC_HEX_LENGTH, message.length, message, 0);
    return message;
  }

  /**
   * The payload of a sealed message, or undefined if it is not genuine and next in order. The
   * MAC is checked on the received bytes, before any decoding.
   */
  open(message: Buffer): string | undefined {
    if (message.length < MAC_HEX_LENGTH) return undefined;
    const label = `${this.#receiveLabel}\n${this.#received + 1}\n`;
    if (!this.#key.checkHex(label, message, MAC_HEX_LENGTH, message.length, message, 0)) {
      return undefined;
    }
    this.#received++;
    return message.toString("utf8", MAC_HEX_LENGTH);
  }
}

/**
 * Payloads up to this many characters are encoded here when they are ASCII (most packets):
 * on a CPU that was idle, as every one is at 1 call in flight, two calls into C++ (`byteLength`
 * and `write`) cost more than this loop; longer ones are faster in C++.
 */
const ASCII_LOOP_LIMIT = 512;

/** `payload` as bytes after room for a MAC, if it is short and ASCII; undefined otherwise. */
function asciiAfterMac(payload: string): Buffer | undefined {
  const length = payload.length;
  if (length > ASCII_LOOP_LIMIT) return undefined;
  const message = Buffer.allocUnsafe(MAC_HEX_LENGTH + length);
  for (let i = 0; i < length; i++) {
    const code = payload.charCodeAt(i);
    if (code > 0x7f) return undefined;
    message[MAC_HEX_LENGTH + i] = code;
  }
  return message;
}

/** `payload`'s UTF-8 bytes after room for a MAC. */
function utf8AfterMac(payload: string): Buffer {
  const length = Buffer.byteLength(payload, "utf8");
  const message = Buffer.allocUnsafe(MAC_HEX_LENGTH + length);
  message.write(payload, MAC_HEX_LENGTH, length, "utf8");
  return message;
}

/** A heartbeat datagram's MAC: over its text, so pings and pongs cannot be forged. */
export function signDatagram(secret: string, text: string): string {
  return hmac(secret, "udp", text);
}

/**
 * MACs of an NDJSON stream answer, one per line: each over the line's content, its place in
 * the stream and the request, so no line can be forged, dropped, reordered or moved to
 * another stream, and the consumer can check each item before using it.
 */
export class StreamMac {
  readonly #key: MacKey;
  readonly #prefix: string;
  #lines = 0;

  constructor(secret: string, nonce: string) {
    this.#key = new MacKey(Buffer.from(secret, "utf8"));
    this.#prefix = `stream\n${nonce}\n`;
  }

  /** The MAC of the next line, whose JSON without the MAC is `bare`. */
  next(bare: string): string {
    return this.#key.hex(`${this.#prefix}${++this.#lines}\n${bare}`);
  }

  /**
   * The next line as received, without its MAC, if the MAC is genuine; undefined if not. The
   * MAC covers the line's text exactly as the node wrote it, up to its `mac` member, which
   * comes last: checking it never depends on serialising JSON the same way.
   */
  open(line: string): string | undefined {
    const match = /,"mac":"([0-9a-f]{64})"\}$/.exec(line);
    if (!match) return undefined;
    const bare = `${line.slice(0, match.index)}}`;
    return sameMac(match[1] as string, this.next(bare)) ? bare : undefined;
  }
}

/**
 * Whether an answer carries `x-aio-answer` for the request with `nonce`, over `body`: proof
 * that it comes from a holder of the secret.
 */
export function answerSigned(
  secret: string | SecretKey,
  headers: Record<string, unknown>,
  nonce: string,
  body: string,
): boolean {
  const mac = headers[HEADER_ANSWER];
  return typeof mac === "string" && sameMac(mac, signAnswer(secret, nonce, body));
}
