/**
 * `GET /metrics`: Prometheus text of calls, errors by code, latency histograms, streams and
 * items, per plugin and endpoint and side (served for local callers, served for other nodes,
 * made to other nodes); nodes up; worker restarts; plugin reloads; prom-client's process
 * metrics. Authenticated like every route, or with `networking.metrics_token` as a bearer token.
 */
import { randomBytes } from "node:crypto";
import { ConfigError, type PluginCore } from "aio-assistant-core";
import { afterAll, describe, expect, it } from "vitest";
import {
  addr,
  base,
  cleanup,
  collect,
  LOOPBACK,
  nodeConfig,
  pluginDir,
  rejection,
  rep,
  startNode,
  waitFor,
  waitForNode,
} from "./helpers.js";

const dir = pluginDir({
  Svc: {
    body: `
  add(a: number, b: number) { return a + b; }
  async later(ms: number) { await new Promise((r) => setTimeout(r, ms)); return ms; }
  fail() { throw new Error("on purpose"); }
  *items(n: number) { for (let i = 0; i < n; i++) yield i; }
  crash() { setTimeout(() => process.exit(3), 0); return "bye"; }`,
    endpoints: [
      rep("add", [
        { name: "a", type: "int" },
        { name: "b", type: "int" },
      ]),
      rep("later", [{ name: "ms", type: "int" }]),
      rep("fail"),
      rep("items", [{ name: "n", type: "int" }]),
      rep("crash"),
    ],
  },
});

afterAll(cleanup);

/** Sample lines by metric and labels: `name{a="1",b="2"}` → value. */
async function scrape(node: PluginCore, init: RequestInit = {}): Promise<Map<string, number>> {
  const response = await fetch(`${base(node)}/metrics`, init);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = await response.text();
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    // The text format: a name, optional labels, a value (NaN in any case, as Prometheus reads it).
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (-?[0-9.e+-]+|nan|[+-]inf)$/i.exec(
      line,
    );
    expect(match, `a sample line: ${line}`).not.toBeNull();
    samples.set((match as RegExpExecArray)[1] as string, Number((match as RegExpExecArray)[2]));
  }
  return samples;
}

const at = (side: string, endpoint: string) =>
  `{plugin="Svc",endpoint="${endpoint}",side="${side}"}`;

describe("GET /metrics", () => {
  it("counts calls, errors by code, latencies, streams and items served here", async () => {
    const node = await startNode({ hostname: "m1", dir, plugins: ["Svc"], networking: LOOPBACK });
    for (let i = 0; i < 3; i++) await node.execute("Svc", "add", [i, 1]);
    expect(await node.execute("Svc", "later", 30)).toBe(30);
    await rejection(node.execute("Svc", "fail"));
    await rejection(node.execute("Svc", "add", ["x", 1]));
    expect(await collect(node.executeStream("Svc", "items", 4))).toEqual([0, 1, 2, 3]);
    const m = await scrape(node);
    expect(m.get(`aio_calls_total${at("served_local", "add")}`)).toBe(3);
    expect(m.get(`aio_calls_total${at("served_local", "fail")}`)).toBe(1);
    expect(
      m.get(
        `aio_call_errors_total{plugin="Svc",endpoint="fail",side="served_local",code="PLUGIN_ERROR"}`,
      ),
    ).toBe(1);
    expect(m.get(`aio_streams_total${at("served_local", "items")}`)).toBe(1);
    expect(m.get(`aio_stream_items_total${at("served_local", "items")}`)).toBe(4);
    // Function calls served here are timed one in 64, the first of each endpoint among them.
    expect(m.get(`aio_call_duration_seconds_count${at("served_local", "add")}`)).toBe(1);
    // The 30 ms call lands above the 25 ms bucket and within the 50 ms one.
    const later = (le: string) =>
      m.get(
        `aio_call_duration_seconds_bucket{plugin="Svc",endpoint="later",side="served_local",le="${le}"}`,
      );
    expect(later("0.025")).toBe(0);
    expect(later("+Inf")).toBe(1);
    expect(m.get(`aio_call_duration_seconds_sum${at("served_local", "later")}`)).toBeGreaterThan(
      0.029,
    );
    expect(m.get("aio_nodes_up")).toBe(0);
    expect(m.get('aio_plugins{state="enabled"}')).toBe(1);
    expect(m.has("process_cpu_user_seconds_total")).toBe(true);
  });

  it("two nodes: the caller counts calls made, the server calls served for other nodes", async () => {
    const b = await startNode({ hostname: "mb", dir, plugins: ["Svc"], networking: LOOPBACK });
    const a = await startNode({
      hostname: "ma",
      dir,
      networking: { ...LOOPBACK, node_ips: [addr(b)] },
    });
    await waitForNode(a, "mb", (n) => n.plugins.includes("Svc"));
    expect(await a.execute("Svc", "add", [2, 2])).toBe(4);
    expect(await collect(a.executeStream("Svc", "items", 2))).toEqual([0, 1]);
    const made = await scrape(a);
    expect(made.get(`aio_calls_total${at("made", "add")}`)).toBe(1);
    expect(made.get(`aio_streams_total${at("made", "items")}`)).toBe(1);
    expect(made.get("aio_nodes_up")).toBe(1);
    const served = await scrape(b);
    expect(served.get(`aio_calls_total${at("served_remote", "add")}`)).toBe(1);
    expect(served.get(`aio_stream_items_total${at("served_remote", "items")}`)).toBe(2);
  });

  it("counts reloads and worker restarts", async () => {
    const node = await startNode({
      hostname: "m3",
      dir,
      plugins: [{ name: "Svc", isolation: "worker" } as never],
      networking: LOOPBACK,
    });
    await node.reloadPlugin("Svc");
    expect(await node.execute("Svc", "crash")).toBe("bye");
    await waitFor(
      async () => (await scrape(node)).get('aio_worker_restarts_total{plugin="Svc"}') === 1,
      "the restart to be counted",
    );
    expect((await scrape(node)).get('aio_plugin_reloads_total{plugin="Svc"}')).toBe(1);
  });

  it("general.metrics: false counts nothing; the process metrics remain", async () => {
    const node = await startNode({
      hostname: "m4",
      dir,
      plugins: ["Svc"],
      networking: LOOPBACK,
      general: { metrics: false },
    });
    await node.execute("Svc", "add", [1, 1]);
    const m = await scrape(node);
    expect([...m.keys()].some((k) => k.startsWith("aio_calls_total"))).toBe(false);
    expect(m.has("process_cpu_user_seconds_total")).toBe(true);
  });

  it("with a secret: refused unsigned; networking.metrics_token opens /metrics alone", async () => {
    const token = randomBytes(24).toString("base64url");
    const node = await startNode({
      hostname: "m5",
      dir,
      plugins: ["Svc"],
      networking: {
        ...LOOPBACK,
        secret: `metrics-${randomBytes(16).toString("hex")}`,
        metrics_token: token,
      } as never,
    });
    expect((await fetch(`${base(node)}/metrics`)).status).toBe(401);
    const wrong = await fetch(`${base(node)}/metrics`, {
      headers: { authorization: "Bearer nope" },
    });
    expect(wrong.status).toBe(401);
    const bearer = { headers: { authorization: `Bearer ${token}` } };
    await scrape(node, bearer);
    expect((await fetch(`${base(node)}/plugins`, bearer)).status).toBe(401);
  });

  it("a metrics_token under 16 characters is a ConfigError naming the key", async () => {
    const config = nodeConfig({
      hostname: "m6",
      dir,
      networking: {
        ...LOOPBACK,
        secret: `metrics-${randomBytes(16).toString("hex")}`,
        metrics_token: "short",
      } as never,
    });
    const { PluginCore } = await import("aio-assistant-core");
    expect(() => new PluginCore(config)).toThrow(ConfigError);
    expect(() => new PluginCore(config)).toThrow(/networking\.metrics_token is 5 characters/);
  });
});
