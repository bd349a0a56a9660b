/**
 * Helpers of the `http` section (bench/sections/http.mjs) and of bench/http-profile.mjs: the
 * server processes (bench/lib/http-server.mjs), an autocannon load against one, signed or not,
 * and a check that a server answers as it should.
 */
import { fork } from "node:child_process";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";

const SERVER = fileURLToPath(new URL("./http-server.mjs", import.meta.url));

export const CONNECTIONS = 64;
export const TEXT = "hello";
export const BODY = JSON.stringify({ plugin: "Echo", method: "echo", args: { text: TEXT } });
export const ANSWER = JSON.stringify({ result: TEXT });

const hmac = (key, ...parts) => createHmac("sha256", key).update(parts.join("\n")).digest("hex");
const sha256 = (text) => createHash("sha256").update(text).digest("hex");
const DIGEST = sha256(BODY);

/**
 * The signature headers of one `POST /execute` of BODY (docs/security.md, "How it works on the
 * wire"): a fresh nonce and time each, so no two requests are alike. Written here rather than
 * imported, as a client in another language would.
 */
export function signHeaders(secret, instance) {
  const time = String(Date.now());
  const nonce = randomBytes(16).toString("hex");
  return {
    "x-aio-time": time,
    "x-aio-nonce": nonce,
    "x-aio-digest": DIGEST,
    "x-aio-signature": hmac(secret, "POST", instance, "/execute", time, nonce, DIGEST),
  };
}

/**
 * Forks a server: `kind` "aio" (a PluginCore serving bench/fixtures/Echo) or "bare" (fastify,
 * one route). Resolves once it listens, with { kind, secret, port, instance, pid, cpu(),
 * profile(action, file), stop() }.
 */
export async function startHttpServer(kind, { distUrl, secret = "", execArgv = [] }) {
  const child = fork(SERVER, [], {
    execArgv,
    env: {
      ...process.env,
      AIO_BENCH_DIST: distUrl,
      AIO_BENCH_SERVE: kind,
      AIO_BENCH_SECRET: secret,
    },
    stdio: ["ignore", "inherit", "pipe", "ipc"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
  const waiting = new Map();
  let seq = 0;
  let gone;
  const ready = new Promise((resolve, reject) => {
    child.on("message", (m) => {
      if (m?.type === "ready") resolve(m);
      else if (waiting.has(m?.id)) {
        waiting.get(m.id).resolve(m);
        waiting.delete(m.id);
      }
    });
    exited.then((code) => {
      gone = new Error(`http-server.mjs (${kind}) exited ${code}\n${stderr}`);
      reject(gone);
      for (const w of waiting.values()) w.reject(gone);
      waiting.clear();
    });
  });
  const ask = (message) => {
    if (gone) return Promise.reject(gone);
    const id = ++seq;
    return new Promise((resolve, reject) => {
      waiting.set(id, { resolve, reject });
      child.send({ ...message, id });
    });
  };
  const { port, instance } = await ready;
  return {
    kind,
    secret,
    port,
    instance,
    pid: child.pid,
    /** The server's CPU time so far (user + system, all its threads), in µs. */
    cpu: () => ask({ type: "cpu" }).then((m) => m.us),
    profile: (action, file) => ask({ type: "profile", action, file }),
    async stop() {
      if (child.exitCode === null && child.connected) child.send({ type: "stop" });
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * One request the way the load sends it; throws unless the answer is 200 with ANSWER and, with
 * a secret, an x-aio-answer MAC that is right.
 */
export async function checkServer(server) {
  const headers = { "content-type": "application/json" };
  if (server.secret) Object.assign(headers, signHeaders(server.secret, server.instance));
  const response = await fetch(`http://127.0.0.1:${server.port}/execute`, {
    method: "POST",
    headers,
    body: BODY,
  });
  const text = await response.text();
  if (response.status !== 200 || text !== ANSWER)
    throw new Error(`${server.kind}: POST /execute answered ${response.status} ${text}`);
  if (server.secret) {
    const expected = hmac(server.secret, "answer", headers["x-aio-nonce"], sha256(text));
    if (response.headers.get("x-aio-answer") !== expected)
      throw new Error(`${server.kind}: the answer's x-aio-answer is missing or wrong`);
  }
}

/** Requests per second a round's signatures are made for, beyond which it signs as it goes. */
const PRESIGNED_PER_SECOND = 60_000;

/**
 * autocannon against `server` for `ms`: CONNECTIONS keep-alive connections, each sending
 * `POST /execute` of BODY as soon as the previous answer is in (no pipelining). With a secret
 * every request carries signature headers of its own, set in `setupRequest`; they are made
 * just before the round (a fresh nonce each, well within the 30 s a signature is good for),
 * so that the client's HMACs, on the same two CPUs, do not set the pace. Resolves with
 * requests/s (2xx), p50 and p99 in ms, and the server's CPU µs per request over the load.
 */
export async function load(server, ms) {
  const request = { method: "POST", path: "/execute", body: BODY };
  if (server.secret) {
    const signed = Array.from({ length: Math.ceil((ms / 1000) * PRESIGNED_PER_SECOND) }, () =>
      signHeaders(server.secret, server.instance),
    );
    let next = 0;
    request.setupRequest = (req) => {
      req.headers = {
        "content-type": "application/json",
        ...(signed[next++] ?? signHeaders(server.secret, server.instance)),
      };
      return req;
    };
  }
  const cpu0 = await server.cpu();
  const result = await autocannon({
    url: `http://127.0.0.1:${server.port}`,
    connections: CONNECTIONS,
    pipelining: 1,
    duration: ms / 1000,
    headers: { "content-type": "application/json" },
    requests: [request],
  });
  const cpu1 = await server.cpu();
  const ok = result["2xx"];
  if (result.non2xx || result.errors || result.timeouts || !ok)
    throw new Error(
      `${server.kind}${server.secret ? " (secret)" : ""}: ${ok} answered 2xx, ${result.non2xx} other, ${result.errors} errors, ${result.timeouts} timeouts`,
    );
  return {
    rate: ok / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    cpuUs: (cpu1 - cpu0) / ok,
  };
}
