/**
 * Topics on NATS, by subject rather than node by node: a node subscribes to
 * `<prefix>.topic.<pattern>` for each pattern its subscribers open to other nodes, and a
 * publish goes out once, on `<prefix>.topic.<topic>`; the NATS servers hand it to every node
 * with a matching subscription, whatever their number. The publishes to one topic in one turn
 * of the event loop share a message, and each node answers it on one inbox with how many of its
 * subscribers took each publish. A topic's segments are its subject's tokens
 * (`*` and `>` mean the same in both); characters a token may not hold are %-escaped.
 *
 * Signed as an announce is (for every node), so a node without the secret can neither publish
 * nor forge a count; a publish heard twice (two of a node's patterns match it) is delivered
 * once: its nonce, or its id without a secret, is remembered.
 */
import {
  createInbox,
  type Msg,
  type NatsConnection,
  type Subscription,
} from "@nats-io/transport-node";
import type { Caller } from "../../../core/call.js";
import type { Logger } from "../../../log.js";
import { topicProblem } from "../../../topic-names.js";
import { freshNonce, HEADER_NONCE } from "../../auth.js";
import type { RemoteNode } from "../../nodes.js";
import type { LocalCalls } from "../../serve.js";
import { parseJson } from "../../wire.js";
import type { NatsSigning } from "./signing.js";

/** Ids of publishes already delivered, kept this long (without a secret, which has nonces). */
const SEEN_MS = 60_000;
const MAX_SEEN = 10_000;

/**
 * What goes out on a topic's subject: the publishes to that topic made in one turn of the event
 * loop, in order, as one message; a node answers with one count per publish.
 */
interface Batch {
  topic: string;
  author_host: string;
  /** The publishing node's instance: it never delivers its own publishes. */
  instance: string;
  id: string;
  items: Array<{ args?: unknown; author?: string }>;
}

/** A publish of a batch, waiting for the answers of the nodes it expects. */
interface Waiter {
  nodes: readonly RemoteNode[];
  /** Answers still to come. */
  left: number;
  count: number;
  resolve: (count: number) => void;
}

/** A batch still being filled, and the publishes waiting for its answers. */
interface Outgoing {
  subject: string;
  topic: string;
  texts: string[];
  bytes: number;
  waiters: Waiter[];
  /** Waiters with answers still to come. */
  open: number;
  /** Every node any of its publishes expects an answer from. */
  expected: Map<string, RemoteNode>;
  /** The nodes that answered; a node's second answer counts for nothing. */
  answered: Set<string>;
  timeoutMs: number;
}

/** A batch is sent once it holds this many bytes of publishes, whatever the turn. */
const BATCH_BYTES = 256 * 1024;
/** Subjects of this many topics are remembered; beyond, the memory starts again. */
const MAX_SUBJECTS = 1024;

export interface NatsTopicsOptions {
  prefix: string;
  signing: NatsSigning;
  instance: string;
  maxDepth: number;
  calls: LocalCalls;
  logger: Logger;
}

function expects(nodes: readonly RemoteNode[], instance: string): boolean {
  for (const node of nodes) if (node.instance === instance) return true;
  return false;
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
  /** Batches being filled this turn, by subject. */
  readonly #filling = new Map<string, Outgoing>();
  /** Batches waiting for answers, by the number their reply subject ends with. */
  readonly #pending = new Map<number, (message: Msg) => void>();
  #seq = 0;
  #inboxOf: NatsConnection | undefined;
  #inboxPrefix = "";
  #nats: NatsConnection | undefined;
  /** Subjects by topic: a sensor publishes to the same few topics again and again. */
  readonly #subjects = new Map<string, string>();

  constructor(options: NatsTopicsOptions) {
    this.#options = options;
  }

  #subjectOf(topic: string): string {
    let subject = this.#subjects.get(topic);
    if (subject === undefined) {
      if (this.#subjects.size >= MAX_SUBJECTS) this.#subjects.clear();
      subject = topicSubject(this.#options.prefix, topic);
      this.#subjects.set(topic, subject);
    }
    return subject;
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
   * Publishes; resolves to the sum of the counts the nodes answer, once every node in
   * `expected` has answered or `timeoutMs` passed (a node that did not answer counts 0). The
   * publishes to one topic made in one turn of the event loop leave as one message.
   */
  publish(
    nats: NatsConnection,
    publish: { topic: string; args: unknown; author: string | undefined; authorHost: string },
    expected: RemoteNode[],
    timeoutMs: number,
  ): Promise<number> {
    if (expected.length === 0) return Promise.resolve(0);
    const item: Batch["items"][number] = {};
    if (publish.args !== undefined) item.args = publish.args;
    if (publish.author !== undefined) item.author = publish.author;
    const text = JSON.stringify(item);
    const subject = this.#subjectOf(publish.topic);
    let batch = this.#filling.get(subject);
    if (!batch) {
      batch = {
        subject,
        topic: publish.topic,
        texts: [],
        bytes: 0,
        waiters: [],
        open: 0,
        expected: new Map(),
        answered: new Set(),
        timeoutMs,
      };
      this.#filling.set(subject, batch);
      const filled = batch;
      queueMicrotask(() => this.#send(nats, filled, publish.authorHost));
    }
    batch.texts.push(text);
    batch.bytes += text.length;
    batch.timeoutMs = Math.min(batch.timeoutMs, timeoutMs);
    for (const node of expected) batch.expected.set(node.instance, node);
    const waiters = batch.waiters;
    const answered = new Promise<number>((resolve) => {
      waiters.push({ nodes: expected, left: expected.length, count: 0, resolve });
    });
    batch.open++;
    if (batch.bytes >= BATCH_BYTES) this.#send(nats, batch, publish.authorHost);
    return answered;
  }

  /** Sends a batch once, and gathers the counts of its answers. */
  #send(nats: NatsConnection, batch: Outgoing, authorHost: string): void {
    if (this.#filling.get(batch.subject) !== batch) return;
    this.#filling.delete(batch.subject);
    const text = `{"topic":${JSON.stringify(batch.topic)},"author_host":${JSON.stringify(authorHost)},"instance":${JSON.stringify(this.#options.instance)},"id":"${freshNonce()}","items":[${batch.texts.join(",")}]}`;
    const signing = this.#options.signing;
    const h = signing.broadcastHeaders(batch.subject, text);
    const nonce = h?.get(HEADER_NONCE) ?? "";
    const id = ++this.#seq;
    // A waiter resolves once every node it expects has answered; the batch ends with its last
    // waiter, at its timeout, or when it cannot be sent (what came in so far counts).
    const finish = (unsent: boolean) => {
      clearTimeout(timer);
      this.#pending.delete(id);
      if (batch.open > 0 && !unsent) {
        const missing = [...batch.expected.values()]
          .filter((node) => !batch.answered.has(node.instance))
          .map((node) => node.hostname);
        this.#options.logger.warn(
          `publishing "${batch.topic}": no answer within ${batch.timeoutMs} ms from ${missing.join(", ")}`,
        );
      }
      batch.open = 0;
      for (const waiter of batch.waiters) {
        if (waiter.left > 0) {
          waiter.left = 0;
          waiter.resolve(waiter.count);
        }
      }
    };
    const timer = setTimeout(() => finish(false), batch.timeoutMs);
    this.#pending.set(id, (message) => {
      const answer = this.#readAnswer(message, nonce, batch.waiters.length);
      if (!answer || !batch.expected.has(answer.instance)) return;
      if (batch.answered.has(answer.instance)) return;
      batch.answered.add(answer.instance);
      const { instance, counts } = answer;
      const waiters = batch.waiters;
      for (let index = 0; index < waiters.length; index++) {
        const waiter = waiters[index] as Waiter;
        if (waiter.left === 0 || !expects(waiter.nodes, instance)) continue;
        waiter.count += counts[index] ?? 0;
        if (--waiter.left === 0) {
          batch.open--;
          waiter.resolve(waiter.count);
        }
      }
      if (batch.open === 0) finish(false);
    });
    try {
      nats.publish(batch.subject, text, {
        reply: this.#inbox(nats, id),
        ...(h ? { headers: h } : {}),
      });
    } catch (error) {
      this.#options.logger.warn(`publishing "${batch.topic}" failed: ${(error as Error).message}`);
      finish(true);
      return;
    }
    // Publishes that expect no answer (every node they expected is gone) resolve at once.
    if (batch.open === 0) finish(false);
  }

  /**
   * The reply subject of publish `id`: one subscription to `<inbox>.*` takes the answers to
   * every publish, rather than one subscription made and dropped per publish.
   */
  #inbox(nats: NatsConnection, id: number): string {
    if (this.#inboxOf !== nats) {
      this.#inboxOf = nats;
      this.#inboxPrefix = createInbox();
      nats.subscribe(`${this.#inboxPrefix}.*`, {
        callback: (error, message) => {
          if (error) return;
          const at = message.subject.lastIndexOf(".");
          this.#pending.get(Number(message.subject.slice(at + 1)))?.(message);
        },
      });
    }
    return `${this.#inboxPrefix}.${id}`;
  }

  /** A node's answer to a batch: its instance and a count per publish, if it holds the secret. */
  #readAnswer(
    message: Msg,
    nonce: string,
    size: number,
  ): { instance: string; counts: number[] } | undefined {
    const text = Buffer.from(message.data).toString("utf8");
    if (!this.#options.signing.answers(message, nonce, text)) return undefined;
    try {
      const value = parseJson(text, 2) as { instance?: unknown; counts?: unknown };
      if (typeof value.instance !== "string" || !Array.isArray(value.counts)) return undefined;
      const counts = value.counts
        .slice(0, size)
        .map((n) => (typeof n === "number" && n > 0 ? Math.floor(n) : 0));
      return { instance: value.instance, counts };
    } catch {
      return undefined;
    }
  }

  /** Publishes from another node: delivered here once, in order, and answered with the counts. */
  #heard(message: Msg): void {
    const nonce = this.#options.signing.verifyBroadcast(message);
    // Unsigned, forged, stale, or heard already under another of this node's patterns.
    if (nonce === undefined) return;
    let batch: Batch;
    try {
      batch = parseJson(
        Buffer.from(message.data).toString("utf8"),
        this.#options.maxDepth + 2,
      ) as Batch;
    } catch (error) {
      this.#options.logger.debug(
        `a malformed publish on ${message.subject}: ${(error as Error).message}`,
      );
      return;
    }
    if (
      typeof batch !== "object" ||
      batch === null ||
      typeof batch.topic !== "string" ||
      topicProblem(batch.topic) !== undefined ||
      typeof batch.instance !== "string" ||
      typeof batch.id !== "string" ||
      typeof batch.author_host !== "string" ||
      !Array.isArray(batch.items)
    ) {
      return;
    }
    // A subject names the topic it was published to; one that does not was tampered with.
    if (this.#subjectOf(batch.topic) !== message.subject) return;
    if (batch.instance === this.#options.instance || this.#again(batch.id)) return;
    const counts = batch.items.map((item) => this.#deliver(batch, item));
    if (message.reply) {
      this.#options.signing.respond(
        message,
        nonce,
        JSON.stringify({ instance: this.#options.instance, counts }),
      );
    }
  }

  #deliver(batch: Batch, item: unknown): number {
    if (typeof item !== "object" || item === null) return 0;
    const { args, author } = item as { args?: unknown; author?: unknown };
    if (author !== undefined && typeof author !== "string") return 0;
    const caller: Caller =
      author === undefined
        ? { kind: "remote", hostname: batch.author_host }
        : { kind: "remote", hostname: batch.author_host, author };
    try {
      return this.#options.calls.notify(caller, batch.topic, args);
    } catch (error) {
      this.#options.logger.warn(
        `a publish to "${batch.topic}" failed here: ${(error as Error).message}`,
      );
      return 0;
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
