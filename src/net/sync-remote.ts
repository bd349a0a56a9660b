/**
 * Blocking calls to other nodes, for `executeSync` and `executeStreamSync` on the main thread:
 * a helper thread does the HTTP request while this thread waits for its answer.
 */
import { Worker } from "node:worker_threads";
import { BlockingClient, readBlocking, type StreamRequest } from "../core/blocking.js";
import type { Call } from "../core/call.js";
import { BlockingTimeout, callErrors, NotDelivered, type RequestError } from "../errors.js";
import { type PeerIdentity, signRequest } from "./auth.js";
import type { PeerTls } from "./tls.js";
import { errorFromWire } from "./wire.js";

export type BridgeRequest =
  | {
      kind: "execute" | "open";
      url: string;
      body: string;
      timeoutMs: number;
      headers: Record<string, string>;
    }
  | StreamRequest;

/** What the bridge thread is started with. */
export interface BridgeSetup {
  /** Shared secret, to check that answers come from a node that knows it. */
  secret: string;
  tls: PeerTls;
}

/** The node a blocking call goes to. */
export interface SyncTarget {
  hostname: string;
  /** What requests to it are signed for. */
  identity(): PeerIdentity;
}

/** How long a blocking call waits when the caller set no timeout. */
const DEFAULT_WAIT_MS = 5 * 60_000;

export class SyncRemote {
  #worker: Worker | undefined;
  #client: BlockingClient<BridgeRequest> | undefined;
  readonly #secret: string;
  readonly #tls: PeerTls;

  constructor(secret: string, tls: PeerTls) {
    this.#secret = secret;
    this.#tls = tls;
  }

  #bridge(): BlockingClient<BridgeRequest> {
    if (!this.#client) {
      const setup: BridgeSetup = { secret: this.#secret, tls: this.#tls };
      this.#worker = new Worker(new URL("./sync-bridge-worker.js", import.meta.url), {
        workerData: setup,
      });
      this.#worker.unref();
      this.#client = new BlockingClient<BridgeRequest>(this.#worker);
    }
    return this.#client;
  }

  #ask(call: Call, request: BridgeRequest, host: string): unknown {
    const wait = call.remaining() ?? DEFAULT_WAIT_MS;
    try {
      // A little longer than the node's own deadline, so its TIMEOUT answer arrives first.
      return this.#bridge().call(request, wait + 1000);
    } catch (error) {
      if (error instanceof BlockingTimeout) throw callErrors.timeout(call, call.timeout ?? wait);
      const wire = error as { code?: string; message?: string; refused?: boolean };
      if (wire.code === "NOT_DELIVERED") {
        throw new NotDelivered(wire.message ?? "not delivered", wire.refused === true);
      }
      if (wire.code === "NETWORK") {
        throw callErrors.network(
          call,
          `${host}: ${wire.message}; the call may have run there, so it is not repeated`,
        );
      }
      throw errorFromWire(error, host) as RequestError;
    }
  }

  /** Signature headers for a request to `path` of `target`, with a secret. */
  #sign(target: SyncTarget, path: string, body: string): Record<string, string> {
    return this.#secret
      ? { ...signRequest(this.#secret, "POST", target.identity(), path, body) }
      : {};
  }

  execute(call: Call, baseUrl: string, body: string, target: SyncTarget): unknown {
    const timeoutMs = call.remaining() ?? DEFAULT_WAIT_MS;
    const headers = this.#sign(target, "/execute", body);
    return this.#ask(
      call,
      { kind: "execute", url: `${baseUrl}/execute`, body, timeoutMs, headers },
      target.hostname,
    );
  }

  *stream(
    call: Call,
    baseUrl: string,
    body: string,
    target: SyncTarget,
  ): Generator<unknown, void, undefined> {
    const timeoutMs = call.remaining() ?? DEFAULT_WAIT_MS;
    const headers = this.#sign(target, "/execute_stream", body);
    // The bridge lets go of a failed stream itself; a close after a timeout would wait again.
    yield* readBlocking(
      (request: BridgeRequest) => this.#ask(call, request, target.hostname),
      { kind: "open", url: `${baseUrl}/execute_stream`, body, timeoutMs, headers },
      { closeAfterError: false },
    );
  }

  async close(): Promise<void> {
    this.#client?.close();
    await this.#worker?.terminate();
  }
}
