/**
 * The command line's client for a running node (`--node URL`): the protocol's `/execute` and
 * `/execute_stream`, and the operator routes (`/plugins`, `/nodes`, `/endpoints`, `/admin`).
 * With a secret (AIO_SECRET) every request is signed for the node's run (its instance id, from
 * its `GET /ping`), and every answer must prove that the node knows the secret too: an
 * answer's `x-aio-answer` header, a stream's per-line `mac`.
 */
import { randomBytes } from "node:crypto";
import { Agent } from "undici";
import type { EndpointInfo } from "../core/endpoint.js";
import type {
  NodeInfo,
  PluginInfo,
  SubscriptionInfo,
  TaggedEndpoint,
  TopicMessage,
} from "../core/types.js";
import { CliError, UsageError } from "../errors.js";
import type { LogLine } from "../log.js";
import { type PeerIdentity, type SignedHeaders, signRequest } from "../net/auth.js";
import { tlsHint } from "../net/http-client.js";
import type { AdminAction } from "../net/server.js";
import { pingNode, sendToNode, signedByNode, streamFromNode } from "../net/signed-http.js";
import { readIdentity } from "../net/wire.js";

/** A request's answer: its parsed body, or (asked for a stream) the body to read lines from. */
interface SentAnswer {
  status: number;
  body: unknown;
  stream?: AsyncIterable<Buffer>;
  /** What the request was signed with: a stream's lines are checked against it. */
  signature?: SignedHeaders | undefined;
}

export interface CallOptions {
  /** Milliseconds: sent as the call's deadline, and the longest this client waits. */
  timeout?: number | undefined;
  signal?: AbortSignal | undefined;
}

/** The URL of a node, checked: http(s), host and port, nothing after the path's root. */
export function nodeUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`);
  } catch {
    throw new UsageError(`--node: "${text}" is not a URL (try http://127.0.0.1:2510)`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UsageError(`--node: "${text}" must be an http:// or https:// URL`);
  }
  if (url.pathname !== "/" || url.search !== "" || url.hash !== "") {
    throw new UsageError(`--node: give the node's address only, like http://127.0.0.1:2510`);
  }
  return url;
}

/** How long the operator routes (/plugins, /admin, …) may take to answer. */
const OPERATOR_TIMEOUT_MS = 60_000;

const FORGED =
  "the node answered without proof that it knows the secret (AIO_SECRET); the answer is ignored";

/** A parsed answer body, or a NETWORK error saying what came instead. */
function parseBody(text: string, url: string, status: number): unknown {
  try {
    return text === "" ? undefined : JSON.parse(text);
  } catch {
    throw new CliError(
      "NETWORK",
      `${url} answered HTTP ${status} with a body that is not JSON: ${text.slice(0, 200)}`,
    );
  }
}

function wireError(body: unknown, status: number, url: string): CliError {
  const error = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  if (error && typeof error.code === "string") {
    return new CliError(error.code, typeof error.message === "string" ? error.message : "");
  }
  return new CliError("NETWORK", `${url} answered HTTP ${status}`);
}

export class NodeClient {
  readonly url: URL;
  readonly #secret: string;
  readonly #agent = new Agent({ keepAliveTimeout: 10_000, connections: 4 });
  /** Who the node is this run, once asked: what requests are signed for. */
  #identity: PeerIdentity | undefined;

  constructor(url: URL, secret: string) {
    this.url = url;
    this.#secret = secret;
  }

  /** The node's instance id and clock, from its unsigned `GET /ping`. */
  async #identify(signal: AbortSignal | undefined): Promise<PeerIdentity> {
    let ping: Awaited<ReturnType<typeof pingNode>>;
    try {
      ping = await pingNode(this.#agent, this.url, OPERATOR_TIMEOUT_MS, signal);
    } catch (error) {
      throw this.#failure(error, signal);
    }
    try {
      return readIdentity(JSON.parse(ping.text), ping.sentAt, ping.receivedAt);
    } catch {
      throw new CliError(
        "NETWORK",
        `${this.url.origin} does not answer /ping as an AIO node does: ${ping.text.slice(0, 200)}`,
      );
    }
  }

  /**
   * A request; with a secret signed, and its answer's MAC checked before its body is used. A
   * request refused because the node restarted since it was asked who it is (a 401 from a new
   * instance) is signed again and sent once more: it was not run.
   */
  async #send(
    method: "GET" | "POST",
    path: string,
    body: unknown,
    options: CallOptions & { stream?: boolean; text?: boolean } = {},
  ): Promise<SentAnswer> {
    const known = this.#identity;
    try {
      return await this.#sendOnce(method, path, body, options);
    } catch (error) {
      if (!known || (error as CliError).code !== "UNAUTHORIZED" || !this.#identity) throw error;
      const now = await this.#identify(options.signal);
      if (now.instance === known.instance) throw error;
      this.#identity = now;
      return this.#sendOnce(method, path, body, options);
    }
  }

  async #sendOnce(
    method: "GET" | "POST",
    path: string,
    body: unknown,
    options: CallOptions & { stream?: boolean; text?: boolean },
  ): Promise<SentAnswer> {
    const target = new URL(path, this.url);
    const text = body === undefined ? "" : JSON.stringify(body);
    if (this.#secret) this.#identity ??= await this.#identify(options.signal);
    const signature =
      this.#secret && this.#identity
        ? signRequest(this.#secret, method, this.#identity, target.pathname + target.search, text)
        : undefined;
    // A call has no deadline of its own beyond its --timeout: the node ends the call then, and
    // gets a moment more to say so. The operator routes answer at once, or not at all.
    const wait =
      options.timeout !== undefined
        ? options.timeout + 2_000
        : path === "/execute" || path === "/execute_stream"
          ? 0
          : OPERATOR_TIMEOUT_MS;
    let response: Awaited<ReturnType<typeof sendToNode>>;
    try {
      response = await sendToNode(this.#agent, {
        method,
        url: target,
        body: text,
        signature,
        timeoutMs: wait,
        signal: options.signal,
      });
    } catch (error) {
      throw this.#failure(error, options.signal);
    }
    const status = response.statusCode;
    if (status === 401) {
      await response.body.dump();
      throw new CliError(
        "UNAUTHORIZED",
        this.#secret
          ? `${this.url.origin} refused the request: AIO_SECRET is not the node's secret`
          : `${this.url.origin} requires a secret: set AIO_SECRET to the node's secret`,
      );
    }
    if (options.stream && status === 200) {
      return { status, body: undefined, stream: response.body, signature };
    }
    let answer: string;
    try {
      answer = await response.body.text();
    } catch (error) {
      throw this.#failure(error, options.signal);
    }
    if (!signedByNode(this.#secret, signature, response.headers, answer)) {
      throw new CliError("UNAUTHORIZED", `${this.url.origin}: ${FORGED}`);
    }
    if (options.text && status === 200) return { status, body: answer };
    const parsed = parseBody(answer, target.href, status);
    if (status !== 200) throw wireError(parsed, status, target.href);
    return { status, body: parsed };
  }

  /** What a request that broke off (or was aborted) is reported as. */
  #failure(error: unknown, signal: AbortSignal | undefined): CliError {
    if (signal?.aborted) return new CliError("ABORTED", "the call was interrupted");
    const cause = error as { code?: string; message?: string };
    const why =
      cause.code === "ECONNREFUSED"
        ? "connection refused (is a node running there? start one with `aio run`)"
        : `${(cause.message ?? String(error)).trim()}${tlsHint(error, this.url.href, "cli")}`;
    return new CliError("NETWORK", `${this.url.origin}: ${why}`);
  }

  async execute(
    plugin: string,
    method: string,
    args: unknown,
    options: CallOptions = {},
  ): Promise<unknown> {
    const { body } = await this.#send(
      "POST",
      "/execute",
      callBody(plugin, method, args, options),
      options,
    );
    return (body as { result?: unknown }).result;
  }

  stream(
    plugin: string,
    method: string,
    args: unknown,
    options: CallOptions = {},
  ): AsyncGenerator<unknown, void, undefined> {
    return this.#lines("/execute_stream", callBody(plugin, method, args, options), options);
  }

  /** Every publish to `pattern` the node hears (`POST /subscribe`), until the consumer stops. */
  subscribe(
    pattern: string,
    options: CallOptions = {},
  ): AsyncGenerator<TopicMessage, void, undefined> {
    return this.#lines("/subscribe", { pattern }, options) as AsyncGenerator<
      TopicMessage,
      void,
      undefined
    >;
  }

  /** The node's log: its recent lines, then each new one (`POST /log`). */
  log(options: CallOptions = {}): AsyncGenerator<LogLine, void, undefined> {
    return this.#lines("/log", {}, options) as AsyncGenerator<LogLine, void, undefined>;
  }

  /** The Prometheus text of `GET /metrics`. */
  async metrics(): Promise<string> {
    return (await this.#send("GET", "/metrics", undefined, { text: true })).body as string;
  }

  async openapi(): Promise<Record<string, unknown>> {
    return (await this.#send("GET", "/openapi.json", undefined)).body as Record<string, unknown>;
  }

  async subscriptions(): Promise<SubscriptionInfo[]> {
    const answer = await this.#send("GET", "/topics", undefined);
    return (answer.body as { subscriptions: SubscriptionInfo[] }).subscriptions;
  }

  /** The items of a stream answer, each line's MAC checked before its item is used. */
  async *#lines(
    path: string,
    body: unknown,
    options: CallOptions,
  ): AsyncGenerator<unknown, void, undefined> {
    const answer = await this.#send("POST", path, body, { ...options, stream: true });
    yield* streamFromNode(answer.stream as AsyncIterable<Buffer>, this.#secret, answer.signature, {
      broke: (error) => this.#failure(error, options.signal),
      cut: () =>
        new CliError("NETWORK", "the stream ended without an end marker; the node may have gone"),
      forged: () => new CliError("UNAUTHORIZED", FORGED),
      malformed: (line) =>
        new CliError(
          "NETWORK",
          `the node sent a stream line that is not a JSON object: ${line.slice(0, 200)}`,
        ),
      failed: (error) => wireError({ error }, 200, this.url.href),
    });
  }

  async plugins(): Promise<{ hostname: string; plugins: PluginInfo[] }> {
    return (await this.#send("GET", "/plugins", undefined)).body as {
      hostname: string;
      plugins: PluginInfo[];
    };
  }

  async nodes(): Promise<{ hostname: string; nodes: NodeInfo[] }> {
    return (await this.#send("GET", "/nodes", undefined)).body as {
      hostname: string;
      nodes: NodeInfo[];
    };
  }

  /** `POST /notify`: the node's own subscribers only (a client cannot make it tell others). */
  async notify(topic: string, args: unknown, options: CallOptions = {}): Promise<number> {
    const body = args === undefined ? { topic } : { topic, args };
    const answer = await this.#send("POST", "/notify", body, options);
    return (answer.body as { count?: number }).count ?? 0;
  }

  /** Endpoints with `tag` (every one without) of the node and the nodes it knows. */
  async tagged(tag: string | undefined): Promise<TaggedEndpoint[]> {
    const path = tag === undefined ? "/endpoints" : `/endpoints?tag=${encodeURIComponent(tag)}`;
    return ((await this.#send("GET", path, undefined)).body as { endpoints: TaggedEndpoint[] })
      .endpoints;
  }

  async endpoints(plugin: string): Promise<EndpointInfo[]> {
    const path = `/endpoints?plugin=${encodeURIComponent(plugin)}`;
    return ((await this.#send("GET", path, undefined)).body as { endpoints: EndpointInfo[] })
      .endpoints;
  }

  async act(action: AdminAction, plugin?: string): Promise<PluginInfo[]> {
    const body = plugin === undefined ? { action } : { action, plugin };
    return ((await this.#send("POST", "/admin", body)).body as { plugins: PluginInfo[] }).plugins;
  }

  /** Ends every connection; whatever is still open was given up. */
  async close(): Promise<void> {
    await this.#agent.destroy();
  }
}

function callBody(plugin: string, method: string, args: unknown, options: CallOptions) {
  return {
    plugin,
    method,
    ...(args !== undefined ? { args } : {}),
    request_id: `cli-${randomBytes(4).toString("hex")}`,
    ...(options.timeout !== undefined ? { timeout_ms: options.timeout } : {}),
  };
}
