/**
 * Limits against a real node: body size (413), nesting depth and prototype keys (400), calls
 * per peer (429 OVERLOADED over HTTP, OVERLOADED over the channel), the Host header check of a
 * node without a secret (421: only this machine's addresses, localhost, the node's hostname or
 * allowed_hosts, with the node's own port; a node with a secret accepts any Host and relies on
 * the signature alone), and slow senders that must not stop the node serving others.
 */
import { randomBytes } from "node:crypto";
import net from "node:net";
import { networkInterfaces } from "node:os";
import type { PluginCore } from "aio-assistant-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  API,
  answerMac,
  bodyOfRaw,
  cleanup,
  closeNode,
  failure,
  H_ANSWER,
  headerLines,
  instanceOf,
  openChannel,
  pluginDir,
  post,
  rawExchange,
  rawRequest,
  rep,
  shared,
  sharedRef,
  signedRequest,
  signHeaders,
  sleep,
  spawnNode,
  startNode,
  statusOfRaw,
  UNAUTHORIZED_TEXT,
  upgrade,
  waitFor,
  within,
} from "./helpers.js";

const SECRET = `limits-${randomBytes(24).toString("hex")}`;
const STORE = `__aioSecLimits${process.pid}`;
const gate = shared(STORE, {
  started: [] as string[],
  release: (() => undefined) as () => void,
  wait: Promise.resolve() as Promise<void>,
});
const S = sharedRef(STORE);

/** Closes the gate: calls to Gate.wait hang until {@link openGate}. */
function closeGate(): void {
  gate.started = [];
  gate.wait = new Promise<void>((resolve) => {
    gate.release = resolve;
  });
}
const openGate = () => gate.release();

let N1: PluginCore; // no secret, default limits, allowed_hosts
let N2: PluginCore; // secret, max_body_bytes 4096, max_calls_per_peer 3
let p1: number;
let p2: number;
/** Their instance ids, from their unsigned GET /ping. */
let i1: string;
let i2: string;
let dir: string;

beforeAll(async () => {
  dir = pluginDir({
    Api: API,
    Gate: {
      body: `
      async wait(tag: string) { ${S}.started.push(tag); await ${S}.wait; return tag; }
      async *waitStream(tag: string) { ${S}.started.push(tag); await ${S}.wait; yield tag; }
      quick() { return "quick"; }`,
      endpoints: [rep("wait", ["tag"]), rep("waitStream", ["tag"]), rep("quick")],
    },
  });
  N1 = await startNode({
    hostname: "limitnode",
    dir,
    plugins: ["Api", "Gate"],
    networking: { allowed_hosts: ["aio.internal"] },
  });
  N2 = await startNode({
    hostname: "n2",
    dir,
    plugins: ["Api", "Gate"],
    networking: { secret: SECRET, max_body_bytes: 4096, max_calls_per_peer: 3 },
  });
  p1 = N1.port as number;
  p2 = N2.port as number;
  i1 = await instanceOf(p1);
  i2 = await instanceOf(p2);
});

afterAll(async () => {
  openGate();
  await cleanup();
});

/** An /execute body of exactly `size` bytes: echo of a padded string. */
function bodyOfSize(size: number): string {
  const empty = JSON.stringify({ plugin: "Api", method: "echo", args: [""] });
  return JSON.stringify({ plugin: "Api", method: "echo", args: ["x".repeat(size - empty.length)] });
}

// ------------------------------------------------------------------------------------------

describe("body size", () => {
  it("default 1 MiB: exactly 1 MiB passes, one byte more → 413 PAYLOAD_TOO_LARGE", async () => {
    const ok = bodyOfSize(1024 * 1024);
    expect(ok.length).toBe(1024 * 1024);
    expect((await post(p1, undefined, "/execute", ok)).status).toBe(200);
    const big = await post(p1, undefined, "/execute", bodyOfSize(1024 * 1024 + 1));
    expect(big.status).toBe(413);
    expect(big.json.error.code).toBe("PAYLOAD_TOO_LARGE");
  });

  it("a declared Content-Length over the limit is refused before the body is sent", async () => {
    const head =
      "POST /execute HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
      `Content-Length: ${1024 * 1024 + 1}\r\n\r\n`;
    const { received, timedOut } = await rawExchange(p1, head, { timeoutMs: 3000 });
    expect(timedOut).toBe(false);
    expect(statusOfRaw(received)).toBe(413);
    expect(bodyOfRaw(received)).toMatchObject({ error: { code: "PAYLOAD_TOO_LARGE" } });
  });

  it("a chunked body growing over the limit → 413", async () => {
    const chunk = "x".repeat(64 * 1024);
    let bytes =
      "POST /execute HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
      "Transfer-Encoding: chunked\r\n\r\n";
    for (let i = 0; i < 20; i++) bytes += `${chunk.length.toString(16)}\r\n${chunk}\r\n`;
    bytes += "0\r\n\r\n";
    const { received } = await rawExchange(p1, bytes, { timeoutMs: 3000 });
    expect(statusOfRaw(received)).toBe(413);
  });

  it("configured 4096: a signed 4096-byte body passes, 4097 → 413; unsigned → 401", async () => {
    expect((await post(p2, SECRET, "/execute", bodyOfSize(4096))).status).toBe(200);
    const big = await post(p2, SECRET, "/execute", bodyOfSize(4097));
    expect(big.status).toBe(413);
    expect(big.json.error.code).toBe("PAYLOAD_TOO_LARGE");
    expect((await post(p2, undefined, "/execute", bodyOfSize(4097))).status).toBe(401);
  });

  it("over the channel: the calling node refuses to send a call over its limit", async () => {
    const B = await startNode({
      hostname: "bsize",
      dir,
      networking: { secret: SECRET, max_body_bytes: 4096, node_ips: [`127.0.0.1:${p2}`] },
    });
    try {
      const error = await failure(B.execute("Api", "echo", ["x".repeat(5000)], { host: "n2" }));
      expect(error.code).toBe("PAYLOAD_TOO_LARGE");
      expect(await B.execute("Api", "echo", ["small"], { host: "n2" })).toBe("small");
    } finally {
      await closeNode(B);
    }
  });

  it("over the channel: a message far over the limit closes the channel, the node lives", async () => {
    const child = await spawnNode({
      hostname: "victim",
      dir,
      plugins: ["Api"],
      networking: { secret: SECRET, max_body_bytes: 4096 },
    });
    try {
      const channel = await openChannel(child.port, SECRET);
      const huge = JSON.stringify({
        t: "call",
        id: 1,
        plugin: "Api",
        method: "echo",
        args: ["x".repeat(400 * 1024)],
      });
      channel.ws.send(channel.seal(huge));
      expect(await within(channel.closed, 3000)).toBe(true);
      expect(channel.messages).toEqual([]);
      await sleep(300);
      expect(child.alive()).toBe(true);
      const after = await post(child.port, SECRET, "/execute", {
        plugin: "Api",
        method: "add",
        args: [1, 2],
      });
      expect(after.json).toEqual({ result: 3 });
    } finally {
      await child.stop();
    }
  });
});

// ------------------------------------------------------------------------------------------

/** `args: [X]` where X nests `k` arrays: the deepest array is at depth k + 2 of the body. */
function nested(k: number, object = false): string {
  const open = object ? '{"a":' : "[";
  const close = object ? "}" : "]";
  return `{"plugin":"Api","method":"echo","args":[${open.repeat(k - 1)}${object ? "{}" : "[]"}${close.repeat(k - 1)}]}`;
}

describe("nesting depth", () => {
  it("depth 64 passes, 65 → 400 BAD_REQUEST", async () => {
    for (const object of [false, true]) {
      const ok = await post(p1, undefined, "/execute", nested(62, object));
      expect(ok.status).toBe(200);
      const deep = await post(p1, undefined, "/execute", nested(63, object));
      expect(deep.status).toBe(400);
      expect(deep.json.error).toMatchObject({ code: "BAD_REQUEST" });
      expect(deep.json.error.message).toMatch(/deeper than 64/);
    }
  });

  it("100,000 levels → 400 at once, on every route with a body, signed or not", async () => {
    const deep = (path: string, levels: number) =>
      path === "/info"
        ? `{"hostname":${"[".repeat(levels)}${"]".repeat(levels)}}`
        : `{"plugin":"Api","method":"echo","args":${"[".repeat(levels)}${"]".repeat(levels)}}`;
    for (const path of ["/execute", "/execute_stream", "/info"]) {
      const open = await post(p1, undefined, path, deep(path, 100_000));
      // Under the 4096-byte limit of the node with a secret.
      const signed = await post(p2, SECRET, path, deep(path, 1500));
      for (const answer of [open, signed]) {
        expect(answer.status).toBe(400);
        expect(answer.json.error.code).toBe("BAD_REQUEST");
      }
    }
  });
});

// ------------------------------------------------------------------------------------------

describe("prototype keys", () => {
  const bodies: Array<[string, string, string]> = [
    ["__proto__ at the top", "/execute", '{"__proto__":{"x":1},"plugin":"Api","method":"echo"}'],
    ["constructor at the top", "/execute", '{"constructor":1,"plugin":"Api","method":"echo"}'],
    ["prototype at the top", "/execute", '{"prototype":1,"plugin":"Api","method":"echo"}'],
    [
      "nested in args",
      "/execute",
      '{"plugin":"Api","method":"echo","args":{"v":{"a":{"constructor":{}}}}}',
    ],
    ["inside arrays", "/execute", '{"plugin":"Api","method":"echo","args":[[[{"prototype":0}]]]}'],
    [
      "written with escapes",
      "/execute",
      '{"plugin":"Api","method":"echo","args":{"\\u005f\\u005fproto\\u005f\\u005f":{}}}',
    ],
    [
      "in a stream call",
      "/execute_stream",
      '{"plugin":"Api","method":"count","args":{"n":1,"__proto__":null}}',
    ],
    ["in /info", "/info", '{"hostname":"x","__proto__":{"admin":true}}'],
  ];

  it.each(bodies)("%s → 400 BAD_REQUEST, signed or not", async (_name, path, body) => {
    for (const [target, secret] of [
      [p1, undefined],
      [p2, SECRET],
    ] as const) {
      const answer = await post(target, secret, path, body);
      expect(answer.status).toBe(400);
      expect(answer.json.error.code).toBe("BAD_REQUEST");
      expect(answer.json.error.message).toMatch(/forbidden key/);
    }
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });

  it("the same words as values are fine (the control)", async () => {
    const answer = await post(p1, undefined, "/execute", {
      plugin: "Api",
      method: "echo",
      args: [["__proto__", "constructor", "prototype"]],
    });
    expect(answer.json).toEqual({ result: ["__proto__", "constructor", "prototype"] });
  });
});

// ------------------------------------------------------------------------------------------

describe("calls per peer (max_calls_per_peer: 3)", () => {
  const call = (tag: string, path = "/execute", localAddress?: string) =>
    post(
      p2,
      SECRET,
      path,
      { plugin: "Gate", method: path === "/execute" ? "wait" : "waitStream", args: [tag] },
      localAddress ? { localAddress } : {},
    );

  it("over HTTP: the 4th concurrent call → 429 OVERLOADED; the 3 allowed complete", async () => {
    closeGate();
    const held = ["h1", "h2", "h3"].map((tag) => call(tag));
    await waitFor(() => gate.started.length === 3, "three calls running");
    const refused = await call("h4");
    expect(refused.status).toBe(429);
    expect(refused.json.error.code).toBe("OVERLOADED");
    const refusedStream = await call("h5", "/execute_stream");
    expect(refusedStream.status).toBe(429);
    expect(refusedStream.json.error.code).toBe("OVERLOADED");
    // Another peer address is not affected.
    const other = await post(
      p2,
      SECRET,
      "/execute",
      { plugin: "Gate", method: "quick" },
      { localAddress: "127.0.0.2" },
    );
    expect(other.json).toEqual({ result: "quick" });
    expect(gate.started).toEqual(["h1", "h2", "h3"]);
    openGate();
    expect((await Promise.all(held)).map((a) => a.json)).toEqual([
      { result: "h1" },
      { result: "h2" },
      { result: "h3" },
    ]);
    // Released: the peer can call again.
    await waitFor(async () => (await call("after")).status === 200, "the peer's slots freed");
  });

  it("over the channel: the 4th call of one batch → OVERLOADED; the 3 allowed complete", async () => {
    closeGate();
    const channel = await openChannel(p2, SECRET);
    const packets = [1, 2, 3, 4].map((id) => ({
      t: "call",
      id,
      plugin: "Gate",
      method: "wait",
      args: [`c${id}`],
    }));
    channel.ws.send(channel.seal(JSON.stringify(packets)));
    await waitFor(() => channel.messages.length >= 1, "the refusal");
    expect(channel.messages).toEqual([
      expect.objectContaining({
        t: "error",
        id: 4,
        error: expect.objectContaining({ code: "OVERLOADED" }),
      }),
    ]);
    expect(gate.started).toEqual(["c1", "c2", "c3"]);
    // HTTP from the same address shares the count.
    expect((await call("x")).status).toBe(429);
    openGate();
    await waitFor(() => channel.messages.length >= 4, "the three results");
    expect(channel.messages.slice(1)).toEqual([
      { t: "result", id: 1, value: "c1" },
      { t: "result", id: 2, value: "c2" },
      { t: "result", id: 3, value: "c3" },
    ]);
    channel.ws.terminate();
  });

  it("between real nodes: the 4th concurrent execute → OVERLOADED", async () => {
    const B = await startNode({
      hostname: "bpeer",
      dir,
      networking: { secret: SECRET, node_ips: [`127.0.0.1:${p2}`] },
    });
    try {
      closeGate();
      const held = ["r1", "r2", "r3"].map((tag) =>
        B.execute("Gate", "wait", [tag], { host: "n2" }),
      );
      await waitFor(() => gate.started.length === 3, "three calls running");
      const error = await failure(B.execute("Gate", "wait", ["r4"], { host: "n2" }));
      expect(error.code).toBe("OVERLOADED");
      openGate();
      expect(await Promise.all(held)).toEqual(["r1", "r2", "r3"]);
    } finally {
      openGate();
      await closeNode(B);
    }
  });
});

// ------------------------------------------------------------------------------------------

/** This machine's own addresses (as a Host names them), and addresses of no interface here. */
const ownAddresses = Object.values(networkInterfaces())
  .flat()
  .filter((i) => i !== undefined)
  .map((i) => (i.family === "IPv6" ? `[${i.address}]` : i.address))
  .filter((a) => !a.includes("%"));
const FOREIGN = ["10.1.2.3", "192.0.2.1", "203.0.113.9", "8.8.8.8", "[2001:db8::1]"].filter(
  (a) => !ownAddresses.includes(a),
);

const QUICK = JSON.stringify({ plugin: "Gate", method: "quick" });

/**
 * On the node with a secret (N2) the Host is not looked at: with `host`, a signed call runs
 * (its answer signed), an unsigned one gets the bare 401, and the unsigned /ping answers.
 */
async function onlyTheSignatureCounts(host: string): Promise<void> {
  const signed = await signedRequest(p2, SECRET, {
    method: "POST",
    path: "/execute",
    body: QUICK,
    headers: { host },
  });
  expect(signed.status, host).toBe(200);
  expect(signed.json).toEqual({ result: "quick" });
  expect(signed.headers[H_ANSWER]).toBe(answerMac(SECRET, signed.nonce, signed.text));
  const unsigned = await post(p2, undefined, "/execute", QUICK, { headers: { host } });
  expect(unsigned.status, host).toBe(401);
  expect(unsigned.text).toBe(UNAUTHORIZED_TEXT);
  const ping = await rawRequest(p2, { path: "/ping", headers: { host } });
  expect(ping.status, host).toBe(200);
  expect(ping.json).toEqual({ status: "ok", instance: i2, time: expect.any(Number) });
}

describe("Host header (DNS rebinding)", () => {
  const refused = [
    "evil.example",
    "evil.example:80",
    "127.0.0.1.evil.example",
    "localhost.evil.example",
    "limitnode.evil.example",
    "aio.internal.evil.example",
    "0x7f000001",
    "localhost.",
    // An address of another machine, and this node's names with another port.
    ...FOREIGN,
    "LimitNode:1234",
    "localhost:1",
  ];
  const accepted = [
    "127.0.0.1",
    "127.0.0.2",
    "localhost",
    "LOCALHOST",
    "[::1]",
    "limitnode",
    "limitnode.local",
    "LimitNode",
    "aio.internal",
    ...ownAddresses.filter((a) => a !== "127.0.0.1" && a !== "[::1]"),
  ];

  it.each(refused)(
    "Host %s → 421 on every route without a secret; with one, only the signature counts",
    async (host) => {
      for (const port of [`:${p1}`, ""]) {
        const ping = await rawRequest(p1, { path: "/ping", headers: { host: `${host}${port}` } });
        expect(ping.status).toBe(421);
        expect(ping.json.error).toMatchObject({ code: "ACCESS_DENIED" });
      }
      const exec = await post(
        p1,
        undefined,
        "/execute",
        { plugin: "Gate", method: "quick" },
        { headers: { host } },
      );
      expect(exec.status).toBe(421);
      const ws = await upgrade(p1, { host });
      expect(ws.status).toBe(421);
      // A node with a secret does not check the Host (a web page cannot sign).
      await onlyTheSignatureCounts(host);
    },
  );

  it.each(accepted)("Host %s passes, alone or with this node's port", async (host) => {
    for (const value of [host, `${host}:${p1}`]) {
      const ping = await rawRequest(p1, { path: "/ping", headers: { host: value } });
      expect(ping.status, value).toBe(200);
      // Without a secret, the unsigned /ping names the node too.
      expect(ping.json).toEqual({
        status: "ok",
        hostname: "limitnode",
        instance: i1,
        time: expect.any(Number),
      });
    }
  });
});

describe("Host header: this node's own addresses and port only", () => {
  it("this machine's own address or name with another port → 421 without a secret, signature headers or not", async () => {
    const names = ["127.0.0.1", "localhost", "limitnode", "[::1]", "aio.internal", ...ownAddresses];
    for (const name of names) {
      for (const other of [p1 + 1, p2, 80, 2510].filter((p) => p !== p1)) {
        const host = `${name}:${other}`;
        const ping = await rawRequest(p1, { path: "/ping", headers: { host } });
        expect(ping.status, host).toBe(421);
        expect(ping.json.error.code).toBe("ACCESS_DENIED");
        const ws = await upgrade(p1, { host });
        expect(ws.status, host).toBe(421);
        // Signature headers (which a node without a secret has no use for) change nothing.
        const signed = await post(p1, undefined, "/execute", QUICK, {
          headers: { host, ...signHeaders(SECRET, "POST", i1, "/execute", QUICK) },
        });
        expect(signed.status, host).toBe(421);
        expect(signed.json.error.code).toBe("ACCESS_DENIED");
      }
    }
    // The control: the right port passes.
    const right = await post(p1, undefined, "/execute", QUICK, {
      headers: { host: `localhost:${p1}` },
    });
    expect(right.json).toEqual({ result: "quick" });
  });

  it("with a secret, any port in the Host: a signed request is served, an unsigned one gets 401", async () => {
    for (const host of [
      `127.0.0.1:${p1}`,
      `localhost:${p2 + 1}`,
      "localhost:80",
      `n2:${p2 + 1}`,
      `[::1]:2510`,
      `localhost:${p2}`,
    ]) {
      await onlyTheSignatureCounts(host);
    }
  });

  it("an IP address of another machine → 421 without a secret, also with this node's port", async () => {
    expect(FOREIGN.length).toBeGreaterThan(0);
    for (const address of FOREIGN) {
      for (const host of [address, `${address}:${p1}`]) {
        const answer = await post(p1, undefined, "/execute", QUICK, { headers: { host } });
        expect(answer.status, host).toBe(421);
        expect(answer.json.error.code).toBe("ACCESS_DENIED");
      }
    }
  });

  it("an IP address of another machine, with a secret: only the signature counts", async () => {
    expect(FOREIGN.length).toBeGreaterThan(0);
    for (const address of FOREIGN) {
      for (const host of [address, `${address}:${p2}`]) await onlyTheSignatureCounts(host);
    }
  });

  it("allowed_hosts (without a secret): `name` with this node's port, `name:port` with that port only", async () => {
    const N3 = await startNode({
      hostname: "n3",
      dir,
      plugins: ["Gate"],
      networking: { allowed_hosts: ["gateway.example:8443", "aio.internal"] },
    });
    const p3 = N3.port as number;
    const send = (host: string) => post(p3, undefined, "/execute", QUICK, { headers: { host } });
    try {
      for (const host of [
        "gateway.example:8443",
        "Gateway.EXAMPLE:8443",
        "aio.internal",
        `aio.internal:${p3}`,
      ]) {
        const answer = await send(host);
        expect(answer.status, host).toBe(200);
        expect(answer.json).toEqual({ result: "quick" });
      }
      for (const host of [
        "gateway.example",
        `gateway.example:${p3}`,
        "gateway.example:8444",
        "aio.internal:8443",
        "gateway.example:8443.evil.example",
      ]) {
        const answer = await send(host);
        expect(answer.status, host).toBe(421);
        expect(answer.json.error.code).toBe("ACCESS_DENIED");
      }
      // The channel through the allowed name:port (as a peer behind port forwarding opens it),
      // and not through another port.
      const ws = await upgrade(p3, { host: "gateway.example:8443" });
      expect(ws.status).toBe(101);
      ws.ws.terminate();
      expect((await upgrade(p3, { host: "gateway.example:8444" })).status).toBe(421);
    } finally {
      await closeNode(N3);
    }
  });

  it("with a secret no allowed_hosts is needed: the same Hosts all pass when signed", async () => {
    // N2 has no allowed_hosts: a port forward or a name of the gateway needs no configuration.
    for (const host of [
      "gateway.example:8443",
      "gateway.example",
      "gateway.example:8444",
      "aio.internal:8443",
      "gateway.example:8443.evil.example",
    ]) {
      await onlyTheSignatureCounts(host);
    }
    // The channel too, signed for N2's instance, through a name:port it was never told of.
    const headers = signHeaders(SECRET, "GET", i2, "/aio/channel", "");
    const ws = await upgrade(p2, { ...headers, host: "gateway.example:8444" });
    expect(ws.status).toBe(101);
    ws.ws.terminate();
    // Unsigned through the same Host: 401.
    const refused = await upgrade(p2, { host: "gateway.example:8444" });
    expect(refused.status).toBe(401);
    expect(refused.body).toBe(UNAUTHORIZED_TEXT);
  });
});

// ------------------------------------------------------------------------------------------

describe("slow senders", () => {
  function trickle(port: number, bytes: string, everyMs: number): net.Socket {
    const socket = net.connect(port, "127.0.0.1");
    socket.on("error", () => undefined);
    let i = 0;
    const timer = setInterval(() => {
      if (socket.destroyed || i >= bytes.length) return clearInterval(timer);
      socket.write(bytes[i++] as string);
    }, everyMs);
    socket.on("close", () => clearInterval(timer));
    return socket;
  }

  it("a sender trickling headers or a body byte by byte does not stop the node serving", async () => {
    const headers = `POST /execute HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ${"a".repeat(500)}\r\n`;
    const bodyHead =
      "POST /execute HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n";
    const slow = [
      ...Array.from({ length: 20 }, () => trickle(p1, headers, 20)),
      ...Array.from({ length: 20 }, () => {
        const socket = net.connect(p1, "127.0.0.1");
        socket.on("error", () => undefined);
        socket.write(bodyHead);
        const timer = setInterval(
          () => (socket.destroyed ? clearInterval(timer) : socket.write(" ")),
          20,
        );
        socket.on("close", () => clearInterval(timer));
        return socket;
      }),
      // The same against the node with a secret: signed headers, trickled body.
      ...Array.from({ length: 5 }, () => {
        const socket = net.connect(p2, "127.0.0.1");
        socket.on("error", () => undefined);
        const signed = signHeaders(SECRET, "POST", i2, "/execute", " ".repeat(4000));
        socket.write(
          `POST /execute HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n${headerLines(signed)}\r\n`,
        );
        const timer = setInterval(
          () => (socket.destroyed ? clearInterval(timer) : socket.write(" ")),
          20,
        );
        socket.on("close", () => clearInterval(timer));
        return socket;
      }),
    ];
    try {
      await sleep(200);
      for (let round = 0; round < 10; round++) {
        const answers = await Promise.all([
          post(p1, undefined, "/execute", { plugin: "Api", method: "add", args: [round, 1] }),
          post(p2, SECRET, "/execute", { plugin: "Api", method: "add", args: [round, 2] }),
        ]);
        expect(answers.map((a) => a.json)).toEqual([{ result: round + 1 }, { result: round + 2 }]);
        await sleep(50);
      }
      // The slow senders are still connected (cut off later, by the read timeout).
      expect(slow.filter((s) => !s.destroyed).length).toBe(slow.length);
    } finally {
      for (const socket of slow) socket.destroy();
    }
  });
});

// The default read timeout is 10 s; a node with read_timeout: 1 shows the cut-off quickly.
describe("slow senders are cut off (read_timeout: 1)", () => {
  it("a sender trickling its headers is cut off, told so in the protocol's shape", async () => {
    const node = await startNode({
      hostname: "impatient",
      dir,
      plugins: ["Api"],
      networking: { read_timeout: 1 },
    });
    const socket = net.connect(node.port as number, "127.0.0.1");
    socket.on("error", () => undefined);
    const started = Date.now();
    const closed = new Promise<number>((resolve) =>
      socket.on("close", () => resolve(Date.now() - started)),
    );
    // Read what the node answers: a paused socket never sees the end, so never closes.
    let answer = "";
    socket.on("data", (chunk: Buffer) => {
      answer += chunk.toString("latin1");
    });
    const timer = setInterval(() => socket.write("a"), 200);
    socket.write("GET /ping HTTP/1.1\r\nX-Pad: ");
    // Bytes keep coming every 200 ms, so only the read timeout can end this.
    const took = await Promise.race([closed, sleep(8_000).then(() => Infinity)]);
    clearInterval(timer);
    socket.destroy();
    expect(took).toBeLessThan(8_000);
    expect(await node.execute("Api", "add", [1, 2])).toBe(3);
    // Told so in the protocol's shape before the node closes the connection.
    expect(statusOfRaw(answer)).toBeGreaterThanOrEqual(400);
    expect(statusOfRaw(answer)).toBeLessThan(500);
    expect(bodyOfRaw(answer)).toMatchObject({ error: { code: "BAD_REQUEST" } });
  }, 15_000);
});
