/**
 * The attacker of the `hostile` section (bench/sections/hostile.mjs), forked with IPC: a third
 * process, so the caller and the node pay only for what the attack makes the node do. One
 * attack runs at a time, against the node at 127.0.0.1:AIO_BENCH_NODE_PORT.
 *
 *   forged  1,000 connections, each a POST /execute with made-up x-aio-time/-nonce/-digest/
 *           -signature headers and Content-Length 1 MiB, then the 1 MiB body (one Buffer for
 *           all); a connection the node closes is opened again at once, until stopped.
 *   held    1,000 connections: 800 send part of a request's headers and then nothing, 200 send
 *           nothing at all; held until stopped (one the node closes is opened again).
 *   stream  a member (AIO_BENCH_SECRET): the channel (GET /aio/channel, signed as
 *           docs/security.md says), a stream of BigStream.items (64 KiB strings) opened with
 *           credit 4096, then the socket is not read any more (ws.pause()) while a credit
 *           packet of 4096 goes out every 20 ms, until stopped.
 *
 *   ← parent: { type: "start", id, attack } → parent: { type: "started", id } once every
 *             connection is open (forged: once all are launched)
 *   ← parent: { type: "stop", id } → ends every connection, and once all are closed
 *             → parent: { type: "stopped", id, stats }
 *   ← parent: { type: "cpu", id } → parent: { type: "cpu", id, us }
 *
 * It exits when the IPC channel goes (the benchmark gone).
 */
import { createHash, createHmac, randomBytes } from "node:crypto";
import http from "node:http";
import net from "node:net";
import WebSocket from "ws";

const port = Number(process.env.AIO_BENCH_NODE_PORT);
const secret = process.env.AIO_BENCH_SECRET;
const HOST = `127.0.0.1:${port}`;
const CONNECTIONS = 1000;
const HELD_IDLE = 200;
const MiB = 1024 * 1024;

process.on("disconnect", () => process.exit(0));

// ------------------------------------------------------------------ signing (docs/security.md)

const sha256Hex = (data) => createHash("sha256").update(data).digest("hex");
const mac = (key, ...parts) => createHmac("sha256", key).update(parts.join("\n")).digest("hex");

function signHeaders(method, instance, path, body = "") {
  const time = String(Date.now());
  const nonce = randomBytes(16).toString("hex");
  const digest = sha256Hex(body);
  return {
    "x-aio-time": time,
    "x-aio-nonce": nonce,
    "x-aio-digest": digest,
    "x-aio-signature": mac(secret, method, instance, path, time, nonce, digest),
  };
}

/** The node's instance id this run, from its unsigned GET /ping: what requests are signed for. */
function instanceOf() {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path: "/ping", agent: false }, (res) => {
        let text = "";
        res.on("data", (chunk) => (text += chunk));
        res.on("end", () => {
          try {
            resolve(JSON.parse(text).instance);
          } catch (error) {
            reject(new Error(`GET /ping: ${res.statusCode} ${text}: ${error}`));
          }
        });
      })
      .on("error", reject);
  });
}

// ------------------------------------------------------------------ connection pools

/**
 * Keeps `n` TCP connections open, `onConnect(socket, i)` writing on each; one that closes is
 * opened again while `running` (after 10 ms when it never connected). Counts what happens.
 */
function pool(n, onConnect, { closeTimes = false } = {}) {
  const stats = {
    opened: 0,
    connected: 0,
    closedByNode: 0,
    answered: {},
    errors: {},
    // Date.now() of each connection the node closed (held only: forged closes thousands).
    ...(closeTimes ? { closeTimes: [] } : {}),
  };
  const sockets = new Set();
  let running = true;
  let allConnected;
  const connectedOnce = new Promise((resolve) => (allConnected = resolve));
  let firstConnects = 0;
  let idle;
  const open = (i, first) => {
    stats.opened++;
    const socket = net.connect(port, "127.0.0.1");
    sockets.add(socket);
    let connected = false;
    let answer = "";
    socket.on("connect", () => {
      connected = true;
      stats.connected++;
      if (first && ++firstConnects === n) allConnected();
      onConnect(socket, i);
    });
    socket.on("data", (chunk) => {
      if (answer.length < 12) {
        answer += chunk.toString("latin1", 0, Math.min(chunk.length, 12));
        if (answer.length >= 12) {
          const status = answer.slice(9, 12);
          stats.answered[status] = (stats.answered[status] ?? 0) + 1;
        }
      }
    });
    socket.on("error", (error) => {
      const code = error.code ?? error.message;
      stats.errors[code] = (stats.errors[code] ?? 0) + 1;
    });
    socket.on("close", () => {
      sockets.delete(socket);
      if (running) {
        if (connected) {
          stats.closedByNode++;
          stats.closeTimes?.push(Date.now());
          open(i, false);
        } else setTimeout(() => running && open(i, false), 10);
        if (first && !connected && ++firstConnects === n) allConnected();
      } else if (sockets.size === 0) idle?.();
    });
  };
  for (let i = 0; i < n; i++) open(i, true);
  return {
    stats,
    connectedOnce,
    /** Ends every connection; resolves once all are closed. */
    stop() {
      running = false;
      if (sockets.size === 0) return Promise.resolve(stats);
      const done = new Promise((resolve) => (idle = () => resolve(stats)));
      for (const socket of sockets) socket.destroy();
      return done;
    },
  };
}

function forged() {
  const body = Buffer.alloc(MiB, 0x61);
  const digest = sha256Hex(body);
  const attack = pool(CONNECTIONS, (socket) => {
    socket.write(
      `POST /execute HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nx-aio-time: ${Date.now()}\r\nx-aio-nonce: ${randomBytes(16).toString("hex")}\r\nx-aio-digest: ${digest}\r\nx-aio-signature: ${randomBytes(32).toString("hex")}\r\n\r\n`,
    );
    socket.write(body);
  });
  // The node closes these as fast as it can: don't wait for all of them to be open at once.
  return { started: Promise.resolve(), stop: () => attack.stop() };
}

function held() {
  const attack = pool(
    CONNECTIONS,
    (socket, i) => {
      if (i < CONNECTIONS - HELD_IDLE)
        socket.write(
          `POST /execute HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: application/json\r\nx-aio-time: ${Date.now()}\r\nx-aio-no`,
        );
    },
    { closeTimes: true },
  );
  return { started: attack.connectedOnce, stop: () => attack.stop() };
}

// ------------------------------------------------------------------ stream without reading

async function openChannel() {
  const headers = signHeaders("GET", await instanceOf(), "/aio/channel");
  const clientNonce = headers["x-aio-nonce"];
  const ws = new WebSocket(`ws://${HOST}/aio/channel`, { headers, perMessageDeflate: false });
  ws.on("error", () => undefined);
  const response = await new Promise((resolve, reject) => {
    ws.once("upgrade", resolve);
    ws.once("unexpected-response", (_req, res) =>
      reject(new Error(`channel upgrade: HTTP ${res.statusCode}`)),
    );
    ws.once("error", reject);
  });
  const serverNonce = response.headers["x-aio-nonce"];
  if (
    response.headers["x-aio-answer"] !== mac(secret, "answer", clientNonce, sha256Hex(serverNonce))
  )
    throw new Error("the node did not prove that it knows the secret");
  if (ws.readyState !== WebSocket.OPEN) await new Promise((resolve) => ws.once("open", resolve));
  const key = Buffer.from(mac(secret, "session", clientNonce, serverNonce), "hex");
  let sent = 0;
  return {
    ws,
    send(packet) {
      const payload = JSON.stringify(packet);
      ws.send(mac(key, "c", String(++sent), payload) + payload);
    },
  };
}

function stream() {
  const stats = { channels: 0, creditPackets: 0, closedByNode: 0 };
  let running = true;
  let channel;
  let timer;
  const start = async () => {
    channel = await openChannel();
    stats.channels++;
    channel.ws.once("close", () => {
      if (!running) return;
      stats.closedByNode++;
      clearInterval(timer);
      start().catch((error) => process.stderr.write(`stream: ${error?.stack ?? error}\n`));
    });
    channel.send({
      t: "open",
      id: 1,
      credit: 4096,
      plugin: "BigStream",
      method: "items",
      args: [1_000_000_000],
    });
    // From here on nothing is read from the socket; credit keeps coming.
    channel.ws.pause();
    timer = setInterval(() => {
      channel.send({ t: "credit", id: 1, n: 4096 });
      stats.creditPackets++;
    }, 20);
  };
  return {
    started: start(),
    async stop() {
      running = false;
      clearInterval(timer);
      const ws = channel?.ws;
      if (ws && ws.readyState !== WebSocket.CLOSED) {
        const closed = new Promise((resolve) => ws.once("close", resolve));
        ws.terminate();
        await closed;
      }
      return stats;
    },
  };
}

// ------------------------------------------------------------------ IPC

const ATTACKS = { forged, held, stream };
let current;

process.on("message", async (message) => {
  try {
    if (message?.type === "start") {
      if (current) throw new Error("an attack is already running");
      current = ATTACKS[message.attack]();
      await current.started;
      process.send({ type: "started", id: message.id });
    } else if (message?.type === "stop") {
      const stats = await current?.stop();
      current = undefined;
      process.send({ type: "stopped", id: message.id, stats });
    } else if (message?.type === "cpu") {
      const { user, system } = process.cpuUsage();
      process.send({ type: "cpu", id: message.id, us: user + system });
    }
  } catch (error) {
    process.send({ type: "failed", id: message?.id, error: String(error?.stack ?? error) });
  }
});

process.send({ type: "ready" });
