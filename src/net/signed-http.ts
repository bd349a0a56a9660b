/**
 * A request to a node over HTTP as every HTTP client of this package sends it: a node's own
 * requests (http-client.ts), the blocking bridge's thread (sync-bridge-worker.ts) and the
 * command line (cli/node-client.ts). With a secret it carries the signature headers made for
 * the node's run (auth.ts `signRequest`), and its answer, or each line of a stream answer,
 * counts only with the node's MAC for that request. Each caller keeps its own agent and turns
 * failures into its own errors.
 */
import { type Dispatcher, request } from "undici";
import { answerSigned, HEADER_NONCE, type SignedHeaders, StreamMac } from "./auth.js";
import { ndjsonLines } from "./ndjson.js";

export interface NodeRequest {
  method: "GET" | "POST";
  url: string | URL;
  /** The JSON text of a POST's body ("" for a GET). */
  body: string;
  /** The signature headers; undefined without a secret. */
  signature: SignedHeaders | undefined;
  /** Milliseconds to wait for the headers, and again between body chunks; 0: no limit. */
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}

export function sendToNode(agent: Dispatcher, call: NodeRequest): Promise<Dispatcher.ResponseData> {
  const post = call.method === "POST";
  return request(call.url, {
    method: call.method,
    dispatcher: agent,
    headers: { ...(post ? { "content-type": "application/json" } : {}), ...call.signature },
    ...(post ? { body: call.body } : {}),
    headersTimeout: call.timeoutMs,
    bodyTimeout: call.timeoutMs,
    ...(call.signal ? { signal: call.signal } : {}),
  });
}

/**
 * The node's `GET /ping`, unsigned: who it is this run and its clock, which a client needs before
 * it can sign. `sentAt` and `receivedAt` (this side's clock) go to `readIdentity`.
 */
export async function pingNode(
  agent: Dispatcher,
  origin: string | URL,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<{ status: number; text: string; sentAt: number; receivedAt: number }> {
  const sentAt = Date.now();
  const url = new URL("/ping", origin);
  const response = await sendToNode(agent, {
    method: "GET",
    url,
    body: "",
    signature: undefined,
    timeoutMs,
    signal,
  });
  const text = await response.body.text();
  return { status: response.statusCode, text, sentAt, receivedAt: Date.now() };
}

/** Whether `text` is an answer the node signed for the request `signature` was made for. */
export function signedByNode(
  secret: string,
  signature: SignedHeaders | undefined,
  headers: Record<string, string | string[] | undefined>,
  text: string,
): boolean {
  return signature === undefined || answerSigned(secret, headers, signature[HEADER_NONCE], text);
}

/** What a stream answer's reader throws, in the caller's own errors. */
export interface StreamFailures {
  /** Reading the answer failed (the connection broke). */
  broke(error: unknown): unknown;
  /** The lines ended without the end marker. */
  cut(): unknown;
  /** A line without the node's MAC for this request. */
  forged(): unknown;
  /** A line that is not a JSON object. */
  malformed(line: string): unknown;
  /** The stream's own error, as the node sent it (`{"error":{…}}`). */
  failed(error: unknown): unknown;
}

/**
 * The items of a stream answer (`/execute_stream`, `/subscribe`, `/log`): NDJSON lines of
 * `{"item"}`, ended by `{"end":true}` or `{"error"}`, each checked with the node's MAC (with a
 * secret, `signature` given) before it is parsed. Stopping early closes the answer, which stops
 * the node's generator.
 */
export async function* streamFromNode(
  body: AsyncIterable<Buffer>,
  secret: string,
  signature: SignedHeaders | undefined,
  failures: StreamFailures,
): AsyncGenerator<unknown, void, undefined> {
  const mac = signature ? new StreamMac(secret, signature[HEADER_NONCE]) : undefined;
  const lines = ndjsonLines(body);
  try {
    for (;;) {
      let step: IteratorResult<string>;
      try {
        step = await lines.next();
      } catch (error) {
        throw failures.broke(error);
      }
      if (step.done) throw failures.cut();
      const bare = mac ? mac.open(step.value) : step.value;
      if (bare === undefined) throw failures.forged();
      let line: { item?: unknown; end?: unknown; error?: unknown };
      try {
        line = JSON.parse(bare) as typeof line;
      } catch {
        throw failures.malformed(step.value);
      }
      if (typeof line !== "object" || line === null || Array.isArray(line)) {
        throw failures.malformed(step.value);
      }
      if (line.error !== undefined) throw failures.failed(line.error);
      if (line.end === true) return;
      yield line.item;
    }
  } finally {
    await lines.return();
  }
}
