/**
 * Answers other nodes' heartbeat pings from a thread of its own, over UDP on the node's port
 * number. A plugin that keeps the main thread busy therefore never makes its node look dead;
 * calls to it still time out on their deadlines.
 */
import { createSocket } from "node:dgram";
import { isIPv6 } from "node:net";
import { parentPort, workerData } from "node:worker_threads";
import { MAX_SKEW_MS, NonceCache } from "../../auth.js";
import type { HeartbeatSetup } from "./heartbeat.js";
import { MIN_PING_BYTES, pongFor } from "./heartbeat.js";

const setup = workerData as HeartbeatSetup;
const nonces = new NonceCache();
setInterval(() => nonces.sweep(), MAX_SKEW_MS).unref();
const socket = createSocket({ type: isIPv6(setup.bind) ? "udp6" : "udp4", reuseAddr: false });

socket.on("message", (message, peer) => {
  // A reply never exceeds the request, so the port cannot amplify a spoofed flood.
  if (message.length < MIN_PING_BYTES || message.length > 4096) return;
  const pong = pongFor(message, setup, Atomics.load(setup.version, 0), nonces);
  if (pong && pong.length <= message.length) socket.send(pong, peer.port, peer.address);
});
socket.on("error", (error) => {
  parentPort?.postMessage({ error: error.message });
  socket.close();
});
socket.bind(setup.port, setup.bind, () => parentPort?.postMessage({ listening: true }));
parentPort?.on("message", (message) => {
  if (message === "close") socket.close(() => process.exit(0));
});
