/**
 * The thread that carries blocking calls (`executeSync`, `executeStreamSync`) to nodes reached
 * over NATS: the main thread sleeps in `Atomics.wait` while this one, with a NATS connection of
 * its own, opens pipes to the nodes (hello.ts) and runs the calls over them exactly as the main
 * thread's connections do (net/connection.ts). Started on the first such call.
 */
import { parentPort, workerData } from "node:worker_threads";
import { connect } from "@nats-io/transport-node";
import { BlockingStreams, serveBlocking } from "../../../core/blocking.js";
import { APPLICATION, Call } from "../../../core/call.js";
import { NotDelivered, RequestError } from "../../../errors.js";
import { NodeConnection } from "../../connection.js";
import { MAX_JSON_DEPTH } from "../../limits.js";
import type { WireCall } from "../../wire.js";
import type { NatsBlockingRequest, NatsBlockingSetup, NatsTarget } from "./blocking.js";
import { natsConnectOptions } from "./connect.js";
import { dialNats, type NatsPipes } from "./hello.js";
import { NatsSigning } from "./signing.js";

const setup = workerData as NatsBlockingSetup;
const me = { hostname: setup.hostname, instance: setup.instance };

let pipes: Promise<NatsPipes> | undefined;
function context(): Promise<NatsPipes> {
  pipes ??= connect(
    natsConnectOptions(setup.nats, `aio ${setup.hostname} (blocking calls)`, setup.livenessMs),
  ).then((nats) => ({
    nats,
    prefix: setup.nats.subject_prefix,
    signing: new NatsSigning(setup.secret),
    maxDepth: MAX_JSON_DEPTH,
    maxPacketBytes: setup.maxPacketBytes,
    open: new Set(),
  }));
  return pipes;
}

const connections = new Map<string, NodeConnection>();

async function connectionTo(target: NatsTarget): Promise<NodeConnection> {
  const known = connections.get(target.instance);
  if (known) return known;
  const ctx = await context();
  const connection = new NodeConnection({
    dial: (events) => dialNats(ctx, me, target, events),
    hostname: target.hostname,
    maxPacketBytes: setup.maxPacketBytes,
    keepalive: { intervalMs: setup.heartbeatMs, silentMs: setup.livenessMs, heard: () => false },
    onLost: () => connections.delete(target.instance),
  });
  connections.set(target.instance, connection);
  return connection;
}

let seq = 0;
/** The call as the main thread made it, from what it sends: deadline, id and author included. */
function callOf(wire: WireCall): Call {
  return new Call(
    "blocking",
    ++seq,
    wire.plugin,
    wire.method,
    wire.author === undefined ? APPLICATION : { kind: "plugin", name: wire.author },
    {
      host: "local",
      ...(wire.timeout_ms !== undefined ? { timeout: wire.timeout_ms / 1000 } : {}),
      ...(wire.request_id !== undefined ? { requestId: wire.request_id } : {}),
      ...(wire.plugin_uuid !== undefined ? { pluginUuid: wire.plugin_uuid } : {}),
    },
  );
}

/** An error as the main thread reads it (BlockingBridge.ask). */
function failure(error: unknown): never {
  if (error instanceof NotDelivered) throw { code: "NOT_DELIVERED", message: error.message };
  if (error instanceof RequestError) throw error.toJSON();
  if (typeof (error as { code?: unknown }).code === "string") throw error;
  throw { code: "NETWORK", message: (error as Error).message ?? String(error) };
}

/** A stream whose first step was read already (to learn whether it reached the node). */
async function* from(
  first: IteratorResult<unknown, void>,
  rest: AsyncGenerator<unknown, void, undefined>,
): AsyncGenerator<unknown, void, undefined> {
  if (first.done) return;
  yield first.value;
  yield* rest;
}

const streams = new BlockingStreams({
  gone: () => ({ code: "NETWORK", message: "the stream is closed" }),
  forgetFailed: true,
});

async function serve(request: NatsBlockingRequest): Promise<unknown> {
  try {
    if ("stream" in request) return await streams.serve(request);
    const wire = JSON.parse(request.body) as WireCall;
    const connection = await connectionTo(request.target);
    const call = callOf(wire);
    const author = wire.author_host ?? me.hostname;
    if (request.kind === "execute") return await connection.execute(call, wire.args, author);
    const items = connection.stream(call, wire.args, author);
    return streams.open(from(await items.next(), items));
  } catch (error) {
    return failure(error);
  }
}

if (parentPort) serveBlocking(parentPort, serve);
