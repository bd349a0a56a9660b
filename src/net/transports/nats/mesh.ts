/**
 * The mesh over NATS (`networking.transport: nats`): nodes find each other, watch each other
 * and call each other through NATS servers, with no `node_ips` and no node-to-node
 * connection. docs/protocol.md ("NATS") gives the subjects and messages.
 *
 *   <prefix>.announce              every node, every heartbeat: who it is, its map's version,
 *                                  or that it is leaving; liveness comes from these
 *   <prefix>.node.<instance>.info  request: the node's info answer (its endpoints)
 *   <prefix>.node.<instance>.hello request: opens a pipe to the node (pipe.ts)
 *   <prefix>.pipe.<id>.s / .c      the pipe's messages, towards the serving / calling node
 *
 * With a secret, every announce and request is signed as an HTTP request is (docs/security.md),
 * with method `NATS` and the subject as path, for the instance it is sent to (`*` for
 * announces); every answer carries `x-aio-answer`; each pipe is sealed with a session key both
 * sides derive in the hello. A process that can publish on the NATS server but lacks the
 * secret runs nothing and is listed nowhere.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { setTimeout as delay } from "node:timers/promises";
import {
  connect,
  credsAuthenticator,
  headers,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type NodeConnectionOptions,
} from "@nats-io/transport-node";
import type { NodeInfo } from "../../../core/types.js";
import { NetworkRequestError } from "../../../errors.js";
import type { Logger } from "../../../log.js";
import {
  bodyDigest,
  ChannelSigner,
  HEADER_ANSWER,
  HEADER_DIGEST,
  HEADER_NONCE,
  HEADER_SIGNATURE,
  HEADER_TIME,
  NonceCache,
  type PeerIdentity,
  sameMac,
  sessionKey,
  signAnswer,
  signRequest,
  verifyRequest,
} from "../../auth.js";
import { NodeConnection, NotDelivered } from "../../connection.js";
import { Membership } from "../../membership.js";
import type { NodeRegistry, RemoteNode } from "../../nodes.js";
import type { PacketPipe, PipeEvents } from "../../transport.js";
import {
  type InfoAnswer,
  type InfoRequest,
  parseJson,
  readInfoAnswer,
  readInfoRequest,
  type WireEndpoint,
  type WireRefusal,
} from "../../wire.js";
import { NatsPipe } from "./pipe.js";

/** `networking.nats` (docs/configuration.md). */
export interface NatsSettings {
  servers: string[];
  user: string;
  pass: string;
  token: string;
  creds_file: string;
  ca_file: string;
  subject_prefix: string;
}

export interface NatsMeshOptions {
  settings: NatsSettings;
  hostname: string;
  instance: string;
  /** Shared secret; empty: nothing is signed, and NATS's own permissions are the only guard. */
  secret: string;
  logger: Logger;
  nodes: NodeRegistry;
  emit(event: "node:up" | "node:down", node: NodeInfo): void;
  /** Serves the calls a peer sends over a pipe it opened (NodeServer.accept). */
  accept(
    pipe: PacketPipe,
    peer: string,
  ): { session: { receive(packet: unknown): void }; ended(): void };
  /** This node's endpoints as `requester` sees them: open to it, or closed and why. */
  localEndpoints(requester: string): { open: WireEndpoint[]; closed: WireRefusal[] };
  /** This node's endpoint-map version now. */
  version(): number;
  /** The HTTP port, for info answers (HTTP clients still call the node there). */
  port(): number;
  tls: boolean;
  autoDiscoverable: boolean;
  heartbeatMs: number;
  livenessMs: number;
  maxDepth: number;
  maxPacketBytes: number;
}

/** How long start() waits for NATS before going on without it (it keeps trying). */
const FIRST_CONNECT_MS = 3000;
/** How long a request to another node (info, hello) waits for its answer. */
const REQUEST_MS = 3000;
/** Changes of this node's plugins within this long are announced once. */
const ANNOUNCE_DELAY_MS = 50;
/** Announces are signed for this pseudo-instance: every node checks them. */
const EVERYONE = "*";

interface Announce {
  instance: string;
  hostname: string;
  version: number;
  leaving?: boolean;
}

export class NatsMesh {
  readonly #options: NatsMeshOptions;
  readonly #members: Membership;
  readonly #nodes: NodeRegistry;
  readonly #logger: Logger;
  readonly #prefix: string;
  /** The NATS servers, as errors and logs name them. */
  readonly #where: string;
  readonly #nonces = new NonceCache();
  readonly #pipes = new Set<NatsPipe>();
  readonly #contacts = new Set<string>();
  readonly #refreshing = new Map<RemoteNode, { again: boolean }>();
  #nats: NatsConnection | undefined;
  #connected = false;
  /** Why NATS is not connected, for the errors of calls meanwhile. */
  #lastProblem = "not connected yet";
  #beat: ReturnType<typeof setInterval> | undefined;
  #announcement: ReturnType<typeof setTimeout> | undefined;
  #leaving = false;
  #closed = false;

  constructor(options: NatsMeshOptions) {
    this.#options = options;
    this.#nodes = options.nodes;
    this.#logger = options.logger;
    this.#prefix = options.settings.subject_prefix;
    this.#where = `NATS ${options.settings.servers.join(", ")}`;
    this.#members = new Membership({
      hostname: options.hostname,
      logger: options.logger,
      nodes: options.nodes,
      emit: options.emit,
      connect: (node) => this.#connectionTo(node),
      refresh: (node) => void this.#refresh(node),
      stillThere: (node) => this.#stillThere(node),
      version: options.version,
    });
  }

  /**
   * Connects to the NATS servers, waiting a little for the first connection: local calls never
   * depend on NATS, so a node starts without it, says so, and keeps trying.
   */
  async start(): Promise<void> {
    const connecting = connect(this.#connectOptions());
    connecting.then(
      (nats) => this.#ready(nats),
      (error: unknown) => {
        this.#problem((error as Error).message ?? String(error));
        this.#logger.error(`cannot use NATS: ${this.#lastProblem}`);
      },
    );
    const first = await Promise.race([
      connecting.then(
        () => true,
        () => true,
      ),
      delay(FIRST_CONNECT_MS, false, { ref: false }),
    ]);
    if (!first) {
      this.#logger.warn(
        `NATS at ${this.#options.settings.servers.join(", ")} does not answer yet; calls to other nodes fail with NETWORK until it does (trying again)`,
      );
    }
    this.#beat = setInterval(() => this.#heartbeat(), this.#options.heartbeatMs);
    this.#beat.unref();
  }

  #connectOptions(): NodeConnectionOptions {
    const { settings, hostname } = this.#options;
    return {
      servers: settings.servers,
      name: `aio ${hostname}`,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      waitOnFirstConnect: true,
      ...(settings.user ? { user: settings.user, pass: settings.pass } : {}),
      ...(settings.token ? { token: settings.token } : {}),
      ...(settings.creds_file
        ? { authenticator: credsAuthenticator(readFileSync(settings.creds_file)) }
        : {}),
      ...(settings.ca_file ? { tls: { caFile: settings.ca_file } } : {}),
    };
  }

  /** NATS cannot be used now, and why: errors of calls to other nodes name it. */
  #problem(why: string): void {
    this.#lastProblem = why;
    this.#nodes.unreachable.set(this.#where, why);
  }

  #ready(nats: NatsConnection): void {
    if (this.#closed) {
      void nats.close();
      return;
    }
    this.#nats = nats;
    this.#connected = true;
    this.#nodes.unreachable.delete(this.#where);
    this.#logger.info(`Connected to NATS at ${nats.getServer()} (subjects ${this.#prefix}.>)`);
    const me = this.#options.instance;
    nats.subscribe(`${this.#prefix}.announce`, {
      callback: (error, message) => {
        if (!error) this.#heardAnnounce(message);
      },
    });
    nats.subscribe(`${this.#prefix}.node.${me}.info`, {
      callback: (error, message) => {
        if (!error) this.#serveInfo(message);
      },
    });
    nats.subscribe(`${this.#prefix}.node.${me}.hello`, {
      callback: (error, message) => {
        if (!error) this.#serveHello(message);
      },
    });
    void this.#watchStatus(nats);
    // Subscriptions are in place once the server has seen them: then others may hear of us.
    void nats.flush().then(() => this.#announce());
  }

  async #watchStatus(nats: NatsConnection): Promise<void> {
    for await (const status of nats.status()) {
      if (this.#closed) return;
      if (status.type === "disconnect") {
        this.#connected = false;
        this.#problem(`the connection to ${status.server} was lost`);
        this.#logger.warn(
          `Lost NATS (${status.server}); calls to other nodes fail with NETWORK until it is back`,
        );
        // Whatever was on its way may or may not have arrived: every pipe ends now.
        for (const pipe of [...this.#pipes]) pipe.lost();
      } else if (status.type === "reconnect") {
        this.#connected = true;
        this.#nodes.unreachable.delete(this.#where);
        this.#logger.info(`Back on NATS (${status.server})`);
        this.#announce();
      } else if (status.type === "error") {
        this.#problem(String(status.error?.message ?? status.error));
        this.#logger.warn(`NATS: ${this.#lastProblem}`);
      }
    }
  }

  // ---------------------------------------------------------------- signing

  #signed(target: PeerIdentity, subject: string, body: string): MsgHdrs | undefined {
    if (!this.#options.secret) return undefined;
    const signed = signRequest(this.#options.secret, "NATS", target, subject, body);
    const h = headers();
    for (const [key, value] of Object.entries(signed)) h.set(key, value);
    return h;
  }

  /** The nonce of a genuine, fresh request for `instance`; "" without a secret. */
  #verified(message: Msg, instance: string): string | undefined {
    if (!this.#options.secret) return "";
    const h = message.headers;
    if (!h) return undefined;
    const record: Record<string, string | undefined> = {};
    for (const key of [HEADER_TIME, HEADER_NONCE, HEADER_DIGEST, HEADER_SIGNATURE]) {
      record[key] = h.has(key) ? h.get(key) : undefined;
    }
    return verifyRequest(
      this.#options.secret,
      this.#nonces,
      instance,
      "NATS",
      message.subject,
      record,
      bodyDigest(Buffer.from(message.data)),
    );
  }

  #answer(message: Msg, nonce: string, body: string): void {
    let h: MsgHdrs | undefined;
    if (this.#options.secret) {
      h = headers();
      h.set(HEADER_ANSWER, signAnswer(this.#options.secret, nonce, body));
    }
    message.respond(body, h ? { headers: h } : undefined);
  }

  /**
   * Asks `subject`, signed for `target`. Resolves with the answer's text once its MAC proves it
   * comes from a holder of the secret, and the request's nonce (the hello derives its session
   * key from it). `NotDelivered` when nothing answers or NATS is not connected.
   */
  async #request(
    target: PeerIdentity,
    subject: string,
    body: string,
  ): Promise<{ text: string; nonce: string }> {
    const nats = this.#nats;
    if (!nats || !this.#connected) {
      throw new NotDelivered(`NATS is not connected (${this.#lastProblem})`);
    }
    const h = this.#signed(target, subject, body);
    const nonce = h?.get(HEADER_NONCE) ?? "";
    let reply: Msg;
    try {
      reply = await nats.request(subject, body, {
        timeout: REQUEST_MS,
        ...(h ? { headers: h } : {}),
      });
    } catch (error) {
      throw new NotDelivered((error as Error).message ?? String(error));
    }
    const text = Buffer.from(reply.data).toString("utf8");
    if (this.#options.secret) {
      const mac = reply.headers?.has(HEADER_ANSWER) ? reply.headers.get(HEADER_ANSWER) : "";
      if (!sameMac(mac, signAnswer(this.#options.secret, nonce, text))) {
        throw new NetworkRequestError(
          "UNAUTHORIZED",
          `the answer on ${subject} does not prove that it comes from a holder of the secret; check that every node uses the same secret`,
        );
      }
    }
    return { text, nonce };
  }

  // ---------------------------------------------------------------- discovery and liveness

  #announce(leaving = false): void {
    const nats = this.#nats;
    if (!nats || !this.#connected || this.#closed) return;
    const announce: Announce = {
      instance: this.#options.instance,
      hostname: this.#options.hostname,
      version: this.#options.version(),
      ...(leaving ? { leaving: true } : {}),
    };
    const subject = `${this.#prefix}.announce`;
    const body = JSON.stringify(announce);
    const h = this.#signed({ instance: EVERYONE, clockOffsetMs: 0 }, subject, body);
    try {
      nats.publish(subject, body, h ? { headers: h } : undefined);
    } catch (error) {
      this.#logger.debug(`announce not sent: ${(error as Error).message}`);
    }
  }

  #heardAnnounce(message: Msg): void {
    if (this.#closed || this.#verified(message, EVERYONE) === undefined) return;
    let announce: Announce;
    try {
      const value = parseJson(Buffer.from(message.data).toString("utf8"), 4) as Partial<Announce>;
      if (
        typeof value.instance !== "string" ||
        !/^[0-9a-f-]{8,64}$/.test(value.instance) ||
        typeof value.hostname !== "string" ||
        typeof value.version !== "number"
      ) {
        return;
      }
      announce = value as Announce;
    } catch {
      return;
    }
    if (announce.instance === this.#options.instance) return;
    const known = this.#nodes.get(announce.instance);
    if (announce.leaving) {
      if (known) this.#members.left(known);
      return;
    }
    if (known) {
      this.#members.heard(known);
      if (announce.version !== known.version) void this.#refresh(known);
      return;
    }
    const time = message.headers?.has(HEADER_TIME) ? Number(message.headers.get(HEADER_TIME)) : 0;
    void this.#contact(announce.instance, time ? time - Date.now() : 0);
  }

  /** Asks a node heard of for the first time who it is and what it serves, and adds it. */
  async #contact(instance: string, clockOffsetMs: number): Promise<void> {
    if (this.#contacts.has(instance) || this.#leaving) return;
    this.#contacts.add(instance);
    try {
      const answer = await this.#fetchInfo({ instance, clockOffsetMs });
      if (answer && !this.#closed) {
        this.#members.adopt(answer, clockOffsetMs, `nats:${instance}`, 0);
      }
    } catch (error) {
      this.#logger.warn(`cannot ask node ${instance} over NATS: ${(error as Error).message}`);
    } finally {
      this.#contacts.delete(instance);
    }
  }

  #infoRequest(): InfoRequest {
    return {
      hostname: this.#options.hostname,
      port: 0,
      discover_nodes_info: false,
      instance: this.#options.instance,
      version: this.#options.version(),
    };
  }

  async #fetchInfo(target: PeerIdentity): Promise<InfoAnswer | undefined> {
    const request = this.#infoRequest();
    const { text } = await this.#request(
      target,
      `${this.#prefix}.node.${target.instance}.info`,
      JSON.stringify(request),
    );
    const answer = readInfoAnswer(parseJson(text, this.#options.maxDepth));
    if (answer.instance !== target.instance) return undefined;
    this.#members.shown.set(answer.instance, request.version ?? 0);
    return answer;
  }

  #serveInfo(message: Msg): void {
    const nonce = this.#verified(message, this.#options.instance);
    if (nonce === undefined || this.#closed) return;
    let request: InfoRequest;
    try {
      request = readInfoRequest(
        parseJson(Buffer.from(message.data).toString("utf8"), this.#options.maxDepth),
      );
    } catch {
      return;
    }
    const { open, closed } = this.#options.localEndpoints(request.hostname);
    const version = this.#options.version();
    if (request.instance) this.#members.shown.set(request.instance, version);
    const answer: InfoAnswer = {
      hostname: this.#options.hostname,
      auto_discoverable: this.#options.autoDiscoverable,
      nodes: [],
      endpoints: open,
      closed,
      version,
      instance: this.#options.instance,
      port: this.#options.port(),
      tls: this.#options.tls,
    };
    this.#answer(message, nonce, JSON.stringify(answer));
  }

  /** Asks a known node for its info again; one at a time per node, once more if asked meanwhile. */
  async #refresh(node: RemoteNode): Promise<void> {
    const running = this.#refreshing.get(node);
    if (running) {
      running.again = true;
      return;
    }
    const state = { again: false };
    this.#refreshing.set(node, state);
    try {
      do {
        state.again = false;
        try {
          const answer = await this.#fetchInfo(node.identity());
          if (answer && !this.#closed)
            this.#members.adopt(answer, node.clockOffsetMs, node.address, 0);
        } catch (error) {
          this.#logger.debug(
            `asking "${node.hostname}" over NATS failed: ${(error as Error).message}`,
          );
        }
      } while (state.again && !this.#closed && this.#nodes.get(node.instance) === node);
    } finally {
      this.#refreshing.delete(node);
    }
  }

  /** Whether `node` still answers as itself: no one listening on its subjects proves it gone. */
  async #stillThere(node: RemoteNode): Promise<boolean> {
    try {
      return (await this.#fetchInfo(node.identity()))?.instance === node.instance;
    } catch (error) {
      return !/no responders/i.test((error as Error).message);
    }
  }

  /**
   * One heartbeat: an announce, and every node silent for longer than the liveness timeout is
   * marked down. Not while NATS itself is gone: then every node is silent, and calls say why.
   */
  #heartbeat(): void {
    if (this.#closed || this.#leaving) return;
    this.#announce();
    if (!this.#connected) return;
    for (const node of this.#nodes.all()) {
      if (node.alive && node.silentFor() > this.#options.livenessMs) {
        this.#members.markDown(
          node,
          `sent nothing over NATS for ${(node.silentFor() / 1000).toFixed(1)} s`,
        );
      }
    }
  }

  /** This node's plugins changed: the others hear it at once (they ask for its info again). */
  bumpVersion(): void {
    if (this.#leaving || this.#closed || this.#announcement) return;
    this.#announcement = setTimeout(() => {
      this.#announcement = undefined;
      this.#announce();
    }, ANNOUNCE_DELAY_MS);
    this.#announcement.unref();
  }

  // ---------------------------------------------------------------- pipes

  #connectionTo(node: RemoteNode): NodeConnection {
    return new NodeConnection({
      dial: (events) => this.#dial(node, events),
      hostname: node.hostname,
      maxPacketBytes: this.#maxPacket(),
      keepalive: {
        intervalMs: this.#options.heartbeatMs,
        silentMs: this.#options.livenessMs,
        heard: () => node.silentFor() < this.#options.livenessMs,
      },
      onBadMessage: (error) =>
        this.#logger.warn(`closing the pipe to ${node.hostname}: ${error.message}`),
      onLeaving: () => this.#members.left(node),
      onSilent: () =>
        this.#members.markDown(
          node,
          `its pipe and announces were silent for ${this.#options.livenessMs / 1000} s`,
        ),
      onLost: () => void this.#refresh(node),
    });
  }

  #maxPacket(): number {
    return this.#nats
      ? NatsPipe.maxPacketBytes(this.#nats, this.#options.maxPacketBytes)
      : this.#options.maxPacketBytes;
  }

  /** Opens a pipe to `node`: a hello, answered with the node's nonce and its proof of the secret. */
  async #dial(node: RemoteNode, events: PipeEvents): Promise<PacketPipe> {
    const nats = this.#nats;
    if (!nats || !this.#connected) {
      throw new NotDelivered(`NATS is not connected (${this.#lastProblem})`);
    }
    const id = randomBytes(12).toString("hex");
    // Subscribed before the hello: nothing the node sends on the pipe can come before it.
    const pipe = new NatsPipe({
      nats,
      sendSubject: `${this.#prefix}.pipe.${id}.s`,
      receiveSubject: `${this.#prefix}.pipe.${id}.c`,
      maxDepth: this.#options.maxDepth,
      maxPacketBytes: this.#maxPacket(),
      events,
      onEnd: () => this.#pipes.delete(pipe),
    });
    this.#pipes.add(pipe);
    const subject = `${this.#prefix}.node.${node.instance}.hello`;
    const body = JSON.stringify({
      pipe: id,
      hostname: this.#options.hostname,
      instance: this.#options.instance,
    });
    try {
      const { text, nonce: clientNonce } = await this.#request(node.identity(), subject, body);
      const answer = parseJson(text, 4) as { nonce?: unknown; refused?: unknown };
      if (typeof answer.refused === "string")
        throw new NotDelivered(`${node.hostname} ${answer.refused}`);
      if (this.#options.secret) {
        const serverNonce = typeof answer.nonce === "string" ? answer.nonce : "";
        pipe.sign(
          new ChannelSigner(sessionKey(this.#options.secret, clientNonce, serverNonce), "client"),
        );
      }
      return pipe;
    } catch (error) {
      pipe.terminate();
      throw error;
    }
  }

  #serveHello(message: Msg): void {
    const nats = this.#nats;
    const clientNonce = this.#verified(message, this.#options.instance);
    if (!nats || clientNonce === undefined || this.#closed) return;
    let hello: { pipe?: unknown; hostname?: unknown; instance?: unknown };
    try {
      hello = parseJson(Buffer.from(message.data).toString("utf8"), 4) as typeof hello;
    } catch {
      return;
    }
    if (typeof hello.pipe !== "string" || !/^[0-9a-f]{24}$/.test(hello.pipe)) return;
    if (this.#leaving) {
      this.#answer(message, clientNonce, JSON.stringify({ refused: "is shutting down" }));
      return;
    }
    const serverNonce = randomBytes(16).toString("hex");
    const peer = `nats:${typeof hello.instance === "string" ? hello.instance : hello.pipe}`;
    let accepted: ReturnType<NatsMeshOptions["accept"]> | undefined;
    const pipe: NatsPipe = new NatsPipe({
      nats,
      sendSubject: `${this.#prefix}.pipe.${hello.pipe}.c`,
      receiveSubject: `${this.#prefix}.pipe.${hello.pipe}.s`,
      maxDepth: this.#options.maxDepth + 2,
      maxPacketBytes: this.#maxPacket(),
      ...(this.#options.secret
        ? {
            signer: new ChannelSigner(
              sessionKey(this.#options.secret, clientNonce, serverNonce),
              "server",
            ),
          }
        : {}),
      events: {
        packet: (packet) => accepted?.session.receive(packet),
        heard: () => undefined,
        closed: () => accepted?.ended(),
        badMessage: (error) => this.#logger.warn(`closing the pipe from ${peer}: ${error.message}`),
      },
      onEnd: () => this.#pipes.delete(pipe),
    });
    this.#pipes.add(pipe);
    accepted = this.#options.accept(pipe, peer);
    this.#answer(message, clientNonce, JSON.stringify({ nonce: serverNonce }));
  }

  // ---------------------------------------------------------------- the end

  /** The first step of closing: every node hears that this one is leaving. */
  leave(): void {
    this.#leaving = true;
    clearTimeout(this.#announcement);
    this.#announce(true);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#members.close();
    clearInterval(this.#beat);
    clearTimeout(this.#announcement);
    for (const pipe of [...this.#pipes]) pipe.close();
    const nats = this.#nats;
    this.#nats = undefined;
    if (nats) {
      await nats.flush().catch(() => undefined);
      await nats.close().catch(() => undefined);
    }
  }
}
