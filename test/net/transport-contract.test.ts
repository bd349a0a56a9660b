/**
 * The contract every transport keeps (src/net/transport.ts), run against each of them: the
 * calling side (`NodeConnection`) over a pipe the transport opens, the serving side
 * (`ChannelSession`) over the other end. Calls, errors, streams with credit, early ends,
 * cancellation, deadlines, and the difference between a call that never left ("not
 * delivered": another node may take it) and one that may have run (NETWORK, never repeated).
 *
 * The application served is a table of plain functions and generators standing for the
 * plugins (the dispatcher above the transport is tested on its own); what is under test is
 * the transport and the two sides of the protocol on it, from the built `dist`.
 *
 * Transports: `memory` (in this process), `channel` (a real node server on 127.0.0.1 with a
 * secret, over TCP and WebSocket) and `nats` (two connections to a real nats-server, with a
 * secret). A new transport adds one entry to TRANSPORTS.
 */
import { randomBytes } from "node:crypto";
import { connect } from "@nats-io/transport-node";
import pino from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { startNatsServer, stopNatsServers } from "../nats-support.js";

const dist = (path: string) => new URL(`../../dist/${path}`, import.meta.url).href;
// biome-ignore lint/suspicious/noExplicitAny: internal modules of the built package
type AnyModule = any;
const { Call }: AnyModule = await import(dist("core/call.js"));
const { NodeConnection }: AnyModule = await import(dist("net/connection.js"));
const { NotDelivered }: AnyModule = await import(dist("errors.js"));
const { ChannelSession }: AnyModule = await import(dist("net/serve.js"));
const { PeerLimiter }: AnyModule = await import(dist("net/limits.js"));
const { MemoryNetwork }: AnyModule = await import(dist("net/transports/memory/memory-pipe.js"));
const { channelDial }: AnyModule = await import(dist("net/transports/channel/dial.js"));
const { NodeServer }: AnyModule = await import(dist("net/server.js"));
const { dialNats, serveHello }: AnyModule = await import(dist("net/transports/nats/hello.js"));
const { NatsSigning }: AnyModule = await import(dist("net/transports/nats/signing.js"));
const { STREAM_WINDOW }: AnyModule = await import(dist("core/credit.js"));

const MAX_DEPTH = 66;
const MAX_PACKET = 1024 * 1024;

type Args = Record<string, unknown> | unknown[] | undefined;
interface Signal {
  aborted: boolean;
  addEventListener(type: "abort", listener: () => void): void;
}
type Served = (args: Args, signal: Signal) => unknown;

/** What the application saw: calls that were cancelled, streams whose source ended. */
const seen = { cancelled: [] as string[], finished: [] as string[] };

const waiters = new Set<() => void>();
/** Something the application noted changed: waiters check again. */
const changed = () => {
  for (const wake of [...waiters]) wake();
};
function until(check: () => boolean, what: string): Promise<void> {
  if (check()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const wake = () => {
      if (!check()) return;
      clearTimeout(timer);
      waiters.delete(wake);
      resolve();
    };
    const timer = setTimeout(() => {
      waiters.delete(wake);
      reject(new Error(`timed out waiting for ${what}`));
    }, 5000);
    waiters.add(wake);
  });
}

const held: Array<() => void> = [];

const FUNCTIONS: Record<string, Served> = {
  add: (args) => {
    const [a, b] = args as number[];
    return (a as number) + (b as number);
  },
  echo: (args) => args,
  fail: () => {
    throw new Error("it failed on purpose");
  },
  /** Runs until cancelled (or released), noting a cancellation. */
  hold: (_args, signal) =>
    new Promise((resolve, reject) => {
      const cancelled = () => {
        seen.cancelled.push("hold");
        changed();
        reject(new Error("cancelled"));
      };
      // The cancel may have come in the same message as the call, before this runs.
      if (signal.aborted) return cancelled();
      held.push(() => resolve("released"));
      changed();
      signal.addEventListener("abort", cancelled);
    }),
};

const GENERATORS: Record<string, (args: Args) => AsyncGenerator<unknown>> = {
  async *count(args) {
    const [n] = args as number[];
    try {
      for (let i = 0; i < (n as number); i++) yield i;
    } finally {
      seen.finished.push(`count ${n}`);
      changed();
    }
  },
  async *failAfter(args) {
    const [n] = args as number[];
    for (let i = 0; i < (n as number); i++) yield i;
    throw new Error(`failed after ${n}`);
  },
};

/** The application above the transport: LocalCalls (src/net/serve.ts). */
const application = {
  execute(
    _caller: unknown,
    plugin: string,
    method: string,
    args: Args,
    options: { signal: Signal },
  ): Promise<unknown> {
    const served = FUNCTIONS[method];
    if (plugin !== "App" || !served) return Promise.reject(new Error(`no ${plugin}.${method}`));
    return Promise.resolve().then(() => served(args, options.signal));
  },
  executeStream(
    _caller: unknown,
    plugin: string,
    method: string,
    args: Args,
  ): AsyncGenerator<unknown> {
    const served = GENERATORS[method];
    if (plugin !== "App" || !served) throw new Error(`no ${plugin}.${method}`);
    return served(args);
  },
};

interface Link {
  /** A connection to the serving side. */
  connection: AnyModule;
  /** Cuts the pipe under it, as a network failure would. */
  cut(): void;
  /** The serving side closes as a node that shuts down does: `leaving`, then `closed`. */
  closeServing(): void;
}

interface Transport {
  name: string;
  link(): Promise<Link>;
  /** A connection to a place where nothing listens. */
  nowhere(): AnyModule;
  close(): Promise<void>;
}

const connectionOver = (dial: unknown) =>
  new NodeConnection({
    dial,
    hostname: "server",
    maxPacketBytes: MAX_PACKET,
    keepalive: { intervalMs: 60_000, silentMs: 120_000, heard: () => true },
  });

function memoryTransport(): Transport {
  const network = new MemoryNetwork({ maxDepth: MAX_DEPTH, maxPacketBytes: MAX_PACKET });
  const pipes: AnyModule[] = [];
  const sessions: AnyModule[] = [];
  network.listen("server", (pipe: AnyModule) => {
    const session = new ChannelSession(pipe, application, "client", new PeerLimiter(256));
    sessions.push(session);
    pipe.attach({
      packet: (packet: unknown) => session.receive(packet),
      heard: () => undefined,
      closed: () => session.ended(),
      badMessage: () => undefined,
    });
    pipes.push(pipe);
  });
  return {
    name: "memory",
    async link() {
      const connection = connectionOver(network.dial("server"));
      await connection.open();
      const pipe = pipes.at(-1);
      return { connection, cut: () => pipe.terminate(), closeServing: closing(sessions.at(-1)) };
    },
    nowhere: () => connectionOver(network.dial("nobody")),
    close: async () => undefined,
  };
}

async function channelTransport(): Promise<Transport> {
  const secret = randomBytes(24).toString("hex");
  const instance = randomBytes(8).toString("hex");
  const server = new NodeServer({
    hostname: "server",
    instance,
    secret,
    bind: "127.0.0.1",
    port: 0,
    logger: pino({ level: "silent" }),
    calls: application,
    bodyLimit: MAX_PACKET,
    maxCallsPerPeer: 256,
    readTimeoutMs: 10_000,
    allowedHosts: [],
    maxDepth: 64,
    info: () => undefined,
    hasPlugin: () => ({ has: false }),
    admin: {
      plugins: () => [],
      nodes: () => [],
      endpoints: () => undefined,
      act: async () => undefined,
    },
  });
  const port = await server.listen();
  const dialTo = (to: number) =>
    channelDial({
      url: `ws://127.0.0.1:${to}/aio/channel`,
      hostname: "server",
      maxDepth: MAX_DEPTH,
      maxPacketBytes: MAX_PACKET,
      secret,
      identity: () => ({ instance, clockOffsetMs: 0 }),
      tls: { enabled: false },
      connectTimeoutMs: 3000,
    });
  return {
    name: "channel",
    async link() {
      const connection = connectionOver(dialTo(port));
      await connection.open();
      return {
        connection,
        cut: () => {
          for (const session of server.sessions) session.shutdown(1011, "cut");
        },
        closeServing: closing([...server.sessions].at(-1)),
      };
    },
    // A port that was just free: nothing listens there.
    nowhere: () => connectionOver(dialTo(1)),
    close: () => server.close(),
  };
}

async function natsTransport(): Promise<Transport> {
  const server = await startNatsServer();
  const secret = randomBytes(24).toString("hex");
  const instance = randomBytes(8).toString("hex");
  const [near, far] = await Promise.all([
    connect({ servers: server.url }),
    connect({ servers: server.url }),
  ]);
  const context = (nats: unknown) => ({
    nats,
    prefix: "contract",
    signing: new NatsSigning(secret),
    maxDepth: MAX_DEPTH,
    maxPacketBytes: MAX_PACKET,
    open: new Set(),
  });
  const serving = context(far);
  const sessions: Array<{ pipe: AnyModule; session: AnyModule }> = [];
  far.subscribe(`contract.node.${instance}.hello`, {
    callback: (_error, message) =>
      serveHello(
        serving,
        {
          instance,
          leaving: () => false,
          accept: (pipe: AnyModule, peer: string) => {
            const session = new ChannelSession(pipe, application, peer, new PeerLimiter(256));
            sessions.push({ pipe, session });
            return { session, ended: () => session.ended() };
          },
          logger: pino({ level: "silent" }),
        },
        message,
      ),
  });
  await far.flush();
  const calling = context(near);
  const dialTo = (target: string) => (events: unknown) =>
    dialNats(
      calling,
      { hostname: "client", instance: "client-instance" },
      { instance: target, clockOffsetMs: 0, hostname: "server" },
      events,
    );
  return {
    name: "nats",
    async link() {
      const connection = connectionOver(dialTo(instance));
      await connection.open();
      const { pipe, session } = sessions.at(-1) as { pipe: AnyModule; session: AnyModule };
      return { connection, cut: () => pipe.close(), closeServing: closing(session) };
    },
    nowhere: () => connectionOver(dialTo("nobody")),
    async close() {
      await Promise.all([near.close(), far.close()]);
      await stopNatsServers();
    },
  };
}

const closing = (session: AnyModule) => () => {
  session.leave();
  session.shutdown(1001, "node closing");
};

let callSeq = 0;
const call = (method: string, options: Record<string, unknown> = {}) =>
  new Call("contract", ++callSeq, "App", method, { kind: "application" }, options);

async function collect(stream: AsyncGenerator<unknown>): Promise<unknown[]> {
  const items: unknown[] = [];
  for await (const item of stream) items.push(item);
  return items;
}

const TRANSPORTS: Array<() => Transport | Promise<Transport>> = [
  memoryTransport,
  channelTransport,
  natsTransport,
];

for (const make of TRANSPORTS) {
  describe(`transport contract: ${make.name.replace("Transport", "")}`, async () => {
    const transport = await make();
    const link = await transport.link();
    const { connection } = link;
    afterAll(async () => {
      connection.close();
      await transport.close();
    });

    it("a call returns its result; arguments arrive as JSON values", async () => {
      expect(await connection.execute(call("add"), [2, 3], "client")).toBe(5);
      const value = { text: "é ✓", list: [1, null, true], nested: { deep: [{}] } };
      expect(await connection.execute(call("echo"), value, "client")).toEqual(value);
    });

    it("many calls at once each get their own answer", async () => {
      const answers = await Promise.all(
        Array.from({ length: 200 }, (_, i) => connection.execute(call("add"), [i, i], "client")),
      );
      expect(answers).toEqual(Array.from({ length: 200 }, (_, i) => 2 * i));
    });

    it("an error thrown by the endpoint arrives as a RequestError with its code", async () => {
      await expect(connection.execute(call("fail"), [], "client")).rejects.toMatchObject({
        code: "PLUGIN_ERROR",
        message: expect.stringContaining("it failed on purpose"),
      });
    });

    it("a stream longer than the credit window arrives whole and in order", async () => {
      const n = STREAM_WINDOW * 3 + 7;
      const items = await collect(connection.stream(call("count"), [n], "client"));
      expect(items).toEqual(Array.from({ length: n }, (_, i) => i));
    });

    it("an error after some items ends the stream with that error, after the items", async () => {
      const items: unknown[] = [];
      await expect(
        (async () => {
          for await (const item of connection.stream(call("failAfter"), [3], "client"))
            items.push(item);
        })(),
      ).rejects.toMatchObject({ code: "PLUGIN_ERROR" });
      expect(items).toEqual([0, 1, 2]);
    });

    it("a consumer that stops early ends the source", async () => {
      const n = 1_000_000;
      for await (const item of connection.stream(call("count"), [n], "client")) {
        if (item === 5) break;
      }
      await until(() => seen.finished.includes(`count ${n}`), "the source to end");
    });

    it("an aborted call is cancelled at its source", async () => {
      const controller = new AbortController();
      const running = connection.execute(call("hold", { signal: controller.signal }), [], "client");
      await until(() => held.length > 0, "the call to start");
      const before = seen.cancelled.length;
      controller.abort();
      await expect(running).rejects.toMatchObject({ code: "ABORTED" });
      await until(() => seen.cancelled.length > before, "the source to be cancelled");
    });

    it("a call past its deadline fails with TIMEOUT and is cancelled at its source", async () => {
      const before = seen.cancelled.length;
      await expect(
        connection.execute(call("hold", { timeout: 0.2 }), [], "client"),
      ).rejects.toMatchObject({ code: "TIMEOUT" });
      await until(() => seen.cancelled.length > before, "the source to be cancelled");
    });

    it("nothing to dial: the call was not delivered, so another node may take it", async () => {
      const nowhere = transport.nowhere();
      await expect(nowhere.execute(call("add"), [1, 1], "client")).rejects.toBeInstanceOf(
        NotDelivered,
      );
      nowhere.close();
    });

    it("the serving side shuts down: a call that crossed its close on the way was not delivered", async () => {
      const own = await transport.link();
      expect(await own.connection.execute(call("add"), [1, 2], "client")).toBe(3);
      const crossing = own.connection.execute(call("add"), [2, 2], "client");
      own.closeServing();
      await expect(crossing).rejects.toBeInstanceOf(NotDelivered);
      own.connection.close();
    });

    it("a pipe cut while a call runs: NETWORK, it may have run; the next call opens a new pipe", async () => {
      const own = await transport.link();
      const before = held.length;
      const running = own.connection.execute(call("hold"), [], "client");
      await until(() => held.length > before, "the call to start");
      own.cut();
      await expect(running).rejects.toMatchObject({
        code: "NETWORK",
        message: expect.stringContaining("may have run"),
      });
      expect(await own.connection.execute(call("add"), [4, 4], "client")).toBe(8);
      own.connection.close();
      for (const release of held.splice(0)) release();
    });
  });
}
