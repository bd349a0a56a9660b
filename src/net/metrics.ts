/**
 * `GET /metrics`: the node's counts (core/metrics.ts) in Prometheus's text format, through
 * prom-client's registry, with its default process metrics. Every family is read from the
 * counts when scraped; nothing is recorded through prom-client on the call path.
 */
import { collectDefaultMetrics, Registry } from "prom-client";
import { type CallMetrics, type EndpointStats, LATENCY_BUCKETS } from "../core/metrics.js";
import type { NodeInfo, PluginInfo } from "../core/types.js";

type Labels = Record<string, string | number>;
interface Sample {
  value: number;
  labels: Labels;
  metricName?: string;
}

export interface MetricsSource {
  /** Undefined with `general.metrics: false`. */
  calls: CallMetrics | undefined;
  nodes(): NodeInfo[];
  plugins(): PluginInfo[];
}

/** A metric family prom-client's registry prints, its samples read from `samples` at scrape. */
function family(
  name: string,
  help: string,
  type: "counter" | "gauge" | "histogram",
  samples: () => Sample[],
) {
  return {
    name,
    help,
    type,
    aggregator: "sum" as const,
    get: () => ({ name, help, type, aggregator: "sum" as const, values: samples() }),
  };
}

const labelsOf = (s: EndpointStats): Labels => ({
  plugin: s.plugin,
  endpoint: s.endpoint,
  side: s.side,
});

export class MetricsExporter {
  readonly #registry = new Registry();

  constructor(source: MetricsSource) {
    collectDefaultMetrics({ register: this.#registry });
    const stats = () => [...(source.calls?.all() ?? [])];
    const perEndpoint = (name: string, help: string, value: (s: EndpointStats) => number) =>
      family(name, help, "counter", () =>
        stats()
          .filter((s) => value(s) > 0)
          .map((s) => ({ value: value(s), labels: labelsOf(s) })),
      );
    const perPlugin = (name: string, help: string, counts: () => Map<string, number>) =>
      family(name, help, "counter", () =>
        [...counts()].map(([plugin, value]) => ({ value, labels: { plugin } })),
      );
    const metrics = [
      perEndpoint(
        "aio_calls_total",
        "Function calls, by plugin, endpoint and side (served_local: this node's own callers; served_remote: other nodes; made: to another node)",
        (s) => s.calls,
      ),
      family(
        "aio_call_errors_total",
        "Calls and streams that failed, by plugin, endpoint, side and error code",
        "counter",
        () =>
          stats().flatMap((s) =>
            [...s.errors].map(([code, value]) => ({ value, labels: { ...labelsOf(s), code } })),
          ),
      ),
      family(
        "aio_call_duration_seconds",
        "How long calls and streams took, from start to their end, by plugin, endpoint and side",
        "histogram",
        () => stats().flatMap(histogram),
      ),
      perEndpoint(
        "aio_streams_total",
        "Streams (generator endpoints), by plugin, endpoint and side",
        (s) => s.streams,
      ),
      perEndpoint(
        "aio_stream_items_total",
        "Items of the streams served here, by plugin and endpoint",
        (s) => s.items,
      ),
      family("aio_nodes_up", "Other nodes known and answering", "gauge", () => [
        { value: source.nodes().filter((n) => n.alive).length, labels: {} },
      ]),
      family("aio_nodes_known", "Other nodes known, up or down", "gauge", () => [
        { value: source.nodes().length, labels: {} },
      ]),
      family("aio_plugins", "Plugins of this node, by state", "gauge", () => {
        const byState = new Map<string, number>();
        for (const p of source.plugins()) byState.set(p.state, (byState.get(p.state) ?? 0) + 1);
        return [...byState].map(([state, value]) => ({ value, labels: { state } }));
      }),
      perPlugin(
        "aio_worker_restarts_total",
        "Times a plugin's worker thread was restarted after it died",
        () => source.calls?.workerRestarts ?? new Map(),
      ),
      perPlugin(
        "aio_plugin_reloads_total",
        "Reloads of a plugin's code (reloadPlugin, hot reload)",
        () => source.calls?.reloads ?? new Map(),
      ),
    ];
    for (const metric of metrics) this.#registry.registerMetric(metric as never);
  }

  get contentType(): string {
    return this.#registry.contentType;
  }

  text(): Promise<string> {
    return this.#registry.metrics();
  }
}

/** The histogram samples of one endpoint: cumulative buckets, `+Inf`, sum and count. */
function histogram(s: EndpointStats): Sample[] {
  const labels = labelsOf(s);
  const samples: Sample[] = [];
  let cumulative = 0;
  LATENCY_BUCKETS.forEach((le, i) => {
    cumulative += s.buckets[i] as number;
    samples.push({
      metricName: "aio_call_duration_seconds_bucket",
      value: cumulative,
      labels: { ...labels, le },
    });
  });
  cumulative += s.buckets[LATENCY_BUCKETS.length] as number;
  if (cumulative === 0) return [];
  samples.push(
    {
      metricName: "aio_call_duration_seconds_bucket",
      value: cumulative,
      labels: { ...labels, le: "+Inf" },
    },
    { metricName: "aio_call_duration_seconds_sum", value: s.seconds, labels },
    { metricName: "aio_call_duration_seconds_count", value: cumulative, labels },
  );
  return samples;
}
