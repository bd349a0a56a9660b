/**
 * Opening a pipe over NATS (pipe.ts): the calling side subscribes to its end of a fresh pipe,
 * then sends a signed hello to `<prefix>.node.<instance>.hello`; the serving side subscribes
 * to its end and answers with its nonce, proving with the answer's MAC that it knows the
 * secret. Both derive the pipe's session key from the two nonces, as the channel's handshake
 * does (docs/security.md, "The channel").
 */
import { randomBytes } from "node:crypto";
import type { Msg, NatsConnection } from "@nats-io/transport-node";
import { NotDelivered } from "../../../errors.js";
import type { Logger } from "../../../log.js";
import { ChannelSigner, type PeerIdentity, sessionKey } from "../../auth.js";
import type { PacketPipe, PipeEvents } from "../../transport.js";
import { parseJson } from "../../wire.js";
import { NatsPipe } from "./pipe.js";
import type { NatsSigning } from "./signing.js";

/** What opening and serving pipes on one NATS connection needs. */
export interface NatsPipes {
  nats: NatsConnection;
  prefix: string;
  signing: NatsSigning;
  maxDepth: number;
  /** This node's limit; a NATS message may hold less (see NatsPipe.maxPacketBytes). */
  maxPacketBytes: number;
  /** The pipes open now: they end when the connection to NATS is lost. */
  open: Set<NatsPipe>;
}

/** Who sends the hello. */
export interface Caller {
  hostname: string;
  instance: string;
}

/** Opens a pipe to the node `target` (`hostname` for messages). */
export async function dialNats(
  pipes: NatsPipes,
  caller: Caller,
  target: PeerIdentity & { hostname: string },
  events: PipeEvents,
): Promise<PacketPipe> {
  const id = randomBytes(12).toString("hex");
  // Subscribed before the hello: nothing the node sends on the pipe can come before it.
  const pipe = new NatsPipe({
    nats: pipes.nats,
    sendSubject: `${pipes.prefix}.pipe.${id}.s`,
    receiveSubject: `${pipes.prefix}.pipe.${id}.c`,
    maxDepth: pipes.maxDepth,
    maxPacketBytes: NatsPipe.maxPacketBytes(pipes.nats, pipes.maxPacketBytes),
    events,
    onEnd: () => pipes.open.delete(pipe),
  });
  pipes.open.add(pipe);
  const subject = `${pipes.prefix}.node.${target.instance}.hello`;
  const body = JSON.stringify({ pipe: id, hostname: caller.hostname, instance: caller.instance });
  try {
    const { text, nonce } = await pipes.signing.request(pipes.nats, target, subject, body);
    const answer = parseJson(text, 4) as { nonce?: unknown; refused?: unknown };
    if (typeof answer.refused === "string") {
      throw new NotDelivered(`${target.hostname} ${answer.refused}`);
    }
    const secret = pipes.signing.secret;
    if (secret) {
      const serverNonce = typeof answer.nonce === "string" ? answer.nonce : "";
      pipe.sign(new ChannelSigner(sessionKey(secret, nonce, serverNonce), "client"));
    }
    return pipe;
  } catch (error) {
    pipe.terminate();
    throw error;
  }
}

/** What serving a hello needs besides the pipes. */
export interface HelloServer {
  /** This node's instance id: hellos must be signed for it. */
  instance: string;
  /** A node shutting down refuses new pipes. */
  leaving(): boolean;
  /** Serves the calls a peer sends over the pipe (NodeServer.accept). */
  accept(
    pipe: PacketPipe,
    peer: string,
  ): { session: { receive(packet: unknown): void }; ended(): void };
  logger: Logger;
}

/** Answers a hello: a genuine one opens the serving end of its pipe; others get no answer. */
export function serveHello(pipes: NatsPipes, server: HelloServer, message: Msg): void {
  const clientNonce = pipes.signing.verify(message, server.instance);
  if (clientNonce === undefined) return;
  let hello: { pipe?: unknown; instance?: unknown };
  try {
    hello = parseJson(Buffer.from(message.data).toString("utf8"), 4) as typeof hello;
  } catch {
    return;
  }
  if (typeof hello.pipe !== "string" || !/^[0-9a-f]{24}$/.test(hello.pipe)) return;
  if (server.leaving()) {
    pipes.signing.respond(message, clientNonce, JSON.stringify({ refused: "is shutting down" }));
    return;
  }
  const secret = pipes.signing.secret;
  const serverNonce = randomBytes(16).toString("hex");
  const peer = `nats:${typeof hello.instance === "string" ? hello.instance : hello.pipe}`;
  let accepted: ReturnType<HelloServer["accept"]> | undefined;
  const pipe: NatsPipe = new NatsPipe({
    nats: pipes.nats,
    sendSubject: `${pipes.prefix}.pipe.${hello.pipe}.c`,
    receiveSubject: `${pipes.prefix}.pipe.${hello.pipe}.s`,
    maxDepth: pipes.maxDepth + 2,
    maxPacketBytes: NatsPipe.maxPacketBytes(pipes.nats, pipes.maxPacketBytes),
    ...(secret
      ? { signer: new ChannelSigner(sessionKey(secret, clientNonce, serverNonce), "server") }
      : {}),
    events: {
      packet: (packet) => accepted?.session.receive(packet),
      heard: () => undefined,
      closed: () => accepted?.ended(),
      badMessage: (error) => server.logger.warn(`closing the pipe from ${peer}: ${error.message}`),
    },
    onEnd: () => pipes.open.delete(pipe),
  });
  pipes.open.add(pipe);
  accepted = server.accept(pipe, peer);
  pipes.signing.respond(message, clientNonce, JSON.stringify({ nonce: serverNonce }));
}
