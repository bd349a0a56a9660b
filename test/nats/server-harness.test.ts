/**
 * The NATS test harness (test/nats-support.ts) against the client the NATS transport will use,
 * @nats-io/transport-node: real nats-server processes on 127.0.0.1, a 2-server cluster, NATS's
 * own authentication, and a client that finds its server again after a SIGKILL and a restart on
 * the same port. Every wait is on an event (a log line, a status event, the monitoring port).
 */
import {
  AuthorizationError,
  connect,
  type NatsConnection,
  type Status,
} from "@nats-io/transport-node";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import {
  natsServerBinary,
  startNatsCluster,
  startNatsServer,
  stopNatsServers,
} from "../nats-support.js";

const clients: NatsConnection[] = [];

/** A connection closed after the test. */
async function client(options: Parameters<typeof connect>[0]): Promise<NatsConnection> {
  const nc = await connect({ timeout: 2000, ...options });
  clients.push(nc);
  return nc;
}

/** Answers every request on `subject` with `<prefix><request>`. */
function answer(nc: NatsConnection, subject: string, prefix: string): void {
  nc.subscribe(subject, {
    callback: (_err, msg) => {
      msg.respond(`${prefix}${msg.string()}`);
    },
  });
}

/**
 * Resolves with the first status event of `type` the connection reports from now on (leaving
 * the loop ends that iterator).
 */
function nextStatus(nc: NatsConnection, type: Status["type"]): Promise<Status> {
  const events = nc.status();
  return (async () => {
    for await (const status of events) if (status.type === type) return status;
    throw new Error(`the connection closed before a "${type}" status`);
  })();
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((nc) => nc.close().catch(() => undefined)));
});

afterAll(async () => {
  await stopNatsServers();
});

describe("the nats-server harness", () => {
  it("finds the nats-server binary", () => {
    expect(natsServerBinary()).toMatch(/nats-server$/);
  });

  it("request/reply through one server", async () => {
    const server = await startNatsServer();
    expect(server.port).toBeGreaterThan(0);
    const nc = await client({ servers: server.url });
    answer(nc, "harness.echo", "echo:");
    const reply = await nc.request("harness.echo", "hi", { timeout: 2000 });
    expect(reply.string()).toBe("echo:hi");
  });

  it("a 2-server cluster: a subscriber on A answers a request sent through B", async () => {
    const cluster = await startNatsCluster(2);
    const [a, b] = cluster.servers;
    if (!a || !b) throw new Error("a cluster of two");
    expect(a.port).not.toBe(b.port);
    const onA = await client({ servers: a.url });
    const onB = await client({ servers: b.url });
    answer(onA, "harness.where", "from A:");
    await onA.flush();
    await b.waitForInterest("harness.where");
    const reply = await onB.request("harness.where", "hi", { timeout: 2000 });
    expect(reply.string()).toBe("from A:hi");
  });

  it("a killed cluster member restarts on its ports and rejoins the routes", async () => {
    const cluster = await startNatsCluster(2);
    const [a, b] = cluster.servers;
    if (!a || !b) throw new Error("a cluster of two");
    const ports = [a.port, a.clusterPort, a.monitorPort];
    await a.kill();
    await b.waitForRoutes(0);
    await a.restart();
    expect([a.port, a.clusterPort, a.monitorPort]).toEqual(ports);
    await cluster.waitForRoutes();
    const onA = await client({ servers: a.url });
    const onB = await client({ servers: b.url });
    answer(onA, "harness.back", "back:");
    await onA.flush();
    await b.waitForInterest("harness.back");
    expect((await onB.request("harness.back", "hi", { timeout: 2000 })).string()).toBe("back:hi");
  });

  it("user and password: the right ones connect, wrong ones are refused", async () => {
    const server = await startNatsServer({ user: "aio", pass: "s3cret" });
    const good = await client({ servers: server.url, user: "aio", pass: "s3cret" });
    await good.flush();
    for (const wrong of [{ user: "aio", pass: "nope" }, { user: "other", pass: "s3cret" }, {}]) {
      const error = await client({ servers: server.url, ...wrong }).catch((e: unknown) => e);
      expect(error, JSON.stringify(wrong)).toBeInstanceOf(AuthorizationError);
      expect((error as Error).message).toMatch(/authorization violation/i);
    }
  });

  it("a token: the right one connects, a wrong one is refused", async () => {
    const server = await startNatsServer({ token: "t0ken" });
    const good = await client({ servers: server.url, token: "t0ken" });
    await good.flush();
    const error = await client({ servers: server.url, token: "wrong" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthorizationError);
  });

  it("a client reconnects after its server is SIGKILLed and restarted on the same port", async () => {
    const server = await startNatsServer();
    const port = server.port;
    const options = {
      servers: server.url,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 50,
      reconnectJitter: 0,
    };
    const responder = await client(options);
    const requester = await client(options);
    answer(responder, "harness.again", "again:");
    await responder.flush();
    expect((await requester.request("harness.again", "1", { timeout: 2000 })).string()).toBe(
      "again:1",
    );

    const disconnected = [nextStatus(responder, "disconnect"), nextStatus(requester, "disconnect")];
    const reconnected = [nextStatus(responder, "reconnect"), nextStatus(requester, "reconnect")];
    await server.kill();
    expect(server.running).toBe(false);
    await Promise.all(disconnected);

    await server.restart();
    expect(server.port).toBe(port);
    expect(server.starts).toBe(2);
    await Promise.all(reconnected);
    // The responder's subscription is sent again on reconnect; a flush waits until it is in.
    await responder.flush();
    expect((await requester.request("harness.again", "2", { timeout: 2000 })).string()).toBe(
      "again:2",
    );
  });
});
