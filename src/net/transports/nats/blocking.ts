/**
 * Blocking calls (`executeSync`, `executeStreamSync`) to nodes reached over NATS, for the main
 * thread: a helper thread with its own NATS connection (blocking-worker.ts) runs each call
 * while this thread waits for its answer, as the HTTP bridge does for nodes on the channel.
 */
import type { NatsConfig } from "../../../config/types.js";
import type { StreamRequest } from "../../../core/blocking.js";
import type { Call } from "../../../core/call.js";
import type { PeerIdentity } from "../../auth.js";
import { BlockingBridge, type BlockingRoute, type BlockingTarget } from "../../sync-remote.js";

/** What the thread is started with. */
export interface NatsBlockingSetup {
  nats: NatsConfig;
  secret: string;
  hostname: string;
  instance: string;
  maxPacketBytes: number;
  heartbeatMs: number;
  livenessMs: number;
}

/** The node a call goes to: its instance (what the hello is signed for) and name. */
export type NatsTarget = PeerIdentity & { hostname: string };

export type NatsBlockingRequest =
  | { kind: "execute" | "open"; target: NatsTarget; body: string }
  | StreamRequest;

export class NatsBlocking implements BlockingRoute {
  readonly #bridge: BlockingBridge<NatsBlockingRequest>;

  constructor(setup: NatsBlockingSetup) {
    this.#bridge = new BlockingBridge(new URL("./blocking-worker.js", import.meta.url), setup);
  }

  #target(node: BlockingTarget): NatsTarget {
    return { ...node.identity(), hostname: node.hostname };
  }

  execute(call: Call, body: string, node: BlockingTarget): unknown {
    const request = { kind: "execute" as const, target: this.#target(node), body };
    return this.#bridge.ask(call, request, node.hostname);
  }

  stream(call: Call, body: string, node: BlockingTarget): Generator<unknown, void, undefined> {
    const request = { kind: "open" as const, target: this.#target(node), body };
    return this.#bridge.stream(call, request, node.hostname);
  }

  close(): Promise<void> {
    return this.#bridge.close();
  }
}
