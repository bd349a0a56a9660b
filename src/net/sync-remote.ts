/**
 * Blocking calls to other nodes, for `executeSync` and `executeStreamSync` on the main thread:
 * a helper thread makes the call while this thread waits for its answer. Each mesh gives the
 * router its `BlockingRoute`: over the channel, HTTP requests from `sync-bridge-worker.ts`
 * (`HttpBlocking`, here); over NATS, pipes from a thread of its own
 * (`transports/nats/blocking.ts`).
 */
import { Worker } from "node:worker_threads";
import { BlockingClient, readBlocking, type StreamRequest } from "../core/blocking.js";
import type { Call } from "../core/call.js";
import { BlockingTimeout, callErrors, NotDelivered, type RequestError } from "../errors.js";
import { hostForUrl } from "./address.js";
import { type PeerIdentity, signRequest } from "./auth.js";
import { type PeerTls, schemeOf } from "./tls.js";
import { errorFromWire } from "./wire.js";

/** The node a blocking call goes to. */
export interface BlockingTarget {
  hostname: string;
  address: string;
  port: number;
  /** What requests to it are signed for. */
  identity(): PeerIdentity;
}

/** How blocking calls reach the nodes of one transport; `body` is the call's wire JSON. */
export interface BlockingRoute {
  /** The result; `NotDelivered` if the call never reached the node. */
  execute(call: Call, body: string, node: BlockingTarget): unknown;
  /** The items; `NotDelivered` from the first step if the stream never reached the node. */
  stream(call: Call, body: string, node: BlockingTarget): Generator<unknown, void, undefined>;
  close(): Promise<void>;
}

/** How long a blocking call waits when the caller set no timeout. */
const DEFAULT_WAIT_MS = 5 * 60_000;

/**
 * A helper thread (`worker`, started on first use with `setup`) that serves blocking requests,
 * and what its errors mean for the call: `{code: "NOT_DELIVERED"}` never reached the node (the
 * router may try another), `{code: "NETWORK"}` may have run there, anything else is the node's
 * own error.
 */
export class BlockingBridge<R> {
  readonly #url: URL;
  readonly #setup: unknown;
  #worker: Worker | undefined;
  #client: BlockingClient<R | StreamRequest> | undefined;

  constructor(worker: URL, setup: unknown) {
    this.#url = worker;
    this.#setup = setup;
  }

  ask(call: Call, request: R | StreamRequest, host: string): unknown {
    if (!this.#client) {
      this.#worker = new Worker(this.#url, { workerData: this.#setup });
      this.#worker.unref();
      this.#client = new BlockingClient<R | StreamRequest>(this.#worker);
    }
    const wait = call.remaining() ?? DEFAULT_WAIT_MS;
    try {
      // A little longer than the node's own deadline, so its TIMEOUT answer arrives first.
      return this.#client.call(request, wait + 1000);
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

  /** Reads a stream the thread opens for `open`; it lets go of a failed stream itself. */
  stream(call: Call, open: R, host: string): Generator<unknown, void, undefined> {
    return readBlocking((request: R | StreamRequest) => this.ask(call, request, host), open, {
      closeAfterError: false,
    });
  }

  async close(): Promise<void> {
    this.#client?.close();
    await this.#worker?.terminate();
  }
}

export type BridgeRequest =
  | {
      kind: "execute" | "open";
      url: string;
      body: string;
      timeoutMs: number;
      headers: Record<string, string>;
    }
  | StreamRequest;

/** What the HTTP bridge thread is started with. */
export interface BridgeSetup {
  /** Shared secret, to check that answers come from a node that knows it. */
  secret: string;
  tls: PeerTls;
}

/** Blocking calls over HTTP (`POST /execute`, `/execute_stream`), for nodes on the channel. */
export class HttpBlocking implements BlockingRoute {
  readonly #bridge: BlockingBridge<BridgeRequest>;
  readonly #secret: string;
  readonly #scheme: string;

  constructor(secret: string, tls: PeerTls) {
    this.#secret = secret;
    this.#scheme = schemeOf(tls).http;
    this.#bridge = new BlockingBridge(new URL("./sync-bridge-worker.js", import.meta.url), {
      secret,
      tls,
    } satisfies BridgeSetup);
  }

  /** The request to `path` of `node`, signed with a secret. */
  #request(call: Call, node: BlockingTarget, path: string, body: string, kind: "execute" | "open") {
    const headers = this.#secret
      ? { ...signRequest(this.#secret, "POST", node.identity(), path, body) }
      : {};
    const url = `${this.#scheme}://${hostForUrl(node.address)}:${node.port}${path}`;
    const timeoutMs = call.remaining() ?? DEFAULT_WAIT_MS;
    return { kind, url, body, timeoutMs, headers } satisfies BridgeRequest;
  }

  execute(call: Call, body: string, node: BlockingTarget): unknown {
    return this.#bridge.ask(
      call,
      this.#request(call, node, "/execute", body, "execute"),
      node.hostname,
    );
  }

  stream(call: Call, body: string, node: BlockingTarget): Generator<unknown, void, undefined> {
    return this.#bridge.stream(
      call,
      this.#request(call, node, "/execute_stream", body, "open"),
      node.hostname,
    );
  }

  close(): Promise<void> {
    return this.#bridge.close();
  }
}
