/**
 * What happens to the nodes this one knows, whatever found them and whatever carries their
 * calls: a node is added from its info answer (a new instance at the place of an old one, or
 * with the hostname of one that is down, replaces it), marked down when it cannot be reached,
 * brought back once a connection to it works again, and forgotten when it is gone for good.
 * Discovery (how nodes are found and heard) and the transport (how calls reach them) are the
 * caller's: the channel's in manager.ts, NATS's in transports/nats/.
 */
import type { NodeInfo } from "../core/types.js";
import type { Logger } from "../log.js";
import type { NodeConnection } from "./connection.js";
import { type NodeRegistry, RemoteNode } from "./nodes.js";
import type { InfoAnswer } from "./wire.js";

/** A peer's clock this far from this node's is worth a warning. */
const SKEW_WARNING_MS = 2000;

export interface MembershipOptions {
  /** This node's hostname. */
  hostname: string;
  /** How the nodes of this membership are reached. */
  transport: NodeInfo["transport"];
  logger: Logger;
  nodes: NodeRegistry;
  emit(event: "node:up" | "node:down", node: NodeInfo): void;
  /** The connection that carries calls to `node`. */
  connect(node: RemoteNode): NodeConnection;
  /** Asks `node` once for its info, the transport's way, and adopts the answer. */
  askInfo(node: RemoteNode): Promise<void>;
  /** Whether `node` still answers as itself (false: another process took its place, or none). */
  stillThere(node: RemoteNode): Promise<boolean>;
  /** This node's endpoint-map version now. */
  version(): number;
  /** `node` is forgotten: discovery drops what it keeps for it. */
  forgotten?(node: RemoteNode): void;
}

export class Membership {
  readonly #options: MembershipOptions;
  readonly #nodes: NodeRegistry;
  readonly #logger: Logger;
  /**
   * Which version of this node's endpoint map each node (by instance) was last shown, in an
   * info answer or request: a node shown an older one is told of the change.
   */
  readonly shown = new Map<string, number>();
  readonly #recovering = new Set<RemoteNode>();
  /** Nodes being asked for their info again, and whether to ask once more afterwards. */
  readonly #refreshing = new Map<RemoteNode, { again: boolean }>();
  /** Nodes whose clock skew was reported. */
  readonly #skewReported = new WeakSet<RemoteNode>();
  #closed = false;

  constructor(options: MembershipOptions) {
    this.#options = options;
    this.#nodes = options.nodes;
    this.#logger = options.logger;
  }

  /** From now on nothing is added, brought back or marked down. */
  close(): void {
    this.#closed = true;
  }

  /**
   * Adds a node from its info answer, or refreshes the one already known. A new instance
   * replaces every node it shows to be gone: one at the same address (the process there
   * ended), and one with the same hostname that is down. One with the same hostname that is
   * up elsewhere is asked who it is: a conflict only if it still answers as itself.
   */
  adopt(
    answer: InfoAnswer,
    clockOffsetMs: number,
    address: string,
    port: number,
    rttMs?: number,
  ): RemoteNode {
    const known = this.#nodes.get(answer.instance);
    if (known) {
      known.update(answer);
      known.clockOffsetMs = clockOffsetMs;
      if (rttMs !== undefined) known.rttMs = rttMs;
      this.heard(known);
      return known;
    }
    let restarted = false;
    const twins: RemoteNode[] = [];
    for (const other of this.#nodes.all()) {
      const sameName = other.hostname === answer.hostname;
      if ((other.address === address && other.port === port) || (sameName && !other.alive)) {
        this.forget(other);
        restarted ||= sameName;
      } else if (sameName) {
        twins.push(other);
      }
    }
    const node = new RemoteNode(answer, address, port, this.#options.transport, (self) =>
      this.#options.connect(self),
    );
    node.clockOffsetMs = clockOffsetMs;
    node.rttMs = rttMs;
    this.#nodes.add(node);
    this.#nodes.unreachable.delete(`${address}:${port}`);
    const where = `at ${node.place} (${node.endpoints.size} plugin(s))`;
    this.#logger.info(
      restarted
        ? `Node "${node.hostname}" restarted ${where}`
        : `Found node "${node.hostname}" ${where}`,
    );
    if (answer.hostname === this.#options.hostname) {
      this.#logger.error(
        `The node at ${node.place} claims this node's own hostname "${answer.hostname}"; calls naming that host stay on this node. Give each node a unique general.hostname`,
      );
    }
    for (const twin of twins) void this.#checkTwin(twin, node);
    this.#reportSkew(node);
    this.#options.emit("node:up", node.info());
    // This node changed since the new one last saw it (it was still starting, say): tell it.
    if (this.shown.get(node.instance) !== this.#options.version()) void this.refresh(node);
    return node;
  }

  /**
   * Asks a known node for its info again; a new instance there replaces it. One at a time per
   * node; a reason to ask that comes up meanwhile (its connection closed, say) asks once more
   * afterwards, since the answer on its way may predate it.
   */
  async refresh(node: RemoteNode): Promise<void> {
    const running = this.#refreshing.get(node);
    if (running) {
      running.again = true;
      return;
    }
    const state = { again: false };
    this.#refreshing.set(node, state);
    try {
      do {
        state.again = false;
        await this.#options.askInfo(node);
      } while (state.again && !this.#closed && this.#nodes.get(node.instance) === node);
    } finally {
      this.#refreshing.delete(node);
    }
  }

  /**
   * Two nodes claim one hostname. The older one is asked who it is: if it answers as itself,
   * both are up and the conflict is reported; otherwise the newer one took its place.
   */
  async #checkTwin(older: RemoteNode, newer: RemoteNode): Promise<void> {
    const same = await this.#options.stillThere(older);
    if (this.#nodes.get(older.instance) !== older || this.#nodes.get(newer.instance) !== newer) {
      return;
    }
    if (!same) {
      this.forget(older);
      return;
    }
    this.#logger.error(
      `Two nodes claim the hostname "${newer.hostname}": ${older.place} and ${newer.place}. Calls naming that host fail until one is renamed; give each node a unique general.hostname`,
    );
  }

  /** Drops a node that is gone for good (it ended, or a new instance took its place). */
  forget(node: RemoteNode): void {
    this.#nodes.remove(node);
    this.shown.delete(node.instance);
    this.#options.forgotten?.(node);
    node.connection.close();
    if (node.alive) {
      node.alive = false;
      this.#options.emit("node:down", node.info());
    }
  }

  #reportSkew(node: RemoteNode): void {
    const skew = node.clockOffsetMs;
    if (Math.abs(skew) < SKEW_WARNING_MS || this.#skewReported.has(node)) return;
    this.#skewReported.add(node);
    this.#logger.warn(
      `The clock of node "${node.hostname}" is ${(Math.abs(skew) / 1000).toFixed(1)} s ${skew > 0 ? "ahead of" : "behind"} this node's. Calls work (each node signs by the other's clock), but set both clocks right (NTP): logs and timestamps disagree`,
    );
  }

  /** The node answered: it is alive. One that was down is up again once a connection opens. */
  heard(node: RemoteNode): void {
    node.heard();
    if (!node.alive && !node.leaving) void this.#recover(node);
  }

  /** Lists a node up again, once a working connection to it exists. */
  async #recover(node: RemoteNode): Promise<void> {
    if (this.#recovering.has(node) || this.#closed) return;
    this.#recovering.add(node);
    try {
      await node.connection.open();
      if (node.alive || node.leaving || this.#closed || this.#nodes.get(node.instance) !== node) {
        return;
      }
      node.alive = true;
      this.#logger.info(`Node "${node.hostname}" is back`);
      this.#options.emit("node:up", node.info());
    } catch (error) {
      this.#logger.debug(
        `node "${node.hostname}" answers but cannot be called yet: ${(error as Error).message ?? error}`,
      );
    } finally {
      this.#recovering.delete(node);
    }
  }

  /**
   * The node cannot be reached: no more calls go to it, and those it was sent fail now with
   * NETWORK (they may have run) rather than wait on a connection that is gone.
   */
  markDown(node: RemoteNode, why: string): void {
    if (!node.alive || this.#closed) return;
    node.alive = false;
    this.#logger.warn(`Node "${node.hostname}" at ${node.place}: ${why}; marked down`);
    node.connection.reset();
    // Its hostname lives on elsewhere: that is the node now, and this row is history.
    if (this.#nodes.withHostname(node.hostname).length > 0) this.forget(node);
    this.#options.emit("node:down", node.info());
  }

  /** The node said it is shutting down: no new calls go to it, and it never comes back. */
  left(node: RemoteNode): void {
    node.leaving = true;
    if (!node.alive) return;
    node.alive = false;
    this.#logger.info(`Node "${node.hostname}" is shutting down; its calls go to other nodes`);
    this.#options.emit("node:down", node.info());
  }
}
