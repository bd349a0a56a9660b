/**
 * How the channel mesh learns of addresses to contact (Moleculer's `registry/discoverers/`, one
 * file per way): a discoverer hands the mesh addresses; the mesh asks each for its `/info`
 * (mesh.ts) and adopts what answers. Adding a way to find nodes means adding a file here and
 * naming it in `discoverersFor`, not editing the mesh.
 */
import type { NetworkingConfig } from "../../../../config/types.js";
import type { Logger } from "../../../../log.js";
import type { InfoAnswer } from "../../../wire.js";

/**
 * An address heard of; `instance` when the source says which node is there (the mesh then skips
 * a node it knows). Resolves once that address has been asked.
 */
export type Found = (address: string, port: number, instance?: string) => Promise<void>;

export interface DiscoveryContext {
  config: NetworkingConfig;
  hostname: string;
  instance: string;
  /** The port this node listens on. */
  port: number;
  /** The address this node listens on. */
  bind: string;
  /** Whether this node listens on loopback only (nothing to announce, nobody to find). */
  loopbackOnly: boolean;
  logger: Logger;
}

export abstract class Discoverer {
  /** Starts finding; resolves when what it knows at start has been asked (node_ips). */
  abstract start(found: Found): Promise<void> | void;

  /** A contacted node's `/info` answer: what it passes on may be more addresses (gossip). */
  answered(_answer: InfoAnswer, _found: Found): Promise<void> | void {}

  close(): Promise<void> | void {}
}
