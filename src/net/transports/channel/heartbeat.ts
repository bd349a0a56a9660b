/**
 * Heartbeats: each node pings the others every `heartbeat_interval` over UDP; a thread of the
 * pinged node answers with its instance and the version of its endpoint map. A node that
 * answers neither UDP nor HTTP for `liveness_timeout` is marked down.
 */
import { randomBytes } from "node:crypto";
import { createSocket, type Socket } from "node:dgram";
import { isIPv6 } from "node:net";
import { Worker } from "node:worker_threads";
import type { Logger } from "../../../log.js";
import { MAX_SKEW_MS, type NonceCache, sameMac, signDatagram } from "../../auth.js";

/** A ping is padded to at least this size, larger than any pong. */
export const MIN_PING_BYTES = 256;

export interface HeartbeatSetup {
  bind: string;
  port: number;
  hostname: string;
  instance: string;
  /** Int32Array over shared memory: the node's endpoint-map version, read by the thread. */
  version: Int32Array;
  /** Shared secret: pings without a valid MAC get no answer at all. */
  secret: string;
}

export interface Pong {
  instance: string;
  hostname: string;
  version: number;
  nonce: string;
}

interface Ping {
  t: "ping";
  n: string;
  /** When it was sent (ms since the epoch): with the nonce, a captured ping cannot be replayed. */
  s: number;
  m?: string;
  pad: string;
}

const pingMac = (secret: string, nonce: string, sent: number) =>
  signDatagram(secret, `ping\n${nonce}\n${sent}`);
const pongMac = (secret: string, pong: Pong) =>
  signDatagram(secret, `pong\n${pong.nonce}\n${pong.instance}\n${pong.hostname}\n${pong.version}`);

/** A ping sent at `sentAt` (ms since the epoch, by the pinged node's clock as far as known). */
export function pingBytes(nonce: string, secret: string, sentAt: number): Buffer {
  const body: Ping = { t: "ping", n: nonce, s: Math.round(sentAt), pad: "" };
  if (secret) body.m = pingMac(secret, nonce, body.s);
  const bare = Buffer.byteLength(JSON.stringify(body));
  body.pad = "x".repeat(Math.max(0, MIN_PING_BYTES - bare));
  return Buffer.from(JSON.stringify(body));
}

/** The answer to a ping datagram, or undefined if it is not one. */
export function pongFor(
  message: Buffer,
  setup: HeartbeatSetup,
  version: number,
  nonces: NonceCache,
): Buffer | undefined {
  let ping: Partial<Ping>;
  try {
    ping = JSON.parse(message.toString("utf8")) as Partial<Ping>;
  } catch {
    return undefined;
  }
  if (ping?.t !== "ping" || typeof ping.n !== "string" || ping.n.length > 64) return undefined;
  if (setup.secret) {
    const sent = typeof ping.s === "number" ? ping.s : 0;
    const genuine =
      typeof ping.m === "string" && sameMac(ping.m, pingMac(setup.secret, ping.n, sent));
    const now = Date.now();
    if (!genuine || Math.abs(now - sent) > MAX_SKEW_MS || !nonces.admit(ping.n, sent, now)) {
      return undefined;
    }
  }
  const pong: Pong = { nonce: ping.n, instance: setup.instance, hostname: setup.hostname, version };
  return Buffer.from(
    JSON.stringify({
      t: "pong",
      n: pong.nonce,
      i: pong.instance,
      h: pong.hostname,
      v: pong.version,
      ...(setup.secret ? { m: pongMac(setup.secret, pong) } : {}),
    }),
  );
}

function readPong(message: Buffer, secret: string): Pong | undefined {
  try {
    const raw = JSON.parse(message.toString("utf8")) as Record<string, unknown>;
    if (raw.t !== "pong" || typeof raw.n !== "string" || typeof raw.i !== "string")
      return undefined;
    const pong: Pong = {
      nonce: raw.n,
      instance: raw.i,
      hostname: typeof raw.h === "string" ? raw.h : "",
      version: typeof raw.v === "number" ? raw.v : -1,
    };
    if (secret && (typeof raw.m !== "string" || !sameMac(raw.m, pongMac(secret, pong)))) {
      return undefined;
    }
    return pong;
  } catch {
    return undefined;
  }
}

/** Answers pings on this node's port, from a thread of its own. */
export class HeartbeatResponder {
  readonly #worker: Worker;
  readonly ready: Promise<boolean>;

  constructor(setup: HeartbeatSetup, logger: Logger) {
    this.#worker = new Worker(new URL("./heartbeat-worker.js", import.meta.url), {
      workerData: setup,
    });
    this.#worker.unref();
    this.ready = new Promise((resolve) => {
      this.#worker.once("message", (message: { listening?: boolean; error?: string }) => {
        if (message.error) {
          logger.warn(
            `UDP heartbeats cannot listen on ${setup.bind}:${setup.port} (${message.error}); other nodes will check this one over HTTP, so a busy main thread may make it look down`,
          );
        }
        resolve(message.listening === true);
      });
      this.#worker.once("error", (error) => {
        logger.warn(`the heartbeat thread failed: ${error.message}`);
        resolve(false);
      });
    });
  }

  async close(): Promise<void> {
    this.#worker.postMessage("close");
    await this.#worker.terminate();
  }
}

/** Sends pings to other nodes and hands back their pongs. */
export class HeartbeatPinger {
  readonly #sockets = new Map<"udp4" | "udp6", Socket>();
  readonly #waiting = new Map<string, (pong: Pong) => void>();
  readonly #secret: string;

  constructor(secret: string) {
    this.#secret = secret;
  }

  #socketFor(address: string): Socket {
    const type = isIPv6(address) ? "udp6" : "udp4";
    let socket = this.#sockets.get(type);
    if (!socket) {
      socket = createSocket(type);
      socket.on("message", (message) => {
        const pong = readPong(message, this.#secret);
        const resolve = pong && this.#waiting.get(pong.nonce);
        if (pong && resolve) {
          this.#waiting.delete(pong.nonce);
          resolve(pong);
        }
      });
      socket.on("error", () => undefined);
      socket.bind(0);
      socket.unref();
      this.#sockets.set(type, socket);
    }
    return socket;
  }

  /**
   * Pings `address:port`; resolves with the pong, or undefined after `timeoutMs`. The ping is
   * timed by the node's clock (`clockOffsetMs` ahead of this one's), which it checks.
   */
  ping(
    address: string,
    port: number,
    timeoutMs: number,
    clockOffsetMs = 0,
  ): Promise<Pong | undefined> {
    const nonce = randomBytes(12).toString("hex");
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(nonce);
        resolve(undefined);
      }, timeoutMs);
      this.#waiting.set(nonce, (pong) => {
        clearTimeout(timer);
        resolve(pong);
      });
      const datagram = pingBytes(nonce, this.#secret, Date.now() + clockOffsetMs);
      this.#socketFor(address).send(datagram, port, address, (error) => {
        if (error) {
          clearTimeout(timer);
          this.#waiting.delete(nonce);
          resolve(undefined);
        }
      });
    });
  }

  close(): void {
    for (const socket of this.#sockets.values()) socket.close();
    this.#sockets.clear();
  }
}
