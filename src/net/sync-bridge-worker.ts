/**
 * The thread that makes blocking remote calls possible: the main thread sleeps in
 * `Atomics.wait` while this one talks HTTP to the other node, then wakes it with the answer.
 */
import { parentPort } from "node:worker_threads";
import { Agent, request } from "undici";
import { serveBlocking } from "../core/blocking.js";
import type { BridgeRequest, BridgeStep } from "./sync-remote.js";

const agent = new Agent({ keepAliveTimeout: 30_000, connections: 4 });
const streams = new Map<number, AsyncIterator<string>>();
let nextStream = 0;

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

async function* lines(body: AsyncIterable<Buffer>): AsyncGenerator<string> {
  let rest = "";
  for await (const chunk of body) {
    rest += chunk.toString("utf8");
    let newline = rest.indexOf("\n");
    while (newline >= 0) {
      yield rest.slice(0, newline);
      rest = rest.slice(newline + 1);
      newline = rest.indexOf("\n");
    }
  }
  if (rest !== "") yield rest;
}

async function serve(message: BridgeRequest): Promise<unknown> {
  switch (message.kind) {
    case "execute": {
      const response = await post(message.url, message.body, message.timeoutMs, message.headers);
      const text = await response.body.text();
      const answer = JSON.parse(text) as { result?: unknown; error?: unknown };
      if (response.statusCode !== 200)
        throw answer.error ?? { code: "NETWORK", message: `HTTP ${response.statusCode}` };
      return answer.result;
    }
    case "open": {
      const response = await post(message.url, message.body, message.timeoutMs, message.headers);
      if (response.statusCode !== 200) {
        const answer = JSON.parse(await response.body.text()) as { error?: unknown };
        throw answer.error ?? { code: "NETWORK", message: `HTTP ${response.statusCode}` };
      }
      const id = ++nextStream;
      streams.set(id, lines(response.body)[Symbol.asyncIterator]());
      return id;
    }
    case "next": {
      const stream = streams.get(message.stream);
      if (!stream) throw { code: "NETWORK", message: "the stream is closed" };
      let step: IteratorResult<string>;
      try {
        step = await stream.next();
      } catch (error) {
        streams.delete(message.stream);
        return networkFailure(error);
      }
      if (step.done) {
        streams.delete(message.stream);
        throw {
          code: "NETWORK",
          message: "the stream ended without an end marker; the node may have gone",
        };
      }
      const line = JSON.parse(step.value) as { item?: unknown; end?: boolean; error?: unknown };
      if (line.error !== undefined) {
        streams.delete(message.stream);
        throw line.error;
      }
      if (line.end) {
        streams.delete(message.stream);
        return { done: true } satisfies BridgeStep;
      }
      return { done: false, value: line.item } satisfies BridgeStep;
    }
    case "close": {
      const stream = streams.get(message.stream);
      streams.delete(message.stream);
      await stream?.return?.();
      return undefined;
    }
  }
}

if (parentPort) serveBlocking(parentPort, serve);
