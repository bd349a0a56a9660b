/**
 * The thread that makes blocking remote calls possible: the main thread sleeps in
 * `Atomics.wait` while this one talks HTTP to the other node, then wakes it with the answer.
 */
import { parentPort, workerData } from "node:worker_threads";
import { Agent } from "undici";
import { BlockingStreams, serveBlocking } from "../core/blocking.js";
import type { SignedHeaders } from "./auth.js";
import { sendToNode, signedByNode, streamFromNode } from "./signed-http.js";
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

/** The signature the main thread made for the request (none without a secret). */
function signatureOf(message: { headers: Record<string, string> }): SignedHeaders | undefined {
  return secret ? (message.headers as unknown as SignedHeaders) : undefined;
}

/** With a secret, an answer counts only if it is signed for this request. */
function checkAnswer(
  headers: Record<string, string | string[] | undefined>,
  signature: SignedHeaders | undefined,
  body: string,
): void {
  if (!signedByNode(secret, signature, headers, body)) throw FORGED;
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

function networkFailureOf(error: unknown) {
  return {
    code: notDelivered(error) ? "NOT_DELIVERED" : "NETWORK",
    message: (error as Error).message,
    refused: (error as { code?: string }).code === "ECONNREFUSED",
  };
}

function networkFailure(error: unknown): never {
  throw networkFailureOf(error);
}

async function post(url: string, body: string, timeoutMs: number, signature?: SignedHeaders) {
  try {
    return await sendToNode(agent, { method: "POST", url, body, signature, timeoutMs });
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
      const signature = signatureOf(message);
      const response = await post(message.url, message.body, message.timeoutMs, signature);
      const text = await response.body.text();
      if (response.statusCode === 401) throw REFUSED_CREDENTIALS;
      checkAnswer(response.headers, signature, text);
      const answer = JSON.parse(text) as { result?: unknown; error?: unknown };
      if (response.statusCode !== 200)
        throw answer.error ?? { code: "NETWORK", message: `HTTP ${response.statusCode}` };
      return answer.result;
    }
    case "open": {
      const signature = signatureOf(message);
      const response = await post(message.url, message.body, message.timeoutMs, signature);
      if (response.statusCode !== 200) {
        const text = await response.body.text();
        if (response.statusCode === 401) throw REFUSED_CREDENTIALS;
        checkAnswer(response.headers, signature, text);
        const answer = JSON.parse(text) as { error?: unknown };
        throw answer.error ?? { code: "NETWORK", message: `HTTP ${response.statusCode}` };
      }
      return streams.open(
        streamFromNode(response.body, secret, signature, {
          broke: (error) => networkFailureOf(error),
          cut: () => ({
            code: "NETWORK",
            message: "the stream ended without an end marker; the node may have gone",
          }),
          forged: () => FORGED,
          malformed: (line) => ({
            code: "NETWORK",
            message: `the node sent a stream line that is not a JSON object: ${line.slice(0, 200)}`,
          }),
          failed: (error) => error,
        }),
      );
    }
    case "next":
    case "close":
      return streams.serve(message);
  }
}

if (parentPort) serveBlocking(parentPort, serve);
