/**
 * Where a remote call goes: the nodes that serve the endpoint, fewest calls in flight first. A
 * call that never reached a node moves on to the next one; a call that may have run is never
 * repeated.
 */
import type { Call } from "../core/call.js";
import type { RemoteRoutes } from "../core/dispatcher.js";
import { callErrors, type RequestError } from "../errors.js";
import { hostForUrl } from "./address.js";
import { NotDelivered } from "./connection.js";
import type { NodeRegistry, RemoteNode } from "./nodes.js";
import { SyncNotDelivered, type SyncRemote } from "./sync-remote.js";
import { wireCall } from "./wire.js";

export class RemoteRouter implements RemoteRoutes {
  readonly #nodes: NodeRegistry;
  readonly #hostname: string;
  readonly #sync: SyncRemote;
  readonly #inProcess: ReadonlySet<string>;
  /** "http" or "https", as the cluster runs. */
  readonly #scheme: string;

  constructor(
    nodes: NodeRegistry,
    hostname: string,
    sync: SyncRemote,
    inProcess: ReadonlySet<string>,
    scheme: string,
  ) {
    this.#nodes = nodes;
    this.#hostname = hostname;
    this.#sync = sync;
    this.#inProcess = inProcess;
    this.#scheme = scheme;
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

  /** The nodes to try, or the reason there are none. */
  #candidates(call: Call): RemoteNode[] {
    const hostname = this.#named(call);
    if (hostname !== undefined) {
      const named = this.#nodes.withHostname(hostname);
      if (named.length === 0) {
        const known = this.#nodes.all().find((node) => node.hostname === hostname);
        throw callErrors.noNode(
          call,
          !known
            ? `no node named "${hostname}" is known`
            : known.leaving
              ? `node "${hostname}" is shutting down`
              : `node "${hostname}" is down (last seen ${new Date(known.lastSeen).toISOString()})`,
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
    if (nodes.length === 0) {
      const where = hostname !== undefined ? `node "${hostname}"` : "no remote node";
      throw callErrors.noNode(
        call,
        `${where} ${hostname !== undefined ? "does not serve" : "serves"} ${call.plugin}.${call.method}${call.pluginUuid ? ` on instance ${call.pluginUuid}` : ""} to other nodes`,
      );
    }
    return nodes;
  }

  #unreachable(call: Call, reasons: string[]): RequestError {
    return callErrors.network(
      call,
      `no node could be reached (${reasons.join("; ")}); the call was not sent`,
    );
  }

  execute(call: Call, args: unknown): Promise<unknown> {
    const nodes = this.#candidates(call);
    // One node: its promise as it is, without another async layer per call.
    if (nodes.length === 1) {
      return (nodes[0] as RemoteNode).connection
        .execute(call, args, this.#hostname)
        .catch((error: unknown) => {
          throw error instanceof NotDelivered ? this.#unreachable(call, [error.message]) : error;
        });
    }
    return this.#executeOnAny(call, args, nodes);
  }

  async #executeOnAny(call: Call, args: unknown, nodes: RemoteNode[]): Promise<unknown> {
    const reasons: string[] = [];
    for (const node of nodes) {
      try {
        return await node.connection.execute(call, args, this.#hostname);
      } catch (error) {
        if (!(error instanceof NotDelivered)) throw error;
        reasons.push(error.message);
      }
    }
    throw this.#unreachable(call, reasons);
  }

  async *executeStream(call: Call, args: unknown): AsyncGenerator<unknown, void, undefined> {
    const reasons: string[] = [];
    for (const node of this.#candidates(call)) {
      const stream = node.connection.stream(call, args, this.#hostname);
      let first: IteratorResult<unknown, void>;
      try {
        first = await stream.next();
      } catch (error) {
        if (!(error instanceof NotDelivered)) throw error;
        reasons.push(error.message);
        continue;
      }
      if (first.done) return;
      try {
        yield first.value;
        yield* stream;
      } finally {
        // A consumer that stops at the first item must still cancel the remote generator.
        await stream.return();
      }
      return;
    }
    throw this.#unreachable(call, reasons);
  }

  /** Each candidate's base URL, in the order to try them, for a blocking call. */
  #syncTargets(call: Call): Array<{ url: string; host: string }> {
    const nodes = this.#candidates(call).filter((node) => !this.#inProcess.has(node.instance));
    if (nodes.length === 0) {
      throw callErrors.wouldDeadlock(
        call,
        "the node that serves it runs in this process, on the thread a blocking call would block; use the async form",
      );
    }
    return nodes.map((node) => ({
      url: `${this.#scheme}://${hostForUrl(node.address)}:${node.port}`,
      host: node.hostname,
    }));
  }

  executeSync(call: Call, args: unknown): unknown {
    const body = JSON.stringify(wireCall(call, args, this.#hostname));
    const reasons: string[] = [];
    for (const { url, host } of this.#syncTargets(call)) {
      try {
        return this.#sync.execute(call, url, body, host);
      } catch (error) {
        if (!(error instanceof SyncNotDelivered)) throw error;
        reasons.push(`${host}: ${error.message}`);
      }
    }
    throw this.#unreachable(call, reasons);
  }

  *executeStreamSync(call: Call, args: unknown): Generator<unknown, void, undefined> {
    const body = JSON.stringify(wireCall(call, args, this.#hostname));
    const reasons: string[] = [];
    for (const { url, host } of this.#syncTargets(call)) {
      const stream = this.#sync.stream(call, url, body, host);
      let first: IteratorResult<unknown, void>;
      try {
        first = stream.next();
      } catch (error) {
        if (!(error instanceof SyncNotDelivered)) throw error;
        reasons.push(`${host}: ${error.message}`);
        continue;
      }
      if (first.done) return;
      try {
        yield first.value;
        yield* stream;
      } finally {
        stream.return();
      }
      return;
    }
    throw this.#unreachable(call, reasons);
  }
}
