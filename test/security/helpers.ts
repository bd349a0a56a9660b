/**
 * Fixtures for the security tests: nodes started in this process, plugin folders in temp dirs,
 * and an HTTP client that controls every byte of a request (method, path, Host, headers, body)
 * and signs requests the way docs/security.md describes (for the instance id of the node they
 * are sent to, learned from its unsigned `GET /ping`), checks stream lines and builds heartbeat
 * pings, independently of src/.
 *
 * Independent of src/: only the package's public API (plus, where a test says so, the built
 * `dist/net/auth.js` to cross-check the signing written here), test/support.ts, and the plugin
 * folder fixtures of the networking tests.
 */
import { spawn } from "node:child_process";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type ConfigObject, type NetworkingConfig, PluginCore } from "aio-assistant-core";
import WebSocket from "ws";
import {
  type PluginDef,
  pluginDir,
  rep,
  SLEEP,
  spawnNode as spawnNetNode,
} from "../net/helpers.js";
import {
  freePort,
  removeTempDirs,
  shared,
  sharedRef,
  tempDir,
  waitFor,
  writeTree,
} from "../support.js";

export type { EndpointSpec, PluginDef } from "../net/helpers.js";
export { freePort, pluginDir, rep, SLEEP, shared, sharedRef, tempDir, waitFor, writeTree };

// ------------------------------------------------------------------------------ plugins

/** The usual test plugin: arithmetic, echo, a generator, a thrower. */
export const API: PluginDef = {
  body: `
  add(a: number, b: number) { return a + b; }
  echo(v: unknown) { return v; }
  fail() { throw new TypeError("bad thing"); }
  *count(n: number) { for (let i = 0; i < n; i++) yield i; }
  *each(list: unknown[]) { yield* list; }`,
  endpoints: [
    rep("add", [
      { name: "a", type: "int", required: true },
      { name: "b", type: "int", required: true },
    ]),
    rep("echo", ["v"]),
    rep("fail"),
    rep("count", [{ name: "n", type: "int" }]),
    rep("each", [{ name: "list", type: "list" }]),
  ],
};

// ------------------------------------------------------------------------------ nodes

export interface NodeSpec {
  hostname: string;
  dir?: string;
  plugins?: Array<string | { name: string; allowed_nodes?: string[] }>;
  networking?: Partial<NetworkingConfig>;
  general?: Record<string, unknown>;
  /** A fresh folder for the node's log file (read it with {@link readLog} after close). */
  logDir?: string;
}

export function nodeConfig(spec: NodeSpec): ConfigObject {
  return {
    baseDir: spec.dir ?? tempDir(),
    plugins: (spec.plugins ?? []).map((p) => (typeof p === "string" ? { name: p } : p)),
    general: {
      hostname: spec.hostname,
      plugin_package: "plugins",
      console_log_level: "CRITICAL",
      log_dir: spec.logDir ?? "",
      drain_timeout: 1,
      ...spec.general,
    },
    networking: {
      enabled: true,
      port: 0,
      heartbeat_interval: 0.2,
      liveness_timeout: 1,
      discover_nodes: false,
      // Loopback unless a test says otherwise: no mDNS, so nodes of parallel test files never meet.
      bind: "127.0.0.1",
      ...spec.networking,
    },
  } as ConfigObject;
}

const cores = new Set<PluginCore>();

export async function startNode(spec: NodeSpec): Promise<PluginCore> {
  const core = new PluginCore(nodeConfig(spec));
  cores.add(core);
  await core.start();
  return core;
}

export async function closeNode(core: PluginCore): Promise<void> {
  cores.delete(core);
  await core.close();
}

/** Every line of the log file(s) written into `dir` (JSON lines, as text). */
export function readLog(dir: string): string {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".log"))
    .map((f) => readFileSync(join(dir, f), "utf8"))
    .join("\n");
}

export async function cleanup(): Promise<void> {
  await Promise.all([...cores].map((core) => core.close().catch(() => undefined)));
  cores.clear();
  removeTempDirs();
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Awaits `work` and returns what it rejected with (fails if it resolves). */
export async function failure(work: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await work;
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error("expected the call to fail");
}

// ------------------------------------------------------------------------------ signing
// Written from the scheme in docs/security.md, not imported from src/, so a test that passes
// with it also proves the documentation is enough to talk to a node from another language.

export const H_TIME = "x-aio-time";
export const H_NONCE = "x-aio-nonce";
export const H_SIG = "x-aio-signature";
export const H_DIGEST = "x-aio-digest";
export const H_ANSWER = "x-aio-answer";

export function sha256Hex(data: string | Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

export function mac(key: string | Buffer, ...parts: string[]): string {
  return createHmac("sha256", key).update(parts.join("\n")).digest("hex");
}

export interface SignOptions {
  time?: number | string;
  nonce?: string;
}

/**
 * The Host header a client sends to `address:port` (an IPv6 address in brackets). Not part of
 * the signature: with a secret, a node accepts any Host.
 */
export function hostOf(port: number, address = "127.0.0.1"): string {
  return `${net.isIPv6(address) ? `[${address}]` : address}:${port}`;
}

/**
 * The four headers that authenticate a request to the node whose instance id is `instance`
 * (from its `GET /ping`, exactly as given): time, nonce, the body's digest and the signature.
 * `path` includes the query string.
 */
export function signHeaders(
  secret: string,
  method: string,
  instance: string,
  path: string,
  body: string | Buffer = "",
  options: SignOptions = {},
): Record<string, string> {
  const time = String(options.time ?? Date.now());
  const nonce = options.nonce ?? randomBytes(16).toString("hex");
  const digest = sha256Hex(body);
  return {
    [H_TIME]: time,
    [H_NONCE]: nonce,
    [H_DIGEST]: digest,
    [H_SIG]: mac(secret, method.toUpperCase(), instance, path, time, nonce, digest),
  };
}

/** Signature headers as raw HTTP header lines (`name: value\r\n` each). */
export function headerLines(headers: Record<string, string>): string {
  return Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join("");
}

/** The `x-aio-answer` an answer to the request with `nonce` must carry. */
export function answerMac(secret: string, nonce: string, body: string | Buffer): string {
  return mac(secret, "answer", nonce, sha256Hex(body));
}

/**
 * The MAC line `n` (from 1) of a stream answer to the request with `nonce` carries, `bare`
 * being the JSON of the line's content without its `mac` (`{"item":3}`, `{"end":true}`).
 */
export function streamLineMac(secret: string, nonce: string, n: number, bare: string): string {
  return mac(secret, "stream", nonce, String(n), bare);
}

/**
 * Reads an NDJSON stream answer to the signed request with `nonce`: each line's content
 * (without `mac`), and the numbers (from 1) of the lines whose MAC is missing or wrong.
 */
export function readSignedStream(
  secret: string,
  nonce: string,
  text: string,
): { lines: Array<Record<string, unknown>>; bad: number[] } {
  const lines: Array<Record<string, unknown>> = [];
  const bad: number[] = [];
  text
    .split("\n")
    .filter(Boolean)
    .forEach((line, i) => {
      const { mac: lineMac, ...content } = JSON.parse(line) as Record<string, unknown>;
      lines.push(content);
      if (lineMac !== streamLineMac(secret, nonce, i + 1, JSON.stringify(content))) bad.push(i + 1);
    });
  return { lines, bad };
}

/**
 * A heartbeat ping datagram, padded to 256 bytes: nonce `n`, send time `s` (ms since the
 * epoch) and MAC `m`, each left out when not given.
 */
export function pingDatagram(
  ping: { n: string; s?: unknown; m?: unknown },
  minBytes = 256,
): Buffer {
  const body: Record<string, unknown> = { t: "ping", n: ping.n };
  if (ping.s !== undefined) body.s = ping.s;
  if (ping.m !== undefined) body.m = ping.m;
  body.pad = "";
  const bare = Buffer.byteLength(JSON.stringify(body));
  body.pad = "x".repeat(Math.max(0, minBytes - bare));
  return Buffer.from(JSON.stringify(body));
}

export const pingMac = (secret: string, nonce: string, sent: number | string) =>
  mac(secret, "udp", `ping\n${nonce}\n${sent}`);
export const pongMac = (secret: string, pong: { n: string; i: string; h: string; v: number }) =>
  mac(secret, "udp", `pong\n${pong.n}\n${pong.i}\n${pong.h}\n${pong.v}`);

/** A genuine signed ping sent at `sent` (default now). */
export function signedPing(secret: string, nonce: string, sent = Date.now(), minBytes = 256) {
  return pingDatagram({ n: nonce, s: sent, m: pingMac(secret, nonce, sent) }, minBytes);
}

// ------------------------------------------------------------------------------ raw HTTP

export interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  // biome-ignore lint/suspicious/noExplicitAny: received JSON, checked field by field by tests
  json: any;
}

export interface RawRequest {
  method?: string;
  path: string;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
  /** Source address (e.g. 127.0.0.2) to appear as another peer. */
  localAddress?: string;
  /** Target address; default 127.0.0.1. */
  address?: string;
  timeoutMs?: number;
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** One request on a fresh connection, exactly as given (Host defaults to `address:port`). */
export function rawRequest(port: number, request: RawRequest): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | string[]> = { ...request.headers };
    if (!Object.keys(headers).some((name) => name.toLowerCase() === "host")) {
      headers.host = hostOf(port, request.address);
    }
    if (request.body !== undefined && headers["content-length"] === undefined) {
      headers["content-length"] = String(Buffer.byteLength(request.body));
    }
    const req = http.request(
      {
        host: request.address ?? "127.0.0.1",
        port,
        method: request.method ?? "GET",
        path: request.path,
        headers,
        agent: false,
        ...(request.localAddress ? { localAddress: request.localAddress } : {}),
        timeout: request.timeoutMs ?? 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: parse(text) });
        });
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("request timed out")));
    req.on("error", reject);
    if (request.body !== undefined) req.write(request.body);
    req.end();
  });
}

/** What a node's unsigned `GET /ping` says: who it is this run, and its clock. */
export interface Identity {
  instance: string;
  /** The node's clock, in milliseconds since the epoch. */
  time: number;
}

/**
 * Asks the node at `address:port` who it is, as docs/security.md says a client does before it
 * signs: an unsigned `GET /ping`. Asked afresh each time, so a node restarted on the same port
 * is asked for its new instance.
 */
export async function identityOf(port: number, address?: string): Promise<Identity> {
  const answer = await rawRequest(port, { path: "/ping", ...(address ? { address } : {}) });
  const { instance, time } = (answer.json ?? {}) as Partial<Identity>;
  if (answer.status !== 200 || typeof instance !== "string" || typeof time !== "number") {
    throw new Error(`GET /ping on port ${port}: ${answer.status} ${answer.text.slice(0, 200)}`);
  }
  return { instance, time };
}

/** The instance id of the node at `address:port` now: what requests to it are signed for. */
export async function instanceOf(port: number, address?: string): Promise<string> {
  return (await identityOf(port, address)).instance;
}

/**
 * A request signed with `secret` for the node it is sent to (its instance id, asked with an
 * unsigned `GET /ping` just before; `sign.instance` signs for another, to forge or replay);
 * returns the answer and the request's nonce.
 */
export async function signedRequest(
  port: number,
  secret: string,
  request: RawRequest & { sign?: SignOptions & { instance?: string } },
): Promise<RawAnswer & { nonce: string }> {
  const method = request.method ?? (request.body === undefined ? "GET" : "POST");
  const body = request.body ?? "";
  const instance = request.sign?.instance ?? (await instanceOf(port, request.address));
  const signed = signHeaders(secret, method, instance, request.path, body, request.sign);
  const headers: Record<string, string | string[]> = { ...signed, ...request.headers };
  if (request.body !== undefined && headers["content-type"] === undefined) {
    headers["content-type"] = "application/json";
  }
  const answer = await rawRequest(port, { ...request, method, headers });
  return { ...answer, nonce: signed[H_NONCE] as string };
}

/**
 * POST `/execute` (or another path) with a JSON body, signed when a secret is given (for the
 * instance of the node at `port`, or `extra.sign.instance`).
 */
export function post(
  port: number,
  secret: string | undefined,
  path: string,
  body: unknown,
  extra: Partial<RawRequest> & { sign?: SignOptions & { instance?: string } } = {},
): Promise<RawAnswer> {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  const request: RawRequest & { sign?: SignOptions & { instance?: string } } = {
    method: "POST",
    path,
    body: text,
    ...extra,
    headers: { "content-type": "application/json", ...extra.headers },
  };
  return secret ? signedRequest(port, secret, request) : rawRequest(port, request);
}

/** Sends raw bytes on a fresh TCP connection; resolves with everything received until close. */
export function rawExchange(
  port: number,
  bytes: Buffer | string,
  { timeoutMs = 3000, endAfterWrite = false } = {},
): Promise<{ received: string; timedOut: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (timedOut: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ received: Buffer.concat(chunks).toString("latin1"), timedOut });
    };
    const timer = setTimeout(() => finish(true), timeoutMs);
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("close", () => finish(false));
    socket.on("error", () => finish(false));
    socket.write(bytes, () => {
      if (endAfterWrite) socket.end();
    });
  });
}

/** The HTTP status of a raw answer (0 when none). */
export function statusOfRaw(received: string): number {
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(received);
  return match ? Number(match[1]) : 0;
}

/** The JSON body of a raw HTTP answer, if any. */
export function bodyOfRaw(received: string): unknown {
  const at = received.indexOf("\r\n\r\n");
  return at < 0 ? undefined : parse(received.slice(at + 4));
}

export const UNAUTHORIZED_TEXT = '{"error":{"code":"UNAUTHORIZED","message":"unauthorized"}}';

// ------------------------------------------------------------------------------ proxies

export interface Proxy {
  port: number;
  /** Everything clients sent through the proxy. */
  fromClients: Buffer[];
  /** The same, one entry per client connection, in the order the connections were opened. */
  connections: Buffer[][];
  /** Everything the upstream answered. */
  fromUpstream: Buffer[];
  /** Connections opened, by the upstream port they were routed to. */
  routed: number[];
  close(): Promise<void>;
}

/**
 * A TCP proxy on 127.0.0.1 that records every byte both ways. `route` picks the upstream port
 * from the first bytes a client sends (default: always `upstream`). Clients reach the node as
 * `127.0.0.1:<proxy port>`: a node with a secret accepts that as it is, one without needs it in
 * its `allowed_hosts` (see {@link nodeBehindProxy}).
 */
export function recordingProxy(
  upstream: number,
  route: (first: Buffer) => number = () => upstream,
  /** Rewrites what the upstream answers before the client gets it (a man in the middle). */
  rewrite: (chunk: Buffer) => Buffer = (chunk) => chunk,
): Promise<Proxy> {
  const fromClients: Buffer[] = [];
  const connections: Buffer[][] = [];
  const fromUpstream: Buffer[] = [];
  const routed: number[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const sent: Buffer[] = [];
    connections.push(sent);
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => undefined);
    client.once("data", (first: Buffer) => {
      const port = route(first);
      routed.push(port);
      fromClients.push(first);
      sent.push(first);
      const target = net.connect(port, "127.0.0.1");
      sockets.add(target);
      target.on("close", () => {
        sockets.delete(target);
        client.destroy();
      });
      target.on("error", () => client.destroy());
      client.on("close", () => target.destroy());
      target.write(first);
      client.on("data", (chunk: Buffer) => {
        fromClients.push(chunk);
        sent.push(chunk);
        target.write(chunk);
      });
      target.on("data", (chunk: Buffer) => {
        fromUpstream.push(chunk);
        client.write(rewrite(chunk));
      });
    });
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      resolve({
        port: (server.address() as net.AddressInfo).port,
        fromClients,
        connections,
        fromUpstream,
        routed,
        close: () =>
          new Promise<void>((done) => {
            for (const socket of sockets) socket.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

/**
 * A node reached only through a {@link recordingProxy}, as a node behind port forwarding: the
 * proxy is opened first. A node with a secret needs nothing more (requests are signed for its
 * instance, whatever Host they name); one without accepts the proxy's `127.0.0.1:<proxy port>`
 * through `allowed_hosts` (the `name:port` form). `route` may send some connections elsewhere.
 */
export async function nodeBehindProxy(
  spec: NodeSpec,
  route?: (first: Buffer, node: number) => number,
): Promise<{ node: PluginCore; proxy: Proxy }> {
  let upstream = 0;
  const proxy = await recordingProxy(0, (first) => (route ? route(first, upstream) : upstream));
  const node = await startNode(
    spec.networking?.secret
      ? spec
      : {
          ...spec,
          networking: {
            ...spec.networking,
            allowed_hosts: [...(spec.networking?.allowed_hosts ?? []), `127.0.0.1:${proxy.port}`],
          },
        },
  );
  upstream = node.port as number;
  return { node, proxy };
}

// ------------------------------------------------------------------------------ channel

/** Opens a WebSocket to the channel; resolves how the upgrade ended. */
export function upgrade(
  target: number,
  headers: Record<string, string>,
  path = "/aio/channel",
): Promise<{ status: number; body: string; response?: http.IncomingMessage; ws: WebSocket }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${target}${path}`, {
      headers,
      perMessageDeflate: false,
    });
    ws.on("error", () => undefined);
    ws.once("upgrade", (response) => resolve({ status: 101, body: "", response, ws }));
    ws.once("unexpected-response", (_req, response) => {
      let body = "";
      response.on("data", (c: Buffer) => {
        body += c.toString();
      });
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body, ws }));
    });
  });
}

/**
 * A channel client written from docs/security.md: the upgrade signed for the instance of the
 * node at `target` (asked just before), handshake, session key, sealed messages.
 */
export async function openChannel(target: number, secret: string) {
  const headers = signHeaders(secret, "GET", await instanceOf(target), "/aio/channel", "");
  const clientNonce = headers[H_NONCE] as string;
  const result = await upgrade(target, headers);
  if (result.status !== 101 || !result.response) throw new Error(`upgrade: ${result.status}`);
  const serverNonce = result.response.headers[H_NONCE] as string;
  const proof = result.response.headers[H_ANSWER];
  const key = Buffer.from(mac(secret, "session", clientNonce, serverNonce), "hex");
  const ws = result.ws;
  await new Promise<void>((resolve) => {
    if (ws.readyState === ws.OPEN) resolve();
    else ws.once("open", () => resolve());
  });
  let sent = 0;
  let received = 0;
  const messages: unknown[] = [];
  const badMacs: string[] = [];
  ws.on("message", (data) => {
    const text = data.toString();
    const payload = text.slice(64);
    if (text.slice(0, 64) !== mac(key, "s", String(++received), payload)) badMacs.push(text);
    // Packets produced in one turn arrive together, as a JSON array.
    const decoded = JSON.parse(payload) as unknown;
    if (Array.isArray(decoded)) messages.push(...decoded);
    else messages.push(decoded);
  });
  const closed = new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)));
  return {
    ws,
    serverNonce,
    proof,
    clientNonce,
    messages,
    badMacs,
    closed,
    seal: (payload: string, seq = ++sent) => mac(key, "c", String(seq), payload) + payload,
    send(payload: object) {
      ws.send(this.seal(JSON.stringify(payload)));
    },
  };
}

/** Resolves true if `promise` settles within `ms`. */
export async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return Promise.race([promise.then(() => true), sleep(ms).then(() => false)]);
}

export type Channel = Awaited<ReturnType<typeof openChannel>>;

// ------------------------------------------------------------------------------ child nodes

export interface ChildNode {
  port: number;
  pid: number;
  /** Whether the process is still running. */
  alive(): boolean;
  /** Its resident memory now, in bytes (Linux). */
  rss(): number;
  stderr(): string;
  stop(): Promise<void>;
}

/** The resident memory of process `pid`, in bytes, from /proc (Linux). */
export function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
}

/** A node in its own process (for input that may crash it), started as the networking tests do. */
export async function spawnNode(spec: NodeSpec): Promise<ChildNode> {
  const child = await spawnNetNode(nodeConfig(spec));
  const alive = () => child.proc.exitCode === null && child.proc.signalCode === null;
  return {
    port: child.port,
    pid: child.pid,
    alive,
    rss: () => rssOf(child.pid),
    stderr: child.stderr,
    stop: async () => {
      if (alive()) child.proc.kill("SIGKILL");
      await child.exited;
    },
  };
}

/**
 * A rewriting TCP proxy in a child process: answers have `from` replaced by `to`; with
 * `slice`, they also reach the client in pieces of that many bytes (unchanged otherwise).
 */
export function spawnMitm(
  upstream: number,
  from: string,
  to: string,
  slice = 0,
): Promise<{ port: number; stop(): Promise<void> }> {
  const script = fileURLToPath(new URL("./fixtures/mitm.mjs", import.meta.url));
  const proc = spawn(process.execPath, [script, String(upstream), from, to, String(slice)], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  return new Promise((resolve, reject) => {
    let out = "";
    proc.stdout?.on("data", (c: Buffer) => {
      out += c.toString();
      const ready = /READY (.*)\n/.exec(out);
      if (!ready) return;
      const { port } = JSON.parse(ready[1] as string) as { port: number };
      resolve({
        port,
        stop: async () => {
          if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
          await exited;
        },
      });
    });
    proc.once("exit", (code) => reject(new Error(`the proxy exited (${code})`)));
  });
}
