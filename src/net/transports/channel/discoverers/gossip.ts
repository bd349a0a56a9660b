/**
 * Gossip (`discover_nodes`): the nodes a contacted node lists in its `/info` answer (those that
 * let themselves be passed on, `auto_discoverable`) are contacted in turn.
 */
import type { InfoAnswer } from "../../../wire.js";
import { Discoverer, type Found } from "./discoverer.js";

export class GossipDiscoverer extends Discoverer {
  start(): void {}

  override async answered(answer: InfoAnswer, found: Found): Promise<void> {
    await Promise.all(answer.nodes.map((other) => found(other.address, other.port)));
  }
}
