/**
 * How a remote call picks among the nodes that can serve it. One file per strategy in this
 * folder; the registry asks its strategy to put the candidates in order, best first, and the
 * router tries them in that order (a call that never reached one moves on to the next).
 */

/** What a strategy may look at: the calls this node has in flight to a candidate. */
export interface Candidate {
  readonly connection: { readonly inFlight: number };
}

export interface BalancingStrategy {
  /** Orders `candidates` in place, best first; called only with two or more. */
  order(candidates: Candidate[]): void;
}
