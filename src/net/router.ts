/**
 * Where a remote call goes: the nodes that serve the endpoint, fewest calls in flight first. A
 * call that never reached a node moves on to the next one; a call that may have run is never
 * repeated. When no node serves it, the error names the real cause: a node that has the
 * endpoint but refuses this one, a node that serves it but is down, or addresses that could
 * not be asked.
 */
import type { Call } from "../core/call.js";
import type { RemoteRoutes } from "../core/ports.js";
import {
  type CallMode,
  type CallSite,
  callErrors,
  NotDelivered,
  type RequestError,
} from "../errors.js";
import { inTurn, inTurnSync, streamInTurn, streamInTurnSync } from "./failover.js";
import type { NodeRegistry, RemoteNode } from "./nodes.js";
import type { BlockingRoute } from "./sync-remote.js";
import { wireCall } from "./wire.js";

export interface RouterOptions {
  nodes: NodeRegistry;
  /** This node's hostname, sent with each call as its author's host. */
  hostname: string;
  /** How blocking calls reach the nodes (the mesh's). */
  blocking: BlockingRoute;
  /** Instance ids of nodes running in this process (blocking calls to them would deadlock). */
  inProcess: ReadonlySet<string>;
  /** A blocking call found nothing listening at the node's address. */
  refused(node: RemoteNode): void;
}

/** Local failures that another node may explain better (it has the plugin, or refuses it). */
const NOT_HERE: ReadonlySet<string> = new Set(["PLUGIN_NOT_FOUND", "ENDPOINT_NOT_FOUND"]);

export class RemoteRouter implements RemoteRoutes {
  readonly #nodes: NodeRegistry;
  readonly #options: RouterOptions;

  constructor(options: RouterOptions) {
    this.#nodes = options.nodes;
    this.#options = options;
  }

  #named(call: Call): string | undefined {
    const host = call.host;
    return host === undefined || host === "any" || host === "remote" ? undefined : host;
  }

  canServe(call: Call): boolean {
    return (
      this.#nodes.candidates(call.plugin, call.method, call.pluginUuid, this.#named(call)).length >
      0
    );
  }

  elsewhere(call: Call, local: RequestError): RequestError {
    if (local.code !== "PLUGIN_NOT_FOUND" || call.pluginUuid !== undefined) return local;
    const node = this.#nodes.candidates(call.plugin, call.method, undefined, undefined)[0];
    if (node === undefined) return local;
    // Over NATS a node has no address of its own to call it at, only its hostname.
    const at = node.port > 0 ? ` (${node.address}:${node.port})` : "";
    return local.withDetail(`; node "${node.hostname}"${at} has it`);
  }

  explain(call: Call, local: RequestError): RequestError {
    if (!NOT_HERE.has(local.code)) return local;
    return this.#whyNone(call, undefined, local);
  }

  /**
   * The nodes to try, or the reason there are none. A call of the wrong kind for the endpoint
   * (a stream of a function, say) fails here, as it would locally, rather than on the node.
   */
  #candidates(call: Call, mode: CallMode): RemoteNode[] {
    const hostname = this.#named(call);
    if (hostname !== undefined) {
      const named = this.#nodes.withHostname(hostname);
      if (named.length === 0) {
        const known = this.#nodes.all().find((node) => node.hostname === hostname);
        throw callErrors.noNode(
          call,
          !known
            ? `no node named "${hostname}" is known${this.#notAsked()}`
            : `node "${hostname}" is ${whyDown(known)}`,
        );
      }
      if (named.length > 1) {
        throw callErrors.noNode(
          call,
          `${named.length} nodes claim the hostname "${hostname}" (${named.map((n) => `${n.address}:${n.port}`).join(", ")}); give each a unique general.hostname`,
        );
      }
    }
    const nodes = this.#nodes.candidates(call.plugin, call.method, call.pluginUuid, hostname);
    const first = nodes[0];
    if (first === undefined) throw this.#whyNone(call, hostname);
    const kind = first.endpoints.get(call.plugin)?.get(call.method)?.kind;
    const stream = mode === "executeStream" || mode === "executeStreamSync";
    if (kind !== undefined && kind.endsWith("generator") !== stream) {
      throw callErrors.wrongKind(siteOn(call, first.hostname), kind, mode);
    }
    return nodes;
  }

  /**
   * Why no node (or not the node `hostname`) serves the call: ACCESS_DENIED from a node that
   * has the endpoint but keeps it closed to this one; with no host named, ENDPOINT_NOT_FOUND
   * from a node that has the plugin (where this node has not) but no such endpoint; else
   * `local` (this node's own PLUGIN_NOT_FOUND or ENDPOINT_NOT_FOUND) or NO_NODE, naming a node
   * that serves it but is down, or else the addresses that could not be asked.
   */
  #whyNone(call: Call, hostname: string | undefined, local?: RequestError): RequestError {
    const nodes = this.#nodes
      .all()
      .filter((node) => hostname === undefined || node.hostname === hostname);
    for (const node of nodes) {
      const reason = node.alive ? node.refuses(call.plugin, call.method) : undefined;
      if (reason !== undefined) {
        return callErrors.accessDenied(siteOn(call, node.hostname), reason);
      }
    }
    // Any node would do, and the plugin is up on one but has no such endpoint: say that, with
    // what it does have, not that no plugin of that name exists. (A node named by `host` that
    // lacks it is NO_NODE, as below.)
    if (
      hostname === undefined &&
      call.pluginUuid === undefined &&
      (local === undefined || local.code === "PLUGIN_NOT_FOUND")
    ) {
      for (const node of nodes) {
        const endpoints = node.alive ? node.endpoints.get(call.plugin) : undefined;
        if (endpoints && !endpoints.has(call.method)) {
          return callErrors.endpointNotFound(siteOn(call, node.hostname), [...endpoints.keys()]);
        }
      }
    }
    const down = nodes.find(
      (node) => !node.alive && node.serves(call.plugin, call.method, call.pluginUuid),
    );
    const detail = down
      ? `; node "${down.hostname}" serves it but is ${whyDown(down)}`
      : this.#notAsked();
    if (local) return detail ? local.withDetail(detail) : local;
    const where = hostname !== undefined ? `node "${hostname}" does not serve` : "no node serves";
    const instance = call.pluginUuid ? ` on instance ${call.pluginUuid}` : "";
    return callErrors.noNode(
      call,
      `${where} ${call.plugin}.${call.method}${instance} to other nodes${detail}`,
    );
  }

  /** The addresses this node could not ask what they serve, and why; "" when there are none. */
  #notAsked(): string {
    const unreachable = [...this.#nodes.unreachable];
    if (unreachable.length === 0) return "";
    return `; not asked, as they could not be reached: ${unreachable.map(([address, why]) => `${address} (${why})`).join("; ")}`;
  }

  #unreachable(call: Call, reasons: string[]): RequestError {
    return callErrors.network(
      call,
      `no node could be reached (${reasons.join("; ")}); the call was not sent`,
    );
  }

  execute(call: Call, args: unknown): Promise<unknown> {
    const nodes = this.#candidates(call, "execute");
    // One node: its promise as it is, without another async layer per call.
    if (nodes.length === 1) {
      return (nodes[0] as RemoteNode).connection
        .execute(call, args, this.#options.hostname)
        .catch((error: unknown) => {
          throw error instanceof NotDelivered ? this.#unreachable(call, [error.message]) : error;
        });
    }
    return inTurn(
      nodes,
      (node) => node.connection.execute(call, args, this.#options.hostname),
      notDelivered,
      (reasons) => this.#unreachable(call, reasons),
    );
  }

  executeStream(call: Call, args: unknown): AsyncGenerator<unknown, void, undefined> {
    return streamInTurn(
      this.#candidates(call, "executeStream"),
      (node) => node.connection.stream(call, args, this.#options.hostname),
      notDelivered,
      (reasons) => this.#unreachable(call, reasons),
    );
  }

  /** The candidates a blocking call may go to, in the order to try them. */
  #syncTargets(call: Call, mode: CallMode): RemoteNode[] {
    const nodes = this.#candidates(call, mode).filter(
      (node) => !this.#options.inProcess.has(node.instance),
    );
    if (nodes.length === 0) {
      throw callErrors.wouldDeadlock(
        call,
        "the node that serves it runs in this process, on the thread a blocking call would block; use the async form",
      );
    }
    return nodes;
  }

  /** A blocking call that did not reach `node`: the reason, and the node marked down if nothing listens. */
  readonly #missed = (node: RemoteNode, error: unknown): string | undefined => {
    if (!(error instanceof NotDelivered)) return undefined;
    if (error.refused) this.#options.refused(node);
    return `${node.hostname}: ${error.message}`;
  };

  executeSync(call: Call, args: unknown): unknown {
    const body = JSON.stringify(wireCall(call, args, this.#options.hostname));
    return inTurnSync(
      this.#syncTargets(call, "executeSync"),
      (node) => this.#options.blocking.execute(call, body, node),
      this.#missed,
      (reasons) => this.#unreachable(call, reasons),
    );
  }

  executeStreamSync(call: Call, args: unknown): Generator<unknown, void, undefined> {
    const body = JSON.stringify(wireCall(call, args, this.#options.hostname));
    return streamInTurnSync(
      this.#syncTargets(call, "executeStreamSync"),
      (node) => this.#options.blocking.stream(call, body, node),
      this.#missed,
      (reasons) => this.#unreachable(call, reasons),
    );
  }
}

/** A call that never reached the node: the next one may take it. */
function notDelivered(_node: RemoteNode, error: unknown): string | undefined {
  return error instanceof NotDelivered ? error.message : undefined;
}

/** Why a node that is not alive takes no calls, for messages. */
function whyDown(node: RemoteNode): string {
  return node.leaving
    ? "shutting down"
    : `down (last seen ${new Date(node.lastSeen).toISOString()})`;
}

/** The call, as an error raised about it on the node `hostname`. */
function siteOn(call: Call, hostname: string): CallSite {
  return { requestId: call.requestId, plugin: call.plugin, method: call.method, host: hostname };
}
