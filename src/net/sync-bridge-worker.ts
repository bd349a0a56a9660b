/**
 * The thread that makes blocking remote calls possible: the main thread sleeps in
 * `Atomics.wait` while this one talks HTTP to the other node, then wakes it with the answer.
 */
import { parentPort, workerData } from "node:worker_threads";
import { Agent, request } from "undici";
import { BlockingStreams, serveBlocking } from "../core/blocking.js";
import { answerSigned, HEADER_NONCE, StreamMac } from "./auth.js";
import { ndjsonLines } from "./ndjson.js";
import type { BridgeRequest, BridgeSetup } from "./sync-remote.js";
import { tlsConnector } from "./tls.js";

const { secret, tls } = workerData as BridgeSetup;
const agent = new Agent({
  keepAliveTimeout: 30_000,
  connections: 4,
  ...(tls.enabled ? { connect: tlsConnector(tls) } : {}),
});

const streams = new BlockingStreams({
  gone: () => ({ code: "NETWORK", message: "the stream is closed" }),
  forgetFailed: true,
});

const FORGED = {
  code: "UNAUTHORIZED",
  message: "the node answered without proof that it knows the secret; the answer is ignored",
};

/** With a secret, an answer counts only if it is signed for this request. */
function checkAnswer(
  headers: Record<string, unknown>,
  sent: Record<string, string>,
  body: string,
): void {
  if (secret && !answerSigned(secret, headers, sent[HEADER_NONCE] ?? "", body)) throw FORGED;
}

/** An answer that never reached the node (refused or reset before sending) is retryable. */
function notDelivered(error: unknown): boolean {
  const code = (error as { code?: string }).code ?? "";
  return (
    code === "ECONNREFUSED" ||
    code === "EHOSTUNREACH" ||
    code === "ENETUNREACH" ||
    code === "UND_ERR_CONNECT_TIMEOUT"
  );
}

function networkFailure(error: unknown): never {
  throw {
    code: notDelivered(error) ? "NOT_DELIVERED" : "NETWORK",
    message: (error as Error).message,
    refused: (error as { code?: string }).code === "ECONNREFUSED",
  };
}

async function post(url: string, body: string, timeoutMs: number, headers: Record<string, string>) {
  try {
    return await request(url, {
      method: "POST",
      dispatcher: agent,
      headers: { "content-type": "application/json", ...headers },
      body,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
  } catch (error) {
    return networkFailure(error);
  }
}

/**
 * A 401 means the call was not run: the node refused the credentials (a wrong secret, or a
 * signature for an instance of it that has since restarted), so another node may take it.
 */
const REFUSED_CREDENTIALS = {
  code: "NOT_DELIVERED",
  message: "the node refused this node's credentials",
  refused: false,
};

async function serve(message: BridgeRequest): Promise<unknown> {
  switch (message.kind) {
    case "execute": {
      const response = await post(message.url, message.body, message.timeoutMs, message.headers);
      const text = await response.body.text();
      if (response.statusCode === 401) throw REFUSED_CREDENTIALS;
      checkAnswer(response.headers, message.headers, text);
      const answer = JSON.parse(text) as { result?: unknown; error?: unknown };
      if (response.statusCode !== 200)
        throw answer.error ?? { code: "NETWORK", message: `HTTP ${response.statusCode}` };
      return answer.result;
    }
    case "open": {
      const response = await post(message.url, message.body, message.timeoutMs, message.headers);
      if (response.statusCode !== 200) {
        const text = await response.body.text();
        if (response.statusCode === 401) throw REFUSED_CREDENTIALS;
        checkAnswer(response.headers, message.headers, text);
        const answer = JSON.parse(text) as { error?: unknown };
        throw answer.error ?? { code: "NETWORK", message: `HTTP ${response.statusCode}` };
      }
      const nonce = message.headers[HEADER_NONCE];
      return streams.open(
        itemsOf(
          ndjsonLines(response.body)[Symbol.asyncIterator](),
          secret && nonce ? new StreamMac(secret, nonce) : undefined,
        ),
      );
    }
    case "next":
    case "close":
      return streams.serve(message);
  }
}

/**
 * The items of a streamed answer, read from its NDJSON lines. With a secret, `mac` is the MAC
 * the next line must carry.
 */
function itemsOf(lines: AsyncIterator<string>, mac: StreamMac | undefined): AsyncIterator<unknown> {
  return {
    async next() {
      let step: IteratorResult<string>;
      try {
        step = await lines.next();
      } catch (error) {
        return networkFailure(error);
      }
      if (step.done) {
        throw {
          code: "NETWORK",
          message: "the stream ended without an end marker; the node may have gone",
        };
      }
      // Each line is checked, as the node wrote it, before it is parsed.
      const text = mac ? mac.open(step.value) : step.value;
      if (text === undefined) throw FORGED;
      const line = JSON.parse(text) as { item?: unknown; end?: boolean; error?: unknown };
      if (line.error !== undefined) throw line.error;
      if (line.end) return { done: true, value: undefined };
      return { done: false, value: line.item };
    },
    async return() {
      await lines.return?.();
      return { done: true, value: undefined };
    },
  };
}

if (parentPort) serveBlocking(parentPort, serve);
