/**
 * Authentication with the shared secret, against real nodes: every route refuses unsigned,
 * forged, stale, malformed and replayed requests with a bare 401; answers, streams, the
 * channel and heartbeats are authenticated too; the secret never crosses the network; a node
 * with the wrong secret, or a server that cannot prove it knows the secret, gets nowhere.
 *
 * Signing is reimplemented in helpers.ts from docs/security.md; one test cross-checks it with
 * the built `dist/net/auth.js`.
 */
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { PluginCore } from "aio-assistant-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import {
  API,
  answerMac,
  type Channel,
  cleanup,
  closeNode,
  failure,
  H_ANSWER,
  H_NONCE,
  H_SIG,
  H_TIME,
  mac,
  openChannel,
  pingDatagram,
  pingMac,
  pluginDir,
  pongMac,
  post,
  type RawAnswer,
  rawRequest,
  readLog,
  recordingProxy,
  signedRequest,
  signHeaders,
  sleep,
  spawnMitm,
  spawnNode,
  startNode,
  streamMac,
  tempDir,
  UNAUTHORIZED_TEXT,
  upgrade,
  waitFor,
  within,
} from "./helpers.js";

const SECRET = `auth-${randomBytes(24).toString("hex")}`;
const CALL = { plugin: "Api", method: "add", args: { a: 2, b: 3 } };

let dir: string;
let A: PluginCore;
let port: number;

beforeAll(async () => {
  dir = pluginDir({ Api: API });
  A = await startNode({ hostname: "alpha", dir, plugins: ["Api"], networking: { secret: SECRET } });
  port = A.port as number;
});

afterAll(cleanup);

/** A 401 that says nothing but "unauthorized". */
function expectBare401(answer: RawAnswer, head = false): void {
  expect(answer.status).toBe(401);
  expect(answer.headers[H_ANSWER]).toBeUndefined();
  if (head) return;
  expect(answer.text).toBe(UNAUTHORIZED_TEXT);
  expect(answer.headers["content-type"]).toMatch(/^application\/json/);
}

// ------------------------------------------------------------------------------------------

describe("unsigned requests", () => {
  const body = JSON.stringify(CALL);
  const routes: Array<[string, string, string | undefined]> = [
    ["GET", "/has_plugin?name=Api", undefined],
    ["POST", "/info", JSON.stringify({ hostname: "x", port: 1, discover_nodes_info: true })],
    ["POST", "/execute", body],
    ["POST", "/execute_stream", JSON.stringify({ plugin: "Api", method: "count", args: [3] })],
    ["GET", "/aio/channel", undefined],
    ["GET", "/no/such/route", undefined],
    ["POST", "/ping", "{}"],
    ["DELETE", "/execute", undefined],
    ["OPTIONS", "/execute", undefined],
    ["PUT", "/info", "{}"],
  ];

  it.each(routes)("%s %s gets 401 UNAUTHORIZED and nothing more", async (method, path, text) => {
    const answer = await rawRequest(port, {
      method,
      path,
      ...(text === undefined
        ? {}
        : { body: text, headers: { "content-type": "application/json" } }),
    });
    expectBare401(answer);
  });

  it("other methods on /ping, unsigned, get 401 too", async () => {
    for (const method of ["PUT", "PATCH", "DELETE", "OPTIONS"]) {
      expectBare401(await rawRequest(port, { method, path: "/ping" }));
    }
  });

  it("HEAD /has_plugin gets 401 without a body", async () => {
    expectBare401(await rawRequest(port, { method: "HEAD", path: "/has_plugin?name=Api" }), true);
  });

  it("a body of another content type is refused as unauthorized, not parsed", async () => {
    const answer = await rawRequest(port, {
      method: "POST",
      path: "/execute",
      body: "not json at all",
      headers: { "content-type": "text/plain" },
    });
    expectBare401(answer);
  });

  it("only two of the three signature headers count as unsigned", async () => {
    const signed = signHeaders(SECRET, "POST", "/execute", body);
    for (const drop of [H_TIME, H_NONCE, H_SIG]) {
      const headers: Record<string, string> = { ...signed, "content-type": "application/json" };
      delete headers[drop];
      expectBare401(await rawRequest(port, { method: "POST", path: "/execute", body, headers }));
    }
  });

  it("GET /ping unsigned answers only the status: no hostname, no signature", async () => {
    const answer = await rawRequest(port, { path: "/ping" });
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ status: "ok" });
    expect(answer.text).not.toContain("alpha");
    expect(answer.headers[H_ANSWER]).toBeUndefined();
  });

  it("GET /ping signed answers the hostname too, with a valid x-aio-answer", async () => {
    const answer = await signedRequest(port, SECRET, { path: "/ping" });
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ status: "ok", hostname: "alpha" });
    expect(answer.headers[H_ANSWER]).toBe(answerMac(SECRET, answer.nonce, answer.text));
  });
});

// ------------------------------------------------------------------------------------------

describe("signed requests", () => {
  it("the signing in docs/security.md is the one dist/net/auth.js implements", async () => {
    // biome-ignore lint/suspicious/noExplicitAny: the built module, untyped from here
    const auth: any = await import("../../dist/net/auth.js");
    const body = JSON.stringify(CALL);
    const theirs = auth.signRequest(SECRET, "post", "/execute?x=1", body) as Record<string, string>;
    const ours = signHeaders(SECRET, "POST", "/execute?x=1", body, {
      time: theirs[H_TIME],
      nonce: theirs[H_NONCE],
    });
    expect(ours).toEqual(theirs);
    expect(auth.signAnswer(SECRET, "n", "body")).toBe(answerMac(SECRET, "n", "body"));
    expect(auth.signDatagram(SECRET, "ping\nabc")).toBe(pingMac(SECRET, "abc"));
  });

  it("a correctly signed /execute succeeds and its answer carries a valid x-aio-answer", async () => {
    const answer = await signedRequest(port, SECRET, {
      method: "POST",
      path: "/execute",
      body: JSON.stringify(CALL),
    });
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ result: 5 });
    expect(answer.headers[H_ANSWER]).toBe(answerMac(SECRET, answer.nonce, answer.text));
    // Bound to this request: it is not the MAC of the same body for another nonce.
    expect(answer.headers[H_ANSWER]).not.toBe(answerMac(SECRET, "0".repeat(32), answer.text));
  });

  it("error answers to signed requests are signed too", async () => {
    const answer = await post(port, SECRET, "/execute", { plugin: "Nope", method: "x" });
    expect(answer.status).toBe(404);
    expect(answer.json.error.code).toBe("PLUGIN_NOT_FOUND");
    const nonce = (answer as RawAnswer & { nonce: string }).nonce;
    expect(answer.headers[H_ANSWER]).toBe(answerMac(SECRET, nonce, answer.text));
  });

  it("signed GET /has_plugin (the query is part of the signature) and POST /info succeed", async () => {
    const has = await signedRequest(port, SECRET, { path: "/has_plugin?name=Api&method=add" });
    expect(has.status).toBe(200);
    expect(has.json).toMatchObject({ available: true, remote: true, hostname: "alpha" });
    expect(has.headers[H_ANSWER]).toBe(answerMac(SECRET, has.nonce, has.text));
    const info = await post(port, SECRET, "/info", { hostname: "tester", port: 0 });
    expect(info.status).toBe(200);
    expect(info.json.hostname).toBe("alpha");
  });

  it("a signed stream ends with a MAC over every line before it", async () => {
    const answer = await signedRequest(port, SECRET, {
      method: "POST",
      path: "/execute_stream",
      body: JSON.stringify({ plugin: "Api", method: "count", args: [3] }),
    });
    expect(answer.status).toBe(200);
    const lines = answer.text.split("\n").filter(Boolean);
    expect(lines.slice(0, 3).map((l) => JSON.parse(l))).toEqual([
      { item: 0 },
      { item: 1 },
      { item: 2 },
    ]);
    const last = JSON.parse(lines[3] as string);
    expect(last.end).toBe(true);
    const before = lines
      .slice(0, 3)
      .map((l) => `${l}\n`)
      .join("");
    expect(last.mac).toBe(streamMac(SECRET, answer.nonce, before));
  });
});

// ------------------------------------------------------------------------------------------

describe("forged, stale, malformed and replayed requests get 401", () => {
  const body = JSON.stringify(CALL);
  const execute = (headers: Record<string, string | string[]>, text = body, path = "/execute") =>
    rawRequest(port, {
      method: "POST",
      path,
      body: text,
      headers: { "content-type": "application/json", ...headers },
    });

  it("signed with the wrong secret", async () => {
    expectBare401(await execute(signHeaders(`${SECRET}x`, "POST", "/execute", body)));
    expectBare401(await execute(signHeaders("", "POST", "/execute", body)));
  });

  it("a tampered body", async () => {
    const headers = signHeaders(SECRET, "POST", "/execute", body);
    expectBare401(await execute(headers, JSON.stringify({ ...CALL, args: { a: 2, b: 4 } })));
    // Same JSON value, different bytes: the signature covers bytes.
    const spaced = body.replace(":", ": ");
    expectBare401(await execute(signHeaders(SECRET, "POST", "/execute", body), spaced));
  });

  it("a tampered path or query", async () => {
    expectBare401(
      await execute(signHeaders(SECRET, "POST", "/execute", body), body, "/execute_stream"),
    );
    expectBare401(
      await execute(signHeaders(SECRET, "POST", "/execute", body), body, "/execute?x=1"),
    );
    const headers = signHeaders(SECRET, "GET", "/has_plugin?name=Api", "");
    expectBare401(await rawRequest(port, { path: "/has_plugin?name=Other", headers }));
  });

  it("a tampered method", async () => {
    // Signed as a POST without a body, sent as the GET the route serves.
    const headers = signHeaders(SECRET, "POST", "/has_plugin?name=Api", "");
    expectBare401(await rawRequest(port, { method: "GET", path: "/has_plugin?name=Api", headers }));
    const forPing = signHeaders(SECRET, "GET", "/ping", "");
    expectBare401(
      await rawRequest(port, { method: "HEAD", path: "/ping", headers: forPing }),
      true,
    );
  });

  it("timestamps 31 s in the past or future; 5 s off still passes", async () => {
    const now = Date.now();
    for (const time of [now - 31_000, now + 31_000, 0, 999_999_999_999_999]) {
      expectBare401(await execute(signHeaders(SECRET, "POST", "/execute", body, { time })));
    }
    const fine = await execute(signHeaders(SECRET, "POST", "/execute", body, { time: now - 5000 }));
    expect(fine.status).toBe(200);
  });

  const malformed: Array<
    [string, (h: Record<string, string>) => Record<string, string | string[]>]
  > = [
    ["a time that is not digits", (h) => resign(h, { time: "1e12" })],
    ["a negative time", (h) => resign(h, { time: `-${Date.now()}` })],
    ["a time with 16 digits", (h) => resign(h, { time: `0${Date.now()}00` })],
    ["a nonce of 31 hex digits", (h) => resign(h, { nonce: "a".repeat(31) })],
    ["a nonce of 64 hex digits", (h) => resign(h, { nonce: "a".repeat(64) })],
    ["an upper-case nonce", (h) => resign(h, { nonce: "ABCDEF".padEnd(32, "0") })],
    ["a nonce that is not hex", (h) => resign(h, { nonce: "z".repeat(32) })],
    ["an empty signature", (h) => ({ ...h, [H_SIG]: "" })],
    ["a short signature", (h) => ({ ...h, [H_SIG]: (h[H_SIG] as string).slice(0, 63) })],
    ["an upper-case signature", (h) => ({ ...h, [H_SIG]: (h[H_SIG] as string).toUpperCase() })],
    [
      "a signature sent twice",
      (h) => ({ ...h, [H_SIG]: [h[H_SIG] as string, h[H_SIG] as string] }),
    ],
    ["a time sent twice", (h) => ({ ...h, [H_TIME]: [h[H_TIME] as string, h[H_TIME] as string] })],
  ];

  /** Headers signed correctly over the given (malformed) time or nonce. */
  function resign(h: Record<string, string>, change: { time?: string; nonce?: string }) {
    return signHeaders(SECRET, "POST", "/execute", body, {
      time: change.time ?? h[H_TIME],
      nonce: change.nonce ?? h[H_NONCE],
    });
  }

  it.each(malformed)("%s", async (_name, change) => {
    expectBare401(await execute(change(signHeaders(SECRET, "POST", "/execute", body))));
  });

  it("a replayed request: same headers and body twice", async () => {
    const headers = signHeaders(SECRET, "POST", "/execute", body);
    expect((await execute(headers)).status).toBe(200);
    expectBare401(await execute(headers));
    const ping = signHeaders(SECRET, "GET", "/ping", "");
    expect((await rawRequest(port, { path: "/ping", headers: ping })).json.hostname).toBe("alpha");
    expectBare401(await rawRequest(port, { path: "/ping", headers: ping }));
  });

  // BUG (design): the signature covers method, path, time, nonce and body, but not which node
  // the request is for, and each node remembers nonces on its own. A request captured on its
  // way to one node can be replayed, within 30 s, to every other node that holds the secret
  // (and to the same node after a restart): the call runs again there. Suspected cause:
  // src/net/auth.ts signRequest/verifyRequest (no destination in the MAC) and the per-process
  // NonceCache in src/net/server.ts.
  it.fails("a request replayed to another node of the cluster is refused", async () => {
    const B = await startNode({
      hostname: "bravo",
      dir,
      plugins: ["Api"],
      networking: { secret: SECRET },
    });
    try {
      const headers = signHeaders(SECRET, "POST", "/execute", body);
      expect((await execute(headers)).status).toBe(200);
      const replayed = await rawRequest(B.port as number, {
        method: "POST",
        path: "/execute",
        body,
        headers: { "content-type": "application/json", ...headers },
      });
      expect(replayed.status).toBe(401);
    } finally {
      await closeNode(B);
    }
  });
});

// ------------------------------------------------------------------------------------------

describe("the secret never crosses the network", () => {
  const encodings = (secret: string) => [
    secret,
    Buffer.from(secret).toString("base64"),
    Buffer.from(secret).toString("hex"),
    encodeURIComponent(secret),
  ];

  it("in nothing a node sends to a peer (HTTP, channel, heartbeats) nor in its log", async () => {
    // B reaches A only through a recording proxy (TCP) and sends its heartbeats to a recording
    // UDP socket on the proxy's port number.
    const proxy = await recordingProxy(port);
    const datagrams: Buffer[] = [];
    const udp = createSocket("udp4");
    udp.on("message", (message) => datagrams.push(message));
    await new Promise<void>((resolve) => udp.bind(proxy.port, "127.0.0.1", resolve));
    const logDir = tempDir();
    const B = await startNode({
      hostname: "bravo",
      dir,
      logDir,
      networking: { secret: SECRET, node_ips: [`127.0.0.1:${proxy.port}`] },
    });
    try {
      expect(B.nodes().map((n) => n.hostname)).toEqual(["alpha"]);
      expect(await B.execute("Api", "add", [1, 2], { host: "alpha" })).toBe(3);
      const items: unknown[] = [];
      for await (const item of B.executeStream("Api", "count", [3], { host: "alpha" })) {
        items.push(item);
      }
      expect(items).toEqual([0, 1, 2]);
      await waitFor(() => datagrams.length >= 2, "heartbeat datagrams");
    } finally {
      await closeNode(B);
      udp.close();
      await proxy.close();
    }
    const sent = Buffer.concat(proxy.fromClients).toString("latin1");
    const answered = Buffer.concat(proxy.fromUpstream).toString("latin1");
    // What was captured is the real, signed traffic: /info, the channel upgrade and a ping.
    expect(sent).toContain("POST /info");
    expect(sent).toContain("GET /aio/channel");
    expect(sent).toContain(H_SIG);
    expect(datagrams[0]?.toString()).toContain('"t":"ping"');
    const everything = [sent, answered, ...datagrams.map((d) => d.toString("latin1"))].join("\n");
    const log = readLog(logDir);
    expect(log.length).toBeGreaterThan(0);
    for (const form of encodings(SECRET)) {
      expect(everything).not.toContain(form);
      expect(log).not.toContain(form);
    }
  });

  it("nor in what it sends to a peer that never answers", async () => {
    const received: Buffer[] = [];
    const server = http.createServer((req) => {
      req.on("data", (c: Buffer) => received.push(c));
    });
    server.on("connection", (socket) => socket.on("data", (c: Buffer) => received.push(c)));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const sink = (server.address() as AddressInfo).port;
    const C = await startNode({
      hostname: "charlie",
      dir,
      networking: { secret: SECRET, node_ips: [`127.0.0.1:${sink}`], heartbeat_interval: 0.1 },
    });
    try {
      await waitFor(() => received.length > 0, "a request to the silent peer");
    } finally {
      await closeNode(C);
      server.closeAllConnections();
      server.close();
    }
    const text = Buffer.concat(received).toString("latin1");
    expect(text).toContain(H_SIG);
    for (const form of encodings(SECRET)) expect(text).not.toContain(form);
  });
});

// ------------------------------------------------------------------------------------------

describe("a node with the wrong secret", () => {
  it("cannot discover nor call, and logs why", async () => {
    const logDir = tempDir();
    const C = await startNode({
      hostname: "charlie",
      dir,
      logDir,
      networking: { secret: `${SECRET}-wrong`, node_ips: [`127.0.0.1:${port}`] },
    });
    let closed = false;
    try {
      await sleep(500); // a couple of heartbeats' retries
      expect(C.nodes()).toEqual([]);
      expect((await failure(C.execute("Api", "add", [1, 2], { host: "alpha" }))).code).toBe(
        "NO_NODE",
      );
      expect((await failure(C.execute("Api", "add", [1, 2], { host: "remote" }))).code).toBe(
        "NO_NODE",
      );
      expect(A.nodes().map((n) => n.hostname)).not.toContain("charlie");
      await closeNode(C);
      closed = true;
      const log = readLog(logDir);
      expect(log).toContain(`cannot reach 127.0.0.1:${port}`);
      expect(log).toMatch(/refused this node's credentials; check that both use the same secret/);
    } finally {
      if (!closed) await closeNode(C);
    }
  });
});

// ------------------------------------------------------------------------------------------

describe("the WebSocket channel", () => {
  it("refuses an unsigned upgrade with 401", async () => {
    const result = await upgrade(port, {});
    expect(result.status).toBe(401);
    expect(result.body).toBe(UNAUTHORIZED_TEXT);
  });

  it("refuses a forged, tampered or replayed upgrade with 401", async () => {
    expect((await upgrade(port, signHeaders(`${SECRET}!`, "GET", "/aio/channel", ""))).status).toBe(
      401,
    );
    const other = signHeaders(SECRET, "GET", "/aio/channel", "");
    expect((await upgrade(port, other, "/aio/channel?x=1")).status).toBe(401);
    const stale = signHeaders(SECRET, "GET", "/aio/channel", "", { time: Date.now() - 40_000 });
    expect((await upgrade(port, stale)).status).toBe(401);
    const once = signHeaders(SECRET, "GET", "/aio/channel", "");
    const first = await upgrade(port, once);
    expect(first.status).toBe(101);
    first.ws.terminate();
    expect((await upgrade(port, once)).status).toBe(401);
  });

  it("a genuine handshake proves the server knows the secret, and sealed calls work", async () => {
    const channel = await openChannel(port, SECRET);
    expect(channel.proof).toBe(answerMac(SECRET, channel.clientNonce, channel.serverNonce));
    channel.send({ t: "call", id: 1, ...CALL });
    await waitFor(() => channel.messages.length > 0, "the result");
    expect(channel.messages[0]).toEqual({ t: "result", id: 1, value: 5 });
    expect(channel.badMacs).toEqual([]);
    channel.ws.terminate();
  });

  const tamperings: Array<[string, (c: Channel) => void]> = [
    [
      "a message whose MAC was altered",
      (c) => {
        const sealed = c.seal(JSON.stringify({ t: "call", id: 2, ...CALL }));
        c.ws.send((sealed[0] === "0" ? "1" : "0") + sealed.slice(1));
      },
    ],
    [
      "a message whose payload was altered after sealing",
      (c) =>
        c.ws.send(c.seal(JSON.stringify({ t: "call", id: 2, ...CALL })).replace('"b":3', '"b":4')),
    ],
    [
      "a replayed message (the sequence number is in the MAC)",
      (c) => {
        const sealed = c.seal(JSON.stringify({ t: "call", id: 2, ...CALL }));
        c.ws.send(sealed);
        c.ws.send(sealed);
      },
    ],
    [
      "a message with a skipped sequence number",
      (c) => c.ws.send(c.seal(JSON.stringify({ t: "call", id: 2, ...CALL }), 5)),
    ],
    ["an unsealed message", (c) => c.ws.send(JSON.stringify({ t: "call", id: 2, ...CALL }))],
    [
      "a message sealed with a key from another secret",
      (c) =>
        c.ws.send(
          mac(Buffer.from("k"), "c", "1", JSON.stringify({ t: "call", id: 2, ...CALL })) +
            JSON.stringify({ t: "call", id: 2, ...CALL }),
        ),
    ],
    ["a binary message", (c) => c.ws.send(Buffer.from([1, 2, 3, 4]))],
    [
      "a genuine seal over a body with __proto__",
      (c) =>
        c.ws.send(
          c.seal('{"t":"call","id":2,"plugin":"Api","method":"echo","args":{"__proto__":{}}}'),
        ),
    ],
  ];

  it.each(tamperings)("closes on %s, and the node keeps serving", async (name, tamper) => {
    const channel = await openChannel(port, SECRET);
    tamper(channel);
    expect(await within(channel.closed, 3000)).toBe(true);
    // Nothing was answered to the tampered call (a replay's first copy may be answered).
    const answered = channel.messages.filter((m) => (m as { id?: number }).id === 2);
    expect(answered.length).toBeLessThanOrEqual(name.includes("replayed") ? 1 : 0);
    const after = await post(port, SECRET, "/execute", CALL);
    expect(after.json).toEqual({ result: 5 });
  });
});

// ------------------------------------------------------------------------------------------

describe("a server that cannot prove it knows the secret", () => {
  it("is refused at /info: the node is not added, and the failure is logged", async () => {
    const server = http.createServer((_req, res) => {
      // A plausible /info answer with a forged proof.
      res.setHeader(H_ANSWER, randomBytes(32).toString("hex"));
      res.setHeader("content-type", "application/json");
      res.end(
        JSON.stringify({
          hostname: "impostor",
          instance: "i-1",
          auto_discoverable: true,
          nodes: [],
          endpoints: [{ plugin: "Api", plugin_uuid: "u", access_name: "add", kind: "function" }],
          version: 1,
          port: 1,
          tls: false,
        }),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const fake = (server.address() as AddressInfo).port;
    const logDir = tempDir();
    const B = await startNode({
      hostname: "bravo",
      dir,
      logDir,
      networking: { secret: SECRET, node_ips: [`127.0.0.1:${fake}`] },
    });
    expect(B.nodes()).toEqual([]);
    expect((await failure(B.execute("Api", "add", [1, 2], { host: "impostor" }))).code).toBe(
      "NO_NODE",
    );
    await closeNode(B);
    server.closeAllConnections();
    server.close();
    expect(readLog(logDir)).toMatch(/without proof that it knows the secret/);
  });

  it("is refused at the channel handshake with UNAUTHORIZED, before any call is sent", async () => {
    // HTTP goes to the genuine node A; channel upgrades go to an impostor WebSocket server
    // that accepts them with a forged proof.
    const impostorMessages: unknown[] = [];
    const fake = http.createServer();
    const wss = new WebSocketServer({ noServer: true });
    wss.on("headers", (headers) => {
      headers.push(`${H_NONCE}: ${randomBytes(16).toString("hex")}`);
      headers.push(`${H_ANSWER}: ${randomBytes(32).toString("hex")}`);
    });
    fake.on("upgrade", (request, socket, head) =>
      wss.handleUpgrade(request, socket, head, (ws) =>
        ws.on("message", (m) => impostorMessages.push(m.toString())),
      ),
    );
    await new Promise<void>((resolve) => fake.listen(0, "127.0.0.1", resolve));
    const fakePort = (fake.address() as AddressInfo).port;
    const proxy = await recordingProxy(port, (first) =>
      first.toString("latin1").startsWith("GET /aio/channel") ? fakePort : port,
    );
    const B = await startNode({
      hostname: "bravo",
      dir,
      networking: { secret: SECRET, node_ips: [`127.0.0.1:${proxy.port}`] },
    });
    try {
      expect(B.nodes().map((n) => n.hostname)).toEqual(["alpha"]);
      const error = await failure(B.execute("Api", "add", [1, 2], { host: "alpha" }));
      expect(error.code).toBe("UNAUTHORIZED");
      expect(error.message).toMatch(/did not prove that it knows the secret/);
      expect(proxy.routed).toContain(fakePort);
      await sleep(50);
      expect(impostorMessages).toEqual([]);
    } finally {
      await closeNode(B);
      await proxy.close();
      for (const client of wss.clients) client.terminate();
      fake.closeAllConnections();
      fake.close();
    }
  });
});

// ------------------------------------------------------------------------------------------

describe("integrity of answers against a man in the middle (no TLS)", () => {
  // BUG (design): an HTTP stream answer (what executeStreamSync uses for a remote node) is
  // authenticated only by the MAC on its last line, and the calling side hands each item to
  // the consumer as it arrives. A man in the middle can alter items: the consumer acts on the
  // forged ones and learns of the forgery only at the end (UNAUTHORIZED). Expected: no forged
  // item reaches the consumer (e.g. a MAC per line). Suspected cause:
  // src/net/sync-bridge-worker.ts "next" (yields items before the end MAC is checked), with the
  // end-only StreamMac of src/net/server.ts /execute_stream. Channel streams (executeStream)
  // seal every message and are not affected.
  it.fails("a tampered item of an HTTP stream never reaches the consumer", async () => {
    const child = await spawnNode({
      hostname: "remote",
      dir,
      plugins: ["Api"],
      networking: { secret: SECRET },
    });
    const proxy = await spawnMitm(child.port, '{"item":1}', '{"item":7}');
    const B = await startNode({
      hostname: "bravo",
      dir,
      networking: { secret: SECRET, node_ips: [`127.0.0.1:${proxy.port}`] },
    });
    const items: unknown[] = [];
    let code: string | undefined;
    try {
      try {
        for (const item of B.executeStreamSync("Api", "count", [3], { host: "remote" })) {
          items.push(item);
        }
      } catch (error) {
        code = (error as { code?: string }).code;
      }
      // The forgery is noticed in the end...
      expect(code).toBe("UNAUTHORIZED");
      // ...but the consumer must not have been handed the forged item.
      expect(items).not.toContain(7);
    } finally {
      await closeNode(B);
      await proxy.stop();
      await child.stop();
    }
  });

  it("a tampered /execute answer is refused as a whole (the control)", async () => {
    const child = await spawnNode({
      hostname: "remote",
      dir,
      plugins: ["Api"],
      networking: { secret: SECRET },
    });
    const proxy = await spawnMitm(child.port, '{"result":3}', '{"result":9}');
    const B = await startNode({
      hostname: "bravo",
      dir,
      networking: { secret: SECRET, node_ips: [`127.0.0.1:${proxy.port}`] },
    });
    try {
      let code: string | undefined;
      try {
        B.executeSync("Api", "add", [1, 2], { host: "remote" });
      } catch (error) {
        code = (error as { code?: string }).code;
      }
      expect(code).toBe("UNAUTHORIZED");
      // Over the channel every message is sealed: the same call by execute is not tampered
      // with (the rewrite does not match a sealed packet) and succeeds.
      expect(await B.execute("Api", "add", [1, 2], { host: "remote" })).toBe(3);
    } finally {
      await closeNode(B);
      await proxy.stop();
      await child.stop();
    }
  });
});

// ------------------------------------------------------------------------------------------

describe("UDP heartbeats", () => {
  // BUG (low): a ping's MAC covers only its nonce (no time, no replay cache), so one ping
  // captured on the network answers forever: anyone replaying it (from any source address)
  // gets the node's instance id, hostname and version, which docs say only holders of the
  // secret learn. (Pongs also cross the network in clear, and mDNS, when on, announces
  // hostname and instance anyway.) Expected: a replayed ping gets no answer. Suspected cause:
  // src/net/heartbeat.ts pingMac/pongFor (no timestamp, no nonce memory).
  it.fails("a replayed genuine ping gets no answer", async () => {
    const socket = createSocket("udp4");
    const answers: Buffer[] = [];
    socket.on("message", (m) => answers.push(m));
    await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
    const nonce = randomBytes(12).toString("hex");
    const ping = pingDatagram(nonce, pingMac(SECRET, nonce));
    try {
      socket.send(ping, port, "127.0.0.1");
      await waitFor(() => answers.length === 1, "the first pong");
      // Later, by someone who only captured the datagram:
      socket.send(ping, port, "127.0.0.1");
      await sleep(200);
      expect(answers).toHaveLength(1);
    } finally {
      socket.close();
    }
  });

  it("pings without a valid MAC get no answer; a signed one gets a signed pong", async () => {
    const socket = createSocket("udp4");
    const answers: Buffer[] = [];
    socket.on("message", (m) => answers.push(m));
    await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
    const send = (datagram: Buffer) =>
      new Promise<void>((resolve) => socket.send(datagram, port, "127.0.0.1", () => resolve()));
    try {
      const n = () => randomBytes(12).toString("hex");
      const other = n();
      const bad = [
        pingDatagram(n()), // unsigned
        pingDatagram(n(), randomBytes(32).toString("hex")), // forged
        pingDatagram(n(), pingMac(`${SECRET}x`, "whatever")), // another secret
        pingDatagram(n(), pingMac(SECRET, other)), // a MAC for another nonce
        pingDatagram(n(), ""),
        Buffer.from(JSON.stringify({ t: "ping", n: n(), m: pingMac(SECRET, "x") })), // short
      ];
      // A genuine ping too short to be answered (anti-amplification).
      const shortNonce = n();
      bad.push(pingDatagram(shortNonce, pingMac(SECRET, shortNonce), 0));
      for (const datagram of bad) await send(datagram);
      await sleep(200);
      expect(answers).toEqual([]);
      // The control: a signed ping is answered, so the silence above is a refusal.
      const nonce = n();
      const ping = pingDatagram(nonce, pingMac(SECRET, nonce));
      await send(ping);
      await waitFor(() => answers.length > 0, "a pong");
      await sleep(100);
      expect(answers).toHaveLength(1);
      const pong = JSON.parse((answers[0] as Buffer).toString());
      expect(pong).toMatchObject({ t: "pong", n: nonce, h: "alpha" });
      expect(pong.m).toBe(pongMac(SECRET, pong));
      expect((answers[0] as Buffer).length).toBeLessThanOrEqual(ping.length);
    } finally {
      socket.close();
    }
  });
});
