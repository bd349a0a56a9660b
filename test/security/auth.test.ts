/**
 * Authentication with the shared secret, against real nodes: every route refuses unsigned,
 * forged, stale, malformed and replayed requests with a bare 401; answers, streams, the
 * channel and heartbeats are authenticated too; the secret never crosses the network; a node
 * with the wrong secret, or a server that cannot prove it knows the secret, gets nowhere.
 *
 * Signing is reimplemented in helpers.ts from docs/security.md; one test cross-checks it with
 * the built `dist/net/auth.js`. Requests are signed for the instance id of the node they are
 * sent to, which its unsigned `GET /ping` tells; the Host they name does not matter.
 */
import { randomBytes, randomUUID } from "node:crypto";
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
  freePort,
  H_ANSWER,
  H_NONCE,
  H_SIG,
  H_TIME,
  hostOf,
  instanceOf,
  mac,
  nodeBehindProxy,
  openChannel,
  pingDatagram,
  pingMac,
  pluginDir,
  pongMac,
  post,
  type RawAnswer,
  rawRequest,
  readLog,
  readSignedStream,
  signedPing,
  signedRequest,
  signHeaders,
  sleep,
  spawnMitm,
  spawnNode,
  startNode,
  streamLineMac,
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
/** A's instance id (from its unsigned GET /ping): what requests to A are signed for. */
let instance: string;

beforeAll(async () => {
  dir = pluginDir({
    Api: API,
    // Served only by the child nodes of the man-in-the-middle tests.
    Text: {
      body: `*words(n: number) { for (let i = 0; i < n; i++) yield "é".repeat(3000 + i); }`,
      endpoints: [
        { internal_name: "words", remote: true, arguments: [{ name: "n", type: "int" }] },
      ],
    },
  });
  A = await startNode({ hostname: "alpha", dir, plugins: ["Api"], networking: { secret: SECRET } });
  port = A.port as number;
  instance = await instanceOf(port);
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
    // The operator's routes (aio plugins / nodes / console --node) need a signature too.
    ["GET", "/plugins", undefined],
    ["GET", "/nodes", undefined],
    ["GET", "/endpoints?plugin=Api", undefined],
    ["POST", "/admin", JSON.stringify({ action: "purge" })],
    ["POST", "/admin", JSON.stringify({ action: "disable", plugin: "Api" })],
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
    const signed = signHeaders(SECRET, "POST", instance, "/execute", body);
    for (const drop of [H_TIME, H_NONCE, H_SIG]) {
      const headers: Record<string, string> = { ...signed, "content-type": "application/json" };
      delete headers[drop];
      expectBare401(await rawRequest(port, { method: "POST", path: "/execute", body, headers }));
    }
  });

  it("GET /ping unsigned answers the status, instance and clock only: no hostname, no signature", async () => {
    const before = Date.now();
    const answer = await rawRequest(port, { path: "/ping" });
    const after = Date.now();
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ status: "ok", instance, time: expect.any(Number) });
    expect(Object.keys(answer.json).sort()).toEqual(["instance", "status", "time"]);
    expect(instance).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    // The node's clock: the same machine's, so between the client's before and after.
    expect(answer.json.time).toBeGreaterThanOrEqual(before);
    expect(answer.json.time).toBeLessThanOrEqual(after);
    expect(answer.text).not.toContain("alpha");
    expect(answer.headers[H_ANSWER]).toBeUndefined();
    // HEAD /ping unsigned is answered too, without a body.
    const head = await rawRequest(port, { method: "HEAD", path: "/ping" });
    expect(head.status).toBe(200);
    expect(head.text).toBe("");
  });

  it("GET /ping signed answers the hostname too, with a valid x-aio-answer", async () => {
    const answer = await signedRequest(port, SECRET, { path: "/ping" });
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({
      status: "ok",
      hostname: "alpha",
      instance,
      time: expect.any(Number),
    });
    expect(answer.headers[H_ANSWER]).toBe(answerMac(SECRET, answer.nonce, answer.text));
    // The instance /ping gives is the one the node goes by: its /info answer says the same.
    const info = await post(port, SECRET, "/info", { hostname: "tester", port: 0 });
    expect(info.json.instance).toBe(instance);
  });
});

// ------------------------------------------------------------------------------------------

describe("signed requests", () => {
  it("the signing in docs/security.md is the one dist/net/auth.js implements", async () => {
    // biome-ignore lint/suspicious/noExplicitAny: the built module, untyped from here
    const auth: any = await import("../../dist/net/auth.js");
    const body = JSON.stringify(CALL);
    for (const id of [instance, randomUUID(), "Some-Instance"]) {
      const theirs = auth.signRequest(
        SECRET,
        "post",
        { instance: id, clockOffsetMs: 0 },
        "/execute?x=1",
        body,
      ) as Record<string, string>;
      const ours = signHeaders(SECRET, "POST", id, "/execute?x=1", body, {
        time: theirs[H_TIME],
        nonce: theirs[H_NONCE],
      });
      expect(ours).toEqual(theirs);
      // The instance is part of it: the same request for another node (or run) is signed
      // differently, and so is one for the instance in another case (it is used as given).
      for (const other of [randomUUID(), id.toUpperCase(), id.toLowerCase()].filter(
        (o) => o !== id,
      )) {
        const elsewhere = signHeaders(SECRET, "POST", other, "/execute?x=1", body, {
          time: theirs[H_TIME],
          nonce: theirs[H_NONCE],
        });
        expect(elsewhere[H_SIG]).not.toBe(theirs[H_SIG]);
      }
    }
    // Requests are timed by the node's clock: a known offset moves the time signed.
    const before = Date.now();
    const ahead = auth.signRequest(SECRET, "GET", { instance, clockOffsetMs: 60_000 }, "/", "");
    const after = Date.now();
    expect(Number(ahead[H_TIME])).toBeGreaterThanOrEqual(before + 60_000);
    expect(Number(ahead[H_TIME])).toBeLessThanOrEqual(after + 60_000);
    expect(auth.signAnswer(SECRET, "n", "body")).toBe(answerMac(SECRET, "n", "body"));
    const stream = new auth.StreamMac(SECRET, "n");
    expect(stream.next('{"item":3}')).toBe(streamLineMac(SECRET, "n", 1, '{"item":3}'));
    expect(stream.next('{"end":true}')).toBe(streamLineMac(SECRET, "n", 2, '{"end":true}'));
    expect(auth.signDatagram(SECRET, "ping\nabc\n1700000000000")).toBe(
      pingMac(SECRET, "abc", 1700000000000),
    );
    const key = auth.sessionKey(SECRET, "c1", "s1") as Buffer;
    expect(key.toString("hex")).toBe(mac(SECRET, "session", "c1", "s1"));
    expect(new auth.ChannelSigner(key, "client").seal("{}").toString()).toBe(
      `${mac(key, "c", "1", "{}")}{}`,
    );
    // The MAC covers the payload's UTF-8 bytes, and the other side opens them.
    const text = '{"s":"é😀"}';
    const sealed = new auth.ChannelSigner(key, "client").seal(text);
    expect(sealed.toString()).toBe(`${mac(key, "c", "1", text)}${text}`);
    expect(new auth.ChannelSigner(key, "server").open(sealed)).toBe(text);
    expect(new auth.ChannelSigner(key, "client").open(sealed)).toBeUndefined();
  });

  it("channel messages of every size keep their MAC and order, and a tampered one is refused", async () => {
    // biome-ignore lint/suspicious/noExplicitAny: the built module, untyped from here
    const auth: any = await import("../../dist/net/auth.js");
    // Longer than a SHA-256 block, so HMAC hashes the key first; and one of 32 bytes.
    for (const key of [Buffer.alloc(100, 7), auth.sessionKey(SECRET, "c2", "s2") as Buffer]) {
      const client = new auth.ChannelSigner(key, "client");
      const server = new auth.ChannelSigner(key, "server");
      // Small, long enough to be hashed by OpenSSL rather than in JavaScript, then small again.
      const texts = ["[]", `"${"x".repeat(200_000)}"`, `"${"é".repeat(40_000)}"`, '{"n":1}'];
      texts.forEach((text, i) => {
        const sealed: Buffer = client.seal(text);
        expect(sealed.subarray(0, 64).toString()).toBe(mac(key, "c", String(i + 1), text));
        if (i === 1) {
          const forged = Buffer.from(sealed);
          const at = forged.length - 2;
          forged.writeUInt8(forged.readUInt8(at) ^ 1, at);
          expect(server.open(forged)).toBeUndefined();
        }
        expect(server.open(sealed)).toBe(text);
        // Already opened: a replay is out of order.
        expect(server.open(sealed)).toBeUndefined();
      });
    }
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

  it("every line of a signed stream carries its own MAC, bound to the request and its place", async () => {
    const answer = await signedRequest(port, SECRET, {
      method: "POST",
      path: "/execute_stream",
      body: JSON.stringify({ plugin: "Api", method: "count", args: [3] }),
    });
    expect(answer.status).toBe(200);
    expect(answer.headers["content-type"]).toMatch(/^application\/x-ndjson/);
    const { lines, bad } = readSignedStream(SECRET, answer.nonce, answer.text);
    expect(lines).toEqual([{ item: 0 }, { item: 1 }, { item: 2 }, { end: true }]);
    expect(bad).toEqual([]);
    // Each line is its content's JSON plus "mac", over "stream", nonce, line number, content.
    const raw = answer.text.split("\n").filter(Boolean);
    expect(raw[1]).toBe(
      `{"item":1,"mac":"${streamLineMac(SECRET, answer.nonce, 2, '{"item":1}')}"}`,
    );
    // Not valid at another place, nor for another request.
    const second = JSON.parse(raw[1] as string).mac;
    expect(second).not.toBe(streamLineMac(SECRET, answer.nonce, 1, '{"item":1}'));
    expect(second).not.toBe(streamLineMac(SECRET, "0".repeat(32), 2, '{"item":1}'));
  });

  it("a line's MAC covers its exact bytes, which a client in another language checks as received", async () => {
    // Values JavaScript writes in its own way: another JSON library would write them otherwise.
    const list = [5e-7, 1e21, 0.1 + 0.2, "é", null, { b: 1, a: [true] }];
    const answer = await signedRequest(port, SECRET, {
      method: "POST",
      path: "/execute_stream",
      body: JSON.stringify({ plugin: "Api", method: "each", args: [list] }),
    });
    expect(answer.status).toBe(200);
    const raw = answer.text.split("\n").filter(Boolean);
    expect(raw).toHaveLength(list.length + 1);
    raw.forEach((line, i) => {
      // protocol.md: remove `,"mac":"<64 hex digits>"` from the end; the rest is what is MACed.
      const match = /,"mac":"([0-9a-f]{64})"\}$/.exec(line);
      expect(match, line).not.toBeNull();
      const bare = `${line.slice(0, match?.index)}}`;
      expect(match?.[1]).toBe(streamLineMac(SECRET, answer.nonce, i + 1, bare));
    });
    expect(raw[0]).toMatch(/^\{"item":5e-7,"mac":/);
    expect(raw.at(-1)).toMatch(/^\{"end":true,"mac":/);
  });

  it("a stream refused before its first item gets a signed error answer", async () => {
    const answer = await signedRequest(port, SECRET, {
      method: "POST",
      path: "/execute_stream",
      body: JSON.stringify({ plugin: "Api", method: "count", args: ["x"] }),
    });
    // "x" is not an int: refused before any item, answered like /execute (hostile.test.ts
    // checks the signed error line of a stream that fails after its first item).
    expect(answer.status).toBe(400);
    expect(answer.json.error.code).toBe("INVALID_ARGUMENTS");
    expect(answer.headers[H_ANSWER]).toBe(answerMac(SECRET, answer.nonce, answer.text));
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
    expectBare401(await execute(signHeaders(`${SECRET}x`, "POST", instance, "/execute", body)));
    expectBare401(await execute(signHeaders("", "POST", instance, "/execute", body)));
  });

  it("a tampered body", async () => {
    const headers = signHeaders(SECRET, "POST", instance, "/execute", body);
    expectBare401(await execute(headers, JSON.stringify({ ...CALL, args: { a: 2, b: 4 } })));
    // Same JSON value, different bytes: the signature covers bytes.
    const spaced = body.replace(":", ": ");
    expectBare401(await execute(signHeaders(SECRET, "POST", instance, "/execute", body), spaced));
  });

  it("a tampered path or query", async () => {
    expectBare401(
      await execute(
        signHeaders(SECRET, "POST", instance, "/execute", body),
        body,
        "/execute_stream",
      ),
    );
    expectBare401(
      await execute(signHeaders(SECRET, "POST", instance, "/execute", body), body, "/execute?x=1"),
    );
    const headers = signHeaders(SECRET, "GET", instance, "/has_plugin?name=Api", "");
    expectBare401(await rawRequest(port, { path: "/has_plugin?name=Other", headers }));
  });

  it("a tampered method", async () => {
    // Signed as a POST without a body, sent as the GET the route serves.
    const headers = signHeaders(SECRET, "POST", instance, "/has_plugin?name=Api", "");
    expectBare401(await rawRequest(port, { method: "GET", path: "/has_plugin?name=Api", headers }));
    const forPing = signHeaders(SECRET, "GET", instance, "/ping", "");
    expectBare401(
      await rawRequest(port, { method: "HEAD", path: "/ping", headers: forPing }),
      true,
    );
  });

  it("timestamps 31 s in the past or future get 401; 5 s behind or ahead still pass", async () => {
    const now = Date.now();
    for (const time of [now - 31_000, now + 31_000, 0, 999_999_999_999_999]) {
      expectBare401(
        await execute(signHeaders(SECRET, "POST", instance, "/execute", body, { time })),
      );
    }
    for (const time of [now + 5000, now - 5000]) {
      const fine = await execute(signHeaders(SECRET, "POST", instance, "/execute", body, { time }));
      expect(fine.status, String(time - now)).toBe(200);
      expect(fine.json).toEqual({ result: 5 });
    }
  });

  it("a request dated a few seconds before the node started, signed for its instance, passes", async () => {
    // A peer whose clock runs a little behind is not refused by a node that just started:
    // what a restart forgets cannot be replayed anyway, since the instance changed.
    const started = Date.now();
    const F = await startNode({
      hostname: "fresh",
      dir,
      plugins: ["Api"],
      networking: { secret: SECRET },
    });
    try {
      const fresh = await instanceOf(F.port as number);
      const answer = await rawRequest(F.port as number, {
        method: "POST",
        path: "/execute",
        body,
        headers: {
          "content-type": "application/json",
          ...signHeaders(SECRET, "POST", fresh, "/execute", body, { time: started - 3000 }),
        },
      });
      expect(answer.status).toBe(200);
      expect(answer.json).toEqual({ result: 5 });
    } finally {
      await closeNode(F);
    }
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
    return signHeaders(SECRET, "POST", instance, "/execute", body, {
      time: change.time ?? h[H_TIME],
      nonce: change.nonce ?? h[H_NONCE],
    });
  }

  it.each(malformed)("%s", async (_name, change) => {
    expectBare401(await execute(change(signHeaders(SECRET, "POST", instance, "/execute", body))));
  });

  it("a replayed request: same headers and body twice", async () => {
    const headers = signHeaders(SECRET, "POST", instance, "/execute", body);
    expect((await execute(headers)).status).toBe(200);
    expectBare401(await execute(headers));
    const ping = signHeaders(SECRET, "GET", instance, "/ping", "");
    expect((await rawRequest(port, { path: "/ping", headers: ping })).json.hostname).toBe("alpha");
    expectBare401(await rawRequest(port, { path: "/ping", headers: ping }));
  });

  it("signed for another instance than the node's (made up, or its address as in the old scheme)", async () => {
    for (const other of [
      randomUUID(),
      "",
      hostOf(port),
      `localhost:${port}`,
      `alpha:${port}`,
      "alpha",
    ]) {
      expectBare401(await execute(signHeaders(SECRET, "POST", other, "/execute", body)));
    }
    // The same through the client helper told to sign for another instance; the control
    // without it (signed for the instance the node's /ping gives) passes.
    const forged = await signedRequest(port, SECRET, {
      method: "POST",
      path: "/execute",
      body,
      sign: { instance: randomUUID() },
    });
    expectBare401(forged);
    const genuine = await signedRequest(port, SECRET, { method: "POST", path: "/execute", body });
    expect(genuine.json).toEqual({ result: 5 });
  });

  it("the instance is compared exactly: another case, spaces or braces do not fit", async () => {
    for (const other of [
      instance.toUpperCase(),
      ` ${instance}`,
      `${instance} `,
      `{${instance}}`,
      instance.replaceAll("-", ""),
      instance.slice(0, -1),
    ]) {
      expectBare401(await execute(signHeaders(SECRET, "POST", other, "/execute", body)));
    }
  });

  it("a correctly signed request passes with any Host: names, addresses and ports of elsewhere", async () => {
    for (const host of [
      "evil.example",
      "evil.example:80",
      "gateway.example:8443",
      `127.0.0.1:${port + 1}`,
      `localhost:1`,
      "10.1.2.3:2510",
      "[2001:db8::1]:443",
      "LocalHost",
    ]) {
      const answer = await signedRequest(port, SECRET, {
        method: "POST",
        path: "/execute",
        body,
        headers: { host },
      });
      expect(answer.status, host).toBe(200);
      expect(answer.json).toEqual({ result: 5 });
      expect(answer.headers[H_ANSWER]).toBe(answerMac(SECRET, answer.nonce, answer.text));
      // The Host admits nothing by itself: unsigned with the same Host, still the bare 401,
      // while the unsigned /ping is answered as anywhere (no 421 on a node with a secret).
      expectBare401(
        await rawRequest(port, {
          method: "POST",
          path: "/execute",
          body,
          headers: { host, "content-type": "application/json" },
        }),
      );
      const ping = await rawRequest(port, { path: "/ping", headers: { host } });
      expect(ping.status, host).toBe(200);
      expect(ping.json).toEqual({ status: "ok", instance, time: expect.any(Number) });
    }
  });

  it("a request replayed to another node of the cluster is refused", async () => {
    const B = await startNode({
      hostname: "bravo",
      dir,
      plugins: ["Api"],
      networking: { secret: SECRET },
    });
    try {
      const bravo = await instanceOf(B.port as number);
      expect(bravo).not.toBe(instance);
      const headers = signHeaders(SECRET, "POST", instance, "/execute", body);
      expect((await execute(headers)).status).toBe(200);
      const replay = (host: string) =>
        rawRequest(B.port as number, {
          method: "POST",
          path: "/execute",
          body,
          headers: { "content-type": "application/json", host, ...headers },
        });
      // Signed for A's instance: B refuses it, with B's own Host or with A's.
      expectBare401(await replay(hostOf(B.port as number)));
      expectBare401(await replay(hostOf(port)));
      // Never sent to A: signed for A, refused by B all the same.
      const fresh = signHeaders(SECRET, "POST", instance, "/execute", body);
      expectBare401(
        await rawRequest(B.port as number, {
          method: "POST",
          path: "/execute",
          body,
          headers: { "content-type": "application/json", ...fresh },
        }),
      );
      // And the other way: signed for B, refused by A; B takes it (the control).
      const forB = signHeaders(SECRET, "POST", bravo, "/execute", body);
      expectBare401(await execute(forB));
      const atB = await rawRequest(B.port as number, {
        method: "POST",
        path: "/execute",
        body,
        headers: { "content-type": "application/json", ...forB },
      });
      expect(atB.status).toBe(200);
      expect(atB.json).toEqual({ result: 5 });
    } finally {
      await closeNode(B);
    }
  });

  it("a request replayed to the same node after it restarted is refused", async () => {
    const fixed = await freePort();
    const spec = {
      hostname: "romeo",
      dir,
      plugins: ["Api"],
      networking: { secret: SECRET, port: fixed },
    };
    let R = await startNode(spec);
    const first = await instanceOf(fixed);
    // Requests captured on their way: the same headers and body, sent again. One dated now,
    // one dated 20 s ahead (still within the 30 s window after the restart, and later than it),
    // and one captured but never delivered.
    const captured = [
      signHeaders(SECRET, "POST", first, "/execute", body),
      signHeaders(SECRET, "POST", first, "/execute", body, { time: Date.now() + 20_000 }),
    ];
    const undelivered = signHeaders(SECRET, "POST", first, "/execute", body, {
      time: Date.now() + 20_000,
    });
    const request = (headers: Record<string, string>) => ({
      method: "POST",
      path: "/execute",
      body,
      headers: { "content-type": "application/json", ...headers },
    });
    for (const headers of captured) {
      expect((await rawRequest(fixed, request(headers))).status).toBe(200);
      expectBare401(await rawRequest(fixed, request(headers)));
    }
    await closeNode(R);
    R = await startNode(spec);
    try {
      expect(R.port).toBe(fixed);
      // A new run, a new instance: nothing signed for the old one passes.
      const second = await instanceOf(fixed);
      expect(second).not.toBe(first);
      for (const headers of [...captured, undelivered]) {
        expectBare401(await rawRequest(fixed, request(headers)));
      }
      // The control: a client that asks the node again (GET /ping) is served.
      const fresh = await post(fixed, SECRET, "/execute", CALL);
      expect(fresh.status).toBe(200);
      expect(fresh.json).toEqual({ result: 5 });
    } finally {
      await closeNode(R);
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
    // B reaches alpha only through a recording proxy (TCP) and sends its heartbeats to a
    // recording UDP socket on the proxy's port number.
    const { node: alpha, proxy } = await nodeBehindProxy({
      hostname: "alpha",
      dir,
      plugins: ["Api"],
      networking: { secret: SECRET },
    });
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
      await closeNode(alpha);
    }
    const sent = Buffer.concat(proxy.fromClients).toString("latin1");
    const answered = Buffer.concat(proxy.fromUpstream).toString("latin1");
    // What was captured is the real, signed traffic: /info, the channel upgrade and a ping,
    // after the unsigned GET /ping that tells B whom to sign for (alpha, reached through the
    // proxy's address and port with no allowed_hosts, as behind port forwarding).
    expect(sent).toContain("GET /ping");
    expect(sent).toContain("POST /info");
    expect(sent).toContain("GET /aio/channel");
    expect(sent).toContain(H_SIG);
    expect(datagrams[0]?.toString()).toContain('"t":"ping"');
    // The pings are signed as docs/security.md says: over their nonce and send time.
    const ping = JSON.parse((datagrams[0] as Buffer).toString());
    expect(typeof ping.s).toBe("number");
    expect(Math.abs(Date.now() - ping.s)).toBeLessThan(30_000);
    expect(ping.m).toBe(pingMac(SECRET, ping.n, ping.s));
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
    // It tells who it is (the unsigned GET /ping, so the node can sign for it), then answers
    // nothing.
    const server = http.createServer((req, res) => {
      if (req.method === "GET" && req.url === "/ping") {
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ status: "ok", instance: randomUUID(), time: Date.now() }));
        return;
      }
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
      await waitFor(
        () => Buffer.concat(received).toString("latin1").includes(H_SIG),
        "a signed request to the silent peer",
      );
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
      expect(log).toMatch(
        /refused this node's credentials; check that both (nodes )?use the same secret/,
      );
      // A node_ips entry is tried again, and the log says so.
      expect(log).toContain("; trying again");
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
    expect(
      (await upgrade(port, signHeaders(`${SECRET}!`, "GET", instance, "/aio/channel", ""))).status,
    ).toBe(401);
    const other = signHeaders(SECRET, "GET", instance, "/aio/channel", "");
    expect((await upgrade(port, other, "/aio/channel?x=1")).status).toBe(401);
    // Signed for another node (its instance is part of the signature), or for this node's
    // address as the old scheme did, with any Host: 401, never 421 on a node with a secret.
    for (const other of [randomUUID(), hostOf(port), instance.toUpperCase()]) {
      const elsewhere = signHeaders(SECRET, "GET", other, "/aio/channel", "");
      expect((await upgrade(port, elsewhere)).status).toBe(401);
      const named = signHeaders(SECRET, "GET", other, "/aio/channel", "");
      const refused = await upgrade(port, { ...named, host: hostOf(port + 1) });
      expect(refused.status).toBe(401);
      expect(refused.body).toBe(UNAUTHORIZED_TEXT);
    }
    const stale = signHeaders(SECRET, "GET", instance, "/aio/channel", "", {
      time: Date.now() - 40_000,
    });
    expect((await upgrade(port, stale)).status).toBe(401);
    const once = signHeaders(SECRET, "GET", instance, "/aio/channel", "");
    const first = await upgrade(port, once);
    expect(first.status).toBe(101);
    first.ws.terminate();
    expect((await upgrade(port, once)).status).toBe(401);
  });

  it("opens, correctly signed for the instance, whatever Host the upgrade names", async () => {
    for (const host of ["evil.example", `127.0.0.1:${port + 1}`, "gateway.example:8443"]) {
      const headers = signHeaders(SECRET, "GET", instance, "/aio/channel", "");
      const opened = await upgrade(port, { ...headers, host });
      expect(opened.status, host).toBe(101);
      // The server proves it knows the secret, bound to this upgrade's nonce.
      expect(opened.response?.headers[H_ANSWER]).toBe(
        answerMac(SECRET, headers[H_NONCE] as string, opened.response?.headers[H_NONCE] as string),
      );
      opened.ws.terminate();
    }
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
    const server = http.createServer((req, res) => {
      res.setHeader("content-type", "application/json");
      // Who it is, as any node tells anyone (unsigned, so without a proof)...
      if (req.method === "GET" && req.url === "/ping") {
        res.end(JSON.stringify({ status: "ok", instance: "i-1", time: Date.now() }));
        return;
      }
      // ...then a plausible /info answer with a forged proof.
      res.setHeader(H_ANSWER, randomBytes(32).toString("hex"));
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
    // HTTP goes to a genuine node alpha; channel upgrades go to an impostor WebSocket server
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
    const { node: alpha, proxy } = await nodeBehindProxy(
      { hostname: "alpha", dir, plugins: ["Api"], networking: { secret: SECRET } },
      (first, genuine) =>
        first.toString("latin1").startsWith("GET /aio/channel") ? fakePort : genuine,
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
      await closeNode(alpha);
      for (const client of wss.clients) client.terminate();
      fake.closeAllConnections();
      fake.close();
    }
  });
});

// ------------------------------------------------------------------------------------------

describe("integrity of answers against a man in the middle (no TLS)", () => {
  /**
   * A node in a child process reached only through a rewriting man in the middle (another
   * process), as behind port forwarding: the node listens on a port chosen first. With a secret
   * it needs nothing more; without one it accepts the proxy's `127.0.0.1:<port>` through
   * allowed_hosts.
   */
  async function behindMitm(from: string, to: string, slice = 0, secret = SECRET) {
    const fixed = await freePort();
    const proxy = await spawnMitm(fixed, from, to, slice);
    const child = await spawnNode({
      hostname: "remote",
      dir,
      plugins: ["Api", "Text"],
      networking: {
        secret,
        port: fixed,
        ...(secret ? {} : { allowed_hosts: [`127.0.0.1:${proxy.port}`] }),
      },
    });
    return { child, proxy };
  }

  it("a tampered item of an HTTP stream never reaches the consumer", async () => {
    // Each line carries its own MAC now, so the rewrite keeps the line's shape.
    const { child, proxy } = await behindMitm('{"item":1,', '{"item":7,');
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
      // The forgery is noticed...
      expect(code).toBe("UNAUTHORIZED");
      // ...before the consumer was handed the forged item: it got the genuine one before it.
      expect(items).not.toContain(7);
      expect(items).toEqual([0]);
      // Untampered, the same stream through the same proxy is whole (the control).
      const whole = [...B.executeStreamSync("Api", "count", [1], { host: "remote" })];
      expect(whole).toEqual([0]);
    } finally {
      await closeNode(B);
      await proxy.stop();
      await child.stop();
    }
  });

  it("a genuine HTTP stream of non-ASCII items reaches the consumer whole, however it is cut", async () => {
    const expected = [0, 1, 2].map((i) => "é".repeat(3000 + i));
    const seen: unknown[] = [];
    for (const secret of [SECRET, ""]) {
      const { child, proxy } = await behindMitm("", "", 1001, secret);
      const B = await startNode({
        hostname: "bravo",
        dir,
        networking: { secret, node_ips: [`127.0.0.1:${proxy.port}`] },
      });
      try {
        const items = [...B.executeStreamSync("Text", "words", [3], { host: "remote" })];
        seen.push(
          items.map((item, i) =>
            item === expected[i] ? "whole" : `altered: ${JSON.stringify(item).slice(0, 80)}…`,
          ),
        );
      } catch (error) {
        seen.push((error as { code?: string }).code);
      } finally {
        await closeNode(B);
        await proxy.stop();
        await child.stop();
      }
    }
    expect(seen).toEqual([
      ["whole", "whole", "whole"],
      ["whole", "whole", "whole"],
    ]);
  });

  it("a tampered /execute answer is refused as a whole (the control)", async () => {
    const { child, proxy } = await behindMitm('{"result":3}', '{"result":9}');
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
  it("a replayed genuine ping gets no answer", async () => {
    const socket = createSocket("udp4");
    const answers: Buffer[] = [];
    socket.on("message", (m) => answers.push(m));
    await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
    const nonce = randomBytes(12).toString("hex");
    const ping = signedPing(SECRET, nonce);
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
      const now = Date.now();
      const bad = [
        pingDatagram({ n: n(), s: now }), // unsigned
        pingDatagram({ n: n(), s: now, m: randomBytes(32).toString("hex") }), // forged
        pingDatagram({ n: n(), s: now, m: pingMac(`${SECRET}x`, "whatever", now) }), // another secret
        pingDatagram({ n: n(), s: now, m: pingMac(SECRET, other, now) }), // a MAC for another nonce
        pingDatagram({ n: n(), s: now, m: "" }),
        Buffer.from(JSON.stringify({ t: "ping", n: n(), s: now, m: pingMac(SECRET, "x", now) })), // short
      ];
      // Genuine MACs, but stale, from the future, or over another time than the one sent.
      bad.push(signedPing(SECRET, n(), now - 31_000));
      bad.push(signedPing(SECRET, n(), now + 31_000));
      const moved = n();
      bad.push(pingDatagram({ n: moved, s: now, m: pingMac(SECRET, moved, now - 1) }));
      // The time as a string, and no time at all (the MAC of the old scheme, over the nonce).
      const text = n();
      bad.push(pingDatagram({ n: text, s: String(now), m: pingMac(SECRET, text, now) }));
      const old = n();
      bad.push(pingDatagram({ n: old, m: mac(SECRET, "udp", `ping\n${old}`) }));
      // A genuine ping too short to be answered (anti-amplification).
      bad.push(signedPing(SECRET, n(), now, 0));
      for (const datagram of bad) await send(datagram);
      await sleep(200);
      expect(answers).toEqual([]);
      // The control: a signed ping is answered, so the silence above is a refusal.
      const nonce = n();
      const ping = signedPing(SECRET, nonce);
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
