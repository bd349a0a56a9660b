/**
 * A server process of the `http` section (bench/sections/http.mjs), forked with IPC. It serves
 * `POST /execute` {"plugin":"Echo","method":"echo","args":{"text":…}} → {"result":…} on
 * 127.0.0.1, a random port, one of two ways (AIO_BENCH_SERVE):
 *
 *   aio   a PluginCore with networking, serving bench/fixtures/Echo (an async echo)
 *   bare  fastify with that one route, its own JSON parser, nothing else
 *
 * With AIO_BENCH_SECRET both check signed requests as docs/security.md says: the node by
 * itself; the bare server does the same HMAC work by hand (the signature over the headers with
 * a nonce remembered, the body's SHA-256 against x-aio-digest, an x-aio-answer MAC on the
 * answer), and nothing else the node does (Host check, quotas, UTF-8, depth). Both answer
 * GET /ping with the instance id a client signs for.
 *
 * Protocol with the parent over IPC:
 *   → parent: { type: "ready", port, instance }
 *   ← parent: { type: "cpu", id }  → parent: { type: "cpu", id, us } (user + system µs)
 *   ← parent: { type: "profile", id, action: "start" | "stop", file }: a CPU profile (inspector)
 *             of a window, written to `file` on stop → parent: { type: "profile", id }
 *   ← parent: { type: "stop" }     → closes and exits 0
 * It also exits when the IPC channel goes (the benchmark gone).
 */
import { createHash, createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { profile } from "./profiler.mjs";

const root = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const kind = process.env.AIO_BENCH_SERVE;
const secret = process.env.AIO_BENCH_SECRET || "";

async function startAio() {
  const { PluginCore } = await import(process.env.AIO_BENCH_DIST);
  const core = new PluginCore({
    plugins: [{ name: "Echo", path: join(root, "bench/fixtures/Echo") }],
    general: { hostname: "bench-http", console_log_level: "ERROR", log_dir: "" },
    networking: {
      enabled: true,
      port: 0,
      bind: "127.0.0.1",
      discover_nodes: false,
      ...(secret ? { secret } : {}),
    },
  });
  await core.start();
  const failed = core.listPlugins().filter((p) => p.state !== "enabled");
  if (failed.length) throw new Error(`plugins not enabled: ${JSON.stringify(failed)}`);
  const ping = await fetch(`http://127.0.0.1:${core.port}/ping`).then((r) => r.json());
  return { port: core.port, instance: ping.instance, close: () => core.close() };
}

const hmac = (...parts) => createHmac("sha256", secret).update(parts.join("\n")).digest("hex");
const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");
const same = (a, b) => {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
};

async function startBare() {
  const { default: Fastify } = await import("fastify");
  const app = Fastify({ logger: false });
  const instance = randomUUID();
  app.get("/ping", async () => ({ status: "ok", instance, time: Date.now() }));
  if (secret) {
    const nonces = new Map();
    const refuse = (reply) =>
      reply.code(401).send({ error: { code: "UNAUTHORIZED", message: "unauthorized" } });
    app.addHook("onRequest", async (request, reply) => {
      if (request.url === "/ping") return;
      const h = request.headers;
      const time = h["x-aio-time"];
      const nonce = h["x-aio-nonce"];
      const digest = h["x-aio-digest"];
      const signature = h["x-aio-signature"];
      if (![time, nonce, digest, signature].every((v) => typeof v === "string"))
        return refuse(reply);
      const expected = hmac(request.method, instance, request.url, time, nonce, digest);
      if (!same(signature, expected) || Math.abs(Date.now() - Number(time)) > 30_000)
        return refuse(reply);
      if (nonces.has(nonce)) return refuse(reply);
      nonces.set(nonce, Number(time));
    });
    // fastify's own JSON parser (secure-json-parse), after the digest of the raw bytes.
    const parse = app.getDefaultJsonParser("error", "error");
    app.removeContentTypeParser("application/json");
    app.addContentTypeParser("application/json", { parseAs: "buffer" }, (request, body, done) => {
      if (!same(sha256(body), request.headers["x-aio-digest"])) {
        const error = new Error("unauthorized");
        error.statusCode = 401;
        return done(error);
      }
      parse(request, body.toString("utf8"), done);
    });
    app.addHook("onSend", async (request, reply, payload) => {
      const nonce = request.headers["x-aio-nonce"];
      if (typeof payload === "string" && request.url !== "/ping")
        reply.header("x-aio-answer", hmac("answer", nonce, sha256(payload)));
      return payload;
    });
    // Nonces are forgotten once too old to pass, as the node does.
    setInterval(() => {
      const now = Date.now();
      for (const [nonce, time] of nonces) if (Math.abs(now - time) > 30_000) nonces.delete(nonce);
    }, 30_000).unref();
  }
  app.post("/execute", async (request) => ({ result: request.body.args.text }));
  await app.listen({ host: "127.0.0.1", port: 0 });
  return { port: app.server.address().port, instance, close: () => app.close() };
}

const server = kind === "aio" ? await startAio() : await startBare();

let stopping;
function stop() {
  stopping ??= server.close().finally(() => process.exit(0));
  return stopping;
}

process.on("message", (message) => {
  if (message?.type === "cpu") {
    const { user, system } = process.cpuUsage();
    process.send({ type: "cpu", id: message.id, us: user + system });
  } else if (message?.type === "profile") {
    profile(message.action, message.file).then(() =>
      process.send({ type: "profile", id: message.id }),
    );
  } else if (message?.type === "stop") void stop();
});
process.on("disconnect", () => void stop());
process.on("SIGTERM", () => void stop());
process.send({ type: "ready", port: server.port, instance: server.instance });
