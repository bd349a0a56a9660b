/**
 * Topics on NATS, by subject rather than node by node: a node subscribes to
 * `<prefix>.topic.<pattern>` for each pattern its subscribers open to other nodes, and a
 * publish goes out once, on `<prefix>.topic.<topic>`; the NATS servers hand it to every node
 * with a matching subscription, whatever their number. Each such node answers on the publish's
 * inbox with how many of its subscribers took it. A topic's segments are its subject's tokens
 * (`*` and `>` mean the same in both); characters a token may not hold are %-escaped.
 *
 * Signed as an announce is (for every node), so a node without the secret can neither publish
 * nor forge a count; a publish heard twice (two of a node's patterns match it) is delivered
 * once: its nonce, or its id without a secret, is remembered.
 */
import { randomBytes } from "node:crypto";
import {
  createInbox,
  type Msg,
  type NatsConnection,
  type Subscription,
} from "@nats-io/transport-node";
import type { Caller } from "../../../core/call.js";
import type { Logger } from "../../../log.js";
import { topicProblem } from "../../../topic-names.js";
import { answerSigned, HEADER_ANSWER, HEADER_NONCE } from "../../auth.js";
import type { RemoteNode } from "../../nodes.js";
import type { LocalCalls } from "../../serve.js";
import { parseJson } from "../../wire.js";
import type { NatsSigning } from "./signing.js";

/** Signed for every node, as announces are. */
const EVERYONE = "*";
/** Ids of publishes already delivered, kept this long (without a secret, which has nonces). */
const SEEN_MS = 60_000;
const MAX_SEEN = 10_000;

interface Publish {
  topic: string;
  args?: unknown;
  author?: string;
  author_host: string;
  /** The publishing node's instance: it never delivers its own publish twice. */
  instance: string;
  id: string;
}

export interface NatsTopicsOptions {
  prefix: string;
  signing: NatsSigning;
  instance: string;
  maxDepth: number;
  calls: LocalCalls;
  logger: Logger;
}

/** A topic or pattern as a subject's tokens. */
export function topicSubject(prefix: string, topic: string): string {
  const tokens = topic
    .split("/")
    .map((segment) =>
      segment === "*" || segment === ">"
        ? segment
        : segment.replace(/[^A-Za-z0-9_\-+=:@!~]/g, (c) =>
            [...Buffer.from(c, "utf8")]
              .map((byte) => `%${byte.toString(16).toUpperCase().padStart(2, "0")}`)
              .join(""),
          ),
    );
  return `${prefix}.topic.${tokens.join(".")}`;
}

export class NatsTopics {
  readonly #options: NatsTopicsOptions;
  readonly #subscriptions = new Map<string, Subscription>();
  readonly #seen = new Map<string, number>();
  #nats: NatsConnection | undefined;

  constructor(options: NatsTopicsOptions) {
    this.#options = options;
  }

  /** Subscribes on `nats` to exactly the subjects of `patterns`. */
  sync(nats: NatsConnection, patterns: string[]): void {
    if (this.#nats !== nats) {
      this.#subscriptions.clear();
      this.#nats = nats;
    }
    const wanted = new Set(patterns);
    for (const [pattern, subscription] of this.#subscriptions) {
      if (wanted.has(pattern)) continue;
      subscription.unsubscribe();
      this.#subscriptions.delete(pattern);
    }
    for (const pattern of wanted) {
      if (this.#subscriptions.has(pattern)) continue;
      const subject = topicSubject(this.#options.prefix, pattern);
      this.#subscriptions.set(
        pattern,
        nats.subscribe(subject, {
          callback: (error, message) => {
            if (!error) this.#heard(message);
          },
        }),
      );
    }
  }

  /**
   * Publishes once; resolves to the sum of the counts the nodes answer, once every node in
   * `expected` has answered or `timeoutMs` passed (a node that did not answer counts 0).
   */
  async publish(
    nats: NatsConnection,
    publish: { topic: string; args: unknown; author: string | undefined; authorHost: string },
    expected: RemoteNode[],
    timeoutMs: number,
  ): Promise<number> {
    const body: Publish = {
      topic: publish.topic,
      author_host: publish.authorHost,
      instance: this.#options.instance,
      id: randomBytes(12).toString("hex"),
    };
    if (publish.args !== undefined) body.args = publish.args;
    if (publish.author !== undefined) body.author = publish.author;
    const text = JSON.stringify(body);
    const subject = topicSubject(this.#options.prefix, publish.topic);
    const signing = this.#options.signing;
    const h = signing.headers({ instance: EVERYONE, clockOffsetMs: 0 }, subject, text);
    const nonce = h?.get(HEADER_NONCE) ?? "";
    const waiting = new Set(expected.map((node) => node.instance));
    const inbox = createInbox();
    let count = 0;
    let settle: () => void = () => undefined;
    const done = new Promise<void>((resolve) => {
      settle = resolve;
    });
    const answers = nats.subscribe(inbox, {
      callback: (error, message) => {
        if (error) return;
        const answer = this.#readAnswer(message, nonce);
        if (!answer || !waiting.has(answer.instance)) return;
        waiting.delete(answer.instance);
        count += answer.count;
        if (waiting.size === 0) settle();
      },
    });
    const timer = setTimeout(settle, timeoutMs);
    try {
      nats.publish(subject, text, { reply: inbox, ...(h ? { headers: h } : {}) });
      await done;
    } finally {
      clearTimeout(timer);
      answers.unsubscribe();
    }
    if (waiting.size > 0) {
      const missing = expected.filter((node) => waiting.has(node.instance));
      this.#options.logger.warn(
        `publishing "${publish.topic}": no answer within ${timeoutMs} ms from ${missing.map((node) => node.hostname).join(", ")}`,
      );
    }
    return count;
  }

  /** A node's answer to a publish: its instance and count, if it proves it holds the secret. */
  #readAnswer(message: Msg, nonce: string): { instance: string; count: number } | undefined {
    const text = Buffer.from(message.data).toString("utf8");
    const secret = this.#options.signing.secret;
    if (secret) {
      const mac = message.headers?.has(HEADER_ANSWER)
        ? message.headers.get(HEADER_ANSWER)
        : undefined;
      if (!answerSigned(secret, { [HEADER_ANSWER]: mac }, nonce, text)) return undefined;
    }
    try {
      const value = parseJson(text, 2) as { instance?: unknown; count?: unknown };
      if (typeof value.instance !== "string" || typeof value.count !== "number") return undefined;
      return { instance: value.instance, count: Math.max(0, Math.floor(value.count)) };
    } catch {
      return undefined;
    }
  }

  /** A publish from another node: delivered here once, and answered with the count. */
  #heard(message: Msg): void {
    const nonce = this.#options.signing.verify(message, EVERYONE);
    // Unsigned, forged, stale, or heard already under another of this node's patterns.
    if (nonce === undefined) return;
    let publish: Publish;
    try {
      publish = parseJson(
        Buffer.from(message.data).toString("utf8"),
        this.#options.maxDepth,
      ) as Publish;
    } catch (error) {
      this.#options.logger.debug(
        `a malformed publish on ${message.subject}: ${(error as Error).message}`,
      );
      return;
    }
    if (
      typeof publish !== "object" ||
      publish === null ||
      typeof publish.topic !== "string" ||
      topicProblem(publish.topic) !== undefined ||
      typeof publish.instance !== "string" ||
      typeof publish.id !== "string" ||
      typeof publish.author_host !== "string" ||
      (publish.author !== undefined && typeof publish.author !== "string")
    ) {
      return;
    }
    // A subject names the topic it was published to; one that does not was tampered with.
    if (topicSubject(this.#options.prefix, publish.topic) !== message.subject) return;
    if (publish.instance === this.#options.instance || this.#again(publish.id)) return;
    const caller: Caller =
      publish.author === undefined
        ? { kind: "remote", hostname: publish.author_host }
        : { kind: "remote", hostname: publish.author_host, author: publish.author };
    let count = 0;
    try {
      count = this.#options.calls.notify(caller, publish.topic, publish.args);
    } catch (error) {
      this.#options.logger.warn(
        `a publish to "${publish.topic}" failed here: ${(error as Error).message}`,
      );
    }
    if (message.reply) {
      this.#options.signing.respond(
        message,
        nonce,
        JSON.stringify({ instance: this.#options.instance, count }),
      );
    }
  }

  /** Whether the publish with `id` was delivered here already (and remembers it). */
  #again(id: string): boolean {
    const now = Date.now();
    if (this.#seen.has(id)) return true;
    if (this.#seen.size >= MAX_SEEN) {
      for (const [key, until] of this.#seen) {
        if (until > now && this.#seen.size < MAX_SEEN) break;
        this.#seen.delete(key);
      }
    }
    this.#seen.set(id, now + SEEN_MS);
    return false;
  }
}
