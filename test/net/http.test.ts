/**
 * The node protocol's HTTP endpoints as any HTTP client sees them (fetch): every endpoint,
 * every documented status, and hostile or malformed input, each answered with a JSON error
 * while the node keeps serving. Also the WebSocket channel fed garbage by hand.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type { PluginCore } from "aio-assistant-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import {
  base,
  cleanup,
  pluginDir,
  rep,
  SLEEP,
  shared,
  sharedRef,
  startNode,
  waitFor,
} from "./helpers.js";

const STORE = `__aioNetHttp${process.pid}`;
const store = shared(STORE, { finallyAt: 0, aborted: [] as string[] });
const S = sharedRef(STORE);

const API = {
  header: SLEEP,
  body: `
  add(a: number, b: number) { return a + b; }
  echo(v: unknown) { return v; }
  nothing() { return undefined; }
  async slow(ms: number) {
    const { signal } = this.currentCall!;
    await sleep(ms);
    if (signal.aborted) ${S}.aborted.push("slow");
    return "slow done";
  }
  fail() { throw new TypeError("bad thing"); }
  *gen(n: number) { for (let i = 0; i < n; i++) yield i; }
  *gen_undefined() { yield undefined; yield null; yield 1; }
  *gen_fail(n: number) { for (let i = 0; i < n; i++) yield i; throw new RangeError("stream broke"); }
  *gen_fail_first() { throw new Error("nothing to give"); }
  async *endless() {
    try { for (let i = 0; ; i++) { await sleep(5); yield i; } }
    finally { ${S}.finallyAt = Date.now(); }
  }
  hidden() { return "hidden"; }`,
  endpoints: [
    rep("add", [
      { name: "a", type: "int", required: true },
      { name: "b", type: "int", required: true },
    ]),
    rep("echo", ["v"]),
    rep("nothing"),
    rep("slow", [{ name: "ms", type: "int" }]),
    rep("fail"),
    rep("gen", [{ name: "n", type: "int" }]),
    rep("gen_undefined"),
    rep("gen_fail", [{ name: "n", type: "int" }]),
    rep("gen_fail_first"),
    rep("endless"),
    rep("hidden", [], { remote: false }),
  ],
};

let node: PluginCore;
let url: string;

beforeAll(async () => {
  const dir = pluginDir({
    Api: API,
    Private: { remote: false, body: `who() { return "p"; }`, endpoints: [rep("who")] },
    Off: { body: `who() { return "off"; }`, endpoints: [rep("who")] },
  });
  node = await startNode({ hostname: "N", dir, plugins: ["Api", "Private", "Off"] });
  await node.disablePlugin("Off");
  url = base(node);
});

afterAll(cleanup);

/** Parsed JSON of any shape; the assertions check it. */
// biome-ignore lint/suspicious/noExplicitAny: received JSON, read field by field in assertions
type Json = any;

interface Answer {
  status: number;
  type: string;
  body: Json;
  text: string;
}

async function send(
  path: string,
  body?: unknown,
  init: { raw?: string | Uint8Array; type?: string | null; method?: string } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {};
  const type = init.type === undefined ? "application/json" : init.type;
  if (type !== null) headers["content-type"] = type;
  const method = init.method ?? (body === undefined && init.raw === undefined ? "GET" : "POST");
  const response = await fetch(`${url}${path}`, {
    method,
    headers,
    body: init.raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return {
    status: response.status,
    type: response.headers.get("content-type") ?? "",
    body: parsed,
    text,
  };
}

const execute = (body: unknown) => send("/execute", body);

/** A JSON error answer with this status (and code, if given). */
function expectError(answer: Answer, status: number, code?: string): void {
  expect(answer.status, answer.text).toBe(status);
  expect(answer.type).toMatch(/application\/json/);
  expect(answer.body?.error, answer.text).toBeDefined();
  expect(typeof answer.body.error.code).toBe("string");
  expect(typeof answer.body.error.message).toBe("string");
  if (code) expect(answer.body.error.code).toBe(code);
}

/** The node still answers a good call. */
async function expectServing(): Promise<void> {
  const answer = await execute({ plugin: "Api", method: "add", args: [2, 3] });
  expect(answer.status).toBe(200);
  expect(answer.body).toEqual({ result: 5 });
}

function ndjson(text: string): unknown[] {
  return text
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line));
}

describe("GET /ping", () => {
  it("answers status, hostname, the node's instance id for this run and its clock", async () => {
    const before = Date.now();
    const answer = await send("/ping");
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({
      status: "ok",
      hostname: "N",
      instance: expect.stringMatching(/^[0-9a-f-]{36}$/),
      time: expect.any(Number),
    });
    const { time } = answer.body as { time: number };
    expect(time).toBeGreaterThanOrEqual(before);
    expect(time).toBeLessThanOrEqual(Date.now());
  });
});

describe("GET /has_plugin", () => {
  it("reports availability, remote-ness, hostname and uuid", async () => {
    const uuid = node.getPluginInfo("Api")?.uuid;
    const q = (query: string) => send(`/has_plugin?${query}`);
    expect((await q("name=Api&method=add")).body).toEqual({
      available: true,
      remote: true,
      hostname: "N",
      plugin_uuid: uuid,
    });
    expect((await q("name=Api")).body).toMatchObject({ available: true, remote: true });
    expect((await q("name=Api&method=hidden")).body).toMatchObject({
      available: true,
      remote: false,
    });
    expect((await q("name=Private&method=who")).body).toMatchObject({
      available: true,
      remote: false,
    });
    expect((await q(`name=Api&method=add&plugin_uuid=${uuid}`)).body).toMatchObject({
      available: true,
    });
    for (const query of [
      "name=Nope",
      "name=Api&method=nope",
      "name=Api&plugin_uuid=00000000-0000-4000-8000-000000000000",
      "name=Off&method=who",
    ]) {
      const answer = await q(query);
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({
        available: false,
        remote: false,
        hostname: "N",
        plugin_uuid: "",
      });
    }
  });

  it("without a name is a 400 JSON error", async () => {
    expectError(await send("/has_plugin"), 400, "BAD_REQUEST");
    expectError(await send("/has_plugin?name="), 400, "BAD_REQUEST");
    await expectServing();
  });
});

describe("POST /info", () => {
  it("answers the node's hostname, nodes and remote endpoints", async () => {
    const answer = await send("/info", { hostname: "probe", port: 0, discover_nodes_info: true });
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ hostname: "N", auto_discoverable: true, nodes: [] });
    expect(typeof answer.body.version).toBe("number");
    const names = (answer.body.endpoints as Array<{ plugin: string; access_name: string }>).map(
      (e) => `${e.plugin}.${e.access_name}`,
    );
    expect(names).toContain("Api.add");
    expect(names).toContain("Api.gen");
    expect(names).not.toContain("Api.hidden");
    expect(names.filter((n) => n.startsWith("Private.") || n.startsWith("Off."))).toEqual([]);
  });

  it("an empty body is accepted; a body that is not an object is a 400", async () => {
    expect((await send("/info", undefined, { method: "POST", type: null })).status).toBe(200);
    expectError(await send("/info", [1, 2]), 400, "BAD_REQUEST");
    expectError(await send("/info", { hostname: 5 }), 400, "BAD_REQUEST");
    await expectServing();
  });
});

describe("POST /execute", () => {
  it("positional and named arguments; undefined is null", async () => {
    expect((await execute({ plugin: "Api", method: "add", args: [2, 3] })).body).toEqual({
      result: 5,
    });
    expect((await execute({ plugin: "Api", method: "add", args: { a: 4, b: 5 } })).body).toEqual({
      result: 9,
    });
    expect(
      (await execute({ plugin: "Api", method: "echo", args: [{ x: [1, "y"] }] })).body,
    ).toEqual({ result: { x: [1, "y"] } });
    expect((await execute({ plugin: "Api", method: "nothing" })).body).toEqual({ result: null });
    const uuid = node.getPluginInfo("Api")?.uuid;
    expect(
      (await execute({ plugin: "Api", method: "add", args: [1, 1], plugin_uuid: uuid })).body,
    ).toEqual({ result: 2 });
  });

  it("an async endpoint that takes a while answers 200 and is not aborted", async () => {
    store.aborted = [];
    const answer = await execute({ plugin: "Api", method: "slow", args: [100] });
    expect(answer.status, answer.text).toBe(200);
    expect(answer.body).toEqual({ result: "slow done" });
    expect(store.aborted).toEqual([]);
  });

  it("a client that disconnects during a call aborts its signal", async () => {
    store.aborted = [];
    const controller = new AbortController();
    const answer = fetch(`${url}/execute`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ plugin: "Api", method: "slow", args: [300] }),
      signal: controller.signal,
    });
    await sleep(100);
    controller.abort();
    await expect(answer).rejects.toThrow();
    await waitFor(() => store.aborted.length > 0, "the call's signal to abort", 2000);
    expect(store.aborted).toEqual(["slow"]);
    await expectServing();
  });

  it("every documented status, as a JSON error carrying the request_id", async () => {
    const cases: Array<[unknown, number, string]> = [
      [{ plugin: "Nope", method: "x" }, 404, "PLUGIN_NOT_FOUND"],
      [{ plugin: "Api", method: "nope" }, 404, "ENDPOINT_NOT_FOUND"],
      [{ plugin: "Api", method: "hidden" }, 403, "ACCESS_DENIED"],
      [{ plugin: "Private", method: "who" }, 403, "ACCESS_DENIED"],
      [{ plugin: "Api", method: "add", args: ["x", 1] }, 400, "INVALID_ARGUMENTS"],
      [{ plugin: "Api", method: "add", args: [1] }, 400, "INVALID_ARGUMENTS"],
      [{ plugin: "Api", method: "add", args: { a: 1, b: 2, c: 3 } }, 400, "INVALID_ARGUMENTS"],
      [{ plugin: "Api", method: "gen", args: [1] }, 400, "WRONG_KIND"],
      [{ plugin: "Api", method: "slow", args: [3000], timeout_ms: 50 }, 504, "TIMEOUT"],
      [{ plugin: "Api", method: "fail" }, 500, "PLUGIN_ERROR"],
      [{ plugin: "Off", method: "who" }, 503, "PLUGIN_DISABLED"],
      [
        { plugin: "Api", method: "add", args: [1, 2], plugin_uuid: "0000-not-a-uuid" },
        404,
        "PLUGIN_NOT_FOUND",
      ],
    ];
    for (const [i, [body, status, code]] of cases.entries()) {
      const requestId = `req-${i}`;
      const answer = await execute({ ...(body as object), request_id: requestId });
      expectError(answer, status, code);
      expect(answer.body.error.request_id).toBe(requestId);
    }
    const failed = await execute({ plugin: "Api", method: "fail" });
    expect(failed.body.error.message).toContain("bad thing");
    expect(failed.body.error.error_name).toBe("TypeError");
    await expectServing();
  });
});

describe("POST /execute, served by the node itself or by fastify's route", () => {
  // A plain JSON body of a declared length is served without fastify; a query string, among
  // other things, sends the same request through fastify's route. Both must answer alike.
  it("answers every body alike, results and errors, byte for byte", async () => {
    const bodies: Array<{ raw: string | Uint8Array; type?: string }> = [
      { raw: JSON.stringify({ plugin: "Api", method: "add", args: [2, 3], request_id: "r1" }) },
      { raw: JSON.stringify({ plugin: "Api", method: "add", args: { a: 1, b: 2 } }) },
      { raw: JSON.stringify({ plugin: "Api", method: "nothing" }) },
      { raw: JSON.stringify({ plugin: "Api", method: "echo", args: ["é ✓ 😀"] }) },
      { raw: JSON.stringify({ plugin: "Nope", method: "x", request_id: "r2" }) },
      { raw: JSON.stringify({ plugin: "Api", method: "hidden" }) },
      { raw: JSON.stringify({ plugin: "Api", method: "add", args: ["x", 1] }) },
      { raw: JSON.stringify({ plugin: "Api", method: "fail" }) },
      { raw: JSON.stringify({ plugin: "Off", method: "who" }) },
      { raw: JSON.stringify({ plugin: "Api" }) },
      { raw: JSON.stringify({ plugin: 5, method: "add" }) },
      { raw: JSON.stringify([1, 2]) },
      { raw: '{"plugin":"Api","method":"add","args":[1,' },
      { raw: '{"plugin":"Api","method":"echo","args":[{"__proto__":{"x":1}}]}' },
      { raw: new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]) },
      {
        raw: JSON.stringify({ plugin: "Api", method: "add", args: [4, 5] }),
        type: "Application/JSON; Charset=UTF-8",
      },
    ];
    for (const { raw, type } of bodies) {
      const itself = await send("/execute", undefined, { raw, ...(type ? { type } : {}) });
      const routed = await send("/execute?via=fastify", undefined, {
        raw,
        ...(type ? { type } : {}),
      });
      const what = typeof raw === "string" ? raw : "invalid UTF-8";
      // A request_id the node made up is its own for each call.
      const made = (text: string) =>
        text.replace(/"request_id":"[0-9a-f]{6}-[0-9a-z]+"/, '"request_id":"made"');
      expect(itself.status, what).toBe(routed.status);
      expect(itself.type, what).toBe(routed.type);
      expect(made(itself.text), what).toBe(made(routed.text));
    }
    await expectServing();
  });
});

describe("POST /execute_stream", () => {
  it("streams NDJSON items then end", async () => {
    const answer = await send("/execute_stream", { plugin: "Api", method: "gen", args: [3] });
    expect(answer.status).toBe(200);
    expect(answer.type).toMatch(/application\/x-ndjson/);
    expect(ndjson(answer.text)).toEqual([{ item: 0 }, { item: 1 }, { item: 2 }, { end: true }]);
    const none = await send("/execute_stream", { plugin: "Api", method: "gen", args: [0] });
    expect(ndjson(none.text)).toEqual([{ end: true }]);
    const many = await send("/execute_stream", { plugin: "Api", method: "gen", args: [5000] });
    const lines = ndjson(many.text);
    expect(lines).toHaveLength(5001);
    expect(lines[4999]).toEqual({ item: 4999 });
  });

  it("an item of undefined is sent as null, as a result of undefined is", async () => {
    const answer = await send("/execute_stream", { plugin: "Api", method: "gen_undefined" });
    expect(answer.text).toBe('{"item":null}\n{"item":null}\n{"item":1}\n{"end":true}\n');
  });

  it("an error after items is an error line, after those items", async () => {
    const answer = await send("/execute_stream", { plugin: "Api", method: "gen_fail", args: [2] });
    expect(answer.status).toBe(200);
    const lines = ndjson(answer.text) as Json[];
    expect(lines.slice(0, 2)).toEqual([{ item: 0 }, { item: 1 }]);
    expect(lines).toHaveLength(3);
    expect(lines[2].error).toMatchObject({ code: "PLUGIN_ERROR" });
    expect(lines[2].error.message).toContain("stream broke");
  });

  it("an error before the first item gets a fitting status and a JSON body", async () => {
    const cases: Array<[unknown, number, string]> = [
      [{ plugin: "Api", method: "gen_fail_first" }, 500, "PLUGIN_ERROR"],
      [{ plugin: "Api", method: "add", args: [1, 2] }, 400, "WRONG_KIND"],
      [{ plugin: "Nope", method: "gen" }, 404, "PLUGIN_NOT_FOUND"],
      [{ plugin: "Api", method: "nope" }, 404, "ENDPOINT_NOT_FOUND"],
      [{ plugin: "Api", method: "gen", args: ["x"] }, 400, "INVALID_ARGUMENTS"],
      [{ plugin: "Private", method: "who" }, 403, "ACCESS_DENIED"],
      [{ plugin: "Off", method: "who" }, 503, "PLUGIN_DISABLED"],
      [{ method: "gen" }, 400, "BAD_REQUEST"],
    ];
    for (const [body, status, code] of cases) {
      expectError(await send("/execute_stream", body), status, code);
    }
    // An HTTP client is told the route to use, not a method of a library it may not have.
    const wrong = await send("/execute_stream", { plugin: "Api", method: "add", args: [1, 2] });
    expect(wrong.body.error.message).toMatch(/call it with POST \/execute$/);
    const wrongWay = await send("/execute", { plugin: "Api", method: "gen", args: [1] });
    expect(wrongWay.body.error.message).toMatch(/call it with POST \/execute_stream$/);
    await expectServing();
  });

  it("a client that disconnects closes the generator", async () => {
    store.finallyAt = 0;
    const controller = new AbortController();
    const response = await fetch(`${url}/execute_stream`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ plugin: "Api", method: "endless" }),
      signal: controller.signal,
    });
    expect(response.status).toBe(200);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    controller.abort();
    await waitFor(() => store.finallyAt > 0, "the generator's finally", 2000);
    await expectServing();
  });
});

describe("bad input: a JSON error, and the node keeps serving", () => {
  const deep = (levels: number) => {
    let value: unknown = 1;
    for (let i = 0; i < levels; i++) value = [value];
    return value;
  };

  const cases: Array<{
    name: string;
    path?: string;
    body?: unknown;
    raw?: string;
    type?: string | null;
    method?: string;
    status: number | number[];
    code?: string;
  }> = [
    { name: "invalid JSON", raw: '{"plugin": "Api",', status: 400, code: "BAD_REQUEST" },
    { name: "JSON with trailing garbage", raw: '{"plugin":"Api","method":"add"} x', status: 400 },
    { name: "empty JSON body", raw: "", status: 400, code: "BAD_REQUEST" },
    { name: "no content type and no body", type: null, method: "POST", status: 400 },
    {
      name: "wrong content type",
      raw: JSON.stringify({ plugin: "Api", method: "add", args: [1, 2] }),
      type: "text/plain",
      status: [400, 415],
    },
    {
      name: "form content type",
      raw: "plugin=Api&method=add",
      type: "application/x-www-form-urlencoded",
      status: [400, 415],
    },
    { name: "a JSON array body", body: [1, 2], status: 400, code: "BAD_REQUEST" },
    { name: "a JSON string body", body: "Api.add", status: 400, code: "BAD_REQUEST" },
    { name: "a JSON null body", raw: "null", status: 400, code: "BAD_REQUEST" },
    {
      name: "missing plugin",
      body: { method: "add", args: [1, 2] },
      status: 400,
      code: "BAD_REQUEST",
    },
    {
      name: "missing method",
      body: { plugin: "Api", args: [1, 2] },
      status: 400,
      code: "BAD_REQUEST",
    },
    {
      name: "plugin not a string",
      body: { plugin: 5, method: "add" },
      status: 400,
      code: "BAD_REQUEST",
    },
    { name: "method an object", body: { plugin: "Api", method: { x: 1 } }, status: 400 },
    {
      name: "args of the wrong type",
      body: { plugin: "Api", method: "add", args: [true, {}] },
      status: 400,
      code: "INVALID_ARGUMENTS",
    },
    {
      name: "timeout_ms negative",
      body: { plugin: "Api", method: "add", args: [1, 2], timeout_ms: -5 },
      status: 400,
      code: "BAD_REQUEST",
    },
    {
      name: "timeout_ms a string",
      body: { plugin: "Api", method: "add", args: [1, 2], timeout_ms: "5" },
      status: 400,
      code: "BAD_REQUEST",
    },
    {
      name: "plugin_uuid a number",
      body: { plugin: "Api", method: "add", plugin_uuid: 7 },
      status: 400,
      code: "BAD_REQUEST",
    },
    {
      name: "author an array",
      body: { plugin: "Api", method: "add", args: [1, 2], author: ["x"] },
      status: 400,
      code: "BAD_REQUEST",
    },
    {
      name: "__proto__ at the top",
      raw: '{"plugin":"Api","method":"add","args":[1,2],"__proto__":{"polluted":true}}',
      status: 400,
      code: "BAD_REQUEST",
    },
    {
      name: "__proto__ in args",
      raw: '{"plugin":"Api","method":"echo","args":[{"a":{"__proto__":{"polluted":true}}}]}',
      status: 400,
      code: "BAD_REQUEST",
    },
    {
      name: "__proto__ inside an array in args",
      raw: '{"plugin":"Api","method":"echo","args":[[1,[{"__proto__":1}]]]}',
      status: 400,
      code: "BAD_REQUEST",
    },
    {
      name: "constructor key",
      body: { plugin: "Api", method: "echo", args: [{ constructor: { prototype: 1 } }] },
      status: 400,
      code: "BAD_REQUEST",
    },
    {
      name: "prototype key",
      body: { plugin: "Api", method: "echo", args: { v: { prototype: 1 } } },
      status: 400,
      code: "BAD_REQUEST",
    },
    {
      name: "constructor at the top",
      body: { plugin: "Api", method: "add", args: [1, 2], constructor: "x" },
      status: 400,
      code: "BAD_REQUEST",
    },
    {
      name: "__proto__ in /info",
      path: "/info",
      raw: '{"hostname":"x","__proto__":{"a":1}}',
      status: 400,
      code: "BAD_REQUEST",
    },
    {
      name: "__proto__ in /execute_stream",
      path: "/execute_stream",
      raw: '{"plugin":"Api","method":"gen","args":[1],"x":{"__proto__":null}}',
      status: 400,
      code: "BAD_REQUEST",
    },
    {
      name: "nesting 65 levels",
      body: { plugin: "Api", method: "echo", args: deep(64) },
      status: 400,
      code: "BAD_REQUEST",
    },
    {
      name: "nesting 100,000 levels",
      raw: `{"plugin":"Api","method":"echo","args":${"[".repeat(100_000)}${"]".repeat(100_000)}}`,
      status: 400,
      code: "BAD_REQUEST",
    },
    {
      name: "a 2 MiB body",
      raw: JSON.stringify({ plugin: "Api", method: "echo", args: ["x".repeat(2 * 1024 * 1024)] }),
      status: 413,
    },
    {
      name: "a 2 MiB body to /info",
      path: "/info",
      raw: JSON.stringify({ hostname: "x".repeat(2 * 1024 * 1024) }),
      status: 413,
    },
    { name: "an unknown route", path: "/nope", body: { plugin: "Api" }, status: 404 },
    { name: "an unknown GET route", path: "/", method: "GET", type: null, status: 404 },
    { name: "GET /execute", path: "/execute", method: "GET", type: null, status: [404, 405] },
  ];

  for (const c of cases) {
    it(c.name, async () => {
      const init: { raw?: string; type?: string | null; method?: string } = {};
      if (c.raw !== undefined) init.raw = c.raw;
      if (c.type !== undefined) init.type = c.type;
      if (c.method !== undefined) init.method = c.method;
      const answer = await send(c.path ?? "/execute", c.body, init);
      const statuses = Array.isArray(c.status) ? c.status : [c.status];
      expect(statuses, `${answer.status} ${answer.text.slice(0, 300)}`).toContain(answer.status);
      expectError(answer, answer.status, c.code);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      await expectServing();
    });
  }

  it("nesting of exactly 64 levels is accepted", async () => {
    // The body object is level 1, args level 2, then 62 more arrays.
    const answer = await execute({ plugin: "Api", method: "echo", args: deep(63) });
    expect(answer.status, answer.text.slice(0, 200)).toBe(200);
  });

  it("a 2 MiB error answer is JSON too when the 413 is for /execute_stream", async () => {
    const answer = await send("/execute_stream", undefined, {
      raw: JSON.stringify({ plugin: "Api", method: "gen", args: ["y".repeat(2 * 1024 * 1024)] }),
    });
    expectError(answer, 413);
    await expectServing();
  });
});

describe("the WebSocket channel fed by hand", () => {
  const channelUrl = () => `${url.replace("http", "ws")}/aio/channel`;

  function open(): Promise<{ ws: WebSocket; packets: Json[]; closed: Promise<void> }> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(channelUrl());
      const packets: Json[] = [];
      const closed = new Promise<void>((r) => ws.once("close", () => r()));
      ws.on("message", (data) => {
        const value = JSON.parse(data.toString());
        if (Array.isArray(value)) packets.push(...value);
        else packets.push(value);
      });
      ws.once("open", () => resolve({ ws, packets, closed }));
      ws.once("error", reject);
    });
  }

  it("answers calls, and refuses endpoints that are not remote with ACCESS_DENIED", async () => {
    const { ws, packets } = await open();
    ws.send(JSON.stringify({ t: "call", id: 1, plugin: "Api", method: "add", args: [20, 22] }));
    ws.send(JSON.stringify({ t: "call", id: 2, plugin: "Api", method: "hidden", author: "Api" }));
    ws.send(JSON.stringify({ t: "call", id: 3, plugin: "Private", method: "who" }));
    ws.send(JSON.stringify({ t: "call", id: 4, method: "who" }));
    await waitFor(() => packets.length >= 4, "4 answers");
    const byId = Object.fromEntries(packets.map((p) => [p.id, p]));
    expect(byId[1]).toEqual({ t: "result", id: 1, value: 42 });
    expect(byId[2]).toMatchObject({ t: "error", error: { code: "ACCESS_DENIED" } });
    expect(byId[3]).toMatchObject({ t: "error", error: { code: "ACCESS_DENIED" } });
    expect(byId[4]).toMatchObject({ t: "error", error: { code: "BAD_REQUEST" } });
    ws.close();
  });

  for (const [name, message] of [
    ["invalid JSON", "{not json"],
    [
      "a __proto__ key",
      '{"t":"call","id":9,"plugin":"Api","method":"echo","args":[{"__proto__":{"x":1}}]}',
    ],
    [
      "nesting too deep",
      JSON.stringify({
        t: "call",
        id: 9,
        plugin: "Api",
        method: "echo",
        args: [JSON.parse(`${"[".repeat(80)}${"]".repeat(80)}`)],
      }),
    ],
    ["a binary message", Buffer.from([1, 2, 3])],
  ] as const) {
    it(`a channel sent ${name} is closed; the node keeps serving`, async () => {
      const { ws, packets, closed } = await open();
      ws.send(message);
      await closed;
      expect(packets.filter((p) => p.t === "result")).toEqual([]);
      await expectServing();
    });
  }

  it("an upgrade on another path is refused", async () => {
    const ws = new WebSocket(`${url.replace("http", "ws")}/not-the-channel`);
    const status = await new Promise<number>((resolve) => {
      ws.once("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      ws.once("error", () => resolve(-1));
    });
    expect(status).toBe(404);
    await expectServing();
  });
});

describe("what protocol.md tells a client written in another language", () => {
  it("a body that is not application/json is 415 BAD_REQUEST, whatever it holds", async () => {
    const call = JSON.stringify({ plugin: "Api", method: "add", args: [1, 2] });
    for (const type of ["text/plain", "application/x-www-form-urlencoded", null]) {
      const answer = await send("/execute", undefined, { raw: call, type, method: "POST" });
      expectError(answer, 415, "BAD_REQUEST");
      expect(answer.body.error.message).toBe("Unsupported Media Type");
    }
    const cased = await send("/execute", undefined, {
      raw: call,
      type: "Application/JSON; charset=utf-8",
    });
    expect(cased.body).toEqual({ result: 3 });
  });

  it("an unknown route, or a known path with another method, is 404 BAD_REQUEST", async () => {
    for (const [method, path] of [
      ["GET", "/nope"],
      ["POST", "/nope"],
      ["GET", "/execute"],
    ] as const) {
      const answer = await send(path, undefined, { method, type: null });
      expectError(answer, 404, "BAD_REQUEST");
      expect(answer.body.error.message).toBe(`no route ${method} ${path}`);
    }
  });

  it("/info contacts the sender back only when it names an instance and a port", async () => {
    const asked: string[] = [];
    const listener = createServer((request, response) => {
      asked.push(`${request.method} ${request.url}`);
      response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
    const port = (listener.address() as AddressInfo).port;
    try {
      // A client that is not a node: no instance, so nothing comes back.
      expect((await send("/info", { hostname: "client", port })).status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(asked).toEqual([]);
      // Naming an instance and a port makes the sender a node to contact, at its address.
      const instance = "not-a-node-0001";
      expect((await send("/info", { hostname: "client", port, instance })).status).toBe(200);
      await waitFor(() => asked.length > 0, "the node's contact back", 3000);
      expect(asked[0]).toBe("POST /info");
      expect(node.nodes().map((n) => n.hostname)).not.toContain("client");
    } finally {
      listener.closeAllConnections();
      listener.close();
    }
  });

  it("channel: a result of undefined is a result packet without value", async () => {
    const ws = new WebSocket(`${url.replace("http", "ws")}/aio/channel`);
    const packets: Json[] = [];
    ws.on("message", (data) => packets.push(...[JSON.parse(data.toString())].flat()));
    await new Promise((resolve) => ws.once("open", resolve));
    ws.send(JSON.stringify({ t: "call", id: 1, plugin: "Api", method: "nothing" }));
    ws.send(
      JSON.stringify({ t: "open", id: 2, credit: 8, plugin: "Api", method: "gen_undefined" }),
    );
    await waitFor(() => packets.some((p) => p.t === "end"), "the stream's end");
    expect(packets.find((p) => p.id === 1)).toStrictEqual({ t: "result", id: 1 });
    const items = packets.filter((p) => p.t === "items").flatMap((p) => p.items);
    expect(items).toEqual([null, null, 1]);
    ws.close();
  });

  it("channel: an id is in use until its call has ended on the node", async () => {
    store.finallyAt = 0;
    const ws = new WebSocket(`${url.replace("http", "ws")}/aio/channel`);
    const packets: Json[] = [];
    ws.on("message", (data) => packets.push(...[JSON.parse(data.toString())].flat()));
    await new Promise((resolve) => ws.once("open", resolve));
    const open = { t: "open", id: 5, credit: 4, plugin: "Api", method: "endless" };
    ws.send(JSON.stringify(open));
    await waitFor(() => packets.some((p) => p.t === "items"), "the first items");
    // Cancelled, and the same id used again at once: the stream is still closing.
    ws.send(JSON.stringify([{ t: "cancel", id: 5 }, open]));
    await waitFor(() => packets.some((p) => p.t === "error"), "the refusal");
    expect(packets.find((p) => p.t === "error")).toEqual({
      t: "error",
      id: 5,
      error: { code: "BAD_REQUEST", message: "request id 5 is already in use on this channel" },
    });
    // Nothing says when a cancelled stream's id is free again: once its generator has closed.
    await waitFor(() => store.finallyAt > 0, "the generator's finally");
    await new Promise((resolve) => setTimeout(resolve, 50));
    packets.length = 0;
    ws.send(JSON.stringify(open));
    await waitFor(() => packets.some((p) => p.t === "items"), "items of the new stream");
    // A cancelled call is answered (ABORTED here); its id is free once that answer is sent.
    packets.length = 0;
    ws.send(
      JSON.stringify([
        { t: "cancel", id: 5 },
        { t: "call", id: 6, plugin: "Api", method: "slow", args: [2000] },
        { t: "cancel", id: 6 },
      ]),
    );
    await waitFor(() => packets.some((p) => p.id === 6), "the cancelled call's answer");
    expect(packets.find((p) => p.id === 6)).toMatchObject({
      t: "error",
      error: { code: "ABORTED" },
    });
    ws.send(JSON.stringify({ t: "call", id: 6, plugin: "Api", method: "add", args: [1, 2] }));
    await waitFor(() => packets.some((p) => p.t === "result"), "the reused id's result");
    expect(packets.find((p) => p.t === "result")).toEqual({ t: "result", id: 6, value: 3 });
    ws.close();
  });
});
