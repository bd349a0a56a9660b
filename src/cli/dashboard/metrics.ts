/**
 * The dashboard's call figures, from the Prometheus text a node serves (`GET /metrics`, or
 * `PluginCore.metrics()` in-process), read once a second: calls per second, p50 and p99 over the
 * last ten seconds, and errors by code, per plugin, endpoint and side; reloads and worker
 * restarts per plugin.
 */

/** How far back latency percentiles look: function calls are timed one in 64. */
const WINDOW_MS = 10_000;

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of Prometheus's text exposition format (comments skipped). */
export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1] as string] = (pair[2] as string).replace(/\\(.)/g, (_, c: string) =>
        c === "n" ? "\n" : c,
      );
    }
    samples.push({ name: match[1] as string, labels, value: Number(match[3]) });
  }
  return samples;
}

interface Reading {
  at: number;
  count: number;
  /** Cumulative bucket counts by upper bound (seconds; Infinity last). */
  buckets: Map<number, number>;
  errors: Map<string, number>;
}

export interface EndpointFigures {
  plugin: string;
  endpoint: string;
  side: string;
  /** Calls and streams started per second, over the last reading. */
  rate: number;
  /** Milliseconds; null when nothing was timed in the window. */
  p50: number | null;
  p99: number | null;
  total: number;
  errors: Record<string, number>;
}

export interface Figures {
  time: number;
  endpoints: EndpointFigures[];
  reloads: Record<string, number>;
  workerRestarts: Record<string, number>;
}

/** The `q` quantile of the counts between two cumulative readings, as Prometheus computes it. */
function quantile(q: number, now: Map<number, number>, then: Map<number, number> | undefined) {
  const bounds = [...now.keys()].sort((a, b) => a - b);
  const counts = bounds.map((le) => (now.get(le) ?? 0) - (then?.get(le) ?? 0));
  const total = counts[counts.length - 1] ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  for (let i = 0; i < bounds.length; i++) {
    if ((counts[i] as number) < rank) continue;
    const upper = bounds[i] as number;
    const lower = i === 0 ? 0 : (bounds[i - 1] as number);
    if (upper === Number.POSITIVE_INFINITY) return lower * 1000;
    const below = i === 0 ? 0 : (counts[i - 1] as number);
    const inBucket = (counts[i] as number) - below;
    const share = inBucket === 0 ? 1 : (rank - below) / inBucket;
    return (lower + (upper - lower) * share) * 1000;
  }
  return null;
}

export class CallFigures {
  /** Readings per endpoint key, oldest first, reaching back a little over the window. */
  readonly #history = new Map<string, Reading[]>();
  /** When the scrape before was read. */
  #lastAt: number | undefined;

  /** Reads one scrape; returns the figures as of it. */
  read(text: string, at = Date.now()): Figures {
    const readings = new Map<
      string,
      Reading & { plugin: string; endpoint: string; side: string }
    >();
    const reading = (labels: Record<string, string>) => {
      const key = `${labels.plugin}\u0000${labels.endpoint}\u0000${labels.side}`;
      let r = readings.get(key);
      if (!r) {
        r = {
          at,
          count: 0,
          buckets: new Map(),
          errors: new Map(),
          plugin: labels.plugin ?? "",
          endpoint: labels.endpoint ?? "",
          side: labels.side ?? "",
        };
        readings.set(key, r);
      }
      return r;
    };
    const reloads: Record<string, number> = {};
    const workerRestarts: Record<string, number> = {};
    for (const s of parsePrometheus(text)) {
      switch (s.name) {
        case "aio_calls_total":
        case "aio_streams_total":
          reading(s.labels).count += s.value;
          break;
        case "aio_call_errors_total":
          reading(s.labels).errors.set(s.labels.code ?? "", s.value);
          break;
        case "aio_call_duration_seconds_bucket": {
          const le = s.labels.le === "+Inf" ? Number.POSITIVE_INFINITY : Number(s.labels.le);
          reading(s.labels).buckets.set(le, s.value);
          break;
        }
        case "aio_plugin_reloads_total":
          reloads[s.labels.plugin ?? ""] = s.value;
          break;
        case "aio_worker_restarts_total":
          workerRestarts[s.labels.plugin ?? ""] = s.value;
          break;
      }
    }
    const endpoints: EndpointFigures[] = [];
    for (const [key, now] of readings) {
      // An endpoint first seen after the first scrape had nothing at the one before: its calls
      // are new. At the first scrape, what was counted before the dashboard opened is not.
      const history =
        this.#history.get(key) ??
        (this.#lastAt === undefined
          ? []
          : [{ at: this.#lastAt, count: 0, buckets: new Map(), errors: new Map() }]);
      const last = history[history.length - 1];
      const windowStart = history.find((r) => now.at - r.at <= WINDOW_MS) ?? history[0];
      const seconds = last ? (now.at - last.at) / 1000 : 0;
      endpoints.push({
        plugin: now.plugin,
        endpoint: now.endpoint,
        side: now.side,
        rate: last && seconds > 0 ? Math.max(0, now.count - last.count) / seconds : 0,
        p50: quantile(0.5, now.buckets, windowStart?.buckets),
        p99: quantile(0.99, now.buckets, windowStart?.buckets),
        total: now.count,
        errors: Object.fromEntries(now.errors),
      });
      history.push(now);
      while (history.length > 1 && now.at - (history[0] as Reading).at > WINDOW_MS + 2000) {
        history.shift();
      }
      this.#history.set(key, history);
    }
    this.#lastAt = at;
    endpoints.sort((a, b) =>
      `${a.plugin}.${a.endpoint}`.localeCompare(`${b.plugin}.${b.endpoint}`),
    );
    return { time: at, endpoints, reloads, workerRestarts };
  }
}
