/**
 * TLS between nodes, with certificates made by openssl at test time: a small cluster CA and
 * node certificates with IP SAN 127.0.0.1. Nodes with cert_file/key_file/ca_file and a secret
 * call each other (execute, executeStream); a node trusting only the system CAs cannot reach
 * them and logs why; pinned fingerprints work when right and refuse when wrong; a certificate
 * for another name is refused; plain HTTP to a TLS node fails.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import https from "node:https";
import { join } from "node:path";
import type { PluginCore } from "aio-assistant-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TestCa, testCa } from "../certs.js";
import {
  API,
  cleanup,
  closeNode,
  failure,
  pluginDir,
  rawExchange,
  rawRequest,
  readLog,
  signHeaders,
  startNode,
  tempDir,
  waitFor,
} from "./helpers.js";

const SECRET = `tls-${randomBytes(24).toString("hex")}`;

let certs: TestCa;
let dir: string;
let T1: PluginCore;
let T2: PluginCore;

const nodeCert = (name: string, san?: string) => certs.issue(name, san);
const fingerprint = (cert: string) => certs.fingerprint(cert);
const files = (c: { cert: string; key: string }) => ({ cert_file: c.cert, key_file: c.key });
let ca: string;

beforeAll(async () => {
  certs = testCa();
  ca = certs.ca;
  dir = pluginDir({ Api: API });
  T1 = await startNode({
    hostname: "t1",
    dir,
    plugins: ["Api"],
    networking: { secret: SECRET, ...files(nodeCert("t1")), ca_file: ca, discover_nodes: true },
  });
  T2 = await startNode({
    hostname: "t2",
    dir,
    plugins: ["Api"],
    networking: {
      secret: SECRET,
      ...files(nodeCert("t2")),
      ca_file: ca,
      discover_nodes: true,
      node_ips: [`127.0.0.1:${T1.port}`],
    },
  });
}, 30_000);

afterAll(cleanup);

const collect = async (items: AsyncIterable<unknown>) => {
  const out: unknown[] = [];
  for await (const item of items) out.push(item);
  return out;
};

describe("two nodes with the cluster CA", () => {
  it("call each other: execute and executeStream, both ways", async () => {
    expect(await T2.execute("Api", "add", [2, 3], { host: "t1" })).toBe(5);
    expect(await collect(T2.executeStream("Api", "count", [3], { host: "t1" }))).toEqual([0, 1, 2]);
    await waitFor(() => T1.nodes().find((n) => n.hostname === "t2"), "t1 to learn t2");
    expect(await T1.execute("Api", "add", [4, 5], { host: "t2" })).toBe(9);
    expect(await collect(T1.executeStream("Api", "count", [2], { host: "t2" }))).toEqual([0, 1]);
  });

  it("serve HTTPS to any client trusting the CA (signed with the secret)", async () => {
    /** A GET over HTTPS, trusting the cluster CA. */
    const get = (path: string, headers: Record<string, string> = {}) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const request = https.request(
          { host: "127.0.0.1", port: T1.port, path, ca: readFileSync(ca), headers },
          (res) => {
            let body = "";
            res.on("data", (c: Buffer) => {
              body += c.toString();
            });
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
          },
        );
        request.on("error", reject);
        request.end();
      });
    // First who the node is (the unsigned /ping), then a request signed for it.
    const who = await get("/ping");
    expect(who.status).toBe(200);
    const { instance } = JSON.parse(who.body) as { instance: string };
    expect(JSON.parse(who.body)).toEqual({ status: "ok", instance, time: expect.any(Number) });
    const answer = await get("/ping", signHeaders(SECRET, "GET", instance, "/ping", ""));
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({
      status: "ok",
      hostname: "t1",
      instance,
      time: expect.any(Number),
    });
  });

  it("plain HTTP to a TLS node fails", async () => {
    const plain = await rawRequest(T1.port as number, { path: "/ping", timeoutMs: 3000 }).then(
      (answer) => answer.status,
      () => "failed",
    );
    expect(plain).not.toBe(200);
    const { received } = await rawExchange(
      T1.port as number,
      "GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    );
    expect(received).not.toMatch(/^HTTP\/1\.1 200/);
    expect(received).not.toContain('"status":"ok"');
  });
});

/** Starts a node pointed at T1; returns its view of the nodes and its log (after closing it). */
async function contactT1(name: string, networking: Record<string, unknown>) {
  const logDir = tempDir();
  const core = await startNode({
    hostname: name,
    dir,
    logDir,
    networking: { secret: SECRET, node_ips: [`127.0.0.1:${T1.port}`], ...networking },
  });
  const nodes = core.nodes().map((n) => n.hostname);
  const call = await core.execute("Api", "add", [1, 1], { host: "t1" }).then(
    (value) => ({ value }),
    (error: { code?: string }) => ({ code: error.code }),
  );
  const stream = await collect(core.executeStream("Api", "count", [2], { host: "t1" })).catch(
    (error: { code?: string }) => ({ code: error.code }),
  );
  await closeNode(core);
  return { nodes, call, stream, log: readLog(logDir) };
}

describe("peer verification", () => {
  it("a node trusting only the system CAs cannot reach the cluster, and logs the failure", async () => {
    const seen = await contactT1("sysca", files(nodeCert("sysca")));
    expect(seen.nodes).toEqual([]);
    expect(seen.call).toEqual({ code: "NO_NODE" });
    expect(seen.log).toContain(`cannot reach 127.0.0.1:${T1.port}`);
    expect(seen.log).toMatch(
      /unable to (get local issuer|verify the first) certificate|self[- ]signed certificate/,
    );
    expect(seen.log).toContain("check networking.ca_file");
  });

  it("a node without TLS is told that the other one may want it", async () => {
    const seen = await contactT1("plain", {});
    expect(seen.nodes).toEqual([]);
    expect(seen.log).toContain("if that node uses TLS, this one needs networking.cert_file");
  });

  it("the right pinned fingerprint (as openssl prints it) works without ca_file", async () => {
    const pin = fingerprint(join(certs.dir, "t1.crt"));
    expect(pin).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    const seen = await contactT1("pinned", {
      ...files(nodeCert("pinned")),
      pinned_fingerprints: [pin],
    });
    expect(seen.nodes).toEqual(["t1"]);
    expect(seen.call).toEqual({ value: 2 });
    expect(seen.stream).toEqual([0, 1]);
  });

  it("a wrong pinned fingerprint is refused, even with the CA that signed the peer", async () => {
    const wrong = fingerprint(join(certs.dir, "t2.crt")); // a genuine cluster certificate, not t1's
    const seen = await contactT1("mispinned", {
      ...files(nodeCert("mispinned")),
      ca_file: ca,
      pinned_fingerprints: [wrong],
    });
    expect(seen.nodes).toEqual([]);
    expect(seen.call).toEqual({ code: "NO_NODE" });
    expect(seen.log).toMatch(/is not among networking\.pinned_fingerprints/);
  });

  it("a certificate from the cluster CA but for another name is refused", async () => {
    const T7 = await startNode({
      hostname: "t7",
      dir,
      plugins: ["Api"],
      networking: {
        secret: SECRET,
        ...files(nodeCert("t7", "DNS:elsewhere.example")),
        ca_file: ca,
      },
    });
    const logDir = tempDir();
    const core = await startNode({
      hostname: "checker",
      dir,
      logDir,
      networking: {
        secret: SECRET,
        ...files(nodeCert("checker")),
        ca_file: ca,
        node_ips: [`127.0.0.1:${T7.port}`],
      },
    });
    expect(core.nodes()).toEqual([]);
    await closeNode(core);
    await closeNode(T7);
    expect(readLog(logDir)).toMatch(
      /does not match certificate's altnames|IP: 127\.0\.0\.1 is not in the cert's list/,
    );
  });

  it("a node without TLS (plain HTTP) cannot reach a TLS node", async () => {
    const seen = await contactT1("plain", {});
    expect(seen.nodes).toEqual([]);
    expect(seen.call).toEqual({ code: "NO_NODE" });
    expect(seen.log).toContain(`cannot reach 127.0.0.1:${T1.port}`);
  });
});

describe("configuration", () => {
  it("cert_file without key_file is a ConfigError", async () => {
    const { ConfigError, PluginCore } = await import("aio-assistant-core");
    const error = await failure(
      (async () =>
        new PluginCore({
          plugins: [],
          general: { hostname: "x", log_dir: "" },
          networking: {
            enabled: true,
            port: 0,
            bind: "127.0.0.1",
            cert_file: join(certs.dir, "t1.crt"),
          },
        }))(),
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toMatch(/key_file/);
  });
});
