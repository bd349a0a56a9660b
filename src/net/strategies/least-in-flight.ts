/**
 * The node with the fewest of this node's calls in flight first: a slow or busy node gets
 * fewer new calls without any measurement beyond the count each connection keeps anyway.
 */
import type { BalancingStrategy, Candidate } from "./strategy.js";

export const leastInFlight: BalancingStrategy = {
  order(candidates: Candidate[]): void {
    candidates.sort((a, b) => a.connection.inFlight - b.connection.inFlight);
  },
};
