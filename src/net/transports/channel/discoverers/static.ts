/** `node_ips`: the addresses the config lists, asked at start (and probed until found, mesh.ts). */
import { parseNodeAddress } from "../../../address.js";
import { Discoverer, type DiscoveryContext, type Found } from "./discoverer.js";

export class StaticDiscoverer extends Discoverer {
  readonly #context: DiscoveryContext;

  constructor(context: DiscoveryContext) {
    super();
    this.#context = context;
  }

  async start(found: Found): Promise<void> {
    const { node_ips, port } = this.#context.config;
    await Promise.all(
      node_ips.map((entry) => {
        const address = parseNodeAddress(entry, port);
        return found(address.address, address.port);
      }),
    );
  }
}
