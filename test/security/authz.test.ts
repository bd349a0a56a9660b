/**
 * Authorization on the serving side, whatever the caller claims: a remote call reaches only
 * what the plugin and the endpoint both open with `remote: true`, `allowed_nodes` is enforced
 * (and such plugins are hidden from `/info` for other nodes), only declared endpoints can be
 * called by their access names, and a remote caller cannot make a node call a third one (nor
 * make it load code from outside its plugin folder through the operator route POST /admin).
 * Checked over HTTP (signed, and on a node without a secret) and over the channel.
 */
import { randomBytes } from "node:crypto";
import { join, relative } from "node:path";
import type { PluginCore } from "aio-assistant-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  cleanup,
  failure,
  openChannel,
  pluginDir,
  post,
  rep,
  shared,
  sharedRef,
  startNode,
  waitFor,
} from "./helpers.js";

const SECRET = `authz-${randomBytes(24).toString("hex")}`;
const STORE = `__aioSecAuthz${process.pid}`;
const ran = shared(STORE, { calls: [] as string[] });
const S = sharedRef(STORE);
const mark = (name: string) => `${S}.calls.push(${JSON.stringify(name)});`;

let pluginsDir: string; // A's and A0's plugin_package
let A: PluginCore; // secret, serves the plugins below
let A0: PluginCore; // no secret (loopback), same plugins
let D: PluginCore; // a third node A knows, serving Far
let port: number;
let port0: number;

beforeAll(async () => {
  const dir = pluginDir({
    Open: {
      body: `
      pub() { ${mark("Open.pub")} return "pub"; }
      priv() { ${mark("Open.priv")} return "priv"; }
      internal() { ${mark("Open.internal")} return "internal"; }
      realName() { ${mark("Open.realName")} return "aliased"; }
      *gen() { yield 1; }
      *privGen() { ${mark("Open.privGen")} yield 1; }
      override toString() { ${mark("Open.toString")} return "Open!"; }`,
      endpoints: [
        rep("pub"),
        { internal_name: "priv", remote: false },
        { internal_name: "realName", access_name: "alias", remote: true },
        rep("gen"),
        { internal_name: "privGen", remote: false },
      ],
    },
    Closed: {
      remote: false,
      body: `pub() { ${mark("Closed.pub")} return "closed"; }`,
      endpoints: [rep("pub", [], { accessible_by_other_plugins: true })],
    },
    Restricted: {
      body: `pub() { ${mark("Restricted.pub")} return "restricted"; }`,
      endpoints: [rep("pub")],
    },
    Far: {
      body: `x() { ${mark("Far.x")} return "far"; }`,
      endpoints: [rep("x")],
    },
  });
  pluginsDir = join(dir, "plugins");
  const plugins = ["Open", "Closed", { name: "Restricted", allowed_nodes: ["friend"] }];
  D = await startNode({ hostname: "delta", dir, plugins: ["Far"], networking: { secret: SECRET } });
  A = await startNode({
    hostname: "alpha",
    dir,
    plugins,
    networking: { secret: SECRET, node_ips: [`127.0.0.1:${D.port}`] },
  });
  A0 = await startNode({ hostname: "alpha0", dir, plugins });
  port = A.port as number;
  port0 = A0.port as number;
});

afterAll(cleanup);

const exec = (body: object, target = port, secret: string | undefined = SECRET) =>
  post(target, secret, "/execute", body);
const stream = (body: object, target = port, secret: string | undefined = SECRET) =>
  post(target, secret, "/execute_stream", body);

describe("remote: true is required of the plugin and the endpoint", () => {
  const cases: Array<[string, object]> = [
    ["a plugin without remote: true", { plugin: "Closed", method: "pub" }],
    [
      "... even with author set to the plugin's own name",
      { plugin: "Closed", method: "pub", author: "Closed" },
    ],
    [
      "... and author_host set to the serving node's own hostname",
      { plugin: "Closed", method: "pub", author: "Closed", author_host: "alpha" },
    ],
    [
      "... and by its plugin_uuid",
      { plugin: "Closed", method: "pub", author: "Closed", plugin_uuid: "UUID" },
    ],
    ["an endpoint without remote: true", { plugin: "Open", method: "priv" }],
    [
      "... even with author set to the plugin's own name",
      { plugin: "Open", method: "priv", author: "Open", author_host: "alpha" },
    ],
  ];

  it.each(cases)("%s → 403 ACCESS_DENIED (signed HTTP)", async (_name, call) => {
    const body = { ...call } as Record<string, unknown>;
    if (body.plugin_uuid === "UUID") body.plugin_uuid = A.getPluginInfo("Closed")?.uuid;
    const before = ran.calls.length;
    const answer = await exec(body);
    expect(answer.status).toBe(403);
    expect(answer.json.error.code).toBe("ACCESS_DENIED");
    expect(ran.calls.length).toBe(before);
  });

  it("a generator endpoint without remote: true → ACCESS_DENIED on /execute_stream", async () => {
    const answer = await stream({ plugin: "Open", method: "privGen", author: "Open" });
    expect(answer.status).toBe(403);
    expect(answer.json.error.code).toBe("ACCESS_DENIED");
    expect(ran.calls).not.toContain("Open.privGen");
  });

  it("the same on a node without a secret: HTTP callers are remote callers too", async () => {
    for (const call of cases.map(([, c]) => c).filter((c) => !("plugin_uuid" in c))) {
      const answer = await exec(call, port0, undefined);
      expect(answer.status).toBe(403);
      expect(answer.json.error.code).toBe("ACCESS_DENIED");
    }
    expect((await exec({ plugin: "Open", method: "pub" }, port0, undefined)).json).toEqual({
      result: "pub",
    });
  });

  it("the same over the channel, whatever the packet claims", async () => {
    const channel = await openChannel(port, SECRET);
    channel.send({
      t: "call",
      id: 1,
      plugin: "Closed",
      method: "pub",
      author: "Closed",
      author_host: "alpha",
    });
    channel.send({ t: "call", id: 2, plugin: "Open", method: "priv", author: "Open" });
    channel.send({
      t: "open",
      id: 3,
      credit: 8,
      plugin: "Open",
      method: "privGen",
      author: "Open",
    });
    channel.send({ t: "call", id: 4, plugin: "Open", method: "pub" });
    await waitFor(() => channel.messages.length >= 4, "four answers");
    const byId = new Map(channel.messages.map((m) => [(m as { id: number }).id, m]));
    for (const id of [1, 2, 3]) {
      expect(byId.get(id)).toMatchObject({ t: "error", id, error: { code: "ACCESS_DENIED" } });
    }
    expect(byId.get(4)).toEqual({ t: "result", id: 4, value: "pub" });
    expect(channel.badMacs).toEqual([]);
    channel.ws.terminate();
  });

  it("a remote-open endpoint works (the control)", async () => {
    expect((await exec({ plugin: "Open", method: "pub" })).json).toEqual({ result: "pub" });
    expect((await exec({ plugin: "Open", method: "alias" })).json).toEqual({ result: "aliased" });
  });
});

describe("allowed_nodes", () => {
  it("refuses other nodes, and a caller that names no node (its address is not allowed)", async () => {
    for (const author_host of [undefined, "stranger", "alpha", "FRIEND", "friend "]) {
      const answer = await exec({ plugin: "Restricted", method: "pub", author_host });
      expect(answer.status).toBe(403);
      expect(answer.json.error.code).toBe("ACCESS_DENIED");
      expect(answer.json.error.message).toMatch(/allowed_nodes/);
    }
    expect(ran.calls).not.toContain("Restricted.pub");
  });

  it("lets the allowed node call (by the hostname it states: see docs/security.md)", async () => {
    const answer = await exec({ plugin: "Restricted", method: "pub", author_host: "friend" });
    expect(answer.json).toEqual({ result: "restricted" });
  });

  it("hides the plugin from /info for other nodes", async () => {
    const names = async (hostname: string) => {
      const answer = await post(port, SECRET, "/info", { hostname, port: 0 });
      expect(answer.status).toBe(200);
      return (answer.json.endpoints as Array<{ plugin: string; access_name: string }>)
        .map((e) => `${e.plugin}.${e.access_name}`)
        .sort();
    };
    expect(await names("stranger")).toEqual(["Open.alias", "Open.gen", "Open.pub"]);
    expect(await names("friend")).toEqual(["Open.alias", "Open.gen", "Open.pub", "Restricted.pub"]);
  });

  it("between real nodes: the allowed node sees and calls it, another does not", async () => {
    const dir = pluginDir({});
    const friend = await startNode({
      hostname: "friend",
      dir,
      networking: { secret: SECRET, node_ips: [`127.0.0.1:${port}`] },
    });
    const stranger = await startNode({
      hostname: "stranger",
      dir,
      networking: { secret: SECRET, node_ips: [`127.0.0.1:${port}`] },
    });
    const plugins = (core: PluginCore) => core.nodes().find((n) => n.hostname === "alpha")?.plugins;
    expect(plugins(friend)).toContain("Restricted");
    expect(plugins(stranger)).not.toContain("Restricted");
    expect(plugins(stranger)).not.toContain("Closed");
    expect(await friend.execute("Restricted", "pub", undefined, { host: "alpha" })).toBe(
      "restricted",
    );
    const runs = () => ran.calls.filter((c) => c === "Restricted.pub").length;
    const before = runs();
    const error = await failure(
      stranger.execute("Restricted", "pub", undefined, { host: "alpha" }),
    );
    // Refused by the calling node itself: alpha's /info lists the endpoint as closed to it,
    // with the reason (docs/protocol.md), so the error says why rather than "not found".
    expect(error.code).toBe("ACCESS_DENIED");
    expect(error.message).toMatch(/allowed_nodes/);
    expect(runs()).toBe(before);
  });

  it("over the channel: a packet naming another node is refused", async () => {
    const channel = await openChannel(port, SECRET);
    channel.send({
      t: "call",
      id: 1,
      plugin: "Restricted",
      method: "pub",
      author_host: "stranger",
    });
    channel.send({ t: "call", id: 2, plugin: "Restricted", method: "pub" });
    await waitFor(() => channel.messages.length >= 2, "two answers");
    for (const message of channel.messages) {
      expect(message).toMatchObject({ t: "error", error: { code: "ACCESS_DENIED" } });
    }
    channel.ws.terminate();
  });
});

describe("only declared endpoints, by their access names", () => {
  const methods = [
    "internal",
    "realName",
    "constructor",
    "__proto__",
    "prototype",
    "toString",
    "valueOf",
    "hasOwnProperty",
    "__defineGetter__",
    "onLoad",
    "onEnable",
    "onDisable",
    "execute",
    "executeSync",
    "executeStream",
    "PUB",
    "pub ",
    "",
  ];

  it.each(methods.filter(Boolean))("method %j → 404 ENDPOINT_NOT_FOUND", async (method) => {
    const before = ran.calls.length;
    for (const answer of [
      await exec({ plugin: "Open", method, author: "Open" }),
      await stream({ plugin: "Open", method, author: "Open" }),
      await exec({ plugin: "Open", method }, port0, undefined),
    ]) {
      expect(answer.status).toBe(404);
      expect(answer.json.error.code).toBe("ENDPOINT_NOT_FOUND");
    }
    expect(ran.calls.length).toBe(before);
  });

  it("an empty method name is a bad request", async () => {
    const answer = await exec({ plugin: "Open", method: "" });
    expect(answer.status).toBe(400);
    expect(answer.json.error.code).toBe("BAD_REQUEST");
  });

  it.each(["__proto__", "constructor", "toString", "hasOwnProperty", "Object", "Plugin"])(
    "plugin %j → 404 PLUGIN_NOT_FOUND",
    async (plugin) => {
      const answer = await exec({ plugin, method: "pub" });
      expect(answer.status).toBe(404);
      expect(answer.json.error.code).toBe("PLUGIN_NOT_FOUND");
    },
  );

  it("over the channel too", async () => {
    const channel = await openChannel(port, SECRET);
    const names = ["internal", "constructor", "__proto__", "toString", "onLoad", "onEnable"];
    names.forEach((method, i) => {
      channel.send({ t: "call", id: i + 1, plugin: "Open", method, author: "Open" });
    });
    await waitFor(() => channel.messages.length >= names.length, "the answers");
    for (const message of channel.messages) {
      expect(message).toMatchObject({ t: "error", error: { code: "ENDPOINT_NOT_FOUND" } });
    }
    expect(ran.calls.filter((c) => c === "Open.internal" || c === "Open.toString")).toEqual([]);
    channel.ws.terminate();
  });
});

describe("what a refused remote caller learns", () => {
  it("ENDPOINT_NOT_FOUND names no endpoint the caller may not call", async () => {
    const open = await exec({ plugin: "Open", method: "bogus" });
    expect(open.json.error.code).toBe("ENDPOINT_NOT_FOUND");
    expect(open.json.error.message).not.toMatch(/\bpriv\b|privGen/);
    const closed = await exec({ plugin: "Closed", method: "bogus" });
    expect(closed.json.error.message).not.toMatch(/\bpub\b/);
    const restricted = await exec({
      plugin: "Restricted",
      method: "bogus",
      author_host: "stranger",
    });
    expect(restricted.json.error.message).not.toMatch(/\bpub\b/);
  });

  it("ACCESS_DENIED says why, and nothing of the plugin's code or files", async () => {
    const answer = await exec({ plugin: "Closed", method: "pub" });
    expect(answer.json.error.message).toMatch(/remote: true/);
    expect(answer.text).not.toMatch(/\/tmp\/|plugin\.ts|at .*\(/);
    const allowed = ["code", "message", "request_id", "plugin", "method", "host", "error_name"];
    for (const key of Object.keys(answer.json.error)) expect(allowed).toContain(key);
  });
});

describe("a remote caller cannot make a node call a third one", () => {
  it("a call for a plugin only a node it knows serves is PLUGIN_NOT_FOUND, not forwarded", async () => {
    // The application on alpha may reach delta's plugin...
    expect(await A.execute("Far", "x")).toBe("far");
    const before = ran.calls.filter((c) => c === "Far.x").length;
    // ...a remote caller asking alpha may not.
    for (const answer of [
      await exec({ plugin: "Far", method: "x" }),
      await exec({ plugin: "Far", method: "x", author_host: "alpha" }),
    ]) {
      expect(answer.status).toBe(404);
      expect(answer.json.error.code).toBe("PLUGIN_NOT_FOUND");
    }
    expect(ran.calls.filter((c) => c === "Far.x").length).toBe(before);
  });
});

describe("the operator route POST /admin", () => {
  it("cannot make a node load code from outside its plugin folder", async () => {
    const outside = pluginDir({
      Evil: {
        header: `${mark("Evil.imported")}`,
        body: `hello() { return "evil"; }`,
        endpoints: [{ internal_name: "hello", remote: false }],
      },
    });
    const folder = join(outside, "plugins", "Evil");
    const names = [folder, relative(pluginsDir, folder)];
    try {
      for (const [target, secret] of [
        [port0, undefined],
        [port, SECRET],
      ] as const) {
        for (const plugin of names) {
          const answer = await post(target, secret, "/admin", { action: "load", plugin });
          expect(answer.status, `${plugin}: ${answer.text}`).toBeGreaterThanOrEqual(400);
          expect(answer.status, `${plugin}: ${answer.text}`).toBeLessThan(500);
        }
      }
      expect(ran.calls).not.toContain("Evil.imported");
    } finally {
      for (const core of [A0, A]) {
        for (const plugin of names) await core.popPlugin(plugin).catch(() => undefined);
      }
    }
  });
});
