/**
 * What the node counts for `GET /metrics`: calls, errors by code and latency per plugin and
 * endpoint, served here (for this node's own callers or other nodes) and made to other nodes;
 * streams and their items; worker restarts and plugin reloads. Counting is a few additions per
 * call into objects found once per endpoint; the exposition format is built only when scraped
 * (net/metrics.ts), so a node nobody scrapes pays almost nothing.
 */

/** Upper bounds of the latency buckets, in seconds (Prometheus `le`). */
export const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
] as const;

/**
 * Function calls served here are timed one in 64 (the first of an endpoint, the 65th, …): the
 * calls whose count masked with this is 1. Reading the clock twice costs about as much as a
 * local call itself. Streams and calls made to other nodes are timed every one.
 */
export const SAMPLE_MASK = 63;

/** The start of a call that is counted but not timed. */
export const NOT_TIMED = -1;

/** Whose calls: served by this node (`local` callers or `remote` nodes) or made to another node. */
export type CallSide = "served_local" | "served_remote" | "made";

/** The counts of one endpoint on one side. */
export class EndpointStats {
  readonly plugin: string;
  readonly endpoint: string;
  readonly side: CallSide;
  calls = 0;
  streams = 0;
  items = 0;
  /** Seconds, summed over every call and stream. */
  seconds = 0;
  /** Calls per latency bucket (not cumulative); the last slot is above every bound. */
  readonly buckets = new Float64Array(LATENCY_BUCKETS.length + 1);
  readonly errors = new Map<string, number>();

  constructor(plugin: string, endpoint: string, side: CallSide) {
    this.plugin = plugin;
    this.endpoint = endpoint;
    this.side = side;
  }

  /**
   * A call or stream begun at `started` (`performance.now()`, or {@link NOT_TIMED}) ended, with
   * the code of its error if it failed: its time into the histogram, its error counted.
   */
  ended(started: number, errorCode?: string): void {
    if (started !== NOT_TIMED) this.#observe(performance.now() - started);
    if (errorCode !== undefined) this.errors.set(errorCode, (this.errors.get(errorCode) ?? 0) + 1);
  }

  #observe(ms: number): void {
    const seconds = ms / 1000;
    this.seconds += seconds;
    let i = 0;
    while (i < LATENCY_BUCKETS.length && seconds > (LATENCY_BUCKETS[i] as number)) i++;
    this.buckets[i] = (this.buckets[i] as number) + 1;
  }
}

export class CallMetrics {
  /** By side, plugin, then endpoint: a lookup per call builds no key string. */
  readonly #stats = new Map<CallSide, Map<string, Map<string, EndpointStats>>>();
  readonly workerRestarts = new Map<string, number>();
  readonly reloads = new Map<string, number>();

  /** The counts of `plugin.endpoint` on `side`, made on first use. */
  of(plugin: string, endpoint: string, side: CallSide): EndpointStats {
    let plugins = this.#stats.get(side);
    if (!plugins) {
      plugins = new Map();
      this.#stats.set(side, plugins);
    }
    let endpoints = plugins.get(plugin);
    if (!endpoints) {
      endpoints = new Map();
      plugins.set(plugin, endpoints);
    }
    let stats = endpoints.get(endpoint);
    if (!stats) {
      stats = new EndpointStats(plugin, endpoint, side);
      endpoints.set(endpoint, stats);
    }
    return stats;
  }

  *all(): Iterable<EndpointStats> {
    for (const plugins of this.#stats.values()) {
      for (const endpoints of plugins.values()) yield* endpoints.values();
    }
  }

  workerRestarted(plugin: string): void {
    this.workerRestarts.set(plugin, (this.workerRestarts.get(plugin) ?? 0) + 1);
  }

  reloaded(plugin: string): void {
    this.reloads.set(plugin, (this.reloads.get(plugin) ?? 0) + 1);
  }
}
