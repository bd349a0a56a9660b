/**
 * HTTP requests to other nodes (discovery, heartbeats) and to any node from tools: one undici
 * agent, which keeps a keep-alive pool per node.
 */
import { Agent, request } from "undici";
import { NetworkRequestError } from "../errors.js";
import { parseJson } from "./wire.js";

export interface HttpClientOptions {
  connectTimeoutMs: number;
  maxDepth: number;
}

export class HttpClient {
  readonly #agent: Agent;
  readonly #maxDepth: number;

  constructor(options: HttpClientOptions) {
    this.#agent = new Agent({
      keepAliveTimeout: 30_000,
      connections: 8,
      connect: { timeout: options.connectTimeoutMs },
    });
    this.#maxDepth = options.maxDepth;
  }

  /**
   * POSTs JSON and returns the status and parsed answer. Throws `NetworkRequestError` when the
   * node cannot be reached or answers with something that is not JSON.
   */
  async postJson(
    url: string,
    body: unknown,
    timeoutMs: number,
  ): Promise<{ status: number; body: unknown }> {
    let response: Awaited<ReturnType<typeof request>>;
    try {
      response = await request(url, {
        method: "POST",
        dispatcher: this.#agent,
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
    } catch (error) {
      throw new NetworkRequestError(
        "NETWORK",
        `${url}: ${(error as Error).message}`,
        {},
        { cause: error },
      );
    }
    const text = await response.body.text();
    try {
      return {
        status: response.statusCode,
        body: text === "" ? undefined : parseJson(text, this.#maxDepth),
      };
    } catch (error) {
      throw new NetworkRequestError(
        "NETWORK",
        `${url} answered HTTP ${response.statusCode} with a body that is not JSON: ${(error as Error).message}`,
      );
    }
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }
}
